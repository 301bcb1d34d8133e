//! The status journal in Azure Blob storage: one JSON document per cluster,
//! `clusters/{cluster key}.json` in the `backup-pilot-status` container, updated by
//! read-modify-write with ETag conditions (`If-Match`, or `If-None-Match: *` for a new
//! cluster), so concurrent invocations never lose each other's records: a 412 or 409 means
//! "someone else wrote first", and the update is redone on the fresh document. Auth: Entra
//! (managed identity) in Azure; a SAS, or an account key that signs short-lived SAS tokens,
//! for Azurite.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use azure_core::credentials::TokenCredential;
use azure_core::error::ErrorKind;
use azure_core::http::{
    ClientOptions, Etag, ExponentialRetryOptions, RequestContent, RetryOptions, Url,
};
use azure_storage_blob::models::{
    BlobContainerClientListBlobsOptions, BlockBlobClientUploadOptions,
};
use azure_storage_blob::{BlobContainerClient, BlobContainerClientOptions};
use futures::{StreamExt as _, TryStreamExt as _};
use rand::Rng as _;
use time::OffsetDateTime;

use super::account_sas::AccountKey;
use super::{ClusterStatus, Phase, StatusError, StoreInfo, cluster_key};
use crate::engine::journal::{Journal, StepRecord};
use crate::telemetry::http::{AzureSdkTelemetry, Peer};
use crate::telemetry::redact;

/// The container status lives in unless configured otherwise.
pub const DEFAULT_CONTAINER: &str = "backup-pilot-status";

/// The Blob service version the store speaks: pinned, so Azure and Azurite (which accepts
/// versions up to the one it was released with) see the same requests.
pub const STORAGE_API_VERSION: &str = "2025-11-05";

/// Every cluster document's name starts with this.
pub const PREFIX: &str = "clusters/";

const MAX_WRITE_ATTEMPTS: u32 = 12;
const READ_CONCURRENCY: usize = 16;
const SAS_LIFETIME: time::Duration = time::Duration::hours(1);
const SAS_RENEW_BEFORE: time::Duration = time::Duration::minutes(10);

/// How the store authenticates.
#[derive(Clone)]
pub enum StorageAuth {
    /// A Microsoft Entra token for `https://storage.azure.com` (https endpoints only).
    Entra(Arc<dyn TokenCredential>),
    /// A SAS token (the query string, with or without the leading `?`).
    Sas(String),
    /// An account key; the store signs a one-hour account SAS with it and renews it.
    AccountKey(AccountKey),
}

impl fmt::Debug for StorageAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Entra(_) => f.write_str("Entra"),
            Self::Sas(_) => f.write_str("Sas(<redacted>)"),
            Self::AccountKey(k) => write!(f, "AccountKey({}, <redacted>)", k.account()),
        }
    }
}

/// One Blob container: its URL, how to authenticate, and a cached client (a self-signed SAS
/// is renewed before it expires). Shared by the status journal and the drill report store.
pub struct BlobContainer {
    container_url: Url,
    auth: StorageAuth,
    retry_budget: time::Duration,
    client: Mutex<Option<(Arc<BlobContainerClient>, Option<OffsetDateTime>)>>,
}

impl fmt::Debug for BlobContainer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlobContainer")
            .field("container_url", &self.container_url.as_str())
            .field("auth", &self.auth)
            .finish()
    }
}

/// The Blob-backed journal.
#[derive(Debug)]
pub struct BlobJournal {
    blobs: BlobContainer,
    history_limit: usize,
}

/// What an ETag-conditioned upload ran into.
enum UploadError {
    /// Someone else wrote first (412, or 409 for a document that now exists).
    Conflict,
    /// The container does not exist yet.
    NoContainer,
    /// Anything else.
    Other(StatusError),
}

impl BlobContainer {
    /// `container` of the Blob service at `service_url` (e.g.
    /// `https://acct.blob.core.windows.net` or Azurite's `http://127.0.0.1:10000/devstoreaccount1`).
    ///
    /// # Errors
    /// A URL that cannot hold a container, a query string in it, or Entra auth over http.
    pub fn new(service_url: &Url, container: &str, auth: StorageAuth) -> Result<Self, StatusError> {
        if service_url.query().is_some() {
            return Err(StatusError::Config(
                "the Blob service URL must not carry a query string; pass a SAS as BACKUP_PILOT_STATUS_BLOB_SAS".into(),
            ));
        }
        if matches!(auth, StorageAuth::Entra(_)) && service_url.scheme() != "https" {
            return Err(StatusError::Config(format!(
                "Entra authentication needs an https Blob endpoint, got {service_url}; for Azurite set BACKUP_PILOT_STATUS_BLOB_ACCOUNT_KEY (or leave it unset on a loopback devstoreaccount1 URL)"
            )));
        }
        let mut container_url = service_url.clone();
        container_url
            .path_segments_mut()
            .map_err(|()| {
                StatusError::Config(format!("{service_url} cannot be a Blob service URL"))
            })?
            .pop_if_empty()
            .push(container);
        Ok(Self {
            container_url,
            auth,
            retry_budget: time::Duration::seconds(10),
            client: Mutex::new(None),
        })
    }

    /// Limits how long one request keeps retrying transient failures (default 10 s).
    pub fn with_retry_budget(mut self, budget: Duration) -> Self {
        self.retry_budget = time::Duration::try_from(budget).unwrap_or(time::Duration::MAX);
        self
    }

    /// The container URL (no credentials).
    pub fn location(&self) -> String {
        self.container_url.to_string()
    }

    /// The URL of a blob in the container (no credentials).
    pub fn blob_url(&self, name: &str) -> String {
        let mut url = self.container_url.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.extend(name.split('/'));
        }
        url.to_string()
    }

    /// A client for the container, renewing a self-signed SAS before it expires.
    ///
    /// # Errors
    /// [`StatusError::Config`] when the SDK refuses the URL or credential.
    pub fn client(&self) -> Result<Arc<BlobContainerClient>, StatusError> {
        let now = OffsetDateTime::now_utc();
        if let Ok(cached) = self.client.lock()
            && let Some((client, expiry)) = cached.as_ref()
            && expiry.is_none_or(|at| at - now > SAS_RENEW_BEFORE)
        {
            return Ok(client.clone());
        }
        let mut url = self.container_url.clone();
        let (credential, expiry) = match &self.auth {
            StorageAuth::Entra(cred) => (Some(cred.clone()), None),
            StorageAuth::Sas(token) => {
                url.set_query(Some(token.trim_start_matches('?')));
                (None, None)
            }
            StorageAuth::AccountKey(key) => {
                url.set_query(Some(&key.blob_sas(now, SAS_LIFETIME, STORAGE_API_VERSION)));
                (None, Some(now + SAS_LIFETIME))
            }
        };
        let options = BlobContainerClientOptions {
            client_options: ClientOptions {
                per_try_policies: vec![AzureSdkTelemetry::policy(Peer::Blob)],
                retry: RetryOptions::exponential(ExponentialRetryOptions {
                    max_total_elapsed: self.retry_budget,
                    max_retries: 5,
                    ..ExponentialRetryOptions::default()
                }),
                ..ClientOptions::default()
            },
            version: STORAGE_API_VERSION.to_string(),
        };
        let client = BlobContainerClient::new(url, credential, Some(options))
            .map(Arc::new)
            .map_err(|e| {
                StatusError::Config(format!(
                    "could not create a Blob client for {}: {}",
                    self.location(),
                    redact::secrets(&e.to_string())
                ))
            })?;
        if let Ok(mut cached) = self.client.lock() {
            *cached = Some((client.clone(), expiry));
        }
        Ok(client)
    }

    fn read_error(&self, what: &str, e: &azure_core::Error) -> StatusError {
        StatusError::Read {
            store: self.location(),
            what: what.to_string(),
            message: describe(e),
        }
    }

    fn write_error(&self, what: &str, e: &azure_core::Error) -> StatusError {
        StatusError::Write {
            store: self.location(),
            what: what.to_string(),
            message: describe(e),
        }
    }

    /// Reads one blob and its ETag; `None` when it (or the container) does not exist.
    ///
    /// # Errors
    /// The service failing.
    pub async fn read(&self, name: &str) -> Result<Option<(Vec<u8>, Etag)>, StatusError> {
        let blob = self.client()?.blob_client(name);
        let result = match blob.download(None).await {
            Ok(r) => r,
            Err(e) if e.http_status().map(u16::from) == Some(404) => return Ok(None),
            Err(e) => return Err(self.read_error(name, &e)),
        };
        let etag = result
            .properties
            .etag
            .clone()
            .ok_or_else(|| StatusError::Read {
                store: self.location(),
                what: name.to_string(),
                message: "the service sent no ETag".into(),
            })?;
        let body = result
            .body
            .collect()
            .await
            .map_err(|e| self.read_error(name, &e))?;
        Ok(Some((body.to_vec(), etag)))
    }

    async fn upload(
        &self,
        name: &str,
        body: Vec<u8>,
        content_type: &str,
        etag: Option<Option<Etag>>,
    ) -> Result<(), UploadError> {
        let blob = self.client().map_err(UploadError::Other)?.blob_client(name);
        let mut options = BlockBlobClientUploadOptions {
            blob_content_type: Some(content_type.into()),
            ..Default::default()
        };
        match etag {
            Some(Some(etag)) => options.if_match = Some(etag),
            Some(None) => options.if_none_match = Some(Etag::from("*")),
            None => {}
        }
        match blob
            .block_blob_client()
            .upload(RequestContent::from(body), Some(options))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                let (status, code) = status_and_code(&e);
                match (status, code.as_deref()) {
                    (Some(412), _) | (Some(409), Some("BlobAlreadyExists")) => {
                        Err(UploadError::Conflict)
                    }
                    (Some(404), Some("ContainerNotFound")) => Err(UploadError::NoContainer),
                    _ => Err(UploadError::Other(self.write_error(name, &e))),
                }
            }
        }
    }

    /// Creates the container (an existing one is fine).
    ///
    /// # Errors
    /// The service failing.
    pub async fn create(&self) -> Result<(), StatusError> {
        match self.client()?.create(None).await {
            Ok(_) => Ok(()),
            Err(e) if e.http_status().map(u16::from) == Some(409) => Ok(()),
            Err(e) => Err(self.write_error("the container", &e)),
        }
    }

    /// Writes a blob unconditionally, creating the container when it is missing.
    ///
    /// # Errors
    /// The service failing.
    pub async fn put(
        &self,
        name: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> Result<(), StatusError> {
        for _ in 0..2 {
            match self.upload(name, body.clone(), content_type, None).await {
                Ok(()) => return Ok(()),
                Err(UploadError::NoContainer) => self.create().await?,
                Err(UploadError::Conflict) => {
                    return Err(StatusError::Write {
                        store: self.location(),
                        what: name.to_string(),
                        message: "the service refused an unconditional write with a conflict"
                            .into(),
                    });
                }
                Err(UploadError::Other(e)) => return Err(e),
            }
        }
        Err(StatusError::Write {
            store: self.location(),
            what: name.to_string(),
            message: "the container vanished right after it was created".into(),
        })
    }

    /// The names of the blobs under `prefix` (none when the container does not exist).
    ///
    /// # Errors
    /// The service failing.
    pub async fn list(&self, prefix: &str, what: &str) -> Result<Vec<String>, StatusError> {
        let options = BlobContainerClientListBlobsOptions {
            prefix: Some(prefix.into()),
            ..Default::default()
        };
        let mut pager = self
            .client()?
            .list_blobs(Some(options))
            .map_err(|e| self.read_error(what, &e))?;
        let mut names = Vec::new();
        loop {
            match pager.try_next().await {
                Ok(Some(item)) => names.extend(item.name),
                Ok(None) => return Ok(names),
                Err(e) if status_and_code(&e).1.as_deref() == Some("ContainerNotFound") => {
                    return Ok(Vec::new());
                }
                Err(e) => return Err(self.read_error(what, &e)),
            }
        }
    }
}

impl BlobJournal {
    /// A journal in `container` of the Blob service at `service_url` (e.g.
    /// `https://acct.blob.core.windows.net` or Azurite's `http://127.0.0.1:10000/devstoreaccount1`).
    ///
    /// # Errors
    /// A URL that cannot hold a container, a query string in it, or Entra auth over http.
    pub fn new(
        service_url: &Url,
        container: &str,
        auth: StorageAuth,
        history_limit: usize,
    ) -> Result<Self, StatusError> {
        Ok(Self {
            blobs: BlobContainer::new(service_url, container, auth)?,
            history_limit: history_limit.max(1),
        })
    }

    /// Limits how long one request keeps retrying transient failures (default 10 s; a step
    /// waits for its record, and a status answer for its read).
    pub fn with_retry_budget(mut self, budget: Duration) -> Self {
        self.blobs = self.blobs.with_retry_budget(budget);
        self
    }

    fn location(&self) -> String {
        self.blobs.location()
    }

    fn blob_name(cluster: &str) -> String {
        format!(
            "{PREFIX}{}.json",
            cluster_key(cluster).trim_start_matches('/')
        )
    }

    /// Folds `record` into its cluster's document, redoing the update whenever another
    /// writer got there first.
    ///
    /// # Errors
    /// The store failing, or losing the race [`MAX_WRITE_ATTEMPTS`] times in a row.
    pub async fn update(&self, record: &StepRecord) -> Result<(), StatusError> {
        let name = Self::blob_name(&record.subject);
        for attempt in 0..MAX_WRITE_ATTEMPTS {
            let (mut status, etag) = match self.blobs.read(&name).await? {
                Some((bytes, etag)) => match serde_json::from_slice::<ClusterStatus>(&bytes) {
                    Ok(status) => (status, Some(etag)),
                    Err(e) => {
                        tracing::warn!(
                            blob = %name,
                            "the stored status is unreadable ({e}); starting it afresh"
                        );
                        (ClusterStatus::new(&record.subject), Some(etag))
                    }
                },
                None => (ClusterStatus::new(&record.subject), None),
            };
            status.apply(record, self.history_limit);
            let body = serde_json::to_vec(&status).map_err(|e| StatusError::Write {
                store: self.location(),
                what: name.clone(),
                message: e.to_string(),
            })?;
            match self
                .blobs
                .upload(&name, body, "application/json", Some(etag))
                .await
            {
                Ok(()) => return Ok(()),
                Err(UploadError::Conflict) => {
                    let pause = rand::rng().random_range(5..=25) * u64::from(attempt + 1);
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                }
                Err(UploadError::NoContainer) => self.blobs.create().await?,
                Err(UploadError::Other(e)) => return Err(e),
            }
        }
        Err(StatusError::Contended {
            store: self.location(),
            what: name,
            attempts: MAX_WRITE_ATTEMPTS,
        })
    }

    async fn read_status(&self, name: &str) -> Result<Option<ClusterStatus>, StatusError> {
        let Some((bytes, _)) = self.blobs.read(name).await? else {
            return Ok(None);
        };
        Ok(Some(serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            unreadable(name, &format!("the stored document is not valid status JSON ({e}); it is rewritten by the cluster's next step"))
        })))
    }

    async fn list_names(&self) -> Result<Vec<String>, StatusError> {
        self.blobs.list(PREFIX, "the cluster list").await
    }
}

#[async_trait]
impl Journal for BlobJournal {
    async fn record(&self, record: StepRecord) {
        if let Err(e) = self.update(&record).await {
            tracing::warn!(
                workflow.id = %record.workflow_id,
                step.name = %record.step,
                "the step's status was not recorded: {e}"
            );
        }
    }

    fn store(&self) -> StoreInfo {
        StoreInfo {
            kind: "blob",
            location: self.location(),
            note: None,
        }
    }

    async fn cluster_status(&self, cluster: &str) -> Result<Option<ClusterStatus>, StatusError> {
        self.read_status(&Self::blob_name(cluster)).await
    }

    async fn fleet_status(&self) -> Result<Vec<ClusterStatus>, StatusError> {
        let names = self.list_names().await?;
        let mut clusters: Vec<ClusterStatus> = futures::stream::iter(names)
            .map(|name| async move { self.read_status(&name).await })
            .buffer_unordered(READ_CONCURRENCY)
            .try_filter_map(|status| async move { Ok(status) })
            .try_collect()
            .await?;
        clusters.sort_by_key(|c| cluster_key(&c.cluster));
        Ok(clusters)
    }
}

/// A placeholder for a document that cannot be read, so the fleet view shows it.
fn unreadable(name: &str, why: &str) -> ClusterStatus {
    let cluster = name
        .strip_prefix(PREFIX)
        .and_then(|n| n.strip_suffix(".json"))
        .map_or_else(|| name.to_string(), |n| format!("/{n}"));
    let mut status = ClusterStatus::new(&cluster);
    status.phase = Phase::Unknown;
    status.last_error = Some(super::LastError {
        workflow_id: String::new(),
        kind: crate::envelope::WorkflowKind::Onboard,
        step: String::new(),
        attempt: 0,
        at: OffsetDateTime::UNIX_EPOCH,
        message: why.to_string(),
        fix: None,
    });
    status
}

fn status_and_code(e: &azure_core::Error) -> (Option<u16>, Option<String>) {
    match e.kind() {
        ErrorKind::HttpResponse {
            status, error_code, ..
        } => (Some(u16::from(*status)), error_code.clone()),
        _ => (None, None),
    }
}

/// An SDK error as one line without secrets, naming the likely fix for the common cases.
fn describe(e: &azure_core::Error) -> String {
    let text = redact::secrets(&e.to_string());
    let hint = match status_and_code(e) {
        (Some(403), _) => {
            "; grant the function app's identity the Storage Blob Data Contributor role on the account (or check the SAS / account key)"
        }
        (None, _) if matches!(e.kind(), ErrorKind::Connection | ErrorKind::Io) => {
            "; check BACKUP_PILOT_STATUS_BLOB_URL and that the storage endpoint is reachable"
        }
        _ => "",
    };
    format!("{text}{hint}")
}

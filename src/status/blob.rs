//! The status journal in Azure Blob storage, in the `backup-pilot-status` container. Each
//! cluster has two blobs under `clusters/{cluster key}`:
//!
//! - `.log`, an **append blob**: JSON Lines, one step record per line, each line written by one
//!   Append Block. Appends are unconditional and atomic, so concurrent steps of one cluster (a
//!   drill during onboarding, a redelivered message, a repair) never contend and never retry.
//!   The first writer creates the blob (`If-None-Match: *`; "already exists" means another
//!   writer did, and it appends too); an append that finds no blob or no container creates
//!   them and appends again.
//! - `.json`, the **snapshot**: the folded [`ClusterStatus`], the same document earlier builds
//!   kept (so their documents still read). Only compaction writes it.
//!
//! A cluster's status is its snapshot with every log record applied by
//! [`ClusterStatus::apply`], which is idempotent and order-tolerant: a record in both the
//! snapshot and the log, or one appended twice (a retried Append Block), changes nothing.
//!
//! **Compaction** keeps logs short. When an append reports [`COMPACT_AT`] or more committed
//! blocks, its writer, best effort and before returning: reads the log (ETag `L`) and the
//! snapshot (ETag `S`); folds the log into the snapshot; writes the snapshot with
//! `If-Match: S` (`If-None-Match: *` when there is none); then deletes the log with
//! `If-Match: L`. A snapshot write that loses to another compactor starts over from fresh
//! reads (a few rounds); a delete that fails with 412 means records were appended meanwhile:
//! the log stays, and the writer of those records, past the threshold too, tries next, so the
//! last writer of a burst finds the log unchanged. Neither is an error, nor logged as one. A
//! writer whose log was deleted under it creates a new one.
//!
//! **Why no record is lost, in any interleaving.** Claim: from the moment the append of a
//! record `r` succeeded, `r` is in the current log or in the snapshot (until the newer runs
//! that the history limit keeps push it out).
//! 1. The snapshot only grows: every write of it is conditioned on the ETag of the snapshot it
//!    was folded from, so no write replaces a snapshot its writer did not fold (earlier builds,
//!    still running during a deploy, write it by ETag-conditioned read-modify-write too). The
//!    one exception is a snapshot that is not valid JSON: compaction replaces it with the
//!    log's records, with a warning.
//! 2. The log loses records only by the delete. Every append changes an append blob's ETag,
//!    so a delete with `If-Match: L` succeeds only if nothing was appended after the compactor
//!    read the log as `L`: every record deleted was in what it read, and it had already
//!    written a snapshot folding exactly that content.
//! 3. A writer whose append finds no log (a compactor just deleted it) creates a new one
//!    (another writer may have, `If-None-Match: *` tells) and appends there: its record was
//!    never in the deleted log, whose records are in the snapshot by 2. A compactor that read
//!    the deleted log can no longer delete the new one (another ETag), and an empty or short
//!    new log is not compacted by the threshold.
//! 4. Requests the SDK retries after a lost response are harmless: a second Append Block
//!    repeats a line (applied once), a repeated delete finds nothing (done), a repeated
//!    snapshot write gets 412 (fold again).
//!
//! Readers read the log **before** the snapshot: a record appended before the log read is,
//! at that moment, in that log or in the snapshot (the claim), and the snapshot read after it
//! still holds it (1). Reading the other way round, a compaction in between could hide
//! records. A line this build cannot parse is skipped by readers and dropped, with a warning,
//! by the next compaction.
//!
//! The log holds what the snapshot would: failure reasons, retry reasons and summaries are
//! stored with secrets removed (a failure's problem and fix apart, as
//! [`crate::engine::fix`] splits them). Auth: Entra (managed identity) in Azure; a SAS, or an
//! account key that signs short-lived SAS tokens, for Azurite.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use azure_core::Bytes;
use azure_core::credentials::TokenCredential;
use azure_core::error::ErrorKind;
use azure_core::http::{
    ClientOptions, Etag, ExponentialRetryOptions, RequestContent, RetryOptions, Transport, Url,
};
use azure_storage_blob::models::{
    AppendBlobClientAppendBlockResultHeaders as _, AppendBlobClientCreateOptions,
    BlobClientDeleteOptions, BlobContainerClientListBlobsOptions, BlockBlobClientUploadOptions,
};
use azure_storage_blob::{BlobContainerClient, BlobContainerClientOptions};
use futures::{StreamExt as _, TryStreamExt as _};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::account_sas::AccountKey;
use super::store::{Claim, StatusStore};
use super::{ClusterStatus, Phase, StatusError, StoreInfo, cluster_key};
use crate::engine::fix;
use crate::engine::journal::{Measures, StepRecord, Transition};
use crate::envelope::WorkflowKind;
use crate::telemetry::http::{AzureSdkTelemetry, Peer};
use crate::telemetry::redact;

/// The container status lives in unless configured otherwise.
pub const DEFAULT_CONTAINER: &str = "backup-pilot-status";

/// The Blob service version the store speaks: pinned, so Azure and Azurite (which accepts
/// versions up to the one it was released with) see the same requests.
pub const STORAGE_API_VERSION: &str = "2025-11-05";

/// Claims ([`StatusStore::claim`]) are create-only blobs under this prefix.
pub const CLAIMS_PREFIX: &str = "claims/";

/// Every cluster blob's name starts with this.
pub const PREFIX: &str = "clusters/";

/// Suffix of a cluster's snapshot document (the folded [`ClusterStatus`]).
pub const SNAPSHOT_SUFFIX: &str = ".json";

/// Suffix of a cluster's log (an append blob, one JSON step record per line).
pub const LOG_SUFFIX: &str = ".log";

/// A writer whose append leaves the log with at least this many blocks (records) compacts it.
/// Readers read the whole log (about 50 KB at this length) besides the snapshot; appends past
/// it each try to compact, which costs four requests.
pub const COMPACT_AT: u32 = 100;

/// How often one record is appended again after its log vanished (deleted by a compaction)
/// or filled up; each round needs another compaction to have run in between.
const MAX_APPEND_ROUNDS: u32 = 8;

/// How often a compaction starts over after another compactor wrote the snapshot first.
const COMPACT_ROUNDS: u32 = 4;

const LOG_CONTENT_TYPE: &str = "application/x-ndjson";
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
    transport: Option<Transport>,
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

/// What an ETag-conditioned upload (or the creation of an append blob) ran into.
enum UploadError {
    /// Someone else wrote first (412, or 409 for a document that now exists).
    Conflict,
    /// The container does not exist yet.
    NoContainer,
    /// Anything else.
    Other(StatusError),
}

/// What an Append Block ran into.
enum AppendError {
    /// The append blob does not exist (never created, or deleted by a compaction).
    NoBlob,
    /// The container does not exist yet.
    NoContainer,
    /// The append blob holds the most blocks the service allows.
    Full,
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
            transport: None,
            client: Mutex::new(None),
        })
    }

    /// Limits how long one request keeps retrying transient failures (default 10 s).
    pub fn with_retry_budget(mut self, budget: Duration) -> Self {
        self.retry_budget = time::Duration::try_from(budget).unwrap_or(time::Duration::MAX);
        self
    }

    /// Sends through `transport` (one that trusts a private CA:
    /// [`crate::tls::TlsTrust::azure_transport`]); `None` keeps the SDK's default.
    pub fn with_transport(mut self, transport: Option<Transport>) -> Self {
        self.transport = transport;
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
                transport: self.transport.clone(),
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

    /// Creates an empty append blob unless one exists (`If-None-Match: *`; an existing blob
    /// is [`UploadError::Conflict`]).
    async fn create_append_blob(&self, name: &str, content_type: &str) -> Result<(), UploadError> {
        let blob = self.client().map_err(UploadError::Other)?.blob_client(name);
        let options = AppendBlobClientCreateOptions {
            blob_content_type: Some(content_type.into()),
            if_none_match: Some(Etag::from("*")),
            ..Default::default()
        };
        match blob.append_blob_client().create(Some(options)).await {
            Ok(_) => Ok(()),
            Err(e) => match status_and_code(&e) {
                (Some(409 | 412), _) => Err(UploadError::Conflict),
                (Some(404), Some(code)) if code == "ContainerNotFound" => {
                    Err(UploadError::NoContainer)
                }
                _ => Err(UploadError::Other(self.write_error(name, &e))),
            },
        }
    }

    /// Appends `block` to an append blob as one Append Block (unconditional and atomic);
    /// the blob's committed block count afterwards (0 when the service does not say).
    async fn append_block(&self, name: &str, block: Bytes) -> Result<u32, AppendError> {
        let blob = self.client().map_err(AppendError::Other)?.blob_client(name);
        let length = block.len() as u64;
        match blob
            .append_blob_client()
            .append_block(block.into(), length, None)
            .await
        {
            Ok(response) => Ok(response
                .blob_committed_block_count()
                .ok()
                .flatten()
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(0)),
            Err(e) => match status_and_code(&e) {
                (Some(404), Some(code)) if code == "ContainerNotFound" => {
                    Err(AppendError::NoContainer)
                }
                (Some(404), _) => Err(AppendError::NoBlob),
                (Some(409), Some(code)) if code == "BlockCountExceedsLimit" => {
                    Err(AppendError::Full)
                }
                _ => Err(AppendError::Other(self.write_error(name, &e))),
            },
        }
    }

    /// Deletes a blob if its ETag is still `etag`: `false` when it changed (412); a blob
    /// that is already gone counts as deleted.
    async fn delete_if_match(&self, name: &str, etag: &Etag) -> Result<bool, StatusError> {
        self.delete(name, Some(etag)).await
    }

    /// Deletes a blob (only at `etag` when given); true when it is gone, false when it changed.
    async fn delete(&self, name: &str, etag: Option<&Etag>) -> Result<bool, StatusError> {
        let options = BlobClientDeleteOptions {
            if_match: etag.cloned(),
            ..Default::default()
        };
        match self.client()?.blob_client(name).delete(Some(options)).await {
            Ok(_) => Ok(true),
            Err(e) => match status_and_code(&e).0 {
                Some(404) => Ok(true),
                Some(412) => Ok(false),
                _ => Err(self.write_error(name, &e)),
            },
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

    /// Sends through `transport` (see [`BlobContainer::with_transport`]).
    pub fn with_transport(mut self, transport: Option<Transport>) -> Self {
        self.blobs = self.blobs.with_transport(transport);
        self
    }

    fn location(&self) -> String {
        self.blobs.location()
    }

    /// The name stem of a cluster's blobs: `clusters/{stem}.json` and `clusters/{stem}.log`.
    fn stem(cluster: &str) -> String {
        cluster_key(cluster).trim_start_matches('/').to_string()
    }

    fn snapshot_name(stem: &str) -> String {
        format!("{PREFIX}{stem}{SNAPSHOT_SUFFIX}")
    }

    fn log_name(stem: &str) -> String {
        format!("{PREFIX}{stem}{LOG_SUFFIX}")
    }

    /// Appends `record` to its cluster's log (one Append Block: no conditions, no retries on
    /// contention) and, when the log holds [`COMPACT_AT`] records or more, compacts it. A
    /// compaction that fails is logged and retried by the next append; it never loses the
    /// record, which is in the log already.
    ///
    /// # Errors
    /// The store failing to take the record.
    pub async fn update(&self, record: &StepRecord) -> Result<(), StatusError> {
        let stem = Self::stem(&record.subject);
        let mut line =
            serde_json::to_vec(&LogLine::from(record)).map_err(|e| StatusError::Write {
                store: self.location(),
                what: Self::log_name(&stem),
                message: e.to_string(),
            })?;
        line.push(b'\n');
        let blocks = self.append(&stem, Bytes::from(line)).await?;
        if blocks >= COMPACT_AT
            && let Err(e) = self.compact_stem(&stem, COMPACT_AT as usize).await
        {
            tracing::warn!(
                blob = %Self::log_name(&stem),
                "the status log was not compacted (the next record appended tries again): {e}"
            );
        }
        Ok(())
    }

    /// Appends one line to the log of `stem`, creating the log (and the container) when it
    /// is missing; the log's block count afterwards.
    async fn append(&self, stem: &str, line: Bytes) -> Result<u32, StatusError> {
        let name = Self::log_name(stem);
        for _ in 0..MAX_APPEND_ROUNDS {
            match self.blobs.append_block(&name, line.clone()).await {
                Ok(blocks) => return Ok(blocks),
                Err(AppendError::NoBlob) => self.create_log(&name).await?,
                Err(AppendError::NoContainer) => {
                    self.blobs.create().await?;
                    self.create_log(&name).await?;
                }
                Err(AppendError::Full) => {
                    self.compact_stem(stem, 1).await?;
                }
                Err(AppendError::Other(e)) => return Err(e),
            }
        }
        Err(StatusError::Write {
            store: self.location(),
            what: name,
            message: format!(
                "the log was removed or full at each of {MAX_APPEND_ROUNDS} attempts to append"
            ),
        })
    }

    /// Creates a log unless it exists (another writer's log is as good), and the container
    /// when it is missing.
    async fn create_log(&self, name: &str) -> Result<(), StatusError> {
        for _ in 0..2 {
            match self.blobs.create_append_blob(name, LOG_CONTENT_TYPE).await {
                Ok(()) | Err(UploadError::Conflict) => return Ok(()),
                Err(UploadError::NoContainer) => self.blobs.create().await?,
                Err(UploadError::Other(e)) => return Err(e),
            }
        }
        Err(StatusError::Write {
            store: self.location(),
            what: name.to_string(),
            message: "the container vanished right after it was created".into(),
        })
    }

    /// Folds a cluster's log into its snapshot now and removes the log, however short
    /// (appends compact on their own once a log holds [`COMPACT_AT`] records). `true` when
    /// the log was folded in and removed; `false` when there was nothing to fold, or records
    /// were appended meanwhile (they stay in the log: nothing is lost).
    ///
    /// # Errors
    /// The store failing.
    pub async fn compact(&self, cluster: &str) -> Result<bool, StatusError> {
        self.compact_stem(&Self::stem(cluster), 1).await
    }

    /// Compacts the log of `stem` if it holds at least `min_lines` lines: read the log (ETag
    /// `L`) and the snapshot, write the fold with the snapshot's ETag as condition, delete the
    /// log `If-Match: L`. Starts over when another compactor wrote the snapshot first; gives
    /// up (`false`) when the log changed. See the module docs for why nothing is lost.
    async fn compact_stem(&self, stem: &str, min_lines: usize) -> Result<bool, StatusError> {
        let (snapshot_name, log_name) = (Self::snapshot_name(stem), Self::log_name(stem));
        for _ in 0..COMPACT_ROUNDS {
            let Some(log) = self.read_log(&log_name).await? else {
                return Ok(false);
            };
            if log.lines == 0 || log.lines < min_lines {
                return Ok(false);
            }
            let (base, etag) = match self.blobs.read(&snapshot_name).await? {
                Some((bytes, etag)) => match serde_json::from_slice::<ClusterStatus>(&bytes) {
                    Ok(status) => (Some(status), Some(etag)),
                    Err(e) => {
                        tracing::warn!(
                            blob = %snapshot_name,
                            "the stored status is unreadable ({e}); the log's records replace it"
                        );
                        (None, Some(etag))
                    }
                },
                None => (None, None),
            };
            if log.unreadable > 0 {
                tracing::warn!(
                    blob = %log_name,
                    "{} line(s) of the status log are not step records this build reads; compaction drops them",
                    log.unreadable
                );
            }
            if let Some(status) = fold(base, &log.records, self.history_limit) {
                let body = serde_json::to_vec(&status).map_err(|e| StatusError::Write {
                    store: self.location(),
                    what: snapshot_name.clone(),
                    message: e.to_string(),
                })?;
                match self
                    .blobs
                    .upload(&snapshot_name, body, "application/json", Some(etag))
                    .await
                {
                    Ok(()) => {}
                    // Another compactor wrote first: fold again onto what it wrote.
                    Err(UploadError::Conflict) => continue,
                    // The container went, and the log with it.
                    Err(UploadError::NoContainer) => return Ok(false),
                    Err(UploadError::Other(e)) => return Err(e),
                }
            }
            return self.blobs.delete_if_match(&log_name, &log.etag).await;
        }
        Ok(false)
    }

    /// A cluster's log: its step records, how many lines it has (and how many of them could
    /// not be read), and its ETag.
    async fn read_log(&self, name: &str) -> Result<Option<Log>, StatusError> {
        let Some((bytes, etag)) = self.blobs.read(name).await? else {
            return Ok(None);
        };
        let mut log = Log {
            records: Vec::new(),
            lines: 0,
            unreadable: 0,
            etag,
        };
        for line in bytes.split(|b| *b == b'\n') {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            log.lines += 1;
            match serde_json::from_slice::<LogLine>(line) {
                Ok(line) => log.records.push(line.into_record()),
                Err(_) => log.unreadable += 1,
            }
        }
        Ok(Some(log))
    }

    /// A cluster's snapshot; a placeholder that says so when it cannot be read.
    async fn read_snapshot(&self, stem: &str) -> Result<Option<ClusterStatus>, StatusError> {
        let Some((bytes, _)) = self.blobs.read(&Self::snapshot_name(stem)).await? else {
            return Ok(None);
        };
        Ok(Some(serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            unreadable(stem, &format!("the stored document is not valid status JSON ({e}); it is rewritten when the cluster's status log is next compacted"))
        })))
    }

    /// One cluster's status: its log, **then** its snapshot (in this order, so a compaction
    /// between the two reads cannot hide a record), the log applied onto the snapshot.
    async fn read_cluster(&self, stem: &str) -> Result<Option<ClusterStatus>, StatusError> {
        let log = self.read_log(&Self::log_name(stem)).await?;
        let snapshot = self.read_snapshot(stem).await?;
        let (records, unreadable_lines) =
            log.map_or((Vec::new(), 0), |l| (l.records, l.unreadable));
        Ok(fold(snapshot, &records, self.history_limit).or_else(|| {
            (unreadable_lines > 0).then(|| {
                unreadable(
                    stem,
                    "the cluster's status log holds no step record this build reads",
                )
            })
        }))
    }

    /// The name stems of every cluster with a snapshot, a log or both.
    async fn list_stems(&self) -> Result<BTreeSet<String>, StatusError> {
        let names = self.blobs.list(PREFIX, "the cluster list").await?;
        Ok(names
            .iter()
            .filter_map(|name| {
                let rest = name.strip_prefix(PREFIX)?;
                rest.strip_suffix(SNAPSHOT_SUFFIX)
                    .or_else(|| rest.strip_suffix(LOG_SUFFIX))
                    .map(str::to_string)
            })
            .collect())
    }
}

/// A cluster's log as read.
struct Log {
    records: Vec<StepRecord>,
    lines: usize,
    unreadable: usize,
    etag: Etag,
}

/// `records` applied onto `base` (or onto a new status when there is none); `None` when there
/// is neither.
fn fold(
    base: Option<ClusterStatus>,
    records: &[StepRecord],
    history_limit: usize,
) -> Option<ClusterStatus> {
    let mut status = base.or_else(|| records.first().map(|r| ClusterStatus::new(&r.subject)))?;
    for record in records {
        status.apply(record, history_limit);
    }
    Some(status)
}

/// One line of a cluster's log: a [`StepRecord`] whose texts are scrubbed of secrets as the
/// status scrubs them (a failure's problem and fix apart, split before scrubbing).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogLine {
    workflow_id: String,
    kind: WorkflowKind,
    subject: String,
    step: String,
    attempt: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    hop: u32,
    #[serde(with = "time::serde::rfc3339")]
    started_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    finished_at: OffsetDateTime,
    #[serde(flatten)]
    transition: LoggedTransition,
    #[serde(default, skip_serializing_if = "Measures::is_empty")]
    measures: Measures,
}

/// A [`Transition`] as logged, tagged by the outcome names the status and spans use.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "camelCase")]
enum LoggedTransition {
    Advanced {
        next: String,
        fact: String,
    },
    Retrying {
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
        why: String,
    },
    Done {
        summary: String,
    },
    Failed {
        reason: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fix: Option<String>,
    },
    Skipped {
        reason: String,
    },
    Found {
        what: String,
    },
}

impl From<&StepRecord> for LogLine {
    fn from(record: &StepRecord) -> Self {
        let transition = match &record.transition {
            Transition::Advanced { next, fact } => LoggedTransition::Advanced {
                next: next.clone(),
                fact: redact::secrets(fact),
            },
            Transition::Retrying { at, why } => LoggedTransition::Retrying {
                at: *at,
                why: redact::secrets(why),
            },
            Transition::Done { summary } => LoggedTransition::Done {
                summary: redact::secrets(summary),
            },
            // Split before scrubbing: a redacted value may swallow the full stop before "Fix:".
            Transition::Failed { reason } => match fix::split(reason) {
                (problem, Some(fix)) => LoggedTransition::Failed {
                    reason: redact::secrets(problem),
                    fix: Some(redact::secrets(fix)),
                },
                (_, None) => LoggedTransition::Failed {
                    reason: redact::secrets(reason),
                    fix: None,
                },
            },
            Transition::Skipped { reason } => LoggedTransition::Skipped {
                reason: redact::secrets(reason),
            },
            Transition::Found { what } => LoggedTransition::Found {
                what: redact::secrets(what),
            },
        };
        Self {
            workflow_id: record.workflow_id.clone(),
            kind: record.kind,
            subject: record.subject.clone(),
            step: record.step.clone(),
            attempt: record.attempt,
            hop: record.hop,
            started_at: record.started_at,
            finished_at: record.finished_at,
            transition,
            measures: record.measures.clone(),
        }
    }
}

impl LogLine {
    fn into_record(self) -> StepRecord {
        let transition = match self.transition {
            LoggedTransition::Advanced { next, fact } => Transition::Advanced { next, fact },
            LoggedTransition::Retrying { at, why } => Transition::Retrying { at, why },
            LoggedTransition::Done { summary } => Transition::Done { summary },
            LoggedTransition::Failed {
                reason,
                fix: Some(fix),
            } => Transition::Failed {
                reason: fix::compose(&reason, &fix),
            },
            LoggedTransition::Failed { reason, fix: None } => Transition::Failed { reason },
            LoggedTransition::Skipped { reason } => Transition::Skipped { reason },
            LoggedTransition::Found { what } => Transition::Found { what },
        };
        StepRecord {
            workflow_id: self.workflow_id,
            kind: self.kind,
            subject: self.subject,
            step: self.step,
            attempt: self.attempt,
            hop: self.hop,
            started_at: self.started_at,
            finished_at: self.finished_at,
            transition,
            measures: self.measures,
        }
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[async_trait]
impl StatusStore for BlobJournal {
    async fn try_record(&self, record: StepRecord) -> Result<(), StatusError> {
        self.update(&record).await
    }

    async fn claim(
        &self,
        key: &str,
        at: OffsetDateTime,
        holder: &str,
    ) -> Result<Claim, StatusError> {
        let name = format!("{CLAIMS_PREFIX}{}", key.trim_start_matches('/'));
        // Line 1: when; line 2: who (claims written before holders existed have one line).
        let body = format!("{}\n{holder}", crate::clock::rfc3339(at)).into_bytes();
        for _ in 0..2 {
            match self
                .blobs
                .upload(&name, body.clone(), "text/plain", Some(None))
                .await
            {
                Ok(()) => return Ok(Claim::Won),
                Err(UploadError::NoContainer) => self.blobs.create().await?,
                Err(UploadError::Conflict) => {
                    let text = self
                        .blobs
                        .read(&name)
                        .await?
                        .map(|(bytes, _)| String::from_utf8_lossy(&bytes).to_string())
                        .unwrap_or_default();
                    let mut lines = text.lines();
                    let since = lines
                        .next()
                        .and_then(|t| {
                            OffsetDateTime::parse(
                                t.trim(),
                                &time::format_description::well_known::Rfc3339,
                            )
                            .ok()
                        })
                        .unwrap_or(at);
                    let holder = lines.next().unwrap_or_default().trim().to_string();
                    return Ok(Claim::Held { since, holder });
                }
                Err(UploadError::Other(e)) => return Err(e),
            }
        }
        Err(StatusError::Write {
            store: self.location(),
            what: name,
            message: "the container vanished right after it was created".into(),
        })
    }

    async fn release(&self, key: &str) -> Result<(), StatusError> {
        let name = format!("{CLAIMS_PREFIX}{}", key.trim_start_matches('/'));
        self.blobs.delete(&name, None).await.map(|_| ())
    }

    fn store(&self) -> StoreInfo {
        StoreInfo {
            kind: "blob",
            location: self.location(),
            note: None,
        }
    }

    async fn cluster_status(&self, cluster: &str) -> Result<Option<ClusterStatus>, StatusError> {
        self.read_cluster(&Self::stem(cluster)).await
    }

    async fn fleet_status(&self) -> Result<Vec<ClusterStatus>, StatusError> {
        let stems = self.list_stems().await?;
        let mut clusters: Vec<ClusterStatus> = futures::stream::iter(stems)
            .map(|stem| async move { self.read_cluster(&stem).await })
            .buffer_unordered(READ_CONCURRENCY)
            .try_filter_map(|status| async move { Ok(status) })
            .try_collect()
            .await?;
        clusters.sort_by_key(|c| cluster_key(&c.cluster));
        Ok(clusters)
    }
}

/// A placeholder for a cluster whose status cannot be read, so the fleet view shows it.
fn unreadable(stem: &str, why: &str) -> ClusterStatus {
    let mut status = ClusterStatus::new(&format!("/{stem}"));
    status.phase = Phase::Unknown;
    status.last_error = Some(super::LastError {
        workflow_id: String::new(),
        kind: WorkflowKind::Onboard,
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

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const CLUSTER: &str = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/aks-1";

    fn record(kind: WorkflowKind, step: &str, minute: i64, transition: Transition) -> StepRecord {
        let started_at = datetime!(2026-03-01 12:00 UTC) + time::Duration::minutes(minute);
        StepRecord {
            workflow_id: format!("wf-{}", kind.as_str()),
            kind,
            subject: CLUSTER.into(),
            step: step.into(),
            attempt: 1,
            hop: u32::try_from(minute).unwrap(),
            started_at,
            finished_at: started_at + time::Duration::milliseconds(1500),
            transition,
            measures: Default::default(),
        }
    }

    fn through_the_log(record: &StepRecord) -> (String, StepRecord) {
        let line = serde_json::to_string(&LogLine::from(record)).unwrap();
        let back = serde_json::from_str::<LogLine>(&line)
            .unwrap()
            .into_record();
        (line, back)
    }

    #[test]
    fn a_log_line_keeps_no_secret_and_folds_like_the_record() {
        let records = [
            record(
                WorkflowKind::Onboard,
                "ensure_vault",
                0,
                Transition::Advanced {
                    next: "assign_roles".into(),
                    fact: "VaultReady".into(),
                },
            ),
            record(
                WorkflowKind::Onboard,
                "assign_roles",
                1,
                Transition::Retrying {
                    at: datetime!(2026-03-01 12:05 UTC),
                    why: "ARM answered 429 to Authorization: Bearer TOKENVALUE".into(),
                },
            ),
            record(
                WorkflowKind::Onboard,
                "assign_roles",
                2,
                Transition::Failed {
                    reason: fix::compose(
                        "GET https://a/b?sig=SECRETSIG failed (403)",
                        "grant the identity Owner on rg",
                    ),
                },
            ),
            record(
                WorkflowKind::Drill,
                "restore",
                3,
                Transition::Done {
                    summary: "restored 3 namespaces; code=FUNCTIONKEY".into(),
                },
            ),
            record(
                WorkflowKind::Drill,
                "schedule",
                4,
                Transition::Skipped {
                    reason: "not drillable yet: no recovery point".into(),
                },
            ),
        ];
        let (mut direct, mut logged) = (ClusterStatus::new(CLUSTER), ClusterStatus::new(CLUSTER));
        for r in &records {
            let (line, back) = through_the_log(r);
            for secret in ["TOKENVALUE", "SECRETSIG", "FUNCTIONKEY"] {
                assert!(!line.contains(secret), "{line}");
            }
            assert!(!line.contains('\n'), "one record, one line");
            direct.apply(r, 10);
            logged.apply(&back, 10);
        }
        assert_eq!(logged, direct, "the status reads the same from the log");
        let line: serde_json::Value =
            serde_json::from_str(&through_the_log(&records[2]).0).unwrap();
        assert_eq!(
            (&line["outcome"], &line["fix"]),
            (
                &serde_json::json!("failed"),
                &serde_json::json!("grant the identity Owner on rg")
            )
        );
    }

    #[test]
    fn a_failure_keeps_its_fix_when_a_secret_swallows_the_full_stop() {
        let failed = record(
            WorkflowKind::Onboard,
            "assign_roles",
            0,
            Transition::Failed {
                reason: "denied for https://x?sig=SECRETSIG. Fix: grant the role".into(),
            },
        );
        let (line, back) = through_the_log(&failed);
        assert!(!line.contains("SECRETSIG"), "{line}");
        let (mut direct, mut logged) = (ClusterStatus::new(CLUSTER), ClusterStatus::new(CLUSTER));
        direct.apply(&failed, 10);
        logged.apply(&back, 10);
        assert_eq!(logged.last_error, direct.last_error);
        assert_eq!(
            logged.last_error.unwrap().fix.as_deref(),
            Some("grant the role")
        );
    }

    #[test]
    fn fold_applies_the_log_onto_the_snapshot_and_tolerates_repeats() {
        let a = record(
            WorkflowKind::Onboard,
            "a",
            0,
            Transition::Advanced {
                next: "b".into(),
                fact: "A".into(),
            },
        );
        let b = record(
            WorkflowKind::Onboard,
            "b",
            1,
            Transition::Done {
                summary: "protected".into(),
            },
        );
        assert!(fold(None, &[], 10).is_none());
        let snapshot = fold(None, std::slice::from_ref(&a), 10).unwrap();
        // `a` is in the snapshot and still in the log (a lost delete race), `b` came later.
        let read = fold(Some(snapshot), &[a.clone(), b.clone(), b.clone()], 10).unwrap();
        assert_eq!(read, fold(None, &[b, a], 10).unwrap());
        assert_eq!(read.history.len(), 2);
        assert_eq!(read.phase, Phase::Protected);
    }
}

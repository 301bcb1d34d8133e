//! The ARM client: one reqwest client, a configurable base URL and token scope, a token from
//! `azure_identity` on every try, a per-call request id, and the one retry policy. Inside a
//! call it retries only quick transient failures within a small budget; a longer wait is
//! returned to the step (which becomes a scheduled retry). It honours `Retry-After` and holds
//! back calls when `x-ms-ratelimit-remaining-*` says the subscription's quota is spent. A
//! server's delay is real time; on a scaled clock (`BACKUP_PILOT_TIME_SCALE`, local runs) it
//! becomes that clock's time ([`Clock::virtual_duration`]).
//!
//! Every call is bounded by [`ArmOptions::call_timeout`] ([`ARM_CALL_TIMEOUT`] by default),
//! in real time, with its token requests ([`crate::auth::TOKEN_TIMEOUT`] each) and in-call
//! retries included: an ARM or token endpoint that is down fails the call as
//! [`ArmError::Timeout`] (transient) instead of holding the invocation and its message lock.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use azure_core::credentials::TokenCredential;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, USER_AGENT};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use time::OffsetDateTime;
use url::Url;

use super::error::{ArmError, ArmFault, is_transient_status};
use super::held_line::{HeldLine, current_precedence};
use super::lro::{
    FinalState, LroHeaders, OperationKind, OperationStatus, PendingOperation,
    async_operation_status, pending_from_response, provisioning_status,
};
use super::provider_throttle::ProviderThrottle;
use super::quota_gauge::QuotaGauge;
use super::settled::SettledReads;
use crate::clock::Clock;
use crate::telemetry::http::{HttpCall, Peer};
use tracing::Instrument as _;

/// The only `Accept` value the client sends. Data Protection answers 406 with no body to the
/// `IEEE754Compatible` variant some SDKs send (terraform-provider-azurerm#26911).
pub const ACCEPT_JSON: &str = "application/json";

/// The default bound on one ARM call, retries and token requests included: well inside the
/// engine's step budget (`engine::STEP_BUDGET`, 40 s).
pub const ARM_CALL_TIMEOUT: Duration = Duration::from_secs(25);

/// How many times a pause on a spent bucket may double: 2 s up to about a minute.
const MAX_PAUSE_DOUBLINGS: u32 = 5;

/// ARM's documented refill of a subscription's read bucket per principal, tokens a second.
pub const READ_REFILL_PER_SECOND: f64 = 25.0;
/// ARM's documented refill of the write and delete buckets, tokens a second.
pub const WRITE_REFILL_PER_SECOND: f64 = 10.0;
/// ARM's documented size of the write and delete buckets, tokens.
pub const WRITE_BUCKET: f64 = 200.0;

/// How long a settled read is reused by default: five minutes of the client's clock.
pub const SETTLED_READ_TTL: Duration = Duration::from_secs(5 * 60);

/// Retries of quick transient failures inside one call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuickRetry {
    /// Retries after the first try.
    pub retries: u32,
    /// Delay before the first retry when the server gives none; doubles per retry.
    pub initial: Duration,
    /// The longest wait spent inside a call; a longer `Retry-After` goes back to the step.
    pub max_wait: Duration,
}

impl Default for QuickRetry {
    fn default() -> Self {
        Self {
            retries: 2,
            initial: Duration::from_millis(500),
            max_wait: Duration::from_secs(5),
        }
    }
}

/// How the client is set up.
#[derive(Debug, Clone, PartialEq)]
pub struct ArmOptions {
    /// Base URL, e.g. `https://management.azure.com`.
    pub base_url: String,
    /// Token scope, e.g. [`crate::auth::ARM_SCOPE`].
    pub scope: String,
    /// In-call retries.
    pub quick_retry: QuickRetry,
    /// Polling interval for operations whose response gives no `Retry-After`.
    pub default_poll: Duration,
    /// When `x-ms-ratelimit-remaining-*` falls to this many, further calls of that kind on that
    /// subscription are held back for [`ArmOptions::rate_limit_pause`].
    pub rate_limit_reserve: u64,
    /// How long to hold back calls once the quota is nearly spent: 2 s by default, time for
    /// ARM's token buckets to refill 50 reads or 20 writes (25 and 10 a second), so the
    /// fleet's requests trickle at the refill rate instead of idling a full bucket's worth.
    pub rate_limit_pause: Duration,
    /// The longest one call may take, in real time, retries and token requests included.
    pub call_timeout: Duration,
    /// How long a settled read is reused ([`ArmClient::get_settled`]); zero reads every time.
    pub settled_read_ttl: Duration,
    /// Write tokens a subscription's bucket keeps for writes that cannot wait: a write that
    /// can ([`ArmClient::room_to_write_in_background`]) goes only while more are left.
    pub background_reserve: u64,
}

impl Default for ArmOptions {
    fn default() -> Self {
        Self {
            base_url: "https://management.azure.com".into(),
            scope: crate::auth::ARM_SCOPE.into(),
            quick_retry: QuickRetry::default(),
            default_poll: Duration::from_secs(20),
            rate_limit_reserve: 5,
            rate_limit_pause: Duration::from_secs(2),
            call_timeout: ARM_CALL_TIMEOUT,
            settled_read_ttl: SETTLED_READ_TTL,
            background_reserve: 100,
        }
    }
}

/// A successful ARM answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ArmResponse {
    /// HTTP status.
    pub status: u16,
    /// The JSON body, if there was one.
    pub body: Option<Value>,
    /// Long-running-operation headers.
    pub lro: LroHeaders,
    /// The request URL (with `api-version`), for provisioning-state polling.
    pub url: String,
}

impl ArmResponse {
    /// The operation this response started, if it is still running.
    pub fn pending(
        &self,
        label: &str,
        final_state: FinalState,
        default_poll: Duration,
    ) -> Option<PendingOperation> {
        pending_from_response(
            label,
            self.status,
            &self.lro,
            self.body.as_ref(),
            final_state,
            Some(&self.url),
            default_poll,
        )
    }

    /// The body, or JSON null.
    pub fn json(&self) -> &Value {
        self.body.as_ref().unwrap_or(&Value::Null)
    }

    /// True for a DELETE of something already gone.
    pub fn was_absent(&self) -> bool {
        self.status == 404
    }
}

/// One poll's verdict.
#[derive(Debug, Clone, PartialEq)]
pub enum Polled {
    /// Still running; poll again after this long.
    InProgress {
        /// The server's suggested delay.
        retry_after: Duration,
    },
    /// Done; the final body where the operation has one.
    Succeeded {
        /// The final result (Location result, resource, or status body).
        body: Option<Value>,
    },
}

/// The client. Cheap to share behind an `Arc`.
pub struct ArmClient {
    http: reqwest::Client,
    base: Url,
    credential: Arc<dyn TokenCredential>,
    clock: Arc<dyn Clock>,
    options: ArmOptions,
    held_until: Mutex<HashMap<String, OffsetDateTime>>,
    /// How many times each subscription bucket's pause has doubled (see `observe_rate_limits`).
    pauses: Mutex<HashMap<String, u32>>,
    /// Requests held back per subscription bucket, draining at its refill rate (see
    /// `paced_wait`).
    held_line: HeldLine,
    /// What each subscription bucket last reported left.
    gauge: QuotaGauge,
    settled: SettledReads,
    provider_throttle: ProviderThrottle,
}

impl std::fmt::Debug for ArmClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArmClient")
            .field("base", &self.base.as_str())
            .field("scope", &self.options.scope)
            .finish_non_exhaustive()
    }
}

impl ArmClient {
    /// A client for `options.base_url`.
    ///
    /// # Errors
    /// A base URL that is not an http(s) URL.
    pub fn new(
        http: reqwest::Client,
        options: ArmOptions,
        credential: Arc<dyn TokenCredential>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, ArmError> {
        let base = Url::parse(options.base_url.trim_end_matches('/')).map_err(|e| {
            ArmError::InvalidPath {
                path: options.base_url.clone(),
                message: e.to_string(),
            }
        })?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(ArmError::InvalidPath {
                path: options.base_url.clone(),
                message: "the ARM base URL must be http(s)".into(),
            });
        }
        Ok(Self {
            http,
            base,
            credential,
            clock,
            options,
            held_until: Mutex::new(HashMap::new()),
            held_line: HeldLine::default(),
            pauses: Mutex::new(HashMap::new()),
            gauge: QuotaGauge::default(),
            settled: SettledReads::default(),
            provider_throttle: ProviderThrottle::default(),
        })
    }

    /// A client that refuses every call: no credential and no endpoint, for contexts that
    /// never reach Azure (the default contexts of tests and benchmarks).
    pub fn unconfigured(clock: Arc<dyn Clock>) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: Url::parse("http://127.0.0.1:9").unwrap_or_else(|_| unreachable!()),
            credential: Arc::new(Unconfigured),
            clock,
            options: ArmOptions::default(),
            held_until: Mutex::new(HashMap::new()),
            held_line: HeldLine::default(),
            pauses: Mutex::new(HashMap::new()),
            gauge: QuotaGauge::default(),
            settled: SettledReads::default(),
            provider_throttle: ProviderThrottle::default(),
        }
    }

    /// The options the client runs with.
    pub fn options(&self) -> &ArmOptions {
        &self.options
    }

    /// The polling interval used when a response gives none.
    pub fn default_poll(&self) -> Duration {
        self.options.default_poll
    }

    /// The absolute URL of `path` (which starts with `/`, may carry a query) at `api_version`.
    ///
    /// # Errors
    /// A path that does not make a URL.
    pub fn url(&self, path: &str, api_version: &str) -> Result<Url, ArmError> {
        let base = self.base.as_str().trim_end_matches('/');
        let mut url = Url::parse(&format!("{base}{path}")).map_err(|e| ArmError::InvalidPath {
            path: path.to_string(),
            message: e.to_string(),
        })?;
        url.query_pairs_mut()
            .append_pair("api-version", api_version);
        Ok(url)
    }

    /// GET a resource.
    ///
    /// # Errors
    /// Any failure, including 404 (see [`ArmClient::get_optional`]).
    pub async fn get(&self, path: &str, api_version: &str) -> Result<Value, ArmError> {
        let url = self.url(path, api_version)?;
        let resp = self.send(Method::GET, url, None).await?;
        Ok(resp.body.unwrap_or(Value::Null))
    }

    /// GET a resource that may not exist: 404 is `None`.
    ///
    /// # Errors
    /// Any failure other than 404.
    pub async fn get_optional(
        &self,
        path: &str,
        api_version: &str,
    ) -> Result<Option<Value>, ArmError> {
        match self.get(path, api_version).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// GET a resource that may not exist (404 is `None`), reusing a body this client read
    /// less than [`ArmOptions::settled_read_ttl`] ago when `settled` judged it settled (see
    /// [`super::settled`]). For shared resources many clusters' workflows read.
    ///
    /// # Errors
    /// Any failure other than 404.
    pub async fn get_settled(
        &self,
        path: &str,
        api_version: &str,
        settled: impl Fn(&Value) -> bool,
    ) -> Result<Option<Value>, ArmError> {
        let ttl = self.options.settled_read_ttl;
        if let Some(body) = self.settled.get(path, api_version, self.clock.now(), ttl) {
            return Ok(Some(body));
        }
        self.get_fresh(path, api_version, settled).await
    }

    /// GET a resource that may not exist (404 is `None`), always from ARM, keeping it for
    /// [`ArmClient::get_settled`] when `settled` judges it settled: a step that must see the
    /// resource as it is now hands its read on to the steps after it.
    ///
    /// # Errors
    /// Any failure other than 404.
    pub async fn get_fresh(
        &self,
        path: &str,
        api_version: &str,
        settled: impl Fn(&Value) -> bool,
    ) -> Result<Option<Value>, ArmError> {
        let ttl = self.options.settled_read_ttl;
        let body = self.get_optional(path, api_version).await?;
        if body.is_some() {
            self.settled.seen(path);
        }
        if let Some(b) = &body
            && !ttl.is_zero()
            && settled(b)
        {
            self.settled
                .put(path, api_version, self.clock.now(), b.clone(), ttl);
        }
        Ok(body)
    }

    /// Notes that this instance is creating the shared resource at `path` and expects it
    /// within `window` (see [`super::settled`]); [`ArmClient::being_created`] tells others.
    pub fn note_creating(&self, path: &str, window: Duration) {
        if let Some(until) = time::Duration::try_from(window)
            .ok()
            .and_then(|w| self.clock.now().checked_add(w))
        {
            self.settled.note_creating(path, until);
        }
    }

    /// How long the resource at `path` is still expected from a create this instance sent,
    /// if it is being created.
    pub fn being_created(&self, path: &str) -> Option<Duration> {
        self.settled.creating_for(path, self.clock.now())
    }

    /// GET a collection, following `nextLink`; returns every `value` item.
    ///
    /// # Errors
    /// Any failure; a 404 of the parent is returned as is.
    pub async fn list(
        &self,
        path: &str,
        api_version: &str,
        query: &[(&str, &str)],
    ) -> Result<Vec<Value>, ArmError> {
        let mut url = self.url(path, api_version)?;
        for (k, v) in query {
            url.query_pairs_mut().append_pair(k, v);
        }
        let mut items = Vec::new();
        // A page limit guards against a server that links a page to itself.
        for _ in 0..1000 {
            let resp = self.send(Method::GET, url, None).await?;
            let body = resp.body.unwrap_or(Value::Null);
            if let Some(values) = body.get("value").and_then(Value::as_array) {
                items.extend(values.iter().cloned());
            }
            match body.get("nextLink").and_then(Value::as_str) {
                Some(next) if !next.is_empty() => url = self.trusted(next)?,
                _ => return Ok(items),
            }
        }
        Ok(items)
    }

    /// PUT a resource.
    ///
    /// # Errors
    /// Any failure.
    pub async fn put(
        &self,
        path: &str,
        api_version: &str,
        body: &Value,
    ) -> Result<ArmResponse, ArmError> {
        let url = self.url(path, api_version)?;
        self.send(Method::PUT, url, Some(body)).await
    }

    /// PATCH a resource.
    ///
    /// # Errors
    /// Any failure.
    pub async fn patch(
        &self,
        path: &str,
        api_version: &str,
        body: &Value,
    ) -> Result<ArmResponse, ArmError> {
        let url = self.url(path, api_version)?;
        self.send(Method::PATCH, url, Some(body)).await
    }

    /// POST an action.
    ///
    /// # Errors
    /// Any failure.
    pub async fn post(
        &self,
        path: &str,
        api_version: &str,
        body: Option<&Value>,
    ) -> Result<ArmResponse, ArmError> {
        let url = self.url(path, api_version)?;
        self.send(Method::POST, url, body).await
    }

    /// DELETE a resource; a 404 counts as done (`was_absent()`).
    ///
    /// # Errors
    /// Any failure other than 404.
    pub async fn delete(&self, path: &str, api_version: &str) -> Result<ArmResponse, ArmError> {
        let url = self.url(path, api_version)?;
        let shown = url.to_string();
        match self.send(Method::DELETE, url, None).await {
            Err(e) if e.status() == Some(404) => Ok(ArmResponse {
                status: 404,
                body: None,
                lro: LroHeaders::default(),
                url: shown,
            }),
            other => other,
        }
    }

    /// Polls an operation once.
    ///
    /// # Errors
    /// [`ArmError::OperationFailed`] when it ended `Failed`/`Canceled` (or its Location URL
    /// answered a non-transient error); other errors when the poll itself failed.
    pub async fn poll(&self, op: &PendingOperation) -> Result<Polled, ArmError> {
        let url = self.trusted(&op.url)?;
        let default_wait = op.retry_after();
        match op.kind {
            OperationKind::AzureAsyncOperation => {
                let resp = self.send(Method::GET, url, None).await?;
                let wait = resp.lro.retry_after.unwrap_or(default_wait);
                let body = resp.body.unwrap_or(Value::Null);
                match async_operation_status(&body) {
                    OperationStatus::InProgress => Ok(Polled::InProgress { retry_after: wait }),
                    OperationStatus::Failed { code, message, .. } => {
                        Err(operation_failed(&op.label, code, message))
                    }
                    OperationStatus::Succeeded => match &op.result_url {
                        Some(result) => self.read_location(result, default_wait).await,
                        None => Ok(Polled::Succeeded { body: Some(body) }),
                    },
                }
            }
            OperationKind::Location => self.read_location(&op.url, default_wait).await,
            OperationKind::ProvisioningState => {
                let resp = self.send(Method::GET, url, None).await?;
                let body = resp.body.unwrap_or(Value::Null);
                match provisioning_status(&body) {
                    OperationStatus::InProgress => Ok(Polled::InProgress {
                        retry_after: resp.lro.retry_after.unwrap_or(default_wait),
                    }),
                    OperationStatus::Succeeded => Ok(Polled::Succeeded { body: Some(body) }),
                    OperationStatus::Failed { code, message, .. } => {
                        Err(operation_failed(&op.label, code, message))
                    }
                }
            }
        }
    }

    async fn read_location(&self, raw: &str, default_wait: Duration) -> Result<Polled, ArmError> {
        let url = self.trusted(raw)?;
        match self.send(Method::GET, url, None).await {
            Ok(resp) if resp.status == 202 => Ok(Polled::InProgress {
                retry_after: resp.lro.retry_after.unwrap_or(default_wait),
            }),
            Ok(resp) => Ok(Polled::Succeeded { body: resp.body }),
            // A Location URL answers the operation's own error once it failed.
            Err(ArmError::Rejected(fault)) if !is_transient_status(fault.status) => {
                Err(ArmError::OperationFailed(fault))
            }
            Err(e) => Err(e),
        }
    }

    /// Parses an absolute URL from a response and checks it points at the ARM host, so the
    /// token never leaves for another host. Relative URLs are resolved against the base.
    fn trusted(&self, raw: &str) -> Result<Url, ArmError> {
        let url = match Url::parse(raw) {
            Ok(u) => u,
            Err(url::ParseError::RelativeUrlWithoutBase) => {
                self.base.join(raw).map_err(|e| ArmError::InvalidPath {
                    path: raw.to_string(),
                    message: e.to_string(),
                })?
            }
            Err(e) => {
                return Err(ArmError::InvalidPath {
                    path: raw.to_string(),
                    message: e.to_string(),
                });
            }
        };
        let same = url.scheme() == self.base.scheme()
            && url.host_str().map(str::to_ascii_lowercase)
                == self.base.host_str().map(str::to_ascii_lowercase)
            && url.port_or_known_default() == self.base.port_or_known_default();
        if same {
            Ok(url)
        } else {
            Err(ArmError::UntrustedPollingUrl {
                url: strip_query(&url),
                arm_host: self.base.host_str().unwrap_or_default().to_string(),
            })
        }
    }

    /// Sends one request with the quick-retry policy, within [`ArmOptions::call_timeout`].
    async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
    ) -> Result<ArmResponse, ArmError> {
        let limit = self.options.call_timeout;
        let request = format!("{method} {}", url.path());
        if method != Method::GET {
            self.settled.forget(url.path());
        }
        match tokio::time::timeout(limit, self.send_with_retries(method, url, body)).await {
            Ok(result) => result,
            Err(_) => {
                tracing::warn!(%request, "ARM call gave up after {}s", limit.as_secs_f64());
                Err(ArmError::Timeout {
                    request,
                    after: limit,
                })
            }
        }
    }

    async fn send_with_retries(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
    ) -> Result<ArmResponse, ArmError> {
        let request = format!("{method} {}", url.path());
        let gate_key = gate_key(&method, url.path());
        let operation_key = operation_key(&method, url.path());
        let request_key = format!("{operation_key}:{}", url.path().to_ascii_lowercase());
        let client_request_id = uuid::Uuid::new_v4().to_string();
        let mut attempt = 0u32;
        loop {
            if let Some(held) = self.held_answer(&method, url.path(), &request) {
                return Err(held);
            }
            let result = self
                .try_once(&method, &url, body, &request, &client_request_id)
                .await;
            if let Err(err) = &result
                && let Some(wait) = err.retry_after().filter(|_| err.status() == Some(429))
            {
                // ARM's own throttling holds back the subscription's requests of this kind; a
                // resource provider's 429 holds back only the operation it throttled: the
                // request it answered, and the operation type on every resource once the
                // provider answers that type mostly with 429s (see `provider_throttle`).
                // A POST is an action whose request is also its body (many clusters validate
                // against one vault): its lone 429 holds back only its own retry.
                if is_arm_throttling(err) {
                    self.hold(&gate_key, wait);
                } else if method != Method::POST {
                    self.hold(&request_key, wait);
                }
            }
            if !matches!(&result, Err(err) if is_arm_throttling(err)) {
                let provider_429 = matches!(&result, Err(err) if err.status() == Some(429));
                if self
                    .provider_throttle
                    .answered(&operation_key, provider_429, self.clock.now())
                {
                    let wait = result
                        .as_ref()
                        .err()
                        .and_then(ArmError::retry_after)
                        .unwrap_or(self.options.rate_limit_pause);
                    self.hold(&operation_key, wait);
                }
            }
            match result {
                Err(err) if err.is_transient() && attempt < self.options.quick_retry.retries => {
                    let delay = err.retry_after().unwrap_or_else(|| {
                        self.options.quick_retry.initial * 2u32.saturating_pow(attempt)
                    });
                    if delay > self.options.quick_retry.max_wait {
                        return Err(err);
                    }
                    tracing::debug!(%request, attempt, "transient ARM failure, retrying: {err}");
                    tokio::time::sleep(self.clock.real_duration(delay)).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn try_once(
        &self,
        method: &Method,
        url: &Url,
        body: Option<&Value>,
        request: &str,
        client_request_id: &str,
    ) -> Result<ArmResponse, ArmError> {
        let token = crate::auth::bearer(self.credential.as_ref(), &self.options.scope).await?;
        let mut req = self
            .http
            .request(method.clone(), url.clone())
            .header(AUTHORIZATION, token.header_value())
            .header(ACCEPT, ACCEPT_JSON)
            .header(
                USER_AGENT,
                concat!("backup-pilot/", env!("CARGO_PKG_VERSION")),
            )
            .header("x-ms-client-request-id", client_request_id)
            .header("x-ms-return-client-request-id", "true");
        if let Some(b) = body {
            req = req
                .header(CONTENT_TYPE, "application/json")
                .body(serde_json::to_vec(b).unwrap_or_default());
        } else if *method == Method::POST {
            req = req.header(reqwest::header::CONTENT_LENGTH, "0");
        }
        let call = HttpCall::start(Peer::Arm, method.as_str(), url);
        for (name, value) in call.trace_headers() {
            req = req.header(name, value);
        }
        let span = call.span().clone();
        let resp = match req.send().instrument(span.clone()).await {
            Ok(r) => r,
            Err(e) => {
                call.fail(transport_error_type(&e));
                return Err(ArmError::Send {
                    request: request.to_string(),
                    message: describe_transport(&e),
                });
            }
        };
        let status = resp.status();
        let headers = resp.headers().clone();
        self.observe_rate_limits(&headers, url.path(), method);
        let bytes = match resp.bytes().instrument(span).await {
            Ok(b) => b,
            Err(e) => {
                call.fail(transport_error_type(&e));
                return Err(ArmError::Send {
                    request: request.to_string(),
                    message: describe_transport(&e),
                });
            }
        };
        call.finish(status.as_u16());
        tracing::debug!(%request, status = status.as_u16(), request_id = %request_ids(&headers), "ARM call");
        if !status.is_success() {
            let mut fault = fault_from(status, &bytes, &headers, request);
            fault.retry_after = fault.retry_after.map(|d| self.clock.virtual_duration(d));
            return Err(ArmError::Rejected(Box::new(fault)));
        }
        let body = if bytes.iter().all(u8::is_ascii_whitespace) {
            None
        } else {
            Some(
                serde_json::from_slice(&bytes).map_err(|e| ArmError::UnreadableResponse {
                    request: request.to_string(),
                    status: status.as_u16(),
                    message: e.to_string(),
                })?,
            )
        };
        Ok(ArmResponse {
            status: status.as_u16(),
            body,
            lro: {
                let mut lro = LroHeaders::from_headers(&headers);
                lro.retry_after = lro.retry_after.map(|d| self.clock.virtual_duration(d));
                lro
            },
            url: url.to_string(),
        })
    }

    /// The `HeldBack` answer a request would get now without being sent: its subscription's
    /// bucket is nearly spent (the wait includes its place in the queue), or the resource
    /// provider throttled its operation.
    fn held_answer(&self, method: &Method, path: &str, request: &str) -> Option<ArmError> {
        let gate_key = gate_key(method, path);
        let operation_key = operation_key(method, path);
        let request_key = format!("{operation_key}:{}", path.to_ascii_lowercase());
        let (wait, why) = self
            .held_back(&gate_key)
            .map(|hold| {
                (
                    self.paced_wait(&gate_key, method, hold),
                    "Azure Resource Manager's request quota for this subscription is nearly spent",
                )
            })
            .or_else(|| {
                self.held_back(&operation_key)
                    .or_else(|| self.held_back(&request_key))
                    .map(|wait| (wait, "the resource provider throttled this operation"))
            })?;
        Some(held_back(request, wait, why))
    }

    /// Answers now what a `PUT` of `path` would be answered if it is held back, without
    /// sending anything. A step that reads before it writes asks first, so a write the
    /// subscription's quota holds back costs no reads that its retry would make again.
    ///
    /// # Errors
    /// The `HeldBack` answer (429 with the wait), which the engine treats as throttling.
    pub fn room_to_write(&self, path: &str) -> Result<(), ArmError> {
        self.room_to_send(&Method::PUT, path)
    }

    /// [`ArmClient::room_to_write`] for a `POST` of `path` (an action).
    ///
    /// # Errors
    /// The `HeldBack` answer.
    pub fn room_to_post(&self, path: &str) -> Result<(), ArmError> {
        self.room_to_send(&Method::POST, path)
    }

    /// [`ArmClient::room_to_write`] for a write (`method` PUT or POST) of `path` that can wait,
    /// at most `at_most`: one no cluster's progress hangs on yet, such as the bindings and
    /// roles a fleet makes while its extensions install. It goes only while the
    /// subscription's write bucket keeps more than [`ArmOptions::background_reserve`] tokens,
    /// so the writes that cannot wait (installs being sent, clusters whose install just
    /// ended) take the quota first; held ones come back spread at the bucket's refill rate,
    /// and none later than `at_most` from now, when it is due as an ordinary write.
    ///
    /// # Errors
    /// The `HeldBack` answer.
    pub fn room_to_write_in_background(
        &self,
        method: &Method,
        path: &str,
        at_most: Duration,
    ) -> Result<(), ArmError> {
        self.room_to_send(method, path)?;
        let key = gate_key(method, path);
        let reserve = self.options.background_reserve as f64;
        let now = self.clock.now();
        let left = self
            .gauge
            .estimate(&key, WRITE_REFILL_PER_SECOND, WRITE_BUCKET, now)
            .unwrap_or(WRITE_BUCKET);
        if left > reserve {
            return Ok(());
        }
        let refilled = Duration::from_secs_f64((reserve - left) / WRITE_REFILL_PER_SECOND);
        let wait = self.paced_wait(&format!("{key}:background"), method, refilled);
        Err(held_back(
            &format!("{method} {path}"),
            wait.min(at_most.max(Duration::from_secs(1))),
            "this write can wait, and the subscription's write quota is kept for writes that cannot",
        ))
    }

    /// [`ArmClient::room_to_write`] for a request of any `method`.
    ///
    /// # Errors
    /// The `HeldBack` answer.
    pub fn room_to_send(&self, method: &Method, path: &str) -> Result<(), ArmError> {
        let request = format!("{method} {path}");
        self.held_answer(method, path, &request).map_or(Ok(()), Err)
    }

    /// The wait of a request held back on a spent subscription bucket: the hold, plus its
    /// place in the bucket's line at the documented refill rate, behind the requests held
    /// before it at its precedence or a higher one (see [`super::held_line`]).
    fn paced_wait(&self, gate_key: &str, method: &Method, hold: Duration) -> Duration {
        let rate = match *method {
            Method::GET | Method::HEAD => READ_REFILL_PER_SECOND,
            _ => WRITE_REFILL_PER_SECOND,
        };
        hold + self
            .held_line
            .take_slot(gate_key, current_precedence(), rate, self.clock.now())
    }

    fn held_back(&self, key: &str) -> Option<Duration> {
        let now = self.clock.now();
        let held = self.held_until.lock().ok()?;
        let until = *held.get(key)?;
        (until > now).then(|| (until - now).unsigned_abs().max(Duration::from_secs(1)))
    }

    fn hold(&self, key: &str, wait: Duration) {
        if let Ok(mut held) = self.held_until.lock() {
            let Some(until) = time::Duration::try_from(wait)
                .ok()
                .and_then(|wait| self.clock.now().checked_add(wait))
            else {
                return;
            };
            let entry = held.entry(key.to_string()).or_insert(until);
            if *entry < until {
                *entry = until;
            }
        }
    }

    fn observe_rate_limits(&self, headers: &HeaderMap, path: &str, method: &Method) {
        // Resource Graph's per-user quota: none left means no query until the window resets.
        if let Some(wait) = graph_quota_spent(headers) {
            tracing::info!(
                "Resource Graph quota spent; the next query waits {}s",
                wait.as_secs()
            );
            self.hold(&operation_key(method, path), wait);
        }
        let lowest = headers
            .iter()
            .filter(|(name, _)| name.as_str().starts_with("x-ms-ratelimit-remaining-"))
            .filter_map(|(_, v)| v.to_str().ok()?.trim().parse::<u64>().ok())
            .min();
        let Some(remaining) = lowest else {
            return;
        };
        let key = gate_key(method, path);
        self.gauge.observe(&key, remaining, self.clock.now());
        let Ok(mut pauses) = self.pauses.lock() else {
            return;
        };
        if remaining <= self.options.rate_limit_reserve {
            // A bucket still spent after a pause refills slower than ARM's documented rate
            // (a tighter quota, or other callers on it): the next pause is twice as long, up
            // to MAX_PAUSE_DOUBLINGS times the first.
            let doublings = pauses.entry(key.clone()).or_insert(0);
            let pause = self.options.rate_limit_pause * (1u32 << *doublings);
            *doublings = (*doublings + 1).min(MAX_PAUSE_DOUBLINGS);
            drop(pauses);
            // Pacing, not trouble (the host would log a handler's warning as an error): the
            // steps it holds back count as `throttled` in the retry metric.
            tracing::info!(
                remaining,
                "ARM request quota nearly spent; holding back further calls for {}s",
                pause.as_secs()
            );
            self.hold(&key, pause);
        } else if remaining > self.options.rate_limit_reserve.saturating_mul(4) {
            pauses.remove(&key);
        }
    }
}

/// The credential of [`ArmClient::unconfigured`]: every token request fails.
#[derive(Debug)]
struct Unconfigured;

#[async_trait::async_trait]
impl TokenCredential for Unconfigured {
    async fn get_token(
        &self,
        _scopes: &[&str],
        _options: Option<azure_core::credentials::TokenRequestOptions<'_>>,
    ) -> azure_core::Result<azure_core::credentials::AccessToken> {
        Err(azure_core::Error::with_message(
            azure_core::error::ErrorKind::Credential,
            "this context has no Azure Resource Manager client configured",
        ))
    }
}

fn operation_failed(label: &str, code: String, message: String) -> ArmError {
    ArmError::OperationFailed(Box::new(ArmFault {
        status: 0,
        code,
        message,
        retry_after: None,
        request: format!("the operation started by {label}"),
        request_ids: String::new(),
    }))
}

/// The answer to a request the client did not send, for `why`, to be retried after `wait`:
/// a 429 `HeldBack`, which the engine treats as throttling.
fn held_back(request: &str, wait: Duration, why: &str) -> ArmError {
    ArmError::Rejected(Box::new(ArmFault {
        status: 429,
        code: "HeldBack".into(),
        message: format!("not sent: {why}; retrying in {}s", wait.as_secs()),
        retry_after: Some(wait),
        request: request.to_string(),
        request_ids: String::new(),
    }))
}

/// ARM's own request throttling (the subscription's or tenant's buckets), as opposed to a
/// resource provider throttling one operation.
fn is_arm_throttling(err: &ArmError) -> bool {
    err.has_code("SubscriptionRequestsThrottled") || err.has_code("TenantRequestsThrottled")
}

/// The key a provider's 429 holds back: the subscription, the method and the resource type
/// (the path with the names left out), so the same operation on other resources waits too,
/// and nothing else does.
fn operation_key(method: &Method, path: &str) -> String {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let sub = segments
        .iter()
        .position(|s| s.eq_ignore_ascii_case("subscriptions"))
        .and_then(|i| segments.get(i + 1))
        .unwrap_or(&"tenant")
        .to_ascii_lowercase();
    let types: Vec<String> = match segments
        .iter()
        .rposition(|s| s.eq_ignore_ascii_case("providers"))
    {
        // providers/{namespace}/{type}/{name}/{type}/{name}…/{action}
        Some(p) => segments
            .iter()
            .skip(p + 1)
            .enumerate()
            .filter(|(i, _)| *i == 0 || i % 2 == 1)
            .map(|(_, s)| s.to_ascii_lowercase())
            .collect(),
        None => segments
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 2 == 0)
            .map(|(_, s)| s.to_ascii_lowercase())
            .collect(),
    };
    format!("{sub}:{method}:{}", types.join("/"))
}

/// Subscription + read/write/delete class: the unit ARM throttles by.
fn gate_key(method: &Method, path: &str) -> String {
    let sub = path
        .split('/')
        .skip_while(|s| !s.eq_ignore_ascii_case("subscriptions"))
        .nth(1)
        .unwrap_or("tenant")
        .to_ascii_lowercase();
    let class = match *method {
        Method::GET | Method::HEAD => "reads",
        Method::DELETE => "deletes",
        _ => "writes",
    };
    format!("{sub}:{class}")
}

/// How long until Resource Graph's per-user window resets, when its quota is spent
/// (`x-ms-user-quota-remaining: 0`, `x-ms-user-quota-resets-after: hh:mm:ss`).
fn graph_quota_spent(headers: &HeaderMap) -> Option<Duration> {
    let remaining: u64 = headers
        .get("x-ms-user-quota-remaining")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    if remaining > 0 {
        return None;
    }
    let resets = headers
        .get("x-ms-user-quota-resets-after")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_hms)
        .unwrap_or(Duration::from_secs(5));
    Some(resets.clamp(Duration::from_secs(1), super::lro::MAX_RETRY_AFTER))
}

/// `hh:mm:ss` as a duration.
fn parse_hms(text: &str) -> Option<Duration> {
    let mut parts = text.trim().split(':');
    let (h, m, s) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let seconds = h.parse::<u64>().ok()?.checked_mul(3600)?
        + m.parse::<u64>().ok()?.checked_mul(60)?
        + s.parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s >= 0.0)?
            .ceil() as u64;
    Some(Duration::from_secs(seconds))
}

fn request_ids(headers: &HeaderMap) -> String {
    ["x-ms-request-id", "x-ms-correlation-request-id"]
        .iter()
        .filter_map(|h| {
            headers
                .get(*h)
                .and_then(|v| v.to_str().ok())
                .map(|v| format!("{h}: {v}"))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn strip_query(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.to_string()
}

/// The `error.type` of a request that got no answer.
fn transport_error_type(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else {
        "connection"
    }
}

fn describe_transport(e: &reqwest::Error) -> String {
    // reqwest's Display includes the URL with its query; the query holds nothing secret, but
    // the chain of sources says more than the top-level message.
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Reads ARM's error from a failed response: `{error: {code, message}}` (ARM, DataProtection,
/// AKS, Storage) or a bare `{code, message}`; an empty body keeps the status's reason.
pub(crate) fn fault_from(
    status: StatusCode,
    bytes: &[u8],
    headers: &HeaderMap,
    request: &str,
) -> ArmFault {
    let parsed: Option<Value> = serde_json::from_slice(bytes).ok();
    let error = parsed
        .as_ref()
        .map(|v| v.get("error").filter(|e| e.is_object()).unwrap_or(v));
    let field = |name: &str| {
        error
            .and_then(|e| e.get(name))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let reason = status
        .canonical_reason()
        .unwrap_or("Error")
        .replace([' ', '-'], "");
    let code = field("code").unwrap_or(if bytes.is_empty() {
        reason
    } else {
        "UnknownError".to_string()
    });
    let message = field("message").unwrap_or_else(|| {
        if bytes.is_empty() {
            "(no body)".to_string()
        } else if parsed.is_none() {
            String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned()
        } else {
            String::new()
        }
    });
    ArmFault {
        status: status.as_u16(),
        code,
        message,
        retry_after: super::lro::retry_after(headers),
        request: request.to_string(),
        request_ids: request_ids(headers),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_held_on_a_spent_bucket_queue_at_its_refill_rate() {
        let clock = Arc::new(crate::clock::ManualClock::new(time::macros::datetime!(
            2026-12-06 08:00 UTC
        )));
        let arm = ArmClient::unconfigured(clock.clone());
        let hold = Duration::from_secs(2);
        let reads: Vec<u128> = (0..3)
            .map(|_| arm.paced_wait("s:reads", &Method::GET, hold).as_millis())
            .collect();
        assert_eq!(reads, vec![2040, 2080, 2120], "one slot each, 25 a second");
        assert_eq!(
            arm.paced_wait("s:writes", &Method::PUT, hold).as_millis(),
            2100,
            "writes queue apart, 10 a second"
        );
        // A second later the bucket has refilled past the three held reads.
        clock.advance(Duration::from_secs(1));
        assert_eq!(
            arm.paced_wait("s:reads", &Method::GET, hold).as_millis(),
            2040
        );
    }

    #[tokio::test]
    async fn a_held_request_waits_behind_those_of_its_precedence_or_higher_only() {
        let clock = Arc::new(crate::clock::ManualClock::new(time::macros::datetime!(
            2026-12-06 08:00 UTC
        )));
        let arm = ArmClient::unconfigured(clock.clone());
        let path = "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.DataProtection/backupVaults/v/backupInstances/bi";
        let mut h = HeaderMap::new();
        h.insert(
            "x-ms-ratelimit-remaining-subscription-writes",
            HeaderValue::from_static("3"),
        );
        arm.observe_rate_limits(&h, path, &Method::PUT);
        let wait = |e: ArmError| match e {
            ArmError::Rejected(f) if f.code == "HeldBack" => f.retry_after.unwrap().as_millis(),
            other => panic!("{other}"),
        };
        // The bucket is nearly spent: the subscription's writes are held for the pause
        // (2 s), each in its place in the line at 10 a second.
        let late = crate::arm::with_precedence(2, async { arm.room_to_write(path) });
        assert_eq!(wait(late.await.unwrap_err()), 2_100);
        let late = crate::arm::with_precedence(2, async { arm.room_to_write(path) });
        assert_eq!(wait(late.await.unwrap_err()), 2_200);
        let early = crate::arm::with_precedence(9, async { arm.room_to_write(path) });
        assert_eq!(
            wait(early.await.unwrap_err()),
            2_100,
            "a request that leaves a longer wait behind it goes before both"
        );
        assert_eq!(
            wait(arm.room_to_write(path).unwrap_err()),
            2_100,
            "a request outside a ranked step goes first"
        );
    }

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn writes_that_can_wait_go_only_while_the_bucket_keeps_its_reserve() {
        let clock = Arc::new(crate::clock::ManualClock::new(time::macros::datetime!(
            2026-12-06 08:00 UTC
        )));
        let arm = ArmClient::unconfigured(clock.clone());
        let binding = "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/c/trustedAccessRoleBindings";
        let other_sub = "/subscriptions/s2/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/c/trustedAccessRoleBindings";
        // Nothing known of the bucket yet: it is taken to be full.
        assert!(
            arm.room_to_write_in_background(&Method::PUT, binding, HOUR)
                .is_ok()
        );

        let mut h = HeaderMap::new();
        h.insert(
            "x-ms-ratelimit-remaining-subscription-writes",
            HeaderValue::from_static("40"),
        );
        arm.observe_rate_limits(&h, binding, &Method::PUT);
        // 40 left: a write that cannot wait still goes; one that can waits until the bucket
        // has refilled past the reserve of 100 (6 s at 10 a second), plus its place in line.
        assert!(arm.room_to_write(binding).is_ok());
        let err = arm
            .room_to_write_in_background(&Method::PUT, binding, HOUR)
            .unwrap_err();
        assert!(err.has_code("HeldBack"), "{err}");
        let wait = |e: &ArmError| match e {
            ArmError::Rejected(f) => f.retry_after.unwrap().as_millis(),
            other => panic!("{other}"),
        };
        assert_eq!(wait(&err), 6100);
        let second = arm
            .room_to_write_in_background(&Method::PUT, binding, HOUR)
            .unwrap_err();
        assert_eq!(wait(&second), 6200, "the next one queues behind it");
        let credential = format!("{binding}/../listClusterUserCredential");
        let due_soon = arm
            .room_to_write_in_background(&Method::POST, &credential, Duration::from_secs(3))
            .unwrap_err();
        assert_eq!(wait(&due_soon), 3000, "held no longer than it may wait");
        assert!(
            due_soon.to_string().contains("POST "),
            "the held request named as sent: {due_soon}"
        );
        // Reads and other subscriptions are not concerned.
        assert!(
            arm.room_to_write_in_background(&Method::PUT, other_sub, HOUR)
                .is_ok()
        );

        clock.advance(Duration::from_secs(7));
        assert!(
            arm.room_to_write_in_background(&Method::PUT, binding, HOUR)
                .is_ok()
        );
    }

    #[test]
    fn a_spent_resource_graph_quota_holds_queries_until_its_window_resets() {
        let mut h = HeaderMap::new();
        h.insert("x-ms-user-quota-remaining", HeaderValue::from_static("3"));
        h.insert(
            "x-ms-user-quota-resets-after",
            HeaderValue::from_static("00:00:04"),
        );
        assert_eq!(graph_quota_spent(&h), None);
        h.insert("x-ms-user-quota-remaining", HeaderValue::from_static("0"));
        assert_eq!(graph_quota_spent(&h), Some(Duration::from_secs(4)));
        h.insert(
            "x-ms-user-quota-resets-after",
            HeaderValue::from_static("00:02:03.5"),
        );
        assert_eq!(graph_quota_spent(&h), Some(Duration::from_secs(124)));
        h.insert(
            "x-ms-user-quota-resets-after",
            HeaderValue::from_static("junk"),
        );
        assert_eq!(
            graph_quota_spent(&h),
            Some(Duration::from_secs(5)),
            "unreadable: Resource Graph's default window"
        );
        assert_eq!(
            parse_hms("99999999999999999:00:00"),
            None,
            "overflow is refused"
        );
    }

    #[test]
    fn a_provider_429_holds_back_its_operation_and_arm_throttling_the_subscription() {
        let bi = "/subscriptions/S1/resourceGroups/rg/providers/Microsoft.DataProtection/backupVaults/v1/backupInstances/bi-1";
        let other_bi = "/subscriptions/s1/resourceGroups/rg2/providers/Microsoft.DataProtection/backupVaults/v2/backupInstances/bi-9";
        let action = "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.DataProtection/backupVaults/v1/backupInstances/bi-1/validateForBackup";
        let storage =
            "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acct";
        assert_eq!(
            operation_key(&Method::PUT, bi),
            "s1:PUT:microsoft.dataprotection/backupvaults/backupinstances"
        );
        assert_eq!(
            operation_key(&Method::PUT, bi),
            operation_key(&Method::PUT, other_bi)
        );
        assert_ne!(
            operation_key(&Method::PUT, bi),
            operation_key(&Method::GET, bi)
        );
        assert_ne!(
            operation_key(&Method::PUT, bi),
            operation_key(&Method::POST, action)
        );
        assert_ne!(
            operation_key(&Method::PUT, bi),
            operation_key(&Method::PUT, storage)
        );
        assert_eq!(
            operation_key(&Method::PUT, "/subscriptions/s1/resourcegroups/rg"),
            "s1:PUT:subscriptions/resourcegroups"
        );
        let fault = |code: &str| {
            ArmError::Rejected(Box::new(ArmFault {
                status: 429,
                code: code.into(),
                message: String::new(),
                retry_after: Some(Duration::from_secs(10)),
                request: String::new(),
                request_ids: String::new(),
            }))
        };
        assert!(is_arm_throttling(&fault("SubscriptionRequestsThrottled")));
        assert!(!is_arm_throttling(&fault("TooManyRequests")));
    }
    use reqwest::header::HeaderValue;

    #[test]
    fn faults_keep_code_message_and_retry_after() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("17"));
        h.insert("x-ms-request-id", HeaderValue::from_static("r1"));
        let f = fault_from(
            StatusCode::TOO_MANY_REQUESTS,
            br#"{"error":{"code":"SubscriptionRequestsThrottled","message":"slow down"}}"#,
            &h,
            "GET /subscriptions/s",
        );
        assert_eq!(f.code, "SubscriptionRequestsThrottled");
        assert_eq!(f.message, "slow down");
        assert_eq!(f.retry_after, Some(Duration::from_secs(17)));
        assert!(f.request_ids.contains("r1"));
        assert!(ArmError::Rejected(Box::new(f)).is_transient());

        let storage = fault_from(
            StatusCode::CONFLICT,
            br#"{"code":"StorageAccountAlreadyTaken","message":"taken"}"#,
            &HeaderMap::new(),
            "PUT /x",
        );
        assert_eq!(storage.code, "StorageAccountAlreadyTaken");

        let empty = fault_from(
            StatusCode::NOT_ACCEPTABLE,
            b"",
            &HeaderMap::new(),
            "PUT /bi",
        );
        assert_eq!(
            (empty.code.as_str(), empty.message.as_str()),
            ("NotAcceptable", "(no body)")
        );
        assert!(
            ArmError::Rejected(Box::new(empty))
                .to_string()
                .contains("Accept header")
        );
    }

    #[test]
    fn throttling_is_counted_per_subscription_and_kind() {
        assert_eq!(
            gate_key(&Method::GET, "/subscriptions/ABC/resourceGroups/x"),
            "abc:reads"
        );
        assert_eq!(gate_key(&Method::PUT, "/subscriptions/abc/x"), "abc:writes");
        assert_eq!(
            gate_key(&Method::DELETE, "/subscriptions/abc/x"),
            "abc:deletes"
        );
        assert_eq!(
            gate_key(&Method::GET, "/providers/Microsoft.X/operations"),
            "tenant:reads"
        );
    }
}

//! The front door: every request passes the checks ARM makes before a resource provider
//! sees it — bearer token, api-version, route, subscription, throttling, provider
//! registration — then fault injection, DataProtection's `Accept` quirk and body parsing,
//! then the provider. Tenant-level paths go, after the token and api-version checks and the
//! tenant's throttling, to [`super::resource_graph`] and [`super::management_groups`]. Every request and its answer
//! goes to the journal, and every answer gets ARM's request-id and rate-limit headers.

use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::Response;
use serde_json::Value;

use super::error::ArmError;
use super::faults::Faults;
use super::journal::{ArmRequestRecord, Journal, body_for_journal};
use super::providers::{self, Ctx};
use super::response::ArmResponse;
use super::router;
use super::state::{Registration, World};
use super::throttle::{RequestKind, Throttle, ThrottleScope};
use super::validate::{jsonnet, names};
use crate::token::TokenIssuer;
use backup_pilot::clock::Clock;

/// The audience ARM tokens must have.
pub const ARM_AUDIENCE: &str = "https://management.azure.com";

/// Throttling and fault state (separate from the world so latency is applied unlocked).
#[derive(Debug)]
pub struct Controls {
    /// Token buckets.
    pub throttle: Throttle,
    /// Fault injection.
    pub faults: Faults,
}

/// Shared state of one stand-in.
pub struct Inner {
    /// The stand-in's clock.
    pub clock: Arc<dyn Clock>,
    /// Issuer whose tokens are accepted.
    pub tokens: TokenIssuer,
    /// The simulated Azure.
    pub world: Mutex<World>,
    /// Every request and answer.
    pub journal: Journal,
    /// Least-privilege enforcement (off until a principal is put under it).
    pub authz: Mutex<super::authz::Authz>,
    /// Throttling and faults.
    pub controls: Mutex<Controls>,
    /// Resource Graph's quota, index and query count.
    pub graph: Mutex<super::resource_graph::Graph>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner").finish_non_exhaustive()
    }
}

impl Inner {
    /// The world, advanced to now.
    pub fn world(&self) -> MutexGuard<'_, World> {
        let mut world = self
            .world
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        world.advance(self.clock.now());
        world
    }

    /// The enforcement state.
    pub fn authz(&self) -> MutexGuard<'_, super::authz::Authz> {
        self.authz
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The controls.
    pub fn controls(&self) -> MutexGuard<'_, Controls> {
        self.controls
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Resource Graph's state.
    pub fn graph(&self) -> MutexGuard<'_, super::resource_graph::Graph> {
        self.graph
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The axum handler for every path.
pub async fn handle(
    State(inner): State<Arc<Inner>>,
    method: Method,
    uri: Uri,
    mut headers: HeaderMap,
    body: Bytes,
) -> Response {
    let at = inner.clock.now();
    let latency = inner.controls().faults.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let path = uri.path().to_string();
    let query: Vec<(String, String)> = uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let request_body = body_for_journal(&body);
    let correlation = correlation(&headers);
    if let Ok(value) = HeaderValue::from_str(&correlation) {
        headers.insert("x-ms-correlation-request-id", value);
    }
    let mut answer = answer(&inner, &method, &path, &query, &headers, &body);
    super::timings::retry_after_in_real_time(&mut answer.headers, inner.clock.scale());
    answer = answer
        .with_header("x-ms-request-id", uuid::Uuid::new_v4().to_string())
        .with_header("x-ms-correlation-request-id", correlation);
    inner.journal.record(ArmRequestRecord {
        method: method.as_str().to_string(),
        path,
        query,
        request_body,
        status: answer.status.as_u16(),
        response_body: answer.body.clone(),
        at,
    });
    into_response(answer, method == Method::HEAD)
}

fn correlation(headers: &HeaderMap) -> String {
    headers
        .get("x-ms-correlation-request-id")
        .and_then(|v| v.to_str().ok())
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_string)
}

fn into_response(answer: ArmResponse, head: bool) -> Response {
    let mut builder = Response::builder().status(answer.status);
    for (name, value) in &answer.headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            builder = builder.header(n, v);
        }
    }
    let body = match (&answer.body, head) {
        (Some(json), false) => {
            builder = builder.header(header::CONTENT_TYPE, "application/json; charset=utf-8");
            Body::from(serde_json::to_vec(json).unwrap_or_default())
        }
        _ => Body::empty(),
    };
    builder.body(body).unwrap_or_else(|_| {
        let mut fallback = Response::new(Body::empty());
        *fallback.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        fallback
    })
}

fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1");
    format!("https://{host}")
}

fn wants_ieee754_incompatible_json(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(';')
                .map(|p| p.trim().to_ascii_lowercase().replace(' ', ""))
                .any(|p| p == "ieee754compatible=false")
        })
}

/// ARM's authorization, for a caller under enforcement (see [`super::authz`]): after the
/// subscription is known, before the provider sees the request.
#[allow(clippy::too_many_arguments)]
fn authorize(
    inner: &Inner,
    world: &World,
    method: &Method,
    path: &str,
    route: &router::Route,
    auth: Option<&str>,
    raw_body: &[u8],
    now: time::OffsetDateTime,
) -> Result<(), ArmError> {
    let mut authz = inner.authz();
    let principal = authz.principal_of(auth, &world.caller_object_id);
    if !authz.is_enforced(&principal) {
        return Ok(());
    }
    let op = super::authz::operation(route, method, path);
    let body: Option<Value> = serde_json::from_slice(raw_body).ok();
    authz.authorize(
        &principal,
        &op,
        &world.role_assignments,
        &world.directory,
        body.as_ref(),
        now,
    )
}

/// ARM's throttling of one request by `principal` in `scope`: takes its tokens and puts the
/// remaining-quota headers in `remaining`.
///
/// # Errors
/// 429 `SubscriptionRequestsThrottled` / `TenantRequestsThrottled` with `Retry-After` when a
/// bucket it draws from is empty.
fn admit(
    inner: &Inner,
    scope: ThrottleScope<'_>,
    principal: &str,
    method: &Method,
    now: time::OffsetDateTime,
    remaining: &mut Vec<(&'static str, u32)>,
) -> Result<(), ArmError> {
    let kind = RequestKind::of(method);
    let verdict = inner.controls().throttle.admit(scope, principal, kind, now);
    *remaining = verdict.remaining;
    let Some(wait) = verdict.throttled else {
        return Ok(());
    };
    let seconds = wait.as_secs().max(1);
    Err(match scope {
        ThrottleScope::Subscription(sub) => {
            ArmError::subscription_throttled(kind.word(), sub, seconds)
        }
        ThrottleScope::Tenant(tenant) => ArmError::tenant_throttled(kind.word(), tenant, seconds),
    })
}

/// Adds the remaining-quota headers to an answer.
fn with_remaining(mut answer: ArmResponse, remaining: &[(&'static str, u32)]) -> ArmResponse {
    for (name, left) in remaining {
        answer = answer.with_header(name, left.to_string());
    }
    answer
}

/// Everything that decides the answer, in ARM's order.
fn answer(
    inner: &Inner,
    method: &Method,
    path: &str,
    query: &[(String, String)],
    headers: &HeaderMap,
    raw_body: &[u8],
) -> ArmResponse {
    let now = inner.clock.now();
    let (tenant, caller) = {
        let world = inner.world();
        (world.tenant_id.clone(), world.caller_object_id.clone())
    };
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if let Err(rejection) = inner.tokens.check(auth, ARM_AUDIENCE) {
        return ArmError::unauthenticated(&rejection, &tenant).into();
    }
    let Some(api_version) = query
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("api-version"))
        .map(|(_, v)| v.as_str())
    else {
        return ArmError::missing_api_version().into();
    };
    let principal = inner.authz().principal_of(auth, &caller);
    let tenant_scope = ThrottleScope::Tenant(&tenant);
    let graph = super::resource_graph::is_resources_path(path);
    let management_group = super::management_groups::path_name(path);
    if graph || management_group.is_some() {
        let mut remaining = Vec::new();
        let answer = match admit(inner, tenant_scope, &principal, method, now, &mut remaining) {
            Err(throttled) => throttled.into(),
            Ok(()) => match management_group {
                Some(group) => {
                    super::management_groups::answer(&inner.world(), method, api_version, &group)
                }
                None => super::resource_graph::answer(
                    inner,
                    method,
                    path,
                    api_version,
                    headers,
                    raw_body,
                ),
            },
        };
        return with_remaining(answer, &remaining);
    }
    let route = match router::route(path, api_version) {
        Ok(route) => route,
        Err(e) => return e.into(),
    };
    let operation_id = match route.operation_id(method) {
        Ok(id) => id,
        Err(e) => return e.into(),
    };
    let mut remaining = Vec::new();
    let result = (|| -> Result<ArmResponse, ArmError> {
        let mut world = inner.world();
        let api = route.api();
        if !api.versions.contains(&api_version) {
            let mut supported: Vec<&str> = api.versions.to_vec();
            supported.dedup();
            return Err(if api.arm_level {
                ArmError::invalid_api_version(api_version, &supported)
            } else {
                let location = route
                    .group()
                    .and_then(|g| world.group(&g.sub, &g.rg))
                    .map_or_else(|| "global".to_string(), |g| g.location.clone());
                ArmError::no_registered_provider(
                    &location,
                    api_version,
                    api.resource_type,
                    &supported,
                )
            });
        }
        let sub = route.subscription().map(str::to_string);
        if let Some(sub) = &sub {
            names::subscription(sub)?;
            if world.subscription(sub).is_none() {
                return Err(ArmError::subscription_not_found(sub));
            }
        }
        let scope = sub
            .as_deref()
            .map_or(tenant_scope, ThrottleScope::Subscription);
        admit(inner, scope, &principal, method, now, &mut remaining)?;
        if let Some(sub) = &sub {
            authorize(inner, &world, method, path, &route, auth, raw_body, now)?;
            if let Some(ns) = api.requires_registration
                && world.registration(sub, ns) != Registration::Registered
            {
                return Err(ArmError::missing_subscription_registration(ns));
            }
        }
        if let Some(injected) = inner.controls().faults.decide(operation_id) {
            return Err(injected);
        }
        if api.requires_registration == Some("Microsoft.DataProtection")
            && wants_ieee754_incompatible_json(headers)
        {
            return Ok(ArmResponse::empty(StatusCode::NOT_ACCEPTABLE));
        }
        let body: Option<Value> = if raw_body.is_empty() {
            None
        } else {
            Some(
                serde_json::from_slice(raw_body)
                    .map_err(|e| ArmError::invalid_request_content(jsonnet::syntax(&e)))?,
            )
        };
        let base = base_url(headers);
        let ctx = Ctx {
            now,
            base_url: &base,
            api_version,
            query,
            body: body.as_ref(),
            method,
        };
        providers::dispatch(&mut world, &route, &ctx)
    })();
    let mut answer = with_remaining(result.unwrap_or_else(ArmResponse::from), &remaining);
    if *method == Method::HEAD {
        answer.body = None;
    }
    answer
}

//! Azure Resource Graph: `POST /providers/Microsoft.ResourceGraph/resources` (api-versions
//! 2022-10-01 and 2021-03-01), the spec's `QueryRequest` in, `QueryResponse` out
//! (`objectArray` rows), with Resource Graph's per-user quota, paging and indexing lag.
//!
//! The stand-in does not run KQL. It answers exactly the two queries the fleet sweep sends,
//! `backup_pilot::fleet::queries::CLUSTERS` and `PROTECTION`, recognised by their text after
//! whitespace is collapsed (`normalize`); their rows are computed from the world as the KQL
//! would compute them ([`rows`]). Any other query answers 400 `BadRequest` / `InvalidQuery`
//! naming the two shapes it knows.
//!
//! Time: the quota window and the indexing lag run on the stand-in's clock (virtual time on
//! a scaled clock), like ARM's throttling buckets, because the product waits on the same
//! clock: a `x-ms-user-quota-resets-after` of 5 s means 5 s of the time the product sees.
//! Every request that reaches the endpoint is counted ([`ArmHandle::graph_queries`]) and
//! journaled like any ARM request; fault knobs apply under the operation id `Resources`.
//!
//! Permissions: for a caller under least-privilege enforcement ([`super::authz`]) the rows
//! are trimmed to what it may read. Sources: Microsoft's Resource Graph overview
//! (learn.microsoft.com/azure/governance/resource-graph/overview, section "Permissions in
//! Azure Resource Graph": at least RBAC read access to the resources queried, no results for
//! objects without it; the stored copies searched here did not show that section's text, so
//! it is cited from the page's known structure), azureglossary.com's Resource Graph entry
//! ("Results are permission-trimmed: if the principal lacks at least read access to a
//! resource or scope, that object will not appear"), and MicrosoftDocs/azure-docs#28370 (a
//! user given Reader on a subscription expects its resources in Resource Graph; the answer
//! is about token refresh, not a missing Resource Graph permission). So each document is
//! checked with the read action of its type at its own id, like an ARM `GET` of it
//! ([`rows::CLUSTER_READ`], [`rows::EXTENSION_READ`], [`rows::INSTANCE_READ`],
//! [`rows::JOB_READ`], and [`rows::ASSIGNMENT_READ`] at the assignment's id, which a grant
//! covers exactly when it covers the assignment's scope), `notActions` and ABAC conditions
//! included, data actions not at all. Trimming applies to each table before the query runs,
//! so a join over rows the caller cannot read finds nothing (`extensionState` null, as with
//! no extension) and `summarize` sees only readable rows (`lastBackup`, `roleAssignments`).
//! No public page found says how joins are trimmed; this is the reading consistent with "that
//! object will not appear". A caller with no readable resource gets `200` with no rows. The
//! stand-in does not narrow an explicit `subscriptions` list to the subscriptions the caller
//! can see ([`scope`] checks existence only), so the 400 `NoValidSubscriptionsInQueryRequest`
//! real Azure may answer for a list of only unseen subscriptions is not modelled.
//!
//! No Resource Graph action is required of the caller: `Microsoft.ResourceGraph/resources/read`
//! exists (public tooling lists it as "Submits a Resource Graph query", and some custom roles
//! include it), but the request is made at tenant scope
//! (`/providers/Microsoft.ResourceGraph/resources`), the overview asks only for read access to
//! the resources queried, and a Reader at a subscription (the service's own grants) queries
//! without any tenant-scope grant. So there is no `AuthorizationFailed` here. The
//! per-document checks are recorded like any other ([`ArmHandle::authorization_checks`]),
//! once when a query starts (later pages read the trimmed view kept with the snapshot, see
//! [`index`]), denials included: a denied check here trims a row, it fails nothing.

pub mod error;
pub mod index;
pub mod paging;
pub mod quota;
pub mod request;
pub mod rows;
pub mod scope;

use std::time::Duration;

use axum::http::{HeaderMap, Method};
use serde_json::json;
use time::OffsetDateTime;

use super::ArmHandle;
use super::authz::{Authz, Operation};
use super::error::ArmError;
use super::response::ArmResponse;
use super::server::Inner;
use super::state::World;
use error::GraphError;
use index::Index;
use paging::{Cursor, DEFAULT_PAGE_SIZE};
use quota::Quota;
pub use quota::QuotaLimit;
use rows::QueryKind;

/// The api-versions served: the product's (2022-10-01) and 2021-03-01.
pub const VERSIONS: [&str; 2] = [backup_pilot::arm::versions::RESOURCE_GRAPH, "2021-03-01"];

/// The spec's operation id (for fault knobs).
pub const OPERATION_ID: &str = "Resources";

/// Lag and quota of the Resource Graph stand-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GraphSettings {
    /// How far the index may trail the world (stand-in clock); zero: always current.
    pub indexing_lag: Duration,
    /// The per-user quota.
    pub quota: QuotaLimit,
}

impl Default for GraphSettings {
    fn default() -> Self {
        Self {
            indexing_lag: Duration::from_secs(30),
            quota: QuotaLimit::default(),
        }
    }
}

/// Resource Graph's state in a stand-in.
#[derive(Debug, Default)]
pub struct Graph {
    settings: GraphSettings,
    quota: Quota,
    index: Index,
    queries: u64,
}

impl Graph {
    /// A fresh state with these settings.
    pub fn new(settings: GraphSettings) -> Self {
        Self {
            settings,
            quota: Quota::new(settings.quota),
            index: Index::default(),
            queries: 0,
        }
    }
}

/// Whether `path` is `/providers/Microsoft.ResourceGraph/resources`.
pub fn is_resources_path(path: &str) -> bool {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    matches!(segments.as_slice(), [p, ns, r]
        if p.eq_ignore_ascii_case("providers")
            && ns.eq_ignore_ascii_case("Microsoft.ResourceGraph")
            && r.eq_ignore_ascii_case("resources"))
}

/// The answer to a request for [`is_resources_path`], after ARM checked the token and that an
/// api-version is present.
pub fn answer(
    inner: &Inner,
    method: &Method,
    path: &str,
    api_version: &str,
    headers: &HeaderMap,
    raw_body: &[u8],
) -> ArmResponse {
    if !VERSIONS.contains(&api_version) {
        let mut supported = VERSIONS.to_vec();
        supported.dedup();
        return ArmError::no_registered_provider("global", api_version, "resources", &supported)
            .into();
    }
    if *method != Method::POST {
        return ArmError::method_not_allowed(method.as_str(), path).into();
    }
    let now = inner.clock.now();
    let correlation = headers
        .get("x-ms-correlation-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let world = inner.world();
    let auth = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let caller = inner.authz().principal_of(auth, &world.caller_object_id);
    let mut graph = inner.graph();
    graph.queries += 1;
    let admission = graph.quota.admit(&caller, now);
    let mut answer = if !admission.admitted {
        GraphError::rate_limiting().response(now, &correlation)
    } else if let Some(injected) = inner.controls().faults.decide(OPERATION_ID) {
        injected.into()
    } else {
        let mut authz = inner.authz();
        let reader = authz.is_enforced(&caller).then_some(Reader {
            authz: &mut authz,
            caller: &caller,
        });
        match run(&mut graph, &world, reader, raw_body, now) {
            Ok(body) => ArmResponse::ok(body),
            Err(e) => e.response(now, &correlation),
        }
    };
    for (name, value) in admission.headers() {
        answer = answer.with_header(name, value);
    }
    answer
}

/// A caller under enforcement, whose rows are trimmed to what it may read.
struct Reader<'a> {
    authz: &'a mut Authz,
    caller: &'a str,
}

impl Reader<'_> {
    /// Whether the caller may do `action` at `id` now (recorded like any check).
    fn may_read(&mut self, world: &World, action: &str, id: &str, now: OffsetDateTime) -> bool {
        let op = Operation {
            action: action.to_string(),
            scope: id.to_string(),
        };
        self.authz
            .authorize(
                self.caller,
                &op,
                &world.role_assignments,
                &world.directory,
                None,
                now,
            )
            .is_ok()
    }
}

/// Validates, resolves the scope, reads the snapshot (trimmed for a `reader`) and cuts the
/// page.
fn run(
    graph: &mut Graph,
    world: &World,
    reader: Option<Reader<'_>>,
    raw_body: &[u8],
    now: OffsetDateTime,
) -> Result<serde_json::Value, GraphError> {
    let request = request::parse(raw_body)?;
    let kind = QueryKind::of(&request.query).ok_or_else(|| {
        GraphError::invalid_query(
            "QueryNotSupportedByStandIn",
            "The Resource Graph stand-in runs no KQL: it answers only the fleet sweep's two queries, backup_pilot::fleet::queries::CLUSTERS and backup_pilot::fleet::queries::PROTECTION, compared after collapsing whitespace.",
        )
    })?;
    let scope = scope::resolve(world, &request)?;
    let fingerprint = paging::fingerprint(kind, &request);
    let later_page = request.skip_token.is_some();
    let (snapshot, offset, page_size) = match &request.skip_token {
        Some(token) => {
            let cursor = Cursor::decode(token)
                .filter(|c| c.fingerprint == fingerprint)
                .ok_or_else(|| {
                    GraphError::bad_request(
                        "InvalidSkipToken",
                        "The $skipToken is invalid: send it back with the same query and scope that produced it.",
                    )
                })?;
            let snapshot = graph.index.generation(cursor.generation).ok_or_else(|| {
                GraphError::bad_request(
                    "InvalidSkipToken",
                    "The $skipToken has expired: run the query again from its first page.",
                )
            })?;
            (
                snapshot,
                request.skip.unwrap_or(cursor.offset),
                request.top.unwrap_or(cursor.page_size),
            )
        }
        None => (
            graph.index.fresh(world, now, graph.settings.indexing_lag),
            request.skip.unwrap_or(0),
            request.top.unwrap_or(DEFAULT_PAGE_SIZE),
        ),
    };
    let rows = match reader {
        None => std::sync::Arc::new(snapshot.documents.rows(kind, &scope)),
        Some(mut reader) => {
            let caller = reader.caller.to_string();
            graph.index.view(
                snapshot.generation,
                &caller,
                &fingerprint,
                later_page,
                || {
                    snapshot
                        .documents
                        .readable_rows(kind, &scope, &mut |action, id| {
                            reader.may_read(world, action, id, now)
                        })
                },
            )
        }
    };
    let total = rows.len();
    let page: Vec<serde_json::Value> = rows
        .iter()
        .skip(offset as usize)
        .take(page_size as usize)
        .cloned()
        .collect();
    let next = offset as usize + page.len();
    let mut body = json!({
        "totalRecords": total,
        "count": page.len(),
        "resultTruncated": "false",
        "data": page,
        "facets": [],
    });
    if next < total {
        let cursor = Cursor {
            generation: snapshot.generation,
            offset: u32::try_from(next).unwrap_or(u32::MAX),
            page_size,
            fingerprint,
        };
        body["$skipToken"] = json!(cursor.encode());
    }
    Ok(body)
}

impl ArmHandle {
    /// How many POSTs at a served api-version reached the Resource Graph endpoint (every
    /// page, 400 and 429 counts as one).
    pub fn graph_queries(&self) -> u64 {
        self.inner.graph().queries
    }

    /// Replaces the indexing lag and quota; quota windows restart and the index is rebuilt
    /// by the next query (outstanding skip tokens expire).
    pub fn set_resource_graph(&self, settings: GraphSettings) {
        let mut graph = self.inner.graph();
        graph.settings = settings;
        graph.quota = Quota::new(settings.quota);
        graph.index.clear();
    }
}

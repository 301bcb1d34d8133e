//! Azure Resource Graph queries through the ARM client: the scope (subscriptions or
//! management groups), paging with `$skipToken` (1,000 rows a page), and the per-user quota
//! (the client holds queries back while `x-ms-user-quota-remaining` is 0; a short hold is
//! waited out here, a long one ends the sweep with what it read).

use std::time::Duration;

use serde_json::{Value, json};

use crate::arm::{ArmClient, ArmError, versions};
use crate::clock::Clock;

/// Where Resource Graph queries run.
pub const PATH: &str = "/providers/Microsoft.ResourceGraph/resources";

/// Rows a page asks for (Resource Graph's maximum).
pub const PAGE_ROWS: u32 = 1000;

/// The longest quota hold a sweep waits out (Resource Graph's window is 5 seconds).
const MAX_QUOTA_WAIT: Duration = Duration::from_secs(10);

/// Pages one query may read (a million rows): a bound on a runaway `$skipToken`.
const MAX_PAGES: u32 = 1000;

/// What a sweep looks at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GraphScope {
    /// Subscription ids (empty with no management group: every subscription the identity
    /// can read).
    pub subscriptions: Vec<String>,
    /// Management group names; when set, they are the scope.
    pub management_groups: Vec<String>,
}

impl GraphScope {
    /// The scope part of a `QueryRequest`.
    fn request(&self, query: &str, skip_token: Option<&str>) -> Value {
        let mut options = json!({"$top": PAGE_ROWS, "resultFormat": "objectArray"});
        if let Some(token) = skip_token {
            options["$skipToken"] = json!(token);
        }
        let mut body = json!({"query": query, "options": options});
        if !self.management_groups.is_empty() {
            body["managementGroups"] = json!(self.management_groups);
        } else if !self.subscriptions.is_empty() {
            body["subscriptions"] = json!(self.subscriptions);
        }
        body
    }

    /// For messages: `subscriptions a, b` / `management groups m` / `every readable subscription`.
    pub fn describe(&self) -> String {
        if !self.management_groups.is_empty() {
            format!("management groups {}", self.management_groups.join(", "))
        } else if !self.subscriptions.is_empty() {
            format!("subscriptions {}", self.subscriptions.join(", "))
        } else {
            "every subscription the identity can read".to_string()
        }
    }
}

/// Every row of one query, and how many requests (pages) it took.
#[derive(Debug, Clone, Default)]
pub struct QueryResult {
    /// The rows, in the order Resource Graph gave them.
    pub rows: Vec<Value>,
    /// Requests sent (each page is one query against the quota).
    pub requests: u32,
}

/// Why a query did not finish.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    /// ARM or Resource Graph refused or failed.
    #[error("Resource Graph query failed after {requests} request(s): {source}")]
    Arm {
        /// Requests sent before the failure.
        requests: u32,
        /// What ARM said.
        #[source]
        source: ArmError,
    },
    /// The answer is not a `QueryResponse`.
    #[error("Resource Graph answered something that is not a QueryResponse: {0}")]
    Unreadable(String),
    /// More pages than a sweep reads.
    #[error("Resource Graph kept paging past {MAX_PAGES} pages; narrow the scope")]
    TooManyPages,
}

/// Runs `query` over `scope`, reading every page.
///
/// # Errors
/// See [`GraphError`]; a quota hold longer than a few seconds is an error the sweep reports
/// (the next sweep reads again).
pub async fn query_all(
    arm: &ArmClient,
    clock: &dyn Clock,
    scope: &GraphScope,
    query: &str,
) -> Result<QueryResult, GraphError> {
    let mut result = QueryResult::default();
    let mut skip_token: Option<String> = None;
    loop {
        if result.requests >= MAX_PAGES {
            return Err(GraphError::TooManyPages);
        }
        let body = scope.request(query, skip_token.as_deref());
        let answer = loop {
            match arm.post(PATH, versions::RESOURCE_GRAPH, Some(&body)).await {
                Err(e) if is_quota_hold(&e) => {
                    let wait = e.retry_after().unwrap_or(MAX_QUOTA_WAIT);
                    if wait > MAX_QUOTA_WAIT {
                        return Err(GraphError::Arm {
                            requests: result.requests,
                            source: e,
                        });
                    }
                    tracing::info!("waiting {}s for Resource Graph's quota", wait.as_secs());
                    tokio::time::sleep(clock.real_duration(wait)).await;
                }
                Err(e) => {
                    result.requests += 1;
                    return Err(GraphError::Arm {
                        requests: result.requests,
                        source: e,
                    });
                }
                Ok(r) => {
                    result.requests += 1;
                    break r;
                }
            }
        };
        let page = answer.json();
        let rows = page
            .get("data")
            .and_then(Value::as_array)
            .ok_or_else(|| GraphError::Unreadable("no `data` array of rows".into()))?;
        result.rows.extend(rows.iter().cloned());
        skip_token = page
            .get("$skipToken")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .map(str::to_string);
        if skip_token.is_none() {
            return Ok(result);
        }
    }
}

/// A 429 (Resource Graph's `RateLimiting`, or the client holding the query back).
fn is_quota_hold(e: &ArmError) -> bool {
    e.status() == Some(429)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_names_one_scope_and_pages_at_the_maximum() {
        let both = GraphScope {
            subscriptions: vec!["s1".into()],
            management_groups: vec!["mg".into()],
        };
        let body = both.request("q", Some("tok"));
        assert_eq!(body["managementGroups"], json!(["mg"]));
        assert!(body.get("subscriptions").is_none());
        assert_eq!(body["options"]["$top"], json!(1000));
        assert_eq!(body["options"]["$skipToken"], json!("tok"));
        let subs = GraphScope {
            subscriptions: vec!["s1".into(), "s2".into()],
            management_groups: vec![],
        };
        assert_eq!(
            subs.request("q", None)["subscriptions"],
            json!(["s1", "s2"])
        );
        assert!(
            GraphScope::default()
                .request("q", None)
                .get("subscriptions")
                .is_none()
        );
    }
}

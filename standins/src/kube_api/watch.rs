//! Watches (`watch=true` on a collection): a stream of newline-delimited `WatchEvent`s
//! (`{"type": "ADDED" | "MODIFIED" | "DELETED", "object": …}`), as the API server sends them.
//! Without `resourceVersion` (or with `0`) the stream opens with an ADDED event for every
//! object that matches; with a resourceVersion, with a MODIFIED event for every matching
//! object changed after it. Then it reports changes as they happen (the stand-in looks every
//! 100 ms, so changes between two looks arrive as one event) and ends after `timeoutSeconds`
//! (default 30 minutes, the API server's minimum request timeout). Limits: no bookmarks, and
//! objects deleted before the watch started are not reported (the store keeps no history).

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use serde_json::{Value, json};

use super::KubeApiServer;
use super::catalog::{FieldRequirement, ResourceType};
use super::store::{Key, Selector};

/// How often the stream looks for changes.
const POLL: Duration = Duration::from_millis(100);
/// A watch's length when the client gives no `timeoutSeconds`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

/// What a watch covers.
#[derive(Debug, Clone)]
pub struct WatchRequest {
    /// The resource type.
    pub ty: ResourceType,
    /// One namespace, or all.
    pub namespace: Option<String>,
    /// `labelSelector`.
    pub labels: Selector,
    /// `fieldSelector`.
    pub fields: Vec<FieldRequirement>,
    /// `resourceVersion` (`None` or 0: start with the current objects).
    pub since: Option<u64>,
    /// When the stream ends.
    pub timeout: Duration,
}

fn snapshot(server: &KubeApiServer, request: &WatchRequest) -> BTreeMap<Key, Value> {
    let now = server.now();
    let mut store = server.store();
    store.tick(now);
    store
        .matching(
            &request.ty,
            request.namespace.as_deref(),
            &request.labels,
            &request.fields,
        )
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn resource_version(object: &Value) -> u64 {
    object
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .and_then(|rv| rv.parse().ok())
        .unwrap_or(0)
}

fn event(kind: &str, object: &Value) -> Bytes {
    let mut line = json!({"type": kind, "object": object}).to_string();
    line.push('\n');
    Bytes::from(line)
}

struct State {
    server: KubeApiServer,
    request: WatchRequest,
    known: Option<BTreeMap<Key, Value>>,
    queue: VecDeque<Bytes>,
    deadline: tokio::time::Instant,
}

/// The body of a watch response.
pub fn stream(server: KubeApiServer, request: WatchRequest) -> Body {
    let deadline = tokio::time::Instant::now() + request.timeout;
    let state = State {
        server,
        request,
        known: None,
        queue: VecDeque::new(),
        deadline,
    };
    let events = futures::stream::unfold(state, |mut state| async move {
        loop {
            if let Some(line) = state.queue.pop_front() {
                return Some((Ok::<Bytes, Infallible>(line), state));
            }
            let current = match &state.known {
                None => {
                    let current = snapshot(&state.server, &state.request);
                    let since = state.request.since.unwrap_or(0);
                    for object in current.values() {
                        if since == 0 {
                            state.queue.push_back(event("ADDED", object));
                        } else if resource_version(object) > since {
                            state.queue.push_back(event("MODIFIED", object));
                        }
                    }
                    current
                }
                Some(known) => {
                    let now = tokio::time::Instant::now();
                    if now >= state.deadline {
                        return None;
                    }
                    tokio::time::sleep(POLL.min(state.deadline - now)).await;
                    let current = snapshot(&state.server, &state.request);
                    for (key, object) in &current {
                        match known.get(key) {
                            None => state.queue.push_back(event("ADDED", object)),
                            Some(old) if resource_version(old) != resource_version(object) => {
                                state.queue.push_back(event("MODIFIED", object));
                            }
                            Some(_) => {}
                        }
                    }
                    for (key, object) in known {
                        if !current.contains_key(key) {
                            state.queue.push_back(event("DELETED", object));
                        }
                    }
                    current
                }
            };
            state.known = Some(current);
        }
    });
    Body::from_stream(events)
}

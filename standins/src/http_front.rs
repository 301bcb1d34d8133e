//! The host's HTTP trigger front: `/{routePrefix}/{route}` matched against each function's route
//! template, the method and key checks (`code` query or `x-functions-key` header), the request
//! sent to the handler as `Data.<req>`, and `Outputs.<res>` turned back into the response.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::app_folder::AuthLevel;
use super::functions_host::{HostCore, InvocationRecord, TriggerDetail};
use super::host_payload::{self, HttpRequestData};

/// Keys the front accepts.
#[derive(Clone, PartialEq, Eq)]
pub struct FunctionKeys {
    /// The master (admin) key: opens every function.
    pub master: String,
    /// Function (default) keys.
    pub function: Vec<String>,
}

impl std::fmt::Debug for FunctionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FunctionKeys(<redacted>)")
    }
}

impl FunctionKeys {
    /// Fresh random keys.
    pub fn generate() -> Self {
        Self {
            master: Uuid::new_v4().simple().to_string(),
            function: vec![Uuid::new_v4().simple().to_string()],
        }
    }

    fn allows(&self, level: AuthLevel, presented: Option<&str>) -> bool {
        match (level, presented) {
            (AuthLevel::Anonymous, _) => true,
            (_, None) => false,
            (AuthLevel::Admin, Some(key)) => key == self.master,
            (AuthLevel::Function, Some(key)) => {
                key == self.master || self.function.iter().any(|k| k == key)
            }
        }
    }
}

/// An HTTP-triggered function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HttpFunction {
    pub(crate) name: String,
    pub(crate) route: String,
    pub(crate) binding: String,
    pub(crate) auth_level: AuthLevel,
    pub(crate) methods: Vec<String>,
    pub(crate) response_binding: Option<String>,
}

struct Front {
    core: Arc<HostCore>,
    prefix: String,
    functions: Vec<HttpFunction>,
    keys: FunctionKeys,
}

/// The front's router.
pub(crate) fn router(
    core: Arc<HostCore>,
    prefix: &str,
    functions: Vec<HttpFunction>,
    keys: FunctionKeys,
) -> Router {
    let front = Arc::new(Front {
        core,
        prefix: prefix.trim_matches('/').to_string(),
        functions,
        keys,
    });
    Router::new().fallback(handle).with_state(front)
}

async fn handle(
    State(front): State<Arc<Front>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().trim_start_matches('/');
    let Some(rest) = strip_prefix(path, &front.prefix) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let matched = front.functions.iter().find_map(|f| {
        let allowed = f.methods.is_empty() || f.methods.iter().any(|m| m == method.as_str());
        match_route(&f.route, rest)
            .filter(|_| allowed)
            .map(|params| (f, params))
    });
    let Some((function, params)) = matched else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let query: Vec<(String, String)> = uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .unwrap_or_default();
    let presented = query
        .iter()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.as_str())
        .or_else(|| headers.get("x-functions-key").and_then(|v| v.to_str().ok()));
    if !front.keys.allows(function.auth_level, presented) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost");
    let request = HttpRequestData {
        url: format!("http://{host}{uri}"),
        method: method.to_string(),
        query,
        headers: headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).to_string(),
                )
            })
            .collect(),
        params: has_parameters(&function.route).then_some(params),
        body: Some(body.to_vec()),
    };
    let invocation_id = Uuid::new_v4();
    let started_at = front.core.clock.now();
    let payload =
        host_payload::http_request(&function.name, &function.binding, &request, started_at);
    let result = front
        .core
        .invoke(&function.name, invocation_id, &payload)
        .await;
    let response = result
        .clone()
        .and_then(|r| match &function.response_binding {
            Some(binding) => host_payload::http_output(&r, binding),
            None => Ok(None),
        });
    let (outcome, logs) = match (&result, &response) {
        (Ok(r), Ok(_)) => (Ok(()), r.logs.clone()),
        (Err(e), _) | (Ok(_), Err(e)) => (Err(e.clone()), Vec::new()),
    };
    front.core.record(InvocationRecord {
        function: function.name.clone(),
        invocation_id,
        trigger: TriggerDetail::Http {
            method: method.to_string(),
            path: uri.path().to_string(),
        },
        started_at,
        outcome,
        logs,
    });
    match response {
        Ok(Some(output)) => {
            let status = StatusCode::from_u16(output.status).unwrap_or(StatusCode::OK);
            let mut answer = (status, output.body).into_response();
            for (name, value) in output.headers {
                if let (Ok(name), Ok(value)) = (
                    HeaderName::from_bytes(name.as_bytes()),
                    HeaderValue::from_str(&value),
                ) {
                    answer.headers_mut().insert(name, value);
                }
            }
            answer
        }
        Ok(None) => StatusCode::NO_CONTENT.into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

fn strip_prefix<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    if prefix.is_empty() {
        return Some(path);
    }
    let head = path.get(..prefix.len())?;
    if !head.eq_ignore_ascii_case(prefix) {
        return None;
    }
    let rest = &path[prefix.len()..];
    if rest.is_empty() {
        Some(rest)
    } else {
        rest.strip_prefix('/')
    }
}

fn has_parameters(template: &str) -> bool {
    template.contains('{')
}

/// Matches `path` (without the prefix) against a route template: literal segments
/// (case-insensitive), `{name}`, `{name:constraint}`, optional `{name?}` and catch-all
/// `{*name}`. Returns the parameters.
fn match_route(template: &str, path: &str) -> Option<Map<String, Value>> {
    let template: Vec<&str> = template
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let segments: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let mut params = Map::new();
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .to_string()
    };
    for (i, part) in template.iter().enumerate() {
        let Some(inner) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) else {
            if !segments.get(i)?.eq_ignore_ascii_case(part) {
                return None;
            }
            continue;
        };
        if let Some(name) = inner.strip_prefix('*') {
            let rest: Vec<String> = segments.iter().skip(i).map(|s| decode(s)).collect();
            if !rest.is_empty() {
                params.insert(param_name(name), Value::String(rest.join("/")));
            }
            return Some(params);
        }
        let optional = inner.ends_with('?');
        let name = param_name(inner.trim_end_matches('?'));
        match segments.get(i) {
            Some(segment) => {
                params.insert(name, Value::String(decode(segment)));
            }
            None if optional => return Some(params),
            None => return None,
        }
    }
    (segments.len() == template.len()).then_some(params)
}

fn param_name(spec: &str) -> String {
    spec.split(':').next().unwrap_or(spec).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_like_the_host() {
        let p = match_route("status/{*cluster}", "status/subscriptions/s/rg").unwrap();
        assert_eq!(p["cluster"], "subscriptions/s/rg");
        assert!(
            match_route("status/{*cluster}", "Status")
                .unwrap()
                .is_empty()
        );
        assert!(match_route("status/{*cluster}", "other").is_none());
        let p = match_route("items/{id:int}/{part?}", "items/5").unwrap();
        assert_eq!(p["id"], "5");
        assert!(match_route("items/{id}", "items/5/extra").is_none());
        assert_eq!(strip_prefix("api/status", "api"), Some("status"));
        assert_eq!(strip_prefix("apix/status", "api"), None);
    }

    #[test]
    fn keys_follow_the_auth_level() {
        let keys = FunctionKeys {
            master: "m".into(),
            function: vec!["f".into()],
        };
        let secret = FunctionKeys {
            master: "MASTER-SECRET".into(),
            function: vec!["FUNCTION-SECRET".into()],
        };
        assert!(!format!("{secret:?}").contains("SECRET"));
        assert!(keys.allows(AuthLevel::Anonymous, None));
        assert!(!keys.allows(AuthLevel::Function, None));
        assert!(keys.allows(AuthLevel::Function, Some("f")));
        assert!(keys.allows(AuthLevel::Function, Some("m")));
        assert!(!keys.allows(AuthLevel::Admin, Some("f")));
        assert!(!keys.allows(AuthLevel::Function, Some("x")));
    }
}

//! The `QueryRequest` body, read as Json.NET reads it (property names case-insensitive,
//! properties the spec does not define ignored, `null` = absent) and checked against the
//! spec's types, ranges and enums (2022-10-01, identical in 2021-03-01). The stand-in answers
//! `resultFormat: objectArray` only and computes no facets: `table` and a non-empty `facets`
//! answer 400 saying so.

use serde_json::{Map, Value};

use super::error::GraphError;
use crate::arm::validate::jsonnet;

/// Largest `$top` (spec: `maximum: 1000`).
pub const MAX_TOP: u32 = 1000;

/// A validated request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryRequest {
    /// `subscriptions`, if present.
    pub subscriptions: Option<Vec<String>>,
    /// `managementGroups`, if present.
    pub management_groups: Option<Vec<String>>,
    /// `query`.
    pub query: String,
    /// `options.$top`.
    pub top: Option<u32>,
    /// `options.$skip`.
    pub skip: Option<u32>,
    /// `options.$skipToken`.
    pub skip_token: Option<String>,
}

fn field<'a>(map: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    map.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
        .filter(|v| !v.is_null())
}

fn mistyped(path: &str, value: &Value, expected: &str) -> GraphError {
    GraphError::invalid_content(jsonnet::conversion_failed(value, expected, path))
}

fn strings(map: &Map<String, Value>, name: &str) -> Result<Option<Vec<String>>, GraphError> {
    let Some(value) = field(map, name) else {
        return Ok(None);
    };
    let Value::Array(items) = value else {
        return Err(mistyped(name, value, "System.String[]"));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            item.as_str()
                .map(str::to_string)
                .ok_or_else(|| mistyped(&format!("{name}[{i}]"), item, "System.String"))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn int32(
    map: &Map<String, Value>,
    name: &str,
    min: u32,
    max: u32,
) -> Result<Option<u32>, GraphError> {
    let Some(value) = field(map, name) else {
        return Ok(None);
    };
    let path = format!("options.{name}");
    let n = value
        .as_i64()
        .filter(|n| i32::try_from(*n).is_ok())
        .ok_or_else(|| mistyped(&path, value, "System.Int32"))?;
    match u32::try_from(n) {
        Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
        _ => Err(GraphError::bad_request(
            "InvalidRequestContent",
            format!("The value of '{path}' must be between {min} and {max}; got {n}."),
        )),
    }
}

fn one_of(
    map: &Map<String, Value>,
    name: &str,
    allowed: &[&'static str],
) -> Result<Option<&'static str>, GraphError> {
    let Some(value) = field(map, name) else {
        return Ok(None);
    };
    let path = format!("options.{name}");
    let text = value
        .as_str()
        .ok_or_else(|| mistyped(&path, value, "System.String"))?;
    allowed
        .iter()
        .find(|a| a.eq_ignore_ascii_case(text))
        .copied()
        .map(Some)
        .ok_or_else(|| {
            GraphError::invalid_content(jsonnet::located(
                &format!(
                    "Error converting value \"{text}\" to type '{name}': expected one of {}.",
                    allowed.join(", ")
                ),
                &path,
                None,
            ))
        })
}

/// Parses and validates the raw body.
///
/// # Errors
/// 400 in Resource Graph's shape for any violation.
pub fn parse(raw: &[u8]) -> Result<QueryRequest, GraphError> {
    if raw.is_empty() {
        return Err(GraphError::invalid_content(
            "The request body is required and must be a QueryRequest object",
        ));
    }
    let body: Value = serde_json::from_slice(raw)
        .map_err(|e| GraphError::invalid_content(jsonnet::syntax(&e)))?;
    let Value::Object(map) = &body else {
        return Err(mistyped("", &body, "QueryRequest"));
    };
    let query = match field(map, "query") {
        None => {
            return Err(GraphError::invalid_content(jsonnet::required_missing(
                "query", "",
            )));
        }
        Some(Value::String(q)) => q.clone(),
        Some(other) => return Err(mistyped("query", other, "System.String")),
    };
    if query.trim().is_empty() {
        return Err(GraphError::invalid_query(
            "EmptyQuery",
            "The query is empty.",
        ));
    }
    let subscriptions = strings(map, "subscriptions")?;
    let management_groups = strings(map, "managementGroups")?;
    if let Some(facets) = field(map, "facets") {
        match facets {
            Value::Array(items) if items.is_empty() => {}
            Value::Array(_) => {
                return Err(GraphError::bad_request(
                    "FacetsNotSupportedByStandIn",
                    "The Resource Graph stand-in computes no facets; send 'facets' empty or leave it out.",
                ));
            }
            other => return Err(mistyped("facets", other, "FacetRequest[]")),
        }
    }
    let empty = Map::new();
    let options = match field(map, "options") {
        None => &empty,
        Some(Value::Object(o)) => o,
        Some(other) => return Err(mistyped("options", other, "QueryRequestOptions")),
    };
    let top = int32(options, "$top", 1, MAX_TOP)?;
    let skip = int32(options, "$skip", 0, i32::MAX.unsigned_abs())?;
    let skip_token = match field(options, "$skipToken") {
        None => None,
        Some(Value::String(t)) => Some(t.clone()),
        Some(other) => return Err(mistyped("options.$skipToken", other, "System.String")),
    };
    if one_of(options, "resultFormat", &["table", "objectArray"])? == Some("table") {
        return Err(GraphError::bad_request(
            "ResultFormatNotSupportedByStandIn",
            "The Resource Graph stand-in answers only resultFormat 'objectArray' (the default); it does not produce 'table' results.",
        ));
    }
    one_of(
        options,
        "authorizationScopeFilter",
        &[
            "AtScopeAndBelow",
            "AtScopeAndAbove",
            "AtScopeExact",
            "AtScopeAboveAndBelow",
        ],
    )?;
    if let Some(v) = field(options, "allowPartialScopes")
        && !v.is_boolean()
    {
        return Err(mistyped("options.allowPartialScopes", v, "System.Boolean"));
    }
    Ok(QueryRequest {
        subscriptions,
        management_groups,
        query,
        top,
        skip,
        skip_token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parsed(body: Value) -> Result<QueryRequest, GraphError> {
        parse(&serde_json::to_vec(&body).unwrap())
    }

    fn detail(e: &GraphError) -> &str {
        &e.details[0].0
    }

    #[test]
    fn a_full_request_reads_case_insensitively() {
        let r = parsed(json!({
            "Subscriptions": ["a"], "query": "q", "facets": [],
            "options": {"$TOP": 5, "$skip": 0, "$skipToken": "t", "resultFormat": "objectarray",
                        "allowPartialScopes": true, "authorizationScopeFilter": "AtScopeExact"},
            "unknown": 1
        }))
        .unwrap();
        assert_eq!(r.subscriptions, Some(vec!["a".to_string()]));
        assert_eq!(
            (r.top, r.skip, r.skip_token.as_deref()),
            (Some(5), Some(0), Some("t"))
        );
        assert_eq!(r.management_groups, None);
    }

    #[test]
    fn violations_answer_400() {
        for body in [
            json!({}),
            json!({"query": 1}),
            json!({"query": "q", "subscriptions": "s"}),
            json!({"query": "q", "managementGroups": [1]}),
            json!({"query": "q", "options": {"$top": 0}}),
            json!({"query": "q", "options": {"$top": 1001}}),
            json!({"query": "q", "options": {"$top": 2.5}}),
            json!({"query": "q", "options": {"$skip": -1}}),
            json!({"query": "q", "options": {"resultFormat": "csv"}}),
            json!({"query": "q", "options": {"authorizationScopeFilter": "Everywhere"}}),
            json!({"query": "q", "options": {"allowPartialScopes": "yes"}}),
            json!({"query": "q", "options": []}),
            json!({"query": "q", "facets": {}}),
            json!([]),
        ] {
            let e = parsed(body.clone()).unwrap_err();
            assert_eq!(e.status.as_u16(), 400, "{body}");
            assert_eq!(detail(&e), "InvalidRequestContent", "{body}");
        }
        assert_eq!(
            detail(
                &parsed(json!({"query": "q", "options": {"resultFormat": "table"}})).unwrap_err()
            ),
            "ResultFormatNotSupportedByStandIn"
        );
        assert_eq!(
            detail(
                &parsed(json!({"query": "q", "facets": [{"expression": "location"}]})).unwrap_err()
            ),
            "FacetsNotSupportedByStandIn"
        );
        assert_eq!(
            detail(&parsed(json!({"query": "  "})).unwrap_err()),
            "InvalidQuery"
        );
        assert_eq!(detail(&parse(b"{").unwrap_err()), "InvalidRequestContent");
        assert_eq!(detail(&parse(b"").unwrap_err()), "InvalidRequestContent");
    }
}

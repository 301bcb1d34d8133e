//! Request validation as Azure does it, one file per provider, written from the specs in
//! `shared/azure-specs/` (required properties, types, enums, discriminators, name patterns).
//! This module holds the shared reader: it walks a JSON body and turns every violation into
//! ARM's 400 — `InvalidRequestContent` for missing or mistyped properties (Json.NET's
//! wording, as ARM relays it), `InvalidParameter` for values the service refuses.

pub mod authorization;
pub mod container_service;
pub mod data_protection;
pub mod extensions;
pub mod jsonnet;
pub mod names;
pub mod resources;
pub mod restore;
pub mod storage;

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::error::ArmError;

/// A JSON object being validated, with its path for messages (`properties.policyInfo`).
#[derive(Debug, Clone, Copy)]
pub struct Obj<'a> {
    map: &'a Map<String, Value>,
    path: &'a str,
}

/// Owned path text for nested readers.
pub fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// `InvalidRequestContent`: required property `key` is absent from the object at `path`.
pub fn missing(path: &str, key: &str) -> ArmError {
    ArmError::invalid_request_content(jsonnet::required_missing(key, path))
        .with_target(join(path, key))
}

fn mistyped(path: &str, value: &Value, expected: &str) -> ArmError {
    let error =
        ArmError::invalid_request_content(jsonnet::conversion_failed(value, expected, path));
    if path.is_empty() {
        error
    } else {
        error.with_target(path.to_string())
    }
}

/// The request body as an object, or `InvalidRequestContent`.
pub fn body_object(body: Option<&Value>) -> Result<&Map<String, Value>, ArmError> {
    match body {
        Some(Value::Object(map)) => Ok(map),
        Some(other) => Err(mistyped("", other, "object")),
        None => Err(ArmError::invalid_request_content(
            "The request body is required and must be a JSON object",
        )),
    }
}

impl<'a> Obj<'a> {
    /// A reader over `map` located at `path`.
    pub fn new(map: &'a Map<String, Value>, path: &'a str) -> Self {
        Self { map, path }
    }

    /// The object's path.
    pub fn path(&self) -> &'a str {
        self.path
    }

    /// The underlying map.
    pub fn map(&self) -> &'a Map<String, Value> {
        self.map
    }

    /// The raw value of `key`, treating JSON `null` as absent.
    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    /// The path of `key`.
    pub fn key_path(&self, key: &str) -> String {
        join(self.path, key)
    }

    /// Optional string.
    pub fn opt_str(&self, key: &str) -> Result<Option<&'a str>, ArmError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(mistyped(&self.key_path(key), other, "System.String")),
        }
    }

    /// Required string.
    pub fn req_str(&self, key: &str) -> Result<&'a str, ArmError> {
        self.opt_str(key)?.ok_or_else(|| missing(self.path, key))
    }

    /// Optional boolean.
    pub fn opt_bool(&self, key: &str) -> Result<Option<bool>, ArmError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(mistyped(&self.key_path(key), other, "System.Boolean")),
        }
    }

    /// Required boolean.
    pub fn req_bool(&self, key: &str) -> Result<bool, ArmError> {
        self.opt_bool(key)?.ok_or_else(|| missing(self.path, key))
    }

    /// Optional integer.
    pub fn opt_i64(&self, key: &str) -> Result<Option<i64>, ArmError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_i64()
                .map(Some)
                .ok_or_else(|| mistyped(&self.key_path(key), v, "System.Int64")),
        }
    }

    /// Optional number.
    pub fn opt_f64(&self, key: &str) -> Result<Option<f64>, ArmError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| mistyped(&self.key_path(key), v, "System.Double")),
        }
    }

    /// Optional nested object.
    pub fn opt_obj(&self, key: &str) -> Result<Option<&'a Map<String, Value>>, ArmError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Object(m)) => Ok(Some(m)),
            Some(other) => Err(mistyped(&self.key_path(key), other, "object")),
        }
    }

    /// Required nested object.
    pub fn req_obj(&self, key: &str) -> Result<&'a Map<String, Value>, ArmError> {
        self.opt_obj(key)?.ok_or_else(|| missing(self.path, key))
    }

    /// Optional array.
    pub fn opt_array(&self, key: &str) -> Result<Option<&'a Vec<Value>>, ArmError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(a)) => Ok(Some(a)),
            Some(other) => Err(mistyped(&self.key_path(key), other, "array")),
        }
    }

    /// Required array.
    pub fn req_array(&self, key: &str) -> Result<&'a Vec<Value>, ArmError> {
        self.opt_array(key)?.ok_or_else(|| missing(self.path, key))
    }

    /// Optional array of strings.
    pub fn opt_strings(&self, key: &str) -> Result<Option<Vec<&'a str>>, ArmError> {
        let Some(items) = self.opt_array(key)? else {
            return Ok(None);
        };
        items
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_str().ok_or_else(|| {
                    mistyped(&format!("{}[{i}]", self.key_path(key)), v, "System.String")
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// Optional `{string: string}` map (`additionalProperties: {type: string}`).
    pub fn opt_string_map(&self, key: &str) -> Result<Option<BTreeMap<String, String>>, ArmError> {
        let Some(map) = self.opt_obj(key)? else {
            return Ok(None);
        };
        let mut out = BTreeMap::new();
        for (k, v) in map {
            match v {
                Value::String(s) => {
                    out.insert(k.clone(), s.clone());
                }
                other => {
                    return Err(mistyped(
                        &join(&self.key_path(key), k),
                        other,
                        "System.String",
                    ));
                }
            }
        }
        Ok(Some(out))
    }

    /// Optional string that must be one of `allowed` (exact spelling).
    pub fn opt_enum(&self, key: &str, allowed: &[&str]) -> Result<Option<&'a str>, ArmError> {
        let Some(value) = self.opt_str(key)? else {
            return Ok(None);
        };
        if allowed.contains(&value) {
            Ok(Some(value))
        } else {
            Err(invalid_enum(&self.key_path(key), value, allowed))
        }
    }

    /// Required string that must be one of `allowed`.
    pub fn req_enum(&self, key: &str, allowed: &[&str]) -> Result<&'a str, ArmError> {
        self.opt_enum(key, allowed)?
            .ok_or_else(|| missing(self.path, key))
    }

    /// The required `objectType` discriminator, which must be one of `allowed`.
    pub fn discriminator(&self, allowed: &[&str]) -> Result<&'a str, ArmError> {
        let value = self.req_str("objectType")?;
        if allowed.contains(&value) {
            Ok(value)
        } else {
            Err(ArmError::invalid_parameter(
                &self.key_path("objectType"),
                format!(
                    "'{value}' is not a valid objectType for '{}'. Valid values: {}.",
                    if self.path.is_empty() {
                        "the request"
                    } else {
                        self.path
                    },
                    allowed.join(", ")
                ),
            ))
        }
    }
}

/// The `InvalidParameter` for a value outside an enum.
pub fn invalid_enum(path: &str, value: &str, allowed: &[&str]) -> ArmError {
    ArmError::invalid_parameter(
        path,
        format!(
            "The value '{value}' of property '{path}' is not valid. Allowed values are: {}.",
            allowed.join(", ")
        ),
    )
}

/// An array element: its path and its object.
pub type Element<'a> = (String, &'a Map<String, Value>);

/// Each element of an array as an object reader; `path` names the array.
pub fn objects<'a>(items: &'a [Value], path: &str) -> Result<Vec<Element<'a>>, ArmError> {
    items
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let at = format!("{path}[{i}]");
            match v {
                Value::Object(m) => Ok((at, m)),
                other => Err(mistyped(&at, other, "object")),
            }
        })
        .collect()
}

/// Refuses a PUT that echoes a `provisioningState` different from the resource's
/// (`current` is `None` when the resource does not exist yet).
pub fn check_provisioning_state(
    given: Option<&str>,
    current: Option<&str>,
) -> Result<(), ArmError> {
    let Some(given) = given else {
        return Ok(());
    };
    match current {
        Some(current) if current.eq_ignore_ascii_case(given) => Ok(()),
        Some(current) => Err(ArmError::provisioning_state_mismatch(given, current)),
        None => Err(ArmError::provisioning_state_mismatch(
            given,
            "(none: the resource does not exist)",
        )),
    }
}

/// [`check_provisioning_state`] for a `properties` object.
pub fn check_provisioning_echo(
    properties: Option<&Map<String, Value>>,
    current: Option<&str>,
) -> Result<(), ArmError> {
    check_provisioning_state(
        properties
            .and_then(|p| p.get("provisioningState"))
            .and_then(Value::as_str),
        current,
    )
}

/// A `{string: string}` tags object, if present.
pub fn tags(map: &Map<String, Value>) -> Result<Option<BTreeMap<String, String>>, ArmError> {
    Obj::new(map, "").opt_string_map("tags")
}

/// Whether text is an ISO 8601 duration (`P7D`, `PT4H`, `P1Y2M3DT4H5M6S`).
pub fn is_iso8601_duration(text: &str) -> bool {
    let Some(rest) = text.strip_prefix('P') else {
        return false;
    };
    let (date, time) = match rest.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (rest, None),
    };
    let parts_ok = |part: &str, units: &str| {
        let mut digits = String::new();
        let mut last_unit = None::<usize>;
        for c in part.chars() {
            if c.is_ascii_digit() || c == '.' {
                digits.push(c);
            } else {
                let Some(pos) = units.find(c) else {
                    return false;
                };
                if digits.is_empty() || last_unit.is_some_and(|l| pos <= l) {
                    return false;
                }
                last_unit = Some(pos);
                digits.clear();
            }
        }
        digits.is_empty()
    };
    let date_ok = parts_ok(date, "YMWD");
    let time_ok = time.is_none_or(|t| !t.is_empty() && parts_ok(t, "HMS"));
    date_ok && time_ok && !(date.is_empty() && time.is_none())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn missing_and_mistyped_properties_are_invalid_request_content() {
        let body = json!({"a": 1, "b": null});
        let map = body.as_object().unwrap();
        let obj = Obj::new(map, "properties");
        let err = obj.req_str("x").unwrap_err();
        assert_eq!(err.code, "InvalidRequestContent");
        assert!(
            err.message
                .contains("Required property 'x' not found in JSON. Path 'properties'")
        );
        assert_eq!(err.target.as_deref(), Some("properties.x"));
        assert_eq!(obj.req_str("a").unwrap_err().code, "InvalidRequestContent");
        assert_eq!(obj.opt_str("b").unwrap(), None);
    }

    #[test]
    fn enums_and_discriminators_are_checked_exactly() {
        let body = json!({"objectType": "Nope", "kind": "storagev2"});
        let obj = Obj::new(body.as_object().unwrap(), "");
        assert_eq!(
            obj.discriminator(&["BackupPolicy"]).unwrap_err().code,
            "InvalidParameter"
        );
        assert_eq!(
            obj.opt_enum("kind", &["StorageV2"]).unwrap_err().code,
            "InvalidParameter"
        );
    }

    #[test]
    fn durations_follow_iso_8601() {
        for ok in ["P7D", "PT4H", "P1Y2M3DT4H5M6S", "P30D", "PT30M"] {
            assert!(is_iso8601_duration(ok), "{ok}");
        }
        for bad in ["7D", "P", "PT", "P7", "PD", "P1D2Y", "1 day"] {
            assert!(!is_iso8601_duration(bad), "{bad}");
        }
    }

    #[test]
    fn provisioning_state_echo_must_match() {
        let props = json!({"provisioningState": "Succeeded"});
        let map = props.as_object();
        assert!(check_provisioning_echo(map, Some("succeeded")).is_ok());
        assert!(check_provisioning_echo(map, Some("Updating")).is_err());
        assert!(check_provisioning_echo(None, Some("Updating")).is_ok());
    }
}

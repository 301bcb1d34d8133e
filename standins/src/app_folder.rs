//! The function app folder as the Functions host reads it: `host.json` (custom handler
//! description, Service Bus concurrency, timeouts, HTTP route prefix) and each function's
//! `function.json` (its trigger and bindings; the folder name is the function name). Function
//! folders are read from the app root (the packaged layout) and from `functions/` (the repo's).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};

use super::timespan::{TimeSpanError, parse_timespan};

/// Why the app folder could not be read.
#[derive(Debug, thiserror::Error)]
pub enum AppFolderError {
    /// A file or folder could not be read.
    #[error("could not read {path}: {source}")]
    Read {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A JSON file is malformed or has a field of the wrong type.
    #[error("{path} is invalid: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// host.json has no `customHandler` (or legacy `httpWorker`) section.
    #[error(
        "{0} has no customHandler.description.defaultExecutablePath; this host runs custom handlers only"
    )]
    NoCustomHandler(PathBuf),
    /// A function has no trigger, or more than one.
    #[error("function {function} must have exactly one trigger binding, found {found}")]
    TriggerCount {
        /// The function.
        function: String,
        /// How many.
        found: usize,
    },
    /// A trigger type this host does not run.
    #[error(
        "function {function} uses a {kind} trigger; the local host runs serviceBusTrigger, timerTrigger and httpTrigger"
    )]
    UnsupportedTrigger {
        /// The function.
        function: String,
        /// The trigger type.
        kind: String,
    },
    /// A required binding field is missing.
    #[error("function {function}: binding {binding} has no {field}")]
    MissingField {
        /// The function.
        function: String,
        /// The binding name.
        binding: String,
        /// The field.
        field: &'static str,
    },
    /// A time span setting is malformed.
    #[error("host.json {setting}: {source}")]
    TimeSpan {
        /// The setting.
        setting: &'static str,
        /// The parse error.
        #[source]
        source: TimeSpanError,
    },
    /// A `%NAME%` app-setting reference with no such setting.
    #[error("{used_in} refers to app setting %{name}%, which is not set")]
    UnresolvedSetting {
        /// The setting name.
        name: String,
        /// Where it is used.
        used_in: String,
    },
}

/// The host.json settings the local host honours.
#[derive(Debug, Clone, PartialEq)]
pub struct HostSettings {
    /// `customHandler.description.defaultExecutablePath`.
    pub executable: String,
    /// `customHandler.description.arguments`.
    pub arguments: Vec<String>,
    /// `customHandler.description.workingDirectory`.
    pub working_directory: Option<String>,
    /// `customHandler.enableForwardingHttpRequest`.
    pub enable_forwarding_http_request: bool,
    /// `extensions.serviceBus.maxConcurrentCalls` (default 16), per Service Bus function.
    pub max_concurrent_calls: usize,
    /// `extensions.serviceBus.maxAutoLockRenewalDuration` (default 5 minutes).
    pub max_auto_lock_renewal: Duration,
    /// `functionTimeout`; `None` = unlimited.
    pub function_timeout: Option<Duration>,
    /// `extensions.http.routePrefix` (default `api`).
    pub route_prefix: String,
}

/// How an HTTP function authorizes callers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthLevel {
    /// No key.
    Anonymous,
    /// A function key or the master key.
    Function,
    /// The master key.
    Admin,
}

/// A function's trigger.
#[derive(Debug, Clone, PartialEq)]
pub enum Trigger {
    /// `serviceBusTrigger`.
    ServiceBus {
        /// Binding name (`Data` key).
        binding: String,
        /// `queueName`, possibly `%SETTING%`.
        queue: String,
        /// `dataType: binary`.
        binary: bool,
    },
    /// `timerTrigger`.
    Timer {
        /// Binding name.
        binding: String,
        /// NCRONTAB schedule, possibly `%SETTING%`.
        schedule: String,
        /// `runOnStartup`.
        run_on_startup: bool,
        /// `useMonitor` (default true): whether `ScheduleStatus` is sent.
        use_monitor: bool,
    },
    /// `httpTrigger`.
    Http {
        /// Binding name.
        binding: String,
        /// `authLevel` (default function).
        auth_level: AuthLevel,
        /// Allowed methods, upper case; empty = all.
        methods: Vec<String>,
        /// `route` template; `None` = the function name.
        route: Option<String>,
        /// The `http` output binding's name (`res`, `$return`), if any.
        response_binding: Option<String>,
    },
}

/// One function.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionDefinition {
    /// The folder name.
    pub name: String,
    /// Its trigger.
    pub trigger: Trigger,
    /// `"disabled": true`.
    pub disabled: bool,
}

/// A function app folder.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionApp {
    /// The folder holding host.json.
    pub root: PathBuf,
    /// host.json.
    pub host: HostSettings,
    /// Functions by name.
    pub functions: Vec<FunctionDefinition>,
}

impl FunctionApp {
    /// Reads `root/host.json` and every `function.json` under `root/*/` and `root/functions/*/`.
    ///
    /// # Errors
    /// See [`AppFolderError`].
    pub fn read(root: &Path) -> Result<Self, AppFolderError> {
        let host_path = root.join("host.json");
        let host = read_host(&host_path, &read_json(&host_path)?)?;
        let mut functions = Vec::new();
        for dir in [root.to_path_buf(), root.join("functions")] {
            if !dir.is_dir() {
                continue;
            }
            let entries = std::fs::read_dir(&dir).map_err(|source| AppFolderError::Read {
                path: dir.clone(),
                source,
            })?;
            for entry in entries {
                let entry = entry.map_err(|source| AppFolderError::Read {
                    path: dir.clone(),
                    source,
                })?;
                let path = entry.path().join("function.json");
                if !path.is_file() {
                    continue;
                }
                let name = entry.file_name().to_string_lossy().to_string();
                functions.push(read_function(&name, &path, &read_json(&path)?)?);
            }
        }
        functions.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Self {
            root: root.to_path_buf(),
            host,
            functions,
        })
    }

    /// A function by name.
    pub fn function(&self, name: &str) -> Option<&FunctionDefinition> {
        self.functions
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
    }
}

/// Replaces every `%NAME%` in `text` with the app setting `lookup` returns.
///
/// # Errors
/// [`AppFolderError::UnresolvedSetting`] for a setting that is not set.
pub fn resolve_settings(
    text: &str,
    used_in: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, AppFolderError> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find('%') {
        let Some(len) = rest[start + 1..].find('%') else {
            break;
        };
        let name = &rest[start + 1..start + 1 + len];
        let value = lookup(name).ok_or_else(|| AppFolderError::UnresolvedSetting {
            name: name.to_string(),
            used_in: used_in.to_string(),
        })?;
        out.push_str(&rest[..start]);
        out.push_str(&value);
        rest = &rest[start + len + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

fn read_json(path: &Path) -> Result<Map<String, Value>, AppFolderError> {
    let text = std::fs::read_to_string(path).map_err(|source| AppFolderError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    match serde_json::from_str(&text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(parse_error(path, "the top level must be a JSON object")),
        Err(e) => Err(parse_error(path, &e.to_string())),
    }
}

fn parse_error(path: &Path, message: &str) -> AppFolderError {
    AppFolderError::Parse {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

/// Configuration keys are case-insensitive in the host.
fn get<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    map.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

fn object<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Map<String, Value>> {
    get(map, key).and_then(Value::as_object)
}

fn text(map: &Map<String, Value>, key: &str) -> Option<String> {
    get(map, key).and_then(Value::as_str).map(str::to_string)
}

fn flag(map: &Map<String, Value>, key: &str, default: bool) -> bool {
    match get(map, key) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => default,
    }
}

fn timespan(
    map: &Map<String, Value>,
    key: &str,
    setting: &'static str,
) -> Result<Option<Duration>, AppFolderError> {
    match text(map, key) {
        None => Ok(None),
        Some(s) if s.trim() == "-1" => Ok(None),
        Some(s) => parse_timespan(&s)
            .map(Some)
            .map_err(|source| AppFolderError::TimeSpan { setting, source }),
    }
}

fn read_host(path: &Path, json: &Map<String, Value>) -> Result<HostSettings, AppFolderError> {
    let handler = object(json, "customHandler").or_else(|| object(json, "httpWorker"));
    let description = handler.and_then(|h| object(h, "description"));
    let executable = description
        .and_then(|d| text(d, "defaultExecutablePath"))
        .filter(|e| !e.trim().is_empty())
        .ok_or_else(|| AppFolderError::NoCustomHandler(path.to_path_buf()))?;
    let arguments = match description.and_then(|d| get(d, "arguments")) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str().map(str::to_string).ok_or_else(|| {
                    parse_error(path, "customHandler.description.arguments must be strings")
                })
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(parse_error(
                path,
                "customHandler.description.arguments must be an array",
            ));
        }
    };
    let extensions = object(json, "extensions");
    let service_bus = extensions.and_then(|e| object(e, "serviceBus"));
    let legacy_options = service_bus.and_then(|s| object(s, "messageHandlerOptions"));
    let max_concurrent_calls = match service_bus
        .and_then(|s| get(s, "maxConcurrentCalls"))
        .or_else(|| legacy_options.and_then(|o| get(o, "maxConcurrentCalls")))
    {
        None => 16,
        Some(v) => v
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .filter(|n| *n > 0)
            .ok_or_else(|| {
                parse_error(
                    path,
                    "extensions.serviceBus.maxConcurrentCalls must be a positive integer",
                )
            })?,
    };
    let max_auto_lock_renewal = match service_bus {
        Some(s) => timespan(
            s,
            "maxAutoLockRenewalDuration",
            "extensions.serviceBus.maxAutoLockRenewalDuration",
        )?,
        None => None,
    }
    .unwrap_or(Duration::from_secs(300));
    let route_prefix = extensions
        .and_then(|e| object(e, "http"))
        .and_then(|h| text(h, "routePrefix"))
        .unwrap_or_else(|| "api".to_string());
    Ok(HostSettings {
        executable,
        arguments,
        working_directory: description.and_then(|d| text(d, "workingDirectory")),
        enable_forwarding_http_request: handler
            .is_some_and(|h| flag(h, "enableForwardingHttpRequest", false)),
        max_concurrent_calls,
        max_auto_lock_renewal,
        function_timeout: timespan(json, "functionTimeout", "functionTimeout")?,
        route_prefix: route_prefix.trim_matches('/').to_string(),
    })
}

fn read_function(
    name: &str,
    path: &Path,
    json: &Map<String, Value>,
) -> Result<FunctionDefinition, AppFolderError> {
    let Some(Value::Array(bindings)) = get(json, "bindings") else {
        return Err(parse_error(path, "`bindings` must be an array"));
    };
    let bindings: Vec<&Map<String, Value>> = bindings
        .iter()
        .map(|b| {
            b.as_object()
                .ok_or_else(|| parse_error(path, "each binding must be an object"))
        })
        .collect::<Result<_, _>>()?;
    let kind = |b: &Map<String, Value>| text(b, "type").unwrap_or_default();
    let triggers: Vec<&&Map<String, Value>> = bindings
        .iter()
        .filter(|b| kind(b).to_ascii_lowercase().ends_with("trigger"))
        .collect();
    let [trigger] = triggers[..] else {
        return Err(AppFolderError::TriggerCount {
            function: name.to_string(),
            found: triggers.len(),
        });
    };
    let binding = text(trigger, "name").ok_or_else(|| AppFolderError::MissingField {
        function: name.to_string(),
        binding: kind(trigger),
        field: "name",
    })?;
    let missing = |field: &'static str| AppFolderError::MissingField {
        function: name.to_string(),
        binding: binding.clone(),
        field,
    };
    let trigger = match kind(trigger).to_ascii_lowercase().as_str() {
        "servicebustrigger" => Trigger::ServiceBus {
            queue: text(trigger, "queueName").ok_or_else(|| missing("queueName"))?,
            binary: text(trigger, "dataType").is_some_and(|d| d.eq_ignore_ascii_case("binary")),
            binding,
        },
        "timertrigger" => Trigger::Timer {
            schedule: text(trigger, "schedule").ok_or_else(|| missing("schedule"))?,
            run_on_startup: flag(trigger, "runOnStartup", false),
            use_monitor: flag(trigger, "useMonitor", true),
            binding,
        },
        "httptrigger" => {
            let auth_level = match text(trigger, "authLevel")
                .unwrap_or_else(|| "function".into())
                .to_ascii_lowercase()
                .as_str()
            {
                "anonymous" => AuthLevel::Anonymous,
                "function" => AuthLevel::Function,
                "admin" => AuthLevel::Admin,
                other => {
                    return Err(parse_error(
                        path,
                        &format!("authLevel {other:?} is not anonymous, function or admin"),
                    ));
                }
            };
            let methods = match get(trigger, "methods") {
                Some(Value::Array(items)) => items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_ascii_uppercase)
                    .collect(),
                _ => Vec::new(),
            };
            let response_binding = bindings
                .iter()
                .find(|b| {
                    kind(b).eq_ignore_ascii_case("http")
                        && text(b, "direction").is_some_and(|d| d.eq_ignore_ascii_case("out"))
                })
                .and_then(|b| text(b, "name"));
            Trigger::Http {
                auth_level,
                methods,
                route: text(trigger, "route").filter(|r| !r.trim().is_empty()),
                response_binding,
                binding,
            }
        }
        other => {
            return Err(AppFolderError::UnsupportedTrigger {
                function: name.to_string(),
                kind: other.to_string(),
            });
        }
    };
    Ok(FunctionDefinition {
        name: name.to_string(),
        trigger,
        disabled: flag(json, "disabled", false),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_repository_app_folder() {
        let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
        let app = FunctionApp::read(root).unwrap();
        assert_eq!(app.host.arguments, vec!["serve".to_string()]);
        assert_eq!(app.host.max_concurrent_calls, 16);
        assert_eq!(app.host.function_timeout, Some(Duration::from_secs(600)));
        assert_eq!(app.host.route_prefix, "api");
        let names: Vec<&str> = app.functions.iter().map(|f| f.name.as_str()).collect();
        for expected in backup_pilot::handler::names::ALL {
            assert!(
                names.contains(&expected),
                "{expected} missing from {names:?}"
            );
        }
        assert!(matches!(
            &app.function("cluster-events").unwrap().trigger,
            Trigger::ServiceBus { queue, binary: true, .. } if queue == "cluster-events"
        ));
        assert!(matches!(
            &app.function("status").unwrap().trigger,
            Trigger::Http { auth_level: AuthLevel::Function, response_binding: Some(res), .. } if res == "res"
        ));
    }

    #[test]
    fn settings_are_resolved_or_reported() {
        let lookup = |k: &str| (k == "S").then(|| "0 0 3 * * *".to_string());
        assert_eq!(
            resolve_settings("%S%", "schedule", lookup).unwrap(),
            "0 0 3 * * *"
        );
        assert_eq!(resolve_settings("plain", "x", lookup).unwrap(), "plain");
        let err = resolve_settings("%MISSING%", "restore-drills schedule", lookup).unwrap_err();
        assert!(err.to_string().contains("MISSING"), "{err}");
    }

    #[test]
    fn malformed_functions_are_reported_with_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("host.json"),
            r#"{"version":"2.0","customHandler":{"description":{"defaultExecutablePath":"h"}}}"#,
        )
        .unwrap();
        let f = dir.path().join("two");
        std::fs::create_dir(&f).unwrap();
        std::fs::write(
            f.join("function.json"),
            r#"{"bindings":[{"type":"timerTrigger","name":"a","schedule":"* * * * * *"},{"type":"httpTrigger","name":"b"}]}"#,
        )
        .unwrap();
        assert!(matches!(
            FunctionApp::read(dir.path()),
            Err(AppFolderError::TriggerCount { found: 2, .. })
        ));
        std::fs::write(dir.path().join("host.json"), r#"{"version":"2.0"}"#).unwrap();
        assert!(matches!(
            FunctionApp::read(dir.path()),
            Err(AppFolderError::NoCustomHandler(_))
        ));
    }
}

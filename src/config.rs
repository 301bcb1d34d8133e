//! Runtime configuration from environment variables (Functions app settings arrive as
//! environment variables). Every problem is collected and reported at once; secrets are
//! never echoed back. The README's configuration table lists every variable.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::auth::CredentialSource;
use crate::bus::sas::SasKey;
use crate::engine::{Queues, RetryPolicy};

/// The port the Functions host gives the handler.
pub const PORT_VAR: &str = "FUNCTIONS_CUSTOMHANDLER_PORT";

/// How the service authenticates to Service Bus.
#[derive(Debug, Clone)]
pub enum ServiceBusAuth {
    /// Entra token from the configured credential.
    Entra,
    /// Shared access key from a connection string.
    Sas(SasKey),
}

/// Everything the runtime needs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Port to listen on (127.0.0.1).
    pub port: u16,
    /// Service Bus base URL, e.g. `https://ns.servicebus.windows.net`.
    pub service_bus_url: String,
    /// How to authenticate to Service Bus.
    pub service_bus_auth: ServiceBusAuth,
    /// Azure Resource Manager base URL.
    pub arm_url: String,
    /// Which Entra credential to use.
    pub credential: CredentialSource,
    /// Queue names.
    pub queues: Queues,
    /// Step retry backoff.
    pub retry: RetryPolicy,
    /// Virtual time: `Some((epoch, scale))` makes the service run on a scaled clock (local
    /// stand-ins only).
    pub time_scale: Option<(SystemTime, f64)>,
    /// Largest invocation request accepted from the host.
    pub max_request_bytes: usize,
    /// Kubernetes side: credentials, server override, hooks.
    pub kube: crate::kube::KubeSettings,
}

/// Every configuration problem found, one per line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
pub struct ConfigErrors(pub Vec<String>);

impl Config {
    /// Reads the process environment.
    ///
    /// # Errors
    /// Every invalid or missing setting, listed together.
    pub fn from_env() -> Result<Self, ConfigErrors> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads configuration through `get` (the environment, or a map in tests).
    ///
    /// # Errors
    /// Every invalid or missing setting, listed together.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigErrors> {
        let mut problems = Vec::new();
        let get = |k: &str| get(k).filter(|v| !v.trim().is_empty());

        let port = parse_or(&get, PORT_VAR, 8080u16, &mut problems);
        let credential = CredentialSource::from_env(get).unwrap_or_else(|e| {
            problems.push(e);
            CredentialSource::Developer
        });

        let connection_string = get("BACKUP_PILOT_SERVICEBUS_CONNECTION_STRING");
        let sas = connection_string
            .as_deref()
            .and_then(|cs| match SasKey::parse(cs) {
                Ok(k) => Some(k),
                Err(e) => {
                    problems.push(format!("BACKUP_PILOT_SERVICEBUS_CONNECTION_STRING: {e}"));
                    None
                }
            });
        let service_bus_url = get("BACKUP_PILOT_SERVICEBUS_URL")
            .or_else(|| {
                get("ServiceBusConnection__fullyQualifiedNamespace")
                    .map(|ns| format!("https://{ns}"))
            })
            .or_else(|| sas.as_ref().map(|k| k.endpoint.clone()));
        let service_bus_url = match service_bus_url {
            Some(u) => check_url("BACKUP_PILOT_SERVICEBUS_URL", &u, &mut problems),
            None => {
                problems.push(
                    "no Service Bus namespace: set ServiceBusConnection__fullyQualifiedNamespace (as the trigger binding does), BACKUP_PILOT_SERVICEBUS_URL, or BACKUP_PILOT_SERVICEBUS_CONNECTION_STRING".into(),
                );
                String::new()
            }
        };
        let service_bus_auth = match sas {
            Some(k) if get("BACKUP_PILOT_SERVICEBUS_AUTH").as_deref() != Some("entra") => {
                ServiceBusAuth::Sas(k)
            }
            _ => ServiceBusAuth::Entra,
        };
        let arm_url = check_url(
            "BACKUP_PILOT_ARM_URL",
            &get("BACKUP_PILOT_ARM_URL").unwrap_or_else(|| "https://management.azure.com".into()),
            &mut problems,
        );

        let defaults = Queues::default();
        let queues = Queues {
            cluster_events: get("BACKUP_PILOT_QUEUE_CLUSTER_EVENTS")
                .unwrap_or(defaults.cluster_events),
            workflow: get("BACKUP_PILOT_QUEUE_WORKFLOW").unwrap_or(defaults.workflow),
            restore_requests: get("BACKUP_PILOT_QUEUE_RESTORE_REQUESTS")
                .unwrap_or(defaults.restore_requests),
            dead_letters: get("BACKUP_PILOT_QUEUE_DEAD_LETTERS").unwrap_or(defaults.dead_letters),
        };

        let base = RetryPolicy::default();
        let retry = RetryPolicy {
            initial: Duration::from_secs(parse_or(
                &get,
                "BACKUP_PILOT_RETRY_INITIAL_SECONDS",
                base.initial.as_secs(),
                &mut problems,
            )),
            max: Duration::from_secs(parse_or(
                &get,
                "BACKUP_PILOT_RETRY_MAX_SECONDS",
                base.max.as_secs(),
                &mut problems,
            )),
            ..base
        };
        if retry.initial.is_zero() || retry.initial > retry.max {
            problems.push("BACKUP_PILOT_RETRY_INITIAL_SECONDS must be > 0 and <= BACKUP_PILOT_RETRY_MAX_SECONDS".into());
        }

        let time_scale = match get("BACKUP_PILOT_TIME_SCALE") {
            None => None,
            Some(raw) => match raw.parse::<f64>() {
                Ok(scale) if scale.is_finite() && scale >= 1.0 => {
                    let epoch_ms: u64 =
                        parse_or(&get, "BACKUP_PILOT_CLOCK_EPOCH_MS", 0, &mut problems);
                    let epoch = if epoch_ms == 0 {
                        SystemTime::now()
                    } else {
                        UNIX_EPOCH + Duration::from_millis(epoch_ms)
                    };
                    Some((epoch, scale))
                }
                _ => {
                    problems.push(format!(
                        "BACKUP_PILOT_TIME_SCALE must be a number >= 1, got {raw:?}"
                    ));
                    None
                }
            },
        };
        let max_request_bytes = parse_or(
            &get,
            "BACKUP_PILOT_MAX_REQUEST_BYTES",
            16 * 1024 * 1024usize,
            &mut problems,
        );

        let kube = crate::kube::KubeSettings::from_lookup(&get, &mut problems);

        if problems.is_empty() {
            Ok(Self {
                port,
                service_bus_url,
                service_bus_auth,
                arm_url,
                credential,
                queues,
                retry,
                time_scale,
                max_request_bytes,
                kube,
            })
        } else {
            Err(ConfigErrors(problems))
        }
    }
}

fn parse_or<T: std::str::FromStr>(
    get: &impl Fn(&str) -> Option<String>,
    key: &str,
    default: T,
    problems: &mut Vec<String>,
) -> T {
    match get(key) {
        None => default,
        Some(raw) => raw.trim().parse().unwrap_or_else(|_| {
            problems.push(format!(
                "{key} must be a {}, got {raw:?}",
                std::any::type_name::<T>()
            ));
            default
        }),
    }
}

fn check_url(key: &str, raw: &str, problems: &mut Vec<String>) -> String {
    match url::Url::parse(raw) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => raw.trim_end_matches('/').to_string(),
        _ => {
            problems.push(format!("{key} must be an http(s) URL, got {raw:?}"));
            String::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn identity_based_namespace_setting_is_enough() {
        let cfg = Config::from_lookup(lookup(&[(
            "ServiceBusConnection__fullyQualifiedNamespace",
            "ns.servicebus.windows.net",
        )]))
        .unwrap();
        assert_eq!(cfg.service_bus_url, "https://ns.servicebus.windows.net");
        assert!(matches!(cfg.service_bus_auth, ServiceBusAuth::Entra));
        assert_eq!(cfg.arm_url, "https://management.azure.com");
        assert_eq!(cfg.port, 8080);
    }

    #[test]
    fn every_problem_is_listed_at_once_without_secrets() {
        let err = Config::from_lookup(lookup(&[
            (PORT_VAR, "http"),
            ("BACKUP_PILOT_ARM_URL", "ftp://x"),
            ("BACKUP_PILOT_TIME_SCALE", "0.1"),
            (
                "BACKUP_PILOT_SERVICEBUS_CONNECTION_STRING",
                "Endpoint=sb://ns/;SharedAccessKey=TOPSECRET",
            ),
        ]))
        .unwrap_err();
        let text = err.to_string();
        assert_eq!(err.0.len(), 5, "{text}");
        assert!(!text.contains("TOPSECRET"));
        assert!(
            text.contains(PORT_VAR)
                && text.contains("BACKUP_PILOT_ARM_URL")
                && text.contains("TIME_SCALE")
        );
    }
}

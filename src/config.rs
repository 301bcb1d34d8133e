//! Runtime configuration from environment variables (Functions app settings arrive as
//! environment variables). Every problem is collected and reported at once; secrets are
//! never echoed back. The README's configuration table lists every variable.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::auth::CredentialSource;
use crate::bus::Queues;
use crate::bus::sas::SasKey;
use crate::engine::RetryPolicy;
use crate::status::DEFAULT_HISTORY_LIMIT;
use crate::status::account_sas::{AZURITE_ACCOUNT, AccountKey};
use crate::status::blob::DEFAULT_CONTAINER;

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

/// How the status store authenticates.
#[derive(Clone, PartialEq, Eq)]
pub enum StatusAuth {
    /// Entra token from the configured credential (Azure; https only).
    Entra,
    /// A SAS token (`BACKUP_PILOT_STATUS_BLOB_SAS`).
    Sas(String),
    /// An account key that signs SAS tokens (`BACKUP_PILOT_STATUS_BLOB_ACCOUNT_KEY`, or
    /// Azurite's well-known key on a loopback `devstoreaccount1` URL).
    AccountKey(AccountKey),
}

impl std::fmt::Debug for StatusAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Entra => f.write_str("Entra"),
            Self::Sas(_) => f.write_str("Sas(<redacted>)"),
            Self::AccountKey(k) => write!(f, "AccountKey({}, <redacted>)", k.account()),
        }
    }
}

/// Where status and step history are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusStoreConfig {
    /// In this process's memory (local runs; status says so).
    Memory,
    /// In Blob storage.
    Blob {
        /// The Blob service URL (`BACKUP_PILOT_STATUS_BLOB_URL`).
        service_url: url::Url,
        /// The container (`BACKUP_PILOT_STATUS_CONTAINER`).
        container: String,
        /// How to authenticate.
        auth: StatusAuth,
        /// Step records kept per cluster (`BACKUP_PILOT_STATUS_HISTORY`).
        history_limit: usize,
    },
}

impl StatusStoreConfig {
    /// Reads the status-store settings alone (the `status` command needs nothing else).
    ///
    /// # Errors
    /// Every invalid setting, listed together.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigErrors> {
        let mut problems = Vec::new();
        let get = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let store = status_store(&get, &mut problems);
        if problems.is_empty() {
            Ok(store)
        } else {
            Err(ConfigErrors(problems))
        }
    }
}

fn status_store(
    get: &impl Fn(&str) -> Option<String>,
    problems: &mut Vec<String>,
) -> StatusStoreConfig {
    const URL: &str = "BACKUP_PILOT_STATUS_BLOB_URL";
    let Some(raw) = get(URL) else {
        return StatusStoreConfig::Memory;
    };
    let service_url = match url::Url::parse(raw.trim()) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.query().is_none() => u,
        Ok(u) if u.query().is_some() => {
            problems.push(format!(
                "{URL} must not contain a query string (put a SAS in BACKUP_PILOT_STATUS_BLOB_SAS instead)"
            ));
            return StatusStoreConfig::Memory;
        }
        _ => {
            problems.push(format!(
                "{URL} must be an http(s) Blob service URL such as https://<account>.blob.core.windows.net or Azurite's http://127.0.0.1:10000/devstoreaccount1"
            ));
            return StatusStoreConfig::Memory;
        }
    };
    let azurite = matches!(
        service_url.host_str(),
        Some("127.0.0.1" | "localhost" | "[::1]")
    ) && service_url
        .path_segments()
        .and_then(|mut s| s.next())
        .is_some_and(|first| first == AZURITE_ACCOUNT);
    let account = if azurite {
        AZURITE_ACCOUNT.to_string()
    } else {
        service_url
            .host_str()
            .and_then(|h| h.split('.').next())
            .unwrap_or_default()
            .to_string()
    };
    let auth = match (
        get("BACKUP_PILOT_STATUS_BLOB_SAS"),
        get("BACKUP_PILOT_STATUS_BLOB_ACCOUNT_KEY"),
    ) {
        (Some(_), Some(_)) => {
            problems.push("set only one of BACKUP_PILOT_STATUS_BLOB_SAS and BACKUP_PILOT_STATUS_BLOB_ACCOUNT_KEY".into());
            StatusAuth::Entra
        }
        (Some(sas), None) => StatusAuth::Sas(sas.trim().to_string()),
        (None, Some(key)) => match AccountKey::new(&account, &key) {
            Ok(k) => StatusAuth::AccountKey(k),
            Err(e) => {
                problems.push(format!("BACKUP_PILOT_STATUS_BLOB_ACCOUNT_KEY: {e}"));
                StatusAuth::Entra
            }
        },
        (None, None) if azurite => StatusAuth::AccountKey(AccountKey::azurite()),
        (None, None) => StatusAuth::Entra,
    };
    if auth == StatusAuth::Entra && service_url.scheme() != "https" {
        problems.push(format!(
            "{URL} uses http, which Entra authentication does not allow; use the account's https endpoint (or, for Azurite, http://127.0.0.1:<port>/devstoreaccount1)"
        ));
    }
    StatusStoreConfig::Blob {
        service_url,
        container: get("BACKUP_PILOT_STATUS_CONTAINER").unwrap_or_else(|| DEFAULT_CONTAINER.into()),
        auth,
        history_limit: parse_or(
            get,
            "BACKUP_PILOT_STATUS_HISTORY",
            DEFAULT_HISTORY_LIMIT,
            problems,
        ),
    }
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
    /// Token scope for ARM calls.
    pub arm_scope: String,
    /// Polling interval for operations whose response gives no `Retry-After`.
    pub arm_poll: Duration,
    /// `BACKUP_PILOT_ARM_SETTLED_READ_SECONDS`: how long a settled read of a shared resource
    /// is reused (see [`crate::arm::settled`]); 300 by default, 0 reads every time.
    pub arm_settled_read_ttl: Duration,
    /// `BACKUP_PILOT_STEP_BUDGET_SECONDS`: how long one step run may take, in real time
    /// (see [`crate::engine::InvocationBudget`]); 40 s by default, at most
    /// [`MAX_STEP_BUDGET_SECONDS`].
    pub step_budget: Duration,
    /// What onboarding and offboarding do.
    pub onboarding: crate::workflow::settings::OnboardingSettings,
    /// What restores and drills do.
    pub restore: crate::restore::settings::RestoreSettings,
    /// Which Entra credential to use.
    pub credential: CredentialSource,
    /// Queue names.
    pub queues: Queues,
    /// Step retry backoff.
    pub retry: RetryPolicy,
    /// Virtual time: `Some((epoch, scale))` makes the service run on a scaled clock (local
    /// stand-ins only).
    pub time_scale: Option<(SystemTime, f64)>,
    /// A paced virtual clock (`BACKUP_PILOT_CLOCK_PACE_FILE`, local stand-ins only): the file
    /// the local runner writes its clock's changing speed to; wins over `time_scale`.
    pub clock_pace_file: Option<std::path::PathBuf>,
    /// Largest invocation request accepted from the host.
    pub max_request_bytes: usize,
    /// Kubernetes side: credentials, server override, hooks.
    pub kube: crate::kube::KubeSettings,
    /// Where status and step history are kept.
    pub status_store: StatusStoreConfig,
    /// `BACKUP_PILOT_STATUS_STORE=memory`: the in-memory store is intended (local runs), so
    /// its note is information, not a warning.
    pub memory_store_intended: bool,
    /// The roots outbound HTTPS trusts (`BACKUP_PILOT_CA_BUNDLE` beside the system's).
    pub tls: crate::tls::TlsTrust,
}

/// The largest `BACKUP_PILOT_STEP_BUDGET_SECONDS`: with the hand-off budget, an invocation
/// stays well under the queues' 5-minute message lock.
pub const MAX_STEP_BUDGET_SECONDS: u64 = 240;

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

        let arm_scope =
            get("BACKUP_PILOT_ARM_SCOPE").unwrap_or_else(|| crate::auth::ARM_SCOPE.to_string());
        if !arm_scope.ends_with("/.default") {
            problems.push(format!(
                "BACKUP_PILOT_ARM_SCOPE must end with /.default (e.g. {}), got {arm_scope:?}",
                crate::auth::ARM_SCOPE
            ));
        }
        let arm_poll = Duration::from_secs(parse_or(
            &get,
            "BACKUP_PILOT_ARM_POLL_SECONDS",
            20u64,
            &mut problems,
        ));
        if arm_poll.is_zero() {
            problems.push("BACKUP_PILOT_ARM_POLL_SECONDS must be > 0".into());
        }
        let arm_settled_read_ttl = Duration::from_secs(parse_or(
            &get,
            "BACKUP_PILOT_ARM_SETTLED_READ_SECONDS",
            crate::arm::client::SETTLED_READ_TTL.as_secs(),
            &mut problems,
        ));
        let step_budget_seconds = parse_or(
            &get,
            "BACKUP_PILOT_STEP_BUDGET_SECONDS",
            crate::engine::STEP_BUDGET.as_secs(),
            &mut problems,
        );
        if !(1..=MAX_STEP_BUDGET_SECONDS).contains(&step_budget_seconds) {
            problems.push(format!(
                "BACKUP_PILOT_STEP_BUDGET_SECONDS must be 1 to {MAX_STEP_BUDGET_SECONDS} (well under the queues' 5-minute message lock), got {step_budget_seconds}"
            ));
        }
        let step_budget = Duration::from_secs(step_budget_seconds);
        let onboarding = crate::workflow::settings::OnboardingSettings::from_lookup(get)
            .unwrap_or_else(|mut more| {
                problems.append(&mut more);
                crate::workflow::settings::OnboardingSettings::default()
            });
        let restore = crate::restore::settings::RestoreSettings::from_lookup(get).unwrap_or_else(
            |mut more| {
                problems.append(&mut more);
                crate::restore::settings::RestoreSettings::default()
            },
        );

        let defaults = Queues::default();
        let queues = Queues {
            cluster_events: get("BACKUP_PILOT_QUEUE_CLUSTER_EVENTS")
                .unwrap_or(defaults.cluster_events),
            workflow: get("BACKUP_PILOT_QUEUE_WORKFLOW").unwrap_or(defaults.workflow),
            restore_requests: get("BACKUP_PILOT_QUEUE_RESTORE_REQUESTS")
                .unwrap_or(defaults.restore_requests),
            dead_letters: get("BACKUP_PILOT_QUEUE_DEAD_LETTERS").unwrap_or(defaults.dead_letters),
            restore_results: get("BACKUP_PILOT_QUEUE_RESTORE_RESULTS")
                .unwrap_or(defaults.restore_results),
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

        let clock_pace_file = get("BACKUP_PILOT_CLOCK_PACE_FILE").map(std::path::PathBuf::from);
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
        let tls = crate::tls::TlsTrust::from_lookup(get).unwrap_or_else(|e| {
            problems.push(e);
            crate::tls::TlsTrust::system()
        });
        let status_store = status_store(&get, &mut problems);
        let memory_store_intended = match get("BACKUP_PILOT_STATUS_STORE").as_deref() {
            None => false,
            Some("memory") if status_store == StatusStoreConfig::Memory => true,
            Some("memory") => {
                problems.push("BACKUP_PILOT_STATUS_STORE=memory contradicts BACKUP_PILOT_STATUS_BLOB_URL; set one of them".into());
                false
            }
            Some(other) => {
                problems.push(format!(
                    "BACKUP_PILOT_STATUS_STORE may only be memory (to keep status in this process on purpose), got {other:?}; for Blob storage set BACKUP_PILOT_STATUS_BLOB_URL"
                ));
                false
            }
        };

        if problems.is_empty() {
            Ok(Self {
                port,
                service_bus_url,
                service_bus_auth,
                arm_url,
                arm_scope,
                arm_poll,
                arm_settled_read_ttl,
                step_budget,
                onboarding,
                restore,
                credential,
                queues,
                retry,
                time_scale,
                clock_pace_file,
                max_request_bytes,
                kube,
                status_store,
                memory_store_intended,
                tls,
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
        assert_eq!(cfg.status_store, StatusStoreConfig::Memory);
        assert!(!cfg.memory_store_intended);
    }

    #[test]
    fn the_memory_store_can_be_chosen_on_purpose() {
        let ns = (
            "ServiceBusConnection__fullyQualifiedNamespace",
            "ns.servicebus.windows.net",
        );
        let cfg =
            Config::from_lookup(lookup(&[ns, ("BACKUP_PILOT_STATUS_STORE", "memory")])).unwrap();
        assert!(cfg.memory_store_intended);
        let err = Config::from_lookup(lookup(&[
            ns,
            ("BACKUP_PILOT_STATUS_STORE", "memory"),
            (
                "BACKUP_PILOT_STATUS_BLOB_URL",
                "https://acct.blob.core.windows.net",
            ),
        ]))
        .unwrap_err()
        .to_string();
        assert!(err.contains("contradicts"), "{err}");
        let err = Config::from_lookup(lookup(&[ns, ("BACKUP_PILOT_STATUS_STORE", "disk")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("may only be memory"), "{err}");
    }

    #[test]
    fn status_store_settings_choose_the_auth() {
        let azurite = StatusStoreConfig::from_lookup(lookup(&[(
            "BACKUP_PILOT_STATUS_BLOB_URL",
            "http://127.0.0.1:10000/devstoreaccount1",
        )]))
        .unwrap();
        match azurite {
            StatusStoreConfig::Blob {
                auth,
                container,
                history_limit,
                ..
            } => {
                assert_eq!(auth, StatusAuth::AccountKey(AccountKey::azurite()));
                assert_eq!(container, "backup-pilot-status");
                assert_eq!(history_limit, DEFAULT_HISTORY_LIMIT);
            }
            other => panic!("{other:?}"),
        }
        let azure = StatusStoreConfig::from_lookup(lookup(&[(
            "BACKUP_PILOT_STATUS_BLOB_URL",
            "https://acct.blob.core.windows.net",
        )]))
        .unwrap();
        assert!(matches!(
            azure,
            StatusStoreConfig::Blob {
                auth: StatusAuth::Entra,
                ..
            }
        ));
        let err = StatusStoreConfig::from_lookup(lookup(&[
            (
                "BACKUP_PILOT_STATUS_BLOB_URL",
                "http://storage.example:10000/acct",
            ),
            ("BACKUP_PILOT_STATUS_BLOB_SAS", "sv=1&sig=TOPSECRET"),
            ("BACKUP_PILOT_STATUS_BLOB_ACCOUNT_KEY", "also-secret"),
        ]))
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("only one of") && !text.contains("TOPSECRET"),
            "{text}"
        );
        let debug = format!(
            "{:?}",
            StatusStoreConfig::from_lookup(lookup(&[
                (
                    "BACKUP_PILOT_STATUS_BLOB_URL",
                    "https://acct.blob.core.windows.net"
                ),
                ("BACKUP_PILOT_STATUS_BLOB_SAS", "sv=1&sig=TOPSECRET"),
            ]))
            .unwrap()
        );
        assert!(!debug.contains("TOPSECRET"), "{debug}");
    }

    #[test]
    fn every_problem_is_listed_at_once_without_secrets() {
        let err = Config::from_lookup(lookup(&[
            (PORT_VAR, "http"),
            ("BACKUP_PILOT_ARM_URL", "ftp://x"),
            ("BACKUP_PILOT_TIME_SCALE", "0.1"),
            ("BACKUP_PILOT_PROFILE", "cheap"),
            (
                "BACKUP_PILOT_SERVICEBUS_CONNECTION_STRING",
                "Endpoint=sb://ns/;SharedAccessKey=TOPSECRET",
            ),
        ]))
        .unwrap_err();
        let text = err.to_string();
        assert_eq!(err.0.len(), 6, "{text}");
        assert!(text.contains("BACKUP_PILOT_PROFILE"), "{text}");
        assert!(!text.contains("TOPSECRET"));
        assert!(
            text.contains(PORT_VAR)
                && text.contains("BACKUP_PILOT_ARM_URL")
                && text.contains("TIME_SCALE")
        );
    }
}

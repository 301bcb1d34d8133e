//! Kubernetes-side settings from the environment: which ARM credential to fetch, an API server
//! URL override, and where the hook manifests come from.

use std::path::PathBuf;

use super::access::CredentialKind;
use super::error::KubeError;
use super::hooks::HookSet;

/// Where hook manifests come from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum HooksSource {
    /// No hooks.
    #[default]
    None,
    /// Manifests in the setting itself (`BACKUP_PILOT_HOOKS`).
    Inline(String),
    /// A manifest file (`BACKUP_PILOT_HOOKS_FILE`).
    File(PathBuf),
}

impl HooksSource {
    /// Reads and validates the hooks.
    ///
    /// # Errors
    /// [`KubeError::InvalidHooks`] with every problem.
    pub fn load(&self) -> Result<HookSet, KubeError> {
        match self {
            Self::None => Ok(HookSet::default()),
            Self::Inline(text) => HookSet::parse(text),
            Self::File(path) => HookSet::load_file(path),
        }
    }
}

/// Kubernetes-side settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KubeSettings {
    /// `BACKUP_PILOT_KUBE_CREDENTIALS`: `user` (default) or `admin`.
    pub credentials: CredentialKind,
    /// `BACKUP_PILOT_KUBE_SERVER`: use this API server URL instead of the kubeconfig's.
    pub server_override: Option<String>,
    /// `BACKUP_PILOT_HOOKS` or `BACKUP_PILOT_HOOKS_FILE`.
    pub hooks: HooksSource,
}

impl KubeSettings {
    /// Reads the settings through `get`, adding each problem to `problems`.
    pub fn from_lookup(get: &impl Fn(&str) -> Option<String>, problems: &mut Vec<String>) -> Self {
        let credentials = match get("BACKUP_PILOT_KUBE_CREDENTIALS").as_deref() {
            None | Some("user") => CredentialKind::User,
            Some("admin") => CredentialKind::Admin,
            Some(other) => {
                problems.push(format!(
                    "BACKUP_PILOT_KUBE_CREDENTIALS must be user or admin, got {other:?}"
                ));
                CredentialKind::User
            }
        };
        let server_override =
            get("BACKUP_PILOT_KUBE_SERVER").and_then(|raw| match url::Url::parse(&raw) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => {
                    Some(raw.trim_end_matches('/').to_string())
                }
                _ => {
                    problems.push(format!(
                        "BACKUP_PILOT_KUBE_SERVER must be an http(s) URL, got {raw:?}"
                    ));
                    None
                }
            });
        let hooks = match (get("BACKUP_PILOT_HOOKS"), get("BACKUP_PILOT_HOOKS_FILE")) {
            (Some(_), Some(_)) => {
                problems.push("set BACKUP_PILOT_HOOKS or BACKUP_PILOT_HOOKS_FILE, not both".into());
                HooksSource::None
            }
            (Some(text), None) => HooksSource::Inline(text),
            (None, Some(path)) => HooksSource::File(PathBuf::from(path)),
            (None, None) => HooksSource::None,
        };
        Self {
            credentials,
            server_override,
            hooks,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_read_and_problems_collected() {
        let mut problems = Vec::new();
        let s = KubeSettings::from_lookup(
            &|k: &str| match k {
                "BACKUP_PILOT_KUBE_CREDENTIALS" => Some("admin".into()),
                "BACKUP_PILOT_KUBE_SERVER" => Some("http://127.0.0.1:6443/".into()),
                "BACKUP_PILOT_HOOKS_FILE" => Some("/etc/hooks.yaml".into()),
                _ => None,
            },
            &mut problems,
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(s.credentials, CredentialKind::Admin);
        assert_eq!(s.server_override.as_deref(), Some("http://127.0.0.1:6443"));
        assert_eq!(s.hooks, HooksSource::File("/etc/hooks.yaml".into()));
        KubeSettings::from_lookup(
            &|k: &str| match k {
                "BACKUP_PILOT_KUBE_CREDENTIALS" => Some("root".into()),
                "BACKUP_PILOT_KUBE_SERVER" => Some("ftp://x".into()),
                "BACKUP_PILOT_HOOKS" | "BACKUP_PILOT_HOOKS_FILE" => Some("x".into()),
                _ => None,
            },
            &mut problems,
        );
        assert_eq!(problems.len(), 3, "{problems:?}");
    }
}

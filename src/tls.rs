//! Which certificate authorities outbound HTTPS trusts: the system's roots, plus the PEM
//! bundle named by `BACKUP_PILOT_CA_BUNDLE` (a private CA in front of ARM, Service Bus or
//! Blob storage, or the local stand-ins' per-run CA). Every reqwest client the product builds
//! and the Azure SDK's transport (Blob storage) start from [`TlsTrust`], so one setting
//! reaches them all.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The setting naming the extra CA bundle (a PEM file path).
pub const CA_BUNDLE_VAR: &str = "BACKUP_PILOT_CA_BUNDLE";

/// How long the Azure SDK transport waits for a connection (the SDK's own default).
const SDK_CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// How long the Azure SDK transport waits between reads (the SDK's own default).
const SDK_READ_TIMEOUT: Duration = Duration::from_secs(60);

/// The roots outbound HTTPS trusts beyond the system's.
#[derive(Clone, Default)]
pub struct TlsTrust {
    bundle: Option<PathBuf>,
    roots: Vec<reqwest::Certificate>,
}

impl std::fmt::Debug for TlsTrust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsTrust")
            .field("bundle", &self.bundle)
            .field("extra_roots", &self.roots.len())
            .finish()
    }
}

impl TlsTrust {
    /// The system's roots only.
    pub fn system() -> Self {
        Self::default()
    }

    /// The system's roots plus every certificate of the PEM bundle `pem` (`source` names
    /// where it came from, for messages).
    ///
    /// # Errors
    /// A bundle that is not PEM, or holds no certificate.
    pub fn from_pem(pem: &[u8], source: Option<PathBuf>) -> Result<Self, String> {
        let named = || {
            source
                .as_deref()
                .map_or_else(|| "the CA bundle".to_string(), |p| p.display().to_string())
        };
        let roots = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| format!("{} is not a PEM certificate bundle: {e}", named()))?;
        if roots.is_empty() {
            return Err(format!("{} holds no PEM certificate", named()));
        }
        Ok(Self {
            bundle: source,
            roots,
        })
    }

    /// The system's roots plus the PEM bundle at `path`.
    ///
    /// # Errors
    /// An unreadable file, or see [`Self::from_pem`].
    pub fn from_file(path: &Path) -> Result<Self, String> {
        let pem = std::fs::read(path)
            .map_err(|e| format!("{CA_BUNDLE_VAR}: cannot read {}: {e}", path.display()))?;
        Self::from_pem(&pem, Some(path.to_path_buf())).map_err(|e| format!("{CA_BUNDLE_VAR}: {e}"))
    }

    /// Reads `BACKUP_PILOT_CA_BUNDLE` through `get`; without it, the system's roots.
    ///
    /// # Errors
    /// See [`Self::from_file`].
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        match get(CA_BUNDLE_VAR).filter(|v| !v.trim().is_empty()) {
            Some(path) => Self::from_file(Path::new(path.trim())),
            None => Ok(Self::system()),
        }
    }

    /// The bundle's path, when one is configured.
    pub fn bundle(&self) -> Option<&Path> {
        self.bundle.as_deref()
    }

    /// A reqwest client builder that trusts the system's roots and the bundle's.
    pub fn http_builder(&self) -> reqwest::ClientBuilder {
        reqwest::Client::builder().tls_certs_merge(self.roots.iter().cloned())
    }

    /// A transport for the Azure SDK clients that trusts the bundle too, shaped like the
    /// SDK's default (its timeouts, no redirects); `None` when no bundle is configured (the
    /// SDK's default transport then serves).
    ///
    /// # Errors
    /// The TLS backend refusing the roots.
    pub fn azure_transport(&self) -> Result<Option<azure_core::http::Transport>, reqwest::Error> {
        if self.roots.is_empty() {
            return Ok(None);
        }
        let client = self
            .http_builder()
            .connect_timeout(SDK_CONNECT_TIMEOUT)
            .read_timeout(SDK_READ_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Some(azure_core::http::Transport::new(Arc::new(client))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_setting_means_the_system_roots_only() {
        let trust = TlsTrust::from_lookup(|_| None).unwrap();
        assert!(trust.bundle().is_none());
        assert!(trust.azure_transport().unwrap().is_none());
    }

    #[test]
    fn a_missing_or_empty_bundle_is_refused_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let err = TlsTrust::from_lookup(|_| Some(missing.display().to_string())).unwrap_err();
        assert!(
            err.contains(CA_BUNDLE_VAR) && err.contains("missing.pem"),
            "{err}"
        );
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let err = TlsTrust::from_file(&empty).unwrap_err();
        assert!(err.contains("no PEM certificate"), "{err}");
    }
}

//! HTTPS as AKS serves its API server: a certificate authority made for each stand-in (so for
//! each run), and a serving certificate it signs for `127.0.0.1` and `localhost`. Kubeconfigs
//! carry the CA as `certificate-authority-data`, so clients verify the server exactly as they
//! verify a real cluster's.

use std::future::Future;
use std::io;

use axum_server::tls_rustls::RustlsConfig;
use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};

/// A CA and the serving certificate (with its key) it issued.
pub struct ServingCa {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

impl std::fmt::Debug for ServingCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The private key is never printed.
        f.debug_struct("ServingCa").finish_non_exhaustive()
    }
}

impl ServingCa {
    /// A new CA (`CN=ca`, as AKS names its cluster CA) and a server certificate for
    /// `127.0.0.1`, `::1` and `localhost` signed by it.
    ///
    /// # Errors
    /// Key generation or signing failed.
    pub fn generate() -> Result<Self, rcgen::Error> {
        let mut ca_params = CertificateParams::default();
        ca_params.distinguished_name = DistinguishedName::new();
        ca_params.distinguished_name.push(DnType::CommonName, "ca");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;

        let mut params = CertificateParams::new(vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
            "::1".to_string(),
        ])?;
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, "apiserver");
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &ca)?;
        Ok(Self {
            ca_pem: ca.pem(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The CA certificate as a kubeconfig's `certificate-authority-data` (base64 of the PEM).
    pub fn certificate_authority_data(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.ca_pem)
    }

    async fn rustls_config(&self) -> io::Result<RustlsConfig> {
        RustlsConfig::from_pem(
            self.cert_pem.clone().into_bytes(),
            self.key_pem.clone().into_bytes(),
        )
        .await
    }
}

/// Serves `router` over HTTPS with `ca`'s serving certificate on an ephemeral loopback port
/// until `stop` resolves; returns `https://127.0.0.1:{port}`.
///
/// # Errors
/// Binding the port or loading the certificate.
pub async fn serve_tls_on_loopback(
    router: axum::Router,
    stop: impl Future<Output = ()> + Send + 'static,
    ca: &ServingCa,
) -> io::Result<String> {
    let config = ca.rustls_config().await?;
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    listener.set_nonblocking(true)?;
    let url = format!("https://{}", listener.local_addr()?);
    let handle = axum_server::Handle::new();
    let server = axum_server::from_tcp_rustls(listener, config)?.handle(handle.clone());
    tokio::spawn(async move {
        stop.await;
        handle.graceful_shutdown(None);
    });
    tokio::spawn(async move {
        if let Err(e) = server.serve(router.into_make_service()).await {
            tracing::error!("local stand-in HTTPS server stopped: {e}");
        }
    });
    Ok(url)
}

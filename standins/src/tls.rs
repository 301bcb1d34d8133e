//! HTTPS for the stand-ins, as the real services speak it: a certificate authority generated
//! once per run ([`run_tls`]), a server certificate it issues for `127.0.0.1` and `localhost`,
//! the rustls configuration that serves it, and the CA as a PEM bundle for clients (the
//! product's `BACKUP_PILOT_CA_BUNDLE`, Python's `REQUESTS_CA_BUNDLE`, kubeconfigs). Every
//! stand-in that is HTTPS in Azure serves through [`serve_tls_on_loopback`] or
//! [`crate::LoopbackServer::start_tls`]; Azurite gets the same certificate's files.

use std::io;

use base64::Engine as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::server::TlsStream;

use backup_pilot::tls::TlsTrust;

/// The names every stand-in certificate covers.
pub const LOOPBACK_NAMES: [&str; 2] = ["127.0.0.1", "localhost"];

/// How long a client may take to finish its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why certificates or a TLS server could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Generating a key or signing a certificate.
    #[error("could not generate a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls refusing the certificate or key.
    #[error("could not configure TLS: {0}")]
    Configure(#[from] tokio_rustls::rustls::Error),
    /// Writing the PEM files.
    #[error("could not write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The run's CA failed to generate earlier in this process.
    #[error("the run's certificate authority is unavailable: {0}")]
    Unavailable(String),
}

/// A certificate authority that signs server certificates.
pub struct CertificateAuthority {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
    der: CertificateDer<'static>,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAuthority")
            .finish_non_exhaustive()
    }
}

impl CertificateAuthority {
    /// A new self-signed CA named `common_name`.
    ///
    /// # Errors
    /// Key generation or signing failing.
    pub fn generate(common_name: &str) -> Result<Self, TlsError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params
            .distinguished_name
            .push(DnType::OrganizationName, "backup-pilot stand-ins");
        let cert = params.self_signed(&key)?;
        Ok(Self {
            pem: cert.pem(),
            der: cert.der().clone(),
            issuer: Issuer::new(params, key),
        })
    }

    /// The CA certificate as PEM: what clients add to their trusted roots.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// Issues a server certificate for `names` (DNS names or IP addresses).
    ///
    /// # Errors
    /// A name rcgen refuses, or signing failing.
    pub fn issue_server_cert(&self, names: &[&str]) -> Result<ServerCertificate, TlsError> {
        let key = KeyPair::generate()?;
        let mut params =
            CertificateParams::new(names.iter().map(|n| (*n).to_string()).collect::<Vec<_>>())?;
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().copied().unwrap_or("stand-in"),
        );
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(ServerCertificate {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            chain: vec![cert.der().clone(), self.der.clone()],
            key_der: key.serialize_der(),
        })
    }
}

/// A server certificate with its key and chain.
pub struct ServerCertificate {
    cert_pem: String,
    key_pem: String,
    chain: Vec<CertificateDer<'static>>,
    key_der: Vec<u8>,
}

impl std::fmt::Debug for ServerCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerCertificate").finish_non_exhaustive()
    }
}

impl ServerCertificate {
    /// The certificate as PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The private key as PKCS#8 PEM (for servers that read files, like Azurite).
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// A rustls server configuration presenting this certificate (HTTP/1.1 by ALPN).
    ///
    /// # Errors
    /// rustls refusing the certificate or key.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()));
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), key)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// The run's TLS material: one CA, one loopback server certificate, their PEM files.
pub struct RunTls {
    ca: CertificateAuthority,
    server: ServerCertificate,
    config: Arc<ServerConfig>,
    dir: PathBuf,
}

impl std::fmt::Debug for RunTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunTls")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// File names inside the run's TLS folder.
const CA_FILE: &str = "ca.pem";
const CERT_FILE: &str = "server.pem";
const KEY_FILE: &str = "server-key.pem";

impl RunTls {
    /// Generates a CA and a loopback server certificate and writes `ca.pem`, `server.pem` and
    /// `server-key.pem` (owner-only) into `dir`.
    ///
    /// # Errors
    /// See [`TlsError`].
    pub fn generate(dir: &Path) -> Result<Self, TlsError> {
        let ca = CertificateAuthority::generate("backup-pilot stand-ins CA")?;
        let server = ca.issue_server_cert(&LOOPBACK_NAMES)?;
        let config = server.server_config()?;
        // Absolute, so processes started elsewhere (Azurite runs in its data folder) find the
        // files.
        let dir = std::fs::create_dir_all(dir)
            .and_then(|()| dir.canonicalize())
            .map_err(|source| TlsError::Write {
                path: dir.to_path_buf(),
                source,
            })?;
        let write = |name: &str, text: &str| {
            let path = dir.join(name);
            write_owner_only(&path, text).map_err(|source| TlsError::Write { path, source })
        };
        write(CA_FILE, ca.pem())?;
        write(CERT_FILE, server.cert_pem())?;
        write(KEY_FILE, server.key_pem())?;
        Ok(Self {
            ca,
            server,
            config,
            dir,
        })
    }

    /// The CA certificate as PEM.
    pub fn ca_pem(&self) -> &str {
        self.ca.pem()
    }

    /// The CA bundle file: `BACKUP_PILOT_CA_BUNDLE`, `REQUESTS_CA_BUNDLE`.
    pub fn ca_bundle_path(&self) -> PathBuf {
        self.dir.join(CA_FILE)
    }

    /// The server certificate's PEM file (Azurite's `--cert`).
    pub fn cert_path(&self) -> PathBuf {
        self.dir.join(CERT_FILE)
    }

    /// The server key's PEM file (Azurite's `--key`).
    pub fn key_path(&self) -> PathBuf {
        self.dir.join(KEY_FILE)
    }

    /// The loopback server certificate.
    pub fn server_certificate(&self) -> &ServerCertificate {
        &self.server
    }

    /// The rustls configuration every stand-in serves with.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        self.config.clone()
    }

    /// The product's trust with this CA added, as `BACKUP_PILOT_CA_BUNDLE` would give it.
    ///
    /// # Errors
    /// A CA PEM reqwest cannot read (never for one generated here).
    pub fn trust(&self) -> Result<TlsTrust, TlsError> {
        TlsTrust::from_pem(self.ca_pem().as_bytes(), Some(self.ca_bundle_path()))
            .map_err(TlsError::Unavailable)
    }

    /// A reqwest client that trusts the system's roots and this CA.
    ///
    /// # Errors
    /// The TLS backend refusing the roots.
    pub fn http_client(&self) -> Result<reqwest::Client, TlsError> {
        self.trust()?
            .http_builder()
            .build()
            .map_err(|e| TlsError::Unavailable(e.to_string()))
    }
}

/// Writes `text` to `path`, readable by its owner only (keys, files with test credentials).
///
/// # Errors
/// Creating or writing the file.
pub fn write_owner_only(path: &Path, text: &str) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)?;
        file.write_all(text.as_bytes())
    }
    #[cfg(not(unix))]
    std::fs::write(path, text)
}

static RUN_TLS: OnceLock<Result<RunTls, String>> = OnceLock::new();

/// The run's TLS material, generated on first use: in `dir` when [`init_run_tls`] named one,
/// else in a folder of the system's temporary directory named after this process.
///
/// # Errors
/// Generation failing (then every later call fails the same way).
pub fn run_tls() -> Result<&'static RunTls, TlsError> {
    let dir = std::env::temp_dir().join(format!("backup-pilot-tls-{}", std::process::id()));
    init_run_tls(&dir)
}

/// Generates the run's TLS material in `dir` unless it exists already (then `dir` is
/// ignored), and returns it. The local runner calls this first to keep the files in its run
/// folder.
///
/// # Errors
/// See [`run_tls`].
pub fn init_run_tls(dir: &Path) -> Result<&'static RunTls, TlsError> {
    RUN_TLS
        .get_or_init(|| RunTls::generate(dir).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| TlsError::Unavailable(e.clone()))
}

/// Serves `router` over HTTPS with the run's certificate on an ephemeral loopback port until
/// `stop` resolves; returns the base URL `https://127.0.0.1:{port}`.
///
/// # Errors
/// Binding the port, or the run's TLS material being unavailable.
pub async fn serve_tls_on_loopback(
    router: axum::Router,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> io::Result<String> {
    let tls = run_tls().map_err(io::Error::other)?;
    serve_tls_with(router, stop, tls.server_config()).await
}

/// Serves `router` over HTTPS with `config` (a certificate of its own, like a cluster's API
/// server) on an ephemeral loopback port until `stop` resolves; returns the base URL.
///
/// # Errors
/// Binding the port.
pub async fn serve_tls_with(
    router: axum::Router,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
    config: Arc<ServerConfig>,
) -> io::Result<String> {
    let tcp = TcpListener::bind(("127.0.0.1", 0)).await?;
    let listener = TlsListener::new(tcp, config)?;
    let url = format!("https://{}", listener.local_addr);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router)
            .with_graceful_shutdown(stop)
            .await
        {
            tracing::error!("local stand-in server stopped: {e}");
        }
    });
    Ok(url)
}

/// A cluster's own CA (`CN=ca`, as AKS names it: every AKS cluster has its own) and the API
/// server's certificate it signed for `127.0.0.1`, `::1` and `localhost`. Kubeconfigs carry
/// the CA as `certificate-authority-data`.
pub struct ClusterCa {
    ca: CertificateAuthority,
    server: ServerCertificate,
}

impl std::fmt::Debug for ClusterCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The private key is never printed.
        f.debug_struct("ClusterCa").finish_non_exhaustive()
    }
}

impl ClusterCa {
    /// A new CA and API server certificate.
    ///
    /// # Errors
    /// Key generation or signing failing.
    pub fn generate() -> Result<Self, TlsError> {
        let ca = CertificateAuthority::generate("ca")?;
        let server = ca.issue_server_cert(&["localhost", "127.0.0.1", "::1"])?;
        Ok(Self { ca, server })
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        self.ca.pem()
    }

    /// The CA as a kubeconfig's `certificate-authority-data` (base64 of the PEM).
    pub fn certificate_authority_data(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.ca.pem())
    }

    /// The API server's rustls configuration.
    ///
    /// # Errors
    /// rustls refusing the certificate or key.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        self.server.server_config()
    }
}

/// Binds `127.0.0.1:0` and wraps it in the run's TLS; returns the `https://` base URL.
///
/// # Errors
/// Binding the port, or the run's TLS material being unavailable.
pub async fn bind_tls() -> io::Result<(String, TlsListener)> {
    let tls = run_tls().map_err(io::Error::other)?;
    let tcp = TcpListener::bind(("127.0.0.1", 0)).await?;
    let listener = TlsListener::new(tcp, tls.server_config())?;
    let url = format!("https://{}", listener.local_addr);
    Ok((url, listener))
}

/// An axum listener that hands over connections once their TLS handshake is done; each
/// handshake runs in its own task, so a slow client holds up no one else.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local_addr: SocketAddr,
    accept_task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for TlsListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsListener")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl TlsListener {
    /// Accepts on `tcp`, serving `config`.
    ///
    /// # Errors
    /// The listener's address unreadable.
    pub fn new(tcp: TcpListener, config: Arc<ServerConfig>) -> io::Result<Self> {
        let local_addr = tcp.local_addr()?;
        let acceptor = TlsAcceptor::from(config);
        let (tx, ready) = mpsc::channel(64);
        let accept_task = tokio::spawn(async move {
            while !tx.is_closed() {
                let (stream, peer) = match tcp.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        tracing::debug!("stand-in accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!("TLS handshake with {peer} failed: {e}"),
                        Err(_) => tracing::debug!("TLS handshake with {peer} timed out"),
                    }
                });
            }
        });
        Ok(Self {
            ready,
            local_addr,
            accept_task,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accept_task.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(connection) => connection,
            // The accept task ended (only when dropped): no connection will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local_addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_client_trusting_the_run_ca_gets_https_and_an_untrusting_one_is_refused() {
        let router = axum::Router::new().route("/ping", axum::routing::get(|| async { "pong" }));
        let url = serve_tls_on_loopback(router, std::future::pending())
            .await
            .unwrap();
        assert!(url.starts_with("https://127.0.0.1:"), "{url}");
        let trusted = run_tls().unwrap().http_client().unwrap();
        let body = trusted
            .get(format!("{url}/ping"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(body, "pong");
        let localhost = url.replace("127.0.0.1", "localhost");
        assert!(
            trusted
                .get(format!("{localhost}/ping"))
                .send()
                .await
                .is_ok()
        );
        let system_only = reqwest::Client::new();
        let err = system_only
            .get(format!("{url}/ping"))
            .send()
            .await
            .unwrap_err();
        assert!(err.is_connect(), "{err:?}");
    }

    #[test]
    fn the_run_files_are_pem() {
        let tls = run_tls().unwrap();
        let ca = std::fs::read_to_string(tls.ca_bundle_path()).unwrap();
        assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"), "{ca}");
        let key = std::fs::read_to_string(tls.key_path()).unwrap();
        assert!(key.contains("PRIVATE KEY"));
        assert!(
            std::fs::read_to_string(tls.cert_path())
                .unwrap()
                .starts_with("-----BEGIN CERTIFICATE-----")
        );
    }
}

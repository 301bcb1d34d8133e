//! Cluster access without kubectl: a kubeconfig from ARM (`listClusterUserCredential`, or the
//! admin credential when configured, asked through the shared ARM client) becomes a kube-rs
//! client. For Entra-integrated clusters
//! (the kubeconfig's user runs `kubelogin`), the service presents its own Entra token for the
//! AKS server application instead. The API server URL can be overridden (tests, proxies).
//! Every request is bounded ([`CONNECT_TIMEOUT`], [`READ_TIMEOUT`], [`WRITE_TIMEOUT`]; the
//! Entra token by [`crate::auth::TOKEN_TIMEOUT`], the kubeconfig by the ARM call bound), and
//! a step's Kubernetes calls together by the engine's step budget.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use azure_core::credentials::TokenCredential;
use base64::Engine as _;
use kube::config::{AuthInfo, KubeConfigOptions, Kubeconfig};
use serde::Deserialize;

use super::error::{KubeError, error_chain};
use super::kubeconfig_cache::{KUBECONFIG_CACHE_TTL, KubeconfigCache};
use crate::arm::{ArmClient, versions};
use crate::auth::{self, AKS_SCOPE};
use crate::resource_id::ResourceId;
use crate::telemetry::http::{HttpCallLayer, Peer};

/// How long to wait for a TCP connection to the API server.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait for an answer (the service makes no long-lived calls).
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long to wait for a request to be written to the API server.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// What a client does when the API server refuses its credentials (401): the kubeconfig it
/// was built from is stale and must not be reused.
type OnRefused = Arc<dyn Fn() + Send + Sync>;

/// A client for one cluster, with the API server URL its errors mention.
#[derive(Clone)]
pub struct ClusterClient {
    client: kube::Client,
    server: String,
    on_refused: Option<OnRefused>,
}

impl fmt::Debug for ClusterClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterClient")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

impl ClusterClient {
    /// Wraps a kube-rs client for the API server at `server`.
    pub fn new(client: kube::Client, server: impl Into<String>) -> Self {
        Self {
            client,
            server: server.into(),
            on_refused: None,
        }
    }

    /// The same client, calling `on_refused` whenever the API server answers 401.
    fn forgetting_on_refusal(self, on_refused: OnRefused) -> Self {
        Self {
            on_refused: Some(on_refused),
            ..self
        }
    }

    /// The kube-rs client (cheap to clone).
    pub fn kube(&self) -> kube::Client {
        self.client.clone()
    }

    /// The API server URL.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// Maps a client error of `action`, naming this API server when it cannot be reached.
    pub fn error(&self, action: &str, err: kube::Error) -> KubeError {
        let err = KubeError::from_client(action, &self.server, err);
        if let (KubeError::Unauthorized { .. }, Some(on_refused)) = (&err, &self.on_refused) {
            on_refused();
        }
        err
    }
}

/// Gives steps a client for a cluster.
#[async_trait]
pub trait ClusterAccess: Send + Sync + 'static {
    /// A client for `cluster`, with fresh credentials.
    async fn client(&self, cluster: &ResourceId) -> Result<ClusterClient, KubeError>;
}

/// Where kubeconfigs come from.
#[async_trait]
pub trait KubeconfigSource: Send + Sync + 'static {
    /// The kubeconfig (YAML bytes) for `cluster`.
    async fn kubeconfig(&self, cluster: &ResourceId) -> Result<Vec<u8>, KubeError>;
}

/// Which ARM credential to ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CredentialKind {
    /// `listClusterUserCredential` (the default; works with Entra and local accounts off).
    #[default]
    User,
    /// `listClusterAdminCredential` (only when configured; fails with local accounts off).
    Admin,
}

impl CredentialKind {
    /// The ARM action.
    pub fn operation(self) -> &'static str {
        match self {
            Self::User => "listClusterUserCredential",
            Self::Admin => "listClusterAdminCredential",
        }
    }
}

/// Kubeconfigs from ARM (`listClusterUserCredential` / `listClusterAdminCredential`) through
/// the service's [`ArmClient`]: the same token, retry, throttling and error handling as every
/// other ARM call.
pub struct ArmKubeconfigSource {
    arm: Arc<ArmClient>,
    kind: CredentialKind,
}

impl ArmKubeconfigSource {
    /// A source asking ARM through `arm` for `kind` credentials.
    pub fn new(arm: Arc<ArmClient>, kind: CredentialKind) -> Self {
        Self { arm, kind }
    }
}

#[derive(Deserialize)]
struct CredentialResults {
    #[serde(default)]
    kubeconfigs: Vec<CredentialResult>,
}

#[derive(Deserialize)]
struct CredentialResult {
    #[serde(default)]
    value: String,
}

#[async_trait]
impl KubeconfigSource for ArmKubeconfigSource {
    async fn kubeconfig(&self, cluster: &ResourceId) -> Result<Vec<u8>, KubeError> {
        let operation = self.kind.operation();
        let response = self
            .arm
            .post(
                &format!("{cluster}/{operation}"),
                versions::MANAGED_CLUSTERS,
                None,
            )
            .await
            .map_err(|source| {
                let hint = match (self.kind, source.status()) {
                    (CredentialKind::Admin, Some(400)) => {
                        " (if the cluster disables local accounts, use user credentials: BACKUP_PILOT_KUBE_CREDENTIALS=user)"
                    }
                    (_, Some(403)) => {
                        " (grant the service's identity the Azure Kubernetes Service Cluster User Role on the cluster)"
                    }
                    _ => "",
                };
                KubeError::FetchKubeconfig {
                    cluster: cluster.to_string(),
                    operation,
                    source,
                    hint,
                }
            })?;
        let unusable = |reason: String| KubeError::ReadKubeconfig {
            cluster: cluster.to_string(),
            reason,
        };
        let results: CredentialResults = serde_json::from_value(response.json().clone())
            .map_err(|e| unusable(format!("ARM's answer is not CredentialResults JSON: {e}")))?;
        let first = results
            .kubeconfigs
            .into_iter()
            .next()
            .ok_or_else(|| unusable("ARM returned no kubeconfigs".into()))?;
        base64::engine::general_purpose::STANDARD
            .decode(first.value.trim())
            .map_err(|e| unusable(format!("the kubeconfig value is not base64: {e}")))
    }
}

/// One fixed kubeconfig for every cluster (local runs against the API-server stand-in).
pub struct StaticKubeconfig {
    bytes: Vec<u8>,
}

impl StaticKubeconfig {
    /// Serves `bytes` for every cluster.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self {
            bytes: bytes.into(),
        }
    }
}

#[async_trait]
impl KubeconfigSource for StaticKubeconfig {
    async fn kubeconfig(&self, _cluster: &ResourceId) -> Result<Vec<u8>, KubeError> {
        Ok(self.bytes.clone())
    }
}

/// [`ClusterAccess`] from kubeconfigs: reads one per call, replaces `kubelogin` users with an
/// Entra token, applies the server override, and builds a client.
pub struct KubeconfigAccess {
    source: Arc<dyn KubeconfigSource>,
    credential: Option<Arc<dyn TokenCredential>>,
    server_override: Option<String>,
    cache: Arc<KubeconfigCache>,
}

impl KubeconfigAccess {
    /// Access through `source`; `credential` is used for Entra-integrated clusters. Each
    /// cluster's kubeconfig is kept in memory for [`KUBECONFIG_CACHE_TTL`]: every step that
    /// touches a cluster would otherwise send `listClusterUserCredential` (a POST, so an ARM
    /// write) again.
    pub fn new(
        source: Arc<dyn KubeconfigSource>,
        credential: Option<Arc<dyn TokenCredential>>,
        server_override: Option<String>,
    ) -> Self {
        Self {
            source,
            credential,
            server_override,
            cache: Arc::new(KubeconfigCache::new(KUBECONFIG_CACHE_TTL)),
        }
    }
}

#[async_trait]
impl ClusterAccess for KubeconfigAccess {
    async fn client(&self, cluster: &ResourceId) -> Result<ClusterClient, KubeError> {
        let key = cluster.key();
        let bytes = match self.cache.get(&key) {
            Some(bytes) => bytes,
            None => {
                let fresh = Arc::new(self.source.kubeconfig(cluster).await?);
                self.cache.put(key.clone(), fresh.clone());
                fresh
            }
        };
        let (config, server) = client_config(
            &bytes,
            &cluster.to_string(),
            self.credential.as_deref(),
            self.server_override.as_deref(),
        )
        .await
        .inspect_err(|_| self.cache.forget(&key))?;
        let base = config.cluster_url.to_string();
        let builder = kube::client::ClientBuilder::try_from(config).map_err(|e| {
            KubeError::ReadKubeconfig {
                cluster: cluster.to_string(),
                reason: error_chain(&e),
            }
        })?;
        // One client span per API request (a child of the step's span).
        let client = match url::Url::parse(&base) {
            Ok(base) => builder
                .with_layer(&HttpCallLayer::new(Peer::Kubernetes, base))
                .build(),
            Err(_) => builder.build(),
        };
        // A refused credential (a rotated certificate, say) is fetched again next time.
        let cache = self.cache.clone();
        Ok(ClusterClient::new(client, server)
            .forgetting_on_refusal(Arc::new(move || cache.forget(&key))))
    }
}

/// For contexts with no cluster access configured: every call says so.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoClusterAccess;

#[async_trait]
impl ClusterAccess for NoClusterAccess {
    async fn client(&self, cluster: &ResourceId) -> Result<ClusterClient, KubeError> {
        Err(KubeError::ReadKubeconfig {
            cluster: cluster.to_string(),
            reason: "this process has no cluster access configured".into(),
        })
    }
}

/// How the kubeconfig's user authenticates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserAuth {
    /// Static credentials in the kubeconfig (token or client certificate).
    Static,
    /// Entra: a token for this scope, which the service gets itself.
    Entra {
        /// The scope, from `--server-id` (or the AKS server application).
        scope: String,
    },
}

/// Reads how the current context's user authenticates.
///
/// # Errors
/// A kubeconfig without a usable current context.
pub fn user_auth(kubeconfig: &Kubeconfig) -> Result<UserAuth, String> {
    let context_name = kubeconfig
        .current_context
        .as_deref()
        .ok_or("it has no current-context")?;
    let context = kubeconfig
        .contexts
        .iter()
        .find(|c| c.name == context_name)
        .and_then(|c| c.context.as_ref())
        .ok_or_else(|| format!("its current-context {context_name} is not defined"))?;
    let Some(user) = context.user.as_deref() else {
        return Ok(UserAuth::Static);
    };
    let auth = kubeconfig
        .auth_infos
        .iter()
        .find(|u| u.name == user)
        .and_then(|u| u.auth_info.as_ref())
        .ok_or_else(|| format!("its user {user} is not defined"))?;
    if let Some(exec) = &auth.exec {
        let args = exec.args.clone().unwrap_or_default();
        let server_id = args
            .windows(2)
            .find(|w| w[0] == "--server-id")
            .map(|w| w[1].clone());
        return Ok(UserAuth::Entra {
            scope: server_id.map_or_else(|| AKS_SCOPE.to_string(), |id| format!("{id}/.default")),
        });
    }
    if let Some(provider) = &auth.auth_provider {
        if provider.name == "azure" {
            let scope = provider
                .config
                .get("apiserver-id")
                .map_or_else(|| AKS_SCOPE.to_string(), |id| format!("{id}/.default"));
            return Ok(UserAuth::Entra { scope });
        }
        return Err(format!(
            "its auth provider {} is not supported",
            provider.name
        ));
    }
    Ok(UserAuth::Static)
}

/// Turns kubeconfig bytes into a kube-rs configuration and the API server URL: Entra users get
/// a token from `credential`; `server_override` replaces the server URL.
///
/// # Errors
/// [`KubeError::ReadKubeconfig`] for an unusable kubeconfig, [`KubeError::EntraToken`] when no
/// token can be had.
pub async fn client_config(
    kubeconfig: &[u8],
    cluster: &str,
    credential: Option<&dyn TokenCredential>,
    server_override: Option<&str>,
) -> Result<(kube::Config, String), KubeError> {
    let unusable = |reason: String| KubeError::ReadKubeconfig {
        cluster: cluster.to_string(),
        reason,
    };
    let text =
        std::str::from_utf8(kubeconfig).map_err(|_| unusable("it is not UTF-8 text".into()))?;
    let parsed = Kubeconfig::from_yaml(text).map_err(|e| unusable(error_chain(&e)))?;
    let auth = user_auth(&parsed).map_err(unusable)?;
    let mut config = kube::Config::from_custom_kubeconfig(parsed, &KubeConfigOptions::default())
        .await
        .map_err(|e| unusable(error_chain(&e)))?;
    if let UserAuth::Entra { scope } = auth {
        let credential = credential.ok_or_else(|| {
            unusable(
                "the cluster uses Entra sign-in (kubelogin) and no Azure credential is configured"
                    .into(),
            )
        })?;
        let token = auth::bearer(credential, &scope)
            .await
            .map_err(KubeError::EntraToken)?;
        config.auth_info = AuthInfo {
            token: Some(token.secret().to_string().into()),
            ..AuthInfo::default()
        };
    }
    if let Some(server) = server_override {
        config.cluster_url = server
            .parse()
            .map_err(|e| unusable(format!("the server override {server:?} is not a URL: {e}")))?;
    }
    config.connect_timeout = Some(CONNECT_TIMEOUT);
    config.read_timeout = Some(READ_TIMEOUT);
    config.write_timeout = Some(WRITE_TIMEOUT);
    // Retries belong to the step engine (a scheduled message), not to a sleeping client.
    config.default_retry = false;
    let server = config
        .cluster_url
        .to_string()
        .trim_end_matches('/')
        .to_string();
    Ok((config, server))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENTRA: &str = r#"
apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://c-dns.hcp.westeurope.azmk8s.io:443"}
contexts:
- name: c
  context: {cluster: c, user: clusterUser_rg_c}
current-context: c
users:
- name: clusterUser_rg_c
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      command: kubelogin
      args: [get-token, --login, devicecode, --server-id, 6dae42f8-4368-4678-94ff-3960e28e3630]
"#;

    #[tokio::test]
    async fn entra_users_need_a_credential_and_the_override_wins() {
        let parsed = Kubeconfig::from_yaml(ENTRA).unwrap();
        assert_eq!(
            user_auth(&parsed).unwrap(),
            UserAuth::Entra {
                scope: AKS_SCOPE.into()
            }
        );
        let err = client_config(ENTRA.as_bytes(), "c", None, None)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("Entra") && err.contains("no Azure credential"),
            "{err}"
        );
        let token = ENTRA.replace(
            "    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      command: kubelogin\n      args: [get-token, --login, devicecode, --server-id, 6dae42f8-4368-4678-94ff-3960e28e3630]\n",
            "    token: abc\n",
        );
        let (config, server) =
            client_config(token.as_bytes(), "c", None, Some("http://127.0.0.1:1"))
                .await
                .unwrap();
        assert_eq!(server, "http://127.0.0.1:1");
        assert!(!config.default_retry);
        assert!(
            !format!("{:?}", config.auth_info).contains("abc"),
            "tokens stay redacted"
        );
    }

    /// Hands out one static-token kubeconfig, counting the fetches.
    struct CountingSource {
        fetches: std::sync::atomic::AtomicUsize,
        kubeconfig: String,
    }

    #[async_trait]
    impl KubeconfigSource for CountingSource {
        async fn kubeconfig(&self, _cluster: &ResourceId) -> Result<Vec<u8>, KubeError> {
            self.fetches
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(self.kubeconfig.clone().into_bytes())
        }
    }

    #[tokio::test]
    async fn a_kubeconfig_is_kept_until_the_api_server_refuses_it() {
        // An API server that refuses every credential, as after `az aks rotate-certs`.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = format!("http://{}", listener.local_addr().unwrap());
        let refuse = axum::Router::new().fallback(|| async {
            (
                axum::http::StatusCode::UNAUTHORIZED,
                axum::Json(serde_json::json!({
                    "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": "Unauthorized", "reason": "Unauthorized", "code": 401
                })),
            )
        });
        tokio::spawn(async move { axum::serve(listener, refuse).await });
        let source = Arc::new(CountingSource {
            fetches: Default::default(),
            kubeconfig: ENTRA
                .replace("https://c-dns.hcp.westeurope.azmk8s.io:443", &server)
                .replace(
                    "    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      command: kubelogin\n      args: [get-token, --login, devicecode, --server-id, 6dae42f8-4368-4678-94ff-3960e28e3630]\n",
                    "    token: stale\n",
                ),
        });
        let access = KubeconfigAccess::new(source.clone(), None, None);
        let cluster = ResourceId::parse(
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/c",
        )
        .unwrap();
        let fetches = || source.fetches.load(std::sync::atomic::Ordering::SeqCst);

        let client = access.client(&cluster).await.unwrap();
        access.client(&cluster).await.unwrap();
        assert_eq!(fetches(), 1, "the second client reuses the kubeconfig");

        let refused = client.kube().apiserver_version().await.unwrap_err();
        let err = client.error("read the version", refused);
        assert!(matches!(err, KubeError::Unauthorized { .. }), "{err}");
        access.client(&cluster).await.unwrap();
        assert_eq!(fetches(), 2, "a refused kubeconfig is fetched again");
    }

    #[tokio::test]
    async fn broken_kubeconfigs_say_why() {
        let err = client_config(b"current-context: x\n", "c", None, None)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("current-context x is not defined"), "{err}");
    }
}

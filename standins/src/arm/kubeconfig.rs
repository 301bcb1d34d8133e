//! The kubeconfig `ListClusterUserCredentials` returns: the server is the environment's
//! Kubernetes API URL (the Kubernetes stand-in in tests and `local`), the user is an Entra
//! `kubelogin` exec plugin (or the legacy `azure` auth provider) for Entra clusters, and a
//! static token for clusters with local accounts.

use serde_json::{Value, json};

use super::state::ClusterRecord;

/// The AKS Entra server application (audience of cluster tokens).
pub const AKS_SERVER_APP_ID: &str = "6dae42f8-4368-4678-94ff-3960e28e3630";
/// The Azure CLI's public client id, used by kubelogin.
const AZURE_CLI_CLIENT_ID: &str = "04b07795-8ddb-461a-bbee-02f9e1bf7b46";

/// Renders the user kubeconfig of `cluster` as YAML.
pub fn user_kubeconfig(
    cluster: &ClusterRecord,
    server: &str,
    tenant_id: &str,
    format: Option<&str>,
    ca_pem_base64: Option<&str>,
) -> String {
    let context = cluster.name.clone();
    let user_name = format!("clusterUser_{}_{}", cluster.rg, cluster.name);
    let user: Value = match (&cluster.desired.aad, format) {
        (Some(_), Some("azure")) => json!({
            "auth-provider": {
                "name": "azure",
                "config": {
                    "apiserver-id": AKS_SERVER_APP_ID,
                    "client-id": AZURE_CLI_CLIENT_ID,
                    "config-mode": "1",
                    "environment": "AzurePublicCloud",
                    "tenant-id": tenant_id,
                }
            }
        }),
        (Some(_), _) => json!({
            "exec": {
                "apiVersion": "client.authentication.k8s.io/v1beta1",
                "command": "kubelogin",
                "args": [
                    "get-token", "--environment", "AzurePublicCloud",
                    "--server-id", AKS_SERVER_APP_ID,
                    "--client-id", AZURE_CLI_CLIENT_ID,
                    "--tenant-id", tenant_id,
                    "--login", "devicecode"
                ],
                "env": null,
                "provideClusterInfo": false,
                "interactiveMode": "IfAvailable",
            }
        }),
        (None, _) => json!({ "token": cluster.local_user_token }),
    };
    let mut cluster_entry = json!({ "server": server });
    if let Some(ca) = ca_pem_base64 {
        cluster_entry["certificate-authority-data"] = Value::String(ca.to_string());
    }
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{ "name": context, "cluster": cluster_entry }],
        "contexts": [{ "name": context, "context": { "cluster": context, "user": user_name } }],
        "current-context": context,
        "preferences": {},
        "users": [{ "name": user_name, "user": user }],
    });
    serde_yaml_ng::to_string(&config).unwrap_or_default()
}

//! The ARM stand-in driven over HTTP, as the product's ARM client will drive it: each
//! validation rule refuses what Azure refuses with Azure's code, long-running operations
//! complete on the (manual) clock, and the simulated delays (provider registration,
//! principal replication, role propagation, extension install, first backup) hold.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use reqwest::Method;
use serde_json::{Value, json};
use time::macros::datetime;

use backup_pilot::arm::versions;
use backup_pilot::clock::{Clock, ManualClock};
use backup_pilot_standins::arm::{
    ArmHandle, ArmStandIn, BucketLimit, ClusterSeed, FaultKnobs, InjectedFailure, NodePoolSeed,
    PoolMode, RegionalLimits, ThrottleLimits, Timings, TokenBucket, roles,
};

const SUB: &str = "6f1b4e6a-2d9c-4b7e-9a51-3c0f8e2d7a10";
const RG: &str = "rg-aks";
const SNAP_RG: &str = "rg-aks-snapshots";
const LOCATION: &str = "westeurope";
const VAULT: &str = "bv-aks";
const POLICY: &str = "aks-daily";
const ACCOUNT: &str = "aksbkp01";
const CONTAINER: &str = "aks-backups";
const EXTENSION: &str = "azure-aks-backup";

struct Env {
    base: String,
    arm: ArmHandle,
    clock: Arc<ManualClock>,
    http: reqwest::Client,
    token: String,
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
    raw: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }
}

async fn env() -> Env {
    env_with(Timings::default()).await
}

async fn env_with(timings: Timings) -> Env {
    let clock = Arc::new(ManualClock::new(datetime!(2026-03-02 09:00 UTC)));
    let (base, arm) = ArmStandIn::builder()
        .clock(clock.clone())
        .timings(timings)
        .kube_api_url("http://127.0.0.1:6443")
        .build()
        .spawn()
        .await
        .expect("spawn");
    arm.add_subscription(SUB).expect("subscription");
    let token = arm.arm_token();
    Env {
        base,
        arm,
        clock,
        http: crate::common::https(),
        token,
    }
}

fn rg_path(rg: &str) -> String {
    format!("/subscriptions/{SUB}/resourceGroups/{rg}")
}
fn cluster_id(name: &str) -> String {
    format!(
        "{}/providers/Microsoft.ContainerService/managedClusters/{name}",
        rg_path(RG)
    )
}
fn vault_id() -> String {
    format!(
        "{}/providers/Microsoft.DataProtection/backupVaults/{VAULT}",
        rg_path(RG)
    )
}
fn policy_id() -> String {
    format!("{}/backupPolicies/{POLICY}", vault_id())
}
fn account_id() -> String {
    format!(
        "{}/providers/Microsoft.Storage/storageAccounts/{ACCOUNT}",
        rg_path(RG)
    )
}
fn extension_id(cluster: &str) -> String {
    format!(
        "{}/providers/Microsoft.KubernetesConfiguration/extensions/{EXTENSION}",
        cluster_id(cluster)
    )
}
fn role_id(guid: &str) -> String {
    format!("/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{guid}")
}

impl Env {
    async fn send(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
        token: Option<&str>,
        accept: Option<&str>,
    ) -> Answer {
        let mut request = self.http.request(method, url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(accept) = accept {
            request = request.header("Accept", accept);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let raw = response.text().await.expect("body");
        let body = serde_json::from_str(&raw).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            body,
            raw,
        }
    }

    /// `path` relative to the stand-in, with `api-version` appended.
    async fn call(&self, method: Method, path: &str, version: &str, body: Option<Value>) -> Answer {
        let sep = if path.contains('?') { '&' } else { '?' };
        let url = format!("{}{path}{sep}api-version={version}", self.base);
        self.send(method, &url, body.as_ref(), Some(&self.token), None)
            .await
    }

    /// An absolute URL from a `Location`/`Azure-AsyncOperation` header.
    async fn poll(&self, url: &str) -> Answer {
        self.send(Method::GET, url, None, Some(&self.token), None)
            .await
    }

    fn advance(&self, seconds: u64) {
        self.clock.advance(Duration::from_secs(seconds));
    }

    async fn put_rg(&self, rg: &str) {
        let a = self
            .call(
                Method::PUT,
                &rg_path(rg),
                versions::RESOURCES,
                Some(json!({"location": LOCATION})),
            )
            .await;
        assert!(matches!(a.status, 200 | 201), "{}", a.raw);
    }

    async fn assign(
        &self,
        scope: &str,
        role: &str,
        principal: &str,
        principal_type: Option<&str>,
    ) -> Answer {
        self.assign_named(
            scope,
            &uuid::Uuid::new_v4().to_string(),
            role,
            principal,
            principal_type,
        )
        .await
    }

    async fn assign_named(
        &self,
        scope: &str,
        name: &str,
        role: &str,
        principal: &str,
        principal_type: Option<&str>,
    ) -> Answer {
        let mut props = json!({"roleDefinitionId": role_id(role), "principalId": principal});
        if let Some(t) = principal_type {
            props["principalType"] = json!(t);
        }
        self.call(
            Method::PUT,
            &format!("{scope}/providers/Microsoft.Authorization/roleAssignments/{name}"),
            versions::ROLE_ASSIGNMENTS,
            Some(json!({"properties": props})),
        )
        .await
    }

    /// Creates the vault and waits until it is provisioned; returns its principal.
    async fn vault(&self) -> String {
        let a = self
            .call(
                Method::PUT,
                &vault_id(),
                versions::BACKUP_VAULTS,
                Some(json!({
                    "location": LOCATION,
                    "identity": {"type": "SystemAssigned"},
                    "properties": {
                        "storageSettings": [{"datastoreType": "VaultStore", "type": "LocallyRedundant"}],
                        "securitySettings": {"softDeleteSettings": {"state": "Off"}}
                    }
                })),
            )
            .await;
        assert_eq!(a.status, 201, "{}", a.raw);
        self.advance(61);
        let vault = self
            .call(Method::GET, &vault_id(), versions::BACKUP_VAULTS, None)
            .await;
        assert_eq!(
            vault.body["properties"]["provisioningState"], "Succeeded",
            "{}",
            vault.raw
        );
        vault.body["identity"]["principalId"]
            .as_str()
            .expect("vault principal")
            .to_string()
    }

    async fn policy(&self) {
        let a = self
            .call(
                Method::PUT,
                &policy_id(),
                versions::BACKUP_POLICIES,
                Some(aks_policy()),
            )
            .await;
        assert_eq!(a.status, 200, "{}", a.raw);
    }

    async fn storage(&self) {
        let a = self
            .call(
                Method::PUT,
                &account_id(),
                versions::STORAGE_ACCOUNTS,
                Some(json!({"sku": {"name": "Standard_LRS"}, "kind": "StorageV2", "location": LOCATION,
                            "properties": {"allowSharedKeyAccess": false, "allowBlobPublicAccess": false}})),
            )
            .await;
        assert_eq!(a.status, 202, "{}", a.raw);
        self.advance(31);
        let c = self
            .call(
                Method::PUT,
                &format!(
                    "{}/blobServices/default/containers/{CONTAINER}",
                    account_id()
                ),
                versions::STORAGE_ACCOUNTS,
                Some(json!({})),
            )
            .await;
        assert_eq!(c.status, 201, "{}", c.raw);
    }

    async fn put_extension(&self, cluster: &str) -> Answer {
        self.call(
            Method::PUT,
            &extension_id(cluster),
            versions::EXTENSIONS,
            Some(backup_extension()),
        )
        .await
    }

    async fn binding(&self, cluster: &str) {
        let a = self
            .call(
                Method::PUT,
                &format!(
                    "{}/trustedAccessRoleBindings/tarb-backup",
                    cluster_id(cluster)
                ),
                versions::MANAGED_CLUSTERS,
                Some(json!({"properties": {"sourceResourceId": vault_id(),
                    "roles": ["Microsoft.DataProtection/backupVaults/backup-operator"]}})),
            )
            .await;
        assert_eq!(a.status, 201, "{}", a.raw);
        self.advance(31);
    }
}

fn aks_policy() -> Value {
    json!({"properties": {
    "objectType": "BackupPolicy",
    "datasourceTypes": ["Microsoft.ContainerService/managedClusters"],
    "policyRules": [
        {"objectType": "AzureRetentionRule", "name": "Default", "isDefault": true, "lifecycles": [{
            "deleteAfter": {"objectType": "AbsoluteDeleteOption", "duration": "P7D"},
            "sourceDataStore": {"objectType": "DataStoreInfoBase", "dataStoreType": "OperationalStore"},
            "targetDataStoreCopySettings": []}]},
        {"objectType": "AzureBackupRule", "name": "BackupDaily",
         "backupParameters": {"objectType": "AzureBackupParams", "backupType": "Incremental"},
         "dataStore": {"objectType": "DataStoreInfoBase", "dataStoreType": "OperationalStore"},
         "trigger": {"objectType": "ScheduleBasedTriggerContext",
            "schedule": {"repeatingTimeIntervals": ["R/2024-01-01T00:00:00+00:00/P1D"], "timeZone": "Coordinated Universal Time"},
            "taggingCriteria": [{"isDefault": true, "tagInfo": {"id": "Default_", "tagName": "Default"}, "taggingPriority": 99}]}}
    ]}})
}

fn backup_extension() -> Value {
    json!({"properties": {
        "extensionType": "microsoft.dataprotection.kubernetes",
        "releaseTrain": "stable",
        "autoUpgradeMinorVersion": true,
        "scope": {"cluster": {"releaseNamespace": "dataprotection-microsoft"}},
        "configurationSettings": {
            "configuration.backupStorageLocation.bucket": CONTAINER,
            "configuration.backupStorageLocation.config.storageAccount": ACCOUNT,
            "configuration.backupStorageLocation.config.resourceGroup": RG,
            "configuration.backupStorageLocation.config.subscriptionId": SUB,
            "configuration.backupStorageLocation.config.useAAD": "true",
            "credentials.tenantId": "5f1e3a7c-0000-4000-8000-00000000a2b0"
        }
    }})
}

fn backup_instance(cluster: &str) -> Value {
    let id = cluster_id(cluster);
    let ds = |kind: &str| {
        json!({"objectType": kind, "resourceID": id, "resourceUri": id, "resourceName": cluster,
        "datasourceType": "Microsoft.ContainerService/managedClusters",
        "resourceType": "Microsoft.ContainerService/managedClusters", "resourceLocation": LOCATION})
    };
    json!({
        "objectType": "BackupInstance",
        "friendlyName": format!("{cluster}\\fullbackup"),
        "dataSourceInfo": ds("Datasource"),
        "dataSourceSetInfo": ds("DatasourceSet"),
        "policyInfo": {"policyId": policy_id(), "policyParameters": {
            "backupDatasourceParametersList": [{"objectType": "KubernetesClusterBackupDatasourceParameters",
                "includeClusterScopeResources": true, "snapshotVolumes": true}],
            "dataStoreParametersList": [{"objectType": "AzureOperationalStoreParameters",
                "dataStoreType": "OperationalStore", "resourceGroupId": rg_path(SNAP_RG)}]
        }}
    })
}

/// A cluster with providers registered, a vault, a policy, storage, an installed extension
/// and trusted access; returns (vault principal, cluster principal, extension principal).
async fn backup_ready(env: &Env, cluster: &str) -> (String, String, String) {
    env.arm
        .register_provider_now(SUB, "Microsoft.DataProtection")
        .unwrap();
    env.arm
        .register_provider_now(SUB, "Microsoft.KubernetesConfiguration")
        .unwrap();
    let seeded = env
        .arm
        .add_cluster(ClusterSeed::new(SUB, RG, cluster, LOCATION))
        .unwrap();
    env.put_rg(SNAP_RG).await;
    let vault_principal = env.vault().await;
    env.policy().await;
    env.storage().await;
    assert_eq!(env.put_extension(cluster).await.status, 201);
    env.advance(451);
    let ext = env
        .call(
            Method::GET,
            &extension_id(cluster),
            versions::EXTENSIONS,
            None,
        )
        .await;
    assert_eq!(
        ext.body["properties"]["provisioningState"], "Succeeded",
        "{}",
        ext.raw
    );
    let ext_principal = ext.body["properties"]["aksAssignedIdentity"]["principalId"]
        .as_str()
        .unwrap()
        .to_string();
    env.binding(cluster).await;
    (vault_principal, seeded.principal_id, ext_principal)
}

async fn validate_for_backup(env: &Env) -> Answer {
    let body = json!({"backupInstance": backup_instance("aks")});
    let path = format!("{}/validateForBackup", vault_id());
    env.call(Method::POST, &path, versions::BACKUP_INSTANCES, Some(body))
        .await
}

/// Grants every role AKS backup needs (principalType set, so no replication wait).
async fn grant_all(
    env: &Env,
    cluster: &str,
    vault: &str,
    cluster_principal: &str,
    extension: &str,
) {
    for (scope, role, principal) in [
        (cluster_id(cluster), roles::READER, vault),
        (rg_path(SNAP_RG), roles::READER, vault),
        (rg_path(SNAP_RG), roles::CONTRIBUTOR, cluster_principal),
        (
            account_id(),
            roles::STORAGE_BLOB_DATA_CONTRIBUTOR,
            extension,
        ),
    ] {
        let a = env
            .assign(&scope, role, principal, Some("ServicePrincipal"))
            .await;
        assert_eq!(a.status, 201, "{}", a.raw);
    }
}

#[tokio::test]
async fn requests_need_an_arm_bearer_token() {
    let env = env().await;
    let url = format!(
        "{}{}?api-version={}",
        env.base,
        rg_path(RG),
        versions::RESOURCES
    );
    let missing = env.send(Method::GET, &url, None, None, None).await;
    assert_eq!(
        (missing.status, missing.code()),
        (401, "AuthenticationFailed")
    );
    assert!(
        missing
            .header("WWW-Authenticate")
            .is_some_and(|h| h.starts_with("Bearer"))
    );
    let storage_token = env.arm.tokens().issue("https://storage.azure.com");
    let wrong = env
        .send(Method::GET, &url, None, Some(&storage_token), None)
        .await;
    assert_eq!(
        (wrong.status, wrong.code()),
        (401, "InvalidAuthenticationTokenAudience")
    );
    let forged = env
        .send(Method::GET, &url, None, Some("forged"), None)
        .await;
    assert_eq!(
        (forged.status, forged.code()),
        (401, "InvalidAuthenticationToken")
    );
    let ok = env
        .call(Method::GET, &rg_path(RG), versions::RESOURCES, None)
        .await;
    assert_eq!((ok.status, ok.code()), (404, "ResourceGroupNotFound"));
}

#[tokio::test]
async fn wrong_or_missing_api_versions_are_refused_as_arm_does() {
    let env = env().await;
    env.put_rg(RG).await;
    let group = env
        .call(Method::GET, &rg_path(RG), "2021-04-01", None)
        .await;
    assert_eq!(
        (group.status, group.code()),
        (400, "InvalidApiVersionParameter")
    );
    assert!(
        group.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains(versions::RESOURCES)
    );
    env.arm
        .register_provider_now(SUB, "Microsoft.DataProtection")
        .unwrap();
    let vault = env.call(Method::GET, &vault_id(), "2025-09-01", None).await;
    assert_eq!(
        (vault.status, vault.code()),
        (400, "NoRegisteredProviderFound")
    );
    let storage = env
        .call(Method::GET, &account_id(), "2023-05-01", None)
        .await;
    assert_eq!(
        (storage.status, storage.code()),
        (400, "NoRegisteredProviderFound")
    );
    let url = format!("{}{}", env.base, rg_path(RG));
    let missing = env
        .send(Method::GET, &url, None, Some(&env.token), None)
        .await;
    assert_eq!(
        (missing.status, missing.code()),
        (400, "MissingApiVersionParameter")
    );
}

#[tokio::test]
async fn unknown_paths_and_resources_get_arm_errors() {
    let env = env().await;
    env.put_rg(RG).await;
    let ns = env
        .call(
            Method::GET,
            &format!("{}/providers/Microsoft.Widgets/gadgets/g", rg_path(RG)),
            "2024-01-01",
            None,
        )
        .await;
    assert_eq!((ns.status, ns.code()), (400, "InvalidResourceNamespace"));
    let ty = env
        .call(
            Method::GET,
            &format!("{}/providers/Microsoft.Storage/gadgets/g", rg_path(RG)),
            versions::STORAGE_ACCOUNTS,
            None,
        )
        .await;
    assert_eq!((ty.status, ty.code()), (400, "InvalidResourceType"));
    let nonsense = env
        .call(Method::GET, "/not/arm", versions::RESOURCES, None)
        .await;
    assert_eq!(
        (nonsense.status, nonsense.code()),
        (404, "InvalidRequestUri")
    );
    let no_rg = env
        .call(
            Method::GET,
            &format!(
                "{}/providers/Microsoft.Storage/storageAccounts/{ACCOUNT}",
                rg_path("nope")
            ),
            versions::STORAGE_ACCOUNTS,
            None,
        )
        .await;
    assert_eq!((no_rg.status, no_rg.code()), (404, "ResourceGroupNotFound"));
    assert_eq!(
        no_rg.body["error"]["message"],
        "Resource group 'nope' could not be found."
    );
    let no_account = env
        .call(Method::GET, &account_id(), versions::STORAGE_ACCOUNTS, None)
        .await;
    assert_eq!(
        (no_account.status, no_account.code()),
        (404, "ResourceNotFound")
    );
    assert!(no_account.body["error"]["message"].as_str().unwrap().starts_with(&format!(
        "The Resource 'Microsoft.Storage/storageAccounts/{ACCOUNT}' under resource group '{RG}' was not found."
    )));
    let other_sub = env
        .call(
            Method::GET,
            "/subscriptions/00000000-0000-0000-0000-00000000dead/resourceGroups/x",
            versions::RESOURCES,
            None,
        )
        .await;
    assert_eq!(
        (other_sub.status, other_sub.code()),
        (404, "SubscriptionNotFound")
    );
    let suspend = env
        .call(
            Method::POST,
            &format!("{}/backupInstances/bi/suspendBackups", vault_id()),
            versions::BACKUP_INSTANCES,
            None,
        )
        .await;
    assert_eq!(suspend.status, 501, "{}", suspend.raw);
    let head = env
        .call(Method::HEAD, &rg_path("missing"), versions::RESOURCES, None)
        .await;
    assert_eq!((head.status, head.raw.as_str()), (404, ""));
    let head = env
        .call(Method::HEAD, &rg_path(RG), versions::RESOURCES, None)
        .await;
    assert_eq!(head.status, 204);
}

#[tokio::test]
async fn providers_register_after_a_delay_and_gate_their_resources() {
    let env = env().await;
    env.put_rg(RG).await;
    let vault_body = json!({"location": LOCATION, "properties": {"storageSettings": [{"datastoreType": "VaultStore", "type": "LocallyRedundant"}]}});
    let refused = env
        .call(
            Method::PUT,
            &vault_id(),
            versions::BACKUP_VAULTS,
            Some(vault_body.clone()),
        )
        .await;
    assert_eq!(
        (refused.status, refused.code()),
        (409, "MissingSubscriptionRegistration")
    );
    let extension = env
        .call(
            Method::GET,
            &extension_id("aks"),
            versions::EXTENSIONS,
            None,
        )
        .await;
    assert_eq!(
        (extension.status, extension.code()),
        (409, "MissingSubscriptionRegistration")
    );
    let provider = format!("/subscriptions/{SUB}/providers/Microsoft.DataProtection");
    let before = env
        .call(Method::GET, &provider, versions::RESOURCES, None)
        .await;
    assert_eq!(before.body["registrationState"], "NotRegistered");
    let register = env
        .call(
            Method::POST,
            &format!("{provider}/register"),
            versions::RESOURCES,
            None,
        )
        .await;
    assert_eq!(
        (register.status, register.body["registrationState"].as_str()),
        (200, Some("Registering"))
    );
    let still = env
        .call(
            Method::PUT,
            &vault_id(),
            versions::BACKUP_VAULTS,
            Some(vault_body.clone()),
        )
        .await;
    assert_eq!(still.code(), "MissingSubscriptionRegistration");
    env.advance(61);
    let after = env
        .call(Method::GET, &provider, versions::RESOURCES, None)
        .await;
    assert_eq!(after.body["registrationState"], "Registered");
    let created = env
        .call(
            Method::PUT,
            &vault_id(),
            versions::BACKUP_VAULTS,
            Some(vault_body),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.raw);
}

#[tokio::test]
async fn role_assignments_conflict_and_wait_for_new_principals_to_replicate() {
    let env = env().await;
    env.arm
        .register_provider_now(SUB, "Microsoft.DataProtection")
        .unwrap();
    env.put_rg(RG).await;
    let principal = env.vault().await;
    let scope = rg_path(RG);
    // The vault identity is new: without principalType ARM looks it up and cannot see it.
    let early = env.assign(&scope, roles::READER, &principal, None).await;
    assert_eq!((early.status, early.code()), (400, "PrincipalNotFound"));
    assert!(
        early.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&principal.replace('-', ""))
    );
    let name = uuid::Uuid::new_v4().to_string();
    let created = env
        .assign_named(
            &scope,
            &name,
            roles::READER,
            &principal,
            Some("ServicePrincipal"),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.raw);
    assert_eq!(created.body["properties"]["scope"], scope);
    let again = env
        .assign_named(
            &scope,
            &name,
            roles::READER,
            &principal,
            Some("ServicePrincipal"),
        )
        .await;
    assert_eq!(again.status, 200);
    let duplicate = env
        .assign(&scope, roles::READER, &principal, Some("ServicePrincipal"))
        .await;
    assert_eq!(
        (duplicate.status, duplicate.code()),
        (409, "RoleAssignmentExists")
    );
    let changed = env
        .assign_named(
            &scope,
            &name,
            roles::CONTRIBUTOR,
            &principal,
            Some("ServicePrincipal"),
        )
        .await;
    assert_eq!(
        (changed.status, changed.code()),
        (409, "RoleAssignmentUpdateNotPermitted")
    );
    let bad_name = env
        .assign_named(&scope, "reader-for-vault", roles::READER, &principal, None)
        .await;
    assert_eq!(
        (bad_name.status, bad_name.code()),
        (400, "InvalidRoleAssignmentId")
    );
    let wrong_type = env
        .assign(
            &scope,
            roles::CONTRIBUTOR,
            &env.arm
                .add_cluster(ClusterSeed::new(SUB, RG, "aks", LOCATION))
                .unwrap()
                .principal_id,
            Some("User"),
        )
        .await;
    assert_eq!(
        (wrong_type.status, wrong_type.code()),
        (400, "UnmatchedPrincipalType")
    );
    // Once replicated, the lookup succeeds without principalType.
    env.advance(61);
    let later = env
        .assign(&scope, roles::CONTRIBUTOR, &principal, None)
        .await;
    assert_eq!(later.status, 201, "{}", later.raw);
    assert_eq!(
        later.body["properties"]["principalType"],
        "ServicePrincipal"
    );
    // Listing: at, above and below; atScope() keeps at-or-above; principalId filters.
    let cluster_scope = cluster_id("aks");
    let list = |filter: &str| {
        format!(
            "{cluster_scope}/providers/Microsoft.Authorization/roleAssignments?$filter={filter}"
        )
    };
    let inherited = env
        .call(
            Method::GET,
            &list(&format!("atScope() and principalId eq '{principal}'")),
            versions::ROLE_ASSIGNMENTS,
            None,
        )
        .await;
    assert_eq!(
        inherited.body["value"].as_array().unwrap().len(),
        2,
        "{}",
        inherited.raw
    );
    let below = env.call(Method::GET, &format!("/subscriptions/{SUB}/providers/Microsoft.Authorization/roleAssignments?$filter=atScope()"), versions::ROLE_ASSIGNMENTS, None).await;
    assert_eq!(below.body["value"].as_array().unwrap().len(), 0);
    let all = env
        .call(
            Method::GET,
            &format!("/subscriptions/{SUB}/providers/Microsoft.Authorization/roleAssignments"),
            versions::ROLE_ASSIGNMENTS,
            None,
        )
        .await;
    assert_eq!(all.body["value"].as_array().unwrap().len(), 2);
    let deleted = env
        .call(
            Method::DELETE,
            &format!("{scope}/providers/Microsoft.Authorization/roleAssignments/{name}"),
            versions::ROLE_ASSIGNMENTS,
            None,
        )
        .await;
    assert_eq!(deleted.status, 200);
    let gone = env
        .call(
            Method::GET,
            &format!("{scope}/providers/Microsoft.Authorization/roleAssignments/{name}"),
            versions::ROLE_ASSIGNMENTS,
            None,
        )
        .await;
    assert_eq!((gone.status, gone.code()), (404, "RoleAssignmentNotFound"));
    let missing_scope = env
        .assign(&rg_path("no-such-rg"), roles::READER, &principal, None)
        .await;
    assert_eq!(
        (missing_scope.status, missing_scope.code()),
        (404, "ResourceGroupNotFound")
    );
}

#[tokio::test]
async fn bodies_that_violate_the_specs_are_refused() {
    let env = env().await;
    env.arm
        .register_provider_now(SUB, "Microsoft.DataProtection")
        .unwrap();
    env.put_rg(RG).await;
    let no_location = env
        .call(
            Method::PUT,
            &rg_path("rg2"),
            versions::RESOURCES,
            Some(json!({"tags": {}})),
        )
        .await;
    assert_eq!(
        (no_location.status, no_location.code()),
        (400, "InvalidRequestContent")
    );
    let bad_rg_name = env
        .call(
            Method::PUT,
            &rg_path("rg%20with%20space"),
            versions::RESOURCES,
            Some(json!({"location": LOCATION})),
        )
        .await;
    assert_eq!(bad_rg_name.status, 400);
    let not_json = env
        .send(
            Method::PUT,
            &format!(
                "{}{}?api-version={}",
                env.base,
                rg_path("rg3"),
                versions::RESOURCES
            ),
            None,
            Some(&env.token),
            None,
        )
        .await;
    assert_eq!(not_json.code(), "InvalidRequestContent");
    let no_kind = env
        .call(
            Method::PUT,
            &account_id(),
            versions::STORAGE_ACCOUNTS,
            Some(json!({"sku": {"name": "Standard_LRS"}, "location": LOCATION})),
        )
        .await;
    assert_eq!(
        (no_kind.status, no_kind.code()),
        (400, "InvalidRequestContent")
    );
    let bad_name = env
        .call(
            Method::PUT,
            &format!(
                "{}/providers/Microsoft.Storage/storageAccounts/AKS-Backup",
                rg_path(RG)
            ),
            versions::STORAGE_ACCOUNTS,
            Some(
                json!({"sku": {"name": "Standard_LRS"}, "kind": "StorageV2", "location": LOCATION}),
            ),
        )
        .await;
    assert_eq!(
        (bad_name.status, bad_name.code()),
        (400, "AccountNameInvalid")
    );
    env.vault().await;
    let bad_policy = env.call(Method::PUT, &policy_id(), versions::BACKUP_POLICIES,
        Some(json!({"properties": {"objectType": "Policy", "datasourceTypes": ["x"], "policyRules": []}}))).await;
    assert_eq!(
        (bad_policy.status, bad_policy.code()),
        (400, "InvalidParameter")
    );
    env.policy().await;
    env.arm
        .add_cluster(ClusterSeed::new(SUB, RG, "aks", LOCATION))
        .unwrap();
    let bi = format!("{}/backupInstances/aks-bi", vault_id());
    let cases: [(&str, Option<Value>, &str); 6] = [
        ("/objectType", None, "InvalidRequestContent"),
        ("/dataSourceInfo", None, "InvalidRequestContent"),
        ("/policyInfo", None, "InvalidRequestContent"),
        (
            "/policyInfo/policyParameters/backupDatasourceParametersList/0/snapshotVolumes",
            None,
            "InvalidRequestContent",
        ),
        (
            "/policyInfo/policyParameters/dataStoreParametersList/0/dataStoreType",
            None,
            "InvalidRequestContent",
        ),
        (
            "/policyInfo/policyParameters/backupDatasourceParametersList/0/objectType",
            Some(json!("KubernetesBackupParameters")),
            "InvalidParameter",
        ),
    ];
    for (pointer, replacement, code) in cases {
        let mut instance = backup_instance("aks");
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        let target = instance
            .pointer_mut(parent)
            .unwrap()
            .as_object_mut()
            .unwrap();
        match replacement {
            Some(v) => {
                target.insert(key.into(), v);
            }
            None => {
                target.remove(key);
            }
        }
        let a = env
            .call(
                Method::PUT,
                &bi,
                versions::BACKUP_INSTANCES,
                Some(json!({"properties": instance})),
            )
            .await;
        assert_eq!((a.status, a.code()), (400, code), "{pointer}: {}", a.raw);
    }
    let no_k8s_params = {
        let mut instance = backup_instance("aks");
        instance["policyInfo"]["policyParameters"]["backupDatasourceParametersList"] = json!([]);
        env.call(
            Method::PUT,
            &bi,
            versions::BACKUP_INSTANCES,
            Some(json!({"properties": instance})),
        )
        .await
    };
    assert_eq!(
        no_k8s_params.code(),
        "UserErrorInvalidBackupDatasourceParameters"
    );
    let echo = {
        let mut instance = backup_instance("aks");
        instance["provisioningState"] = json!("Succeeded");
        env.call(
            Method::PUT,
            &bi,
            versions::BACKUP_INSTANCES,
            Some(json!({"properties": instance})),
        )
        .await
    };
    assert_eq!(echo.status, 400, "{}", echo.raw);
    let no_roles = env
        .call(
            Method::PUT,
            &format!("{}/trustedAccessRoleBindings/tarb", cluster_id("aks")),
            versions::MANAGED_CLUSTERS,
            Some(json!({"properties": {"sourceResourceId": vault_id()}})),
        )
        .await;
    assert_eq!(
        (no_roles.status, no_roles.code()),
        (400, "InvalidRequestContent")
    );
    let unknown_role = env.call(Method::PUT, &format!("{}/trustedAccessRoleBindings/tarb", cluster_id("aks")), versions::MANAGED_CLUSTERS,
        Some(json!({"properties": {"sourceResourceId": vault_id(), "roles": ["Microsoft.DataProtection/backupVaults/reader"]}}))).await;
    assert_eq!(
        (unknown_role.status, unknown_role.code()),
        (400, "InvalidParameter")
    );
    let role_body = env
        .assign(&rg_path(RG), roles::READER, "not-a-guid", Some("User"))
        .await;
    assert_eq!(role_body.status, 400);
    let no_principal = env
        .call(
            Method::PUT,
            &format!(
                "{}/providers/Microsoft.Authorization/roleAssignments/{}",
                rg_path(RG),
                uuid::Uuid::new_v4()
            ),
            versions::ROLE_ASSIGNMENTS,
            Some(json!({"properties": {"roleDefinitionId": role_id(roles::READER)}})),
        )
        .await;
    assert_eq!(
        (no_principal.status, no_principal.code()),
        (400, "InvalidRequestContent")
    );
}

#[tokio::test]
async fn the_backup_extension_refuses_the_cli_friendly_configuration_keys() {
    let env = env().await;
    env.arm
        .register_provider_now(SUB, "Microsoft.KubernetesConfiguration")
        .unwrap();
    env.arm
        .add_cluster(ClusterSeed::new(SUB, RG, "aks", LOCATION))
        .unwrap();
    let friendly = json!({"properties": {
        "extensionType": "microsoft.dataprotection.kubernetes", "releaseTrain": "stable",
        "configurationSettings": {"blobContainer": CONTAINER, "storageAccount": ACCOUNT,
            "storageAccountResourceGroup": RG, "storageAccountSubscriptionId": SUB}}});
    let a = env
        .call(
            Method::PUT,
            &extension_id("aks"),
            versions::EXTENSIONS,
            Some(friendly),
        )
        .await;
    assert_eq!((a.status, a.code()), (400, "InvalidParameter"));
    let message = a.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("'blobContainer' (use 'configuration.backupStorageLocation.bucket')"),
        "{message}"
    );
    assert!(env.arm.snapshot().extensions.is_empty());
    let mut missing_tenant = backup_extension();
    missing_tenant["properties"]["configurationSettings"]
        .as_object_mut()
        .unwrap()
        .remove("credentials.tenantId");
    let b = env
        .call(
            Method::PUT,
            &extension_id("aks"),
            versions::EXTENSIONS,
            Some(missing_tenant),
        )
        .await;
    assert!(
        b.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("missing: credentials.tenantId"),
        "{}",
        b.raw
    );
}

#[tokio::test]
async fn data_protection_answers_406_with_an_empty_body_to_the_ieee754_accept_header() {
    let env = env().await;
    env.arm
        .register_provider_now(SUB, "Microsoft.DataProtection")
        .unwrap();
    env.put_rg(RG).await;
    let url = format!(
        "{}{}?api-version={}",
        env.base,
        vault_id(),
        versions::BACKUP_VAULTS
    );
    // Even a body Azure would refuse with 400 is hidden behind the 406.
    let hidden = env
        .send(
            Method::PUT,
            &url,
            Some(&json!({"properties": {}})),
            Some(&env.token),
            Some("application/json; charset=utf-8; IEEE754Compatible=false"),
        )
        .await;
    assert_eq!((hidden.status, hidden.raw.as_str()), (406, ""));
    let plain = env
        .send(
            Method::PUT,
            &url,
            Some(&json!({"properties": {}})),
            Some(&env.token),
            Some("application/json"),
        )
        .await;
    assert_eq!((plain.status, plain.code()), (400, "InvalidRequestContent"));
    // Other providers ignore the parameter.
    let group = format!(
        "{}{}?api-version={}",
        env.base,
        rg_path(RG),
        versions::RESOURCES
    );
    let other = env
        .send(
            Method::GET,
            &group,
            None,
            Some(&env.token),
            Some("application/json; charset=utf-8; IEEE754Compatible=false"),
        )
        .await;
    assert_eq!(other.status, 200);
    assert_eq!(
        env.arm.journal().iter().filter(|r| r.status == 406).count(),
        1
    );
}

#[tokio::test]
async fn storage_accounts_are_created_through_a_location_lro_and_stay_invisible_until_done() {
    let env = env().await;
    env.put_rg(RG).await;
    let availability = env
        .call(
            Method::POST,
            &format!("/subscriptions/{SUB}/providers/Microsoft.Storage/checkNameAvailability"),
            versions::STORAGE_ACCOUNTS,
            Some(json!({"name": ACCOUNT, "type": "Microsoft.Storage/storageAccounts"})),
        )
        .await;
    assert_eq!(availability.body["nameAvailable"], true);
    let create = env
        .call(
            Method::PUT,
            &account_id(),
            versions::STORAGE_ACCOUNTS,
            Some(
                json!({"sku": {"name": "Standard_LRS"}, "kind": "StorageV2", "location": LOCATION}),
            ),
        )
        .await;
    assert_eq!((create.status, create.raw.as_str()), (202, ""));
    let location = create.header("Location").unwrap().to_string();
    assert!(location.starts_with(&env.base), "{location}");
    assert!(create.header("Retry-After").unwrap().parse::<u64>().is_ok());
    let hidden = env
        .call(Method::GET, &account_id(), versions::STORAGE_ACCOUNTS, None)
        .await;
    assert_eq!(hidden.status, 404);
    let running = env.poll(&location).await;
    assert_eq!(
        (running.status, running.header("Location").is_some()),
        (202, true)
    );
    let container = env
        .call(
            Method::PUT,
            &format!(
                "{}/blobServices/default/containers/{CONTAINER}",
                account_id()
            ),
            versions::STORAGE_ACCOUNTS,
            Some(json!({})),
        )
        .await;
    assert_eq!(
        (container.status, container.code()),
        (404, "ParentResourceNotFound")
    );
    env.advance(30);
    let done = env.poll(&location).await;
    assert_eq!(done.status, 200, "{}", done.raw);
    assert_eq!(done.body["properties"]["provisioningState"], "Succeeded");
    let visible = env
        .call(Method::GET, &account_id(), versions::STORAGE_ACCOUNTS, None)
        .await;
    assert_eq!(
        visible.body["properties"]["primaryEndpoints"]["blob"],
        format!("https://{ACCOUNT}.blob.core.windows.net/")
    );
    let taken = env
        .call(
            Method::POST,
            &format!("/subscriptions/{SUB}/providers/Microsoft.Storage/checkNameAvailability"),
            versions::STORAGE_ACCOUNTS,
            Some(json!({"name": ACCOUNT, "type": "Microsoft.Storage/storageAccounts"})),
        )
        .await;
    assert_eq!(taken.body["reason"], "AlreadyExists");
    let public = env
        .call(
            Method::PUT,
            &format!(
                "{}/blobServices/default/containers/{CONTAINER}",
                account_id()
            ),
            versions::STORAGE_ACCOUNTS,
            Some(json!({"properties": {"publicAccess": "Blob"}})),
        )
        .await;
    assert_eq!(
        (public.status, public.code()),
        (409, "PublicAccessNotPermitted")
    );
    let bad_container = env
        .call(
            Method::PUT,
            &format!(
                "{}/blobServices/default/containers/Aks--Backups",
                account_id()
            ),
            versions::STORAGE_ACCOUNTS,
            Some(json!({})),
        )
        .await;
    assert_eq!(bad_container.status, 400);
}

#[tokio::test]
async fn the_extension_install_fails_on_a_single_small_node_and_succeeds_after_scaling() {
    let env = env().await;
    env.arm
        .register_provider_now(SUB, "Microsoft.KubernetesConfiguration")
        .unwrap();
    env.arm
        .add_cluster(
            ClusterSeed::new(SUB, RG, "small", LOCATION).with_node_pools(vec![NodePoolSeed::new(
                "nodepool1",
                "Standard_B2ms",
                1,
                PoolMode::System,
            )]),
        )
        .unwrap();
    let create = env.put_extension("small").await;
    assert_eq!(create.status, 201, "{}", create.raw);
    assert_eq!(create.body["properties"]["provisioningState"], "Creating");
    assert_eq!(create.header("x-ms-async-operation-timeout"), Some("PT48H"));
    let status_url = create.header("Azure-AsyncOperation").unwrap().to_string();
    assert_eq!(env.poll(&status_url).await.body["status"], "Creating");
    env.advance(300);
    assert_eq!(env.poll(&status_url).await.body["status"], "Creating");
    env.advance(150);
    let failed = env.poll(&status_url).await;
    assert_eq!(failed.body["status"], "Failed", "{}", failed.raw);
    assert!(
        failed.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("timed out waiting for the condition")
    );
    let extension = env
        .call(
            Method::GET,
            &extension_id("small"),
            versions::EXTENSIONS,
            None,
        )
        .await;
    assert_eq!(extension.body["properties"]["provisioningState"], "Failed");
    assert_eq!(
        extension.body["properties"]["errorInfo"]["code"],
        "ExtensionOperationFailed"
    );
    assert!(extension.body["properties"]["aksAssignedIdentity"].is_null());
    // Scale the pool to two nodes (an LRO), then reinstall.
    let pool_url = format!("{}/agentPools/nodepool1", cluster_id("small"));
    let pool = env
        .call(Method::GET, &pool_url, versions::MANAGED_CLUSTERS, None)
        .await;
    let mut pool_body = json!({"properties": pool.body["properties"].clone()});
    pool_body["properties"]["count"] = json!(2);
    let scale = env
        .call(
            Method::PUT,
            &pool_url,
            versions::MANAGED_CLUSTERS,
            Some(pool_body),
        )
        .await;
    assert_eq!(
        (
            scale.status,
            scale.body["properties"]["provisioningState"].as_str()
        ),
        (200, Some("Scaling")),
        "{}",
        scale.raw
    );
    let busy = env
        .call(
            Method::PUT,
            &pool_url,
            versions::MANAGED_CLUSTERS,
            Some(json!({"properties": {"count": 3}})),
        )
        .await;
    assert_eq!((busy.status, busy.code()), (409, "OperationNotAllowed"));
    env.advance(240);
    let scaled = env
        .poll(scale.header("Azure-AsyncOperation").unwrap())
        .await;
    assert_eq!(scaled.body["status"], "Succeeded");
    let retry = env.put_extension("small").await;
    assert_eq!(
        (
            retry.status,
            retry.body["properties"]["provisioningState"].as_str()
        ),
        (200, Some("Updating"))
    );
    env.advance(450);
    let installed = env
        .call(
            Method::GET,
            &extension_id("small"),
            versions::EXTENSIONS,
            None,
        )
        .await;
    assert_eq!(
        installed.body["properties"]["provisioningState"], "Succeeded",
        "{}",
        installed.raw
    );
    assert!(installed.body["properties"]["aksAssignedIdentity"]["principalId"].is_string());
    let listed = env
        .call(
            Method::GET,
            &format!(
                "{}/providers/Microsoft.KubernetesConfiguration/extensions",
                cluster_id("small")
            ),
            versions::EXTENSIONS,
            None,
        )
        .await;
    assert_eq!(
        listed.body["value"][0]["properties"]["provisioningState"], "Succeeded",
        "{}",
        listed.raw
    );
    let unknown = env
        .poll(
            &status_url.replace(
                status_url
                    .rsplit('/')
                    .next()
                    .unwrap()
                    .split('?')
                    .next()
                    .unwrap(),
                "00000000-0000-0000-0000-000000000000",
            ),
        )
        .await;
    assert_eq!(unknown.status, 404);
}

#[tokio::test]
async fn validate_for_backup_fails_until_role_assignments_propagate_then_protection_and_backup_work()
 {
    let env = env().await;
    let (vault, cluster, extension) = backup_ready(&env, "aks").await;
    grant_all(&env, "aks", &vault, &cluster, &extension).await;
    // The assignments exist (and are listed) but have not propagated.
    let listed = env
        .call(
            Method::GET,
            &format!(
                "{}/providers/Microsoft.Authorization/roleAssignments?$filter=atScope()",
                rg_path(SNAP_RG)
            ),
            versions::ROLE_ASSIGNMENTS,
            None,
        )
        .await;
    assert_eq!(listed.body["value"].as_array().unwrap().len(), 2);
    let early = validate_for_backup(&env).await;
    assert_eq!((early.status, early.raw.as_str()), (202, ""));
    let result_url = early.header("Location").unwrap().to_string();
    let status_url = early.header("Azure-AsyncOperation").unwrap().to_string();
    assert!(
        result_url
            .contains("/providers/Microsoft.DataProtection/locations/westeurope/operationResults/"),
        "{result_url}"
    );
    assert_eq!(env.poll(&result_url).await.status, 202);
    assert_eq!(env.poll(&status_url).await.body["status"], "Inprogress");
    env.advance(30);
    let failed = env.poll(&status_url).await;
    assert_eq!(failed.body["status"], "Failed", "{}", failed.raw);
    assert_eq!(
        failed.body["error"]["code"],
        "KubernetesBackupListExtensionsError"
    );
    // Once the cluster Reader propagates, the snapshot RG roles (granted later) still lag.
    env.advance(60);
    let snapshot_roles = env
        .call(
            Method::GET,
            &format!(
                "{}/providers/Microsoft.Authorization/roleAssignments",
                rg_path(SNAP_RG)
            ),
            versions::ROLE_ASSIGNMENTS,
            None,
        )
        .await;
    for assignment in snapshot_roles.body["value"].as_array().unwrap() {
        let url = format!("{}{}", assignment["id"].as_str().unwrap(), "");
        let deleted = env
            .call(Method::DELETE, &url, versions::ROLE_ASSIGNMENTS, None)
            .await;
        assert_eq!(deleted.status, 200);
    }
    for (role, principal) in [(roles::READER, &vault), (roles::CONTRIBUTOR, &cluster)] {
        assert_eq!(
            env.assign(&rg_path(SNAP_RG), role, principal, Some("ServicePrincipal"))
                .await
                .status,
            201
        );
    }
    let second = validate_for_backup(&env).await;
    env.advance(30);
    let snapshot_error = env.poll(second.header("Location").unwrap()).await;
    assert_eq!(snapshot_error.status, 400, "{}", snapshot_error.raw);
    assert_eq!(
        snapshot_error.code(),
        "UserErrorMissingMSIPermissionsOnSnapshotResourceGroup"
    );
    assert_eq!(
        snapshot_error.body["error"]["additionalInfo"][0]["type"],
        "UserFacingError"
    );
    env.advance(90);
    let third = validate_for_backup(&env).await;
    env.advance(30);
    let ok = env.poll(third.header("Location").unwrap()).await;
    assert_eq!(
        (ok.status, ok.body["objectType"].as_str()),
        (200, Some("OperationJobExtendedInfo")),
        "{}",
        ok.raw
    );
    assert_eq!(
        env.poll(third.header("Azure-AsyncOperation").unwrap())
            .await
            .body["status"],
        "Succeeded"
    );

    // Configure protection.
    let bi_url = format!("{}/backupInstances/aks-bi", vault_id());
    let created = env
        .call(
            Method::PUT,
            &bi_url,
            versions::BACKUP_INSTANCES,
            Some(json!({"properties": backup_instance("aks")})),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.raw);
    assert_eq!(
        created.body["properties"]["currentProtectionState"],
        "ConfiguringProtection"
    );
    assert!(
        created
            .header("Azure-AsyncOperation")
            .unwrap()
            .contains("/backupVaults/bv-aks/operationStatus/")
    );
    env.advance(60);
    let configured = env
        .call(Method::GET, &bi_url, versions::BACKUP_INSTANCES, None)
        .await;
    assert_eq!(
        configured.body["properties"]["currentProtectionState"], "ProtectionConfigured",
        "{}",
        configured.raw
    );
    let bi_result = env.poll(created.header("Location").unwrap()).await;
    assert_eq!(
        bi_result.body["properties"]["provisioningState"],
        "Succeeded"
    );

    // A second instance for the same cluster, vault and policy is refused.
    let twin = env
        .call(
            Method::PUT,
            &format!("{}/backupInstances/aks-bi-2", vault_id()),
            versions::BACKUP_INSTANCES,
            Some(json!({"properties": backup_instance("aks")})),
        )
        .await;
    assert_eq!(
        (twin.status, twin.code()),
        (
            400,
            "UserErrorMultiProtectionNotAllowedWithSameVaultAndSamePolicy"
        )
    );
    let revalidate = validate_for_backup(&env).await;
    env.advance(30);
    assert_eq!(
        env.poll(revalidate.header("Azure-AsyncOperation").unwrap())
            .await
            .body["error"]["code"],
        "UserErrorMultiProtectionNotAllowedWithSameVaultAndSamePolicy"
    );

    // On-demand backup: a job at once, a recovery point after the guide's 3-5 minutes.
    let bad_rule = env.call(Method::POST, &format!("{bi_url}/backup"), versions::BACKUP_INSTANCES,
        Some(json!({"backupRuleOptions": {"ruleName": "Nightly", "triggerOption": {"retentionTagOverride": "Default"}}}))).await;
    assert_eq!(
        (bad_rule.status, bad_rule.code()),
        (400, "BMSUserErrorInvalidInput")
    );
    let backup = env.call(Method::POST, &format!("{bi_url}/backup"), versions::BACKUP_INSTANCES,
        Some(json!({"backupRuleOptions": {"ruleName": "BackupDaily", "triggerOption": {"retentionTagOverride": "Default"}}}))).await;
    assert_eq!(backup.status, 202, "{}", backup.raw);
    env.advance(15);
    let job_info = env.poll(backup.header("Location").unwrap()).await;
    let job_id = job_info.body["jobId"].as_str().expect("job id").to_string();
    let job_url = format!("{}/backupJobs/{job_id}", vault_id());
    assert_eq!(
        env.call(Method::GET, &job_url, versions::BACKUP_INSTANCES, None)
            .await
            .body["properties"]["status"],
        "InProgress"
    );
    let rps = format!("{bi_url}/recoveryPoints");
    assert_eq!(
        env.call(Method::GET, &rps, versions::BACKUP_INSTANCES, None)
            .await
            .body["value"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    env.advance(240);
    let job = env
        .call(Method::GET, &job_url, versions::BACKUP_INSTANCES, None)
        .await;
    assert_eq!(job.body["properties"]["status"], "Completed", "{}", job.raw);
    let points = env
        .call(Method::GET, &rps, versions::BACKUP_INSTANCES, None)
        .await;
    let point = &points.body["value"][0];
    assert_eq!(
        point["properties"]["objectType"],
        "AzureBackupDiscreteRecoveryPoint"
    );
    let one = env
        .call(
            Method::GET,
            &format!("{rps}/{}", point["name"].as_str().unwrap()),
            versions::BACKUP_INSTANCES,
            None,
        )
        .await;
    assert_eq!(one.status, 200);
    let jobs = env
        .call(
            Method::GET,
            &format!("{}/backupJobs", vault_id()),
            versions::BACKUP_INSTANCES,
            None,
        )
        .await;
    assert_eq!(jobs.body["value"].as_array().unwrap().len(), 1);

    // Deleting the instance is an LRO.
    let delete = env
        .call(Method::DELETE, &bi_url, versions::BACKUP_INSTANCES, None)
        .await;
    assert_eq!(delete.status, 202);
    env.advance(60);
    assert_eq!(
        env.poll(delete.header("Location").unwrap()).await.status,
        200
    );
    assert_eq!(
        env.call(Method::GET, &bi_url, versions::BACKUP_INSTANCES, None)
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn protection_ends_in_error_when_trusted_access_is_missing() {
    let env = env().await;
    env.arm
        .register_provider_now(SUB, "Microsoft.DataProtection")
        .unwrap();
    env.arm
        .register_provider_now(SUB, "Microsoft.KubernetesConfiguration")
        .unwrap();
    let seeded = env
        .arm
        .add_cluster(ClusterSeed::new(SUB, RG, "aks", LOCATION))
        .unwrap();
    env.put_rg(SNAP_RG).await;
    let vault = env.vault().await;
    env.policy().await;
    env.storage().await;
    env.put_extension("aks").await;
    env.advance(451);
    let extension = env.arm.snapshot().extensions[0]
        .principal_id
        .clone()
        .unwrap();
    grant_all(&env, "aks", &vault, &seeded.principal_id, &extension).await;
    env.advance(91);
    let bi_url = format!("{}/backupInstances/aks-bi", vault_id());
    let created = env
        .call(
            Method::PUT,
            &bi_url,
            versions::BACKUP_INSTANCES,
            Some(json!({"properties": backup_instance("aks")})),
        )
        .await;
    assert_eq!(created.status, 201);
    env.advance(60);
    let bi = env
        .call(Method::GET, &bi_url, versions::BACKUP_INSTANCES, None)
        .await;
    assert_eq!(
        bi.body["properties"]["currentProtectionState"], "ProtectionError",
        "{}",
        bi.raw
    );
    assert_eq!(
        bi.body["properties"]["protectionErrorDetails"]["code"],
        "UserErrorTrustedAccessGatewayReturnedForbidden"
    );
    assert_eq!(
        env.arm.snapshot().backup_instances[0].error_code.as_deref(),
        Some("UserErrorTrustedAccessGatewayReturnedForbidden")
    );
    let backup = env
        .call(
            Method::POST,
            &format!("{bi_url}/backup"),
            versions::BACKUP_INSTANCES,
            Some(json!({"backupRuleOptions": {"ruleName": "BackupDaily", "triggerOption": {}}})),
        )
        .await;
    assert_eq!(backup.status, 400);
}

#[tokio::test]
async fn throttling_reports_remaining_quota_and_answers_429_with_retry_after() {
    let env = env().await;
    env.arm.set_throttle(ThrottleLimits {
        writes: BucketLimit {
            capacity: 2,
            refill_per_hour: 60,
        },
        ..ThrottleLimits::default()
    });
    let read = env
        .call(Method::GET, &rg_path(RG), versions::RESOURCES, None)
        .await;
    assert_eq!(
        read.header("x-ms-ratelimit-remaining-subscription-reads"),
        Some("11999")
    );
    let first = env
        .call(
            Method::PUT,
            &rg_path(RG),
            versions::RESOURCES,
            Some(json!({"location": LOCATION})),
        )
        .await;
    assert_eq!(
        first.header("x-ms-ratelimit-remaining-subscription-writes"),
        Some("1")
    );
    let second = env
        .call(
            Method::PUT,
            &rg_path(RG),
            versions::RESOURCES,
            Some(json!({"location": LOCATION})),
        )
        .await;
    assert_eq!(
        second.header("x-ms-ratelimit-remaining-subscription-writes"),
        Some("0")
    );
    let third = env
        .call(
            Method::PUT,
            &rg_path(RG),
            versions::RESOURCES,
            Some(json!({"location": LOCATION})),
        )
        .await;
    assert_eq!(
        (third.status, third.code()),
        (429, "SubscriptionRequestsThrottled")
    );
    assert_eq!(third.header("Retry-After"), Some("60"));
    let delete = env
        .call(Method::DELETE, &rg_path("other"), versions::RESOURCES, None)
        .await;
    assert_eq!(
        delete.header("x-ms-ratelimit-remaining-subscription-deletes"),
        Some("14999")
    );
    env.advance(60);
    let again = env
        .call(
            Method::PUT,
            &rg_path(RG),
            versions::RESOURCES,
            Some(json!({"location": LOCATION})),
        )
        .await;
    assert_eq!(again.status, 200);
}

#[tokio::test]
async fn fault_knobs_inject_failures_latency_and_provider_throttling() {
    let env = env().await;
    env.put_rg(RG).await;
    env.arm
        .fail_next("ResourceGroups_Get", 2, InjectedFailure::internal_error());
    assert_eq!(
        env.call(Method::GET, &rg_path(RG), versions::RESOURCES, None)
            .await
            .status,
        500
    );
    assert_eq!(
        env.call(Method::GET, &rg_path(RG), versions::RESOURCES, None)
            .await
            .status,
        500
    );
    assert_eq!(
        env.call(Method::GET, &rg_path(RG), versions::RESOURCES, None)
            .await
            .status,
        200
    );
    env.arm.set_faults(FaultKnobs {
        throttle_rate: 1.0,
        ..FaultKnobs::default()
    });
    let throttled = env
        .call(Method::GET, &rg_path(RG), versions::RESOURCES, None)
        .await;
    assert_eq!(
        (throttled.status, throttled.header("Retry-After").is_some()),
        (429, true)
    );
    env.arm.set_faults(FaultKnobs {
        server_error_rate: 1.0,
        ..FaultKnobs::default()
    });
    assert!(
        env.call(Method::GET, &rg_path(RG), versions::RESOURCES, None)
            .await
            .status
            >= 500
    );
    env.arm.set_faults(FaultKnobs {
        latency: Duration::from_millis(40),
        ..FaultKnobs::default()
    });
    let started = std::time::Instant::now();
    assert_eq!(
        env.call(Method::GET, &rg_path(RG), versions::RESOURCES, None)
            .await
            .status,
        200
    );
    assert!(started.elapsed() >= Duration::from_millis(40));
}

#[tokio::test]
async fn cluster_updates_are_lros_one_at_a_time_and_enable_the_csi_snapshot_controller() {
    let env = env().await;
    env.arm
        .add_cluster(ClusterSeed::new(SUB, RG, "aks", LOCATION).with_csi(false, false))
        .unwrap();
    let cluster = env
        .call(
            Method::GET,
            &cluster_id("aks"),
            versions::MANAGED_CLUSTERS,
            None,
        )
        .await;
    assert_eq!(
        cluster.body["properties"]["storageProfile"]["snapshotController"]["enabled"],
        false
    );
    let mut body = cluster.body.clone();
    body["properties"]["storageProfile"]["diskCSIDriver"]["enabled"] = json!(true);
    body["properties"]["storageProfile"]["snapshotController"]["enabled"] = json!(true);
    let mut stale = body.clone();
    stale["properties"]["provisioningState"] = json!("Failed");
    let refused = env
        .call(
            Method::PUT,
            &cluster_id("aks"),
            versions::MANAGED_CLUSTERS,
            Some(stale),
        )
        .await;
    assert_eq!(refused.status, 400, "{}", refused.raw);
    let update = env
        .call(
            Method::PUT,
            &cluster_id("aks"),
            versions::MANAGED_CLUSTERS,
            Some(body.clone()),
        )
        .await;
    assert_eq!(
        (
            update.status,
            update.body["properties"]["provisioningState"].as_str()
        ),
        (200, Some("Updating")),
        "{}",
        update.raw
    );
    let busy = env
        .call(
            Method::PUT,
            &cluster_id("aks"),
            versions::MANAGED_CLUSTERS,
            Some(body),
        )
        .await;
    assert_eq!((busy.status, busy.code()), (409, "OperationNotAllowed"));
    let status_url = update.header("Azure-AsyncOperation").unwrap().to_string();
    assert_eq!(env.poll(&status_url).await.body["status"], "InProgress");
    assert!(!env.arm.snapshot().clusters[0].snapshot_controller);
    env.advance(300);
    assert_eq!(env.poll(&status_url).await.body["status"], "Succeeded");
    let snapshot = env.arm.snapshot();
    assert!(snapshot.clusters[0].snapshot_controller && snapshot.clusters[0].disk_csi_driver);
    let after = env
        .call(
            Method::GET,
            &cluster_id("aks"),
            versions::MANAGED_CLUSTERS,
            None,
        )
        .await;
    assert_eq!(after.body["properties"]["provisioningState"], "Succeeded");
    let only_snapshot = {
        let mut b = after.body.clone();
        b["properties"]["storageProfile"]["diskCSIDriver"]["enabled"] = json!(false);
        env.call(
            Method::PUT,
            &cluster_id("aks"),
            versions::MANAGED_CLUSTERS,
            Some(b),
        )
        .await
    };
    assert_eq!(only_snapshot.status, 400);
}

#[tokio::test]
async fn user_credentials_point_at_the_configured_kubernetes_api() {
    let env = env().await;
    let seeded = env
        .arm
        .add_cluster(ClusterSeed::new(SUB, RG, "aks", LOCATION))
        .unwrap();
    env.arm.set_kube_api_url("http://127.0.0.1:7443");
    let url = format!("{}/listClusterUserCredential", cluster_id("aks"));
    let creds = env
        .call(Method::POST, &url, versions::MANAGED_CLUSTERS, None)
        .await;
    assert_eq!(creds.status, 200, "{}", creds.raw);
    assert_eq!(creds.body["kubeconfigs"][0]["name"], "clusterUser");
    let yaml = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(creds.body["kubeconfigs"][0]["value"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap();
    let config: serde_yaml_ng::Value = serde_yaml_ng::from_str(&yaml).unwrap();
    assert_eq!(
        config["clusters"][0]["cluster"]["server"].as_str(),
        Some("http://127.0.0.1:7443")
    );
    let token = env.arm.cluster_user_token(&seeded.id).unwrap();
    assert_eq!(
        config["users"][0]["user"]["token"].as_str(),
        Some(token.as_str())
    );
    let bad = env
        .call(
            Method::POST,
            &format!("{url}?format=yaml"),
            versions::MANAGED_CLUSTERS,
            None,
        )
        .await;
    assert_eq!((bad.status, bad.code()), (400, "InvalidParameter"));
    env.arm
        .add_cluster(
            ClusterSeed::new(SUB, RG, "entra", LOCATION)
                .with_entra(Default::default(), true)
                .with_kube_api_url("http://127.0.0.1:9443"),
        )
        .unwrap();
    let entra = env
        .call(
            Method::POST,
            &format!(
                "{}/listClusterUserCredential?format=exec",
                cluster_id("entra")
            ),
            versions::MANAGED_CLUSTERS,
            None,
        )
        .await;
    let yaml = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(entra.body["kubeconfigs"][0]["value"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap();
    let config: serde_yaml_ng::Value = serde_yaml_ng::from_str(&yaml).unwrap();
    assert_eq!(
        config["clusters"][0]["cluster"]["server"].as_str(),
        Some("http://127.0.0.1:9443")
    );
    assert_eq!(
        config["users"][0]["user"]["exec"]["command"].as_str(),
        Some("kubelogin")
    );
}

#[tokio::test]
async fn trusted_access_bindings_and_roles() {
    let env = env().await;
    env.arm
        .register_provider_now(SUB, "Microsoft.DataProtection")
        .unwrap();
    env.arm
        .add_cluster(ClusterSeed::new(SUB, RG, "aks", LOCATION))
        .unwrap();
    let roles_list = env.call(Method::GET, &format!("/subscriptions/{SUB}/providers/Microsoft.ContainerService/locations/{LOCATION}/trustedAccessRoles"), versions::MANAGED_CLUSTERS, None).await;
    assert_eq!(roles_list.body["value"][0]["name"], "backup-operator");
    let binding_url = format!(
        "{}/trustedAccessRoleBindings/tarb-backup",
        cluster_id("aks")
    );
    let body = json!({"properties": {"sourceResourceId": vault_id(), "roles": ["Microsoft.DataProtection/backupVaults/backup-operator"]}});
    let no_vault = env
        .call(
            Method::PUT,
            &binding_url,
            versions::MANAGED_CLUSTERS,
            Some(body.clone()),
        )
        .await;
    assert_eq!(no_vault.status, 400, "{}", no_vault.raw);
    env.vault().await;
    let created = env
        .call(
            Method::PUT,
            &binding_url,
            versions::MANAGED_CLUSTERS,
            Some(body),
        )
        .await;
    assert_eq!(
        (
            created.status,
            created.body["properties"]["provisioningState"].as_str()
        ),
        (201, Some("Updating"))
    );
    env.advance(30);
    let listed = env
        .call(
            Method::GET,
            &format!("{}/trustedAccessRoleBindings", cluster_id("aks")),
            versions::MANAGED_CLUSTERS,
            None,
        )
        .await;
    assert_eq!(
        listed.body["value"][0]["properties"]["provisioningState"],
        "Succeeded"
    );
    let long_name = env
        .call(
            Method::PUT,
            &format!(
                "{}/trustedAccessRoleBindings/{}",
                cluster_id("aks"),
                "x".repeat(25)
            ),
            versions::MANAGED_CLUSTERS,
            Some(json!({})),
        )
        .await;
    assert_eq!(long_name.status, 400);
    let delete = env
        .call(
            Method::DELETE,
            &binding_url,
            versions::MANAGED_CLUSTERS,
            None,
        )
        .await;
    assert_eq!(delete.status, 202);
    let location = delete.header("Location").unwrap().to_string();
    assert_eq!(env.poll(&location).await.status, 202);
    env.advance(30);
    assert_eq!(env.poll(&location).await.status, 204);
    assert_eq!(
        env.call(Method::GET, &binding_url, versions::MANAGED_CLUSTERS, None)
            .await
            .status,
        404
    );
    assert_eq!(
        env.call(
            Method::DELETE,
            &binding_url,
            versions::MANAGED_CLUSTERS,
            None
        )
        .await
        .status,
        204
    );
}

#[tokio::test]
async fn status_endpoints_answer_404_for_unknown_operation_ids() {
    let env = env().await;
    env.arm
        .register_provider_now(SUB, "Microsoft.DataProtection")
        .unwrap();
    env.put_rg(RG).await;
    env.vault().await;
    let unknown = "ZTA4YjQ0ZGYtYmNkNS00YTk1LWFjZTMtOTc1MjNmZWIxYWZlO2Y1ODg1MzA3LWJkNjItNDQ2OC05ZjZlLTJkMGM2NjNiNmJmNg==";
    for (path, version) in [
        (
            format!("{}/operationStatus/{unknown}", vault_id()),
            versions::BACKUP_VAULTS,
        ),
        (
            format!(
                "/subscriptions/{SUB}/providers/Microsoft.DataProtection/locations/{LOCATION}/operationResults/{unknown}"
            ),
            versions::BACKUP_INSTANCES,
        ),
        (
            format!(
                "/subscriptions/{SUB}/providers/Microsoft.DataProtection/locations/{LOCATION}/operationStatus/{unknown}"
            ),
            versions::BACKUP_INSTANCES,
        ),
        (
            format!(
                "/subscriptions/{SUB}/providers/Microsoft.ContainerService/locations/{LOCATION}/operations/{unknown}"
            ),
            versions::MANAGED_CLUSTERS,
        ),
        (
            format!(
                "/subscriptions/{SUB}/providers/Microsoft.Storage/locations/{LOCATION}/asyncoperations/{unknown}"
            ),
            versions::STORAGE_ACCOUNTS,
        ),
        (
            format!("/subscriptions/{SUB}/operationresults/{unknown}"),
            versions::RESOURCES,
        ),
    ] {
        let a = env.call(Method::GET, &path, version, None).await;
        assert_eq!(a.status, 404, "{path}: {}", a.raw);
    }
}

#[tokio::test]
async fn resource_group_deletion_is_an_lro_that_removes_its_contents() {
    let env = env_with(Timings {
        resource_group_delete: Duration::from_secs(120),
        ..Timings::default()
    })
    .await;
    env.arm
        .add_cluster(ClusterSeed::new(SUB, RG, "aks", LOCATION))
        .unwrap();
    let delete = env
        .call(Method::DELETE, &rg_path(RG), versions::RESOURCES, None)
        .await;
    assert_eq!(delete.status, 202);
    let location = delete.header("Location").unwrap().to_string();
    let deleting = env
        .call(Method::GET, &rg_path(RG), versions::RESOURCES, None)
        .await;
    assert_eq!(deleting.body["properties"]["provisioningState"], "Deleting");
    let write = env
        .call(
            Method::PUT,
            &format!(
                "{}/providers/Microsoft.Storage/storageAccounts/{ACCOUNT}",
                rg_path(RG)
            ),
            versions::STORAGE_ACCOUNTS,
            Some(
                json!({"sku": {"name": "Standard_LRS"}, "kind": "StorageV2", "location": LOCATION}),
            ),
        )
        .await;
    assert_eq!(
        (write.status, write.code()),
        (409, "ResourceGroupBeingDeleted")
    );
    assert_eq!(env.poll(&location).await.status, 202);
    env.advance(120);
    assert_eq!(env.poll(&location).await.status, 200);
    assert_eq!(
        env.call(
            Method::GET,
            &cluster_id("aks"),
            versions::MANAGED_CLUSTERS,
            None
        )
        .await
        .code(),
        "ResourceGroupNotFound"
    );
    assert!(env.arm.snapshot().clusters.is_empty());
}

#[tokio::test]
async fn the_journal_records_every_request_with_its_answer() {
    let env = env().await;
    env.put_rg(RG).await;
    let _ = env
        .call(
            Method::GET,
            &format!("{}?extra=1", rg_path(RG)),
            versions::RESOURCES,
            None,
        )
        .await;
    let journal = env.arm.journal();
    assert_eq!(journal.len(), 2);
    assert_eq!(journal[0].method, "PUT");
    assert_eq!(journal[0].path, rg_path(RG));
    assert_eq!(journal[0].request_body, Some(json!({"location": LOCATION})));
    assert_eq!(journal[0].status, 201);
    assert_eq!(journal[0].response_body.as_ref().unwrap()["name"], RG);
    assert_eq!(journal[0].at, env.clock.now());
    assert_eq!(
        journal[1].query,
        vec![
            ("extra".to_string(), "1".to_string()),
            ("api-version".to_string(), versions::RESOURCES.to_string())
        ]
    );
    env.arm.clear_journal();
    assert!(env.arm.journal().is_empty());
}

/// The product's own kubeconfig path (ARM `listClusterUserCredential` → kube-rs client)
/// reaches the Kubernetes stand-in through the ARM stand-in's kubeconfig, for a local-account
/// cluster and an Entra cluster.
#[tokio::test]
async fn the_products_cluster_access_reaches_the_kubernetes_stand_in_through_arm_kubeconfigs() {
    use backup_pilot::kube::ClusterAccess;
    use backup_pilot::kube::access::{ArmKubeconfigSource, CredentialKind};
    use backup_pilot::resource_id::ResourceId;
    use backup_pilot_standins::credential::IssuerCredential;
    use backup_pilot_standins::kube_api::{KubeApiOptions, KubeApiServer, KubeconfigAuth};

    let env = env().await;
    let kube = KubeApiServer::with_options(
        env.clock.clone(),
        KubeApiOptions {
            issuer: Some(env.arm.tokens().clone()),
            ..KubeApiOptions::default()
        },
    );
    let kube_url = kube.spawn().await.unwrap();
    let local_yaml = kube.kubeconfig(&kube_url, "x", KubeconfigAuth::LocalAccount);
    let parsed: serde_yaml_ng::Value = serde_yaml_ng::from_str(&local_yaml).unwrap();
    let kube_token = parsed["users"][0]["user"]["token"]
        .as_str()
        .unwrap()
        .to_string();
    env.arm.set_kube_api_url(&kube_url);
    env.arm
        .set_kube_api_ca(kube.certificate_authority_data().as_deref());
    env.arm
        .add_cluster(
            ClusterSeed::new(SUB, RG, "local", LOCATION).with_local_account_token(&kube_token),
        )
        .unwrap();
    env.arm
        .add_cluster(
            ClusterSeed::new(SUB, RG, "entra", LOCATION).with_entra(Default::default(), true),
        )
        .unwrap();
    let credential = Arc::new(IssuerCredential::new(env.arm.tokens().clone()));
    let client = backup_pilot::arm::ArmClient::new(
        crate::common::https(),
        backup_pilot::arm::ArmOptions {
            base_url: env.base.clone(),
            ..Default::default()
        },
        credential.clone(),
        env.clock.clone(),
    )
    .unwrap();
    let source = ArmKubeconfigSource::new(Arc::new(client), CredentialKind::User);
    let access =
        backup_pilot::kube::KubeconfigAccess::new(Arc::new(source), Some(credential), None);
    for cluster in ["local", "entra"] {
        let id = ResourceId::parse(&cluster_id(cluster)).unwrap();
        let client = access
            .client(&id)
            .await
            .unwrap_or_else(|e| panic!("{cluster}: {e}"));
        assert_eq!(client.server(), kube_url);
        let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> =
            kube::Api::all(client.kube());
        let list = namespaces
            .list(&Default::default())
            .await
            .unwrap_or_else(|e| panic!("{cluster}: {e}"));
        assert!(
            list.items
                .iter()
                .any(|n| n.metadata.name.as_deref() == Some("default")),
            "{cluster}"
        );
    }
    let posts: Vec<_> = env
        .arm
        .journal()
        .into_iter()
        .filter(|r| r.path.ends_with("/listClusterUserCredential"))
        .collect();
    assert_eq!(posts.len(), 2);
    assert!(
        posts
            .iter()
            .all(|r| r.status == 200 && r.request_body.is_none())
    );
}

/// In compressed time (a scaled clock), the guide's 5-10 minute extension install completes
/// in well under a second of real time while a client polls `Azure-AsyncOperation`.
#[tokio::test]
async fn on_a_scaled_clock_operations_finish_in_compressed_real_time() {
    let clock = Arc::new(
        backup_pilot::clock::ScaledClock::new(std::time::SystemTime::now(), 1200.0).unwrap(),
    );
    let (base, arm) = ArmStandIn::builder()
        .clock(clock)
        .build()
        .spawn()
        .await
        .unwrap();
    arm.add_subscription(SUB).unwrap();
    arm.register_provider_now(SUB, "Microsoft.KubernetesConfiguration")
        .unwrap();
    arm.add_cluster(ClusterSeed::new(SUB, RG, "aks", LOCATION))
        .unwrap();
    let http = crate::common::https();
    let token = arm.arm_token();
    let url = format!(
        "{base}{}?api-version={}",
        extension_id("aks"),
        versions::EXTENSIONS
    );
    let created = http
        .put(&url)
        .bearer_auth(&token)
        .json(&backup_extension())
        .send()
        .await
        .unwrap();
    assert_eq!(created.status().as_u16(), 201);
    let status_url = created.headers()["Azure-AsyncOperation"]
        .to_str()
        .unwrap()
        .to_string();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let final_status = loop {
        let status: Value = http
            .get(&status_url)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let word = status["status"].as_str().unwrap_or_default().to_string();
        if word != "Creating" || std::time::Instant::now() > deadline {
            break word;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert_eq!(final_status, "Succeeded");
    arm.shutdown();
}

#[tokio::test]
async fn kubernetes_versions_offer_1_29_and_1_30_on_the_lts_plan_only() {
    let env = env().await;
    let path = format!(
        "/subscriptions/{SUB}/providers/Microsoft.ContainerService/locations/{LOCATION}/kubernetesVersions"
    );
    let listed = env
        .call(Method::GET, &path, versions::MANAGED_CLUSTERS, None)
        .await;
    assert_eq!(listed.status, 200, "{}", listed.raw);
    let values = listed.body["values"].as_array().expect("values");
    let plans = |minor: &str| {
        values
            .iter()
            .find(|v| v["version"] == minor)
            .map(|v| v["capabilities"]["supportPlan"].clone())
            .unwrap_or(Value::Null)
    };
    assert_eq!(plans("1.29"), json!(["AKSLongTermSupport"]));
    assert_eq!(plans("1.30"), json!(["AKSLongTermSupport"]));
    assert_eq!(
        plans("1.31"),
        json!(["KubernetesOfficial", "AKSLongTermSupport"])
    );
    assert!(values.iter().any(|v| v["isPreview"] == true));
    // The default version of seeded clusters is on offer, with an upgrade path.
    let v131 = values.iter().find(|v| v["version"] == "1.31").unwrap();
    assert!(
        v131["patchVersions"]["1.31.5"]["upgrades"]
            .as_array()
            .is_some_and(|u| u
                .iter()
                .any(|v| v.as_str().is_some_and(|v| v.starts_with("1.32.")))),
        "{}",
        listed.raw
    );
    // Seeded clusters say which plan they are on.
    env.arm
        .add_cluster(ClusterSeed::new(SUB, RG, "community", LOCATION))
        .unwrap();
    env.arm
        .add_cluster(ClusterSeed::new(SUB, RG, "lts", LOCATION).with_long_term_support())
        .unwrap();
    let community = env
        .call(
            Method::GET,
            &cluster_id("community"),
            versions::MANAGED_CLUSTERS,
            None,
        )
        .await;
    assert_eq!(
        community.body["properties"]["supportPlan"],
        "KubernetesOfficial"
    );
    let lts = env
        .call(
            Method::GET,
            &cluster_id("lts"),
            versions::MANAGED_CLUSTERS,
            None,
        )
        .await;
    assert_eq!(lts.body["properties"]["supportPlan"], "AKSLongTermSupport");
    assert_eq!(lts.body["sku"]["tier"], "Premium");
    // Only GET exists on the collection.
    let post = env
        .call(Method::POST, &path, versions::MANAGED_CLUSTERS, None)
        .await;
    assert_eq!(post.status, 405, "{}", post.raw);
}

#[tokio::test]
async fn a_cluster_delete_is_an_lro_that_takes_its_extension_bindings_and_scoped_roles() {
    let env = env().await;
    let (vault, cluster_principal, _) = backup_ready(&env, "doomed").await;
    let assigned = env
        .assign(
            &cluster_id("doomed"),
            roles::READER,
            &vault,
            Some("ServicePrincipal"),
        )
        .await;
    assert_eq!(assigned.status, 201, "{}", assigned.raw);
    let elsewhere = env
        .assign(
            &rg_path(SNAP_RG),
            roles::CONTRIBUTOR,
            &cluster_principal,
            Some("ServicePrincipal"),
        )
        .await;
    assert_eq!(elsewhere.status, 201, "{}", elsewhere.raw);
    let node_rg = env
        .call(
            Method::GET,
            &cluster_id("doomed"),
            versions::MANAGED_CLUSTERS,
            None,
        )
        .await
        .body["properties"]["nodeResourceGroup"]
        .as_str()
        .unwrap()
        .to_string();

    let delete = env
        .call(
            Method::DELETE,
            &cluster_id("doomed"),
            versions::MANAGED_CLUSTERS,
            None,
        )
        .await;
    assert_eq!((delete.status, delete.raw.as_str()), (202, ""));
    let location = delete.header("Location").unwrap().to_string();
    let status = delete.header("Azure-AsyncOperation").unwrap().to_string();
    assert!(
        location.contains(
            "/providers/Microsoft.ContainerService/locations/westeurope/operationresults/"
        ),
        "{location}"
    );
    assert!(delete.header("Retry-After").is_some());
    let deleting = env
        .call(
            Method::GET,
            &cluster_id("doomed"),
            versions::MANAGED_CLUSTERS,
            None,
        )
        .await;
    assert_eq!(deleting.body["properties"]["provisioningState"], "Deleting");
    // One operation at a time: an update is refused while the delete runs; a second delete
    // joins the running one.
    let update = env
        .call(
            Method::PUT,
            &cluster_id("doomed"),
            versions::MANAGED_CLUSTERS,
            Some(deleting.body.clone()),
        )
        .await;
    assert_eq!(
        (update.status, update.code()),
        (409, "OperationNotAllowed"),
        "{}",
        update.raw
    );
    assert!(
        update.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("delete managed cluster")
    );
    let again = env
        .call(
            Method::DELETE,
            &cluster_id("doomed"),
            versions::MANAGED_CLUSTERS,
            None,
        )
        .await;
    assert_eq!(again.status, 202);
    assert_eq!(again.header("Location"), Some(location.as_str()));
    assert_eq!(env.poll(&location).await.status, 202);
    assert_eq!(env.poll(&status).await.body["status"], "InProgress");

    env.advance(300);
    assert_eq!(env.poll(&status).await.body["status"], "Succeeded");
    assert_eq!(env.poll(&location).await.status, 204);
    let gone = env
        .call(
            Method::GET,
            &cluster_id("doomed"),
            versions::MANAGED_CLUSTERS,
            None,
        )
        .await;
    assert_eq!((gone.status, gone.code()), (404, "ResourceNotFound"));
    let state = env.arm.snapshot();
    assert!(state.extensions.is_empty() && state.trusted_access_bindings.is_empty());
    assert!(
        !state
            .resource_groups
            .iter()
            .any(|g| g.eq_ignore_ascii_case(&node_rg)),
        "{:?}",
        state.resource_groups
    );
    assert_eq!(
        state.role_assignments.len(),
        1,
        "only the assignment at another scope stays"
    );
    assert!(
        state.role_assignments[0]
            .scope
            .eq_ignore_ascii_case(&rg_path(SNAP_RG))
    );
    let absent = env
        .call(
            Method::DELETE,
            &cluster_id("doomed"),
            versions::MANAGED_CLUSTERS,
            None,
        )
        .await;
    assert_eq!(absent.status, 204);

    // Out of band, through the seeding handle.
    let seeded = env
        .arm
        .add_cluster(ClusterSeed::new(SUB, RG, "vanishing", LOCATION))
        .unwrap();
    env.arm.remove_cluster(&seeded.id).unwrap();
    assert_eq!(
        env.call(
            Method::GET,
            &cluster_id("vanishing"),
            versions::MANAGED_CLUSTERS,
            None
        )
        .await
        .status,
        404
    );
    assert!(env.arm.remove_cluster(&seeded.id).is_err());
    assert!(env.arm.remove_cluster(&vault_id()).is_err());
}

#[tokio::test]
async fn stop_protection_keeps_recovery_points_and_refuses_further_backups() {
    let env = env().await;
    let (vault, cluster, extension) = backup_ready(&env, "aks").await;
    grant_all(&env, "aks", &vault, &cluster, &extension).await;
    env.advance(91);
    let bi_url = format!("{}/backupInstances/aks-bi", vault_id());
    let stop_url = format!("{bi_url}/stopProtection");
    let missing = env
        .call(Method::POST, &stop_url, versions::BACKUP_INSTANCES, None)
        .await;
    assert_eq!(
        (missing.status, missing.code()),
        (404, "ResourceNotFound"),
        "{}",
        missing.raw
    );
    let created = env
        .call(
            Method::PUT,
            &bi_url,
            versions::BACKUP_INSTANCES,
            Some(json!({"properties": backup_instance("aks")})),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.raw);
    let configuring = env
        .call(Method::POST, &stop_url, versions::BACKUP_INSTANCES, None)
        .await;
    assert_eq!(configuring.status, 409, "{}", configuring.raw);
    env.advance(60);
    let trigger = json!({"backupRuleOptions": {"ruleName": "BackupDaily", "triggerOption": {"retentionTagOverride": "Default"}}});
    let backup = env
        .call(
            Method::POST,
            &format!("{bi_url}/backup"),
            versions::BACKUP_INSTANCES,
            Some(trigger.clone()),
        )
        .await;
    assert_eq!(backup.status, 202, "{}", backup.raw);
    env.advance(15 + 240);
    let points_url = format!("{bi_url}/recoveryPoints");
    let points = || env.call(Method::GET, &points_url, versions::BACKUP_INSTANCES, None);
    assert_eq!(points().await.body["value"].as_array().unwrap().len(), 1);

    let stop = env
        .call(Method::POST, &stop_url, versions::BACKUP_INSTANCES, None)
        .await;
    assert_eq!((stop.status, stop.raw.as_str()), (202, ""));
    let status_url = stop.header("Azure-AsyncOperation").unwrap().to_string();
    let result_url = stop.header("Location").unwrap().to_string();
    assert!(
        status_url.contains("/backupVaults/bv-aks/operationStatus/"),
        "{status_url}"
    );
    assert_eq!(env.poll(&result_url).await.status, 202);
    let state = || env.call(Method::GET, &bi_url, versions::BACKUP_INSTANCES, None);
    assert_eq!(
        state().await.body["properties"]["currentProtectionState"],
        "ProtectionConfigured"
    );
    env.advance(30);
    assert_eq!(env.poll(&status_url).await.body["status"], "Succeeded");
    let result = env.poll(&result_url).await;
    assert_eq!(
        (result.status, result.body["objectType"].as_str()),
        (200, Some("OperationJobExtendedInfo"))
    );
    let stopped = state().await;
    assert_eq!(
        stopped.body["properties"]["currentProtectionState"], "ProtectionStopped",
        "{}",
        stopped.raw
    );
    assert_eq!(
        stopped.body["properties"]["protectionStatus"]["status"],
        "ProtectionStopped"
    );
    assert_eq!(
        points().await.body["value"].as_array().unwrap().len(),
        1,
        "recovery points are kept"
    );
    let refused = env
        .call(
            Method::POST,
            &format!("{bi_url}/backup"),
            versions::BACKUP_INSTANCES,
            Some(trigger),
        )
        .await;
    assert_eq!(
        (refused.status, refused.code()),
        (400, "UserErrorBackupInstanceNotProtected")
    );
    // Stopping again is harmless.
    let again = env
        .call(Method::POST, &stop_url, versions::BACKUP_INSTANCES, None)
        .await;
    assert_eq!(again.status, 202);
    env.advance(30);
    assert_eq!(
        state().await.body["properties"]["currentProtectionState"],
        "ProtectionStopped"
    );
}

/// The regional limits with a tiny tenant read bucket, for tenant throttling.
fn tight_tenant_reads() -> RegionalLimits {
    let mut limits = RegionalLimits::default();
    limits.tenant.reads = TokenBucket {
        capacity: 1,
        refill_per_second: 1,
    };
    limits
}

#[tokio::test]
async fn by_default_arm_throttles_each_principal_with_regional_token_buckets() {
    let env = env().await;
    env.put_rg(RG).await;
    let reads = "x-ms-ratelimit-remaining-subscription-reads";
    let global_reads = "x-ms-ratelimit-remaining-subscription-global-reads";
    // The PUT above took a write token; reads have their own 250-token bucket.
    let first = env
        .call(Method::GET, &rg_path(RG), versions::RESOURCES, None)
        .await;
    assert_eq!(first.header(reads), Some("249"));
    assert_eq!(first.header(global_reads), Some("3749"));
    for _ in 1..250 {
        let read = env
            .call(Method::GET, &rg_path(RG), versions::RESOURCES, None)
            .await;
        assert_eq!(read.status, 200, "{}", read.raw);
    }
    // 250 reads in one (virtual) instant empty the bucket: ARM answers 429 in its envelope.
    let refused = env
        .call(Method::GET, &rg_path(RG), versions::RESOURCES, None)
        .await;
    assert_eq!(
        (refused.status, refused.code()),
        (429, "SubscriptionRequestsThrottled")
    );
    assert_eq!(refused.header("Retry-After"), Some("1"));
    assert_eq!(refused.header(reads), Some("0"));
    assert!(
        refused.body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with(&format!(
                "Number of 'read' requests for subscription '{SUB}' exceeded."
            )),
        "{}",
        refused.raw
    );
    // Another service principal has its own bucket, under the global one shared by all.
    let admin = env.arm.token_as("7a1f0d3e-5b2c-4e8f-9a6d-0c1b2a3f4e5d");
    let other = env
        .send(
            Method::GET,
            &format!(
                "{}{}?api-version={}",
                env.base,
                rg_path(RG),
                versions::RESOURCES
            ),
            None,
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(other.status, 200, "{}", other.raw);
    assert_eq!(other.header(reads), Some("249"));
    assert_eq!(other.header(global_reads), Some("3499"));
    // 25 tokens come back each second.
    env.advance(1);
    let again = env
        .call(Method::GET, &rg_path(RG), versions::RESOURCES, None)
        .await;
    assert_eq!(again.status, 200, "{}", again.raw);
    assert_eq!(again.header(reads), Some("24"));
    // Writes (POST included) and deletes: 200 tokens each, 15 times that globally.
    let write = env
        .call(
            Method::POST,
            &format!("/subscriptions/{SUB}/providers/Microsoft.DataProtection/register"),
            versions::RESOURCES,
            None,
        )
        .await;
    // The second that passed refilled the write the resource group's PUT took.
    assert_eq!(
        write.header("x-ms-ratelimit-remaining-subscription-writes"),
        Some("199")
    );
    assert_eq!(
        write.header("x-ms-ratelimit-remaining-subscription-global-writes"),
        Some("2999")
    );
    let delete = env
        .call(Method::DELETE, &rg_path("gone"), versions::RESOURCES, None)
        .await;
    assert_eq!(
        delete.header("x-ms-ratelimit-remaining-subscription-deletes"),
        Some("199")
    );
    assert_eq!(
        delete.header("x-ms-ratelimit-remaining-subscription-global-deletes"),
        Some("2999")
    );
}

#[tokio::test]
async fn tenant_level_requests_draw_from_tenant_buckets() {
    let env = env().await;
    let root = format!(
        "/providers/Microsoft.Management/managementGroups/{}",
        env.arm.tenant_id()
    );
    let group = env.call(Method::GET, &root, "2023-04-01", None).await;
    assert_eq!(group.status, 200, "{}", group.raw);
    assert_eq!(
        group.header("x-ms-ratelimit-remaining-tenant-reads"),
        Some("249")
    );
    assert_eq!(
        group.header("x-ms-ratelimit-remaining-subscription-reads"),
        None
    );
    env.arm.set_throttle(tight_tenant_reads());
    assert_eq!(
        env.call(Method::GET, &root, "2023-04-01", None)
            .await
            .status,
        200
    );
    let refused = env.call(Method::GET, &root, "2023-04-01", None).await;
    assert_eq!(
        (refused.status, refused.code()),
        (429, "TenantRequestsThrottled")
    );
    assert_eq!(refused.header("Retry-After"), Some("1"));
    // Subscription requests are not tenant requests.
    env.put_rg(RG).await;
    env.advance(1);
    assert_eq!(
        env.call(Method::GET, &root, "2023-04-01", None)
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn a_subscription_holds_a_limited_number_of_role_assignments() {
    let env = env().await;
    env.put_rg(RG).await;
    assert_eq!(env.arm.role_assignment_count(SUB), 0);
    env.arm.set_role_assignment_limit(4);
    env.arm
        .seed_foreign_role_assignments(SUB, 2)
        .expect("foreign assignments");
    assert_eq!(env.arm.role_assignment_count(SUB), 2);
    let principal = "3c2b1a09-8f7e-4d6c-9b5a-4e3d2c1b0a9f";
    let name = "5a4b3c2d-1e0f-4a9b-8c7d-6e5f4a3b2c1d";
    let at_rg = env
        .assign_named(
            &rg_path(RG),
            name,
            roles::READER,
            principal,
            Some("ServicePrincipal"),
        )
        .await;
    assert_eq!(at_rg.status, 201, "{}", at_rg.raw);
    let at_sub = env
        .assign(
            &format!("/subscriptions/{SUB}"),
            roles::CONTRIBUTOR,
            principal,
            Some("ServicePrincipal"),
        )
        .await;
    assert_eq!(at_sub.status, 201, "{}", at_sub.raw);
    // Four assignments at any scope in the subscription: the fifth is refused.
    let full = env
        .assign(
            &rg_path(RG),
            roles::CONTRIBUTOR,
            principal,
            Some("ServicePrincipal"),
        )
        .await;
    assert_eq!(
        (full.status, full.code()),
        (400, "RoleAssignmentLimitExceeded"),
        "{}",
        full.raw
    );
    assert_eq!(
        full.body["error"]["message"],
        "No more role assignments can be created."
    );
    // Re-sending an existing assignment is not a new one.
    let again = env
        .assign_named(
            &rg_path(RG),
            name,
            roles::READER,
            principal,
            Some("ServicePrincipal"),
        )
        .await;
    assert_eq!(again.status, 200, "{}", again.raw);
    // Deleting one makes room.
    let delete = env
        .call(
            Method::DELETE,
            &format!(
                "{}/providers/Microsoft.Authorization/roleAssignments/{name}",
                rg_path(RG)
            ),
            versions::ROLE_ASSIGNMENTS,
            None,
        )
        .await;
    assert_eq!(delete.status, 200, "{}", delete.raw);
    let room = env
        .assign(
            &rg_path(RG),
            roles::CONTRIBUTOR,
            principal,
            Some("ServicePrincipal"),
        )
        .await;
    assert_eq!(room.status, 201, "{}", room.raw);
}

#[tokio::test]
async fn locations_must_be_azure_regions_available_for_the_resource_type() {
    let env = env().await;
    env.arm
        .register_provider_now(SUB, "Microsoft.DataProtection")
        .expect("register");
    let group = env
        .call(
            Method::PUT,
            &rg_path(RG),
            versions::RESOURCES,
            Some(json!({"location": "atlantis"})),
        )
        .await;
    assert_eq!(
        (group.status, group.code()),
        (400, "LocationNotAvailableForResourceGroup")
    );
    let message = group.body["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with(
            "The provided location 'atlantis' is not available for resource group. List of available regions is '"
        ) && message.contains(",westeurope,")
            && message.ends_with("'."),
        "{message}"
    );
    // ARM accepts a region's display name.
    let spaced = env
        .call(
            Method::PUT,
            &rg_path(RG),
            versions::RESOURCES,
            Some(json!({"location": "West Europe"})),
        )
        .await;
    assert_eq!(spaced.status, 201, "{}", spaced.raw);
    let account = env
        .call(
            Method::PUT,
            &account_id(),
            versions::STORAGE_ACCOUNTS,
            Some(json!({"sku": {"name": "Standard_LRS"}, "kind": "StorageV2", "location": "atlantis"})),
        )
        .await;
    let vault = env
        .call(
            Method::PUT,
            &vault_id(),
            versions::BACKUP_VAULTS,
            Some(json!({"location": "atlantis", "identity": {"type": "SystemAssigned"},
                "properties": {"storageSettings": [{"datastoreType": "VaultStore", "type": "LocallyRedundant"}]}})),
        )
        .await;
    let cluster = env
        .call(
            Method::PUT,
            &cluster_id("aks-atlantis"),
            versions::MANAGED_CLUSTERS,
            Some(json!({"location": "atlantis", "identity": {"type": "SystemAssigned"},
                "properties": {"dnsPrefix": "aks", "agentPoolProfiles": [
                    {"name": "system", "count": 1, "vmSize": "Standard_D2s_v3", "mode": "System"}]}})),
        )
        .await;
    for (answer, resource_type) in [
        (&account, "Microsoft.Storage/storageAccounts"),
        (&vault, "Microsoft.DataProtection/backupVaults"),
        (&cluster, "Microsoft.ContainerService/managedClusters"),
    ] {
        assert_eq!(
            (answer.status, answer.code()),
            (400, "LocationNotAvailableForResourceType"),
            "{}",
            answer.raw
        );
        let message = answer.body["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with(&format!(
                "The provided location 'atlantis' is not available for resource type '{resource_type}'. List of available regions for the resource type is '"
            )) && message.contains(",westeurope,"),
            "{message}"
        );
    }
    assert!(
        env.arm
            .add_cluster(ClusterSeed::new(SUB, RG, "seeded", "atlantis"))
            .is_err()
    );
}

#[tokio::test]
async fn managed_clusters_list_by_resource_group_and_by_subscription() {
    let env = env().await;
    for (rg, name) in [(RG, "aks-a"), (RG, "aks-b"), ("rg-other", "aks-c")] {
        env.arm
            .add_cluster(ClusterSeed::new(SUB, rg, name, LOCATION))
            .expect("cluster");
    }
    let names = |answer: &Answer| {
        let mut names: Vec<String> = answer.body["value"]
            .as_array()
            .unwrap_or_else(|| panic!("{}", answer.raw))
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect();
        names.sort();
        names
    };
    let in_group = env
        .call(
            Method::GET,
            &format!(
                "{}/providers/Microsoft.ContainerService/managedClusters",
                rg_path(RG)
            ),
            versions::MANAGED_CLUSTERS,
            None,
        )
        .await;
    assert_eq!(in_group.status, 200, "{}", in_group.raw);
    assert_eq!(names(&in_group), ["aks-a", "aks-b"]);
    let first = &in_group.body["value"][0];
    // AKS spells its type `Microsoft.ContainerService/ManagedClusters`, as ManagedClusters_Get.
    assert!(
        first["type"]
            .as_str()
            .unwrap()
            .eq_ignore_ascii_case("Microsoft.ContainerService/managedClusters")
    );
    assert_eq!(
        first["id"],
        cluster_id(first["name"].as_str().unwrap()),
        "{}",
        in_group.raw
    );
    let in_sub = env
        .call(
            Method::GET,
            &format!("/subscriptions/{SUB}/providers/Microsoft.ContainerService/managedClusters"),
            versions::MANAGED_CLUSTERS,
            None,
        )
        .await;
    assert_eq!(in_sub.status, 200, "{}", in_sub.raw);
    assert_eq!(names(&in_sub), ["aks-a", "aks-b", "aks-c"]);
    let missing = env
        .call(
            Method::GET,
            &format!(
                "{}/providers/Microsoft.ContainerService/managedClusters",
                rg_path("nope")
            ),
            versions::MANAGED_CLUSTERS,
            None,
        )
        .await;
    assert_eq!(
        (missing.status, missing.code()),
        (404, "ResourceGroupNotFound")
    );
}

#[tokio::test]
async fn backup_policies_and_instances_list_and_policies_delete() {
    let env = env().await;
    env.arm
        .register_provider_now(SUB, "Microsoft.DataProtection")
        .expect("register");
    env.put_rg(RG).await;
    env.vault().await;
    let policies = format!("{}/backupPolicies", vault_id());
    let instances = format!("{}/backupInstances", vault_id());
    let list = env
        .call(Method::GET, &instances, versions::BACKUP_INSTANCES, None)
        .await;
    assert_eq!((list.status, list.body["value"].clone()), (200, json!([])));
    env.policy().await;
    let list = env
        .call(Method::GET, &policies, versions::BACKUP_POLICIES, None)
        .await;
    assert_eq!(list.status, 200, "{}", list.raw);
    assert_eq!(list.body["value"][0]["id"], policy_id());
    let deleted = env
        .call(
            Method::DELETE,
            &policy_id(),
            versions::BACKUP_POLICIES,
            None,
        )
        .await;
    assert_eq!(deleted.status, 200, "{}", deleted.raw);
    let gone = env
        .call(Method::GET, &policy_id(), versions::BACKUP_POLICIES, None)
        .await;
    assert_eq!((gone.status, gone.code()), (404, "ResourceNotFound"));
    let again = env
        .call(
            Method::DELETE,
            &policy_id(),
            versions::BACKUP_POLICIES,
            None,
        )
        .await;
    assert_eq!(again.status, 204, "{}", again.raw);
    let list = env
        .call(Method::GET, &policies, versions::BACKUP_POLICIES, None)
        .await;
    assert_eq!(list.body["value"], json!([]));
}

/// `BackupVaults_GetInResourceGroup` and `BackupVaults_GetInSubscription` (dataprotection.json
/// 2023-11-01) list the vaults as `BackupVaults_Get` renders them; `az dataprotection
/// backup-vault list` and the Python SDK's `get_in_resource_group` call them. A missing group
/// is ARM's 404 `ResourceGroupNotFound`.
#[tokio::test]
async fn backup_vaults_list_by_resource_group_and_by_subscription() {
    let env = env().await;
    env.arm
        .register_provider_now(SUB, "Microsoft.DataProtection")
        .expect("register");
    env.put_rg(RG).await;
    env.put_rg("rg-other").await;
    let principal = env.vault().await;
    let group_vaults = |rg: &str| {
        format!(
            "{}/providers/Microsoft.DataProtection/backupVaults",
            rg_path(rg)
        )
    };
    let in_group = env
        .call(
            Method::GET,
            &group_vaults(RG),
            versions::BACKUP_VAULTS,
            None,
        )
        .await;
    assert_eq!(in_group.status, 200, "{}", in_group.raw);
    let vaults = in_group.body["value"].as_array().expect("a value array");
    assert_eq!(vaults.len(), 1, "{}", in_group.raw);
    assert_eq!(vaults[0]["id"], vault_id());
    assert_eq!(vaults[0]["type"], "Microsoft.DataProtection/backupVaults");
    assert_eq!(vaults[0]["identity"]["principalId"], principal.as_str());
    assert_eq!(vaults[0]["properties"]["provisioningState"], "Succeeded");
    let other = env
        .call(
            Method::GET,
            &group_vaults("rg-other"),
            versions::BACKUP_VAULTS,
            None,
        )
        .await;
    assert_eq!(
        (other.status, other.body["value"].clone()),
        (200, json!([]))
    );
    let in_sub = env
        .call(
            Method::GET,
            &format!("/subscriptions/{SUB}/providers/Microsoft.DataProtection/backupVaults"),
            versions::BACKUP_VAULTS,
            None,
        )
        .await;
    assert_eq!(in_sub.status, 200, "{}", in_sub.raw);
    assert_eq!(in_sub.body["value"][0]["id"], vault_id());
    let missing = env
        .call(
            Method::GET,
            &group_vaults("nope"),
            versions::BACKUP_VAULTS,
            None,
        )
        .await;
    assert_eq!(
        (missing.status, missing.code()),
        (404, "ResourceGroupNotFound")
    );
    let old_version = env
        .call(Method::GET, &group_vaults(RG), "2021-01-01", None)
        .await;
    assert_eq!(old_version.status, 400, "{}", old_version.raw);
}

#[tokio::test]
async fn invalid_request_content_names_a_clean_json_path() {
    let env = env().await;
    let root = env
        .call(
            Method::PUT,
            &rg_path(RG),
            versions::RESOURCES,
            Some(json!({})),
        )
        .await;
    assert_eq!((root.status, root.code()), (400, "InvalidRequestContent"));
    assert_eq!(
        root.body["error"]["message"],
        "The request content was invalid and could not be deserialized: 'Required property 'location' not found in JSON.'."
    );
    env.arm
        .add_cluster(ClusterSeed::new(SUB, RG, "aks", LOCATION))
        .expect("cluster");
    let nested = env
        .call(
            Method::PUT,
            &format!("{}/trustedAccessRoleBindings/tarb", cluster_id("aks")),
            versions::MANAGED_CLUSTERS,
            Some(json!({"properties": {"sourceResourceId": vault_id()}})),
        )
        .await;
    assert_eq!(
        nested.body["error"]["message"],
        "The request content was invalid and could not be deserialized: 'Required property 'roles' not found in JSON. Path 'properties'.'.",
        "{}",
        nested.raw
    );
    let not_json = env
        .http
        .put(format!(
            "{}{}?api-version={}",
            env.base,
            rg_path(RG),
            versions::RESOURCES
        ))
        .bearer_auth(&env.token)
        .header("Content-Type", "application/json")
        .body("{\"location\": }")
        .send()
        .await
        .expect("request");
    assert_eq!(not_json.status(), 400);
    let body: Value = not_json.json().await.expect("json");
    assert_eq!(
        body["error"]["message"],
        "The request content was invalid and could not be deserialized: 'Expected value. Line 1, position 14.'."
    );
}

/// On a clock 600 times faster than real time, ARM's `Retry-After` is stated in real seconds
/// (rounded up, so a client that takes it literally never polls early) and `retry-after-ms`
/// (read first by the Azure SDKs) carries the exact real delay; at real time the stand-in
/// sends only `Retry-After`, as ARM does.
#[tokio::test]
async fn at_a_time_scale_retry_after_is_in_real_seconds_with_exact_milliseconds() {
    let clock = Arc::new(
        backup_pilot::clock::ScaledClock::new(std::time::SystemTime::now(), 600.0).unwrap(),
    );
    let (base, arm) = ArmStandIn::builder()
        .clock(clock)
        .kube_api_url("http://127.0.0.1:6443")
        .build()
        .spawn()
        .await
        .expect("spawn");
    arm.add_subscription(SUB).expect("subscription");
    let http = crate::common::https();
    let token = arm.arm_token();
    let put = |path: String, version: &str, body: Value| {
        http.put(format!("{base}{path}?api-version={version}"))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    let group = put(
        rg_path(RG),
        versions::RESOURCES,
        json!({"location": LOCATION}),
    )
    .await
    .unwrap();
    assert!(group.status().is_success(), "{}", group.status());
    let create = put(
        account_id(),
        versions::STORAGE_ACCOUNTS,
        json!({"sku": {"name": "Standard_LRS"}, "kind": "StorageV2", "location": LOCATION}),
    )
    .await
    .unwrap();
    assert_eq!(create.status(), 202);
    let header = |name: &str| {
        create
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    // The stand-in's delays are at most 60 virtual seconds: 100 ms of real time at 600x.
    assert_eq!(header("Retry-After").as_deref(), Some("1"));
    let millis: u64 = header("retry-after-ms").unwrap().parse().unwrap();
    assert!((1..=100).contains(&millis), "{millis}");
    arm.shutdown();
}

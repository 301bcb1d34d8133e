//! What onboarding and offboarding do: which clusters, the cost profile, where backup resources
//! go, what is backed up, what the service may change on a cluster, and what offboarding does
//! with backup data. Read from `BACKUP_PILOT_*` variables and/or a JSON file
//! (`BACKUP_PILOT_ONBOARDING_FILE`, camelCase keys, variables win); every problem is listed.

use super::roles::VaultGrantScope;
use std::collections::BTreeMap;

use serde_json::Value;

use crate::kube::hooks::{is_dns_label, is_dns_subdomain};

/// The cost/safety profile (the guide's cost table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// Standard_LRS storage, LocallyRedundant vault, soft delete off, 1-day retention.
    Poc,
    /// Standard_GRS storage, GeoRedundant vault, soft delete on (14 days), 30-day retention.
    Production,
}

impl Profile {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Poc => "poc",
            Self::Production => "production",
        }
    }
    /// Storage account SKU.
    pub fn storage_sku(self) -> &'static str {
        match self {
            Self::Poc => "Standard_LRS",
            Self::Production => "Standard_GRS",
        }
    }
    /// Backup vault storage redundancy.
    pub fn vault_redundancy(self) -> &'static str {
        match self {
            Self::Poc => "LocallyRedundant",
            Self::Production => "GeoRedundant",
        }
    }
    /// Backup vault soft-delete state.
    pub fn soft_delete(self) -> &'static str {
        match self {
            Self::Poc => "Off",
            Self::Production => "On",
        }
    }
    /// Default retention in days.
    pub fn default_retention_days(self) -> u32 {
        match self {
            Self::Poc => 1,
            Self::Production => 30,
        }
    }
}

/// Where backup resources live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// The guide's layout: `rg-{prefix}` (storage account, vault) and `rg-{prefix}-snapshots`
    /// per cluster.
    PerCluster,
    /// One storage account and vault per subscription and region (`rg-{shared}-{region}`) for
    /// fleets; the snapshot resource group stays per cluster.
    SharedPerRegion,
}

/// Which role set is granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleProfileName {
    /// The guide's seven assignments (see [`crate::workflow::roles::GUIDE`]).
    Guide,
    /// The six of `az dataprotection enable-backup` (see [`crate::workflow::roles::AZ_CLI`]).
    AzCli,
}

/// What offboarding does with backup data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffboardData {
    /// Stop protection and keep recovery points until they expire.
    Retain,
    /// Delete the backup instance and its recovery points (soft delete applies).
    Delete,
}

/// A tag condition: the key, and optionally the value (compared case-insensitively).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagMatch {
    /// Tag name.
    pub key: String,
    /// Required value; `None` means any value.
    pub value: Option<String>,
}

impl TagMatch {
    /// True if `tags` (an ARM `tags` object) satisfy the condition.
    pub fn matches(&self, tags: Option<&Value>) -> bool {
        let Some(map) = tags.and_then(Value::as_object) else {
            return false;
        };
        map.iter().any(|(k, v)| {
            k.eq_ignore_ascii_case(&self.key)
                && self.value.as_ref().is_none_or(|want| {
                    v.as_str()
                        .is_some_and(|have| have.eq_ignore_ascii_case(want))
                })
        })
    }
}

impl std::fmt::Display for TagMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.value {
            Some(v) => write!(f, "{}={v}", self.key),
            None => f.write_str(&self.key),
        }
    }
}

/// A `{name, namespace}` reference to a BackupHook custom resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookRef {
    /// Namespace of the BackupHook.
    pub namespace: String,
    /// Name of the BackupHook.
    pub name: String,
}

/// CPU model used to decide whether the extension (about 500m) fits (gotcha 2): per node its
/// vCPUs (a burstable size's baseline) minus AKS's kube-reserved CPU; per cluster the system
/// pods' requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapacityModel {
    /// CPU the backup extension's pods request.
    pub extension_millicores: u32,
    /// CPU the cluster's system pods (CoreDNS, metrics-server, konnectivity, CSI) request.
    pub cluster_system_millicores: u32,
}

/// Everything onboarding and offboarding are configured with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnboardingSettings {
    /// Subscriptions whose clusters are onboarded (lower case); empty means all.
    pub subscriptions: Vec<String>,
    /// Central subscription (lower case) for the backup resource group, storage account,
    /// vault, policy and backup instances; `None`: each cluster's own subscription. The
    /// snapshot resource group stays in the cluster's subscription either way.
    pub backup_subscription: Option<String>,
    /// Management groups the fleet scan covers (empty: the subscriptions).
    pub management_groups: Vec<String>,
    /// How late a daily backup may be before the scan calls it stopped.
    pub backup_slack: std::time::Duration,
    /// If set, only clusters with this tag are onboarded.
    pub opt_in_tag: Option<TagMatch>,
    /// Clusters with this tag are never onboarded.
    pub opt_out_tag: Option<TagMatch>,
    /// Cost profile.
    pub profile: Profile,
    /// Operational-tier retention in days.
    pub retention_days: u32,
    /// Daily backup time (UTC), hour and minute.
    pub backup_time: (u8, u8),
    /// Placement layout.
    pub layout: Layout,
    /// Per-cluster name prefix template (`{cluster}`, `{resourceGroup}`, `{hash}`).
    pub name_prefix: String,
    /// Shared-layout name stem.
    pub shared_name: String,
    /// Blob container: `Some(name)` shared by clusters of a storage account, `None` for one
    /// container per cluster.
    pub container: Option<String>,
    /// Namespaces to back up (empty: all).
    pub included_namespaces: Vec<String>,
    /// Namespaces to skip.
    pub excluded_namespaces: Vec<String>,
    /// BackupHook references.
    pub backup_hooks: Vec<HookRef>,
    /// May the service enable the CSI disk driver and snapshot controller on a cluster?
    pub allow_cluster_update: bool,
    /// May the service scale a node pool for the extension's CPU?
    pub allow_node_pool_scale: bool,
    /// CPU model for the headroom check.
    pub capacity: CapacityModel,
    /// Role set.
    pub role_profile: RoleProfileName,
    /// Where the vault's grants on clusters go (`BACKUP_PILOT_VAULT_GRANT_SCOPE`).
    pub vault_grant_scope: VaultGrantScope,
    /// Role assignments a subscription may hold (`BACKUP_PILOT_ROLE_ASSIGNMENT_LIMIT`).
    pub role_assignment_limit: usize,
    /// Take an ad-hoc backup after protection is configured and wait for its recovery point.
    pub first_backup: bool,
    /// What offboarding does with data.
    pub offboard_data: OffboardData,
}

impl Default for OnboardingSettings {
    /// The documented defaults (a unit test checks they validate).
    fn default() -> Self {
        parse(&|_: &str| None, &mut Vec::new())
    }
}

/// The guide's container name.
pub const DEFAULT_CONTAINER: &str = "aks-backups";

/// Every setting: environment variable, JSON key, default, meaning (the README table).
pub const VARIABLES: &[(&str, &str, &str, &str)] = &[
    (
        "BACKUP_PILOT_ONBOARDING_FILE",
        "-",
        "(none)",
        "JSON file with any of the keys below (camelCase); variables override it",
    ),
    (
        "BACKUP_PILOT_SUBSCRIPTIONS",
        "subscriptions",
        "(all)",
        "comma-separated subscription ids whose clusters are onboarded",
    ),
    (
        "BACKUP_PILOT_BACKUP_SUBSCRIPTION",
        "backupSubscription",
        "(the cluster's)",
        "subscription id for the backup resource group, storage account, vault, policy and backup instances (same tenant and region as the clusters); snapshot resource groups stay in each cluster's subscription",
    ),
    (
        "BACKUP_PILOT_MANAGEMENT_GROUPS",
        "managementGroups",
        "(none)",
        "comma-separated management group names the fleet scan covers (else the subscriptions above, else every readable subscription)",
    ),
    (
        "BACKUP_PILOT_BACKUP_SLACK_HOURS",
        "backupSlackHours",
        "6",
        "how late past the policy's daily backup the scan still calls backups healthy",
    ),
    (
        "BACKUP_PILOT_OPT_IN_TAG",
        "optInTag",
        "(none)",
        "`key` or `key=value`: only clusters with this tag are onboarded",
    ),
    (
        "BACKUP_PILOT_OPT_OUT_TAG",
        "optOutTag",
        "backup-pilot=off",
        "`key` or `key=value`: clusters with this tag are skipped; `none` disables",
    ),
    (
        "BACKUP_PILOT_PROFILE",
        "profile",
        "production",
        "`poc` (LRS, soft delete off, 1 day) or `production` (GRS, soft delete on, 30 days)",
    ),
    (
        "BACKUP_PILOT_RETENTION_DAYS",
        "retentionDays",
        "1 (poc) / 30 (production)",
        "operational-tier retention, 1-360 days",
    ),
    (
        "BACKUP_PILOT_BACKUP_TIME",
        "backupTime",
        "00:00",
        "daily backup time, HH:MM UTC",
    ),
    (
        "BACKUP_PILOT_PLACEMENT",
        "placement",
        "per-cluster",
        "`per-cluster` (rg-{prefix}, rg-{prefix}-snapshots) or `shared` (one vault and storage account per region)",
    ),
    (
        "BACKUP_PILOT_NAME_PREFIX",
        "namePrefix",
        "{cluster}",
        "per-cluster prefix template; placeholders {cluster}, {resourceGroup}, {hash}",
    ),
    (
        "BACKUP_PILOT_SHARED_NAME",
        "sharedName",
        "aksbackup",
        "shared layout: resource group rg-{sharedName}-{region}, vault bv-{sharedName}-{region}",
    ),
    (
        "BACKUP_PILOT_CONTAINER",
        "container",
        "aks-backups (per-cluster) / per-cluster (shared)",
        "blob container name, or `per-cluster` for one container per cluster",
    ),
    (
        "BACKUP_PILOT_INCLUDED_NAMESPACES",
        "includedNamespaces",
        "(all)",
        "comma-separated namespaces to back up",
    ),
    (
        "BACKUP_PILOT_EXCLUDED_NAMESPACES",
        "excludedNamespaces",
        "(none)",
        "comma-separated namespaces to skip",
    ),
    (
        "BACKUP_PILOT_BACKUP_HOOKS",
        "backupHooks",
        "(none)",
        "comma-separated `namespace/name` references to BackupHooks deployed by others (hooks the service applies itself come from BACKUP_PILOT_HOOKS / BACKUP_PILOT_HOOKS_FILE and are referenced automatically)",
    ),
    (
        "BACKUP_PILOT_ALLOW_CLUSTER_UPDATE",
        "allowClusterUpdate",
        "false",
        "may enable the CSI disk driver and snapshot controller on a cluster",
    ),
    (
        "BACKUP_PILOT_ALLOW_NODE_POOL_SCALE",
        "allowNodePoolScale",
        "false",
        "may scale a node pool to make room for the extension (~500m CPU)",
    ),
    (
        "BACKUP_PILOT_EXTENSION_CPU_MILLICORES",
        "extensionCpuMillicores",
        "500",
        "CPU the extension needs free",
    ),
    (
        "BACKUP_PILOT_CLUSTER_SYSTEM_MILLICORES",
        "clusterSystemMillicores",
        "400",
        "CPU the cluster's system pods request, taken once from the pools' total",
    ),
    (
        "BACKUP_PILOT_ROLE_PROFILE",
        "roleProfile",
        "guide",
        "`guide` (7 assignments) or `az-cli` (the 6 of az dataprotection enable-backup)",
    ),
    (
        "BACKUP_PILOT_VAULT_GRANT_SCOPE",
        "vaultGrantScope",
        "cluster",
        "where the vault's Reader and Contributor go: `cluster` (the guide: on each cluster and snapshot resource group), `resource-group` or `subscription` (once for every cluster there; needs BACKUP_PILOT_PLACEMENT=shared)",
    ),
    (
        "BACKUP_PILOT_ROLE_ASSIGNMENT_LIMIT",
        "roleAssignmentLimit",
        "4000",
        "role assignments a subscription may hold (Azure's limit; anyone's count): onboarding and `plan` refuse a cluster whose assignments would pass it",
    ),
    (
        "BACKUP_PILOT_FIRST_BACKUP",
        "firstBackup",
        "false",
        "take an ad-hoc backup once protected and wait for its recovery point",
    ),
    (
        "BACKUP_PILOT_OFFBOARD_DATA",
        "offboardData",
        "retain",
        "on cluster delete: `retain` (stop protection, keep data) or `delete` (delete the backup instance)",
    ),
];

/// The file variable.
pub const FILE_VAR: &str = "BACKUP_PILOT_ONBOARDING_FILE";

/// Most namespaces one backup instance may list (service limit).
pub const MAX_NAMESPACES: usize = 800;

impl OnboardingSettings {
    /// Reads the settings from the process environment (and the file it names).
    ///
    /// # Errors
    /// Every problem, one per entry.
    pub fn from_env() -> Result<Self, Vec<String>> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads the settings through `get` (environment or a map). If `get` names a file in
    /// [`FILE_VAR`], its JSON keys fill in what the variables leave unset.
    ///
    /// # Errors
    /// Every problem, one per entry.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        let file = match get(FILE_VAR).filter(|p| !p.trim().is_empty()) {
            None => BTreeMap::new(),
            Some(path) => match std::fs::read_to_string(path.trim()) {
                Ok(text) => read_file_values(&path, &text, &mut problems),
                Err(e) => {
                    problems.push(format!("{FILE_VAR}: cannot read {path}: {e}"));
                    BTreeMap::new()
                }
            },
        };
        let lookup = |env: &str| -> Option<String> {
            get(env)
                .filter(|v| !v.trim().is_empty())
                .or_else(|| file.get(env).cloned())
                .map(|v| v.trim().to_string())
        };
        let settings = parse(&lookup, &mut problems);
        if problems.is_empty() {
            Ok(settings)
        } else {
            Err(problems)
        }
    }

    /// True if onboarding covers clusters in `subscription`.
    pub fn covers_subscription(&self, subscription: &str) -> bool {
        self.subscriptions.is_empty()
            || self
                .subscriptions
                .iter()
                .any(|s| s.eq_ignore_ascii_case(subscription))
    }

    /// Whether a cluster's `tags` (an ARM `tags` object) keep it out of onboarding (events,
    /// scans and repairs apply the same rule).
    pub fn tag_exclusion(&self, tags: Option<&Value>) -> Option<TagExclusion> {
        if let Some(out) = self.opt_out_tag.as_ref().filter(|t| t.matches(tags)) {
            return Some(TagExclusion::OptedOut(out.clone()));
        }
        self.opt_in_tag
            .as_ref()
            .filter(|t| !t.matches(tags))
            .map(|opt_in| TagExclusion::NotOptedIn(opt_in.clone()))
    }
}

/// Why tags keep a cluster out of onboarding; displays as `carries the opt-out tag …` or
/// `lacks the opt-in tag …`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagExclusion {
    /// It carries the opt-out tag.
    OptedOut(TagMatch),
    /// It lacks the opt-in tag.
    NotOptedIn(TagMatch),
}

impl std::fmt::Display for TagExclusion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::OptedOut(t) => write!(f, "carries the opt-out tag {t}"),
            Self::NotOptedIn(t) => write!(f, "lacks the opt-in tag {t}"),
        }
    }
}

/// Flattens the JSON file into variable names, with a problem for every unknown key or
/// unusable value.
fn read_file_values(
    path: &str,
    text: &str,
    problems: &mut Vec<String>,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            problems.push(format!("{FILE_VAR}: {path} is not valid JSON: {e}"));
            return out;
        }
    };
    let Value::Object(map) = value else {
        problems.push(format!("{FILE_VAR}: {path} must hold a JSON object"));
        return out;
    };
    for (key, v) in map {
        let Some((env, _, _, _)) = VARIABLES.iter().find(|(_, json, _, _)| *json == key) else {
            let known: Vec<&str> = VARIABLES.iter().skip(1).map(|(_, j, _, _)| *j).collect();
            problems.push(format!(
                "{FILE_VAR}: unknown key `{key}` in {path}; known keys: {}",
                known.join(", ")
            ));
            continue;
        };
        let text = match v {
            Value::String(s) => s,
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => n.to_string(),
            Value::Array(items) => {
                let mut parts = Vec::new();
                for item in items {
                    match item {
                        Value::String(s) => parts.push(s),
                        other => problems.push(format!(
                            "{FILE_VAR}: `{key}` must be a list of strings, found {other}"
                        )),
                    }
                }
                parts.join(",")
            }
            Value::Null => continue,
            Value::Object(_) => {
                problems.push(format!(
                    "{FILE_VAR}: `{key}` must be a string, number, boolean or list"
                ));
                continue;
            }
        };
        out.insert((*env).to_string(), text);
    }
    out
}

fn parse(get: &impl Fn(&str) -> Option<String>, problems: &mut Vec<String>) -> OnboardingSettings {
    let subscriptions = list(get, "BACKUP_PILOT_SUBSCRIPTIONS")
        .into_iter()
        .filter_map(|s| subscription_id(&s, "BACKUP_PILOT_SUBSCRIPTIONS", problems))
        .collect();
    let backup_subscription = get("BACKUP_PILOT_BACKUP_SUBSCRIPTION")
        .and_then(|s| subscription_id(&s, "BACKUP_PILOT_BACKUP_SUBSCRIPTION", problems));
    let management_groups = list(get, "BACKUP_PILOT_MANAGEMENT_GROUPS");
    let backup_slack = match get("BACKUP_PILOT_BACKUP_SLACK_HOURS") {
        None => std::time::Duration::from_secs(6 * 3600),
        Some(raw) => match raw.parse::<u64>() {
            Ok(h) if h <= 24 * 30 => std::time::Duration::from_secs(h * 3600),
            _ => {
                problems.push(format!(
                    "BACKUP_PILOT_BACKUP_SLACK_HOURS must be a whole number of hours from 0 to 720, got `{raw}`"
                ));
                std::time::Duration::from_secs(6 * 3600)
            }
        },
    };
    let opt_in_tag = get("BACKUP_PILOT_OPT_IN_TAG")
        .and_then(|raw| tag(&raw, "BACKUP_PILOT_OPT_IN_TAG", problems));
    let opt_out_tag = match get("BACKUP_PILOT_OPT_OUT_TAG") {
        Some(raw) if raw.eq_ignore_ascii_case("none") => None,
        Some(raw) => tag(&raw, "BACKUP_PILOT_OPT_OUT_TAG", problems),
        None => Some(TagMatch {
            key: "backup-pilot".into(),
            value: Some("off".into()),
        }),
    };
    if let (Some(a), Some(b)) = (&opt_in_tag, &opt_out_tag)
        && a == b
    {
        problems.push(format!(
                "BACKUP_PILOT_OPT_IN_TAG and BACKUP_PILOT_OPT_OUT_TAG are both `{a}`; no cluster could ever be onboarded"
            ));
    }
    let profile = match get("BACKUP_PILOT_PROFILE").as_deref() {
        None => Profile::Production,
        Some(p) if p.eq_ignore_ascii_case("poc") => Profile::Poc,
        Some(p) if p.eq_ignore_ascii_case("production") => Profile::Production,
        Some(other) => {
            problems.push(format!(
                "BACKUP_PILOT_PROFILE must be `poc` or `production`, got `{other}`"
            ));
            Profile::Production
        }
    };
    let retention_days = match get("BACKUP_PILOT_RETENTION_DAYS") {
        None => profile.default_retention_days(),
        Some(raw) => match raw.parse::<u32>() {
            Ok(d) if (1..=360).contains(&d) => d,
            _ => {
                problems.push(format!(
                    "BACKUP_PILOT_RETENTION_DAYS must be a whole number of days from 1 to 360 (the operational tier's limit), got `{raw}`"
                ));
                profile.default_retention_days()
            }
        },
    };
    let backup_time = match get("BACKUP_PILOT_BACKUP_TIME") {
        None => (0, 0),
        Some(raw) => parse_time(&raw).unwrap_or_else(|| {
            problems.push(format!(
                "BACKUP_PILOT_BACKUP_TIME must be HH:MM (UTC, 24-hour), got `{raw}`"
            ));
            (0, 0)
        }),
    };
    let layout = match get("BACKUP_PILOT_PLACEMENT").as_deref() {
        None => Layout::PerCluster,
        Some(p) if p.eq_ignore_ascii_case("per-cluster") => Layout::PerCluster,
        Some(p) if p.eq_ignore_ascii_case("shared") => Layout::SharedPerRegion,
        Some(other) => {
            problems.push(format!(
                "BACKUP_PILOT_PLACEMENT must be `per-cluster` or `shared`, got `{other}`"
            ));
            Layout::PerCluster
        }
    };
    let name_prefix = get("BACKUP_PILOT_NAME_PREFIX").unwrap_or_else(|| "{cluster}".into());
    check_template(&name_prefix, problems);
    let shared_name = get("BACKUP_PILOT_SHARED_NAME").unwrap_or_else(|| "aksbackup".into());
    if shared_name.is_empty()
        || shared_name.len() > 30
        || !shared_name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
        || !shared_name.starts_with(|c: char| c.is_ascii_alphabetic())
    {
        problems.push(format!(
            "BACKUP_PILOT_SHARED_NAME must be 1-30 letters, digits or hyphens starting with a letter, got `{shared_name}`"
        ));
    }
    let container = match get("BACKUP_PILOT_CONTAINER") {
        None => match layout {
            Layout::PerCluster => Some(DEFAULT_CONTAINER.to_string()),
            Layout::SharedPerRegion => None,
        },
        Some(raw) if raw.eq_ignore_ascii_case("per-cluster") => None,
        Some(raw) => {
            if !is_container_name(&raw) {
                problems.push(format!(
                    "BACKUP_PILOT_CONTAINER must be `per-cluster` or a blob container name (3-63 lower-case letters, digits and single hyphens, starting with a letter or digit), got `{raw}`"
                ));
            }
            Some(raw)
        }
    };
    let included_namespaces = namespaces(get, "BACKUP_PILOT_INCLUDED_NAMESPACES", problems);
    let excluded_namespaces = namespaces(get, "BACKUP_PILOT_EXCLUDED_NAMESPACES", problems);
    let both: Vec<&String> = included_namespaces
        .iter()
        .filter(|n| excluded_namespaces.contains(n))
        .collect();
    if !both.is_empty() {
        problems.push(format!(
            "namespaces both included and excluded: {}",
            both.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let backup_hooks = list(get, "BACKUP_PILOT_BACKUP_HOOKS")
        .into_iter()
        .filter_map(|item| match item.split_once('/') {
            Some((ns, name)) if is_dns_label(ns) && is_dns_subdomain(name) => Some(HookRef {
                namespace: ns.to_string(),
                name: name.to_string(),
            }),
            _ => {
                problems.push(format!(
                    "BACKUP_PILOT_BACKUP_HOOKS: `{item}` is not `namespace/name` of a BackupHook"
                ));
                None
            }
        })
        .collect();
    let allow_cluster_update = flag(get, "BACKUP_PILOT_ALLOW_CLUSTER_UPDATE", false, problems);
    let allow_node_pool_scale = flag(get, "BACKUP_PILOT_ALLOW_NODE_POOL_SCALE", false, problems);
    let capacity = CapacityModel {
        extension_millicores: millicores(
            get,
            "BACKUP_PILOT_EXTENSION_CPU_MILLICORES",
            500,
            problems,
        ),
        cluster_system_millicores: millicores(
            get,
            "BACKUP_PILOT_CLUSTER_SYSTEM_MILLICORES",
            400,
            problems,
        ),
    };
    let role_profile = match get("BACKUP_PILOT_ROLE_PROFILE").as_deref() {
        None => RoleProfileName::Guide,
        Some(p) if p.eq_ignore_ascii_case("guide") => RoleProfileName::Guide,
        Some(p) if p.eq_ignore_ascii_case("az-cli") => RoleProfileName::AzCli,
        Some(other) => {
            problems.push(format!(
                "BACKUP_PILOT_ROLE_PROFILE must be `guide` or `az-cli`, got `{other}`"
            ));
            RoleProfileName::Guide
        }
    };
    let vault_grant_scope = match get("BACKUP_PILOT_VAULT_GRANT_SCOPE") {
        None => VaultGrantScope::Cluster,
        Some(raw) => VaultGrantScope::parse(&raw).unwrap_or_else(|| {
            problems.push(format!(
                "BACKUP_PILOT_VAULT_GRANT_SCOPE must be `cluster`, `resource-group` or `subscription`, got `{raw}`"
            ));
            VaultGrantScope::Cluster
        }),
    };
    if vault_grant_scope != VaultGrantScope::Cluster && layout != Layout::SharedPerRegion {
        problems.push(
            "BACKUP_PILOT_VAULT_GRANT_SCOPE wider than `cluster` needs BACKUP_PILOT_PLACEMENT=shared: with a vault per cluster every vault would get Reader and Contributor on the whole resource group or subscription".into(),
        );
    }
    let role_assignment_limit = match get("BACKUP_PILOT_ROLE_ASSIGNMENT_LIMIT") {
        None => super::role_budget::DEFAULT_ROLE_ASSIGNMENT_LIMIT,
        Some(raw) => match raw.trim().parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => {
                problems.push(format!(
                    "BACKUP_PILOT_ROLE_ASSIGNMENT_LIMIT must be a number of role assignments above 0, got `{raw}`"
                ));
                super::role_budget::DEFAULT_ROLE_ASSIGNMENT_LIMIT
            }
        },
    };
    let first_backup = flag(get, "BACKUP_PILOT_FIRST_BACKUP", false, problems);
    let offboard_data = match get("BACKUP_PILOT_OFFBOARD_DATA").as_deref() {
        None => OffboardData::Retain,
        Some(p) if p.eq_ignore_ascii_case("retain") => OffboardData::Retain,
        Some(p) if p.eq_ignore_ascii_case("delete") => OffboardData::Delete,
        Some(other) => {
            problems.push(format!(
                "BACKUP_PILOT_OFFBOARD_DATA must be `retain` or `delete`, got `{other}`"
            ));
            OffboardData::Retain
        }
    };
    OnboardingSettings {
        subscriptions,
        backup_subscription,
        management_groups,
        backup_slack,
        opt_in_tag,
        opt_out_tag,
        profile,
        retention_days,
        backup_time,
        layout,
        name_prefix,
        shared_name,
        container,
        included_namespaces,
        excluded_namespaces,
        backup_hooks,
        allow_cluster_update,
        allow_node_pool_scale,
        capacity,
        role_profile,
        vault_grant_scope,
        role_assignment_limit,
        first_backup,
        offboard_data,
    }
}

/// A subscription id (a GUID), lower case; a problem otherwise.
fn subscription_id(raw: &str, key: &str, problems: &mut Vec<String>) -> Option<String> {
    if let Ok(id) = uuid::Uuid::parse_str(raw) {
        Some(id.hyphenated().to_string())
    } else {
        problems.push(format!("{key}: `{raw}` is not a subscription id (a GUID)"));
        None
    }
}

fn list(get: &impl Fn(&str) -> Option<String>, key: &str) -> Vec<String> {
    get(key)
        .map(|raw| {
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn tag(raw: &str, key: &str, problems: &mut Vec<String>) -> Option<TagMatch> {
    let (k, v) = match raw.split_once('=') {
        Some((k, v)) => (k.trim(), Some(v.trim().to_string())),
        None => (raw.trim(), None),
    };
    if k.is_empty() || k.len() > 512 || k.contains(['<', '>', '%', '&', '\\', '?', '/']) {
        problems.push(format!(
            "{key} must be `key` or `key=value` with a valid Azure tag name, got `{raw}`"
        ));
        return None;
    }
    Some(TagMatch {
        key: k.to_string(),
        value: v.filter(|v| !v.is_empty()),
    })
}

fn flag(
    get: &impl Fn(&str) -> Option<String>,
    key: &str,
    default: bool,
    problems: &mut Vec<String>,
) -> bool {
    match get(key).map(|v| v.to_ascii_lowercase()).as_deref() {
        None => default,
        Some("true" | "1" | "yes") => true,
        Some("false" | "0" | "no") => false,
        Some(other) => {
            problems.push(format!("{key} must be true or false, got `{other}`"));
            default
        }
    }
}

fn millicores(
    get: &impl Fn(&str) -> Option<String>,
    key: &str,
    default: u32,
    problems: &mut Vec<String>,
) -> u32 {
    match get(key) {
        None => default,
        Some(raw) => match raw.parse::<u32>() {
            Ok(m) if m <= 64_000 => m,
            _ => {
                problems.push(format!(
                    "{key} must be a whole number of millicores up to 64000, got `{raw}`"
                ));
                default
            }
        },
    }
}

fn parse_time(raw: &str) -> Option<(u8, u8)> {
    let (h, m) = raw.split_once(':')?;
    let (h, m) = (h.parse::<u8>().ok()?, m.parse::<u8>().ok()?);
    (h < 24 && m < 60 && raw.len() == 5).then_some((h, m))
}

fn namespaces(
    get: &impl Fn(&str) -> Option<String>,
    key: &str,
    problems: &mut Vec<String>,
) -> Vec<String> {
    let items = list(get, key);
    let bad: Vec<&String> = items.iter().filter(|n| !is_dns_label(n)).collect();
    if !bad.is_empty() {
        problems.push(format!(
            "{key}: not Kubernetes namespace names (lower-case letters, digits, hyphens, 1-63): {}",
            bad.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if items.len() > MAX_NAMESPACES {
        problems.push(format!(
            "{key} lists {} namespaces; a backup instance takes at most {MAX_NAMESPACES}",
            items.len()
        ));
    }
    items
}

fn check_template(template: &str, problems: &mut Vec<String>) {
    let mut rest = template;
    let mut literal = String::new();
    while let Some(open) = rest.find('{') {
        literal.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('}') else {
            problems.push(format!(
                "BACKUP_PILOT_NAME_PREFIX has an unclosed `{{` in `{template}`"
            ));
            return;
        };
        let name = &rest[open + 1..open + close];
        if !matches!(name, "cluster" | "resourceGroup" | "hash") {
            problems.push(format!(
                "BACKUP_PILOT_NAME_PREFIX: unknown placeholder {{{name}}}; use {{cluster}}, {{resourceGroup}} or {{hash}}"
            ));
        }
        rest = &rest[open + close + 1..];
    }
    literal.push_str(rest);
    if template.is_empty()
        || !literal
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        problems.push(format!(
            "BACKUP_PILOT_NAME_PREFIX must be placeholders plus letters, digits and hyphens, got `{template}`"
        ));
    }
}

/// A blob container name: 3-63 lower-case letters, digits and single hyphens.
pub fn is_container_name(s: &str) -> bool {
    (3..=63).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
        && !s.contains("--")
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
    fn defaults_are_valid_and_safe() {
        let s = OnboardingSettings::from_lookup(lookup(&[])).unwrap();
        assert_eq!(s.profile, Profile::Production);
        assert_eq!(s.retention_days, 30);
        assert_eq!(s.layout, Layout::PerCluster);
        assert_eq!(s.container.as_deref(), Some("aks-backups"));
        assert!(!s.allow_cluster_update && !s.allow_node_pool_scale);
        assert_eq!(s.offboard_data, OffboardData::Retain);
        assert_eq!(s, OnboardingSettings::default());
        assert_eq!(
            s.opt_out_tag.as_ref().unwrap().to_string(),
            "backup-pilot=off"
        );
    }

    #[test]
    fn poc_profile_follows_the_cost_table() {
        let s =
            OnboardingSettings::from_lookup(lookup(&[("BACKUP_PILOT_PROFILE", "poc")])).unwrap();
        assert_eq!(
            (
                s.profile.storage_sku(),
                s.profile.vault_redundancy(),
                s.profile.soft_delete(),
                s.retention_days
            ),
            ("Standard_LRS", "LocallyRedundant", "Off", 1)
        );
        let p = Profile::Production;
        assert_eq!(
            (p.storage_sku(), p.vault_redundancy(), p.soft_delete()),
            ("Standard_GRS", "GeoRedundant", "On")
        );
    }

    #[test]
    fn every_problem_is_listed_at_once() {
        let problems = OnboardingSettings::from_lookup(lookup(&[
            ("BACKUP_PILOT_SUBSCRIPTIONS", "not-a-guid"),
            ("BACKUP_PILOT_PROFILE", "cheap"),
            ("BACKUP_PILOT_RETENTION_DAYS", "0"),
            ("BACKUP_PILOT_BACKUP_TIME", "25:00"),
            ("BACKUP_PILOT_PLACEMENT", "everywhere"),
            ("BACKUP_PILOT_NAME_PREFIX", "{owner}"),
            ("BACKUP_PILOT_INCLUDED_NAMESPACES", "App,shop"),
            ("BACKUP_PILOT_EXCLUDED_NAMESPACES", "shop"),
            ("BACKUP_PILOT_BACKUP_HOOKS", "nohook"),
            ("BACKUP_PILOT_ALLOW_CLUSTER_UPDATE", "maybe"),
            ("BACKUP_PILOT_ROLE_PROFILE", "owner"),
            ("BACKUP_PILOT_OFFBOARD_DATA", "shred"),
            ("BACKUP_PILOT_CONTAINER", "Bad_Name"),
            ("BACKUP_PILOT_EXTENSION_CPU_MILLICORES", "lots"),
        ]))
        .unwrap_err();
        assert_eq!(problems.len(), 14, "{problems:#?}");
        for needle in [
            "SUBSCRIPTIONS",
            "PROFILE",
            "RETENTION",
            "BACKUP_TIME",
            "PLACEMENT",
            "{owner}",
            "App",
            "both included and excluded",
            "nohook",
            "ALLOW_CLUSTER_UPDATE",
            "ROLE_PROFILE",
            "OFFBOARD_DATA",
            "CONTAINER",
            "EXTENSION_CPU",
        ] {
            assert!(
                problems.iter().any(|p| p.contains(needle)),
                "{needle}: {problems:#?}"
            );
        }
    }

    #[test]
    fn a_json_file_fills_in_and_variables_win() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("onboarding.json");
        std::fs::write(
            &path,
            r#"{"profile": "poc", "includedNamespaces": ["app", "db"], "backupHooks": ["app/pre"], "firstBackup": true, "placement": "shared"}"#,
        )
        .unwrap();
        let p = path.to_str().unwrap();
        let s = OnboardingSettings::from_lookup(lookup(&[
            (FILE_VAR, p),
            ("BACKUP_PILOT_PROFILE", "production"),
        ]))
        .unwrap();
        assert_eq!(s.profile, Profile::Production);
        assert_eq!(s.included_namespaces, ["app", "db"]);
        assert_eq!(
            s.backup_hooks,
            [HookRef {
                namespace: "app".into(),
                name: "pre".into()
            }]
        );
        assert!(s.first_backup);
        assert_eq!(
            (s.layout, s.container.clone()),
            (Layout::SharedPerRegion, None)
        );

        std::fs::write(&path, r#"{"profil": "poc", "includedNamespaces": [1]}"#).unwrap();
        let problems = OnboardingSettings::from_lookup(lookup(&[(FILE_VAR, p)])).unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:#?}");
        assert!(
            problems.iter().any(|p| p.contains("unknown key `profil`")),
            "{problems:#?}"
        );
    }

    #[test]
    fn tags_match_case_insensitively() {
        let t = TagMatch {
            key: "Backup".into(),
            value: Some("ON".into()),
        };
        assert!(t.matches(Some(&serde_json::json!({"backup": "on"}))));
        assert!(!t.matches(Some(&serde_json::json!({"backup": "off"}))));
        assert!(!t.matches(None));
        let any = TagMatch {
            key: "backup".into(),
            value: None,
        };
        assert!(any.matches(Some(&serde_json::json!({"BACKUP": ""}))));
    }

    #[test]
    fn the_backup_subscription_is_a_guid_and_defaults_to_none() {
        assert_eq!(OnboardingSettings::default().backup_subscription, None);
        let s = OnboardingSettings::from_lookup(lookup(&[(
            "BACKUP_PILOT_BACKUP_SUBSCRIPTION",
            "6F1B4E6A-2D9C-4B7E-9A51-3C0F8E2D7A10",
        )]))
        .unwrap();
        assert_eq!(
            s.backup_subscription.as_deref(),
            Some("6f1b4e6a-2d9c-4b7e-9a51-3c0f8e2d7a10")
        );
        let problems = OnboardingSettings::from_lookup(lookup(&[(
            "BACKUP_PILOT_BACKUP_SUBSCRIPTION",
            "central",
        )]))
        .unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert!(
            problems[0].contains("BACKUP_PILOT_BACKUP_SUBSCRIPTION"),
            "{problems:#?}"
        );

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("onboarding.json");
        std::fs::write(
            &path,
            r#"{"backupSubscription": "0c5a3f7e-8b21-4d6a-b0f4-91e2d7c6a3b5"}"#,
        )
        .unwrap();
        let s =
            OnboardingSettings::from_lookup(lookup(&[(FILE_VAR, path.to_str().unwrap())])).unwrap();
        assert_eq!(
            s.backup_subscription.as_deref(),
            Some("0c5a3f7e-8b21-4d6a-b0f4-91e2d7c6a3b5")
        );
    }
}

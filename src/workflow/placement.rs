//! Where a cluster's backup resources live, and what they are called. Every name is derived
//! deterministically from the settings, the cluster id and its region, so two runs (or two
//! concurrent workflows) for one cluster always converge on the same resources, and two
//! clusters never share a snapshot resource group or a per-cluster container.
//!
//! With `BACKUP_PILOT_BACKUP_SUBSCRIPTION` the backup resource group, storage account,
//! container, vault, policy and backup instance live in that central subscription, while the
//! snapshot resource group stays in the cluster's: AKS takes disk snapshots in the cluster's
//! subscription. Region still binds everything: "The Backup vault and AKS cluster must be in
//! the same region" and "The AKS cluster and the storage locations must be in the same region"
//! (learn.microsoft.com/azure/backup/azure-kubernetes-service-cluster-backup, "Before you
//! start"); the extension's storage settings carry the account's own subscription
//! (`configuration.backupStorageLocation.config.subscriptionId`, which Azure Policy's
//! `Kubernetes_InstallAzureBackupExtensionWithTag_DINE` fills from a storage account it deploys
//! into by a nested deployment in that account's subscription).

use sha2::{Digest, Sha256};

use super::settings::{Layout, OnboardingSettings};
use crate::resource_id::ResourceId;

/// The backup extension's conventional name.
pub const EXTENSION_NAME: &str = "azure-aks-backup";
/// The namespace the extension installs into.
pub const EXTENSION_NAMESPACE: &str = "dataprotection-microsoft";
/// Tag put on every resource the service creates.
pub const MANAGED_BY_TAG: (&str, &str) = ("managed-by", "backup-pilot");

/// The deterministic backup layout of one cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// Subscription of the cluster (and of its snapshot resource group).
    pub subscription: String,
    /// Subscription of the backup resource group, storage account, vault, policy and backup
    /// instance: the setting's, else the cluster's.
    pub backup_subscription: String,
    /// Region of the cluster (vault and storage account must match it).
    pub location: String,
    /// Resource group for the storage account and the vault.
    pub backup_resource_group: String,
    /// Resource group for disk snapshots (always per cluster).
    pub snapshot_resource_group: String,
    /// Storage account name (3-24 lower-case letters and digits).
    pub storage_account: String,
    /// Blob container name.
    pub container: String,
    /// Backup vault name.
    pub vault: String,
    /// Backup policy name.
    pub policy: String,
    /// Backup instance name.
    pub backup_instance: String,
}

impl Placement {
    /// The layout for `cluster` in `location` under `settings`.
    pub fn for_cluster(
        settings: &OnboardingSettings,
        cluster: &ResourceId,
        location: &str,
    ) -> Self {
        let cluster_name = cluster.name().unwrap_or("cluster");
        let subscription = cluster.subscription().to_string();
        let backup_subscription = settings
            .backup_subscription
            .clone()
            .unwrap_or_else(|| subscription.clone());
        let location = location.to_ascii_lowercase().replace(' ', "");
        let prefix = cluster_prefix(settings, cluster);
        let per_cluster_stem = (format!("rg-{prefix}"), format!("bv-{prefix}"));
        let (backup_resource_group, vault, account_stem) = match settings.layout {
            Layout::PerCluster => (
                per_cluster_stem.0,
                per_cluster_stem.1,
                account_stem(&subscription, &backup_subscription, &prefix),
            ),
            Layout::SharedPerRegion => (
                format!("rg-{}-{location}", settings.shared_name),
                format!("bv-{}-{location}", settings.shared_name),
                // One account per region where the shared vault lives.
                format!("{backup_subscription}|{}|{location}", settings.shared_name),
            ),
        };
        let readable = match settings.layout {
            Layout::PerCluster => alnum(&prefix),
            Layout::SharedPerRegion => alnum(&format!("{}{location}", settings.shared_name)),
        };
        let storage_account = format!(
            "bkp{}{}",
            truncate(&readable, 13),
            &hex_hash(&account_stem)[..8]
        );
        let container = match &settings.container {
            Some(name) => name.clone(),
            None => per_cluster_container(cluster),
        };
        Self {
            snapshot_resource_group: truncate(&format!("rg-{prefix}-snapshots"), 90),
            backup_resource_group: truncate(&backup_resource_group, 90),
            storage_account,
            container,
            vault: truncate(&vault, 50).trim_end_matches('-').to_string(),
            policy: format!(
                "aks-daily-{}d-{:02}{:02}",
                settings.retention_days, settings.backup_time.0, settings.backup_time.1
            ),
            backup_instance: format!(
                "{}-{}",
                truncate(&cluster_name.to_ascii_lowercase(), 40),
                &hex_hash(&cluster.key())[..8]
            ),
            subscription,
            backup_subscription,
            location,
        }
    }

    /// True if the backup resources live in another subscription than the cluster.
    pub fn is_cross_subscription(&self) -> bool {
        !self
            .backup_subscription
            .eq_ignore_ascii_case(&self.subscription)
    }

    /// The cluster's subscription, then the backup subscription if it is another one.
    pub fn subscriptions(&self) -> Vec<&str> {
        let mut out = vec![self.subscription.as_str()];
        if self.is_cross_subscription() {
            out.push(self.backup_subscription.as_str());
        }
        out
    }

    /// `/subscriptions/{sub}` of the cluster.
    pub fn subscription_id(&self) -> String {
        format!("/subscriptions/{}", self.subscription)
    }
    /// `/subscriptions/{sub}` of the backup resources.
    pub fn backup_subscription_id(&self) -> String {
        format!("/subscriptions/{}", self.backup_subscription)
    }
    /// The backup resource group's id (in the backup subscription).
    pub fn backup_resource_group_id(&self) -> String {
        format!(
            "{}/resourceGroups/{}",
            self.backup_subscription_id(),
            self.backup_resource_group
        )
    }
    /// The snapshot resource group's id (in the cluster's subscription).
    pub fn snapshot_resource_group_id(&self) -> String {
        format!(
            "{}/resourceGroups/{}",
            self.subscription_id(),
            self.snapshot_resource_group
        )
    }
    /// The storage account's id.
    pub fn storage_account_id(&self) -> String {
        format!(
            "{}/providers/Microsoft.Storage/storageAccounts/{}",
            self.backup_resource_group_id(),
            self.storage_account
        )
    }
    /// The vault's id.
    pub fn vault_id(&self) -> String {
        format!(
            "{}/providers/Microsoft.DataProtection/backupVaults/{}",
            self.backup_resource_group_id(),
            self.vault
        )
    }
    /// The policy's id.
    pub fn policy_id(&self) -> String {
        format!("{}/backupPolicies/{}", self.vault_id(), self.policy)
    }
    /// The backup instance's id.
    pub fn backup_instance_id(&self) -> String {
        format!(
            "{}/backupInstances/{}",
            self.vault_id(),
            self.backup_instance
        )
    }
}

/// The per-cluster storage account name's hash stem: the cluster's subscription, and the
/// backup subscription when it is another one (same-subscription names stay what they were;
/// storage account names are global, so the same prefix in two subscriptions, or backed up to
/// two backup subscriptions, never yields one name).
fn account_stem(subscription: &str, backup_subscription: &str, rest: &str) -> String {
    if backup_subscription.eq_ignore_ascii_case(subscription) {
        format!("{subscription}|{rest}")
    } else {
        format!("{subscription}|{backup_subscription}|{rest}")
    }
}

/// The blob container path under a storage account id.
pub fn container_path(storage_account_id: &str, container: &str) -> String {
    format!("{storage_account_id}/blobServices/default/containers/{container}")
}

/// The backup extension's path on a cluster.
pub fn extension_path(cluster_id: &str, extension: &str) -> String {
    format!("{cluster_id}/providers/Microsoft.KubernetesConfiguration/extensions/{extension}")
}

/// The deterministic trusted-access binding name for a vault: `bp-` and 16 hex digits
/// (the spec allows `^[A-Za-z0-9-]+$`, 1-24 characters).
pub fn trusted_access_binding_name(vault_id: &str) -> String {
    format!("bp-{}", &hex_hash(&vault_id.to_ascii_lowercase())[..16])
}

/// The per-cluster prefix: the template with `{cluster}`, `{resourceGroup}`, `{hash}` filled in.
pub fn cluster_prefix(settings: &OnboardingSettings, cluster: &ResourceId) -> String {
    let filled = settings
        .name_prefix
        .replace("{cluster}", cluster.name().unwrap_or("cluster"))
        .replace("{resourceGroup}", cluster.resource_group().unwrap_or("rg"))
        .replace("{hash}", &hex_hash(&cluster.key())[..6]);
    let cleaned: String = filled
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    truncate(&cleaned, 60)
}

/// One container per cluster: `{cluster}-{hash8}`, lower case, 3-63 characters.
fn per_cluster_container(cluster: &ResourceId) -> String {
    let mut name: String = cluster
        .name()
        .unwrap_or("cluster")
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    while name.contains("--") {
        name = name.replace("--", "-");
    }
    let name = truncate(name.trim_matches('-'), 50);
    let name = name.trim_matches('-');
    let hash = &hex_hash(&cluster.key())[..8];
    if name.is_empty() {
        format!("cluster-{hash}")
    } else {
        format!("{name}-{hash}")
    }
}

/// SHA-256 of `s`, as lower-case hex.
pub fn hex_hash(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn alnum(s: &str) -> String {
    s.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::settings::is_container_name;

    fn cluster(name: &str) -> ResourceId {
        ResourceId::parse(&format!(
            "/subscriptions/00000000-0000-0000-0000-0000000000aa/resourceGroups/apps/providers/Microsoft.ContainerService/managedClusters/{name}"
        ))
        .unwrap()
    }

    #[test]
    fn per_cluster_layout_follows_the_guide_and_is_deterministic() {
        let s = OnboardingSettings::default();
        let p = Placement::for_cluster(&s, &cluster("shop-prod"), "West Europe");
        assert_eq!(p.backup_resource_group, "rg-shop-prod");
        assert_eq!(p.snapshot_resource_group, "rg-shop-prod-snapshots");
        assert_eq!(p.vault, "bv-shop-prod");
        assert_eq!(p.container, "aks-backups");
        assert_eq!(p.location, "westeurope");
        assert_eq!(p.policy, "aks-daily-30d-0000");
        assert!(p.storage_account.starts_with("bkpshopprod"));
        assert!(p.storage_account.len() <= 24 && p.storage_account.len() >= 3);
        assert!(
            p.storage_account
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        );
        assert_eq!(
            p,
            Placement::for_cluster(&s, &cluster("SHOP-PROD"), "westeurope")
        );
        assert_eq!(
            p.snapshot_resource_group_id(),
            "/subscriptions/00000000-0000-0000-0000-0000000000aa/resourceGroups/rg-shop-prod-snapshots"
        );
        assert!(
            p.policy_id()
                .ends_with("/backupVaults/bv-shop-prod/backupPolicies/aks-daily-30d-0000")
        );
    }

    #[test]
    fn shared_layout_shares_vault_and_account_per_region_but_not_snapshots() {
        let s = OnboardingSettings {
            layout: Layout::SharedPerRegion,
            container: None,
            ..OnboardingSettings::default()
        };
        let a = Placement::for_cluster(&s, &cluster("a"), "westeurope");
        let b = Placement::for_cluster(&s, &cluster("b"), "westeurope");
        let c = Placement::for_cluster(&s, &cluster("c"), "eastus");
        assert_eq!(
            (a.vault.as_str(), a.backup_resource_group.as_str()),
            ("bv-aksbackup-westeurope", "rg-aksbackup-westeurope")
        );
        assert_eq!(a.storage_account, b.storage_account);
        assert_ne!(a.storage_account, c.storage_account);
        assert_ne!(a.snapshot_resource_group, b.snapshot_resource_group);
        assert_ne!(a.container, b.container);
        assert!(is_container_name(&a.container), "{}", a.container);
        assert_ne!(a.backup_instance, b.backup_instance);
    }

    #[test]
    fn long_and_odd_names_stay_within_azure_limits() {
        let s = OnboardingSettings {
            name_prefix: "{resourceGroup}-{cluster}-{hash}".into(),
            container: None,
            ..OnboardingSettings::default()
        };
        let long = "a".repeat(63);
        let p = Placement::for_cluster(&s, &cluster(&long), "westeurope");
        assert!(p.snapshot_resource_group.len() <= 90);
        assert!(p.vault.len() <= 50);
        assert!(p.storage_account.len() <= 24);
        assert!(is_container_name(&p.container), "{}", p.container);
        let odd = Placement::for_cluster(&s, &cluster("my_cluster"), "westeurope");
        assert!(is_container_name(&odd.container), "{}", odd.container);
        assert!(
            odd.vault
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
        );
        let binding = trusted_access_binding_name(&p.vault_id());
        assert_eq!(binding.len(), 19);
        assert_eq!(
            binding,
            trusted_access_binding_name(&p.vault_id().to_uppercase())
        );
    }

    const CENTRAL: &str = "00000000-0000-0000-0000-0000000000bb";

    #[test]
    fn without_a_backup_subscription_everything_stays_in_the_clusters() {
        let s = OnboardingSettings::default();
        let p = Placement::for_cluster(&s, &cluster("shop"), "westeurope");
        assert_eq!(p.backup_subscription, p.subscription);
        assert!(!p.is_cross_subscription());
        assert_eq!(p.subscriptions(), [p.subscription.as_str()]);
        let own = "/subscriptions/00000000-0000-0000-0000-0000000000aa/";
        for id in [
            p.backup_resource_group_id(),
            p.storage_account_id(),
            p.vault_id(),
            p.policy_id(),
            p.backup_instance_id(),
            p.snapshot_resource_group_id(),
        ] {
            assert!(id.starts_with(own), "{id}");
        }
        // The account name is what it was before the setting existed.
        let stem = "00000000-0000-0000-0000-0000000000aa|shop";
        assert_eq!(
            p.storage_account,
            format!("bkpshop{}", &hex_hash(stem)[..8])
        );
    }

    #[test]
    fn a_backup_subscription_takes_all_but_the_snapshot_resource_group() {
        let own = OnboardingSettings::default();
        let central = OnboardingSettings {
            backup_subscription: Some(CENTRAL.into()),
            ..OnboardingSettings::default()
        };
        let p = Placement::for_cluster(&central, &cluster("shop"), "westeurope");
        assert!(p.is_cross_subscription());
        assert_eq!(
            p.subscriptions(),
            ["00000000-0000-0000-0000-0000000000aa", CENTRAL]
        );
        for id in [
            p.backup_resource_group_id(),
            p.storage_account_id(),
            p.vault_id(),
            p.policy_id(),
            p.backup_instance_id(),
        ] {
            assert!(
                id.starts_with(&format!("/subscriptions/{CENTRAL}/")),
                "{id}"
            );
        }
        assert_eq!(
            p.snapshot_resource_group_id(),
            "/subscriptions/00000000-0000-0000-0000-0000000000aa/resourceGroups/rg-shop-snapshots"
        );
        // Storage account names are global: the backup subscription is in the hash stem.
        let same_sub = Placement::for_cluster(&own, &cluster("shop"), "westeurope");
        assert_ne!(p.storage_account, same_sub.storage_account);
        let elsewhere = OnboardingSettings {
            backup_subscription: Some("00000000-0000-0000-0000-0000000000cc".into()),
            ..OnboardingSettings::default()
        };
        assert_ne!(
            p.storage_account,
            Placement::for_cluster(&elsewhere, &cluster("shop"), "westeurope").storage_account
        );
        assert!(p.storage_account.starts_with("bkpshop") && p.storage_account.len() <= 24);
        // Same names otherwise.
        assert_eq!(
            (
                &p.vault,
                &p.backup_resource_group,
                &p.container,
                &p.policy,
                &p.backup_instance
            ),
            (
                &same_sub.vault,
                &same_sub.backup_resource_group,
                &same_sub.container,
                &same_sub.policy,
                &same_sub.backup_instance
            )
        );
    }

    #[test]
    fn the_shared_layout_shares_one_account_per_region_of_the_backup_subscription() {
        let s = OnboardingSettings {
            layout: Layout::SharedPerRegion,
            container: None,
            backup_subscription: Some(CENTRAL.into()),
            ..OnboardingSettings::default()
        };
        let other_sub = ResourceId::parse(
            "/subscriptions/00000000-0000-0000-0000-0000000000dd/resourceGroups/apps/providers/Microsoft.ContainerService/managedClusters/b",
        )
        .unwrap();
        let a = Placement::for_cluster(&s, &cluster("a"), "westeurope");
        let b = Placement::for_cluster(&s, &other_sub, "westeurope");
        assert_eq!(a.storage_account_id(), b.storage_account_id());
        assert_eq!(a.vault_id(), b.vault_id());
        assert_ne!(
            a.snapshot_resource_group_id(),
            b.snapshot_resource_group_id()
        );
        assert!(b.snapshot_resource_group_id().contains("0000000000dd"));
    }
}

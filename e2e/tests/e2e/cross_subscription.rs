//! Cross-subscription placement end to end: a cluster in one subscription is protected by a
//! vault, storage account and policy in a central backup subscription
//! (`BACKUP_PILOT_BACKUP_SUBSCRIPTION`), its snapshot resource group stays in its own
//! subscription, and offboarding finds the backup instance and the role assignments in both.

use crate::common;
use std::time::Duration;

use serde_json::Map;

use backup_pilot::arm::versions;
use backup_pilot::envelope::WorkflowKind;
use backup_pilot::workflow::placement::Placement;
use backup_pilot::workflow::settings::OnboardingSettings;

use common::chain::{Chain, LOCATION, SUB, poc, two_d2_nodes};

/// The central backup subscription (same tenant and region as the cluster's).
const BACKUP_SUB: &str = "0c5a3f7e-8b21-4d6a-b0f4-91e2d7c6a3b5";

fn in_sub(id: &str, sub: &str) -> bool {
    id.to_ascii_lowercase()
        .starts_with(&format!("/subscriptions/{sub}/"))
}

#[tokio::test]
async fn a_cluster_is_protected_from_a_central_backup_subscription_and_offboarded_from_both() {
    let settings = OnboardingSettings {
        backup_subscription: Some(BACKUP_SUB.into()),
        ..poc()
    };
    let chain = Chain::new(settings.clone()).await;
    chain.arm.add_subscription(BACKUP_SUB).unwrap();
    let cluster = chain.seed("shop", two_d2_nodes()).await;
    let p = Placement::for_cluster(&settings, &cluster.parse().unwrap(), LOCATION);

    chain.start_onboarding(&cluster, "gen-1").await;
    chain.run_all().await;
    let ends = chain.ends();
    let (step, end) = ends.last().expect("the onboarding ended");
    assert!(end.is_ok(), "{step}: {end:?}\n{ends:#?}");

    let state = chain.arm.snapshot();
    // Protected, by an instance of the central vault.
    let bi = state
        .backup_instances
        .iter()
        .find(|b| b.id.eq_ignore_ascii_case(&p.backup_instance_id()))
        .unwrap_or_else(|| panic!("{:#?}", state.backup_instances));
    assert_eq!(bi.protection_state, "ProtectionConfigured");
    assert!(in_sub(&bi.id, BACKUP_SUB), "{}", bi.id);
    assert_eq!(state.vaults.len(), 1, "{:#?}", state.vaults);
    assert!(in_sub(&state.vaults[0].id, BACKUP_SUB));
    assert_eq!(state.storage_accounts.len(), 1);
    assert!(in_sub(&state.storage_accounts[0].id, BACKUP_SUB));
    assert!(
        state
            .backup_policies
            .iter()
            .all(|id| in_sub(id, BACKUP_SUB))
            && !state.backup_policies.is_empty(),
        "{:#?}",
        state.backup_policies
    );
    assert!(
        state
            .blob_containers
            .iter()
            .all(|id| in_sub(id, BACKUP_SUB)),
        "{:#?}",
        state.blob_containers
    );
    // The backup resource group in the backup subscription, the snapshot one in the cluster's.
    let groups: Vec<String> = state
        .resource_groups
        .iter()
        .map(|g| g.to_ascii_lowercase())
        .collect();
    assert!(
        groups.contains(&p.backup_resource_group_id().to_ascii_lowercase()),
        "{groups:#?}"
    );
    assert!(
        groups.contains(&p.snapshot_resource_group_id().to_ascii_lowercase()),
        "{groups:#?}"
    );
    assert!(in_sub(&p.snapshot_resource_group_id(), SUB));
    assert!(in_sub(&p.backup_resource_group_id(), BACKUP_SUB));

    // The extension writes to the account's subscription; trusted access binds the central vault.
    let ext = &state.extensions[0];
    assert_eq!(
        ext.configuration_settings
            .get("configuration.backupStorageLocation.config.subscriptionId")
            .map(String::as_str),
        Some(BACKUP_SUB)
    );
    assert!(
        state
            .trusted_access_bindings
            .iter()
            .any(|b| b.source_resource_id.eq_ignore_ascii_case(&p.vault_id())
                && b.provisioning_state == "Succeeded"),
        "{:#?}",
        state.trusted_access_bindings
    );

    // Providers: DataProtection in the backup subscription, the extension's
    // namespace in the cluster's; DataProtection is not needed (nor registered) in the cluster's.
    let state_of = |sub: &str, ns: &str| {
        state
            .providers
            .iter()
            .find(|v| {
                v.subscription.eq_ignore_ascii_case(sub) && v.namespace.eq_ignore_ascii_case(ns)
            })
            .map(|v| v.state.clone())
    };
    assert_eq!(
        state_of(BACKUP_SUB, "Microsoft.DataProtection").as_deref(),
        Some("Registered")
    );
    assert_eq!(
        state_of(BACKUP_SUB, "Microsoft.Storage").as_deref(),
        Some("Registered")
    );
    assert_eq!(
        state_of(SUB, "Microsoft.KubernetesConfiguration").as_deref(),
        Some("Registered")
    );
    assert_ne!(
        state_of(SUB, "Microsoft.DataProtection").as_deref(),
        Some("Registered")
    );

    // Role assignments: the guide's seven, each at its scope, with the role definition of the
    // scope's subscription.
    assert_eq!(
        state.role_assignments.len(),
        7,
        "{:#?}",
        state.role_assignments
    );
    for a in &state.role_assignments {
        let scope = a.scope.to_ascii_lowercase();
        let sub = if scope.starts_with(&p.storage_account_id().to_ascii_lowercase()) {
            BACKUP_SUB
        } else {
            assert!(
                scope == cluster.to_ascii_lowercase()
                    || scope == p.snapshot_resource_group_id().to_ascii_lowercase(),
                "{a:#?}"
            );
            SUB
        };
        assert!(in_sub(&a.scope, sub), "{a:#?}");
        assert!(in_sub(&a.role_definition_id, sub), "{a:#?}");
        assert!(a.effective, "{a:#?}");
    }
    let on_storage = state
        .role_assignments
        .iter()
        .filter(|a| in_sub(&a.scope, BACKUP_SUB))
        .count();
    assert_eq!(on_storage, 3, "{:#?}", state.role_assignments);

    // Offboarding: the cluster is deleted, the delete event arrives.
    let status = crate::common::https()
        .delete(format!(
            "{}{cluster}?api-version={}",
            chain.arm_url,
            versions::MANAGED_CLUSTERS
        ))
        .bearer_auth(chain.arm.arm_token())
        .send()
        .await
        .unwrap()
        .status();
    assert!(status.is_success(), "{status}");
    chain.clock.advance(Duration::from_secs(3600));
    // The two on the cluster went with it; the three on the central storage account and the
    // two on the snapshot resource group are left for offboarding.
    let left = chain.arm.snapshot().role_assignments;
    assert_eq!(left.len(), 5, "{left:#?}");
    assert_eq!(
        left.iter().filter(|a| in_sub(&a.scope, BACKUP_SUB)).count(),
        3
    );
    let mut payload = Map::new();
    payload.insert("clusterId".into(), cluster.clone().into());
    chain
        .engine
        .start(WorkflowKind::Offboard, &cluster, "gen-2", payload)
        .await
        .expect("offboarding starts");
    chain.run_all().await;
    let ends = chain.ends();
    let (step, end) = ends.last().expect("the offboarding ended");
    assert_eq!(step, "remove_role_assignments", "{end:?}");
    let summary = end.clone().unwrap();
    assert!(
        summary.contains("1 backup instance(s) stopped")
            && summary.contains("5 role assignment(s) removed"),
        "{summary}"
    );
    let state = chain.arm.snapshot();
    assert!(
        state.role_assignments.is_empty(),
        "{:#?}",
        state.role_assignments
    );
    let bi = state
        .backup_instances
        .iter()
        .find(|b| b.id.eq_ignore_ascii_case(&p.backup_instance_id()))
        .unwrap_or_else(|| panic!("{:#?}", state.backup_instances));
    assert_eq!(bi.protection_state, "ProtectionStopped");
    // Retain mode keeps the vault and storage.
    assert_eq!((state.vaults.len(), state.storage_accounts.len()), (1, 1));
}

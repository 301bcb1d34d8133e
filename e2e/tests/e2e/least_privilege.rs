//! Least privilege, enforced (issue 15 item 5): the ARM stand-in checks every request of the
//! service's identity against exactly what `infra/target/main.bicep` grants it (read from the
//! committed Bicep text), and answers ARM's 403 otherwise. Onboarding, offboarding, a restore
//! and a drill pass with those grants; removing each action of the custom role in turn either
//! fails the chain that uses it with an error naming the action, or shows the action is unused
//! or covered by another grant; and the service cannot assign a role outside the condition's
//! set. A fleet sweep's Resource Graph rows are trimmed to what those grants let the service
//! read (`src/local/arm/resource_graph`), so the sweep finding its cluster proves the grants
//! cover its queries.

use crate::common;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::json;

use backup_pilot::arm::versions;
use backup_pilot::envelope::WorkflowKind;
use backup_pilot::restore::authorize::RestoreAllowlist;
use backup_pilot::restore::settings::RestoreSettings;
use backup_pilot::restore::store::MemoryReportStore;
use backup_pilot::workflow::settings::{OffboardData, OnboardingSettings};
use backup_pilot_standins::arm::authz::action_matches;
use backup_pilot_standins::arm::{
    ArmHandle, AuthzCheck, ClusterSeed, PrincipalKind, RoleDefinition, TargetGrants, TargetParams,
    roles,
};

use common::chain::{self, Chain, one_b2_node, two_d2_nodes};
use common::restore_env::RestoreEnv;

/// The chains the service runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Scenario {
    /// Onboarding (with the first backup) then offboarding (delete mode) of one cluster.
    OnboardOffboard,
    /// Onboarding a cluster whose one small node pool is scaled and whose disk CSI driver is
    /// turned on by the service (both allowed by the settings).
    OnboardSmallClusterWithDriverOff,
    /// A restore into an alternate namespace on another cluster.
    Restore,
    /// A restore drill.
    Drill,
    /// A fleet sweep that onboards an existing cluster, then repairs a deleted role
    /// assignment.
    FleetScan,
}

const ALL: [Scenario; 5] = [
    Scenario::OnboardOffboard,
    Scenario::OnboardSmallClusterWithDriverOff,
    Scenario::Restore,
    Scenario::Drill,
    Scenario::FleetScan,
];

/// What a run ended with.
struct Run {
    /// The failures (workflow failures and refused starts), empty when everything passed.
    failures: Vec<String>,
    /// Every authorization decision for the service's identity.
    checks: Vec<AuthzCheck>,
}

/// The infra grants for the service's identity in `arm`'s subscription, with the custom
/// role replaced by `operator` when given; enforcement on.
fn grant_infra(arm: &ArmHandle, operator: Option<&RoleDefinition>) -> TargetGrants {
    let principal = arm.caller_object_id();
    let mut grants = TargetGrants::from_repository(&TargetParams::new(&principal, chain::SUB))
        .expect("infra/target/main.bicep reads");
    if let Some(role) = operator {
        grants.custom_roles[0] = role.clone();
    }
    arm.apply_target_grants(&grants).unwrap();
    arm.enforce_least_privilege(&principal, true);
    grants
}

fn operator_role() -> RoleDefinition {
    TargetGrants::from_repository(&TargetParams::new(
        "0c0ffee0-0000-4000-8000-000000000001",
        chain::SUB,
    ))
    .unwrap()
    .operator_role()
    .unwrap()
    .clone()
}

fn failures_of(ends: Vec<(String, Result<String, String>)>) -> Vec<String> {
    ends.into_iter()
        .filter_map(|(step, end)| end.err().map(|reason| format!("{step}: {reason}")))
        .collect()
}

async fn run(scenario: Scenario, operator: Option<&RoleDefinition>) -> Run {
    match scenario {
        Scenario::OnboardOffboard => onboard_offboard(operator).await,
        Scenario::OnboardSmallClusterWithDriverOff => onboard_small(operator).await,
        Scenario::Restore => restore(operator).await,
        Scenario::Drill => drill(operator).await,
        Scenario::FleetScan => fleet_scan(operator).await,
    }
}

async fn fleet_scan(operator: Option<&RoleDefinition>) -> Run {
    let chain = Chain::build(
        chain::poc(),
        backup_pilot_standins::token::TokenIssuer::new("chain"),
        backup_pilot_standins::arm::ArmStandIn::builder().resource_graph(
            backup_pilot_standins::arm::GraphSettings {
                indexing_lag: std::time::Duration::ZERO,
                ..Default::default()
            },
        ),
    )
    .await;
    grant_infra(&chain.arm, operator);
    let cluster = chain.seed("aks-estate", two_d2_nodes()).await;
    let sweep = async |want: &str| match backup_pilot::fleet::scan::sweep(&chain.engine, true).await
    {
        Ok(report) if report.started.len() == 1 && report.started[0].2 == want => None,
        Ok(report) => Some(format!("sweep expected to {want}: {}", report.summary())),
        Err(e) => Some(format!("sweep: {e}")),
    };
    let before = chain.arm.authorization_checks().len();
    let mut failures: Vec<String> = sweep("onboard").await.into_iter().collect();
    // The sweep's rows came through enforcement: its cluster was read as the service.
    let read_by_graph = chain.arm.authorization_checks()[before..].iter().any(|c| {
        c.allowed
            && c.action == "Microsoft.ContainerService/managedClusters/read"
            && c.scope.eq_ignore_ascii_case(&cluster)
    });
    if !read_by_graph {
        failures.push("the sweep's Resource Graph rows were not checked against the grants".into());
    }
    chain.run_all().await;
    failures.extend(failures_of(chain.ends()));
    if failures.is_empty() {
        chain
            .arm
            .break_protection(
                &cluster,
                backup_pilot_standins::arm::Drift::RoleAssignmentRemoved,
            )
            .unwrap();
        chain.clock.advance(std::time::Duration::from_secs(60));
        failures.extend(sweep("repair").await);
        chain.run_all().await;
        failures.extend(failures_of(chain.ends()));
    }
    Run {
        failures,
        checks: chain.arm.authorization_checks(),
    }
}

async fn onboard_offboard(operator: Option<&RoleDefinition>) -> Run {
    let settings = OnboardingSettings {
        first_backup: true,
        offboard_data: OffboardData::Delete,
        ..chain::poc()
    };
    let chain = Chain::new(settings).await;
    grant_infra(&chain.arm, operator);
    let cluster = chain.seed("aks-shop", two_d2_nodes()).await;
    chain.start_onboarding(&cluster, "gen-1").await;
    chain.run_all().await;
    let mut failures = failures_of(chain.ends());
    if failures.is_empty() {
        // The cluster is deleted (by its owner, outside enforcement); the delete event
        // offboards it.
        chain.arm.remove_cluster(&cluster).unwrap();
        let mut payload = serde_json::Map::new();
        payload.insert("clusterId".into(), cluster.clone().into());
        chain
            .engine
            .start(WorkflowKind::Offboard, &cluster, "gen-2", payload)
            .await
            .expect("offboarding starts");
        chain.run_all().await;
        failures = failures_of(chain.ends());
        if failures.is_empty() {
            let left = chain.arm.snapshot().backup_instances.len();
            if left != 0 {
                failures.push(format!("offboarding left {left} backup instance(s)"));
            }
        }
    }
    Run {
        failures,
        checks: chain.arm.authorization_checks(),
    }
}

async fn onboard_small(operator: Option<&RoleDefinition>) -> Run {
    let settings = OnboardingSettings {
        allow_node_pool_scale: true,
        allow_cluster_update: true,
        ..chain::poc()
    };
    let chain = Chain::new(settings).await;
    grant_infra(&chain.arm, operator);
    let cluster = chain
        .seed_cluster(
            ClusterSeed::new(chain::SUB, chain::RG, "aks-small", chain::LOCATION)
                .with_node_pools(one_b2_node())
                .with_csi(false, true),
        )
        .await;
    chain.start_onboarding(&cluster, "gen-1").await;
    chain.run_all().await;
    let mut failures = failures_of(chain.ends());
    let state = chain.arm.snapshot();
    let seeded = state
        .clusters
        .iter()
        .find(|c| c.id.eq_ignore_ascii_case(&cluster))
        .unwrap();
    if failures.is_empty() && seeded.node_pools[0].count < 2 {
        failures.push("the node pool was not scaled".into());
    }
    Run {
        failures,
        checks: chain.arm.authorization_checks(),
    }
}

fn restore_settings() -> RestoreSettings {
    RestoreSettings {
        allowlist: RestoreAllowlist::from_json(&format!(
            r#"[{{"cluster": "/subscriptions/{}/resourceGroups/rg-dr/*", "namespaces": ["app-*"]}}]"#,
            chain::SUB
        ))
        .unwrap(),
        ..RestoreSettings::default()
    }
}

async fn restore(operator: Option<&RoleDefinition>) -> Run {
    let env = RestoreEnv::new(restore_settings(), Arc::new(MemoryReportStore::default())).await;
    grant_infra(&env.arm, operator);
    let request = json!({
        "requestId": "ticket-4711",
        "requestedBy": "oncall@example.com",
        "sourceClusterId": env.prod.id,
        "targetClusterId": env.dr.id,
        "recoveryPoint": "latest",
        "includedNamespaces": ["app"],
        "namespaceMappings": {"app": "app-restored"},
        "conflictPolicy": "Skip",
        "persistentVolumeRestoreMode": "RestoreWithVolumeData"
    });
    let (status, answer) = env.request_restore(&request, "msg-1").await;
    let mut failures = Vec::new();
    if status != 200 {
        failures.push(format!("restore-requests answered {status}: {answer}"));
    }
    env.run_all().await;
    failures.extend(failures_of(env.ends()));
    if failures.is_empty() && env.dr.kube.pods("app-restored") != vec!["web-0", "web-1"] {
        failures.push("the workload is not back".into());
    }
    if failures.is_empty() && env.ends().is_empty() {
        failures.push(format!("no restore ran: {answer}"));
    }
    Run {
        failures,
        checks: env.arm.authorization_checks(),
    }
}

async fn drill(operator: Option<&RoleDefinition>) -> Run {
    let env = RestoreEnv::new(
        RestoreSettings::default(),
        Arc::new(MemoryReportStore::default()),
    )
    .await;
    grant_infra(&env.arm, operator);
    let (status, answer) = env.fire_drill_timer().await;
    let mut failures = Vec::new();
    if status != 200 || !answer.to_string().contains("1 drill(s) started") {
        failures.push(format!("restore-drills answered {status}: {answer}"));
    }
    env.run_all().await;
    failures.extend(failures_of(env.ends()));
    if failures.is_empty()
        && !env.ends().iter().any(|(_, e)| {
            e.as_ref()
                .is_ok_and(|s| s.starts_with("restore drill pass"))
        })
    {
        failures.push(format!("no passing drill: {:?}", env.ends()));
    }
    Run {
        failures,
        checks: env.arm.authorization_checks(),
    }
}

#[tokio::test]
async fn onboarding_offboarding_a_restore_and_a_drill_pass_with_exactly_the_infra_grants() {
    for scenario in ALL {
        let run = run(scenario, None).await;
        assert!(run.failures.is_empty(), "{scenario:?}: {:#?}", run.failures);
        assert!(
            !run.checks.is_empty(),
            "{scenario:?}: enforcement saw no request"
        );
        let denied: Vec<_> = run.checks.iter().filter(|c| !c.allowed).collect();
        assert!(denied.is_empty(), "{scenario:?}: {denied:#?}");
    }
}

#[tokio::test]
async fn what_the_custom_role_does_not_grant_is_only_reads_from_the_rbac_administrator_role() {
    // The Role Based Access Control Administrator assignment brings `*/read` for the whole
    // subscription; the chains' reads outside the custom role rely on it. Everything else the
    // service does must come from the custom role (or, for role assignments, from the
    // conditioned administrator role).
    let role = operator_role();
    let mut outside = BTreeSet::new();
    for scenario in ALL {
        for check in run(scenario, None).await.checks {
            if !role.allows(&check.action) {
                outside.insert(check.action.clone());
            }
        }
    }
    println!("granted only by Role Based Access Control Administrator: {outside:#?}");
    for action in &outside {
        assert!(
            action.ends_with("/read")
                || action.eq_ignore_ascii_case("Microsoft.Authorization/roleAssignments/write")
                || action.eq_ignore_ascii_case("Microsoft.Authorization/roleAssignments/delete"),
            "{action} is granted by nothing but the administrator role"
        );
    }
}

/// What removing one action of the custom role does.
#[derive(Debug)]
enum Verdict {
    /// No request of any chain needed it.
    Unused,
    /// Every request it allowed is allowed by another grant too (e.g. `*/read` of Role Based
    /// Access Control Administrator); the chains pass without it.
    Covered(Vec<String>),
    /// Needed: without it the chain fails with an error naming the action.
    Needed(Scenario, String),
}

impl Verdict {
    fn describe(&self) -> String {
        match self {
            Verdict::Unused => {
                "unused by every chain (a candidate to drop, or a path not run here)".into()
            }
            Verdict::Covered(actions) => format!("covered by another grant for {actions:?}"),
            Verdict::Needed(scenario, action) => {
                format!("needed: without it {scenario:?} fails naming '{action}'")
            }
        }
    }
}

#[tokio::test]
async fn each_action_of_the_custom_role_is_needed_or_reported_unused() {
    // One run with all grants: which actions each chain checks, and what allowed them.
    let mut used: BTreeMap<Scenario, Vec<AuthzCheck>> = BTreeMap::new();
    for scenario in ALL {
        let run = run(scenario, None).await;
        assert!(run.failures.is_empty(), "{scenario:?}: {:#?}", run.failures);
        used.insert(scenario, run.checks);
    }
    let role = operator_role();
    let mut verdicts = Vec::new();
    let mut problems = Vec::new();
    for pattern in &role.permissions[0].actions {
        let needing: BTreeMap<Scenario, BTreeSet<String>> = used
            .iter()
            .map(|(s, checks)| {
                let actions: BTreeSet<String> = checks
                    .iter()
                    .filter(|c| c.matched.iter().any(|m| m == pattern))
                    .map(|c| c.action.clone())
                    .collect();
                (*s, actions)
            })
            .filter(|(_, a)| !a.is_empty())
            .collect();
        if needing.is_empty() {
            verdicts.push((pattern.clone(), Verdict::Unused));
            continue;
        }
        let covered = needing.iter().all(|(s, actions)| {
            used[s]
                .iter()
                .filter(|c| actions.contains(&c.action))
                .all(|c| c.granted_by.len() > 1)
        });
        let without = role.without_action(pattern);
        let mut verdict = None;
        for (scenario, actions) in &needing {
            let rerun = run(*scenario, Some(&without)).await;
            if rerun.failures.is_empty() {
                continue;
            }
            let text = rerun.failures.join("\n");
            match actions.iter().find(|a| text.contains(a.as_str())) {
                Some(action) => {
                    if !text.contains("infra/target/main.bicep") {
                        problems.push(format!(
                            "{pattern}: the error does not point at infra/target/main.bicep: {text}"
                        ));
                    }
                    verdict = Some(Verdict::Needed(*scenario, action.clone()));
                }
                None => problems.push(format!(
                    "{pattern}: {scenario:?} failed without naming any of {actions:?}: {text}"
                )),
            }
            break;
        }
        let verdict = match verdict {
            Some(v) => v,
            None if covered => Verdict::Covered(
                needing
                    .values()
                    .flatten()
                    .cloned()
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect(),
            ),
            None => {
                problems.push(format!(
                    "{pattern}: the chains pass without it although nothing else grants {needing:?}"
                ));
                continue;
            }
        };
        verdicts.push((pattern.clone(), verdict));
    }
    println!("custom role action verdicts:");
    for (pattern, verdict) in &verdicts {
        println!("  {pattern}: {}", verdict.describe());
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

/// A role-assignment PUT as the service.
async fn assign(
    arm: &ArmHandle,
    url: &str,
    scope: &str,
    role: &str,
    principal: &str,
    kind: &str,
) -> (u16, serde_json::Value) {
    let response = crate::common::https()
        .put(format!(
            "{url}{scope}/providers/Microsoft.Authorization/roleAssignments/{}?api-version={}",
            uuid::Uuid::new_v4(),
            versions::ROLE_ASSIGNMENTS
        ))
        .bearer_auth(arm.arm_token())
        .json(&json!({"properties": {
            "roleDefinitionId": format!("/subscriptions/{}/providers/Microsoft.Authorization/roleDefinitions/{role}", chain::SUB),
            "principalId": principal, "principalType": kind}}))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

#[tokio::test]
async fn the_service_cannot_grant_a_role_outside_the_allowed_set() {
    let chain = Chain::new(chain::poc()).await;
    let grants = grant_infra(&chain.arm, None);
    let me = chain.arm.caller_object_id();
    let vault_identity = "3b6f0c4e-1d2a-4e5f-8a9b-0c1d2e3f4a5b";
    let someone = "7d8e9f00-1a2b-4c3d-8e4f-5a6b7c8d9e0f";
    chain
        .arm
        .add_principal(vault_identity, PrincipalKind::ServicePrincipal)
        .unwrap();
    chain
        .arm
        .add_principal(someone, PrincipalKind::User)
        .unwrap();
    let scope = format!("/subscriptions/{}/resourceGroups/{}", chain::SUB, chain::RG);
    chain
        .arm
        .add_resource_group(chain::SUB, chain::RG, chain::LOCATION)
        .unwrap();

    // Every role the condition allows can be given to another service principal.
    let allowed = grants.assignable_roles();
    assert_eq!(allowed.len(), 4, "{allowed:?}");
    for role in &allowed {
        let (status, body) = assign(
            &chain.arm,
            &chain.arm_url,
            &scope,
            role,
            vault_identity,
            "ServicePrincipal",
        )
        .await;
        assert_eq!(status, 201, "{role}: {body}");
    }
    // Nothing else, nobody else, and never itself.
    for (role, principal, kind, why) in [
        (roles::OWNER, vault_identity, "ServicePrincipal", "Owner"),
        (
            roles::USER_ACCESS_ADMINISTRATOR,
            vault_identity,
            "ServicePrincipal",
            "User Access Administrator",
        ),
        (
            roles::DISK_SNAPSHOT_CONTRIBUTOR,
            vault_identity,
            "ServicePrincipal",
            "an optional role, not allowed by default",
        ),
        (roles::READER, someone, "User", "a user"),
        (
            roles::CONTRIBUTOR,
            me.as_str(),
            "ServicePrincipal",
            "itself",
        ),
    ] {
        let (status, body) =
            assign(&chain.arm, &chain.arm_url, &scope, role, principal, kind).await;
        assert_eq!(status, 403, "{why}: {body}");
        assert_eq!(body["error"]["code"], "AuthorizationFailed", "{why}");
        let message = body["error"]["message"].as_str().unwrap();
        assert_eq!(
            message,
            format!(
                "The client '{me}' with object id '{me}' has an authorization with ABAC condition that is not fulfilled to perform action 'Microsoft.Authorization/roleAssignments/write' over scope '{scope}/providers/Microsoft.Authorization/roleAssignments/{}' or the scope is invalid. If access was recently granted, please refresh your credentials.",
                message
                    .split("roleAssignments/")
                    .nth(2)
                    .and_then(|r| r.split('\'').next())
                    .unwrap()
            ),
            "{why}"
        );
    }
    // Actions outside the grants get the plain message: no vault delete, for one.
    let vault = format!("{scope}/providers/Microsoft.DataProtection/backupVaults/bv");
    let status = crate::common::https()
        .delete(format!(
            "{}{vault}?api-version={}",
            chain.arm_url,
            versions::BACKUP_VAULTS
        ))
        .bearer_auth(chain.arm.arm_token())
        .send()
        .await
        .unwrap();
    assert_eq!(status.status().as_u16(), 403);
    let body: serde_json::Value = status.json().await.unwrap();
    assert_eq!(
        body["error"]["message"],
        format!(
            "The client '{me}' with object id '{me}' does not have authorization to perform action 'Microsoft.DataProtection/backupVaults/delete' over scope '{vault}' or the scope is invalid. If access was recently granted, please refresh your credentials."
        )
    );
    // Another principal (an administrator) is not under enforcement.
    let admin = chain.arm.token_as("5e5e5e5e-0000-4000-8000-000000000001");
    let status = crate::common::https()
        .get(format!(
            "{}{scope}?api-version={}",
            chain.arm_url,
            versions::RESOURCES
        ))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
}

#[test]
fn the_grants_come_from_the_committed_templates() {
    let role = operator_role();
    let actions = &role.permissions[0].actions;
    assert!(actions.iter().any(|a| action_matches(
        a,
        "Microsoft.DataProtection/backupVaults/backupInstances/restore/action"
    )));
    assert!(
        !actions
            .iter()
            .any(|a| action_matches(a, "Microsoft.DataProtection/backupVaults/delete"))
    );
    assert!(
        !actions
            .iter()
            .any(|a| action_matches(a, "Microsoft.Storage/storageAccounts/listKeys/action"))
    );
}

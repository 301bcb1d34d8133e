//! The operator's views against the stand-ins: `plan` only reads (every request on the ARM
//! stand-in's journal is a GET) and lists exactly what the onboarding chain then writes; a
//! cluster onboarding would stop on is reported with the step's own reason; `status` shows a
//! failed cluster's error, fix and next step; and the live view reads the extension, backup
//! instance, recovery points, jobs, backup CRDs and extension pods.

use crate::common;
use std::collections::BTreeMap;
use std::time::Duration;

use backup_pilot::plan::live;
use backup_pilot::plan::{self, Change, Plan, Verdict};
use backup_pilot::resource_id::ResourceId;
use backup_pilot::status::live::Section;
use backup_pilot::status::{ClusterStatus, Phase, StoreInfo, render};
use backup_pilot::workflow::settings::Layout;
use backup_pilot_standins::arm::{
    ArmRequestRecord, ArmStandIn, ClusterSeed, EntraSeed, InjectedFailure,
};
use backup_pilot_standins::kube_api::{ExtensionInstall, KubeApiServer, PodState};
use common::chain::{Chain, LOCATION, RG, SUB, cluster_id, one_b2_node, poc, two_d2_nodes};

fn id(raw: &str) -> ResourceId {
    ResourceId::parse(raw).unwrap()
}

fn writes(records: &[ArmRequestRecord]) -> Vec<String> {
    records
        .iter()
        .filter(|r| r.method != "GET")
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

fn count(plan: &Plan, kind: &str, change: Change) -> usize {
    plan.items
        .iter()
        .filter(|i| i.kind == kind && i.change == change)
        .count()
}

const ROLE_ASSIGNMENTS: &str = "/providers/microsoft.authorization/roleassignments/";

/// The plan's changes and the chain's writes match: every created or updated resource was
/// PUT at the planned id, every registration POSTed, one role assignment PUT per planned one
/// at the planned scopes, and nothing else was written.
fn assert_writes_match(plan: &Plan, records: &[ArmRequestRecord]) {
    let puts: BTreeMap<String, usize> = records
        .iter()
        .filter(|r| r.method == "PUT" && r.status < 300)
        .fold(BTreeMap::new(), |mut m, r| {
            *m.entry(r.path.to_ascii_lowercase()).or_default() += 1;
            m
        });
    let posts: Vec<String> = records
        .iter()
        .filter(|r| r.method == "POST")
        .map(|r| r.path.to_ascii_lowercase())
        .collect();
    let mut planned_puts = Vec::new();
    let mut planned_scopes = Vec::new();
    for item in &plan.items {
        let target = item.target.to_ascii_lowercase();
        match (item.kind, item.change) {
            ("role assignment", Change::Create) => planned_scopes.push(target),
            ("provider", Change::Register) => assert!(
                posts.contains(&format!("{target}/register")),
                "planned registration not made: {target}"
            ),
            ("backup instance", Change::Create) => {
                assert!(
                    posts
                        .iter()
                        .any(|p| target.starts_with(p.trim_end_matches("/validateforbackup"))),
                    "no validateForBackup before {target}"
                );
                planned_puts.push(target);
            }
            ("first backup", Change::Run) | ("hook", Change::Run) => {}
            (_, Change::Create | Change::Update) => planned_puts.push(target),
            _ => {}
        }
    }
    let mut made_scopes: Vec<String> = puts
        .keys()
        .filter_map(|p| {
            p.split_once(ROLE_ASSIGNMENTS)
                .map(|(scope, _)| scope.to_string())
        })
        .collect();
    made_scopes.sort();
    planned_scopes.sort();
    assert_eq!(made_scopes, planned_scopes, "role assignments");
    let mut made_puts: Vec<String> = puts
        .keys()
        .filter(|p| !p.contains(ROLE_ASSIGNMENTS))
        .cloned()
        .collect();
    made_puts.sort();
    planned_puts.sort();
    assert_eq!(made_puts, planned_puts, "resources written");
    for post in &posts {
        // listClusterUserCredential is the Kubernetes steps' kubeconfig: a read behind a POST.
        assert!(
            post.ends_with("/register")
                || post.ends_with("/validateforbackup")
                || post.ends_with("/backup")
                || post.ends_with("/listclusterusercredential"),
            "an unplanned action: POST {post}"
        );
    }
}

#[tokio::test]
async fn a_plan_reads_only_and_lists_what_onboarding_then_writes() {
    let chain = Chain::new(poc()).await;
    let cluster = chain.seed("shop", two_d2_nodes()).await;
    chain.arm.clear_journal();

    let plan = plan::plan(chain.ctx(), &id(&cluster)).await.unwrap();
    let read = chain.arm.journal();
    for namespace in [
        "Microsoft.DataProtection",
        "Microsoft.KubernetesConfiguration",
    ] {
        let provider = format!("/subscriptions/{SUB}/providers/{namespace}");
        assert!(
            read.iter().any(|r| r.method == "GET" && r.path == provider),
            "the planner read {provider}"
        );
    }
    assert_eq!(
        writes(&read),
        Vec::<String>::new(),
        "plan makes zero writes"
    );

    assert_eq!(plan.verdict, Verdict::Proceeds, "{plan:#?}");
    assert_eq!(plan.location.as_deref(), Some(LOCATION));
    // A fresh subscription: both providers to register, everything to create.
    assert_eq!(count(&plan, "provider", Change::Register), 2);
    assert_eq!(count(&plan, "resource group", Change::Create), 2);
    for kind in [
        "storage account",
        "blob container",
        "backup vault",
        "backup policy",
        "cluster extension",
        "trusted access binding",
        "backup instance",
    ] {
        assert_eq!(count(&plan, kind, Change::Create), 1, "{kind}: {plan:#?}");
    }
    assert_eq!(count(&plan, "role assignment", Change::Create), 7);
    assert_eq!(count(&plan, "cluster", Change::InPlace), 1);
    let text = plan::render::text(&plan);
    assert!(text.contains("Read-only"), "{text}");
    assert!(
        text.contains(&format!("backup-pilot onboard --cluster {cluster}")),
        "{text}"
    );
    assert_eq!(plan::render::json(&plan)["verdict"]["outcome"], "proceeds");

    chain.arm.clear_journal();
    chain.start_onboarding(&cluster, "g-1").await;
    chain.run_all().await;
    let ends = chain.ends();
    assert!(
        matches!(ends.as_slice(), [(_, Ok(s))] if s.starts_with("protected:")),
        "{ends:#?}"
    );
    assert_writes_match(&plan, &chain.arm.journal());

    // Protected: the plan is check_cluster's cheap check, and still reads only.
    chain.arm.clear_journal();
    let again = plan::plan(chain.ctx(), &id(&cluster)).await.unwrap();
    assert_eq!(writes(&chain.arm.journal()), Vec::<String>::new());
    match &again.verdict {
        Verdict::Ends { step, reason } => {
            assert_eq!(*step, "check_cluster");
            assert!(
                reason.starts_with("already protected and unchanged"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(again.items.is_empty());
}

#[tokio::test]
async fn a_second_cluster_in_the_shared_layout_reuses_what_is_in_place() {
    let settings = backup_pilot::workflow::settings::OnboardingSettings {
        layout: Layout::SharedPerRegion,
        ..poc()
    };
    let chain = Chain::new(settings).await;
    let first = chain.seed("shop", two_d2_nodes()).await;
    chain.start_onboarding(&first, "g-1").await;
    chain.run_all().await;
    let second = chain.seed("blog", two_d2_nodes()).await;

    chain.arm.clear_journal();
    let plan = plan::plan(chain.ctx(), &id(&second)).await.unwrap();
    assert_eq!(writes(&chain.arm.journal()), Vec::<String>::new());
    assert_eq!(plan.verdict, Verdict::Proceeds);
    assert_eq!(count(&plan, "provider", Change::InPlace), 2);
    // The shared group, account, container, vault and policy exist; the snapshot group is
    // per cluster.
    assert_eq!(count(&plan, "resource group", Change::InPlace), 1);
    assert_eq!(count(&plan, "resource group", Change::Create), 1);
    for kind in ["storage account", "backup vault", "backup policy"] {
        assert_eq!(count(&plan, kind, Change::InPlace), 1, "{kind}: {plan:#?}");
    }
    assert_eq!(count(&plan, "cluster extension", Change::Create), 1);
    assert_eq!(count(&plan, "backup instance", Change::Create), 1);
    // The vault's grants on the shared account are in place; the rest are new.
    assert_eq!(
        count(&plan, "role assignment", Change::InPlace),
        2,
        "{plan:#?}"
    );
    assert_eq!(count(&plan, "role assignment", Change::Create), 5);
    let vault = plan
        .items
        .iter()
        .find(|i| i.kind == "backup vault")
        .unwrap();
    assert!(vault.detail.starts_with("identity "), "{vault:?}");

    chain.arm.clear_journal();
    chain.start_onboarding(&second, "g-2").await;
    chain.run_all().await;
    assert_writes_match(&plan, &chain.arm.journal());
}

#[tokio::test]
async fn a_cluster_onboarding_stops_on_shows_the_reason_in_plan_and_status() {
    let chain = Chain::new(poc()).await;
    let cluster = chain.seed("tiny", one_b2_node()).await;
    chain.arm.clear_journal();
    let plan = plan::plan(chain.ctx(), &id(&cluster)).await.unwrap();
    assert_eq!(writes(&chain.arm.journal()), Vec::<String>::new());
    let Verdict::Stops { step, reason } = &plan.verdict else {
        panic!("{plan:#?}");
    };
    assert_eq!(*step, "ensure_cluster_prerequisites");
    assert!(
        reason.contains("az aks nodepool scale --resource-group rg-apps --cluster-name tiny --name system --node-count 2"),
        "{reason}"
    );
    assert_eq!(count(&plan, "cluster", Change::Blocked), 1);
    let text = plan::render::text(&plan);
    assert!(
        text.contains("Onboarding would stop at ensure_cluster_prerequisites"),
        "{text}"
    );

    // Onboarding fails at that step with that very reason.
    chain.start_onboarding(&cluster, "g-1").await;
    chain.run_all().await;
    let ends = chain.ends();
    assert_eq!(
        ends,
        vec![(
            "ensure_cluster_prerequisites".to_string(),
            Err(reason.clone())
        )]
    );

    // Status: the error, the fix apart from it, and the next step.
    let records = chain.journal.records();
    let statuses = ClusterStatus::fold_all(&records, 50);
    assert_eq!(statuses.len(), 1);
    let status = &statuses[0];
    assert_eq!(status.phase, Phase::Failed);
    let store = StoreInfo {
        kind: "memory",
        location: "test".into(),
        note: None,
    };
    let detail = render::cluster_text(&store, status);
    assert!(detail.contains("Phase:        failed"), "{detail}");
    assert!(
        detail.contains("Last error:   the backup extension needs about 500m CPU free"),
        "{detail}"
    );
    assert!(
        detail.contains("Fix:          scale to 2 nodes: `az aks nodepool scale --resource-group rg-apps --cluster-name tiny --name system --node-count 2`"),
        "{detail}"
    );
    assert!(
        detail.contains(&format!(
            "; then start onboarding again with `backup-pilot onboard --cluster {cluster}`"
        )),
        "{detail}"
    );
    let fleet = render::fleet_table(&store, &statuses);
    assert!(fleet.contains("1 failed"), "{fleet}");
    assert!(
        fleet.contains("next:  scale to 2 nodes: `az aks nodepool scale"),
        "{fleet}"
    );
    let json = render::cluster_json(&store, status);
    assert!(
        json["lastError"]["fix"]
            .as_str()
            .unwrap()
            .starts_with("scale to 2 nodes")
    );

    // The live view: nothing installed, and it says what to run; the cluster itself shows
    // neither the backup CRDs nor the extension's pods.
    let view = live::gather(chain.ctx(), &id(&cluster)).await.unwrap();
    assert_eq!(view.extension, Section::Shown(None));
    assert_eq!(view.backup_instances, Section::Shown(Vec::new()));
    assert!(
        view.problems
            .iter()
            .any(|p| p.problem == "the backup extension is not installed"
                && p.fix == format!("run: backup-pilot onboard --cluster {cluster}")),
        "{:#?}",
        view.problems
    );
    let Section::Shown(kubernetes) = &view.kubernetes else {
        panic!("{:?}", view.kubernetes);
    };
    assert!(
        !kubernetes.ready && kubernetes.pods.is_empty(),
        "{kubernetes:?}"
    );
    let text = render::live_text(&view);
    assert!(text.contains("Extension:          not installed"), "{text}");
}

/// A chain whose cluster is Entra-integrated with local accounts off, reached through
/// `listClusterUserCredential` and its Kubernetes stand-in (which accepts the issuer's tokens
/// for the AKS server app).
async fn chain_with_cluster_access(first_backup: bool) -> (Chain, KubeApiServer, String) {
    let settings = backup_pilot::workflow::settings::OnboardingSettings {
        first_backup,
        ..poc()
    };
    let chain = Chain::build(
        settings,
        backup_pilot_standins::token::TokenIssuer::new("operator-tests"),
        ArmStandIn::builder(),
    )
    .await;
    let cluster = chain
        .seed_cluster(
            ClusterSeed::new(SUB, RG, "shop", LOCATION)
                .with_node_pools(two_d2_nodes())
                .with_entra(EntraSeed::default(), true),
        )
        .await;
    assert_eq!(cluster, cluster_id("shop"));
    let kube = chain.kube(&cluster);
    (chain, kube, cluster)
}

#[tokio::test]
async fn the_live_view_shows_what_the_guides_command_reference_shows() {
    let (chain, kube, cluster) = chain_with_cluster_access(true).await;
    chain.start_onboarding(&cluster, "g-1").await;
    chain.run_all().await;
    let ends = chain.ends();
    assert!(
        matches!(ends.as_slice(), [(_, Ok(s))] if s.contains("first recovery point")),
        "{ends:#?}"
    );
    // The extension's pods as the Helm chart leaves them on small nodes.
    kube.install_extension(&ExtensionInstall {
        initial: PodState::Unschedulable {
            message: "0/2 nodes are available: 2 Insufficient cpu.".into(),
        },
        ready_after: None,
        ..ExtensionInstall::ready_after(Duration::ZERO)
    });

    chain.arm.clear_journal();
    let view = live::gather(chain.ctx(), &id(&cluster)).await.unwrap();
    let calls = writes(&chain.arm.journal());
    assert!(
        calls
            .iter()
            .all(|c| c.starts_with("POST ") && c.ends_with("/listClusterUserCredential")),
        "only reads (and the kubeconfig's read-only POST): {calls:?}"
    );
    // The kubeconfig the onboarding fetched is still fresh: the live view reuses it.
    assert_eq!(calls.len(), 0, "{calls:?}");

    let snapshot = chain.arm.snapshot();
    let installed = &snapshot.extensions[0];
    let Section::Shown(Some(extension)) = &view.extension else {
        panic!("{:?}", view.extension);
    };
    assert_eq!(extension.provisioning_state, "Succeeded");
    assert_eq!(extension.principal_id, installed.principal_id);
    let Section::Shown(instances) = &view.backup_instances else {
        panic!("{:?}", view.backup_instances);
    };
    assert_eq!(instances.len(), 1);
    let bi = &instances[0];
    assert_eq!(bi.protection_state, "ProtectionConfigured");
    assert!(bi.id.eq_ignore_ascii_case(&snapshot.backup_instances[0].id));
    let Section::Shown(points) = &bi.recovery_points else {
        panic!("{:?}", bi.recovery_points);
    };
    assert_eq!(points.len(), 1);
    let Section::Shown(jobs) = &bi.jobs else {
        panic!("{:?}", bi.jobs);
    };
    assert_eq!(jobs.len(), 1);
    assert_eq!(
        (jobs[0].operation.as_str(), jobs[0].status.as_str()),
        ("Backup", "Completed")
    );
    let Section::Shown(k) = &view.kubernetes else {
        panic!("{:?}", view.kubernetes);
    };
    assert!(k.crds.iter().all(|c| c.established), "{k:?}");
    assert_eq!(k.pods.len(), 2);
    assert!(!k.ready);
    assert_eq!(view.problems.len(), 1, "{:#?}", view.problems);
    assert!(
        view.problems[0].problem.contains("Insufficient cpu")
            && view.problems[0].problem.contains("nodes are too small"),
        "{:#?}",
        view.problems
    );
    let text = render::live_text(&view);
    for want in [
        "Extension:          azure-aks-backup Succeeded",
        "ProtectionConfigured",
        "Recovery points (newest first):",
        "Backup     Completed",
        "backuphooks.clusterbackup.dataprotection.microsoft.com established",
        "Extension pods:     0 of 2 Ready",
    ] {
        assert!(text.contains(want), "{want}:\n{text}");
    }

    // Once the pods are Ready, nothing needs a person.
    for pod in kube.pods("dataprotection-microsoft") {
        assert!(kube.set_pod_state(
            "dataprotection-microsoft",
            &pod,
            &PodState::Running { ready: true }
        ));
    }
    let view = live::gather(chain.ctx(), &id(&cluster)).await.unwrap();
    assert!(view.problems.is_empty(), "{:#?}", view.problems);
    let json = render::live_json(&view);
    assert_eq!(json["kubernetes"]["ready"], true);
    assert_eq!(
        json["backupInstances"][0]["protectionState"],
        "ProtectionConfigured"
    );
}

#[tokio::test]
async fn a_denied_look_into_the_cluster_names_the_role_to_grant() {
    let (chain, _kube, cluster) = chain_with_cluster_access(false).await;
    // The caller may not list the cluster's credentials.
    chain.arm.fail_next(
        "ManagedClusters_ListClusterUserCredentials",
        1,
        InjectedFailure {
            status: 403,
            code: "AuthorizationFailed".into(),
            message: format!(
                "The client 'operator' does not have authorization to perform action 'Microsoft.ContainerService/managedClusters/listClusterUserCredential/action' over scope '{cluster}' or the scope is invalid."
            ),
        },
    );
    let view = live::gather(chain.ctx(), &id(&cluster)).await.unwrap();
    let Section::Unavailable(u) = &view.kubernetes else {
        panic!("{:?}", view.kubernetes);
    };
    assert!(u.error.contains("403"), "{}", u.error);
    assert_eq!(
        u.fix.as_deref(),
        Some(
            format!(
                "run: az role assignment create --assignee \"$(az ad signed-in-user show --query id -o tsv)\" --role \"Azure Kubernetes Service Cluster User Role\" --scope {cluster}"
            )
            .as_str()
        )
    );
}

/// A subscription near its role-assignment limit (4,000 by default, anyone's assignments
/// counted) is refused before anything is created: `plan` stops at `check_cluster` with the
/// budget and the fix, and onboarding fails there with the same fix — no resource group, no
/// storage, no extension, no assignment — instead of failing mid-fleet with
/// `RoleAssignmentLimitExceeded`. With room for the cluster's seven, the plan shows the budget.
#[tokio::test]
async fn a_subscription_near_its_role_assignment_limit_is_refused_before_anything_is_created() {
    let chain = Chain::new(poc()).await;
    let cluster = chain.seed("shop", two_d2_nodes()).await;
    let used = chain.arm.role_assignment_count(SUB);
    // Room for 3 more: the guide's profile needs 7.
    chain
        .arm
        .seed_foreign_role_assignments(SUB, 4000 - 3 - used)
        .unwrap();
    assert_eq!(chain.arm.role_assignment_count(SUB), 3997);

    chain.arm.clear_journal();
    let plan = plan::plan(chain.ctx(), &id(&cluster)).await.unwrap();
    let Verdict::Stops { step, reason } = &plan.verdict else {
        panic!("{:?}", plan.verdict);
    };
    assert_eq!(*step, "check_cluster");
    assert!(
        reason.contains("holds 3997 of its 4000 role assignments")
            && reason.contains("needs up to 7 more"),
        "{reason}"
    );
    assert!(
        reason.contains("BACKUP_PILOT_VAULT_GRANT_SCOPE=subscription"),
        "{reason}"
    );
    assert_eq!(writes(&chain.arm.journal()), Vec::<String>::new());

    chain.start_onboarding(&cluster, "gen-1").await;
    chain.run_all().await;
    let ends = chain.ends();
    assert_eq!(ends.len(), 1, "{ends:#?}");
    let reason = ends[0].1.as_ref().expect_err("refused");
    assert!(reason.contains("role assignment budget"), "{reason}");
    assert!(reason.contains("Fix:"), "{reason}");
    let made = writes(&chain.arm.journal());
    assert_eq!(made, Vec::<String>::new(), "nothing was created");
    assert_eq!(chain.arm.role_assignment_count(SUB), 3997);

    // Room for all seven: the plan proceeds and shows the budget.
    let roomy = Chain::new(poc()).await;
    let other = roomy.seed("shop", two_d2_nodes()).await;
    let plan = plan::plan(roomy.ctx(), &id(&other)).await.unwrap();
    assert!(
        matches!(plan.verdict, Verdict::Proceeds),
        "{:?}",
        plan.verdict
    );
    let budget = plan
        .items
        .iter()
        .find(|i| i.kind == "role assignment budget")
        .expect("the budget is shown");
    assert_eq!(budget.change, Change::InPlace);
    assert!(
        budget
            .detail
            .ends_with("role assignments used; this cluster adds up to 7"),
        "{}",
        budget.detail
    );
}

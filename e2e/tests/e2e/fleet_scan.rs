//! Fleet sweeps against the ARM stand-in's Resource Graph: what a healthy fleet costs, that
//! exactly the drifted clusters get a repair, and that a sweep and an Event Grid event for
//! the same new cluster start one onboarding.

use crate::common;
use std::collections::BTreeSet;
use std::time::Duration;

use backup_pilot::clock::Clock as _;
use backup_pilot::envelope::Envelope;
use backup_pilot::fleet::scan::sweep;
use backup_pilot::status::store::StatusStore as _;
use backup_pilot::workflow::onboarding::onboard_start::{Start, start_onboarding};
use backup_pilot_standins::arm::seed_protection::ProtectionSeed;
use backup_pilot_standins::arm::{ArmStandIn, ClusterSeed, Drift, GraphSettings};
use backup_pilot_standins::token::TokenIssuer;
use common::chain::{Chain, LOCATION, RG, SUB, poc, two_d2_nodes};

const GRAPH_PATH: &str = "/providers/Microsoft.ResourceGraph/resources";

async fn chain() -> Chain {
    Chain::build(
        poc(),
        TokenIssuer::new("chain"),
        ArmStandIn::builder().resource_graph(GraphSettings {
            indexing_lag: Duration::ZERO,
            ..GraphSettings::default()
        }),
    )
    .await
}

/// Seeds `n` clusters as onboarding leaves them, each with a backup two hours old.
fn protected_fleet(chain: &Chain, n: usize) -> Vec<String> {
    let now = chain.clock.now();
    (0..n)
        .map(|i| {
            let id = chain
                .arm
                .add_cluster(ClusterSeed::new(SUB, RG, &format!("aks-{i:04}"), LOCATION))
                .unwrap()
                .id;
            let p = chain
                .arm
                .seed_protection(&ProtectionSeed::new(&id, &[]))
                .unwrap();
            chain
                .arm
                .add_scheduled_backup(&p.backup_instance_id, now - time::Duration::hours(2))
                .unwrap();
            id
        })
        .collect()
}

#[tokio::test]
async fn a_sweep_of_a_thousand_healthy_clusters_costs_two_queries_and_no_cluster_read_and_ten_drifted_get_ten_repairs()
 {
    let chain = chain().await;
    let ids = protected_fleet(&chain, 1000);

    let before = chain.arm.journal().len();
    let report = sweep(&chain.engine, true).await.unwrap();
    let sent: Vec<_> = chain.arm.journal().into_iter().skip(before).collect();
    assert_eq!(report.queries, 2, "{}", report.summary());
    assert_eq!(
        sent.len(),
        2,
        "two requests, no per-cluster read: {sent:#?}"
    );
    assert!(
        sent.iter()
            .all(|r| r.method == "POST" && r.path.eq_ignore_ascii_case(GRAPH_PATH)),
        "{sent:#?}"
    );
    assert_eq!(report.findings.len(), 1000);
    assert_eq!(report.count("healthy"), 1000, "{}", report.summary());
    assert!(report.started.is_empty());
    assert!(chain.bus.queued().is_empty(), "nothing enqueued");

    // Ten clusters drift, two in each way the stand-in knows.
    let mut broken = BTreeSet::new();
    for (i, id) in ids.iter().step_by(100).enumerate() {
        chain
            .arm
            .break_protection(id, Drift::ALL[i % Drift::ALL.len()])
            .unwrap();
        broken.insert(id.to_ascii_lowercase());
    }
    assert_eq!(broken.len(), 10);
    let before = chain.arm.journal().len();
    let report = sweep(&chain.engine, true).await.unwrap();
    assert_eq!(report.queries, 2, "{}", report.summary());
    assert_eq!(chain.arm.journal().len() - before, 2);
    assert_eq!(report.count("drifted"), 10, "{}", report.summary());
    let started: BTreeSet<String> = report
        .started
        .iter()
        .map(|(cluster, _, what)| {
            assert_eq!(*what, "repair");
            cluster.to_ascii_lowercase()
        })
        .collect();
    assert_eq!(started, broken, "exactly the drifted clusters");
    let queued: BTreeSet<String> = chain
        .bus
        .queued()
        .iter()
        .map(|m| {
            let env = Envelope::decode(&m.body).unwrap();
            assert!(env.payload.contains_key("repair"), "{:?}", env.payload);
            env.subject.to_ascii_lowercase()
        })
        .collect();
    assert_eq!(queued, broken, "one repair message per drifted cluster");
    for id in &broken {
        let status = chain.journal.cluster_status(id).await.unwrap().unwrap();
        let drift = status.drift.expect("the drift is in the status");
        assert!(drift.causes.starts_with("drift: "), "{}", drift.causes);
        assert!(drift.repaired_at.is_none());
    }
}

#[tokio::test]
async fn a_sweep_and_an_event_for_the_same_new_cluster_start_one_workflow_in_either_order() {
    let chain = chain().await;
    let swept_first = chain.seed("orders", two_d2_nodes()).await;
    let event_first = chain.seed("billing", two_d2_nodes()).await;
    let event = |cluster: &str| {
        let mut payload = serde_json::Map::new();
        payload.insert("clusterId".into(), cluster.into());
        payload
    };

    // The event for `billing` arrives first.
    assert!(matches!(
        start_onboarding(
            &chain.engine,
            &event_first,
            "corr-billing",
            event(&event_first)
        )
        .await
        .unwrap(),
        Start::Started(_)
    ));
    // The sweep starts `orders` and finds `billing` under way.
    let report = sweep(&chain.engine, true).await.unwrap();
    assert_eq!(report.count("unprotected"), 2, "{}", report.summary());
    let started: Vec<&str> = report.started.iter().map(|(c, _, _)| c.as_str()).collect();
    assert_eq!(started, [swept_first.as_str()]);
    assert_eq!(report.already_running, std::slice::from_ref(&event_first));
    // Then the event for `orders` arrives: under way.
    assert!(matches!(
        start_onboarding(
            &chain.engine,
            &swept_first,
            "corr-orders",
            event(&swept_first)
        )
        .await
        .unwrap(),
        Start::AlreadyRunning { .. }
    ));

    chain.run_all().await;
    for cluster in [&swept_first, &event_first] {
        let workflows: BTreeSet<String> = chain
            .journal
            .records()
            .iter()
            .filter(|r| r.subject.eq_ignore_ascii_case(cluster))
            .map(|r| r.workflow_id.clone())
            .collect();
        assert_eq!(workflows.len(), 1, "{cluster}: {workflows:?}");
    }
    let ends = chain.ends();
    assert_eq!(ends.len(), 2, "{ends:#?}");
    assert!(ends.iter().all(|(_, e)| e.is_ok()), "{ends:#?}");

    // Once protected, the next sweep finds both healthy and starts nothing.
    chain.clock.advance(Duration::from_secs(60));
    let report = sweep(&chain.engine, true).await.unwrap();
    assert!(report.started.is_empty(), "{}", report.summary());
}

#[tokio::test]
async fn a_start_that_died_between_its_claim_and_its_first_message_is_not_lost() {
    let chain = chain().await;
    let cluster = chain.seed("orders", two_d2_nodes()).await;
    let key = format!("onboarding/{}", backup_pilot::status::cluster_key(&cluster));
    let payload = || {
        let mut p = serde_json::Map::new();
        p.insert("clusterId".into(), cluster.clone().into());
        p
    };
    // The event's first delivery claimed the cluster and died before publishing.
    let ours = backup_pilot::envelope::workflow_id(
        backup_pilot::envelope::WorkflowKind::Onboard,
        &cluster,
        "corr-1",
    );
    chain
        .journal
        .claim(&key, chain.clock.now(), &ours)
        .await
        .unwrap();
    // Its redelivery publishes the first message.
    assert!(matches!(
        start_onboarding(&chain.engine, &cluster, "corr-1", payload())
            .await
            .unwrap(),
        Start::Started(_)
    ));
    assert_eq!(chain.bus.queued().len(), 1);

    // A sweep's start that died the same way blocks another starter for a while, then not.
    let other = chain.seed("billing", two_d2_nodes()).await;
    let key = format!("onboarding/{}", backup_pilot::status::cluster_key(&other));
    chain
        .journal
        .claim(&key, chain.clock.now(), "a-dead-sweep")
        .await
        .unwrap();
    let mut p = serde_json::Map::new();
    p.insert("clusterId".into(), other.clone().into());
    assert!(matches!(
        start_onboarding(&chain.engine, &other, "corr-2", p.clone())
            .await
            .unwrap(),
        Start::AlreadyRunning { .. }
    ));
    chain.clock.advance(Duration::from_secs(31 * 60));
    assert!(matches!(
        start_onboarding(&chain.engine, &other, "corr-2", p)
            .await
            .unwrap(),
        Start::Started(_)
    ));
}

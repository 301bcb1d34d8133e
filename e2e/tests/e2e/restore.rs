//! Message-triggered restores end to end: a request through the real `restore-requests`
//! handler, the step engine, the product's ARM client and ARM-kubeconfig cluster access, the
//! strict ARM stand-in (which plays the restore in the target cluster's Kubernetes stand-in),
//! on one manual clock. Covers a restore into an alternate namespace on another cluster, the
//! missing namespace created first, a restore that "completes" with nothing (failed), an
//! unauthorized target (refused with its reason), and an invalid request (every problem).

use crate::{common, support};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use backup_pilot::bus::Queues;
use backup_pilot::engine::journal::Transition;
use backup_pilot::envelope::Envelope;
use backup_pilot::restore::authorize::RestoreAllowlist;
use backup_pilot::restore::report::ReportKind;
use backup_pilot::restore::settings::RestoreSettings;
use backup_pilot::restore::store::{MemoryReportStore, ReportStore};
use backup_pilot_standins::kube_api::restore::RestoreKnobs;

use common::restore_env::RestoreEnv;

fn settings() -> RestoreSettings {
    RestoreSettings {
        allowlist: RestoreAllowlist::from_json(
            r#"[{"cluster": "/subscriptions/6f1b4e6a-2d9c-4b7e-9a51-3c0f8e2d7a10/resourceGroups/rg-dr/*", "namespaces": ["app-*", "restored"]}]"#,
        )
        .unwrap(),
        ..RestoreSettings::default()
    }
}

async fn env() -> (RestoreEnv, Arc<MemoryReportStore>) {
    let reports = Arc::new(MemoryReportStore::default());
    (RestoreEnv::new(settings(), reports.clone()).await, reports)
}

fn request(env: &RestoreEnv, target_namespace: &str) -> Value {
    json!({
        "requestId": "ticket-4711",
        "requestedBy": "oncall@example.com",
        "sourceClusterId": env.prod.id,
        "targetClusterId": env.dr.id,
        "recoveryPoint": "latest",
        "includedNamespaces": ["app"],
        "namespaceMappings": {"app": target_namespace},
        "conflictPolicy": "Skip",
        "persistentVolumeRestoreMode": "RestoreWithVolumeData"
    })
}

#[tokio::test]
async fn a_restore_into_an_alternate_namespace_on_another_cluster_comes_back_verified() {
    let (env, reports) = env().await;
    assert!(!env.dr.kube.namespace_exists("app-restored"));
    let (status, answer) = env
        .request_restore(&request(&env, "app-restored"), "msg-1")
        .await;
    assert_eq!(status, 200, "{answer}");
    env.run_all().await;

    let ends = env.ends();
    assert_eq!(ends.len(), 1, "{ends:#?}");
    let (step, end) = &ends[0];
    assert_eq!(step, "restore_report");
    let summary = end.as_ref().expect("the restore succeeded");
    assert!(summary.contains("restore pass (Completed)"), "{summary}");
    assert!(summary.contains("app-restored"), "{summary}");

    // The workload is back, in the mapped namespace of the other cluster.
    assert_eq!(env.dr.kube.pods("app-restored"), vec!["web-0", "web-1"]);
    assert!(
        env.dr
            .kube
            .object("", "persistentvolumeclaims", "app-restored", "web-data")
            .is_some()
    );
    assert!(
        env.dr.kube.pods("app").is_empty(),
        "nothing in the unmapped name"
    );

    // The missing namespace was created by the service before the restore ran.
    let created = env
        .dr
        .kube
        .object("", "namespaces", "", "app-restored")
        .unwrap();
    assert_eq!(
        created["metadata"]["labels"]["app.kubernetes.io/managed-by"], "backup-pilot",
        "{created}"
    );
    let steps = env.steps();
    let position = |s: &str| steps.iter().position(|x| x == s).unwrap();
    assert!(position("restore_namespaces") < position("restore_trigger"));
    let calls = env.arm_calls();
    let validations = calls
        .iter()
        .filter(|(m, p)| m == "POST" && p.ends_with("/validateRestore"))
        .count();
    assert!(
        validations >= 2,
        "the first validation ran before the new roles took effect and was repeated: {validations}"
    );
    assert_eq!(
        calls
            .iter()
            .filter(|(m, p)| m == "POST" && p.ends_with("/restore"))
            .count(),
        1,
        "one restore, even though role propagation made validation wait"
    );

    // The target got trusted access and the restore roles from the service.
    let snapshot = env.arm.snapshot();
    assert!(
        snapshot
            .role_assignments
            .iter()
            .any(|a| a.scope.eq_ignore_ascii_case(&env.dr.id)),
        "the vault's Reader on the target cluster"
    );

    // Published and recorded.
    let results = env.results();
    assert_eq!(results.len(), 1);
    let result = &results[0];
    assert_eq!(result["verdict"], "pass");
    assert_eq!(result["requestId"], "ticket-4711");
    assert_eq!(result["recoveryPointId"], env.recovery_point.as_str());
    assert!(result["rtoSeconds"].as_u64().unwrap() > 0);
    let history = reports
        .history(ReportKind::Restore, &env.prod.id, 10)
        .await
        .unwrap();
    assert_eq!(history.len(), 1);
    let report = &reports.reports()[0];
    assert_eq!(report.namespaces[0].target, "app-restored");
    let contents = report.namespaces[0].contents.unwrap();
    assert_eq!((contents.pods, contents.pods_ready), (2, 2));
    assert!(
        report.findings.iter().any(|f| f
            .message
            .contains("created namespace(s) app-restored before the restore")),
        "{:?}",
        report.findings
    );
}

#[tokio::test]
async fn a_restore_that_completes_with_nothing_restored_is_reported_failed() {
    let (env, reports) = env().await;
    env.arm
        .set_restore_knobs(
            &env.dr.id,
            RestoreKnobs {
                max_items: Some(0),
                ..RestoreKnobs::default()
            },
        )
        .unwrap();
    env.request_restore(&request(&env, "app-empty"), "msg-2")
        .await;
    env.run_all().await;

    let ends = env.ends();
    assert_eq!(ends.len(), 1, "{ends:#?}");
    let reason = ends[0].1.as_ref().expect_err("a 0-resource restore fails");
    assert!(
        reason.contains("hold no restored resources")
            && reason.contains("although the job reports success"),
        "{reason}"
    );
    let report = &reports.reports()[0];
    assert_eq!(report.job.as_ref().unwrap().status_text, "Completed");
    assert_eq!(report.verdict.as_str(), "fail");
    assert_eq!(env.results()[0]["verdict"], "fail");
}

#[tokio::test]
async fn an_unauthorized_target_is_refused_with_the_reason_and_nothing_is_restored() {
    let (env, reports) = env().await;
    let mut bad = request(&env, "kube-system");
    bad["namespaceMappings"] = json!({"app": "kube-system"});
    env.request_restore(&bad, "msg-3").await;
    let mut other = request(&env, "prod-copy");
    other["requestId"] = json!("ticket-4712");
    env.request_restore(&other, "msg-4").await;
    env.run_all().await;

    let ends = env.ends();
    assert_eq!(ends.len(), 2, "{ends:#?}");
    let reasons: Vec<&String> = ends.iter().filter_map(|(_, e)| e.as_ref().err()).collect();
    assert_eq!(reasons.len(), 2);
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("kube-system is a system namespace")),
        "{reasons:#?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("namespace prod-copy")
                && r.contains("not an allowed restore target")),
        "{reasons:#?}"
    );
    assert!(
        !env.arm_calls()
            .iter()
            .any(|(m, p)| m == "POST"
                && (p.ends_with("/restore") || p.ends_with("/validateRestore"))),
        "refused before anything was sent to the vault"
    );
    assert!(!env.dr.kube.namespace_exists("prod-copy"));
    let results = env.results();
    assert!(results.iter().all(|r| r["verdict"] == "fail"));
    assert!(results.iter().any(|r| {
        r["reasons"]
            .to_string()
            .contains("BACKUP_PILOT_RESTORE_ALLOWLIST")
    }));
    assert_eq!(reports.reports().len(), 2, "refusals are reported too");
}

#[tokio::test]
async fn an_invalid_request_is_dead_lettered_with_every_problem() {
    let (env, _) = env().await;
    let (status, answer) = env
        .request_restore(
            &json!({"includedNamespaces": ["App"], "conflictPolicy": "Overwrite"}),
            "msg-5",
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let letters = env.bus.sent_to(&Queues::default().dead_letters);
    assert_eq!(letters.len(), 1);
    let description = letters[0]
        .properties
        .iter()
        .find(|(k, _)| k.to_ascii_lowercase().contains("description"))
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    for expected in [
        "sourceClusterId or backupInstanceId",
        "/includedNamespaces/0",
        "/conflictPolicy",
    ] {
        assert!(description.contains(expected), "{expected}: {description}");
    }
    let results = env.results();
    assert_eq!(results[0]["verdict"], "rejected");
    assert_eq!(results[0]["reasons"].as_array().unwrap().len(), 3);
    env.run_all().await;
    assert!(env.ends().is_empty(), "no workflow started");
}

/// A workflow replayed from its first message long after it finished (a duplicate delivery
/// past Service Bus's duplicate-detection window) adopts the restore its first run sent: the
/// trigger's claim names when it was made, and a job started since then is the claim's.
#[tokio::test]
async fn a_restore_replayed_after_it_finished_is_not_sent_twice() {
    let (env, _reports) = env().await;
    env.request_restore(&request(&env, "app-restored"), "msg-replay")
        .await;
    let first = env
        .bus
        .sent_to(&Queues::default().workflow)
        .first()
        .cloned()
        .expect("the first step's message");
    env.run_all().await;
    let posts = |env: &RestoreEnv| {
        env.arm_calls()
            .iter()
            .filter(|(m, p)| m == "POST" && p.ends_with("/restore"))
            .count()
    };
    assert_eq!(posts(&env), 1);
    env.clock.advance(Duration::from_secs(3 * 60 * 60));
    env.bus.forget_message_ids();
    let replay = Envelope::decode(&first.body).unwrap();
    let report = env.engine.run(&replay).await.unwrap();
    assert!(
        matches!(report.transition, Transition::Skipped { .. }),
        "the replay of an ended workflow runs nothing: {report:?}"
    );
    env.run_all().await;
    assert_eq!(env.ends().len(), 1, "{:#?}", env.ends());
    assert_eq!(
        posts(&env),
        1,
        "the replay adopted the first run's restore job"
    );
}

/// Every step survives a crash after its calls and before its publish (the message comes back
/// after the 5-minute lock): one restore is triggered, the result is the same, and every
/// request the product sent conforms to the published specs.
#[tokio::test]
async fn a_restore_survives_a_crash_after_every_step_and_its_traffic_conforms() {
    let (env, reports) = env().await;
    env.request_restore(&request(&env, "app-restored"), "msg-6")
        .await;
    env.run_all_crashing(Duration::from_secs(5 * 60)).await;
    let ends = env.ends();
    let last = ends.last().expect("the restore ended");
    assert!(
        last.1.as_ref().is_ok_and(|s| s.contains("restore pass")),
        "{ends:#?}"
    );
    assert_eq!(
        env.arm_calls()
            .iter()
            .filter(|(m, p)| m == "POST" && p.ends_with("/restore"))
            .count(),
        1,
        "the crashed trigger's job was adopted, not restored twice"
    );
    assert_eq!(env.dr.kube.pods("app-restored"), vec!["web-0", "web-1"]);
    assert_eq!(
        env.results().len(),
        1,
        "one result, whatever the redeliveries"
    );
    assert_eq!(
        reports.reports().len(),
        1,
        "the report was rewritten, not duplicated"
    );

    let specs = match support::openapi::shared_specs(common::shared_dir()) {
        Ok(specs) => specs,
        Err(why) => {
            common::skipped(&why);
            return;
        }
    };
    let records = env.arm.journal();
    let report = support::openapi::check_journal(specs, &records);
    assert!(report.is_conformant(), "{report}");
}

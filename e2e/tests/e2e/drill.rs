//! Restore drills end to end: the `restore-drills` timer through the real handler starts a
//! drill per protected cluster of the configured vault; the drill restores the newest
//! recovery point into scratch namespaces on the same cluster, verifies the workload, always
//! deletes the scratch namespaces (failures included), and writes its evidence report (JSON and
//! HTML) to Blob storage — Azurite here — which the status endpoint then lists.

use crate::common;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use backup_pilot::clock::Clock as _;
use backup_pilot::engine::Engine;
use backup_pilot::restore::report::EvidenceReport;
use backup_pilot::restore::settings::RestoreSettings;
use backup_pilot::restore::store::{BlobReportStore, MemoryReportStore, ReportStore};
use backup_pilot::restore::verify::Verdict;
use backup_pilot::status::account_sas::AccountKey;
use backup_pilot::status::blob::{BlobContainer, StorageAuth};
use backup_pilot::workflow;
use backup_pilot::workflow::Ctx;
use backup_pilot_standins::arm::{ClusterSeed, InjectedFailure, ProtectionSeed};
use backup_pilot_standins::kube_api::restore::RestoreKnobs;

use backup_pilot_standins::kube_api::KubeApiServer;
use common::restore_env::{LOCATION, RestoreEnv, SUB, invoke_engine, web};

/// The scratch namespace of `app` on the environment's first day.
const SCRATCH: &str = "drill-app-20260302";

fn blob_container(url: &str) -> BlobContainer {
    let container = format!(
        "drills-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    BlobContainer::new(
        &url.parse().unwrap(),
        &container,
        StorageAuth::AccountKey(AccountKey::azurite()),
    )
    .unwrap()
    .with_transport(crate::common::blob_transport())
}

/// The next restore is refused after the scratch namespace exists (a CRD mismatch).
fn refuse_next_restore(env: &RestoreEnv) {
    env.arm.fail_next(
        "BackupInstances_TriggerRestore",
        1,
        InjectedFailure {
            status: 400,
            code: "UserErrorSourceandTargetClusterCRDVersionMismatch".into(),
            message: "The CRD versions of the source and target cluster differ.".into(),
        },
    );
}

/// Restored pods stay ContainerCreating.
fn restored_pods_never_ready(env: &RestoreEnv) {
    env.arm
        .set_restore_knobs(
            &env.prod.id,
            RestoreKnobs {
                pods_ready_after: None,
                ..RestoreKnobs::default()
            },
        )
        .unwrap();
}

/// `n` restores of the protected instance, one an hour over the last `n` hours.
fn restored_in_the_last_hours(env: &RestoreEnv, n: i64) {
    for hours in 1..=n {
        env.arm
            .add_past_restore(
                &env.protection.backup_instance_id,
                env.clock.now() - time::Duration::hours(hours),
            )
            .unwrap();
    }
}

#[tokio::test]
async fn a_drill_writes_its_report_to_azurite_and_leaves_no_scratch_namespace() {
    let Some(azurite) = common::azurite::azurite() else {
        return;
    };
    let reports = Arc::new(BlobReportStore::new(blob_container(&azurite.url)));
    let env = RestoreEnv::new(RestoreSettings::default(), reports.clone()).await;
    let (status, answer) = env.fire_drill_timer().await;
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer.to_string().contains("1 drill(s) started"),
        "{answer}"
    );
    env.run_all().await;

    let ends = env.ends();
    assert_eq!(ends.len(), 1, "{ends:#?}");
    let summary = ends[0].1.as_ref().expect("the drill passed");
    assert!(
        summary.starts_with("restore drill pass (Completed)"),
        "{summary}"
    );
    assert!(
        !env.prod.kube.namespace_exists(SCRATCH),
        "the scratch namespace is gone"
    );
    assert_eq!(
        env.prod.kube.pods("app"),
        vec!["web-0", "web-1"],
        "the real namespace is untouched"
    );

    // The report is in Azurite, JSON and HTML, and says what happened.
    let history = reports
        .history(
            backup_pilot::restore::report::ReportKind::Drill,
            &env.prod.id,
            10,
        )
        .await
        .unwrap();
    assert_eq!(history.len(), 1);
    let run = &history[0];
    assert_eq!(run.verdict, Verdict::Pass);
    assert!(
        run.report.json.starts_with(&azurite.url),
        "{}",
        run.report.json
    );
    let blobs = blob_client_for(&run.report.json);
    let json_name = blob_name(&run.report.json);
    let (bytes, _) = blobs
        .read(&json_name)
        .await
        .unwrap()
        .expect("the JSON report");
    let report: EvidenceReport = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(report.namespaces[0].target, SCRATCH);
    let contents = report.namespaces[0].contents.unwrap();
    assert_eq!(
        (contents.pods, contents.pods_ready, contents.pvcs_bound),
        (2, 2, 1)
    );
    assert_eq!(report.cleanup.as_ref().unwrap().deleted, vec![SCRATCH]);
    assert!(report.cleanup.as_ref().unwrap().left_behind.is_empty());
    assert!(report.rto_seconds.unwrap() > 0);
    assert_eq!(
        report.recovery_point.as_ref().unwrap().id,
        env.recovery_point
    );
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.message.contains("is 2 h old, within the policy's 24 h")),
        "{:?}",
        report.findings
    );
    let (page, _) = blobs
        .read(&blob_name(&run.report.html))
        .await
        .unwrap()
        .expect("the HTML report");
    let page = String::from_utf8(page).unwrap();
    assert!(page.contains("PASS") && page.contains(SCRATCH), "{page}");

    // The status endpoint lists the drill.
    let (code, body) = env.status(&env.prod.id).await;
    assert_eq!(code, 200, "{body}");
    let listed = &body["drillHistory"];
    assert_eq!(listed.as_array().unwrap().len(), 1, "{body}");
    assert_eq!(listed[0]["verdict"], "pass");
    assert_eq!(listed[0]["report"]["html"], run.report.html.as_str());
    assert!(!body.to_string().contains("sig="), "no SAS in the answer");
}

fn blob_client_for(url: &str) -> BlobContainer {
    // http://127.0.0.1:port/devstoreaccount1/<container>/<name>
    let mut parts = url.splitn(6, '/');
    let scheme = parts.next().unwrap();
    parts.next();
    let host = parts.next().unwrap();
    let account = parts.next().unwrap();
    let container = parts.next().unwrap();
    BlobContainer::new(
        &format!("{scheme}//{host}/{account}").parse().unwrap(),
        container,
        StorageAuth::AccountKey(AccountKey::azurite()),
    )
    .unwrap()
    .with_transport(crate::common::blob_transport())
}

fn blob_name(url: &str) -> String {
    url.splitn(6, '/').nth(5).unwrap().to_string()
}

#[tokio::test]
async fn a_failing_drill_still_cleans_up_and_reports() {
    let reports = Arc::new(MemoryReportStore::default());
    let env = RestoreEnv::new(RestoreSettings::default(), reports.clone()).await;
    // The restore is refused after the scratch namespace exists.
    refuse_next_restore(&env);
    env.fire_drill_timer().await;
    env.run_all().await;

    let ends = env.ends();
    assert_eq!(ends.len(), 1, "{ends:#?}");
    let reason = ends[0].1.as_ref().expect_err("the drill failed");
    assert!(reason.contains("CRDVersionMismatch"), "{reason}");
    let steps = env.steps();
    assert!(
        steps.contains(&"restore_namespaces".to_string()),
        "{steps:?}"
    );
    assert!(steps.contains(&"drill_cleanup".to_string()), "{steps:?}");
    assert!(!env.prod.kube.namespace_exists(SCRATCH));
    let report = &reports.reports()[0];
    assert_eq!(report.verdict, Verdict::Fail);
    assert!(
        report
            .aborted
            .as_ref()
            .unwrap()
            .starts_with("restore_trigger")
    );
    assert_eq!(report.cleanup.as_ref().unwrap().deleted, vec![SCRATCH]);
}

/// A step message that comes back after its drill ended (its lock was lost mid-invocation and
/// Service Bus redelivered it, past the duplicate-detection window) is not run: the scratch
/// namespace the cleanup deleted is not created again, where nothing would ever delete it.
#[tokio::test]
async fn a_step_redelivered_after_the_drill_ended_recreates_no_scratch_namespace() {
    let reports = Arc::new(MemoryReportStore::default());
    let env = RestoreEnv::new(RestoreSettings::default(), reports.clone()).await;
    env.fire_drill_timer().await;
    env.run_all().await;
    assert_eq!(env.ends().len(), 1, "{:#?}", env.ends());
    assert!(!env.prod.kube.namespace_exists(SCRATCH));
    let late = env
        .delivered("restore_namespaces")
        .expect("the drill's restore_namespaces message");
    env.clock.advance(Duration::from_secs(60 * 60));
    env.bus.forget_message_ids();
    let report = env.engine.run(&late).await.unwrap();
    assert!(
        matches!(
            &report.transition,
            backup_pilot::engine::journal::Transition::Skipped { reason }
                if reason.contains("ended") && reason.contains("was not run")
        ),
        "{report:?}"
    );
    env.run_all().await;
    assert!(
        !env.prod.kube.namespace_exists(SCRATCH),
        "the late delivery recreated the scratch namespace"
    );
    assert_eq!(env.ends().len(), 1, "nothing ran after the end");
    assert_eq!(reports.reports().len(), 1, "one report");
}

/// The timer fired again the same day (a second schedule entry, a manual run) after the
/// first drill ended and Service Bus forgot its message ids: the cluster is not drilled again,
/// and the answer says why.
#[tokio::test]
async fn a_second_timer_run_the_same_day_does_not_drill_again() {
    let reports = Arc::new(MemoryReportStore::default());
    let env = RestoreEnv::new(RestoreSettings::default(), reports.clone()).await;
    env.fire_drill_timer().await;
    env.run_all().await;
    assert_eq!(env.ends().len(), 1, "{:#?}", env.ends());
    env.clock.advance(Duration::from_secs(60 * 60));
    env.bus.forget_message_ids();
    let (status, answer) = env.fire_drill_timer().await;
    assert_eq!(status, 200, "{answer}");
    let text = answer.to_string();
    assert!(
        text.contains("0 drill(s) started") && text.contains("1 already drilled today"),
        "{answer}"
    );
    assert!(
        text.contains("not drilled again today") && text.contains("has ended"),
        "{answer}"
    );
    env.run_all().await;
    assert_eq!(env.ends().len(), 1, "no second drill: {:#?}", env.ends());
    assert_eq!(reports.reports().len(), 1);
    let (_, body) = env.status(&env.prod.id).await;
    assert_eq!(body["lastDrill"]["outcome"], "succeeded", "{body}");
}

#[tokio::test]
async fn a_drill_that_restores_nothing_fails_and_cleans_up() {
    let reports = Arc::new(MemoryReportStore::default());
    let env = RestoreEnv::new(RestoreSettings::default(), reports.clone()).await;
    env.arm
        .set_restore_knobs(
            &env.prod.id,
            RestoreKnobs {
                max_items: Some(0),
                ..RestoreKnobs::default()
            },
        )
        .unwrap();
    env.fire_drill_timer().await;
    env.run_all().await;
    let reason = env.ends()[0].1.clone().expect_err("nothing came back");
    assert!(reason.contains("hold no restored resources"), "{reason}");
    assert!(!env.prod.kube.namespace_exists(SCRATCH));
    assert_eq!(reports.reports()[0].velero_phase, "Failed");
}

#[tokio::test]
async fn a_stale_newest_recovery_point_degrades_the_drill() {
    let reports = Arc::new(MemoryReportStore::default());
    let env = RestoreEnv::new(RestoreSettings::default(), reports.clone()).await;
    // No backup for 30 hours against a daily policy (+2 h window).
    env.clock.advance(Duration::from_secs(28 * 3600));
    env.fire_drill_timer().await;
    env.run_all().await;
    let summary = env.ends()[0].1.clone().expect("degraded is not failed");
    assert!(
        summary.starts_with("restore drill degraded (PartiallyFailed)"),
        "{summary}"
    );
    assert!(
        summary.contains("scheduled backups are missing"),
        "{summary}"
    );
    let scratch = format!("drill-app-{}", "20260303");
    assert!(!env.prod.kube.namespace_exists(&scratch));
    assert_eq!(reports.reports()[0].verdict, Verdict::Degraded);
}

/// A healthy drill scores 100 out of 100, each check against what the run measured — the
/// resources against the source namespace's inventory — and the score is in the report, its
/// HTML, the result message and the workflow's summary.
#[tokio::test]
async fn a_healthy_drill_scores_100_with_every_check_measured() {
    let reports = Arc::new(MemoryReportStore::default());
    let env = RestoreEnv::new(RestoreSettings::default(), reports.clone()).await;
    env.fire_drill_timer().await;
    env.run_all().await;
    let report = &reports.reports()[0];
    let score = report.score.as_ref().expect("a scored report");
    assert_eq!(score.total, 100, "{score:#?}");
    let names: Vec<&str> = score.checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "restore",
            "resources",
            "podsReady",
            "volumes",
            "application",
            "references",
            "rpo",
            "rto"
        ]
    );
    let references = score
        .checks
        .iter()
        .find(|c| c.name == "references")
        .unwrap();
    // Each web pod names its config map and runs as the namespace's default service account.
    assert_eq!(
        references.detail, "2 of 2 reference(s) resolve",
        "{references:#?}"
    );
    assert!(
        score.checks[1]
            .detail
            .contains("6 of 6 source resource(s) restored"),
        "{:#?}",
        score.checks[1]
    );
    assert!(report.to_html().contains("<strong>100/100</strong>"));
    let summary = env.ends()[0].1.clone().expect("passed");
    assert!(summary.contains("score 100/100"), "{summary}");
    assert_eq!(env.results()[0]["score"]["total"], 100);
}

/// Restored pods that never become Ready cost the `podsReady` check: the drill scores below
/// the pass threshold and is degraded, and the report names the check that lost points.
#[tokio::test]
async fn a_drill_whose_pods_never_become_ready_scores_below_the_pass_threshold() {
    let reports = Arc::new(MemoryReportStore::default());
    let env = RestoreEnv::new(RestoreSettings::default(), reports.clone()).await;
    restored_pods_never_ready(&env);
    env.fire_drill_timer().await;
    env.run_all().await;
    let report = &reports.reports()[0];
    let score = report.score.as_ref().unwrap();
    assert!(score.total < score.pass_threshold, "{score:#?}");
    assert_eq!(score.total, 80, "{score:#?}");
    let pods = score.checks.iter().find(|c| c.name == "podsReady").unwrap();
    assert_eq!(
        (pods.earned, pods.detail.as_str()),
        (0, "0 of 2 pod(s) Ready")
    );
    assert_eq!(report.verdict, Verdict::Degraded);
    let summary = env.ends()[0].1.clone().expect("degraded is not failed");
    assert!(
        summary.contains("score 80/100 (lost: podsReady 0/20)"),
        "{summary}"
    );
}

/// A stricter pass threshold turns the same run into a failure, and says why.
#[tokio::test]
async fn the_thresholds_come_from_the_settings() {
    let reports = Arc::new(MemoryReportStore::default());
    let settings = RestoreSettings::from_lookup(|k| match k {
        "BACKUP_PILOT_DRILL_PASS_SCORE" => Some("95".into()),
        "BACKUP_PILOT_DRILL_DEGRADED_SCORE" => Some("90".into()),
        _ => None,
    })
    .unwrap();
    let env = RestoreEnv::new(settings, reports.clone()).await;
    restored_pods_never_ready(&env);
    env.fire_drill_timer().await;
    env.run_all().await;
    let reason = env.ends()[0]
        .1
        .clone()
        .expect_err("below the degraded threshold");
    assert!(
        reason.contains("score 80/100 (lost: podsReady 0/20) is below the degraded threshold (90)"),
        "{reason}"
    );
    assert_eq!(reports.reports()[0].verdict, Verdict::Fail);
}

/// The scratch namespace is isolated before anything is restored into it: a deny-all network
/// policy (every pod, ingress and egress) and an object-count quota with no load balancer or
/// node port, both older than the first restored pod; the cleanup takes them with the
/// namespace.
#[tokio::test]
async fn the_scratch_namespace_is_isolated_before_the_restore() {
    let reports = Arc::new(MemoryReportStore::default());
    let env = RestoreEnv::new(RestoreSettings::default(), reports.clone()).await;
    env.fire_drill_timer().await;
    env.run_through("restore_verify").await;
    let kube = &env.prod.kube;
    let policy = kube
        .object(
            "networking.k8s.io",
            "networkpolicies",
            SCRATCH,
            "backup-pilot-drill-deny-all",
        )
        .expect("the network policy");
    assert_eq!(policy["spec"]["podSelector"], json!({}), "{policy}");
    assert_eq!(policy["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    assert!(policy["spec"].get("ingress").is_none() && policy["spec"].get("egress").is_none());
    let quota = kube
        .object("", "resourcequotas", SCRATCH, "backup-pilot-drill-quota")
        .expect("the quota");
    assert_eq!(quota["spec"]["hard"]["services.loadbalancers"], "0");
    assert_eq!(quota["spec"]["hard"]["services.nodeports"], "0");
    let rv = |o: &Value| -> u64 {
        o["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    let first_pod = kube
        .pods(SCRATCH)
        .iter()
        .map(|p| rv(&kube.object("", "pods", SCRATCH, p).unwrap()))
        .min()
        .expect("restored pods");
    assert!(
        rv(&policy) < first_pod && rv(&quota) < first_pod,
        "isolated before the restore: policy {} quota {} first pod {first_pod}",
        rv(&policy),
        rv(&quota)
    );
    env.run_all().await;
    assert!(!kube.namespace_exists(SCRATCH));
    assert!(
        kube.object(
            "networking.k8s.io",
            "networkpolicies",
            SCRATCH,
            "backup-pilot-drill-deny-all"
        )
        .is_none()
    );
    let report = &reports.reports()[0];
    assert!(
        report.findings.iter().any(|f| f
            .message
            .starts_with(&format!("isolated {SCRATCH} before the restore"))),
        "{:#?}",
        report.findings
    );
}

/// A webhook receiver on loopback: its URL (with a secret-looking path) and what it got.
async fn webhook() -> (String, Arc<std::sync::Mutex<Vec<Value>>>) {
    let got = Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = got.clone();
    let router = axum::Router::new().route(
        "/services/T0/B0/hook-secret",
        axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
            let keep = keep.clone();
            async move {
                keep.lock().unwrap().push(body);
                "ok"
            }
        }),
    );
    let base = backup_pilot_standins::serve_on_loopback(router, std::future::pending())
        .await
        .unwrap();
    (format!("{base}/services/T0/B0/hook-secret"), got)
}

fn alerting(url: &str) -> RestoreSettings {
    let url = url.to_string();
    RestoreSettings::from_lookup(move |k| {
        (k == "BACKUP_PILOT_ALERT_WEBHOOK_URL").then(|| url.clone())
    })
    .unwrap()
}

/// A failed drill posts one alert to the webhook, in the documented shape; a healthy one
/// posts none; the webhook's URL is in no summary or report.
#[tokio::test]
async fn a_failed_drill_raises_one_webhook_alert_and_a_healthy_one_none() {
    let (url, got) = webhook().await;
    let reports = Arc::new(MemoryReportStore::default());
    let env = RestoreEnv::new(alerting(&url), reports.clone()).await;
    env.fire_drill_timer().await;
    env.run_all().await;
    assert!(
        got.lock().unwrap().is_empty(),
        "a healthy drill raises nothing"
    );

    let env = RestoreEnv::new(alerting(&url), reports.clone()).await;
    refuse_next_restore(&env);
    env.fire_drill_timer().await;
    env.run_all().await;
    let alerts = got.lock().unwrap().clone();
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let alert = &alerts[0];
    let text = alert["text"].as_str().unwrap();
    assert!(
        text.starts_with("Restore drill of aks-prod: fail"),
        "{text}"
    );
    assert!(
        text.contains("the drill failed at restore_trigger"),
        "{text}"
    );
    assert_eq!(alert["backupPilot"]["kind"], "drillAlert");
    assert_eq!(alert["backupPilot"]["cluster"], env.prod.id.as_str());
    assert!(
        alert["backupPilot"]["report"]
            .as_str()
            .unwrap()
            .ends_with(".html")
    );
    let reason = env.ends()[0].1.clone().expect_err("failed");
    assert!(
        reason.contains("alert raised: the drill failed"),
        "{reason}"
    );
    assert!(!reason.contains("hook-secret"), "{reason}");
}

/// A drill whose RTO grew past the margin over the cluster's previous drill raises an alert
/// that says by how much.
#[tokio::test]
async fn an_rto_regression_against_the_previous_drill_raises_an_alert() {
    let (url, got) = webhook().await;
    let reports = Arc::new(MemoryReportStore::default());
    let env = RestoreEnv::new(alerting(&url), reports.clone()).await;
    env.fire_drill_timer().await;
    env.run_all().await;
    let first = reports.reports()[0].rto_seconds.unwrap();
    assert!(got.lock().unwrap().is_empty());
    // The next day, restored pods take 20 minutes to become Ready.
    env.clock.advance(Duration::from_secs(24 * 3600));
    env.arm
        .add_recovery_point(&env.protection.backup_instance_id, env.clock.now())
        .unwrap();
    env.arm
        .set_restore_knobs(
            &env.prod.id,
            RestoreKnobs {
                pods_ready_after: Some(Duration::from_secs(20 * 60)),
                ..RestoreKnobs::default()
            },
        )
        .unwrap();
    env.fire_drill_timer().await;
    env.run_all().await;
    let second = reports.reports()[1].rto_seconds.unwrap();
    assert!(second > first * 3 / 2, "{first} → {second}");
    let alerts = got.lock().unwrap().clone();
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let reasons = alerts[0]["backupPilot"]["reasons"].as_array().unwrap();
    assert!(
        reasons.iter().any(|r| r.as_str().unwrap()
            == format!(
                "RTO regressed: {second} s against {first} s at the previous drill (margin 50%)"
            )),
        "{reasons:#?}"
    );
    assert_eq!(alerts[0]["backupPilot"]["previousRtoSeconds"], first);
}

/// Nine of the backup instance's ten daily restores were used in the last day: the drill keeps
/// the default two for real restores, so it is held back — no drill, no restore — and the
/// timer's answer and the cluster's status say why and until when. With no reserve it runs.
#[tokio::test]
async fn a_drill_is_held_back_when_it_would_eat_into_the_restore_reserve() {
    let reports = Arc::new(MemoryReportStore::default());
    let env = RestoreEnv::new(RestoreSettings::default(), reports.clone()).await;
    restored_in_the_last_hours(&env, 9);
    let (status, answer) = env.fire_drill_timer().await;
    assert_eq!(status, 200, "{answer}");
    let lines = logs(&answer);
    assert!(
        lines[0].contains("0 drill(s) started, 1 held for the restore reserve"),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("held ")
            && l.contains("restore quota: 9 of Azure Backup's 10 daily restores")
            && l.contains("drills keep 2 for real restores")),
        "{lines:#?}"
    );
    env.run_all().await;
    assert!(env.ends().is_empty(), "{:#?}", env.ends());
    assert!(
        !env.arm_calls()
            .iter()
            .any(|(m, p)| m == "POST" && p.ends_with("/restore")),
        "no restore was triggered"
    );
    let (_, body) = env.status(&env.prod.id).await;
    assert!(
        body["drillSkipped"]["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("restore quota: 9 of")),
        "{body}"
    );

    let none = RestoreSettings::from_lookup(|k| {
        (k == "BACKUP_PILOT_DRILL_RESTORE_RESERVE").then(|| "0".to_string())
    })
    .unwrap();
    let env = RestoreEnv::new(none, reports.clone()).await;
    restored_in_the_last_hours(&env, 9);
    env.fire_drill_timer().await;
    env.run_all().await;
    let summary = env.ends()[0]
        .1
        .clone()
        .expect("the tenth restore is a drill's");
    assert!(summary.starts_with("restore drill pass"), "{summary}");
}

/// An engine like the environment's (same ARM, bus, journal and clock) drilling `vaults`.
fn engine_with_vaults(env: &RestoreEnv, vaults: &[&str]) -> Engine<Ctx> {
    let ctx = env.engine.ctx().clone();
    let settings = RestoreSettings {
        vaults: vaults.iter().map(|v| v.parse().unwrap()).collect(),
        ..(*ctx.restore).clone()
    };
    Engine::new(
        Ctx {
            restore: Arc::new(settings),
            ..ctx
        },
        workflow::registry(),
    )
}

/// Fires the drill timer at the real handler serving `engine`: (status, answer).
async fn fire_timer(engine: &Engine<Ctx>) -> (u16, Value) {
    let invocation = json!({
        "Data": { "timer": { "Schedule": {"AdjustForDST": true}, "IsPastDue": false } },
        "Metadata": {}
    });
    invoke_engine(engine, "restore-drills", &invocation).await
}

/// The answer's log lines.
fn logs(answer: &Value) -> Vec<String> {
    answer["Logs"]
        .as_array()
        .map(|l| {
            l.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// A cluster running the `app` workload, onboarded into backup vault `vault` of `rg` (with
/// the daily policy `aks-daily`, backups at 00:00 UTC), whose backup instance has no recovery
/// point yet: (cluster id, backup instance id).
async fn protected_without_points(
    env: &RestoreEnv,
    rg: &str,
    name: &str,
    vault: &str,
) -> (String, String) {
    let kube = KubeApiServer::new(env.clock.clone());
    let url = kube.spawn().await.unwrap();
    let cluster = env
        .arm
        .add_cluster(
            ClusterSeed::new(SUB, rg, name, LOCATION)
                .with_kube_api_url(&url)
                .with_local_account_token(&kube.local_account_token()),
        )
        .unwrap();
    env.arm.attach_kube(&cluster.id, kube.clone());
    kube.add_namespace("app");
    kube.add_workload("app", &web());
    let seed = ProtectionSeed {
        vault: vault.into(),
        ..ProtectionSeed::new(&cluster.id, &["app"])
    };
    let protection = env.arm.seed_protection(&seed).unwrap();
    (cluster.id, protection.backup_instance_id)
}

/// ARM GETs the product made since `from` (an index into the stand-in's journal) whose path
/// `matches`.
fn reads_since(env: &RestoreEnv, from: usize, matches: impl Fn(&str) -> bool) -> usize {
    env.arm_calls()[from..]
        .iter()
        .filter(|(method, path)| method == "GET" && matches(path))
        .count()
}

const NOT_DRILLABLE: &str =
    "not drillable yet: no recovery point; next backup expected at 2026-03-03T00:00:00Z";

#[tokio::test]
async fn a_cluster_without_a_recovery_point_is_skipped_while_one_with_a_point_is_drilled() {
    let reports = Arc::new(MemoryReportStore::default());
    let env = RestoreEnv::new(RestoreSettings::default(), reports.clone()).await;
    // Two new clusters in one vault, one policy, no backup taken yet.
    let (first, first_instance) =
        protected_without_points(&env, "rg-new", "aks-new-1", "bv-new").await;
    let (second, _) = protected_without_points(&env, "rg-new", "aks-new-2", "bv-new").await;
    let fresh = [first, second];
    let new_vault = format!(
        "/subscriptions/{SUB}/resourceGroups/rg-new/providers/Microsoft.DataProtection/backupVaults/bv-new"
    );
    let engine = engine_with_vaults(&env, &[&env.protection.vault_id, &new_vault]);

    let before = env.arm_calls().len();
    let (status, answer) = fire_timer(&engine).await;
    assert_eq!(status, 200, "{answer}");
    let lines = logs(&answer);
    assert!(
        lines[0].contains("1 drill(s) started, 2 skipped (not drillable yet)"),
        "{lines:#?}"
    );
    for cluster in &fresh {
        let name = cluster.rsplit('/').next().unwrap();
        assert!(
            lines.iter().any(|l| l.starts_with("skipped ")
                && l.contains(name)
                && l.ends_with(&format!(": {NOT_DRILLABLE}"))),
            "{lines:#?}"
        );
    }
    // One page of recovery points per sampled instance, the shared policy read once.
    assert_eq!(
        reads_since(&env, before, |p| p.ends_with("/recoveryPoints")),
        3,
        "{:#?}",
        &env.arm_calls()[before..]
    );
    assert_eq!(
        reads_since(&env, before, |p| p.contains("/backupPolicies/")),
        1,
        "{:#?}",
        &env.arm_calls()[before..]
    );

    env.run_all().await;
    let ends = env.ends();
    assert_eq!(ends.len(), 1, "only the drill that ran ended: {ends:#?}");
    let summary = ends[0].1.as_ref().expect("the drill passed");
    assert!(
        summary.starts_with("restore drill pass (Completed)"),
        "{summary}"
    );
    assert_eq!(reports.reports().len(), 1, "no report for a skipped drill");

    // The skipped clusters' status says why and when, and that no drill ran or failed.
    for cluster in &fresh {
        let (code, body) = env.status(cluster).await;
        assert_eq!(code, 200, "{body}");
        assert_eq!(body["drillSkipped"]["reason"], NOT_DRILLABLE, "{body}");
        assert!(body["lastDrill"].is_null(), "{body}");
        assert_eq!(body["history"][0]["outcome"], "skipped", "{body}");
    }
    let (_, prod) = env.status(&env.prod.id).await;
    assert_eq!(prod["lastDrill"]["outcome"], "succeeded", "{prod}");
    assert!(prod.get("drillSkipped").is_none(), "{prod}");

    // The next run, after the first backup: the cluster is drilled and the skip is gone.
    env.arm
        .add_recovery_point(&first_instance, env.clock.now())
        .unwrap();
    env.clock.advance(Duration::from_secs(3600));
    let (status, answer) = fire_timer(&engine).await;
    assert_eq!(status, 200, "{answer}");
    // aks-prod's drill of the day has ended: it is not started again.
    assert!(
        logs(&answer)[0]
            .contains("1 drill(s) started, 1 skipped (not drillable yet), 1 already drilled today"),
        "{answer}"
    );
    env.run_all().await;
    let (_, drilled) = env.status(&fresh[0]).await;
    assert!(drilled.get("drillSkipped").is_none(), "{drilled}");
    assert!(!drilled["lastDrill"].is_null(), "{drilled}");
}

#[tokio::test]
async fn an_unreadable_policy_leaves_the_next_backup_time_unknown() {
    let reports = Arc::new(MemoryReportStore::default());
    let env = RestoreEnv::new(RestoreSettings::default(), reports).await;
    let (fresh, _) = protected_without_points(&env, "rg-new", "aks-new", "bv-new").await;
    let new_vault = format!(
        "/subscriptions/{SUB}/resourceGroups/rg-new/providers/Microsoft.DataProtection/backupVaults/bv-new"
    );
    let engine = engine_with_vaults(&env, &[&new_vault]);
    env.arm.fail_next(
        "BackupPolicies_Get",
        1,
        InjectedFailure {
            status: 403,
            code: "AuthorizationFailed".into(),
            message: "The client does not have authorization to perform action 'Microsoft.DataProtection/backupVaults/backupPolicies/read'.".into(),
        },
    );
    let (status, answer) = fire_timer(&engine).await;
    assert_eq!(status, 200, "{answer}");
    let (_, body) = env.status(&fresh).await;
    let reason = body["drillSkipped"]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with(
            "not drillable yet: no recovery point; next backup time unknown (policy /subscriptions/"
        ) && reason.contains("could not be read")
            && reason.contains("403 AuthorizationFailed"),
        "{body}"
    );
    assert!(env.ends().is_empty(), "{:#?}", env.ends());
}

#[tokio::test]
async fn a_vault_that_answers_404_is_reported_and_the_other_vaults_are_drilled() {
    let reports = Arc::new(MemoryReportStore::default());
    let env = RestoreEnv::new(RestoreSettings::default(), reports.clone()).await;
    let typo = format!(
        "/subscriptions/{SUB}/resourceGroups/rg-apps/providers/Microsoft.DataProtection/backupVaults/bv-typo"
    );
    let engine = engine_with_vaults(&env, &[&typo, &env.protection.vault_id]);
    let (status, answer) = fire_timer(&engine).await;
    assert_eq!(status, 200, "a timer gains nothing from a 500: {answer}");
    let lines = logs(&answer);
    assert!(
        lines[0].contains("1 drill(s) started, 1 vault(s) could not be read"),
        "{lines:#?}"
    );
    let error = lines
        .iter()
        .find(|l| l.starts_with("vault error: "))
        .unwrap_or_else(|| panic!("no vault error in {lines:#?}"));
    assert!(
        error.contains(&format!(
            "could not list the backup instances of backup vault {typo}"
        )) && error.contains("404")
            && error.contains(&format!(
                "Fix: correct or remove {typo} in BACKUP_PILOT_BACKUP_VAULTS"
            )),
        "{error}"
    );

    // The good vault's cluster is drilled.
    env.run_all().await;
    let drills: Vec<_> = env
        .ends()
        .into_iter()
        .filter(|(step, _)| step != "drill_schedule")
        .collect();
    assert_eq!(drills.len(), 1, "{drills:#?}");
    assert!(
        drills[0]
            .1
            .as_ref()
            .is_ok_and(|s| s.starts_with("restore drill pass"))
    );

    // The vault's status names the error and the fix.
    let (code, body) = env.status(&typo).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["lastDrill"]["outcome"], "failed", "{body}");
    assert!(
        body["lastDrill"]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("BACKUP_PILOT_BACKUP_VAULTS")),
        "{body}"
    );
    assert!(
        body["nextStep"]
            .as_str()
            .is_some_and(|n| n.starts_with(&format!("correct or remove {typo}"))),
        "{body}"
    );
}

#[tokio::test]
async fn a_vault_denied_then_granted_is_reported_then_cleared() {
    let reports = Arc::new(MemoryReportStore::default());
    let env = RestoreEnv::new(RestoreSettings::default(), reports).await;
    let vault = env.protection.vault_id.clone();
    let engine = engine_with_vaults(&env, &[&vault]);
    env.arm.fail_next(
        "BackupInstances_List",
        1,
        InjectedFailure {
            status: 403,
            code: "AuthorizationFailed".into(),
            message: "The client does not have authorization to perform action 'Microsoft.DataProtection/backupVaults/backupInstances/read'.".into(),
        },
    );
    let (status, answer) = fire_timer(&engine).await;
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer
            .to_string()
            .contains("0 drill(s) started, 1 vault(s) could not be read")
            && answer.to_string().contains(&format!(
                "Fix: grant the function app's identity Reader on {vault}"
            )),
        "{answer}"
    );
    let (_, body) = env.status(&vault).await;
    assert_eq!(body["lastDrill"]["outcome"], "failed", "{body}");

    // Granted: the next run drills and the vault's status no longer shows the error.
    let (status, answer) = fire_timer(&engine).await;
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer.to_string().contains("1 drill(s) started"),
        "{answer}"
    );
    let (_, body) = env.status(&vault).await;
    assert_eq!(body["lastDrill"]["outcome"], "succeeded", "{body}");
    assert!(body["nextStep"].is_null(), "{body}");
}

/// `backup-pilot local --drill`: onboards a fake cluster on the stand-ins, drills it, and
/// prints the verdict and where the report is (in the Blob store and copied locally).
#[tokio::test]
async fn local_runs_a_drill_and_prints_where_its_report_is() {
    let Some(azurite) = common::azurite::azurite() else {
        return;
    };
    let repo = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_backup-pilot-e2e"))
        .args([
            "local",
            "--clusters",
            "1",
            "--drill",
            "--timeout-seconds",
            "60",
            "--app-dir",
            repo,
        ])
        .env("BACKUP_PILOT_STATUS_BLOB_URL", &azurite.url)
        .env("BACKUP_PILOT_CA_BUNDLE", crate::common::ca_bundle())
        .env("NO_COLOR", "1")
        .kill_on_drop(true)
        .output()
        .await
        .expect("the binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let drills = stdout
        .split("\ndrills (")
        .nth(1)
        .unwrap_or_else(|| panic!("no drill summary in:\n{stdout}"));
    assert!(
        drills.contains("aks-local-01     pass (Completed)"),
        "{drills}"
    );
    let html = drills
        .lines()
        .find_map(|l| l.trim().strip_prefix("report html: "))
        .expect("the report's location");
    assert!(
        html.starts_with(&format!("{}/backup-pilot-reports/drills/", azurite.url)),
        "{html}"
    );
    let copied = drills
        .lines()
        .filter_map(|l| l.trim().strip_prefix("copied to:   "))
        .find(|p| p.ends_with(".html"))
        .expect("a local copy");
    let page = std::fs::read_to_string(copied).expect("the copied page");
    assert!(
        page.contains("PASS") && page.contains("drill-app-"),
        "{page}"
    );
    assert!(drills.contains("scratch namespaces left: none"), "{drills}");
}

/// Evidence an auditor can check: each drill report carries its content hash, the previous
/// report's and an HMAC signature with the configured key; `backup-pilot verify-evidence`
/// accepts the chain Azurite holds, and names the first broken link once a stored report is
/// changed.
#[tokio::test]
async fn drill_reports_form_a_signed_chain_and_verify_evidence_names_a_tampered_one() {
    use backup_pilot::restore::evidence::EvidenceKey;
    use backup_pilot::restore::report::ReportKind;
    let Some(azurite) = common::azurite::azurite() else {
        return;
    };
    const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let blobs = blob_container(&azurite.url);
    let container = blobs.location().rsplit('/').next().unwrap().to_string();
    let reports = Arc::new(BlobReportStore::new(blobs));
    let settings = RestoreSettings {
        evidence_key: EvidenceKey::from_lookup(&|k: &str| {
            (k == "BACKUP_PILOT_EVIDENCE_KEY").then(|| KEY.to_string())
        })
        .unwrap(),
        ..RestoreSettings::default()
    };
    let env = RestoreEnv::new(settings, reports.clone()).await;
    for day in 0..2 {
        if day > 0 {
            env.clock.advance(Duration::from_secs(24 * 3600));
        }
        let (status, answer) = env.fire_drill_timer().await;
        assert_eq!(status, 200, "{answer}");
        env.run_all().await;
    }
    let history = reports
        .history(ReportKind::Drill, &env.prod.id, 10)
        .await
        .unwrap();
    assert_eq!(history.len(), 2, "{history:#?}");
    let documents = reports
        .documents(ReportKind::Drill, &env.prod.id)
        .await
        .unwrap();
    let newest = documents
        .iter()
        .max_by_key(|d| d["generatedAt"].as_str().unwrap().to_string())
        .unwrap();
    let oldest = documents
        .iter()
        .min_by_key(|d| d["generatedAt"].as_str().unwrap().to_string())
        .unwrap();
    assert_eq!(
        newest["evidence"]["previousSha256"], oldest["evidence"]["contentSha256"],
        "the newer report links to the older"
    );
    assert_eq!(newest["evidence"]["signature"]["algorithm"], "HMAC-SHA256");

    let verify = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_backup-pilot-e2e"))
            .args(["verify-evidence", "--cluster", &env.prod.id])
            .env("BACKUP_PILOT_STATUS_BLOB_URL", &azurite.url)
            .env("BACKUP_PILOT_CA_BUNDLE", crate::common::ca_bundle())
            .env("BACKUP_PILOT_REPORT_CONTAINER", &container)
            .env("BACKUP_PILOT_EVIDENCE_KEY", KEY)
            .env_remove("BACKUP_PILOT_STATUS_STORE")
            .output()
            .expect("run verify-evidence")
    };
    let intact = verify();
    let stdout = String::from_utf8_lossy(&intact.stdout).into_owned();
    assert!(
        intact.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&intact.stderr)
    );
    assert!(stdout.contains("2 report(s), every link holds"), "{stdout}");

    // Someone turns the older drill's verdict into a pass it never had... or any change.
    let url = history[1].report.json.clone();
    let store = blob_client_for(&url);
    let name = blob_name(&url);
    let (bytes, _) = store.read(&name).await.unwrap().unwrap();
    let mut doc: Value = serde_json::from_slice(&bytes).unwrap();
    doc["rtoSeconds"] = json!(1);
    store
        .put(&name, serde_json::to_vec(&doc).unwrap(), "application/json")
        .await
        .unwrap();
    let tampered = verify();
    let stdout = String::from_utf8_lossy(&tampered.stdout).into_owned();
    assert!(!tampered.status.success(), "{stdout}");
    let id = doc["id"].as_str().unwrap();
    assert!(
        stdout.contains(&format!("BROKEN at report {id}"))
            && stdout.contains("content was changed after it was written"),
        "{stdout}"
    );
}

/// A pod that names a secret the backup did not hold comes back unable to start: the
/// `references` check loses its share and names what is missing, and the drill is degraded.
#[tokio::test]
async fn a_restored_pod_naming_a_secret_that_was_not_backed_up_costs_the_references_check() {
    let reports = Arc::new(MemoryReportStore::default());
    let env = RestoreEnv::new(RestoreSettings::default(), reports.clone()).await;
    env.prod.kube.add_pod_with_spec(
        "app",
        "db-0",
        json!({"containers": [{"name": "db", "image": "postgres:16",
            "env": [{"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db-creds", "key": "password"}}}]}]}),
        &backup_pilot_standins::kube_api::PodState::Running { ready: true },
    );
    env.arm
        .add_recovery_point(&env.protection.backup_instance_id, env.clock.now())
        .unwrap();
    env.fire_drill_timer().await;
    env.run_all().await;
    let report = &reports.reports()[0];
    let score = report.score.as_ref().unwrap();
    let references = score
        .checks
        .iter()
        .find(|c| c.name == "references")
        .unwrap();
    assert_eq!(
        references.detail, "2 of 3 reference(s) resolve; missing: secret db-creds (pod db-0)",
        "{score:#?}"
    );
    assert_eq!((references.earned, references.weight), (7, 10));
    assert_eq!(report.verdict, Verdict::Degraded);
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.message.contains("secret db-creds (pod db-0)")),
        "{:#?}",
        report.findings
    );
}

fn probes(raw: &str) -> RestoreSettings {
    RestoreSettings {
        drill_probes: backup_pilot::restore::probe::parse_probes(raw).unwrap(),
        ..RestoreSettings::default()
    }
}

const WEB_PROBE: &str = r#"[{"namespace": "app", "name": "web", "http": {"service": "web", "port": 80, "path": "/healthz"}}]"#;

/// A configured HTTP probe runs as a pod inside the scratch namespace, beside the restored
/// service it requests, with the policies that let it (and only it) through the deny-all; a
/// probe that exits 0 earns the application check.
#[tokio::test]
async fn an_http_probe_runs_inside_the_scratch_namespace_and_passes() {
    let reports = Arc::new(MemoryReportStore::default());
    let env = RestoreEnv::new(probes(WEB_PROBE), reports.clone()).await;
    env.fire_drill_timer().await;
    env.run_through("restore_verify").await;
    let kube = &env.prod.kube;
    let pod = kube
        .object("", "pods", SCRATCH, "backup-pilot-probe-web")
        .expect("the probe pod");
    assert_eq!(pod["status"]["phase"], "Succeeded", "{pod}");
    assert_eq!(
        pod["spec"]["containers"][0]["args"]
            .as_array()
            .unwrap()
            .last()
            .unwrap(),
        &json!(format!("http://web.{SCRATCH}.svc.cluster.local:80/healthz"))
    );
    for name in [
        "backup-pilot-drill-allow-probe-ingress",
        "backup-pilot-drill-allow-probe-egress",
    ] {
        assert!(
            kube.object("networking.k8s.io", "networkpolicies", SCRATCH, name)
                .is_some(),
            "{name}"
        );
    }
    env.run_all().await;
    let score = reports.reports()[0].score.clone().unwrap();
    let application = score
        .checks
        .iter()
        .find(|c| c.name == "application")
        .unwrap();
    assert_eq!(
        (application.earned, application.detail.as_str()),
        (15, "probe web passed")
    );
    assert_eq!(score.total, 100, "{score:#?}");
    assert!(!kube.namespace_exists(SCRATCH), "cleaned up");
}

/// Runs a whole drill with [`WEB_PROBE`] after `set_up` told the source cluster's stand-in how
/// the probe's container behaves; returns the environment and the drill's report.
async fn drill_with_the_web_probe(
    set_up: impl FnOnce(&KubeApiServer),
) -> (RestoreEnv, EvidenceReport) {
    let reports = Arc::new(MemoryReportStore::default());
    let env = RestoreEnv::new(probes(WEB_PROBE), reports.clone()).await;
    set_up(&env.prod.kube);
    env.fire_drill_timer().await;
    env.run_all().await;
    let report = reports.reports().remove(0);
    (env, report)
}

/// The report's application check.
fn application_check(report: &EvidenceReport) -> &backup_pilot::restore::score::Check {
    report
        .score
        .as_ref()
        .and_then(|score| score.checks.iter().find(|c| c.name == "application"))
        .expect("an application check")
}

/// An application probe that fails is caught: the restored service answered 503, so the
/// probe pod exits non-zero; the application check earns nothing and says why, and the drill
/// is degraded below the pass threshold.
#[tokio::test]
async fn an_application_probe_failure_is_caught() {
    let (env, report) = drill_with_the_web_probe(|kube| {
        kube.set_container_exit(
            "backup-pilot-probe-web",
            22,
            "curl: (22) The requested URL returned error: 503",
        );
    })
    .await;
    let score = report.score.as_ref().unwrap();
    let application = application_check(&report);
    assert_eq!(
        (application.earned, application.detail.as_str()),
        (
            0,
            "probe web failed: exit code 22: curl: (22) The requested URL returned error: 503"
        )
    );
    assert_eq!(score.total, 85, "{score:#?}");
    assert!(score.total < score.pass_threshold);
    assert_eq!(report.verdict, Verdict::Degraded);
    let summary = env.ends()[0].1.clone().expect("degraded is not failed");
    assert!(
        summary.contains("score 85/100 (lost: application 0/15)"),
        "{summary}"
    );
    assert!(!env.prod.kube.namespace_exists(SCRATCH), "cleaned up");
}

/// A probe that hangs (the restored service never answers and curl waits) is ended by the
/// kubelet at the probe's `activeDeadlineSeconds`, and the drill says so: the check names the
/// deadline, not the killed container's exit code, and the drill goes on to score and clean up
/// instead of waiting for the probe for ever.
#[tokio::test]
async fn a_hung_probe_is_ended_at_its_deadline_and_reported() {
    let (env, report) = drill_with_the_web_probe(|kube| {
        kube.set_container_hang("backup-pilot-probe-web");
    })
    .await;
    let application = application_check(&report);
    assert_eq!(
        (application.earned, application.detail.as_str()),
        (
            0,
            "probe web failed: DeadlineExceeded: Pod was active on the node longer than the \
             specified deadline"
        )
    );
    assert_eq!(report.verdict, Verdict::Degraded);
    assert!(!env.prod.kube.namespace_exists(SCRATCH), "cleaned up");
}

/// Drills run at most `BACKUP_PILOT_DRILL_MAX_PER_VAULT` at once per vault, restores already
/// running counted: while a real restore from the vault runs, a limit of 1 makes the drill
/// wait (the timer and the cluster's status say why); once the restore has finished, the
/// timer's next run starts it.
#[tokio::test]
async fn a_drill_waits_while_its_vault_runs_as_many_restores_as_drills_may() {
    let reports = Arc::new(MemoryReportStore::default());
    let settings = RestoreSettings {
        allowlist: backup_pilot::restore::authorize::RestoreAllowlist::from_json(&format!(
            r#"[{{"cluster": "/subscriptions/{SUB}/resourceGroups/rg-dr/*", "namespaces": ["app-*"]}}]"#
        ))
        .unwrap(),
        drill_max_per_vault: 1,
        ..RestoreSettings::default()
    };
    let env = RestoreEnv::new(settings, reports.clone()).await;
    let request = json!({
        "requestId": "ticket-4711",
        "sourceClusterId": env.prod.id,
        "targetClusterId": env.dr.id,
        "recoveryPoint": "latest",
        "includedNamespaces": ["app"],
        "namespaceMappings": {"app": "app-restored"},
        "conflictPolicy": "Skip",
        "persistentVolumeRestoreMode": "RestoreWithVolumeData"
    });
    let (status, answer) = env.request_restore(&request, "msg-busy").await;
    assert_eq!(status, 200, "{answer}");
    env.run_through("restore_trigger").await;

    let (_, answer) = env.fire_drill_timer().await;
    let lines = logs(&answer);
    assert!(
        lines[0].contains("0 drill(s) started, 1 waiting for a busy vault"),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("held ") && l.contains("runs 1 restore(s)")),
        "{lines:#?}"
    );
    let (_, body) = env.status(&env.prod.id).await;
    assert!(
        body["drillSkipped"]["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("vault busy:") && r.contains("at most 1 at once")),
        "{body}"
    );

    env.run_all().await;
    assert_eq!(env.ends().len(), 1, "the restore ended: {:#?}", env.ends());
    let (_, answer) = env.fire_drill_timer().await;
    assert!(logs(&answer)[0].contains("1 drill(s) started"), "{answer}");
    env.run_all().await;
    let drill = env.ends()[1].1.clone().expect("the drill passed");
    assert!(drill.starts_with("restore drill pass"), "{drill}");
}

//! Restore drills end to end: the `restore-drills` timer through the real handler starts a
//! drill per protected cluster of the configured vault; the drill restores the newest
//! recovery point into scratch namespaces on the same cluster, verifies the workload, always
//! deletes the scratch namespaces (failures included), and writes its evidence report (JSON and
//! HTML) to Blob storage — Azurite here — which the status endpoint then lists.

mod common;

use std::sync::Arc;
use std::time::Duration;

use backup_pilot::local::arm::InjectedFailure;
use backup_pilot::local::kube_api::restore::RestoreKnobs;
use backup_pilot::restore::report::EvidenceReport;
use backup_pilot::restore::settings::RestoreSettings;
use backup_pilot::restore::store::{BlobReportStore, MemoryReportStore, ReportStore};
use backup_pilot::restore::verify::Verdict;
use backup_pilot::status::account_sas::AccountKey;
use backup_pilot::status::blob::{BlobContainer, StorageAuth};

use common::restore_env::RestoreEnv;

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
}

fn blob_name(url: &str) -> String {
    url.splitn(6, '/').nth(5).unwrap().to_string()
}

#[tokio::test]
async fn a_failing_drill_still_cleans_up_and_reports() {
    let reports = Arc::new(MemoryReportStore::default());
    let env = RestoreEnv::new(RestoreSettings::default(), reports.clone()).await;
    // The restore is refused after the scratch namespace exists.
    env.arm.fail_next(
        "BackupInstances_TriggerRestore",
        1,
        InjectedFailure {
            status: 400,
            code: "UserErrorSourceandTargetClusterCRDVersionMismatch".into(),
            message: "The CRD versions of the source and target cluster differ.".into(),
        },
    );
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

/// `backup-pilot local --drill`: onboards a fake cluster on the stand-ins, drills it, and
/// prints the verdict and where the report is (in the Blob store and copied locally).
#[tokio::test]
async fn local_runs_a_drill_and_prints_where_its_report_is() {
    let Some(azurite) = common::azurite::azurite() else {
        return;
    };
    let repo = env!("CARGO_MANIFEST_DIR");
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_backup-pilot"))
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

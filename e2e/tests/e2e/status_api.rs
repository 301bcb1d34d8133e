//! The status HTTP function through the real router, backed by the in-memory journal: the
//! fleet summary counts phases and lists each failed cluster's error and fix, a cluster's
//! detail shows its error, fix, next step, next retry and step history, unknown clusters
//! get a 404 that says what to do, the memory store says it is one, and no answer carries
//! a secret.

use crate::common;
use std::sync::Arc;

use backup_pilot::bus::RecordingPublisher;
use backup_pilot::clock::Clock as _;
use common::status::{
    FIX, assert_no_secrets, cluster, get_status, get_status_page, registry, run_onboarding_step,
};

#[tokio::test]
async fn status_answers_fleet_and_cluster_questions_without_secrets() {
    let h = common::spawn_handler(registry(), Arc::new(RecordingPublisher::default())).await;
    let now = h.clock.now();
    for name in ["aks-ok", "aks-busy", "aks-bad"] {
        run_onboarding_step(&h.url, &cluster(name), now).await;
    }

    let (code, fleet, text) = get_status(&h.url, None).await;
    assert_eq!(code, 200, "{fleet}");
    assert_no_secrets(&text);
    assert_eq!(fleet["summary"]["total"], 3);
    assert_eq!(fleet["summary"]["protected"], 1);
    assert_eq!(fleet["summary"]["inProgress"], 1);
    assert_eq!(fleet["summary"]["failed"], 1);
    assert_eq!(fleet["store"]["kind"], "memory");
    // The drill schedule and the restore reserve (the defaults here).
    assert_eq!(fleet["drillPolicy"]["maxPerVault"], 10);
    assert_eq!(fleet["drillPolicy"]["restoreReserve"], 2);
    assert!(
        fleet["drillPolicy"]["summary"].as_str().unwrap().contains(
            "2 of Azure Backup's 10 daily restores per backup instance kept for real restores"
        ),
        "{fleet}"
    );
    assert!(
        fleet["store"]["note"]
            .as_str()
            .unwrap()
            .contains("BACKUP_PILOT_STATUS_BLOB_URL"),
        "the memory store says how to keep status: {fleet}"
    );
    let failed = &fleet["failed"][0];
    assert!(failed["cluster"].as_str().unwrap().ends_with("/aks-bad"));
    assert_eq!(failed["fix"], FIX);
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .contains("403 AuthorizationFailed")
    );
    assert!(failed["nextStep"].as_str().unwrap().starts_with(FIX));

    // The cluster from the route, spelled in another case: one cluster, its detail.
    let bad = cluster("aks-bad")
        .to_uppercase()
        .replace("SUBSCRIPTIONS", "subscriptions");
    let (code, detail, text) = get_status(&h.url, Some(&bad)).await;
    assert_eq!(code, 200, "{detail}");
    assert_no_secrets(&text);
    assert_eq!(detail["phase"], "failed");
    assert_eq!(detail["lastError"]["step"], "assign_roles");
    assert_eq!(detail["lastError"]["fix"], FIX);
    assert!(
        detail["nextStep"]
            .as_str()
            .unwrap()
            .contains("backup-pilot onboard --cluster")
    );
    let history = detail["history"].as_array().unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0]["outcome"], "failed");
    assert!(history[0]["durationMs"].is_u64());

    let (_, busy, _) = get_status(&h.url, Some(&cluster("aks-busy"))).await;
    assert_eq!(busy["phase"], "inProgress");
    assert_eq!(busy["nextRetry"]["step"], "assign_roles");
    let retry_at = time::OffsetDateTime::parse(
        busy["nextRetry"]["at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert!(
        retry_at >= now + time::Duration::seconds(120),
        "Retry-After is honoured: {retry_at}"
    );
    assert!(
        busy["nextStep"]
            .as_str()
            .unwrap()
            .starts_with("nothing to do")
    );

    let (code, missing, text) = get_status(&h.url, Some(&cluster("aks-never-seen"))).await;
    assert_eq!(code, 404);
    assert_eq!(missing["error"]["code"], "ClusterNotFound");
    assert!(text.contains("backup-pilot onboard --cluster"));
}

#[tokio::test]
async fn the_cluster_comes_from_the_path_when_the_host_sends_no_params() {
    let h = common::spawn_handler(registry(), Arc::new(RecordingPublisher::default())).await;
    run_onboarding_step(&h.url, &cluster("aks-ok"), h.clock.now()).await;
    let encoded = cluster("aks-ok").replace('/', "%2F");
    let req = serde_json::json!({
        "Url": format!("http://localhost:7071/api/status/{encoded}"),
        "Method": "GET",
        "Query": "{}",
        "Headers": {},
    });
    let (_, answer) =
        common::status::invoke(&h.url, "status", &serde_json::json!({"Data": {"req": req}})).await;
    let res = &answer["Outputs"]["res"];
    assert_eq!(res["statusCode"], 200, "{answer}");
    assert_eq!(res["body"]["phase"], "protected");
    assert!(res["body"]["nextStep"].is_null());
}

/// A browser (`Accept: text/html`) gets the status pages: the fleet with a headed row per
/// cluster linking to its page, and the cluster's page with its timeline; no secret and no
/// function key in either.
#[tokio::test]
async fn a_browser_gets_the_fleet_page_and_a_page_per_cluster() {
    let h = common::spawn_handler(registry(), Arc::new(RecordingPublisher::default())).await;
    let now = h.clock.now();
    for name in ["aks-ok", "aks-busy", "aks-bad"] {
        run_onboarding_step(&h.url, &cluster(name), now).await;
    }
    let (code, content_type, page, text) = get_status_page(&h.url, None).await;
    assert_eq!(code, 200, "{text}");
    assert_eq!(content_type, "text/html; charset=utf-8");
    assert_no_secrets(&text);
    assert!(page.starts_with("<!DOCTYPE html>"), "{page}");
    assert_eq!(page.matches("<th scope=\"row\">").count(), 3, "{page}");
    assert!(page.contains("<strong>1</strong>failed"), "{page}");
    let bad = cluster("aks-bad");
    assert!(
        page.contains(&format!("href=\"/api/status{bad}\"")),
        "a link to each cluster's page: {page}"
    );
    assert!(
        page.contains(&backup_pilot::restore::report::escape_html(FIX)),
        "the failed cluster's fix: {page}"
    );

    let (code, content_type, detail, text) = get_status_page(&h.url, Some(&bad)).await;
    assert_eq!(code, 200, "{text}");
    assert_eq!(content_type, "text/html; charset=utf-8");
    assert_no_secrets(&text);
    assert!(
        detail.contains("<title>AKS backup status: aks-bad</title>"),
        "{detail}"
    );
    assert!(detail.contains("<td>assign_roles</td>"), "{detail}");
    assert!(detail.contains("No drill recorded."), "{detail}");

    // JSON stays the default for API clients.
    let (_, fleet, _) = get_status(&h.url, None).await;
    assert_eq!(fleet["summary"]["total"], 3);
}

/// The fleet page in a real browser: headless Chromium (Debian's `chromium`, which `.ci/run`
/// installs) loads the page the status function served, offline, and its DOM has the fleet
/// counts and a headed row per cluster; a screenshot is kept as a test artifact in
/// `target/test-artifacts/status-page.png`.
#[tokio::test]
async fn the_fleet_page_renders_in_headless_chromium() {
    let Some(chromium) = ["chromium", "chromium-browser"].into_iter().find(|c| {
        std::process::Command::new(c)
            .arg("--version")
            .output()
            .is_ok()
    }) else {
        assert!(
            std::env::var_os("BACKUP_PILOT_REQUIRE_CHROMIUM").is_none(),
            "Chromium is required but not installed (apt-get install chromium)"
        );
        println!("skipped: Chromium is not installed (apt-get install chromium)");
        return;
    };
    let h = common::spawn_handler(registry(), Arc::new(RecordingPublisher::default())).await;
    let now = h.clock.now();
    for name in ["aks-ok", "aks-busy", "aks-bad"] {
        run_onboarding_step(&h.url, &cluster(name), now).await;
    }
    let (_, _, page, _) = get_status_page(&h.url, None).await;
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("index.html");
    std::fs::write(&file, &page).unwrap();
    let artifacts = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let screenshot = artifacts.join("status-page.png");
    let _ = std::fs::remove_file(&screenshot);
    let browse = |extra: &[String]| {
        let profile = tempfile::tempdir().unwrap();
        let output = std::process::Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--window-size=1280,720",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(extra)
            .arg(format!("file://{}", file.display()))
            .output()
            .expect("run chromium");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let dom = browse(&["--dump-dom".to_string()]);
    assert!(dom.contains("<title>AKS backup status</title>"), "{dom}");
    assert_eq!(dom.matches("<th scope=\"row\">").count(), 3, "{dom}");
    assert_eq!(dom.matches("<th scope=\"col\">").count(), 9, "{dom}");
    assert!(dom.contains("<strong>3</strong>clusters"), "{dom}");
    assert!(dom.contains("<caption>Clusters</caption>"), "{dom}");
    assert!(!dom.contains("<script"), "no script: {dom}");
    browse(&[format!("--screenshot={}", screenshot.display())]);
    let png = std::fs::read(&screenshot).expect("the screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    assert!(png.len() > 10_000, "a page was drawn ({} bytes)", png.len());
}

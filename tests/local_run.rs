//! `local` end to end: the real binary as the custom handler behind the Functions host
//! stand-in, Service Bus, ARM and one Kubernetes API stand-in per fake cluster, on a scaled
//! clock. The clusters end protected, and their timelines — read from the running chain
//! through the status function — show the Kubernetes steps: the health gate waiting for the
//! extension's pods, then the hooks going on before the backup instance.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use backup_pilot::local::run::{LocalOptions, run};
use backup_pilot::status::Phase;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_fake_clusters_end_protected_through_the_health_gate_and_the_hooks() {
    let report = run(LocalOptions {
        clusters: 2,
        time_scale: 600.0,
        app_dir: repo().to_path_buf(),
        timeout: Duration::from_secs(60),
        handler: Some(env!("CARGO_BIN_EXE_backup-pilot").into()),
        live: false,
        drill: false,
    })
    .await
    .expect("every cluster ends protected");

    assert!(report.all_protected(), "{}", report.render());
    assert_eq!(report.clusters.len(), 2);
    for cluster in &report.clusters {
        assert_eq!(cluster.phase, Phase::Protected);
        let steps: Vec<&str> = cluster.timeline.iter().map(|s| s.step.as_str()).collect();
        let at = |step: &str| {
            steps
                .iter()
                .position(|s| *s == step)
                .unwrap_or_else(|| panic!("{} has no {step}: {steps:?}", cluster.name))
        };
        assert_eq!(steps.first(), Some(&"check_cluster"));
        assert_eq!(at("extension_health"), at("install_extension") + 1);
        assert_eq!(at("assign_roles"), at("extension_health") + 1);
        assert!(at("apply_hooks") < at("configure_backup"), "{steps:?}");
        let last = cluster.timeline.last().unwrap();
        assert_eq!(
            (last.step.as_str(), last.outcome.as_str()),
            ("first_backup", "done")
        );

        // The gate held until the extension's pods were Ready (150 virtual seconds after ARM
        // reported the install), by retries.
        let gate = &cluster.timeline[at("extension_health")];
        assert!(gate.attempts >= 2, "{gate:?}");
        assert!(gate.duration >= Duration::from_secs(60), "{gate:?}");
        assert_eq!(gate.outcome, "advanced");

        let after = cluster.settled_after.unwrap();
        assert!(
            after >= gate.start + gate.duration,
            "protected after the gate opened"
        );
    }
    assert!(report.virtual_time >= Duration::from_secs(5 * 60));
    assert!(report.wall_time < Duration::from_secs(60));
    let text = report.render();
    assert!(
        text.contains("2 of 2 cluster(s) protected") && text.contains("extension_health"),
        "{text}"
    );
}

#[test]
fn the_local_command_exits_zero_and_prints_the_timeline() {
    let output = Command::new(env!("CARGO_BIN_EXE_backup-pilot"))
        .args(["local", "--clusters", "1", "--timeout-seconds", "60"])
        .current_dir(repo())
        .env_remove("RUST_LOG")
        .env_remove("BACKUP_PILOT_HOOKS")
        .env_remove("BACKUP_PILOT_HOOKS_FILE")
        .output()
        .expect("run the binary");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    for expected in [
        "BackupHook backup-hooks/shop-db-quiesce",
        "aks-local-01: protected after",
        "extension_health",
        "apply_hooks",
        "1 of 1 cluster(s) protected; virtual time to protected",
        "ProtectionConfigured",
    ] {
        assert!(stdout.contains(expected), "{expected:?} missing:\n{stdout}");
    }
    // Nothing alarming on a clean run: no warning or error from the host or the handler.
    let alarming: Vec<&str> = stderr
        .lines()
        .chain(stdout.lines())
        .filter(|l| l.contains("ERROR") || l.contains("WARN"))
        .collect();
    assert!(alarming.is_empty(), "{alarming:#?}");
}

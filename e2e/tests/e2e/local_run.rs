//! `local` end to end: the real binary as the custom handler behind the Functions host
//! stand-in, Service Bus, ARM and one Kubernetes API stand-in per fake cluster, on a scaled
//! clock. The clusters end protected, and their timelines — read from the running chain
//! through the status function — show the Kubernetes steps: the health gate waiting for the
//! extension's pods, then the hooks going on before the backup instance.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use backup_pilot::status::Phase;
use backup_pilot_local::run::{LocalOptions, run};

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_fake_clusters_end_protected_through_the_health_gate_and_the_hooks() {
    let report = run(LocalOptions {
        clusters: 2,
        time_scale: 600.0,
        app_dir: repo().to_path_buf(),
        timeout: Duration::from_secs(60),
        handler: Some(env!("CARGO_BIN_EXE_backup-pilot-e2e").into()),
        live: false,
        drill: false,
        keep_state: false,
        existing_clusters: 0,
        subscriptions: 1,
        drift: false,
        stay: false,
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
        // The extension's roles follow its install at once, then the validation; the gate
        // comes next.
        assert_eq!(at("assign_extension_roles"), at("install_extension") + 1);
        assert_eq!(at("validate_backup"), at("assign_extension_roles") + 1);
        assert_eq!(at("extension_health"), at("validate_backup") + 1);
        assert!(
            at("check_cluster_access") < at("install_extension"),
            "{steps:?}"
        );
        assert!(at("assign_roles") < at("install_extension"), "{steps:?}");
        assert!(at("apply_hooks") < at("configure_backup"), "{steps:?}");
        let last = cluster.timeline.last().unwrap();
        assert_eq!(
            (last.step.as_str(), last.outcome.as_str()),
            ("first_backup", "done")
        );

        // The gate opened once the extension's pods were Ready (150 virtual seconds after ARM
        // reported the install, which the install step sees within a 20 s poll); the
        // extension's roles and the validation ran in that time, so the gate may have had
        // nothing left to wait for (`kube_side` tests that it holds).
        let gate = &cluster.timeline[at("extension_health")];
        let install = &cluster.timeline[at("install_extension")];
        assert!(
            gate.start + gate.duration
                >= install.start + install.duration + Duration::from_secs(120),
            "{install:?} {gate:?}"
        );
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
    let output = Command::new(env!("CARGO_BIN_EXE_backup-pilot-e2e"))
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

/// Runs the README's command (`cargo run -- local …` runs this binary) in the repository, as
/// a newcomer would, and returns its exit status, stdout and stderr.
fn run_local(args: &[&str]) -> (std::process::ExitStatus, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_backup-pilot-e2e"))
        .arg("local")
        .args(args)
        .current_dir(repo())
        .env_remove("RUST_LOG")
        .env_remove("BACKUP_PILOT_HOOKS")
        .env_remove("BACKUP_PILOT_HOOKS_FILE")
        .env_remove("BACKUP_PILOT_STATUS_BLOB_URL")
        .env_remove("BACKUP_PILOT_FIRST_BACKUP")
        .env_remove("BACKUP_PILOT_DRILL_SCHEDULE")
        .output()
        .expect("run the binary");
    (
        output.status,
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The lines of a drill summary that carry a verdict: `  aks-local-NN  <verdict> (…)`.
fn verdict_lines(stdout: &str) -> Vec<String> {
    let Some(drills) = stdout.split("\ndrills (").nth(1) else {
        return Vec::new();
    };
    drills
        .lines()
        .filter(|l| l.starts_with("  aks-local-"))
        .map(str::to_string)
        .collect()
}

/// The README's run command with `--drill`, twice in a row in one working directory: the
/// second run starts from fresh state and behaves like the first (issue: it used to read and
/// fight over the first run's status in Azurite's kept data).
#[test]
fn local_drill_twice_in_a_row_in_one_directory_drills_every_cluster_both_times() {
    if !repo()
        .join(backup_pilot_standins::azurite::INSTALLED_BIN)
        .exists()
    {
        assert!(
            std::env::var_os("BACKUP_PILOT_REQUIRE_AZURITE").is_none(),
            "Azurite is required but not installed"
        );
        println!("skipped: Azurite is not installed (.ci/azurite install)");
        return;
    }
    let mut states = Vec::new();
    for run in 1..=2 {
        let (status, stdout, stderr) = run_local(&["--drill", "--timeout-seconds", "90"]);
        assert!(status.success(), "run {run}:\n{stdout}\n{stderr}");
        let verdicts = verdict_lines(&stdout);
        assert_eq!(
            verdicts.len(),
            3,
            "run {run}: one verdict per cluster:\n{stdout}"
        );
        for (line, cluster) in verdicts.iter().zip(1..=3) {
            let name = format!("aks-local-{cluster:02}");
            assert!(
                line.trim_start().starts_with(&name),
                "run {run}: expected {name}'s verdict, got {line}:\n{stdout}"
            );
            assert!(
                line.contains(" pass (Completed)"),
                "run {run}: {line}\n{stdout}"
            );
        }
        assert_eq!(
            stdout.matches("      report json: ").count(),
            3,
            "run {run}: a report location per cluster:\n{stdout}"
        );
        let state = stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix("state"))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|| panic!("run {run}: no state folder printed:\n{stdout}"));
        assert!(state.contains("fresh for this run"), "{state}");
        let page_path = stdout
            .lines()
            .find_map(|l| l.strip_prefix("status page: "))
            .unwrap_or_else(|| panic!("run {run}: no status page saved:\n{stdout}"));
        let page = std::fs::read_to_string(repo().join(page_path)).expect("the status page");
        assert_eq!(
            page.matches("<th scope=\"row\">").count(),
            3,
            "run {run}: a row per cluster in {page_path}"
        );
        assert_eq!(
            page.matches("phase succeeded").count(),
            3,
            "run {run}: {page}"
        );
        states.push(state);
        assert!(
            !stderr.contains("(Failed,") && !stderr.contains("was not recorded"),
            "run {run}: {stderr}"
        );
    }
    assert_ne!(states[0], states[1], "each run has its own state folder");
}

/// A CPU-burning process per core beside the run: locks are measured and renewed in real
/// time, as Service Bus and the Functions host do, so nothing fails and nothing is redelivered
/// for a lost lock — at the README's 600x and at 3000x, where a lock measured in virtual time
/// lasted 20 ms of real time and a busy machine lost hundreds of them.
#[test]
fn local_on_a_busy_machine_exits_zero_with_no_failed_invocation() {
    struct Burner(std::process::Child);
    impl Drop for Burner {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let burners: Vec<Burner> = (0..2)
        .map(|_| {
            Burner(
                Command::new("sh")
                    .args(["-c", "while :; do :; done"])
                    .spawn()
                    .expect("start a busy loop"),
            )
        })
        .collect();
    for scale in ["600", "3000"] {
        let (status, stdout, stderr) = run_local(&[
            "--clusters",
            "3",
            "--time-scale",
            scale,
            "--timeout-seconds",
            "120",
        ]);
        assert!(status.success(), "{scale}x:\n{stdout}\n{stderr}");
        assert!(stdout.contains("3 of 3 cluster(s) protected"), "{stdout}");
        let failed: Vec<&str> = stderr
            .lines()
            .chain(stdout.lines())
            .filter(|l| l.contains("Failed") || l.contains("lock supplied is invalid"))
            .collect();
        assert!(failed.is_empty(), "{scale}x: {failed:#?}");
    }
    drop(burners);
}

/// Kills a child process the test started, whatever happens to the test.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// `local --stay`: after the run the stand-ins stay up, `.local/standins.env` and a
/// kubeconfig per cluster are written, a client trusting only the written CA bundle reaches
/// ARM over HTTPS (and is asked for a token, as ARM asks), and Ctrl-C ends the run with 0.
#[test]
fn local_stay_keeps_the_stand_ins_up_and_writes_what_tools_need() {
    use std::io::BufRead as _;
    let app = tempfile::tempdir().unwrap();
    std::fs::copy(repo().join("host.json"), app.path().join("host.json")).unwrap();
    copy_dir(&repo().join("functions"), &app.path().join("functions"));
    let child = Command::new(env!("CARGO_BIN_EXE_backup-pilot-e2e"))
        .args([
            "local",
            "--clusters",
            "1",
            "--stay",
            "--timeout-seconds",
            "60",
        ])
        .arg("--app-dir")
        .arg(app.path())
        .env_remove("RUST_LOG")
        .env_remove("BACKUP_PILOT_STATUS_BLOB_URL")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run the binary");
    let mut child = KillOnDrop(child);
    let stdout = child.0.stdout.take().unwrap();
    let mut seen = Vec::new();
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line.unwrap();
        let done = line.starts_with("Load the settings with");
        seen.push(line);
        if done {
            break;
        }
    }
    assert!(
        seen.iter().any(|l| l.starts_with("--stay:")),
        "{}",
        seen.join("\n")
    );
    let env_text = std::fs::read_to_string(app.path().join(".local/standins.env")).unwrap();
    let setting = |key: &str| {
        env_text
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key}='")))
            .and_then(|v| v.strip_suffix('\''))
            .unwrap_or_else(|| panic!("{key} missing from the env file"))
            .to_string()
    };
    let arm_url = setting("BACKUP_PILOT_ARM_URL");
    assert!(arm_url.starts_with("https://127.0.0.1:"), "{arm_url}");
    assert!(setting("BACKUP_PILOT_SERVICEBUS_URL").starts_with("https://"));
    assert!(setting("IDENTITY_ENDPOINT").starts_with("http://127.0.0.1:"));
    assert!(!setting("IDENTITY_HEADER").is_empty());
    assert_eq!(setting("BACKUP_PILOT_PROFILE"), "poc");
    let bundle = setting("BACKUP_PILOT_CA_BUNDLE");
    assert_eq!(setting("REQUESTS_CA_BUNDLE"), bundle);
    let kubeconfig =
        std::fs::read_to_string(app.path().join(".local/kubeconfig-aks-local-01.yaml")).unwrap();
    assert!(kubeconfig.contains("server: http"), "{kubeconfig}");

    let trust = backup_pilot::tls::TlsTrust::from_file(Path::new(&bundle)).unwrap();
    let status = tokio::runtime::Runtime::new().unwrap().block_on(async {
        trust
            .http_builder()
            .build()
            .unwrap()
            .get(format!("{arm_url}/subscriptions?api-version=2022-09-01"))
            .send()
            .await
            .map(|r| r.status().as_u16())
    });
    assert_eq!(
        status.unwrap(),
        401,
        "ARM answers over HTTPS and wants a token"
    );

    let interrupt = Command::new("kill")
        .args(["-INT", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupt.success());
    let exit = child.0.wait().unwrap();
    assert!(exit.success(), "{exit}");
}

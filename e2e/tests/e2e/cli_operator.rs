//! The operator commands as a person runs them: the real `backup-pilot` binary, configured by
//! environment variables as the function app is, with a managed-identity token from the local
//! token endpoint, against the ARM, Kubernetes and Service Bus stand-ins and Azurite. `plan`
//! only reads; `onboard` and `restore` enqueue through the real publisher (the onboard message
//! then onboards the cluster); `status` shows the fleet and one cluster with its live view.
//! The outputs printed here are the README's samples.

use crate::common;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use backup_pilot::handler::{AppState, app};
use backup_pilot::status::account_sas::AccountKey;
use backup_pilot::status::blob::{BlobJournal, StorageAuth};
use backup_pilot::status::store::StatusStore;
use backup_pilot_standins::LoopbackServer;
use backup_pilot_standins::arm::{ArmStandIn, ClusterSeed, EntraSeed};
use backup_pilot_standins::broker::{Broker, QueueSettings};
use backup_pilot_standins::servicebus::{LocalServiceBus, ServiceBusSettings};
use backup_pilot_standins::token::TokenIssuer;
use base64::Engine as _;
use common::chain::{Chain, LOCATION, RG, SUB, one_b2_node, poc, two_d2_nodes};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt as _;
use tower::ServiceExt as _;

struct Cli {
    env: Vec<(String, String)>,
}

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Cli {
    async fn run(&self, args: &[&str], stdin: Option<&str>) -> Run {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_backup-pilot-e2e"));
        command
            .args(args)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().expect("the binary starts");
        if let Some(text) = stdin {
            let mut input = child.stdin.take().unwrap();
            input.write_all(text.as_bytes()).await.unwrap();
        }
        let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .expect("the command finishes within a minute")
            .unwrap();
        let run = Run {
            ok: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        };
        println!("$ backup-pilot {}\n{}", args.join(" "), run.stdout);
        if !run.stderr.is_empty() {
            println!("(stderr)\n{}", run.stderr);
        }
        run
    }
}

/// An Entra-integrated cluster (local accounts off) with its own Kubernetes stand-in.
async fn seed(
    chain: &Chain,
    name: &str,
    pools: Vec<backup_pilot_standins::arm::NodePoolSeed>,
) -> String {
    chain
        .seed_cluster(
            ClusterSeed::new(SUB, RG, name, LOCATION)
                .with_node_pools(pools)
                .with_entra(EntraSeed::default(), true),
        )
        .await
}

/// Delivers a message body from the local Service Bus to the cluster-events function.
async fn deliver(chain: &Chain, message_id: &str, body: &[u8]) {
    let invocation = json!({
        "Data": { "event": base64::engine::general_purpose::STANDARD.encode(body) },
        "Metadata": { "MessageId": format!("\"{message_id}\""), "DeliveryCount": "1" }
    });
    let response = app(
        AppState {
            engine: chain.engine.clone(),
        },
        1 << 20,
    )
    .oneshot(
        axum::http::Request::post("/cluster-events")
            .header("content-type", "application/json")
            .body(axum::body::Body::from(invocation.to_string()))
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_commands_against_the_stand_ins() {
    let Some(azurite) = common::azurite::azurite() else {
        return;
    };
    let issuer = TokenIssuer::new("cli-operator");
    let token_endpoint = issuer.spawn().await.unwrap();
    let settings = backup_pilot::workflow::settings::OnboardingSettings {
        first_backup: true,
        ..poc()
    };
    let chain = Chain::build(settings, issuer.clone(), ArmStandIn::builder()).await;
    let broker = Arc::new(Broker::new(chain.clock.clone()));
    for queue in [
        "cluster-events",
        "workflow",
        "restore-requests",
        "dead-letters",
    ] {
        broker
            .create_queue(queue, QueueSettings::default())
            .unwrap();
    }
    let bus = LocalServiceBus::new(
        broker.clone(),
        issuer.clone(),
        ServiceBusSettings::default(),
    );
    let bus_server = LoopbackServer::start_tls(bus.router()).await.unwrap();
    let container = format!("cli-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let ca_bundle = crate::common::ca_bundle();
    let cli = Cli {
        env: [
            ("AZURE_CREDENTIAL", "managed-identity"),
            ("IDENTITY_ENDPOINT", token_endpoint.as_str()),
            ("IDENTITY_HEADER", issuer.identity_header()),
            ("BACKUP_PILOT_ARM_URL", chain.arm_url.as_str()),
            ("BACKUP_PILOT_SERVICEBUS_URL", bus_server.url()),
            ("BACKUP_PILOT_STATUS_BLOB_URL", azurite.url.as_str()),
            ("BACKUP_PILOT_STATUS_CONTAINER", container.as_str()),
            ("BACKUP_PILOT_CA_BUNDLE", ca_bundle.as_str()),
            ("BACKUP_PILOT_PROFILE", "poc"),
            ("BACKUP_PILOT_RETENTION_DAYS", "1"),
            ("BACKUP_PILOT_FIRST_BACKUP", "true"),
            ("RUST_LOG", "warn"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
    };

    // One cluster protected, one too small for the extension, one new.
    let shop = seed(&chain, "aks-shop", two_d2_nodes()).await;
    let tiny = seed(&chain, "aks-tiny", one_b2_node()).await;
    let blog = seed(&chain, "aks-blog", two_d2_nodes()).await;
    chain.start_onboarding(&shop, "write-1").await;
    chain.start_onboarding(&tiny, "write-2").await;
    chain.run_all().await;

    // plan: reads only.
    chain.arm.clear_journal();
    let plan = cli.run(&["plan", "--cluster", &blog], None).await;
    assert!(plan.ok, "{}", plan.stderr);
    let writes: Vec<String> = chain
        .arm
        .journal()
        .into_iter()
        .filter(|r| r.method != "GET")
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(writes, Vec::<String>::new(), "plan makes zero writes");
    for want in [
        "Read-only: making this plan changed nothing.",
        "  = in place  provider",
        "  + create    backup vault",
        "  + create    role assignment",
        &format!("Start it with: backup-pilot onboard --cluster {blog}"),
    ] {
        assert!(plan.stdout.contains(want), "{want}:\n{}", plan.stdout);
    }
    let json_plan = cli.run(&["plan", "--cluster", &blog, "--json"], None).await;
    let doc: Value = serde_json::from_str(&json_plan.stdout).unwrap();
    assert_eq!(doc["verdict"]["outcome"], "proceeds");

    // onboard: one message on cluster-events, through the real publisher and credential.
    let onboard = cli
        .run(
            &["onboard", "--cluster", &blog, "--request-id", "op-1"],
            None,
        )
        .await;
    assert!(onboard.ok, "{}", onboard.stderr);
    let queued = broker.peek("cluster-events").unwrap();
    assert_eq!(queued.len(), 1);
    assert!(
        onboard
            .stdout
            .contains(&format!("  message id:  {}", queued[0].message_id)),
        "{}",
        onboard.stdout
    );
    assert!(
        onboard.stdout.contains(&format!(
            "Follow it with: backup-pilot status --cluster {blog}"
        )),
        "{}",
        onboard.stdout
    );
    // The same request again: the same message id.
    let again = cli
        .run(
            &[
                "onboard",
                "--cluster",
                &blog,
                "--request-id",
                "op-1",
                "--json",
            ],
            None,
        )
        .await;
    let again: Value = serde_json::from_str(&again.stdout).unwrap();
    assert_eq!(again["messageId"], queued[0].message_id.as_str());
    // The function app receives it and onboards the cluster.
    deliver(&chain, &queued[0].message_id, &queued[0].body).await;
    chain.run_all().await;
    let records = chain.journal.records();
    assert!(
        records.iter().any(|r| r.subject.eq_ignore_ascii_case(&blog)
            && matches!(&r.transition, backup_pilot::engine::journal::Transition::Done { summary } if summary.starts_with("protected:"))),
        "the enqueued onboarding protected the cluster"
    );

    // restore: the request from standard input.
    let request =
        json!({"requestId": "restore-7", "sourceClusterId": shop, "includedNamespaces": ["shop"]});
    let restore = cli
        .run(&["restore", "--request", "-"], Some(&request.to_string()))
        .await;
    assert!(restore.ok, "{}", restore.stderr);
    let restores = broker.peek("restore-requests").unwrap();
    assert_eq!(restores.len(), 1);
    let body: Value = serde_json::from_slice(&restores[0].body).unwrap();
    assert_eq!(body, request);
    let bad = cli
        .run(
            &["restore", "--request", "-"],
            Some(r#"{"includedNamespaces": []}"#),
        )
        .await;
    assert!(!bad.ok);
    assert!(bad.stderr.contains("name the source"), "{}", bad.stderr);

    // The status store as the function app leaves it.
    let store = BlobJournal::new(
        &url::Url::parse(&azurite.url).unwrap(),
        &container,
        StorageAuth::AccountKey(AccountKey::azurite()),
        50,
    )
    .unwrap()
    .with_transport(crate::common::blob_transport());
    for record in chain.journal.records() {
        store.record(record).await;
    }
    let fleet = cli.run(&["status"], None).await;
    assert!(fleet.ok, "{}", fleet.stderr);
    assert!(
        fleet
            .stdout
            .contains("3 clusters: 2 protected, 0 in progress, 1 failed"),
        "{}",
        fleet.stdout
    );
    assert!(
        fleet.stdout.contains("next:  scale to 2 nodes"),
        "{}",
        fleet.stdout
    );

    let failed = cli.run(&["status", "--cluster", &tiny], None).await;
    assert!(failed.ok, "{}", failed.stderr);
    for want in [
        "Phase:        failed",
        "Fix:          scale to 2 nodes: `az aks nodepool scale --resource-group rg-apps --cluster-name aks-tiny --name system --node-count 2`",
        &format!("then start onboarding again with `backup-pilot onboard --cluster {tiny}`"),
        "Extension:          not installed",
        "Backup CRDs:        backuphooks.clusterbackup.dataprotection.microsoft.com MISSING",
        "Extension pods:     none in dataprotection-microsoft",
        &format!("fix: run: backup-pilot onboard --cluster {tiny}"),
    ] {
        assert!(failed.stdout.contains(want), "{want}:\n{}", failed.stdout);
    }

    let protected = cli.run(&["status", "--cluster", &shop], None).await;
    assert!(protected.ok, "{}", protected.stderr);
    for want in [
        "Phase:        protected",
        "Extension:          azure-aks-backup Succeeded",
        "ProtectionConfigured",
        "Backup     Completed",
        "Extension pods:     2 of 2 Ready",
        "Problems:           none",
    ] {
        assert!(
            protected.stdout.contains(want),
            "{want}:\n{}",
            protected.stdout
        );
    }
    let doc = cli
        .run(&["status", "--cluster", &shop, "--json"], None)
        .await;
    let doc: Value = serde_json::from_str(&doc.stdout).unwrap();
    assert_eq!(doc["phase"], "protected");
    assert_eq!(doc["live"]["kubernetes"]["ready"], true);
}

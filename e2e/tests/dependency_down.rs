//! A `/workflow` invocation whose dependency is down answers within the invocation budget with
//! a scheduled retry, instead of holding a concurrency slot and the message lock: once with
//! the managed-identity token endpoint refusing connections (azure_identity's real code path),
//! once with a token endpoint that accepts and never answers. One test in this binary, because
//! azure_identity reads IDENTITY_ENDPOINT/IDENTITY_HEADER from the process environment.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use backup_pilot::arm::{ArmClient, ArmOptions};
use backup_pilot::auth::CredentialSource;
use backup_pilot::bus::RecordingPublisher;
use backup_pilot::clock::{Clock, SystemClock};
use backup_pilot::engine::{Engine, InvocationBudget, Outcome, Registry, Step, StepError};
use backup_pilot::envelope::{Envelope, WorkflowKind};
use backup_pilot::handler::{AppState, serve};
use backup_pilot::workflow::Ctx;
use base64::Engine as _;
use serde_json::{Value, json};

const SUB: &str = "6f1b4e6a-2d9c-4b7e-9a51-3c0f8e2d7a10";

/// Reads a resource group through ARM: needs a token first.
struct ReadsArm;
#[async_trait]
impl Step<Ctx> for ReadsArm {
    fn name(&self) -> &'static str {
        "read_group"
    }
    async fn run(&self, ctx: &Ctx, _env: &Envelope) -> Result<Outcome, StepError> {
        ctx.arm
            .get(
                &format!("/subscriptions/{SUB}/resourceGroups/rg"),
                "2022-09-01",
            )
            .await?;
        Ok(Outcome::done("read"))
    }
}

/// Builds the managed-identity credential against `endpoint` and serves the real handler with
/// it; returns the handler URL and what it published.
async fn handler_with_token_endpoint(
    endpoint: &str,
    budget: InvocationBudget,
) -> (String, Arc<RecordingPublisher>) {
    // SAFETY: this test binary has exactly one test, which sets the variables before building
    // each credential, and no other thread reads the environment concurrently.
    unsafe {
        std::env::set_var("IDENTITY_ENDPOINT", endpoint);
        std::env::set_var("IDENTITY_HEADER", "test-identity-header");
    }
    let source = CredentialSource::from_env(|k| std::env::var(k).ok()).unwrap();
    assert_eq!(
        source,
        CredentialSource::ManagedIdentity { client_id: None }
    );
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let arm = ArmClient::new(
        reqwest::Client::new(),
        ArmOptions {
            // Never reached: every call needs a token first.
            base_url: "http://127.0.0.1:9".into(),
            ..ArmOptions::default()
        },
        source.build().unwrap(),
        clock.clone(),
    )
    .unwrap();
    let publisher = Arc::new(RecordingPublisher::default());
    let ctx = Ctx {
        arm: Arc::new(arm),
        ..Ctx::with_defaults(clock, publisher.clone())
    };
    let registry = Registry::default()
        .add(WorkflowKind::Onboard, ReadsArm)
        .starts_with(WorkflowKind::Onboard, "read_group", "ClusterCreated");
    let state = AppState {
        engine: Engine::new(ctx, registry).with_budget(budget),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(serve(listener, state, 1 << 20, std::future::pending()));
    (url, publisher)
}

/// POSTs a first-step envelope as the host does; returns the status, the answer and how long
/// it took.
async fn invoke_workflow(url: &str) -> (u16, Value, Duration) {
    let env = Envelope::start(
        WorkflowKind::Onboard,
        &format!(
            "/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/aks"
        ),
        "g-1",
        "read_group",
        "ClusterCreated",
        SystemClock.now(),
        Duration::from_secs(30 * 60),
    );
    let payload = json!({
        "Data": {"message": base64::engine::general_purpose::STANDARD.encode(env.encode())},
        "Metadata": {"DeliveryCount": "1", "MessageId": format!("\"{}\"", env.message_id())},
    });
    let started = Instant::now();
    let resp = reqwest::Client::new()
        .post(format!("{url}/workflow"))
        .json(&payload)
        // The test's own guard: far above the bound under test.
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .expect("the invocation answers");
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap();
    (status, body, started.elapsed())
}

/// The scheduled retry the invocation published.
fn scheduled_retry(publisher: &RecordingPublisher) -> Envelope {
    let sent = publisher.sent();
    assert_eq!(sent.len(), 1, "one message: the retry");
    assert_eq!(sent[0].queue, "workflow");
    assert!(
        sent[0].scheduled_enqueue_time.is_some(),
        "a scheduled retry"
    );
    Envelope::decode(&sent[0].body).unwrap()
}

#[tokio::test]
async fn a_workflow_invocation_answers_in_time_with_a_retry_when_the_token_endpoint_is_down() {
    // 1. The token endpoint refuses connections: a port bound and released.
    let refused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}/msi/token", refused.local_addr().unwrap());
    drop(refused);
    let budget = InvocationBudget {
        step: Duration::from_secs(20),
        hand_off: Duration::from_secs(5),
    };
    let (url, publisher) = handler_with_token_endpoint(&endpoint, budget).await;
    let (status, answer, took) = invoke_workflow(&url).await;
    assert_eq!(status, 200, "{answer}");
    assert!(
        took < budget.step,
        "a refused token endpoint fails fast: {took:?}"
    );
    let log = answer["Logs"][0].as_str().unwrap();
    assert!(log.contains("Retrying"), "{log}");
    assert!(log.contains("token"), "the reason names the token: {log}");
    assert_eq!(scheduled_retry(&publisher).attempt, 1);

    // 2. A token endpoint that accepts connections and never answers: the step budget ends
    // the wait, and the step is retried later.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}/msi/token", silent.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let budget = InvocationBudget {
        step: Duration::from_secs(2),
        hand_off: Duration::from_secs(2),
    };
    let (url, publisher) = handler_with_token_endpoint(&endpoint, budget).await;
    let (status, answer, took) = invoke_workflow(&url).await;
    assert_eq!(status, 200, "{answer}");
    assert!(
        took >= budget.step && took < budget.step + budget.hand_off,
        "answered when the step budget ran out: {took:?}"
    );
    let log = answer["Logs"][0].as_str().unwrap();
    assert!(log.contains("Retrying") && log.contains("budget"), "{log}");
    let retry = scheduled_retry(&publisher);
    assert_eq!((retry.attempt, retry.failures), (1, 1));
}

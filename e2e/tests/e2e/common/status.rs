//! Shared pieces of the status tests: host-shaped invocations (a `workflow` message, a
//! `status` GET), and an onboarding step whose outcome depends on the cluster's name
//! (`…-ok` is protected, `…-busy` waits on a throttled ARM, `…-bad` fails with a fix).

use std::time::Duration;

use async_trait::async_trait;
use backup_pilot::engine::{Outcome, Registry, Step, StepError, fix};
use backup_pilot::envelope::{Envelope, WorkflowKind};
use backup_pilot::workflow::Ctx;
use base64::Engine as _;
use serde_json::{Value, json};

/// A secret-looking string the failing step puts in its error; no output may show it.
pub const LEAKED_SIG: &str = "SIGNATUREVALUE123";
/// A token the failing step puts in its error; no output may show it.
pub const LEAKED_TOKEN: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOi";

/// The fix the failing step names.
pub const FIX: &str =
    "grant the function app's managed identity User Access Administrator on the resource group";

/// A cluster id in subscription `s1`, group `rg`.
pub fn cluster(name: &str) -> String {
    format!(
        "/subscriptions/sub-1/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/{name}"
    )
}

struct Converge;

#[async_trait]
impl Step<Ctx> for Converge {
    fn name(&self) -> &'static str {
        "assign_roles"
    }
    async fn run(&self, _ctx: &Ctx, env: &Envelope) -> Result<Outcome, StepError> {
        if env.subject.ends_with("-ok") {
            Ok(Outcome::done(
                "protected: backup instance is ProtectionConfigured",
            ))
        } else if env.subject.ends_with("-busy") {
            Err(StepError::Transient {
                message: "ARM answered 429 Too Many Requests".into(),
                retry_after: Some(Duration::from_secs(120)),
            })
        } else {
            Err(StepError::Permanent {
                reason: fix::compose(
                    &format!(
                        "the role assignment was denied (403 AuthorizationFailed) for PUT https://management.azure.com/x?sig={LEAKED_SIG} with Authorization: Bearer {LEAKED_TOKEN}"
                    ),
                    FIX,
                ),
            })
        }
    }
}

/// Onboarding with the one step above.
pub fn registry() -> Registry<Ctx> {
    Registry::default()
        .add(WorkflowKind::Onboard, Converge)
        .starts_with(WorkflowKind::Onboard, "assign_roles", "ClusterCreated")
}

/// POSTs a host invocation to the handler; returns the HTTP status and the JSON answer.
pub async fn invoke(url: &str, function: &str, payload: &Value) -> (u16, Value) {
    let resp = crate::common::https()
        .post(format!("{url}/{function}"))
        .json(payload)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

/// Runs the first onboarding step for `subject` through the `workflow` function.
pub async fn run_onboarding_step(url: &str, subject: &str, now: time::OffsetDateTime) {
    let env = Envelope::start(
        WorkflowKind::Onboard,
        subject,
        "gen-1",
        "assign_roles",
        "ClusterCreated",
        now,
        Duration::from_secs(3600),
    );
    let payload = json!({
        "Data": { "message": base64::engine::general_purpose::STANDARD.encode(env.encode()) },
        "Metadata": {
            "DeliveryCount": "1",
            "MessageId": serde_json::to_string(&env.message_id()).unwrap(),
        }
    });
    let (status, body) = invoke(url, "workflow", &payload).await;
    assert_eq!(status, 200, "{body}");
}

/// `GET /api/status[/{cluster}]` as the host sends it (non-forwarding HTTP trigger), with the
/// cluster in `Params` as the route `status/{*cluster}` puts it.
pub async fn get_status(url: &str, cluster: Option<&str>) -> (u16, Value, String) {
    get_status_as(url, cluster, "application/json").await
}

/// `GET /api/status[/{cluster}]` as a browser asks for it (`Accept: text/html…`): the
/// answer's status, Content-Type, page and the whole host answer as text.
pub async fn get_status_page(url: &str, cluster: Option<&str>) -> (u16, String, String, String) {
    let (status, body, text) = get_status_as(
        url,
        cluster,
        "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    )
    .await;
    let answer: Value = serde_json::from_str(&text).unwrap();
    let content_type = answer["Outputs"]["res"]["headers"]["Content-Type"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    (
        status,
        content_type,
        body.as_str().unwrap_or_default().to_string(),
        text,
    )
}

async fn get_status_as(url: &str, cluster: Option<&str>, accept: &str) -> (u16, Value, String) {
    let path = cluster.map_or(String::new(), |c| format!("/{}", c.trim_start_matches('/')));
    let mut req = json!({
        "Url": format!("https://pilot.azurewebsites.net/api/status{path}?code=FUNCTIONKEY"),
        "Method": "GET",
        "Query": {"code": "FUNCTIONKEY"},
        "Headers": {"Accept": [accept]},
    });
    if let Some(c) = cluster {
        req["Params"] = json!({"cluster": c.trim_start_matches('/')});
    }
    let (status, answer) = invoke(
        url,
        "status",
        &json!({"Data": {"req": req}, "Metadata": {}}),
    )
    .await;
    assert_eq!(
        status, 200,
        "the host always gets 200 for HTTP triggers: {answer}"
    );
    let res = &answer["Outputs"]["res"];
    let text = answer.to_string();
    (
        res["statusCode"].as_u64().unwrap() as u16,
        res["body"].clone(),
        text,
    )
}

/// Asserts no secret reached an answer.
pub fn assert_no_secrets(text: &str) {
    for secret in [
        LEAKED_SIG,
        LEAKED_TOKEN,
        "FUNCTIONKEY",
        backup_pilot::status::account_sas::AZURITE_KEY,
    ] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
    for (i, _) in text.match_indices("sig=") {
        assert!(
            text[i + 4..].starts_with("REDACTED"),
            "a signature leaked: {}",
            &text[i..text.len().min(i + 40)]
        );
    }
}

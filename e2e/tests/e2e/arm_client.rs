//! The ARM client against a scripted local server: headers it sends (token, exact Accept,
//! request id), the one retry policy (quick transient retries inside a call, long waits handed
//! back, 429 holding back further calls), LRO polling, and the refusal to send the token to a
//! polling URL on another host.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use backup_pilot::arm::{
    ArmClient, ArmError, ArmOptions, FinalState, OperationKind, PendingOperation, Polled,
    QuickRetry,
};
use backup_pilot::clock::SystemClock;
use serde_json::{Value, json};

#[derive(Debug)]
struct Fixed;

#[async_trait::async_trait]
impl TokenCredential for Fixed {
    async fn get_token(
        &self,
        scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        Ok(AccessToken::new(
            format!("token-for-{}", scopes.join(" ")),
            azure_core::time::OffsetDateTime::now_utc() + azure_core::time::Duration::hours(1),
        ))
    }
}

/// One request the server saw: method, URI, headers, body.
type Seen = (Method, String, HeaderMap, Bytes);

/// One scripted answer: status, headers, body.
type Answer = (u16, Vec<(&'static str, String)>, Value);

#[derive(Clone, Default)]
struct Script {
    answers: Arc<Mutex<VecDeque<Answer>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

async fn serve(
    State(s): State<Script>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    s.seen
        .lock()
        .unwrap()
        .push((method, uri.to_string(), headers, body));
    let (status, hdrs, body) = s.answers.lock().unwrap().pop_front().unwrap_or((
        500,
        vec![],
        json!({"error": {"code": "NoScript", "message": "no answer left"}}),
    ));
    let mut resp = if body.is_null() {
        StatusCode::from_u16(status).unwrap().into_response()
    } else {
        (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response()
    };
    for (k, v) in hdrs {
        resp.headers_mut().insert(k, v.parse().unwrap());
    }
    resp
}

async fn start(answers: Vec<Answer>) -> (Script, String) {
    let script = Script::default();
    script.answers.lock().unwrap().extend(answers);
    let app = Router::new().fallback(serve).with_state(script.clone());
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (script, base)
}

fn client(base: &str) -> ArmClient {
    let options = ArmOptions {
        base_url: base.to_string(),
        scope: "https://management.example/.default".into(),
        quick_retry: QuickRetry {
            retries: 2,
            initial: Duration::from_millis(5),
            max_wait: Duration::from_millis(50),
        },
        ..ArmOptions::default()
    };
    ArmClient::new(
        crate::common::https(),
        options,
        Arc::new(Fixed),
        Arc::new(SystemClock),
    )
    .unwrap()
}

#[tokio::test]
async fn requests_carry_the_token_the_exact_accept_header_and_a_request_id() {
    let (script, base) = start(vec![(200, vec![], json!({"name": "rg"}))]).await;
    let arm = client(&base);
    let body = arm
        .get("/subscriptions/s/resourceGroups/rg", "2022-09-01")
        .await
        .unwrap();
    assert_eq!(body["name"], "rg");
    let seen = script.seen.lock().unwrap();
    let (method, uri, headers, _) = &seen[0];
    assert_eq!(method, Method::GET);
    assert_eq!(
        uri,
        "/subscriptions/s/resourceGroups/rg?api-version=2022-09-01"
    );
    assert_eq!(
        headers["authorization"],
        "Bearer token-for-https://management.example/.default"
    );
    assert_eq!(
        headers["accept"], "application/json",
        "never the IEEE754Compatible variant"
    );
    assert!(uuid::Uuid::parse_str(headers["x-ms-client-request-id"].to_str().unwrap()).is_ok());
}

#[tokio::test]
async fn quick_transient_failures_are_retried_inside_the_call_with_one_request_id() {
    let (script, base) = start(vec![
        (
            503,
            vec![],
            json!({"error": {"code": "ServiceUnavailable", "message": "busy"}}),
        ),
        (500, vec![("retry-after-ms", "10".into())], Value::Null),
        (200, vec![], json!({"ok": true})),
    ])
    .await;
    let arm = client(&base);
    let body = arm.get("/subscriptions/s/x", "v").await.unwrap();
    assert_eq!(body["ok"], true);
    let seen = script.seen.lock().unwrap();
    assert_eq!(seen.len(), 3);
    let ids: Vec<_> = seen
        .iter()
        .map(|(_, _, h, _)| h["x-ms-client-request-id"].clone())
        .collect();
    assert!(
        ids.windows(2).all(|w| w[0] == w[1]),
        "one logical call keeps its request id"
    );
}

#[tokio::test]
async fn a_long_retry_after_is_handed_back_and_holds_back_the_next_call() {
    let (script, base) = start(vec![
        (
            429,
            vec![("retry-after", "90".into())],
            json!({"error": {"code": "SubscriptionRequestsThrottled", "message": "slow down"}}),
        ),
        (
            404,
            vec![],
            json!({"error": {"code": "ResourceNotFound", "message": "gone"}}),
        ),
    ])
    .await;
    let arm = client(&base);
    let err = arm
        .put("/subscriptions/s/x", "v", &json!({}))
        .await
        .unwrap_err();
    assert!(err.is_transient());
    assert_eq!(err.retry_after(), Some(Duration::from_secs(90)));
    assert_eq!(err.code(), Some("SubscriptionRequestsThrottled"));
    // The next write to the same subscription is not sent at all.
    let held = arm
        .put("/subscriptions/s/y", "v", &json!({}))
        .await
        .unwrap_err();
    assert_eq!(held.code(), Some("HeldBack"));
    assert!(held.retry_after().unwrap() > Duration::from_secs(80));
    assert_eq!(script.seen.lock().unwrap().len(), 1);
    // Reads and other subscriptions are not held back.
    assert_eq!(
        arm.get_optional("/subscriptions/s/z", "v").await.unwrap(),
        None
    );
    assert_eq!(script.seen.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn permanent_errors_keep_code_message_and_advice() {
    let (_s, base) = start(vec![
        (403, vec![], json!({"error": {"code": "AuthorizationFailed", "message": "The client 'x' with object id 'y' does not have authorization to perform action 'Microsoft.Authorization/roleAssignments/write' over scope '/subscriptions/s'."}})),
        (406, vec![], Value::Null),
    ])
    .await;
    let arm = client(&base);
    let err = arm
        .put("/subscriptions/s/a", "v", &json!({}))
        .await
        .unwrap_err();
    assert!(!err.is_transient());
    let text = err.to_string();
    assert!(
        text.contains("AuthorizationFailed")
            && text.contains("Role Based Access Control Administrator assignment"),
        "{text}"
    );
    let err = arm
        .put("/subscriptions/s/b", "v", &json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("NotAcceptable"));
    assert!(!err.to_string().contains("token-for"), "no token in errors");
}

#[tokio::test]
async fn operations_are_polled_once_per_call_and_failures_keep_their_code() {
    let (script, base) = start(vec![
        (202, vec![("azure-asyncoperation", String::new()), ("retry-after", "7".into())], Value::Null),
        (200, vec![], json!({"status": "InProgress"})),
        (200, vec![], json!({"status": "Succeeded"})),
        (200, vec![], json!({"objectType": "OperationJobExtendedInfo", "jobId": "j1"})),
        (200, vec![], json!({"status": "Failed", "error": {"code": "UserErrorMissingMSIPermissionsOnSnapshotResourceGroup", "message": "m"}})),
    ])
    .await;
    // The first answer's header must point at the server itself.
    script.answers.lock().unwrap()[0].1[0].1 =
        format!("{base}/subscriptions/s/operationStatus/op1?api-version=v");
    script.answers.lock().unwrap()[0].1.push((
        "location",
        format!("{base}/subscriptions/s/operationResults/op1?api-version=v"),
    ));
    let arm = client(&base);
    let resp = arm
        .post("/subscriptions/s/validateForBackup", "v", Some(&json!({})))
        .await
        .unwrap();
    let op = resp
        .pending(
            "configure_backup:validate",
            FinalState::Location,
            arm.default_poll(),
        )
        .unwrap();
    assert_eq!(
        (op.kind, op.retry_after_secs),
        (OperationKind::AzureAsyncOperation, 7)
    );
    assert_eq!(
        arm.poll(&op).await.unwrap(),
        Polled::InProgress {
            retry_after: Duration::from_secs(7)
        }
    );
    match arm.poll(&op).await.unwrap() {
        Polled::Succeeded { body } => assert_eq!(body.unwrap()["jobId"], "j1"),
        other => panic!("{other:?}"),
    }
    let err = arm.poll(&op).await.unwrap_err();
    assert!(
        matches!(err, ArmError::OperationFailed(_)) && err.is_missing_roles(),
        "{err}"
    );
    let seen = script.seen.lock().unwrap();
    assert_eq!(seen[0].3.as_ref(), b"{}");
    assert_eq!(seen.len(), 5);
}

#[tokio::test]
async fn the_token_is_never_sent_to_another_host() {
    let (script, base) = start(vec![]).await;
    let arm = client(&base);
    let op = PendingOperation {
        label: "x".into(),
        kind: OperationKind::Location,
        url: "https://attacker.example/steal".into(),
        result_url: None,
        retry_after_secs: 1,
        expected_secs: None,
        started_at: None,
    };
    let err = arm.poll(&op).await.unwrap_err();
    assert!(matches!(err, ArmError::UntrustedPollingUrl { .. }), "{err}");
    assert!(script.seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_nearly_spent_write_quota_holds_back_further_writes() {
    let (script, base) = start(vec![
        (
            200,
            vec![("x-ms-ratelimit-remaining-subscription-writes", "3".into())],
            json!({"ok": 1}),
        ),
        (200, vec![], json!({"ok": 2})),
    ])
    .await;
    let arm = client(&base);
    arm.put("/subscriptions/s/a", "v", &json!({}))
        .await
        .unwrap();
    let held = arm
        .put("/subscriptions/s/b", "v", &json!({}))
        .await
        .unwrap_err();
    assert_eq!(held.code(), Some("HeldBack"));
    assert!(held.is_transient());
    // Held for the default pause (time for the write bucket to refill 20 tokens), plus its
    // place in the queue: first, a tenth of a second at 10 writes a second.
    let wait = held.retry_after().unwrap();
    assert!(
        wait >= Duration::from_secs(1) && wait <= Duration::from_millis(2100),
        "{wait:?}"
    );
    // Reads still go out.
    assert_eq!(arm.get("/subscriptions/s/c", "v").await.unwrap()["ok"], 2);
    assert_eq!(script.seen.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn a_step_can_ask_for_room_to_write_before_spending_reads() {
    let (script, base) = start(vec![(
        200,
        vec![("x-ms-ratelimit-remaining-subscription-writes", "3".into())],
        json!({"ok": 1}),
    )])
    .await;
    let arm = client(&base);
    assert!(
        arm.room_to_write("/subscriptions/s/a").is_ok(),
        "nothing held yet"
    );
    arm.put("/subscriptions/s/a", "v", &json!({}))
        .await
        .unwrap();
    // The write quota is nearly spent: the answer a write would get, without sending one.
    let held = arm.room_to_write("/subscriptions/s/b").unwrap_err();
    assert_eq!(held.code(), Some("HeldBack"));
    assert!(held.retry_after().is_some());
    assert_eq!(
        arm.room_to_post("/subscriptions/s/b/validate")
            .unwrap_err()
            .code(),
        Some("HeldBack"),
        "a POST is a write"
    );
    assert!(
        arm.room_to_write("/subscriptions/other/b").is_ok(),
        "another subscription has its own quota"
    );
    assert_eq!(script.seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_lone_429_on_an_action_holds_back_no_other_callers_action() {
    let validate = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.DataProtection/backupVaults/bv/validateForBackup";
    let (script, base) = start(vec![
        (
            429,
            vec![("retry-after", "60".into())],
            json!({"error": {"code": "TooManyRequests", "message": "The resource provider is throttling requests."}}),
        ),
        (202, vec![], json!({})),
    ])
    .await;
    let arm = client(&base);
    let err = arm
        .post(validate, "v", Some(&json!({"cluster": "a"})))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("TooManyRequests"));
    // Many clusters validate against one vault: another cluster's validation goes out.
    assert!(arm.room_to_post(validate).is_ok());
    arm.post(validate, "v", Some(&json!({"cluster": "b"})))
        .await
        .unwrap();
    assert_eq!(script.seen.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn a_provider_429_holds_back_only_the_operation_it_throttled() {
    let vault = |name: &str| {
        format!(
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.DataProtection/backupVaults/{name}"
        )
    };
    let throttled = || {
        (
            429,
            vec![("retry-after", "60".into())],
            json!({"error": {"code": "TooManyRequests", "message": "The resource provider is throttling requests."}}),
        )
    };
    let (script, base) = start(vec![
        throttled(),
        (200, vec![], json!({"ok": "bv-2"})),
        throttled(),
        (200, vec![], json!({"ok": "storage"})),
    ])
    .await;
    let arm = client(&base);
    let err = arm.put(&vault("bv-1"), "v", &json!({})).await.unwrap_err();
    assert_eq!(err.code(), Some("TooManyRequests"));
    // The throttled request waits, and says why.
    let held = arm.put(&vault("bv-1"), "v", &json!({})).await.unwrap_err();
    assert_eq!(held.code(), Some("HeldBack"));
    assert!(
        held.to_string()
            .contains("the resource provider throttled this operation"),
        "{held}"
    );
    assert_eq!(script.seen.lock().unwrap().len(), 1);
    // One 429 may be one noisy request: the same operation on another vault goes out.
    let other_vault = arm.put(&vault("bv-2"), "v", &json!({})).await.unwrap();
    assert_eq!(other_vault.body.unwrap()["ok"], "bv-2");
    // A second 429 on the operation, and half its answers are 429s: the provider throttles
    // the operation, so it waits on every vault.
    let err = arm.put(&vault("bv-3"), "v", &json!({})).await.unwrap_err();
    assert_eq!(err.code(), Some("TooManyRequests"));
    let held = arm.put(&vault("bv-4"), "v", &json!({})).await.unwrap_err();
    assert_eq!(held.code(), Some("HeldBack"));
    assert_eq!(script.seen.lock().unwrap().len(), 3);
    // Another write in the same subscription goes out.
    let other = arm
        .put(
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/st1",
            "v",
            &json!({}),
        )
        .await
        .unwrap();
    assert_eq!(other.body.unwrap()["ok"], "storage");
    assert_eq!(script.seen.lock().unwrap().len(), 4);
}

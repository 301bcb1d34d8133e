//! The publisher's exact Service Bus REST requests, with a bearer token that azure_identity's
//! real managed-identity code path fetched from the local token endpoint. One test in this
//! binary, because azure_identity reads IDENTITY_ENDPOINT/IDENTITY_HEADER from the process
//! environment.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use backup_pilot::auth::CredentialSource;
use backup_pilot::bus::rest::{BusAuth, ServiceBusRest};
use backup_pilot::bus::{OutgoingMessage, Publisher};
use backup_pilot_standins::token::TokenIssuer;
use serde_json::{Value, json};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<(String, HeaderMap, Bytes)>>>);

async fn capture(
    State(c): State<Captured>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (axum::http::StatusCode, &'static str) {
    c.0.lock().unwrap().push((uri.to_string(), headers, body));
    (axum::http::StatusCode::CREATED, "")
}

#[tokio::test]
async fn sends_exact_rest_requests_with_an_entra_token_from_azure_identity() {
    let issuer = TokenIssuer::new("local-identity-header");
    let endpoint = issuer.spawn().await.unwrap();
    // SAFETY: this test binary has exactly one test, and the variables are set before any
    // credential is built; no other thread reads the environment concurrently.
    unsafe {
        std::env::set_var("IDENTITY_ENDPOINT", &endpoint);
        std::env::set_var("IDENTITY_HEADER", issuer.identity_header());
    }
    let source = CredentialSource::from_env(|k| std::env::var(k).ok()).unwrap();
    assert_eq!(
        source,
        CredentialSource::ManagedIdentity { client_id: None }
    );
    let credential = source.build().unwrap();

    let captured = Captured::default();
    let app = axum::Router::new()
        .route("/{queue}/messages", axum::routing::post(capture))
        .with_state(captured.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let publisher = ServiceBusRest::new(reqwest::Client::new(), &base, BusAuth::Entra(credential));
    let mut msg = OutgoingMessage::json(
        "workflow",
        "wf-1:assign_roles:2",
        br#"{"version":1}"#.to_vec(),
    );
    msg.scheduled_enqueue_time = Some(time::macros::datetime!(2026-03-01 12:30:05 UTC));
    msg.correlation_id = Some("wf-1".into());
    msg.label = Some("ExtensionReady".into());
    msg.properties.insert(
        "traceparent".into(),
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into(),
    );
    msg.properties.insert(
        "Diagnostic-Id".into(),
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into(),
    );
    publisher.send(msg.clone()).await.unwrap();

    let mut second = msg.clone();
    second.message_id = "wf-2:check_cluster:0".into();
    second.scheduled_enqueue_time = None;
    publisher
        .send_batch("workflow", vec![msg, second])
        .await
        .unwrap();

    let requests = captured.0.lock().unwrap().clone();
    assert_eq!(requests.len(), 2);

    let (uri, headers, body) = &requests[0];
    assert_eq!(uri, "/workflow/messages");
    let auth = headers["authorization"].to_str().unwrap();
    assert!(
        auth.starts_with("Bearer local-"),
        "a bearer token, not {auth:.12}…"
    );
    issuer
        .check(Some(auth), "https://servicebus.azure.net")
        .expect("token issued by the endpoint for Service Bus");
    assert_eq!(
        issuer.requests(),
        1,
        "azure_identity caches the token across sends"
    );
    assert_eq!(headers["content-type"], "application/json");
    let broker: Value =
        serde_json::from_str(headers["brokerproperties"].to_str().unwrap()).unwrap();
    assert_eq!(
        broker,
        json!({
            "MessageId": "wf-1:assign_roles:2",
            "ScheduledEnqueueTimeUtc": "Sun, 01 Mar 2026 12:30:05 GMT",
            "CorrelationId": "wf-1",
            "Label": "ExtensionReady"
        })
    );
    assert_eq!(
        headers["traceparent"],
        "\"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\""
    );
    assert_eq!(
        headers["diagnostic-id"],
        "\"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\""
    );
    assert_eq!(body.as_ref(), br#"{"version":1}"#);

    let (uri, headers, body) = &requests[1];
    assert_eq!(uri, "/workflow/messages");
    assert_eq!(
        headers["content-type"],
        "application/vnd.microsoft.servicebus.json"
    );
    assert!(headers.get("brokerproperties").is_none());
    let batch: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(batch.as_array().unwrap().len(), 2);
    assert_eq!(batch[0]["Body"], r#"{"version":1}"#);
    assert_eq!(
        batch[0]["BrokerProperties"]["ScheduledEnqueueTimeUtc"],
        "Sun, 01 Mar 2026 12:30:05 GMT"
    );
    assert_eq!(
        batch[1]["BrokerProperties"],
        json!({"MessageId": "wf-2:check_cluster:0", "CorrelationId": "wf-1", "Label": "ExtensionReady"})
    );
    assert_eq!(
        batch[0]["UserProperties"]["traceparent"],
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    );
}

//! The local host and Service Bus stand-ins, driven the way the product uses them: messages are
//! sent over the Service Bus REST contract and arrive at a handler over the Functions host's
//! HTTP contract. Time is a manual clock unless a process is spawned; every wait is bounded.

use std::path::Path;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use backup_pilot::bus::rest::{BusAuth, ServiceBusRest};
use backup_pilot::bus::sas::SasKey;
use backup_pilot::bus::{BusError, OutgoingMessage, Publisher};
use backup_pilot::clock::{Clock, ManualClock, ScaledClock};
use backup_pilot::engine::Engine;
use backup_pilot::handler::invocation::Invocation;
use backup_pilot::handler::{self, AppState};
use backup_pilot::workflow::Ctx;
use backup_pilot_standins::LocalEnvironment;
use backup_pilot_standins::broker::{MAX_DELIVERY_COUNT_EXCEEDED, Message, QueueSettings};
use backup_pilot_standins::functions_host::TriggerDetail;
use backup_pilot_standins::host_payload::InvocationFailure;
use backup_pilot_standins::servicebus::ServiceBusSettings;
use serde_json::{Value, json};
use time::macros::datetime;

const WAIT: Duration = Duration::from_secs(20);

/// What a test handler saw.
#[derive(Debug, Clone)]
struct Call {
    function: String,
    headers: HeaderMap,
    invocation: Invocation,
    raw: Value,
}

/// A custom handler that records calls; it fails the first `failures` calls with 500, and when
/// `gate` is set holds each call until `gate` calls run at once (at most two seconds), then a
/// little longer, tracking the most calls it saw at once.
#[derive(Clone, Default)]
struct Recorder {
    calls: Arc<Mutex<Vec<Call>>>,
    failures: Arc<AtomicU32>,
    gate: Arc<AtomicUsize>,
    running: Arc<AtomicUsize>,
    most_running: Arc<AtomicUsize>,
}

impl Recorder {
    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    fn calls_for(&self, message_id: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.invocation.message_id().as_deref() == Some(message_id))
            .collect()
    }

    async fn serve(&self) -> String {
        let app = Router::new()
            .route("/", get(|| async { "ready" }))
            .route("/{function}", post(record))
            .with_state(self.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }
}

async fn record(
    State(rec): State<Recorder>,
    UrlPath(function): UrlPath<String>,
    headers: HeaderMap,
    body: String,
) -> axum::response::Response {
    let now = rec.running.fetch_add(1, Ordering::SeqCst) + 1;
    rec.most_running.fetch_max(now, Ordering::SeqCst);
    let gate = rec.gate.load(Ordering::SeqCst);
    if gate > 0 {
        let give_up = tokio::time::Instant::now() + Duration::from_secs(2);
        while rec.running.load(Ordering::SeqCst) < gate && tokio::time::Instant::now() < give_up {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Room for a call beyond the limit to show up, if the host let one through.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let raw: Value = serde_json::from_str(&body).unwrap();
    let invocation: Invocation = serde_json::from_value(raw.clone()).unwrap();
    rec.calls.lock().unwrap().push(Call {
        function,
        headers,
        invocation,
        raw,
    });
    rec.running.fetch_sub(1, Ordering::SeqCst);
    let fail = rec
        .failures
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if fail {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(json!({"Logs": ["boom"]})),
        )
            .into_response()
    } else {
        axum::Json(json!({"Outputs": {}, "Logs": ["handled"], "ReturnValue": null})).into_response()
    }
}

/// An app folder with one Service Bus function `work` on queue `work` and, optionally, a timer
/// `tick` whose schedule is the app setting `TICK_SCHEDULE`.
fn app_folder(max_concurrent_calls: usize, with_timer: bool) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let host = json!({
        "version": "2.0",
        "customHandler": {"description": {"defaultExecutablePath": "not-spawned", "arguments": []}},
        "extensions": {"serviceBus": {"autoCompleteMessages": true, "maxConcurrentCalls": max_concurrent_calls, "maxAutoLockRenewalDuration": "00:05:00", "prefetchCount": 0}},
        "functionTimeout": "00:01:00"
    });
    std::fs::write(dir.path().join("host.json"), host.to_string()).unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let binding = json!({"bindings": [{"name": "msg", "type": "serviceBusTrigger", "direction": "in", "queueName": "work", "connection": "ServiceBusConnection", "dataType": "binary"}]});
    std::fs::write(work.join("function.json"), binding.to_string()).unwrap();
    if with_timer {
        let tick = dir.path().join("tick");
        std::fs::create_dir(&tick).unwrap();
        let binding = json!({"bindings": [{"name": "timer", "type": "timerTrigger", "direction": "in", "schedule": "%TICK_SCHEDULE%"}]});
        std::fs::write(tick.join("function.json"), binding.to_string()).unwrap();
    }
    dir
}

fn manual_clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(datetime!(2026-01-01 00:00 UTC)))
}

async fn start(
    app: &Path,
    clock: &Arc<ManualClock>,
    handler_url: &str,
    work: QueueSettings,
) -> LocalEnvironment {
    LocalEnvironment::builder(app)
        .clock(clock.clone() as Arc<dyn Clock>)
        .handler_url(handler_url)
        .queue("work", work)
        .setting("TICK_SCHEDULE", "0 */5 * * * *")
        .start()
        .await
        .unwrap()
}

fn message(id: &str) -> OutgoingMessage {
    OutgoingMessage::json("work", id, format!(r#"{{"id":"{id}"}}"#).into_bytes())
}

async fn eventually<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn property<'a>(message: &'a Message, name: &str) -> Option<&'a str> {
    message
        .application_properties
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.as_str())
}

#[tokio::test]
async fn scheduled_message_is_not_delivered_before_its_time() {
    let rec = Recorder::default();
    let url = rec.serve().await;
    let clock = manual_clock();
    let app = app_folder(4, false);
    let env = start(app.path(), &clock, &url, QueueSettings::default()).await;
    let bus = env.publisher(crate::common::https());
    let at = clock.now() + Duration::from_secs(3600);

    let mut later = message("later");
    later.scheduled_enqueue_time = Some(at);
    bus.send(later).await.unwrap();
    bus.send(message("marker-1")).await.unwrap();
    eventually("marker-1", || rec.calls_for("marker-1").first().cloned()).await;
    assert!(rec.calls_for("later").is_empty());
    assert_eq!(env.broker().counts("work").unwrap().scheduled, 1);

    clock.advance(Duration::from_secs(3599));
    bus.send(message("marker-2")).await.unwrap();
    eventually("marker-2", || rec.calls_for("marker-2").first().cloned()).await;
    assert!(
        rec.calls_for("later").is_empty(),
        "one virtual second early"
    );

    clock.advance(Duration::from_secs(1));
    let call = eventually("the scheduled message", || {
        rec.calls_for("later").first().cloned()
    })
    .await;
    let delivered_at = call.invocation.host_utc_now().unwrap();
    assert!(
        delivered_at.as_str() >= "2026-01-01T01:00:00",
        "{delivered_at}"
    );
    assert_eq!(
        call.raw["Metadata"]["EnqueuedTimeUtc"],
        "2026-01-01T01:00:00"
    );
}

#[tokio::test]
async fn failed_invocation_comes_back_with_delivery_count_plus_one() {
    let rec = Recorder::default();
    rec.failures.store(1, Ordering::SeqCst);
    let url = rec.serve().await;
    let clock = manual_clock();
    let app = app_folder(4, false);
    let env = start(app.path(), &clock, &url, QueueSettings::default()).await;
    env.publisher(crate::common::https())
        .send(message("retry-me"))
        .await
        .unwrap();
    let calls = eventually("two deliveries", || {
        let calls = rec.calls_for("retry-me");
        (calls.len() == 2).then_some(calls)
    })
    .await;
    let counts: Vec<Option<u32>> = calls
        .iter()
        .map(|c| c.invocation.delivery_count())
        .collect();
    assert_eq!(counts, vec![Some(1), Some(2)]);
    assert_eq!(
        calls[1].raw["Metadata"]["DeliveryCount"], "2",
        "sent as the host sends it"
    );
    assert!(env.wait_idle(WAIT).await);
    assert!(
        env.broker().counts("work").unwrap().is_drained(),
        "completed after the retry"
    );
    let outcomes: Vec<_> = env
        .host()
        .invocations()
        .into_iter()
        .map(|r| r.outcome)
        .collect();
    assert_eq!(outcomes, vec![Err(InvocationFailure::Status(500)), Ok(())]);
}

#[tokio::test]
async fn after_max_delivery_count_the_message_is_dead_lettered_with_its_reason() {
    let rec = Recorder::default();
    rec.failures.store(u32::MAX, Ordering::SeqCst);
    let url = rec.serve().await;
    let clock = manual_clock();
    let app = app_folder(4, false);
    let work = QueueSettings {
        max_delivery_count: 3,
        ..QueueSettings::default()
    };
    let env = start(app.path(), &clock, &url, work).await;
    env.publisher(crate::common::https())
        .send(message("poison"))
        .await
        .unwrap();
    let dead = eventually("the dead-letter sub-queue", || {
        env.broker()
            .peek_dead_letters("work")
            .unwrap()
            .into_iter()
            .next()
    })
    .await;
    assert_eq!(dead.message_id, "poison");
    assert_eq!(
        dead.dead_letter_reason.as_deref(),
        Some(MAX_DELIVERY_COUNT_EXCEEDED)
    );
    assert!(
        dead.dead_letter_error_description
            .as_deref()
            .is_some_and(|d| d.contains("3 delivery attempts")),
        "{dead:?}"
    );
    assert_eq!(dead.delivery_count, 3);
    let counts: Vec<Option<u32>> = rec
        .calls_for("poison")
        .iter()
        .map(|c| c.invocation.delivery_count())
        .collect();
    assert_eq!(counts, vec![Some(1), Some(2), Some(3)]);
    assert!(env.wait_idle(WAIT).await);
    assert_eq!(rec.calls_for("poison").len(), 3, "never delivered again");
}

#[tokio::test]
async fn duplicate_message_id_inside_the_window_is_dropped() {
    let rec = Recorder::default();
    let url = rec.serve().await;
    let clock = manual_clock();
    let app = app_folder(4, false);
    let work = QueueSettings {
        duplicate_detection_window: Some(Duration::from_secs(60)),
        ..QueueSettings::default()
    };
    let env = start(app.path(), &clock, &url, work).await;
    let bus = env.publisher(crate::common::https());
    bus.send(message("once")).await.unwrap();
    bus.send(message("once")).await.unwrap();
    assert!(env.wait_idle(WAIT).await);
    let statuses: Vec<u16> = env
        .service_bus()
        .requests()
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(
        statuses,
        vec![201, 201],
        "a duplicate is accepted, then dropped"
    );
    assert_eq!(rec.calls_for("once").len(), 1);

    clock.advance(Duration::from_secs(60));
    bus.send(message("once")).await.unwrap();
    eventually("the resend after the window", || {
        (rec.calls_for("once").len() == 2).then_some(())
    })
    .await;
}

#[tokio::test]
async fn concurrency_is_limited_to_max_concurrent_calls() {
    let rec = Recorder::default();
    rec.gate.store(2, Ordering::SeqCst);
    let url = rec.serve().await;
    let clock = manual_clock();
    let app = app_folder(2, false);
    let env = start(app.path(), &clock, &url, QueueSettings::default()).await;
    let bus = env.publisher(crate::common::https());
    let batch: Vec<OutgoingMessage> = (0..6).map(|i| message(&format!("m{i}"))).collect();
    bus.send_batch("work", batch).await.unwrap();
    eventually("six calls", || (rec.calls().len() == 6).then_some(())).await;
    assert_eq!(rec.most_running.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn invocations_use_the_host_headers_and_timers_fire_on_the_virtual_clock() {
    let rec = Recorder::default();
    let url = rec.serve().await;
    let clock = manual_clock();
    let app = app_folder(4, true);
    let env = start(app.path(), &clock, &url, QueueSettings::default()).await;
    env.publisher(crate::common::https())
        .send(message("h"))
        .await
        .unwrap();
    let call = eventually("the message", || rec.calls_for("h").first().cloned()).await;
    assert_eq!(call.function, "work");
    let header = |name: &str| {
        call.headers
            .get(name)
            .unwrap()
            .to_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(header("content-type"), "application/json; charset=utf-8");
    assert!(header("user-agent").starts_with("Azure-Functions-Host/"));
    assert!(uuid::Uuid::parse_str(&header("x-azure-functions-invocationid")).is_ok());
    assert!(!header("x-azure-functions-hostversion").is_empty());
    assert_eq!(
        call.invocation.message_body("msg", true).unwrap(),
        br#"{"id":"h"}"#
    );

    assert!(rec.calls().iter().all(|c| c.function != "tick"));
    clock.advance(Duration::from_secs(300));
    let tick = eventually("the timer", || {
        rec.calls().into_iter().find(|c| c.function == "tick")
    })
    .await;
    assert_eq!(tick.raw["Data"]["timer"]["IsPastDue"], false);
    assert_eq!(
        tick.raw["Data"]["timer"]["ScheduleStatus"]["Next"],
        "2026-01-01T00:05:00+00:00"
    );
    assert_eq!(
        tick.raw["Metadata"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        vec!["sys"]
    );
    let timer_runs = env
        .host()
        .invocations()
        .into_iter()
        .filter(|r| matches!(r.trigger, TriggerDetail::Timer { .. }))
        .count();
    assert_eq!(timer_runs, 1);
}

#[tokio::test]
async fn sends_without_valid_credentials_or_to_unknown_queues_are_refused() {
    let rec = Recorder::default();
    let url = rec.serve().await;
    let clock = manual_clock();
    let app = app_folder(4, false);
    let env = start(app.path(), &clock, &url, QueueSettings::default()).await;
    let http = crate::common::https();
    let send = |queue: &str, auth: Option<String>| {
        let mut req = http
            .post(format!("{}/{queue}/messages", env.service_bus_url()))
            .header("BrokerProperties", r#"{"MessageId":"x"}"#)
            .body("{}");
        if let Some(auth) = auth {
            req = req.header("Authorization", auth);
        }
        req.send()
    };
    let anonymous = send("work", None).await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert!(anonymous.text().await.unwrap().contains("<Code>401</Code>"));
    let wrong_audience = format!(
        "Bearer {}",
        env.tokens().issue("https://management.azure.com")
    );
    assert_eq!(
        send("work", Some(wrong_audience)).await.unwrap().status(),
        401
    );
    let forged = "Bearer not-issued".to_string();
    assert_eq!(send("work", Some(forged)).await.unwrap().status(), 401);
    let token = format!(
        "Bearer {}",
        env.tokens().issue("https://servicebus.azure.net")
    );
    let unknown = send("no-such-queue", Some(token.clone())).await.unwrap();
    assert_eq!(unknown.status(), 410);
    assert_eq!(
        send("work", Some(token.clone())).await.unwrap().status(),
        201
    );

    let log = env.service_bus().requests();
    assert_eq!(log.len(), 5);
    assert_eq!(log[4].header("authorization"), Some("Bearer <redacted>"));
    assert!(
        log.iter().all(|r| !r
            .header("authorization")
            .unwrap_or_default()
            .contains("local-")),
        "tokens never reach the request log"
    );
}

#[tokio::test]
async fn sas_signed_sends_from_the_product_client_are_checked() {
    let rec = Recorder::default();
    let url = rec.serve().await;
    let key =
        SasKey::parse("Endpoint=sb://local/;SharedAccessKeyName=send;SharedAccessKey=bG9jYWwta2V5")
            .unwrap();
    let other =
        SasKey::parse("Endpoint=sb://local/;SharedAccessKeyName=send;SharedAccessKey=b3RoZXIta2V5")
            .unwrap();
    let app = app_folder(4, false);
    let env = LocalEnvironment::builder(app.path())
        .clock(manual_clock() as Arc<dyn Clock>)
        .handler_url(&url)
        .service_bus_settings(ServiceBusSettings {
            sas_keys: vec![key.clone()],
            ..ServiceBusSettings::default()
        })
        .start()
        .await
        .unwrap();
    let client = |key: SasKey| {
        ServiceBusRest::new(
            crate::common::https(),
            env.service_bus_url(),
            BusAuth::Sas(key),
        )
    };
    client(key).send(message("signed")).await.unwrap();
    eventually("the signed message", || {
        rec.calls_for("signed").first().cloned()
    })
    .await;
    let refused = client(other).send(message("forged")).await.unwrap_err();
    assert!(
        matches!(refused, BusError::Status { status: 401, .. }),
        "{refused}"
    );
}

/// The real handler router, publishing through the REST client to the stand-in.
#[tokio::test]
async fn the_real_handler_dead_letters_a_malformed_event() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let handler_url = format!("http://{}", listener.local_addr().unwrap());
    let clock = manual_clock();
    let repo = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    let env = LocalEnvironment::builder(repo)
        .clock(clock.clone() as Arc<dyn Clock>)
        .handler_url(&handler_url)
        .setting("BACKUP_PILOT_DRILL_SCHEDULE", "0 0 3 * * *")
        .setting("BACKUP_PILOT_SCAN_SCHEDULE", "0 0 4 * * *")
        .start()
        .await
        .unwrap();
    let ctx = Ctx::with_defaults(
        clock.clone(),
        Arc::new(env.publisher(crate::common::https())),
    );
    let state = AppState {
        engine: Engine::new(ctx, backup_pilot::workflow::registry()),
    };
    tokio::spawn(async move { axum::serve(listener, handler::app(state, 1 << 20)).await });

    let body = b"this is not an event".to_vec();
    let mut sent = OutgoingMessage::json("cluster-events", "evt-bad", body.clone());
    sent.content_type = "text/plain".into();
    env.publisher(crate::common::https())
        .send(sent)
        .await
        .unwrap();
    let letter = eventually("the dead letter", || {
        env.broker()
            .peek("dead-letters")
            .unwrap()
            .into_iter()
            .next()
    })
    .await;
    assert_eq!(letter.body, body);
    assert_eq!(
        property(&letter, "dead-letter-reason"),
        Some("MalformedEvent")
    );
    assert_eq!(property(&letter, "source-function"), Some("cluster-events"));
    assert_eq!(property(&letter, "original-message-id"), Some("evt-bad"));
    assert!(
        property(&letter, "dead-letter-description").is_some_and(|d| d.contains("not valid JSON"))
    );
    assert!(env.wait_idle(WAIT).await);
    let events = env.broker().counts("cluster-events").unwrap();
    assert!(
        events.is_drained() && events.dead_lettered == 0,
        "{events:?}"
    );

    // The HTTP trigger front: function keys, then the handler's Outputs.res.
    let status_url = format!("{}/api/status", env.host().http_url().unwrap());
    let http = crate::common::https();
    assert_eq!(http.get(&status_url).send().await.unwrap().status(), 401);
    let key = env.function_keys().function[0].clone();
    let answer = http
        .get(&status_url)
        .header("x-functions-key", key)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let json: Value = answer.json().await.unwrap();
    assert_eq!(json["service"], "backup-pilot");
    env.stop().await;
}

/// The real binary, started from host.json, gets its Service Bus token from the managed
/// identity endpoint through azure_identity and sends the dead letter itself.
#[tokio::test]
async fn the_spawned_handler_authenticates_with_the_managed_identity_endpoint() {
    let repo = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    let clock = ScaledClock::new(std::time::SystemTime::now(), 60.0).unwrap();
    let env = LocalEnvironment::builder(repo)
        .scaled_clock(clock)
        .spawn_handler(Some(env!("CARGO_BIN_EXE_backup-pilot-e2e").into()))
        .setting("BACKUP_PILOT_DRILL_SCHEDULE", "0 0 3 * * *")
        .setting("BACKUP_PILOT_SCAN_SCHEDULE", "0 0 4 * * *")
        .setting("NO_COLOR", "1")
        .start()
        .await
        .unwrap();
    let mut sent = OutgoingMessage::json("cluster-events", "evt-spawned", b"[1,2]".to_vec());
    sent.content_type = "application/json".into();
    env.publisher(crate::common::https())
        .send(sent)
        .await
        .unwrap();
    let letter = eventually("the dead letter", || {
        env.broker()
            .peek("dead-letters")
            .unwrap()
            .into_iter()
            .next()
    })
    .await;
    assert_eq!(
        property(&letter, "dead-letter-reason"),
        Some("MalformedEvent")
    );
    assert!(
        env.tokens().requests() >= 1,
        "the handler asked the identity endpoint"
    );
    let handler_send = env
        .service_bus()
        .requests()
        .into_iter()
        .find(|r| r.path == "/dead-letters/messages")
        .unwrap();
    assert_eq!(handler_send.status, 201);
    assert_eq!(
        handler_send.header("authorization"),
        Some("Bearer <redacted>")
    );
    env.stop().await;
}

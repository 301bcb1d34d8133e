//! Runtime benchmark: prints cold start (exec → first answered readiness probe) of the real
//! binary, its peak RSS after a burst of invocations, and invocations per second of a no-op
//! workflow step through the real router over loopback HTTP. Run: `cargo bench --bench runtime`.

use std::net::TcpListener as StdListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use backup_pilot::bus::RecordingPublisher;
use backup_pilot::clock::SystemClock;
use backup_pilot::engine::{Engine, Outcome, Registry, Step, StepError};
use backup_pilot::envelope::{Envelope, WorkflowKind};
use backup_pilot::handler::{AppState, serve};
use backup_pilot::workflow::Ctx;
use base64::Engine as _;
use serde_json::json;

const COLD_STARTS: usize = 15;
const BURST: usize = 3000;
const CONCURRENCY: usize = 16;
const THROUGHPUT_WINDOW: Duration = Duration::from_secs(5);

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn spawn_handler(port: u16, sink: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_backup-pilot-e2e"))
        .arg("serve")
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
        .env("BACKUP_PILOT_SERVICEBUS_URL", sink)
        .env(
            "BACKUP_PILOT_SERVICEBUS_CONNECTION_STRING",
            "Endpoint=sb://bench.local/;SharedAccessKeyName=bench;SharedAccessKey=bench",
        )
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the handler")
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn wait_ready(client: &reqwest::Client, url: &str) -> Duration {
    let start = Instant::now();
    loop {
        if client.get(url).send().await.is_ok() {
            return start.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "handler not ready within 30 s"
        );
    }
}

fn invocation(binding: &str, body: &[u8], id: usize) -> String {
    json!({
        "Data": { binding: base64::engine::general_purpose::STANDARD.encode(body) },
        "Metadata": { "DeliveryCount": "1", "MessageId": format!("\"m{id}\"") }
    })
    .to_string()
}

struct NoOp;
#[async_trait]
impl Step<Ctx> for NoOp {
    fn name(&self) -> &'static str {
        "noop"
    }
    async fn run(&self, _ctx: &Ctx, _env: &Envelope) -> Result<Outcome, StepError> {
        Ok(Outcome::done("noop"))
    }
}

async fn drive(
    client: &reqwest::Client,
    url: String,
    bodies: Arc<Vec<String>>,
    deadline: Option<Instant>,
) -> usize {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let (client, url, bodies, next) =
            (client.clone(), url.clone(), bodies.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut done = 0;
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if deadline.map_or(i >= bodies.len(), |d| Instant::now() >= d) {
                    return done;
                }
                let body = bodies[i % bodies.len()].clone();
                let resp = client
                    .post(&url)
                    .header("Content-Type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .expect("invoke");
                assert!(
                    resp.status().is_success(),
                    "invocation failed: {}",
                    resp.status()
                );
                done += 1;
            }
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.expect("driver task");
    }
    total
}

#[tokio::main]
async fn main() {
    let client = reqwest::Client::new();
    let sink = {
        let app = axum::Router::new().fallback(|| async { (axum::http::StatusCode::CREATED, "") });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind sink");
        let url = format!("http://{}", listener.local_addr().expect("sink addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    };

    // Cold start of the real binary.
    let mut starts = Vec::new();
    for _ in 0..COLD_STARTS {
        let port = free_port();
        let mut child = spawn_handler(port, &sink);
        starts.push(wait_ready(&client, &format!("http://127.0.0.1:{port}/")).await);
        let _ = child.kill();
        let _ = child.wait();
    }
    starts.sort();

    // Peak RSS of the real binary after a burst of cluster events (ignored, malformed and
    // dead-lettered to the sink).
    let port = free_port();
    let mut child = spawn_handler(port, &sink);
    wait_ready(&client, &format!("http://127.0.0.1:{port}/")).await;
    let storage = json!({"subject": "/subscriptions/s/resourceGroups/r/providers/Microsoft.Storage/storageAccounts/a",
        "eventType": "Microsoft.Resources.ResourceWriteSuccess", "id": "e",
        "data": {"resourceUri": "/subscriptions/s/resourceGroups/r/providers/Microsoft.Storage/storageAccounts/a", "status": "Succeeded"}});
    let bodies: Vec<String> = (0..BURST)
        .map(|i| {
            if i % 2 == 0 {
                invocation("event", storage.to_string().as_bytes(), i)
            } else {
                invocation("event", b"{truncated", i)
            }
        })
        .collect();
    let burst_start = Instant::now();
    let sent = drive(
        &client,
        format!("http://127.0.0.1:{port}/cluster-events"),
        Arc::new(bodies),
        None,
    )
    .await;
    let burst_rate = sent as f64 / burst_start.elapsed().as_secs_f64();
    let rss = peak_rss_kib(child.id());
    let _ = child.kill();
    let _ = child.wait();

    // No-op step throughput through the real router.
    let ctx = Ctx::with_defaults(
        Arc::new(SystemClock),
        Arc::new(RecordingPublisher::default()),
    );
    let registry = Registry::default()
        .add(WorkflowKind::Onboard, NoOp)
        .starts_with(WorkflowKind::Onboard, "noop", "Bench");
    let state = AppState {
        engine: Engine::new(ctx, registry),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind handler");
    let url = format!(
        "http://{}/workflow",
        listener.local_addr().expect("handler addr")
    );
    tokio::spawn(serve(listener, state, 16 << 20, std::future::pending()));
    let env = Envelope::start(
        WorkflowKind::Onboard,
        "/subscriptions/s",
        "bench",
        "noop",
        "Bench",
        time::OffsetDateTime::now_utc(),
        Duration::from_secs(3600),
    );
    let bodies = Arc::new(vec![invocation("message", &env.encode(), 0)]);
    let start = Instant::now();
    let done = drive(&client, url, bodies, Some(start + THROUGHPUT_WINDOW)).await;
    let rate = done as f64 / start.elapsed().as_secs_f64();

    println!(
        "backup-pilot runtime benchmark ({} cores)",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    println!(
        "cold start (exec -> first answered probe), {COLD_STARTS} runs: median {:.1} ms, p90 {:.1} ms, max {:.1} ms",
        percentile(&starts, 0.5).as_secs_f64() * 1e3,
        percentile(&starts, 0.9).as_secs_f64() * 1e3,
        starts[starts.len() - 1].as_secs_f64() * 1e3
    );
    match rss {
        Some(kib) => println!(
            "peak RSS after {sent} cluster-event invocations ({burst_rate:.0}/s): {:.1} MiB",
            kib as f64 / 1024.0
        ),
        None => println!("peak RSS: unavailable (no /proc)"),
    }
    println!(
        "no-op step: {done} invocations in {:.1} s over loopback HTTP, {CONCURRENCY} concurrent: {rate:.0} invocations/s",
        start.elapsed().as_secs_f64()
    );
}

//! Property-based fuzzing of every parser that reads bytes from outside the process: the
//! Functions host payload, Event Grid / CloudEvents intake, workflow envelopes, restore
//! requests, ARM error bodies and kubeconfigs. Each gets (a) arbitrary bytes and (b) mutations
//! of real seeds (`shared/samples` where they exist, inline seeds otherwise): byte flips,
//! truncation, and insertion of huge numbers, deep nesting, invalid UTF-8, NUL and bidi
//! characters, plus structure-aware replacement of JSON values. The property: no panic, and
//! either `Ok` or an error whose text is not empty.
//!
//! Bounded and deterministic for CI: a fixed case count and RNG seed, no failure files.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use backup_pilot::arm::lro::{async_operation_status, provisioning_status};
use backup_pilot::arm::{ArmClient, ArmOptions, QuickRetry};
use backup_pilot::clock::SystemClock;
use backup_pilot::envelope::{Envelope, WorkflowKind};
use backup_pilot::events::{Intake, read_event};
use backup_pilot::handler::invocation::{HttpTriggerRequest, Invocation};
use backup_pilot::kube::access::client_config;
use backup_pilot::restore::request::parse_request_bytes;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{RngAlgorithm, RngSeed};
use serde_json::{Value, json};

/// Cases per target and strategy. Tuned so the whole file stays well under 20 s in debug.
const CASES: u32 = 256;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: CASES,
        failure_persistence: None,
        rng_algorithm: RngAlgorithm::ChaCha,
        rng_seed: RngSeed::Fixed(0x0b5e_ed15_2026_0015),
        max_shrink_iters: 2048,
        max_shrink_time: 20_000,
        fork: false,
        timeout: 0,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Corpus: shared samples when the shelf is there, inline seeds always.
// ---------------------------------------------------------------------------------------------

fn shared_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("BACKUP_PILOT_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
                .join("..")
                .join("shared")
        });
    dir.is_dir().then_some(dir)
}

/// `samples/<sub>/*.json` from the shelf, sorted by name; `None` (after printing the skip)
/// when the shelf is absent.
fn shelf_samples(sub: &str) -> Option<Vec<(String, Vec<u8>)>> {
    let Some(dir) = shared_dir() else {
        println!(
            "skipped: shared samples/{sub} not found, fuzzing inline seeds only (set BACKUP_PILOT_SHARED to the shared reference folder)"
        );
        return None;
    };
    let mut files: Vec<_> = std::fs::read_dir(dir.join("samples").join(sub))
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    Some(
        files
            .into_iter()
            .map(|p| {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                (name, std::fs::read(&p).unwrap())
            })
            .collect(),
    )
}

const CLUSTER: &str = "/subscriptions/00000000-0000-0000-0000-0000000000aa/resourceGroups/rg-apps/providers/Microsoft.ContainerService/managedClusters/aks-apps";
const DR_CLUSTER: &str = "/subscriptions/00000000-0000-0000-0000-0000000000aa/resourceGroups/rg-dr/providers/Microsoft.ContainerService/managedClusters/aks-dr";

/// Event Grid events: the shelf's (element 0 of each doc batch, about a storage account, and
/// the same event about a cluster), else inline ones in both schemas.
fn event_seeds() -> Vec<Vec<u8>> {
    let mut events: Vec<Value> = Vec::new();
    if let Some(files) = shelf_samples("eventgrid") {
        for (_, bytes) in files {
            let batch: Value = serde_json::from_slice(&bytes).unwrap();
            events.push(batch[0].clone());
        }
    }
    if events.is_empty() {
        events.push(json!({
            "subject": "/subscriptions/s/resourcegroups/rg/providers/Microsoft.Storage/storageAccounts/st",
            "eventType": "Microsoft.Resources.ResourceWriteSuccess",
            "eventTime": "2018-07-19T18:38:04.6117357Z",
            "id": "4db48cba-50a2-455a-93b4-de41a3b5b7f6",
            "data": {"resourceUri": "/subscriptions/s/resourcegroups/rg/providers/Microsoft.Storage/storageAccounts/st", "status": "Succeeded", "operationName": "Microsoft.Storage/storageAccounts/write"},
            "dataVersion": "2", "metadataVersion": "1", "topic": "/subscriptions/s"
        }));
        events.push(json!({
            "specversion": "1.0",
            "type": "Microsoft.Resources.ResourceDeleteSuccess",
            "source": "/subscriptions/s/resourceGroups/rg",
            "id": "4db48cba-50a2-455a-93b4-de41a3b5b7f7",
            "time": "2018-07-19T18:38:04.6117357Z",
            "subject": "/subscriptions/s/resourcegroups/rg/providers/Microsoft.Storage/storageAccounts/st",
            "data": {"resourceUri": "/subscriptions/s/resourcegroups/rg/providers/Microsoft.Storage/storageAccounts/st", "status": "Succeeded"}
        }));
    }
    let about_cluster: Vec<Value> = events
        .iter()
        .map(|e| {
            let mut e = e.clone();
            e["subject"] = json!(CLUSTER);
            e["data"]["resourceUri"] = json!(CLUSTER);
            e
        })
        .collect();
    events
        .into_iter()
        .chain(about_cluster)
        .map(|e| serde_json::to_vec_pretty(&e).unwrap())
        .collect()
}

/// Functions host requests (`{Data, Metadata}`): the shelf's `*.request.json`, plus inline
/// Service Bus payloads carrying an event and an envelope in both host encodings.
fn host_seeds() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    if let Some(files) = shelf_samples("functions-host") {
        for (name, bytes) in files {
            if name.ends_with(".request.json") {
                seeds.push(bytes);
            }
        }
    }
    let event = String::from_utf8(event_seeds().pop().unwrap()).unwrap();
    let envelope = String::from_utf8(envelope_seeds().remove(0)).unwrap();
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    seeds.push(
        serde_json::to_vec(&json!({
            "Data": {"event": b64.encode(&event)},
            "Metadata": {"DeliveryCount": "1", "MessageId": "\"m-1\"",
                "ApplicationProperties": {"aeg-event-type": "Notification"},
                "sys": {"MethodName": "event", "UtcNow": "2026-03-01T12:00:00.1234567Z", "RandGuid": "00000000-0000-0000-0000-0000000000cc"}}
        }))
        .unwrap(),
    );
    seeds.push(
        serde_json::to_vec(&json!({
            "Data": {"message": serde_json::to_string(&envelope).unwrap()},
            "Metadata": {"deliverycount": 2, "MessageId": "m-2"}
        }))
        .unwrap(),
    );
    seeds.push(
        serde_json::to_vec(&json!({
            "Data": {"req": {"Url": "http://localhost:7071/api/status/x", "Method": "GET",
                "Query": "{\"a\":\"1\"}", "Headers": {"Accept": ["application/json"]},
                "Params": {"cluster": CLUSTER}, "Body": "{}"}},
            "Metadata": {}
        }))
        .unwrap(),
    );
    seeds
}

/// Envelopes as this build writes them (all four kinds, with and without payload).
fn envelope_seeds() -> Vec<Vec<u8>> {
    let now = time::macros::datetime!(2026-03-01 12:00 UTC);
    let kinds = [
        WorkflowKind::Onboard,
        WorkflowKind::Offboard,
        WorkflowKind::Restore,
        WorkflowKind::Drill,
    ];
    kinds
        .iter()
        .enumerate()
        .map(|(i, kind)| {
            let mut env = Envelope::start(
                *kind,
                CLUSTER,
                "gen-1",
                "check_cluster",
                "ClusterCreated",
                now,
                Duration::from_secs(3600),
            );
            if i % 2 == 1 {
                env = env
                    .next_step(
                        "assign_roles",
                        "ExtensionReady",
                        now,
                        Duration::from_secs(600),
                    )
                    .retry();
                env.payload.insert(
                    "pollUrl".into(),
                    json!("https://management.azure.com/op?api-version=1"),
                );
                env.payload.insert("count".into(), json!(3));
                env.trace.traceparent =
                    Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into());
            }
            env.encode()
        })
        .collect()
}

/// Valid restore requests.
fn restore_seeds() -> Vec<Vec<u8>> {
    [
        json!({
            "requestId": "ticket-4711",
            "requestedBy": "oncall@example.com",
            "sourceClusterId": CLUSTER,
            "targetClusterId": DR_CLUSTER,
            "recoveryPoint": "latest",
            "includedNamespaces": ["app"],
            "namespaceMappings": {"app": "app-restored"},
            "conflictPolicy": "Skip",
            "persistentVolumeRestoreMode": "RestoreWithVolumeData"
        }),
        json!({"sourceClusterId": CLUSTER, "includedNamespaces": ["app", "web"]}),
    ]
    .iter()
    .map(|v| serde_json::to_vec_pretty(v).unwrap())
    .collect()
}

/// ARM error bodies in the shapes ARM, DataProtection, AKS and Storage send, and an LRO status.
fn arm_seeds() -> Vec<Vec<u8>> {
    [
        r#"{"error":{"code":"AuthorizationFailed","message":"The client 'x' with object id 'y' does not have authorization to perform action 'Microsoft.DataProtection/backupVaults/write' over scope '/subscriptions/s' or the scope is invalid."}}"#,
        r#"{"error":{"code":"SubscriptionRequestsThrottled","message":"slow down","details":[{"code":"Inner","message":"m"}],"additionalInfo":[{"type":"t","info":{}}]}}"#,
        r#"{"code":"StorageAccountAlreadyTaken","message":"taken"}"#,
        r#"{"status":"Failed","error":{"code":"UserErrorExtensionNotInstalled","message":"install it"},"properties":{"provisioningState":"Failed"}}"#,
        "",
        "<html><body>Bad Gateway</body></html>",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

const KUBECONFIG_TOKEN: &str = r#"apiVersion: v1
kind: Config
clusters:
- name: aks-apps
  cluster:
    server: "https://aks-apps-dns.hcp.westeurope.azmk8s.io:443"
    insecure-skip-tls-verify: true
contexts:
- name: aks-apps
  context: {cluster: aks-apps, user: clusterAdmin_rg-apps_aks-apps, namespace: default}
current-context: aks-apps
users:
- name: clusterAdmin_rg-apps_aks-apps
  user:
    token: "0123456789abcdef"
"#;

const KUBECONFIG_ENTRA: &str = r#"apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://c-dns.hcp.westeurope.azmk8s.io:443", insecure-skip-tls-verify: true}
contexts:
- name: c
  context: {cluster: c, user: clusterUser_rg_c}
current-context: c
users:
- name: clusterUser_rg_c
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      command: kubelogin
      args: [get-token, --login, devicecode, --server-id, 6dae42f8-4368-4678-94ff-3960e28e3630]
"#;

fn kubeconfig_seeds() -> Vec<Vec<u8>> {
    vec![KUBECONFIG_TOKEN.into(), KUBECONFIG_ENTRA.into()]
}

// ---------------------------------------------------------------------------------------------
// Mutations.
// ---------------------------------------------------------------------------------------------

/// Hostile fragments spliced into the bytes.
const HOSTILE: &[&[u8]] = &[
    b"18446744073709551616",
    b"-9223372036854775809",
    b"1e999999",
    b"-1.7976931348623157e309",
    b"123456789012345678901234567890123456789012345678901234567890",
    b"0.0000000000000000000000000000000000000000000000001e-400",
    b"\0",
    b"\\u0000",
    b"\xff\xfe",
    b"\xc3\x28",
    b"\xed\xa0\x80",
    b"\xf4\x90\x80\x80",
    b"\\ud800",
    b"\\udfff\\ud800",
    "\u{202e}".as_bytes(),
    "\u{2066}\u{2069}\u{200f}".as_bytes(),
    b"\\u202e",
    b"\"",
    b"\\",
    b"{",
    b"}",
    b"[",
    b"]",
    b":",
    b",",
    b"null",
    b"true",
    b"\r\n\t ",
    b"&a [*a, *a]",
    b"!!binary",
    b"- ",
    b"\n  ",
];

#[derive(Debug, Clone)]
enum Mutation {
    FlipBit(Index, u8),
    SetByte(Index, u8),
    Truncate(Index),
    Delete(Index, usize),
    Insert(Index, usize),
    /// `depth` opening brackets (arrays or objects) with nothing closing them, or closed.
    Nest(Index, usize, bool, bool),
    /// A long run of one byte.
    Repeat(Index, u8, usize),
    Duplicate(Index, Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), 0u8..8).prop_map(|(i, b)| Mutation::FlipBit(i, b)),
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::SetByte(i, b)),
        any::<Index>().prop_map(Mutation::Truncate),
        (any::<Index>(), 1usize..64).prop_map(|(i, n)| Mutation::Delete(i, n)),
        (any::<Index>(), 0..HOSTILE.len()).prop_map(|(i, h)| Mutation::Insert(i, h)),
        (any::<Index>(), 1usize..5000, any::<bool>(), any::<bool>())
            .prop_map(|(i, d, o, c)| Mutation::Nest(i, d, o, c)),
        (any::<Index>(), any::<u8>(), 1usize..20_000)
            .prop_map(|(i, b, n)| Mutation::Repeat(i, b, n)),
        (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Mutation::Duplicate(a, b)),
    ]
}

fn apply(seed: &[u8], mutations: &[Mutation]) -> Vec<u8> {
    let mut b = seed.to_vec();
    for m in mutations {
        let at = |i: &Index, len: usize| i.index(len + 1);
        match m {
            Mutation::FlipBit(i, bit) if !b.is_empty() => {
                let n = i.index(b.len());
                b[n] ^= 1 << bit;
            }
            Mutation::SetByte(i, v) if !b.is_empty() => {
                let n = i.index(b.len());
                b[n] = *v;
            }
            Mutation::Truncate(i) => b.truncate(at(i, b.len())),
            Mutation::Delete(i, n) => {
                let s = at(i, b.len());
                let e = (s + n).min(b.len());
                b.drain(s..e);
            }
            Mutation::Insert(i, h) => {
                let s = at(i, b.len());
                b.splice(s..s, HOSTILE[*h].iter().copied());
            }
            Mutation::Nest(i, depth, objects, closed) => {
                let s = at(i, b.len());
                let (open, close): (&[u8], &[u8]) = if *objects {
                    (b"{\"a\":", b"}")
                } else {
                    (b"[", b"]")
                };
                let mut frag = open.repeat(*depth);
                if *closed {
                    frag.extend_from_slice(b"1");
                    frag.extend(close.repeat(*depth));
                }
                b.splice(s..s, frag);
            }
            Mutation::Repeat(i, v, n) => {
                let s = at(i, b.len());
                b.splice(s..s, std::iter::repeat_n(*v, *n));
            }
            Mutation::Duplicate(from, to) if !b.is_empty() => {
                let s = from.index(b.len());
                let e = (s + 256).min(b.len());
                let chunk = b[s..e].to_vec();
                let t = at(to, b.len());
                b.splice(t..t, chunk);
            }
            _ => {}
        }
    }
    b
}

/// Values that make parsers and validators work: extreme numbers, odd strings, wrong types,
/// deep nesting.
fn hostile_value(choice: usize, depth: usize) -> Value {
    match choice % 16 {
        0 => json!(u64::MAX),
        1 => json!(i64::MIN),
        2 => json!(f64::MAX),
        3 => json!(-0.0),
        4 => json!("\0"),
        5 => json!("\u{202e}gnp.exe\u{202c}"),
        6 => json!("x".repeat(70_000)),
        7 => json!(""),
        8 => Value::Null,
        9 => json!(true),
        10 => json!([]),
        11 => json!({}),
        12 => {
            let mut v = json!(1);
            for _ in 0..depth {
                v = json!([v]);
            }
            v
        }
        13 => {
            let mut v = json!(1);
            for _ in 0..depth {
                v = json!({"a": v});
            }
            v
        }
        14 => json!("9999-12-31T23:59:59.999999999+23:59"),
        _ => json!(
            "/subscriptions/\u{0}/resourceGroups/\u{202e}/providers/Microsoft.ContainerService/managedClusters/..%2f"
        ),
    }
}

fn json_paths(v: &Value, here: String, out: &mut Vec<String>) {
    out.push(here.clone());
    match v {
        Value::Object(m) => {
            for (k, c) in m {
                let esc = k.replace('~', "~0").replace('/', "~1");
                json_paths(c, format!("{here}/{esc}"), out);
            }
        }
        Value::Array(a) => {
            for (i, c) in a.iter().enumerate() {
                json_paths(c, format!("{here}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// Replaces (or, for objects, adds next to) one value of a JSON seed; non-JSON seeds pass
/// through unchanged.
fn replace_value(seed: &[u8], at: &Index, choice: usize, depth: usize, add_key: bool) -> Vec<u8> {
    let Ok(mut v) = serde_json::from_slice::<Value>(seed) else {
        return seed.to_vec();
    };
    let mut paths = Vec::new();
    json_paths(&v, String::new(), &mut paths);
    let path = &paths[at.index(paths.len())];
    let new = hostile_value(choice, depth);
    if let Some(target) = v.pointer_mut(path) {
        match target {
            Value::Object(m) if add_key => {
                m.insert(format!("k\u{202e}\0{choice}"), new);
            }
            other => *other = new,
        }
    }
    serde_json::to_vec(&v).unwrap_or_default()
}

fn mutated(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    let n = seeds.len();
    let seeds = Arc::new(seeds);
    let s1 = seeds.clone();
    let bytes =
        (0..n, prop::collection::vec(mutation(), 1..6)).prop_map(move |(i, ms)| apply(&s1[i], &ms));
    let s2 = seeds;
    let structural = (0..n, any::<Index>(), 0usize..16, 1usize..300, any::<bool>())
        .prop_map(move |(i, at, c, d, add)| replace_value(&s2[i], &at, c, d, add));
    prop_oneof![bytes, structural]
}

fn arbitrary_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..512),
        any::<String>().prop_map(String::into_bytes),
    ]
}

/// The property every target shares.
fn ok_or_explained<T, E: std::fmt::Display>(r: &Result<T, E>) -> Result<(), TestCaseError> {
    if let Err(e) = r {
        prop_assert!(!e.to_string().trim().is_empty(), "an error with no text");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Targets.
// ---------------------------------------------------------------------------------------------

/// The handler's own path: `{Data, Metadata}` → every accessor → the body to the event and
/// envelope readers.
fn host_payload(bytes: &[u8]) -> Result<(), TestCaseError> {
    let inv: Result<Invocation, _> = serde_json::from_slice(bytes);
    ok_or_explained(&inv)?;
    let Ok(inv) = inv else { return Ok(()) };
    let _ = (
        inv.delivery_count(),
        inv.message_id(),
        inv.application_properties(),
        inv.host_utc_now(),
    );
    let bindings: Vec<String> = inv.data.keys().cloned().chain(["missing".into()]).collect();
    for binding in bindings {
        for binary in [false, true] {
            let body = inv.message_body(&binding, binary);
            ok_or_explained(&body)?;
            if let Ok(body) = body {
                ok_or_explained(&read_event(&body))?;
                ok_or_explained(&Envelope::decode(&body))?;
            }
        }
        let http = HttpTriggerRequest::from_invocation(&inv, &binding);
        ok_or_explained(&http)?;
        if let Ok(req) = http {
            let _ = (req.param("cluster"), req.query_param("a"), req.path());
        }
    }
    Ok(())
}

fn event(bytes: &[u8]) -> Result<(), TestCaseError> {
    let r = read_event(bytes);
    ok_or_explained(&r)?;
    if let Err(e) = &r {
        prop_assert!(!e.dead_letter_reason().is_empty());
    }
    Ok(())
}

fn envelope(bytes: &[u8]) -> Result<(), TestCaseError> {
    let r = Envelope::decode(bytes);
    ok_or_explained(&r)?;
    match &r {
        Ok(env) => {
            let _ = env.message_id();
            // What decodes re-encodes to something that decodes the same.
            let again = Envelope::decode(&env.encode());
            prop_assert!(
                again.is_ok(),
                "re-encoded envelope does not decode: {:?}",
                again.err()
            );
            prop_assert_eq!(&again.unwrap(), env);
        }
        Err(e) => prop_assert!(!e.dead_letter_reason().is_empty()),
    }
    Ok(())
}

fn restore_request(bytes: &[u8]) -> Result<(), TestCaseError> {
    let r = parse_request_bytes(bytes);
    ok_or_explained(&r)?;
    match &r {
        Ok(req) => {
            let _ = (
                req.source(),
                req.namespace_pairs(),
                req.warnings(),
                req.target_namespaces(),
            );
        }
        Err(e) => {
            for p in e.problems() {
                prop_assert!(!p.to_string().trim().is_empty());
            }
        }
    }
    Ok(())
}

fn kubeconfig(rt: &tokio::runtime::Runtime, bytes: &[u8]) -> Result<(), TestCaseError> {
    let r = rt.block_on(client_config(bytes, "aks-apps", None, None));
    ok_or_explained(&r.map(|(_, server)| server))
}

// ARM: the real client against a local server answering the fuzzed body.

#[derive(Debug)]
struct FixedToken;

#[async_trait::async_trait]
impl TokenCredential for FixedToken {
    async fn get_token(
        &self,
        _scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        Ok(AccessToken::new(
            "token",
            azure_core::time::OffsetDateTime::now_utc() + azure_core::time::Duration::hours(1),
        ))
    }
}

/// What the server answers next: status, headers, body.
type Answer = (u16, Vec<(String, Vec<u8>)>, Vec<u8>);

#[derive(Clone, Default)]
struct Next(Arc<Mutex<Option<Answer>>>);

async fn answer(State(next): State<Next>) -> Response {
    let (status, headers, body) = next
        .0
        .lock()
        .unwrap()
        .take()
        .unwrap_or((500, vec![], vec![]));
    let mut resp = (StatusCode::from_u16(status).unwrap(), body).into_response();
    for (k, v) in headers {
        if let (Ok(k), Ok(v)) = (HeaderName::try_from(k), HeaderValue::from_bytes(&v)) {
            resp.headers_mut().insert(k, v);
        }
    }
    resp
}

struct ArmStandIn {
    rt: tokio::runtime::Runtime,
    base: String,
    next: Next,
    /// One call at a time: the answer slot is shared.
    turn: Mutex<()>,
}

/// One stand-in for the whole file.
static ARM: LazyLock<ArmStandIn> = LazyLock::new(ArmStandIn::start);

impl ArmStandIn {
    fn start() -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let next = Next::default();
        let app = Router::new().fallback(answer).with_state(next.clone());
        let listener = rt
            .block_on(tokio::net::TcpListener::bind(SocketAddr::from((
                [127, 0, 0, 1],
                0,
            ))))
            .unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        rt.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            rt,
            base,
            next,
            turn: Mutex::new(()),
        }
    }

    /// One GET answered with `answer`, through a fresh client (no throttling state carried
    /// from one case to the next); also reads the body as an LRO status where it is JSON.
    fn call(&self, answer: Answer) -> Result<(), TestCaseError> {
        if let Ok(v) = serde_json::from_slice::<Value>(&answer.2) {
            let _ = (async_operation_status(&v), provisioning_status(&v));
        }
        let _turn = self
            .turn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *self.next.0.lock().unwrap() = Some(answer);
        let arm = ArmClient::new(
            crate::common::https(),
            ArmOptions {
                base_url: self.base.clone(),
                scope: "https://management.example/.default".into(),
                quick_retry: QuickRetry {
                    retries: 0,
                    initial: Duration::from_millis(1),
                    max_wait: Duration::from_millis(1),
                },
                ..ArmOptions::default()
            },
            Arc::new(FixedToken),
            Arc::new(SystemClock),
        )
        .unwrap();
        let r = self.rt.block_on(arm.get(
            "/subscriptions/00000000-0000-0000-0000-0000000000aa/resourceGroups/rg",
            "2022-09-01",
        ));
        ok_or_explained(&r)?;
        if let Err(e) = &r {
            let _ = (
                e.is_transient(),
                e.class(),
                e.retry_after(),
                e.is_missing_roles(),
            );
        }
        Ok(())
    }
}

const ARM_STATUSES: &[u16] = &[200, 201, 400, 401, 403, 404, 409, 429, 500, 503];

fn arm_headers() -> impl Strategy<Value = Vec<(String, Vec<u8>)>> {
    let name = prop::sample::select(vec![
        "retry-after",
        "retry-after-ms",
        "x-ms-retry-after-ms",
        "x-ms-request-id",
        "x-ms-correlation-request-id",
        "x-ms-ratelimit-remaining-subscription-reads",
        "azure-asyncoperation",
        "location",
    ]);
    let value = prop_oneof![
        prop::sample::select(vec![
            "18446744073709551615",
            "9223372036854775807",
            "99999999999",
            "0",
            "-1",
            "1.5",
            "Fri, 31 Dec 9999 23:59:59 GMT",
            "Thu, 01 Jan 1970 00:00:00 GMT",
            "soon",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
        prop::collection::vec(any::<u8>(), 0..32),
    ];
    prop::collection::vec((name.prop_map(String::from), value), 0..3)
}

// ---------------------------------------------------------------------------------------------
// The valid seeds decode.
// ---------------------------------------------------------------------------------------------

#[test]
fn host_payload_seeds_decode() {
    for seed in host_seeds() {
        let inv: Invocation = serde_json::from_slice(&seed)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&seed)));
        let binding = inv.data.keys().next().expect("a binding").clone();
        // An HTTP trigger is an object; a message trigger a string. Both read as a body.
        let body = inv.message_body(&binding, false);
        assert!(body.is_ok(), "{:?}", body.err());
        host_payload(&seed).unwrap();
    }
}

#[test]
fn event_seeds_decode() {
    let seeds = event_seeds();
    let half = seeds.len() / 2;
    for (i, seed) in seeds.iter().enumerate() {
        let intake = read_event(seed).unwrap_or_else(|e| panic!("{e}"));
        if i < half {
            assert!(matches!(intake, Intake::Ignored(_)), "{intake:?}");
        } else {
            assert!(!matches!(intake, Intake::Ignored(_)), "{intake:?}");
        }
    }
}

#[test]
fn envelope_seeds_decode() {
    for seed in envelope_seeds() {
        let env = Envelope::decode(&seed).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(env.encode(), seed);
    }
}

#[test]
fn restore_seeds_decode() {
    for seed in restore_seeds() {
        parse_request_bytes(&seed).unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn arm_seeds_are_read_as_faults() {
    let arm = &*ARM;
    for seed in arm_seeds() {
        for status in [400, 409, 404] {
            arm.call((status, vec![], seed.clone())).unwrap();
        }
    }
    // The codes are kept.
    let _turn = arm
        .turn
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    *arm.next.0.lock().unwrap() = Some((409, vec![], arm_seeds()[2].clone()));
    let client = ArmClient::new(
        crate::common::https(),
        ArmOptions {
            base_url: arm.base.clone(),
            quick_retry: QuickRetry {
                retries: 0,
                initial: Duration::from_millis(1),
                max_wait: Duration::from_millis(1),
            },
            ..ArmOptions::default()
        },
        Arc::new(FixedToken),
        Arc::new(SystemClock),
    )
    .unwrap();
    let err = arm.rt.block_on(client.get("/x", "1")).unwrap_err();
    assert_eq!(err.code(), Some("StorageAccountAlreadyTaken"));
}

#[test]
fn kubeconfig_seeds_decode() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (_, server) = rt
        .block_on(client_config(
            KUBECONFIG_TOKEN.as_bytes(),
            "aks-apps",
            None,
            None,
        ))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(server, "https://aks-apps-dns.hcp.westeurope.azmk8s.io:443");
    // Valid, but Entra sign-in needs a credential: refused with the reason.
    let err = rt
        .block_on(client_config(KUBECONFIG_ENTRA.as_bytes(), "c", None, None))
        .unwrap_err()
        .to_string();
    assert!(err.contains("Entra"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// The fuzzing.
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    #[test]
    fn host_payload_arbitrary(bytes in arbitrary_bytes()) {
        host_payload(&bytes)?;
    }

    #[test]
    fn host_payload_mutated(bytes in mutated(host_seeds())) {
        host_payload(&bytes)?;
    }

    #[test]
    fn event_arbitrary(bytes in arbitrary_bytes()) {
        event(&bytes)?;
    }

    #[test]
    fn event_mutated(bytes in mutated(event_seeds())) {
        event(&bytes)?;
    }

    #[test]
    fn envelope_arbitrary(bytes in arbitrary_bytes()) {
        envelope(&bytes)?;
    }

    #[test]
    fn envelope_mutated(bytes in mutated(envelope_seeds())) {
        envelope(&bytes)?;
    }

    #[test]
    fn restore_request_arbitrary(bytes in arbitrary_bytes()) {
        restore_request(&bytes)?;
    }

    #[test]
    fn restore_request_mutated(bytes in mutated(restore_seeds())) {
        restore_request(&bytes)?;
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arm_error_body_arbitrary(
        status in prop::sample::select(ARM_STATUSES),
        headers in arm_headers(),
        body in arbitrary_bytes(),
    ) {
        ARM.call((status, headers, body))?;
    }

    #[test]
    fn arm_error_body_mutated(
        status in prop::sample::select(ARM_STATUSES),
        headers in arm_headers(),
        body in mutated(arm_seeds()),
    ) {
        ARM.call((status, headers, body))?;
    }

    #[test]
    fn kubeconfig_arbitrary(bytes in arbitrary_bytes()) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        kubeconfig(&rt, &bytes)?;
    }

    #[test]
    fn kubeconfig_mutated(bytes in mutated(kubeconfig_seeds())) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        kubeconfig(&rt, &bytes)?;
    }
}

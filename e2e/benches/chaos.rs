//! Chaos benchmark (issue 15 item 1): onboards a fleet of fake AKS clusters through the local
//! Functions host and real `backup-pilot serve` processes — as `local --drill` does, with the
//! status journal and reports in Azurite — while faults are injected from one seeded RNG, then
//! reads the final ARM, Kubernetes and Service Bus state and checks invariants. Run:
//! `cargo bench --bench chaos`. It prints one line,
//! `chaos: clusters=… protected=… dead_lettered=… lost=… duplicate_backup_instances=…
//! duplicate_role_assignments=… duplicate_bindings=… orphan_namespaces=…
//! restores_per_request_max=… kills=… duplicates=… wall_s=…`, and exits non-zero when an
//! invariant fails (the line is printed either way).
//!
//! Faults, all drawn from `CHAOS_SEED` (printed, so a run can be replayed as far as the OS
//! scheduling allows):
//! * ARM: 10% 5xx, 5% provider 429s (the stand-in's `FaultKnobs`), and latency spikes —
//!   windows in which every ARM answer takes 250 ms longer.
//! * Handler kills: SIGKILL at random moments (a draw every 250 ms), and at the moment the
//!   handler publishes a workflow message (the Service Bus stand-in's before-send hook kills it
//!   and refuses the send: the ARM write of the step is done, the next message is not). The
//!   host restarts the handler; the invocations it was running fail and are redelivered.
//! * Host restarts: the host's trigger loops and handler are recycled abruptly every ~40 s.
//! * 1% duplicate deliveries (the broker redelivers a completed message once more) and 2% of
//!   sends answered 503 ServerBusy.
//! * Outage windows: the token endpoint answers 500; Blob storage (Azurite, behind a switchable
//!   TCP proxy) refuses and cuts connections; one cluster's API server answers 503.
//!
//! Restore requests (`CHAOS_RESTORES`, default 5) are sent as their source clusters become
//! protected, and once every cluster has settled the `restore-drills` timer is fired once, so
//! drills run (and clean up their scratch namespaces) under the same chaos. Then the chaos
//! stops, outages end, and the run waits for the queues to drain before checking.
//!
//! What the line counts:
//! * `protected`: clusters whose status (read from the status function) is `protected` and for
//!   which ARM holds a backup instance in `ProtectionConfigured`.
//! * `dead_lettered`: clusters not protected for which a dead letter names the cluster (the
//!   service's `dead-letters` queue or a broker `$DeadLetterQueue`).
//! * `lost`: clusters neither protected nor dead-lettered nor `failed` with a reason in status,
//!   plus restore requests that have neither a `restore-results` message nor a dead letter.
//! * `duplicate_backup_instances`: per cluster, backup instances beyond the first (instances are
//!   tied to clusters by the datasource of the PUT that created them, from ARM's journal).
//! * `duplicate_role_assignments`: assignments beyond the first with the same principal, role
//!   and scope. `duplicate_bindings`: trusted-access bindings beyond the first per cluster and
//!   source (vault).
//! * `orphan_namespaces`: `drill-*` scratch namespaces left in any cluster.
//! * `restores_per_request_max`: the most restores ARM accepted (2xx `…/restore` POSTs) for
//!   one restore request (restore requests map their namespace to `restored-<n>`) or one drill
//!   (backup instance and target namespaces).
//! * `kills`: handler SIGKILLs; `duplicates`: duplicate deliveries; `wall_s`: wall time.
//!
//! Invariants: lost=0, every duplicate_*=0, orphan_namespaces=0, restores_per_request_max=1,
//! kills>0, protected ≥ 99% of clusters, protected + dead_lettered = clusters, and every dead
//! letter carries a reason and a description.
//!
//! Knobs (environment): `CHAOS_CLUSTERS` (default 100), `CHAOS_TIME_SCALE` (default 300),
//! `CHAOS_SEED` (default random), `CHAOS_RESTORES` (default 5), `CHAOS_TIMEOUT_S` (default 420),
//! `CHAOS_OFF=1` for the same run without faults (a baseline).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use backup_pilot::bus::Queues;
use backup_pilot::bus::{OutgoingMessage, Publisher};
use backup_pilot::clock::ScaledClock;
use backup_pilot::restore::drill::SCRATCH_PREFIX;
use backup_pilot::status::Phase;
use backup_pilot::workflow::placement::Placement;
use backup_pilot::workflow::settings::OnboardingSettings;
use backup_pilot_local::progress::StatusClient;
use backup_pilot_local::run::{
    FAKE_LOCATION, FAKE_RESOURCE_GROUP, FAKE_SUBSCRIPTION, NEVER_DURING_A_RUN, SAMPLE_HOOKS,
    cluster_write_event, fake_cluster_name, fake_estate,
};
use backup_pilot_standins::LocalEnvironment;
use backup_pilot_standins::arm::{ArmHandle, ClusterSeed, FaultKnobs};
use backup_pilot_standins::azurite::Azurite;
use backup_pilot_standins::broker::DuplicateDeliveryKnobs;
use backup_pilot_standins::fake_clusters::FakeCluster;
use backup_pilot_standins::kube_api::Workload;
use backup_pilot_standins::servicebus::SendFaults;

/// The namespace every fake cluster runs, restores and drills restore.
const APP_NAMESPACE: &str = "app";

fn env_number<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// The fault plan of a run.
#[derive(Debug, Clone, Copy)]
struct Chaos {
    on: bool,
    seed: u64,
}

impl Chaos {
    fn rng(&self, stream: u64) -> StdRng {
        StdRng::seed_from_u64(self.seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    fn arm_knobs(&self, latency: Duration, generation: u64) -> FaultKnobs {
        FaultKnobs {
            latency,
            server_error_rate: if self.on { 0.10 } else { 0.0 },
            throttle_rate: if self.on { 0.05 } else { 0.0 },
            seed: self.seed.wrapping_add(generation),
        }
    }
}

/// A TCP proxy in front of Azurite that an outage window switches off: it then refuses new
/// connections (accept, close) and cuts the open ones. TLS passes through it untouched (the
/// run's certificate names 127.0.0.1, whatever the port).
struct BlobProxy {
    url: String,
    down: watch::Sender<bool>,
}

impl BlobProxy {
    async fn start(target: &str) -> std::io::Result<Self> {
        let target_addr = target
            .trim_start_matches("https://")
            .split('/')
            .next()
            .unwrap_or_default()
            .to_string();
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let port = listener.local_addr()?.port();
        let (down, _) = watch::channel(false);
        let down_rx = down.subscribe();
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if *down_rx.borrow() {
                    drop(inbound);
                    continue;
                }
                let target_addr = target_addr.clone();
                let mut down_rx = down_rx.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&target_addr).await
                    else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = down_rx.wait_for(|d| *d) => {}
                    }
                });
            }
        });
        Ok(Self {
            url: format!("https://127.0.0.1:{port}/devstoreaccount1"),
            down,
        })
    }

    fn set_down(&self, down: bool) {
        self.down.send_replace(down);
    }
}

/// Counters of what the chaos did, for the detail lines.
#[derive(Debug, Default)]
struct ChaosLog {
    host_restarts: u64,
    token_outages: u64,
    blob_outages: u64,
    kube_outages: u64,
    latency_spikes: u64,
}

/// Sleeps `d` unless `stop` fires first; false when it did.
async fn nap(stop: &CancellationToken, d: Duration) -> bool {
    tokio::select! {
        () = stop.cancelled() => false,
        () = tokio::time::sleep(d) => true,
    }
}

/// Starts the fault tasks; they end when `stop` fires, ending their outages.
fn start_chaos(
    chaos: Chaos,
    env: &Arc<LocalEnvironment>,
    arm: &ArmHandle,
    clusters: &[FakeCluster],
    blob: &Arc<BlobProxy>,
    log: &Arc<Mutex<ChaosLog>>,
    stop: &CancellationToken,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    // Random kills.
    {
        let env = env.clone();
        let stop = stop.clone();
        let mut rng = chaos.rng(1);
        tasks.push(tokio::spawn(async move {
            while nap(&stop, Duration::from_millis(250)).await {
                if rng.random::<f64>() < 0.06 {
                    env.host().kill_handler();
                }
            }
        }));
    }
    // Kills between a step's ARM writes and the publish of the next message.
    {
        let weak: Weak<LocalEnvironment> = Arc::downgrade(env);
        let rng = Mutex::new(chaos.rng(2));
        let workflow = Queues::default().workflow;
        env.service_bus()
            .set_before_send(Some(Arc::new(move |queue: &str| {
                if queue != workflow {
                    return false;
                }
                let draw = rng.lock().map(|mut r| r.random::<f64>()).unwrap_or(1.0);
                if draw >= 0.004 {
                    return false;
                }
                weak.upgrade().is_some_and(|env| env.host().kill_handler())
            })));
    }
    // Host restarts.
    {
        let env = env.clone();
        let stop = stop.clone();
        let log = log.clone();
        let mut rng = chaos.rng(3);
        tasks.push(tokio::spawn(async move {
            loop {
                let wait = Duration::from_secs(rng.random_range(30..50));
                if !nap(&stop, wait).await {
                    return;
                }
                if env.host().restart().is_ok() {
                    log.lock().unwrap().host_restarts += 1;
                }
            }
        }));
    }
    // Token endpoint outages.
    {
        let tokens = env.tokens().clone();
        let log = log.clone();
        tasks.push(outage_windows(
            stop,
            chaos.rng(4),
            15..35,
            1000..4000,
            move |_, down| {
                tokens.set_unavailable(down);
                if down {
                    log.lock().unwrap().token_outages += 1;
                }
            },
        ));
    }
    // Blob outages.
    {
        let blob = blob.clone();
        let log = log.clone();
        tasks.push(outage_windows(
            stop,
            chaos.rng(5),
            20..40,
            1000..4000,
            move |_, down| {
                blob.set_down(down);
                if down {
                    log.lock().unwrap().blob_outages += 1;
                }
            },
        ));
    }
    // One cluster's API server down at a time.
    {
        let kubes: Vec<_> = clusters.iter().map(|c| c.kube.clone()).collect();
        let log = log.clone();
        let mut current = 0;
        tasks.push(outage_windows(
            stop,
            chaos.rng(6),
            3..8,
            2000..8000,
            move |rng, down| {
                if down {
                    current = rng.random_range(0..kubes.len());
                    log.lock().unwrap().kube_outages += 1;
                }
                kubes[current].set_unavailable(down);
            },
        ));
    }
    // ARM latency spikes.
    {
        let arm = arm.clone();
        let log = log.clone();
        let mut generation = 100;
        tasks.push(outage_windows(
            stop,
            chaos.rng(7),
            10..25,
            1000..3000,
            move |_, spike| {
                generation += 1;
                let latency = if spike {
                    log.lock().unwrap().latency_spikes += 1;
                    Duration::from_millis(250)
                } else {
                    Duration::ZERO
                };
                arm.set_faults(chaos.arm_knobs(latency, generation));
            },
        ));
    }
    tasks
}

/// Outage windows until `stop`: `between` seconds up, then `outage(rng, true)`, `length`
/// milliseconds down, then `outage(rng, false)`. A stop during an outage still ends it.
fn outage_windows(
    stop: &CancellationToken,
    mut rng: StdRng,
    between: std::ops::Range<u64>,
    length: std::ops::Range<u64>,
    mut outage: impl FnMut(&mut StdRng, bool) + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    let stop = stop.clone();
    tokio::spawn(async move {
        loop {
            if !nap(
                &stop,
                Duration::from_secs(rng.random_range(between.clone())),
            )
            .await
            {
                return;
            }
            outage(&mut rng, true);
            let go_on = nap(
                &stop,
                Duration::from_millis(rng.random_range(length.clone())),
            )
            .await;
            outage(&mut rng, false);
            if !go_on {
                return;
            }
        }
    })
}

/// An Event Grid write event for fake cluster `index`, as `local` sends it.
fn write_event_message(index: u32, env: &LocalEnvironment) -> OutgoingMessage {
    let event = cluster_write_event(index, env.clock().now());
    let id = event["id"].as_str().unwrap_or_default().to_string();
    let mut message = OutgoingMessage::json(
        &Queues::default().cluster_events,
        &id,
        event.to_string().into_bytes(),
    );
    for (k, v) in [
        ("aeg-subscription-name", "BACKUP-PILOT-CLUSTERS"),
        ("aeg-delivery-count", "0"),
        ("aeg-data-version", "2"),
        ("aeg-metadata-version", "1"),
        ("aeg-event-type", "Notification"),
    ] {
        message.properties.insert(k.to_string(), v.to_string());
    }
    message.properties.insert("aeg-output-event-id".into(), id);
    message
}

/// Restore request `n` of `cluster`: its `app` namespace into `restored-<n>` on the same cluster.
fn restore_message(n: usize, cluster: &str) -> OutgoingMessage {
    let body = json!({
        "requestId": format!("chaos-restore-{n}"),
        "requestedBy": "chaos@example.com",
        "sourceClusterId": cluster,
        "recoveryPoint": "latest",
        "includedNamespaces": [APP_NAMESPACE],
        "namespaceMappings": {APP_NAMESPACE: format!("restored-{n}")},
        "conflictPolicy": "Skip",
        "persistentVolumeRestoreMode": "RestoreWithVolumeData"
    });
    let (message, _) = backup_pilot::enqueue::restore_message(
        &Queues::default().restore_requests,
        body.to_string().as_bytes(),
    )
    .expect("a valid restore request");
    message
}

/// Whether `text` (lower case) names the cluster `name` (lower case) by its id.
fn names_cluster(text: &str, name: &str) -> bool {
    let needle = format!("/managedclusters/{name}");
    text.match_indices(&needle).any(|(at, _)| {
        text[at + needle.len()..]
            .chars()
            .next()
            .is_none_or(|c| !c.is_ascii_alphanumeric() && c != '-')
    })
}

/// A dead letter as the checker sees it.
struct DeadLetter {
    queue: String,
    reason: String,
    description: String,
    body: String,
}

fn dead_letters(env: &LocalEnvironment) -> Vec<DeadLetter> {
    let broker = env.broker();
    let mut out = Vec::new();
    let service = Queues::default().dead_letters;
    for m in broker.peek(&service).unwrap_or_default() {
        let prop = |key: &str| {
            m.application_properties
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .and_then(|(_, v)| v.as_str())
                .unwrap_or_default()
                .to_string()
        };
        out.push(DeadLetter {
            queue: format!("{service} (from {})", prop("source-function")),
            reason: prop("dead-letter-reason"),
            description: prop("dead-letter-description"),
            body: String::from_utf8_lossy(&m.body).to_ascii_lowercase(),
        });
    }
    for name in broker.queue_names() {
        for m in broker.peek_dead_letters(&name).unwrap_or_default() {
            out.push(DeadLetter {
                queue: format!("{name}/$DeadLetterQueue"),
                reason: m.dead_letter_reason.clone().unwrap_or_default(),
                description: m.dead_letter_error_description.clone().unwrap_or_default(),
                body: String::from_utf8_lossy(&m.body).to_ascii_lowercase(),
            });
        }
    }
    out
}

/// The final reading of one cluster's status.
#[derive(Debug, Clone, Default)]
struct Seen {
    phase: Phase,
    error: Option<String>,
}

/// What the invariant checker found.
#[derive(Debug, Default)]
struct Verdict {
    clusters: usize,
    protected: usize,
    dead_lettered: usize,
    lost: usize,
    duplicate_backup_instances: usize,
    duplicate_role_assignments: usize,
    duplicate_bindings: usize,
    orphan_namespaces: usize,
    restores_per_request_max: usize,
    dead_letters_without_reason: usize,
    details: Vec<String>,
}

/// Reads the final ARM, Kubernetes and bus state (see the module docs for the definitions).
fn check(
    env: &LocalEnvironment,
    arm: &ArmHandle,
    clusters: &[FakeCluster],
    seen: &BTreeMap<String, Seen>,
    restore_requests: &BTreeMap<usize, String>,
) -> Verdict {
    let mut v = Verdict {
        clusters: clusters.len(),
        ..Verdict::default()
    };
    let snapshot = arm.snapshot();
    let journal = arm.journal();
    let letters = dead_letters(env);
    for letter in &letters {
        if letter.reason.trim().is_empty() || letter.description.trim().is_empty() {
            v.dead_letters_without_reason += 1;
        }
        v.details.push(format!(
            "dead letter in {}: {}: {}",
            letter.queue,
            letter.reason,
            letter.description.chars().take(300).collect::<String>()
        ));
    }

    // Backup instances, tied to clusters by the PUT that made them.
    let mut bi_cluster: HashMap<String, String> = HashMap::new();
    for r in &journal {
        if r.method == "PUT"
            && r.status < 300
            && r.path.to_ascii_lowercase().contains("/backupinstances/")
            && let Some(ds) = r
                .request_body
                .as_ref()
                .and_then(|b| b.pointer("/properties/dataSourceInfo/resourceID"))
                .and_then(Value::as_str)
        {
            bi_cluster.insert(r.path.to_ascii_lowercase(), ds.to_ascii_lowercase());
        }
    }
    let mut bis_per_cluster: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for bi in &snapshot.backup_instances {
        let cluster = bi_cluster
            .get(&bi.id.to_ascii_lowercase())
            .cloned()
            .unwrap_or_else(|| format!("(unknown datasource) {}", bi.id));
        bis_per_cluster
            .entry(cluster)
            .or_default()
            .push(bi.protection_state.as_str());
    }
    for (cluster, bis) in &bis_per_cluster {
        if bis.len() > 1 {
            v.duplicate_backup_instances += bis.len() - 1;
            v.details
                .push(format!("{} backup instances of {cluster}", bis.len()));
        }
    }

    let mut assignments: HashMap<(String, String, String), usize> = HashMap::new();
    for a in &snapshot.role_assignments {
        *assignments
            .entry((
                a.principal_id.to_ascii_lowercase(),
                a.role_definition_id
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .to_ascii_lowercase(),
                a.scope.trim_end_matches('/').to_ascii_lowercase(),
            ))
            .or_default() += 1;
    }
    for ((principal, role, scope), n) in &assignments {
        if *n > 1 {
            v.duplicate_role_assignments += n - 1;
            v.details.push(format!(
                "{n} assignments of role {role} to {principal} at {scope}"
            ));
        }
    }

    let mut bindings: HashMap<(String, String), usize> = HashMap::new();
    for b in &snapshot.trusted_access_bindings {
        let lower = b.id.to_ascii_lowercase();
        let cluster = lower
            .split("/trustedaccessrolebindings/")
            .next()
            .unwrap_or_default()
            .to_string();
        *bindings
            .entry((cluster, b.source_resource_id.to_ascii_lowercase()))
            .or_default() += 1;
    }
    for ((cluster, source), n) in &bindings {
        if *n > 1 {
            v.duplicate_bindings += n - 1;
            v.details.push(format!(
                "{n} trusted-access bindings of {source} on {cluster}"
            ));
        }
    }

    for c in clusters {
        let scratch: Vec<String> = c
            .kube
            .namespace_names()
            .into_iter()
            .filter(|n| n.starts_with(SCRATCH_PREFIX))
            .collect();
        if !scratch.is_empty() {
            v.orphan_namespaces += scratch.len();
            v.details.push(format!(
                "scratch namespaces left on {}: {}",
                c.arm.id,
                scratch.join(", ")
            ));
        }
    }

    // Restores per request: keyed by restore request (its `restored-<n>` namespace) or, for
    // drills, by backup instance and target namespaces.
    let mut restores: BTreeMap<String, usize> = BTreeMap::new();
    for r in &journal {
        if r.method != "POST"
            || r.status >= 300
            || !r.path.to_ascii_lowercase().ends_with("/restore")
        {
            continue;
        }
        let body = r
            .request_body
            .as_ref()
            .map(Value::to_string)
            .unwrap_or_default();
        let key = restore_requests
            .keys()
            .find(|n| body.contains(&format!("\"restored-{n}\"")))
            .map(|n| format!("restore request chaos-restore-{n}"))
            .unwrap_or_else(|| {
                let mut targets: Vec<String> = Vec::new();
                collect_strings(r.request_body.as_ref(), SCRATCH_PREFIX, &mut targets);
                targets.sort();
                targets.dedup();
                format!(
                    "drill {} → {}",
                    r.path.to_ascii_lowercase(),
                    targets.join(",")
                )
            });
        *restores.entry(key).or_default() += 1;
    }
    v.restores_per_request_max = restores.values().copied().max().unwrap_or(0);
    for (key, n) in &restores {
        if *n > 1 {
            v.details.push(format!("{n} restores for {key}"));
        }
    }
    for n in restore_requests.keys() {
        if !restores.contains_key(&format!("restore request chaos-restore-{n}")) {
            v.details
                .push(format!("no restore reached ARM for chaos-restore-{n}"));
        }
    }

    // Clusters: protected, dead-lettered, failed with a reason, or lost.
    let protected_in_arm: BTreeSet<String> = bis_per_cluster
        .iter()
        .filter(|(_, states)| states.contains(&"ProtectionConfigured"))
        .map(|(cluster, _)| cluster.clone())
        .collect();
    for c in clusters {
        let id = c.arm.id.to_ascii_lowercase();
        let name = id.rsplit('/').next().unwrap_or_default().to_string();
        let status = seen.get(&c.arm.id).cloned().unwrap_or_default();
        let in_arm = protected_in_arm.contains(&id);
        if status.phase == Phase::Protected && in_arm {
            v.protected += 1;
            continue;
        }
        let letter = letters.iter().find(|l| names_cluster(&l.body, &name));
        if let Some(letter) = letter {
            eprintln!(
                "dead letter for {name}: {}: {}",
                letter.reason,
                letter.description.chars().take(400).collect::<String>()
            );
            v.dead_lettered += 1;
        } else if status.phase == Phase::Failed
            && status
                .error
                .as_deref()
                .is_some_and(|e| !e.trim().is_empty())
        {
            // Not lost: the status names what is wrong.
        } else {
            v.lost += 1;
        }
        v.details.push(format!(
            "{name}: status {}{}{}{}",
            status.phase.as_str(),
            if in_arm {
                ", protected in ARM"
            } else {
                ", not protected in ARM"
            },
            if letter.is_some() {
                ", dead-lettered"
            } else {
                ""
            },
            status.error.map(|e| format!(": {e}")).unwrap_or_default()
        ));
    }

    // Restore requests: a result or a dead letter each.
    let results: Vec<String> = env
        .broker()
        .peek(&Queues::default().restore_results)
        .unwrap_or_default()
        .iter()
        .map(|m| String::from_utf8_lossy(&m.body).to_string())
        .collect();
    for n in restore_requests.keys() {
        let id = format!("\"chaos-restore-{n}\"");
        let answered = results.iter().any(|r| r.contains(&id))
            || letters
                .iter()
                .any(|l| l.body.contains(&format!("chaos-restore-{n}\"")));
        if !answered {
            v.lost += 1;
            v.details.push(format!(
                "restore request chaos-restore-{n}: no result, no dead letter"
            ));
        }
    }
    v
}

fn collect_strings(value: Option<&Value>, prefix: &str, out: &mut Vec<String>) {
    match value {
        Some(Value::String(s)) if s.starts_with(prefix) => out.push(s.clone()),
        Some(Value::Array(items)) => items
            .iter()
            .for_each(|i| collect_strings(Some(i), prefix, out)),
        Some(Value::Object(map)) => map
            .values()
            .for_each(|i| collect_strings(Some(i), prefix, out)),
        _ => {}
    }
}

/// Fires the `restore-drills` timer at the handler, as the host would; retried while the
/// handler is being killed.
async fn fire_drills(env: &LocalEnvironment, http: &reqwest::Client) -> anyhow::Result<Value> {
    let invocation = json!({
        "Data": {"timer": {"Schedule": {"AdjustForDST": true}, "IsPastDue": false}},
        "Metadata": {}
    });
    let mut last = String::new();
    for _ in 0..40 {
        let answer = http
            .post(format!("{}/restore-drills", env.host().handler_url()))
            .json(&invocation)
            .timeout(Duration::from_secs(60))
            .send()
            .await;
        match answer {
            Ok(a) if a.status().is_success() => return Ok(a.json().await.unwrap_or(Value::Null)),
            Ok(a) => last = format!("{}: {}", a.status(), a.text().await.unwrap_or_default()),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    anyhow::bail!("the handler did not take the drill timer: {last}")
}

#[allow(clippy::too_many_lines)]
async fn run() -> anyhow::Result<bool> {
    let clusters_wanted: u32 = env_number("CHAOS_CLUSTERS", 200);
    let time_scale: f64 = env_number("CHAOS_TIME_SCALE", 300.0);
    let restores_wanted: usize = env_number("CHAOS_RESTORES", 5);
    let timeout = Duration::from_secs(env_number("CHAOS_TIMEOUT_S", 420));
    let chaos = Chaos {
        on: std::env::var("CHAOS_OFF").map_or(true, |v| v != "1"),
        seed: env_number("CHAOS_SEED", rand::rng().random::<u64>()),
    };
    let app_dir = std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    println!(
        "chaos: seed={} clusters={clusters_wanted} time_scale={time_scale} restores={restores_wanted} faults={} (replay: CHAOS_SEED={})",
        chaos.seed,
        if chaos.on { "on" } else { "off" },
        chaos.seed
    );
    let wall = Instant::now();
    let clock = ScaledClock::new(SystemTime::now(), time_scale)
        .map_err(|e| anyhow::anyhow!("CHAOS_TIME_SCALE: {e}"))?;

    let azurite = Azurite::start(&app_dir, None)
        .map_err(|e| anyhow::anyhow!("{e} (the chaos bench keeps status in Azurite)"))?;
    let blob = Arc::new(BlobProxy::start(azurite.url()).await?);

    let builder = LocalEnvironment::builder(&app_dir);
    let (fakes, arm) = fake_estate(Arc::new(clock), builder.token_issuer());
    let (arm_url, arm) = arm
        .faults(chaos.arm_knobs(Duration::ZERO, 0))
        .build()
        .spawn()
        .await?;
    arm.add_subscription(FAKE_SUBSCRIPTION)?;
    let profile = |k: &str| {
        if k == "BACKUP_PILOT_PROFILE" {
            Some("poc".to_string())
        } else {
            std::env::var(k).ok()
        }
    };
    let onboarding = OnboardingSettings::from_lookup(profile)
        .map_err(|p| anyhow::anyhow!("onboarding settings: {}", p.join("; ")))?;
    let mut vaults: Vec<String> = Vec::new();
    for index in 1..=clusters_wanted {
        let cluster = fakes
            .add(
                &arm,
                ClusterSeed::new(
                    FAKE_SUBSCRIPTION,
                    FAKE_RESOURCE_GROUP,
                    &fake_cluster_name(index),
                    FAKE_LOCATION,
                ),
            )
            .await?;
        cluster.kube.add_namespace(APP_NAMESPACE);
        cluster.kube.add_workload(
            APP_NAMESPACE,
            &Workload {
                name: "web".into(),
                replicas: 2,
                ready: true,
                pvc_bound: Some(true),
            },
        );
        let vault =
            Placement::for_cluster(&onboarding, &cluster.arm.id.parse()?, FAKE_LOCATION).vault_id();
        if !vaults.contains(&vault) {
            vaults.push(vault);
        }
    }
    // In index order (the map is by id, and aks-local-100 sorts before aks-local-11).
    let clusters: Vec<FakeCluster> = (1..=clusters_wanted)
        .filter_map(|i| {
            fakes.clusters().into_iter().find(|c| {
                c.arm
                    .id
                    .ends_with(&format!("/managedClusters/{}", fake_cluster_name(i)))
            })
        })
        .collect();

    let env = builder
        .scaled_clock(clock)
        .spawn_handler(Some(env!("CARGO_BIN_EXE_backup-pilot-e2e").into()))
        .setting("BACKUP_PILOT_DRILL_SCHEDULE", NEVER_DURING_A_RUN)
        .setting("BACKUP_PILOT_SCAN_SCHEDULE", NEVER_DURING_A_RUN)
        .setting("BACKUP_PILOT_ARM_URL", &arm_url)
        .setting("BACKUP_PILOT_PROFILE", "poc")
        .setting("BACKUP_PILOT_HOOKS", SAMPLE_HOOKS)
        .setting("BACKUP_PILOT_STATUS_BLOB_URL", &blob.url)
        .setting("BACKUP_PILOT_FIRST_BACKUP", "true")
        .setting("BACKUP_PILOT_BACKUP_VAULTS", &vaults.join(","))
        .setting("BACKUP_PILOT_DRILL_NAMESPACES", APP_NAMESPACE)
        .setting(
            "BACKUP_PILOT_RESTORE_ALLOWLIST",
            r#"[{"cluster": "*", "namespaces": ["restored-*"]}]"#,
        )
        .setting("NO_COLOR", "1")
        .setting(
            "RUST_LOG",
            &std::env::var("RUST_LOG").unwrap_or_else(|_| "error".into()),
        )
        .start()
        .await?;
    let env = Arc::new(env);
    if chaos.on {
        env.broker()
            .set_duplicate_delivery(Some(DuplicateDeliveryKnobs {
                rate: 0.01,
                seed: chaos.seed.wrapping_add(11),
            }));
        env.service_bus().set_send_faults(Some(SendFaults {
            server_busy_rate: 0.02,
            seed: chaos.seed.wrapping_add(12),
        }));
    }
    let log = Arc::new(Mutex::new(ChaosLog::default()));
    let stop = CancellationToken::new();
    let chaos_tasks = if chaos.on {
        start_chaos(chaos, &env, &arm, &clusters, &blob, &log, &stop)
    } else {
        Vec::new()
    };

    let http = backup_pilot_standins::tls::run_tls()?
        .trust()?
        .http_builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let publisher = env.publisher(http.clone());
    for index in 1..=clusters_wanted {
        publisher.send(write_event_message(index, &env)).await?;
    }
    let http_url = env
        .host()
        .http_url()
        .ok_or_else(|| anyhow::anyhow!("no HTTP front: the status function is needed"))?
        .to_string();
    let key = env
        .function_keys()
        .function
        .first()
        .cloned()
        .unwrap_or_else(|| env.function_keys().master.clone());
    let status = StatusClient::new(http.clone(), &http_url, &key);

    // Follow the clusters until each has settled; send restore requests as sources turn
    // protected.
    let restore_every = (clusters.len() / restores_wanted.max(1)).max(1);
    let mut restore_requests: BTreeMap<usize, String> = BTreeMap::new();
    let mut seen: BTreeMap<String, Seen> = BTreeMap::new();
    let deadline = wall + timeout;
    let mut last_report = Instant::now();
    loop {
        let open: Vec<&FakeCluster> = clusters
            .iter()
            .filter(|c| {
                !seen
                    .get(&c.arm.id)
                    .is_some_and(|s| matches!(s.phase, Phase::Protected | Phase::Failed))
            })
            .collect();
        if open.is_empty() || Instant::now() >= deadline {
            break;
        }
        let reads = futures::future::join_all(open.iter().map(|c| status.cluster(&c.arm.id))).await;
        for (c, read) in open.iter().zip(reads) {
            if let Ok(Some(answer)) = read {
                seen.insert(
                    c.arm.id.clone(),
                    Seen {
                        phase: answer.phase,
                        error: answer
                            .last_error
                            .map(|e| format!("{}: {}", e.step, e.message)),
                    },
                );
            }
        }
        for (i, c) in clusters.iter().enumerate() {
            let n = i / restore_every + 1;
            if i % restore_every == 0
                && n <= restores_wanted
                && !restore_requests.contains_key(&n)
                && seen
                    .get(&c.arm.id)
                    .is_some_and(|s| s.phase == Phase::Protected)
                && publisher.send(restore_message(n, &c.arm.id)).await.is_ok()
            {
                restore_requests.insert(n, c.arm.id.clone());
            }
        }
        if last_report.elapsed() > Duration::from_secs(15) {
            last_report = Instant::now();
            let protected = seen
                .values()
                .filter(|s| s.phase == Phase::Protected)
                .count();
            let failed = seen.values().filter(|s| s.phase == Phase::Failed).count();
            eprintln!(
                "  {:>4.0}s: {protected} protected, {failed} failed of {}; {} kills, {} duplicates",
                wall.elapsed().as_secs_f64(),
                clusters.len(),
                env.host().handler_kills(),
                env.broker().duplicate_deliveries()
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    // Drills under the same chaos, then quiet.
    match fire_drills(&env, &http).await {
        Ok(answer) => {
            let lines: Vec<&str> = answer
                .get("Logs")
                .and_then(Value::as_array)
                .map(|l| l.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            eprintln!(
                "  {:>4.0}s: drill timer fired: {}",
                wall.elapsed().as_secs_f64(),
                lines.first().copied().unwrap_or_default()
            );
            for line in lines.iter().filter(|l| l.contains("error")).take(3) {
                eprintln!("    {}", line.chars().take(900).collect::<String>());
            }
        }
        Err(e) => eprintln!("  drill timer: {e}"),
    }
    let drain_deadline = (Instant::now() + Duration::from_secs(120)).min(deadline);
    while Instant::now() < drain_deadline && !env.is_idle() {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    stop.cancel();
    for task in chaos_tasks {
        let _ = task.await;
    }
    env.service_bus().set_before_send(None);
    env.service_bus().set_send_faults(None);
    env.broker().set_duplicate_delivery(None);
    arm.set_faults(FaultKnobs::default());
    env.tokens().set_unavailable(false);
    blob.set_down(false);
    for c in &clusters {
        c.kube.set_unavailable(false);
    }
    let quiet = env.wait_idle(Duration::from_secs(60)).await;

    // The final status of every cluster.
    for c in &clusters {
        if let Ok(Some(answer)) = status.cluster(&c.arm.id).await {
            seen.insert(
                c.arm.id.clone(),
                Seen {
                    phase: answer.phase,
                    error: answer
                        .last_error
                        .map(|e| format!("{}: {}", e.step, e.message)),
                },
            );
        }
    }
    let verdict = check(&env, &arm, &clusters, &seen, &restore_requests);
    let kills = env.host().handler_kills();
    let duplicates = env.broker().duplicate_deliveries();
    let wall_s = wall.elapsed().as_secs();
    {
        let log = log.lock().unwrap();
        eprintln!(
            "chaos log: {} handler restarts, {} host restarts, {} token outages ({} refused), {} blob outages, {} kube outages, {} ARM latency spikes, {} sends refused; queues drained: {quiet}",
            env.host().handler_restarts(),
            log.host_restarts,
            log.token_outages,
            env.tokens().refused_while_unavailable(),
            log.blob_outages,
            log.kube_outages,
            log.latency_spikes,
            env.service_bus().refused_sends(),
        );
    }
    for line in &verdict.details {
        eprintln!("  {line}");
    }
    println!(
        "chaos: clusters={} protected={} dead_lettered={} lost={} duplicate_backup_instances={} duplicate_role_assignments={} duplicate_bindings={} orphan_namespaces={} restores_per_request_max={} kills={kills} duplicates={duplicates} wall_s={wall_s}",
        verdict.clusters,
        verdict.protected,
        verdict.dead_lettered,
        verdict.lost,
        verdict.duplicate_backup_instances,
        verdict.duplicate_role_assignments,
        verdict.duplicate_bindings,
        verdict.orphan_namespaces,
        verdict.restores_per_request_max,
    );
    let mut failures = Vec::new();
    if verdict.lost > 0 {
        failures.push("lost > 0".to_string());
    }
    if verdict.duplicate_backup_instances
        + verdict.duplicate_role_assignments
        + verdict.duplicate_bindings
        > 0
    {
        failures.push("duplicates in ARM".to_string());
    }
    if verdict.orphan_namespaces > 0 {
        failures.push("orphan scratch namespaces".to_string());
    }
    if verdict.restores_per_request_max != 1 {
        failures.push(format!(
            "restores_per_request_max={} (want 1)",
            verdict.restores_per_request_max
        ));
    }
    if chaos.on && kills == 0 {
        failures.push("no kills".to_string());
    }
    if verdict.protected * 100 < verdict.clusters * 99 {
        failures.push("fewer than 99% protected".to_string());
    }
    if verdict.protected + verdict.dead_lettered != verdict.clusters {
        failures.push("protected + dead_lettered != clusters".to_string());
    }
    if verdict.dead_letters_without_reason > 0 {
        failures.push(format!(
            "{} dead letter(s) without a reason",
            verdict.dead_letters_without_reason
        ));
    }
    for f in &failures {
        eprintln!("invariant failed: {f}");
    }

    stop.cancel();
    arm.shutdown();
    match Arc::try_unwrap(env) {
        Ok(env) => env.stop().await,
        Err(env) => {
            env.host().kill_handler();
        }
    }
    drop(azurite);
    Ok(failures.is_empty())
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let ok = match runtime.block_on(run()) {
        Ok(ok) => ok,
        Err(e) => {
            eprintln!("chaos: could not run: {e:#}");
            false
        }
    };
    std::process::exit(i32::from(!ok));
}

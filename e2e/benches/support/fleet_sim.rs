//! The benches' simulation of a fleet's onboarding: the real `cluster-events` handler, step
//! engine and ARM client against the ARM stand-in (guide timings, its throttling model and
//! faults) and one Kubernetes API stand-in per cluster, on a virtual clock driven by a
//! discrete-event Service Bus (the clock jumps to the next scheduled message; steps take no
//! virtual time). Counts each cluster's ARM requests by kind and when it ended protected.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use base64::Engine as _;
use serde_json::json;
use time::OffsetDateTime;
use time::macros::datetime;
use tower::ServiceExt;

use backup_pilot::arm::{ArmClient, ArmOptions};
use backup_pilot::bus::{BusError, OutgoingMessage, Publisher};
use backup_pilot::clock::{Clock, ManualClock};
use backup_pilot::engine::Engine;
use backup_pilot::engine::journal::Transition;
use backup_pilot::envelope::Envelope;
use backup_pilot::handler::{AppState, app};
use backup_pilot::kube::KubeconfigAccess;
use backup_pilot::kube::access::{ArmKubeconfigSource, CredentialKind};
use backup_pilot::status::store::MemoryJournal;
use backup_pilot::workflow::Ctx;
use backup_pilot::workflow::settings::{OnboardingSettings, Profile};
use backup_pilot_local::run::EXTENSION_PODS_READY_AFTER;
use backup_pilot_standins::arm::{
    ArmHandle, ArmStandIn, BucketLimit, ClusterSeed, FaultKnobs, ThrottleModel, Timings,
};
use backup_pilot_standins::fake_clusters::FakeClusters;
use backup_pilot_standins::kube_api::{ExtensionInstall, KubeApiOptions};
use backup_pilot_standins::token::TokenIssuer;

pub const SUB: &str = "6f1b4e6a-2d9c-4b7e-9a51-3c0f8e2d7a10";
pub const RG: &str = "rg-fleet";
pub const LOCATION: &str = "westeurope";
/// Step messages per cluster before the run is declared stuck.
const MAX_MESSAGES_PER_CLUSTER: usize = 400;

/// The fleet a run onboards: how many clusters, over how many subscriptions (the first is
/// [`SUB`]), with which onboarding settings.
#[derive(Clone)]
pub struct Fleet {
    /// Clusters, created at once.
    pub clusters: usize,
    /// Subscriptions they are spread over, round robin.
    pub subscriptions: usize,
    /// The service's onboarding settings.
    pub settings: OnboardingSettings,
}

impl Fleet {
    /// `clusters` on [`SUB`] with the guide's per-cluster layout (the poc profile, 1 day).
    pub fn one_subscription(clusters: usize) -> Self {
        Self {
            clusters,
            subscriptions: 1,
            settings: OnboardingSettings {
                profile: Profile::Poc,
                retention_days: 1,
                ..OnboardingSettings::default()
            },
        }
    }

    /// The `k`-th subscription id (the 0th is [`SUB`]).
    pub fn subscription(k: usize) -> String {
        if k == 0 {
            SUB.to_string()
        } else {
            format!("6f1b4e6a-2d9c-4b7e-9a51-{k:012x}")
        }
    }

    /// Cluster `i`'s name and id.
    pub fn cluster(&self, i: usize) -> (String, String) {
        let name = if self.clusters < 100 {
            format!("fleet-{:02}", i + 1)
        } else {
            format!("fleet-{:04}", i + 1)
        };
        let sub = Self::subscription(i % self.subscriptions.max(1));
        let id = format!(
            "/subscriptions/{sub}/resourceGroups/{RG}/providers/Microsoft.ContainerService/managedClusters/{name}"
        );
        (name, id)
    }
}

/// Tokens from the stand-in's issuer, for the audience the client asks for.
#[derive(Debug)]
pub struct IssuerCredential(pub TokenIssuer);

#[async_trait]
impl TokenCredential for IssuerCredential {
    async fn get_token(
        &self,
        scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        let audience = scopes
            .first()
            .map_or("", |s| s.trim_end_matches("/.default"));
        Ok(AccessToken::new(
            self.0.issue(audience),
            azure_core::time::OffsetDateTime::now_utc() + azure_core::time::Duration::hours(1),
        ))
    }
}

/// Service Bus in virtual time: duplicate detection by message id and scheduled delivery.
#[derive(Default)]
pub struct VirtualBus {
    queue: Mutex<Vec<OutgoingMessage>>,
    ids: Mutex<HashSet<String>>,
}

#[async_trait]
impl Publisher for VirtualBus {
    async fn send(&self, message: OutgoingMessage) -> Result<(), BusError> {
        if self.ids.lock().unwrap().insert(message.message_id.clone()) {
            self.queue.lock().unwrap().push(message);
        }
        Ok(())
    }

    async fn send_batch(
        &self,
        _queue: &str,
        messages: Vec<OutgoingMessage>,
    ) -> Result<(), BusError> {
        for m in messages {
            self.send(m).await?;
        }
        Ok(())
    }
}

impl VirtualBus {
    /// The earliest-due message (ties in send order), the clock moved to its time.
    pub fn next(&self, clock: &ManualClock) -> Option<Envelope> {
        let mut queue = self.queue.lock().unwrap();
        let index = queue
            .iter()
            .enumerate()
            .min_by_key(|(i, m)| {
                (
                    m.scheduled_enqueue_time
                        .unwrap_or(OffsetDateTime::UNIX_EPOCH),
                    *i,
                )
            })
            .map(|(i, _)| i)?;
        let message = queue.remove(index);
        if let Some(at) = message.scheduled_enqueue_time {
            let now = clock.now();
            if at > now {
                clock.advance((at - now).unsigned_abs());
            }
        }
        Some(Envelope::decode(&message.body).expect("an envelope"))
    }
}

/// The floor of one onboarding: the stand-in's durations along the chain's critical path
/// (shared with `local`'s fleet totals: [`backup_pilot_local::fleet::critical_path`]).
pub use backup_pilot_local::fleet::critical_path as floor;

/// What one cluster cost and took.
#[derive(Debug, Default, Clone)]
pub struct ClusterFigures {
    pub reads: usize,
    pub writes: usize,
    pub deletes: usize,
    pub throttled: usize,
    pub protected_after: Option<Duration>,
    pub failure: Option<String>,
}

pub struct Scenario {
    pub name: String,
    pub limits: ThrottleModel,
    /// Another tool on the same subscription: (reads, writes) per minute of virtual time.
    pub neighbour_per_minute: (u32, u32),
    /// The stand-in's random faults.
    pub faults: FaultKnobs,
}

/// Another principal's calls on the same subscription quota, paced in virtual time: before
/// each step it sends what it owes since the last one (at most a bucket's worth).
struct Neighbour {
    http: reqwest::Client,
    group_url: String,
    token: String,
    per_minute: (u32, u32),
    cap: (u32, u32),
    last: OffsetDateTime,
    owed: (f64, f64),
    sent: (usize, usize),
    throttled: usize,
}

impl Neighbour {
    async fn catch_up(&mut self, now: OffsetDateTime) {
        let minutes = (now - self.last).as_seconds_f64() / 60.0;
        self.last = now;
        let (reads_rate, writes_rate) = self.per_minute;
        self.owed.0 = (self.owed.0 + f64::from(reads_rate) * minutes).min(f64::from(self.cap.0));
        self.owed.1 = (self.owed.1 + f64::from(writes_rate) * minutes).min(f64::from(self.cap.1));
        while self.owed.0 >= 1.0 {
            self.owed.0 -= 1.0;
            self.sent.0 += 1;
            let answer = self
                .http
                .get(&self.group_url)
                .bearer_auth(&self.token)
                .send()
                .await;
            self.count(answer);
        }
        while self.owed.1 >= 1.0 {
            self.owed.1 -= 1.0;
            self.sent.1 += 1;
            let answer = self
                .http
                .put(&self.group_url)
                .bearer_auth(&self.token)
                .json(&json!({"location": LOCATION, "tags": {"owner": "another-tool"}}))
                .send()
                .await;
            self.count(answer);
        }
    }

    fn count(&mut self, answer: reqwest::Result<reqwest::Response>) {
        if answer.expect("the stand-in answers").status() == 429 {
            self.throttled += 1;
        }
    }
}

/// What one run produced: per-cluster figures, step messages, and the neighbour's
/// (reads, writes, 429s).
pub struct RunFigures {
    pub clusters: Vec<(String, ClusterFigures)>,
    pub messages: usize,
    pub neighbour: (usize, usize, usize),
    /// Each subscription's role assignments at the end.
    pub role_assignments: Vec<(String, usize)>,
    /// Each cluster's subscription, in `clusters`' order.
    pub subscriptions: Vec<String>,
}

/// The (reads, writes) one principal can send at once under `model`.
pub fn read_write_capacity(model: &ThrottleModel) -> (u32, u32) {
    match model {
        ThrottleModel::Regional(limits) => (
            limits.subscription.reads.capacity,
            limits.subscription.writes.capacity,
        ),
        ThrottleModel::Hourly(limits) => (limits.reads.capacity, limits.writes.capacity),
    }
}

pub fn bucket(capacity: u32, refill_per_hour: u32) -> BucketLimit {
    BucketLimit {
        capacity,
        refill_per_hour,
    }
}

pub fn env_number<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The `cluster-events` invocation the Functions host sends for a cluster write.
fn write_event(cluster: &str, n: usize) -> String {
    let event = json!({
        "subject": cluster, "eventType": "Microsoft.Resources.ResourceWriteSuccess",
        "eventTime": "2026-03-02T09:00:00Z", "id": format!("evt-{n}"),
        "topic": cluster.split("/resourceGroups/").next().unwrap_or_default(), "dataVersion": "2", "metadataVersion": "1",
        "data": { "resourceUri": cluster, "status": "Succeeded", "correlationId": format!("corr-{n}"),
                  "operationName": "Microsoft.ContainerService/managedClusters/write" }
    });
    json!({
        "Data": { "event": base64::engine::general_purpose::STANDARD.encode(event.to_string()) },
        "Metadata": { "MessageId": format!("\"evt-{n}\""), "DeliveryCount": "1" }
    })
    .to_string()
}

pub async fn run(scenario: &Scenario, fleet: &Fleet) -> RunFigures {
    let clock = Arc::new(ManualClock::new(datetime!(2026-03-02 09:00 UTC)));
    let tokens = TokenIssuer::new("identity-header");
    // Each cluster's own Kubernetes API stand-in, where the extension install plays out.
    let fakes = FakeClusters::new(
        clock.clone(),
        KubeApiOptions {
            issuer: Some(tokens.clone()),
            ..KubeApiOptions::default()
        },
        ExtensionInstall::ready_after(EXTENSION_PODS_READY_AFTER),
    );
    let (arm_url, arm): (String, ArmHandle) = ArmStandIn::builder()
        .clock(clock.clone())
        .tokens(tokens)
        .timings(Timings::default())
        .throttle(scenario.limits)
        .faults(scenario.faults.clone())
        .on_extension_installed(fakes.extension_hook())
        .on_extension_removed(fakes.extension_removed_hook())
        .build()
        .spawn()
        .await
        .expect("spawn the ARM stand-in");
    let subscriptions: Vec<String> = (0..fleet.subscriptions.max(1))
        .map(Fleet::subscription)
        .collect();
    for sub in &subscriptions {
        arm.add_subscription(sub).expect("subscription");
    }
    let credential = Arc::new(IssuerCredential(arm.tokens().clone()));
    let client = Arc::new(
        ArmClient::new(
            backup_pilot_standins::tls::run_tls()
                .expect("the run's TLS material")
                .http_client()
                .expect("an HTTPS client"),
            ArmOptions {
                base_url: arm_url.clone(),
                ..ArmOptions::default()
            },
            credential.clone(),
            clock.clone(),
        )
        .expect("the ARM client"),
    );
    let kube = Arc::new(KubeconfigAccess::new(
        Arc::new(ArmKubeconfigSource::new(
            client.clone(),
            CredentialKind::User,
        )),
        Some(credential),
        None,
    ));
    let bus = Arc::new(VirtualBus::default());
    let journal = Arc::new(MemoryJournal::default());
    let settings = fleet.settings.clone();
    let engine = Engine::new(
        Ctx {
            journal: journal.clone(),
            arm: client,
            kube,
            onboarding: Arc::new(settings),
            ..Ctx::with_defaults(clock.clone(), bus.clone())
        },
        backup_pilot::workflow::registry(),
    );

    let members: Vec<(String, String)> = (0..fleet.clusters).map(|i| fleet.cluster(i)).collect();
    let names: Vec<String> = members.iter().map(|(n, _)| n.clone()).collect();
    let ids: BTreeMap<String, String> = members.iter().cloned().collect();
    let cluster_id = |name: &str| ids.get(name).cloned().unwrap_or_default();
    for (i, name) in names.iter().enumerate() {
        let sub = Fleet::subscription(i % subscriptions.len());
        fakes
            .add(&arm, ClusterSeed::new(&sub, RG, name, LOCATION))
            .await
            .expect("seed a cluster");
    }
    let start = clock.now();
    arm.add_resource_group(SUB, "rg-another-tool", LOCATION)
        .expect("the neighbour's group");
    let mut neighbour = Neighbour {
        http: backup_pilot_standins::tls::run_tls()
            .expect("the run's TLS material")
            .http_client()
            .expect("an HTTPS client"),
        group_url: format!(
            "{arm_url}/subscriptions/{SUB}/resourcegroups/rg-another-tool?api-version={}",
            backup_pilot::arm::versions::RESOURCES
        ),
        token: arm.arm_token(),
        per_minute: scenario.neighbour_per_minute,
        cap: read_write_capacity(&scenario.limits),
        last: start,
        owed: (0.0, 0.0),
        sent: (0, 0),
        throttled: 0,
    };
    for (n, name) in names.iter().enumerate() {
        let response = app(
            AppState {
                engine: engine.clone(),
            },
            1 << 20,
        )
        .oneshot(
            axum::http::Request::post("/cluster-events")
                .header("content-type", "application/json")
                .body(axum::body::Body::from(write_event(&cluster_id(name), n)))
                .expect("a request"),
        )
        .await
        .expect("the handler answers");
        assert_eq!(response.status(), 200, "the handler took the event");
    }

    let mut figures: BTreeMap<String, ClusterFigures> = names
        .iter()
        .map(|n| {
            (
                cluster_id(n).to_ascii_lowercase(),
                ClusterFigures::default(),
            )
        })
        .collect();
    let mut messages = 0;
    // BENCH_BREAKDOWN=N: the N-th cluster's ARM requests per step (what to cut); the first
    // creates the shared resources, a later one shows the steady state.
    let breakdown = std::env::var("BENCH_BREAKDOWN")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| (1..=names.len()).contains(n))
        .map(|n| n - 1);
    let mut requests: BTreeMap<(String, String), usize> = BTreeMap::new();
    // BENCH_TRACE=1: the fleet's ARM requests by step, method and status.
    let trace = std::env::var("BENCH_TRACE").is_ok_and(|v| v == "1");
    let mut step_requests: BTreeMap<(String, String, u16), usize> = BTreeMap::new();
    // BENCH_TRACE=1: the fleet's reads and writes per 50 virtual seconds, with each window's
    // writes by step (where the write budget went, and when it idled).
    let mut timeline: BTreeMap<i64, (usize, usize, BTreeMap<String, usize>)> = BTreeMap::new();
    let max_messages = (MAX_MESSAGES_PER_CLUSTER * fleet.clusters).max(20_000);
    while let Some(env) = bus.next(&clock) {
        messages += 1;
        neighbour.catch_up(clock.now()).await;
        // The journal is emptied before each step: what it then holds is this step's calls
        // (copying a growing journal per message would make a big fleet quadratic).
        arm.clear_journal();
        assert!(
            messages < max_messages,
            "the fleet did not settle within {max_messages} messages"
        );
        // Steps run one at a time, so the stand-in's journal records since the last step are
        // this step's ARM calls.
        let _ = engine.run(&env).await;
        let records = arm.journal();
        let entry = figures.entry(env.subject.to_ascii_lowercase()).or_default();
        if breakdown.is_some_and(|n| env.subject.eq_ignore_ascii_case(&cluster_id(&names[n]))) {
            for r in &records[..] {
                let tail: Vec<&str> = r.path.rsplit('/').take(2).collect();
                let what = format!(
                    "{} {} .../{}/{}",
                    r.method,
                    r.status,
                    tail[1..].join("/"),
                    tail[0]
                );
                *requests.entry((env.step.clone(), what)).or_insert(0usize) += 1;
            }
        }
        if trace {
            let window = timeline
                .entry((clock.now() - start).whole_seconds() / 50)
                .or_default();
            for r in &records[..] {
                if matches!(r.method.as_str(), "GET" | "HEAD") {
                    window.0 += 1;
                } else {
                    window.1 += 1;
                    *window.2.entry(env.step.clone()).or_default() += 1;
                }
            }
            for r in &records[..] {
                *step_requests
                    .entry((env.step.clone(), r.method.clone(), r.status))
                    .or_insert(0usize) += 1;
            }
        }
        for r in &records[..] {
            match r.method.as_str() {
                "GET" | "HEAD" => entry.reads += 1,
                "DELETE" => entry.deletes += 1,
                _ => entry.writes += 1,
            }
            if r.status == 429 {
                entry.throttled += 1;
            }
        }
    }
    if let Some(n) = breakdown {
        println!("ARM requests of {} by step:", names[n]);
        for ((step, what), n) in &requests {
            println!("  {step:<26} {n:>3}  {what}");
        }
    }
    // BENCH_TRACE=1: where the fleet's retry waits went, by step and reason (longest first).
    if trace {
        println!("ARM requests per cluster by step:");
        for ((step, method, status), n) in &step_requests {
            println!(
                "  {step:<28} {method:<6} {status} {:>6.2}",
                *n as f64 / fleet.clusters.max(1) as f64
            );
        }
        println!("ARM requests per 50 s (reads, writes, writes by step):");
        for (window, (reads, writes, by_step)) in &timeline {
            let steps: Vec<String> = by_step.iter().map(|(s, n)| format!("{s}={n}")).collect();
            println!(
                "  {:>5}s r={reads:>5} w={writes:>4}  {}",
                window * 50,
                steps.join(" ")
            );
        }
        let mut waits: BTreeMap<String, (usize, f64)> = BTreeMap::new();
        for r in journal.records() {
            if let Transition::Retrying { at, why } = &r.transition {
                let key = format!("{} | {}", r.step, why.chars().take(300).collect::<String>());
                let e = waits.entry(key).or_default();
                e.0 += 1;
                e.1 += (*at - r.finished_at).as_seconds_f64();
            }
        }
        // When each step finished across the fleet (virtual seconds: 10th, 50th, 90th
        // percentile and the last), in the order the steps first finished.
        let mut finished: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for r in journal.records() {
            if matches!(
                r.transition,
                Transition::Advanced { .. } | Transition::Done { .. }
            ) {
                finished
                    .entry(r.step.clone())
                    .or_default()
                    .push((r.finished_at - start).as_seconds_f64());
            }
        }
        let mut steps: Vec<_> = finished.into_iter().collect();
        for (_, times) in &mut steps {
            times.sort_by(f64::total_cmp);
        }
        steps.sort_by(|a, b| a.1[0].total_cmp(&b.1[0]));
        for (step, times) in &steps {
            let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
            println!(
                "  {step:<28} n={:>5} p10={:>6.0} p50={:>6.0} p90={:>6.0} last={:>6.0}",
                times.len(),
                at(0.1),
                at(0.5),
                at(0.9),
                at(1.0)
            );
        }
        // The last cluster protected, step by step: what the tail waited for.
        let records = journal.records();
        if let Some(last) = records
            .iter()
            .filter(|r| matches!(r.transition, Transition::Done { .. }))
            .max_by_key(|r| r.finished_at)
        {
            println!("The last cluster protected, {}:", last.subject);
            for r in records.iter().filter(|r| r.subject == last.subject) {
                let text = format!("{:?}", r.transition);
                println!(
                    "  {:>6.0} {:<28} {}",
                    (r.finished_at - start).as_seconds_f64(),
                    r.step,
                    text.chars().take(160).collect::<String>()
                );
            }
        }
        let mut v: Vec<_> = waits.into_iter().collect();
        v.sort_by(|a, b| b.1.1.total_cmp(&a.1.1));
        for (k, (n, secs)) in v.iter().take(25) {
            println!("{n:>4} {secs:>8.0}s  {k}");
        }
    }
    for record in journal.records() {
        let entry = figures
            .entry(record.subject.to_ascii_lowercase())
            .or_default();
        match record.transition {
            Transition::Done { summary } if summary.starts_with("protected:") => {
                entry.protected_after = Some((record.finished_at - start).unsigned_abs());
            }
            Transition::Done { summary } => entry.failure = Some(format!("ended: {summary}")),
            Transition::Failed { reason } => entry.failure = Some(format!("failed: {reason}")),
            _ => {}
        }
    }
    let role_assignments = subscriptions
        .iter()
        .map(|sub| (sub.clone(), arm.role_assignment_count(sub)))
        .collect();
    arm.shutdown();
    let named = names
        .iter()
        .map(|n| {
            (
                n.clone(),
                figures
                    .remove(&cluster_id(n).to_ascii_lowercase())
                    .unwrap_or_default(),
            )
        })
        .collect();
    RunFigures {
        clusters: named,
        messages,
        neighbour: (neighbour.sent.0, neighbour.sent.1, neighbour.throttled),
        role_assignments,
        subscriptions: (0..names.len())
            .map(|i| Fleet::subscription(i % subscriptions.len()))
            .collect(),
    }
}

pub fn minutes(d: Duration) -> String {
    format!("{}m{:02}s", d.as_secs() / 60, d.as_secs() % 60)
}

//! The Blob status store on Azurite: 50 concurrent writers on one cluster neither contend nor
//! lose a record (appends to the cluster's log), and neither do writers racing the log's
//! compaction; records sit at `clusters/{cluster key}.log` (JSON Lines, no secrets) and, once
//! compacted, in `clusters/{cluster key}.json`; a document written before the log existed
//! still reads; a failed cluster shows its error, fix and next step and a waiting one its next
//! retry, the fleet summary counts phases, an unreadable document is shown and then
//! rewritten, and the status function reads the store through the real router without a
//! secret in any answer — including when the store is unreachable.

use crate::common;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backup_pilot::bus::RecordingPublisher;
use backup_pilot::clock::Clock as _;
use backup_pilot::engine::fix;
use backup_pilot::engine::journal::{StepRecord, Transition};
use backup_pilot::envelope::WorkflowKind;
use backup_pilot::status::account_sas::AccountKey;
use backup_pilot::status::blob::{
    BlobContainer, BlobJournal, COMPACT_AT, STORAGE_API_VERSION, StorageAuth,
};
use backup_pilot::status::store::StatusStore;
use backup_pilot::status::{ClusterStatus, FleetSummary, Phase, cluster_key};
use common::azurite::{Azurite, azurite};
use common::status::{FIX, assert_no_secrets, cluster, get_status, registry, run_onboarding_step};
use time::OffsetDateTime;
use time::macros::datetime;
use tracing::instrument::WithSubscriber as _;
use tracing_subscriber::layer::SubscriberExt as _;

fn unique_container(test: &str) -> String {
    format!(
        "t-{test}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

fn journal(az: &Azurite, container: &str, history: usize) -> BlobJournal {
    BlobJournal::new(
        &url::Url::parse(&az.url).unwrap(),
        container,
        StorageAuth::AccountKey(AccountKey::azurite()),
        history,
    )
    .unwrap()
    .with_transport(crate::common::blob_transport())
}

fn record(
    subject: &str,
    workflow: &str,
    step: &str,
    attempt: u32,
    t: OffsetDateTime,
    transition: Transition,
) -> StepRecord {
    StepRecord {
        workflow_id: workflow.into(),
        kind: WorkflowKind::Onboard,
        subject: subject.into(),
        step: step.into(),
        attempt,
        hop: 0,
        started_at: t,
        finished_at: t + time::Duration::milliseconds(250),
        transition,
        measures: Default::default(),
    }
}

/// GETs or PUTs a blob directly, authenticated with a SAS from Azurite's key.
async fn raw_blob(az: &Azurite, container: &str, name: &str, put: Option<&str>) -> (u16, String) {
    let sas = AccountKey::azurite().blob_sas(
        OffsetDateTime::now_utc(),
        time::Duration::hours(1),
        STORAGE_API_VERSION,
    );
    let url = format!("{}/{container}/{name}?{sas}", az.url);
    let http = crate::common::https();
    let req = match put {
        Some(body) => http
            .put(url)
            .header("x-ms-blob-type", "BlockBlob")
            .body(body.to_string()),
        None => http.get(url),
    };
    let resp = req
        .header("x-ms-version", STORAGE_API_VERSION)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// The name of a cluster's blob with `suffix` (`.json` snapshot, `.log` log).
fn blob_name(subject: &str, suffix: &str) -> String {
    format!(
        "clusters/{}{suffix}",
        cluster_key(subject).trim_start_matches('/')
    )
}

/// The lines of a cluster's log (none when there is no log).
async fn log_lines(az: &Azurite, container: &str, subject: &str) -> Vec<serde_json::Value> {
    let (code, body) = raw_blob(az, container, &blob_name(subject, ".log"), None).await;
    if code == 404 {
        return Vec::new();
    }
    assert_eq!(code, 200, "{body}");
    body.lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// Every warning and error logged by futures run under [`Warnings::dispatch`].
#[derive(Clone, Default)]
struct Warnings(Arc<Mutex<Vec<String>>>);

impl Warnings {
    fn dispatch(&self) -> tracing::Dispatch {
        tracing::Dispatch::new(tracing_subscriber::registry().with(self.clone()))
    }

    fn taken(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Warnings {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        struct Text<'a>(&'a mut String);
        impl tracing::field::Visit for Text<'_> {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                self.0.push_str(&format!("{}={value:?} ", field.name()));
            }
        }
        if *event.metadata().level() <= tracing::Level::WARN {
            let mut text = format!("{} ", event.metadata().level());
            event.record(&mut Text(&mut text));
            self.0.lock().unwrap().push(text);
        }
    }
}

/// Record `i` of writer `w`: a distinct run (`wf-{w}`, attempt `i`) at a distinct time.
fn writer_record(subject: &str, w: u32, i: u32) -> StepRecord {
    let at = datetime!(2026-03-01 12:00 UTC) + time::Duration::seconds(i64::from(w * 100 + i));
    record(
        subject,
        &format!("wf-{w}"),
        "poll",
        i,
        at,
        Transition::Retrying {
            at: at + time::Duration::minutes(1),
            why: "waiting".into(),
        },
    )
}

/// `writers` tasks, each recording `per_writer` records through [`StatusStore::record`] (the
/// engine's path) as fast as it can; returns how long they took.
async fn write_concurrently(
    store: &Arc<BlobJournal>,
    subject: &str,
    writers: u32,
    per_writer: u32,
    warnings: &Warnings,
) -> Duration {
    let start = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let store = store.clone();
            let subject = subject.to_string();
            tokio::spawn(
                async move {
                    for i in 0..per_writer {
                        store.record(writer_record(&subject, w, i)).await;
                    }
                }
                .with_subscriber(warnings.dispatch()),
            )
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    start.elapsed()
}

/// Asserts that `status` shows every writer's every record, once, in time order.
fn assert_every_record(status: &ClusterStatus, writers: u32, per_writer: u32) {
    let runs: HashSet<(String, u32)> = status
        .history
        .iter()
        .map(|h| (h.workflow_id.clone(), h.attempt))
        .collect();
    let expected: HashSet<(String, u32)> = (0..writers)
        .flat_map(|w| (0..per_writer).map(move |i| (format!("wf-{w}"), i)))
        .collect();
    assert_eq!(
        status.history.len(),
        expected.len(),
        "each record once in the history"
    );
    assert_eq!(runs, expected, "every writer's every record landed");
    assert!(
        status
            .history
            .windows(2)
            .all(|w| w[0].finished_at <= w[1].finished_at),
        "history in time order"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_writers_never_contend_or_lose_a_record() {
    let Some(az) = azurite() else { return };
    let container = unique_container("race");
    let store = Arc::new(journal(&az, &container, 1000));
    let subject = cluster("aks-race");
    let warnings = Warnings::default();
    let (writers, per_writer) = (50, 4);

    let took = write_concurrently(&store, &subject, writers, per_writer, &warnings).await;
    println!(
        "{writers} writers x {per_writer} records on one cluster: {} ms",
        took.as_millis()
    );

    assert_eq!(
        warnings.taken(),
        Vec::<String>::new(),
        "no record failed, no retries ran out, no warning"
    );
    let status = store.cluster_status(&subject).await.unwrap().unwrap();
    assert_every_record(&status, writers, per_writer);
    assert_eq!(status.phase, Phase::InProgress);
    let fleet = store.fleet_status().await.unwrap();
    assert_eq!(
        fleet.len(),
        1,
        "one cluster, whether its records are in the log or the snapshot"
    );
    assert_eq!(fleet[0].history.len(), status.history.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn compaction_while_writers_keep_appending_keeps_every_record() {
    let Some(az) = azurite() else { return };
    let container = unique_container("compact");
    let store = Arc::new(journal(&az, &container, 1000));
    let subject = cluster("aks-compact");
    let warnings = Warnings::default();
    // 300 records: the log crosses the threshold and keeps growing while writers append.
    let (writers, per_writer) = (50, 6);
    assert!(writers * per_writer > 2 * COMPACT_AT);

    // Watches the blobs while the writers run: a snapshot appears only by compaction.
    let running = Arc::new(AtomicBool::new(true));
    let snapshot_while_running = Arc::new(AtomicBool::new(false));
    let log_shrank = Arc::new(AtomicUsize::new(0));
    let watcher = {
        let (az, container, subject) = (az.clone(), container.clone(), subject.clone());
        let (running, snapshot_while_running, log_shrank) = (
            running.clone(),
            snapshot_while_running.clone(),
            log_shrank.clone(),
        );
        tokio::spawn(async move {
            let mut longest = 0;
            while running.load(Ordering::SeqCst) {
                let (code, _) =
                    raw_blob(&az, &container, &blob_name(&subject, ".json"), None).await;
                if code == 200 && running.load(Ordering::SeqCst) {
                    snapshot_while_running.store(true, Ordering::SeqCst);
                }
                let lines = log_lines(&az, &container, &subject).await.len();
                if lines < longest {
                    log_shrank.fetch_add(1, Ordering::SeqCst);
                }
                longest = lines;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };

    let took = write_concurrently(&store, &subject, writers, per_writer, &warnings).await;
    running.store(false, Ordering::SeqCst);
    watcher.await.unwrap();
    println!(
        "{writers} writers x {per_writer} records with compaction: {} ms; the log was seen shorter {} time(s) while they ran; a snapshot was {}seen mid-run",
        took.as_millis(),
        log_shrank.load(Ordering::SeqCst),
        if snapshot_while_running.load(Ordering::SeqCst) {
            ""
        } else {
            "not "
        }
    );

    assert_eq!(
        warnings.taken(),
        Vec::<String>::new(),
        "a lost compaction race is not worth a warning"
    );
    let status = store.cluster_status(&subject).await.unwrap().unwrap();
    assert_every_record(&status, writers, per_writer);

    // The log is bounded: the last writers to cross the threshold compacted it. Only writes
    // compact, so every compaction ran while the others were appending (whether the watcher,
    // polling beside them, caught a snapshot mid-run depends on the machine's load: printed,
    // not asserted).
    let left = log_lines(&az, &container, &subject).await.len();
    assert!(left < COMPACT_AT as usize, "{left} records left in the log");
    let (code, body) = raw_blob(&az, &container, &blob_name(&subject, ".json"), None).await;
    assert_eq!(code, 200);
    let snapshot: ClusterStatus = serde_json::from_str(&body).unwrap();
    assert!(
        snapshot.history.len() + left >= (writers * per_writer) as usize,
        "every record is in the snapshot or the log: {} + {left}",
        snapshot.history.len()
    );

    // A forced compaction folds the rest; nothing changes for readers.
    store.compact(&subject).await.unwrap();
    assert!(log_lines(&az, &container, &subject).await.is_empty());
    let compacted = store.cluster_status(&subject).await.unwrap().unwrap();
    assert_eq!(compacted, status);
}

#[tokio::test]
async fn a_document_written_before_the_log_existed_still_reads() {
    let Some(az) = azurite() else { return };
    let container = unique_container("legacy");
    let store = journal(&az, &container, 50);
    let subject = cluster("aks-legacy");
    // What earlier builds stored: the folded document alone, no log.
    BlobContainer::new(
        &url::Url::parse(&az.url).unwrap(),
        &container,
        StorageAuth::AccountKey(AccountKey::azurite()),
    )
    .unwrap()
    .with_transport(crate::common::blob_transport())
    .create()
    .await
    .unwrap();
    let legacy = serde_json::json!({
        "schemaVersion": 1,
        "cluster": subject,
        "phase": "protected",
        "phaseSince": "2026-03-01T12:00:01Z",
        "workflow": {
            "id": "w-old", "kind": "onboard", "step": "enable_protection", "attempt": 0,
            "updatedAt": "2026-03-01T12:00:01Z"
        },
        "lastError": null,
        "nextRetry": null,
        "lastDrill": null,
        "lastRestore": null,
        "history": [{
            "workflowId": "w-old", "kind": "onboard", "step": "enable_protection",
            "attempt": 0, "startedAt": "2026-03-01T12:00:00Z",
            "finishedAt": "2026-03-01T12:00:01Z", "durationMs": 1000, "outcome": "done",
            "detail": "protected"
        }],
        "updatedAt": "2026-03-01T12:00:01Z"
    });
    let (code, body) = raw_blob(
        &az,
        &container,
        &blob_name(&subject, ".json"),
        Some(&legacy.to_string()),
    )
    .await;
    assert_eq!(code, 201, "{body}");

    let old = store.cluster_status(&subject).await.unwrap().unwrap();
    assert_eq!(old.phase, Phase::Protected);
    assert_eq!(old.history.len(), 1);
    assert_eq!(store.fleet_status().await.unwrap(), vec![old.clone()]);

    // A new record goes to the log and reads on top of the old document.
    store
        .update(&record(
            &subject,
            "w-new",
            "assign_roles",
            1,
            datetime!(2026-03-02 08:00 UTC),
            Transition::Failed {
                reason: fix::compose("role assignment denied (403)", FIX),
            },
        ))
        .await
        .unwrap();
    assert_eq!(log_lines(&az, &container, &subject).await.len(), 1);
    let both = store.cluster_status(&subject).await.unwrap().unwrap();
    assert_eq!(both.phase, Phase::Failed);
    assert_eq!(
        both.history
            .iter()
            .map(|h| h.workflow_id.as_str())
            .collect::<Vec<_>>(),
        ["w-old", "w-new"]
    );
    assert_eq!(both.last_error.as_ref().unwrap().fix.as_deref(), Some(FIX));

    // Compaction folds it into the old document and removes the log.
    assert!(store.compact(&subject).await.unwrap());
    assert!(log_lines(&az, &container, &subject).await.is_empty());
    let (code, body) = raw_blob(&az, &container, &blob_name(&subject, ".json"), None).await;
    assert_eq!(code, 200);
    let stored: ClusterStatus = serde_json::from_str(&body).unwrap();
    assert_eq!(stored, both);
    assert!(
        !store.compact(&subject).await.unwrap(),
        "no log: nothing to compact"
    );
}

#[tokio::test]
async fn failures_retries_and_the_fleet_are_read_back_from_blob_storage() {
    let Some(az) = azurite() else { return };
    let container = unique_container("fleet");
    let store = journal(&az, &container, 50);
    let t = datetime!(2026-03-01 12:00 UTC);
    let (ok, busy, bad) = (cluster("aks-ok"), cluster("aks-busy"), cluster("aks-bad"));
    store
        .update(&record(
            &ok,
            "w1",
            "enable_protection",
            0,
            t,
            Transition::Done {
                summary: "protected".into(),
            },
        ))
        .await
        .unwrap();
    store
        .update(&record(
            &busy,
            "w2",
            "install_extension",
            3,
            t,
            Transition::Retrying {
                at: datetime!(2026-03-01 12:07 UTC),
                why: "ARM answered 429".into(),
            },
        ))
        .await
        .unwrap();
    store
        .update(&record(
            &bad,
            "w3",
            "assign_roles",
            0,
            t,
            Transition::Failed {
                reason: fix::compose("role assignment denied (403)", FIX),
            },
        ))
        .await
        .unwrap();

    // The record is in the cluster's log, one JSON line, where the docs say.
    let logged = log_lines(&az, &container, &bad).await;
    assert_eq!(logged.len(), 1);
    assert_eq!(
        (&logged[0]["outcome"], &logged[0]["fix"]),
        (&serde_json::json!("failed"), &serde_json::json!(FIX))
    );
    // Compacted, the document is where the docs say, as plain JSON, and the log is gone.
    assert!(store.compact(&bad).await.unwrap());
    let name = blob_name(&bad, ".json");
    let (code, body) = raw_blob(&az, &container, &name, None).await;
    assert_eq!(code, 200, "{name}: {body}");
    let stored: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(stored["phase"], "failed");
    assert!(log_lines(&az, &container, &bad).await.is_empty());

    let detail = store
        .cluster_status(&bad.to_uppercase().replace("SUBSCRIPTIONS", "subscriptions"))
        .await
        .unwrap()
        .unwrap();
    let err = detail.last_error.as_ref().unwrap();
    assert_eq!(
        (err.message.as_str(), err.fix.as_deref()),
        ("role assignment denied (403)", Some(FIX))
    );
    assert!(detail.next_step().unwrap().starts_with(FIX));

    let waiting = store.cluster_status(&busy).await.unwrap().unwrap();
    let retry = waiting.next_retry.as_ref().unwrap();
    assert_eq!(
        (retry.step.as_str(), retry.at),
        ("install_extension", datetime!(2026-03-01 12:07 UTC))
    );
    assert_eq!(waiting.workflow.as_ref().unwrap().attempt, 4);

    let fleet = store.fleet_status().await.unwrap();
    assert_eq!(
        FleetSummary::of(&fleet),
        FleetSummary {
            total: 3,
            protected: 1,
            in_progress: 1,
            failed: 1,
            offboarded: 0,
            unknown: 0,
            drifted: 0
        }
    );
    assert!(
        store
            .cluster_status(&cluster("aks-none"))
            .await
            .unwrap()
            .is_none()
    );

    let empty = journal(&az, &unique_container("empty"), 50);
    assert!(
        empty.fleet_status().await.unwrap().is_empty(),
        "a missing container is an empty fleet"
    );
}

#[tokio::test]
async fn an_unreadable_document_is_shown_then_rewritten() {
    let Some(az) = azurite() else { return };
    let container = unique_container("corrupt");
    let store = journal(&az, &container, 50);
    let subject = cluster("aks-x");
    let t = datetime!(2026-03-01 12:00 UTC);
    // Create the container and the document through the store, then damage the document.
    store
        .update(&record(
            &subject,
            "w",
            "a",
            0,
            t,
            Transition::Done {
                summary: "ok".into(),
            },
        ))
        .await
        .unwrap();
    assert!(store.compact(&subject).await.unwrap());
    let name = blob_name(&subject, ".json");
    let (code, _) = raw_blob(&az, &container, &name, Some("{not json")).await;
    assert_eq!(code, 201);

    let fleet = store.fleet_status().await.unwrap();
    assert_eq!(fleet.len(), 1);
    assert_eq!(fleet[0].phase, Phase::Unknown);
    assert!(
        fleet[0]
            .last_error
            .as_ref()
            .unwrap()
            .message
            .contains("not valid status JSON")
    );

    store
        .update(&record(
            &subject,
            "w",
            "b",
            0,
            t + time::Duration::minutes(1),
            Transition::Done {
                summary: "ok".into(),
            },
        ))
        .await
        .unwrap();
    let healed = store.cluster_status(&subject).await.unwrap().unwrap();
    assert_eq!(healed.phase, Phase::Protected);
    // The next compaction rewrites the document from the log, and says so (which also shows
    // that `Warnings` sees what the concurrency tests assert is absent).
    let warnings = Warnings::default();
    assert!(
        store
            .compact(&subject)
            .with_subscriber(warnings.dispatch())
            .await
            .unwrap()
    );
    let warned = warnings.taken();
    assert!(
        warned.len() == 1 && warned[0].contains("the stored status is unreadable"),
        "{warned:?}"
    );
    let (code, body) = raw_blob(&az, &container, &name, None).await;
    assert_eq!(code, 200);
    let rewritten: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(rewritten["phase"], "protected");
    let after = store.cluster_status(&subject).await.unwrap().unwrap();
    assert!(after.last_error.is_none(), "{:?}", after.last_error);
}

#[tokio::test]
async fn the_status_function_reads_blob_storage_and_leaks_nothing() {
    let Some(az) = azurite() else { return };
    let container = unique_container("api");
    let store: Arc<dyn StatusStore> = Arc::new(journal(&az, &container, 50));
    let h = common::spawn_handler_with_journal(
        registry(),
        Arc::new(RecordingPublisher::default()),
        store,
    )
    .await;
    for name in ["aks-ok", "aks-bad"] {
        run_onboarding_step(&h.url, &cluster(name), h.clock.now()).await;
    }
    let (code, fleet, text) = get_status(&h.url, None).await;
    assert_eq!(code, 200, "{fleet}");
    assert_no_secrets(&text);
    assert_eq!(fleet["store"]["kind"], "blob");
    assert!(fleet["store"]["note"].is_null());
    assert_eq!(
        (
            fleet["summary"]["protected"].as_u64(),
            fleet["summary"]["failed"].as_u64()
        ),
        (Some(1), Some(1))
    );
    let (code, detail, text) = get_status(&h.url, Some(&cluster("aks-bad"))).await;
    assert_eq!(code, 200);
    assert_no_secrets(&text);
    assert_eq!(detail["lastError"]["fix"], FIX);
    // Nor does the log in Blob storage keep one.
    let logged = log_lines(&az, &container, &cluster("aks-bad")).await;
    assert_eq!(logged.len(), 1);
    assert_no_secrets(&serde_json::to_string(&logged).unwrap());

    // A store that cannot be reached: 503 with the reason, still no secret.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let unreachable: Arc<dyn StatusStore> = Arc::new(
        BlobJournal::new(
            &url::Url::parse(&format!("http://127.0.0.1:{port}/devstoreaccount1")).unwrap(),
            "backup-pilot-status",
            StorageAuth::AccountKey(AccountKey::azurite()),
            50,
        )
        .unwrap()
        .with_transport(crate::common::blob_transport())
        .with_retry_budget(std::time::Duration::from_millis(300)),
    );
    let down = common::spawn_handler_with_journal(
        registry(),
        Arc::new(RecordingPublisher::default()),
        unreachable,
    )
    .await;
    let (code, body, text) = get_status(&down.url, None).await;
    assert_eq!(code, 503, "{body}");
    assert_eq!(body["error"]["code"], "StatusStoreUnavailable");
    assert!(
        text.contains("BACKUP_PILOT_STATUS_BLOB_URL"),
        "the error names the fix: {text}"
    );
    assert_no_secrets(&text);
}

/// A claim is atomic: of 20 concurrent claimants of one key exactly one wins (the others see
/// when it was claimed); a released claim can be won again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exactly_one_of_many_concurrent_claimants_wins() {
    use backup_pilot::status::store::{Claim, StatusStore as _};
    let Some(az) = azurite() else { return };
    let store = Arc::new(journal(&az, &unique_container("claim"), 50));
    let at = time::macros::datetime!(2026-03-02 09:00 UTC);
    let key = "wf-restore-1/restore_trigger/7";
    let claimants: Vec<_> = (0..20)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .claim(key, at + time::Duration::seconds(i), &format!("run-{i}"))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut answers = Vec::new();
    for c in claimants {
        answers.push(c.await.unwrap());
    }
    let won = answers.iter().filter(|a| **a == Claim::Won).count();
    assert_eq!(won, 1, "{answers:?}");
    let held: Vec<_> = answers
        .iter()
        .filter_map(|a| match a {
            Claim::Held { since, holder } => Some((*since, holder.clone())),
            Claim::Won => None,
        })
        .collect();
    assert_eq!(held.len(), 19);
    assert!(
        held.windows(2).all(|w| w[0] == w[1]),
        "everyone sees the one winner's time and name: {held:?}"
    );
    let winner = held[0].1.clone();
    let offset: i64 = winner.trim_start_matches("run-").parse().unwrap();
    assert_eq!(held[0].0, at + time::Duration::seconds(offset));
    store.release(key).await.unwrap();
    assert_eq!(store.claim(key, at, "run-a").await.unwrap(), Claim::Won);
    assert!(matches!(
        store.claim(key, at, "run-b").await.unwrap(),
        Claim::Held { since, holder } if since == at && holder == "run-a"
    ));
}

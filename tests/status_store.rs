//! The Blob status store on Azurite: concurrent writers never lose a record (ETag retries),
//! documents sit at `clusters/{cluster key}.json`, a failed cluster shows its error, fix and
//! next step and a waiting one its next retry, the fleet summary counts phases, an unreadable
//! document is shown and then rewritten, and the status function reads the store through the
//! real router without a secret in any answer — including when the store is unreachable.

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use backup_pilot::bus::RecordingPublisher;
use backup_pilot::clock::Clock as _;
use backup_pilot::engine::fix;
use backup_pilot::engine::journal::{Journal, StepRecord, Transition};
use backup_pilot::envelope::WorkflowKind;
use backup_pilot::status::account_sas::AccountKey;
use backup_pilot::status::blob::{BlobJournal, STORAGE_API_VERSION, StorageAuth};
use backup_pilot::status::{FleetSummary, Phase, cluster_key};
use common::azurite::{Azurite, azurite};
use common::status::{FIX, assert_no_secrets, cluster, get_status, registry, run_onboarding_step};
use time::OffsetDateTime;
use time::macros::datetime;

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
    let http = reqwest::Client::new();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_never_lose_a_record() {
    let Some(az) = azurite() else { return };
    let store = Arc::new(journal(&az, &unique_container("race"), 100));
    let subject = cluster("aks-race");
    let t0 = datetime!(2026-03-01 12:00 UTC);
    let writers: Vec<_> = (0..3)
        .map(|w| {
            let store = store.clone();
            let subject = subject.clone();
            tokio::spawn(async move {
                for i in 0..8u32 {
                    let at = t0 + time::Duration::seconds(i64::from(w * 100 + i));
                    store
                        .update(&record(
                            &subject,
                            &format!("wf-{w}"),
                            "poll",
                            i,
                            at,
                            Transition::Retrying {
                                at: at + time::Duration::minutes(1),
                                why: "waiting".into(),
                            },
                        ))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    let status = store.cluster_status(&subject).await.unwrap().unwrap();
    let runs: HashSet<(String, u32)> = status
        .history
        .iter()
        .map(|h| (h.workflow_id.clone(), h.attempt))
        .collect();
    assert_eq!(runs.len(), 24, "every writer's every record landed");
    assert!(
        status
            .history
            .windows(2)
            .all(|w| w[0].finished_at <= w[1].finished_at)
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

    // The document is where the docs say, as plain JSON.
    let name = format!(
        "clusters/{}.json",
        cluster_key(&bad).trim_start_matches('/')
    );
    let (code, body) = raw_blob(&az, &container, &name, None).await;
    assert_eq!(code, 200, "{name}: {body}");
    let stored: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(stored["phase"], "failed");

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
            unknown: 0
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
    // Create the container through the store, then damage the document.
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
    let name = format!(
        "clusters/{}.json",
        cluster_key(&subject).trim_start_matches('/')
    );
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
}

#[tokio::test]
async fn the_status_function_reads_blob_storage_and_leaks_nothing() {
    let Some(az) = azurite() else { return };
    let store: Arc<dyn Journal> = Arc::new(journal(&az, &unique_container("api"), 50));
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

    // A store that cannot be reached: 503 with the reason, still no secret.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let unreachable: Arc<dyn Journal> = Arc::new(
        BlobJournal::new(
            &url::Url::parse(&format!("http://127.0.0.1:{port}/devstoreaccount1")).unwrap(),
            "backup-pilot-status",
            StorageAuth::AccountKey(AccountKey::azurite()),
            50,
        )
        .unwrap()
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

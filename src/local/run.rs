//! The `local` command: starts the stand-ins on a scaled clock (Service Bus, the Functions host,
//! the token endpoint and the ARM stand-in with the fake AKS clusters seeded), spawns this binary
//! as the custom handler through host.json, sends one Event Grid `ResourceWriteSuccess` per fake
//! cluster to `cluster-events`, waits until the queues are idle (or a bound), prints what is
//! left in each queue, why messages were dead-lettered and each cluster's protection state, and
//! stops everything. With `--drill` it then runs a restore drill on every cluster
//! ([`drill_run`]) and prints each verdict and where its report is.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};
use time::OffsetDateTime;

use super::arm::{ArmHandle, ArmStandIn, ClusterSeed};
use super::{LocalEnvironment, drill_run};
use crate::bus::{OutgoingMessage, Publisher};
use crate::clock::ScaledClock;
use crate::engine::Queues;

/// The subscription the fake clusters live in.
pub const FAKE_SUBSCRIPTION: &str = "00000000-0000-0000-0000-00000000b0b0";
/// Their resource group.
pub const FAKE_RESOURCE_GROUP: &str = "rg-backup-pilot-local";
/// Their region.
pub const FAKE_LOCATION: &str = "westeurope";
/// The drill schedule used when `BACKUP_PILOT_DRILL_SCHEDULE` is not set.
pub const DEFAULT_DRILL_SCHEDULE: &str = "0 0 3 * * *";

/// Options of `local`.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalOptions {
    /// How many fake clusters get a write event.
    pub clusters: u32,
    /// Virtual seconds per real second.
    pub time_scale: f64,
    /// The function app folder (host.json).
    pub app_dir: PathBuf,
    /// Stop waiting for idle queues after this much real time.
    pub timeout: Duration,
    /// After onboarding, run a restore drill on every cluster and print where the reports are.
    pub drill: bool,
}

/// Runs the whole chain on stand-ins once.
///
/// # Errors
/// A stand-in or the handler failing to start, a send failing, or the queues still busy at the
/// timeout.
pub async fn run(options: LocalOptions) -> anyhow::Result<()> {
    if !options.app_dir.join("host.json").is_file() {
        anyhow::bail!(
            "{} has no host.json; run from the repository root or pass --app-dir",
            options.app_dir.display()
        );
    }
    let clock = ScaledClock::new(SystemTime::now(), options.time_scale)
        .map_err(|e| anyhow::anyhow!("--time-scale: {e}"))?;
    let program = std::env::current_exe()?;
    let drill_schedule = std::env::var("BACKUP_PILOT_DRILL_SCHEDULE")
        .unwrap_or_else(|_| DEFAULT_DRILL_SCHEDULE.to_string());
    let builder = LocalEnvironment::builder(&options.app_dir);
    let (arm_url, arm) = ArmStandIn::builder()
        .clock(Arc::new(clock))
        .tokens(builder.token_issuer())
        .build()
        .spawn()
        .await?;
    arm.add_subscription(FAKE_SUBSCRIPTION)?;
    let seeds: Vec<ClusterSeed> = (1..=options.clusters)
        .map(|index| {
            ClusterSeed::new(
                FAKE_SUBSCRIPTION,
                FAKE_RESOURCE_GROUP,
                &fake_cluster_name(index),
                FAKE_LOCATION,
            )
        })
        .collect();
    let drills = if options.drill {
        Some(drill_run::prepare(&arm, Arc::new(clock), seeds, &options.app_dir).await?)
    } else {
        for seed in seeds {
            arm.add_cluster(seed)?;
        }
        None
    };
    let mut builder = builder;
    for (name, value) in drills.iter().flat_map(|d| d.settings()) {
        builder = builder.setting(name, value);
    }
    let env = builder
        .scaled_clock(clock)
        .spawn_handler(Some(program))
        .setting("BACKUP_PILOT_DRILL_SCHEDULE", &drill_schedule)
        .setting("BACKUP_PILOT_ARM_URL", &arm_url)
        // The guide's PoC profile unless the caller chose one.
        .setting(
            "BACKUP_PILOT_PROFILE",
            &std::env::var("BACKUP_PILOT_PROFILE").unwrap_or_else(|_| "poc".into()),
        )
        // The host re-logs the handler's lines; colour codes would arrive escaped.
        .setting("NO_COLOR", "1")
        .start()
        .await?;
    println!("local ARM           {arm_url}");
    println!("local Service Bus   {}", env.service_bus_url());
    println!("token endpoint      {}", env.token_url());
    println!("custom handler      {}", env.host().handler_url());
    if let Some(url) = env.host().http_url() {
        println!("HTTP functions      {url}/api/… (function key: x-functions-key header)");
    }
    println!(
        "virtual clock       {} ({}x)",
        env.clock().now(),
        options.time_scale
    );

    let outcome = tokio::select! {
        result = drive(&env, &options) => result,
        () = crate::runtime::shutdown_signal() => Err(anyhow::anyhow!("interrupted")),
    };
    let outcome = match (outcome, &drills) {
        (Ok(()), Some(setup)) => tokio::select! {
            result = drill_run::drill(&env, &arm, setup, options.timeout) => result.map(|report| println!("{report}")),
            () = crate::runtime::shutdown_signal() => Err(anyhow::anyhow!("interrupted")),
        },
        (other, _) => other,
    };
    println!("{}", summary(&env));
    println!("{}", protection_summary(&arm));
    env.stop().await;
    arm.shutdown();
    outcome
}

async fn drive(env: &LocalEnvironment, options: &LocalOptions) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let publisher = env.publisher(http);
    let queue = Queues::default().cluster_events;
    for index in 1..=options.clusters {
        let event = cluster_write_event(index, env.clock().now());
        let id = event["id"].as_str().unwrap_or_default().to_string();
        let mut message = OutgoingMessage::json(&queue, &id, event.to_string().into_bytes());
        for (k, v) in [
            ("aeg-subscription-name", "BACKUP-PILOT-CLUSTERS"),
            ("aeg-delivery-count", "0"),
            ("aeg-data-version", "2"),
            ("aeg-metadata-version", "1"),
            ("aeg-event-type", "Notification"),
        ] {
            message.properties.insert(k.to_string(), v.to_string());
        }
        message
            .properties
            .insert("aeg-output-event-id".into(), id.clone());
        publisher.send(message).await?;
    }
    println!(
        "sent {} cluster write event(s) to {queue}; waiting for the queues to go idle (at most {:?})",
        options.clusters, options.timeout
    );
    if env.wait_idle(options.timeout).await {
        Ok(())
    } else {
        anyhow::bail!(
            "the queues were still busy after {:?}; see the summary above",
            options.timeout
        )
    }
}

/// An Event Grid `ResourceWriteSuccess` for fake cluster `index`, as a subscription system
/// topic delivers it to a Service Bus queue (one event object per message).
pub fn cluster_write_event(index: u32, now: OffsetDateTime) -> Value {
    let cluster = format!(
        "/subscriptions/{FAKE_SUBSCRIPTION}/resourcegroups/{FAKE_RESOURCE_GROUP}/providers/Microsoft.ContainerService/managedClusters/{}",
        fake_cluster_name(index)
    );
    let event_time = now
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    json!({
        "subject": cluster,
        "eventType": "Microsoft.Resources.ResourceWriteSuccess",
        "eventTime": event_time,
        "id": uuid::Uuid::new_v4().to_string(),
        "data": {
            "authorization": {
                "scope": cluster,
                "action": "Microsoft.ContainerService/managedClusters/write",
                "evidence": { "role": "Contributor" }
            },
            "claims": {},
            "correlationId": uuid::Uuid::new_v4().to_string(),
            "resourceProvider": "Microsoft.ContainerService",
            "resourceUri": cluster,
            "operationName": "Microsoft.ContainerService/managedClusters/write",
            "status": "Succeeded",
            "subscriptionId": FAKE_SUBSCRIPTION,
            "tenantId": "00000000-0000-0000-0000-0000000000e1"
        },
        "dataVersion": "2",
        "metadataVersion": "1",
        "topic": format!("/subscriptions/{FAKE_SUBSCRIPTION}")
    })
}

/// The name of fake cluster `index`.
pub fn fake_cluster_name(index: u32) -> String {
    format!("aks-local-{index:02}")
}

/// Each fake cluster's backup instances and their protection state, as the ARM stand-in holds
/// them.
pub fn protection_summary(arm: &ArmHandle) -> String {
    let state = arm.snapshot();
    let mut out = format!(
        "ARM: {} backup instance(s), {} role assignment(s), {} extension(s):\n",
        state.backup_instances.len(),
        state.role_assignments.len(),
        state.extensions.len()
    );
    for bi in &state.backup_instances {
        let name = bi.id.rsplit('/').next().unwrap_or_default();
        let _ = writeln!(out, "  {name:<32} {}", bi.protection_state);
    }
    out
}

/// Each queue's counts, the service's dead letters with their reasons, the broker's
/// dead-letter sub-queues, and invocation outcomes per function.
pub fn summary(env: &LocalEnvironment) -> String {
    let broker = env.broker();
    let mut out = String::from("\nqueues (active / scheduled / locked / dead-lettered):\n");
    for name in broker.queue_names() {
        if let Ok(c) = broker.counts(&name) {
            let _ = writeln!(
                out,
                "  {name:<18} {} / {} / {} / {}",
                c.active, c.scheduled, c.locked, c.dead_lettered
            );
        }
    }
    let dead_letters = Queues::default().dead_letters;
    let letters = broker.peek(&dead_letters).unwrap_or_default();
    let _ = writeln!(out, "{dead_letters} ({} message(s)):", letters.len());
    for m in &letters {
        let prop = |key: &str| {
            m.application_properties
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .and_then(|(_, v)| v.as_str())
                .unwrap_or("?")
                .to_string()
        };
        let _ = writeln!(
            out,
            "  {} from {}: {}",
            prop("dead-letter-reason"),
            prop("source-function"),
            prop("dead-letter-description")
        );
    }
    for name in broker.queue_names() {
        for m in broker.peek_dead_letters(&name).unwrap_or_default() {
            let _ = writeln!(
                out,
                "  {name}/$DeadLetterQueue {}: {} ({})",
                m.message_id,
                m.dead_letter_reason.as_deref().unwrap_or("?"),
                m.dead_letter_error_description.as_deref().unwrap_or("")
            );
        }
    }
    let mut per_function: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for record in env.host().invocations() {
        let entry = per_function.entry(record.function).or_default();
        if record.outcome.is_ok() {
            entry.0 += 1;
        } else {
            entry.1 += 1;
        }
    }
    out.push_str("invocations (succeeded / failed):\n");
    for (function, (ok, failed)) in per_function {
        let _ = writeln!(out, "  {function:<18} {ok} / {failed}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{ClusterChange, Intake, read_event};

    #[test]
    fn fake_cluster_events_are_accepted_by_intake() {
        let event = cluster_write_event(3, OffsetDateTime::UNIX_EPOCH);
        match read_event(event.to_string().as_bytes()).unwrap() {
            Intake::Cluster(c) => {
                assert_eq!(c.change, ClusterChange::Written);
                assert!(
                    c.cluster.to_string().ends_with("/aks-local-03"),
                    "{}",
                    c.cluster
                );
            }
            other => panic!("{other:?}"),
        }
    }
}

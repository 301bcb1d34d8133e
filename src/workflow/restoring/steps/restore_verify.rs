//! `restore_verify`: did the resources really come back? Counts what each target namespace
//! holds; while the job succeeded but pods are not Ready or claims not Bound, waits (as queued
//! retries) up to `BACKUP_PILOT_RESTORE_VERIFY_TIMEOUT_MINUTES`; then scores the run pass /
//! degraded / fail — a job that "completes" with nothing in the namespaces fails. A drill
//! then runs its application probes in the scratch namespaces (waiting, as queued retries,
//! while they run). It checks that the restored pods' references resolve, and reads the
//! source namespaces' inventory, which the report's score compares against.

use std::time::Duration;

use async_trait::async_trait;

use crate::engine::{Outcome, Step, StepError};
use crate::envelope::{Envelope, WorkflowKind};
use crate::kube::ClusterClient;
use crate::kube::probe_pods::start_probe_pod;
use crate::kube::references::{ReferenceCheck, check_references};
use crate::kube::restore_prep::{NamespaceContents, count_namespace};
use crate::restore::probe::{ProbeRun, combine, probe_run};
use crate::restore::request::RestoreRequest;
use crate::restore::verify::{Evidence, Finding, probe_from_job, verify};
use crate::workflow::Ctx;
use crate::workflow::facts::wait;
use crate::workflow::restoring::facts::RestoreFacts;
use crate::workflow::restoring::model::verify::{probes_to_wait_for, settling, unsettled};
use crate::workflow::restoring::{self, RestoreStep, after_verify, keys, time_fact};

/// The fact it publishes.
pub const FACT: &str = "RestoreVerified";
/// How often to look again while workloads settle.
const SETTLE_POLL: Duration = Duration::from_secs(15);
/// How often to look again while probes run.
const PROBE_POLL: Duration = Duration::from_secs(10);

/// See the module docs.
pub struct RestoreVerify;

/// What the source namespaces hold now, for the score's comparison; `None` (and a log line)
/// when the source cluster cannot be read — the score then says it could not compare.
async fn source_inventory(
    ctx: &Ctx,
    facts: &RestoreFacts,
    request: &RestoreRequest,
) -> Option<Vec<(String, NamespaceContents)>> {
    let source = facts.source_cluster().ok()?;
    let read = async {
        let client = ctx.kube.client(&source).await?;
        let mut inventory = Vec::new();
        for (ns, _) in request.namespace_pairs() {
            if inventory.iter().any(|(n, _)| *n == ns) {
                continue;
            }
            let c = count_namespace(&client, &ns).await?;
            inventory.push((ns, c));
        }
        Ok::<_, crate::kube::KubeError>(inventory)
    };
    match read.await {
        Ok(inventory) => Some(inventory),
        Err(e) => {
            tracing::info!(
                "the source namespaces of {source} could not be read for the score: {e}"
            );
            None
        }
    }
}

/// Where a drill's application probes are.
enum Probes {
    /// Some still run: look again (the outcome says so).
    Running(Outcome),
    /// Every probe's result, by name (none configured: empty).
    Finished(Vec<(String, ProbeRun)>),
}

/// Starts the configured probes of the drilled namespaces in their scratch namespaces (once:
/// a pod that exists is left running) and reads them; waits while any runs, up to its own
/// deadline plus a minute for the kubelet to report it.
async fn run_probes(
    ctx: &Ctx,
    facts: &RestoreFacts,
    client: &ClusterClient,
    request: &RestoreRequest,
) -> Result<Probes, StepError> {
    let pairs = request.namespace_pairs();
    let mut results = Vec::new();
    let mut longest = 0;
    for spec in &ctx.restore.drill_probes {
        let Some((_, target)) = pairs.iter().find(|(source, _)| *source == spec.namespace) else {
            continue;
        };
        let pod = start_probe_pod(
            client,
            target,
            &spec.pod(target, &ctx.restore.drill_probe_image),
        )
        .await?;
        longest = longest.max(spec.deadline_seconds());
        results.push((spec.name.clone(), probe_run(&pod)));
    }
    let now = ctx.clock.now();
    let started = facts.probes_started_at.unwrap_or(now);
    let running = probes_to_wait_for(&results, longest, started, now);
    if !running.is_empty() {
        return Ok(Probes::Running(
            wait(
                PROBE_POLL,
                format!("waiting for application probe(s) {}", running.join(", ")),
            )
            .with(keys::PROBES_STARTED_AT, time_fact(started)),
        ));
    }
    Ok(Probes::Finished(results))
}

#[async_trait]
impl Step<Ctx> for RestoreVerify {
    fn name(&self) -> &'static str {
        RestoreStep::Verify.as_str()
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(24 * 60 * 60)
    }

    async fn run(&self, ctx: &Ctx, env: &Envelope) -> Result<Outcome, StepError> {
        let facts = RestoreFacts::of(env);
        let request = facts.request()?;
        let job = facts.job()?;
        let target = facts.target_cluster()?;
        let client = ctx.kube.client(&target).await?;
        let mut contents = Vec::new();
        for ns in request.target_namespaces() {
            let c = count_namespace(&client, &ns).await?;
            contents.push((ns, c));
        }
        let now = ctx.clock.now();
        let window =
            time::Duration::try_from(ctx.restore.verify_timeout).unwrap_or(time::Duration::MAX);
        let settling = settling(job, &contents);
        if settling && now - env.step_started_at < window {
            return Ok(wait(
                SETTLE_POLL,
                format!(
                    "waiting for restored workloads: {}",
                    unsettled(&contents).join("; ")
                ),
            ));
        }
        let probes = if env.kind == WorkflowKind::Drill {
            match run_probes(ctx, &facts, &client, request).await? {
                Probes::Running(waiting) => return Ok(waiting),
                Probes::Finished(results) => results,
            }
        } else {
            Vec::new()
        };
        let mut references = ReferenceCheck::default();
        for ns in request.target_namespaces() {
            let check = check_references(&client, &ns).await?;
            references.total += check.total;
            references.missing.extend(check.missing);
        }
        let mut extra = facts.findings.clone();
        if settling {
            extra.push(Finding::degraded(format!(
                "workloads were still not ready {} minutes after the job finished",
                ctx.restore.verify_timeout.as_secs() / 60
            )));
        }
        let source = source_inventory(ctx, &facts, request).await;
        let probe = combine(
            &probes,
            probe_from_job(job, &request.restore_hook_references),
        );
        let verification = verify(&Evidence {
            job,
            namespaces: &contents,
            probe: probe.as_ref(),
            references: Some(&references),
            extra,
        });
        Ok(Outcome::next(after_verify(env.kind), FACT)
            .with(keys::VERIFICATION, restoring::to_fact(&verification))
            .with(keys::CONTENTS, restoring::to_fact(&contents))
            .with(
                keys::SOURCE_CONTENTS,
                source.map_or(serde_json::Value::Null, |s| restoring::to_fact(&s)),
            )
            .with(keys::VERIFIED_AT, time_fact(now)))
    }
}

//! `restore_verify`: did the resources really come back? Counts what each target namespace
//! holds; while the job succeeded but pods are not Ready or claims not Bound, waits (as queued
//! retries) up to `BACKUP_PILOT_RESTORE_VERIFY_TIMEOUT_MINUTES`; then scores the run pass /
//! degraded / fail — a job that "completes" with nothing in the namespaces fails. It also reads
//! the source namespaces' inventory, which the report's score compares against.

use std::time::Duration;

use async_trait::async_trait;

use super::facts::wait;
use super::restore_run::{self, after_verify, keys, steps, time_fact};
use crate::engine::{Ctx, Outcome, Step, StepError};
use crate::envelope::Envelope;
use crate::kube::restore_prep::{NamespaceContents, count_namespace};
use crate::restore::job::{Job, JobStatus};
use crate::restore::request::RestoreRequest;
use crate::restore::verify::{
    Evidence, Finding, probe_from_job, resource_count, verify, workloads_settled,
};

/// The fact it publishes.
pub const FACT: &str = "RestoreVerified";
/// How often to look again while workloads settle.
const SETTLE_POLL: Duration = Duration::from_secs(15);

/// See the module docs.
pub struct RestoreVerify;

/// What the source namespaces hold now, for the score's comparison; `None` (and a log line)
/// when the source cluster cannot be read — the score then says it could not compare.
async fn source_inventory(
    ctx: &Ctx,
    env: &Envelope,
    request: &RestoreRequest,
) -> Option<Vec<(String, NamespaceContents)>> {
    let source = restore_run::id_fact(env, keys::SOURCE_CLUSTER_ID).ok()?;
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

#[async_trait]
impl Step for RestoreVerify {
    fn name(&self) -> &'static str {
        steps::VERIFY
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(24 * 60 * 60)
    }

    async fn run(&self, ctx: &Ctx, env: &Envelope) -> Result<Outcome, StepError> {
        let request = restore_run::request(env)?;
        let job: Job = restore_run::required(env, keys::JOB)?;
        let target = restore_run::id_fact(env, keys::TARGET_CLUSTER_ID)?;
        let client = ctx.kube.client(&target).await?;
        let mut contents = Vec::new();
        for ns in request.target_namespaces() {
            let c = count_namespace(&client, &ns).await?;
            contents.push((ns, c));
        }
        let now = ctx.clock.now();
        let succeeded = matches!(
            job.status,
            JobStatus::Completed | JobStatus::CompletedWithWarnings
        );
        let something = contents.iter().any(|(_, c)| resource_count(c) > 0);
        let window =
            time::Duration::try_from(ctx.restore.verify_timeout).unwrap_or(time::Duration::MAX);
        let settling = succeeded && something && !workloads_settled(&contents);
        if settling && now - env.step_started_at < window {
            let pending: Vec<String> = contents
                .iter()
                .filter(|(_, c)| c.pods_ready < c.pods || c.pvcs_bound < c.pvcs)
                .map(|(n, c)| {
                    format!(
                        "{n}: {}/{} pods Ready, {}/{} claims Bound",
                        c.pods_ready, c.pods, c.pvcs_bound, c.pvcs
                    )
                })
                .collect();
            return Ok(wait(
                SETTLE_POLL,
                format!("waiting for restored workloads: {}", pending.join("; ")),
            ));
        }
        let mut extra: Vec<Finding> = restore_run::fact(env, keys::FINDINGS).unwrap_or_default();
        if settling {
            extra.push(Finding::degraded(format!(
                "workloads were still not ready {} minutes after the job finished",
                ctx.restore.verify_timeout.as_secs() / 60
            )));
        }
        let source = source_inventory(ctx, env, &request).await;
        let probe = probe_from_job(&job, &request.restore_hook_references);
        let verification = verify(&Evidence {
            job: &job,
            namespaces: &contents,
            probe: probe.as_ref(),
            extra,
        });
        Ok(Outcome::next(after_verify(env.kind), FACT)
            .with(keys::VERIFICATION, restore_run::to_fact(&verification))
            .with(keys::CONTENTS, restore_run::to_fact(&contents))
            .with(
                keys::SOURCE_CONTENTS,
                source.map_or(serde_json::Value::Null, |s| restore_run::to_fact(&s)),
            )
            .with(keys::VERIFIED_AT, time_fact(now)))
    }
}

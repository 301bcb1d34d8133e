//! `drill_cleanup` (Drill; after verification, or after any failure): deletes the drill's
//! scratch namespaces — only namespaces labelled as scratch, so a real one is never touched —
//! and waits (as queued retries) until they are gone, at most
//! `BACKUP_PILOT_DRILL_CLEANUP_TIMEOUT_MINUTES`. It never stops the workflow: whatever is left
//! behind goes into the report, which comes next.

use std::time::Duration;

use async_trait::async_trait;

use crate::engine::{Outcome, Step, StepError};
use crate::envelope::Envelope;
use crate::kube::KubeError;
use crate::kube::restore_prep::{delete_scratch_namespace, namespace_gone};
use crate::resource_id::ResourceId;
use crate::restore::report::Cleanup;
use crate::workflow::Ctx;
use crate::workflow::facts::wait;
use crate::workflow::restoring::facts::RestoreFacts;
use crate::workflow::restoring::model::cleanup::{CleanupNext, after_pass};
use crate::workflow::restoring::{self, RestoreStep, keys, time_fact};

/// The fact it publishes.
pub const FACT: &str = "ScratchNamespacesCleaned";
/// How often to look at terminating namespaces.
const POLL: Duration = Duration::from_secs(10);

/// See the module docs.
pub struct DrillCleanup;

/// After asking for every scratch namespace to go: those still terminating, and those that
/// are not labelled as scratch (not the service's to delete).
async fn remaining(
    ctx: &Ctx,
    cluster: &ResourceId,
    names: &[String],
) -> Result<(Vec<String>, Vec<String>), String> {
    let client = ctx.kube.client(cluster).await.map_err(|e| e.to_string())?;
    let (mut left, mut foreign) = (Vec::new(), Vec::new());
    for name in names {
        match delete_scratch_namespace(&client, name).await {
            Ok(_) => {}
            Err(KubeError::NotScratch { .. }) => {
                foreign.push(name.clone());
                continue;
            }
            Err(e) => return Err(e.to_string()),
        }
        if !namespace_gone(&client, name)
            .await
            .map_err(|e| e.to_string())?
        {
            left.push(name.clone());
        }
    }
    Ok((left, foreign))
}

#[async_trait]
impl Step<Ctx> for DrillCleanup {
    fn name(&self) -> &'static str {
        RestoreStep::Cleanup.as_str()
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(24 * 60 * 60)
    }

    async fn run(&self, ctx: &Ctx, env: &Envelope) -> Result<Outcome, StepError> {
        let done = |cleanup: Cleanup| {
            Ok(Outcome::next(RestoreStep::Report.as_str(), FACT)
                .with(keys::CLEANUP, restoring::to_fact(&cleanup))
                .with(keys::CLEANED_UP_AT, time_fact(ctx.clock.now())))
        };
        let Some(plan) = RestoreFacts::of(env).plan else {
            // The drill failed before it had a plan: nothing was created.
            return done(Cleanup::default());
        };
        let names = plan.scratch_namespaces();
        let deadline = env.step_started_at
            + time::Duration::try_from(ctx.restore.cleanup_timeout).unwrap_or(time::Duration::MAX);
        let out_of_time = ctx.clock.now() >= deadline;
        let reached = remaining(ctx, &plan.cluster_id, &names).await;
        if let Err(why) = &reached
            && out_of_time
        {
            tracing::error!(workflow_id = %env.workflow_id, "scratch namespaces left behind: {why}");
        }
        match after_pass(&names, reached, out_of_time) {
            CleanupNext::Done(cleanup) => done(cleanup),
            CleanupNext::Wait(why) => Ok(wait(POLL, why)),
        }
    }
}

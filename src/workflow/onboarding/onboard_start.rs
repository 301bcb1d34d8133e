//! Starting onboarding once per cluster, whoever asks: an Event Grid event, the `onboard`
//! command, a fleet scan or a drift repair. Each start claims `onboarding/{cluster}` in the
//! status store (an atomic create-only write naming the workflow). A held claim is stale —
//! and is taken over — when the cluster's status shows a protection workflow that ended after
//! the claim was made, when its workflow recorded nothing for [`START_GRACE`] (its starter
//! died before publishing the first message), or when it is older than [`CLAIM_TTL`] (a
//! workflow lost to a bug must not block the cluster for ever); otherwise an onboarding is
//! under way and the start is dropped. Two starters racing for a stale claim: one wins the
//! create, the other sees a fresh claim and drops.
//!
//! A starter that finds its own workflow's claim (a redelivery after a crash between the
//! claim and the first message, or a duplicate delivery) publishes the first message again:
//! it carries the same message id, so Service Bus drops it if it was sent.

use std::time::Duration;

use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::engine::{Engine, EngineError};
use crate::envelope::{Envelope, WorkflowKind, workflow_id};
use crate::status::store::Claim;
use crate::status::{ClusterStatus, cluster_key};
use crate::workflow::Ctx;

/// How long a claim without an end in the status blocks another start.
pub const CLAIM_TTL: Duration = Duration::from_secs(6 * 60 * 60);

/// How long a claim whose workflow recorded nothing blocks another start.
pub const START_GRACE: Duration = Duration::from_secs(30 * 60);

/// What a start did.
#[derive(Debug, Clone)]
pub enum Start {
    /// A workflow was started (or its first message sent again).
    Started(Box<Envelope>),
    /// An onboarding of the cluster is under way (claimed at `since`): nothing started.
    AlreadyRunning {
        /// When the running onboarding claimed the cluster.
        since: OffsetDateTime,
    },
}

/// What the status says about the workflow holding a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClaimHolder {
    /// The status's current protection workflow is the holder.
    pub recorded: bool,
    /// When the cluster's current protection workflow ended, if it did.
    pub ended_at: Option<OffsetDateTime>,
}

impl ClaimHolder {
    /// Reads `holder`'s standing from the cluster's status.
    pub fn from_status(status: Option<&ClusterStatus>, holder: &str) -> Self {
        Self {
            recorded: status
                .and_then(|s| s.workflow.as_ref())
                .is_some_and(|w| w.id == holder),
            ended_at: status
                .filter(|s| s.phase.is_end())
                .and_then(|s| s.phase_since),
        }
    }
}

/// Starts onboarding of `cluster` unless one is under way (see the module docs).
///
/// # Errors
/// The status store could not be read or written, or the first message not published (the
/// claim is then given back); both are worth a redelivery.
pub async fn start_onboarding(
    engine: &Engine<Ctx>,
    cluster: &str,
    generation: &str,
    payload: Map<String, Value>,
) -> Result<Start, EngineError> {
    let ctx = engine.ctx();
    let key = format!("onboarding/{}", cluster_key(cluster));
    let now = ctx.clock.now();
    let ours = workflow_id(WorkflowKind::Onboard, cluster, generation);
    let store = |e: crate::status::StatusError| EngineError::Record(e.to_string());
    let held = match ctx.journal.claim(&key, now, &ours).await.map_err(store)? {
        Claim::Won => None,
        Claim::Held { holder, .. } if holder == ours => None,
        Claim::Held { since, holder } => Some((since, holder)),
    };
    if let Some((since, holder)) = held {
        let status = ctx.journal.cluster_status(cluster).await.map_err(store)?;
        if !claim_is_stale(
            since,
            &ClaimHolder::from_status(status.as_ref(), &holder),
            now,
        ) {
            return Ok(Start::AlreadyRunning { since });
        }
        ctx.journal.release(&key).await.map_err(store)?;
        if matches!(
            ctx.journal.claim(&key, now, &ours).await.map_err(store)?,
            Claim::Held { holder, .. } if holder != ours
        ) {
            // Another starter took the stale claim first.
            return Ok(Start::AlreadyRunning { since: now });
        }
    }
    match engine
        .start(WorkflowKind::Onboard, cluster, generation, payload)
        .await
    {
        Ok(env) => Ok(Start::Started(Box::new(env))),
        Err(e) => {
            if let Err(release) = ctx.journal.release(&key).await {
                tracing::warn!("could not give back the onboarding claim: {release}");
            }
            Err(e)
        }
    }
}

/// True when a claim made at `since` no longer stands for a running onboarding.
pub fn claim_is_stale(since: OffsetDateTime, holder: &ClaimHolder, now: OffsetDateTime) -> bool {
    let older_than = |d: Duration| time::Duration::try_from(d).is_ok_and(|d| now - since > d);
    holder.ended_at.is_some_and(|end| end >= since)
        || older_than(CLAIM_TTL)
        || (!holder.recorded && older_than(START_GRACE))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn a_claim_stands_until_its_workflow_ends_goes_silent_or_expires() {
        let since = datetime!(2026-03-01 12:00 UTC);
        let soon = since + time::Duration::minutes(10);
        let later = since + time::Duration::hours(2);
        let running = ClaimHolder {
            recorded: true,
            ended_at: None,
        };
        let silent = ClaimHolder::default();
        assert!(
            !claim_is_stale(since, &running, soon),
            "running, nothing ended"
        );
        assert!(
            !claim_is_stale(since, &running, later),
            "running for a while"
        );
        assert!(
            !claim_is_stale(since, &silent, soon),
            "its first step may still be queued"
        );
        assert!(
            claim_is_stale(since, &silent, later),
            "its starter died before publishing"
        );
        let older_end = ClaimHolder {
            recorded: false,
            ended_at: Some(since - time::Duration::hours(1)),
        };
        assert!(
            !claim_is_stale(since, &older_end, soon),
            "an older workflow's end says nothing about this claim"
        );
        assert!(
            claim_is_stale(since, &older_end, later),
            "a repair whose starter died before publishing"
        );
        let ended = ClaimHolder {
            recorded: true,
            ended_at: Some(soon),
        };
        assert!(claim_is_stale(since, &ended, soon), "its workflow ended");
        assert!(claim_is_stale(
            since,
            &running,
            since + time::Duration::hours(7)
        ));
    }
}

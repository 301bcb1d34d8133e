//! Starting onboarding once per cluster, whoever asks: an Event Grid event, the `onboard`
//! command, a fleet scan or a drift repair. Each start claims `onboarding/{cluster}` in the
//! status store (an atomic create-only write). A held claim is stale — and is taken over —
//! when the cluster's status shows a protection workflow that ended after the claim was
//! made, or when the claim is older than [`CLAIM_TTL`] (a workflow lost to a bug must not
//! block the cluster for ever); otherwise an onboarding is under way and the start is
//! dropped. Two starters racing for a stale claim: one wins the create, the other sees a
//! fresh claim and drops.

use std::time::Duration;

use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::engine::journal::Claim;
use crate::engine::{Engine, EngineError};
use crate::envelope::{Envelope, WorkflowKind};
use crate::status::{Phase, cluster_key};

/// How long a claim without an end in the status blocks another start.
pub const CLAIM_TTL: Duration = Duration::from_secs(6 * 60 * 60);

/// What a start did.
#[derive(Debug, Clone)]
pub enum Start {
    /// A workflow was started.
    Started(Box<Envelope>),
    /// An onboarding of the cluster is under way (claimed at `since`): nothing started.
    AlreadyRunning {
        /// When the running onboarding claimed the cluster.
        since: OffsetDateTime,
    },
}

/// Starts onboarding of `cluster` unless one is under way (see the module docs).
///
/// # Errors
/// The status store could not be read or written, or the first message not published (the
/// claim is then given back); both are worth a redelivery.
pub async fn start_onboarding(
    engine: &Engine,
    cluster: &str,
    generation: &str,
    payload: Map<String, Value>,
) -> Result<Start, EngineError> {
    let ctx = engine.ctx();
    let key = format!("onboarding/{}", cluster_key(cluster));
    let now = ctx.clock.now();
    let store = |e: crate::status::StatusError| EngineError::Record(e.to_string());
    for _ in 0..2 {
        match ctx.journal.claim(&key, now).await.map_err(store)? {
            Claim::Won => {
                return match engine
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
                };
            }
            Claim::Held { since } => {
                let ended = ctx
                    .journal
                    .cluster_status(cluster)
                    .await
                    .map_err(store)?
                    .filter(|s| {
                        matches!(
                            s.phase,
                            Phase::Protected | Phase::Failed | Phase::Offboarded
                        )
                    })
                    .and_then(|s| s.phase_since);
                if !claim_is_stale(since, ended, now) {
                    return Ok(Start::AlreadyRunning { since });
                }
                ctx.journal.release(&key).await.map_err(store)?;
            }
        }
    }
    Ok(Start::AlreadyRunning { since: now })
}

/// True when a claim made at `since` no longer stands for a running onboarding.
pub fn claim_is_stale(
    since: OffsetDateTime,
    workflow_ended: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> bool {
    workflow_ended.is_some_and(|end| end >= since)
        || time::Duration::try_from(CLAIM_TTL).is_ok_and(|ttl| now - since > ttl)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn a_claim_stands_until_its_workflow_ends_or_it_expires() {
        let since = datetime!(2026-03-01 12:00 UTC);
        let soon = since + time::Duration::minutes(10);
        assert!(!claim_is_stale(since, None, soon), "running, nothing ended");
        assert!(
            !claim_is_stale(since, Some(since - time::Duration::hours(1)), soon),
            "an older workflow's end says nothing about this claim"
        );
        assert!(
            claim_is_stale(since, Some(soon), soon),
            "its workflow ended"
        );
        assert!(claim_is_stale(
            since,
            None,
            since + time::Duration::hours(7)
        ));
    }
}

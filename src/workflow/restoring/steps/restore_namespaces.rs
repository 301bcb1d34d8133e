//! `restore_namespaces`: creates the target namespaces before the restore — a restore into a
//! namespace that does not exist "completes" with nothing restored (guide gotcha 6, known
//! issue 1). A drill's scratch namespaces are labelled so cleanup may delete them, and isolated
//! before anything is restored into them (a deny-all network policy and an object-count quota);
//! a namespace still terminating from an earlier run is waited for.

use std::time::Duration;

use async_trait::async_trait;

use crate::engine::{Outcome, Step, StepError};
use crate::envelope::{Envelope, WorkflowKind};
use crate::kube::restore_prep::{
    ISOLATION_POLICY, ISOLATION_QUOTA, NamespaceRequest, ensure_namespaces,
    isolate_scratch_namespace,
};
use crate::restore::verify::Finding;
use crate::workflow::Ctx;
use crate::workflow::facts::wait;
use crate::workflow::restoring::facts::RestoreFacts;
use crate::workflow::restoring::model::namespaces::{created_so_far, terminating};
use crate::workflow::restoring::{self, RestoreStep, keys};

/// The fact it publishes.
pub const FACT: &str = "TargetNamespacesReady";
/// How often to look at a terminating namespace.
const TERMINATING_WAIT: Duration = Duration::from_secs(10);

/// See the module docs.
pub struct RestoreNamespaces;

#[async_trait]
impl Step<Ctx> for RestoreNamespaces {
    fn name(&self) -> &'static str {
        RestoreStep::Namespaces.as_str()
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(20 * 60)
    }

    async fn run(&self, ctx: &Ctx, env: &Envelope) -> Result<Outcome, StepError> {
        let facts = RestoreFacts::of(env);
        let request = facts.request()?;
        let target = facts.target_cluster()?;
        let scratch = env.kind == WorkflowKind::Drill;
        let wanted: Vec<NamespaceRequest> = request
            .target_namespaces()
            .iter()
            .map(|n| {
                if scratch {
                    NamespaceRequest::scratch(n)
                } else {
                    NamespaceRequest::shared(n)
                }
            })
            .collect();
        let client = ctx.kube.client(&target).await?;
        let states = ensure_namespaces(&client, &wanted).await?;
        let terminating = terminating(&states);
        if !terminating.is_empty() {
            return Ok(wait(
                TERMINATING_WAIT,
                format!(
                    "namespace(s) {} on {target} are still being deleted",
                    terminating.join(", ")
                ),
            ));
        }
        if scratch {
            for (name, _) in &states {
                isolate_scratch_namespace(&client, name).await?;
            }
        }
        let created = created_so_far(facts.created_namespaces.clone(), &states);
        let note = (!created.is_empty()).then(|| {
            Finding::info(format!(
                "created namespace(s) {} before the restore (a restore into a missing namespace restores nothing)",
                created.join(", ")
            ))
        });
        let isolated = scratch.then(|| {
            let names: Vec<&str> = states.iter().map(|(n, _)| n.as_str()).collect();
            Finding::info(format!(
                "isolated {} before the restore: network policy {ISOLATION_POLICY} denies all ingress and egress but for the drill's own probe pods; quota {ISOLATION_QUOTA} allows no load balancer or node port",
                names.join(", ")
            ))
        });
        Ok(Outcome::next(RestoreStep::Validate.as_str(), FACT)
            .with(keys::CREATED_NAMESPACES, restoring::to_fact(&created))
            .with(
                keys::FINDINGS,
                facts.findings_with(note.into_iter().chain(isolated)),
            ))
    }
}

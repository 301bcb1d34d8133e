//! Onboarding step `apply_hooks`: server-side applies the configured BackupHook and RestoreHook
//! resources to the cluster (pruning ones no longer configured) and carries their references
//! forward as `backupHookReferences` / `restoreHookReferences` for the backup instance and
//! restores.

use async_trait::async_trait;
use serde_json::Value;

use crate::engine::{Ctx, Outcome, Step, StepError};
use crate::envelope::Envelope;
use crate::kube::hooks;

/// The step that follows.
pub const NEXT_STEP: &str = "configure_backup";
/// The fact it publishes.
pub const FACT: &str = "HooksApplied";

/// Puts the configured hooks on the cluster.
#[derive(Debug, Default, Clone, Copy)]
pub struct ApplyHooks;

#[async_trait]
impl Step for ApplyHooks {
    fn name(&self) -> &'static str {
        "apply_hooks"
    }

    async fn run(&self, ctx: &Ctx, env: &Envelope) -> Result<Outcome, StepError> {
        let cluster = super::cluster_id(env)?;
        let client = ctx.kube.client(&cluster).await?;
        let applied = hooks::apply(&client, &ctx.hooks).await?;
        let to_json = |refs: &[hooks::HookReference]| {
            serde_json::to_value(refs).unwrap_or(Value::Array(Vec::new()))
        };
        let mut outcome = Outcome::next(NEXT_STEP, FACT)
            .with("backupHookReferences", to_json(&applied.backup))
            .with("restoreHookReferences", to_json(&applied.restore));
        if !applied.pruned.is_empty() {
            outcome = outcome.with("hooksPruned", applied.pruned);
        }
        Ok(outcome)
    }
}

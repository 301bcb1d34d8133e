//! Onboarding step `apply_hooks` (fact in: `ExtensionReady`): server-side applies the
//! configured BackupHook and RestoreHook resources to the cluster (pruning ones no longer
//! configured) and carries their references forward as `backupHookReferences` /
//! `restoreHookReferences`; `configure_backup` puts the former in the backup instance, restores
//! use the latter. Re-running it (the permission remediation loop passes through it) changes
//! nothing on the cluster.

use async_trait::async_trait;
use serde_json::Value;

use crate::engine::{Outcome, Step, StepError};
use crate::envelope::Envelope;
use crate::kube::hooks;
use crate::workflow::Ctx;
use crate::workflow::facts::{self, advance};
use crate::workflow::onboarding::OnboardStep;

/// The step's name.
pub const NAME: &str = OnboardStep::ApplyHooks.as_str();
/// The step that follows.
pub const NEXT_STEP: &str = OnboardStep::ApplyHooks.next_name();
/// The fact it publishes.
pub const FACT: &str = "HooksApplied";

/// Puts the configured hooks on the cluster.
#[derive(Debug, Default, Clone, Copy)]
pub struct ApplyHooks;

#[async_trait]
impl Step<Ctx> for ApplyHooks {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn run(&self, ctx: &Ctx, env: &Envelope) -> Result<Outcome, StepError> {
        let cluster = crate::workflow::cluster_id(env)?;
        let client = ctx.kube.client(&cluster).await?;
        let applied = hooks::apply(&client, &ctx.hooks).await?;
        let to_json = |refs: &[hooks::HookReference]| {
            serde_json::to_value(refs).unwrap_or(Value::Array(Vec::new()))
        };
        let mut outcome = advance(NEXT_STEP, FACT)
            .with(facts::BACKUP_HOOK_REFERENCES, to_json(&applied.backup))
            .with(facts::RESTORE_HOOK_REFERENCES, to_json(&applied.restore));
        if !applied.pruned.is_empty() {
            outcome = outcome.with("hooksPruned", applied.pruned);
        }
        Ok(outcome)
    }
}

//! `validate_backup` (fact in: `ExtensionRolesAssigned`): Azure's `validateForBackup` accepts
//! the cluster's new backup instance (the instance `configure_backup` will create, with the
//! hooks `apply_hooks` will apply). It runs as soon as the new role assignments have had time
//! to take effect, beside the extension's pods becoming Ready: the validation reads what ARM
//! knows (the extension's provisioning, the binding, the roles), not the pods. A permission
//! error found here is remediated before the health gate, and the validation's write leaves
//! the window, after a fleet's installs end, when every cluster's instance is being created.
//!
//! Validation is for new instances (Azure refuses a second instance of a cluster): a repair,
//! a re-submission or an instance Azure says exists goes on to `configure_backup`, which
//! adopts or re-submits it.

use std::time::Duration;

use async_trait::async_trait;

use super::configure_backup::{
    self, ROLES_TAKE_EFFECT_WITHIN, SEARCH_VAULT, answer_refusal, spec_from_facts,
};
use crate::arm::{FinalState, versions};
use crate::engine::{Outcome, Step, StepError};
use crate::envelope::Envelope;
use crate::workflow::Ctx;
use crate::workflow::bodies;
use crate::workflow::facts::{self, Progress, advance, failed_operation, started, wait};
use crate::workflow::onboarding::OnboardStep;
use crate::workflow::onboarding::facts::OnboardFacts;

/// The step's name.
pub const NAME: &str = OnboardStep::ValidateBackup.as_str();
/// The step that runs next.
pub const NEXT_STEP: &str = OnboardStep::ValidateBackup.next_name();
/// The fact it publishes.
pub const FACT: &str = "BackupValidated";

/// See the module docs.
#[derive(Debug, Default, Clone, Copy)]
pub struct ValidateBackup;

#[async_trait]
impl Step<Ctx> for ValidateBackup {
    fn name(&self) -> &'static str {
        NAME
    }

    fn timeout(&self) -> Duration {
        ROLES_TAKE_EFFECT_WITHIN
    }

    async fn run(&self, ctx: &Ctx, env: &Envelope) -> Result<Outcome, StepError> {
        let f = OnboardFacts::of(env);
        match facts::follow(ctx, env, NAME).await? {
            Progress::Waiting(outcome) => return Ok(outcome),
            Progress::Failed { error, .. } => {
                return answer_refusal(env, error, f.resubmit_backup_instance, adopt_existing)
                    .map_err(|e| failed_operation(e.into()));
            }
            Progress::Finished { .. } => return Ok(validated()),
            Progress::Idle => {}
        }
        if f.backup_validated
            || f.resubmit_backup_instance
            || f.is_repair()
            || f.search_vault_for_instance
        {
            return Ok(advance(NEXT_STEP, FACT));
        }
        if let Some(left) = configure_backup::propagation_left(ctx, env) {
            return Ok(wait(
                left,
                "waiting for the new role assignments to take effect before validating",
            ));
        }
        let path = format!("{}/validateForBackup", f.vault_id()?);
        ctx.arm.room_to_post(&path)?;
        let resp = ctx
            .arm
            .post(
                &path,
                versions::BACKUP_INSTANCES,
                Some(&bodies::validate_for_backup(&spec_from_facts(
                    ctx,
                    env,
                    ctx.hooks.backup_references(),
                )?)),
            )
            .await;
        match resp {
            // Only the validation's outcome matters, and its status says it: the result
            // behind `Location` (a job's extended info) is not read.
            Ok(r) => Ok(
                match r.pending(
                    NAME,
                    FinalState::AzureAsyncOperation,
                    ctx.arm.default_poll(),
                ) {
                    Some(op) => started(op),
                    None => validated(),
                },
            ),
            Err(e) => answer_refusal(env, e, f.resubmit_backup_instance, adopt_existing)
                .map_err(Into::into),
        }
    }
}

fn validated() -> Outcome {
    advance(NEXT_STEP, FACT).with(facts::BACKUP_VALIDATED, true)
}

/// Azure says an instance of the cluster exists: `configure_backup` searches the vault for it
/// and adopts it.
fn adopt_existing(why: &str) -> Outcome {
    tracing::info!("the cluster already has a backup instance; adopting it: {why}");
    advance(NEXT_STEP, FACT).with(SEARCH_VAULT, true)
}

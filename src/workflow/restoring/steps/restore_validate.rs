//! `restore_validate`: `BackupInstances_ValidateForRestore` with the exact body the restore
//! will send, followed as a location LRO. Errors that roles not yet in effect explain are
//! waited out (role propagation); any other refusal ends the run with Azure's reason.

use std::time::Duration;

use async_trait::async_trait;

use crate::arm::{ArmError, FinalState, versions};
use crate::engine::{Outcome, Step, StepError};
use crate::envelope::Envelope;
use crate::resource_id::ResourceId;
use crate::restore::body::{self, TargetCluster};
use crate::workflow::Ctx;
use crate::workflow::facts::{self, Progress, advance, started, wait};
use crate::workflow::restoring::RestoreStep;
use crate::workflow::restoring::facts::RestoreFacts;

/// The fact it publishes.
pub const FACT: &str = "RestoreValidated";
/// How long to let role assignments propagate before validating again.
const PROPAGATION_WAIT: Duration = Duration::from_secs(30);

/// See the module docs.
pub struct RestoreValidate;

/// The `AzureBackupRecoveryPointBasedRestoreRequest` this workflow sends.
///
/// # Errors
/// A missing fact.
pub fn restore_body(facts: &RestoreFacts) -> Result<serde_json::Value, StepError> {
    let request = facts.request()?;
    let point = facts.recovery_point()?;
    let source = facts.source_cluster().ok();
    let target = TargetCluster {
        id: facts.target_cluster()?,
        location: facts.target_location()?,
    };
    Ok(body::restore_request(
        &point.id,
        source.as_ref(),
        &target,
        request,
    ))
}

fn refused(e: &ArmError) -> Result<Outcome, StepError> {
    if e.is_missing_roles() {
        Ok(wait(
            PROPAGATION_WAIT,
            format!("waiting for role assignments to take effect: {e}"),
        ))
    } else {
        Err(StepError::Permanent {
            reason: format!("validateRestore refused the restore: {e}"),
        })
    }
}

#[async_trait]
impl Step<Ctx> for RestoreValidate {
    fn name(&self) -> &'static str {
        RestoreStep::Validate.as_str()
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(30 * 60)
    }

    async fn run(&self, ctx: &Ctx, env: &Envelope) -> Result<Outcome, StepError> {
        match facts::follow(ctx, env, RestoreStep::Validate.as_str()).await? {
            Progress::Waiting(outcome) => return Ok(outcome),
            Progress::Failed { error, .. } => return refused(&error),
            Progress::Finished { .. } => return Ok(advance(RestoreStep::Trigger.as_str(), FACT)),
            Progress::Idle => {}
        }
        let known = RestoreFacts::of(env);
        let bi =
            ResourceId::parse(&known.backup_instance_id()?).map_err(|e| StepError::Permanent {
                reason: e.to_string(),
            })?;
        let answer = ctx
            .arm
            .post(
                &format!("{bi}/validateRestore"),
                versions::BACKUP_INSTANCES,
                Some(&body::validate_restore(&restore_body(&known)?)),
            )
            .await;
        match answer {
            Ok(r) => Ok(
                match r.pending(
                    RestoreStep::Validate.as_str(),
                    FinalState::Location,
                    ctx.arm.default_poll(),
                ) {
                    Some(op) => started(op),
                    None => advance(RestoreStep::Trigger.as_str(), FACT),
                },
            ),
            Err(e) if e.is_transient() => Err(e.into()),
            Err(e) => refused(&e),
        }
    }
}

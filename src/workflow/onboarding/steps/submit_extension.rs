//! `submit_extension` (fact in: `ProvidersRegistered`): sends the backup extension's install
//! to ARM as soon as its storage exists, without waiting for it: the install takes the guide's
//! 5–10 minutes, in which the vault, its policy, the trusted-access binding, the roles and the
//! cluster's access are made and checked, and `install_extension` judges the result. An extension already on the cluster (ours, in any
//! state, or one of the type under another name) is left for `install_extension` to judge.

use async_trait::async_trait;

use super::install_extension::{desired_storage, installed_under_another_name};
use crate::arm::versions;
use crate::engine::{Outcome, Step, StepError};
use crate::envelope::Envelope;
use crate::workflow::bodies;
use crate::workflow::facts::{self, advance};
use crate::workflow::onboarding::OnboardStep;
use crate::workflow::placement::{EXTENSION_NAME, extension_path};
use crate::workflow::{Ctx, absent_if_unregistered};

/// The step's name.
pub const NAME: &str = OnboardStep::SubmitExtension.as_str();
/// The step that runs next.
pub const NEXT_STEP: &str = OnboardStep::SubmitExtension.next_name();
/// The fact it publishes.
pub const FACT: &str = "ExtensionSubmitted";
/// When the install was sent (Unix seconds), for `install_extension`'s first read.
pub const SUBMITTED_AT: &str = "extensionSubmittedAt";

/// See the module docs.
pub struct SubmitExtension;

#[async_trait]
impl Step<Ctx> for SubmitExtension {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn run(&self, ctx: &Ctx, env: &Envelope) -> Result<Outcome, StepError> {
        let cluster_id = facts::cluster_id(env)?.to_string();
        let ours = extension_path(&cluster_id, EXTENSION_NAME);
        // A read, then most likely the install: a held-back install would repeat the read.
        ctx.arm.room_to_write(&ours)?;
        let existing =
            absent_if_unregistered(ctx.arm.get_optional(&ours, versions::EXTENSIONS).await)?;
        if existing.is_some() {
            return Ok(advance(NEXT_STEP, FACT));
        }
        let storage = desired_storage(env)?;
        tracing::info!(cluster = %cluster_id, "installing the backup extension");
        match ctx
            .arm
            .put(&ours, versions::EXTENSIONS, &bodies::extension(&storage))
            .await
        {
            Ok(_) => {
                Ok(advance(NEXT_STEP, FACT).with(SUBMITTED_AT, ctx.clock.now().unix_timestamp()))
            }
            // One extension of a type per cluster: one under another name is adopted by
            // `install_extension`.
            Err(e) if matches!(e.status(), Some(400 | 409)) => {
                match installed_under_another_name(ctx, &cluster_id).await? {
                    Some(_) => Ok(advance(NEXT_STEP, FACT)),
                    None => Err(e.into()),
                }
            }
            Err(e) => Err(e.into()),
        }
    }
}

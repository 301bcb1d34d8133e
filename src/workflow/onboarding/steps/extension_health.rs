//! Onboarding step `extension_health` (fact in: `ExtensionInstalled`): waits, as scheduled
//! retries, until the backup extension's hook CRDs are established and its pods are Running and
//! Ready, then goes on to `assign_roles`. ARM reporting the extension install as "Succeeded" is
//! not enough (pods may still be pulling images or unschedulable).

use std::time::Duration;

use async_trait::async_trait;

use crate::engine::{Outcome, Step, StepError};
use crate::envelope::Envelope;
use crate::kube::health;
use crate::workflow::Ctx;
use crate::workflow::facts::{advance, wait};
use crate::workflow::onboarding::OnboardStep;

/// The step's name.
pub const NAME: &str = OnboardStep::ExtensionHealth.as_str();
/// The step that follows once the extension is healthy.
pub const NEXT_STEP: &str = OnboardStep::ExtensionHealth.next_name();
/// The fact it publishes.
pub const FACT: &str = "ExtensionReady";
/// Longest wait between two looks.
pub const MAX_POLL: Duration = Duration::from_secs(60);

/// Holds onboarding until the extension is usable.
#[derive(Debug, Default, Clone, Copy)]
pub struct ExtensionHealth;

#[async_trait]
impl Step<Ctx> for ExtensionHealth {
    fn name(&self) -> &'static str {
        NAME
    }

    fn timeout(&self) -> Duration {
        // The guide budgets 5-10 minutes for the install; leave room for slow pulls.
        Duration::from_secs(30 * 60)
    }

    async fn run(&self, ctx: &Ctx, env: &Envelope) -> Result<Outcome, StepError> {
        let cluster = crate::workflow::cluster_id(env)?;
        let client = ctx.kube.client(&cluster).await?;
        let health = health::check(&client).await?;
        if health.is_ready() {
            Ok(advance(NEXT_STEP, FACT).with("extensionPodsReady", health.pods.len()))
        } else {
            let after = ctx.retry.delay(env.attempt).min(MAX_POLL);
            Ok(wait(after, health.reason()))
        }
    }
}

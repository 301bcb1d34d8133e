//! Onboarding step `extension_health` (fact in: `BackupValidated`): waits, as scheduled
//! retries, until the backup extension's hook CRDs are established and its pods are Running and
//! Ready, then goes on to `apply_hooks`. ARM reporting the extension install as "Succeeded" is
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
/// Time between two looks. The pods are read from the cluster's own API server, not from
/// ARM's buckets that a fleet shares, so they are looked at often: the backup instance waits
/// on the first look that finds them Ready.
pub const POLL: Duration = Duration::from_secs(15);

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
            Ok(wait(POLL, health.reason()))
        }
    }
}

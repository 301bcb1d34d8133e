//! `register_providers` (fact in: `ClusterPrepared`): asks ARM to register the resource
//! providers onboarding needs ([`super::ensure_providers::required`]) and goes on without
//! waiting. A registration takes a minute or more; the resource groups and the storage
//! account need none of these namespaces and are made meanwhile, and `ensure_providers`
//! waits for `Registered` just before the extension's install needs it.

use std::time::Duration;

use async_trait::async_trait;

use super::ensure_providers::register_missing;
use crate::engine::{Outcome, Step, StepError};
use crate::envelope::Envelope;
use crate::workflow::Ctx;
use crate::workflow::facts::advance;
use crate::workflow::onboarding::OnboardStep;

/// The step's name.
pub const NAME: &str = OnboardStep::RegisterProviders.as_str();
/// The step that runs next.
pub const NEXT_STEP: &str = OnboardStep::RegisterProviders.next_name();
/// The fact it publishes.
pub const FACT: &str = "ProvidersRegistering";

/// See the module docs.
#[derive(Debug, Default, Clone, Copy)]
pub struct RegisterProviders;

#[async_trait]
impl Step<Ctx> for RegisterProviders {
    fn name(&self) -> &'static str {
        NAME
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(30 * 60)
    }

    async fn run(&self, ctx: &Ctx, env: &Envelope) -> Result<Outcome, StepError> {
        let registering = register_missing(ctx, env).await?;
        Ok(advance(NEXT_STEP, FACT).with("providersRegistering", registering))
    }
}

//! `ensure_providers` (fact in: `ClusterPrepared`): the cluster's subscription must be registered
//! for `Microsoft.KubernetesConfiguration` (extensions) and `Microsoft.DataProtection` (vaults).
//! An unregistered namespace is registered, and the step waits for `Registered` as queued retries.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use super::facts::{self, advance, wait};
use crate::arm::versions;
use crate::engine::{Ctx, Outcome, Step, StepError};
use crate::envelope::Envelope;

/// The step's name.
pub const NAME: &str = "ensure_providers";
/// The fact it publishes.
pub const FACT: &str = "ProvidersRegistered";
/// The namespaces AKS backup needs (the guide's "Required Azure Provider Registrations").
pub const REQUIRED: [&str; 2] = [
    "Microsoft.KubernetesConfiguration",
    "Microsoft.DataProtection",
];
/// How often to look again while a namespace registers.
const REGISTRATION_POLL: Duration = Duration::from_secs(30);

/// See the module docs.
pub struct EnsureProviders;

/// Where one required namespace stands on the subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderState {
    /// The namespace.
    pub namespace: &'static str,
    /// Its `registrationState` (`NotRegistered` when ARM gives none).
    pub state: String,
}

impl ProviderState {
    /// Ready to use.
    pub fn is_registered(&self) -> bool {
        self.state.eq_ignore_ascii_case("Registered")
    }

    /// Neither registered nor registering: the step registers it.
    pub fn needs_registration(&self) -> bool {
        !self.is_registered() && !self.state.eq_ignore_ascii_case("Registering")
    }
}

fn provider_path(subscription: &str, namespace: &str) -> String {
    format!("/subscriptions/{subscription}/providers/{namespace}")
}

/// Reads the registration state of every [`REQUIRED`] namespace (what the step and the
/// planner decide from).
///
/// # Errors
/// A failed read.
pub async fn assess(ctx: &Ctx, subscription: &str) -> Result<Vec<ProviderState>, StepError> {
    let mut states = Vec::new();
    for namespace in REQUIRED {
        let provider = ctx
            .arm
            .get(&provider_path(subscription, namespace), versions::RESOURCES)
            .await?;
        let state = provider
            .get("registrationState")
            .and_then(Value::as_str)
            .unwrap_or("NotRegistered")
            .to_string();
        states.push(ProviderState { namespace, state });
    }
    Ok(states)
}

#[async_trait]
impl Step for EnsureProviders {
    fn name(&self) -> &'static str {
        NAME
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(30 * 60)
    }

    async fn run(&self, ctx: &Ctx, env: &Envelope) -> Result<Outcome, StepError> {
        let cluster_id = facts::cluster_id(env)?;
        let subscription = cluster_id.subscription();
        let mut registering = Vec::new();
        for provider in assess(ctx, subscription).await? {
            if provider.is_registered() {
                continue;
            }
            if provider.needs_registration() {
                tracing::info!(
                    subscription,
                    namespace = provider.namespace,
                    state = %provider.state,
                    "registering a resource provider"
                );
                ctx.arm
                    .post(
                        &format!(
                            "{}/register",
                            provider_path(subscription, provider.namespace)
                        ),
                        versions::RESOURCES,
                        None,
                    )
                    .await?;
            }
            registering.push(provider.namespace);
        }
        if registering.is_empty() {
            Ok(advance(super::ensure_resource_groups::NAME, FACT))
        } else {
            Ok(wait(
                REGISTRATION_POLL,
                format!(
                    "registering {} on subscription {subscription}",
                    registering.join(", ")
                ),
            ))
        }
    }
}

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
        for namespace in REQUIRED {
            let path = format!("/subscriptions/{subscription}/providers/{namespace}");
            let provider = ctx.arm.get(&path, versions::RESOURCES).await?;
            let state = provider
                .get("registrationState")
                .and_then(Value::as_str)
                .unwrap_or("NotRegistered");
            if state.eq_ignore_ascii_case("Registered") {
                continue;
            }
            if !state.eq_ignore_ascii_case("Registering") {
                tracing::info!(
                    subscription,
                    namespace,
                    state,
                    "registering a resource provider"
                );
                ctx.arm
                    .post(&format!("{path}/register"), versions::RESOURCES, None)
                    .await?;
            }
            registering.push(namespace);
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

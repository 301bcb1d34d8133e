//! `ensure_providers` (fact in: `StorageReady`): every subscription onboarding writes to is
//! registered for the namespaces it needs there (see [`required`]). An unregistered namespace is
//! registered, and the step waits for `Registered` as queued retries.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use crate::arm::versions;
use crate::engine::{Outcome, Step, StepError};
use crate::envelope::Envelope;
use crate::workflow::Ctx;
use crate::workflow::facts::{self, advance, wait};
use crate::workflow::onboarding::OnboardStep;
use crate::workflow::placement::Placement;

/// The step's name.
pub const NAME: &str = OnboardStep::EnsureProviders.as_str();
/// The step that runs next.
pub const NEXT_STEP: &str = OnboardStep::EnsureProviders.next_name();
/// The fact it publishes.
pub const FACT: &str = "ProvidersRegistered";
/// What the cluster's subscription needs: the backup extension is a
/// `Microsoft.KubernetesConfiguration/extensions` resource on the cluster (the guide's "Required
/// Azure Provider Registrations"; "register the Microsoft.KubernetesConfiguration resource
/// provider at the subscription level" before installing an extension,
/// learn.microsoft.com/azure/backup/azure-kubernetes-service-cluster-backup-concept). The
/// snapshot resource group and the trusted-access binding are `Microsoft.Resources` and
/// `Microsoft.ContainerService`, which a subscription with a cluster has.
pub const CLUSTER_NAMESPACES: [&str; 1] = ["Microsoft.KubernetesConfiguration"];
/// What the backup subscription (the cluster's own unless `BACKUP_PILOT_BACKUP_SUBSCRIPTION`)
/// needs registered by the service: the vault, policy and backup instance. Its storage account
/// also needs `Microsoft.Storage`, which the operator registers (`infra/deploy.sh providers
/// --target`): the service's operator role (`infra/target/main.bicep`) may register only these
/// two namespaces.
pub const BACKUP_NAMESPACES: [&str; 1] = ["Microsoft.DataProtection"];
/// How often to look again while a namespace registers.
const REGISTRATION_POLL: Duration = Duration::from_secs(30);

/// See the module docs.
pub struct EnsureProviders;

/// Where one required namespace stands on a subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderState {
    /// The subscription.
    pub subscription: String,
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
        !self.is_registered() && !self.state.eq_ignore_ascii_case(REGISTERING)
    }
}

fn provider_path(subscription: &str, namespace: &str) -> String {
    format!("/subscriptions/{subscription}/providers/{namespace}")
}

/// A provider's `registrationState` while a registration runs.
const REGISTERING: &str = "Registering";

/// Whether this instance saw `namespace` registering on `subscription` (or asked for it)
/// within the last [`REGISTRATION_POLL`]: a fleet arriving during a registration waits on one
/// read per poll instead of each cluster reading the provider, and reads of resources in that
/// namespace would only answer `MissingSubscriptionRegistration`.
pub fn being_registered(ctx: &Ctx, subscription: &str, namespace: &str) -> bool {
    ctx.arm
        .being_created(&provider_path(subscription, namespace))
        .is_some()
}

/// The (subscription, namespace) pairs onboarding needs registered for `placement`: the
/// cluster's subscription for [`CLUSTER_NAMESPACES`], the backup subscription for
/// [`BACKUP_NAMESPACES`] (one subscription for both by default).
pub fn required(placement: &Placement) -> Vec<(String, &'static str)> {
    let on = |sub: &str, namespaces: &[&'static str]| {
        namespaces
            .iter()
            .map(|ns| (sub.to_string(), *ns))
            .collect::<Vec<_>>()
    };
    let mut out = on(&placement.subscription, &CLUSTER_NAMESPACES);
    out.extend(on(&placement.backup_subscription, &BACKUP_NAMESPACES));
    out
}

/// Reads the registration state of every [`required`] namespace (what the step and the
/// planner decide from).
///
/// # Errors
/// A failed read.
pub async fn assess(ctx: &Ctx, placement: &Placement) -> Result<Vec<ProviderState>, StepError> {
    let mut states = Vec::new();
    for (subscription, namespace) in required(placement) {
        // A registered namespace stays registered: one read serves the fleet for a while.
        let registered = |p: &Value| {
            p.get("registrationState")
                .and_then(Value::as_str)
                .is_some_and(|s| s.eq_ignore_ascii_case("Registered"))
        };
        let path = provider_path(&subscription, namespace);
        if being_registered(ctx, &subscription, namespace) {
            states.push(ProviderState {
                subscription,
                namespace,
                state: REGISTERING.into(),
            });
            continue;
        }
        let provider = ctx
            .arm
            .get_settled(&path, versions::RESOURCES, registered)
            .await?
            .unwrap_or_default();
        let state = provider
            .get("registrationState")
            .and_then(Value::as_str)
            .unwrap_or("NotRegistered")
            .to_string();
        if state.eq_ignore_ascii_case(REGISTERING) {
            ctx.arm.note_creating(&path, REGISTRATION_POLL);
        }
        states.push(ProviderState {
            subscription,
            namespace,
            state,
        });
    }
    Ok(states)
}

#[async_trait]
impl Step<Ctx> for EnsureProviders {
    fn name(&self) -> &'static str {
        NAME
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(30 * 60)
    }

    async fn run(&self, ctx: &Ctx, env: &Envelope) -> Result<Outcome, StepError> {
        let registering = register_missing(ctx, env).await?;
        if registering.is_empty() {
            Ok(advance(NEXT_STEP, FACT))
        } else {
            Ok(wait(
                REGISTRATION_POLL,
                format!("registering {}", registering.join(", ")),
            ))
        }
    }
}

/// Asks ARM to register every namespace the workflow's cluster needs that is neither
/// registered nor registering, and says which are not registered yet ("namespace on
/// subscription s").
///
/// # Errors
/// A failed read or registration.
pub async fn register_missing(ctx: &Ctx, env: &Envelope) -> Result<Vec<String>, StepError> {
    let cluster_id = facts::cluster_id(env)?;
    // Subscriptions do not depend on the region.
    let placement = Placement::for_cluster(&ctx.onboarding, &cluster_id, "");
    let mut registering = Vec::new();
    for provider in assess(ctx, &placement).await? {
        if provider.is_registered() {
            continue;
        }
        let subscription = provider.subscription.as_str();
        if provider.needs_registration() {
            tracing::info!(
                subscription,
                namespace = provider.namespace,
                state = %provider.state,
                "registering a resource provider"
            );
            let path = provider_path(subscription, provider.namespace);
            ctx.arm
                .post(&format!("{path}/register"), versions::RESOURCES, None)
                .await?;
            ctx.arm.note_creating(&path, REGISTRATION_POLL);
        }
        registering.push(format!(
            "{} on subscription {subscription}",
            provider.namespace
        ));
    }
    Ok(registering)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource_id::ResourceId;
    use crate::workflow::settings::OnboardingSettings;

    const CLUSTER_SUB: &str = "00000000-0000-0000-0000-0000000000aa";
    const BACKUP_SUB: &str = "00000000-0000-0000-0000-0000000000bb";

    fn placement(backup_subscription: Option<&str>) -> Placement {
        let settings = OnboardingSettings {
            backup_subscription: backup_subscription.map(str::to_string),
            ..OnboardingSettings::default()
        };
        let cluster = ResourceId::parse(&format!(
            "/subscriptions/{CLUSTER_SUB}/resourceGroups/apps/providers/Microsoft.ContainerService/managedClusters/shop"
        ))
        .unwrap();
        Placement::for_cluster(&settings, &cluster, "westeurope")
    }

    #[test]
    fn each_namespace_is_registered_where_its_resources_go() {
        let own: Vec<(String, &str)> = required(&placement(None));
        assert_eq!(
            own,
            [
                (CLUSTER_SUB.to_string(), "Microsoft.KubernetesConfiguration"),
                (CLUSTER_SUB.to_string(), "Microsoft.DataProtection"),
            ]
        );
        let central = required(&placement(Some(BACKUP_SUB)));
        assert_eq!(
            central,
            [
                (CLUSTER_SUB.to_string(), "Microsoft.KubernetesConfiguration"),
                (BACKUP_SUB.to_string(), "Microsoft.DataProtection"),
            ]
        );
    }
}

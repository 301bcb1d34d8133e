//! `ensure_resource_groups` (fact in: `ProvidersRegistering`): the backup resource group
//! (storage account and vault) and the cluster's snapshot resource group exist. The snapshot
//! resource group always exists before roles are granted on it (gotcha 4). An existing group
//! is used as it is (its region does not constrain what it holds).

use std::time::Duration;

use async_trait::async_trait;

use crate::arm::settled::provisioned;
use crate::arm::versions;
use crate::engine::{Outcome, Step, StepError};
use crate::envelope::Envelope;
use crate::workflow::Ctx;
use crate::workflow::bodies;
use crate::workflow::facts::{self, advance};
use crate::workflow::onboarding::OnboardStep;
use crate::workflow::onboarding::facts::OnboardFacts;
use crate::workflow::placement::Placement;

/// The step's name.
pub const NAME: &str = OnboardStep::EnsureResourceGroups.as_str();
/// The step that runs next.
pub const NEXT_STEP: &str = OnboardStep::EnsureResourceGroups.next_name();
/// The fact it publishes.
pub const FACT: &str = "ResourceGroupsReady";

/// See the module docs.
pub struct EnsureResourceGroups;

/// The resource groups a cluster's backup needs: the backup group, then the snapshot group.
pub fn wanted(placement: &Placement) -> [String; 2] {
    [
        placement.backup_resource_group_id(),
        placement.snapshot_resource_group_id(),
    ]
}

/// The [`wanted`] resource groups that do not exist yet (the step creates them).
///
/// # Errors
/// A failed read.
pub async fn missing(ctx: &Ctx, placement: &Placement) -> Result<Vec<String>, StepError> {
    let mut out = Vec::new();
    for rg in wanted(placement) {
        if ctx
            .arm
            .get_settled(&rg, versions::RESOURCES, provisioned)
            .await?
            .is_none()
        {
            out.push(rg);
        }
    }
    Ok(out)
}

#[async_trait]
impl Step<Ctx> for EnsureResourceGroups {
    fn name(&self) -> &'static str {
        NAME
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(20 * 60)
    }

    async fn run(&self, ctx: &Ctx, env: &Envelope) -> Result<Outcome, StepError> {
        let cluster_id = facts::cluster_id(env)?;
        let location = OnboardFacts::of(env).location()?;
        let placement = Placement::for_cluster(&ctx.onboarding, &cluster_id, &location);
        // A write the subscription's quota would hold back is known before the reads: the
        // retry would only read again.
        ctx.arm
            .room_to_write(&placement.snapshot_resource_group_id())?;
        for rg in missing(ctx, &placement).await? {
            tracing::info!(resource_group = %rg, "creating a resource group");
            ctx.arm
                .put(&rg, versions::RESOURCES, &bodies::resource_group(&location))
                .await?;
        }
        Ok(advance(NEXT_STEP, FACT).with(
            facts::SNAPSHOT_RESOURCE_GROUP_ID,
            placement.snapshot_resource_group_id(),
        ))
    }
}

//! `remove_role_assignments` (fact in: `ProtectionStopped`): removes the role assignments the
//! service made for the deleted cluster — found by the description mark it writes on each — and
//! nothing else: not assignments it found already in place, not the shared vault grants of a
//! shared storage account, not resource groups, vaults or storage. With a backup subscription
//! the storage-account grants are there, so both subscriptions are searched.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use crate::arm::versions;
use crate::engine::{Outcome, Step, StepError};
use crate::envelope::Envelope;
use crate::workflow::Ctx;
use crate::workflow::facts::{self, finish};
use crate::workflow::offboarding::{OffboardFacts, OffboardStep};
use crate::workflow::placement::Placement;
use crate::workflow::roles::made_for_cluster;

/// The step's name.
pub const NAME: &str = OffboardStep::RemoveRoleAssignments.as_str();

/// See the module docs.
pub struct RemoveRoleAssignments;

#[async_trait]
impl Step<Ctx> for RemoveRoleAssignments {
    fn name(&self) -> &'static str {
        NAME
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(30 * 60)
    }

    async fn run(&self, ctx: &Ctx, env: &Envelope) -> Result<Outcome, StepError> {
        let cluster_id = facts::cluster_id(env)?;
        let cluster = cluster_id.to_string();
        // Subscriptions do not depend on the region.
        let placement = Placement::for_cluster(&ctx.onboarding, &cluster_id, "");
        let mut assignments = Vec::new();
        for subscription in placement.subscriptions() {
            assignments.extend(
                ctx.arm
                    .list(
                        &format!(
                            "/subscriptions/{subscription}/providers/Microsoft.Authorization/roleAssignments"
                        ),
                        versions::ROLE_ASSIGNMENTS,
                        &[],
                    )
                    .await?,
            );
        }
        let mut removed = 0usize;
        for a in assignments.iter().filter(|a| made_for_cluster(a, &cluster)) {
            if let Some(id) = a.get("id").and_then(Value::as_str) {
                let resp = ctx.arm.delete(id, versions::ROLE_ASSIGNMENTS).await?;
                if resp.status == 200 {
                    removed += 1;
                }
            }
        }
        let instances = OffboardFacts::of(env).stopped_backup_instances.len();
        let verb = match ctx.onboarding.offboard_data {
            crate::workflow::settings::OffboardData::Retain => "stopped (recovery points retained)",
            crate::workflow::settings::OffboardData::Delete => "deleted",
        };
        Ok(finish(format!(
            "offboarded {cluster}: {instances} backup instance(s) {verb}; {removed} role assignment(s) removed"
        )))
    }
}

//! The role-assignment budget. A subscription holds at most `BACKUP_PILOT_ROLE_ASSIGNMENT_LIMIT`
//! role assignments (Azure's limit: 4,000; some 2026 revisions of the docs say 5,000), anyone's
//! included, and Azure answers `RoleAssignmentLimitExceeded` past it. Onboarding checks the
//! budget before it creates anything (`check_cluster`), and `plan` shows it, so a full
//! subscription refuses a cluster with the fix instead of leaving it half onboarded. One list
//! read per subscription the cluster's assignments go to.

use serde_json::Value;

use super::placement::Placement;
use super::roles::{self, Target, made_for_cluster};
use crate::arm::versions;
use crate::engine::StepError;
use crate::resource_id::ResourceId;
use crate::workflow::Ctx;

/// Azure's documented limit of role assignments per subscription.
pub const DEFAULT_ROLE_ASSIGNMENT_LIMIT: usize = 4000;

/// One subscription's budget for one cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleBudget {
    /// The subscription id.
    pub subscription: String,
    /// Assignments it holds now, anyone's.
    pub used: usize,
    /// How many more onboarding this cluster may create there (its profile's grants on scopes
    /// in this subscription, less those the service already made for the cluster).
    pub needed: usize,
    /// The limit.
    pub limit: usize,
}

impl RoleBudget {
    /// True when the cluster's assignments fit.
    pub fn fits(&self) -> bool {
        self.used.saturating_add(self.needed) <= self.limit
    }

    /// `subscription S: U of L role assignments used; this cluster adds up to N`.
    pub fn summary(&self) -> String {
        format!(
            "subscription {}: {} of {} role assignments used; this cluster adds up to {}",
            self.subscription, self.used, self.limit, self.needed
        )
    }

    /// Why onboarding is refused, and what to do (for [`crate::engine::fix::compose`]).
    pub fn refusal(&self) -> (String, String) {
        (
            format!(
                "role assignment budget: subscription {} holds {} of its {} role assignments and onboarding this cluster needs up to {} more (Azure answers RoleAssignmentLimitExceeded past the limit), so nothing was created",
                self.subscription, self.used, self.limit, self.needed
            ),
            format!(
                "free room in subscription {sub} (remove unused assignments: `az role assignment list --subscription {sub} --all`), or need fewer per cluster: BACKUP_PILOT_PLACEMENT=shared with BACKUP_PILOT_VAULT_GRANT_SCOPE=subscription grants the vault once per subscription (2 assignments per cluster), or put backups in another subscription (BACKUP_PILOT_BACKUP_SUBSCRIPTION); then resend the cluster event",
                sub = self.subscription
            ),
        )
    }
}

/// How many of the profile's grants land in each subscription: the cluster and its snapshot
/// resource group are in the cluster's, the storage account in the backup subscription.
pub fn grants_by_subscription(ctx: &Ctx, placement: &Placement) -> Vec<(String, usize)> {
    let mut out: Vec<(String, usize)> = placement
        .subscriptions()
        .into_iter()
        .map(|s| (s.to_string(), 0))
        .collect();
    for grant in roles::profile(ctx.onboarding.role_profile) {
        let subscription = match grant.target {
            Target::Cluster | Target::SnapshotResourceGroup => &placement.subscription,
            Target::StorageAccount => &placement.backup_subscription,
        };
        if let Some((_, n)) = out
            .iter_mut()
            .find(|(s, _)| s.eq_ignore_ascii_case(subscription))
        {
            *n += 1;
        }
    }
    out
}

/// Reads each subscription's role assignments and returns the cluster's budget in each.
///
/// # Errors
/// A failed list.
pub async fn budgets(
    ctx: &Ctx,
    cluster: &ResourceId,
    placement: &Placement,
) -> Result<Vec<RoleBudget>, StepError> {
    let mut out = Vec::new();
    for (subscription, grants) in grants_by_subscription(ctx, placement) {
        let assignments: Vec<Value> = ctx
            .arm
            .list(
                &format!(
                    "/subscriptions/{subscription}/providers/Microsoft.Authorization/roleAssignments"
                ),
                versions::ROLE_ASSIGNMENTS,
                &[],
            )
            .await?;
        let ours = assignments
            .iter()
            .filter(|a| made_for_cluster(a, &cluster.to_string()))
            .count();
        out.push(RoleBudget {
            subscription,
            used: assignments.len(),
            needed: grants.saturating_sub(ours),
            limit: ctx.onboarding.role_assignment_limit,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(used: usize, needed: usize) -> RoleBudget {
        RoleBudget {
            subscription: "s1".into(),
            used,
            needed,
            limit: 4000,
        }
    }

    #[test]
    fn a_cluster_fits_until_its_assignments_would_pass_the_limit() {
        assert!(budget(3993, 7).fits());
        assert!(!budget(3994, 7).fits());
        assert!(budget(4000, 0).fits(), "nothing more to create");
        assert_eq!(
            budget(10, 7).summary(),
            "subscription s1: 10 of 4000 role assignments used; this cluster adds up to 7"
        );
        let (problem, fix) = budget(3998, 7).refusal();
        assert!(problem.contains("holds 3998 of its 4000"), "{problem}");
        assert!(problem.contains("nothing was created"), "{problem}");
        assert!(
            fix.contains("BACKUP_PILOT_VAULT_GRANT_SCOPE=subscription"),
            "{fix}"
        );
    }
}

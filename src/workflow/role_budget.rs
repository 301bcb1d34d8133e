//! The role-assignment budget. A subscription holds at most `BACKUP_PILOT_ROLE_ASSIGNMENT_LIMIT`
//! role assignments (Azure's limit: 4,000; some 2026 revisions of the docs say 5,000), anyone's
//! included, and Azure answers `RoleAssignmentLimitExceeded` past it. Onboarding checks the
//! budget before it creates anything (`check_cluster`), and `plan` shows it, so a full
//! subscription refuses a cluster with the fix instead of leaving it half onboarded.
//!
//! Counting costs a list read of the subscription's assignments. A fleet's clusters are all
//! checked long before any of their assignments exist, so a fresh count per cluster would cost
//! a read each and still admit the whole fleet. The [`RoleLedger`] instead keeps, per
//! subscription, the last count and the clusters admitted since with the assignments each will
//! add: a cluster is admitted against both, and the subscription is counted again when the
//! count is older than [`COUNT_REUSE`] or the projection comes within a tenth of the limit.
//! The ledger is one instance's: other instances' admissions show once their assignments exist.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;
use time::OffsetDateTime;

use super::placement::Placement;
use super::roles::{self, made_for_cluster};
use super::settings::Layout;
use crate::arm::versions;
use crate::engine::StepError;
use crate::resource_id::ResourceId;
use crate::workflow::Ctx;

/// Azure's documented limit of role assignments per subscription.
pub const DEFAULT_ROLE_ASSIGNMENT_LIMIT: usize = 4000;

/// How long a subscription's count is reused while the projection stays well inside the limit.
pub const COUNT_REUSE: Duration = Duration::from_secs(5 * 60);

/// How long an admitted cluster's assignments are reserved: by then they exist (and are
/// counted) or its onboarding stopped.
const RESERVATION: Duration = Duration::from_secs(60 * 60);

/// One subscription's last count, and the clusters admitted since.
#[derive(Debug, Clone)]
struct Tally {
    /// When the subscription's assignments were listed.
    counted_at: OffsetDateTime,
    /// How many there were.
    used: usize,
    /// Of those, the service's own per cluster (lower-case cluster id).
    ours: HashMap<String, usize>,
    /// Clusters admitted (lower-case id): the assignments each will add, and when.
    admitted: HashMap<String, (usize, OffsetDateTime)>,
}

impl Tally {
    /// Assignments reserved for admitted clusters other than `cluster`.
    fn reserved_besides(&self, cluster: &str) -> usize {
        self.admitted
            .iter()
            .filter(|(c, _)| c.as_str() != cluster)
            .map(|(_, (n, _))| n)
            .sum()
    }
}

/// Per subscription, what this instance counted and admitted (see the module docs).
#[derive(Debug, Default)]
pub struct RoleLedger {
    tallies: Mutex<HashMap<String, Tally>>,
}

impl RoleLedger {
    /// The budget from the last count, when it can be trusted without a read: counted within
    /// [`COUNT_REUSE`] and, with what is reserved, more than a tenth of the limit away from it.
    fn reuse(
        &self,
        subscription: &str,
        cluster: &str,
        grants: Grants,
        limit: usize,
        now: OffsetDateTime,
    ) -> Option<RoleBudget> {
        let tallies = self.tallies.lock().ok()?;
        let tally = tallies.get(&subscription.to_ascii_lowercase())?;
        let age = (now - tally.counted_at).unsigned_abs();
        if age > COUNT_REUSE {
            return None;
        }
        let ours = tally.ours.get(cluster).copied().unwrap_or(0);
        let budget = RoleBudget {
            subscription: subscription.to_string(),
            used: tally.used + tally.reserved_besides(cluster),
            needed: grants.per_cluster.saturating_sub(ours) + grants.shared,
            shared: grants.shared,
            limit,
        };
        (budget.used + budget.needed + limit / 10 <= limit).then_some(budget)
    }

    /// Records a fresh count: `used` assignments, the service's own per cluster. Admissions
    /// whose assignments now show, or older than an hour, are dropped.
    fn counted(
        &self,
        subscription: &str,
        used: usize,
        ours: HashMap<String, usize>,
        now: OffsetDateTime,
    ) {
        let Ok(mut tallies) = self.tallies.lock() else {
            return;
        };
        let tally = tallies
            .entry(subscription.to_ascii_lowercase())
            .or_insert_with(|| Tally {
                counted_at: now,
                used,
                ours: HashMap::new(),
                admitted: HashMap::new(),
            });
        tally.admitted.retain(|cluster, (_, at)| {
            !ours.contains_key(cluster) && (now - *at).unsigned_abs() < RESERVATION
        });
        tally.counted_at = now;
        tally.used = used;
        tally.ours = ours;
    }

    /// Assignments reserved on `subscription` for admitted clusters other than `cluster`.
    fn reserved_besides(&self, subscription: &str, cluster: &str) -> usize {
        self.tallies.lock().ok().map_or(0, |t| {
            t.get(&subscription.to_ascii_lowercase())
                .map_or(0, |tally| tally.reserved_besides(cluster))
        })
    }

    /// Reserves the cluster's own assignments of `budget` for `cluster`, admitted on it.
    pub fn admit(&self, budget: &RoleBudget, cluster: &ResourceId, now: OffsetDateTime) {
        let Ok(mut tallies) = self.tallies.lock() else {
            return;
        };
        if let Some(tally) = tallies.get_mut(&budget.subscription.to_ascii_lowercase()) {
            tally.admitted.insert(
                cluster.to_string().to_ascii_lowercase(),
                (budget.needed.saturating_sub(budget.shared), now),
            );
        }
    }
}

/// The cluster (lower case) a role assignment of the service's was made for, from its
/// description.
fn cluster_of(assignment: &Value) -> Option<String> {
    let description = assignment
        .pointer("/properties/description")
        .and_then(Value::as_str)?;
    let cluster = description.rsplit(" for ").next()?;
    made_for_cluster(assignment, cluster).then(|| cluster.to_ascii_lowercase())
}

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
    /// Of `needed`, those shared with the other clusters there (counted, never reserved: the
    /// first cluster makes them for all).
    pub shared: usize,
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

/// The assignments onboarding one cluster makes in one subscription.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Grants {
    /// Made for this cluster alone (its description names it).
    pub per_cluster: usize,
    /// Shared with the other clusters there (the vault's grants widened to a resource group or
    /// the subscription, or on a shared storage account): made once, by the first cluster.
    pub shared: usize,
}

/// The assignments of the profile for a cluster at `placement`, by the subscription they land
/// in: the cluster and its snapshot resource group are in the cluster's, the storage account in
/// the backup subscription.
pub fn grants_by_subscription(
    ctx: &Ctx,
    cluster: &ResourceId,
    placement: &Placement,
) -> Vec<(String, Grants)> {
    let mut out: Vec<(String, Grants)> = placement
        .subscriptions()
        .into_iter()
        .map(|s| (s.to_string(), Grants::default()))
        .collect();
    // The identities do not change where the grants go or whether they are shared.
    let ids = roles::Identities {
        vault: "vault".into(),
        cluster: "cluster".into(),
        extension: "extension".into(),
    };
    let scopes = roles::Scopes {
        cluster: cluster.to_string(),
        snapshot_resource_group: placement.snapshot_resource_group_id(),
        storage_account: placement.storage_account_id(),
        storage_shared: ctx.onboarding.layout == Layout::SharedPerRegion,
        vault_scope: ctx.onboarding.vault_grant_scope,
    };
    let wanted = roles::assignments(roles::profile(ctx.onboarding.role_profile), &ids, &scopes);
    for assignment in wanted {
        let Ok(scope) = ResourceId::parse(&assignment.scope) else {
            continue;
        };
        let own = made_for_cluster(&assignment.body(), &scopes.cluster);
        if let Some((_, n)) = out
            .iter_mut()
            .find(|(s, _)| s.eq_ignore_ascii_case(scope.subscription()))
        {
            if own {
                n.per_cluster += 1;
            } else {
                n.shared += 1;
            }
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
    let limit = ctx.onboarding.role_assignment_limit;
    let key = cluster.to_string().to_ascii_lowercase();
    for (subscription, grants) in grants_by_subscription(ctx, cluster, placement) {
        let now = ctx.clock.now();
        if let Some(budget) = ctx
            .role_ledger
            .reuse(&subscription, &key, grants, limit, now)
        {
            out.push(budget);
            continue;
        }
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
        let mut ours: HashMap<String, usize> = HashMap::new();
        for made_for in assignments.iter().filter_map(cluster_of) {
            *ours.entry(made_for).or_default() += 1;
        }
        let own = ours.get(&key).copied().unwrap_or(0);
        ctx.role_ledger
            .counted(&subscription, assignments.len(), ours, now);
        out.push(RoleBudget {
            used: assignments.len() + ctx.role_ledger.reserved_besides(&subscription, &key),
            subscription,
            needed: grants.per_cluster.saturating_sub(own) + grants.shared,
            shared: grants.shared,
            limit,
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
            shared: 0,
            limit: 4000,
        }
    }

    const T0: OffsetDateTime = time::macros::datetime!(2026-03-02 09:00 UTC);

    fn cluster(name: &str) -> ResourceId {
        ResourceId::parse(&format!(
            "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/{name}"
        ))
        .unwrap()
    }

    fn own(per_cluster: usize) -> Grants {
        Grants {
            per_cluster,
            shared: 0,
        }
    }

    fn key(name: &str) -> String {
        cluster(name).to_string().to_ascii_lowercase()
    }

    #[test]
    fn a_recent_count_is_reused_with_the_admitted_clusters_reserved() {
        let ledger = RoleLedger::default();
        assert_eq!(
            ledger.reuse("s1", &key("a"), own(2), 4000, T0),
            None,
            "never counted"
        );
        ledger.counted("s1", 100, HashMap::new(), T0);
        let later = T0 + time::Duration::seconds(60);
        let a = ledger.reuse("s1", &key("a"), own(2), 4000, later).unwrap();
        assert_eq!((a.used, a.needed), (100, 2));
        ledger.admit(&a, &cluster("a"), later);
        // The next cluster counts a's two on top; a itself does not count them twice.
        let b = ledger.reuse("s1", &key("b"), own(2), 4000, later).unwrap();
        assert_eq!((b.used, b.needed), (102, 2));
        assert_eq!(
            ledger
                .reuse("s1", &key("a"), own(2), 4000, later)
                .unwrap()
                .used,
            100
        );
        // Past the reuse window the subscription is counted again.
        let stale = T0 + time::Duration::seconds(COUNT_REUSE.as_secs() as i64 + 1);
        assert_eq!(ledger.reuse("s1", &key("b"), own(2), 4000, stale), None);
    }

    #[test]
    fn near_the_limit_the_subscription_is_counted_again() {
        let ledger = RoleLedger::default();
        ledger.counted("s1", 3590, HashMap::new(), T0);
        assert!(ledger.reuse("s1", &key("a"), own(2), 4000, T0).is_some());
        assert_eq!(
            ledger.reuse("s1", &key("a"), own(20), 4000, T0),
            None,
            "3590 + 20 is within a tenth of 4000"
        );
    }

    #[test]
    fn a_fleet_admitted_together_is_refused_once_its_reservations_fill_the_subscription() {
        let ledger = RoleLedger::default();
        ledger.counted("s1", 0, HashMap::new(), T0);
        let mut admitted = 0;
        for n in 0..1000 {
            let name = format!("c{n}");
            let budget = ledger
                .reuse("s1", &key(&name), own(7), 4000, T0)
                .unwrap_or_else(|| RoleBudget {
                    subscription: "s1".into(),
                    used: ledger.reserved_besides("s1", &key(&name)),
                    needed: 7,
                    shared: 0,
                    limit: 4000,
                });
            if !budget.fits() {
                break;
            }
            ledger.admit(&budget, &cluster(&name), T0);
            admitted += 1;
        }
        assert_eq!(admitted, 4000 / 7, "7 per cluster stops at 571 clusters");
    }

    #[test]
    fn a_count_that_shows_an_admitted_clusters_assignments_ends_its_reservation() {
        let ledger = RoleLedger::default();
        ledger.counted("s1", 0, HashMap::new(), T0);
        let a = ledger.reuse("s1", &key("a"), own(2), 4000, T0).unwrap();
        ledger.admit(&a, &cluster("a"), T0);
        assert_eq!(ledger.reserved_besides("s1", &key("b")), 2);
        ledger.counted("s1", 2, HashMap::from([(key("a"), 2)]), T0);
        assert_eq!(
            ledger.reserved_besides("s1", &key("b")),
            0,
            "now counted, not reserved"
        );
        assert_eq!(
            ledger
                .reuse("s1", &key("a"), own(2), 4000, T0)
                .unwrap()
                .needed,
            0
        );
    }

    #[test]
    fn the_services_assignments_are_told_apart_by_their_description() {
        let c = cluster("a").to_string();
        let ours = serde_json::json!({"properties": {"description": format!("backup-pilot: Reader for {c}")}});
        assert_eq!(cluster_of(&ours), Some(c.to_ascii_lowercase()));
        let shared = serde_json::json!({"properties": {"description": "backup-pilot: Reader (shared by every cluster under /subscriptions/s1)"}});
        assert_eq!(cluster_of(&shared), None);
        let theirs =
            serde_json::json!({"properties": {"description": format!("made by hand for {c}")}});
        assert_eq!(cluster_of(&theirs), None);
    }

    #[test]
    fn the_guides_grants_are_all_the_clusters_and_a_shared_vault_granted_once_leaves_two() {
        use crate::bus::RecordingPublisher;
        use crate::clock::ManualClock;
        use crate::workflow::roles::VaultGrantScope;
        use crate::workflow::settings::OnboardingSettings;
        use std::sync::Arc;

        let grants = |settings: OnboardingSettings| {
            let ctx = Ctx {
                onboarding: Arc::new(settings),
                ..Ctx::with_defaults(
                    Arc::new(ManualClock::new(T0)),
                    Arc::new(RecordingPublisher::default()),
                )
            };
            let c = cluster("a");
            let placement = Placement::for_cluster(&ctx.onboarding, &c, "westeurope");
            grants_by_subscription(&ctx, &c, &placement)
        };
        let guide = grants(OnboardingSettings::default());
        assert_eq!(guide.len(), 1);
        assert_eq!(guide[0].1.per_cluster, 7, "{guide:?}");
        let fleet = grants(OnboardingSettings {
            layout: Layout::SharedPerRegion,
            vault_grant_scope: VaultGrantScope::Subscription,
            ..OnboardingSettings::default()
        });
        assert_eq!(fleet[0].1.per_cluster, 2, "{fleet:?}");
        assert!(fleet[0].1.shared > 0, "{fleet:?}");
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

//! `local` at fleet size: the live view's counts per phase (above [`FLEET_VIEW_ABOVE`]
//! clusters a line per step, not per cluster), and the fleet totals printed at the end — ARM
//! requests per cluster, 429s, role assignments per subscription, and the time to the last
//! protected cluster against the floor. The floor is shared with `cargo bench --bench fleet`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use backup_pilot::status::Phase;
use backup_pilot::workflow::onboarding::OnboardStep;
use backup_pilot_standins::arm::{OperationLimits, RequestTally, Timings};

use crate::run::EXTENSION_PODS_READY_AFTER;
use crate::timeline::human;

/// Above this many clusters the live view counts clusters per phase instead of drawing a line
/// per cluster, and the end shows fleet totals instead of every timeline.
pub const FLEET_VIEW_ABOVE: usize = 20;

/// Where a cluster not yet in any step stands.
pub const WAITING: &str = "waiting for its event";

/// The stage a cluster is counted under: `protected`, `failed`, the onboarding step it is at,
/// or [`WAITING`].
pub fn stage(phase: Phase, step: Option<&str>) -> String {
    match (phase, step) {
        (Phase::Protected, _) => "protected".into(),
        (Phase::Failed, _) => "failed".into(),
        (_, Some(step)) => step.to_string(),
        (Phase::Unknown, None) => WAITING.into(),
        (phase, None) => phase.as_str().to_string(),
    }
}

/// How many clusters are at each stage, in chain order: waiting, each onboarding step, then
/// protected, failed and anything else; stages with no cluster are left out.
pub fn phase_counts<I, S>(stages: I) -> Vec<(String, usize)>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for s in stages {
        *counts.entry(s.as_ref().to_string()).or_default() += 1;
    }
    let order = std::iter::once(WAITING)
        .chain(OnboardStep::ALL.iter().map(|s| s.as_str()))
        .chain(["protected", "failed"]);
    let mut out = Vec::new();
    for name in order {
        if let Some(n) = counts.remove(name) {
            out.push((name.to_string(), n));
        }
    }
    out.extend(counts);
    out
}

/// The live view's lines for `counts` of `total` clusters, `elapsed` virtual time in.
pub fn render_counts(counts: &[(String, usize)], total: usize, elapsed: Duration) -> Vec<String> {
    let width = counts.iter().map(|(s, _)| s.len()).max().unwrap_or(0);
    let protected = counts
        .iter()
        .find(|(s, _)| s == "protected")
        .map_or(0, |(_, n)| *n);
    let mut lines = vec![format!(
        "+{} (virtual): {protected} of {total} cluster(s) protected",
        human(elapsed)
    )];
    for (stage, n) in counts {
        let bar = "#".repeat((n * 40).div_ceil(total.max(1)));
        lines.push(format!("  {stage:<width$} {n:>5}  {bar}"));
    }
    lines
}

/// One cluster's onboarding at the stand-in's durations along the chain's critical path, as
/// if every step took no time and every poll landed the instant its operation ended, with its
/// parts. The chain (`OnboardStep`): the storage account, made while the providers register →
/// the extension's install, during which the vault, its binding, the vault's and cluster's
/// roles and the cluster's kubeconfig are made and fetched → the extension's roles, whose
/// propagation and then validateForBackup run beside its pods becoming Ready (the health gate)
/// → hooks → protection → with `first_backup` (`BACKUP_PILOT_FIRST_BACKUP`), the ad-hoc
/// backup's trigger and job, whose recovery point "protected" then waits for.
pub fn critical_path(t: &Timings, first_backup: bool) -> (Duration, String) {
    let providers_and_storage = t.provider_registration.max(t.storage_account_create);
    let during_install = (t.vault_create + t.trusted_access_binding).max(t.extension_install);
    let pods_and_validation =
        EXTENSION_PODS_READY_AFTER.max(t.role_propagation + t.validate_for_backup);
    let parts = [
        ("max(providers, storage)", providers_and_storage),
        (
            "extension (vault, binding, roles beside it)",
            during_install,
        ),
        (
            "max(extension pods, propagation + validate)",
            pods_and_validation,
        ),
        ("protection", t.protection_configure),
        (
            "first backup",
            if first_backup {
                t.backup_trigger + t.backup_job
            } else {
                Duration::ZERO
            },
        ),
    ];
    let total = parts.iter().map(|(_, d)| *d).sum();
    let text = parts
        .iter()
        .filter(|(_, d)| !d.is_zero())
        .map(|(name, d)| format!("{name} {}s", d.as_secs()))
        .collect::<Vec<_>>()
        .join(" + ");
    (total, text)
}

/// Seconds a subscription's buckets need for `reads` and `writes` at ARM's refill rates
/// (reads 25/s, writes 10/s per subscription and principal).
pub fn quota_seconds(reads: usize, writes: usize) -> f64 {
    let limits = OperationLimits::default();
    (reads as f64 / f64::from(limits.reads.refill_per_second))
        .max(writes as f64 / f64::from(limits.writes.refill_per_second))
}

/// The physical limit of a fleet's onboarding, in seconds: the larger of one cluster's
/// critical path and, per subscription, its measured (reads, writes) at ARM's refill rates.
pub fn floor_seconds(critical_path: Duration, per_subscription: &[(usize, usize)]) -> f64 {
    per_subscription
        .iter()
        .map(|(r, w)| quota_seconds(*r, *w))
        .fold(critical_path.as_secs_f64(), f64::max)
}

/// What a fleet's onboarding cost and took.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetTotals {
    /// Clusters onboarded.
    pub clusters: usize,
    /// Of which protected.
    pub protected: usize,
    /// Of which failed.
    pub failed: usize,
    /// ARM requests per subscription (lower case).
    pub requests: BTreeMap<String, RequestTally>,
    /// Role assignments per subscription at the end.
    pub role_assignments: Vec<(String, usize)>,
    /// One cluster's critical path.
    pub critical_path: Duration,
    /// Virtual time from the events to the last protected cluster.
    pub last_protected: Option<Duration>,
}

impl FleetTotals {
    /// Every subscription's requests together.
    pub fn total(&self) -> RequestTally {
        self.requests
            .values()
            .fold(RequestTally::default(), |a, b| a.plus(*b))
    }

    /// The floor ([`floor_seconds`]) of the measured requests.
    pub fn floor(&self) -> Duration {
        let per: Vec<(usize, usize)> = self
            .requests
            .iter()
            .filter(|(sub, _)| !sub.is_empty())
            .map(|(_, t)| (t.reads, t.writes))
            .collect();
        Duration::from_secs_f64(floor_seconds(self.critical_path, &per))
    }

    /// The last protected cluster's time over the floor.
    pub fn ratio(&self) -> Option<f64> {
        let floor = self.floor().as_secs_f64();
        self.last_protected
            .filter(|_| floor > 0.0)
            .map(|d| d.as_secs_f64() / floor)
    }

    /// The totals' lines.
    pub fn render(&self) -> String {
        let total = self.total();
        let n = self.clusters.max(1) as f64;
        let mut out = format!(
            "\nfleet: {} of {} cluster(s) protected, {} failed\n",
            self.protected, self.clusters, self.failed
        );
        let _ = writeln!(
            out,
            "  ARM requests per cluster  {:.1} reads, {:.1} writes, {:.1} deletes ({} in all; {} answered 429)",
            total.reads as f64 / n,
            total.writes as f64 / n,
            total.deletes as f64 / n,
            total.reads + total.writes + total.deletes,
            total.throttled
        );
        let assignments: Vec<String> = self
            .role_assignments
            .iter()
            .map(|(sub, count)| format!("{count} in {sub}"))
            .collect();
        let _ = writeln!(
            out,
            "  role assignments          {}",
            if assignments.is_empty() {
                "none".into()
            } else {
                assignments.join(", ")
            }
        );
        let floor = self.floor();
        match (self.last_protected, self.ratio()) {
            (Some(last), Some(ratio)) => {
                let _ = writeln!(
                    out,
                    "  last cluster protected    after {} (virtual); floor {}, ratio {ratio:.2}",
                    human(last),
                    human(floor)
                );
            }
            _ => {
                let _ = writeln!(
                    out,
                    "  last cluster protected    never; floor {}",
                    human(floor)
                );
            }
        }
        let _ = writeln!(
            out,
            "  (floor: the larger of one cluster's critical path, {}, and per subscription reads / 25 s and writes / 10 s)",
            human(self.critical_path)
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clusters_are_counted_per_phase_in_chain_order() {
        let stages = [
            stage(Phase::Protected, Some("first_backup")),
            stage(Phase::InProgress, Some("install_extension")),
            stage(Phase::Unknown, None),
            stage(Phase::InProgress, Some("check_cluster")),
            stage(Phase::InProgress, Some("install_extension")),
            stage(Phase::Failed, Some("configure_backup")),
            stage(Phase::InProgress, None),
        ];
        let counts = phase_counts(&stages);
        let named: Vec<(&str, usize)> = counts.iter().map(|(s, n)| (s.as_str(), *n)).collect();
        assert_eq!(
            named,
            [
                (WAITING, 1),
                ("check_cluster", 1),
                ("install_extension", 2),
                ("protected", 1),
                ("failed", 1),
                ("inProgress", 1),
            ]
        );
        let lines = render_counts(&counts, stages.len(), Duration::from_secs(125));
        assert_eq!(lines[0], "+2m05s (virtual): 1 of 7 cluster(s) protected");
        assert_eq!(lines.len(), 7);
        let third: Vec<&str> = lines[3].split_whitespace().collect();
        assert_eq!(third[..2], ["install_extension", "2"], "{lines:?}");
        assert!(lines[3].ends_with(&"#".repeat(12)), "{lines:?}");
    }

    #[test]
    fn the_floor_is_the_critical_path_or_the_busiest_subscriptions_quota() {
        assert_eq!(quota_seconds(2500, 100), 100.0);
        assert_eq!(quota_seconds(250, 100), 10.0);
        let path = Duration::from_secs(900);
        assert_eq!(floor_seconds(path, &[]), 900.0);
        assert_eq!(floor_seconds(path, &[(25_000, 9_000), (100, 10)]), 1000.0);
        let (critical, text) = critical_path(&Timings::default(), false);
        assert!(
            text.contains("max(extension pods, propagation + validate) 150s"),
            "{text}"
        );
        assert!(!text.contains("first backup"), "{text}");
        assert_eq!(critical, Duration::from_secs(60 + 450 + 150 + 60));
        let (with_backup, text) = critical_path(&Timings::default(), true);
        assert!(text.ends_with("first backup 255s"), "{text}");
        assert_eq!(with_backup, critical + Duration::from_secs(15 + 240));
        assert!(critical > EXTENSION_PODS_READY_AFTER);

        let tally = |reads, writes, throttled| RequestTally {
            reads,
            writes,
            deletes: 0,
            throttled,
        };
        let totals = FleetTotals {
            clusters: 1000,
            protected: 1000,
            failed: 0,
            requests: BTreeMap::from([
                ("sub-a".to_string(), tally(20_000, 12_000, 3)),
                ("sub-b".to_string(), tally(5_000, 1_000, 0)),
                (String::new(), tally(4, 0, 0)),
            ]),
            role_assignments: vec![("sub-a".into(), 2012), ("sub-b".into(), 400)],
            critical_path: path,
            last_protected: Some(Duration::from_secs(1320)),
        };
        assert_eq!(totals.floor(), Duration::from_secs(1200));
        assert_eq!(totals.ratio(), Some(1.1));
        let text = totals.render();
        assert!(
            text.contains("fleet: 1000 of 1000 cluster(s) protected, 0 failed"),
            "{text}"
        );
        assert!(
            text.contains("ARM requests per cluster  25.0 reads, 13.0 writes, 0.0 deletes (38004 in all; 3 answered 429)"),
            "{text}"
        );
        assert!(text.contains("2012 in sub-a, 400 in sub-b"), "{text}");
        assert!(
            text.contains("after 22m00s (virtual); floor 20m00s, ratio 1.10"),
            "{text}"
        );
        let never = FleetTotals {
            last_protected: None,
            ..totals
        };
        assert_eq!(never.ratio(), None);
        assert!(never.render().contains("never; floor 20m00s"));
    }
}

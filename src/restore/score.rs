//! A restore's score out of 100: weighted checks in the manner of Kymaros's restore reports,
//! each earning part of its weight from what the run measured, and a verdict from configurable
//! thresholds. The checks and weights:
//!
//! | check | weight | earns |
//! |---|---|---|
//! | `restore` | 20 | the job completed (with warnings: 16), times the share of items restored |
//! | `resources` | 15 | per kind (deployments, pods, claims, services, config maps), restored against the source namespaces' inventory |
//! | `podsReady` | 20 | the share of restored pods Ready |
//! | `volumes` | 10 | the share of restored claims Bound |
//! | `application` | 15 | the application probes (HTTP or command, run in the scratch namespace) and restore hooks passed (none configured: earned, and said so) |
//! | `references` | 10 | the share of the config maps, secrets and service accounts the restored pods name that exist beside them |
//! | `rpo` | 5 | the recovery point is no older than the policy's interval allows |
//! | `rto` | 5 | request → verified within the RTO target |
//!
//! The score never overrules a finding: the report's verdict is the worse of the two.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::job::{Job, JobStatus};
use super::verify::{ProbeResult, Verdict};
use crate::kube::references::ReferenceCheck;
use crate::kube::restore_prep::NamespaceContents;

/// The thresholds and the RTO target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScoreSettings {
    /// A score at or above this passes (`BACKUP_PILOT_DRILL_PASS_SCORE`, default 90).
    pub pass: u8,
    /// A score at or above this (and below `pass`) is degraded; below, it fails
    /// (`BACKUP_PILOT_DRILL_DEGRADED_SCORE`, default 60).
    pub degraded: u8,
    /// Request → verified within this earns the RTO check
    /// (`BACKUP_PILOT_DRILL_RTO_TARGET_MINUTES`, default 60).
    pub rto_target: Duration,
}

impl Default for ScoreSettings {
    fn default() -> Self {
        Self {
            pass: 90,
            degraded: 60,
            rto_target: Duration::from_secs(60 * 60),
        }
    }
}

/// One weighted check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Check {
    /// Its name (see the module docs).
    pub name: String,
    /// What it can earn.
    pub weight: u8,
    /// What it earned, rounded to whole points.
    pub earned: u8,
    /// What was measured.
    pub detail: String,
}

impl Check {
    /// True when it earned less than its weight.
    pub fn lost_points(&self) -> bool {
        self.earned < self.weight
    }
}

/// The score, its checks and the verdict it gives on its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Score {
    /// 0–100.
    pub total: u8,
    /// The verdict the thresholds give.
    pub verdict: Verdict,
    /// The pass threshold applied.
    pub pass_threshold: u8,
    /// The degraded threshold applied.
    pub degraded_threshold: u8,
    /// Every check, in the table's order.
    pub checks: Vec<Check>,
}

impl Score {
    /// `score NN/100` and the checks that lost points, for one line of output.
    pub fn summary(&self) -> String {
        let lost: Vec<String> = self
            .checks
            .iter()
            .filter(|c| c.lost_points())
            .map(|c| format!("{} {}/{}", c.name, c.earned, c.weight))
            .collect();
        if lost.is_empty() {
            format!("score {}/100", self.total)
        } else {
            format!("score {}/100 (lost: {})", self.total, lost.join(", "))
        }
    }
}

/// What the score is computed from.
#[derive(Debug, Clone, Default)]
pub struct ScoreInputs<'a> {
    /// The restore job, if it was triggered.
    pub job: Option<&'a Job>,
    /// (source namespace, target namespace, what the target holds).
    pub restored: Vec<(&'a str, &'a str, NamespaceContents)>,
    /// The source namespaces' inventory at verification, when it could be read.
    pub source: Option<&'a [(String, NamespaceContents)]>,
    /// The application probe, if one ran.
    pub probe: Option<&'a ProbeResult>,
    /// The restored pods' references, when they were checked.
    pub references: Option<&'a ReferenceCheck>,
    /// The recovery point's age at the request.
    pub recovery_point_age: Option<time::Duration>,
    /// The policy's backup interval.
    pub policy_interval: Option<Duration>,
    /// Request → verified.
    pub rto: Option<Duration>,
}

/// `weight × share`, rounded, never above the weight.
fn earn(weight: u8, share: f64) -> u8 {
    let share = if share.is_finite() {
        share.clamp(0.0, 1.0)
    } else {
        0.0
    };
    // In 0..=weight by the clamp.
    (f64::from(weight) * share).round() as u8
}

fn share(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        1.0
    } else {
        part as f64 / whole as f64
    }
}

fn check(name: &str, weight: u8, share: f64, detail: String) -> Check {
    Check {
        name: name.into(),
        weight,
        earned: earn(weight, share),
        detail,
    }
}

fn restore_check(job: Option<&Job>) -> Check {
    let Some(job) = job else {
        return check("restore", 20, 0.0, "no restore job ran".into());
    };
    let base = match job.status {
        JobStatus::Completed => 1.0,
        JobStatus::CompletedWithWarnings => 0.8,
        _ => 0.0,
    };
    let (items, detail) = match job.items {
        Some(i) if i.total > 0 => (
            share(
                usize::try_from(i.restored).unwrap_or(usize::MAX),
                usize::try_from(i.total).unwrap_or(usize::MAX),
            ),
            format!(
                "job {} {}; {} of {} items restored",
                job.name, job.status_text, i.restored, i.total
            ),
        ),
        _ => (1.0, format!("job {} {}", job.name, job.status_text)),
    };
    check("restore", 20, base * items, detail)
}

/// Kinds a restore brings back, as (name, count).
fn kinds(c: &NamespaceContents) -> [(&'static str, usize); 5] {
    [
        ("deployments", c.deployments),
        ("pods", c.pods),
        ("claims", c.pvcs),
        ("services", c.services),
        ("config maps", c.config_maps),
    ]
}

fn resources_check(inputs: &ScoreInputs<'_>) -> Check {
    let restored_total: usize = inputs
        .restored
        .iter()
        .map(|(_, _, c)| kinds(c).iter().map(|(_, n)| n).sum::<usize>())
        .sum();
    let Some(source) = inputs.source else {
        let share = if restored_total > 0 { 1.0 } else { 0.0 };
        return check(
            "resources",
            15,
            share,
            format!(
                "{restored_total} resource(s) restored; the source namespaces could not be read to compare"
            ),
        );
    };
    let (mut matched, mut expected) = (0usize, 0usize);
    let mut short = Vec::new();
    for (from, to, got) in &inputs.restored {
        let Some((_, want)) = source.iter().find(|(n, _)| n == from) else {
            continue;
        };
        for ((kind, have), (_, need)) in kinds(got).iter().zip(kinds(want)) {
            expected += need;
            matched += (*have).min(need);
            if *have < need {
                short.push(format!("{to}: {have} of {need} {kind}"));
            }
        }
    }
    let detail = if short.is_empty() {
        format!("{matched} of {expected} source resource(s) restored")
    } else {
        format!(
            "{matched} of {expected} source resource(s) restored; missing: {}",
            short.join(", ")
        )
    };
    check("resources", 15, share(matched, expected), detail)
}

/// Scores a run; see the module docs.
pub fn score(inputs: &ScoreInputs<'_>, settings: &ScoreSettings) -> Score {
    let sum = |f: fn(&NamespaceContents) -> usize| -> usize {
        inputs.restored.iter().map(|(_, _, c)| f(c)).sum()
    };
    let (pods, ready) = (sum(|c| c.pods), sum(|c| c.pods_ready));
    let (claims, bound) = (sum(|c| c.pvcs), sum(|c| c.pvcs_bound));
    let anything = inputs
        .restored
        .iter()
        .any(|(_, _, c)| super::verify::resource_count(c) > 0);
    // Nothing restored earns nothing for the workloads either.
    let workload = |part, whole| if anything { share(part, whole) } else { 0.0 };
    let application = match inputs.probe {
        Some(p) if p.passed => check("application", 15, 1.0, p.detail.clone()),
        Some(p) => check("application", 15, 0.0, p.detail.clone()),
        None => check(
            "application",
            15,
            if anything { 1.0 } else { 0.0 },
            "no application probe configured (drill probes or restore hooks)".into(),
        ),
    };
    let references = match inputs.references {
        Some(r) if r.missing.is_empty() => check(
            "references",
            10,
            workload(r.resolved(), r.total),
            format!("{} of {} reference(s) resolve", r.resolved(), r.total),
        ),
        Some(r) => check(
            "references",
            10,
            workload(r.resolved(), r.total),
            format!(
                "{} of {} reference(s) resolve; missing: {}",
                r.resolved(),
                r.total,
                r.missing.join(", ")
            ),
        ),
        None => check(
            "references",
            10,
            0.0,
            "the restored pods' references were not checked".into(),
        ),
    };
    let rpo = match (inputs.recovery_point_age, inputs.policy_interval) {
        (Some(age), Some(interval)) => {
            let within = age <= time::Duration::try_from(interval).unwrap_or(time::Duration::MAX);
            check(
                "rpo",
                5,
                if within { 1.0 } else { 0.0 },
                format!(
                    "recovery point {} h old; the policy backs up every {} h",
                    age.whole_hours(),
                    interval.as_secs() / 3600
                ),
            )
        }
        (Some(age), None) => check(
            "rpo",
            5,
            0.0,
            format!(
                "recovery point {} h old; the policy's interval is unknown",
                age.whole_hours()
            ),
        ),
        _ => check("rpo", 5, 0.0, "no recovery point was restored".into()),
    };
    let rto = match inputs.rto {
        Some(rto) => check(
            "rto",
            5,
            if rto <= settings.rto_target { 1.0 } else { 0.0 },
            format!(
                "{} s from request to verified; target {} s",
                rto.as_secs(),
                settings.rto_target.as_secs()
            ),
        ),
        None => check("rto", 5, 0.0, "the run was not verified".into()),
    };
    let checks = vec![
        restore_check(inputs.job),
        resources_check(inputs),
        check(
            "podsReady",
            20,
            workload(ready, pods),
            format!("{ready} of {pods} pod(s) Ready"),
        ),
        check(
            "volumes",
            10,
            workload(bound, claims),
            format!("{bound} of {claims} claim(s) Bound"),
        ),
        application,
        references,
        rpo,
        rto,
    ];
    let total = checks
        .iter()
        .map(|c| u32::from(c.earned))
        .sum::<u32>()
        .min(100) as u8;
    let verdict = if total >= settings.pass {
        Verdict::Pass
    } else if total >= settings.degraded {
        Verdict::Degraded
    } else {
        Verdict::Fail
    };
    Score {
        total,
        verdict,
        pass_threshold: settings.pass,
        degraded_threshold: settings.degraded,
        checks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::restore::job::ItemCounts;

    fn job(status: &str, items: Option<(u64, u64)>) -> Job {
        Job {
            items: items.map(|(restored, total)| ItemCounts { restored, total }),
            ..crate::restore::verify::tests::job(status)
        }
    }

    fn app(ready: usize, bound: usize) -> NamespaceContents {
        NamespaceContents {
            deployments: 1,
            deployments_available: 1,
            pods: 2,
            pods_ready: ready,
            pvcs: 1,
            pvcs_bound: bound,
            services: 1,
            config_maps: 1,
        }
    }

    static RESOLVED: ReferenceCheck = ReferenceCheck {
        total: 2,
        missing: Vec::new(),
    };

    fn inputs<'a>(
        job: &'a Job,
        got: NamespaceContents,
        source: &'a [(String, NamespaceContents)],
    ) -> ScoreInputs<'a> {
        ScoreInputs {
            job: Some(job),
            restored: vec![("app", "drill-app", got)],
            source: Some(source),
            probe: None,
            references: Some(&RESOLVED),
            recovery_point_age: Some(time::Duration::hours(2)),
            policy_interval: Some(Duration::from_secs(24 * 3600)),
            rto: Some(Duration::from_secs(400)),
        }
    }

    #[test]
    fn a_complete_healthy_restore_scores_100_and_passes() {
        let j = job("Completed", Some((6, 6)));
        let source = vec![("app".to_string(), app(2, 1))];
        let s = score(&inputs(&j, app(2, 1), &source), &ScoreSettings::default());
        assert_eq!(s.total, 100, "{s:#?}");
        assert_eq!(s.verdict, Verdict::Pass);
        assert_eq!(s.summary(), "score 100/100");
    }

    #[test]
    fn pods_that_never_become_ready_score_below_the_pass_threshold() {
        let j = job("Completed", Some((6, 6)));
        let source = vec![("app".to_string(), app(2, 1))];
        let s = score(&inputs(&j, app(0, 1), &source), &ScoreSettings::default());
        assert_eq!(s.total, 80, "{s:#?}");
        assert_eq!(s.verdict, Verdict::Degraded);
        assert_eq!(s.summary(), "score 80/100 (lost: podsReady 0/20)");
    }

    #[test]
    fn missing_resources_against_the_source_cost_their_share() {
        let j = job("Completed", None);
        let mut fewer = app(2, 1);
        fewer.services = 0;
        fewer.config_maps = 0;
        let source = vec![("app".to_string(), app(2, 1))];
        let s = score(&inputs(&j, fewer, &source), &ScoreSettings::default());
        let resources = &s.checks[1];
        // 4 of the 6 source resources: 15 × 4/6 = 10.
        assert_eq!((resources.earned, resources.weight), (10, 15), "{s:#?}");
        assert!(
            resources.detail.contains("0 of 1 services") && resources.detail.contains("4 of 6"),
            "{}",
            resources.detail
        );
    }

    #[test]
    fn nothing_restored_fails_and_a_failed_probe_stale_point_and_slow_rto_lose_points() {
        let j = job("Completed", Some((0, 6)));
        let source = vec![("app".to_string(), app(2, 1))];
        let s = score(
            &inputs(&j, NamespaceContents::default(), &source),
            &ScoreSettings::default(),
        );
        assert_eq!(s.verdict, Verdict::Fail, "{s:#?}");
        assert!(s.total <= 10, "{s:#?}");

        let probe = ProbeResult {
            passed: false,
            detail: "restore hook app/check: exit 1".into(),
        };
        let mut i = inputs(&j, app(2, 1), &source);
        let done = job("Completed", Some((6, 6)));
        i.job = Some(&done);
        i.probe = Some(&probe);
        i.recovery_point_age = Some(time::Duration::hours(30));
        i.rto = Some(Duration::from_secs(2 * 3600));
        let s = score(&i, &ScoreSettings::default());
        assert_eq!(s.total, 75, "{s:#?}");
        assert_eq!(
            s.summary(),
            "score 75/100 (lost: application 0/15, rpo 0/5, rto 0/5)"
        );
    }

    #[test]
    fn thresholds_are_configurable_and_without_a_source_inventory_restored_counts() {
        let j = job("CompletedWithWarnings", None);
        let mut i = inputs(&j, app(2, 1), &[]);
        i.source = None;
        let strict = ScoreSettings {
            pass: 99,
            degraded: 97,
            ..ScoreSettings::default()
        };
        let s = score(&i, &strict);
        assert_eq!(s.total, 96, "{s:#?}");
        assert_eq!(s.verdict, Verdict::Fail);
        assert!(s.checks[1].detail.contains("could not be read"));
    }

    #[test]
    fn unresolved_references_cost_their_share_and_name_what_is_missing() {
        let j = job("Completed", Some((6, 6)));
        let source = vec![("app".to_string(), app(2, 1))];
        let broken = ReferenceCheck {
            total: 4,
            missing: vec!["secret db-creds (pod app-0)".into()],
        };
        let mut i = inputs(&j, app(2, 1), &source);
        i.references = Some(&broken);
        let s = score(&i, &ScoreSettings::default());
        let references = s.checks.iter().find(|c| c.name == "references").unwrap();
        // 3 of 4 resolve: 10 × 3/4 = 7.5, rounded to 8.
        assert_eq!((references.earned, references.weight), (8, 10), "{s:#?}");
        assert!(
            references
                .detail
                .contains("missing: secret db-creds (pod app-0)"),
            "{}",
            references.detail
        );
        assert_eq!(s.total, 98);
        i.references = None;
        let unchecked = score(&i, &ScoreSettings::default());
        assert_eq!(unchecked.summary(), "score 90/100 (lost: references 0/10)");
    }
}

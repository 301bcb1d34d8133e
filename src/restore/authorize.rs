//! Who may restore where: a configured allowlist of target clusters and namespaces, the system
//! namespaces no restore may ever write, the rule that Patch into an existing namespace needs
//! an explicit grant, and Azure's limit of 10 restores per backup instance per day (counted
//! from the vault's restore jobs of the last 24 hours). Every reason for a refusal is given.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::job::Job;
use super::request::ConflictPolicy;
use crate::resource_id::ResourceId;

/// Namespaces no restore writes into: the cluster's own and the backup extension's.
pub const FORBIDDEN_NAMESPACES: [&str; 4] = [
    "kube-system",
    "kube-public",
    "kube-node-lease",
    crate::kube::crds::EXTENSION_NAMESPACE,
];

/// Azure Backup's limit of restores per backup instance per day (support matrix).
pub const RESTORES_PER_INSTANCE_PER_DAY: usize = 10;

/// The variable holding the allowlist (JSON, see [`RestoreAllowlist::from_json`]).
pub const ALLOWLIST_VAR: &str = "BACKUP_PILOT_RESTORE_ALLOWLIST";

/// One allowlist entry: a cluster (or clusters) and the namespaces restores may write there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AllowedTarget {
    /// A cluster ARM id, a prefix ending in `/*` (e.g. `/subscriptions/s/resourceGroups/rg-dr/*`),
    /// or `*` for any cluster. Compared case-insensitively.
    pub cluster: String,
    /// Namespace patterns: a name, a prefix ending in `*` (`app-*`), or `*`.
    pub namespaces: Vec<String>,
    /// Namespace patterns where `Patch` into an EXISTING namespace is allowed. Empty: never.
    #[serde(default)]
    pub patch_existing: Vec<String>,
}

/// The configured targets. Empty means no message-triggered restore is allowed anywhere.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RestoreAllowlist {
    targets: Vec<AllowedTarget>,
}

/// Why authorization failed or could not be decided.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthorizeError {
    /// The allowlist setting is malformed.
    #[error("{ALLOWLIST_VAR} is not a valid allowlist: {0}")]
    ReadAllowlist(String),
    /// The restore is not allowed; every reason is listed.
    #[error("the restore is refused:\n  - {}", .reasons.join("\n  - "))]
    Refuse {
        /// Each reason, with what to change.
        reasons: Vec<String>,
    },
}

fn matches_pattern(pattern: &str, value: &str) -> bool {
    let (pattern, value) = (pattern.to_ascii_lowercase(), value.to_ascii_lowercase());
    match pattern.strip_suffix('*') {
        Some(prefix) => value.starts_with(prefix),
        None => pattern == value,
    }
}

impl RestoreAllowlist {
    /// An allowlist of these entries.
    pub fn new(targets: Vec<AllowedTarget>) -> Self {
        Self { targets }
    }

    /// Parses the JSON setting: an array of
    /// `{"cluster": "<id>|<prefix>/*|*", "namespaces": ["app-*"], "patchExisting": ["app-*"]}`.
    ///
    /// # Errors
    /// [`AuthorizeError::ReadAllowlist`] with every malformed entry.
    pub fn from_json(raw: &str) -> Result<Self, AuthorizeError> {
        let list: Self =
            serde_json::from_str(raw).map_err(|e| AuthorizeError::ReadAllowlist(e.to_string()))?;
        let mut problems = Vec::new();
        for (i, t) in list.targets.iter().enumerate() {
            let cluster = t.cluster.trim();
            let id_ok = cluster == "*"
                || cluster.ends_with("/*")
                || ResourceId::parse(cluster)
                    .is_ok_and(|id| id.is_type(super::request::CLUSTER_TYPE));
            if !id_ok {
                problems.push(format!(
                    "entry {i}: cluster {cluster:?} is not a managed cluster id, a prefix ending in /*, or *"
                ));
            }
            if t.namespaces.is_empty() {
                problems.push(format!("entry {i}: namespaces is empty"));
            }
            for p in t.namespaces.iter().chain(&t.patch_existing) {
                let bare = p.strip_suffix('*').unwrap_or(p);
                if bare.contains('*')
                    || !bare
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                {
                    problems.push(format!(
                        "entry {i}: namespace pattern {p:?} must be a name or a prefix ending in *"
                    ));
                }
            }
        }
        if problems.is_empty() {
            Ok(list)
        } else {
            Err(AuthorizeError::ReadAllowlist(problems.join("; ")))
        }
    }

    /// The entries.
    pub fn targets(&self) -> &[AllowedTarget] {
        &self.targets
    }

    fn entries_for<'a>(&'a self, cluster: &ResourceId) -> impl Iterator<Item = &'a AllowedTarget> {
        let key = cluster.key();
        self.targets
            .iter()
            .filter(move |t| matches_pattern(t.cluster.trim(), &key))
    }
}

/// What a restore would write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreTarget {
    /// The target cluster.
    pub cluster: ResourceId,
    /// The target namespaces.
    pub namespaces: Vec<String>,
    /// Skip or Patch.
    pub conflict_policy: ConflictPolicy,
    /// Which of `namespaces` exist on the target now.
    pub existing: BTreeSet<String>,
}

/// The restore jobs that count against the daily limit: this backup instance's restore jobs
/// that started in the 24 hours before `now`, oldest first.
pub fn restores_in_last_day<'a>(
    jobs: &'a [Job],
    backup_instance_id: &str,
    now: OffsetDateTime,
) -> Vec<&'a Job> {
    let since = now - time::Duration::DAY;
    let mut counted: Vec<&Job> = jobs
        .iter()
        .filter(|j| j.is_restore() && j.belongs_to(backup_instance_id) && j.start_time > since)
        .collect();
    counted.sort_by_key(|j| j.start_time);
    counted
}

/// With `limit` restores a day allowed: how many of the last 24 hours' count, and — when they
/// reach the limit — when the next slot frees (the oldest counted restore turns 24 h old).
fn quota_full(
    jobs: &[Job],
    backup_instance_id: &str,
    now: OffsetDateTime,
    limit: usize,
) -> Option<(usize, OffsetDateTime)> {
    let recent = restores_in_last_day(jobs, backup_instance_id, now);
    if recent.len() < limit {
        return None;
    }
    let frees_at = recent
        .get(recent.len() - limit)
        .map(|j| j.start_time.saturating_add(time::Duration::DAY))
        .unwrap_or(now);
    Some((recent.len(), frees_at))
}

fn daily_limit_reason(
    jobs: &[Job],
    backup_instance_id: &str,
    now: OffsetDateTime,
) -> Option<String> {
    let (used, frees_at) =
        quota_full(jobs, backup_instance_id, now, RESTORES_PER_INSTANCE_PER_DAY)?;
    Some(format!(
        "Azure Backup allows {RESTORES_PER_INSTANCE_PER_DAY} restores per backup instance per day; {used} restore jobs of {backup_instance_id} started in the last 24 hours; the next restore is possible after {}",
        frees_at.format(&Rfc3339).unwrap_or_default()
    ))
}

/// Why a drill may not restore `backup_instance_id` now: drills leave `reserve` of Azure's
/// daily restores to real restores (`BACKUP_PILOT_DRILL_RESTORE_RESERVE`). `None`: it may.
pub fn drill_reserve_reason(
    jobs: &[Job],
    backup_instance_id: &str,
    now: OffsetDateTime,
    reserve: usize,
) -> Option<String> {
    let limit = RESTORES_PER_INSTANCE_PER_DAY.saturating_sub(reserve);
    let (used, frees_at) = quota_full(jobs, backup_instance_id, now, limit)?;
    Some(format!(
        "restore quota: {used} of Azure Backup's {RESTORES_PER_INSTANCE_PER_DAY} daily restores of {backup_instance_id} were used in the last 24 hours and drills keep {reserve} for real restores; the next drill is possible after {}",
        frees_at.format(&Rfc3339).unwrap_or_default()
    ))
}

/// Checks a restore against the allowlist, the forbidden namespaces, the Patch rule and the
/// daily limit, and returns every reason it is refused.
///
/// # Errors
/// [`AuthorizeError::Refuse`] with all reasons.
pub fn authorize(
    target: &RestoreTarget,
    allowlist: &RestoreAllowlist,
    backup_instance_id: &str,
    jobs: &[Job],
    now: OffsetDateTime,
) -> Result<(), AuthorizeError> {
    let mut reasons = Vec::new();
    let entries: Vec<&AllowedTarget> = allowlist.entries_for(&target.cluster).collect();
    if entries.is_empty() {
        reasons.push(if allowlist.targets.is_empty() {
            format!(
                "no restore targets are allowed: {ALLOWLIST_VAR} is empty; add an entry for {}",
                target.cluster
            )
        } else {
            format!(
                "cluster {} is not an allowed restore target; add it to {ALLOWLIST_VAR}",
                target.cluster
            )
        });
    }
    for ns in &target.namespaces {
        if FORBIDDEN_NAMESPACES.contains(&ns.as_str()) {
            reasons.push(format!(
                "namespace {ns} is a system namespace; restores never write into {}",
                FORBIDDEN_NAMESPACES.join(", ")
            ));
            continue;
        }
        if entries.is_empty() {
            continue;
        }
        if !entries
            .iter()
            .any(|e| e.namespaces.iter().any(|p| matches_pattern(p, ns)))
        {
            reasons.push(format!(
                "namespace {ns} on {} is not an allowed restore target (allowed there: {}); restore into an allowed namespace with namespaceMappings, or add it to {ALLOWLIST_VAR}",
                target.cluster,
                entries
                    .iter()
                    .flat_map(|e| e.namespaces.iter().map(String::as_str))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            continue;
        }
        if target.conflict_policy == ConflictPolicy::Patch
            && target.existing.contains(ns)
            && !entries
                .iter()
                .any(|e| e.patch_existing.iter().any(|p| matches_pattern(p, ns)))
        {
            reasons.push(format!(
                "conflictPolicy Patch would overwrite resources in the existing namespace {ns}, which is not allowed there; use Skip, map to a new namespace, or add it to patchExisting in {ALLOWLIST_VAR}"
            ));
        }
    }
    if let Some(reason) = daily_limit_reason(jobs, backup_instance_id, now) {
        reasons.push(reason);
    }
    if reasons.is_empty() {
        Ok(())
    } else {
        Err(AuthorizeError::Refuse { reasons })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::restore::job::{Job, JobStatus};
    use time::macros::datetime;

    const CLUSTER: &str = "/subscriptions/s1/resourceGroups/rg-dr/providers/Microsoft.ContainerService/managedClusters/aks-dr";
    const BI: &str = "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.DataProtection/backupVaults/v/backupInstances/bi";
    const NOW: OffsetDateTime = datetime!(2026-02-01 12:00 UTC);

    fn allowlist() -> RestoreAllowlist {
        RestoreAllowlist::from_json(
            r#"[{"cluster": "/subscriptions/S1/resourceGroups/rg-dr/*", "namespaces": ["app-*", "restored", "kube-system"], "patchExisting": ["app-*"]}]"#,
        )
        .unwrap()
    }

    fn target(namespaces: &[&str], policy: ConflictPolicy, existing: &[&str]) -> RestoreTarget {
        RestoreTarget {
            cluster: ResourceId::parse(CLUSTER).unwrap(),
            namespaces: namespaces.iter().map(|s| s.to_string()).collect(),
            conflict_policy: policy,
            existing: existing.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn restore_job(name: &str, start: OffsetDateTime, category: &str, bi: &str) -> Job {
        Job {
            id: format!("{BI}/../backupJobs/{name}"),
            name: name.into(),
            operation_category: category.into(),
            backup_instance_id: Some(bi.into()),
            status_text: "Completed".into(),
            status: JobStatus::Completed,
            start_time: start,
            end_time: None,
            errors: vec![],
            warnings: vec![],
            items: None,
            recovery_destination: None,
            recovery_point_id: None,
        }
    }

    fn reasons(result: Result<(), AuthorizeError>) -> Vec<String> {
        match result {
            Err(AuthorizeError::Refuse { reasons }) => reasons,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn an_allowed_target_passes() {
        let t = target(&["app-1", "restored"], ConflictPolicy::Skip, &["restored"]);
        assert_eq!(authorize(&t, &allowlist(), BI, &[], NOW), Ok(()));
        let patch_existing = target(&["app-1"], ConflictPolicy::Patch, &["app-1"]);
        assert_eq!(
            authorize(&patch_existing, &allowlist(), BI, &[], NOW),
            Ok(())
        );
        let patch_new = target(&["restored"], ConflictPolicy::Patch, &[]);
        assert_eq!(authorize(&patch_new, &allowlist(), BI, &[], NOW), Ok(()));
    }

    #[test]
    fn every_reason_is_given() {
        let t = target(
            &[
                "kube-system",
                "prod",
                "restored",
                "dataprotection-microsoft",
            ],
            ConflictPolicy::Patch,
            &["restored"],
        );
        let r = reasons(authorize(&t, &allowlist(), BI, &[], NOW));
        assert_eq!(r.len(), 4, "{r:#?}");
        assert!(
            r[0].contains("kube-system is a system namespace"),
            "even when allowlisted: {r:?}"
        );
        assert!(
            r[1].contains("namespace prod") && r[1].contains("app-*"),
            "{r:?}"
        );
        assert!(r[2].contains("Patch") && r[2].contains("restored"), "{r:?}");
        assert!(r[3].contains("dataprotection-microsoft"), "{r:?}");
    }

    #[test]
    fn unknown_clusters_and_empty_allowlists_are_refused_with_the_setting_named() {
        let t = target(&["app-1"], ConflictPolicy::Skip, &[]);
        let r = reasons(authorize(&t, &RestoreAllowlist::default(), BI, &[], NOW));
        assert!(
            r[0].contains(ALLOWLIST_VAR) && r[0].contains("empty"),
            "{r:?}"
        );
        let other = RestoreAllowlist::from_json(
            r#"[{"cluster": "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/other", "namespaces": ["*"]}]"#,
        )
        .unwrap();
        let r = reasons(authorize(&t, &other, BI, &[], NOW));
        assert!(
            r[0].contains("aks-dr is not an allowed restore target"),
            "{r:?}"
        );
    }

    #[test]
    fn the_daily_limit_counts_this_instances_restores_of_the_last_24_hours() {
        let t = target(&["app-1"], ConflictPolicy::Skip, &[]);
        let mut jobs: Vec<Job> = (0..9)
            .map(|i| {
                restore_job(
                    &format!("r{i}"),
                    NOW - time::Duration::hours(i + 1),
                    "Restore",
                    BI,
                )
            })
            .collect();
        // Not counted: older than a day, a backup job, another instance.
        jobs.push(restore_job(
            "old",
            NOW - time::Duration::hours(25),
            "Restore",
            BI,
        ));
        jobs.push(restore_job(
            "backup",
            NOW - time::Duration::hours(1),
            "Backup",
            BI,
        ));
        jobs.push(restore_job(
            "other",
            NOW - time::Duration::hours(1),
            "Restore",
            &format!("{BI}2"),
        ));
        assert_eq!(authorize(&t, &allowlist(), BI, &jobs, NOW), Ok(()));
        // Nine of ten used: a drill keeping two for real restores must wait for the oldest
        // counted restore (9 h old) to turn 24 h old; one keeping none may go.
        let held = drill_reserve_reason(&jobs, BI, NOW, 2).expect("held for the reserve");
        assert!(
            held.starts_with("restore quota: 9 of Azure Backup's 10 daily restores")
                && held.contains("drills keep 2 for real restores")
                && held.ends_with(
                    &(NOW - time::Duration::hours(8) + time::Duration::DAY)
                        .format(&Rfc3339)
                        .unwrap()
                ),
            "{held}"
        );
        assert_eq!(drill_reserve_reason(&jobs, BI, NOW, 0), None);

        jobs.push(restore_job(
            "r9",
            NOW - time::Duration::minutes(5),
            "restore",
            &BI.to_uppercase(),
        ));
        let r = reasons(authorize(&t, &allowlist(), BI, &jobs, NOW));
        assert_eq!(r.len(), 1, "{r:?}");
        // The oldest counted job started 9 h ago, so a slot frees 15 h from now.
        assert!(
            r[0].contains("10 restore jobs") && r[0].contains("2026-02-02T03:00:00Z"),
            "{r:?}"
        );
    }

    #[test]
    fn malformed_allowlists_are_reported() {
        for bad in [
            "{}",
            r#"[{"cluster": "aks-1", "namespaces": ["a"]}]"#,
            r#"[{"cluster": "*", "namespaces": []}]"#,
            r#"[{"cluster": "*", "namespaces": ["a*b"]}]"#,
            r#"[{"cluster": "*", "namespaces": ["a"], "patch": ["a"]}]"#,
        ] {
            let err = RestoreAllowlist::from_json(bad).unwrap_err();
            assert!(err.to_string().contains(ALLOWLIST_VAR), "{bad}: {err}");
        }
    }
}

//! Planning a restore drill: which clusters today (a rotating sample), which namespaces, the
//! scratch names `drill-<ns>-<yyyymmdd>` (valid DNS labels of at most 63 characters), the
//! restore request that maps into them (namespace mappings also make restore hooks fire), the
//! recovery point's age against the policy's interval plus the 2 h completion window, and RTO.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::authorize::{AllowedTarget, FORBIDDEN_NAMESPACES, RestoreAllowlist};
use super::recovery_point::RecoveryPoint;
use super::request::{
    ConflictPolicy, PersistentVolumeRestoreMode, RecoveryPointSelector, RestoreRequest,
};
use super::verify::Finding;
use crate::kube::HookReference;
use crate::resource_id::ResourceId;

/// Every scratch namespace starts with this.
pub const SCRATCH_PREFIX: &str = "drill-";
/// Longest namespace name (RFC 1123 label).
pub const MAX_NAMESPACE_LEN: usize = 63;
/// Backups are expected to complete within this window after their scheduled time (support
/// matrix).
pub const COMPLETION_WINDOW: Duration = Duration::from_secs(2 * 3600);

/// Why a drill cannot be planned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DrillError {
    /// Nothing to restore.
    #[error(
        "no namespaces to drill for {cluster}: the backup instance names none and BACKUP_PILOT_DRILL_NAMESPACES is not set"
    )]
    ChooseNamespaces {
        /// The cluster.
        cluster: String,
    },
}

/// The UTC date of a drill as `yyyymmdd`.
pub fn drill_date(now: OffsetDateTime) -> String {
    let d = now.to_offset(time::UtcOffset::UTC).date();
    format!("{:04}{:02}{:02}", d.year(), u8::from(d.month()), d.day())
}

/// The scratch namespace for `source` on `date` (`yyyymmdd`): `drill-<ns>-<date>`. Names that
/// would exceed 63 characters keep a prefix of the namespace and add 6 hex digits of its hash,
/// so two long namespaces never share a scratch name.
pub fn scratch_namespace(source: &str, date: &str) -> String {
    let plain = format!("{SCRATCH_PREFIX}{source}-{date}");
    if plain.len() <= MAX_NAMESPACE_LEN {
        return plain;
    }
    let digest = Sha256::digest(source.as_bytes());
    let hash: String = digest.iter().take(3).map(|b| format!("{b:02x}")).collect();
    let keep = MAX_NAMESPACE_LEN - SCRATCH_PREFIX.len() - hash.len() - date.len() - 2;
    let head = source
        .get(..keep.min(source.len()))
        .unwrap_or(source)
        .trim_end_matches('-');
    format!("{SCRATCH_PREFIX}{head}-{hash}-{date}")
}

/// Which namespaces to drill: the configured list when set, else what the backup instance
/// includes; never a system namespace or an earlier drill's scratch namespace.
///
/// # Errors
/// [`DrillError::ChooseNamespaces`] when neither names any.
pub fn choose_namespaces(
    cluster: &ResourceId,
    configured: &[String],
    backup_instance_namespaces: &[String],
) -> Result<Vec<String>, DrillError> {
    let source = if configured.is_empty() {
        backup_instance_namespaces
    } else {
        configured
    };
    let mut chosen: Vec<String> = Vec::new();
    for ns in source {
        if !FORBIDDEN_NAMESPACES.contains(&ns.as_str())
            && !ns.starts_with(SCRATCH_PREFIX)
            && !chosen.contains(ns)
        {
            chosen.push(ns.clone());
        }
    }
    if chosen.is_empty() {
        Err(DrillError::ChooseNamespaces {
            cluster: cluster.to_string(),
        })
    } else {
        Ok(chosen)
    }
}

/// The `includedNamespaces` of a backup instance (`AzureBackupInstanceResource` JSON).
pub fn backup_instance_namespaces(backup_instance: &Value) -> Vec<String> {
    backup_instance
        .pointer("/properties/policyInfo/policyParameters/backupDatasourceParametersList")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("includedNamespaces").and_then(Value::as_array))
        .flatten()
        .filter_map(Value::as_str)
        .map(String::from)
        .collect()
}

/// A rotating sample: `size` of `all` (sorted by id), starting where yesterday's sample ended,
/// so every cluster gets its turn. `None` drills them all.
pub fn sample<T: Clone + Ord>(all: &[T], size: Option<usize>, day_number: i64) -> Vec<T> {
    let mut sorted = all.to_vec();
    sorted.sort();
    let n = sorted.len();
    match size {
        None => sorted,
        Some(size) if size >= n => sorted,
        Some(0) => Vec::new(),
        Some(size) => {
            // Day d starts where day d-1 ended, wrapping around the sorted list.
            let day = usize::try_from(day_number.rem_euclid(n as i64)).unwrap_or(0);
            let start = (day * size) % n;
            (0..size).map(|i| sorted[(start + i) % n].clone()).collect()
        }
    }
}

/// How many clusters a day's sample holds: the configured sample, raised so that every one
/// of `clusters` gets its turn within `period_days` (`None`: all of them).
pub fn sample_size(
    clusters: usize,
    sample: Option<usize>,
    period_days: Option<u32>,
) -> Option<usize> {
    let for_period = period_days.map(|p| clusters.div_ceil(usize::try_from(p.max(1)).unwrap_or(1)));
    match (sample, for_period) {
        (None, None) => None,
        (Some(s), None) => Some(s),
        (None, Some(p)) => Some(p),
        (Some(s), Some(p)) => Some(s.max(p)),
    }
}

/// Restore jobs of a vault that have not finished: restores (drills or real ones) running now.
pub fn restores_running(jobs: &[super::job::Job]) -> usize {
    jobs.iter()
        .filter(|j| {
            j.operation_category
                .eq_ignore_ascii_case(super::job::RESTORE_CATEGORY)
                && matches!(j.status, super::job::JobStatus::Running(_))
        })
        .count()
}

/// Why a drill of a vault that already runs `running` restores, `starting` of them started
/// by this timer run, must wait for its turn when drills run at most `max` at once per vault;
/// `None`: it may start.
pub fn vault_busy_reason(
    vault: &str,
    running: usize,
    starting: usize,
    max: usize,
) -> Option<String> {
    (running + starting >= max).then(|| {
        format!(
            "vault busy: {vault} runs {running} restore(s) and this timer run starts {starting} drill(s); drills run at most {max} at once per vault (BACKUP_PILOT_DRILL_MAX_PER_VAULT), so this one waits for the timer's next run"
        )
    })
}

/// A planned drill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DrillPlan {
    /// The drilled cluster (also the target).
    pub cluster_id: ResourceId,
    /// Its backup instance.
    pub backup_instance_id: ResourceId,
    /// The drill date (`yyyymmdd`).
    pub date: String,
    /// Source namespace → scratch namespace.
    pub scratch: BTreeMap<String, String>,
    /// The restore it runs.
    pub request: RestoreRequest,
}

impl DrillPlan {
    /// Plans a drill of `namespaces` of `cluster` on the day of `now`.
    pub fn new(
        cluster: &ResourceId,
        backup_instance: &ResourceId,
        namespaces: &[String],
        restore_hooks: &[HookReference],
        include_cluster_scope_resources: bool,
        now: OffsetDateTime,
    ) -> Self {
        let date = drill_date(now);
        let scratch: BTreeMap<String, String> = namespaces
            .iter()
            .map(|ns| (ns.clone(), scratch_namespace(ns, &date)))
            .collect();
        let request = RestoreRequest {
            request_id: None,
            requested_by: Some("restore-drill".into()),
            source_cluster_id: Some(cluster.clone()),
            backup_instance_id: Some(backup_instance.clone()),
            recovery_point: RecoveryPointSelector::Latest,
            included_namespaces: namespaces.to_vec(),
            namespace_mappings: scratch.clone(),
            target_cluster_id: Some(cluster.clone()),
            conflict_policy: ConflictPolicy::Skip,
            persistent_volume_restore_mode: PersistentVolumeRestoreMode::RestoreWithVolumeData,
            include_cluster_scope_resources,
            restore_hook_references: restore_hooks.to_vec(),
        };
        Self {
            cluster_id: cluster.clone(),
            backup_instance_id: backup_instance.clone(),
            date,
            scratch,
            request,
        }
    }

    /// The scratch namespaces, sorted.
    pub fn scratch_namespaces(&self) -> Vec<String> {
        let mut names: Vec<String> = self.scratch.values().cloned().collect();
        names.sort();
        names
    }

    /// The allowlist a drill runs under: only scratch namespaces, only on the drilled cluster.
    pub fn allowlist(&self) -> RestoreAllowlist {
        RestoreAllowlist::new(vec![AllowedTarget {
            cluster: self.cluster_id.to_string(),
            namespaces: vec![format!("{SCRATCH_PREFIX}*")],
            patch_existing: Vec::new(),
        }])
    }
}

/// Parses an ISO 8601 duration of the forms backup policies use (`P1D`, `PT4H`, `P1W`,
/// `P1DT12H`, `PT30M`). Years and months are refused (their length varies).
pub fn parse_iso_duration(raw: &str) -> Option<Duration> {
    let rest = raw.trim().strip_prefix('P')?;
    let (date_part, time_part) = match rest.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (rest, None),
    };
    let mut total: u64 = 0;
    let mut any = false;
    let mut take = |part: &str, units: &[(char, u64)]| -> Option<()> {
        let mut number = String::new();
        for c in part.chars() {
            if c.is_ascii_digit() {
                number.push(c);
                continue;
            }
            let (_, seconds) = units.iter().find(|(u, _)| *u == c)?;
            let n: u64 = number.parse().ok()?;
            total = total.checked_add(n.checked_mul(*seconds)?)?;
            number.clear();
            any = true;
        }
        number.is_empty().then_some(())
    };
    take(date_part, &[('W', 7 * 86_400), ('D', 86_400)])?;
    if let Some(t) = time_part {
        if t.is_empty() {
            return None;
        }
        take(t, &[('H', 3600), ('M', 60), ('S', 1)])?;
    }
    (any && total > 0).then(|| Duration::from_secs(total))
}

/// The shortest backup interval of a policy (`BaseBackupPolicyResource` JSON): the period of
/// each `AzureBackupRule`'s `repeatingTimeIntervals` (`R/<start>/<period>`).
pub fn policy_interval(policy: &Value) -> Option<Duration> {
    schedule_intervals(policy)
        .into_iter()
        .filter_map(|i| i.rsplit('/').next().and_then(parse_iso_duration))
        .min()
}

/// The backup rules' schedules of a policy (`BaseBackupPolicyResource` JSON): every
/// `repeatingTimeIntervals` entry of each `AzureBackupRule`'s trigger.
fn schedule_intervals(policy: &Value) -> Vec<&str> {
    policy
        .pointer("/properties/policyRules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|r| r.get("objectType").and_then(Value::as_str) == Some("AzureBackupRule"))
        .filter_map(|r| r.pointer("/trigger/schedule/repeatingTimeIntervals"))
        .filter_map(Value::as_array)
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

/// The first time at or after `now` of an ISO 8601 repeating interval as backup policies
/// write it, `R/<start>/<period>` (e.g. `R/2026-03-01T00:00:00+00:00/P1D`): the start itself
/// when it is still ahead, else the start plus the fewest whole periods that reach `now`. The
/// start's UTC offset is taken as written (a schedule `timeZone` with daylight saving may move
/// the real time by an hour). The answer is in UTC.
///
/// # Errors
/// Why the interval cannot be read (one line, quoting it).
pub fn next_occurrence(interval: &str, now: OffsetDateTime) -> Result<OffsetDateTime, String> {
    let shape =
        || format!("`{interval}` is not an ISO 8601 repeating interval `R/<start>/<period>`");
    let mut parts = interval.trim().split('/');
    let (Some(repeat), Some(start), Some(period), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(shape());
    };
    if !repeat.eq_ignore_ascii_case("R") {
        return Err(if repeat.starts_with(['R', 'r']) {
            format!("`{interval}` repeats a fixed number of times; only `R/` (unbounded) is read")
        } else {
            shape()
        });
    }
    let start = parse_schedule_start(start).ok_or_else(|| {
        format!("`{interval}`: the start `{start}` is not an RFC 3339 date and time")
    })?;
    let step = parse_iso_duration(period).ok_or_else(|| {
        format!(
            "`{interval}`: the period `{period}` is not a duration in weeks, days, hours, minutes or seconds"
        )
    })?;
    if now <= start {
        return Ok(start.to_offset(time::UtcOffset::UTC));
    }
    let step_ns = i128::try_from(step.as_nanos()).map_err(|_| shape())?;
    let elapsed_ns = (now - start).whole_nanoseconds();
    let periods = (elapsed_ns + step_ns - 1) / step_ns;
    let ahead = i64::try_from(periods * i128::from(step.as_secs()))
        .ok()
        .map(time::Duration::seconds)
        .and_then(|d| start.checked_add(d))
        .ok_or_else(|| format!("`{interval}`: the next occurrence is out of range"))?;
    Ok(ahead.to_offset(time::UtcOffset::UTC))
}

/// `2026-03-01T00:00:00+00:00` (RFC 3339), or the same without an offset (read as UTC).
fn parse_schedule_start(raw: &str) -> Option<OffsetDateTime> {
    let raw = raw.trim();
    OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339)
        .ok()
        .or_else(|| {
            let local =
                time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
            time::PrimitiveDateTime::parse(raw, &local)
                .ok()
                .map(time::PrimitiveDateTime::assume_utc)
        })
}

/// When the policy's next scheduled backup is due, at or after `now` (UTC): the earliest next
/// occurrence over its backup rules' `repeatingTimeIntervals`.
///
/// # Errors
/// Why it cannot be told: no scheduled backup rule, or no interval that can be read.
pub fn next_backup_at(policy: &Value, now: OffsetDateTime) -> Result<OffsetDateTime, String> {
    let intervals = schedule_intervals(policy);
    let mut problems = Vec::new();
    let mut earliest: Option<OffsetDateTime> = None;
    for interval in &intervals {
        match next_occurrence(interval, now) {
            Ok(at) => earliest = Some(earliest.map_or(at, |e| e.min(at))),
            Err(why) => problems.push(why),
        }
    }
    match earliest {
        Some(at) => Ok(at),
        None if problems.is_empty() => Err(
            "the policy has no scheduled backup rule (no `AzureBackupRule` with `repeatingTimeIntervals`)".into(),
        ),
        None => Err(problems.join("; ")),
    }
}

fn hours(d: Duration) -> String {
    let h = d.as_secs_f64() / 3600.0;
    if (h - h.round()).abs() < 0.05 {
        format!("{} h", h.round())
    } else {
        format!("{h:.1} h")
    }
}

/// Judges the recovery point's age: older than the policy interval plus the completion window
/// means backups are not running as scheduled (degraded). Without a known interval the age is
/// only recorded.
pub fn age_finding(
    point: &RecoveryPoint,
    interval: Option<Duration>,
    now: OffsetDateTime,
) -> Finding {
    let age = Duration::try_from(point.age(now)).unwrap_or_default();
    match interval {
        Some(interval) if age > interval + COMPLETION_WINDOW => Finding::degraded(format!(
            "the newest recovery point ({}) is {} old; the policy backs up every {} (+{} completion window), so scheduled backups are missing",
            point.id,
            hours(age),
            hours(interval),
            hours(COMPLETION_WINDOW)
        )),
        Some(interval) => Finding::info(format!(
            "the newest recovery point ({}) is {} old, within the policy's {} (+{})",
            point.id,
            hours(age),
            hours(interval),
            hours(COMPLETION_WINDOW)
        )),
        None => Finding::info(format!(
            "the newest recovery point ({}) is {} old (policy interval unknown)",
            point.id,
            hours(age)
        )),
    }
}

/// Recovery time: from the request to the verified restore.
pub fn rto(requested_at: OffsetDateTime, verified_at: OffsetDateTime) -> Duration {
    Duration::try_from(verified_at - requested_at).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::datetime;

    fn is_dns_label(s: &str) -> bool {
        !s.is_empty()
            && s.len() <= 63
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !s.starts_with('-')
            && !s.ends_with('-')
    }

    #[test]
    fn scratch_names_are_dated_dns_labels() {
        assert_eq!(drill_date(datetime!(2026-03-07 23:59 UTC)), "20260307");
        assert_eq!(
            drill_date(datetime!(2026-03-08 01:00 +02:00)),
            "20260307",
            "the date is UTC"
        );
        assert_eq!(scratch_namespace("app", "20260307"), "drill-app-20260307");
        let exactly = "a".repeat(48);
        assert_eq!(scratch_namespace(&exactly, "20260307").len(), 63);
        assert!(!scratch_namespace(&exactly, "20260307").contains(&"a".repeat(49)));
        let long_a = format!("{}-x", "b".repeat(60));
        let long_b = format!("{}-y", "b".repeat(60));
        let (a, b) = (
            scratch_namespace(&long_a, "20260307"),
            scratch_namespace(&long_b, "20260307"),
        );
        assert_ne!(a, b, "long names stay distinct");
        for name in [
            a,
            b,
            scratch_namespace(
                &format!("{}-{}", "c".repeat(40), "d".repeat(22)),
                "20260307",
            ),
        ] {
            assert!(is_dns_label(&name), "{name} ({} chars)", name.len());
            assert!(
                name.starts_with(SCRATCH_PREFIX) && name.ends_with("-20260307"),
                "{name}"
            );
        }
    }

    #[test]
    fn the_plan_maps_every_namespace_into_scratch_on_the_same_cluster() {
        let cluster = ResourceId::parse("/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/aks1").unwrap();
        let bi = ResourceId::parse("/subscriptions/s/resourceGroups/rg/providers/Microsoft.DataProtection/backupVaults/v/backupInstances/bi").unwrap();
        let hooks = vec![HookReference {
            name: "probe".into(),
            namespace: "app".into(),
        }];
        let plan = DrillPlan::new(
            &cluster,
            &bi,
            &["app".into(), "db".into()],
            &hooks,
            true,
            datetime!(2026-03-07 03:00 UTC),
        );
        assert_eq!(
            plan.scratch_namespaces(),
            vec!["drill-app-20260307", "drill-db-20260307"]
        );
        assert_eq!(plan.request.target_namespaces(), plan.scratch_namespaces());
        assert_eq!(plan.request.target_cluster_id.as_ref(), Some(&cluster));
        assert!(
            plan.request.warnings().is_empty(),
            "mapped namespaces make hooks fire"
        );
        // The plan's own allowlist admits exactly its scratch namespaces.
        let target = super::super::authorize::RestoreTarget {
            cluster: cluster.clone(),
            namespaces: plan.scratch_namespaces(),
            conflict_policy: ConflictPolicy::Skip,
            existing: Default::default(),
        };
        assert!(
            super::super::authorize::authorize(
                &target,
                &plan.allowlist(),
                &bi.to_string(),
                &[],
                datetime!(2026-03-07 03:00 UTC)
            )
            .is_ok()
        );
        let wrong = super::super::authorize::RestoreTarget {
            namespaces: vec!["app".into()],
            ..target
        };
        assert!(
            super::super::authorize::authorize(
                &wrong,
                &plan.allowlist(),
                &bi.to_string(),
                &[],
                datetime!(2026-03-07 03:00 UTC)
            )
            .is_err()
        );
        let round = serde_json::to_value(&plan).unwrap();
        assert_eq!(serde_json::from_value::<DrillPlan>(round).unwrap(), plan);
    }

    #[test]
    fn namespaces_come_from_configuration_or_the_backup_instance_never_system_ones() {
        let cluster = ResourceId::parse("/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/aks1").unwrap();
        let bi = json!({"properties": {"policyInfo": {"policyParameters": {"backupDatasourceParametersList": [
            {"objectType": "KubernetesClusterBackupDatasourceParameters", "includedNamespaces": ["app", "kube-system", "drill-app-20260101", "app"]}
        ]}}}});
        let from_bi = backup_instance_namespaces(&bi);
        assert_eq!(
            choose_namespaces(&cluster, &[], &from_bi).unwrap(),
            vec!["app"]
        );
        assert_eq!(
            choose_namespaces(&cluster, &["web".into()], &from_bi).unwrap(),
            vec!["web"]
        );
        let err = choose_namespaces(&cluster, &[], &[]).unwrap_err();
        assert!(
            err.to_string().contains("BACKUP_PILOT_DRILL_NAMESPACES"),
            "{err}"
        );
    }

    #[test]
    fn a_period_raises_the_sample_so_every_cluster_gets_its_turn() {
        assert_eq!(sample_size(10, None, None), None);
        assert_eq!(sample_size(10, Some(2), None), Some(2));
        assert_eq!(sample_size(10, None, Some(7)), Some(2));
        assert_eq!(sample_size(10, Some(3), Some(7)), Some(3));
        assert_eq!(sample_size(10, Some(1), Some(5)), Some(2));
        assert_eq!(sample_size(0, None, Some(7)), Some(0));
        // With the size the period asks for, 7 days of samples cover all 10 clusters.
        let all: Vec<u32> = (0..10).collect();
        let mut seen: Vec<u32> = (0..7)
            .flat_map(|day| sample(&all, sample_size(10, None, Some(7)), day))
            .collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen, all);
    }

    #[test]
    fn a_busy_vault_makes_drills_wait_for_their_turn() {
        assert_eq!(vault_busy_reason("v", 0, 0, 2), None);
        assert_eq!(vault_busy_reason("v", 1, 0, 2), None);
        let why = vault_busy_reason("v", 1, 1, 2).unwrap();
        assert!(why.starts_with("vault busy: v runs 1 restore(s)"), "{why}");
        assert!(why.contains("at most 2 at once"), "{why}");
        let running = |status: &str, category: &str| crate::restore::job::Job {
            operation_category: category.into(),
            ..crate::restore::verify::tests::job(status)
        };
        let jobs = [
            running("InProgress", "Restore"),
            running("InProgress", "Backup"),
            running("Completed", "Restore"),
        ];
        assert_eq!(restores_running(&jobs), 1);
    }

    #[test]
    fn the_sample_rotates_through_every_cluster() {
        let all: Vec<u32> = (0..5).collect();
        assert_eq!(sample(&all, None, 3), all);
        assert_eq!(sample(&all, Some(9), 3), all);
        assert!(sample(&all, Some(0), 3).is_empty());
        let mut seen = std::collections::BTreeSet::new();
        for day in 0..5 {
            let s = sample(&all, Some(2), day);
            assert_eq!(s.len(), 2);
            seen.extend(s);
        }
        assert_eq!(seen.len(), 5, "every cluster within five days");
        assert_eq!(
            sample(&all, Some(2), 7),
            sample(&all, Some(2), 7),
            "deterministic"
        );
    }

    fn policy_with(intervals: &[&str]) -> Value {
        json!({"properties": {"objectType": "BackupPolicy", "datasourceTypes": ["Microsoft.ContainerService/managedClusters"], "policyRules": [
            {"objectType": "AzureRetentionRule", "name": "Default", "isDefault": true, "lifecycles": []},
            {"objectType": "AzureBackupRule", "name": "BackupHourly",
             "backupParameters": {"objectType": "AzureBackupParams", "backupType": "Incremental"},
             "dataStore": {"objectType": "DataStoreInfoBase", "dataStoreType": "OperationalStore"},
             "trigger": {"objectType": "ScheduleBasedTriggerContext", "taggingCriteria": [],
                         "schedule": {"repeatingTimeIntervals": intervals, "timeZone": "Coordinated Universal Time"}}}
        ]}})
    }

    #[test]
    fn the_next_backup_comes_from_the_schedule() {
        let now = datetime!(2026-03-02 09:00 UTC);
        for (interval, expected) in [
            // Daily at midnight, started in the past: tomorrow's midnight.
            (
                "R/2026-03-01T00:00:00+00:00/P1D",
                datetime!(2026-03-03 00:00 UTC),
            ),
            // Daily at 21:30 (written with an offset), answered in UTC.
            (
                "R/2024-01-01T23:30:00+02:00/P1D",
                datetime!(2026-03-02 21:30 UTC),
            ),
            // Every four hours from 09:00 on an earlier day: the next slot after 09:00 today
            // is 09:00 itself (a backup due now is the next one).
            (
                "R/2023-01-04T09:00:00+00:00/PT4H",
                datetime!(2026-03-02 09:00 UTC),
            ),
            (
                "R/2023-01-04T10:00:00+00:00/PT4H",
                datetime!(2026-03-02 10:00 UTC),
            ),
            // A start time still ahead is the next backup, whatever the period.
            (
                "R/2026-03-05T06:00:00+00:00/P1W",
                datetime!(2026-03-05 06:00 UTC),
            ),
            // No offset: read as UTC.
            (
                "R/2026-03-01T01:00:00/PT12H",
                datetime!(2026-03-02 13:00 UTC),
            ),
        ] {
            assert_eq!(next_occurrence(interval, now), Ok(expected), "{interval}");
        }
        let past_second = datetime!(2026-03-02 09:00:01 UTC);
        assert_eq!(
            next_occurrence("R/2023-01-04T09:00:00+00:00/PT4H", past_second),
            Ok(datetime!(2026-03-02 13:00 UTC)),
            "a moment after a slot waits for the next one"
        );
        for (malformed, says) in [
            ("P1D", "is not an ISO 8601 repeating interval"),
            (
                "R/2026-03-01T00:00:00+00:00",
                "is not an ISO 8601 repeating interval",
            ),
            (
                "R/2026-03-01T00:00:00+00:00/P1D/x",
                "is not an ISO 8601 repeating interval",
            ),
            (
                "R5/2026-03-01T00:00:00+00:00/P1D",
                "repeats a fixed number of times",
            ),
            (
                "R/yesterday/P1D",
                "the start `yesterday` is not an RFC 3339",
            ),
            (
                "R/2026-03-01T00:00:00+00:00/P1M",
                "the period `P1M` is not a duration",
            ),
            (
                "R/2026-03-01T00:00:00+00:00/PT0H",
                "the period `PT0H` is not a duration",
            ),
        ] {
            let err = next_occurrence(malformed, now).expect_err(malformed);
            assert!(
                err.contains(says) && err.contains(malformed),
                "{malformed}: {err}"
            );
        }

        // A policy: the earliest of its rules' schedules; unreadable ones are passed over.
        assert_eq!(
            next_backup_at(
                &policy_with(&[
                    "R/2026-03-01T00:00:00+00:00/P1D",
                    "R/2026-03-01T00:00:00+00:00/PT6H",
                    "bad"
                ]),
                now
            ),
            Ok(datetime!(2026-03-02 12:00 UTC))
        );
        let err =
            next_backup_at(&policy_with(&["R/2026-03-01T00:00:00+00:00/P1Y"]), now).unwrap_err();
        assert!(err.contains("the period `P1Y`"), "{err}");
        let err = next_backup_at(&policy_with(&[]), now).unwrap_err();
        assert!(err.contains("no scheduled backup rule"), "{err}");
        let err = next_backup_at(&json!({"properties": {"policyRules": []}}), now).unwrap_err();
        assert!(err.contains("no scheduled backup rule"), "{err}");
    }

    #[test]
    fn policy_intervals_and_ages() {
        for (raw, secs) in [
            ("P1D", 86_400),
            ("PT4H", 14_400),
            ("P1W", 604_800),
            ("P1DT12H", 129_600),
            ("PT30M", 1800),
        ] {
            assert_eq!(
                parse_iso_duration(raw),
                Some(Duration::from_secs(secs)),
                "{raw}"
            );
        }
        for bad in ["", "P", "PT", "1D", "P1Y", "P1M", "PxD", "P1DT", "PT0H"] {
            assert_eq!(parse_iso_duration(bad), None, "{bad}");
        }
        let policy = json!({"properties": {"objectType": "BackupPolicy", "policyRules": [
            {"objectType": "AzureRetentionRule", "name": "Default"},
            {"objectType": "AzureBackupRule", "name": "BackupHourly", "trigger": {"objectType": "ScheduleBasedTriggerContext",
              "schedule": {"repeatingTimeIntervals": ["R/2023-01-04T09:00:00+00:00/PT4H"]}}}
        ]}});
        let interval = policy_interval(&policy);
        assert_eq!(interval, Some(Duration::from_secs(4 * 3600)));
        let point = RecoveryPoint {
            id: "rp".into(),
            time: datetime!(2026-03-07 00:00 UTC),
            state: None,
            data_stores: vec![],
        };
        let fresh = age_finding(&point, interval, datetime!(2026-03-07 05:59 UTC));
        assert_eq!(
            fresh.level,
            super::super::verify::Verdict::Pass,
            "{fresh:?}"
        );
        let stale = age_finding(&point, interval, datetime!(2026-03-07 06:01 UTC));
        assert_eq!(
            stale.level,
            super::super::verify::Verdict::Degraded,
            "{stale:?}"
        );
        assert!(stale.message.contains("every 4 h"), "{}", stale.message);
        assert_eq!(
            age_finding(&point, None, datetime!(2026-03-09 00:00 UTC)).level,
            super::super::verify::Verdict::Pass
        );
        assert_eq!(
            rto(
                datetime!(2026-03-07 00:00 UTC),
                datetime!(2026-03-07 00:07 UTC)
            ),
            Duration::from_secs(420)
        );
    }
}

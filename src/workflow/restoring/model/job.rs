//! The restore job: which existing job a trigger adopts instead of restoring twice, when a sent
//! restore is still worth waiting for, and when a running job has run too long.

use std::time::Duration;

use time::OffsetDateTime;

use crate::restore::job::Job;

/// How long after sending a restore its job may take to appear.
pub const JOB_APPEAR_WINDOW: time::Duration = time::Duration::minutes(5);

/// A job's name: the last segment of its id (or the id, when it has none).
pub fn job_name(id: &str) -> String {
    id.rsplit('/').next().unwrap_or(id).to_string()
}

/// The restore the trigger sends, to tell it among the vault's jobs.
#[derive(Debug, Clone, Copy)]
pub struct RestoreSent<'a> {
    /// The backup instance.
    pub backup_instance: &'a str,
    /// The recovery point's name.
    pub recovery_point: &'a str,
    /// The target cluster.
    pub target: &'a str,
}

/// The name of a restore job of `sent`'s instance, recovery point and target (a job that
/// names no destination counts) that started since `since` (less a minute of clock skew).
pub fn adoptable_job(jobs: &[Job], sent: RestoreSent<'_>, since: OffsetDateTime) -> Option<String> {
    let since = since.saturating_sub(time::Duration::MINUTE);
    jobs.iter()
        .find(|j| {
            j.is_restore()
                && j.belongs_to(sent.backup_instance)
                && j.start_time >= since
                && j.recovery_point_id.as_deref() == Some(sent.recovery_point)
                && j.recovery_destination
                    .as_deref()
                    .is_none_or(|d| d.eq_ignore_ascii_case(sent.target))
        })
        .map(|j| j.name.clone())
}

/// True while a restore sent at `triggered_at` (if it was) may still produce its job.
pub fn awaiting_job(triggered_at: Option<OffsetDateTime>, now: OffsetDateTime) -> bool {
    triggered_at.is_some_and(|at| now - at < JOB_APPEAR_WINDOW)
}

/// True when a job triggered at `triggered` still runs past `limit` at `now`.
pub fn overdue(triggered: OffsetDateTime, now: OffsetDateTime, limit: Duration) -> bool {
    now - triggered > time::Duration::try_from(limit).unwrap_or(time::Duration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::restoring::model::fixtures::{BI, CLUSTER, restore_job};
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-02-01 12:00 UTC);

    #[test]
    fn a_trigger_adopts_only_its_own_restore() {
        let job = |name: &str, mins_ago: i64, point: &str, destination: Option<&str>| {
            let mut j = restore_job(name, NOW - time::Duration::minutes(mins_ago));
            j.recovery_point_id = Some(point.into());
            j.recovery_destination = destination.map(str::to_string);
            j
        };
        let sent = RestoreSent {
            backup_instance: BI,
            recovery_point: "rp",
            target: CLUSTER,
        };
        let mut backup = job("backup", 1, "rp", None);
        backup.operation_category = "Backup".into();
        let mut other_instance = job("elsewhere", 1, "rp", None);
        other_instance.backup_instance_id = Some(format!("{BI}2"));
        // (the vault's jobs, since minutes ago, adopted)
        let cases: Vec<(Vec<Job>, i64, Option<&str>)> = vec![
            (vec![], 10, None),
            (
                vec![job("ours", 5, "rp", Some(&CLUSTER.to_uppercase()))],
                10,
                Some("ours"),
            ),
            (
                vec![job("no-destination", 5, "rp", None)],
                10,
                Some("no-destination"),
            ),
            (vec![job("skewed", 10, "rp", None)], 9, Some("skewed")),
            (vec![job("older", 20, "rp", None)], 10, None),
            (vec![job("other-point", 5, "rp2", None)], 10, None),
            (
                vec![job("other-target", 5, "rp", Some("/elsewhere"))],
                10,
                None,
            ),
            (vec![backup, other_instance], 10, None),
        ];
        for (jobs, since, adopted) in cases {
            let since = NOW - time::Duration::minutes(since);
            assert_eq!(
                adoptable_job(&jobs, sent, since).as_deref(),
                adopted,
                "{jobs:?}"
            );
        }
    }

    #[test]
    fn a_sent_restore_is_awaited_and_a_job_runs_until_its_limit() {
        for (triggered_mins_ago, awaited) in [(None, false), (Some(1), true), (Some(5), false)] {
            let at = triggered_mins_ago.map(|m| NOW - time::Duration::minutes(m));
            assert_eq!(awaiting_job(at, NOW), awaited, "{triggered_mins_ago:?}");
        }
        let hour = Duration::from_secs(3600);
        for (mins_ago, limit, late) in [
            (59, hour, false),
            (60, hour, false),
            (61, hour, true),
            (10_000, Duration::MAX, false),
        ] {
            let triggered = NOW - time::Duration::minutes(mins_ago);
            assert_eq!(
                overdue(triggered, NOW, limit),
                late,
                "{mins_ago} min, {limit:?}"
            );
        }
        for (id, name) in [("/v/backupJobs/j1", "j1"), ("j2", "j2"), ("", "")] {
            assert_eq!(job_name(id), name);
        }
    }
}

//! Verification's waits: whether restored workloads are still settling (and what they lack),
//! and whether a drill's application probes are still worth waiting for.

use time::OffsetDateTime;

use crate::kube::restore_prep::NamespaceContents;
use crate::restore::job::{Job, JobStatus};
use crate::restore::probe::ProbeRun;
use crate::restore::verify::{resource_count, workloads_settled};

/// True when the job succeeded and restored something whose pods, claims or deployments are
/// not all ready yet.
pub fn settling(job: &Job, contents: &[(String, NamespaceContents)]) -> bool {
    let succeeded = matches!(
        job.status,
        JobStatus::Completed | JobStatus::CompletedWithWarnings
    );
    let something = contents.iter().any(|(_, c)| resource_count(c) > 0);
    succeeded && something && !workloads_settled(contents)
}

/// What each namespace whose pods or claims are not ready lacks, one line per namespace.
pub fn unsettled(contents: &[(String, NamespaceContents)]) -> Vec<String> {
    contents
        .iter()
        .filter(|(_, c)| c.pods_ready < c.pods || c.pvcs_bound < c.pvcs)
        .map(|(n, c)| {
            format!(
                "{n}: {}/{} pods Ready, {}/{} claims Bound",
                c.pods_ready, c.pods, c.pvcs_bound, c.pvcs
            )
        })
        .collect()
}

/// The probes still running that are worth waiting for: none once every probe ended, or once
/// the longest probe's deadline (`longest_seconds`) plus a minute for the kubelet has passed
/// since `started`.
pub fn probes_to_wait_for(
    results: &[(String, ProbeRun)],
    longest_seconds: i64,
    started: OffsetDateTime,
    now: OffsetDateTime,
) -> Vec<&str> {
    let patience = time::Duration::seconds(longest_seconds.saturating_add(60));
    if now - started >= patience {
        return Vec::new();
    }
    results
        .iter()
        .filter(|(_, r)| *r == ProbeRun::Running)
        .map(|(n, _)| n.as_str())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::restoring::model::fixtures::restore_job;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-02-01 12:00 UTC);

    fn ns(pods: usize, ready: usize, pvcs: usize, bound: usize) -> (String, NamespaceContents) {
        let c = NamespaceContents {
            pods,
            pods_ready: ready,
            pvcs,
            pvcs_bound: bound,
            ..NamespaceContents::default()
        };
        ("app".to_string(), c)
    }

    #[test]
    fn a_succeeded_job_waits_for_what_it_restored_to_settle() {
        // (job status, contents, settling, lines on what is not ready)
        let cases = [
            (JobStatus::Completed, vec![ns(2, 2, 1, 1)], false, 0),
            (JobStatus::Completed, vec![ns(2, 1, 0, 0)], true, 1),
            (
                JobStatus::CompletedWithWarnings,
                vec![ns(0, 0, 1, 0)],
                true,
                1,
            ),
            (JobStatus::Completed, vec![ns(0, 0, 0, 0)], false, 0),
            (JobStatus::Failed, vec![ns(2, 1, 0, 0)], false, 1),
        ];
        for (status, contents, waits, lines) in cases {
            let mut job = restore_job("j", NOW);
            job.status = status.clone();
            assert_eq!(settling(&job, &contents), waits, "{status:?} {contents:?}");
            assert_eq!(unsettled(&contents).len(), lines, "{contents:?}");
        }
        assert_eq!(
            unsettled(&[ns(2, 1, 1, 0)]),
            ["app: 1/2 pods Ready, 0/1 claims Bound"]
        );
    }

    #[test]
    fn running_probes_are_waited_for_until_their_deadline_and_a_minute() {
        let failed = ProbeRun::Failed {
            detail: "exit 1".into(),
        };
        let results = |runs: &[ProbeRun]| -> Vec<(String, ProbeRun)> {
            runs.iter()
                .enumerate()
                .map(|(i, r)| (format!("p{i}"), r.clone()))
                .collect()
        };
        // (runs, longest deadline, seconds since started, waited for)
        type Case = (Vec<(String, ProbeRun)>, i64, i64, &'static [&'static str]);
        let cases: [Case; 5] = [
            (results(&[]), 30, 0, &[]),
            (results(&[ProbeRun::Passed, failed.clone()]), 30, 0, &[]),
            (
                results(&[ProbeRun::Running, ProbeRun::Passed]),
                30,
                89,
                &["p0"],
            ),
            (
                results(&[ProbeRun::Running, ProbeRun::Running]),
                30,
                90,
                &[],
            ),
            (results(&[failed, ProbeRun::Running]), 0, 59, &["p1"]),
        ];
        for (runs, longest, since, waited) in cases {
            let started = NOW - time::Duration::seconds(since);
            assert_eq!(
                probes_to_wait_for(&runs, longest, started, NOW),
                waited,
                "{runs:?}"
            );
        }
    }
}

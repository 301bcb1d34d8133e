//! Whether a restore may run: the restore rules ([`crate::restore::authorize`]: allowlist,
//! system namespaces, Patch grants, Azure's daily limit) and, for a drill, the share of the
//! daily restores it leaves to real restores.

use time::OffsetDateTime;

use crate::restore::authorize::{RestoreAllowlist, RestoreTarget, authorize, drill_reserve_reason};
use crate::restore::job::Job;

/// The verdict on restoring `candidate` from `backup_instance` at `now`, given the vault's
/// jobs: `Ok` to go on, else every reason it is refused (the rules' refusal first; a drill,
/// `drill_reserve` `Some`, is also held when its reserve is reached).
///
/// # Errors
/// The refusal, in words.
pub fn authorization(
    candidate: &RestoreTarget,
    allowlist: &RestoreAllowlist,
    backup_instance: &str,
    jobs: &[Job],
    now: OffsetDateTime,
    drill_reserve: Option<usize>,
) -> Result<(), String> {
    authorize(candidate, allowlist, backup_instance, jobs, now).map_err(|e| e.to_string())?;
    match drill_reserve
        .and_then(|reserve| drill_reserve_reason(jobs, backup_instance, now, reserve))
    {
        Some(held) => Err(held),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource_id::ResourceId;
    use crate::restore::request::ConflictPolicy;
    use crate::workflow::restoring::model::fixtures::{BI, CLUSTER, restore_job};
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-02-01 12:00 UTC);

    #[test]
    fn restores_are_refused_by_the_rules_and_drills_also_by_their_reserve() {
        let allowlist = RestoreAllowlist::from_json(
            r#"[{"cluster": "/subscriptions/S1/resourceGroups/rg-dr/*", "namespaces": ["app-*"]}]"#,
        )
        .unwrap();
        let jobs = |n: i64| -> Vec<Job> {
            (0..n)
                .map(|i| restore_job(&format!("j{i}"), NOW - time::Duration::hours(i + 1)))
                .collect()
        };
        // (namespace, restores in the last day, drill reserve, refused with)
        let cases: [(&str, i64, Option<usize>, Option<&str>); 8] = [
            ("app-1", 0, None, None),
            ("app-1", 0, Some(3), None),
            ("app-1", 6, Some(3), None),
            ("app-1", 7, Some(3), Some("drills keep 3 for real restores")),
            ("app-1", 7, None, None),
            (
                "app-1",
                10,
                None,
                Some("allows 10 restores per backup instance"),
            ),
            ("kube-system", 0, None, Some("is a system namespace")),
            (
                "other",
                9,
                Some(3),
                Some("is not an allowed restore target"),
            ),
        ];
        for (namespace, restores, reserve, refused) in cases {
            let candidate = RestoreTarget {
                cluster: ResourceId::parse(CLUSTER).unwrap(),
                namespaces: vec![namespace.into()],
                conflict_policy: ConflictPolicy::Skip,
                existing: Default::default(),
            };
            let verdict = authorization(&candidate, &allowlist, BI, &jobs(restores), NOW, reserve);
            let case = format!("{namespace}, {restores} restores, reserve {reserve:?}");
            match (refused, verdict) {
                (None, Ok(())) => {}
                (Some(why), Err(reason)) => assert!(reason.contains(why), "{case}: {reason}"),
                (want, got) => panic!("{case}: expected {want:?}, got {got:?}"),
            }
        }
    }
}

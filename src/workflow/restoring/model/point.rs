//! What the chosen recovery point says about the backups: its age against the policy's
//! interval (only for the newest point: an older one was asked for on purpose), and whether it
//! is Partial.

use std::time::Duration;

use time::OffsetDateTime;

use crate::restore::drill::age_finding;
use crate::restore::recovery_point::RecoveryPoint;
use crate::restore::request::RecoveryPointSelector;
use crate::restore::verify::Finding;

/// The findings on `point`, chosen by `selector` for a request of `requested_at`, under a
/// policy backing up every `interval` (when known).
pub fn point_findings(
    point: &RecoveryPoint,
    selector: &RecoveryPointSelector,
    interval: Option<Duration>,
    requested_at: OffsetDateTime,
) -> Vec<Finding> {
    let mut found = Vec::new();
    if *selector == RecoveryPointSelector::Latest {
        found.push(age_finding(point, interval, requested_at));
    }
    if point.is_partial() {
        found.push(Finding::degraded(format!(
            "recovery point {} is Partial: only some of the intended items were backed up",
            point.id
        )));
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::restore::verify::Verdict;
    use crate::workflow::restoring::model::fixtures::point;
    use time::macros::datetime;

    #[test]
    fn the_newest_point_is_judged_by_its_age_and_any_point_by_its_state() {
        let now = datetime!(2026-02-01 12:00 UTC);
        let day = Some(Duration::from_secs(24 * 3600));
        let named = RecoveryPointSelector::Id("rp".into());
        // (selector, hours old, state, interval, the findings' levels)
        type Case<'a> = (
            &'a RecoveryPointSelector,
            i64,
            Option<&'a str>,
            Option<Duration>,
            &'a [Verdict],
        );
        let cases: [Case; 6] = [
            (
                &RecoveryPointSelector::Latest,
                3,
                None,
                day,
                &[Verdict::Pass],
            ),
            (
                &RecoveryPointSelector::Latest,
                30,
                None,
                day,
                &[Verdict::Degraded],
            ),
            (
                &RecoveryPointSelector::Latest,
                300,
                None,
                None,
                &[Verdict::Pass],
            ),
            (
                &RecoveryPointSelector::Latest,
                3,
                Some("Partial"),
                day,
                &[Verdict::Pass, Verdict::Degraded],
            ),
            (&named, 300, None, day, &[]),
            (&named, 300, Some("partial"), day, &[Verdict::Degraded]),
        ];
        for (selector, hours, state, interval, levels) in cases {
            let p = point("rp", now - time::Duration::hours(hours), state);
            let found = point_findings(&p, selector, interval, now);
            let got: Vec<Verdict> = found.iter().map(|f| f.level).collect();
            assert_eq!(got, levels, "{selector:?}, {hours} h, {state:?}: {found:?}");
        }
    }
}

//! What a drill's cleanup pass means: done (with what was deleted and what is left behind) or
//! look again. Cleanup never fails the run: past its deadline whatever is left goes into the
//! report.

use crate::restore::report::Cleanup;

/// After one cleanup pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CleanupNext {
    /// Finished: on to the report.
    Done(Cleanup),
    /// Look again; why.
    Wait(String),
}

/// What a pass over the scratch namespaces `names` means: `reached` is those still terminating
/// and those not labelled as scratch (never the service's to delete), or why the cluster could
/// not be reached; `out_of_time` once the cleanup deadline has passed.
pub fn after_pass(
    names: &[String],
    reached: Result<(Vec<String>, Vec<String>), String>,
    out_of_time: bool,
) -> CleanupNext {
    match reached {
        Ok((left, foreign)) if left.is_empty() || out_of_time => {
            let mut left_behind = foreign;
            left_behind.extend(left);
            CleanupNext::Done(Cleanup {
                deleted: names
                    .iter()
                    .filter(|n| !left_behind.contains(n))
                    .cloned()
                    .collect(),
                left_behind,
            })
        }
        Ok((left, _)) => CleanupNext::Wait(format!(
            "waiting for scratch namespace(s) {} to go",
            left.join(", ")
        )),
        Err(_) if out_of_time => CleanupNext::Done(Cleanup {
            deleted: Vec::new(),
            left_behind: names.to_vec(),
        }),
        Err(why) => CleanupNext::Wait(format!("cleanup could not reach the cluster: {why}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(all: &[&str]) -> Vec<String> {
        all.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn cleanup_waits_until_its_deadline_then_reports_what_is_left() {
        let all = names(&["a", "b", "c"]);
        let done = |deleted: &[&str], left: &[&str]| {
            CleanupNext::Done(Cleanup {
                deleted: names(deleted),
                left_behind: names(left),
            })
        };
        let wait = |why: &str| CleanupNext::Wait(why.to_string());
        // (pass result, out of time, next)
        let cases = [
            (
                Ok((names(&[]), names(&[]))),
                false,
                done(&["a", "b", "c"], &[]),
            ),
            (
                Ok((names(&[]), names(&["b"]))),
                false,
                done(&["a", "c"], &["b"]),
            ),
            (
                Ok((names(&["a"]), names(&["b"]))),
                false,
                wait("waiting for scratch namespace(s) a to go"),
            ),
            (
                Ok((names(&["a"]), names(&["b"]))),
                true,
                done(&["c"], &["b", "a"]),
            ),
            (
                Err("403".to_string()),
                false,
                wait("cleanup could not reach the cluster: 403"),
            ),
            (Err("403".to_string()), true, done(&[], &["a", "b", "c"])),
        ];
        for (reached, out_of_time, next) in cases {
            let case = format!("{reached:?}, out of time {out_of_time}");
            assert_eq!(after_pass(&all, reached, out_of_time), next, "{case}");
        }
    }
}

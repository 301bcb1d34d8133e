//! How a failure names its fix. A failure reason is one line of text (it travels in the
//! journal, logs and status); when the code knows the remedy it writes `<problem> Fix:
//! <what to do>`, and status shows the two parts apart. Reasons without the marker are shown
//! whole, with the generic next step.

/// The marker between the problem and the fix.
pub const MARKER: &str = "Fix:";

/// `problem` and `fix` as one reason: `"{problem}. Fix: {fix}"` (no doubled full stop).
pub fn compose(problem: &str, fix: &str) -> String {
    let problem = problem.trim().trim_end_matches('.');
    format!("{problem}. {MARKER} {}", fix.trim())
}

/// Splits a reason into the problem and, when it names one, the fix. The marker counts only
/// at the start or after a sentence or clause break, so a word like "prefix:" does not split.
pub fn split(reason: &str) -> (&str, Option<&str>) {
    let mut from = 0;
    while let Some(found) = reason[from..].find(MARKER) {
        let at = from + found;
        let before = reason[..at].trim_end();
        if before.is_empty() || before.ends_with(['.', ';', ':', '!', '?', '—', '-']) {
            let fix = reason[at + MARKER.len()..].trim();
            if !fix.is_empty() {
                return (before.trim_end_matches(['.', ';', ':', ' ']), Some(fix));
            }
        }
        from = at + MARKER.len();
    }
    (reason.trim(), None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compose_and_split_are_inverse() {
        let reason = compose(
            "the Backup vault denied the role assignment (403 AuthorizationFailed).",
            "grant the function app's identity User Access Administrator on the vault",
        );
        assert_eq!(
            reason,
            "the Backup vault denied the role assignment (403 AuthorizationFailed). Fix: grant the function app's identity User Access Administrator on the vault"
        );
        let (problem, fix) = split(&reason);
        assert_eq!(
            problem,
            "the Backup vault denied the role assignment (403 AuthorizationFailed)"
        );
        assert_eq!(
            fix,
            Some("grant the function app's identity User Access Administrator on the vault")
        );
    }

    #[test]
    fn reasons_without_a_fix_stay_whole() {
        assert_eq!(split("quota exceeded"), ("quota exceeded", None));
        assert_eq!(
            split("bad prefix Fix: inside a sentence"),
            ("bad prefix Fix: inside a sentence", None)
        );
        assert_eq!(split("nothing to do. Fix:"), ("nothing to do. Fix:", None));
        let deadline = "step `x` timed out; last reason: vault busy. Fix: retry later";
        assert_eq!(split(deadline).1, Some("retry later"));
    }
}

//! The target namespaces before a restore: which are still being deleted (waited for), and
//! which the service created (recorded, so cleanup and the report know).

use crate::kube::restore_prep::NamespaceState;

/// The namespaces of `states` still terminating.
pub fn terminating(states: &[(String, NamespaceState)]) -> Vec<&str> {
    states
        .iter()
        .filter(|(_, s)| *s == NamespaceState::Terminating)
        .map(|(n, _)| n.as_str())
        .collect()
}

/// `created` (recorded by earlier attempts), with those `states` says were just created added
/// once each.
pub fn created_so_far(
    mut created: Vec<String>,
    states: &[(String, NamespaceState)],
) -> Vec<String> {
    for (name, state) in states {
        if *state == NamespaceState::Created && !created.contains(name) {
            created.push(name.clone());
        }
    }
    created
}

#[cfg(test)]
mod tests {
    use super::*;
    use NamespaceState::{Created, Existed, Terminating};

    #[test]
    fn terminating_namespaces_are_waited_for_and_created_ones_recorded_once() {
        let s = |all: &[(&str, NamespaceState)]| -> Vec<(String, NamespaceState)> {
            all.iter().map(|(n, st)| (n.to_string(), *st)).collect()
        };
        // (recorded before, states now, terminating, recorded after)
        type Names = &'static [&'static str];
        type States = Vec<(String, NamespaceState)>;
        let cases: [(Names, States, Names, Names); 5] = [
            (&[], s(&[]), &[], &[]),
            (&[], s(&[("a", Created), ("b", Existed)]), &[], &["a"]),
            (
                &["a"],
                s(&[("a", Existed), ("b", Created)]),
                &[],
                &["a", "b"],
            ),
            (&["a"], s(&[("a", Created)]), &[], &["a"]),
            (
                &[],
                s(&[("a", Terminating), ("b", Created), ("c", Terminating)]),
                &["a", "c"],
                &["b"],
            ),
        ];
        for (before, states, waiting, after) in cases {
            assert_eq!(terminating(&states), waiting, "{states:?}");
            let before: Vec<String> = before.iter().map(|n| n.to_string()).collect();
            assert_eq!(created_so_far(before, &states), after, "{states:?}");
        }
    }
}

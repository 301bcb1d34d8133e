//! Offboarding (starts at `stop_protection` with `ClusterDeleted`), declared once in
//! [`OffboardStep`]: stop_protection → remove_role_assignments.

pub mod steps;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::envelope::Envelope;
use crate::workflow::facts::lenient;

use crate::engine::Registry;
use crate::envelope::WorkflowKind;
use crate::workflow::Ctx;
use steps::{remove_role_assignments, stop_protection};

step_ids! {
    /// The offboarding steps, in the order they run.
    pub enum OffboardStep {
        /// Stops protection (and deletes backup data when configured).
        StopProtection = "stop_protection",
        /// Removes the role assignments onboarding made.
        RemoveRoleAssignments = "remove_role_assignments",
    }
}

/// The fact that starts offboarding.
pub const OFFBOARD_FACT: &str = "ClusterDeleted";

/// Adds every offboarding step to `registry`.
pub fn register(registry: Registry<Ctx>) -> Registry<Ctx> {
    const KIND: WorkflowKind = WorkflowKind::Offboard;
    OffboardStep::ALL
        .iter()
        .fold(registry, |r, step| match step {
            OffboardStep::StopProtection => r.add(KIND, stop_protection::StopProtection),
            OffboardStep::RemoveRoleAssignments => {
                r.add(KIND, remove_role_assignments::RemoveRoleAssignments)
            }
        })
        .starts_with(KIND, OffboardStep::ALL[0].as_str(), OFFBOARD_FACT)
}

/// The facts an offboarding carries from step to step, typed (same camelCase keys).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct OffboardFacts {
    /// The backup instances stop_protection has dealt with.
    #[serde(deserialize_with = "lenient")]
    pub stopped_backup_instances: Vec<Value>,
}

impl OffboardFacts {
    /// The facts in `env`'s payload.
    pub fn of(env: &Envelope) -> Self {
        serde_json::from_value(Value::Object(env.payload.clone())).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_offboarding_facts_keep_their_key_and_read_leniently() {
        let facts = OffboardFacts {
            stopped_backup_instances: vec![json!("/bi")],
        };
        assert_eq!(
            serde_json::to_value(&facts).unwrap(),
            json!({ crate::workflow::facts::STOPPED_BACKUP_INSTANCES: ["/bi"] })
        );
        for (payload, expected) in [
            (json!({"stoppedBackupInstances": ["/a", "/b"]}), 2),
            (json!({"stoppedBackupInstances": "/a"}), 0),
            (json!({}), 0),
        ] {
            let parsed: OffboardFacts = serde_json::from_value(payload.clone()).unwrap();
            assert_eq!(parsed.stopped_backup_instances.len(), expected, "{payload}");
        }
    }
}

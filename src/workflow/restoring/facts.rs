//! The facts a restore or drill carries from step to step, typed: [`RestoreFacts`] reads the
//! envelope payload under the same camelCase keys the steps write ([`super::keys`] and the
//! shared ones in [`crate::workflow::facts`]), so messages in flight stay readable; each field
//! reads as leniently as before (a value of another type counts as absent).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use time::OffsetDateTime;

use crate::engine::StepError;
use crate::envelope::Envelope;
use crate::kube::restore_prep::NamespaceContents;
use crate::resource_id::ResourceId;
use crate::restore::drill::DrillPlan;
use crate::restore::job::Job;
use crate::restore::recovery_point::RecoveryPoint;
use crate::restore::report::Cleanup;
use crate::restore::request::RestoreRequest;
use crate::restore::verify::{Finding, Verification};
use crate::workflow::facts::{self as shared, lenient, present, typed};
use crate::workflow::restoring::{keys, to_fact};

/// Everything a restore's or drill's steps record in its payload (see [`super::keys`] for
/// each key).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RestoreFacts {
    /// The step reading them (for the error naming a missing fact).
    #[serde(skip)]
    pub step: String,
    /// The typed restore request.
    #[serde(deserialize_with = "lenient")]
    pub request: Option<RestoreRequest>,
    /// When the request (or the timer) arrived.
    #[serde(deserialize_with = "lenient_time", serialize_with = "time_fact")]
    pub requested_at: Option<OffsetDateTime>,
    /// The drill plan.
    #[serde(deserialize_with = "lenient")]
    pub plan: Option<DrillPlan>,
    /// The backup instance restored from.
    #[serde(deserialize_with = "lenient")]
    pub backup_instance_id: Option<String>,
    /// Its vault.
    #[serde(deserialize_with = "lenient")]
    pub vault_id: Option<String>,
    /// Its policy.
    #[serde(deserialize_with = "lenient")]
    pub policy_id: Option<String>,
    /// Its snapshot resource group.
    #[serde(deserialize_with = "lenient")]
    pub snapshot_resource_group_id: Option<String>,
    /// The source cluster.
    #[serde(deserialize_with = "lenient")]
    pub source_cluster_id: Option<String>,
    /// The target cluster.
    #[serde(deserialize_with = "lenient")]
    pub target_cluster_id: Option<String>,
    /// The target's region.
    #[serde(deserialize_with = "lenient")]
    pub target_location: Option<String>,
    /// The target's control-plane identity.
    #[serde(deserialize_with = "lenient")]
    pub target_principal_id: Option<String>,
    /// The chosen recovery point.
    #[serde(deserialize_with = "lenient")]
    pub recovery_point: Option<RecoveryPoint>,
    /// The policy's backup interval in seconds.
    #[serde(deserialize_with = "lenient")]
    pub policy_interval_seconds: Option<u64>,
    /// Findings gathered before verification.
    #[serde(deserialize_with = "lenient")]
    pub findings: Vec<Finding>,
    /// Namespaces the service created before the restore.
    #[serde(deserialize_with = "lenient")]
    pub created_namespaces: Vec<String>,
    /// The restore job's name.
    #[serde(rename = "restoreJobId", deserialize_with = "lenient")]
    pub job_id: Option<String>,
    /// When the restore was triggered.
    #[serde(deserialize_with = "lenient_time", serialize_with = "time_fact")]
    pub triggered_at: Option<OffsetDateTime>,
    /// The finished job.
    #[serde(deserialize_with = "lenient")]
    pub job: Option<Job>,
    /// When the job finished.
    #[serde(deserialize_with = "lenient_time", serialize_with = "time_fact")]
    pub job_finished_at: Option<OffsetDateTime>,
    /// The verification.
    #[serde(deserialize_with = "lenient")]
    pub verification: Option<Verification>,
    /// What each target namespace held when verified.
    #[serde(deserialize_with = "lenient")]
    pub namespace_contents: Vec<(String, NamespaceContents)>,
    /// The source namespaces' inventory at verification, when readable.
    #[serde(deserialize_with = "lenient")]
    pub source_namespace_contents: Option<Vec<(String, NamespaceContents)>>,
    /// When verification finished.
    #[serde(deserialize_with = "lenient_time", serialize_with = "time_fact")]
    pub verified_at: Option<OffsetDateTime>,
    /// When a drill's application probes were started.
    #[serde(deserialize_with = "lenient_time", serialize_with = "time_fact")]
    pub probes_started_at: Option<OffsetDateTime>,
    /// Why the run stopped early.
    #[serde(deserialize_with = "lenient")]
    pub aborted: Option<String>,
    /// Scratch namespace cleanup.
    #[serde(deserialize_with = "lenient")]
    pub cleanup: Option<Cleanup>,
    /// When cleanup finished.
    #[serde(deserialize_with = "lenient_time", serialize_with = "time_fact")]
    pub cleaned_up_at: Option<OffsetDateTime>,
}

/// A time fact (RFC 3339), or `None` when it is missing or not such a time.
fn lenient_time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<OffsetDateTime>, D::Error> {
    let value = Value::deserialize(d)?;
    Ok(value.as_str().and_then(|t| {
        OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
    }))
}

/// A time fact as the steps write it ([`super::time_fact`]).
fn time_fact<S: Serializer>(at: &Option<OffsetDateTime>, s: S) -> Result<S::Ok, S::Error> {
    at.map(super::time_fact).serialize(s)
}

/// Accessors for the facts a step cannot do without: typed ones (missing or unreadable) and
/// strings (missing or empty), each a permanent error naming the fact.
macro_rules! needed {
    (
        typed { $($(#[doc = $tdoc:literal])* $typed:ident: $ty:ty = $tkey:path;)+ }
        text { $($(#[doc = $doc:literal])* $text:ident = $key:path;)+ }
    ) => {
        $(
            $(#[doc = $tdoc])*
            ///
            /// # Errors
            /// A permanent error when it is missing or unreadable.
            pub fn $typed(&self) -> Result<&$ty, StepError> {
                self.need($tkey, self.$typed.as_ref())
            }
        )+
        $(
            $(#[doc = $doc])*
            ///
            /// # Errors
            /// A permanent error when no earlier step recorded it.
            pub fn $text(&self) -> Result<String, StepError> {
                self.need_text($key, self.$text.as_ref())
            }
        )+
    };
}

impl RestoreFacts {
    /// The facts in `env`'s payload.
    pub fn of(env: &Envelope) -> Self {
        let mut facts: Self = typed(env);
        facts.step.clone_from(&env.step);
        facts
    }

    /// A string fact the step cannot do without.
    fn need_text(&self, key: &str, value: Option<&String>) -> Result<String, StepError> {
        present(&self.step, key, value.map(String::as_str))
    }

    /// A typed fact the step cannot do without.
    fn need<'a, T>(&self, key: &str, value: Option<&'a T>) -> Result<&'a T, StepError> {
        value.ok_or_else(|| StepError::Permanent {
            reason: format!(
                "step `{}` needs the fact `{key}`, which no earlier step recorded",
                self.step
            ),
        })
    }

    /// An id fact.
    fn id(&self, key: &str, value: Option<&String>) -> Result<ResourceId, StepError> {
        let raw = self.need_text(key, value)?;
        ResourceId::parse(&raw).map_err(|e| StepError::Permanent {
            reason: format!("the fact `{key}` is unusable: {e}"),
        })
    }

    needed! {
        typed {
            /// The restore request the workflow carries.
            request: RestoreRequest = keys::REQUEST;
            /// The drill plan.
            plan: DrillPlan = keys::PLAN;
            /// The chosen recovery point.
            recovery_point: RecoveryPoint = keys::RECOVERY_POINT;
            /// The finished restore job.
            job: Job = keys::JOB;
        }
        text {
            /// The backup instance.
            backup_instance_id = shared::BACKUP_INSTANCE_ID;
            /// The vault.
            vault_id = shared::VAULT_ID;
            /// The policy.
            policy_id = shared::POLICY_ID;
            /// The snapshot resource group.
            snapshot_resource_group_id = shared::SNAPSHOT_RESOURCE_GROUP_ID;
            /// The target cluster, as recorded.
            target_cluster_id = keys::TARGET_CLUSTER_ID;
            /// The target's region.
            target_location = keys::TARGET_LOCATION;
            /// The target's control-plane identity.
            target_principal_id = keys::TARGET_PRINCIPAL_ID;
            /// The restore job's name.
            job_id = keys::JOB_ID;
        }
    }

    /// The target cluster.
    ///
    /// # Errors
    /// A permanent error when it is missing or not an ARM id.
    pub fn target_cluster(&self) -> Result<ResourceId, StepError> {
        self.id(keys::TARGET_CLUSTER_ID, self.target_cluster_id.as_ref())
    }

    /// The source cluster.
    ///
    /// # Errors
    /// A permanent error when it is missing or not an ARM id.
    pub fn source_cluster(&self) -> Result<ResourceId, StepError> {
        self.id(keys::SOURCE_CLUSTER_ID, self.source_cluster_id.as_ref())
    }

    /// The findings gathered so far, with `more` added (each once), as a fact.
    pub fn findings_with(&self, more: impl IntoIterator<Item = Finding>) -> Value {
        let mut all = self.findings.clone();
        for f in more {
            if !all.contains(&f) {
                all.push(f);
            }
        }
        to_fact(&all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::restoring::RestoreStep;
    use serde_json::json;

    #[test]
    fn the_typed_facts_read_and_write_the_wire_keys() {
        let written = serde_json::to_value(RestoreFacts::default()).unwrap();
        let keys: std::collections::BTreeSet<&str> = written
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, _)| k.as_str())
            .collect();
        let expected = [
            keys::REQUEST,
            keys::REQUESTED_AT,
            keys::PLAN,
            shared::BACKUP_INSTANCE_ID,
            shared::VAULT_ID,
            shared::POLICY_ID,
            shared::SNAPSHOT_RESOURCE_GROUP_ID,
            keys::SOURCE_CLUSTER_ID,
            keys::TARGET_CLUSTER_ID,
            keys::TARGET_LOCATION,
            keys::TARGET_PRINCIPAL_ID,
            keys::RECOVERY_POINT,
            keys::POLICY_INTERVAL_SECONDS,
            keys::FINDINGS,
            keys::CREATED_NAMESPACES,
            keys::JOB_ID,
            keys::TRIGGERED_AT,
            keys::JOB,
            keys::JOB_FINISHED_AT,
            keys::VERIFICATION,
            keys::CONTENTS,
            keys::SOURCE_CONTENTS,
            keys::VERIFIED_AT,
            keys::PROBES_STARTED_AT,
            keys::ABORTED,
            keys::CLEANUP,
            keys::CLEANED_UP_AT,
        ];
        assert_eq!(keys, expected.into_iter().collect());
    }

    fn env(payload: Value) -> Envelope {
        let mut env = Envelope::start(
            crate::envelope::WorkflowKind::Restore,
            "/c",
            "1",
            RestoreStep::Trigger.as_str(),
            "RestoreValidated",
            time::OffsetDateTime::UNIX_EPOCH,
            std::time::Duration::from_secs(60),
        );
        env.payload = payload.as_object().cloned().unwrap_or_default();
        env
    }

    #[test]
    fn each_fact_reads_as_leniently_as_before() {
        // A value of another type counts as absent; an empty string is missing.
        let odd = RestoreFacts::of(&env(json!({
            "vaultId": 7, "triggeredAt": "soon", "requestedAt": 5, "findings": "x",
            "createdNamespaces": [1], "policyIntervalSeconds": -3, "recoveryPoint": {"id": 1},
            "targetLocation": "", "job": null, "unknownKey": {"x": 1},
        })));
        assert_eq!(odd.vault_id, None);
        assert_eq!((odd.triggered_at, odd.requested_at), (None, None));
        assert!(odd.findings.is_empty() && odd.created_namespaces.is_empty());
        assert_eq!(odd.policy_interval_seconds, None);
        let missing = odd.target_location().unwrap_err().to_string();
        assert!(
            missing.contains("step `restore_trigger` needs the fact `targetLocation`"),
            "{missing}"
        );
        let point = odd.recovery_point().unwrap_err().to_string();
        assert!(
            point.contains("step `restore_trigger` needs the fact `recoveryPoint`"),
            "{point}"
        );
        assert!(odd.job().is_err());
        // Well-typed values read as written, times as RFC 3339.
        let good = RestoreFacts::of(&env(json!({
            "vaultId": "/v", "triggeredAt": "2026-01-01T00:00:00Z", "policyIntervalSeconds": 3600,
            "createdNamespaces": ["a"], "findings": [{"level": "pass", "message": "m"}],
            "recoveryPoint": {"id": "rp", "time": "2026-01-01T00:00:00Z"},
            "targetClusterId": "not an id",
        })));
        assert_eq!(good.vault_id().unwrap(), "/v");
        assert_eq!(
            good.triggered_at,
            Some(time::macros::datetime!(2026-01-01 00:00 UTC))
        );
        assert_eq!(good.policy_interval_seconds, Some(3600));
        assert_eq!(good.created_namespaces, ["a"]);
        assert_eq!(good.recovery_point().unwrap().id, "rp");
        assert!(
            good.target_cluster()
                .unwrap_err()
                .to_string()
                .contains("the fact `targetClusterId` is unusable")
        );
        // Findings are added once each.
        let f = Finding::info("m");
        let more = good.findings_with([f.clone(), Finding::info("n")]);
        assert_eq!(more.as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn times_are_written_as_the_steps_write_them() {
        let at = time::macros::datetime!(2026-01-01 00:00 UTC);
        let facts = RestoreFacts {
            triggered_at: Some(at),
            ..RestoreFacts::default()
        };
        let written = serde_json::to_value(&facts).unwrap();
        assert_eq!(written[keys::TRIGGERED_AT], super::super::time_fact(at));
        assert_eq!(written[keys::VERIFIED_AT], Value::Null);
    }
}

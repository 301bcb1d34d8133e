//! Data Protection jobs (`AzureBackupJobResource`, 2023-11-01) as the restore side reads them:
//! status classified into running / terminal, errors and warnings flattened to code and message,
//! and the restore item counts when the job reports them. Parsing is lenient about optional
//! fields and strict about the ones a decision depends on.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// `operationCategory` of restore jobs.
pub const RESTORE_CATEGORY: &str = "Restore";

/// `extendedInfo.additionalDetails` key for how many items a restore brought back. The
/// published spec leaves `additionalDetails` free-form; these two keys are what this service
/// reads when present (and what the local ARM stand-in writes). Verification never depends on
/// them alone: it counts what the target namespaces hold.
pub const ITEMS_RESTORED_KEY: &str = "ItemsRestored";
/// `extendedInfo.additionalDetails` key for how many items the restore attempted.
pub const TOTAL_ITEMS_KEY: &str = "TotalItems";

/// Where a job stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", content = "raw", rename_all = "camelCase")]
pub enum JobStatus {
    /// Not finished (`InProgress`, `Started`, `Cancelling`, ...).
    Running(String),
    /// Finished well (`Completed`, `Success`).
    Completed,
    /// Finished with warnings (`CompletedWithWarnings`, `SuccessWithWarning`).
    CompletedWithWarnings,
    /// Finished badly.
    Failed,
    /// Cancelled.
    Cancelled,
}

impl JobStatus {
    /// Classifies the free-form `status` string (the spec lists
    /// InProgress/Success/Failed/Cancelled/SuccessWithWarning; the service also answers
    /// Started, Completed and CompletedWithWarnings).
    pub fn classify(raw: &str) -> Self {
        match raw.to_ascii_lowercase().as_str() {
            "completed" | "success" | "succeeded" => Self::Completed,
            "completedwithwarnings" | "successwithwarning" | "successwithwarnings" => {
                Self::CompletedWithWarnings
            }
            "failed" => Self::Failed,
            "cancelled" | "canceled" => Self::Cancelled,
            _ => Self::Running(raw.to_string()),
        }
    }

    /// True once the job will not change any more.
    pub fn is_terminal(&self) -> bool {
        !matches!(self, Self::Running(_))
    }
}

/// An error or warning the job reports (`UserFacingError`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobIssue {
    /// The error code, e.g. `UserErrorNamespaceNotFound`.
    pub code: String,
    /// The message.
    pub message: String,
    /// What the service recommends.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recommended_action: Vec<String>,
}

/// Restore item counts, when the job reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemCounts {
    /// Items restored.
    pub restored: u64,
    /// Items attempted.
    pub total: u64,
}

/// One job, as far as restores care.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    /// The job's ARM id.
    pub id: String,
    /// The job's name (a GUID).
    pub name: String,
    /// `Backup`, `Restore`, ...
    pub operation_category: String,
    /// The backup instance it belongs to.
    pub backup_instance_id: Option<String>,
    /// The raw status.
    pub status_text: String,
    /// The classified status.
    pub status: JobStatus,
    /// When it started.
    #[serde(with = "time::serde::rfc3339")]
    pub start_time: OffsetDateTime,
    /// When it ended.
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub end_time: Option<OffsetDateTime>,
    /// Errors.
    #[serde(default)]
    pub errors: Vec<JobIssue>,
    /// Warnings.
    #[serde(default)]
    pub warnings: Vec<JobIssue>,
    /// Restore item counts.
    #[serde(default)]
    pub items: Option<ItemCounts>,
    /// `extendedInfo.recoveryDestination`.
    #[serde(default)]
    pub recovery_destination: Option<String>,
    /// `extendedInfo.sourceRecoverPoint.recoveryPointID`.
    #[serde(default)]
    pub recovery_point_id: Option<String>,
}

/// Why a job body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    /// A field a decision depends on is missing or malformed.
    #[error("the backup job {job} cannot be read: {problem}")]
    ReadJob {
        /// The job's id or name, if known.
        job: String,
        /// What is wrong.
        problem: String,
    },
}

fn issue(v: &Value) -> JobIssue {
    let text = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default();
    JobIssue {
        code: text("code").to_string(),
        message: text("message").to_string(),
        recommended_action: v
            .get("recommendedAction")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default(),
    }
}

fn count(details: Option<&Value>, key: &str) -> Option<u64> {
    let raw = details?.get(key)?;
    raw.as_u64()
        .or_else(|| raw.as_str().and_then(|s| s.trim().parse().ok()))
}

impl Job {
    /// Reads an `AzureBackupJobResource`.
    ///
    /// # Errors
    /// [`JobError::ReadJob`] when the name, status, category or start time is missing or
    /// malformed.
    pub fn from_arm(resource: &Value) -> Result<Self, JobError> {
        let name = resource
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let id = resource
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let fail = |problem: &str| JobError::ReadJob {
            job: if name.is_empty() {
                id.clone()
            } else {
                name.clone()
            },
            problem: problem.to_string(),
        };
        if name.is_empty() {
            return Err(fail("it has no name"));
        }
        let props = resource
            .get("properties")
            .ok_or_else(|| fail("it has no properties"))?;
        let text = |k: &str| props.get(k).and_then(Value::as_str);
        let status_text = text("status").ok_or_else(|| fail("properties.status is missing"))?;
        let operation_category = text("operationCategory")
            .ok_or_else(|| fail("properties.operationCategory is missing"))?;
        let start_time = text("startTime")
            .ok_or_else(|| fail("properties.startTime is missing"))
            .and_then(|t| {
                OffsetDateTime::parse(t, &Rfc3339)
                    .map_err(|e| fail(&format!("properties.startTime {t:?}: {e}")))
            })?;
        let end_time = text("endTime").and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok());
        let extended = props.get("extendedInfo");
        let details = extended.and_then(|e| e.get("additionalDetails"));
        let items = match (
            count(details, ITEMS_RESTORED_KEY),
            count(details, TOTAL_ITEMS_KEY),
        ) {
            (Some(restored), Some(total)) => Some(ItemCounts { restored, total }),
            _ => None,
        };
        Ok(Self {
            id,
            name: name.clone(),
            operation_category: operation_category.to_string(),
            backup_instance_id: text("backupInstanceId").map(String::from),
            status_text: status_text.to_string(),
            status: JobStatus::classify(status_text),
            start_time,
            end_time,
            errors: props
                .get("errorDetails")
                .and_then(Value::as_array)
                .map(|a| a.iter().map(issue).collect())
                .unwrap_or_default(),
            warnings: extended
                .and_then(|e| e.get("warningDetails"))
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .map(|w| issue(w.get("warning").unwrap_or(&Value::Null)))
                        .collect()
                })
                .unwrap_or_default(),
            items,
            recovery_destination: extended
                .and_then(|e| e.get("recoveryDestination"))
                .and_then(Value::as_str)
                .map(String::from),
            recovery_point_id: extended
                .and_then(|e| e.pointer("/sourceRecoverPoint/recoveryPointID"))
                .and_then(Value::as_str)
                .map(String::from),
        })
    }

    /// True for restore jobs.
    pub fn is_restore(&self) -> bool {
        self.operation_category
            .eq_ignore_ascii_case(RESTORE_CATEGORY)
    }

    /// True when the job belongs to `backup_instance_id` (compared case-insensitively).
    pub fn belongs_to(&self, backup_instance_id: &str) -> bool {
        self.backup_instance_id
            .as_deref()
            .is_some_and(|b| b.eq_ignore_ascii_case(backup_instance_id))
    }
}

/// Lists the jobs of backup vault `vault` (`Jobs_List`): the readable ones, and the errors
/// of those that could not be read.
///
/// # Errors
/// ARM's answer to the list.
pub async fn list_vault_jobs(
    arm: &crate::arm::ArmClient,
    vault: &str,
) -> Result<(Vec<Job>, Vec<JobError>), crate::arm::ArmError> {
    let listed = arm
        .list(
            &format!("{vault}/backupJobs"),
            crate::arm::versions::BACKUP_INSTANCES,
            &[],
        )
        .await?;
    Ok(jobs_from_list(&listed))
}

/// Reads every job of a `Jobs_List` answer that can be read; the others are returned as
/// errors so callers can report them without losing the rest.
pub fn jobs_from_list(items: &[Value]) -> (Vec<Job>, Vec<JobError>) {
    let mut jobs = Vec::new();
    let mut errors = Vec::new();
    for item in items {
        match Job::from_arm(item) {
            Ok(job) => jobs.push(job),
            Err(e) => errors.push(e),
        }
    }
    (jobs, errors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(status: &str) -> Value {
        json!({
            "id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.DataProtection/backupVaults/v/backupJobs/j1",
            "name": "j1",
            "type": "Microsoft.DataProtection/backupVaults/backupJobs",
            "properties": {
                "activityID": "a", "subscriptionId": "s", "dataSourceId": "/x", "vaultName": "v",
                "backupInstanceFriendlyName": "aks1", "sourceResourceGroup": "rg", "dataSourceName": "aks1",
                "progressEnabled": false, "sourceSubscriptionID": "s", "dataSourceLocation": "westeurope",
                "startTime": "2026-01-01T10:00:00Z", "endTime": "2026-01-01T10:04:00Z",
                "dataSourceType": "Microsoft.ContainerService/managedClusters",
                "operationCategory": "Restore", "operation": "Restore", "status": status,
                "isUserTriggered": true, "supportedActions": [],
                "backupInstanceId": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.DataProtection/backupVaults/v/backupInstances/BI1",
                "errorDetails": [{"code": "UserErrorNamespaceNotFound", "message": "namespace app not found", "recommendedAction": ["create it"]}],
                "extendedInfo": {
                    "additionalDetails": {"ItemsRestored": "7", "TotalItems": "9"},
                    "warningDetails": [{"resourceName": "app/cm", "warning": {"code": "W1", "message": "skipped"}}],
                    "sourceRecoverPoint": {"recoveryPointID": "rp1", "recoveryPointTime": "2026-01-01T00:00:00Z"}
                }
            }
        })
    }

    #[test]
    fn a_restore_job_is_read_with_its_details() {
        let j = Job::from_arm(&job("Failed")).unwrap();
        assert_eq!(j.status, JobStatus::Failed);
        assert!(j.is_restore());
        assert!(j.belongs_to("/subscriptions/S/resourceGroups/rg/providers/Microsoft.DataProtection/backupVaults/v/backupInstances/bi1"));
        assert_eq!(j.errors[0].code, "UserErrorNamespaceNotFound");
        assert_eq!(j.errors[0].recommended_action, vec!["create it"]);
        assert_eq!(j.warnings[0].code, "W1");
        assert_eq!(
            j.items,
            Some(ItemCounts {
                restored: 7,
                total: 9
            })
        );
        assert_eq!(j.recovery_point_id.as_deref(), Some("rp1"));
    }

    #[test]
    fn statuses_are_classified() {
        for (raw, terminal) in [
            ("InProgress", false),
            ("Started", false),
            ("Completed", true),
            ("Success", true),
            ("SuccessWithWarning", true),
            ("Failed", true),
            ("Cancelled", true),
        ] {
            assert_eq!(JobStatus::classify(raw).is_terminal(), terminal, "{raw}");
        }
        assert_eq!(
            JobStatus::classify("SuccessWithWarning"),
            JobStatus::CompletedWithWarnings
        );
    }

    #[test]
    fn unreadable_jobs_are_named_and_the_rest_kept() {
        let mut broken = job("Completed");
        broken["properties"]["startTime"] = json!("soon");
        let (jobs, errors) = jobs_from_list(&[job("Completed"), broken]);
        assert_eq!(jobs.len(), 1);
        assert!(errors[0].to_string().contains("startTime"), "{}", errors[0]);
    }
}

//! The live view of one cluster, read now, as the guide's command reference shows it: the
//! backup extension's state and identity, backup instances with their protection state,
//! recovery points and recent jobs (ARM), and the backup CRDs and extension pods (the cluster,
//! through the extension health gate). An unreadable part says why and what to do. The view
//! is read by `plan::live::gather` (it needs the workflows' placement and verdicts) and
//! printed by [`super::render`].

use serde::Serialize;

/// How many recovery points and jobs are shown per backup instance.
pub const RECENT: usize = 5;

/// A part of the view that could not be read: why, and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Unavailable {
    /// What went wrong.
    pub error: String,
    /// What to do, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

/// A part of the view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Section<T> {
    /// Read.
    Shown(T),
    /// Not readable.
    Unavailable(Unavailable),
}

/// The backup extension as ARM reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExtensionView {
    /// Its id.
    pub id: String,
    /// `provisioningState`.
    pub provisioning_state: String,
    /// `aksAssignedIdentity.principalId`.
    pub principal_id: Option<String>,
    /// The installed version.
    pub version: Option<String>,
}

/// One recovery point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecoveryPointView {
    /// Its id.
    pub id: String,
    /// When it was taken.
    pub time: String,
    /// `recoveryPointType`.
    pub kind: String,
}

/// One job of the vault for the instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobView {
    /// Its name.
    pub name: String,
    /// `operationCategory` (Backup, Restore, ...).
    pub operation: String,
    /// `status`.
    pub status: String,
    /// `startTime`.
    pub start_time: Option<String>,
    /// `duration`.
    pub duration: Option<String>,
    /// `errorDetails`, one line.
    pub error: Option<String>,
}

/// One backup instance protecting the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceView {
    /// Its id.
    pub id: String,
    /// `currentProtectionState`.
    pub protection_state: String,
    /// `protectionStatus.status`.
    pub protection_status: Option<String>,
    /// The protection error with its advice, if any.
    pub error: Option<String>,
    /// Newest first.
    pub recovery_points: Section<Vec<RecoveryPointView>>,
    /// Newest first.
    pub jobs: Section<Vec<JobView>>,
}

/// One hook CRD.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CrdView {
    /// Its name.
    pub name: String,
    /// Whether it is established.
    pub established: bool,
}

/// One extension pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodView {
    /// Its name.
    pub name: String,
    /// Running and Ready.
    pub ready: bool,
    /// Why not, when not.
    pub reason: Option<String>,
}

/// What the cluster itself shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KubeView {
    /// The backup CRDs.
    pub crds: Vec<CrdView>,
    /// The extension's pods.
    pub pods: Vec<PodView>,
    /// The extension health gate is open.
    pub ready: bool,
}

/// Something live that needs a person, with what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    /// What is wrong.
    pub problem: String,
    /// What to do.
    pub fix: String,
}

/// The live view of one cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LiveView {
    /// The cluster.
    pub cluster: String,
    /// Its region.
    pub location: String,
    /// The vault onboarding uses for it.
    pub vault: String,
    /// The backup extension (`None`: not installed).
    pub extension: Section<Option<ExtensionView>>,
    /// The instances protecting the cluster in that vault.
    pub backup_instances: Section<Vec<InstanceView>>,
    /// The backup CRDs and extension pods.
    pub kubernetes: Section<KubeView>,
    /// What needs a person.
    pub problems: Vec<Problem>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sections_serialize_as_the_value_or_the_reason() {
        let shown: Section<Vec<u8>> = Section::Shown(vec![1]);
        assert_eq!(serde_json::to_value(&shown).unwrap(), json!([1]));
        let missing: Section<Vec<u8>> = Section::Unavailable(Unavailable {
            error: "denied".into(),
            fix: Some("grant".into()),
        });
        assert_eq!(
            serde_json::to_value(&missing).unwrap(),
            json!({"error": "denied", "fix": "grant"})
        );
    }
}

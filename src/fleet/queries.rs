//! The two Azure Resource Graph queries a fleet sweep sends, and their rows.
//!
//! One sweep costs two queries whatever the fleet's size (pages of up to 1,000 rows each):
//! [`CLUSTERS`] lists every managed cluster in scope with the state of its backup extension
//! (`resources` joined with `kubernetesconfigurationresources`, the one cross-table join a
//! query may have), and [`PROTECTION`] lists, per cluster, its backup instance, the newest
//! completed backup job and how many of the service's role assignments name it
//! (`recoveryservicesresources` joined with `authorizationresources`). Resource Graph is an
//! index that lags ARM, so these rows only decide which clusters need a workflow; the
//! workflow's own ARM reads stay the truth.

use serde::Deserialize;
use serde_json::Value;
use time::OffsetDateTime;

/// Every managed cluster in scope, with its backup extension's provisioning state.
pub const CLUSTERS: &str = "resources
| where type =~ 'microsoft.containerservice/managedclusters'
| extend clusterKey = tolower(id)
| join kind=leftouter (
    kubernetesconfigurationresources
    | where type =~ 'microsoft.kubernetesconfiguration/extensions'
    | where properties.extensionType =~ 'microsoft.dataprotection.kubernetes'
    | project clusterKey = tostring(split(tolower(id), '/providers/microsoft.kubernetesconfiguration/')[0]), extensionState = tostring(properties.provisioningState)
  ) on clusterKey
| project id, name, location, subscriptionId, resourceGroup, tags, provisioningState = tostring(properties.provisioningState), extensionState
| order by id asc";

/// Per protected cluster: its backup instance and protection status, the newest completed
/// backup, and the count of the service's role assignments made for it.
pub const PROTECTION: &str = "recoveryservicesresources
| where type in~ ('microsoft.dataprotection/backupvaults/backupinstances', 'microsoft.dataprotection/backupvaults/backupjobs')
| extend isInstance = type =~ 'microsoft.dataprotection/backupvaults/backupinstances'
| extend clusterKey = tolower(tostring(iff(isInstance, properties.dataSourceInfo.resourceID, properties.dataSourceId)))
| summarize backupInstance = anyif(id, isInstance), protectionStatus = anyif(tostring(properties.protectionStatus.status), isInstance), policyId = anyif(tostring(properties.policyInfo.policyId), isInstance), lastBackup = maxif(todatetime(properties.endTime), not(isInstance) and properties.operationCategory =~ 'Backup' and properties.status =~ 'Completed') by clusterKey
| where isnotempty(backupInstance)
| join kind=leftouter (
    authorizationresources
    | where type =~ 'microsoft.authorization/roleassignments'
    | extend description = tostring(properties.description)
    | where description startswith 'backup-pilot:'
    | extend clusterKey = tolower(extract(' for (/subscriptions/.+)$', 1, description))
    | where isnotempty(clusterKey)
    | summarize roleAssignments = count() by clusterKey
  ) on clusterKey
| project clusterKey, backupInstance, protectionStatus, policyId, lastBackup, roleAssignments
| order by clusterKey asc";

/// A row of [`CLUSTERS`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterRow {
    /// The cluster's resource id.
    pub id: String,
    /// Its name.
    #[serde(default)]
    pub name: String,
    /// Its region.
    #[serde(default)]
    pub location: String,
    /// Its subscription.
    #[serde(default)]
    pub subscription_id: String,
    /// Its resource group.
    #[serde(default)]
    pub resource_group: String,
    /// Its tags (an object, or null).
    #[serde(default)]
    pub tags: Value,
    /// The cluster's `provisioningState`.
    #[serde(default)]
    pub provisioning_state: String,
    /// The backup extension's `provisioningState`; empty when there is no extension.
    #[serde(default, deserialize_with = "string_or_null")]
    pub extension_state: String,
}

/// A row of [`PROTECTION`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProtectionRow {
    /// The protected cluster's id, lower case.
    pub cluster_key: String,
    /// The backup instance's id.
    pub backup_instance: String,
    /// `protectionStatus.status` (e.g. `ProtectionConfigured`, `ProtectionError`).
    #[serde(default, deserialize_with = "string_or_null")]
    pub protection_status: String,
    /// The backup policy's id.
    #[serde(default, deserialize_with = "string_or_null")]
    pub policy_id: String,
    /// When the newest completed backup job ended, if any.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_backup: Option<OffsetDateTime>,
    /// How many of the service's role assignments name this cluster (null: none).
    #[serde(default, deserialize_with = "count_or_null")]
    pub role_assignments: u32,
}

fn string_or_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

fn count_or_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    Ok(Option::<u32>::deserialize(d)?.unwrap_or(0))
}

/// The same query text, compared as Resource Graph would see it: whitespace runs are one
/// space, case is kept (string literals are case-sensitive).
pub fn normalize(query: &str) -> String {
    query.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rows_read_nulls_as_absent() {
        let row: ClusterRow = serde_json::from_value(json!({
            "id": "/subscriptions/s/resourceGroups/r/providers/Microsoft.ContainerService/managedClusters/c",
            "name": "c", "location": "westeurope", "subscriptionId": "s", "resourceGroup": "r",
            "tags": null, "provisioningState": "Succeeded", "extensionState": null
        }))
        .unwrap();
        assert_eq!(row.extension_state, "");
        let row: ProtectionRow = serde_json::from_value(json!({
            "clusterKey": "/subscriptions/s/resourcegroups/r/providers/microsoft.containerservice/managedclusters/c",
            "backupInstance": "/subscriptions/s/.../backupInstances/bi",
            "protectionStatus": "ProtectionConfigured", "policyId": "/p",
            "lastBackup": "2026-03-01T02:10:00Z", "roleAssignments": null
        }))
        .unwrap();
        assert_eq!(row.role_assignments, 0);
        assert!(row.last_backup.is_some());
    }

    #[test]
    fn normalizing_keeps_words_and_literals() {
        assert_eq!(normalize("a\n|  where x =~ 'B'\n"), "a | where x =~ 'B'");
        assert_ne!(normalize(CLUSTERS), normalize(PROTECTION));
    }
}

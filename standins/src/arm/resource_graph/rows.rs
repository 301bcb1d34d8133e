//! What the index holds and the rows of the two known queries. [`Documents::capture`] reads
//! the world into per-subscription documents (clusters with their backup extension's state,
//! backup instances, completed backup jobs, the service's role assignments); the rows are then
//! computed for a scope as the KQL of `backup_pilot::fleet::queries` computes them: the scope filters
//! each table before the join, `CLUSTERS` is ordered by `id`, `PROTECTION` by `clusterKey`.
//! Where the KQL picks "any" value (`anyif` over several backup instances of one cluster) the
//! stand-in takes the instance with the smallest id.
//!
//! Permission trimming ([`Documents::readable_rows`]): every document carries the id and the
//! read action a caller needs for it ([`CLUSTER_READ`] and so on); documents the caller may
//! not read are dropped from their table before the query runs, as Resource Graph trims each
//! table (see [`super`]). So a cluster's unreadable extension leaves `extensionState` null as
//! if there were none, an unreadable backup instance drops its row (or leaves another
//! readable instance of the same cluster to `anyif`), `lastBackup` is the newest *readable*
//! completed job and `roleAssignments` counts readable assignments only.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::super::providers::tags_json;
use super::super::state::{World, key};
use super::super::validate::extensions::BACKUP_EXTENSION_TYPE;

/// What reading a managed cluster takes.
pub const CLUSTER_READ: &str = "Microsoft.ContainerService/managedClusters/read";
/// What reading a cluster extension takes.
pub const EXTENSION_READ: &str = "Microsoft.KubernetesConfiguration/extensions/read";
/// What reading a backup instance takes.
pub const INSTANCE_READ: &str = "Microsoft.DataProtection/backupVaults/backupInstances/read";
/// What reading a backup job takes.
pub const JOB_READ: &str = "Microsoft.DataProtection/backupVaults/backupJobs/read";
/// What reading a role assignment takes.
pub const ASSIGNMENT_READ: &str = "Microsoft.Authorization/roleAssignments/read";

/// The mark the service puts at the start of its role assignments' descriptions.
const DESCRIPTION_MARK: &str = "backup-pilot:";

/// Which of the two known queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QueryKind {
    /// `backup_pilot::fleet::queries::CLUSTERS`.
    Clusters,
    /// `backup_pilot::fleet::queries::PROTECTION`.
    Protection,
}

impl QueryKind {
    /// The kind of `query` (compared after collapsing whitespace), if it is a known one.
    pub fn of(query: &str) -> Option<Self> {
        use backup_pilot::fleet::queries::{CLUSTERS, PROTECTION, normalize};
        let given = normalize(query);
        if given == normalize(CLUSTERS) {
            Some(Self::Clusters)
        } else if given == normalize(PROTECTION) {
            Some(Self::Protection)
        } else {
            None
        }
    }

    /// A stable label (for skip tokens).
    pub fn label(self) -> &'static str {
        match self {
            Self::Clusters => "CLUSTERS",
            Self::Protection => "PROTECTION",
        }
    }
}

#[derive(Debug, Clone)]
struct ClusterDoc {
    sub: String,
    id: String,
    /// The row, `extensionState` null.
    row: Value,
    /// The backup extension's id and provisioning state.
    extension: Option<(String, String)>,
}

#[derive(Debug, Clone)]
struct InstanceDoc {
    sub: String,
    id: String,
    cluster_key: String,
    protection_status: String,
    policy_id: String,
}

#[derive(Debug, Clone)]
struct JobDoc {
    sub: String,
    id: String,
    cluster_key: String,
    end: OffsetDateTime,
}

#[derive(Debug, Clone)]
struct AssignmentDoc {
    sub: String,
    id: String,
    cluster_key: String,
}

/// The indexed documents, as of one instant.
#[derive(Debug, Clone, Default)]
pub struct Documents {
    clusters: Vec<ClusterDoc>,
    instances: Vec<InstanceDoc>,
    jobs: Vec<JobDoc>,
    assignments: Vec<AssignmentDoc>,
}

/// The subscription segment of an id, lower case (empty when the id has none).
fn subscription_of(id: &str) -> String {
    let mut segments = id.split('/').filter(|s| !s.is_empty());
    match (segments.next(), segments.next()) {
        (Some(s), Some(sub)) if s.eq_ignore_ascii_case("subscriptions") => sub.to_ascii_lowercase(),
        _ => String::new(),
    }
}

fn text(value: Option<&Value>) -> String {
    value
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// `extract(' for (/subscriptions/.+)$', 1, description)`, lower case.
fn described_cluster(description: &str) -> Option<String> {
    let at = description.find(" for /subscriptions/")?;
    let cluster = &description[at + " for ".len()..];
    (cluster.len() > "/subscriptions/".len()).then(|| cluster.to_ascii_lowercase())
}

fn eq(a: Option<&Value>, b: &str) -> bool {
    a.and_then(Value::as_str)
        .is_some_and(|s| s.eq_ignore_ascii_case(b))
}

impl Documents {
    /// Reads what the two queries need out of the world.
    pub fn capture(world: &World) -> Self {
        let clusters = world
            .clusters
            .values()
            .map(|c| {
                let cluster_key = key(&c.id);
                let extension = world.extensions.values().find(|e| {
                    e.cluster_key == cluster_key
                        && e.extension_type.eq_ignore_ascii_case(BACKUP_EXTENSION_TYPE)
                });
                ClusterDoc {
                    sub: c.sub.to_ascii_lowercase(),
                    id: c.id.clone(),
                    row: json!({
                        "id": c.id,
                        "name": c.name,
                        "location": c.location,
                        "subscriptionId": c.sub,
                        // Resource Graph lower-cases resource group names (azd #115, ARI #144).
                        "resourceGroup": c.rg.to_ascii_lowercase(),
                        "tags": tags_json(Some(&c.desired.tags)),
                        "provisioningState": c.provisioning_state,
                        "extensionState": Value::Null,
                    }),
                    extension: extension.map(|e| (e.id.clone(), e.provisioning_state.clone())),
                }
            })
            .collect();
        let instances = world
            .instances
            .values()
            .map(|i| InstanceDoc {
                sub: subscription_of(&i.id),
                id: i.id.clone(),
                cluster_key: text(
                    i.properties
                        .get("dataSourceInfo")
                        .and_then(|d| d.get("resourceID")),
                )
                .to_ascii_lowercase(),
                protection_status: i.protection_status.clone(),
                policy_id: text(
                    i.properties
                        .get("policyInfo")
                        .and_then(|p| p.get("policyId")),
                ),
            })
            .collect();
        let jobs = world
            .jobs
            .values()
            .filter(|j| {
                eq(j.properties.get("operationCategory"), "Backup")
                    && eq(j.properties.get("status"), "Completed")
            })
            .filter_map(|j| {
                let end = j.properties.get("endTime").and_then(Value::as_str)?;
                Some(JobDoc {
                    sub: subscription_of(&j.id),
                    id: j.id.clone(),
                    cluster_key: text(j.properties.get("dataSourceId")).to_ascii_lowercase(),
                    end: OffsetDateTime::parse(end, &Rfc3339).ok()?,
                })
            })
            .collect();
        let assignments = world
            .role_assignments
            .values()
            .filter_map(|a| {
                let description = a.description.as_deref()?;
                let marked = description
                    .get(..DESCRIPTION_MARK.len())
                    .is_some_and(|p| p.eq_ignore_ascii_case(DESCRIPTION_MARK));
                marked.then_some(())?;
                Some(AssignmentDoc {
                    sub: subscription_of(&a.scope),
                    id: a.id(),
                    cluster_key: described_cluster(description)?,
                })
            })
            .collect();
        Self {
            clusters,
            instances,
            jobs,
            assignments,
        }
    }

    /// The rows of `kind` over the subscriptions in `scope` (lower case), untrimmed.
    pub fn rows(&self, kind: QueryKind, scope: &BTreeSet<String>) -> Vec<Value> {
        self.readable_rows(kind, scope, &mut |_, _| true)
    }

    /// The rows of `kind` over `scope` for a caller who may read a document when
    /// `may_read(action, id)` says so. Asked only for documents that can change the rows:
    /// a cluster's extension once the cluster is readable; the jobs and role assignments
    /// of clusters that keep a readable backup instance, jobs newest first until one is
    /// readable.
    pub fn readable_rows(
        &self,
        kind: QueryKind,
        scope: &BTreeSet<String>,
        may_read: &mut dyn FnMut(&str, &str) -> bool,
    ) -> Vec<Value> {
        match kind {
            QueryKind::Clusters => self.clusters(scope, may_read),
            QueryKind::Protection => self.protection(scope, may_read),
        }
    }

    fn clusters(
        &self,
        scope: &BTreeSet<String>,
        may_read: &mut dyn FnMut(&str, &str) -> bool,
    ) -> Vec<Value> {
        let mut docs: Vec<&ClusterDoc> = self
            .clusters
            .iter()
            .filter(|c| scope.contains(&c.sub))
            .collect();
        docs.sort_by(|a, b| a.id.cmp(&b.id));
        let mut rows = Vec::new();
        for c in docs {
            if !may_read(CLUSTER_READ, &c.id) {
                continue;
            }
            let mut row = c.row.clone();
            if let Some((id, state)) = &c.extension
                && may_read(EXTENSION_READ, id)
            {
                row["extensionState"] = json!(state);
            }
            rows.push(row);
        }
        rows
    }

    fn protection(
        &self,
        scope: &BTreeSet<String>,
        may_read: &mut dyn FnMut(&str, &str) -> bool,
    ) -> Vec<Value> {
        let mut in_scope: Vec<&InstanceDoc> = self
            .instances
            .iter()
            .filter(|i| scope.contains(&i.sub))
            .collect();
        in_scope.sort_by(|a, b| a.id.cmp(&b.id));
        let mut instances: BTreeMap<&str, &InstanceDoc> = BTreeMap::new();
        for i in in_scope {
            if instances.contains_key(i.cluster_key.as_str()) || !may_read(INSTANCE_READ, &i.id) {
                continue;
            }
            instances.insert(i.cluster_key.as_str(), i);
        }
        let mut jobs: Vec<&JobDoc> = self
            .jobs
            .iter()
            .filter(|j| scope.contains(&j.sub) && instances.contains_key(j.cluster_key.as_str()))
            .collect();
        jobs.sort_by(|a, b| b.end.cmp(&a.end).then_with(|| a.id.cmp(&b.id)));
        let mut last_backup: BTreeMap<&str, OffsetDateTime> = BTreeMap::new();
        for j in jobs {
            if last_backup.contains_key(j.cluster_key.as_str()) || !may_read(JOB_READ, &j.id) {
                continue;
            }
            last_backup.insert(j.cluster_key.as_str(), j.end);
        }
        let mut assignments: BTreeMap<&str, u64> = BTreeMap::new();
        for a in self
            .assignments
            .iter()
            .filter(|a| scope.contains(&a.sub) && instances.contains_key(a.cluster_key.as_str()))
        {
            if may_read(ASSIGNMENT_READ, &a.id) {
                *assignments.entry(a.cluster_key.as_str()).or_default() += 1;
            }
        }
        instances
            .into_iter()
            .map(|(cluster_key, i)| {
                json!({
                    "clusterKey": cluster_key,
                    "backupInstance": i.id,
                    "protectionStatus": i.protection_status,
                    "policyId": i.policy_id,
                    "lastBackup": last_backup
                        .get(cluster_key)
                        .map(|t| t.to_offset(time::UtcOffset::UTC).format(&Rfc3339).unwrap_or_default()),
                    "roleAssignments": assignments.get(cluster_key),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_name_the_cluster_after_the_first_for() {
        assert_eq!(
            described_cluster(
                "backup-pilot: vault reads for /subscriptions/S/resourceGroups/R/providers/x/y/C"
            )
            .as_deref(),
            Some("/subscriptions/s/resourcegroups/r/providers/x/y/c")
        );
        assert_eq!(
            described_cluster("backup-pilot: shared by every cluster"),
            None
        );
        assert_eq!(
            described_cluster("backup-pilot: x for /subscriptions/"),
            None
        );
        assert_eq!(
            subscription_of("/subscriptions/ABC/resourceGroups/r"),
            "abc"
        );
        assert_eq!(
            subscription_of("/providers/Microsoft.Management/managementGroups/m"),
            ""
        );
    }

    #[test]
    fn query_kinds_ignore_whitespace_only() {
        use backup_pilot::fleet::queries::{CLUSTERS, PROTECTION};
        assert_eq!(QueryKind::of(CLUSTERS), Some(QueryKind::Clusters));
        let spaced = PROTECTION.replace('\n', "\n\n   ");
        assert_eq!(QueryKind::of(&spaced), Some(QueryKind::Protection));
        assert_eq!(QueryKind::of(&CLUSTERS.replace("asc", "desc")), None);
        assert_eq!(QueryKind::of("resources | take 1"), None);
    }
}

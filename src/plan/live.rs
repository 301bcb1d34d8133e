//! Reads the live view of one cluster ([`crate::status::live::LiveView`]) from ARM and the
//! cluster, with the workflows' own knowledge of where things go (placement) and what their
//! state means (the extension and backup-instance verdicts). Only reads.

use serde_json::Value;

use crate::advice;
use crate::arm::error::known_code_advice;
use crate::arm::versions;
use crate::kube::crds::HOOK_CRD_NAMES;
use crate::kube::health;
use crate::resource_id::ResourceId;
use crate::status::live::{
    CrdView, ExtensionView, InstanceView, JobView, KubeView, LiveView, PodView, Problem, RECENT,
    RecoveryPointView, Section, Unavailable,
};
use crate::workflow::Ctx;
use crate::workflow::bodies::EXTENSION_TYPE;
use crate::workflow::onboarding::model::eligibility::location_of;
use crate::workflow::onboarding::model::extension::{ExtensionVerdict, extension_verdict};
use crate::workflow::onboarding::model::instance::protection_error;
use crate::workflow::placement::{EXTENSION_NAME, Placement, extension_path};

/// Reads the live view. Only reads: ARM GETs, plus `listClusterUserCredential` (a read-only
/// POST) for the kubeconfig when the context's cluster access fetches one from ARM.
///
/// # Errors
/// The cluster itself cannot be read (everything else depends on its region).
pub async fn gather(ctx: &Ctx, cluster: &ResourceId) -> Result<LiveView, Unavailable> {
    let cluster_id = cluster.to_string();
    let body = ctx
        .arm
        .get(&cluster_id, versions::MANAGED_CLUSTERS)
        .await
        .map_err(|e| Unavailable {
            fix: if e.status() == Some(404) {
                Some("check the id (`az aks show -g <group> -n <name> --query id -o tsv`)".into())
            } else {
                advice::for_arm(&e, &cluster_id)
            },
            error: e.to_string(),
        })?;
    let location = location_of(&body).unwrap_or_default();
    let placement = Placement::for_cluster(&ctx.onboarding, cluster, &location);
    let vault = placement.vault_id();
    let mut problems = Vec::new();
    let extension = extension(ctx, cluster, &mut problems).await;
    let backup_instances = instances(ctx, &cluster_id, &vault, &mut problems).await;
    // Without the extension the cluster has no backup CRDs or pods; that problem is named.
    let installed = matches!(extension, Section::Shown(Some(_)));
    let kubernetes = kubernetes(ctx, cluster, installed, &mut problems).await;
    Ok(LiveView {
        cluster: cluster_id,
        location,
        vault,
        extension,
        backup_instances,
        kubernetes,
        problems,
    })
}

fn unavailable_arm<T>(e: &crate::arm::ArmError, path: &str) -> Section<T> {
    Section::Unavailable(Unavailable {
        error: e.to_string(),
        fix: advice::for_arm(e, path),
    })
}

fn onboard_fix(cluster: &str) -> String {
    format!("run: backup-pilot onboard --cluster {cluster}")
}

async fn extension(
    ctx: &Ctx,
    cluster_id: &ResourceId,
    problems: &mut Vec<Problem>,
) -> Section<Option<ExtensionView>> {
    let cluster = &cluster_id.to_string();
    let collection = format!("{cluster}/providers/Microsoft.KubernetesConfiguration/extensions");
    let all = match ctx.arm.list(&collection, versions::EXTENSIONS, &[]).await {
        Ok(all) => all,
        Err(e) if e.has_code("MissingSubscriptionRegistration") => Vec::new(),
        Err(e) => return unavailable_arm(&e, &collection),
    };
    let ours = extension_path(cluster, EXTENSION_NAME);
    let Some(found) = all.into_iter().find(|e| {
        e.pointer("/properties/extensionType")
            .and_then(Value::as_str)
            .is_some_and(|t| t.eq_ignore_ascii_case(EXTENSION_TYPE))
    }) else {
        problems.push(Problem {
            problem: "the backup extension is not installed".into(),
            fix: onboard_fix(cluster),
        });
        return Section::Shown(None);
    };
    let text = |p: &str| found.pointer(p).and_then(Value::as_str).map(str::to_string);
    match extension_verdict(&found, &ours) {
        ExtensionVerdict::Failed(reason) => problems.push(Problem {
            problem: reason,
            fix: format!(
                "run: az k8s-extension delete --name {} --cluster-name {} --resource-group {} --cluster-type managedClusters; then {}",
                text("/name").unwrap_or_else(|| EXTENSION_NAME.into()),
                cluster_id.name().unwrap_or_default(),
                cluster_id.resource_group().unwrap_or_default(),
                onboard_fix(cluster)
            ),
        }),
        ExtensionVerdict::Ready { .. }
        | ExtensionVerdict::Busy(_)
        | ExtensionVerdict::NoIdentity => {}
    }
    Section::Shown(Some(ExtensionView {
        id: text("/id").unwrap_or(ours),
        provisioning_state: text("/properties/provisioningState")
            .unwrap_or_else(|| "Unknown".into()),
        principal_id: text("/properties/aksAssignedIdentity/principalId"),
        version: text("/properties/currentVersion").or_else(|| text("/properties/version")),
    }))
}

async fn instances(
    ctx: &Ctx,
    cluster: &str,
    vault: &str,
    problems: &mut Vec<Problem>,
) -> Section<Vec<InstanceView>> {
    let collection = format!("{vault}/backupInstances");
    let all = match ctx
        .arm
        .list(&collection, versions::BACKUP_INSTANCES, &[])
        .await
    {
        Ok(all) => all,
        Err(e) if e.status() == Some(404) || e.has_code("MissingSubscriptionRegistration") => {
            Vec::new()
        }
        Err(e) => return unavailable_arm(&e, &collection),
    };
    let mine: Vec<Value> = all
        .into_iter()
        .filter(|bi| {
            bi.pointer("/properties/dataSourceInfo/resourceID")
                .and_then(Value::as_str)
                .is_some_and(|r| r.eq_ignore_ascii_case(cluster))
        })
        .collect();
    if mine.is_empty() {
        problems.push(Problem {
            problem: format!("no backup instance protects the cluster in {vault}"),
            fix: onboard_fix(cluster),
        });
        return Section::Shown(Vec::new());
    }
    let jobs_path = format!("{vault}/backupJobs");
    let jobs = ctx
        .arm
        .list(&jobs_path, versions::BACKUP_INSTANCES, &[])
        .await;
    let mut out = Vec::new();
    for bi in mine {
        let text = |p: &str| bi.pointer(p).and_then(Value::as_str).map(str::to_string);
        let id = text("/id").unwrap_or_default();
        let state = text("/properties/currentProtectionState").unwrap_or_else(|| "Unknown".into());
        let error = (state != "ProtectionConfigured"
            && (bi.pointer("/properties/protectionErrorDetails").is_some()
                || bi
                    .pointer("/properties/protectionStatus/errorDetails")
                    .is_some()))
        .then(|| {
            let (code, message) = protection_error(&bi);
            format!("{code}: {message}{}", known_code_advice(&code))
        });
        if state != "ProtectionConfigured" {
            problems.push(Problem {
                problem: format!(
                    "backup instance {id} is {state}{}",
                    error.as_ref().map(|e| format!(": {e}")).unwrap_or_default()
                ),
                fix: if state.starts_with("Configuring") {
                    "nothing yet: protection is being configured; look again in a few minutes"
                        .into()
                } else {
                    onboard_fix(cluster)
                },
            });
        }
        let recovery_points = recovery_points(ctx, &id).await;
        if matches!(&recovery_points, Section::Shown(points) if points.is_empty())
            && state == "ProtectionConfigured"
        {
            problems.push(Problem {
                problem: format!("backup instance {id} has no recovery point yet"),
                fix: format!(
                    "wait for the scheduled backup, or take one now: az dataprotection backup-instance adhoc-backup --ids {id} --rule-name BackupDaily --retention-tag-override Default"
                ),
            });
        }
        let jobs = match &jobs {
            Ok(all) => Section::Shown(jobs_of(all, &id)),
            Err(e) => unavailable_arm(e, &jobs_path),
        };
        if let Section::Shown(list) = &jobs
            && let Some(failed) = list
                .first()
                .filter(|j| j.status.to_ascii_lowercase().contains("fail"))
        {
            problems.push(Problem {
                problem: format!(
                    "the latest {} job {} failed{}",
                    failed.operation,
                    failed.name,
                    failed
                        .error
                        .as_ref()
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default()
                ),
                fix: format!(
                    "run: az dataprotection job show --ids {vault}/backupJobs/{}",
                    failed.name
                ),
            });
        }
        out.push(InstanceView {
            protection_status: text("/properties/protectionStatus/status"),
            id,
            protection_state: state,
            error,
            recovery_points,
            jobs,
        });
    }
    Section::Shown(out)
}

async fn recovery_points(ctx: &Ctx, bi: &str) -> Section<Vec<RecoveryPointView>> {
    let path = format!("{bi}/recoveryPoints");
    match ctx.arm.list(&path, versions::BACKUP_INSTANCES, &[]).await {
        Ok(points) => {
            let mut views: Vec<RecoveryPointView> = points
                .iter()
                .map(|rp| {
                    let text = |p: &str| rp.pointer(p).and_then(Value::as_str).unwrap_or_default();
                    RecoveryPointView {
                        id: Some(text("/properties/recoveryPointId"))
                            .filter(|s| !s.is_empty())
                            .unwrap_or(text("/name"))
                            .to_string(),
                        time: text("/properties/recoveryPointTime").to_string(),
                        kind: text("/properties/recoveryPointType").to_string(),
                    }
                })
                .collect();
            // RFC 3339 times in one zone sort as text.
            views.sort_by(|a, b| b.time.cmp(&a.time));
            views.truncate(RECENT);
            Section::Shown(views)
        }
        Err(e) => unavailable_arm(&e, &path),
    }
}

/// The vault's jobs for instance `bi`, newest first.
fn jobs_of(all: &[Value], bi: &str) -> Vec<JobView> {
    let mut jobs: Vec<JobView> = all
        .iter()
        .filter(|j| {
            j.pointer("/properties/backupInstanceId")
                .and_then(Value::as_str)
                .is_some_and(|b| b.eq_ignore_ascii_case(bi))
        })
        .map(|j| {
            let text = |p: &str| j.pointer(p).and_then(Value::as_str).map(str::to_string);
            let error = j
                .pointer("/properties/errorDetails")
                .and_then(Value::as_array)
                .filter(|errors| !errors.is_empty())
                .map(|errors| {
                    errors
                        .iter()
                        .map(|e| {
                            format!(
                                "{}: {}",
                                e.get("code").and_then(Value::as_str).unwrap_or("?"),
                                e.get("message").and_then(Value::as_str).unwrap_or_default()
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("; ")
                });
            JobView {
                name: text("/name").unwrap_or_default(),
                operation: text("/properties/operationCategory").unwrap_or_default(),
                status: text("/properties/status").unwrap_or_default(),
                start_time: text("/properties/startTime"),
                duration: text("/properties/duration"),
                error,
            }
        })
        .collect();
    jobs.sort_by(|a, b| b.start_time.cmp(&a.start_time));
    jobs.truncate(RECENT);
    jobs
}

async fn kubernetes(
    ctx: &Ctx,
    cluster: &ResourceId,
    extension_installed: bool,
    problems: &mut Vec<Problem>,
) -> Section<KubeView> {
    let cluster_id = cluster.to_string();
    let checked = match ctx.kube.client(cluster).await {
        Ok(client) => health::check(&client).await,
        Err(e) => Err(e),
    };
    let health = match checked {
        Ok(h) => h,
        Err(e) => {
            return Section::Unavailable(Unavailable {
                fix: advice::for_kube(&e, &cluster_id),
                error: e.to_string(),
            });
        }
    };
    if extension_installed && !health.is_ready() {
        problems.push(Problem {
            problem: health.reason(),
            fix: "check the pods: kubectl get pods -n dataprotection-microsoft; kubectl describe pod <name> -n dataprotection-microsoft".into(),
        });
    }
    Section::Shown(KubeView {
        crds: HOOK_CRD_NAMES
            .iter()
            .map(|name| CrdView {
                name: (*name).to_string(),
                established: !health.missing_crds.iter().any(|m| m == name),
            })
            .collect(),
        pods: health
            .pods
            .iter()
            .map(|p| PodView {
                name: p.name.clone(),
                ready: p.not_ready.is_none(),
                reason: p.not_ready.clone(),
            })
            .collect(),
        ready: health.is_ready(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn jobs_are_the_instances_newest_first_with_errors() {
        let bi = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.DataProtection/backupVaults/v/backupInstances/b";
        let job = |name: &str, at: &str, of: &str, status: &str| {
            json!({"name": name, "properties": {"backupInstanceId": of, "operationCategory": "Backup",
                   "status": status, "startTime": at,
                   "errorDetails": if status == "Failed" { json!([{"code": "UserErrorX", "message": "boom"}]) } else { json!([]) }}})
        };
        let all = vec![
            job("old", "2026-03-01T09:00:00Z", bi, "Completed"),
            job("new", "2026-03-02T09:00:00Z", &bi.to_uppercase(), "Failed"),
            job("other", "2026-03-03T09:00:00Z", "/x", "Completed"),
        ];
        let jobs = jobs_of(&all, bi);
        assert_eq!(
            jobs.iter().map(|j| j.name.as_str()).collect::<Vec<_>>(),
            ["new", "old"]
        );
        assert_eq!(jobs[0].error.as_deref(), Some("UserErrorX: boom"));
        assert_eq!(jobs[1].error, None);
    }
}

//! Microsoft.DataProtection 2023-11-01 restore actions for AKS: `validateRestore` and
//! `restore` (POST LROs, `final-state-via: location`), the restore job `restore` leaves
//! (`operationCategory: Restore`, item counts in `extendedInfo.additionalDetails`), and the
//! restore itself, played in the target cluster's Kubernetes stand-in. Prerequisites are
//! checked against the TARGET cluster (extension, trusted access, the vault's and the target
//! cluster identity's roles); at most 10 restores per backup instance per day.

use axum::http::StatusCode;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::super::error::ArmError;
use super::super::lro::{job_extended_info, rfc3339};
use super::super::prerequisites::{self, Phase};
use super::super::response::{ArmResponse, HandlerResult};
use super::super::router::InstancePath;
use super::super::state::{
    InstanceRecord, JobRecord, RecoveryPointRecord, VaultRecord, World, key,
};
use super::super::timings::span;
use super::super::validate::data_protection::InstanceFacts;
use super::super::validate::restore::{self as validate, RestoreFacts};
use super::data_protection::{
    AKS_TYPE, JobKind, instance_id, instance_typed, job_properties, location_url, parent_vault,
    retry_after, start, stored_facts, timespan, vault_status_url,
};
use super::{Ctx, new_guid, same_location};
use crate::kube_api::restore::{RestoreOutcome, RestoreSpec};
use backup_pilot::restore::job::{ITEMS_RESTORED_KEY, TOTAL_ITEMS_KEY};

/// Restores allowed per backup instance per 24 hours (support matrix).
pub const RESTORES_PER_DAY: usize = 10;

/// Everything a restore needs once the request passed the synchronous checks.
#[derive(Clone)]
struct Accepted {
    vault: VaultRecord,
    instance: InstanceRecord,
    source: InstanceFacts,
    target: InstanceFacts,
    point: RecoveryPointRecord,
    facts: RestoreFacts,
}

/// The synchronous checks DataProtection makes before it accepts a restore request.
fn accept(
    world: &World,
    i: &InstancePath,
    facts: RestoreFacts,
    path: &str,
) -> Result<Accepted, ArmError> {
    let vault = parent_vault(world, &i.vault)?.clone();
    let instance = world
        .instances
        .get(&key(&instance_id(i)))
        .ok_or_else(|| ArmError::resource_not_found(&instance_typed(i), &i.vault.group.rg))?
        .clone();
    if instance.deleting {
        return Err(ArmError::new(
            StatusCode::CONFLICT,
            "UserErrorBackupInstanceIsBeingDeleted",
            format!("The backup instance '{}' is being deleted.", i.instance),
        ));
    }
    let source = stored_facts(&instance).ok_or_else(|| {
        ArmError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerError",
            "The stored backup instance is unreadable.",
        )
    })?;
    let at = |field: &str| {
        if path.is_empty() {
            field.to_string()
        } else {
            format!("{path}.{field}")
        }
    };
    // The stand-in's code for an unknown recovery point (the published docs name none).
    let point = world
        .recovery_points
        .get(&key(&format!(
            "{}/recoveryPoints/{}",
            instance.id, facts.recovery_point_id
        )))
        .cloned()
        .ok_or_else(|| {
            ArmError::new(
                StatusCode::BAD_REQUEST,
                "UserErrorRecoveryPointNotFound",
                format!(
                    "Recovery point '{}' was not found for backup instance '{}'.",
                    facts.recovery_point_id, instance.name
                ),
            )
            .with_target(at("recoveryPointId"))
        })?;
    let stores: Vec<&str> = point
        .properties
        .get("recoveryPointDataStoresDetails")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|d| d.get("type").and_then(Value::as_str))
        .collect();
    if !stores
        .iter()
        .any(|s| s.eq_ignore_ascii_case(&facts.source_data_store))
    {
        return Err(ArmError::invalid_parameter(
            &at("sourceDataStoreType"),
            format!(
                "Recovery point '{}' is not in data store '{}'; it is in: {}.",
                facts.recovery_point_id,
                facts.source_data_store,
                stores.join(", ")
            ),
        ));
    }
    if let Some(kind) = &facts.target_datasource_type
        && !kind.eq_ignore_ascii_case(AKS_TYPE)
    {
        return Err(ArmError::invalid_parameter(
            &at("restoreTargetInfo.datasourceInfo.datasourceType"),
            format!("A Kubernetes cluster backup restores into '{AKS_TYPE}', not '{kind}'."),
        ));
    }
    if let (Some(location), Some(cluster)) = (
        &facts.restore_location,
        world.clusters.get(&key(&facts.target_cluster_id)),
    ) && !same_location(location, &cluster.location)
    {
        return Err(ArmError::invalid_parameter(
            &at("restoreTargetInfo.restoreLocation"),
            format!(
                "restoreLocation '{location}' differs from the target cluster's location '{}'; cross-region restore is not enabled for this vault.",
                cluster.location
            ),
        ));
    }
    let target = InstanceFacts {
        datasource_id: facts.target_cluster_id.clone(),
        datasource_type: Some(AKS_TYPE.to_string()),
        has_datasource_set: true,
        ..source.clone()
    };
    Ok(Accepted {
        vault,
        instance,
        source,
        target,
        point,
        facts,
    })
}

fn started(world: &World, accepted: &Accepted, op: &str, ctx: &Ctx<'_>) -> HandlerResult {
    let sub = &accepted.vault.sub;
    Ok(ArmResponse::empty(StatusCode::ACCEPTED)
        // The location-scoped result URL declares `OperationJobExtendedInfo` (the
        // instance-scoped one declares a backup instance), as for ad-hoc backups.
        .with_header(
            "Location",
            location_url(ctx, sub, &accepted.vault.location, "operationResults", op),
        )
        .with_header(
            "Azure-AsyncOperation",
            vault_status_url(ctx, &accepted.vault.id, op),
        )
        .with_header("Retry-After", retry_after(world, sub, op, ctx.now)))
}

/// `BackupInstances_ValidateForRestore`: 202; the operation fails with the first unmet
/// prerequisite on the target cluster, or succeeds with an `OperationJobExtendedInfo`.
pub fn validate_restore(world: &mut World, i: &InstancePath, ctx: &Ctx<'_>) -> HandlerResult {
    let facts = validate::validate_restore_body(ctx.body)?;
    let accepted = accept(world, i, facts, "restoreRequestObject")?;
    let (op, due) = start(
        world,
        &accepted.vault.sub,
        ctx.now,
        world.timings.validate_restore,
    );
    let (vault_key, target, op_id) = (key(&accepted.vault.id), accepted.target.clone(), op.clone());
    world.schedule(due, move |w, at| {
        match prerequisites::check(w, &vault_key, &target, None, Phase::Restore, at) {
            Ok(()) => w
                .operations
                .succeed(&op_id, at, Some(job_extended_info(None)), 200),
            Err(e) => w.operations.fail(&op_id, at, e.to_arm_error()),
        }
    });
    started(world, &accepted, &op, ctx)
}

/// Restore jobs of `instance_key` that started in the 24 hours before `now`.
fn restores_today(world: &World, instance_key: &str, now: OffsetDateTime) -> usize {
    let since = now - time::Duration::DAY;
    world
        .jobs
        .values()
        .filter(|j| j.instance_key == instance_key)
        .filter(|j| {
            j.properties
                .get("operationCategory")
                .and_then(Value::as_str)
                == Some("Restore")
        })
        .filter(|j| {
            j.properties
                .get("startTime")
                .and_then(Value::as_str)
                .and_then(|t| {
                    OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
                })
                .is_some_and(|t| t > since)
        })
        .count()
}

/// `BackupInstances_TriggerRestore`: 202; the operation yields a restore job id; the job ends
/// after the restore duration: Failed with the first unmet prerequisite, else Completed with
/// what the target cluster's stand-in restored (CompletedWithWarnings when a hook failed).
pub fn trigger_restore(world: &mut World, i: &InstancePath, ctx: &Ctx<'_>) -> HandlerResult {
    let facts = validate::trigger_restore_body(ctx.body)?;
    let accepted = accept(world, i, facts, "")?;
    let instance_key = key(&accepted.instance.id);
    let today = restores_today(world, &instance_key, ctx.now);
    if today >= RESTORES_PER_DAY {
        // The stand-in's code for the documented limit (the published docs name none).
        return Err(ArmError::new(
            StatusCode::BAD_REQUEST,
            "UserErrorMaxRestoresPerDayReached",
            format!(
                "Backup instance '{}' has had {today} restores in the last 24 hours; at most {RESTORES_PER_DAY} restores per backup instance per day are allowed.",
                accepted.instance.name
            ),
        ));
    }
    let (op, due) = start(
        world,
        &accepted.vault.sub,
        ctx.now,
        world.timings.restore_trigger,
    );
    let job_name = new_guid();
    let job_id = format!("{}/backupJobs/{job_name}", accepted.vault.id);
    let mut properties = job_properties(
        world,
        &accepted.vault,
        &accepted.instance,
        &accepted.source,
        JobKind {
            category: "Restore",
            operation: "Restore",
            policy: None,
        },
    );
    let alternate = !accepted
        .facts
        .target_cluster_id
        .eq_ignore_ascii_case(&accepted.source.datasource_id);
    properties.insert(
        "restoreType".into(),
        json!(if alternate {
            "AlternateLocation"
        } else {
            "OriginalLocation"
        }),
    );
    properties.insert(
        "extendedInfo".into(),
        json!({
            "subTasks": [{"taskId": 1, "taskName": "Restore", "taskStatus": "InProgress"}],
            "recoveryDestination": accepted.facts.target_cluster_id,
            "sourceRecoverPoint": {
                "recoveryPointID": accepted.point.name,
                "recoveryPointTime": accepted.point.properties.get("recoveryPointTime").cloned().unwrap_or(Value::Null),
            },
            "additionalDetails": {}
        }),
    );
    let job = JobRecord {
        id: job_id.clone(),
        vault_key: key(&accepted.vault.id),
        name: job_name.clone(),
        instance_key,
        properties,
    };
    let job_done = due + span(world.timings.restore_job);
    let op_id = op.clone();
    let answer = started(world, &accepted, &op, ctx);
    world.schedule(due, move |w, at| {
        let mut job = job;
        job.properties
            .insert("startTime".into(), json!(rfc3339(at)));
        let job_key = key(&job.id);
        w.jobs.insert(job_key.clone(), job);
        let info = job_extended_info(Some(&job_name));
        w.operations.succeed(&op_id, at, Some(info.clone()), 200);
        w.operations.set_properties(&op_id, info);
        w.schedule(job_done, move |w, at| {
            finish_restore(w, &job_key, &accepted, at)
        });
    });
    answer
}

fn finish_restore(world: &mut World, job_key: &str, accepted: &Accepted, at: OffsetDateTime) {
    let vault_key = key(&accepted.vault.id);
    let outcome = prerequisites::check(
        world,
        &vault_key,
        &accepted.target,
        None,
        Phase::Restore,
        at,
    );
    let restored = outcome.as_ref().ok().map(|()| {
        let spec = RestoreSpec {
            included_namespaces: accepted.facts.included_namespaces.clone(),
            namespace_mappings: accepted.facts.namespace_mappings.clone(),
            patch_existing: accepted.facts.patch_existing,
            include_cluster_scope_resources: accepted.facts.include_cluster_scope_resources,
            restore_hooks: accepted.facts.restore_hooks.clone(),
        };
        world.data_planes.restore(
            &accepted.facts.target_cluster_id,
            &accepted.point.snapshot,
            &spec,
        )
    });
    let Some(job) = world.jobs.get_mut(job_key) else {
        return;
    };
    let start = job
        .properties
        .get("startTime")
        .and_then(Value::as_str)
        .and_then(|s| OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok())
        .unwrap_or(at);
    job.properties.insert("endTime".into(), json!(rfc3339(at)));
    job.properties
        .insert("duration".into(), json!(timespan(at - start)));
    match (outcome, restored) {
        (Err(e), _) => {
            job.properties.insert("status".into(), json!("Failed"));
            job.properties
                .insert("errorDetails".into(), json!([e.user_facing()]));
            set_task(job, "Failed", None);
        }
        (Ok(()), restored) => {
            let restored = restored.unwrap_or_default();
            let status = if restored.hook_failures.is_empty() {
                "Completed"
            } else {
                "CompletedWithWarnings"
            };
            job.properties.insert("status".into(), json!(status));
            set_task(job, "Completed", Some(&restored));
        }
    }
}

fn set_task(job: &mut JobRecord, status: &str, restored: Option<&RestoreOutcome>) {
    let Some(info) = job.properties.get_mut("extendedInfo") else {
        return;
    };
    info["subTasks"] = json!([{"taskId": 1, "taskName": "Restore", "taskStatus": status}]);
    if let Some(r) = restored {
        info["additionalDetails"] = json!({
            ITEMS_RESTORED_KEY: r.restored_items.to_string(),
            TOTAL_ITEMS_KEY: r.total_items.to_string(),
        });
        if !r.hook_failures.is_empty() {
            info["warningDetails"] = Value::Array(
                r.hook_failures
                    .iter()
                    .map(|f| {
                        json!({
                            "resourceName": f.split(':').next().unwrap_or_default(),
                            "warning": {
                                "code": "UserErrorHookExecutionFailed",
                                "message": format!("A restore hook failed: {f}"),
                                "recommendedAction": ["Check the hook's command and container, then restore again."],
                                "isRetryable": false,
                                "isUserError": true
                            }
                        })
                    })
                    .collect(),
            );
        }
    }
}

//! `configure_backup` (fact in: `HooksApplied`): the cluster has a backup instance in
//! `ProtectionConfigured`, referring to the hooks `apply_hooks` put on the cluster. An
//! existing instance for the cluster is adopted; otherwise the instance `validate_backup`
//! validated is created and followed through `currentProtectionState` (one not validated yet
//! goes back there first). Permission errors (missing or not yet effective roles, e.g.
//! `UserErrorMissingMSIPermissionsOnSnapshotResourceGroup`) send the workflow back to
//! `assign_roles` a bounded number of times, then become queued retries until the step's
//! deadline while the roles propagate; no fixed sleep anywhere.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use crate::arm::{ArmError, FinalState, versions};
use crate::engine::{Outcome, Step, StepError};
use crate::envelope::Envelope;
use crate::kube::HookReference;
use crate::resource_id::ResourceId;
use crate::workflow::Ctx;
use crate::workflow::bodies::{self, BackupInstanceSpec};
use crate::workflow::facts::{self, Progress, advance, failed_operation, started, wait};
use crate::workflow::onboarding::OnboardStep;
use crate::workflow::onboarding::facts::OnboardFacts;
use crate::workflow::onboarding::model::instance::{
    self, InstanceVerdict, Remediation, instance_verdict, status_configured,
};
use crate::workflow::placement::Placement;

/// The step's name.
pub const NAME: &str = OnboardStep::ConfigureBackup.as_str();
/// The step that runs next.
pub const NEXT_STEP: &str = OnboardStep::ConfigureBackup.next_name();
/// The fact it publishes.
pub const FACT: &str = "BackupConfigured";
/// The fact it publishes when it sends the workflow back to assign_roles.
pub const PERMISSIONS_MISSING: &str = "PermissionsMissing";
/// How long the steps that wait for new roles to take effect may keep retrying: propagation
/// can take up to ~40 minutes (field notes §4).
pub const ROLES_TAKE_EFFECT_WITHIN: Duration = Duration::from_secs(60 * 60);
/// How long to wait for role assignments to take effect between attempts.
pub const PROPAGATION_WAIT: Duration = Duration::from_secs(60);
/// Payload: the number of assignments assign_roles created on its last run.
pub const ROLES_CREATED: &str = "rolesCreated";
/// Payload: when assign_roles last created assignments (Unix seconds).
pub const ROLES_CREATED_AT: &str = "rolesCreatedAt";
/// Payload: the vault is searched for an instance of the cluster under any name (validation
/// or creation said one exists).
pub const SEARCH_VAULT: &str = "searchVaultForInstance";
/// The fact it publishes when a new instance must be validated first.
pub const VALIDATION_NEEDED: &str = "ValidationNeeded";
/// Payload: the existing instance must be re-submitted once roles are fixed.
const RESUBMIT: &str = "resubmitBackupInstance";

const CREATE: &str = "configure_backup:create";

/// See the module docs.
pub struct ConfigureBackup;

#[async_trait]
impl Step<Ctx> for ConfigureBackup {
    fn name(&self) -> &'static str {
        NAME
    }

    fn timeout(&self) -> Duration {
        ROLES_TAKE_EFFECT_WITHIN
    }

    async fn run(&self, ctx: &Ctx, env: &Envelope) -> Result<Outcome, StepError> {
        let f = OnboardFacts::of(env);
        match facts::follow(ctx, env, NAME).await? {
            Progress::Waiting(outcome) => return Ok(outcome),
            Progress::Failed { error, .. } => {
                return answer_refusal(env, error, f.resubmit_backup_instance, search_vault)
                    .map_err(|e| failed_operation(e.into()));
            }
            Progress::Finished { .. } | Progress::Idle => {}
        }
        let spec = spec_from_facts(ctx, env, f.backup_hook_references()?)?;
        let vault_id = f.vault_id()?;
        let deterministic = format!(
            "{vault_id}/backupInstances/{}",
            Placement::for_cluster(&ctx.onboarding, &facts::cluster_id(env)?, &spec.location)
                .backup_instance
        );
        let bi_id = f.backup_instance_id.clone().unwrap_or(deterministic);

        // Listing a shared vault's instances costs a read per page per cluster; Azure's own
        // refusal of a second instance (validation, creation) says when to look.
        let search = f.search_vault_for_instance
            || ctx.onboarding.layout != crate::workflow::settings::Layout::SharedPerRegion;
        // A repair comes after the chain re-did the roles, binding and extension: an instance
        // in error is re-submitted.
        let repair = f.is_repair();
        let resubmit = f.resubmit_backup_instance || repair;
        let validated = f.backup_validated;
        let fresh = validated && f.backup_instance_id.is_none();
        // A new instance's create is the write that protects it: make sure it can be sent
        // before reading anything.
        if fresh {
            ctx.arm.room_to_write(&bi_id)?;
        }
        // A validation this workflow made, with no instance created since, says the vault
        // holds no instance of this cluster (validateForBackup refuses a second one), so the
        // instance is created without a read.
        let existing = if fresh && !search {
            None
        } else {
            existing_instance(ctx, &bi_id, &vault_id, &spec.cluster_id, search).await?
        };
        if let Some(bi) = &existing {
            let verdict = match instance_verdict(bi, &bi_id, &spec, resubmit) {
                InstanceVerdict::Adopt { id, .. } if repair && !status_configured(bi) => {
                    InstanceVerdict::Resubmit {
                        id,
                        state: "ProtectionConfigured with a protection error".into(),
                    }
                }
                other => other,
            };
            match verdict {
                InstanceVerdict::Adopt { id, differences } => {
                    if !differences.is_empty() {
                        tracing::warn!(backup_instance = %id, ?differences, "adopting a backup instance whose configuration differs from the settings; it cannot be changed in place (delete it to apply the settings)");
                    }
                    return Ok(advance(NEXT_STEP, FACT)
                        .with(facts::BACKUP_INSTANCE_ID, id)
                        .without(RESUBMIT));
                }
                InstanceVerdict::MissingRoles { id, text } => {
                    return Ok(remediate(env, &text, true).with(facts::BACKUP_INSTANCE_ID, id));
                }
                InstanceVerdict::Fail(text) => {
                    return Ok(Outcome::failed(text).without(facts::PENDING_OPERATION));
                }
                InstanceVerdict::Held(text) => return Ok(Outcome::failed(text)),
                InstanceVerdict::Busy { id, state } => {
                    return Ok(wait(
                        ctx.arm.default_poll(),
                        format!("backup instance {id} is {state}"),
                    )
                    .with(facts::BACKUP_INSTANCE_ID, id));
                }
                // Re-submitted below, after validation.
                InstanceVerdict::Resubmit { .. } => {}
            }
        }

        // validateForBackup is for new instances (it refuses a second instance of the same
        // cluster); an existing instance is re-submitted and its configuration re-checked.
        if !validated && existing.is_none() {
            return Ok(
                advance(OnboardStep::ValidateBackup.as_str(), VALIDATION_NEEDED)
                    .without(SEARCH_VAULT),
            );
        }
        let target = existing
            .as_ref()
            .and_then(|bi| bi.get("id").and_then(Value::as_str))
            .unwrap_or(&bi_id)
            .to_string();
        let resp = ctx
            .arm
            .put(
                &target,
                versions::BACKUP_INSTANCES,
                &bodies::backup_instance(&spec),
            )
            .await;
        let resp = match resp {
            Ok(r) => r,
            // An instance in the vault already (another workflow or a person created it a
            // moment ago) is adopted.
            Err(e) => return answer_refusal(env, e, true, search_vault).map_err(Into::into),
        };
        let outcome = match resp.pending(CREATE, FinalState::OriginalUri, ctx.arm.default_poll()) {
            Some(op) => started(op),
            None => wait(
                ctx.arm.default_poll(),
                "following the backup instance's protection state",
            ),
        };
        Ok(outcome
            .with(facts::BACKUP_INSTANCE_ID, target)
            .with(facts::BACKUP_VALIDATED, true)
            .without(RESUBMIT))
    }
}

/// What Azure's refusal of the cluster's new instance (its validation or its creation) means
/// for the workflow: missing or not yet effective roles are remediated ([`remediate`], the
/// instance re-submitted after if `resubmit`), an instance of the cluster already in the
/// vault is handed to `already_protected`; any other refusal is returned as it is.
///
/// # Errors
/// `error`, when it is neither.
pub fn answer_refusal(
    env: &Envelope,
    error: ArmError,
    resubmit: bool,
    already_protected: fn(&str) -> Outcome,
) -> Result<Outcome, ArmError> {
    if error.is_missing_roles() {
        Ok(remediate(env, &error.to_string(), resubmit))
    } else if error.has_code(MULTI_PROTECTION) {
        Ok(already_protected(&error.to_string()))
    } else {
        Err(error)
    }
}

/// Azure's refusal of a second instance of a cluster in a vault with the same policy.
const MULTI_PROTECTION: &str = "UserErrorMultiProtectionNotAllowedWithSameVaultAndSamePolicy";

/// Looks again shortly, searching the vault for the instance Azure says protects the cluster.
fn search_vault(why: &str) -> Outcome {
    wait(
        Duration::from_secs(10),
        format!("adopting the cluster's existing backup instance: {why}"),
    )
    .with(SEARCH_VAULT, true)
}

/// How long the role assignments assign_roles just created still need before validation is
/// worth trying ([`instance::propagation_left`]).
pub fn propagation_left(ctx: &Ctx, env: &Envelope) -> Option<Duration> {
    let f = OnboardFacts::of(env);
    let created_at = f.roles_created_at?;
    instance::propagation_left(
        ctx.clock.now().unix_timestamp(),
        created_at,
        f.roles_created,
    )
}

/// The cluster's instance: `bi_id` (the deterministic one, or the one recorded), else, when
/// `search`, one in the vault that protects `cluster_id` under any name.
///
/// # Errors
/// A failed read.
pub async fn existing_instance(
    ctx: &Ctx,
    bi_id: &str,
    vault_id: &str,
    cluster_id: &str,
    search: bool,
) -> Result<Option<Value>, StepError> {
    Ok(
        match ctx
            .arm
            .get_optional(bi_id, versions::BACKUP_INSTANCES)
            .await?
        {
            Some(bi) => Some(bi),
            None if search => find_for_cluster(ctx, vault_id, cluster_id).await?,
            None => None,
        },
    )
}

/// The backup instance the step would make or judge, read without changing anything (for
/// `plan`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceAssessment {
    /// The instance the settings ask for (with the hooks `apply_hooks` would apply).
    pub spec: BackupInstanceSpec,
    /// The cluster's existing instance: its id and verdict.
    pub existing: Option<(String, InstanceVerdict)>,
}

/// Reads the cluster's backup instance, under its deterministic name or any other in the
/// vault; `vault_exists`: without a vault there is none.
///
/// # Errors
/// A failed read.
pub async fn assess(
    ctx: &Ctx,
    cluster: &ResourceId,
    placement: &Placement,
    vault_exists: bool,
) -> Result<InstanceAssessment, StepError> {
    let bi_id = placement.backup_instance_id();
    let spec = super::check_cluster::backup_instance_spec(
        ctx,
        cluster,
        &placement.location,
        placement.policy_id(),
        placement.snapshot_resource_group_id(),
        ctx.hooks.backup_references(),
    );
    let existing = if vault_exists {
        existing_instance(ctx, &bi_id, &placement.vault_id(), &spec.cluster_id, true).await?
    } else {
        None
    };
    let existing = existing.map(|bi| {
        let id = bi
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or(&bi_id)
            .to_string();
        (id, instance_verdict(&bi, &bi_id, &spec, false))
    });
    Ok(InstanceAssessment { spec, existing })
}

/// The instance spec from the facts earlier steps recorded, with the hook references
/// `apply_hooks` put on the cluster.
pub fn spec_from_facts(
    ctx: &Ctx,
    env: &Envelope,
    hooks: Vec<HookReference>,
) -> Result<BackupInstanceSpec, StepError> {
    let f = OnboardFacts::of(env);
    Ok(super::check_cluster::backup_instance_spec(
        ctx,
        &facts::cluster_id(env)?,
        &f.location()?,
        f.policy_id()?,
        f.snapshot_resource_group_id()?,
        hooks,
    ))
}

/// An instance in the vault that protects `cluster_id`, under any name.
async fn find_for_cluster(
    ctx: &Ctx,
    vault_id: &str,
    cluster_id: &str,
) -> Result<Option<Value>, ArmError> {
    let all = ctx
        .arm
        .list(
            &format!("{vault_id}/backupInstances"),
            versions::BACKUP_INSTANCES,
            &[],
        )
        .await?;
    Ok(all.into_iter().find(|bi| {
        bi.pointer("/properties/dataSourceInfo/resourceID")
            .and_then(Value::as_str)
            .is_some_and(|r| r.eq_ignore_ascii_case(cluster_id))
    }))
}

/// Sends the workflow back to assign_roles (whence it returns through the cluster's access,
/// the install and the extension's roles, no-ops by then, to validation), or waits for the
/// roles to take effect, by the bounded
/// rule ([`instance::remediation`]). `resubmit` re-submits an existing instance after.
fn remediate(env: &Envelope, why: &str, resubmit: bool) -> Outcome {
    let f = OnboardFacts::of(env);
    let done = f.remediations;
    let last_created = f.roles_created;
    let outcome = match instance::remediation(done, last_created) {
        Remediation::RecheckRoles(remediation) => {
            tracing::info!(workflow_id = %env.workflow_id, remediation, "permission error, re-checking role assignments: {why}");
            advance(OnboardStep::AssignRoles.as_str(), PERMISSIONS_MISSING)
                .with(facts::REMEDIATIONS, remediation)
        }
        Remediation::WaitForPropagation => wait(
            PROPAGATION_WAIT,
            format!("waiting for role assignments to take effect: {why}"),
        ),
    };
    outcome
        .with(facts::BACKUP_VALIDATED, false)
        .with(RESUBMIT, resubmit)
}

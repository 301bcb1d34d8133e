//! `assign_roles` (fact in: `ExtensionInstalled`, or `PermissionsMissing` from configure_backup):
//! the role profile's assignments exist for the vault, cluster and extension identities. Each is
//! read by its deterministic name and created if missing, with `principalType:
//! ServicePrincipal`; `RoleAssignmentExists` (same grant under another name) counts as done, and
//! `PrincipalNotFound` (an identity not yet replicated) becomes a queued retry. No sleeps: the
//! step that needs the roles retries on its permission errors instead.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use crate::arm::versions;
use crate::engine::{Outcome, Step, StepError};
use crate::envelope::Envelope;
use crate::workflow::Ctx;
use crate::workflow::facts::{self, advance, wait};
use crate::workflow::onboarding::OnboardStep;
use crate::workflow::onboarding::facts::OnboardFacts;
use crate::workflow::roles::{self, Identities, Scopes};

/// The step's name.
pub const NAME: &str = OnboardStep::AssignRoles.as_str();
/// The step that runs next.
pub const NEXT_STEP: &str = OnboardStep::AssignRoles.next_name();
/// The fact it publishes.
pub const FACT: &str = "RolesAssigned";
/// How long to wait for a new identity to replicate before trying again.
const REPLICATION_WAIT: Duration = Duration::from_secs(20);

/// See the module docs.
pub struct AssignRoles;

/// What [`converge`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Converged {
    /// Assignments created.
    pub created: usize,
    /// Assignments whose principal is not yet replicated (retry later), as summaries.
    pub not_replicated: Vec<String>,
}

/// Makes each assignment exist: read by its deterministic name, created if missing;
/// `RoleAssignmentExists` counts as done, `PrincipalNotFound` is reported for a later retry.
///
/// # Errors
/// Any other ARM failure.
pub async fn converge(ctx: &Ctx, wanted: &[roles::Assignment]) -> Result<Converged, StepError> {
    // Each assignment is read, then created if missing: while the subscription's writes are
    // held back, the reads would only be made again.
    if let Some(first) = wanted.first() {
        ctx.arm.room_to_write(&first.path())?;
    }
    let mut done = Converged::default();
    for a in wanted {
        if in_place(ctx, a).await? {
            continue;
        }
        match ctx
            .arm
            .put(&a.path(), versions::ROLE_ASSIGNMENTS, &a.body())
            .await
        {
            Ok(_) => done.created += 1,
            Err(e) if e.has_code("RoleAssignmentExists") => {}
            Err(e) if e.has_code("PrincipalNotFound") => done.not_replicated.push(a.summary()),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(done)
}

/// The assignments this workflow needs, from its facts.
///
/// # Errors
/// A missing fact.
pub fn wanted(ctx: &Ctx, env: &Envelope) -> Result<Vec<roles::Assignment>, StepError> {
    let f = OnboardFacts::of(env);
    let ids = Identities {
        vault: f.vault_principal_id()?,
        cluster: f.cluster_principal_id()?,
        extension: f.extension_principal_id()?,
    };
    let scopes = Scopes {
        cluster: facts::cluster_id(env)?.to_string(),
        snapshot_resource_group: f.snapshot_resource_group_id()?,
        storage_account: f.storage_account_id()?,
        storage_shared: f.storage_shared,
        vault_scope: ctx.onboarding.vault_grant_scope,
    };
    Ok(wanted_for(ctx, &ids, &scopes))
}

/// The role profile's assignments for these identities and scopes.
pub fn wanted_for(ctx: &Ctx, ids: &Identities, scopes: &Scopes) -> Vec<roles::Assignment> {
    roles::assignments(roles::profile(ctx.onboarding.role_profile), ids, scopes)
}

/// True if the assignment exists under its deterministic name for the same principal
/// ([`converge`] creates it otherwise).
///
/// # Errors
/// A failed read.
pub async fn in_place(ctx: &Ctx, assignment: &roles::Assignment) -> Result<bool, StepError> {
    let for_principal = |e: &Value| {
        e.pointer("/properties/principalId")
            .and_then(Value::as_str)
            .is_some_and(|p| p.eq_ignore_ascii_case(&assignment.principal_id))
    };
    // Grants shared by the fleet (the vault's, at resource group or subscription scope) are
    // read once for many clusters.
    let existing = ctx
        .arm
        .get_settled(
            &assignment.path(),
            versions::ROLE_ASSIGNMENTS,
            for_principal,
        )
        .await?;
    Ok(existing.is_some_and(|e| for_principal(&e)))
}

#[async_trait]
impl Step<Ctx> for AssignRoles {
    fn name(&self) -> &'static str {
        NAME
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(30 * 60)
    }

    async fn run(&self, ctx: &Ctx, env: &Envelope) -> Result<Outcome, StepError> {
        let Converged {
            created,
            not_replicated,
        } = converge(ctx, &wanted(ctx, env)?).await?;
        if !not_replicated.is_empty() {
            return Ok(wait(
                REPLICATION_WAIT,
                format!(
                    "identities not yet replicated to the directory: {}",
                    not_replicated.join("; ")
                ),
            ));
        }
        tracing::info!(workflow_id = %env.workflow_id, created, "role assignments in place");
        let outcome =
            advance(NEXT_STEP, FACT).with(super::configure_backup::ROLES_CREATED, created);
        Ok(if created > 0 {
            outcome.with(
                super::configure_backup::ROLES_CREATED_AT,
                ctx.clock.now().unix_timestamp(),
            )
        } else {
            outcome
        })
    }
}

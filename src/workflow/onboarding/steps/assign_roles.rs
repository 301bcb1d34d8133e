//! `assign_roles` and `assign_extension_roles`: the role profile's assignments exist for the
//! vault, cluster and extension identities. The guide makes them all once the extension is
//! installed; the chain makes the vault's and the cluster's (`assign_roles`, fact in:
//! `TrustedAccessBound`, or `PermissionsMissing` from configure_backup) while the extension
//! installs, and the extension's (`assign_extension_roles`, fact in: `ExtensionInstalled`) the
//! moment it has its identity, so that their propagation runs while its pods start. Each
//! assignment is read by its deterministic name and created if missing, with `principalType:
//! ServicePrincipal`; `RoleAssignmentExists` (same grant under another name) counts as done, and
//! `PrincipalNotFound` (an identity not yet replicated) becomes a queued retry. No sleeps: the
//! step that needs the roles retries on its permission errors instead.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::Method;
use serde_json::Value;

use crate::arm::versions;
use crate::engine::{Outcome, Step, StepError};
use crate::envelope::Envelope;
use crate::workflow::Ctx;
use crate::workflow::facts::{self, advance, wait};
use crate::workflow::onboarding::OnboardStep;
use crate::workflow::onboarding::facts::OnboardFacts;
use crate::workflow::onboarding::steps::install_extension::room_during_install;
use crate::workflow::roles::{self, Identities, Scopes};

/// The step's name.
pub const NAME: &str = OnboardStep::AssignRoles.as_str();
/// The step that runs next.
pub const NEXT_STEP: &str = OnboardStep::AssignRoles.next_name();
/// The fact it publishes.
pub const FACT: &str = "RolesAssigned";
/// The name of the step that assigns the extension identity's roles.
pub const EXTENSION_NAME: &str = OnboardStep::AssignExtensionRoles.as_str();
/// The step that runs after it.
pub const EXTENSION_NEXT_STEP: &str = OnboardStep::AssignExtensionRoles.next_name();
/// The fact it publishes.
pub const EXTENSION_FACT: &str = "ExtensionRolesAssigned";
/// How long to wait for a new identity to replicate before trying again.
const REPLICATION_WAIT: Duration = Duration::from_secs(20);

/// See the module docs: the step for the vault's and the cluster's identities
/// ([`AssignRoles::VAULT_AND_CLUSTER`]) or the extension's ([`AssignRoles::EXTENSION`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AssignRoles {
    /// True for the extension identity's assignments, false for the others.
    extension: bool,
}

impl AssignRoles {
    /// `assign_roles`: the vault's and the cluster's identities.
    pub const VAULT_AND_CLUSTER: Self = Self { extension: false };
    /// `assign_extension_roles`: the extension's identity.
    pub const EXTENSION: Self = Self { extension: true };

    /// True if this step makes `assignment`.
    fn makes(self, assignment: &roles::Assignment) -> bool {
        (assignment.grant.principal == roles::Principal::Extension) == self.extension
    }
}

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
    converge_with(ctx, wanted, Reads::First).await
}

/// Whether [`converge_with`] reads an assignment before it PUTs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reads {
    /// Read first: an assignment in place (a shared grant read once for many clusters, say)
    /// costs no write.
    First,
    /// PUT at once: the principal is new, so its assignments almost never exist, and a PUT
    /// of one that does is answered 200 (same name) or `RoleAssignmentExists` (another
    /// name), both counted as in place.
    Never,
}

/// [`converge`], reading first or not as `reads` says.
///
/// # Errors
/// Any ARM failure other than the ones [`converge`] counts.
pub async fn converge_with(
    ctx: &Ctx,
    wanted: &[roles::Assignment],
    reads: Reads,
) -> Result<Converged, StepError> {
    // Each assignment is read, then created if missing: while the subscription's writes are
    // held back, the reads would only be made again.
    if let Some(first) = wanted.first() {
        ctx.arm.room_to_write(&first.path())?;
    }
    let mut done = Converged::default();
    for a in wanted {
        if reads == Reads::First && in_place(ctx, a).await? {
            continue;
        }
        match ctx
            .arm
            .put(&a.path(), versions::ROLE_ASSIGNMENTS, &a.body())
            .await
        {
            // 200: the same assignment was already there.
            Ok(r) if r.status == 200 => {}
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
    wanted_with(ctx, env, f.extension_principal_id()?)
}

/// [`wanted`], with the extension's identity given (empty while it is not yet known: only the
/// other identities' assignments are then usable).
fn wanted_with(
    ctx: &Ctx,
    env: &Envelope,
    extension: String,
) -> Result<Vec<roles::Assignment>, StepError> {
    let f = OnboardFacts::of(env);
    let ids = Identities {
        vault: f.vault_principal_id()?,
        cluster: f.cluster_principal_id()?,
        extension,
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
        if self.extension { EXTENSION_NAME } else { NAME }
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(30 * 60)
    }

    async fn run(&self, ctx: &Ctx, env: &Envelope) -> Result<Outcome, StepError> {
        let f = OnboardFacts::of(env);
        let extension = if self.extension {
            f.extension_principal_id()?
        } else {
            f.extension_principal_id.clone().unwrap_or_default()
        };
        let wanted: Vec<roles::Assignment> = wanted_with(ctx, env, extension)?
            .into_iter()
            .filter(|a| self.makes(a))
            .collect();
        // The vault's and the cluster's roles are made while the extension installs and are
        // needed only after it: they wait for spare quota.
        if !self.extension
            && let Some(first) = wanted.first()
        {
            room_during_install(ctx, f.extension_submitted_at, &Method::PUT, &first.path())?;
        }
        let Converged {
            created,
            not_replicated,
        } = converge_with(
            ctx,
            &wanted,
            // The extension's identity appeared with its install.
            if self.extension {
                Reads::Never
            } else {
                Reads::First
            },
        )
        .await?;
        if !not_replicated.is_empty() {
            return Ok(wait(
                REPLICATION_WAIT,
                format!(
                    "identities not yet replicated to the directory: {}",
                    not_replicated.join("; ")
                ),
            ));
        }
        tracing::info!(workflow_id = %env.workflow_id, step = self.name(), created, "role assignments in place");
        let outcome = if self.extension {
            // Added to what `assign_roles` created: validation waits for the newest.
            let outcome = advance(EXTENSION_NEXT_STEP, EXTENSION_FACT);
            if created == 0 {
                return Ok(outcome);
            }
            outcome.with(
                super::configure_backup::ROLES_CREATED,
                f.roles_created.saturating_add(created as u64),
            )
        } else {
            advance(NEXT_STEP, FACT).with(super::configure_backup::ROLES_CREATED, created)
        };
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

//! `plan`: what onboarding would change on one cluster, without changing anything. The planner
//! asks each onboarding step, in [`OnboardStep`] order, for its read-only `assess` (which lives
//! beside the step's `run` and reads as it does), carrying forward what earlier steps would
//! create, and turns the answers into plan items. It only reads: every ARM request it makes is
//! a GET. [`render`] prints it. [`live`] reads what a cluster has now (the status view `status
//! --cluster` shows), the same way.

pub mod live;
pub mod render;

use std::collections::HashSet;

use serde::Serialize;

use crate::engine::{Step, StepError};
use crate::resource_id::ResourceId;
use crate::workflow::Ctx;
use crate::workflow::onboarding::OnboardStep;
use crate::workflow::onboarding::model::binding::BindingDecision;
use crate::workflow::onboarding::model::eligibility::Eligibility;
use crate::workflow::onboarding::model::extension::{ExtensionVerdict, own_storage};
use crate::workflow::onboarding::model::instance::InstanceVerdict;
use crate::workflow::onboarding::model::vault::VaultVerdict;
use crate::workflow::onboarding::steps::assign_roles;
use crate::workflow::onboarding::steps::bind_trusted_access;
use crate::workflow::onboarding::steps::check_cluster;
use crate::workflow::onboarding::steps::configure_backup;
use crate::workflow::onboarding::steps::ensure_cluster_prerequisites::{self, PrerequisiteAction};
use crate::workflow::onboarding::steps::ensure_providers;
use crate::workflow::onboarding::steps::ensure_resource_groups;
use crate::workflow::onboarding::steps::ensure_storage::{self, AccountAction};
use crate::workflow::onboarding::steps::ensure_vault_and_policy;
use crate::workflow::onboarding::steps::first_backup;
use crate::workflow::onboarding::steps::install_extension;
use crate::workflow::placement::{EXTENSION_NAME, Placement, container_path, extension_path};
use crate::workflow::role_budget;
use crate::workflow::roles::{Identities, Principal, Scopes, Target};
use crate::workflow::settings::{Layout, RoleProfileName};

/// The namespace of backup vaults, policies and instances.
const DATA_PROTECTION: &str = "Microsoft.DataProtection";
/// The namespace of cluster extensions.
const KUBERNETES_CONFIGURATION: &str = "Microsoft.KubernetesConfiguration";

/// What onboarding would do to one thing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Change {
    /// Create it.
    Create,
    /// Change it.
    Update,
    /// Register a resource provider.
    Register,
    /// Take over one made by someone else, as it is.
    Adopt,
    /// Run an action (an ad-hoc backup, a server-side apply).
    Run,
    /// Already as onboarding needs it.
    InPlace,
    /// Busy; onboarding waits for it.
    Wait,
    /// Onboarding would stop here until a person acts.
    Blocked,
}

impl Change {
    /// True for changes that write.
    pub fn writes(self) -> bool {
        matches!(
            self,
            Self::Create | Self::Update | Self::Register | Self::Run
        )
    }
}

/// One line of the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanItem {
    /// The onboarding step that does it.
    pub step: &'static str,
    /// What kind of thing: `provider`, `resource group`, `role assignment`, ...
    pub kind: &'static str,
    /// The resource id, or the name of the thing.
    pub target: String,
    /// What would happen.
    pub change: Change,
    /// Why, or with what settings.
    pub detail: String,
}

/// How onboarding would go overall.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "outcome")]
pub enum Verdict {
    /// Onboarding would run through and make the listed changes.
    Proceeds,
    /// Onboarding would end at once, changing nothing (out of scope, already protected, ...).
    Ends {
        /// The step.
        step: &'static str,
        /// Its summary.
        reason: String,
    },
    /// The cluster is busy; onboarding would wait before deciding anything.
    Waits {
        /// The step.
        step: &'static str,
        /// Why.
        reason: String,
    },
    /// Onboarding would stop at this step until a person acts; the items show what it would
    /// do once the cause is fixed.
    Stops {
        /// The step.
        step: &'static str,
        /// What is wrong and what to do.
        reason: String,
    },
}

/// The settings the plan was made with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanSettings {
    /// `poc` or `production`.
    pub profile: &'static str,
    /// `perCluster` or `sharedPerRegion`.
    pub layout: &'static str,
    /// `guide` or `azCli`.
    pub role_profile: &'static str,
    /// Whether onboarding takes an ad-hoc first backup.
    pub first_backup: bool,
}

/// What onboarding would do to one cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// The cluster.
    pub cluster: String,
    /// Its region, once read.
    pub location: Option<String>,
    /// The settings used.
    pub settings: PlanSettings,
    /// Overall.
    pub verdict: Verdict,
    /// In chain order.
    pub items: Vec<PlanItem>,
    /// Checks that could not be made.
    pub warnings: Vec<String>,
}

impl Plan {
    /// How many items would make each kind of change, in [`Change`] order.
    pub fn counts(&self) -> Vec<(Change, usize)> {
        [
            Change::Create,
            Change::Update,
            Change::Register,
            Change::Adopt,
            Change::Run,
            Change::InPlace,
            Change::Wait,
            Change::Blocked,
        ]
        .into_iter()
        .map(|c| (c, self.items.iter().filter(|i| i.change == c).count()))
        .filter(|(_, n)| *n > 0)
        .collect()
    }
}

/// Builds the plan for `cluster` with the context's ARM client, settings and hooks.
///
/// # Errors
/// A read that failed (the error says what and, for known codes, what to do).
pub async fn plan(ctx: &Ctx, cluster: &ResourceId) -> Result<Plan, StepError> {
    let mut planner = Planner {
        ctx,
        plan: Plan {
            cluster: cluster.to_string(),
            location: None,
            settings: settings_of(ctx),
            verdict: Verdict::Proceeds,
            items: Vec::new(),
            warnings: Vec::new(),
        },
    };
    let eligible = match check_cluster::assess(ctx, cluster, false).await? {
        Eligibility::Eligible(e) => e,
        Eligibility::Finish(reason) => return Ok(planner.end(check_cluster::NAME, reason)),
        Eligibility::Fail(reason) => {
            planner.plan.verdict = Verdict::Stops {
                step: check_cluster::NAME,
                reason,
            };
            return Ok(planner.plan);
        }
        Eligibility::Wait(_, reason) => {
            planner.plan.verdict = Verdict::Waits {
                step: check_cluster::NAME,
                reason,
            };
            return Ok(planner.plan);
        }
    };
    planner.plan.location = Some(eligible.location.clone());
    let placement = Placement::for_cluster(&ctx.onboarding, cluster, &eligible.location);
    planner.role_budget(cluster, &placement).await?;
    planner.prerequisites(cluster, &eligible.location).await?;
    let unregistered = planner.providers(&placement).await?;
    let missing_groups = planner.resource_groups(&placement).await?;
    let backup_group_missing = missing_groups.contains(&placement.backup_resource_group_id());
    let account_exists = planner.storage(&placement, backup_group_missing).await?;
    let vault = planner
        .vault_and_policy(
            &placement,
            backup_group_missing || unregistered.contains(DATA_PROTECTION),
        )
        .await?;
    let extension = planner
        .extension(
            cluster,
            &placement,
            unregistered.contains(KUBERNETES_CONFIGURATION),
        )
        .await?;
    let storage = match &extension.adopted_storage {
        Some(account) => StorageScope {
            account: account.clone(),
            exists: true,
            shared: true,
        },
        None => StorageScope {
            account: placement.storage_account_id(),
            exists: account_exists,
            shared: ctx.onboarding.layout == Layout::SharedPerRegion,
        },
    };
    let snapshot_group_exists = !missing_groups.contains(&placement.snapshot_resource_group_id());
    planner
        .roles(
            cluster,
            &placement,
            &Principals {
                vault: vault.principal.clone(),
                cluster: eligible.principal.clone(),
                extension: extension.principal.clone(),
            },
            &storage,
            snapshot_group_exists,
        )
        .await?;
    planner
        .trusted_access(cluster, &placement.vault_id())
        .await?;
    planner.hooks();
    let instance = planner
        .backup_instance(cluster, &placement, vault.principal.is_some())
        .await?;
    planner.first_backup(instance.as_deref()).await?;
    Ok(planner.plan)
}

/// The principals known so far (`None`: the identity comes with a resource onboarding would
/// create).
struct Principals {
    vault: Option<String>,
    cluster: String,
    extension: Option<String>,
}

/// The storage account roles are granted on.
struct StorageScope {
    account: String,
    exists: bool,
    shared: bool,
}

struct VaultState {
    principal: Option<String>,
}

struct ExtensionState {
    principal: Option<String>,
    adopted_storage: Option<String>,
}

struct Planner<'a> {
    ctx: &'a Ctx,
    plan: Plan,
}

impl Planner<'_> {
    fn add(
        &mut self,
        step: &'static str,
        kind: &'static str,
        target: impl Into<String>,
        change: Change,
        detail: impl Into<String>,
    ) {
        self.plan.items.push(PlanItem {
            step,
            kind,
            target: target.into(),
            change,
            detail: detail.into(),
        });
    }

    fn end(mut self, step: &'static str, reason: String) -> Plan {
        self.plan.verdict = Verdict::Ends { step, reason };
        self.plan
    }

    /// Records that onboarding would stop at `step` (the first such step wins).
    fn block(
        &mut self,
        step: &'static str,
        kind: &'static str,
        target: impl Into<String>,
        reason: String,
    ) {
        if matches!(self.plan.verdict, Verdict::Proceeds) {
            self.plan.verdict = Verdict::Stops {
                step,
                reason: reason.clone(),
            };
        }
        self.add(step, kind, target, Change::Blocked, reason);
    }

    /// The role-assignment budget of each subscription the cluster's assignments go to:
    /// shown when it fits, a stop (with the fix) when it does not.
    async fn role_budget(
        &mut self,
        cluster: &ResourceId,
        placement: &Placement,
    ) -> Result<(), StepError> {
        const KIND: &str = "role assignment budget";
        for budget in role_budget::budgets(self.ctx, cluster, placement).await? {
            if budget.fits() {
                self.add(
                    check_cluster::NAME,
                    KIND,
                    budget.subscription.clone(),
                    Change::InPlace,
                    budget.summary(),
                );
            } else {
                let (problem, fix) = budget.refusal();
                self.block(
                    check_cluster::NAME,
                    KIND,
                    budget.subscription.clone(),
                    crate::engine::fix::compose(&problem, &fix),
                );
            }
        }
        Ok(())
    }

    async fn prerequisites(
        &mut self,
        cluster: &ResourceId,
        location: &str,
    ) -> Result<(), StepError> {
        const STEP: &str = ensure_cluster_prerequisites::NAME;
        let assessed = ensure_cluster_prerequisites::assess(self.ctx, cluster, location).await?;
        self.plan.warnings.extend(assessed.warnings);
        if assessed.actions.is_empty() {
            self.add(
                STEP,
                "cluster",
                cluster.to_string(),
                Change::InPlace,
                "Kubernetes version supported; CSI disk driver and snapshot controller on; room for the extension's CPU",
            );
        }
        for action in assessed.actions {
            match action {
                PrerequisiteAction::EnableStorage { disabled, .. } => self.add(
                    STEP,
                    "cluster",
                    cluster.to_string(),
                    Change::Update,
                    format!("turn on {}", disabled.join(" and ")),
                ),
                PrerequisiteAction::ScalePool { pool, nodes, .. } => self.add(
                    STEP,
                    "node pool",
                    format!("{cluster}/agentPools/{}", pool.name),
                    Change::Update,
                    format!(
                        "{} from {} to {nodes} nodes of {} so the extension fits",
                        if pool.autoscaled {
                            "raise the autoscaler maximum"
                        } else {
                            "scale"
                        },
                        pool.nodes,
                        pool.vm_size
                    ),
                ),
                PrerequisiteAction::Fail(reason) => {
                    self.block(STEP, "cluster", cluster.to_string(), reason);
                }
            }
        }
        Ok(())
    }

    /// The namespaces not registered yet.
    /// Each namespace is needed in one subscription only (the cluster's or the backup one),
    /// so the namespace alone says what is missing where.
    async fn providers(
        &mut self,
        placement: &Placement,
    ) -> Result<HashSet<&'static str>, StepError> {
        const STEP: &str = ensure_providers::NAME;
        let mut unregistered = HashSet::new();
        for p in ensure_providers::assess(self.ctx, placement).await? {
            let target = format!(
                "/subscriptions/{}/providers/{}",
                p.subscription, p.namespace
            );
            if p.is_registered() {
                self.add(STEP, "provider", target, Change::InPlace, "Registered");
                continue;
            }
            unregistered.insert(p.namespace);
            if p.needs_registration() {
                self.add(
                    STEP,
                    "provider",
                    target,
                    Change::Register,
                    format!("now {}", p.state),
                );
            } else {
                self.add(STEP, "provider", target, Change::Wait, "Registering");
            }
        }
        Ok(unregistered)
    }

    /// The resource groups that do not exist.
    async fn resource_groups(&mut self, placement: &Placement) -> Result<Vec<String>, StepError> {
        const STEP: &str = ensure_resource_groups::NAME;
        let missing = ensure_resource_groups::missing(self.ctx, placement).await?;
        let purposes = ["storage account and vault", "disk snapshots"];
        for (rg, purpose) in ensure_resource_groups::wanted(placement)
            .into_iter()
            .zip(purposes)
        {
            let change = if missing.contains(&rg) {
                Change::Create
            } else {
                Change::InPlace
            };
            let detail = match change {
                Change::Create => format!("for the {purpose}, in {}", placement.location),
                _ => format!("for the {purpose}"),
            };
            self.add(STEP, "resource group", rg, change, detail);
        }
        Ok(missing)
    }

    /// Whether the storage account exists.
    async fn storage(
        &mut self,
        placement: &Placement,
        group_missing: bool,
    ) -> Result<bool, StepError> {
        const STEP: &str = ensure_storage::NAME;
        let account_id = placement.storage_account_id();
        let profile = self.ctx.onboarding.profile;
        let assessed = ensure_storage::assess(self.ctx, placement, group_missing).await?;
        let exists = !matches!(assessed.account, AccountAction::Create);
        match assessed.account {
            AccountAction::Create => self.add(
                STEP,
                "storage account",
                account_id.clone(),
                Change::Create,
                format!(
                    "{}, StorageV2, public blob access and shared-key access off",
                    profile.storage_sku()
                ),
            ),
            AccountAction::Repair(_) => self.add(
                STEP,
                "storage account",
                account_id.clone(),
                Change::Update,
                "allows public blob or shared-key access: turn both off",
            ),
            AccountAction::Keep(_) => self.add(
                STEP,
                "storage account",
                account_id.clone(),
                Change::InPlace,
                "public blob access and shared-key access off",
            ),
        }
        self.add(
            STEP,
            "blob container",
            container_path(&account_id, &placement.container),
            if assessed.container_exists {
                Change::InPlace
            } else {
                Change::Create
            },
            "private",
        );
        Ok(exists)
    }

    async fn vault_and_policy(
        &mut self,
        placement: &Placement,
        cannot_exist: bool,
    ) -> Result<VaultState, StepError> {
        const STEP: &str = ensure_vault_and_policy::NAME;
        let profile = self.ctx.onboarding.profile;
        let vault_id = placement.vault_id();
        let assessed = ensure_vault_and_policy::assess(self.ctx, placement, cannot_exist).await?;
        let mut principal = None;
        match assessed.vault {
            None => self.add(
                STEP,
                "backup vault",
                vault_id.clone(),
                Change::Create,
                format!(
                    "{}, soft delete {}, system-assigned identity",
                    profile.vault_redundancy(),
                    profile.soft_delete()
                ),
            ),
            Some(VaultVerdict::Ready { principal: p }) => {
                self.add(
                    STEP,
                    "backup vault",
                    vault_id.clone(),
                    Change::InPlace,
                    format!("identity {p}"),
                );
                principal = Some(p);
            }
            Some(VaultVerdict::Provisioning) => {
                self.add(
                    STEP,
                    "backup vault",
                    vault_id.clone(),
                    Change::Wait,
                    "provisioning",
                );
            }
            Some(VaultVerdict::Unusable(reason)) => {
                self.block(STEP, "backup vault", vault_id.clone(), reason);
            }
        }
        let policy_id = placement.policy_id();
        let policy_exists = assessed.policy_exists;
        let s = &self.ctx.onboarding;
        self.add(
            STEP,
            "backup policy",
            policy_id,
            if policy_exists {
                Change::InPlace
            } else {
                Change::Create
            },
            format!(
                "daily at {:02}:{:02} UTC, kept {} day{}",
                s.backup_time.0,
                s.backup_time.1,
                s.retention_days,
                if s.retention_days == 1 { "" } else { "s" }
            ),
        );
        Ok(VaultState { principal })
    }

    async fn extension(
        &mut self,
        cluster: &ResourceId,
        placement: &Placement,
        cannot_exist: bool,
    ) -> Result<ExtensionState, StepError> {
        const STEP: &str = install_extension::NAME;
        let cluster_id = cluster.to_string();
        let ours = extension_path(&cluster_id, EXTENSION_NAME);
        let mut state = ExtensionState {
            principal: None,
            adopted_storage: None,
        };
        // The step's install is refused when another extension of the type exists, and the
        // step then adopts that one.
        let Some(assessed) = install_extension::assess(self.ctx, &cluster_id, cannot_exist).await?
        else {
            self.add(
                STEP,
                "cluster extension",
                ours,
                Change::Create,
                "azure-aks-backup (Microsoft.DataProtection.Kubernetes, stable train), storage with Entra ID auth (useAAD)",
            );
            return Ok(state);
        };
        let id = assessed.id;
        let change = if assessed.adopted {
            Change::Adopt
        } else {
            Change::InPlace
        };
        match assessed.verdict {
            ExtensionVerdict::Ready {
                principal, storage, ..
            } => {
                let mut detail = format!("identity {principal}");
                if let Some((account, container)) = storage {
                    detail.push_str(&format!("; backs up to {account} (container {container})"));
                    // As the step does: an extension with its own storage keeps it, and the
                    // roles go to that account.
                    state.adopted_storage = own_storage(
                        (account, container),
                        &placement.storage_account_id(),
                        Some(&placement.container),
                    )
                    .map(|(account, _)| account);
                }
                self.add(STEP, "cluster extension", id, change, detail);
                state.principal = Some(principal);
            }
            ExtensionVerdict::Busy(s) => {
                self.add(STEP, "cluster extension", id, Change::Wait, s);
            }
            ExtensionVerdict::NoIdentity => self.add(
                STEP,
                "cluster extension",
                id,
                Change::Wait,
                "no aksAssignedIdentity yet",
            ),
            ExtensionVerdict::Failed(reason) => self.block(STEP, "cluster extension", id, reason),
        }
        Ok(state)
    }

    async fn roles(
        &mut self,
        cluster: &ResourceId,
        placement: &Placement,
        principals: &Principals,
        storage: &StorageScope,
        snapshot_group_exists: bool,
    ) -> Result<(), StepError> {
        const STEP: &str = assign_roles::NAME;
        const LATER_VAULT: &str = "(known once the vault exists)";
        const LATER_EXTENSION: &str = "(known once the extension is installed)";
        let ids = Identities {
            vault: principals
                .vault
                .clone()
                .unwrap_or_else(|| LATER_VAULT.to_string()),
            cluster: principals.cluster.clone(),
            extension: principals
                .extension
                .clone()
                .unwrap_or_else(|| LATER_EXTENSION.to_string()),
        };
        let scopes = Scopes {
            cluster: cluster.to_string(),
            snapshot_resource_group: placement.snapshot_resource_group_id(),
            storage_account: storage.account.clone(),
            storage_shared: storage.shared,
            vault_scope: self.ctx.onboarding.vault_grant_scope,
        };
        let snapshot_group = placement.snapshot_resource_group_id();
        for a in assign_roles::wanted_for(self.ctx, &ids, &scopes) {
            let principal_known = match a.grant.principal {
                Principal::Vault => principals.vault.is_some(),
                Principal::Extension => principals.extension.is_some(),
                Principal::Cluster => true,
            };
            let scope_exists = match a.grant.target {
                Target::Cluster => true,
                // Widened to the subscription, the scope exists already.
                Target::SnapshotResourceGroup => {
                    snapshot_group_exists || !a.scope.eq_ignore_ascii_case(&snapshot_group)
                }
                Target::StorageAccount => storage.exists,
            };
            let in_place =
                principal_known && scope_exists && assign_roles::in_place(self.ctx, &a).await?;
            let who = match a.grant.principal {
                Principal::Vault => "vault",
                Principal::Cluster => "cluster",
                Principal::Extension => "extension",
            };
            self.add(
                STEP,
                "role assignment",
                a.scope.clone(),
                if in_place {
                    Change::InPlace
                } else {
                    Change::Create
                },
                format!(
                    "{} to the {who}'s identity {}: {}",
                    a.grant.role.name, a.principal_id, a.grant.why
                ),
            );
        }
        Ok(())
    }

    async fn trusted_access(
        &mut self,
        cluster: &ResourceId,
        vault_id: &str,
    ) -> Result<(), StepError> {
        const STEP: &str = bind_trusted_access::NAME;
        let cluster_id = cluster.to_string();
        let target = |name: &str| format!("{cluster_id}/trustedAccessRoleBindings/{name}");
        match bind_trusted_access::assess(self.ctx, &cluster_id, vault_id).await? {
            BindingDecision::Ready(name) => self.add(
                STEP,
                "trusted access binding",
                target(&name),
                Change::InPlace,
                "the vault has backupVaults/backup-operator",
            ),
            BindingDecision::Provisioning(name) => self.add(
                STEP,
                "trusted access binding",
                target(&name),
                Change::Wait,
                "provisioning",
            ),
            BindingDecision::Failed(reason) => {
                let collection = format!("{cluster_id}/trustedAccessRoleBindings");
                self.block(STEP, "trusted access binding", collection, reason);
            }
            BindingDecision::Put {
                name,
                roles,
                existed,
            } => self.add(
                STEP,
                "trusted access binding",
                target(&name),
                if existed {
                    Change::Update
                } else {
                    Change::Create
                },
                format!("source {vault_id}, roles {}", roles.join(", ")),
            ),
        }
        Ok(())
    }

    /// The configured hooks, when the chain applies them.
    fn hooks(&mut self) {
        let step = crate::workflow::onboarding::steps::apply_hooks::ApplyHooks.name();
        let hooks = &self.ctx.hooks;
        if hooks.is_empty() {
            return;
        }
        if OnboardStep::ApplyHooks.index() > OnboardStep::ConfigureBackup.index() {
            self.plan.warnings.push(format!(
                "hooks are configured, but this build's onboarding chain does not run {step}; the backup instance references the BackupHooks, which must then exist on the cluster"
            ));
            return;
        }
        for (kind, refs) in [
            ("BackupHook", hooks.backup_references()),
            ("RestoreHook", hooks.restore_references()),
        ] {
            for r in refs {
                self.add(
                    step,
                    "hook",
                    format!("{kind} {}/{}", r.namespace, r.name),
                    Change::Run,
                    "server-side apply (created or updated)",
                );
            }
        }
    }

    /// The backup instance's id when it exists.
    async fn backup_instance(
        &mut self,
        cluster: &ResourceId,
        placement: &Placement,
        vault_exists: bool,
    ) -> Result<Option<String>, StepError> {
        const STEP: &str = configure_backup::NAME;
        let bi_id = placement.backup_instance_id();
        // Before onboarding runs, the hooks apply_hooks would put on the cluster.
        let assessed = configure_backup::assess(self.ctx, cluster, placement, vault_exists).await?;
        let spec = assessed.spec;
        let Some((id, verdict)) = assessed.existing else {
            let namespaces = if spec.included_namespaces.is_empty() {
                "all namespaces".to_string()
            } else {
                format!("namespaces {}", spec.included_namespaces.join(", "))
            };
            let excluded = if spec.excluded_namespaces.is_empty() {
                String::new()
            } else {
                format!(" except {}", spec.excluded_namespaces.join(", "))
            };
            self.add(
                STEP,
                "backup instance",
                bi_id,
                Change::Create,
                format!(
                    "validateForBackup, then protect {namespaces}{excluded} with policy {}, {} backup hook{}",
                    placement.policy,
                    spec.hooks.len(),
                    if spec.hooks.len() == 1 { "" } else { "s" }
                ),
            );
            return Ok(None);
        };
        match verdict {
            InstanceVerdict::Adopt { id, differences } => {
                let adopted = !id.eq_ignore_ascii_case(&bi_id);
                let detail = if differences.is_empty() {
                    "ProtectionConfigured".to_string()
                } else {
                    format!(
                        "ProtectionConfigured; differs from the settings ({}), which cannot change in place: delete it to apply them",
                        differences.join("; ")
                    )
                };
                self.add(
                    STEP,
                    "backup instance",
                    id.clone(),
                    if adopted {
                        Change::Adopt
                    } else {
                        Change::InPlace
                    },
                    detail,
                );
                Ok(Some(id))
            }
            InstanceVerdict::Resubmit { id, state } => {
                self.add(
                    STEP,
                    "backup instance",
                    id.clone(),
                    Change::Update,
                    format!("{state}: re-submitted"),
                );
                Ok(Some(id))
            }
            InstanceVerdict::MissingRoles { id, text } => {
                self.add(
                    STEP,
                    "backup instance",
                    id.clone(),
                    Change::Update,
                    format!("{text}; the role assignments are re-checked, then it is re-submitted"),
                );
                Ok(Some(id))
            }
            InstanceVerdict::Busy { id, state } => {
                self.add(STEP, "backup instance", id.clone(), Change::Wait, state);
                Ok(Some(id))
            }
            InstanceVerdict::Fail(reason) | InstanceVerdict::Held(reason) => {
                self.block(STEP, "backup instance", id, reason);
                Ok(None)
            }
        }
    }

    async fn first_backup(&mut self, instance: Option<&str>) -> Result<(), StepError> {
        const STEP: &str = first_backup::NAME;
        if !self.ctx.onboarding.first_backup {
            return Ok(());
        }
        let (target, point) = match instance {
            Some(bi) => (
                bi.to_string(),
                first_backup::first_recovery_point(self.ctx, bi).await?,
            ),
            None => ("the new backup instance".to_string(), None),
        };
        match point {
            Some((id, at)) => self.add(
                STEP,
                "first backup",
                target,
                Change::InPlace,
                format!("recovery point {id} at {at}"),
            ),
            None => self.add(
                STEP,
                "first backup",
                target,
                Change::Run,
                "an ad-hoc backup, then wait for its recovery point",
            ),
        }
        Ok(())
    }
}

fn settings_of(ctx: &Ctx) -> PlanSettings {
    let s = &ctx.onboarding;
    PlanSettings {
        profile: s.profile.as_str(),
        layout: match s.layout {
            Layout::PerCluster => "perCluster",
            Layout::SharedPerRegion => "sharedPerRegion",
        },
        role_profile: match s.role_profile {
            RoleProfileName::Guide => "guide",
            RoleProfileName::AzCli => "azCli",
        },
        first_backup: s.first_backup,
    }
}

//! The context every step shares: the engine's part (clock, bus, journal, step queue, retry
//! policy; see [`crate::engine::Context`]) and the clients and settings the workflows use (ARM,
//! Kubernetes, hooks, onboarding and restore settings, report store, alerts).

use std::sync::Arc;

use crate::bus::{Publisher, Queues};
use crate::clock::Clock;
use crate::engine::{Context, RetryPolicy};
use crate::status::store::{MemoryJournal, StatusStore};

/// Everything a step may use. Cheap to clone; shared by all invocations.
#[derive(Clone)]
pub struct Ctx {
    /// Where "now" comes from.
    pub clock: Arc<dyn Clock>,
    /// Sends messages.
    pub publisher: Arc<dyn Publisher>,
    /// Records step transitions, answers status questions and holds claims.
    pub journal: Arc<dyn StatusStore>,
    /// Queue names.
    pub queues: Queues,
    /// Step retry backoff.
    pub retry: RetryPolicy,
    /// Azure Resource Manager.
    pub arm: Arc<crate::arm::ArmClient>,
    /// What onboarding and offboarding do (validated at start).
    pub onboarding: Arc<super::settings::OnboardingSettings>,
    /// What restores and drills do (validated at start).
    pub restore: Arc<crate::restore::settings::RestoreSettings>,
    /// Where restore and drill evidence reports go.
    pub reports: Arc<dyn crate::restore::store::ReportStore>,
    /// Kubernetes clients for clusters.
    pub kube: Arc<dyn crate::kube::ClusterAccess>,
    /// The hooks every onboarded cluster gets (validated at startup).
    pub hooks: Arc<crate::kube::HookSet>,
    /// Where drill alerts go.
    pub alerts: Arc<dyn crate::restore::alert::AlertSink>,
    /// The role assignments counted and reserved per subscription.
    pub role_ledger: Arc<super::role_budget::RoleLedger>,
}

impl Ctx {
    /// A context with in-memory defaults around a clock and a publisher: a memory journal,
    /// the default queues and backoff, no cluster access, no hooks, an ARM client that refuses
    /// every call, the default onboarding and restore settings and reports kept in memory.
    /// Callers replace what they need with
    /// struct-update syntax (`Ctx { kube, ..Ctx::with_defaults(c, p) }`).
    pub fn with_defaults(clock: Arc<dyn Clock>, publisher: Arc<dyn Publisher>) -> Self {
        Self {
            arm: Arc::new(crate::arm::ArmClient::unconfigured(clock.clone())),
            clock,
            publisher,
            journal: Arc::new(MemoryJournal::default()),
            queues: Queues::default(),
            retry: RetryPolicy::default(),
            kube: Arc::new(crate::kube::access::NoClusterAccess),
            hooks: Arc::default(),
            onboarding: Arc::default(),
            restore: Arc::default(),
            reports: Arc::new(crate::restore::store::MemoryReportStore::default()),
            alerts: Arc::new(crate::restore::alert::LogOnly),
            role_ledger: Arc::default(),
        }
    }
}

impl Context for Ctx {
    type Journal = dyn StatusStore;

    fn clock(&self) -> &dyn Clock {
        &*self.clock
    }

    fn publisher(&self) -> &dyn Publisher {
        &*self.publisher
    }

    fn journal(&self) -> &dyn StatusStore {
        &*self.journal
    }

    fn step_queue(&self) -> &str {
        &self.queues.workflow
    }

    fn retry(&self) -> &RetryPolicy {
        &self.retry
    }
}

//! The Azure Resource Manager stand-in: the ARM operations the product calls, at its API
//! versions, over HTTPS, validated as Azure validates them and answered in the specs' shapes,
//! on an injected clock (guide timings), with Azure's delays (principal replication, role
//! propagation), throttling, fault knobs and a journal of every request; plus Azure Resource
//! Graph for the fleet sweep's two queries ([`resource_graph`]), a management-group hierarchy
//! ([`management_groups`]) and hooks that break a cluster's protection ([`drift`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use backup_pilot::clock::SystemClock;
//! use backup_pilot_standins::arm::{ArmStandIn, ClusterSeed};
//! use backup_pilot_standins::token::TokenIssuer;
//!
//! let tokens = TokenIssuer::new("secret");
//! let (base_url, arm) = ArmStandIn::builder()
//!     .clock(Arc::new(SystemClock))
//!     .tokens(tokens.clone())
//!     .kube_api_url("http://127.0.0.1:6443")
//!     .build()
//!     .spawn()
//!     .await?;
//! arm.add_subscription("00000000-0000-0000-0000-000000000001")?;
//! arm.add_cluster(ClusterSeed::new("00000000-0000-0000-0000-000000000001", "rg", "aks", "westeurope"))?;
//! # let _ = base_url; Ok(()) }
//! ```

pub mod aks_versions;
pub mod assignment_limit;
pub mod authz;
pub mod capacity;
pub mod condition;
pub mod data_plane;
pub mod drift;
pub mod error;
pub mod extension_hook;
pub mod faults;
pub mod grants;
pub mod journal;
pub mod kubeconfig;
pub mod least_privilege;
pub mod lro;
pub mod management_groups;
pub mod prerequisites;
pub mod providers;
pub mod rbac;
pub mod regions;
pub mod resource_graph;
pub mod response;
pub mod router;
pub mod seed;
pub mod seed_protection;
pub mod server;
pub mod snapshot;
pub mod state;
pub mod throttle;
pub mod timings;
pub mod validate;

use std::sync::{Arc, Mutex};

use axum::Router;
use tokio_util::sync::CancellationToken;

use crate::token::TokenIssuer;
use backup_pilot::clock::{Clock, SystemClock};

pub use authz::{AuthzCheck, Permission, RoleDefinition};
pub use capacity::CapacityModel;
pub use drift::{BrokenProtection, Drift};
pub use error::{ArmError, StandInError};
pub use extension_hook::{
    ExtensionInstalled, ExtensionInstalledHook, ExtensionRemoved, ExtensionRemovedHook,
};
pub use faults::{FaultKnobs, InjectedFailure};
pub use grants::{GrantsError, TargetGrants, TargetParams};
pub use journal::{ArmRequestRecord, RequestTally};
pub use rbac::{PrincipalKind, roles};
pub use resource_graph::{GraphSettings, QuotaLimit};
pub use seed::{ClusterSeed, EntraSeed, NodePoolSeed, PoolMode, SeededCluster};
pub use seed_protection::{ProtectionSeed, SeededProtection};
pub use snapshot::ArmSnapshot;
pub use throttle::{
    BucketLimit, OperationLimits, RegionalLimits, ThrottleLimits, ThrottleModel, TokenBucket,
};
pub use timings::Timings;

use server::{Controls, Inner};
use state::World;

/// Default Kubernetes API URL in kubeconfigs until one is configured.
pub const DEFAULT_KUBE_API_URL: &str = "https://kube-api.stand-in.invalid:443";
/// Default tenant id.
pub const DEFAULT_TENANT_ID: &str = "5f1e3a7c-0000-4000-8000-00000000a2b0";
/// Default object id of the caller (recorded as `createdBy`).
pub const DEFAULT_CALLER_OBJECT_ID: &str = "0c0ffee0-0000-4000-8000-000000000001";

/// Builds an [`ArmStandIn`].
pub struct ArmStandInBuilder {
    clock: Arc<dyn Clock>,
    tokens: TokenIssuer,
    kube_api_url: String,
    tenant_id: String,
    caller_object_id: String,
    timings: Timings,
    capacity: CapacityModel,
    throttle: ThrottleModel,
    faults: FaultKnobs,
    resource_graph: GraphSettings,
    on_extension_installed: Option<ExtensionInstalledHook>,
    on_extension_removed: Option<ExtensionRemovedHook>,
}

impl std::fmt::Debug for ArmStandInBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArmStandInBuilder")
            .field("kube_api_url", &self.kube_api_url)
            .field("tenant_id", &self.tenant_id)
            .field("timings", &self.timings)
            .finish_non_exhaustive()
    }
}

impl ArmStandInBuilder {
    /// The clock (default: the system clock).
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The token issuer whose ARM tokens are accepted (default: a fresh issuer; get it back
    /// with [`ArmHandle::tokens`]).
    #[must_use]
    pub fn tokens(mut self, tokens: TokenIssuer) -> Self {
        self.tokens = tokens;
        self
    }

    /// The Kubernetes API URL kubeconfigs point at.
    #[must_use]
    pub fn kube_api_url(mut self, url: impl Into<String>) -> Self {
        self.kube_api_url = url.into();
        self
    }

    /// The tenant id.
    #[must_use]
    pub fn tenant_id(mut self, tenant_id: impl Into<String>) -> Self {
        self.tenant_id = tenant_id.into();
        self
    }

    /// The caller's object id (`createdBy` of role assignments).
    #[must_use]
    pub fn caller_object_id(mut self, object_id: impl Into<String>) -> Self {
        self.caller_object_id = object_id.into();
        self
    }

    /// Durations (default: the guide's timeline).
    #[must_use]
    pub fn timings(mut self, timings: Timings) -> Self {
        self.timings = timings;
        self
    }

    /// Node capacity model.
    #[must_use]
    pub fn capacity(mut self, capacity: CapacityModel) -> Self {
        self.capacity = capacity;
        self
    }

    /// ARM's throttling (default: the regional token buckets ARM uses since 2024,
    /// [`RegionalLimits::default`]; pass [`ThrottleLimits`] for the pre-2024 hourly model).
    #[must_use]
    pub fn throttle(mut self, model: impl Into<ThrottleModel>) -> Self {
        self.throttle = model.into();
        self
    }

    /// Fault knobs (default: none).
    #[must_use]
    pub fn faults(mut self, knobs: FaultKnobs) -> Self {
        self.faults = knobs;
        self
    }

    /// Resource Graph's indexing lag and per-user quota (default: 30 s lag, 15 queries per
    /// 5 s, both on the stand-in's clock).
    #[must_use]
    pub fn resource_graph(mut self, settings: GraphSettings) -> Self {
        self.resource_graph = settings;
        self
    }

    /// Called when an extension install completes on a cluster (default: nobody), e.g. to put
    /// the extension's CRDs and pods into that cluster's Kubernetes API stand-in.
    #[must_use]
    pub fn on_extension_installed(mut self, hook: ExtensionInstalledHook) -> Self {
        self.on_extension_installed = Some(hook);
        self
    }

    /// Called when an extension's deletion completes (the fake clusters remove what the
    /// extension installed).
    #[must_use]
    pub fn on_extension_removed(mut self, hook: ExtensionRemovedHook) -> Self {
        self.on_extension_removed = Some(hook);
        self
    }

    /// Builds the stand-in (nothing listens until [`ArmStandIn::spawn`]).
    pub fn build(self) -> ArmStandIn {
        let mut world = World::new(
            self.tenant_id,
            self.caller_object_id,
            self.kube_api_url,
            self.timings,
            self.capacity,
        );
        world.on_extension_installed = self.on_extension_installed;
        world.on_extension_removed = self.on_extension_removed;
        let inner = Arc::new(Inner {
            clock: self.clock,
            tokens: self.tokens,
            world: Mutex::new(world),
            journal: journal::Journal::default(),
            authz: Mutex::new(authz::Authz::new()),
            controls: Mutex::new(Controls {
                throttle: throttle::Throttle::new(self.throttle),
                faults: faults::Faults::new(self.faults),
            }),
            graph: Mutex::new(resource_graph::Graph::new(self.resource_graph)),
        });
        ArmStandIn {
            handle: ArmHandle {
                inner,
                shutdown: CancellationToken::new(),
            },
        }
    }
}

/// A built stand-in.
#[derive(Debug, Clone)]
pub struct ArmStandIn {
    handle: ArmHandle,
}

impl ArmStandIn {
    /// A builder with defaults.
    pub fn builder() -> ArmStandInBuilder {
        ArmStandInBuilder {
            clock: Arc::new(SystemClock),
            tokens: TokenIssuer::new(&uuid::Uuid::new_v4().simple().to_string()),
            kube_api_url: DEFAULT_KUBE_API_URL.into(),
            tenant_id: DEFAULT_TENANT_ID.into(),
            caller_object_id: DEFAULT_CALLER_OBJECT_ID.into(),
            timings: Timings::default(),
            capacity: CapacityModel::default(),
            throttle: ThrottleModel::default(),
            faults: FaultKnobs::default(),
            resource_graph: GraphSettings::default(),
            on_extension_installed: None,
            on_extension_removed: None,
        }
    }

    /// The router, for in-process use (every path goes to the stand-in).
    pub fn router(&self) -> Router {
        Router::new()
            .fallback(server::handle)
            .with_state(self.handle.inner.clone())
    }

    /// The seeding and inspection handle.
    pub fn handle(&self) -> ArmHandle {
        self.handle.clone()
    }

    /// Serves HTTPS with the run's certificate ([`crate::tls`]) on an ephemeral loopback port;
    /// returns the base URL (`https://127.0.0.1:port`) and the handle. The server stops on
    /// [`ArmHandle::shutdown`].
    ///
    /// # Errors
    /// Binding the port.
    pub async fn spawn(&self) -> Result<(String, ArmHandle), StandInError> {
        let stop = self.handle.shutdown.clone();
        let url =
            crate::tls::serve_tls_on_loopback(self.router(), async move { stop.cancelled().await })
                .await
                .map_err(StandInError::Spawn)?;
        Ok((url, self.handle()))
    }
}

/// Seeding, knobs and inspection of a running stand-in (cheap to clone).
#[derive(Debug, Clone)]
pub struct ArmHandle {
    inner: Arc<Inner>,
    shutdown: CancellationToken,
}

impl ArmHandle {
    /// The issuer whose tokens the stand-in accepts.
    pub fn tokens(&self) -> &TokenIssuer {
        &self.inner.tokens
    }

    /// A bearer token for ARM (`Authorization: Bearer …`).
    pub fn arm_token(&self) -> String {
        self.inner.tokens.issue(server::ARM_AUDIENCE)
    }

    /// The stand-in's current time.
    pub fn now(&self) -> time::OffsetDateTime {
        self.inner.clock.now()
    }

    /// The tenant id.
    pub fn tenant_id(&self) -> String {
        self.inner.world().tenant_id.clone()
    }

    /// Points kubeconfigs at `url` (clusters seeded with their own URL keep it).
    pub fn set_kube_api_url(&self, url: &str) {
        self.inner.world().kube_api_url = url.to_string();
    }

    /// The CA (base64 PEM) kubeconfigs pointing at the default URL carry.
    pub fn set_kube_api_ca(&self, certificate_authority_data: Option<&str>) {
        self.inner.world().kube_api_ca = certificate_authority_data.map(str::to_string);
    }

    /// Replaces the durations (operations already started keep theirs).
    pub fn set_timings(&self, timings: Timings) {
        self.inner.world().timings = timings;
    }

    /// Replaces the capacity model.
    pub fn set_capacity(&self, capacity: CapacityModel) {
        self.inner.world().capacity = capacity;
    }

    /// Replaces the throttling model or its limits ([`RegionalLimits`] or the hourly
    /// [`ThrottleLimits`]); every bucket refills.
    pub fn set_throttle(&self, model: impl Into<ThrottleModel>) {
        self.inner.controls().throttle.set_model(model);
    }

    /// Replaces the fault knobs (and reseeds the RNG).
    pub fn set_faults(&self, knobs: FaultKnobs) {
        self.inner.controls().faults.set_knobs(knobs);
    }

    /// Makes the next `times` calls of `operation_id` (a spec operation id such as
    /// `BackupInstances_ValidateForBackup`) answer `failure`.
    pub fn fail_next(&self, operation_id: &str, times: u32, failure: InjectedFailure) {
        self.inner
            .controls()
            .faults
            .fail_next(operation_id, times, failure);
    }

    /// Stops servers started by [`ArmStandIn::spawn`].
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }
}

//! `check_cluster_access` (fact in: `RolesAssigned`): the service reaches the cluster's API
//! server and is let in, while the extension is still installing. It fetches the kubeconfig
//! (`listClusterUserCredential`) and reads the server's version: a private API server the
//! service cannot route to, local accounts switched off without an Entra role for the service,
//! or a refused credential all show here, minutes before the health gate needs the cluster.
//!
//! It is also the fleet's pacing: the kubeconfig fetch is a POST, drawn from the
//! subscription's write bucket like the writes that follow the install (the extension's
//! roles, validation, the backup instance). Fetched here, inside the install window, it is
//! kept ([`crate::kube::kubeconfig_cache`]) for the health gate and the hooks, so each cluster
//! sends one write fewer once its install ends, when a fleet's installs all end together.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::Method;

use crate::engine::{Outcome, Step, StepError};
use crate::envelope::Envelope;
use crate::workflow::Ctx;
use crate::workflow::facts::advance;
use crate::workflow::onboarding::OnboardStep;
use crate::workflow::onboarding::facts::OnboardFacts;
use crate::workflow::onboarding::steps::install_extension::room_during_install;

/// The step's name.
pub const NAME: &str = OnboardStep::CheckClusterAccess.as_str();
/// The step that runs next.
pub const NEXT_STEP: &str = OnboardStep::CheckClusterAccess.next_name();
/// The fact it publishes.
pub const FACT: &str = "ClusterReachable";
/// The fact key of the API server's version (`major.minor`, as the server reports it).
pub const API_SERVER_VERSION: &str = "apiServerVersion";

/// See the module docs.
#[derive(Debug, Default, Clone, Copy)]
pub struct CheckClusterAccess;

#[async_trait]
impl Step<Ctx> for CheckClusterAccess {
    fn name(&self) -> &'static str {
        NAME
    }

    fn timeout(&self) -> Duration {
        // An unreachable API server is retried this long before the workflow fails with it.
        Duration::from_secs(30 * 60)
    }

    async fn run(&self, ctx: &Ctx, env: &Envelope) -> Result<Outcome, StepError> {
        let cluster = crate::workflow::cluster_id(env)?;
        // The install is still running: the kubeconfig's fetch (a POST) waits for spare quota.
        room_during_install(
            ctx,
            OnboardFacts::of(env).extension_submitted_at,
            &Method::POST,
            &format!("{cluster}/listClusterUserCredential"),
        )?;
        let client = ctx.kube.client(&cluster).await?;
        let version = client
            .kube()
            .apiserver_version()
            .await
            .map_err(|e| client.error("read the API server's version", e))?;
        Ok(advance(NEXT_STEP, FACT).with(
            API_SERVER_VERSION,
            format!("{}.{}", version.major, version.minor),
        ))
    }
}

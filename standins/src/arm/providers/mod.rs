//! Resource-provider handlers, one file per namespace, and the dispatch from a matched
//! [`Route`] to them. Every handler works on the [`World`] already advanced to "now",
//! validates with [`super::validate`], and answers in its provider's shapes.

pub mod authorization;
pub mod container_service;
pub mod data_protection;
pub mod extensions;
pub mod resources;
pub mod restore;
pub mod storage;

use axum::http::{Method, StatusCode};
use serde_json::Value;
use time::OffsetDateTime;

use super::error::ArmError;
use super::response::HandlerResult;
use super::router::Route;
use super::state::World;

/// What a handler knows about the request besides the route.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    /// The stand-in's "now".
    pub now: OffsetDateTime,
    /// `http://host:port` of this request, for absolute `Location` URLs.
    pub base_url: &'a str,
    /// The request's api-version (already checked).
    pub api_version: &'a str,
    /// Decoded query pairs.
    pub query: &'a [(String, String)],
    /// Parsed JSON body (`None` when empty).
    pub body: Option<&'a Value>,
    /// HTTP method.
    pub method: &'a Method,
}

impl Ctx<'_> {
    /// An absolute URL on this host for `path`, with this request's api-version.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}?api-version={}", self.base_url, self.api_version)
    }

    /// The first query value named `name` (case-insensitive name).
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Routes a request to its provider.
///
/// # Errors
/// Whatever the provider refuses with: unknown subscription or resource group, validation
/// failures, conflicts.
pub fn dispatch(world: &mut World, route: &Route, ctx: &Ctx<'_>) -> HandlerResult {
    if let Some(sub) = route.subscription()
        && world.subscription(sub).is_none()
    {
        return Err(ArmError::subscription_not_found(sub));
    }
    if let Some(group) = route.group() {
        match world.group(&group.sub, &group.rg) {
            None => return Err(ArmError::resource_group_not_found(&group.rg)),
            Some(g) if g.deleting && *ctx.method != Method::GET => {
                return Err(ArmError::new(
                    StatusCode::CONFLICT,
                    "ResourceGroupBeingDeleted",
                    format!(
                        "The resource group '{}' is in deprovisioning state and cannot perform this operation.",
                        g.name
                    ),
                ));
            }
            Some(_) => {}
        }
    }
    let m = ctx.method.as_str();
    use Route as R;
    match (route, m) {
        (R::Provider { sub, namespace }, _) => resources::get_provider(world, sub, namespace, ctx),
        (R::ProviderRegister { sub, namespace }, _) => {
            resources::register_provider(world, sub, namespace, ctx)
        }
        (R::ResourceGroup(g), "GET") => resources::get_group(world, g),
        (R::ResourceGroup(g), "HEAD") => resources::head_group(world, g),
        (R::ResourceGroup(g), "PUT") => resources::put_group(world, g, ctx),
        (R::ResourceGroup(g), "DELETE") => resources::delete_group(world, g, ctx),
        (R::ResourceGroupOperation { sub, id }, _) => {
            resources::group_operation(world, sub, id, ctx)
        }

        (R::ClustersInSubscription { sub }, _) => {
            Ok(container_service::list_clusters(world, sub, None))
        }
        (R::ClustersInGroup(g), _) => {
            Ok(container_service::list_clusters(world, &g.sub, Some(&g.rg)))
        }
        (R::Cluster(c), "GET") => container_service::get_cluster(world, c),
        (R::Cluster(c), "PUT") => container_service::put_cluster(world, c, ctx),
        (R::Cluster(c), "DELETE") => container_service::delete_cluster(world, c, ctx),
        (R::AgentPools(c), _) => container_service::list_pools(world, c),
        (R::AgentPool(c, p), "GET") => container_service::get_pool(world, c, p),
        (R::AgentPool(c, p), "PUT") => container_service::put_pool(world, c, p, ctx),
        (R::ClusterUserCredentials(c), _) => container_service::user_credentials(world, c, ctx),
        (R::TrustedAccessBindings(c), _) => container_service::list_bindings(world, c),
        (R::TrustedAccessBinding(c, b), "GET") => container_service::get_binding(world, c, b),
        (R::TrustedAccessBinding(c, b), "PUT") => container_service::put_binding(world, c, b, ctx),
        (R::TrustedAccessBinding(c, b), "DELETE") => {
            container_service::delete_binding(world, c, b, ctx)
        }
        (R::TrustedAccessRoles { .. }, _) => Ok(container_service::trusted_access_roles()),
        (R::KubernetesVersions { .. }, _) => Ok(super::aks_versions::kubernetes_version_list()),
        (R::ContainerServiceOperationStatus { sub, location, id }, _) => {
            container_service::operation_status(world, sub, location, id)
        }
        (R::ContainerServiceOperationResult { sub, location, id }, _) => {
            container_service::operation_result(world, sub, location, id, ctx)
        }

        (R::Extensions(c), _) => extensions::list_extensions(world, c),
        (R::Extension(c, e), "GET") => extensions::get_extension(world, c, e),
        (R::Extension(c, e), "PUT") => extensions::put_extension(world, c, e, ctx),
        (R::Extension(c, e), "DELETE") => extensions::delete_extension(world, c, e, ctx),
        (R::ExtensionOperation(c, e, id), _) => extensions::operation_status(world, c, e, id),

        (R::StorageNameAvailability { .. }, _) => storage::check_name(world, ctx),
        (R::StorageAccount(g, a), "GET") => storage::get_account(world, g, a),
        (R::StorageAccount(g, a), "PUT") => storage::put_account(world, g, a, ctx),
        (R::StorageAccount(g, a), "DELETE") => storage::delete_account(world, g, a),
        (R::BlobContainer(g, a, c), "GET") => storage::get_container(world, g, a, c),
        (R::BlobContainer(g, a, c), "PUT") => storage::put_container(world, g, a, c, ctx),
        (R::BlobContainer(g, a, c), "DELETE") => storage::delete_container(world, g, a, c),
        (R::StorageOperation { sub, location, id }, _) => {
            storage::create_operation(world, sub, location, id, ctx)
        }

        (R::VaultsInSubscription { sub }, _) => Ok(data_protection::list_vaults(world, sub, None)),
        (R::VaultsInGroup(g), _) => Ok(data_protection::list_vaults(world, &g.sub, Some(&g.rg))),
        (R::Vault(v), "GET") => data_protection::get_vault(world, v),
        (R::Vault(v), "PUT") => data_protection::put_vault(world, v, ctx),
        (R::Vault(v), "DELETE") => data_protection::delete_vault(world, v),
        (R::VaultOperationStatus(v, id), _) => {
            data_protection::vault_operation_status(world, v, id)
        }
        (R::VaultOperationResult(v, id), _) => {
            data_protection::vault_operation_result(world, v, id, ctx)
        }
        (R::GroupOperationStatus(g, id), _) => {
            data_protection::group_operation_status(world, g, id)
        }
        (R::LocationOperationStatus { sub, location, id }, _) => {
            data_protection::location_operation_status(world, sub, location, id)
        }
        (R::LocationOperationResult { sub, location, id }, _) => {
            data_protection::location_operation_result(world, sub, location, id, ctx)
        }
        (R::Policies(v), _) => data_protection::list_policies(world, v),
        (R::Policy(v, p), "GET") => data_protection::get_policy(world, v, p),
        (R::Policy(v, p), "PUT") => data_protection::put_policy(world, v, p, ctx),
        (R::Policy(v, p), "DELETE") => data_protection::delete_policy(world, v, p),
        (R::Instances(v), _) => data_protection::list_instances(world, v),
        (R::Instance(i), "GET") => data_protection::get_instance(world, i),
        (R::Instance(i), "PUT") => data_protection::put_instance(world, i, ctx),
        (R::Instance(i), "DELETE") => data_protection::delete_instance(world, i, ctx),
        (R::InstanceOperationResult(i, id), _) => {
            data_protection::instance_operation_result(world, i, id, ctx)
        }
        (R::AdhocBackup(i), _) => data_protection::adhoc_backup(world, i, ctx),
        (R::StopProtection(i), _) => data_protection::stop_protection(world, i, ctx),
        (R::ValidateForBackup(v), _) => data_protection::validate_for_backup(world, v, ctx),
        (R::ValidateRestore(i), _) => restore::validate_restore(world, i, ctx),
        (R::TriggerRestore(i), _) => restore::trigger_restore(world, i, ctx),
        (R::RecoveryPoints(i), _) => data_protection::list_recovery_points(world, i),
        (R::RecoveryPoint(i, rp), _) => data_protection::get_recovery_point(world, i, rp),
        (R::Jobs(v), _) => data_protection::list_jobs(world, v),
        (R::Job(v, j), _) => data_protection::get_job(world, v, j),

        (R::RoleAssignments { scope }, _) => authorization::list(world, scope, ctx),
        (R::RoleAssignment { scope, name }, "GET") => authorization::get(world, scope, name),
        (R::RoleAssignment { scope, name }, "PUT") => authorization::put(world, scope, name, ctx),
        (R::RoleAssignment { scope, name }, "DELETE") => authorization::delete(world, scope, name),

        (route, method) => Err(ArmError::method_not_allowed(method, &format!("{route:?}"))),
    }
}

/// A JSON `{"value": [...]}` list answer.
pub fn list_answer(items: Vec<Value>) -> super::response::ArmResponse {
    super::response::ArmResponse::ok(serde_json::json!({ "value": items }))
}

/// Tags as JSON (`{}` when none).
pub fn tags_json(tags: Option<&std::collections::BTreeMap<String, String>>) -> Value {
    serde_json::to_value(tags.cloned().unwrap_or_default()).unwrap_or(Value::Null)
}

/// Locations compare case-insensitively and ignoring spaces (`West Europe` = `westeurope`).
pub fn same_location(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        s.chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .to_ascii_lowercase()
    };
    norm(a) == norm(b)
}

/// A fresh GUID as text.
pub fn new_guid() -> String {
    uuid::Uuid::new_v4().to_string()
}

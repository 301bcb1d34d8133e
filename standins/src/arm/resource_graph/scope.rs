//! The subscriptions a query covers: those named in `subscriptions` that exist (Azure queries
//! the ones the caller can see and answers 400 `NoValidSubscriptionsInQueryRequest` when none
//! is left), every subscription under the groups named in `managementGroups`, transitively
//! (400 `ManagementGroupsContainInvalidIds` when one does not exist), or, with neither, every
//! subscription of the tenant. Both at once answers 400: the stand-in does not model that
//! combination. Membership is read from the live world, not the lagging index.

use std::collections::BTreeSet;

use super::super::state::World;
use super::error::GraphError;
use super::request::QueryRequest;

/// The lower-cased subscriptions `request` covers.
///
/// # Errors
/// 400 for an empty or unknown scope, or both kinds of scope at once.
pub fn resolve(world: &World, request: &QueryRequest) -> Result<BTreeSet<String>, GraphError> {
    let groups = request.management_groups.as_ref().filter(|g| !g.is_empty());
    match (&request.subscriptions, groups) {
        (Some(_), Some(_)) => Err(GraphError::bad_request(
            "ScopeCombinationNotSupportedByStandIn",
            "The Resource Graph stand-in takes either 'subscriptions' or 'managementGroups', not both.",
        )),
        (Some(subscriptions), None) => {
            let known: BTreeSet<String> = subscriptions
                .iter()
                .filter(|s| world.subscription(s).is_some())
                .map(|s| s.to_ascii_lowercase())
                .collect();
            if known.is_empty() {
                Err(GraphError::bad_request(
                    "NoValidSubscriptionsInQueryRequest",
                    format!(
                        "There must be at least one subscription that is eligible to contain resources. Given: '{}'.",
                        subscriptions.join(",")
                    ),
                ))
            } else {
                Ok(known)
            }
        }
        (None, Some(groups)) => {
            let root = world.tenant_id.as_str();
            let invalid: Vec<&str> = groups
                .iter()
                .filter(|g| !world.management_groups.exists(g, root))
                .map(String::as_str)
                .collect();
            if !invalid.is_empty() {
                return Err(GraphError::bad_request(
                    "ManagementGroupsContainInvalidIds",
                    format!(
                        "The provided management groups must be valid. Given: '{}'.",
                        invalid.join(",")
                    ),
                ));
            }
            let existing: BTreeSet<String> = world.subscriptions.keys().cloned().collect();
            Ok(groups
                .iter()
                .flat_map(|g| {
                    world
                        .management_groups
                        .subscriptions_under(g, root, world.subscriptions.keys())
                })
                .filter(|s| existing.contains(s))
                .collect())
        }
        (None, None) => Ok(world.subscriptions.keys().cloned().collect()),
    }
}

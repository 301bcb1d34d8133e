//! Management groups: a hierarchy under the tenant root group (named after the tenant id, as
//! Azure names it). Each group has a parent (the root when none is given) and the
//! subscriptions placed directly in it; a subscription sits in exactly one group, the root
//! until it is placed. Resource Graph resolves a `managementGroups` scope through it,
//! transitively. `GET /providers/Microsoft.Management/managementGroups/{name}` (2023-04-01)
//! answers a minimal `ManagementGroup`; an unknown name answers ARM's 403
//! `AuthorizationFailed`, which is what Azure sends for a group that does not exist
//! (Azure/azure-rest-api-specs issue #9549).

use std::collections::{BTreeMap, BTreeSet};

use axum::http::{Method, StatusCode};
use serde_json::json;

use super::ArmHandle;
use super::error::{ArmError, StandInError};
use super::response::ArmResponse;
use super::state::World;

/// The api-versions the group GET accepts.
pub const VERSIONS: [&str; 1] = ["2023-04-01"];

/// One management group below the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagementGroupRecord {
    /// Name (the group id) as created.
    pub name: String,
    /// The parent's name as created; `None` is the tenant root group.
    pub parent: Option<String>,
    /// Subscriptions placed directly in the group, lower case.
    pub subscriptions: BTreeSet<String>,
}

/// Every group below the tenant root group, by lower-cased name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hierarchy {
    groups: BTreeMap<String, ManagementGroupRecord>,
}

/// The ARM id of a management group.
pub fn group_id(name: &str) -> String {
    format!("/providers/Microsoft.Management/managementGroups/{name}")
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 90
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_().".contains(c))
        && !name.ends_with('.')
}

impl Hierarchy {
    /// The group, if it exists below the root.
    pub fn get(&self, name: &str) -> Option<&ManagementGroupRecord> {
        self.groups.get(&name.to_ascii_lowercase())
    }

    /// Whether `name` is the root (`root` is the tenant id) or a group below it.
    pub fn exists(&self, name: &str, root: &str) -> bool {
        name.eq_ignore_ascii_case(root) || self.get(name).is_some()
    }

    /// Adds a group under `parent` (the root when `None`). Adding an existing group under the
    /// same parent changes nothing.
    ///
    /// # Errors
    /// An invalid or root name, an unknown parent, or an existing group under another parent.
    pub fn add(&mut self, name: &str, parent: Option<&str>, root: &str) -> Result<(), String> {
        if !valid_name(name) {
            return Err(format!(
                "'{name}' is not a valid management group name (1-90 letters, digits, '-', '_', '(', ')', '.'; not ending with '.')"
            ));
        }
        if name.eq_ignore_ascii_case(root) {
            return Err(format!("'{name}' is the tenant root group"));
        }
        let parent = match parent {
            Some(p) if p.eq_ignore_ascii_case(root) => None,
            Some(p) => Some(
                self.get(p)
                    .map(|g| g.name.clone())
                    .ok_or_else(|| format!("unknown parent management group '{p}'"))?,
            ),
            None => None,
        };
        if let Some(existing) = self.get(name) {
            let same = match (&existing.parent, &parent) {
                (None, None) => true,
                (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
                _ => false,
            };
            return if same {
                Ok(())
            } else {
                Err(format!(
                    "management group '{name}' exists under another parent"
                ))
            };
        }
        self.groups.insert(
            name.to_ascii_lowercase(),
            ManagementGroupRecord {
                name: name.to_string(),
                parent,
                subscriptions: BTreeSet::new(),
            },
        );
        Ok(())
    }

    /// Moves `subscription` into `group` (the root takes it back).
    ///
    /// # Errors
    /// An unknown group.
    pub fn place(&mut self, subscription: &str, group: &str, root: &str) -> Result<(), String> {
        if !self.exists(group, root) {
            return Err(format!("unknown management group '{group}'"));
        }
        let sub = subscription.to_ascii_lowercase();
        for g in self.groups.values_mut() {
            g.subscriptions.remove(&sub);
        }
        if let Some(g) = self.groups.get_mut(&group.to_ascii_lowercase()) {
            g.subscriptions.insert(sub);
        }
        Ok(())
    }

    /// Every subscription (lower case) under `group`, transitively; under the root, every
    /// subscription of `all`.
    pub fn subscriptions_under<'a>(
        &self,
        group: &str,
        root: &str,
        all: impl Iterator<Item = &'a String>,
    ) -> BTreeSet<String> {
        if group.eq_ignore_ascii_case(root) {
            return all.map(|s| s.to_ascii_lowercase()).collect();
        }
        let mut found = BTreeSet::new();
        let mut pending = vec![group.to_ascii_lowercase()];
        let mut seen = BTreeSet::new();
        while let Some(current) = pending.pop() {
            if !seen.insert(current.clone()) {
                continue;
            }
            if let Some(g) = self.groups.get(&current) {
                found.extend(g.subscriptions.iter().cloned());
            }
            pending.extend(
                self.groups
                    .iter()
                    .filter(|(_, g)| {
                        g.parent
                            .as_deref()
                            .is_some_and(|p| p.eq_ignore_ascii_case(&current))
                    })
                    .map(|(k, _)| k.clone()),
            );
        }
        found
    }
}

/// The group name of `/providers/Microsoft.Management/managementGroups/{name}`, if `path` is
/// one.
pub fn path_name(path: &str) -> Option<String> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        [p, ns, kind, name]
            if p.eq_ignore_ascii_case("providers")
                && ns.eq_ignore_ascii_case("Microsoft.Management")
                && kind.eq_ignore_ascii_case("managementGroups") =>
        {
            Some(
                percent_encoding::percent_decode_str(name)
                    .decode_utf8_lossy()
                    .into_owned(),
            )
        }
        _ => None,
    }
}

/// `ManagementGroups_Get`, minimal: id, name, type, tenant, display name and parent.
pub fn answer(world: &World, method: &Method, api_version: &str, name: &str) -> ArmResponse {
    if !VERSIONS.contains(&api_version) {
        return ArmError::no_registered_provider(
            "global",
            api_version,
            "managementGroups",
            &VERSIONS,
        )
        .into();
    }
    if *method != Method::GET {
        return ArmError::not_implemented(&format!("ManagementGroups ({method})")).into();
    }
    let root = world.tenant_id.clone();
    let (canonical, parent) = if name.eq_ignore_ascii_case(&root) {
        (root.clone(), None)
    } else if let Some(g) = world.management_groups.get(name) {
        (
            g.name.clone(),
            Some(g.parent.clone().unwrap_or_else(|| root.clone())),
        )
    } else {
        return ArmError::new(
            StatusCode::FORBIDDEN,
            "AuthorizationFailed",
            format!(
                "The client '{caller}' with object id '{caller}' does not have authorization to perform action 'Microsoft.Management/managementGroups/read' over scope '{}' or the scope is invalid. If access was recently granted, please refresh your credentials.",
                group_id(name),
                caller = world.caller_object_id
            ),
        )
        .into();
    };
    let mut details = json!({"version": 1});
    if let Some(parent) = parent {
        let display = if parent == root {
            "Tenant Root Group".to_string()
        } else {
            parent.clone()
        };
        details["parent"] =
            json!({"id": group_id(&parent), "name": parent, "displayName": display});
    }
    let display = if canonical == root {
        "Tenant Root Group".to_string()
    } else {
        canonical.clone()
    };
    ArmResponse::ok(json!({
        "id": group_id(&canonical),
        "type": "Microsoft.Management/managementGroups",
        "name": canonical,
        "properties": {"tenantId": world.tenant_id, "displayName": display, "details": details},
    }))
}

impl ArmHandle {
    /// The tenant root group's name (the tenant id): every subscription not placed elsewhere
    /// is in it, and every group without a parent is below it.
    pub fn root_management_group(&self) -> String {
        self.tenant_id()
    }

    /// Adds management group `name` under `parent` (the tenant root group when `None`);
    /// returns its id.
    ///
    /// # Errors
    /// An invalid name, an unknown parent, or the group exists under another parent.
    pub fn add_management_group(
        &self,
        name: &str,
        parent: Option<&str>,
    ) -> Result<String, StandInError> {
        let mut world = self.inner.world();
        let root = world.tenant_id.clone();
        world
            .management_groups
            .add(name, parent, &root)
            .map_err(StandInError::ManagementGroup)?;
        Ok(group_id(name))
    }

    /// Moves a seeded subscription into management group `group` (the tenant root group's
    /// name takes it back to the root).
    ///
    /// # Errors
    /// Unknown subscription or group.
    pub fn place_subscription(&self, subscription: &str, group: &str) -> Result<(), StandInError> {
        let mut world = self.inner.world();
        if world.subscription(subscription).is_none() {
            return Err(StandInError::ManagementGroup(format!(
                "unknown subscription '{subscription}'"
            )));
        }
        let root = world.tenant_id.clone();
        world
            .management_groups
            .place(subscription, group, &root)
            .map_err(StandInError::ManagementGroup)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions_resolve_transitively_and_move_between_groups() {
        let mut h = Hierarchy::default();
        let root = "tenant";
        h.add("corp", None, root).unwrap();
        h.add("prod", Some("corp"), root).unwrap();
        h.add("Prod-EU", Some("PROD"), root).unwrap();
        h.add("sandbox", Some(root), root).unwrap();
        assert!(h.add("prod", None, root).is_err());
        assert!(h.add("x", Some("nope"), root).is_err());
        assert!(h.add("tenant", None, root).is_err());
        h.add("prod", Some("corp"), root).unwrap();
        h.place("S1", "prod-eu", root).unwrap();
        h.place("s2", "corp", root).unwrap();
        h.place("s3", "sandbox", root).unwrap();
        let all = ["s1".to_string(), "s2".into(), "s3".into(), "s4".into()];
        let under = |h: &Hierarchy, g: &str| -> Vec<String> {
            h.subscriptions_under(g, root, all.iter())
                .into_iter()
                .collect()
        };
        assert_eq!(under(&h, "corp"), ["s1", "s2"]);
        assert_eq!(under(&h, "prod"), ["s1"]);
        assert_eq!(under(&h, "sandbox"), ["s3"]);
        assert_eq!(under(&h, "TENANT").len(), 4);
        h.place("s1", "sandbox", root).unwrap();
        assert_eq!(under(&h, "prod"), Vec::<String>::new());
        assert_eq!(under(&h, "sandbox"), ["s1", "s3"]);
        h.place("s1", root, root).unwrap();
        assert_eq!(under(&h, "sandbox"), ["s3"]);
        assert!(h.place("s1", "nope", root).is_err());
    }

    #[test]
    fn group_paths_are_recognised_case_insensitively() {
        assert_eq!(
            path_name("/providers/microsoft.management/MANAGEMENTGROUPS/corp").as_deref(),
            Some("corp")
        );
        assert_eq!(
            path_name("/providers/Microsoft.Management/managementGroups"),
            None
        );
    }
}

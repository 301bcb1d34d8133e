//! Azure Resource Manager resource ids: parsing, canonical spelling and comparison.
//! ARM treats ids case-insensitively and events spell them inconsistently
//! (`resourcegroups` vs `resourceGroups`), so ids are parsed once into [`ResourceId`], printed
//! in one canonical spelling, and compared through [`ResourceId::key`].

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a string is not a resource id we can use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{id}' is not an ARM resource id: {why}")]
pub struct ResourceIdError {
    id: String,
    why: &'static str,
}

/// A parsed ARM resource id: subscription, optional resource group, and the provider
/// path (`namespace`, then alternating type/name segments for nested resources).
#[derive(Debug, Clone)]
pub struct ResourceId {
    subscription: String,
    resource_group: Option<String>,
    namespace: Option<String>,
    /// `(type, name)` pairs under the provider namespace, outermost first.
    types: Vec<(String, String)>,
}

impl ResourceId {
    /// Parses any subscription-, resource-group- or resource-level id.
    ///
    /// # Errors
    /// An id that does not start with `/subscriptions/{id}`, has empty segments, or whose
    /// provider part does not alternate type and name.
    pub fn parse(raw: &str) -> Result<Self, ResourceIdError> {
        let fail = |why| ResourceIdError {
            id: truncate(raw),
            why,
        };
        let trimmed = raw.trim().trim_end_matches('/');
        let Some(rest) = trimmed.strip_prefix('/') else {
            return Err(fail("it must start with '/subscriptions/'"));
        };
        let segments: Vec<&str> = rest.split('/').collect();
        if segments.iter().any(|s| s.is_empty()) {
            return Err(fail("it has an empty segment"));
        }
        let mut it = segments.into_iter();
        match (it.next(), it.next()) {
            (Some(s), Some(sub)) if s.eq_ignore_ascii_case("subscriptions") => {
                let mut id = ResourceId {
                    subscription: sub.to_ascii_lowercase(),
                    resource_group: None,
                    namespace: None,
                    types: Vec::new(),
                };
                let mut next = it.next();
                if let Some(seg) = next
                    && seg.eq_ignore_ascii_case("resourcegroups")
                {
                    let rg = it
                        .next()
                        .ok_or_else(|| fail("the resource group name is missing"))?;
                    id.resource_group = Some(rg.to_string());
                    next = it.next();
                }
                if let Some(seg) = next {
                    if !seg.eq_ignore_ascii_case("providers") {
                        return Err(fail("expected 'providers' after the resource group"));
                    }
                    let ns = it
                        .next()
                        .ok_or_else(|| fail("the provider namespace is missing"))?;
                    id.namespace = Some(ns.to_string());
                    let rest: Vec<&str> = it.collect();
                    if rest.is_empty() || !rest.len().is_multiple_of(2) {
                        return Err(fail("resource types and names must alternate"));
                    }
                    id.types = rest
                        .chunks(2)
                        .map(|pair| (pair[0].to_string(), pair[1].to_string()))
                        .collect();
                }
                Ok(id)
            }
            _ => Err(fail("it must start with '/subscriptions/'")),
        }
    }

    /// The subscription id (lower case).
    pub fn subscription(&self) -> &str {
        &self.subscription
    }

    /// The resource group name, if the id is at or below a resource group.
    pub fn resource_group(&self) -> Option<&str> {
        self.resource_group.as_deref()
    }

    /// The innermost resource name.
    pub fn name(&self) -> Option<&str> {
        self.types.last().map(|(_, n)| n.as_str())
    }

    /// The full resource type, e.g. `Microsoft.ContainerService/managedClusters`.
    pub fn resource_type(&self) -> Option<String> {
        let ns = self.namespace.as_ref()?;
        let mut out = ns.clone();
        for (t, _) in &self.types {
            out.push('/');
            out.push_str(t);
        }
        Some(out)
    }

    /// True if this is a top-level resource of the given type (compared case-insensitively).
    pub fn is_type(&self, resource_type: &str) -> bool {
        self.resource_type()
            .is_some_and(|t| t.eq_ignore_ascii_case(resource_type))
    }

    /// The id of the resource group that holds this resource.
    pub fn resource_group_id(&self) -> Option<String> {
        self.resource_group
            .as_ref()
            .map(|rg| format!("/subscriptions/{}/resourceGroups/{}", self.subscription, rg))
    }

    /// A lower-case form for equality, hashing and deterministic names.
    pub fn key(&self) -> String {
        self.to_string().to_ascii_lowercase()
    }
}

impl PartialEq for ResourceId {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}
impl Eq for ResourceId {}

impl std::hash::Hash for ResourceId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

impl fmt::Display for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/subscriptions/{}", self.subscription)?;
        if let Some(rg) = &self.resource_group {
            write!(f, "/resourceGroups/{rg}")?;
        }
        if let Some(ns) = &self.namespace {
            write!(f, "/providers/{ns}")?;
            for (t, n) in &self.types {
                write!(f, "/{t}/{n}")?;
            }
        }
        Ok(())
    }
}

impl std::str::FromStr for ResourceId {
    type Err = ResourceIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for ResourceId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ResourceId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

fn truncate(raw: &str) -> String {
    raw.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_of_one_cluster_are_equal_and_print_canonically() {
        let a = ResourceId::parse("/subscriptions/ABC/resourcegroups/rg1/providers/Microsoft.ContainerService/managedClusters/aks1").unwrap();
        let b = ResourceId::parse("/SUBSCRIPTIONS/abc/resourceGroups/RG1/providers/microsoft.containerservice/ManagedClusters/AKS1/").unwrap();
        assert_eq!(a, b);
        assert_eq!(
            a.to_string(),
            "/subscriptions/abc/resourceGroups/rg1/providers/Microsoft.ContainerService/managedClusters/aks1"
        );
        assert!(b.is_type("Microsoft.ContainerService/managedClusters"));
        assert_eq!(a.name(), Some("aks1"));
        assert_eq!(
            a.resource_group_id().unwrap(),
            "/subscriptions/abc/resourceGroups/rg1"
        );
    }

    #[test]
    fn nested_resources_are_not_the_parent_type() {
        let pool = ResourceId::parse("/subscriptions/s/resourceGroups/r/providers/Microsoft.ContainerService/managedClusters/c/agentPools/p").unwrap();
        assert!(!pool.is_type("Microsoft.ContainerService/managedClusters"));
        assert_eq!(
            pool.resource_type().unwrap(),
            "Microsoft.ContainerService/managedClusters/agentPools"
        );
    }

    #[test]
    fn malformed_ids_are_refused_with_a_reason() {
        for bad in [
            "",
            "subscriptions/x",
            "/subscriptions",
            "/subscriptions/s/resourceGroups",
            "/subscriptions/s//x",
            "/subscriptions/s/resourceGroups/r/providers/Ns/type",
        ] {
            let err = ResourceId::parse(bad).unwrap_err();
            assert!(
                err.to_string().contains("is not an ARM resource id"),
                "{bad}: {err}"
            );
        }
    }
}

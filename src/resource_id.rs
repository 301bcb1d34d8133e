//! Azure Resource Manager resource ids: parsing, canonical spelling and comparison.
//! ARM treats ids case-insensitively and events spell them inconsistently
//! (`resourcegroups` vs `resourceGroups`), so ids are parsed once into [`ResourceId`], printed
//! in one canonical spelling, and compared through [`ResourceId::key`].
//!
//! Ids that arrive from outside (cluster events, restore requests, the operator commands) are
//! read with [`ResourceId::parse_checked`], which also applies ARM's naming rules
//! ([`NamingRule`]): the subscription is a GUID, a resource group name is 1–90 letters,
//! digits, `_`, `(`, `)`, `-` or `.` (not ending in `.`), a managed cluster name is 1–63
//! ASCII letters, digits, `_` or `-` (starting and ending with a letter or digit), and no
//! control or bidirectional-formatting character appears anywhere in the id.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a string is not a resource id we can use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{id}' is not an ARM resource id: {why}")]
pub struct ResourceIdError {
    /// The id as received, truncated, with control and bidirectional characters escaped.
    id: String,
    why: String,
    rule: Option<NamingRule>,
}

impl ResourceIdError {
    /// The ARM naming rule the id breaks, when it parsed but broke one.
    pub fn rule(&self) -> Option<NamingRule> {
        self.rule
    }
}

/// One of ARM's naming rules that [`ResourceId::parse_checked`] applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NamingRule {
    /// The subscription id is a GUID (`xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, hexadecimal).
    SubscriptionGuid,
    /// A resource group name: 1–90 letters, digits, `_`, `(`, `)`, `-` or `.`; not ending in `.`.
    ResourceGroupName,
    /// A managed cluster name: 1–63 ASCII letters, digits, `_` or `-`; starts and ends with a
    /// letter or digit.
    ManagedClusterName,
    /// No control character (C0, DEL, C1) anywhere in the id.
    NoControlCharacters,
    /// No bidirectional-formatting character (U+200E, U+200F, U+202A–U+202E, U+2066–U+2069)
    /// anywhere in the id: they make an id display differently from what it is.
    NoBidiControls,
}

impl NamingRule {
    /// Every rule, for listings and tests.
    pub const ALL: [NamingRule; 5] = [
        Self::SubscriptionGuid,
        Self::ResourceGroupName,
        Self::ManagedClusterName,
        Self::NoControlCharacters,
        Self::NoBidiControls,
    ];

    /// The rule's stable name, used in dead-letter reasons.
    pub fn name(self) -> &'static str {
        match self {
            Self::SubscriptionGuid => "subscription-guid",
            Self::ResourceGroupName => "resource-group-name",
            Self::ManagedClusterName => "managed-cluster-name",
            Self::NoControlCharacters => "no-control-characters",
            Self::NoBidiControls => "no-bidi-controls",
        }
    }

    /// What the rule requires.
    pub fn requirement(self) -> &'static str {
        match self {
            Self::SubscriptionGuid => {
                "the subscription id must be a GUID (8-4-4-4-12 hexadecimal digits)"
            }
            Self::ResourceGroupName => {
                "a resource group name has 1 to 90 letters, digits, '_', '(', ')', '-' or '.' and does not end in '.'"
            }
            Self::ManagedClusterName => {
                "a managed cluster name has 1 to 63 letters (a-z, A-Z), digits, '_' or '-' and starts and ends with a letter or digit"
            }
            Self::NoControlCharacters => "a resource id has no control characters",
            Self::NoBidiControls => {
                "a resource id has no bidirectional-formatting characters (U+200E, U+200F, U+202A-U+202E, U+2066-U+2069)"
            }
        }
    }
}

impl fmt::Display for NamingRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// True for the bidirectional-formatting characters [`NamingRule::NoBidiControls`] forbids.
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
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
        let fail = |why: &str| ResourceIdError {
            id: truncate(raw),
            why: why.to_string(),
            rule: None,
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

    /// Parses an id that comes from outside the service and checks it against ARM's naming
    /// rules (see [`NamingRule`]).
    ///
    /// # Errors
    /// What [`ResourceId::parse`] refuses, and an id that breaks a naming rule; the error
    /// names the rule ([`ResourceIdError::rule`]).
    pub fn parse_checked(raw: &str) -> Result<Self, ResourceIdError> {
        let broken = |rule: NamingRule, detail: String| ResourceIdError {
            id: truncate(raw),
            why: format!(
                "it breaks ARM naming rule `{rule}`: {} ({detail})",
                rule.requirement()
            ),
            rule: Some(rule),
        };
        if let Some((at, c)) = raw.chars().enumerate().find(|(_, c)| c.is_control()) {
            return Err(broken(
                NamingRule::NoControlCharacters,
                format!("U+{:04X} at character {at}", u32::from(c)),
            ));
        }
        if let Some((at, c)) = raw.chars().enumerate().find(|(_, c)| is_bidi_control(*c)) {
            return Err(broken(
                NamingRule::NoBidiControls,
                format!("U+{:04X} at character {at}", u32::from(c)),
            ));
        }
        let id = Self::parse(raw)?;
        if let Some((rule, detail)) = id.naming_problem() {
            return Err(broken(rule, detail));
        }
        Ok(id)
    }

    /// The first naming rule the parsed names break, with what is wrong.
    fn naming_problem(&self) -> Option<(NamingRule, String)> {
        if !is_guid(&self.subscription) {
            return Some((
                NamingRule::SubscriptionGuid,
                format!("got '{}'", escape(&self.subscription, 60)),
            ));
        }
        if let Some(rg) = &self.resource_group
            && let Some(problem) = resource_group_problem(rg)
        {
            return Some((NamingRule::ResourceGroupName, problem));
        }
        let cluster = self
            .namespace
            .as_deref()
            .is_some_and(|ns| ns.eq_ignore_ascii_case("Microsoft.ContainerService"))
            .then(|| self.types.first())
            .flatten()
            .filter(|(t, _)| t.eq_ignore_ascii_case("managedClusters"));
        if let Some((_, name)) = cluster
            && let Some(problem) = cluster_name_problem(name)
        {
            return Some((NamingRule::ManagedClusterName, problem));
        }
        None
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

/// The id for an error message: at most 200 characters, control and bidirectional characters
/// escaped so the message cannot reorder or hide text in a log or terminal.
fn truncate(raw: &str) -> String {
    escape(raw, 200)
}

fn escape(raw: &str, max_chars: usize) -> String {
    let mut out = String::new();
    for c in raw.chars().take(max_chars) {
        if c.is_control() || is_bidi_control(c) {
            out.push_str(&format!("\\u{{{:04X}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    if raw.chars().nth(max_chars).is_some() {
        out.push('…');
    }
    out
}

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, hexadecimal.
fn is_guid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

fn resource_group_problem(name: &str) -> Option<String> {
    let len = name.chars().count();
    if !(1..=90).contains(&len) {
        return Some(format!("the name has {len} characters"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_alphanumeric() || matches!(c, '_' | '(' | ')' | '-' | '.')))
    {
        return Some(format!("'{}' is not allowed", c.escape_debug()));
    }
    name.ends_with('.')
        .then(|| "the name ends in '.'".to_string())
}

fn cluster_name_problem(name: &str) -> Option<String> {
    let len = name.chars().count();
    if !(1..=63).contains(&len) {
        return Some(format!("the name has {len} characters"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-')))
    {
        return Some(format!("'{}' is not allowed", c.escape_debug()));
    }
    let edges_alphanumeric = name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    (!edges_alphanumeric).then(|| "the name starts or ends with '_' or '-'".to_string())
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

    const SUB: &str = "6f1b4e6a-2d9c-4b7e-9a51-3c0f8e2d7a10";

    fn cluster_id(sub: &str, rg: &str, name: &str) -> String {
        format!(
            "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.ContainerService/managedClusters/{name}"
        )
    }

    #[test]
    fn naming_rules_accept_what_arm_accepts() {
        for (sub, rg, name) in [
            (SUB, "rg-apps", "aks-01"),
            (&SUB.to_uppercase(), "RG_(prod).eu-1", "Aks_Prod-1"),
            (SUB, "é-ñ-日本-группа", "a"),
            (SUB, &"r".repeat(90), &"c".repeat(63)),
            (SUB, "r", "0"),
        ] {
            let raw = cluster_id(sub, rg, name);
            let id = ResourceId::parse_checked(&raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
            assert_eq!(id.name(), Some(name));
        }
        // Other resource types keep their own name rules; only the group and subscription
        // are checked for them.
        let vault = format!(
            "/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.DataProtection/backupVaults/bv.1/backupInstances/aks_x-y"
        );
        assert!(ResourceId::parse_checked(&vault).is_ok());
        assert!(ResourceId::parse_checked(&format!("/subscriptions/{SUB}")).is_ok());
    }

    #[test]
    fn naming_rules_refuse_each_break_and_name_the_rule() {
        use NamingRule::*;
        let long = "c".repeat(300);
        let cases: Vec<(String, NamingRule)> = vec![
            (cluster_id("not-a-guid", "rg", "aks"), SubscriptionGuid),
            (cluster_id("s", "rg", "aks"), SubscriptionGuid),
            (
                cluster_id(&format!("{{{SUB}}}"), "rg", "aks"),
                SubscriptionGuid,
            ),
            (
                cluster_id(&SUB.replace('-', ""), "rg", "aks"),
                SubscriptionGuid,
            ),
            (
                cluster_id(&SUB.replace('a', "g"), "rg", "aks"),
                SubscriptionGuid,
            ),
            (cluster_id(SUB, &"r".repeat(91), "aks"), ResourceGroupName),
            (cluster_id(SUB, "rg.", "aks"), ResourceGroupName),
            (cluster_id(SUB, "rg#1", "aks"), ResourceGroupName),
            (cluster_id(SUB, "rg 1", "aks"), ResourceGroupName),
            (cluster_id(SUB, "rg", &long), ManagedClusterName),
            (cluster_id(SUB, "rg", &"c".repeat(64)), ManagedClusterName),
            (cluster_id(SUB, "rg", "-aks"), ManagedClusterName),
            (cluster_id(SUB, "rg", "aks_"), ManagedClusterName),
            (cluster_id(SUB, "rg", "aks.1"), ManagedClusterName),
            (cluster_id(SUB, "rg", "akś"), ManagedClusterName),
            (cluster_id(SUB, "rg\u{0}x", "aks"), NoControlCharacters),
            (cluster_id(SUB, "rg", "aks\n"), NoControlCharacters),
            (cluster_id(SUB, "rg", "aks\u{7f}"), NoControlCharacters),
            (cluster_id(SUB, "rg", "aks\u{85}"), NoControlCharacters),
            (cluster_id(SUB, "rg\u{202E}", "aks"), NoBidiControls),
            (cluster_id(SUB, "rg", "\u{2066}aks"), NoBidiControls),
            (cluster_id(SUB, "rg", "aks\u{200F}"), NoBidiControls),
            (cluster_id(SUB, "rg\u{200E}", "aks"), NoBidiControls),
            (cluster_id(SUB, "rg\u{2069}", "aks"), NoBidiControls),
        ];
        for (raw, rule) in cases {
            let err = ResourceId::parse_checked(&raw).unwrap_err();
            assert_eq!(err.rule(), Some(rule), "{raw:?}: {err}");
            let text = err.to_string();
            assert!(text.contains(rule.name()), "{text}");
            assert!(
                !text.chars().any(|c| c.is_control() || is_bidi_control(c)),
                "the message escapes what it quotes: {text:?}"
            );
            assert!(text.chars().count() < 600, "{text}");
            // The lenient parser (internal ids, tests) still reads what is well-formed.
            let _ = ResourceId::parse(&raw);
        }
        // Malformed ids are not a naming rule.
        let err = ResourceId::parse_checked("/subscriptions").unwrap_err();
        assert_eq!(err.rule(), None);
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

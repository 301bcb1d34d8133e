//! The Kubernetes versions AKS offers, as `ManagedClusters_ListKubernetesVersions`
//! (2024-01-01, `KubernetesVersionListResult`) answers them: minors with their support plans,
//! preview flag and patch versions with upgrade paths. The catalog follows the guide's
//! gotcha 1 ("versions 1.29 and 1.30 are LTS-only as of 2026"): those two minors are offered
//! on the `AKSLongTermSupport` plan only.

use serde_json::{Map, Value, json};

use super::response::ArmResponse;

/// `KubernetesSupportPlan` values.
pub const COMMUNITY: &str = "KubernetesOfficial";
/// The long-term-support plan (Premium tier).
pub const LONG_TERM_SUPPORT: &str = "AKSLongTermSupport";

/// One minor version on offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OfferedMinor {
    /// `major.minor`.
    pub version: &'static str,
    /// Support plans it is offered on.
    pub support_plans: &'static [&'static str],
    /// Preview only.
    pub preview: bool,
    /// Patch versions, oldest first.
    pub patches: &'static [&'static str],
}

/// What AKS offers (every region alike), oldest minor first.
pub const OFFERED: [OfferedMinor; 6] = [
    OfferedMinor {
        version: "1.29",
        support_plans: &[LONG_TERM_SUPPORT],
        preview: false,
        patches: &["1.29.9", "1.29.12", "1.29.15"],
    },
    OfferedMinor {
        version: "1.30",
        support_plans: &[LONG_TERM_SUPPORT],
        preview: false,
        patches: &["1.30.7", "1.30.11", "1.30.14"],
    },
    OfferedMinor {
        version: "1.31",
        support_plans: &[COMMUNITY, LONG_TERM_SUPPORT],
        preview: false,
        patches: &["1.31.5", "1.31.8", "1.31.11"],
    },
    OfferedMinor {
        version: "1.32",
        support_plans: &[COMMUNITY, LONG_TERM_SUPPORT],
        preview: false,
        patches: &["1.32.4", "1.32.7"],
    },
    OfferedMinor {
        version: "1.33",
        support_plans: &[COMMUNITY, LONG_TERM_SUPPORT],
        preview: false,
        patches: &["1.33.2", "1.33.5"],
    },
    OfferedMinor {
        version: "1.34",
        support_plans: &[COMMUNITY],
        preview: true,
        patches: &["1.34.0"],
    },
];

/// Upgrades AKS allows from `patch` of `OFFERED[index]`: later patches of the same minor and
/// every patch of the next minor (AKS upgrades one minor at a time).
fn upgrades(index: usize, patch: &str) -> Vec<&'static str> {
    let minor = &OFFERED[index];
    let later = minor
        .patches
        .iter()
        .skip_while(|p| **p != patch)
        .skip(1)
        .copied();
    let next = OFFERED
        .get(index + 1)
        .map(|m| m.patches)
        .unwrap_or_default()
        .iter()
        .copied();
    later.chain(next).collect()
}

/// The `KubernetesVersionListResult` body.
pub fn version_list() -> Value {
    let values: Vec<Value> = OFFERED
        .iter()
        .enumerate()
        .map(|(index, minor)| {
            let patches: Map<String, Value> = minor
                .patches
                .iter()
                .map(|p| ((*p).to_string(), json!({"upgrades": upgrades(index, p)})))
                .collect();
            let mut entry = json!({
                "version": minor.version,
                "capabilities": {"supportPlan": minor.support_plans},
                "patchVersions": patches,
            });
            if minor.preview {
                entry["isPreview"] = json!(true);
            }
            entry
        })
        .collect();
    json!({ "values": values })
}

/// `ManagedClusters_ListKubernetesVersions`: 200 with [`version_list`].
pub fn kubernetes_version_list() -> ArmResponse {
    ArmResponse::ok(version_list())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lts_only_minors_are_the_guides_and_upgrades_go_one_minor_up() {
        let list = version_list();
        let values = list["values"].as_array().unwrap();
        let plans = |v: &str| {
            values
                .iter()
                .find(|e| e["version"] == v)
                .map(|e| e["capabilities"]["supportPlan"].clone())
                .unwrap()
        };
        assert_eq!(plans("1.29"), json!([LONG_TERM_SUPPORT]));
        assert_eq!(plans("1.30"), json!([LONG_TERM_SUPPORT]));
        assert_eq!(plans("1.31"), json!([COMMUNITY, LONG_TERM_SUPPORT]));
        let v129 = &values[0]["patchVersions"]["1.29.12"]["upgrades"];
        assert_eq!(v129, &json!(["1.29.15", "1.30.7", "1.30.11", "1.30.14"]));
        let newest = values.last().unwrap();
        assert_eq!(newest["isPreview"], true);
        assert_eq!(newest["patchVersions"]["1.34.0"]["upgrades"], json!([]));
        assert!(values[..5].iter().all(|v| v.get("isPreview").is_none()));
    }
}

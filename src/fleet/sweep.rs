//! What a sweep decides about each cluster, from the two queries' rows alone (no ARM read):
//! out of scope, busy, not protected yet (onboard), protected but decayed (repair, with the
//! causes), or healthy. Pure functions with table tests.

use std::collections::BTreeMap;
use std::time::Duration;

use time::OffsetDateTime;

use super::queries::{ClusterRow, ProtectionRow};
use crate::workflow::roles::{self, Principal, Target};
use crate::workflow::settings::{Layout, OnboardingSettings};

/// Why a protected cluster needs repair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DriftCause {
    /// The backup instance's `protectionStatus` is not `ProtectionConfigured`.
    ProtectionStatus(String),
    /// The backup extension is not `Succeeded` (empty: it is gone).
    Extension(String),
    /// No completed backup within the policy's interval plus slack.
    StaleBackups {
        /// The newest completed backup.
        last: OffsetDateTime,
        /// How old it may be.
        allowed: Duration,
    },
    /// Fewer of the service's role assignments name the cluster than the profile makes.
    RoleAssignments {
        /// Found.
        found: u32,
        /// Expected.
        expected: u32,
    },
}

impl DriftCause {
    /// A short code for status, messages and counters.
    pub fn code(&self) -> &'static str {
        match self {
            Self::ProtectionStatus(_) => "protectionStatus",
            Self::Extension(_) => "extension",
            Self::StaleBackups { .. } => "staleBackups",
            Self::RoleAssignments { .. } => "roleAssignments",
        }
    }
}

impl std::fmt::Display for DriftCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ProtectionStatus(s) => write!(f, "backup instance is {s}"),
            Self::Extension(s) if s.is_empty() => write!(f, "backup extension is missing"),
            Self::Extension(s) => write!(f, "backup extension is {s}"),
            Self::StaleBackups { last, allowed } => write!(
                f,
                "newest completed backup ended {} (more than {}h ago)",
                crate::clock::rfc3339(*last),
                allowed.as_secs() / 3600
            ),
            Self::RoleAssignments { found, expected } => write!(
                f,
                "{found} of the service's {expected} role assignments for the cluster exist"
            ),
        }
    }
}

/// What a sweep does about one cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// Not the service's to protect (subscription, tags); the text says why.
    OutOfScope(String),
    /// Being created, updated or deleted, or failed: the next sweep looks again.
    Busy(String),
    /// No backup instance: onboard it.
    Unprotected,
    /// Protected, but decayed: repair it.
    Drifted(Vec<DriftCause>),
    /// Protected and healthy (`pending_first_backup`: no backup has completed yet).
    Healthy {
        /// No completed backup yet (the first scheduled one has not run).
        pending_first_backup: bool,
    },
}

impl Finding {
    /// A short word for tables and counters.
    pub fn word(&self) -> &'static str {
        match self {
            Self::OutOfScope(_) => "out-of-scope",
            Self::Busy(_) => "busy",
            Self::Unprotected => "unprotected",
            Self::Drifted(_) => "drifted",
            Self::Healthy { .. } => "healthy",
        }
    }

    /// Why, in words (a drift's causes joined with `; `).
    pub fn detail(&self) -> String {
        match self {
            Self::OutOfScope(why) | Self::Busy(why) => why.clone(),
            Self::Unprotected => "no backup instance".into(),
            Self::Drifted(causes) => causes
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
            Self::Healthy {
                pending_first_backup: true,
            } => "protected; first scheduled backup not run yet".into(),
            Self::Healthy { .. } => "protected".into(),
        }
    }

    /// True when the sweep starts a workflow for it.
    pub fn needs_work(&self) -> bool {
        matches!(self, Self::Unprotected | Self::Drifted(_))
    }
}

/// What the rules compare against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepRules {
    /// The service's role assignments made for one cluster.
    pub expected_role_assignments: u32,
    /// The policy's backup interval.
    pub backup_interval: Duration,
    /// How late a backup may be before it counts as stopped.
    pub backup_slack: Duration,
}

impl SweepRules {
    /// The rules for `settings` (`slack`: usually `settings.backup_slack`).
    pub fn new(settings: &OnboardingSettings, slack: Duration) -> Self {
        let shared = settings.layout == Layout::SharedPerRegion;
        let per_cluster = roles::profile(settings.role_profile)
            .iter()
            .filter(|g| {
                !(shared && g.principal == Principal::Vault && g.target == Target::StorageAccount)
            })
            .count();
        Self {
            expected_role_assignments: u32::try_from(per_cluster).unwrap_or(u32::MAX),
            // The service's policy backs up daily (`R/…/P1D`).
            backup_interval: Duration::from_secs(24 * 60 * 60),
            backup_slack: slack,
        }
    }
}

/// Judges one cluster.
pub fn assess(
    cluster: &ClusterRow,
    protection: Option<&ProtectionRow>,
    settings: &OnboardingSettings,
    rules: &SweepRules,
    now: OffsetDateTime,
) -> Finding {
    if !settings.covers_subscription(&cluster.subscription_id) {
        return Finding::OutOfScope(format!(
            "subscription {} is not in BACKUP_PILOT_SUBSCRIPTIONS",
            cluster.subscription_id
        ));
    }
    if let Some(why) = settings.tag_exclusion(Some(&cluster.tags).filter(|t| !t.is_null())) {
        return Finding::OutOfScope(why.to_string());
    }
    if !cluster.provisioning_state.eq_ignore_ascii_case("Succeeded") {
        return Finding::Busy(format!(
            "the cluster is {}",
            if cluster.provisioning_state.is_empty() {
                "in an unknown state"
            } else {
                &cluster.provisioning_state
            }
        ));
    }
    let Some(p) = protection else {
        return Finding::Unprotected;
    };
    let mut causes = Vec::new();
    if !p
        .protection_status
        .eq_ignore_ascii_case("ProtectionConfigured")
    {
        causes.push(DriftCause::ProtectionStatus(
            if p.protection_status.is_empty() {
                "in no protection status".to_string()
            } else {
                p.protection_status.clone()
            },
        ));
    }
    if !cluster.extension_state.eq_ignore_ascii_case("Succeeded") {
        causes.push(DriftCause::Extension(cluster.extension_state.clone()));
    }
    let allowed = rules.backup_interval + rules.backup_slack;
    if let Some(last) = p.last_backup
        && time::Duration::try_from(allowed).is_ok_and(|allowed| now - last > allowed)
    {
        causes.push(DriftCause::StaleBackups { last, allowed });
    }
    if p.role_assignments < rules.expected_role_assignments {
        causes.push(DriftCause::RoleAssignments {
            found: p.role_assignments,
            expected: rules.expected_role_assignments,
        });
    }
    if causes.is_empty() {
        Finding::Healthy {
            pending_first_backup: p.last_backup.is_none(),
        }
    } else {
        Finding::Drifted(causes)
    }
}

/// Judges every cluster: protection rows are matched by lower-cased cluster id.
pub fn assess_all(
    clusters: &[ClusterRow],
    protection: &[ProtectionRow],
    settings: &OnboardingSettings,
    rules: &SweepRules,
    now: OffsetDateTime,
) -> Vec<(ClusterRow, Finding)> {
    let by_cluster: BTreeMap<String, &ProtectionRow> = protection
        .iter()
        .map(|p| (p.cluster_key.to_ascii_lowercase(), p))
        .collect();
    clusters
        .iter()
        .map(|c| {
            let p = by_cluster.get(&c.id.to_ascii_lowercase()).copied();
            (c.clone(), assess(c, p, settings, rules, now))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-03-10 12:00 UTC);
    const ID: &str = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/aks-1";

    fn cluster(state: &str, extension: &str, tags: Value) -> ClusterRow {
        ClusterRow {
            id: ID.into(),
            name: "aks-1".into(),
            location: "westeurope".into(),
            subscription_id: "00000000-0000-0000-0000-000000000001".into(),
            resource_group: "rg".into(),
            tags,
            provisioning_state: state.into(),
            extension_state: extension.into(),
        }
    }

    fn protection(status: &str, hours_ago: Option<i64>, roles: u32) -> ProtectionRow {
        ProtectionRow {
            cluster_key: ID.to_ascii_lowercase(),
            backup_instance: format!("{ID}-bi"),
            protection_status: status.into(),
            policy_id: "/p".into(),
            last_backup: hours_ago.map(|h| NOW - time::Duration::hours(h)),
            role_assignments: roles,
        }
    }

    fn rules() -> SweepRules {
        SweepRules::new(
            &OnboardingSettings::default(),
            Duration::from_secs(6 * 3600),
        )
    }

    #[test]
    fn the_guide_profile_makes_seven_assignments_per_cluster() {
        assert_eq!(rules().expected_role_assignments, 7);
        let shared = OnboardingSettings {
            layout: Layout::SharedPerRegion,
            ..OnboardingSettings::default()
        };
        assert_eq!(
            SweepRules::new(&shared, Duration::ZERO).expected_role_assignments,
            5,
            "the vault's two storage grants are shared by the region's clusters"
        );
    }

    #[test]
    fn findings_per_case() {
        let settings = OnboardingSettings::default();
        let r = rules();
        let ok = cluster("Succeeded", "Succeeded", Value::Null);
        let cases: Vec<(&str, ClusterRow, Option<ProtectionRow>, Finding)> = vec![
            (
                "healthy",
                ok.clone(),
                Some(protection("ProtectionConfigured", Some(3), 7)),
                Finding::Healthy {
                    pending_first_backup: false,
                },
            ),
            (
                "no backup yet",
                ok.clone(),
                Some(protection("ProtectionConfigured", None, 7)),
                Finding::Healthy {
                    pending_first_backup: true,
                },
            ),
            ("no instance", ok.clone(), None, Finding::Unprotected),
            (
                "updating",
                cluster("Updating", "Succeeded", Value::Null),
                None,
                Finding::Busy("the cluster is Updating".into()),
            ),
            (
                "instance in error",
                ok.clone(),
                Some(protection("ProtectionError", Some(3), 7)),
                Finding::Drifted(vec![DriftCause::ProtectionStatus("ProtectionError".into())]),
            ),
            (
                "extension failed",
                cluster("Succeeded", "Failed", Value::Null),
                Some(protection("ProtectionConfigured", Some(3), 7)),
                Finding::Drifted(vec![DriftCause::Extension("Failed".into())]),
            ),
            (
                "extension gone",
                cluster("Succeeded", "", Value::Null),
                Some(protection("ProtectionConfigured", Some(3), 7)),
                Finding::Drifted(vec![DriftCause::Extension(String::new())]),
            ),
            (
                "a role assignment gone",
                ok.clone(),
                Some(protection("ProtectionConfigured", Some(3), 6)),
                Finding::Drifted(vec![DriftCause::RoleAssignments {
                    found: 6,
                    expected: 7,
                }]),
            ),
            (
                "backups stopped",
                ok.clone(),
                Some(protection("ProtectionConfigured", Some(31), 7)),
                Finding::Drifted(vec![DriftCause::StaleBackups {
                    last: NOW - time::Duration::hours(31),
                    allowed: Duration::from_secs(30 * 3600),
                }]),
            ),
            (
                "late but within slack",
                ok.clone(),
                Some(protection("ProtectionConfigured", Some(29), 7)),
                Finding::Healthy {
                    pending_first_backup: false,
                },
            ),
        ];
        for (name, c, p, want) in cases {
            assert_eq!(assess(&c, p.as_ref(), &settings, &r, NOW), want, "{name}");
        }
    }

    #[test]
    fn scope_rules_are_those_of_events() {
        let settings = OnboardingSettings {
            subscriptions: vec!["00000000-0000-0000-0000-000000000002".into()],
            ..OnboardingSettings::default()
        };
        let c = cluster("Succeeded", "", json!({"backup": "no"}));
        assert!(matches!(
            assess(&c, None, &settings, &rules(), NOW),
            Finding::OutOfScope(_)
        ));
        let settings = OnboardingSettings {
            opt_out_tag: Some(crate::workflow::settings::TagMatch {
                key: "backup".into(),
                value: Some("no".into()),
            }),
            ..OnboardingSettings::default()
        };
        assert!(matches!(
            assess(&c, None, &settings, &rules(), NOW),
            Finding::OutOfScope(w) if w.contains("opt-out")
        ));
        let untagged = cluster("Succeeded", "", Value::Null);
        assert_eq!(
            assess(&untagged, None, &settings, &rules(), NOW),
            Finding::Unprotected
        );
    }

    #[test]
    fn rows_are_matched_whatever_the_case_of_the_id() {
        let mut upper = protection("ProtectionError", Some(1), 7);
        upper.cluster_key = ID.to_ascii_uppercase();
        let all = assess_all(
            &[cluster("Succeeded", "Succeeded", Value::Null)],
            &[upper],
            &OnboardingSettings::default(),
            &rules(),
            NOW,
        );
        assert!(matches!(all[0].1, Finding::Drifted(_)));
    }
}

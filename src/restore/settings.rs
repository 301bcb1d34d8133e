//! Restore and drill settings from `BACKUP_PILOT_*` variables: the vaults whose backup
//! instances are restored and drilled, the restore allowlist, the outer deadlines, and what a
//! drill restores and how many clusters it samples. Every problem is listed at once.

use std::time::Duration;

use super::alert::WebhookUrl;
use super::authorize::{ALLOWLIST_VAR, RESTORES_PER_INSTANCE_PER_DAY, RestoreAllowlist};
use super::evidence::EvidenceKey;
use super::probe::{DEFAULT_HTTP_IMAGE, PROBES_VAR, ProbeSpec, parse_probes};
use super::score::ScoreSettings;
use super::store::DEFAULT_REPORT_CONTAINER;
use crate::resource_id::ResourceId;

/// `BACKUP_PILOT_BACKUP_VAULTS`.
pub const VAULTS_VAR: &str = "BACKUP_PILOT_BACKUP_VAULTS";

/// What restores and drills do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreSettings {
    /// Vaults searched for a cluster's backup instance and enumerated by drills.
    pub vaults: Vec<ResourceId>,
    /// Where message-triggered restores may write.
    pub allowlist: RestoreAllowlist,
    /// How long a restore job may run before the restore is failed.
    pub job_timeout: Duration,
    /// How long after the job a restore may wait for pods and claims to become ready.
    pub verify_timeout: Duration,
    /// Clusters drilled per run (`None`: all).
    pub drill_sample: Option<usize>,
    /// Namespaces drilled (empty: each backup instance's included namespaces).
    pub drill_namespaces: Vec<String>,
    /// Whether drills restore cluster-scoped resources (the guide's advice: yes).
    pub drill_include_cluster_scope: bool,
    /// How long scratch namespaces may take to disappear before a drill reports them left
    /// behind.
    pub cleanup_timeout: Duration,
    /// The Blob container reports go to (in the status store's account).
    pub report_container: String,
    /// The key reports are signed with (`BACKUP_PILOT_EVIDENCE_KEY`); unsigned without.
    pub evidence_key: Option<EvidenceKey>,
    /// The score's thresholds and RTO target.
    pub score: ScoreSettings,
    /// Where drill alerts are posted (`BACKUP_PILOT_ALERT_WEBHOOK_URL`); logged only without.
    pub alert_webhook: Option<WebhookUrl>,
    /// An RTO more than this many percent above the previous drill's raises an alert
    /// (`BACKUP_PILOT_DRILL_RTO_REGRESSION_PERCENT`, default 50).
    pub rto_regression_percent: u32,
    /// Of Azure's 10 restores per backup instance per day, how many drills leave to real
    /// restores (`BACKUP_PILOT_DRILL_RESTORE_RESERVE`, default 2, at most 9).
    pub drill_restore_reserve: usize,
    /// At most this many drills run at once per vault, restores already running included
    /// (`BACKUP_PILOT_DRILL_MAX_PER_VAULT`, default 10).
    pub drill_max_per_vault: usize,
    /// Every protected cluster is drilled at least once in this many days: the day's sample
    /// grows to match (`BACKUP_PILOT_DRILL_PERIOD_DAYS`; none: the sample as set).
    pub drill_period_days: Option<u32>,
    /// Application probes drills run in each scratch namespace (`BACKUP_PILOT_DRILL_PROBES`).
    pub drill_probes: Vec<ProbeSpec>,
    /// The image HTTP probes run in (`BACKUP_PILOT_DRILL_PROBE_IMAGE`).
    pub drill_probe_image: String,
}

impl Default for RestoreSettings {
    fn default() -> Self {
        Self {
            vaults: Vec::new(),
            allowlist: RestoreAllowlist::default(),
            job_timeout: Duration::from_secs(60 * 60),
            verify_timeout: Duration::from_secs(15 * 60),
            drill_sample: None,
            drill_namespaces: Vec::new(),
            drill_include_cluster_scope: true,
            cleanup_timeout: Duration::from_secs(30 * 60),
            report_container: DEFAULT_REPORT_CONTAINER.into(),
            evidence_key: None,
            score: ScoreSettings::default(),
            alert_webhook: None,
            rto_regression_percent: 50,
            drill_restore_reserve: 2,
            drill_max_per_vault: 10,
            drill_period_days: None,
            drill_probes: Vec::new(),
            drill_probe_image: DEFAULT_HTTP_IMAGE.into(),
        }
    }
}

fn minutes(
    get: &impl Fn(&str) -> Option<String>,
    key: &str,
    default: Duration,
    problems: &mut Vec<String>,
) -> Duration {
    match get(key) {
        None => default,
        Some(raw) => match raw.trim().parse::<u64>() {
            Ok(m) if m > 0 => Duration::from_secs(m.saturating_mul(60)),
            _ => {
                problems.push(format!(
                    "{key} must be a whole number of minutes above 0, got {raw:?}"
                ));
                default
            }
        },
    }
}

fn list(raw: Option<String>) -> Vec<String> {
    raw.map(|r| {
        r.split([',', ';', '\n'])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    })
    .unwrap_or_default()
}

fn percent(
    get: &impl Fn(&str) -> Option<String>,
    key: &str,
    default: u8,
    problems: &mut Vec<String>,
) -> u8 {
    match get(key) {
        None => default,
        Some(raw) => match raw.trim().parse::<u8>() {
            Ok(n) if n <= 100 => n,
            _ => {
                problems.push(format!(
                    "{key} must be a whole score from 0 to 100, got {raw:?}"
                ));
                default
            }
        },
    }
}

/// `BACKUP_PILOT_DRILL_PASS_SCORE`, `BACKUP_PILOT_DRILL_DEGRADED_SCORE` (at most the pass
/// score) and `BACKUP_PILOT_DRILL_RTO_TARGET_MINUTES`.
fn score_settings(
    get: &impl Fn(&str) -> Option<String>,
    problems: &mut Vec<String>,
) -> ScoreSettings {
    let defaults = ScoreSettings::default();
    let pass = percent(
        get,
        "BACKUP_PILOT_DRILL_PASS_SCORE",
        defaults.pass,
        problems,
    );
    let degraded = percent(
        get,
        "BACKUP_PILOT_DRILL_DEGRADED_SCORE",
        defaults.degraded,
        problems,
    );
    if degraded > pass {
        problems.push(format!(
            "BACKUP_PILOT_DRILL_DEGRADED_SCORE ({degraded}) must not be above BACKUP_PILOT_DRILL_PASS_SCORE ({pass})"
        ));
    }
    ScoreSettings {
        pass,
        degraded: degraded.min(pass),
        rto_target: minutes(
            get,
            "BACKUP_PILOT_DRILL_RTO_TARGET_MINUTES",
            defaults.rto_target,
            problems,
        ),
    }
}

impl RestoreSettings {
    /// The drill schedule and the restore reserve, as the status shows them.
    pub fn drill_policy(&self) -> serde_json::Value {
        serde_json::json!({
            "vaults": self.vaults.len(),
            "sample": self.drill_sample,
            "periodDays": self.drill_period_days,
            "maxPerVault": self.drill_max_per_vault,
            "restoreReserve": self.drill_restore_reserve,
            "restoresPerInstancePerDay": RESTORES_PER_INSTANCE_PER_DAY,
            "summary": self.drill_policy_text(),
        })
    }

    /// [`Self::drill_policy`] in one sentence.
    pub fn drill_policy_text(&self) -> String {
        let which = match (self.drill_sample, self.drill_period_days) {
            (None, None) => "every protected cluster at each timer run".to_string(),
            (Some(n), None) => format!("a rotating sample of {n} cluster(s) a day"),
            (None, Some(p)) => format!("every protected cluster within {p} day(s), in rotation"),
            (Some(n), Some(p)) => format!(
                "a rotating sample of at least {n} cluster(s) a day, every protected cluster within {p} day(s)"
            ),
        };
        format!(
            "Drills: {which} of {} vault(s); at most {} at once per vault; {} of Azure Backup's {RESTORES_PER_INSTANCE_PER_DAY} daily restores per backup instance kept for real restores.",
            self.vaults.len(),
            self.drill_max_per_vault,
            self.drill_restore_reserve
        )
    }

    /// Reads the settings through `get`.
    ///
    /// # Errors
    /// Every invalid setting, one line each.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, Vec<String>> {
        let get = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let defaults = Self::default();
        let mut problems = Vec::new();
        let mut vaults = Vec::new();
        for raw in list(get(VAULTS_VAR)) {
            match ResourceId::parse(&raw) {
                Ok(id) if id.is_type("Microsoft.DataProtection/backupVaults") => vaults.push(id),
                Ok(_) | Err(_) => problems.push(format!(
                    "{VAULTS_VAR}: {raw:?} is not a backup vault id (/subscriptions/…/providers/Microsoft.DataProtection/backupVaults/<name>)"
                )),
            }
        }
        let allowlist = match get(ALLOWLIST_VAR) {
            None => RestoreAllowlist::default(),
            Some(raw) => RestoreAllowlist::from_json(&raw).unwrap_or_else(|e| {
                problems.push(e.to_string());
                RestoreAllowlist::default()
            }),
        };
        let drill_sample = match get("BACKUP_PILOT_DRILL_SAMPLE") {
            None => None,
            Some(raw) if raw.trim().eq_ignore_ascii_case("all") => None,
            Some(raw) => match raw.trim().parse::<usize>() {
                Ok(n) if n > 0 => Some(n),
                _ => {
                    problems.push(format!(
                        "BACKUP_PILOT_DRILL_SAMPLE must be a number of clusters above 0 or \"all\", got {raw:?}"
                    ));
                    None
                }
            },
        };
        let drill_namespaces = list(get("BACKUP_PILOT_DRILL_NAMESPACES"));
        for ns in &drill_namespaces {
            if !crate::kube::hooks::is_dns_label(ns) {
                problems.push(format!(
                    "BACKUP_PILOT_DRILL_NAMESPACES: {ns:?} is not a namespace name"
                ));
            }
        }
        let drill_include_cluster_scope = match get("BACKUP_PILOT_DRILL_INCLUDE_CLUSTER_SCOPE")
            .map(|v| v.trim().to_ascii_lowercase())
            .as_deref()
        {
            None => defaults.drill_include_cluster_scope,
            Some("true") => true,
            Some("false") => false,
            Some(other) => {
                problems.push(format!(
                    "BACKUP_PILOT_DRILL_INCLUDE_CLUSTER_SCOPE must be true or false, got {other:?}"
                ));
                defaults.drill_include_cluster_scope
            }
        };
        let settings = Self {
            vaults,
            allowlist,
            job_timeout: minutes(
                &get,
                "BACKUP_PILOT_RESTORE_JOB_TIMEOUT_MINUTES",
                defaults.job_timeout,
                &mut problems,
            ),
            verify_timeout: minutes(
                &get,
                "BACKUP_PILOT_RESTORE_VERIFY_TIMEOUT_MINUTES",
                defaults.verify_timeout,
                &mut problems,
            ),
            drill_sample,
            drill_namespaces,
            drill_include_cluster_scope,
            cleanup_timeout: minutes(
                &get,
                "BACKUP_PILOT_DRILL_CLEANUP_TIMEOUT_MINUTES",
                defaults.cleanup_timeout,
                &mut problems,
            ),
            report_container: get("BACKUP_PILOT_REPORT_CONTAINER")
                .map(|c| c.trim().to_string())
                .unwrap_or(defaults.report_container),
            evidence_key: EvidenceKey::from_lookup(&get).unwrap_or_else(|e| {
                problems.push(e);
                None
            }),
            score: score_settings(&get, &mut problems),
            alert_webhook: get("BACKUP_PILOT_ALERT_WEBHOOK_URL").and_then(|raw| {
                WebhookUrl::parse(&raw)
                    .map_err(|e| problems.push(e))
                    .ok()
            }),
            drill_restore_reserve: match get("BACKUP_PILOT_DRILL_RESTORE_RESERVE") {
                None => defaults.drill_restore_reserve,
                Some(raw) => match raw.trim().parse::<usize>() {
                    Ok(n) if n < 10 => n,
                    _ => {
                        problems.push(format!(
                            "BACKUP_PILOT_DRILL_RESTORE_RESERVE must be a number of restores from 0 to 9 (Azure allows 10 per backup instance per day), got {raw:?}"
                        ));
                        defaults.drill_restore_reserve
                    }
                },
            },
            rto_regression_percent: match get("BACKUP_PILOT_DRILL_RTO_REGRESSION_PERCENT") {
                None => defaults.rto_regression_percent,
                Some(raw) => raw.trim().parse::<u32>().unwrap_or_else(|_| {
                    problems.push(format!(
                        "BACKUP_PILOT_DRILL_RTO_REGRESSION_PERCENT must be a whole number of percent, got {raw:?}"
                    ));
                    defaults.rto_regression_percent
                }),
            },
            drill_max_per_vault: match get("BACKUP_PILOT_DRILL_MAX_PER_VAULT") {
                None => defaults.drill_max_per_vault,
                Some(raw) => match raw.trim().parse::<usize>() {
                    Ok(n) if n > 0 => n,
                    _ => {
                        problems.push(format!(
                            "BACKUP_PILOT_DRILL_MAX_PER_VAULT must be a number of drills above 0, got {raw:?}"
                        ));
                        defaults.drill_max_per_vault
                    }
                },
            },
            drill_period_days: match get("BACKUP_PILOT_DRILL_PERIOD_DAYS") {
                None => None,
                Some(raw) => match raw.trim().parse::<u32>() {
                    Ok(n) if (1..=366).contains(&n) => Some(n),
                    _ => {
                        problems.push(format!(
                            "BACKUP_PILOT_DRILL_PERIOD_DAYS must be a number of days from 1 to 366, got {raw:?}"
                        ));
                        None
                    }
                },
            },
            drill_probes: match get(PROBES_VAR) {
                None => Vec::new(),
                Some(raw) => parse_probes(&raw).unwrap_or_else(|e| {
                    problems.extend(e);
                    Vec::new()
                }),
            },
            drill_probe_image: get("BACKUP_PILOT_DRILL_PROBE_IMAGE")
                .map(|i| i.trim().to_string())
                .unwrap_or(defaults.drill_probe_image),
        };
        if problems.is_empty() {
            Ok(settings)
        } else {
            Err(problems)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn read(pairs: &[(&str, &str)]) -> Result<RestoreSettings, Vec<String>> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        RestoreSettings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_are_safe() {
        let s = read(&[]).unwrap();
        assert_eq!(s, RestoreSettings::default());
        assert!(
            s.allowlist.targets().is_empty(),
            "no restore target until configured"
        );
    }

    #[test]
    fn values_are_read() {
        let s = read(&[
            (VAULTS_VAR, "/subscriptions/s/resourceGroups/rg/providers/Microsoft.DataProtection/backupVaults/v1, /subscriptions/s/resourceGroups/rg/providers/Microsoft.DataProtection/backupVaults/v2"),
            (ALLOWLIST_VAR, r#"[{"cluster": "*", "namespaces": ["restored-*"]}]"#),
            ("BACKUP_PILOT_RESTORE_JOB_TIMEOUT_MINUTES", "90"),
            ("BACKUP_PILOT_DRILL_SAMPLE", "3"),
            ("BACKUP_PILOT_DRILL_NAMESPACES", "app,db"),
            ("BACKUP_PILOT_DRILL_INCLUDE_CLUSTER_SCOPE", "false"),
        ])
        .unwrap();
        assert_eq!(s.vaults.len(), 2);
        assert_eq!(s.allowlist.targets().len(), 1);
        assert_eq!(s.job_timeout, Duration::from_secs(90 * 60));
        assert_eq!(s.drill_sample, Some(3));
        assert_eq!(s.drill_namespaces, vec!["app", "db"]);
        assert!(!s.drill_include_cluster_scope);
    }

    #[test]
    fn every_problem_is_listed() {
        let problems = read(&[
            (VAULTS_VAR, "/subscriptions/s/resourceGroups/rg"),
            (ALLOWLIST_VAR, "[{"),
            ("BACKUP_PILOT_RESTORE_VERIFY_TIMEOUT_MINUTES", "0"),
            ("BACKUP_PILOT_DRILL_SAMPLE", "some"),
            ("BACKUP_PILOT_DRILL_NAMESPACES", "App"),
            ("BACKUP_PILOT_DRILL_INCLUDE_CLUSTER_SCOPE", "maybe"),
        ])
        .unwrap_err();
        assert_eq!(problems.len(), 6, "{problems:#?}");
    }
}

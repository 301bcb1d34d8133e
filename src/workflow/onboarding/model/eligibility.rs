//! Whether a cluster is onboarded, from its ARM body: in scope by its tags, settled, running,
//! with a managed identity and a region ([`judge`]); and whether an existing backup instance
//! already protects it as the settings ask ([`already_protected`]).

use std::time::Duration;

use serde_json::Value;

use crate::resource_id::ResourceId;
use crate::workflow::bodies::{BackupInstanceSpec, backup_instance_differences};
use crate::workflow::cluster::{control_plane_principal, tenant_of};
use crate::workflow::settings::{OnboardingSettings, TagExclusion};

/// Whether onboarding goes on, and if not why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Eligibility {
    /// The workflow ends with this summary: out of scope, opted out, gone, or already
    /// protected with the configured settings.
    Finish(String),
    /// The workflow fails; the text says what to do.
    Fail(String),
    /// The cluster is busy: look again after this long, for this reason.
    Wait(Duration, String),
    /// Onboarding goes on.
    Eligible(Eligible),
}

/// What onboarding needs to know about an eligible cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Eligible {
    /// Region (lower case, no spaces).
    pub location: String,
    /// Tenant of its identity (empty when ARM gives none).
    pub tenant: String,
    /// Its control-plane identity.
    pub principal: String,
}

/// The cluster's region from its body.
pub fn location_of(cluster: &Value) -> Option<String> {
    cluster
        .get("location")
        .and_then(Value::as_str)
        .map(|l| l.to_ascii_lowercase().replace(' ', ""))
}

/// Judges the cluster's body: `Eligible` when onboarding goes on to the cheap "already
/// protected" check, else why not.
///
/// # Errors
/// The cluster has no managed identity or no location (the text says which).
pub fn judge(
    settings: &OnboardingSettings,
    cluster_id: &ResourceId,
    cluster: &Value,
) -> Result<Eligibility, String> {
    let tags = cluster.get("tags");
    if let Some(why) = settings.tag_exclusion(tags) {
        let protection_kept = match why {
            TagExclusion::OptedOut(_) => "; existing protection, if any, is left as it is",
            TagExclusion::NotOptedIn(_) => "",
        };
        return Ok(Eligibility::Finish(format!(
            "not onboarded: the cluster {why}{protection_kept}"
        )));
    }
    let state = cluster
        .pointer("/properties/provisioningState")
        .and_then(Value::as_str)
        .unwrap_or("Succeeded");
    if state.eq_ignore_ascii_case("Failed") {
        return Ok(Eligibility::Fail(format!(
            "{cluster_id} is in provisioning state Failed; repair it (`az aks update` or `az aks reconcile`) and resend the cluster event"
        )));
    }
    if !state.eq_ignore_ascii_case("Succeeded") {
        return Ok(Eligibility::Wait(
            Duration::from_secs(60),
            format!("the cluster is {state}; waiting for it to settle"),
        ));
    }
    if cluster
        .pointer("/properties/powerState/code")
        .and_then(Value::as_str)
        .is_some_and(|c| c.eq_ignore_ascii_case("Stopped"))
    {
        return Ok(Eligibility::Fail(format!(
            "{cluster_id} is stopped; the backup extension cannot be installed on a stopped cluster. Start it (`az aks start`) and resend the cluster event"
        )));
    }
    let principal = control_plane_principal(cluster)?;
    let location = location_of(cluster)
        .ok_or_else(|| format!("{cluster_id} has no location in its ARM body"))?;
    let tenant = tenant_of(cluster).unwrap_or_default();
    Ok(Eligibility::Eligible(Eligible {
        location,
        tenant,
        principal,
    }))
}

/// True when `bi` is `ProtectionConfigured` and configured as `spec` asks.
pub fn already_protected(bi: &Value, spec: &BackupInstanceSpec) -> bool {
    let protected = bi
        .pointer("/properties/currentProtectionState")
        .and_then(Value::as_str)
        .is_some_and(|s| s == "ProtectionConfigured");
    protected && backup_instance_differences(bi, spec).is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::settings::TagMatch;
    use serde_json::json;

    const CLUSTER: &str =
        "/subscriptions/s/resourceGroups/g/providers/Microsoft.ContainerService/managedClusters/c";

    fn cluster(state: &str, power: &str, tags: Value, identity: Value) -> Value {
        json!({
            "location": "West Europe",
            "tags": tags,
            "identity": identity,
            "properties": {"provisioningState": state, "powerState": {"code": power}},
        })
    }

    fn managed() -> Value {
        json!({"type": "SystemAssigned", "principalId": "p", "tenantId": "t"})
    }

    #[test]
    fn a_cluster_body_is_judged_by_tags_state_power_and_identity() {
        let settings = OnboardingSettings {
            opt_out_tag: Some(TagMatch {
                key: "backup".into(),
                value: Some("off".into()),
            }),
            ..OnboardingSettings::default()
        };
        let id = ResourceId::parse(CLUSTER).unwrap();
        let eligible = Eligibility::Eligible(Eligible {
            location: "westeurope".into(),
            tenant: "t".into(),
            principal: "p".into(),
        });
        let none = json!({});
        // (body, expected verdict, or the start of the permanent error)
        let cases: [(Value, Result<Eligibility, &str>); 8] = [
            (cluster("Succeeded", "Running", none.clone(), managed()), Ok(eligible.clone())),
            (cluster("succeeded", "Running", json!({"backup": "on"}), managed()), Ok(eligible.clone())),
            (
                cluster("Succeeded", "Running", json!({"backup": "off"}), managed()),
                Ok(Eligibility::Finish("not onboarded: the cluster carries the opt-out tag backup=off; existing protection, if any, is left as it is".into())),
            ),
            (
                cluster("Failed", "Running", none.clone(), managed()),
                Ok(Eligibility::Fail(format!("{CLUSTER} is in provisioning state Failed; repair it (`az aks update` or `az aks reconcile`) and resend the cluster event"))),
            ),
            (
                cluster("Updating", "Running", none.clone(), managed()),
                Ok(Eligibility::Wait(Duration::from_secs(60), "the cluster is Updating; waiting for it to settle".into())),
            ),
            (
                cluster("Succeeded", "Stopped", none.clone(), managed()),
                Ok(Eligibility::Fail(format!("{CLUSTER} is stopped; the backup extension cannot be installed on a stopped cluster. Start it (`az aks start`) and resend the cluster event"))),
            ),
            (cluster("Succeeded", "Running", none.clone(), json!({"type": "None"})), Err("the cluster has no managed identity")),
            (
                json!({"identity": managed(), "properties": {"provisioningState": "Succeeded"}}),
                Err("/subscriptions/s/resourceGroups/g/providers/Microsoft.ContainerService/managedClusters/c has no location"),
            ),
        ];
        for (body, expected) in cases {
            let got = judge(&settings, &id, &body);
            match expected {
                Ok(verdict) => assert_eq!(got, Ok(verdict), "{body}"),
                Err(start) => assert!(
                    got.as_ref().is_err_and(|e| e.starts_with(start)),
                    "{body}: {got:?}"
                ),
            }
        }
    }

    #[test]
    fn the_region_is_lower_case_without_spaces() {
        let cases = [
            (json!({"location": "West Europe"}), Some("westeurope")),
            (json!({"location": "eastus2"}), Some("eastus2")),
            (json!({}), None),
        ];
        for (body, expected) in cases {
            assert_eq!(location_of(&body).as_deref(), expected, "{body}");
        }
    }
}

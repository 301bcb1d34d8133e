//! Settled reads: bodies of resources that, once settled, stay as they are for long stretches
//! (a registered provider, a shared resource group, storage account, vault or policy, a role
//! assignment at subscription scope, a region's Kubernetes versions), kept in memory for a
//! while so that a fleet's clusters share one read instead of each paying its own. At a
//! thousand clusters on one subscription, these reads alone would take the subscription's
//! whole read bucket for minutes.
//!
//! Only bodies the caller judges settled are kept (`Registered`, `Succeeded`), only for
//! [`ArmOptions::settled_read_ttl`](super::ArmOptions::settled_read_ttl) of the client's
//! clock, and any write through the same client to the path or a parent of it forgets them.
//! A drift made by someone else is seen once the entry expires; the fleet sweep repairs it.
//!
//! A shared resource this instance is creating is noted too ([`SettledReads::note_creating`]):
//! other clusters' workflows wait for it instead of each reading a 404 and sending a create
//! of their own (a thousand clusters created at once would otherwise send a thousand PUTs of
//! one storage account). The note ends when the resource is read, or after its window
//! if its creator died.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;
use time::OffsetDateTime;

use super::lro::{OperationStatus, provisioning_status};

/// Settled when its `provisioningState` is `Succeeded` (or it has none).
pub fn provisioned(body: &Value) -> bool {
    provisioning_status(body) == OperationStatus::Succeeded
}

/// Settled bodies by lower-cased path and api-version, each with when it was read.
#[derive(Debug, Default)]
pub struct SettledReads {
    entries: Mutex<HashMap<String, (OffsetDateTime, Value)>>,
    creating: Mutex<HashMap<String, OffsetDateTime>>,
}

fn key(path: &str, api_version: &str) -> String {
    format!("{}?{api_version}", path.to_ascii_lowercase())
}

impl SettledReads {
    /// The body read at `path` less than `ttl` before `now`, if any.
    pub fn get(
        &self,
        path: &str,
        api_version: &str,
        now: OffsetDateTime,
        ttl: Duration,
    ) -> Option<Value> {
        let entries = self.entries.lock().ok()?;
        let (at, body) = entries.get(&key(path, api_version))?;
        (now - *at < ttl).then(|| body.clone())
    }

    /// Notes that this instance is creating the resource at `path`, until `until` at most.
    pub fn note_creating(&self, path: &str, until: OffsetDateTime) {
        if let Ok(mut creating) = self.creating.lock() {
            creating.insert(path.to_ascii_lowercase(), until);
        }
    }

    /// How long the resource at `path` is still noted as being created, at `now`.
    pub fn creating_for(&self, path: &str, now: OffsetDateTime) -> Option<Duration> {
        let mut creating = self.creating.lock().ok()?;
        creating.retain(|_, until| *until > now);
        let until = *creating.get(&path.to_ascii_lowercase())?;
        Duration::try_from(until - now).ok()
    }

    /// Ends the note that the resource at `path` is being created: it was read.
    pub fn seen(&self, path: &str) {
        if let Ok(mut creating) = self.creating.lock() {
            creating.remove(&path.to_ascii_lowercase());
        }
    }

    /// Keeps `body` as read at `path` at `now`.
    pub fn put(
        &self,
        path: &str,
        api_version: &str,
        now: OffsetDateTime,
        body: Value,
        ttl: Duration,
    ) {
        if let Ok(mut entries) = self.entries.lock() {
            // Expired entries go whenever one is added, so the map never outgrows the fleet.
            entries.retain(|_, (at, _)| now - *at < ttl);
            entries.insert(key(path, api_version), (now, body));
        }
    }

    /// Forgets what was read at `path` and below it (a write went there).
    pub fn forget(&self, path: &str) {
        let prefix = path.to_ascii_lowercase();
        let prefix = prefix.trim_end_matches('/');
        if let Ok(mut entries) = self.entries.lock() {
            entries.retain(|k, _| {
                let Some(rest) = k.strip_prefix(prefix) else {
                    return true;
                };
                !(rest.starts_with('?') || rest.starts_with('/'))
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::datetime;

    const TTL: Duration = Duration::from_secs(300);
    const VAULT: &str =
        "/subscriptions/s/resourceGroups/rg/providers/Microsoft.DataProtection/backupVaults/bv";

    #[test]
    fn a_settled_body_is_reused_until_it_expires() {
        let reads = SettledReads::default();
        let t0 = datetime!(2026-12-06 08:00 UTC);
        assert!(reads.get(VAULT, "v1", t0, TTL).is_none());
        reads.put(VAULT, "v1", t0, json!({"name": "bv"}), TTL);
        assert_eq!(
            reads.get(
                &VAULT.to_uppercase(),
                "v1",
                t0 + Duration::from_secs(299),
                TTL
            ),
            Some(json!({"name": "bv"}))
        );
        assert!(
            reads.get(VAULT, "v2", t0, TTL).is_none(),
            "another api-version is another read"
        );
        assert!(reads.get(VAULT, "v1", t0 + TTL, TTL).is_none());
    }

    #[test]
    fn a_resource_being_created_is_noted_until_it_is_read_settled_or_its_window_ends() {
        let reads = SettledReads::default();
        let t0 = datetime!(2026-12-06 08:00 UTC);
        assert!(reads.creating_for(VAULT, t0).is_none());
        reads.note_creating(VAULT, t0 + Duration::from_secs(120));
        assert_eq!(
            reads.creating_for(&VAULT.to_uppercase(), t0 + Duration::from_secs(20)),
            Some(Duration::from_secs(100))
        );
        assert!(
            reads
                .creating_for(VAULT, t0 + Duration::from_secs(120))
                .is_none(),
            "its creator died"
        );
        reads.note_creating(VAULT, t0 + Duration::from_secs(120));
        reads.seen(VAULT);
        assert!(
            reads
                .creating_for(VAULT, t0 + Duration::from_secs(31))
                .is_none(),
            "it was read"
        );
    }

    #[test]
    fn a_write_forgets_the_path_and_what_is_below_it_only() {
        let reads = SettledReads::default();
        let t0 = datetime!(2026-12-06 08:00 UTC);
        let policy = format!("{VAULT}/backupPolicies/p");
        let sibling = format!("{VAULT}2");
        for path in [VAULT, policy.as_str(), sibling.as_str()] {
            reads.put(path, "v1", t0, json!({}), TTL);
        }
        reads.forget(VAULT);
        assert!(reads.get(VAULT, "v1", t0, TTL).is_none());
        assert!(reads.get(&policy, "v1", t0, TTL).is_none());
        assert!(
            reads.get(&sibling, "v1", t0, TTL).is_some(),
            "bv2 is not below bv"
        );
    }
}

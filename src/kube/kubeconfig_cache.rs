//! Kubeconfigs kept in memory per cluster for a while. Each `listClusterUserCredential` is an
//! ARM POST — a write, drawn from the subscription's smallest bucket — and every step that
//! touches a cluster needs one, so an instance keeps what it fetched for
//! [`KUBECONFIG_CACHE_TTL`] (wall-clock time). AKS credentials live far longer: a local
//! account's client certificate for years, and an Entra kubeconfig's user is replaced by the
//! service's own token. The TTL covers onboarding's span from `check_cluster_access`, during
//! the extension's install, to the hooks after it, with room for a throttled fleet. A
//! kubeconfig that cannot be used (a rotated certificate, a refused token) is forgotten at
//! once. Kept in memory only: a kubeconfig holds
//! credentials, and nothing here logs it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a fetched kubeconfig is reused.
pub const KUBECONFIG_CACHE_TTL: Duration = Duration::from_secs(30 * 60);

/// A kubeconfig and when it was fetched.
type Entry = (Instant, Arc<Vec<u8>>);

/// Kubeconfig bytes by cluster key, each with when it was fetched.
#[derive(Debug)]
pub struct KubeconfigCache {
    ttl: Duration,
    entries: Mutex<HashMap<String, Entry>>,
}

impl KubeconfigCache {
    /// An empty cache whose entries live `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The kubeconfig of `cluster`, if one was fetched less than the TTL ago.
    pub fn get(&self, cluster: &str) -> Option<Arc<Vec<u8>>> {
        let mut entries = self.entries.lock().ok()?;
        match entries.get(cluster) {
            Some((at, bytes)) if at.elapsed() < self.ttl => Some(bytes.clone()),
            Some(_) => {
                entries.remove(cluster);
                None
            }
            None => None,
        }
    }

    /// Keeps `bytes` as the kubeconfig of `cluster` from now.
    pub fn put(&self, cluster: String, bytes: Arc<Vec<u8>>) {
        if let Ok(mut entries) = self.entries.lock() {
            // Expired entries go whenever one is added, so the map never outgrows the fleet.
            let ttl = self.ttl;
            entries.retain(|_, (at, _)| at.elapsed() < ttl);
            entries.insert(cluster, (Instant::now(), bytes));
        }
    }

    /// Drops the kubeconfig of `cluster` (it could not be used).
    pub fn forget(&self, cluster: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(cluster);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kubeconfig_is_reused_until_it_expires_or_is_forgotten() {
        let cache = KubeconfigCache::new(Duration::from_secs(60));
        assert!(cache.get("a").is_none());
        cache.put("a".into(), Arc::new(b"kubeconfig".to_vec()));
        assert_eq!(cache.get("a").unwrap().as_slice(), b"kubeconfig");
        assert!(cache.get("b").is_none());
        cache.forget("a");
        assert!(cache.get("a").is_none());

        let expired = KubeconfigCache::new(Duration::ZERO);
        expired.put("a".into(), Arc::new(b"kubeconfig".to_vec()));
        assert!(expired.get("a").is_none());
    }
}

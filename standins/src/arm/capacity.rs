//! Node CPU capacity, to decide whether the backup extension's pods can be scheduled. The
//! model reproduces the guide's gotcha ("backup extension pods need ~500m CPU; a single
//! Standard_B2ms node is insufficient; scale to 2 nodes or use Standard_D2s_v3"): each node
//! offers its vCPUs — for burstable B-series only the size's baseline share — minus AKS's
//! kube-reserved CPU, and the cluster's system pods take a fixed share of the total.

use std::collections::BTreeMap;

/// One node pool as the capacity model sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolCapacity {
    /// VM size, e.g. `Standard_D2s_v3`.
    pub vm_size: String,
    /// Node count.
    pub count: u32,
}

/// The model's parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct CapacityModel {
    /// CPU the backup extension's pods request (guide: ~500m).
    pub extension_cpu_request_millicores: u32,
    /// CPU requested by the cluster's system pods (CoreDNS, metrics-server, konnectivity,
    /// CSI and cloud-node-manager), taken from the total.
    pub system_cpu_requests_millicores: u32,
    /// Schedulable millicores per node for VM sizes, overriding the built-in estimate
    /// (keys compared case-insensitively).
    pub vm_size_millicores: BTreeMap<String, u32>,
}

impl Default for CapacityModel {
    fn default() -> Self {
        Self {
            extension_cpu_request_millicores: 500,
            system_cpu_requests_millicores: 400,
            vm_size_millicores: BTreeMap::new(),
        }
    }
}

/// Baseline CPU share (in millicores of the whole VM) of burstable B-series sizes, from
/// Azure's published baselines (e.g. B2ms: 60% of one vCPU).
const BURSTABLE_BASELINE: [(&str, u32); 8] = [
    ("standard_b1s", 100),
    ("standard_b1ms", 200),
    ("standard_b2s", 400),
    ("standard_b2ms", 600),
    ("standard_b4ms", 900),
    ("standard_b8ms", 1350),
    ("standard_b12ms", 2025),
    ("standard_b16ms", 2700),
];

impl CapacityModel {
    /// Schedulable CPU of one node of `vm_size`, in millicores; `None` for a size whose vCPU
    /// count cannot be read from its name.
    pub fn node_millicores(&self, vm_size: &str) -> Option<u32> {
        let key = vm_size.to_ascii_lowercase();
        if let Some((_, m)) = self
            .vm_size_millicores
            .iter()
            .find(|(size, _)| size.eq_ignore_ascii_case(&key))
        {
            return Some(*m);
        }
        let vcpus = vcpus_of(&key)?;
        let raw = BURSTABLE_BASELINE
            .iter()
            .find(|(size, _)| *size == key)
            .map(|(_, m)| *m)
            .or_else(|| {
                // Other burstable sizes: assume a 30% baseline per vCPU.
                is_burstable(&key).then_some(vcpus * 300)
            })
            .unwrap_or(vcpus * 1000);
        Some(raw.saturating_sub(kube_reserved_millicores(vcpus)))
    }

    /// CPU left for add-ons after the system pods, in millicores (negative when short).
    pub fn free_millicores(&self, pools: &[PoolCapacity]) -> i64 {
        let total: i64 = pools
            .iter()
            .map(|p| i64::from(self.node_millicores(&p.vm_size).unwrap_or(0)) * i64::from(p.count))
            .sum();
        total - i64::from(self.system_cpu_requests_millicores)
    }

    /// Whether the backup extension's pods fit.
    pub fn fits_extension(&self, pools: &[PoolCapacity]) -> bool {
        self.free_millicores(pools) >= i64::from(self.extension_cpu_request_millicores)
    }
}

/// AKS kube-reserved CPU by core count (AKS docs: 1 core 60m, 2: 100m, 4: 140m, 8: 180m,
/// 16: 260m, 32: 420m, 64: 740m).
fn kube_reserved_millicores(vcpus: u32) -> u32 {
    match vcpus {
        0 | 1 => 60,
        2 | 3 => 100,
        4..=7 => 140,
        8..=15 => 180,
        16..=31 => 260,
        32..=63 => 420,
        _ => 740,
    }
}

/// The vCPU count in an Azure VM size name: the first digits after `Standard_` and the
/// family letters (`Standard_D4s_v3` → 4, `Standard_DS1_v2` → 1, `Standard_B2ms` → 2).
fn vcpus_of(lower_size: &str) -> Option<u32> {
    let rest = lower_size.strip_prefix("standard_")?;
    let digits: String = rest
        .chars()
        .skip_while(|c| c.is_ascii_alphabetic())
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok().filter(|n| *n > 0)
}

fn is_burstable(lower_size: &str) -> bool {
    lower_size
        .strip_prefix("standard_b")
        .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(size: &str, count: u32) -> Vec<PoolCapacity> {
        vec![PoolCapacity {
            vm_size: size.into(),
            count,
        }]
    }

    #[test]
    fn the_guide_gotcha_holds() {
        let model = CapacityModel::default();
        assert!(!model.fits_extension(&pool("Standard_B2ms", 1)));
        assert!(model.fits_extension(&pool("Standard_B2ms", 2)));
        assert!(model.fits_extension(&pool("Standard_D2s_v3", 1)));
    }

    #[test]
    fn sizes_are_read_from_names_and_overridable() {
        let mut model = CapacityModel::default();
        assert_eq!(model.node_millicores("Standard_D4s_v3"), Some(4000 - 140));
        assert_eq!(model.node_millicores("Standard_DS1_v2"), Some(1000 - 60));
        assert_eq!(model.node_millicores("weird"), None);
        model
            .vm_size_millicores
            .insert("Standard_B2ms".into(), 4000);
        assert!(model.fits_extension(&pool("standard_b2ms", 1)));
    }
}

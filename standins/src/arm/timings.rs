//! How long things take in the stand-in's (virtual) time. Defaults come from the guide's
//! "Estimated Timeline" (AKS 8-12 min, extension 5-10 min, first backup 3-5 min, role
//! propagation 1-2 min; infrastructure 15-20 min in all) and are the midpoints of its ranges;
//! steps the guide does not time get short, plausible values. Tests shrink or stretch them.

use std::time::Duration;

/// Durations of every simulated operation and delay.
#[derive(Debug, Clone, PartialEq)]
pub struct Timings {
    /// `Registering` → `Registered` after `Providers_Register`.
    pub provider_registration: Duration,
    /// How long a newly created managed identity stays invisible to role assignment
    /// (`PrincipalNotFound` unless `principalType` is given).
    pub principal_replication: Duration,
    /// How long after creation a role assignment becomes effective (guide: 1-2 min).
    pub role_propagation: Duration,
    /// Resource group deletion.
    pub resource_group_delete: Duration,
    /// AKS cluster creation (guide: 8-12 min).
    pub cluster_create: Duration,
    /// AKS cluster update (e.g. enabling the CSI driver or snapshot controller).
    pub cluster_update: Duration,
    /// AKS cluster deletion.
    pub cluster_delete: Duration,
    /// Agent pool create/scale.
    pub agent_pool_update: Duration,
    /// Trusted-access role binding create/update/delete.
    pub trusted_access_binding: Duration,
    /// Storage account creation.
    pub storage_account_create: Duration,
    /// Backup vault creation.
    pub vault_create: Duration,
    /// Backup extension installation (guide: 5-10 min).
    pub extension_install: Duration,
    /// Extension deletion.
    pub extension_delete: Duration,
    /// `validateForBackup`.
    pub validate_for_backup: Duration,
    /// Backup instance: configuring protection.
    pub protection_configure: Duration,
    /// Backup instance deletion.
    pub backup_instance_delete: Duration,
    /// `stopProtection` of a backup instance.
    pub stop_protection: Duration,
    /// Ad-hoc backup: from the POST until the job exists and the operation succeeds.
    pub backup_trigger: Duration,
    /// Ad-hoc backup job until the recovery point appears (guide: first backup 3-5 min).
    pub backup_job: Duration,
    /// `validateRestore`.
    pub validate_restore: Duration,
    /// Restore: from the POST until the job exists and the operation succeeds.
    pub restore_trigger: Duration,
    /// Restore job until the resources are back (guide: restore operation 3-5 min).
    pub restore_job: Duration,
}

impl Default for Timings {
    fn default() -> Self {
        let secs = Duration::from_secs;
        Self {
            provider_registration: secs(60),
            principal_replication: secs(60),
            role_propagation: secs(90),
            resource_group_delete: secs(180),
            cluster_create: secs(600),
            cluster_update: secs(300),
            cluster_delete: secs(300),
            agent_pool_update: secs(240),
            trusted_access_binding: secs(30),
            storage_account_create: secs(30),
            vault_create: secs(60),
            extension_install: secs(450),
            extension_delete: secs(180),
            validate_for_backup: secs(30),
            protection_configure: secs(60),
            backup_instance_delete: secs(60),
            stop_protection: secs(30),
            backup_trigger: secs(15),
            backup_job: secs(240),
            validate_restore: secs(30),
            restore_trigger: secs(15),
            restore_job: secs(225),
        }
    }
}

impl Timings {
    /// Every duration zero except the delays that make the product wait (principal
    /// replication, role propagation): handy for tests of everything else.
    pub fn instant() -> Self {
        let zero = Duration::ZERO;
        Self {
            provider_registration: zero,
            principal_replication: zero,
            role_propagation: zero,
            resource_group_delete: zero,
            cluster_create: zero,
            cluster_update: zero,
            cluster_delete: zero,
            agent_pool_update: zero,
            trusted_access_binding: zero,
            storage_account_create: zero,
            vault_create: zero,
            extension_install: zero,
            extension_delete: zero,
            validate_for_backup: zero,
            protection_configure: zero,
            backup_instance_delete: zero,
            stop_protection: zero,
            backup_trigger: zero,
            backup_job: zero,
            validate_restore: zero,
            restore_trigger: zero,
            restore_job: zero,
        }
    }
}

/// A `Duration` as a `time::Duration` (saturating).
pub fn span(duration: Duration) -> time::Duration {
    time::Duration::try_from(duration).unwrap_or(time::Duration::MAX)
}

/// `Retry-After` for an operation due at `due`: whole seconds, at least 1 and at most 60
/// (ARM's guidance is 10 s to 10 min; the cap keeps compressed-time runs fast).
pub fn retry_after_secs(now: time::OffsetDateTime, due: time::OffsetDateTime) -> u64 {
    let left = (due - now).as_seconds_f64().ceil();
    if left.is_nan() || left < 1.0 {
        1
    } else if left > 60.0 {
        60
    } else {
        // In 1..=60 here.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let secs = left as u64;
        secs
    }
}

/// ARM's delay headers stated in real time: on a clock running `scale` times faster than
/// real time, each `Retry-After` of the answer (whole virtual seconds, as the providers write
/// it) becomes the real seconds it stands for, rounded up, and `retry-after-ms` (the header
/// Azure SDKs read before `Retry-After`) carries the exact real milliseconds. A client of any
/// kind can then wait literally; at scale 1 nothing changes.
pub fn retry_after_in_real_time(headers: &mut Vec<(String, String)>, scale: f64) {
    if !scale.is_finite() || scale <= 1.0 {
        return;
    }
    let mut millis = None;
    for (name, value) in headers.iter_mut() {
        if !name.eq_ignore_ascii_case("retry-after") {
            continue;
        }
        let Ok(virtual_secs) = value.trim().parse::<u64>() else {
            continue;
        };
        let real_ms = (Duration::from_secs(virtual_secs).as_secs_f64() * 1000.0 / scale)
            .ceil()
            .max(1.0);
        // Finite and at least 1 here; delays are far below u64::MAX milliseconds.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let real_ms = real_ms as u64;
        *value = real_ms.div_ceil(1000).to_string();
        millis = Some(real_ms);
    }
    if let Some(ms) = millis {
        headers.retain(|(name, _)| !name.eq_ignore_ascii_case("retry-after-ms"));
        headers.push(("retry-after-ms".into(), ms.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn defaults_sit_inside_the_guide_ranges() {
        let t = Timings::default();
        let within = |d: Duration, lo: u64, hi: u64| (lo * 60..=hi * 60).contains(&d.as_secs());
        assert!(within(t.cluster_create, 8, 12));
        assert!(within(t.extension_install, 5, 10));
        assert!(within(t.backup_job + t.backup_trigger, 3, 5));
        assert!(within(t.role_propagation, 1, 2));
        assert!(within(t.restore_job + t.restore_trigger, 3, 5));
    }

    #[test]
    fn retry_after_is_bounded_whole_seconds() {
        let now = datetime!(2026-01-01 00:00 UTC);
        assert_eq!(retry_after_secs(now, now), 1);
        assert_eq!(
            retry_after_secs(now, now + time::Duration::milliseconds(2500)),
            3
        );
        assert_eq!(retry_after_secs(now, now + time::Duration::hours(1)), 60);
    }

    #[test]
    fn retry_after_is_real_seconds_rounded_up_at_a_time_scale() {
        let headers = |v: &str| vec![("Retry-After".to_string(), v.to_string())];
        let mut at_600 = headers("30");
        retry_after_in_real_time(&mut at_600, 600.0);
        assert_eq!(
            at_600,
            vec![
                ("Retry-After".to_string(), "1".to_string()),
                ("retry-after-ms".to_string(), "50".to_string())
            ]
        );
        let mut at_10 = headers("17");
        retry_after_in_real_time(&mut at_10, 10.0);
        assert_eq!(at_10[0].1, "2");
        assert_eq!(at_10[1].1, "1700");
        let mut real_time = headers("17");
        retry_after_in_real_time(&mut real_time, 1.0);
        assert_eq!(
            real_time,
            headers("17"),
            "at scale 1 ARM's header is untouched"
        );
    }
}

//! Do the restored pods' references resolve? A pod names config maps, secrets and a service
//! account that must exist in its own namespace (volumes, projected volumes, `envFrom`,
//! `env[].valueFrom`, `imagePullSecrets`, `serviceAccountName`); a restore that brings a pod
//! back without what it names leaves it in `CreateContainerConfigError` or unable to start.
//! References marked `optional: true` are not required. [`pod_references`] reads one pod;
//! [`check_references`] resolves every pod's in a namespace.

use std::collections::BTreeSet;
use std::fmt;

use futures::try_join;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, PodSpec, Secret, ServiceAccount};
use kube::api::{Api, ListParams};
use serde::{Deserialize, Serialize};

use super::access::ClusterClient;
use super::error::KubeError;
use super::probe_pods::is_probe_pod;

/// The service account a pod runs as when it names none; every namespace has one (the
/// service account controller creates it).
pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";

/// What a reference names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ReferenceKind {
    /// A ConfigMap.
    ConfigMap,
    /// A Secret.
    Secret,
    /// A ServiceAccount.
    ServiceAccount,
}

impl fmt::Display for ReferenceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ConfigMap => "config map",
            Self::Secret => "secret",
            Self::ServiceAccount => "service account",
        })
    }
}

/// One required object a pod names, in the pod's namespace.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Reference {
    /// Its kind.
    pub kind: ReferenceKind,
    /// Its name.
    pub name: String,
}

/// The required objects a pod spec names (each once; optional ones left out). A pod that
/// names no service account uses `default`.
pub fn pod_references(spec: &PodSpec) -> BTreeSet<Reference> {
    let mut refs = BTreeSet::new();
    let mut add = |kind, name: Option<&String>, optional: Option<bool>| {
        if let Some(name) = name.filter(|n| !n.is_empty())
            && optional != Some(true)
        {
            refs.insert(Reference {
                kind,
                name: name.clone(),
            });
        }
    };
    let account = spec
        .service_account_name
        .clone()
        .unwrap_or_else(|| DEFAULT_SERVICE_ACCOUNT.into());
    add(ReferenceKind::ServiceAccount, Some(&account), None);
    for secret in spec.image_pull_secrets.iter().flatten() {
        add(ReferenceKind::Secret, Some(&secret.name), None);
    }
    for volume in spec.volumes.iter().flatten() {
        if let Some(c) = &volume.config_map {
            add(ReferenceKind::ConfigMap, Some(&c.name), c.optional);
        }
        if let Some(s) = &volume.secret {
            add(ReferenceKind::Secret, s.secret_name.as_ref(), s.optional);
        }
        for source in volume
            .projected
            .iter()
            .flat_map(|p| p.sources.iter().flatten())
        {
            if let Some(c) = &source.config_map {
                add(ReferenceKind::ConfigMap, Some(&c.name), c.optional);
            }
            if let Some(s) = &source.secret {
                add(ReferenceKind::Secret, Some(&s.name), s.optional);
            }
        }
    }
    let containers = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten());
    for container in containers {
        for from in container.env_from.iter().flatten() {
            if let Some(c) = &from.config_map_ref {
                add(ReferenceKind::ConfigMap, Some(&c.name), c.optional);
            }
            if let Some(s) = &from.secret_ref {
                add(ReferenceKind::Secret, Some(&s.name), s.optional);
            }
        }
        for value_from in container
            .env
            .iter()
            .flatten()
            .filter_map(|e| e.value_from.as_ref())
        {
            if let Some(c) = &value_from.config_map_key_ref {
                add(ReferenceKind::ConfigMap, Some(&c.name), c.optional);
            }
            if let Some(s) = &value_from.secret_key_ref {
                add(ReferenceKind::Secret, Some(&s.name), s.optional);
            }
        }
    }
    refs
}

/// The references of a namespace's pods and which of them do not resolve.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReferenceCheck {
    /// Distinct (kind, name) references across the namespace's pods.
    pub total: usize,
    /// The ones that name a missing object: `secret db-creds (pod web-0)`.
    pub missing: Vec<String>,
}

impl ReferenceCheck {
    /// References that resolve.
    pub fn resolved(&self) -> usize {
        self.total.saturating_sub(self.missing.len())
    }
}

/// Lists a namespace's pods, config maps, secrets and service accounts and resolves every
/// restored pod's references (a drill's probe pods are not restored content). A missing namespace has no pods and so nothing to resolve.
///
/// # Errors
/// The API server's rejection.
pub async fn check_references(
    cluster: &ClusterClient,
    namespace: &str,
) -> Result<ReferenceCheck, KubeError> {
    let client = cluster.kube();
    let all = ListParams::default();
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let accounts: Api<ServiceAccount> = Api::namespaced(client, namespace);
    let fail = |what: &str| {
        let action = format!("list {what} in namespace {namespace}");
        move |e| cluster.error(&action, e)
    };
    let (pods, config_maps, secrets, accounts) = try_join!(
        async { pods.list(&all).await.map_err(fail("pods")) },
        async { config_maps.list(&all).await.map_err(fail("config maps")) },
        async { secrets.list(&all).await.map_err(fail("secrets")) },
        async { accounts.list(&all).await.map_err(fail("service accounts")) },
    )?;
    let names = |items: Vec<Option<String>>| items.into_iter().flatten().collect::<BTreeSet<_>>();
    let present = [
        (
            ReferenceKind::ConfigMap,
            names(
                config_maps
                    .items
                    .into_iter()
                    .map(|o| o.metadata.name)
                    .collect(),
            ),
        ),
        (
            ReferenceKind::Secret,
            names(secrets.items.into_iter().map(|o| o.metadata.name).collect()),
        ),
        (
            ReferenceKind::ServiceAccount,
            names(
                accounts
                    .items
                    .into_iter()
                    .map(|o| o.metadata.name)
                    .collect(),
            ),
        ),
    ];
    Ok(resolve(
        pods.items
            .iter()
            .filter(|p| !is_probe_pod(p))
            .filter_map(|p| {
                Some((
                    p.metadata.name.clone().unwrap_or_default(),
                    p.spec.as_ref()?,
                ))
            }),
        &present,
    ))
}

/// Resolves each pod's references against the objects present.
fn resolve<'a>(
    pods: impl Iterator<Item = (String, &'a PodSpec)>,
    present: &[(ReferenceKind, BTreeSet<String>)],
) -> ReferenceCheck {
    let mut seen = BTreeSet::new();
    let mut missing = Vec::new();
    for (pod, spec) in pods {
        for reference in pod_references(spec) {
            let exists = present
                .iter()
                .any(|(kind, names)| *kind == reference.kind && names.contains(&reference.name));
            if seen.insert(reference.clone()) && !exists {
                missing.push(format!("{} {} (pod {pod})", reference.kind, reference.name));
            }
        }
    }
    ReferenceCheck {
        total: seen.len(),
        missing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: serde_json::Value) -> PodSpec {
        serde_json::from_value(json).unwrap()
    }

    fn names(refs: &BTreeSet<Reference>) -> Vec<String> {
        refs.iter()
            .map(|r| format!("{} {}", r.kind, r.name))
            .collect()
    }

    #[test]
    fn every_required_reference_is_read_and_optional_ones_are_not() {
        let s = spec(serde_json::json!({
            "serviceAccountName": "web",
            "imagePullSecrets": [{"name": "registry"}],
            "volumes": [
                {"name": "a", "configMap": {"name": "settings"}},
                {"name": "b", "secret": {"secretName": "tls"}},
                {"name": "c", "secret": {"secretName": "maybe", "optional": true}},
                {"name": "d", "projected": {"sources": [{"configMap": {"name": "bundle"}}, {"secret": {"name": "token"}}]}},
                {"name": "e", "emptyDir": {}}
            ],
            "initContainers": [{"name": "init", "image": "i", "envFrom": [{"secretRef": {"name": "init-env"}}]}],
            "containers": [{"name": "main", "image": "m",
                "envFrom": [{"configMapRef": {"name": "env"}}, {"configMapRef": {"name": "opt", "optional": true}}],
                "env": [
                    {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
                    {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}},
                    {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "PLAIN", "value": "x"}
                ]}]
        }));
        assert_eq!(
            names(&pod_references(&s)),
            [
                "config map bundle",
                "config map env",
                "config map settings",
                "secret db",
                "secret init-env",
                "secret registry",
                "secret tls",
                "secret token",
                "service account web",
            ]
        );
    }

    #[test]
    fn a_pod_without_a_service_account_uses_default() {
        let s = spec(serde_json::json!({"containers": [{"name": "main", "image": "m"}]}));
        assert_eq!(names(&pod_references(&s)), ["service account default"]);
    }

    #[test]
    fn missing_objects_are_named_once_with_the_first_pod_that_needs_them() {
        let web = spec(
            serde_json::json!({"containers": [{"name": "main", "image": "m",
            "envFrom": [{"secretRef": {"name": "db-creds"}}, {"configMapRef": {"name": "web-config"}}]}]}),
        );
        let present = [
            (
                ReferenceKind::ConfigMap,
                BTreeSet::from(["web-config".to_string()]),
            ),
            (ReferenceKind::Secret, BTreeSet::new()),
            (
                ReferenceKind::ServiceAccount,
                BTreeSet::from(["default".to_string()]),
            ),
        ];
        let check = resolve(
            [("web-0".to_string(), &web), ("web-1".to_string(), &web)].into_iter(),
            &present,
        );
        assert_eq!(check.total, 3);
        assert_eq!(check.missing, ["secret db-creds (pod web-0)"]);
        assert_eq!(check.resolved(), 2);
        let none = resolve(std::iter::empty(), &present);
        assert_eq!((none.total, none.missing.len()), (0, 0));
    }
}

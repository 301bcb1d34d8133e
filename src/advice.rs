//! What a person running the command line should do when one of its reads fails: the command
//! to run, as the az CLI prints it (`az role assignment create …` for a denied read with the
//! role and scope, `az provider register …`, `az login`). The service's own failures carry
//! their advice in the error (see [`crate::arm::error`]); this is the operator's side.

use crate::arm::ArmError;
use crate::arm::error::role_for_denied_action;
use crate::kube::KubeError;

/// The assignee of the role commands: the signed-in user.
const YOU: &str = "\"$(az ad signed-in-user show --query id -o tsv)\"";

/// The command that grants you `role` on `scope`.
pub fn grant(role: &str, scope: &str) -> String {
    format!("run: az role assignment create --assignee {YOU} --role \"{role}\" --scope {scope}")
}

/// The fix for a failed ARM read of `path`, when the code knows one.
pub fn for_arm(err: &ArmError, path: &str) -> Option<String> {
    if let ArmError::Token(_) = err {
        return Some(
            "sign in with `az login` (the command line uses your az login unless AZURE_CREDENTIAL says otherwise)"
                .into(),
        );
    }
    if let ArmError::Send { .. } = err {
        return Some(
            "check your network and BACKUP_PILOT_ARM_URL (default https://management.azure.com)"
                .into(),
        );
    }
    let fault = err.fault()?;
    let code = fault.code.as_str();
    if code.eq_ignore_ascii_case("AuthorizationFailed") || fault.status == 403 {
        let scope = quoted_after(&fault.message, "scope '")
            .map(str::to_string)
            .unwrap_or_else(|| resource_group_of(path));
        let role = match role_for_denied_action(&fault.message) {
            Some(r) if r.starts_with("User Access Administrator") => "User Access Administrator",
            Some(r) => r,
            None => "Reader",
        };
        return Some(grant(role, &scope));
    }
    if code.eq_ignore_ascii_case("MissingSubscriptionRegistration") {
        let namespace = quoted_after(&fault.message, "namespace '").unwrap_or("<namespace>");
        return Some(format!(
            "run: az provider register --namespace {namespace} --subscription {}",
            subscription_of(path)
        ));
    }
    if code.eq_ignore_ascii_case("SubscriptionNotFound") {
        return Some(format!(
            "check the subscription id: `az account list --query \"[?id=='{}']\"` must show it",
            subscription_of(path)
        ));
    }
    if code.eq_ignore_ascii_case("InvalidAuthenticationToken")
        || code.eq_ignore_ascii_case("ExpiredAuthenticationToken")
    {
        return Some("sign in again with `az login`".into());
    }
    None
}

/// The fix for a failed look into `cluster` itself, when the code knows one.
pub fn for_kube(err: &KubeError, cluster: &str) -> Option<String> {
    match err {
        KubeError::FetchKubeconfig { source, .. } if source.status() == Some(403) => Some(
            grant("Azure Kubernetes Service Cluster User Role", cluster),
        ),
        KubeError::FetchKubeconfig { source, .. } => for_arm(source, cluster),
        KubeError::Forbidden { .. } => Some(format!(
            "{} (on a cluster with Azure RBAC), or bind a Kubernetes role that can read pods in dataprotection-microsoft and CustomResourceDefinitions",
            grant("Azure Kubernetes Service RBAC Reader", cluster)
        )),
        KubeError::Unauthorized { .. } | KubeError::EntraToken(_) => Some(
            "sign in with `az login` as a user the cluster admits (Entra-integrated clusters take your Entra token)"
                .into(),
        ),
        _ => None,
    }
}

/// The fix for a failed send to Service Bus, when the code knows one.
pub fn for_bus(err: &crate::bus::BusError) -> Option<String> {
    use crate::bus::BusError;
    match err {
        BusError::Status { status: 401, .. } => Some(
            "sign in with `az login`, or check BACKUP_PILOT_SERVICEBUS_CONNECTION_STRING".into(),
        ),
        BusError::Status { status: 403, .. } if !err.is_too_large() => Some(grant(
            "Azure Service Bus Data Sender",
            "<the Service Bus namespace's resource id>",
        )),
        BusError::Status { status: 404, queue, .. } => Some(format!(
            "the queue {queue} does not exist in the namespace: check BACKUP_PILOT_SERVICEBUS_URL and the BACKUP_PILOT_QUEUE_* settings"
        )),
        BusError::Auth(_) => Some("sign in with `az login`".into()),
        BusError::Connection { .. } => Some(
            "check the namespace (ServiceBusConnection__fullyQualifiedNamespace or BACKUP_PILOT_SERVICEBUS_URL) and your network".into(),
        ),
        _ => None,
    }
}

/// The text between `marker` and the next `'`.
fn quoted_after<'a>(text: &'a str, marker: &str) -> Option<&'a str> {
    text.split(marker)
        .nth(1)?
        .split('\'')
        .next()
        .filter(|s| !s.is_empty())
}

fn subscription_of(path: &str) -> String {
    path.split('/')
        .skip_while(|s| !s.eq_ignore_ascii_case("subscriptions"))
        .nth(1)
        .unwrap_or("<subscription>")
        .to_string()
}

/// `/subscriptions/{s}/resourceGroups/{g}` of a path, else the subscription.
fn resource_group_of(path: &str) -> String {
    let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match parts.as_slice() {
        [s, sub, g, rg, ..]
            if s.eq_ignore_ascii_case("subscriptions")
                && g.eq_ignore_ascii_case("resourceGroups") =>
        {
            format!("/subscriptions/{sub}/resourceGroups/{rg}")
        }
        [s, sub, ..] if s.eq_ignore_ascii_case("subscriptions") => format!("/subscriptions/{sub}"),
        _ => path.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arm::error::ArmFault;

    fn rejected(status: u16, code: &str, message: &str) -> ArmError {
        ArmError::Rejected(Box::new(ArmFault {
            status,
            code: code.into(),
            message: message.into(),
            retry_after: None,
            request: "GET /x".into(),
            request_ids: String::new(),
        }))
    }

    const VAULT: &str = "/subscriptions/s1/resourceGroups/rg-shop/providers/Microsoft.DataProtection/backupVaults/bv-shop";

    #[test]
    fn a_denied_read_names_the_role_and_scope_to_grant() {
        let err = rejected(
            403,
            "AuthorizationFailed",
            &format!(
                "The client 'u' does not have authorization to perform action 'Microsoft.DataProtection/backupVaults/read' over scope '{VAULT}' or the scope is invalid."
            ),
        );
        let fix = for_arm(&err, VAULT).unwrap();
        assert!(
            fix.starts_with("run: az role assignment create --assignee"),
            "{fix}"
        );
        assert!(
            fix.contains(&format!("--role \"Reader\" --scope {VAULT}")),
            "{fix}"
        );
        let bare = for_arm(&rejected(403, "Forbidden", ""), VAULT).unwrap();
        assert!(
            bare.ends_with("--scope /subscriptions/s1/resourceGroups/rg-shop"),
            "{bare}"
        );
    }

    #[test]
    fn an_unregistered_namespace_names_the_registration() {
        let err = rejected(
            409,
            "MissingSubscriptionRegistration",
            "The subscription is not registered to use namespace 'Microsoft.DataProtection'.",
        );
        assert_eq!(
            for_arm(&err, VAULT).unwrap(),
            "run: az provider register --namespace Microsoft.DataProtection --subscription s1"
        );
        assert_eq!(for_arm(&rejected(409, "Conflict", "busy"), VAULT), None);
    }

    #[test]
    fn a_refused_kubeconfig_names_the_cluster_user_role() {
        let cluster = "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/c";
        let err = KubeError::FetchKubeconfig {
            cluster: cluster.into(),
            operation: "listClusterUserCredential",
            source: rejected(403, "AuthorizationFailed", "no"),
            hint: "",
        };
        let fix = for_kube(&err, cluster).unwrap();
        assert!(
            fix.contains("\"Azure Kubernetes Service Cluster User Role\" --scope /subscriptions/s1/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/c"),
            "{fix}"
        );
    }
}

//! Name rules from the specs' path parameters (patterns and lengths), checked by hand so the
//! messages can say what is wrong and how to fix it.

use super::super::error::ArmError;
use axum::http::StatusCode;

fn invalid_name(kind: &str, name: &str, rule: &str) -> ArmError {
    ArmError::new(
        StatusCode::BAD_REQUEST,
        "InvalidResourceName",
        format!("The {kind} name '{name}' is invalid: {rule}"),
    )
}

fn len_in(name: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&name.chars().count())
}

/// Subscription ids are GUIDs (common-types v5 `SubscriptionIdParameter`, format uuid).
pub fn subscription(id: &str) -> Result<(), ArmError> {
    if uuid::Uuid::parse_str(id).is_ok() {
        Ok(())
    } else {
        Err(ArmError::new(
            StatusCode::BAD_REQUEST,
            "InvalidSubscriptionId",
            format!("The provided subscription identifier '{id}' is malformed or invalid."),
        ))
    }
}

/// Resource group: `^[-\w\._\(\)]+$`, 1-90 characters (resources.json 2022-09-01).
pub fn resource_group(name: &str) -> Result<(), ArmError> {
    let ok = len_in(name, 1, 90)
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '(' | ')'));
    if ok {
        Ok(())
    } else {
        Err(invalid_name(
            "resource group",
            name,
            "it must be 1-90 characters of letters, digits, '-', '_', '.', '(' and ')'.",
        ))
    }
}

/// Managed cluster: `^[a-zA-Z0-9]$|^[a-zA-Z0-9][-_a-zA-Z0-9]{0,61}[a-zA-Z0-9]$`.
pub fn managed_cluster(name: &str) -> Result<(), ArmError> {
    let chars: Vec<char> = name.chars().collect();
    let edge = |c: &char| c.is_ascii_alphanumeric();
    let ok = len_in(name, 1, 63)
        && chars.first().is_some_and(edge)
        && chars.last().is_some_and(edge)
        && chars
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
    if ok {
        Ok(())
    } else {
        Err(invalid_name(
            "managed cluster",
            name,
            "it must be 1-63 characters of letters, digits, '-' and '_', starting and ending with a letter or digit.",
        ))
    }
}

/// Agent pool: `^[a-z][a-z0-9]{0,11}$`.
pub fn agent_pool(name: &str) -> Result<(), ArmError> {
    let ok = len_in(name, 1, 12)
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(invalid_name(
            "agent pool",
            name,
            "it must be 1-12 lower-case letters and digits, starting with a letter.",
        ))
    }
}

/// Trusted-access role binding: `^([A-Za-z0-9-])+$`, 1-24 characters.
pub fn trusted_access_binding(name: &str) -> Result<(), ArmError> {
    let ok = len_in(name, 1, 24) && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(invalid_name(
            "trusted access role binding",
            name,
            "it must be 1-24 characters of letters, digits and '-'.",
        ))
    }
}

/// Storage account: `^[a-z0-9]+$`, 3-24 characters (storage.json `StorageAccountName`).
pub fn storage_account_is_valid(name: &str) -> bool {
    len_in(name, 3, 24)
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
}

/// The message Storage gives for an invalid account name.
pub fn storage_account_rule(name: &str) -> String {
    format!(
        "{name} is not a valid storage account name. Storage account name must be between 3 and 24 characters in length and use numbers and lower-case letters only."
    )
}

/// Storage account, as a path parameter.
pub fn storage_account(name: &str) -> Result<(), ArmError> {
    if storage_account_is_valid(name) {
        Ok(())
    } else {
        Err(ArmError::new(
            StatusCode::BAD_REQUEST,
            "AccountNameInvalid",
            storage_account_rule(name),
        ))
    }
}

/// Blob container: 3-63 characters of lower-case letters, digits and '-', each '-' between
/// letters or digits (blob.json `ContainerName`).
pub fn blob_container(name: &str) -> Result<(), ArmError> {
    let chars: Vec<char> = name.chars().collect();
    let alnum = |c: &char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let ok = len_in(name, 3, 63)
        && chars.iter().all(|c| alnum(c) || *c == '-')
        && chars.first().is_some_and(alnum)
        && chars.last().is_some_and(alnum)
        && !name.contains("--");
    if ok {
        Ok(())
    } else {
        Err(invalid_name(
            "blob container",
            name,
            "it must be 3-63 characters of lower-case letters, digits and '-', and every '-' must be immediately preceded and followed by a letter or digit.",
        ))
    }
}

/// Backup vault: `^[A-Za-z][-A-Za-z0-9]*[A-Za-z0-9]$`, 2-50 characters. The 2023-11-01 spec
/// has no pattern; the service enforces this one, which later spec versions document.
pub fn backup_vault(name: &str) -> Result<(), ArmError> {
    let chars: Vec<char> = name.chars().collect();
    let ok = len_in(name, 2, 50)
        && chars.first().is_some_and(char::is_ascii_alphabetic)
        && chars.last().is_some_and(char::is_ascii_alphanumeric)
        && chars.iter().all(|c| c.is_ascii_alphanumeric() || *c == '-');
    if ok {
        Ok(())
    } else {
        Err(invalid_name(
            "backup vault",
            name,
            "it must be 2-50 characters of letters, digits and '-', starting with a letter and ending with a letter or digit.",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_spec_patterns() {
        assert!(resource_group("rg-aks_backup.(1)").is_ok());
        assert!(resource_group("rg with space").is_err());
        assert!(managed_cluster("aks-1").is_ok());
        assert!(managed_cluster("-aks").is_err());
        assert!(agent_pool("nodepool1").is_ok());
        assert!(agent_pool("NodePool").is_err());
        assert!(agent_pool("nodepool12345").is_err());
        assert!(trusted_access_binding("tarb-0123456789abcdef").is_ok());
        assert!(trusted_access_binding("tarb_x").is_err());
        assert!(storage_account("aksbkp123").is_ok());
        assert_eq!(
            storage_account("AksBkp").unwrap_err().code,
            "AccountNameInvalid"
        );
        assert!(blob_container("aks-backups").is_ok());
        assert!(blob_container("aks--backups").is_err());
        assert!(blob_container("-aks").is_err());
        assert!(backup_vault("AKSAzureBackup-westeurope").is_ok());
        assert!(backup_vault("1vault").is_err());
        assert!(subscription("00000000-0000-0000-0000-000000000001").is_ok());
        assert_eq!(
            subscription("sub").unwrap_err().code,
            "InvalidSubscriptionId"
        );
    }
}

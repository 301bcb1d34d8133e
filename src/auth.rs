//! Credentials. Azure calls authenticate with a Microsoft Entra token from `azure_identity`:
//! the managed identity when the Functions host provides one (`IDENTITY_ENDPOINT` +
//! `IDENTITY_HEADER`), otherwise the developer's az / azd login. Tokens are fetched per call
//! (the credential caches them) and never logged: [`BearerToken`] redacts itself.

use std::fmt;
use std::sync::Arc;

use azure_core::credentials::TokenCredential;
use azure_identity::{
    DeveloperToolsCredential, ManagedIdentityCredential, ManagedIdentityCredentialOptions,
    UserAssignedId,
};

/// Scope for Azure Resource Manager.
pub const ARM_SCOPE: &str = "https://management.azure.com/.default";
/// Scope for Service Bus data-plane calls.
pub const SERVICE_BUS_SCOPE: &str = "https://servicebus.azure.net/.default";
/// Scope for Blob storage data-plane calls.
pub const STORAGE_SCOPE: &str = "https://storage.azure.com/.default";
/// Scope of the AKS AAD server application, for Entra-integrated clusters.
pub const AKS_SCOPE: &str = "6dae42f8-4368-4678-94ff-3960e28e3630/.default";

/// Which credential to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSource {
    /// Managed identity; `client_id` selects a user-assigned identity.
    ManagedIdentity {
        /// Client id of a user-assigned identity, if not system-assigned.
        client_id: Option<String>,
    },
    /// The developer's `az` or `azd` login.
    Developer,
}

impl CredentialSource {
    /// Chooses from the environment: an explicit `AZURE_CREDENTIAL` (`managed-identity` or
    /// `developer`), else managed identity when the host provides an identity endpoint.
    ///
    /// # Errors
    /// An unknown `AZURE_CREDENTIAL` value.
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let client_id = get("AZURE_CLIENT_ID").filter(|s| !s.is_empty());
        match get("AZURE_CREDENTIAL").as_deref() {
            Some("managed-identity") => Ok(Self::ManagedIdentity { client_id }),
            Some("developer") => Ok(Self::Developer),
            Some(other) => Err(format!(
                "AZURE_CREDENTIAL={other} is not one of: managed-identity, developer"
            )),
            None if get("IDENTITY_ENDPOINT").is_some() => Ok(Self::ManagedIdentity { client_id }),
            None => Ok(Self::Developer),
        }
    }

    /// Builds the credential.
    ///
    /// # Errors
    /// When `azure_identity` refuses the environment (e.g. an unsupported identity source).
    pub fn build(&self) -> Result<Arc<dyn TokenCredential>, AuthError> {
        match self {
            Self::ManagedIdentity { client_id } => {
                let options = ManagedIdentityCredentialOptions {
                    user_assigned_id: client_id.clone().map(UserAssignedId::ClientId),
                    ..Default::default()
                };
                let cred = ManagedIdentityCredential::new(Some(options))
                    .map_err(|e| AuthError::Credential(e.to_string()))?;
                Ok(cred)
            }
            Self::Developer => {
                let cred = DeveloperToolsCredential::new(None)
                    .map_err(|e| AuthError::Credential(e.to_string()))?;
                Ok(cred)
            }
        }
    }
}

/// A bearer token that never prints its value.
#[derive(Clone)]
pub struct BearerToken(String);

impl BearerToken {
    /// The `Authorization` header value.
    pub fn header_value(&self) -> String {
        format!("Bearer {}", self.0)
    }

    /// The raw token, for clients that set the header themselves.
    pub fn secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BearerToken(<redacted>)")
    }
}

/// Credential failures.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    /// The credential could not be built.
    #[error(
        "could not set up Azure credentials: {0}. In Azure, give the function app a managed identity; locally, run `az login`"
    )]
    Credential(String),
    /// A token request failed.
    #[error("could not get a token for {scope}: {message}")]
    Token {
        /// The scope asked for.
        scope: String,
        /// azure_identity's message (never contains a token).
        message: String,
    },
}

/// Gets a token for one scope.
///
/// # Errors
/// [`AuthError::Token`] with the credential's message.
pub async fn bearer(
    credential: &dyn TokenCredential,
    scope: &str,
) -> Result<BearerToken, AuthError> {
    credential
        .get_token(&[scope], None)
        .await
        .map(|t| BearerToken(t.token.secret().to_string()))
        .map_err(|e| AuthError::Token {
            scope: scope.to_string(),
            message: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn credential_source_follows_the_environment() {
        let env = |pairs: &[(&str, &str)]| {
            let map: HashMap<String, String> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            move |k: &str| map.get(k).cloned()
        };
        assert_eq!(
            CredentialSource::from_env(env(&[])).unwrap(),
            CredentialSource::Developer
        );
        assert_eq!(
            CredentialSource::from_env(env(&[
                ("IDENTITY_ENDPOINT", "http://x"),
                ("AZURE_CLIENT_ID", "c")
            ]))
            .unwrap(),
            CredentialSource::ManagedIdentity {
                client_id: Some("c".into())
            }
        );
        assert!(CredentialSource::from_env(env(&[("AZURE_CREDENTIAL", "magic")])).is_err());
    }

    #[test]
    fn tokens_do_not_print() {
        let t = BearerToken("secret-value".into());
        assert!(!format!("{t:?}").contains("secret-value"));
    }
}

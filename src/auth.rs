//! Credentials. Azure calls authenticate with a Microsoft Entra token from `azure_identity`:
//! the managed identity when the Functions host provides one (`IDENTITY_ENDPOINT` +
//! `IDENTITY_HEADER`), otherwise the developer's az / azd login. Tokens are fetched per call
//! (the credential caches them) and never logged: [`BearerToken`] redacts itself.
//!
//! Every token request is bounded: [`bearer`] gives up after [`TOKEN_TIMEOUT`], and the
//! managed-identity credential retries an unreachable endpoint at most [`TOKEN_RETRIES`] times
//! within [`TOKEN_RETRY_WINDOW`] (azure_identity's default would keep at it for a minute).
//! A token endpoint that is down therefore costs a call seconds, not the message lock; the
//! error is transient, so the step is retried later as a scheduled message.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use azure_core::credentials::TokenCredential;
use azure_core::http::{ClientOptions, ExponentialRetryOptions, RetryOptions};
use azure_identity::{
    DeveloperToolsCredential, ManagedIdentityCredential, ManagedIdentityCredentialOptions,
    UserAssignedId,
};

/// The longest one token request may take, the credential's own retries included.
pub const TOKEN_TIMEOUT: Duration = Duration::from_secs(10);

/// Retries of a failed managed-identity token request inside one request.
pub const TOKEN_RETRIES: u32 = 2;

/// The longest the managed-identity credential keeps retrying inside one request.
pub const TOKEN_RETRY_WINDOW: Duration = Duration::from_secs(5);

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
                    client_options: ClientOptions {
                        retry: token_retry(),
                        ..ClientOptions::default()
                    },
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

/// The managed-identity credential's retry policy: [`TOKEN_RETRIES`] retries within
/// [`TOKEN_RETRY_WINDOW`].
fn token_retry() -> RetryOptions {
    RetryOptions::exponential(ExponentialRetryOptions {
        initial_delay: time::Duration::milliseconds(200),
        max_retries: TOKEN_RETRIES,
        max_total_elapsed: time::Duration::try_from(TOKEN_RETRY_WINDOW)
            .unwrap_or(time::Duration::SECOND),
        max_delay: time::Duration::SECOND,
    })
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
    /// A token request got no answer in time.
    #[error(
        "could not get a token for {scope}: the token endpoint gave no answer within {}s",
        .after.as_secs_f64()
    )]
    TokenTimeout {
        /// The scope asked for.
        scope: String,
        /// How long the request was given.
        after: Duration,
    },
}

impl AuthError {
    /// Whether waiting and asking again can help: a token request that failed or went
    /// unanswered (the endpoint is down, throttled or slow) can; a credential that could not
    /// be set up (missing identity, bad configuration) cannot.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Token { .. } | Self::TokenTimeout { .. } => true,
            Self::Credential(_) => false,
        }
    }
}

impl crate::fault::Fault for AuthError {
    fn is_transient(&self) -> bool {
        AuthError::is_transient(self)
    }

    fn reason_class(&self) -> &'static str {
        "auth"
    }
}

/// Gets a token for one scope, within [`TOKEN_TIMEOUT`].
///
/// # Errors
/// [`AuthError::Token`] with the credential's message, or [`AuthError::TokenTimeout`].
pub async fn bearer(
    credential: &dyn TokenCredential,
    scope: &str,
) -> Result<BearerToken, AuthError> {
    bearer_within(credential, scope, TOKEN_TIMEOUT).await
}

/// Gets a token for one scope, giving up after `limit`.
///
/// # Errors
/// [`AuthError::Token`] with the credential's message, or [`AuthError::TokenTimeout`].
pub async fn bearer_within(
    credential: &dyn TokenCredential,
    scope: &str,
    limit: Duration,
) -> Result<BearerToken, AuthError> {
    match tokio::time::timeout(limit, credential.get_token(&[scope], None)).await {
        Ok(Ok(t)) => Ok(BearerToken(t.token.secret().to_string())),
        Ok(Err(e)) => Err(AuthError::Token {
            scope: scope.to_string(),
            message: e.to_string(),
        }),
        Err(_) => Err(AuthError::TokenTimeout {
            scope: scope.to_string(),
            after: limit,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_outage_is_retried_and_a_missing_credential_is_not() {
        let outage = AuthError::Token {
            scope: "https://servicebus.azure.net/.default".into(),
            message: "connection refused".into(),
        };
        let silent = AuthError::TokenTimeout {
            scope: "https://management.azure.com/.default".into(),
            after: TOKEN_TIMEOUT,
        };
        let setup = AuthError::Credential("no managed identity".into());
        for (err, transient) in [(outage, true), (silent, true), (setup, false)] {
            assert_eq!(err.is_transient(), transient, "{err}");
            // The same answer wherever the token was wanted: publishing, ARM, a step.
            assert_eq!(
                crate::bus::BusError::Auth(err.clone()).is_transient(),
                transient
            );
            assert_eq!(
                crate::arm::ArmError::Token(err.clone()).is_transient(),
                transient
            );
            assert_eq!(
                crate::engine::StepError::from(err).is_transient(),
                transient
            );
        }
    }
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

    /// A credential whose endpoint never answers.
    #[derive(Debug)]
    struct Silent;

    #[async_trait::async_trait]
    impl TokenCredential for Silent {
        async fn get_token(
            &self,
            _scopes: &[&str],
            _options: Option<azure_core::credentials::TokenRequestOptions<'_>>,
        ) -> azure_core::Result<azure_core::credentials::AccessToken> {
            std::future::pending().await
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_token_endpoint_that_never_answers_costs_the_timeout_only() {
        let started = tokio::time::Instant::now();
        let err = bearer(&Silent, ARM_SCOPE).await.unwrap_err();
        assert!(matches!(err, AuthError::TokenTimeout { .. }), "{err}");
        assert_eq!(started.elapsed(), TOKEN_TIMEOUT);
        assert!(err.to_string().contains("no answer within 10s"), "{err}");
    }

    #[test]
    fn tokens_do_not_print() {
        let t = BearerToken("secret-value".into());
        assert!(!format!("{t:?}").contains("secret-value"));
    }
}

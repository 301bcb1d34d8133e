//! A `TokenCredential` that takes tokens straight from a [`TokenIssuer`], for callers inside the
//! local process (tests, the `local` command's own sends). The spawned handler does not use it:
//! it fetches tokens over HTTP through `azure_identity`'s managed-identity path.

use async_trait::async_trait;
use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use azure_core::error::{Error, ErrorKind};

use super::token::TokenIssuer;

/// Issues a token for the scope's resource (`https://servicebus.azure.net/.default` →
/// `https://servicebus.azure.net`), valid for an hour of real time.
#[derive(Debug, Clone)]
pub struct IssuerCredential {
    issuer: TokenIssuer,
}

impl IssuerCredential {
    /// A credential backed by `issuer`.
    pub fn new(issuer: TokenIssuer) -> Self {
        Self { issuer }
    }
}

#[async_trait]
impl TokenCredential for IssuerCredential {
    async fn get_token(
        &self,
        scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        let [scope] = scopes else {
            return Err(Error::with_message(
                ErrorKind::Credential,
                format!("expected exactly one scope, got {}", scopes.len()),
            ));
        };
        let resource = scope.trim_end_matches("/.default");
        let expires_on = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
        Ok(AccessToken::new(self.issuer.issue(resource), expires_on))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tokens_carry_the_scope_audience() {
        let issuer = TokenIssuer::new("h");
        let credential = IssuerCredential::new(issuer.clone());
        let token = credential
            .get_token(&["https://servicebus.azure.net/.default"], None)
            .await
            .unwrap();
        let header = format!("Bearer {}", token.token.secret());
        assert_eq!(
            issuer.check(Some(&header), "https://servicebus.azure.net"),
            Ok(())
        );
        assert!(credential.get_token(&[], None).await.is_err());
    }
}

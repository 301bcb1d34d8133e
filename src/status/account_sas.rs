//! Storage account SAS signing (account key → short-lived SAS token), the way the status store
//! authenticates to Azurite: `azure_storage_blob` 1.x speaks only Entra tokens (over https) or
//! a SAS already in the URL, and Azurite serves plain http with a well-known account key.
//! String-to-sign per "Create an account SAS" (service version 2020-12-06 and later).

use std::fmt;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use time::OffsetDateTime;
use time::format_description::well_known::Iso8601;

/// Azurite's account name.
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
/// Azurite's published, well-known account key (not a secret).
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// A storage account name and key. Debug output never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct AccountKey {
    account: String,
    key: Vec<u8>,
}

impl fmt::Debug for AccountKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccountKey")
            .field("account", &self.account)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// Why an account key cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountKeyError {
    /// The key is not base64.
    #[error(
        "the account key for {account} is not base64 (copy it from the storage account's Access keys, or leave it unset to use Azurite's well-known key)"
    )]
    NotBase64 {
        /// The account.
        account: String,
    },
    /// No account name.
    #[error("the storage account name is empty")]
    NoAccount,
}

impl AccountKey {
    /// An account and its base64 key.
    ///
    /// # Errors
    /// An empty account name or a key that is not base64.
    pub fn new(account: &str, base64_key: &str) -> Result<Self, AccountKeyError> {
        if account.is_empty() {
            return Err(AccountKeyError::NoAccount);
        }
        let key = base64::engine::general_purpose::STANDARD
            .decode(base64_key.trim())
            .map_err(|_| AccountKeyError::NotBase64 {
                account: account.to_string(),
            })?;
        Ok(Self {
            account: account.to_string(),
            key,
        })
    }

    /// Azurite's well-known account.
    pub fn azurite() -> Self {
        Self {
            account: AZURITE_ACCOUNT.into(),
            key: base64::engine::general_purpose::STANDARD
                .decode(AZURITE_KEY)
                .unwrap_or_default(),
        }
    }

    /// The account name.
    pub fn account(&self) -> &str {
        &self.account
    }

    /// An account SAS query string (no leading `?`) for the Blob service, all resource types,
    /// read/add/create/write/delete/list, over http or https, valid from five minutes before
    /// `now` (clock skew) for `valid_for`, at service version `version`.
    pub fn blob_sas(
        &self,
        now: OffsetDateTime,
        valid_for: time::Duration,
        version: &str,
    ) -> String {
        let start = iso(now - time::Duration::minutes(5));
        let expiry = iso(now + valid_for);
        let (permissions, services, resource_types, protocol) =
            ("racwdl", "b", "sco", "https,http");
        let string_to_sign = [
            self.account.as_str(),
            permissions,
            services,
            resource_types,
            &start,
            &expiry,
            "",
            protocol,
            version,
            "",
            "",
        ]
        .join("\n");
        let signature = match Hmac::<Sha256>::new_from_slice(&self.key) {
            Ok(mut mac) => {
                mac.update(string_to_sign.as_bytes());
                base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
            }
            Err(_) => String::new(),
        };
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("sv", version)
            .append_pair("ss", services)
            .append_pair("srt", resource_types)
            .append_pair("sp", permissions)
            .append_pair("st", &start)
            .append_pair("se", &expiry)
            .append_pair("spr", protocol)
            .append_pair("sig", &signature)
            .finish()
    }
}

fn iso(at: OffsetDateTime) -> String {
    let at = at.replace_nanosecond(0).unwrap_or(at);
    let text = at
        .to_offset(time::UtcOffset::UTC)
        .format(&Iso8601::DEFAULT)
        .unwrap_or_default();
    // 2026-03-01T12:00:00.000000000Z → 2026-03-01T12:00:00Z
    match text.split_once('.') {
        Some((head, _)) => format!("{head}Z"),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn sas_matches_the_documented_string_to_sign() {
        let key = AccountKey::azurite();
        let now = datetime!(2026-03-01 12:00:30.25 UTC);
        let sas = key.blob_sas(now, time::Duration::hours(1), "2025-11-05");
        let pairs: std::collections::HashMap<String, String> =
            url::form_urlencoded::parse(sas.as_bytes())
                .into_owned()
                .collect();
        assert_eq!(pairs["st"], "2026-03-01T11:55:30Z");
        assert_eq!(pairs["se"], "2026-03-01T13:00:30Z");
        let expected = "devstoreaccount1\nracwdl\nb\nsco\n2026-03-01T11:55:30Z\n2026-03-01T13:00:30Z\n\nhttps,http\n2025-11-05\n\n";
        let mut mac = Hmac::<Sha256>::new_from_slice(&key.key).unwrap();
        mac.update(expected.as_bytes());
        let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        assert_eq!(pairs["sig"], sig);
        assert!(!format!("{key:?}").contains("Eby8"));
        assert!(matches!(
            AccountKey::new("acct", "not base64!"),
            Err(AccountKeyError::NotBase64 { .. })
        ));
    }
}

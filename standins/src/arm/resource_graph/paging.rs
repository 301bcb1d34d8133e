//! Paging: `$top` rows a page (default 1,000, the current "Working with large Azure resource
//! data sets" page; older revisions said 100), `$skip` rows skipped, and an opaque
//! `$skipToken` when rows remain: base64url of the snapshot's generation, the next offset, the
//! page size and a fingerprint of the query and the scope as sent. A token that does not
//! decode, names another query or scope, or names a snapshot no longer kept answers 400.
//! As the spec says, `$top` and `$skip` override the token's page size and offset.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::request::QueryRequest;
use super::rows::QueryKind;

/// Rows a page when `$top` is not sent.
pub const DEFAULT_PAGE_SIZE: u32 = 1000;

/// Where the next page starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// Snapshot generation.
    #[serde(rename = "g")]
    pub generation: u64,
    /// Rows already returned.
    #[serde(rename = "o")]
    pub offset: u32,
    /// Page size.
    #[serde(rename = "n")]
    pub page_size: u32,
    /// [`fingerprint`] of the request.
    #[serde(rename = "f")]
    pub fingerprint: String,
}

impl Cursor {
    /// The token text.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    /// The cursor in `token`, if it is one.
    pub fn decode(token: &str) -> Option<Self> {
        let bytes = URL_SAFE_NO_PAD.decode(token.trim()).ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

/// A digest of the query and the scope as sent (lower case, sorted).
pub fn fingerprint(kind: QueryKind, request: &QueryRequest) -> String {
    let list = |items: &Option<Vec<String>>| {
        let mut items: Vec<String> = items
            .iter()
            .flatten()
            .map(|s| s.to_ascii_lowercase())
            .collect();
        items.sort();
        items.dedup();
        items.join(",")
    };
    let text = format!(
        "{}\n{}\n{}",
        kind.label(),
        list(&request.subscriptions),
        list(&request.management_groups)
    );
    let digest = Sha256::digest(text.as_bytes());
    digest.iter().take(12).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(subs: &[&str]) -> QueryRequest {
        QueryRequest {
            subscriptions: Some(subs.iter().map(|s| s.to_string()).collect()),
            management_groups: None,
            query: String::new(),
            top: None,
            skip: None,
            skip_token: None,
        }
    }

    #[test]
    fn tokens_round_trip_and_fingerprints_tell_scopes_apart() {
        let cursor = Cursor {
            generation: 3,
            offset: 20,
            page_size: 10,
            fingerprint: fingerprint(QueryKind::Clusters, &request(&["B", "a"])),
        };
        assert_eq!(Cursor::decode(&cursor.encode()), Some(cursor.clone()));
        assert_eq!(
            cursor.fingerprint,
            fingerprint(QueryKind::Clusters, &request(&["A", "b"]))
        );
        assert_ne!(
            cursor.fingerprint,
            fingerprint(QueryKind::Protection, &request(&["a", "b"]))
        );
        assert_ne!(
            cursor.fingerprint,
            fingerprint(QueryKind::Clusters, &request(&["a"]))
        );
        assert_eq!(Cursor::decode("not a token"), None);
    }
}

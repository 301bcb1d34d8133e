//! Secret scrubbing for text that leaves the process (span attributes, status output, error
//! messages from libraries that quote request URLs): SAS signatures, account keys, shared
//! access keys, function keys and bearer tokens are replaced by `REDACTED`.

use url::Url;

/// What follows each marker, up to a delimiter, is a secret. Markers are matched without
/// regard to case.
const MARKERS: [&str; 9] = [
    "sig=",
    "sharedaccesskey=",
    "accountkey=",
    "code=",
    "access_token=",
    "client_secret=",
    "x-functions-key=",
    "bearer ",
    "sharedaccesssignature ",
];

/// Query parameters whose values are secrets.
const SECRET_QUERY_KEYS: [&str; 5] = ["sig", "code", "access_token", "client_secret", "token"];

/// `text` with every secret value replaced by `REDACTED`.
pub fn secrets(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        let hit = MARKERS.iter().find(|m| {
            lower[i..].starts_with(*m)
                && (i == 0 || !lower.as_bytes()[i - 1].is_ascii_alphanumeric())
        });
        match hit {
            Some(marker) => {
                let value_start = i + marker.len();
                let value_end = text[value_start..]
                    .find(|c: char| {
                        c.is_whitespace() || matches!(c, '&' | ';' | '"' | '\'' | ',' | ')' | '>')
                    })
                    .map_or(text.len(), |n| value_start + n);
                out.push_str(&text[i..value_start]);
                if value_end > value_start {
                    out.push_str("REDACTED");
                }
                i = value_end;
            }
            None => {
                let ch = text[i..].chars().next().unwrap_or(' ');
                out.push(ch);
                i += ch.len_utf8();
            }
        }
    }
    out
}

/// A URL fit for `url.full`: no user info, and secret query values replaced by `REDACTED`.
pub fn url(url: &Url) -> String {
    let mut clean = url.clone();
    let _ = clean.set_username("");
    let _ = clean.set_password(None);
    if clean.query().is_some() {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| {
                let secret = SECRET_QUERY_KEYS.iter().any(|s| k.eq_ignore_ascii_case(s));
                (
                    k.into_owned(),
                    if secret {
                        "REDACTED".to_string()
                    } else {
                        v.into_owned()
                    },
                )
            })
            .collect();
        clean.query_pairs_mut().clear().extend_pairs(pairs);
    }
    clean.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_replaced_wherever_they_appear() {
        let text = "error sending request for url (http://127.0.0.1:1/c/b?sv=2025-11-05&sig=abc%2Bdef&se=x): refused; Endpoint=sb://ns/;SharedAccessKeyName=k;SharedAccessKey=TOPSECRET; Authorization: Bearer eyJ.tok.en";
        let clean = secrets(text);
        for secret in ["abc%2Bdef", "TOPSECRET", "eyJ.tok.en"] {
            assert!(!clean.contains(secret), "{clean}");
        }
        assert!(clean.contains("sv=2025-11-05") && clean.contains("SharedAccessKeyName=k"));
        assert!(clean.contains("sig=REDACTED&se=x"), "{clean}");
        assert_eq!(secrets("a design=ok"), "a design=ok", "only whole markers");
        assert_eq!(secrets("ünïcode sig=é"), "ünïcode sig=REDACTED");
    }

    #[test]
    fn urls_lose_user_info_and_secret_query_values() {
        let u =
            Url::parse("https://user:pw@acct.blob.core.windows.net/c/b?sv=1&sig=s3cret&comp=list")
                .unwrap();
        let clean = url(&u);
        assert_eq!(
            clean,
            "https://acct.blob.core.windows.net/c/b?sv=1&sig=REDACTED&comp=list"
        );
    }
}

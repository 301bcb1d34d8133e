//! Tamper evidence for restore and drill reports. Each report carries the SHA-256 of its own
//! content and of the cluster's previous report of the same kind (a hash chain), and, when a
//! key is configured (`BACKUP_PILOT_EVIDENCE_KEY`, base64, at least 32 bytes, named by
//! `BACKUP_PILOT_EVIDENCE_KEY_ID`), an HMAC-SHA256 signature over both. [`verify_chain`]
//! rechecks a cluster's reports and names the first broken link: content changed after it was
//! written, a report removed or reordered, a signature that does not match.
//!
//! The content hash is taken over the report's JSON with the `evidence` member removed, keys
//! sorted, no whitespace ([`content_sha256`]); it is computed from the stored document as it is,
//! so a field added, removed or changed anywhere breaks it.

use std::fmt;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// `BACKUP_PILOT_EVIDENCE_KEY`: the signing key, base64.
pub const KEY_VAR: &str = "BACKUP_PILOT_EVIDENCE_KEY";
/// `BACKUP_PILOT_EVIDENCE_KEY_ID`: the key's name, recorded in every signature.
pub const KEY_ID_VAR: &str = "BACKUP_PILOT_EVIDENCE_KEY_ID";
/// The shortest key accepted, in bytes.
pub const MIN_KEY_BYTES: usize = 32;
/// The signature algorithm's name in reports.
pub const ALGORITHM: &str = "HMAC-SHA256";

/// The evidence block of a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Evidence {
    /// SHA-256 (hex) of the report without this block.
    pub content_sha256: String,
    /// The content hash of the cluster's previous report of the same kind; `None` for the
    /// first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_sha256: Option<String>,
    /// The signature, when a key is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<Signature>,
}

/// A signature over `content_sha256 "\n" previous_sha256`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Signature {
    /// [`ALGORITHM`].
    pub algorithm: String,
    /// The key's name.
    pub key_id: String,
    /// The MAC, base64.
    pub value: String,
}

/// A signing key from configuration. Its bytes never appear in `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct EvidenceKey {
    id: String,
    secret: Vec<u8>,
}

impl fmt::Debug for EvidenceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EvidenceKey({}, <redacted>)", self.id)
    }
}

impl EvidenceKey {
    /// A key named `id`.
    ///
    /// # Errors
    /// A key shorter than [`MIN_KEY_BYTES`].
    pub fn new(id: &str, secret: Vec<u8>) -> Result<Self, String> {
        if secret.len() < MIN_KEY_BYTES {
            return Err(format!(
                "{KEY_VAR} must hold at least {MIN_KEY_BYTES} bytes (base64 of 32 random bytes: `openssl rand -base64 32`), got {}",
                secret.len()
            ));
        }
        Ok(Self {
            id: id.to_string(),
            secret,
        })
    }

    /// The key from `BACKUP_PILOT_EVIDENCE_KEY` and `_KEY_ID` (default `default`); `None`
    /// when no key is set.
    ///
    /// # Errors
    /// A key that is not base64 or too short (the message never holds the key).
    pub fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<Option<Self>, String> {
        let Some(raw) = get(KEY_VAR).filter(|v| !v.trim().is_empty()) else {
            return Ok(None);
        };
        let secret = base64::engine::general_purpose::STANDARD
            .decode(raw.trim())
            .map_err(|_| format!("{KEY_VAR} is not base64"))?;
        let id = get(KEY_ID_VAR)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| "default".into());
        Self::new(&id, secret).map(Some)
    }

    /// The key's name.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn mac(&self, content: &str, previous: Option<&str>) -> Option<Hmac<Sha256>> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret).ok()?;
        mac.update(content.as_bytes());
        mac.update(b"\n");
        mac.update(previous.unwrap_or_default().as_bytes());
        Some(mac)
    }

    fn sign(&self, content: &str, previous: Option<&str>) -> Option<Signature> {
        let mac = self.mac(content, previous)?;
        Some(Signature {
            algorithm: ALGORITHM.into(),
            key_id: self.id.clone(),
            value: base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()),
        })
    }

    fn verifies(&self, content: &str, previous: Option<&str>, signature: &Signature) -> bool {
        let Ok(expected) = base64::engine::general_purpose::STANDARD.decode(&signature.value)
        else {
            return false;
        };
        self.mac(content, previous)
            .is_some_and(|mac| mac.verify_slice(&expected).is_ok())
    }
}

/// SHA-256 (hex) of a report document without its `evidence` member, keys sorted.
pub fn content_sha256(document: &Value) -> String {
    let mut content = document.clone();
    if let Some(map) = content.as_object_mut() {
        map.remove("evidence");
    }
    let canonical = serde_json::to_vec(&sorted(content)).unwrap_or_default();
    Sha256::digest(&canonical)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The value with every object's keys in sorted order (whatever map serde_json was built with).
fn sorted(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let ordered: std::collections::BTreeMap<String, Value> =
                map.into_iter().map(|(k, v)| (k, sorted(v))).collect();
            Value::Object(ordered.into_iter().collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

/// The evidence block for a report document: its content hash, the previous report's, and a
/// signature when `key` is set.
pub fn seal(document: &Value, previous: Option<String>, key: Option<&EvidenceKey>) -> Evidence {
    let content = content_sha256(document);
    let signature = key.and_then(|k| k.sign(&content, previous.as_deref()));
    Evidence {
        content_sha256: content,
        previous_sha256: previous,
        signature,
    }
}

/// Where a chain breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenLink {
    /// The report's id.
    pub id: String,
    /// When it says it was written.
    pub generated_at: String,
    /// What is wrong.
    pub why: String,
}

impl fmt::Display for BrokenLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "report {} (written {}): {}",
            self.id, self.generated_at, self.why
        )
    }
}

/// Checks a cluster's reports of one kind (any order) as a chain, oldest first: each report's
/// content against its hash, each link against the report before it, and each signature when
/// `key` is given (a report without one then breaks the chain). Returns how many reports were
/// checked, or the first broken link.
///
/// # Errors
/// The first [`BrokenLink`].
pub fn verify_chain(documents: &[Value], key: Option<&EvidenceKey>) -> Result<usize, BrokenLink> {
    let mut ordered: Vec<&Value> = documents.iter().collect();
    ordered.sort_by(|a, b| {
        let at = |v: &Value| v["generatedAt"].as_str().unwrap_or_default().to_string();
        at(a)
            .cmp(&at(b))
            .then_with(|| a["id"].as_str().cmp(&b["id"].as_str()))
    });
    let mut previous: Option<String> = None;
    for (index, document) in ordered.iter().enumerate() {
        let broken = |why: String| BrokenLink {
            id: document["id"].as_str().unwrap_or("?").to_string(),
            generated_at: document["generatedAt"].as_str().unwrap_or("?").to_string(),
            why,
        };
        let evidence: Evidence =
            serde_json::from_value(document["evidence"].clone()).map_err(|_| {
                broken("it carries no evidence block (written before evidence, or stripped)".into())
            })?;
        let actual = content_sha256(document);
        if actual != evidence.content_sha256 {
            return Err(broken(format!(
                "its content was changed after it was written (SHA-256 {actual}, recorded {})",
                evidence.content_sha256
            )));
        }
        // The oldest report kept anchors the chain: what came before it may have been pruned.
        if index > 0 && evidence.previous_sha256 != previous {
            return Err(broken(format!(
                "it links to {} but the report before it has SHA-256 {} (a report was removed, replaced or reordered)",
                evidence.previous_sha256.as_deref().unwrap_or("nothing"),
                previous.as_deref().unwrap_or("nothing")
            )));
        }
        if let Some(key) = key {
            match &evidence.signature {
                None => return Err(broken("it is not signed".into())),
                Some(s) if s.key_id != key.id() => {
                    return Err(broken(format!(
                        "it is signed with key {:?}, not {:?}",
                        s.key_id,
                        key.id()
                    )));
                }
                Some(s)
                    if !key.verifies(
                        &evidence.content_sha256,
                        evidence.previous_sha256.as_deref(),
                        s,
                    ) =>
                {
                    return Err(broken("its signature does not match".into()));
                }
                Some(_) => {}
            }
        }
        previous = Some(evidence.content_sha256);
    }
    Ok(ordered.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key() -> EvidenceKey {
        EvidenceKey::new("k1", vec![7; 32]).unwrap()
    }

    /// Three sealed reports in a chain, as the report step writes them.
    fn chain(key: Option<&EvidenceKey>) -> Vec<Value> {
        let mut previous = None;
        (1..=3)
            .map(|day| {
                let mut doc = json!({
                    "id": format!("wf-{day}"),
                    "kind": "drill",
                    "verdict": "pass",
                    "rtoSeconds": 300 + day,
                    "generatedAt": format!("2026-03-0{day}T03:00:00Z"),
                });
                let evidence = seal(&doc, previous.clone(), key);
                previous = Some(evidence.content_sha256.clone());
                doc["evidence"] = serde_json::to_value(evidence).unwrap();
                doc
            })
            .collect()
    }

    #[test]
    fn an_intact_chain_verifies_in_any_order() {
        let mut docs = chain(Some(&key()));
        docs.reverse();
        assert_eq!(verify_chain(&docs, Some(&key())), Ok(3));
        assert_eq!(verify_chain(&chain(None), None), Ok(3));
    }

    #[test]
    fn tampering_names_the_first_broken_link() {
        let mut docs = chain(Some(&key()));
        docs[1]["verdict"] = json!("fail");
        let broken = verify_chain(&docs, Some(&key())).unwrap_err();
        assert_eq!(broken.id, "wf-2");
        assert!(broken.why.contains("content was changed"), "{broken}");

        let mut docs = chain(None);
        docs.remove(1);
        let broken = verify_chain(&docs, None).unwrap_err();
        assert_eq!(broken.id, "wf-3", "the report after the gap");
        assert!(broken.why.contains("a report was removed"), "{broken}");

        // Re-hashing a changed report does not help without the key.
        let mut docs = chain(Some(&key()));
        docs[2]["verdict"] = json!("fail");
        let previous = docs[2]["evidence"]["previousSha256"]
            .as_str()
            .map(String::from);
        docs[2]["evidence"] = serde_json::to_value(seal(&docs[2], previous, None)).unwrap();
        assert!(
            verify_chain(&docs, None).is_ok(),
            "a hash chain alone can be rebuilt"
        );
        let broken = verify_chain(&docs, Some(&key())).unwrap_err();
        assert_eq!(
            (broken.id.as_str(), broken.why.as_str()),
            ("wf-3", "it is not signed")
        );
        let forged = EvidenceKey::new("k1", vec![8; 32]).unwrap();
        docs[2]["evidence"] = serde_json::to_value(seal(
            &docs[2],
            docs[2]["evidence"]["previousSha256"]
                .as_str()
                .map(String::from),
            Some(&forged),
        ))
        .unwrap();
        let broken = verify_chain(&docs, Some(&key())).unwrap_err();
        assert!(broken.why.contains("signature does not match"), "{broken}");
    }

    #[test]
    fn key_order_and_spacing_do_not_change_the_hash() {
        let a = json!({"b": 1, "a": {"d": [1, {"z": 0, "y": 1}], "c": "x"}});
        let b: Value =
            serde_json::from_str(r#"{ "a": {"c": "x", "d": [1, {"y": 1, "z": 0}]}, "b": 1 }"#)
                .unwrap();
        assert_eq!(content_sha256(&a), content_sha256(&b));
        let mut c = a.clone();
        c["evidence"] = json!({"contentSha256": "whatever"});
        assert_eq!(
            content_sha256(&a),
            content_sha256(&c),
            "evidence is not content"
        );
    }

    #[test]
    fn keys_come_from_configuration_and_never_show() {
        let lookup = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(EvidenceKey::from_lookup(&lookup(&[])), Ok(None));
        let k = EvidenceKey::from_lookup(&lookup(&[
            (KEY_VAR, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="),
            (KEY_ID_VAR, "audit-2026"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(k.id(), "audit-2026");
        assert_eq!(format!("{k:?}"), "EvidenceKey(audit-2026, <redacted>)");
        let short = EvidenceKey::from_lookup(&lookup(&[(KEY_VAR, "c2hvcnQ=")])).unwrap_err();
        assert!(
            short.contains("at least 32 bytes") && !short.contains("c2hvcnQ"),
            "{short}"
        );
        assert!(EvidenceKey::from_lookup(&lookup(&[(KEY_VAR, "%%%")])).is_err());
    }
}

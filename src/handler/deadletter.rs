//! Dead-lettering from the handler. A custom handler cannot settle Service Bus messages
//! (autoComplete must stay on), so a message the service cannot read is copied, unchanged,
//! to the `dead-letters` queue with the reason as properties, and the original completes.
//! If that copy cannot be sent, the invocation fails so the broker keeps the original.

use crate::bus::{BusError, OutgoingMessage};
use crate::handler::invocation::Invocation;
use crate::workflow::Ctx;

/// Why a message was dead-lettered.
#[derive(Debug, Clone)]
pub struct DeadLetter<'a> {
    /// The function that received it.
    pub function: &'a str,
    /// A short code, e.g. `MalformedEvent`.
    pub reason: &'a str,
    /// What is wrong and what to send instead.
    pub description: String,
}

/// Copies `body` to the dead-letter queue with the reason.
///
/// # Errors
/// The send failing; the caller then asks the host to redeliver.
pub async fn dead_letter(
    ctx: &Ctx,
    inv: &Invocation,
    body: &[u8],
    letter: DeadLetter<'_>,
) -> Result<(), BusError> {
    let original_id = inv.message_id().unwrap_or_default();
    let id = if original_id.is_empty() {
        format!("dl:{}:{}", letter.function, short_hash(body))
    } else {
        format!("dl:{}:{}", letter.function, original_id)
    };
    let id: String = id.chars().take(128).collect();
    let mut msg = OutgoingMessage::json(&ctx.queues.dead_letters, &id, body.to_vec());
    msg.content_type = "application/octet-stream".into();
    msg.label = Some(letter.reason.to_string());
    msg.properties
        .insert("dead-letter-reason".into(), letter.reason.to_string());
    msg.properties.insert(
        "dead-letter-description".into(),
        letter.description.chars().take(1000).collect(),
    );
    msg.properties
        .insert("source-function".into(), letter.function.to_string());
    if !original_id.is_empty() {
        msg.properties
            .insert("original-message-id".into(), original_id);
    }
    if let Some(count) = inv.delivery_count() {
        msg.properties
            .insert("delivery-count".into(), count.to_string());
    }
    ctx.publisher.send(msg).await
}

fn short_hash(body: &[u8]) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(body);
    digest.iter().take(12).map(|b| format!("{b:02x}")).collect()
}

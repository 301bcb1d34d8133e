//! Service Bus as the engine sees it, for engine-driven tests: duplicate detection by message
//! id, scheduled delivery on a manual clock, and a switch that loses everything published (a
//! crash after a step's calls, before its publish). One copy, shared by every harness.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use backup_pilot::bus::{BusError, OutgoingMessage, Publisher};
use backup_pilot::clock::{Clock, ManualClock};

#[derive(Default)]
pub struct SimBus {
    queue: Mutex<Vec<OutgoingMessage>>,
    ids: Mutex<HashSet<String>>,
    crashed: AtomicBool,
}

impl SimBus {
    /// Every message still queued.
    pub fn queued(&self) -> Vec<OutgoingMessage> {
        self.queue.lock().unwrap().clone()
    }

    /// Messages sent to `queue` (not consumed).
    pub fn sent_to(&self, queue: &str) -> Vec<OutgoingMessage> {
        self.queued()
            .into_iter()
            .filter(|m| m.queue == queue)
            .collect()
    }

    /// Service Bus's duplicate-detection window passes: message ids sent so far are
    /// forgotten, so a resend of one is delivered again.
    #[allow(dead_code)]
    pub fn forget_message_ids(&self) {
        self.ids.lock().unwrap().clear();
    }

    /// While set, every publish is lost.
    pub fn set_crashed(&self, crashed: bool) {
        self.crashed.store(crashed, Ordering::SeqCst);
    }

    /// Takes the earliest due message (of `queue`, or of any queue), moving `clock` to its
    /// scheduled time.
    pub fn take_next_due(
        &self,
        queue: Option<&str>,
        clock: &ManualClock,
    ) -> Option<OutgoingMessage> {
        let mut messages = self.queue.lock().unwrap();
        let index = messages
            .iter()
            .enumerate()
            .filter(|(_, m)| queue.is_none_or(|q| m.queue == q))
            .min_by_key(|(i, m)| {
                (
                    m.scheduled_enqueue_time
                        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
                    *i,
                )
            })
            .map(|(i, _)| i)?;
        let message = messages.remove(index);
        if let Some(at) = message.scheduled_enqueue_time {
            let now = clock.now();
            if at > now {
                clock.advance((at - now).unsigned_abs());
            }
        }
        Some(message)
    }
}

#[async_trait]
impl Publisher for SimBus {
    async fn send(&self, message: OutgoingMessage) -> Result<(), BusError> {
        if self.crashed.load(Ordering::SeqCst) {
            return Ok(());
        }
        if self.ids.lock().unwrap().insert(message.message_id.clone()) {
            self.queue.lock().unwrap().push(message);
        }
        Ok(())
    }

    async fn send_batch(
        &self,
        _queue: &str,
        messages: Vec<OutgoingMessage>,
    ) -> Result<(), BusError> {
        for m in messages {
            self.send(m).await?;
        }
        Ok(())
    }
}

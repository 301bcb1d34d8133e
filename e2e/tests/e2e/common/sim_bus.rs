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

    /// True while publishes are lost.
    pub fn is_crashed(&self) -> bool {
        self.crashed.load(Ordering::SeqCst)
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
        if self.is_crashed() {
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

/// The status journal of a process that can crash with the [`SimBus`]: while the bus's crash
/// switch is on, step records are lost like the publishes (the engine records a run after its
/// publish, so a crash before the publish loses both). Claims, made during a step's calls,
/// are kept.
pub struct CrashingJournal {
    pub inner: std::sync::Arc<backup_pilot::status::store::MemoryJournal>,
    pub bus: std::sync::Arc<SimBus>,
}

#[async_trait]
impl backup_pilot::status::store::StatusStore for CrashingJournal {
    async fn try_record(
        &self,
        record: backup_pilot::engine::journal::StepRecord,
    ) -> Result<(), backup_pilot::status::StatusError> {
        if self.bus.is_crashed() {
            return Ok(());
        }
        self.inner.try_record(record).await
    }

    async fn claim(
        &self,
        key: &str,
        at: time::OffsetDateTime,
        holder: &str,
    ) -> Result<backup_pilot::status::store::Claim, backup_pilot::status::StatusError> {
        self.inner.claim(key, at, holder).await
    }

    async fn release(&self, key: &str) -> Result<(), backup_pilot::status::StatusError> {
        self.inner.release(key).await
    }

    async fn workflow_ended(
        &self,
        subject: &str,
        workflow_id: &str,
    ) -> Result<Option<time::OffsetDateTime>, backup_pilot::status::StatusError> {
        self.inner.workflow_ended(subject, workflow_id).await
    }

    fn store(&self) -> backup_pilot::status::StoreInfo {
        self.inner.store()
    }

    async fn cluster_status(
        &self,
        cluster: &str,
    ) -> Result<Option<backup_pilot::status::ClusterStatus>, backup_pilot::status::StatusError>
    {
        self.inner.cluster_status(cluster).await
    }

    async fn fleet_status(
        &self,
    ) -> Result<Vec<backup_pilot::status::ClusterStatus>, backup_pilot::status::StatusError> {
        self.inner.fleet_status().await
    }
}

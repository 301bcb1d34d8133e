//! The queues behind the local Service Bus: peek-lock receive with lock tokens and delivery
//! counts, abandon and lock expiry up to `maxDeliveryCount` then the dead-letter sub-queue with
//! its reason, scheduled messages, time to live and duplicate detection by `MessageId` — all on
//! a [`Clock`], so waits pass in virtual time. No HTTP here: `servicebus` is the REST front.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use tokio::sync::Notify;
use uuid::Uuid;

use backup_pilot::clock::{Clock, until};

/// Dead-letter reason the broker sets when a message was delivered `maxDeliveryCount` times.
pub const MAX_DELIVERY_COUNT_EXCEEDED: &str = "MaxDeliveryCountExceeded";
/// Dead-letter reason for an expired message on a queue that dead-letters on expiration.
pub const TTL_EXPIRED: &str = "TTLExpiredException";

/// Marks a message the duplicate-delivery knob put back (so it is duplicated at most once).
/// The local host does not pass it on to the handler's trigger metadata as anything special.
pub const DUPLICATE_DELIVERY_PROPERTY: &str = "x-local-duplicate-delivery";

/// The longest a receiver sleeps between checks, so a clock that jumps (a manual clock, a
/// scaled clock's rounding) is noticed promptly.
const MAX_RECEIVE_NAP: Duration = Duration::from_millis(200);

/// Per-queue properties, as set on the entity in Azure.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueSettings {
    /// Deliveries before the broker dead-letters a message (Azure default 10).
    pub max_delivery_count: u32,
    /// How long a peek-lock holds a message (Azure default 1 minute, at most 5 minutes).
    pub lock_duration: Duration,
    /// `Some(window)` when duplicate detection is on (Azure default window 10 minutes,
    /// between 20 seconds and 7 days).
    pub duplicate_detection_window: Option<Duration>,
    /// The queue's default message time to live; `None` is unlimited (the Azure default).
    pub default_message_ttl: Option<Duration>,
    /// Whether expired messages go to the dead-letter sub-queue instead of vanishing.
    pub dead_letter_on_expiration: bool,
}

impl Default for QueueSettings {
    /// Azure's defaults, with duplicate detection on: the service gives every message a
    /// deterministic id and relies on the broker to drop resends.
    fn default() -> Self {
        Self {
            max_delivery_count: 10,
            lock_duration: Duration::from_secs(60),
            duplicate_detection_window: Some(Duration::from_secs(600)),
            default_message_ttl: None,
            dead_letter_on_expiration: false,
        }
    }
}

impl QueueSettings {
    /// Checks the limits Azure enforces on these properties.
    ///
    /// # Errors
    /// [`BrokerError::InvalidSettings`] naming the property.
    pub fn validate(&self) -> Result<(), BrokerError> {
        if self.max_delivery_count == 0 {
            return Err(BrokerError::InvalidSettings(
                "maxDeliveryCount must be at least 1".into(),
            ));
        }
        if self.lock_duration < Duration::from_secs(5)
            || self.lock_duration > Duration::from_secs(300)
        {
            return Err(BrokerError::InvalidSettings(format!(
                "lockDuration must be between 5 seconds and 5 minutes, got {:?}",
                self.lock_duration
            )));
        }
        if let Some(window) = self.duplicate_detection_window
            && (window < Duration::from_secs(20) || window > Duration::from_secs(7 * 86_400))
        {
            return Err(BrokerError::InvalidSettings(format!(
                "duplicateDetectionHistoryTimeWindow must be between 20 seconds and 7 days, got {window:?}"
            )));
        }
        if self.default_message_ttl.is_some_and(|t| t.is_zero()) {
            return Err(BrokerError::InvalidSettings(
                "defaultMessageTimeToLive must be positive".into(),
            ));
        }
        Ok(())
    }
}

/// What a sender sets on a message.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewMessage {
    /// `MessageId`; the broker assigns one when absent.
    pub message_id: Option<String>,
    /// The body bytes.
    pub body: Vec<u8>,
    /// `ContentType`.
    pub content_type: Option<String>,
    /// `CorrelationId`.
    pub correlation_id: Option<String>,
    /// `Subject` (REST `Label`).
    pub subject: Option<String>,
    /// `To`.
    pub to: Option<String>,
    /// `ReplyTo`.
    pub reply_to: Option<String>,
    /// `ReplyToSessionId`.
    pub reply_to_session_id: Option<String>,
    /// `SessionId`.
    pub session_id: Option<String>,
    /// `PartitionKey`.
    pub partition_key: Option<String>,
    /// `TimeToLive`; the queue's default caps it.
    pub time_to_live: Option<Duration>,
    /// `ScheduledEnqueueTimeUtc`: invisible until then.
    pub scheduled_enqueue_time: Option<OffsetDateTime>,
    /// Application (custom) properties.
    pub application_properties: Map<String, Value>,
}

/// A message held by the broker.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Assigned by the broker when the message was accepted, increasing per queue.
    pub sequence_number: i64,
    /// `MessageId`.
    pub message_id: String,
    /// The body bytes.
    pub body: Vec<u8>,
    /// `ContentType`.
    pub content_type: Option<String>,
    /// `CorrelationId`.
    pub correlation_id: Option<String>,
    /// `Subject` (REST `Label`).
    pub subject: Option<String>,
    /// `To`.
    pub to: Option<String>,
    /// `ReplyTo`.
    pub reply_to: Option<String>,
    /// `ReplyToSessionId`.
    pub reply_to_session_id: Option<String>,
    /// `SessionId`.
    pub session_id: Option<String>,
    /// `PartitionKey`.
    pub partition_key: Option<String>,
    /// Effective time to live (the message's, capped by the queue default); `None` = never.
    pub time_to_live: Option<Duration>,
    /// Application (custom) properties.
    pub application_properties: Map<String, Value>,
    /// When the message became (or becomes) visible: the send time, or the scheduled time.
    pub enqueued_time: OffsetDateTime,
    /// The schedule it was sent with, if any.
    pub scheduled_enqueue_time: Option<OffsetDateTime>,
    /// How many times it has been handed to a receiver.
    pub delivery_count: u32,
    /// Set once dead-lettered.
    pub dead_letter_reason: Option<String>,
    /// Set once dead-lettered.
    pub dead_letter_error_description: Option<String>,
}

impl Message {
    /// When the message expires, if it has a time to live.
    pub fn expires_at(&self) -> Option<OffsetDateTime> {
        self.time_to_live.map(|ttl| self.enqueued_time + ttl)
    }
}

/// A message under a peek-lock.
#[derive(Debug, Clone, PartialEq)]
pub struct LockedMessage {
    /// The message, with this delivery already counted.
    pub message: Message,
    /// Settles the message: complete, abandon, renew, dead-letter.
    pub lock_token: Uuid,
    /// When the lock lapses unless renewed, on the broker's lock clock.
    pub locked_until: OffsetDateTime,
}

/// What a send did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendOutcome {
    /// Visible now.
    Enqueued {
        /// Its sequence number.
        sequence_number: i64,
    },
    /// Visible at `at`.
    Scheduled {
        /// Its sequence number.
        sequence_number: i64,
        /// When it becomes visible.
        at: OffsetDateTime,
    },
    /// A message with this `MessageId` was accepted within the detection window: dropped.
    Duplicate,
}

/// How many messages a queue holds, by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueCounts {
    /// Visible and not locked.
    pub active: usize,
    /// Waiting for their scheduled time.
    pub scheduled: usize,
    /// Under a peek-lock.
    pub locked: usize,
    /// In the dead-letter sub-queue.
    pub dead_lettered: usize,
}

impl QueueCounts {
    /// Nothing left to deliver: no active, scheduled or locked messages.
    pub fn is_drained(&self) -> bool {
        self.active + self.scheduled + self.locked == 0
    }
}

/// Broker failures, named after what failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BrokerError {
    /// No queue of that name.
    #[error("the messaging entity '{0}' could not be found")]
    QueueNotFound(String),
    /// Creating a queue that exists.
    #[error("the messaging entity '{0}' already exists")]
    QueueExists(String),
    /// Settling with a lock that lapsed, or a message already settled.
    #[error(
        "the lock supplied is invalid on '{queue}': it expired, or the message was already settled or removed"
    )]
    LockLost {
        /// The queue.
        queue: String,
    },
    /// Queue properties outside Azure's limits.
    #[error("invalid queue settings: {0}")]
    InvalidSettings(String),
}

#[derive(Debug)]
struct Entry {
    message: Message,
    visible_at: OffsetDateTime,
    /// The lock token and when the lock lapses, on the broker's lock clock.
    lock: Option<(Uuid, OffsetDateTime)>,
}

/// "Now" on the broker's two clocks: message time (scheduling, time to live, duplicate
/// detection) and lock time (peek-lock expiry).
#[derive(Debug, Clone, Copy)]
struct Now {
    at: OffsetDateTime,
    lock_at: OffsetDateTime,
}

#[derive(Debug)]
struct QueueState {
    settings: QueueSettings,
    next_sequence: i64,
    entries: BTreeMap<i64, Entry>,
    dead_letters: Vec<Message>,
    seen_ids: HashMap<String, OffsetDateTime>,
}

impl QueueState {
    /// Applies everything time has decided: lapsed locks (redelivery or dead-letter), expired
    /// messages, and duplicate-detection history older than the window.
    fn settle_time(&mut self, times: Now) {
        let now = times.at;
        let max = self.settings.max_delivery_count;
        let mut exhausted = Vec::new();
        let mut expired = Vec::new();
        for (seq, entry) in &mut self.entries {
            if let Some((_, until)) = entry.lock
                && until <= times.lock_at
            {
                entry.lock = None;
                if entry.message.delivery_count >= max {
                    exhausted.push(*seq);
                    continue;
                }
            }
            if entry.lock.is_none()
                && entry.visible_at <= now
                && entry.message.expires_at().is_some_and(|at| at <= now)
            {
                expired.push(*seq);
            }
        }
        for seq in exhausted {
            self.dead_letter_exhausted(seq);
        }
        for seq in expired {
            if let Some(entry) = self.entries.remove(&seq)
                && self.settings.dead_letter_on_expiration
            {
                let mut message = entry.message;
                message.dead_letter_reason = Some(TTL_EXPIRED.into());
                message.dead_letter_error_description =
                    Some("The message expired and was dead lettered.".into());
                self.dead_letters.push(message);
            }
        }
        if let Some(window) = self.settings.duplicate_detection_window {
            self.seen_ids.retain(|_, seen| *seen + window > now);
        }
    }

    fn dead_letter_exhausted(&mut self, seq: i64) {
        if let Some(entry) = self.entries.remove(&seq) {
            let mut message = entry.message;
            message.dead_letter_reason = Some(MAX_DELIVERY_COUNT_EXCEEDED.into());
            message.dead_letter_error_description = Some(format!(
                "Message could not be consumed after {} delivery attempts.",
                self.settings.max_delivery_count
            ));
            self.dead_letters.push(message);
        }
    }

    fn locked_entry(&mut self, token: Uuid) -> Option<i64> {
        self.entries
            .iter()
            .find(|(_, e)| e.lock.is_some_and(|(t, _)| t == token))
            .map(|(seq, _)| *seq)
    }

    /// The next instants at which time alone changes what a receiver can get: a scheduled
    /// message turning visible (message clock) and a lock lapsing (lock clock).
    fn next_change(&self, now: OffsetDateTime) -> NextChange {
        let mut next = NextChange::default();
        for e in self.entries.values() {
            match e.lock {
                Some((_, until)) => {
                    next.lock_lapses = Some(next.lock_lapses.map_or(until, |t| t.min(until)));
                }
                None if e.visible_at > now => {
                    next.visible = Some(next.visible.map_or(e.visible_at, |t| t.min(e.visible_at)));
                }
                None => {}
            }
        }
        next
    }

    fn accept(&mut self, new: NewMessage, now: OffsetDateTime) -> SendOutcome {
        let message_id = new
            .message_id
            .clone()
            .unwrap_or_else(|| Uuid::new_v4().simple().to_string());
        if self.settings.duplicate_detection_window.is_some() {
            if self.seen_ids.contains_key(&message_id) {
                return SendOutcome::Duplicate;
            }
            self.seen_ids.insert(message_id.clone(), now);
        }
        let sequence_number = self.next_sequence;
        self.next_sequence += 1;
        let visible_at = new
            .scheduled_enqueue_time
            .filter(|at| *at > now)
            .unwrap_or(now);
        let time_to_live = match (new.time_to_live, self.settings.default_message_ttl) {
            (Some(m), Some(q)) => Some(m.min(q)),
            (m, q) => m.or(q),
        };
        let message = Message {
            sequence_number,
            message_id,
            body: new.body,
            content_type: new.content_type,
            correlation_id: new.correlation_id,
            subject: new.subject,
            to: new.to,
            reply_to: new.reply_to,
            reply_to_session_id: new.reply_to_session_id,
            session_id: new.session_id,
            partition_key: new.partition_key,
            time_to_live,
            application_properties: new.application_properties,
            enqueued_time: visible_at,
            scheduled_enqueue_time: new.scheduled_enqueue_time,
            delivery_count: 0,
            dead_letter_reason: None,
            dead_letter_error_description: None,
        };
        self.entries.insert(
            sequence_number,
            Entry {
                message,
                visible_at,
                lock: None,
            },
        );
        if visible_at > now {
            SendOutcome::Scheduled {
                sequence_number,
                at: visible_at,
            }
        } else {
            SendOutcome::Enqueued { sequence_number }
        }
    }
}

/// When time alone next changes a queue.
#[derive(Debug, Clone, Copy, Default)]
struct NextChange {
    /// A scheduled message becomes visible (message clock).
    visible: Option<OffsetDateTime>,
    /// A lock lapses (lock clock).
    lock_lapses: Option<OffsetDateTime>,
}

/// The broker: named queues on a message clock (scheduled messages, time to live, duplicate
/// detection) and a lock clock (peek-lock expiry). Share it as `Arc<Broker>`.
///
/// The two differ under the local stand-ins: scheduled delays pass in virtual time, but a
/// handler's processing takes real time, so locks are measured in real time as Service Bus
/// does (a 60 s lock is 60 s of the handler's work, whatever the time scale).
pub struct Broker {
    clock: Arc<dyn Clock>,
    lock_clock: Arc<dyn Clock>,
    queues: Mutex<BTreeMap<String, QueueState>>,
    changed: Notify,
    duplicates: Mutex<DuplicateDelivery>,
}

/// Fault knob: at-least-once delivery made visible — a completed message is delivered once
/// more, as Service Bus may do when a settlement is lost.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DuplicateDeliveryKnobs {
    /// Probability (0..=1) that a completed message comes back once more.
    pub rate: f64,
    /// RNG seed.
    pub seed: u64,
}

#[derive(Debug)]
struct DuplicateDelivery {
    knobs: Option<DuplicateDeliveryKnobs>,
    rng: StdRng,
    delivered: u64,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("queues", &self.queue_names())
            .finish_non_exhaustive()
    }
}

impl Broker {
    /// An empty broker with `clock` for messages and locks alike (tests that move a manual
    /// clock to lapse locks).
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self::with_lock_clock(clock.clone(), clock)
    }

    /// An empty broker whose locks run on `lock_clock` (real time for the local stand-ins)
    /// while messages run on `clock`.
    pub fn with_lock_clock(clock: Arc<dyn Clock>, lock_clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            lock_clock,
            queues: Mutex::new(BTreeMap::new()),
            changed: Notify::new(),
            duplicates: Mutex::new(DuplicateDelivery {
                knobs: None,
                rng: StdRng::seed_from_u64(0),
                delivered: 0,
            }),
        }
    }

    /// Fault knob: redeliver a fraction of completed messages once more (`None`: never), and
    /// reseed the RNG. A duplicate keeps its `MessageId`, body and properties, is visible at
    /// once, is not subject to duplicate detection (it is a redelivery, not a send) and is
    /// never itself duplicated again.
    pub fn set_duplicate_delivery(&self, knobs: Option<DuplicateDeliveryKnobs>) {
        let mut d = self
            .duplicates
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        d.rng = StdRng::seed_from_u64(knobs.map_or(0, |k| k.seed));
        d.knobs = knobs;
    }

    /// How many duplicate deliveries the knob has queued.
    pub fn duplicate_deliveries(&self) -> u64 {
        self.duplicates
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .delivered
    }

    /// Whether this completed message gets a duplicate delivery (counted when it does).
    fn draw_duplicate(&self, message: &Message) -> bool {
        if message
            .application_properties
            .contains_key(DUPLICATE_DELIVERY_PROPERTY)
        {
            return false;
        }
        let mut d = self
            .duplicates
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let Some(knobs) = d.knobs else {
            return false;
        };
        if knobs.rate > 0.0 && d.rng.random::<f64>() < knobs.rate {
            d.delivered += 1;
            true
        } else {
            false
        }
    }

    /// The broker's message clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The clock locks are measured on.
    pub fn lock_clock(&self) -> &Arc<dyn Clock> {
        &self.lock_clock
    }

    /// Creates a queue.
    ///
    /// # Errors
    /// Invalid settings, or a queue of that name exists.
    pub fn create_queue(&self, name: &str, settings: QueueSettings) -> Result<(), BrokerError> {
        settings.validate()?;
        let mut queues = self.lock();
        if queues.contains_key(name) {
            return Err(BrokerError::QueueExists(name.to_string()));
        }
        queues.insert(
            name.to_string(),
            QueueState {
                settings,
                next_sequence: 1,
                entries: BTreeMap::new(),
                dead_letters: Vec::new(),
                seen_ids: HashMap::new(),
            },
        );
        Ok(())
    }

    /// Whether a queue exists.
    pub fn has_queue(&self, name: &str) -> bool {
        self.lock().contains_key(name)
    }

    /// Every queue name, sorted.
    pub fn queue_names(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    /// A queue's settings.
    ///
    /// # Errors
    /// [`BrokerError::QueueNotFound`].
    pub fn settings(&self, queue: &str) -> Result<QueueSettings, BrokerError> {
        self.with_queue(queue, |q, _| q.settings.clone())
    }

    /// Accepts one message.
    ///
    /// # Errors
    /// [`BrokerError::QueueNotFound`].
    pub fn send(&self, queue: &str, message: NewMessage) -> Result<SendOutcome, BrokerError> {
        let outcome = self.with_queue(queue, |q, now| q.accept(message, now.at))?;
        self.changed.notify_waiters();
        Ok(outcome)
    }

    /// Accepts several messages at once (a batch send): all or none.
    ///
    /// # Errors
    /// [`BrokerError::QueueNotFound`].
    pub fn send_all(
        &self,
        queue: &str,
        messages: Vec<NewMessage>,
    ) -> Result<Vec<SendOutcome>, BrokerError> {
        let outcomes = self.with_queue(queue, |q, now| {
            messages
                .into_iter()
                .map(|m| q.accept(m, now.at))
                .collect::<Vec<_>>()
        })?;
        self.changed.notify_waiters();
        Ok(outcomes)
    }

    /// Peek-locks the first visible message, if any, counting the delivery.
    ///
    /// # Errors
    /// [`BrokerError::QueueNotFound`].
    pub fn try_receive(&self, queue: &str) -> Result<Option<LockedMessage>, BrokerError> {
        Ok(self.receive_or_next_change(queue)?.0)
    }

    /// Peek-locks the first visible message, waiting up to `max_wait` (real time) for one.
    ///
    /// # Errors
    /// [`BrokerError::QueueNotFound`].
    pub async fn receive(
        &self,
        queue: &str,
        max_wait: Duration,
    ) -> Result<Option<LockedMessage>, BrokerError> {
        let deadline = tokio::time::Instant::now() + max_wait;
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let (received, next_change) = self.receive_or_next_change(queue)?;
            if received.is_some() {
                return Ok(received);
            }
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            if remaining.is_zero() {
                return Ok(None);
            }
            let mut nap = remaining.min(MAX_RECEIVE_NAP);
            if let Some(at) = next_change.visible {
                let virtual_wait = until(self.clock.now(), at);
                nap = nap.min(self.clock.real_duration(virtual_wait));
            }
            if let Some(at) = next_change.lock_lapses {
                let lock_wait = until(self.lock_clock.now(), at);
                nap = nap.min(self.lock_clock.real_duration(lock_wait));
            }
            let nap = nap.max(Duration::from_millis(1));
            tokio::select! {
                () = &mut notified => {}
                () = tokio::time::sleep(nap) => {}
            }
        }
    }

    /// Removes a locked message: it was handled.
    ///
    /// # Errors
    /// Unknown queue, or [`BrokerError::LockLost`].
    pub fn complete(&self, queue: &str, lock_token: Uuid) -> Result<(), BrokerError> {
        self.settle(queue, lock_token, |q, seq, now| {
            if let Some(entry) = q.entries.remove(&seq)
                && self.draw_duplicate(&entry.message)
            {
                let mut message = entry.message;
                message
                    .application_properties
                    .insert(DUPLICATE_DELIVERY_PROPERTY.into(), Value::Bool(true));
                let sequence_number = q.next_sequence;
                q.next_sequence += 1;
                message.sequence_number = sequence_number;
                q.entries.insert(
                    sequence_number,
                    Entry {
                        message,
                        visible_at: now.at,
                        lock: None,
                    },
                );
            }
        })
    }

    /// Releases a locked message for immediate redelivery; a message that has used its
    /// deliveries goes to the dead-letter sub-queue with `MaxDeliveryCountExceeded`.
    ///
    /// # Errors
    /// Unknown queue, or [`BrokerError::LockLost`].
    pub fn abandon(&self, queue: &str, lock_token: Uuid) -> Result<(), BrokerError> {
        self.settle(queue, lock_token, |q, seq, _| {
            let exhausted = match q.entries.get_mut(&seq) {
                Some(entry) => {
                    entry.lock = None;
                    entry.message.delivery_count >= q.settings.max_delivery_count
                }
                None => false,
            };
            if exhausted {
                q.dead_letter_exhausted(seq);
            }
        })
    }

    /// Moves a locked message to the dead-letter sub-queue with a reason.
    ///
    /// # Errors
    /// Unknown queue, or [`BrokerError::LockLost`].
    pub fn dead_letter(
        &self,
        queue: &str,
        lock_token: Uuid,
        reason: &str,
        description: &str,
    ) -> Result<(), BrokerError> {
        self.settle(queue, lock_token, |q, seq, _| {
            if let Some(entry) = q.entries.remove(&seq) {
                let mut message = entry.message;
                message.dead_letter_reason = Some(reason.to_string());
                message.dead_letter_error_description = Some(description.to_string());
                q.dead_letters.push(message);
            }
        })
    }

    /// Extends a lock by the queue's lock duration from now.
    ///
    /// # Errors
    /// Unknown queue, or [`BrokerError::LockLost`].
    pub fn renew_lock(&self, queue: &str, lock_token: Uuid) -> Result<OffsetDateTime, BrokerError> {
        let mut renewed = None;
        self.settle(queue, lock_token, |q, seq, now| {
            let until = now.lock_at + q.settings.lock_duration;
            if let Some(entry) = q.entries.get_mut(&seq) {
                entry.lock = Some((lock_token, until));
                renewed = Some(until);
            }
        })?;
        renewed.ok_or_else(|| BrokerError::LockLost {
            queue: queue.to_string(),
        })
    }

    /// The messages in a queue (active, scheduled and locked), by sequence number.
    ///
    /// # Errors
    /// [`BrokerError::QueueNotFound`].
    pub fn peek(&self, queue: &str) -> Result<Vec<Message>, BrokerError> {
        self.with_queue(queue, |q, _| {
            q.entries.values().map(|e| e.message.clone()).collect()
        })
    }

    /// The dead-letter sub-queue (`{queue}/$DeadLetterQueue`), oldest first, with reasons.
    ///
    /// # Errors
    /// [`BrokerError::QueueNotFound`].
    pub fn peek_dead_letters(&self, queue: &str) -> Result<Vec<Message>, BrokerError> {
        self.with_queue(queue, |q, _| q.dead_letters.clone())
    }

    /// Message counts by state.
    ///
    /// # Errors
    /// [`BrokerError::QueueNotFound`].
    pub fn counts(&self, queue: &str) -> Result<QueueCounts, BrokerError> {
        self.with_queue(queue, |q, now| {
            let mut counts = QueueCounts {
                dead_lettered: q.dead_letters.len(),
                ..QueueCounts::default()
            };
            for entry in q.entries.values() {
                if entry.lock.is_some() {
                    counts.locked += 1;
                } else if entry.visible_at > now.at {
                    counts.scheduled += 1;
                } else {
                    counts.active += 1;
                }
            }
            counts
        })
    }

    fn receive_or_next_change(
        &self,
        queue: &str,
    ) -> Result<(Option<LockedMessage>, NextChange), BrokerError> {
        self.with_queue(queue, |q, now| {
            let lock_duration = q.settings.lock_duration;
            let visible = q
                .entries
                .values_mut()
                .find(|e| e.lock.is_none() && e.visible_at <= now.at);
            match visible {
                Some(entry) => {
                    let token = Uuid::new_v4();
                    let locked_until = now.lock_at + lock_duration;
                    entry.lock = Some((token, locked_until));
                    entry.message.delivery_count += 1;
                    let locked = LockedMessage {
                        message: entry.message.clone(),
                        lock_token: token,
                        locked_until,
                    };
                    (Some(locked), NextChange::default())
                }
                None => (None, q.next_change(now.at)),
            }
        })
    }

    fn settle(
        &self,
        queue: &str,
        lock_token: Uuid,
        apply: impl FnOnce(&mut QueueState, i64, Now),
    ) -> Result<(), BrokerError> {
        let done = self.with_queue(queue, |q, now| match q.locked_entry(lock_token) {
            Some(seq) => {
                apply(q, seq, now);
                true
            }
            None => false,
        })?;
        if done {
            self.changed.notify_waiters();
            Ok(())
        } else {
            Err(BrokerError::LockLost {
                queue: queue.to_string(),
            })
        }
    }

    fn with_queue<T>(
        &self,
        queue: &str,
        f: impl FnOnce(&mut QueueState, Now) -> T,
    ) -> Result<T, BrokerError> {
        let now = Now {
            at: self.clock.now(),
            lock_at: self.lock_clock.now(),
        };
        let mut queues = self.lock();
        let state = queues
            .get_mut(queue)
            .ok_or_else(|| BrokerError::QueueNotFound(queue.to_string()))?;
        state.settle_time(now);
        Ok(f(state, now))
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, QueueState>> {
        self.queues.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backup_pilot::clock::ManualClock;
    use time::macros::datetime;

    fn broker(settings: QueueSettings) -> (Broker, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(datetime!(2026-01-01 00:00 UTC)));
        let broker = Broker::new(clock.clone());
        broker.create_queue("q", settings).unwrap();
        (broker, clock)
    }

    fn message(id: &str) -> NewMessage {
        NewMessage {
            message_id: Some(id.into()),
            body: b"{}".to_vec(),
            ..NewMessage::default()
        }
    }

    #[test]
    fn abandoned_messages_come_back_counted_then_dead_letter() {
        let (broker, _clock) = broker(QueueSettings {
            max_delivery_count: 2,
            ..QueueSettings::default()
        });
        broker.send("q", message("m")).unwrap();
        let first = broker.try_receive("q").unwrap().unwrap();
        assert_eq!(first.message.delivery_count, 1);
        assert_eq!(broker.try_receive("q").unwrap(), None, "locked");
        broker.abandon("q", first.lock_token).unwrap();
        let second = broker.try_receive("q").unwrap().unwrap();
        assert_eq!(second.message.delivery_count, 2);
        assert_eq!(
            broker.abandon("q", first.lock_token),
            Err(BrokerError::LockLost { queue: "q".into() })
        );
        broker.abandon("q", second.lock_token).unwrap();
        assert_eq!(broker.try_receive("q").unwrap(), None);
        let dead = broker.peek_dead_letters("q").unwrap();
        assert_eq!(dead.len(), 1);
        assert_eq!(
            dead[0].dead_letter_reason.as_deref(),
            Some(MAX_DELIVERY_COUNT_EXCEEDED)
        );
        assert_eq!(dead[0].delivery_count, 2);
    }

    #[test]
    fn lapsed_locks_redeliver_and_renewals_hold() {
        let (broker, clock) = broker(QueueSettings::default());
        broker.send("q", message("m")).unwrap();
        let first = broker.try_receive("q").unwrap().unwrap();
        clock.advance(Duration::from_secs(50));
        broker.renew_lock("q", first.lock_token).unwrap();
        clock.advance(Duration::from_secs(50));
        assert_eq!(broker.try_receive("q").unwrap(), None, "renewed lock holds");
        clock.advance(Duration::from_secs(11));
        let again = broker.try_receive("q").unwrap().unwrap();
        assert_eq!(again.message.delivery_count, 2);
        assert!(broker.complete("q", first.lock_token).is_err());
        broker.complete("q", again.lock_token).unwrap();
        assert!(broker.counts("q").unwrap().is_drained());
    }

    #[test]
    fn locks_run_on_the_lock_clock_not_on_message_time() {
        let messages = Arc::new(ManualClock::new(datetime!(2026-01-01 00:00 UTC)));
        let locks = Arc::new(ManualClock::new(datetime!(2026-01-01 00:00 UTC)));
        let broker = Broker::with_lock_clock(messages.clone(), locks.clone());
        broker.create_queue("q", QueueSettings::default()).unwrap();
        broker.send("q", message("m")).unwrap();
        let first = broker.try_receive("q").unwrap().unwrap();
        // Hours of virtual time pass while the handler works for a moment of real time.
        messages.advance(Duration::from_secs(6 * 3600));
        assert_eq!(broker.try_receive("q").unwrap(), None, "still locked");
        broker.renew_lock("q", first.lock_token).unwrap();
        locks.advance(Duration::from_secs(59));
        assert_eq!(broker.try_receive("q").unwrap(), None, "renewed for 60 s");
        locks.advance(Duration::from_secs(2));
        let again = broker.try_receive("q").unwrap().unwrap();
        assert_eq!(again.message.delivery_count, 2, "a lapsed lock redelivers");
        assert!(broker.complete("q", first.lock_token).is_err());
    }

    #[test]
    fn scheduled_messages_wait_for_their_time() {
        let (broker, clock) = broker(QueueSettings::default());
        let at = clock.now() + Duration::from_secs(3600);
        let outcome = broker
            .send(
                "q",
                NewMessage {
                    scheduled_enqueue_time: Some(at),
                    ..message("later")
                },
            )
            .unwrap();
        assert!(matches!(outcome, SendOutcome::Scheduled { .. }));
        assert_eq!(broker.counts("q").unwrap().scheduled, 1);
        clock.advance(Duration::from_secs(3599));
        assert_eq!(broker.try_receive("q").unwrap(), None);
        clock.advance(Duration::from_secs(1));
        let got = broker.try_receive("q").unwrap().unwrap();
        assert_eq!(got.message.enqueued_time, at);
    }

    #[test]
    fn duplicates_inside_the_window_are_dropped_and_accepted_after() {
        let (broker, clock) = broker(QueueSettings {
            duplicate_detection_window: Some(Duration::from_secs(60)),
            ..QueueSettings::default()
        });
        assert!(matches!(
            broker.send("q", message("m")).unwrap(),
            SendOutcome::Enqueued { .. }
        ));
        clock.advance(Duration::from_secs(59));
        assert_eq!(
            broker.send("q", message("m")).unwrap(),
            SendOutcome::Duplicate
        );
        clock.advance(Duration::from_secs(1));
        assert!(matches!(
            broker.send("q", message("m")).unwrap(),
            SendOutcome::Enqueued { .. }
        ));
        assert_eq!(broker.peek("q").unwrap().len(), 2);
    }

    #[test]
    fn expired_messages_vanish_or_dead_letter() {
        let (broker, clock) = broker(QueueSettings {
            default_message_ttl: Some(Duration::from_secs(30)),
            dead_letter_on_expiration: true,
            ..QueueSettings::default()
        });
        broker
            .send(
                "q",
                NewMessage {
                    time_to_live: Some(Duration::from_secs(3600)),
                    ..message("m")
                },
            )
            .unwrap();
        assert_eq!(
            broker.peek("q").unwrap()[0].time_to_live,
            Some(Duration::from_secs(30)),
            "the queue default caps the message's"
        );
        clock.advance(Duration::from_secs(30));
        assert_eq!(broker.try_receive("q").unwrap(), None);
        assert_eq!(
            broker.peek_dead_letters("q").unwrap()[0]
                .dead_letter_reason
                .as_deref(),
            Some(TTL_EXPIRED)
        );
    }

    #[test]
    fn settings_outside_azure_limits_are_refused() {
        let clock = Arc::new(ManualClock::new(datetime!(2026-01-01 00:00 UTC)));
        let broker = Broker::new(clock);
        for bad in [
            QueueSettings {
                max_delivery_count: 0,
                ..QueueSettings::default()
            },
            QueueSettings {
                lock_duration: Duration::from_secs(301),
                ..QueueSettings::default()
            },
            QueueSettings {
                duplicate_detection_window: Some(Duration::from_secs(5)),
                ..QueueSettings::default()
            },
        ] {
            assert!(matches!(
                broker.create_queue("q", bad),
                Err(BrokerError::InvalidSettings(_))
            ));
        }
        broker.create_queue("q", QueueSettings::default()).unwrap();
        assert!(broker.create_queue("q", QueueSettings::default()).is_err());
        assert_eq!(
            broker.send("nope", message("m")),
            Err(BrokerError::QueueNotFound("nope".into()))
        );
    }

    #[test]
    fn the_duplicate_knob_redelivers_a_completed_message_once() {
        let (broker, _clock) = broker(QueueSettings::default());
        broker.set_duplicate_delivery(Some(DuplicateDeliveryKnobs { rate: 1.0, seed: 7 }));
        broker.send("q", message("m")).unwrap();
        let first = broker.try_receive("q").unwrap().unwrap();
        broker.complete("q", first.lock_token).unwrap();
        let again = broker.try_receive("q").unwrap().unwrap();
        assert_eq!(again.message.message_id, "m");
        assert_eq!(again.message.body, first.message.body);
        broker.complete("q", again.lock_token).unwrap();
        assert!(broker.counts("q").unwrap().is_drained(), "only once");
        assert_eq!(broker.duplicate_deliveries(), 1);
    }

    #[tokio::test]
    async fn receive_wakes_on_send() {
        let (broker, _clock) = broker(QueueSettings::default());
        let broker = Arc::new(broker);
        let waiter = {
            let broker = broker.clone();
            tokio::spawn(async move { broker.receive("q", Duration::from_secs(10)).await })
        };
        tokio::task::yield_now().await;
        broker.send("q", message("m")).unwrap();
        let got = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(got.unwrap().message.message_id, "m");
    }
}

//! The step engine, shaped like kube-runtime's reconcile loop. A step is an idempotent
//! `async fn(&Ctx, &Envelope) -> Result<Outcome, StepError>`; one error policy turns errors
//! into outcomes; every outcome becomes a message: the next step now, the same step later (a
//! scheduled message — no step ever sleeps), or a journal entry when the workflow ends.
//!
//! One invocation is bounded in real time by its [`InvocationBudget`]: the step gets
//! [`STEP_BUDGET`] (`BACKUP_PILOT_STEP_BUDGET_SECONDS`) and the hand-off after it (publishing
//! what follows, recording the run) [`HAND_OFF_BUDGET`]; 55 s together by default, well under
//! the queue's 5-minute message lock and the local stand-in's 60 s. A step that runs out of
//! budget is cancelled at an `.await` (steps are idempotent and cancel-safe) and ends as
//! [`StepError::Timeout`], a transient error: the retry policy schedules it again and the
//! invocation answers in time. Each client call inside a step has its own, shorter bound
//! ([`crate::arm::ARM_CALL_TIMEOUT`], [`crate::auth::TOKEN_TIMEOUT`],
//! [`crate::bus::rest::SEND_TIMEOUT`], the Kubernetes client's timeouts).

pub mod fix;
pub mod journal;
pub mod policy;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{Map, Value};
use tracing::Instrument as _;

use crate::bus::{BusError, OutgoingMessage, Publisher};
use crate::clock::Clock;
use crate::envelope::{Envelope, WorkflowKind};
use crate::fault::Fault;
use crate::telemetry::metrics;
use crate::telemetry::{propagation, redact, spans};
use journal::{Journal, StepRecord, Transition};
pub use policy::{RetryPolicy, error_policy};

/// What a step decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Run `step` next; `fact` names what is now true.
    Next {
        /// The step to run next.
        step: String,
        /// The fact this step established.
        fact: String,
    },
    /// Run this step again after `after`.
    RetryAfter {
        /// How long to wait.
        after: Duration,
        /// Why (shown in status and logs).
        why: String,
    },
    /// The workflow is complete.
    Done {
        /// What was achieved.
        summary: String,
    },
    /// The workflow cannot go on without a person.
    Failed {
        /// What is wrong and how to fix it.
        reason: String,
    },
}

/// A step's outcome: an action plus facts to carry forward in the envelope payload.
#[must_use]
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// What to do next.
    pub action: Action,
    /// Payload entries to add or replace.
    pub facts: Map<String, Value>,
    /// Figures reported with the workflow's end; see [`journal::Measures`].
    pub measures: journal::Measures,
}

impl Outcome {
    /// Go on with `step`, publishing `fact`.
    pub fn next(step: &str, fact: &str) -> Self {
        Self::from(Action::Next {
            step: step.into(),
            fact: fact.into(),
        })
    }
    /// Run this step again later.
    pub fn retry_after(after: Duration, why: impl Into<String>) -> Self {
        Self::from(Action::RetryAfter {
            after,
            why: why.into(),
        })
    }
    /// The workflow is complete.
    pub fn done(summary: impl Into<String>) -> Self {
        Self::from(Action::Done {
            summary: summary.into(),
        })
    }
    /// The workflow stops; `reason` says what to do.
    pub fn failed(reason: impl Into<String>) -> Self {
        Self::from(Action::Failed {
            reason: reason.into(),
        })
    }
    /// The workflow stops because of `problem`; status shows `fix` as what to do about it
    /// (see [`fix`]).
    pub fn failed_with_fix(problem: &str, fix: &str) -> Self {
        Self::failed(fix::compose(problem, fix))
    }
    /// Carries `key = value` forward in the payload.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.facts.insert(key.to_string(), value.into());
        self
    }
    /// Reports the figure `name = value` with the workflow's end (kept in status).
    pub fn measure(mut self, name: &str, value: i64) -> Self {
        self.measures.insert(name.to_string(), value);
        self
    }
    /// Removes `key` from the payload (by setting it to null, which the engine drops).
    pub fn without(mut self, key: &str) -> Self {
        self.facts.insert(key.to_string(), Value::Null);
        self
    }
}

impl From<Action> for Outcome {
    fn from(action: Action) -> Self {
        Self {
            action,
            facts: Map::new(),
            measures: journal::Measures::new(),
        }
    }
}

/// Why a step could not decide an outcome. Classified by [`StepError::is_transient`].
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// A dependency failed (ARM, Kubernetes, Service Bus, the token endpoint); its error says
    /// how, and how it is classified ([`Fault`]). `?` turns any such error into this.
    #[error("{0}")]
    Dependency(Box<dyn Fault>),
    /// Worth retrying later.
    #[error("{message}")]
    Transient {
        /// What went wrong.
        message: String,
        /// Server-requested delay.
        retry_after: Option<Duration>,
    },
    /// Will not get better by waiting.
    #[error("{reason}")]
    Permanent {
        /// What is wrong and what to do.
        reason: String,
    },
    /// The step did not finish within its share of the invocation budget (a dependency is
    /// slow or unreachable); it is retried later.
    #[error(
        "the step did not finish within its budget of {}s (BACKUP_PILOT_STEP_BUDGET_SECONDS): a dependency is slow or unreachable",
        .budget.as_secs_f64()
    )]
    Timeout {
        /// The budget that ran out.
        budget: Duration,
    },
    /// An error whose retry leaves payload facts behind (an operation that failed is not
    /// polled again: the next attempt starts a new one). Classified as the error it wraps.
    #[error("{source}")]
    Forgetting {
        /// The error.
        source: Box<StepError>,
        /// The payload keys the retry drops.
        keys: Vec<String>,
    },
}

impl<E: Fault> From<E> for StepError {
    fn from(err: E) -> Self {
        Self::Dependency(Box::new(err))
    }
}

impl StepError {
    /// The same error; whatever the error policy makes of it drops the payload fact `key`.
    #[must_use]
    pub fn forgetting(self, key: &str) -> Self {
        match self {
            Self::Forgetting { source, mut keys } => {
                keys.push(key.to_string());
                Self::Forgetting { source, keys }
            }
            other => Self::Forgetting {
                source: Box::new(other),
                keys: vec![key.to_string()],
            },
        }
    }

    /// The payload facts the outcome of this error drops (see [`Self::forgetting`]).
    pub fn forgotten(&self) -> &[String] {
        match self {
            Self::Forgetting { keys, .. } => keys,
            _ => &[],
        }
    }

    /// The dependency's error, when it is an `E`.
    pub fn dependency<E: Fault>(&self) -> Option<&E> {
        match self {
            Self::Dependency(e) => (e.as_ref() as &dyn std::error::Error).downcast_ref(),
            Self::Forgetting { source, .. } => source.dependency(),
            _ => None,
        }
    }

    /// Whether waiting and retrying can help.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Dependency(e) => e.is_transient(),
            Self::Forgetting { source, .. } => source.is_transient(),
            Self::Transient { .. } | Self::Timeout { .. } => true,
            Self::Permanent { .. } => false,
        }
    }

    /// True when the dependency answered "too many requests" (see [`Fault::is_throttled`]):
    /// the step made no progress because it was told to wait, so the wait does not count
    /// against its deadline. A 5xx that does not say when to come back still counts.
    pub fn is_throttled(&self) -> bool {
        match self {
            Self::Dependency(e) => e.is_throttled(),
            Self::Forgetting { source, .. } => source.is_throttled(),
            _ => false,
        }
    }

    /// The delay the server asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Dependency(e) => e.retry_after(),
            Self::Forgetting { source, .. } => source.retry_after(),
            Self::Transient { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// A short class of the error for the retry metric: `throttled`, `timeout`,
    /// `server_error`, `connection`, `auth`, `transient`, `rejected` or `permanent`.
    pub fn reason_class(&self) -> &'static str {
        match self {
            Self::Dependency(e) => e.reason_class(),
            Self::Forgetting { source, .. } => source.reason_class(),
            Self::Transient { .. } => "transient",
            Self::Timeout { .. } => "timeout",
            Self::Permanent { .. } => "permanent",
        }
    }
}

/// What the engine needs from the context its steps share: time, the bus, the journal, the
/// step queue and the retry policy. The rest of the context (clients, settings) is the steps'
/// business; the engine is generic over it and names none of it. Cheap to clone.
pub trait Context: Clone + Send + Sync + 'static {
    /// The journal the engine records every step run to.
    type Journal: Journal + ?Sized;

    /// Where "now" comes from.
    fn clock(&self) -> &dyn Clock;
    /// Sends the workflow's messages.
    fn publisher(&self) -> &dyn Publisher;
    /// Records step runs and says whether a workflow ended.
    fn journal(&self) -> &Self::Journal;
    /// The queue the steps' messages go to.
    fn step_queue(&self) -> &str;
    /// The backoff of the error policy.
    fn retry(&self) -> &RetryPolicy;
}

/// One idempotent step of a workflow, run with the context `C`.
#[async_trait]
pub trait Step<C: Context>: Send + Sync + 'static {
    /// The step's name on the wire.
    fn name(&self) -> &'static str;

    /// How long the step may keep retrying before the workflow fails.
    fn timeout(&self) -> Duration {
        Duration::from_secs(30 * 60)
    }

    /// Reads the world, converges it, and says what comes next. Must be safe to run twice,
    /// concurrently, or after a crash at any line.
    async fn run(&self, ctx: &C, envelope: &Envelope) -> Result<Outcome, StepError>;
}

/// What a workflow does when one of its steps fails — the error policy found its error
/// permanent, the step said `Failed`, or it ran past its deadline — once the engine has
/// classified, logged and counted the failure like any other. Declared with the workflow
/// ([`Registry::on_failure`]); a workflow without one ends as failed.
#[derive(Debug, Clone, Copy)]
pub struct OnFailure {
    /// The step the workflow goes on with.
    pub step: &'static str,
    /// The fact that step is published with.
    pub fact: &'static str,
    /// Steps whose failure still ends the workflow: the failure path itself.
    pub ends_at: &'static [&'static str],
    /// The payload changes that carry the failure forward, from the failed step's envelope,
    /// the reason and the time (a null value removes a key).
    pub facts: fn(&Envelope, &str, time::OffsetDateTime) -> Map<String, Value>,
}

/// Called when a workflow of a kind ends (done or failed), with its last envelope, the final
/// transition and the time: what the workflow reports of its end beyond the journal (metrics).
pub type OnEnd = fn(&Envelope, &Transition, time::OffsetDateTime);

/// The steps of every workflow kind, where each kind starts, and what it declares about its
/// end.
pub struct Registry<C: Context> {
    steps: HashMap<(WorkflowKind, String), Arc<dyn Step<C>>>,
    first: HashMap<WorkflowKind, (String, String)>,
    on_failure: HashMap<WorkflowKind, OnFailure>,
    on_end: HashMap<WorkflowKind, OnEnd>,
}

impl<C: Context> Default for Registry<C> {
    fn default() -> Self {
        Self {
            steps: HashMap::new(),
            first: HashMap::new(),
            on_failure: HashMap::new(),
            on_end: HashMap::new(),
        }
    }
}

impl<C: Context> Clone for Registry<C> {
    fn clone(&self) -> Self {
        Self {
            steps: self.steps.clone(),
            first: self.first.clone(),
            on_failure: self.on_failure.clone(),
            on_end: self.on_end.clone(),
        }
    }
}

impl<C: Context> Registry<C> {
    /// Adds a step to a kind.
    pub fn add(mut self, kind: WorkflowKind, step: impl Step<C>) -> Self {
        self.steps
            .insert((kind, step.name().to_string()), Arc::new(step));
        self
    }

    /// Sets the first step of a kind and the fact that starts it.
    pub fn starts_with(mut self, kind: WorkflowKind, step: &str, fact: &str) -> Self {
        self.first
            .insert(kind, (step.to_string(), fact.to_string()));
        self
    }

    /// Declares where a kind goes when one of its steps fails (see [`OnFailure`]).
    pub fn on_failure(mut self, kind: WorkflowKind, on_failure: OnFailure) -> Self {
        self.on_failure.insert(kind, on_failure);
        self
    }

    /// Declares what a kind reports when it ends, beyond the journal (see [`OnEnd`]).
    pub fn on_end(mut self, kind: WorkflowKind, on_end: OnEnd) -> Self {
        self.on_end.insert(kind, on_end);
        self
    }

    /// Looks a step up.
    pub fn step(&self, kind: WorkflowKind, name: &str) -> Option<Arc<dyn Step<C>>> {
        self.steps.get(&(kind, name.to_string())).cloned()
    }

    /// The first step and starting fact of a kind.
    pub fn first(&self, kind: WorkflowKind) -> Option<(&str, &str)> {
        self.first.get(&kind).map(|(s, f)| (s.as_str(), f.as_str()))
    }

    /// The names of a kind's steps, in no particular order.
    pub fn step_names(&self, kind: WorkflowKind) -> impl Iterator<Item = &str> {
        self.steps
            .keys()
            .filter(move |(k, _)| *k == kind)
            .map(|(_, name)| name.as_str())
    }
}

/// Errors that stop the engine from handling a message.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The kind has no steps in this build: dead-letter.
    #[error("this build has no {0} workflow")]
    UnknownKind(WorkflowKind),
    /// The step is unknown: dead-letter.
    #[error("the {kind} workflow has no step `{step}` in this build")]
    UnknownStep {
        /// Kind.
        kind: WorkflowKind,
        /// Step.
        step: String,
    },
    /// The next message could not be published: redeliver.
    #[error("could not publish the next message: {0}")]
    Publish(#[from] BusError),
    /// The end of the workflow could not be recorded in the status journal: redeliver.
    #[error("could not record the end of the workflow in the status journal: {0}")]
    Record(String),
}

impl EngineError {
    /// True if the message should be redelivered rather than dead-lettered.
    pub fn should_redeliver(&self) -> bool {
        matches!(self, Self::Publish(_) | Self::Record(_))
    }
}

/// Whether a message is delivered for the first time (Service Bus's `DeliveryCount` is 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The first delivery.
    First,
    /// A redelivery: the lock of an earlier delivery was lost or abandoned.
    Again,
    /// Not known: treated as a redelivery.
    Unknown,
}

impl Delivery {
    /// From Service Bus's delivery count.
    pub fn from_count(count: Option<u32>) -> Self {
        match count {
            Some(1) => Self::First,
            Some(_) => Self::Again,
            None => Self::Unknown,
        }
    }
}

/// What one step run did, for the invocation's log lines.
#[derive(Debug, Clone, PartialEq)]
pub struct StepReport {
    /// The envelope that ran.
    pub step: String,
    /// What happened.
    pub transition: Transition,
}

/// The default real-time budget of one step run.
pub const STEP_BUDGET: Duration = Duration::from_secs(40);

/// The default real-time bound on the hand-off after a step: publishing the next message and
/// recording the run (each bounded by it).
pub const HAND_OFF_BUDGET: Duration = Duration::from_secs(15);

/// How long one invocation may take, in real time (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvocationBudget {
    /// The step's run.
    pub step: Duration,
    /// Each hand-off call after it: the publish, the journal record.
    pub hand_off: Duration,
}

impl Default for InvocationBudget {
    fn default() -> Self {
        Self {
            step: STEP_BUDGET,
            hand_off: HAND_OFF_BUDGET,
        }
    }
}

/// Runs steps and publishes their outcomes.
pub struct Engine<C: Context> {
    ctx: C,
    registry: Arc<Registry<C>>,
    budget: InvocationBudget,
}

impl<C: Context> Clone for Engine<C> {
    fn clone(&self) -> Self {
        Self {
            ctx: self.ctx.clone(),
            registry: self.registry.clone(),
            budget: self.budget,
        }
    }
}

impl<C: Context> Engine<C> {
    /// An engine over these steps, with the default [`InvocationBudget`].
    pub fn new(ctx: C, registry: Registry<C>) -> Self {
        Self {
            ctx,
            registry: Arc::new(registry),
            budget: InvocationBudget::default(),
        }
    }

    /// The same engine with another invocation budget.
    #[must_use]
    pub fn with_budget(mut self, budget: InvocationBudget) -> Self {
        self.budget = budget;
        self
    }

    /// The invocation budget.
    pub fn budget(&self) -> InvocationBudget {
        self.budget
    }

    /// The shared context.
    pub fn ctx(&self) -> &C {
        &self.ctx
    }

    /// Starts a workflow: publishes its first step, in a `start {kind}` span whose trace the
    /// whole workflow then shares. The message id is deterministic, so starting the same
    /// workflow twice publishes one message.
    ///
    /// # Errors
    /// Unknown kind, or a failed publish.
    pub async fn start(
        &self,
        kind: WorkflowKind,
        subject: &str,
        generation: &str,
        payload: Map<String, Value>,
    ) -> Result<Envelope, EngineError> {
        let span = spans::start(kind, subject);
        async {
            let (step, fact) = self
                .registry
                .first(kind)
                .ok_or(EngineError::UnknownKind(kind))?;
            let timeout = self
                .registry
                .step(kind, step)
                .map_or(Duration::from_secs(1800), |s| s.timeout());
            let mut env = Envelope::start(
                kind,
                subject,
                generation,
                step,
                fact,
                self.ctx.clock().now(),
                timeout,
            );
            tracing::Span::current().record("workflow.id", env.workflow_id.as_str());
            env.payload = payload;
            self.publish(&mut env, None).await?;
            Ok(env)
        }
        .instrument(span)
        .await
    }

    /// Runs the step an envelope names and publishes what follows, in a `step {name}` span
    /// that continues the envelope's trace; records the step's duration and outcome.
    ///
    /// # Errors
    /// Unknown step (dead-letter) or a failed publish (redeliver; the step is idempotent).
    pub async fn run(&self, env: &Envelope) -> Result<StepReport, EngineError> {
        self.run_delivery(env, Delivery::Unknown).await
    }

    /// [`Self::run`] for a message whose delivery count is known: a first delivery cannot be
    /// a late redelivery, so it does not ask the journal whether its workflow ended (one
    /// status read saved per step; the read is what a redelivery pays).
    ///
    /// # Errors
    /// As [`Self::run`].
    pub async fn run_delivery(
        &self,
        env: &Envelope,
        delivery: Delivery,
    ) -> Result<StepReport, EngineError> {
        let span = spans::step(env);
        let started = Instant::now();
        let result = self.run_step(env, delivery).instrument(span.clone()).await;
        let outcome = match &result {
            Ok(report) => {
                let failure = match &report.transition {
                    Transition::Failed { reason } => Some(reason.as_str()),
                    _ => None,
                };
                spans::record_outcome(&span, report.transition.outcome(), failure);
                report.transition.outcome()
            }
            Err(e) => {
                spans::record_error(&span, e);
                "error"
            }
        };
        metrics::step_finished(env.kind, &env.step, outcome, started.elapsed());
        result
    }

    async fn run_step(
        &self,
        env: &Envelope,
        delivery: Delivery,
    ) -> Result<StepReport, EngineError> {
        let step =
            self.registry
                .step(env.kind, &env.step)
                .ok_or_else(|| EngineError::UnknownStep {
                    kind: env.kind,
                    step: env.step.clone(),
                })?;
        let ended = match delivery {
            Delivery::First => None,
            Delivery::Again | Delivery::Unknown => self.ended_at(env).await,
        };
        if let Some(ended) = ended {
            let reason = format!(
                "workflow {} ended at {}; this late delivery of step `{}` was not run",
                env.workflow_id,
                crate::clock::rfc3339(ended),
                env.step
            );
            tracing::info!(step = %env.step, "{reason}");
            return Ok(StepReport {
                step: env.step.clone(),
                transition: Transition::Skipped { reason },
            });
        }
        let started = self.ctx.clock().now();
        // Time spent queued is not the step's: its deadline moves out by as much.
        let moved = env.after_queueing(started);
        let env = moved.as_ref().unwrap_or(env);
        let mut failed = false;
        let mut throttled = false;
        let budget = self.budget.step;
        let ran = tokio::time::timeout(budget, step.run(&self.ctx, env))
            .await
            .unwrap_or(Err(StepError::Timeout { budget }));
        let (outcome, retry_reason) = match ran {
            Ok(outcome) => (outcome, "waiting"),
            Err(err) => {
                throttled = err.is_throttled();
                // Throttling is pacing, not trouble: the step only waits (see `error_policy`).
                // The message is built inside each macro, so only when a subscriber takes it.
                if throttled {
                    tracing::info!(
                        error.class = err.reason_class(),
                        "step {} attempt {} throttled; it waits: {}",
                        env.step,
                        env.attempt,
                        redact::secrets(&err.to_string())
                    );
                } else {
                    tracing::warn!(
                        error.class = err.reason_class(),
                        "step {} attempt {} failed: {}",
                        env.step,
                        env.attempt,
                        redact::secrets(&err.to_string())
                    );
                }
                failed = true;
                (
                    error_policy(&err, env.failures, self.ctx.retry()),
                    err.reason_class(),
                )
            }
        };
        // The step is finished when its outcome is known, before the hand-off: the next step
        // may start (and finish) while the hand-off is still returning, and the status fold
        // orders runs by when they finished.
        let finished = self.ctx.clock().now();
        let measures = outcome.measures.clone();
        let transition = self
            .apply(env, outcome, Progress { failed, throttled }, finished)
            .await?;
        let measures = if transition.is_final() {
            measures
        } else {
            journal::Measures::new()
        };
        if let Transition::Retrying { .. } = transition {
            metrics::step_retried(env.kind, &env.step, retry_reason);
        }
        if transition.is_final()
            && let Some(on_end) = self.registry.on_end.get(&env.kind)
        {
            on_end(env, &transition, finished);
        }
        let record = self.ctx.journal().try_record(StepRecord {
            workflow_id: env.workflow_id.clone(),
            kind: env.kind,
            subject: env.subject.clone(),
            step: env.step.clone(),
            attempt: env.attempt,
            hop: env.hop,
            started_at: started,
            finished_at: finished,
            transition: transition.clone(),
            measures,
        });
        // The next message is out. A run the workflow goes on from only loses this record
        // when the store does not answer (the next step's record supersedes it); the record
        // of a workflow's end has no successor, so without it the invocation fails and the
        // broker redelivers it (the step is idempotent) until the end is recorded.
        let recorded = match tokio::time::timeout(self.budget.hand_off, record).await {
            Ok(result) => result.map_err(|e| e.to_string()),
            Err(_) => Err(format!(
                "the status journal did not answer within {}s",
                self.budget.hand_off.as_secs_f64()
            )),
        };
        if let Err(why) = recorded {
            let terminal = matches!(
                transition,
                Transition::Done { .. } | Transition::Failed { .. }
            );
            tracing::warn!(step = %env.step, terminal, "the step's run was not recorded: {why}");
            if terminal {
                return Err(EngineError::Record(why));
            }
        }
        Ok(StepReport {
            step: env.step.clone(),
            transition,
        })
    }

    /// When the envelope's workflow ended, if the journal shows its end: a message that
    /// comes back after the end (a redelivery once its lock was lost, or a replay whose
    /// delivery count is unknown) must not act again — a drill's scratch namespace recreated after
    /// its cleanup would be left behind for good. A journal that cannot answer in time does
    /// not hold the step up: every step is idempotent, so it runs.
    async fn ended_at(&self, env: &Envelope) -> Option<time::OffsetDateTime> {
        let asked = self
            .ctx
            .journal()
            .workflow_ended(&env.subject, &env.workflow_id);
        match tokio::time::timeout(self.budget.hand_off, asked).await {
            Ok(Ok(ended)) => ended,
            Ok(Err(e)) => {
                tracing::debug!(step = %env.step, "could not ask whether the workflow ended: {e}");
                None
            }
            Err(_) => None,
        }
    }

    /// Carries out an outcome; a failure goes where the workflow's [`OnFailure`] says.
    async fn apply(
        &self,
        env: &Envelope,
        outcome: Outcome,
        progress: Progress,
        now: time::OffsetDateTime,
    ) -> Result<Transition, EngineError> {
        match self.carry_out(env, outcome, progress, now).await? {
            Transition::Failed { reason } => self.fail(env, reason, now).await,
            other => Ok(other),
        }
    }

    /// Ends the workflow as failed, unless it declared where to go on a failure of this step:
    /// then it goes on there, with the failure in its payload.
    async fn fail(
        &self,
        env: &Envelope,
        reason: String,
        now: time::OffsetDateTime,
    ) -> Result<Transition, EngineError> {
        let Some(on_failure) = self
            .registry
            .on_failure
            .get(&env.kind)
            .filter(|f| !f.ends_at.contains(&env.step.as_str()))
        else {
            return Ok(Transition::Failed { reason });
        };
        tracing::warn!(
            step = %env.step,
            "step {} failed; the {} workflow goes on with {}: {}",
            env.step,
            env.kind,
            on_failure.step,
            redact::secrets(&reason)
        );
        let mut facts = env.payload.clone();
        merge(&mut facts, (on_failure.facts)(env, &reason, now));
        self.go_on(env, on_failure.step, on_failure.fact, facts, now)
            .await
    }

    /// Publishes the workflow's next step.
    async fn go_on(
        &self,
        env: &Envelope,
        step: &str,
        fact: &str,
        facts: Map<String, Value>,
        now: time::OffsetDateTime,
    ) -> Result<Transition, EngineError> {
        let timeout = self
            .registry
            .step(env.kind, step)
            .map_or(Duration::from_secs(1800), |s| s.timeout());
        let mut next = env.next_step(step, fact, now, timeout);
        next.payload = facts;
        self.publish(&mut next, None).await?;
        Ok(Transition::Advanced {
            next: step.to_string(),
            fact: fact.to_string(),
        })
    }

    /// Carries out an outcome as the step gave it (or the error policy made it).
    async fn carry_out(
        &self,
        env: &Envelope,
        outcome: Outcome,
        progress: Progress,
        now: time::OffsetDateTime,
    ) -> Result<Transition, EngineError> {
        let mut facts = env.payload.clone();
        merge(&mut facts, outcome.facts);
        match outcome.action {
            Action::Next { step, fact } => self.go_on(env, &step, &fact, facts, now).await,
            Action::RetryAfter { after, why } => {
                // `after` may come from a server's Retry-After; a delay past the end of the
                // calendar is no retry at all.
                let Some(at) = retry_time(now, after) else {
                    let reason = format!(
                        "step `{}` asked to wait {}s before its next attempt, which is beyond any deadline; last reason: {why}",
                        env.step,
                        after.as_secs()
                    );
                    return Ok(Transition::Failed { reason });
                };
                // Throttling slows a step down but never fails it: the wait moves the deadline
                // out by as much, so the deadline measures the step's own lack of progress.
                let deadline = match env.step_deadline {
                    Some(d) if progress.throttled => Some(d.checked_add(span(after)).unwrap_or(d)),
                    other => other,
                };
                if !progress.throttled
                    && let Some(deadline) = deadline
                    && at > deadline
                {
                    let waited = now - env.step_started_at;
                    let reason = format!(
                        "step `{}` did not finish within its deadline ({} attempts over {}s); last reason: {why}",
                        env.step,
                        u64::from(env.attempt).saturating_add(1),
                        waited.whole_seconds()
                    );
                    return Ok(Transition::Failed { reason });
                }
                let mut again = env.retry();
                again.step_deadline = deadline;
                // The error backoff grows with failures in a row; a throttle is the server pacing
                // the service (its Retry-After is the wait), not a failure to back off from.
                again.failures = match (progress.failed, progress.throttled) {
                    (true, false) => env.failures.saturating_add(1),
                    (true, true) => env.failures,
                    (false, _) => 0,
                };
                again.payload = facts;
                self.publish(&mut again, Some(at)).await?;
                Ok(Transition::Retrying { at, why })
            }
            Action::Done { summary } => Ok(Transition::Done { summary }),
            Action::Failed { reason } => Ok(Transition::Failed { reason }),
        }
    }

    /// Sends `env` in a `send {queue}` span; the envelope and the message properties carry
    /// that span's trace context, so the step that receives it continues the same trace.
    async fn publish(
        &self,
        env: &mut Envelope,
        at: Option<time::OffsetDateTime>,
    ) -> Result<(), BusError> {
        env.due_at = Some(at.unwrap_or_else(|| self.ctx.clock().now()));
        let mut msg = OutgoingMessage::json(self.ctx.step_queue(), &env.message_id(), vec![]);
        msg.correlation_id = Some(env.workflow_id.clone());
        let span = crate::bus::send_span(&msg);
        env.trace = propagation::context_of(&span, &env.trace);
        msg.body = env.encode();
        msg.scheduled_enqueue_time = at;
        msg.label = Some(env.fact.clone());
        propagation::stamp(&mut msg.properties, &env.trace);
        msg.properties
            .insert("workflow-kind".into(), env.kind.as_str().into());
        msg.properties.insert("step".into(), env.step.clone());
        let limit = self.budget.hand_off;
        let queue = msg.queue.clone();
        let result = tokio::time::timeout(limit, self.ctx.publisher().send(msg))
            .instrument(span.clone())
            .await
            .unwrap_or_else(|_| {
                Err(BusError::Connection {
                    url: queue,
                    message: format!("no answer within {}s", limit.as_secs_f64()),
                })
            });
        crate::bus::record_send(&span, &result);
        result
    }
}

/// How a step run ended, for the retry decision.
#[derive(Debug, Clone, Copy)]
struct Progress {
    /// The step returned an error (the error backoff grows).
    failed: bool,
    /// The error was throttling (its wait does not count against the deadline).
    throttled: bool,
}

/// Adds `changes` to a payload; a null value removes its key.
fn merge(facts: &mut Map<String, Value>, changes: Map<String, Value>) {
    for (k, v) in changes {
        if v.is_null() {
            facts.remove(&k);
        } else {
            facts.insert(k, v);
        }
    }
}

fn span(wait: Duration) -> time::Duration {
    time::Duration::try_from(wait).unwrap_or(time::Duration::MAX)
}

/// When a retry `after` from `now` runs, or `None` when that is past the end of the calendar.
pub fn retry_time(now: time::OffsetDateTime, after: Duration) -> Option<time::OffsetDateTime> {
    now.checked_add(time::Duration::try_from(after).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::RecordingPublisher;
    use crate::clock::ManualClock;
    use journal::{Journal, JournalError};
    use std::sync::Mutex;

    /// The engine's part of a context, and nothing else.
    #[derive(Clone)]
    struct Ctx {
        clock: Arc<dyn Clock>,
        publisher: Arc<dyn Publisher>,
        journal: Arc<dyn Journal>,
        retry: RetryPolicy,
    }

    impl Ctx {
        fn with_defaults(clock: Arc<dyn Clock>, publisher: Arc<dyn Publisher>) -> Self {
            Self {
                clock,
                publisher,
                journal: Arc::new(MemoryJournal::default()),
                retry: RetryPolicy::default(),
            }
        }
    }

    impl Context for Ctx {
        type Journal = dyn Journal;
        fn clock(&self) -> &dyn Clock {
            &*self.clock
        }
        fn publisher(&self) -> &dyn Publisher {
            &*self.publisher
        }
        fn journal(&self) -> &dyn Journal {
            &*self.journal
        }
        fn step_queue(&self) -> &str {
            "workflow"
        }
        fn retry(&self) -> &RetryPolicy {
            &self.retry
        }
    }

    /// Keeps the records in memory; a workflow has ended once a final record is kept.
    #[derive(Default)]
    struct MemoryJournal(Mutex<Vec<StepRecord>>);

    impl MemoryJournal {
        fn records(&self) -> Vec<StepRecord> {
            self.0.lock().unwrap().clone()
        }
    }

    #[async_trait]
    impl Journal for MemoryJournal {
        async fn try_record(&self, record: StepRecord) -> Result<(), JournalError> {
            self.0.lock().unwrap().push(record);
            Ok(())
        }
        async fn workflow_ended(
            &self,
            _subject: &str,
            workflow_id: &str,
        ) -> Result<Option<time::OffsetDateTime>, JournalError> {
            Ok(self
                .records()
                .iter()
                .find(|r| r.workflow_id == workflow_id && r.transition.is_final())
                .map(|r| r.finished_at))
        }
    }
    use time::macros::datetime;

    struct Flaky;
    #[async_trait]
    impl Step<Ctx> for Flaky {
        fn name(&self) -> &'static str {
            "flaky"
        }
        fn timeout(&self) -> Duration {
            Duration::from_secs(60)
        }
        async fn run(&self, _ctx: &Ctx, env: &Envelope) -> Result<Outcome, StepError> {
            match env.attempt {
                0 => Err(StepError::Transient {
                    message: "busy".into(),
                    retry_after: Some(Duration::from_secs(30)),
                }),
                _ => Ok(Outcome::next("last", "FlakyDone").with("answer", 42)),
            }
        }
    }

    struct Last;
    #[async_trait]
    impl Step<Ctx> for Last {
        fn name(&self) -> &'static str {
            "last"
        }
        async fn run(&self, _ctx: &Ctx, env: &Envelope) -> Result<Outcome, StepError> {
            Ok(Outcome::done(format!("answer {}", env.payload["answer"])))
        }
    }

    fn engine() -> (
        Engine<Ctx>,
        Arc<RecordingPublisher>,
        Arc<ManualClock>,
        Arc<MemoryJournal>,
    ) {
        let publisher = Arc::new(RecordingPublisher::default());
        let clock = Arc::new(ManualClock::new(datetime!(2026-01-01 00:00 UTC)));
        let journal = Arc::new(MemoryJournal::default());
        let ctx = Ctx {
            journal: journal.clone(),
            retry: RetryPolicy {
                randomization: 0.0,
                ..RetryPolicy::default()
            },
            ..Ctx::with_defaults(clock.clone(), publisher.clone())
        };
        let registry = Registry::default()
            .add(WorkflowKind::Onboard, Flaky)
            .add(WorkflowKind::Onboard, Last)
            .starts_with(WorkflowKind::Onboard, "flaky", "ClusterCreated");
        (Engine::new(ctx, registry), publisher, clock, journal)
    }

    /// A status store that is down: every record fails.
    struct DownJournal;
    #[async_trait]
    impl Journal for DownJournal {
        async fn try_record(&self, _record: StepRecord) -> Result<(), JournalError> {
            Err(JournalError(
                "could not write clusters/x.log to blob: connection refused".into(),
            ))
        }
        async fn workflow_ended(
            &self,
            _subject: &str,
            _workflow_id: &str,
        ) -> Result<Option<time::OffsetDateTime>, JournalError> {
            Ok(None)
        }
    }

    #[tokio::test]
    async fn the_end_of_a_workflow_is_recorded_or_redelivered() {
        let (engine, publisher, _clock, _journal) = engine();
        let ctx = Ctx {
            journal: Arc::new(DownJournal),
            ..engine.ctx().clone()
        };
        let down = Engine::new(
            ctx,
            Registry::default()
                .add(WorkflowKind::Onboard, Flaky)
                .add(WorkflowKind::Onboard, Last)
                .starts_with(WorkflowKind::Onboard, "flaky", "ClusterCreated"),
        );
        let mut env = down
            .start(WorkflowKind::Onboard, "s", "g", Map::new())
            .await
            .unwrap();
        env.attempt = 1;
        // A step the workflow goes on from: the next message carries it; the record may wait.
        let report = down.run(&env).await.unwrap();
        assert!(matches!(report.transition, Transition::Advanced { .. }));
        let last: Envelope =
            serde_json::from_slice(&publisher.sent().last().unwrap().body).unwrap();
        // The end has no successor: unrecorded, the invocation fails and is redelivered.
        let err = down.run(&last).await.unwrap_err();
        assert!(err.should_redeliver(), "{err}");
        assert!(err.to_string().contains("connection refused"), "{err}");
    }

    /// Polls (waits without error) for five runs, then fails twice, then finishes.
    struct Poller;
    #[async_trait]
    impl Step<Ctx> for Poller {
        fn name(&self) -> &'static str {
            "poller"
        }
        fn timeout(&self) -> Duration {
            Duration::from_secs(24 * 3600)
        }
        async fn run(&self, _ctx: &Ctx, env: &Envelope) -> Result<Outcome, StepError> {
            match env.attempt {
                0..=4 => Ok(Outcome::retry_after(
                    Duration::from_secs(60),
                    "operation in flight",
                )),
                5 | 6 => Err(StepError::Transient {
                    message: "503".into(),
                    retry_after: None,
                }),
                _ => Ok(Outcome::done("finished")),
            }
        }
    }

    /// Starts `name` (the only step, with no retry jitter), runs it `runs` times and returns
    /// the engine, the last envelope, each retry's delay in seconds and `failures` after each.
    async fn retries_of(
        step: impl Step<Ctx>,
        name: &str,
        runs: usize,
    ) -> (Engine<Ctx>, Envelope, Vec<i64>, Vec<u32>) {
        let publisher = Arc::new(RecordingPublisher::default());
        let clock = Arc::new(ManualClock::new(datetime!(2026-01-01 00:00 UTC)));
        let ctx = Ctx {
            retry: RetryPolicy {
                randomization: 0.0,
                ..RetryPolicy::default()
            },
            ..Ctx::with_defaults(clock.clone(), publisher.clone())
        };
        let registry = Registry::default()
            .add(WorkflowKind::Onboard, step)
            .starts_with(WorkflowKind::Onboard, name, "Start");
        let engine = Engine::new(ctx, registry);
        let mut env = engine
            .start(WorkflowKind::Onboard, "/subscriptions/s", "g", Map::new())
            .await
            .unwrap();
        let (mut delays, mut failures) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            match engine.run(&env).await.unwrap().transition {
                Transition::Retrying { at, .. } => delays.push((at - clock.now()).whole_seconds()),
                other => panic!("{other:?}"),
            }
            env = Envelope::decode(&publisher.sent().last().unwrap().body).unwrap();
            failures.push(env.failures);
        }
        (engine, env, delays, failures)
    }

    #[tokio::test]
    async fn error_backoff_counts_failures_in_a_row_not_polls() {
        let (engine, env, delays, _) = retries_of(Poller, "poller", 7).await;
        // Five polls at the step's own interval, then the error backoff starts from its
        // initial delay (10 s, then 20 s) rather than from 10 s × 2^5.
        assert_eq!(delays, vec![60, 60, 60, 60, 60, 10, 20]);
        assert_eq!(env.failures, 2);
        assert_eq!(
            engine.run(&env).await.unwrap().transition,
            Transition::Done {
                summary: "finished".into()
            }
        );
    }

    /// Throttled three times (ARM's 429 with a 30 s Retry-After), then a 503 with no delay.
    struct ThrottledThrice;
    #[async_trait]
    impl Step<Ctx> for ThrottledThrice {
        fn name(&self) -> &'static str {
            "throttled"
        }
        fn timeout(&self) -> Duration {
            Duration::from_secs(3600)
        }
        async fn run(&self, _ctx: &Ctx, env: &Envelope) -> Result<Outcome, StepError> {
            let fault = |status: u16, code: &str, retry_after: Option<Duration>| {
                StepError::from(crate::arm::ArmError::Rejected(Box::new(
                    crate::arm::ArmFault {
                        status,
                        code: code.into(),
                        message: "slow down".into(),
                        retry_after,
                        request: "GET /subscriptions/s".into(),
                        request_ids: String::new(),
                    },
                )))
            };
            match env.attempt {
                0..=2 => Err(fault(
                    429,
                    "SubscriptionRequestsThrottled",
                    Some(Duration::from_secs(30)),
                )),
                3 => Err(fault(500, "InternalServerError", None)),
                _ => Ok(Outcome::done("finished")),
            }
        }
    }

    #[tokio::test]
    async fn a_throttle_paces_a_step_at_the_servers_delay_and_does_not_grow_its_backoff() {
        let (_, _, delays, failures) = retries_of(ThrottledThrice, "throttled", 4).await;
        // Each throttle waits the server's 30 s; the 503 after them backs off from the
        // policy's initial 10 s, not from 10 s x 2^3.
        assert_eq!(delays, vec![30, 30, 30, 10]);
        assert_eq!(failures, vec![0, 0, 0, 1]);
    }

    #[tokio::test]
    async fn a_redelivery_after_the_end_runs_nothing_and_a_first_delivery_is_not_asked() {
        let (engine, publisher, _clock, journal) = engine();
        let env = engine
            .start(WorkflowKind::Onboard, "/subscriptions/s", "g1", Map::new())
            .await
            .unwrap();
        engine.run(&env).await.unwrap();
        let retry = Envelope::decode(&publisher.sent()[1].body).unwrap();
        engine.run(&retry).await.unwrap();
        let last = Envelope::decode(&publisher.sent()[2].body).unwrap();
        assert!(matches!(
            engine.run(&last).await.unwrap().transition,
            Transition::Done { .. }
        ));
        let records = journal.records().len();
        // The first step comes back (its lock was lost): the workflow has ended.
        for delivery in [Delivery::Again, Delivery::Unknown] {
            let report = engine.run_delivery(&env, delivery).await.unwrap();
            assert!(
                matches!(&report.transition, Transition::Skipped { reason } if reason.contains("was not run")),
                "{delivery:?}: {report:?}"
            );
        }
        assert_eq!(journal.records().len(), records, "a skip records nothing");
        assert_eq!(publisher.sent().len(), 3, "and publishes nothing");
        // A first delivery is not checked (it cannot be late): the step runs.
        let report = engine.run_delivery(&env, Delivery::First).await.unwrap();
        assert!(
            matches!(report.transition, Transition::Retrying { .. }),
            "{report:?}"
        );
    }

    #[tokio::test]
    async fn retries_are_scheduled_messages_and_facts_flow_forward() {
        let (engine, publisher, _clock, journal) = engine();
        let env = engine
            .start(WorkflowKind::Onboard, "/subscriptions/s", "g1", Map::new())
            .await
            .unwrap();
        let report = engine.run(&env).await.unwrap();
        assert!(matches!(report.transition, Transition::Retrying { .. }));
        let sent = publisher.sent();
        assert_eq!(sent.len(), 2);
        assert_eq!(
            sent[1].scheduled_enqueue_time,
            Some(datetime!(2026-01-01 00:00:30 UTC))
        );
        assert_eq!(sent[1].message_id, format!("{}:flaky:1", env.workflow_id));

        let retry = Envelope::decode(&sent[1].body).unwrap();
        engine.run(&retry).await.unwrap();
        let next = Envelope::decode(&publisher.sent()[2].body).unwrap();
        assert_eq!(
            (next.step.as_str(), next.fact.as_str(), next.attempt),
            ("last", "FlakyDone", 0)
        );
        let report = engine.run(&next).await.unwrap();
        assert_eq!(
            report.transition,
            Transition::Done {
                summary: "answer 42".into()
            }
        );
        assert_eq!(journal.records().len(), 3);
    }

    /// A publisher whose send takes five (virtual) seconds, noting when each send began.
    struct SlowPublisher {
        clock: Arc<ManualClock>,
        began: std::sync::Mutex<Vec<time::OffsetDateTime>>,
    }

    #[async_trait]
    impl Publisher for SlowPublisher {
        async fn send(&self, _message: OutgoingMessage) -> Result<(), BusError> {
            self.began.lock().unwrap().push(self.clock.now());
            self.clock.advance(Duration::from_secs(5));
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

    #[tokio::test]
    async fn a_run_finishes_before_its_hand_off_so_the_next_step_starts_after_it() {
        let clock = Arc::new(ManualClock::new(datetime!(2026-01-01 00:00 UTC)));
        let publisher = Arc::new(SlowPublisher {
            clock: clock.clone(),
            began: std::sync::Mutex::default(),
        });
        let journal = Arc::new(MemoryJournal::default());
        let ctx = Ctx {
            journal: journal.clone(),
            ..Ctx::with_defaults(clock.clone(), publisher.clone())
        };
        let engine = Engine::new(ctx, Registry::default().add(WorkflowKind::Onboard, Flaky));
        let mut env = Envelope::start(
            WorkflowKind::Onboard,
            "/subscriptions/s",
            "g1",
            "flaky",
            "ClusterCreated",
            clock.now(),
            Duration::from_secs(60),
        );
        env.attempt = 1;
        engine.run(&env).await.unwrap();
        // The next step can start as soon as the hand-off begins; the record must not end
        // after that, or the status fold would put this run after the next one.
        let began = publisher.began.lock().unwrap()[0];
        let record = journal.records().pop().unwrap();
        assert!(matches!(record.transition, Transition::Advanced { .. }));
        assert!(
            record.finished_at <= began,
            "finished {} after the hand-off began {began}",
            record.finished_at
        );
        assert!(clock.now() > began, "the hand-off took time");
    }

    #[tokio::test]
    async fn a_wait_past_the_deadline_fails_with_the_reason() {
        // Every retry runs when it is due: the step itself makes no progress until its
        // deadline (60 s after it started).
        let (engine, publisher, clock, mut env) = busy_engine(Duration::ZERO);
        env.due_at = Some(clock.now());
        for _ in 0..100 {
            match engine.run(&env).await.unwrap().transition {
                Transition::Retrying { at, .. } => {
                    let now = clock.now();
                    clock.advance((at - now).unsigned_abs());
                    env = Envelope::decode(&publisher.sent().last().unwrap().body).unwrap();
                }
                Transition::Failed { reason } => {
                    assert!(
                        reason.contains("deadline") && reason.contains("busy"),
                        "{reason}"
                    );
                    assert!(
                        clock.now() <= datetime!(2026-01-01 00:01 UTC),
                        "failed at the deadline, not later: {}",
                        clock.now()
                    );
                    return;
                }
                other => panic!("{other:?}"),
            }
        }
        panic!("the step never reached its deadline");
    }

    #[tokio::test]
    async fn time_spent_queued_moves_the_deadline_instead_of_failing_the_step() {
        let (engine, publisher, clock, mut env) = busy_engine(Duration::ZERO);
        env.due_at = Some(clock.now());
        let deadline = env.step_deadline.unwrap();
        // The message waits two hours in the queue (a backlog) before a run starts.
        clock.advance(Duration::from_secs(2 * 3600));
        let report = engine.run(&env).await.unwrap();
        assert!(
            matches!(report.transition, Transition::Retrying { .. }),
            "{report:?}"
        );
        let again = Envelope::decode(&publisher.sent().last().unwrap().body).unwrap();
        assert_eq!(
            again.step_deadline,
            Some(deadline + time::Duration::hours(2)),
            "the deadline moved by the time queued"
        );
        assert_eq!(
            again.due_at,
            publisher.sent().last().unwrap().scheduled_enqueue_time,
            "the retry is due when it is scheduled"
        );
    }

    /// Always fails with a transient error, asking to wait `0` seconds.
    struct AlwaysBusy(Duration);
    #[async_trait]
    impl Step<Ctx> for AlwaysBusy {
        fn name(&self) -> &'static str {
            "busy"
        }
        fn timeout(&self) -> Duration {
            Duration::from_secs(60)
        }
        async fn run(&self, _ctx: &Ctx, _env: &Envelope) -> Result<Outcome, StepError> {
            Err(StepError::Transient {
                message: "busy".into(),
                retry_after: Some(self.0),
            })
        }
    }

    /// An engine whose one onboarding step is always busy for `delay`, and an envelope for it.
    fn busy_engine(
        delay: Duration,
    ) -> (
        Engine<Ctx>,
        Arc<RecordingPublisher>,
        Arc<ManualClock>,
        Envelope,
    ) {
        single_step_engine(AlwaysBusy(delay))
    }

    /// An engine whose only onboarding step is `step` (named `busy`), and an envelope for it.
    fn single_step_engine(
        step: impl Step<Ctx>,
    ) -> (
        Engine<Ctx>,
        Arc<RecordingPublisher>,
        Arc<ManualClock>,
        Envelope,
    ) {
        let publisher = Arc::new(RecordingPublisher::default());
        let clock = Arc::new(ManualClock::new(datetime!(2026-01-01 00:00 UTC)));
        let registry = Registry::default().add(WorkflowKind::Onboard, step);
        let engine = Engine::new(
            Ctx::with_defaults(clock.clone(), publisher.clone()),
            registry,
        );
        let env = Envelope::start(
            WorkflowKind::Onboard,
            "/subscriptions/s",
            "g1",
            "busy",
            "ClusterCreated",
            clock.now(),
            Duration::from_secs(60),
        );
        (engine, publisher, clock, env)
    }

    /// A step that ARM keeps throttling (429, or 503 with Retry-After), or fails with a 500.
    struct Throttled {
        status: u16,
    }
    #[async_trait]
    impl Step<Ctx> for Throttled {
        fn name(&self) -> &'static str {
            "busy"
        }
        fn timeout(&self) -> Duration {
            Duration::from_secs(60)
        }
        async fn run(&self, _ctx: &Ctx, _env: &Envelope) -> Result<Outcome, StepError> {
            Err(StepError::from(crate::arm::ArmError::Rejected(Box::new(
                crate::arm::ArmFault {
                    status: self.status,
                    code: match self.status {
                        429 => "TooManyRequests",
                        503 => "ServiceUnavailable",
                        _ => "InternalServerError",
                    }
                    .into(),
                    message: "busy".into(),
                    // A 500 says nothing about when to come back.
                    retry_after: (self.status != 500).then_some(Duration::from_secs(30)),
                    request: "PUT /x".into(),
                    request_ids: String::new(),
                },
            ))))
        }
    }

    #[test]
    fn a_throttled_kubeconfig_request_is_throttling_too() {
        let fetch = |status: u16| {
            StepError::from(crate::kube::KubeError::FetchKubeconfig {
                cluster: "/c".into(),
                operation: "listClusterUserCredential",
                source: crate::arm::ArmError::Rejected(Box::new(crate::arm::ArmFault {
                    status,
                    code: "TooManyRequests".into(),
                    message: "slow down".into(),
                    retry_after: Some(Duration::from_secs(20)),
                    request: "POST /c/listClusterUserCredential".into(),
                    request_ids: String::new(),
                })),
                hint: "",
            })
        };
        assert!(fetch(429).is_throttled());
        assert!(fetch(503).is_throttled());
        assert!(!fetch(403).is_throttled());
    }

    #[tokio::test]
    async fn throttling_moves_the_deadline_instead_of_failing_the_step() {
        for (status, throttled) in [(429, true), (503, true), (500, false)] {
            let (engine, publisher, clock, mut env) = single_step_engine(Throttled { status });
            // Ten throttled waits of 30 s each: five times the step's 60 s deadline.
            let mut failed_at_deadline = false;
            for round in 0..10 {
                let report = engine.run(&env).await.unwrap();
                match (&report.transition, throttled) {
                    (Transition::Retrying { .. }, _) => {}
                    (Transition::Failed { reason }, false) => {
                        assert!(reason.contains("deadline"), "{reason}");
                        assert!(round >= 1, "a 5xx may retry before its deadline");
                        failed_at_deadline = true;
                        break;
                    }
                    (other, _) => panic!("{status} round {round}: {other:?}"),
                }
                let next: Envelope =
                    serde_json::from_slice(&publisher.sent().last().unwrap().body).unwrap();
                if throttled {
                    assert!(
                        next.step_deadline.unwrap() > env.step_deadline.unwrap(),
                        "the wait moved the deadline"
                    );
                }
                clock.advance(Duration::from_secs(30));
                env = next;
            }
            assert_eq!(
                failed_at_deadline, !throttled,
                "{status}: only a step that is not throttled fails at its deadline"
            );
        }
    }

    #[tokio::test]
    async fn counters_at_their_maximum_do_not_overflow() {
        let (engine, publisher, clock, mut env) = busy_engine(Duration::ZERO);
        env.attempt = u32::MAX;
        env.failures = u32::MAX;
        env.hop = u32::MAX;
        // Past the deadline: the step fails, counting every attempt without wrapping.
        clock.advance(Duration::from_secs(3600));
        match engine.run(&env).await.unwrap().transition {
            Transition::Failed { reason } => {
                assert!(reason.contains("4294967296 attempts"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        // Within the deadline (another workflow: this one has ended): the retry keeps the
        // counters at their maximum.
        env.workflow_id.push_str("-again");
        env.step_deadline = Some(clock.now() + Duration::from_secs(3600));
        let report = engine.run(&env).await.unwrap();
        assert!(matches!(report.transition, Transition::Retrying { .. }));
        let again = publisher.sent().last().unwrap().body.clone();
        let again: Envelope = serde_json::from_slice(&again).unwrap();
        assert_eq!((again.attempt, again.failures), (u32::MAX, u32::MAX));
    }

    #[tokio::test]
    async fn a_retry_delay_past_the_calendar_fails_the_workflow() {
        let (engine, publisher, clock, mut env) = busy_engine(Duration::MAX);
        env.step_deadline = None;
        match engine.run(&env).await.unwrap().transition {
            Transition::Failed { reason } => {
                assert!(reason.contains("beyond any deadline"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        assert!(publisher.sent().is_empty());
        assert_eq!(retry_time(clock.now(), Duration::from_secs(u64::MAX)), None);
    }

    /// Fails with a transient error, then with a permanent one.
    struct Breaks;
    #[async_trait]
    impl Step<Ctx> for Breaks {
        fn name(&self) -> &'static str {
            "work"
        }
        async fn run(&self, _ctx: &Ctx, env: &Envelope) -> Result<Outcome, StepError> {
            Err(match env.attempt {
                0 => StepError::Transient {
                    message: "busy".into(),
                    retry_after: None,
                },
                _ => StepError::Permanent {
                    reason: "broken".into(),
                },
            })
        }
    }

    /// The failure path: fails too.
    struct Report;
    #[async_trait]
    impl Step<Ctx> for Report {
        fn name(&self) -> &'static str {
            "report"
        }
        async fn run(&self, _ctx: &Ctx, _env: &Envelope) -> Result<Outcome, StepError> {
            Err(StepError::Permanent {
                reason: "no report".into(),
            })
        }
    }

    #[tokio::test]
    async fn a_failure_goes_where_the_workflow_says_after_the_error_policy() {
        let publisher = Arc::new(RecordingPublisher::default());
        let clock = Arc::new(ManualClock::new(datetime!(2026-01-01 00:00 UTC)));
        let ctx = Ctx {
            retry: RetryPolicy {
                randomization: 0.0,
                ..RetryPolicy::default()
            },
            ..Ctx::with_defaults(clock.clone(), publisher.clone())
        };
        let on_failure = OnFailure {
            step: "report",
            fact: "Broke",
            ends_at: &["report"],
            facts: |env, reason, _at| {
                let mut facts = Map::new();
                facts.insert("why".into(), format!("{}: {reason}", env.step).into());
                facts
            },
        };
        let registry = Registry::default()
            .add(WorkflowKind::Restore, Breaks)
            .add(WorkflowKind::Restore, Report)
            .starts_with(WorkflowKind::Restore, "work", "Start")
            .on_failure(WorkflowKind::Restore, on_failure);
        let engine = Engine::new(ctx, registry);
        let env = engine
            .start(WorkflowKind::Restore, "/subscriptions/s", "g", Map::new())
            .await
            .unwrap();
        // A transient error is retried by the policy, with the error backoff, and counted.
        match engine.run(&env).await.unwrap().transition {
            Transition::Retrying { at, .. } => assert_eq!((at - clock.now()).whole_seconds(), 10),
            other => panic!("{other:?}"),
        }
        let retry = Envelope::decode(&publisher.sent().last().unwrap().body).unwrap();
        assert_eq!(retry.failures, 1);
        // A permanent one goes on to the declared step, with the failure in the payload.
        assert_eq!(
            engine.run(&retry).await.unwrap().transition,
            Transition::Advanced {
                next: "report".into(),
                fact: "Broke".into()
            }
        );
        let report = Envelope::decode(&publisher.sent().last().unwrap().body).unwrap();
        assert_eq!(report.step, "report");
        assert_eq!(report.payload["why"], "work: broken");
        // The failure path's own failure ends the workflow.
        match engine.run(&report).await.unwrap().transition {
            Transition::Failed { reason } => assert!(reason.contains("no report"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn unknown_steps_and_kinds_are_reported() {
        let (engine, _p, _c, _j) = engine();
        assert!(matches!(
            engine
                .start(WorkflowKind::Drill, "s", "g", Map::new())
                .await,
            Err(EngineError::UnknownKind(_))
        ));
        let mut env = engine
            .start(WorkflowKind::Onboard, "s", "g", Map::new())
            .await
            .unwrap();
        env.step = "nope".into();
        let err = engine.run(&env).await.unwrap_err();
        assert!(!err.should_redeliver());
    }
}

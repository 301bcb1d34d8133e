//! A record of every step transition, for the status view, the local timeline and tests.
//! The engine reports each step's outcome to a [`Journal`]; what the journal keeps and where
//! is the journal's business (the status store keeps it in Blob storage or memory and answers
//! status questions from it).

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::envelope::WorkflowKind;

/// What happened to one step run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// Moved on to `next`.
    Advanced {
        /// The next step.
        next: String,
        /// The fact published.
        fact: String,
    },
    /// Will run again at `at`.
    Retrying {
        /// When.
        at: OffsetDateTime,
        /// Why.
        why: String,
    },
    /// Finished.
    Done {
        /// What was achieved.
        summary: String,
    },
    /// Stopped; needs a person.
    Failed {
        /// What to do.
        reason: String,
    },
    /// Deliberately not run (never produced by a step: the drill schedule records a cluster
    /// it could not drill yet). Neither a success nor a failure.
    Skipped {
        /// Why, and when it can run.
        reason: String,
    },
    /// Never produced by a step: a fleet sweep found the subject needs work (its decayed
    /// protection) and started the workflow the record names to do it.
    Found {
        /// What was found.
        what: String,
    },
}

impl Transition {
    /// True for the end of a workflow (done or failed).
    pub fn is_final(&self) -> bool {
        matches!(self, Self::Done { .. } | Self::Failed { .. })
    }

    /// The short name of a transition, used on spans, metrics and in status.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::Advanced { .. } => "advanced",
            Self::Retrying { .. } => "retrying",
            Self::Done { .. } => "done",
            Self::Failed { .. } => "failed",
            Self::Skipped { .. } => "skipped",
            Self::Found { .. } => "found",
        }
    }
}

/// One journal entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepRecord {
    /// Workflow id.
    pub workflow_id: String,
    /// Workflow kind.
    pub kind: WorkflowKind,
    /// The resource the workflow is about.
    pub subject: String,
    /// The step that ran.
    pub step: String,
    /// Its attempt number.
    pub attempt: u32,
    /// The envelope's hop: tells a second visit of a step (attempt 0 again) from the first.
    pub hop: u32,
    /// When it started.
    pub started_at: OffsetDateTime,
    /// When it finished.
    pub finished_at: OffsetDateTime,
    /// What happened.
    pub transition: Transition,
    /// Figures the step reported with the workflow's end (a drill's score, RTO and RPO);
    /// empty for every other step.
    pub measures: Measures,
}

/// Named whole-number figures a workflow reports when it ends (`score`, `rtoSeconds`, ...).
pub type Measures = std::collections::BTreeMap<String, i64>;

/// Why the journal could not record a run or answer: the store's own error, as its text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct JournalError(pub String);

/// Receives the engine's step records, and answers the one question the engine asks of them:
/// whether a workflow has ended.
#[async_trait]
pub trait Journal: Send + Sync + 'static {
    /// Records one step run.
    ///
    /// # Errors
    /// The store could not be written.
    async fn try_record(&self, record: StepRecord) -> Result<(), JournalError>;

    /// When the workflow `workflow_id` about `subject` ended, if its end is recorded. The
    /// engine asks before a redelivered step: a message of an ended workflow is a late
    /// redelivery and must not act again.
    ///
    /// # Errors
    /// The store could not be read.
    async fn workflow_ended(
        &self,
        subject: &str,
        workflow_id: &str,
    ) -> Result<Option<OffsetDateTime>, JournalError>;
}

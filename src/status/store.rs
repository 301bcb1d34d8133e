//! The status store: where the engine's step records are kept ([`StatusStore`]: Blob storage
//! in [`super::blob`], or this process's memory, [`MemoryJournal`]), the claims that make
//! something happen at most once, and the status answers folded from the records. Every status
//! store is the engine's [`Journal`].

use std::sync::Mutex;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{ClusterStatus, DEFAULT_HISTORY_LIMIT, StatusError, StoreInfo, cluster_key};
use crate::engine::journal::{Journal, JournalError, StepRecord};

/// Keeps the engine's step records, answers status questions from them, and holds claims.
/// Every status store is the engine's [`Journal`] too (see the impl below).
#[async_trait]
pub trait StatusStore: Send + Sync + 'static {
    /// Records one step run.
    ///
    /// # Errors
    /// The store could not be written.
    async fn try_record(&self, record: StepRecord) -> Result<(), StatusError>;

    /// Records one step run; a failure to record is logged, never fails the step.
    async fn record(&self, record: StepRecord) {
        let (workflow, step) = (record.workflow_id.clone(), record.step.clone());
        if let Err(e) = self.try_record(record).await {
            tracing::warn!(
                workflow.id = %workflow,
                step.name = %step,
                "the step's status was not recorded: {e}"
            );
        }
    }

    /// Claims `key` for `holder` (a workflow id), for something that must happen at most
    /// once (a restore trigger has no idempotency key; a cluster is onboarded by one workflow
    /// at a time): [`Claim::Won`] for the first caller ever, [`Claim::Held`] with the first
    /// claim's time and holder for a rerun after a crash or a concurrent duplicate delivery.
    /// The claim is atomic (a create-only write).
    ///
    /// # Errors
    /// The store could not be read or written.
    async fn claim(
        &self,
        key: &str,
        at: OffsetDateTime,
        holder: &str,
    ) -> Result<Claim, StatusError>;

    /// Gives a claim back: the call it guarded was refused, so the next run may send it.
    ///
    /// # Errors
    /// The store could not be written.
    async fn release(&self, key: &str) -> Result<(), StatusError>;

    /// When the workflow `workflow_id` about `subject` ended, if its end is recorded (see
    /// [`ClusterStatus::ended`]). The engine asks before every step: a message of an ended
    /// workflow is a late redelivery and must not act again.
    ///
    /// # Errors
    /// The store could not be read.
    async fn workflow_ended(
        &self,
        subject: &str,
        workflow_id: &str,
    ) -> Result<Option<OffsetDateTime>, StatusError> {
        Ok(self
            .cluster_status(subject)
            .await?
            .and_then(|status| status.ended(workflow_id)))
    }

    /// Where the records are kept, for the header of status answers.
    fn store(&self) -> StoreInfo;

    /// The status of one cluster (matched case-insensitively), if anything was recorded.
    ///
    /// # Errors
    /// The store could not be read.
    async fn cluster_status(&self, cluster: &str) -> Result<Option<ClusterStatus>, StatusError>;

    /// The status of every cluster with records, in key order.
    ///
    /// # Errors
    /// The store could not be read.
    async fn fleet_status(&self) -> Result<Vec<ClusterStatus>, StatusError>;
}

/// The answer to [`StatusStore::claim`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Nobody claimed the key before: go ahead.
    Won,
    /// Claimed before, at `since`, by `holder` (empty for a claim written without one).
    Held {
        /// When the first claim was made.
        since: OffsetDateTime,
        /// Who made it.
        holder: String,
    },
}

/// Keeps records in memory (local runs and tests).
#[derive(Debug, Default)]
pub struct MemoryJournal {
    records: Mutex<Vec<StepRecord>>,
    /// Workflow id → when it ended (answers [`StatusStore::workflow_ended`] without a fold).
    ended: Mutex<std::collections::HashMap<String, OffsetDateTime>>,
    claims: Mutex<std::collections::HashMap<String, (OffsetDateTime, String)>>,
}

impl MemoryJournal {
    /// All records so far, oldest first.
    pub fn records(&self) -> Vec<StepRecord> {
        self.records.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

#[async_trait]
impl StatusStore for MemoryJournal {
    async fn try_record(&self, record: StepRecord) -> Result<(), StatusError> {
        if record.transition.is_final()
            && let Ok(mut ended) = self.ended.lock()
        {
            ended
                .entry(record.workflow_id.clone())
                .or_insert(record.finished_at);
        }
        if let Ok(mut r) = self.records.lock() {
            r.push(record);
        }
        Ok(())
    }

    async fn claim(
        &self,
        key: &str,
        at: OffsetDateTime,
        holder: &str,
    ) -> Result<Claim, StatusError> {
        let mut claims = self
            .claims
            .lock()
            .map_err(|_| StatusError::Config("the claim table is poisoned".into()))?;
        Ok(match claims.get(key) {
            Some((since, by)) => Claim::Held {
                since: *since,
                holder: by.clone(),
            },
            None => {
                claims.insert(key.to_string(), (at, holder.to_string()));
                Claim::Won
            }
        })
    }

    async fn release(&self, key: &str) -> Result<(), StatusError> {
        if let Ok(mut claims) = self.claims.lock() {
            claims.remove(key);
        }
        Ok(())
    }

    async fn workflow_ended(
        &self,
        _subject: &str,
        workflow_id: &str,
    ) -> Result<Option<OffsetDateTime>, StatusError> {
        Ok(self
            .ended
            .lock()
            .ok()
            .and_then(|ended| ended.get(workflow_id).copied()))
    }

    fn store(&self) -> StoreInfo {
        StoreInfo {
            kind: "memory",
            location: "this process".into(),
            note: Some(
                "status is kept in this process's memory only: it is lost on restart and not shared between instances; set BACKUP_PILOT_STATUS_BLOB_URL to keep it in Blob storage".into(),
            ),
        }
    }

    async fn cluster_status(&self, cluster: &str) -> Result<Option<ClusterStatus>, StatusError> {
        let key = cluster_key(cluster);
        let records = self.records();
        let ours = records.iter().filter(|r| cluster_key(&r.subject) == key);
        Ok(ClusterStatus::fold_all(ours, DEFAULT_HISTORY_LIMIT).pop())
    }

    async fn fleet_status(&self) -> Result<Vec<ClusterStatus>, StatusError> {
        Ok(ClusterStatus::fold_all(
            self.records().iter(),
            DEFAULT_HISTORY_LIMIT,
        ))
    }
}

impl From<StatusError> for JournalError {
    fn from(err: StatusError) -> Self {
        Self(err.to_string())
    }
}

#[async_trait]
impl<S: StatusStore + ?Sized> Journal for S {
    async fn try_record(&self, record: StepRecord) -> Result<(), JournalError> {
        Ok(StatusStore::try_record(self, record).await?)
    }

    async fn workflow_ended(
        &self,
        subject: &str,
        workflow_id: &str,
    ) -> Result<Option<OffsetDateTime>, JournalError> {
        Ok(StatusStore::workflow_ended(self, subject, workflow_id).await?)
    }
}

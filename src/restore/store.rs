//! Where evidence reports go and how the run history is read back: Blob storage (a JSON
//! document and a readable HTML page per run, `<kind>s/<subscription>/<group>/<cluster>/<date>/<id>`)
//! through the status store's [`BlobContainer`], or this process's memory for local runs.

use std::sync::Mutex;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::report::{EvidenceReport, ReportKind};
use super::verify::Verdict;
use crate::status::StatusError;
use crate::status::blob::BlobContainer;

/// The container drill and restore reports go to unless configured otherwise.
pub const DEFAULT_REPORT_CONTAINER: &str = "backup-pilot-reports";

/// Where a report was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredReport {
    /// The JSON document's URL (no credentials).
    pub json: String,
    /// The HTML page's URL (no credentials).
    pub html: String,
}

/// One run in the history, as the status view lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunRecord {
    /// Workflow id.
    pub id: String,
    /// Restore or drill.
    pub kind: ReportKind,
    /// pass / degraded / fail.
    pub verdict: Verdict,
    /// Velero's name for it.
    pub velero_phase: String,
    /// When the report was written.
    #[serde(with = "time::serde::rfc3339")]
    pub generated_at: OffsetDateTime,
    /// Request → verified, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rto_seconds: Option<u64>,
    /// The score out of 100 (reports written before scoring have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<u8>,
    /// The restored recovery point's age at the request, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpo_seconds: Option<i64>,
    /// The recovery point restored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_point_id: Option<String>,
    /// Why the run stopped early, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aborted: Option<String>,
    /// Scratch namespaces cleanup left behind.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub left_behind: Vec<String>,
    /// The report.
    pub report: StoredReport,
    /// The report's content hash ([`super::evidence`]), when it carries one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_sha256: Option<String>,
}

impl RunRecord {
    fn of(report: &EvidenceReport, stored: StoredReport) -> Self {
        Self {
            id: report.id.clone(),
            kind: report.kind,
            verdict: report.verdict,
            velero_phase: report.velero_phase.clone(),
            generated_at: report.generated_at,
            rto_seconds: report.rto_seconds,
            score: report.score.as_ref().map(|s| s.total),
            rpo_seconds: report.recovery_point_age_seconds,
            recovery_point_id: report.recovery_point.as_ref().map(|p| p.id.clone()),
            aborted: report.aborted.clone(),
            left_behind: report
                .cleanup
                .as_ref()
                .map(|c| c.left_behind.clone())
                .unwrap_or_default(),
            report: stored,
            content_sha256: report.evidence.as_ref().map(|e| e.content_sha256.clone()),
        }
    }
}

/// Why a report could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// Blob storage failed.
    #[error(transparent)]
    Store(#[from] StatusError),
    /// A stored report is not a report.
    #[error("the stored report {name} is unreadable: {message}")]
    ReadReport {
        /// Blob name.
        name: String,
        /// What is wrong.
        message: String,
    },
}

impl ReportError {
    /// Whether trying again later can help (storage trouble can; a broken document cannot).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Store(StatusError::Read { .. } | StatusError::Write { .. })
        )
    }
}

/// Keeps evidence reports.
#[async_trait]
pub trait ReportStore: Send + Sync + 'static {
    /// Where reports go (no credentials).
    fn location(&self) -> String;

    /// Writes a report (JSON and HTML); writing the same report again replaces it.
    async fn put(&self, report: &EvidenceReport) -> Result<StoredReport, ReportError>;

    /// The newest `limit` runs of `kind` for `cluster`, newest first.
    async fn history(
        &self,
        kind: ReportKind,
        cluster: &str,
        limit: usize,
    ) -> Result<Vec<RunRecord>, ReportError>;

    /// Every stored report document of `kind` for `cluster`, as stored (for
    /// [`super::evidence::verify_chain`]).
    async fn documents(
        &self,
        kind: ReportKind,
        cluster: &str,
    ) -> Result<Vec<serde_json::Value>, ReportError>;
}

/// Reports in Blob storage.
#[derive(Debug)]
pub struct BlobReportStore {
    blobs: BlobContainer,
}

impl BlobReportStore {
    /// A store writing into `blobs`.
    pub fn new(blobs: BlobContainer) -> Self {
        Self { blobs }
    }
}

#[async_trait]
impl ReportStore for BlobReportStore {
    fn location(&self) -> String {
        self.blobs.location()
    }

    async fn put(&self, report: &EvidenceReport) -> Result<StoredReport, ReportError> {
        let report = report.clone().scrubbed();
        let stem = report.blob_stem();
        let json = format!("{stem}.json");
        let html = format!("{stem}.html");
        self.blobs
            .put(
                &html,
                report.to_html().into_bytes(),
                "text/html; charset=utf-8",
            )
            .await?;
        // The JSON goes last: history lists JSON documents, so a listed run has its page.
        self.blobs
            .put(&json, report.to_json(), "application/json")
            .await?;
        Ok(StoredReport {
            json: self.blobs.blob_url(&json),
            html: self.blobs.blob_url(&html),
        })
    }

    async fn history(
        &self,
        kind: ReportKind,
        cluster: &str,
        limit: usize,
    ) -> Result<Vec<RunRecord>, ReportError> {
        let prefix = EvidenceReport::cluster_prefix(kind, cluster);
        let mut names: Vec<String> = self
            .blobs
            .list(&prefix, "the run history")
            .await?
            .into_iter()
            .filter(|n| n.ends_with(".json"))
            .collect();
        // Names carry the date after the prefix, so the newest days sort last.
        names.sort();
        names.reverse();
        let mut runs = Vec::new();
        for name in names.into_iter().take(limit.saturating_mul(2).max(limit)) {
            let Some((bytes, _)) = self.blobs.read(&name).await? else {
                continue;
            };
            let report: EvidenceReport =
                serde_json::from_slice(&bytes).map_err(|e| ReportError::ReadReport {
                    name: name.clone(),
                    message: e.to_string(),
                })?;
            let stem = name.trim_end_matches(".json");
            let stored = StoredReport {
                json: self.blobs.blob_url(&name),
                html: self.blobs.blob_url(&format!("{stem}.html")),
            };
            runs.push(RunRecord::of(&report, stored));
        }
        runs.sort_by_key(|r| std::cmp::Reverse(r.generated_at));
        runs.truncate(limit);
        Ok(runs)
    }

    async fn documents(
        &self,
        kind: ReportKind,
        cluster: &str,
    ) -> Result<Vec<serde_json::Value>, ReportError> {
        let prefix = EvidenceReport::cluster_prefix(kind, cluster);
        let mut documents = Vec::new();
        for name in self.blobs.list(&prefix, "the reports").await? {
            if !name.ends_with(".json") {
                continue;
            }
            let Some((bytes, _)) = self.blobs.read(&name).await? else {
                continue;
            };
            documents.push(serde_json::from_slice(&bytes).map_err(|e| {
                ReportError::ReadReport {
                    name: name.clone(),
                    message: e.to_string(),
                }
            })?);
        }
        Ok(documents)
    }
}

/// Reports in this process's memory (local runs and tests).
#[derive(Debug, Default)]
pub struct MemoryReportStore {
    reports: Mutex<Vec<EvidenceReport>>,
}

impl MemoryReportStore {
    /// Every report kept, oldest first.
    pub fn reports(&self) -> Vec<EvidenceReport> {
        self.reports.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

fn memory_location(stem: &str) -> StoredReport {
    StoredReport {
        json: format!("memory:{stem}.json"),
        html: format!("memory:{stem}.html"),
    }
}

#[async_trait]
impl ReportStore for MemoryReportStore {
    fn location(&self) -> String {
        "this process's memory (set BACKUP_PILOT_STATUS_BLOB_URL to keep reports)".into()
    }

    async fn put(&self, report: &EvidenceReport) -> Result<StoredReport, ReportError> {
        let report = report.clone().scrubbed();
        let stored = memory_location(&report.blob_stem());
        if let Ok(mut all) = self.reports.lock() {
            all.retain(|r| !(r.id == report.id && r.kind == report.kind));
            all.push(report);
        }
        Ok(stored)
    }

    async fn history(
        &self,
        kind: ReportKind,
        cluster: &str,
        limit: usize,
    ) -> Result<Vec<RunRecord>, ReportError> {
        let prefix = EvidenceReport::cluster_prefix(kind, cluster);
        let mut runs: Vec<RunRecord> = self
            .reports()
            .iter()
            .filter(|r| r.kind == kind && r.blob_stem().starts_with(&prefix))
            .map(|r| RunRecord::of(r, memory_location(&r.blob_stem())))
            .collect();
        runs.sort_by_key(|r| std::cmp::Reverse(r.generated_at));
        runs.truncate(limit);
        Ok(runs)
    }

    async fn documents(
        &self,
        kind: ReportKind,
        cluster: &str,
    ) -> Result<Vec<serde_json::Value>, ReportError> {
        let prefix = EvidenceReport::cluster_prefix(kind, cluster);
        Ok(self
            .reports()
            .iter()
            .filter(|r| r.kind == kind && r.blob_stem().starts_with(&prefix))
            .filter_map(|r| serde_json::to_value(r).ok())
            .collect())
    }
}

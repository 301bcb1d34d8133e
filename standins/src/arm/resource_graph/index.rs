//! The index and its lag. Resource Graph answers from an index that trails ARM; the stand-in
//! keeps one snapshot of [`Documents`] and rebuilds it when a query (without a skip token)
//! finds it at least `lag` old on the stand-in's clock, so an answer shows the world as it was
//! at most `lag` ago (a lag of zero rebuilds on every query). Every snapshot has a generation;
//! the last few are kept so that the pages of one query come from the same snapshot.
//!
//! A caller under least-privilege enforcement reads a *view* of a snapshot: its rows trimmed
//! to what it may read, computed when its query starts (a request without a skip token) and
//! kept with the snapshot, keyed by caller and query fingerprint, so the later pages of that
//! query cut the same rows even if grants change in between; a view is dropped with its
//! snapshot.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use time::OffsetDateTime;

use super::super::state::World;
use super::rows::Documents;

/// Snapshots kept for skip tokens.
const KEPT: usize = 16;

/// The world's documents as of one instant.
#[derive(Debug)]
pub struct Snapshot {
    /// Its generation (skip tokens name it).
    pub generation: u64,
    /// When it was taken.
    pub taken_at: OffsetDateTime,
    /// The documents.
    pub documents: Documents,
}

/// The current snapshot and a few older ones.
#[derive(Debug, Default)]
pub struct Index {
    kept: VecDeque<Arc<Snapshot>>,
    next_generation: u64,
    /// Trimmed rows by (generation, caller, query fingerprint).
    views: HashMap<(u64, String, String), Arc<Vec<Value>>>,
}

impl Index {
    /// The snapshot a new query reads: the current one, or a new one taken from `world` if
    /// the current one is `lag` old (or there is none).
    pub fn fresh(&mut self, world: &World, now: OffsetDateTime, lag: Duration) -> Arc<Snapshot> {
        let lag = time::Duration::try_from(lag).unwrap_or(time::Duration::MAX);
        if let Some(current) = self.kept.back()
            && now - current.taken_at < lag
            && now >= current.taken_at
        {
            return current.clone();
        }
        self.next_generation += 1;
        let snapshot = Arc::new(Snapshot {
            generation: self.next_generation,
            taken_at: now,
            documents: Documents::capture(world),
        });
        self.kept.push_back(snapshot.clone());
        while self.kept.len() > KEPT {
            self.kept.pop_front();
        }
        let kept: Vec<u64> = self.kept.iter().map(|s| s.generation).collect();
        self.views.retain(|(g, _, _), _| kept.contains(g));
        snapshot
    }

    /// `caller`'s view of snapshot `generation` for the query with `fingerprint`: the kept
    /// one when `reuse` (a later page) and there is one, else `compute`d and kept.
    pub fn view(
        &mut self,
        generation: u64,
        caller: &str,
        fingerprint: &str,
        reuse: bool,
        compute: impl FnOnce() -> Vec<Value>,
    ) -> Arc<Vec<Value>> {
        let key = (
            generation,
            caller.to_ascii_lowercase(),
            fingerprint.to_string(),
        );
        if reuse && let Some(rows) = self.views.get(&key) {
            return rows.clone();
        }
        let rows = Arc::new(compute());
        self.views.insert(key, rows.clone());
        rows
    }

    /// A kept snapshot by generation.
    pub fn generation(&self, generation: u64) -> Option<Arc<Snapshot>> {
        self.kept
            .iter()
            .find(|s| s.generation == generation)
            .cloned()
    }

    /// Forgets every snapshot (the next query rebuilds).
    pub fn clear(&mut self) {
        self.kept.clear();
        self.views.clear();
    }
}

//! The index and its lag. Resource Graph answers from an index that trails ARM; the stand-in
//! keeps one snapshot of [`Documents`] and rebuilds it when a query (without a skip token)
//! finds it at least `lag` old on the stand-in's clock, so an answer shows the world as it was
//! at most `lag` ago (a lag of zero rebuilds on every query). Every snapshot has a generation;
//! the last few are kept so that the pages of one query come from the same snapshot.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

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
        snapshot
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
    }
}

//! Where a `local` run keeps what outlives its processes (Azurite's blobs, the drill reports):
//! a fresh folder per run under `.local/runs/`, so a second run never reads or fights over the
//! first one's status, or `.local/state/` when `--keep-state` asks to carry state over. Old
//! run folders are pruned, keeping the newest few; a run holds a lock on its folder's
//! [`IN_USE_FILE`] while it lives, so runs side by side in one directory (the tests do that)
//! never prune each other's folders.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use time::OffsetDateTime;

/// Run folders kept under `.local/runs/` (the current one included).
pub const KEEP_RUNS: usize = 5;

/// The file in a run folder that its run keeps locked while it lives.
pub const IN_USE_FILE: &str = ".in-use";

/// A run's state folder.
#[derive(Debug, Clone)]
pub struct RunState {
    root: PathBuf,
    kept: bool,
    /// The lock on [`IN_USE_FILE`]; the OS releases it when the process ends, however it ends.
    _in_use: Option<Arc<File>>,
}

impl PartialEq for RunState {
    fn eq(&self, other: &Self) -> bool {
        (&self.root, self.kept) == (&other.root, other.kept)
    }
}

impl Eq for RunState {}

impl RunState {
    /// Creates this run's folder under `app_dir/.local`: `runs/<UTC time>-<pid>-<random>`
    /// (fresh), or
    /// `state` when `keep_state` is set (reused as it is). Prunes older run folders.
    ///
    /// # Errors
    /// Creating the folder.
    pub fn create(app_dir: &Path, keep_state: bool, now: OffsetDateTime) -> std::io::Result<Self> {
        let local = app_dir.join(".local");
        if keep_state {
            let root = local.join("state");
            std::fs::create_dir_all(&root)?;
            return Ok(Self {
                root,
                kept: true,
                _in_use: None,
            });
        }
        let runs = local.join("runs");
        std::fs::create_dir_all(&runs)?;
        let stamp = format!(
            "{:04}{:02}{:02}-{:02}{:02}{:02}-{}-{}",
            now.year(),
            u8::from(now.month()),
            now.day(),
            now.hour(),
            now.minute(),
            now.second(),
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..6]
        );
        let root = runs.join(stamp);
        std::fs::create_dir_all(&root)?;
        let in_use = File::create(root.join(IN_USE_FILE))?;
        in_use.lock()?;
        prune(&runs, &root, KEEP_RUNS);
        Ok(Self {
            root,
            kept: false,
            _in_use: Some(Arc::new(in_use)),
        })
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// True when state carries over from earlier runs (`--keep-state`).
    pub fn is_kept(&self) -> bool {
        self.kept
    }

    /// Azurite's data folder.
    pub fn azurite_data(&self) -> PathBuf {
        self.root.join("azurite-data")
    }

    /// Where drill reports are copied.
    pub fn reports(&self) -> PathBuf {
        self.root.join("reports")
    }
}

/// Removes the oldest run folders in `runs` so that at most `keep` remain, never `current` nor
/// one another live run holds (see [`in_use`]). Folders are named by start time, so name order
/// is age order. Best effort: a folder that cannot be removed is left alone.
fn prune(runs: &Path, current: &Path, keep: usize) {
    let Ok(entries) = std::fs::read_dir(runs) else {
        return;
    };
    let mut folders: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir() && p != current)
        .collect();
    folders.retain(|p| !in_use(p));
    folders.sort();
    let excess = (folders.len() + 1).saturating_sub(keep);
    for old in folders.into_iter().take(excess) {
        let _ = std::fs::remove_dir_all(old);
    }
}

/// Whether a live run holds `folder`'s [`IN_USE_FILE`] (folders of older versions have none).
fn in_use(folder: &Path) -> bool {
    let Ok(file) = File::open(folder.join(IN_USE_FILE)) else {
        return false;
    };
    matches!(file.try_lock(), Err(std::fs::TryLockError::WouldBlock))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn every_run_gets_a_fresh_folder_and_old_ones_are_pruned() {
        let app = tempfile::tempdir().unwrap();
        let mut roots = Vec::new();
        for minute in 0..7u8 {
            let now = datetime!(2026-12-05 10:00 UTC) + time::Duration::minutes(minute.into());
            let state = RunState::create(app.path(), false, now).unwrap();
            assert!(!state.is_kept());
            std::fs::create_dir_all(state.azurite_data()).unwrap();
            roots.push(state.root().to_path_buf());
        }
        let left: Vec<_> = std::fs::read_dir(app.path().join(".local/runs"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(left.len(), KEEP_RUNS);
        assert!(roots[6].is_dir() && roots[2].is_dir(), "the newest stay");
        assert!(!roots[0].exists() && !roots[1].exists(), "the oldest go");
        assert_ne!(roots[5], roots[6]);
    }

    #[test]
    fn a_folder_another_live_run_holds_is_never_pruned() {
        let app = tempfile::tempdir().unwrap();
        let at =
            |minute: u8| datetime!(2026-12-05 10:00 UTC) + time::Duration::minutes(minute.into());
        let live = RunState::create(app.path(), false, at(0)).unwrap();
        let ended = RunState::create(app.path(), false, at(1)).unwrap();
        let ended_root = ended.root().to_path_buf();
        drop(ended);
        for minute in 2..10 {
            drop(RunState::create(app.path(), false, at(minute)).unwrap());
        }
        assert!(live.root().is_dir(), "the oldest folder is still in use");
        assert!(!ended_root.exists(), "an ended run's folder goes");
        drop(live);
        let newest = RunState::create(app.path(), false, at(10)).unwrap();
        let left = std::fs::read_dir(app.path().join(".local/runs"))
            .unwrap()
            .count();
        assert_eq!(left, KEEP_RUNS, "once it ended, it is pruned too");
        assert!(newest.root().is_dir());
    }

    #[test]
    fn keep_state_reuses_one_folder() {
        let app = tempfile::tempdir().unwrap();
        let now = datetime!(2026-12-05 10:00 UTC);
        let first = RunState::create(app.path(), true, now).unwrap();
        std::fs::create_dir_all(first.reports()).unwrap();
        std::fs::write(first.reports().join("r.json"), "{}").unwrap();
        let second = RunState::create(app.path(), true, now).unwrap();
        assert!(second.is_kept());
        assert_eq!(first, second);
        assert!(second.reports().join("r.json").is_file());
    }
}

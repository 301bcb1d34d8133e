//! The workflows: which steps each kind runs, one file per step.

use crate::engine::Registry;

/// Every workflow this build runs.
pub fn registry() -> Registry {
    Registry::default()
}

//! Local copy of the ARM stand-in's journal record (`backup_pilot::local::arm::journal::
//! ArmRequestRecord`, branch `armstandin`), field for field, until that branch merges; then
//! the `pub use` in `mod.rs` switches to the real type and this file goes.

/// One ARM exchange as the stand-in journals it.
#[derive(Clone, Debug)]
pub struct ArmRequestRecord {
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub request_body: Option<serde_json::Value>,
    pub status: u16,
    pub response_body: Option<serde_json::Value>,
    pub at: time::OffsetDateTime,
}

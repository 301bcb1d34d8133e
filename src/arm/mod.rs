//! Azure Resource Manager: the API versions the service uses (one table, nowhere else), the
//! client (auth, request ids, the one retry policy), long-running operations carried across
//! invocations, and ARM errors with what to do about them.
pub mod client;
pub mod error;
pub mod held_line;
pub mod lro;
pub mod provider_throttle;
pub mod quota_gauge;
pub mod settled;
pub mod versions;

pub use client::{ARM_CALL_TIMEOUT, ArmClient, ArmOptions, ArmResponse, Polled, QuickRetry};
pub use error::{ArmError, ArmFault, CodeClass};
pub use held_line::{Precedence, with_precedence};
pub use lro::{FinalState, OperationKind, PendingOperation};

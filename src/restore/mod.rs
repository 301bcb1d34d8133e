//! Restores and restore drills: the request and its schema ([`request`]), who may restore
//! where ([`authorize`]), choosing a recovery point ([`recovery_point`]), the ARM restore body
//! ([`body`]), restore jobs ([`job`]), scoring what came back ([`verify`], [`score`]), a
//! drill's application probes ([`probe`]), drill planning
//! ([`drill`]), the evidence report ([`report`]), where reports are kept ([`store`]) and the
//! settings ([`settings`]). The workflow steps that use them live in the `workflow` module.

pub mod alert;
pub mod authorize;
pub mod body;
pub mod drill;
pub mod evidence;
pub mod job;
pub mod probe;
pub mod recovery_point;
pub mod report;
pub mod request;
pub mod score;
pub mod settings;
pub mod store;
pub mod verify;

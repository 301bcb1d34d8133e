//! Restores and restore drills, the parts that do not talk to anything: the request and its
//! schema ([`request`]), who may restore where ([`authorize`]), choosing a recovery point
//! ([`recovery_point`]), the ARM restore body ([`body`]), restore jobs ([`job`]), scoring what
//! came back ([`verify`]), drill planning ([`drill`]) and the evidence report ([`report`]).

pub mod authorize;
pub mod body;
pub mod drill;
pub mod job;
pub mod recovery_point;
pub mod report;
pub mod request;
pub mod verify;

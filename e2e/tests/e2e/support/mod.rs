//! Test-support code shared by the integration tests (`mod support;`): the OpenAPI
//! conformance checker, from its own crate.
#![allow(unused_imports)]

pub use backup_pilot_conformance as openapi;

//! Test-support code shared by the integration tests (`mod support;`). Each test binary
//! compiles its own copy and uses a different subset, hence the `dead_code` and
//! `unused_imports` allowances.
#![allow(dead_code, unused_imports)]

pub mod openapi;

//! Onboarding's pure read-and-decide rules: what a resource ARM returned means for the chain.
//! No I/O here; the steps read, these decide, and table tests pin each rule.

pub mod binding;
pub mod eligibility;
pub mod extension;
pub mod instance;
pub mod vault;

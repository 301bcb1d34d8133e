//! The end-to-end tests, as one test binary: each file is a module (as it was a binary of
//! its own, with its own doc comment), sharing the harness in [`common`] and the OpenAPI
//! checker in [`support`]. One binary links once instead of once per file. Tests that change
//! process-wide state stay binaries of their own: `dependency_down` and `publisher_request`
//! set the managed-identity environment variables, `onboarding_trace` installs the global
//! meter provider and counts every ARM call the process makes.

mod common;
mod support;

mod arm_client;
mod arm_standin;
mod cli_operator;
mod cross_subscription;
mod drill;
mod fake_clusters;
mod fleet_scan;
mod fuzz_edges;
mod handler_samples;
mod host_schemas;
mod hostile_input;
mod infra_api_versions;
mod kube_side;
mod kubectl_conformance;
mod least_privilege;
mod local_host;
mod local_run;
mod onboarding;
mod openapi_conformance;
mod operator;
mod python_sdk_conformance;
mod resource_graph_standin;
mod restore;
mod restore_standin;
mod status_api;
mod status_store;
mod throttled_fleet;

/// The benches' fleet simulation, shared with the fleet tests.
#[path = "../../benches/support/fleet_sim.rs"]
mod fleet_sim;

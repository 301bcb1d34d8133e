//! Local stand-ins for everything the service talks to, so it runs and is tested with no
//! Azure account: the Functions host, Service Bus, the managed-identity token endpoint, the
//! Kubernetes API server.
pub mod kube_api;
pub mod token;

//! The estate: sweeps of the whole fleet with Azure Resource Graph — clusters that exist but
//! are not protected yet, and protected clusters whose protection decayed — turned into
//! ordinary onboarding and repair workflows.

pub mod graph;
pub mod queries;
pub mod render;
pub mod scan;
pub mod sweep;

//! Azure Resource Manager: the API versions the service uses (one table, nowhere else).
pub mod versions;

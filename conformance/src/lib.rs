//! Conformance checking of ARM traffic against the shelf's Azure OpenAPI specs
//! (`<shared>/azure-specs`): spec loading with cross-file `$ref`s, operation
//! matching, schema validation with autorest discriminators, and the journal report.
//! Test-support only: the specs exist on dev/CI machines, not in the repository.
//!
//! - [`load`]: [`SpecSet::load`], the files, operations and polymorphism index.
//! - [`matching`]: [`SpecSet::find_operation`] (path templates, methods, api-versions and
//!   the documented [`VERSION_ALIASES`]).
//! - [`schema`]: validation of one JSON value against one schema.
//! - [`validate`]: [`SpecSet::validate_request`] / [`SpecSet::validate_response`].
//! - [`journal`]: [`check_journal`] over recorded ARM exchanges, and its [`Report`].
//! - [`examples`]: requests and responses rebuilt from the specs' own example files.

pub mod examples;
pub mod journal;
pub mod load;
pub mod matching;
pub mod schema;
pub mod validate;

use std::fmt;
use std::path::PathBuf;
use std::sync::OnceLock;

pub use backup_pilot_standins::arm::journal::ArmRequestRecord;
pub use journal::{Finding, RecordedExchange, Report, Side, Skipped, check_journal};
pub use load::{LoadError, SpecSet};
pub use matching::{MatchedOperation, VERSION_ALIASES, VersionAlias};
pub use validate::Checked;

/// Something the specs reject: a request ARM would refuse or a response that breaks the
/// published contract.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The matched operation, when one matched.
    pub operation_id: Option<String>,
    /// A JSON pointer into the body (`""` is the whole body), or `path`, `query`, `body`,
    /// `status`.
    pub location: String,
    pub message: String,
}

/// Something tolerated but worth knowing: a read-only property sent (ARM ignores it), an
/// extensible-enum value outside the documented list in a response, an error status an
/// operation does not declare, an undeclared query parameter on a next link, the use of a
/// documented api-version alias.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    pub operation_id: Option<String>,
    pub location: String,
    pub message: String,
}

impl Violation {
    pub(crate) fn new(
        operation_id: Option<&str>,
        location: impl Into<String>,
        message: impl Into<String>,
    ) -> Violation {
        Violation {
            operation_id: operation_id.map(str::to_string),
            location: location.into(),
            message: message.into(),
        }
    }
}

impl Note {
    pub(crate) fn new(
        operation_id: Option<&str>,
        location: impl Into<String>,
        message: impl Into<String>,
    ) -> Note {
        Note {
            operation_id: operation_id.map(str::to_string),
            location: location.into(),
            message: message.into(),
        }
    }
}

fn write_finding(
    f: &mut fmt::Formatter<'_>,
    operation_id: &Option<String>,
    location: &str,
    message: &str,
) -> fmt::Result {
    let operation = operation_id.as_deref().unwrap_or("(no operation)");
    let location = if location.is_empty() {
        "<body root>"
    } else {
        location
    };
    write!(f, "{operation} at {location}: {message}")
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_finding(f, &self.operation_id, &self.location, &self.message)
    }
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_finding(f, &self.operation_id, &self.location, &self.message)
    }
}

/// The specs of the shared shelf (`shelf` as found by the tests' `common::shared_dir()`),
/// loaded once per test binary.
///
/// # Errors
/// `shared specs not found at …` when the shelf or its `azure-specs` folder is absent (the
/// caller prints it as the one allowed skip). A shelf that is present but does not load is
/// a test failure (panic), never a skip.
pub fn shared_specs(shelf: Option<PathBuf>) -> Result<&'static SpecSet, String> {
    static SPECS: OnceLock<Option<SpecSet>> = OnceLock::new();
    let specs_dir = shelf.as_ref().map(|dir| dir.join("azure-specs"));
    let loaded = SPECS.get_or_init(|| {
        let shelf = shelf
            .as_deref()
            .filter(|dir| dir.join("azure-specs").is_dir())?;
        match SpecSet::load(shelf) {
            Ok(specs) => Some(specs),
            Err(error) => panic!("the specs at {} do not load: {error}", shelf.display()),
        }
    });
    loaded.as_ref().ok_or_else(|| match specs_dir {
        Some(dir) => format!("shared specs not found at {}", dir.display()),
        None => {
            "shared specs not found: no shared reference shelf ($BACKUP_PILOT_SHARED or ../shared)"
                .to_string()
        }
    })
}

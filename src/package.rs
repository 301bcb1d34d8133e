//! Staging the Functions app folder. The host finds functions only in folders beside
//! `host.json`, so a deployable app is: `host.json`, the handler binary, and
//! `functions/<name>/function.json` copied to `<name>/function.json` at the root. The
//! definitions are compiled into the binary, so a staged app can never disagree with the
//! handler that serves it.

use std::fs;
use std::path::{Path, PathBuf};

/// `host.json`, as in the repository.
pub const HOST_JSON: &str = include_str!("../host.json");

/// Every function's `function.json`, as in the repository's `functions/` folder.
pub const FUNCTIONS: [(&str, &str); 6] = [
    (
        "cluster-events",
        include_str!("../functions/cluster-events/function.json"),
    ),
    (
        "workflow",
        include_str!("../functions/workflow/function.json"),
    ),
    (
        "restore-requests",
        include_str!("../functions/restore-requests/function.json"),
    ),
    (
        "restore-drills",
        include_str!("../functions/restore-drills/function.json"),
    ),
    ("status", include_str!("../functions/status/function.json")),
    (
        "fleet-scan",
        include_str!("../functions/fleet-scan/function.json"),
    ),
];

/// What went wrong while staging.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    /// A file could not be written or copied.
    #[error("could not write {path}")]
    Write {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// host.json does not name the handler.
    #[error("host.json has no customHandler.description.defaultExecutablePath")]
    NoExecutable,
    /// The output folder is not empty and not a previous staging.
    #[error("{0} exists and is not a staged app folder (no host.json); choose an empty folder")]
    NotAnAppFolder(PathBuf),
}

/// The executable name host.json asks the host to start.
///
/// # Errors
/// [`PackageError::NoExecutable`].
pub fn executable_name() -> Result<String, PackageError> {
    let host: serde_json::Value =
        serde_json::from_str(HOST_JSON).map_err(|_| PackageError::NoExecutable)?;
    host.pointer("/customHandler/description/defaultExecutablePath")
        .and_then(serde_json::Value::as_str)
        .map(str::to_string)
        .ok_or(PackageError::NoExecutable)
}

/// Stages the app into `out`: host.json, the binary at `binary`, one folder per function.
/// Re-running over a previous staging replaces it.
///
/// # Errors
/// See [`PackageError`].
pub fn stage(out: &Path, binary: &Path) -> Result<Vec<PathBuf>, PackageError> {
    if out.exists()
        && fs::read_dir(out)
            .map(|mut d| d.next().is_some())
            .unwrap_or(false)
        && !out.join("host.json").exists()
    {
        return Err(PackageError::NotAnAppFolder(out.to_path_buf()));
    }
    let write = |path: PathBuf, contents: &str| -> Result<PathBuf, PackageError> {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|source| PackageError::Write {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        fs::write(&path, contents).map_err(|source| PackageError::Write {
            path: path.clone(),
            source,
        })?;
        Ok(path)
    };
    let mut written = vec![write(out.join("host.json"), HOST_JSON)?];
    for (name, json) in FUNCTIONS {
        written.push(write(out.join(name).join("function.json"), json)?);
    }
    let exe = out.join(executable_name()?);
    // Copy beside, then rename: replacing a binary that is running (a previous staging being
    // served) fails with "text file busy" if written in place.
    let partial = out.join(format!(".{}.partial", executable_name()?));
    fs::copy(binary, &partial).map_err(|source| PackageError::Write {
        path: partial.clone(),
        source,
    })?;
    fs::rename(&partial, &exe).map_err(|source| PackageError::Write {
        path: exe.clone(),
        source,
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        fs::set_permissions(&exe, fs::Permissions::from_mode(0o755)).map_err(|source| {
            PackageError::Write {
                path: exe.clone(),
                source,
            }
        })?;
    }
    written.push(exe);
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_functions_match_the_handler_routes() {
        let names: Vec<&str> = FUNCTIONS.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, crate::handler::names::ALL);
        assert_eq!(executable_name().unwrap(), "backup-pilot");
    }

    #[test]
    fn refuses_to_stage_over_an_unrelated_folder() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("notes.txt"), "mine").unwrap();
        assert!(matches!(
            stage(dir.path(), Path::new("/bin/true")),
            Err(PackageError::NotAnAppFolder(_))
        ));
    }
}

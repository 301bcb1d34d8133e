//! The product's binary as it is deployed: `package` stages host.json, the binary and each
//! `functions/<name>/` at one root (the host finds function folders only beside host.json),
//! and the binary carries none of the stand-ins.

use std::path::Path;

use backup_pilot::handler::names;
use serde_json::Value;

fn read(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_staged_app_has_every_function_beside_host_json() {
    let out = tempfile::tempdir().unwrap();
    let app = out.path().join("app");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_backup-pilot"))
        .args(["package", "--out"])
        .arg(&app)
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(
        read(&app.join("host.json")),
        read(&repo().join("host.json"))
    );
    for name in names::ALL {
        let staged = read(&app.join(name).join("function.json"));
        assert_eq!(
            staged,
            read(&repo().join("functions").join(name).join("function.json")),
            "{name}"
        );
    }
    let exe = app.join("backup-pilot");
    let version = std::process::Command::new(&exe)
        .arg("--version")
        .output()
        .unwrap();
    assert!(version.status.success());
    assert!(String::from_utf8_lossy(&version.stdout).contains(env!("CARGO_PKG_VERSION")));
    // Re-staging over the same folder works; staging over an unrelated folder does not.
    let again = std::process::Command::new(&exe)
        .args(["package", "--out"])
        .arg(&app)
        .status()
        .unwrap();
    assert!(again.success());
    let unrelated = out.path().join("mine");
    std::fs::create_dir_all(&unrelated).unwrap();
    std::fs::write(unrelated.join("x"), "x").unwrap();
    let refused = std::process::Command::new(&exe)
        .args(["package", "--out"])
        .arg(&unrelated)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not a staged app folder"));
}

#[test]
fn the_deployed_binary_has_no_local_command_and_no_stand_in_code() {
    let local = std::process::Command::new(env!("CARGO_BIN_EXE_backup-pilot"))
        .arg("local")
        .output()
        .unwrap();
    assert!(!local.status.success());
    assert!(
        String::from_utf8_lossy(&local.stderr).contains("unrecognized subcommand 'local'"),
        "{}",
        String::from_utf8_lossy(&local.stderr)
    );
    // Every crate's source paths end up in its panic locations; none of the stand-ins' do.
    let binary = std::fs::read(env!("CARGO_BIN_EXE_backup-pilot")).unwrap();
    for marker in ["standins/src/", "backup_pilot_standins", "local/src/run.rs"] {
        assert!(
            !binary.windows(marker.len()).any(|w| w == marker.as_bytes()),
            "the product binary contains {marker}"
        );
    }
    assert!(
        binary.windows(12).any(|w| w == b"src/engine/m"),
        "the check looks for source paths that are there"
    );
}

//! The product's binary as it is deployed: `package` stages host.json, the binary and each
//! `functions/<name>/` at one root (the host finds function folders only beside host.json),
//! and the binary carries none of the stand-ins; and the product crate's top-level modules
//! keep the layering `src/lib.rs` describes (no import cycles).

use std::collections::{BTreeMap, BTreeSet};
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

/// The top-level modules of the product crate (`src/*`) and, for each, the other top-level
/// modules its code names through `crate::…` (test-only items, those under `#[cfg(test)]`,
/// are left out: tests may reach up).
fn module_imports() -> BTreeMap<String, BTreeSet<String>> {
    let src = repo().join("src");
    let mut files = Vec::new();
    let mut folders = vec![src.clone()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    let mut imports: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let relative = file.strip_prefix(&src).unwrap();
        let first = relative.components().next().unwrap().as_os_str();
        let top = first.to_str().unwrap().trim_end_matches(".rs").to_string();
        if top == "lib" || top == "main" {
            continue;
        }
        let text = without_test_items(&std::fs::read_to_string(&file).unwrap());
        let named = imports.entry(top.clone()).or_default();
        for other in crate_paths(&text) {
            if other != top {
                named.insert(other);
            }
        }
    }
    imports
}

/// `text` without the items under `#[cfg(test)]` (the attribute up to the end of the item's
/// braces, or its `;`).
fn without_test_items(text: &str) -> String {
    const ATTRIBUTE: &str = "#[cfg(test)]";
    let mut kept = String::new();
    let mut rest = text;
    while let Some(at) = rest.find(ATTRIBUTE) {
        kept.push_str(&rest[..at]);
        let item = &rest[at + ATTRIBUTE.len()..];
        let end = match (item.find('{'), item.find(';')) {
            (Some(open), semicolon) if semicolon.is_none_or(|s| open < s) => {
                let mut depth = 0usize;
                let mut end = item.len();
                for (i, c) in item[open..].char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                end = open + i + 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                end
            }
            (_, Some(semicolon)) => semicolon + 1,
            _ => item.len(),
        };
        rest = &item[end..];
    }
    kept.push_str(rest);
    kept
}

/// The first segment after every `crate::` in `text`, and each first segment of a
/// `crate::{a, b::c}` group.
fn crate_paths(text: &str) -> Vec<String> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut found = Vec::new();
    for (at, _) in text.match_indices("crate::") {
        let after = &text[at + "crate::".len()..];
        if let Some(group) = after.strip_prefix('{') {
            let mut depth = 0usize;
            let mut element_start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => element_start = true,
                    c if element_start && !c.is_whitespace() => {
                        element_start = false;
                        let name = ident(&group[i..]);
                        if !name.is_empty() && name != "self" {
                            found.push(name);
                        }
                    }
                    _ => {}
                }
            }
        } else {
            let name = ident(after);
            if !name.is_empty() {
                found.push(name);
            }
        }
    }
    found
}

/// A cycle through `start`, as the modules along it (`start` first and last), if any.
fn cycle_through(start: &str, imports: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    let mut path = vec![start.to_string()];
    let mut seen = BTreeSet::new();
    fn walk(
        at: &str,
        start: &str,
        imports: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        for next in imports.get(at).into_iter().flatten() {
            if next == start {
                path.push(next.clone());
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if walk(next, start, imports, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    walk(start, start, imports, &mut path, &mut seen).then_some(path)
}

/// The layering the crate docs (`src/lib.rs`) describe holds: no top-level module of the
/// product imports, through others, one that imports it.
#[test]
fn the_top_level_modules_import_each_other_without_cycles() {
    let imports = module_imports();
    assert!(
        imports.contains_key("engine") && imports["workflow"].contains("engine"),
        "the check reads the modules' imports: {imports:?}"
    );
    let cycles: BTreeSet<String> = imports
        .keys()
        .filter_map(|module| cycle_through(module, &imports))
        .map(|cycle| cycle.join(" -> "))
        .collect();
    assert!(
        cycles.is_empty(),
        "top-level modules import each other in a cycle:\n{}",
        cycles.into_iter().collect::<Vec<_>>().join("\n")
    );
    // The checker finds a cycle where there is one.
    let mut looped = imports.clone();
    looped
        .entry("arm".into())
        .or_default()
        .insert("workflow".into());
    assert!(cycle_through("arm", &looped).is_some());
}

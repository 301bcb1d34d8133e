//! Keeps the API versions in three places equal: the guide's table, the service's own table
//! (`backup_pilot::arm::versions`) and every `resource 'Type@version'` in `infra/**/*.bicep`.
//! Editing a version in one place only fails here. The guide is read from
//! `$BACKUP_PILOT_SHARED/seed/000_ed652550a3cbd988.txt` (default `<repo>/../shared`).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use backup_pilot::arm::versions::{ALL, GUIDE_TABLE};

const GUIDE_FILE: &str = "seed/000_ed652550a3cbd988.txt";
const GUIDE_HEADING: &str = "### ARM Template API Versions";

/// One `resource` declaration found in a Bicep file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Declaration {
    file: String,
    line: usize,
    resource_type: String,
    api_version: String,
}

fn repo_root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn shared_dir() -> PathBuf {
    std::env::var_os("BACKUP_PILOT_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("..").join("shared"))
}

/// Every `*.bicep` file under `dir`, sorted.
fn bicep_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let entries = fs::read_dir(&current)
            .unwrap_or_else(|e| panic!("cannot list {}: {e}", current.display()));
        for entry in entries {
            let path = entry
                .unwrap_or_else(|e| panic!("cannot read an entry of {}: {e}", current.display()))
                .path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|ext| ext == "bicep") {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// The `resource` declarations of one Bicep source. A declaration without `@version` (a nested
/// child resource inheriting its parent's version) is an error: every version must be visible.
fn declarations(file: &str, source: &str) -> Result<Vec<Declaration>, String> {
    let mut found = Vec::new();
    let mut in_multiline_string = false;
    for (index, raw) in source.lines().enumerate() {
        let line = raw.trim_start();
        if raw.matches("'''").count() % 2 == 1 {
            in_multiline_string = !in_multiline_string;
            continue;
        }
        if in_multiline_string || line.starts_with("//") {
            continue;
        }
        let Some(rest) = line.strip_prefix("resource ") else {
            continue;
        };
        let at = |what: &str| format!("{file}:{}: {what}: {raw}", index + 1);
        let rest = rest.trim_start();
        let name_end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .ok_or_else(|| at("a resource declaration without a type"))?;
        let quoted = rest[name_end..].trim_start();
        let quoted = quoted
            .strip_prefix('\'')
            .ok_or_else(|| at("the resource type is not a quoted 'Type@version'"))?;
        let literal = &quoted[..quoted
            .find('\'')
            .ok_or_else(|| at("an unterminated resource type"))?];
        let (resource_type, api_version) = literal.split_once('@').ok_or_else(|| {
            at("a resource without @version (declare child resources at top level with their full type)")
        })?;
        found.push(Declaration {
            file: file.to_string(),
            line: index + 1,
            resource_type: resource_type.to_string(),
            api_version: api_version.to_string(),
        });
    }
    Ok(found)
}

fn infra_declarations() -> Vec<Declaration> {
    let infra = repo_root().join("infra");
    let files = bicep_files(&infra);
    assert!(
        !files.is_empty(),
        "no .bicep files under {}",
        infra.display()
    );
    let mut all = Vec::new();
    for path in files {
        let source = fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let shown = path
            .strip_prefix(repo_root())
            .unwrap_or(&path)
            .display()
            .to_string();
        match declarations(&shown, &source) {
            Ok(found) => all.extend(found),
            Err(problem) => panic!("{problem}"),
        }
    }
    all
}

/// The version a resource type must use: its own entry in the service's table, else the entry
/// of its nearest listed parent (`.../storageAccounts/blobServices` follows `storageAccounts`).
fn required_version(resource_type: &str) -> Option<(&'static str, &'static str)> {
    let lower = resource_type.to_ascii_lowercase();
    ALL.iter()
        .filter(|(listed, _)| {
            let listed = listed.to_ascii_lowercase();
            lower == listed || lower.starts_with(&format!("{listed}/"))
        })
        .max_by_key(|(listed, _)| listed.len())
        .map(|(listed, version)| (*listed, *version))
}

/// The guide's "ARM Template API Versions" table: resource type → version.
fn guide_table(guide: &str) -> Result<BTreeMap<String, String>, String> {
    let mut lines = guide.lines().skip_while(|l| l.trim() != GUIDE_HEADING);
    if lines.next().is_none() {
        return Err(format!("the guide has no '{GUIDE_HEADING}' section"));
    }
    let rows: Vec<&str> = lines
        .skip_while(|l| !l.trim_start().starts_with('|'))
        .take_while(|l| l.trim_start().starts_with('|'))
        .collect();
    let mut table = BTreeMap::new();
    for row in rows.iter().skip(2) {
        let cells: Vec<&str> = row
            .trim()
            .trim_matches('|')
            .split('|')
            .map(str::trim)
            .collect();
        let (Some(resource_type), Some(version)) = (cells.first(), cells.get(1)) else {
            return Err(format!("a table row without two cells: {row}"));
        };
        let well_formed = version.len() == 10
            && version.chars().enumerate().all(|(i, c)| {
                if i == 4 || i == 7 {
                    c == '-'
                } else {
                    c.is_ascii_digit()
                }
            });
        if !well_formed {
            return Err(format!(
                "'{version}' is not a yyyy-mm-dd API version in: {row}"
            ));
        }
        table.insert(resource_type.to_string(), version.to_string());
    }
    if table.is_empty() {
        return Err(format!("the '{GUIDE_HEADING}' section has no table rows"));
    }
    Ok(table)
}

#[test]
fn every_guide_type_is_deployed_at_the_table_version() {
    let found = infra_declarations();
    for (resource_type, version) in GUIDE_TABLE {
        let uses: Vec<&Declaration> = found
            .iter()
            .filter(|d| d.resource_type.eq_ignore_ascii_case(resource_type))
            .collect();
        assert!(
            !uses.is_empty(),
            "infra/ declares no {resource_type}; the guide's table expects it at {version}"
        );
        for d in uses {
            assert_eq!(
                d.api_version, version,
                "{}:{} declares {}@{}, but the guide's table (src/arm/versions.rs) says {version}",
                d.file, d.line, d.resource_type, d.api_version
            );
        }
    }
}

#[test]
fn types_the_service_also_calls_match_its_table_and_children_follow_parents() {
    let found = infra_declarations();
    let mut checked = 0;
    for d in &found {
        if let Some((listed, version)) = required_version(&d.resource_type) {
            checked += 1;
            assert_eq!(
                d.api_version, version,
                "{}:{} declares {}@{}; src/arm/versions.rs calls {listed} at {version}, so infra/ must too",
                d.file, d.line, d.resource_type, d.api_version
            );
        }
    }
    assert!(
        checked >= GUIDE_TABLE.len(),
        "only {checked} declarations were compared with the table"
    );
}

#[test]
fn the_service_table_equals_the_guide_table() {
    let path = shared_dir().join(GUIDE_FILE);
    let Ok(guide) = fs::read_to_string(&path) else {
        println!(
            "skipped: the guide is not at {} (set BACKUP_PILOT_SHARED); the infra/ half still ran",
            path.display()
        );
        return;
    };
    let from_guide = guide_table(&guide).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let from_service: BTreeMap<String, String> = GUIDE_TABLE
        .iter()
        .map(|(t, v)| ((*t).to_string(), (*v).to_string()))
        .collect();
    assert_eq!(
        from_service,
        from_guide,
        "src/arm/versions.rs GUIDE_TABLE differs from the guide's table in {}",
        path.display()
    );
}

#[test]
fn the_scanner_reads_declarations_and_rejects_hidden_versions() {
    let source = "\
// resource commented 'Not.This/type@1999-01-01' = {
resource acct 'Microsoft.Storage/storageAccounts@2023-01-01' = {
  name: 'x'
}
  resource existingVault 'Microsoft.DataProtection/backupVaults@2023-11-01' existing = {
var text = '''
resource inText 'Not.This/either@1999-01-01' = {
'''
resource loop 'Microsoft.ServiceBus/namespaces/queues@2024-01-01' = [for q in queues: {
";
    let found = declarations("sample.bicep", source).expect("the sample parses");
    let seen: Vec<(&str, &str, usize)> = found
        .iter()
        .map(|d| (d.resource_type.as_str(), d.api_version.as_str(), d.line))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("Microsoft.Storage/storageAccounts", "2023-01-01", 2),
            ("Microsoft.DataProtection/backupVaults", "2023-11-01", 5),
            ("Microsoft.ServiceBus/namespaces/queues", "2024-01-01", 9),
        ]
    );

    let nested = "resource acct 'Microsoft.Storage/storageAccounts@2023-01-01' = {\n  resource blobs 'blobServices' = {\n";
    let err = declarations("nested.bicep", nested).expect_err("a hidden version is rejected");
    assert!(err.contains("nested.bicep:2"), "{err}");

    assert_eq!(
        required_version("Microsoft.Storage/storageAccounts/blobServices/containers"),
        Some(("Microsoft.Storage/storageAccounts", "2023-01-01"))
    );
    assert_eq!(required_version("Microsoft.Web/sites"), None);
}

#[test]
fn the_guide_parser_reads_the_table_and_rejects_bad_rows() {
    let guide = "\
# Guide
### ARM Template API Versions

| Resource | API Version | Notes |
|----------|-------------|-------|
| Microsoft.A/b | 2024-01-01 | one |
| Microsoft.C/d | 2023-11-01 | two |

### Next
| not | part | of it |
";
    let table = guide_table(guide).expect("the sample table parses");
    assert_eq!(
        table.into_iter().collect::<Vec<_>>(),
        vec![
            ("Microsoft.A/b".to_string(), "2024-01-01".to_string()),
            ("Microsoft.C/d".to_string(), "2023-11-01".to_string()),
        ]
    );
    let bad = guide.replace("2023-11-01", "latest");
    assert!(guide_table(&bad).is_err());
    assert!(guide_table("no heading here").is_err());
}

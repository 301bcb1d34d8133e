//! Requests and responses rebuilt from the specs' own example files (`**/examples/**.json`).
//! Each example is attributed to the operation whose `x-ms-examples` lists it: the same file,
//! or the same relative file in another api-version folder of that provider; an example no
//! spec lists needs an explicit, reasoned attribution from the caller.

use std::fs;
use std::path::Path;

use serde_json::Value;

use super::load::{ParamIn, Segment, SpecSet};

/// How an example was tied to its operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attribution {
    /// Listed in the operation's `x-ms-examples`.
    Listed,
    /// The operation lists the same relative file in its own version folder; the example
    /// comes from the `example_folder_version` folder.
    OtherVersionFolder { example_folder_version: String },
    /// Named by the caller (no loaded spec lists it).
    Explicit { reason: &'static str },
}

/// An example no loaded spec lists, attributed by hand.
#[derive(Clone, Copy, Debug)]
pub struct ExplicitAttribution {
    /// Path relative to `azure-specs/specification`.
    pub file: &'static str,
    pub operation_id: &'static str,
    pub reason: &'static str,
}

/// One example as a request and its responses.
#[derive(Clone, Debug)]
pub struct ExampleCase {
    /// Path relative to `azure-specs/specification`.
    pub file: String,
    pub operation_id: String,
    pub method: String,
    pub path: String,
    /// The declared query parameters the example gives, `api-version` included.
    pub query: Vec<(String, String)>,
    pub body: Option<Value>,
    pub responses: Vec<(u16, Option<Value>)>,
    /// The example's `api-version`.
    pub example_api_version: Option<String>,
    /// `info.version` of the operation's spec.
    pub spec_version: String,
    pub attribution: Attribution,
}

/// Every example found, as cases, plus what could not be turned into one.
#[derive(Debug, Default)]
pub struct ExampleSet {
    pub cases: Vec<ExampleCase>,
    /// Example files no operation lists and no explicit attribution names.
    pub unattributed: Vec<String>,
    /// `(file, why)` for examples that are unreadable or lack a path parameter.
    pub problems: Vec<(String, String)>,
}

/// Builds the cases for every example file below the specification directory.
pub fn example_cases(specs: &SpecSet, explicit: &[ExplicitAttribution]) -> ExampleSet {
    let mut set = ExampleSet::default();
    let mut files = Vec::new();
    if let Err(why) = find_example_files(specs.spec_dir(), specs.spec_dir(), false, &mut files) {
        set.problems
            .push((specs.spec_dir().display().to_string(), why));
    }
    files.sort();
    for file in files {
        let attributed = attributions(specs, &file, explicit);
        if attributed.is_empty() {
            set.unattributed.push(file);
            continue;
        }
        let example = match fs::read_to_string(specs.spec_dir().join(&file))
            .map_err(|e| e.to_string())
            .and_then(|text| serde_json::from_str::<Value>(&text).map_err(|e| e.to_string()))
        {
            Ok(example) => example,
            Err(why) => {
                set.problems.push((file, why));
                continue;
            }
        };
        for (index, attribution) in attributed {
            match build_case(specs, &file, &example, index, attribution) {
                Ok(case) => set.cases.push(case),
                Err(why) => set.problems.push((file.clone(), why)),
            }
        }
    }
    set
}

fn find_example_files(
    spec_dir: &Path,
    dir: &Path,
    inside_examples: bool,
    out: &mut Vec<String>,
) -> Result<(), String> {
    let entries = fs::read_dir(dir).map_err(|e| format!("listing {}: {e}", dir.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("listing {}: {e}", dir.display()))?;
        let path = entry.path();
        if path.is_dir() {
            let inside = inside_examples || entry.file_name() == "examples";
            find_example_files(spec_dir, &path, inside, out)?;
        } else if inside_examples && path.extension().is_some_and(|e| e == "json") {
            let rel = path
                .strip_prefix(spec_dir)
                .unwrap_or(&path)
                .to_string_lossy()
                .replace('\\', "/");
            out.push(rel);
        }
    }
    Ok(())
}

/// `(operation index, attribution)` for every operation the example belongs to.
fn attributions(
    specs: &SpecSet,
    file: &str,
    explicit: &[ExplicitAttribution],
) -> Vec<(usize, Attribution)> {
    let listed: Vec<(usize, Attribution)> = specs
        .operations
        .iter()
        .enumerate()
        .filter(|(_, op)| op.example_files.iter().any(|f| f == file))
        .map(|(i, _)| (i, Attribution::Listed))
        .collect();
    if !listed.is_empty() {
        return listed;
    }
    let neutral = version_neutral(file);
    let other_folder: Vec<(usize, Attribution)> = specs
        .operations
        .iter()
        .enumerate()
        .filter(|(_, op)| {
            op.example_files
                .iter()
                .any(|f| neutral.is_some() && version_neutral(f) == neutral)
        })
        .map(|(i, _)| {
            (
                i,
                Attribution::OtherVersionFolder {
                    example_folder_version: example_folder_version(file).unwrap_or_default(),
                },
            )
        })
        .collect();
    if !other_folder.is_empty() {
        return other_folder;
    }
    explicit
        .iter()
        .filter(|e| e.file == file)
        .filter_map(|e| {
            specs
                .operations
                .iter()
                .position(|op| op.operation_id == e.operation_id)
                .map(|i| (i, Attribution::Explicit { reason: e.reason }))
        })
        .collect()
}

/// The example path without the version folder in front of `examples`.
fn version_neutral(file: &str) -> Option<String> {
    let parts: Vec<&str> = file.split('/').collect();
    let at = parts.iter().position(|p| *p == "examples")?;
    let mut kept = parts.clone();
    kept.remove(at.checked_sub(1)?);
    Some(kept.join("/"))
}

fn example_folder_version(file: &str) -> Option<String> {
    let parts: Vec<&str> = file.split('/').collect();
    let at = parts.iter().position(|p| *p == "examples")?;
    parts.get(at.checked_sub(1)?).map(|s| s.to_string())
}

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn build_case(
    specs: &SpecSet,
    file: &str,
    example: &Value,
    index: usize,
    attribution: Attribution,
) -> Result<ExampleCase, String> {
    let op = &specs.operations[index];
    let values = example
        .get("parameters")
        .and_then(Value::as_object)
        .ok_or("no parameters object")?;
    let mut path = String::new();
    for segment in &op.segments {
        path.push('/');
        match segment {
            Segment::Literal(literal) => path.push_str(literal),
            Segment::Param { name, .. } => {
                let value = values.get(name).and_then(scalar_text).ok_or_else(|| {
                    format!("{}: no value for path parameter {name}", op.operation_id)
                })?;
                path.push_str(value.trim_start_matches('/'));
            }
        }
    }
    let mut query = Vec::new();
    for param in op
        .parameters
        .iter()
        .filter(|p| p.location == ParamIn::Query)
    {
        if let Some(value) = values.get(&param.name).and_then(scalar_text) {
            query.push((param.name.clone(), value));
        }
    }
    let body = op
        .parameters
        .iter()
        .find(|p| p.location == ParamIn::Body)
        .and_then(|p| values.get(&p.name))
        .cloned();
    let mut responses = Vec::new();
    for (status, response) in example
        .get("responses")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let status: u16 = status
            .parse()
            .map_err(|_| format!("response status {status:?} is not a number"))?;
        responses.push((status, response.get("body").cloned()));
    }
    Ok(ExampleCase {
        file: file.to_string(),
        operation_id: op.operation_id.clone(),
        method: op.method.clone(),
        path,
        query,
        body,
        responses,
        example_api_version: values.get("api-version").and_then(scalar_text),
        spec_version: specs.docs[op.doc].version.clone().unwrap_or_default(),
        attribution,
    })
}

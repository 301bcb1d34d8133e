//! Loading the shelf's Azure OpenAPI specs (Swagger 2.0, autorest flavour): every
//! `resource-manager` spec that declares `paths`, every file reachable through `$ref`
//! (common-types included), the operations the specs declare, the polymorphism index
//! (discriminators over `allOf` chains) and the compiled `pattern`s.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fs;
use std::path::{Component, Path, PathBuf};

use regex::Regex;
use serde_json::Value;

/// Index of a loaded spec file in [`SpecSet`].
pub type DocId = usize;

/// Why the specs could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("no spec directory at {0} (expected <shared>/azure-specs/specification)")]
    FindSpecDirectory(PathBuf),
    #[error("listing {path}: {source}")]
    ListDirectory {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("reading {path}: {source}")]
    ReadSpec {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parsing {path}: {source}")]
    ParseSpec {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{file}: $ref {reference:?} does not resolve: {why}")]
    ResolveRef {
        file: String,
        reference: String,
        why: String,
    },
    #[error("{file}: pattern {pattern:?} does not compile: {source}")]
    CompilePattern {
        file: String,
        pattern: String,
        #[source]
        source: regex::Error,
    },
    #[error("{file}: {method} {template}: {why}")]
    ReadOperation {
        file: String,
        method: String,
        template: String,
        why: String,
    },
}

/// One loaded JSON file.
pub(crate) struct Document {
    /// Lexically normalised absolute path.
    pub path: PathBuf,
    /// Path relative to `azure-specs/specification`, `/`-separated.
    pub rel: String,
    pub json: Value,
    /// The provider namespace directory after `resource-manager` (e.g. `Microsoft.Storage`).
    pub namespace: Option<String>,
    /// `info.version`.
    pub version: Option<String>,
}

/// Where a `$ref` points.
#[derive(Clone, Debug)]
pub(crate) struct RefTarget {
    pub doc: DocId,
    pub pointer: String,
    /// The definition name when the target is `#/definitions/<name>`.
    pub definition: Option<String>,
}

/// A schema or parameter object addressed by file and JSON pointer.
#[derive(Clone, Debug)]
pub(crate) struct Located {
    pub doc: DocId,
    pub pointer: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ParamIn {
    Path,
    Query,
    Header,
    Body,
    FormData,
}

pub(crate) struct Parameter {
    pub name: String,
    pub location: ParamIn,
    pub required: bool,
    /// The (dereferenced) parameter object.
    pub object: Located,
}

pub(crate) enum Segment {
    Literal(String),
    /// A path parameter; `multi_segment` when it carries `x-ms-skip-url-encoding: true`
    /// (its value may contain `/`, e.g. `{scope}` or `{roleAssignmentId}`).
    Param {
        name: String,
        multi_segment: bool,
    },
}

pub(crate) struct Response {
    /// `"200"`, `"202"`, …, or `"default"`.
    pub status: String,
    pub schema: Option<Located>,
}

pub(crate) struct Operation {
    pub doc: DocId,
    pub operation_id: String,
    /// Upper-case HTTP method.
    pub method: String,
    pub template: String,
    pub segments: Vec<Segment>,
    pub parameters: Vec<Parameter>,
    pub responses: Vec<Response>,
    /// `x-ms-pageable` with a `nextLinkName`: next links are server-made URLs.
    pub pageable: bool,
    /// `x-ms-examples` files, relative to the specification directory (may not exist).
    pub example_files: Vec<String>,
}

/// The derived definitions a polymorphic definition dispatches to.
pub(crate) struct Polymorphism {
    /// The discriminator property (e.g. `objectType`).
    pub property: String,
    /// `(discriminator value, doc, definition name)`: the definition itself and every
    /// definition that reaches it through `allOf`.
    pub variants: Vec<(String, DocId, String)>,
}

/// The loaded specs: files, resolved references, operations and polymorphism.
pub struct SpecSet {
    pub(crate) spec_dir: PathBuf,
    pub(crate) docs: Vec<Document>,
    pub(crate) refs: Vec<HashMap<String, RefTarget>>,
    pub(crate) operations: Vec<Operation>,
    pub(crate) polymorphism: HashMap<(DocId, String), Polymorphism>,
    pub(crate) patterns: HashMap<String, Regex>,
}

const METHODS: [&str; 7] = ["get", "put", "post", "patch", "delete", "head", "options"];

impl SpecSet {
    /// Loads the specs below `<shared_root>/azure-specs/specification`.
    ///
    /// # Errors
    /// A missing directory, an unreadable or unparsable file, a `$ref` that does not resolve,
    /// a pattern that does not compile or an operation whose template names an undeclared
    /// path parameter.
    pub fn load(shared_root: &Path) -> Result<SpecSet, LoadError> {
        let spec_dir = normalize(&shared_root.join("azure-specs").join("specification"));
        if !spec_dir.is_dir() {
            return Err(LoadError::FindSpecDirectory(spec_dir));
        }
        let mut set = SpecSet {
            spec_dir: spec_dir.clone(),
            docs: Vec::new(),
            refs: Vec::new(),
            operations: Vec::new(),
            polymorphism: HashMap::new(),
            patterns: HashMap::new(),
        };
        let mut by_path: HashMap<PathBuf, DocId> = HashMap::new();
        let mut queue = VecDeque::new();
        for path in spec_files(&spec_dir)? {
            let json = read_json(&path)?;
            let has_paths = json
                .get("paths")
                .and_then(Value::as_object)
                .is_some_and(|p| !p.is_empty());
            if has_paths {
                let id = set.add_document(path.clone(), json);
                by_path.insert(path, id);
                queue.push_back(id);
            }
        }
        while let Some(id) = queue.pop_front() {
            set.resolve_document_refs(id, &mut by_path, &mut queue)?;
        }
        set.compile_patterns()?;
        set.read_operations()?;
        set.index_polymorphism();
        Ok(set)
    }

    /// Number of operations declared by the loaded specs.
    pub fn operation_count(&self) -> usize {
        self.operations.len()
    }

    /// The loaded files, relative to the specification directory.
    pub fn files(&self) -> Vec<&str> {
        self.docs.iter().map(|d| d.rel.as_str()).collect()
    }

    /// The specification directory the specs were loaded from.
    pub fn spec_dir(&self) -> &Path {
        &self.spec_dir
    }

    fn add_document(&mut self, path: PathBuf, json: Value) -> DocId {
        let rel = path
            .strip_prefix(&self.spec_dir)
            .unwrap_or(&path)
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/");
        let parts: Vec<&str> = rel.split('/').collect();
        let namespace = parts
            .iter()
            .position(|p| *p == "resource-manager")
            .and_then(|i| parts.get(i + 1))
            .map(|s| s.to_string());
        let version = json
            .pointer("/info/version")
            .and_then(Value::as_str)
            .map(str::to_string);
        self.docs.push(Document {
            path,
            rel,
            json,
            namespace,
            version,
        });
        self.refs.push(HashMap::new());
        self.docs.len() - 1
    }

    /// Resolves every `$ref` of one document (outside `x-ms-examples`), loading the files
    /// they point into.
    fn resolve_document_refs(
        &mut self,
        id: DocId,
        by_path: &mut HashMap<PathBuf, DocId>,
        queue: &mut VecDeque<DocId>,
    ) -> Result<(), LoadError> {
        let mut references = BTreeSet::new();
        collect_refs(&self.docs[id].json, &mut references);
        let base_dir = self.docs[id]
            .path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let file = self.docs[id].rel.clone();
        for reference in references {
            let ref_error = |why: String| LoadError::ResolveRef {
                file: file.clone(),
                reference: reference.clone(),
                why,
            };
            let (file_part, pointer) = match reference.split_once('#') {
                Some((f, p)) => (f, p.to_string()),
                None => (reference.as_str(), String::new()),
            };
            let target_doc = if file_part.is_empty() {
                id
            } else {
                let target_path = normalize(&base_dir.join(file_part));
                match by_path.get(&target_path) {
                    Some(existing) => *existing,
                    None => {
                        if !target_path.is_file() {
                            return Err(ref_error(format!(
                                "file {} does not exist",
                                target_path.display()
                            )));
                        }
                        let json = read_json(&target_path)?;
                        let new_id = self.add_document(target_path.clone(), json);
                        by_path.insert(target_path, new_id);
                        queue.push_back(new_id);
                        new_id
                    }
                }
            };
            if self.docs[target_doc].json.pointer(&pointer).is_none() {
                return Err(ref_error(format!(
                    "no {pointer:?} in {}",
                    self.docs[target_doc].rel
                )));
            }
            let definition = pointer
                .strip_prefix("/definitions/")
                .filter(|name| !name.contains('/'))
                .map(unescape_pointer_token);
            self.refs[id].insert(
                reference.clone(),
                RefTarget {
                    doc: target_doc,
                    pointer,
                    definition,
                },
            );
        }
        Ok(())
    }

    fn compile_patterns(&mut self) -> Result<(), LoadError> {
        for doc in &self.docs {
            let mut found = BTreeSet::new();
            collect_patterns(&doc.json, &mut found);
            for pattern in found {
                if self.patterns.contains_key(&pattern) {
                    continue;
                }
                let regex = Regex::new(&pattern).map_err(|source| LoadError::CompilePattern {
                    file: doc.rel.clone(),
                    pattern: pattern.clone(),
                    source,
                })?;
                self.patterns.insert(pattern, regex);
            }
        }
        Ok(())
    }

    fn read_operations(&mut self) -> Result<(), LoadError> {
        let mut operations = Vec::new();
        for (doc_id, doc) in self.docs.iter().enumerate() {
            let Some(paths) = doc.json.get("paths").and_then(Value::as_object) else {
                continue;
            };
            for (template, item) in paths {
                let item_pointer = format!("/paths/{}", escape_pointer_token(template));
                for method in METHODS {
                    let Some(op) = item.get(method) else {
                        continue;
                    };
                    let op_pointer = format!("{item_pointer}/{method}");
                    operations.push(self.read_operation(
                        doc_id,
                        template,
                        method,
                        item,
                        &item_pointer,
                        op,
                        &op_pointer,
                    )?);
                }
            }
        }
        self.operations = operations;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn read_operation(
        &self,
        doc_id: DocId,
        template: &str,
        method: &str,
        item: &Value,
        item_pointer: &str,
        op: &Value,
        op_pointer: &str,
    ) -> Result<Operation, LoadError> {
        let doc = &self.docs[doc_id];
        let op_error = |why: String| LoadError::ReadOperation {
            file: doc.rel.clone(),
            method: method.to_uppercase(),
            template: template.to_string(),
            why,
        };
        // Operation-level parameters override path-level ones with the same name and `in`.
        let mut parameters: Vec<Parameter> = Vec::new();
        for (list, list_pointer) in [
            (item.get("parameters"), format!("{item_pointer}/parameters")),
            (op.get("parameters"), format!("{op_pointer}/parameters")),
        ] {
            let Some(list) = list.and_then(Value::as_array) else {
                continue;
            };
            for (i, raw) in list.iter().enumerate() {
                let located = self
                    .follow_refs(doc_id, raw, &format!("{list_pointer}/{i}"))
                    .map_err(&op_error)?;
                let object = self.value_at(&located);
                let name = object
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| op_error(format!("parameter {i} has no name")))?
                    .to_string();
                let location = match object.get("in").and_then(Value::as_str) {
                    Some("path") => ParamIn::Path,
                    Some("query") => ParamIn::Query,
                    Some("header") => ParamIn::Header,
                    Some("body") => ParamIn::Body,
                    Some("formData") => ParamIn::FormData,
                    other => return Err(op_error(format!("parameter {name}: in = {other:?}"))),
                };
                let required = object
                    .get("required")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                parameters.retain(|p| !(p.name == name && p.location == location));
                parameters.push(Parameter {
                    name,
                    location,
                    required,
                    object: located,
                });
            }
        }
        let mut segments = Vec::new();
        for raw in template.trim_start_matches('/').split('/') {
            match raw.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => {
                    let param = parameters
                        .iter()
                        .find(|p| p.location == ParamIn::Path && p.name == name)
                        .ok_or_else(|| op_error(format!("path parameter {name} not declared")))?;
                    let multi_segment = self
                        .value_at(&param.object)
                        .get("x-ms-skip-url-encoding")
                        .and_then(Value::as_bool)
                        .unwrap_or(false);
                    segments.push(Segment::Param {
                        name: name.to_string(),
                        multi_segment,
                    });
                }
                None if raw.contains('{') => {
                    return Err(op_error(format!(
                        "segment {raw:?} mixes literal text and parameters"
                    )));
                }
                None => segments.push(Segment::Literal(raw.to_string())),
            }
        }
        let mut responses = Vec::new();
        if let Some(map) = op.get("responses").and_then(Value::as_object) {
            for (status, raw) in map {
                let response_pointer =
                    format!("{op_pointer}/responses/{}", escape_pointer_token(status));
                let located = self
                    .follow_refs(doc_id, raw, &response_pointer)
                    .map_err(&op_error)?;
                let schema = self.value_at(&located).get("schema").map(|_| Located {
                    doc: located.doc,
                    pointer: format!("{}/schema", located.pointer),
                });
                responses.push(Response {
                    status: status.clone(),
                    schema,
                });
            }
        }
        let base_dir = doc.path.parent().map(Path::to_path_buf).unwrap_or_default();
        let example_files = op
            .get("x-ms-examples")
            .and_then(Value::as_object)
            .map(|examples| {
                examples
                    .values()
                    .filter_map(|e| e.get("$ref").and_then(Value::as_str))
                    .map(|r| {
                        let path = normalize(&base_dir.join(r));
                        path.strip_prefix(&self.spec_dir)
                            .unwrap_or(&path)
                            .to_string_lossy()
                            .replace('\\', "/")
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Operation {
            doc: doc_id,
            operation_id: op
                .get("operationId")
                .and_then(Value::as_str)
                .unwrap_or("(no operationId)")
                .to_string(),
            method: method.to_uppercase(),
            template: template.to_string(),
            segments,
            parameters,
            responses,
            pageable: op
                .pointer("/x-ms-pageable/nextLinkName")
                .is_some_and(|n| !n.is_null()),
            example_files,
        })
    }

    /// Builds, for every definition that has a discriminator (its own or inherited), the
    /// variants it dispatches to: itself and every definition reaching it through `allOf`.
    fn index_polymorphism(&mut self) {
        let mut parents: HashMap<(DocId, String), Vec<(DocId, String)>> = HashMap::new();
        let mut all_definitions = Vec::new();
        for (doc_id, doc) in self.docs.iter().enumerate() {
            let Some(definitions) = doc.json.get("definitions").and_then(Value::as_object) else {
                continue;
            };
            for (name, schema) in definitions {
                let key = (doc_id, name.clone());
                all_definitions.push(key.clone());
                let list = schema
                    .get("allOf")
                    .and_then(Value::as_array)
                    .map(|items| {
                        items
                            .iter()
                            .filter_map(|item| item.get("$ref").and_then(Value::as_str))
                            .filter_map(|r| self.refs[doc_id].get(r))
                            .filter_map(|t| t.definition.clone().map(|d| (t.doc, d)))
                            .collect()
                    })
                    .unwrap_or_default();
                parents.insert(key, list);
            }
        }
        let ancestors_of = |key: &(DocId, String)| {
            let mut seen = Vec::new();
            let mut stack = vec![key.clone()];
            while let Some(k) = stack.pop() {
                for parent in parents.get(&k).into_iter().flatten() {
                    if !seen.contains(parent) {
                        seen.push(parent.clone());
                        stack.push(parent.clone());
                    }
                }
            }
            seen
        };
        let mut polymorphism: HashMap<(DocId, String), Polymorphism> = HashMap::new();
        for key in &all_definitions {
            let lineage: Vec<(DocId, String)> = std::iter::once(key.clone())
                .chain(ancestors_of(key))
                .collect();
            let Some(property) = lineage.iter().find_map(|(d, n)| {
                self.definition(*d, n)
                    .and_then(|s| s.get("discriminator"))
                    .and_then(Value::as_str)
                    .map(str::to_string)
            }) else {
                continue;
            };
            let mut variants = Vec::new();
            for candidate in &all_definitions {
                let is_self = candidate == key;
                if is_self || ancestors_of(candidate).contains(key) {
                    let value = self
                        .definition(candidate.0, &candidate.1)
                        .and_then(|s| s.get("x-ms-discriminator-value"))
                        .and_then(Value::as_str)
                        .unwrap_or(&candidate.1)
                        .to_string();
                    variants.push((value, candidate.0, candidate.1.clone()));
                }
            }
            polymorphism.insert(key.clone(), Polymorphism { property, variants });
        }
        self.polymorphism = polymorphism;
    }

    /// The definition `name` of a document.
    pub(crate) fn definition(&self, doc: DocId, name: &str) -> Option<&Value> {
        self.docs[doc].json.get("definitions")?.get(name)
    }

    /// The value at a located pointer (validated at load time).
    pub(crate) fn value_at(&self, located: &Located) -> &Value {
        self.docs[located.doc]
            .json
            .pointer(&located.pointer)
            .unwrap_or(&Value::Null)
    }

    /// Resolves one `$ref` string as written in `doc`.
    pub(crate) fn resolve_ref(&self, doc: DocId, reference: &str) -> Result<&RefTarget, String> {
        self.refs[doc].get(reference).ok_or_else(|| {
            format!(
                "$ref {reference:?} of {} was not resolved at load time",
                self.docs[doc].rel
            )
        })
    }

    /// Follows `$ref`s from a value at `pointer` in `doc` to the object they name.
    pub(crate) fn follow_refs(
        &self,
        doc: DocId,
        value: &Value,
        pointer: &str,
    ) -> Result<Located, String> {
        let mut located = Located {
            doc,
            pointer: pointer.to_string(),
        };
        let mut current = value;
        for _ in 0..32 {
            let Some(reference) = current.get("$ref").and_then(Value::as_str) else {
                return Ok(located);
            };
            let target = self.resolve_ref(located.doc, reference)?;
            located = Located {
                doc: target.doc,
                pointer: target.pointer.clone(),
            };
            current = self.value_at(&located);
        }
        Err(format!("$ref chain too long at {pointer}"))
    }
}

/// Every `.json` below `spec_dir` in a `resource-manager` tree, outside `examples` folders,
/// in a stable order.
fn spec_files(spec_dir: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let mut found = Vec::new();
    let mut stack = vec![spec_dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = fs::read_dir(&dir).map_err(|source| LoadError::ListDirectory {
            path: dir.clone(),
            source,
        })?;
        for entry in entries {
            let entry = entry.map_err(|source| LoadError::ListDirectory {
                path: dir.clone(),
                source,
            })?;
            let path = entry.path();
            if path.is_dir() {
                if entry.file_name() != "examples" {
                    stack.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "json")
                && path
                    .components()
                    .any(|c| c.as_os_str() == "resource-manager")
            {
                found.push(normalize(&path));
            }
        }
    }
    found.sort();
    Ok(found)
}

fn read_json(path: &Path) -> Result<Value, LoadError> {
    let text = fs::read_to_string(path).map_err(|source| LoadError::ReadSpec {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| LoadError::ParseSpec {
        path: path.to_path_buf(),
        source,
    })
}

/// Collects every `$ref` string, skipping `x-ms-examples` (example files are optional).
fn collect_refs(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                if key == "x-ms-examples" {
                    continue;
                }
                if key == "$ref" {
                    if let Some(r) = child.as_str() {
                        out.insert(r.to_string());
                    }
                } else {
                    collect_refs(child, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

/// Collects every `pattern` keyword (a property *named* `pattern` has an object value).
fn collect_patterns(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                match (key.as_str(), child) {
                    ("x-ms-examples", _) => {}
                    ("pattern", Value::String(p)) => {
                        out.insert(p.clone());
                    }
                    _ => collect_patterns(child, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_patterns(v, out)),
        _ => {}
    }
}

/// Lexical normalisation (`.` and `..`), without touching the file system.
pub(crate) fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

pub(crate) fn escape_pointer_token(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

fn unescape_pointer_token(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

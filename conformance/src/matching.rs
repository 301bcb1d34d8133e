//! Matching a concrete ARM request (method, path, api-version) to the operation of the
//! specs: case-insensitive literal segments, `x-ms-skip-url-encoding` parameters spanning
//! several segments, the most specific template winning, path-parameter constraints, and
//! the documented api-version aliases.

use percent_encoding::percent_decode_str;
use serde_json::Value;

use super::load::{ParamIn, Segment, SpecSet};
use super::schema::{Direction, SchemaWalk};
use super::{Note, Violation};

/// An api-version the product calls for which the shelf only holds another version's
/// specs. Requests at `requested` to operations of `namespace` are validated against the
/// `validated_against` specs, and every use is reported as a [`Note`].
#[derive(Clone, Copy, Debug)]
pub struct VersionAlias {
    pub namespace: &'static str,
    pub requested: &'static str,
    pub validated_against: &'static str,
    pub reason: &'static str,
}

/// The only aliases: see `azure-specs/README.md`, "Caveats / substitutions".
pub const VERSION_ALIASES: &[VersionAlias] = &[VersionAlias {
    namespace: "Microsoft.Storage",
    requested: "2023-01-01",
    validated_against: "2023-05-01",
    reason: "the product calls Microsoft.Storage at the guide's 2023-01-01, but only the \
             self-consistent 2023-05-01 Storage specs are on the shelf (azure-specs/README.md, \
             caveats)",
}];

/// The operation a request maps to.
#[derive(Clone, Debug)]
pub struct MatchedOperation {
    pub operation_id: String,
    /// Upper-case HTTP method.
    pub method: String,
    pub template: String,
    /// The spec file, relative to `azure-specs/specification`.
    pub spec_file: String,
    /// `info.version` of the spec file.
    pub spec_version: String,
    /// The api-version of the request (differs from `spec_version` only via an alias).
    pub requested_version: String,
    /// Path parameter values; multi-segment values without their leading `/`.
    pub path_params: Vec<(String, String)>,
    /// E.g. the use of a version alias.
    pub notes: Vec<Note>,
    pub(crate) index: usize,
}

/// A structural match of one template: captured values and its specificity.
struct TemplateMatch {
    index: usize,
    captures: Vec<(String, String)>,
    literal_segments: usize,
    multi_segment_span: usize,
}

impl SpecSet {
    /// The operation serving `method path?api-version=api_version`.
    ///
    /// # Errors
    /// A [`Violation`] when no template matches the path, none of the matching ones takes
    /// this method, none is specified at this api-version, or a path parameter breaks its
    /// constraints (pattern, length, format, enum).
    pub fn find_operation(
        &self,
        method: &str,
        path: &str,
        api_version: &str,
    ) -> Result<MatchedOperation, Violation> {
        let (matched, param_violations) = self.match_operation(method, path, api_version)?;
        match param_violations.as_slice() {
            [] => Ok(matched),
            [only] => Err(only.clone()),
            several => Err(Violation::new(
                Some(&matched.operation_id),
                "path",
                several
                    .iter()
                    .map(|v| v.message.as_str())
                    .collect::<Vec<_>>()
                    .join("; "),
            )),
        }
    }

    /// Like [`SpecSet::find_operation`], but returns the path-parameter violations next to
    /// the match instead of failing on them.
    pub(crate) fn match_operation(
        &self,
        method: &str,
        path: &str,
        api_version: &str,
    ) -> Result<(MatchedOperation, Vec<Violation>), Violation> {
        let segments = split_path(path).map_err(|why| Violation::new(None, "path", why))?;
        let structural = self.structural_matches(&segments);
        if structural.is_empty() {
            return Err(Violation::new(
                None,
                "path",
                format!("no operation in the specs has a path template matching {path}"),
            ));
        }
        let with_method: Vec<&TemplateMatch> = structural
            .iter()
            .filter(|m| self.operations[m.index].method.eq_ignore_ascii_case(method))
            .collect();
        if with_method.is_empty() {
            let mut declared: Vec<String> = structural
                .iter()
                .map(|m| {
                    let op = &self.operations[m.index];
                    format!("{} ({})", op.method, op.operation_id)
                })
                .collect();
            declared.sort();
            declared.dedup();
            return Err(Violation::new(
                None,
                "path",
                format!(
                    "{path} is specified, but not for {}; declared: {}",
                    method.to_uppercase(),
                    declared.join(", ")
                ),
            ));
        }
        let versioned: Vec<(&TemplateMatch, Option<&VersionAlias>)> = with_method
            .iter()
            .filter_map(|m| {
                self.version_match(m.index, api_version)
                    .map(|alias| (*m, alias))
            })
            .collect();
        let Some((best, alias)) = versioned.into_iter().max_by(|(a, _), (b, _)| {
            (a.literal_segments, std::cmp::Reverse(a.multi_segment_span))
                .cmp(&(b.literal_segments, std::cmp::Reverse(b.multi_segment_span)))
                .then(b.index.cmp(&a.index))
        }) else {
            let best = with_method
                .iter()
                .max_by_key(|m| (m.literal_segments, std::cmp::Reverse(m.multi_segment_span)))
                .map(|m| &self.operations[m.index]);
            let mut available: Vec<String> = with_method
                .iter()
                .map(|m| {
                    let op = &self.operations[m.index];
                    format!(
                        "{} ({})",
                        self.docs[op.doc].version.as_deref().unwrap_or("?"),
                        op.operation_id
                    )
                })
                .collect();
            available.sort();
            available.dedup();
            return Err(Violation::new(
                best.map(|op| op.operation_id.as_str()),
                "query",
                format!(
                    "api-version {api_version} is not specified for {} {path}; the specs have: {}",
                    method.to_uppercase(),
                    available.join(", ")
                ),
            ));
        };
        let op = &self.operations[best.index];
        let doc = &self.docs[op.doc];
        let spec_version = doc.version.clone().unwrap_or_default();
        let mut notes = Vec::new();
        if let Some(alias) = alias {
            notes.push(Note::new(
                Some(&op.operation_id),
                "query",
                format!(
                    "api-version {} of {} validated against the {} specs (documented alias: {})",
                    alias.requested, alias.namespace, alias.validated_against, alias.reason
                ),
            ));
        }
        let param_violations = self.check_path_params(best.index, &best.captures);
        Ok((
            MatchedOperation {
                operation_id: op.operation_id.clone(),
                method: op.method.clone(),
                template: op.template.clone(),
                spec_file: doc.rel.clone(),
                spec_version,
                requested_version: api_version.to_string(),
                path_params: best.captures.clone(),
                notes,
                index: best.index,
            },
            param_violations,
        ))
    }

    /// Every template matching the path. A by-id template (`/{resourceId}`,
    /// `/{roleAssignmentId}`: one multi-segment parameter, no literal) stands for resources
    /// its spec names elsewhere, so it only counts when a template of the same spec with a
    /// literal segment matches too; otherwise `/{resourceId}` would claim every path.
    fn structural_matches(&self, segments: &[String]) -> Vec<TemplateMatch> {
        let all: Vec<TemplateMatch> = (0..self.operations.len())
            .filter_map(|index| self.match_template(index, segments))
            .collect();
        let named_docs: Vec<usize> = all
            .iter()
            .filter(|m| m.literal_segments > 0)
            .map(|m| self.operations[m.index].doc)
            .collect();
        all.into_iter()
            .filter(|m| {
                m.literal_segments > 0 || named_docs.contains(&self.operations[m.index].doc)
            })
            .collect()
    }

    /// `Some(None)` when the operation's spec version is `api_version`, `Some(Some(alias))`
    /// when a documented alias maps `api_version` onto it, `None` otherwise.
    fn version_match(&self, index: usize, api_version: &str) -> Option<Option<&VersionAlias>> {
        let doc = &self.docs[self.operations[index].doc];
        let spec_version = doc.version.as_deref()?;
        if spec_version == api_version {
            return Some(None);
        }
        VERSION_ALIASES
            .iter()
            .find(|alias| {
                alias.requested == api_version
                    && alias.validated_against == spec_version
                    && doc.namespace.as_deref() == Some(alias.namespace)
            })
            .map(Some)
    }

    /// Matches one template against the path segments; multi-segment parameters are
    /// greedy (the longest span that still lets the rest of the template match).
    fn match_template(&self, index: usize, segments: &[String]) -> Option<TemplateMatch> {
        let template = &self.operations[index].segments;
        let mut captures = Vec::new();
        if !match_from(template, segments, &mut captures) {
            return None;
        }
        let literal_segments = template
            .iter()
            .filter(|s| matches!(s, Segment::Literal(_)))
            .count();
        let multi_segment_span = template
            .iter()
            .filter_map(|s| match s {
                Segment::Param {
                    name,
                    multi_segment: true,
                } => captures.iter().find(|(n, _)| n == name),
                _ => None,
            })
            .map(|(_, value)| value.split('/').count())
            .sum();
        Some(TemplateMatch {
            index,
            captures,
            literal_segments,
            multi_segment_span,
        })
    }

    /// Checks captured path values against their parameter constraints.
    fn check_path_params(&self, index: usize, captures: &[(String, String)]) -> Vec<Violation> {
        let op = &self.operations[index];
        let mut violations = Vec::new();
        for (name, raw) in captures {
            let Some(param) = op
                .parameters
                .iter()
                .find(|p| p.location == ParamIn::Path && &p.name == name)
            else {
                continue;
            };
            violations.extend(self.check_parameter_value(&op.operation_id, param, raw, "path"));
        }
        violations
    }

    /// Checks one raw (string) path or query value against a non-body parameter object,
    /// converting it to the parameter's declared type first.
    pub(crate) fn check_parameter_value(
        &self,
        operation_id: &str,
        param: &super::load::Parameter,
        raw: &str,
        location: &str,
    ) -> Vec<Violation> {
        let object = self.value_at(&param.object);
        let value = match typed_value(object, raw) {
            Ok(value) => value,
            Err(why) => {
                return vec![Violation::new(
                    Some(operation_id),
                    location,
                    format!("parameter {}: {why}", param.name),
                )];
            }
        };
        let mut walk = SchemaWalk::new(self, Direction::Parameter, Some(operation_id));
        walk.check(param.object.doc, object, &value, "");
        walk.violations
            .into_iter()
            .map(|v| {
                Violation::new(
                    Some(operation_id),
                    location,
                    format!("parameter {} = {raw:?}: {}", param.name, v.message),
                )
            })
            .collect()
    }
}

fn match_from(
    template: &[Segment],
    segments: &[String],
    captures: &mut Vec<(String, String)>,
) -> bool {
    match template.split_first() {
        None => segments.is_empty(),
        Some((Segment::Literal(literal), rest)) => match segments.split_first() {
            Some((first, tail)) if first.eq_ignore_ascii_case(literal) => {
                match_from(rest, tail, captures)
            }
            _ => false,
        },
        Some((
            Segment::Param {
                name,
                multi_segment,
            },
            rest,
        )) => {
            let longest = if *multi_segment {
                segments.len()
            } else {
                segments.len().min(1)
            };
            for span in (1..=longest).rev() {
                captures.push((name.clone(), segments[..span].join("/")));
                if match_from(rest, &segments[span..], captures) {
                    return true;
                }
                captures.pop();
            }
            false
        }
    }
}

/// Splits an absolute path into percent-decoded segments (one trailing `/` tolerated).
fn split_path(path: &str) -> Result<Vec<String>, String> {
    let Some(relative) = path.strip_prefix('/') else {
        return Err(format!("path {path:?} is not absolute"));
    };
    let relative = relative.strip_suffix('/').unwrap_or(relative);
    let mut segments = Vec::new();
    for raw in relative.split('/') {
        if raw.is_empty() {
            return Err(format!("path {path:?} has an empty segment"));
        }
        let decoded = percent_decode_str(raw)
            .decode_utf8()
            .map_err(|_| format!("path segment {raw:?} is not UTF-8 after percent-decoding"))?;
        segments.push(decoded.into_owned());
    }
    Ok(segments)
}

/// Converts a raw parameter string to the JSON value its Swagger `type` describes.
fn typed_value(param: &Value, raw: &str) -> Result<Value, String> {
    match param.get("type").and_then(Value::as_str) {
        Some("integer") => raw
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| format!("{raw:?} is not an integer")),
        Some("number") => raw
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .ok_or_else(|| format!("{raw:?} is not a number")),
        Some("boolean") => match raw {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(format!("{raw:?} is not a boolean (true or false)")),
        },
        Some("array") => {
            let separator = match param.get("collectionFormat").and_then(Value::as_str) {
                Some("ssv") => " ",
                Some("tsv") => "\t",
                Some("pipes") => "|",
                _ => ",",
            };
            let items = param.get("items").cloned().unwrap_or(Value::Null);
            raw.split(separator)
                .map(|item| typed_value(&items, item))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array)
        }
        _ => Ok(Value::String(raw.to_string())),
    }
}

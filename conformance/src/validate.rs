//! Request and response validation against the matched operation: api-version, path and
//! query parameters, body presence and schema, declared statuses (with `default` covering
//! error statuses only), and the ARM error contract for operations that declare no
//! `default`.

use std::sync::LazyLock;

use serde_json::{Value, json};

use super::load::{ParamIn, SpecSet};
use super::schema::{Direction, Mutation, SchemaWalk};
use super::{Note, Violation};

/// The violations and notes of one check.
#[derive(Clone, Debug, Default)]
pub struct Checked {
    pub violations: Vec<Violation>,
    pub notes: Vec<Note>,
}

/// The ARM error response contract (ARM RPC, "Error Response Content"): used only for error
/// statuses of operations that declare no `default` response (most Storage operations).
static ARM_ERROR_CONTRACT: LazyLock<Value> = LazyLock::new(|| {
    json!({
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "target": {"type": "string"},
                    "details": {"type": "array", "items": {"type": "object"}},
                    "additionalInfo": {"type": "array", "items": {"type": "object"}}
                }
            }
        }
    })
});

impl SpecSet {
    /// The violations of one request (see [`SpecSet::check_request`]).
    pub fn validate_request(
        &self,
        method: &str,
        path: &str,
        query: &[(String, String)],
        body: Option<&Value>,
    ) -> Vec<Violation> {
        self.check_request(method, path, query, body).violations
    }

    /// Checks one request: exactly one `api-version` naming a specified version of the
    /// matched operation, path parameter constraints, required and declared query
    /// parameters, body presence and the body schema (read-only properties are tolerated
    /// and noted, as ARM ignores them).
    pub fn check_request(
        &self,
        method: &str,
        path: &str,
        query: &[(String, String)],
        body: Option<&Value>,
    ) -> Checked {
        let mut checked = Checked::default();
        let versions: Vec<&str> = query
            .iter()
            .filter(|(name, _)| name.eq_ignore_ascii_case("api-version"))
            .map(|(_, value)| value.as_str())
            .collect();
        let api_version = match versions.as_slice() {
            [one] => *one,
            [] => {
                checked.violations.push(Violation::new(
                    None,
                    "query",
                    "missing required query parameter api-version",
                ));
                return checked;
            }
            several => {
                checked.violations.push(Violation::new(
                    None,
                    "query",
                    format!("api-version given {} times", several.len()),
                ));
                return checked;
            }
        };
        let (matched, path_violations) = match self.match_operation(method, path, api_version) {
            Ok(found) => found,
            Err(violation) => {
                checked.violations.push(violation);
                return checked;
            }
        };
        checked.notes.extend(matched.notes);
        checked.violations.extend(path_violations);
        let op = &self.operations[matched.index];
        let op_id = op.operation_id.as_str();

        for param in op
            .parameters
            .iter()
            .filter(|p| p.location == ParamIn::Query)
        {
            if param.name.eq_ignore_ascii_case("api-version") {
                continue;
            }
            let given: Vec<&str> = query
                .iter()
                .filter(|(name, _)| name.eq_ignore_ascii_case(&param.name))
                .map(|(_, value)| value.as_str())
                .collect();
            if given.is_empty() && param.required {
                checked.violations.push(Violation::new(
                    Some(op_id),
                    "query",
                    format!("missing required query parameter {}", param.name),
                ));
            }
            for raw in given {
                checked
                    .violations
                    .extend(self.check_parameter_value(op_id, param, raw, "query"));
            }
        }
        for (name, _) in query {
            let declared = name.eq_ignore_ascii_case("api-version")
                || op
                    .parameters
                    .iter()
                    .any(|p| p.location == ParamIn::Query && p.name.eq_ignore_ascii_case(name));
            if declared {
                continue;
            }
            if op.pageable {
                checked.notes.push(Note::new(
                    Some(op_id),
                    "query",
                    format!("undeclared query parameter {name} on a pageable operation (next links are server-made)"),
                ));
            } else {
                checked.violations.push(Violation::new(
                    Some(op_id),
                    "query",
                    format!("query parameter {name} is not declared by the operation"),
                ));
            }
        }

        let body_param = op.parameters.iter().find(|p| p.location == ParamIn::Body);
        match (body_param, body) {
            (Some(param), None) if param.required => checked.violations.push(Violation::new(
                Some(op_id),
                "body",
                format!("the operation requires a request body ({})", param.name),
            )),
            (Some(param), Some(body)) => {
                let object = self.value_at(&param.object);
                if let Some(schema) = object.get("schema") {
                    let mut walk = SchemaWalk::new(
                        self,
                        Direction::Request(Mutation::of_method(method)),
                        Some(op_id),
                    );
                    walk.check(param.object.doc, schema, body, "");
                    checked.violations.extend(walk.violations);
                    checked.notes.extend(walk.notes);
                }
            }
            (None, Some(_)) => checked.violations.push(Violation::new(
                Some(op_id),
                "body",
                "the operation declares no request body, but one was sent",
            )),
            _ => {}
        }
        checked
    }

    /// The violations of one response (see [`SpecSet::check_response`]).
    pub fn validate_response(
        &self,
        method: &str,
        path: &str,
        api_version: &str,
        status: u16,
        body: Option<&Value>,
    ) -> Vec<Violation> {
        self.check_response(method, path, api_version, status, body)
            .violations
    }

    /// Checks one response: the status must be declared by the operation (`default` covers
    /// error statuses only; with no `default`, an error body must follow the ARM error
    /// contract, noted), and the body must match that response's schema (read-only
    /// properties allowed). A response declared without schema must have no body.
    pub fn check_response(
        &self,
        method: &str,
        path: &str,
        api_version: &str,
        status: u16,
        body: Option<&Value>,
    ) -> Checked {
        let mut checked = Checked::default();
        // Path-parameter constraint violations belong to the request, not the response.
        let matched = match self.match_operation(method, path, api_version) {
            Ok((matched, _)) => matched,
            Err(violation) => {
                checked.violations.push(violation);
                return checked;
            }
        };
        let op = &self.operations[matched.index];
        let op_id = op.operation_id.as_str();
        let status_key = status.to_string();
        let is_error = status >= 400;
        let declared = op
            .responses
            .iter()
            .find(|r| r.status == status_key)
            .or_else(|| {
                is_error
                    .then(|| op.responses.iter().find(|r| r.status == "default"))
                    .flatten()
            });
        let Some(response) = declared else {
            if is_error {
                checked.notes.push(Note::new(
                    Some(op_id),
                    "status",
                    format!(
                        "status {status} is not declared and the operation has no default \
                         response; body checked against the ARM error contract"
                    ),
                ));
                match body {
                    Some(body) => {
                        let mut walk = SchemaWalk::new(self, Direction::Response, Some(op_id));
                        walk.check(op.doc, &ARM_ERROR_CONTRACT, body, "");
                        checked.violations.extend(walk.violations);
                    }
                    None => checked.violations.push(Violation::new(
                        Some(op_id),
                        "body",
                        format!("error status {status} without the ARM error body"),
                    )),
                }
            } else {
                let mut statuses: Vec<&str> =
                    op.responses.iter().map(|r| r.status.as_str()).collect();
                statuses.sort();
                checked.violations.push(Violation::new(
                    Some(op_id),
                    "status",
                    format!(
                        "status {status} is not declared (declared: {})",
                        statuses.join(", ")
                    ),
                ));
            }
            return checked;
        };
        match (&response.schema, body) {
            (Some(schema), Some(body)) => {
                let mut walk = SchemaWalk::new(self, Direction::Response, Some(op_id));
                walk.check(schema.doc, self.value_at(schema), body, "");
                checked.violations.extend(walk.violations);
                checked.notes.extend(walk.notes);
            }
            (Some(_), None) if !method.eq_ignore_ascii_case("HEAD") => {
                checked.violations.push(Violation::new(
                    Some(op_id),
                    "body",
                    format!("status {status} declares a response body, but none was returned"),
                ));
            }
            (None, Some(_)) => checked.violations.push(Violation::new(
                Some(op_id),
                "body",
                format!("status {status} is declared without a body, but one was returned"),
            )),
            _ => {}
        }
        checked
    }
}

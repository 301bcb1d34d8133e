//! Validation of one JSON value against one autorest schema: cross-file `$ref`, `allOf`,
//! discriminators (`x-ms-discriminator-value`, else the definition name), `x-ms-enum` (exact
//! in requests, extensible only in responses), `readOnly`/`x-ms-mutability`/`x-ms-secret` by
//! direction, `x-nullable`, closed objects unless `additionalProperties`, scalar keywords.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::load::{DocId, SpecSet};
use super::{Note, Violation};

/// What is being validated; decides how `readOnly`, `x-ms-mutability` and `required`
/// apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    /// A request body; PUT creates or replaces, PATCH updates.
    Request(Mutation),
    /// A response body.
    Response,
    /// A path or query parameter value.
    Parameter,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mutation {
    Put,
    Patch,
    Other,
}

impl Mutation {
    pub(crate) fn of_method(method: &str) -> Mutation {
        if method.eq_ignore_ascii_case("PUT") {
            Mutation::Put
        } else if method.eq_ignore_ascii_case("PATCH") {
            Mutation::Patch
        } else {
            Mutation::Other
        }
    }
}

/// A schema object reached after following `$ref`s, with the definition it names (the
/// key for discriminator dispatch).
#[derive(Clone, Copy)]
struct View<'s> {
    doc: DocId,
    schema: &'s Value,
    definition: Option<&'s str>,
}

/// Accumulates the violations and notes of one validation.
pub(crate) struct SchemaWalk<'s> {
    specs: &'s SpecSet,
    direction: Direction,
    operation_id: Option<String>,
    pub(crate) violations: Vec<Violation>,
    pub(crate) notes: Vec<Note>,
}

const MAX_DEPTH: usize = 64;

impl<'s> SchemaWalk<'s> {
    pub(crate) fn new(
        specs: &'s SpecSet,
        direction: Direction,
        operation_id: Option<&str>,
    ) -> SchemaWalk<'s> {
        SchemaWalk {
            specs,
            direction,
            operation_id: operation_id.map(str::to_string),
            violations: Vec::new(),
            notes: Vec::new(),
        }
    }

    fn violation(&mut self, at: &str, message: impl Into<String>) {
        self.violations
            .push(Violation::new(self.operation_id.as_deref(), at, message));
    }

    fn note(&mut self, at: &str, message: impl Into<String>) {
        self.notes
            .push(Note::new(self.operation_id.as_deref(), at, message));
    }

    /// Validates `instance` (at JSON pointer `at`) against `schema`, written in `doc`.
    pub(crate) fn check(&mut self, doc: DocId, schema: &'s Value, instance: &Value, at: &str) {
        self.check_depth(doc, schema, instance, at, 0);
    }

    fn check_depth(
        &mut self,
        doc: DocId,
        schema: &'s Value,
        instance: &Value,
        at: &str,
        depth: usize,
    ) {
        if depth > MAX_DEPTH {
            self.violation(at, "value nested deeper than the checker follows");
            return;
        }
        let view = match self.deref(doc, schema) {
            Ok(view) => view,
            Err(why) => {
                self.violation(at, format!("schema error: {why}"));
                return;
            }
        };
        if instance.is_null() {
            if !(is_true(schema, "x-nullable") || is_true(view.schema, "x-nullable")) {
                self.violation(
                    at,
                    "null is not allowed here (the schema is not x-nullable)",
                );
            }
            return;
        }
        let Some(view) = self.dispatch(view, instance, at) else {
            return;
        };
        let pieces = match self.all_of_pieces(view) {
            Ok(pieces) => pieces,
            Err(why) => {
                self.violation(at, format!("schema error: {why}"));
                return;
            }
        };
        for piece in &pieces {
            if !self.check_scalar(piece.schema, instance, at) {
                return;
            }
        }
        match instance {
            Value::Object(map) => self.check_object(&pieces, map, at, depth),
            Value::Array(items) => {
                for piece in &pieces {
                    let Some(item_schema) = piece.schema.get("items") else {
                        continue;
                    };
                    for (i, item) in items.iter().enumerate() {
                        self.check_depth(
                            piece.doc,
                            item_schema,
                            item,
                            &format!("{at}/{i}"),
                            depth + 1,
                        );
                    }
                }
            }
            _ => {}
        }
    }

    /// Follows `$ref`s (and an inline `{allOf: [one]}` wrapper around a reference).
    fn deref(&self, doc: DocId, schema: &'s Value) -> Result<View<'s>, String> {
        let mut view = View {
            doc,
            schema,
            definition: None,
        };
        if is_all_of_wrapper(schema) {
            view.schema = &schema["allOf"][0];
        }
        for _ in 0..32 {
            let Some(reference) = view.schema.get("$ref").and_then(Value::as_str) else {
                return Ok(view);
            };
            let target = self.specs.resolve_ref(view.doc, reference)?;
            view = View {
                doc: target.doc,
                schema: self.specs.docs[target.doc]
                    .json
                    .pointer(&target.pointer)
                    .ok_or_else(|| format!("{reference} vanished"))?,
                definition: target.definition.as_deref(),
            };
        }
        Err("$ref chain too long".to_string())
    }

    /// Selects the derived definition named by the discriminator of a polymorphic
    /// definition. `None` when the value is unknown (reported) or of the wrong type.
    fn dispatch(&mut self, view: View<'s>, instance: &Value, at: &str) -> Option<View<'s>> {
        let Some(definition) = view.definition else {
            return Some(view);
        };
        let Some(polymorphism) = self
            .specs
            .polymorphism
            .get(&(view.doc, definition.to_string()))
        else {
            return Some(view);
        };
        let Some(object) = instance.as_object() else {
            return Some(view);
        };
        let property = polymorphism.property.as_str();
        let property_at = format!("{at}/{}", escape(property));
        match object.get(property) {
            None => Some(view),
            Some(Value::String(value)) => {
                match polymorphism.variants.iter().find(|(v, _, _)| v == value) {
                    Some((_, doc, name)) => Some(View {
                        doc: *doc,
                        schema: self.specs.definition(*doc, name)?,
                        definition: Some(name.as_str()),
                    }),
                    None => {
                        let known: Vec<&str> = polymorphism
                            .variants
                            .iter()
                            .map(|(v, _, _)| v.as_str())
                            .collect();
                        self.violation(
                            &property_at,
                            format!(
                                "unknown {property} {value:?} for polymorphic {definition}; \
                                 known values: {}",
                                known.join(", ")
                            ),
                        );
                        None
                    }
                }
            }
            Some(other) => {
                self.violation(
                    &property_at,
                    format!(
                        "discriminator {property} must be a string, found {}",
                        kind(other)
                    ),
                );
                None
            }
        }
    }

    /// The schema and everything it inherits through `allOf`, most derived first.
    fn all_of_pieces(&self, view: View<'s>) -> Result<Vec<View<'s>>, String> {
        let mut pieces = Vec::new();
        let mut stack = vec![view];
        while let Some(piece) = stack.pop() {
            if pieces.len() > 64 {
                return Err("allOf chain too long".to_string());
            }
            if pieces
                .iter()
                .any(|p: &View<'s>| std::ptr::eq(p.schema, piece.schema))
            {
                continue;
            }
            if let Some(items) = piece.schema.get("allOf").and_then(Value::as_array) {
                for item in items.iter().rev() {
                    stack.push(self.deref(piece.doc, item)?);
                }
            }
            pieces.push(piece);
        }
        Ok(pieces)
    }

    /// Type and scalar keywords of one schema piece. `false` when the type is wrong (the
    /// remaining checks would only repeat it).
    fn check_scalar(&mut self, schema: &Value, instance: &Value, at: &str) -> bool {
        if let Some(expected) = schema.get("type").and_then(Value::as_str) {
            let fits = match expected {
                "string" => instance.is_string(),
                "integer" => is_integer(instance),
                "number" => instance.is_number(),
                "boolean" => instance.is_boolean(),
                "array" => instance.is_array(),
                "object" => instance.is_object(),
                _ => true,
            };
            if !fits {
                self.violation(at, format!("expected {expected}, found {}", kind(instance)));
                return false;
            }
        }
        if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
            self.check_enum(schema, allowed, instance, at);
        }
        match instance {
            Value::String(text) => self.check_string(schema, text, at),
            Value::Number(_) => self.check_number(schema, instance, at),
            Value::Array(items) => self.check_array(schema, items, at),
            _ => {}
        }
        true
    }

    fn check_enum(&mut self, schema: &Value, allowed: &[Value], instance: &Value, at: &str) {
        if allowed.contains(instance) {
            return;
        }
        let extensible = schema
            .pointer("/x-ms-enum/modelAsString")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let listed: Vec<String> = allowed.iter().map(Value::to_string).collect();
        let case_variant = instance.as_str().and_then(|text| {
            allowed
                .iter()
                .filter_map(Value::as_str)
                .find(|a| a.eq_ignore_ascii_case(text))
        });
        let mut message = format!("{instance} is not one of {}", listed.join(", "));
        if let Some(variant) = case_variant {
            message.push_str(&format!(" (differs only in case from {variant:?})"));
        }
        // An extensible enum (`modelAsString`) promises clients that *future* values may
        // appear in responses; a request must still use a value the api-version documents.
        if extensible && instance.is_string() && self.direction == Direction::Response {
            self.note(
                at,
                format!("{message}; tolerated in a response: x-ms-enum modelAsString makes it extensible"),
            );
        } else {
            self.violation(at, message);
        }
    }

    fn check_string(&mut self, schema: &Value, text: &str, at: &str) {
        let length = text.chars().count() as u64;
        if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
            && length < min
        {
            self.violation(at, format!("{text:?} is shorter than minLength {min}"));
        }
        if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
            && length > max
        {
            self.violation(at, format!("{text:?} is longer than maxLength {max}"));
        }
        if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
            match self.specs.patterns.get(pattern) {
                Some(regex) if !regex.is_match(text) => {
                    self.violation(at, format!("{text:?} does not match pattern {pattern}"));
                }
                Some(_) => {}
                None => self.violation(at, format!("pattern {pattern} was not compiled")),
            }
        }
        match schema.get("format").and_then(Value::as_str) {
            Some("date-time") if !is_date_time(text) => {
                self.violation(at, format!("{text:?} is not a date-time"));
            }
            Some("date") if !is_date(text) => {
                self.violation(at, format!("{text:?} is not a date (YYYY-MM-DD)"));
            }
            Some("uuid") if !is_uuid(text) => {
                self.violation(at, format!("{text:?} is not a uuid"));
            }
            _ => {}
        }
    }

    fn check_number(&mut self, schema: &Value, instance: &Value, at: &str) {
        let Some(value) = instance.as_f64() else {
            return;
        };
        if let Some(min) = schema.get("minimum").and_then(Value::as_f64) {
            let exclusive = is_true(schema, "exclusiveMinimum");
            if value < min || (exclusive && value == min) {
                self.violation(at, format!("{instance} is below the minimum {min}"));
            }
        }
        if let Some(max) = schema.get("maximum").and_then(Value::as_f64) {
            let exclusive = is_true(schema, "exclusiveMaximum");
            if value > max || (exclusive && value == max) {
                self.violation(at, format!("{instance} is above the maximum {max}"));
            }
        }
        if let Some(step) = schema.get("multipleOf").and_then(Value::as_f64)
            && step > 0.0
            && (value / step).fract() != 0.0
        {
            self.violation(at, format!("{instance} is not a multiple of {step}"));
        }
        let range = match schema.get("format").and_then(Value::as_str) {
            Some("int32") => Some((f64::from(i32::MIN), f64::from(i32::MAX))),
            _ => None,
        };
        if let Some((low, high)) = range
            && (value < low || value > high)
        {
            self.violation(at, format!("{instance} does not fit int32"));
        }
    }

    fn check_array(&mut self, schema: &Value, items: &[Value], at: &str) {
        let count = items.len() as u64;
        if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
            && count < min
        {
            self.violation(at, format!("{count} items, fewer than minItems {min}"));
        }
        if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
            && count > max
        {
            self.violation(at, format!("{count} items, more than maxItems {max}"));
        }
        if is_true(schema, "uniqueItems") {
            for (i, item) in items.iter().enumerate() {
                if items[..i].contains(item) {
                    self.violation(&format!("{at}/{i}"), format!("duplicate item {item}"));
                }
            }
        }
    }

    /// Properties, `required` and `additionalProperties` merged over the `allOf` pieces.
    fn check_object(
        &mut self,
        pieces: &[View<'s>],
        object: &Map<String, Value>,
        at: &str,
        depth: usize,
    ) {
        let mut properties: BTreeMap<&'s str, (DocId, &'s Value)> = BTreeMap::new();
        let mut required: Vec<&'s str> = Vec::new();
        let mut additional: Option<(DocId, &'s Value)> = None;
        let mut declares_properties = false;
        for piece in pieces {
            if let Some(declared) = piece.schema.get("properties").and_then(Value::as_object) {
                declares_properties = true;
                for (name, schema) in declared {
                    properties
                        .entry(name.as_str())
                        .or_insert((piece.doc, schema));
                }
            }
            for name in piece
                .schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                if !required.contains(&name) {
                    required.push(name);
                }
            }
            if additional.is_none() {
                additional = piece
                    .schema
                    .get("additionalProperties")
                    .map(|schema| (piece.doc, schema));
            }
        }
        for name in required {
            if object.contains_key(name) {
                continue;
            }
            let exempt = properties.get(name).is_some_and(|(doc, schema)| {
                let access = self.access(*doc, schema);
                match self.direction {
                    Direction::Request(_) => access.read_only(),
                    Direction::Response => access.write_only(),
                    Direction::Parameter => false,
                }
            });
            if !exempt {
                self.violation(at, format!("missing required property {name:?}"));
            }
        }
        for (name, value) in object {
            let child_at = format!("{at}/{}", escape(name));
            match properties.get(name.as_str()) {
                Some((doc, schema)) => {
                    if self.allowed_in_direction(*doc, schema, name, &child_at) {
                        self.check_depth(*doc, schema, value, &child_at, depth + 1);
                    }
                }
                None => match additional {
                    Some((_, Value::Bool(true))) => {}
                    Some((doc, schema @ Value::Object(_))) => {
                        self.check_depth(doc, schema, value, &child_at, depth + 1);
                    }
                    None if !declares_properties => {}
                    _ => self.violation(
                        &child_at,
                        format!(
                            "property {name:?} is not declared by the schema (which allows \
                             no additional properties)"
                        ),
                    ),
                },
            }
        }
    }

    /// Applies `readOnly`, `x-ms-mutability` and `x-ms-secret` for the direction. `false`
    /// when the value is ignored (a read-only property in a request, tolerated by ARM).
    fn allowed_in_direction(
        &mut self,
        doc: DocId,
        schema: &'s Value,
        name: &str,
        at: &str,
    ) -> bool {
        let access = self.access(doc, schema);
        match self.direction {
            Direction::Request(mutation) => {
                if access.read_only() {
                    self.note(
                        at,
                        format!("read-only property {name:?} sent in a request; ARM ignores it"),
                    );
                    return false;
                }
                if mutation == Mutation::Patch && !access.updatable() {
                    self.violation(
                        at,
                        format!(
                            "property {name:?} cannot be changed by PATCH (x-ms-mutability: {})",
                            access.mutability_list()
                        ),
                    );
                }
                true
            }
            Direction::Response => {
                if access.write_only() {
                    self.violation(
                        at,
                        format!(
                            "write-only property {name:?} returned in a response (x-ms-secret or \
                             x-ms-mutability without read)"
                        ),
                    );
                }
                true
            }
            Direction::Parameter => true,
        }
    }

    /// Access keywords of a property: on the property schema (siblings of `$ref`, as
    /// autorest honours them) or on what it references.
    fn access(&self, doc: DocId, schema: &'s Value) -> Access {
        let target = self.deref(doc, schema).map(|v| v.schema).unwrap_or(schema);
        let mutability = schema
            .get("x-ms-mutability")
            .or_else(|| target.get("x-ms-mutability"))
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            });
        Access {
            read_only: is_true(schema, "readOnly") || is_true(target, "readOnly"),
            secret: is_true(schema, "x-ms-secret") || is_true(target, "x-ms-secret"),
            mutability,
        }
    }
}

struct Access {
    read_only: bool,
    secret: bool,
    mutability: Option<Vec<String>>,
}

impl Access {
    fn has(&self, capability: &str) -> Option<bool> {
        self.mutability
            .as_ref()
            .map(|list| list.iter().any(|m| m == capability))
    }

    /// `readOnly`, or a mutability that allows neither create nor update.
    fn read_only(&self) -> bool {
        self.read_only || (self.has("create") == Some(false) && self.has("update") == Some(false))
    }

    fn updatable(&self) -> bool {
        self.has("update") != Some(false)
    }

    /// `x-ms-secret`, or a mutability without read: never returned.
    fn write_only(&self) -> bool {
        self.secret || self.has("read") == Some(false)
    }

    fn mutability_list(&self) -> String {
        self.mutability
            .as_ref()
            .map(|list| list.join(", "))
            .unwrap_or_default()
    }
}

/// `{ "allOf": [ {"$ref": …} ] }` used inline to attach a description to a reference.
fn is_all_of_wrapper(schema: &Value) -> bool {
    let Some(items) = schema.get("allOf").and_then(Value::as_array) else {
        return false;
    };
    items.len() == 1
        && items[0].get("$ref").is_some()
        && [
            "properties",
            "type",
            "additionalProperties",
            "discriminator",
            "required",
        ]
        .iter()
        .all(|k| schema.get(k).is_none())
}

fn is_true(schema: &Value, key: &str) -> bool {
    schema.get(key).and_then(Value::as_bool).unwrap_or(false)
}

fn is_integer(value: &Value) -> bool {
    value.is_i64() || value.is_u64() || value.as_f64().is_some_and(|f| f.fract() == 0.0)
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// JSON pointer token escaping.
pub(crate) fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

fn digits(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

/// `YYYY-MM-DD`.
fn is_date(text: &str) -> bool {
    let parts: Vec<&str> = text.split('-').collect();
    matches!(parts.as_slice(), [y, m, d] if y.len() == 4 && m.len() == 2 && d.len() == 2
        && digits(y) && digits(m) && digits(d))
}

/// A loose RFC 3339 date-time: date, `T` (or space), `hh:mm[:ss[.fff…]]`, optional zone
/// (`Z` or `±hh:mm`); Azure examples often omit the zone.
fn is_date_time(text: &str) -> bool {
    let Some((date, rest)) = text.split_once(['T', 't', ' ']) else {
        return false;
    };
    if !is_date(date) {
        return false;
    }
    let (time, zone) = match rest.find(['Z', 'z', '+', '-']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let zone_ok = match zone {
        "" | "Z" | "z" => true,
        offset => {
            let body = &offset[1..];
            let body = body.replace(':', "");
            body.len() == 4 && digits(&body)
        }
    };
    let (clock, fraction) = match time.split_once('.') {
        Some((c, f)) => (c, Some(f)),
        None => (time, None),
    };
    let clock_parts: Vec<&str> = clock.split(':').collect();
    let clock_ok = (2..=3).contains(&clock_parts.len())
        && clock_parts.iter().all(|p| p.len() == 2 && digits(p));
    let fraction_ok = fraction.is_none_or(digits);
    zone_ok && clock_ok && fraction_ok
}

/// `8-4-4-4-12` hexadecimal digits.
fn is_uuid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

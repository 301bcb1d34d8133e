//! What `infra/target/main.bicep` grants the service's identity, read from the Bicep text as
//! committed (no Bicep CLI): the custom role's actions, notActions, dataActions and
//! notDataActions, and every role assignment to the service principal with its role and ABAC
//! condition, parameters and variables resolved. The stand-in enforces exactly this, so a
//! change to `infra/` changes what the tests allow.

use std::collections::HashMap;
use std::path::Path;

use super::authz::{Permission, RoleDefinition};

/// Why the Bicep text could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantsError {
    /// The file could not be read.
    #[error("reading {path}: {message}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        message: String,
    },
    /// The text has a construct the extractor does not understand (change the extractor
    /// together with the template).
    #[error("infra/target/main.bicep: {0}")]
    Syntax(String),
}

/// A value of the small Bicep subset the extractor evaluates.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Str(String),
    Bool(bool),
    List(Vec<Value>),
    /// A resource declared in the file (`operatorRole.id`).
    Resource(String),
    /// `subscription()`.
    Subscription,
    /// Anything the extractor need not know (names, locations, tags).
    Opaque,
}

impl Value {
    fn strings(&self) -> Result<Vec<String>, GrantsError> {
        match self {
            Value::List(items) => items
                .iter()
                .map(|v| match v {
                    Value::Str(s) => Ok(s.clone()),
                    other => Err(GrantsError::Syntax(format!("{other:?} in a string list"))),
                })
                .collect(),
            other => Err(GrantsError::Syntax(format!("{other:?} is not a list"))),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Str(String),
    Ident(String),
    Punct(char),
    Newline,
}

fn tokenize(text: &str) -> Result<Vec<Tok>, GrantsError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '/' && chars.get(i + 1) == Some(&'/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && chars.get(i + 1) == Some(&'*') {
            i += 2;
            while i + 1 < chars.len() && !(chars[i] == '*' && chars[i + 1] == '/') {
                i += 1;
            }
            i += 2;
        } else if c == '\n' {
            out.push(Tok::Newline);
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c == '\'' {
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err(GrantsError::Syntax("an unterminated string".into())),
                    Some('\\') => {
                        let next = chars.get(i + 1).copied().unwrap_or('\\');
                        s.push(match next {
                            'n' => '\n',
                            't' => '\t',
                            other => other,
                        });
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(&ch) => {
                        s.push(ch);
                        i += 1;
                    }
                }
            }
            out.push(Tok::Str(s));
        } else if c.is_ascii_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(Tok::Ident(chars[start..i].iter().collect()));
        } else {
            out.push(Tok::Punct(c));
            i += 1;
        }
    }
    Ok(out)
}

/// A parsed file: top-level declarations, with expressions kept as token ranges.
struct File {
    toks: Vec<Tok>,
    params: HashMap<String, (usize, Option<usize>)>,
    vars: HashMap<String, usize>,
    /// symbol → (type, start of its body object).
    resources: Vec<(String, String, usize)>,
}

struct Eval<'a> {
    file: &'a File,
    params: &'a HashMap<String, Value>,
    subscription_id: &'a str,
    depth: usize,
}

impl File {
    fn parse(text: &str) -> Result<Self, GrantsError> {
        let toks = tokenize(text)?;
        let mut file = File {
            toks,
            params: HashMap::new(),
            vars: HashMap::new(),
            resources: Vec::new(),
        };
        let mut i = 0;
        while i < file.toks.len() {
            match &file.toks[i] {
                Tok::Newline => i += 1,
                Tok::Punct('@') => i = file.skip_line(i),
                Tok::Ident(kw) if kw == "param" => {
                    let name = file.ident(i + 1)?;
                    // param NAME TYPE [= default]
                    let default = (file.toks.get(i + 3) == Some(&Tok::Punct('='))).then_some(i + 4);
                    file.params.insert(name, (i, default));
                    i = file.skip_line(i);
                }
                Tok::Ident(kw) if kw == "var" => {
                    let name = file.ident(i + 1)?;
                    if file.toks.get(i + 2) != Some(&Tok::Punct('=')) {
                        return Err(GrantsError::Syntax(format!("var {name} without '='")));
                    }
                    file.vars.insert(name, i + 3);
                    i = file.skip_line(i);
                }
                Tok::Ident(kw) if kw == "resource" || kw == "module" => {
                    let symbol = file.ident(i + 1)?;
                    let Some(Tok::Str(kind)) = file.toks.get(i + 2) else {
                        return Err(GrantsError::Syntax(format!("{kw} {symbol} without a type")));
                    };
                    let kind = kind.clone();
                    let body = (i..file.toks.len())
                        .find(|&j| file.toks[j] == Tok::Punct('{'))
                        .ok_or_else(|| GrantsError::Syntax(format!("{kw} {symbol} has no body")))?;
                    if kw == "resource" {
                        file.resources.push((symbol, kind, body));
                    }
                    i = file.skip_line(i);
                }
                Tok::Ident(kw) if kw == "targetScope" || kw == "output" => i = file.skip_line(i),
                other => {
                    return Err(GrantsError::Syntax(format!(
                        "unexpected {other:?} at the top level"
                    )));
                }
            }
        }
        Ok(file)
    }

    fn ident(&self, i: usize) -> Result<String, GrantsError> {
        match self.toks.get(i) {
            Some(Tok::Ident(s)) => Ok(s.clone()),
            other => Err(GrantsError::Syntax(format!(
                "expected a name, found {other:?}"
            ))),
        }
    }

    /// The index after the statement starting at `i` (a newline outside brackets).
    fn skip_line(&self, mut i: usize) -> usize {
        let mut depth = 0i32;
        while i < self.toks.len() {
            match self.toks[i] {
                Tok::Punct('(' | '[' | '{') => depth += 1,
                Tok::Punct(')' | ']' | '}') => depth -= 1,
                Tok::Newline if depth <= 0 => return i + 1,
                _ => {}
            }
            i += 1;
        }
        i
    }

    /// The properties `key: <expr start>` of the object starting at `open` (`{`), nested
    /// objects flattened with dotted keys (`properties.roleDefinitionId`).
    fn object(&self, open: usize, prefix: &str, out: &mut HashMap<String, usize>) -> usize {
        let mut i = open + 1;
        while i < self.toks.len() {
            match &self.toks[i] {
                Tok::Punct('}') => return i + 1,
                Tok::Ident(key) if self.toks.get(i + 1) == Some(&Tok::Punct(':')) => {
                    let key = format!("{prefix}{key}");
                    if self.toks.get(i + 2) == Some(&Tok::Punct('{')) {
                        i = self.object(i + 2, &format!("{key}."), out);
                    } else {
                        out.insert(key, i + 2);
                        i = self.skip_line(i);
                    }
                }
                _ => i += 1,
            }
        }
        i
    }
}

impl Eval<'_> {
    fn syntax(&self, what: impl Into<String>) -> GrantsError {
        GrantsError::Syntax(what.into())
    }

    fn skip_newlines(&self, mut i: usize) -> usize {
        while self.file.toks.get(i) == Some(&Tok::Newline) {
            i += 1;
        }
        i
    }

    /// Evaluates the expression at `i`; returns it and the index after it.
    fn expr(&mut self, i: usize) -> Result<(Value, usize), GrantsError> {
        let (cond, next) = self.primary(i)?;
        if self.file.toks.get(next) == Some(&Tok::Punct('?')) {
            let (yes, next) = self.expr(next + 1)?;
            if self.file.toks.get(next) != Some(&Tok::Punct(':')) {
                return Err(self.syntax("a '?' without ':'"));
            }
            let (no, next) = self.expr(next + 1)?;
            return match cond {
                Value::Bool(true) => Ok((yes, next)),
                Value::Bool(false) => Ok((no, next)),
                other => Err(self.syntax(format!("a condition on {other:?}"))),
            };
        }
        Ok((cond, next))
    }

    fn primary(&mut self, i: usize) -> Result<(Value, usize), GrantsError> {
        let i = self.skip_newlines(i);
        let tok = self.file.toks.get(i).cloned();
        let (mut value, mut next) = match tok {
            Some(Tok::Str(raw)) => (Value::Str(self.interpolate(&raw)?), i + 1),
            Some(Tok::Punct('[')) => {
                let mut items = Vec::new();
                let mut j = self.skip_newlines(i + 1);
                while self.file.toks.get(j) != Some(&Tok::Punct(']')) {
                    let (item, after) = self.expr(j)?;
                    items.push(item);
                    j = after;
                    if self.file.toks.get(j) == Some(&Tok::Punct(',')) {
                        j += 1;
                    }
                    j = self.skip_newlines(j);
                    if j >= self.file.toks.len() {
                        return Err(self.syntax("an unterminated list"));
                    }
                }
                (Value::List(items), j + 1)
            }
            Some(Tok::Punct('(')) => {
                let (v, j) = self.expr(i + 1)?;
                (v, j + 1)
            }
            Some(Tok::Punct('{')) => {
                let mut ignored = HashMap::new();
                (Value::Opaque, self.file.object(i, "", &mut ignored))
            }
            Some(Tok::Ident(name)) if self.file.toks.get(i + 1) == Some(&Tok::Punct('(')) => {
                let mut args = Vec::new();
                let mut j = i + 2;
                while self.file.toks.get(j) != Some(&Tok::Punct(')')) {
                    let (arg, after) = self.expr(j)?;
                    args.push(arg);
                    j = self.skip_newlines(after);
                    if self.file.toks.get(j) == Some(&Tok::Punct(',')) {
                        j += 1;
                    }
                    if j >= self.file.toks.len() {
                        return Err(self.syntax("an unterminated call"));
                    }
                }
                (self.call(&name, args)?, j + 1)
            }
            Some(Tok::Ident(name)) => (self.name(&name)?, i + 1),
            other => return Err(self.syntax(format!("unexpected {other:?} in an expression"))),
        };
        while self.file.toks.get(next) == Some(&Tok::Punct('.')) {
            let member = self.file.ident(next + 1)?;
            value = match (value, member.as_str()) {
                (Value::Subscription, "id") => {
                    Value::Str(format!("/subscriptions/{}", self.subscription_id))
                }
                (Value::Subscription, "subscriptionId") => {
                    Value::Str(self.subscription_id.to_string())
                }
                (Value::Resource(r), "id") => Value::Resource(r),
                _ => Value::Opaque,
            };
            next += 2;
        }
        Ok((value, next))
    }

    fn call(&mut self, name: &str, args: Vec<Value>) -> Result<Value, GrantsError> {
        Ok(match (name, args.as_slice()) {
            ("concat", _) if args.iter().all(|a| matches!(a, Value::List(_))) => Value::List(
                args.into_iter()
                    .flat_map(|a| match a {
                        Value::List(items) => items,
                        _ => Vec::new(),
                    })
                    .collect(),
            ),
            ("join", [list @ Value::List(_), Value::Str(sep)]) => {
                Value::Str(list.strings()?.join(sep))
            }
            ("subscriptionResourceId", [Value::Str(kind), Value::Str(name)]) => {
                Value::Str(format!(
                    "/subscriptions/{}/providers/{kind}/{name}",
                    self.subscription_id
                ))
            }
            ("subscription", []) => Value::Subscription,
            ("concat" | "join" | "subscriptionResourceId", _) => {
                return Err(self.syntax(format!("{name}({args:?})")));
            }
            _ => Value::Opaque,
        })
    }

    fn name(&mut self, name: &str) -> Result<Value, GrantsError> {
        match name {
            "true" => return Ok(Value::Bool(true)),
            "false" => return Ok(Value::Bool(false)),
            _ => {}
        }
        self.depth += 1;
        if self.depth > 64 {
            return Err(self.syntax(format!("{name} refers to itself")));
        }
        let value = if let Some(v) = self.params.get(name) {
            Ok(v.clone())
        } else if let Some(&(_, default)) = self.file.params.get(name) {
            match default {
                Some(at) => self.expr(at).map(|(v, _)| v),
                None => Err(self.syntax(format!("parameter {name} has no value"))),
            }
        } else if let Some(&at) = self.file.vars.get(name) {
            self.expr(at).map(|(v, _)| v)
        } else if self.file.resources.iter().any(|(s, _, _)| s == name) {
            Ok(Value::Resource(name.to_string()))
        } else {
            Ok(Value::Opaque)
        };
        self.depth -= 1;
        value
    }

    /// Resolves `${name}` (and `${name.member}`) in a string.
    fn interpolate(&mut self, raw: &str) -> Result<String, GrantsError> {
        let mut out = String::new();
        let mut rest = raw;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let end = rest[start..]
                .find('}')
                .ok_or_else(|| self.syntax("an unterminated ${"))?;
            let inner = &rest[start + 2..start + end];
            let toks = tokenize(inner)?;
            let value = match toks.as_slice() {
                [Tok::Ident(n)] => self.name(n)?,
                [
                    Tok::Ident(f),
                    Tok::Punct('('),
                    Tok::Punct(')'),
                    Tok::Punct('.'),
                    Tok::Ident(m),
                ] if f == "subscription" && m == "subscriptionId" => {
                    Value::Str(self.subscription_id.to_string())
                }
                _ => Value::Opaque,
            };
            match value {
                Value::Str(s) => out.push_str(&s),
                Value::Bool(b) => out.push_str(&b.to_string()),
                _ => out.push_str(&rest[start..start + end + 1]),
            }
            rest = &rest[start + end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// One role assignment the template gives the service principal.
#[derive(Debug, Clone, PartialEq)]
pub struct GrantedAssignment {
    /// The Bicep symbol (`operatorAssignment`).
    pub symbol: String,
    /// The role definition's GUID (lower case).
    pub role_guid: String,
    /// The role's name (the custom role's `roleName`, or the built-in name when known).
    pub role_name: String,
    /// The ABAC condition, parameters and variables resolved.
    pub condition: Option<String>,
    /// Its version (`2.0`).
    pub condition_version: Option<String>,
}

/// Everything `infra/target/main.bicep` grants the service principal in one target
/// subscription (all assignments there are at subscription scope).
#[derive(Debug, Clone, PartialEq)]
pub struct TargetGrants {
    /// The subscription the grants were resolved for.
    pub subscription_id: String,
    /// The service principal.
    pub principal_id: String,
    /// Custom roles the template defines.
    pub custom_roles: Vec<RoleDefinition>,
    /// The assignments to the service principal.
    pub assignments: Vec<GrantedAssignment>,
}

/// The template's parameters that change what is granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetParams {
    /// The service principal's object id (`servicePrincipalId`).
    pub service_principal_id: String,
    /// The target subscription.
    pub subscription_id: String,
    /// `allowOptionalRoles` (default: the template's).
    pub allow_optional_roles: Option<bool>,
    /// `allowNodePoolScaling` (default: the template's).
    pub allow_node_pool_scaling: Option<bool>,
}

impl TargetParams {
    /// The template's defaults for `principal` in `subscription`.
    pub fn new(principal: &str, subscription: &str) -> Self {
        Self {
            service_principal_id: principal.to_string(),
            subscription_id: subscription.to_string(),
            allow_optional_roles: None,
            allow_node_pool_scaling: None,
        }
    }
}

/// The repository's `infra/target/main.bicep`.
pub fn target_template_path() -> std::path::PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).join("infra/target/main.bicep")
}

impl TargetGrants {
    /// Reads [`target_template_path`].
    ///
    /// # Errors
    /// See [`GrantsError`].
    pub fn from_repository(params: &TargetParams) -> Result<Self, GrantsError> {
        let path = target_template_path();
        let text = std::fs::read_to_string(&path).map_err(|e| GrantsError::Read {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Self::from_bicep(&text, params)
    }

    /// Extracts the grants from the text of `infra/target/main.bicep`.
    ///
    /// # Errors
    /// A construct the extractor does not read, or a role assignment to the service
    /// principal whose role or condition cannot be resolved.
    pub fn from_bicep(text: &str, params: &TargetParams) -> Result<Self, GrantsError> {
        let file = File::parse(text)?;
        let mut given = HashMap::new();
        given.insert(
            "servicePrincipalId".to_string(),
            Value::Str(params.service_principal_id.clone()),
        );
        if let Some(b) = params.allow_optional_roles {
            given.insert("allowOptionalRoles".into(), Value::Bool(b));
        }
        if let Some(b) = params.allow_node_pool_scaling {
            given.insert("allowNodePoolScaling".into(), Value::Bool(b));
        }
        let mut eval = Eval {
            file: &file,
            params: &given,
            subscription_id: &params.subscription_id,
            depth: 0,
        };
        let mut custom_roles = Vec::new();
        let mut custom_symbols = HashMap::new();
        let mut assignments = Vec::new();
        for (symbol, kind, body) in &file.resources {
            let mut props = HashMap::new();
            file.object(*body, "", &mut props);
            let get = |eval: &mut Eval<'_>, key: &str| -> Result<Option<Value>, GrantsError> {
                props
                    .get(key)
                    .map(|&at| eval.expr(at).map(|(v, _)| v))
                    .transpose()
            };
            let kind = kind.split('@').next().unwrap_or_default();
            if kind.eq_ignore_ascii_case("Microsoft.Authorization/roleDefinitions") {
                let Some(Value::Str(name)) = get(&mut eval, "properties.roleName")? else {
                    return Err(GrantsError::Syntax(format!("{symbol} has no roleName")));
                };
                let permissions = permissions(&file, &mut eval, &props, symbol)?;
                // The stand-in keys custom roles by a GUID derived from the symbol (Bicep's
                // guid() is not reproduced).
                let guid =
                    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, symbol.as_bytes()).to_string();
                custom_symbols.insert(symbol.clone(), (guid.clone(), name.clone()));
                custom_roles.push(RoleDefinition {
                    guid,
                    name,
                    permissions,
                });
            }
        }
        for (symbol, kind, body) in &file.resources {
            let kind = kind.split('@').next().unwrap_or_default();
            if !kind.eq_ignore_ascii_case("Microsoft.Authorization/roleAssignments") {
                continue;
            }
            let mut props = HashMap::new();
            file.object(*body, "", &mut props);
            let mut get = |key: &str| -> Result<Option<Value>, GrantsError> {
                props
                    .get(key)
                    .map(|&at| eval.expr(at).map(|(v, _)| v))
                    .transpose()
            };
            let principal = get("properties.principalId")?;
            if principal != Some(Value::Str(params.service_principal_id.clone())) {
                continue;
            }
            let (role_guid, role_name) = match get("properties.roleDefinitionId")? {
                Some(Value::Resource(r)) => custom_symbols
                    .get(&r)
                    .cloned()
                    .ok_or_else(|| GrantsError::Syntax(format!("{symbol}: unknown role {r}")))?,
                Some(Value::Str(id)) => {
                    let guid = super::rbac::role_guid_of(&id)
                        .ok_or_else(|| GrantsError::Syntax(format!("{symbol}: role id {id}")))?;
                    let name = super::authz::built_in_name(&guid).unwrap_or("unknown role");
                    (guid, name.to_string())
                }
                other => {
                    return Err(GrantsError::Syntax(format!(
                        "{symbol}: roleDefinitionId {other:?}"
                    )));
                }
            };
            let text = |v: Option<Value>, what: &str| -> Result<Option<String>, GrantsError> {
                match v {
                    None => Ok(None),
                    Some(Value::Str(s)) if !s.contains("${") => Ok(Some(s)),
                    Some(other) => Err(GrantsError::Syntax(format!("{symbol}: {what} {other:?}"))),
                }
            };
            let condition = text(get("properties.condition")?, "condition")?;
            let condition_version = text(get("properties.conditionVersion")?, "conditionVersion")?;
            assignments.push(GrantedAssignment {
                symbol: symbol.clone(),
                role_guid,
                role_name,
                condition,
                condition_version,
            });
        }
        if assignments.is_empty() {
            return Err(GrantsError::Syntax(
                "no role assignment to servicePrincipalId".into(),
            ));
        }
        Ok(TargetGrants {
            subscription_id: params.subscription_id.clone(),
            principal_id: params.service_principal_id.clone(),
            custom_roles,
            assignments,
        })
    }

    /// The custom role the service's operations come from (the first one defined).
    pub fn operator_role(&self) -> Option<&RoleDefinition> {
        self.custom_roles.first()
    }

    /// The role GUIDs the condition of a role-assignment-writing assignment allows
    /// (`…:RoleDefinitionId] ForAnyOfAnyValues:GuidEquals {…}` of `@Request`).
    pub fn assignable_roles(&self) -> Vec<String> {
        self.assignments
            .iter()
            .filter_map(|a| a.condition.as_deref())
            .filter_map(|c| {
                let at =
                    c.find("@Request[Microsoft.Authorization/roleAssignments:RoleDefinitionId]")?;
                let open = at + c[at..].find('{')?;
                let close = open + c[open..].find('}')?;
                Some(
                    c[open + 1..close]
                        .split(',')
                        .map(|g| g.trim().trim_matches('\'').to_ascii_lowercase())
                        .filter(|g| !g.is_empty())
                        .collect::<Vec<_>>(),
                )
            })
            .flatten()
            .collect()
    }
}

fn permissions(
    _file: &File,
    eval: &mut Eval<'_>,
    props: &HashMap<String, usize>,
    symbol: &str,
) -> Result<Vec<Permission>, GrantsError> {
    let Some(&at) = props.get("properties.permissions") else {
        return Err(GrantsError::Syntax(format!("{symbol} has no permissions")));
    };
    // `permissions: [ { actions: … notActions: … } ]`: the objects' properties.
    let mut out = Vec::new();
    let mut i = eval.skip_newlines(at);
    if eval.file.toks.get(i) != Some(&Tok::Punct('[')) {
        return Err(GrantsError::Syntax(format!(
            "{symbol}: permissions is not a list"
        )));
    }
    i = eval.skip_newlines(i + 1);
    while eval.file.toks.get(i) == Some(&Tok::Punct('{')) {
        let mut keys = HashMap::new();
        let next = eval.file.object(i, "", &mut keys);
        let mut list = |key: &str| -> Result<Vec<String>, GrantsError> {
            match keys.get(key) {
                None => Ok(Vec::new()),
                Some(&at) => eval.expr(at)?.0.strings(),
            }
        };
        out.push(Permission {
            actions: list("actions")?,
            not_actions: list("notActions")?,
            data_actions: list("dataActions")?,
            not_data_actions: list("notDataActions")?,
        });
        i = eval.skip_newlines(next);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SP: &str = "11111111-2222-4333-8444-555555555555";
    const SUB: &str = "6f1b4e6a-2d9c-4b7e-9a51-3c0f8e2d7a10";

    #[test]
    fn the_committed_target_template_yields_the_operator_role_and_the_conditioned_admin() {
        let grants = TargetGrants::from_repository(&TargetParams::new(SP, SUB)).unwrap();
        let role = grants.operator_role().unwrap();
        assert_eq!(role.name, format!("AKS Backup Pilot operator ({SUB})"));
        let actions = &role.permissions[0].actions;
        assert!(
            actions.contains(
                &"Microsoft.ContainerService/managedClusters/listClusterUserCredential/action"
                    .to_string()
            )
        );
        assert!(
            actions.contains(
                &"Microsoft.ContainerService/managedClusters/agentPools/write".to_string()
            )
        );
        assert!(role.permissions[0].not_actions.is_empty());
        assert_eq!(grants.assignments.len(), 2);
        let admin = &grants.assignments[1];
        assert_eq!(admin.role_guid, super::super::authz::RBAC_ADMINISTRATOR);
        let condition = admin.condition.as_deref().unwrap();
        assert!(
            condition.contains(&format!("GuidNotEquals {{{SP}}}")),
            "{condition}"
        );
        assert!(!condition.contains("${"), "{condition}");
        assert_eq!(grants.assignable_roles().len(), 4);
        assert_eq!(admin.condition_version.as_deref(), Some("2.0"));

        let mut params = TargetParams::new(SP, SUB);
        params.allow_optional_roles = Some(true);
        params.allow_node_pool_scaling = Some(false);
        let wider = TargetGrants::from_repository(&params).unwrap();
        assert_eq!(wider.assignable_roles().len(), 6);
        assert!(
            !wider.operator_role().unwrap().permissions[0]
                .actions
                .iter()
                .any(|a| a.ends_with("agentPools/write"))
        );
    }

    #[test]
    fn a_changed_template_changes_the_grants() {
        let text = std::fs::read_to_string(target_template_path()).unwrap();
        let changed = text.replace(
            "  'Microsoft.Authorization/roleAssignments/read'\n",
            "  'Microsoft.Authorization/roleAssignments/read'\n  'Microsoft.Compute/snapshots/read'\n",
        );
        let grants = TargetGrants::from_bicep(&changed, &TargetParams::new(SP, SUB)).unwrap();
        assert!(
            grants.operator_role().unwrap().permissions[0]
                .actions
                .contains(&"Microsoft.Compute/snapshots/read".to_string())
        );
        assert!(TargetGrants::from_bicep("var x = ", &TargetParams::new(SP, SUB)).is_err());
    }
}

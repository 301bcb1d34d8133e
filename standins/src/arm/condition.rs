//! Azure ABAC role-assignment conditions (version 2.0), the subset role-assignment
//! delegation uses: `!`, `AND`, `OR`, parentheses, `ActionMatches{'…'}`, and
//! `@Request[…]` / `@Resource[…]` attributes compared with `GuidEquals`, `GuidNotEquals`,
//! `StringEquals`, `StringEqualsIgnoreCase`, `StringNotEquals` (optionally under
//! `ForAnyOfAnyValues:` / `ForAnyOfAllValues:`) against one value or a `{…}` set. Anything
//! else is a parse error, which the caller treats as "not fulfilled" (fail closed).

use std::collections::HashMap;

use super::authz::action_matches;

/// The attribute values of one request (single-valued).
#[derive(Debug, Clone, Default)]
pub struct Attributes {
    /// `@Request[name]`.
    pub request: HashMap<String, String>,
    /// `@Resource[name]`.
    pub resource: HashMap<String, String>,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Open,
    Close,
    Not,
    And,
    Or,
    ActionMatches(String),
    Attr { request: bool, name: String },
    Op(String),
    Set(Vec<String>),
    Str(String),
}

fn tokenize(text: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let s: Vec<char> = text.chars().collect();
    let mut i = 0;
    let quoted = |i: &mut usize| -> Result<String, String> {
        let mut v = String::new();
        *i += 1;
        while *i < s.len() && s[*i] != '\'' {
            v.push(s[*i]);
            *i += 1;
        }
        if *i >= s.len() {
            return Err("unterminated string".into());
        }
        *i += 1;
        Ok(v)
    };
    while i < s.len() {
        let c = s[i];
        match c {
            _ if c.is_whitespace() => i += 1,
            '(' => {
                out.push(Tok::Open);
                i += 1;
            }
            ')' => {
                out.push(Tok::Close);
                i += 1;
            }
            '!' => {
                out.push(Tok::Not);
                i += 1;
            }
            '\'' => out.push(Tok::Str(quoted(&mut i)?)),
            '{' => {
                let end = (i..s.len())
                    .find(|&j| s[j] == '}')
                    .ok_or("unterminated set")?;
                let inner: String = s[i + 1..end].iter().collect();
                out.push(Tok::Set(
                    inner
                        .split(',')
                        .map(|v| v.trim().trim_matches('\'').to_string())
                        .filter(|v| !v.is_empty())
                        .collect(),
                ));
                i = end + 1;
            }
            '@' => {
                let open = (i..s.len())
                    .find(|&j| s[j] == '[')
                    .ok_or("attribute without [")?;
                let close = (open..s.len())
                    .find(|&j| s[j] == ']')
                    .ok_or("attribute without ]")?;
                let source: String = s[i + 1..open].iter().collect();
                let request = match source.as_str() {
                    "Request" => true,
                    "Resource" => false,
                    other => return Err(format!("attribute source {other}")),
                };
                out.push(Tok::Attr {
                    request,
                    name: s[open + 1..close].iter().collect(),
                });
                i = close + 1;
            }
            _ => {
                let start = i;
                while i < s.len() && (s[i].is_ascii_alphanumeric() || s[i] == ':') {
                    i += 1;
                }
                if start == i {
                    return Err(format!("unexpected '{c}'"));
                }
                let word: String = s[start..i].iter().collect();
                match word.as_str() {
                    "AND" | "&&" => out.push(Tok::And),
                    "OR" | "||" => out.push(Tok::Or),
                    "ActionMatches" => {
                        while i < s.len() && s[i].is_whitespace() {
                            i += 1;
                        }
                        if s.get(i) != Some(&'{') {
                            return Err("ActionMatches without {".into());
                        }
                        i += 1;
                        while i < s.len() && s[i].is_whitespace() {
                            i += 1;
                        }
                        let action = quoted(&mut i)?;
                        while i < s.len() && s[i] != '}' {
                            i += 1;
                        }
                        i += 1;
                        out.push(Tok::ActionMatches(action));
                    }
                    _ => out.push(Tok::Op(word)),
                }
            }
        }
    }
    Ok(out)
}

struct Parser<'a> {
    toks: Vec<Tok>,
    at: usize,
    action: &'a str,
    attrs: &'a Attributes,
}

impl Parser<'_> {
    fn or(&mut self) -> Result<bool, String> {
        let mut value = self.and()?;
        while self.toks.get(self.at) == Some(&Tok::Or) {
            self.at += 1;
            let rhs = self.and()?;
            value = value || rhs;
        }
        Ok(value)
    }

    fn and(&mut self) -> Result<bool, String> {
        let mut value = self.unary()?;
        while self.toks.get(self.at) == Some(&Tok::And) {
            self.at += 1;
            let rhs = self.unary()?;
            value = value && rhs;
        }
        Ok(value)
    }

    fn unary(&mut self) -> Result<bool, String> {
        let tok = self.toks.get(self.at).cloned().ok_or("unexpected end")?;
        self.at += 1;
        match tok {
            Tok::Not => Ok(!self.unary()?),
            Tok::Open => {
                let v = self.or()?;
                if self.toks.get(self.at) != Some(&Tok::Close) {
                    return Err("missing )".into());
                }
                self.at += 1;
                Ok(v)
            }
            Tok::ActionMatches(pattern) => Ok(action_matches(&pattern, self.action)),
            Tok::Attr { request, name } => {
                let Some(Tok::Op(op)) = self.toks.get(self.at).cloned() else {
                    return Err(format!("{name} without an operator"));
                };
                self.at += 1;
                let values = match self.toks.get(self.at).cloned() {
                    Some(Tok::Set(v)) => v,
                    Some(Tok::Str(v)) => vec![v],
                    other => return Err(format!("{op} without a value: {other:?}")),
                };
                self.at += 1;
                let source = if request {
                    &self.attrs.request
                } else {
                    &self.attrs.resource
                };
                let Some(actual) = source.get(&name) else {
                    // An absent attribute fails the comparison (the operator must still exist).
                    return compare(&op, "", &values).map(|_| false);
                };
                compare(&op, actual, &values)
            }
            other => Err(format!("unexpected {other:?}")),
        }
    }
}

fn compare(op: &str, actual: &str, values: &[String]) -> Result<bool, String> {
    let (quantifier, base) = match op.split_once(':') {
        Some((q, b)) => (q, b),
        None => ("", op),
    };
    let guid = |s: &str| s.trim().to_ascii_lowercase().replace(['{', '}'], "");
    let one = |v: &String| -> Result<bool, String> {
        Ok(match base {
            "GuidEquals" => guid(actual) == guid(v),
            "GuidNotEquals" => guid(actual) != guid(v),
            "StringEquals" => actual == v,
            "StringNotEquals" => actual != v,
            "StringEqualsIgnoreCase" => actual.eq_ignore_ascii_case(v),
            "StringNotEqualsIgnoreCase" => !actual.eq_ignore_ascii_case(v),
            other => return Err(format!("operator {other}")),
        })
    };
    let results: Vec<bool> = values.iter().map(one).collect::<Result<_, _>>()?;
    match quantifier {
        "ForAnyOfAnyValues" => Ok(results.iter().any(|b| *b)),
        "ForAnyOfAllValues" => Ok(results.iter().all(|b| *b)),
        "" if results.len() == 1 => Ok(results[0]),
        other => Err(format!("quantifier {other}")),
    }
}

/// Evaluates `condition` for `action` with `attrs`.
///
/// # Errors
/// Syntax the stand-in does not model (callers treat it as not fulfilled).
pub fn evaluate(condition: &str, action: &str, attrs: &Attributes) -> Result<bool, String> {
    let mut parser = Parser {
        toks: tokenize(condition)?,
        at: 0,
        action,
        attrs,
    };
    let value = parser.or()?;
    if parser.at != parser.toks.len() {
        return Err("trailing text".into());
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    const COND: &str = "((!(ActionMatches{'Microsoft.Authorization/roleAssignments/write'})) OR (@Request[Microsoft.Authorization/roleAssignments:RoleDefinitionId] ForAnyOfAnyValues:GuidEquals {acdd72a7-3385-48ef-bd42-f606fba81ae7, b24988ac-6180-42a0-ab88-20f7382dd24c} AND @Request[Microsoft.Authorization/roleAssignments:PrincipalType] ForAnyOfAnyValues:StringEqualsIgnoreCase {'ServicePrincipal'} AND @Request[Microsoft.Authorization/roleAssignments:PrincipalId] ForAnyOfAllValues:GuidNotEquals {11111111-2222-4333-8444-555555555555}))";

    fn request(role: &str, kind: &str, principal: &str) -> Attributes {
        let mut a = Attributes::default();
        let ns = "Microsoft.Authorization/roleAssignments";
        a.request
            .insert(format!("{ns}:RoleDefinitionId"), role.into());
        a.request.insert(format!("{ns}:PrincipalType"), kind.into());
        a.request
            .insert(format!("{ns}:PrincipalId"), principal.into());
        a
    }

    #[test]
    fn the_delegation_condition_allows_only_listed_roles_to_others() {
        let write = "Microsoft.Authorization/roleAssignments/write";
        let other = "99999999-2222-4333-8444-555555555555";
        let me = "11111111-2222-4333-8444-555555555555";
        let reader = "ACDD72A7-3385-48ef-bd42-f606fba81ae7";
        let owner = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635";
        assert_eq!(
            evaluate(COND, write, &request(reader, "ServicePrincipal", other)),
            Ok(true)
        );
        assert_eq!(
            evaluate(COND, write, &request(owner, "ServicePrincipal", other)),
            Ok(false)
        );
        assert_eq!(
            evaluate(COND, write, &request(reader, "User", other)),
            Ok(false)
        );
        assert_eq!(
            evaluate(COND, write, &request(reader, "ServicePrincipal", me)),
            Ok(false)
        );
        assert_eq!(
            evaluate(
                COND,
                "Microsoft.Storage/storageAccounts/read",
                &Attributes::default()
            ),
            Ok(true)
        );
        assert!(evaluate("@Request[x] Frobnicates {a}", write, &Attributes::default()).is_err());
    }
}

//! Json.NET's wording of deserialization errors, as ARM relays them inside
//! `InvalidRequestContent`: a sentence, then where it happened — `Path 'properties.foo'` and,
//! when the parser knows it, `line 1, position 42` — and a full stop. A request whose error
//! is at the root has no path, so the message names none.

/// `sentence` (ending in a full stop) followed by where it happened.
pub fn located(sentence: &str, path: &str, position: Option<(usize, usize)>) -> String {
    match (path.is_empty(), position) {
        (false, Some((line, column))) => {
            format!("{sentence} Path '{path}', line {line}, position {column}.")
        }
        (false, None) => format!("{sentence} Path '{path}'."),
        (true, Some((line, column))) => format!("{sentence} Line {line}, position {column}."),
        (true, None) => sentence.to_string(),
    }
}

/// A required property is absent from the object at `path`.
pub fn required_missing(key: &str, path: &str) -> String {
    located(
        &format!("Required property '{key}' not found in JSON."),
        path,
        None,
    )
}

/// The value at `path` is not of the expected .NET type.
pub fn conversion_failed(value: &serde_json::Value, expected: &str, path: &str) -> String {
    located(
        &format!("Error converting value {value} to type '{expected}'."),
        path,
        None,
    )
}

/// A body that is not JSON at all, at the parser's line and position.
pub fn syntax(error: &serde_json::Error) -> String {
    let text = error.to_string();
    let what = text
        .rsplit_once(" at line ")
        .map_or(text.as_str(), |(what, _)| what);
    let mut sentence: String = what.chars().take(1).flat_map(char::to_uppercase).collect();
    sentence.extend(what.chars().skip(1));
    sentence.push('.');
    located(&sentence, "", Some((error.line(), error.column())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn messages_name_a_clean_path_or_none_at_the_root() {
        assert_eq!(
            required_missing("foo", "properties"),
            "Required property 'foo' not found in JSON. Path 'properties'."
        );
        assert_eq!(
            required_missing("location", ""),
            "Required property 'location' not found in JSON."
        );
        assert_eq!(
            conversion_failed(&json!(1), "System.String", "properties.foo"),
            "Error converting value 1 to type 'System.String'. Path 'properties.foo'."
        );
        assert_eq!(
            located("Bad.", "properties.foo", Some((1, 42))),
            "Bad. Path 'properties.foo', line 1, position 42."
        );
        for message in [
            required_missing("x", ""),
            conversion_failed(&json!([]), "T", ""),
        ] {
            assert!(!message.contains("Path"), "{message}");
            assert!(!message.contains("''"), "{message}");
        }
    }

    #[test]
    fn syntax_errors_give_the_line_and_position() {
        let error = serde_json::from_str::<serde_json::Value>("{\"a\": }").unwrap_err();
        assert_eq!(syntax(&error), "Expected value. Line 1, position 7.");
    }
}

//! host.json and every function.json validate against the shared SchemaStore schemas, with
//! draft 7 semantics (the function.json schema declares draft 4 but uses `const`, see
//! shared/schemas/README.md), and agree with the handler's routes and bindings.

use crate::common;
use std::path::Path;

use backup_pilot::handler::functions::bindings;
use backup_pilot::handler::names;
use serde_json::Value;

fn read(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn draft7_errors(schema: &Value, instance: &Value) -> Vec<String> {
    let validator = jsonschema::draft7::new(schema).expect("schema compiles as draft 7");
    validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

#[test]
fn host_and_function_json_validate_against_the_shared_schemas() {
    let Some(shared) = common::shared_dir() else {
        return common::skipped("shared schemas not found");
    };
    let host_schema = read(&shared.join("schemas/host.json.schema.json"));
    let function_schema = read(&shared.join("schemas/function.json.schema.json"));

    let errors = draft7_errors(&host_schema, &read(&repo().join("host.json")));
    assert!(errors.is_empty(), "host.json: {errors:#?}");
    for name in names::ALL {
        let path = repo().join("functions").join(name).join("function.json");
        let errors = draft7_errors(&function_schema, &read(&path));
        assert!(errors.is_empty(), "{}: {errors:#?}", path.display());
    }

    // The validators really reject: a serviceBus section matching neither extension shape, a
    // binding without a direction.
    let mut bad_host = read(&repo().join("host.json"));
    bad_host["extensions"]["serviceBus"] = serde_json::json!({"prefetchCount": 0});
    assert!(
        !draft7_errors(&host_schema, &bad_host).is_empty(),
        "serviceBus {{prefetchCount}} alone matches both shapes and must fail"
    );
    let bad_fn = serde_json::json!({"bindings": [{"name": "m", "type": "serviceBusTrigger", "queueName": "q"}]});
    assert!(!draft7_errors(&function_schema, &bad_fn).is_empty());
}

#[test]
fn function_folders_match_the_handler() {
    let mut found: Vec<String> = std::fs::read_dir(repo().join("functions"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    found.sort();
    let mut expected: Vec<String> = names::ALL.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(found, expected);

    let trigger = |name: &str| {
        read(&repo().join("functions").join(name).join("function.json"))["bindings"][0].clone()
    };
    for (function, binding) in [
        (names::CLUSTER_EVENTS, bindings::EVENT),
        (names::WORKFLOW, bindings::MESSAGE),
        (names::RESTORE_REQUESTS, bindings::REQUEST),
    ] {
        let b = trigger(function);
        assert_eq!(b["name"], binding, "{function}");
        assert_eq!(b["type"], "serviceBusTrigger");
        assert_eq!(
            b["dataType"], "binary",
            "{function}: the handler decodes base64 bodies"
        );
        assert_eq!(b["queueName"], function, "queue names equal function names");
    }
    assert_eq!(trigger(names::RESTORE_DRILLS)["name"], bindings::TIMER);
    let status = read(&repo().join("functions/status/function.json"));
    assert_eq!(status["bindings"][0]["name"], bindings::HTTP_REQUEST);
    assert_eq!(status["bindings"][0]["authLevel"], "function");
    assert_eq!(status["bindings"][1]["name"], bindings::HTTP_RESPONSE);
}

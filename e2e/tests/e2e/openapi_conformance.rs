//! Self-tests of the OpenAPI conformance checker (`tests/support/openapi`): a synthetic spec
//! exercises loading, cross-file refs and discriminators without the shelf; with the shelf,
//! the specs' own examples validate (known disagreements listed with reasons), hand-made
//! invalid requests and responses are caught, and a journal replays into a report.

use crate::{common, support};
use backup_pilot::arm::versions;
use serde_json::{Value, json};
use support::openapi::examples::{Attribution, ExplicitAttribution, example_cases};
use support::openapi::{
    ArmRequestRecord, LoadError, Side, SpecSet, Violation, check_journal, shared_specs,
};

/// The shelf's specs, or `None` after printing the skip.
fn specs() -> Option<&'static SpecSet> {
    match shared_specs(common::shared_dir()) {
        Ok(specs) => Some(specs),
        Err(why) => {
            common::skipped(&why);
            None
        }
    }
}

const SUB: &str = "6f3c9a52-1d2b-4c8e-9f7a-2b5d8e1c4a90";
const RG: &str = "rg-aks";
const ROLE_ASSIGNMENT: &str = "3f2504e0-4f89-41d3-9a0c-0305e82c3301";
const PRINCIPAL: &str = "0b7c8a3e-5d1f-4e2a-9c6b-7d8e9f0a1b2c";
const READER: &str = "acdd72a7-3385-48ef-bd42-f606fba81ae7";

fn api(version: &str) -> Vec<(String, String)> {
    vec![("api-version".to_string(), version.to_string())]
}

fn cluster() -> String {
    format!(
        "/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.ContainerService/managedClusters/aks1"
    )
}

fn vault() -> String {
    format!(
        "/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.DataProtection/backupVaults/vault1"
    )
}

fn storage_account(name: &str) -> String {
    format!(
        "/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Storage/storageAccounts/{name}"
    )
}

fn role_assignment_at(scope: &str) -> String {
    format!("{scope}/providers/Microsoft.Authorization/roleAssignments/{ROLE_ASSIGNMENT}")
}

fn role_assignment_body() -> Value {
    json!({"properties": {
        "roleDefinitionId": format!("/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{READER}"),
        "principalId": PRINCIPAL,
        "principalType": "ServicePrincipal"
    }})
}

fn role_assignment_response(scope: &str) -> Value {
    json!({
        "id": role_assignment_at(scope),
        "name": ROLE_ASSIGNMENT,
        "type": "Microsoft.Authorization/roleAssignments",
        "properties": {
            "scope": scope,
            "roleDefinitionId": format!("/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{READER}"),
            "principalId": PRINCIPAL,
            "principalType": "ServicePrincipal",
            "createdOn": "2024-05-01T10:00:00.000Z"
        }
    })
}

fn aks_backup_instance_body() -> Value {
    json!({"properties": {
        "friendlyName": "aks1",
        "objectType": "BackupInstance",
        "dataSourceInfo": {
            "objectType": "Datasource",
            "resourceID": cluster(),
            "resourceName": "aks1",
            "resourceType": "Microsoft.ContainerService/managedClusters",
            "datasourceType": "Microsoft.ContainerService/managedClusters",
            "resourceLocation": "eastus"
        },
        "dataSourceSetInfo": {
            "objectType": "DatasourceSet",
            "resourceID": cluster(),
            "datasourceType": "Microsoft.ContainerService/managedClusters"
        },
        "policyInfo": {
            "policyId": format!("{}/backupPolicies/aks-policy", vault()),
            "policyParameters": {
                "dataStoreParametersList": [{
                    "objectType": "AzureOperationalStoreParameters",
                    "dataStoreType": "OperationalStore",
                    "resourceGroupId": format!("/subscriptions/{SUB}/resourceGroups/rg-snapshots")
                }],
                "backupDatasourceParametersList": [{
                    "objectType": "KubernetesClusterBackupDatasourceParameters",
                    "snapshotVolumes": true,
                    "includeClusterScopeResources": true,
                    "excludedNamespaces": ["kube-system"]
                }]
            }
        }
    }})
}

/// Panics with every violation when there is any.
fn assert_clean(what: &str, violations: &[Violation]) {
    assert!(
        violations.is_empty(),
        "{what}: expected no violations, got:\n{}",
        violations
            .iter()
            .map(|v| format!("  {v}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// The violations at `location` whose message contains `needle`; panics when there are none.
fn assert_violation(what: &str, violations: &[Violation], location: &str, needle: &str) {
    assert!(
        violations
            .iter()
            .any(|v| v.location == location && v.message.contains(needle)),
        "{what}: expected a violation at {location:?} containing {needle:?}, got:\n{}",
        violations
            .iter()
            .map(|v| format!("  {v}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// Without the shelf: a synthetic spec tree.

/// Writes a small autorest-style spec tree: a cross-file base with a discriminator, a
/// three-level `allOf` chain (one level without `x-ms-discriminator-value`), a multi-segment
/// path parameter, `x-nullable`, `x-ms-mutability` and a PATCH operation.
fn synthetic_shelf(common_ref: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let version_dir = dir
        .path()
        .join("azure-specs/specification/test/resource-manager/Microsoft.Test/stable/2020-01-01");
    std::fs::create_dir_all(&version_dir).expect("create spec dirs");
    std::fs::create_dir_all(version_dir.join("examples")).expect("create examples dir");
    let common = json!({
        "swagger": "2.0", "info": {"version": "1.0"}, "paths": {},
        "definitions": {
            "Animal": {
                "type": "object", "discriminator": "kind", "required": ["kind"],
                "properties": {
                    "kind": {"type": "string"},
                    "name": {"type": "string", "minLength": 2, "x-ms-mutability": ["read", "create"]},
                    "nickname": {"type": "string", "x-nullable": true},
                    "id": {"type": "string", "readOnly": true}
                }
            }
        },
        "parameters": {
            "Scope": {"name": "scope", "in": "path", "required": true, "type": "string", "x-ms-skip-url-encoding": true},
            "Api": {"name": "api-version", "in": "query", "required": true, "type": "string"}
        }
    });
    let common_file = "../../common.json";
    let main = json!({
        "swagger": "2.0", "info": {"version": "2020-01-01"},
        "paths": {
            "/{scope}/providers/Microsoft.Test/pets/{petName}": {
                "put": {
                    "operationId": "Pets_Put",
                    "parameters": [
                        {"$ref": format!("{common_file}#/parameters/Scope")},
                        {"name": "petName", "in": "path", "required": true, "type": "string", "pattern": "^[a-z]+$"},
                        {"$ref": format!("{common_file}#/parameters/Api")},
                        {"name": "pet", "in": "body", "required": true, "schema": {"$ref": "#/definitions/Holder"}}
                    ],
                    "responses": {
                        "200": {"description": "ok", "schema": {"$ref": "#/definitions/Holder"}},
                        "202": {"description": "accepted"},
                        "default": {"description": "error", "schema": {"$ref": "#/definitions/Error"}}
                    }
                },
                "patch": {
                    "operationId": "Pets_Update",
                    "parameters": [
                        {"$ref": format!("{common_file}#/parameters/Scope")},
                        {"name": "petName", "in": "path", "required": true, "type": "string"},
                        {"$ref": format!("{common_file}#/parameters/Api")},
                        {"name": "pet", "in": "body", "required": true, "schema": {"$ref": "#/definitions/Holder"}}
                    ],
                    "responses": {"200": {"description": "ok", "schema": {"$ref": "#/definitions/Holder"}}}
                }
            }
        },
        "definitions": {
            "Holder": {
                "type": "object",
                "properties": {
                    "animal": {"$ref": common_ref},
                    "dog": {"description": "a dog", "allOf": [{"$ref": "#/definitions/Dog"}]},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}}
                }
            },
            "Dog": {
                "type": "object", "allOf": [{"$ref": common_ref}],
                "properties": {"barks": {"type": "boolean"}}
            },
            "Puppy": {
                "type": "object", "allOf": [{"$ref": "#/definitions/Dog"}],
                "x-ms-discriminator-value": "puppy",
                "required": ["ageWeeks"],
                "properties": {"ageWeeks": {"type": "integer", "format": "int32", "minimum": 0}}
            },
            "Cat": {
                "type": "object", "allOf": [{"$ref": common_ref}],
                "x-ms-discriminator-value": "cat",
                "properties": {"color": {"type": "string", "enum": ["black", "white"], "x-ms-enum": {"name": "Color", "modelAsString": false}}}
            },
            "Error": {"type": "object", "properties": {"error": {"type": "object", "properties": {"code": {"type": "string"}}}}}
        }
    });
    std::fs::write(
        dir.path()
            .join("azure-specs/specification/test/resource-manager/Microsoft.Test/common.json"),
        common.to_string(),
    )
    .expect("write common");
    std::fs::write(version_dir.join("pets.json"), main.to_string()).expect("write spec");
    // Examples folders are never loaded as specs, even when they have `paths`.
    std::fs::write(
        version_dir.join("examples/broken.json"),
        r#"{"paths": {"/x": {}}, "$ref": "nowhere.json"}"#,
    )
    .expect("write example");
    dir
}

const COMMON_ANIMAL: &str = "../../common.json#/definitions/Animal";

#[test]
fn load_reports_a_missing_shelf() {
    let empty = tempfile::tempdir().expect("temp dir");
    match SpecSet::load(empty.path()) {
        Err(LoadError::FindSpecDirectory(path)) => {
            assert!(
                path.ends_with("azure-specs/specification"),
                "{}",
                path.display()
            )
        }
        Err(other) => panic!("expected FindSpecDirectory, got {other}"),
        Ok(_) => panic!("an empty directory must not load"),
    }
}

#[test]
fn load_reports_an_unresolvable_reference() {
    let shelf = synthetic_shelf("../../common.json#/definitions/Animals");
    match SpecSet::load(shelf.path()) {
        Err(LoadError::ResolveRef { reference, .. }) => {
            assert_eq!(reference, "../../common.json#/definitions/Animals")
        }
        Err(other) => panic!("expected ResolveRef, got {other}"),
        Ok(_) => panic!("a dangling $ref must not load"),
    }
}

#[test]
fn synthetic_spec_dispatches_discriminators_through_allof_chains() {
    let shelf = synthetic_shelf(COMMON_ANIMAL);
    let specs = SpecSet::load(shelf.path()).expect("synthetic specs load");
    assert_eq!(specs.operation_count(), 2);
    let path = "/subscriptions/s1/resourceGroups/r1/providers/Microsoft.Test/pets/rex";
    let put = |body: Value| specs.validate_request("PUT", path, &api("2020-01-01"), Some(&body));

    // A derived-of-derived value (x-ms-discriminator-value) sees all three levels.
    assert_clean(
        "puppy",
        &put(json!({"animal": {"kind": "puppy", "name": "rex", "barks": true, "ageWeeks": 8}})),
    );
    // The middle level has no x-ms-discriminator-value: its definition name is the value.
    assert_clean(
        "Dog",
        &put(json!({"animal": {"kind": "Dog", "barks": false}})),
    );
    // Required of the selected variant.
    assert_violation(
        "puppy without ageWeeks",
        &put(json!({"animal": {"kind": "puppy", "barks": true}})),
        "/animal",
        "missing required property \"ageWeeks\"",
    );
    // A property of a sibling variant is not declared for this one.
    assert_violation(
        "Dog with color",
        &put(json!({"animal": {"kind": "Dog", "color": "black"}})),
        "/animal/color",
        "not declared",
    );
    // Unknown discriminator value.
    assert_violation(
        "unknown kind",
        &put(json!({"animal": {"kind": "Horse"}})),
        "/animal/kind",
        "unknown kind \"Horse\" for polymorphic Animal",
    );
    // Dispatch is scoped to the referenced definition's descendants (through an inline
    // allOf wrapper): a Cat is not a Dog.
    assert_violation(
        "cat as dog",
        &put(json!({"dog": {"kind": "cat"}})),
        "/dog/kind",
        "unknown kind \"cat\" for polymorphic Dog",
    );
    assert_clean(
        "puppy as dog",
        &put(json!({"dog": {"kind": "puppy", "ageWeeks": 1}})),
    );
    // Non-extensible enum, int32 minimum, minLength, x-nullable, additionalProperties.
    assert_violation(
        "cat color",
        &put(json!({"animal": {"kind": "cat", "color": "Black"}})),
        "/animal/color",
        "differs only in case from \"black\"",
    );
    assert_violation(
        "negative age",
        &put(json!({"animal": {"kind": "puppy", "ageWeeks": -1}})),
        "/animal/ageWeeks",
        "below the minimum",
    );
    assert_violation(
        "short name",
        &put(json!({"animal": {"kind": "cat", "name": "x"}})),
        "/animal/name",
        "shorter than minLength 2",
    );
    assert_clean(
        "nullable nickname",
        &put(json!({"animal": {"kind": "cat", "nickname": null}})),
    );
    assert_violation(
        "null name",
        &put(json!({"animal": {"kind": "cat", "name": null}})),
        "/animal/name",
        "null is not allowed",
    );
    assert_violation(
        "label value type",
        &put(json!({"labels": {"a": "b", "c": 3}})),
        "/labels/c",
        "expected string, found number",
    );
    // Read-only sent in a request: tolerated, noted.
    let checked = specs.check_request(
        "PUT",
        path,
        &api("2020-01-01"),
        Some(&json!({"animal": {"kind": "cat", "id": "x"}})),
    );
    assert_clean("read-only id", &checked.violations);
    assert!(
        checked
            .notes
            .iter()
            .any(|n| n.location == "/animal/id" && n.message.contains("read-only")),
        "{:?}",
        checked.notes
    );
    // x-ms-mutability [read, create]: not updatable by PATCH.
    assert_violation(
        "patch name",
        &specs.validate_request(
            "PATCH",
            path,
            &api("2020-01-01"),
            Some(&json!({"animal": {"kind": "cat", "name": "felix"}})),
        ),
        "/animal/name",
        "cannot be changed by PATCH",
    );
}

#[test]
fn synthetic_spec_matches_multi_segment_scopes_and_checks_responses() {
    let shelf = synthetic_shelf(COMMON_ANIMAL);
    let specs = SpecSet::load(shelf.path()).expect("synthetic specs load");
    for scope in [
        "subscriptions/s1",
        "subscriptions/s1/resourceGroups/r1/providers/Microsoft.X/things/t1",
    ] {
        let path = format!("/{scope}/providers/Microsoft.Test/pets/rex");
        let matched = specs
            .find_operation("put", &path, "2020-01-01")
            .unwrap_or_else(|v| panic!("{path}: {v}"));
        assert_eq!(matched.operation_id, "Pets_Put");
        assert_eq!(
            matched.path_params,
            vec![
                ("scope".to_string(), scope.to_string()),
                ("petName".to_string(), "rex".to_string())
            ]
        );
    }
    let bad_name = specs
        .find_operation(
            "PUT",
            "/subscriptions/s1/providers/Microsoft.Test/pets/Rex",
            "2020-01-01",
        )
        .expect_err("petName pattern");
    assert_eq!(bad_name.location, "path");
    assert!(
        bad_name.message.contains("does not match pattern ^[a-z]+$"),
        "{bad_name}"
    );
    let wrong_version = specs
        .find_operation(
            "PUT",
            "/subscriptions/s1/providers/Microsoft.Test/pets/rex",
            "2021-01-01",
        )
        .expect_err("version");
    assert_eq!(wrong_version.location, "query");
    assert!(
        wrong_version.message.contains("2020-01-01 (Pets_Put)"),
        "{wrong_version}"
    );

    let path = "/subscriptions/s1/providers/Microsoft.Test/pets/rex";
    let respond = |status: u16, body: Option<Value>| {
        specs.validate_response("PUT", path, "2020-01-01", status, body.as_ref())
    };
    assert_clean(
        "200",
        &respond(200, Some(json!({"animal": {"kind": "cat", "id": "x"}}))),
    );
    assert_clean("202 without body", &respond(202, None));
    assert_violation(
        "202 with body",
        &respond(202, Some(json!({}))),
        "body",
        "declared without a body",
    );
    assert_violation(
        "200 without body",
        &respond(200, None),
        "body",
        "none was returned",
    );
    assert_violation(
        "201",
        &respond(201, Some(json!({}))),
        "status",
        "status 201 is not declared",
    );
    assert_clean(
        "404 via default",
        &respond(404, Some(json!({"error": {"code": "NotFound"}}))),
    );
    assert_violation(
        "404 bad error",
        &respond(404, Some(json!({"error": {"code": 404}}))),
        "/error/code",
        "expected string",
    );
}

// ---------------------------------------------------------------------------------------
// With the shelf.

#[test]
fn every_operation_the_project_calls_is_matched() {
    let Some(specs) = specs() else { return };
    let e = format!(
        "{}/providers/Microsoft.KubernetesConfiguration/extensions",
        cluster()
    );
    let v = vault();
    let table: Vec<(&str, String, &str, &str)> = vec![
        (
            "GET",
            cluster(),
            versions::MANAGED_CLUSTERS,
            "ManagedClusters_Get",
        ),
        (
            "POST",
            format!("{}/listClusterUserCredential", cluster()),
            versions::MANAGED_CLUSTERS,
            "ManagedClusters_ListClusterUserCredentials",
        ),
        (
            "POST",
            format!("{}/runCommand", cluster()),
            versions::MANAGED_CLUSTERS,
            "ManagedClusters_RunCommand",
        ),
        (
            "GET",
            format!("{}/commandResults/c1", cluster()),
            versions::MANAGED_CLUSTERS,
            "ManagedClusters_GetCommandResult",
        ),
        (
            "PUT",
            format!("{}/trustedAccessRoleBindings/aks-backup", cluster()),
            versions::MANAGED_CLUSTERS,
            "TrustedAccessRoleBindings_CreateOrUpdate",
        ),
        (
            "GET",
            format!(
                "/subscriptions/{SUB}/providers/Microsoft.ContainerService/locations/eastus/trustedAccessRoles"
            ),
            versions::MANAGED_CLUSTERS,
            "TrustedAccessRoles_List",
        ),
        (
            "PUT",
            v.clone(),
            versions::BACKUP_VAULTS,
            "BackupVaults_CreateOrUpdate",
        ),
        (
            "GET",
            v.clone(),
            versions::BACKUP_VAULTS,
            "BackupVaults_Get",
        ),
        (
            "PUT",
            format!("{v}/backupPolicies/aks-policy"),
            versions::BACKUP_POLICIES,
            "BackupPolicies_CreateOrUpdate",
        ),
        (
            "PUT",
            format!("{v}/backupInstances/bi1"),
            versions::BACKUP_INSTANCES,
            "BackupInstances_CreateOrUpdate",
        ),
        (
            "POST",
            format!("{v}/validateForBackup"),
            versions::BACKUP_INSTANCES,
            "BackupInstances_ValidateForBackup",
        ),
        (
            "POST",
            format!("{v}/backupInstances/bi1/restore"),
            versions::BACKUP_INSTANCES,
            "BackupInstances_TriggerRestore",
        ),
        (
            "GET",
            format!("{v}/backupInstances/bi1/operationResults/b3A="),
            versions::BACKUP_INSTANCES,
            "BackupInstances_GetBackupInstanceOperationResult",
        ),
        (
            "GET",
            format!("{v}/operationStatus/b3A="),
            versions::BACKUP_VAULTS,
            "OperationStatusBackupVaultContext_Get",
        ),
        (
            "GET",
            format!("{v}/backupJobs/j1"),
            versions::BACKUP_INSTANCES,
            "Jobs_Get",
        ),
        (
            "GET",
            format!("{v}/backupInstances/bi1/recoveryPoints"),
            versions::BACKUP_INSTANCES,
            "RecoveryPoints_List",
        ),
        (
            "PUT",
            storage_account("aksbackup01"),
            versions::STORAGE_ACCOUNTS,
            "StorageAccounts_Create",
        ),
        (
            "POST",
            format!("/subscriptions/{SUB}/providers/Microsoft.Storage/checkNameAvailability"),
            versions::STORAGE_ACCOUNTS,
            "StorageAccounts_CheckNameAvailability",
        ),
        (
            "PUT",
            format!(
                "{}/blobServices/default/containers/velero",
                storage_account("aksbackup01")
            ),
            versions::STORAGE_ACCOUNTS,
            "BlobContainers_Create",
        ),
        (
            "PUT",
            format!("{e}/azure-aks-backup"),
            versions::EXTENSIONS,
            "Extensions_Create",
        ),
        (
            "GET",
            format!("{e}/azure-aks-backup/operations/op1"),
            versions::EXTENSIONS,
            "OperationStatus_Get",
        ),
        (
            "PUT",
            format!("/subscriptions/{SUB}/resourceGroups/{RG}"),
            versions::RESOURCES,
            "ResourceGroups_CreateOrUpdate",
        ),
        (
            "HEAD",
            format!("/subscriptions/{SUB}/resourceGroups/{RG}"),
            versions::RESOURCES,
            "ResourceGroups_CheckExistence",
        ),
        (
            "POST",
            format!("/subscriptions/{SUB}/providers/Microsoft.DataProtection/register"),
            versions::RESOURCES,
            "Providers_Register",
        ),
        (
            "GET",
            format!("/subscriptions/{SUB}/providers/Microsoft.KubernetesConfiguration"),
            versions::RESOURCES,
            "Providers_Get",
        ),
        (
            "PUT",
            role_assignment_at(&cluster()),
            versions::ROLE_ASSIGNMENTS,
            "RoleAssignments_Create",
        ),
    ];
    let mut wrong = Vec::new();
    for (method, path, version, expected) in &table {
        match specs.find_operation(method, path, version) {
            Ok(matched) if matched.operation_id == *expected => {}
            Ok(matched) => wrong.push(format!(
                "{method} {path}: matched {}, expected {expected}",
                matched.operation_id
            )),
            Err(violation) => wrong.push(format!("{method} {path}: {violation}")),
        }
    }
    assert!(wrong.is_empty(), "mismatches:\n{}", wrong.join("\n"));
}

/// An example that disagrees with the spec it is validated against, and why.
struct KnownDisagreement {
    /// Example path suffix.
    example: &'static str,
    /// `api-version`, `request` or `response <status>`.
    side: &'static str,
    location: &'static str,
    message: &'static str,
    reason: &'static str,
}

const KNOWN_DISAGREEMENTS: &[KnownDisagreement] = &[
    KnownDisagreement {
        example: "2023-05-01/examples/VaultCRUD/PutBackupVaultWithMSI.json",
        side: "api-version",
        location: "query",
        message: "example api-version 2023-05-01, spec 2023-11-01",
        reason: "no 2023-11-01 copy of this example exists; the 2023-05-01 one is validated against 2023-11-01",
    },
    KnownDisagreement {
        example: "2023-05-01/examples/VaultCRUD/PutBackupVaultWithMSI.json",
        side: "request",
        location: "/properties/securitySettings/softDeleteSettings/state",
        message: "\"Enabled\" is not one of \"Off\", \"On\", \"AlwaysOn\"",
        reason: "2023-05-01 value; 2023-11-01 documents Off/On/AlwaysOn (extensible enum, so the 2023-11-01 responses echoing it are only noted)",
    },
    KnownDisagreement {
        example: "2023-05-01/examples/PolicyCRUD/CreateOrUpdateBackupPolicy.json",
        side: "api-version",
        location: "query",
        message: "example api-version 2023-05-01, spec 2023-11-01",
        reason: "no 2023-11-01 copy of this example exists; the 2023-05-01 one is validated against 2023-11-01",
    },
    KnownDisagreement {
        example: "2023-12-01/examples/JobCRUD/GetJob.json",
        side: "api-version",
        location: "query",
        message: "example api-version 2023-12-01, spec 2023-11-01",
        reason: "no 2023-11-01 copy of this example exists; the 2023-12-01 one is validated against 2023-11-01",
    },
    KnownDisagreement {
        example: "2025-07-01/examples/BackupInstanceOperations/PutBackupInstance_KubernetesClusterBackupDatasourceParameters.json",
        side: "api-version",
        location: "query",
        message: "example api-version 2025-07-01, spec 2023-11-01",
        reason: "the only AKS backup-instance example is from 2025-07-01",
    },
    KnownDisagreement {
        example: "2025-07-01/examples/BackupInstanceOperations/PutBackupInstance_KubernetesClusterBackupDatasourceParameters.json",
        side: "request",
        location: "/properties/policyInfo/policyParameters/backupDatasourceParametersList/0/includedVolumeTypes",
        message: "not declared",
        reason: "includedVolumeTypes was added after 2023-11-01 (azure-specs/README.md caveats)",
    },
    KnownDisagreement {
        example: "2025-07-01/examples/BackupInstanceOperations/PutBackupInstance_KubernetesClusterBackupDatasourceParameters.json",
        side: "response *",
        location: "/properties/policyInfo/policyParameters/backupDatasourceParametersList/0/includedVolumeTypes",
        message: "not declared",
        reason: "includedVolumeTypes was added after 2023-11-01; the responses echo it",
    },
];

/// No 2023-11-01 spec lists it (it is newer); the 2025-07-01 spec lists it under
/// BackupInstances_CreateOrUpdate.
const EXPLICIT_ATTRIBUTIONS: &[ExplicitAttribution] = &[ExplicitAttribution {
    file: "dataprotection/resource-manager/Microsoft.DataProtection/stable/2025-07-01/examples/BackupInstanceOperations/PutBackupInstance_KubernetesClusterBackupDatasourceParameters.json",
    operation_id: "BackupInstances_CreateOrUpdate",
    reason: "2025-07-01 example of BackupInstances_CreateOrUpdate; the shelf's 2023-11-01 spec predates it",
}];

#[test]
fn every_shelf_example_validates_or_is_a_known_disagreement() {
    let Some(specs) = specs() else { return };
    let set = example_cases(specs, EXPLICIT_ATTRIBUTIONS);
    assert!(
        set.unattributed.is_empty(),
        "examples no operation lists: {:?}",
        set.unattributed
    );
    assert!(
        set.problems.is_empty(),
        "unusable examples: {:?}",
        set.problems
    );
    assert!(
        set.cases.len() >= 10,
        "only {} example cases",
        set.cases.len()
    );

    // (file, side, violation)
    let mut findings: Vec<(String, String, Violation)> = Vec::new();
    for case in &set.cases {
        if let Attribution::Explicit { reason } = &case.attribution {
            println!(
                "note: {} attributed to {} by hand: {reason}",
                case.file, case.operation_id
            );
        }
        let mut query = case.query.clone();
        if case.example_api_version.as_deref() != Some(case.spec_version.as_str()) {
            findings.push((
                case.file.clone(),
                "api-version".to_string(),
                Violation {
                    operation_id: Some(case.operation_id.clone()),
                    location: "query".to_string(),
                    message: format!(
                        "example api-version {}, spec {}",
                        case.example_api_version.as_deref().unwrap_or("(none)"),
                        case.spec_version
                    ),
                },
            ));
            for (name, value) in query.iter_mut() {
                if name == "api-version" {
                    *value = case.spec_version.clone();
                }
            }
        }
        match specs.find_operation(&case.method, &case.path, &case.spec_version) {
            Ok(matched) => assert_eq!(
                matched.operation_id, case.operation_id,
                "{}: {} {} matched the wrong operation",
                case.file, case.method, case.path
            ),
            Err(violation) => panic!("{}: {} {}: {violation}", case.file, case.method, case.path),
        }
        let request = specs.check_request(&case.method, &case.path, &query, case.body.as_ref());
        for note in &request.notes {
            println!("note: {} request: {note}", case.file);
        }
        for violation in request.violations {
            findings.push((case.file.clone(), "request".to_string(), violation));
        }
        for (status, body) in &case.responses {
            let response = specs.check_response(
                &case.method,
                &case.path,
                &case.spec_version,
                *status,
                body.as_ref(),
            );
            for note in &response.notes {
                println!("note: {} response {status}: {note}", case.file);
            }
            for violation in response.violations {
                findings.push((case.file.clone(), format!("response {status}"), violation));
            }
        }
    }

    let covers = |known: &KnownDisagreement,
                  (file, side, violation): &(String, String, Violation)| {
        file.ends_with(known.example)
            && (known.side == side || (known.side == "response *" && side.starts_with("response ")))
            && violation.location == known.location
            && violation.message.contains(known.message)
    };
    let unexpected: Vec<String> = findings
        .iter()
        .filter(|f| !KNOWN_DISAGREEMENTS.iter().any(|k| covers(k, f)))
        .map(|(file, side, violation)| format!("  {file} ({side}): {violation}"))
        .collect();
    let stale: Vec<String> = KNOWN_DISAGREEMENTS
        .iter()
        .filter(|k| !findings.iter().any(|f| covers(k, f)))
        .map(|k| {
            format!(
                "  {} ({}) at {}: {}",
                k.example, k.side, k.location, k.message
            )
        })
        .collect();
    for known in KNOWN_DISAGREEMENTS {
        println!(
            "known disagreement: {} ({}) at {}: {}",
            known.example, known.side, known.location, known.reason
        );
    }
    assert!(
        unexpected.is_empty(),
        "examples disagree with their specs:\n{}",
        unexpected.join("\n")
    );
    assert!(
        stale.is_empty(),
        "known disagreements that no longer occur:\n{}",
        stale.join("\n")
    );
}

#[test]
fn requests_at_unspecified_api_versions_are_rejected() {
    let Some(specs) = specs() else { return };
    let path = role_assignment_at(&format!("/subscriptions/{SUB}"));
    let body = role_assignment_body();
    assert_clean(
        "2022-04-01",
        &specs.validate_request("PUT", &path, &api(versions::ROLE_ASSIGNMENTS), Some(&body)),
    );
    let violations = specs.validate_request("PUT", &path, &api("2020-10-01-preview"), Some(&body));
    assert_violation(
        "old version",
        &violations,
        "query",
        "api-version 2020-10-01-preview is not specified",
    );
    let violations = specs.validate_request("PUT", &path, &[], Some(&body));
    assert_violation(
        "no version",
        &violations,
        "query",
        "missing required query parameter api-version",
    );
    // The Storage alias is exact: only 2023-01-01 maps onto the shelf's 2023-05-01.
    let account = storage_account("aksbackup01");
    let storage_body =
        json!({"sku": {"name": "Standard_LRS"}, "kind": "StorageV2", "location": "eastus"});
    assert_violation(
        "storage 2023-02-01",
        &specs.validate_request("PUT", &account, &api("2023-02-01"), Some(&storage_body)),
        "query",
        "api-version 2023-02-01 is not specified",
    );
    // The alias never applies to another provider.
    assert_violation(
        "vault at 2023-01-01",
        &specs.validate_request("GET", &vault(), &api("2023-01-01"), None),
        "query",
        "api-version 2023-01-01 is not specified",
    );
}

#[test]
fn storage_at_the_guide_version_is_validated_against_the_shelf_version_with_a_note() {
    let Some(specs) = specs() else { return };
    let account = storage_account("aksbackup01");
    let body = json!({"sku": {"name": "Standard_LRS"}, "kind": "StorageV2", "location": "eastus"});
    let checked = specs.check_request(
        "PUT",
        &account,
        &api(versions::STORAGE_ACCOUNTS),
        Some(&body),
    );
    assert_clean("storage create", &checked.violations);
    assert!(
        checked.notes.iter().any(|n| n.location == "query"
            && n.message.contains(
                "api-version 2023-01-01 of Microsoft.Storage validated against the 2023-05-01 specs"
            )),
        "{:?}",
        checked.notes
    );
    let matched = specs
        .find_operation("PUT", &account, versions::STORAGE_ACCOUNTS)
        .expect("storage create matches");
    assert_eq!(
        (
            matched.spec_version.as_str(),
            matched.requested_version.as_str()
        ),
        ("2023-05-01", "2023-01-01")
    );
    // Required kind is still enforced through the alias.
    assert_violation(
        "no kind",
        &specs.validate_request(
            "PUT",
            &account,
            &api(versions::STORAGE_ACCOUNTS),
            Some(&json!({"sku": {"name": "Standard_LRS"}, "location": "eastus"})),
        ),
        "",
        "missing required property \"kind\"",
    );
}

#[test]
fn role_assignment_without_role_definition_id_is_rejected() {
    let Some(specs) = specs() else { return };
    let path = role_assignment_at(&cluster());
    let mut body = role_assignment_body();
    if let Some(properties) = body["properties"].as_object_mut() {
        properties.remove("roleDefinitionId");
    }
    let violations =
        specs.validate_request("PUT", &path, &api(versions::ROLE_ASSIGNMENTS), Some(&body));
    assert_violation(
        "no roleDefinitionId",
        &violations,
        "/properties",
        "missing required property \"roleDefinitionId\"",
    );
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert_eq!(
        violations[0].operation_id.as_deref(),
        Some("RoleAssignments_Create")
    );
    assert_violation(
        "no body",
        &specs.validate_request("PUT", &path, &api(versions::ROLE_ASSIGNMENTS), None),
        "body",
        "requires a request body",
    );
}

#[test]
fn wrong_principal_type_is_rejected() {
    let Some(specs) = specs() else { return };
    let path = role_assignment_at(&cluster());
    for (value, needle) in [
        (
            "Application",
            "\"Application\" is not one of \"User\", \"Group\", \"ServicePrincipal\", \"ForeignGroup\"",
        ),
        (
            "servicePrincipal",
            "differs only in case from \"ServicePrincipal\"",
        ),
    ] {
        let mut body = role_assignment_body();
        body["properties"]["principalType"] = json!(value);
        let violations =
            specs.validate_request("PUT", &path, &api(versions::ROLE_ASSIGNMENTS), Some(&body));
        assert_violation(value, &violations, "/properties/principalType", needle);
    }
    // In a response the same extensible enum (modelAsString) only yields a note.
    let mut response = role_assignment_response(&cluster());
    response["properties"]["principalType"] = json!("Application");
    let checked = specs.check_response(
        "PUT",
        &path,
        versions::ROLE_ASSIGNMENTS,
        201,
        Some(&response),
    );
    assert_clean("extensible enum in response", &checked.violations);
    assert!(
        checked
            .notes
            .iter()
            .any(|n| n.location == "/properties/principalType"),
        "{:?}",
        checked.notes
    );
}

#[test]
fn unknown_backup_datasource_object_type_is_rejected() {
    let Some(specs) = specs() else { return };
    let path = format!("{}/backupInstances/bi1", vault());
    let body = aks_backup_instance_body();
    assert_clean(
        "aks backup instance",
        &specs.validate_request("PUT", &path, &api(versions::BACKUP_INSTANCES), Some(&body)),
    );
    let mut wrong = body.clone();
    wrong["properties"]["policyInfo"]["policyParameters"]["backupDatasourceParametersList"][0]["objectType"] =
        json!("KubernetesClusterBackupDataSourceParams");
    let violations =
        specs.validate_request("PUT", &path, &api(versions::BACKUP_INSTANCES), Some(&wrong));
    assert_violation(
        "unknown objectType",
        &violations,
        "/properties/policyInfo/policyParameters/backupDatasourceParametersList/0/objectType",
        "unknown objectType \"KubernetesClusterBackupDataSourceParams\" for polymorphic BackupDatasourceParameters; known values:",
    );
    assert!(
        violations[0]
            .message
            .contains("KubernetesClusterBackupDatasourceParameters"),
        "{}",
        violations[0]
    );
}

#[test]
fn kubernetes_backup_parameters_without_snapshot_volumes_are_rejected() {
    let Some(specs) = specs() else { return };
    let path = format!("{}/backupInstances/bi1", vault());
    let mut body = aks_backup_instance_body();
    if let Some(parameters) =
        body["properties"]["policyInfo"]["policyParameters"]["backupDatasourceParametersList"][0]
            .as_object_mut()
    {
        parameters.remove("snapshotVolumes");
    }
    let violations =
        specs.validate_request("PUT", &path, &api(versions::BACKUP_INSTANCES), Some(&body));
    assert_violation(
        "no snapshotVolumes",
        &violations,
        "/properties/policyInfo/policyParameters/backupDatasourceParametersList/0",
        "missing required property \"snapshotVolumes\"",
    );
    assert_eq!(violations.len(), 1, "{violations:?}");
}

#[test]
fn trusted_access_binding_name_must_match_its_pattern_and_length() {
    let Some(specs) = specs() else { return };
    let body = json!({"properties": {
        "sourceResourceId": vault(),
        "roles": ["Microsoft.DataProtection/backupVaults/backup-operator"]
    }});
    let at = |name: &str| format!("{}/trustedAccessRoleBindings/{name}", cluster());
    assert_clean(
        "good name",
        &specs.validate_request(
            "PUT",
            &at("aks-backup-1"),
            &api(versions::MANAGED_CLUSTERS),
            Some(&body),
        ),
    );
    let violations = specs.validate_request(
        "PUT",
        &at("aks_backup"),
        &api(versions::MANAGED_CLUSTERS),
        Some(&body),
    );
    assert_violation(
        "underscore",
        &violations,
        "path",
        "does not match pattern ^([A-Za-z0-9-])+$",
    );
    let violations = specs.validate_request(
        "PUT",
        &at("a-binding-name-of-25-char"),
        &api(versions::MANAGED_CLUSTERS),
        Some(&body),
    );
    assert_violation("too long", &violations, "path", "longer than maxLength 24");
    let error = specs
        .find_operation("PUT", &at("aks_backup"), versions::MANAGED_CLUSTERS)
        .expect_err("find_operation reports parameter constraints");
    assert_eq!(
        error.operation_id.as_deref(),
        Some("TrustedAccessRoleBindings_CreateOrUpdate")
    );
}

#[test]
fn storage_account_name_with_uppercase_is_rejected() {
    let Some(specs) = specs() else { return };
    let body = json!({"sku": {"name": "Standard_LRS"}, "kind": "StorageV2", "location": "eastus"});
    let violations = specs.validate_request(
        "PUT",
        &storage_account("AksBackup01"),
        &api(versions::STORAGE_ACCOUNTS),
        Some(&body),
    );
    assert_violation(
        "uppercase",
        &violations,
        "path",
        "parameter accountName = \"AksBackup01\": \"AksBackup01\" does not match pattern ^[a-z0-9]+$",
    );
    let violations = specs.validate_request(
        "PUT",
        &storage_account("ab"),
        &api(versions::STORAGE_ACCOUNTS),
        Some(&body),
    );
    assert_violation("too short", &violations, "path", "shorter than minLength 3");
}

#[test]
fn role_assignment_scope_spans_segments_at_every_level() {
    let Some(specs) = specs() else { return };
    let subscription = format!("/subscriptions/{SUB}");
    let group = format!("{subscription}/resourceGroups/{RG}");
    let account = storage_account("aksbackup01");
    for scope in [
        subscription.as_str(),
        group.as_str(),
        cluster().as_str(),
        account.as_str(),
    ] {
        let path = role_assignment_at(scope);
        let matched = specs
            .find_operation("PUT", &path, versions::ROLE_ASSIGNMENTS)
            .unwrap_or_else(|v| panic!("{path}: {v}"));
        assert_eq!(matched.operation_id, "RoleAssignments_Create", "{path}");
        assert_eq!(
            matched.path_params,
            vec![
                (
                    "scope".to_string(),
                    scope.trim_start_matches('/').to_string()
                ),
                (
                    "roleAssignmentName".to_string(),
                    ROLE_ASSIGNMENT.to_string()
                ),
            ],
            "{path}"
        );
        assert_clean(
            scope,
            &specs.validate_request(
                "PUT",
                &path,
                &api(versions::ROLE_ASSIGNMENTS),
                Some(&role_assignment_body()),
            ),
        );
        assert_clean(
            scope,
            &specs.validate_response(
                "PUT",
                &path,
                versions::ROLE_ASSIGNMENTS,
                201,
                Some(&role_assignment_response(scope)),
            ),
        );
    }
    // The most specific template wins: the subscription list over the scope list.
    let list = format!("{subscription}/providers/Microsoft.Authorization/roleAssignments");
    let matched = specs
        .find_operation("GET", &list, versions::ROLE_ASSIGNMENTS)
        .expect("list");
    assert_eq!(matched.operation_id, "RoleAssignments_ListForSubscription");
    let list = format!(
        "{}/providers/Microsoft.Authorization/roleAssignments",
        cluster()
    );
    let matched = specs
        .find_operation("GET", &list, versions::ROLE_ASSIGNMENTS)
        .expect("list");
    assert_eq!(matched.operation_id, "RoleAssignments_ListForResource");
    let list = format!(
        "{}/providers/Microsoft.Authorization/roleAssignments",
        account
    );
    let matched = specs
        .find_operation("get", &list, versions::ROLE_ASSIGNMENTS)
        .expect("list");
    assert_eq!(matched.operation_id, "RoleAssignments_ListForResource");
}

#[test]
fn responses_missing_required_properties_are_rejected() {
    let Some(specs) = specs() else { return };
    let path = role_assignment_at(&cluster());
    let mut response = role_assignment_response(&cluster());
    if let Some(properties) = response["properties"].as_object_mut() {
        properties.remove("principalId");
    }
    let violations = specs.validate_response(
        "PUT",
        &path,
        versions::ROLE_ASSIGNMENTS,
        201,
        Some(&response),
    );
    assert_violation(
        "no principalId",
        &violations,
        "/properties",
        "missing required property \"principalId\"",
    );

    let binding = format!("{}/trustedAccessRoleBindings/aks-backup", cluster());
    let good = json!({
        "id": binding, "name": "aks-backup",
        "type": "Microsoft.ContainerService/managedClusters/trustedAccessRoleBindings",
        "properties": {
            "provisioningState": "Succeeded",
            "sourceResourceId": vault(),
            "roles": ["Microsoft.DataProtection/backupVaults/backup-operator"]
        }
    });
    assert_clean(
        "binding",
        &specs.validate_response(
            "PUT",
            &binding,
            versions::MANAGED_CLUSTERS,
            200,
            Some(&good),
        ),
    );
    let mut missing = good.clone();
    if let Some(properties) = missing["properties"].as_object_mut() {
        properties.remove("roles");
    }
    assert_violation(
        "binding without roles",
        &specs.validate_response(
            "PUT",
            &binding,
            versions::MANAGED_CLUSTERS,
            201,
            Some(&missing),
        ),
        "/properties",
        "missing required property \"roles\"",
    );
    let mut extra = good;
    extra["properties"]["role"] = json!("x");
    assert_violation(
        "binding with an undeclared property",
        &specs.validate_response(
            "PUT",
            &binding,
            versions::MANAGED_CLUSTERS,
            200,
            Some(&extra),
        ),
        "/properties/role",
        "not declared",
    );
}

#[test]
fn response_statuses_follow_the_declared_responses() {
    let Some(specs) = specs() else { return };
    let account = storage_account("aksbackup01");
    let v = versions::STORAGE_ACCOUNTS;
    assert_clean(
        "storage 202",
        &specs.validate_response("PUT", &account, v, 202, None),
    );
    assert_violation(
        "storage 202 with body",
        &specs.validate_response("PUT", &account, v, 202, Some(&json!({}))),
        "body",
        "declared without a body",
    );
    assert_violation(
        "storage 201",
        &specs.validate_response("PUT", &account, v, 201, None),
        "status",
        "status 201 is not declared (declared: 200, 202)",
    );
    // No `default`: an error status is checked against the ARM error contract, and noted.
    let not_found = json!({"error": {"code": "ResourceNotFound", "message": "not found"}});
    let checked = specs.check_response("GET", &account, v, 404, Some(&not_found));
    assert_clean("storage 404", &checked.violations);
    assert!(
        checked
            .notes
            .iter()
            .any(|n| n.location == "status" && n.message.contains("ARM error contract")),
        "{:?}",
        checked.notes
    );
    assert_violation(
        "storage 404 without message",
        &specs.validate_response(
            "GET",
            &account,
            v,
            404,
            Some(&json!({"error": {"code": "ResourceNotFound"}})),
        ),
        "/error",
        "missing required property \"message\"",
    );
    // With a `default`: error statuses use it, success statuses do not.
    let policy = format!("{}/backupPolicies/aks-policy", vault());
    assert_clean(
        "policy 404",
        &specs.validate_response(
            "GET",
            &policy,
            versions::BACKUP_POLICIES,
            404,
            Some(&json!({"error": {"code": "NotFound", "message": "no"}})),
        ),
    );
    assert_violation(
        "policy 201",
        &specs.validate_response(
            "PUT",
            &policy,
            versions::BACKUP_POLICIES,
            201,
            Some(&json!({})),
        ),
        "status",
        "status 201 is not declared",
    );
}

#[test]
fn polymorphic_responses_dispatch_on_object_type() {
    let Some(specs) = specs() else { return };
    // OperationResult_Get (location-scoped): 200 is the polymorphic OperationExtendedInfo.
    // (BackupInstances_GetBackupInstanceOperationResult declares BackupInstanceResource.)
    let path = format!(
        "/subscriptions/{SUB}/providers/Microsoft.DataProtection/locations/eastus/operationResults/b3A="
    );
    let v = versions::BACKUP_INSTANCES;
    let matched = specs
        .find_operation("GET", &path, v)
        .expect("operation result");
    assert_eq!(matched.operation_id, "OperationResult_Get");
    // `jobId` exists only on the derived OperationJobExtendedInfo: accepted only through dispatch.
    let done = json!({"objectType": "OperationJobExtendedInfo", "jobId": "3c60cb49-63e8-4b21-b9bd-26277b3fdfae"});
    assert_clean(
        "job info",
        &specs.validate_response("GET", &path, v, 200, Some(&done)),
    );
    assert_violation(
        "unknown objectType",
        &specs.validate_response(
            "GET",
            &path,
            v,
            200,
            Some(&json!({"objectType": "OperationJobInfo", "jobId": "x"})),
        ),
        "/objectType",
        "unknown objectType \"OperationJobInfo\"",
    );
    assert_violation(
        "jobId as number",
        &specs.validate_response(
            "GET",
            &path,
            v,
            200,
            Some(&json!({"objectType": "OperationJobExtendedInfo", "jobId": 7})),
        ),
        "/jobId",
        "expected string, found number",
    );
    assert_clean(
        "operation result 202",
        &specs.validate_response("GET", &path, v, 202, None),
    );
}

#[test]
fn query_parameters_are_checked() {
    let Some(specs) = specs() else { return };
    let path = format!("{}/listClusterUserCredential", cluster());
    let mut query = api(versions::MANAGED_CLUSTERS);
    assert_clean(
        "credentials",
        &specs.validate_request("POST", &path, &query, None),
    );
    query.push(("format".to_string(), "kubeconfig".to_string()));
    assert_violation(
        "format enum",
        &specs.validate_request("POST", &path, &query, None),
        "query",
        "parameter format = \"kubeconfig\"",
    );
    let mut query = api(versions::MANAGED_CLUSTERS);
    query.push(("verbose".to_string(), "true".to_string()));
    assert_violation(
        "undeclared",
        &specs.validate_request("POST", &path, &query, None),
        "query",
        "query parameter verbose is not declared",
    );
    assert_violation(
        "body where none is declared",
        &specs.validate_request(
            "POST",
            &path,
            &api(versions::MANAGED_CLUSTERS),
            Some(&json!({})),
        ),
        "body",
        "declares no request body",
    );
}

#[test]
fn read_only_properties_in_requests_are_noted_not_rejected() {
    let Some(specs) = specs() else { return };
    let path = role_assignment_at(&cluster());
    let mut body = role_assignment_body();
    body["properties"]["createdOn"] = json!("2024-05-01T10:00:00Z");
    body["properties"]["scope"] = json!(cluster());
    let checked = specs.check_request("PUT", &path, &api(versions::ROLE_ASSIGNMENTS), Some(&body));
    assert_clean("read-only", &checked.violations);
    let mut noted: Vec<&str> = checked.notes.iter().map(|n| n.location.as_str()).collect();
    noted.sort();
    assert_eq!(noted, ["/properties/createdOn", "/properties/scope"]);
    // The create parameters declare only `properties`: an `id` is not tolerated.
    body["id"] = json!(path);
    assert_violation(
        "id in create parameters",
        &specs.validate_request("PUT", &path, &api(versions::ROLE_ASSIGNMENTS), Some(&body)),
        "/id",
        "not declared",
    );
    body["properties"]["roleDefinitionID"] = json!("x");
    assert_violation(
        "misspelt property",
        &specs.validate_request("PUT", &path, &api(versions::ROLE_ASSIGNMENTS), Some(&body)),
        "/properties/roleDefinitionID",
        "not declared",
    );
}

fn record(
    method: &str,
    path: &str,
    version: &str,
    request_body: Option<Value>,
    status: u16,
    response_body: Option<Value>,
) -> ArmRequestRecord {
    ArmRequestRecord {
        method: method.to_string(),
        path: path.to_string(),
        query: api(version),
        request_body,
        status,
        response_body,
        at: time::OffsetDateTime::UNIX_EPOCH,
    }
}

#[test]
fn journal_replay_reports_violations_notes_and_skipped_status_endpoints() {
    let Some(specs) = specs() else { return };
    let assignment = role_assignment_at(&cluster());
    let status_url = format!(
        "/subscriptions/{SUB}/providers/Microsoft.ContainerService/locations/eastus/operations/op1"
    );
    let journal = vec![
        record(
            "PUT",
            &assignment,
            versions::ROLE_ASSIGNMENTS,
            Some(role_assignment_body()),
            201,
            Some(role_assignment_response(&cluster())),
        ),
        record(
            "PUT",
            &storage_account("aksbackup01"),
            versions::STORAGE_ACCOUNTS,
            Some(
                json!({"sku": {"name": "Standard_LRS"}, "kind": "StorageV2", "location": "eastus"}),
            ),
            202,
            None,
        ),
        record(
            "GET",
            &status_url,
            versions::MANAGED_CLUSTERS,
            None,
            200,
            Some(json!({"name": "op1", "status": "InProgress"})),
        ),
        record(
            "GET",
            &status_url,
            versions::MANAGED_CLUSTERS,
            None,
            200,
            Some(json!({"name": "op1"})),
        ),
        record(
            "PUT",
            &format!("{}/trustedAccessRoleBindings/aks_backup", cluster()),
            versions::MANAGED_CLUSTERS,
            Some(
                json!({"properties": {"sourceResourceId": vault(), "roles": ["Microsoft.DataProtection/backupVaults/backup-operator"]}}),
            ),
            201,
            Some(json!({"properties": {"sourceResourceId": vault()}})),
        ),
        record(
            "DELETE",
            &status_url,
            versions::MANAGED_CLUSTERS,
            None,
            200,
            None,
        ),
    ];
    let report = check_journal(specs, &journal);
    println!("{report}");
    assert!(!report.is_conformant());
    assert_eq!(report.checked, 4);
    assert_eq!(report.skipped.len(), 2);
    assert!(
        report
            .skipped
            .iter()
            .all(|s| s.reason.starts_with("Azure-AsyncOperation status URL"))
    );
    let at = |record: usize, side: Side| {
        report
            .violations
            .iter()
            .filter(move |f| f.record == record && f.side == side)
    };
    assert_eq!(
        at(0, Side::Request).count() + at(0, Side::Response).count(),
        0,
        "{report}"
    );
    assert_eq!(
        at(1, Side::Request).count() + at(1, Side::Response).count(),
        0,
        "{report}"
    );
    assert_eq!(at(2, Side::Response).count(), 0, "{report}");
    assert!(
        at(3, Side::Response).any(|f| f.message.contains("without a status")),
        "{report}"
    );
    assert!(
        at(4, Side::Request).any(|f| f.location == "path" && f.message.contains("pattern")),
        "{report}"
    );
    assert!(
        at(4, Side::Response).any(|f| f.message.contains("missing required property \"roles\"")),
        "{report}"
    );
    // A DELETE of a status URL is no documented status endpoint: not skipped, rejected.
    assert!(
        at(5, Side::Request).any(|f| f.location == "path"),
        "{report}"
    );
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.record == 1 && n.message.contains("documented alias")),
        "{report}"
    );
    let text = report.to_string();
    assert!(
        text.contains("skipped:") && text.contains("#2 GET"),
        "{text}"
    );
}

#[test]
fn storage_asyncoperations_is_a_location_url_whose_final_body_is_the_account() {
    // StorageAccounts_Create answers 202 with `Location: .../providers/Microsoft.Storage/
    // locations/{l}/asyncoperations/{id}` (azure-specs/README.md: "StorageAccounts_Create
    // returns 202 without body"; storage.json declares no Azure-AsyncOperation header). That
    // URL follows ARM RPC's Location rules (shared/reference/arm-behaviour.md §4): 202 without
    // a body while running, then what the synchronous call returns — the StorageAccount.
    let Some(specs) = specs() else { return };
    let polling = format!(
        "/subscriptions/{SUB}/providers/Microsoft.Storage/locations/eastus/asyncoperations/3b1f0c2e-0000-4000-8000-000000000001"
    );
    let account = |kind: Value| {
        json!({
            "id": storage_account("aksbackup01"),
            "name": "aksbackup01",
            "type": "Microsoft.Storage/storageAccounts",
            "location": "eastus",
            "sku": {"name": "Standard_LRS", "tier": "Standard"},
            "kind": kind,
            "properties": {"provisioningState": "Succeeded", "allowSharedKeyAccess": false}
        })
    };
    let get = |status: u16, body: Option<Value>| {
        record(
            "GET",
            &polling,
            versions::STORAGE_ACCOUNTS,
            None,
            status,
            body,
        )
    };
    let journal = vec![
        get(202, None),
        get(200, Some(account(json!("StorageV2")))),
        get(200, Some(account(json!(42)))),
        get(202, Some(json!({"status": "InProgress"}))),
        get(200, Some(json!({"status": "Succeeded"}))),
    ];
    let report = check_journal(specs, &journal);
    println!("{report}");
    assert_eq!(report.checked, 0, "{report}");
    assert_eq!(report.skipped.len(), 5, "{report}");
    assert!(
        report.skipped.iter().all(|s| s
            .reason
            .starts_with("Location polling URL of StorageAccounts_Create")),
        "{report}"
    );
    let at = |record: usize| report.violations.iter().filter(move |f| f.record == record);
    assert_eq!(at(0).count(), 0, "{report}");
    assert_eq!(at(1).count(), 0, "{report}");
    assert!(
        at(2).any(|f| f.location == "/kind" && f.message.contains("StorageAccounts_GetProperties")),
        "{report}"
    );
    assert!(
        at(3).any(|f| f.message.contains("202 without a body")),
        "{report}"
    );
    // A status body is not a storage account: it names no resource, so it is noted, and it
    // is not mistaken for an Azure-AsyncOperation answer.
    assert_eq!(at(4).count(), 0, "{report}");
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.record == 4 && n.message.contains("names no resource")),
        "{report}"
    );
    // Elsewhere `asyncoperations` stays an Azure-AsyncOperation status URL.
    let network = record(
        "GET",
        &format!(
            "/subscriptions/{SUB}/providers/Microsoft.Network/locations/eastus/asyncoperations/op1"
        ),
        "2023-09-01",
        None,
        200,
        Some(json!({"name": "op1"})),
    );
    let report = check_journal(specs, [&network]);
    assert!(
        report
            .violations
            .iter()
            .any(|f| f.message.contains("without a status")),
        "{report}"
    );
}

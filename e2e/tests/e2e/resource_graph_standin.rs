//! The Resource Graph stand-in over HTTP, as the fleet sweep drives it: the two known queries
//! answer the rows their KQL would over a seeded world (several subscriptions, a management
//! group hierarchy, clusters with and without the backup extension and a backup instance),
//! scoped by subscriptions or management groups, paged with `$skipToken`, throttled per user,
//! trailing the world by the indexing lag; every drift hook shows in the rows, and redoing the
//! onboarding step through ARM repairs it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use time::macros::datetime;

use backup_pilot::arm::versions;
use backup_pilot::clock::{Clock, ManualClock};
use backup_pilot::fleet::queries::{CLUSTERS, ClusterRow, PROTECTION, ProtectionRow};
use backup_pilot_standins::arm::{
    ArmHandle, ArmStandIn, ClusterSeed, Drift, GraphSettings, InjectedFailure, ProtectionSeed,
    QuotaLimit, SeededProtection, roles,
};

const SUB_A: &str = "1a1a1a1a-0000-4000-8000-00000000000a";
const SUB_B: &str = "2b2b2b2b-0000-4000-8000-00000000000b";
const SUB_C: &str = "3c3c3c3c-0000-4000-8000-00000000000c";
const GRAPH: &str = "/providers/Microsoft.ResourceGraph/resources";

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Answer {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    fn detail_codes(&self) -> Vec<&str> {
        self.body["error"]["details"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| d["code"].as_str())
            .collect()
    }

    fn clusters(&self) -> Vec<ClusterRow> {
        assert_eq!(self.status, 200, "{}", self.body);
        serde_json::from_value(self.body["data"].clone()).expect("cluster rows")
    }

    fn protection(&self) -> Vec<ProtectionRow> {
        assert_eq!(self.status, 200, "{}", self.body);
        serde_json::from_value(self.body["data"].clone()).expect("protection rows")
    }
}

/// The seeded world's ids.
struct Ids {
    protected: String,
    bare: String,
    extension_only: String,
    sandbox: String,
}

struct Env {
    base: String,
    arm: ArmHandle,
    clock: Arc<ManualClock>,
    http: reqwest::Client,
    token: String,
    ids: Ids,
    protection: SeededProtection,
}

/// No lag and a quota no test reaches unless it means to.
fn roomy() -> GraphSettings {
    GraphSettings {
        indexing_lag: Duration::ZERO,
        quota: QuotaLimit {
            queries: 1000,
            window: Duration::from_secs(5),
        },
    }
}

fn with_tags(seed: ClusterSeed, tags: &[(&str, &str)]) -> ClusterSeed {
    let mut seed = seed;
    seed.tags = tags
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect::<BTreeMap<_, _>>();
    seed
}

/// Three subscriptions: A (in `prod`, under `corp`) has a protected cluster and a bare one,
/// B (in `corp`) a cluster with only the backup extension, C (in `sandbox`) a tagged bare
/// cluster.
async fn env(settings: GraphSettings) -> Env {
    let clock = Arc::new(ManualClock::new(datetime!(2026-03-02 09:00 UTC)));
    let (base, arm) = ArmStandIn::builder()
        .clock(clock.clone())
        .resource_graph(settings)
        .build()
        .spawn()
        .await
        .expect("spawn");
    for sub in [SUB_A, SUB_B, SUB_C] {
        arm.add_subscription(sub).unwrap();
    }
    arm.add_management_group("corp", None).unwrap();
    arm.add_management_group("prod", Some("corp")).unwrap();
    arm.add_management_group("sandbox", None).unwrap();
    arm.place_subscription(SUB_A, "prod").unwrap();
    arm.place_subscription(SUB_B, "corp").unwrap();
    arm.place_subscription(SUB_C, "sandbox").unwrap();
    let protected = arm
        .add_cluster(ClusterSeed::new(SUB_A, "RG-Prod", "aks-prot", "westeurope"))
        .unwrap()
        .id;
    let bare = arm
        .add_cluster(ClusterSeed::new(SUB_A, "RG-Prod", "aks-bare", "westeurope"))
        .unwrap()
        .id;
    let extension_only = arm
        .add_cluster(ClusterSeed::new(SUB_B, "rg-b", "aks-ext", "northeurope"))
        .unwrap()
        .id;
    let sandbox = arm
        .add_cluster(with_tags(
            ClusterSeed::new(SUB_C, "rg-c", "aks-sandbox", "westeurope"),
            &[("env", "sandbox")],
        ))
        .unwrap()
        .id;
    let protection = arm
        .seed_protection(&ProtectionSeed::new(&protected, &[]))
        .unwrap();
    arm.seed_backup_extension(&extension_only, &protection)
        .unwrap();
    let token = arm.arm_token();
    let env = Env {
        base,
        arm,
        clock,
        http: crate::common::https(),
        token,
        ids: Ids {
            protected,
            bare,
            extension_only,
            sandbox,
        },
        protection,
    };
    env.mark_role_assignments().await;
    env
}

fn guid() -> String {
    uuid::Uuid::new_v4().to_string()
}

impl Env {
    async fn send(&self, method: Method, url: &str, body: Option<&Value>) -> Answer {
        let mut request = self
            .http
            .request(method, url)
            .bearer_auth(&self.token)
            .header(
                "x-ms-correlation-request-id",
                "c0ffee00-0000-4000-8000-000000000042",
            );
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        Answer {
            status,
            headers,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
        }
    }

    async fn arm_call(
        &self,
        method: Method,
        path: &str,
        version: &str,
        body: Option<Value>,
    ) -> Answer {
        let url = format!("{}{path}?api-version={version}", self.base);
        self.send(method, &url, body.as_ref()).await
    }

    /// A Resource Graph request with `body` at `version`.
    async fn graph_at(&self, version: &str, body: Value) -> Answer {
        self.arm_call(Method::POST, GRAPH, version, Some(body))
            .await
    }

    async fn graph(&self, body: Value) -> Answer {
        self.graph_at(versions::RESOURCE_GRAPH, body).await
    }

    async fn clusters(&self) -> Vec<ClusterRow> {
        self.graph(json!({"query": CLUSTERS})).await.clusters()
    }

    async fn protection(&self) -> Vec<ProtectionRow> {
        self.graph(json!({"query": PROTECTION})).await.protection()
    }

    async fn protected_row(&self) -> ProtectionRow {
        let key = self.ids.protected.to_ascii_lowercase();
        self.protection()
            .await
            .into_iter()
            .find(|r| r.cluster_key == key)
            .expect("the protected cluster's row")
    }

    async fn cluster_row(&self, id: &str) -> ClusterRow {
        self.clusters()
            .await
            .into_iter()
            .find(|r| r.id == id)
            .expect("the cluster's row")
    }

    fn advance(&self, secs: u64) {
        self.clock.advance(Duration::from_secs(secs));
    }

    /// PUTs a role assignment with `description` at `scope` for a new principal.
    async fn assign(&self, scope: &str, role: &str, description: &str) -> String {
        let sub = scope.split('/').nth(2).unwrap();
        let path = format!(
            "{scope}/providers/Microsoft.Authorization/roleAssignments/{}",
            guid()
        );
        let a = self
            .arm_call(
                Method::PUT,
                &path,
                versions::ROLE_ASSIGNMENTS,
                Some(json!({"properties": {
                    "roleDefinitionId": format!("/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/{role}"),
                    "principalId": guid(),
                    "principalType": "ServicePrincipal",
                    "description": description,
                }})),
            )
            .await;
        assert_eq!(a.status, 201, "{}", a.body);
        path
    }

    /// Two assignments the service made for the protected cluster, one shared, one by hand.
    async fn mark_role_assignments(&self) {
        let cluster = &self.ids.protected;
        self.assign(
            cluster,
            roles::READER,
            &format!("backup-pilot: vault identity reads the cluster for {cluster}"),
        )
        .await;
        self.assign(
            &self.protection.snapshot_resource_group_id,
            roles::CONTRIBUTOR,
            &format!(
                "backup-pilot: cluster identity writes snapshots for {}",
                cluster
                    .to_uppercase()
                    .replace("/SUBSCRIPTIONS/", "/subscriptions/")
            ),
        )
        .await;
        self.assign(
            &self.protection.storage_account_id,
            roles::STORAGE_BLOB_DATA_READER,
            "backup-pilot: extension reads backups (shared by every cluster backed up to this storage account)",
        )
        .await;
        self.assign(
            cluster,
            roles::CONTRIBUTOR,
            &format!("made by hand for {cluster}"),
        )
        .await;
    }

    /// Triggers an ad-hoc backup of the protected cluster and waits for its job.
    async fn adhoc_backup(&self) {
        let a = self
            .arm_call(
                Method::POST,
                &format!("{}/backup", self.protection.backup_instance_id),
                versions::BACKUP_INSTANCES,
                Some(json!({"backupRuleOptions": {"ruleName": "BackupDaily",
                    "triggerOption": {"retentionTagOverride": "Default"}}})),
            )
            .await;
        assert_eq!(a.status, 202, "{}", a.body);
        self.advance(15 + 240 + 1);
    }

    /// Re-PUTs the protected cluster's backup instance with its own writable properties and
    /// waits for protection to be configured.
    async fn reconfigure_protection(&self) -> Value {
        let bi = &self.protection.backup_instance_id;
        let got = self
            .arm_call(Method::GET, bi, versions::BACKUP_INSTANCES, None)
            .await;
        let p = &got.body["properties"];
        let body = json!({"properties": {
            "objectType": p["objectType"], "friendlyName": p["friendlyName"],
            "dataSourceInfo": p["dataSourceInfo"], "dataSourceSetInfo": p["dataSourceSetInfo"],
            "policyInfo": p["policyInfo"],
        }});
        let put = self
            .arm_call(Method::PUT, bi, versions::BACKUP_INSTANCES, Some(body))
            .await;
        assert_eq!(put.status, 200, "{}", put.body);
        assert_eq!(
            put.body["properties"]["currentProtectionState"],
            "ConfiguringProtection"
        );
        self.advance(61);
        self.arm_call(Method::GET, bi, versions::BACKUP_INSTANCES, None)
            .await
            .body
    }
}

#[tokio::test]
async fn the_clusters_query_lists_every_cluster_with_its_backup_extension_state() {
    let env = env(roomy()).await;
    let answer = env.graph(json!({"query": CLUSTERS})).await;
    assert_eq!(answer.body["totalRecords"], 4, "{}", answer.body);
    assert_eq!(answer.body["count"], 4);
    assert_eq!(answer.body["resultTruncated"], "false");
    assert_eq!(answer.body["facets"], json!([]));
    assert!(answer.body.get("$skipToken").is_none());
    let rows = answer.clusters();
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted, "ordered by id");
    let row = |id: &str| rows.iter().find(|r| r.id == id).unwrap();

    let protected = row(&env.ids.protected);
    assert_eq!(protected.name, "aks-prot");
    assert_eq!(protected.subscription_id, SUB_A);
    assert_eq!(
        protected.resource_group, "rg-prod",
        "lower case, as Resource Graph"
    );
    assert_eq!(protected.location, "westeurope");
    assert_eq!(protected.provisioning_state, "Succeeded");
    assert_eq!(protected.extension_state, "Succeeded");
    assert!(
        protected.id.contains("/resourceGroups/RG-Prod/"),
        "ids keep ARM's casing: {}",
        protected.id
    );

    assert_eq!(row(&env.ids.bare).extension_state, "", "no extension: null");
    let raw_bare = answer.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == env.ids.bare.as_str())
        .unwrap();
    assert_eq!(raw_bare["extensionState"], Value::Null);
    assert_eq!(row(&env.ids.extension_only).extension_state, "Succeeded");
    assert_eq!(row(&env.ids.extension_only).location, "northeurope");
    assert_eq!(row(&env.ids.sandbox).tags, json!({"env": "sandbox"}));
    assert_eq!(row(&env.ids.bare).tags, json!({}));
}

#[tokio::test]
async fn the_protection_query_reports_the_instance_its_newest_backup_and_the_services_roles() {
    let env = env(roomy()).await;
    let now = env.clock.now();
    let bi = &env.protection.backup_instance_id;
    env.arm
        .add_scheduled_backup(bi, now - time::Duration::hours(2))
        .unwrap();
    env.arm
        .add_scheduled_backup(bi, now - time::Duration::hours(1))
        .unwrap();
    let rows = env.protection().await;
    assert_eq!(rows.len(), 1, "only clusters with a backup instance");
    let row = &rows[0];
    assert_eq!(row.cluster_key, env.ids.protected.to_ascii_lowercase());
    assert_eq!(&row.backup_instance, bi);
    assert_eq!(row.protection_status, "ProtectionConfigured");
    assert_eq!(row.policy_id, env.protection.policy_id);
    assert_eq!(row.last_backup, Some(now - time::Duration::hours(1)));
    assert_eq!(
        row.role_assignments, 9,
        "the seven the seed makes as the service does and the two marked 'for' this cluster; not the shared one, not the hand-made one"
    );

    let answer = env.graph(json!({"query": PROTECTION})).await;
    assert_eq!(answer.body["data"][0]["roleAssignments"], 9, "a number");

    // Without jobs or marked assignments, lastBackup and roleAssignments are null.
    let other = env
        .arm
        .add_cluster(ClusterSeed::new(SUB_C, "rg-c", "aks-two", "westeurope"))
        .unwrap()
        .id;
    env.arm
        .seed_protection(&ProtectionSeed::new(&other, &[]))
        .unwrap();
    let answer = env.graph(json!({"query": PROTECTION})).await;
    let data = answer.body["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    let keys: Vec<&str> = data
        .iter()
        .map(|r| r["clusterKey"].as_str().unwrap())
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "ordered by clusterKey");
    let fresh = data
        .iter()
        .find(|r| r["clusterKey"] == other.to_ascii_lowercase().as_str())
        .unwrap();
    assert_eq!(fresh["lastBackup"], Value::Null);
    assert_eq!(
        fresh["roleAssignments"], 7,
        "the seed grants the guide's seven, as onboarding does"
    );
}

#[tokio::test]
async fn ad_hoc_backups_leave_completed_jobs_that_the_protection_query_reads() {
    let env = env(roomy()).await;
    assert_eq!(env.protected_row().await.last_backup, None);
    env.adhoc_backup().await;
    let jobs = env
        .arm_call(
            Method::GET,
            &format!("{}/backupJobs", env.protection.vault_id),
            versions::BACKUP_INSTANCES,
            None,
        )
        .await;
    let job = &jobs.body["value"][0]["properties"];
    assert_eq!(job["operationCategory"], "Backup");
    assert_eq!(job["status"], "Completed", "{job}");
    assert!(
        job["dataSourceId"]
            .as_str()
            .unwrap()
            .eq_ignore_ascii_case(&env.ids.protected)
    );
    let end = job["endTime"].as_str().unwrap();
    let row = env.protected_row().await;
    assert_eq!(
        row.last_backup,
        Some(
            time::OffsetDateTime::parse(end, &time::format_description::well_known::Rfc3339)
                .unwrap()
        )
    );
    assert_eq!(
        row.last_backup,
        Some(env.clock.now() - time::Duration::seconds(1))
    );
}

#[tokio::test]
async fn scopes_are_subscriptions_or_management_groups_resolved_transitively() {
    let env = env(roomy()).await;
    let names =
        |rows: Vec<ClusterRow>| -> Vec<String> { rows.into_iter().map(|r| r.name).collect() };

    let only_c = env
        .graph(json!({"query": CLUSTERS, "subscriptions": [SUB_C]}))
        .await;
    assert_eq!(names(only_c.clusters()), ["aks-sandbox"]);
    let two = env
        .graph(json!({"query": CLUSTERS, "subscriptions": [SUB_B, SUB_C.to_uppercase()]}))
        .await;
    assert_eq!(names(two.clusters()), ["aks-ext", "aks-sandbox"]);

    let corp = env
        .graph(json!({"query": CLUSTERS, "managementGroups": ["corp"]}))
        .await;
    assert_eq!(
        names(corp.clusters()),
        ["aks-bare", "aks-prot", "aks-ext"],
        "corp holds B directly and A through prod"
    );
    let prod = env
        .graph(json!({"query": CLUSTERS, "managementGroups": ["prod"]}))
        .await;
    assert_eq!(names(prod.clusters()), ["aks-bare", "aks-prot"]);
    let two_groups = env
        .graph(json!({"query": CLUSTERS, "managementGroups": ["prod", "sandbox"]}))
        .await;
    assert_eq!(two_groups.clusters().len(), 3);
    let root = env
        .graph(json!({"query": CLUSTERS, "managementGroups": [env.arm.root_management_group()]}))
        .await;
    assert_eq!(root.clusters().len(), 4);

    // The protected cluster's rows follow its vault's subscription.
    let sandbox_protection = env
        .graph(json!({"query": PROTECTION, "managementGroups": ["sandbox"]}))
        .await;
    assert_eq!(sandbox_protection.protection().len(), 0);
    let prod_protection = env
        .graph(json!({"query": PROTECTION, "managementGroups": ["prod"]}))
        .await;
    assert_eq!(prod_protection.protection().len(), 1);

    // Moving a subscription moves its clusters.
    env.arm.place_subscription(SUB_C, "prod").unwrap();
    let prod = env
        .graph(json!({"query": CLUSTERS, "managementGroups": ["prod"]}))
        .await;
    assert_eq!(prod.clusters().len(), 3);

    // Unknown scopes answer Resource Graph's 400s.
    let unknown_group = env
        .graph(json!({"query": CLUSTERS, "managementGroups": ["corp", "nope"]}))
        .await;
    assert_eq!(unknown_group.status, 400);
    assert_eq!(unknown_group.body["error"]["code"], "BadRequest");
    assert_eq!(
        unknown_group.detail_codes(),
        ["ManagementGroupsContainInvalidIds"]
    );
    assert!(
        unknown_group.body["error"]["details"][0]["message"]
            .as_str()
            .unwrap()
            .contains("'nope'")
    );
    let unknown_sub = env
        .graph(
            json!({"query": CLUSTERS, "subscriptions": ["9d9d9d9d-0000-4000-8000-000000000009"]}),
        )
        .await;
    assert_eq!(unknown_sub.status, 400);
    assert_eq!(
        unknown_sub.detail_codes(),
        ["NoValidSubscriptionsInQueryRequest"]
    );
    let partly_known = env
        .graph(json!({"query": CLUSTERS, "subscriptions": [SUB_B, "9d9d9d9d-0000-4000-8000-000000000009"]}))
        .await;
    assert_eq!(names(partly_known.clusters()), ["aks-ext"]);
    let both = env
        .graph(json!({"query": CLUSTERS, "subscriptions": [SUB_A], "managementGroups": ["corp"]}))
        .await;
    assert_eq!(both.status, 400, "{}", both.body);
}

#[tokio::test]
async fn pages_follow_skip_tokens_over_one_snapshot_and_foreign_tokens_are_refused() {
    let env = env(roomy()).await;
    env.arm
        .add_cluster(ClusterSeed::new(SUB_B, "rg-b", "aks-extra", "westeurope"))
        .unwrap();
    let all: Vec<String> = env.clusters().await.into_iter().map(|r| r.id).collect();
    assert_eq!(all.len(), 5);

    let first = env
        .graph(json!({"query": CLUSTERS, "options": {"$top": 2}}))
        .await;
    assert_eq!(first.body["totalRecords"], 5);
    assert_eq!(first.body["count"], 2);
    assert_eq!(first.body["resultTruncated"], "false");
    let token = first.body["$skipToken"].as_str().unwrap().to_string();

    // A cluster created between pages is not in this query's later pages.
    env.arm
        .add_cluster(ClusterSeed::new(SUB_C, "rg-c", "aks-late", "westeurope"))
        .unwrap();
    let mut seen: Vec<String> = first.clusters().into_iter().map(|r| r.id).collect();
    let mut token = Some(token);
    let mut pages = 1;
    while let Some(t) = token {
        let page = env
            .graph(json!({"query": CLUSTERS, "options": {"$skipToken": t}}))
            .await;
        assert_eq!(page.body["totalRecords"], 5, "same snapshot: {}", page.body);
        token = page.body["$skipToken"].as_str().map(str::to_string);
        seen.extend(page.clusters().into_iter().map(|r| r.id));
        pages += 1;
    }
    assert_eq!(pages, 3, "2 + 2 + 1 rows");
    assert_eq!(seen, all);
    // A new query sees the late cluster.
    assert_eq!(env.clusters().await.len(), 6);

    // $skip and $top override the token's offset and page size.
    let skipped = env
        .graph(json!({"query": CLUSTERS, "options": {"$skip": 4, "$top": 1}}))
        .await;
    assert_eq!(skipped.clusters()[0].id, env.clusters().await[4].id);

    // A token answers only the query and scope that produced it.
    let first = env
        .graph(json!({"query": CLUSTERS, "subscriptions": [SUB_A, SUB_B], "options": {"$top": 1}}))
        .await;
    let token = first.body["$skipToken"].as_str().unwrap();
    let reordered = env
        .graph(json!({"query": CLUSTERS, "subscriptions": [SUB_B, SUB_A], "options": {"$skipToken": token}}))
        .await;
    assert_eq!(reordered.status, 200, "{}", reordered.body);
    for foreign in [
        json!({"query": CLUSTERS, "subscriptions": [SUB_A], "options": {"$skipToken": token}}),
        json!({"query": PROTECTION, "subscriptions": [SUB_A, SUB_B], "options": {"$skipToken": token}}),
        json!({"query": CLUSTERS, "options": {"$skipToken": "bm90IGEgdG9rZW4"}}),
    ] {
        let refused = env.graph(foreign.clone()).await;
        assert_eq!(refused.status, 400, "{foreign}");
        assert_eq!(refused.body["error"]["code"], "BadRequest");
        assert_eq!(refused.detail_codes(), ["InvalidSkipToken"], "{foreign}");
    }
    for top in [0, 1001] {
        let refused = env
            .graph(json!({"query": CLUSTERS, "options": {"$top": top}}))
            .await;
        assert_eq!(refused.status, 400, "$top {top}");
    }
}

#[tokio::test]
async fn other_queries_and_bad_bodies_answer_resource_graphs_400() {
    let env = env(roomy()).await;
    let other = env
        .graph(json!({"query": "resources | where type =~ 'microsoft.containerservice/managedclusters' | take 1"}))
        .await;
    assert_eq!(other.status, 400);
    assert_eq!(other.body["error"]["code"], "BadRequest");
    assert_eq!(other.detail_codes()[0], "InvalidQuery");
    let why = other.body["error"]["details"][1]["message"]
        .as_str()
        .unwrap();
    assert!(
        why.contains("CLUSTERS") && why.contains("PROTECTION"),
        "{why}"
    );
    assert!(
        other.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("correlationId = c0ffee00-0000-4000-8000-000000000042"),
        "{}",
        other.body
    );

    // Whitespace does not matter; everything else does.
    let spaced = env
        .graph(json!({"query": format!("  {}\n", CLUSTERS.replace('\n', "\n\t  "))}))
        .await;
    assert_eq!(spaced.status, 200);
    let reordered = env
        .graph(json!({"query": CLUSTERS.replace("order by id asc", "order by id desc")}))
        .await;
    assert_eq!(reordered.status, 400);

    for (body, detail) in [
        (json!({"subscriptions": [SUB_A]}), "InvalidRequestContent"),
        (json!({"query": 42}), "InvalidRequestContent"),
        (
            json!({"query": CLUSTERS, "subscriptions": SUB_A}),
            "InvalidRequestContent",
        ),
        (
            json!({"query": CLUSTERS, "options": {"resultFormat": "table"}}),
            "ResultFormatNotSupportedByStandIn",
        ),
        (
            json!({"query": CLUSTERS, "facets": [{"expression": "location"}]}),
            "FacetsNotSupportedByStandIn",
        ),
    ] {
        let refused = env.graph(body.clone()).await;
        assert_eq!(refused.status, 400, "{body}");
        assert_eq!(refused.body["error"]["code"], "BadRequest", "{body}");
        assert_eq!(refused.detail_codes(), [detail], "{body}");
    }
    let accepted = env
        .graph(json!({"query": CLUSTERS, "facets": [], "options": {
            "resultFormat": "objectArray", "allowPartialScopes": false,
            "authorizationScopeFilter": "AtScopeAndBelow"}}))
        .await;
    assert_eq!(accepted.status, 200, "{}", accepted.body);
    let get = env
        .arm_call(Method::GET, GRAPH, versions::RESOURCE_GRAPH, None)
        .await;
    assert_eq!(get.status, 405);
}

#[tokio::test]
async fn api_versions_tokens_and_faults_pass_through_arms_front_door() {
    let env = env(roomy()).await;
    let older = env.graph_at("2021-03-01", json!({"query": CLUSTERS})).await;
    assert_eq!(older.clusters().len(), 4);
    let preview = env.graph_at("2019-04-01", json!({"query": CLUSTERS})).await;
    assert_eq!(preview.status, 400);
    assert_eq!(preview.body["error"]["code"], "NoRegisteredProviderFound");
    assert!(
        preview.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("2022-10-01, 2021-03-01")
    );
    let missing = env
        .send(
            Method::POST,
            &format!("{}{GRAPH}", env.base),
            Some(&json!({"query": CLUSTERS})),
        )
        .await;
    assert_eq!(missing.body["error"]["code"], "MissingApiVersionParameter");
    let anonymous = crate::common::https()
        .post(format!("{}{GRAPH}?api-version=2022-10-01", env.base))
        .json(&json!({"query": CLUSTERS}))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);

    env.arm
        .fail_next("Resources", 1, InjectedFailure::internal_error());
    assert_eq!(env.graph(json!({"query": CLUSTERS})).await.status, 500);
    assert_eq!(env.graph(json!({"query": CLUSTERS})).await.status, 200);

    // Management groups answer a minimal GET; an unknown one 403 as ARM does.
    let group = env
        .arm_call(
            Method::GET,
            "/providers/Microsoft.Management/managementGroups/prod",
            "2023-04-01",
            None,
        )
        .await;
    assert_eq!(group.status, 200);
    assert_eq!(
        group.body["properties"]["details"]["parent"]["name"],
        "corp"
    );
    let unknown = env
        .arm_call(
            Method::GET,
            "/providers/Microsoft.Management/managementGroups/nope",
            "2023-04-01",
            None,
        )
        .await;
    assert_eq!(unknown.status, 403);
    assert_eq!(unknown.body["error"]["code"], "AuthorizationFailed");
}

#[tokio::test]
async fn the_quota_counts_down_and_the_sixteenth_query_in_a_window_is_throttled() {
    let env = env(GraphSettings {
        indexing_lag: Duration::ZERO,
        quota: QuotaLimit::default(),
    })
    .await;
    env.arm.clear_journal();
    let before = env.arm.graph_queries();
    for i in 1..=15u32 {
        let answer = env.graph(json!({"query": CLUSTERS})).await;
        assert_eq!(answer.status, 200, "query {i}");
        assert_eq!(
            answer.header("x-ms-user-quota-remaining"),
            (15 - i).to_string()
        );
        assert_eq!(answer.header("x-ms-user-quota-resets-after"), "00:00:05");
    }
    let throttled = env.graph(json!({"query": PROTECTION})).await;
    assert_eq!(throttled.status, 429);
    assert_eq!(throttled.body["error"]["code"], "RateLimiting");
    assert_eq!(throttled.detail_codes(), ["RateLimiting"]);
    assert_eq!(throttled.header("x-ms-user-quota-remaining"), "0");
    assert_eq!(throttled.header("x-ms-user-quota-resets-after"), "00:00:05");

    env.advance(3);
    let still = env.graph(json!({"query": CLUSTERS})).await;
    assert_eq!(still.status, 429);
    assert_eq!(still.header("x-ms-user-quota-resets-after"), "00:00:02");
    env.advance(2);
    let again = env.graph(json!({"query": CLUSTERS})).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.header("x-ms-user-quota-remaining"), "14");

    // Errors count against the quota and carry its headers too.
    let bad = env.graph(json!({"query": "resources"})).await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.header("x-ms-user-quota-remaining"), "13");

    assert_eq!(env.arm.graph_queries() - before, 19);
    let journaled = env
        .arm
        .journal()
        .into_iter()
        .filter(|r| r.path == GRAPH && r.method == "POST")
        .count();
    assert_eq!(journaled, 19);

    // The quota is a knob.
    env.arm.set_resource_graph(GraphSettings {
        indexing_lag: Duration::ZERO,
        quota: QuotaLimit {
            queries: 1,
            window: Duration::from_secs(60),
        },
    });
    let one = env.graph(json!({"query": CLUSTERS})).await;
    assert_eq!(one.header("x-ms-user-quota-resets-after"), "00:01:00");
    assert_eq!(env.graph(json!({"query": CLUSTERS})).await.status, 429);
}

#[tokio::test]
async fn the_indexing_lag_hides_a_new_cluster_until_it_passes() {
    let env = env(GraphSettings {
        indexing_lag: Duration::from_secs(30),
        quota: QuotaLimit {
            queries: 1000,
            window: Duration::from_secs(5),
        },
    })
    .await;
    assert_eq!(env.clusters().await.len(), 4);
    let fresh = env
        .arm
        .add_cluster(ClusterSeed::new(SUB_B, "rg-b", "aks-new", "westeurope"))
        .unwrap()
        .id;
    env.advance(10);
    assert!(
        env.clusters().await.iter().all(|r| r.id != fresh),
        "the index is 10 s old"
    );
    // ARM itself already shows it.
    let get = env
        .arm_call(Method::GET, &fresh, versions::MANAGED_CLUSTERS, None)
        .await;
    assert_eq!(get.status, 200);
    env.advance(19);
    assert_eq!(env.clusters().await.len(), 4, "29 s: still the old index");
    env.advance(1);
    assert!(env.clusters().await.iter().any(|r| r.id == fresh));
}

#[tokio::test]
async fn a_backup_instance_error_shows_and_reconfiguring_protection_repairs_it() {
    let env = env(roomy()).await;
    let broken = env
        .arm
        .break_protection(&env.ids.protected, Drift::BackupInstanceError)
        .unwrap();
    assert_eq!(broken.drift, Drift::BackupInstanceError);
    assert!(broken.to_string().contains("ProtectionError"), "{broken}");
    assert_eq!(
        env.protected_row().await.protection_status,
        "ProtectionError"
    );
    let bi = env
        .arm_call(
            Method::GET,
            &env.protection.backup_instance_id,
            versions::BACKUP_INSTANCES,
            None,
        )
        .await;
    assert_eq!(
        bi.body["properties"]["currentProtectionState"],
        "ProtectionError"
    );
    assert!(
        bi.body["properties"]["protectionErrorDetails"]["code"]
            .as_str()
            .is_some_and(|c| !c.is_empty())
    );

    let repaired = env.reconfigure_protection().await;
    assert_eq!(
        repaired["properties"]["protectionStatus"]["status"], "ProtectionConfigured",
        "{repaired}"
    );
    assert_eq!(
        env.protected_row().await.protection_status,
        "ProtectionConfigured"
    );
}

#[tokio::test]
async fn a_failed_extension_shows_and_a_reinstall_repairs_it() {
    let env = env(roomy()).await;
    env.arm
        .break_protection(&env.ids.protected, Drift::ExtensionFailed)
        .unwrap();
    assert_eq!(
        env.cluster_row(&env.ids.protected).await.extension_state,
        "Failed"
    );
    let extension = format!(
        "{}/providers/Microsoft.KubernetesConfiguration/extensions/azure-aks-backup",
        env.ids.protected
    );
    let got = env
        .arm_call(Method::GET, &extension, versions::EXTENSIONS, None)
        .await;
    assert_eq!(got.body["properties"]["provisioningState"], "Failed");
    assert_eq!(
        got.body["properties"]["errorInfo"]["code"],
        "ExtensionOperationFailed"
    );
    let p = &got.body["properties"];
    let put = env
        .arm_call(
            Method::PUT,
            &extension,
            versions::EXTENSIONS,
            Some(json!({"properties": {
                "extensionType": p["extensionType"], "releaseTrain": p["releaseTrain"],
                "autoUpgradeMinorVersion": p["autoUpgradeMinorVersion"], "scope": p["scope"],
                "configurationSettings": p["configurationSettings"],
            }})),
        )
        .await;
    assert_eq!(put.status, 200, "{}", put.body);
    assert_eq!(put.body["properties"]["provisioningState"], "Updating");
    env.advance(451);
    assert_eq!(
        env.cluster_row(&env.ids.protected).await.extension_state,
        "Succeeded"
    );
}

#[tokio::test]
async fn stale_backups_show_three_days_old_and_a_new_backup_repairs_them() {
    let env = env(roomy()).await;
    // Nothing to age before any backup.
    assert!(
        env.arm
            .break_protection(&env.ids.protected, Drift::StaleBackups)
            .is_err()
    );
    let taken = env.clock.now() - time::Duration::hours(1);
    env.arm
        .add_scheduled_backup(&env.protection.backup_instance_id, taken)
        .unwrap();
    env.arm
        .break_protection(&env.ids.protected, Drift::StaleBackups)
        .unwrap();
    let row = env.protected_row().await;
    assert_eq!(row.last_backup, Some(taken - time::Duration::days(3)));
    assert_eq!(row.protection_status, "ProtectionConfigured", "silently");

    env.adhoc_backup().await;
    assert_eq!(
        env.protected_row().await.last_backup,
        Some(env.clock.now() - time::Duration::seconds(1))
    );
}

#[tokio::test]
async fn a_removed_role_assignment_shows_and_recreating_it_repairs_it() {
    let env = env(roomy()).await;
    assert_eq!(env.protected_row().await.role_assignments, 9);
    let broken = env
        .arm
        .break_protection(&env.ids.protected, Drift::RoleAssignmentRemoved)
        .unwrap();
    assert_eq!(env.protected_row().await.role_assignments, 8);
    assert!(broken.changes[0].contains("roleAssignments/"), "{broken}");
    env.assign(
        &env.ids.protected,
        roles::READER,
        &format!(
            "backup-pilot: vault identity reads the cluster for {}",
            env.ids.protected
        ),
    )
    .await;
    assert_eq!(env.protected_row().await.role_assignments, 9);
    for _ in 0..9 {
        env.arm
            .break_protection(&env.ids.protected, Drift::RoleAssignmentRemoved)
            .unwrap();
    }
    assert_eq!(env.protected_row().await.role_assignments, 0);
    assert!(
        env.arm
            .break_protection(&env.ids.protected, Drift::RoleAssignmentRemoved)
            .is_err()
    );
}

#[tokio::test]
async fn removed_trusted_access_shows_as_a_protection_error_until_bound_and_reconfigured() {
    let env = env(roomy()).await;
    env.arm
        .break_protection(&env.ids.protected, Drift::TrustedAccessRemoved)
        .unwrap();
    let binding = format!(
        "{}/trustedAccessRoleBindings/tarb-backup",
        env.ids.protected
    );
    let gone = env
        .arm_call(Method::GET, &binding, versions::MANAGED_CLUSTERS, None)
        .await;
    assert_eq!(gone.status, 404);
    assert_eq!(
        env.protected_row().await.protection_status,
        "ProtectionError"
    );
    let bi = env
        .arm_call(
            Method::GET,
            &env.protection.backup_instance_id,
            versions::BACKUP_INSTANCES,
            None,
        )
        .await;
    assert_eq!(
        bi.body["properties"]["protectionErrorDetails"]["code"],
        "UserErrorTrustedAccessGatewayReturnedForbidden"
    );
    // Nothing left to remove.
    assert!(
        env.arm
            .break_protection(&env.ids.protected, Drift::TrustedAccessRemoved)
            .is_err()
    );

    // Reconfiguring without the binding fails again.
    let still = env.reconfigure_protection().await;
    assert_eq!(
        still["properties"]["currentProtectionState"],
        "ProtectionError"
    );

    let put = env
        .arm_call(
            Method::PUT,
            &binding,
            versions::MANAGED_CLUSTERS,
            Some(
                json!({"properties": {"sourceResourceId": env.protection.vault_id,
                "roles": ["Microsoft.DataProtection/backupVaults/backup-operator"]}}),
            ),
        )
        .await;
    assert_eq!(put.status, 201, "{}", put.body);
    env.advance(31);
    let repaired = env.reconfigure_protection().await;
    assert_eq!(
        repaired["properties"]["currentProtectionState"], "ProtectionConfigured",
        "{repaired}"
    );
    assert_eq!(
        env.protected_row().await.protection_status,
        "ProtectionConfigured"
    );
}

#[tokio::test]
async fn drift_needs_something_to_break() {
    let env = env(roomy()).await;
    for drift in Drift::ALL {
        let error = env
            .arm
            .break_protection(&env.ids.bare, drift)
            .expect_err("the bare cluster has nothing to break");
        assert!(error.to_string().contains(drift.name()), "{error}");
    }
    assert!(
        env.arm
            .break_protection(
                &env.ids.sandbox.replace("aks-sandbox", "nope"),
                Drift::StaleBackups
            )
            .is_err()
    );
}

// Least privilege: a caller under enforcement sees only what it may read.

impl Env {
    /// A principal under enforcement with `role` at each of `scopes`; its token.
    fn enforced_principal(&self, role: &str, scopes: &[String]) -> String {
        let principal = guid();
        for scope in scopes {
            self.arm.assign_role(scope, &principal, role, None).unwrap();
        }
        self.arm.enforce_least_privilege(&principal, true);
        self.arm.token_as(&principal)
    }

    /// A Resource Graph request made with `token`.
    async fn graph_as(&self, token: &str, body: Value) -> Answer {
        let response = self
            .http
            .post(format!(
                "{}{GRAPH}?api-version={}",
                self.base,
                versions::RESOURCE_GRAPH
            ))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        Answer {
            status,
            headers,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
        }
    }
}

fn sub_scope(sub: &str) -> String {
    format!("/subscriptions/{sub}")
}

fn ids_of(rows: Vec<ClusterRow>) -> Vec<String> {
    rows.into_iter().map(|r| r.id).collect()
}

#[tokio::test]
async fn under_enforcement_a_reader_of_one_subscription_sees_only_its_clusters() {
    let env = env(roomy()).await;
    let token = env.enforced_principal(roles::READER, &[sub_scope(SUB_A)]);
    let mut expected = vec![env.ids.bare.clone(), env.ids.protected.clone()];
    expected.sort();

    // Tenant-wide, and with every subscription named: only A's clusters.
    for body in [
        json!({"query": CLUSTERS}),
        json!({"query": CLUSTERS, "subscriptions": [SUB_A, SUB_B, SUB_C]}),
        json!({"query": CLUSTERS, "managementGroups": ["corp"]}),
    ] {
        let answer = env.graph_as(&token, body.clone()).await;
        assert_eq!(answer.body["totalRecords"], 2, "{body}: {}", answer.body);
        assert_eq!(ids_of(answer.clusters()), expected, "{body}");
    }
    let protection = env
        .graph_as(&token, json!({"query": PROTECTION}))
        .await
        .protection();
    assert_eq!(protection.len(), 1);
    assert_eq!(
        protection[0].cluster_key,
        env.ids.protected.to_ascii_lowercase()
    );
    // The same query as the service's identity, not under enforcement: every cluster.
    assert_eq!(env.clusters().await.len(), 4);

    // The checks are journaled: A's clusters allowed by Reader, B's and C's denied.
    let checks = env.arm.authorization_checks();
    let cluster_checks = |id: &str| {
        checks
            .iter()
            .filter(|c| {
                c.action == "Microsoft.ContainerService/managedClusters/read"
                    && c.scope.eq_ignore_ascii_case(id)
            })
            .collect::<Vec<_>>()
    };
    let allowed = cluster_checks(&env.ids.protected);
    assert!(!allowed.is_empty());
    assert!(
        allowed
            .iter()
            .all(|c| c.allowed && c.granted_by == ["Reader"])
    );
    for hidden in [&env.ids.extension_only, &env.ids.sandbox] {
        let denied = cluster_checks(hidden);
        assert!(!denied.is_empty(), "{hidden} was checked");
        assert!(denied.iter().all(|c| !c.allowed), "{hidden}");
    }
}

#[tokio::test]
async fn under_enforcement_pages_cut_the_callers_view_of_one_snapshot() {
    let env = env(roomy()).await;
    let principal = guid();
    env.arm
        .assign_role(&sub_scope(SUB_A), &principal, roles::READER, None)
        .unwrap();
    env.arm
        .assign_role(&sub_scope(SUB_C), &principal, roles::READER, None)
        .unwrap();
    env.arm.enforce_least_privilege(&principal, true);
    let token = env.arm.token_as(&principal);
    let first = env
        .graph_as(&token, json!({"query": CLUSTERS, "options": {"$top": 2}}))
        .await;
    assert_eq!(first.body["totalRecords"], 3, "{}", first.body);
    let mut seen = ids_of(first.clusters());
    let skip = first.body["$skipToken"].as_str().unwrap().to_string();
    // A grant made between pages does not change this query's later pages.
    env.arm
        .assign_role(&sub_scope(SUB_B), &principal, roles::READER, None)
        .unwrap();
    let second = env
        .graph_as(
            &token,
            json!({"query": CLUSTERS, "options": {"$skipToken": skip}}),
        )
        .await;
    assert_eq!(second.body["totalRecords"], 3, "{}", second.body);
    assert!(second.body.get("$skipToken").is_none());
    seen.extend(ids_of(second.clusters()));
    let mut expected = vec![
        env.ids.bare.clone(),
        env.ids.protected.clone(),
        env.ids.sandbox.clone(),
    ];
    expected.sort();
    assert_eq!(seen, expected);
    // A new query sees what the new grant allows.
    let again = env.graph_as(&token, json!({"query": CLUSTERS})).await;
    assert_eq!(again.clusters().len(), 4);
}

#[tokio::test]
async fn under_enforcement_a_principal_without_grants_sees_no_rows() {
    let env = env(roomy()).await;
    let token = env.enforced_principal(roles::READER, &[]);
    for (query, scope) in [
        (CLUSTERS, json!(null)),
        (CLUSTERS, json!([SUB_A])),
        (PROTECTION, json!(null)),
        (PROTECTION, json!([SUB_A, SUB_B])),
    ] {
        let mut body = json!({"query": query});
        if !scope.is_null() {
            body["subscriptions"] = scope;
        }
        let answer = env.graph_as(&token, body.clone()).await;
        assert_eq!(answer.status, 200, "{body}: {}", answer.body);
        assert_eq!(answer.body["totalRecords"], 0, "{body}: {}", answer.body);
        assert_eq!(answer.body["data"], json!([]), "{body}");
    }
}

#[tokio::test]
async fn under_enforcement_joined_and_summarized_rows_count_only_what_the_caller_reads() {
    let env = env(roomy()).await;
    env.adhoc_backup().await;
    // Every read but extensions, backup jobs and role assignments.
    let role = backup_pilot_standins::arm::RoleDefinition {
        guid: "9d0c0c0c-0000-4000-8000-000000000001".into(),
        name: "Reader without extensions, jobs and role assignments".into(),
        permissions: vec![backup_pilot_standins::arm::Permission {
            actions: vec!["*/read".into()],
            not_actions: vec![
                "Microsoft.KubernetesConfiguration/extensions/read".into(),
                "Microsoft.DataProtection/backupVaults/backupJobs/read".into(),
                "Microsoft.Authorization/roleAssignments/read".into(),
            ],
            ..Default::default()
        }],
    };
    env.arm.define_role(role.clone());
    let all = [sub_scope(SUB_A), sub_scope(SUB_B), sub_scope(SUB_C)];
    let trimmed = env.enforced_principal(&role.guid, &all);
    let reader = env.enforced_principal(roles::READER, &all);

    // A Reader sees what the service's identity sees.
    let full = env.graph_as(&reader, json!({"query": CLUSTERS})).await;
    assert_eq!(
        full.body["data"],
        env.graph(json!({"query": CLUSTERS})).await.body["data"]
    );
    assert!(
        full.clusters()
            .iter()
            .any(|r| !r.extension_state.is_empty()),
        "some cluster has an extension"
    );
    let full_row = env
        .graph_as(&reader, json!({"query": PROTECTION}))
        .await
        .protection();
    assert_eq!(full_row, vec![env.protected_row().await]);
    assert!(full_row[0].last_backup.is_some());
    assert_eq!(full_row[0].role_assignments, 9);

    // The same rows without the extension state, the last backup and the assignments.
    let rows = env
        .graph_as(&trimmed, json!({"query": CLUSTERS}))
        .await
        .clusters();
    assert_eq!(rows.len(), 4, "clusters are readable");
    assert!(
        rows.iter().all(|r| r.extension_state.is_empty()),
        "{rows:?}"
    );
    let answer = env.graph_as(&trimmed, json!({"query": PROTECTION})).await;
    assert_eq!(answer.body["data"][0]["lastBackup"], Value::Null);
    assert_eq!(answer.body["data"][0]["roleAssignments"], Value::Null);
    let row = &answer.protection()[0];
    assert_eq!(row.backup_instance, full_row[0].backup_instance);
    assert_eq!(row.protection_status, "ProtectionConfigured");

    // Without the backup instance, no protection row at all.
    let no_instances = backup_pilot_standins::arm::RoleDefinition {
        guid: "9d0c0c0c-0000-4000-8000-000000000002".into(),
        name: "Reader without backup instances".into(),
        permissions: vec![backup_pilot_standins::arm::Permission {
            actions: vec!["*/read".into()],
            not_actions: vec!["Microsoft.DataProtection/backupVaults/backupInstances/read".into()],
            ..Default::default()
        }],
    };
    env.arm.define_role(no_instances.clone());
    let token = env.enforced_principal(&no_instances.guid, &all);
    let answer = env.graph_as(&token, json!({"query": PROTECTION})).await;
    assert_eq!(answer.protection(), vec![]);
}

#[tokio::test]
async fn under_enforcement_the_services_infra_grants_show_it_the_clusters_of_its_subscription() {
    let env = env(roomy()).await;
    let me = env.arm.caller_object_id();
    let grants = backup_pilot_standins::arm::TargetGrants::from_repository(
        &backup_pilot_standins::arm::TargetParams::new(&me, SUB_A),
    )
    .expect("infra/target/main.bicep reads");
    env.arm.apply_target_grants(&grants).unwrap();
    env.arm.enforce_least_privilege(&me, true);
    let mut expected = vec![env.ids.bare.clone(), env.ids.protected.clone()];
    expected.sort();
    assert_eq!(ids_of(env.clusters().await), expected);
    let row = env.protected_row().await;
    assert_eq!(row.role_assignments, 9);
    assert!(
        env.arm
            .authorization_checks()
            .iter()
            .any(|c| c.allowed && c.scope.eq_ignore_ascii_case(&env.ids.protected)),
        "the sweep's reads went through enforcement"
    );
}

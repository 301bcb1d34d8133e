//! The ARM stand-in's restore side over HTTP: recovery points from seeded backups,
//! `validateRestore` and `restore` as location LROs, restore jobs that end by the target
//! cluster's prerequisites, the restore played in the target's Kubernetes stand-in (nothing
//! into a missing namespace, as the guide's known issue 1 describes), and the daily limit.

use crate::{common, support};
use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use time::macros::datetime;

use backup_pilot::arm::versions;
use backup_pilot::clock::{Clock, ManualClock};
use backup_pilot_standins::arm::{
    ArmHandle, ArmStandIn, ClusterSeed, ProtectionSeed, SeededProtection, Timings,
};
use backup_pilot_standins::kube_api::{KubeApiServer, Workload};

const SUB: &str = "6f1b4e6a-2d9c-4b7e-9a51-3c0f8e2d7a10";

struct Env {
    base: String,
    arm: ArmHandle,
    clock: Arc<ManualClock>,
    http: reqwest::Client,
    token: String,
    protection: SeededProtection,
    dr_cluster: String,
    bare_cluster: String,
    dr_kube: KubeApiServer,
    point: String,
}

async fn env() -> Env {
    let clock = Arc::new(ManualClock::new(datetime!(2026-03-02 09:00 UTC)));
    let (base, arm) = ArmStandIn::builder()
        .clock(clock.clone())
        .timings(Timings::default())
        .build()
        .spawn()
        .await
        .expect("spawn");
    arm.add_subscription(SUB).unwrap();
    let prod = arm
        .add_cluster(ClusterSeed::new(SUB, "rg-aks", "aks-prod", "westeurope"))
        .unwrap();
    let dr = arm
        .add_cluster(ClusterSeed::new(SUB, "rg-dr", "aks-dr", "westeurope"))
        .unwrap();
    let bare = arm
        .add_cluster(ClusterSeed::new(SUB, "rg-dr", "aks-bare", "westeurope"))
        .unwrap();
    let prod_kube = KubeApiServer::new(clock.clone());
    prod_kube.add_namespace("app");
    prod_kube.add_workload(
        "app",
        &Workload {
            name: "web".into(),
            replicas: 2,
            ready: true,
            pvc_bound: Some(true),
        },
    );
    let dr_kube = KubeApiServer::new(clock.clone());
    arm.attach_kube(&prod.id, prod_kube);
    arm.attach_kube(&dr.id, dr_kube.clone());
    let protection = arm
        .seed_protection(&ProtectionSeed::new(&prod.id, &["app"]))
        .unwrap();
    arm.seed_restore_target(&dr.id, &protection).unwrap();
    let point = arm
        .add_recovery_point(
            &protection.backup_instance_id,
            clock.now() - time::Duration::hours(2),
        )
        .unwrap();
    let token = arm.arm_token();
    Env {
        base,
        arm,
        clock,
        http: crate::common::https(),
        token,
        protection,
        dr_cluster: dr.id,
        bare_cluster: bare.id,
        dr_kube,
        point,
    }
}

impl Env {
    async fn send(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
    ) -> (u16, Value, Option<String>) {
        let mut request = self.http.request(method, url).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("Location")
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        let text = response.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::Null),
            location,
        )
    }

    fn url(&self, path: &str) -> String {
        format!(
            "{}{path}?api-version={}",
            self.base,
            versions::BACKUP_INSTANCES
        )
    }

    fn restore_body(&self, target: &str, point: &str) -> Value {
        json!({
            "objectType": "AzureBackupRecoveryPointBasedRestoreRequest",
            "recoveryPointId": point,
            "sourceDataStoreType": "OperationalStore",
            "restoreTargetInfo": {
                "objectType": "ItemLevelRestoreTargetInfo",
                "recoveryOption": "FailIfExists",
                "restoreLocation": "westeurope",
                "datasourceInfo": {"objectType": "Datasource", "resourceID": target, "datasourceType": "Microsoft.ContainerService/managedClusters"},
                "datasourceSetInfo": {"objectType": "DatasourceSet", "resourceID": target, "datasourceType": "Microsoft.ContainerService/managedClusters"},
                "restoreCriteria": [{
                    "objectType": "KubernetesClusterRestoreCriteria",
                    "includeClusterScopeResources": true,
                    "conflictPolicy": "Skip",
                    "persistentVolumeRestoreMode": "RestoreWithVolumeData",
                    "includedNamespaces": ["app"],
                    "namespaceMappings": {"app": "app-restored"}
                }]
            }
        })
    }

    /// Triggers a restore and follows it to its job; returns the job's final properties.
    async fn restore(&self, target: &str) -> Value {
        let (status, body, location) = self
            .send(
                Method::POST,
                &self.url(&format!("{}/restore", self.protection.backup_instance_id)),
                Some(&self.restore_body(target, &self.point)),
            )
            .await;
        assert_eq!(status, 202, "{body}");
        let location = location.expect("Location");
        let (status, _, _) = self.send(Method::GET, &location, None).await;
        assert_eq!(status, 202, "still running");
        self.clock.advance(Duration::from_secs(15));
        let (status, result, _) = self.send(Method::GET, &location, None).await;
        assert_eq!(status, 200);
        assert_eq!(result["objectType"], "OperationJobExtendedInfo");
        let job_url = self.url(&format!(
            "{}/backupJobs/{}",
            self.protection.vault_id,
            result["jobId"].as_str().unwrap()
        ));
        let (_, job, _) = self.send(Method::GET, &job_url, None).await;
        assert_eq!(job["properties"]["status"], "InProgress");
        assert_eq!(job["properties"]["operationCategory"], "Restore");
        self.clock.advance(Duration::from_secs(225));
        let (_, job, _) = self.send(Method::GET, &job_url, None).await;
        job["properties"].clone()
    }
}

#[tokio::test]
async fn recovery_points_are_listed_from_seeded_backups() {
    let env = env().await;
    let (status, list, _) = env
        .send(
            Method::GET,
            &env.url(&format!(
                "{}/recoveryPoints",
                env.protection.backup_instance_id
            )),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let points = list["value"].as_array().unwrap();
    assert_eq!(points.len(), 1);
    assert_eq!(points[0]["name"], env.point.as_str());
    assert_eq!(
        points[0]["properties"]["recoveryPointTime"],
        "2026-03-02T07:00:00Z"
    );
}

#[tokio::test]
async fn a_restore_into_a_missing_namespace_completes_with_nothing_then_works_once_it_exists() {
    let env = env().await;
    let job = env.restore(&env.dr_cluster).await;
    assert_eq!(job["status"], "Completed", "{job}");
    assert_eq!(
        job["extendedInfo"]["additionalDetails"]["ItemsRestored"],
        "0"
    );
    assert_eq!(job["extendedInfo"]["additionalDetails"]["TotalItems"], "6");
    assert_eq!(job["restoreType"], "AlternateLocation");
    assert!(!env.dr_kube.namespace_exists("app-restored"));

    env.dr_kube.add_namespace("app-restored");
    let job = env.restore(&env.dr_cluster).await;
    assert_eq!(job["status"], "Completed", "{job}");
    assert_eq!(
        job["extendedInfo"]["additionalDetails"]["ItemsRestored"],
        "6"
    );
    assert_eq!(env.dr_kube.pods("app-restored"), vec!["web-0", "web-1"]);
    assert_eq!(
        job["extendedInfo"]["sourceRecoverPoint"]["recoveryPointID"],
        env.point.as_str()
    );
}

#[tokio::test]
async fn a_target_without_the_extension_fails_validation_and_the_job() {
    let env = env().await;
    let body = json!({"restoreRequestObject": env.restore_body(&env.bare_cluster, &env.point)});
    let (status, _, location) = env
        .send(
            Method::POST,
            &env.url(&format!(
                "{}/validateRestore",
                env.protection.backup_instance_id
            )),
            Some(&body),
        )
        .await;
    assert_eq!(status, 202);
    env.clock.advance(Duration::from_secs(30));
    let (status, error, _) = env.send(Method::GET, &location.unwrap(), None).await;
    assert_eq!(status, 400, "{error}");
    assert_eq!(
        error["error"]["code"],
        "KubernetesBackupListExtensionsError"
    );

    let job = env.restore(&env.bare_cluster).await;
    assert_eq!(job["status"], "Failed");
    assert_eq!(
        job["errorDetails"][0]["code"],
        "KubernetesBackupListExtensionsError"
    );

    let good = json!({"restoreRequestObject": env.restore_body(&env.dr_cluster, &env.point)});
    let (_, _, location) = env
        .send(
            Method::POST,
            &env.url(&format!(
                "{}/validateRestore",
                env.protection.backup_instance_id
            )),
            Some(&good),
        )
        .await;
    env.clock.advance(Duration::from_secs(30));
    let (status, result, _) = env.send(Method::GET, &location.unwrap(), None).await;
    assert_eq!(
        (status, result["objectType"].as_str()),
        (200, Some("OperationJobExtendedInfo"))
    );
}

#[tokio::test]
async fn unknown_points_and_the_eleventh_restore_of_a_day_are_refused() {
    let env = env().await;
    let restore_url = env.url(&format!("{}/restore", env.protection.backup_instance_id));
    let (status, error, _) = env
        .send(
            Method::POST,
            &restore_url,
            Some(&env.restore_body(&env.dr_cluster, "no-such-point")),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(error["error"]["code"], "UserErrorRecoveryPointNotFound");

    for _ in 0..10 {
        let (status, body, _) = env
            .send(
                Method::POST,
                &restore_url,
                Some(&env.restore_body(&env.dr_cluster, &env.point)),
            )
            .await;
        assert_eq!(status, 202, "{body}");
        env.clock.advance(Duration::from_secs(60));
    }
    let (status, error, _) = env
        .send(
            Method::POST,
            &restore_url,
            Some(&env.restore_body(&env.dr_cluster, &env.point)),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(error["error"]["code"], "UserErrorMaxRestoresPerDayReached");
    env.clock.advance(Duration::from_secs(24 * 3600));
    let (status, _, _) = env
        .send(
            Method::POST,
            &restore_url,
            Some(&env.restore_body(&env.dr_cluster, &env.point)),
        )
        .await;
    assert_eq!(status, 202, "a day later the limit has reset");
}

#[tokio::test]
async fn the_restore_traffic_conforms_to_the_published_specs() {
    let specs = match support::openapi::shared_specs(common::shared_dir()) {
        Ok(specs) => specs,
        Err(why) => {
            common::skipped(&why);
            return;
        }
    };
    let env = env().await;
    env.dr_kube.add_namespace("app-restored");
    let job = env.restore(&env.dr_cluster).await;
    assert_eq!(job["status"], "Completed");
    let (_, _, location) = env
        .send(
            Method::POST,
            &env.url(&format!(
                "{}/validateRestore",
                env.protection.backup_instance_id
            )),
            Some(&json!({"restoreRequestObject": env.restore_body(&env.dr_cluster, &env.point)})),
        )
        .await;
    env.clock.advance(Duration::from_secs(30));
    env.send(Method::GET, &location.unwrap(), None).await;
    env.send(
        Method::GET,
        &env.url(&format!("{}/backupJobs", env.protection.vault_id)),
        None,
    )
    .await;
    let records = env.arm.journal();
    assert!(records.len() >= 8, "{} records", records.len());
    let report = support::openapi::check_journal(specs, &records);
    assert!(report.is_conformant(), "{report}");
}

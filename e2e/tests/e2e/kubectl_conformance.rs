//! A real client against the Kubernetes API stand-in: kubectl, with the kubeconfig the
//! stand-in hands out used unchanged (HTTPS verified against the stand-in's CA, bearer token),
//! runs the commands of the implementation guide and of everyday use, and each answer is
//! checked against what a real API server gives (Kubernetes documentation, cited beside each
//! assertion).
//!
//! It runs the kubectl named by `BACKUP_PILOT_KUBECTL`, else the one on PATH; without one it
//! prints that it was skipped, and `.ci/run` (which installs Debian's `kubernetes-client`
//! where none is there) sets `BACKUP_PILOT_REQUIRE_KUBECTL=1`, which turns the skip into a
//! failure. Any version works: kubectl before 1.27 (Debian 12's is 1.20) reads OpenAPI v2 as
//! protobuf and validates on the client, later ones read v3 and have the server validate;
//! where the two differ as they do against a real API server, each gets its own assertion.
//! To exercise both, e.g. with Debian's unpacked beside the one on PATH:
//!
//! ```text
//! apt-get download kubernetes-client && dpkg -x kubernetes-client_*.deb /tmp/kubectl-1.20
//! BACKUP_PILOT_KUBECTL=/tmp/kubectl-1.20/usr/bin/kubectl \
//!   cargo test -p backup-pilot-e2e --test e2e kubectl -- --nocapture
//! ```

use std::path::PathBuf;
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use axum::http::Method;
use backup_pilot::clock::SystemClock;
use backup_pilot_standins::kube_api::{
    ExtensionInstall, KubeApiServer, KubeconfigAuth, PodState, events,
};

/// An event a client reports about the extension's controller pod, in the wrong namespace.
const MISPLACED_EVENT: &str = r#"apiVersion: v1
kind: Event
metadata:
  name: controller-check.1
  namespace: default
involvedObject:
  kind: Pod
  name: dataprotection-microsoft-controller-6d5c9f7b8-x2x8q
  namespace: dataprotection-microsoft
reason: Checked
message: checked by an operator
type: Normal
source:
  component: operator
"#;

/// The hook examples of the Azure docs ("Backup hooks" / "Restore hooks" in the AKS backup
/// overview), empty keys included.
const DOCS_HOOKS: &str = r#"apiVersion: clusterbackup.dataprotection.microsoft.com/v1alpha1
kind: BackupHook
metadata:
  # BackupHook CR Name and Namespace
  name: bkphookname0
  namespace: default
spec:
  # BackupHook is a list of hooks to execute before and after backing up a resource.
  backupHook:
  # BackupHook Name. This is the name of the hook that will be executed during backup.
  # compulsory
  - name: hook1
    # Namespaces where this hook will be executed.
    includedNamespaces:
    - hrweb
    excludedNamespaces:
    labelSelector:
    # PreHooks is a list of BackupResourceHooks to execute prior to backing up an item.
    preHooks:
      - exec:
          # Container is the container in the pod where the command should be executed.
          container: webcontainer
          # Command is the command and arguments to execute.
          command:
            - /bin/uname
            - -a
          # OnError specifies how Velero should behave if it encounters an error executing this hook
          onError: Continue
          # Timeout is the amount of time to wait for the hook to complete before considering it failed.
          timeout: 10s
      - exec:
          command:
            - /bin/bash
            - -c
            - echo hello > hello.txt && echo goodbye > goodbye.txt
          container: webcontainer
          onError: Continue
    # PostHooks is a list of BackupResourceHooks to execute after backing up an item.
    postHooks:
      - exec:
          container: webcontainer
          command:
            - /bin/uname
            - -a
          onError: Continue
          timeout: 10s
---
apiVersion: clusterbackup.dataprotection.microsoft.com/v1alpha1
kind: RestoreHook
metadata:
  name: restorehookname0
  namespace: default
spec:
  # RestoreHook is a list of hooks to execute after restoring a resource.
  restoreHook:
    # Name is the name of this hook.
    - name: myhook-1
      # Restored Namespaces where this hook will be executed.
      includedNamespaces:
      excludedNamespaces:
      labelSelector:
      # PostHooks is a list of RestoreResourceHooks to execute during and after restoring a resource.
      postHooks:
        - exec:
            # Container is the container in the pod where the command should be executed.
            container: webcontainer
            # Command is the command and arguments to execute from within a container after a pod has been restored.
            command:
              - /bin/bash
              - -c
              - echo hello > hello.txt && echo goodbye > goodbye.txt
            # OnError specifies how Velero should behave if it encounters an error executing this hook
            # default value is Continue
            onError: Continue
            # Timeout is the amount of time to wait for the hook to complete before considering it failed.
            execTimeout: 30s
            # WaitTimeout defines the maximum amount of time Velero should wait for the container to be ready before attempting to run the command.
            waitTimeout: 5m
"#;

/// The same BackupHook as a server-side apply configuration that also sets a label.
const SSA_HOOK: &str = r#"apiVersion: clusterbackup.dataprotection.microsoft.com/v1alpha1
kind: BackupHook
metadata:
  name: bkphookname0
  namespace: default
  labels:
    team: storage
spec:
  backupHook:
  - name: hook1
    includedNamespaces: [hrweb]
    preHooks:
      - exec:
          container: webcontainer
          command: [/bin/uname, -a]
          onError: Continue
          timeout: 10s
"#;

/// A BackupHook with a misspelt field (`timout`).
const TYPO_HOOK: &str = r#"apiVersion: clusterbackup.dataprotection.microsoft.com/v1alpha1
kind: BackupHook
metadata:
  name: typo
  namespace: default
spec:
  backupHook:
  - name: hook1
    preHooks:
      - exec:
          command: [/bin/true]
          timout: 10s
"#;

fn kubectl_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("BACKUP_PILOT_KUBECTL") {
        return Some(PathBuf::from(path));
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("kubectl"))
            .find(|candidate| candidate.is_file())
    })
}

struct Kubectl {
    binary: PathBuf,
    kubeconfig: PathBuf,
    dir: tempfile::TempDir,
}

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Kubectl {
    async fn run(&self, args: &[&str]) -> Run {
        let output: Output = tokio::process::Command::new(&self.binary)
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            // A fresh home: no cached discovery or OpenAPI from another run.
            .env("HOME", self.dir.path())
            .env("KUBECACHEDIR", self.dir.path().join("cache"))
            .env_remove("KUBERNETES_SERVICE_HOST")
            .kill_on_drop(true)
            .output()
            .await
            .expect("kubectl starts");
        let run = Run {
            ok: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        };
        eprintln!("$ kubectl {}\n{}{}", args.join(" "), run.stdout, run.stderr);
        run
    }

    async fn ok(&self, args: &[&str]) -> Run {
        let run = tokio::time::timeout(Duration::from_secs(60), self.run(args))
            .await
            .expect("kubectl answers within a minute");
        assert!(
            run.ok,
            "kubectl {} failed:\n{}{}",
            args.join(" "),
            run.stdout,
            run.stderr
        );
        run
    }

    fn file(&self, name: &str, text: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_string_lossy().into_owned()
    }
}

/// The header row and the data rows of kubectl's table output, split into columns.
fn rows(stdout: &str) -> Vec<Vec<String>> {
    stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

/// kubectl's minor version (`kubectl version --client -o json`).
async fn kubectl_minor(binary: &PathBuf) -> u32 {
    let version = tokio::process::Command::new(binary)
        .args(["version", "--client", "-o", "json"])
        .output()
        .await
        .expect("kubectl starts");
    serde_json::from_slice::<serde_json::Value>(&version.stdout)
        .ok()
        .and_then(|v| {
            v.pointer("/clientVersion/minor")?
                .as_str()
                .map(str::to_string)
        })
        .and_then(|m| m.trim_end_matches('+').parse().ok())
        .expect("kubectl version --client -o json names the minor version")
}

fn resource_version(server: &KubeApiServer, plural: &str, name: &str) -> String {
    server
        .object(
            "clusterbackup.dataprotection.microsoft.com",
            plural,
            "default",
            name,
        )
        .and_then(|o| {
            o.pointer("/metadata/resourceVersion")?
                .as_str()
                .map(str::to_string)
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_works_against_the_stand_in_with_its_own_kubeconfig() {
    let Some(binary) = kubectl_binary() else {
        assert!(
            std::env::var_os("BACKUP_PILOT_REQUIRE_KUBECTL").is_none(),
            "BACKUP_PILOT_REQUIRE_KUBECTL is set but kubectl is not installed"
        );
        eprintln!("skipped: kubectl is not installed (apt-get install kubernetes-client)");
        return;
    };
    let minor = kubectl_minor(&binary).await;
    eprintln!("kubectl 1.{minor} at {}", binary.display());
    let server = KubeApiServer::new(Arc::new(SystemClock));
    server.install_extension(&ExtensionInstall::ready_after(Duration::ZERO));
    let url = server.spawn().await.unwrap();
    assert!(url.starts_with("https://"), "{url}");
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        server.kubeconfig(&url, "aks-shop", KubeconfigAuth::LocalAccount),
    )
    .unwrap();
    let kubectl = Kubectl {
        binary,
        kubeconfig,
        dir,
    };

    // `kubectl get ns`: the namespace printer's columns are NAME STATUS AGE, and a live
    // namespace's phase is Active (kubectl reference, "kubectl get"; API reference,
    // Namespace v1: status.phase "Active" or "Terminating").
    let ns = rows(&kubectl.ok(&["get", "ns"]).await.stdout);
    assert_eq!(ns[0], ["NAME", "STATUS", "AGE"]);
    for name in ["default", "kube-system", "dataprotection-microsoft"] {
        assert!(
            ns.iter().any(|r| r[0] == name && r[1] == "Active"),
            "{name} is listed Active: {ns:?}"
        );
    }

    // `kubectl get pods`: the pod printer's columns are NAME READY STATUS RESTARTS AGE;
    // READY counts ready containers over containers, STATUS is the phase or the container's
    // waiting/terminated reason ("Debug running pods" in the Kubernetes docs).
    let pods = rows(
        &kubectl
            .ok(&["get", "pods", "-n", "dataprotection-microsoft"])
            .await
            .stdout,
    );
    assert_eq!(pods[0], ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]);
    assert_eq!(pods.len(), 3, "two extension pods: {pods:?}");
    for pod in &pods[1..] {
        assert_eq!(pod[1..4], ["1/1", "Running", "0"], "{pod:?}");
    }

    // Events. An extension pod the scheduler cannot place stays Pending, and the scheduler
    // records a Warning `FailedScheduling` with its message ("Debug pods": "kubectl describe
    // pod" shows "FailedScheduling ... 0/1 nodes are available: 1 Insufficient cpu").
    let controller = "dataprotection-microsoft-controller-6d5c9f7b8-x2x8q";
    let pending = "dataprotection-microsoft-geneva-service-7c9d8b6f5-p9wq2";
    let insufficient = "0/1 nodes are available: 1 Insufficient cpu.";
    server.add_pod(
        "dataprotection-microsoft",
        pending,
        PodState::Unschedulable {
            message: insufficient.into(),
        },
    );
    // `kubectl get pods -o wide` adds IP, NODE, NOMINATED NODE and READINESS GATES (kubectl
    // reference, "kubectl get": "-o wide ... additional information"): a scheduled pod is
    // bound to a node (API reference, Pod v1: spec.nodeName) and a running one has an address
    // (status.podIP); a pod the scheduler could not place has neither.
    let wide = rows(
        &kubectl
            .ok(&[
                "get",
                "pods",
                "-n",
                "dataprotection-microsoft",
                "-o",
                "wide",
            ])
            .await
            .stdout,
    );
    assert_eq!(
        wide[0],
        [
            "NAME",
            "READY",
            "STATUS",
            "RESTARTS",
            "AGE",
            "IP",
            "NODE",
            "NOMINATED",
            "NODE",
            "READINESS",
            "GATES"
        ]
    );
    for pod in &wide[1..] {
        if pod[0] == pending {
            assert_eq!(
                pod[5..],
                ["<none>", "<none>", "<none>", "<none>"],
                "{pod:?}"
            );
        } else {
            assert!(pod[5].starts_with("10.244."), "{pod:?}");
            assert_eq!(pod[6..], [events::NODE, "<none>", "<none>"], "{pod:?}");
        }
    }
    // Pods are selected on their own fields, with `!=` as well as `=` (API concepts, "Field
    // selectors": Pod supports spec.nodeName, status.phase, ...; "Supported operators").
    let pods_where = |selector: String| {
        let kubectl = &kubectl;
        async move {
            let args = [
                "get",
                "pods",
                "-n",
                "dataprotection-microsoft",
                "--field-selector",
                &selector,
            ];
            rows(&kubectl.ok(&args).await.stdout)
        }
    };
    let not_running = pods_where("status.phase!=Running".into()).await;
    assert_eq!(not_running.len(), 2, "{not_running:?}");
    assert_eq!(not_running[1][0], pending);
    let on_the_node = pods_where(format!(
        "spec.nodeName={},spec.restartPolicy=Always",
        events::NODE
    ))
    .await;
    assert_eq!(
        on_the_node.len(),
        3,
        "the two running pods: {on_the_node:?}"
    );
    assert!(on_the_node.iter().all(|r| r[0] != pending));

    // `kubectl get events`: the API server's event printer has the columns LAST SEEN, TYPE,
    // REASON, OBJECT, MESSAGE (and SUBOBJECT, SOURCE, FIRST SEEN, COUNT, NAME with `-o
    // wide`); OBJECT is `kind/name` (kubectl reference, "kubectl get"; API reference, Event
    // v1 core). The scheduler reports Scheduled, the kubelet Pulling, Pulled, Created and
    // Started for a pod that starts ("Debug running pods", example `kubectl describe pod`).
    let listed = kubectl
        .ok(&["get", "events", "-n", "dataprotection-microsoft"])
        .await
        .stdout;
    let lines: Vec<&str> = listed.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        rows(&listed)[0],
        ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    );
    let row = |kind: &str, reason: &str, object: &str, message: &str| {
        lines.iter().any(|l| {
            let cells: Vec<&str> = l.split_whitespace().collect();
            cells.get(1..4) == Some(&[kind, reason, object][..]) && l.contains(message)
        })
    };
    assert!(
        row(
            "Warning",
            "FailedScheduling",
            &format!("pod/{pending}"),
            insufficient
        ),
        "{listed}"
    );
    for (reason, message) in [
        (
            "Scheduled",
            format!("Successfully assigned dataprotection-microsoft/{controller} to"),
        ),
        ("Started", "Started container main".to_string()),
    ] {
        assert!(
            row("Normal", reason, &format!("pod/{controller}"), &message),
            "{reason}: {listed}"
        );
    }
    // `-o wide` adds who reported it: SOURCE is `component, host` (the kubelet on its node).
    let wide = kubectl
        .ok(&["get", "ev", "-n", "dataprotection-microsoft", "-o", "wide"])
        .await
        .stdout;
    assert!(
        wide.lines().next().is_some_and(|h| h.contains("SUBOBJECT")
            && h.contains("SOURCE")
            && h.contains("FIRST SEEN")
            && h.contains("COUNT")),
        "{wide}"
    );
    assert!(
        wide.contains(&format!("kubelet, {}", events::NODE)),
        "{wide}"
    );

    // Field selectors on events: `involvedObject.name` (and kind, namespace, uid, which
    // `kubectl describe` sends) pick one object's events (API concepts, "Field selectors":
    // each type supports its own fields) ...
    let selected = kubectl
        .ok(&[
            "get",
            "events",
            "-n",
            "dataprotection-microsoft",
            "--field-selector",
            &format!("involvedObject.name={pending},involvedObject.kind=Pod,type=Warning"),
        ])
        .await
        .stdout;
    let selected = rows(&selected);
    assert_eq!(selected.len(), 2, "one event: {selected:?}");
    assert_eq!(selected[1][3], format!("pod/{pending}"));
    // ... and any other field is refused with 400 BadRequest "field label not supported".
    let unsupported = kubectl
        .run(&[
            "get",
            "events",
            "-n",
            "dataprotection-microsoft",
            "--field-selector",
            "spec.nodeName=x",
        ])
        .await;
    assert!(!unsupported.ok);
    assert!(
        unsupported.stderr.contains("BadRequest")
            && unsupported
                .stderr
                .contains("field label not supported: spec.nodeName"),
        "{}",
        unsupported.stderr
    );

    // `kubectl describe pod` ends with the pod's events, found by a field selector on
    // involvedObject: Type, Reason, Age, From (source component), Message ("Debug pods").
    let described = kubectl
        .ok(&[
            "describe",
            "pod",
            controller,
            "-n",
            "dataprotection-microsoft",
        ])
        .await
        .stdout;
    let events_section = described
        .split_once("\nEvents:")
        .map(|(_, rest)| rest)
        .unwrap_or_default();
    let section = rows(events_section);
    assert_eq!(
        section.first().map(Vec::as_slice),
        Some(&["Type", "Reason", "Age", "From", "Message"].map(String::from)[..]),
        "{described}"
    );
    // (kubectl before 1.21 writes From as `component, host`: "kubelet, <node>".)
    let mut reasons: Vec<(&str, &str, &str)> = section[2..]
        .iter()
        .map(|r| (r[0].as_str(), r[1].as_str(), r[3].trim_end_matches(',')))
        .collect();
    reasons.sort();
    assert_eq!(
        reasons,
        [
            ("Normal", "Created", "kubelet"),
            ("Normal", "Pulled", "kubelet"),
            ("Normal", "Pulling", "kubelet"),
            ("Normal", "Scheduled", "default-scheduler"),
            ("Normal", "Started", "kubelet"),
        ],
        "{described}"
    );
    let described = kubectl
        .ok(&["describe", "pod", pending, "-n", "dataprotection-microsoft"])
        .await
        .stdout;
    assert!(
        described.lines().any(|l| {
            let cells: Vec<&str> = l.split_whitespace().collect();
            cells.first() == Some(&"Warning")
                && cells.get(1) == Some(&"FailedScheduling")
                && l.contains("default-scheduler")
                && l.contains(insufficient)
        }),
        "{described}"
    );

    // Clients report events too: the API server checks that an event lives in its object's
    // namespace (422 Invalid "involvedObject.namespace ... does not match event.namespace") ...
    let misplaced = kubectl.file("event.yaml", MISPLACED_EVENT);
    let refused = kubectl.run(&["create", "-f", &misplaced]).await;
    assert!(!refused.ok);
    assert!(
        refused.stderr.contains("does not match event.namespace"),
        "{}",
        refused.stderr
    );
    // ... and stores it where it belongs.
    let placed = kubectl.file(
        "placed.yaml",
        &MISPLACED_EVENT.replace("namespace: default", "namespace: dataprotection-microsoft"),
    );
    let created = kubectl.ok(&["create", "-f", &placed]).await.stdout;
    assert!(
        created.contains("event/controller-check.1 created"),
        "{created}"
    );
    let checked = kubectl
        .ok(&[
            "get",
            "ev",
            "-n",
            "dataprotection-microsoft",
            "--field-selector",
            "reason=Checked",
        ])
        .await
        .stdout;
    assert_eq!(rows(&checked).len(), 2, "{checked}");

    // `kubectl api-resources`: discovery lists every served resource with its short names,
    // group-version, scope and kind — the extension's CRDs included once they are
    // established (docs: "Extend the Kubernetes API with CustomResourceDefinitions").
    let resources = kubectl.ok(&["api-resources"]).await.stdout;
    let resources = rows(&resources);
    for row in [
        ["namespaces", "ns", "v1", "false", "Namespace"],
        ["events", "ev", "v1", "true", "Event"],
    ] {
        assert!(
            resources
                .iter()
                .any(|r| r == &row.map(String::from).to_vec()),
            "{row:?}: {resources:?}"
        );
    }
    for (plural, kind) in [
        ("backuphooks", "BackupHook"),
        ("restorehooks", "RestoreHook"),
        ("backups", "Backup"),
        ("restores", "Restore"),
    ] {
        assert!(
            resources.iter().any(|r| r
                == &[
                    plural,
                    "clusterbackup.dataprotection.microsoft.com/v1alpha1",
                    "true",
                    kind
                ]
                .map(String::from)
                .to_vec()),
            "{plural}: {resources:?}"
        );
    }

    // `kubectl get backups,restores` (the guide's check): the extension's CRDs are served;
    // with no objects, kubectl says "No resources found in <ns> namespace." and succeeds.
    let listed = kubectl
        .ok(&["get", "backups,restores", "-n", "dataprotection-microsoft"])
        .await;
    assert!(
        listed
            .stderr
            .contains("No resources found in dataprotection-microsoft namespace."),
        "{}",
        listed.stderr
    );

    // `kubectl apply -f` of the docs' hooks (client-side apply): created, with the
    // last-applied-configuration annotation kubectl writes, and the empty keys (nulls) pruned
    // before validation, as the API server does for custom resources without
    // `nullable: true` ("Specifying a structural schema", Defaulting and Nullable).
    let hooks = kubectl.file("hooks.yaml", DOCS_HOOKS);
    let applied = kubectl.ok(&["apply", "-f", &hooks]).await.stdout;
    assert!(
        applied
            .contains("backuphook.clusterbackup.dataprotection.microsoft.com/bkphookname0 created"),
        "{applied}"
    );
    assert!(
        applied.contains(
            "restorehook.clusterbackup.dataprotection.microsoft.com/restorehookname0 created"
        ),
        "{applied}"
    );
    let stored = server
        .object(
            "clusterbackup.dataprotection.microsoft.com",
            "backuphooks",
            "default",
            "bkphookname0",
        )
        .unwrap();
    assert!(
        stored
            .pointer("/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration")
            .is_some()
    );
    let rule = &stored["spec"]["backupHook"][0];
    assert!(rule.get("excludedNamespaces").is_none(), "{rule}");
    assert_eq!(rule["preHooks"][0]["exec"]["timeout"], "10s");

    // A second apply of the same file changes nothing: an update that leaves the object as
    // it is keeps its resourceVersion (API concepts, "Resource versions"). (kubectl still
    // sends a patch and says "configured": its three-way merge sees the docs' nulls inside
    // the hook list, which the server pruned, and JSON merge patch replaces lists whole.)
    let before = resource_version(&server, "backuphooks", "bkphookname0");
    let again = kubectl.ok(&["apply", "-f", &hooks]).await.stdout;
    assert!(again.contains("bkphookname0"), "{again}");
    assert_eq!(
        resource_version(&server, "backuphooks", "bkphookname0"),
        before
    );

    // `kubectl label`: a merge patch on a custom resource (strategic merge patch is for
    // built-in types), recorded under the field manager `kubectl-label`.
    let labeled = kubectl
        .ok(&["label", "backuphook", "bkphookname0", "team=payments"])
        .await
        .stdout;
    assert!(labeled.contains("labeled"), "{labeled}");
    // ... and on a namespace, a strategic merge patch.
    kubectl.ok(&["label", "ns", "default", "tier=gold"]).await;
    assert_eq!(
        server.object("", "namespaces", "", "default").unwrap()["metadata"]["labels"]["tier"],
        "gold"
    );

    // `kubectl apply --server-side` setting the label to another value conflicts with the
    // manager that set it (409, "Apply failed with 1 conflict: conflict with
    // \"kubectl-label\"…"; docs: "Server-Side Apply", Conflicts) ...
    let ssa = kubectl.file("ssa.yaml", SSA_HOOK);
    let conflict = kubectl.run(&["apply", "--server-side", "-f", &ssa]).await;
    assert!(!conflict.ok);
    assert!(
        conflict.stderr.contains("conflict") && conflict.stderr.contains("kubectl-label"),
        "{}",
        conflict.stderr
    );
    // ... and `--force-conflicts` takes the field over.
    let forced = kubectl
        .ok(&["apply", "--server-side", "--force-conflicts", "-f", &ssa])
        .await
        .stdout;
    assert!(forced.contains("serverside-applied"), "{forced}");
    let stored = server
        .object(
            "clusterbackup.dataprotection.microsoft.com",
            "backuphooks",
            "default",
            "bkphookname0",
        )
        .unwrap();
    assert_eq!(stored["metadata"]["labels"]["team"], "storage");

    // `kubectl explain` reads the type's schema from the OpenAPI v3 document of its
    // group-version, a CRD's from its openAPIV3Schema ("kubectl explain" reference).
    let explained = kubectl.ok(&["explain", "backuphooks"]).await.stdout;
    assert!(
        explained.contains("BackupHook") && explained.contains("spec"),
        "{explained}"
    );
    assert!(
        explained.contains("clusterbackup.dataprotection.microsoft.com"),
        "{explained}"
    );

    // A misspelt field is refused before anything is stored. kubectl before 1.27 validates
    // on the client against the OpenAPI v2 document (protobuf), a CRD's schema included
    // since Kubernetes 1.15, and sends nothing ("error validating data: ValidationError…";
    // `kubectl apply --validate`, on by default); later kubectl asks the server to
    // (`fieldValidation=Strict`), which answers 400 "strict decoding error: unknown field"
    // (API concepts, "Field validation").
    let posts_before = server
        .requests()
        .iter()
        .filter(|(m, _)| *m == Method::POST)
        .count();
    let typo = kubectl.file("typo.yaml", TYPO_HOOK);
    let refused = kubectl.run(&["apply", "-f", &typo]).await;
    assert!(!refused.ok, "{}", refused.stdout);
    assert!(
        refused.stderr.contains("unknown field") && refused.stderr.contains("timout"),
        "{}",
        refused.stderr
    );
    let posts = server
        .requests()
        .iter()
        .filter(|(m, _)| *m == Method::POST)
        .count()
        - posts_before;
    if minor < 27 {
        assert!(
            refused
                .stderr
                .contains("error validating data: ValidationError"),
            "{}",
            refused.stderr
        );
        assert_eq!(posts, 0, "validated on the client: nothing sent");
        assert!(
            server
                .requests()
                .iter()
                .any(|(m, p)| *m == Method::GET && p == "/openapi/v2"),
            "kubectl 1.{minor} reads OpenAPI v2"
        );
    } else {
        assert!(
            refused.stderr.contains("strict decoding error"),
            "{}",
            refused.stderr
        );
    }
    assert!(
        server
            .object(
                "clusterbackup.dataprotection.microsoft.com",
                "backuphooks",
                "default",
                "typo"
            )
            .is_none()
    );

    // `--dry-run=server`: the request is validated and answered as if it were persisted,
    // but nothing is stored (API concepts, "Dry-run").
    let dry = kubectl
        .ok(&["create", "namespace", "drill-scratch", "--dry-run=server"])
        .await
        .stdout;
    assert!(
        dry.contains("namespace/drill-scratch created (server dry run)"),
        "{dry}"
    );
    assert!(!server.namespace_exists("drill-scratch"));

    // `--chunk-size=1`: kubectl lists with limit=1 and follows `metadata.continue` to the
    // end, so every namespace comes back, one request per page (API concepts, "Retrieving
    // large results sets in chunks").
    let lists_before = server
        .requests()
        .iter()
        .filter(|(m, p)| *m == Method::GET && p == "/api/v1/namespaces")
        .count();
    let chunked = rows(&kubectl.ok(&["get", "ns", "--chunk-size=1"]).await.stdout);
    let lists = server
        .requests()
        .iter()
        .filter(|(m, p)| *m == Method::GET && p == "/api/v1/namespaces")
        .count()
        - lists_before;
    assert_eq!(
        chunked.iter().map(|r| r[0].clone()).collect::<Vec<_>>(),
        ns.iter().map(|r| r[0].clone()).collect::<Vec<_>>()
    );
    assert!(
        lists >= ns.len() - 1,
        "{lists} pages for {} namespaces",
        ns.len() - 1
    );

    // `kubectl delete`: the object is gone, and kubectl's wait for the deletion (a list and
    // a watch on the name) ends.
    let deleted = kubectl.ok(&["delete", "-f", &hooks]).await.stdout;
    assert!(
        deleted.contains("bkphookname0\" deleted") || deleted.contains("bkphookname0 deleted"),
        "{deleted}"
    );
    assert!(
        server
            .object(
                "clusterbackup.dataprotection.microsoft.com",
                "backuphooks",
                "default",
                "bkphookname0"
            )
            .is_none()
    );
}

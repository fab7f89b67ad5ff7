//! `reconcile engine …` end to end: the real binary on a state file in a temp dir.
//!
//! Expected outputs live in `tests/data/engine_cli/*.txt`; `UPDATE_EXPECT=1 cargo test --test
//! engine_cli` rewrites them (review the diff: they are meant to read exactly like kubectl).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A fresh cluster in a temp dir.
struct Cluster {
    _dir: tempfile::TempDir,
    state: PathBuf,
}

impl Cluster {
    /// `nodes` workers, nothing else.
    fn new(nodes: usize) -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let state = dir.path().join("engine.db");
        let cluster = Cluster { _dir: dir, state };
        cluster.ok(&["reset", "--nodes", &nodes.to_string()]);
        cluster
    }

    /// The cluster of `kinds.yaml` (one object of every kind), two minutes after creation.
    fn with_every_kind() -> Cluster {
        let cluster = Cluster::new(2);
        cluster.ok(&["create", "-f", &data("kinds.yaml")]);
        cluster.ok(&["advance", "2m"]);
        cluster
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_reconcile"))
            .arg("engine")
            .arg("--state")
            .arg(&self.state)
            .args(args)
            .env_remove("RECONCILE_ENGINE_STATE")
            .output()
            .expect("run reconcile")
    }

    /// Stdout of a command that must succeed.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "engine {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 stdout")
    }
}

fn data(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/engine_cli")
        .join(name)
        .display()
        .to_string()
}

/// Compares `actual` with the golden file `name` (rewritten under `UPDATE_EXPECT=1`).
fn check(name: &str, actual: &str) {
    let path = PathBuf::from(data(name));
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        std::fs::write(&path, actual).expect("write golden");
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_EXPECT=1)", path.display()));
    if expected != actual {
        let diff = similar::TextDiff::from_lines(&expected, actual);
        panic!(
            "{name} differs (UPDATE_EXPECT=1 to accept):\n{}",
            diff.unified_diff()
        );
    }
}

#[test]
fn get_several_kinds_prints_one_table_per_kind_with_kind_prefixes() {
    let c = Cluster::with_every_kind();
    let out = c.ok(&["get", "deploy,rs,pods", "-l", "app=web"]);
    check("get_deploy_rs_pods.txt", &out);
    let tables: Vec<&str> = out.split("\n\n").collect();
    assert_eq!(tables.len(), 3, "{out}");
    assert!(tables[0].contains("\ndeployment.apps/web "), "{out}");
    assert!(tables[1].contains("\nreplicaset.apps/web-"), "{out}");
    assert!(tables[2].contains("\npod/web-"), "{out}");
    // One kind: no prefix, as kubectl.
    let one = c.ok(&["get", "deploy"]);
    assert!(one.contains("\nweb "), "{one}");
    // Several kinds listed: prefixed even when only one of them has objects (kubectl gets
    // one server table per kind listed), and nothing printed for the empty ones.
    let deploy_only = c.ok(&["get", "deploy,cm", "-l", "app=web"]);
    assert_eq!(
        deploy_only,
        "NAME                  READY   UP-TO-DATE   AVAILABLE   AGE\n\
         deployment.apps/web   2/2     2            2           2m\n"
    );
    let nothing = c.run(&["get", "cm,deploy", "-l", "app=none"]);
    assert!(nothing.stdout.is_empty());
    assert_eq!(
        String::from_utf8_lossy(&nothing.stderr),
        "No resources found in default namespace.\n"
    );
    // Several kinds named: prefixed only when objects of several kinds are found.
    let one_found = c.run(&["get", "deploy,cm", "web"]);
    assert_eq!(one_found.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&one_found.stdout);
    assert!(stdout.contains("\nweb "), "{stdout}");
    let both_found = c.ok(&["get", "deploy,svc", "web"]);
    assert!(
        both_found.contains("\ndeployment.apps/web "),
        "{both_found}"
    );
    assert!(both_found.contains("\nservice/web "), "{both_found}");
    // kubectl's columns for volumes and claims (v1.29+: VOLUMEATTRIBUTESCLASS, REASON).
    let storage = c.ok(&["get", "pv,pvc"]);
    let headers: Vec<Vec<&str>> = storage
        .split("\n\n")
        .filter_map(|t| t.lines().next())
        .map(|h| {
            h.split("   ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect()
        })
        .collect();
    assert_eq!(
        headers,
        [
            vec![
                "NAME",
                "CAPACITY",
                "ACCESS MODES",
                "RECLAIM POLICY",
                "STATUS",
                "CLAIM",
                "STORAGECLASS",
                "VOLUMEATTRIBUTESCLASS",
                "REASON",
                "AGE"
            ],
            vec![
                "NAME",
                "STATUS",
                "VOLUME",
                "CAPACITY",
                "ACCESS MODES",
                "STORAGECLASS",
                "VOLUMEATTRIBUTESCLASS",
                "AGE"
            ]
        ],
        "{storage}"
    );
    assert!(
        storage.contains("persistentvolumeclaim/data   Bound"),
        "{storage}"
    );
    // --show-labels adds LABELS last; --no-headers drops titles and the blank separators.
    let labelled = c.ok(&["get", "deploy,svc", "--show-labels"]);
    assert!(
        labelled.starts_with(
            "NAME                  READY   UP-TO-DATE   AVAILABLE   AGE   LABELS\n\
        deployment.apps/web   2/2     2            2           2m    app=web\n\n"
        ),
        "{labelled}"
    );
    assert!(
        labelled.contains("service/web          ClusterIP"),
        "{labelled}"
    );
    let bare = c.ok(&["get", "deploy,svc", "--no-headers"]);
    assert_eq!(bare.lines().count(), 3, "{bare}");
    assert!(
        bare.starts_with("deployment.apps/web   2/2   2     2     2m\nservice/"),
        "{bare}"
    );
    // kubectl's columns for the kinds with a table of their own.
    check(
        "get_sa_role_rolebinding_wide.txt",
        &c.ok(&["get", "sa,role,rolebinding", "-o", "wide"]),
    );
}

#[test]
fn get_all_follows_kubectls_category_order() {
    let c = Cluster::with_every_kind();
    let out = c.ok(&["get", "all"]);
    check("get_all.txt", &out);
    let order: Vec<&str> = out
        .split("\n\n")
        .filter_map(|table| table.lines().nth(1))
        .map(|row| row.split('/').next().unwrap_or_default())
        .collect();
    assert_eq!(
        order,
        [
            "pod",
            "service",
            "daemonset.apps",
            "deployment.apps",
            "replicaset.apps",
            "statefulset.apps",
            "horizontalpodautoscaler.autoscaling",
            "cronjob.batch",
            "job.batch"
        ]
    );
    // Config and storage kinds are not in `all`.
    assert!(!out.contains("configmap/") && !out.contains("persistentvolumeclaim/"));
}

#[test]
fn empty_results_and_missing_names_read_like_kubectl() {
    let c = Cluster::new(1);
    let out = c.run(&["get", "all", "-n", "team"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "No resources found in team namespace.\n"
    );
    let out = c.run(&["get", "deploy", "web", "api"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "Error from server (NotFound): deployments.apps \"web\" not found\n\
         Error from server (NotFound): deployments.apps \"api\" not found\n"
    );
    let out = c.run(&["get", "deploy", "web", "-A"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: a resource cannot be retrieved by name across all namespaces\n"
    );
    let out = c.run(&["get", "widgets"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("the server doesn't have a resource type \"widgets\"")
    );
}

#[test]
fn several_kinds_as_yaml_or_json_are_one_list() {
    let c = Cluster::with_every_kind();
    let yaml = c.ok(&["get", "cm,secret", "-o", "yaml"]);
    assert!(
        yaml.starts_with("apiVersion: v1\nitems:\n- apiVersion: v1\n  data:\n"),
        "{yaml}"
    );
    assert!(
        yaml.ends_with("kind: List\nmetadata:\n  resourceVersion: \"\"\n"),
        "{yaml}"
    );
    assert_eq!(yaml.matches("\n  kind: ").count(), 2, "{yaml}");
    let json = c.ok(&["get", "cm,secret", "-o", "json"]);
    let list: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(list["kind"], "List");
    let kinds: Vec<&str> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["ConfigMap", "Secret"]);
    // kubectl's JSON: four-space indentation, keys sorted.
    assert!(
        json.starts_with("{\n    \"apiVersion\": \"v1\",\n    \"items\": ["),
        "{json}"
    );
    // One kind and one name: the object itself.
    let one = c.ok(&["get", "cm", "settings", "-o", "yaml"]);
    check("get_cm_settings.yaml", &one);
    assert!(one.starts_with("apiVersion: v1\ndata:\n  app.conf: |-\n    a=1\n    b=2\n"));
    let names = c.ok(&["get", "deploy/web", "svc/web", "-o", "name"]);
    assert_eq!(names, "deployment.apps/web\nservice/web\n");
}

/// Every kind `get` lists has a description in kubectl's layout, ending with its events
/// (except where kubectl prints none: Secret, ResourceQuota, LimitRange, Namespace, RBAC).
#[test]
fn describe_every_kind() {
    let c = Cluster::with_every_kind();
    let mut all = String::new();
    for (kind, name) in [
        ("deployment", "web"),
        ("replicaset", ""),
        ("pod", "db-0"),
        ("service", "web"),
        ("daemonset", "agent"),
        ("statefulset", "db"),
        ("job", "migrate"),
        ("cronjob", "report"),
        ("hpa", "web"),
        ("configmap", "settings"),
        ("secret", "creds"),
        ("serviceaccount", "builder"),
        ("resourcequota", "compute"),
        ("limitrange", "defaults"),
        ("storageclass", "fast"),
        ("ingress", "web"),
        ("namespace", "default"),
        ("endpoints", "web"),
        ("role", "reader"),
        ("rolebinding", "reader"),
        ("node", "worker-1"),
    ] {
        let args: Vec<&str> = ["describe", kind, name]
            .into_iter()
            .filter(|a| !a.is_empty())
            .collect();
        let out = c.ok(&args);
        assert!(out.starts_with("Name:"), "{kind}: {out}");
        all.push_str(&format!("$ engine {}\n{out}\n", args.join(" ")));
    }
    check("describe_kinds.txt", &all);
    // The kinds another helper's volume controller is changing are checked by shape only.
    for (kind, name, expect) in [
        (
            "pv",
            "pv-1",
            "Source:\n    Type:          HostPath (bare host directory volume)\n",
        ),
        ("pvc", "data", "StorageClass:  fast\n"),
    ] {
        let out = c.ok(&["describe", kind, name]);
        assert!(out.starts_with("Name:"), "{out}");
        assert!(out.contains(expect), "{kind}: {out}");
        assert!(out.contains("\nEvents:"), "{kind}: {out}");
    }
}

#[test]
fn describe_secret_shows_sizes_never_values() {
    let c = Cluster::with_every_kind();
    let out = c.ok(&["describe", "secret", "creds"]);
    assert!(
        out.contains("\nData\n====\npassword:  6 bytes\nuser:      5 bytes\n"),
        "{out}"
    );
    for leaked in ["czNjcjN0", "s3cr3t", "YWRtaW4=", "admin"] {
        assert!(!out.contains(leaked), "{leaked} in {out}");
    }
}

#[test]
fn describe_without_a_name_describes_every_object_of_the_kind() {
    let c = Cluster::with_every_kind();
    let out = c.ok(&["describe", "pods", "-l", "app=web"]);
    let names: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("Name:"))
        .map(str::trim)
        .collect();
    assert_eq!(names.len(), 2, "{out}");
    assert!(names.iter().all(|n| n.starts_with("web-")), "{out}");
    // Objects are separated by two blank lines; kubectl leaves events out for several.
    assert_eq!(out.matches("\n\n\nName:").count(), 1, "{out}");
    assert!(!out.contains("Events:"), "{out}");
    let with_events = c.ok(&["describe", "pods", "-l", "app=web", "--show-events=true"]);
    assert_eq!(with_events.matches("\nEvents:").count(), 2, "{with_events}");
    // A name that matches nothing exactly describes the objects it prefixes.
    let prefixed = c.ok(&["describe", "pods", "agent"]);
    assert_eq!(
        prefixed.matches("Name:             agent-").count(),
        2,
        "{prefixed}"
    );
    // -A reaches every namespace; -n picks one.
    let all_ns = c.ok(&["describe", "sa", "-A"]);
    assert!(all_ns.contains("Name:                builder"), "{all_ns}");
    let out = c.run(&["describe", "sa", "-n", "empty"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "No resources found in empty namespace.\n"
    );
}

/// A bad file fails before anything is created: no partial create.
fn assert_rejected(c: &Cluster, file: &Path, line: usize, cause: &str) {
    let before = c.ok(&["get", "cm", "-A", "-o", "name"]);
    let out = c.run(&["create", "-f", &file.display().to_string()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let prefix = format!("error: {}: line {line}, column ", file.display());
    assert!(stderr.starts_with(&prefix), "{stderr}");
    assert!(stderr.contains(cause), "{stderr}");
    assert_eq!(
        stderr.matches(cause).count(),
        1,
        "cause printed once: {stderr}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).is_empty());
    assert_eq!(c.ok(&["get", "cm", "-A", "-o", "name"]), before);
}

#[test]
fn create_rejects_alias_bombs_with_file_and_line_and_changes_nothing() {
    let c = Cluster::new(1);
    let dir = tempfile::tempdir().expect("temp dir");
    // A valid object first: it must not be created either.
    let mut text = String::from("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: first\n---\n");
    text.push_str("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for level in 1..=9 {
        let refs = vec![format!("*a{}", level - 1); 10].join(", ");
        text.push_str(&format!("a{level}: &a{level} [{refs}]\n"));
    }
    let file = dir.path().join("bomb.yaml");
    std::fs::write(&file, text).expect("write");
    let start = std::time::Instant::now();
    assert_rejected(&c, &file, 6, "document contains excessive aliasing");
    assert!(start.elapsed() < std::time::Duration::from_secs(20));
}

#[test]
fn create_rejects_broken_yaml_with_file_and_line_and_changes_nothing() {
    let c = Cluster::new(1);
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("broken.yaml");
    std::fs::write(
        &file,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ok\n---\napiVersion: v1\n\
         kind: ConfigMap\nmetadata:\n  name: bad\ndata:\n\tkey: value\n",
    )
    .expect("write");
    assert_rejected(&c, &file, 11, "tabs");
    let dup = dir.path().join("dup.yaml");
    std::fs::write(
        &dup,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: d\ndata:\n  a: 1\n  a: 2\n",
    )
    .expect("write");
    assert_rejected(&c, &dup, 7, "mapping key \"a\" already defined at line 6");
}

#[test]
fn create_reads_lists_and_annotations_as_render_does() {
    let c = Cluster::new(1);
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("list.yaml");
    std::fs::write(
        &file,
        "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata:\n    \
         name: one\n    annotations: {version: 1.10}\n- apiVersion: v1\n  kind: ConfigMap\n  \
         metadata: {name: two}\n",
    )
    .expect("write");
    let out = c.ok(&["create", "-f", &file.display().to_string()]);
    assert_eq!(out, "configmap/one created\nconfigmap/two created\n");
    // Annotations keep their text (`1.10`, not the number 1.1), as in `render`.
    let one = c.ok(&["get", "cm", "one", "-o", "json"]);
    assert!(one.contains("\"version\": \"1.10\""), "{one}");
}

#[test]
fn describe_deployment_names_old_and_new_replica_sets_mid_rollout() {
    let c = Cluster::new(2);
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = |image: &str| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 2\n  \
             selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    \
             spec:\n      containers: [{{name: app, image: \"{image}\"}}]\n"
        )
    };
    let file = dir.path().join("web.yaml");
    std::fs::write(&file, manifest("web:1.0")).expect("write");
    c.ok(&["apply", "-f", &file.display().to_string()]);
    c.ok(&["advance", "1m"]);
    std::fs::write(&file, manifest("web:2.0")).expect("write");
    assert_eq!(
        c.ok(&["apply", "-f", &file.display().to_string()]),
        "deployment.apps/web configured\n"
    );
    c.ok(&["advance", "1s"]);
    let out = c.ok(&["describe", "deploy", "web"]);
    let line = |key: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(key))
            .map(str::trim)
            .unwrap_or_default()
            .to_string()
    };
    let old = line("OldReplicaSets:");
    let new = line("NewReplicaSet:");
    // The events of the Deployment only, oldest first, as kubectl lists them: the first
    // ReplicaSet scaled up from 0 is the old one, the second the new one.
    let scaled_up: Vec<String> = out
        .lines()
        .skip_while(|l| !l.starts_with("Events:"))
        .filter_map(|l| l.split("Scaled up replica set ").nth(1))
        .filter(|rest| rest.contains(" from 0 to "))
        .filter_map(|rest| rest.split(' ').next())
        .map(String::from)
        .collect();
    assert_eq!(scaled_up.len(), 2, "{out}");
    assert!(old.starts_with(&format!("{} (", scaled_up[0])), "{out}");
    assert!(new.starts_with(&format!("{} (", scaled_up[1])), "{out}");
    assert!(new.ends_with("replicas created)"), "{out}");
}

#[test]
fn get_events_is_the_events_command() {
    let c = Cluster::with_every_kind();
    let events = c.ok(&["events", "-A"]);
    assert!(events.contains("Scheduled"), "{events}");
    assert_eq!(c.ok(&["get", "events", "-A"]), events);
    assert_eq!(c.ok(&["get", "ev"]), c.ok(&["events"]));
    let json = c.ok(&["get", "events", "-o", "json"]);
    let parsed: serde_json::Value = serde_json::from_str(&json).expect("events as JSON");
    assert!(json.contains("Scheduled"), "{parsed}");
}

//! `--target kube:CONTEXT` end to end: the real binary against `reconcile engine serve`,
//! reached over HTTPS with the kubeconfig serve writes (context `reconcile-engine`), exactly
//! as it would reach any Kubernetes API server. Objects that are not reconcile's (a foreign
//! ConfigMap, another field manager's field) are made with the `kube` crate directly.

mod plan_support;

mod serve_support;
use serve_support::Server;

use std::path::Path;
use std::process::Command;

use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use plan_support::{Repo, Run};
use serde_json::{Value, json};

const CONTEXT: &str = "kube:reconcile-engine";
/// The token of `jane`, a user of serve's `--token-auth-file` (never printed).
const JANE_TOKEN: &str = "jane-0123456789abcdef";

impl Server {
    /// Serves a fresh state; `prepare` runs `reconcile engine …` on it first (image behaviours).
    fn start_prepared(prepare: &[&[&str]]) -> Server {
        Self::start_with(prepare, &[])
    }

    /// As [`Server::start_prepared`], with serve's test hooks set in its environment.
    fn start_with(prepare: &[&[&str]], env: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let state = dir.path().join("engine.db");
        for args in prepare {
            let out = Command::new(env!("CARGO_BIN_EXE_reconcile"))
                .args(*args)
                .arg("--state")
                .arg(&state)
                .output()
                .unwrap_or_else(|e| panic!("reconcile engine: {e}"));
            assert!(out.status.success(), "{args:?}: {out:?}");
        }
        let child = serve_support::spawn_with(dir.path(), env);
        Server { child, dir }
    }

    /// The bearer token of the kubeconfig (must never be printed).
    fn token(&self) -> String {
        let text = std::fs::read_to_string(self.kubeconfig()).unwrap_or_default();
        text.lines()
            .find_map(|l| l.trim().strip_prefix("token: "))
            .unwrap_or_else(|| panic!("no token in the kubeconfig"))
            .to_string()
    }

    /// The command `reconcile ARGS` in the repository with this server's kubeconfig.
    fn command(&self, repo: &Repo, args: &[&str]) -> Command {
        self.command_as(&self.kubeconfig(), repo, args)
    }

    /// The command `reconcile ARGS` in the repository with `kubeconfig`.
    fn command_as(&self, kubeconfig: &Path, repo: &Repo, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_reconcile"));
        command
            .args(args)
            .current_dir(repo.path())
            .env("NO_COLOR", "1")
            .env("KUBECONFIG", kubeconfig)
            .env_remove("RECONCILE_ENGINE_STATE")
            .env_remove("RECONCILE_TARGET");
        command
    }

    /// Runs `reconcile ARGS` in the repository with this server's kubeconfig.
    fn run(&self, repo: &Repo, args: &[&str]) -> Run {
        self.run_as(&self.kubeconfig(), repo, args)
    }

    /// Runs `reconcile ARGS` in the repository with `kubeconfig`.
    fn run_as(&self, kubeconfig: &Path, repo: &Repo, args: &[&str]) -> Run {
        let out = self
            .command_as(kubeconfig, repo, args)
            .output()
            .unwrap_or_else(|e| panic!("running reconcile: {e}"));
        let run = Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        assert!(
            !run.all().contains(&self.token()) && !run.all().contains(JANE_TOKEN),
            "a token was printed by reconcile {}",
            args.join(" ")
        );
        run
    }

    /// Runs and asserts the exit code.
    fn ok(&self, repo: &Repo, args: &[&str], code: i32) -> Run {
        let run = self.run(repo, args);
        assert_eq!(
            run.code,
            code,
            "reconcile {}:\n{}",
            args.join(" "),
            run.all()
        );
        run
    }
}

fn api(client: &kube::Client, group: &str, kind: &str, namespace: &str) -> Api<DynamicObject> {
    let plural = format!("{}s", kind.to_lowercase());
    let gvk = GroupVersionKind::gvk(group, "v1", kind);
    let resource = ApiResource::from_gvk_with_plural(&gvk, &plural);
    Api::namespaced_with(client.clone(), namespace, &resource)
}

/// An object read through the API, as JSON (`None` when absent).
fn read(server: &Server, group: &str, kind: &str, namespace: &str, name: &str) -> Option<Value> {
    let (runtime, client) = server.client();
    let api = api(&client, group, kind, namespace);
    runtime
        .block_on(api.get_opt(name))
        .unwrap_or_else(|e| panic!("get {kind} {name}: {e}"))
        .map(|o| serde_json::to_value(o).unwrap_or(Value::Null))
}

/// The demo (base + prod overlay) copied into a fresh repository.
fn demo_repo() -> Repo {
    let repo = Repo::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for dir in ["base", "overlays/prod"] {
        let entries = std::fs::read_dir(root.join(dir)).unwrap_or_else(|e| panic!("{dir}: {e}"));
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(entry.path()).unwrap_or_else(|e| panic!("{e}"));
            repo.write(&format!("{dir}/{name}"), &text);
        }
    }
    repo
}

#[test]
fn the_prod_overlay_applies_plans_clean_shows_one_line_and_prunes_only_its_own() {
    let server = Server::start_prepared(&[]);
    let repo = demo_repo();
    repo.write(
        "overlays/prod/extra.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\ndata:\n  a: \"1\"\n",
    );
    repo.edit(
        "overlays/prod/kustomization.yaml",
        "- namespace.yaml\n",
        "- namespace.yaml\n- extra.yaml\n",
    );
    let apply = server.ok(
        &repo,
        &["apply", "overlays/prod", "--target", CONTEXT, "--wait"],
        0,
    );
    assert!(
        apply
            .stdout
            .contains("Apply complete (overlays-prod): 10 created"),
        "{}",
        apply.stdout
    );
    assert!(
        apply.stdout.contains("Namespace gallery-prod: created"),
        "{}",
        apply.stdout
    );
    // The canary Deployment went out as its RollingUpdate stand-in, declared strategy kept.
    let web = read(
        &server,
        "apps",
        "Deployment",
        "gallery-prod",
        "image-gallery",
    )
    .unwrap_or_else(|| panic!("image-gallery missing"));
    assert_eq!(web["spec"]["strategy"]["type"], "RollingUpdate", "{web}");
    assert!(
        web["metadata"]["annotations"]["reconcile.dev/strategy"]
            .as_str()
            .is_some_and(|s| s.contains("Canary")),
        "{web}"
    );
    let managers: Vec<&str> = web["metadata"]["managedFields"]
        .as_array()
        .map(|m| m.iter().filter_map(|f| f["manager"].as_str()).collect())
        .unwrap_or_default();
    assert!(managers.contains(&"reconcile"), "{managers:?}");

    let plan = server.ok(
        &repo,
        &[
            "plan",
            "overlays/prod",
            "--target",
            CONTEXT,
            "--detailed-exitcode",
        ],
        0,
    );
    assert!(plan.stdout.contains("No changes."), "{}", plan.stdout);
    assert!(
        plan.stdout
            .contains("Application overlays-prod (overlays/prod) on kube:reconcile-engine"),
        "{}",
        plan.stdout
    );

    repo.edit(
        "overlays/prod/kustomization.yaml",
        "- name: diamol/ch09-access-log\n  newTag: \"1.0\"",
        "- name: diamol/ch09-access-log\n  newTag: \"1.1\"",
    );
    let plan = server.ok(
        &repo,
        &[
            "plan",
            "overlays/prod",
            "--target",
            CONTEXT,
            "--detailed-exitcode",
        ],
        2,
    );
    let changed: Vec<&str> = plan
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("      "))
        .filter(|l| {
            (l.starts_with('+') || l.starts_with('-'))
                && !l.starts_with("+++")
                && !l.starts_with("---")
        })
        .collect();
    assert_eq!(
        changed,
        [
            "-      - image: diamol/ch09-access-log:1.0",
            "+      - image: diamol/ch09-access-log:1.1"
        ],
        "{}",
        plan.stdout
    );

    // A foreign ConfigMap in the same namespace, and the app's extra one dropped.
    let (runtime, client) = server.client();
    let configmaps = api(&client, "", "ConfigMap", "gallery-prod");
    let foreign: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "foreign", "namespace": "gallery-prod"},
        "data": {"owner": "someone else"},
    }))
    .unwrap_or_else(|e| panic!("{e}"));
    runtime
        .block_on(configmaps.create(&PostParams::default(), &foreign))
        .unwrap_or_else(|e| panic!("create foreign: {e}"));
    repo.edit(
        "overlays/prod/kustomization.yaml",
        "- namespace.yaml\n- extra.yaml\n",
        "- namespace.yaml\n",
    );
    let apply = server.ok(
        &repo,
        &[
            "apply",
            "overlays/prod",
            "--target",
            CONTEXT,
            "--prune",
            "--wait",
        ],
        0,
    );
    assert!(
        apply
            .stdout
            .contains("ConfigMap gallery-prod/extra: deleted"),
        "{}",
        apply.stdout
    );
    assert!(read(&server, "", "ConfigMap", "gallery-prod", "extra").is_none());
    assert!(read(&server, "", "ConfigMap", "gallery-prod", "foreign").is_some());
    server.ok(
        &repo,
        &[
            "plan",
            "overlays/prod",
            "--target",
            CONTEXT,
            "--prune",
            "--detailed-exitcode",
        ],
        0,
    );
}

const CANARY: &str = "    type: Canary
    canary:
      steps:
      - setWeight: 50
      - pause: {duration: 2s}";

#[test]
fn a_failing_canary_is_aborted_and_stable_keeps_serving() {
    let server = Server::start_prepared(&[&["engine", "images", "set", "web:2.0", "--missing"]]);
    let repo = Repo::new();
    plan_support::web(&repo, CANARY, "");
    // Deadlines and timeouts are the server's time, 20 times as fast as this machine's.
    repo.edit(
        "app/web.yaml",
        "  replicas: 4\n",
        "  replicas: 4\n  progressDeadlineSeconds: 60\n",
    );
    server.ok(&repo, &["apply", "app", "--target", CONTEXT, "--wait"], 0);
    repo.edit(
        "app/kustomization.yaml",
        "newTag: \"1.0\"",
        "newTag: \"2.0\"",
    );
    let plan = server.ok(
        &repo,
        &["plan", "app", "--target", CONTEXT, "--detailed-exitcode"],
        2,
    );
    assert!(
        plan.stdout
            .contains("~ update Deployment shop/web  (rolled out by Canary: 2 steps)"),
        "{}",
        plan.stdout
    );
    let apply = server.ok(
        &repo,
        &[
            "apply",
            "app",
            "--target",
            CONTEXT,
            "--wait",
            "--timeout",
            "10m",
        ],
        1,
    );
    assert!(
        apply
            .stderr
            .contains("error: rollout of Deployment shop/web is Degraded"),
        "{}",
        apply.all()
    );
    let stable =
        read(&server, "apps", "Deployment", "shop", "web").unwrap_or_else(|| panic!("web missing"));
    assert_eq!(
        stable["spec"]["template"]["spec"]["containers"][0]["image"], "web:1.0",
        "{stable}"
    );
    assert_eq!(stable["status"]["availableReplicas"], 4, "{stable}");
    assert!(read(&server, "apps", "Deployment", "shop", "web-canary").is_none());
    let status = server.ok(
        &repo,
        &[
            "rollout",
            "status",
            "web",
            "-n",
            "shop",
            "--target",
            CONTEXT,
            "--watch=false",
        ],
        1,
    );
    assert!(
        status.stdout.contains("Images:    web:1.0") && status.stdout.contains("Degraded"),
        "{}",
        status.stdout
    );
}

#[test]
fn a_field_another_manager_owns_conflicts_until_forced() {
    let server = Server::start_prepared(&[]);
    let repo = Repo::new();
    plan_support::web(&repo, "    type: RollingUpdate", "");
    server.ok(&repo, &["apply", "app", "--target", CONTEXT, "--wait"], 0);
    let (runtime, client) = server.client();
    let deployments = api(&client, "apps", "Deployment", "shop");
    let patch = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"replicas": 6},
    });
    runtime
        .block_on(deployments.patch(
            "web",
            &PatchParams::apply("ops").force(),
            &Patch::Apply(&patch),
        ))
        .unwrap_or_else(|e| panic!("ops apply: {e}"));
    let plan = server.ok(
        &repo,
        &["plan", "app", "--target", CONTEXT, "--detailed-exitcode"],
        2,
    );
    assert!(plan.stdout.contains("-  replicas: 6"), "{}", plan.stdout);
    let apply = server.ok(&repo, &["apply", "app", "--target", CONTEXT], 1);
    assert!(
        apply.stderr.contains("conflict with \"ops\"")
            && apply.stderr.contains("--force-conflicts"),
        "{}",
        apply.all()
    );
    let live = read(&server, "apps", "Deployment", "shop", "web").unwrap_or(Value::Null);
    assert_eq!(
        live["spec"]["replicas"], 6,
        "a refused apply changed nothing"
    );
    server.ok(
        &repo,
        &["apply", "app", "--target", CONTEXT, "--force-conflicts"],
        0,
    );
    let live = read(&server, "apps", "Deployment", "shop", "web").unwrap_or(Value::Null);
    assert_eq!(live["spec"]["replicas"], 4, "{live}");

    // A saved plan is sealed with a key kept in the cluster and applies there.
    repo.edit(
        "app/kustomization.yaml",
        "newTag: \"1.0\"",
        "newTag: \"1.1\"",
    );
    server.ok(
        &repo,
        &["plan", "app", "--target", CONTEXT, "--out", "plan.json"],
        0,
    );
    let saved = server.ok(&repo, &["apply", "plan.json"], 0);
    assert!(
        saved.stdout.contains("Deployment shop/web: updated"),
        "{}",
        saved.stdout
    );
    let key = read(&server, "", "Secret", "default", "reconcile-plan-key");
    assert!(key.is_some(), "the plan key is kept in the cluster");
}

#[test]
fn kube_targets_report_unknown_contexts_and_kinds_clearly() {
    let server = Server::start_prepared(&[]);
    let repo = Repo::new();
    plan_support::web(&repo, "    type: RollingUpdate", "");
    let run = server.ok(&repo, &["plan", "app", "--target", "kube:nope"], 1);
    assert!(
        run.stderr.contains("kubeconfig has no context \"nope\"")
            && run.stderr.contains("reconcile-engine"),
        "{}",
        run.stderr
    );
    repo.write(
        "app/widget.yaml",
        "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n",
    );
    repo.edit(
        "app/kustomization.yaml",
        "- web.yaml\n",
        "- web.yaml\n- widget.yaml\n",
    );
    let run = server.ok(&repo, &["apply", "app", "--target", CONTEXT], 1);
    assert!(
        run.stderr
            .contains("kind Widget in apiVersion example.com/v1")
            && run.stderr.contains("kube:reconcile-engine"),
        "{}",
        run.stderr
    );
    assert!(
        read(&server, "apps", "Deployment", "shop", "web").is_none(),
        "nothing applied"
    );
}

/// What two targets must agree on: an object without what the server stamps on it.
fn comparable(mut object: Value) -> Value {
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        for key in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "managedFields",
            "generation",
        ] {
            meta.remove(key);
        }
    }
    if let Some(map) = object.as_object_mut() {
        map.remove("status");
    }
    // Addresses are allocated at random by each cluster.
    if let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) {
        spec.remove("clusterIP");
        spec.remove("clusterIPs");
    }
    // Revision history records when each revision was applied: virtual time on the engine.
    let history = "reconcile.dev/rollout-history";
    if let Some(text) = object["metadata"]["annotations"][history].as_str() {
        let mut revisions: Value = serde_json::from_str(text).unwrap_or(Value::Null);
        for revision in revisions.as_array_mut().into_iter().flatten() {
            if let Some(r) = revision.as_object_mut() {
                r.remove("at");
            }
        }
        object["metadata"]["annotations"][history] = revisions;
    }
    object
}

#[test]
fn engine_and_kube_targets_plan_and_apply_alike() {
    // The same scenario twice: on an engine state file, then through serve.
    let scenario = |run: &dyn Fn(&Repo, &[&str], i32) -> Run, target: &str| -> Vec<String> {
        let repo = Repo::new();
        plan_support::web(
            &repo,
            "    type: RollingUpdate",
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  mode: fast\n",
        );
        let mut plans = Vec::new();
        let first = run(&repo, &["plan", "app", "--target", target], 0);
        plans.push(first.stdout);
        run(&repo, &["apply", "app", "--target", target, "--wait"], 0);
        repo.edit(
            "app/kustomization.yaml",
            "newTag: \"1.0\"",
            "newTag: \"1.1\"",
        );
        repo.edit("app/web.yaml", "mode: fast", "mode: safe");
        let second = run(&repo, &["plan", "app", "--target", target], 0);
        plans.push(second.stdout);
        run(&repo, &["apply", "app", "--target", target, "--wait"], 0);
        let third = run(&repo, &["plan", "app", "--target", target], 0);
        plans.push(third.stdout);
        plans
            .into_iter()
            .map(|p| p.replace(target, "TARGET"))
            .collect()
    };

    let state_dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let state = state_dir.path().join("engine.db");
    let engine_target = format!("engine:{}", state.display());
    let reset = Command::new(env!("CARGO_BIN_EXE_reconcile"))
        .args(["engine", "reset", "--state"])
        .arg(&state)
        .output()
        .unwrap_or_else(|e| panic!("engine reset: {e}"));
    assert!(reset.status.success(), "{reset:?}");
    let on_engine = |repo: &Repo, args: &[&str], code: i32| repo.ok(args, code);
    let engine_plans = scenario(&on_engine, &engine_target);

    let server = Server::start_prepared(&[]);
    let on_kube = |repo: &Repo, args: &[&str], code: i32| server.ok(repo, args, code);
    let kube_plans = scenario(&on_kube, CONTEXT);
    assert_eq!(engine_plans, kube_plans);

    // The final objects, read through the same API: serve the engine run's state too.
    let engine_server = Server::serve(state_dir);
    for (group, kind, name) in [
        ("apps", "Deployment", "web"),
        ("", "Service", "web"),
        ("", "ConfigMap", "settings"),
    ] {
        let on_engine = read(&engine_server, group, kind, "shop", name).map(comparable);
        let on_kube = read(&server, group, kind, "shop", name).map(comparable);
        assert!(on_engine.is_some(), "{kind} {name} missing on the engine");
        assert_eq!(on_engine, on_kube, "{kind} shop/{name} differs");
    }
}

/// A Deployment whose container port is out of range, in a file of its own.
const BAD_PORT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: bad
spec:
  selector:
    matchLabels: {app: bad}
  template:
    metadata:
      labels: {app: bad}
    spec:
      containers:
      - name: bad
        image: bad
        ports:
        - containerPort: 70000
";

/// True when the application's inventory exists on the server.
fn has_inventory(server: &Server) -> bool {
    let (runtime, client) = server.client();
    let api = api(&client, "", "ConfigMap", "default");
    let listed = runtime
        .block_on(api.list(&Default::default()))
        .unwrap_or_else(|e| panic!("list: {e}"));
    listed.items.iter().any(|o| {
        o.metadata
            .name
            .as_deref()
            .is_some_and(|n| n.contains("inventory"))
    })
}

#[test]
fn an_invalid_object_is_refused_before_anything_is_written() {
    let server = Server::start_prepared(&[]);
    let repo = Repo::new();
    plan_support::web(&repo, "    type: RollingUpdate", "");
    repo.write("app/bad.yaml", BAD_PORT);
    repo.edit(
        "app/kustomization.yaml",
        "- web.yaml\n",
        "- web.yaml\n- bad.yaml\n",
    );
    let run = server.ok(&repo, &["apply", "app", "--target", CONTEXT], 1);
    assert!(
        run.stderr.contains("app/bad.yaml: Deployment shop/bad: ")
            && run.stderr.contains("containerPort")
            && run.stderr.contains("65535")
            && run.stderr.contains("nothing was applied"),
        "{}",
        run.all()
    );
    assert!(read(&server, "apps", "Deployment", "shop", "web").is_none());
    assert!(read(&server, "", "Service", "shop", "web").is_none());
    assert!(read(&server, "apps", "Deployment", "default", "bad").is_none());
    assert!(!has_inventory(&server), "no inventory was written");
    repo.edit("app/bad.yaml", "70000", "8080");
    server.ok(&repo, &["apply", "app", "--target", CONTEXT], 0);
    assert!(read(&server, "apps", "Deployment", "shop", "bad").is_some());
}

#[test]
fn quota_refusals_are_named_and_change_nothing() {
    let server = Server::start_prepared(&[]);
    let (runtime, client) = server.client();
    let objects = [
        (
            "",
            "Namespace",
            json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "shop"}}),
        ),
        (
            "",
            "ResourceQuota",
            json!({"apiVersion": "v1", "kind": "ResourceQuota",
            "metadata": {"name": "no-config", "namespace": "shop"},
            "spec": {"hard": {"configmaps": "0"}}}),
        ),
    ];
    for (group, kind, object) in objects {
        let gvk = GroupVersionKind::gvk(group, "v1", kind);
        let plural = if kind == "ResourceQuota" {
            "resourcequotas".to_string()
        } else {
            format!("{}s", kind.to_lowercase())
        };
        let resource = ApiResource::from_gvk_with_plural(&gvk, &plural);
        let api: Api<DynamicObject> = if kind == "Namespace" {
            Api::all_with(client.clone(), &resource)
        } else {
            Api::namespaced_with(client.clone(), "shop", &resource)
        };
        let object: DynamicObject =
            serde_json::from_value(object).unwrap_or_else(|e| panic!("{kind}: {e}"));
        runtime
            .block_on(api.create(&PostParams::default(), &object))
            .unwrap_or_else(|e| panic!("create {kind}: {e}"));
    }
    let repo = Repo::new();
    repo.write(
        "app/kustomization.yaml",
        "namespace: shop\nresources:\n- settings.yaml\n",
    );
    repo.write(
        "app/settings.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  mode: fast\n",
    );
    let run = server.ok(&repo, &["apply", "app", "--target", CONTEXT], 1);
    assert!(
        run.stderr
            .contains("app/settings.yaml: ConfigMap shop/settings: quota exceeded: ")
            && run.stderr.contains("nothing was applied"),
        "{}",
        run.all()
    );
    assert!(read(&server, "", "ConfigMap", "shop", "settings").is_none());
    assert!(!has_inventory(&server), "no inventory was written");
}

/// Creates `object` (a JSON manifest) through the API as serve's admin.
fn create(server: &Server, object: Value) {
    let (runtime, client) = server.client();
    let (group, version) = object["apiVersion"]
        .as_str()
        .and_then(|v| v.split_once('/'))
        .map(|(g, v)| (g.to_string(), v.to_string()))
        .unwrap_or_default();
    let version = if version.is_empty() {
        "v1".to_string()
    } else {
        version
    };
    let kind = object["kind"].as_str().unwrap_or_default().to_string();
    let gvk = GroupVersionKind::gvk(&group, &version, &kind);
    let resource = ApiResource::from_gvk_with_plural(&gvk, &format!("{}s", kind.to_lowercase()));
    let api: Api<DynamicObject> = match object["metadata"]["namespace"].as_str() {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    let object: DynamicObject =
        serde_json::from_value(object).unwrap_or_else(|e| panic!("{kind}: {e}"));
    runtime
        .block_on(api.create(&PostParams::default(), &object))
        .unwrap_or_else(|e| panic!("create {kind}: {e}"));
}

#[test]
fn a_read_only_user_is_forbidden_to_apply_and_may_plan() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let tokens = dir.path().join("tokens.csv");
    std::fs::write(&tokens, format!("{JANE_TOKEN},jane,u-1,\"viewers\"\n"))
        .unwrap_or_else(|e| panic!("{e}"));
    let tokens = tokens.display().to_string();
    let child = serve_support::spawn_args(dir.path(), &["--token-auth-file", &tokens]);
    let server = Server { child, dir };
    let rbac = "rbac.authorization.k8s.io/v1";
    create(
        &server,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
    );
    // jane reads everything in shop, and may take reconcile's lock and read its inventory.
    create(
        &server,
        json!({"apiVersion": rbac, "kind": "Role", "metadata": {"name": "reader", "namespace": "shop"},
            "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["get", "list", "watch"]}]}),
    );
    create(
        &server,
        json!({"apiVersion": rbac, "kind": "Role", "metadata": {"name": "reconcile-lock", "namespace": "default"},
            "rules": [
                {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["*"]},
                {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]}]}),
    );
    for (name, namespace, role) in [
        ("jane-reads", "shop", "reader"),
        ("jane-locks", "default", "reconcile-lock"),
    ] {
        create(
            &server,
            json!({"apiVersion": rbac, "kind": "RoleBinding",
                "metadata": {"name": name, "namespace": namespace},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "jane"}]}),
        );
    }
    let jane = serve_support::kubeconfig_for(server.dir.path(), "jane", JANE_TOKEN);
    let repo = Repo::new();
    repo.write(
        "app/kustomization.yaml",
        "namespace: shop\nresources:\n- web.yaml\n",
    );
    repo.write(
        "app/web.yaml",
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: web:1.0
",
    );
    let apply = server.run_as(&jane, &repo, &["apply", "app", "--target", CONTEXT]);
    assert_eq!(apply.code, 1, "{}", apply.all());
    assert!(
        apply.stderr.contains(
            "deployments.apps \"web\" is forbidden: User \"jane\" cannot patch resource \"deployments\" in API group \"apps\" in the namespace \"shop\""
        ) && apply.stderr.contains("nothing was applied"),
        "{}",
        apply.all()
    );
    assert!(read(&server, "apps", "Deployment", "shop", "web").is_none());
    assert!(!has_inventory(&server), "no inventory was written");
    let plan = server.run_as(
        &jane,
        &repo,
        &["plan", "app", "--target", CONTEXT, "--detailed-exitcode"],
    );
    assert_eq!(plan.code, 2, "{}", plan.all());
    assert!(
        plan.stdout.contains("Deployment shop/web"),
        "{}",
        plan.all()
    );
    // The admin of serve's kubeconfig is in system:masters: the same apply goes through.
    server.ok(&repo, &["apply", "app", "--target", CONTEXT], 0);
}

#[test]
fn throttling_and_server_errors_are_retried_with_backoff() {
    // The first three writes are answered 429, 503, 429.
    let server = Server::start_with(&[], &[("RECONCILE_TEST_API_FAULTS", "3")]);
    let repo = Repo::new();
    plan_support::web(&repo, "    type: RollingUpdate", "");
    let run = server.ok(&repo, &["apply", "app", "--target", CONTEXT], 0);
    assert!(
        run.stdout.contains("Deployment shop/web: created"),
        "{}",
        run.all()
    );
    assert!(read(&server, "apps", "Deployment", "shop", "web").is_some());
}

/// A TCP proxy on 127.0.0.1 to `target` that closes the first `drop_first` connections as
/// soon as they are accepted and relays the rest; serves a bounded number of connections.
/// Returns its port and the count of connections it dropped.
fn dropping_proxy(
    target: std::net::SocketAddr,
    drop_first: usize,
) -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::Ordering;
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    let port = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("{e}"))
        .port();
    let dropped = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = dropped.clone();
    std::thread::spawn(move || {
        for (index, client) in listener.incoming().take(200).enumerate() {
            let Ok(client) = client else { continue };
            if index < drop_first {
                counter.fetch_add(1, Ordering::SeqCst);
                drop(client);
                continue;
            }
            let Ok(upstream) = std::net::TcpStream::connect(target) else {
                continue;
            };
            let (Ok(mut client_read), Ok(mut upstream_write)) =
                (client.try_clone(), upstream.try_clone())
            else {
                continue;
            };
            let (mut client_write, mut upstream_read) = (client, upstream);
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut client_read, &mut upstream_write);
                let _ = upstream_write.shutdown(std::net::Shutdown::Write);
            });
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut upstream_read, &mut client_write);
                let _ = client_write.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    (port, dropped)
}

#[test]
fn dropped_connections_are_retried_with_backoff() {
    let server = Server::start_prepared(&[]);
    let admin = std::fs::read_to_string(server.kubeconfig()).unwrap_or_else(|e| panic!("{e}"));
    let address = admin
        .lines()
        .find_map(|l| l.trim().strip_prefix("server: https://"))
        .unwrap_or_else(|| panic!("no server in the kubeconfig"))
        .to_string();
    let target: std::net::SocketAddr = address.parse().unwrap_or_else(|e| panic!("{e}"));
    // The clock read, then discovery twice: each of the first three connections is dropped.
    let (port, dropped) = dropping_proxy(target, 3);
    let proxied = server.dir.path().join("kubeconfig-proxied");
    std::fs::write(
        &proxied,
        admin.replace(&address, &format!("127.0.0.1:{port}")),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let repo = Repo::new();
    plan_support::web(&repo, "    type: RollingUpdate", "");
    let started = std::time::Instant::now();
    let run = server.run_as(&proxied, &repo, &["apply", "app", "--target", CONTEXT]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stdout.contains("Deployment shop/web: created"),
        "{}",
        run.all()
    );
    assert_eq!(dropped.load(std::sync::atomic::Ordering::SeqCst), 3);
    // Backoff is bounded: 250 ms, then 500 ms.
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    assert!(read(&server, "apps", "Deployment", "shop", "web").is_some());
}

#[test]
fn a_second_apply_waits_for_the_lock_and_unlock_breaks_a_dead_holders() {
    let server = Server::start_prepared(&[]);
    let repo = Repo::new();
    plan_support::web(&repo, "    type: RollingUpdate", "");
    let mut first = server
        .command(&repo, &["apply", "app", "--target", CONTEXT])
        .env("RECONCILE_TEST_HOLD_LOCK_MS", "10000")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn: {e}"));
    let pid = first.id().to_string();
    let started = std::time::Instant::now();
    while read(
        &server,
        "coordination.k8s.io",
        "Lease",
        "default",
        "reconcile-lock",
    )
    .is_none()
    {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "the first apply never took the lock"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let second = server.ok(&repo, &["apply", "app", "--target", CONTEXT], 1);
    assert!(
        second
            .stderr
            .contains("target kube:reconcile-engine is locked by another reconcile process")
            && second.stderr.contains(&format!("pid {pid} ")),
        "{}",
        second.all()
    );
    // Killed while holding it: the Lease stays until it expires or is broken.
    let _ = first.kill();
    let _ = first.wait();
    server.ok(&repo, &["apply", "app", "--target", CONTEXT], 1);
    let wrong = server.ok(&repo, &["unlock", "1", "--target", CONTEXT], 1);
    assert!(wrong.stderr.contains("does not match"), "{}", wrong.all());
    let unlock = server.ok(&repo, &["unlock", &pid, "--target", CONTEXT], 0);
    assert!(
        unlock.stdout.contains(&format!("lock {pid} released")),
        "{}",
        unlock.all()
    );
    server.ok(&repo, &["apply", "app", "--target", CONTEXT], 0);
    assert!(
        read(
            &server,
            "coordination.k8s.io",
            "Lease",
            "default",
            "reconcile-lock"
        )
        .is_none()
    );
}

#[test]
fn a_crd_and_its_resources_apply_in_one_run() {
    let server = Server::start_prepared(&[]);
    let repo = Repo::new();
    repo.write(
        "app/kustomization.yaml",
        "resources:\n- crd.yaml\n- widget.yaml\n",
    );
    repo.write(
        "app/crd.yaml",
        "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  names: {kind: Widget, plural: widgets, singular: widget, listKind: WidgetList}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer}
",
    );
    repo.write(
        "app/widget.yaml",
        "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n  namespace: default\nspec:\n  size: 3\n",
    );
    let run = server.ok(&repo, &["apply", "app", "--target", CONTEXT], 0);
    assert!(
        run.stdout
            .contains("CustomResourceDefinition widgets.example.com: created")
            && run.stdout.contains("Widget default/w: created"),
        "{}",
        run.all()
    );
    let widget = read(&server, "example.com", "Widget", "default", "w")
        .unwrap_or_else(|| panic!("the Widget was not created"));
    assert_eq!(widget["spec"]["size"], 3, "{widget}");
    server.ok(
        &repo,
        &["plan", "app", "--target", CONTEXT, "--detailed-exitcode"],
        0,
    );
}

/// A Prometheus HTTP API on 127.0.0.1 answering every instant query with `value`; the queries
/// it was asked are kept. Serves a bounded number of requests.
struct FakePrometheus {
    address: String,
    queries: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl FakePrometheus {
    fn start(value: &str) -> FakePrometheus {
        use std::io::{BufRead, BufReader, Write};
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
        let address = format!(
            "http://{}",
            listener.local_addr().unwrap_or_else(|e| panic!("{e}"))
        );
        let queries = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = queries.clone();
        let body = format!(
            r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{}},"value":[1700000000,"{value}"]}}]}}}}"#
        );
        std::thread::spawn(move || {
            for stream in listener.incoming().take(500) {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(match stream.try_clone() {
                    Ok(s) => s,
                    Err(_) => continue,
                });
                let mut line = String::new();
                let _ = reader.read_line(&mut line);
                // The rest of the request head.
                let mut header = String::new();
                while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
                    header.clear();
                }
                if let Ok(mut queries) = seen.lock() {
                    queries.push(line.trim().to_string());
                }
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        FakePrometheus { address, queries }
    }

    fn queries(&self) -> Vec<String> {
        self.queries.lock().map(|q| q.clone()).unwrap_or_default()
    }
}

/// An analysis step reading `success-rate` from Prometheus at `address`.
fn prometheus_analysis(address: &str) -> String {
    format!(
        "{{metric: success-rate, threshold: 0.95, interval: 2s, count: 2, provider: {{prometheus: {{address: \"{address}\", query: 'sum(rate(http_requests_total{{namespace=\"{{{{namespace}}}}\",track=\"{{{{track}}}}\",code!~\"5..\"}}[{{{{window}}}}]))'}}}}}}"
    )
}

#[test]
fn a_canary_failing_its_prometheus_analysis_is_aborted() {
    let prometheus = FakePrometheus::start("0.5");
    let server = Server::start_prepared(&[]);
    let repo = Repo::new();
    let strategy = format!(
        "    type: Canary
    canary:
      steps:
      - setWeight: 50
      - analysis: {}",
        prometheus_analysis(&prometheus.address)
    );
    let apply = roll_out_2_0(&server, &repo, &strategy, "", 1);
    assert!(
        apply
            .stderr
            .contains("error: rollout of Deployment shop/web is Degraded"),
        "{}",
        apply.all()
    );
    let asked = prometheus.queries();
    assert!(
        asked.iter().any(|q| q.contains("namespace%3D%22shop%22")
            && q.contains("track%3D%22canary%22")
            && q.contains("%5B2s%5D")),
        "{asked:?}"
    );
    let stable =
        read(&server, "apps", "Deployment", "shop", "web").unwrap_or_else(|| panic!("web missing"));
    assert_eq!(
        stable["spec"]["template"]["spec"]["containers"][0]["image"], "web:1.0",
        "{stable}"
    );
    assert!(read(&server, "apps", "Deployment", "shop", "web-canary").is_none());
    let get = server.ok(
        &repo,
        &["rollout", "get", "web", "-n", "shop", "--target", CONTEXT],
        1,
    );
    assert!(
        get.stdout.contains("Degraded") && get.stdout.contains("0.5"),
        "{}",
        get.stdout
    );
}

#[test]
fn blue_green_on_kube_previews_analyses_and_switches_on_promote() {
    let prometheus = FakePrometheus::start("1");
    let server = Server::start_prepared(&[]);
    let repo = Repo::new();
    let strategy = format!(
        "    type: BlueGreen
    blueGreen:
      activeService: web
      previewService: web-preview
      autoPromotionEnabled: false
      scaleDownDelaySeconds: 30
      prePromotionAnalysis: {}",
        prometheus_analysis(&prometheus.address)
    );
    let preview = "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: web-preview\nspec:\n  selector:\n    app: web\n  ports:\n  - port: 80\n";
    let apply = roll_out_2_0(&server, &repo, &strategy, preview, 0);
    assert!(
        apply
            .stdout
            .contains("pre-promotion analysis passed (2 of 2 measurements passed)")
            && apply
                .stdout
                .contains("paused: preview ready; paused until `reconcile rollout promote`"),
        "{}",
        apply.stdout
    );
    assert!(
        prometheus
            .queries()
            .iter()
            .any(|q| q.contains("track%3D%22preview%22")),
        "{:?}",
        prometheus.queries()
    );
    let preview = read(&server, "", "Service", "shop", "web-preview").unwrap_or(Value::Null);
    assert_eq!(
        preview["spec"]["selector"]["reconcile.dev/track"], "preview",
        "{preview}"
    );
    let promote = server.ok(
        &repo,
        &[
            "rollout", "promote", "web", "-n", "shop", "--target", CONTEXT,
        ],
        0,
    );
    assert!(
        promote
            .stdout
            .contains("active Service web now selects the new version"),
        "{}",
        promote.stdout
    );
    // The scale-down delay (30 s) passes on the server's clock, 20 times as fast as this one.
    let done = server.ok(
        &repo,
        &[
            "rollout",
            "status",
            "web",
            "-n",
            "shop",
            "--target",
            CONTEXT,
            "--timeout",
            "5m",
        ],
        0,
    );
    assert!(
        done.stdout
            .contains("revision 2 is active; preview removed")
            && done.stdout.contains("Images:    web:2.0"),
        "{}",
        done.stdout
    );
    assert!(read(&server, "apps", "Deployment", "shop", "web-preview").is_none());
    let inventories = server.ok(&repo, &["inventory", "list", "--target", CONTEXT], 0);
    assert!(
        inventories.stdout.contains("app ") || inventories.stdout.contains("app  "),
        "{}",
        inventories.stdout
    );
    let status = server.ok(&repo, &["status", "--target", CONTEXT], 0);
    assert!(
        status.stdout.contains("kube:reconcile-engine"),
        "{}",
        status.stdout
    );
    server.ok(
        &repo,
        &["plan", "app", "--target", CONTEXT, "--detailed-exitcode"],
        0,
    );
}

/// Applies the web app (1.0) with `strategy` and `extra` objects, waits, then bumps it to 2.0
/// and applies again with `--wait`, expecting `code`.
fn roll_out_2_0(server: &Server, repo: &Repo, strategy: &str, extra: &str, code: i32) -> Run {
    plan_support::web(repo, strategy, extra);
    server.ok(repo, &["apply", "app", "--target", CONTEXT, "--wait"], 0);
    repo.edit(
        "app/kustomization.yaml",
        "newTag: \"1.0\"",
        "newTag: \"2.0\"",
    );
    server.ok(
        repo,
        &[
            "apply",
            "app",
            "--target",
            CONTEXT,
            "--wait",
            "--timeout",
            "5m",
        ],
        code,
    )
}

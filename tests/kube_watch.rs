//! `reconcile watch`, `sync`, `status` and `ui` on `--target kube:CONTEXT`, end to end: the
//! real binary against `reconcile engine serve` (virtual time 20× the wall clock), reached
//! with the kubeconfig serve writes, as it would reach any API server. Drift is made through
//! the API with the `kube` crate, as kubectl would. Every wait is bounded
//! (`watch_support::PATIENCE`); the server and every watcher are killed when a test ends.

mod serve_support;
use serve_support::Server;
mod watch_support;

use std::process::{Child, Command, Stdio};

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};
use watch_support::{GitRepo, Run, Watcher, Watching, run_in, web_app};

const TARGET: &str = "kube:reconcile-engine";
const ROLLING: &str = "    type: RollingUpdate";

impl Server {
    fn env(&self) -> [(String, String); 1] {
        [(
            "KUBECONFIG".to_string(),
            self.kubeconfig().display().to_string(),
        )]
    }

    /// `reconcile ARGS` in the repository with this server's kubeconfig.
    fn run(&self, repo: &GitRepo, args: &[&str]) -> Run {
        let env = self.env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        run_in(repo.path(), args, &env)
    }

    /// `reconcile watch --target kube:… ARGS` in the repository.
    fn watch(&self, repo: &GitRepo, args: &[&str]) -> Watcher {
        let env = self.env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let mut all = vec!["--target", TARGET];
        all.extend_from_slice(args);
        repo.watch_with_env(&all, &env)
    }

    /// The application's status as `reconcile status --target kube:…` reads it.
    fn status(&self, repo: &GitRepo, app: &str) -> Option<Value> {
        let run = self.run(repo, &["status", app, "--target", TARGET, "-o", "json"]);
        (run.code == 0)
            .then(|| serde_json::from_str(&run.stdout).ok())
            .flatten()
    }

    /// A kube client on this server and a runtime to drive it.
    fn deployments(&self, client: &kube::Client, namespace: &str) -> Api<DynamicObject> {
        let gvk = GroupVersionKind::gvk("apps", "v1", "Deployment");
        let resource = ApiResource::from_gvk_with_plural(&gvk, "deployments");
        Api::namespaced_with(client.clone(), namespace, &resource)
    }

    /// A Deployment read through the API (`None` when absent).
    fn deployment(&self, namespace: &str, name: &str) -> Option<Value> {
        let (runtime, client) = self.client();
        let api = self.deployments(&client, namespace);
        runtime
            .block_on(api.get_opt(name))
            .unwrap_or_else(|e| panic!("get deployment {name}: {e}"))
            .map(|o| serde_json::to_value(o).unwrap_or(Value::Null))
    }

    /// Scales a Deployment behind reconcile's back, as `kubectl scale` or an edit would.
    fn scale(&self, namespace: &str, name: &str, replicas: i64) {
        let (runtime, client) = self.client();
        let api = self.deployments(&client, namespace);
        let patch = json!({"spec": {"replicas": replicas}});
        runtime
            .block_on(api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)))
            .unwrap_or_else(|e| panic!("scaling {name}: {e}"));
    }
}

fn field<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn image(deployment: &Option<Value>) -> String {
    deployment
        .as_ref()
        .map(|d| field(d, "/spec/template/spec/containers/0/image").to_string())
        .unwrap_or_default()
}

/// Synced and Healthy at `sha`, as recorded in the cluster.
fn converged(server: &Server, repo: &GitRepo, sha: &str) -> bool {
    server.status(repo, "web").is_some_and(|s| {
        field(&s, "/sync") == "Synced"
            && field(&s, "/health") == "Healthy"
            && field(&s, "/revision/sha") == sha
    })
}

fn app(repo: &GitRepo, strategy: &str, image: &str) {
    web_app(repo, "app", image, 2, strategy);
    repo.write(
        "reconcile.yaml",
        "applications:\n- name: web\n  path: app\n",
    );
}

#[test]
fn watch_on_kube_syncs_commits_heals_drift_and_answers_sync_and_status() {
    let server = Server::start();
    let repo = GitRepo::new();
    app(&repo, ROLLING, "web:1.0");
    let first = repo.commit("web 1.0");
    let mut watcher = server.watch(&repo, &["--interval", "300ms"]);
    watcher.wait_for("the first sync", |l| l.contains("web: sync succeeded"));
    watcher.wait_until("Synced and Healthy at the first commit", || {
        converged(&server, &repo, &first)
    });
    assert_eq!(watcher.http("GET", "/healthz", &[], "").0, 200);
    assert_eq!(watcher.http("GET", "/readyz", &[], "").0, 200);
    let (code, metrics) = watcher.http("GET", "/metrics", &[], "");
    assert_eq!(code, 200);
    assert!(
        metrics.contains("reconcile_sync_total{app=\"web\",result=\"Succeeded\"}"),
        "{metrics}"
    );
    let (code, apps) = watcher.http("GET", "/api/v1/apps/web", &[], "");
    assert_eq!(code, 200, "{apps}");
    assert!(apps.contains(&format!("\"target\":\"{TARGET}\"")), "{apps}");

    // A second watcher on the same cluster is refused, naming the first (its Lease).
    second_watcher_is_refused(&server, &repo, &watcher);

    // A new commit is synced within an interval or two.
    repo.edit("app/web.yaml", "web:1.0", "web:2.0");
    let bump = repo.commit("web 2.0");
    watcher.wait_until("the bump Synced and Healthy", || {
        converged(&server, &repo, &bump)
    });
    assert_eq!(image(&server.deployment("demo", "web")), "web:2.0");

    // Scaled through the API behind its back: the watch sees it and self-heal reverts it,
    // long before the periodic resync.
    let mark = watcher.mark();
    server.scale("demo", "web", 5);
    watcher.wait_after(mark, "self-heal", |l| {
        l.contains("web: sync succeeded: self-heal")
    });
    let healed = server.deployment("demo", "web");
    assert_eq!(
        healed.as_ref().and_then(|d| d.pointer("/spec/replicas")),
        Some(&Value::from(2)),
        "{healed:?}"
    );

    // `reconcile sync` finds the watcher through its Lease; `status` reads the history.
    let mark = watcher.mark();
    let sync = server.run(&repo, &["sync", "web", "--target", TARGET]);
    assert_eq!(sync.code, 0, "{}", sync.all());
    assert!(
        sync.stdout.contains("Sync of web requested"),
        "{}",
        sync.stdout
    );
    watcher.wait_after(mark, "the request", |l| l.contains("web: sync requested"));
    let status = server.run(&repo, &["status", "web", "--target", TARGET]);
    assert_eq!(status.code, 0, "{}", status.all());
    assert!(
        status.stdout.contains(&format!("Target:      {TARGET}"))
            && status
                .stdout
                .contains("self-heal: 1 object(s) drifted: 0 created, 1 updated"),
        "{}",
        status.stdout
    );

    // SIGTERM: exit 0; the Lease goes with it, so `sync` says no watcher runs.
    let (code, _) = watcher.stop();
    assert_eq!(code, Some(0));
    let sync = server.run(&repo, &["sync", "web", "--target", TARGET]);
    assert_eq!(sync.code, 1, "{}", sync.all());
    assert!(
        sync.stderr
            .contains("no watcher runs on target kube:reconcile-engine"),
        "{}",
        sync.stderr
    );
    let table = server.run(&repo, &["status", "--target", TARGET]);
    assert!(
        table.stdout.contains("web") && table.stdout.contains("Synced"),
        "{}",
        table.stdout
    );
}

#[test]
fn an_application_whose_target_is_kube_is_synced_there_by_an_engine_watcher() {
    let server = Server::start();
    let repo = GitRepo::new();
    web_app(&repo, "app", "web:1.0", 2, ROLLING);
    repo.write(
        "reconcile.yaml",
        &format!("applications:\n- name: web\n  path: app\n  target: {TARGET}\n"),
    );
    let first = repo.commit("web 1.0");
    let env = server.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    // No --target: the watcher's own target is the repository's engine state.
    let mut watcher = repo.watch_with_env(&["--interval", "300ms"], &env);
    watcher.wait_for("the application's own target", |l| {
        l.contains(&format!("web: on its own target {TARGET}"))
    });
    watcher.wait_until("Synced and Healthy on the cluster", || {
        converged(&server, &repo, &first)
    });
    assert_eq!(image(&server.deployment("demo", "web")), "web:1.0");
    // The watcher holds that cluster's watcher Lease too.
    second_watcher_is_refused(&server, &repo, &watcher);
}

/// The CSRF token a page embeds.
fn csrf(page: &str) -> String {
    page.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no CSRF token in the page:\n{page}"))
        .to_string()
}

/// `reconcile ui` on the server's cluster, and the address it listens on.
fn ui(server: &Server, repo: &GitRepo) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_reconcile"))
        .args(["ui", "--target", TARGET, "--listen", "127.0.0.1:0"])
        .current_dir(repo.path())
        .env("KUBECONFIG", server.kubeconfig())
        .env("HOME", repo.path())
        .env_remove("RECONCILE_TARGET")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting ui: {e}"));
    let mut first = String::new();
    if let Some(out) = child.stdout.take() {
        use std::io::BufRead;
        let _ = std::io::BufReader::new(out).read_line(&mut first);
    }
    let Some(addr) = first
        .rsplit("http://")
        .next()
        .map(|a| a.trim().trim_end_matches('/').to_string())
        .filter(|a| first.contains("http://") && !a.is_empty())
    else {
        let _ = child.kill();
        let output = child.wait_with_output();
        panic!("ui did not start: {first} {output:?}");
    };
    (child, addr)
}

#[test]
fn the_ui_on_kube_shows_the_pending_diff_and_syncs_it() {
    let server = Server::start();
    let repo = GitRepo::new();
    app(&repo, ROLLING, "web:1.0");
    let first = repo.commit("web 1.0");
    // A watcher records the application's status once, then stops.
    let watcher = server.watch(&repo, &["--interval", "300ms"]);
    watcher.wait_until("Synced and Healthy", || converged(&server, &repo, &first));
    assert_eq!(watcher.stop().0, Some(0));
    repo.edit("app/web.yaml", "web:1.0", "web:2.0");
    let bump = repo.commit("web 2.0");

    let (mut child, addr) = ui(&server, &repo);
    let get = |path: &str| watch_support::http(&addr, "GET", path, &[], "");
    let (code, apps) = get("/");
    assert_eq!(code, 200, "{apps}");
    assert!(apps.contains("web") && apps.contains(TARGET), "{apps}");
    let (code, page) = get("/apps/web");
    assert_eq!(code, 200, "{page}");
    assert!(
        page.contains("web:1.0") && page.contains("web:2.0"),
        "the pending diff names both images:\n{page}"
    );
    assert_eq!(get("/rollouts/demo/web").0, 200);
    assert_eq!(get("/cluster").0, 200);

    let token = csrf(&page);
    let (code, answer) = watch_support::http(
        &addr,
        "POST",
        "/apps/web/sync",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        &format!("csrf={token}"),
    );
    assert_eq!(code, 303, "{answer}");
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(image(&server.deployment("demo", "web")), "web:2.0");
    let status = server
        .status(&repo, "web")
        .unwrap_or_else(|| panic!("no status"));
    assert_eq!(field(&status, "/revision/sha"), bump);
    assert!(
        field(&status, "/history/0/message")
            .starts_with("synced from the UI: 0 created, 1 updated"),
        "{status}"
    );
}

const CANARY: &str = "    type: Canary
    canary:
      steps:
      - setWeight: 50
      - pause: {duration: 20s}
      - setWeight: 100
      - pause: {duration: 10s}";

/// The rollout state the driver keeps on a Deployment.
fn rollout_phase(deployment: &Option<Value>) -> String {
    deployment
        .as_ref()
        .and_then(|d| d.pointer("/metadata/annotations/reconcile.dev~1rollout"))
        .and_then(Value::as_str)
        .and_then(|text| serde_json::from_str::<Value>(text).ok())
        .map(|state| field(&state, "/phase").to_string())
        .unwrap_or_default()
}

#[test]
fn a_canary_on_kube_is_stepped_by_the_watcher_alone() {
    let server = Server::start();
    let repo = GitRepo::new();
    app(&repo, CANARY, "web:1.0");
    let first = repo.commit("web 1.0");
    let mut watcher = server.watch(&repo, &["--interval", "300ms"]);
    watcher.wait_until("Synced and Healthy", || converged(&server, &repo, &first));

    // The watcher's own sync starts the canary; its pauses pass on the server's clock and
    // the watcher steps it to the end with no other command.
    repo.edit("app/web.yaml", "web:1.0", "web:2.0");
    let bump = repo.commit("web 2.0");
    watcher.wait_for("the canary's first step", |l| {
        l.contains("web: Deployment demo/web:") && l.contains("50")
    });
    watcher.wait_until("the canary finished on 2.0", || {
        let live = server.deployment("demo", "web");
        image(&live) == "web:2.0" && rollout_phase(&live) == "Healthy"
    });
    watcher.wait_until("Synced and Healthy at the bump", || {
        converged(&server, &repo, &bump)
    });
    assert!(server.deployment("demo", "web-canary").is_none());

    // A canary another process starts (`apply` without --wait) is found through the
    // watch and stepped the same way.
    repo.write(
        "other/kustomization.yaml",
        "namespace: other\nresources:\n- web.yaml\n",
    );
    let manifests = repo.read("app/web.yaml").replace("web:2.0", "web:1.0");
    repo.write(
        "other/web.yaml",
        &format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: other\n---\n{manifests}"),
    );
    let apply = server.run(&repo, &["apply", "other", "--target", TARGET, "--wait"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    repo.edit("other/web.yaml", "web:1.0", "web:3.0");
    let apply = server.run(&repo, &["apply", "other", "--target", TARGET]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    watcher.wait_until("the other canary finished on 3.0", || {
        let live = server.deployment("other", "web");
        image(&live) == "web:3.0" && rollout_phase(&live) == "Healthy"
    });
    let history = server.run(
        &repo,
        &[
            "rollout", "history", "web", "-n", "other", "--target", TARGET,
        ],
    );
    assert_eq!(history.code, 0, "{}", history.all());
    assert!(history.stdout.contains("web:3.0"), "{}", history.stdout);
}

/// A second watcher on the cluster is refused, naming the running one (the Lease holder).
fn second_watcher_is_refused(server: &Server, repo: &GitRepo, watcher: &Watcher) {
    let second = server.run(
        repo,
        &["watch", "--target", TARGET, "--listen", "127.0.0.1:0"],
    );
    assert_eq!(second.code, 1, "{}", second.all());
    assert!(
        second.stderr.contains(&format!(
            "already watched by reconcile watch (pid {}",
            watcher.pid()
        )),
        "{}",
        second.stderr
    );
}

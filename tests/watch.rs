//! `reconcile watch` end to end: the real binary on real git repositories in temp dirs, on the
//! built-in engine. Every wait is bounded (`watch_support::PATIENCE`) and every watcher is
//! stopped or killed when its test ends.

// Both support modules build on `repo_support`; this file needs git_support's HTTP server too.
#[allow(clippy::duplicate_mod)]
mod git_support;
mod watch_support;

use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::Sha256;
use watch_support::{GitRepo, Watching, run_in, web_app};

const ROLLING: &str = "    type: RollingUpdate";

fn config(repo: &GitRepo, policy: &str) {
    repo.write(
        "reconcile.yaml",
        &format!("applications:\n- name: web\n  path: app\n{policy}"),
    );
}

fn deployment(repo: &GitRepo) -> Value {
    let (code, out, err) = repo
        .run(&["engine", "get", "deploy", "web", "-n", "demo", "-o", "json"])
        .parts();
    assert_eq!(code, 0, "{out}{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn image(repo: &GitRepo) -> String {
    deployment(repo)
        .pointer("/spec/template/spec/containers/0/image")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn field<'a>(status: &'a Value, pointer: &str) -> &'a str {
    status
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// Synced and Healthy at `sha`.
fn converged(repo: &GitRepo, sha: &str) -> bool {
    let Some(status) = repo.try_status("web") else {
        return false;
    };
    field(&status, "/sync") == "Synced"
        && field(&status, "/health") == "Healthy"
        && field(&status, "/revision/sha") == sha
}

#[test]
fn commits_are_synced_broken_revisions_held_back_drift_healed_and_status_outlives_the_watcher() {
    let repo = GitRepo::new();
    web_app(&repo, "app", "web:1.0", 2, ROLLING);
    config(&repo, "");
    let first = repo.commit("web 1.0");
    let mut watcher = repo.watch(&["--interval", "300ms", "--speed", "20"]);
    watcher.wait_for("first sync", |l| l.contains("web: Healthy"));
    watcher.wait_until("Synced and Healthy at the first commit", || {
        converged(&repo, &first)
    });
    assert_eq!(watcher.http("GET", "/readyz", &[], "").0, 200);
    assert_eq!(watcher.http("GET", "/healthz", &[], "").0, 200);

    // A second watcher on the same target is refused, naming the first.
    let (code, out, err) = repo.run(&["watch", "--listen", "127.0.0.1:0"]).parts();
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains(&format!(
            "already watched by reconcile watch (pid {}",
            watcher.pid()
        )),
        "{err}"
    );

    // An image bump is synced and rolled out within an interval or two.
    repo.write(
        "app/web.yaml",
        &std::fs::read_to_string(repo.path().join("app/web.yaml"))
            .unwrap_or_default()
            .replace("web:1.0", "web:2.0"),
    );
    let bump = repo.commit("web 2.0");
    watcher.wait_until("the bump Synced and Healthy", || converged(&repo, &bump));
    assert_eq!(image(&repo), "web:2.0");

    // Broken YAML: never applied; the error names the file and line; the cluster stays.
    repo.write(
        "app/web.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n spec: [\n",
    );
    let broken = repo.commit("broken");
    watcher.wait_until("the broken revision reported", || {
        let status = repo.try_status("web").unwrap_or_default();
        field(&status, "/revision/sha") == broken && !field(&status, "/lastError").is_empty()
    });
    let status = repo.status("web");
    let error = field(&status, "/lastError");
    assert!(error.contains("app/web.yaml"), "{error}");
    assert!(error.contains("line"), "{error}");
    assert_eq!(field(&status, "/sync"), "Unknown");
    assert_eq!(image(&repo), "web:2.0", "a broken revision changes nothing");

    // A fix is synced and clears the error.
    web_app(&repo, "app", "web:3.0", 2, ROLLING);
    let fixed = repo.commit("web 3.0");
    watcher.wait_until("the fix Synced and Healthy", || converged(&repo, &fixed));
    assert_eq!(image(&repo), "web:3.0");
    assert!(repo.status("web").get("lastError").is_none());

    // Scaled behind its back with `reconcile engine`: healed without a commit.
    let mut drifted = deployment(&repo);
    drifted["spec"]["replicas"] = Value::from(5);
    repo.write(".reconcile/drift.json", &drifted.to_string());
    let mark = watcher.mark();
    let (code, out, err) = repo
        .run(&["engine", "apply", "-f", ".reconcile/drift.json"])
        .parts();
    assert_eq!(code, 0, "{out}{err}");
    watcher.wait_after(mark, "self-heal", |l| {
        l.contains("web: sync succeeded: self-heal")
    });
    assert_eq!(
        deployment(&repo).pointer("/spec/replicas"),
        Some(&Value::from(2))
    );

    // The API and the metrics.
    let (code, body) = watcher.http("GET", "/api/v1/apps", &[], "");
    assert_eq!(code, 200);
    let apps: Value = serde_json::from_str(&body).unwrap_or_default();
    assert_eq!(apps.pointer("/0/name").and_then(Value::as_str), Some("web"));
    let (code, text) = watcher.http("GET", "/metrics", &[], "");
    assert_eq!(code, 200);
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).unwrap_or_else(|e| panic!("{e}: {text}"));
    let value = |name: &str, labels: &[(&str, &str)]| -> Option<f64> {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => f64::NAN,
            })
    };
    let syncs = value(
        "reconcile_sync_total",
        &[("app", "web"), ("result", "Succeeded")],
    );
    assert!(syncs.is_some_and(|v| v >= 4.0), "{syncs:?}\n{text}");
    assert_eq!(value("reconcile_app_synced", &[("app", "web")]), Some(1.0));
    assert_eq!(
        value(
            "reconcile_app_health",
            &[("app", "web"), ("health", "Healthy")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value("reconcile_drift_objects", &[("app", "web")]),
        Some(0.0)
    );
    assert!(value("reconcile_git_fetch_total", &[("result", "ok")]).is_some_and(|v| v >= 1.0));
    assert!(
        value("reconcile_last_sync_timestamp_seconds", &[("app", "web")])
            .is_some_and(|v| v > 1.7e9)
    );
    assert!(
        scrape
            .samples
            .iter()
            .any(|s| s.metric.starts_with("reconcile_sync_duration_seconds"))
    );

    // `reconcile sync` reaches the watcher; an unknown application is an error.
    let mark = watcher.mark();
    let (code, out, err) = repo.run(&["sync", "web"]).parts();
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Sync of web requested"), "{out}");
    watcher.wait_after(mark, "the request", |l| l.contains("web: sync requested"));
    let (code, _, err) = repo.run(&["sync", "nope"]).parts();
    assert_eq!(code, 1);
    assert!(err.contains("no application \"nope\""), "{err}");

    // SIGTERM: exit 0 promptly; the status stays readable from the target.
    let (code, took) = watcher.stop();
    assert_eq!(code, Some(0));
    assert!(took < Duration::from_secs(10), "{took:?}");
    let status = repo.status("web");
    assert_eq!(field(&status, "/sync"), "Synced");
    let history = status
        .get("history")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    assert!(history.len() >= 4 && history.len() <= 10, "{history:?}");
    assert_eq!(field(&history[0], "/result"), "Succeeded");
    let (code, out, _) = repo.run(&["status"]).parts();
    assert_eq!(code, 0);
    assert!(out.starts_with("APP"), "{out}");
    assert!(
        out.contains("web") && out.contains("Synced") && out.contains("Healthy"),
        "{out}"
    );
    let (code, _, err) = repo.run(&["sync", "web"]).parts();
    assert_eq!(code, 1);
    assert!(err.contains("no watcher runs on target"), "{err}");
}

fn sign(secret: &str, body: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    mac.update(body.as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[test]
fn a_signed_push_webhook_syncs_at_once_and_an_unsigned_one_is_refused() {
    let repo = GitRepo::new();
    web_app(&repo, "app", "web:1.0", 1, ROLLING);
    config(&repo, "");
    let first = repo.commit("web 1.0");
    let secret = "hook-s3cret-value";
    let watcher = repo.watch_with_env(
        &[
            "--interval",
            "1h",
            "--speed",
            "20",
            "--webhook-secret-env",
            "HOOK_SECRET",
        ],
        &[("HOOK_SECRET", secret)],
    );
    watcher.wait_until("the first sync", || converged(&repo, &first));
    web_app(&repo, "app", "web:2.0", 1, ROLLING);
    let bump = repo.commit("web 2.0");
    let body = format!(
        r#"{{"ref":"refs/heads/main","after":"{bump}","repository":{{"full_name":"o/r"}}}}"#
    );
    let (code, _) = watcher.http(
        "POST",
        "/hooks/git",
        &[
            ("X-GitHub-Event", "push"),
            ("X-Hub-Signature-256", "sha256=0000"),
        ],
        &body,
    );
    assert_eq!(code, 401);
    let (code, _) = watcher.http("POST", "/hooks/git", &[("X-GitHub-Event", "push")], &body);
    assert_eq!(code, 401);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        field(&repo.status("web"), "/revision/sha"),
        first,
        "refused hooks change nothing"
    );
    let started = Instant::now();
    let (code, reply) = watcher.http(
        "POST",
        "/hooks/git",
        &[
            ("X-GitHub-Event", "push"),
            ("X-Hub-Signature-256", &sign(secret, &body)),
        ],
        &body,
    );
    assert_eq!(code, 202, "{reply}");
    watcher.wait_until("the pushed commit Synced and Healthy", || {
        converged(&repo, &bump)
    });
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(image(&repo), "web:2.0");
    let log = watcher.log().join("\n");
    let (code, _) = watcher.stop();
    assert_eq!(code, Some(0));
    assert!(
        !log.contains(secret),
        "the secret leaked into the log:\n{log}"
    );
}

#[test]
fn a_canary_progresses_through_its_timed_pauses_with_no_other_command() {
    let repo = GitRepo::new();
    let canary = "    type: Canary\n    canary:\n      steps:\n      - setWeight: 25\n      - pause: {duration: 20s}\n      - setWeight: 50\n      - pause: {duration: 20s}";
    web_app(&repo, "app", "web:1.0", 4, canary);
    config(&repo, "");
    let first = repo.commit("web 1.0");
    let mut watcher = repo.watch(&["--interval", "300ms", "--speed", "20"]);
    watcher.wait_until("the first sync", || converged(&repo, &first));
    web_app(&repo, "app", "web:2.0", 4, canary);
    let bump = repo.commit("web 2.0");
    let mark = watcher.mark();
    // The engine's controller loop steps the canary (its pauses need 40 s of cluster time,
    // which only the watcher's clock provides); the stable track takes 2.0 only at the end.
    watcher.wait_after(mark, "the rollout", |l| l.contains("web: Progressing"));
    watcher.wait_until("the canary promoted", || {
        converged(&repo, &bump) && image(&repo) == "web:2.0"
    });
    let (code, out, _) = repo.run(&["engine", "get", "deploy", "-n", "demo"]).parts();
    assert_eq!(code, 0);
    assert!(
        !out.contains("web-canary"),
        "the canary track is gone:\n{out}"
    );
    let (code, _) = watcher.stop();
    assert_eq!(code, Some(0));
}

#[test]
fn sigterm_during_a_cold_start_leaves_a_consistent_target_that_the_next_start_converges() {
    let repo = GitRepo::new();
    for n in 0..40 {
        repo.write(
            &format!("apps/a{n}/kustomization.yaml"),
            &format!("namespace: n{n}\nresources:\n- all.yaml\n"),
        );
        repo.write(
            &format!("apps/a{n}/all.yaml"),
            &format!(
                "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: n{n}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  n: \"{n}\"\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\nspec:\n  replicas: 2\n  selector:\n    matchLabels: {{app: d}}\n  template:\n    metadata:\n      labels: {{app: d}}\n    spec:\n      containers:\n      - name: d\n        image: d:1\n"
            ),
        );
    }
    repo.commit("40 apps");
    let mut watcher = repo.watch(&["--interval", "1s", "--speed", "20"]);
    watcher.wait_for("the revision", |l| l.contains("revision "));
    let (code, took) = watcher.stop();
    assert_eq!(code, Some(0));
    assert!(took < Duration::from_secs(10), "{took:?}");

    let watcher = repo.watch(&["--interval", "1s", "--speed", "20"]);
    watcher.wait_until("40 applications Synced and Healthy", || {
        let (_, body) = watcher_apps(&watcher);
        let apps: Vec<Value> = serde_json::from_str(&body).unwrap_or_default();
        apps.len() == 40
            && apps
                .iter()
                .all(|a| field(a, "/sync") == "Synced" && field(a, "/health") == "Healthy")
    });
    let (_, body) = watcher_apps(&watcher);
    let apps: Vec<Value> = serde_json::from_str(&body).unwrap_or_default();
    for app in &apps {
        let history = app
            .get("history")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        assert!(
            history.iter().all(|h| field(h, "/result") == "Succeeded"),
            "{app}"
        );
    }
    let (code, _) = watcher.stop();
    assert_eq!(code, Some(0));
}

fn watcher_apps(watcher: &watch_support::Watcher) -> (u16, String) {
    watcher.http("GET", "/api/v1/apps", &[], "")
}

#[test]
fn a_remote_url_is_fetched_every_interval_with_its_credentials_never_shown() {
    let repo = GitRepo::new();
    web_app(&repo, "app", "web:1.0", 1, ROLLING);
    config(&repo, "");
    let first = repo.commit("web 1.0");
    let holder = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let bare = repo.bare_clone(&holder.path().join("app.git"));
    let password = "w4tch-S3cret";
    let Some(server) = git_support::HttpServer::start(holder.path(), "alice", password) else {
        eprintln!("skipped: `git http-backend` is not available");
        return;
    };
    let url = format!("http://alice:{password}@127.0.0.1:{}/app.git", server.port);
    let cache = holder.path().join("cache");
    let cache = cache.to_str().unwrap_or_default();
    // A wrong password stops the start with a clear error, and no password shown.
    let (code, out, err) = run_in(
        repo.path(),
        &[
            "watch",
            "--listen",
            "127.0.0.1:0",
            "--repo",
            &url.replace(password, "wrong-Pa55"),
        ],
        &[("RECONCILE_GIT_CACHE", cache)],
    )
    .parts();
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("http://***@127.0.0.1"), "{err}");
    assert!(!format!("{out}{err}").contains("wrong-Pa55"), "{err}");

    let watcher = repo.watch_with_env(
        &[
            "--repo",
            &url,
            "--ref",
            "main",
            "--interval",
            "300ms",
            "--speed",
            "20",
        ],
        &[("RECONCILE_GIT_CACHE", cache)],
    );
    watcher.wait_until("Synced and Healthy at the first commit", || {
        converged(&repo, &first)
    });
    // A commit reaches the remote: the next poll fetches and syncs it.
    web_app(&repo, "app", "web:2.0", 1, ROLLING);
    let bump = repo.commit("web 2.0");
    repo.push_to(&bare);
    watcher.wait_until("the pushed bump Synced and Healthy", || {
        converged(&repo, &bump)
    });
    assert_eq!(image(&repo), "web:2.0");
    let status = repo.status("web");
    assert_eq!(
        field(&status, "/revision/repo"),
        format!("http://***@127.0.0.1:{}/app.git", server.port)
    );
    let (_, apps) = watcher.http("GET", "/api/v1/apps", &[], "");
    let (_, metrics) = watcher.http("GET", "/metrics", &[], "");
    assert!(
        metrics.contains(&format!(
            "reconcile_git_fetch_total{{repo=\"http://127.0.0.1:{}/app.git\",result=\"ok\"}}",
            server.port
        )),
        "{metrics}"
    );
    let (code, _) = watcher.stop();
    assert_eq!(code, Some(0));
    for text in [apps, metrics, status.to_string()] {
        assert!(
            !text.contains(password) && !text.contains("alice:"),
            "{text}"
        );
    }
}

#[test]
fn an_application_with_its_own_target_is_applied_there() {
    let repo = GitRepo::new();
    web_app(&repo, "app", "web:1.0", 1, ROLLING);
    web_app(&repo, "edge", "web:9.0", 1, ROLLING);
    repo.write(
        "reconcile.yaml",
        "applications:\n- name: web\n  path: app\n- name: edge\n  path: edge\n  target: engine:.reconcile/edge.db\n- name: odd\n  path: app\n  target: kube:nowhere\n",
    );
    let first = repo.commit("two targets");
    let watcher = repo.watch(&["--interval", "300ms", "--speed", "20"]);
    watcher.wait_until("web Synced and Healthy", || converged(&repo, &first));
    let edge_target = "engine:.reconcile/edge.db";
    let edge_status = || {
        let (code, out, _) = repo
            .run(&["status", "edge", "--target", edge_target, "-o", "json"])
            .parts();
        (code == 0)
            .then(|| serde_json::from_str::<Value>(&out).ok())
            .flatten()
            .unwrap_or_default()
    };
    watcher.wait_until("edge Synced and Healthy on its own target", || {
        let status = edge_status();
        field(&status, "/sync") == "Synced" && field(&status, "/health") == "Healthy"
    });
    assert!(field(&edge_status(), "/target").ends_with(".reconcile/edge.db"));
    // Each engine holds its own application only.
    assert_eq!(image(&repo), "web:1.0");
    let (code, out, err) = repo
        .run(&[
            "engine",
            "get",
            "deploy",
            "web",
            "-n",
            "demo",
            "-o",
            "json",
            "--target",
            edge_target,
        ])
        .parts();
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("web:9.0"), "{out}");
    let (code, _, _) = repo.run(&["status", "edge", "-o", "json"]).parts();
    assert_eq!(code, 1, "edge's status is not in the default target");
    // A target that cannot be used is the application's error, not the watcher's.
    watcher.wait_until("odd's target refused in its status", || {
        repo.try_status("odd")
            .is_some_and(|s| field(&s, "/lastError").contains("context \"nowhere\""))
    });
    // The watcher holds the application's target too: a second watcher on it is refused.
    let (code, out, err) = repo
        .run(&["watch", "--listen", "127.0.0.1:0", "--target", edge_target])
        .parts();
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("already watched"), "{err}");
    let (code, _) = watcher.stop();
    assert_eq!(code, Some(0));
}

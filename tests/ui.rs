//! The web UI over HTTP: every page and action, driven in-process through its router on a
//! target the real binary applied to (a git repository in a temp dir), plus `reconcile ui`
//! and `reconcile watch` serving it on a socket. Checks status codes, content, Secret
//! masking, CSRF refusal, token refusal and the security headers.

mod watch_support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, RwLock};

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use reconcile::controller::decide::SyncStatus;
use reconcile::controller::http::{Command, Shared};
use reconcile::controller::metrics::Metrics;
use reconcile::controller::status::{self, AppStatus, Revision, SyncRecord};
use reconcile::engine::Engine;
use reconcile::plan::PlanSet;
use reconcile::rollout::health::Status as Health;
use reconcile::ui::{self, Ui};
use tower::ServiceExt;
use watch_support::{GitRepo, Watching, web_app};

const SECRET_VALUE: &str = "hunter2-topsecret";
const ROLLING: &str = "    type: RollingUpdate";
const CANARY_PAUSED: &str = "    type: Canary\n    canary:\n      steps:\n      - setWeight: 25\n      - analysis: {metric: success-rate, threshold: 0.95, interval: 5s, count: 2}\n      - setWeight: 50\n      - pause: {}";

/// The `web` application (Namespace, Service, Deployment of `image`, a Secret) in `app/`.
fn write_app(repo: &GitRepo, image: &str, strategy: &str, secret: &str) {
    web_app(repo, "app", image, 2, strategy);
    repo.write(
        "app/kustomization.yaml",
        "namespace: demo\nresources:\n- namespace.yaml\n- web.yaml\n- secret.yaml\n",
    );
    repo.write(
        "app/secret.yaml",
        &format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\nstringData:\n  password: {secret}\n"
        ),
    );
    repo.write(
        "reconcile.yaml",
        "applications:\n- name: web\n  path: app\n",
    );
}

fn apply(repo: &GitRepo) {
    let (code, out, err) = repo.run(&["apply", "web", "--wait"]).parts();
    assert_eq!(code, 0, "apply: {out}{err}");
}

fn state(repo: &GitRepo) -> PathBuf {
    repo.path().join(".reconcile").join("engine.db")
}

/// Statuses as a watcher records them: `web` (from the repository at HEAD) OutOfSync and
/// Degraded with an error, `api` (from a remote whose URL carries a credential) Synced and
/// Healthy.
fn record_statuses(repo: &GitRepo) {
    let mut engine = Engine::open_existing(&state(repo)).unwrap_or_else(|e| panic!("{e}"));
    let web = AppStatus {
        name: "web".into(),
        path: "app".into(),
        target: "engine".into(),
        revision: Revision {
            repo: repo.path().display().to_string(),
            reference: Some("HEAD".into()),
            sha: Some("0123456789abcdef01".into()),
            digest: None,
        },
        sync: SyncStatus::OutOfSync,
        health: Some(Health::Degraded),
        last_error: Some("app/web.yaml: Deployment demo/web: spec.replicas: not a number".into()),
        history: vec![SyncRecord {
            revision: "89abcdef0123456789".into(),
            started_at: "2026-12-05T01:00:00Z".into(),
            duration_ms: 1234,
            result: "Failed".into(),
            message: "apply failed".into(),
        }],
        ..AppStatus::default()
    };
    let api = AppStatus {
        name: "api".into(),
        path: "api".into(),
        revision: Revision {
            repo: "https://deploy:ghp_credential@git.example.com/org/repo.git".into(),
            reference: Some("main".into()),
            sha: Some("89abcdef0123456789".into()),
            digest: None,
        },
        sync: SyncStatus::Synced,
        health: Some(Health::Healthy),
        ..AppStatus::default()
    };
    for s in [&web, &api] {
        status::save(&mut engine, s).unwrap_or_else(|e| panic!("saving a status: {e}"));
    }
}

fn open_ui(repo: &GitRepo, watcher: Option<Arc<Shared>>, token: Option<&str>) -> Arc<Ui> {
    let engine = Engine::open_existing(&state(repo)).unwrap_or_else(|e| panic!("{e}"));
    Ui::new(engine, watcher, token.map(str::to_string)).unwrap_or_else(|e| panic!("{e}"))
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

async fn call(ui: &Arc<Ui>, request: Request<Body>) -> Answer {
    let Ok(response) = ui::router(ui.clone()).oneshot(request).await;
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), 4 << 20)
        .await
        .unwrap_or_default();
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

async fn get(ui: &Arc<Ui>, uri: &str) -> Answer {
    call(
        ui,
        Request::get(uri).body(Body::empty()).unwrap_or_default(),
    )
    .await
}

async fn post(ui: &Arc<Ui>, uri: &str, form: &str) -> Answer {
    call(
        ui,
        Request::post(uri)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(form.to_string()))
            .unwrap_or_default(),
    )
    .await
}

fn location(answer: &Answer) -> String {
    answer
        .headers
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

fn watcher_shared() -> (Arc<Shared>, tokio::sync::mpsc::UnboundedReceiver<Command>) {
    let (commands, receiver) = tokio::sync::mpsc::unbounded_channel();
    let shared = Shared {
        apps: RwLock::new(Vec::new()),
        ready: AtomicBool::new(true),
        metrics: Metrics::new(),
        commands,
        webhook_secret: None,
        reference: None,
        plans: RwLock::new(BTreeMap::new()),
    };
    (Arc::new(shared), receiver)
}

#[tokio::test]
async fn applications_page_counts_filters_and_headers() {
    let repo = GitRepo::new();
    write_app(&repo, "web:1.0", ROLLING, SECRET_VALUE);
    apply(&repo);
    record_statuses(&repo);
    let ui = open_ui(&repo, None, None);

    let page = get(&ui, "/").await;
    assert_eq!(page.status, StatusCode::OK);
    let csp = page
        .headers
        .get(header::CONTENT_SECURITY_POLICY)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
    assert_eq!(
        page.headers
            .get(header::X_CONTENT_TYPE_OPTIONS)
            .map(|v| v.as_bytes()),
        Some(&b"nosniff"[..])
    );
    let body = &page.body;
    assert!(body.contains(r#"href="/apps/web""#) && body.contains(r#"href="/apps/api""#));
    assert!(body.contains("<strong>2</strong> applications"), "{body}");
    assert!(body.contains("1 OutOfSync") && body.contains("1 Degraded"));
    // Status by icon and word; the source as ref@sha, credentials removed.
    assert!(body.contains(r#"<i aria-hidden="true">✖</i> Degraded"#));
    assert!(body.contains("main@89abcdef01"));
    assert!(
        !body.contains("ghp_credential"),
        "a credential reached the page"
    );
    assert!(body.contains("spec.replicas: not a number"));
    assert!(body.contains("1.2s"), "the last sync's duration");

    let filtered = get(&ui, "/?health=Degraded&q=we").await;
    assert!(filtered.body.contains(r#"href="/apps/web""#));
    assert!(!filtered.body.contains(r#"href="/apps/api""#));
    assert!(filtered.body.contains("1 of 2 shown"));
    let none = get(&ui, "/?sync=Unknown").await;
    assert!(none.body.contains("No application matches the filter."));

    for (asset, kind) in [("/ui/ui.css", "text/css"), ("/ui/ui.js", "text/javascript")] {
        let answer = get(&ui, asset).await;
        assert_eq!(answer.status, StatusCode::OK, "{asset}");
        let content_type = answer
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert!(content_type.starts_with(kind), "{asset}: {content_type}");
    }
}

#[tokio::test]
async fn application_page_tree_history_and_secrets_masked() {
    let repo = GitRepo::new();
    write_app(&repo, "web:1.0", ROLLING, SECRET_VALUE);
    repo.commit("web 1.0");
    apply(&repo);
    record_statuses(&repo);
    let ui = open_ui(&repo, None, None);

    let page = get(&ui, "/apps/web").await;
    assert_eq!(page.status, StatusCode::OK);
    let body = &page.body;
    for part in [
        r#"<span class="kind">Namespace</span> <span class="name">demo</span>"#,
        r#"<span class="kind">Deployment</span> <a href="/rollouts/demo/web">web</a>"#,
        r#"<span class="kind">ReplicaSet</span>"#,
        r#"<span class="kind">Pod</span>"#,
        r#"<span class="kind">Service</span>"#,
        r#"<span class="kind">Endpoints</span>"#,
        "2 ready addresses",
        r#"<span class="kind">Secret</span> <span class="name">db</span>"#,
        "1 keys (values hidden)",
        "Running on worker-",
        "apply failed",
    ] {
        assert!(body.contains(part), "missing {part:?} in:\n{body}");
    }
    assert!(!body.contains(SECRET_VALUE) && !body.contains("aHVudGVyMi10b3BzZWNyZXQ"));
    // Without a watcher the pending diff is computed here from the recorded source (the
    // repository's HEAD): nothing differs yet.
    assert!(body.contains("No difference"), "{body}");
    assert!(
        body.contains("data-confirm=\"Sync web? Nothing differs"),
        "{body}"
    );

    // A new commit: Refresh reads the source again and the diff shows, Secrets masked, as
    // `reconcile plan web` shows it.
    write_app(&repo, "web:2.0", ROLLING, "hunter3-newsecret");
    repo.commit("web 2.0");
    let csrf = ui.csrf_token().to_string();
    let refreshed = post(&ui, "/apps/web/refresh", &format!("csrf={csrf}")).await;
    assert_eq!(refreshed.status, StatusCode::SEE_OTHER);
    let page = get(&ui, "/apps/web").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("update Secret demo/db"), "{}", page.body);
    assert!(page.body.contains("update Deployment demo/web"));
    assert!(page.body.contains("web:2.0"));
    assert!(page.body.contains("password: ++++++++"));
    assert!(
        page.body.contains("Sync web: apply 2 change(s) to engine:"),
        "the confirmation names the changes: {}",
        page.body
    );
    for secret in [SECRET_VALUE, "hunter3-newsecret", "aHVudGVyMy1uZXdzZWNyZXQ"] {
        assert!(!page.body.contains(secret), "{secret} reached the page");
    }

    // Sync with no watcher anywhere: applied here, under the target's lock, and recorded.
    let synced = post(&ui, "/apps/web/sync", &format!("csrf={csrf}")).await;
    assert_eq!(synced.status, StatusCode::SEE_OTHER, "{}", synced.body);
    assert!(
        location(&synced).contains("0%20created%2C%202%20updated%2C%200%20deleted"),
        "{}",
        location(&synced)
    );
    let (code, out, err) = repo.run(&["plan", "web", "--detailed-exitcode"]).parts();
    assert_eq!(
        code, 0,
        "nothing left to apply after the UI's sync:\n{out}{err}"
    );
    let recorded = repo.status("web");
    assert_eq!(recorded["sync"], "Synced", "{recorded}");
    assert_eq!(recorded["history"][0]["result"], "Succeeded", "{recorded}");
    assert!(
        recorded["history"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("2 updated")),
        "{recorded}"
    );
    let page = get(&ui, "/apps/web").await;
    assert!(page.body.contains("No difference"), "{}", page.body);
    assert!(page.body.contains("synced from the UI"));

    // With a watcher in the process, its last comparison is shown.
    let (shared, _rx) = watcher_shared();
    write_app(&repo, "web:3.0", ROLLING, "hunter4-othersecret");
    let (code, out, err) = repo.run(&["plan", "web", "-o", "json"]).parts();
    assert_eq!(code, 0, "{err}");
    let set: PlanSet = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    if let Ok(mut plans) = shared.plans.write() {
        plans.insert("web".into(), set.plans[0].actions.clone());
    }
    if let Ok(mut apps) = shared.apps.write() {
        let engine = Engine::open_existing(&state(&repo)).unwrap_or_else(|e| panic!("{e}"));
        *apps = status::load_all(&engine).unwrap_or_default();
    }
    let watched = open_ui(&repo, Some(shared), None);
    let page = get(&watched, "/apps/web").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("update Secret demo/db"), "{}", page.body);
    assert!(page.body.contains("web:3.0"));
    assert!(page.body.contains("password: ++++++++"));
    assert!(!page.body.contains("hunter4-othersecret"));

    let missing = get(&ui, "/apps/nope").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(
        missing.body.contains("no application &quot;nope&quot;"),
        "{}",
        missing.body
    );
}

#[tokio::test]
async fn sync_and_refresh_need_the_csrf_token_and_reach_the_watcher() {
    let repo = GitRepo::new();
    write_app(&repo, "web:1.0", ROLLING, SECRET_VALUE);
    apply(&repo);
    record_statuses(&repo);
    let (shared, mut rx) = watcher_shared();
    if let Ok(mut apps) = shared.apps.write() {
        let engine = Engine::open_existing(&state(&repo)).unwrap_or_else(|e| panic!("{e}"));
        *apps = status::load_all(&engine).unwrap_or_default();
    }
    let ui = open_ui(&repo, Some(shared), None);
    let csrf = ui.csrf_token().to_string();
    assert!(get(&ui, "/apps/web").await.body.contains(&csrf));

    for form in [String::new(), "csrf=wrong".to_string()] {
        let refused = post(&ui, "/apps/web/sync", &form).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        assert!(refused.body.contains("CSRF"));
        assert!(rx.try_recv().is_err(), "a refused POST does nothing");
    }
    let cross_site = call(
        &ui,
        Request::post("/apps/web/sync")
            .header(header::HOST, "127.0.0.1:8080")
            .header(header::ORIGIN, "https://evil.example")
            .body(Body::from(format!("csrf={csrf}")))
            .unwrap_or_default(),
    )
    .await;
    assert_eq!(cross_site.status, StatusCode::FORBIDDEN);
    assert!(rx.try_recv().is_err());

    let accepted = post(&ui, "/apps/web/sync", &format!("csrf={csrf}")).await;
    assert_eq!(accepted.status, StatusCode::SEE_OTHER);
    assert_eq!(location(&accepted), "/apps/web?notice=Sync+requested");
    assert_eq!(rx.try_recv().ok(), Some(Command::Sync("web".into())));
    let by_header = call(
        &ui,
        Request::post("/apps/web/refresh")
            .header("x-csrf-token", &csrf)
            .body(Body::empty())
            .unwrap_or_default(),
    )
    .await;
    assert_eq!(by_header.status, StatusCode::SEE_OTHER);
    assert!(matches!(rx.try_recv(), Ok(Command::Refresh(_))));
    let unknown = post(&ui, "/apps/nope/sync", &format!("csrf={csrf}")).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);

    // Without a watcher in this process or on the target, Sync applies here; a source that
    // cannot be read (nothing committed yet) is refused naming it, and nothing changes.
    let before = repo.status("web");
    let alone = open_ui(&repo, None, None);
    let csrf = alone.csrf_token().to_string();
    let page = get(&alone, "/apps/web").await;
    assert!(
        page.body
            .contains("The pending diff cannot be computed: reading "),
        "{}",
        page.body
    );
    let refused = post(&alone, "/apps/web/sync", &format!("csrf={csrf}")).await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert!(
        refused.body.contains("cannot sync web: reading ")
            && refused.body.contains(&repo.path().display().to_string()),
        "{}",
        refused.body
    );
    assert_eq!(repo.status("web"), before, "a refused sync records nothing");
}

#[tokio::test]
async fn rollout_page_steps_weights_analysis_and_actions() {
    let repo = GitRepo::new();
    write_app(&repo, "web:1.0", CANARY_PAUSED, SECRET_VALUE);
    apply(&repo);
    write_app(&repo, "web:2.0", CANARY_PAUSED, SECRET_VALUE);
    apply(&repo);
    let ui = open_ui(&repo, None, None);
    let csrf = ui.csrf_token().to_string();

    let page = get(&ui, "/rollouts/demo/web").await;
    assert_eq!(page.status, StatusCode::OK);
    let body = &page.body;
    for part in [
        "Canary",
        r#"<i aria-hidden="true">‖</i> Paused"#,
        r#"<li class="step current" aria-current="step">"#,
        "pause (until promoted)",
        "set <strong>50%</strong>",
        "Deployment web-canary",
        "<code>web:2.0</code>",
        "<code>web:1.0</code>",
        r#"<svg class="chart""#,
        r#"class="threshold""#,
        "success-rate ≥ 0.95",
        "apply web:2.0",
    ] {
        assert!(body.contains(part), "missing {part:?} in:\n{body}");
    }

    let refused = post(&ui, "/rollouts/demo/web/promote", "").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let promoted = post(&ui, "/rollouts/demo/web/promote", &format!("csrf={csrf}")).await;
    assert_eq!(promoted.status, StatusCode::SEE_OTHER, "{}", promoted.body);
    assert!(
        location(&promoted).contains("promoted"),
        "{}",
        location(&promoted)
    );
    let (code, out, _) = repo
        .run(&["rollout", "status", "web", "-n", "demo", "--watch=false"])
        .parts();
    assert_eq!(code, 0);
    assert!(
        !out.contains("Status:    Paused"),
        "promote took effect:\n{out}"
    );

    let aborted = post(&ui, "/rollouts/demo/web/abort", &format!("csrf={csrf}")).await;
    assert_eq!(aborted.status, StatusCode::SEE_OTHER, "{}", aborted.body);
    let page = get(&ui, "/rollouts/demo/web").await;
    assert!(page.body.contains("Degraded"), "{}", page.body);
    let retried = post(&ui, "/rollouts/demo/web/retry", &format!("csrf={csrf}")).await;
    assert_eq!(retried.status, StatusCode::SEE_OTHER, "{}", retried.body);
    let undone = post(
        &ui,
        "/rollouts/demo/web/undo",
        &format!("csrf={csrf}&revision=1"),
    )
    .await;
    assert_eq!(undone.status, StatusCode::SEE_OTHER, "{}", undone.body);
    assert!(location(&undone).contains("rolled%20back%20to%20revision%201"));

    let bad_revision = post(
        &ui,
        "/rollouts/demo/web/undo",
        &format!("csrf={csrf}&revision=x"),
    )
    .await;
    assert_eq!(bad_revision.status, StatusCode::CONFLICT);
    assert!(bad_revision.body.contains("not a number"));
    let unknown = post(&ui, "/rollouts/demo/web/explode", &format!("csrf={csrf}")).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let missing = get(&ui, "/rollouts/demo/nope").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(
        missing
            .body
            .contains("deployments.apps &quot;nope&quot; not found")
    );
    let missing = post(&ui, "/rollouts/demo/nope/promote", &format!("csrf={csrf}")).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn cluster_page_nodes_pods_and_events_and_live_updates() {
    let repo = GitRepo::new();
    write_app(&repo, "web:1.0", ROLLING, SECRET_VALUE);
    apply(&repo);
    let ui = open_ui(&repo, None, None);
    let page = get(&ui, "/cluster").await;
    assert_eq!(page.status, StatusCode::OK);
    for part in [
        "worker-1",
        r#"<i aria-hidden="true">✔</i> Ready"#,
        r#"<span class="app">web</span> <span class="version">1.0</span>"#,
        "Scheduled",
        "Pod demo/web-",
    ] {
        assert!(
            page.body.contains(part),
            "missing {part:?} in:\n{}",
            page.body
        );
    }

    let Ok(response) = ui::router(ui.clone())
        .oneshot(
            Request::get("/ui/events")
                .body(Body::empty())
                .unwrap_or_default(),
        )
        .await;
    assert_eq!(
        response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
        Some("text/event-stream")
    );
    let mut stream = response.into_body().into_data_stream();
    let first = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        tokio_stream::StreamExt::next(&mut stream),
    )
    .await;
    let text = match first {
        Ok(Some(Ok(bytes))) => String::from_utf8_lossy(&bytes).into_owned(),
        other => panic!("no first event: {other:?}"),
    };
    assert!(text.contains("event: hello"), "{text}");
}

#[tokio::test]
async fn a_token_guards_every_request() {
    let repo = GitRepo::new();
    write_app(&repo, "web:1.0", ROLLING, SECRET_VALUE);
    apply(&repo);
    let ui = open_ui(&repo, None, Some("t0ken-value"));
    for uri in [
        "/",
        "/apps/web",
        "/cluster",
        "/ui/ui.css",
        "/ui/events",
        "/?token=wrong",
    ] {
        let refused = get(&ui, uri).await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{uri}");
        assert!(!refused.body.contains("t0ken-value"));
    }
    let refused = post(&ui, "/rollouts/demo/web/abort", "").await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    let bearer = call(
        &ui,
        Request::get("/cluster")
            .header(header::AUTHORIZATION, "Bearer t0ken-value")
            .body(Body::empty())
            .unwrap_or_default(),
    )
    .await;
    assert_eq!(bearer.status, StatusCode::OK);
    // A browser (asking for a page) trades `?token=` for a cookie; any other client just
    // passes with it (a webhook URL, a script).
    let passes = get(&ui, "/ui/ui.css?token=t0ken-value").await;
    assert_eq!(passes.status, StatusCode::OK);
    assert!(passes.headers.get(header::SET_COOKIE).is_none());
    let visit = call(
        &ui,
        Request::get("/cluster?token=t0ken-value")
            .header(header::ACCEPT, "text/html,application/xhtml+xml")
            .body(Body::empty())
            .unwrap_or_default(),
    )
    .await;
    assert_eq!(visit.status, StatusCode::SEE_OTHER);
    assert_eq!(location(&visit), "/cluster");
    let cookie = visit
        .headers
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    let with_cookie = call(
        &ui,
        Request::get("/")
            .header(header::COOKIE, cookie.split(';').next().unwrap_or_default())
            .body(Body::empty())
            .unwrap_or_default(),
    )
    .await;
    assert_eq!(with_cookie.status, StatusCode::OK);
}

#[test]
fn reconcile_ui_serves_on_loopback_and_refuses_a_wider_address_without_a_token() {
    let repo = GitRepo::new();
    write_app(&repo, "web:1.0", ROLLING, SECRET_VALUE);
    apply(&repo);
    let (code, _, err) = repo.run(&["ui", "--listen", "0.0.0.0:0"]).parts();
    assert_eq!(code, 1);
    assert!(
        err.contains("--listen 0.0.0.0:0") && err.contains("token"),
        "{err}"
    );
    let empty = repo.path().join("empty-token");
    std::fs::write(&empty, "\n").unwrap_or_else(|e| panic!("{e}"));
    let (code, _, err) = repo
        .run(&["ui", "--token-file", &empty.display().to_string()])
        .parts();
    assert_eq!(code, 1);
    assert!(err.contains("empty"), "{err}");
    let (code, _, err) = repo.run(&["ui", "--token", " "]).parts();
    assert_eq!(code, 1);
    assert!(err.contains("--token: the value is empty"), "{err}");
    let (code, _, err) = repo
        .run(&["ui", "--target", "engine:/nonexistent/state.db"])
        .parts();
    assert_eq!(code, 1);
    assert!(err.contains("does not exist"), "{err}");

    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_reconcile"))
        .args(["ui", "--listen", "127.0.0.1:0"])
        .current_dir(repo.path())
        .env_remove("RECONCILE_ENGINE_STATE")
        .env_remove("RECONCILE_UI_TOKEN")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    let mut line = String::new();
    let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line);
    let addr = line
        .rsplit("http://")
        .next()
        .unwrap_or_default()
        .trim()
        .trim_end_matches('/')
        .to_string();
    let (code, body) = watch_support::http(&addr, "GET", "/apps/web", &[], "");
    let (cluster_code, cluster) = watch_support::http(&addr, "GET", "/cluster", &[], "");
    let _ = child.kill();
    let _ = child.wait();
    // `reconcile ui` reads statuses from the target: none was recorded here.
    assert_eq!(code, 404, "{body}");
    assert_eq!(cluster_code, 200);
    assert!(cluster.contains("worker-1"));
}

#[test]
fn reconcile_watch_serves_the_ui_at_its_root() {
    let repo = GitRepo::new();
    write_app(&repo, "web:1.0", ROLLING, SECRET_VALUE);
    repo.commit("web 1.0");
    let mut watcher = repo.watch(&["--interval", "300ms"]);
    watcher.wait_for("the UI", |l| l.contains("web UI on http://"));
    watcher.wait_until("the first sync", || {
        repo.try_status("web")
            .is_some_and(|s| s["sync"] == "Synced" && s["health"] == "Healthy")
    });
    let (code, body) = watch_support::http(&watcher.addr, "GET", "/apps/web", &[], "");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("No difference"), "{body}");
    assert!(body.contains(r#"<span class="kind">Pod</span>"#));
    assert!(!body.contains(SECRET_VALUE));
    // The watcher's own endpoints are untouched.
    let (code, _) = watch_support::http(&watcher.addr, "GET", "/healthz", &[], "");
    assert_eq!(code, 200);
    let (code, _) = watcher.stop();
    assert_eq!(code, Some(0));
}

/// Starts `reconcile ui ARGS` in the repository; the child and its address.
fn start_ui(repo: &GitRepo, args: &[&str]) -> (std::process::Child, String) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_reconcile"))
        .arg("ui")
        .args(args)
        .current_dir(repo.path())
        .env_remove("RECONCILE_ENGINE_STATE")
        .env_remove("RECONCILE_UI_TOKEN")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    let mut line = String::new();
    let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line);
    let addr = line
        .rsplit("http://")
        .next()
        .unwrap_or_default()
        .trim()
        .trim_end_matches('/')
        .to_string();
    (child, addr)
}

#[test]
fn reconcile_ui_takes_a_token_value() {
    let repo = GitRepo::new();
    write_app(&repo, "web:1.0", ROLLING, SECRET_VALUE);
    apply(&repo);
    let (mut child, addr) = start_ui(
        &repo,
        &["--listen", "127.0.0.1:0", "--token", "v4lue-t0ken"],
    );
    let (refused, body) = watch_support::http(&addr, "GET", "/cluster", &[], "");
    let (allowed, _) = watch_support::http(
        &addr,
        "GET",
        "/cluster",
        &[("Authorization", "Bearer v4lue-t0ken")],
        "",
    );
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(refused, 401);
    assert!(!body.contains("v4lue-t0ken"));
    assert_eq!(allowed, 200);
}

#[test]
fn reconcile_watch_token_covers_every_endpoint_but_the_probes() {
    let repo = GitRepo::new();
    write_app(&repo, "web:1.0", ROLLING, SECRET_VALUE);
    repo.commit("web 1.0");
    // Beyond loopback without a token: refused before anything is opened or created.
    let (code, out, err) = repo.run(&["watch", "--listen", "0.0.0.0:0"]).parts();
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("--listen 0.0.0.0:0 is reachable beyond this machine")
            && err.contains("--token"),
        "{err}"
    );
    assert!(
        !repo.path().join(".reconcile").exists(),
        "a refused watcher created its state"
    );

    let watcher = repo.watch(&["--interval", "300ms", "--token", "w4tch-t0ken"]);
    watcher.wait_until("the first sync", || {
        repo.try_status("web")
            .is_some_and(|s| s["sync"] == "Synced")
    });
    let bearer = [("Authorization", "Bearer w4tch-t0ken")];
    for (method, path) in [
        ("GET", "/"),
        ("GET", "/apps/web"),
        ("GET", "/api/v1/apps"),
        ("GET", "/api/v1/apps/web"),
        ("POST", "/api/v1/apps/web/sync"),
        ("GET", "/metrics"),
        ("POST", "/hooks/git"),
        ("GET", "/ui/events"),
    ] {
        let (code, body) = watch_support::http(&watcher.addr, method, path, &[], "");
        assert_eq!(code, 401, "{method} {path} without the token: {body}");
        assert!(!body.contains("w4tch-t0ken"));
    }
    for path in ["/healthz", "/readyz"] {
        let (code, _) = watch_support::http(&watcher.addr, "GET", path, &[], "");
        assert_eq!(code, 200, "{path} is a probe");
    }
    let (code, body) = watch_support::http(&watcher.addr, "GET", "/api/v1/apps/web", &bearer, "");
    assert_eq!(code, 200, "{body}");
    let (code, body) = watch_support::http(&watcher.addr, "GET", "/metrics", &bearer, "");
    assert_eq!(code, 200, "{body}");
    let (code, body) = watch_support::http(&watcher.addr, "GET", "/apps/web", &bearer, "");
    assert_eq!(code, 200, "{body}");
    // A webhook URL can carry the token (GitHub sends no bearer token).
    let push = r#"{"ref":"refs/heads/main","after":"abc"}"#;
    let (code, body) = watch_support::http(
        &watcher.addr,
        "POST",
        "/hooks/git?token=w4tch-t0ken",
        &[("X-GitHub-Event", "push")],
        push,
    );
    assert!(code == 202 || code == 200, "{code} {body}");
    // `reconcile sync` carries it too.
    let (code, _, err) = repo.run(&["sync", "web"]).parts();
    assert_eq!(code, 1);
    assert!(err.contains("unauthorized"), "{err}");
    let (code, out, err) = repo.run(&["sync", "web", "--token", "w4tch-t0ken"]).parts();
    assert_eq!(code, 0, "{out}{err}");
    let (code, _) = watcher.stop();
    assert_eq!(code, Some(0));
}

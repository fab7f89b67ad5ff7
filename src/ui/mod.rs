//! The web UI: server-side rendered pages (handlebars) over a target — Applications,
//! Application (resource tree, pending diff, syncs), Rollout (steps, weights, tracks,
//! analysis charts, revisions) and Cluster (nodes, pods, events) — with live updates by
//! server-sent events and actions as POST forms.
//!
//! One router, built by [`router`], mounted at `/` by `reconcile watch` and served alone by
//! `reconcile ui`, so tests drive it without a socket. Templates, CSS and JS are embedded.
//!
//! Invariants: every page works without JavaScript; every action is a POST carrying the
//! server's CSRF token; with a token configured, no request is answered without it; every
//! response carries a Content-Security-Policy allowing only this origin's script and style;
//! no Secret value reaches a page (see [`view`]).

mod chart;
mod view;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use handlebars::Handlebars;
use serde_json::{Value, json};

use crate::cluster::Cluster;
use crate::controller::http::{Command, Shared};
use crate::controller::once;
use crate::controller::status::{self, AppStatus};
use crate::engine::Engine;
use crate::model::{Gvk, ResId};
use crate::rollout::driver;
use crate::source::git::GitOptions;

/// The Content-Security-Policy of every response: this origin's script, style and
/// connections only; no inline script or style, no framing, forms post only here.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

/// The cookie holding the access token once a browser presented it (`?token=`).
pub const TOKEN_COOKIE: &str = "reconcile_ui_token";

/// Events shown on the Cluster page.
const EVENTS_SHOWN: usize = 100;

/// How long a pending diff computed without a watcher is shown before it is computed again.
const PENDING_FOR: Duration = Duration::from_secs(5);

/// The changes a sync would make (computed here when no watcher runs in this process).
type Pending = Vec<crate::plan::PlannedAction>;

/// Per application: when its pending diff was computed, and the changes or why none.
type PendingCache = HashMap<String, (Instant, Result<Pending, String>)>;

const CSS: &str = include_str!("assets/ui.css");
const JS: &str = include_str!("assets/ui.js");
const TEMPLATES: &[(&str, &str)] = &[
    ("layout", include_str!("templates/layout.hbs")),
    ("badge", include_str!("templates/badge.hbs")),
    ("node", include_str!("templates/node.hbs")),
    ("apps", include_str!("templates/apps.hbs")),
    ("app", include_str!("templates/app.hbs")),
    ("rollout", include_str!("templates/rollout.hbs")),
    ("cluster", include_str!("templates/cluster.hbs")),
    ("message", include_str!("templates/message.hbs")),
];

/// Errors starting the UI.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An embedded template does not parse (a bug caught by the unit tests).
    #[error("UI template {name}: {cause}")]
    Template {
        /// The template.
        name: String,
        /// Why.
        cause: String,
    },
    /// The address cannot be used.
    #[error("--listen {addr}: {cause}")]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        cause: String,
    },
    /// Beyond loopback without a token.
    #[error(
        "--listen {addr} is reachable beyond this machine: give an access token (--token VALUE, --token-file FILE or RECONCILE_UI_TOKEN), which every request must then carry"
    )]
    NeedsToken {
        /// The address.
        addr: String,
    },
}

/// How the UI reaches its target.
pub enum Handle {
    /// An engine's state file: a handle of its own for the pages (read again before each
    /// page) and one opened for each action that writes.
    Engine(Engine),
    /// One connection that reads and writes (a Kubernetes cluster).
    Cluster(Box<dyn Cluster + Send>),
}

impl From<Engine> for Handle {
    fn from(engine: Engine) -> Handle {
        Handle::Engine(engine)
    }
}

impl Handle {
    fn cluster(&mut self) -> &mut dyn Cluster {
        match self {
            Handle::Engine(engine) => engine,
            Handle::Cluster(cluster) => &mut **cluster,
        }
    }

    /// The target's events, oldest first: the engine's own, or the `v1` Events a server
    /// keeps.
    fn events(&mut self) -> Vec<crate::engine::events::Event> {
        match self {
            Handle::Engine(engine) => engine.events(None).unwrap_or_default(),
            Handle::Cluster(cluster) => cluster
                .list(&Gvk::from_api_version("v1", "Event"), None, None)
                .map(|objects| view::events_of(&objects))
                .unwrap_or_default(),
        }
    }
}

/// The UI's state: a handle on the target, the watcher's snapshot when one runs in this
/// process, the access and CSRF tokens and the templates.
pub struct Ui {
    handle: Mutex<Handle>,
    /// How applications' sources are read when no watcher runs here.
    git: GitOptions,
    /// Pending diffs computed here (no watcher): when, and the changes or why none.
    pending: Mutex<PendingCache>,
    /// The engine's state file (its watcher lock file lies beside it); `None` on targets
    /// that keep their own watcher lock.
    state_path: Option<std::path::PathBuf>,
    target: String,
    watcher: Option<Arc<Shared>>,
    token: Option<String>,
    csrf: String,
    templates: Handlebars<'static>,
    changes: OnceLock<tokio::sync::watch::Receiver<u64>>,
}

impl std::fmt::Debug for Ui {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Ui({})", self.target)
    }
}

fn random_hex(bytes: usize) -> String {
    use ring::rand::SecureRandom;
    let mut buffer = vec![0u8; bytes];
    // The system generator only fails when the OS has none; a token made of the clock and
    // the pid is then still unguessable enough for a loopback CSRF token.
    if ring::rand::SystemRandom::new().fill(&mut buffer).is_err() {
        let seed = format!("{:?}{}", std::time::SystemTime::now(), std::process::id());
        use sha2::Digest;
        buffer = sha2::Sha256::digest(seed.as_bytes())[..bytes.min(32)].to_vec();
    }
    hex::encode(buffer)
}

/// Byte comparison whose time does not depend on where the inputs differ.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// True when `addr` is reachable only from this machine.
pub fn is_loopback(addr: &SocketAddr) -> bool {
    addr.ip().is_loopback()
}

impl Ui {
    /// The UI over a target (for an engine, a handle of its own on the target's state
    /// file). `watcher`: the watcher's shared state when it runs in this process (statuses,
    /// diffs, sync commands); `token`: the access token every request must carry.
    pub fn new(
        handle: impl Into<Handle>,
        watcher: Option<Arc<Shared>>,
        token: Option<String>,
    ) -> Result<Arc<Ui>, Error> {
        let mut templates = Handlebars::new();
        templates.set_strict_mode(false);
        for (name, text) in TEMPLATES {
            templates
                .register_template_string(name, *text)
                .map_err(|e| Error::Template {
                    name: name.to_string(),
                    cause: e.to_string(),
                })?;
        }
        let mut handle = handle.into();
        let state_path = match &handle {
            Handle::Engine(engine) => Some(std::path::PathBuf::from(engine.path())),
            Handle::Cluster(_) => None,
        };
        Ok(Arc::new(Ui {
            git: GitOptions::from_vars(|name| std::env::var(name).ok(), Duration::from_secs(60)),
            pending: Mutex::new(HashMap::new()),
            target: handle.cluster().target_name(),
            state_path,
            handle: Mutex::new(handle),
            watcher,
            token: token.filter(|t| !t.is_empty()),
            csrf: random_hex(16),
            templates,
            changes: OnceLock::new(),
        }))
    }

    /// The same UI reading applications' remote sources with `git` (cache, timeout,
    /// credentials) when no watcher runs here.
    pub fn with_sources(mut self: Arc<Self>, git: GitOptions) -> Arc<Self> {
        if let Some(ui) = Arc::get_mut(&mut self) {
            ui.git = git;
        }
        self
    }

    /// What syncing `status`'s application would change, computed here (no watcher) at most
    /// every [`PENDING_FOR`]; Refresh and Sync compute it again.
    fn pending(&self, status: &AppStatus) -> Result<Pending, String> {
        if let Ok(cache) = self.pending.lock()
            && let Some((at, pending)) = cache.get(&status.name)
            && at.elapsed() < PENDING_FOR
        {
            return pending.clone();
        }
        let computed = {
            let mut handle = self.handle.lock().map_err(|_| {
                "the target handle is unusable after a failure; restart the UI".to_string()
            })?;
            once::pending(status, handle.cluster(), &self.git)
                .map(|p| p.changes())
                .map_err(|e| e.to_string())
        };
        if let Ok(mut cache) = self.pending.lock() {
            cache.insert(status.name.clone(), (Instant::now(), computed.clone()));
        }
        computed
    }

    fn forget_pending(&self, app: &str) {
        if let Ok(mut cache) = self.pending.lock() {
            cache.remove(app);
        }
    }

    /// The CSRF token the pages embed and every POST must carry.
    pub fn csrf_token(&self) -> &str {
        &self.csrf
    }

    /// The pages' handle, with what other processes wrote read again.
    fn engine(&self) -> Result<std::sync::MutexGuard<'_, Handle>, Response> {
        let mut handle = self.handle.lock().map_err(|_| {
            self.failure(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the target handle is unusable after a failure; restart the UI",
            )
        })?;
        if let Err(e) = handle.cluster().refresh() {
            return Err(self.failure(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("reading {}: {e}", self.target),
            ));
        }
        Ok(handle)
    }

    /// Runs `write` on a handle that writes to the target, for `what`: on an engine one of
    /// its own (the pages' handle only reads), else the one connection.
    fn writable<R>(
        &self,
        what: &str,
        write: impl FnOnce(&mut dyn Cluster) -> R,
    ) -> Result<R, Response> {
        match &self.state_path {
            Some(path) => {
                let mut engine = Engine::open_existing(path).map_err(|e| {
                    self.failure(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        &format!("opening {} for {what}: {e}", self.target),
                    )
                })?;
                Ok(write(&mut engine))
            }
            None => {
                let mut handle = self.engine()?;
                Ok(write(handle.cluster()))
            }
        }
    }

    /// The watcher running on the target, if any.
    fn watcher_holder(
        &self,
    ) -> Result<crate::controller::lock::Holder, crate::controller::lock::Error> {
        match &self.state_path {
            Some(path) => crate::controller::lock::holder(path, &self.target),
            None => {
                let mut handle =
                    self.handle
                        .lock()
                        .map_err(|_| crate::controller::lock::Error::Target {
                            target: self.target.clone(),
                            cause: "the target handle is unusable after a failure".into(),
                        })?;
                crate::controller::lock::holder_of(handle.cluster(), None)
            }
        }
    }

    /// The statuses: the watcher's when it runs here, else those recorded in the target.
    fn statuses(&self) -> Result<Vec<AppStatus>, Response> {
        if let Some(shared) = &self.watcher {
            return Ok(shared.apps.read().map(|a| a.clone()).unwrap_or_default());
        }
        let mut handle = self.engine()?;
        status::load_all(handle.cluster()).map_err(|e| {
            self.failure(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("reading statuses from {}: {e}", self.target),
            )
        })
    }

    /// A change counter of what the pages show (objects, events, statuses).
    fn version(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        if let Ok(mut handle) = self.handle.lock() {
            handle.cluster().change_marker().hash(&mut hasher);
        }
        if let Some(shared) = &self.watcher
            && let Ok(apps) = shared.apps.read()
        {
            serde_json::to_string(&*apps)
                .unwrap_or_default()
                .hash(&mut hasher);
        }
        hasher.finish()
    }

    fn page(&self, template: &str, title: &str, nav: &str, data: Value) -> Response {
        let mut data = data;
        if let Value::Object(map) = &mut data {
            map.insert("title".into(), json!(title));
            map.insert("nav".into(), json!(nav));
            map.insert("csrf".into(), json!(self.csrf));
            map.insert("target".into(), json!(self.target));
            map.insert("watching".into(), json!(self.watcher.is_some()));
        }
        match self.templates.render(template, &data) {
            Ok(html) => Html(html).into_response(),
            Err(e) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("rendering {template}: {e}"),
            )
                .into_response(),
        }
    }

    /// An error page with `status`; the message names the object and the cause.
    fn failure(&self, status: StatusCode, message: &str) -> Response {
        let mut response = self.page(
            "message",
            status.canonical_reason().unwrap_or("Error"),
            "",
            json!({"error": message}),
        );
        *response.status_mut() = status;
        response
    }
}

/// The router of the UI's pages, actions, live updates and assets.
pub fn router(ui: Arc<Ui>) -> Router {
    let router = Router::new()
        .route("/", get(apps_page))
        .route("/apps/{name}", get(app_page))
        .route("/apps/{name}/sync", post(sync_app))
        .route("/apps/{name}/refresh", post(refresh_app))
        .route("/rollouts/{namespace}/{name}", get(rollout_page))
        .route(
            "/rollouts/{namespace}/{name}/{action}",
            post(rollout_action),
        )
        .route("/cluster", get(cluster_page))
        .route("/ui/events", get(events))
        .route(
            "/ui/ui.css",
            get(|| async { asset(CSS, "text/css; charset=utf-8") }),
        )
        .route(
            "/ui/ui.js",
            get(|| async { asset(JS, "text/javascript; charset=utf-8") }),
        )
        .layer(middleware::from_fn_with_state(ui.clone(), guard))
        .with_state(ui.clone());
    match &ui.token {
        Some(token) => gated(router, token.clone(), Vec::new()),
        None => router,
    }
}

fn asset(text: &'static str, kind: &'static str) -> Response {
    ([(header::CONTENT_TYPE, kind)], text).into_response()
}

fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == TOKEN_COOKIE)
        .map(|(_, v)| v.to_string())
}

fn bearer_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|v| v.trim().to_string())
}

/// Splits `a=1&b=2` (a query or a form body), percent-decoded.
pub fn form_fields(text: &str) -> HashMap<String, String> {
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                match (
                    bytes.get(i + 1).and_then(|b| hex(*b)),
                    bytes.get(i + 2).and_then(|b| hex(*b)),
                ) {
                    (Some(high), Some(low)) => {
                        out.push(high * 16 + low);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn secure(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let set = |headers: &mut HeaderMap, name: header::HeaderName, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(
        headers,
        header::CONTENT_SECURITY_POLICY,
        CONTENT_SECURITY_POLICY,
    );
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    // `same-origin`, not `no-referrer`: with no referrer at all browsers send `Origin: null`
    // on form posts, which the same-origin check must refuse.
    set(headers, header::REFERRER_POLICY, "same-origin");
    if !headers.contains_key(header::CACHE_CONTROL) {
        set(headers, header::CACHE_CONTROL, "no-store");
    }
    response
}

/// The access token of a listener and the paths it serves without it.
struct Gate {
    token: String,
    open: Vec<String>,
}

/// `router` answering only requests that carry `token` (`Authorization: Bearer`, the cookie
/// a `?token=` visit sets, or `?token=` itself on a non-page request such as a webhook
/// URL), except on the `open` paths (probes; a webhook checked by its own secret).
pub fn gated(router: Router, token: String, open: Vec<String>) -> Router {
    let gate = Arc::new(Gate { token, open });
    router.layer(middleware::from_fn_with_state(gate, check_token))
}

async fn check_token(State(gate): State<Arc<Gate>>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    let presented = bearer_token(headers).or_else(|| cookie_token(headers));
    if presented.is_some_and(|p| same_secret(&p, &gate.token))
        || gate.open.iter().any(|p| p == request.uri().path())
    {
        return next.run(request).await;
    }
    let query = form_fields(request.uri().query().unwrap_or(""));
    if query
        .get("token")
        .is_some_and(|q| same_secret(q, &gate.token))
    {
        let wants_page = headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/html"));
        if request.method() != Method::GET || !wants_page {
            return next.run(request).await;
        }
        // A browser: trade the token in the address for a cookie and drop it from the
        // address (history, logs, Referer).
        let rest: Vec<String> = request
            .uri()
            .query()
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.starts_with("token=") && !p.is_empty())
            .map(str::to_string)
            .collect();
        let location = if rest.is_empty() {
            request.uri().path().to_string()
        } else {
            format!("{}?{}", request.uri().path(), rest.join("&"))
        };
        let cookie = format!(
            "{TOKEN_COOKIE}={}; HttpOnly; SameSite=Strict; Path=/",
            gate.token
        );
        let mut response = Redirect::to(&location).into_response();
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().insert(header::SET_COOKIE, value);
        }
        return secure(response);
    }
    let mut response = (
        StatusCode::UNAUTHORIZED,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "unauthorized: this listener needs its access token: send Authorization: Bearer TOKEN, \
         or open /?token=TOKEN once in a browser\n",
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    secure(response)
}

/// Every UI request: a same-origin check on POSTs, and the security headers on every
/// answer (the token, when one is set, is checked before, by [`gated`]).
async fn guard(State(ui): State<Arc<Ui>>, request: Request, next: Next) -> Response {
    if request.method() == Method::POST {
        let headers = request.headers();
        let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
        let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
        if let (Some(origin), Some(host)) = (origin, host) {
            let origin_host = origin.split_once("://").map(|(_, h)| h).unwrap_or(origin);
            if origin_host != host {
                return secure(ui.failure(
                    StatusCode::FORBIDDEN,
                    &format!("refused: a request from {origin} to this UI at {host}"),
                ));
            }
        }
    }
    secure(next.run(request).await)
}

/// Checks a POST's CSRF token (form field `csrf` or header `X-CSRF-Token`).
fn check_csrf(
    ui: &Ui,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<(), Response> {
    let presented = headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| form.get("csrf").cloned());
    if presented.is_some_and(|p| same_secret(&p, &ui.csrf)) {
        Ok(())
    } else {
        Err(ui.failure(
            StatusCode::FORBIDDEN,
            "refused: the form's CSRF token is missing or wrong (reload the page and try again); nothing was done",
        ))
    }
}

fn notice_of(query: &HashMap<String, String>) -> Value {
    json!(query.get("notice").cloned().unwrap_or_default())
}

async fn apps_page(
    State(ui): State<Arc<Ui>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let statuses = match ui.statuses() {
        Ok(s) => s,
        Err(r) => return r,
    };
    let filter = view::Filter {
        sync: query.get("sync").cloned().unwrap_or_default(),
        health: query.get("health").cloned().unwrap_or_default(),
        name: query.get("q").cloned().unwrap_or_default(),
    };
    let rows: Vec<view::AppRow> = statuses
        .iter()
        .map(view::app_row)
        .filter(|r| filter.keeps(r))
        .collect();
    let options = |all: &[&str], chosen: &str| -> Vec<Value> {
        all.iter()
            .map(|o| json!({"value": o, "selected": *o == chosen}))
            .collect()
    };
    ui.page(
        "apps",
        "Applications",
        "apps",
        json!({
            "counts": view::counts(&statuses),
            "rows": rows,
            "shown": rows.len(),
            "filtered": rows.len() != statuses.len(),
            "q": filter.name,
            "syncOptions": options(&["Synced", "OutOfSync", "Unknown"], &filter.sync),
            "healthOptions": options(&["Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"], &filter.health),
            "notice": notice_of(&query),
        }),
    )
}

async fn app_page(
    State(ui): State<Arc<Ui>>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let statuses = match ui.statuses() {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Some(status) = statuses.iter().find(|s| s.name == name) else {
        return ui.failure(
            StatusCode::NOT_FOUND,
            &format!(
                "no application {name:?} in {} (`reconcile watch` records them)",
                ui.target
            ),
        );
    };
    let (tree, diffs) = {
        let mut handle = match ui.engine() {
            Ok(e) => e,
            Err(r) => return r,
        };
        let cluster = handle.cluster();
        let members: Vec<ResId> = match crate::plan::inventory::read(cluster, &name) {
            Ok(inventory) => inventory.members.iter().map(|m| m.id()).collect(),
            Err(e) => {
                return ui.failure(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &format!("reading the inventory of {name}: {e}"),
                );
            }
        };
        let tree = view::tree(cluster, &members);
        drop(handle);
        // The watcher's last comparison when it runs here; else computed as it would.
        let diffs = match &ui.watcher {
            Some(shared) => Ok(shared
                .plans
                .read()
                .ok()
                .and_then(|p| p.get(&name).cloned())
                .unwrap_or_default()),
            None => ui.pending(status),
        };
        (tree, diffs)
    };
    let (diffs, diff_error) = match diffs {
        Ok(actions) => (view::diffs(&actions), None),
        Err(e) => (Vec::new(), Some(e)),
    };
    let deletions = diffs.iter().filter(|d| d.action == "delete").count();
    let sync_question = match (&diff_error, diffs.len()) {
        (Some(_), _) => format!("Sync {name} to {}?", ui.target),
        (None, 0) => format!("Sync {name}? Nothing differs; its objects are applied again."),
        (None, n) if deletions > 0 => format!(
            "Sync {name}: apply {n} change(s) to {}, deleting {deletions} object(s)?",
            ui.target
        ),
        (None, n) => format!("Sync {name}: apply {n} change(s) to {}?", ui.target),
    };
    let history: Vec<view::SyncRow> = status.history.iter().map(view::sync_row).collect();
    ui.page(
        "app",
        &name,
        "apps",
        json!({
            "app": view::app_row(status),
            "fullError": status.last_error,
            "healthMessage": status.health_message,
            "tree": tree,
            "diffError": diff_error,
            "diffs": diffs,
            "syncQuestion": sync_question,
            "history": history,
            "nameSegment": view::encode(&name),
            "notice": notice_of(&query),
        }),
    )
}

/// One HTTP/1.1 POST on a fresh connection to a watcher; its status code and body.
async fn post_to(addr: &str, path: &str, token: Option<&str>) -> Result<(u16, String), String> {
    let (addr, path) = (addr.to_string(), path.to_string());
    let authorization = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let exchange = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(&addr)
            .map_err(|e| format!("connecting to {addr}: {e}"))?;
        let patience = Some(Duration::from_secs(10));
        stream
            .set_read_timeout(patience)
            .map_err(|e| e.to_string())?;
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\n{authorization}Content-Length: 0\r\nConnection: close\r\n\r\n"
        );
        stream
            .write_all(request.as_bytes())
            .map_err(|e| e.to_string())?;
        let mut response = String::new();
        stream
            .read_to_string(&mut response)
            .map_err(|e| e.to_string())?;
        let code = response
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| format!("{addr} did not answer HTTP"))?;
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        Ok((code, body))
    });
    exchange.await.map_err(|e| e.to_string())?
}

async fn sync_app(
    State(ui): State<Arc<Ui>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = form_fields(&String::from_utf8_lossy(&body));
    if let Err(r) = check_csrf(&ui, &headers, &form) {
        return r;
    }
    let statuses = match ui.statuses() {
        Ok(s) => s,
        Err(r) => return r,
    };
    if !statuses.iter().any(|s| s.name == name) {
        return ui.failure(
            StatusCode::NOT_FOUND,
            &format!("no application {name:?} in {}", ui.target),
        );
    }
    let back = format!("/apps/{}", view::encode(&name));
    if let Some(shared) = &ui.watcher {
        if shared.commands.send(Command::Sync(name.clone())).is_err() {
            return ui.failure(StatusCode::SERVICE_UNAVAILABLE, "the watcher is stopping");
        }
        return Redirect::to(&format!("{back}?notice=Sync+requested")).into_response();
    }
    // No watcher in this process: hand the request to the one running on the target, else
    // sync here under the target's lock, as the watcher would.
    ui.forget_pending(&name);
    let holder = match ui.watcher_holder() {
        Ok(holder) => holder,
        Err(crate::controller::lock::Error::NoWatcher { .. }) => {
            let Some(status) = statuses.into_iter().find(|s| s.name == name) else {
                return ui.failure(StatusCode::NOT_FOUND, &format!("no application {name:?}"));
            };
            return sync_here(&ui, &status, &back);
        }
        Err(e) => {
            return ui.failure(
                StatusCode::CONFLICT,
                &format!("cannot sync {name}: {e}; `reconcile apply` syncs from the command line"),
            );
        }
    };
    match post_to(
        &holder.listen,
        &format!("/api/v1/apps/{}/sync", view::encode(&name)),
        ui.token.as_deref(),
    )
    .await
    {
        Ok((202, _)) => Redirect::to(&format!("{back}?notice=Sync+requested")).into_response(),
        Ok((code, body)) => ui.failure(
            StatusCode::BAD_GATEWAY,
            &format!("the watcher ({holder}) refused the sync of {name} ({code}): {body}"),
        ),
        Err(e) => ui.failure(
            StatusCode::BAD_GATEWAY,
            &format!("asking {holder} to sync {name}: {e}"),
        ),
    }
}

/// Syncs an application from this process (no watcher runs on the target): its own
/// writable handle on the state, the target's apply lock, the status recorded.
fn sync_here(ui: &Ui, status: &AppStatus, back: &str) -> Response {
    let name = &status.name;
    let holder = format!("reconcile ui (pid {})", std::process::id());
    let wall_now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    };
    let outcome = match ui.writable(&format!("the sync of {name}"), |cluster| {
        once::sync(status, cluster, &ui.git, &holder, wall_now)
    }) {
        Ok(outcome) => outcome,
        Err(r) => return r,
    };
    ui.forget_pending(name);
    match outcome {
        Ok(synced) if synced.ok => Redirect::to(&format!(
            "{back}?notice={}",
            view::encode(&format!("Synced: {}", synced.message))
        ))
        .into_response(),
        Ok(synced) => ui.failure(
            StatusCode::CONFLICT,
            &format!("the sync of {name} failed: {}", synced.message),
        ),
        Err(e) => ui.failure(StatusCode::CONFLICT, &format!("cannot sync {name}: {e}")),
    }
}

async fn refresh_app(
    State(ui): State<Arc<Ui>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = form_fields(&String::from_utf8_lossy(&body));
    if let Err(r) = check_csrf(&ui, &headers, &form) {
        return r;
    }
    let back = format!("/apps/{}", view::encode(&name));
    if let Some(shared) = &ui.watcher {
        if shared
            .commands
            .send(Command::Refresh(format!("the UI ({name})")))
            .is_err()
        {
            return ui.failure(StatusCode::SERVICE_UNAVAILABLE, "the watcher is stopping");
        }
        return Redirect::to(&format!("{back}?notice=Refresh+requested")).into_response();
    }
    ui.forget_pending(&name);
    Redirect::to(&format!(
        "{back}?notice=Read+again+from+the+target+and+the+source"
    ))
    .into_response()
}

fn deployment_id(namespace: &str, name: &str) -> ResId {
    ResId {
        gvk: Gvk::from_api_version("apps/v1", "Deployment"),
        name: name.to_string(),
        namespace: namespace.to_string(),
    }
}

async fn rollout_page(
    State(ui): State<Arc<Ui>>,
    Path((namespace, name)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let id = deployment_id(&namespace, &name);
    let view = {
        let mut handle = match ui.engine() {
            Ok(e) => e,
            Err(r) => return r,
        };
        view::rollout(handle.cluster(), &id)
    };
    match view {
        Ok(Some(rollout)) => ui.page(
            "rollout",
            &format!("Rollout {namespace}/{name}"),
            "apps",
            json!({
                "rollout": rollout,
                "base": format!("/rollouts/{}/{}", view::encode(&namespace), view::encode(&name)),
                "notice": notice_of(&query),
            }),
        ),
        Ok(None) => ui.failure(
            StatusCode::NOT_FOUND,
            &crate::cluster::not_found_message(&id),
        ),
        Err(e) => ui.failure(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("reading the rollout of {namespace}/{name}: {e}"),
        ),
    }
}

/// Runs a rollout operation under the target's lock, as `reconcile rollout` does.
fn rollout_operation(
    cluster: &mut dyn Cluster,
    id: &ResId,
    action: &str,
    form: &HashMap<String, String>,
) -> Result<String, String> {
    let shown = crate::diff::display_id(id);
    let live = cluster
        .get(id)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| crate::cluster::not_found_message(id))?;
    let progressive = crate::rollout::Strategy::of(&live)
        .map_err(|e| e.to_string())?
        .is_progressive();
    let revision = match form
        .get("revision")
        .map(|r| r.trim())
        .filter(|r| !r.is_empty())
    {
        Some(text) => Some(
            text.parse::<u64>()
                .map_err(|_| format!("revision {text:?} is not a number"))?,
        ),
        None => None,
    };
    cluster
        .lock(&format!("reconcile ui (pid {})", std::process::id()))
        .map_err(|e| e.to_string())?;
    let result = match action {
        "promote" => {
            let full = form.get("full").is_some_and(|v| v == "true");
            driver::promote(cluster, id, full)
                .map(|_| format!("{shown}: promoted{}", if full { " fully" } else { "" }))
        }
        "abort" => driver::abort(cluster, id).map(|s| format!("{shown}: {}", s.message)),
        "retry" => driver::retry(cluster, id).map(|s| format!("{shown}: {}", s.message)),
        "undo" if progressive => driver::undo(cluster, id, revision).map(|r| {
            format!(
                "{shown}: rolled back to revision {} ({})",
                r.revision,
                r.images.join(", ")
            )
        }),
        "undo" => driver::undo_replica_sets(cluster, id, revision),
        other => Err(crate::rollout::Error::Refused(
            id.clone(),
            format!("unknown rollout action {other:?}"),
        )),
    };
    let released = cluster.unlock();
    let message = result.map_err(|e| e.to_string())?;
    released.map_err(|e| e.to_string())?;
    Ok(message)
}

async fn rollout_action(
    State(ui): State<Arc<Ui>>,
    Path((namespace, name, action)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = form_fields(&String::from_utf8_lossy(&body));
    if let Err(r) = check_csrf(&ui, &headers, &form) {
        return r;
    }
    if !["promote", "abort", "retry", "undo"].contains(&action.as_str()) {
        return ui.failure(
            StatusCode::NOT_FOUND,
            &format!("unknown rollout action {action:?} (promote, abort, retry or undo)"),
        );
    }
    let id = deployment_id(&namespace, &name);
    let outcome = match ui.writable(&format!("rollout {action} of {namespace}/{name}"), |c| {
        rollout_operation(c, &id, &action, &form)
    }) {
        Ok(outcome) => outcome,
        Err(r) => return r,
    };
    let back = format!(
        "/rollouts/{}/{}",
        view::encode(&namespace),
        view::encode(&name)
    );
    match outcome {
        Ok(message) => {
            Redirect::to(&format!("{back}?notice={}", view::encode(&message))).into_response()
        }
        Err(message) if message.contains("not found") => {
            ui.failure(StatusCode::NOT_FOUND, &message)
        }
        Err(message) => ui.failure(
            StatusCode::CONFLICT,
            &format!(
                "rollout {action} of {}: {message}",
                crate::diff::display_id(&id)
            ),
        ),
    }
}

async fn cluster_page(State(ui): State<Arc<Ui>>) -> Response {
    let (nodes, events) = {
        let mut handle = match ui.engine() {
            Ok(e) => e,
            Err(r) => return r,
        };
        let events = handle.events();
        (
            view::nodes(handle.cluster()),
            view::events(&events, EVENTS_SHOWN),
        )
    };
    let pods: usize = nodes.iter().map(|n| n.pods.len()).sum();
    ui.page(
        "cluster",
        "Cluster",
        "cluster",
        json!({"nodes": nodes, "events": events, "podCount": pods, "nodeCount": nodes.len()}),
    )
}

/// Server-sent events: `change` whenever what the pages show changed (checked twice a
/// second by one poller shared by every client).
async fn events(State(ui): State<Arc<Ui>>) -> Response {
    let mut changes = ui
        .changes
        .get_or_init(|| {
            let (tx, rx) = tokio::sync::watch::channel(ui.version());
            let weak = Arc::downgrade(&ui);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    let Some(ui) = weak.upgrade() else { break };
                    let version = ui.version();
                    drop(ui);
                    tx.send_if_modified(|v| {
                        let changed = *v != version;
                        *v = version;
                        changed
                    });
                }
            });
            rx
        })
        .clone();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Event, std::convert::Infallible>>(4);
    tokio::spawn(async move {
        let first = *changes.borrow_and_update();
        if tx
            .send(Ok(Event::default().event("hello").data(first.to_string())))
            .await
            .is_err()
        {
            return;
        }
        while changes.changed().await.is_ok() {
            let version = *changes.borrow_and_update();
            if tx
                .send(Ok(Event::default()
                    .event("change")
                    .data(version.to_string())))
                .await
                .is_err()
            {
                break;
            }
        }
    });
    Sse::new(tokio_stream::wrappers::ReceiverStream::new(rx))
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// Serves the UI on `listen` until SIGTERM or SIGINT; `started` is told the bound address.
/// Beyond loopback the UI must have a token.
pub async fn serve(
    ui: Arc<Ui>,
    listen: &str,
    started: impl FnOnce(SocketAddr),
) -> Result<(), Error> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| Error::Listen {
            addr: listen.to_string(),
            cause: e.to_string(),
        })?;
    let addr = listener.local_addr().map_err(|e| Error::Listen {
        addr: listen.to_string(),
        cause: e.to_string(),
    })?;
    if !is_loopback(&addr) && ui.token.is_none() {
        return Err(Error::NeedsToken {
            addr: listen.to_string(),
        });
    }
    started(addr);
    axum::serve(listener, router(ui))
        .with_graceful_shutdown(crate::controller::wait_for_signal())
        .await
        .map_err(|e| Error::Listen {
            addr: addr.to_string(),
            cause: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_parses_and_forms_decode() {
        let engine = Engine::in_memory(1).map_err(|e| e.to_string());
        let Ok(engine) = engine else {
            panic!("in-memory engine: {engine:?}")
        };
        let ui = Ui::new(engine, None, None).map_err(|e| e.to_string());
        assert!(ui.is_ok(), "{ui:?}");
        let fields = form_fields("csrf=ab12&revision=3&msg=a+b%2Fc&bad=%zz&end=%4");
        assert_eq!(fields.get("csrf").map(String::as_str), Some("ab12"));
        assert_eq!(fields.get("msg").map(String::as_str), Some("a b/c"));
        assert_eq!(fields.get("bad").map(String::as_str), Some("%zz"));
        assert_eq!(fields.get("end").map(String::as_str), Some("%4"));
        assert!(same_secret("abc", "abc") && !same_secret("abc", "abd"));
    }
}

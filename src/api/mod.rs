//! The Kubernetes REST API over the engine's store, so the real `kubectl` and the `kube`
//! crate talk to the built-in engine as to any cluster (`reconcile engine serve`).
//!
//! A tour:
//! - [`router`] builds the one axum router (tests drive it without a socket);
//! - [`worker`] owns the engine on its own thread (jobs, wall-clock time) and feeds the
//!   [`journal`] that [`watch`] fans out;
//! - [`request`] reads paths and list options; [`objects`] holds the verbs; [`patch`] the
//!   JSON/merge/strategic patches and [`apply`] field ownership (server-side apply and the
//!   `Update` entries, through [`crate::fields`]); [`protobuf`] reads protobuf bodies; [`table`] converts to
//!   `Table`; [`discovery`] and [`openapi`] describe what is served; [`status`] turns
//!   errors into `Status`;
//! - [`tls`] makes the CA, the serving certificate, the token and the kubeconfig, and
//!   [`serve`] runs HTTPS;
//! - [`auth`] says who a request is from (the admin token, `--token-auth-file` users),
//!   [`rbac`] whether the stored Roles and bindings allow it, and [`reviews`] answers
//!   `kubectl auth can-i` and `whoami`.
//!
//! Invariants: handlers parse, call one engine job, and render; the engine never sees an
//! HTTP type; every request without a known bearer token gets 401 and every request RBAC
//! does not allow gets 403 before anything else runs.

pub mod apply;
pub mod auth;
pub mod discovery;
pub mod journal;
pub mod objects;
pub mod openapi;
pub mod patch;
pub mod protobuf;
pub mod rbac;
pub mod request;
pub mod reviews;
pub mod status;
pub mod table;
pub mod tls;
pub mod watch;
pub mod worker;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Extension, Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::Value;

use objects::{Answer, Scope};
use patch::PatchType;
use request::{ListOptions, Target};
use status::ApiError;
use worker::Worker;

/// The largest request body accepted (the API server's limit).
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// What every handler shares.
#[derive(Clone)]
struct App {
    worker: Worker,
    authenticator: Arc<auth::Authenticator>,
    address: Arc<str>,
    faults: Arc<TestFaults>,
}

/// Test hook, for the clients' error handling: faults a real API server shows.
/// `RECONCILE_TEST_API_FAULTS=N` answers the first N writes (any method but GET) with 429
/// and 503 in turn.
#[derive(Debug, Default)]
struct TestFaults {
    remaining: std::sync::atomic::AtomicU32,
}

impl TestFaults {
    fn from_env() -> TestFaults {
        let remaining = std::env::var("RECONCILE_TEST_API_FAULTS")
            .ok()
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
            .min(20);
        TestFaults {
            remaining: std::sync::atomic::AtomicU32::new(remaining),
        }
    }
}

/// The API router over `worker`'s engine; requests must carry `Bearer <token>` (the admin,
/// allowed everything). `address` is what `/api` reports as the server's address.
pub fn router(worker: Worker, token: &str, address: &str) -> Router {
    router_with(worker, auth::Authenticator::new(token), address)
}

/// As [`router`], with the users `authenticator` knows; those not in `system:masters` are
/// authorized by the RBAC objects in the engine.
pub fn router_with(worker: Worker, authenticator: auth::Authenticator, address: &str) -> Router {
    let app = App {
        worker,
        authenticator: Arc::new(authenticator),
        address: Arc::from(address),
        faults: Arc::new(TestFaults::from_env()),
    };
    Router::new()
        .route(
            "/version",
            get(|| async { axum::Json(discovery::version()) }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ok" }))
        .route("/livez", get(|| async { "ok" }))
        .route("/api", get(core_versions))
        .route("/apis", get(api_groups))
        .route("/openapi/v2", get(openapi_v2))
        .route("/openapi/v3", get(openapi_root))
        .route("/openapi/v3/{*gv}", get(openapi_group_version))
        .fallback(resource)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn_with_state(app.clone(), authenticate))
        .layer(middleware::from_fn_with_state(app.clone(), stamp_date))
        .with_state(app)
}

/// Every response carries the server's time in `Date`, as the API server's do: the engine's
/// virtual time, so clients that follow the server's clock (the kube backend's rollout
/// driver) see the time the engine's controllers see.
async fn stamp_date(State(app): State<App>, request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(app.worker.now_millis());
    if let Ok(value) = axum::http::HeaderValue::from_str(&httpdate::fmt_http_date(at)) {
        response
            .headers_mut()
            .insert(axum::http::header::DATE, value);
    }
    response
}

async fn authenticate(State(app): State<App>, mut request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let Some(user) = app.authenticator.authenticate(presented) else {
        return ApiError::unauthorized().into_response();
    };
    if let Some(refused) = injected_fault(&app.faults, &request) {
        return refused.into_response();
    }
    if !user.is_master() {
        let attributes = rbac::Attributes::of_request(
            request.method().as_str(),
            request.uri().path(),
            request.uri().query().unwrap_or_default(),
        );
        let namespace = attributes.namespace().to_string();
        let policy = app
            .worker
            .call(move |e| rbac::Policy::load(e, &namespace))
            .await;
        let decision = match policy {
            Ok(Ok(policy)) => policy.authorize(&user, &attributes),
            Ok(Err(err)) | Err(err) => return err.into_response(),
        };
        if !decision.allowed {
            return rbac::forbidden(&user, &attributes, &decision.reason).into_response();
        }
    }
    request.extensions_mut().insert(user);
    next.run(request).await
}

/// The fault a test asked for (see [`TestFaults`]), if any.
fn injected_fault(faults: &TestFaults, request: &Request) -> Option<ApiError> {
    use std::sync::atomic::Ordering;
    if request.method() == Method::GET {
        return None;
    }
    let left = faults
        .remaining
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .ok()?;
    Some(if left % 2 == 0 {
        ApiError::new(
            429,
            "TooManyRequests",
            "the server is throttling: try again later",
        )
    } else {
        ApiError::new(
            503,
            "ServiceUnavailable",
            "the server is unavailable: try again later",
        )
    })
}

async fn core_versions(State(app): State<App>) -> Response {
    axum::Json(discovery::core_versions(&app.address)).into_response()
}

async fn api_groups(State(app): State<App>) -> Response {
    axum::Json(discovery::groups(&app.worker.served())).into_response()
}

async fn openapi_v2(headers: HeaderMap) -> Response {
    let protobuf = headers
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("protobuf"));
    let media = if protobuf {
        openapi::V2_PROTOBUF
    } else {
        "application/json"
    };
    (
        [("content-type", media)],
        openapi::v2_document(protobuf),
    )
        .into_response()
}

async fn openapi_root(State(app): State<App>) -> Response {
    axum::Json(openapi::root(&app.worker.served())).into_response()
}

async fn openapi_group_version(State(app): State<App>, uri: Uri) -> Response {
    let gv = uri.path().trim_start_matches("/openapi/v3/");
    match openapi::group_version(&app.worker.served(), gv) {
        Some(doc) => axum::Json(doc).into_response(),
        None => ApiError::no_route().into_response(),
    }
}

fn json_response(answer: Answer) -> Response {
    let code = StatusCode::from_u16(answer.code).unwrap_or(StatusCode::OK);
    let mut response = (code, [("content-type", "application/json")], answer.body).into_response();
    for warning in &answer.warnings {
        // RFC 7234 warn-text, as kube-apiserver sends it and kubectl prints it (`Warning: …`).
        let text: String = warning
            .chars()
            .map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '?' })
            .collect();
        let quoted = text.replace('\\', "\\\\").replace('"', "\\\"");
        if let Ok(value) = axum::http::HeaderValue::from_str(&format!("299 - \"{quoted}\"")) {
            response.headers_mut().append("warning", value);
        }
    }
    response
}

async fn resource(
    State(app): State<App>,
    user: Option<Extension<Arc<auth::User>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let user = user.map(|Extension(u)| u);
    match dispatch(&app, user.as_deref(), &method, &uri, &headers, query, body).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

async fn dispatch(
    app: &App,
    user: Option<&auth::User>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    query: HashMap<String, String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|rejection| {
        ApiError::new(
            413,
            "RequestEntityTooLarge",
            format!("Request entity too large: limit is {MAX_BODY} ({rejection})"),
        )
    })?;
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let as_table = table::wants_table(&header("accept"));
    let media = header("content-type");
    // Typed clients (`kubectl create configmap`) send protobuf whatever discovery says.
    let protobuf_body = if media.starts_with(protobuf::MEDIA_TYPE) && !body.is_empty() {
        Some(protobuf::decode_object(&body)?)
    } else if media.contains("cbor") && !body.is_empty() {
        return Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/vnd.kubernetes.protobuf, application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml (got {media})"
            ),
        ));
    } else {
        None
    };
    let object_body = |body: &[u8]| match &protobuf_body {
        Some(decoded) => Ok(decoded.clone()),
        None => objects::body_object(body),
    };
    let served = app.worker.served();
    if let Some(found) = discovery_document(&served, uri.path()) {
        return found.map(|doc| axum::Json(doc).into_response());
    }
    let target = request::parse_path(&served, uri.path())?;
    let (info, namespace, name, sub, version) = match target {
        Target::Events { namespace } => {
            if method != Method::GET {
                return Err(ApiError::method_not_allowed(method.as_str()));
            }
            let options = ListOptions::from_query(&query)?;
            if query.get("watch").is_some_and(|w| w == "true" || w == "1") {
                return watch::watch_events(&app.worker, namespace, options, as_table).await;
            }
            let answer = app
                .worker
                .call(move |e| objects::events(e, namespace.as_deref(), &options, as_table))
                .await??;
            return Ok(json_response(answer));
        }
        Target::Objects {
            info,
            namespace,
            name,
            sub,
            version,
        } => (info, namespace, name, sub, version),
    };
    if reviews::is_review(info) {
        let (Some(user), &Method::POST, None) = (user, method, &name) else {
            return Err(ApiError::method_not_allowed(method.as_str()));
        };
        let review = object_body(&body)?;
        let answered = reviews::answer(
            &app.worker,
            &app.authenticator,
            user,
            info,
            namespace.as_deref(),
            review,
        )
        .await?;
        return Ok((
            StatusCode::CREATED,
            [("content-type", "application/json")],
            serde_json::to_vec(&answered).unwrap_or_default(),
        )
            .into_response());
    }
    if method == Method::POST && served.is_terminating(info) {
        // kube-apiserver's custom resource handler, for a CRD being deleted.
        return Err(ApiError::new(
            405,
            "MethodNotAllowed",
            "create not allowed while custom resource definition is terminating",
        ));
    }
    if !crate::engine::kinds::is_builtin(info) {
        // A CRD converting with a webhook the engine cannot call fails every request that
        // needs a conversion, as an API server whose webhook is unreachable.
        let asked = version.clone();
        let sent = method == Method::POST;
        if let Some(failure) = app
            .worker
            .call(move |e| e.conversion_failure(info, &asked, sent))
            .await?
        {
            return Err(ApiError::new(500, "InternalError", failure));
        }
    }
    let scope = Scope {
        info,
        namespace,
        version,
    };
    let write = objects::Write {
        manager: apply::manager_of(
            query.get("fieldManager").map(String::as_str),
            &header("user-agent"),
        ),
        dry_run: request::is_dry_run(&query)?,
    };
    let dry_run = write.dry_run;
    let worker = &app.worker;
    let answer = match (method.clone(), name) {
        (Method::GET, None) => {
            let options = ListOptions::from_query(&query)?;
            if query.get("watch").is_some_and(|w| w == "true" || w == "1") {
                return watch::watch(worker, scope, options, as_table).await;
            }
            worker
                .call(move |e| objects::list(e, &scope, &options, as_table))
                .await??
        }
        (Method::GET, Some(name)) => {
            worker
                .call(move |e| objects::get(e, &scope, &name, sub, as_table))
                .await??
        }
        (Method::POST, None) => {
            let object = object_body(&body)?;
            if scope.info.namespaced && scope.namespace.is_none() {
                return Err(ApiError::method_not_allowed("POST"));
            }
            worker
                .call(move |e| objects::warned(e, |e| objects::create(e, &scope, object, &write)))
                .await??
        }
        (Method::PUT, Some(name)) => {
            let object = object_body(&body)?;
            worker
                .call(move |e| {
                    objects::warned(e, |e| objects::update(e, &scope, &name, sub, object, &write))
                })
                .await??
        }
        (Method::PATCH, Some(name)) => {
            let kind = PatchType::of(&header("content-type"))?;
            if kind == PatchType::Apply {
                let applied = apply::parse_body(&body)?;
                let manager = query.get("fieldManager").cloned().unwrap_or_default();
                let force = query.get("force").is_some_and(|f| f == "true");
                worker
                    .call(move |e| {
                        objects::warned(e, |e| {
                            server_side_apply(e, &scope, &name, applied, &manager, force, dry_run)
                        })
                    })
                    .await??
            } else {
                worker
                    .call(move |e| {
                        objects::warned(e, |e| {
                            objects::patch(e, &scope, &name, sub, kind, &body, &write)
                        })
                    })
                    .await??
            }
        }
        (Method::DELETE, name) => {
            let options: Value = match (&protobuf_body, body.is_empty()) {
                (Some(decoded), _) => decoded.clone(),
                (None, true) => Value::Null,
                (None, false) => serde_json::from_slice(&body)
                    .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?,
            };
            match name {
                Some(name) => {
                    worker
                        .call(move |e| objects::delete(e, &scope, &name, &options, &query))
                        .await??
                }
                None => {
                    let selection = ListOptions::from_query(&query)?;
                    worker
                        .call(move |e| {
                            objects::delete_collection(e, &scope, &selection, &options, &query)
                        })
                        .await??
                }
            }
        }
        (m, _) => return Err(ApiError::method_not_allowed(m.as_str())),
    };
    Ok(json_response(answer))
}

/// `/api/v1`, `/apis/{group}` and `/apis/{group}/{version}`; `None` for other paths.
fn discovery_document(
    served: &crate::engine::served::Served,
    path: &str,
) -> Option<Result<Value, ApiError>> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let found = match parts.as_slice() {
        ["api", version] => discovery::resources(served, "", version),
        ["apis", group, version] => discovery::resources(served, group, version),
        ["apis", group] => discovery::group(served, group),
        _ => return None,
    };
    Some(found.ok_or_else(ApiError::no_route))
}

fn server_side_apply(
    engine: &mut crate::engine::Engine,
    scope: &Scope,
    name: &str,
    mut applied: Value,
    manager: &str,
    force: bool,
    dry_run: bool,
) -> Result<Answer, ApiError> {
    use crate::engine::doc;
    let info = scope.info;
    if doc::str_at(&applied, &["kind"]) != info.kind {
        return Err(ApiError::bad_request(format!(
            "the kind of the applied configuration ({}) does not match the resource ({})",
            doc::str_at(&applied, &["kind"]),
            info.plural
        )));
    }
    if doc::name(&applied) != name {
        return Err(ApiError::bad_request(
            "the name of the object does not match the name on the URL",
        ));
    }
    if let Some(ns) = &scope.namespace {
        doc::set(
            &mut applied,
            &["metadata", "namespace"],
            Value::from(ns.as_str()),
        );
    }
    let live = engine
        .get(
            info.key,
            scope.namespace.as_deref().unwrap_or_default(),
            name,
        )?
        .map(|l| scope.view(l));
    let request = apply::ApplyRequest {
        manager,
        force,
        now: crate::engine::clock::rfc3339(engine.now_millis()),
        status_is_field: crate::engine::kinds::status_is_field(info),
    };
    let mut merged = apply::merge(live.as_ref(), &applied, &request)?;
    objects::drop_nulls(&mut merged);
    let (code, stored) = match (live.is_some(), dry_run) {
        (true, true) => (200, engine.dry_run_replace(&merged)?),
        (true, false) => (200, engine.replace(&merged)?),
        (false, true) => (201, engine.dry_run_create(&merged)?),
        (false, false) => (201, engine.create(&merged)?),
    };
    let stored = scope.view(stored);
    Ok(Answer {
        code,
        body: serde_json::to_vec(&stored).unwrap_or_default(),
        warnings: Vec::new(),
    })
}

/// Serves `router` over HTTPS on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: Arc<tokio_rustls::rustls::ServerConfig>,
    router: Router,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = &mut shutdown => return,
        };
        let Ok((stream, _)) = accepted else {
            continue;
        };
        let acceptor = acceptor.clone();
        let service = hyper_util::service::TowerToHyperService::new(router.clone());
        tokio::spawn(async move {
            let Ok(tls_stream) = acceptor.accept(stream).await else {
                return;
            };
            let io = hyper_util::rt::TokioIo::new(tls_stream);
            // A client that goes away mid-request is its own business.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await;
        });
    }
}

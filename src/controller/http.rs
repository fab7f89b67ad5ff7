//! The watcher's HTTP endpoints (`axum`): `/healthz`, `/readyz`, `/api/v1/apps[/NAME]`,
//! `POST /api/v1/apps/NAME/sync`, `POST /hooks/git` (GitHub and GitLab push payloads) and
//! `/metrics`. One router, built by [`router`], so tests drive it without a socket.
//!
//! Handlers stay thin: they read the shared snapshot the loop publishes or send it a
//! [`Command`]; they never touch the target.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::mpsc::UnboundedSender;

use super::metrics::Metrics;
use super::status::AppStatus;
use crate::plan::PlannedAction;

/// What the HTTP side asks of the loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Sync this application now, whatever its policy.
    Sync(String),
    /// Read the source again now (a push was announced); the text says who asked.
    Refresh(String),
}

/// What the loop shares with the HTTP side.
#[derive(Debug)]
pub struct Shared {
    /// The statuses, published by the loop after each cycle.
    pub apps: RwLock<Vec<AppStatus>>,
    /// True once the first sync of every application has been attempted.
    pub ready: AtomicBool,
    /// The metric families.
    pub metrics: Metrics,
    /// Where commands go.
    pub commands: UnboundedSender<Command>,
    /// The webhook secret (GitHub HMAC key, GitLab token); `None`: payloads are not checked.
    pub webhook_secret: Option<String>,
    /// The ref the watcher follows (`None`: a plain directory).
    pub reference: Option<String>,
    /// The changes of each application's last comparison (the UI shows their masked diffs).
    pub plans: RwLock<BTreeMap<String, Vec<PlannedAction>>>,
}

/// The router of the watcher's endpoints.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/api/v1/apps", get(apps))
        .route("/api/v1/apps/{name}", get(app))
        .route("/api/v1/apps/{name}/sync", post(sync))
        .route("/hooks/git", post(hook))
        .route("/metrics", get(metrics))
        .with_state(shared)
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({"error": message.into()}))).into_response()
}

async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    if shared.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the first sync of every application has not been attempted yet\n",
        )
            .into_response()
    }
}

fn snapshot(shared: &Shared) -> Vec<AppStatus> {
    shared.apps.read().map(|a| a.clone()).unwrap_or_default()
}

async fn apps(State(shared): State<Arc<Shared>>) -> Response {
    axum::Json(snapshot(&shared)).into_response()
}

async fn app(State(shared): State<Arc<Shared>>, Path(name): Path<String>) -> Response {
    match snapshot(&shared).into_iter().find(|a| a.name == name) {
        Some(status) => axum::Json(status).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            format!("no application {name:?} is watched"),
        ),
    }
}

async fn sync(State(shared): State<Arc<Shared>>, Path(name): Path<String>) -> Response {
    if !snapshot(&shared).iter().any(|a| a.name == name) {
        return error(
            StatusCode::NOT_FOUND,
            format!("no application {name:?} is watched"),
        );
    }
    if shared.commands.send(Command::Sync(name.clone())).is_err() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "the watcher is stopping");
    }
    (
        StatusCode::ACCEPTED,
        axum::Json(json!({"syncRequested": name})),
    )
        .into_response()
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        shared.metrics.encode(),
    )
        .into_response()
}

async fn hook(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    match push_event(
        shared.webhook_secret.as_deref(),
        &headers,
        &body,
        shared.reference.as_deref(),
    ) {
        Err((status, message)) => error(status, message),
        Ok(Hook::Ignored(why)) => {
            (StatusCode::OK, axum::Json(json!({"ignored": why}))).into_response()
        }
        Ok(Hook::Push(what)) => {
            if shared
                .commands
                .send(Command::Refresh(what.clone()))
                .is_err()
            {
                return error(StatusCode::SERVICE_UNAVAILABLE, "the watcher is stopping");
            }
            (StatusCode::ACCEPTED, axum::Json(json!({"refresh": what}))).into_response()
        }
    }
}

/// What a webhook delivery means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hook {
    /// A push to the ref followed: refresh now.
    Push(String),
    /// Nothing to do, and why (another ref, a ping, another event).
    Ignored(String),
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Byte comparison whose time does not depend on where the inputs differ.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Checks and reads a webhook delivery: GitHub (`X-Hub-Signature-256`, an HMAC-SHA256 of the
/// body) or GitLab (`X-Gitlab-Token`). With a secret, an unsigned or mis-signed delivery is
/// refused (401); the payload's `ref` is matched against the ref followed.
pub fn push_event(
    secret: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
    followed: Option<&str>,
) -> Result<Hook, (StatusCode, String)> {
    let unauthorized = |m: &str| (StatusCode::UNAUTHORIZED, m.to_string());
    if let Some(secret) = secret {
        if let Some(signature) = header_text(headers, "x-hub-signature-256") {
            let hex_part = signature
                .strip_prefix("sha256=")
                .ok_or_else(|| unauthorized("X-Hub-Signature-256 is not sha256=<hex>"))?;
            let expected = hex::decode(hex_part)
                .map_err(|_| unauthorized("X-Hub-Signature-256 is not hex"))?;
            let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
                .map_err(|_| unauthorized("unusable webhook secret"))?;
            mac.update(body);
            mac.verify_slice(&expected)
                .map_err(|_| unauthorized("signature does not match the webhook secret"))?;
        } else if let Some(token) = header_text(headers, "x-gitlab-token") {
            if !same_bytes(token.as_bytes(), secret.as_bytes()) {
                return Err(unauthorized(
                    "X-Gitlab-Token does not match the webhook secret",
                ));
            }
        } else {
            return Err(unauthorized(
                "no X-Hub-Signature-256 or X-Gitlab-Token header, and a webhook secret is set",
            ));
        }
    }
    let event = header_text(headers, "x-github-event")
        .or_else(|| header_text(headers, "x-gitlab-event"))
        .unwrap_or("push");
    if event == "ping" {
        return Ok(Hook::Ignored("ping".to_string()));
    }
    let payload: Value = serde_json::from_slice(body).map_err(|e| {
        (
            StatusCode::BAD_REQUEST,
            format!("the payload is not JSON: {e}"),
        )
    })?;
    let Some(pushed) = payload.get("ref").and_then(Value::as_str) else {
        return Ok(Hook::Ignored(format!("{event} event without a ref")));
    };
    if !event.eq_ignore_ascii_case("push") && !event.eq_ignore_ascii_case("push hook") {
        return Ok(Hook::Ignored(format!("{event} event")));
    }
    let matches = match followed {
        None | Some("HEAD") => true,
        Some(followed) => {
            pushed == followed
                || pushed.strip_prefix("refs/heads/") == Some(followed)
                || pushed.strip_prefix("refs/tags/") == Some(followed)
        }
    };
    let sha = payload
        .get("after")
        .or_else(|| payload.get("checkout_sha"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    if matches {
        Ok(Hook::Push(
            format!("push to {pushed} {sha}").trim().to_string(),
        ))
    } else {
        Ok(Hook::Ignored(format!(
            "push to {pushed}, not to the ref followed ({})",
            followed.unwrap_or("HEAD")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    fn shared(
        secret: Option<&str>,
    ) -> (Arc<Shared>, tokio::sync::mpsc::UnboundedReceiver<Command>) {
        let (commands, receiver) = tokio::sync::mpsc::unbounded_channel();
        let shared = Shared {
            apps: RwLock::new(vec![AppStatus {
                name: "web".into(),
                ..AppStatus::default()
            }]),
            ready: AtomicBool::new(false),
            metrics: Metrics::new(),
            commands,
            webhook_secret: secret.map(str::to_string),
            reference: Some("main".into()),
            plans: RwLock::default(),
        };
        (Arc::new(shared), receiver)
    }

    async fn call(shared: &Arc<Shared>, request: Request<Body>) -> (StatusCode, String) {
        let response = router(shared.clone()).oneshot(request).await;
        let Ok(response) = response;
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap_or_default();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    fn get_request(uri: &str) -> Request<Body> {
        Request::get(uri).body(Body::empty()).unwrap_or_default()
    }

    fn signed(secret: &str, body: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
        mac.update(body.as_bytes());
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }

    #[tokio::test]
    async fn health_readiness_and_apps() {
        let (shared, _rx) = shared(None);
        assert_eq!(
            call(&shared, get_request("/healthz")).await.0,
            StatusCode::OK
        );
        assert_eq!(
            call(&shared, get_request("/readyz")).await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        shared.ready.store(true, Ordering::Relaxed);
        assert_eq!(
            call(&shared, get_request("/readyz")).await.0,
            StatusCode::OK
        );
        let (status, body) = call(&shared, get_request("/api/v1/apps")).await;
        assert_eq!(status, StatusCode::OK);
        let apps: Vec<AppStatus> = serde_json::from_str(&body).unwrap_or_default();
        assert_eq!(apps.len(), 1);
        assert_eq!(
            call(&shared, get_request("/api/v1/apps/nope")).await.0,
            StatusCode::NOT_FOUND
        );
    }

    #[tokio::test]
    async fn a_sync_request_reaches_the_loop() {
        let (shared, mut rx) = shared(None);
        let request = Request::post("/api/v1/apps/web/sync")
            .body(Body::empty())
            .unwrap_or_default();
        assert_eq!(call(&shared, request).await.0, StatusCode::ACCEPTED);
        assert_eq!(rx.try_recv().ok(), Some(Command::Sync("web".into())));
    }

    #[tokio::test]
    async fn webhooks_are_checked_and_matched_to_the_ref() {
        let (shared, mut rx) = shared(Some("s3cret"));
        let body = r#"{"ref":"refs/heads/main","after":"abc123"}"#;
        let push = |signature: &str, body: &str| {
            Request::post("/hooks/git")
                .header("x-github-event", "push")
                .header("x-hub-signature-256", signature)
                .body(Body::from(body.to_string()))
                .unwrap_or_default()
        };
        let (status, text) = call(&shared, push("sha256=00", body)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{text}");
        assert!(!text.contains("s3cret"));
        assert!(rx.try_recv().is_err(), "a refused delivery changes nothing");
        let (status, _) = call(&shared, push(&signed("s3cret", body), body)).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        assert!(matches!(rx.try_recv(), Ok(Command::Refresh(w)) if w.contains("abc123")));
        let other = r#"{"ref":"refs/heads/dev","after":"abc"}"#;
        let (status, text) = call(&shared, push(&signed("s3cret", other), other)).await;
        assert_eq!(status, StatusCode::OK);
        assert!(text.contains("ignored"), "{text}");
        // GitLab: the token header.
        let gitlab = Request::post("/hooks/git")
            .header("x-gitlab-event", "Push Hook")
            .header("x-gitlab-token", "s3cret")
            .body(Body::from(
                r#"{"object_kind":"push","ref":"refs/heads/main","checkout_sha":"def"}"#,
            ))
            .unwrap_or_default();
        assert_eq!(call(&shared, gitlab).await.0, StatusCode::ACCEPTED);
        let unsigned = Request::post("/hooks/git")
            .body(Body::from(body))
            .unwrap_or_default();
        assert_eq!(call(&shared, unsigned).await.0, StatusCode::UNAUTHORIZED);
        let (shared, _rx) = self::shared(None);
        let bad = Request::post("/hooks/git")
            .body(Body::from("{not json"))
            .unwrap_or_default();
        assert_eq!(call(&shared, bad).await.0, StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn metrics_are_openmetrics_text() {
        let (shared, _rx) = shared(None);
        shared.metrics.sync("web", true, 0.1, 1.0);
        let (status, text) = call(&shared, get_request("/metrics")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(text.contains("reconcile_sync_total{app=\"web\",result=\"Succeeded\"} 1"));
        assert!(text.ends_with("# EOF\n"));
    }
}

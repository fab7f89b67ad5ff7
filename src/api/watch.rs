//! WATCH: a stream of `{"type": …, "object": …}` lines for one kind, from the journal.
//!
//! resourceVersion semantics as the API server's watch cache: none or `"0"` starts with an
//! ADDED event per existing object, then changes; `N` resumes after version N (an ERROR
//! event with 410 Gone when N is older than the journal keeps); bookmarks when asked
//! (`allowWatchBookmarks`), and the `k8s.io/initial-events-end` bookmark after the initial
//! events when `sendInitialEvents=true`.
//!
//! Events are not stored objects but the engine's event log: [`watch_events`] re-reads the
//! log after every write (and once a second, for other processes' writes) and sends new
//! events as ADDED, recounted ones as MODIFIED.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::response::Response;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use super::journal::Change;
use super::objects::Scope;
use super::request::ListOptions;
use super::status::ApiError;
use super::table;
use super::worker::Worker;
use crate::engine::doc;

/// How often an idle watch that allows bookmarks gets one.
const BOOKMARK_EVERY: Duration = Duration::from_secs(5);

/// A watch that ends after this long unless the client asked for less (the API server
/// picks 30–60 minutes; clients re-watch from their last version).
const LONGEST: Duration = Duration::from_secs(1800);

/// One line of a watch, serialized without copying the object.
#[derive(serde::Serialize)]
struct WatchEvent<'a, T: serde::Serialize> {
    #[serde(rename = "type")]
    kind: &'a str,
    object: &'a T,
}

struct Filter {
    scope: Scope,
    options: ListOptions,
    as_table: bool,
}

impl Filter {
    fn wants(&self, kind: &str, object: &Value) -> bool {
        kind == self.scope.info.key
            && self
                .scope
                .namespace
                .as_deref()
                .is_none_or(|ns| doc::namespace(object) == ns)
            && self.options.matches(object)
    }

    fn line(&self, word: &str, object: &Value, now: i64) -> Bytes {
        let mut text = if self.as_table {
            let rv = doc::str_at(object, &["metadata", "resourceVersion"]).to_string();
            let table = table::table(
                self.scope.info,
                &[object],
                now,
                json!({"resourceVersion": rv}),
            );
            serde_json::to_vec(&WatchEvent {
                kind: word,
                object: &table,
            })
        } else {
            let viewed = self.scope.view(object.clone());
            serde_json::to_vec(&WatchEvent {
                kind: word,
                object: &viewed,
            })
        }
        .unwrap_or_default();
        text.push(b'\n');
        Bytes::from(text)
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Bytes {
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let object = json!({
            "kind": self.scope.info.kind,
            "apiVersion": self.scope.api_version(),
            "metadata": meta,
        });
        let mut text =
            serde_json::to_vec(&json!({"type": "BOOKMARK", "object": object})).unwrap_or_default();
        text.push(b'\n');
        Bytes::from(text)
    }
}

fn error_line(err: &ApiError) -> Bytes {
    let mut text =
        serde_json::to_vec(&json!({"type": "ERROR", "object": err.status()})).unwrap_or_default();
    text.push(b'\n');
    Bytes::from(text)
}

/// Starts a watch and returns the streaming response.
pub async fn watch(
    worker: &Worker,
    scope: Scope,
    options: ListOptions,
    as_table: bool,
) -> Result<Response, ApiError> {
    let journal = worker.journal().clone();
    let requested = options
        .resource_version
        .as_deref()
        .filter(|v| !v.is_empty() && *v != "0")
        .map(|v| {
            v.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {v}")))
        })
        .transpose()?;
    let filter = Filter {
        scope,
        options,
        as_table,
    };
    let (initial, since): (Vec<Value>, u64) = match requested {
        Some(rv) if !filter.options.send_initial_events => (Vec::new(), rv),
        _ => {
            let scope = filter.scope.clone();
            let opts = filter.options.clone();
            worker
                .call(move |engine| -> Result<(Vec<Value>, u64), ApiError> {
                    let state = engine.fresh_state()?;
                    let objects = state
                        .kind(scope.info.key)
                        .values()
                        .map(|s| &s.doc)
                        .filter(|d| {
                            scope
                                .namespace
                                .as_deref()
                                .is_none_or(|ns| doc::namespace(d) == ns)
                                && opts.matches(d)
                        })
                        .cloned()
                        .collect();
                    Ok((objects, state.rv))
                })
                .await??
        }
    };
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(256);
    let timeout = filter
        .options
        .timeout_seconds
        .map(Duration::from_secs)
        .unwrap_or(LONGEST)
        .min(LONGEST);
    let followed = journal.follow(since);
    tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + timeout;
        let (mut receiver, replay) = match followed {
            Ok(pair) => pair,
            Err(gone) => {
                let _ = tx.send(Ok(error_line(&gone))).await;
                return;
            }
        };
        let now = journal.now();
        for object in &initial {
            if tx
                .send(Ok(filter.line("ADDED", object, now)))
                .await
                .is_err()
            {
                return;
            }
        }
        if filter.options.send_initial_events
            && filter.options.bookmarks
            && tx.send(Ok(filter.bookmark(since, true))).await.is_err()
        {
            return;
        }
        // The newest version sent or passed over, for bookmarks. Replay and live changes
        // never overlap (both are taken under the journal's lock), so only what the client
        // already has (up to `since`) is left out: several changes may share a version when
        // deletions were found by comparison, and each of them must still go out.
        let mut last = since;
        let send = |change: &Arc<Change>, last: &mut u64| -> Option<Bytes> {
            if change.rv <= since {
                return None;
            }
            *last = (*last).max(change.rv);
            filter
                .wants(change.kind, &change.object)
                .then(|| filter.line(change.event.word(), &change.object, journal.now()))
        };
        for change in &replay {
            if let Some(line) = send(change, &mut last)
                && tx.send(Ok(line)).await.is_err()
            {
                return;
            }
        }
        let mut ticker = tokio::time::interval(BOOKMARK_EVERY);
        ticker.tick().await;
        loop {
            tokio::select! {
                got = receiver.recv() => match got {
                    Ok(change) => {
                        if let Some(line) = send(&change, &mut last)
                            && tx.send(Ok(line)).await.is_err()
                        {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let _ = tx.send(Ok(error_line(&ApiError::gone(last, journal.current())))).await;
                        return;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = ticker.tick() => {
                    if filter.options.bookmarks
                        && tx.send(Ok(filter.bookmark(last, false))).await.is_err()
                    {
                        return;
                    }
                }
                _ = tokio::time::sleep_until(deadline) => return,
                _ = tx.closed() => return,
            }
        }
    });
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(Body::from_stream(ReceiverStream::new(rx)))
        .map_err(|e| ApiError::new(500, "InternalError", e.to_string()))
}

/// How often an events watch re-reads the log when nothing was written through this server.
const EVENTS_EVERY: Duration = Duration::from_secs(1);

/// Watches `core/v1` Events (`kubectl get events -w`). Without a resourceVersion (or `0`) the
/// existing events come first as ADDED; with one, only what happens after the watch starts.
pub async fn watch_events(
    worker: &Worker,
    namespace: Option<String>,
    options: ListOptions,
    as_table: bool,
) -> Result<Response, ApiError> {
    let journal = worker.journal().clone();
    let worker = worker.clone();
    let replay_existing = options
        .resource_version
        .as_deref()
        .is_none_or(|v| v.is_empty() || v == "0");
    let read = {
        let worker = worker.clone();
        let namespace = namespace.clone();
        let options = options.clone();
        move || {
            let namespace = namespace.clone();
            let options = options.clone();
            let worker = worker.clone();
            async move {
                worker
                    .call(move |e| super::objects::event_objects(e, namespace.as_deref(), &options))
                    .await
            }
        }
    };
    let (first, _) = read().await??;
    let (mut receiver, _) = journal.follow(journal.current())?;
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(256);
    let timeout = options
        .timeout_seconds
        .map(Duration::from_secs)
        .unwrap_or(LONGEST)
        .min(LONGEST);
    let line = move |word: &str, event: &Value, now: i64| {
        let object = if as_table {
            table::events_table(&[event], now, json!({}))
        } else {
            event.clone()
        };
        let mut text =
            serde_json::to_vec(&json!({"type": word, "object": object})).unwrap_or_default();
        text.push(b'\n');
        Bytes::from(text)
    };
    // An event is identified by its name; its count and last time say it recurred.
    let fingerprint = |e: &Value| {
        (
            doc::str_at(e, &["metadata", "namespace"]).to_string() + "/" + doc::name(e),
            (
                e["count"].as_i64().unwrap_or(0),
                e["lastTimestamp"].to_string(),
            ),
        )
    };
    let mut seen: std::collections::HashMap<String, (i64, String)> =
        first.iter().map(fingerprint).collect();
    tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + timeout;
        if replay_existing {
            for event in &first {
                if tx
                    .send(Ok(line("ADDED", event, journal.now())))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
        let mut ticker = tokio::time::interval(EVENTS_EVERY);
        ticker.tick().await;
        loop {
            tokio::select! {
                got = receiver.recv() => {
                    if matches!(got, Err(broadcast::error::RecvError::Closed)) {
                        return;
                    }
                }
                _ = ticker.tick() => {}
                _ = tokio::time::sleep_until(deadline) => return,
                _ = tx.closed() => return,
            }
            let Ok(Ok((events, _))) = read().await else {
                return;
            };
            for event in &events {
                let (key, print) = fingerprint(event);
                let word = match seen.get(&key) {
                    None => "ADDED",
                    Some(known) if *known != print => "MODIFIED",
                    Some(_) => continue,
                };
                seen.insert(key, print);
                if tx.send(Ok(line(word, event, journal.now()))).await.is_err() {
                    return;
                }
            }
        }
    });
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(Body::from_stream(ReceiverStream::new(rx)))
        .map_err(|e| ApiError::new(500, "InternalError", e.to_string()))
}

//! The controller behind `reconcile watch`: keeps a target converged to a repository.
//!
//! Modelled on kube-runtime's `Controller`, in layers:
//! - [`decide`] is the pure reconcile decision (policy, comparison, memory, now → action,
//!   requeue), with Argo CD's `syncPolicy` rules;
//! - [`source`] reads a directory or a local git repository at a ref, finds the applications
//!   and records which files each render read;
//! - [`status`] is what is reported and persisted in the target beside the inventory;
//! - [`watch`] is the loop that owns time and IO (virtual clock following the wall clock,
//!   drift from other processes, polling, syncing through `crate::plan`, rollouts);
//! - [`http`] is the `axum` router (`/healthz`, `/readyz`, `/api/v1/apps`, `/hooks/git`,
//!   `/metrics`); [`metrics`] the Prometheus families; [`lock`] one watcher per target;
//! - [`once`] is one comparison or sync of one application outside the loop (the web UI
//!   served without a watcher).
//!
//! [`serve`] wires them on `tokio`. Invariant: nothing here prints; log lines go to the
//! caller's closure.

pub mod decide;
pub mod http;
pub mod lock;
pub mod metrics;
pub mod once;
pub mod source;
pub mod status;
pub mod watch;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use notify::Watcher;

use crate::cluster::Cluster;
use watch::{Controller, Log, Options};

/// Errors starting or running the watcher.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The loop failed.
    #[error(transparent)]
    Watch(#[from] watch::Error),
    /// The source cannot be opened.
    #[error(transparent)]
    Source(#[from] source::Error),
    /// Another watcher holds the target.
    #[error(transparent)]
    Lock(#[from] lock::Error),
    /// Beyond loopback without an access token.
    #[error(
        "--listen {addr} is reachable beyond this machine: give an access token (--token VALUE, --token-file FILE or RECONCILE_UI_TOKEN), which every request but /healthz and /readyz must then carry"
    )]
    NeedsToken {
        /// The address.
        addr: String,
    },
    /// The HTTP address cannot be used.
    #[error("--listen {addr}: {cause}")]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        cause: String,
    },
    /// The directory cannot be watched.
    #[error("watching {}: {cause}", path.display())]
    Notify {
        /// The directory.
        path: PathBuf,
        /// Why.
        cause: String,
    },
}

/// What `reconcile watch` was asked.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Repository: a remote URL, a local git repository or a plain directory.
    pub repo: String,
    /// How remotes are fetched (cache, timeout, credentials).
    pub git: crate::source::git::GitOptions,
    /// The ref to follow (git); `None`: `HEAD` of a repository, the files of a directory.
    pub reference: Option<String>,
    /// The loop's options.
    pub watch: Options,
    /// The HTTP address (`127.0.0.1:9090`; port 0 picks one).
    pub listen: String,
    /// The webhook secret.
    pub webhook_secret: Option<String>,
    /// The engine's state file (its watcher lock is a file beside it); `None`: the target
    /// keeps its own watcher lock (a Lease on Kubernetes).
    pub state: Option<PathBuf>,
    /// The access token every HTTP request must carry (but `/healthz`, `/readyz`, and
    /// `/hooks/git` when a webhook secret checks it); `None`: loopback only.
    pub token: Option<String>,
}

/// Runs the watcher on `cluster` until SIGTERM or SIGINT: the current step finishes, then it
/// returns. `ui` is the web UI's own handle on the target (or why there is none); `started`
/// is told the bound address once the HTTP side listens.
pub async fn serve(
    options: ServeOptions,
    mut cluster: Box<dyn Cluster + Send>,
    ui: Result<crate::ui::Handle, String>,
    mut log: Log,
    started: impl FnOnce(SocketAddr),
) -> Result<(), Error> {
    let target = cluster.target_name();
    let source = source::Source::open(&options.repo, options.reference.as_deref(), &options.git)?;
    let listener = tokio::net::TcpListener::bind(&options.listen)
        .await
        .map_err(|e| Error::Listen {
            addr: options.listen.clone(),
            cause: e.to_string(),
        })?;
    let addr = listener.local_addr().map_err(|e| Error::Listen {
        addr: options.listen.clone(),
        cause: e.to_string(),
    })?;
    // Refused before the target is locked or touched.
    if !crate::ui::is_loopback(&addr) && options.token.is_none() {
        return Err(Error::NeedsToken {
            addr: options.listen.clone(),
        });
    }
    let holder = lock::Holder {
        pid: std::process::id(),
        since: crate::rollout::time::rfc3339(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
        ),
        listen: addr.to_string(),
    };
    let _lock = lock::acquire(&mut *cluster, options.state.as_deref(), &holder)?;
    let mut options = options;
    options.watch.targets.holder = Some(holder);
    if options.webhook_secret.is_none() {
        log("webhook deliveries are not authenticated (no --webhook-secret-env)");
    }

    let (commands, command_rx) = tokio::sync::mpsc::unbounded_channel();
    let shared = Arc::new(http::Shared {
        apps: RwLock::new(Vec::new()),
        ready: AtomicBool::new(false),
        metrics: metrics::Metrics::new(),
        commands,
        webhook_secret: options.webhook_secret.clone(),
        reference: source
            .reference()
            .map(str::to_string)
            .filter(|r| r != "HEAD"),
        plans: RwLock::default(),
    });

    let stopping = Arc::new(AtomicBool::new(false));
    let stop_signal = Arc::new(tokio::sync::Notify::new());
    {
        let stopping = stopping.clone();
        let stop_signal = stop_signal.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            stopping.store(true, Ordering::Relaxed);
            stop_signal.notify_one();
        });
    }

    // A plain directory is watched for changes; a repository is polled for its ref.
    let (file_tx, file_rx) = tokio::sync::mpsc::unbounded_channel();
    let _watcher = match &source {
        source::Source::Dir { root } => {
            let tx = file_tx.clone();
            let mut watcher =
                notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                    if event.is_ok_and(|e| !e.kind.is_access()) {
                        let _ = tx.send(());
                    }
                })
                .map_err(|e| Error::Notify {
                    path: root.clone(),
                    cause: e.to_string(),
                })?;
            watcher
                .watch(root, notify::RecursiveMode::Recursive)
                .map_err(|e| Error::Notify {
                    path: root.clone(),
                    cause: e.to_string(),
                })?;
            Some(watcher)
        }
        source::Source::Git { .. } => None,
    };

    log(&format!(
        "watching {} ({}) for {target}; listening on http://{addr}",
        source.describe(),
        source.reference().unwrap_or("files on disk"),
    ));
    let server_stop = stop_signal.clone();
    let server_stopping = stopping.clone();
    let mut router = http::router(shared.clone());
    // The web UI at `/`, over a handle of its own on the target.
    match ui.and_then(|handle| {
        crate::ui::Ui::new(handle, Some(shared.clone()), None).map_err(|e| e.to_string())
    }) {
        Ok(ui) => {
            log(&format!("web UI on http://{addr}/"));
            router = router.merge(crate::ui::router(ui));
        }
        Err(e) => log(&format!("web UI off: {e}")),
    }
    // One token for everything the listener serves but the probes (and a webhook that its
    // secret authenticates: GitHub cannot send a bearer token).
    if let Some(token) = &options.token {
        let mut open = vec!["/healthz".to_string(), "/readyz".to_string()];
        if options.webhook_secret.is_some() {
            open.push("/hooks/git".to_string());
        }
        router = crate::ui::gated(router, token.clone(), open);
    }
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                while !server_stopping.load(Ordering::Relaxed) {
                    tokio::select! {
                        _ = server_stop.notified() => {}
                        _ = tokio::time::sleep(std::time::Duration::from_millis(200)) => {}
                    }
                }
            })
            .await;
    });
    started(addr);

    let controller = Controller::new(
        source,
        cluster,
        options.watch.clone(),
        shared,
        log,
        stopping.clone(),
    )?;
    let result = watch::run(
        controller,
        command_rx,
        file_rx,
        stopping.clone(),
        stop_signal,
    )
    .await;
    stopping.store(true, Ordering::Relaxed);
    let _ = server.await;
    result.map_err(Error::from)
}

#[cfg(unix)]
pub(crate) async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(not(unix))]
pub(crate) async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}

/// Whether a sync succeeded, and the line its history records: `REASON: 2 created, 1
/// updated, 0 deleted`, or `REASON: ` and why it failed.
fn sync_outcome<E: std::fmt::Display>(
    reason: &str,
    outcome: &Result<crate::plan::ApplyReport, E>,
) -> (bool, String) {
    use crate::diff::Change;
    match outcome {
        Ok(report) if report.succeeded() => {
            let count = |c: Change| report.done.iter().filter(|(_, d)| *d == c).count();
            (
                true,
                format!(
                    "{reason}: {} created, {} updated, {} deleted",
                    count(Change::Create),
                    count(Change::Update),
                    count(Change::Delete)
                ),
            )
        }
        Ok(report) => (
            false,
            format!(
                "{reason}: {}",
                report
                    .failure
                    .clone()
                    .unwrap_or_else(|| "not healthy".into())
            ),
        ),
        Err(e) => (false, format!("{reason}: {e}")),
    }
}

//! `watch`, `status` and `sync`: start the controller, show applications' statuses from the
//! target, ask a running watcher to sync.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};

use super::EXIT_OK;
use super::target::{self, Access, Target, repo_root};
use crate::cluster::Cluster;
use crate::controller::decide::short;
use crate::controller::status::{self, AppStatus};
use crate::controller::{self, ServeOptions, lock, watch};
use crate::engine::Engine;

/// `reconcile watch` arguments.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// The repository: a remote URL (https, ssh, git, file; fetched once per interval into
    /// the git cache), a local git repository (its ref is followed) or a plain directory (its
    /// files are watched). Default: the repository holding the current directory.
    #[arg(long)]
    pub repo: Option<String>,
    /// The ref to follow in a git repository (branch, tag, SHA). Default: HEAD.
    #[arg(long = "ref")]
    pub reference: Option<String>,
    /// Limit for each network operation on a remote repository (`60s`, `2m`).
    #[arg(long, default_value = "60s")]
    pub git_timeout: String,
    /// How often the ref is read (`30s`, `1m`).
    #[arg(long, default_value = "1m")]
    pub interval: String,
    /// HTTP address of /healthz, /readyz, /api/v1/apps, /hooks/git and /metrics (port 0:
    /// any free port).
    #[arg(long, default_value = "127.0.0.1:9090")]
    pub listen: String,
    /// Where to apply: `engine` (default: `.reconcile/engine.db` of the repository),
    /// `engine:PATH`, `kube` (the kubeconfig's current context) or `kube:CONTEXT`.
    #[arg(long)]
    pub target: Option<String>,
    /// Engine only: virtual seconds per wall second (10: a 30s canary pause takes 3s); a
    /// Kubernetes cluster keeps its own time.
    #[arg(long, default_value = "1")]
    pub speed: f64,
    /// Name of the environment variable holding the webhook secret (GitHub HMAC key or
    /// GitLab token); never passed on the command line, so it stays out of `ps`.
    #[arg(long, value_name = "VAR")]
    pub webhook_secret_env: Option<String>,
    /// The access token of everything the listener serves but /healthz and /readyz (the UI,
    /// the API, /metrics, and /hooks/git unless --webhook-secret-env checks it). Without one
    /// only a loopback --listen is accepted.
    #[command(flatten)]
    pub token: super::ui::TokenArgs,
}

/// Output formats of `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatusFormat {
    /// A table, or details of one application.
    Text,
    /// The `/api/v1/apps` JSON (`reconcile schema apps`).
    Json,
}

/// `reconcile status` arguments.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// One application (details and its last syncs); all when absent.
    pub app: Option<String>,
    /// Where the statuses are: `engine` (default), `engine:PATH`, `kube`, `kube:CONTEXT`.
    #[arg(long)]
    pub target: Option<String>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "text")]
    pub output: StatusFormat,
}

/// `reconcile sync` arguments.
#[derive(Debug, Args)]
pub struct SyncArgs {
    /// The application.
    pub app: String,
    /// The target the watcher runs on: `engine` (default), `engine:PATH`, `kube`,
    /// `kube:CONTEXT`.
    #[arg(long)]
    pub target: Option<String>,
    /// The watcher's access token, when it has one.
    #[command(flatten)]
    pub token: super::ui::TokenArgs,
}

fn wall_now() -> String {
    crate::rollout::time::rfc3339(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0),
    )
}

/// Opens the targets applications name in their `target:` for the watcher.
struct Connector {
    /// Where a relative `engine:PATH` starts.
    base_dir: PathBuf,
}

impl watch::Connector for Connector {
    fn open(&self, text: &str) -> Result<(Box<dyn Cluster + Send>, Option<PathBuf>), String> {
        if let Some(path) = text.strip_prefix("engine:").filter(|p| !p.is_empty()) {
            let path = self.base_dir.join(path);
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)
                    .map_err(|e| format!("target {text}: creating {}: {e}", parent.display()))?;
            }
            let engine = Engine::open(&path).map_err(|e| format!("target {text}: {e}"))?;
            return Ok((Box::new(engine), Some(path)));
        }
        let context = match text.strip_prefix("kube") {
            Some("") => None,
            Some(rest) if rest.len() > 1 && rest.starts_with(':') => Some(rest[1..].to_string()),
            _ => {
                return Err(format!(
                    "target: unknown target {text:?} (expected engine, engine:PATH, kube or kube:CONTEXT)"
                ));
            }
        };
        let options = crate::k8s::Options {
            context,
            force_conflicts: true,
        };
        let cluster = crate::k8s::connect(&options).map_err(|e| format!("target {text}: {e}"))?;
        Ok((Box::new(cluster), None))
    }
}

/// The cluster a watcher runs on, the engine state file its watcher lock lies beside
/// (`None` on Kubernetes, which keeps a Lease), and the web UI's own handle on it. A target
/// already watched is refused before anything is opened for writing: a refused watcher
/// touches nothing (the lock itself is taken by `controller::serve`).
type Opened = (
    Box<dyn Cluster + Send>,
    Option<PathBuf>,
    Result<crate::ui::Handle, String>,
);

fn open_watched(target: Option<&str>, repo: &Path) -> anyhow::Result<Opened> {
    match target::locate(target, None)? {
        Target::Engine(located) => {
            // `engine` means the repository's own `.reconcile/engine.db` (or
            // RECONCILE_ENGINE_STATE).
            let state = if located.explicit {
                located.path
            } else {
                repo_root(repo).join(".reconcile").join("engine.db")
            };
            if let Some(parent) = state.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("creating {}", parent.display()))?;
            }
            let target_name = format!("engine:{}", state.display());
            if let Ok(holder) = lock::holder(&state, &target_name) {
                return Err(lock::Error::Held {
                    target: target_name,
                    holder: holder.to_string(),
                }
                .into());
            }
            let engine = Engine::open(&state)
                .with_context(|| format!("opening the engine state {}", state.display()))?;
            let ui = Engine::open_existing(&state)
                .map(crate::ui::Handle::Engine)
                .map_err(|e| e.to_string());
            Ok((Box::new(engine), Some(state), ui))
        }
        located @ Target::Kube { .. } => {
            // Self-heal takes back a declared field whoever changed it (as Flux's
            // kustomize-controller forces its server-side applies).
            let cluster = target::connect(&located, Access::Write, true)?;
            if let Ok(holder) = lock::holder_of(&*cluster, None) {
                return Err(lock::Error::Held {
                    target: cluster.target_name(),
                    holder: holder.to_string(),
                }
                .into());
            }
            let ui = target::connect(&located, Access::Read, false)
                .map(crate::ui::Handle::Cluster)
                .map_err(|e| format!("{e:#}"));
            Ok((cluster, None, ui))
        }
    }
}

/// `reconcile watch`.
pub fn watch(args: WatchArgs) -> anyhow::Result<i32> {
    let token = super::ui::token(&args.token)?;
    super::ui::check_listen(&args.listen, token.as_deref())?;
    let interval = crate::rollout::time::parse_duration(&args.interval)
        .map_err(|e| anyhow::anyhow!("--interval: {e}"))?;
    if interval < Duration::from_millis(100) {
        bail!(
            "--interval: {} is too short (at least 100ms)",
            args.interval
        );
    }
    if !(args.speed.is_finite() && args.speed > 0.0 && args.speed <= 10_000.0) {
        bail!(
            "--speed: {} is not a number between 0 and 10000",
            args.speed
        );
    }
    let here = std::env::current_dir().context("reading the current directory")?;
    let git_timeout = crate::rollout::time::parse_duration(&args.git_timeout)
        .map_err(|e| anyhow::anyhow!("--git-timeout: {e}"))?;
    if git_timeout.is_zero() {
        bail!("--git-timeout: must be more than zero");
    }
    // A remote URL is read from its mirror; the default engine state then belongs to the
    // repository holding the current directory (or the directory itself).
    let (repo, repo_text) = match &args.repo {
        Some(url) if crate::source::git::is_url(url) && !Path::new(url).exists() => {
            (repo_root(&here), url.clone())
        }
        Some(dir) => {
            let dir = here.join(dir);
            if !dir.is_dir() {
                bail!("--repo {}: not a directory", dir.display());
            }
            let text = dir.display().to_string();
            (dir, text)
        }
        None => {
            let dir = repo_root(&here);
            let text = dir.display().to_string();
            (dir, text)
        }
    };
    let webhook_secret = match &args.webhook_secret_env {
        Some(var) => Some(
            std::env::var(var)
                .ok()
                .filter(|v| !v.is_empty())
                .with_context(|| format!("--webhook-secret-env: ${var} is not set"))?,
        ),
        None => None,
    };
    let (cluster, state, ui) = open_watched(args.target.as_deref(), &repo)?;
    let options = ServeOptions {
        repo: repo_text,
        git: super::source::git_options(git_timeout),
        reference: args.reference.clone(),
        watch: watch::Options {
            interval,
            speed: args.speed,
            holder: format!("reconcile watch (pid {})", std::process::id()),
            targets: watch::Targets {
                forced: args.target.is_some()
                    || std::env::var(target::TARGET_VAR).is_ok_and(|v| !v.is_empty()),
                base_dir: here.clone(),
                holder: None,
                connector: Some(std::sync::Arc::new(Connector {
                    base_dir: here.clone(),
                })),
            },
        },
        listen: args.listen.clone(),
        webhook_secret,
        state,
        token,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let log = Box::new(|line: &str| println!("{} {line}", wall_now()));
    runtime.block_on(controller::serve(options, cluster, ui, log, |_| {}))?;
    println!("{} stopped", wall_now());
    Ok(EXIT_OK)
}

/// `reconcile status`.
pub fn status(args: StatusArgs) -> anyhow::Result<i32> {
    let located = target::locate(args.target.as_deref(), None)?;
    let cluster = target::connect(&located, Access::Read, false)?;
    let target = match located.state() {
        Some(state) => format!("engine:{}", state.path.display()),
        None => cluster.target_name(),
    };
    let all =
        status::load_all(&*cluster).with_context(|| format!("reading statuses from {target}"))?;
    if let Some(name) = &args.app {
        let Some(one) = all.iter().find(|s| &s.name == name) else {
            bail!("no status of application {name:?} in {target} (`reconcile watch` records it)");
        };
        match args.output {
            StatusFormat::Json => println!("{}", serde_json::to_string_pretty(one)?),
            StatusFormat::Text => print!("{}", details(one)),
        }
        return Ok(EXIT_OK);
    }
    match args.output {
        StatusFormat::Json => println!("{}", serde_json::to_string_pretty(&all)?),
        StatusFormat::Text if all.is_empty() => {
            println!("No application status in {target}; `reconcile watch` records them.")
        }
        StatusFormat::Text => print!("{}", table(&all)),
    }
    Ok(EXIT_OK)
}

fn revision_text(status: &AppStatus) -> String {
    let r = &status.revision;
    match (&r.reference, &r.sha, &r.digest) {
        (Some(reference), Some(sha), _) => format!("{reference}@{}", short(sha)),
        (None, Some(sha), _) => short(sha).to_string(),
        (_, None, Some(digest)) => format!("files {}", short(digest)),
        _ => "-".to_string(),
    }
}

fn health_text(status: &AppStatus) -> String {
    status
        .health
        .map(|h| h.to_string())
        .unwrap_or_else(|| "Unknown".into())
}

fn table(all: &[AppStatus]) -> String {
    let rows: Vec<[String; 6]> = all
        .iter()
        .map(|s| {
            [
                s.name.clone(),
                s.sync.to_string(),
                health_text(s),
                revision_text(s),
                s.last_synced_at.clone().unwrap_or_else(|| "-".into()),
                s.last_error
                    .clone()
                    .or_else(|| s.message.clone())
                    .unwrap_or_default()
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_string(),
            ]
        })
        .collect();
    let header = ["APP", "SYNC", "HEALTH", "REVISION", "LAST SYNC", "MESSAGE"];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[String]| {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<width$}   ", width = widths[i]));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&header.map(str::to_string));
    for row in &rows {
        line(row);
    }
    out
}

fn details(s: &AppStatus) -> String {
    let mut out = format!(
        "Application: {}\nPath:        {}\nTarget:      {}\nRevision:    {}\nSync:        {}\nHealth:      {}{}\n",
        s.name,
        s.path,
        s.target,
        revision_text(s),
        s.sync,
        health_text(s),
        if s.health_message.is_empty() {
            String::new()
        } else {
            format!(" ({})", s.health_message)
        }
    );
    if let Some(error) = &s.last_error {
        out.push_str(&format!("Last error:  {error}\n"));
    }
    if let Some(message) = &s.message {
        out.push_str(&format!("Message:     {message}\n"));
    }
    if s.history.is_empty() {
        out.push_str("Syncs:       none yet\n");
    } else {
        out.push_str("Syncs (newest first):\n");
        for record in &s.history {
            out.push_str(&format!(
                "  {}  {:<9}  {:>6}ms  {}  {}\n",
                record.started_at,
                record.result,
                record.duration_ms,
                short(&record.revision),
                record.message
            ));
        }
    }
    out
}

/// `reconcile sync APP`.
pub fn sync(args: SyncArgs) -> anyhow::Result<i32> {
    let located = target::locate(args.target.as_deref(), None)?;
    let holder = match &located {
        Target::Engine(state) => {
            lock::holder(&state.path, &format!("engine:{}", state.path.display()))?
        }
        Target::Kube { .. } => {
            let cluster = target::connect(&located, Access::Read, false)?;
            lock::holder_of(&*cluster, None)?
        }
    };
    let authorization = super::ui::token(&args.token)?
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "POST /api/v1/apps/{}/sync HTTP/1.1\r\nHost: {}\r\n{authorization}Content-Length: 0\r\nConnection: close\r\n\r\n",
        args.app, holder.listen
    );
    let (code, body) = http_call(&holder.listen, &request)
        .with_context(|| format!("asking {holder} to sync {}", args.app))?;
    match code {
        202 => {
            println!("Sync of {} requested from {holder}.", args.app);
            Ok(EXIT_OK)
        }
        _ => {
            let message = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
                .unwrap_or(body);
            bail!("{message}")
        }
    }
}

/// One HTTP/1.1 exchange on a fresh connection: status code and body.
fn http_call(addr: &str, request: &str) -> anyhow::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(request.as_bytes())?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let code = response
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("not an HTTP response")?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((code, body))
}

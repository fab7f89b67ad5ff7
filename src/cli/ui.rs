//! `reconcile ui`: the web UI for a target, without a watcher (statuses as `reconcile status`
//! reads them; the pending diff rendered from each application's recorded source; Sync goes
//! to the watcher running on the target, else applies here under the target's lock). Also
//! the access token options every HTTP listener shares.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;

use super::EXIT_OK;
use super::target::{self, Access};

/// The environment variable holding the UI's access token.
pub const TOKEN_VAR: &str = "RECONCILE_UI_TOKEN";

/// `reconcile ui` arguments.
#[derive(Debug, Args)]
pub struct UiArgs {
    /// The HTTP address (port 0: any free port). Beyond loopback an access token is required.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// The target: `engine` (default), `engine:PATH`, `kube`, `kube:CONTEXT`.
    #[arg(long)]
    pub target: Option<String>,
    /// Limit for each network operation when an application's source is a remote
    /// repository (`60s`, `2m`).
    #[arg(long, default_value = "60s")]
    pub git_timeout: String,
    /// The access token.
    #[command(flatten)]
    pub token: TokenArgs,
}

/// Where the access token of an HTTP listener comes from.
#[derive(Debug, Clone, Default, Args)]
pub struct TokenArgs {
    /// The access token every request must then carry (`Authorization: Bearer`, or open
    /// `/?token=…` once for a cookie). Visible in `ps`: prefer --token-file or
    /// RECONCILE_UI_TOKEN on shared machines.
    #[arg(long, value_name = "VALUE", conflicts_with = "token_file")]
    pub token: Option<String>,
    /// A file holding the access token (its first line).
    #[arg(long, value_name = "FILE", alias = "ui-token-file")]
    pub token_file: Option<PathBuf>,
}

/// The access token: `--token`, else the file's first line, else RECONCILE_UI_TOKEN; empty
/// is an error.
pub fn token(args: &TokenArgs) -> anyhow::Result<Option<String>> {
    if let Some(value) = &args.token {
        if value.trim().is_empty() {
            bail!("--token: the value is empty");
        }
        return Ok(Some(value.trim().to_string()));
    }
    if let Some(file) = &args.token_file {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("--token-file {}", file.display()))?;
        let token = text.lines().next().unwrap_or_default().trim().to_string();
        if token.is_empty() {
            bail!("--token-file {}: the file is empty", file.display());
        }
        return Ok(Some(token));
    }
    match std::env::var(TOKEN_VAR) {
        Ok(token) if token.trim().is_empty() => {
            bail!("{TOKEN_VAR} is set but empty; unset it or give a token")
        }
        Ok(token) => Ok(Some(token.trim().to_string())),
        Err(_) => Ok(None),
    }
}

/// Refuses, before anything is opened, an address reachable beyond this machine when no
/// token guards it (a name is resolved: every address it gives must be loopback).
pub fn check_listen(listen: &str, token: Option<&str>) -> anyhow::Result<()> {
    use std::net::ToSocketAddrs;
    if token.is_some() {
        return Ok(());
    }
    let addrs: Vec<std::net::SocketAddr> = listen
        .to_socket_addrs()
        .with_context(|| format!("--listen {listen}: not an address"))?
        .collect();
    if addrs.is_empty() || !addrs.iter().all(crate::ui::is_loopback) {
        return Err(crate::ui::Error::NeedsToken {
            addr: listen.to_string(),
        }
        .into());
    }
    Ok(())
}

/// `reconcile ui`.
pub fn ui(args: UiArgs) -> anyhow::Result<i32> {
    let token = token(&args.token)?;
    check_listen(&args.listen, token.as_deref())?;
    let git_timeout = crate::rollout::time::parse_duration(&args.git_timeout)
        .map_err(|e| anyhow::anyhow!("--git-timeout: {e}"))?;
    let located = target::locate(args.target.as_deref(), None)?;
    let (handle, target_name) = match &located {
        target::Target::Engine(state) => (
            crate::ui::Handle::Engine(target::open(state, Access::Read)?),
            format!("engine:{}", state.path.display()),
        ),
        target::Target::Kube { .. } => {
            let cluster = target::connect(&located, Access::Write, false)?;
            let name = cluster.target_name();
            (crate::ui::Handle::Cluster(cluster), name)
        }
    };
    let ui = crate::ui::Ui::new(handle, None, token)?
        .with_sources(super::source::git_options(git_timeout));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(crate::ui::serve(ui, &args.listen, |addr| {
        println!("reconcile ui for {target_name} on http://{addr}/");
    }))?;
    println!("stopped");
    Ok(EXIT_OK)
}

//! `reconcile ui`: the web UI for a target, without a watcher (statuses as `reconcile status`
//! reads them; Sync goes to the watcher running on the target, if any).

use std::path::{Path, PathBuf};

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
    /// The target: `engine` (default), `engine:PATH`.
    #[arg(long)]
    pub target: Option<String>,
    /// A file holding the access token (or set RECONCILE_UI_TOKEN); every request must then
    /// carry it (`Authorization: Bearer`, or open `/?token=…` once for a cookie). Not a flag
    /// value, so it stays out of `ps`.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
}

/// The access token: the file's first line, else RECONCILE_UI_TOKEN; empty is an error.
pub fn token(file: Option<&Path>) -> anyhow::Result<Option<String>> {
    if let Some(file) = file {
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

/// `reconcile ui`.
pub fn ui(args: UiArgs) -> anyhow::Result<i32> {
    let token = token(args.token_file.as_deref())?;
    let located = target::locate(args.target.as_deref(), None)?;
    let state = located.engine_state("`reconcile ui`")?;
    let engine = target::open(state, Access::Read)?;
    let ui = crate::ui::Ui::new(engine, None, token)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(crate::ui::serve(ui, &args.listen, |addr| {
        println!(
            "reconcile ui for engine:{} on http://{addr}/",
            state.path.display()
        );
    }))?;
    println!("stopped");
    Ok(EXIT_OK)
}

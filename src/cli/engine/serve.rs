//! `reconcile engine serve`: the engine behind the Kubernetes API on HTTPS, until Ctrl-C or
//! SIGTERM. Prints where it listens and where the kubeconfig is; never the token.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::api;
use crate::engine::Engine;

/// The command's options.
pub struct Options<'a> {
    pub state: &'a Path,
    pub listen: &'a str,
    pub kubeconfig_out: Option<&'a Path>,
    pub speed: f64,
    pub token_auth_file: Option<&'a Path>,
}

pub fn run(options: &Options<'_>) -> anyhow::Result<i32> {
    if !(options.speed.is_finite() && options.speed > 0.0) {
        bail!("--speed {}: must be a positive number", options.speed);
    }
    let listen: SocketAddr = options.listen.parse().with_context(|| {
        format!(
            "--listen {}: expected an address such as 127.0.0.1:6443",
            options.listen
        )
    })?;
    let state = options.state.to_path_buf();
    let kubeconfig_path = match options.kubeconfig_out {
        Some(p) => p.to_path_buf(),
        None => state
            .parent()
            .map(|d| d.join("kubeconfig"))
            .unwrap_or_else(|| PathBuf::from("kubeconfig")),
    };
    // The token file is read before anything is served or written: a bad one changes nothing.
    let token_file = match options.token_auth_file {
        Some(file) => Some(api::auth::TokenFile::read(file)?),
        None => None,
    };
    for warning in token_file.iter().flat_map(|f| &f.warnings) {
        eprintln!("warning: {warning}");
    }
    let mut engine = Engine::open(&state)?;
    api::rbac::bootstrap(&mut engine).with_context(|| {
        format!(
            "cannot create the default RBAC roles in {}",
            state.display()
        )
    })?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let bound = listener.local_addr().context("cannot read the bound address")?;
        let host = if bound.ip().is_unspecified() {
            SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), bound.port())
        } else {
            bound
        };
        let server = format!("https://{host}");
        let credentials = api::tls::credentials(&bound)?;
        let worker = api::worker::Worker::start(
            engine,
            api::worker::Clock::Follow {
                speed: options.speed,
            },
        );
        let mut authenticator = api::auth::Authenticator::new(&credentials.token);
        if let Some(file) = token_file {
            authenticator.add_token_file(file);
        }
        let router = api::router_with(worker, authenticator, &host.to_string());
        write_private(
            &kubeconfig_path,
            &api::tls::kubeconfig(&server, &credentials.ca_pem, &credentials.token),
        )?;
        println!(
            "serving engine state {} at {server} (kubeconfig {}, context reconcile-engine); Ctrl-C stops",
            state.display(),
            kubeconfig_path.display()
        );
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
        api::serve(listener, credentials.server, router, stop_signal()).await;
        println!("stopped");
        Ok(0)
    })
}

/// Writes `text` readable by the owner only: the kubeconfig holds the token.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create directory {}", dir.display()))?;
    }
    let mut open = std::fs::OpenOptions::new();
    open.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        open.mode(0o600);
    }
    use std::io::Write as _;
    let mut file = open
        .open(path)
        .with_context(|| format!("cannot write kubeconfig {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("cannot write kubeconfig {}", path.display()))?;
    Ok(())
}

async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

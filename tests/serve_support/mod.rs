//! Starting `reconcile engine serve` for the end-to-end tests that talk to it (kubectl, the
//! kube backend): one way to start it, on 127.0.0.1 with a kubeconfig beside its state.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A running `reconcile engine serve` on a temp state file (`dir/engine.db`, kubeconfig
/// beside it); killed on drop. Each test file adds the helpers it needs.
pub struct Server {
    pub child: Child,
    pub dir: tempfile::TempDir,
}

#[allow(dead_code)]
impl Server {
    /// Serves a fresh state.
    pub fn start() -> Server {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let child = spawn(dir.path());
        Server { child, dir }
    }

    /// Serves the state file at `dir/engine.db` (made by an engine-target run).
    pub fn serve(dir: tempfile::TempDir) -> Server {
        let child = spawn(dir.path());
        Server { child, dir }
    }

    /// The admin kubeconfig serve wrote.
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    /// A kube client on the admin kubeconfig, with the runtime it runs on.
    pub fn client(&self) -> (tokio::runtime::Runtime, kube::Client) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("runtime: {e}"));
        let path = self.kubeconfig();
        let client = runtime.block_on(async {
            let file = kube::config::Kubeconfig::read_from(&path)
                .unwrap_or_else(|e| panic!("kubeconfig: {e}"));
            let config = kube::Config::from_custom_kubeconfig(file, &Default::default())
                .await
                .unwrap_or_else(|e| panic!("config: {e}"));
            kube::Client::try_from(config).unwrap_or_else(|e| panic!("client: {e}"))
        });
        (runtime, client)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `reconcile engine serve` on `dir/engine.db` (virtual time at 20×), writing
/// `dir/kubeconfig`; returns once it listens, panics with its stderr when it cannot start.
#[allow(dead_code)]
pub fn spawn(dir: &Path) -> Child {
    spawn_with(dir, &[])
}

/// As [`spawn`], with environment variables for serve (its test hook
/// `RECONCILE_TEST_API_FAULTS`).
#[allow(dead_code)]
pub fn spawn_with(dir: &Path, env: &[(&str, &str)]) -> Child {
    spawn_full(dir, env, &[])
}

/// As [`spawn`], with more arguments for serve (`--token-auth-file FILE`).
#[allow(dead_code)]
pub fn spawn_args(dir: &Path, args: &[&str]) -> Child {
    spawn_full(dir, &[], args)
}

/// A kubeconfig beside serve's, `dir/kubeconfig-USER`, whose user presents `token`.
#[allow(dead_code)]
pub fn kubeconfig_for(dir: &Path, user: &str, token: &str) -> std::path::PathBuf {
    let admin = std::fs::read_to_string(dir.join("kubeconfig"))
        .unwrap_or_else(|e| panic!("reading serve's kubeconfig: {e}"));
    let text: String = admin
        .lines()
        .map(|line| match line.trim().strip_prefix("token: ") {
            Some(_) => format!("    token: {token}\n"),
            None => format!("{line}\n"),
        })
        .collect();
    let path = dir.join(format!("kubeconfig-{user}"));
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("writing a kubeconfig: {e}"));
    path
}

fn spawn_full(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_reconcile"))
        .envs(env.iter().copied())
        .args([
            "engine",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--speed",
            "20",
        ])
        .arg("--state")
        .arg(dir.join("engine.db"))
        .arg("--kubeconfig-out")
        .arg(dir.join("kubeconfig"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting serve: {e}"));
    let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    let mut first = String::new();
    // Serve prints its first line once it listens; it exits (EOF) if it cannot.
    BufReader::new(stdout)
        .read_line(&mut first)
        .unwrap_or_else(|e| panic!("reading serve output: {e}"));
    if !first.starts_with("serving engine state") {
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        let _ = child.kill();
        panic!("serve did not start: {first}{err}");
    }
    child
}

//! Starting `reconcile engine serve` for the end-to-end tests that talk to it (kubectl, the
//! kube backend): one way to start it, on 127.0.0.1 with a kubeconfig beside its state.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};

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

//! Helpers of the `watch` end-to-end tests (on top of `repo_support`'s git repository in a
//! temp dir): the real `reconcile watch` process (its log collected, SIGTERM on stop, killed
//! on drop) and a tiny HTTP client for its endpoints.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[path = "../repo_support/mod.rs"]
mod repo_support;
pub use repo_support::*;

/// What the watch tests do with a repository besides `repo_support`'s basics.
pub trait Watching {
    /// `reconcile status APP -o json`, parsed.
    fn status(&self, app: &str) -> serde_json::Value;
    /// `reconcile status APP -o json`, parsed; `None` while there is none.
    fn try_status(&self, app: &str) -> Option<serde_json::Value>;
    /// Starts `reconcile watch ARGS` in the repository.
    fn watch(&self, args: &[&str]) -> Watcher;
    /// Starts `reconcile watch ARGS` with extra environment.
    fn watch_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Watcher;
}

impl Watching for GitRepo {
    fn status(&self, app: &str) -> serde_json::Value {
        let (code, out, err) = self.run(&["status", app, "-o", "json"]).parts();
        assert_eq!(code, 0, "status {app}: {out}{err}");
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("status json: {e}\n{out}"))
    }

    fn try_status(&self, app: &str) -> Option<serde_json::Value> {
        let (code, out, _) = self.run(&["status", app, "-o", "json"]).parts();
        (code == 0)
            .then(|| serde_json::from_str(&out).ok())
            .flatten()
    }

    fn watch(&self, args: &[&str]) -> Watcher {
        self.watch_with_env(args, &[])
    }

    fn watch_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Watcher {
        let mut command = reconcile(self.path());
        command
            .arg("watch")
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("starting watch: {e}"));
        let lines = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if let Ok(mut lines) = lines.lock() {
                        lines.push(line);
                    }
                }
            });
        }
        let mut watcher = Watcher {
            child,
            lines,
            addr: String::new(),
        };
        let line = watcher.wait_for("listening", |l| l.contains("listening on http://"));
        watcher.addr = line
            .rsplit("http://")
            .next()
            .unwrap_or_default()
            .trim()
            .to_string();
        watcher
    }
}

/// A running `reconcile watch`.
pub struct Watcher {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    pub addr: String,
}

/// How long any one expectation may take (wall time; the engine runs faster).
pub const PATIENCE: Duration = Duration::from_secs(30);

impl Watcher {
    /// The log so far.
    pub fn log(&self) -> Vec<String> {
        self.lines.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Lines logged so far (to wait only for later ones).
    pub fn mark(&self) -> usize {
        self.log().len()
    }

    /// Waits for a log line (any so far) matching `matches`.
    pub fn wait_for(&mut self, what: &str, matches: impl Fn(&str) -> bool) -> String {
        self.wait_after(0, what, matches)
    }

    /// Waits for a log line after `mark` matching `matches`.
    pub fn wait_after(
        &mut self,
        mark: usize,
        what: &str,
        matches: impl Fn(&str) -> bool,
    ) -> String {
        let started = Instant::now();
        loop {
            let log = self.log();
            if let Some(line) = log.iter().skip(mark).find(|l| matches(l)) {
                return line.clone();
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("watch exited ({status}) before {what}:\n{}", log.join("\n"));
            }
            if started.elapsed() > PATIENCE {
                panic!("no {what} within {PATIENCE:?}:\n{}", log.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until `check` holds (polled), or panics with the log.
    pub fn wait_until(&self, what: &str, mut check: impl FnMut() -> bool) {
        let started = Instant::now();
        while !check() {
            if started.elapsed() > PATIENCE {
                panic!("no {what} within {PATIENCE:?}:\n{}", self.log().join("\n"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// An HTTP request to the watcher: status code and body.
    pub fn http(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (u16, String) {
        http(&self.addr, method, path, headers, body)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM; returns the exit code and how long the exit took.
    pub fn stop(mut self) -> (Option<i32>, Duration) {
        let started = Instant::now();
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        while started.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(status)) = self.child.try_wait() {
                return (status.code(), started.elapsed());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        (None, started.elapsed())
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One HTTP/1.1 exchange on a fresh connection.
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (key, value) in headers {
        request.push_str(&format!("{key}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream
        .write_all(request.as_bytes())
        .unwrap_or_else(|e| panic!("send: {e}"));
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    let code = response
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

/// A web application `web` in namespace `demo`: a Deployment of `image` with `replicas`,
/// a readiness probe and a Service; `strategy` is YAML put under `spec.strategy`.
pub fn web_app(repo: &GitRepo, dir: &str, image: &str, replicas: u32, strategy: &str) {
    repo.write(
        &format!("{dir}/kustomization.yaml"),
        "namespace: demo\nresources:\n- namespace.yaml\n- web.yaml\n",
    );
    repo.write(
        &format!("{dir}/namespace.yaml"),
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: demo\n",
    );
    repo.write(
        &format!("{dir}/web.yaml"),
        &format!(
            r#"apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector:
    app: web
  ports:
  - port: 80
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: web
  strategy:
{strategy}
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: {image}
        readinessProbe:
          httpGet: {{path: /healthz, port: 80}}
          periodSeconds: 2
"#
        ),
    );
}

//! Helpers of the `plan_*` end-to-end tests (on top of `repo_support`): a fixture repository
//! in a temp dir and the real binary run inside it on the engine target.

#![allow(dead_code)]

use std::path::Path;

#[path = "../repo_support/mod.rs"]
mod repo_support;
pub use repo_support::Run;
use repo_support::{edit_file, read_file, run_in, write_file};

/// A repository in a temp dir (with `.git`, so `.reconcile/engine.db` lands in it).
pub struct Repo {
    dir: tempfile::TempDir,
}

impl Repo {
    pub fn new() -> Repo {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        std::fs::create_dir_all(dir.path().join(".git")).unwrap_or_else(|e| panic!("{e}"));
        Repo { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, file: &str, text: &str) {
        write_file(self.path(), file, text);
    }

    pub fn remove(&self, file: &str) {
        std::fs::remove_file(self.dir.path().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
    }

    pub fn read(&self, file: &str) -> String {
        read_file(self.path(), file)
    }

    /// Replaces text in a file.
    pub fn edit(&self, file: &str, from: &str, to: &str) {
        edit_file(self.path(), file, from, to);
    }

    /// Runs `reconcile ARGS` in the repository; output with the temp path replaced by `$REPO`.
    pub fn run(&self, args: &[&str]) -> Run {
        let run = run_in(self.path(), args, &[]);
        let root = self.dir.path().to_string_lossy().into_owned();
        Run {
            code: run.code,
            stdout: run.stdout.replace(&root, "$REPO"),
            stderr: run.stderr.replace(&root, "$REPO"),
        }
    }

    /// Runs and asserts the exit code, showing the output when it differs.
    pub fn ok(&self, args: &[&str], code: i32) -> Run {
        let run = self.run(args);
        assert_eq!(
            run.code,
            code,
            "reconcile {}:\n{}",
            args.join(" "),
            run.all()
        );
        run
    }
}

/// The timecheck app: base + dev overlay, a Deployment, a Service and generated config.
pub fn timecheck(repo: &Repo) {
    repo.write(
        "base/kustomization.yaml",
        "resources:\n- deployment.yaml\n- service.yaml\nconfigMapGenerator:\n- name: timecheck-config\n  literals:\n  - INTERVAL=5\n",
    );
    repo.write(
        "base/deployment.yaml",
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: timecheck
  labels:
    app: timecheck
spec:
  replicas: 2
  selector:
    matchLabels:
      app: timecheck
  template:
    metadata:
      labels:
        app: timecheck
    spec:
      containers:
      - name: timecheck
        image: kiamol/ch07-timecheck:1.0
        envFrom:
        - configMapRef:
            name: timecheck-config
"#,
    );
    repo.write(
        "base/service.yaml",
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: timecheck\nspec:\n  selector:\n    app: timecheck\n  ports:\n  - port: 8080\n",
    );
    repo.write(
        "overlays/dev/kustomization.yaml",
        "namespace: timecheck-dev\nresources:\n- namespace.yaml\n- ../../base\n",
    );
    repo.write(
        "overlays/dev/namespace.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: timecheck-dev\n",
    );
}

/// A web app in namespace `shop` with a strategy given as YAML lines under `strategy:`.
pub fn web(repo: &Repo, strategy: &str, extra: &str) {
    repo.write(
        "app/kustomization.yaml",
        "namespace: shop\nresources:\n- web.yaml\nimages:\n- name: web\n  newTag: \"1.0\"\n",
    );
    repo.write(
        "app/web.yaml",
        &format!(
            r#"apiVersion: v1
kind: Namespace
metadata:
  name: shop
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector:
    app: web
  ports:
  - port: 80
{extra}---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 4
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
        image: web
        readinessProbe:
          httpGet: {{path: /healthz, port: 80}}
          periodSeconds: 2
"#
        ),
    );
}

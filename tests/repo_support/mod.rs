//! The set-up every end-to-end test shares: a real git repository made with `git2` in a temp
//! dir (deterministic commits), the real binary run in it with a clean environment, and
//! golden files. `git_support`, `watch_support` and `plan_support` build on it.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use git2::{Repository, Signature};

/// What a run printed and returned.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// stdout then stderr.
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    /// Exit code, stdout and stderr.
    pub fn parts(self) -> (i32, String, String) {
        (self.code, self.stdout, self.stderr)
    }
}

/// `reconcile` to run in `dir`: no colour, no engine state, no git credentials, ssh agent
/// or user/system git config from the caller's environment (so no credential helper runs
/// unless a test configures one), `HOME` in the temp dir.
pub fn reconcile(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_reconcile"));
    command
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("RECONCILE_ENGINE_STATE")
        .env_remove("RECONCILE_TARGET")
        .env_remove("RECONCILE_GIT_USERNAME")
        .env_remove("RECONCILE_GIT_PASSWORD")
        .env_remove("RECONCILE_GIT_TOKEN")
        .env_remove("RECONCILE_GIT_CACHE")
        .env_remove("SSH_AUTH_SOCK")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir);
    command
}

/// Runs `reconcile ARGS` in `dir` with extra environment.
pub fn run_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut command = reconcile(dir);
    command.args(args);
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("running reconcile: {e}"));
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Writes a file under `root`, creating its folders.
pub fn write_file(root: &Path, file: &str, text: &str) {
    let path: PathBuf = root.join(file);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{e}"));
    }
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// Reads a file under `root`.
pub fn read_file(root: &Path, file: &str) -> String {
    std::fs::read_to_string(root.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// Replaces the first `from` of a file under `root` with `to`.
pub fn edit_file(root: &Path, file: &str, from: &str, to: &str) {
    let text = read_file(root, file);
    assert!(text.contains(from), "{file} does not contain {from:?}");
    write_file(root, file, &text.replacen(from, to, 1));
}

/// Compares `actual` with `tests/data/AREA/NAME` (rewritten under `UPDATE_EXPECT=1`).
pub fn golden(area: &str, name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(area)
        .join(name);
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{e}"));
        }
        std::fs::write(&path, actual).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_EXPECT=1)", path.display()));
    assert_eq!(
        actual, expected,
        "{area}/{name} differs (UPDATE_EXPECT=1 to accept):\n{actual}"
    );
}

/// A non-bare repository in a temp dir, HEAD on `main`; `.reconcile/` (the engine state) is
/// ignored.
pub struct GitRepo {
    pub dir: tempfile::TempDir,
    pub repo: Repository,
}

impl GitRepo {
    pub fn new() -> GitRepo {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let repo = Repository::init(dir.path()).unwrap_or_else(|e| panic!("git init: {e}"));
        repo.set_head("refs/heads/main")
            .unwrap_or_else(|e| panic!("{e}"));
        let this = GitRepo { dir, repo };
        this.write(".gitignore", ".reconcile/\n");
        this
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, file: &str, text: &str) {
        write_file(self.path(), file, text);
    }

    pub fn read(&self, file: &str) -> String {
        read_file(self.path(), file)
    }

    pub fn edit(&self, file: &str, from: &str, to: &str) {
        edit_file(self.path(), file, from, to);
    }

    pub fn remove(&self, file: &str) {
        std::fs::remove_file(self.path().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
    }

    #[cfg(unix)]
    pub fn symlink(&self, link: &str, target: &str) {
        let path = self.path().join(link);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{e}"));
        }
        std::os::unix::fs::symlink(target, &path).unwrap_or_else(|e| panic!("{e}"));
    }

    /// Runs `reconcile ARGS` in the work tree.
    pub fn run(&self, args: &[&str]) -> Run {
        run_in(self.path(), args, &[])
    }

    /// Stages everything (deletions too) and commits on the current branch at a fixed time,
    /// so the same history gives the same SHAs; returns the SHA.
    pub fn commit(&self, message: &str) -> String {
        let mut index = self.repo.index().unwrap_or_else(|e| panic!("{e}"));
        index
            .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
            .unwrap_or_else(|e| panic!("{e}"));
        index
            .update_all(["*"], None)
            .unwrap_or_else(|e| panic!("{e}"));
        index.write().unwrap_or_else(|e| panic!("{e}"));
        let tree_id = index.write_tree().unwrap_or_else(|e| panic!("{e}"));
        let tree = self
            .repo
            .find_tree(tree_id)
            .unwrap_or_else(|e| panic!("{e}"));
        let signature = Signature::new(
            "Test",
            "test@example.com",
            &git2::Time::new(1_700_000_000, 0),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let parent = self.repo.head().ok().and_then(|h| h.peel_to_commit().ok());
        let parents: Vec<&git2::Commit> = parent.iter().collect();
        self.repo
            .commit(
                Some("HEAD"),
                &signature,
                &signature,
                message,
                &tree,
                &parents,
            )
            .unwrap_or_else(|e| panic!("commit: {e}"))
            .to_string()
    }

    /// Creates (or moves) branch `name` at HEAD.
    pub fn branch(&self, name: &str) {
        let head = self
            .repo
            .head()
            .and_then(|h| h.peel_to_commit())
            .unwrap_or_else(|e| panic!("{e}"));
        self.repo
            .branch(name, &head, true)
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Switches HEAD (and the work tree) to a branch.
    pub fn checkout(&self, name: &str) {
        let refname = format!("refs/heads/{name}");
        let object = self
            .repo
            .revparse_single(&refname)
            .unwrap_or_else(|e| panic!("{e}"));
        self.repo
            .checkout_tree(&object, Some(git2::build::CheckoutBuilder::new().force()))
            .unwrap_or_else(|e| panic!("{e}"));
        self.repo
            .set_head(&refname)
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// The name of the branch HEAD is on.
    pub fn current_branch(&self) -> String {
        self.repo
            .head()
            .ok()
            .and_then(|h| h.shorthand().ok().map(str::to_string))
            .unwrap_or_default()
    }

    /// The SHA a revision names.
    pub fn sha(&self, revision: &str) -> String {
        self.repo
            .revparse_single(revision)
            .and_then(|o| o.peel_to_commit())
            .map(|c| c.id().to_string())
            .unwrap_or_else(|e| panic!("{revision}: {e}"))
    }

    /// A bare clone of this repository at `dest` (HEAD on main).
    pub fn bare_clone(&self, dest: &Path) -> PathBuf {
        let bare = Repository::init_bare(dest).unwrap_or_else(|e| panic!("{e}"));
        bare.set_head("refs/heads/main")
            .unwrap_or_else(|e| panic!("{e}"));
        self.push_to(dest);
        dest.to_path_buf()
    }

    /// Pushes every branch to the bare repository at `dest`.
    pub fn push_to(&self, dest: &Path) {
        let mut remote = self
            .repo
            .remote_anonymous(&dest.display().to_string())
            .unwrap_or_else(|e| panic!("{e}"));
        let branches: Vec<String> = self
            .repo
            .branches(Some(git2::BranchType::Local))
            .unwrap_or_else(|e| panic!("{e}"))
            .filter_map(Result::ok)
            .filter_map(|(b, _)| b.name().ok().flatten().map(str::to_string))
            .map(|name| format!("+refs/heads/{name}:refs/heads/{name}"))
            .collect();
        remote
            .push(&branches, None)
            .unwrap_or_else(|e| panic!("push: {e}"));
    }
}

//! `--repo`, `--ref` and `--git-timeout`: where the files of a command come from (the work
//! tree on disk, or a git revision of a local or remote repository).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use crate::source::git::{GitOptions, GitSource, Snapshot};
use crate::source::{DiskFs, Fs};

/// Source options shared by every command that reads manifests.
#[derive(Debug, Clone, Default, Args)]
pub struct SourceArgs {
    /// A git repository to read from: a local directory or a URL (https, ssh, git, file).
    #[arg(long)]
    pub repo: Option<String>,
    /// The revision to read (branch, tag, SHA, `HEAD~2`, `refs/pull/42/head`); read from git
    /// objects, never checked out. Without it a local repository is read from its work tree.
    #[arg(long = "ref")]
    pub reference: Option<String>,
    /// Limit for each network operation on a remote repository (`60s`, `2m`).
    #[arg(long, default_value = "60s")]
    pub git_timeout: String,
}

/// Which revision a tree was read from (recorded in plans).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The repository, user info redacted.
    pub repo: String,
    /// The ref as given.
    pub reference: String,
    /// The resolved commit.
    pub sha: String,
}

/// A tree of files and where relative paths start in it.
#[derive(Debug, Clone)]
pub struct Tree {
    /// The files.
    pub fs: Arc<dyn Fs>,
    /// The repository root (for git) or the current directory (on disk).
    pub root: PathBuf,
    /// The revision, when read from git.
    pub origin: Option<Origin>,
}

impl Tree {
    /// `path` as the command line gives it, made absolute in this tree.
    pub fn join(&self, path: &Path) -> PathBuf {
        crate::source::clean(&self.root.join(path))
    }
}

impl SourceArgs {
    /// True when the command reads git objects (a `--ref`, or a remote `--repo`).
    pub fn is_git(&self) -> bool {
        self.reference.is_some() || self.repo.as_deref().is_some_and(crate::source::git::is_url)
    }

    /// The git options from the environment and `--git-timeout`.
    pub fn options(&self) -> anyhow::Result<GitOptions> {
        let timeout = crate::rollout::time::parse_duration(&self.git_timeout)
            .map_err(|e| anyhow::anyhow!("--git-timeout: {e}"))?;
        if timeout.is_zero() {
            anyhow::bail!("--git-timeout: must be more than zero");
        }
        Ok(git_options(timeout))
    }

    /// The repository `--repo` names, or the one holding the current directory.
    pub fn open(&self) -> anyhow::Result<GitSource> {
        let options = self.options()?;
        let repo = match &self.repo {
            Some(repo) => repo.clone(),
            None => std::env::current_dir()
                .context("reading the current directory")?
                .display()
                .to_string(),
        };
        Ok(GitSource::open(&repo, &options)?)
    }

    /// The tree to read: a git revision, the work tree of `--repo`, or `None` (the current
    /// directory on disk, as without these options).
    pub fn tree(&self) -> anyhow::Result<Option<Tree>> {
        if !self.is_git() {
            let Some(repo) = &self.repo else {
                return Ok(None);
            };
            let source = self.open()?;
            let root = source
                .work_dir()
                .map(Path::to_path_buf)
                .with_context(|| format!("{repo}: a bare repository needs --ref"))?;
            let fs = DiskFs::new(&root).map_err(|e| anyhow::anyhow!("{e}"))?;
            let root = fs.tree_root().to_path_buf();
            return Ok(Some(Tree {
                fs: Arc::new(fs),
                root,
                origin: None,
            }));
        }
        let source = self.open()?;
        let snapshot = source.snapshot(self.reference.as_deref().unwrap_or("HEAD"))?;
        Ok(Some(tree_of(&source, snapshot)))
    }
}

/// A snapshot as a [`Tree`].
pub fn tree_of(source: &GitSource, snapshot: Snapshot) -> Tree {
    Tree {
        root: source.tree_root(),
        origin: Some(Origin {
            repo: source.display().to_string(),
            reference: snapshot.reference.clone(),
            sha: snapshot.sha.clone(),
        }),
        fs: Arc::new(snapshot.fs),
    }
}

/// Git options from the process environment (this module is part of the CLI, the only
/// place that reads it).
pub fn git_options(timeout: Duration) -> GitOptions {
    GitOptions::from_vars(|name| std::env::var(name).ok(), timeout)
}

//! Git as the source of truth: the tree of any revision read straight from git objects
//! (`git2`), from a local repository (bare or not) or from a remote URL mirrored into a cache.
//!
//! The public surface, used by the command line and the watch controller:
//! - [`GitSource::open`] a local directory or a URL (`https://`, `ssh://`, `git://`,
//!   `file://`, `user@host:path`) with [`GitOptions`] (cache folder, network timeout,
//!   credentials);
//! - [`GitSource::fetch`] updates a remote's mirror (nothing to do for a local repository);
//! - [`GitSource::resolve`] turns a ref (branch, tag, full or short SHA, `HEAD~2`,
//!   `refs/pull/42/head`) into a commit SHA from the objects already at hand — cheap;
//! - [`GitSource::tree`] gives the [`GitFs`] of a commit; [`GitSource::snapshot`] does
//!   fetch-if-needed, resolve and tree in one call;
//! - [`GitSource::commit_files`] and [`GitSource::push`] write a commit without a work
//!   tree and push its branch (`promote --repo URL --commit`).
//!
//! Invariants: the work tree and index are never read or written; credentials never reach
//! a message ([`redact_url`] removes user info from every URL shown, and every error text
//! passes through the same filter); a mirror is only written under its lock.

mod remote;
mod tree;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use git2::{Oid, Repository};

pub use tree::GitFs;

/// How long a network operation may take by default (`--git-timeout`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Credentials for remotes, besides git's credential helpers and `ssh-agent`.
#[derive(Clone, Default)]
pub struct Credentials {
    /// User name for HTTP basic authentication.
    pub username: Option<String>,
    /// Password for HTTP basic authentication.
    pub password: Option<String>,
    /// A token, sent as the password (user name `x-access-token` unless one is given).
    pub token: Option<String>,
    /// Offer keys from `ssh-agent` (`SSH_AUTH_SOCK` is set).
    pub ssh_agent: bool,
    /// Private key files to offer over SSH, in order (`~/.ssh/id_ed25519`, …).
    pub ssh_keys: Vec<PathBuf>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("token", &self.token.as_ref().map(|_| "***"))
            .finish()
    }
}

impl Credentials {
    /// The user name and password to offer for HTTP basic authentication, if any.
    fn basic(&self) -> Option<(String, String)> {
        match (&self.token, &self.password) {
            (Some(token), _) => Some((
                self.username
                    .clone()
                    .unwrap_or_else(|| "x-access-token".into()),
                token.clone(),
            )),
            (None, Some(password)) => Some((self.username.clone()?, password.clone())),
            (None, None) => None,
        }
    }

    /// Every secret value, for scrubbing messages.
    fn secrets(&self) -> Vec<String> {
        [&self.password, &self.token]
            .into_iter()
            .flatten()
            .filter(|s| !s.is_empty())
            .cloned()
            .collect()
    }
}

/// Settings for opening sources.
#[derive(Debug, Clone)]
pub struct GitOptions {
    /// The folder holding one bare mirror per remote URL.
    pub cache_dir: PathBuf,
    /// Limit for each network operation (connect, fetch) and for waiting on a mirror's lock.
    pub timeout: Duration,
    /// Credentials from the environment.
    pub credentials: Credentials,
}

impl GitOptions {
    /// Options from environment variables, looked up through `var` (so the caller decides
    /// where the environment comes from): the cache is `RECONCILE_GIT_CACHE`, else
    /// `$XDG_CACHE_HOME/reconcile/repos`, else `$HOME/.cache/reconcile/repos`; credentials
    /// come from `RECONCILE_GIT_USERNAME`, `RECONCILE_GIT_PASSWORD` and `RECONCILE_GIT_TOKEN`.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>, timeout: Duration) -> GitOptions {
        let set = |name: &str| var(name).filter(|v| !v.is_empty());
        let cache_dir = match (
            set("RECONCILE_GIT_CACHE"),
            set("XDG_CACHE_HOME"),
            set("HOME"),
        ) {
            (Some(dir), _, _) => PathBuf::from(dir),
            (None, Some(xdg), _) => Path::new(&xdg).join("reconcile").join("repos"),
            (None, None, Some(home)) => Path::new(&home)
                .join(".cache")
                .join("reconcile")
                .join("repos"),
            (None, None, None) => std::env::temp_dir().join("reconcile").join("repos"),
        };
        GitOptions {
            cache_dir,
            timeout,
            credentials: Credentials {
                username: set("RECONCILE_GIT_USERNAME"),
                password: set("RECONCILE_GIT_PASSWORD"),
                token: set("RECONCILE_GIT_TOKEN"),
                ssh_agent: set("SSH_AUTH_SOCK").is_some(),
                ssh_keys: set("HOME")
                    .map(|home| {
                        ["id_ed25519", "id_ecdsa", "id_rsa"]
                            .iter()
                            .map(|key| Path::new(&home).join(".ssh").join(key))
                            .filter(|path| path.is_file())
                            .collect()
                    })
                    .unwrap_or_default(),
            },
        }
    }
}

/// Reading a git source failed. Every text in it is already free of credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GitError {
    /// The local path is not a git repository.
    #[error("{path}: not a git repository ({cause})")]
    NotARepository {
        /// The path given.
        path: String,
        /// What git said.
        cause: String,
    },
    /// The ref names no commit.
    #[error("{repo}: unknown revision {reference:?} ({cause})")]
    UnknownRevision {
        /// The repository (URL redacted).
        repo: String,
        /// The ref as given.
        reference: String,
        /// What git said.
        cause: String,
    },
    /// Fetching from the remote failed.
    #[error("{repo}: fetch failed: {cause}")]
    Fetch {
        /// The repository (URL redacted).
        repo: String,
        /// What git said.
        cause: String,
    },
    /// A network operation or the wait for the cache lock took longer than allowed.
    #[error("{repo}: {what} timed out after {seconds}s (--git-timeout)")]
    Timeout {
        /// The repository (URL redacted).
        repo: String,
        /// What was being done.
        what: String,
        /// The limit.
        seconds: u64,
    },
    /// The cache folder could not be used.
    #[error("{path}: git cache: {cause}")]
    Cache {
        /// The folder or file.
        path: String,
        /// The cause.
        cause: String,
    },
    /// Pushing a branch to the remote failed.
    #[error("{repo}: push of branch {branch} failed: {cause}")]
    Push {
        /// The repository (URL redacted).
        repo: String,
        /// The branch.
        branch: String,
        /// What git said.
        cause: String,
    },
    /// Any other git failure.
    #[error("{repo}: {cause}")]
    Git {
        /// The repository (URL redacted).
        repo: String,
        /// What git said.
        cause: String,
    },
}

/// A commit and its tree, ready to render.
#[derive(Debug)]
pub struct Snapshot {
    /// The ref as asked for (`main`, `v1.2`, `HEAD~2`).
    pub reference: String,
    /// The resolved commit (40 hex digits).
    pub sha: String,
    /// Its files.
    pub fs: GitFs,
}

/// Where a source lives.
#[derive(Debug, Clone)]
enum Location {
    /// A repository on this machine.
    Local {
        /// The `.git` folder (or the bare repository).
        git_dir: PathBuf,
        /// The work tree, when there is one.
        work_dir: Option<PathBuf>,
    },
    /// A remote URL and its mirror.
    Remote(remote::Remote),
}

/// A git repository to read revisions from: local, or a remote mirrored into the cache.
#[derive(Debug)]
pub struct GitSource {
    location: Location,
    display: String,
    options: GitOptions,
    fetched: AtomicBool,
    /// The trees and blobs read so far, shared by every tree of this source.
    objects: Arc<tree::Objects>,
}

/// True when `text` is a remote URL rather than a local path: a `scheme://` URL or scp-like
/// `user@host:path`.
pub fn is_url(text: &str) -> bool {
    if let Some((scheme, _)) = text.split_once("://") {
        return !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '+');
    }
    scp_like(text).is_some()
}

/// `user@host:path` split into (`user@host`, `path`).
fn scp_like(text: &str) -> Option<(&str, &str)> {
    let (host, path) = text.split_once(':')?;
    (host.contains('@') && !host.contains('/') && !path.is_empty()).then_some((host, path))
}

/// `url` with any user info replaced by `***` and any query string dropped, for display.
/// Local paths and scp-like addresses (`git@host:path`, which carry no password) are
/// returned unchanged.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let host = match authority.rsplit_once('@') {
        Some((_, host)) => format!("***@{host}"),
        None => authority.to_string(),
    };
    let path = match path.split_once('?') {
        Some((path, _)) => format!("{path}?***"),
        None => path.to_string(),
    };
    format!("{scheme}://{host}{path}")
}

/// `url` without user info (what is stored in the mirror's config and hashed for its name).
fn strip_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    format!("{scheme}://{host}{path}")
}

/// User name and password written in a URL (`https://user:pass@host/…`), percent-decoded.
fn userinfo(url: &str) -> Option<(String, Option<String>)> {
    let (_, rest) = url.split_once("://")?;
    let authority = rest.split('/').next()?;
    let (info, _) = authority.rsplit_once('@')?;
    let decode = |s: &str| {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            let escaped = (bytes[i] == b'%' && i + 2 < bytes.len())
                .then(|| std::str::from_utf8(&bytes[i + 1..i + 3]).ok())
                .flatten()
                .and_then(|hex| u8::from_str_radix(hex, 16).ok());
            if let Some(b) = escaped {
                out.push(b);
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    Some(match info.split_once(':') {
        Some((user, password)) => (decode(user), Some(decode(password))),
        None => (decode(info), None),
    })
}

/// Removes every secret (and the raw URL) from a message.
fn scrub(text: &str, secrets: &[String]) -> String {
    let mut text = text.to_string();
    for secret in secrets {
        if !secret.is_empty() {
            text = text.replace(secret.as_str(), "***");
        }
    }
    text
}

fn looks_like_sha(reference: &str) -> bool {
    (4..=40).contains(&reference.len()) && reference.bytes().all(|b| b.is_ascii_hexdigit())
}

impl GitSource {
    /// Opens `repo`: an existing local directory (a work tree or a bare repository, found
    /// upwards as git does) or a remote URL. Opening does not touch the network.
    pub fn open(repo: &str, options: &GitOptions) -> Result<GitSource, GitError> {
        let local = Path::new(repo);
        if !is_url(repo) || local.exists() {
            let opened = Repository::discover(local).map_err(|e| GitError::NotARepository {
                path: repo.to_string(),
                cause: e.message().to_string(),
            })?;
            let git_dir = opened.path().to_path_buf();
            let work_dir = opened.workdir().map(Path::to_path_buf);
            let display = work_dir
                .as_deref()
                .unwrap_or(&git_dir)
                .display()
                .to_string();
            let display = display.trim_end_matches('/').to_string();
            return Ok(GitSource {
                objects: Arc::new(tree::Objects::new(&git_dir)),
                location: Location::Local { git_dir, work_dir },
                display,
                options: options.clone(),
                fetched: AtomicBool::new(true),
            });
        }
        let remote = remote::Remote::new(repo, options);
        Ok(GitSource {
            objects: Arc::new(tree::Objects::new(remote.mirror_dir())),
            display: redact_url(repo),
            location: Location::Remote(remote),
            options: options.clone(),
            fetched: AtomicBool::new(false),
        })
    }

    /// The repository as it may be shown: a local path, or the URL with user info redacted.
    pub fn display(&self) -> &str {
        &self.display
    }

    /// True for a remote URL (mirrored into the cache).
    pub fn is_remote(&self) -> bool {
        matches!(self.location, Location::Remote(_))
    }

    /// The work tree of a local, non-bare repository.
    pub fn work_dir(&self) -> Option<&Path> {
        match &self.location {
            Location::Local { work_dir, .. } => work_dir.as_deref(),
            Location::Remote(_) => None,
        }
    }

    /// The folder holding the objects: the local `.git` (or bare repository) or the mirror.
    pub fn git_dir(&self) -> PathBuf {
        match &self.location {
            Location::Local { git_dir, .. } => git_dir.clone(),
            Location::Remote(remote) => remote.mirror_dir().to_path_buf(),
        }
    }

    /// Where trees are mounted: the work tree, else the git folder (paths in messages
    /// then read like paths on disk).
    pub fn tree_root(&self) -> PathBuf {
        self.work_dir()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| self.git_dir())
    }

    fn repository(&self) -> Result<Repository, GitError> {
        let git_dir = self.git_dir();
        Repository::open(&git_dir).map_err(|e| GitError::Git {
            repo: self.display.clone(),
            cause: self.scrub(e.message()),
        })
    }

    fn scrub(&self, text: &str) -> String {
        let mut secrets = self.options.credentials.secrets();
        if let Location::Remote(remote) = &self.location {
            secrets.extend(remote.secrets());
        }
        scrub(text, &secrets)
    }

    /// Updates the mirror of a remote from the network (branches, tags, the remote's HEAD,
    /// and `extra` refs such as `refs/pull/42/head`); nothing for a local repository.
    pub fn fetch(&self, extra: &[&str]) -> Result<(), GitError> {
        if let Location::Remote(remote) = &self.location {
            remote.fetch(extra, &self.options)?;
            self.fetched.store(true, Ordering::SeqCst);
        }
        Ok(())
    }

    /// The commit `reference` names now, from the objects at hand (no network). An empty
    /// reference means `HEAD` (a remote's default branch).
    pub fn resolve(&self, reference: &str) -> Result<String, GitError> {
        let repo = self.repository()?;
        self.resolve_in(&repo, reference).map(|oid| oid.to_string())
    }

    fn resolve_in(&self, repo: &Repository, reference: &str) -> Result<Oid, GitError> {
        let reference = if reference.is_empty() {
            "HEAD"
        } else {
            reference
        };
        let unknown = |cause: &str| GitError::UnknownRevision {
            repo: self.display.clone(),
            reference: reference.to_string(),
            cause: self.scrub(cause),
        };
        let object = repo
            .revparse_single(reference)
            .map_err(|e| unknown(e.message()))?;
        let commit = object.peel_to_commit().map_err(|e| unknown(e.message()))?;
        Ok(commit.id())
    }

    /// The tree of `sha` (a commit at hand).
    pub fn tree(&self, sha: &str) -> Result<GitFs, GitError> {
        let repo = self.repository()?;
        let oid = self.resolve_in(&repo, sha)?;
        drop(repo);
        GitFs::open(self.objects.clone(), oid, &self.tree_root()).map_err(|e| GitError::Git {
            repo: self.display.clone(),
            cause: self.scrub(e.message()),
        })
    }

    /// The tree at `reference`. A remote is fetched first, once per source, unless the
    /// reference is a SHA already in the mirror: a run at a known commit needs no network.
    pub fn snapshot(&self, reference: &str) -> Result<Snapshot, GitError> {
        let reference = if reference.is_empty() {
            "HEAD"
        } else {
            reference
        };
        if !self.fetched.load(Ordering::SeqCst) {
            let known = looks_like_sha(reference)
                && self
                    .resolve(reference)
                    .is_ok_and(|sha| sha.starts_with(&reference.to_ascii_lowercase()));
            if !known {
                let extra: Vec<&str> = [reference]
                    .into_iter()
                    .filter(|r| r.starts_with("refs/") && !r.starts_with("refs/heads/"))
                    .collect();
                self.fetch(&extra)?;
            }
        }
        let sha = self.resolve(reference)?;
        let fs = self.tree(&sha)?;
        Ok(Snapshot {
            reference: reference.to_string(),
            sha,
            fs,
        })
    }

    /// A new commit on top of `parent` whose tree is the parent's with `files` (paths
    /// relative to the repository root) written, made straight in the object database (no
    /// work tree, no index file); `refs/heads/BRANCH` is set to it when a branch is given.
    /// The author comes from git config. Returns the SHA.
    pub fn commit_files(
        &self,
        parent: &str,
        files: &[(PathBuf, Vec<u8>)],
        message: &str,
        branch: Option<&str>,
    ) -> Result<String, GitError> {
        let repo = self.repository()?;
        let git = |e: git2::Error| GitError::Git {
            repo: self.display.clone(),
            cause: self.scrub(e.message()),
        };
        let parent = repo
            .find_commit(self.resolve_in(&repo, parent)?)
            .map_err(git)?;
        let mut index = git2::Index::new().map_err(git)?;
        index.read_tree(&parent.tree().map_err(git)?).map_err(git)?;
        for (path, bytes) in files {
            // An index not backed by a repository takes entries by blob id only.
            let blob = repo.blob(bytes).map_err(git)?;
            let entry = git2::IndexEntry {
                ctime: git2::IndexTime::new(0, 0),
                mtime: git2::IndexTime::new(0, 0),
                dev: 0,
                ino: 0,
                // A file keeps its mode (executable or not); a new one is a plain file.
                mode: index
                    .get_path(path, 0)
                    .map_or(0o100644, |existing| existing.mode),
                uid: 0,
                gid: 0,
                file_size: u32::try_from(bytes.len()).unwrap_or(u32::MAX),
                id: blob,
                flags: 0,
                flags_extended: 0,
                path: path.to_string_lossy().as_bytes().to_vec(),
            };
            index.add(&entry).map_err(git)?;
        }
        let tree = repo
            .find_tree(index.write_tree_to(&repo).map_err(git)?)
            .map_err(git)?;
        let author = repo.signature().map_err(|_| GitError::Git {
            repo: self.display.clone(),
            cause: "no commit author: set git config user.name and user.email".into(),
        })?;
        let oid = repo
            .commit(None, &author, &author, message, &tree, &[&parent])
            .map_err(git)?;
        if let Some(branch) = branch {
            repo.reference(
                &format!("refs/heads/{branch}"),
                oid,
                true,
                "reconcile promote",
            )
            .map_err(git)?;
        }
        Ok(oid.to_string())
    }

    /// Pushes `refs/heads/BRANCH` to the remote (not forced); nothing for a local source.
    pub fn push(&self, branch: &str) -> Result<(), GitError> {
        match &self.location {
            Location::Remote(remote) => remote.push(branch, &self.options),
            Location::Local { .. } => Ok(()),
        }
    }

    /// Paths (relative to the repository root) that differ between two commits, both the
    /// old and the new name of a moved file.
    pub fn changed_paths(&self, base: &str, head: &str) -> Result<Vec<PathBuf>, GitError> {
        let repo = self.repository()?;
        let git = |e: git2::Error| GitError::Git {
            repo: self.display.clone(),
            cause: self.scrub(e.message()),
        };
        let tree_of = |sha: &str| -> Result<git2::Tree<'_>, GitError> {
            let oid = self.resolve_in(&repo, sha)?;
            repo.find_commit(oid).and_then(|c| c.tree()).map_err(git)
        };
        let (old, new) = (tree_of(base)?, tree_of(head)?);
        let diff = repo
            .diff_tree_to_tree(Some(&old), Some(&new), None)
            .map_err(git)?;
        let mut paths: Vec<PathBuf> = Vec::new();
        for delta in diff.deltas() {
            for file in [delta.old_file(), delta.new_file()] {
                if let Some(path) = file.path() {
                    paths.push(path.to_path_buf());
                }
            }
        }
        paths.sort();
        paths.dedup();
        Ok(paths)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_told_from_paths() {
        for url in [
            "https://github.com/org/repo.git",
            "ssh://git@host/repo",
            "git://127.0.0.1:9418/repo",
            "file:///tmp/repo",
            "git@github.com:org/repo.git",
        ] {
            assert!(is_url(url), "{url}");
        }
        for path in ["/tmp/repo", "repo", "./a:b", "C"] {
            assert!(!is_url(path), "{path}");
        }
    }

    #[test]
    fn user_info_is_redacted() {
        assert_eq!(
            redact_url("https://alice:s3cret@example.com/org/repo.git"),
            "https://***@example.com/org/repo.git"
        );
        assert_eq!(
            redact_url("https://ghp_token@github.com/org/repo"),
            "https://***@github.com/org/repo"
        );
        assert_eq!(
            redact_url("https://host/repo?private_token=abc"),
            "https://host/repo?***"
        );
        assert_eq!(
            redact_url("git@github.com:org/repo.git"),
            "git@github.com:org/repo.git"
        );
        assert_eq!(
            strip_userinfo("https://a:b@host:8080/x"),
            "https://host:8080/x"
        );
        assert_eq!(
            userinfo("https://al%40ice:p%3Ass@host/x"),
            Some(("al@ice".into(), Some("p:ss".into())))
        );
    }

    #[test]
    fn credentials_never_debug_print() {
        let credentials = Credentials {
            username: Some("u".into()),
            password: Some("hunter2".into()),
            token: Some("tok".into()),
            ..Credentials::default()
        };
        let text = format!("{credentials:?}");
        assert!(
            !text.contains("hunter2") && !text.contains("tok\""),
            "{text}"
        );
        assert_eq!(
            credentials.basic(),
            Some(("u".to_string(), "tok".to_string()))
        );
    }

    #[test]
    fn cache_dir_follows_xdg() {
        let vars = |name: &str| match name {
            "XDG_CACHE_HOME" => Some("/c".to_string()),
            "HOME" => Some("/h".to_string()),
            _ => None,
        };
        let options = GitOptions::from_vars(vars, DEFAULT_TIMEOUT);
        assert_eq!(options.cache_dir, PathBuf::from("/c/reconcile/repos"));
        let options =
            GitOptions::from_vars(|n| (n == "HOME").then(|| "/h".to_string()), DEFAULT_TIMEOUT);
        assert_eq!(
            options.cache_dir,
            PathBuf::from("/h/.cache/reconcile/repos")
        );
    }
}

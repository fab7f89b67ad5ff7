//! Where the watcher reads applications from: a plain directory (re-read when `notify` reports
//! a change) or a git repository at a ref — local or a remote URL, read through the one git
//! reader of the codebase, [`crate::source::git::GitSource`] (a remote is fetched once per
//! poll into its cache mirror; commits are read from git objects, the work tree never
//! touched) — plus the applications it holds and which files each render read, so a new
//! commit re-renders only the applications whose files it touched.
//!
//! Invariant: the only IO here is reading the directory or the repository (and fetching a
//! remote); every repository name shown is redacted.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde_json::Value;

use crate::plan::config::{self, Application, CONFIG_FILE, Config};
use crate::source::git::{GitError, GitOptions, GitSource, is_url};
use crate::source::{DiskFs, EntryKind, Fs, FsError};

/// Errors reading a source.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The folder cannot be read as asked.
    #[error("{repo}: {message}")]
    Git {
        /// The folder.
        repo: String,
        /// What is wrong.
        message: String,
    },
    /// The repository cannot be opened or fetched, or the ref resolved.
    #[error(transparent)]
    Repository(#[from] GitError),
    /// A file of the tree cannot be read.
    #[error(transparent)]
    Fs(#[from] FsError),
    /// `reconcile.yaml` is invalid.
    #[error(transparent)]
    Config(#[from] config::Error),
    /// Nothing to watch.
    #[error("{0}: no applications in {CONFIG_FILE} and no kustomization found")]
    NoApplications(String),
}

/// A source of manifests.
pub enum Source {
    /// A directory on disk, read as it is.
    Dir {
        /// The directory (canonical).
        root: PathBuf,
    },
    /// A git repository (local or remote) at a ref.
    Git {
        /// Where its trees are mounted: the work tree, the bare repository or the mirror.
        root: PathBuf,
        /// The ref as given (`main`, `refs/heads/main`, `HEAD`, a tag or a SHA).
        reference: String,
        /// The repository.
        git: Box<GitSource>,
    },
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Source({})", self.describe())
    }
}

/// A revision of the source: what the files are, read-only.
pub struct Snapshot {
    /// The commit SHA (git sources).
    pub sha: Option<String>,
    /// The files.
    pub fs: Box<dyn Fs>,
}

impl Source {
    /// Opens `path`: a remote URL, or a local git repository (followed at `reference`, else
    /// `HEAD`), or a plain directory when it is not a repository and no ref is asked.
    /// A remote is fetched once here, so a bad URL or credential fails at start.
    pub fn open(
        path: &str,
        reference: Option<&str>,
        options: &GitOptions,
    ) -> Result<Source, Error> {
        let reference = reference.unwrap_or("HEAD").to_string();
        if is_url(path) && !Path::new(path).exists() {
            let git = GitSource::open(path, options)?;
            let source = Source::Git {
                root: git.tree_root().components().collect(),
                reference,
                git: Box::new(git),
            };
            source.head()?;
            return Ok(source);
        }
        let dir = Path::new(path);
        let root = std::fs::canonicalize(dir).map_err(|e| FsError::Io {
            path: dir.to_path_buf(),
            cause: e.to_string(),
        })?;
        let is_git = root.join(".git").exists() || root.join("HEAD").is_file();
        if !is_git {
            if reference != "HEAD" {
                return Err(Error::Git {
                    repo: root.display().to_string(),
                    message: format!("not a git repository, so --ref {reference} cannot be read"),
                });
            }
            return Ok(Source::Dir { root });
        }
        let git = GitSource::open(&root.display().to_string(), options)?;
        let source = Source::Git {
            root: git.tree_root().components().collect(),
            reference,
            git: Box::new(git),
        };
        source.head()?;
        Ok(source)
    }

    /// The directory or repository (a URL redacted), for messages and metric labels.
    pub fn describe(&self) -> String {
        match self {
            Source::Dir { root } => root.display().to_string(),
            Source::Git { git, .. } => git.display().to_string(),
        }
    }

    /// The ref watched (`None` for a plain directory).
    pub fn reference(&self) -> Option<&str> {
        match self {
            Source::Dir { .. } => None,
            Source::Git { reference, .. } => Some(reference),
        }
    }

    /// The root every path of a snapshot starts with.
    pub fn root(&self) -> &Path {
        match self {
            Source::Dir { root } | Source::Git { root, .. } => root,
        }
    }

    /// True when the ref is polled from a remote URL.
    pub fn is_remote(&self) -> bool {
        matches!(self, Source::Git { git, .. } if git.is_remote())
    }

    /// The commit the ref points at now (`None` for a plain directory). A remote is fetched
    /// first: one fetch per poll, whatever the number of applications.
    pub fn head(&self) -> Result<Option<String>, Error> {
        let Source::Git { reference, git, .. } = self else {
            return Ok(None);
        };
        if git.is_remote() {
            let extra: Vec<&str> = [reference.as_str()]
                .into_iter()
                .filter(|r| r.starts_with("refs/") && !r.starts_with("refs/heads/"))
                .collect();
            git.fetch(&extra)?;
        }
        Ok(Some(git.resolve(reference)?))
    }

    /// The files at `sha` (git) or on disk now (directory).
    pub fn snapshot(&self, sha: Option<&str>) -> Result<Snapshot, Error> {
        match (self, sha) {
            (Source::Git { git, .. }, Some(sha)) => Ok(Snapshot {
                sha: Some(sha.to_string()),
                fs: Box::new(git.tree(sha)?),
            }),
            (Source::Git { git, .. }, None) => Err(Error::Git {
                repo: git.display().to_string(),
                message: "no commit to read".to_string(),
            }),
            (Source::Dir { root }, _) => Ok(Snapshot {
                sha: None,
                fs: Box::new(DiskFs::new(root)?),
            }),
        }
    }

    /// The files a commit changed since another (absolute paths, both sides of renames);
    /// `None` when it cannot tell (then everything counts as changed).
    pub fn changed_paths(&self, old: &str, new: &str) -> Option<Vec<PathBuf>> {
        let Source::Git { root, git, .. } = self else {
            return None;
        };
        let paths = git.changed_paths(old, new).ok()?;
        Some(paths.into_iter().map(|p| root.join(p)).collect())
    }
}

/// Paths a render looked at: files read or probed, directories listed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reads {
    probed: BTreeSet<PathBuf>,
    listed: BTreeSet<PathBuf>,
}

impl Reads {
    /// True when a change to one of `changed` can change what the render produces: the
    /// path was read or probed, or it appeared in (or left) a directory that was listed.
    pub fn touched_by(&self, changed: &[PathBuf]) -> bool {
        changed.iter().any(|path| {
            self.probed.contains(path) || path.parent().is_some_and(|p| self.listed.contains(p))
        })
    }
}

/// An [`Fs`] that remembers every path asked of it.
#[derive(Debug)]
pub struct Recording<'a> {
    inner: &'a dyn Fs,
    seen: Mutex<Reads>,
}

impl<'a> Recording<'a> {
    /// Wraps a file system.
    pub fn new(inner: &'a dyn Fs) -> Recording<'a> {
        Recording {
            inner,
            seen: Mutex::new(Reads::default()),
        }
    }

    fn note(&self, path: &Path, listed: bool) {
        if let Ok(mut seen) = self.seen.lock() {
            let set = if listed {
                &mut seen.listed
            } else {
                &mut seen.probed
            };
            set.insert(path.to_path_buf());
        }
    }

    /// What was asked.
    pub fn reads(self) -> Reads {
        self.seen.into_inner().unwrap_or_default()
    }
}

impl Fs for Recording<'_> {
    fn tree_root(&self) -> &Path {
        self.inner.tree_root()
    }
    fn entry_kind(&self, path: &Path) -> Result<Option<EntryKind>, FsError> {
        self.note(path, false);
        self.inner.entry_kind(path)
    }
    fn read_link(&self, path: &Path) -> Result<PathBuf, FsError> {
        self.note(path, false);
        self.inner.read_link(path)
    }
    fn read_raw(&self, path: &Path) -> Result<Vec<u8>, FsError> {
        self.note(path, false);
        self.inner.read_raw(path)
    }
    fn list_raw(&self, path: &Path) -> Result<Vec<String>, FsError> {
        self.note(path, true);
        self.inner.list_raw(path)
    }
}

/// The applications of a snapshot: those of its `reconcile.yaml`, or else one per root
/// kustomization (a kustomization directory no other kustomization of the tree includes).
pub fn applications(fs: &dyn Fs, root: &Path) -> Result<Vec<Application>, Error> {
    let config_path = root.join(CONFIG_FILE);
    if fs.is_file(&config_path) {
        let text = fs.read(&config_path)?;
        let config = Config::parse(&String::from_utf8_lossy(&text), &config_path)?;
        if !config.applications.is_empty() {
            return Ok(config.applications);
        }
    }
    let mut dirs = Vec::new();
    collect_kustomizations(fs, root, &mut dirs, 0)?;
    let mut included = HashSet::new();
    for dir in &dirs {
        for entry in kustomization_entries(fs, dir) {
            included.insert(crate::source::clean(&dir.join(entry)));
        }
    }
    let apps: Vec<Application> = dirs
        .iter()
        .filter(|dir| !included.contains(*dir))
        .map(|dir| {
            let relative = dir.strip_prefix(root).unwrap_or(dir);
            let path = if relative.as_os_str().is_empty() {
                ".".to_string()
            } else {
                relative.display().to_string()
            };
            let name = if path == "." {
                root.file_name()
                    .map(|n| config::name_for_path(Path::new(n)))
                    .unwrap_or_else(|| "app".to_string())
            } else {
                config::name_for_path(relative)
            };
            Application {
                name,
                path,
                ..Application::default()
            }
        })
        .collect();
    if apps.is_empty() {
        return Err(Error::NoApplications(root.display().to_string()));
    }
    Ok(apps)
}

const KUSTOMIZATION_FILES: [&str; 3] = ["kustomization.yaml", "kustomization.yml", "Kustomization"];

fn collect_kustomizations(
    fs: &dyn Fs,
    dir: &Path,
    out: &mut Vec<PathBuf>,
    depth: usize,
) -> Result<(), Error> {
    // Deep enough for any real repository, shallow enough to stop a symlink maze.
    if depth > 16 {
        return Ok(());
    }
    if KUSTOMIZATION_FILES.iter().any(|f| fs.is_file(&dir.join(f))) {
        out.push(dir.to_path_buf());
    }
    for name in fs.list_dir(dir)? {
        if name.starts_with('.') {
            continue;
        }
        let child = dir.join(&name);
        if fs.entry_kind(&child)? == Some(EntryKind::Dir) {
            collect_kustomizations(fs, &child, out, depth + 1)?;
        }
    }
    Ok(())
}

/// The `resources`, `bases` and `components` entries of the kustomization in `dir`.
fn kustomization_entries(fs: &dyn Fs, dir: &Path) -> Vec<String> {
    let Some(text) = KUSTOMIZATION_FILES
        .iter()
        .find_map(|f| fs.read(&dir.join(f)).ok())
    else {
        return Vec::new();
    };
    let Ok(documents) = crate::yaml::parse_documents(&String::from_utf8_lossy(&text)) else {
        return Vec::new();
    };
    let Some(document) = documents.into_iter().next() else {
        return Vec::new();
    };
    ["resources", "bases", "components"]
        .iter()
        .filter_map(|key| document.get(*key).and_then(Value::as_array))
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::MemFs;

    fn tree() -> MemFs {
        let mut fs = MemFs::new("/repo");
        fs.add_file("/repo/base/kustomization.yaml", "resources: [web.yaml]\n");
        fs.add_file(
            "/repo/base/web.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web}\n",
        );
        fs.add_file(
            "/repo/overlays/dev/kustomization.yaml",
            "resources: [../../base]\n",
        );
        fs.add_file(
            "/repo/overlays/prod/kustomization.yaml",
            "resources:\n- ../../base\n",
        );
        fs.add_file("/repo/.git/kustomization.yaml", "resources: []\n");
        fs
    }

    #[test]
    fn root_kustomizations_are_the_applications_without_a_config() {
        let apps = applications(&tree(), Path::new("/repo")).map_err(|e| e.to_string());
        let names: Vec<(String, String)> = apps
            .unwrap_or_default()
            .into_iter()
            .map(|a| (a.name, a.path))
            .collect();
        assert_eq!(
            names,
            vec![
                ("overlays-dev".to_string(), "overlays/dev".to_string()),
                ("overlays-prod".to_string(), "overlays/prod".to_string())
            ]
        );
    }

    #[test]
    fn a_config_lists_the_applications() {
        let mut fs = tree();
        fs.add_file(
            "/repo/reconcile.yaml",
            "applications:\n- name: dev\n  path: overlays/dev\n",
        );
        let apps = applications(&fs, Path::new("/repo")).unwrap_or_default();
        assert_eq!(apps.len(), 1);
        assert_eq!(apps[0].name, "dev");
    }

    #[test]
    fn a_render_depends_on_the_files_it_read() {
        let fs = tree();
        let recording = Recording::new(&fs);
        let rendered = crate::render::render(&recording, Path::new("/repo/overlays/dev"));
        assert!(rendered.is_ok(), "{rendered:?}");
        let reads = recording.reads();
        assert!(reads.touched_by(&[PathBuf::from("/repo/base/web.yaml")]));
        assert!(reads.touched_by(&[PathBuf::from("/repo/overlays/dev/kustomization.yaml")]));
        assert!(!reads.touched_by(&[PathBuf::from("/repo/overlays/prod/kustomization.yaml")]));
    }
}

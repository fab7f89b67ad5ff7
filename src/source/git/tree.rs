//! [`GitFs`]: the tree of one commit, read from git objects through the [`Fs`] trait.
//!
//! The tree's shape (directories, files, symlinks) is walked once when it is opened; file
//! contents are read from the object database on demand. Nothing is checked out: the work
//! tree and the index are never touched, and bare repositories work the same.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use git2::{ObjectType, Oid, Repository, TreeWalkMode, TreeWalkResult};

use crate::source::{EntryKind, Fs, FsError, MAX_FILE_BYTES};

/// One entry of the tree.
#[derive(Debug, Clone)]
enum Node {
    Dir(Vec<String>),
    File(Oid),
    Symlink(PathBuf),
}

/// The tree of one commit, mounted at an absolute path (`tree_root`).
pub struct GitFs {
    tree_root: PathBuf,
    git_dir: PathBuf,
    commit: Oid,
    nodes: HashMap<PathBuf, Node>,
    /// Open repositories ready for reading blobs: `Repository` is not `Sync`, so each
    /// reader takes one (or opens a new one) and gives it back, which keeps parallel
    /// renders parallel.
    pool: Mutex<Vec<Repository>>,
}

impl std::fmt::Debug for GitFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitFs")
            .field("tree_root", &self.tree_root)
            .field("git_dir", &self.git_dir)
            .field("commit", &self.commit)
            .finish()
    }
}

impl GitFs {
    /// Walks the tree of `commit` in the repository at `git_dir`, mounted at `tree_root`.
    pub(crate) fn open(
        repo: Repository,
        commit: Oid,
        tree_root: &Path,
    ) -> Result<GitFs, git2::Error> {
        let tree = repo.find_commit(commit)?.tree()?;
        let mut nodes: HashMap<PathBuf, Node> = HashMap::new();
        let mut children: HashMap<PathBuf, Vec<String>> = HashMap::new();
        children.insert(tree_root.to_path_buf(), Vec::new());
        let mut failure = None;
        tree.walk(TreeWalkMode::PreOrder, |parent, entry| {
            let Ok(name) = std::str::from_utf8(entry.name_bytes()) else {
                return TreeWalkResult::Skip;
            };
            let dir = tree_root.join(parent);
            let path = dir.join(name);
            children.entry(dir).or_default().push(name.to_string());
            let mode = entry.filemode();
            let node = match entry.kind() {
                Some(ObjectType::Tree) => {
                    children.entry(path.clone()).or_default();
                    return TreeWalkResult::Ok;
                }
                Some(ObjectType::Blob) if mode == 0o120000 => match repo.find_blob(entry.id()) {
                    Ok(blob) => Node::Symlink(PathBuf::from(
                        String::from_utf8_lossy(blob.content()).into_owned(),
                    )),
                    Err(e) => {
                        failure = Some(e);
                        return TreeWalkResult::Abort;
                    }
                },
                Some(ObjectType::Blob) => Node::File(entry.id()),
                // A submodule: an empty directory, as in a checkout without `--recursive`.
                _ => {
                    children.entry(path.clone()).or_default();
                    return TreeWalkResult::Ok;
                }
            };
            nodes.insert(path, node);
            TreeWalkResult::Ok
        })?;
        if let Some(e) = failure {
            return Err(e);
        }
        drop(tree);
        for (dir, mut names) in children {
            names.sort();
            nodes.insert(dir, Node::Dir(names));
        }
        let git_dir = repo.path().to_path_buf();
        Ok(GitFs {
            tree_root: tree_root.to_path_buf(),
            git_dir,
            commit,
            nodes,
            pool: Mutex::new(vec![repo]),
        })
    }

    /// The commit this tree belongs to.
    pub fn commit(&self) -> String {
        self.commit.to_string()
    }

    /// Every file of the tree (not symlinks), sorted: absolute paths under the root.
    pub fn files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = self
            .nodes
            .iter()
            .filter(|(_, node)| matches!(node, Node::File(_)))
            .map(|(path, _)| path.clone())
            .collect();
        files.sort();
        files
    }

    fn with_repo<T>(&self, read: impl FnOnce(&Repository) -> T) -> Result<T, git2::Error> {
        let taken = self.pool.lock().ok().and_then(|mut pool| pool.pop());
        let repo = match taken {
            Some(repo) => repo,
            None => {
                Repository::open_bare(&self.git_dir).or_else(|_| Repository::open(&self.git_dir))?
            }
        };
        let value = read(&repo);
        if let Ok(mut pool) = self.pool.lock() {
            pool.push(repo);
        }
        Ok(value)
    }
}

fn io(path: &Path, cause: impl std::fmt::Display) -> FsError {
    FsError::Io {
        path: path.to_path_buf(),
        cause: cause.to_string(),
    }
}

impl Fs for GitFs {
    fn tree_root(&self) -> &Path {
        &self.tree_root
    }

    fn entry_kind(&self, path: &Path) -> Result<Option<EntryKind>, FsError> {
        // The folders above the mount point exist, so paths resolve from `/` down.
        if self.tree_root.starts_with(path) {
            return Ok(Some(EntryKind::Dir));
        }
        Ok(self.nodes.get(path).map(|node| match node {
            Node::Dir(_) => EntryKind::Dir,
            Node::File(_) => EntryKind::File,
            Node::Symlink(_) => EntryKind::Symlink,
        }))
    }

    fn read_link(&self, path: &Path) -> Result<PathBuf, FsError> {
        match self.nodes.get(path) {
            Some(Node::Symlink(target)) => Ok(target.clone()),
            Some(_) => Err(io(path, "not a symbolic link")),
            None => Err(FsError::NotFound {
                path: path.to_path_buf(),
            }),
        }
    }

    fn read_raw(&self, path: &Path) -> Result<Vec<u8>, FsError> {
        let oid = match self.nodes.get(path) {
            Some(Node::File(oid)) => *oid,
            Some(Node::Dir(_)) => {
                return Err(FsError::IsADirectory {
                    path: path.to_path_buf(),
                });
            }
            Some(Node::Symlink(_)) => return Err(io(path, "is a symbolic link")),
            None => {
                return Err(FsError::NotFound {
                    path: path.to_path_buf(),
                });
            }
        };
        self.with_repo(|repo| {
            let odb = repo.odb()?;
            let (size, _) = odb.read_header(oid)?;
            if size as u64 > MAX_FILE_BYTES {
                return Ok(Err(FsError::TooLarge {
                    path: path.to_path_buf(),
                    size: size as u64,
                    limit: MAX_FILE_BYTES,
                }));
            }
            Ok(Ok(repo.find_blob(oid)?.content().to_vec()))
        })
        .and_then(|r: Result<Result<Vec<u8>, FsError>, git2::Error>| r)
        .map_err(|e| io(path, e.message()))?
    }

    fn list_raw(&self, path: &Path) -> Result<Vec<String>, FsError> {
        match self.nodes.get(path) {
            Some(Node::Dir(names)) => Ok(names.clone()),
            Some(_) => Err(FsError::NotADirectory {
                path: path.to_path_buf(),
            }),
            None => Err(FsError::NotFound {
                path: path.to_path_buf(),
            }),
        }
    }
}

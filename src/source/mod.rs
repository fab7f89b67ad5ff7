//! Where manifests come from: a directory on disk or a git revision, read through one `Fs`
//! trait so the renderer never touches the outside world directly.
//!
//! Paths given to an [`Fs`] are absolute. [`Fs::resolve`] cleans a path lexically (as Go's
//! `filepath.Join` does) and then follows symlinks one component at a time, refusing any
//! symlink whose target lies outside the tree the `Fs` was opened on. [`Restrictor`] adds
//! kustomize's `LoadRestrictionsRootOnly`: files named by a kustomization must resolve inside
//! that kustomization's directory.
//!
//! Implementations: [`DiskFs`] (the real file system), [`MemFs`] (an in-memory tree for
//! tests) and [`git::GitFs`] (the tree of a commit, read from git objects).

mod disk;
pub mod git;
mod mem;

use std::path::{Component, Path, PathBuf};

pub use disk::DiskFs;
pub use mem::MemFs;

/// Files larger than this are refused rather than read (a limit, not an OOM).
pub const MAX_FILE_BYTES: u64 = 32 * 1024 * 1024;

/// How many symlinks one path may traverse before we call it a loop.
const MAX_SYMLINK_HOPS: usize = 40;

/// What a path names, without following a final symlink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
}

/// A file-system operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FsError {
    /// Nothing exists at the path.
    #[error("{}: no such file or directory", path.display())]
    NotFound {
        /// The path looked up.
        path: PathBuf,
    },
    /// The path names a directory where a file was expected.
    #[error("{}: is a directory, not a file", path.display())]
    IsADirectory {
        /// The path looked up.
        path: PathBuf,
    },
    /// The path names a file where a directory was expected.
    #[error("{}: not a directory", path.display())]
    NotADirectory {
        /// The path looked up.
        path: PathBuf,
    },
    /// A symlink resolves to somewhere outside the tree being read.
    #[error("{}: symlink points to {} outside the tree {}", path.display(), target.display(), tree.display())]
    SymlinkOutsideTree {
        /// The symlink.
        path: PathBuf,
        /// Where it points (resolved).
        target: PathBuf,
        /// The tree the file system was opened on.
        tree: PathBuf,
    },
    /// Too many symlinks on one path.
    #[error("{}: too many levels of symbolic links", path.display())]
    SymlinkLoop {
        /// The path looked up.
        path: PathBuf,
    },
    /// The path names a FIFO, socket or device: never read (it could block forever).
    #[error("{}: not a regular file or directory; refusing to read it", path.display())]
    NotRegular {
        /// The path looked up.
        path: PathBuf,
    },
    /// The file exceeds [`MAX_FILE_BYTES`].
    #[error("{}: file is {size} bytes, over the {limit}-byte limit", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The path is not absolute (callers must join it to a root first).
    #[error("{}: path is not absolute", path.display())]
    NotAbsolute {
        /// The path given.
        path: PathBuf,
    },
    /// Any other IO failure.
    #[error("{}: {cause}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The operating system's message.
        cause: String,
    },
    /// A load restrictor refused a file outside a kustomization's directory.
    #[error("security; file '{}' is not in or below '{}'", path.display(), root.display())]
    OutsideRoot {
        /// The file (resolved).
        path: PathBuf,
        /// The kustomization directory.
        root: PathBuf,
    },
}

/// A read-only tree of files. Every path is absolute.
pub trait Fs: Send + Sync + std::fmt::Debug {
    /// The top of the tree: symlinks may not point outside it.
    fn tree_root(&self) -> &Path;

    /// What is at `path`, without following a final symlink; `None` when nothing is there.
    fn entry_kind(&self, path: &Path) -> Result<Option<EntryKind>, FsError>;

    /// The target of the symlink at `path`, as stored (may be relative).
    fn read_link(&self, path: &Path) -> Result<PathBuf, FsError>;

    /// Contents of the file at `path` (already resolved, no symlinks left).
    fn read_raw(&self, path: &Path) -> Result<Vec<u8>, FsError>;

    /// Names of the entries of the directory at `path` (already resolved), sorted.
    fn list_raw(&self, path: &Path) -> Result<Vec<String>, FsError>;

    /// Cleans `path` lexically, then follows every symlink on it; the result names an
    /// existing entry that is not a symlink.
    fn resolve(&self, path: &Path) -> Result<PathBuf, FsError> {
        resolve_with(self, path)
    }

    /// True when `path` resolves to a directory.
    fn is_dir(&self, path: &Path) -> bool {
        self.resolve(path)
            .ok()
            .and_then(|p| self.entry_kind(&p).ok().flatten())
            == Some(EntryKind::Dir)
    }

    /// True when `path` resolves to a file.
    fn is_file(&self, path: &Path) -> bool {
        self.resolve(path)
            .ok()
            .and_then(|p| self.entry_kind(&p).ok().flatten())
            == Some(EntryKind::File)
    }

    /// Reads the file `path` names, following symlinks (within the tree).
    fn read(&self, path: &Path) -> Result<Vec<u8>, FsError> {
        let resolved = self.resolve(path)?;
        match self.entry_kind(&resolved)? {
            Some(EntryKind::Dir) => Err(FsError::IsADirectory {
                path: path.to_path_buf(),
            }),
            Some(_) => self.read_raw(&resolved),
            None => Err(FsError::NotFound {
                path: path.to_path_buf(),
            }),
        }
    }

    /// Lists the directory `path` names, following symlinks (within the tree).
    fn list_dir(&self, path: &Path) -> Result<Vec<String>, FsError> {
        let resolved = self.resolve(path)?;
        match self.entry_kind(&resolved)? {
            Some(EntryKind::Dir) => self.list_raw(&resolved),
            Some(_) => Err(FsError::NotADirectory {
                path: path.to_path_buf(),
            }),
            None => Err(FsError::NotFound {
                path: path.to_path_buf(),
            }),
        }
    }
}

/// Removes `.` and `..` and doubled separators without touching the file system, as Go's
/// `filepath.Clean` does (`..` above the root stays at the root).
pub fn clean(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    let mut depth = 0usize;
    let absolute = path.has_root();
    for component in path.components() {
        match component {
            Component::Prefix(p) => out.push(p.as_os_str()),
            Component::RootDir => out.push(Component::RootDir.as_os_str()),
            Component::CurDir => {}
            Component::ParentDir => {
                if depth > 0 {
                    out.pop();
                    depth -= 1;
                } else if !absolute {
                    out.push("..");
                }
            }
            Component::Normal(name) => {
                out.push(name);
                depth += 1;
            }
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

fn resolve_with<F: Fs + ?Sized>(fs: &F, path: &Path) -> Result<PathBuf, FsError> {
    if !path.has_root() {
        return Err(FsError::NotAbsolute {
            path: path.to_path_buf(),
        });
    }
    let mut hops = 0usize;
    // Components still to walk, in reverse so `pop` yields the next one.
    let mut pending: Vec<std::ffi::OsString> = clean(path)
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            _ => None,
        })
        .rev()
        .collect();
    let mut current = PathBuf::from(Component::RootDir.as_os_str());
    while let Some(name) = pending.pop() {
        if name == ".." {
            current.pop();
            continue;
        }
        let candidate = current.join(&name);
        match fs.entry_kind(&candidate)? {
            None => {
                return Err(FsError::NotFound {
                    path: path.to_path_buf(),
                });
            }
            Some(EntryKind::Symlink) => {
                hops += 1;
                if hops > MAX_SYMLINK_HOPS {
                    return Err(FsError::SymlinkLoop {
                        path: path.to_path_buf(),
                    });
                }
                let target = fs.read_link(&candidate)?;
                let joined = clean(&current.join(&target));
                // Only links inside the tree are held to it: a link above it (say `/home`
                // pointing to another disk) is how the tree itself is reached.
                if candidate.starts_with(fs.tree_root()) && !joined.starts_with(fs.tree_root()) {
                    return Err(FsError::SymlinkOutsideTree {
                        path: candidate,
                        target: joined,
                        tree: fs.tree_root().to_path_buf(),
                    });
                }
                // Walk the target from the root again, then whatever remained of the path.
                for component in joined.components().rev() {
                    if let Component::Normal(n) = component {
                        pending.push(n.to_os_string());
                    }
                }
                current = PathBuf::from(Component::RootDir.as_os_str());
            }
            Some(EntryKind::File) if !pending.is_empty() => {
                return Err(FsError::NotADirectory { path: candidate });
            }
            Some(_) => current = candidate,
        }
    }
    Ok(current)
}

/// kustomize's `LoadRestrictionsRootOnly`: a file a kustomization names must resolve (after
/// symlinks) inside the kustomization's own directory.
#[derive(Debug, Clone, Copy, Default)]
pub struct Restrictor;

impl Restrictor {
    /// Resolves `path` and checks it lies in or below `root` (itself resolved).
    pub fn check(fs: &dyn Fs, root: &Path, path: &Path) -> Result<PathBuf, FsError> {
        let resolved = fs.resolve(path)?;
        if resolved.starts_with(root) {
            Ok(resolved)
        } else {
            Err(FsError::OutsideRoot {
                path: resolved,
                root: root.to_path_buf(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_is_lexical() {
        assert_eq!(clean(Path::new("/a/b/../c/./d")), PathBuf::from("/a/c/d"));
        assert_eq!(clean(Path::new("/../a")), PathBuf::from("/a"));
        assert_eq!(clean(Path::new("a/../../b")), PathBuf::from("../b"));
    }

    #[test]
    fn symlinks_inside_the_tree_resolve() {
        let mut fs = MemFs::new("/repo");
        fs.add_file("/repo/base/a.yaml", "x: 1\n");
        fs.add_symlink("/repo/overlay/link.yaml", "../base/a.yaml");
        fs.add_symlink("/repo/alias", "base");
        assert_eq!(
            fs.resolve(Path::new("/repo/overlay/link.yaml")).ok(),
            Some("/repo/base/a.yaml".into())
        );
        assert_eq!(
            fs.read(Path::new("/repo/alias/a.yaml")).ok(),
            Some(b"x: 1\n".to_vec())
        );
        assert!(fs.is_dir(Path::new("/repo/alias")));
    }

    #[test]
    fn symlinks_out_of_the_tree_are_refused() {
        let mut fs = MemFs::new("/repo");
        fs.add_file("/etc/passwd", "root\n");
        fs.add_symlink("/repo/secret.yaml", "/etc/passwd");
        assert!(matches!(
            fs.read(Path::new("/repo/secret.yaml")),
            Err(FsError::SymlinkOutsideTree { .. })
        ));
    }

    #[test]
    fn symlinks_above_the_tree_are_followed() {
        let mut fs = MemFs::new("/data/home/repo");
        fs.add_file("/data/home/repo/a.yaml", "x: 1\n");
        fs.add_symlink("/home", "/data/home");
        assert_eq!(
            fs.read(Path::new("/home/repo/a.yaml")).ok(),
            Some(b"x: 1\n".to_vec())
        );
    }

    #[test]
    fn symlink_loops_end() {
        let mut fs = MemFs::new("/repo");
        fs.add_symlink("/repo/a", "b");
        fs.add_symlink("/repo/b", "a");
        assert!(matches!(
            fs.resolve(Path::new("/repo/a")),
            Err(FsError::SymlinkLoop { .. })
        ));
    }

    #[test]
    fn restrictor_keeps_files_under_the_root() {
        let mut fs = MemFs::new("/repo");
        fs.add_file("/repo/base/a.yaml", "x: 1\n");
        fs.add_file("/repo/overlay/kustomization.yaml", "");
        let root = Path::new("/repo/overlay");
        assert!(
            Restrictor::check(&fs, root, Path::new("/repo/overlay/kustomization.yaml")).is_ok()
        );
        assert!(matches!(
            Restrictor::check(&fs, root, Path::new("/repo/overlay/../base/a.yaml")),
            Err(FsError::OutsideRoot { .. })
        ));
    }
}

//! The real file system.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use super::{EntryKind, Fs, FsError, MAX_FILE_BYTES};

/// Reads files from disk; symlinks may not leave `tree_root`.
#[derive(Debug, Clone)]
pub struct DiskFs {
    tree_root: PathBuf,
}

impl DiskFs {
    /// A file system whose symlinks must stay under `tree_root`.
    pub fn new(tree_root: &Path) -> Result<DiskFs, FsError> {
        let tree_root = std::fs::canonicalize(tree_root).map_err(|e| io_error(tree_root, &e))?;
        Ok(DiskFs { tree_root })
    }

    /// A file system for building `dir`: the tree is the git work tree holding `dir` (the
    /// nearest ancestor with a `.git`), or the whole file system when there is none.
    pub fn for_dir(dir: &Path) -> Result<DiskFs, FsError> {
        let start = std::fs::canonicalize(dir).map_err(|e| io_error(dir, &e))?;
        let tree_root = start
            .ancestors()
            .find(|a| a.join(".git").exists())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("/"));
        Ok(DiskFs { tree_root })
    }
}

fn io_error(path: &Path, err: &std::io::Error) -> FsError {
    match err.kind() {
        ErrorKind::NotFound => FsError::NotFound {
            path: path.to_path_buf(),
        },
        _ => FsError::Io {
            path: path.to_path_buf(),
            cause: err.to_string(),
        },
    }
}

impl Fs for DiskFs {
    fn tree_root(&self) -> &Path {
        &self.tree_root
    }

    fn entry_kind(&self, path: &Path) -> Result<Option<EntryKind>, FsError> {
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_symlink() => Ok(Some(EntryKind::Symlink)),
            Ok(meta) if meta.is_dir() => Ok(Some(EntryKind::Dir)),
            Ok(_) => Ok(Some(EntryKind::File)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) if e.raw_os_error() == Some(20) => Ok(None), // ENOTDIR: a file on the way
            Err(e) => Err(io_error(path, &e)),
        }
    }

    fn read_link(&self, path: &Path) -> Result<PathBuf, FsError> {
        std::fs::read_link(path).map_err(|e| io_error(path, &e))
    }

    fn read_raw(&self, path: &Path) -> Result<Vec<u8>, FsError> {
        let meta = std::fs::metadata(path).map_err(|e| io_error(path, &e))?;
        if meta.is_dir() {
            return Err(FsError::IsADirectory {
                path: path.to_path_buf(),
            });
        }
        // A FIFO named in `resources` would block the read forever; sockets and devices are
        // never manifests either.
        if !meta.is_file() {
            return Err(FsError::NotRegular {
                path: path.to_path_buf(),
            });
        }
        if meta.len() > MAX_FILE_BYTES {
            return Err(FsError::TooLarge {
                path: path.to_path_buf(),
                size: meta.len(),
                limit: MAX_FILE_BYTES,
            });
        }
        std::fs::read(path).map_err(|e| io_error(path, &e))
    }

    fn list_raw(&self, path: &Path) -> Result<Vec<String>, FsError> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(path).map_err(|e| io_error(path, &e))? {
            let entry = entry.map_err(|e| io_error(path, &e))?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }
}

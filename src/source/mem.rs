//! An in-memory tree, for tests.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{EntryKind, Fs, FsError, MAX_FILE_BYTES, clean};

#[derive(Debug, Clone)]
enum Entry {
    File(Vec<u8>),
    Dir,
    Symlink(PathBuf),
}

/// A tree of files held in memory; parent directories are created implicitly.
#[derive(Debug, Clone)]
pub struct MemFs {
    tree_root: PathBuf,
    entries: BTreeMap<PathBuf, Entry>,
}

impl MemFs {
    /// An empty tree; symlinks may not leave `tree_root`.
    pub fn new(tree_root: impl AsRef<Path>) -> MemFs {
        let mut fs = MemFs {
            tree_root: clean(tree_root.as_ref()),
            entries: BTreeMap::new(),
        };
        let root = fs.tree_root.clone();
        fs.add_dir(&root);
        fs
    }

    fn add_parents(&mut self, path: &Path) {
        for ancestor in path.ancestors().skip(1) {
            self.entries
                .entry(ancestor.to_path_buf())
                .or_insert(Entry::Dir);
        }
    }

    /// Adds (or replaces) a file.
    pub fn add_file(&mut self, path: impl AsRef<Path>, content: impl AsRef<[u8]>) {
        let path = clean(path.as_ref());
        self.add_parents(&path);
        self.entries
            .insert(path, Entry::File(content.as_ref().to_vec()));
    }

    /// Adds a directory.
    pub fn add_dir(&mut self, path: impl AsRef<Path>) {
        let path = clean(path.as_ref());
        self.add_parents(&path);
        self.entries.insert(path, Entry::Dir);
    }

    /// Adds a symlink pointing at `target` (relative to the link's directory, or absolute).
    pub fn add_symlink(&mut self, path: impl AsRef<Path>, target: impl AsRef<Path>) {
        let path = clean(path.as_ref());
        self.add_parents(&path);
        self.entries
            .insert(path, Entry::Symlink(target.as_ref().to_path_buf()));
    }
}

impl Fs for MemFs {
    fn tree_root(&self) -> &Path {
        &self.tree_root
    }

    fn entry_kind(&self, path: &Path) -> Result<Option<EntryKind>, FsError> {
        if path == Path::new("/") {
            return Ok(Some(EntryKind::Dir));
        }
        Ok(self.entries.get(path).map(|e| match e {
            Entry::File(_) => EntryKind::File,
            Entry::Dir => EntryKind::Dir,
            Entry::Symlink(_) => EntryKind::Symlink,
        }))
    }

    fn read_link(&self, path: &Path) -> Result<PathBuf, FsError> {
        match self.entries.get(path) {
            Some(Entry::Symlink(target)) => Ok(target.clone()),
            Some(_) => Err(FsError::Io {
                path: path.to_path_buf(),
                cause: "not a symlink".into(),
            }),
            None => Err(FsError::NotFound {
                path: path.to_path_buf(),
            }),
        }
    }

    fn read_raw(&self, path: &Path) -> Result<Vec<u8>, FsError> {
        match self.entries.get(path) {
            Some(Entry::File(content)) if content.len() as u64 > MAX_FILE_BYTES => {
                Err(FsError::TooLarge {
                    path: path.to_path_buf(),
                    size: content.len() as u64,
                    limit: MAX_FILE_BYTES,
                })
            }
            Some(Entry::File(content)) => Ok(content.clone()),
            Some(_) => Err(FsError::IsADirectory {
                path: path.to_path_buf(),
            }),
            None => Err(FsError::NotFound {
                path: path.to_path_buf(),
            }),
        }
    }

    fn list_raw(&self, path: &Path) -> Result<Vec<String>, FsError> {
        Ok(self
            .entries
            .keys()
            .filter(|p| p.parent() == Some(path))
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect())
    }
}

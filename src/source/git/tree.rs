//! [`GitFs`]: the tree of one commit, read from git objects through the [`Fs`] trait.
//!
//! Nothing is checked out: the work tree and the index are never touched, and bare
//! repositories work the same. Directories are read when first looked into and file
//! contents when first read, through [`Objects`], a cache keyed by object id that every
//! tree of one source shares: two commits of a pull request share most of their subtrees
//! and blobs, so each is read and inflated once per run, however many trees and
//! applications look at it.

use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

use git2::{ObjectType, Oid, Repository};

use crate::source::{EntryKind, Fs, FsError, MAX_FILE_BYTES};

/// One entry of a directory.
#[derive(Debug, Clone, Copy)]
enum Entry {
    Dir(Oid),
    File(Oid),
    Symlink(Oid),
    /// A submodule: an empty directory, as in a checkout without `--recursive`.
    Submodule,
}

/// The entries of one tree object, by name (sorted).
type Listing = BTreeMap<String, Entry>;

/// Blobs larger than this are read each time rather than kept.
const CACHED_BLOB_BYTES: usize = 1024 * 1024;
/// When the cached blobs reach this size the cache starts over (a watcher reads commit
/// after commit; its memory must stay flat).
const CACHE_BUDGET_BYTES: usize = 64 * 1024 * 1024;
/// Same, for directory listings (entries counted).
const CACHE_BUDGET_ENTRIES: usize = 500_000;

#[derive(Default)]
struct Cached {
    dirs: HashMap<Oid, Arc<Listing>>,
    entries: usize,
    blobs: HashMap<Oid, Arc<Vec<u8>>>,
    bytes: usize,
}

/// The object database of one repository as the trees read it: open repositories ready for
/// reading (`Repository` is not `Sync`, so each reader takes one or opens a new one and
/// gives it back, which keeps parallel renders parallel), and the directories and blobs
/// read so far, by object id (content-addressed, so never stale).
pub(crate) struct Objects {
    git_dir: PathBuf,
    pool: Mutex<Vec<Repository>>,
    cached: Mutex<Cached>,
}

impl std::fmt::Debug for Objects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Objects")
            .field("git_dir", &self.git_dir)
            .finish()
    }
}

impl Objects {
    /// The objects of the repository at `git_dir`, nothing read yet.
    pub(crate) fn new(git_dir: &Path) -> Objects {
        Objects {
            git_dir: git_dir.to_path_buf(),
            pool: Mutex::new(Vec::new()),
            cached: Mutex::new(Cached::default()),
        }
    }

    /// Runs `read` with an open repository (one of the pool, or a new one).
    pub(crate) fn with_repo<T>(
        &self,
        read: impl FnOnce(&Repository) -> T,
    ) -> Result<T, git2::Error> {
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

    fn listing(&self, tree: Oid) -> Result<Arc<Listing>, git2::Error> {
        if let Some(found) = self
            .cached
            .lock()
            .ok()
            .and_then(|c| c.dirs.get(&tree).cloned())
        {
            return Ok(found);
        }
        let listing = self.with_repo(|repo| -> Result<Listing, git2::Error> {
            let tree = repo.find_tree(tree)?;
            let mut listing = Listing::new();
            for entry in tree.iter() {
                let Ok(name) = std::str::from_utf8(entry.name_bytes()) else {
                    continue;
                };
                let kind = match entry.kind() {
                    Some(ObjectType::Tree) => Entry::Dir(entry.id()),
                    Some(ObjectType::Blob) if entry.filemode() == 0o120000 => {
                        Entry::Symlink(entry.id())
                    }
                    Some(ObjectType::Blob) => Entry::File(entry.id()),
                    _ => Entry::Submodule,
                };
                listing.insert(name.to_string(), kind);
            }
            Ok(listing)
        })??;
        let listing = Arc::new(listing);
        if let Ok(mut cached) = self.cached.lock() {
            if cached.entries + listing.len() > CACHE_BUDGET_ENTRIES {
                cached.dirs.clear();
                cached.entries = 0;
            }
            cached.entries += listing.len();
            cached.dirs.insert(tree, listing.clone());
        }
        Ok(listing)
    }

    /// The contents of a blob, refused (without reading it) past [`MAX_FILE_BYTES`].
    fn blob(&self, oid: Oid, path: &Path) -> Result<Arc<Vec<u8>>, FsError> {
        if let Some(found) = self
            .cached
            .lock()
            .ok()
            .and_then(|c| c.blobs.get(&oid).cloned())
        {
            return Ok(found);
        }
        let read = self
            .with_repo(|repo| -> Result<Result<Vec<u8>, FsError>, git2::Error> {
                let odb = repo.odb()?;
                let (size, _) = odb.read_header(oid)?;
                if size as u64 > MAX_FILE_BYTES {
                    return Ok(Err(FsError::TooLarge {
                        path: path.to_path_buf(),
                        size: size as u64,
                        limit: MAX_FILE_BYTES,
                    }));
                }
                Ok(Ok(odb.read(oid)?.data().to_vec()))
            })
            .and_then(|r| r)
            .map_err(|e| io(path, e.message()))??;
        let blob = Arc::new(read);
        if blob.len() <= CACHED_BLOB_BYTES
            && let Ok(mut cached) = self.cached.lock()
        {
            if cached.bytes + blob.len() > CACHE_BUDGET_BYTES {
                cached.blobs.clear();
                cached.bytes = 0;
            }
            cached.bytes += blob.len();
            cached.blobs.insert(oid, blob.clone());
        }
        Ok(blob)
    }
}

/// The tree of one commit, mounted at an absolute path (`tree_root`).
pub struct GitFs {
    tree_root: PathBuf,
    commit: Oid,
    tree: Oid,
    objects: Arc<Objects>,
}

impl std::fmt::Debug for GitFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitFs")
            .field("tree_root", &self.tree_root)
            .field("git_dir", &self.objects.git_dir)
            .field("commit", &self.commit)
            .finish()
    }
}

impl GitFs {
    /// The tree of `commit` in `objects`, mounted at `tree_root`.
    pub(crate) fn open(
        objects: Arc<Objects>,
        commit: Oid,
        tree_root: &Path,
    ) -> Result<GitFs, git2::Error> {
        let tree = objects.with_repo(|repo| repo.find_commit(commit).map(|c| c.tree_id()))??;
        Ok(GitFs {
            tree_root: tree_root.to_path_buf(),
            commit,
            tree,
            objects,
        })
    }

    /// The commit this tree belongs to.
    pub fn commit(&self) -> String {
        self.commit.to_string()
    }

    /// Every file of the tree (not symlinks), sorted: absolute paths under the root.
    pub fn files(&self) -> Vec<PathBuf> {
        let mut files = Vec::new();
        let mut pending = vec![(self.tree_root.clone(), self.tree)];
        while let Some((dir, tree)) = pending.pop() {
            let Ok(listing) = self.objects.listing(tree) else {
                continue;
            };
            for (name, entry) in listing.iter() {
                match entry {
                    Entry::Dir(oid) => pending.push((dir.join(name), *oid)),
                    Entry::File(_) => files.push(dir.join(name)),
                    Entry::Symlink(_) | Entry::Submodule => {}
                }
            }
        }
        files.sort();
        files
    }

    /// The entry at `path` (`None`: nothing there, or a path through a file or symlink).
    fn lookup(&self, path: &Path) -> Result<Option<Entry>, FsError> {
        let Ok(relative) = path.strip_prefix(&self.tree_root) else {
            return Ok(None);
        };
        let mut entry = Entry::Dir(self.tree);
        for component in relative.components() {
            let Component::Normal(name) = component else {
                return Ok(None);
            };
            let Entry::Dir(tree) = entry else {
                return Ok(None);
            };
            let listing = self
                .objects
                .listing(tree)
                .map_err(|e| io(path, e.message()))?;
            match name.to_str().and_then(|name| listing.get(name)) {
                Some(found) => entry = *found,
                None => return Ok(None),
            }
        }
        Ok(Some(entry))
    }
}

fn io(path: &Path, cause: impl std::fmt::Display) -> FsError {
    FsError::Io {
        path: path.to_path_buf(),
        cause: cause.to_string(),
    }
}

fn not_found(path: &Path) -> FsError {
    FsError::NotFound {
        path: path.to_path_buf(),
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
        Ok(self.lookup(path)?.map(|entry| match entry {
            Entry::Dir(_) | Entry::Submodule => EntryKind::Dir,
            Entry::File(_) => EntryKind::File,
            Entry::Symlink(_) => EntryKind::Symlink,
        }))
    }

    fn read_link(&self, path: &Path) -> Result<PathBuf, FsError> {
        match self.lookup(path)? {
            Some(Entry::Symlink(oid)) => {
                let target = self.objects.blob(oid, path)?;
                Ok(PathBuf::from(String::from_utf8_lossy(&target).into_owned()))
            }
            Some(_) => Err(io(path, "not a symbolic link")),
            None => Err(not_found(path)),
        }
    }

    fn read_raw(&self, path: &Path) -> Result<Vec<u8>, FsError> {
        match self.lookup(path)? {
            Some(Entry::File(oid)) => Ok(self.objects.blob(oid, path)?.as_ref().clone()),
            Some(Entry::Dir(_) | Entry::Submodule) => Err(FsError::IsADirectory {
                path: path.to_path_buf(),
            }),
            Some(Entry::Symlink(_)) => Err(io(path, "is a symbolic link")),
            None => Err(not_found(path)),
        }
    }

    fn list_raw(&self, path: &Path) -> Result<Vec<String>, FsError> {
        match self.lookup(path)? {
            Some(Entry::Dir(tree)) => Ok(self
                .objects
                .listing(tree)
                .map_err(|e| io(path, e.message()))?
                .keys()
                .cloned()
                .collect()),
            Some(Entry::Submodule) => Ok(Vec::new()),
            Some(_) => Err(FsError::NotADirectory {
                path: path.to_path_buf(),
            }),
            None => Err(not_found(path)),
        }
    }
}

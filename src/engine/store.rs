//! The object store: the cluster state in memory, persisted in one SQLite file.
//!
//! A command loads the whole state once, works on it in memory and writes back only what
//! changed in one transaction. Objects are JSON documents keyed by kind, namespace and name;
//! the store stamps uid, resourceVersion (one counter for the whole cluster), generation
//! (bumped when `spec` changes) and creationTimestamp.
//!
//! Invariant: controllers read the state and return changes; only the engine writes through
//! [`State::create`], [`State::update`] and [`State::remove`].

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::clock::{GENESIS, Millis, Rng, rfc3339};
use super::controllers::pod::PodSim;
use super::doc;
use super::events::{Event, Events, NewEvent};
use super::images::ImageTable;
use super::kinds::{self, KindInfo};

/// Errors of the database layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite reported an error (its words are in the message, once: not a `source` too,
    /// so an error chain never repeats them).
    #[error("engine state {path}: {cause}")]
    Sqlite {
        /// The state file.
        path: String,
        /// The cause.
        cause: rusqlite::Error,
    },
    /// Another process kept the file busy past the wait.
    #[error(
        "engine state {path} is in use by another reconcile process (waited {waited_ms} ms); try again when it finishes"
    )]
    Busy {
        /// The state file.
        path: String,
        /// How long we waited.
        waited_ms: u64,
    },
    /// A stored document could not be read back.
    #[error("engine state {path}: stored {what} is unreadable: {detail}")]
    Corrupt {
        /// The state file.
        path: String,
        /// Which record.
        what: String,
        /// Why.
        detail: String,
    },
    /// The state file named does not exist and the command may not create it.
    #[error("engine state {path} does not exist")]
    Missing {
        /// The state file.
        path: String,
    },
    /// The file exists but is not an engine state (empty, not SQLite, or another program's
    /// database); it is never turned into one.
    #[error("{path} is not an engine state: {why}")]
    NotAState {
        /// The file.
        path: String,
        /// What was found instead.
        why: String,
    },
    /// The disk (or the file's size limit) is full: the write was rolled back whole.
    #[error(
        "engine state {path}: the disk is full (database or disk is full); the write was rolled back"
    )]
    Full {
        /// The state file.
        path: String,
    },
    /// A write to a state opened read-only or lying on a read-only file system.
    #[error(
        "engine state {path} is read-only (a read-only file or file system); commands that only read work"
    )]
    ReadOnly {
        /// The state file.
        path: String,
    },
    /// The state directory could not be created.
    #[error("cannot create directory {path}: {source}")]
    Directory {
        /// The directory.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// How long a second process waits for the file before failing.
pub const BUSY_WAIT_MS: u64 = 5000;

/// An object and the engine's private simulation state beside it.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    /// The object as the API shows it.
    pub doc: Value,
    /// Kubelet simulation state (pods only).
    pub sim: Option<PodSim>,
    /// What controllers read of a pod on every pass (pods only; default otherwise).
    pub facts: PodFacts,
}

impl Stored {
    fn new(kind: &str, doc: Value, sim: Option<PodSim>) -> Stored {
        let facts = PodFacts::of(kind, &doc);
        Stored { doc, sim, facts }
    }
}

/// The fields of a pod that controllers consult on every pass over all pods, read from its
/// document each time the store writes it.
///
/// Why: a pass over 10,000 pods that walks JSON for these spends most of its time in map
/// lookups and cache misses; the store writes a pod far less often than controllers read it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PodFacts {
    /// uid of the controlling owner reference.
    pub controller_uid: Option<String>,
    /// `spec.nodeName` ("" until bound).
    pub node: String,
    /// `status.phase`.
    pub phase: String,
    /// `metadata.deletionTimestamp` is set.
    pub deleting: bool,
    /// When the pod last became Ready, while it is Ready.
    pub ready_since: Option<Millis>,
}

impl PodFacts {
    /// The facts of a stored object (empty for every kind but Pod).
    pub fn of(kind: &str, pod: &Value) -> PodFacts {
        if kind != "Pod" {
            return PodFacts::default();
        }
        PodFacts {
            controller_uid: doc::controller_uid(pod).map(str::to_string),
            node: doc::str_at(pod, &["spec", "nodeName"]).to_string(),
            phase: doc::str_at(pod, &["status", "phase"]).to_string(),
            deleting: doc::is_deleting(pod),
            ready_since: super::controllers::replicaset::ready_since(pod),
        }
    }

    /// Counts toward its controller: not terminating and not finished (see
    /// [`super::controllers::replicaset::is_active`]).
    pub fn is_active(&self) -> bool {
        super::controllers::replicaset::active(self.deleting, &self.phase)
    }

    /// Ready for longer than `min_ready_seconds` (see
    /// [`super::controllers::replicaset::is_available`]).
    pub fn is_available(&self, min_ready_seconds: i64, now: Millis) -> bool {
        super::controllers::replicaset::available(self.ready_since, min_ready_seconds, now)
    }
}

/// Objects of one kind, by (namespace, name).
pub type KindMap = BTreeMap<(String, String), Stored>;

/// The identity of a stored object.
pub type Key = (&'static str, String, String);

/// Objects written or removed, each with the resourceVersion of its last write or removal.
pub type Changed = HashMap<Key, u64>;

/// Who holds the plan/apply lock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockHolder {
    /// Free text given by the locker.
    pub holder: String,
    /// Process id of the locker.
    pub pid: u32,
    /// When (virtual time) it was taken.
    pub since: String,
}

/// The whole cluster state in memory.
#[derive(Debug, Clone)]
pub struct State {
    /// Objects by kind.
    pub objects: BTreeMap<&'static str, KindMap>,
    /// Virtual now.
    pub now: Millis,
    /// The random source.
    pub rng: Rng,
    /// Last resourceVersion handed out.
    pub rv: u64,
    /// The event log.
    pub events: Events,
    /// Image behaviour configuration.
    pub images: ImageTable,
    /// Nodes whose kubelet stopped posting status, with the instant it stopped.
    pub down_nodes: BTreeMap<String, Millis>,
    /// The plan/apply lock.
    pub lock: Option<LockHolder>,
    /// Commit counter read at load (detects writes by other processes).
    pub commit_seq: u64,
    dirty: HashSet<Key>,
    removed: HashSet<Key>,
    /// Objects written or removed since [`State::take_changed`] last ran, with the version
    /// of their last write or removal; `None` until it first runs on this loaded state (only
    /// `engine serve`'s watch journal asks).
    changed: Option<Changed>,
    deletions: u64,
    writes: HashMap<&'static str, u64>,
    /// The last run of each memoized controller (not persisted: a state loaded, restored
    /// or reset starts without it, as its write counters start over).
    pub settle_memo: HashMap<&'static str, ControllerRun>,
}

/// When a controller last ran and what its inputs looked like after its changes were
/// applied: at the same instant with the same inputs it would compute nothing new.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerRun {
    /// The virtual instant of the run.
    pub at: Millis,
    /// The write counters of its input kinds after its changes.
    pub inputs: Vec<u64>,
    /// The wake-up it asked for.
    pub wake: Option<Millis>,
}

static EMPTY: KindMap = BTreeMap::new();

impl State {
    /// A cluster with nothing in it, at the genesis instant, with this seed.
    pub fn empty(seed: u64) -> State {
        State {
            objects: BTreeMap::new(),
            now: GENESIS,
            rng: Rng(seed),
            rv: 0,
            events: Events::default(),
            images: ImageTable::new(),
            down_nodes: BTreeMap::new(),
            lock: None,
            commit_seq: 0,
            dirty: HashSet::new(),
            removed: HashSet::new(),
            changed: None,
            deletions: 0,
            writes: HashMap::new(),
            settle_memo: HashMap::new(),
        }
    }

    /// All objects of a kind.
    pub fn kind(&self, kind: &str) -> &KindMap {
        self.objects.get(kind).unwrap_or(&EMPTY)
    }

    /// One object.
    pub fn get(&self, kind: &str, namespace: &str, name: &str) -> Option<&Stored> {
        self.objects
            .get(kind)?
            .get(&(namespace.to_string(), name.to_string()))
    }

    /// Objects of a kind in one namespace.
    pub fn in_namespace<'a, 'n>(
        &'a self,
        kind: &str,
        namespace: &'n str,
    ) -> impl Iterator<Item = &'a Stored> + 'n
    where
        'a: 'n,
    {
        let map = self.kind(kind);
        let start = (namespace.to_string(), String::new());
        map.range(start..)
            .take_while(move |((ns, _), _)| ns == namespace)
            .map(|(_, s)| s)
    }

    fn next_rv(&mut self) -> String {
        self.rv += 1;
        self.rv.to_string()
    }

    /// A free name for `metadata.generateName` `prefix`: the prefix cut to 58 characters (so
    /// the name fits in 63) and 5 random characters, as the API server makes it.
    pub fn generated_name(&mut self, kind: &str, namespace: &str, prefix: &str) -> String {
        let prefix: String = prefix.chars().take(58).collect();
        loop {
            let candidate = format!("{prefix}{}", self.rng.name_suffix(5));
            if self.get(kind, namespace, &candidate).is_none() {
                return candidate;
            }
        }
    }

    /// Stores a new object: stamps uid, resourceVersion, generation and creationTimestamp.
    /// A `metadata.generateName` without a name gets a random suffix. Returns the key.
    pub fn create(&mut self, info: &'static KindInfo, mut obj: Value, sim: Option<PodSim>) -> Key {
        let ns = if info.namespaced {
            doc::namespace(&obj).to_string()
        } else {
            String::new()
        };
        let mut name = doc::name(&obj).to_string();
        if name.is_empty() {
            let prefix = doc::str_at(&obj, &["metadata", "generateName"]).to_string();
            name = self.generated_name(info.key, &ns, &prefix);
        }
        let uid = self.rng.uuid();
        let rv = self.next_rv();
        let created = rfc3339(self.now);
        let meta = doc::map_mut(&mut obj, &["metadata"]);
        meta.insert("name".into(), Value::String(name.clone()));
        if info.namespaced {
            meta.insert("namespace".into(), Value::String(ns.clone()));
        } else {
            meta.remove("namespace");
        }
        meta.insert("uid".into(), Value::String(uid));
        meta.insert("resourceVersion".into(), Value::String(rv));
        if obj_has_spec(info) {
            doc::map_mut(&mut obj, &["metadata"]).insert("generation".into(), Value::from(1));
        }
        doc::map_mut(&mut obj, &["metadata"])
            .insert("creationTimestamp".into(), Value::String(created));
        self.wrote(info.key);
        let key: Key = (info.key, ns.clone(), name.clone());
        self.objects
            .entry(info.key)
            .or_default()
            .insert((ns, name), Stored::new(info.key, obj, sim));
        self.removed.remove(&key);
        self.touched(&key);
        self.dirty.insert(key.clone());
        key
    }

    /// Replaces an existing object's document; bumps resourceVersion, and generation when
    /// `spec` changed. Does nothing when the document is unchanged. Returns whether the
    /// document changed (false also when the object is absent).
    pub fn update(&mut self, kind: &'static str, mut obj: Value) -> bool {
        let ns = doc::namespace(&obj).to_string();
        let name = doc::name(&obj).to_string();
        let Some(current) = self
            .objects
            .get(kind)
            .and_then(|m| m.get(&(ns.clone(), name.clone())))
        else {
            return false;
        };
        // Controllers mostly change status: a differing status settles it without comparing
        // the whole document.
        if current.doc.get("status") == obj.get("status") && current.doc == obj {
            return false;
        }
        let spec_changed = current.doc.get("spec") != obj.get("spec");
        let generation = doc::i64_at(&current.doc, &["metadata", "generation"]);
        let rv = self.next_rv();
        let meta = doc::map_mut(&mut obj, &["metadata"]);
        meta.insert("resourceVersion".into(), Value::String(rv));
        if let Some(g) = generation {
            meta.insert(
                "generation".into(),
                Value::from(if spec_changed { g + 1 } else { g }),
            );
        }
        let entry = self
            .objects
            .entry(kind)
            .or_default()
            .get_mut(&(ns.clone(), name.clone()));
        if let Some(stored) = entry {
            stored.facts = PodFacts::of(kind, &obj);
            stored.doc = obj;
        }
        let key = (kind, ns, name);
        self.touched(&key);
        self.dirty.insert(key);
        self.wrote(kind);
        true
    }

    /// Replaces an object's `status` (and, when given, one top-level `spec` field) in place;
    /// bumps resourceVersion, and generation when spec changed. Returns whether anything changed.
    pub fn set_status(
        &mut self,
        kind: &'static str,
        namespace: &str,
        name: &str,
        status: Value,
        spec_field: Option<(&str, Value)>,
    ) -> bool {
        let key = (namespace.to_string(), name.to_string());
        let Some(stored) = self.objects.get_mut(kind).and_then(|m| m.get_mut(&key)) else {
            return false;
        };
        let spec_change = spec_field.filter(|(f, v)| doc::at(&stored.doc, &["spec", f]) != Some(v));
        if stored.doc.get("status") == Some(&status) && spec_change.is_none() {
            return false;
        }
        self.rv += 1;
        let rv = self.rv.to_string();
        let doc_ref = &mut stored.doc;
        match doc_ref.get_mut("status") {
            Some(slot) => *slot = status,
            None => doc::set(doc_ref, &["status"], status),
        }
        if let Some((field, value)) = spec_change {
            doc::set(doc_ref, &["spec", field], value);
            if let Some(g) = doc::i64_at(doc_ref, &["metadata", "generation"]) {
                doc::set(doc_ref, &["metadata", "generation"], Value::from(g + 1));
            }
        }
        match doc_ref
            .get_mut("metadata")
            .and_then(|m| m.get_mut("resourceVersion"))
        {
            Some(slot) => *slot = Value::String(rv),
            None => doc::set(doc_ref, &["metadata", "resourceVersion"], Value::String(rv)),
        }
        stored.facts = PodFacts::of(kind, &stored.doc);
        let key = (kind, key.0, key.1);
        self.touched(&key);
        self.dirty.insert(key);
        self.wrote(kind);
        true
    }

    /// Replaces an object's simulation state. Returns whether it changed.
    pub fn set_sim(
        &mut self,
        kind: &'static str,
        namespace: &str,
        name: &str,
        sim: PodSim,
    ) -> bool {
        let key = (namespace.to_string(), name.to_string());
        match self.objects.get_mut(kind).and_then(|m| m.get_mut(&key)) {
            Some(stored) if stored.sim.as_ref() != Some(&sim) => {
                stored.sim = Some(sim);
                self.dirty.insert((kind, key.0, key.1));
                true
            }
            _ => false,
        }
    }

    /// How many writes objects of `kind` have had (documents only, not simulation state).
    pub fn writes(&self, kind: &str) -> u64 {
        self.writes.get(kind).copied().unwrap_or(0)
    }

    fn wrote(&mut self, kind: &'static str) {
        *self.writes.entry(kind).or_default() += 1;
    }

    /// Counts removals and deletions started; the engine runs the garbage collector only
    /// when this moved.
    pub fn deletion_epoch(&self) -> u64 {
        self.deletions
    }

    /// Notes that a deletion started (an object got a deletionTimestamp).
    pub fn note_deletion(&mut self) {
        self.deletions += 1;
    }

    /// Removes an object for good. Returns the removed document.
    pub fn remove(&mut self, kind: &'static str, namespace: &str, name: &str) -> Option<Value> {
        let key = (namespace.to_string(), name.to_string());
        let stored = self.objects.get_mut(kind)?.remove(&key)?;
        self.rv += 1;
        self.deletions += 1;
        self.wrote(kind);
        let key = (kind, key.0, key.1);
        self.touched(&key);
        self.dirty.remove(&key);
        self.removed.insert(key);
        Some(stored.doc)
    }

    /// Notes that `key` was just written or removed, at the version the write took.
    fn touched(&mut self, key: &Key) {
        if let Some(changed) = &mut self.changed {
            changed.insert(key.clone(), self.rv);
        }
    }

    /// The objects whose document was written or that were removed since the last call, and
    /// starts keeping them for the next; `None` on the first call after a load (the caller
    /// compares everything). Lets a watch journal skip a scan of every object per write, and
    /// gives a removal its own version (a watch orders events by version).
    pub fn take_changed(&mut self) -> Option<Changed> {
        self.changed.replace(Changed::new())
    }

    /// Records an event now.
    pub fn event(&mut self, event: NewEvent) {
        self.events.record(event, self.now);
    }

    /// Whether anything changed since load or the last save.
    pub fn is_dirty(&self) -> bool {
        !self.dirty.is_empty() || !self.removed.is_empty() || !self.events.dirty.is_empty()
    }
}

fn obj_has_spec(info: &KindInfo) -> bool {
    !matches!(
        info.kind,
        "ConfigMap"
            | "Secret"
            | "ServiceAccount"
            | "Endpoints"
            | "EndpointSlice"
            | "Role"
            | "RoleBinding"
            | "ClusterRole"
            | "ClusterRoleBinding"
            | "StorageClass"
    )
}

/// One object serialized for the `objects` table: its key, document and simulation state.
type Row<'a> = (&'a Key, String, Option<String>);

/// The SQLite file behind a [`State`].
pub struct Database {
    conn: Connection,
    path: String,
    /// Opened read-only (read commands): nothing is ever written, not even WAL setup.
    read_only: bool,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Database({})", self.path)
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS objects (
    kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
    doc TEXT NOT NULL, sim TEXT,
    PRIMARY KEY (kind, namespace, name)
);
CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, doc TEXT NOT NULL);
";

/// The table every engine state has; a database with tables but not this one is another
/// program's.
const ENGINE_META_TABLE: &str = "meta";

/// The meta key of the plan-sealing key.
const PLAN_KEY: &str = "plan_key";

/// A path as the path part of an SQLite `file:` URI.
fn uri_path(path: &Path) -> String {
    let text = path
        .canonicalize()
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string();
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '?' | '#' | '%' => out.push_str(&format!("%{:02X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// SQLite's file header; an engine state file that is not empty starts with it.
const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// Refuses an existing file that is not an engine state, before SQLite may write to it.
///
/// Only `stat`s the file: opening and closing a descriptor of a database this process
/// already has open would drop every POSIX lock SQLite holds on it (another process could
/// then checkpoint and remove the write-ahead log under a live connection). A file that is
/// not SQLite is refused by SQLite itself on the first query (`refuse_foreign_tables`).
fn check_existing_file(path: &Path) -> Result<(), StoreError> {
    let not_a_state = |why: &str| StoreError::NotAState {
        path: path.display().to_string(),
        why: why.to_string(),
    };
    let meta = std::fs::metadata(path).map_err(|e| not_a_state(&e.to_string()))?;
    if meta.is_dir() {
        return Err(not_a_state("it is a directory"));
    }
    if meta.len() == 0 {
        // A state killed before its first checkpoint has an empty main file and a non-empty
        // write-ahead log beside it; that is a real state, an empty file alone is not.
        let mut wal = path.as_os_str().to_os_string();
        wal.push("-wal");
        let wal_len = std::fs::metadata(PathBuf::from(wal)).map_or(0, |m| m.len());
        if wal_len == 0 {
            return Err(not_a_state("the file is empty"));
        }
        return Ok(());
    }
    if meta.len() < SQLITE_HEADER.len() as u64 {
        return Err(not_a_state("not an SQLite database"));
    }
    Ok(())
}

impl Database {
    /// An empty database in memory that names itself after `path`: the stand-in for a state
    /// file a read-only command found missing (plans made on it name the real target).
    pub fn in_memory_as(path: &Path) -> Result<Database, StoreError> {
        let mut db = Database::open(None)?;
        db.path = path.display().to_string();
        Ok(db)
    }

    /// Opens an existing state file; never creates one (explicit paths).
    pub fn open_existing(path: &Path) -> Result<Database, StoreError> {
        if !path.exists() {
            return Err(StoreError::Missing {
                path: path.display().to_string(),
            });
        }
        Database::open(Some(path))
    }

    /// Opens an existing state file read-only (read commands): works on a read-only file,
    /// directory or file system, and never writes to it.
    pub fn open_read_only(path: &Path) -> Result<Database, StoreError> {
        let label = path.display().to_string();
        if !path.exists() {
            return Err(StoreError::Missing { path: label });
        }
        check_existing_file(path)?;
        use rusqlite::OpenFlags;
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let connect = |conn: Connection| -> Result<Database, StoreError> {
            conn.busy_timeout(std::time::Duration::from_millis(BUSY_WAIT_MS))
                .map_err(|source| StoreError::Sqlite {
                    path: label.clone(),
                    cause: source,
                })?;
            let db = Database {
                conn,
                path: label.clone(),
                read_only: true,
            };
            db.refuse_foreign_tables()?;
            Ok(db)
        };
        let sql = |source| StoreError::Sqlite {
            path: label.clone(),
            cause: source,
        };
        // Only a database whose write-ahead log is absent or empty is whole in its main file;
        // reading one with pending WAL frames as immutable would show stale objects.
        let wal = PathBuf::from(format!("{}-wal", path.display()));
        let whole_in_main_file = std::fs::metadata(&wal).map_or(true, |m| m.len() == 0);
        let reopen_immutable = || {
            let uri = format!("file:{}?immutable=1", uri_path(path));
            Connection::open_with_flags(uri, flags | OpenFlags::SQLITE_OPEN_URI)
                .map_err(sql)
                .and_then(connect)
        };
        match Connection::open_with_flags(path, flags)
            .map_err(sql)
            .and_then(connect)
        {
            Ok(db) => Ok(db),
            // A WAL database needs its `-shm` file; in a directory nobody may write to, with no
            // `-shm` left over, SQLite can read it only as an immutable file (nothing else can
            // be writing there either).
            Err(StoreError::ReadOnly { .. }) if whole_in_main_file => reopen_immutable(),
            Err(StoreError::Sqlite { cause: source, .. })
                if whole_in_main_file
                    && source.sqlite_error_code() == Some(rusqlite::ErrorCode::CannotOpen) =>
            {
                reopen_immutable()
            }
            Err(e) => Err(e),
        }
    }

    /// True when opened read-only.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// The key that seals saved plans of this target (hex), if one was made.
    pub fn plan_key(&self) -> Result<Option<String>, StoreError> {
        self.meta(PLAN_KEY)
    }

    /// The key that seals saved plans of this target, made (32 random bytes) on first use.
    pub fn ensure_plan_key(&self) -> Result<String, StoreError> {
        if let Some(key) = self.plan_key()? {
            return Ok(key);
        }
        use ring::rand::SecureRandom;
        let mut bytes = [0u8; 32];
        ring::rand::SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| self.corrupt("plan key", "no system randomness"))?;
        let key = hex::encode(bytes);
        self.begin()?;
        // Another process may have made one meanwhile: the first one stays.
        let made = self
            .map_busy(self.conn.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES (?1, ?2)",
                params![PLAN_KEY, key],
            ))
            .and_then(|_| self.commit());
        if let Err(e) = made {
            self.rollback();
            return Err(e);
        }
        self.plan_key()?
            .ok_or_else(|| self.corrupt("plan key", "not stored"))
    }

    /// Opens (creating when needed) the state file; `None` keeps it in memory. An existing
    /// file that is not an engine state is refused, never converted.
    pub fn open(path: Option<&Path>) -> Result<Database, StoreError> {
        let label = path
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| ":memory:".into());
        let sql = |source: rusqlite::Error| match source.sqlite_error_code() {
            // An existing state SQLite cannot open for writing: a read-only file, directory or
            // file system.
            Some(rusqlite::ErrorCode::ReadOnly | rusqlite::ErrorCode::CannotOpen)
                if path.is_some_and(Path::exists) =>
            {
                StoreError::ReadOnly {
                    path: label.clone(),
                }
            }
            _ => StoreError::Sqlite {
                path: label.clone(),
                cause: source,
            },
        };
        let conn = match path {
            Some(p) => {
                if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|source| StoreError::Directory {
                        path: dir.display().to_string(),
                        source,
                    })?;
                }
                if p.exists() {
                    check_existing_file(p)?;
                }
                Connection::open(p).map_err(sql)?
            }
            None => Connection::open_in_memory().map_err(sql)?,
        };
        conn.busy_timeout(std::time::Duration::from_millis(BUSY_WAIT_MS))
            .map_err(sql)?;
        let db = Database {
            conn,
            path: label,
            read_only: false,
        };
        if let Some(pages) = std::env::var("RECONCILE_TEST_MAX_PAGES")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
        {
            // Test hook: caps the file's size so a write fails as on a full disk
            // (deterministic, no special file system needed).
            db.map_busy(db.conn.pragma_update(None, "max_page_count", pages))?;
        }
        db.refuse_foreign_tables()?;
        match db.conn.pragma_update(None, "journal_mode", "WAL") {
            // The write-ahead log cannot be made beside the file: nothing may be written there.
            Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::CannotOpen) => {
                return Err(StoreError::ReadOnly { path: db.path });
            }
            result => db.map_busy(result)?,
        }
        db.map_busy(db.conn.pragma_update(None, "synchronous", "NORMAL"))?;
        // A save rewrites thousands of documents; a 64 MiB page cache keeps it in memory.
        db.map_busy(db.conn.pragma_update(None, "cache_size", -65536))?;
        db.map_busy(db.conn.execute_batch(SCHEMA))?;
        Ok(db)
    }

    /// Refuses another program's database.
    fn refuse_foreign_tables(&self) -> Result<(), StoreError> {
        let mut statement = self.map_busy(
            self.conn
                .prepare("SELECT name FROM sqlite_master WHERE type = 'table'"),
        )?;
        let names = self.map_busy(
            statement
                .query_map([], |row| row.get::<_, String>(0))
                .and_then(Iterator::collect::<rusqlite::Result<Vec<String>>>),
        );
        let names = match names {
            Ok(names) => names,
            Err(StoreError::Sqlite { cause: source, .. })
                if source.sqlite_error_code() == Some(rusqlite::ErrorCode::NotADatabase) =>
            {
                return Err(StoreError::NotAState {
                    path: self.path.clone(),
                    why: "not an SQLite database".into(),
                });
            }
            Err(e) => return Err(e),
        };
        if !names.is_empty() && !names.iter().any(|n| n == ENGINE_META_TABLE) {
            return Err(StoreError::NotAState {
                path: self.path.clone(),
                why: format!("another program's database (tables: {})", names.join(", ")),
            });
        }
        Ok(())
    }

    /// The file's path as shown to users.
    pub fn path(&self) -> &str {
        &self.path
    }

    fn map_busy<T>(&self, r: rusqlite::Result<T>) -> Result<T, StoreError> {
        r.map_err(|source| match source.sqlite_error_code() {
            Some(rusqlite::ErrorCode::NotADatabase) => StoreError::NotAState {
                path: self.path.clone(),
                why: "not an SQLite database".into(),
            },
            Some(rusqlite::ErrorCode::DiskFull) => StoreError::Full {
                path: self.path.clone(),
            },
            Some(rusqlite::ErrorCode::ReadOnly) => StoreError::ReadOnly {
                path: self.path.clone(),
            },
            // The file opened but its journal cannot be made beside it: a read-only directory.
            Some(rusqlite::ErrorCode::CannotOpen) if !self.read_only => StoreError::ReadOnly {
                path: self.path.clone(),
            },
            Some(rusqlite::ErrorCode::DatabaseBusy) | Some(rusqlite::ErrorCode::DatabaseLocked) => {
                StoreError::Busy {
                    path: self.path.clone(),
                    waited_ms: BUSY_WAIT_MS,
                }
            }
            _ => StoreError::Sqlite {
                path: self.path.clone(),
                cause: source,
            },
        })
    }

    /// Starts the write transaction of one command (waits for another process, then fails).
    pub fn begin(&self) -> Result<(), StoreError> {
        // A read-only state is only read: a deferred transaction gives a consistent snapshot.
        let begin = if self.read_only {
            "BEGIN"
        } else {
            "BEGIN IMMEDIATE"
        };
        self.map_busy(self.conn.execute_batch(begin))
    }

    /// Commits the transaction.
    pub fn commit(&self) -> Result<(), StoreError> {
        self.map_busy(self.conn.execute_batch("COMMIT"))
    }

    /// Abandons the transaction (nothing of it reaches the file).
    pub fn rollback(&self) {
        // A failed rollback means there was no transaction; nothing to undo.
        let _ = self.conn.execute_batch("ROLLBACK");
    }

    fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.map_busy(
            self.conn
                .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| {
                    r.get::<_, String>(0)
                })
                .optional(),
        )
    }

    fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.map_busy(self.conn.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
            params![key, value],
        ))
        .map(|_| ())
    }

    /// The commit counter (changes whenever any process saves).
    pub fn commit_seq(&self) -> Result<u64, StoreError> {
        Ok(self
            .meta("commit_seq")?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0))
    }

    /// Whether the file holds a cluster yet.
    pub fn is_initialized(&self) -> Result<bool, StoreError> {
        Ok(self.meta("now")?.is_some())
    }

    fn corrupt(&self, what: impl Into<String>, detail: impl ToString) -> StoreError {
        StoreError::Corrupt {
            path: self.path.clone(),
            what: what.into(),
            detail: detail.to_string(),
        }
    }

    /// Reads the whole state.
    pub fn load(&self) -> Result<State, StoreError> {
        let num = |key: &str| -> Result<u64, StoreError> {
            Ok(self
                .meta(key)?
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0))
        };
        let mut state = State::empty(num("rng")?);
        state.now = self
            .meta("now")?
            .and_then(|v| v.parse().ok())
            .unwrap_or(GENESIS);
        state.rv = num("rv")?;
        state.commit_seq = num("commit_seq")?;
        if let Some(text) = self.meta("images")? {
            state.images =
                serde_json::from_str(&text).map_err(|e| self.corrupt("image table", e))?;
        }
        if let Some(text) = self.meta("down_nodes")? {
            state.down_nodes =
                serde_json::from_str(&text).map_err(|e| self.corrupt("node table", e))?;
        }
        if let Some(text) = self.meta("lock")? {
            state.lock = serde_json::from_str(&text).map_err(|e| self.corrupt("lock", e))?;
        }
        let mut stmt = self.map_busy(
            self.conn
                .prepare("SELECT kind, namespace, name, doc, sim FROM objects"),
        )?;
        let rows = self.map_busy(stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, Option<String>>(4)?,
            ))
        }))?;
        let mut loaded = Vec::new();
        for row in rows {
            loaded.push(self.map_busy(row)?);
        }
        // The kinds CRDs define are known before their objects are read.
        for (kind, _, _, text, _) in &loaded {
            if kind == super::crd::KIND
                && let Ok(crd) = serde_json::from_str::<Value>(text)
                && let Some(defined) = super::crd::info_of(&crd)
            {
                super::printer::remember(&crd, kinds::register(defined));
            }
        }
        for (kind, ns, name, text, sim) in loaded {
            let info = kinds::by_key(&kind)
                .ok_or_else(|| self.corrupt(format!("{kind} {ns}/{name}"), "unknown kind"))?;
            let doc: Value = serde_json::from_str(&text)
                .map_err(|e| self.corrupt(format!("{kind} {ns}/{name}"), e))?;
            let sim = match sim {
                Some(s) => Some(
                    serde_json::from_str(&s)
                        .map_err(|e| self.corrupt(format!("{kind} {ns}/{name} sim"), e))?,
                ),
                None => None,
            };
            state
                .objects
                .entry(info.key)
                .or_default()
                .insert((ns, name), Stored::new(info.key, doc, sim));
        }
        let mut stmt = self.map_busy(self.conn.prepare("SELECT doc FROM events ORDER BY id"))?;
        let rows = self.map_busy(stmt.query_map([], |r| r.get::<_, String>(0)))?;
        let mut events: Vec<Event> = Vec::new();
        for row in rows {
            let text = self.map_busy(row)?;
            events.push(serde_json::from_str(&text).map_err(|e| self.corrupt("event", e))?);
        }
        state.events = Events::from_saved(events, num("event_seq")?);
        Ok(state)
    }

    /// Writes back what changed in `state` (inside the caller's transaction) and bumps the
    /// commit counter.
    pub fn save(&self, state: &mut State) -> Result<(), StoreError> {
        if self.read_only {
            return Err(StoreError::ReadOnly {
                path: self.path.clone(),
            });
        }
        {
            let mut put = self.map_busy(self.conn.prepare_cached(
                "INSERT INTO objects (kind, namespace, name, doc, sim) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (kind, namespace, name) DO UPDATE SET doc = excluded.doc, sim = excluded.sim",
            ))?;
            // Serializing thousands of documents is the costly half of a save: all cores do
            // it, then SQLite takes the rows in order.
            // In key order, so the rows go into the primary-key index in order, not at random.
            let mut dirty: Vec<&Key> = state.dirty.iter().collect();
            dirty.sort_unstable();
            let rows: Vec<Result<Option<Row>, serde_json::Error>> =
                super::par::map(&dirty, |key| {
                    let Some(stored) = state.get(key.0, &key.1, &key.2) else {
                        return Ok(None);
                    };
                    let sim = stored.sim.as_ref().map(serde_json::to_string).transpose()?;
                    Ok(Some((*key, serde_json::to_string(&stored.doc)?, sim)))
                });
            for row in rows {
                let Some(((kind, ns, name), text, sim)) =
                    row.map_err(|e| self.corrupt("document", e))?
                else {
                    continue;
                };
                self.map_busy(put.execute(params![kind, ns, name, text, sim]))?;
            }
            let mut del = self.map_busy(self.conn.prepare_cached(
                "DELETE FROM objects WHERE kind = ?1 AND namespace = ?2 AND name = ?3",
            ))?;
            for (kind, ns, name) in &state.removed {
                self.map_busy(del.execute(params![kind, ns, name]))?;
            }
            let mut put_event = self.map_busy(
                self.conn
                    .prepare_cached("INSERT OR REPLACE INTO events (id, doc) VALUES (?1, ?2)"),
            )?;
            let dirty: BTreeSet<u64> = state.events.dirty.iter().copied().collect();
            let changed: Vec<&Event> = state
                .events
                .list
                .iter()
                .filter(|e| dirty.contains(&e.id))
                .collect();
            let rows: Vec<Result<(u64, String), serde_json::Error>> =
                super::par::map(&changed, |e| Ok((e.id, serde_json::to_string(e)?)));
            for row in rows {
                let (id, text) = row.map_err(|err| self.corrupt("event", err))?;
                self.map_busy(put_event.execute(params![id as i64, text]))?;
            }
            let mut del_event =
                self.map_busy(self.conn.prepare_cached("DELETE FROM events WHERE id = ?1"))?;
            for id in &state.events.dropped {
                self.map_busy(del_event.execute(params![*id as i64]))?;
            }
        }
        state.commit_seq += 1;
        self.set_meta("now", &state.now.to_string())?;
        self.set_meta("rng", &state.rng.0.to_string())?;
        self.set_meta("rv", &state.rv.to_string())?;
        self.set_meta("event_seq", &state.events.next_id.to_string())?;
        self.set_meta("commit_seq", &state.commit_seq.to_string())?;
        let json = |v: &dyn erased::Json| v.json();
        self.set_meta("images", &json(&state.images))?;
        self.set_meta("down_nodes", &json(&state.down_nodes))?;
        match &state.lock {
            Some(lock) => self.set_meta("lock", &json(lock))?,
            None => {
                self.map_busy(self.conn.execute("DELETE FROM meta WHERE key = 'lock'", []))?;
            }
        }
        state.dirty.clear();
        state.removed.clear();
        state.events.dirty.clear();
        state.events.dropped.clear();
        Ok(())
    }

    /// Deletes everything in the file.
    pub fn wipe(&self) -> Result<(), StoreError> {
        self.map_busy(
            self.conn
                .execute_batch("DELETE FROM objects; DELETE FROM events; DELETE FROM meta;"),
        )
    }
}

mod erased {
    /// Serializes small meta records; they are plain maps and structs, so this cannot fail.
    pub trait Json {
        fn json(&self) -> String;
    }
    impl<T: serde::Serialize> Json for T {
        fn json(&self) -> String {
            serde_json::to_string(self).unwrap_or_else(|_| "null".into())
        }
    }
}

/// Where the default state file lives, relative to the current directory.
pub fn default_path() -> PathBuf {
    PathBuf::from(".reconcile").join("engine.db")
}

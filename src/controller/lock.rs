//! One watcher per target: on the engine an exclusive OS lock on a file beside the target's
//! state (`engine.db.watch`), on other targets the target's own (a Lease on Kubernetes,
//! [`Cluster::lock_watcher`]); either tells others who holds it and where it listens (so
//! `reconcile sync` finds the watcher). A crash never leaves the target locked: the OS
//! releases the file lock when the process dies, a Lease expires when no longer renewed.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cluster::Cluster;

/// Errors taking or reading the lock.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Another watcher holds the target.
    #[error("target {target} is already watched by {holder}; stop it first")]
    Held {
        /// The target.
        target: String,
        /// Who: command, pid, since, address.
        holder: String,
    },
    /// No watcher runs on the target.
    #[error(
        "no watcher runs on target {target}; start one with `reconcile watch`, or apply once with `reconcile apply`"
    )]
    NoWatcher {
        /// The target.
        target: String,
    },
    /// The target's own lock cannot be used.
    #[error("the watcher lock of {target}: {cause}")]
    Target {
        /// The target.
        target: String,
        /// Why.
        cause: String,
    },
    /// The lock file cannot be used.
    #[error("{}: {cause}", path.display())]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The operating system's words.
        cause: String,
    },
}

/// Who holds a target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// Process id.
    pub pid: u32,
    /// When it started (wall clock, RFC 3339).
    pub since: String,
    /// The HTTP address it listens on.
    pub listen: String,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "reconcile watch (pid {}, since {}, listening on {})",
            self.pid, self.since, self.listen
        )
    }
}

/// The held lock; released (and the file removed) when dropped.
#[derive(Debug)]
pub struct WatchLock {
    file: File,
    path: PathBuf,
}

/// The lock file of a target whose state is at `state`.
pub fn lock_path(state: &Path) -> PathBuf {
    let mut name = state.file_name().unwrap_or_default().to_os_string();
    name.push(".watch");
    state.with_file_name(name)
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::Io {
        path: path.to_path_buf(),
        cause: e.to_string(),
    }
}

impl WatchLock {
    /// Takes the lock of the target whose state is at `state`, or says who holds it.
    pub fn acquire(state: &Path, target: &str, holder: &Holder) -> Result<WatchLock, Error> {
        let path = lock_path(state);
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(io(&path))?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io(&path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut text = String::new();
                file.read_to_string(&mut text).map_err(io(&path))?;
                let holder = serde_json::from_str::<Holder>(&text)
                    .map(|h| h.to_string())
                    .unwrap_or_else(|_| "another reconcile watch (starting)".to_string());
                return Err(Error::Held {
                    target: target.to_string(),
                    holder,
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(&path)(e)),
        }
        let text = serde_json::to_string(holder).unwrap_or_default();
        file.set_len(0).map_err(io(&path))?;
        file.seek(SeekFrom::Start(0)).map_err(io(&path))?;
        file.write_all(text.as_bytes()).map_err(io(&path))?;
        file.flush().map_err(io(&path))?;
        Ok(WatchLock { file, path })
    }
}

impl Drop for WatchLock {
    fn drop(&mut self) {
        // Emptied before unlocking, so a reader never sees a stale address.
        let _ = self.file.set_len(0);
        let _ = std::fs::remove_file(&self.path);
        let _ = self.file.unlock();
    }
}

/// The watcher holding the target whose state is at `state`, if one runs.
pub fn holder(state: &Path, target: &str) -> Result<Holder, Error> {
    let path = lock_path(state);
    let no_watcher = || Error::NoWatcher {
        target: target.to_string(),
    };
    let Ok(mut file) = OpenOptions::new().read(true).write(true).open(&path) else {
        return Err(no_watcher());
    };
    if file.try_lock().is_ok() {
        // Nobody holds it: a watcher that died.
        let _ = file.unlock();
        return Err(no_watcher());
    }
    let mut text = String::new();
    file.read_to_string(&mut text).map_err(io(&path))?;
    serde_json::from_str(&text).map_err(|_| no_watcher())
}

/// A watcher lock held: the file beside an engine's state, or the target's own, which the
/// target handle holds (and gives back when dropped).
#[derive(Debug)]
pub enum Held {
    /// The file lock of an engine target.
    File(WatchLock),
    /// Held by the target handle itself.
    InTarget,
}

/// How a holder description read back from a target reads: a [`Holder`] as it prints, or
/// the text as it is.
fn describe(text: &str) -> String {
    serde_json::from_str::<Holder>(text)
        .map(|h| h.to_string())
        .unwrap_or_else(|_| text.to_string())
}

/// Takes the watcher lock of `cluster` for `holder`: the file beside `state` (an engine
/// target), else the target's own lock. Says who holds it when another watcher does.
pub fn acquire(
    cluster: &mut dyn Cluster,
    state: Option<&Path>,
    holder: &Holder,
) -> Result<Held, Error> {
    let target = cluster.target_name();
    if let Some(state) = state {
        return WatchLock::acquire(state, &target, holder).map(Held::File);
    }
    let text = serde_json::to_string(holder).unwrap_or_default();
    match cluster.lock_watcher(&text) {
        Ok(true) => Ok(Held::InTarget),
        Ok(false) => Err(Error::Target {
            target,
            cause: "the target keeps no watcher lock".into(),
        }),
        Err(crate::cluster::Error::Locked { holder, .. }) => Err(Error::Held {
            target,
            holder: describe(&holder),
        }),
        Err(e) => Err(Error::Target {
            target,
            cause: e.to_string(),
        }),
    }
}

/// The watcher holding `cluster` (its lock file beside `state` on an engine target), if one
/// runs.
pub fn holder_of(cluster: &dyn Cluster, state: Option<&Path>) -> Result<Holder, Error> {
    let target = cluster.target_name();
    if let Some(state) = state {
        return holder(state, &target);
    }
    match cluster.watcher() {
        Ok(Some(text)) => serde_json::from_str(&text).map_err(|_| Error::Target {
            target,
            cause: format!("held by {text}, which is not a reconcile watch"),
        }),
        Ok(None) => Err(Error::NoWatcher { target }),
        Err(e) => Err(Error::Target {
            target,
            cause: e.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_watcher_is_refused_naming_the_first() -> Result<(), Error> {
        let dir = tempfile::tempdir().map_err(io(Path::new("tmp")))?;
        let state = dir.path().join("engine.db");
        let holder = Holder {
            pid: 42,
            since: "2026-01-01T00:00:00Z".into(),
            listen: "127.0.0.1:9090".into(),
        };
        assert!(matches!(
            self::holder(&state, "engine:x"),
            Err(Error::NoWatcher { .. })
        ));
        let first = WatchLock::acquire(&state, "engine:x", &holder)?;
        let second = WatchLock::acquire(&state, "engine:x", &holder);
        let message = second.map(|_| ()).unwrap_err().to_string();
        assert!(
            message.contains("pid 42") && message.contains("127.0.0.1:9090"),
            "{message}"
        );
        assert_eq!(self::holder(&state, "engine:x")?, holder);
        drop(first);
        assert!(WatchLock::acquire(&state, "engine:x", &holder).is_ok());
        Ok(())
    }
}

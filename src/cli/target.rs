//! Where the live state is, one rule for every command: `--target` (or `--state` for `engine`),
//! else `RECONCILE_TARGET`, else an application's `target:` in reconcile.yaml, else the
//! engine state `.reconcile/engine.db` at the repository root (the nearest folder with
//! reconcile.yaml or `.git`) — or `RECONCILE_ENGINE_STATE` when set. `kube` and
//! `kube:CONTEXT` name a Kubernetes cluster of the kubeconfig (`crate::k8s`).
//!
//! Invariant: a read-only command never creates a state file, and opens an existing one
//! read-only (SQLite `SQLITE_OPEN_READONLY`), so it works on a read-only file system. A state named explicitly must
//! exist for it; the default one missing is an empty cluster, said so on stderr. Empty
//! spellings (`--target engine:`, an empty variable) and files that are not an engine state
//! are errors.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::cluster::Cluster;
use crate::engine::Engine;
use crate::plan::config::CONFIG_FILE;

/// The environment variable naming the target, as `--target` does.
pub const TARGET_VAR: &str = "RECONCILE_TARGET";
/// The environment variable naming the engine state file of the `engine` target.
pub const STATE_VAR: &str = "RECONCILE_ENGINE_STATE";

/// What a command does to the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Reads only: never creates a state file.
    Read,
    /// Writes: creates the state file when missing.
    Write,
}

/// An engine state file and whether the user named it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct StateFile {
    /// The file.
    pub path: PathBuf,
    /// Named by a flag, a variable or reconcile.yaml (not the repository default).
    pub explicit: bool,
}

/// A target: the built-in engine's state file, or a Kubernetes cluster.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    /// `engine`, `engine:PATH`.
    Engine(StateFile),
    /// `kube` (the kubeconfig's current context) or `kube:CONTEXT`.
    Kube {
        /// The context; the current one when `None`.
        context: Option<String>,
    },
}

impl Target {
    /// The engine state file, for an engine target.
    pub fn state(&self) -> Option<&StateFile> {
        match self {
            Target::Engine(state) => Some(state),
            Target::Kube { .. } => None,
        }
    }

    /// The engine state file, or an error saying `what` needs the built-in engine.
    pub fn engine_state(&self, what: &str) -> anyhow::Result<&StateFile> {
        match self {
            Target::Engine(state) => Ok(state),
            Target::Kube { context } => bail!(
                "{what} is not supported yet on Kubernetes targets (kube{}); it works on \
                 engine targets",
                context
                    .as_deref()
                    .map(|c| format!(":{c}"))
                    .unwrap_or_default()
            ),
        }
    }
}

/// The nearest ancestor of `start` holding reconcile.yaml or .git (the repository root).
pub fn repo_root(start: &Path) -> PathBuf {
    start
        .ancestors()
        .find(|dir| dir.join(CONFIG_FILE).is_file() || dir.join(".git").exists())
        .unwrap_or(start)
        .to_path_buf()
}

fn non_empty_var(name: &str) -> anyhow::Result<Option<String>> {
    match std::env::var_os(name) {
        None => Ok(None),
        Some(value) if value.is_empty() => {
            bail!("{name} is set but empty; unset it or name a target")
        }
        Some(value) => match value.into_string() {
            Ok(text) => Ok(Some(text)),
            Err(_) => bail!("{name} is not valid UTF-8"),
        },
    }
}

/// The state file of a target: `flag` is `--target` as typed, `app_target` an application's
/// `target:` in reconcile.yaml.
pub fn locate(flag: Option<&str>, app_target: Option<&str>) -> anyhow::Result<Target> {
    let (text, source) = match (flag, non_empty_var(TARGET_VAR)?, app_target) {
        (Some(flag), _, _) => (flag.to_string(), "--target"),
        (None, Some(var), _) => (var, TARGET_VAR),
        (None, None, Some(app)) => (app.to_string(), "the application's target"),
        (None, None, None) => ("engine".to_string(), ""),
    };
    match text.as_str() {
        "engine" => match non_empty_var(STATE_VAR)? {
            Some(path) => Ok(Target::Engine(StateFile {
                path: PathBuf::from(path),
                explicit: true,
            })),
            None => {
                let here = std::env::current_dir().context("reading the current directory")?;
                Ok(Target::Engine(StateFile {
                    path: repo_root(&here).join(".reconcile").join("engine.db"),
                    explicit: false,
                }))
            }
        },
        "" => bail!("{source} is empty; expected engine, engine:PATH, kube or kube:CONTEXT"),
        t if t.starts_with("engine:") => {
            let path = &t["engine:".len()..];
            if path.is_empty() {
                bail!("{source} {t:?} names no state file; expected engine:PATH");
            }
            Ok(Target::Engine(StateFile {
                path: PathBuf::from(path),
                explicit: true,
            }))
        }
        "kube" => Ok(Target::Kube { context: None }),
        t if t.starts_with("kube:") => {
            let context = &t["kube:".len()..];
            if context.is_empty() {
                bail!("{source} {t:?} names no context; expected kube or kube:CONTEXT");
            }
            Ok(Target::Kube {
                context: Some(context.to_string()),
            })
        }
        t => bail!(
            "unknown target {t:?} in {source} (expected engine, engine:PATH, kube or kube:CONTEXT)"
        ),
    }
}

/// The state file a saved plan recorded (`engine:PATH`). Not explicit: the plan may have been
/// made on the empty cluster of a state not created yet, which a dry run then sees again.
pub fn locate_recorded(recorded: &str) -> anyhow::Result<Target> {
    Ok(match locate(Some(recorded), None)? {
        Target::Engine(state) => Target::Engine(StateFile {
            explicit: false,
            ..state
        }),
        kube => kube,
    })
}

/// The state file of `engine --state PATH` (an alias of `--target engine:PATH`).
pub fn locate_engine(state: Option<&Path>, flag: Option<&str>) -> anyhow::Result<StateFile> {
    match (state, flag) {
        (Some(_), Some(_)) => bail!("--state and --target name the same thing; give one"),
        (Some(path), None) if path.as_os_str().is_empty() => {
            bail!("--state is empty; expected a state file")
        }
        (Some(path), None) => Ok(StateFile {
            path: path.to_path_buf(),
            explicit: true,
        }),
        (None, flag) => Ok(locate(flag, None)?
            .engine_state("an `engine` command")?
            .clone()),
    }
}

/// Opens the cluster of a state file for `access`.
pub fn open(state: &StateFile, access: Access) -> anyhow::Result<Engine> {
    let path = &state.path;
    let missing = !path.exists();
    let opened = match (access, missing, state.explicit) {
        (Access::Read, true, false) => {
            eprintln!(
                "note: no engine state at {} yet: an empty cluster (nothing applied)",
                path.display()
            );
            Engine::in_memory_as(path)
        }
        (Access::Read, true, true) => bail!(
            "engine state {} does not exist (a read-only command never creates one; \
             `reconcile apply` or `reconcile engine reset` does)",
            path.display()
        ),
        // Read commands open the file read-only: they work on a read-only file system and
        // cannot change the state whatever they do.
        (Access::Read, false, _) => Engine::open_read_only(path),
        (Access::Write, _, _) => Engine::open(path),
    };
    // The engine's errors name the file already.
    opened.map_err(anyhow::Error::from)
}

/// Opens a target for `access`: the engine of a state file, or a connection to a Kubernetes
/// cluster (`force_conflicts` lets server-side apply take fields other managers own).
pub fn connect(
    target: &Target,
    access: Access,
    force_conflicts: bool,
) -> anyhow::Result<Box<dyn Cluster + Send>> {
    match target {
        Target::Engine(state) => Ok(Box::new(open(state, access)?)),
        Target::Kube { context } => {
            let options = crate::k8s::Options {
                context: context.clone(),
                force_conflicts,
            };
            Ok(Box::new(crate::k8s::connect(&options)?))
        }
    }
}

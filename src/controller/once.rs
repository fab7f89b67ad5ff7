//! One application, once, outside the watcher's loop: what syncing it now would change (the
//! pending diff) and the sync itself, from the source its status records, as the watcher
//! would do them. `reconcile ui` uses it when no watcher runs on the target.
//!
//! Invariant: the same steps as the loop (read the ref's head, find the application in
//! `reconcile.yaml`, render, plan with its sync policy, never adopt); a sync holds the
//! target's apply lock from the plan to the recorded status.

use std::time::Instant;

use super::decide::{Policy, SyncStatus};
use super::source::{self, Source};
use super::status::{self, AppStatus, SyncRecord};
use crate::cluster::Cluster;
use crate::diff::Change;
use crate::plan::{self, ApplyOptions, PlanOptions, PlannedAction};
use crate::source::git::GitOptions;

/// Why an application could not be compared or synced.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The recorded source cannot be read.
    #[error("reading {repo}: {cause}")]
    Source {
        /// The repository or directory, as recorded (credentials redacted).
        repo: String,
        /// Why.
        cause: String,
    },
    /// The source no longer declares the application.
    #[error("{repo} declares no application {app:?} any more")]
    Gone {
        /// The repository or directory.
        repo: String,
        /// The application.
        app: String,
    },
    /// The application's revision does not render.
    #[error("{0}")]
    Render(String),
    /// Planning or applying failed.
    #[error(transparent)]
    Plan(#[from] plan::Error),
    /// The target failed (its lock, the status write).
    #[error(transparent)]
    Target(#[from] crate::cluster::Error),
}

/// What syncing an application now would do.
#[derive(Debug)]
pub struct Pending {
    /// The plan.
    pub planned: plan::Planned,
    /// The commit read (git sources).
    pub sha: Option<String>,
    /// The render's digest (the revision of a directory source).
    pub digest: String,
    /// True when the application's policy prunes.
    pub prune: bool,
}

impl Pending {
    /// The actions that change something.
    pub fn changes(&self) -> Vec<PlannedAction> {
        self.planned
            .plan
            .actions
            .iter()
            .filter(|a| a.action != Change::Unchanged)
            .cloned()
            .collect()
    }
}

/// Renders the application of `status` from its recorded source (the head of its ref, or
/// the directory as it is) and plans it against `cluster`.
pub fn pending(
    status: &AppStatus,
    cluster: &dyn Cluster,
    git: &GitOptions,
) -> Result<Pending, Error> {
    let repo = status.revision.repo.clone();
    let source_error = |cause: String| Error::Source {
        repo: repo.clone(),
        cause,
    };
    if repo.is_empty() {
        return Err(source_error("no source is recorded".to_string()));
    }
    let source = Source::open(&repo, status.revision.reference.as_deref(), git)
        .map_err(|e| source_error(e.to_string()))?;
    let sha = source.head().map_err(|e| source_error(e.to_string()))?;
    let snapshot = source
        .snapshot(sha.as_deref())
        .map_err(|e| source_error(e.to_string()))?;
    let root = source.root().to_path_buf();
    let apps = source::applications(snapshot.fs.as_ref(), &root)
        .map_err(|e| source_error(e.to_string()))?;
    let app = apps
        .into_iter()
        .find(|a| a.name == status.name)
        .ok_or_else(|| Error::Gone {
            repo: repo.clone(),
            app: status.name.clone(),
        })?;
    let dir = crate::source::clean(&root.join(&app.path));
    let prefix = format!("{}/", root.display());
    let objects = crate::render::render(snapshot.fs.as_ref(), &dir)
        .map(|r| crate::render::to_values(&r))
        .map_err(|e| Error::Render(e.to_string().replace(&prefix, "")))?;
    let policy = Policy::of(&app);
    let options = PlanOptions {
        prune: policy.prune,
        allow_empty: policy.allow_empty,
        create_namespace: app.creates_namespaces(),
        adopt: false,
    };
    let planned = plan::make_plan(&app, &app.path, &objects, cluster, &options)?;
    Ok(Pending {
        planned,
        sha,
        digest: super::watch::digest(&objects),
        prune: policy.prune,
    })
}

/// What a sync did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Synced {
    /// True when every change was applied.
    pub ok: bool,
    /// `N created, N updated, N deleted`, or the failure.
    pub message: String,
}

/// Syncs the application of `status` on `cluster` under the target's lock (taken as
/// `holder`), then records the sync in its status as the watcher does.
pub fn sync(
    status: &AppStatus,
    cluster: &mut dyn Cluster,
    git: &GitOptions,
    holder: &str,
    wall_now: impl Fn() -> u64,
) -> Result<Synced, Error> {
    cluster.lock(holder)?;
    let result = sync_locked(status, cluster, git, &wall_now);
    let released = cluster.unlock();
    let synced = result?;
    released?;
    Ok(synced)
}

fn sync_locked(
    status: &AppStatus,
    cluster: &mut dyn Cluster,
    git: &GitOptions,
    wall_now: &dyn Fn() -> u64,
) -> Result<Synced, Error> {
    let started = Instant::now();
    let started_at = wall_now();
    let pending = pending(status, cluster, git)?;
    let options = ApplyOptions {
        wait: false,
        timeout: None,
    };
    let outcome = plan::apply(&pending.planned, cluster, &options, &mut |_| {});
    let (ok, message) = super::sync_outcome("synced from the UI", &outcome);
    let mut recorded = status::load(cluster, &status.name)?.unwrap_or_else(|| status.clone());
    let revision = pending
        .sha
        .clone()
        .unwrap_or_else(|| pending.digest.clone());
    recorded.revision.sha = pending.sha.clone();
    recorded.revision.digest = Some(pending.digest.clone());
    recorded.record(SyncRecord {
        revision,
        started_at: crate::rollout::time::rfc3339(started_at),
        duration_ms: started.elapsed().as_millis() as u64,
        result: if ok { "Succeeded" } else { "Failed" }.to_string(),
        message: message.clone(),
    });
    if ok {
        recorded.sync = SyncStatus::Synced;
        recorded.drift_objects = 0;
        recorded.last_error = None;
        recorded.message = None;
        recorded.last_synced_at = Some(crate::rollout::time::rfc3339(wall_now()));
    } else {
        recorded.last_error = Some(message.clone());
    }
    status::save(cluster, &recorded)?;
    Ok(Synced { ok, message })
}

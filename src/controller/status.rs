//! An application's status as the watcher reports it (`/api/v1/apps`, `reconcile status`),
//! and where it outlives the process: a ConfigMap `reconcile-status-<app>` in the target,
//! beside the application's inventory, so any `reconcile status` reads it with or without a
//! running watcher (as `argocd app list` and `flux get kustomizations` do).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::decide::{Memory, SyncStatus};
use crate::cluster::{self, Cluster};
use crate::diff::normalize::{MANAGED_BY_LABEL, MANAGED_BY_VALUE, OWNER_ANNOTATION};
use crate::model::{Gvk, ResId};
use crate::plan::inventory::INVENTORY_NAMESPACE;
use crate::rollout::health::Status as Health;

/// Label carried by every status object (its value: the application).
pub const STATUS_LABEL: &str = "reconcile.dev/status-of";

/// Syncs kept in the history.
pub const HISTORY: usize = 10;

/// Where the desired state came from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Revision {
    /// The repository or directory.
    pub repo: String,
    /// The ref watched (git sources).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// The commit (git sources).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha: Option<String>,
    /// Digest of what the revision renders for this application.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

/// One sync in the history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncRecord {
    /// The commit (or the render digest of a directory source).
    pub revision: String,
    /// When it started (wall clock, RFC 3339).
    pub started_at: String,
    /// How long it took, in milliseconds.
    pub duration_ms: u64,
    /// `Succeeded` or `Failed`.
    pub result: String,
    /// Why it ran, and what it did or why it failed.
    pub message: String,
}

/// The status of one application.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppStatus {
    /// Application name.
    pub name: String,
    /// Its kustomization's directory, relative to the repository.
    pub path: String,
    /// The target (`engine:.reconcile/engine.db`).
    pub target: String,
    /// The revision compared last.
    pub revision: Revision,
    /// Synced, OutOfSync or Unknown.
    pub sync: SyncStatus,
    /// Healthy, Progressing, Degraded, Suspended or Missing (`None`: not looked at yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
    /// Why it is not healthy.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub health_message: String,
    /// Objects that differ from the revision (creates, updates and deletes planned).
    #[serde(default)]
    pub drift_objects: usize,
    /// The last render, validation or sync error (file, line, cause), until it is fixed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// What the watcher waits for, when something is pending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The last successful sync (wall clock, RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_synced_at: Option<String>,
    /// Retry bookkeeping (synced revision, failures, next retry).
    #[serde(default)]
    pub retry: Memory,
    /// The last syncs, newest first (at most 10).
    #[serde(default)]
    pub history: Vec<SyncRecord>,
}

impl AppStatus {
    /// Adds a sync to the history, keeping the newest [`HISTORY`].
    pub fn record(&mut self, record: SyncRecord) {
        self.history.insert(0, record);
        self.history.truncate(HISTORY);
    }
}

/// The id of an application's status object.
pub fn status_id(app: &str) -> ResId {
    ResId {
        gvk: Gvk::from_api_version("v1", "ConfigMap"),
        name: format!("reconcile-status-{app}"),
        namespace: INVENTORY_NAMESPACE.to_string(),
    }
}

/// The object that stores a status in the target.
pub fn to_object(status: &AppStatus) -> Value {
    let id = status_id(&status.name);
    let text = serde_json::to_string(status).unwrap_or_else(|_| "{}".to_string());
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": id.name,
            "namespace": id.namespace,
            "labels": {MANAGED_BY_LABEL: MANAGED_BY_VALUE, STATUS_LABEL: status.name},
            "annotations": {OWNER_ANNOTATION: status.name},
        },
        "data": {"status.json": text},
    })
}

fn from_object(object: &Value) -> Option<AppStatus> {
    let text = object.pointer("/data/status.json")?.as_str()?;
    serde_json::from_str(text).ok()
}

/// Writes a status into the target.
pub fn save(cluster: &mut dyn Cluster, status: &AppStatus) -> Result<(), cluster::Error> {
    cluster.apply(&to_object(status)).map(|_| ())
}

/// The status of one application, if one was ever written.
pub fn load(cluster: &dyn Cluster, app: &str) -> Result<Option<AppStatus>, cluster::Error> {
    Ok(cluster.get(&status_id(app))?.as_ref().and_then(from_object))
}

/// Every status in the target, by application name.
pub fn load_all(cluster: &dyn Cluster) -> Result<Vec<AppStatus>, cluster::Error> {
    let objects = cluster.list(
        &Gvk::from_api_version("v1", "ConfigMap"),
        Some(INVENTORY_NAMESPACE),
        None,
    )?;
    let mut all: Vec<AppStatus> = objects
        .iter()
        .filter(|o| {
            o.pointer("/metadata/labels")
                .and_then(|l| l.get(STATUS_LABEL))
                .is_some()
        })
        .filter_map(from_object)
        .collect();
    all.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(all)
}

/// The JSON Schema of `/api/v1/apps` and `reconcile status -o json` (an array of statuses).
pub fn apps_schema() -> String {
    let schema = schemars::schema_for!(Vec<AppStatus>);
    serde_json::to_string_pretty(&schema).unwrap_or_default() + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::memory::MemoryCluster;

    #[test]
    fn a_status_round_trips_through_the_target_and_keeps_ten_syncs() {
        let mut cluster = MemoryCluster::default();
        let mut status = AppStatus {
            name: "web".into(),
            path: "overlays/dev".into(),
            sync: SyncStatus::Synced,
            health: Some(Health::Healthy),
            ..AppStatus::default()
        };
        for n in 0..12 {
            status.record(SyncRecord {
                revision: format!("r{n}"),
                started_at: "2026-01-01T00:00:00Z".into(),
                duration_ms: 5,
                result: "Succeeded".into(),
                message: String::new(),
            });
        }
        assert_eq!(status.history.len(), HISTORY);
        assert_eq!(status.history[0].revision, "r11");
        save(&mut cluster, &status).map_err(|e| e.to_string()).ok();
        assert_eq!(load(&cluster, "web").ok().flatten(), Some(status.clone()));
        assert_eq!(load_all(&cluster).ok(), Some(vec![status]));
        assert_eq!(load(&cluster, "other").ok().flatten(), None);
    }
}

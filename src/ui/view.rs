//! What the pages show, read from a target: the view models the templates render.
//!
//! Pure over [`Cluster`] (plus the engine's event log for the cluster page): no HTTP and no
//! HTML here. Invariant: no Secret value enters a view — Secrets are shown by their key
//! count, and every diff comes from a plan, which masks them (`diff::mask`).

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;
use serde_json::Value;

use super::chart;
use crate::cluster::{Cluster, TRACK_LABEL};
use crate::controller::decide::{SyncStatus, short};
use crate::controller::status::AppStatus;
use crate::model::{Gvk, ResId};
use crate::plan::PlannedAction;
use crate::rollout::analysis::{AnalysisRun, AnalysisSpec, RunPhase};
use crate::rollout::health::{self, Status as Health};
use crate::rollout::{Phase, Strategy, driver};

/// A status shown by an icon and a word (never colour alone); `class` picks the colour.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Badge {
    /// The word (`Healthy`, `OutOfSync`).
    pub text: String,
    /// A symbol beside it, hidden from screen readers (the word says it).
    pub icon: &'static str,
    /// `ok`, `warn`, `bad`, `prog` or `unknown`.
    pub class: &'static str,
}

impl Badge {
    fn new(text: impl Into<String>, icon: &'static str, class: &'static str) -> Badge {
        Badge {
            text: text.into(),
            icon,
            class,
        }
    }

    /// The badge of a health.
    pub fn health(health: Option<Health>) -> Badge {
        match health {
            Some(Health::Healthy) => Badge::new("Healthy", "✔", "ok"),
            Some(Health::Progressing) => Badge::new("Progressing", "◐", "prog"),
            Some(Health::Degraded) => Badge::new("Degraded", "✖", "bad"),
            Some(Health::Suspended) => Badge::new("Suspended", "‖", "warn"),
            Some(Health::Missing) => Badge::new("Missing", "∅", "warn"),
            None => Badge::new("Unknown", "?", "unknown"),
        }
    }

    /// The badge of a sync status.
    pub fn sync(sync: SyncStatus) -> Badge {
        match sync {
            SyncStatus::Synced => Badge::new("Synced", "✔", "ok"),
            SyncStatus::OutOfSync => Badge::new("OutOfSync", "⚠", "warn"),
            SyncStatus::Unknown => Badge::new("Unknown", "?", "unknown"),
        }
    }

    fn phase(phase: Phase) -> Badge {
        match phase {
            Phase::Progressing => Badge::new("Progressing", "◐", "prog"),
            Phase::Paused => Badge::new("Paused", "‖", "warn"),
            Phase::Healthy => Badge::new("Healthy", "✔", "ok"),
            Phase::Degraded => Badge::new("Degraded", "✖", "bad"),
        }
    }

    fn result(result: &str) -> Badge {
        match result {
            "Succeeded" => Badge::new("Succeeded", "✔", "ok"),
            other => Badge::new(other, "✖", "bad"),
        }
    }
}

/// `main@1a2b3c4d5e`, `1a2b3c4d5e` or `files 1a2b…` (a directory source).
pub fn revision_text(status: &AppStatus) -> String {
    let r = &status.revision;
    match (&r.reference, &r.sha, &r.digest) {
        (Some(reference), Some(sha), _) => format!("{reference}@{}", short(sha)),
        (None, Some(sha), _) => short(sha).to_string(),
        (_, None, Some(digest)) => format!("files {}", short(digest)),
        _ => "-".to_string(),
    }
}

/// One row of the Applications page.
#[derive(Debug, Clone, Serialize)]
pub struct AppRow {
    /// Application name.
    pub name: String,
    /// Its page.
    pub href: String,
    /// Its path in the repository.
    pub path: String,
    /// The repository, credentials removed.
    pub repo: String,
    /// `ref@sha`.
    pub revision: String,
    /// Sync status.
    pub sync: Badge,
    /// Health.
    pub health: Badge,
    /// Objects that differ.
    pub drift: usize,
    /// The last sync: when, how long, how it ended.
    pub last_sync: Option<SyncRow>,
    /// The error, if any (first line).
    pub error: String,
    /// What the watcher waits for.
    pub message: String,
}

/// One sync of the history.
#[derive(Debug, Clone, Serialize)]
pub struct SyncRow {
    /// The revision (short).
    pub revision: String,
    /// When it started.
    pub at: String,
    /// How long it took (`120ms`, `2.3s`).
    pub duration: String,
    /// Succeeded / Failed.
    pub result: Badge,
    /// What it did, or why it failed.
    pub message: String,
}

fn duration_text(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms}ms")
    } else {
        format!("{:.1}s", ms as f64 / 1000.0)
    }
}

/// A row of an application's status.
pub fn app_row(status: &AppStatus) -> AppRow {
    AppRow {
        name: status.name.clone(),
        href: format!("/apps/{}", encode(&status.name)),
        path: status.path.clone(),
        repo: crate::source::git::redact_url(&status.revision.repo),
        revision: revision_text(status),
        sync: Badge::sync(status.sync),
        health: Badge::health(status.health),
        drift: status.drift_objects,
        last_sync: status.history.first().map(sync_row),
        error: status
            .last_error
            .as_deref()
            .unwrap_or_default()
            .lines()
            .next()
            .unwrap_or_default()
            .to_string(),
        message: status.message.clone().unwrap_or_default(),
    }
}

/// A sync of the history.
pub fn sync_row(record: &crate::controller::status::SyncRecord) -> SyncRow {
    SyncRow {
        revision: short(&record.revision).to_string(),
        at: record.started_at.clone(),
        duration: duration_text(record.duration_ms),
        result: Badge::result(&record.result),
        message: record.message.clone(),
    }
}

/// The Applications page's filter (`?sync=&health=&q=`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Sync status shown (empty: all).
    pub sync: String,
    /// Health shown (empty: all).
    pub health: String,
    /// Part of the name (empty: all).
    pub name: String,
}

impl Filter {
    /// True when a row passes.
    pub fn keeps(&self, row: &AppRow) -> bool {
        (self.sync.is_empty() || row.sync.text == self.sync)
            && (self.health.is_empty() || row.health.text == self.health)
            && (self.name.is_empty() || row.name.contains(&self.name))
    }
}

/// Counts shown in the header.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Counts {
    /// Applications.
    pub total: usize,
    /// Synced.
    pub synced: usize,
    /// OutOfSync.
    pub out_of_sync: usize,
    /// Healthy.
    pub healthy: usize,
    /// Progressing or Suspended.
    pub progressing: usize,
    /// Degraded or Missing.
    pub degraded: usize,
    /// With an error.
    pub errors: usize,
}

/// The header's counts over every application (not only the filtered ones).
pub fn counts(statuses: &[AppStatus]) -> Counts {
    let mut c = Counts {
        total: statuses.len(),
        ..Counts::default()
    };
    for s in statuses {
        match s.sync {
            SyncStatus::Synced => c.synced += 1,
            SyncStatus::OutOfSync => c.out_of_sync += 1,
            SyncStatus::Unknown => {}
        }
        match s.health {
            Some(Health::Healthy) => c.healthy += 1,
            Some(Health::Progressing | Health::Suspended) => c.progressing += 1,
            Some(Health::Degraded | Health::Missing) => c.degraded += 1,
            None => {}
        }
        if s.last_error.is_some() {
            c.errors += 1;
        }
    }
    c
}

/// One node of an application's resource tree.
#[derive(Debug, Clone, Serialize)]
pub struct Node {
    /// Kind.
    pub kind: String,
    /// Name.
    pub name: String,
    /// Health.
    pub health: Badge,
    /// One line: why it is not healthy, or what it is (`Running on worker-1`, `3 keys`).
    pub status: String,
    /// The rollout page of a Deployment.
    pub href: Option<String>,
    /// Owned or related objects.
    pub children: Vec<Node>,
}

fn text<'a>(object: &'a Value, pointer: &str) -> &'a str {
    object
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn uid(object: &Value) -> &str {
    text(object, "/metadata/uid")
}

fn owned_by<'a>(objects: &'a [Value], owner: &Value) -> Vec<&'a Value> {
    let owner_uid = uid(owner);
    let owner_name = text(owner, "/metadata/name");
    let owner_kind = text(owner, "/kind");
    objects
        .iter()
        .filter(|o| {
            o.pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .is_some_and(|refs| {
                    refs.iter().any(|r| {
                        if owner_uid.is_empty() {
                            text(r, "/kind") == owner_kind && text(r, "/name") == owner_name
                        } else {
                            text(r, "/uid") == owner_uid
                        }
                    })
                })
        })
        .collect()
}

fn health_line(h: &health::Health) -> String {
    h.message.clone()
}

fn pod_node(cluster: &dyn Cluster, pod: &Value) -> Node {
    let ns = text(pod, "/metadata/namespace");
    let name = text(pod, "/metadata/name");
    let warnings = cluster.warnings("Pod", ns, name).unwrap_or_default();
    let h = health::health(Some(pod), None);
    let status = match health::pod_failure(pod, &warnings) {
        Some(failure) => failure,
        None => {
            let phase = text(pod, "/status/phase");
            let node = text(pod, "/spec/nodeName");
            match (phase, node) {
                ("", "") => "Pending: not scheduled".to_string(),
                (phase, "") => phase.to_string(),
                ("", node) => format!("on {node}"),
                (phase, node) => format!("{phase} on {node}"),
            }
        }
    };
    Node {
        kind: "Pod".into(),
        name: name.into(),
        health: Badge::health(Some(h.status)),
        status,
        href: None,
        children: Vec::new(),
    }
}

/// What a namespace holds, listed once per page.
struct Listing {
    replica_sets: Vec<Value>,
    pods: Vec<Value>,
}

fn listing(cluster: &dyn Cluster, namespace: &str) -> Listing {
    let list = |kind: &str, api: &str| {
        cluster
            .list(&Gvk::from_api_version(api, kind), Some(namespace), None)
            .unwrap_or_default()
    };
    Listing {
        replica_sets: list("ReplicaSet", "apps/v1"),
        pods: list("Pod", "v1"),
    }
}

fn replica_set_nodes(cluster: &dyn Cluster, listing: &Listing, owner: &Value) -> Vec<Node> {
    let mut sets: Vec<&Value> = owned_by(&listing.replica_sets, owner);
    // Newest revision first, as `kubectl describe` lists them.
    sets.sort_by_key(|rs| {
        std::cmp::Reverse(
            text(
                rs,
                "/metadata/annotations/deployment.kubernetes.io~1revision",
            )
            .parse::<u64>()
            .unwrap_or(0),
        )
    });
    sets.into_iter()
        .map(|rs| {
            let h = health::health(Some(rs), None);
            let replicas = rs.pointer("/spec/replicas").and_then(Value::as_i64);
            let ready = rs
                .pointer("/status/readyReplicas")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            let revision = text(
                rs,
                "/metadata/annotations/deployment.kubernetes.io~1revision",
            );
            let images = driver::images(rs.pointer("/spec/template").unwrap_or(&Value::Null));
            let mut line = format!(
                "revision {} · {ready}/{} ready · {}",
                if revision.is_empty() { "-" } else { revision },
                replicas.unwrap_or(0),
                images.join(", ")
            );
            if !h.message.is_empty() {
                line = format!("{line} · {}", h.message);
            }
            Node {
                kind: "ReplicaSet".into(),
                name: text(rs, "/metadata/name").into(),
                health: Badge::health(Some(h.status)),
                status: line,
                href: None,
                children: owned_by(&listing.pods, rs)
                    .into_iter()
                    .map(|p| pod_node(cluster, p))
                    .collect(),
            }
        })
        .collect()
}

/// The href of a Deployment's rollout page.
pub fn rollout_href(namespace: &str, name: &str) -> String {
    format!("/rollouts/{}/{}", encode(namespace), encode(name))
}

/// Percent-encodes a path segment.
pub fn encode(segment: &str) -> String {
    let mut out = String::new();
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn object_node(cluster: &dyn Cluster, listing: &Listing, id: &ResId) -> Node {
    let live = cluster.get(id).ok().flatten();
    let kind = id.gvk.kind.as_str();
    let endpoints = if kind == "Service" {
        cluster
            .get(&ResId {
                gvk: Gvk::from_api_version("v1", "Endpoints"),
                name: id.name.clone(),
                namespace: id.namespace.clone(),
            })
            .ok()
            .flatten()
    } else {
        None
    };
    let h = health::health(live.as_ref(), endpoints.as_ref());
    let mut node = Node {
        kind: kind.to_string(),
        name: id.name.clone(),
        health: Badge::health(Some(h.status)),
        status: health_line(&h),
        href: None,
        children: Vec::new(),
    };
    let Some(live) = live else {
        return node;
    };
    let keys = |field: &str| {
        live.get(field)
            .and_then(Value::as_object)
            .map(|m| m.len())
            .unwrap_or(0)
    };
    match kind {
        "Deployment" => {
            node.href = Some(rollout_href(&id.namespace, &id.name));
            let strategy = Strategy::of(&live).ok();
            let phase = driver::read_state(&live).ok().flatten();
            let mut line = strategy
                .as_ref()
                .map(|s| s.name().to_string())
                .unwrap_or_default();
            if let Some(state) = &phase {
                line = format!("{line} · {:?} · {}", state.phase, state.message);
            } else if !h.message.is_empty() {
                line = format!("{line} · {}", h.message);
            }
            node.status = line;
            node.children = replica_set_nodes(cluster, listing, &live);
            if let Some(strategy) = strategy.filter(Strategy::is_progressive) {
                let track_id = driver::track_id(id, &strategy);
                if let Ok(Some(track)) = cluster.get(&track_id) {
                    let th = health::health(Some(&track), None);
                    node.children.push(Node {
                        kind: "Deployment".into(),
                        name: track_id.name.clone(),
                        health: Badge::health(Some(th.status)),
                        status: format!(
                            "{} track · {}",
                            strategy.track(),
                            driver::images(track.pointer("/spec/template").unwrap_or(&Value::Null))
                                .join(", ")
                        ),
                        href: None,
                        children: replica_set_nodes(cluster, listing, &track),
                    });
                }
            }
        }
        "StatefulSet" | "DaemonSet" | "Job" => {
            node.children = owned_by(&listing.pods, &live)
                .into_iter()
                .map(|p| pod_node(cluster, p))
                .collect();
        }
        "Service" => {
            let addresses: Vec<&str> = endpoints
                .as_ref()
                .and_then(|e| e.get("subsets"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .flat_map(|s| {
                    s.get("addresses")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                })
                .map(|a| text(a, "/ip"))
                .collect();
            if node.status.is_empty() {
                node.status = format!("type {}", {
                    let t = text(&live, "/spec/type");
                    if t.is_empty() { "ClusterIP" } else { t }
                });
            }
            if let Some(e) = &endpoints {
                node.children.push(Node {
                    kind: "Endpoints".into(),
                    name: text(e, "/metadata/name").into(),
                    health: Badge::health(Some(if addresses.is_empty() {
                        Health::Progressing
                    } else {
                        Health::Healthy
                    })),
                    status: format!("{} ready addresses", addresses.len()),
                    href: None,
                    children: Vec::new(),
                });
            }
        }
        // Only the number of keys: values never reach a page.
        "Secret" => {
            node.status = format!("{} keys (values hidden)", keys("data") + keys("stringData"))
        }
        "ConfigMap" => node.status = format!("{} keys", keys("data") + keys("binaryData")),
        _ => {}
    }
    node
}

/// Display order of kinds under a namespace (workloads first, then networking, config).
fn kind_rank(kind: &str) -> usize {
    const ORDER: &[&str] = &[
        "Deployment",
        "StatefulSet",
        "DaemonSet",
        "Job",
        "CronJob",
        "Service",
        "Ingress",
        "ConfigMap",
        "Secret",
    ];
    ORDER.iter().position(|k| *k == kind).unwrap_or(ORDER.len())
}

/// The resource tree of an application's members: Namespace → objects → owned objects.
pub fn tree(cluster: &dyn Cluster, members: &[ResId]) -> Vec<Node> {
    let mut by_namespace: BTreeMap<String, Vec<&ResId>> = BTreeMap::new();
    let mut cluster_scoped: Vec<&ResId> = Vec::new();
    let declared_namespaces: HashSet<&str> = members
        .iter()
        .filter(|m| m.gvk.kind == "Namespace")
        .map(|m| m.name.as_str())
        .collect();
    for member in members {
        if member.gvk.kind == "Namespace" {
            by_namespace.entry(member.name.clone()).or_default();
        } else if member.namespace.is_empty() && crate::plan::is_cluster_scoped(&member.gvk.kind) {
            cluster_scoped.push(member);
        } else {
            let ns = if member.namespace.is_empty() {
                "default".to_string()
            } else {
                member.namespace.clone()
            };
            by_namespace.entry(ns).or_default().push(member);
        }
    }
    let mut roots = Vec::new();
    for (namespace, mut ids) in by_namespace {
        ids.sort_by(|a, b| {
            (kind_rank(&a.gvk.kind), &a.gvk.kind, &a.name).cmp(&(
                kind_rank(&b.gvk.kind),
                &b.gvk.kind,
                &b.name,
            ))
        });
        let listing = listing(cluster, &namespace);
        let ns_live = cluster
            .get(&ResId {
                gvk: Gvk::from_api_version("v1", "Namespace"),
                name: namespace.clone(),
                namespace: String::new(),
            })
            .ok()
            .flatten();
        let (health, status) = match ns_live {
            Some(_) => (Badge::health(Some(Health::Healthy)), String::new()),
            None => (
                Badge::health(Some(Health::Missing)),
                "not found".to_string(),
            ),
        };
        roots.push(Node {
            kind: "Namespace".into(),
            name: namespace.clone(),
            health,
            status: if declared_namespaces.contains(namespace.as_str()) {
                status
            } else if status.is_empty() {
                "not managed by this application".into()
            } else {
                status
            },
            href: None,
            children: ids
                .into_iter()
                .map(|id| object_node(cluster, &listing, id))
                .collect(),
        });
    }
    if !cluster_scoped.is_empty() {
        let empty = Listing {
            replica_sets: Vec::new(),
            pods: Vec::new(),
        };
        roots.push(Node {
            kind: "Cluster".into(),
            name: "cluster-scoped objects".into(),
            health: Badge::health(Some(Health::Healthy)),
            status: String::new(),
            href: None,
            children: cluster_scoped
                .into_iter()
                .map(|id| object_node(cluster, &empty, id))
                .collect(),
        });
    }
    roots
}

/// One object of the pending diff.
#[derive(Debug, Clone, Serialize)]
pub struct DiffView {
    /// create, update or delete.
    pub action: String,
    /// `Deployment demo/web`.
    pub object: String,
    /// The unified diff's lines (Secret values already masked by the plan).
    pub lines: Vec<DiffLine>,
}

/// One line of a unified diff; the `+`/`-` stays in the text, so colour is not alone.
#[derive(Debug, Clone, Serialize)]
pub struct DiffLine {
    /// `add`, `del`, `hunk` or `ctx`.
    pub class: &'static str,
    /// The line.
    pub text: String,
}

fn diff_lines(diff: &str) -> Vec<DiffLine> {
    diff.lines()
        .map(|line| DiffLine {
            class: if line.starts_with("+++") || line.starts_with("---") {
                "file"
            } else if line.starts_with('+') {
                "add"
            } else if line.starts_with('-') {
                "del"
            } else if line.starts_with("@@") {
                "hunk"
            } else {
                "ctx"
            },
            text: line.to_string(),
        })
        .collect()
}

/// The changed actions of a plan.
pub fn diffs(actions: &[PlannedAction]) -> Vec<DiffView> {
    actions
        .iter()
        .filter(|a| a.action != crate::diff::Change::Unchanged)
        .map(|a| DiffView {
            action: serde_json::to_value(a.action)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            object: a.display(),
            lines: diff_lines(&a.diff),
        })
        .collect()
}

/// One canary step.
#[derive(Debug, Clone, Serialize)]
pub struct StepView {
    /// 1-based.
    pub number: usize,
    /// `setWeight 25%`, `pause 30s`, `analysis success-rate ≥ 0.99 …`.
    pub text: String,
    /// `done`, `current` or `pending`.
    pub state: &'static str,
    /// Its badge.
    pub badge: Badge,
}

/// One analysis run with its chart.
#[derive(Debug, Clone, Serialize)]
pub struct AnalysisView {
    /// What it measures.
    pub name: String,
    /// `step 3` or `prePromotion`.
    pub step: String,
    /// Its phase.
    pub phase: Badge,
    /// The measurements, as text.
    pub values: String,
    /// An inline SVG chart against the threshold.
    pub chart: String,
    /// Why it ended so.
    pub message: String,
}

/// A pod of a track.
#[derive(Debug, Clone, Serialize)]
pub struct TrackView {
    /// `stable`, `canary` or `preview`.
    pub name: String,
    /// The Deployment.
    pub deployment: String,
    /// Images.
    pub images: String,
    /// `3 desired, 3 available`.
    pub replicas: String,
    /// Its pods.
    pub pods: Vec<Node>,
}

/// A revision of the history.
#[derive(Debug, Clone, Serialize)]
pub struct RevisionView {
    /// The number.
    pub revision: u64,
    /// When (cluster time), if known.
    pub at: String,
    /// Images.
    pub images: String,
    /// Why it was made.
    pub cause: String,
    /// How its rollout ended.
    pub outcome: String,
    /// The live one.
    pub current: bool,
}

/// A Canary's traffic weights.
#[derive(Debug, Clone, Serialize)]
pub struct Weight {
    /// Set by the steps.
    pub set: u32,
    /// Share of available pods running the canary.
    pub actual: u32,
}

/// A BlueGreen Service and the track it reaches.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceRoute {
    /// `active Service web`.
    pub service: String,
    /// `stable (web:1.0)`.
    pub target: String,
}

/// The Rollout page.
#[derive(Debug, Clone, Serialize)]
pub struct RolloutView {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `Canary`, `BlueGreen`, `RollingUpdate`, `Recreate`.
    pub strategy: String,
    /// True for Canary and BlueGreen (driven by reconcile).
    pub progressive: bool,
    /// Phase (or health for the cluster's own strategies).
    pub phase: Badge,
    /// What the rollout is doing.
    pub message: String,
    /// The revision being rolled out.
    pub revision: String,
    /// `step 2/5 (pause 30s)`.
    pub step_text: String,
    /// Canary steps.
    pub steps: Vec<StepView>,
    /// Canary weights.
    pub weight: Option<Weight>,
    /// Stable and second track.
    pub tracks: Vec<TrackView>,
    /// Analysis runs.
    pub analysis: Vec<AnalysisView>,
    /// BlueGreen: which Service reaches which track.
    pub blue_green: Vec<ServiceRoute>,
    /// Revisions, newest first.
    pub history: Vec<RevisionView>,
    /// Why the new version's pods fail.
    pub cause: String,
}

fn step_text(step: &crate::rollout::CanaryStep) -> String {
    if let Some(weight) = step.set_weight {
        return format!("setWeight {weight}%");
    }
    if let Some(pause) = &step.pause {
        return match pause.duration() {
            Ok(Some(d)) => format!("pause {}", crate::rollout::time::format_duration(d)),
            _ => "pause (until promoted)".to_string(),
        };
    }
    if let Some(analysis) = &step.analysis {
        return format!("analysis {}", analysis.describe());
    }
    "step".to_string()
}

fn run_view(run: &AnalysisRun, spec: Option<&AnalysisSpec>) -> AnalysisView {
    let phase = match run.phase {
        RunPhase::Running => Badge::new("Running", "◐", "prog"),
        RunPhase::Successful => Badge::new("Successful", "✔", "ok"),
        RunPhase::Failed => Badge::new("Failed", "✖", "bad"),
        RunPhase::Inconclusive => Badge::new("Inconclusive", "?", "warn"),
    };
    let values: Vec<String> = run
        .measurements
        .iter()
        .map(|m| {
            m.value
                .map(|v| format!("{v:.4}"))
                .unwrap_or_else(|| "no data".into())
        })
        .collect();
    AnalysisView {
        name: run.name.clone(),
        step: run
            .step
            .parse::<usize>()
            .map(|s| format!("step {}", s + 1))
            .unwrap_or_else(|_| run.step.clone()),
        phase,
        values: values.join(", "),
        chart: chart::measurements(
            &run.name,
            &run.measurements,
            spec.map(|s| s.threshold),
            spec.is_some_and(|s| s.metric == "latency-p99"),
        ),
        message: run.message.clone(),
    }
}

fn track_pods(cluster: &dyn Cluster, listing: &Listing, deployment: &Value) -> Vec<Node> {
    owned_by(&listing.replica_sets, deployment)
        .into_iter()
        .flat_map(|rs| owned_by(&listing.pods, rs))
        .map(|p| pod_node(cluster, p))
        .collect()
}

/// The Rollout page of a Deployment; `None` when there is no such Deployment.
pub fn rollout(cluster: &dyn Cluster, id: &ResId) -> Result<Option<RolloutView>, String> {
    let Some(live) = cluster.get(id).map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    let status = driver::status(cluster, id).map_err(|e| e.to_string())?;
    let strategy = Strategy::of(&live).map_err(|e| e.to_string())?;
    let listing = listing(cluster, &id.namespace);
    let (replicas, _updated, available) = status.replicas;
    let mut tracks = vec![TrackView {
        name: "stable".into(),
        deployment: id.name.clone(),
        images: status.images.join(", "),
        replicas: format!("{replicas} desired, {available} available"),
        pods: track_pods(cluster, &listing, &live),
    }];
    let mut track_available = 0;
    if let Some((track, track_replicas, track_ready)) = &status.track {
        track_available = *track_ready;
        let track_id = driver::track_id(id, &strategy);
        let pods = match cluster.get(&track_id) {
            Ok(Some(track_live)) => track_pods(cluster, &listing, &track_live),
            _ => Vec::new(),
        };
        tracks.push(TrackView {
            name: strategy.track().to_string(),
            deployment: track.clone(),
            images: status.track_images.join(", "),
            replicas: format!("{track_replicas} desired, {track_ready} available"),
            pods,
        });
    }
    let state = status.state.clone();
    let canary_steps = match &strategy {
        Strategy::Canary(spec) => spec.steps.clone(),
        _ => Vec::new(),
    };
    let steps = canary_steps
        .iter()
        .enumerate()
        .map(|(i, step)| {
            let step_state = match &state {
                Some(s) if s.phase == Phase::Healthy || i < s.step => "done",
                Some(s) if i == s.step && s.phase != Phase::Degraded => "current",
                Some(_) => "pending",
                None => "done",
            };
            StepView {
                number: i + 1,
                text: step_text(step),
                state: step_state,
                badge: match step_state {
                    "done" => Badge::new("done", "✔", "ok"),
                    "current" => Badge::new("current", "▶", "prog"),
                    _ => Badge::new("pending", "·", "unknown"),
                },
            }
        })
        .collect();
    let spec_of = |run: &AnalysisRun| -> Option<AnalysisSpec> {
        match &strategy {
            Strategy::Canary(spec) => run
                .step
                .parse::<usize>()
                .ok()
                .and_then(|i| spec.steps.get(i))
                .and_then(|s| s.analysis.clone()),
            Strategy::BlueGreen(spec) => spec.pre_promotion_analysis.clone(),
            _ => None,
        }
    };
    let analysis = state
        .iter()
        .flat_map(|s| {
            s.analysis_runs
                .iter()
                .chain(s.analysis.as_ref().map(|(r, _)| r))
        })
        .map(|run| run_view(run, spec_of(run).as_ref()))
        .collect();
    let blue_green = match &strategy {
        Strategy::BlueGreen(spec) => {
            let preview_target = if status.track.is_some() {
                format!("preview track ({})", status.track_images.join(", "))
            } else {
                format!("stable ({})", status.images.join(", "))
            };
            let mut rows = vec![ServiceRoute {
                service: format!("active Service {}", spec.active_service),
                target: format!("stable ({})", status.images.join(", ")),
            }];
            if let Some(preview) = &spec.preview_service {
                rows.push(ServiceRoute {
                    service: format!("preview Service {preview}"),
                    target: preview_target,
                });
            }
            rows
        }
        _ => Vec::new(),
    };
    let history = if strategy.is_progressive() {
        let current = live
            .pointer("/spec/template")
            .cloned()
            .unwrap_or(Value::Null);
        let revisions = driver::history(&live);
        let current_revision = revisions
            .iter()
            .rev()
            .find(|r| driver::same_template(Some(&current), &r.template))
            .map(|r| r.revision);
        revisions
            .into_iter()
            .rev()
            .map(|r| RevisionView {
                revision: r.revision,
                current: Some(r.revision) == current_revision,
                at: r.at,
                images: r.images.join(", "),
                cause: r.cause,
                outcome: r.outcome.map(|o| o.to_string()).unwrap_or_default(),
            })
            .collect()
    } else {
        let current = live
            .pointer("/spec/template")
            .cloned()
            .unwrap_or(Value::Null);
        driver::replica_set_history(cluster, &live)
            .unwrap_or_default()
            .into_iter()
            .rev()
            .map(|r| RevisionView {
                revision: r.revision,
                current: driver::same_template(Some(&current), &r.template),
                at: String::new(),
                images: driver::images(&r.template).join(", "),
                cause: r.change_cause.unwrap_or_default(),
                outcome: r.failure.unwrap_or_default(),
            })
            .collect()
    };
    let (phase, message, revision, set_weight) = match &state {
        Some(s) => (
            Badge::phase(s.phase),
            s.message.clone(),
            s.revision.to_string(),
            (s.strategy == "Canary").then_some(match s.phase {
                Phase::Healthy => 100,
                _ => s.weight,
            }),
        ),
        None => (
            Badge::health(Some(status.health.status)),
            status.health.message.clone(),
            String::new(),
            None,
        ),
    };
    let weight = set_weight.map(|set| {
        let total = available + track_available;
        let actual = if status.track.is_none() || total <= 0 {
            if state.as_ref().is_some_and(|s| s.phase == Phase::Healthy) {
                100
            } else {
                0
            }
        } else {
            (track_available * 100 / total) as u32
        };
        Weight { set, actual }
    });
    Ok(Some(RolloutView {
        namespace: id.namespace.clone(),
        name: id.name.clone(),
        strategy: status.strategy.clone(),
        progressive: strategy.is_progressive(),
        phase,
        message,
        revision,
        step_text: status.step_text.clone().unwrap_or_default(),
        steps,
        weight,
        tracks,
        analysis,
        blue_green,
        history,
        cause: status.cause.clone().unwrap_or_default(),
    }))
}

/// A pod box on the Cluster page.
#[derive(Debug, Clone, Serialize)]
pub struct PodBox {
    /// Pod name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// The application (`app.kubernetes.io/name`, `app`, or the owner).
    pub app: String,
    /// The version (`app.kubernetes.io/version`, or the first image's tag).
    pub version: String,
    /// `canary`/`preview` for a second track.
    pub track: String,
    /// A colour class per application (`c0`…`c7`).
    pub colour: String,
    /// Health.
    pub health: Badge,
    /// Status line.
    pub status: String,
}

/// A node on the Cluster page.
#[derive(Debug, Clone, Serialize)]
pub struct NodeView {
    /// Name.
    pub name: String,
    /// Ready / NotReady.
    pub ready: Badge,
    /// `key=value:Effect`.
    pub taints: Vec<String>,
    /// Cordoned.
    pub unschedulable: bool,
    /// Its pods.
    pub pods: Vec<PodBox>,
}

/// An event of the stream.
#[derive(Debug, Clone, Serialize)]
pub struct EventView {
    /// When (cluster time).
    pub at: String,
    /// Normal / Warning.
    pub kind: Badge,
    /// Reason.
    pub reason: String,
    /// `Pod demo/web-1`.
    pub object: String,
    /// Message.
    pub message: String,
    /// Count.
    pub count: u64,
}

fn colour(app: &str) -> String {
    // FNV-1a: a stable colour per application across pages and restarts.
    let hash = app.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    });
    format!("c{}", hash % 8)
}

fn pod_box(cluster: &dyn Cluster, pod: &Value) -> PodBox {
    let labels = pod.pointer("/metadata/labels");
    let label = |key: &str| {
        labels
            .and_then(|l| l.get(key))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let owner = text(pod, "/metadata/ownerReferences/0/name").to_string();
    let app = [label("app.kubernetes.io/name"), label("app")]
        .into_iter()
        .find(|v| !v.is_empty())
        .unwrap_or(owner);
    let image = text(pod, "/spec/containers/0/image");
    let tag = image
        .rsplit_once(':')
        .filter(|(_, t)| !t.contains('/'))
        .map(|(_, t)| t.to_string())
        .unwrap_or_else(|| "latest".into());
    let version = Some(label("app.kubernetes.io/version"))
        .filter(|v| !v.is_empty())
        .unwrap_or(tag);
    let node = pod_node(cluster, pod);
    PodBox {
        name: text(pod, "/metadata/name").into(),
        namespace: text(pod, "/metadata/namespace").into(),
        colour: colour(&app),
        app,
        version,
        track: label(TRACK_LABEL),
        health: node.health,
        status: node.status,
    }
}

/// Nodes with their pods; pods on no node come last under `(unscheduled)`.
pub fn nodes(cluster: &dyn Cluster) -> Vec<NodeView> {
    let nodes = cluster
        .list(&Gvk::from_api_version("v1", "Node"), None, None)
        .unwrap_or_default();
    let pods = cluster
        .list(&Gvk::from_api_version("v1", "Pod"), None, None)
        .unwrap_or_default();
    let mut views: Vec<NodeView> = nodes
        .iter()
        .map(|n| {
            let ready = n
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .and_then(|cs| cs.iter().find(|c| text(c, "/type") == "Ready"))
                .map(|c| text(c, "/status") == "True")
                .unwrap_or(false);
            let taints = n
                .pointer("/spec/taints")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|t| {
                    let value = text(t, "/value");
                    format!(
                        "{}{}:{}",
                        text(t, "/key"),
                        if value.is_empty() {
                            String::new()
                        } else {
                            format!("={value}")
                        },
                        text(t, "/effect")
                    )
                })
                .collect();
            let name = text(n, "/metadata/name").to_string();
            NodeView {
                ready: if ready {
                    Badge::new("Ready", "✔", "ok")
                } else {
                    Badge::new("NotReady", "✖", "bad")
                },
                taints,
                unschedulable: n.pointer("/spec/unschedulable").and_then(Value::as_bool)
                    == Some(true),
                pods: pods
                    .iter()
                    .filter(|p| text(p, "/spec/nodeName") == name)
                    .map(|p| pod_box(cluster, p))
                    .collect(),
                name,
            }
        })
        .collect();
    let unscheduled: Vec<PodBox> = pods
        .iter()
        .filter(|p| text(p, "/spec/nodeName").is_empty())
        .map(|p| pod_box(cluster, p))
        .collect();
    if !unscheduled.is_empty() {
        views.push(NodeView {
            name: "(unscheduled)".into(),
            ready: Badge::new("Pending", "◐", "prog"),
            taints: Vec::new(),
            unschedulable: false,
            pods: unscheduled,
        });
    }
    views
}

/// The `v1` Events of a Kubernetes API server as the engine keeps events, oldest first.
pub fn events_of(objects: &[Value]) -> Vec<crate::engine::events::Event> {
    let at = |object: &Value, pointers: &[&str]| {
        pointers
            .iter()
            .find_map(|p| object.pointer(p).and_then(Value::as_str))
            .and_then(crate::rollout::time::parse_rfc3339)
            .unwrap_or(0) as i64
    };
    let mut events: Vec<crate::engine::events::Event> = objects
        .iter()
        .map(|e| crate::engine::events::Event {
            id: 0,
            kind: text(e, "/type").to_string(),
            reason: text(e, "/reason").to_string(),
            object_kind: text(e, "/involvedObject/kind").to_string(),
            namespace: text(e, "/involvedObject/namespace").to_string(),
            object_name: text(e, "/involvedObject/name").to_string(),
            message: text(e, "/message").to_string(),
            source: text(e, "/source/component").to_string(),
            count: e.get("count").and_then(Value::as_u64).unwrap_or(1),
            first: at(
                e,
                &[
                    "/firstTimestamp",
                    "/eventTime",
                    "/metadata/creationTimestamp",
                ],
            ),
            last: at(
                e,
                &[
                    "/lastTimestamp",
                    "/eventTime",
                    "/metadata/creationTimestamp",
                ],
            ),
        })
        .collect();
    events.sort_by_key(|e| e.last);
    events
}

/// The newest `limit` events, newest first.
pub fn events(all: &[crate::engine::events::Event], limit: usize) -> Vec<EventView> {
    all.iter()
        .rev()
        .take(limit)
        .map(|e| EventView {
            at: crate::rollout::time::rfc3339(e.last.max(0) as u64),
            kind: if e.kind == "Warning" {
                Badge::new("Warning", "⚠", "warn")
            } else {
                Badge::new("Normal", "ℹ", "ok")
            },
            reason: e.reason.clone(),
            object: if e.namespace.is_empty() {
                format!("{} {}", e.object_kind, e.object_name)
            } else {
                format!("{} {}/{}", e.object_kind, e.namespace, e.object_name)
            },
            message: e.message.clone(),
            count: e.count,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::status::{Revision, SyncRecord};

    #[test]
    fn rows_name_revision_badges_and_hide_credentials() {
        let status = AppStatus {
            name: "web".into(),
            revision: Revision {
                repo: "https://user:hunter2@git.example.com/org/repo.git".into(),
                reference: Some("main".into()),
                sha: Some("0123456789abcdef".into()),
                digest: None,
            },
            sync: SyncStatus::OutOfSync,
            health: Some(Health::Degraded),
            last_error: Some("app/kustomization.yaml: bad\nmore".into()),
            history: vec![SyncRecord {
                revision: "0123456789abcdef".into(),
                started_at: "2026-01-01T00:00:00Z".into(),
                duration_ms: 1500,
                result: "Failed".into(),
                message: "m".into(),
            }],
            ..AppStatus::default()
        };
        let row = app_row(&status);
        assert_eq!(row.revision, "main@0123456789");
        assert!(!row.repo.contains("hunter2"), "{}", row.repo);
        assert_eq!(row.sync.text, "OutOfSync");
        assert_eq!(row.health.icon, "✖");
        assert_eq!(row.error, "app/kustomization.yaml: bad");
        let last = row.last_sync.as_ref().map(|s| s.duration.clone());
        assert_eq!(last.as_deref(), Some("1.5s"));
        let filter = Filter {
            health: "Degraded".into(),
            ..Filter::default()
        };
        assert!(filter.keeps(&row));
        let filter = Filter {
            name: "api".into(),
            ..Filter::default()
        };
        assert!(!filter.keeps(&row));
        let c = counts(&[status]);
        assert_eq!((c.total, c.out_of_sync, c.degraded, c.errors), (1, 1, 1, 1));
    }

    #[test]
    fn path_segments_are_encoded_and_colours_are_stable() {
        assert_eq!(encode("a b/c"), "a%20b%2Fc");
        assert_eq!(colour("web"), colour("web"));
        assert!(colour("api").starts_with('c'));
    }
}

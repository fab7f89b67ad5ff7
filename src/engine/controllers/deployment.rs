//! The Deployment controller, following Kubernetes' `pkg/controller/deployment` step by step:
//! `syncDeployment` → paused / scaling event (`sync`, proportional `scale`) / `rolloutRecreate`
//! / `rolloutRolling` (`reconcileNewReplicaSet`, `reconcileOldReplicaSets`,
//! `cleanupUnhealthyReplicas`, `scaleDownOldReplicaSetsForRollingUpdate`), then
//! `syncRolloutStatus` with the Progressing / Available conditions, and `cleanupDeployment`
//! for `revisionHistoryLimit`.
//!
//! `BlueGreen` and `Canary` Deployments are driven by the rollout driver through a second
//! track Deployment; their own ReplicaSets roll like `RollingUpdate` (with the canary's
//! maxSurge / maxUnavailable when given).

use std::collections::HashMap;

use serde_json::{Value, json};

use super::replicaset::{is_active, pods_by_owner};
use super::{Change, Changes};
use crate::engine::clock::{Millis, SECOND, parse_rfc3339, rfc3339};
use crate::engine::doc;
use crate::engine::events::NewEvent;
use crate::engine::store::State;

/// Label carrying the pod template hash on ReplicaSets and pods.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";
/// Revision annotation on Deployments and ReplicaSets.
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// Revisions a reused ReplicaSet had before.
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
/// Desired replicas of the Deployment when the ReplicaSet was last scaled.
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
/// replicas + maxSurge when the ReplicaSet was last scaled.
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";

const SKIP_COPY: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    REVISION_HISTORY,
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    "deprecated.deployment.rollback.to",
];

/// A value of `maxSurge` / `maxUnavailable` scaled to `total`: percentages round up for
/// surge and down for unavailable (Kubernetes' `GetScaledValueFromIntOrPercent`).
pub fn scaled_value(
    v: Option<&Value>,
    default: &str,
    total: i64,
    round_up: bool,
) -> Result<i64, String> {
    let text = match v {
        None | Some(Value::Null) => default.to_string(),
        Some(Value::Number(n)) => return n.as_i64().ok_or_else(|| format!("invalid value {n}")),
        Some(Value::String(s)) => s.clone(),
        Some(other) => return Err(format!("invalid value {other}")),
    };
    match text.strip_suffix('%') {
        Some(p) => {
            let pct: i64 = p
                .parse()
                .map_err(|_| format!("invalid value for IntOrString: invalid value {text:?}"))?;
            let scaled = pct * total;
            Ok(if round_up {
                (scaled + 99).div_euclid(100)
            } else {
                scaled.div_euclid(100)
            })
        }
        None => text
            .parse()
            .map_err(|_| format!("invalid value for IntOrString: invalid value {text:?}")),
    }
}

/// maxSurge and maxUnavailable resolved for `replicas` (both zero → unavailable 1).
pub fn resolve_fenceposts(
    surge: Option<&Value>,
    unavailable: Option<&Value>,
    replicas: i64,
) -> (i64, i64) {
    let s = scaled_value(surge, "25%", replicas, true).unwrap_or(0);
    let mut u = scaled_value(unavailable, "25%", replicas, false).unwrap_or(0);
    if s == 0 && u == 0 {
        u = 1;
    }
    (s, u)
}

/// Kubernetes' pod-template hash: FNV-32a of the template (plus the collision count),
/// printed in decimal and mapped onto the safe alphabet.
pub fn template_hash(template: &Value, collision_count: Option<i64>) -> String {
    let mut h: u32 = 0x811c_9dc5;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            h ^= u32::from(*b);
            h = h.wrapping_mul(0x0100_0193);
        }
    };
    feed(template.to_string().as_bytes());
    if let Some(c) = collision_count {
        feed(&(c as u32).to_le_bytes());
    }
    let alphabet = crate::engine::clock::SAFE_ALPHABET;
    h.to_string()
        .bytes()
        .map(|b| alphabet[usize::from(b) % alphabet.len()] as char)
        .collect()
}

fn without_hash(template: &Value) -> Value {
    let mut t = template.clone();
    if let Some(labels) = t
        .get_mut("metadata")
        .and_then(|m| m.get_mut("labels"))
        .and_then(Value::as_object_mut)
    {
        labels.remove(POD_TEMPLATE_HASH);
    }
    t
}

/// The deployment's strategy, reduced to what the controller needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Strategy {
    Rolling,
    Recreate,
}

#[derive(Debug, Clone)]
struct Rs {
    doc: Value,
    name: String,
    created: Millis,
    replicas: i64,
    dirty: bool,
    new: bool,
}

impl Rs {
    fn status(&self, field: &str) -> i64 {
        doc::i64_at(&self.doc, &["status", field]).unwrap_or(0)
    }
    fn revision(&self) -> i64 {
        doc::annotation(&self.doc, REVISION)
            .and_then(|r| r.parse().ok())
            .unwrap_or(0)
    }
    fn annotation(&self, key: &str) -> Option<&str> {
        doc::annotation(&self.doc, key)
    }
    fn set_annotation(&mut self, key: &str, value: String) {
        doc::map_mut(&mut self.doc, &["metadata", "annotations"])
            .insert(key.into(), Value::String(value));
    }
}

struct Ctl<'a> {
    now: Millis,
    d: Value,
    original: &'a Value,
    replicas: i64,
    strategy: Strategy,
    surge_value: Option<Value>,
    unavailable_value: Option<Value>,
    rss: Vec<Rs>,
    out: &'a mut Changes,
}

/// One pass over every Deployment.
pub fn sync(state: &State, now: Millis, out: &mut Changes) {
    let mut rs_by_owner: HashMap<&str, Vec<&Value>> = HashMap::new();
    for s in state.kind("ReplicaSet").values() {
        if let Some(owner) = doc::controller_uid(&s.doc) {
            rs_by_owner.entry(owner).or_default().push(&s.doc);
        }
    }
    // Only Recreate looks at pods; indexing them is skipped otherwise.
    let recreate = state
        .kind("Deployment")
        .values()
        .any(|s| doc::str_at(&s.doc, &["spec", "strategy", "type"]) == "Recreate");
    let pods = if recreate {
        pods_by_owner(state)
    } else {
        HashMap::new()
    };
    for stored in state.kind("Deployment").values() {
        let d = &stored.doc;
        if doc::is_deleting(d) {
            continue;
        }
        let rss: Vec<Rs> = rs_by_owner
            .get(doc::uid(d))
            .into_iter()
            .flatten()
            .filter(|rs| !doc::is_deleting(rs))
            .map(|rs| Rs {
                doc: (*rs).clone(),
                name: doc::name(rs).to_string(),
                created: parse_rfc3339(doc::str_at(rs, &["metadata", "creationTimestamp"]))
                    .unwrap_or(0),
                replicas: doc::i64_at(rs, &["spec", "replicas"]).unwrap_or(1),
                dirty: false,
                new: false,
            })
            .collect();
        let strategy_type = doc::str_at(d, &["spec", "strategy", "type"]);
        let (strategy, surge_value, unavailable_value) = match strategy_type {
            "Recreate" => (Strategy::Recreate, None, None),
            "Canary" => (
                Strategy::Rolling,
                doc::at(d, &["spec", "strategy", "canary", "maxSurge"]).cloned(),
                doc::at(d, &["spec", "strategy", "canary", "maxUnavailable"]).cloned(),
            ),
            _ => (
                Strategy::Rolling,
                doc::at(d, &["spec", "strategy", "rollingUpdate", "maxSurge"]).cloned(),
                doc::at(d, &["spec", "strategy", "rollingUpdate", "maxUnavailable"]).cloned(),
            ),
        };
        let mut ctl = Ctl {
            now,
            d: d.clone(),
            original: d,
            replicas: doc::i64_at(d, &["spec", "replicas"]).unwrap_or(1),
            strategy,
            surge_value,
            unavailable_value,
            rss,
            out,
        };
        ctl.sync_deployment(&pods);
        ctl.flush();
    }
}

impl Ctl<'_> {
    fn name(&self) -> String {
        doc::name(&self.d).to_string()
    }

    fn event(&mut self, reason: &str, message: String) {
        let e = NewEvent::normal(
            "deployment-controller",
            "Deployment",
            doc::namespace(&self.d),
            doc::name(&self.d),
            reason,
            message,
        );
        self.out.event(e);
    }

    fn max_surge(&self) -> i64 {
        match self.strategy {
            Strategy::Rolling => {
                resolve_fenceposts(
                    self.surge_value.as_ref(),
                    self.unavailable_value.as_ref(),
                    self.replicas,
                )
                .0
            }
            Strategy::Recreate => 0,
        }
    }

    fn max_unavailable(&self) -> i64 {
        if self.strategy != Strategy::Rolling || self.replicas == 0 {
            return 0;
        }
        let (_, u) = resolve_fenceposts(
            self.surge_value.as_ref(),
            self.unavailable_value.as_ref(),
            self.replicas,
        );
        u.min(self.replicas)
    }

    fn spec_i64(&self, field: &str) -> Option<i64> {
        doc::i64_at(&self.d, &["spec", field])
    }

    fn template(&self) -> Value {
        doc::at(&self.d, &["spec", "template"])
            .cloned()
            .unwrap_or(Value::Null)
    }

    fn flush(self) {
        for rs in self.rss {
            if rs.new {
                let kind = "ReplicaSet";
                let owner = Some((
                    "Deployment",
                    doc::namespace(&rs.doc).to_string(),
                    doc::name(self.original).to_string(),
                ));
                self.out.push(Change::Create {
                    kind,
                    doc: rs.doc,
                    sim: None,
                    owner,
                });
            } else if rs.dirty {
                self.out.update("ReplicaSet", rs.doc);
            }
        }
        if &self.d != self.original {
            self.out.update("Deployment", self.d);
        }
    }

    fn sync_deployment(&mut self, pods: &HashMap<&str, Vec<&Value>>) {
        let selector_empty = doc::at(&self.d, &["spec", "selector"])
            .and_then(Value::as_object)
            .is_none_or(|s| {
                s.values().all(|v| {
                    v.as_object().is_some_and(|m| m.is_empty())
                        || v.as_array().is_some_and(|a| a.is_empty())
                })
            });
        if selector_empty {
            let name = self.name();
            let e = NewEvent::warning(
                "deployment-controller",
                "Deployment",
                doc::namespace(&self.d),
                &name,
                "SelectingAll",
                "This deployment is selecting all pods. A non-empty selector is required.".into(),
            );
            self.out.event(e);
            return;
        }
        self.check_paused_conditions();
        let paused = doc::at(&self.d, &["spec", "paused"]).and_then(Value::as_bool) == Some(true);
        if paused || self.is_scaling_event() {
            self.sync_scale(paused);
            return;
        }
        match self.strategy {
            Strategy::Recreate => self.rollout_recreate(pods),
            Strategy::Rolling => self.rollout_rolling(),
        }
    }

    // ---- conditions ----

    fn conditions(status: &Value) -> Vec<Value> {
        status
            .get("conditions")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    }

    fn get_condition<'v>(status: &'v Value, kind: &str) -> Option<&'v Value> {
        status
            .get("conditions")?
            .as_array()?
            .iter()
            .find(|c| doc::str_at(c, &["type"]) == kind)
    }

    fn new_condition(&self, kind: &str, status: &str, reason: &str, message: String) -> Value {
        let t = rfc3339(self.now);
        json!({"type": kind, "status": status, "lastUpdateTime": t, "lastTransitionTime": t, "reason": reason, "message": message})
    }

    /// Kubernetes' `SetDeploymentCondition`.
    fn set_condition(status: &mut Value, mut cond: Value) {
        let kind = doc::str_at(&cond, &["type"]).to_string();
        let mut conds = Self::conditions(status);
        if let Some(cur) = conds.iter().find(|c| doc::str_at(c, &["type"]) == kind) {
            if doc::str_at(cur, &["status"]) == doc::str_at(&cond, &["status"])
                && doc::str_at(cur, &["reason"]) == doc::str_at(&cond, &["reason"])
            {
                return;
            }
            if doc::str_at(cur, &["status"]) == doc::str_at(&cond, &["status"]) {
                cond["lastTransitionTime"] = cur["lastTransitionTime"].clone();
            }
        }
        conds.retain(|c| doc::str_at(c, &["type"]) != kind);
        conds.push(cond);
        doc::set(status, &["conditions"], Value::Array(conds));
    }

    fn remove_condition(status: &mut Value, kind: &str) {
        let mut conds = Self::conditions(status);
        let before = conds.len();
        conds.retain(|c| doc::str_at(c, &["type"]) != kind);
        if conds.len() != before {
            if conds.is_empty() {
                if let Some(m) = status.as_object_mut() {
                    m.remove("conditions");
                }
            } else {
                doc::set(status, &["conditions"], Value::Array(conds));
            }
        }
    }

    fn progress_deadline(&self) -> Option<i64> {
        match self.spec_i64("progressDeadlineSeconds") {
            Some(s) if s == i64::from(i32::MAX) => None,
            other => other,
        }
    }

    fn status(&self) -> Value {
        self.d.get("status").cloned().unwrap_or_else(|| json!({}))
    }

    fn set_status(&mut self, status: Value) {
        doc::set(&mut self.d, &["status"], status);
    }

    fn check_paused_conditions(&mut self) {
        if self.progress_deadline().is_none() {
            return;
        }
        let mut status = self.status();
        let cond = Self::get_condition(&status, "Progressing").cloned();
        let reason = cond
            .as_ref()
            .map(|c| doc::str_at(c, &["reason"]).to_string())
            .unwrap_or_default();
        if reason == "ProgressDeadlineExceeded" {
            return;
        }
        let paused = doc::at(&self.d, &["spec", "paused"]).and_then(Value::as_bool) == Some(true);
        let paused_cond = reason == "DeploymentPaused";
        if paused && !paused_cond {
            Self::set_condition(
                &mut status,
                self.new_condition(
                    "Progressing",
                    "Unknown",
                    "DeploymentPaused",
                    "Deployment is paused".into(),
                ),
            );
        } else if !paused && paused_cond {
            Self::set_condition(
                &mut status,
                self.new_condition(
                    "Progressing",
                    "Unknown",
                    "DeploymentResumed",
                    "Deployment is resumed".into(),
                ),
            );
        } else {
            return;
        }
        self.set_status(status);
    }

    // ---- replica set bookkeeping ----

    fn new_rs_index(&self) -> Option<usize> {
        let template = without_hash(&self.template());
        let mut order: Vec<usize> = (0..self.rss.len()).collect();
        order.sort_by(|&a, &b| {
            (self.rss[a].created, &self.rss[a].name).cmp(&(self.rss[b].created, &self.rss[b].name))
        });
        order.into_iter().find(|&i| {
            without_hash(doc::at(&self.rss[i].doc, &["spec", "template"]).unwrap_or(&Value::Null))
                == template
        })
    }

    fn old_indices(&self, new: Option<usize>) -> Vec<usize> {
        (0..self.rss.len()).filter(|&i| Some(i) != new).collect()
    }

    fn sum_replicas(&self, idx: &[usize]) -> i64 {
        idx.iter().map(|&i| self.rss[i].replicas).sum()
    }

    fn sum_status(&self, idx: &[usize], field: &str) -> i64 {
        idx.iter().map(|&i| self.rss[i].status(field)).sum()
    }

    fn active(&self, idx: &[usize]) -> Vec<usize> {
        idx.iter()
            .copied()
            .filter(|&i| self.rss[i].replicas > 0)
            .collect()
    }

    fn sort_by_creation(&self, idx: &mut [usize]) {
        idx.sort_by(|&a, &b| {
            (self.rss[a].created, &self.rss[a].name).cmp(&(self.rss[b].created, &self.rss[b].name))
        });
    }

    fn annotations_need_update(&self, i: usize) -> bool {
        let desired = self.replicas.to_string();
        let max = (self.replicas + self.max_surge()).to_string();
        self.rss[i].annotation(DESIRED_REPLICAS) != Some(desired.as_str())
            || self.rss[i].annotation(MAX_REPLICAS) != Some(max.as_str())
    }

    fn set_replicas_annotations(&mut self, i: usize) {
        let (desired, max) = (
            self.replicas.to_string(),
            (self.replicas + self.max_surge()).to_string(),
        );
        self.rss[i].set_annotation(DESIRED_REPLICAS, desired);
        self.rss[i].set_annotation(MAX_REPLICAS, max);
    }

    /// `scaleReplicaSet`: returns whether the size changed.
    fn scale_rs(&mut self, i: usize, new_scale: i64, operation: &str) -> bool {
        let size_changes = self.rss[i].replicas != new_scale;
        if !size_changes && !self.annotations_need_update(i) {
            return false;
        }
        let old = self.rss[i].replicas;
        self.rss[i].replicas = new_scale;
        doc::set(
            &mut self.rss[i].doc,
            &["spec", "replicas"],
            json!(new_scale),
        );
        self.set_replicas_annotations(i);
        self.rss[i].dirty = true;
        if size_changes {
            let name = self.rss[i].name.clone();
            self.event(
                "ScalingReplicaSet",
                format!("Scaled {operation} replica set {name} from {old} to {new_scale}"),
            );
        }
        size_changes
    }

    /// `scaleReplicaSetAndRecordEvent`.
    fn scale_and_record(&mut self, i: usize, new_scale: i64) -> bool {
        if self.rss[i].replicas == new_scale {
            return false;
        }
        let op = if self.rss[i].replicas < new_scale {
            "up"
        } else {
            "down"
        };
        self.scale_rs(i, new_scale, op)
    }

    fn is_scaling_event(&mut self) -> bool {
        let (new, old) = self.get_all_and_sync_revision(false);
        let all: Vec<usize> = new.into_iter().chain(old).collect();
        let desired = self.replicas.to_string();
        self.active(&all)
            .iter()
            .any(|&i| matches!(self.rss[i].annotation(DESIRED_REPLICAS), Some(d) if d != desired))
    }

    /// `copyDeploymentAnnotationsToReplicaSet` + revision bookkeeping
    /// (`SetNewReplicaSetAnnotations`).
    fn set_new_rs_annotations(&mut self, i: usize, new_revision: i64, exists: bool) -> bool {
        let mut changed = false;
        let d_ann = doc::at(&self.d, &["metadata", "annotations"])
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        for (k, v) in d_ann {
            if SKIP_COPY.contains(&k.as_str()) {
                continue;
            }
            if doc::at(&self.rss[i].doc, &["metadata", "annotations", &k]) != Some(&v) {
                doc::map_mut(&mut self.rss[i].doc, &["metadata", "annotations"]).insert(k, v);
                changed = true;
            }
        }
        let old_revision_text = self.rss[i].annotation(REVISION).map(String::from);
        let old_revision = match &old_revision_text {
            None => 0,
            Some(t) => match t.parse::<i64>() {
                Ok(v) => v,
                Err(_) => return changed,
            },
        };
        if old_revision < new_revision {
            self.rss[i].set_annotation(REVISION, new_revision.to_string());
            changed = true;
            if let Some(old) = old_revision_text {
                let history = self.rss[i]
                    .annotation(REVISION_HISTORY)
                    .unwrap_or_default()
                    .to_string();
                let value = if history.is_empty() {
                    old
                } else {
                    format!("{history},{old}")
                };
                self.rss[i].set_annotation(REVISION_HISTORY, value);
            }
        }
        if !exists && self.annotations_need_update(i) {
            self.set_replicas_annotations(i);
            changed = true;
        }
        changed
    }

    fn set_deployment_revision(&mut self, revision: &str) -> bool {
        if doc::annotation(&self.d, REVISION) == Some(revision) {
            return false;
        }
        doc::map_mut(&mut self.d, &["metadata", "annotations"])
            .insert(REVISION.into(), json!(revision));
        true
    }

    /// `getAllReplicaSetsAndSyncRevision`: (new, old).
    fn get_all_and_sync_revision(&mut self, create: bool) -> (Option<usize>, Vec<usize>) {
        let existing = self.new_rs_index();
        let old = self.old_indices(existing);
        let max_old_revision = old
            .iter()
            .map(|&i| self.rss[i].revision())
            .max()
            .unwrap_or(0);
        let new_revision = max_old_revision + 1;
        if let Some(i) = existing {
            let changed = self.set_new_rs_annotations(i, new_revision, true);
            let min_ready = self.spec_i64("minReadySeconds").unwrap_or(0);
            let rs_min_ready =
                doc::i64_at(&self.rss[i].doc, &["spec", "minReadySeconds"]).unwrap_or(0);
            if changed || min_ready != rs_min_ready {
                doc::set(
                    &mut self.rss[i].doc,
                    &["spec", "minReadySeconds"],
                    json!(min_ready),
                );
                self.rss[i].dirty = true;
            }
            let revision = self.rss[i]
                .annotation(REVISION)
                .unwrap_or_default()
                .to_string();
            self.set_deployment_revision(&revision);
            let mut status = self.status();
            if self.progress_deadline().is_some()
                && Self::get_condition(&status, "Progressing").is_none()
            {
                let msg = format!("Found new replica set \"{}\"", self.rss[i].name);
                Self::set_condition(
                    &mut status,
                    self.new_condition("Progressing", "True", "FoundNewReplicaSet", msg),
                );
                self.set_status(status);
            }
            return (Some(i), old);
        }
        if !create {
            return (None, old);
        }
        let collision = doc::i64_at(&self.d, &["status", "collisionCount"]);
        let template = self.template();
        let hash = template_hash(&template, collision);
        let name = format!("{}-{hash}", self.name());
        if self.rss.iter().any(|r| r.name == name) {
            // Hash collision with an unrelated ReplicaSet: bump the count and retry.
            let mut status = self.status();
            status["collisionCount"] = json!(collision.unwrap_or(0) + 1);
            self.set_status(status);
            return (None, old);
        }
        let mut new_template = template.clone();
        doc::map_mut(&mut new_template, &["metadata", "labels"])
            .insert(POD_TEMPLATE_HASH.into(), json!(hash));
        let mut selector = doc::at(&self.d, &["spec", "selector"])
            .cloned()
            .unwrap_or_else(|| json!({}));
        doc::map_mut(&mut selector, &["matchLabels"]).insert(POD_TEMPLATE_HASH.into(), json!(hash));
        let labels = doc::at(&new_template, &["metadata", "labels"])
            .cloned()
            .unwrap_or_else(|| json!({}));
        let rs_doc = json!({
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": name,
                "namespace": doc::namespace(&self.d),
                "labels": labels,
                "ownerReferences": [doc::controller_ref(&self.d)],
            },
            "spec": {
                "replicas": 0,
                "minReadySeconds": self.spec_i64("minReadySeconds").unwrap_or(0),
                "selector": selector,
                "template": new_template,
            },
        });
        self.rss.push(Rs {
            doc: rs_doc,
            name: name.clone(),
            created: self.now,
            replicas: 0,
            dirty: true,
            new: true,
        });
        let i = self.rss.len() - 1;
        let all: Vec<usize> = (0..self.rss.len()).collect();
        let count = self.new_rs_new_replicas(&all, i);
        self.rss[i].replicas = count;
        doc::set(&mut self.rss[i].doc, &["spec", "replicas"], json!(count));
        self.set_new_rs_annotations(i, new_revision, false);
        if count > 0 {
            self.event(
                "ScalingReplicaSet",
                format!("Scaled up replica set {name} from 0 to {count}"),
            );
        }
        self.set_deployment_revision(&new_revision.to_string());
        if self.progress_deadline().is_some() {
            let mut status = self.status();
            let msg = format!("Created new replica set \"{name}\"");
            Self::set_condition(
                &mut status,
                self.new_condition("Progressing", "True", "NewReplicaSetCreated", msg),
            );
            self.set_status(status);
        }
        (Some(i), old)
    }

    /// `NewRSNewReplicas`.
    fn new_rs_new_replicas(&self, all: &[usize], new: usize) -> i64 {
        match self.strategy {
            Strategy::Recreate => self.replicas,
            Strategy::Rolling => {
                let current = self.sum_replicas(all);
                let max_total = self.replicas + self.max_surge();
                if current >= max_total {
                    return self.rss[new].replicas;
                }
                let up = (max_total - current).min(self.replicas - self.rss[new].replicas);
                self.rss[new].replicas + up
            }
        }
    }

    // ---- scaling (sync) ----

    fn sync_scale(&mut self, paused: bool) {
        let (new, old) = self.get_all_and_sync_revision(false);
        self.scale(new, &old);
        if paused {
            self.cleanup(&old);
        }
        let all: Vec<usize> = old.iter().copied().chain(new).collect();
        let status = self.calculate_status(&all, new);
        if Some(&status) != self.d.get("status") {
            self.set_status(status);
        }
    }

    fn is_saturated(&self, new: Option<usize>) -> bool {
        let Some(i) = new else { return false };
        let rs = &self.rss[i];
        rs.annotation(DESIRED_REPLICAS) == Some(self.replicas.to_string().as_str())
            && rs.replicas == self.replicas
            && rs.status("availableReplicas") == self.replicas
    }

    fn scale(&mut self, new: Option<usize>, old: &[usize]) {
        // FindActiveOrLatest.
        if new.is_some() || !old.is_empty() {
            let mut olds = old.to_vec();
            self.sort_by_creation(&mut olds);
            olds.reverse();
            let all: Vec<usize> = olds.iter().copied().chain(new).collect();
            let active = self.active(&all);
            let target = match active.len() {
                0 => Some(new.unwrap_or(olds[0])),
                1 => Some(active[0]),
                _ => None,
            };
            if let Some(i) = target {
                if self.rss[i].replicas != self.replicas {
                    self.scale_and_record(i, self.replicas);
                }
                return;
            }
        }
        if self.is_saturated(new) {
            for i in self.active(old) {
                self.scale_and_record(i, 0);
            }
            return;
        }
        if self.strategy != Strategy::Rolling {
            return;
        }
        let all: Vec<usize> = old.iter().copied().chain(new).collect();
        let mut all = self.active(&all);
        let all_replicas = self.sum_replicas(&all);
        let allowed = if self.replicas > 0 {
            self.replicas + self.max_surge()
        } else {
            0
        };
        let to_add = allowed - all_replicas;
        let operation = if to_add > 0 {
            // ReplicaSetsBySizeNewer: larger first, then newer first.
            all.sort_by(|&a, &b| {
                self.rss[b]
                    .replicas
                    .cmp(&self.rss[a].replicas)
                    .then_with(|| {
                        (self.rss[b].created, &self.rss[b].name)
                            .cmp(&(self.rss[a].created, &self.rss[a].name))
                    })
            });
            "up"
        } else if to_add < 0 {
            // ReplicaSetsBySizeOlder: larger first, then older first.
            all.sort_by(|&a, &b| {
                self.rss[b]
                    .replicas
                    .cmp(&self.rss[a].replicas)
                    .then_with(|| {
                        (self.rss[a].created, &self.rss[a].name)
                            .cmp(&(self.rss[b].created, &self.rss[b].name))
                    })
            });
            "down"
        } else {
            ""
        };
        let mut added = 0;
        let mut sizes: Vec<i64> = Vec::new();
        for &i in &all {
            if to_add != 0 {
                let p = self.proportion(i, to_add, added);
                sizes.push(self.rss[i].replicas + p);
                added += p;
            } else {
                sizes.push(self.rss[i].replicas);
            }
        }
        for (n, &i) in all.iter().enumerate() {
            if n == 0 && to_add != 0 {
                sizes[0] = (sizes[0] + to_add - added).max(0);
            }
            self.scale_rs(i, sizes[n], operation);
        }
    }

    /// `GetProportion`.
    fn proportion(&self, i: usize, to_add: i64, added: i64) -> i64 {
        let rs = &self.rss[i];
        if rs.replicas == 0 || to_add == 0 || to_add == added {
            return 0;
        }
        let fraction = self.fraction(i);
        let allowed = to_add - added;
        if to_add > 0 {
            fraction.min(allowed)
        } else {
            fraction.max(allowed)
        }
    }

    /// `getReplicaSetFraction`.
    fn fraction(&self, i: usize) -> i64 {
        let rs = &self.rss[i];
        if self.replicas == 0 {
            return -rs.replicas;
        }
        let deployment_replicas = self.replicas + self.max_surge();
        let annotated = rs
            .annotation(MAX_REPLICAS)
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or_else(|| doc::i64_at(&self.d, &["status", "replicas"]).unwrap_or(0));
        if annotated == 0 {
            return 0;
        }
        let size = (rs.replicas * deployment_replicas) as f64 / annotated as f64;
        size.round() as i64 - rs.replicas
    }

    // ---- rolling ----

    fn rollout_rolling(&mut self) {
        let (new, old) = self.get_all_and_sync_revision(true);
        let Some(new) = new else { return };
        let all: Vec<usize> = old.iter().copied().chain([new]).collect();
        if self.reconcile_new_rs(&all, new) {
            self.sync_rollout_status(&all, Some(new));
            return;
        }
        let active_old = self.active(&old);
        if self.reconcile_old_rss(&all, &active_old, new) {
            self.sync_rollout_status(&all, Some(new));
            return;
        }
        let status_now = self.status();
        if self.deployment_complete(&status_now) {
            self.cleanup(&old);
        }
        self.sync_rollout_status(&all, Some(new));
    }

    fn reconcile_new_rs(&mut self, all: &[usize], new: usize) -> bool {
        if self.rss[new].replicas == self.replicas {
            return false;
        }
        if self.rss[new].replicas > self.replicas {
            return self.scale_and_record(new, self.replicas);
        }
        let count = self.new_rs_new_replicas(all, new);
        self.scale_and_record(new, count)
    }

    fn reconcile_old_rss(&mut self, all: &[usize], old: &[usize], new: usize) -> bool {
        let old_pods = self.sum_replicas(old);
        if old_pods == 0 {
            return false;
        }
        let all_pods = self.sum_replicas(all);
        let min_available = self.replicas - self.max_unavailable();
        let new_unavailable = self.rss[new].replicas - self.rss[new].status("availableReplicas");
        let max_scaled_down = all_pods - min_available - new_unavailable;
        if max_scaled_down <= 0 {
            return false;
        }
        let cleaned = self.cleanup_unhealthy(old, max_scaled_down);
        let scaled = self.scale_down_old_for_rolling(all, old);
        cleaned + scaled > 0
    }

    fn cleanup_unhealthy(&mut self, old: &[usize], max_cleanup: i64) -> i64 {
        let mut olds = old.to_vec();
        self.sort_by_creation(&mut olds);
        let mut total = 0;
        for i in olds {
            if total >= max_cleanup {
                break;
            }
            let (replicas, available) = (
                self.rss[i].replicas,
                self.rss[i].status("availableReplicas"),
            );
            if replicas == 0 || replicas == available {
                continue;
            }
            let down = (max_cleanup - total).min(replicas - available);
            self.scale_and_record(i, replicas - down);
            total += down;
        }
        total
    }

    fn scale_down_old_for_rolling(&mut self, all: &[usize], old: &[usize]) -> i64 {
        let min_available = self.replicas - self.max_unavailable();
        let available = self.sum_status(all, "availableReplicas");
        if available <= min_available {
            return 0;
        }
        let mut olds = old.to_vec();
        self.sort_by_creation(&mut olds);
        let budget = available - min_available;
        let mut total = 0;
        for i in olds {
            if total >= budget {
                break;
            }
            if self.rss[i].replicas == 0 {
                continue;
            }
            let down = self.rss[i].replicas.min(budget - total);
            self.scale_and_record(i, self.rss[i].replicas - down);
            total += down;
        }
        total
    }

    // ---- recreate ----

    fn rollout_recreate(&mut self, pods: &HashMap<&str, Vec<&Value>>) {
        let (mut new, mut old) = self.get_all_and_sync_revision(false);
        let all: Vec<usize> = old.iter().copied().chain(new).collect();
        let mut scaled_down = false;
        for i in self.active(&old) {
            if self.scale_and_record(i, 0) {
                scaled_down = true;
            }
        }
        if scaled_down {
            self.sync_rollout_status(&all, new);
            return;
        }
        // oldPodsRunning.
        let old_running = self.sum_status(&old, "replicas") > 0
            || old.iter().any(|&i| {
                let uid = doc::uid(&self.rss[i].doc);
                pods.get(uid).into_iter().flatten().any(|p| {
                    let phase = doc::str_at(p, &["status", "phase"]);
                    phase != "Failed" && phase != "Succeeded"
                })
            });
        if old_running {
            self.sync_rollout_status(&all, new);
            return;
        }
        if new.is_none() {
            let (n, o) = self.get_all_and_sync_revision(true);
            new = n;
            old = o;
        }
        let all: Vec<usize> = old.iter().copied().chain(new).collect();
        if let Some(i) = new {
            self.scale_and_record(i, self.replicas);
        }
        let status_now = self.status();
        if self.deployment_complete(&status_now) {
            self.cleanup(&old);
        }
        self.sync_rollout_status(&all, new);
    }

    // ---- history ----

    fn cleanup(&mut self, old: &[usize]) {
        let Some(limit) = self.spec_i64("revisionHistoryLimit") else {
            return;
        };
        let mut cleanable: Vec<usize> = old.to_vec();
        let diff = cleanable.len() as i64 - limit;
        if diff <= 0 {
            return;
        }
        cleanable.sort_by_key(|&i| {
            (
                self.rss[i].revision(),
                self.rss[i].created,
                self.rss[i].name.clone(),
            )
        });
        for &i in cleanable.iter().take(diff as usize) {
            let rs = &self.rss[i];
            let generation = doc::i64_at(&rs.doc, &["metadata", "generation"]).unwrap_or(0);
            let observed = rs.status("observedGeneration");
            if rs.status("replicas") != 0 || rs.replicas != 0 || generation > observed || rs.dirty {
                continue;
            }
            let ns = doc::namespace(&rs.doc).to_string();
            self.out.push(Change::Delete {
                kind: "ReplicaSet",
                namespace: ns,
                name: rs.name.clone(),
            });
        }
    }

    // ---- status ----

    fn calculate_status(&self, all: &[usize], new: Option<usize>) -> Value {
        let available = self.sum_status(all, "availableReplicas");
        let total = self.sum_replicas(all);
        let unavailable = (total - available).max(0);
        let mut status = json!({
            "observedGeneration": doc::i64_at(&self.d, &["metadata", "generation"]).unwrap_or(1),
        });
        let mut put = |k: &str, v: i64| {
            if v != 0 {
                status[k] = json!(v);
            }
        };
        put("replicas", self.sum_status(all, "replicas"));
        put(
            "updatedReplicas",
            new.map(|i| self.rss[i].status("replicas")).unwrap_or(0),
        );
        put("readyReplicas", self.sum_status(all, "readyReplicas"));
        put("availableReplicas", available);
        put("unavailableReplicas", unavailable);
        if let Some(c) = doc::at(&self.d, &["status", "collisionCount"]) {
            status["collisionCount"] = c.clone();
        }
        if let Some(c) = doc::at(&self.d, &["status", "conditions"]) {
            status["conditions"] = c.clone();
        }
        let cond = if available >= self.replicas - self.max_unavailable() {
            self.new_condition(
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.".into(),
            )
        } else {
            self.new_condition(
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.".into(),
            )
        };
        Self::set_condition(&mut status, cond);
        status
    }

    fn status_num(status: &Value, field: &str) -> i64 {
        doc::i64_at(status, &[field]).unwrap_or(0)
    }

    fn deployment_complete(&self, status: &Value) -> bool {
        let n = |f| Self::status_num(status, f);
        n("updatedReplicas") == self.replicas
            && n("replicas") == self.replicas
            && n("availableReplicas") == self.replicas
            && n("observedGeneration")
                >= doc::i64_at(&self.d, &["metadata", "generation"]).unwrap_or(1)
    }

    fn deployment_progressing(&self, new_status: &Value) -> bool {
        let old = self.status();
        let n = Self::status_num;
        let old_old = n(&old, "replicas") - n(&old, "updatedReplicas");
        let new_old = n(new_status, "replicas") - n(new_status, "updatedReplicas");
        n(new_status, "updatedReplicas") > n(&old, "updatedReplicas")
            || new_old < old_old
            || n(new_status, "readyReplicas") > n(&old, "readyReplicas")
            || n(new_status, "availableReplicas") > n(&old, "availableReplicas")
    }

    fn deployment_timed_out(&self, status: &Value) -> bool {
        let Some(deadline) = self.progress_deadline() else {
            return false;
        };
        let Some(cond) = Self::get_condition(status, "Progressing") else {
            return false;
        };
        match doc::str_at(cond, &["reason"]) {
            "NewReplicaSetAvailable" => false,
            "ProgressDeadlineExceeded" => true,
            _ => {
                let from =
                    parse_rfc3339(doc::str_at(cond, &["lastUpdateTime"])).unwrap_or(self.now);
                from + deadline * SECOND < self.now
            }
        }
    }

    fn sync_rollout_status(&mut self, all: &[usize], new: Option<usize>) {
        let mut status = self.calculate_status(all, new);
        let deadline = self.progress_deadline();
        if deadline.is_none() {
            Self::remove_condition(&mut status, "Progressing");
        }
        let current = Self::get_condition(&self.status(), "Progressing").cloned();
        let n = Self::status_num;
        let complete_already = n(&status, "replicas") == n(&status, "updatedReplicas")
            && current
                .as_ref()
                .is_some_and(|c| doc::str_at(c, &["reason"]) == "NewReplicaSetAvailable");
        let new_name = new.map(|i| self.rss[i].name.clone());
        if deadline.is_some() && !complete_already {
            if self.deployment_complete(&status) {
                let msg = format!(
                    "ReplicaSet \"{}\" has successfully progressed.",
                    new_name.clone().unwrap_or_default()
                );
                Self::set_condition(
                    &mut status,
                    self.new_condition("Progressing", "True", "NewReplicaSetAvailable", msg),
                );
            } else if self.deployment_progressing(&status) {
                let msg = match &new_name {
                    Some(n) => format!("ReplicaSet \"{n}\" is progressing."),
                    None => format!("Deployment \"{}\" is progressing.", self.name()),
                };
                let mut cond = self.new_condition("Progressing", "True", "ReplicaSetUpdated", msg);
                if let Some(cur) = &current {
                    if doc::str_at(cur, &["status"]) == "True" {
                        cond["lastTransitionTime"] = cur["lastTransitionTime"].clone();
                    }
                    Self::remove_condition(&mut status, "Progressing");
                }
                Self::set_condition(&mut status, cond);
            } else if self.deployment_timed_out(&status) {
                let msg = match &new_name {
                    Some(n) => format!("ReplicaSet \"{n}\" has timed out progressing."),
                    None => format!("Deployment \"{}\" has timed out progressing.", self.name()),
                };
                // Only the condition, as the upstream controller does (no event).
                Self::set_condition(
                    &mut status,
                    self.new_condition("Progressing", "False", "ProgressDeadlineExceeded", msg),
                );
            }
        }
        // ReplicaFailure conditions of the ReplicaSets.
        let failure = all.iter().chain(new.iter()).find_map(|&i| {
            doc::at(&self.rss[i].doc, &["status", "conditions"])
                .and_then(Value::as_array)
                .and_then(|c| {
                    c.iter()
                        .find(|c| doc::str_at(c, &["type"]) == "ReplicaFailure")
                })
                .cloned()
        });
        match failure {
            Some(f) => {
                let cond = self.new_condition(
                    "ReplicaFailure",
                    doc::str_at(&f, &["status"]),
                    doc::str_at(&f, &["reason"]),
                    doc::str_at(&f, &["message"]).to_string(),
                );
                Self::set_condition(&mut status, cond);
            }
            None => Self::remove_condition(&mut status, "ReplicaFailure"),
        }
        // Wake when the deadline would pass (requeueStuckDeployment).
        if let (Some(dl), Some(cond)) = (deadline, Self::get_condition(&status, "Progressing"))
            && doc::str_at(cond, &["status"]) == "True"
            && doc::str_at(cond, &["reason"]) != "NewReplicaSetAvailable"
            && let Some(from) = parse_rfc3339(doc::str_at(cond, &["lastUpdateTime"]))
        {
            self.out.wake_at(from + dl * SECOND + 1);
        }
        if Some(&status) != self.d.get("status") {
            self.set_status(status);
        }
    }
}

/// Whether every pod of a ReplicaSet is gone or finished (for tests and the Recreate check).
pub fn no_active_pods(pods: &[&Value]) -> bool {
    pods.iter().all(|p| !is_active(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fenceposts_round_like_kubernetes() {
        let v = |s: &str| Some(json!(s));
        assert_eq!(
            resolve_fenceposts(v("25%").as_ref(), v("25%").as_ref(), 10),
            (3, 2)
        );
        assert_eq!(
            resolve_fenceposts(v("25%").as_ref(), v("25%").as_ref(), 1),
            (1, 0)
        );
        assert_eq!(
            resolve_fenceposts(Some(&json!(0)), Some(&json!(0)), 5),
            (0, 1)
        );
        assert_eq!(
            resolve_fenceposts(v("30%").as_ref(), v("30%").as_ref(), 3),
            (1, 0)
        );
        assert_eq!(
            resolve_fenceposts(v("50%").as_ref(), Some(&json!(0)), 5),
            (3, 0)
        );
    }

    #[test]
    fn template_hashes_use_the_safe_alphabet() {
        let t = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "a", "image": "x:1"}]}});
        let h = template_hash(&t, None);
        assert!(
            h.bytes()
                .all(|b| crate::engine::clock::SAFE_ALPHABET.contains(&b))
        );
        assert_ne!(h, template_hash(&t, Some(1)));
        assert_eq!(h, template_hash(&t, None));
    }
}

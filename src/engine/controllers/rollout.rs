//! The rollout controller: carries Canary and BlueGreen rollouts forward as the engine's
//! clock runs, so `engine advance` (and anything else that lets time pass) moves steps,
//! timed pauses and analyses with no other command.
//!
//! It runs the one rollout driver ([`crate::rollout::driver::tick`]) against a
//! [`StoreView`]: a [`Cluster`] over the state snapshot whose writes are collected as
//! [`Change`]s (API writes through admission) instead of being made. The controller stays a
//! function of (state, now); the decisions stay the pure `canary::step` / `bluegreen::step`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use super::{Change, Changes};
use crate::cluster::{self, Cluster, MetricQuery};
use crate::diff::normalize::ROLLOUT_STATE_ANNOTATION;
use crate::engine::clock::{Millis, rfc3339};
use crate::engine::doc;
use crate::engine::events::NewEvent;
use crate::engine::kinds;
use crate::engine::labels::Selector;
use crate::engine::store::State;
use crate::engine::traffic;
use crate::model::{Gvk, ResId};
use crate::rollout::driver;
use crate::rollout::failure::FAILURE_ACTION_ANNOTATION;

/// Steps every active rollout due now; asks to be woken when the next step is due.
pub fn sync(state: &State, now: Millis, out: &mut Changes) {
    let due: Vec<ResId> = state
        .kind("Deployment")
        .values()
        .filter(|d| !doc::is_deleting(&d.doc))
        .filter_map(|d| {
            let text = doc::annotation(&d.doc, ROLLOUT_STATE_ANNOTATION)?;
            let rollout: crate::rollout::State = serde_json::from_str(text).ok()?;
            // A client drives it (`engine serve` behind a kube target), not this engine.
            if rollout.driven_by_client {
                return None;
            }
            let waiting_until = rollout.next_step_ms.map(|at| at as Millis);
            (rollout.is_active() && waiting_until.is_none_or(|at| at <= now))
                .then(|| ResId::of(&d.doc))
                .or_else(|| {
                    if let Some(at) = waiting_until.filter(|_| rollout.is_active()) {
                        out.wake_at(at);
                    }
                    None
                })
        })
        .collect();
    guard_updates(state, now, out);
    for id in due {
        let mut view = StoreView::new(state, now);
        match driver::tick(&mut view, &id) {
            Ok(next) => {
                out.list.append(&mut view.changes);
                if let Some(wait) = next {
                    out.wake_at(now + wait.as_millis().max(1) as Millis);
                }
            }
            Err(err) => out.event(NewEvent::warning(
                "rollout-controller",
                "Deployment",
                &id.namespace,
                &id.name,
                "RolloutError",
                err.to_string(),
            )),
        }
    }
}

/// Watches the updates of Deployments with a failure policy (`reconcile.dev/failure-action`)
/// and carries out the action when one fails ([`driver::guard`]).
fn guard_updates(state: &State, now: Millis, out: &mut Changes) {
    let guarded: Vec<ResId> = state
        .kind("Deployment")
        .values()
        .filter(|d| !doc::is_deleting(&d.doc))
        .filter(|d| doc::annotation(&d.doc, FAILURE_ACTION_ANNOTATION).is_some())
        .map(|d| ResId::of(&d.doc))
        .collect();
    for id in guarded {
        let mut view = StoreView::new(state, now);
        match driver::guard(&mut view, &id) {
            Ok(guarded) => {
                out.list.append(&mut view.changes);
                if let Some(wait) = guarded.next {
                    out.wake_at(now + wait.as_millis().max(1) as Millis);
                }
                if let Some(acted) = guarded.acted {
                    out.event(NewEvent::warning(
                        "rollout-controller",
                        "Deployment",
                        &id.namespace,
                        &id.name,
                        "UpdateFailed",
                        acted,
                    ));
                }
            }
            Err(err) => out.event(NewEvent::warning(
                "rollout-controller",
                "Deployment",
                &id.namespace,
                &id.name,
                "UpdateGuardError",
                err.to_string(),
            )),
        }
    }
}

/// A [`Cluster`] over a state snapshot: reads see the snapshot plus this view's own writes;
/// writes become [`Change`]s for the engine to make after the controller returns.
pub struct StoreView<'a> {
    state: &'a State,
    now: Millis,
    /// Objects written (`Some`) or deleted (`None`) through this view, by (kind, ns, name).
    overlay: BTreeMap<(String, String, String), Option<Value>>,
    changes: Vec<Change>,
}

impl<'a> StoreView<'a> {
    /// A view of `state` at `now`, with no writes yet.
    pub fn new(state: &'a State, now: Millis) -> StoreView<'a> {
        StoreView {
            state,
            now,
            overlay: BTreeMap::new(),
            changes: Vec::new(),
        }
    }

    fn key(kind: &str, namespace: &str, name: &str) -> (String, String, String) {
        (kind.to_string(), namespace.to_string(), name.to_string())
    }
}

fn info_of(group: &str, kind: &str) -> Result<&'static kinds::KindInfo, cluster::Error> {
    kinds::by_group_kind(group, kind)
        .ok_or_else(|| cluster::Error::Backend(format!("unknown kind {kind}")))
}

fn namespace_of(info: &kinds::KindInfo, namespace: &str) -> String {
    match (info.namespaced, namespace) {
        (false, _) => String::new(),
        (true, "") => "default".to_string(),
        (true, ns) => ns.to_string(),
    }
}

impl Cluster for StoreView<'_> {
    fn target_name(&self) -> String {
        "engine".to_string()
    }

    fn get(&self, id: &ResId) -> Result<Option<Value>, cluster::Error> {
        let info = info_of(&id.gvk.group, &id.gvk.kind)?;
        let ns = namespace_of(info, &id.namespace);
        if let Some(written) = self.overlay.get(&Self::key(info.key, &ns, &id.name)) {
            return Ok(written.clone());
        }
        Ok(self
            .state
            .get(info.key, &ns, &id.name)
            .map(|s| s.doc.clone()))
    }

    fn list(
        &self,
        gvk: &Gvk,
        namespace: Option<&str>,
        label_selector: Option<&str>,
    ) -> Result<Vec<Value>, cluster::Error> {
        let info = info_of(&gvk.group, &gvk.kind)?;
        let selector =
            Selector::parse(label_selector.unwrap_or_default()).map_err(cluster::Error::Backend)?;
        let mut found: BTreeMap<(String, String, String), Value> = self
            .state
            .kind(info.key)
            .values()
            .map(|s| {
                (
                    Self::key(info.key, doc::namespace(&s.doc), doc::name(&s.doc)),
                    s.doc.clone(),
                )
            })
            .collect();
        for (key, written) in self.overlay.iter().filter(|(k, _)| k.0 == info.key) {
            match written {
                Some(object) => found.insert(key.clone(), object.clone()),
                None => found.remove(key),
            };
        }
        Ok(found
            .into_iter()
            .filter(|(key, _)| namespace.is_none_or(|ns| !info.namespaced || key.1 == ns))
            .map(|(_, object)| object)
            .filter(|object| selector.matches(doc::labels(object)))
            .collect())
    }

    fn apply(&mut self, object: &Value) -> Result<Value, cluster::Error> {
        let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
        let group = doc::str_at(object, &["apiVersion"])
            .rsplit_once('/')
            .map_or("", |(g, _)| g);
        let info = info_of(group, kind)?;
        let ns = namespace_of(info, doc::namespace(object));
        let key = Self::key(info.key, &ns, doc::name(object));
        let current = match self.overlay.get(&key) {
            Some(written) => written.clone(),
            None => self
                .state
                .get(info.key, &ns, doc::name(object))
                .map(|s| s.doc.clone()),
        };
        // The writes are made in order after the controller returns: a resourceVersion
        // read from this snapshot would be stale after the first of them.
        let mut write = object.clone();
        if let Some(meta) = write.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("resourceVersion");
        }
        let mut seen = write.clone();
        if let Some(status) = current.as_ref().and_then(|c| c.get("status")) {
            seen["status"] = status.clone();
        }
        self.changes.push(Change::Apply {
            kind: info.key,
            doc: write,
        });
        self.overlay.insert(key, Some(seen.clone()));
        Ok(seen)
    }

    fn delete(&mut self, id: &ResId) -> Result<bool, cluster::Error> {
        let info = info_of(&id.gvk.group, &id.gvk.kind)?;
        let ns = namespace_of(info, &id.namespace);
        let existed = self.get(id)?.is_some();
        if existed {
            self.changes.push(Change::Delete {
                kind: info.key,
                namespace: ns.clone(),
                name: id.name.clone(),
            });
            self.overlay
                .insert(Self::key(info.key, &ns, &id.name), None);
        }
        Ok(existed)
    }

    fn now(&self) -> String {
        rfc3339(self.now)
    }

    fn wait(&mut self, _: Duration) -> Result<(), cluster::Error> {
        Err(cluster::Error::Backend(
            "a controller cannot wait; it asks to be woken instead".to_string(),
        ))
    }

    fn lock(&mut self, _: &str) -> Result<(), cluster::Error> {
        Ok(())
    }

    fn unlock(&mut self) -> Result<(), cluster::Error> {
        Ok(())
    }

    fn metric(&self, query: &MetricQuery) -> Result<Option<f64>, cluster::Error> {
        traffic::metric(self.state, query).map_err(cluster::Error::Backend)
    }

    fn warnings(
        &self,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Vec<String>, cluster::Error> {
        Ok(crate::engine::events::warning_messages(
            &self.state.events,
            kind,
            namespace,
            name,
        ))
    }
}

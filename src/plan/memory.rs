//! An in-memory [`Cluster`] for tests of the reconciler and the rollout driver.
//!
//! A real map-backed implementation: resourceVersions, uids, server defaults (a Service's
//! clusterIP, a Deployment's strategy), status of workloads that become ready after a
//! startup delay on a virtual clock, a lock, and metrics set per selector by the test.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::cluster::{Cluster, Error, MetricQuery};
use crate::model::{Gvk, ResId};

/// A map-backed cluster with a virtual clock.
#[derive(Debug, Default)]
pub struct MemoryCluster {
    objects: BTreeMap<String, Value>,
    next_version: u64,
    /// Virtual time in milliseconds since the epoch of the test.
    pub now_ms: u64,
    /// How long a workload takes to become ready after its template changed.
    pub startup_ms: u64,
    /// When each workload's template last changed.
    changed_at: BTreeMap<String, u64>,
    lock_holder: Option<String>,
    /// Metric values by (metric, selector).
    pub metrics: BTreeMap<(String, String), f64>,
    /// Objects whose apply fails with `Invalid` (by name), to test partial failure.
    pub refuse: Vec<String>,
    /// Every write, in order: `apply Kind/ns/name` or `delete Kind/ns/name`.
    pub log: Vec<String>,
}

fn key(id: &ResId) -> String {
    format!(
        "{}/{}/{}/{}",
        id.gvk.group, id.gvk.kind, id.namespace, id.name
    )
}

fn short(id: &ResId) -> String {
    if id.namespace.is_empty() {
        format!("{}/{}", id.gvk.kind, id.name)
    } else {
        format!("{}/{}/{}", id.gvk.kind, id.namespace, id.name)
    }
}

impl MemoryCluster {
    /// An empty cluster.
    pub fn new() -> MemoryCluster {
        MemoryCluster {
            startup_ms: 2_000,
            now_ms: 1_767_225_600_000,
            ..MemoryCluster::default()
        }
    }

    /// Every object, in key order.
    pub fn objects(&self) -> Vec<&Value> {
        self.objects.values().collect()
    }

    /// Sets a metric for a selector.
    pub fn set_metric(&mut self, metric: &str, selector: &str, value: f64) {
        self.metrics
            .insert((metric.to_string(), selector.to_string()), value);
    }

    fn refresh_status(&mut self) {
        let now = self.now_ms;
        for (k, object) in self.objects.iter_mut() {
            let kind = object["kind"].as_str().unwrap_or_default().to_string();
            if !matches!(kind.as_str(), "Deployment" | "StatefulSet") {
                continue;
            }
            let replicas = object
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            let ready_at = self.changed_at.get(k).copied().unwrap_or(0) + self.startup_ms;
            let ready = if now >= ready_at { replicas } else { 0 };
            let generation = object
                .pointer("/metadata/generation")
                .cloned()
                .unwrap_or(json!(1));
            object["status"] = json!({
                "observedGeneration": generation,
                "replicas": replicas,
                "updatedReplicas": replicas,
                "readyReplicas": ready,
                "availableReplicas": ready,
            });
        }
    }
}

impl Cluster for MemoryCluster {
    fn target_name(&self) -> String {
        "memory".to_string()
    }

    fn get(&self, id: &ResId) -> Result<Option<Value>, Error> {
        Ok(self.objects.get(&key(id)).cloned())
    }

    fn list(
        &self,
        gvk: &Gvk,
        namespace: Option<&str>,
        label_selector: Option<&str>,
    ) -> Result<Vec<Value>, Error> {
        let wanted: Vec<(&str, &str)> = label_selector
            .unwrap_or_default()
            .split(',')
            .filter(|s| !s.is_empty())
            .filter_map(|pair| pair.split_once('='))
            .collect();
        Ok(self
            .objects
            .values()
            .filter(|o| {
                let id = ResId::of(o);
                id.gvk.group == gvk.group
                    && id.gvk.kind == gvk.kind
                    && namespace.is_none_or(|ns| ns == id.namespace)
                    && wanted.iter().all(|(k, v)| {
                        o.pointer("/metadata/labels")
                            .and_then(|l| l.get(*k))
                            .and_then(Value::as_str)
                            == Some(*v)
                    })
            })
            .cloned()
            .collect())
    }

    fn apply(&mut self, object: &Value) -> Result<Value, Error> {
        let id = ResId::of(object);
        if self.refuse.contains(&id.name) {
            self.log.push(format!("refused {}", short(&id)));
            return Err(Error::Invalid {
                id: Box::new(id),
                message: "refused by the test".into(),
            });
        }
        self.log.push(format!("apply {}", short(&id)));
        self.next_version += 1;
        let k = key(&id);
        let old = self.objects.get(&k).cloned();
        let mut new = object.clone();
        let generation = old
            .as_ref()
            .and_then(|o| o.pointer("/metadata/generation"))
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let spec_changed = old.as_ref().map(|o| o.get("spec")) != Some(new.get("spec"));
        let template_changed = old.as_ref().map(|o| o.pointer("/spec/template"))
            != Some(new.pointer("/spec/template"));
        let meta = new["metadata"]
            .as_object_mut()
            .ok_or_else(|| Error::Invalid {
                id: Box::new(id.clone()),
                message: "metadata must be an object".into(),
            })?;
        meta.insert(
            "resourceVersion".into(),
            json!(self.next_version.to_string()),
        );
        meta.insert(
            "generation".into(),
            json!(if spec_changed {
                generation + 1
            } else {
                generation
            }),
        );
        let uid = old
            .as_ref()
            .and_then(|o| o.pointer("/metadata/uid").cloned());
        meta.insert(
            "uid".into(),
            uid.unwrap_or_else(|| json!(format!("uid-{}", self.next_version))),
        );
        match id.gvk.kind.as_str() {
            "Service" => {
                let ip = old
                    .as_ref()
                    .and_then(|o| o.pointer("/spec/clusterIP").cloned())
                    .unwrap_or_else(|| json!(format!("10.96.0.{}", self.next_version % 250)));
                new["spec"]["clusterIP"] = ip;
                new["spec"]["sessionAffinity"] = json!("None");
            }
            "Deployment" => {
                if new.pointer("/spec/strategy").is_none() {
                    new["spec"]["strategy"] = json!({"type": "RollingUpdate",
                        "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}});
                }
                new["spec"]["revisionHistoryLimit"] = new
                    .pointer("/spec/revisionHistoryLimit")
                    .cloned()
                    .unwrap_or(json!(10));
                if template_changed {
                    self.changed_at.insert(k.clone(), self.now_ms);
                }
            }
            _ => {}
        }
        if let Some(status) = old.as_ref().and_then(|o| o.get("status")) {
            new["status"] = status.clone();
        }
        self.objects.insert(k, new);
        self.refresh_status();
        Ok(self.objects.get(&key(&id)).cloned().unwrap_or(Value::Null))
    }

    fn delete(&mut self, id: &ResId) -> Result<bool, Error> {
        self.log.push(format!("delete {}", short(id)));
        Ok(self.objects.remove(&key(id)).is_some())
    }

    fn now(&self) -> String {
        crate::rollout::time::rfc3339(self.now_ms)
    }

    fn wait(&mut self, duration: Duration) -> Result<(), Error> {
        self.now_ms += duration.as_millis() as u64;
        self.refresh_status();
        Ok(())
    }

    fn lock(&mut self, holder: &str) -> Result<(), Error> {
        match &self.lock_holder {
            Some(current) => Err(Error::Locked {
                target: self.target_name(),
                holder: current.clone(),
            }),
            None => {
                self.lock_holder = Some(holder.to_string());
                Ok(())
            }
        }
    }

    fn unlock(&mut self) -> Result<(), Error> {
        self.lock_holder = None;
        Ok(())
    }

    fn metric(&self, query: &MetricQuery) -> Result<Option<f64>, Error> {
        Ok(self
            .metrics
            .get(&(query.metric.clone(), query.selector.clone()))
            .copied())
    }
}

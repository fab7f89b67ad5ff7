//! What the cluster serves: kinds mapped to resources, scope and verbs by API discovery, so
//! any kind (CRDs included) works, not a fixed list; and watches of served resources.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use kube::api::{Api, DynamicObject};
use kube::core::{ApiResource, GroupVersionKind};
use kube::discovery::{Discovery, Scope};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Map, Value};
use tokio_stream::StreamExt;

use crate::cluster::Observed;
use crate::model::Gvk;

/// The resources a cluster serves (one discovery).
pub struct Resources {
    discovery: Discovery,
}

/// One served resource.
#[derive(Debug, Clone)]
pub struct Resource {
    /// Group, version, kind and plural.
    pub api: ApiResource,
    /// Namespaced (else cluster-scoped).
    pub namespaced: bool,
}

impl Resources {
    /// Runs discovery against the cluster, again with backoff while it fails transiently.
    pub async fn discover(client: kube::Client) -> Result<Resources, kube::Error> {
        let discovery = super::retrying(|| Discovery::new(client.clone()).run()).await?;
        Ok(Resources { discovery })
    }

    /// The resource serving a kind at its version; at the group's preferred version when
    /// that version is not served but the kind is (a deprecated version, say).
    pub fn find(&self, gvk: &Gvk) -> Option<Resource> {
        let wanted = GroupVersionKind::gvk(&gvk.group, &gvk.version, &gvk.kind);
        let (api, capabilities) = self.discovery.resolve_gvk(&wanted).or_else(|| {
            self.discovery
                .get(&gvk.group)
                .and_then(|group| group.recommended_kind(&gvk.kind))
        })?;
        Some(Resource {
            api,
            namespaced: capabilities.scope == Scope::Namespaced,
        })
    }
}

impl Resource {
    /// The collection path (`/apis/apps/v1/namespaces/prod/deployments`).
    pub fn path(&self, namespace: &str) -> String {
        let base = if self.api.group.is_empty() {
            format!("/api/{}", self.api.version)
        } else {
            format!("/apis/{}/{}", self.api.group, self.api.version)
        };
        if self.namespaced && !namespace.is_empty() {
            format!("{base}/namespaces/{namespace}/{}", self.api.plural)
        } else {
            format!("{base}/{}", self.api.plural)
        }
    }

    /// A request builder on the collection.
    pub fn request(&self, namespace: &str) -> kube::core::Request {
        kube::core::Request::new(self.path(namespace))
    }

    /// kubectl's word for the resource (`deployments.apps`).
    pub fn word(&self) -> String {
        if self.api.group.is_empty() {
            self.api.plural.clone()
        } else {
            format!("{}.{}", self.api.plural, self.api.group)
        }
    }

    /// The object with its `apiVersion` and `kind` first (list items carry neither).
    pub fn typed(&self, object: Value) -> Value {
        let Value::Object(fields) = object else {
            return object;
        };
        let mut typed = Map::with_capacity(fields.len() + 2);
        typed.insert(
            "apiVersion".into(),
            Value::String(self.api.api_version.clone()),
        );
        typed.insert("kind".into(), Value::String(self.api.kind.clone()));
        for (key, value) in fields {
            if key != "apiVersion" && key != "kind" {
                typed.insert(key, value);
            }
        }
        Value::Object(typed)
    }
}

/// Watches a resource in every namespace and signals `changed` on each change (and counts it
/// in `marker`), until the task is aborted. Errors (a dropped connection, an expired
/// resourceVersion) are retried with kube-runtime's backoff.
pub async fn watch_changes(
    client: kube::Client,
    resource: Resource,
    changed: Arc<tokio::sync::Notify>,
    marker: Arc<AtomicU64>,
) {
    let api: Api<DynamicObject> = Api::all_with(client, &resource.api);
    let config = watcher::Config::default().timeout(25);
    let stream = watcher(api, config).default_backoff();
    let mut stream = std::pin::pin!(stream);
    while let Some(event) = stream.next().await {
        if let Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_)) = event {
            marker.fetch_add(1, Ordering::Relaxed);
            changed.notify_one();
        }
    }
}

/// Watches a resource in every namespace and records every object it sees change or go in
/// `seen` (the objects of its first list too), until the task is aborted; errors are
/// retried with kube-runtime's backoff, a new list reporting every object again.
pub async fn observe_changes(
    client: kube::Client,
    resource: Resource,
    seen: Arc<Mutex<Vec<Observed>>>,
    marker: Arc<AtomicU64>,
) {
    let api: Api<DynamicObject> = Api::all_with(client, &resource.api);
    let config = watcher::Config::default().timeout(25);
    let stream = watcher(api, config).default_backoff();
    let mut stream = std::pin::pin!(stream);
    while let Some(event) = stream.next().await {
        let (object, deleted) = match event {
            Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => (o, false),
            Ok(watcher::Event::Delete(o)) => (o, true),
            _ => continue,
        };
        let Ok(object) = serde_json::to_value(&object) else {
            continue;
        };
        marker.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut seen) = seen.lock() {
            seen.push(Observed {
                object: resource.typed(object),
                deleted,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(group: &str, kind: &str, plural: &str, namespaced: bool) -> Resource {
        let api_version = if group.is_empty() {
            "v1".to_string()
        } else {
            format!("{group}/v1")
        };
        Resource {
            api: ApiResource {
                group: group.into(),
                version: "v1".into(),
                api_version,
                kind: kind.into(),
                plural: plural.into(),
            },
            namespaced,
        }
    }

    #[test]
    fn paths_follow_group_and_scope() {
        let deployments = resource("apps", "Deployment", "deployments", true);
        assert_eq!(
            deployments.path("prod"),
            "/apis/apps/v1/namespaces/prod/deployments"
        );
        assert_eq!(deployments.word(), "deployments.apps");
        let namespaces = resource("", "Namespace", "namespaces", false);
        assert_eq!(namespaces.path("prod"), "/api/v1/namespaces");
        assert_eq!(namespaces.word(), "namespaces");
    }

    #[test]
    fn list_items_get_their_type_first() {
        let pods = resource("", "Pod", "pods", true);
        let typed = pods.typed(serde_json::json!({"metadata": {"name": "a"}, "kind": "Pod"}));
        let keys: Vec<&String> = typed
            .as_object()
            .map(|m| m.keys().collect())
            .unwrap_or_default();
        assert_eq!(keys, ["apiVersion", "kind", "metadata"]);
    }
}

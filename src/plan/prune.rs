//! Prune: which inventory members no longer rendered may be deleted.
//!
//! Only members of the application's own inventory are candidates, and a candidate is kept
//! (with the reason shown in the plan) when it is annotated `reconcile.dev/prune: disabled`,
//! owned by another application or by nobody, or is a Namespace still holding objects that
//! are not being pruned with it.

use std::collections::HashSet;

use serde_json::Value;

use crate::cluster::{self, Cluster};
use crate::diff::normalize::OWNER_ANNOTATION;
use crate::model::{Gvk, ResId};

/// Annotation that protects an object from prune when set to `disabled`.
pub const PRUNE_ANNOTATION: &str = "reconcile.dev/prune";

/// Namespaced kinds looked for in a Namespace before it is pruned.
const NAMESPACED_KINDS: &[(&str, &str)] = &[
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("v1", "Service"),
    ("v1", "ServiceAccount"),
    ("v1", "PersistentVolumeClaim"),
    ("v1", "Pod"),
    ("apps/v1", "Deployment"),
    ("apps/v1", "StatefulSet"),
    ("apps/v1", "DaemonSet"),
    ("apps/v1", "ReplicaSet"),
    ("batch/v1", "Job"),
    ("batch/v1", "CronJob"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    ("networking.k8s.io/v1", "Ingress"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("policy/v1", "PodDisruptionBudget"),
];

/// The identity used to match objects across versions: group, kind, namespace, name.
pub fn key(id: &ResId) -> (String, String, String, String) {
    (
        id.gvk.group.clone(),
        id.gvk.kind.clone(),
        id.namespace.clone(),
        id.name.clone(),
    )
}

/// Objects every Kubernetes namespace gets on its own; they never hold a Namespace back.
fn created_by_the_cluster(id: &ResId, object: &Value) -> bool {
    let has_owner = object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|refs| !refs.is_empty());
    has_owner
        || (id.gvk.kind == "ServiceAccount" && id.name == "default")
        || (id.gvk.kind == "ConfigMap" && id.name == "kube-root-ca.crt")
        || super::inventory::is_inventory(id)
}

/// Why a candidate must not be pruned, or `None` when it may be.
pub fn keep_reason(
    cluster: &dyn Cluster,
    app: &str,
    live: &Value,
    pruned: &HashSet<(String, String, String, String)>,
) -> Result<Option<String>, cluster::Error> {
    let id = ResId::of(live);
    let annotations = live.pointer("/metadata/annotations");
    let annotation = |key: &str| annotations.and_then(|a| a.get(key)).and_then(Value::as_str);
    if annotation(PRUNE_ANNOTATION) == Some("disabled") {
        return Ok(Some(format!("annotated {PRUNE_ANNOTATION}: disabled")));
    }
    match annotation(OWNER_ANNOTATION) {
        Some(owner) if owner == app => {}
        Some(owner) => return Ok(Some(format!("owned by application {owner:?}"))),
        None => {
            return Ok(Some(
                "not applied by reconcile (no owner annotation)".to_string(),
            ));
        }
    }
    if id.gvk.kind == "Namespace" && id.gvk.group.is_empty() {
        let mut held = Vec::new();
        for (api_version, kind) in NAMESPACED_KINDS {
            // A kind the cluster does not serve cannot hold anything.
            let Ok(objects) = cluster.list(
                &Gvk::from_api_version(api_version, kind),
                Some(&id.name),
                None,
            ) else {
                continue;
            };
            for object in objects {
                let member = ResId::of(&object);
                if !pruned.contains(&key(&member)) && !created_by_the_cluster(&member, &object) {
                    held.push(format!("{} {}", member.gvk.kind, member.name));
                }
            }
        }
        if !held.is_empty() {
            let shown: Vec<&str> = held.iter().take(5).map(String::as_str).collect();
            let more = if held.len() > 5 {
                format!(" and {} more", held.len() - 5)
            } else {
                String::new()
            };
            return Ok(Some(format!(
                "namespace still holds objects not pruned with it: {}{more}",
                shown.join(", ")
            )));
        }
    }
    Ok(None)
}

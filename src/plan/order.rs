//! Apply order: sync waves first, then kinds in dependency order, then the render order.
//!
//! Kinds follow the order kustomize (legacy sort) and Helm/Flux use: what others refer to
//! goes first (Namespaces, CRDs, accounts and RBAC, configuration, storage, Services), then
//! workloads, then what refers to workloads; admission webhooks last so they cannot block
//! the objects they would admit. Deletions run in the exact reverse.

use serde_json::Value;

use crate::model::ResId;

/// Annotation ordering groups of objects: lower waves are applied (and healthy, with
/// `--wait`) before higher ones. An integer, default 0.
pub const SYNC_WAVE_ANNOTATION: &str = "reconcile.dev/sync-wave";

/// Kinds in apply order; kinds not listed (custom resources) come after them.
const KIND_ORDER: &[&str] = &[
    "Namespace",
    "ResourceQuota",
    "LimitRange",
    "StorageClass",
    "CustomResourceDefinition",
    "PriorityClass",
    "PodSecurityPolicy",
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "ConfigMap",
    "Secret",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "Service",
    "Endpoints",
    "DaemonSet",
    "Pod",
    "ReplicaSet",
    "ReplicationController",
    "Deployment",
    "StatefulSet",
    "Job",
    "CronJob",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "IngressClass",
    "Ingress",
    "NetworkPolicy",
    "APIService",
];

/// Kinds applied after everything else.
const KIND_LAST: &[&str] = &[
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
];

/// The position of a kind in apply order.
pub fn kind_rank(kind: &str) -> usize {
    if let Some(last) = KIND_LAST.iter().position(|k| *k == kind) {
        return KIND_ORDER.len() + 1 + last;
    }
    KIND_ORDER
        .iter()
        .position(|k| *k == kind)
        .unwrap_or(KIND_ORDER.len())
}

/// A sync-wave annotation that is not an integer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{}: annotation {SYNC_WAVE_ANNOTATION}: {value:?} is not an integer",
    crate::diff::display_id(id)
)]
pub struct InvalidWave {
    /// The object.
    pub id: ResId,
    /// The annotation's value.
    pub value: String,
}

/// The object's sync wave (0 when not annotated).
pub fn sync_wave(object: &Value) -> Result<i64, InvalidWave> {
    let Some(value) = object
        .get("metadata")
        .and_then(|m| m.get("annotations"))
        .and_then(|a| a.get(SYNC_WAVE_ANNOTATION))
    else {
        return Ok(0);
    };
    let text = match value {
        Value::String(text) => text.trim().to_string(),
        other => other.to_string(),
    };
    text.parse::<i64>().map_err(|_| InvalidWave {
        id: ResId::of(object),
        value: text,
    })
}

/// Sort key of an object to apply: (wave, kind rank). Ties keep their given order.
pub fn apply_key(wave: i64, kind: &str) -> (i64, usize) {
    (wave, kind_rank(kind))
}

/// Indices of `items` in apply order (stable), given each item's wave and kind.
pub fn apply_order(items: &[(i64, &str)]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by_key(|&i| apply_key(items[i].0, items[i].1));
    order
}

/// Indices of `items` in delete order: the reverse of apply order.
pub fn delete_order(items: &[(i64, &str)]) -> Vec<usize> {
    let mut order = apply_order(items);
    order.reverse();
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kinds_go_in_dependency_order_and_waves_first() {
        let items = [
            (0, "Deployment"),
            (0, "Service"),
            (0, "ConfigMap"),
            (0, "Namespace"),
            (0, "MyCustomThing"),
            (-1, "Job"),
            (0, "ValidatingWebhookConfiguration"),
            (0, "CustomResourceDefinition"),
            (0, "ServiceAccount"),
            (0, "PersistentVolumeClaim"),
            (0, "Secret"),
        ];
        let kinds: Vec<&str> = apply_order(&items)
            .into_iter()
            .map(|i| items[i].1)
            .collect();
        assert_eq!(
            kinds,
            [
                "Job",
                "Namespace",
                "CustomResourceDefinition",
                "ServiceAccount",
                "ConfigMap",
                "Secret",
                "PersistentVolumeClaim",
                "Service",
                "Deployment",
                "MyCustomThing",
                "ValidatingWebhookConfiguration"
            ]
        );
        let deletes: Vec<&str> = delete_order(&items)
            .into_iter()
            .map(|i| items[i].1)
            .collect();
        assert_eq!(deletes.first(), Some(&"ValidatingWebhookConfiguration"));
        assert_eq!(deletes.last(), Some(&"Job"));
    }

    #[test]
    fn waves_are_integers() {
        let wave =
            |v: Value| sync_wave(&json!({"metadata": {"annotations": {SYNC_WAVE_ANNOTATION: v}}}));
        assert_eq!(wave(json!("-2")), Ok(-2));
        assert_eq!(wave(json!(3)), Ok(3));
        assert!(wave(json!("soon")).is_err());
        assert_eq!(sync_wave(&json!({"metadata": {}})), Ok(0));
    }
}

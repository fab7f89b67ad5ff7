//! Output order: kustomize's `legacy` kind order (the default) or `fifo` (as accumulated),
//! chosen by `sortOptions`.
//!
//! Legacy order ranks kinds by two lists (first and last), then by `group_version_kind`
//! text, then by `gvk|namespace|name` text; a core `Namespace` sorts before one of another
//! group. Invariant: pure; no IO.

use std::cmp::Ordering;
use std::collections::HashMap;

use crate::model::{Gvk, ResId, Resource};
use crate::render::types::{LegacySortOptions, SortOptions};

/// kustomize's default "first" kinds for the legacy order.
pub const DEFAULT_ORDER_FIRST: &[&str] = &[
    "Namespace",
    "ResourceQuota",
    "StorageClass",
    "CustomResourceDefinition",
    "ServiceAccount",
    "PodSecurityPolicy",
    "Role",
    "ClusterRole",
    "RoleBinding",
    "ClusterRoleBinding",
    "ConfigMap",
    "Secret",
    "Endpoints",
    "Service",
    "LimitRange",
    "PriorityClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "Deployment",
    "StatefulSet",
    "CronJob",
    "PodDisruptionBudget",
];

/// kustomize's default "last" kinds for the legacy order.
pub const DEFAULT_ORDER_LAST: &[&str] = &[
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
];

/// `sortOptions` is inconsistent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    /// `order` is neither `legacy` nor `fifo`.
    #[error("the field 'sortOptions.order' must be one of [fifo, legacy]")]
    UnknownOrder,
    /// `legacySortOptions` given with `order: fifo`.
    #[error(
        "the field 'sortOptions.legacySortOptions' is set but the selected sort order is 'fifo', not 'legacy'"
    )]
    LegacyOptionsWithFifo,
}

/// Orders `resources` as `sortOptions` asks (legacy when absent).
pub fn sort(resources: &mut [Resource], options: Option<&SortOptions>) -> Result<(), OrderError> {
    let Some(options) = options else {
        sort_legacy(resources, None);
        return Ok(());
    };
    match options.order.as_str() {
        "fifo" if options.legacy_sort_options.is_some() => Err(OrderError::LegacyOptionsWithFifo),
        "fifo" => Ok(()),
        "legacy" => {
            sort_legacy(resources, options.legacy_sort_options.as_ref());
            Ok(())
        }
        _ => Err(OrderError::UnknownOrder),
    }
}

/// Sorts in kustomize's legacy order; `options` replaces the default first/last lists.
pub fn sort_legacy(resources: &mut [Resource], options: Option<&LegacySortOptions>) {
    let mut ranks: HashMap<String, i64> = HashMap::new();
    let (first, last): (Vec<String>, Vec<String>) = match options {
        Some(o) => (o.order_first.clone(), o.order_last.clone()),
        None => (
            DEFAULT_ORDER_FIRST.iter().map(|s| s.to_string()).collect(),
            DEFAULT_ORDER_LAST.iter().map(|s| s.to_string()).collect(),
        ),
    };
    // Later duplicates win, as when Go fills its map in order.
    let first_len = first.len() as i64;
    for (i, kind) in first.iter().enumerate() {
        ranks.insert(kind.clone(), i as i64 - first_len);
    }
    for (i, kind) in last.iter().enumerate() {
        ranks.insert(kind.clone(), 1 + i as i64);
    }
    // Objects are moved out and back rather than cloned: builds can be large.
    let mut keyed: Vec<(ResId, Resource)> = resources
        .iter_mut()
        .map(|r| (r.id(), std::mem::take(r)))
        .collect();
    keyed.sort_by(|(a, _), (b, _)| legacy_compare(a, b, &ranks));
    for (slot, (_, resource)) in resources.iter_mut().zip(keyed) {
        *slot = resource;
    }
}

fn legacy_compare(a: &ResId, b: &ResId, ranks: &HashMap<String, i64>) -> Ordering {
    if a.gvk != b.gvk {
        return gvk_compare(&a.gvk, &b.gvk, ranks);
    }
    id_sort_string(a).cmp(&id_sort_string(b))
}

fn gvk_compare(a: &Gvk, b: &Gvk, ranks: &HashMap<String, i64>) -> Ordering {
    let rank_a = ranks.get(&a.kind).copied().unwrap_or(0);
    let rank_b = ranks.get(&b.kind).copied().unwrap_or(0);
    if rank_a != rank_b {
        return rank_a.cmp(&rank_b);
    }
    if a.kind == "Namespace" && b.kind == "Namespace" && (a.group.is_empty() || b.group.is_empty())
    {
        return a.to_string().cmp(&b.to_string()).reverse();
    }
    a.to_string().cmp(&b.to_string())
}

fn id_sort_string(id: &ResId) -> String {
    let namespace = if id.namespace.is_empty() {
        "~X"
    } else {
        &id.namespace
    };
    let name = if id.name.is_empty() { "~N" } else { &id.name };
    format!("{}|{}|{}", id.gvk, namespace, name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn resource(api_version: &str, kind: &str, name: &str) -> Resource {
        let Value::Object(map) =
            json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name}})
        else {
            unreachable!("literal is an object")
        };
        Resource::new(map)
    }

    fn names(resources: &[Resource]) -> Vec<String> {
        resources
            .iter()
            .map(|r| format!("{}/{}", r.gvk().kind, r.name()))
            .collect()
    }

    #[test]
    fn legacy_puts_namespaces_first_and_webhooks_last() {
        let mut list = vec![
            resource(
                "admissionregistration.k8s.io/v1",
                "ValidatingWebhookConfiguration",
                "w",
            ),
            resource("apps/v1", "Deployment", "b"),
            resource("example.com/v1", "Widget", "x"),
            resource("apps/v1", "Deployment", "a"),
            resource("v1", "Service", "s"),
            resource("v1", "Namespace", "ns"),
        ];
        sort_legacy(&mut list, None);
        assert_eq!(
            names(&list),
            [
                "Namespace/ns",
                "Service/s",
                "Deployment/a",
                "Deployment/b",
                "Widget/x",
                "ValidatingWebhookConfiguration/w"
            ]
        );
    }

    #[test]
    fn fifo_keeps_order_and_rejects_legacy_options() {
        let mut list = vec![
            resource("v1", "Service", "s"),
            resource("v1", "Namespace", "n"),
        ];
        let fifo = SortOptions {
            order: "fifo".into(),
            legacy_sort_options: None,
        };
        assert!(sort(&mut list, Some(&fifo)).is_ok());
        assert_eq!(names(&list), ["Service/s", "Namespace/n"]);
        let bad = SortOptions {
            order: "fifo".into(),
            legacy_sort_options: Some(LegacySortOptions::default()),
        };
        assert_eq!(
            sort(&mut list, Some(&bad)),
            Err(OrderError::LegacyOptionsWithFifo)
        );
    }
}

//! ResourceQuota usage and LimitRange bounds, as Kubernetes' quota controller and
//! `LimitRanger` admission plugin.
//!
//! [`sync`] keeps each quota's `status.hard` / `status.used` current (what `kubectl get quota`
//! prints). [`check_limit_ranges`] is the validating half of LimitRanger, run at admission
//! after the defaults are filled: per-Container and per-Pod `min`, `max` and
//! `maxLimitRequestRatio`, and per-PersistentVolumeClaim storage `min`/`max`, refused with
//! the API server's messages. (Quota enforcement itself is in admission, which asks
//! [`charge`] what a new object costs.)
//!
//! Claims are charged like Kubernetes' `persistent_volume_claims.go` evaluator: one
//! `persistentvolumeclaims` (and `count/persistentvolumeclaims`) each, their
//! `spec.resources.requests.storage` to `requests.storage`, and both again to
//! `<class>.storageclass.storage.k8s.io/persistentvolumeclaims` and
//! `<class>.storageclass.storage.k8s.io/requests.storage` for the class they name (the
//! `volume.beta.kubernetes.io/storage-class` annotation first, then `spec.storageClassName`;
//! a claim without a class is charged to no class). Claims being deleted still count.

use serde_json::{Map, Value, json};

use super::clock::Millis;
use super::controllers::Changes;
use super::controllers::replicaset::is_active;
use super::controllers::volume::requested_class;
use super::doc;
use super::kinds::{self, KindInfo};
use super::scheduler::pod_requests;
use super::store::State;

fn is_cpu(resource: &str) -> bool {
    resource == "cpu" || resource.ends_with(".cpu")
}

/// The infix of per-StorageClass quota resources: `gold` + this + `requests.storage`.
pub const STORAGE_CLASS_INFIX: &str = ".storageclass.storage.k8s.io/";

fn is_bytes(resource: &str) -> bool {
    resource.contains("memory") || resource.ends_with("storage")
}

fn quantity(resource: &str, v: &Value) -> Option<i64> {
    if is_cpu(resource) {
        doc::cpu_millis(v)
    } else {
        doc::bytes(v)
    }
}

/// A quota amount as the API server prints it (`500m`, `5Gi`, `3`).
pub fn show(resource: &str, v: i64) -> String {
    if is_cpu(resource) {
        doc::format_cpu(v)
    } else if is_bytes(resource) {
        doc::format_bytes(v)
    } else {
        v.to_string()
    }
}

/// A quota's `hard` limit of `resource` in the resource's unit (`None`: unparseable).
pub fn limit(resource: &str, v: &Value) -> Option<i64> {
    quantity(resource, v)
}

fn claim_storage(claim: &Value) -> Option<i64> {
    doc::at(claim, &["spec", "resources", "requests", "storage"]).and_then(doc::bytes)
}

fn node_ports(service: &Value) -> i64 {
    doc::at(service, &["spec", "ports"])
        .and_then(Value::as_array)
        .map_or(0, |p| {
            p.iter().filter(|p| p.get("nodePort").is_some()).count()
        }) as i64
}

/// What one object of `info`'s kind costs of a quota's `resource`, as the API server's quota
/// evaluators measure it; `None` when the resource does not track this kind (or, for a
/// per-class resource, the object's class).
pub fn charge(info: &KindInfo, obj: &Value, resource: &str) -> Option<i64> {
    if let Some(word) = resource.strip_prefix("count/") {
        let (plural, group) = word.split_once('.').unwrap_or((word, ""));
        return (plural == info.plural && group == info.group).then_some(1);
    }
    match (info.kind, resource) {
        ("Pod", "pods") => Some(i64::from(is_active(obj))),
        ("Pod", "requests.cpu" | "cpu") => Some(pod_requests(obj, false).0),
        ("Pod", "requests.memory" | "memory") => Some(pod_requests(obj, false).1),
        ("Pod", "limits.cpu") => Some(container_sum(obj, "limits", "cpu")),
        ("Pod", "limits.memory") => Some(container_sum(obj, "limits", "memory")),
        ("PersistentVolumeClaim", "persistentvolumeclaims") => Some(1),
        ("PersistentVolumeClaim", "requests.storage") => claim_storage(obj),
        ("PersistentVolumeClaim", r) => {
            let (class, per_class) = r.split_once(STORAGE_CLASS_INFIX)?;
            if class.is_empty() || requested_class(obj) != Some(class) {
                return None;
            }
            match per_class {
                "persistentvolumeclaims" => Some(1),
                "requests.storage" => claim_storage(obj),
                _ => None,
            }
        }
        ("Service", "services") => Some(1),
        ("Service", "services.loadbalancers") => Some(i64::from(
            doc::str_at(obj, &["spec", "type"]) == "LoadBalancer",
        )),
        ("Service", "services.nodeports") => Some(node_ports(obj)),
        ("ConfigMap", "configmaps")
        | ("Secret", "secrets")
        | ("ResourceQuota", "resourcequotas") => Some(1),
        _ => None,
    }
}

fn container_sum(pod: &Value, field: &str, resource: &str) -> i64 {
    doc::at(pod, &["spec", "containers"])
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| doc::at(c, &["resources", field, resource]))
        .filter_map(|q| quantity(resource, q))
        .sum()
}

/// How much of a quota's `resource` the namespace uses now (`None`: not tracked).
pub fn usage(state: &State, ns: &str, resource: &str) -> Option<i64> {
    let pods = || {
        state
            .in_namespace("Pod", ns)
            .map(|s| &s.doc)
            .filter(|p| is_active(p))
    };
    let claims = || {
        state
            .in_namespace("PersistentVolumeClaim", ns)
            .map(|s| &s.doc)
    };
    let count = |kind: &str| state.in_namespace(kind, ns).count() as i64;
    Some(match resource {
        "pods" => pods().count() as i64,
        "requests.cpu" | "cpu" => pods().map(|p| pod_requests(p, false).0).sum(),
        "requests.memory" | "memory" => pods().map(|p| pod_requests(p, false).1).sum(),
        "limits.cpu" => pods().map(|p| container_sum(p, "limits", "cpu")).sum(),
        "limits.memory" => pods().map(|p| container_sum(p, "limits", "memory")).sum(),
        "requests.storage" => claims().filter_map(claim_storage).sum(),
        "persistentvolumeclaims" => count("PersistentVolumeClaim"),
        per_class if per_class.contains(STORAGE_CLASS_INFIX) => {
            let info = kinds::by_kind("PersistentVolumeClaim")?;
            // A resource this evaluator does not know is not tracked at all.
            let (_, tail) = per_class.split_once(STORAGE_CLASS_INFIX)?;
            if tail != "persistentvolumeclaims" && tail != "requests.storage" {
                return None;
            }
            claims().filter_map(|c| charge(info, c, per_class)).sum()
        }
        "services" => count("Service"),
        "configmaps" => count("ConfigMap"),
        "secrets" => count("Secret"),
        "resourcequotas" => count("ResourceQuota"),
        "services.loadbalancers" => state
            .in_namespace("Service", ns)
            .filter(|s| doc::str_at(&s.doc, &["spec", "type"]) == "LoadBalancer")
            .count() as i64,
        "services.nodeports" => state
            .in_namespace("Service", ns)
            .map(|s| node_ports(&s.doc))
            .sum(),
        other => {
            let word = other.strip_prefix("count/")?;
            let (plural, group) = word.split_once('.').unwrap_or((word, ""));
            let info: &KindInfo = kinds::KINDS
                .iter()
                .find(|k| k.plural == plural && k.group == group)?;
            count(info.kind)
        }
    })
}

/// One pass: refreshes every ResourceQuota's status.
pub fn sync(state: &State, _now: Millis, out: &mut Changes) {
    for stored in state.kind("ResourceQuota").values() {
        let q = &stored.doc;
        let ns = doc::namespace(q);
        let Some(hard) = doc::at(q, &["spec", "hard"]).and_then(Value::as_object) else {
            continue;
        };
        let mut used = Map::new();
        for resource in hard.keys() {
            if let Some(u) = usage(state, ns, resource) {
                used.insert(resource.clone(), json!(show(resource, u)));
            }
        }
        let status = json!({"hard": hard, "used": used});
        if q.get("status") != Some(&status) {
            let mut next = q.clone();
            doc::set(&mut next, &["status"], status);
            out.update("ResourceQuota", next);
        }
    }
}

/// LimitRanger's validation of a new Pod or PersistentVolumeClaim against the namespace's
/// LimitRanges. The error is the API server's message.
pub fn check_limit_ranges(state: &State, info: &KindInfo, obj: &Value) -> Result<(), String> {
    if info.kind != "Pod" && info.kind != "PersistentVolumeClaim" {
        return Ok(());
    }
    let ns = doc::namespace(obj);
    let mut problems: Vec<String> = Vec::new();
    for lr in state.in_namespace("LimitRange", ns).map(|s| &s.doc) {
        for item in doc::at(lr, &["spec", "limits"])
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            match (info.kind, doc::str_at(item, &["type"])) {
                ("Pod", "Container") => {
                    for c in doc::at(obj, &["spec", "containers"])
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        let get = |field: &str, res: &str| {
                            doc::at(c, &["resources", field, res]).and_then(|q| quantity(res, q))
                        };
                        bounds(item, "Container", &get, &mut problems);
                    }
                }
                ("Pod", "Pod") => {
                    let get = |field: &str, res: &str| {
                        let all_set = doc::at(obj, &["spec", "containers"])
                            .and_then(Value::as_array)
                            .is_some_and(|cs| {
                                cs.iter()
                                    .all(|c| doc::at(c, &["resources", field, res]).is_some())
                            });
                        all_set.then(|| container_sum(obj, field, res))
                    };
                    bounds(item, "Pod", &get, &mut problems);
                }
                ("PersistentVolumeClaim", "PersistentVolumeClaim") => {
                    let get = |field: &str, res: &str| {
                        doc::at(obj, &["spec", "resources", field, res]).and_then(doc::bytes)
                    };
                    bounds(item, "PersistentVolumeClaim", &get, &mut problems);
                }
                _ => {}
            }
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    let name = match doc::name(obj) {
        "" => doc::str_at(obj, &["metadata", "generateName"]),
        n => n,
    };
    let body = if problems.len() == 1 {
        problems.remove(0)
    } else {
        format!("[{}]", problems.join(", "))
    };
    Err(format!("{} \"{name}\" is forbidden: {body}", info.plural))
}

fn bounds(
    item: &Value,
    scope: &str,
    get: &dyn Fn(&str, &str) -> Option<i64>,
    problems: &mut Vec<String>,
) {
    let entries = |field: &str| -> Vec<(String, Value)> {
        item.get(field)
            .and_then(Value::as_object)
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    };
    for (res, q) in entries("min") {
        let Some(min) = quantity(&res, &q) else {
            continue;
        };
        match get("requests", &res) {
            None => problems.push(format!(
                "minimum {res} usage per {scope} is {}.  No request is specified",
                show_plain(&q)
            )),
            Some(r) if r < min => problems.push(format!(
                "minimum {res} usage per {scope} is {}, but request is {}",
                show_plain(&q),
                show(&res, r)
            )),
            _ => {}
        }
    }
    for (res, q) in entries("max") {
        let Some(max) = quantity(&res, &q) else {
            continue;
        };
        // Claims are bounded by what they request; pods by their limits.
        let field = if scope == "PersistentVolumeClaim" {
            "requests"
        } else {
            "limits"
        };
        match get(field, &res) {
            None if scope == "PersistentVolumeClaim" => {}
            None => problems.push(format!(
                "maximum {res} usage per {scope} is {}.  No limit is specified",
                show_plain(&q)
            )),
            Some(l) if l > max => problems.push(format!(
                "maximum {res} usage per {scope} is {}, but {} is {}",
                show_plain(&q),
                if field == "limits" {
                    "limit"
                } else {
                    "request"
                },
                show(&res, l)
            )),
            _ => {}
        }
    }
    for (res, q) in entries("maxLimitRequestRatio") {
        let Some(ratio) = doc::cpu_millis(&q) else {
            continue;
        };
        let (Some(limit), Some(request)) = (get("limits", &res), get("requests", &res)) else {
            continue;
        };
        if request > 0 && limit * 1000 > ratio * request {
            problems.push(format!(
                "{res} max limit to request ratio per {scope} is {}, but provided ratio is {:.6}",
                show_plain(&q),
                limit as f64 / request as f64
            ));
        }
    }
}

fn show_plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(limits: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "lr", "namespace": "default"}, "spec": {"limits": limits}})
    }

    fn state_with(objs: &[Value]) -> State {
        let mut s = State::empty(1);
        for o in objs {
            if let Some(info) = kinds::by_kind(doc::str_at(o, &["kind"])) {
                s.create(info, o.clone(), None);
            }
        }
        s
    }

    fn pod(requests: Value, limits: Value) -> Value {
        json!({"kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
            "spec": {"containers": [{"name": "c", "resources": {"requests": requests, "limits": limits}}]}})
    }

    #[test]
    fn container_min_max_and_ratio() {
        let s = state_with(&[range(json!([{"type": "Container",
            "min": {"cpu": "100m"}, "max": {"cpu": "1", "memory": "1Gi"}, "maxLimitRequestRatio": {"cpu": "4"}}]))]);
        let info = kinds::by_kind("Pod").unwrap_or_else(|| panic!("Pod kind"));
        // (requests, limits, expected error)
        let table = [
            (
                json!({"cpu": "200m"}),
                json!({"cpu": "500m", "memory": "512Mi"}),
                None,
            ),
            (
                json!({"cpu": "50m"}),
                json!({"cpu": "500m", "memory": "512Mi"}),
                Some(
                    "pods \"p\" is forbidden: [minimum cpu usage per Container is 100m, but request is 50m, cpu max limit to request ratio per Container is 4, but provided ratio is 10.000000]",
                ),
            ),
            (
                json!({"cpu": "500m"}),
                json!({"cpu": "2", "memory": "512Mi"}),
                Some(
                    "pods \"p\" is forbidden: maximum cpu usage per Container is 1, but limit is 2",
                ),
            ),
            (
                json!({"cpu": "500m"}),
                json!({"cpu": "1"}),
                Some(
                    "pods \"p\" is forbidden: maximum memory usage per Container is 1Gi.  No limit is specified",
                ),
            ),
        ];
        for (req, lim, want) in table {
            let got = check_limit_ranges(&s, info, &pod(req.clone(), lim.clone())).err();
            assert_eq!(got.as_deref(), want, "{req} {lim}");
        }
    }

    #[test]
    fn claims_are_bounded_by_storage() {
        let s = state_with(&[range(
            json!([{"type": "PersistentVolumeClaim", "min": {"storage": "1Gi"}, "max": {"storage": "10Gi"}}]),
        )]);
        let info = kinds::by_kind("PersistentVolumeClaim").unwrap_or_else(|| panic!("kind"));
        let claim = |size: &str| json!({"metadata": {"name": "c", "namespace": "default"}, "spec": {"resources": {"requests": {"storage": size}}}});
        assert!(check_limit_ranges(&s, info, &claim("5Gi")).is_ok());
        assert_eq!(
            check_limit_ranges(&s, info, &claim("500Mi"))
                .err()
                .as_deref(),
            Some(
                "persistentvolumeclaims \"c\" is forbidden: minimum storage usage per PersistentVolumeClaim is 1Gi, but request is 500Mi"
            )
        );
        assert_eq!(
            check_limit_ranges(&s, info, &claim("20Gi"))
                .err()
                .as_deref(),
            Some(
                "persistentvolumeclaims \"c\" is forbidden: maximum storage usage per PersistentVolumeClaim is 10Gi, but request is 20Gi"
            )
        );
    }

    #[test]
    fn claims_are_charged_in_total_and_to_their_class() {
        let info = kinds::by_kind("PersistentVolumeClaim").unwrap_or_else(|| panic!("kind"));
        let claim = |name: &str, class: Value| {
            json!({"kind": "PersistentVolumeClaim", "metadata": {"name": name, "namespace": "default"},
                "spec": {"storageClassName": class, "resources": {"requests": {"storage": "2Gi"}}}})
        };
        let gold = claim("a", json!("gold"));
        let gold_storage = "gold.storageclass.storage.k8s.io/requests.storage";
        let gold_claims = "gold.storageclass.storage.k8s.io/persistentvolumeclaims";
        // (resource, charge of a gold claim, charge of a class-less claim)
        let table = [
            ("requests.storage", Some(2 << 30), Some(2 << 30)),
            ("persistentvolumeclaims", Some(1), Some(1)),
            ("count/persistentvolumeclaims", Some(1), Some(1)),
            (gold_storage, Some(2 << 30), None),
            (gold_claims, Some(1), None),
            (
                "silver.storageclass.storage.k8s.io/requests.storage",
                None,
                None,
            ),
            ("requests.cpu", None, None),
        ];
        for (res, charged_gold, charged_none) in table {
            assert_eq!(charge(info, &gold, res), charged_gold, "{res}");
            assert_eq!(
                charge(info, &claim("b", Value::Null), res),
                charged_none,
                "{res}"
            );
        }
        let s = state_with(&[gold, claim("b", json!("silver")), claim("c", json!("gold"))]);
        assert_eq!(usage(&s, "default", gold_storage), Some(4 << 30));
        assert_eq!(usage(&s, "default", gold_claims), Some(2));
        assert_eq!(usage(&s, "default", "requests.storage"), Some(6 << 30));
        assert_eq!(
            usage(&s, "default", "gold.storageclass.storage.k8s.io/nonsense"),
            None
        );
        assert_eq!(show(gold_claims, 2), "2");
        assert_eq!(show(gold_storage, 4 << 30), "4Gi");
    }

    #[test]
    fn usage_counts_active_pods_and_objects() {
        let s = state_with(&[
            json!({"kind": "ConfigMap", "metadata": {"name": "a", "namespace": "default"}}),
            json!({"kind": "Pod", "metadata": {"name": "p", "namespace": "default"}, "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}, "limits": {"cpu": "500m"}}}]}, "status": {"phase": "Running"}}),
            json!({"kind": "Pod", "metadata": {"name": "done", "namespace": "default"}, "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "1"}}}]}, "status": {"phase": "Succeeded"}}),
        ]);
        assert_eq!(usage(&s, "default", "pods"), Some(1));
        assert_eq!(usage(&s, "default", "requests.cpu"), Some(250));
        assert_eq!(usage(&s, "default", "limits.cpu"), Some(500));
        assert_eq!(usage(&s, "default", "requests.memory"), Some(64 << 20));
        assert_eq!(usage(&s, "default", "count/configmaps"), Some(1));
        assert_eq!(usage(&s, "default", "count/deployments.apps"), Some(0));
        assert_eq!(usage(&s, "default", "nonsense"), None);
    }
}

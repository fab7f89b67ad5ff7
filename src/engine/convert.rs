//! Conversion between the versions a kind is served in.
//!
//! As the API server does, an object is stored in one version (the kind's preferred one,
//! [`KindInfo::version`]) whatever version it was written in, and converted back to the
//! version a reader asks for. Most kinds' versions differ only in `apiVersion`
//! (`flowcontrol.apiserver.k8s.io/v1beta3` ↔ `v1`, CRDs with `conversion: None`); the
//! HorizontalPodAutoscaler's `autoscaling/v1` is converted field by field as upstream
//! `pkg/apis/autoscaling/v1/conversion.go` does: the CPU target is
//! `targetCPUUtilizationPercentage`, and what v1 cannot say (other metrics, behavior,
//! current metrics, conditions) travels in `autoscaling.alpha.kubernetes.io/…` annotations,
//! so that a v1 → v2 → v1 round trip loses nothing.
//!
//! Invariant: pure functions of the object; converting to the version an object is already
//! in returns it unchanged.

use serde_json::{Map, Value, json};

use super::doc;
use super::kinds::KindInfo;

/// Non-CPU metric specs of a v1 HPA (upstream `autoscaling.MetricSpecsAnnotation`).
pub const METRIC_SPECS_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/metrics";
/// Current metrics of a v1 HPA (`MetricStatusesAnnotation`).
pub const METRIC_STATUSES_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/current-metrics";
/// Conditions of a v1 HPA (`HorizontalPodAutoscalerConditionsAnnotation`).
pub const CONDITIONS_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/conditions";
/// Scaling behavior of a v1 HPA (`BehaviorSpecsAnnotation`).
pub const BEHAVIOR_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/behavior";

const ROUND_TRIP_ANNOTATIONS: [&str; 4] = [
    METRIC_SPECS_ANNOTATION,
    METRIC_STATUSES_ANNOTATION,
    CONDITIONS_ANNOTATION,
    BEHAVIOR_ANNOTATION,
];

/// The CPU target v1 assumes when it names none (upstream `DefaultCPUUtilization`).
const DEFAULT_CPU_UTILIZATION: i64 = 80;

/// The version part of an `apiVersion` (`autoscaling/v1` → `v1`, `v1` → `v1`).
pub fn version_of(api_version: &str) -> &str {
    api_version.rsplit('/').next().unwrap_or_default()
}

/// Converts `object`, written in any version `info` serves, to the stored version.
pub fn to_storage(info: &KindInfo, object: &mut Value) {
    let sent = version_of(doc::str_at(object, &["apiVersion"])).to_string();
    if info.kind == "HorizontalPodAutoscaler" && info.group == "autoscaling" && sent == "v1" {
        hpa_v1_to_v2(object);
    }
    object["apiVersion"] = json!(info.api_version());
}

/// The stored `object` as a reader of `version` sees it (unchanged when `version` is the
/// stored one, empty, or not served: the caller checked what it serves).
pub fn to_version(info: &KindInfo, object: &Value, version: &str) -> Value {
    let mut view = object.clone();
    convert_in_place(info, &mut view, version);
    view
}

/// [`to_version`] on an owned object.
pub fn convert_in_place(info: &KindInfo, object: &mut Value, version: &str) {
    if version.is_empty() || version == info.version || !info.versions.contains(&version) {
        return;
    }
    if info.kind == "HorizontalPodAutoscaler" && info.group == "autoscaling" && version == "v1" {
        hpa_v2_to_v1(object);
    }
    let api_version = if info.group.is_empty() {
        version.to_string()
    } else {
        format!("{}/{version}", info.group)
    };
    if let Some(map) = object.as_object_mut() {
        map.insert("apiVersion".into(), json!(api_version));
    }
}

fn annotations(object: &mut Value) -> &mut Map<String, Value> {
    doc::map_mut(object, &["metadata", "annotations"])
}

fn drop_empty_annotations(object: &mut Value) {
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut)
        && meta
            .get("annotations")
            .and_then(Value::as_object)
            .is_some_and(Map::is_empty)
    {
        meta.remove("annotations");
    }
}

/// Reads a JSON list kept in an annotation (None when absent or not a list).
fn annotation_list(object: &Value, key: &str) -> Option<Vec<Value>> {
    let text = doc::at(object, &["metadata", "annotations", key])?.as_str()?;
    match serde_json::from_str(text) {
        Ok(Value::Array(items)) => Some(items),
        _ => None,
    }
}

fn is_cpu_utilization(metric: &Value) -> bool {
    doc::str_at(metric, &["type"]) == "Resource"
        && doc::str_at(metric, &["resource", "name"]) == "cpu"
        && doc::str_at(metric, &["resource", "target", "type"]) == "Utilization"
}

/// `autoscaling/v1` → `autoscaling/v2`.
fn hpa_v1_to_v2(object: &mut Value) {
    let other = annotation_list(object, METRIC_SPECS_ANNOTATION);
    let current = annotation_list(object, METRIC_STATUSES_ANNOTATION);
    let conditions = annotation_list(object, CONDITIONS_ANNOTATION);
    let behavior = doc::at(object, &["metadata", "annotations", BEHAVIOR_ANNOTATION])
        .and_then(Value::as_str)
        .and_then(|t| serde_json::from_str::<Value>(t).ok())
        .filter(Value::is_object);
    if let Some(ann) = object
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        for key in ROUND_TRIP_ANNOTATIONS {
            ann.remove(key);
        }
    }
    drop_empty_annotations(object);
    let spec = doc::map_mut(object, &["spec"]);
    let mut metrics = Vec::new();
    if let Some(target) = spec.remove("targetCPUUtilizationPercentage") {
        metrics.push(cpu_metric(target));
    }
    metrics.extend(other.unwrap_or_default().iter().map(metric_spec_v1_to_v2));
    if metrics.is_empty() {
        metrics.push(cpu_metric(json!(DEFAULT_CPU_UTILIZATION)));
    }
    spec.insert("metrics".into(), Value::Array(metrics));
    if let Some(behavior) = behavior {
        spec.insert("behavior".into(), behavior);
    }
    let has_status = object.get("status").is_some();
    if has_status {
        let status = doc::map_mut(object, &["status"]);
        let cpu = status.remove("currentCPUUtilizationPercentage");
        match current {
            // The annotation has more than the CPU figure: it wins, as upstream.
            Some(list) => {
                status.insert(
                    "currentMetrics".into(),
                    Value::Array(list.iter().map(metric_status_v1_to_v2).collect()),
                );
            }
            None => {
                if let Some(cpu) = cpu {
                    status.insert(
                        "currentMetrics".into(),
                        json!([{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": cpu}}}]),
                    );
                }
            }
        }
        if let Some(conditions) = conditions {
            status.insert("conditions".into(), Value::Array(conditions));
        }
    }
}

fn cpu_metric(target: Value) -> Value {
    json!({"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": target}}})
}

/// `autoscaling/v2` → `autoscaling/v1`.
fn hpa_v2_to_v1(object: &mut Value) {
    let metrics: Vec<Value> = doc::at(object, &["spec", "metrics"])
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let cpu_target = metrics
        .iter()
        .find(|m| is_cpu_utilization(m))
        .and_then(|m| doc::at(m, &["resource", "target", "averageUtilization"]))
        .cloned();
    let other: Vec<Value> = metrics
        .iter()
        .filter(|m| !is_cpu_utilization(m))
        .map(metric_spec_v2_to_v1)
        .collect();
    let behavior = doc::at(object, &["spec", "behavior"]).cloned();
    let current: Vec<Value> = doc::at(object, &["status", "currentMetrics"])
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let conditions: Vec<Value> = doc::at(object, &["status", "conditions"])
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let spec = doc::map_mut(object, &["spec"]);
    spec.remove("metrics");
    spec.remove("behavior");
    if let Some(target) = cpu_target {
        spec.insert("targetCPUUtilizationPercentage".into(), target);
    }
    if object.get("status").is_some() {
        let status = doc::map_mut(object, &["status"]);
        status.remove("currentMetrics");
        status.remove("conditions");
        let cpu_now = current
            .iter()
            .find(|m| {
                doc::str_at(m, &["type"]) == "Resource"
                    && doc::str_at(m, &["resource", "name"]) == "cpu"
            })
            .and_then(|m| doc::at(m, &["resource", "current", "averageUtilization"]))
            .cloned();
        if let Some(cpu) = cpu_now {
            status.insert("currentCPUUtilizationPercentage".into(), cpu);
        }
    }
    let encode = |v: &Value| serde_json::to_string(v).unwrap_or_default();
    let mut kept: Vec<(&str, String)> = Vec::new();
    if !other.is_empty() {
        kept.push((METRIC_SPECS_ANNOTATION, encode(&Value::Array(other))));
    }
    if let Some(behavior) = behavior {
        kept.push((BEHAVIOR_ANNOTATION, encode(&behavior)));
    }
    if !current.is_empty() {
        let list: Vec<Value> = current.iter().map(metric_status_v2_to_v1).collect();
        kept.push((METRIC_STATUSES_ANNOTATION, encode(&Value::Array(list))));
    }
    if !conditions.is_empty() {
        kept.push((CONDITIONS_ANNOTATION, encode(&Value::Array(conditions))));
    }
    if !kept.is_empty() {
        let ann = annotations(object);
        for (key, value) in kept {
            ann.insert(key.into(), json!(value));
        }
    }
}

/// Copies the fields `pairs` names from `from` (v2 path) to `to` (v1 key), when present.
fn pick(from: &Value, pairs: &[(&[&str], &str)]) -> Map<String, Value> {
    let mut out = Map::new();
    for (path, key) in pairs {
        if let Some(v) = doc::at(from, path) {
            out.insert((*key).into(), v.clone());
        }
    }
    out
}

/// Puts each v1 key of `from` at its v2 path in `to`.
fn place(from: &Value, pairs: &[(&[&str], &str)]) -> Value {
    let mut out = json!({});
    for (path, key) in pairs {
        if let Some(v) = from.get(*key) {
            doc::set(&mut out, path, v.clone());
        }
    }
    out
}

/// Field correspondences between a v2 metric source (paths) and the v1 annotation's
/// (v2beta1-shaped) one (keys), by metric type.
fn spec_pairs(kind: &str) -> &'static [(&'static [&'static str], &'static str)] {
    match kind {
        "Resource" | "ContainerResource" => &[
            (&["name"], "name"),
            (&["container"], "container"),
            (
                &["target", "averageUtilization"],
                "targetAverageUtilization",
            ),
            (&["target", "averageValue"], "targetAverageValue"),
        ],
        "Pods" => &[
            (&["metric", "name"], "metricName"),
            (&["metric", "selector"], "selector"),
            (&["target", "averageValue"], "targetAverageValue"),
        ],
        "Object" => &[
            (&["describedObject"], "target"),
            (&["metric", "name"], "metricName"),
            (&["metric", "selector"], "selector"),
            (&["target", "value"], "targetValue"),
            (&["target", "averageValue"], "averageValue"),
        ],
        "External" => &[
            (&["metric", "name"], "metricName"),
            (&["metric", "selector"], "metricSelector"),
            (&["target", "value"], "targetValue"),
            (&["target", "averageValue"], "targetAverageValue"),
        ],
        _ => &[],
    }
}

fn status_pairs(kind: &str) -> &'static [(&'static [&'static str], &'static str)] {
    match kind {
        "Resource" | "ContainerResource" => &[
            (&["name"], "name"),
            (&["container"], "container"),
            (
                &["current", "averageUtilization"],
                "currentAverageUtilization",
            ),
            (&["current", "averageValue"], "currentAverageValue"),
        ],
        "Pods" => &[
            (&["metric", "name"], "metricName"),
            (&["metric", "selector"], "selector"),
            (&["current", "averageValue"], "currentAverageValue"),
        ],
        "Object" => &[
            (&["describedObject"], "target"),
            (&["metric", "name"], "metricName"),
            (&["metric", "selector"], "selector"),
            (&["current", "value"], "currentValue"),
            (&["current", "averageValue"], "averageValue"),
        ],
        "External" => &[
            (&["metric", "name"], "metricName"),
            (&["metric", "selector"], "metricSelector"),
            (&["current", "value"], "currentValue"),
            (&["current", "averageValue"], "currentAverageValue"),
        ],
        _ => &[],
    }
}

/// The JSON field holding a metric type's source (`ContainerResource` → `containerResource`).
fn source_field(kind: &str) -> String {
    let mut chars = kind.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The v2 target type a v1 source implies (`Utilization`, `AverageValue` or `Value`).
fn target_type(source: &Map<String, Value>) -> &'static str {
    if source.contains_key("targetAverageUtilization") {
        "Utilization"
    } else if source.contains_key("targetValue") {
        "Value"
    } else {
        "AverageValue"
    }
}

fn convert_metric(
    metric: &Value,
    pairs: fn(&str) -> &'static [(&'static [&'static str], &'static str)],
    to_v1: bool,
) -> Value {
    let kind = doc::str_at(metric, &["type"]).to_string();
    let field = source_field(&kind);
    let Some(source) = metric.get(&field) else {
        return metric.clone();
    };
    let converted = if to_v1 {
        Value::Object(pick(source, pairs(&kind)))
    } else {
        place(source, pairs(&kind))
    };
    json!({"type": kind, field: converted})
}

fn metric_spec_v2_to_v1(metric: &Value) -> Value {
    convert_metric(metric, spec_pairs, true)
}

fn metric_spec_v1_to_v2(metric: &Value) -> Value {
    let mut converted = convert_metric(metric, spec_pairs, false);
    let field = source_field(doc::str_at(metric, &["type"]));
    if let Some(source) = metric.get(&field).and_then(Value::as_object)
        && converted.get(&field).is_some()
    {
        doc::set(
            &mut converted,
            &[field.as_str(), "target", "type"],
            json!(target_type(source)),
        );
    }
    converted
}

fn metric_status_v2_to_v1(metric: &Value) -> Value {
    convert_metric(metric, status_pairs, true)
}

fn metric_status_v1_to_v2(metric: &Value) -> Value {
    convert_metric(metric, status_pairs, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::kinds;

    fn hpa_info() -> &'static KindInfo {
        kinds::by_group_kind("autoscaling", "HorizontalPodAutoscaler").expect("hpa kind")
    }

    #[test]
    fn a_v1_cpu_target_round_trips() {
        let sent = json!({
            "apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                     "minReplicas": 2, "maxReplicas": 5, "targetCPUUtilizationPercentage": 60},
        });
        let mut stored = sent.clone();
        to_storage(hpa_info(), &mut stored);
        assert_eq!(stored["apiVersion"], "autoscaling/v2");
        assert_eq!(stored["spec"]["metrics"], json!([cpu_metric(json!(60))]));
        assert!(
            stored["spec"]
                .get("targetCPUUtilizationPercentage")
                .is_none()
        );
        assert_eq!(to_version(hpa_info(), &stored, "v1"), sent);
        assert_eq!(to_version(hpa_info(), &stored, "v2"), stored);
    }

    #[test]
    fn v1_keeps_what_it_cannot_say_in_annotations() {
        let stored = json!({
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "annotations": {"team": "a"}},
            "spec": {"maxReplicas": 5, "metrics": [
                cpu_metric(json!(70)),
                {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "500Mi"}}},
                {"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {"type": "AverageValue", "averageValue": "10"}}},
             ], "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}}},
            "status": {"currentReplicas": 2, "desiredReplicas": 2,
                "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 42, "averageValue": "84m"}}}],
                "conditions": [{"type": "AbleToScale", "status": "True"}]},
        });
        let v1 = to_version(hpa_info(), &stored, "v1");
        assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 70);
        assert_eq!(v1["status"]["currentCPUUtilizationPercentage"], 42);
        assert!(v1["spec"].get("metrics").is_none());
        let ann = &v1["metadata"]["annotations"];
        assert_eq!(ann["team"], "a");
        let other: Value =
            serde_json::from_str(ann[METRIC_SPECS_ANNOTATION].as_str().expect("metrics"))
                .expect("json");
        assert_eq!(
            other,
            json!([
                {"type": "Resource", "resource": {"name": "memory", "targetAverageValue": "500Mi"}},
                {"type": "Pods", "pods": {"metricName": "qps", "targetAverageValue": "10"}},
            ])
        );
        assert!(ann[CONDITIONS_ANNOTATION].is_string());
        // And back: nothing lost, the annotations gone.
        let mut again = v1.clone();
        to_storage(hpa_info(), &mut again);
        assert_eq!(again, stored);
    }

    #[test]
    fn v1_without_a_target_gets_the_default_cpu_target() {
        let mut sent = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web"}, "spec": {"maxReplicas": 3}});
        to_storage(hpa_info(), &mut sent);
        assert_eq!(sent["spec"]["metrics"], json!([cpu_metric(json!(80))]));
    }

    #[test]
    fn other_kinds_change_only_their_api_version() {
        let info = kinds::by_group_kind("flowcontrol.apiserver.k8s.io", "FlowSchema")
            .expect("flowschema kind");
        let stored = json!({"apiVersion": "flowcontrol.apiserver.k8s.io/v1", "kind": "FlowSchema",
            "metadata": {"name": "f"}, "spec": {"matchingPrecedence": 500}});
        let old = to_version(info, &stored, "v1beta3");
        assert_eq!(old["apiVersion"], "flowcontrol.apiserver.k8s.io/v1beta3");
        assert_eq!(old["spec"], stored["spec"]);
        assert_eq!(to_version(info, &stored, "v9"), stored);
    }
}

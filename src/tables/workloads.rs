//! kubectl's table columns for the workload and storage kinds: DaemonSet, StatefulSet, Job,
//! CronJob, HorizontalPodAutoscaler, ResourceQuota, LimitRange and StorageClass.
//!
//! `engine get` asks [`header`] and [`row`] for kinds its own table does not know.

use serde_json::Value;

use crate::engine::clock::{Millis, human_age, parse_rfc3339, rfc3339};
use crate::engine::controllers::job::finished;
use crate::engine::doc;
use crate::engine::labels::Selector;

/// The column titles for `kind` (`None`: not one of these kinds).
pub fn header(kind: &str, wide: bool) -> Option<Vec<&'static str>> {
    let mut h: Vec<&'static str> = match kind {
        "DaemonSet" => vec![
            "NAME",
            "DESIRED",
            "CURRENT",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "NODE SELECTOR",
            "AGE",
        ],
        "StatefulSet" => vec!["NAME", "READY", "AGE"],
        "Job" => vec!["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"],
        "CronJob" => vec![
            "NAME",
            "SCHEDULE",
            "TIMEZONE",
            "SUSPEND",
            "ACTIVE",
            "LAST SCHEDULE",
            "AGE",
        ],
        "HorizontalPodAutoscaler" => vec![
            "NAME",
            "REFERENCE",
            "TARGETS",
            "MINPODS",
            "MAXPODS",
            "REPLICAS",
            "AGE",
        ],
        "ResourceQuota" => vec!["NAME", "AGE", "REQUEST", "LIMIT"],
        "LimitRange" => vec!["NAME", "CREATED AT"],
        "StorageClass" => vec![
            "NAME",
            "PROVISIONER",
            "RECLAIMPOLICY",
            "VOLUMEBINDINGMODE",
            "ALLOWVOLUMEEXPANSION",
            "AGE",
        ],
        _ => return None,
    };
    if wide {
        match kind {
            "DaemonSet" | "Job" | "CronJob" => h.extend(["CONTAINERS", "IMAGES", "SELECTOR"]),
            "StatefulSet" => h.extend(["CONTAINERS", "IMAGES"]),
            _ => {}
        }
    }
    Some(h)
}

fn age(obj: &Value, now: Millis) -> String {
    parse_rfc3339(doc::str_at(obj, &["metadata", "creationTimestamp"]))
        .map(|t| human_age(now - t))
        .unwrap_or_else(|| "<unknown>".into())
}

fn num(obj: &Value, path: &[&str]) -> i64 {
    doc::i64_at(obj, path).unwrap_or(0)
}

fn containers_images(obj: &Value, spec_path: &[&str]) -> (String, String) {
    let mut path = spec_path.to_vec();
    path.push("containers");
    let list: Vec<&Value> = doc::at(obj, &path)
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let names: Vec<&str> = list.iter().map(|c| doc::str_at(c, &["name"])).collect();
    let images: Vec<&str> = list.iter().map(|c| doc::str_at(c, &["image"])).collect();
    (names.join(","), images.join(","))
}

fn selector_text(sel: Option<&Value>) -> String {
    match sel.map(Selector::from_label_selector) {
        Some(Ok(s)) if !s.is_empty() => s.to_text(),
        _ => "<none>".into(),
    }
}

fn map_text(map: Option<&Value>) -> String {
    match map.and_then(Value::as_object) {
        Some(m) if !m.is_empty() => m
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
            .collect::<Vec<_>>()
            .join(","),
        _ => "<none>".into(),
    }
}

/// The cells for one object of `kind` (`None`: not one of these kinds).
pub fn row(kind: &str, o: &Value, now: Millis, wide: bool) -> Option<Vec<String>> {
    let name = doc::name(o).to_string();
    let mut r: Vec<String> = match kind {
        "DaemonSet" => vec![
            name,
            num(o, &["status", "desiredNumberScheduled"]).to_string(),
            num(o, &["status", "currentNumberScheduled"]).to_string(),
            num(o, &["status", "numberReady"]).to_string(),
            num(o, &["status", "updatedNumberScheduled"]).to_string(),
            num(o, &["status", "numberAvailable"]).to_string(),
            map_text(doc::at(o, &["spec", "template", "spec", "nodeSelector"])),
            age(o, now),
        ],
        "StatefulSet" => vec![
            name,
            format!(
                "{}/{}",
                num(o, &["status", "readyReplicas"]),
                doc::i64_at(o, &["spec", "replicas"]).unwrap_or(1)
            ),
            age(o, now),
        ],
        "Job" => {
            let completions = match doc::i64_at(o, &["spec", "completions"]) {
                Some(c) => format!("{}/{c}", num(o, &["status", "succeeded"])),
                None => format!(
                    "{}/1 of {}",
                    num(o, &["status", "succeeded"]),
                    doc::i64_at(o, &["spec", "parallelism"]).unwrap_or(1)
                ),
            };
            let start = parse_rfc3339(doc::str_at(o, &["status", "startTime"]));
            let end = parse_rfc3339(doc::str_at(o, &["status", "completionTime"]))
                .or_else(|| finished(o).map(|(_, t)| t));
            let duration = match start {
                Some(s) => human_age(end.unwrap_or(now) - s),
                None => String::new(),
            };
            vec![name, job_status(o), completions, duration, age(o, now)]
        }
        "CronJob" => {
            let last = match parse_rfc3339(doc::str_at(o, &["status", "lastScheduleTime"])) {
                Some(t) => human_age(now - t),
                None => "<none>".into(),
            };
            let tz = match doc::str_at(o, &["spec", "timeZone"]) {
                "" => "<none>".to_string(),
                z => z.to_string(),
            };
            vec![
                name,
                doc::str_at(o, &["spec", "schedule"]).to_string(),
                tz,
                (doc::at(o, &["spec", "suspend"]).and_then(Value::as_bool) == Some(true))
                    .to_string()
                    .replace("true", "True")
                    .replace("false", "False"),
                doc::at(o, &["status", "active"])
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len)
                    .to_string(),
                last,
                age(o, now),
            ]
        }
        "HorizontalPodAutoscaler" => vec![
            name,
            format!(
                "{}/{}",
                doc::str_at(o, &["spec", "scaleTargetRef", "kind"]),
                doc::str_at(o, &["spec", "scaleTargetRef", "name"])
            ),
            hpa_targets(o),
            doc::i64_at(o, &["spec", "minReplicas"])
                .unwrap_or(1)
                .to_string(),
            num(o, &["spec", "maxReplicas"]).to_string(),
            num(o, &["status", "currentReplicas"]).to_string(),
            age(o, now),
        ],
        "ResourceQuota" => {
            let (requests, limits) = quota_columns(o);
            vec![name, age(o, now), requests, limits]
        }
        "LimitRange" => vec![
            name,
            parse_rfc3339(doc::str_at(o, &["metadata", "creationTimestamp"]))
                .map(rfc3339)
                .unwrap_or_default(),
        ],
        "StorageClass" => {
            let default = doc::annotation(
                o,
                crate::engine::controllers::volume::DEFAULT_CLASS_ANNOTATION,
            ) == Some("true");
            let or = |path: &[&str], d: &str| match doc::str_at(o, path) {
                "" => d.to_string(),
                v => v.to_string(),
            };
            vec![
                if default {
                    format!("{name} (default)")
                } else {
                    name
                },
                or(&["provisioner"], ""),
                or(&["reclaimPolicy"], "Delete"),
                or(&["volumeBindingMode"], "Immediate"),
                (doc::at(o, &["allowVolumeExpansion"]).and_then(Value::as_bool) == Some(true))
                    .to_string(),
                age(o, now),
            ]
        }
        _ => return None,
    };
    if wide {
        match kind {
            "DaemonSet" => {
                let (c, i) = containers_images(o, &["spec", "template", "spec"]);
                r.extend([c, i, selector_text(doc::at(o, &["spec", "selector"]))]);
            }
            "StatefulSet" => {
                let (c, i) = containers_images(o, &["spec", "template", "spec"]);
                r.extend([c, i]);
            }
            "Job" => {
                let (c, i) = containers_images(o, &["spec", "template", "spec"]);
                r.extend([c, i, selector_text(doc::at(o, &["spec", "selector"]))]);
            }
            "CronJob" => {
                let (c, i) =
                    containers_images(o, &["spec", "jobTemplate", "spec", "template", "spec"]);
                r.extend([
                    c,
                    i,
                    selector_text(doc::at(o, &["spec", "jobTemplate", "spec", "selector"])),
                ]);
            }
            _ => {}
        }
    }
    Some(r)
}

/// kubectl's Job STATUS column.
fn job_status(o: &Value) -> String {
    let has = |kind: &str| {
        doc::at(o, &["status", "conditions"])
            .and_then(Value::as_array)
            .is_some_and(|a| {
                a.iter().any(|c| {
                    doc::str_at(c, &["type"]) == kind && doc::str_at(c, &["status"]) == "True"
                })
            })
    };
    if has("Complete") {
        "Complete"
    } else if has("Failed") {
        "Failed"
    } else if has("Suspended") {
        "Suspended"
    } else if has("FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    }
    .into()
}

/// kubectl's HPA TARGETS column: `cpu: 62%/50%`, `<unknown>` before the first metrics.
fn hpa_targets(o: &Value) -> String {
    let metrics = doc::at(o, &["spec", "metrics"])
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let current = doc::at(o, &["status", "currentMetrics"])
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if metrics.is_empty() {
        let now = current
            .first()
            .and_then(|m| doc::i64_at(m, &["resource", "current", "averageUtilization"]))
            .map_or("<unknown>".to_string(), |u| format!("{u}%"));
        return format!("cpu: {now}/80%");
    }
    metrics
        .iter()
        .map(|m| {
            let res = doc::str_at(m, &["resource", "name"]);
            let cur = current
                .iter()
                .find(|c| doc::str_at(c, &["resource", "name"]) == res);
            if doc::str_at(m, &["resource", "target", "type"]) == "AverageValue" {
                let now = cur
                    .map(|c| doc::str_at(c, &["resource", "current", "averageValue"]).to_string())
                    .unwrap_or_else(|| "<unknown>".into());
                format!(
                    "{res}: {now}/{}",
                    doc::at(m, &["resource", "target", "averageValue"])
                        .map(|v| v.as_str().map_or(v.to_string(), str::to_string))
                        .unwrap_or_default()
                )
            } else {
                let now = cur
                    .and_then(|c| doc::i64_at(c, &["resource", "current", "averageUtilization"]))
                    .map_or("<unknown>".to_string(), |u| format!("{u}%"));
                format!(
                    "{res}: {now}/{}%",
                    num(m, &["resource", "target", "averageUtilization"])
                )
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// kubectl's ResourceQuota REQUEST and LIMIT columns (`pods: 2/10, requests.cpu: 600m/1`).
fn quota_columns(o: &Value) -> (String, String) {
    let hard = doc::at(o, &["status", "hard"])
        .or_else(|| doc::at(o, &["spec", "hard"]))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let used = doc::at(o, &["status", "used"]);
    let mut requests: Vec<String> = Vec::new();
    let mut limits: Vec<String> = Vec::new();
    let mut keys: Vec<&String> = hard.keys().collect();
    keys.sort();
    for k in keys {
        let u = used
            .and_then(|u| u.get(k))
            .and_then(Value::as_str)
            .unwrap_or("0");
        let h = hard.get(k).map_or(String::new(), |v| {
            v.as_str().map_or(v.to_string(), str::to_string)
        });
        let cell = format!("{k}: {u}/{h}");
        if k.starts_with("limits.") {
            limits.push(cell);
        } else {
            requests.push(cell);
        }
    }
    (requests.join(", "), limits.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: Millis = 1_767_225_600_000 + 600_000;

    #[test]
    fn rows_follow_kubectl() {
        let created = json!({"creationTimestamp": "2026-01-01T00:00:00Z", "name": "x"});
        let mut ds = json!({"metadata": created, "spec": {"template": {"spec": {"nodeSelector": {"disk": "ssd"}}}},
            "status": {"desiredNumberScheduled": 3, "currentNumberScheduled": 3, "numberReady": 2, "updatedNumberScheduled": 3, "numberAvailable": 2}});
        assert_eq!(
            row("DaemonSet", &ds, NOW, false),
            Some(
                vec!["x", "3", "3", "2", "3", "2", "disk=ssd", "10m"]
                    .into_iter()
                    .map(String::from)
                    .collect()
            )
        );
        ds["spec"]["template"]["spec"]["nodeSelector"] = json!({});
        assert_eq!(
            row("DaemonSet", &ds, NOW, false).map(|r| r[6].clone()),
            Some("<none>".into())
        );
        let job = json!({"metadata": created, "spec": {"completions": 5},
            "status": {"succeeded": 5, "startTime": "2026-01-01T00:00:00Z", "completionTime": "2026-01-01T00:00:09Z",
                "conditions": [{"type": "Complete", "status": "True"}]}});
        assert_eq!(
            row("Job", &job, NOW, false),
            Some(
                vec!["x", "Complete", "5/5", "9s", "10m"]
                    .into_iter()
                    .map(String::from)
                    .collect()
            )
        );
        let hpa = json!({"metadata": created, "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "php"}, "minReplicas": 1, "maxReplicas": 8,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}]},
            "status": {"currentReplicas": 8, "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 62}}}]}});
        assert_eq!(
            row("HorizontalPodAutoscaler", &hpa, NOW, false),
            Some(
                vec!["x", "Deployment/php", "cpu: 62%/50%", "1", "8", "8", "10m"]
                    .into_iter()
                    .map(String::from)
                    .collect()
            )
        );
        let quota = json!({"metadata": created, "spec": {"hard": {"pods": "2", "limits.cpu": "2", "requests.cpu": "1"}},
            "status": {"hard": {"pods": "2", "limits.cpu": "2", "requests.cpu": "1"}, "used": {"pods": "2", "limits.cpu": "0", "requests.cpu": "600m"}}});
        assert_eq!(
            row("ResourceQuota", &quota, NOW, false),
            Some(
                vec![
                    "x",
                    "10m",
                    "pods: 2/2, requests.cpu: 600m/1",
                    "limits.cpu: 0/2"
                ]
                .into_iter()
                .map(String::from)
                .collect()
            )
        );
        assert!(header("Pod", false).is_none());
        assert_eq!(header("StatefulSet", true).map(|h| h.len()), Some(5));
    }
}

//! Health of live objects, by the rules of Argo CD's health checks and kstatus.
//!
//! A pure function of one live object; the Service rule also takes its Endpoints object.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Health of an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Status {
    /// Converged and serving.
    Healthy,
    /// Moving towards the desired state.
    Progressing,
    /// Failed, or will not converge without help.
    Degraded,
    /// Waiting for a person (a paused rollout).
    Suspended,
    /// Absent from the cluster.
    Missing,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Status::Healthy => "Healthy",
            Status::Progressing => "Progressing",
            Status::Degraded => "Degraded",
            Status::Suspended => "Suspended",
            Status::Missing => "Missing",
        };
        f.write_str(text)
    }
}

/// A status and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// The status.
    pub status: Status,
    /// Why (empty when healthy).
    pub message: String,
}

impl Health {
    fn new(status: Status, message: impl Into<String>) -> Health {
        Health {
            status,
            message: message.into(),
        }
    }

    fn healthy() -> Health {
        Health::new(Status::Healthy, "")
    }
}

fn int(object: &Value, pointer: &str) -> Option<i64> {
    object.pointer(pointer).and_then(Value::as_i64)
}

fn condition<'a>(object: &'a Value, kind: &str) -> Option<&'a Value> {
    object
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|conditions| {
            conditions
                .iter()
                .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
        })
}

fn text<'a>(object: &'a Value, pointer: &str) -> &'a str {
    object
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// Whether the controller has seen the latest spec.
fn observed(object: &Value) -> bool {
    match (
        int(object, "/metadata/generation"),
        int(object, "/status/observedGeneration"),
    ) {
        (Some(generation), Some(observed)) => observed >= generation,
        (Some(_), None) => false,
        _ => true,
    }
}

/// The health of a live object (`None`: absent). `endpoints` is a Service's Endpoints object,
/// when the cluster has one.
pub fn health(object: Option<&Value>, endpoints: Option<&Value>) -> Health {
    let Some(object) = object else {
        return Health::new(Status::Missing, "not found");
    };
    match text(object, "/kind") {
        "Deployment" => deployment(object),
        "StatefulSet" => stateful_set(object),
        "DaemonSet" => daemon_set(object),
        "ReplicaSet" => replica_set(object),
        "Job" => job(object),
        "PersistentVolumeClaim" => pvc(object),
        "Pod" => pod(object),
        "Service" => service(object, endpoints),
        _ if is_custom(object) => custom_resource(object),
        _ => Health::healthy(),
    }
}

/// A custom resource: its group is not one of Kubernetes' own (those have no dot, or end
/// in `.k8s.io`).
fn is_custom(object: &Value) -> bool {
    let api_version = text(object, "/apiVersion");
    match api_version.split_once('/') {
        Some((group, _)) => group.contains('.') && !group.ends_with(".k8s.io"),
        None => false,
    }
}

/// kstatus' generic rules for a custom resource: a status that has not observed the latest
/// generation is in progress; `Stalled=True` is failed, `Reconciling=True` or `Ready=False`
/// in progress (with the condition's reason and message); no status (or `Ready=True`) is
/// current.
fn custom_resource(object: &Value) -> Health {
    let generation = int(object, "/metadata/generation");
    let observed_generation = int(object, "/status/observedGeneration");
    if let (Some(generation), Some(observed)) = (generation, observed_generation)
        && observed < generation
    {
        return Health::new(
            Status::Progressing,
            format!("status observedGeneration {observed} is behind generation {generation}"),
        );
    }
    let says = |c: &Value| {
        let (reason, message) = (text(c, "/reason"), text(c, "/message"));
        match (reason.is_empty(), message.is_empty()) {
            (false, false) => format!("{reason}: {message}"),
            (true, false) => message.to_string(),
            (false, true) => reason.to_string(),
            (true, true) => format!("{} is {}", text(c, "/type"), text(c, "/status")),
        }
    };
    if let Some(c) = condition(object, "Stalled").filter(|c| text(c, "/status") == "True") {
        return Health::new(Status::Degraded, format!("Stalled: {}", says(c)));
    }
    if let Some(c) = condition(object, "Reconciling").filter(|c| text(c, "/status") == "True") {
        return Health::new(Status::Progressing, format!("Reconciling: {}", says(c)));
    }
    if let Some(c) = condition(object, "Ready").filter(|c| text(c, "/status") == "False") {
        return Health::new(Status::Progressing, format!("not Ready: {}", says(c)));
    }
    Health::healthy()
}

fn deployment(d: &Value) -> Health {
    if d.pointer("/spec/paused").and_then(Value::as_bool) == Some(true) {
        return Health::new(Status::Suspended, "deployment is paused");
    }
    if !observed(d) {
        return Health::new(
            Status::Progressing,
            "waiting for rollout spec update to be observed",
        );
    }
    if let Some(progressing) = condition(d, "Progressing")
        && text(progressing, "/reason") == "ProgressDeadlineExceeded"
    {
        return Health::new(
            Status::Degraded,
            format!(
                "deployment {:?} exceeded its progress deadline",
                text(d, "/metadata/name")
            ),
        );
    }
    let replicas = int(d, "/spec/replicas").unwrap_or(1);
    let updated = int(d, "/status/updatedReplicas").unwrap_or(0);
    let total = int(d, "/status/replicas").unwrap_or(0);
    let available = int(d, "/status/availableReplicas").unwrap_or(0);
    if updated < replicas {
        return Health::new(
            Status::Progressing,
            format!("{updated} of {replicas} updated replicas are available"),
        );
    }
    if total > updated {
        return Health::new(
            Status::Progressing,
            format!("{} old replicas are pending termination", total - updated),
        );
    }
    if available < updated {
        return Health::new(
            Status::Progressing,
            format!("{available} of {updated} updated replicas are available"),
        );
    }
    Health::healthy()
}

fn stateful_set(s: &Value) -> Health {
    if !observed(s) {
        return Health::new(
            Status::Progressing,
            "waiting for statefulset spec update to be observed",
        );
    }
    let replicas = int(s, "/spec/replicas").unwrap_or(1);
    let ready = int(s, "/status/readyReplicas").unwrap_or(0);
    if ready < replicas {
        return Health::new(
            Status::Progressing,
            format!("{ready} of {replicas} pods are ready"),
        );
    }
    if text(s, "/spec/updateStrategy/type") == "OnDelete" {
        return Health::healthy();
    }
    let updated = int(s, "/status/updatedReplicas").unwrap_or(replicas);
    if updated < replicas {
        return Health::new(
            Status::Progressing,
            format!("{updated} of {replicas} pods updated"),
        );
    }
    let (current, update) = (
        text(s, "/status/currentRevision"),
        text(s, "/status/updateRevision"),
    );
    if !update.is_empty() && current != update {
        return Health::new(
            Status::Progressing,
            "waiting for the rolling update to complete",
        );
    }
    Health::healthy()
}

fn daemon_set(d: &Value) -> Health {
    if !observed(d) {
        return Health::new(
            Status::Progressing,
            "waiting for daemonset spec update to be observed",
        );
    }
    let desired = int(d, "/status/desiredNumberScheduled").unwrap_or(0);
    let updated = int(d, "/status/updatedNumberScheduled").unwrap_or(0);
    let available = int(d, "/status/numberAvailable").unwrap_or(0);
    if updated < desired {
        return Health::new(
            Status::Progressing,
            format!("{updated} of {desired} pods updated"),
        );
    }
    if available < desired {
        return Health::new(
            Status::Progressing,
            format!("{available} of {desired} updated pods are available"),
        );
    }
    Health::healthy()
}

fn replica_set(r: &Value) -> Health {
    if !observed(r) {
        return Health::new(
            Status::Progressing,
            "waiting for replicaset spec update to be observed",
        );
    }
    let replicas = int(r, "/spec/replicas").unwrap_or(1);
    let available = int(r, "/status/availableReplicas").unwrap_or(0);
    if available < replicas {
        return Health::new(
            Status::Progressing,
            format!("{available} of {replicas} replicas are available"),
        );
    }
    Health::healthy()
}

fn job(j: &Value) -> Health {
    if let Some(failed) = condition(j, "Failed")
        && text(failed, "/status") == "True"
    {
        return Health::new(
            Status::Degraded,
            format!("job failed: {}", text(failed, "/message")),
        );
    }
    if let Some(complete) = condition(j, "Complete")
        && text(complete, "/status") == "True"
    {
        return Health::healthy();
    }
    if j.pointer("/spec/suspend").and_then(Value::as_bool) == Some(true) {
        return Health::new(Status::Suspended, "job is suspended");
    }
    Health::new(Status::Progressing, "job is running")
}

fn pvc(p: &Value) -> Health {
    match text(p, "/status/phase") {
        "Bound" => Health::healthy(),
        "Lost" => Health::new(Status::Degraded, "claim lost its volume"),
        phase => Health::new(
            Status::Progressing,
            format!(
                "claim is {}",
                if phase.is_empty() { "Pending" } else { phase }
            ),
        ),
    }
}

fn pod(p: &Value) -> Health {
    let waiting_reasons = p
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.pointer("/state/waiting/reason").and_then(Value::as_str));
    for reason in waiting_reasons {
        if matches!(
            reason,
            "CrashLoopBackOff" | "ImagePullBackOff" | "ErrImagePull" | "CreateContainerConfigError"
        ) {
            return Health::new(Status::Degraded, format!("container is waiting: {reason}"));
        }
    }
    match text(p, "/status/phase") {
        "Succeeded" => Health::healthy(),
        "Failed" => Health::new(Status::Degraded, "pod failed"),
        "Running" => match condition(p, "Ready") {
            Some(ready) if text(ready, "/status") != "True" => {
                Health::new(Status::Progressing, "pod is not ready")
            }
            _ => Health::healthy(),
        },
        _ => Health::new(Status::Progressing, "pod is pending"),
    }
}

fn service(s: &Value, endpoints: Option<&Value>) -> Health {
    if text(s, "/spec/type") == "LoadBalancer"
        && s.pointer("/status/loadBalancer/ingress")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty)
    {
        return Health::new(Status::Progressing, "waiting for a load balancer address");
    }
    let selects = s
        .pointer("/spec/selector")
        .and_then(Value::as_object)
        .is_some_and(|m| !m.is_empty());
    if let (true, Some(endpoints)) = (selects, endpoints) {
        let ready = endpoints
            .get("subsets")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|subset| {
                subset
                    .get("addresses")
                    .and_then(Value::as_array)
                    .is_some_and(|a| !a.is_empty())
            });
        if !ready {
            return Health::new(Status::Progressing, "no ready endpoints");
        }
    }
    Health::healthy()
}

/// Why one pod is failing, in the words a person fixing it needs (`CrashLoopBackOff: exit
/// code 1`, `ErrImagePull: image web:9 not found`, `Readiness probe failed: HTTP 503`), or
/// `None` when it is not failing. `warnings` are the pod's recent warning event messages
/// (probe failures are only reported there, as by the kubelet).
pub fn pod_failure(pod: &Value, warnings: &[String]) -> Option<String> {
    if pod.pointer("/metadata/deletionTimestamp").is_some() {
        return None;
    }
    let statuses = ["containerStatuses", "initContainerStatuses"]
        .iter()
        .flat_map(|field| {
            pod.pointer(&format!("/status/{field}"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        });
    for status in statuses {
        let exit = status
            .pointer("/lastState/terminated")
            .or_else(|| status.pointer("/state/terminated"))
            .map(|t| {
                let code = int(t, "/exitCode").unwrap_or(0);
                match text(t, "/reason") {
                    "" | "Error" | "Completed" => format!("exit code {code}"),
                    reason => format!("{reason} (exit code {code})"),
                }
            });
        match text(status, "/state/waiting/reason") {
            "CrashLoopBackOff" => {
                return Some(format!(
                    "CrashLoopBackOff: {}",
                    exit.unwrap_or_else(|| "the container keeps exiting".into())
                ));
            }
            reason @ ("ErrImagePull" | "ImagePullBackOff" | "ContainerCreating") => {
                // The pull failed (ErrImagePull) and is retried after a back-off
                // (ImagePullBackOff): one cause, named by the failure.
                let image = text(status, "/image");
                let pull_failed = warnings
                    .iter()
                    .any(|w| w.contains(image) && w.starts_with("Failed to pull image"));
                let not_found = pull_failed
                    && warnings
                        .iter()
                        .any(|w| w.contains(image) && w.contains("not found"));
                if reason == "ContainerCreating" && !pull_failed {
                    continue;
                }
                return Some(if not_found {
                    format!("ErrImagePull: image {image} not found")
                } else {
                    format!("ErrImagePull: cannot pull image {image}")
                });
            }
            reason @ ("CreateContainerConfigError"
            | "InvalidImageName"
            | "CreateContainerError") => {
                return Some(format!(
                    "{reason}: {}",
                    text(status, "/state/waiting/message")
                ));
            }
            _ => {}
        }
        if let Some(terminated) = status.pointer("/state/terminated")
            && int(terminated, "/exitCode").unwrap_or(0) != 0
        {
            return Some(format!(
                "terminated: {}",
                exit.unwrap_or_else(|| "error".into())
            ));
        }
    }
    if let Some(scheduled) = condition(pod, "PodScheduled")
        && text(scheduled, "/status") == "False"
    {
        return Some(format!(
            "{}: {}",
            text(scheduled, "/reason"),
            text(scheduled, "/message")
        ));
    }
    let running = text(pod, "/status/phase") == "Running";
    let not_ready = condition(pod, "Ready").is_some_and(|c| text(c, "/status") != "True");
    if running && not_ready {
        let probe = warnings.iter().rev().find(|w| {
            w.starts_with("Readiness probe failed") || w.starts_with("Liveness probe failed")
        });
        if let Some(probe) = probe {
            return Some(shorten_probe(probe));
        }
    }
    None
}

/// `Readiness probe failed: HTTP probe failed with statuscode: 503` → `Readiness probe
/// failed: HTTP 503`.
fn shorten_probe(message: &str) -> String {
    match message.split_once(": HTTP probe failed with statuscode: ") {
        Some((head, code)) => format!("{head}: HTTP {}", code.trim()),
        None => message.to_string(),
    }
}

/// Summarises why pods fail, most frequent cause first: `2/4 new pods CrashLoopBackOff: exit
/// code 1`. `pods` pairs each pod with its recent warning messages; `total` is how many pods
/// are wanted; `which` names them (`new`, `canary`). `None` when none fails.
///
/// The one function behind the failure messages of `apply --wait`, `rollout status` and
/// `watch`.
pub fn pod_failures(pods: &[(Value, Vec<String>)], total: i64, which: &str) -> Option<String> {
    let mut causes: Vec<(String, usize)> = Vec::new();
    for (pod, warnings) in pods {
        if let Some(cause) = pod_failure(pod, warnings) {
            match causes.iter_mut().find(|(c, _)| *c == cause) {
                Some((_, n)) => *n += 1,
                None => causes.push((cause, 1)),
            }
        }
    }
    if causes.is_empty() {
        return None;
    }
    causes.sort_by_key(|c| std::cmp::Reverse(c.1));
    let total = total.max(pods.len() as i64);
    let which = if which.is_empty() {
        String::new()
    } else {
        format!("{which} ")
    };
    Some(
        causes
            .iter()
            .map(|(cause, n)| {
                let noun = if total == 1 { "pod" } else { "pods" };
                format!("{n}/{total} {which}{noun} {cause}")
            })
            .collect::<Vec<_>>()
            .join("; "),
    )
}

/// How many of `pods` fail (see [`pod_failure`]).
pub fn failing_count(pods: &[(Value, Vec<String>)]) -> usize {
    pods.iter()
        .filter(|(pod, warnings)| pod_failure(pod, warnings).is_some())
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(object: Value) -> (Status, String) {
        let h = health(Some(&object), None);
        (h.status, h.message)
    }

    #[test]
    fn deployments_follow_argo_rules() {
        let d = |generation: i64, status: Value| {
            json!({"kind": "Deployment", "metadata": {"name": "web", "generation": generation},
                   "spec": {"replicas": 3}, "status": status})
        };
        assert_eq!(
            check(d(2, json!({"observedGeneration": 1}))).0,
            Status::Progressing
        );
        assert_eq!(
            check(d(
                2,
                json!({"observedGeneration": 2, "replicas": 4, "updatedReplicas": 2, "availableReplicas": 3})
            )),
            (
                Status::Progressing,
                "2 of 3 updated replicas are available".into()
            )
        );
        assert_eq!(
            check(d(
                2,
                json!({"observedGeneration": 2, "replicas": 4, "updatedReplicas": 3, "availableReplicas": 3})
            )),
            (
                Status::Progressing,
                "1 old replicas are pending termination".into()
            )
        );
        assert_eq!(
            check(d(2, json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3}))).0,
            Status::Healthy
        );
        let stuck = d(
            2,
            json!({"observedGeneration": 2, "conditions": [
            {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]}),
        );
        assert_eq!(check(stuck).0, Status::Degraded);
    }

    #[test]
    fn other_kinds() {
        assert_eq!(
            check(json!({"kind": "PersistentVolumeClaim", "status": {"phase": "Bound"}})).0,
            Status::Healthy
        );
        assert_eq!(
            check(json!({"kind": "PersistentVolumeClaim", "status": {}})).0,
            Status::Progressing
        );
        let job = json!({"kind": "Job", "status": {"conditions": [{"type": "Failed", "status": "True", "message": "BackoffLimitExceeded"}]}});
        assert_eq!(check(job).0, Status::Degraded);
        assert_eq!(check(json!({"kind": "Job", "status": {"conditions": [{"type": "Complete", "status": "True"}]}})).0, Status::Healthy);
        let sts =
            json!({"kind": "StatefulSet", "spec": {"replicas": 2}, "status": {"readyReplicas": 1}});
        assert_eq!(check(sts).0, Status::Progressing);
        let ds = json!({"kind": "DaemonSet", "status": {"desiredNumberScheduled": 3, "updatedNumberScheduled": 3, "numberAvailable": 3}});
        assert_eq!(check(ds).0, Status::Healthy);
        let svc = json!({"kind": "Service", "spec": {"selector": {"app": "web"}}});
        assert_eq!(
            health(Some(&svc), Some(&json!({"subsets": []}))).status,
            Status::Progressing
        );
        assert_eq!(
            health(
                Some(&svc),
                Some(&json!({"subsets": [{"addresses": [{"ip": "10.0.0.1"}]}]}))
            )
            .status,
            Status::Healthy
        );
        assert_eq!(health(None, None).status, Status::Missing);
        let crash = json!({"kind": "Pod", "status": {"phase": "Running",
            "containerStatuses": [{"state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}});
        assert_eq!(check(crash).0, Status::Degraded);
    }

    #[test]
    fn pod_failures_name_the_cause() {
        let crashing = json!({"kind": "Pod", "status": {"phase": "Running", "containerStatuses": [{
            "image": "web:2.0", "restartCount": 3,
            "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}}}]}});
        let pulling = json!({"kind": "Pod", "status": {"phase": "Pending", "containerStatuses": [{
            "image": "web:9", "restartCount": 0, "state": {"waiting": {"reason": "ErrImagePull"}}}]}});
        let unready = json!({"kind": "Pod", "status": {"phase": "Running",
            "conditions": [{"type": "Ready", "status": "False"}],
            "containerStatuses": [{"image": "web:3", "restartCount": 0, "state": {"running": {}}}]}});
        let fine = json!({"kind": "Pod", "status": {"phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}]}});
        let pull_warning = vec![
            "Failed to pull image \"web:9\": failed to resolve reference \"web:9\": not found"
                .to_string(),
        ];
        let probe =
            vec!["Readiness probe failed: HTTP probe failed with statuscode: 503".to_string()];
        assert_eq!(
            pod_failures(
                &[
                    (crashing.clone(), vec![]),
                    (crashing, vec![]),
                    (fine.clone(), vec![])
                ],
                4,
                "new"
            ),
            Some("2/4 new pods CrashLoopBackOff: exit code 1".to_string())
        );
        assert_eq!(
            pod_failures(&[(pulling, pull_warning)], 1, ""),
            Some("1/1 pod ErrImagePull: image web:9 not found".to_string())
        );
        assert_eq!(
            pod_failures(&[(unready.clone(), probe)], 2, "canary"),
            Some("1/2 canary pods Readiness probe failed: HTTP 503".to_string())
        );
        assert_eq!(
            pod_failures(&[(unready, vec![]), (fine, vec![])], 2, "new"),
            None
        );
    }

    #[test]
    fn custom_resources_follow_kstatus() {
        let cr = |status: Value| {
            json!({"apiVersion": "example.com/v1", "kind": "Widget",
                "metadata": {"name": "w", "generation": 2}, "status": status})
        };
        assert_eq!(health(Some(&cr(json!(null))), None).status, Status::Healthy);
        let behind = health(Some(&cr(json!({"observedGeneration": 1}))), None);
        assert_eq!(behind.status, Status::Progressing);
        let stalled = health(
            Some(&cr(json!({"observedGeneration": 2, "conditions": [
                {"type": "Stalled", "status": "True", "reason": "BadConfig", "message": "no such secret"}]}))),
            None,
        );
        assert_eq!(stalled.status, Status::Degraded);
        assert_eq!(stalled.message, "Stalled: BadConfig: no such secret");
        let waiting = health(
            Some(&cr(
                json!({"conditions": [{"type": "Ready", "status": "False", "reason": "Issuing"}]}),
            )),
            None,
        );
        assert_eq!(waiting.status, Status::Progressing);
        assert_eq!(waiting.message, "not Ready: Issuing");
        let ready = health(
            Some(&cr(
                json!({"conditions": [{"type": "Ready", "status": "True"}]}),
            )),
            None,
        );
        assert_eq!(ready.status, Status::Healthy);
        // Built-in kinds keep their own rules (a ConfigMap has no status).
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
        assert_eq!(health(Some(&cm), None).status, Status::Healthy);
    }
}

//! The Job controller, as Kubernetes' `job_controller.go` (NonIndexed and Indexed modes).
//!
//! Keeps `min(parallelism, completions − succeeded)` pods active; a Job without
//! `completions` keeps `parallelism` pods until one succeeds. Failed pods (and container
//! restarts under `restartPolicy: OnFailure`) count against `backoffLimit`; after a failure
//! new pods wait Kubernetes' back-off (10 s doubling to 6 min). The Job fails with
//! `BackoffLimitExceeded` when failures exceed the limit and with `DeadlineExceeded` when
//! it runs longer than `activeDeadlineSeconds`; either way its active pods are deleted.
//! `suspend` deletes active pods and stops the clock; `ttlSecondsAfterFinished` deletes a
//! finished Job. An Indexed Job runs one successful pod per index `0..completions`, the
//! lowest free indexes first, and reports them in `completedIndexes`.

use serde_json::{Value, json};

use super::replicaset::{pod_from_template, pods_by_owner, ready_since};
use super::{Change, Changes};
use crate::engine::clock::{Millis, SECOND, parse_rfc3339, rfc3339};
use crate::engine::doc;
use crate::engine::events::NewEvent;
use crate::engine::store::State;

/// Most pods created in one pass (the controller manager's burst).
pub const BURST_PODS: usize = 500;

/// First pod re-creation delay after a failure (`DefaultJobPodFailureBackOff`).
pub const BACKOFF_BASE: Millis = 10 * SECOND;
/// Longest re-creation delay (`MaxJobPodFailureBackOff`).
pub const BACKOFF_MAX: Millis = 360 * SECOND;

/// The re-creation delay after `failures` failures in a row.
pub fn failure_backoff(failures: i64) -> Millis {
    if failures <= 0 {
        return 0;
    }
    let mut d = BACKOFF_BASE;
    for _ in 1..failures {
        d *= 2;
        if d >= BACKOFF_MAX {
            return BACKOFF_MAX;
        }
    }
    d
}

/// A condition of a Job by type, when its status is True.
pub fn condition_true<'a>(job: &'a Value, kind: &str) -> Option<&'a Value> {
    doc::at(job, &["status", "conditions"])?
        .as_array()?
        .iter()
        .find(|c| doc::str_at(c, &["type"]) == kind && doc::str_at(c, &["status"]) == "True")
}

/// Whether the Job has finished (Complete or Failed), and when.
pub fn finished(job: &Value) -> Option<(&'static str, Millis)> {
    for kind in ["Complete", "Failed"] {
        if let Some(c) = condition_true(job, kind) {
            let at = parse_rfc3339(doc::str_at(c, &["lastTransitionTime"])).unwrap_or(0);
            return Some((kind, at));
        }
    }
    None
}

fn restarts(pod: &Value) -> i64 {
    doc::at(pod, &["status", "containerStatuses"])
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|c| doc::i64_at(c, &["restartCount"]).unwrap_or(0))
                .sum()
        })
        .unwrap_or(0)
}

fn finished_at(pod: &Value) -> Option<Millis> {
    doc::at(pod, &["status", "containerStatuses"])?
        .as_array()?
        .iter()
        .filter_map(|c| {
            parse_rfc3339(doc::str_at(c, &["state", "terminated", "finishedAt"])).or_else(|| {
                parse_rfc3339(doc::str_at(c, &["lastState", "terminated", "finishedAt"]))
            })
        })
        .max()
}

/// The annotation and label carrying an Indexed Job pod's completion index.
pub const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";

/// The completion index of an Indexed Job's pod.
pub fn completion_index(pod: &Value) -> Option<i64> {
    doc::annotation(pod, COMPLETION_INDEX)?.parse().ok()
}

/// Kubernetes' `completedIndexes` text: `0-2,5`.
pub fn format_indexes(set: &std::collections::BTreeSet<i64>) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut iter = set.iter().copied().peekable();
    while let Some(first) = iter.next() {
        let mut last = first;
        while iter.peek() == Some(&(last + 1)) {
            last += 1;
            iter.next();
        }
        parts.push(if first == last {
            first.to_string()
        } else {
            format!("{first}-{last}")
        });
    }
    parts.join(",")
}

/// Parses `completedIndexes` (`0-2,5`).
pub fn parse_indexes(text: &str) -> std::collections::BTreeSet<i64> {
    let mut set = std::collections::BTreeSet::new();
    for part in text.split(',').filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        if let (Ok(a), Ok(b)) = (a.parse::<i64>(), b.parse::<i64>()) {
            set.extend(a..=b);
        }
    }
    set
}

/// Marks a new pod with its completion index, as the Job controller does: annotation and
/// label, hostname `<job>-<index>`, and `JOB_COMPLETION_INDEX` in every container.
fn indexed_pod(pod: &mut Value, job_name: &str, index: i64) {
    doc::map_mut(pod, &["metadata", "annotations"])
        .insert(COMPLETION_INDEX.into(), json!(index.to_string()));
    doc::map_mut(pod, &["metadata", "labels"])
        .insert(COMPLETION_INDEX.into(), json!(index.to_string()));
    doc::map_mut(pod, &["metadata"])
        .insert("generateName".into(), json!(format!("{job_name}-{index}-")));
    doc::set(
        pod,
        &["spec", "hostname"],
        json!(format!("{job_name}-{index}")),
    );
    for c in pod
        .pointer_mut("/spec/containers")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        let env = doc::map_mut(c, &[]);
        let list = env.entry("env").or_insert_with(|| json!([]));
        if let Some(a) = list.as_array_mut() {
            a.push(json!({"name": "JOB_COMPLETION_INDEX", "valueFrom": {"fieldRef": {"fieldPath": format!("metadata.annotations['{COMPLETION_INDEX}']")}}}));
        }
    }
}

/// One pass over every Job.
pub fn sync(state: &State, now: Millis, out: &mut Changes) {
    // Most clusters have none: skip indexing every pod.
    if state.kind("Job").is_empty() {
        return;
    }
    let by_owner = pods_by_owner(state);
    for stored in state.kind("Job").values() {
        let job = &stored.doc;
        if doc::is_deleting(job) {
            continue;
        }
        let pods: Vec<&Value> = by_owner.get(doc::uid(job)).cloned().unwrap_or_default();
        sync_one(state, job, &pods, now, out);
    }
}

fn condition(kind: &str, reason: &str, message: &str, now: Millis) -> Value {
    let t = rfc3339(now);
    let mut c =
        json!({"type": kind, "status": "True", "lastProbeTime": t, "lastTransitionTime": t});
    if !reason.is_empty() {
        c["reason"] = json!(reason);
        c["message"] = json!(message);
    }
    c
}

fn sync_one(state: &State, job: &Value, pods: &[&Value], now: Millis, out: &mut Changes) {
    let (ns, name) = (doc::namespace(job), doc::name(job));
    let event = |warning: bool, reason: &str, msg: String| {
        let f = if warning {
            NewEvent::warning
        } else {
            NewEvent::normal
        };
        f("job-controller", "Job", ns, name, reason, msg)
    };
    let delete = |out: &mut Changes, pod: &Value| {
        out.push(Change::Delete {
            kind: "Pod",
            namespace: ns.to_string(),
            name: doc::name(pod).to_string(),
        });
        out.event(NewEvent::normal(
            "job-controller",
            "Job",
            ns,
            name,
            "SuccessfulDelete",
            format!("Deleted pod: {}", doc::name(pod)),
        ));
    };
    if let Some((_, at)) = finished(job) {
        if let Some(ttl) = doc::i64_at(job, &["spec", "ttlSecondsAfterFinished"]) {
            let expires = at + ttl * SECOND;
            if now >= expires {
                out.push(Change::Delete {
                    kind: "Job",
                    namespace: ns.to_string(),
                    name: name.to_string(),
                });
            } else {
                out.wake_at(expires);
            }
        }
        return;
    }
    // Fields whose rules the engine does not model: said once, and the Job runs without them.
    for field in ["podFailurePolicy", "successPolicy", "backoffLimitPerIndex"] {
        if doc::at(job, &["spec", field]).is_some()
            && !super::workloads::already_reported(state, "Job", ns, name, "UnsupportedField")
        {
            out.event(event(
                true,
                "UnsupportedField",
                format!("spec.{field} is not supported yet by the engine; it is ignored"),
            ));
        }
    }
    let indexed = doc::str_at(job, &["spec", "completionMode"]) == "Indexed";
    if indexed && doc::i64_at(job, &["spec", "completions"]).is_none() {
        if !super::workloads::already_reported(state, "Job", ns, name, "InvalidIndexedJob") {
            out.event(event(
                true,
                "InvalidIndexedJob",
                "an Indexed Job needs spec.completions".into(),
            ));
        }
        return;
    }
    let mut status = job.get("status").cloned().unwrap_or_else(|| json!({}));
    let mut conditions: Vec<Value> = status
        .get("conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let active: Vec<&Value> = pods
        .iter()
        .copied()
        .filter(|p| {
            !doc::is_deleting(p)
                && !matches!(doc::str_at(p, &["status", "phase"]), "Succeeded" | "Failed")
        })
        .collect();
    let terminating = pods.iter().filter(|p| doc::is_deleting(p)).count() as i64;
    let succeeded_now = pods
        .iter()
        .filter(|p| doc::str_at(p, &["status", "phase"]) == "Succeeded")
        .count() as i64;
    let failed_pods: Vec<&Value> = pods
        .iter()
        .copied()
        .filter(|p| doc::str_at(p, &["status", "phase"]) == "Failed")
        .collect();
    // Counts never go down: pods may be collected after they were counted.
    // Indexed Jobs count each index once: the distinct indexes with a Succeeded pod.
    let mut done_indexes: std::collections::BTreeSet<i64> =
        parse_indexes(doc::str_at(job, &["status", "completedIndexes"]));
    if indexed {
        done_indexes.extend(
            pods.iter()
                .filter(|p| doc::str_at(p, &["status", "phase"]) == "Succeeded")
                .filter_map(|p| completion_index(p)),
        );
    }
    let succeeded_now = if indexed {
        done_indexes.len() as i64
    } else {
        succeeded_now
    };
    let succeeded = succeeded_now.max(doc::i64_at(job, &["status", "succeeded"]).unwrap_or(0));
    let failed =
        (failed_pods.len() as i64).max(doc::i64_at(job, &["status", "failed"]).unwrap_or(0));
    let restart_failures: i64 = active.iter().map(|p| restarts(p)).sum();
    let completions = doc::i64_at(job, &["spec", "completions"]);
    let parallelism = doc::i64_at(job, &["spec", "parallelism"])
        .unwrap_or(1)
        .max(0);
    let backoff_limit = doc::i64_at(job, &["spec", "backoffLimit"]).unwrap_or(6);
    let suspended = doc::at(job, &["spec", "suspend"]).and_then(Value::as_bool) == Some(true);
    let was_suspended = conditions
        .iter()
        .any(|c| doc::str_at(c, &["type"]) == "Suspended" && doc::str_at(c, &["status"]) == "True");
    let mut finish: Option<(&str, &str, String)> = None;
    if suspended {
        for p in &active {
            delete(out, p);
        }
        if !was_suspended {
            conditions.retain(|c| doc::str_at(c, &["type"]) != "Suspended");
            conditions.push(condition("Suspended", "JobSuspended", "Job suspended", now));
            out.event(event(false, "Suspended", "Job suspended".into()));
            if let Some(m) = status.as_object_mut() {
                m.remove("startTime");
            }
        }
    } else {
        if was_suspended {
            for c in conditions.iter_mut() {
                if doc::str_at(c, &["type"]) == "Suspended" {
                    *c = json!({"type": "Suspended", "status": "False", "reason": "JobResumed",
                        "message": "Job resumed", "lastProbeTime": rfc3339(now), "lastTransitionTime": rfc3339(now)});
                }
            }
            out.event(event(false, "Resumed", "Job resumed".into()));
        }
        if status.get("startTime").is_none() {
            status["startTime"] = json!(rfc3339(now));
        }
        let start = parse_rfc3339(doc::str_at(&status, &["startTime"])).unwrap_or(now);
        let complete = match completions {
            Some(c) => succeeded >= c,
            None => succeeded > 0 && active.is_empty(),
        };
        if complete {
            finish = Some(("Complete", "", String::new()));
        } else if failed + restart_failures > backoff_limit {
            finish = Some((
                "Failed",
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit".into(),
            ));
        } else if let Some(deadline) = doc::i64_at(job, &["spec", "activeDeadlineSeconds"]) {
            let ends = start + deadline * SECOND;
            if now >= ends {
                finish = Some((
                    "Failed",
                    "DeadlineExceeded",
                    "Job was active longer than specified deadline".into(),
                ));
            } else {
                out.wake_at(ends);
            }
        }
        match &finish {
            Some(_) => {
                for p in &active {
                    delete(out, p);
                }
            }
            None => {
                let want = match completions {
                    Some(c) => (c - succeeded).min(parallelism),
                    // Without completions, once one pod succeeded no new pods start.
                    None if succeeded > 0 => 0,
                    None => parallelism,
                }
                .max(0) as usize;
                if active.len() < want {
                    let last_failure = failed_pods.iter().filter_map(|p| finished_at(p)).max();
                    let ready_at = last_failure.map_or(now, |t| t + failure_backoff(failed));
                    if ready_at > now {
                        out.wake_at(ready_at);
                    } else {
                        let template = doc::at(job, &["spec", "template"])
                            .cloned()
                            .unwrap_or(Value::Null);
                        // Indexed: the lowest indexes neither done nor running.
                        let running: std::collections::BTreeSet<i64> =
                            active.iter().filter_map(|p| completion_index(p)).collect();
                        let mut free = (0..completions.unwrap_or(0))
                            .filter(|i| !done_indexes.contains(i) && !running.contains(i));
                        for _ in 0..(want - active.len()).min(BURST_PODS) {
                            let mut pod = pod_from_template(job, &template, name);
                            if indexed {
                                let Some(index) = free.next() else { break };
                                indexed_pod(&mut pod, name, index);
                            }
                            let labels = doc::map_mut(&mut pod, &["metadata", "labels"]);
                            labels.insert(
                                "batch.kubernetes.io/controller-uid".into(),
                                json!(doc::uid(job)),
                            );
                            labels.insert("controller-uid".into(), json!(doc::uid(job)));
                            out.push(Change::Create {
                                kind: "Pod",
                                doc: pod,
                                sim: None,
                                owner: Some(("Job", ns.to_string(), name.to_string())),
                            });
                        }
                    }
                } else if active.len() > want {
                    // Parallelism lowered: the newest pods go.
                    let mut extra = active.clone();
                    extra.sort_by_key(|p| {
                        std::cmp::Reverse(
                            doc::str_at(p, &["metadata", "creationTimestamp"]).to_string(),
                        )
                    });
                    for p in extra.into_iter().take(active.len() - want) {
                        delete(out, p);
                    }
                }
            }
        }
    }
    let ready = active.iter().filter(|p| ready_since(p).is_some()).count() as i64;
    let active_count = if finish.is_some() || suspended {
        0
    } else {
        active.len() as i64
    };
    if let Some((kind, reason, message)) = &finish {
        conditions.push(condition(kind, reason, message, now));
        if *kind == "Complete" {
            status["completionTime"] = json!(rfc3339(now));
            out.event(event(false, "Completed", "Job completed".into()));
        } else {
            out.event(event(true, reason, message.clone()));
        }
    }
    let set = |status: &mut Value, key: &str, v: i64| {
        if let Some(m) = status.as_object_mut() {
            if v > 0 {
                m.insert(key.into(), json!(v));
            } else {
                m.remove(key);
            }
        }
    };
    set(&mut status, "active", active_count);
    if indexed {
        status["completedIndexes"] = json!(format_indexes(&done_indexes));
    }
    set(&mut status, "succeeded", succeeded);
    set(&mut status, "failed", failed);
    set(&mut status, "terminating", terminating);
    status["ready"] = json!(if active_count > 0 { ready } else { 0 });
    if conditions.is_empty() {
        if let Some(m) = status.as_object_mut() {
            m.remove("conditions");
        }
    } else {
        status["conditions"] = Value::Array(conditions);
    }
    if job.get("status") != Some(&status) {
        let mut next = job.clone();
        doc::set(&mut next, &["status"], status);
        out.update("Job", next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completed_indexes_round_trip() {
        let set = parse_indexes("0-2,5,7-8");
        assert_eq!(set.iter().copied().collect::<Vec<_>>(), [0, 1, 2, 5, 7, 8]);
        assert_eq!(format_indexes(&set), "0-2,5,7-8");
        assert_eq!(format_indexes(&parse_indexes("")), "");
    }

    #[test]
    fn backoff_doubles_from_ten_seconds_to_six_minutes() {
        let table = [
            (0, 0),
            (1, 10),
            (2, 20),
            (3, 40),
            (4, 80),
            (5, 160),
            (6, 320),
            (7, 360),
            (20, 360),
        ];
        for (failures, secs) in table {
            assert_eq!(
                failure_backoff(failures),
                secs * SECOND,
                "after {failures} failures"
            );
        }
    }
}

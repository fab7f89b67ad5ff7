//! Deployments, ReplicaSets, DaemonSets, StatefulSets, Jobs, CronJobs and
//! HorizontalPodAutoscalers.

use serde_json::Value;

use super::pod::template;
use super::{
    Ctx, Text, annotations_multiline, bool_ptr, controlled_by, events, format_labels,
    format_selector, labels_multiline, name_and_namespace, pod_counts, scalar, timestamp,
};
use super::{conditions_table, text_column};
use crate::engine::clock::{human_age, parse_rfc3339};
use crate::engine::doc;

const REVISION: &str = "deployment.kubernetes.io/revision";

fn labels_and_annotations(o: &Value, t: &mut Text) {
    labels_multiline(t, "Labels", doc::labels(o));
    annotations_multiline(t, "Annotations", doc::at(o, &["metadata", "annotations"]));
}

fn creation(o: &Value, t: &mut Text) {
    t.field(
        0,
        "CreationTimestamp",
        timestamp(o, &["metadata", "creationTimestamp"]).unwrap_or_default(),
    );
}

fn int(o: &Value, path: &[&str]) -> i64 {
    doc::i64_at(o, path).unwrap_or(0)
}

/// `Type Status Reason` conditions of Deployments and ReplicaSets.
fn short_conditions(o: &Value, t: &mut Text) {
    let conditions = doc::at(o, &["status", "conditions"])
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if conditions.is_empty() {
        return;
    }
    t.w(0, "Conditions:\n  Type\tStatus\tReason\n");
    t.w(1, "----\t------\t------\n");
    for c in &conditions {
        t.w(
            1,
            &format!(
                "{} \t{}\t{}\n",
                doc::str_at(c, &["type"]),
                doc::str_at(c, &["status"]),
                doc::str_at(c, &["reason"])
            ),
        );
    }
}

fn pods_status(ctx: &Ctx<'_>, o: &Value, t: &mut Text) {
    let (running, waiting, succeeded, failed) = pod_counts(ctx, o);
    t.field(
        0,
        "Pods Status",
        format!("{running} Running / {waiting} Waiting / {succeeded} Succeeded / {failed} Failed"),
    );
}

/// `describeDeployment`.
pub(super) fn deployment(ctx: &Ctx<'_>, o: &Value, t: &mut Text) {
    name_and_namespace(o, t);
    creation(o, t);
    labels_and_annotations(o, t);
    t.field(
        0,
        "Selector",
        format_selector(doc::at(o, &["spec", "selector"])),
    );
    t.field(
        0,
        "Replicas",
        format!(
            "{} desired | {} updated | {} total | {} available | {} unavailable",
            doc::i64_at(o, &["spec", "replicas"]).unwrap_or(1),
            int(o, &["status", "updatedReplicas"]),
            int(o, &["status", "replicas"]),
            int(o, &["status", "availableReplicas"]),
            int(o, &["status", "unavailableReplicas"])
        ),
    );
    let strategy = match doc::str_at(o, &["spec", "strategy", "type"]) {
        "" => "RollingUpdate",
        s => s,
    };
    t.field(0, "StrategyType", strategy);
    t.field(0, "MinReadySeconds", int(o, &["spec", "minReadySeconds"]));
    if strategy == "RollingUpdate" {
        let ru = |f: &str| match doc::at(o, &["spec", "strategy", "rollingUpdate", f]) {
            Some(v) => scalar(Some(v)),
            None => "25%".into(),
        };
        t.field(
            0,
            "RollingUpdateStrategy",
            format!(
                "{} max unavailable, {} max surge",
                ru("maxUnavailable"),
                ru("maxSurge")
            ),
        );
    }
    template(t, doc::at(o, &["spec", "template"]));
    short_conditions(o, t);
    // The new ReplicaSet carries the Deployment's revision; every other one it owns is old.
    let revision = doc::annotation(o, REVISION).unwrap_or_default();
    let (mut new, mut old) = (Vec::new(), Vec::new());
    for stored in ctx.state.in_namespace("ReplicaSet", doc::namespace(o)) {
        let rs = &stored.doc;
        if doc::controller_uid(rs) != Some(doc::uid(o)) {
            continue;
        }
        let text = format!(
            "{} ({}/{} replicas created)",
            doc::name(rs),
            int(rs, &["status", "replicas"]),
            int(rs, &["spec", "replicas"])
        );
        if !revision.is_empty() && doc::annotation(rs, REVISION) == Some(revision) {
            new.push(text);
        } else {
            old.push(text);
        }
    }
    if !new.is_empty() || !old.is_empty() {
        let list = |v: &[String]| {
            if v.is_empty() {
                "<none>".to_string()
            } else {
                v.join(", ")
            }
        };
        t.field(0, "OldReplicaSets", list(&old));
        t.field(0, "NewReplicaSet", list(&new));
    }
    events(ctx, "Deployment", o, t);
}

/// `describeReplicaSet`.
pub(super) fn replica_set(ctx: &Ctx<'_>, o: &Value, t: &mut Text) {
    name_and_namespace(o, t);
    t.field(
        0,
        "Selector",
        format_selector(doc::at(o, &["spec", "selector"])),
    );
    labels_and_annotations(o, t);
    if let Some(owner) = controlled_by(o) {
        t.field(0, "Controlled By", owner);
    }
    t.field(
        0,
        "Replicas",
        format!(
            "{} current / {} desired",
            int(o, &["status", "replicas"]),
            doc::i64_at(o, &["spec", "replicas"]).unwrap_or(1)
        ),
    );
    pods_status(ctx, o, t);
    template(t, doc::at(o, &["spec", "template"]));
    short_conditions(o, t);
    events(ctx, "ReplicaSet", o, t);
}

/// `describeDaemonSet`.
pub(super) fn daemon_set(ctx: &Ctx<'_>, o: &Value, t: &mut Text) {
    name_and_namespace(o, t);
    t.field(
        0,
        "Selector",
        format_selector(doc::at(o, &["spec", "selector"])),
    );
    t.field(
        0,
        "Node-Selector",
        format_labels(doc::at(o, &["spec", "template", "spec", "nodeSelector"])),
    );
    labels_and_annotations(o, t);
    for (title, field) in [
        (
            "Desired Number of Nodes Scheduled",
            "desiredNumberScheduled",
        ),
        (
            "Current Number of Nodes Scheduled",
            "currentNumberScheduled",
        ),
        (
            "Number of Nodes Scheduled with Up-to-date Pods",
            "updatedNumberScheduled",
        ),
        (
            "Number of Nodes Scheduled with Available Pods",
            "numberAvailable",
        ),
        ("Number of Nodes Misscheduled", "numberMisscheduled"),
    ] {
        t.w(0, &format!("{title}: {}\n", int(o, &["status", field])));
    }
    pods_status(ctx, o, t);
    template(t, doc::at(o, &["spec", "template"]));
    events(ctx, "DaemonSet", o, t);
}

/// `describeStatefulSet`.
pub(super) fn stateful_set(ctx: &Ctx<'_>, o: &Value, t: &mut Text) {
    name_and_namespace(o, t);
    creation(o, t);
    t.field(
        0,
        "Selector",
        format_selector(doc::at(o, &["spec", "selector"])),
    );
    labels_and_annotations(o, t);
    let service = doc::str_at(o, &["spec", "serviceName"]);
    if !service.is_empty() {
        t.field(0, "Service Name", service);
    }
    let policy = doc::str_at(o, &["spec", "podManagementPolicy"]);
    if !policy.is_empty() {
        t.field(0, "Pod Management Policy", policy);
    }
    t.field(
        0,
        "Replicas",
        format!(
            "{} desired | {} total",
            doc::i64_at(o, &["spec", "replicas"]).unwrap_or(1),
            int(o, &["status", "replicas"])
        ),
    );
    t.field(
        0,
        "Update Strategy",
        doc::str_at(o, &["spec", "updateStrategy", "type"]),
    );
    if let Some(ru) = doc::at(o, &["spec", "updateStrategy", "rollingUpdate"])
        && let Some(partition) = doc::i64_at(ru, &["partition"])
    {
        t.field(1, "Partition", partition);
        if let Some(max) = ru.get("maxUnavailable") {
            t.field(1, "MaxUnavailable", scalar(Some(max)));
        }
    }
    if let Some(policy) = doc::at(o, &["spec", "persistentVolumeClaimRetentionPolicy"]) {
        t.w(0, "Persistent Volume Claim Retention Policy:\n");
        t.field(1, "WhenDeleted", doc::str_at(policy, &["whenDeleted"]));
        t.field(1, "WhenScaled", doc::str_at(policy, &["whenScaled"]));
    }
    pods_status(ctx, o, t);
    template(t, doc::at(o, &["spec", "template"]));
    let claims = doc::at(o, &["spec", "volumeClaimTemplates"])
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if claims.is_empty() {
        t.w(0, "Volume Claims:\t<none>\n");
    } else {
        t.w(0, "Volume Claims:\n");
        for pvc in &claims {
            t.field(1, "Name", doc::name(pvc));
            t.field(
                1,
                "StorageClass",
                doc::str_at(pvc, &["spec", "storageClassName"]),
            );
            labels_multiline(t, "  Labels", doc::labels(pvc));
            labels_multiline(
                t,
                "  Annotations",
                doc::at(pvc, &["metadata", "annotations"]),
            );
            let capacity = match doc::at(pvc, &["spec", "resources", "requests", "storage"]) {
                Some(v) => scalar(Some(v)),
                None => "<default>".into(),
            };
            t.field(1, "Capacity", capacity);
            let modes: Vec<String> = doc::at(pvc, &["spec", "accessModes"])
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|m| scalar(Some(m)))
                .collect();
            t.field(1, "Access Modes", format!("[{}]", modes.join(" ")));
        }
    }
    events(ctx, "StatefulSet", o, t);
}

/// `describeJob`.
pub(super) fn job(ctx: &Ctx<'_>, o: &Value, t: &mut Text) {
    name_and_namespace(o, t);
    t.field(
        0,
        "Selector",
        format_selector(doc::at(o, &["spec", "selector"])),
    );
    labels_and_annotations(o, t);
    if let Some(owner) = controlled_by(o) {
        t.field(0, "Controlled By", owner);
    }
    if let Some(p) = doc::i64_at(o, &["spec", "parallelism"]) {
        t.field(0, "Parallelism", p);
    }
    match doc::i64_at(o, &["spec", "completions"]) {
        Some(c) => t.field(0, "Completions", c),
        None => t.field(0, "Completions", "<unset>"),
    }
    let mode = doc::str_at(o, &["spec", "completionMode"]);
    if !mode.is_empty() {
        t.field(0, "Completion Mode", mode);
    }
    if let Some(suspend) = doc::at(o, &["spec", "suspend"]).and_then(Value::as_bool) {
        t.field(0, "Suspend", suspend);
    }
    if let Some(limit) = doc::i64_at(o, &["spec", "backoffLimit"]) {
        t.field(0, "Backoff Limit", limit);
    }
    if let Some(ttl) = doc::i64_at(o, &["spec", "ttlSecondsAfterFinished"]) {
        t.field(0, "TTL Seconds After Finished", ttl);
    }
    let start = parse_rfc3339(doc::str_at(o, &["status", "startTime"]));
    let end = parse_rfc3339(doc::str_at(o, &["status", "completionTime"]));
    if let Some(s) = start {
        t.field(0, "Start Time", super::rfc1123z(s));
    }
    if let Some(e) = end {
        t.field(0, "Completed At", super::rfc1123z(e));
    }
    if let (Some(s), Some(e)) = (start, end) {
        t.field(0, "Duration", human_age(e - s));
    }
    if let Some(deadline) = doc::i64_at(o, &["spec", "activeDeadlineSeconds"]) {
        t.field(0, "Active Deadline Seconds", format!("{deadline}s"));
    }
    let (active, succeeded, failed) = (
        int(o, &["status", "active"]),
        int(o, &["status", "succeeded"]),
        int(o, &["status", "failed"]),
    );
    match doc::i64_at(o, &["status", "ready"]) {
        None => t.field(
            0,
            "Pods Statuses",
            format!("{active} Active / {succeeded} Succeeded / {failed} Failed"),
        ),
        Some(ready) => t.field(
            0,
            "Pods Statuses",
            format!("{active} Active ({ready} Ready) / {succeeded} Succeeded / {failed} Failed"),
        ),
    }
    template(t, doc::at(o, &["spec", "template"]));
    events(ctx, "Job", o, t);
}

/// `describeCronJob`.
pub(super) fn cron_job(ctx: &Ctx<'_>, o: &Value, t: &mut Text) {
    name_and_namespace(o, t);
    labels_and_annotations(o, t);
    t.field(0, "Schedule", doc::str_at(o, &["spec", "schedule"]));
    t.field(
        0,
        "Concurrency Policy",
        match doc::str_at(o, &["spec", "concurrencyPolicy"]) {
            "" => "Allow",
            p => p,
        },
    );
    t.field(0, "Suspend", bool_ptr(doc::at(o, &["spec", "suspend"])));
    let or_unset = |path: &[&str], suffix: &str| match doc::at(o, path) {
        Some(v) if !v.is_null() => format!("{}{suffix}", scalar(Some(v))),
        _ => "<unset>".into(),
    };
    t.field(0, "Time Zone", or_unset(&["spec", "timeZone"], ""));
    t.field(
        0,
        "Successful Job History Limit",
        or_unset(&["spec", "successfulJobsHistoryLimit"], ""),
    );
    t.field(
        0,
        "Failed Job History Limit",
        or_unset(&["spec", "failedJobsHistoryLimit"], ""),
    );
    t.field(
        0,
        "Starting Deadline Seconds",
        or_unset(&["spec", "startingDeadlineSeconds"], "s"),
    );
    let job_spec = doc::at(o, &["spec", "jobTemplate", "spec"]).unwrap_or(&Value::Null);
    match job_spec.get("selector") {
        Some(sel) => t.field(0, "Selector", format_selector(Some(sel))),
        None => t.field(0, "Selector", "<unset>"),
    }
    for (title, field) in [
        ("Parallelism", "parallelism"),
        ("Completions", "completions"),
    ] {
        match doc::i64_at(job_spec, &[field]) {
            Some(n) => t.field(0, title, n),
            None => t.field(0, title, "<unset>"),
        }
    }
    if let Some(deadline) = doc::i64_at(job_spec, &["activeDeadlineSeconds"]) {
        t.field(0, "Active Deadline Seconds", format!("{deadline}s"));
    }
    template(t, job_spec.get("template"));
    t.field(
        0,
        "Last Schedule Time",
        timestamp(o, &["status", "lastScheduleTime"]).unwrap_or_else(|| "<unset>".into()),
    );
    let active: Vec<&str> = doc::at(o, &["status", "active"])
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|r| doc::str_at(r, &["name"]))
        .collect();
    t.field(
        0,
        "Active Jobs",
        if active.is_empty() {
            "<none>".to_string()
        } else {
            active.join(", ")
        },
    );
    events(ctx, "CronJob", o, t);
}

/// `describeHorizontalPodAutoscalerV2`.
pub(super) fn hpa(ctx: &Ctx<'_>, o: &Value, t: &mut Text) {
    name_and_namespace(o, t);
    labels_and_annotations(o, t);
    creation(o, t);
    let target_kind = doc::str_at(o, &["spec", "scaleTargetRef", "kind"]);
    t.field(
        0,
        "Reference",
        format!(
            "{target_kind}/{}",
            doc::str_at(o, &["spec", "scaleTargetRef", "name"])
        ),
    );
    t.field(0, "Metrics", "( current / target )");
    let current = doc::at(o, &["status", "currentMetrics"])
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let metrics = doc::at(o, &["spec", "metrics"])
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for (i, m) in metrics.iter().enumerate() {
        let now = current.get(i);
        match doc::str_at(m, &["type"]) {
            "Resource" => {
                let name = doc::str_at(m, &["resource", "name"]);
                t.w(1, &format!("resource {name} on pods"));
                let target = doc::at(m, &["resource", "target"]).unwrap_or(&Value::Null);
                if let Some(avg) = target.get("averageValue") {
                    let cur = now
                        .and_then(|c| doc::at(c, &["resource", "current", "averageValue"]))
                        .map_or("<unknown>".to_string(), |v| scalar(Some(v)));
                    t.w(0, &format!(":\t{cur} / {}\n", scalar(Some(avg))));
                } else {
                    let cur = now
                        .and_then(|c| {
                            let u = doc::i64_at(c, &["resource", "current", "averageUtilization"])?;
                            let v = scalar(doc::at(c, &["resource", "current", "averageValue"]));
                            Some(format!("{u}% ({v})"))
                        })
                        .unwrap_or_else(|| "<unknown>".into());
                    let target = doc::i64_at(target, &["averageUtilization"])
                        .map_or("<auto>".to_string(), |u| format!("{u}%"));
                    t.w(
                        1,
                        &format!("(as a percentage of request):\t{cur} / {target}\n"),
                    );
                }
            }
            other => t.w(1, &format!("<unknown metric type {other:?}>\n")),
        }
    }
    t.field(
        0,
        "Min replicas",
        doc::i64_at(o, &["spec", "minReplicas"]).map_or("<unset>".to_string(), |n| n.to_string()),
    );
    t.field(0, "Max replicas", int(o, &["spec", "maxReplicas"]));
    if let Some(behavior) = doc::at(o, &["spec", "behavior"]) {
        t.w(0, "Behavior:\n");
        for (title, field) in [("Scale Up", "scaleUp"), ("Scale Down", "scaleDown")] {
            let Some(rules) = behavior.get(field) else {
                continue;
            };
            t.w(1, &format!("{title}:\n"));
            if let Some(window) = doc::i64_at(rules, &["stabilizationWindowSeconds"]) {
                t.w(2, &format!("Stabilization Window: {window} seconds\n"));
            }
            let policies = rules
                .get("policies")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if !policies.is_empty() {
                let select = match doc::str_at(rules, &["selectPolicy"]) {
                    "" => "Max",
                    s => s,
                };
                t.w(2, &format!("Select Policy: {select}\n"));
                t.w(2, "Policies:\n");
                for p in &policies {
                    t.w(
                        3,
                        &format!(
                            "- Type: {}\tValue: {}\tPeriod: {} seconds\n",
                            doc::str_at(p, &["type"]),
                            int(p, &["value"]),
                            int(p, &["periodSeconds"])
                        ),
                    );
                }
            }
        }
    }
    t.w(0, &format!("{target_kind} pods:\t"));
    t.w(
        0,
        &format!(
            "{} current / {} desired\n",
            int(o, &["status", "currentReplicas"]),
            int(o, &["status", "desiredReplicas"])
        ),
    );
    conditions_table(
        o,
        &[
            text_column("Type", "type"),
            text_column("Status", "status"),
            text_column("Reason", "reason"),
            text_column("Message", "message"),
        ],
        false,
        t,
    );
    events(ctx, "HorizontalPodAutoscaler", o, t);
}

//! Nodes, Namespaces, ResourceQuotas and LimitRanges.

use serde_json::Value;

use super::{ConditionColumn, conditions_table, text_column};
use super::{
    Ctx, Text, annotations_multiline, events, labels_multiline, name_and_namespace, scalar, since,
    sorted_entries, timestamp,
};
use crate::engine::controllers::replicaset::is_active;
use crate::engine::doc;
use crate::engine::scheduler::pod_requests;

/// `describeNode`.
pub(super) fn node(ctx: &Ctx<'_>, o: &Value, t: &mut Text) {
    t.field(0, "Name", doc::name(o));
    let mut roles: Vec<String> = sorted_entries(doc::labels(o))
        .into_iter()
        .filter_map(|(k, _)| k.strip_prefix("node-role.kubernetes.io/").map(String::from))
        .collect();
    roles.sort();
    t.field(
        0,
        "Roles",
        if roles.is_empty() {
            "<none>".to_string()
        } else {
            roles.join(",")
        },
    );
    labels_multiline(t, "Labels", doc::labels(o));
    annotations_multiline(t, "Annotations", doc::at(o, &["metadata", "annotations"]));
    t.field(
        0,
        "CreationTimestamp",
        timestamp(o, &["metadata", "creationTimestamp"]).unwrap_or_default(),
    );
    let mut taints: Vec<(String, String)> = doc::at(o, &["spec", "taints"])
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|taint| {
            let key = doc::str_at(taint, &["key"]);
            let value = doc::str_at(taint, &["value"]);
            let effect = doc::str_at(taint, &["effect"]);
            let text = if value.is_empty() {
                format!("{key}:{effect}")
            } else {
                format!("{key}={value}:{effect}")
            };
            (format!("{effect},{key}"), text)
        })
        .collect();
    taints.sort();
    t.w(0, "Taints:\t");
    if taints.is_empty() {
        t.w(0, "<none>\n");
    }
    for (i, (_, text)) in taints.iter().enumerate() {
        if i > 0 {
            t.w(0, "\t");
        }
        t.w(0, &format!("{text}\n"));
    }
    t.field(
        0,
        "Unschedulable",
        super::flag(o, &["spec", "unschedulable"]),
    );
    conditions_table(
        o,
        &[
            text_column("Type", "type"),
            text_column("Status", "status"),
            ConditionColumn {
                header: "LastHeartbeatTime",
                dashes: "-----------------",
                field: "lastHeartbeatTime",
                time: true,
            },
            ConditionColumn {
                header: "LastTransitionTime",
                dashes: "------------------",
                field: "lastTransitionTime",
                time: true,
            },
            text_column("Reason", "reason"),
            text_column("Message", "message"),
        ],
        true,
        t,
    );
    t.w(0, "Addresses:\n");
    for a in doc::at(o, &["status", "addresses"])
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        t.field(1, doc::str_at(a, &["type"]), doc::str_at(a, &["address"]));
    }
    for (title, field) in [("Capacity", "capacity"), ("Allocatable", "allocatable")] {
        let entries = sorted_entries(doc::at(o, &["status", field]));
        if !entries.is_empty() {
            t.w(0, &format!("{title}:\n"));
            for (k, v) in entries {
                t.field(1, &k, v);
            }
        }
    }
    t.w(0, "System Info:\n");
    for (title, field) in [
        ("Machine ID", "machineID"),
        ("System UUID", "systemUUID"),
        ("Boot ID", "bootID"),
        ("Kernel Version", "kernelVersion"),
        ("OS Image", "osImage"),
        ("Operating System", "operatingSystem"),
        ("Architecture", "architecture"),
        ("Container Runtime Version", "containerRuntimeVersion"),
        ("Kubelet Version", "kubeletVersion"),
    ] {
        t.field(1, title, doc::str_at(o, &["status", "nodeInfo", field]));
    }
    let cidr = doc::str_at(o, &["spec", "podCIDR"]);
    if !cidr.is_empty() {
        t.field(0, "PodCIDR", cidr);
    }
    let cidrs: Vec<String> = doc::at(o, &["spec", "podCIDRs"])
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| scalar(Some(c)))
        .collect();
    if !cidrs.is_empty() {
        t.field(0, "PodCIDRs", cidrs.join(","));
    }
    node_resources(ctx, o, t);
    events(ctx, "Node", o, t);
}

/// Limits of a pod's containers: (cpu millicores, memory bytes).
fn pod_limits(pod: &Value) -> (i64, i64) {
    let mut total = (0, 0);
    for c in doc::at(pod, &["spec", "containers"])
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        total.0 += doc::at(c, &["resources", "limits", "cpu"])
            .and_then(doc::cpu_millis)
            .unwrap_or(0);
        total.1 += doc::at(c, &["resources", "limits", "memory"])
            .and_then(doc::bytes)
            .unwrap_or(0);
    }
    total
}

fn percent(part: i64, whole: i64) -> i64 {
    if whole == 0 {
        0
    } else {
        (part as f64 / whole as f64 * 100.0) as i64
    }
}

/// `describeNodeResource`: the node's non-terminated pods and what they request.
fn node_resources(ctx: &Ctx<'_>, o: &Value, t: &mut Text) {
    let name = doc::name(o);
    let mut pods: Vec<&Value> = ctx
        .state
        .kind("Pod")
        .values()
        .map(|s| &s.doc)
        .filter(|p| doc::str_at(p, &["spec", "nodeName"]) == name && is_active(p))
        .collect();
    pods.sort_by(|a, b| (doc::namespace(a), doc::name(a)).cmp(&(doc::namespace(b), doc::name(b))));
    let allocatable = doc::at(o, &["status", "allocatable"])
        .filter(|a| a.as_object().is_some_and(|m| !m.is_empty()))
        .or_else(|| doc::at(o, &["status", "capacity"]));
    let alloc_cpu = allocatable
        .and_then(|a| a.get("cpu"))
        .and_then(doc::cpu_millis)
        .unwrap_or(0);
    let alloc_mem = allocatable
        .and_then(|a| a.get("memory"))
        .and_then(doc::bytes)
        .unwrap_or(0);
    t.field(
        0,
        "Non-terminated Pods",
        format!("({} in total)", pods.len()),
    );
    t.w(
        1,
        "Namespace\tName\t\tCPU Requests\tCPU Limits\tMemory Requests\tMemory Limits\tAge\n",
    );
    t.w(
        1,
        "---------\t----\t\t------------\t----------\t---------------\t-------------\t---\n",
    );
    let (mut total_req, mut total_lim) = ((0, 0), (0, 0));
    for p in &pods {
        let req = pod_requests(p, false);
        let lim = pod_limits(p);
        total_req = (total_req.0 + req.0, total_req.1 + req.1);
        total_lim = (total_lim.0 + lim.0, total_lim.1 + lim.1);
        t.w(
            1,
            &format!(
                "{}\t{}\t\t{} ({}%)\t{} ({}%)\t{} ({}%)\t{} ({}%)\t{}\n",
                doc::namespace(p),
                doc::name(p),
                doc::format_cpu(req.0),
                percent(req.0, alloc_cpu),
                doc::format_cpu(lim.0),
                percent(lim.0, alloc_cpu),
                doc::format_bytes(req.1),
                percent(req.1, alloc_mem),
                doc::format_bytes(lim.1),
                percent(lim.1, alloc_mem),
                since(ctx, p, &["metadata", "creationTimestamp"])
            ),
        );
    }
    t.w(
        0,
        "Allocated resources:\n  (Total limits may be over 100 percent, i.e., overcommitted.)\n",
    );
    t.w(1, "Resource\tRequests\tLimits\n");
    t.w(1, "--------\t--------\t------\n");
    t.w(
        1,
        &format!(
            "cpu\t{} ({}%)\t{} ({}%)\n",
            doc::format_cpu(total_req.0),
            percent(total_req.0, alloc_cpu),
            doc::format_cpu(total_lim.0),
            percent(total_lim.0, alloc_cpu)
        ),
    );
    t.w(
        1,
        &format!(
            "memory\t{} ({}%)\t{} ({}%)\n",
            doc::format_bytes(total_req.1),
            percent(total_req.1, alloc_mem),
            doc::format_bytes(total_lim.1),
            percent(total_lim.1, alloc_mem)
        ),
    );
    t.w(1, "ephemeral-storage\t0 (0%)\t0 (0%)\n");
}

/// `describeNamespace`, with the quotas and limit ranges inside it.
pub(super) fn namespace(ctx: &Ctx<'_>, o: &Value, t: &mut Text) {
    t.field(0, "Name", doc::name(o));
    labels_multiline(t, "Labels", doc::labels(o));
    annotations_multiline(t, "Annotations", doc::at(o, &["metadata", "annotations"]));
    t.field(0, "Status", doc::str_at(o, &["status", "phase"]));
    conditions_table(
        o,
        &[
            text_column("Type", "type"),
            text_column("Status", "status"),
            ConditionColumn {
                header: "LastTransitionTime",
                dashes: "------------------",
                field: "lastTransitionTime",
                time: true,
            },
            text_column("Reason", "reason"),
            text_column("Message", "message"),
        ],
        false,
        t,
    );
    let name = doc::name(o);
    t.w(0, "\n");
    let quotas: Vec<&Value> = ctx
        .state
        .in_namespace("ResourceQuota", name)
        .map(|s| &s.doc)
        .collect();
    if quotas.is_empty() {
        t.w(0, "No resource quota.\n");
    } else {
        t.w(0, "Resource Quotas\n");
        for q in quotas {
            t.field(1, "Name", doc::name(q));
            scopes(q, 1, t);
            t.w(1, "Resource\tUsed\tHard\n");
            t.w(1, "--------\t---\t---\n");
            quota_rows(q, 1, t);
        }
    }
    t.w(0, "\n");
    let ranges: Vec<&Value> = ctx
        .state
        .in_namespace("LimitRange", name)
        .map(|s| &s.doc)
        .collect();
    if ranges.is_empty() {
        t.w(0, "No LimitRange resource.\n");
    } else {
        t.w(
            0,
            "Resource Limits\n Type\tResource\tMin\tMax\tDefault Request\tDefault Limit\tMax Limit/Request Ratio\n",
        );
        t.w(
            0,
            " ----\t--------\t---\t---\t---------------\t-------------\t-----------------------\n",
        );
        for r in ranges {
            limit_rows(r, " ", t);
        }
    }
}

fn scopes(q: &Value, level: usize, t: &mut Text) {
    let mut scopes: Vec<String> = doc::at(q, &["spec", "scopes"])
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|s| scalar(Some(s)))
        .collect();
    if scopes.is_empty() {
        return;
    }
    scopes.sort();
    t.field(level, "Scopes", scopes.join(", "));
    for scope in &scopes {
        let help = match scope.as_str() {
            "Terminating" => {
                "Matches all pods that have an active deadline. These pods have a limited lifespan on a node before being actively terminated by the system."
            }
            "NotTerminating" => {
                "Matches all pods that do not have an active deadline. These pods usually include long running pods whose container command is not expected to terminate."
            }
            "BestEffort" => {
                "Matches all pods that do not have resource requirements set. These pods have a best effort quality of service."
            }
            "NotBestEffort" => {
                "Matches all pods that have at least one resource requirement set. These pods have a burstable or guaranteed quality of service."
            }
            _ => continue,
        };
        if level == 0 {
            t.w(0, &format!(" * {help}\n"));
        } else {
            t.w(level, &format!("* {help}\n"));
        }
    }
}

fn quota_rows(q: &Value, level: usize, t: &mut Text) {
    let used = doc::at(q, &["status", "used"]);
    for (resource, hard) in sorted_entries(doc::at(q, &["status", "hard"])) {
        let used = used
            .and_then(|u| u.get(&resource))
            .map_or("0".to_string(), |v| scalar(Some(v)));
        t.w(level, &format!("{resource}\t{used}\t{hard}\n"));
    }
}

/// `describeQuota`.
pub(super) fn resource_quota(o: &Value, t: &mut Text) {
    name_and_namespace(o, t);
    scopes(o, 0, t);
    t.w(0, "Resource\tUsed\tHard\n");
    t.w(0, "--------\t----\t----\n");
    quota_rows(o, 0, t);
}

/// `describeLimitRangeSpec`: one row per limit type and resource (resources sorted; Go's map
/// order is random, so any fixed order reads the same).
fn limit_rows(o: &Value, prefix: &str, t: &mut Text) {
    for item in doc::at(o, &["spec", "limits"])
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let fields = [
            "min",
            "max",
            "defaultRequest",
            "default",
            "maxLimitRequestRatio",
        ];
        let mut resources: Vec<String> = fields
            .iter()
            .flat_map(|f| sorted_entries(item.get(*f)).into_iter().map(|(k, _)| k))
            .collect();
        resources.sort();
        resources.dedup();
        for resource in resources {
            let cell = |f: &str| {
                item.get(f)
                    .and_then(|m| m.get(&resource))
                    .map_or("-".to_string(), |v| scalar(Some(v)))
            };
            t.w(
                0,
                &format!(
                    "{prefix}{}\t{resource}\t{}\t{}\t{}\t{}\t{}\n",
                    doc::str_at(item, &["type"]),
                    cell("min"),
                    cell("max"),
                    cell("defaultRequest"),
                    cell("default"),
                    cell("maxLimitRequestRatio")
                ),
            );
        }
    }
}

/// `describeLimitRange`.
pub(super) fn limit_range(o: &Value, t: &mut Text) {
    name_and_namespace(o, t);
    t.w(
        0,
        "Type\tResource\tMin\tMax\tDefault Request\tDefault Limit\tMax Limit/Request Ratio\n",
    );
    t.w(
        0,
        "----\t--------\t---\t---\t---------------\t-------------\t-----------------------\n",
    );
    limit_rows(o, "", t);
}

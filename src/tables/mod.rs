//! kubectl's tables: `get` for every kind, `events`, and the engine's own `nodes list`; printed by
//! `engine get` and served by the API as `Table` responses (so both show the same columns).
//!
//! Columns follow kubectl's printers (`pkg/printers/internalversion/printers.go`); the extra
//! workload and storage kinds are in [`workloads`].

pub mod tabwriter;
mod workloads;

use serde_json::{Map, Value};

use crate::engine::clock::{Millis, human_age, parse_rfc3339, rfc3339};
use crate::engine::kinds::KindInfo;
use crate::engine::{Engine, doc, printer};

/// Lays rows out as kubectl's table printer does (cells joined by tabs, then aligned).
pub fn render_table(rows: &[Vec<String>]) -> String {
    let mut text = String::new();
    for row in rows {
        text.push_str(&row.join("\t"));
        text.push('\n');
    }
    tabwriter::align(&text, tabwriter::TABLE)
}

pub(crate) fn age(obj: &Value, now: Millis) -> String {
    parse_rfc3339(doc::str_at(obj, &["metadata", "creationTimestamp"]))
        .map(|t| human_age(now - t))
        .unwrap_or_else(|| "<unknown>".into())
}

pub(crate) fn num(obj: &Value, path: &[&str]) -> i64 {
    doc::i64_at(obj, path).unwrap_or(0)
}

pub(crate) fn containers_images(obj: &Value, template: &[&str]) -> (String, String) {
    let mut path: Vec<&str> = template.to_vec();
    path.push("containers");
    let list = doc::at(obj, &path)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let names: Vec<&str> = list.iter().map(|c| doc::str_at(c, &["name"])).collect();
    let images: Vec<&str> = list.iter().map(|c| doc::str_at(c, &["image"])).collect();
    (names.join(","), images.join(","))
}

pub(crate) fn selector_text(sel: Option<&Value>) -> String {
    sel.map(crate::engine::labels::Selector::from_label_selector)
        .and_then(Result::ok)
        .map(|s| s.to_text())
        .unwrap_or_default()
}

/// kubectl's STATUS column of a pod.
pub fn pod_status(pod: &Value) -> (String, usize, usize, i64) {
    let statuses = |f: &str| {
        doc::at(pod, &["status", f])
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let mut reason = doc::str_at(pod, &["status", "phase"]).to_string();
    if let Some(r) = doc::at(pod, &["status", "reason"]).and_then(Value::as_str) {
        reason = r.to_string();
    }
    let inits = statuses("initContainerStatuses");
    let init_total = doc::at(pod, &["spec", "initContainers"])
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let mut initializing = false;
    for (i, c) in inits.iter().enumerate() {
        let term = doc::at(c, &["state", "terminated"]);
        let waiting = doc::str_at(c, &["state", "waiting", "reason"]);
        if term.is_some_and(|t| doc::i64_at(t, &["exitCode"]) == Some(0)) {
            continue;
        }
        if let Some(t) = term {
            reason = format!("Init:{}", doc::str_at(t, &["reason"]));
        } else if !waiting.is_empty() && waiting != "PodInitializing" {
            reason = format!("Init:{waiting}");
        } else {
            reason = format!("Init:{i}/{init_total}");
        }
        initializing = true;
        break;
    }
    let mains = statuses("containerStatuses");
    let total = doc::at(pod, &["spec", "containers"])
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let mut ready = 0;
    let mut restarts = 0;
    let initialized = crate::engine::scheduler::pod_condition(pod, "Initialized")
        .is_some_and(|c| doc::str_at(c, &["status"]) == "True");
    if !initializing || initialized {
        let mut has_running = false;
        for c in mains.iter().rev() {
            restarts += num(c, &["restartCount"]);
            let waiting = doc::str_at(c, &["state", "waiting", "reason"]);
            let terminated = doc::str_at(c, &["state", "terminated", "reason"]);
            if !waiting.is_empty() {
                reason = waiting.to_string();
            } else if !terminated.is_empty() {
                reason = terminated.to_string();
            } else if doc::at(c, &["ready"]).and_then(Value::as_bool) == Some(true)
                && doc::at(c, &["state", "running"]).is_some()
            {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            reason = "Running".into();
        }
    }
    if doc::is_deleting(pod) {
        reason = "Terminating".into();
    }
    (reason, ready, total, restarts)
}

pub(crate) fn last_restart(pod: &Value, now: Millis) -> Option<String> {
    doc::at(pod, &["status", "containerStatuses"])
        .and_then(Value::as_array)?
        .iter()
        .filter_map(|c| parse_rfc3339(doc::str_at(c, &["lastState", "terminated", "finishedAt"])))
        .max()
        .map(|t| human_age(now - t))
}

/// How a `get` table is printed.
#[derive(Debug, Clone, Copy)]
pub struct TableOptions {
    /// A NAMESPACE column first (`-A` on a namespaced kind).
    pub with_namespace: bool,
    /// `-o wide` columns.
    pub wide: bool,
    /// Names as `deployment.apps/web` (kubectl does this when several kinds are printed).
    pub with_kind: bool,
    /// A LABELS column last (`--show-labels`).
    pub show_labels: bool,
    /// No title row (`--no-headers`).
    pub no_headers: bool,
}

/// The `get` table of `objects`, all of kind `info`.
pub fn table(info: &KindInfo, objects: &[Value], now: Millis, options: TableOptions) -> String {
    let TableOptions {
        with_namespace: with_ns,
        wide,
        with_kind,
        show_labels,
        no_headers,
    } = options;
    let mut rows: Vec<Vec<String>> = Vec::new();
    let header = header(info, wide);
    let mut head: Vec<String> = header.iter().map(|s| s.to_string()).collect();
    if with_ns {
        head.insert(0, "NAMESPACE".into());
    }
    if show_labels {
        head.push("LABELS".into());
    }
    if !no_headers {
        rows.push(head);
    }
    for o in objects {
        let mut row = cells(info, o, now, wide);
        if with_kind && let Some(first) = row.first_mut() {
            *first = format!("{}/{first}", info.resource_prefix());
        }
        if with_ns {
            row.insert(0, doc::namespace(o).to_string());
        }
        if show_labels {
            row.push(labels_text(doc::labels(o)));
        }
        rows.push(row);
    }
    render_table(&rows)
}

/// A custom kind's CRD `additionalPrinterColumns`, when it declares some.
fn custom_columns(info: &KindInfo) -> Option<Vec<printer::Column>> {
    if crate::engine::kinds::is_builtin(info) {
        return None;
    }
    printer::columns(info)
}

/// The priority of each of [`header`]'s wide columns: 0 for those shown without `-o wide`;
/// a CRD's columns keep their declared priorities (and order).
pub fn priorities(info: &KindInfo) -> Vec<i64> {
    if let Some(columns) = custom_columns(info) {
        return std::iter::once(0)
            .chain(columns.iter().map(|c| c.priority))
            .collect();
    }
    let narrow = header(info, false).len();
    (0..header(info, true).len())
        .map(|i| if i < narrow { 0 } else { 1 })
        .collect()
}

/// The column titles of kind `info`'s table (`wide`: `-o wide`).
pub fn header(info: &KindInfo, wide: bool) -> Vec<&'static str> {
    if let Some(columns) = custom_columns(info) {
        return printer::header(&columns, wide);
    }
    match (info.key, wide) {
        ("Pod", false) => vec!["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
        ("Pod", true) => vec![
            "NAME",
            "READY",
            "STATUS",
            "RESTARTS",
            "AGE",
            "IP",
            "NODE",
            "NOMINATED NODE",
            "READINESS GATES",
        ],
        ("Deployment", false) => vec!["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        ("Deployment", true) => vec![
            "NAME",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR",
        ],
        ("ReplicaSet", false) => vec!["NAME", "DESIRED", "CURRENT", "READY", "AGE"],
        ("ReplicaSet", true) => vec![
            "NAME",
            "DESIRED",
            "CURRENT",
            "READY",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR",
        ],
        ("Service", false) => vec![
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE",
        ],
        ("Service", true) => vec![
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE",
            "SELECTOR",
        ],
        ("Node", false) => vec!["NAME", "STATUS", "ROLES", "AGE", "VERSION"],
        ("Node", true) => vec![
            "NAME",
            "STATUS",
            "ROLES",
            "AGE",
            "VERSION",
            "INTERNAL-IP",
            "EXTERNAL-IP",
            "OS-IMAGE",
            "KERNEL-VERSION",
            "CONTAINER-RUNTIME",
        ],
        ("Endpoints", _) => vec!["NAME", "ENDPOINTS", "AGE"],
        ("EndpointSlice", _) => vec!["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"],
        ("Namespace", _) => vec!["NAME", "STATUS", "AGE"],
        ("ConfigMap", _) => vec!["NAME", "DATA", "AGE"],
        ("Secret", _) => vec!["NAME", "TYPE", "DATA", "AGE"],
        ("PersistentVolumeClaim", wide) => {
            let mut h = vec![
                "NAME",
                "STATUS",
                "VOLUME",
                "CAPACITY",
                "ACCESS MODES",
                "STORAGECLASS",
                "VOLUMEATTRIBUTESCLASS",
                "AGE",
            ];
            if wide {
                h.push("VOLUMEMODE");
            }
            h
        }
        ("PersistentVolume", wide) => {
            let mut h = vec![
                "NAME",
                "CAPACITY",
                "ACCESS MODES",
                "RECLAIM POLICY",
                "STATUS",
                "CLAIM",
                "STORAGECLASS",
                "VOLUMEATTRIBUTESCLASS",
                "REASON",
                "AGE",
            ];
            if wide {
                h.push("VOLUMEMODE");
            }
            h
        }
        ("Ingress", _) => vec!["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"],
        ("ServiceAccount", _) => vec!["NAME", "SECRETS", "AGE"],
        ("Role" | "ClusterRole", _) => vec!["NAME", "CREATED AT"],
        ("RoleBinding" | "ClusterRoleBinding", false) => vec!["NAME", "ROLE", "AGE"],
        ("RoleBinding" | "ClusterRoleBinding", true) => {
            vec!["NAME", "ROLE", "AGE", "USERS", "GROUPS", "SERVICEACCOUNTS"]
        }
        _ => workloads::header(info.key, wide).unwrap_or_else(|| vec!["NAME", "AGE"]),
    }
}

/// The cells of one object's row, under [`header`]'s titles.
pub fn cells(info: &KindInfo, o: &Value, now: Millis, wide: bool) -> Vec<String> {
    if let Some(columns) = custom_columns(info) {
        return printer::cells(&columns, o, now, wide);
    }
    let name = doc::name(o).to_string();
    match info.key {
        "Pod" => {
            let (status, ready, total, restarts) = pod_status(o);
            let restarts = match last_restart(o, now) {
                Some(ago) if restarts > 0 => format!("{restarts} ({ago} ago)"),
                _ => restarts.to_string(),
            };
            let mut r = vec![
                name,
                format!("{ready}/{total}"),
                status,
                restarts,
                age(o, now),
            ];
            if wide {
                let ip = doc::str_at(o, &["status", "podIP"]);
                let node = doc::str_at(o, &["spec", "nodeName"]);
                let none = |s: &str| {
                    if s.is_empty() {
                        "<none>".to_string()
                    } else {
                        s.to_string()
                    }
                };
                r.extend([none(ip), none(node), "<none>".into(), "<none>".into()]);
            }
            r
        }
        "Deployment" => {
            let mut r = vec![
                name,
                format!(
                    "{}/{}",
                    num(o, &["status", "readyReplicas"]),
                    num(o, &["spec", "replicas"])
                ),
                num(o, &["status", "updatedReplicas"]).to_string(),
                num(o, &["status", "availableReplicas"]).to_string(),
                age(o, now),
            ];
            if wide {
                let (c, i) = containers_images(o, &["spec", "template", "spec"]);
                r.extend([c, i, selector_text(doc::at(o, &["spec", "selector"]))]);
            }
            r
        }
        "ReplicaSet" => {
            let mut r = vec![
                name,
                num(o, &["spec", "replicas"]).to_string(),
                num(o, &["status", "replicas"]).to_string(),
                num(o, &["status", "readyReplicas"]).to_string(),
                age(o, now),
            ];
            if wide {
                let (c, i) = containers_images(o, &["spec", "template", "spec"]);
                r.extend([c, i, selector_text(doc::at(o, &["spec", "selector"]))]);
            }
            r
        }
        "Service" => {
            let kind = doc::str_at(o, &["spec", "type"]).to_string();
            let external = match kind.as_str() {
                "LoadBalancer" => doc::at(o, &["status", "loadBalancer", "ingress"])
                    .and_then(|i| i.get(0))
                    .map(|i| doc::str_at(i, &["ip"]).to_string())
                    .unwrap_or_else(|| "<pending>".into()),
                "ExternalName" => doc::str_at(o, &["spec", "externalName"]).to_string(),
                _ => "<none>".into(),
            };
            let ports: Vec<String> = doc::at(o, &["spec", "ports"])
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|p| match doc::i64_at(p, &["nodePort"]) {
                    Some(np) => format!(
                        "{}:{np}/{}",
                        num(p, &["port"]),
                        doc::str_at(p, &["protocol"])
                    ),
                    None => format!("{}/{}", num(p, &["port"]), doc::str_at(p, &["protocol"])),
                })
                .collect();
            let ip = match doc::str_at(o, &["spec", "clusterIP"]) {
                "" => "<none>",
                ip => ip,
            };
            let mut r = vec![
                name,
                kind,
                ip.to_string(),
                external,
                if ports.is_empty() {
                    "<none>".into()
                } else {
                    ports.join(",")
                },
                age(o, now),
            ];
            if wide {
                let sel = doc::at(o, &["spec", "selector"])
                    .map(crate::engine::labels::Selector::from_map)
                    .map(|s| s.to_text())
                    .unwrap_or_default();
                r.push(if sel.is_empty() { "<none>".into() } else { sel });
            }
            r
        }
        "Node" => {
            let ready = crate::engine::scheduler::node_ready(o);
            let mut status = if ready {
                "Ready".to_string()
            } else {
                "NotReady".to_string()
            };
            if doc::at(o, &["spec", "unschedulable"]).and_then(Value::as_bool) == Some(true) {
                status.push_str(",SchedulingDisabled");
            }
            let roles: Vec<String> = doc::labels(o)
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .filter_map(|(k, _)| k.strip_prefix("node-role.kubernetes.io/").map(String::from))
                .collect();
            let mut r = vec![
                name,
                status,
                if roles.is_empty() {
                    "<none>".into()
                } else {
                    roles.join(",")
                },
                age(o, now),
                doc::str_at(o, &["status", "nodeInfo", "kubeletVersion"]).into(),
            ];
            if wide {
                let ip = doc::at(o, &["status", "addresses"])
                    .and_then(Value::as_array)
                    .and_then(|a| a.iter().find(|x| doc::str_at(x, &["type"]) == "InternalIP"))
                    .map(|x| doc::str_at(x, &["address"]).to_string())
                    .unwrap_or_default();
                let info = |k: &str| doc::str_at(o, &["status", "nodeInfo", k]).to_string();
                r.extend([
                    ip,
                    "<none>".into(),
                    info("osImage"),
                    info("kernelVersion"),
                    info("containerRuntimeVersion"),
                ]);
            }
            r
        }
        "Endpoints" => {
            let mut addrs = Vec::new();
            for s in doc::at(o, &["subsets"])
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let ports: Vec<i64> = s
                    .get("ports")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .map(|p| num(p, &["port"]))
                    .collect();
                for a in s
                    .get("addresses")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    for p in &ports {
                        addrs.push(format!("{}:{p}", doc::str_at(a, &["ip"])));
                    }
                }
            }
            let shown = if addrs.is_empty() {
                "<none>".to_string()
            } else if addrs.len() > 3 {
                format!("{} + {} more...", addrs[..3].join(","), addrs.len() - 3)
            } else {
                addrs.join(",")
            };
            vec![name, shown, age(o, now)]
        }
        "EndpointSlice" => {
            let ports: Vec<String> = o
                .get("ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|p| num(p, &["port"]).to_string())
                .collect();
            let eps: Vec<String> = o
                .get("endpoints")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|e| {
                    e.get("addresses")
                        .and_then(|a| a.get(0))
                        .and_then(Value::as_str)
                        .map(String::from)
                })
                .collect();
            let shown = if eps.len() > 3 {
                format!("{} + {} more...", eps[..3].join(","), eps.len() - 3)
            } else if eps.is_empty() {
                "<unset>".into()
            } else {
                eps.join(",")
            };
            vec![
                name,
                doc::str_at(o, &["addressType"]).into(),
                if ports.is_empty() {
                    "<unset>".into()
                } else {
                    ports.join(",")
                },
                shown,
                age(o, now),
            ]
        }
        "Namespace" => vec![
            name,
            doc::str_at(o, &["status", "phase"]).into(),
            age(o, now),
        ],
        "ConfigMap" => {
            let n = ["data", "binaryData"]
                .iter()
                .map(|f| o.get(*f).and_then(Value::as_object).map_or(0, Map::len))
                .sum::<usize>();
            vec![name, n.to_string(), age(o, now)]
        }
        "Secret" => {
            let n = o.get("data").and_then(Value::as_object).map_or(0, Map::len);
            vec![
                name,
                doc::str_at(o, &["type"]).into(),
                n.to_string(),
                age(o, now),
            ]
        }
        "PersistentVolumeClaim" => {
            // Capacity and access modes are the bound volume's; none before binding.
            let volume = doc::str_at(o, &["spec", "volumeName"]);
            let (capacity, modes) = if volume.is_empty() {
                (String::new(), String::new())
            } else {
                (
                    quantity(o.pointer("/status/capacity/storage")),
                    access_modes(o.pointer("/status/accessModes")),
                )
            };
            let mut r = vec![
                name,
                phase(o),
                volume.into(),
                capacity,
                modes,
                doc::str_at(o, &["spec", "storageClassName"]).into(),
                unset_or(doc::str_at(o, &["spec", "volumeAttributesClassName"])),
                age(o, now),
            ];
            if wide {
                r.push(unset_or(doc::str_at(o, &["spec", "volumeMode"])));
            }
            r
        }
        "PersistentVolume" => {
            let claim = o
                .pointer("/spec/claimRef")
                .map(|c| {
                    format!(
                        "{}/{}",
                        doc::str_at(c, &["namespace"]),
                        doc::str_at(c, &["name"])
                    )
                })
                .unwrap_or_default();
            let mut r = vec![
                name,
                quantity(o.pointer("/spec/capacity/storage")),
                access_modes(o.pointer("/spec/accessModes")),
                doc::str_at(o, &["spec", "persistentVolumeReclaimPolicy"]).into(),
                phase(o),
                claim,
                doc::str_at(o, &["spec", "storageClassName"]).into(),
                unset_or(doc::str_at(o, &["spec", "volumeAttributesClassName"])),
                doc::str_at(o, &["status", "reason"]).into(),
                age(o, now),
            ];
            if wide {
                r.push(unset_or(doc::str_at(o, &["spec", "volumeMode"])));
            }
            r
        }
        "Ingress" => {
            let rules = doc::at(o, &["spec", "rules"])
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let class = match doc::str_at(o, &["spec", "ingressClassName"]) {
                "" => "<none>",
                c => c,
            };
            let tls = doc::at(o, &["spec", "tls"])
                .and_then(Value::as_array)
                .is_some_and(|t| !t.is_empty());
            vec![
                name,
                class.into(),
                ingress_hosts(&rules),
                ingress_address(o, wide),
                if tls { "80, 443".into() } else { "80".into() },
                age(o, now),
            ]
        }
        "ServiceAccount" => {
            let secrets = o
                .get("secrets")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            vec![name, secrets.to_string(), age(o, now)]
        }
        "Role" | "ClusterRole" => vec![
            name,
            parse_rfc3339(doc::str_at(o, &["metadata", "creationTimestamp"]))
                .map(rfc3339)
                .unwrap_or_default(),
        ],
        "RoleBinding" | "ClusterRoleBinding" => {
            let mut r = vec![
                name,
                format!(
                    "{}/{}",
                    doc::str_at(o, &["roleRef", "kind"]),
                    doc::str_at(o, &["roleRef", "name"])
                ),
                age(o, now),
            ];
            if wide {
                let subjects = |kind: &str| {
                    o.get("subjects")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter(|s| doc::str_at(s, &["kind"]) == kind)
                        .map(|s| match (kind, doc::str_at(s, &["namespace"])) {
                            ("ServiceAccount", ns) => {
                                format!("{ns}/{}", doc::str_at(s, &["name"]))
                            }
                            _ => doc::str_at(s, &["name"]).to_string(),
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                r.extend([
                    subjects("User"),
                    subjects("Group"),
                    subjects("ServiceAccount"),
                ]);
            }
            r
        }
        _ => workloads::row(info.key, o, now, wide).unwrap_or_else(|| vec![name, age(o, now)]),
    }
}

/// `storageutil.GetAccessModesAsString`: `RWO,ROX` in kubectl's fixed order, whatever the
/// object's order.
pub fn access_modes(v: Option<&Value>) -> String {
    let modes: Vec<&str> = v
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ]
    .iter()
    .filter(|(mode, _)| modes.contains(mode))
    .map(|(_, short)| *short)
    .collect::<Vec<_>>()
    .join(",")
}

/// kubectl's `formatHosts`: three hosts at most, `*` when no rule names one.
fn ingress_hosts(rules: &[Value]) -> String {
    const MAX: usize = 3;
    let mut hosts: Vec<&str> = Vec::new();
    // Like kubectl, "more" means a rule came after three hosts were listed.
    let mut more = false;
    for rule in rules {
        if hosts.len() == MAX {
            more = true;
        }
        let host = doc::str_at(rule, &["host"]);
        if !more && !host.is_empty() {
            hosts.push(host);
        }
    }
    if hosts.is_empty() {
        "*".into()
    } else if more {
        format!("{} + {} more...", hosts.join(","), rules.len() - MAX)
    } else {
        hosts.join(",")
    }
}

/// kubectl's ADDRESS of an Ingress: its load balancer's IPs or hostnames, sorted, cut to 16
/// characters unless `-o wide`.
fn ingress_address(o: &Value, wide: bool) -> String {
    const LOAD_BALANCER_WIDTH: usize = 16;
    let mut addresses: Vec<&str> = doc::at(o, &["status", "loadBalancer", "ingress"])
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|i| match doc::str_at(i, &["ip"]) {
            "" => doc::str_at(i, &["hostname"]),
            ip => ip,
        })
        .filter(|a| !a.is_empty())
        .collect();
    addresses.sort();
    addresses.dedup();
    let text = addresses.join(",");
    if !wide && text.chars().count() > LOAD_BALANCER_WIDTH {
        let cut: String = text.chars().take(LOAD_BALANCER_WIDTH - 3).collect();
        format!("{cut}...")
    } else {
        text
    }
}

/// `labels.FormatLabels`: `a=1,b=2` sorted by key, `<none>` when empty.
fn labels_text(labels: Option<&Value>) -> String {
    let mut pairs: Vec<String> = labels
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    if pairs.is_empty() {
        return "<none>".into();
    }
    pairs.sort();
    pairs.join(",")
}

/// A quantity's text (`1Gi`; a bare number as Go prints it).
fn quantity(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => crate::yaml::go_json_number(n),
        _ => String::new(),
    }
}

/// The STATUS of a volume or claim: its phase, or `Terminating` while it is being deleted.
fn phase(o: &Value) -> String {
    if doc::is_deleting(o) {
        "Terminating".into()
    } else {
        doc::str_at(o, &["status", "phase"]).into()
    }
}

fn unset_or(s: &str) -> String {
    if s.is_empty() {
        "<unset>".into()
    } else {
        s.into()
    }
}

/// `engine events`: kubectl's `get events` columns.
pub fn events_table(events: &[crate::engine::events::Event], now: Millis, with_ns: bool) -> String {
    let mut rows = vec![];
    let mut head = vec!["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"];
    if with_ns {
        head.insert(0, "NAMESPACE");
    }
    rows.push(head.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    for e in events {
        let object = format!("{}/{}", e.object_kind.to_lowercase(), e.object_name);
        let mut row = vec![
            human_age(now - e.last),
            e.kind.clone(),
            e.reason.clone(),
            object,
            e.message.clone(),
        ];
        if e.count > 1 {
            row[0] = format!(
                "{} (x{} over {})",
                human_age(now - e.last),
                e.count,
                human_age(now - e.first)
            );
        }
        if with_ns {
            row.insert(0, e.namespace.clone());
        }
        rows.push(row);
    }
    render_table(&rows)
}

/// `engine nodes list`: capacity, load and kubelet state of every node.
pub fn node_list(engine: &Engine, nodes: &[Value]) -> String {
    let state = engine.state();
    let mut rows = vec![
        [
            "NAME",
            "STATUS",
            "CPU",
            "MEMORY",
            "PODS",
            "CPU REQUESTS",
            "KUBELET",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>(),
    ];
    for n in nodes {
        let name = doc::name(n);
        let pods: Vec<&Value> = state
            .kind("Pod")
            .values()
            .map(|s| &s.doc)
            .filter(|p| {
                doc::str_at(p, &["spec", "nodeName"]) == name
                    && crate::engine::controllers::replicaset::is_active(p)
            })
            .collect();
        let cpu_req: i64 = pods
            .iter()
            .map(|p| crate::engine::scheduler::pod_requests(p, false).0)
            .sum();
        let mut status = if crate::engine::scheduler::node_ready(n) {
            "Ready".to_string()
        } else {
            "NotReady".to_string()
        };
        if doc::at(n, &["spec", "unschedulable"]).and_then(Value::as_bool) == Some(true) {
            status.push_str(",SchedulingDisabled");
        }
        let kubelet = match state.down_nodes.get(name) {
            Some(t) => format!("stopped at {}", rfc3339(*t)),
            None => "running".into(),
        };
        rows.push(vec![
            name.to_string(),
            status,
            doc::str_at(n, &["status", "allocatable", "cpu"]).into(),
            doc::str_at(n, &["status", "allocatable", "memory"]).into(),
            format!(
                "{}/{}",
                pods.len(),
                doc::str_at(n, &["status", "allocatable", "pods"])
            ),
            doc::format_cpu(cpu_req),
            kubelet,
        ]);
    }
    render_table(&rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ingress_hosts_and_address_as_kubectl() {
        let rules: Vec<Value> = ["a", "", "b", "c", "d"]
            .iter()
            .map(|h| json!({"host": h}))
            .collect();
        assert_eq!(ingress_hosts(&rules), "a,b,c + 2 more...");
        assert_eq!(ingress_hosts(&[json!({"http": {}})]), "*");
        let sparse = [json!({"host": "a"}), json!({}), json!({}), json!({})];
        assert_eq!(ingress_hosts(&sparse), "a");
        let ing = json!({"status": {"loadBalancer": {"ingress": [
            {"ip": "192.168.100.200"}, {"hostname": "lb.example.com"}]}}});
        assert_eq!(ingress_address(&ing, false), "192.168.100.2...");
        assert_eq!(
            ingress_address(&ing, true),
            "192.168.100.200,lb.example.com"
        );
    }

    #[test]
    fn repeated_events_count_their_age_from_the_first() {
        // kubectl: `<since last> (x<count> over <since first>)`.
        let event = crate::engine::events::Event {
            id: 1,
            kind: "Warning".into(),
            reason: "BackOff".into(),
            object_kind: "Pod".into(),
            namespace: "default".into(),
            object_name: "web-1".into(),
            message: "Back-off restarting failed container".into(),
            source: "kubelet".into(),
            count: 4,
            first: 0,
            last: 540_000,
        };
        assert_eq!(
            events_table(&[event], 600_000, false),
            "LAST SEEN           TYPE      REASON    OBJECT      MESSAGE\n\
             60s (x4 over 10m)   Warning   BackOff   pod/web-1   Back-off restarting failed container\n"
        );
    }

    #[test]
    fn several_kinds_prefix_names_after_the_namespace() {
        let pod = json!({"metadata": {"name": "web-1", "namespace": "shop",
            "creationTimestamp": "1970-01-01T00:00:00Z"},
            "spec": {"containers": [{"name": "a"}]}, "status": {"phase": "Pending"}});
        let info = crate::engine::kinds::by_kind("Pod").unwrap_or_else(|| panic!("Pod kind"));
        let options = TableOptions {
            with_namespace: true,
            wide: false,
            with_kind: true,
            show_labels: false,
            no_headers: false,
        };
        assert_eq!(
            table(info, &[pod], 60_000, options),
            "NAMESPACE   NAME        READY   STATUS    RESTARTS   AGE\n\
             shop        pod/web-1   0/1     Pending   0          60s\n"
        );
    }

    #[test]
    fn pod_status_reads_like_kubectl() {
        let pod = json!({"spec": {"containers": [{"name": "a"}]}, "status": {"phase": "Running",
            "containerStatuses": [{"restartCount": 2, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}});
        assert_eq!(pod_status(&pod), ("CrashLoopBackOff".to_string(), 0, 1, 2));
        let init = json!({"spec": {"initContainers": [{"name": "i"}], "containers": [{"name": "a"}]}, "status": {"phase": "Pending",
            "initContainerStatuses": [{"state": {"running": {}}}], "containerStatuses": [{"state": {"waiting": {"reason": "PodInitializing"}}}]}});
        assert_eq!(pod_status(&init).0, "Init:0/1");
    }
}

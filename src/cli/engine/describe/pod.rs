//! Pods, and the pod template every workload description includes.

use serde_json::Value;

use super::{
    Ctx, Text, annotations_multiline, controlled_by, events, flag, labels_multiline,
    name_and_namespace, or, scalar, since, timestamp,
};
use crate::engine::doc;

/// `describePod`.
pub(super) fn pod(ctx: &Ctx<'_>, o: &Value, t: &mut Text) {
    name_and_namespace(o, t);
    if let Some(p) = doc::i64_at(o, &["spec", "priority"]) {
        t.field(0, "Priority", p);
    }
    if let Some(class) = non_empty(o, &["spec", "priorityClassName"]) {
        t.field(0, "Priority Class Name", class);
    }
    if let Some(sa) = non_empty(o, &["spec", "serviceAccountName"]) {
        t.field(0, "Service Account", sa);
    }
    match doc::str_at(o, &["spec", "nodeName"]) {
        "" => t.field(0, "Node", "<none>"),
        node => t.field(
            0,
            "Node",
            format!("{node}/{}", doc::str_at(o, &["status", "hostIP"])),
        ),
    }
    if let Some(start) = timestamp(o, &["status", "startTime"]) {
        t.field(0, "Start Time", start);
    }
    labels_multiline(t, "Labels", doc::labels(o));
    annotations_multiline(t, "Annotations", doc::at(o, &["metadata", "annotations"]));
    let phase = doc::str_at(o, &["status", "phase"]);
    if doc::is_deleting(o) && phase != "Failed" && phase != "Succeeded" {
        t.field(
            0,
            "Status",
            format!(
                "Terminating (lasts {})",
                since(ctx, o, &["metadata", "deletionTimestamp"])
            ),
        );
        t.field(
            0,
            "Termination Grace Period",
            format!(
                "{}s",
                doc::i64_at(o, &["metadata", "deletionGracePeriodSeconds"]).unwrap_or(30)
            ),
        );
    } else {
        t.field(0, "Status", phase);
    }
    if let Some(reason) = non_empty(o, &["status", "reason"]) {
        t.field(0, "Reason", reason);
    }
    if let Some(message) = non_empty(o, &["status", "message"]) {
        t.field(0, "Message", message);
    }
    t.field(0, "IP", doc::str_at(o, &["status", "podIP"]));
    let ips: Vec<&str> = doc::at(o, &["status", "podIPs"])
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|ip| doc::str_at(ip, &["ip"]))
        .collect();
    if ips.is_empty() {
        t.field(0, "IPs", "<none>");
    } else {
        t.w(0, "IPs:\n");
        for ip in ips {
            t.field(1, "IP", ip);
        }
    }
    if let Some(owner) = controlled_by(o) {
        t.field(0, "Controlled By", owner);
    }
    if let Some(nominated) = non_empty(o, &["status", "nominatedNodeName"]) {
        t.field(0, "NominatedNodeName", nominated);
    }
    let spec = doc::at(o, &["spec"]).unwrap_or(&Value::Null);
    let status = doc::at(o, &["status"]).unwrap_or(&Value::Null);
    if has_items(spec, "initContainers") {
        containers(
            t,
            "Init Containers",
            spec,
            "initContainers",
            Some(status.get("initContainerStatuses")),
            "",
        );
    }
    containers(
        t,
        "Containers",
        spec,
        "containers",
        Some(status.get("containerStatuses")),
        "",
    );
    let conditions = doc::at(o, &["status", "conditions"])
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if !conditions.is_empty() {
        t.w(0, "Conditions:\n  Type\tStatus\n");
        for c in &conditions {
            t.w(
                1,
                &format!(
                    "{} \t{} \n",
                    doc::str_at(c, &["type"]),
                    doc::str_at(c, &["status"])
                ),
            );
        }
    }
    volumes(t, spec, "");
    t.field(0, "QoS Class", qos_class(spec));
    labels_multiline(t, "Node-Selectors", spec.get("nodeSelector"));
    tolerations(t, "Tolerations", spec.get("tolerations"));
    events(ctx, "Pod", o, t);
}

/// `DescribePodTemplate`, for the workloads.
pub(super) fn template(t: &mut Text, template: Option<&Value>) {
    t.w(0, "Pod Template:\n");
    let Some(template) = template else {
        t.w(1, "<unset>");
        return;
    };
    labels_multiline(t, "  Labels", doc::at(template, &["metadata", "labels"]));
    if doc::at(template, &["metadata", "annotations"])
        .and_then(Value::as_object)
        .is_some_and(|m| !m.is_empty())
    {
        annotations_multiline(
            t,
            "  Annotations",
            doc::at(template, &["metadata", "annotations"]),
        );
    }
    let spec = template.get("spec").unwrap_or(&Value::Null);
    if let Some(sa) = non_empty(spec, &["serviceAccountName"]) {
        t.field(1, "Service Account", sa);
    }
    if has_items(spec, "initContainers") {
        containers(t, "Init Containers", spec, "initContainers", None, "  ");
    }
    containers(t, "Containers", spec, "containers", None, "  ");
    volumes(t, spec, "  ");
    if let Some(class) = non_empty(spec, &["priorityClassName"]) {
        t.field(1, "Priority Class Name", class);
    }
    labels_multiline(t, "  Node-Selectors", spec.get("nodeSelector"));
    tolerations(t, "  Tolerations", spec.get("tolerations"));
}

fn non_empty<'a>(o: &'a Value, path: &[&str]) -> Option<&'a str> {
    Some(doc::str_at(o, path)).filter(|s| !s.is_empty())
}

fn has_items(spec: &Value, field: &str) -> bool {
    spec.get(field)
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
}

/// `describeContainers`; `statuses` is `Some` for a pod (its container statuses, if any).
fn containers(
    t: &mut Text,
    label: &str,
    spec: &Value,
    field: &str,
    statuses: Option<Option<&Value>>,
    space: &str,
) {
    let list = spec
        .get(field)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let none = if list.is_empty() { " <none>" } else { "" };
    t.w(0, &format!("{space}{label}:{none}\n"));
    let name_indent = if space.is_empty() { "" } else { " " };
    let statuses: Vec<Value> = statuses
        .flatten()
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for c in &list {
        let name = doc::str_at(c, &["name"]);
        let status = statuses.iter().find(|s| doc::str_at(s, &["name"]) == name);
        t.w(1, &format!("{name_indent}{name}:\n"));
        if let Some(s) = status {
            t.field(2, "Container ID", doc::str_at(s, &["containerID"]));
        }
        t.field(2, "Image", doc::str_at(c, &["image"]));
        if let Some(s) = status {
            t.field(2, "Image ID", doc::str_at(s, &["imageID"]));
        }
        let ports = c
            .get("ports")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let port_text = |field: &str| {
            ports
                .iter()
                .map(|p| {
                    let text = format!(
                        "{}/{}",
                        doc::i64_at(p, &[field]).unwrap_or(0),
                        or(p, &["protocol"], "TCP")
                    );
                    match doc::str_at(p, &["name"]) {
                        "" => text,
                        n => format!("{text} ({n})"),
                    }
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let (container_ports, host_ports) = (port_text("containerPort"), port_text("hostPort"));
        if container_ports.contains(',') {
            t.field(2, "Ports", container_ports);
        } else {
            t.field(2, "Port", or_none(&container_ports));
        }
        if host_ports.contains(',') {
            t.field(2, "Host Ports", host_ports);
        } else {
            t.field(2, "Host Port", or_none(&host_ports));
        }
        for (key, title) in [("command", "Command"), ("args", "Args")] {
            let words = c
                .get(key)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if !words.is_empty() {
                t.w(2, &format!("{title}:\n"));
                for word in &words {
                    for line in scalar(Some(word)).split('\n') {
                        t.w(3, &format!("{line}\n"));
                    }
                }
            }
        }
        if let Some(s) = status {
            container_state(t, "State", s.get("state"));
            if doc::at(s, &["lastState", "terminated"]).is_some() {
                container_state(t, "Last State", s.get("lastState"));
            }
            t.field(
                2,
                "Ready",
                if flag(s, &["ready"]) { "True" } else { "False" },
            );
            t.field(
                2,
                "Restart Count",
                doc::i64_at(s, &["restartCount"]).unwrap_or(0),
            );
        }
        for (section, title) in [("limits", "Limits"), ("requests", "Requests")] {
            let entries = super::sorted_entries(doc::at(c, &["resources", section]));
            if !entries.is_empty() {
                t.w(2, &format!("{title}:\n"));
                for (k, v) in entries {
                    t.field(3, &k, v);
                }
            }
        }
        for (probe, title) in [
            ("livenessProbe", "Liveness"),
            ("readinessProbe", "Readiness"),
            ("startupProbe", "Startup"),
        ] {
            if let Some(p) = c.get(probe) {
                t.field(2, title, describe_probe(p));
            }
        }
        environment(t, c);
        let mut mounts = c
            .get("volumeMounts")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if mounts.is_empty() {
            t.w(2, "Mounts:\t<none>\n");
        } else {
            t.w(2, "Mounts:\n");
            mounts
                .sort_by(|a, b| doc::str_at(a, &["mountPath"]).cmp(doc::str_at(b, &["mountPath"])));
            for m in &mounts {
                let mut flags = vec![if flag(m, &["readOnly"]) { "ro" } else { "rw" }.to_string()];
                if let Some(sub) = non_empty(m, &["subPath"]) {
                    flags.push(format!("path={sub:?}"));
                }
                t.w(
                    3,
                    &format!(
                        "{} from {} ({})\n",
                        doc::str_at(m, &["mountPath"]),
                        doc::str_at(m, &["name"]),
                        flags.join(",")
                    ),
                );
            }
        }
    }
}

fn or_none(s: &str) -> &str {
    if s.is_empty() { "<none>" } else { s }
}

/// `describeStatus`.
fn container_state(t: &mut Text, title: &str, state: Option<&Value>) {
    let state = state.unwrap_or(&Value::Null);
    if let Some(running) = state.get("running") {
        t.field(2, title, "Running");
        t.field(
            3,
            "Started",
            timestamp(running, &["startedAt"]).unwrap_or_default(),
        );
    } else if let Some(terminated) = state.get("terminated") {
        t.field(2, title, "Terminated");
        if let Some(reason) = non_empty(terminated, &["reason"]) {
            t.field(3, "Reason", reason);
        }
        if let Some(message) = non_empty(terminated, &["message"]) {
            t.field(3, "Message", message);
        }
        t.field(
            3,
            "Exit Code",
            doc::i64_at(terminated, &["exitCode"]).unwrap_or(0),
        );
        t.field(
            3,
            "Started",
            timestamp(terminated, &["startedAt"]).unwrap_or_else(|| "<unknown>".into()),
        );
        t.field(
            3,
            "Finished",
            timestamp(terminated, &["finishedAt"]).unwrap_or_else(|| "<unknown>".into()),
        );
    } else {
        t.field(2, title, "Waiting");
        if let Some(reason) = state.get("waiting").and_then(|w| non_empty(w, &["reason"])) {
            t.field(3, "Reason", reason);
        }
    }
}

/// `DescribeProbe`: `http-get http://:8080/healthz delay=0s timeout=1s period=10s …`.
fn describe_probe(p: &Value) -> String {
    let int = |f: &str, d: i64| doc::i64_at(p, &[f]).unwrap_or(d);
    let attrs = format!(
        "delay={}s timeout={}s period={}s successThreshold={} failureThreshold={}",
        int("initialDelaySeconds", 0),
        int("timeoutSeconds", 1),
        int("periodSeconds", 10),
        int("successThreshold", 1),
        int("failureThreshold", 3)
    );
    if let Some(exec) = p.get("exec") {
        let words: Vec<String> = exec
            .get("command")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|w| scalar(Some(w)))
            .collect();
        format!("exec [{}] {attrs}", words.join(" "))
    } else if let Some(http) = p.get("httpGet") {
        let scheme = or(http, &["scheme"], "HTTP").to_lowercase();
        let port = scalar(http.get("port"));
        let host = doc::str_at(http, &["host"]);
        format!(
            "http-get {scheme}://{host}:{port}{} {attrs}",
            doc::str_at(http, &["path"])
        )
    } else if let Some(tcp) = p.get("tcpSocket") {
        format!(
            "tcp-socket {}:{} {attrs}",
            doc::str_at(tcp, &["host"]),
            scalar(tcp.get("port"))
        )
    } else if let Some(grpc) = p.get("grpc") {
        format!(
            "grpc <pod>:{} {} {attrs}",
            scalar(grpc.get("port")),
            doc::str_at(grpc, &["service"])
        )
    } else {
        format!("unknown {attrs}")
    }
}

/// `describeContainerEnvFrom` and `describeContainerEnvVars` (values of references are not
/// resolved, as kubectl does not resolve them either without the referenced objects).
fn environment(t: &mut Text, c: &Value) {
    let env_from = c
        .get("envFrom")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if !env_from.is_empty() {
        t.w(2, "Environment Variables from:\n");
        for e in &env_from {
            let (from, reference) = if let Some(r) = e.get("configMapRef") {
                ("ConfigMap", r)
            } else if let Some(r) = e.get("secretRef") {
                ("Secret", r)
            } else {
                ("", &Value::Null)
            };
            let optional = flag(reference, &["optional"]);
            let name = doc::str_at(reference, &["name"]);
            match non_empty(e, &["prefix"]) {
                None => t.w(3, &format!("{name}\t{from}\tOptional: {optional}\n")),
                Some(prefix) => t.w(
                    3,
                    &format!("{name}\t{from} with prefix '{prefix}'\tOptional: {optional}\n"),
                ),
            }
        }
    }
    let env = c
        .get("env")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if env.is_empty() {
        t.w(2, "Environment:\t<none>\n");
        return;
    }
    t.w(2, "Environment:\n");
    for e in &env {
        let name = doc::str_at(e, &["name"]);
        let Some(from) = e.get("valueFrom") else {
            for (i, line) in scalar(e.get("value")).split('\n').enumerate() {
                if i == 0 {
                    t.w(3, &format!("{name}:\t{line}\n"));
                } else {
                    t.w(3, &format!("\t{line}\n"));
                }
            }
            continue;
        };
        if let Some(f) = from.get("fieldRef") {
            t.w(
                3,
                &format!(
                    "{name}:\t ({}:{})\n",
                    or(f, &["apiVersion"], "v1"),
                    doc::str_at(f, &["fieldPath"])
                ),
            );
        } else if let Some(r) = from.get("resourceFieldRef") {
            t.w(
                3,
                &format!("{name}:\t ({})\n", doc::str_at(r, &["resource"])),
            );
        } else if let Some(s) = from.get("secretKeyRef") {
            t.w(
                3,
                &format!(
                    "{name}:\t<set to the key '{}' in secret '{}'>\tOptional: {}\n",
                    doc::str_at(s, &["key"]),
                    doc::str_at(s, &["name"]),
                    flag(s, &["optional"])
                ),
            );
        } else if let Some(m) = from.get("configMapKeyRef") {
            t.w(
                3,
                &format!(
                    "{name}:\t<set to the key '{}' of config map '{}'>\tOptional: {}\n",
                    doc::str_at(m, &["key"]),
                    doc::str_at(m, &["name"]),
                    flag(m, &["optional"])
                ),
            );
        }
    }
}

/// `describeVolumes` for the volume sources the engine knows.
fn volumes(t: &mut Text, spec: &Value, space: &str) {
    let list = spec
        .get("volumes")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if list.is_empty() {
        t.w(0, &format!("{space}Volumes:\t<none>\n"));
        return;
    }
    t.w(0, &format!("{space}Volumes:\n"));
    let name_indent = if space.is_empty() { "" } else { " " };
    for v in &list {
        t.w(1, &format!("{name_indent}{}:\n", doc::str_at(v, &["name"])));
        if let Some(claim) = v.get("persistentVolumeClaim") {
            t.w(2, "Type:\tPersistentVolumeClaim (a reference to a PersistentVolumeClaim in the same namespace)\n");
            t.field(2, "ClaimName", doc::str_at(claim, &["claimName"]));
            t.field(2, "ReadOnly", flag(claim, &["readOnly"]));
        } else if let Some(cm) = v.get("configMap") {
            t.w(2, "Type:\tConfigMap (a volume populated by a ConfigMap)\n");
            t.field(2, "Name", doc::str_at(cm, &["name"]));
            t.field(2, "Optional", flag(cm, &["optional"]));
        } else if let Some(secret) = v.get("secret") {
            t.w(2, "Type:\tSecret (a volume populated by a Secret)\n");
            t.field(2, "SecretName", doc::str_at(secret, &["secretName"]));
            t.field(2, "Optional", flag(secret, &["optional"]));
        } else if let Some(empty) = v.get("emptyDir") {
            t.w(
                2,
                "Type:\tEmptyDir (a temporary directory that shares a pod's lifetime)\n",
            );
            t.field(2, "Medium", doc::str_at(empty, &["medium"]));
            t.field(
                2,
                "SizeLimit",
                match scalar(empty.get("sizeLimit")) {
                    s if s.is_empty() => "<unset>".to_string(),
                    s => s,
                },
            );
        } else if let Some(host) = v.get("hostPath") {
            t.w(2, "Type:\tHostPath (bare host directory volume)\n");
            t.field(2, "Path", doc::str_at(host, &["path"]));
            t.field(2, "HostPathType", or(host, &["type"], "<none>"));
        } else {
            t.w(1, "<unknown>\n");
        }
    }
}

/// `printTolerationsMultilineWithIndent`.
fn tolerations(t: &mut Text, title: &str, list: Option<&Value>) {
    t.w(0, &format!("{title}:\t"));
    let mut list = list.and_then(Value::as_array).cloned().unwrap_or_default();
    if list.is_empty() {
        t.w(0, "<none>\n");
        return;
    }
    list.sort_by(|a, b| doc::str_at(a, &["key"]).cmp(doc::str_at(b, &["key"])));
    for (i, tol) in list.iter().enumerate() {
        if i > 0 {
            t.w(0, "\t");
        }
        let key = doc::str_at(tol, &["key"]);
        let value = doc::str_at(tol, &["value"]);
        let effect = doc::str_at(tol, &["effect"]);
        let mut text = key.to_string();
        if !value.is_empty() {
            text.push_str(&format!("={value}"));
        }
        if !effect.is_empty() {
            text.push_str(&format!(":{effect}"));
        }
        if doc::str_at(tol, &["operator"]) == "Exists" && value.is_empty() {
            text.push_str(if key.is_empty() && effect.is_empty() {
                "op=Exists"
            } else {
                " op=Exists"
            });
        }
        if let Some(secs) = doc::i64_at(tol, &["tolerationSeconds"]) {
            text.push_str(&format!(" for {secs}s"));
        }
        t.w(0, &format!("{text}\n"));
    }
}

/// Kubernetes' QoS class: Guaranteed when every container's requests equal its limits for
/// cpu and memory, BestEffort when none sets any, Burstable otherwise.
fn qos_class(spec: &Value) -> &'static str {
    let all: Vec<&Value> = ["initContainers", "containers"]
        .iter()
        .filter_map(|f| spec.get(*f).and_then(Value::as_array))
        .flatten()
        .collect();
    let resource = |c: &Value, section: &str, name: &str| {
        doc::at(c, &["resources", section, name]).map(|v| scalar(Some(v)))
    };
    let any = all.iter().any(|c| {
        ["requests", "limits"].iter().any(|s| {
            ["cpu", "memory"]
                .iter()
                .any(|r| resource(c, s, r).is_some())
        })
    });
    if !any {
        return "BestEffort";
    }
    let guaranteed = all.iter().all(|c| {
        ["cpu", "memory"].iter().all(|r| {
            let limit = resource(c, "limits", r);
            limit.is_some() && resource(c, "requests", r).is_none_or(|q| Some(q) == limit)
        })
    });
    if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

//! Services, Endpoints, EndpointSlices and Ingresses.

use serde_json::Value;

use super::{
    Ctx, Text, annotations_multiline, events, format_labels, labels_multiline, name_and_namespace,
    or, scalar,
};
use crate::engine::doc;

/// The label tying an EndpointSlice to its Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

fn labels_and_annotations(o: &Value, t: &mut Text) {
    labels_multiline(t, "Labels", doc::labels(o));
    annotations_multiline(t, "Annotations", doc::at(o, &["metadata", "annotations"]));
}

fn list<'a>(o: &'a Value, path: &[&str]) -> Vec<&'a Value> {
    doc::at(o, path)
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default()
}

fn slices_of<'a>(ctx: &Ctx<'a>, namespace: &'a str, service: &str) -> Vec<&'a Value> {
    ctx.state
        .in_namespace("EndpointSlice", namespace)
        .map(|s| &s.doc)
        .filter(|s| {
            doc::labels(s)
                .and_then(|l| l.get(SERVICE_NAME_LABEL))
                .and_then(Value::as_str)
                == Some(service)
        })
        .collect()
}

fn is_ready(endpoint: &Value) -> bool {
    doc::at(endpoint, &["conditions", "ready"]).and_then(Value::as_bool) != Some(false)
}

/// `formatEndpointSlices`: ready `ip:port`s of the named service port, three at most.
fn format_endpoint_slices(slices: &[&Value], port_name: Option<&str>) -> String {
    if slices.is_empty() {
        return "<none>".into();
    }
    const MAX: usize = 3;
    let mut shown = Vec::new();
    let mut count = 0;
    for slice in slices {
        let ports = list(slice, &["ports"]);
        let endpoints = list(slice, &["endpoints"]);
        let mut add = |text: String| {
            if shown.len() < MAX {
                shown.push(text);
            }
            count += 1;
        };
        if ports.is_empty() {
            for e in endpoints.iter().filter(|e| is_ready(e)) {
                add(scalar(doc::at(e, &["addresses"]).and_then(|a| a.get(0))));
            }
            continue;
        }
        for port in ports {
            if port_name.is_some_and(|n| doc::str_at(port, &["name"]) != n) {
                continue;
            }
            for e in endpoints.iter().filter(|e| is_ready(e)) {
                let addr = scalar(doc::at(e, &["addresses"]).and_then(|a| a.get(0)));
                let port = doc::i64_at(port, &["port"]).unwrap_or(0);
                if addr.contains(':') {
                    add(format!("[{addr}]:{port}"));
                } else {
                    add(format!("{addr}:{port}"));
                }
            }
        }
    }
    if count > MAX {
        format!("{} + {} more...", shown.join(","), count - MAX)
    } else {
        shown.join(",")
    }
}

/// `describeService`.
pub(super) fn service(ctx: &Ctx<'_>, o: &Value, t: &mut Text) {
    name_and_namespace(o, t);
    labels_and_annotations(o, t);
    t.field(
        0,
        "Selector",
        format_labels(doc::at(o, &["spec", "selector"])),
    );
    t.field(0, "Type", or(o, &["spec", "type"], "ClusterIP"));
    if let Some(policy) = doc::at(o, &["spec", "ipFamilyPolicy"]) {
        t.field(0, "IP Family Policy", scalar(Some(policy)));
    }
    let joined = |path: &[&str]| {
        let items: Vec<String> = list(o, path).into_iter().map(|v| scalar(Some(v))).collect();
        if items.is_empty() {
            "<none>".to_string()
        } else {
            items.join(",")
        }
    };
    t.field(0, "IP Families", joined(&["spec", "ipFamilies"]));
    t.field(0, "IP", doc::str_at(o, &["spec", "clusterIP"]));
    t.field(0, "IPs", joined(&["spec", "clusterIPs"]));
    if !list(o, &["spec", "externalIPs"]).is_empty() {
        t.field(0, "External IPs", joined(&["spec", "externalIPs"]));
    }
    let external_name = doc::str_at(o, &["spec", "externalName"]);
    if !external_name.is_empty() {
        t.field(0, "External Name", external_name);
    }
    let ingress: Vec<String> = list(o, &["status", "loadBalancer", "ingress"])
        .into_iter()
        .map(|i| {
            let ip = doc::str_at(i, &["ip"]);
            if ip.is_empty() {
                doc::str_at(i, &["hostname"]).to_string()
            } else {
                ip.to_string()
            }
        })
        .collect();
    if !ingress.is_empty() {
        t.field(0, "LoadBalancer Ingress", ingress.join(", "));
    }
    let slices = slices_of(ctx, doc::namespace(o), doc::name(o));
    for p in list(o, &["spec", "ports"]) {
        let name = or(p, &["name"], "<unset>");
        let protocol = or(p, &["protocol"], "TCP");
        let port = doc::i64_at(p, &["port"]).unwrap_or(0);
        t.w(0, &format!("Port:\t{name}\t{port}/{protocol}\n"));
        let target = p
            .get("targetPort")
            .map_or(port.to_string(), |v| scalar(Some(v)));
        t.field(0, "TargetPort", format!("{target}/{protocol}"));
        if let Some(app) = p.get("appProtocol") {
            t.field(0, "AppProtocol", scalar(Some(app)));
        }
        if let Some(node_port) = doc::i64_at(p, &["nodePort"]).filter(|n| *n != 0) {
            t.w(0, &format!("NodePort:\t{name}\t{node_port}/{protocol}\n"));
        }
        t.field(
            0,
            "Endpoints",
            format_endpoint_slices(&slices, Some(doc::str_at(p, &["name"]))),
        );
    }
    t.field(
        0,
        "Session Affinity",
        or(o, &["spec", "sessionAffinity"], "None"),
    );
    let external_policy = doc::str_at(o, &["spec", "externalTrafficPolicy"]);
    if !external_policy.is_empty() {
        t.field(0, "External Traffic Policy", external_policy);
    }
    if let Some(internal) = doc::at(o, &["spec", "internalTrafficPolicy"]) {
        t.field(0, "Internal Traffic Policy", scalar(Some(internal)));
    }
    if let Some(port) = doc::i64_at(o, &["spec", "healthCheckNodePort"]).filter(|p| *p != 0) {
        t.field(0, "HealthCheck NodePort", port);
    }
    events(ctx, "Service", o, t);
}

/// `describeEndpoints`.
pub(super) fn endpoints(ctx: &Ctx<'_>, o: &Value, t: &mut Text) {
    name_and_namespace(o, t);
    labels_and_annotations(o, t);
    t.w(0, "Subsets:\n");
    for subset in list(o, &["subsets"]) {
        for (title, field) in [
            ("Addresses", "addresses"),
            ("NotReadyAddresses", "notReadyAddresses"),
        ] {
            let ips: Vec<&str> = list(subset, &[field])
                .into_iter()
                .map(|a| doc::str_at(a, &["ip"]))
                .collect();
            t.field(
                1,
                title,
                if ips.is_empty() {
                    "<none>".to_string()
                } else {
                    ips.join(",")
                },
            );
        }
        let ports = list(subset, &["ports"]);
        if !ports.is_empty() {
            t.w(1, "Ports:\n");
            t.w(2, "Name\tPort\tProtocol\n");
            t.w(2, "----\t----\t--------\n");
            for p in ports {
                t.w(
                    2,
                    &format!(
                        "{}\t{}\t{}\n",
                        or(p, &["name"], "<unset>"),
                        doc::i64_at(p, &["port"]).unwrap_or(0),
                        or(p, &["protocol"], "TCP")
                    ),
                );
            }
        }
        t.w(0, "\n");
    }
    events(ctx, "Endpoints", o, t);
}

/// `describeEndpointSliceV1`.
pub(super) fn endpoint_slice(ctx: &Ctx<'_>, o: &Value, t: &mut Text) {
    name_and_namespace(o, t);
    labels_and_annotations(o, t);
    t.field(0, "AddressType", doc::str_at(o, &["addressType"]));
    let ports = list(o, &["ports"]);
    if ports.is_empty() {
        t.w(0, "Ports: <unset>\n");
    } else {
        t.w(0, "Ports:\n");
        t.w(1, "Name\tPort\tProtocol\n");
        t.w(1, "----\t----\t--------\n");
        for p in ports {
            let port = doc::i64_at(p, &["port"]).map_or("<unset>".to_string(), |n| n.to_string());
            t.w(
                1,
                &format!(
                    "{}\t{port}\t{}\n",
                    or(p, &["name"], "<unset>"),
                    or(p, &["protocol"], "TCP")
                ),
            );
        }
    }
    let endpoints = list(o, &["endpoints"]);
    if endpoints.is_empty() {
        t.w(0, "Endpoints: <none>\n");
    } else {
        t.w(0, "Endpoints:\n");
        for e in endpoints {
            let addrs: Vec<String> = list(e, &["addresses"])
                .into_iter()
                .map(|a| scalar(Some(a)))
                .collect();
            t.field(
                1,
                "- Addresses",
                if addrs.is_empty() {
                    "<none>".to_string()
                } else {
                    addrs.join(", ")
                },
            );
            t.w(2, "Conditions:\n");
            let ready = doc::at(e, &["conditions", "ready"])
                .and_then(Value::as_bool)
                .map_or("<unset>".to_string(), |b| b.to_string());
            t.field(3, "Ready", ready);
            t.field(2, "Hostname", or(e, &["hostname"], "<unset>"));
            if let Some(target) = e.get("targetRef") {
                t.field(
                    2,
                    "TargetRef",
                    format!(
                        "{}/{}",
                        doc::str_at(target, &["kind"]),
                        doc::str_at(target, &["name"])
                    ),
                );
            }
            t.field(2, "NodeName", or(e, &["nodeName"], "<unset>"));
            t.field(2, "Zone", or(e, &["zone"], "<unset>"));
        }
    }
    events(ctx, "EndpointSlice", o, t);
}

/// `describeBackendV1`: `web:80 (10.244.1.5:8080,…)`.
fn backend(ctx: &Ctx<'_>, namespace: &str, b: &Value) -> String {
    if let Some(svc) = b.get("service") {
        let name = doc::str_at(svc, &["name"]);
        let number = doc::i64_at(svc, &["port", "number"]).filter(|n| *n != 0);
        let port_name = doc::str_at(svc, &["port", "name"]);
        let shown = format!(
            "{name}:{}",
            number.map_or(port_name.to_string(), |n| n.to_string())
        );
        let Some(service) = ctx.state.get("Service", namespace, name) else {
            return format!("{shown} (<error: services \"{name}\" not found>)");
        };
        let mut sp_name = "";
        for p in list(&service.doc, &["spec", "ports"]) {
            let matches_number = number.is_some() && doc::i64_at(p, &["port"]) == number;
            let matches_name = !port_name.is_empty() && doc::str_at(p, &["name"]) == port_name;
            if matches_number || matches_name {
                sp_name = doc::str_at(p, &["name"]);
            }
        }
        let slices = slices_of(ctx, namespace, name);
        return format!(
            "{shown} ({})",
            format_endpoint_slices(&slices, Some(sp_name))
        );
    }
    if let Some(r) = b.get("resource") {
        return format!(
            "APIGroup: {}, Kind: {}, Name: {}",
            or(r, &["apiGroup"], "<none>"),
            doc::str_at(r, &["kind"]),
            doc::str_at(r, &["name"])
        );
    }
    String::new()
}

/// `describeIngressV1`.
pub(super) fn ingress(ctx: &Ctx<'_>, o: &Value, t: &mut Text) {
    let namespace = doc::namespace(o);
    t.field(0, "Name", doc::name(o));
    labels_multiline(t, "Labels", doc::labels(o));
    t.field(0, "Namespace", namespace);
    let mut addresses: Vec<String> = list(o, &["status", "loadBalancer", "ingress"])
        .into_iter()
        .map(|i| or(i, &["ip"], doc::str_at(i, &["hostname"])).to_string())
        .filter(|a| !a.is_empty())
        .collect();
    addresses.sort();
    addresses.dedup();
    t.field(0, "Address", addresses.join(","));
    t.field(
        0,
        "Ingress Class",
        or(o, &["spec", "ingressClassName"], "<none>"),
    );
    let default_backend = match doc::at(o, &["spec", "defaultBackend"]) {
        Some(b) => backend(ctx, namespace, b),
        None => "<default>".into(),
    };
    t.field(0, "Default backend", &default_backend);
    let tls = list(o, &["spec", "tls"]);
    if !tls.is_empty() {
        t.w(0, "TLS:\n");
        for entry in tls {
            let hosts: Vec<String> = list(entry, &["hosts"])
                .into_iter()
                .map(|h| scalar(Some(h)))
                .collect();
            match doc::str_at(entry, &["secretName"]) {
                "" => t.w(1, &format!("SNI routes {}\n", hosts.join(","))),
                secret => t.w(1, &format!("{secret} terminates {}\n", hosts.join(","))),
            }
        }
    }
    t.w(0, "Rules:\n  Host\tPath\tBackends\n");
    t.w(1, "----\t----\t--------\n");
    let mut count = 0;
    for rule in list(o, &["spec", "rules"]) {
        let Some(http) = rule.get("http") else {
            continue;
        };
        count += 1;
        t.w(1, &format!("{}\t\n", or(rule, &["host"], "*")));
        for path in list(http, &["paths"]) {
            let b = path.get("backend").unwrap_or(&Value::Null);
            t.w(
                2,
                &format!(
                    "\t{} \t{}\n",
                    doc::str_at(path, &["path"]),
                    backend(ctx, namespace, b)
                ),
            );
        }
    }
    if count == 0 {
        t.w(1, &format!("*\t*\t{default_backend}\n"));
    }
    annotations_multiline(t, "Annotations", doc::at(o, &["metadata", "annotations"]));
    events(ctx, "Ingress", o, t);
}

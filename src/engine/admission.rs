//! Admission: defaulting and validation as the API server does for what the engine stores.
//!
//! Messages follow the API server's shape: `Deployment.apps "web" is invalid: spec.selector:
//! Required value`. Admission only reads the state; a refused object changes nothing.
//!
//! Besides validation, the mutating plugins Kubernetes enables by default that matter here:
//! `DefaultStorageClass` (a new claim naming no class gets the default class) and
//! `StorageObjectInUseProtection` (new claims and volumes get their protection finalizers).
//! `ResourceQuota` runs last, on creates and on updates that grow what an object is charged
//! (a claim asking for more storage), as the API server's quota admission does.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use super::clock::{Rng, parse_duration};
use super::controllers::deployment::scaled_value;
use super::controllers::volume;
use super::convert;
use super::crd;
use super::doc;
use super::kinds::{self, KindInfo, NameRule};
use super::labels::Selector;
use super::store::State;

/// Service cluster IPs come from this range.
pub const SERVICE_CIDR: (u32, u32) = (0x0A60_0000, 12); // 10.96.0.0/12
/// NodePorts come from this range.
pub const NODE_PORTS: std::ops::RangeInclusive<i64> = 30000..=32767;

const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1035_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";

/// `IsDNS1123Label`: 1 to 63 lower-case alphanumerics or `-`, alphanumeric at both ends.
pub fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// `IsDNS1123Subdomain`: at most 253 characters matching the subdomain regex; its dot-separated
/// parts have no length limit of their own.
pub fn is_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        })
}

/// `IsValidPathSegmentName`: the message when `s` cannot be one path segment.
fn path_segment_problem(s: &str) -> Option<String> {
    if s == "." || s == ".." {
        return Some(format!("may not be '{s}'"));
    }
    ["/", "%"]
        .iter()
        .find(|bad| s.contains(**bad))
        .map(|bad| format!("may not contain '{bad}'"))
}

fn is_dns1035(s: &str) -> bool {
    is_label(s) && s.as_bytes()[0].is_ascii_lowercase()
}

fn is_label_value(s: &str) -> bool {
    s.len() <= 63
        && (s.is_empty()
            || (s
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
                && s.as_bytes()[0].is_ascii_alphanumeric()
                && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric()))
}

fn is_qualified_name(s: &str) -> bool {
    let (prefix, name) = match s.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    prefix.is_none_or(is_subdomain) && !name.is_empty() && is_label_value(name)
}

/// Collected field errors of one object.
#[derive(Debug, Default)]
struct Errs(Vec<String>);

impl Errs {
    fn required(&mut self, path: &str) {
        self.0.push(format!("{path}: Required value"));
    }
    fn invalid(&mut self, path: &str, value: &Value, why: &str) {
        self.0
            .push(format!("{path}: Invalid value: {}: {why}", show(value)));
    }
    fn unsupported(&mut self, path: &str, value: &str, supported: &[&str]) {
        let list: Vec<String> = supported.iter().map(|s| format!("\"{s}\"")).collect();
        self.0.push(format!(
            "{path}: Unsupported value: \"{value}\": supported values: {}",
            list.join(", ")
        ));
    }
    fn forbidden(&mut self, path: &str, why: &str) {
        self.0.push(format!("{path}: Forbidden: {why}"));
    }
    fn duplicate(&mut self, path: &str, value: &Value) {
        self.0
            .push(format!("{path}: Duplicate value: {}", show(value)));
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => format!("\"{s}\""),
        Value::Object(m) => {
            let parts: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("\"{k}\":{}", show(v)))
                .collect();
            format!("map[string]string{{{}}}", parts.join(", "))
        }
        other => other.to_string(),
    }
}

/// Admits `new` (replacing `old` when it exists): fills defaults and validates. The error
/// is the API server's message.
pub fn admit(
    state: &State,
    rng: &mut Rng,
    info: &'static KindInfo,
    old: Option<&Value>,
    new: &mut Value,
    warnings: &mut Vec<String>,
) -> Result<(), String> {
    admit_with(state, rng, info, old, new, &[], warnings)
}

/// Objects a controller is about to create in the same pass: admission charges them to
/// quota as if they were stored already.
pub type Pending = [(&'static KindInfo, Value)];

/// Whether creating `obj` would be admitted now, with `pending` created before it: a
/// controller's way to know, before asking, what the API server would answer (the
/// StatefulSet controller reports its own success and failure events). Changes nothing.
pub fn dry_run(
    state: &State,
    info: &'static KindInfo,
    obj: &Value,
    pending: &Pending,
) -> Result<Value, String> {
    let mut rng = state.rng;
    let mut admitted = obj.clone();
    admit_with(
        state,
        &mut rng,
        info,
        None,
        &mut admitted,
        pending,
        &mut Vec::new(),
    )?;
    Ok(admitted)
}

fn admit_with(
    state: &State,
    rng: &mut Rng,
    info: &'static KindInfo,
    old: Option<&Value>,
    new: &mut Value,
    pending: &Pending,
    warnings: &mut Vec<String>,
) -> Result<(), String> {
    let name = doc::name(new).to_string();
    let display_name = if name.is_empty() {
        doc::str_at(new, &["metadata", "generateName"]).to_string()
    } else {
        name.clone()
    };
    let invalid = |errs: Vec<String>| {
        let body = if errs.len() == 1 {
            errs[0].clone()
        } else {
            format!("[{}]", errs.join(", "))
        };
        format!("{} \"{display_name}\" is invalid: {body}", info.qualified())
    };
    let mut errs = Errs::default();
    if !new.is_object() {
        return Err(format!("{} object must be a map", info.kind));
    }
    let sent_version = doc::str_at(new, &["apiVersion"])
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string();
    convert::to_storage(info, new);
    metadata(info, new, &mut errs);
    if info.namespaced {
        let ns = doc::namespace(new).to_string();
        match state.get("Namespace", "", &ns) {
            None => return Err(format!("namespaces \"{ns}\" not found")),
            Some(n) if old.is_none() && doc::is_deleting(&n.doc) => {
                return Err(format!(
                    "{} \"{display_name}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                    info.plural
                ));
            }
            _ => {}
        }
    }
    if !kinds::is_builtin(info) {
        errs.0.extend(crd::admit_custom(
            state,
            info,
            &sent_version,
            old,
            new,
            warnings,
        )?);
    }
    match info.kind {
        crd::KIND => crd::admit_crd(new, old, &mut errs.0),
        "Pod" => {
            // Priority first: the defaults below would otherwise fill in priority 0.
            match old {
                None => resolve_priority(state, new)?,
                Some(old) => keep_priority(old, new),
            }
            default_pod_spec(new.get_mut("spec"), true);
            let pod_ns = doc::namespace(new).to_string();
            apply_limit_ranges(state, &pod_ns, new);
            pod_spec(doc::at(new, &["spec"]), "spec", &[], &mut errs);
            if let Some(old) = old
                && without_images(old.get("spec")) != without_images(new.get("spec"))
            {
                errs.forbidden("spec", "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)");
            }
        }
        "PriorityClass" => priority_class(state, new, &mut errs)?,
        "PodDisruptionBudget"
            if doc::at(new, &["spec", "minAvailable"]).is_some()
                && doc::at(new, &["spec", "maxUnavailable"]).is_some() =>
        {
            errs.0.push(
                "spec: Invalid value: policy.PodDisruptionBudgetSpec: minAvailable and maxUnavailable cannot be both set".into(),
            );
        }
        "Deployment" => deployment(new, old, &mut errs),
        "ReplicaSet" | "DaemonSet" | "StatefulSet" => workload(info.kind, new, old, &mut errs),
        "Job" => job(new, old, &mut errs),
        "CronJob" => cronjob(new, &mut errs),
        "Service" => service(state, rng, new, old, &mut errs),
        "ConfigMap" => data_keys(new, &["data", "binaryData"], &mut errs),
        "Secret" => secret(new, old, &mut errs)?,
        "Namespace" if old.is_none() => {
            doc::set(new, &["spec", "finalizers"], json!(["kubernetes"]));
            doc::set(new, &["status", "phase"], json!("Active"));
        }
        "Ingress" => ingress(new, &mut errs),
        "PersistentVolume" => {
            keep_controller_fields(old, new, &["claimRef"]);
            for f in ["capacity", "accessModes"] {
                if doc::at(new, &["spec", f]).is_none() {
                    errs.required(&format!("spec.{f}"));
                }
            }
            access_modes(
                doc::at(new, &["spec", "accessModes"]),
                "spec.accessModes",
                &mut errs,
            );
            if old.is_none() {
                doc::set(new, &["status", "phase"], json!("Available"));
                add_finalizer(new, volume::PV_PROTECTION);
            }
            if doc::at(new, &["spec", "persistentVolumeReclaimPolicy"]).is_none() {
                doc::set(
                    new,
                    &["spec", "persistentVolumeReclaimPolicy"],
                    json!("Retain"),
                );
            }
        }
        "PersistentVolumeClaim" => {
            keep_controller_fields(old, new, &["volumeName", "storageClassName"]);
            if doc::at(new, &["spec", "accessModes"]).is_none() {
                errs.required("spec.accessModes");
            }
            access_modes(
                doc::at(new, &["spec", "accessModes"]),
                "spec.accessModes",
                &mut errs,
            );
            if doc::at(new, &["spec", "resources", "requests", "storage"]).is_none() {
                errs.required("spec.resources[storage]");
            }
            if doc::at(new, &["spec", "volumeMode"]).is_none() {
                doc::set(new, &["spec", "volumeMode"], json!("Filesystem"));
            }
            if let Some(old) = old {
                let keep = |v: &Value| {
                    let mut s = v.get("spec").cloned().unwrap_or(Value::Null);
                    if let Some(m) = s.as_object_mut() {
                        m.remove("resources");
                        m.remove("volumeName");
                        m.remove("storageClassName");
                    }
                    s
                };
                if keep(old) != keep(new) {
                    errs.forbidden("spec", "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims");
                }
            } else {
                doc::set(new, &["status", "phase"], json!("Pending"));
                if !volume::names_class(new)
                    && let Some(default) = volume::default_class(state)
                {
                    doc::set(new, &["spec", "storageClassName"], json!(default));
                }
                add_finalizer(new, volume::PVC_PROTECTION);
            }
        }
        "HorizontalPodAutoscaler" => hpa(new, &mut errs),
        "RoleBinding" | "ClusterRoleBinding" => {
            if doc::at(new, &["roleRef"]).is_none() {
                errs.required("roleRef");
            }
            if let Some(old) = old
                && old.get("roleRef") != new.get("roleRef")
            {
                errs.invalid(
                    "roleRef",
                    new.get("roleRef").unwrap_or(&Value::Null),
                    "cannot change roleRef",
                );
            }
        }
        "ResourceQuota" if doc::at(new, &["spec", "hard"]).is_none() => {
            doc::set(new, &["spec", "hard"], json!({}));
        }
        "Node" if doc::at(new, &["status", "conditions"]).is_none() => {
            doc::set(
                new,
                &["status", "conditions"],
                super::controllers::node::ready_conditions(state.now),
            );
        }
        _ => {}
    }
    if !errs.0.is_empty() {
        return Err(invalid(errs.0));
    }
    if info.kind == crd::KIND
        && let Some(defined) = crd::info_of(new)
    {
        super::printer::remember(new, kinds::register(defined));
    }
    if old.is_none() && info.namespaced {
        super::quota::check_limit_ranges(state, info, new)?;
    }
    // The quota evaluators that handle updates: claims (storage expansion) and Services
    // (a type change to LoadBalancer or NodePort).
    let charged_on_update = matches!(info.kind, "PersistentVolumeClaim" | "Service");
    if info.namespaced && (old.is_none() || charged_on_update) {
        quota(state, info, old, new, pending)?;
    }
    Ok(())
}

/// Spec fields the cluster fills in (a binding, a defaulted class) survive an update that does
/// not mention them, as `kubectl apply` leaves alone what it did not set.
/// PriorityClasses every cluster has, with their values.
const SYSTEM_PRIORITY_CLASSES: [(&str, i64); 2] = [
    ("system-node-critical", 2_000_001_000),
    ("system-cluster-critical", 2_000_000_000),
];

/// The Priority admission plugin: `spec.priorityClassName` (or the class marked
/// `globalDefault`) becomes `spec.priority` and `spec.preemptionPolicy`.
fn resolve_priority(state: &State, pod: &mut Value) -> Result<(), String> {
    let pod_name = doc::name(pod).to_string();
    let class_name = doc::str_at(pod, &["spec", "priorityClassName"]).to_string();
    let class = if class_name.is_empty() {
        state
            .kind("PriorityClass")
            .values()
            .map(|s| &s.doc)
            .filter(|c| c.get("globalDefault") == Some(&json!(true)))
            .min_by_key(|c| doc::i64_at(c, &["value"]).unwrap_or(0))
            .map(|c| {
                (
                    doc::name(c).to_string(),
                    doc::i64_at(c, &["value"]).unwrap_or(0),
                    doc::str_at(c, &["preemptionPolicy"]).to_string(),
                )
            })
    } else if let Some((_, value)) = SYSTEM_PRIORITY_CLASSES
        .iter()
        .find(|(n, _)| *n == class_name)
    {
        Some((class_name.clone(), *value, String::new()))
    } else {
        let stored = state.get("PriorityClass", "", &class_name).ok_or_else(|| {
            format!(
                "pods \"{pod_name}\" is forbidden: no PriorityClass with name {class_name} was found"
            )
        })?;
        Some((
            class_name.clone(),
            doc::i64_at(&stored.doc, &["value"]).unwrap_or(0),
            doc::str_at(&stored.doc, &["preemptionPolicy"]).to_string(),
        ))
    };
    let (name, value, policy) = class.unwrap_or((String::new(), 0, String::new()));
    if let Some(given) = doc::i64_at(pod, &["spec", "priority"])
        && given != value
    {
        return Err(format!(
            "pods \"{pod_name}\" is forbidden: the integer value of priority ({given}) must not be provided in pod spec; priority admission controller computed {value} from the given PriorityClass name"
        ));
    }
    if !name.is_empty() {
        doc::set(pod, &["spec", "priorityClassName"], json!(name));
    }
    doc::set(pod, &["spec", "priority"], json!(value));
    let policy = if policy.is_empty() {
        "PreemptLowerPriority"
    } else {
        policy.as_str()
    };
    let given = doc::str_at(pod, &["spec", "preemptionPolicy"]);
    if !given.is_empty() && given != policy {
        return Err(format!(
            "pods \"{pod_name}\" is forbidden: the string value of PreemptionPolicy ({given}) must not be provided in pod spec; priority admission controller computed {policy} from the given PriorityClass name"
        ));
    }
    doc::set(pod, &["spec", "preemptionPolicy"], json!(policy));
    Ok(())
}

/// An update keeps the priority admission resolved at creation.
fn keep_priority(old: &Value, new: &mut Value) {
    for field in ["priority", "priorityClassName", "preemptionPolicy"] {
        if doc::at(new, &["spec", field]).is_none()
            && let Some(v) = doc::at(old, &["spec", field])
        {
            doc::set(new, &["spec", field], v.clone());
        }
    }
}

/// PriorityClass validation: a value, a known preemption policy, one global default.
fn priority_class(state: &State, class: &Value, errs: &mut Errs) -> Result<(), String> {
    if doc::at(class, &["value"]).is_none() {
        errs.required("value");
    }
    let policy = doc::str_at(class, &["preemptionPolicy"]);
    if !policy.is_empty() && policy != "PreemptLowerPriority" && policy != "Never" {
        errs.unsupported(
            "preemptionPolicy",
            policy,
            &["Never", "PreemptLowerPriority"],
        );
    }
    let name = doc::name(class);
    if class.get("globalDefault") == Some(&json!(true))
        && let Some(other) = state
            .kind("PriorityClass")
            .values()
            .map(|s| &s.doc)
            .find(|c| c.get("globalDefault") == Some(&json!(true)) && doc::name(c) != name)
    {
        return Err(format!(
            "priorityclasses.scheduling.k8s.io \"{name}\" is forbidden: PriorityClass {} is already marked as default. Only one default can exist",
            doc::name(other)
        ));
    }
    Ok(())
}

fn keep_controller_fields(old: Option<&Value>, new: &mut Value, fields: &[&str]) {
    let Some(old) = old else {
        return;
    };
    for f in fields {
        if doc::at(new, &["spec", f]).is_none()
            && let Some(v) = doc::at(old, &["spec", f])
        {
            doc::set(new, &["spec", f], v.clone());
        }
    }
}

fn add_finalizer(obj: &mut Value, finalizer: &str) {
    let list = doc::map_mut(obj, &["metadata"])
        .entry("finalizers")
        .or_insert_with(|| json!([]));
    if let Some(items) = list.as_array_mut()
        && !items.iter().any(|f| f.as_str() == Some(finalizer))
    {
        items.push(json!(finalizer));
    }
}

fn metadata(info: &KindInfo, obj: &mut Value, errs: &mut Errs) {
    let name = doc::name(obj).to_string();
    let generate = doc::str_at(obj, &["metadata", "generateName"]).to_string();
    let problem = |n: &str| -> Option<String> {
        match info.name_rule {
            NameRule::Subdomain if !is_subdomain(n) => Some(if n.len() > 253 {
                "must be no more than 253 characters".to_string()
            } else {
                SUBDOMAIN_MSG.to_string()
            }),
            NameRule::Label if !is_label(n) => Some(if n.len() > 63 {
                "must be no more than 63 characters".to_string()
            } else {
                LABEL_MSG.to_string()
            }),
            NameRule::Dns1035Label if !is_dns1035(n) => Some(if n.len() > 63 {
                "must be no more than 63 characters".to_string()
            } else {
                DNS1035_MSG.to_string()
            }),
            NameRule::PathSegment => path_segment_problem(n),
            _ => None,
        }
    };
    // A prefix is checked with its trailing dash masked (`web-` as `weba`), as the API
    // server's `maskTrailingDash`; the name generated from it is checked too.
    if !generate.is_empty() {
        let masked = match generate.strip_suffix('-') {
            Some(head) if !head.is_empty() => format!("{head}a"),
            _ => generate.clone(),
        };
        if let Some(why) = problem(&masked) {
            errs.invalid("metadata.generateName", &json!(generate), &why);
        }
    }
    if name.is_empty() && generate.is_empty() {
        errs.required("metadata.name");
    } else if let Some(why) = problem(&name).filter(|_| !name.is_empty()) {
        errs.invalid("metadata.name", &json!(name), &why);
    }
    if info.namespaced {
        if doc::namespace(obj).is_empty() {
            doc::set(obj, &["metadata", "namespace"], json!("default"));
        }
    } else if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("namespace");
    }
    if let Some(labels) = doc::labels(obj).and_then(Value::as_object) {
        for (k, v) in labels {
            if !is_qualified_name(k) {
                errs.invalid("metadata.labels", &json!(k), "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character");
            }
            match v.as_str() {
                Some(s) if is_label_value(s) => {}
                _ => errs.invalid("metadata.labels", v, "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"),
            }
        }
    }
}

fn without_images(spec: Option<&Value>) -> Value {
    let mut s = spec.cloned().unwrap_or(Value::Null);
    for field in ["containers", "initContainers"] {
        if let Some(list) = s.get_mut(field).and_then(Value::as_array_mut) {
            for c in list {
                if let Some(m) = c.as_object_mut() {
                    m.remove("image");
                }
            }
        }
    }
    if let Some(m) = s.as_object_mut() {
        m.remove("tolerations");
        m.remove("activeDeadlineSeconds");
        m.remove("terminationGracePeriodSeconds");
    }
    s
}

/// Fills a pod spec's defaults; `pod` adds what admission plugins add to real pods
/// (service account, default tolerations of not-ready/unreachable nodes for 300 s).
pub fn default_pod_spec(spec: Option<&mut Value>, pod: bool) {
    let Some(spec) = spec.and_then(Value::as_object_mut) else {
        return;
    };
    let put = |m: &mut Map<String, Value>, k: &str, v: Value| {
        m.entry(k.to_string()).or_insert(v);
    };
    put(spec, "restartPolicy", json!("Always"));
    put(spec, "terminationGracePeriodSeconds", json!(30));
    put(spec, "dnsPolicy", json!("ClusterFirst"));
    put(spec, "schedulerName", json!("default-scheduler"));
    put(spec, "securityContext", json!({}));
    for field in ["initContainers", "containers"] {
        for c in spec
            .get_mut(field)
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            let Some(c) = c.as_object_mut() else { continue };
            let image = c
                .get("image")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let tag = image.rsplit('/').next().unwrap_or_default();
            let latest = !tag.contains(':') || tag.ends_with(":latest");
            put(
                c,
                "imagePullPolicy",
                json!(if latest { "Always" } else { "IfNotPresent" }),
            );
            put(c, "terminationMessagePath", json!("/dev/termination-log"));
            put(c, "terminationMessagePolicy", json!("File"));
            put(c, "resources", json!({}));
            for p in c
                .get_mut("ports")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                if let Some(p) = p.as_object_mut() {
                    put(p, "protocol", json!("TCP"));
                }
            }
            for probe in ["readinessProbe", "livenessProbe", "startupProbe"] {
                if let Some(p) = c.get_mut(probe).and_then(Value::as_object_mut) {
                    put(p, "timeoutSeconds", json!(1));
                    put(p, "periodSeconds", json!(10));
                    put(p, "successThreshold", json!(1));
                    put(p, "failureThreshold", json!(3));
                }
            }
        }
    }
    if pod {
        put(spec, "serviceAccountName", json!("default"));
        put(spec, "enableServiceLinks", json!(true));
        put(spec, "priority", json!(0));
        put(spec, "preemptionPolicy", json!("PreemptLowerPriority"));
        let tolerations = spec.entry("tolerations").or_insert_with(|| json!([]));
        if let Some(list) = tolerations.as_array_mut() {
            for key in [
                "node.kubernetes.io/not-ready",
                "node.kubernetes.io/unreachable",
            ] {
                let has = list.iter().any(|t| {
                    let k = doc::str_at(t, &["key"]);
                    (k == key || (k.is_empty() && doc::str_at(t, &["operator"]) == "Exists"))
                        && matches!(doc::str_at(t, &["effect"]), "" | "NoExecute")
                });
                if !has {
                    list.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}));
                }
            }
        }
    }
}

fn pod_spec(spec: Option<&Value>, path: &str, policies: &[&str], errs: &mut Errs) {
    let Some(spec) = spec else {
        errs.required(path);
        return;
    };
    let containers = spec.get("containers").and_then(Value::as_array);
    if containers.is_none_or(|c| c.is_empty()) {
        errs.required(&format!("{path}.containers"));
    }
    let mut names = BTreeSet::new();
    for field in ["initContainers", "containers"] {
        for (i, c) in spec
            .get(field)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let cpath = format!("{path}.{field}[{i}]");
            let name = doc::str_at(c, &["name"]);
            if name.is_empty() {
                errs.required(&format!("{cpath}.name"));
            } else if !is_label(name) {
                errs.invalid(&format!("{cpath}.name"), &json!(name), LABEL_MSG);
            } else if !names.insert(name.to_string()) {
                errs.duplicate(&format!("{cpath}.name"), &json!(name));
            }
            if doc::str_at(c, &["image"]).is_empty() {
                errs.required(&format!("{cpath}.image"));
            }
            for (j, p) in c
                .get("ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                let port = doc::i64_at(p, &["containerPort"]).unwrap_or(0);
                if !(1..=65535).contains(&port) {
                    errs.invalid(
                        &format!("{cpath}.ports[{j}].containerPort"),
                        &json!(port),
                        "must be between 1 and 65535, inclusive",
                    );
                }
            }
            for res in ["cpu", "memory"] {
                let parse = |v: &Value| {
                    if res == "cpu" {
                        doc::cpu_millis(v)
                    } else {
                        doc::bytes(v)
                    }
                };
                let req = doc::at(c, &["resources", "requests", res]).and_then(parse);
                let lim = doc::at(c, &["resources", "limits", res]).and_then(parse);
                if let (Some(r), Some(l)) = (req, lim)
                    && r > l
                {
                    let shown = doc::at(c, &["resources", "requests", res])
                        .cloned()
                        .unwrap_or(Value::Null);
                    errs.invalid(
                        &format!("{cpath}.resources.requests"),
                        &shown,
                        &format!(
                            "must be less than or equal to {res} limit of {}",
                            show_plain(doc::at(c, &["resources", "limits", res]))
                        ),
                    );
                }
            }
        }
    }
    let policy = doc::str_at(spec, &["restartPolicy"]);
    let allowed: &[&str] = if policies.is_empty() {
        &["Always", "OnFailure", "Never"]
    } else {
        policies
    };
    if !policy.is_empty() && !allowed.contains(&policy) {
        errs.unsupported(&format!("{path}.restartPolicy"), policy, allowed);
    }
}

fn show_plain(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

fn selector_and_template(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let selector = doc::at(obj, &["spec", "selector"]);
    match selector {
        None => errs.required("spec.selector"),
        Some(sel) => match Selector::from_label_selector(sel) {
            Err(e) => errs.invalid("spec.selector", sel, &e),
            Ok(s) if s.is_empty() => errs.invalid(
                "spec.selector",
                sel,
                "empty selector is invalid for deployment",
            ),
            Ok(s) => {
                let labels = doc::at(obj, &["spec", "template", "metadata", "labels"]);
                if !s.matches(labels) {
                    errs.invalid(
                        "spec.template.metadata.labels",
                        labels.unwrap_or(&json!({})),
                        "`selector` does not match template `labels`",
                    );
                }
            }
        },
    }
    if let Some(old) = old
        && doc::at(old, &["spec", "selector"]) != selector
    {
        errs.invalid(
            "spec.selector",
            selector.unwrap_or(&Value::Null),
            "field is immutable",
        );
    }
}

fn non_negative(obj: &Value, field: &str, errs: &mut Errs) {
    if let Some(v) = doc::at(obj, &["spec", field]) {
        match v.as_i64() {
            Some(n) if n >= 0 => {}
            _ => errs.invalid(
                &format!("spec.{field}"),
                v,
                "must be greater than or equal to 0",
            ),
        }
    }
}

fn deployment(obj: &mut Value, old: Option<&Value>, errs: &mut Errs) {
    let spec = doc::map_mut(obj, &["spec"]);
    spec.entry("replicas").or_insert(json!(1));
    spec.entry("revisionHistoryLimit").or_insert(json!(10));
    spec.entry("progressDeadlineSeconds").or_insert(json!(600));
    let strategy = spec.entry("strategy").or_insert(json!({}));
    if strategy.get("type").is_none() {
        strategy["type"] = json!("RollingUpdate");
    }
    let kind = doc::str_at(strategy, &["type"]).to_string();
    if kind == "RollingUpdate" {
        let ru = doc::map_mut(strategy, &["rollingUpdate"]);
        ru.entry("maxSurge").or_insert(json!("25%"));
        ru.entry("maxUnavailable").or_insert(json!("25%"));
    }
    default_pod_spec(obj.pointer_mut("/spec/template/spec"), false);
    for f in ["replicas", "minReadySeconds", "revisionHistoryLimit"] {
        non_negative(obj, f, errs);
    }
    let min_ready = doc::i64_at(obj, &["spec", "minReadySeconds"]).unwrap_or(0);
    if let Some(p) = doc::i64_at(obj, &["spec", "progressDeadlineSeconds"])
        && p <= min_ready
    {
        errs.invalid(
            "spec.progressDeadlineSeconds",
            &json!(p),
            "must be greater than minReadySeconds",
        );
    }
    selector_and_template(obj, old, errs);
    pod_spec(
        doc::at(obj, &["spec", "template", "spec"]),
        "spec.template.spec",
        &["Always"],
        errs,
    );
    let strategy = doc::at(obj, &["spec", "strategy"])
        .cloned()
        .unwrap_or_default();
    match kind.as_str() {
        "RollingUpdate" => surge_fields(
            doc::at(&strategy, &["rollingUpdate"]),
            "spec.strategy.rollingUpdate",
            errs,
        ),
        "Recreate" => {
            if strategy.get("rollingUpdate").is_some() {
                errs.forbidden(
                    "spec.strategy.rollingUpdate",
                    "may not be specified when strategy `type` is 'Recreate'",
                );
            }
        }
        "Canary" => canary(strategy.get("canary"), errs),
        "BlueGreen" => blue_green(strategy.get("blueGreen"), errs),
        other => errs.unsupported(
            "spec.strategy.type",
            other,
            &["Recreate", "RollingUpdate", "BlueGreen", "Canary"],
        ),
    }
}

fn surge_fields(ru: Option<&Value>, path: &str, errs: &mut Errs) {
    let Some(ru) = ru else { return };
    let mut zero = 0;
    for field in ["maxSurge", "maxUnavailable"] {
        let v = ru.get(field);
        match scaled_value(v, "25%", 100, field == "maxSurge") {
            Err(e) => errs.invalid(&format!("{path}.{field}"), v.unwrap_or(&Value::Null), &e),
            Ok(n) if n < 0 => errs.invalid(
                &format!("{path}.{field}"),
                v.unwrap_or(&Value::Null),
                "must be greater than or equal to 0",
            ),
            Ok(n) => {
                if n == 0 {
                    zero += 1;
                }
                if field == "maxUnavailable"
                    && v.and_then(Value::as_str).is_some_and(|s| s.ends_with('%'))
                    && n > 100
                {
                    errs.invalid(
                        &format!("{path}.{field}"),
                        v.unwrap_or(&Value::Null),
                        "must not be greater than 100%",
                    );
                }
            }
        }
    }
    if zero == 2 {
        errs.invalid(
            &format!("{path}.maxUnavailable"),
            ru.get("maxUnavailable").unwrap_or(&json!(0)),
            "may not be 0 when `maxSurge` is 0",
        );
    }
}

fn canary(c: Option<&Value>, errs: &mut Errs) {
    let Some(c) = c else {
        errs.required("spec.strategy.canary");
        return;
    };
    surge_fields(Some(c), "spec.strategy.canary", errs);
    let steps = c.get("steps");
    let Some(steps) = steps.and_then(Value::as_array) else {
        if let Some(s) = steps {
            errs.invalid("spec.strategy.canary.steps", s, "must be a list of steps");
        }
        return;
    };
    for (i, step) in steps.iter().enumerate() {
        let path = format!("spec.strategy.canary.steps[{i}]");
        let Some(map) = step.as_object() else {
            errs.invalid(
                &path,
                step,
                "must be an object with one of setWeight, pause, analysis",
            );
            continue;
        };
        let known: Vec<&String> = map
            .keys()
            .filter(|k| ["setWeight", "pause", "analysis"].contains(&k.as_str()))
            .collect();
        if known.len() != 1 || map.len() != 1 {
            errs.invalid(
                &path,
                step,
                "must have exactly one of setWeight, pause, analysis",
            );
            continue;
        }
        if let Some(w) = map.get("setWeight")
            && !w.as_i64().is_some_and(|w| (0..=100).contains(&w))
        {
            errs.invalid(
                &format!("{path}.setWeight"),
                w,
                "must be an integer between 0 and 100",
            );
        }
        if let Some(p) = map.get("pause") {
            match p.get("duration") {
                None | Some(Value::Null) => {}
                Some(Value::Number(n)) if n.as_i64().is_some_and(|n| n >= 0) => {}
                Some(Value::String(s)) if parse_duration(s).is_ok() => {}
                Some(other) => errs.invalid(
                    &format!("{path}.pause.duration"),
                    other,
                    "must be a duration such as 30s or 5m",
                ),
            }
        }
        if let Some(a) = map.get("analysis") {
            analysis(a, &format!("{path}.analysis"), errs);
        }
    }
}

fn analysis(a: &Value, path: &str, errs: &mut Errs) {
    if doc::str_at(a, &["metric"]).is_empty() {
        errs.required(&format!("{path}.metric"));
    }
    if let Some(t) = a.get("threshold")
        && !t.is_number()
    {
        errs.invalid(&format!("{path}.threshold"), t, "must be a number");
    }
    for f in ["count", "failureLimit"] {
        if let Some(v) = a.get(f)
            && v.as_i64().is_none_or(|n| n < 0)
        {
            errs.invalid(
                &format!("{path}.{f}"),
                v,
                "must be greater than or equal to 0",
            );
        }
    }
    if let Some(Value::String(s)) = a.get("interval")
        && parse_duration(s).is_err()
    {
        errs.invalid(
            &format!("{path}.interval"),
            &json!(s),
            "must be a duration such as 10s",
        );
    }
}

fn blue_green(b: Option<&Value>, errs: &mut Errs) {
    let Some(b) = b else {
        errs.required("spec.strategy.blueGreen");
        return;
    };
    if doc::str_at(b, &["activeService"]).is_empty() {
        errs.required("spec.strategy.blueGreen.activeService");
    }
    if let Some(p) = b.get("previewService")
        && !p.is_string()
    {
        errs.invalid(
            "spec.strategy.blueGreen.previewService",
            p,
            "must be a Service name",
        );
    }
    if let Some(v) = b.get("autoPromotionEnabled")
        && !v.is_boolean()
    {
        errs.invalid(
            "spec.strategy.blueGreen.autoPromotionEnabled",
            v,
            "must be true or false",
        );
    }
    for f in ["autoPromotionSeconds", "scaleDownDelaySeconds"] {
        if let Some(v) = b.get(f)
            && v.as_i64().is_none_or(|n| n < 0)
        {
            errs.invalid(
                &format!("spec.strategy.blueGreen.{f}"),
                v,
                "must be greater than or equal to 0",
            );
        }
    }
    for f in ["prePromotionAnalysis", "postPromotionAnalysis"] {
        if let Some(a) = b.get(f) {
            analysis(a, &format!("spec.strategy.blueGreen.{f}"), errs);
        }
    }
}

fn workload(kind: &str, obj: &mut Value, old: Option<&Value>, errs: &mut Errs) {
    let spec = doc::map_mut(obj, &["spec"]);
    match kind {
        "ReplicaSet" => {
            spec.entry("replicas").or_insert(json!(1));
        }
        "StatefulSet" => {
            spec.entry("replicas").or_insert(json!(1));
            spec.entry("podManagementPolicy")
                .or_insert(json!("OrderedReady"));
            spec.entry("revisionHistoryLimit").or_insert(json!(10));
            spec.entry("updateStrategy")
                .or_insert(json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}));
            // `rollingUpdate.maxUnavailable` needs the MaxUnavailableStatefulSet feature gate,
            // off by default through Kubernetes 1.34: the API server drops the field unless
            // the stored object already has it (`dropStatefulSetDisabledFields`).
            let in_use = old.is_some_and(|o| {
                doc::at(
                    o,
                    &["spec", "updateStrategy", "rollingUpdate", "maxUnavailable"],
                )
                .is_some()
            });
            if !in_use
                && let Some(ru) = obj
                    .pointer_mut("/spec/updateStrategy/rollingUpdate")
                    .and_then(Value::as_object_mut)
            {
                ru.remove("maxUnavailable");
            }
        }
        _ => {
            spec.entry("revisionHistoryLimit").or_insert(json!(10));
            spec.entry("updateStrategy").or_insert(json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}));
        }
    }
    default_pod_spec(obj.pointer_mut("/spec/template/spec"), false);
    non_negative(obj, "replicas", errs);
    selector_and_template(obj, old, errs);
    pod_spec(
        doc::at(obj, &["spec", "template", "spec"]),
        "spec.template.spec",
        &["Always"],
        errs,
    );
}

fn job(obj: &mut Value, old: Option<&Value>, errs: &mut Errs) {
    let uid_label = "batch.kubernetes.io/controller-uid";
    let spec = doc::map_mut(obj, &["spec"]);
    spec.entry("backoffLimit").or_insert(json!(6));
    spec.entry("completions").or_insert(json!(1));
    spec.entry("parallelism").or_insert(json!(1));
    spec.entry("completionMode").or_insert(json!("NonIndexed"));
    spec.entry("suspend").or_insert(json!(false));
    default_pod_spec(obj.pointer_mut("/spec/template/spec"), false);
    if old.is_none() && doc::at(obj, &["spec", "selector"]).is_none() {
        // The API server generates the selector from the uid the store will assign; a
        // placeholder label is replaced when the Job is stored.
        let job_name = doc::name(obj).to_string();
        doc::set(
            obj,
            &["spec", "selector"],
            json!({"matchLabels": {"batch.kubernetes.io/job-name": job_name}}),
        );
        doc::map_mut(obj, &["spec", "template", "metadata", "labels"])
            .insert("batch.kubernetes.io/job-name".into(), json!(job_name));
        doc::map_mut(obj, &["spec", "template", "metadata", "labels"])
            .insert("job-name".into(), json!(job_name));
        let _ = uid_label;
    }
    for f in ["backoffLimit", "completions", "parallelism"] {
        non_negative(obj, f, errs);
    }
    pod_spec(
        doc::at(obj, &["spec", "template", "spec"]),
        "spec.template.spec",
        &["OnFailure", "Never"],
        errs,
    );
    if doc::str_at(obj, &["spec", "template", "spec", "restartPolicy"]) == "Always" {
        errs.unsupported(
            "spec.template.spec.restartPolicy",
            "Always",
            &["OnFailure", "Never"],
        );
    }
    if let Some(old) = old
        && old.pointer("/spec/template") != obj.pointer("/spec/template")
    {
        errs.invalid(
            "spec.template",
            obj.pointer("/spec/template").unwrap_or(&Value::Null),
            "field is immutable",
        );
    }
}

fn cronjob(obj: &mut Value, errs: &mut Errs) {
    let spec = doc::map_mut(obj, &["spec"]);
    spec.entry("concurrencyPolicy").or_insert(json!("Allow"));
    spec.entry("suspend").or_insert(json!(false));
    spec.entry("successfulJobsHistoryLimit").or_insert(json!(3));
    spec.entry("failedJobsHistoryLimit").or_insert(json!(1));
    let schedule = doc::str_at(obj, &["spec", "schedule"]).to_string();
    if schedule.is_empty() {
        errs.required("spec.schedule");
    } else if let Err(e) = crate::engine::cron::Schedule::parse(&schedule) {
        errs.invalid("spec.schedule", &json!(schedule), &e);
    }
    let policy = doc::str_at(obj, &["spec", "concurrencyPolicy"]).to_string();
    if !["Allow", "Forbid", "Replace"].contains(&policy.as_str()) {
        errs.unsupported(
            "spec.concurrencyPolicy",
            &policy,
            &["Allow", "Forbid", "Replace"],
        );
    }
    if doc::at(obj, &["spec", "jobTemplate", "spec", "template"]).is_none() {
        errs.required("spec.jobTemplate.spec.template");
    }
    default_pod_spec(
        obj.pointer_mut("/spec/jobTemplate/spec/template/spec"),
        false,
    );
    pod_spec(
        doc::at(obj, &["spec", "jobTemplate", "spec", "template", "spec"]),
        "spec.jobTemplate.spec.template.spec",
        &["OnFailure", "Never"],
        errs,
    );
}

fn hpa(obj: &mut Value, errs: &mut Errs) {
    let spec = doc::map_mut(obj, &["spec"]);
    spec.entry("minReplicas").or_insert(json!(1));
    if doc::at(obj, &["spec", "scaleTargetRef", "name"]).is_none() {
        errs.required("spec.scaleTargetRef.name");
    }
    let min = doc::i64_at(obj, &["spec", "minReplicas"]).unwrap_or(1);
    match doc::i64_at(obj, &["spec", "maxReplicas"]) {
        None => errs.required("spec.maxReplicas"),
        Some(max) if max < min => errs.invalid(
            "spec.maxReplicas",
            &json!(max),
            "must be greater than or equal to `minReplicas`",
        ),
        _ => {}
    }
    if min < 1 {
        errs.invalid(
            "spec.minReplicas",
            &json!(min),
            "must be greater than or equal to 1",
        );
    }
}

fn data_keys(obj: &Value, fields: &[&str], errs: &mut Errs) {
    for f in fields {
        for k in obj
            .get(*f)
            .and_then(Value::as_object)
            .into_iter()
            .flat_map(|m| m.keys())
        {
            if k.is_empty()
                || k.len() > 253
                || !k
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
            {
                errs.invalid(&format!("{f}[{k}]"), &json!(k), "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')");
            }
        }
    }
}

/// The largest Secret the API server stores (`MaxSecretSize`).
const MAX_SECRET_BYTES: usize = 1024 * 1024;

/// Keys each Secret type requires (`ValidateSecret`).
const SECRET_TYPE_KEYS: &[(&str, &[&str])] = &[
    ("kubernetes.io/dockerconfigjson", &[".dockerconfigjson"]),
    ("kubernetes.io/dockercfg", &[".dockercfg"]),
    ("kubernetes.io/ssh-auth", &["ssh-privatekey"]),
    ("kubernetes.io/tls", &["tls.crt", "tls.key"]),
];

/// Validates a Secret as the API server does; `Err` is a decoding failure (the whole message).
/// Values never appear in messages.
fn secret(obj: &mut Value, old: Option<&Value>, errs: &mut Errs) -> Result<(), String> {
    let cannot =
        |why: String| format!("Secret in version \"v1\" cannot be handled as a Secret: {why}");
    if obj.get("type").is_none() {
        obj["type"] = json!("Opaque");
    }
    if let Some(Value::Object(string_data)) =
        obj.as_object_mut().and_then(|m| m.remove("stringData"))
    {
        let data = doc::map_mut(obj, &["data"]);
        for (k, v) in string_data {
            let Some(text) = v.as_str() else {
                return Err(cannot(format!(
                    "json: cannot unmarshal {} into Go struct field Secret.stringData of type string",
                    json_kind(&v)
                )));
            };
            data.insert(k, json!(base64(text.as_bytes())));
        }
    }
    let mut total = 0;
    let mut decoded_keys = BTreeSet::new();
    for (key, value) in doc::at(obj, &["data"])
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let Some(text) = value.as_str() else {
            if value.is_null() {
                continue;
            }
            return Err(cannot(format!(
                "json: cannot unmarshal {} into Go struct field Secret.data of type []uint8",
                json_kind(value)
            )));
        };
        match base64_decoded_len(text) {
            Ok(n) => total += n,
            Err(at) => return Err(cannot(format!("illegal base64 data at input byte {at}"))),
        }
        decoded_keys.insert(key.clone());
    }
    data_keys(obj, &["data"], errs);
    if total > MAX_SECRET_BYTES {
        errs.0.push(format!(
            "data: Too long: must have at most {MAX_SECRET_BYTES} bytes"
        ));
    }
    let kind = doc::str_at(obj, &["type"]).to_string();
    for (t, keys) in SECRET_TYPE_KEYS {
        if kind == *t {
            for key in *keys {
                if !decoded_keys.contains(*key) {
                    errs.required(&format!("data[{key}]"));
                }
            }
        }
    }
    if kind == "kubernetes.io/basic-auth"
        && !decoded_keys.contains("username")
        && !decoded_keys.contains("password")
    {
        errs.required("data[username]");
        errs.required("data[password]");
    }
    if kind == "kubernetes.io/service-account-token"
        && doc::str_at(
            obj,
            &[
                "metadata",
                "annotations",
                "kubernetes.io/service-account.name",
            ],
        )
        .is_empty()
    {
        errs.required("metadata.annotations[kubernetes.io/service-account.name]");
    }
    if let Some(old) = old {
        let old_type = doc::str_at(old, &["type"]);
        if old_type != kind {
            errs.invalid("type", &json!(kind), "field is immutable");
        }
        if doc::at(old, &["immutable"]).and_then(Value::as_bool) == Some(true) {
            if doc::at(obj, &["immutable"]).and_then(Value::as_bool) != Some(true) {
                errs.forbidden("immutable", "field is immutable when `immutable` is set");
            }
            if old.get("data") != obj.get("data") {
                errs.forbidden("data", "field is immutable when `immutable` is set");
            }
        }
    }
    Ok(())
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Object(_) => "object",
        Value::Array(_) => "array",
        Value::Number(_) => "number",
        Value::Bool(_) => "bool",
        _ => "string",
    }
}

/// The decoded length of standard padded base64 text, or the byte offset of the first
/// character Go's decoder refuses.
fn base64_decoded_len(text: &str) -> Result<usize, usize> {
    let bytes = text.as_bytes();
    let valid = |b: u8| b.is_ascii_alphanumeric() || b == b'+' || b == b'/';
    let body = bytes.iter().rposition(|b| *b != b'=').map_or(0, |p| p + 1);
    let padding = bytes.len() - body;
    if let Some(at) = bytes[..body].iter().position(|b| !valid(*b)) {
        return Err(at);
    }
    if padding > 2 || !bytes.len().is_multiple_of(4) {
        return Err(bytes.len().saturating_sub(padding).max(bytes.len() / 4 * 4));
    }
    Ok(bytes.len() / 4 * 3 - padding)
}

/// Standard base64 with padding.
pub fn base64(bytes: &[u8]) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn access_modes(modes: Option<&Value>, path: &str, errs: &mut Errs) {
    const MODES: &[&str] = &[
        "ReadWriteOnce",
        "ReadOnlyMany",
        "ReadWriteMany",
        "ReadWriteOncePod",
    ];
    for m in modes.and_then(Value::as_array).into_iter().flatten() {
        let s = m.as_str().unwrap_or_default();
        if !MODES.contains(&s) {
            errs.unsupported(path, s, MODES);
        }
    }
}

fn ingress(obj: &Value, errs: &mut Errs) {
    let backend = |b: &Value, path: &str, errs: &mut Errs| {
        if let Some(svc) = b.get("service") {
            if doc::str_at(svc, &["name"]).is_empty() {
                errs.required(&format!("{path}.service.name"));
            }
            let port = svc.get("port");
            if port.is_none_or(|p| p.get("number").is_none() && p.get("name").is_none()) {
                errs.required(&format!("{path}.service.port"));
            }
        } else if b.get("resource").is_none() {
            errs.required(&format!("{path}.service"));
        }
    };
    if let Some(b) = doc::at(obj, &["spec", "defaultBackend"]) {
        backend(b, "spec.defaultBackend", errs);
    }
    for (i, rule) in doc::at(obj, &["spec", "rules"])
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let host = doc::str_at(rule, &["host"]);
        let bare = host.strip_prefix("*.").unwrap_or(host);
        if !host.is_empty() && !is_subdomain(bare) {
            errs.invalid(
                &format!("spec.rules[{i}].host"),
                &json!(host),
                SUBDOMAIN_MSG,
            );
        }
        for (j, p) in doc::at(rule, &["http", "paths"])
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let path = format!("spec.rules[{i}].http.paths[{j}]");
            let pt = doc::str_at(p, &["pathType"]);
            if pt.is_empty() {
                errs.required(&format!("{path}.pathType"));
            } else if !["Exact", "Prefix", "ImplementationSpecific"].contains(&pt) {
                errs.unsupported(
                    &format!("{path}.pathType"),
                    pt,
                    &["Exact", "ImplementationSpecific", "Prefix"],
                );
            }
            let p_text = doc::str_at(p, &["path"]);
            if pt != "ImplementationSpecific" && !p_text.starts_with('/') {
                errs.invalid(
                    &format!("{path}.path"),
                    &json!(p_text),
                    "must be an absolute path",
                );
            }
            match p.get("backend") {
                Some(b) => backend(b, &format!("{path}.backend"), errs),
                None => errs.required(&format!("{path}.backend")),
            }
        }
    }
}

fn ip_to_u32(ip: &str) -> Option<u32> {
    let parts: Vec<u32> = ip
        .split('.')
        .map(|p| p.parse::<u32>().ok().filter(|v| *v < 256))
        .collect::<Option<_>>()?;
    (parts.len() == 4).then(|| (parts[0] << 24) | (parts[1] << 16) | (parts[2] << 8) | parts[3])
}

fn u32_to_ip(v: u32) -> String {
    format!(
        "{}.{}.{}.{}",
        v >> 24,
        (v >> 16) & 255,
        (v >> 8) & 255,
        v & 255
    )
}

fn service(state: &State, rng: &mut Rng, obj: &mut Value, old: Option<&Value>, errs: &mut Errs) {
    let kind = match doc::str_at(obj, &["spec", "type"]) {
        "" => "ClusterIP".to_string(),
        t => t.to_string(),
    };
    if !["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"].contains(&kind.as_str()) {
        errs.unsupported(
            "spec.type",
            &kind,
            &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"],
        );
        return;
    }
    doc::set(obj, &["spec", "type"], json!(kind));
    let spec = doc::map_mut(obj, &["spec"]);
    spec.entry("sessionAffinity").or_insert(json!("None"));
    if kind != "ExternalName" {
        spec.entry("internalTrafficPolicy")
            .or_insert(json!("Cluster"));
        spec.entry("ipFamilies").or_insert(json!(["IPv4"]));
        spec.entry("ipFamilyPolicy").or_insert(json!("SingleStack"));
    }
    if kind == "NodePort" || kind == "LoadBalancer" {
        spec.entry("externalTrafficPolicy")
            .or_insert(json!("Cluster"));
    }
    let (ns, name) = (doc::namespace(obj).to_string(), doc::name(obj).to_string());
    let others = || {
        state
            .kind("Service")
            .values()
            .map(|s| &s.doc)
            .filter(|s| !(doc::namespace(s) == ns && doc::name(s) == name))
    };
    // Cluster IP.
    let requested = doc::str_at(obj, &["spec", "clusterIP"]).to_string();
    let previous = old
        .map(|o| doc::str_at(o, &["spec", "clusterIP"]).to_string())
        .filter(|s| !s.is_empty());
    let ip = if kind == "ExternalName" {
        String::new()
    } else if let Some(prev) = &previous {
        if !requested.is_empty() && &requested != prev {
            errs.invalid(
                "spec.clusterIPs[0]",
                &json!(requested),
                "may not change once set",
            );
        }
        prev.clone()
    } else if requested == "None" {
        requested
    } else {
        let used: BTreeSet<String> = others()
            .map(|s| doc::str_at(s, &["spec", "clusterIP"]).to_string())
            .collect();
        let (base, bits) = SERVICE_CIDR;
        let size = 1u32 << (32 - bits);
        if requested.is_empty() {
            let mut chosen = String::new();
            for _ in 0..64 {
                let candidate = u32_to_ip(base + 2 + rng.below(u64::from(size - 3)) as u32);
                if !used.contains(&candidate) {
                    chosen = candidate;
                    break;
                }
            }
            chosen
        } else {
            match ip_to_u32(&requested) {
                Some(v) if v >= base && v < base + size => {
                    if used.contains(&requested) {
                        errs.invalid("spec.clusterIPs", &json!([requested.clone()]), &format!("failed to allocate IP {requested}: provided IP is already allocated"));
                    }
                }
                Some(_) => errs.invalid(
                    "spec.clusterIPs",
                    &json!([requested.clone()]),
                    &format!("failed to allocate IP {requested}: the provided IP ({requested}) is not in the valid range. The range of valid IPs is 10.96.0.0/12"),
                ),
                None => errs.invalid("spec.clusterIPs[0]", &json!(requested), "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"),
            }
            requested
        }
    };
    if !ip.is_empty() {
        doc::set(obj, &["spec", "clusterIP"], json!(ip));
        doc::set(obj, &["spec", "clusterIPs"], json!([ip]));
    }
    // Ports.
    let ports_len = doc::at(obj, &["spec", "ports"])
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    if ports_len == 0 && kind != "ExternalName" && ip != "None" {
        errs.required("spec.ports");
    }
    let used_node_ports: BTreeSet<i64> = others()
        .flat_map(|s| {
            doc::at(s, &["spec", "ports"])
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|p| doc::i64_at(&p, &["nodePort"]))
        .collect();
    let old_ports = old
        .and_then(|o| doc::at(o, &["spec", "ports"]))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut names = BTreeSet::new();
    let mut taken: BTreeSet<i64> = BTreeSet::new();
    let wants_node_port = kind == "NodePort" || kind == "LoadBalancer";
    if let Some(ports) = obj.pointer_mut("/spec/ports").and_then(Value::as_array_mut) {
        for (i, p) in ports.iter_mut().enumerate() {
            let path = format!("spec.ports[{i}]");
            let port = doc::i64_at(p, &["port"]).unwrap_or(0);
            if !(1..=65535).contains(&port) {
                errs.invalid(
                    &format!("{path}.port"),
                    p.get("port").unwrap_or(&Value::Null),
                    "must be between 1 and 65535, inclusive",
                );
            }
            let pname = doc::str_at(p, &["name"]).to_string();
            if ports_len > 1 && pname.is_empty() {
                errs.required(&format!("{path}.name"));
            } else if !pname.is_empty() && !names.insert(pname.clone()) {
                errs.duplicate(&format!("{path}.name"), &json!(pname));
            }
            let Some(pm) = p.as_object_mut() else {
                continue;
            };
            pm.entry("protocol").or_insert(json!("TCP"));
            pm.entry("targetPort").or_insert(json!(port));
            let proto = pm
                .get("protocol")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            if !["TCP", "UDP", "SCTP"].contains(&proto.as_str()) {
                errs.unsupported(&format!("{path}.protocol"), &proto, &["SCTP", "TCP", "UDP"]);
            }
            match (wants_node_port, pm.get("nodePort").and_then(Value::as_i64)) {
                (false, Some(_)) => errs.forbidden(
                    &format!("{path}.nodePort"),
                    &format!("may not be used when `type` is '{kind}'"),
                ),
                (true, Some(np)) => {
                    let kept = old_ports
                        .iter()
                        .any(|o| doc::i64_at(o, &["nodePort"]) == Some(np));
                    if !NODE_PORTS.contains(&np) {
                        errs.invalid(&format!("{path}.nodePort"), &json!(np), "provided port is not in the valid range. The range of valid ports is 30000-32767");
                    } else if !kept && (used_node_ports.contains(&np) || taken.contains(&np)) {
                        errs.invalid(
                            &format!("{path}.nodePort"),
                            &json!(np),
                            "provided port is already allocated",
                        );
                    }
                    taken.insert(np);
                }
                (true, None) => {
                    let reuse = old_ports
                        .iter()
                        .find(|o| {
                            doc::i64_at(o, &["port"]) == Some(port)
                                && doc::str_at(o, &["protocol"]) == proto
                        })
                        .and_then(|o| doc::i64_at(o, &["nodePort"]));
                    let np = reuse.unwrap_or_else(|| {
                        loop {
                            let candidate = 30000 + rng.below(2768) as i64;
                            if !used_node_ports.contains(&candidate) && !taken.contains(&candidate)
                            {
                                break candidate;
                            }
                        }
                    });
                    taken.insert(np);
                    pm.insert("nodePort".into(), json!(np));
                }
                (false, None) => {}
            }
        }
    }
    if old.is_none() && obj.get("status").is_none() {
        obj["status"] = json!({"loadBalancer": {}});
    }
}

/// Applies LimitRange container defaults (`default` → limits, `defaultRequest` → requests).
fn apply_limit_ranges(state: &State, ns: &str, pod: &mut Value) {
    let ranges: Vec<Value> = state
        .in_namespace("LimitRange", ns)
        .map(|s| s.doc.clone())
        .collect();
    for lr in ranges {
        for limit in doc::at(&lr, &["spec", "limits"])
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if doc::str_at(limit, &["type"]) != "Container" {
                continue;
            }
            for field in ["containers", "initContainers"] {
                for c in pod
                    .pointer_mut(&format!("/spec/{field}"))
                    .and_then(Value::as_array_mut)
                    .into_iter()
                    .flatten()
                {
                    for (source, target) in [("default", "limits"), ("defaultRequest", "requests")]
                    {
                        for (res, q) in limit
                            .get(source)
                            .and_then(Value::as_object)
                            .into_iter()
                            .flatten()
                        {
                            let m = doc::map_mut(c, &["resources", target]);
                            m.entry(res.clone()).or_insert(q.clone());
                        }
                    }
                    // A request defaults to the limit when only the limit is known.
                    let limits = doc::at(c, &["resources", "limits"]).cloned();
                    if let Some(Value::Object(l)) = limits {
                        for (res, q) in l {
                            doc::map_mut(c, &["resources", "requests"])
                                .entry(res)
                                .or_insert(q);
                        }
                    }
                }
            }
        }
    }
}

/// One exceeded quota line: resource, requested, used, limit.
type Exceeded = (String, String, String, String);

/// ResourceQuota enforcement, as the API server's quota admission: every quota of the
/// namespace that tracks something the object is charged must still hold with the charge
/// added (on an update, only what grew is charged). Refused with the API server's
/// `exceeded quota` message, resources in name order.
fn quota(
    state: &State,
    info: &KindInfo,
    old: Option<&Value>,
    obj: &Value,
    pending: &Pending,
) -> Result<(), String> {
    let ns = doc::namespace(obj);
    let quotas: Vec<&Value> = state
        .in_namespace("ResourceQuota", ns)
        .map(|s| &s.doc)
        .collect();
    if quotas.is_empty() {
        return Ok(());
    }
    for q in quotas {
        let Some(hard) = doc::at(q, &["spec", "hard"]).and_then(Value::as_object) else {
            continue;
        };
        let mut over: Vec<Exceeded> = Vec::new();
        for (res, limit) in hard {
            let Some(charged) = super::quota::charge(info, obj, res) else {
                continue;
            };
            if old.is_none()
                && info.kind == "Pod"
                && res != "pods"
                && !res.starts_with("count/")
                && charged == 0
            {
                return Err(format!(
                    "pods \"{}\" is forbidden: failed quota: {}: must specify {res}",
                    doc::name(obj),
                    doc::name(q)
                ));
            }
            let before = old
                .and_then(|o| super::quota::charge(info, o, res))
                .unwrap_or(0);
            let requested = charged - before;
            if requested <= 0 {
                continue;
            }
            let Some(limit_v) = super::quota::limit(res, limit) else {
                continue;
            };
            let queued: i64 = pending
                .iter()
                .filter(|(_, p)| doc::namespace(p) == ns)
                .filter_map(|(i, p)| super::quota::charge(i, p, res))
                .sum();
            let used = super::quota::usage(state, ns, res).unwrap_or(0) + queued;
            if used + requested > limit_v {
                let show = |v: i64| super::quota::show(res, v);
                over.push((
                    res.clone(),
                    show(requested),
                    show(used),
                    show_plain(Some(limit)),
                ));
            }
        }
        if !over.is_empty() {
            over.sort();
            let join =
                |f: &dyn Fn(&Exceeded) -> String| over.iter().map(f).collect::<Vec<_>>().join(",");
            return Err(format!(
                "{} \"{}\" is forbidden: exceeded quota: {}, requested: {}, used: {}, limited: {}",
                info.plural,
                doc::name(obj),
                doc::name(q),
                join(&|o| format!("{}={}", o.0, o.1)),
                join(&|o| format!("{}={}", o.0, o.2)),
                join(&|o| format!("{}={}", o.0, o.3)),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_rfc_1123() {
        assert!(is_subdomain("web.v1-app"));
        assert!(!is_subdomain("Web"));
        assert!(!is_subdomain("-web"));
        assert!(is_dns1035("web"));
        assert!(!is_dns1035("1web"));
        assert!(is_label_value("v1.2_x"));
        assert!(!is_label_value("-x"));
    }

    #[test]
    fn generate_name_prefixes_are_checked_with_the_dash_masked() {
        let info = super::super::kinds::by_kind("ConfigMap").unwrap_or_else(|| panic!("kind"));
        let mut errs = Errs::default();
        let mut ok = json!({"metadata": {"generateName": "web-", "name": "web-x2k9p"}});
        metadata(info, &mut ok, &mut errs);
        assert!(errs.0.is_empty(), "{:?}", errs.0);
        let mut bad = json!({"metadata": {"generateName": "Web-", "name": "Web-x2k9p"}});
        metadata(info, &mut bad, &mut errs);
        let fields: Vec<&str> = errs
            .0
            .iter()
            .map(|e| e.split(':').next().unwrap_or_default())
            .collect();
        assert_eq!(fields, ["metadata.generateName", "metadata.name"]);
    }

    #[test]
    fn base64_pads() {
        assert_eq!(base64(b"abc"), "YWJj");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"a"), "YQ==");
    }
}

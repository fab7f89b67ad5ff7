//! Scenarios for storage on the engine, checked against what Kubernetes answers: ResourceQuota
//! on claims (total, count and per StorageClass), names generated before admission, the
//! DefaultStorageClass admission plugin and retroactive default class assignment, storage
//! object in-use protection, and the StatefulSet controller's events and update strategy.

use reconcile::engine::{Engine, Propagation, doc};
use serde_json::{Value, json};

fn engine(nodes: usize) -> Engine {
    Engine::in_memory(nodes).expect("engine")
}

fn get(e: &mut Engine, kind: &str, name: &str) -> Value {
    let ns = if kind == "pv" || kind == "sc" {
        ""
    } else {
        "default"
    };
    e.get(kind, ns, name)
        .expect("get")
        .unwrap_or_else(|| panic!("{kind}/{name} missing"))
}

fn exists(e: &mut Engine, kind: &str, name: &str) -> bool {
    let ns = if kind == "pv" { "" } else { "default" };
    e.get(kind, ns, name).expect("get").is_some()
}

fn claim(name: &str, size: &str, class: Option<&str>) -> Value {
    let mut c = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}});
    if let Some(cl) = class {
        c["spec"]["storageClassName"] = json!(cl);
    }
    c
}

fn volume(name: &str, size: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
        "spec": {"capacity": {"storage": size}, "accessModes": ["ReadWriteOnce"],
            "hostPath": {"path": format!("/data/{name}")}}})
}

fn class(name: &str, default: bool) -> Value {
    let mut c = json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": name}, "provisioner": "rancher.io/local-path",
        "reclaimPolicy": "Delete", "volumeBindingMode": "Immediate"});
    if default {
        c["metadata"]["annotations"] =
            json!({"storageclass.kubernetes.io/is-default-class": "true"});
    }
    c
}

fn quota(name: &str, hard: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": name},
        "spec": {"hard": hard}})
}

fn pod_with_claim(name: &str, claim: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "app:1"}],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]}})
}

fn refusal(result: Result<Value, reconcile::engine::Error>) -> String {
    match result {
        Ok(v) => panic!("admitted: {v:#}"),
        Err(e) => e.to_string(),
    }
}

/// Messages of the events about one object, oldest first: (type, reason, message).
fn events_of(e: &mut Engine, kind: &str, name: &str) -> Vec<(String, String, String)> {
    e.events(Some("default"))
        .expect("events")
        .into_iter()
        .filter(|ev| ev.object_kind == kind && ev.object_name == name)
        .map(|ev| (ev.kind, ev.reason, ev.message))
        .collect()
}

fn finalizers(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|f| {
            f.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

// ---------------------------------------------------------------- ResourceQuota on claims

#[test]
fn quota_caps_claims_by_storage_count_and_class() {
    let mut e = engine(1);
    for c in ["gold", "silver"] {
        e.create(&class(c, false)).expect("class");
    }
    e.create(&quota(
        "storage",
        json!({"requests.storage": "10Gi", "persistentvolumeclaims": "3",
            "gold.storageclass.storage.k8s.io/requests.storage": "4Gi",
            "gold.storageclass.storage.k8s.io/persistentvolumeclaims": "1"}),
    ))
    .expect("quota");
    // (claim, size, class, the API server's refusal or None)
    let table: &[(&str, &str, Option<&str>, Option<&str>)] = &[
        ("a", "3Gi", Some("gold"), None),
        (
            "b",
            "2Gi",
            Some("gold"),
            Some(
                "persistentvolumeclaims \"b\" is forbidden: exceeded quota: storage, requested: gold.storageclass.storage.k8s.io/persistentvolumeclaims=1,gold.storageclass.storage.k8s.io/requests.storage=2Gi, used: gold.storageclass.storage.k8s.io/persistentvolumeclaims=1,gold.storageclass.storage.k8s.io/requests.storage=3Gi, limited: gold.storageclass.storage.k8s.io/persistentvolumeclaims=1,gold.storageclass.storage.k8s.io/requests.storage=4Gi",
            ),
        ),
        ("c", "5Gi", Some("silver"), None),
        (
            "d",
            "3Gi",
            Some("silver"),
            Some(
                "persistentvolumeclaims \"d\" is forbidden: exceeded quota: storage, requested: requests.storage=3Gi, used: requests.storage=8Gi, limited: requests.storage=10Gi",
            ),
        ),
        ("e", "1Gi", Some("silver"), None),
        (
            "f",
            "1Gi",
            None,
            Some(
                "persistentvolumeclaims \"f\" is forbidden: exceeded quota: storage, requested: persistentvolumeclaims=1, used: persistentvolumeclaims=3, limited: persistentvolumeclaims=3",
            ),
        ),
    ];
    for (name, size, cl, want) in table {
        let result = e.create(&claim(name, size, *cl));
        match want {
            None => {
                result.unwrap_or_else(|err| panic!("claim {name} refused: {err}"));
            }
            Some(msg) => assert_eq!(refusal(result), *msg, "claim {name}"),
        }
    }
    assert!(!exists(&mut e, "pvc", "b"), "a refused claim is not stored");
    e.advance(1_000).expect("advance");
    // What `kubectl get quota` shows.
    let q = get(&mut e, "quota", "storage");
    assert_eq!(
        q["status"]["used"],
        json!({"requests.storage": "9Gi", "persistentvolumeclaims": "3",
            "gold.storageclass.storage.k8s.io/requests.storage": "3Gi",
            "gold.storageclass.storage.k8s.io/persistentvolumeclaims": "1"}),
        "{q:#}"
    );
    assert_eq!(q["status"]["hard"], q["spec"]["hard"]);
    // Freeing the gold claim makes room for another gold claim.
    e.delete("pvc", "default", "a", Propagation::Background)
        .expect("delete");
    e.advance(1_000).expect("advance");
    e.create(&claim("b", "2Gi", Some("gold")))
        .expect("b fits now");
}

#[test]
fn growing_a_claim_is_charged_only_what_it_grows() {
    let mut e = engine(1);
    e.create(&volume("big", "10Gi")).expect("pv");
    e.create(&quota("storage", json!({"requests.storage": "5Gi"})))
        .expect("quota");
    e.create(&claim("data", "2Gi", None)).expect("claim");
    e.advance(1_000).expect("advance");
    let mut grown = claim("data", "4Gi", None);
    e.apply(&grown).expect("4Gi fits");
    grown["spec"]["resources"]["requests"]["storage"] = json!("6Gi");
    assert_eq!(
        e.apply(&grown).err().map(|e| e.to_string()).as_deref(),
        Some(
            "persistentvolumeclaims \"data\" is forbidden: exceeded quota: storage, requested: requests.storage=2Gi, used: requests.storage=4Gi, limited: requests.storage=5Gi"
        )
    );
    let stored = get(&mut e, "pvc", "data");
    assert_eq!(stored["spec"]["resources"]["requests"]["storage"], "4Gi");
}

// ---------------------------------------------------------------- generated names

fn is_generated(name: &str, prefix: &str) -> bool {
    name.strip_prefix(prefix).is_some_and(|suffix| {
        suffix.len() == 5
            && suffix
                .chars()
                .all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c))
    })
}

#[test]
fn a_refused_generate_name_pod_is_named_in_the_error() {
    let mut e = engine(1);
    e.create(&quota("pods", json!({"pods": "1"})))
        .expect("quota");
    e.create(
        &json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "first"},
        "spec": {"containers": [{"name": "c", "image": "app:1"}]}}),
    )
    .expect("first pod");
    let message = refusal(e.create(&json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"generateName": "job-"},
        "spec": {"containers": [{"name": "c", "image": "app:1"}]}})));
    let name = message
        .strip_prefix("pods \"")
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_default()
        .to_string();
    assert!(is_generated(&name, "job-"), "{message}");
    assert_eq!(
        message,
        format!(
            "pods \"{name}\" is forbidden: exceeded quota: pods, requested: pods=1, used: pods=1, limited: pods=1"
        )
    );
}

#[test]
fn replica_set_failed_create_names_the_generated_pod() {
    let mut e = engine(3);
    e.create(&quota("pods", json!({"pods": "1"})))
        .expect("quota");
    e.create(
        &json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "web:1"}]}}}}),
    )
    .expect("deployment");
    e.advance(5_000).expect("advance");
    let rs = e.list("rs", Some("default"), None).expect("rs");
    let rs_name = doc::name(&rs[0]).to_string();
    let failures: Vec<String> = events_of(&mut e, "ReplicaSet", &rs_name)
        .into_iter()
        .filter(|(_, reason, _)| reason == "FailedCreate")
        .map(|(_, _, m)| m)
        .collect();
    assert!(!failures.is_empty(), "no FailedCreate");
    for m in &failures {
        let name = m
            .strip_prefix("Error creating: pods \"")
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_default();
        assert!(is_generated(name, &format!("{rs_name}-")), "{m}");
        assert!(!exists(&mut e, "pod", name), "{name} was not created");
        assert!(
            m.ends_with(" is forbidden: exceeded quota: pods, requested: pods=1, used: pods=1, limited: pods=1"),
            "{m}"
        );
    }
}

// ---------------------------------------------------------------- default StorageClass

#[test]
fn claims_get_the_default_class_at_admission_or_retroactively() {
    let mut e = engine(1);
    // No default class yet: the claim stays class-less and waits.
    e.create(&claim("early", "1Gi", None)).expect("early");
    e.create(&claim("explicit-none", "1Gi", Some("")))
        .expect("explicit");
    e.advance(1_000).expect("advance");
    let early = get(&mut e, "pvc", "early");
    assert!(
        early.pointer("/spec/storageClassName").is_none(),
        "{early:#}"
    );
    assert_eq!(doc::str_at(&early, &["status", "phase"]), "Pending");
    // A default class appears: the PV controller gives it to the waiting claim (retroactive
    // assignment, GA in 1.28), which is then provisioned and bound.
    e.create(&class("standard", true)).expect("class");
    e.advance(1_000).expect("advance");
    let early = get(&mut e, "pvc", "early");
    assert_eq!(
        doc::str_at(&early, &["spec", "storageClassName"]),
        "standard"
    );
    assert_eq!(
        doc::str_at(&early, &["status", "phase"]),
        "Bound",
        "{early:#}"
    );
    // An explicit empty class is a choice: never defaulted.
    let none = get(&mut e, "pvc", "explicit-none");
    assert_eq!(none["spec"]["storageClassName"], "");
    assert_eq!(doc::str_at(&none, &["status", "phase"]), "Pending");
    // Created while a default exists: admission writes the class into the stored spec.
    let late = e.create(&claim("late", "1Gi", None)).expect("late");
    assert_eq!(
        doc::str_at(&late, &["spec", "storageClassName"]),
        "standard"
    );
    // Two defaults: the newest wins (Kubernetes 1.26+).
    e.advance(60_000).expect("advance");
    e.create(&class("fast", true)).expect("second default");
    let newest = e.create(&claim("newest", "1Gi", None)).expect("newest");
    assert_eq!(doc::str_at(&newest, &["spec", "storageClassName"]), "fast");
    // The beta annotation names a class as well as the field does.
    let mut beta = claim("beta", "1Gi", None);
    beta["metadata"]["annotations"] = json!({"volume.beta.kubernetes.io/storage-class": "gold"});
    let beta = e.create(&beta).expect("beta");
    assert!(beta.pointer("/spec/storageClassName").is_none(), "{beta:#}");
}

// ---------------------------------------------------------------- in-use protection

#[test]
fn claims_and_volumes_get_protection_finalizers() {
    let mut e = engine(1);
    let pv = e.create(&volume("vol", "1Gi")).expect("pv");
    assert_eq!(finalizers(&pv), ["kubernetes.io/pv-protection"]);
    let pvc = e.create(&claim("data", "1Gi", None)).expect("pvc");
    assert_eq!(finalizers(&pvc), ["kubernetes.io/pvc-protection"]);
    // An apply that does not mention them keeps them.
    e.advance(1_000).expect("advance");
    let applied = e.apply(&claim("data", "1Gi", None)).expect("apply");
    assert_eq!(finalizers(&applied), ["kubernetes.io/pvc-protection"]);
    // A claim nobody uses goes at once; its Retain volume is Released.
    e.delete("pvc", "default", "data", Propagation::Background)
        .expect("delete");
    e.advance(1_000).expect("advance");
    assert!(!exists(&mut e, "pvc", "data"));
    assert_eq!(
        doc::str_at(&get(&mut e, "pv", "vol"), &["status", "phase"]),
        "Released"
    );
}

#[test]
fn a_claim_in_use_stays_terminating_until_its_pod_is_gone() {
    let mut e = engine(1);
    e.create(&volume("vol", "1Gi")).expect("pv");
    e.create(&claim("data", "1Gi", None)).expect("pvc");
    e.create(&pod_with_claim("app", "data")).expect("pod");
    e.advance(5_000).expect("advance");
    assert_eq!(
        doc::str_at(&get(&mut e, "pod", "app"), &["status", "phase"]),
        "Running"
    );
    e.delete("pvc", "default", "data", Propagation::Background)
        .expect("delete");
    e.advance(60_000).expect("advance");
    let pvc = get(&mut e, "pvc", "data");
    assert!(doc::is_deleting(&pvc), "Terminating: {pvc:#}");
    assert_eq!(finalizers(&pvc), ["kubernetes.io/pvc-protection"]);
    // The volume is still bound to it, and protected while bound.
    e.delete("pv", "", "vol", Propagation::Background)
        .expect("delete pv");
    e.advance(1_000).expect("advance");
    let pv = get(&mut e, "pv", "vol");
    assert!(doc::is_deleting(&pv));
    assert_eq!(doc::str_at(&pv, &["status", "phase"]), "Bound");
    // The pod goes (30 s grace): the claim goes, then the volume, no longer bound.
    e.delete("pod", "default", "app", Propagation::Background)
        .expect("delete pod");
    e.advance(60_000).expect("advance");
    assert!(!exists(&mut e, "pvc", "data"));
    assert!(!exists(&mut e, "pv", "vol"));
}

#[test]
fn deleting_a_namespace_waits_for_claims_in_use() {
    let mut e = engine(1);
    e.create(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}}))
        .expect("ns");
    e.create(&class("standard", true)).expect("class");
    let mut c = claim("data", "1Gi", None);
    c["metadata"]["namespace"] = json!("team");
    e.create(&c).expect("pvc");
    let mut p = pod_with_claim("app", "data");
    p["metadata"]["namespace"] = json!("team");
    e.create(&p).expect("pod");
    e.advance(5_000).expect("advance");
    e.delete("namespace", "", "team", Propagation::Background)
        .expect("delete");
    // The pod is stopping (the kubelet kills its container): the claim waits for it.
    let pod = e.get("pod", "team", "app").expect("get").expect("pod");
    assert!(doc::is_deleting(&pod));
    let pvc = e.get("pvc", "team", "data").expect("get").expect("pvc");
    assert!(doc::is_deleting(&pvc), "Terminating: {pvc:#}");
    e.advance(60_000).expect("advance");
    assert!(e.get("pvc", "team", "data").expect("get").is_none());
    assert!(e.get("namespace", "", "team").expect("get").is_none());
    assert!(
        e.list("pv", None, None).expect("pv").is_empty(),
        "the provisioned volume goes with its claim (Delete)"
    );
}

// ---------------------------------------------------------------- StatefulSet

fn statefulset(replicas: i64, policy: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "web"},
        "spec": {
            "serviceName": "web", "replicas": replicas, "podManagementPolicy": policy,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "web:1"}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "www"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]
        }
    })
}

fn set_events(e: &mut Engine) -> Vec<(String, String, String)> {
    events_of(e, "StatefulSet", "web")
}

#[test]
fn statefulset_events_are_worded_as_kubernetes() {
    let mut e = engine(3);
    e.create(&class("standard", true)).expect("class");
    e.create(&statefulset(3, "OrderedReady")).expect("sts");
    e.advance(20_000).expect("advance");
    let mut sts = statefulset(2, "OrderedReady");
    sts["spec"]["replicas"] = json!(2);
    e.apply(&sts).expect("scale");
    e.advance(60_000).expect("advance");
    let normal = |reason: &str, m: &str| ("Normal".to_string(), reason.to_string(), m.to_string());
    assert_eq!(
        set_events(&mut e),
        [
            normal(
                "SuccessfulCreate",
                "create Claim www-web-0 Pod web-0 in StatefulSet web success"
            ),
            normal(
                "SuccessfulCreate",
                "create Pod web-0 in StatefulSet web successful"
            ),
            normal(
                "SuccessfulCreate",
                "create Claim www-web-1 Pod web-1 in StatefulSet web success"
            ),
            normal(
                "SuccessfulCreate",
                "create Pod web-1 in StatefulSet web successful"
            ),
            normal(
                "SuccessfulCreate",
                "create Claim www-web-2 Pod web-2 in StatefulSet web success"
            ),
            normal(
                "SuccessfulCreate",
                "create Pod web-2 in StatefulSet web successful"
            ),
            normal(
                "SuccessfulDelete",
                "delete Pod web-2 in StatefulSet web successful"
            ),
        ]
    );
}

#[test]
fn a_refused_claim_stops_its_pod_with_both_failures_reported() {
    let mut e = engine(3);
    e.create(&class("standard", true)).expect("class");
    e.create(&quota("claims", json!({"persistentvolumeclaims": "1"})))
        .expect("quota");
    e.create(&statefulset(2, "OrderedReady")).expect("sts");
    e.advance(20_000).expect("advance");
    assert!(exists(&mut e, "pod", "web-0"));
    assert!(!exists(&mut e, "pod", "web-1"), "no pod without its claim");
    let refused = "persistentvolumeclaims \"www-web-1\" is forbidden: exceeded quota: claims, requested: persistentvolumeclaims=1, used: persistentvolumeclaims=1, limited: persistentvolumeclaims=1";
    let failures: Vec<String> = set_events(&mut e)
        .into_iter()
        .filter(|(kind, reason, _)| kind == "Warning" && reason == "FailedCreate")
        .map(|(_, _, m)| m)
        .collect();
    assert_eq!(
        failures,
        [
            format!(
                "create Claim www-web-1 for Pod web-1 in StatefulSet web failed error: {refused}"
            ),
            format!(
                "create Pod web-1 in StatefulSet web failed error: failed to create PVC www-web-1: {refused}"
            ),
        ]
    );
}

#[test]
fn parallel_pods_refused_by_quota_in_one_pass_are_reported_failed() {
    let mut e = engine(3);
    e.create(&class("standard", true)).expect("class");
    e.create(&quota("pods", json!({"pods": "2"})))
        .expect("quota");
    e.create(&statefulset(3, "Parallel")).expect("sts");
    e.advance(1_000).expect("advance");
    let events = set_events(&mut e);
    let pods_created: Vec<&str> = events
        .iter()
        .filter(|(_, r, m)| r == "SuccessfulCreate" && m.starts_with("create Pod"))
        .map(|(_, _, m)| m.as_str())
        .collect();
    assert_eq!(
        pods_created,
        [
            "create Pod web-0 in StatefulSet web successful",
            "create Pod web-1 in StatefulSet web successful"
        ]
    );
    let failed: Vec<&str> = events
        .iter()
        .filter(|(k, r, _)| k == "Warning" && r == "FailedCreate")
        .map(|(_, _, m)| m.as_str())
        .collect();
    assert_eq!(
        failed,
        [
            "create Pod web-2 in StatefulSet web failed error: pods \"web-2\" is forbidden: exceeded quota: pods, requested: pods=1, used: pods=2, limited: pods=2"
        ]
    );
    assert!(!exists(&mut e, "pod", "web-2"));
    assert!(
        exists(&mut e, "pvc", "www-web-2"),
        "the claim is created before the pod is refused"
    );
}

#[test]
fn statefulset_max_unavailable_is_dropped_as_with_the_feature_gate_off() {
    let mut e = engine(3);
    e.create(&class("standard", true)).expect("class");
    let mut sts = statefulset(3, "OrderedReady");
    sts["spec"]["updateStrategy"] =
        json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0, "maxUnavailable": 2}});
    let stored = e.create(&sts).expect("sts");
    assert_eq!(
        stored["spec"]["updateStrategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}),
        "the API server drops the field while MaxUnavailableStatefulSet is off"
    );
    e.advance(20_000).expect("advance");
    sts["spec"]["template"]["spec"]["containers"][0]["image"] = json!("web:2");
    e.apply(&sts).expect("update");
    // One pod at a time: never more than one of the three is not Running and Ready.
    let mut most_down = 0;
    for _ in 0..200 {
        e.advance(250).expect("advance");
        let pods = e
            .list("pods", Some("default"), Some("app=web"))
            .expect("pods");
        let up = pods
            .iter()
            .filter(|p| {
                !doc::is_deleting(p)
                    && reconcile::engine::controllers::statefulset::running_and_ready(p)
            })
            .count();
        most_down = most_down.max(3 - up);
    }
    assert_eq!(most_down, 1);
    for i in 0..3 {
        let p = get(&mut e, "pod", &format!("web-{i}"));
        assert_eq!(p["spec"]["containers"][0]["image"], "web:2");
    }
}

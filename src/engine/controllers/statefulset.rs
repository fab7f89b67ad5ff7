//! The StatefulSet controller, as Kubernetes' `stateful_set_control.go`.
//!
//! Pods are `<set>-0 … <set>-(N-1)`; each keeps its name (and its claims
//! `<claim>-<set>-<ordinal>` from `volumeClaimTemplates`, created before the pod and never
//! deleted by the controller) across restarts. With `OrderedReady` the controller creates the
//! next ordinal only when every lower one is Running and Ready, and removes condemned pods
//! (ordinals ≥ replicas) one at a time from the highest; `Parallel` creates and removes all at
//! once. RollingUpdate replaces, once every pod is Running and Ready, the highest-ordinal pod
//! whose revision differs, down to `partition`; pods below the partition are recreated at
//! the current revision (its template is taken from a surviving pod of that revision).
//! `ordinals.start` shifts the ordinals; `persistentVolumeClaimRetentionPolicy` with
//! `whenDeleted: Delete` makes the claims dependents of the set, `whenScaled: Delete` makes a
//! removed ordinal's claims dependents of its pod, so the garbage collector deletes them.
//!
//! Events are `stateful_pod_control.go`'s: `SuccessfulCreate` `create Claim data-web-0 Pod
//! web-0 in StatefulSet web success` and `create Pod web-0 in StatefulSet web successful`,
//! `SuccessfulDelete` `delete Pod web-2 in StatefulSet web successful`, and `FailedCreate`
//! `create Claim … for Pod … failed error: …` / `create Pod … failed error: …` when the API
//! server refuses. A pod is created only once all its claims exist and none is being deleted.
//! To word its own events the controller asks admission ([`admission::dry_run`]) before
//! creating, charging to quota what it creates earlier in the same pass, and creates without
//! an owner so that the engine's generic `Created pod:` event is not written.
//!
//! `spec.updateStrategy.rollingUpdate.maxUnavailable` is not honoured: it belongs to the
//! MaxUnavailableStatefulSet feature gate, alpha and off by default from Kubernetes 1.24
//! through 1.34 (beta and on by default only from 1.35), and with the gate off the API server
//! drops the field at admission. Like a default 1.34 cluster, the engine replaces one pod at a
//! time.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::daemonset::{REVISION_LABEL, revision_of};
use super::replicaset::{is_available, pod_from_template, pods_by_owner, ready_since};
use super::{Change, Changes};
use crate::engine::admission;
use crate::engine::clock::{Millis, SECOND};
use crate::engine::doc;
use crate::engine::events::NewEvent;
use crate::engine::kinds::{self, KindInfo};
use crate::engine::store::State;

/// The label naming a stateful pod.
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
/// The label carrying a stateful pod's ordinal.
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";

/// The name of the claim a pod of `set` at `ordinal` uses for a claim template.
pub fn claim_name(template: &str, set: &str, ordinal: i64) -> String {
    format!("{template}-{set}-{ordinal}")
}

/// The ordinal of a pod of `set` (`web-3` → 3).
pub fn ordinal_of(set: &str, pod_name: &str) -> Option<i64> {
    pod_name
        .strip_prefix(set)?
        .strip_prefix('-')?
        .parse::<i64>()
        .ok()
        .filter(|o| *o >= 0)
}

/// Running and Ready, as the controller's `isRunningAndReady`.
pub fn running_and_ready(pod: &Value) -> bool {
    doc::str_at(pod, &["status", "phase"]) == "Running" && ready_since(pod).is_some()
}

/// The pod for `ordinal`, from `template` at `revision`.
pub fn stateful_pod(set: &Value, template: &Value, ordinal: i64, revision: &str) -> Value {
    let name = doc::name(set);
    let pod_name = format!("{name}-{ordinal}");
    let mut pod = pod_from_template(set, template, name);
    let meta = doc::map_mut(&mut pod, &["metadata"]);
    meta.remove("generateName");
    meta.insert("name".into(), json!(pod_name));
    let labels = doc::map_mut(&mut pod, &["metadata", "labels"]);
    labels.insert(POD_NAME_LABEL.into(), json!(pod_name));
    labels.insert(POD_INDEX_LABEL.into(), json!(ordinal.to_string()));
    labels.insert(REVISION_LABEL.into(), json!(revision));
    let spec = doc::map_mut(&mut pod, &["spec"]);
    spec.insert("hostname".into(), json!(pod_name));
    let service = doc::str_at(set, &["spec", "serviceName"]);
    if !service.is_empty() {
        spec.insert("subdomain".into(), json!(service));
    }
    for claim in claim_templates(set) {
        let cname = doc::name(claim);
        let mut volumes: Vec<Value> = doc::at(&pod, &["spec", "volumes"])
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        volumes.retain(|v| doc::str_at(v, &["name"]) != cname);
        volumes.push(json!({"name": cname, "persistentVolumeClaim": {"claimName": claim_name(cname, name, ordinal)}}));
        doc::set(&mut pod, &["spec", "volumes"], Value::Array(volumes));
    }
    pod
}

fn claim_templates(set: &Value) -> Vec<&Value> {
    doc::at(set, &["spec", "volumeClaimTemplates"])
        .and_then(Value::as_array)
        .map(|v| v.iter().collect())
        .unwrap_or_default()
}

/// The claim a pod of `set` at `ordinal` gets from a claim template.
pub fn stateful_claim(set: &Value, claim: &Value, ordinal: i64) -> Value {
    let name = doc::name(set);
    let mut labels = doc::labels(claim).cloned().unwrap_or_else(|| json!({}));
    if let Some(sel) = doc::at(set, &["spec", "selector", "matchLabels"]).and_then(Value::as_object)
    {
        for (k, v) in sel {
            labels[k] = v.clone();
        }
    }
    json!({
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": claim_name(doc::name(claim), name, ordinal), "namespace": doc::namespace(set), "labels": labels},
        "spec": claim.get("spec").cloned().unwrap_or_else(|| json!({})),
    })
}

/// One pass over every StatefulSet.
pub fn sync(state: &State, now: Millis, out: &mut Changes) {
    // Most clusters have none: skip indexing every pod.
    if state.kind("StatefulSet").is_empty() {
        return;
    }
    let by_owner = pods_by_owner(state);
    let mut pending: Vec<(&'static KindInfo, Value)> = Vec::new();
    for stored in state.kind("StatefulSet").values() {
        let set = &stored.doc;
        if doc::is_deleting(set) {
            continue;
        }
        let pods: Vec<&Value> = by_owner.get(doc::uid(set)).cloned().unwrap_or_default();
        sync_one(state, set, &pods, now, &mut pending, out);
    }
}

/// Asks admission whether `obj` would be created now (after what this pass creates before
/// it) and, if so, creates it. The error is the API server's message.
fn create(
    state: &State,
    kind: &'static str,
    obj: Value,
    pending: &mut Vec<(&'static KindInfo, Value)>,
    out: &mut Changes,
) -> Result<(), String> {
    let info = kinds::by_kind(kind)
        .ok_or_else(|| format!("the server doesn't have a resource type \"{kind}\""))?;
    let admitted = admission::dry_run(state, info, &obj, pending)?;
    pending.push((info, admitted));
    out.push(Change::Create {
        kind,
        doc: obj,
        sim: None,
        owner: None,
    });
    Ok(())
}

/// Kubernetes' aggregate error text: one error as is, several in brackets.
fn aggregate(errors: &[String]) -> String {
    match errors {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    }
}

fn sync_one(
    state: &State,
    set: &Value,
    pods: &[&Value],
    now: Millis,
    pending: &mut Vec<(&'static KindInfo, Value)>,
    out: &mut Changes,
) {
    let (ns, name) = (doc::namespace(set), doc::name(set));
    let replicas = doc::i64_at(set, &["spec", "replicas"]).unwrap_or(1).max(0);
    let start = doc::i64_at(set, &["spec", "ordinals", "start"])
        .unwrap_or(0)
        .max(0);
    let retention = |field: &str| {
        doc::str_at(
            set,
            &["spec", "persistentVolumeClaimRetentionPolicy", field],
        ) == "Delete"
    };
    let parallel = doc::str_at(set, &["spec", "podManagementPolicy"]) == "Parallel";
    let min_ready = doc::i64_at(set, &["spec", "minReadySeconds"]).unwrap_or(0);
    let template = doc::at(set, &["spec", "template"])
        .cloned()
        .unwrap_or(Value::Null);
    let update_revision = format!("{name}-{}", revision_of(&template));
    let mut current_revision = doc::str_at(set, &["status", "currentRevision"]).to_string();
    if current_revision.is_empty() {
        current_revision = update_revision.clone();
    }
    let on_delete = doc::str_at(set, &["spec", "updateStrategy", "type"]) == "OnDelete";
    let partition = doc::i64_at(
        set,
        &["spec", "updateStrategy", "rollingUpdate", "partition"],
    )
    .unwrap_or(0)
    .max(0);
    let revision_of_pod =
        |p: &Value| doc::str_at(p, &["metadata", "labels", REVISION_LABEL]).to_string();
    // The current revision's template, taken from a pod that still runs it.
    let current_template: Option<Value> = pods
        .iter()
        .find(|p| revision_of_pod(p) == current_revision && current_revision != update_revision)
        .map(|p| {
            let mut labels = doc::labels(p).cloned().unwrap_or_else(|| json!({}));
            if let Some(m) = labels.as_object_mut() {
                for k in [POD_NAME_LABEL, POD_INDEX_LABEL, REVISION_LABEL] {
                    m.remove(k);
                }
            }
            let mut spec = p.get("spec").cloned().unwrap_or_else(|| json!({}));
            if let Some(m) = spec.as_object_mut() {
                for k in ["nodeName", "hostname", "subdomain"] {
                    m.remove(k);
                }
            }
            json!({"metadata": {"labels": labels}, "spec": spec})
        });
    let event = |reason: &str, msg: String| {
        NewEvent::normal(
            "statefulset-controller",
            "StatefulSet",
            ns,
            name,
            reason,
            msg,
        )
    };
    let warning = |reason: &str, msg: String| NewEvent {
        warning: true,
        ..event(reason, msg)
    };
    let mut by_ordinal: BTreeMap<i64, &Value> = BTreeMap::new();
    for p in pods {
        if let Some(o) = ordinal_of(name, doc::name(p)) {
            // Keyed by index: ordinal minus `ordinals.start`.
            by_ordinal.insert(o - start, p);
        }
    }
    let mut status_counts = (0i64, 0i64, 0i64, 0i64, 0i64); // replicas, ready, available, current, updated
    for p in by_ordinal.values() {
        status_counts.0 += 1;
        if running_and_ready(p) {
            status_counts.1 += 1;
            if is_available(p, min_ready, now) {
                status_counts.2 += 1;
            } else if let Some(t) = ready_since(p) {
                out.wake_at(t + min_ready * SECOND + 1);
            }
        }
        if revision_of_pod(p) == current_revision {
            status_counts.3 += 1;
        }
        if revision_of_pod(p) == update_revision {
            status_counts.4 += 1;
        }
    }
    let delete_pod = |out: &mut Changes, pod: &Value| {
        out.push(Change::Delete {
            kind: "Pod",
            namespace: ns.to_string(),
            name: doc::name(pod).to_string(),
        });
        out.event(event(
            "SuccessfulDelete",
            format!(
                "delete Pod {} in StatefulSet {name} successful",
                doc::name(pod)
            ),
        ));
    };
    // Phase 1: replicas 0..N-1, in order.
    let mut blocked = false;
    for index in 0..replicas {
        let ordinal = start + index;
        match by_ordinal.get(&index) {
            None => {
                let use_current =
                    !on_delete && index < partition && current_revision != update_revision;
                let (tpl, rev) = match (&current_template, use_current) {
                    (Some(t), true) => (t, current_revision.as_str()),
                    _ => (&template, update_revision.as_str()),
                };
                let pod = stateful_pod(set, tpl, ordinal, rev);
                let pod_name = doc::name(&pod).to_string();
                // Claims first (`createPersistentVolumeClaims`): every missing one is tried,
                // and the pod waits until all exist and none is being deleted.
                let mut errors: Vec<String> = Vec::new();
                for claim in claim_templates(set) {
                    let cname = claim_name(doc::name(claim), name, ordinal);
                    if let Some(existing) = state.get("PersistentVolumeClaim", ns, &cname) {
                        if doc::is_deleting(&existing.doc) {
                            errors.push(format!("pvc {cname} is being deleted"));
                        }
                        continue;
                    }
                    let mut c = stateful_claim(set, claim, ordinal);
                    if retention("whenDeleted") {
                        // Collected with the set.
                        let mut owner = doc::controller_ref(set);
                        owner["controller"] = json!(false);
                        doc::set(&mut c, &["metadata", "ownerReferences"], json!([owner]));
                    }
                    match create(state, "PersistentVolumeClaim", c, pending, out) {
                        Ok(()) => out.event(event(
                            "SuccessfulCreate",
                            format!(
                                "create Claim {cname} Pod {pod_name} in StatefulSet {name} success"
                            ),
                        )),
                        Err(err) => {
                            out.event(warning(
                                "FailedCreate",
                                format!(
                                    "create Claim {cname} for Pod {pod_name} in StatefulSet {name} failed error: {err}"
                                ),
                            ));
                            errors.push(format!("failed to create PVC {cname}: {err}"));
                        }
                    }
                }
                let created = if errors.is_empty() {
                    create(state, "Pod", pod, pending, out)
                } else {
                    Err(aggregate(&errors))
                };
                match created {
                    Ok(()) => out.event(event(
                        "SuccessfulCreate",
                        format!("create Pod {pod_name} in StatefulSet {name} successful"),
                    )),
                    Err(err) => out.event(warning(
                        "FailedCreate",
                        format!("create Pod {pod_name} in StatefulSet {name} failed error: {err}"),
                    )),
                }
                if !parallel {
                    blocked = true;
                    break;
                }
            }
            Some(p) => {
                if doc::str_at(p, &["status", "phase"]) == "Failed" && !doc::is_deleting(p) {
                    out.event(event(
                        "RecreatingFailedPod",
                        format!(
                            "StatefulSet {ns}/{name} is recreating failed Pod {}",
                            doc::name(p)
                        ),
                    ));
                    delete_pod(out, p);
                    if !parallel {
                        blocked = true;
                        break;
                    }
                    continue;
                }
                if !parallel && (doc::is_deleting(p) || !running_and_ready(p)) {
                    blocked = true;
                    break;
                }
            }
        }
    }
    // Phase 2: condemned pods, highest ordinal first.
    if !blocked {
        let condemned: Vec<&Value> = by_ordinal
            .iter()
            .rev()
            .filter(|(index, _)| **index < 0 || **index >= replicas)
            .map(|(_, p)| *p)
            .collect();
        for p in condemned {
            if doc::is_deleting(p) {
                if parallel {
                    continue;
                }
                blocked = true;
                break;
            }
            if retention("whenScaled") {
                // The claims of a removed ordinal go with its pod.
                let ordinal = ordinal_of(name, doc::name(p)).unwrap_or(0);
                for claim in claim_templates(set) {
                    let cname = claim_name(doc::name(claim), name, ordinal);
                    if let Some(c) = state.get("PersistentVolumeClaim", ns, &cname) {
                        let mut owned = c.doc.clone();
                        let mut owner = doc::controller_ref(p);
                        owner["controller"] = json!(false);
                        doc::set(&mut owned, &["metadata", "ownerReferences"], json!([owner]));
                        out.update("PersistentVolumeClaim", owned);
                    }
                }
            }
            delete_pod(out, p);
            if !parallel {
                blocked = true;
                break;
            }
        }
    }
    // Phase 3: rolling update, highest ordinal first, one pod at a time.
    if !blocked && !on_delete {
        let all_healthy = (0..replicas).all(|o| {
            by_ordinal
                .get(&o)
                .is_some_and(|p| !doc::is_deleting(p) && running_and_ready(p))
        });
        if all_healthy {
            for ordinal in (partition..replicas).rev() {
                if let Some(p) = by_ordinal.get(&ordinal)
                    && revision_of_pod(p) != update_revision
                {
                    delete_pod(out, p);
                    break;
                }
            }
        }
    }
    // Once every pod runs the update revision, it becomes the current one.
    let (count, ready, available, mut current, updated) = status_counts;
    let mut current_rev_out = current_revision.clone();
    if updated == replicas && count == replicas {
        current_rev_out = update_revision.clone();
        current = updated;
    }
    let generation = doc::i64_at(set, &["metadata", "generation"]).unwrap_or(1);
    let status = json!({
        "observedGeneration": generation,
        "replicas": count,
        "readyReplicas": ready,
        "currentReplicas": current,
        "updatedReplicas": updated,
        "availableReplicas": available,
        "currentRevision": current_rev_out,
        "updateRevision": update_revision,
        "collisionCount": 0,
    });
    if set.get("status") != Some(&status) {
        let mut next = set.clone();
        doc::set(&mut next, &["status"], status);
        out.update("StatefulSet", next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_being_deleted_holds_back_its_pod() {
        let mut state = State::empty(1);
        let objs = [
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}}),
            json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
                "metadata": {"name": "web", "namespace": "default"},
                "spec": {"replicas": 1, "serviceName": "web", "selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}},
                        "spec": {"containers": [{"name": "web", "image": "web:1"}]}},
                    "volumeClaimTemplates": [{"metadata": {"name": "www"},
                        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}}),
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": "www-web-0", "namespace": "default",
                    "deletionTimestamp": "2026-01-01T00:00:00Z",
                    "finalizers": ["kubernetes.io/pvc-protection"]},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}),
        ];
        for o in objs {
            let info =
                kinds::by_kind(doc::str_at(&o, &["kind"])).unwrap_or_else(|| panic!("kind of {o}"));
            state.create(info, o, None);
        }
        let mut out = Changes::default();
        sync(&state, 0, &mut out);
        assert!(
            !out.list.iter().any(|c| matches!(c, Change::Create { .. })),
            "{:?}",
            out.list
        );
        let failed: Vec<&str> = out
            .list
            .iter()
            .filter_map(|c| match c {
                Change::Event(e) if e.warning => Some(e.message.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(
            failed,
            ["create Pod web-0 in StatefulSet web failed error: pvc www-web-0 is being deleted"]
        );
    }

    #[test]
    fn names_and_claims_are_stable() {
        assert_eq!(claim_name("data", "web", 2), "data-web-2");
        assert_eq!(ordinal_of("web", "web-12"), Some(12));
        assert_eq!(ordinal_of("web", "webx-1"), None);
        assert_eq!(ordinal_of("web", "web-a"), None);
        let set = json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "web", "namespace": "default", "uid": "u"},
            "spec": {"serviceName": "nginx", "selector": {"matchLabels": {"app": "web"}},
                "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}});
        let tpl = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}});
        let pod = stateful_pod(&set, &tpl, 1, "r1");
        assert_eq!(doc::name(&pod), "web-1");
        assert_eq!(doc::str_at(&pod, &["spec", "hostname"]), "web-1");
        assert_eq!(doc::str_at(&pod, &["spec", "subdomain"]), "nginx");
        assert_eq!(
            pod.pointer("/spec/volumes/0/persistentVolumeClaim/claimName"),
            Some(&json!("data-web-1"))
        );
        let claim = stateful_claim(&set, &set["spec"]["volumeClaimTemplates"][0], 1);
        assert_eq!(doc::name(&claim), "data-web-1");
        assert_eq!(doc::str_at(&claim, &["metadata", "labels", "app"]), "web");
    }
}

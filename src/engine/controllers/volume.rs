//! The PersistentVolume controller: binds claims to volumes, as Kubernetes'
//! `pv_controller.go`, provisions volumes for classes that have a provisioner, and keeps
//! claims and volumes in use from going, as the `pvc-protection` and `pv-protection`
//! controllers.
//!
//! A pending claim binds to the smallest Available volume that has its storage class (a
//! claim naming no class matches only class-less volumes), offers every access mode it asks
//! for, the same volume mode, at least the requested capacity, and matches its label
//! selector; a claim naming `spec.volumeName` binds only to that volume. When nothing fits, a
//! claim naming no class is given the default class if there is one (retroactive default
//! StorageClass assignment, on by default since Kubernetes 1.26 and GA in 1.28; admission
//! already gives it to claims created while a default exists). When nothing fits and the class
//! exists, a volume `pvc-<claim uid>` is provisioned (`volumeBindingMode: Immediate`;
//! `WaitForFirstConsumer` waits until a pod uses the claim). A volume whose claim is deleted is
//! Released (Retain) or Released and deleted (Delete).
//!
//! Protection: admission gives claims [`PVC_PROTECTION`] and volumes [`PV_PROTECTION`] (and
//! this controller gives them to objects stored before that). A claim being deleted keeps its
//! finalizer while a scheduled pod (`spec.nodeName` set) names it, whatever the pod's phase —
//! Kubernetes' `podUsesPVC` — and a volume being deleted keeps it while it is Bound. The
//! controller removes the object once its last finalizer is gone (the API server's job in
//! Kubernetes).
//!
//! Pods that use a claim that is missing or not bound are not scheduled:
//! [`unschedulable_reason`] gives the scheduler Kubernetes' reason.

use serde_json::{Value, json};

use super::gc::{finalizers, release};
use super::{Change, Changes};
use crate::engine::clock::{Millis, parse_rfc3339};
use crate::engine::doc;
use crate::engine::events::NewEvent;
use crate::engine::labels::Selector;
use crate::engine::store::State;

/// The annotation marking the cluster's default StorageClass.
pub const DEFAULT_CLASS_ANNOTATION: &str = "storageclass.kubernetes.io/is-default-class";

/// The beta form of [`DEFAULT_CLASS_ANNOTATION`], still honoured by Kubernetes.
pub const BETA_DEFAULT_CLASS_ANNOTATION: &str = "storageclass.beta.kubernetes.io/is-default-class";

/// The beta annotation naming a claim's class; Kubernetes reads it before
/// `spec.storageClassName`.
pub const BETA_CLASS_ANNOTATION: &str = "volume.beta.kubernetes.io/storage-class";

/// The finalizer that keeps a claim while a pod uses it.
pub const PVC_PROTECTION: &str = "kubernetes.io/pvc-protection";

/// The finalizer that keeps a volume while it is bound.
pub const PV_PROTECTION: &str = "kubernetes.io/pv-protection";

/// The name of the default StorageClass, if one is marked. With several, Kubernetes (1.26+,
/// `GetDefaultClass`) takes the newest, ties broken by name.
pub fn default_class(state: &State) -> Option<&str> {
    state
        .kind("StorageClass")
        .values()
        .map(|s| &s.doc)
        .filter(|c| {
            doc::annotation(c, DEFAULT_CLASS_ANNOTATION) == Some("true")
                || doc::annotation(c, BETA_DEFAULT_CLASS_ANNOTATION) == Some("true")
        })
        .min_by(|a, b| {
            let created = |c: &Value| {
                parse_rfc3339(doc::str_at(c, &["metadata", "creationTimestamp"])).unwrap_or(0)
            };
            created(b)
                .cmp(&created(a))
                .then_with(|| doc::name(a).cmp(doc::name(b)))
        })
        .map(doc::name)
}

/// The class a claim names itself (the beta annotation first, then `spec.storageClassName`),
/// as Kubernetes' `GetPersistentVolumeClaimClass`; `None` when it names none.
pub fn requested_class(claim: &Value) -> Option<&str> {
    doc::annotation(claim, BETA_CLASS_ANNOTATION)
        .or_else(|| doc::at(claim, &["spec", "storageClassName"]).and_then(Value::as_str))
}

/// Whether a claim names a class at all (an empty class counts: it asks for class-less
/// volumes and is never defaulted).
pub fn names_class(claim: &Value) -> bool {
    doc::annotation(claim, BETA_CLASS_ANNOTATION).is_some()
        || doc::at(claim, &["spec", "storageClassName"]).is_some_and(|c| !c.is_null())
}

/// The class a claim asks for ("" = only volumes without a class).
pub fn claim_class(claim: &Value) -> &str {
    requested_class(claim).unwrap_or_default()
}

fn storage(v: &Value, path: &[&str]) -> i64 {
    doc::at(v, path).and_then(doc::bytes).unwrap_or(0)
}

fn modes(v: &Value, path: &[&str]) -> Vec<String> {
    doc::at(v, path)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn volume_mode(v: &Value) -> &str {
    match doc::str_at(v, &["spec", "volumeMode"]) {
        "" => "Filesystem",
        m => m,
    }
}

/// Whether `volume` can serve `claim` (class given already resolved).
pub fn fits(volume: &Value, claim: &Value, class: &str) -> bool {
    if doc::str_at(volume, &["spec", "storageClassName"]) != class {
        return false;
    }
    let offered = modes(volume, &["spec", "accessModes"]);
    if !modes(claim, &["spec", "accessModes"])
        .iter()
        .all(|m| offered.contains(m))
    {
        return false;
    }
    if volume_mode(volume) != volume_mode(claim) {
        return false;
    }
    if storage(volume, &["spec", "capacity", "storage"])
        < storage(claim, &["spec", "resources", "requests", "storage"])
    {
        return false;
    }
    match doc::at(claim, &["spec", "selector"]) {
        Some(sel) => Selector::from_label_selector(sel)
            .map(|s| s.matches(doc::labels(volume)))
            .unwrap_or(false),
        None => true,
    }
}

/// The volume a pending claim binds to: the smallest that fits (ties by name).
pub fn best_volume<'a>(state: &'a State, claim: &Value) -> Option<&'a Value> {
    let class = claim_class(claim);
    let wanted = doc::str_at(claim, &["spec", "volumeName"]);
    state
        .kind("PersistentVolume")
        .values()
        .map(|s| &s.doc)
        .filter(|v| !doc::is_deleting(v))
        .filter(|v| wanted.is_empty() || doc::name(v) == wanted)
        .filter(|v| match doc::at(v, &["spec", "claimRef"]) {
            None => doc::str_at(v, &["status", "phase"]) != "Released",
            // A volume pre-bound to this claim.
            Some(r) => {
                doc::str_at(r, &["namespace"]) == doc::namespace(claim)
                    && doc::str_at(r, &["name"]) == doc::name(claim)
                    && doc::str_at(v, &["status", "phase"]) != "Bound"
                    && (doc::str_at(r, &["uid"]).is_empty()
                        || doc::str_at(r, &["uid"]) == doc::uid(claim))
            }
        })
        .filter(|v| fits(v, claim, class))
        .min_by_key(|v| {
            (
                storage(v, &["spec", "capacity", "storage"]),
                doc::name(v).to_string(),
            )
        })
}

/// Why a pod cannot be scheduled because of its claims, in the scheduler's words, or `None`.
pub fn unschedulable_reason(state: &State, pod: &Value) -> Option<String> {
    let ns = doc::namespace(pod);
    for v in doc::at(pod, &["spec", "volumes"])
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(claim_name) =
            doc::at(v, &["persistentVolumeClaim", "claimName"]).and_then(Value::as_str)
        else {
            continue;
        };
        let Some(claim) = state.get("PersistentVolumeClaim", ns, claim_name) else {
            return Some(format!("persistentvolumeclaim \"{claim_name}\" not found"));
        };
        if doc::is_deleting(&claim.doc) {
            return Some(format!(
                "persistentvolumeclaim \"{claim_name}\" is being deleted"
            ));
        }
        if doc::str_at(&claim.doc, &["status", "phase"]) != "Bound"
            && !waits_for_consumer(state, &claim.doc)
        {
            return Some("pod has unbound immediate PersistentVolumeClaims".into());
        }
    }
    None
}

fn class_doc<'a>(state: &'a State, class: &str) -> Option<&'a Value> {
    if class.is_empty() {
        return None;
    }
    state.get("StorageClass", "", class).map(|s| &s.doc)
}

fn waits_for_consumer(state: &State, claim: &Value) -> bool {
    class_doc(state, claim_class(claim))
        .is_some_and(|c| doc::str_at(c, &["volumeBindingMode"]) == "WaitForFirstConsumer")
}

fn names_claim(pod: &Value, claim: &str) -> bool {
    doc::at(pod, &["spec", "volumes"])
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|v| doc::str_at(v, &["persistentVolumeClaim", "claimName"]) == claim)
}

fn claim_in_use(state: &State, claim: &Value) -> bool {
    state
        .in_namespace("Pod", doc::namespace(claim))
        .any(|p| names_claim(&p.doc, doc::name(claim)))
}

/// Whether the pvc-protection controller keeps `claim`: a pod that is scheduled names it.
/// An unscheduled pod does not count (the kubelet refuses to start a pod whose claim is being
/// deleted), nor does the pod's phase: the pod object existing is enough.
pub fn claim_protected(state: &State, claim: &Value) -> bool {
    state.in_namespace("Pod", doc::namespace(claim)).any(|p| {
        !doc::str_at(&p.doc, &["spec", "nodeName"]).is_empty()
            && names_claim(&p.doc, doc::name(claim))
    })
}

/// The protection controllers' pass. Returns true when it gave a finalizer to an object
/// stored without one: binding then waits for the next round, so that it works on the
/// protected document.
fn protect(state: &State, out: &mut Changes) -> bool {
    let mut added = false;
    for (kind, finalizer) in [
        ("PersistentVolumeClaim", PVC_PROTECTION),
        ("PersistentVolume", PV_PROTECTION),
    ] {
        for stored in state.kind(kind).values() {
            let obj = &stored.doc;
            let has = finalizers(obj).contains(&finalizer);
            if !doc::is_deleting(obj) {
                if !has {
                    let mut next = obj.clone();
                    let mut list: Vec<Value> =
                        finalizers(obj).into_iter().map(|f| json!(f)).collect();
                    list.push(json!(finalizer));
                    doc::set(&mut next, &["metadata", "finalizers"], Value::Array(list));
                    out.update(kind, next);
                    added = true;
                }
                continue;
            }
            let kept = if kind == "PersistentVolume" {
                doc::str_at(obj, &["status", "phase"]) == "Bound"
            } else {
                claim_protected(state, obj)
            };
            if has && !kept {
                release(kind, obj, finalizer, out);
            }
        }
    }
    added
}

/// One pass: protects claims and volumes in use, binds pending claims, provisions, releases
/// volumes of deleted claims.
pub fn sync(state: &State, _now: Millis, out: &mut Changes) {
    if protect(state, out) {
        return;
    }
    let mut taken: Vec<String> = Vec::new();
    let claims: Vec<&Value> = state
        .kind("PersistentVolumeClaim")
        .values()
        .map(|s| &s.doc)
        .collect();
    for claim in claims {
        if doc::is_deleting(claim) {
            continue;
        }
        let (ns, name) = (doc::namespace(claim), doc::name(claim));
        let bound_to = doc::str_at(claim, &["spec", "volumeName"]);
        let phase = doc::str_at(claim, &["status", "phase"]);
        if phase == "Bound" {
            if state.get("PersistentVolume", "", bound_to).is_none() && phase != "Lost" {
                let mut next = claim.clone();
                doc::set(&mut next, &["status", "phase"], json!("Lost"));
                out.update("PersistentVolumeClaim", next);
                out.event(NewEvent::warning(
                    "persistentvolume-controller",
                    "PersistentVolumeClaim",
                    ns,
                    name,
                    "ClaimLost",
                    "Bound claim has lost its PersistentVolume. Data on the volume is lost!".into(),
                ));
            }
            continue;
        }
        if phase == "Lost" {
            continue;
        }
        let event = |warning: bool, reason: &str, msg: String| {
            let f = if warning {
                NewEvent::warning
            } else {
                NewEvent::normal
            };
            f(
                "persistentvolume-controller",
                "PersistentVolumeClaim",
                ns,
                name,
                reason,
                msg,
            )
        };
        // A claim that keeps waiting is reported once, not at every pass.
        let said = |reason: &str| {
            state
                .events
                .about("PersistentVolumeClaim", ns, name)
                .iter()
                .any(|e| e.reason == reason)
        };
        let say = |out: &mut Changes, e: NewEvent| {
            if !said(&e.reason) {
                out.event(e);
            }
        };
        match best_volume(state, claim).filter(|v| !taken.contains(&doc::name(v).to_string())) {
            Some(volume) => {
                taken.push(doc::name(volume).to_string());
                bind(claim, volume, out);
            }
            None => {
                // Retroactive default class: a claim that names no class and finds no
                // class-less volume gets the default class, then is synced again.
                if bound_to.is_empty()
                    && !names_class(claim)
                    && let Some(default) = default_class(state)
                {
                    let mut next = claim.clone();
                    doc::set(&mut next, &["spec", "storageClassName"], json!(default));
                    out.update("PersistentVolumeClaim", next);
                    continue;
                }
                let class = claim_class(claim);
                if !bound_to.is_empty() {
                    let msg = match state.get("PersistentVolume", "", bound_to) {
                        None => format!("volume \"{bound_to}\" not found"),
                        Some(_) => format!(
                            "volume \"{bound_to}\" already bound to a different claim or not suitable."
                        ),
                    };
                    say(out, event(true, "FailedBinding", msg));
                    continue;
                }
                if class.is_empty() {
                    say(out, event(
                        false,
                        "FailedBinding",
                        "no persistent volumes available for this claim and no storage class is set".into(),
                    ));
                    continue;
                }
                let Some(sc) = class_doc(state, class) else {
                    say(
                        out,
                        event(
                            true,
                            "ProvisioningFailed",
                            format!("storageclass.storage.k8s.io \"{class}\" not found"),
                        ),
                    );
                    continue;
                };
                let provisioner = doc::str_at(sc, &["provisioner"]);
                let waits = doc::str_at(sc, &["volumeBindingMode"]) == "WaitForFirstConsumer";
                if provisioner.is_empty() || provisioner == "kubernetes.io/no-provisioner" {
                    say(
                        out,
                        if waits {
                            event(
                                false,
                                "WaitForFirstConsumer",
                                "waiting for first consumer to be created before binding".into(),
                            )
                        } else {
                            event(
                                true,
                                "ProvisioningFailed",
                                format!("no volume plugin matched name: {provisioner}"),
                            )
                        },
                    );
                    continue;
                }
                if waits && !claim_in_use(state, claim) {
                    say(
                        out,
                        event(
                            false,
                            "WaitForFirstConsumer",
                            "waiting for first consumer to be created before binding".into(),
                        ),
                    );
                    continue;
                }
                let pv_name = format!("pvc-{}", doc::uid(claim));
                if state.get("PersistentVolume", "", &pv_name).is_some() {
                    continue;
                }
                out.event(event(
                    false,
                    "Provisioning",
                    format!(
                        "External provisioner is provisioning volume for claim \"{ns}/{name}\""
                    ),
                ));
                out.push(Change::Create {
                    kind: "PersistentVolume",
                    doc: provisioned_volume(claim, sc, &pv_name),
                    sim: None,
                    owner: None,
                });
                out.event(event(
                    false,
                    "ProvisioningSucceeded",
                    format!("Successfully provisioned volume {pv_name}"),
                ));
            }
        }
    }
    for stored in state.kind("PersistentVolume").values() {
        let volume = &stored.doc;
        let Some(r) = doc::at(volume, &["spec", "claimRef"]) else {
            continue;
        };
        if doc::str_at(volume, &["status", "phase"]) != "Bound" {
            continue;
        }
        let claim = state.get(
            "PersistentVolumeClaim",
            doc::str_at(r, &["namespace"]),
            doc::str_at(r, &["name"]),
        );
        let gone = claim.is_none_or(|c| doc::uid(&c.doc) != doc::str_at(r, &["uid"]));
        if !gone {
            continue;
        }
        // Released first: the volume is no longer Bound, so its protection lets it go.
        let mut next = volume.clone();
        doc::set(&mut next, &["status", "phase"], json!("Released"));
        out.update("PersistentVolume", next);
        if doc::str_at(volume, &["spec", "persistentVolumeReclaimPolicy"]) == "Delete" {
            out.push(Change::Delete {
                kind: "PersistentVolume",
                namespace: String::new(),
                name: doc::name(volume).to_string(),
            });
        }
    }
}

fn bind(claim: &Value, volume: &Value, out: &mut Changes) {
    let mut pv = volume.clone();
    doc::set(
        &mut pv,
        &["spec", "claimRef"],
        json!({"kind": "PersistentVolumeClaim", "apiVersion": "v1", "namespace": doc::namespace(claim),
            "name": doc::name(claim), "uid": doc::uid(claim),
            "resourceVersion": doc::str_at(claim, &["metadata", "resourceVersion"])}),
    );
    doc::set(&mut pv, &["status", "phase"], json!("Bound"));
    doc::map_mut(&mut pv, &["metadata", "annotations"])
        .insert("pv.kubernetes.io/bound-by-controller".into(), json!("yes"));
    out.update("PersistentVolume", pv);
    let mut pvc = claim.clone();
    doc::set(&mut pvc, &["spec", "volumeName"], json!(doc::name(volume)));
    let ann = doc::map_mut(&mut pvc, &["metadata", "annotations"]);
    ann.insert("pv.kubernetes.io/bind-completed".into(), json!("yes"));
    ann.insert("pv.kubernetes.io/bound-by-controller".into(), json!("yes"));
    doc::set(
        &mut pvc,
        &["status"],
        json!({"phase": "Bound",
            "accessModes": doc::at(volume, &["spec", "accessModes"]).cloned().unwrap_or(json!([])),
            "capacity": doc::at(volume, &["spec", "capacity"]).cloned().unwrap_or(json!({}))}),
    );
    out.update("PersistentVolumeClaim", pvc);
}

fn provisioned_volume(claim: &Value, class: &Value, name: &str) -> Value {
    let reclaim = match doc::str_at(class, &["reclaimPolicy"]) {
        "" => "Delete",
        r => r,
    };
    json!({
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": name, "annotations": {"pv.kubernetes.io/provisioned-by": doc::str_at(class, &["provisioner"])}},
        "spec": {
            "capacity": {"storage": doc::at(claim, &["spec", "resources", "requests", "storage"]).cloned().unwrap_or(json!("1Gi"))},
            "accessModes": doc::at(claim, &["spec", "accessModes"]).cloned().unwrap_or(json!(["ReadWriteOnce"])),
            "volumeMode": volume_mode(claim),
            "persistentVolumeReclaimPolicy": reclaim,
            "storageClassName": doc::name(class),
            "hostPath": {"path": format!("/var/lib/reconcile/volumes/{name}"), "type": "DirectoryOrCreate"},
            "claimRef": {"kind": "PersistentVolumeClaim", "apiVersion": "v1", "namespace": doc::namespace(claim),
                "name": doc::name(claim), "uid": doc::uid(claim)},
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::kinds;

    fn state_with(objs: &[Value]) -> State {
        let mut s = State::empty(1);
        for o in objs {
            let info =
                kinds::by_kind(doc::str_at(o, &["kind"])).unwrap_or_else(|| panic!("kind of {o}"));
            s.create(info, o.clone(), None);
        }
        s
    }

    fn deleting_claim(finalizers: Value) -> Value {
        json!({"kind": "PersistentVolumeClaim", "metadata": {"name": "data", "namespace": "default",
            "deletionTimestamp": "2026-01-01T00:00:00Z", "finalizers": finalizers},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
    }

    fn pod_using(node: &str) -> Value {
        json!({"kind": "Pod", "metadata": {"name": "app", "namespace": "default"},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "x"}],
                "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": "data"}}]},
            "status": {"phase": "Succeeded"}})
    }

    fn pass(state: &State) -> Vec<Change> {
        let mut out = Changes::default();
        sync(state, 0, &mut out);
        out.list
    }

    fn removes(changes: &[Change], kind: &str) -> bool {
        changes
            .iter()
            .any(|c| matches!(c, Change::Remove { kind: k, .. } if *k == kind))
    }

    #[test]
    fn a_deleted_claim_waits_for_scheduled_pods_whatever_their_phase() {
        // (pod, kept?) — a scheduled pod keeps the claim even once it has finished; an
        // unscheduled one does not.
        let table = [
            (Some(pod_using("worker-1")), true),
            (Some(pod_using("")), false),
            (None, false),
        ];
        for (pod, kept) in table {
            let mut objs = vec![deleting_claim(json!([PVC_PROTECTION]))];
            objs.extend(pod.clone());
            let changes = pass(&state_with(&objs));
            assert_eq!(
                !removes(&changes, "PersistentVolumeClaim"),
                kept,
                "{pod:?}: {changes:?}"
            );
        }
    }

    #[test]
    fn releasing_protection_keeps_other_finalizers() {
        let state = state_with(&[deleting_claim(json!([
            "example.com/backup",
            PVC_PROTECTION
        ]))]);
        let changes = pass(&state);
        assert!(!removes(&changes, "PersistentVolumeClaim"), "{changes:?}");
        let updated = changes.iter().find_map(|c| match c {
            Change::Update { doc, .. } => Some(doc),
            _ => None,
        });
        assert_eq!(
            updated.and_then(|d| d.pointer("/metadata/finalizers")),
            Some(&json!(["example.com/backup"]))
        );
    }

    #[test]
    fn a_deleted_volume_waits_until_it_is_not_bound() {
        let volume = |phase: &str| {
            json!({"kind": "PersistentVolume", "metadata": {"name": "vol",
                "deletionTimestamp": "2026-01-01T00:00:00Z", "finalizers": [PV_PROTECTION]},
                "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"]},
                "status": {"phase": phase}})
        };
        assert!(!removes(
            &pass(&state_with(&[volume("Bound")])),
            "PersistentVolume"
        ));
        assert!(removes(
            &pass(&state_with(&[volume("Released")])),
            "PersistentVolume"
        ));
    }

    #[test]
    fn objects_stored_without_protection_get_it_before_binding() {
        let state = state_with(&[
            json!({"kind": "PersistentVolume", "metadata": {"name": "vol"},
                "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"]},
                "status": {"phase": "Available"}}),
            json!({"kind": "PersistentVolumeClaim", "metadata": {"name": "data", "namespace": "default"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
                "status": {"phase": "Pending"}}),
        ]);
        let changes = pass(&state);
        let finalizers: Vec<&Value> = changes
            .iter()
            .filter_map(|c| match c {
                Change::Update { doc, .. } => doc.pointer("/metadata/finalizers"),
                _ => None,
            })
            .collect();
        assert_eq!(
            finalizers,
            [&json!([PVC_PROTECTION]), &json!([PV_PROTECTION])],
            "{changes:?}"
        );
    }

    #[test]
    fn the_newest_default_class_wins_and_beta_annotations_count() {
        let class = |name: &str, annotation: &str| {
            json!({"kind": "StorageClass", "metadata": {"name": name, "annotations": {annotation: "true"}},
                "provisioner": "x"})
        };
        let mut state = state_with(&[class("aaa-old", DEFAULT_CLASS_ANNOTATION)]);
        state.now += 60_000;
        let info = kinds::by_kind("StorageClass").unwrap_or_else(|| panic!("kind"));
        state.create(info, class("newer", BETA_DEFAULT_CLASS_ANNOTATION), None);
        assert_eq!(default_class(&state), Some("newer"));
        // Same second: the name breaks the tie.
        state.create(info, class("another", DEFAULT_CLASS_ANNOTATION), None);
        assert_eq!(default_class(&state), Some("another"));
        let claim = json!({"metadata": {"annotations": {BETA_CLASS_ANNOTATION: "gold"}},
            "spec": {"storageClassName": "silver"}});
        assert_eq!(requested_class(&claim), Some("gold"));
        assert!(names_class(&json!({"spec": {"storageClassName": ""}})));
        assert!(!names_class(&json!({"spec": {}})));
    }

    fn pv(name: &str, size: &str, modes: Value, class: &str) -> Value {
        json!({"metadata": {"name": name}, "spec": {"capacity": {"storage": size}, "accessModes": modes, "storageClassName": class}})
    }

    fn claim(size: &str, modes: Value) -> Value {
        json!({"metadata": {"name": "c", "namespace": "default"}, "spec": {"accessModes": modes, "resources": {"requests": {"storage": size}}}})
    }

    #[test]
    fn binding_needs_class_modes_and_capacity() {
        let c = claim("2Gi", json!(["ReadWriteOnce"]));
        assert!(fits(
            &pv("a", "2Gi", json!(["ReadWriteOnce", "ReadOnlyMany"]), ""),
            &c,
            ""
        ));
        assert!(!fits(&pv("a", "1Gi", json!(["ReadWriteOnce"]), ""), &c, ""));
        assert!(!fits(&pv("a", "5Gi", json!(["ReadOnlyMany"]), ""), &c, ""));
        assert!(!fits(
            &pv("a", "5Gi", json!(["ReadWriteOnce"]), "fast"),
            &c,
            ""
        ));
        assert!(fits(
            &pv("a", "5Gi", json!(["ReadWriteOnce"]), "fast"),
            &c,
            "fast"
        ));
        let rwx = claim("1Gi", json!(["ReadWriteMany"]));
        assert!(!fits(
            &pv("a", "5Gi", json!(["ReadWriteOnce"]), ""),
            &rwx,
            ""
        ));
    }
}

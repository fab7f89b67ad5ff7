//! Honest diffs: what would change if the desired object were applied over the live one.
//!
//! [`compare`] is a pure function of (desired, live, ignore rules): both sides are
//! normalised (cluster-filled and bookkeeping fields away, see [`normalize`]), Secret values
//! are masked ([`mask`]), `ignoreDifferences` pointers are removed, and a unified diff of the
//! YAML is made with `similar`.
//!
//! Invariant: no plaintext Secret value is ever in an [`ObjectDiff`].

pub mod mask;
pub mod normalize;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::ResId;

use normalize::{
    APPLIED_FIELDS_ANNOTATION, align_numbers, drop_empty, escape_pointer, fold_string_data,
    project, restore_declared_strategy, shape, strip_bookkeeping, strip_bookkeeping_but_status,
    union_shape,
};

/// Fields to leave out of the comparison for matching objects (Argo CD's
/// `ignoreDifferences`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IgnoreRule {
    /// API group (`apps`; empty for core). Absent: any group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Kind. Absent: any kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Name. Absent: any name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Namespace. Absent: any namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// RFC 6901 JSON pointers of the fields to ignore (`/spec/replicas`).
    #[serde(default)]
    pub json_pointers: Vec<String>,
}

impl IgnoreRule {
    /// True when the rule applies to the object.
    pub fn matches(&self, id: &ResId) -> bool {
        let eq =
            |wanted: &Option<String>, actual: &str| wanted.as_deref().is_none_or(|w| w == actual);
        eq(&self.group, &id.gvk.group)
            && eq(&self.kind, &id.gvk.kind)
            && eq(&self.name, &id.name)
            && eq(&self.namespace, &id.namespace)
    }
}

/// What applying would do to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    /// Absent live: it will be created.
    Create,
    /// Present and different: it will be updated.
    Update,
    /// Present live, no longer desired: it will be deleted (prune).
    Delete,
    /// Present and equal.
    Unchanged,
}

/// The comparison of one object.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectDiff {
    /// The object.
    pub id: ResId,
    /// What applying would do.
    pub change: Change,
    /// Unified diff of the normalised, masked YAML (`live` → `desired`); empty when unchanged.
    pub diff: String,
}

/// Removes the fields named by JSON pointers (missing fields are fine).
pub fn remove_pointers(object: &mut Value, pointers: &[String]) {
    for pointer in pointers {
        let Some((parent, last)) = pointer.rsplit_once('/') else {
            continue;
        };
        let token = last.replace("~1", "/").replace("~0", "~");
        match object.pointer_mut(parent) {
            Some(Value::Object(map)) => {
                map.remove(&token);
            }
            Some(Value::Array(items)) => {
                if let Ok(index) = token.parse::<usize>()
                    && index < items.len()
                {
                    items.remove(index);
                }
            }
            _ => {}
        }
    }
}

/// The pointers of every rule matching `id`.
pub fn ignored_pointers(rules: &[IgnoreRule], id: &ResId) -> Vec<String> {
    rules
        .iter()
        .filter(|r| r.matches(id))
        .flat_map(|r| r.json_pointers.iter().cloned())
        .collect()
}

/// The two sides as they are compared: normalised and with ignored fields removed, but not
/// yet masked. `None` stays `None`. `status_is_field`: the kind's `status` is an ordinary
/// field (a CRD without the status subresource) and is compared; otherwise it is left out.
pub fn normalized_pair(
    desired: Option<&Value>,
    live: Option<&Value>,
    rules: &[IgnoreRule],
    status_is_field: bool,
) -> (Option<Value>, Option<Value>) {
    let id = desired.or(live).map(ResId::of).unwrap_or_default();
    let pointers = ignored_pointers(rules, &id);
    let strip = |object: &mut Value| {
        if status_is_field {
            strip_bookkeeping_but_status(object);
        } else {
            strip_bookkeeping(object);
        }
    };
    let desired = desired.map(|d| {
        let mut d = d.clone();
        strip(&mut d);
        fold_string_data(&mut d);
        drop_empty(&mut d);
        remove_pointers(&mut d, &pointers);
        d
    });
    let live = live.map(|l| {
        let applied_fields = l
            .pointer(&format!(
                "/metadata/annotations/{}",
                escape_pointer(APPLIED_FIELDS_ANNOTATION)
            ))
            .and_then(Value::as_str)
            .and_then(|text| serde_json::from_str::<Value>(text).ok());
        let mut l = l.clone();
        restore_declared_strategy(&mut l);
        strip(&mut l);
        fold_string_data(&mut l);
        if let Some(d) = &desired {
            // Only what is declared now or was declared at the last apply is compared.
            let fields = match &applied_fields {
                Some(applied) => union_shape(&shape(d), applied),
                None => shape(d),
            };
            l = project(&l, &fields);
            align_numbers(d, &mut l);
        }
        drop_empty(&mut l);
        remove_pointers(&mut l, &pointers);
        l
    });
    (desired, live)
}

/// Compares a desired object with the live one. With no desired object the change is a
/// deletion; with no live one a creation. `status` is left out (see [`compare_object`]).
pub fn compare(desired: Option<&Value>, live: Option<&Value>, rules: &[IgnoreRule]) -> ObjectDiff {
    compare_object(desired, live, rules, false)
}

/// [`compare`], with `status` compared when `status_is_field` (see [`normalized_pair`]).
pub fn compare_object(
    desired: Option<&Value>,
    live: Option<&Value>,
    rules: &[IgnoreRule],
    status_is_field: bool,
) -> ObjectDiff {
    let id = desired.or(live).map(ResId::of).unwrap_or_default();
    let (mut d, mut l) = normalized_pair(desired, live, rules, status_is_field);
    let change = match (&d, &l) {
        (Some(_), None) => Change::Create,
        (None, Some(_)) => Change::Delete,
        (Some(d), Some(l)) if d == l => Change::Unchanged,
        (Some(_), Some(_)) => Change::Update,
        (None, None) => Change::Unchanged,
    };
    mask::mask_pair(d.as_mut(), l.as_mut());
    let diff = if change == Change::Unchanged {
        String::new()
    } else {
        let old = l.as_ref().map(crate::yaml::to_yaml).unwrap_or_default();
        let new = d.as_ref().map(crate::yaml::to_yaml).unwrap_or_default();
        unified(&old, &new, &id)
    };
    ObjectDiff { id, change, diff }
}

/// A unified diff with three lines of context, headed `live` / `desired`.
pub fn unified(old: &str, new: &str, id: &ResId) -> String {
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(
            &format!("live {}", display_id(id)),
            &format!("desired {}", display_id(id)),
        )
        .to_string()
}

/// `Kind namespace/name` (or `Kind name` when cluster-scoped): how plans name objects.
pub fn display_id(id: &ResId) -> String {
    if id.namespace.is_empty() {
        format!("{} {}", id.gvk.kind, id.name)
    } else {
        format!("{} {}/{}", id.gvk.kind, id.namespace, id.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(image: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "web", "namespace": "demo", "labels": {"app": "web"}},
               "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                        "template": {"metadata": {"labels": {"app": "web"}},
                                     "spec": {"containers": [{"name": "web", "image": image}]}}}})
    }

    /// What a cluster makes of an applied Deployment: defaults, status and bookkeeping.
    fn as_live(mut object: Value) -> Value {
        let meta = object["metadata"].as_object_mut().unwrap();
        meta.insert("uid".into(), json!("1234"));
        meta.insert("resourceVersion".into(), json!("17"));
        meta.insert("generation".into(), json!(3));
        meta.insert("creationTimestamp".into(), json!("2026-01-01T00:00:00Z"));
        meta["labels"][normalize::MANAGED_BY_LABEL] = json!("reconcile");
        meta.insert(
            "annotations".into(),
            json!({normalize::OWNER_ANNOTATION: "demo",
            "deployment.kubernetes.io/revision": "3"}),
        );
        let spec = object["spec"].as_object_mut().unwrap();
        spec.insert("revisionHistoryLimit".into(), json!(10));
        spec.insert("progressDeadlineSeconds".into(), json!(600));
        spec.insert(
            "strategy".into(),
            json!({"type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}),
        );
        let container = &mut spec["template"]["spec"]["containers"][0];
        container["imagePullPolicy"] = json!("IfNotPresent");
        container["terminationMessagePath"] = json!("/dev/termination-log");
        spec["template"]["spec"]["restartPolicy"] = json!("Always");
        object["status"] = json!({"replicas": 2, "readyReplicas": 2});
        object
    }

    #[test]
    fn defaulted_and_server_fields_are_not_drift() {
        let diff = compare(
            Some(&deployment("web:1.0")),
            Some(&as_live(deployment("web:1.0"))),
            &[],
        );
        assert_eq!(diff.change, Change::Unchanged, "{}", diff.diff);
    }

    #[test]
    fn an_image_change_is_a_readable_update() {
        let diff = compare(
            Some(&deployment("web:2.0")),
            Some(&as_live(deployment("web:1.0"))),
            &[],
        );
        assert_eq!(diff.change, Change::Update);
        expect_test::expect![[r#"
            --- live Deployment demo/web
            +++ desired Deployment demo/web
            @@ -16,5 +16,5 @@
                     app: web
                 spec:
                   containers:
            -      - image: web:1.0
            +      - image: web:2.0
                     name: web
        "#]]
        .assert_eq(&diff.diff);
    }

    #[test]
    fn ignore_differences_hides_the_named_fields() {
        let mut live = as_live(deployment("web:1.0"));
        live["spec"]["replicas"] = json!(7);
        let rules = [IgnoreRule {
            kind: Some("Deployment".into()),
            json_pointers: vec!["/spec/replicas".into()],
            ..IgnoreRule::default()
        }];
        assert_eq!(
            compare(Some(&deployment("web:1.0")), Some(&live), &rules).change,
            Change::Unchanged
        );
        assert_eq!(
            compare(Some(&deployment("web:1.0")), Some(&live), &[]).change,
            Change::Update
        );
    }

    #[test]
    fn a_field_removed_from_the_manifests_shows_when_it_was_applied_before() {
        let mut live = as_live(deployment("web:1.0"));
        let applied = shape(&deployment("web:1.0")).to_string();
        live["metadata"]["annotations"][APPLIED_FIELDS_ANNOTATION] = json!(applied);
        let mut desired = deployment("web:1.0");
        desired["spec"].as_object_mut().unwrap().remove("replicas");
        let diff = compare(Some(&desired), Some(&live), &[]);
        assert_eq!(diff.change, Change::Update);
        assert!(diff.diff.contains("-  replicas: 2"), "{}", diff.diff);
    }

    #[test]
    fn secret_diffs_never_hold_plaintext() {
        let desired = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"},
                             "stringData": {"password": "s3cret-new"}});
        let live = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"},
                          "data": {"password": normalize::base64(b"s3cret-old")}});
        let diff = compare(Some(&desired), Some(&live), &[]);
        assert_eq!(diff.change, Change::Update);
        assert!(diff.diff.contains("password: ++++++++"), "{}", diff.diff);
        assert!(!diff.diff.contains("s3cret"));
        assert!(!diff.diff.contains(&normalize::base64(b"s3cret-old")));
        let same = compare(
            Some(&desired),
            Some(&json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "db"}, "data": {"password": normalize::base64(b"s3cret-new")}})),
            &[],
        );
        assert_eq!(same.change, Change::Unchanged);
    }

    #[test]
    fn service_cluster_ip_is_not_drift() {
        let desired = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                             "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}});
        let live = json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": {"app": "web"}, "clusterIP": "10.96.0.12", "clusterIPs": ["10.96.0.12"],
                     "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack", "sessionAffinity": "None",
                     "type": "ClusterIP",
                     "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}]}});
        assert_eq!(
            compare(Some(&desired), Some(&live), &[]).change,
            Change::Unchanged
        );
    }
}

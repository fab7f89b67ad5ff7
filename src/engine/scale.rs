//! The `scale` subresource: where a kind keeps its desired replica count, its observed one
//! and the selector of its pods, and the `autoscaling/v1` `Scale` that shows them.
//!
//! Built-in kinds with the subresource (Deployment, ReplicaSet, StatefulSet,
//! ReplicationController) keep them at `spec.replicas`, `status.replicas` and `spec.selector`;
//! a custom kind keeps them where its CRD's `subresources.scale` says (`specReplicasPath`,
//! `statusReplicasPath`, `labelSelectorPath`, read as upstream reads them: the field names
//! between dots, so `[0]` is part of a name, never an index), the selector there
//! being the serialized string form, as the API server expects.
//!
//! Invariant: a kind without the subresource has no [`Paths`]; `kubectl scale`, the API's
//! `/scale` and the HorizontalPodAutoscaler reach replicas only through here.

use serde_json::{Value, json};

use super::crd;
use super::doc;
use super::kinds::{self, KindInfo};
use super::labels::Selector;
use super::store::State;

/// Where a kind's scale lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// The desired replicas (`spec.replicas`).
    pub spec_replicas: Vec<String>,
    /// The observed replicas (`status.replicas`).
    pub status_replicas: Vec<String>,
    /// The pods' selector: a `LabelSelector` object for built-in kinds, a selector string
    /// for custom ones; None when the CRD declares no `labelSelectorPath`.
    pub selector: Option<Vec<String>>,
    /// Whether the selector is a `LabelSelector` object (built-in kinds).
    selector_is_object: bool,
}

/// What a `Scale` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scale {
    /// Desired replicas (1 when unset, as the workloads default).
    pub replicas: i64,
    /// Observed replicas.
    pub status_replicas: i64,
    /// The pods' selector in its string form (empty: none declared).
    pub selector: String,
}

/// A CRD's scale path as the API server reads it: the field names between its dots (after the
/// leading one), with no array notation — admission allowed only such paths.
fn path(text: &str) -> Vec<String> {
    match text.strip_prefix('.') {
        Some(rest) if !rest.is_empty() => rest.split('.').map(str::to_string).collect(),
        _ => Vec::new(),
    }
}

/// Where `info`'s objects keep their scale, or None when the kind has no scale subresource
/// (for a custom kind: its CRD, as stored in `state`, declares none for its stored version).
pub fn paths(state: &State, info: &KindInfo) -> Option<Paths> {
    if kinds::is_builtin(info) {
        if !info.subresources.contains(&"scale") {
            return None;
        }
        return Some(Paths {
            spec_replicas: path(".spec.replicas"),
            status_replicas: path(".status.replicas"),
            selector: Some(path(".spec.selector")),
            selector_is_object: true,
        });
    }
    let crd = state.get(crd::KIND, "", &format!("{}.{}", info.plural, info.group))?;
    let version = doc::at(&crd.doc, &["spec", "versions"])?
        .as_array()?
        .iter()
        .find(|v| doc::str_at(v, &["name"]) == info.version)?;
    let scale = doc::at(version, &["subresources", "scale"])?;
    let spec_replicas = path(doc::str_at(scale, &["specReplicasPath"]));
    if spec_replicas.is_empty() {
        return None;
    }
    let selector = Some(doc::str_at(scale, &["labelSelectorPath"]))
        .filter(|p| !p.is_empty())
        .map(path);
    Some(Paths {
        spec_replicas,
        status_replicas: path(doc::str_at(scale, &["statusReplicasPath"])),
        selector,
        selector_is_object: false,
    })
}

fn at<'a>(object: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(object, |v, k| v.get(k))
}

impl Paths {
    /// The scale `object` shows now.
    pub fn read(&self, object: &Value) -> Scale {
        let selector = match &self.selector {
            None => String::new(),
            Some(p) if self.selector_is_object => at(object, p)
                .map(
                    |s| match s.get("matchLabels").or(s.get("matchExpressions")) {
                        Some(_) => Selector::from_label_selector(s),
                        // A ReplicationController's selector is a plain map.
                        None => Ok(Selector::from_map(s)),
                    },
                )
                .and_then(Result::ok)
                .map(|s| s.to_text())
                .unwrap_or_default(),
            Some(p) => at(object, p)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        };
        Scale {
            replicas: at(object, &self.spec_replicas)
                .and_then(Value::as_i64)
                .unwrap_or(1),
            status_replicas: at(object, &self.status_replicas)
                .and_then(Value::as_i64)
                .unwrap_or(0),
            selector,
        }
    }

    /// `object` with its desired replicas set to `replicas`.
    pub fn with_replicas(&self, object: &Value, replicas: i64) -> Value {
        let mut scaled = object.clone();
        let keys: Vec<&str> = self.spec_replicas.iter().map(String::as_str).collect();
        doc::set(&mut scaled, &keys, json!(replicas));
        scaled
    }

    /// The selector of the pods `object` scales (None: none declared or not parseable).
    pub fn pod_selector(&self, object: &Value) -> Option<Selector> {
        let text = self.read(object).selector;
        if text.is_empty() {
            return None;
        }
        Selector::parse(&text).ok()
    }
}

/// The `autoscaling/v1` `Scale` of `object`.
pub fn scale_object(paths: &Paths, object: &Value) -> Value {
    let scale = paths.read(object);
    let meta = object.get("metadata").cloned().unwrap_or(json!({}));
    let mut status = json!({"replicas": scale.status_replicas});
    if !scale.selector.is_empty() {
        status["selector"] = json!(scale.selector);
    }
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
            "creationTimestamp": meta.get("creationTimestamp"),
        },
        "spec": {"replicas": scale.replicas},
        "status": status,
    })
}

/// The API server's check of a requested replica count.
pub fn validate_replicas(name: &str, replicas: i64) -> Result<(), String> {
    if replicas < 0 {
        return Err(format!(
            "Scale.autoscaling \"{name}\" is invalid: spec.replicas: Invalid value: {replicas}: must be greater than or equal to 0"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_workloads_scale_at_spec_replicas() {
        let state = State::empty(1);
        let deploy = kinds::lookup("deploy").expect("deployment");
        let paths = paths(&state, deploy).expect("deployments scale");
        let object = json!({"metadata": {"name": "web"}, "spec": {"replicas": 3,
            "selector": {"matchLabels": {"app": "web"}}}, "status": {"replicas": 2}});
        assert_eq!(
            paths.read(&object),
            Scale {
                replicas: 3,
                status_replicas: 2,
                selector: "app=web".into()
            }
        );
        assert_eq!(paths.with_replicas(&object, 7)["spec"]["replicas"], 7);
        assert!(super::paths(&state, kinds::lookup("svc").expect("service")).is_none());
    }

    #[test]
    fn negative_replicas_are_refused() {
        assert!(validate_replicas("web", 0).is_ok());
        assert_eq!(
            validate_replicas("web", -1).unwrap_err(),
            "Scale.autoscaling \"web\" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0"
        );
    }
}

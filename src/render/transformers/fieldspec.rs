//! Walking an object along a field spec (`spec/template/spec/containers[]/image`), as
//! kustomize's `fieldspec` filter does, and handing each field found to a setter.
//!
//! Rules (from kustomize's `api/filters/fieldspec`): the spec applies only when its kind,
//! group and version (each optional) match the object; the path splits on `/` except where
//! the slash is escaped as `\/`; a list met on the way is walked element by element (`[]` is
//! optional and only forbids creating); with `create`, missing maps on the way are created
//! and the last field is created with the kind the transformer asks for; a null met before the
//! end stops the walk quietly.

use serde_json::{Map, Value};

use crate::model::Gvk;
use crate::render::types::FieldSpec;

/// What to create for a missing last field when the spec says `create: true`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateKind {
    /// A string (names, namespaces, images).
    Scalar,
    /// A map (labels, annotations, selectors).
    Mapping,
}

/// Why walking a field spec failed; the caller adds the object id and the spec's path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WalkError {
    /// A scalar sits where the path needs a map or a list.
    #[error("expected sequence or mapping node")]
    NotTraversable,
    /// The path has an empty segment.
    #[error("cannot set or create an empty field name")]
    EmptyFieldName,
    /// The setter refused the field it was given.
    #[error("{0}")]
    Setter(String),
}

/// True when the spec's kind, group and version (each optional) match `gvk`.
pub fn matches_gvk(spec: &FieldSpec, gvk: &Gvk) -> bool {
    (spec.kind.is_empty() || spec.kind == gvk.kind)
        && (spec.group.is_empty() || spec.group == gvk.group)
        && (spec.version.is_empty() || spec.version == gvk.version)
}

/// Splits a field-spec path on `/`, keeping escaped slashes (`a\/b`) inside one segment and
/// ignoring one leading slash.
pub fn split_path(path: &str) -> Vec<String> {
    let mut parts: Vec<&str> = path.split('/').collect();
    if parts.len() > 1 && parts[0].is_empty() {
        parts.remove(0);
    }
    let mut segments: Vec<String> = Vec::new();
    for part in parts {
        match segments.last_mut() {
            Some(last) if last.ends_with('\\') => {
                last.pop();
                last.push('/');
                last.push_str(part);
            }
            _ => segments.push(part.to_string()),
        }
    }
    segments
}

/// Applies `set` to every field `spec` reaches in `object`, if the spec matches `gvk`.
///
/// `create` is the kind of the last field to create when `spec.create` is set; `None` never
/// creates. The setter receives the field's value (a fresh empty string or map when created).
pub fn apply(
    object: &mut Value,
    gvk: &Gvk,
    spec: &FieldSpec,
    create: Option<CreateKind>,
    set: &mut dyn FnMut(&mut Value) -> Result<(), String>,
) -> Result<(), WalkError> {
    if !matches_gvk(spec, gvk) {
        return Ok(());
    }
    let path = split_path(&spec.path);
    let create = if spec.create_if_not_present {
        create
    } else {
        None
    };
    walk(object, &path, create, set)
}

fn walk(
    node: &mut Value,
    path: &[String],
    create: Option<CreateKind>,
    set: &mut dyn FnMut(&mut Value) -> Result<(), String>,
) -> Result<(), WalkError> {
    let Some((head, rest)) = path.split_first() else {
        return set(node).map_err(WalkError::Setter);
    };
    match node {
        Value::Null => Ok(()),
        Value::Array(items) => {
            for item in items {
                walk(item, path, create, set)?;
            }
            Ok(())
        }
        Value::Object(map) => walk_map(map, head, rest, create, set),
        _ => Err(WalkError::NotTraversable),
    }
}

fn walk_map(
    map: &mut Map<String, Value>,
    head: &str,
    rest: &[String],
    create: Option<CreateKind>,
    set: &mut dyn FnMut(&mut Value) -> Result<(), String>,
) -> Result<(), WalkError> {
    let (field, is_sequence) = match head.strip_suffix("[]") {
        Some(name) => (name, true),
        None => (head, false),
    };
    if field.is_empty() {
        return Err(WalkError::EmptyFieldName);
    }
    // Which kind a missing or null field becomes; `None` means look up only.
    let create_as = match create {
        Some(_) if is_sequence => None,
        Some(kind) if rest.is_empty() => Some(kind),
        Some(_) => Some(CreateKind::Mapping),
        None => None,
    };
    let value = match (map.get_mut(field).is_some(), create_as) {
        (true, _) => map.get_mut(field),
        (false, Some(kind)) => Some(map.entry(field.to_string()).or_insert_with(|| empty(kind))),
        (false, None) => None,
    };
    let Some(value) = value else {
        return Ok(());
    };
    if value.is_null()
        && let Some(kind) = create_as
    {
        *value = empty(kind);
    }
    walk(value, rest, create, set)
}

fn empty(kind: CreateKind) -> Value {
    match kind {
        CreateKind::Scalar => Value::String(String::new()),
        CreateKind::Mapping => Value::Object(Map::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(path: &str, create: bool) -> FieldSpec {
        FieldSpec {
            path: path.into(),
            create_if_not_present: create,
            ..FieldSpec::default()
        }
    }

    fn set_to(text: &'static str) -> impl FnMut(&mut Value) -> Result<(), String> {
        move |v: &mut Value| {
            *v = Value::String(text.into());
            Ok(())
        }
    }

    #[test]
    fn escaped_slashes_stay_in_one_segment() {
        assert_eq!(
            split_path(r"metadata/annotations/nginx.ingress.kubernetes.io\/auth-secret"),
            vec![
                "metadata",
                "annotations",
                "nginx.ingress.kubernetes.io/auth-secret"
            ]
        );
        assert_eq!(split_path("/a/b"), vec!["a", "b"]);
    }

    #[test]
    fn lists_are_walked_with_or_without_brackets() {
        let mut obj = json!({"spec": {"containers": [{"image": "a"}, {"name": "b"}]}});
        let gvk = Gvk::default();
        apply(
            &mut obj,
            &gvk,
            &spec("spec/containers/image", false),
            None,
            &mut set_to("x"),
        )
        .unwrap();
        assert_eq!(
            obj,
            json!({"spec": {"containers": [{"image": "x"}, {"name": "b"}]}})
        );
        apply(
            &mut obj,
            &gvk,
            &spec("spec/containers[]/image", true),
            Some(CreateKind::Scalar),
            &mut set_to("y"),
        )
        .unwrap();
        assert_eq!(
            obj,
            json!({"spec": {"containers": [{"image": "y"}, {"name": "b", "image": "y"}]}})
        );
    }

    #[test]
    fn create_builds_missing_maps_but_not_lists() {
        let mut obj = json!({"spec": {}});
        let gvk = Gvk::default();
        apply(
            &mut obj,
            &gvk,
            &spec("spec/selector/matchLabels", true),
            Some(CreateKind::Mapping),
            &mut |v| {
                v.as_object_mut()
                    .ok_or("not a map")?
                    .insert("a".into(), json!("b"));
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(
            obj,
            json!({"spec": {"selector": {"matchLabels": {"a": "b"}}}})
        );
        apply(
            &mut obj,
            &gvk,
            &spec("spec/items[]/x", true),
            Some(CreateKind::Scalar),
            &mut set_to("z"),
        )
        .unwrap();
        assert_eq!(
            obj,
            json!({"spec": {"selector": {"matchLabels": {"a": "b"}}}})
        );
    }

    #[test]
    fn kind_group_version_must_match() {
        let fs = FieldSpec {
            kind: "Deployment".into(),
            group: "apps".into(),
            ..spec("spec/replicas", true)
        };
        let mut obj = json!({});
        apply(
            &mut obj,
            &Gvk::from_api_version("v1", "Deployment"),
            &fs,
            Some(CreateKind::Scalar),
            &mut set_to("1"),
        )
        .unwrap();
        assert_eq!(obj, json!({}));
        apply(
            &mut obj,
            &Gvk::from_api_version("apps/v1", "Deployment"),
            &fs,
            Some(CreateKind::Scalar),
            &mut set_to("1"),
        )
        .unwrap();
        assert_eq!(obj, json!({"spec": {"replicas": "1"}}));
    }

    #[test]
    fn scalars_in_the_way_are_an_error() {
        let mut obj = json!({"spec": "oops"});
        let err = apply(
            &mut obj,
            &Gvk::default(),
            &spec("spec/x", false),
            None,
            &mut set_to("1"),
        );
        assert_eq!(err, Err(WalkError::NotTraversable));
    }
}

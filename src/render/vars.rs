//! Legacy `vars`: `$(NAME)` in the fields kustomize lists as var references, replaced by a
//! field of a named object, exactly as kustomize v5.5 does it (`api/internal/accumulator`,
//! `api/filters/refvar`).
//!
//! The flow follows upstream's accumulator:
//! 1. after a kustomization's transformers ran, [`VarSet::merge_from_kustomization`] marks the
//!    object each of its vars reads (matched by exact group/version/kind/name, against current
//!    and previous ids, and the namespace when the var gives one) and adds the vars to the set;
//!    a name already in the set is an error;
//! 2. a parent folds its children's sets in with [`VarSet::merge_set`] (same rule);
//! 3. once the whole build is done (names final, hashes added, references fixed),
//!    [`VarSet::resolve`] reads each var from the object it marked and replaces `$(NAME)` in
//!    every var-reference field. A field that is exactly `$(NAME)` takes the value's type;
//!    inside longer text the value is printed. `$$` escapes a dollar. Unknown names stay as
//!    they are.
//!
//! Invariant: no IO.

use std::collections::BTreeMap;

use serde_json::{Map, Number, Value};

use crate::model::{Gvk, ResId, ResMap};
use crate::render::field_path;
use crate::render::transformers::fieldspec;
use crate::render::types::{FieldSpec, Var};

/// The field a var reads when it names none.
pub const DEFAULT_FIELD_PATH: &str = "metadata.name";

/// Declaring or resolving vars failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VarError {
    /// Two vars with one name in the same build.
    #[error("var '{name}' already encountered")]
    Duplicate {
        /// The var's name.
        name: String,
    },
    /// A var's object reference matches several objects.
    #[error("found {count} resId matches for var {var} (unable to disambiguate)")]
    Ambiguous {
        /// How many matched.
        count: usize,
        /// The var, spelled as kustomize prints it.
        var: String,
    },
    /// No object was marked for a var.
    #[error("var '{var}' cannot be mapped to a field in the set of known resources")]
    Unmapped {
        /// The var, spelled as kustomize prints it.
        var: String,
    },
    /// The object lacks the var's field.
    #[error("field specified in var '{var}' not found in corresponding resource")]
    FieldNotFound {
        /// The var, spelled as kustomize prints it.
        var: String,
    },
    /// A var-reference field holds something `$(VAR)` cannot be expanded in.
    #[error("{id}: var reference field `{path}`: {cause}")]
    BadField {
        /// The object.
        id: String,
        /// The field spec's path.
        path: String,
        /// Why.
        cause: String,
    },
}

/// The vars declared so far in a build, by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VarSet {
    vars: BTreeMap<String, Var>,
}

/// What [`VarSet::resolve`] found out besides doing its work.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolution {
    /// Vars that were declared but never referenced (kustomize only logs them).
    pub unused: Vec<String>,
}

impl VarSet {
    /// An empty set.
    pub fn new() -> VarSet {
        VarSet::default()
    }

    /// True when no var is declared.
    pub fn is_empty(&self) -> bool {
        self.vars.is_empty()
    }

    /// The vars, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = &Var> {
        self.vars.values()
    }

    /// Adds one var; a name already present is an error (kustomize's `VarSet.Merge`).
    pub fn merge(&mut self, var: &Var) -> Result<(), VarError> {
        if self.vars.contains_key(&var.name) {
            return Err(VarError::Duplicate {
                name: var.name.clone(),
            });
        }
        self.vars.insert(var.name.clone(), defaulted(var));
        Ok(())
    }

    /// Folds in a child build's vars (kustomize's `MergeSet`: duplicates are errors, even
    /// identical ones, as when one base is reached twice).
    pub fn merge_set(&mut self, other: &VarSet) -> Result<(), VarError> {
        for var in other.vars.values() {
            self.merge(var)?;
        }
        Ok(())
    }

    /// A kustomization's `vars:` (kustomize's `MergeVars`): marks the object each var reads,
    /// then adds the vars.
    pub fn merge_from_kustomization(
        &mut self,
        vars: &[Var],
        resmap: &mut ResMap,
    ) -> Result<(), VarError> {
        for var in vars {
            let wanted = objref_id(var);
            // Kustomize matches by group/version/kind/name, adding the namespace only when the
            // var names one. The var's id never knows its kind to be cluster-scoped; an object's
            // current id does (its previous ids, rebuilt from annotations upstream, do not).
            let matches = |id: &ResId, knows_scope: bool| {
                id.name == wanted.name
                    && id.gvk == wanted.gvk
                    && (wanted.namespace.is_empty()
                        || effective_namespace(&wanted, false)
                            == effective_namespace(id, knows_scope))
            };
            let matched: Vec<usize> = resmap
                .iter()
                .enumerate()
                .filter(|(_, r)| {
                    matches(&r.id(), true) || r.previous_ids.iter().any(|id| matches(id, false))
                })
                .map(|(i, _)| i)
                .collect();
            match matched.as_slice() {
                [] => {}
                [index] => resmap.as_mut_vec()[*index]
                    .ref_var_names
                    .push(var.name.clone()),
                _ => {
                    return Err(VarError::Ambiguous {
                        count: matched.len(),
                        var: go_var_with_field_path(var, &var.fieldref.field_path),
                    });
                }
            }
        }
        for var in vars {
            self.merge(var)?;
        }
        Ok(())
    }

    /// Replaces `$(NAME)` in every field `var_reference` lists, in every object (kustomize's
    /// `ResolveVars`). Does nothing when no var is declared.
    pub fn resolve(
        &self,
        resmap: &mut ResMap,
        var_reference: &[FieldSpec],
    ) -> Result<Resolution, VarError> {
        let values = self.values(resmap)?;
        if values.is_empty() {
            return Ok(Resolution::default());
        }
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for resource in resmap.iter_mut() {
            let gvk = resource.gvk();
            let id = resource.id().to_string();
            let mut object = Value::Object(std::mem::take(&mut resource.object));
            let mut result = Ok(());
            for spec in var_reference {
                let mut set = |field: &mut Value| expand_field(field, &values, &mut counts);
                if let Err(e) = fieldspec::apply(&mut object, &gvk, spec, None, &mut set) {
                    result = Err(VarError::BadField {
                        id: id.clone(),
                        path: spec.path.clone(),
                        cause: e.to_string(),
                    });
                    break;
                }
            }
            if let Value::Object(map) = object {
                resource.object = map;
            }
            result?;
        }
        let unused = values
            .keys()
            .filter(|name| !counts.contains_key(*name))
            .cloned()
            .collect();
        Ok(Resolution { unused })
    }

    /// Each var's value, read from the first object marked with its name.
    fn values(&self, resmap: &ResMap) -> Result<BTreeMap<String, Value>, VarError> {
        let mut values = BTreeMap::new();
        for var in self.vars.values() {
            let Some(resource) = resmap.iter().find(|r| r.ref_var_names.contains(&var.name)) else {
                return Err(VarError::Unmapped { var: go_var(var) });
            };
            let object = Value::Object(resource.object.clone());
            let path = field_path::split_with_slice_indices(&var.fieldref.field_path);
            let value = match field_path::lookup(&object, &path) {
                Ok(Some(value)) => value.clone(),
                _ => return Err(VarError::FieldNotFound { var: go_var(var) }),
            };
            values.insert(var.name.clone(), value);
        }
        Ok(values)
    }
}

/// The var with kustomize's defaults: field path `metadata.name`, group and version from
/// `apiVersion`.
fn defaulted(var: &Var) -> Var {
    let mut var = var.clone();
    if var.fieldref.field_path.is_empty() {
        var.fieldref.field_path = DEFAULT_FIELD_PATH.to_string();
    }
    let objref = &mut var.objref;
    if !objref.api_version.is_empty() {
        let parts: Vec<&str> = objref.api_version.split('/').collect();
        match parts.as_slice() {
            [group, version] => {
                objref.group = group.to_string();
                objref.version = version.to_string();
            }
            [version] => objref.version = version.to_string(),
            _ => {}
        }
    }
    var
}

fn objref_id(var: &Var) -> ResId {
    let var = defaulted(var);
    ResId {
        gvk: Gvk {
            group: var.objref.group.clone(),
            version: var.objref.version.clone(),
            kind: var.objref.kind.clone(),
        },
        name: var.objref.name.clone(),
        namespace: var.objref.namespace.clone(),
    }
}

fn effective_namespace(id: &ResId, knows_scope: bool) -> &str {
    if knows_scope && crate::render::transformers::namespace::is_cluster_scoped(&id.gvk) {
        "_non_namespaceable_"
    } else if id.namespace.is_empty() || id.namespace == "default" {
        "default"
    } else {
        &id.namespace
    }
}

/// A var as Go's `%v` prints kustomize's `Var` struct (error messages quote it): the object
/// reference prints through its embedded Gvk's `String()`, so only `Kind.version.group` shows.
fn go_var(var: &Var) -> String {
    go_var_with_field_path(var, &defaulted(var).fieldref.field_path)
}

/// As [`go_var`], with the field path as written (kustomize prints the ambiguity error before
/// defaulting it).
fn go_var_with_field_path(var: &Var, field_path: &str) -> String {
    let v = defaulted(var);
    let o = &v.objref;
    let or = |s: &str, d: &str| {
        if s.is_empty() {
            d.to_string()
        } else {
            s.to_string()
        }
    };
    format!(
        "{{{} {}.{}.{} {{{}}}}}",
        v.name,
        or(&o.kind, "[noKind]"),
        or(&o.version, "[noVer]"),
        or(&o.group, "[noGrp]"),
        field_path
    )
}

/// Expands `$(VAR)` in one var-reference field: a string, the string values of a map, or the
/// items of a list (which must all be strings).
fn expand_field(
    field: &mut Value,
    values: &BTreeMap<String, Value>,
    counts: &mut BTreeMap<String, usize>,
) -> Result<(), String> {
    match field {
        Value::Null => Ok(()),
        Value::String(text) => {
            *field = expand(text, values, counts);
            Ok(())
        }
        Value::Object(map) => {
            expand_map(map, values, counts);
            Ok(())
        }
        Value::Array(items) => {
            if items.iter().any(|item| !item.is_string()) {
                return Err("invalid value type expect a string".to_string());
            }
            for item in items.iter_mut() {
                if let Value::String(text) = item {
                    *item = expand(text, values, counts);
                }
            }
            Ok(())
        }
        // Numbers and booleans hold no `$(VAR)`.
        Value::Bool(_) | Value::Number(_) => Ok(()),
    }
}

fn expand_map(
    map: &mut Map<String, Value>,
    values: &BTreeMap<String, Value>,
    counts: &mut BTreeMap<String, usize>,
) {
    for value in map.values_mut() {
        if let Value::String(text) = value {
            *value = expand(text, values, counts);
        }
    }
}

/// The replacement for `$(name)`, and whether it counts as a use: only scalars replace;
/// anything else (a map, a list) leaves the reference as written.
fn mapping(
    name: &str,
    values: &BTreeMap<String, Value>,
    counts: &mut BTreeMap<String, usize>,
) -> Value {
    match values.get(name) {
        Some(v @ (Value::String(_) | Value::Number(_) | Value::Bool(_))) => {
            *counts.entry(name.to_string()).or_default() += 1;
            v.clone()
        }
        _ => Value::String(format!("$({name})")),
    }
}

/// Go's `%v` of a var value inside longer text.
fn print_value(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => go_number(n),
        other => other.to_string(),
    }
}

fn go_number(n: &Number) -> String {
    if n.is_f64() {
        let f = n.as_f64().unwrap_or_default();
        // Go's %v of a float64 is %g: exponent form for large or small magnitudes.
        let abs = f.abs();
        if abs != 0.0 && !(1e-4..1e21).contains(&abs) {
            let formatted = format!("{f:e}");
            // Rust prints `1e21`, Go `1e+21`.
            return match formatted.split_once('e') {
                Some((mantissa, exp)) if !exp.starts_with('-') => format!("{mantissa}e+{exp:0>2}"),
                Some((mantissa, exp)) => {
                    format!("{mantissa}e-{:0>2}", exp.trim_start_matches('-'))
                }
                None => formatted,
            };
        }
        return format!("{f}");
    }
    n.to_string()
}

/// kustomize's `DoReplacements`: `$(NAME)` is replaced, `$$` is a literal `$`, any other `$`
/// stays. A text that is exactly `$(NAME)` becomes the value itself, keeping its type.
fn expand(
    input: &str,
    values: &BTreeMap<String, Value>,
    counts: &mut BTreeMap<String, usize>,
) -> Value {
    let bytes = input.as_bytes();
    let mut out = String::new();
    let mut checkpoint = 0;
    let mut cursor = 0;
    while cursor < bytes.len() {
        if bytes[cursor] == b'$' && cursor + 1 < bytes.len() {
            out.push_str(&input[checkpoint..cursor]);
            let rest = &input[cursor + 1..];
            let advance = match rest.as_bytes()[0] {
                b'$' => {
                    out.push('$');
                    1
                }
                b'(' => match rest.find(')') {
                    Some(close) => {
                        let name = &rest[1..close];
                        let mapped = mapping(name, values, counts);
                        if input.len() == name.len() + 3 {
                            return mapped;
                        }
                        out.push_str(&print_value(&mapped));
                        close + 1
                    }
                    None => {
                        out.push_str("$(");
                        1
                    }
                },
                _ => {
                    // `$x` stays as written; the byte after `$` may start a multi-byte char.
                    let width = rest.chars().next().map(char::len_utf8).unwrap_or(1);
                    out.push('$');
                    out.push_str(&rest[..width]);
                    width
                }
            };
            cursor += advance;
            checkpoint = cursor + 1;
        }
        cursor += 1;
    }
    if checkpoint < input.len() {
        out.push_str(&input[checkpoint..]);
    }
    Value::String(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Resource;
    use crate::render::types::{VarFieldRef, VarTarget};
    use serde_json::json;

    fn values(pairs: Value) -> BTreeMap<String, Value> {
        pairs
            .as_object()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .collect()
    }

    #[test]
    fn expansion_follows_kustomize() {
        let vals = values(json!({"A": "x", "PORT": 8080, "F": 1.5, "M": {"k": "v"}}));
        let mut counts = BTreeMap::new();
        let mut check = |input: &str| expand(input, &vals, &mut counts);
        assert_eq!(check("$(A)"), json!("x"));
        assert_eq!(check("$(PORT)"), json!(8080));
        assert_eq!(check("p=$(PORT)/$(A)"), json!("p=8080/x"));
        assert_eq!(check("$$(A)"), json!("$(A)"));
        assert_eq!(check("$(B) $x $"), json!("$(B) $x $"));
        assert_eq!(check("a $(A"), json!("a $(A"));
        assert_eq!(check("$(M)"), json!("$(M)"));
        assert_eq!(check("v$(F)"), json!("v1.5"));
        assert_eq!(counts.get("A"), Some(&2));
        assert_eq!(counts.get("M"), None);
    }

    fn var(name: &str, kind: &str, object: &str, path: &str) -> Var {
        Var {
            name: name.into(),
            objref: VarTarget {
                api_version: "v1".into(),
                kind: kind.into(),
                name: object.into(),
                ..VarTarget::default()
            },
            fieldref: VarFieldRef {
                field_path: path.into(),
            },
        }
    }

    fn resource(value: Value) -> Resource {
        Resource::new(value.as_object().cloned().unwrap_or_default())
    }

    #[test]
    fn vars_read_renamed_objects_and_fill_reference_fields() {
        let mut svc = resource(json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "p-svc"}, "spec": {"ports": [{"port": 80}]}}));
        svc.previous_ids.push(ResId {
            gvk: Gvk::from_api_version("v1", "Service"),
            name: "svc".into(),
            namespace: String::new(),
        });
        let pod = resource(
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "command": ["run", "$(SVC):$(PORT)"],
                                     "env": [{"name": "P", "value": "$(PORT)"}]}]}}),
        );
        let mut rm: ResMap = vec![svc, pod].into_iter().collect();
        let mut set = VarSet::new();
        set.merge_from_kustomization(
            &[
                var("SVC", "Service", "svc", ""),
                var("PORT", "Service", "svc", "spec.ports[0].port"),
            ],
            &mut rm,
        )
        .unwrap();
        let specs: Vec<FieldSpec> = ["spec/containers/command", "spec/containers/env/value"]
            .iter()
            .map(|p| FieldSpec {
                kind: "Pod".into(),
                path: p.to_string(),
                ..FieldSpec::default()
            })
            .collect();
        let resolution = set.resolve(&mut rm, &specs).unwrap();
        assert!(resolution.unused.is_empty());
        let pod = rm.as_slice()[1].to_value();
        assert_eq!(
            pod["spec"]["containers"][0]["command"],
            json!(["run", "p-svc:80"])
        );
        assert_eq!(pod["spec"]["containers"][0]["env"][0]["value"], json!(80));
    }

    #[test]
    fn duplicate_names_and_unmapped_vars_are_errors() {
        let mut set = VarSet::new();
        let mut rm = ResMap::new();
        set.merge_from_kustomization(&[var("A", "Pod", "p", "")], &mut rm)
            .unwrap();
        let mut other = VarSet::new();
        other.merge(&var("A", "Pod", "p", "")).unwrap();
        assert_eq!(
            set.merge_set(&other).unwrap_err().to_string(),
            "var 'A' already encountered"
        );
        assert_eq!(
            set.resolve(&mut rm, &[]).unwrap_err().to_string(),
            "var '{A Pod.v1.[noGrp] {metadata.name}}' cannot be mapped to a field in the set of known resources"
        );
    }
}

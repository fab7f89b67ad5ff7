//! CustomResourceDefinitions (`apiextensions.k8s.io/v1`) and the custom resources they define.
//!
//! A CRD is validated and established at once (conditions `NamesAccepted` and `Established`),
//! and its kind is registered in [`kinds`](super::kinds). A custom resource is admitted only
//! while its CRD exists and serves its version, after its version's structural schema has
//! defaulted and validated it as kube-apiserver 1.31 does: nulls of non-nullable fields
//! dropped (or defaulted), types, `required`, `enum`, unknown fields (strict, as kubectl
//! asks) except under `x-kubernetes-preserve-unknown-fields`, and value constraints and
//! string formats ([`constraints`](super::constraints), [`formats`](super::formats)).
//! A CRD is refused for `uniqueItems: true`, a pattern that does not compile or a `default`
//! its own schema refuses. CEL validation rules run in [`cel`](super::cel); updates are
//! not ratcheted.

use serde_json::{Map, Value, json};

use super::kinds::{self, KindInfo, NameRule};
use super::store::State;
use super::{constraints, doc, formats};

/// The CRD kind.
pub const KIND: &str = "CustomResourceDefinition";

/// The kind a CRD defines, built from its spec (None when the spec lacks a name or group).
pub fn info_of(crd: &Value) -> Option<KindInfo> {
    let spec = crd.get("spec")?;
    let names = spec.get("names")?;
    let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or_default().to_string();
    let group = text(spec.get("group"));
    let kind = text(names.get("kind"));
    let plural = text(names.get("plural"));
    if group.is_empty() || kind.is_empty() || plural.is_empty() {
        return None;
    }
    let list = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut served: Vec<String> = spec
        .get("versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|v| v.get("served").and_then(Value::as_bool).unwrap_or(false))
        .map(|v| text(v.get("name")))
        .collect();
    served.sort_by_key(|v| version_priority(v));
    let versions = kinds::intern_list(&served);
    let singular = match text(names.get("singular")) {
        s if s.is_empty() => kind.to_lowercase(),
        s => s,
    };
    let has_status = spec
        .get("versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|v| doc::at(v, &["subresources", "status"]).is_some());
    let has_scale = spec
        .get("versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|v| doc::at(v, &["subresources", "scale"]).is_some());
    let mut subresources = Vec::new();
    if has_scale {
        subresources.push("scale".to_string());
    }
    if has_status {
        subresources.push("status".to_string());
    }
    Some(KindInfo {
        kind: kinds::intern(&kind),
        key: kinds::intern(&format!("{kind}.{group}")),
        group: kinds::intern(&group),
        version: versions.first().copied().unwrap_or_default(),
        versions,
        namespaced: text(spec.get("scope")) != "Cluster",
        plural: kinds::intern(&plural),
        singular: kinds::intern(&singular),
        short: kinds::intern_list(&list(names.get("shortNames"))),
        categories: kinds::intern_list(&list(names.get("categories"))),
        verbs: kinds::STANDARD_VERBS,
        subresources: kinds::intern_list(&subresources),
        name_rule: NameRule::Subdomain,
    })
}

/// Kubernetes' version order: GA before beta before alpha, higher numbers first, then the
/// other names alphabetically.
fn version_priority(version: &str) -> (u8, i64, i64, String) {
    let parse = || -> Option<(u8, i64, i64)> {
        let rest = version.strip_prefix('v')?;
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let major: i64 = digits.parse().ok()?;
        let tail = &rest[digits.len()..];
        if tail.is_empty() {
            return Some((0, -major, 0));
        }
        for (stage, rank) in [("beta", 1), ("alpha", 2)] {
            if let Some(n) = tail.strip_prefix(stage) {
                return Some((rank, -major, -n.parse::<i64>().ok()?));
            }
        }
        None
    };
    match parse() {
        Some((rank, major, minor)) => (rank, major, minor, String::new()),
        None => (3, 0, 0, version.to_string()),
    }
}

/// Whether `kind` in `api_version` is defined by one of `objects` (a CRD applied with it).
pub fn defined_by<'a>(
    objects: impl IntoIterator<Item = &'a Value>,
    api_version: &str,
    kind: &str,
) -> bool {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    objects
        .into_iter()
        .filter(|o| o.get("kind").and_then(Value::as_str) == Some(KIND))
        .filter_map(info_of)
        .any(|i| i.group == group && i.kind == kind && i.versions.contains(&version))
}

/// Admission of a CRD: the API server's validation, then the status it reports at once.
pub fn admit_crd(new: &mut Value, old: Option<&Value>, errs: &mut Vec<String>) {
    let name = doc::name(new).to_string();
    let group = doc::str_at(new, &["spec", "group"]).to_string();
    let plural = doc::str_at(new, &["spec", "names", "plural"]).to_string();
    let kind = doc::str_at(new, &["spec", "names", "kind"]).to_string();
    if group.is_empty() {
        errs.push("spec.group: Required value".into());
    } else if !group.contains('.') {
        errs.push(format!(
            "spec.group: Invalid value: \"{group}\": should be a domain with at least one dot"
        ));
    }
    if plural.is_empty() {
        errs.push("spec.names.plural: Required value".into());
    }
    if kind.is_empty() {
        errs.push("spec.names.kind: Required value".into());
    }
    if !group.is_empty() && !plural.is_empty() && name != format!("{plural}.{group}") {
        errs.push(format!(
            "metadata.name: Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"
        ));
    }
    let scope = doc::str_at(new, &["spec", "scope"]).to_string();
    if scope != "Namespaced" && scope != "Cluster" {
        errs.push(format!(
            "spec.scope: Unsupported value: \"{scope}\": supported values: \"Cluster\", \"Namespaced\""
        ));
    }
    let versions: Vec<Value> = doc::at(new, &["spec", "versions"])
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if versions.is_empty() {
        errs.push("spec.versions: Invalid value: null: must have exactly one version marked as storage version".into());
    } else {
        let storage = versions
            .iter()
            .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
            .count();
        if storage != 1 {
            errs.push(format!("spec.versions: Invalid value: []apiextensions.CustomResourceDefinitionVersion{{...}}: must have exactly one version marked as storage version (found {storage})"));
        }
        for (i, v) in versions.iter().enumerate() {
            if v.get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .is_empty()
            {
                errs.push(format!("spec.versions[{i}].name: Required value"));
            }
            match doc::at(v, &["schema", "openAPIV3Schema"]) {
                None => errs.push(format!(
                    "spec.versions[{i}].schema.openAPIV3Schema: Required value: schemas are required"
                )),
                Some(schema) if schema.get("type").and_then(Value::as_str) != Some("object") => {
                    errs.push(format!(
                        "spec.versions[{i}].schema.openAPIV3Schema.type: Required value: must be object at the root"
                    ))
                }
                Some(_) => {}
            }
            if let Some(scale) = doc::at(v, &["subresources", "scale"]) {
                scale_paths(
                    scale,
                    &format!("spec.versions[{i}].subresources.scale"),
                    errs,
                );
            }
        }
        for (at, schema) in schemas_at(&versions) {
            schema_rules(schema, &at, errs);
        }
        super::cel::check_crd(&versions, errs);
    }
    if !errs.is_empty() {
        return;
    }
    if let Some(old) = old
        && doc::str_at(old, &["spec", "scope"]) != scope
    {
        errs.push(format!(
            "spec.scope: Invalid value: \"{scope}\": field is immutable"
        ));
        return;
    }
    let mut stored: Vec<Value> = old
        .and_then(|o| doc::at(o, &["status", "storedVersions"]))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for v in &versions {
        if v.get("storage").and_then(Value::as_bool) == Some(true)
            && let Some(n) = v.get("name")
            && !stored.contains(n)
        {
            stored.push(n.clone());
        }
    }
    let names = doc::at(new, &["spec", "names"])
        .cloned()
        .unwrap_or(json!({}));
    let mut accepted = names;
    if accepted.get("singular").is_none() {
        accepted["singular"] = json!(kind.to_lowercase());
    }
    if accepted.get("listKind").is_none() {
        accepted["listKind"] = json!(format!("{kind}List"));
    }
    doc::set(new, &["status", "acceptedNames"], accepted);
    doc::set(new, &["status", "storedVersions"], Value::Array(stored));
    doc::set(
        new,
        &["status", "conditions"],
        json!([
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found"},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted"},
        ]),
    );
}

/// The API server's checks of a version's `subresources.scale` (upstream
/// `ValidateCustomResourceDefinitionSubresources`): each path a "simple json path" — it starts
/// with `.` and is read as dot-separated field names, so `[0]` is part of a field's name, not
/// an index — `specReplicasPath` under `.spec`, `statusReplicasPath` under `.status`,
/// `labelSelectorPath` (optional) under either.
fn scale_paths(scale: &Value, at: &str, errs: &mut Vec<String>) {
    let checks: [(&str, bool, &[&str], &str); 3] = [
        (
            "specReplicasPath",
            true,
            &[".spec."],
            "should be a json path under .spec",
        ),
        (
            "statusReplicasPath",
            true,
            &[".status."],
            "should be a json path under .status",
        ),
        (
            "labelSelectorPath",
            false,
            &[".spec.", ".status."],
            "should be a json path under either .spec or .status",
        ),
    ];
    for (field, required, prefixes, under) in checks {
        let path = doc::str_at(scale, &[field]);
        let problem = if path.is_empty() {
            required.then_some("Required value".to_string())
        } else if !path.starts_with('.') {
            Some(format!(
                "Invalid value: \"{path}\": must be a simple json path starting with ."
            ))
        } else if !prefixes.iter().any(|p| path.starts_with(p)) {
            Some(format!("Invalid value: \"{path}\": {under}"))
        } else {
            None
        };
        if let Some(problem) = problem {
            errs.push(format!("{at}.{field}: {problem}"));
        }
    }
}

/// Why a request for `info`'s objects in `version` fails: its CRD converts versions with a
/// webhook (`conversion.strategy: Webhook`), `version` is not the storage version, and the
/// engine calls no webhook — so, as an API server whose conversion webhook cannot be reached,
/// every request needing a conversion fails (`Internal error occurred: conversion webhook for
/// example.com/v1, Kind=Widget failed: Post "https://…": service "conv" not found`); requests
/// in the storage version need none and work. `None` for every other kind and version.
/// `sent`: the request carries an object in `version` (a create), converted to the storage
/// version; otherwise a stored object is converted to `version`.
pub fn conversion_failure(
    state: &State,
    info: &KindInfo,
    version: &str,
    sent: bool,
) -> Option<String> {
    if kinds::is_builtin(info) || version.is_empty() {
        return None;
    }
    let crd = &state
        .get(KIND, "", &format!("{}.{}", info.plural, info.group))?
        .doc;
    let storage = storage_version(crd)?;
    if sent {
        webhook_conversion(state, crd, version, version)
    } else {
        webhook_conversion(state, crd, storage, version)
    }
}

fn storage_version(crd: &Value) -> Option<&str> {
    doc::at(crd, &["spec", "versions"])?
        .as_array()?
        .iter()
        .find(|v| v.get("storage").and_then(Value::as_bool) == Some(true))?
        .get("name")?
        .as_str()
}

/// The failure of converting an object of `crd`'s kind from version `from` for a request in
/// `to` (one of them not the storage version) when the CRD converts with a webhook.
fn webhook_conversion(state: &State, crd: &Value, from: &str, to: &str) -> Option<String> {
    let conversion = doc::at(crd, &["spec", "conversion"])?;
    if doc::str_at(conversion, &["strategy"]) != "Webhook" {
        return None;
    }
    let storage = storage_version(crd)?;
    if from == storage && to == storage {
        return None;
    }
    // A write converts the sent object to the storage version; a read, the stored one.
    let converted = if from == storage { storage } else { from };
    let client = doc::at(conversion, &["webhook", "clientConfig"])
        .cloned()
        .unwrap_or(Value::Null);
    let (url, cause) = match client.get("service") {
        Some(service) => {
            let name = doc::str_at(service, &["name"]);
            let namespace = doc::str_at(service, &["namespace"]);
            let port = doc::at(service, &["port"])
                .and_then(Value::as_i64)
                .unwrap_or(443);
            let path = doc::str_at(service, &["path"]);
            let url = format!("https://{name}.{namespace}.svc:{port}{path}?timeout=30s");
            let cause = match state.get("Service", namespace, name) {
                None => format!("service \"{name}\" not found"),
                // The engine's pods run no servers: nothing answers at the Service's address.
                Some(found) => format!(
                    "dial tcp {}:{port}: connect: connection refused",
                    doc::str_at(&found.doc, &["spec", "clusterIP"])
                ),
            };
            (url, cause)
        }
        None => (
            format!("{}?timeout=30s", doc::str_at(&client, &["url"])),
            "the engine calls no webhook outside the cluster".to_string(),
        ),
    };
    Some(format!(
        "Internal error occurred: conversion webhook for {}/{converted}, Kind={} failed: Post \"{url}\": {cause}",
        doc::str_at(crd, &["spec", "group"]),
        doc::str_at(crd, &["spec", "names", "kind"]),
    ))
}

/// Admission of a custom resource of `info`, sent in `version`: its CRD must exist and serve
/// that version; the version's schema defaults and validates it. `Err` is the whole message.
pub fn admit_custom(
    state: &State,
    info: &KindInfo,
    version: &str,
    old: Option<&Value>,
    new: &mut Value,
    warnings: &mut Vec<String>,
) -> Result<Vec<String>, String> {
    let no_match = || {
        format!(
            "no matches for kind \"{}\" in version \"{}/{version}\": install its CustomResourceDefinition first",
            info.kind, info.group
        )
    };
    let crd_name = format!("{}.{}", info.plural, info.group);
    let crd = state
        .get(KIND, "", &crd_name)
        .map(|s| &s.doc)
        .filter(|c| !doc::is_deleting(c))
        .ok_or_else(no_match)?;
    let spec_version = doc::at(crd, &["spec", "versions"])
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|v| {
            v.get("name").and_then(Value::as_str) == Some(version)
                && v.get("served").and_then(Value::as_bool) == Some(true)
        })
        .ok_or_else(no_match)?;
    if let Some(failure) = webhook_conversion(state, crd, version, version) {
        return Err(failure);
    }
    admit_against(crd, spec_version, info.kind, version, old, new, warnings)
}

/// What a plan checks before anything is written: the refusal (the API server's whole
/// message) that `crd` — stored, or about to be applied with the object — would give the
/// custom resource `object` (`old`: the stored one), by its schema and validation rules.
/// `None` when it would be admitted, or when its version is not one `crd` serves (admission
/// says so when it is sent).
pub fn refusal(crd: &Value, object: &Value, old: Option<&Value>) -> Option<String> {
    let (group, version) = doc::str_at(object, &["apiVersion"]).rsplit_once('/')?;
    let kind = doc::str_at(object, &["kind"]);
    let spec_version = doc::at(crd, &["spec", "versions"])
        .and_then(Value::as_array)?
        .iter()
        .find(|v| {
            v.get("name").and_then(Value::as_str) == Some(version)
                && v.get("served").and_then(Value::as_bool) == Some(true)
        })?;
    let mut sent = object.clone();
    let errs = match admit_against(
        crd,
        spec_version,
        kind,
        version,
        old,
        &mut sent,
        &mut Vec::new(),
    ) {
        Ok(errs) if errs.is_empty() => return None,
        Ok(errs) => errs,
        Err(message) => return Some(message),
    };
    let body = if errs.len() == 1 {
        errs[0].clone()
    } else {
        format!("[{}]", errs.join(", "))
    };
    Some(format!(
        "{kind}.{group} \"{}\" is invalid: {body}",
        doc::name(object)
    ))
}

/// Admission of a custom resource by `spec_version` (of `crd`), the version it was sent in:
/// defaults, schema validation, the status subresource's rule, validation rules.
fn admit_against(
    crd: &Value,
    spec_version: &Value,
    kind: &str,
    version: &str,
    old: Option<&Value>,
    new: &mut Value,
    warnings: &mut Vec<String>,
) -> Result<Vec<String>, String> {
    let mut errs = Vec::new();
    let mut unknown = Vec::new();
    if let Some(schema) = doc::at(spec_version, &["schema", "openAPIV3Schema"])
        && let Some(fields) = new.as_object_mut()
    {
        prune_nulls(schema, fields, &["apiVersion", "kind", "metadata"]);
        for (name, value) in fields.iter_mut() {
            if matches!(name.as_str(), "apiVersion" | "kind" | "metadata") {
                continue;
            }
            match doc::at(schema, &["properties", name]) {
                Some(sub) => validate(sub, value, name, &mut errs, &mut unknown),
                None if preserves(schema) => {}
                None => unknown.push(name.clone()),
            }
        }
        apply_defaults(schema, fields);
        if let Some(required) = schema.get("required").and_then(Value::as_array) {
            for field in required.iter().filter_map(Value::as_str) {
                if !fields.contains_key(field) {
                    errs.push(format!("{field}: Required value"));
                }
            }
        }
    }
    if !unknown.is_empty() {
        let list: Vec<String> = unknown
            .iter()
            .map(|p| format!("unknown field \"{p}\""))
            .collect();
        return Err(format!(
            "{kind} in version \"{version}\" cannot be handled as a {kind}: strict decoding error: {}",
            list.join(", ")
        ));
    }
    // With the status subresource, the main resource ignores status: it keeps what the
    // controller wrote.
    if doc::at(spec_version, &["subresources", "status"]).is_some()
        && let Some(fields) = new.as_object_mut()
    {
        match old.and_then(|o| o.get("status")) {
            Some(status) => {
                fields.insert("status".into(), status.clone());
            }
            None => {
                fields.remove("status");
            }
        }
    }
    if let Some(schema) = doc::at(spec_version, &["schema", "openAPIV3Schema"])
        && let Some(rules) = super::cel::rules_of(crd, version, schema)
    {
        let found = super::cel::check(&rules, schema, new, old, &errs);
        errs.extend(found.errors);
        warnings.extend(found.warnings);
    }
    Ok(errs)
}

fn preserves(schema: &Value) -> bool {
    schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true)
        || schema
            .get("x-kubernetes-embedded-resource")
            .and_then(Value::as_bool)
            == Some(true)
}

/// Fills `default`s of absent properties, recursively into objects present (as the API
/// server's structural defaulting).
fn apply_defaults(schema: &Value, fields: &mut Map<String, Value>) {
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    for (name, sub) in properties {
        let absent = match fields.get(name) {
            None => true,
            Some(Value::Null) => sub.get("nullable").and_then(Value::as_bool) != Some(true),
            Some(_) => false,
        };
        if absent && let Some(default) = sub.get("default") {
            fields.insert(name.clone(), default.clone());
        }
        match fields.get_mut(name) {
            Some(Value::Object(inner)) => apply_defaults(sub, inner),
            Some(Value::Array(items)) => {
                if let Some(element) = sub.get("items") {
                    for item in items.iter_mut() {
                        if let Value::Object(inner) = item {
                            apply_defaults(element, inner);
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The types a schema node allows, joined as kube-openapi names them (`integer,string` for
/// `x-kubernetes-int-or-string`); empty when the node sets none.
fn allowed_types(schema: &Value) -> String {
    if schema
        .get("x-kubernetes-int-or-string")
        .and_then(Value::as_bool)
        == Some(true)
    {
        return "integer,string".into();
    }
    schema
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// kube-openapi's type validator: the value's JSON type against the node's types, with
/// integral numbers accepted as integers and integers as numbers; a non-string value is
/// checked against a kept format first (`must be of type int32: "float64"`).
fn type_error(schema: &Value, value: &Value, path: &str) -> Option<String> {
    let types = allowed_types(schema);
    let format = formats::kept_format(schema);
    if types.is_empty() && format.is_none() {
        return None;
    }
    let actual = type_name(value);
    let allows = |t: &str| types.split(',').any(|a| a == t);
    let float_int = actual == "number"
        && allows("integer")
        && value.as_f64().is_some_and(constraints::json_integer);
    let int_float = actual == "integer" && allows("number");
    let invalid = |expected: &str, got: &str| {
        Some(format!(
            "{path}: Invalid value: \"{got}\": {path} in body must be of type {expected}: \"{got}\""
        ))
    };
    if let Some(format) = format
        && !matches!(value, Value::String(_) | Value::Array(_))
    {
        let data_format = match actual {
            "integer" => "int64",
            "number" => "float64",
            _ => "",
        };
        if !(allows(actual) || data_format == format || float_int || int_float) {
            return invalid(format, data_format);
        }
    }
    if format.is_some()
        && !(allows("number") || allows("integer"))
        && matches!(value, Value::String(_) | Value::Array(_))
    {
        return None;
    }
    if allows(actual) || float_int || int_float {
        return None;
    }
    invalid(&types, actual)
}

/// The name of a child value: kube-openapi joins names with `.`, except under the root.
fn child_path(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

fn validate(
    schema: &Value,
    value: &mut Value,
    path: &str,
    errs: &mut Vec<String>,
    unknown: &mut Vec<String>,
) {
    let at = constraints::At {
        name: path,
        field: path,
    };
    if value.is_null() {
        if schema.get("nullable").and_then(Value::as_bool) != Some(true) {
            let types = allowed_types(schema);
            if !types.is_empty() {
                errs.push(format!(
                    "{path}: Invalid value: \"null\": {path} in body must be of type {types}: \"null\""
                ));
            }
        }
        constraints::enumeration(schema, value, at, errs);
        return;
    }
    // kube-openapi runs every validator that applies to the value's kind, so a value of the
    // wrong type is still checked below as what it is.
    errs.extend(type_error(schema, value, path));
    constraints::scalar(schema, value, at, errs);
    if let Value::Array(items) = value {
        if let Some(element) = schema.get("items") {
            for (i, item) in items.iter_mut().enumerate() {
                validate(element, item, &format!("{path}[{i}]"), errs, unknown);
            }
        }
        constraints::items(schema, items.len(), at, errs);
    }
    constraints::enumeration(schema, value, at, errs);
    if let Value::Object(fields) = value {
        constraints::properties(schema, fields.len(), at, errs);
        prune_nulls(schema, fields, &[]);
        apply_defaults(schema, fields);
        let properties = schema.get("properties").and_then(Value::as_object);
        let additional = schema.get("additionalProperties");
        for (name, field) in fields.iter_mut() {
            let child = child_path(path, name);
            match (properties.and_then(|p| p.get(name)), additional) {
                (Some(sub), _) => validate(sub, field, &child, errs, unknown),
                (None, Some(sub)) if sub.is_object() => validate(sub, field, &child, errs, unknown),
                (None, Some(Value::Bool(true))) => {}
                _ if preserves(schema) => {}
                _ => unknown.push(child),
            }
        }
        if let Some(required) = schema.get("required").and_then(Value::as_array) {
            for field in required.iter().filter_map(Value::as_str) {
                if !fields.contains_key(field) {
                    errs.push(format!("{path}.{field}: Required value"));
                }
            }
        }
    }
}

/// The schema of an object's field: its property, else its `additionalProperties` schema.
fn field_schema<'a>(schema: &'a Value, name: &str) -> Option<&'a Value> {
    schema
        .get("properties")
        .and_then(|p| p.get(name))
        .or_else(|| schema.get("additionalProperties").filter(|a| a.is_object()))
}

/// Drops fields set to `null` whose schema is not `nullable` and has no default, as the
/// API server does before defaulting (such a null then defaults, see [`apply_defaults`]).
fn prune_nulls(schema: &Value, fields: &mut Map<String, Value>, except: &[&str]) {
    fields.retain(|name, value| {
        !value.is_null()
            || except.contains(&name.as_str())
            || field_schema(schema, name).is_none_or(|sub| {
                sub.get("nullable").and_then(Value::as_bool) == Some(true)
                    || sub.get("default").is_some()
            })
    });
}

/// Each distinct schema of a CRD's versions with the field path the API server reports it
/// at: when every version has the same schema (one version included) the internal form
/// holds it once, as `spec.validation.openAPIV3Schema`.
fn schemas_at(versions: &[Value]) -> Vec<(String, &Value)> {
    let schemas: Vec<Option<&Value>> = versions
        .iter()
        .map(|v| doc::at(v, &["schema", "openAPIV3Schema"]))
        .collect();
    if schemas.windows(2).all(|w| w[0] == w[1]) {
        return schemas
            .first()
            .copied()
            .flatten()
            .map(|s| ("spec.validation.openAPIV3Schema".to_string(), s))
            .into_iter()
            .collect();
    }
    schemas
        .iter()
        .enumerate()
        .filter_map(|(i, s)| s.map(|s| (format!("spec.versions[{i}].schema.openAPIV3Schema"), s)))
        .collect()
}

/// The API server's checks of a version's schema that go with value validation: no
/// `uniqueItems: true`, every `pattern` a Go regular expression, every `default` valid
/// against its own node (types, constraints, no unknown fields). `at` is the schema's
/// field path (`spec.validation.openAPIV3Schema`, see [`schemas_at`]).
fn schema_rules(schema: &Value, at: &str, errs: &mut Vec<String>) {
    walk_schema(schema, at, &mut |node, path| {
        if node.get("uniqueItems").and_then(Value::as_bool) == Some(true) {
            errs.push(format!("{path}.uniqueItems: Forbidden: uniqueItems cannot be set to true since the runtime complexity becomes quadratic"));
        }
    });
    walk_schema(schema, at, &mut |node, path| {
        if let Some(pattern) = node.get("pattern").and_then(Value::as_str)
            && let Err(why) = constraints::compiled(pattern).as_ref()
        {
            errs.push(format!(
                "{path}.pattern: Invalid value: {}: must be a valid regular expression, but isn't: {why}",
                constraints::go_quote(pattern)
            ));
        }
    });
    default_rules(schema, at, errs);
}

/// Calls `visit` on every node of a schema with its field path: properties, items,
/// additionalProperties and the nodes under `allOf`/`anyOf`/`oneOf`/`not`.
fn walk_schema(schema: &Value, path: &str, visit: &mut dyn FnMut(&Value, &str)) {
    visit(schema, path);
    if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
        for (name, sub) in properties {
            walk_schema(sub, &format!("{path}.properties[{name}]"), visit);
        }
    }
    for key in ["items", "additionalProperties", "not"] {
        if let Some(sub) = schema.get(key).filter(|s| s.is_object()) {
            walk_schema(sub, &format!("{path}.{key}"), visit);
        }
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        for (i, sub) in schema
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            walk_schema(sub, &format!("{path}.{key}[{i}]"), visit);
        }
    }
}

/// Upstream `ValidateDefaults`: each `default` (not under additionalProperties) validated
/// against its node; errors are reported at `….default`, joined to kube-openapi's names.
fn default_rules(schema: &Value, path: &str, errs: &mut Vec<String>) {
    if let Some(default) = schema.get("default") {
        let at = format!("{path}.default");
        let (mut found, mut unknown) = (Vec::new(), Vec::new());
        validate(schema, &mut default.clone(), "", &mut found, &mut unknown);
        if !unknown.is_empty() {
            errs.push(format!(
                "{at}: Invalid value: {}: must not have unknown fields",
                constraints::go_value(default)
            ));
        }
        for err in found {
            match err.strip_prefix(": ") {
                Some(_) => errs.push(format!("{at}{err}")),
                None => errs.push(format!("{at}.{err}")),
            }
        }
    }
    if let Some(items) = schema.get("items").filter(|s| s.is_object()) {
        default_rules(items, &format!("{path}.items"), errs);
    }
    if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
        for (name, sub) in properties {
            default_rules(sub, &format!("{path}.properties[{name}]"), errs);
        }
    }
}

/// Every object of the kind a CRD defines, to delete with it.
pub fn instances(state: &State, crd: &Value) -> Vec<(String, String)> {
    let Some(info) = info_of(crd) else {
        return Vec::new();
    };
    state
        .kind(info.key)
        .values()
        .filter(|o| {
            doc::str_at(&o.doc, &["apiVersion"])
                .rsplit_once('/')
                .is_some_and(|(g, _)| g == info.group)
        })
        .map(|o| {
            (
                doc::namespace(&o.doc).to_string(),
                doc::name(&o.doc).to_string(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn widget_crd() -> Value {
        json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced",
                "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
                "versions": [
                    {"name": "v1beta1", "served": true, "storage": false, "schema": {"openAPIV3Schema": {"type": "object"}}},
                    {"name": "v1", "served": true, "storage": true, "subresources": {"status": {}},
                     "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                        "spec": {"type": "object", "required": ["size"], "properties": {
                            "size": {"type": "integer"},
                            "color": {"type": "string", "enum": ["red", "blue"], "default": "red"},
                            "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}},
                        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}}}]}})
    }

    #[test]
    fn a_crd_defines_a_kind_with_its_served_versions() {
        let info = info_of(&widget_crd()).unwrap_or_else(|| panic!("info"));
        assert_eq!(
            (info.kind, info.group, info.plural, info.namespaced),
            ("Widget", "example.com", "widgets", true)
        );
        assert_eq!(info.versions, &["v1", "v1beta1"]);
        assert_eq!(info.short, &["wd"]);
        assert_eq!(info.subresources, &["status"]);
        assert!(defined_by(&[widget_crd()], "example.com/v1", "Widget"));
        assert!(!defined_by(&[widget_crd()], "example.com/v2", "Widget"));
    }

    #[test]
    fn crd_admission_establishes_or_refuses() {
        let mut crd = widget_crd();
        let mut errs = Vec::new();
        admit_crd(&mut crd, None, &mut errs);
        assert!(errs.is_empty(), "{errs:?}");
        let conditions = doc::at(&crd, &["status", "conditions"])
            .cloned()
            .unwrap_or_default();
        assert!(conditions.to_string().contains("\"Established\""));
        let mut bad = widget_crd();
        bad["metadata"]["name"] = json!("widget.example.com");
        let mut errs = Vec::new();
        admit_crd(&mut bad, None, &mut errs);
        assert_eq!(
            errs,
            [
                "metadata.name: Invalid value: \"widget.example.com\": must be spec.names.plural+\".\"+spec.group"
            ]
        );
    }

    #[test]
    fn scale_paths_are_checked_as_upstream_checks_them() {
        let with_scale = |scale: Value| {
            let mut crd = widget_crd();
            crd["spec"]["versions"][1]["subresources"]["scale"] = scale;
            let mut errs = Vec::new();
            admit_crd(&mut crd, None, &mut errs);
            errs
        };
        let at = "spec.versions[1].subresources.scale";
        assert!(
            with_scale(
                json!({"specReplicasPath": ".spec.size", "statusReplicasPath": ".status.n",
                "labelSelectorPath": ".spec.pods[0].selector"})
            )
            .is_empty()
        );
        assert_eq!(
            with_scale(
                json!({"statusReplicasPath": "status.n", "labelSelectorPath": ".metadata.x"})
            ),
            [
                format!("{at}.specReplicasPath: Required value"),
                format!(
                    "{at}.statusReplicasPath: Invalid value: \"status.n\": must be a simple json path starting with ."
                ),
                format!(
                    "{at}.labelSelectorPath: Invalid value: \".metadata.x\": should be a json path under either .spec or .status"
                ),
            ]
        );
        assert_eq!(
            with_scale(
                json!({"specReplicasPath": ".status.size", "statusReplicasPath": ".spec.n"})
            ),
            [
                format!(
                    "{at}.specReplicasPath: Invalid value: \".status.size\": should be a json path under .spec"
                ),
                format!(
                    "{at}.statusReplicasPath: Invalid value: \".spec.n\": should be a json path under .status"
                ),
            ]
        );
    }

    #[test]
    fn schemas_default_and_validate() {
        let crd = widget_crd();
        let schema = doc::at(&crd, &["spec", "versions"])
            .and_then(|v| v.get(1))
            .and_then(|v| doc::at(v, &["schema", "openAPIV3Schema", "properties", "spec"]))
            .cloned()
            .unwrap_or_default();
        let mut spec = json!({"size": 3, "extra": {"anything": [1]}});
        let (mut errs, mut unknown) = (Vec::new(), Vec::new());
        validate(&schema, &mut spec, "spec", &mut errs, &mut unknown);
        assert!(
            errs.is_empty() && unknown.is_empty(),
            "{errs:?} {unknown:?}"
        );
        assert_eq!(spec["color"], json!("red"));
        let mut spec = json!({"size": "big", "color": "green", "shape": "round"});
        validate(&schema, &mut spec, "spec", &mut errs, &mut unknown);
        assert_eq!(
            errs,
            [
                "spec.size: Invalid value: \"string\": spec.size in body must be of type integer: \"string\"",
                "spec.color: Unsupported value: \"green\": supported values: \"red\", \"blue\"",
            ]
        );
        assert_eq!(unknown, ["spec.shape"]);
        let mut spec = json!({});
        let (mut errs, mut unknown) = (Vec::new(), Vec::new());
        validate(&schema, &mut spec, "spec", &mut errs, &mut unknown);
        assert_eq!(errs, ["spec.size: Required value"]);
    }
}

//! The verbs on stored objects: get, list, create, update, patch, delete, and the `status`
//! and `scale` subresources, each one job on the engine thread so a read-modify-write is
//! atomic.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::apply;
use super::patch::{self, PatchType};
use super::request::{self, ListOptions, Sub};
use super::status::ApiError;
use super::table;
use crate::engine::clock::rfc3339;
use crate::engine::kinds::KindInfo;
use crate::engine::{Engine, Propagation, convert, doc, scale};

/// What a request asks of one kind.
#[derive(Debug, Clone)]
pub struct Scope {
    /// The kind.
    pub info: &'static KindInfo,
    /// The namespace (`None`: all, or cluster-scoped).
    pub namespace: Option<String>,
    /// The version the URL names: objects are converted to it on the way out.
    pub version: String,
}

impl Scope {
    fn ns(&self) -> &str {
        self.namespace.as_deref().unwrap_or_default()
    }

    /// `object` (stored) as this request's version shows it.
    pub fn view(&self, mut object: Value) -> Value {
        convert::convert_in_place(self.info, &mut object, &self.version);
        object
    }

    /// `apiVersion` of the URL's group and version.
    pub fn api_version(&self) -> String {
        if self.version.is_empty() {
            self.info.api_version()
        } else if self.info.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.info.group, self.version)
        }
    }
}

/// A successful answer: an HTTP code and a JSON body already serialized.
#[derive(Debug, Clone)]
pub struct Answer {
    /// 200 or 201.
    pub code: u16,
    /// The body.
    pub body: Vec<u8>,
    /// Warnings for the client (`Warning` headers).
    pub warnings: Vec<String>,
}

fn answer(code: u16, value: &impl serde::Serialize) -> Answer {
    Answer {
        code,
        body: serde_json::to_vec(value).unwrap_or_default(),
        warnings: Vec::new(),
    }
}

/// A write, with the warnings the engine's admission gave for it (a CRD validation rule
/// not evaluated, a failure ratcheted on an unchanged value) as the answer's warnings.
pub fn warned(
    engine: &mut Engine,
    write: impl FnOnce(&mut Engine) -> Result<Answer, ApiError>,
) -> Result<Answer, ApiError> {
    engine.take_warnings();
    let answer = write(engine);
    let warnings = engine.take_warnings();
    answer.map(|mut answer| {
        answer.warnings = warnings;
        answer
    })
}

fn current(engine: &mut Engine, scope: &Scope, name: &str) -> Result<Value, ApiError> {
    engine
        .get(scope.info.key, scope.ns(), name)?
        .map(|o| scope.view(o))
        .ok_or_else(|| ApiError::not_found(scope.info.plural, scope.info.group, name))
}

/// GET one object (or its subresource), as JSON or as a Table.
pub fn get(
    engine: &mut Engine,
    scope: &Scope,
    name: &str,
    sub: Option<Sub>,
    as_table: bool,
) -> Result<Answer, ApiError> {
    let object = current(engine, scope, name)?;
    if sub == Some(Sub::Scale) {
        let paths = scale_paths(engine, scope)?;
        return Ok(answer(200, &scale::scale_object(&paths, &object)));
    }
    if as_table {
        let rv = doc::str_at(&object, &["metadata", "resourceVersion"]).to_string();
        let t = table::table(
            scope.info,
            &[&object],
            engine.now_millis(),
            json!({"resourceVersion": rv}),
        );
        return Ok(answer(200, &t));
    }
    Ok(answer(200, &object))
}

/// LIST with selectors and paging, as JSON or as a Table; serialized here, on the engine
/// thread, straight from the store (no copy of the objects).
pub fn list(
    engine: &mut Engine,
    scope: &Scope,
    options: &ListOptions,
    as_table: bool,
) -> Result<Answer, ApiError> {
    let info = scope.info;
    let now = engine.now_millis();
    let state = engine.fresh_state()?;
    let all = state.kind(info.key);
    let mut picked: Vec<&Value> = Vec::new();
    let mut next: Option<String> = None;
    let start = match (&options.after, &scope.namespace) {
        (Some(after), _) => std::ops::Bound::Excluded(after.clone()),
        (None, Some(ns)) => std::ops::Bound::Included((ns.clone(), String::new())),
        (None, None) => std::ops::Bound::Unbounded,
    };
    for ((ns, name), stored) in all.range((start, std::ops::Bound::Unbounded)) {
        if let Some(want) = &scope.namespace
            && ns != want
        {
            if ns > want {
                break;
            }
            continue;
        }
        if !options.matches(&stored.doc) {
            continue;
        }
        if options.limit > 0 && picked.len() == options.limit {
            if let Some(last) = picked.last() {
                next = Some(request::encode_continue(
                    doc::namespace(last),
                    doc::name(last),
                ));
            }
            let _ = (ns, name);
            break;
        }
        picked.push(&stored.doc);
    }
    let mut meta = json!({"resourceVersion": state.rv.to_string()});
    if let Some(token) = next {
        meta["continue"] = json!(token);
    }
    if as_table {
        return Ok(answer(200, &table::table(info, &picked, now, meta)));
    }
    let api_version = scope.api_version();
    // Objects are stored in the preferred version; another served version is a converted copy.
    let converted: Vec<Value>;
    let items: Vec<&Value> = if api_version == info.api_version() {
        picked
    } else {
        converted = picked.into_iter().map(|o| scope.view(o.clone())).collect();
        converted.iter().collect()
    };
    let body = ListBody {
        kind: format!("{}List", info.kind),
        api_version,
        metadata: meta,
        items: &items,
    };
    Ok(answer(200, &body))
}

/// A list serialized straight from the stored objects (building it as a `Value` first would
/// copy every one of them).
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct ListBody<'a> {
    kind: String,
    api_version: String,
    metadata: Value,
    items: &'a [&'a Value],
}

/// Reads a request body as one JSON object.
pub fn body_object(body: &[u8]) -> Result<Value, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the object provided is unrecognized: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::bad_request(
            "the object provided is unrecognized (must be a JSON object)",
        ));
    }
    Ok(value)
}

/// Checks that the body's kind, namespace and name agree with the URL, filling them in
/// where the body leaves them out, as the API server does.
fn conform(scope: &Scope, name: Option<&str>, object: &mut Value) -> Result<(), ApiError> {
    let info = scope.info;
    let kind = doc::str_at(object, &["kind"]).to_string();
    if kind.is_empty() {
        doc::set(object, &["kind"], json!(info.kind));
        doc::set(object, &["apiVersion"], json!(scope.api_version()));
    } else if kind != info.kind {
        return Err(ApiError::bad_request(format!(
            "the kind of the provided object ({kind}) does not match the resource ({})",
            info.plural
        )));
    }
    if doc::str_at(object, &["apiVersion"]).is_empty() {
        doc::set(object, &["apiVersion"], json!(scope.api_version()));
    }
    if info.namespaced {
        let body_ns = doc::namespace(object).to_string();
        match (&scope.namespace, body_ns.as_str()) {
            (Some(ns), "") => doc::set(object, &["metadata", "namespace"], json!(ns)),
            (Some(ns), b) if b != ns => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            _ => {}
        }
    }
    if let Some(name) = name {
        let body_name = doc::name(object).to_string();
        if body_name.is_empty() {
            doc::set(object, &["metadata", "name"], json!(name));
        } else if body_name != name {
            return Err(ApiError::bad_request(
                "the name of the object does not match the name on the URL",
            ));
        }
    }
    Ok(())
}

/// Who writes and whether for real: the field manager recorded in `managedFields` and
/// `dryRun=All`.
#[derive(Debug, Clone)]
pub struct Write {
    /// The field manager (`fieldManager`, else the user agent's program).
    pub manager: String,
    /// `dryRun=All`: validate and answer, store nothing.
    pub dry_run: bool,
}

/// Records `manager`'s `Update` fields in `new` (the virtual now as their time), written
/// through `subresource` (empty: the object itself).
fn owned(
    engine: &Engine,
    old: Option<&Value>,
    new: &mut Value,
    write: &Write,
    subresource: &str,
) -> Result<(), ApiError> {
    let now = rfc3339(engine.now_millis());
    let status_is_field = crate::engine::kinds::resolve(
        doc::str_at(new, &["apiVersion"]),
        doc::str_at(new, &["kind"]),
    )
    .is_ok_and(crate::engine::kinds::status_is_field);
    apply::record_update(old, new, &write.manager, subresource, status_is_field, &now)
}

/// POST: creates an object.
pub fn create(
    engine: &mut Engine,
    scope: &Scope,
    mut object: Value,
    write: &Write,
) -> Result<Answer, ApiError> {
    conform(scope, None, &mut object)?;
    drop_nulls(&mut object);
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
    }
    owned(engine, None, &mut object, write, "")?;
    let dry_run = write.dry_run;
    let created = if dry_run {
        engine.dry_run_create(&object)?
    } else {
        engine.create(&object)?
    };
    Ok(answer(201, &scope.view(created)))
}

/// PUT: replaces an object (or its status, or its scale).
pub fn update(
    engine: &mut Engine,
    scope: &Scope,
    name: &str,
    sub: Option<Sub>,
    mut object: Value,
    write: &Write,
) -> Result<Answer, ApiError> {
    let existing = current(engine, scope, name)?;
    let dry_run = write.dry_run;
    match sub {
        Some(Sub::Scale) => {
            let replicas = doc::i64_at(&object, &["spec", "replicas"])
                .ok_or_else(|| ApiError::bad_request("Scale.spec.replicas: Required value"))?;
            let paths = scale_paths(engine, scope)?;
            let mut scaled = with_replicas(&paths, &existing, replicas)?;
            owned(engine, Some(&existing), &mut scaled, write, "scale")?;
            let stored = store(engine, &scaled, dry_run)?;
            Ok(answer(200, &scale::scale_object(&paths, &stored)))
        }
        Some(Sub::Status) => {
            conform(scope, Some(name), &mut object)?;
            check_version(scope, name, &existing, &object)?;
            let status = object.get("status").cloned().unwrap_or(json!({}));
            store_status(engine, scope, name, &existing, status, write)
        }
        None => {
            conform(scope, Some(name), &mut object)?;
            drop_nulls(&mut object);
            owned(engine, Some(&existing), &mut object, write, "")?;
            let stored = store(engine, &object, dry_run)?;
            Ok(answer(200, &scope.view(stored)))
        }
    }
}

fn check_version(
    scope: &Scope,
    name: &str,
    existing: &Value,
    object: &Value,
) -> Result<(), ApiError> {
    let wanted = doc::str_at(object, &["metadata", "resourceVersion"]);
    let found = doc::str_at(existing, &["metadata", "resourceVersion"]);
    if !wanted.is_empty() && wanted != found {
        let word = if scope.info.group.is_empty() {
            scope.info.plural.to_string()
        } else {
            format!("{}.{}", scope.info.plural, scope.info.group)
        };
        return Err(ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {word} \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
            ),
        ));
    }
    Ok(())
}

/// Drops `null` fields, as decoding into the API's typed objects does: kubectl sends
/// `creationTimestamp: null` inside templates, which must not make two templates differ.
pub fn drop_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(drop_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

fn store(engine: &mut Engine, object: &Value, dry_run: bool) -> Result<Value, ApiError> {
    let mut object = object.clone();
    drop_nulls(&mut object);
    let object = &object;
    Ok(if dry_run {
        engine.dry_run_replace(object)?
    } else {
        engine.replace(object)?
    })
}

/// A write through the `status` subresource: only `status` changes, and the manager's
/// `Update` entry says `subresource: status`, as the API server records it.
fn store_status(
    engine: &mut Engine,
    scope: &Scope,
    name: &str,
    existing: &Value,
    status: Value,
    write: &Write,
) -> Result<Answer, ApiError> {
    let mut written = existing.clone();
    doc::set(&mut written, &["status"], status);
    owned(engine, Some(existing), &mut written, write, "status")?;
    if write.dry_run {
        return Ok(answer(200, &written));
    }
    let stored = engine
        .replace_status(scope.info.key, scope.ns(), name, &written)?
        .ok_or_else(|| ApiError::not_found(scope.info.plural, scope.info.group, name))?;
    Ok(answer(200, &stored))
}

/// PATCH (JSON, merge or strategic) of an object, its status or its scale.
pub fn patch(
    engine: &mut Engine,
    scope: &Scope,
    name: &str,
    sub: Option<Sub>,
    kind: PatchType,
    body: &[u8],
    write: &Write,
) -> Result<Answer, ApiError> {
    let existing = current(engine, scope, name)?;
    let dry_run = write.dry_run;
    match sub {
        Some(Sub::Scale) => {
            let paths = scale_paths(engine, scope)?;
            let scale = scale::scale_object(&paths, &existing);
            let patched = patch::apply_patch(&scale, kind, body)?;
            let replicas = doc::i64_at(&patched, &["spec", "replicas"])
                .ok_or_else(|| ApiError::bad_request("Scale.spec.replicas: Required value"))?;
            let paths = scale_paths(engine, scope)?;
            let mut scaled = with_replicas(&paths, &existing, replicas)?;
            owned(engine, Some(&existing), &mut scaled, write, "scale")?;
            let stored = store(engine, &scaled, dry_run)?;
            Ok(answer(200, &scale::scale_object(&paths, &stored)))
        }
        Some(Sub::Status) => {
            let patched = patch::apply_patch(&existing, kind, body)?;
            let status = patched.get("status").cloned().unwrap_or(json!({}));
            store_status(engine, scope, name, &existing, status, write)
        }
        None => {
            let mut patched = patch::apply_patch(&existing, kind, body)?;
            if doc::name(&patched) != name || doc::namespace(&patched) != doc::namespace(&existing)
            {
                return Err(ApiError::bad_request(
                    "a patch may not change the object's name or namespace",
                ));
            }
            conform(scope, Some(name), &mut patched)?;
            drop_nulls(&mut patched);
            owned(engine, Some(&existing), &mut patched, write, "")?;
            let stored = store(engine, &patched, dry_run)?;
            Ok(answer(200, &scope.view(stored)))
        }
    }
}

/// Where the scope's kind keeps its scale (404 when it has none).
fn scale_paths(engine: &mut Engine, scope: &Scope) -> Result<scale::Paths, ApiError> {
    engine
        .scale_paths(scope.info)?
        .ok_or_else(ApiError::no_route)
}

/// `object` with `replicas` desired, through `paths`, checked as the API server does.
fn with_replicas(paths: &scale::Paths, object: &Value, replicas: i64) -> Result<Value, ApiError> {
    scale::validate_replicas(doc::name(object), replicas)
        .map_err(|message| ApiError::new(422, "Invalid", message))?;
    let mut scaled = paths.with_replicas(object, replicas);
    if let Some(meta) = scaled.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
    }
    Ok(scaled)
}

/// DELETE with `DeleteOptions` (propagationPolicy, dryRun); answers the object as it was,
/// or as it stays while finalizers hold it.
pub fn delete(
    engine: &mut Engine,
    scope: &Scope,
    name: &str,
    options: &Value,
    query: &HashMap<String, String>,
) -> Result<Answer, ApiError> {
    let existing = current(engine, scope, name)?;
    let (propagation, dry_run) = delete_options(options, query)?;
    if let Some(uid) = options
        .pointer("/preconditions/uid")
        .and_then(Value::as_str)
        && uid != doc::uid(&existing)
    {
        return Err(ApiError::new(
            409,
            "Conflict",
            format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                doc::uid(&existing)
            ),
        ));
    }
    if dry_run {
        return Ok(answer(200, &existing));
    }
    engine.delete(scope.info.key, scope.ns(), name, propagation)?;
    let after = engine.get(scope.info.key, scope.ns(), name)?;
    Ok(answer(200, after.as_ref().unwrap_or(&existing)))
}

/// DELETE on a collection (`deletecollection`): every object the selectors match, each as a
/// single DELETE would; answers the list of what was deleted. Nothing is deleted when the
/// options are invalid.
pub fn delete_collection(
    engine: &mut Engine,
    scope: &Scope,
    list_options: &ListOptions,
    options: &Value,
    query: &HashMap<String, String>,
) -> Result<Answer, ApiError> {
    let (propagation, dry_run) = delete_options(options, query)?;
    let state = engine.fresh_state()?;
    let doomed: Vec<Value> = state
        .kind(scope.info.key)
        .values()
        .map(|s| &s.doc)
        .filter(|d| {
            scope
                .namespace
                .as_deref()
                .is_none_or(|ns| doc::namespace(d) == ns)
                && list_options.matches(d)
        })
        .cloned()
        .collect();
    let rv = state.rv;
    if !dry_run {
        for object in &doomed {
            engine.delete(
                scope.info.key,
                doc::namespace(object),
                doc::name(object),
                propagation,
            )?;
        }
    }
    Ok(answer(
        200,
        &json!({
            "kind": format!("{}List", scope.info.kind),
            "apiVersion": scope.info.api_version(),
            "metadata": {"resourceVersion": rv.to_string()},
            "items": doomed,
        }),
    ))
}

/// `propagationPolicy` (query or body, `orphanDependents` for old clients) and `dryRun`.
fn delete_options(
    options: &Value,
    query: &HashMap<String, String>,
) -> Result<(Propagation, bool), ApiError> {
    let policy = query
        .get("propagationPolicy")
        .map(String::as_str)
        .or_else(|| options.get("propagationPolicy").and_then(Value::as_str));
    let orphan = options.get("orphanDependents").and_then(Value::as_bool) == Some(true);
    let propagation = match policy {
        Some("Foreground") => Propagation::Foreground,
        Some("Orphan") => Propagation::Orphan,
        Some("Background") | None if !orphan => Propagation::Background,
        None => Propagation::Orphan,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "DeleteOptions.propagationPolicy: Unsupported value: \"{other}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
            )));
        }
    };
    let dry_run = request::is_dry_run(query)?
        || options
            .get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|d| d.iter().any(|v| v == "All"));
    Ok((propagation, dry_run))
}

/// `core/v1` Events from the engine's event log, with the uid of the object each is about
/// (kubectl describe selects events by it).
pub fn events(
    engine: &mut Engine,
    namespace: Option<&str>,
    options: &ListOptions,
    as_table: bool,
) -> Result<Answer, ApiError> {
    let (items, rv) = event_objects(engine, namespace, options)?;
    if as_table {
        let rows: Vec<&Value> = items.iter().collect();
        let meta = json!({"resourceVersion": rv.to_string()});
        return Ok(answer(
            200,
            &table::events_table(&rows, engine.now_millis(), meta),
        ));
    }
    Ok(answer(
        200,
        &json!({
            "kind": "EventList",
            "apiVersion": "v1",
            "metadata": {"resourceVersion": rv.to_string()},
            "items": items,
        }),
    ))
}

/// The Events a list or watch selects, and the store's version.
pub fn event_objects(
    engine: &mut Engine,
    namespace: Option<&str>,
    options: &ListOptions,
) -> Result<(Vec<Value>, u64), ApiError> {
    let log = engine.events(namespace)?;
    let state = engine.fresh_state()?;
    let items: Vec<Value> = log
        .iter()
        .map(|e| {
            let kind = crate::engine::kinds::by_kind(&e.object_kind);
            let object = kind.and_then(|k| state.get(k.key, &e.namespace, &e.object_name));
            let uid = object.map(|s| doc::uid(&s.doc)).unwrap_or_default();
            json!({
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {
                    "name": format!("{}.{:016x}", e.object_name, e.id),
                    "namespace": if e.namespace.is_empty() { "default" } else { e.namespace.as_str() },
                    "resourceVersion": e.id.to_string(),
                    "creationTimestamp": rfc3339(e.first),
                },
                "involvedObject": {
                    "kind": e.object_kind,
                    "namespace": e.namespace,
                    "name": e.object_name,
                    "uid": uid,
                    "apiVersion": kind.map(|k| k.api_version()).unwrap_or_default(),
                },
                "reason": e.reason,
                "message": e.message,
                "source": {"component": e.source},
                "firstTimestamp": rfc3339(e.first),
                "lastTimestamp": rfc3339(e.last),
                "count": e.count,
                "type": e.kind,
                "reportingComponent": e.source,
                "reportingInstance": "",
            })
        })
        .filter(|e| options.matches(e))
        .collect();
    Ok((items, state.rv))
}

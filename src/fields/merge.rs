//! Server-side apply and update bookkeeping over [`FieldSet`]s.

use serde_json::{Map, Value};

use super::schema::{ListType, Node};
use super::set::{FieldSet, PathElement, canonical, display_path, element_matches, key_of};
use super::{Conflict, Entry, Error, Operation, managed_fields, set_managed_fields};

/// Metadata the API server owns: never part of a manager's fields.
const SERVER_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

/// The result of [`apply`].
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    /// The live object after the apply, `managedFields` updated.
    pub object: Value,
    /// Fields the manager set before, no longer declares, and nobody else owns: removed.
    pub removed: FieldSet,
    /// Fields taken over from other managers by a forced apply.
    pub forced: Vec<Conflict>,
}

/// The part of an object whose fields managers own (no type, identity or server fields;
/// no `status` unless `schema` makes it an ordinary field).
pub(crate) fn owned_part(object: &Value, schema: Node<'_>) -> Value {
    let mut out = object.clone();
    if let Value::Object(map) = &mut out {
        map.remove("apiVersion");
        map.remove("kind");
        if !schema.status_is_field() {
            map.remove("status");
        }
        if let Some(Value::Object(meta)) = map.get_mut("metadata") {
            for field in SERVER_METADATA {
                meta.remove(*field);
            }
            if meta.is_empty() {
                map.remove("metadata");
            }
        }
    }
    out
}

/// Server-side apply of `applied` (an applied configuration) by `manager` over `live`
/// (`None`: the object is created). Fields the manager set at its previous apply and no
/// longer declares are removed unless another manager owns them; fields other managers own
/// with a different value are [`Error::Conflicts`], unless `force` takes them over.
pub fn apply(
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    time: &str,
    schema: Node<'_>,
) -> Result<Applied, Error> {
    let mut entries = match live {
        Some(live) => managed_fields(live)?,
        None => Vec::new(),
    };
    let applied_part = owned_part(applied, schema);
    let new_set = FieldSet::of(&applied_part, schema);
    let empty = Value::Object(Map::new());
    let live_value = live.unwrap_or(&empty);

    // Conflicts: fields another manager owns that this apply would change.
    let mut conflicts = Vec::new();
    for entry in entries.iter().filter(|e| e.manager != manager) {
        for path in entry.fields.intersection(&new_set).paths() {
            if matches!(
                path.last(),
                Some(PathElement::Key(_) | PathElement::Value(_))
            ) {
                continue;
            }
            if value_at(live_value, &path) != value_at(&applied_part, &path) {
                conflicts.push((entry.manager.clone(), path));
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(Error::Conflicts(
            conflicts
                .into_iter()
                .map(|(manager, path)| Conflict {
                    manager,
                    path: display_path(&path),
                })
                .collect(),
        ));
    }
    for (owner, path) in &conflicts {
        for entry in entries.iter_mut().filter(|e| &e.manager == owner) {
            entry.fields.remove(path);
        }
    }

    let previous = entries
        .iter()
        .find(|e| e.manager == manager && e.operation == Operation::Apply)
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    let mut keep = new_set.clone();
    for entry in entries
        .iter()
        .filter(|e| !(e.manager == manager && e.operation == Operation::Apply))
    {
        keep = keep.union(&entry.fields);
    }
    let removed = previous.difference(&keep);

    let mut object = live.cloned().unwrap_or_else(|| empty.clone());
    remove_fields(&mut object, &removed, Some(&keep));
    merge_into(&mut object, &applied_part, schema);
    for key in ["apiVersion", "kind"] {
        if let (Some(value), Value::Object(map)) = (applied.get(key), &mut object) {
            map.insert(key.into(), value.clone());
        }
    }
    // Identity is nobody's field, so the merge above leaves it out; a created object still
    // needs it, and a live one keeps its own.
    for key in ["name", "namespace"] {
        if let (Some(value), Value::Object(root)) =
            (applied.pointer(&format!("/metadata/{key}")), &mut object)
            && let Value::Object(meta) = root
                .entry("metadata")
                .or_insert_with(|| Value::Object(Map::new()))
        {
            meta.insert(key.into(), value.clone());
        }
    }

    let mine = Entry {
        manager: manager.to_string(),
        operation: Operation::Apply,
        api_version: applied
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        time: time.to_string(),
        fields: new_set,
        subresource: String::new(),
    };
    match entries.iter_mut().find(|e| {
        e.manager == manager && e.operation == Operation::Apply && e.subresource.is_empty()
    }) {
        Some(slot) => *slot = mine,
        None => entries.push(mine),
    }
    set_managed_fields(&mut object, &entries);
    Ok(Applied {
        object,
        removed,
        forced: conflicts
            .into_iter()
            .map(|(manager, path)| Conflict {
                manager,
                path: display_path(&path),
            })
            .collect(),
    })
}

/// Records a write that is not an apply (create, replace, patch) by `manager`: the fields it
/// changed or added become its own (an `Update` entry) and leave every other manager's set;
/// fields it removed leave every set. `new` keeps the `managedFields` it carries, else those
/// of `old`. `subresource` names what was written through (`status`; empty: the object).
pub fn update(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    subresource: &str,
    time: &str,
    schema: Node<'_>,
) -> Result<(), Error> {
    let mut entries = if new.pointer("/metadata/managedFields").is_some() {
        managed_fields(new)?
    } else {
        match old {
            Some(old) => managed_fields(old)?,
            None => Vec::new(),
        }
    };
    let empty = Value::Object(Map::new());
    let part = |object: &Value| {
        if subresource == "status" {
            // The status subresource writes `status` only (the API server resets the rest).
            let mut only = Map::new();
            if let Some(status) = object.get("status") {
                only.insert("status".into(), status.clone());
            }
            Value::Object(only)
        } else {
            owned_part(object, schema)
        }
    };
    let old_part = part(old.unwrap_or(&empty));
    let new_part = part(new);
    let set_of = |part: &Value| {
        if subresource == "status" {
            FieldSet::of_status(part, schema)
        } else {
            FieldSet::of(part, schema)
        }
    };
    let old_set = set_of(&old_part);
    let new_set = set_of(&new_part);
    let mut changed = FieldSet::default();
    for path in new_set.paths() {
        if !old_set.contains(&path) || value_at(&old_part, &path) != value_at(&new_part, &path) {
            changed.insert(&path);
        }
    }
    let removed = old_set.difference(&new_set);
    for entry in entries.iter_mut() {
        entry.fields = entry.fields.difference(&changed).difference(&removed);
    }
    if !changed.is_empty() {
        match entries.iter_mut().find(|e| {
            e.manager == manager && e.operation == Operation::Update && e.subresource == subresource
        }) {
            Some(entry) => {
                entry.fields = entry.fields.union(&changed);
                entry.time = time.to_string();
            }
            None => entries.push(Entry {
                manager: manager.to_string(),
                operation: Operation::Update,
                api_version: new
                    .get("apiVersion")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                time: time.to_string(),
                fields: changed,
                subresource: subresource.to_string(),
            }),
        }
    }
    set_managed_fields(new, &entries);
    Ok(())
}

/// The value at a field path, if present.
fn value_at<'v>(value: &'v Value, path: &[PathElement]) -> Option<&'v Value> {
    let Some((first, rest)) = path.split_first() else {
        return Some(value);
    };
    let next = match (first, value) {
        (PathElement::Field(name), Value::Object(map)) => map.get(name),
        (PathElement::Key(_), Value::Array(items)) => {
            let key = first.key_fields()?;
            items.iter().find(|item| element_matches(item, &key))
        }
        (PathElement::Value(wanted), Value::Array(items)) => {
            items.iter().find(|item| canonical(item) == *wanted)
        }
        (PathElement::Index(index), Value::Array(items)) => items.get(*index),
        _ => None,
    }?;
    value_at(next, rest)
}

/// Removes the paths of `removed` from `value`; a path with something below it that `keep`
/// holds is only thinned, never removed whole.
fn remove_fields(value: &mut Value, removed: &FieldSet, keep: Option<&FieldSet>) {
    for (element, gone) in removed.children() {
        let kept = keep.and_then(|k| k.child(element));
        let whole = gone.is_member() && kept.is_none_or(FieldSet::is_empty);
        match (element, &mut *value) {
            (PathElement::Field(name), Value::Object(map)) => {
                if whole {
                    map.shift_remove(name);
                } else if let Some(child) = map.get_mut(name) {
                    remove_fields(child, gone, kept);
                }
            }
            (_, Value::Array(items)) => {
                let matches = |item: &Value| match element {
                    PathElement::Key(_) => element
                        .key_fields()
                        .is_some_and(|key| element_matches(item, &key)),
                    PathElement::Value(wanted) => canonical(item) == *wanted,
                    _ => false,
                };
                if let PathElement::Index(index) = element {
                    if whole && *index < items.len() {
                        items.remove(*index);
                    } else if let Some(item) = items.get_mut(*index) {
                        remove_fields(item, gone, kept);
                    }
                } else if whole {
                    items.retain(|item| !matches(item));
                } else {
                    for item in items.iter_mut().filter(|item| matches(item)) {
                        remove_fields(item, gone, kept);
                    }
                }
            }
            _ => {}
        }
    }
}

/// Merges an applied configuration into an object: maps field by field, associative lists
/// element by element (by key), sets by value, anything else replaced. A null removes.
fn merge_into(object: &mut Value, applied: &Value, schema: Node<'_>) {
    let (Value::Object(target), Value::Object(source)) = (&mut *object, applied) else {
        *object = applied.clone();
        return;
    };
    for (name, wanted) in source {
        if wanted.is_null() {
            target.shift_remove(name);
            continue;
        }
        match target.get_mut(name) {
            Some(current) => merge_value(current, wanted, schema.field(name)),
            None => {
                target.insert(name.clone(), wanted.clone());
            }
        }
    }
}

fn merge_value(current: &mut Value, wanted: &Value, schema: Node<'_>) {
    match (&mut *current, wanted) {
        (Value::Object(_), Value::Object(_)) => merge_into(current, wanted, schema),
        (Value::Array(items), Value::Array(wanted_items)) => match schema.list_type(wanted_items) {
            ListType::Map(keys) => {
                for wanted_item in wanted_items {
                    let Value::Object(fields) = wanted_item else {
                        continue;
                    };
                    let key = match serde_json::from_str(&key_of(fields, &keys)) {
                        Ok(Value::Object(key)) => key,
                        _ => Map::new(),
                    };
                    match items.iter_mut().find(|item| element_matches(item, &key)) {
                        Some(item) => merge_value(item, wanted_item, schema.elements()),
                        None => items.push(wanted_item.clone()),
                    }
                }
            }
            ListType::Set => {
                for wanted_item in wanted_items {
                    if !items.contains(wanted_item) {
                        items.push(wanted_item.clone());
                    }
                }
            }
            ListType::Atomic => *current = wanted.clone(),
        },
        _ => *current = wanted.clone(),
    }
}

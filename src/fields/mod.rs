//! Field ownership: server-side apply's `metadata.managedFields`, as a pure function.
//!
//! Kubernetes records, per field manager, which fields of an object it set (`fieldsV1`).
//! An apply by a manager then sets the fields of its applied configuration and removes only
//! the fields it set before and no longer declares — fields other managers (or nobody) set
//! survive. A field another manager owns with a different value is a conflict, unless the
//! apply is forced, which takes it over. This module is that logic and nothing else: no IO,
//! no clock (the caller passes the time to record), usable by the engine apply path, an API
//! server emulation (`application/apply-patch+yaml`) and a Kubernetes backend alike.
//!
//! The API:
//! - [`FieldSet`] — a set of field paths ([`PathElement`]s: `f:` fields, `k:` associative
//!   list elements, `v:` set elements, `i:` positions); [`FieldSet::of`] the fields an object
//!   sets, `union`/`difference`/`intersection`, [`FieldSet::to_fields_v1`] and
//!   [`FieldSet::from_fields_v1`] for the wire format;
//! - [`Entry`], [`managed_fields`], [`set_managed_fields`] — read and write `managedFields`;
//! - [`apply`] — server-side apply of an applied configuration over a live object (or none)
//!   for a manager, with `force`; returns the merged object (its `managedFields` updated)
//!   and the fields the apply removed, or [`Error::Conflicts`];
//! - [`update`] — record a non-apply write (`PUT`/`PATCH`, `operation: Update`): the fields a
//!   manager changed become its own and leave other managers' sets;
//! - [`schema_for`] — the list/map typing for an `apiVersion`/`kind` from the strategic-merge
//!   schema of `render::patch::openapi` (associative lists by merge keys, sets, atomic lists;
//!   unknown types: maps granular, lists atomic, as structured-merge-diff deduces).
//!
//! Associative list elements are identified by the key fields the applied configuration
//! gives; key fields it leaves out (a port's defaulted `protocol`) match any value.

mod merge;
mod schema;
mod set;

use serde_json::{Map, Value, json};

use crate::render::patch::openapi::OpenApi;

pub use merge::{Applied, apply, update};
pub use schema::Node;
pub use set::{FieldSet, PathElement, display_path};

/// Errors of field ownership.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Fields of the applied configuration are owned by other managers with other values.
    #[error("apply conflicts with other field managers: {}", describe(.0))]
    Conflicts(Vec<Conflict>),
    /// `managedFields` of the live object cannot be read.
    #[error("metadata.managedFields: {0}")]
    InvalidFieldsV1(String),
}

/// One conflicting field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The manager owning the field.
    pub manager: String,
    /// The field, as [`display_path`] spells it.
    pub path: String,
}

fn describe(conflicts: &[Conflict]) -> String {
    conflicts
        .iter()
        .map(|c| format!("conflict with {:?}: {}", c.manager, c.path))
        .collect::<Vec<_>>()
        .join("; ")
}

/// `Apply` (server-side apply) or `Update` (any other write).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Server-side apply.
    Apply,
    /// Create, update or patch.
    Update,
}

impl Operation {
    fn name(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

/// One `managedFields` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The field manager (`reconcile`, `kubectl`, `kube-controller-manager` …).
    pub manager: String,
    /// How the fields were written.
    pub operation: Operation,
    /// The apiVersion the fields are expressed in.
    pub api_version: String,
    /// When (RFC 3339).
    pub time: String,
    /// The fields owned.
    pub fields: FieldSet,
    /// The subresource written through (`status`, `scale`; empty: the object itself). The
    /// same manager has one entry per subresource.
    pub subresource: String,
}

impl Entry {
    fn to_json(&self) -> Value {
        let mut entry = json!({
            "manager": self.manager,
            "operation": self.operation.name(),
            "apiVersion": self.api_version,
            "time": self.time,
            "fieldsType": "FieldsV1",
            "fieldsV1": self.fields.to_fields_v1(),
        });
        if !self.subresource.is_empty() {
            entry["subresource"] = json!(self.subresource);
        }
        entry
    }
}

/// The `managedFields` entries of an object (none when absent).
pub fn managed_fields(object: &Value) -> Result<Vec<Entry>, Error> {
    let Some(list) = object.pointer("/metadata/managedFields") else {
        return Ok(Vec::new());
    };
    let Value::Array(items) = list else {
        return Err(Error::InvalidFieldsV1("not a list".into()));
    };
    let text = |item: &Value, key: &str| {
        item.get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    items
        .iter()
        .map(|item| {
            let operation = match item.get("operation").and_then(Value::as_str) {
                Some("Apply") => Operation::Apply,
                Some("Update") => Operation::Update,
                other => {
                    return Err(Error::InvalidFieldsV1(format!(
                        "operation {:?} is neither Apply nor Update",
                        other.unwrap_or_default()
                    )));
                }
            };
            let fields = match item.get("fieldsV1") {
                Some(v) => FieldSet::from_fields_v1(v)?,
                None => FieldSet::default(),
            };
            Ok(Entry {
                manager: text(item, "manager"),
                operation,
                api_version: text(item, "apiVersion"),
                time: text(item, "time"),
                fields,
                subresource: text(item, "subresource"),
            })
        })
        .collect()
}

/// Writes `managedFields` (entries with no field are left out, as the API server does).
pub fn set_managed_fields(object: &mut Value, entries: &[Entry]) {
    let list: Vec<Value> = entries
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(Entry::to_json)
        .collect();
    let Some(root) = object.as_object_mut() else {
        return;
    };
    let meta = root
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(meta) = meta {
        if list.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(list));
        }
    }
}

/// The typing of an object's fields: the builtin strategic-merge schema when it knows the
/// type, structured-merge-diff's deduced rules otherwise.
pub fn schema_for<'a>(api: &'a OpenApi, api_version: &str, kind: &str) -> Node<'a> {
    Node::of(api.for_type(api_version, kind))
}

#[cfg(test)]
mod tests;

//! How field ownership types lists and maps: the strategic-merge schema the renderer already
//! embeds (`x-kubernetes-patch-strategy`, merge keys and `x-kubernetes-list-map-keys`), with
//! structured-merge-diff's deduced rules where there is no schema (maps granular, lists atomic).

use serde_json::Value;

use crate::render::patch::openapi::Schema;

/// A schema position, possibly unknown (custom resources, fields the schema leaves out).
#[derive(Debug, Clone, Copy, Default)]
pub struct Node<'a> {
    schema: Option<Schema<'a>>,
    /// At the root: `status` is an ordinary field of the object (a custom resource whose CRD
    /// has no status subresource), owned and applied like `spec`.
    status_is_field: bool,
}

/// How a list merges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ListType {
    /// Replaced whole by its applier.
    Atomic,
    /// Elements identified by these key fields, owned one by one.
    Map(Vec<String>),
    /// Scalars merged by value.
    Set,
}

impl<'a> Node<'a> {
    /// An unknown position.
    pub fn unknown() -> Node<'a> {
        Node::default()
    }

    pub(crate) fn of(schema: Option<Schema<'a>>) -> Node<'a> {
        Node {
            schema,
            status_is_field: false,
        }
    }

    /// This root with `status` as an ordinary field (`true`: a custom resource whose CRD has
    /// no status subresource) or as the status subresource's, nobody's on the main resource.
    pub fn with_status_field(self, status_is_field: bool) -> Node<'a> {
        Node {
            status_is_field,
            ..self
        }
    }

    /// True when `status` is an ordinary field of this root.
    pub(crate) fn status_is_field(&self) -> bool {
        self.status_is_field
    }

    pub(crate) fn field(&self, name: &str) -> Node<'a> {
        Node::of(self.schema.and_then(|s| s.field(name)))
    }

    pub(crate) fn elements(&self) -> Node<'a> {
        Node::of(self.schema.and_then(|s| s.elements()))
    }

    /// The list's type; a keyed list whose elements carry none of the keys is atomic.
    pub(crate) fn list_type(&self, items: &[Value]) -> ListType {
        let Some(schema) = self.schema else {
            return ListType::Atomic;
        };
        if !schema.merges_lists() {
            return ListType::Atomic;
        }
        let keys = schema.merge_keys();
        if keys.is_empty() {
            if items.iter().all(|i| !i.is_object() && !i.is_array()) {
                return ListType::Set;
            }
            return ListType::Atomic;
        }
        let keyed = items.iter().all(|item| {
            item.as_object()
                .is_some_and(|fields| keys.iter().any(|k| fields.contains_key(k)))
        });
        if keyed {
            ListType::Map(keys)
        } else {
            ListType::Atomic
        }
    }
}

//! The inventory: the set of objects an application applied, stored in the target itself.
//!
//! It is an ordinary ConfigMap (`reconcile-inventory-<app>` in [`INVENTORY_NAMESPACE`]), so
//! it works on any [`Cluster`]; prune only ever considers its members.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::cluster::{self, Cluster};
use crate::diff::normalize::{MANAGED_BY_LABEL, MANAGED_BY_VALUE, OWNER_ANNOTATION};
use crate::model::{Gvk, ResId};

/// Namespace of the inventory objects (exists on every Kubernetes cluster).
pub const INVENTORY_NAMESPACE: &str = "default";

/// Errors reading the inventory.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The cluster failed.
    #[error("reading the inventory of application {app}: {source}")]
    Cluster {
        /// The application.
        app: String,
        /// The cause.
        source: Box<cluster::Error>,
    },
    /// The inventory object exists but its content cannot be read.
    #[error(
        "inventory {} of application {app} is corrupt: {message}",
        crate::diff::display_id(id)
    )]
    Corrupt {
        /// The application.
        app: String,
        /// The inventory object.
        id: Box<ResId>,
        /// What is wrong.
        message: String,
    },
}

/// One member of an inventory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    /// `apps/v1`.
    pub api_version: String,
    /// `Deployment`.
    pub kind: String,
    /// Namespace (empty for cluster-scoped objects).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl Member {
    /// The member of an object id.
    pub fn of(id: &ResId) -> Member {
        Member {
            api_version: id.gvk.api_version(),
            kind: id.gvk.kind.clone(),
            namespace: id.namespace.clone(),
            name: id.name.clone(),
        }
    }

    /// The member's object id.
    pub fn id(&self) -> ResId {
        ResId {
            gvk: Gvk::from_api_version(&self.api_version, &self.kind),
            name: self.name.clone(),
            namespace: self.namespace.clone(),
        }
    }
}

/// The applied set of one application.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inventory {
    /// The members, in apply order of the last apply.
    pub members: Vec<Member>,
    /// resourceVersion of the inventory object (`None`: there is none yet).
    pub resource_version: Option<String>,
}

/// The id of an application's inventory object.
pub fn inventory_id(app: &str) -> ResId {
    ResId {
        gvk: Gvk::from_api_version("v1", "ConfigMap"),
        name: format!("reconcile-inventory-{app}"),
        namespace: INVENTORY_NAMESPACE.to_string(),
    }
}

/// True when the id is some application's inventory object.
pub fn is_inventory(id: &ResId) -> bool {
    id.gvk.kind == "ConfigMap"
        && id.namespace == INVENTORY_NAMESPACE
        && id.name.starts_with("reconcile-inventory-")
}

/// Reads the application's inventory (empty when it has none yet).
pub fn read(cluster: &dyn Cluster, app: &str) -> Result<Inventory, Error> {
    let id = inventory_id(app);
    let live = cluster.get(&id).map_err(|e| Error::Cluster {
        app: app.to_string(),
        source: Box::new(e),
    })?;
    let Some(live) = live else {
        return Ok(Inventory::default());
    };
    let text = live
        .pointer("/data/objects")
        .and_then(Value::as_str)
        .unwrap_or("[]");
    let members: Vec<Member> = serde_json::from_str(text).map_err(|e| Error::Corrupt {
        app: app.to_string(),
        id: Box::new(id.clone()),
        message: e.to_string(),
    })?;
    let resource_version = live
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| Some(String::new()));
    Ok(Inventory {
        members,
        resource_version,
    })
}

/// The inventory object to apply for an application's members.
pub fn to_object(app: &str, members: &[Member], source_digest: &str, now: &str) -> Value {
    let id = inventory_id(app);
    let objects = serde_json::to_string(members).unwrap_or_else(|_| "[]".to_string());
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": id.name,
            "namespace": id.namespace,
            "labels": {MANAGED_BY_LABEL: MANAGED_BY_VALUE},
            "annotations": {OWNER_ANNOTATION: app},
        },
        "data": {
            "application": app,
            "sourceDigest": source_digest,
            "appliedAt": now,
            "objects": objects,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_round_trip_through_ids() {
        let id = ResId {
            gvk: Gvk::from_api_version("apps/v1", "Deployment"),
            name: "web".into(),
            namespace: "demo".into(),
        };
        assert_eq!(Member::of(&id).id(), id);
        let object = to_object(
            "demo",
            &[Member::of(&id)],
            "sha256:x",
            "2026-01-01T00:00:00Z",
        );
        let text = object
            .pointer("/data/objects")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let back: Vec<Member> = serde_json::from_str(text).unwrap_or_default();
        assert_eq!(back, vec![Member::of(&id)]);
        assert!(is_inventory(&inventory_id("demo")));
    }
}

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

/// An application's inventory as `inventory list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// The application.
    pub app: String,
    /// How many objects it lists.
    pub members: usize,
    /// When it was last written (cluster time).
    pub applied_at: String,
}

/// Every application's inventory in the target, by application name.
pub fn list(cluster: &dyn Cluster) -> Result<Vec<Listed>, Error> {
    let gvk = Gvk::from_api_version("v1", "ConfigMap");
    let objects = cluster
        .list(&gvk, Some(INVENTORY_NAMESPACE), None)
        .map_err(|e| Error::Cluster {
            app: "*".to_string(),
            source: Box::new(e),
        })?;
    let mut listed: Vec<Listed> = objects
        .iter()
        .filter(|o| is_inventory(&ResId::of(o)))
        .map(|o| {
            let data = |key: &str| {
                o.pointer(&format!("/data/{key}"))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            let members = serde_json::from_str::<Vec<Member>>(&data("objects"))
                .map_or(0, |m| m.len());
            Listed {
                app: data("application"),
                members,
                applied_at: data("appliedAt"),
            }
        })
        .collect();
    listed.sort_by(|a, b| a.app.cmp(&b.app));
    Ok(listed)
}

/// Why an inventory cannot be renamed.
#[derive(Debug, thiserror::Error)]
pub enum RenameError {
    /// Reading or writing failed.
    #[error(transparent)]
    Inventory(#[from] Error),
    /// The old application has no inventory.
    #[error("application {app:?} has no inventory in this target (`reconcile inventory list` shows those that do)")]
    Missing {
        /// The application.
        app: String,
    },
    /// The new application has an inventory of its own.
    #[error("application {app:?} already has an inventory of its own ({members} objects); refusing to merge two applications")]
    Taken {
        /// The application.
        app: String,
        /// How many objects it lists.
        members: usize,
    },
    /// A write failed.
    #[error("{}: {source}", crate::diff::display_id(id))]
    Write {
        /// The object.
        id: Box<ResId>,
        /// The cause.
        source: Box<cluster::Error>,
    },
}

/// Hands application `old`'s inventory and objects to application `new` (the app was renamed
/// or its directory moved): the new inventory is written first with every member, then each
/// member owned by `old` is marked as `new`'s, then the old inventory is deleted. Interrupted,
/// it can be run again. Returns how many objects changed hands.
pub fn rename(cluster: &mut dyn Cluster, old: &str, new: &str) -> Result<usize, RenameError> {
    let from = read(cluster, old)?;
    if from.resource_version.is_none() {
        return Err(RenameError::Missing {
            app: old.to_string(),
        });
    }
    let to = read(cluster, new)?;
    if to.resource_version.is_some() && !to.members.is_empty() && to.members != from.members {
        return Err(RenameError::Taken {
            app: new.to_string(),
            members: to.members.len(),
        });
    }
    let write_err = |id: &ResId| {
        let id = Box::new(id.clone());
        move |e| RenameError::Write {
            id,
            source: Box::new(e),
        }
    };
    let old_id = inventory_id(old);
    let digest = cluster
        .get(&old_id)
        .map_err(write_err(&old_id))?
        .and_then(|o| {
            o.pointer("/data/sourceDigest")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_default();
    // Intent first: the new inventory lists everything before any object changes hands.
    let object = to_object(new, &from.members, &digest, &cluster.now());
    cluster
        .apply(&object)
        .map_err(write_err(&inventory_id(new)))?;
    let mut moved = 0;
    for member in &from.members {
        let id = member.id();
        let Some(mut live) = cluster.get(&id).map_err(write_err(&id))? else {
            continue;
        };
        let owner = live
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(OWNER_ANNOTATION))
            .and_then(Value::as_str);
        if owner != Some(old) {
            continue;
        }
        if let Some(annotations) = live
            .pointer_mut("/metadata/annotations")
            .and_then(Value::as_object_mut)
        {
            annotations.insert(OWNER_ANNOTATION.to_string(), json!(new));
        }
        cluster.apply(&live).map_err(write_err(&id))?;
        moved += 1;
    }
    cluster.delete(&old_id).map_err(write_err(&old_id))?;
    Ok(moved)
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

//! PersistentVolumes, PersistentVolumeClaims and StorageClasses.

use serde_json::Value;

use super::{ConditionColumn, conditions_table, text_column};
use super::{
    Ctx, Text, annotations_multiline, bool_ptr, events, format_labels, labels_multiline,
    name_and_namespace, scalar, since,
};
use crate::engine::controllers::volume::DEFAULT_CLASS_ANNOTATION;
use crate::engine::doc;
use crate::tables::access_modes;

fn finalizers(o: &Value) -> String {
    let list: Vec<String> = doc::at(o, &["metadata", "finalizers"])
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|f| scalar(Some(f)))
        .collect();
    format!("[{}]", list.join(" "))
}

fn status_line(ctx: &Ctx<'_>, o: &Value, t: &mut Text) {
    if doc::is_deleting(o) {
        t.field(
            0,
            "Status",
            format!(
                "Terminating (lasts {})",
                since(ctx, o, &["metadata", "deletionTimestamp"])
            ),
        );
    } else {
        t.field(0, "Status", doc::str_at(o, &["status", "phase"]));
    }
}

/// `describePersistentVolume`.
pub(super) fn persistent_volume(ctx: &Ctx<'_>, o: &Value, t: &mut Text) {
    t.field(0, "Name", doc::name(o));
    labels_multiline(t, "Labels", doc::labels(o));
    annotations_multiline(t, "Annotations", doc::at(o, &["metadata", "annotations"]));
    t.field(0, "Finalizers", finalizers(o));
    t.field(
        0,
        "StorageClass",
        doc::str_at(o, &["spec", "storageClassName"]),
    );
    status_line(ctx, o, t);
    let claim = doc::at(o, &["spec", "claimRef"]).map_or(String::new(), |c| {
        format!(
            "{}/{}",
            doc::str_at(c, &["namespace"]),
            doc::str_at(c, &["name"])
        )
    });
    t.field(0, "Claim", claim);
    t.field(
        0,
        "Reclaim Policy",
        doc::str_at(o, &["spec", "persistentVolumeReclaimPolicy"]),
    );
    t.field(
        0,
        "Access Modes",
        access_modes(doc::at(o, &["spec", "accessModes"])),
    );
    if let Some(mode) = doc::at(o, &["spec", "volumeMode"]) {
        t.field(0, "VolumeMode", scalar(Some(mode)));
    }
    t.field(
        0,
        "Capacity",
        scalar(doc::at(o, &["spec", "capacity", "storage"])),
    );
    t.w(0, "Node Affinity:\t");
    match doc::at(
        o,
        &["spec", "nodeAffinity", "required", "nodeSelectorTerms"],
    )
    .and_then(Value::as_array)
    {
        None => t.w(0, "<none>\n"),
        Some(terms) => {
            t.w(0, "\n");
            t.w(1, "Required Terms:\t");
            if terms.is_empty() {
                t.w(0, "<none>\n");
            } else {
                t.w(0, "\n");
            }
            for term in terms {
                let reqs: Vec<String> = term
                    .get("matchExpressions")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .map(|r| {
                        let values: Vec<String> = r
                            .get("values")
                            .and_then(Value::as_array)
                            .into_iter()
                            .flatten()
                            .map(|v| scalar(Some(v)))
                            .collect();
                        format!(
                            "{} {} [{}]",
                            doc::str_at(r, &["key"]),
                            doc::str_at(r, &["operator"]),
                            values.join(" ")
                        )
                    })
                    .collect();
                t.w(2, "Term 0:\t");
                t.w(0, &format!("{}\n", reqs.join("\n")));
            }
        }
    }
    t.field(0, "Message", doc::str_at(o, &["status", "message"]));
    t.w(0, "Source:\n");
    let spec = doc::at(o, &["spec"]).unwrap_or(&Value::Null);
    if let Some(host) = spec.get("hostPath") {
        t.w(2, "Type:\tHostPath (bare host directory volume)\n");
        t.field(2, "Path", doc::str_at(host, &["path"]));
        t.field(
            2,
            "HostPathType",
            match doc::str_at(host, &["type"]) {
                "" => "<none>",
                ty => ty,
            },
        );
    } else if let Some(local) = spec.get("local") {
        t.w(
            2,
            "Type:\tLocalVolume (a persistent volume backed by local storage on a node)\n",
        );
        t.field(2, "Path", doc::str_at(local, &["path"]));
    } else if let Some(csi) = spec.get("csi") {
        t.w(
            2,
            "Type:\tCSI (a Container Storage Interface (CSI) volume source)\n",
        );
        t.field(2, "Driver", doc::str_at(csi, &["driver"]));
        t.field(2, "FSType", doc::str_at(csi, &["fsType"]));
        t.field(2, "VolumeHandle", doc::str_at(csi, &["volumeHandle"]));
        t.field(2, "ReadOnly", super::flag(csi, &["readOnly"]));
    } else if let Some(nfs) = spec.get("nfs") {
        t.w(
            2,
            "Type:\tNFS (an NFS mount that lasts the lifetime of a pod)\n",
        );
        t.field(2, "Server", doc::str_at(nfs, &["server"]));
        t.field(2, "Path", doc::str_at(nfs, &["path"]));
        t.field(2, "ReadOnly", super::flag(nfs, &["readOnly"]));
    } else {
        t.w(1, "<unknown>\n");
    }
    events(ctx, "PersistentVolume", o, t);
}

/// `describePersistentVolumeClaim`.
pub(super) fn persistent_volume_claim(ctx: &Ctx<'_>, o: &Value, t: &mut Text) {
    name_and_namespace(o, t);
    t.field(
        0,
        "StorageClass",
        doc::str_at(o, &["spec", "storageClassName"]),
    );
    status_line(ctx, o, t);
    let volume = doc::str_at(o, &["spec", "volumeName"]);
    t.field(0, "Volume", volume);
    labels_multiline(t, "Labels", doc::labels(o));
    annotations_multiline(t, "Annotations", doc::at(o, &["metadata", "annotations"]));
    t.field(0, "Finalizers", finalizers(o));
    let (capacity, modes) = if volume.is_empty() {
        (String::new(), String::new())
    } else {
        (
            scalar(doc::at(o, &["status", "capacity", "storage"])),
            access_modes(doc::at(o, &["status", "accessModes"])),
        )
    };
    t.field(0, "Capacity", capacity);
    t.field(0, "Access Modes", modes);
    if let Some(mode) = doc::at(o, &["spec", "volumeMode"]) {
        t.field(0, "VolumeMode", scalar(Some(mode)));
    }
    let name = doc::name(o);
    let mut users: Vec<&str> = ctx
        .state
        .in_namespace("Pod", doc::namespace(o))
        .map(|s| &s.doc)
        .filter(|p| {
            doc::at(p, &["spec", "volumes"])
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .any(|v| doc::str_at(v, &["persistentVolumeClaim", "claimName"]) == name)
        })
        .map(doc::name)
        .collect();
    users.sort();
    t.w(0, "Used By:\t");
    if users.is_empty() {
        t.w(0, "<none>\n");
    }
    for (i, pod) in users.iter().enumerate() {
        if i > 0 {
            t.w(0, "\t");
        }
        t.w(0, &format!("{pod}\n"));
    }
    conditions_table(
        o,
        &[
            text_column("Type", "type"),
            text_column("Status", "status"),
            // kubectl's claim table reuses the node table's dashes under LastProbeTime.
            ConditionColumn {
                header: "LastProbeTime",
                dashes: "-----------------",
                field: "lastProbeTime",
                time: true,
            },
            ConditionColumn {
                header: "LastTransitionTime",
                dashes: "------------------",
                field: "lastTransitionTime",
                time: true,
            },
            text_column("Reason", "reason"),
            text_column("Message", "message"),
        ],
        true,
        t,
    );
    events(ctx, "PersistentVolumeClaim", o, t);
}

/// `describeStorageClass`.
pub(super) fn storage_class(ctx: &Ctx<'_>, o: &Value, t: &mut Text) {
    t.field(0, "Name", doc::name(o));
    let default = doc::annotation(o, DEFAULT_CLASS_ANNOTATION) == Some("true")
        || doc::annotation(o, "storageclass.beta.kubernetes.io/is-default-class") == Some("true");
    t.field(0, "IsDefaultClass", if default { "Yes" } else { "No" });
    t.field(
        0,
        "Annotations",
        format_labels(doc::at(o, &["metadata", "annotations"])),
    );
    t.field(0, "Provisioner", doc::str_at(o, &["provisioner"]));
    t.field(0, "Parameters", format_labels(o.get("parameters")));
    t.field(
        0,
        "AllowVolumeExpansion",
        bool_ptr(o.get("allowVolumeExpansion")),
    );
    let options: Vec<String> = o
        .get("mountOptions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|v| scalar(Some(v)))
        .collect();
    if options.is_empty() {
        t.w(0, "MountOptions:\t<none>\n");
    } else {
        t.w(0, "MountOptions:\n");
        for option in options {
            t.w(1, &format!("{option}\n"));
        }
    }
    if let Some(policy) = o.get("reclaimPolicy") {
        t.field(0, "ReclaimPolicy", scalar(Some(policy)));
    }
    if let Some(mode) = o.get("volumeBindingMode") {
        t.field(0, "VolumeBindingMode", scalar(Some(mode)));
    }
    events(ctx, "StorageClass", o, t);
}

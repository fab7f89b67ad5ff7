//! The OpenAPI v3 documents kubectl reads: per group version, the PATCH operation of each
//! kind declares the `fieldValidation` parameter, so kubectl's default validation
//! (`--validate=strict`) leaves validation to the server; and `components.schemas` holds the
//! kinds' schemas with their `x-kubernetes-group-version-kind`, which is what `kubectl
//! explain` reads.
//!
//! Built-in kinds: the fields and types are the engine's v1.31 definitions
//! (`engine::schema`), the descriptions those of the Kubernetes types as `k8s-openapi`
//! (v1.33) describes them through `schemars`. Custom resources: their CRD's
//! `openAPIV3Schema` for the version, with `apiVersion`, `kind` and `metadata` added as the
//! API server adds them.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use serde_json::{Map, Value, json};

use crate::engine::served::Served;
use crate::engine::{doc, kinds, schema};

const REF_PREFIX: &str = "#/components/schemas/";

const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

/// The Kubernetes definitions with their descriptions (`schemars` schemas of `k8s-openapi`'s
/// types, by definition name), made once.
fn described() -> &'static Map<String, Value> {
    static DEFINITIONS: OnceLock<Map<String, Value>> = OnceLock::new();
    DEFINITIONS.get_or_init(|| {
        use k8s_openapi::api;
        let mut generator = schemars::SchemaGenerator::default();
        macro_rules! roots {
            ($($t:ty),* $(,)?) => { $( generator.subschema_for::<$t>(); )* };
        }
        roots!(
            api::admissionregistration::v1::MutatingWebhookConfiguration,
            api::admissionregistration::v1::ValidatingAdmissionPolicy,
            api::admissionregistration::v1::ValidatingAdmissionPolicyBinding,
            api::admissionregistration::v1::ValidatingWebhookConfiguration,
            k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
            k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService,
            api::apps::v1::ControllerRevision,
            api::apps::v1::DaemonSet,
            api::apps::v1::Deployment,
            api::apps::v1::ReplicaSet,
            api::apps::v1::StatefulSet,
            api::authentication::v1::SelfSubjectReview,
            api::authentication::v1::TokenReview,
            api::authorization::v1::LocalSubjectAccessReview,
            api::authorization::v1::SelfSubjectAccessReview,
            api::authorization::v1::SelfSubjectRulesReview,
            api::authorization::v1::SubjectAccessReview,
            api::autoscaling::v1::HorizontalPodAutoscaler,
            api::autoscaling::v2::HorizontalPodAutoscaler,
            api::batch::v1::CronJob,
            api::batch::v1::Job,
            api::certificates::v1::CertificateSigningRequest,
            api::coordination::v1::Lease,
            api::discovery::v1::EndpointSlice,
            api::events::v1::Event,
            api::flowcontrol::v1::FlowSchema,
            api::flowcontrol::v1::PriorityLevelConfiguration,
            api::networking::v1::Ingress,
            api::networking::v1::IngressClass,
            api::networking::v1::NetworkPolicy,
            api::node::v1::RuntimeClass,
            api::policy::v1::PodDisruptionBudget,
            api::rbac::v1::ClusterRole,
            api::rbac::v1::ClusterRoleBinding,
            api::rbac::v1::Role,
            api::rbac::v1::RoleBinding,
            api::scheduling::v1::PriorityClass,
            api::storage::v1::CSIDriver,
            api::storage::v1::CSINode,
            api::storage::v1::CSIStorageCapacity,
            api::storage::v1::StorageClass,
            api::storage::v1::VolumeAttachment,
            api::core::v1::Binding,
            api::core::v1::ComponentStatus,
            api::core::v1::ConfigMap,
            api::core::v1::Endpoints,
            api::core::v1::Event,
            api::core::v1::LimitRange,
            api::core::v1::Namespace,
            api::core::v1::Node,
            api::core::v1::PersistentVolume,
            api::core::v1::PersistentVolumeClaim,
            api::core::v1::Pod,
            api::core::v1::PodTemplate,
            api::core::v1::ReplicationController,
            api::core::v1::ResourceQuota,
            api::core::v1::Secret,
            api::core::v1::Service,
            api::core::v1::ServiceAccount,
        );
        generator.definitions().clone()
    })
}

/// The described definition `name`; a version `k8s-openapi` no longer has (the
/// `flowcontrol` v1beta3 kinds) borrows the descriptions of the same type in `v1`.
fn description_of(name: &str) -> Option<&'static Value> {
    let all = described();
    all.get(name).or_else(|| {
        let (prefix, rest) = name.rsplit_once('.')?;
        let (group, _version) = prefix.rsplit_once('.')?;
        all.get(&format!("{group}.v1.{rest}"))
    })
}

fn text_of(described: Option<&Value>) -> Option<&Value> {
    described?.get("description").filter(|d| d.is_string())
}

/// A compact schema of `engine::schema` as OpenAPI v3, described by `described` (the same
/// schema in [`described`]'s words, when known); references are collected in `refs`.
fn to_openapi(compact: &Value, refs: &mut BTreeSet<String>, described: Option<&Value>) -> Value {
    let mut out = Map::new();
    if let Some(text) = text_of(described) {
        out.insert("description".into(), text.clone());
    }
    if let Some(name) = compact.get("r").and_then(Value::as_str) {
        refs.insert(name.to_string());
        out.insert(
            "allOf".into(),
            json!([{"$ref": format!("{REF_PREFIX}{name}")}]),
        );
        return Value::Object(out);
    }
    match compact.get("t").and_then(Value::as_str) {
        Some("quantity") => {
            out.insert("type".into(), json!("string"));
        }
        Some("int-or-string") => {
            out.insert("type".into(), json!("string"));
            out.insert("format".into(), json!("int-or-string"));
        }
        Some(t) => {
            out.insert("type".into(), json!(t));
        }
        None => {}
    }
    if let Some(props) = compact.get("p").and_then(Value::as_object) {
        let converted: Map<String, Value> = props
            .iter()
            .map(|(k, v)| {
                let about = described.and_then(|d| d.get("properties")?.get(k));
                (k.clone(), to_openapi(v, refs, about))
            })
            .collect();
        out.insert("properties".into(), Value::Object(converted));
    }
    if let Some(items) = compact.get("i") {
        let about = described.and_then(|d| d.get("items"));
        out.insert("items".into(), to_openapi(items, refs, about));
    }
    if let Some(values) = compact.get("a") {
        let about = described.and_then(|d| d.get("additionalProperties"));
        out.insert(
            "additionalProperties".into(),
            to_openapi(values, refs, about),
        );
    }
    Value::Object(out)
}

/// The schema of custom resource `k` from its CRD (among `crds`), for `k.version`, with the
/// fields every object has; the ObjectMeta reference is added to `pending`.
fn custom_schema(k: &kinds::KindInfo, served: &Served, pending: &mut BTreeSet<String>) -> Value {
    let declared = served
        .custom_of(k)
        .map(|c| &c.crd)
        .and_then(|c| doc::at(c, &["spec", "versions"]))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|v| doc::str_at(v, &["name"]) == k.version)
        .and_then(|v| doc::at(v, &["schema", "openAPIV3Schema"]))
        .cloned();
    let mut schema = declared.unwrap_or_else(|| json!({"type": "object"}));
    let common = [
        (
            "apiVersion",
            "string",
            "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources",
        ),
        (
            "kind",
            "string",
            "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds",
        ),
    ];
    if let Some(root) = schema.as_object_mut() {
        let props = root
            .entry("properties")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(props) = props.as_object_mut() {
            for (field, kind, text) in common {
                props
                    .entry(field)
                    .or_insert_with(|| json!({"type": kind, "description": text}));
            }
            props.insert(
                "metadata".into(),
                json!({"description": "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
                       "allOf": [{"$ref": format!("{REF_PREFIX}{OBJECT_META}")}]}),
            );
            pending.insert(OBJECT_META.to_string());
        }
        root.insert(
            "x-kubernetes-group-version-kind".into(),
            json!([{"group": k.group, "version": k.version, "kind": k.kind}]),
        );
    }
    schema
}

/// The API server's definition name of a custom resource: its group reversed, the version
/// and the kind (`com.example.stable.v1.CronTab`).
fn custom_name(k: &kinds::KindInfo) -> String {
    let reversed: Vec<&str> = k.group.split('.').rev().collect();
    format!("{}.{}.{}", reversed.join("."), k.version, k.kind)
}

/// `components.schemas` for the kinds in `members`: their definitions and every definition
/// they reference, the kinds' own marked with their group, version and kind. Custom
/// resources' schemas come from their CRD among `crds`.
fn schemas(members: &[&kinds::KindInfo], served: &Served) -> Map<String, Value> {
    let Some((definitions, roots)) = schema::definitions() else {
        return Map::new();
    };
    let mut out = Map::new();
    let mut pending: BTreeSet<String> = BTreeSet::new();
    let mut marks: Vec<(String, Value)> = Vec::new();
    for k in members.iter().filter(|k| !kinds::is_builtin(k)) {
        out.insert(custom_name(k), custom_schema(k, served, &mut pending));
    }
    for k in members {
        let key = if k.group.is_empty() {
            format!("{}/{}", k.version, k.kind)
        } else {
            format!("{}/{}/{}", k.group, k.version, k.kind)
        };
        if let Some(root) = roots.get(&key).and_then(Value::as_str) {
            pending.insert(root.to_string());
            marks.push((
                root.to_string(),
                json!([{"group": k.group, "version": k.version, "kind": k.kind}]),
            ));
        }
    }
    while let Some(name) = pending.pop_first() {
        if out.contains_key(&name) {
            continue;
        }
        let Some(compact) = definitions.get(&name) else {
            continue;
        };
        let mut refs = BTreeSet::new();
        let converted = to_openapi(compact, &mut refs, description_of(&name));
        out.insert(name, converted);
        pending.extend(refs.into_iter().filter(|r| !out.contains_key(r)));
    }
    for (name, gvk) in marks {
        if let Some(Value::Object(s)) = out.get_mut(&name) {
            s.insert("x-kubernetes-group-version-kind".into(), gvk);
        }
    }
    out
}

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// The media type of a protobuf OpenAPI v2 document, as the API server labels it (kubectl
/// asks for `…spec.v2@v1.0+protobuf`, which Go's media type parser refuses in an answer).
pub const V2_PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// `/openapi/v2`: a document with no definitions, as protobuf (`gnostic`'s `Document`:
/// `swagger`, and `info` with `title` and `version`) or JSON. Clients read the v3 documents;
/// kubectl asks v2 only to validate on the client an object whose group version the v3
/// documents do not have (a custom resource without its CRD), and with no definition it
/// leaves that to the server, which then refuses it with its own words.
pub fn v2_document(protobuf: bool) -> Vec<u8> {
    const TITLE: &str = "Kubernetes";
    const VERSION: &str = "v1.32.0-reconcile";
    if !protobuf {
        return json!({"swagger": "2.0", "info": {"title": TITLE, "version": VERSION}, "paths": {}})
            .to_string()
            .into_bytes();
    }
    let field = |number: u8, bytes: &[u8]| -> Vec<u8> {
        // Length-delimited fields shorter than 128 bytes: the length is one byte.
        let mut out = vec![(number << 3) | 2, bytes.len() as u8];
        out.extend_from_slice(bytes);
        out
    };
    let info = [field(1, TITLE.as_bytes()), field(2, VERSION.as_bytes())].concat();
    [field(1, b"2.0"), field(2, &info)].concat()
}

/// `/openapi/v3`: where each group version's document is. The `hash` changes whenever the
/// CRDs served change: kubectl caches a document by it.
pub fn root(served: &Served) -> Value {
    let mut paths = Map::new();
    for k in served.kinds() {
        let p = gv_path(k.group, k.version);
        paths.insert(
            p.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={:016X}", served.generation())}),
        );
    }
    json!({"paths": paths})
}

/// `/openapi/v3/api/v1`, `/openapi/v3/apis/{group}/{version}` of what is `served` now.
pub fn group_version(served: &Served, gv: &str) -> Option<Value> {
    let members: Vec<&kinds::KindInfo> = served
        .kinds()
        .iter()
        .copied()
        .filter(|k| gv_path(k.group, k.version) == gv)
        .collect();
    if members.is_empty() {
        return None;
    }
    let components = schemas(&members, served);
    let mut paths = Map::new();
    for k in members {
        let collection = if k.namespaced {
            format!("/{gv}/namespaces/{{namespace}}/{}", k.plural)
        } else {
            format!("/{gv}/{}", k.plural)
        };
        let gvk = json!({"group": k.group, "version": k.version, "kind": k.kind});
        let params = json!([
            {"name": "dryRun", "in": "query", "schema": {"type": "string"}},
            {"name": "fieldManager", "in": "query", "schema": {"type": "string"}},
            {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}},
            {"name": "force", "in": "query", "schema": {"type": "boolean"}},
        ]);
        paths.insert(
            format!("{collection}/{{name}}"),
            json!({
                "get": {"x-kubernetes-action": "get", "x-kubernetes-group-version-kind": gvk, "responses": {}},
                "put": {"x-kubernetes-action": "put", "x-kubernetes-group-version-kind": gvk, "parameters": params, "responses": {}},
                "patch": {"x-kubernetes-action": "patch", "x-kubernetes-group-version-kind": gvk, "parameters": params, "responses": {}},
                "delete": {"x-kubernetes-action": "delete", "x-kubernetes-group-version-kind": gvk, "responses": {}},
            }),
        );
        paths.insert(
            collection,
            json!({
                "get": {"x-kubernetes-action": "list", "x-kubernetes-group-version-kind": gvk, "responses": {}},
                "post": {"x-kubernetes-action": "post", "x-kubernetes-group-version-kind": gvk, "parameters": params, "responses": {}},
            }),
        );
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0-reconcile"},
        "paths": paths,
        "components": {"schemas": components},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_patch_declares_field_validation() {
        let served = Served::builtin();
        for k in served.kinds() {
            let gv = gv_path(k.group, k.version);
            assert!(root(&served)["paths"].get(&gv).is_some());
            let doc = group_version(&served, &gv).expect("document");
            let found = doc["paths"]
                .as_object()
                .into_iter()
                .flatten()
                .any(|(_, ops)| {
                    ops["patch"]["x-kubernetes-group-version-kind"]["kind"] == k.kind
                        && ops["patch"]["parameters"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .any(|p| p["name"] == "fieldValidation")
                });
            assert!(found, "{}", k.kind);
        }
        assert!(group_version(&served, "apis/nope/v1").is_none());
    }

    #[test]
    fn the_v2_document_is_an_empty_swagger_document() {
        let bytes = v2_document(true);
        assert_eq!(&bytes[..5], b"\x0a\x032.0");
        assert_eq!(bytes[5], 0x12);
        assert_eq!(usize::from(bytes[6]), bytes.len() - 7);
        let text: Value = serde_json::from_slice(&v2_document(false)).expect("json");
        assert_eq!(text["swagger"], "2.0");
    }

    #[test]
    fn kinds_have_schemas_whose_references_resolve() {
        let doc = group_version(&Served::builtin(), "apis/apps/v1").expect("apps/v1");
        let schemas = doc["components"]["schemas"].as_object().expect("schemas");
        let deployment = &schemas["io.k8s.api.apps.v1.Deployment"];
        assert_eq!(
            deployment["x-kubernetes-group-version-kind"],
            json!([{"group": "apps", "version": "v1", "kind": "Deployment"}])
        );
        assert_eq!(
            deployment["properties"]["spec"]["allOf"][0]["$ref"],
            "#/components/schemas/io.k8s.api.apps.v1.DeploymentSpec"
        );
        let text = doc.to_string();
        for (at, _) in text.match_indices(REF_PREFIX) {
            let name: String = text[at + REF_PREFIX.len()..]
                .chars()
                .take_while(|c| *c != '"')
                .collect();
            assert!(schemas.contains_key(&name), "dangling reference {name}");
        }
        let core = group_version(&Served::builtin(), "api/v1").expect("v1");
        assert!(core["components"]["schemas"]["io.k8s.api.core.v1.Pod"].is_object());
    }

    #[test]
    fn schemas_carry_the_kubernetes_descriptions() {
        let doc = group_version(&Served::builtin(), "apis/apps/v1").expect("apps/v1");
        let schemas = &doc["components"]["schemas"];
        let deployment = &schemas["io.k8s.api.apps.v1.Deployment"];
        assert_eq!(
            deployment["description"],
            "Deployment enables declarative updates for Pods and ReplicaSets."
        );
        assert_eq!(
            deployment["properties"]["spec"]["description"],
            "Specification of the desired behavior of the Deployment."
        );
        let replicas = &schemas["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]["replicas"];
        assert!(
            replicas["description"]
                .as_str()
                .is_some_and(|d| d.starts_with("Number of desired pods")),
            "{replicas}"
        );
        // A version k8s-openapi dropped borrows v1's words.
        assert!(text_of(description_of("io.k8s.api.flowcontrol.v1beta3.FlowSchema")).is_some());
        assert!(description_of("io.k8s.api.nope.v1.Nothing").is_none());
    }

    #[test]
    fn custom_resources_have_their_crds_schema() {
        let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "crontabs.openapi.example.com"},
            "spec": {"group": "openapi.example.com", "scope": "Namespaced",
                "names": {"plural": "crontabs", "singular": "crontab", "kind": "CronTab"},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                        "spec": {"type": "object", "description": "What the tab runs.",
                            "properties": {"cronSpec": {"type": "string", "description": "When."}}}}}}}]}});
        let mut crd = crd;
        crd["status"] = json!({"conditions": [{"type": "Established", "status": "True"}]});
        let mut state = crate::engine::store::State::empty(1);
        let kind = kinds::by_kind(crate::engine::crd::KIND).expect("CRD kind");
        state.create(kind, crd, None);
        let served = Served::of(&state);
        let before = root(&Served::builtin())["paths"]["apis/apps/v1"].clone();
        assert_ne!(root(&served)["paths"]["apis/apps/v1"], before);
        assert!(root(&served)["paths"]["apis/openapi.example.com/v1"].is_object());
        let doc = group_version(&served, "apis/openapi.example.com/v1").expect("document");
        let schemas = &doc["components"]["schemas"];
        let tab = &schemas["com.example.openapi.v1.CronTab"];
        assert_eq!(
            tab["x-kubernetes-group-version-kind"],
            json!([{"group": "openapi.example.com", "version": "v1", "kind": "CronTab"}])
        );
        assert_eq!(
            tab["properties"]["spec"]["properties"]["cronSpec"]["description"],
            "When."
        );
        assert_eq!(
            tab["properties"]["metadata"]["allOf"][0]["$ref"],
            format!("{REF_PREFIX}{OBJECT_META}")
        );
        assert!(schemas[OBJECT_META]["properties"]["name"]["description"].is_string());
    }
}

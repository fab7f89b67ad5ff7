use serde_json::{Value, json};

use super::*;

fn deployment_schema(api: &OpenApi) -> Node<'_> {
    schema_for(api, "apps/v1", "Deployment")
}

fn deployment(replicas: i64, image: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": "web", "namespace": "demo", "labels": {"app": "web"}},
           "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}},
                                 "spec": {"containers": [{"name": "web", "image": image,
                                     "ports": [{"containerPort": 80}]}]}}}})
}

#[test]
fn fields_v1_round_trips_with_kubernetes_spelling() {
    let api = OpenApi::builtin();
    let set = FieldSet::of(&deployment(2, "web:1"), deployment_schema(&api));
    let encoded = set.to_fields_v1();
    let containers = &encoded["f:spec"]["f:template"]["f:spec"]["f:containers"];
    let web = &containers["k:{\"name\":\"web\"}"];
    assert_eq!(web["."], json!({}));
    assert_eq!(web["f:image"], json!({}));
    assert_eq!(web["f:ports"]["k:{\"containerPort\":80}"]["."], json!({}));
    assert_eq!(encoded["f:spec"]["f:replicas"], json!({}));
    assert!(encoded.get("f:apiVersion").is_none());
    assert!(encoded["f:metadata"].get("f:name").is_none());
    assert_eq!(FieldSet::from_fields_v1(&encoded).unwrap(), set);
}

#[test]
fn apply_keeps_foreign_fields_and_removes_only_its_own_dropped_ones() {
    let api = OpenApi::builtin();
    let schema = deployment_schema(&api);
    let mut first = deployment(1, "web:1");
    first["metadata"]["annotations"] = json!({"team": "a"});
    let created = apply(None, &first, "reconcile", false, "t1", schema).unwrap();
    // Someone else adds a label, an annotation and an env var.
    let mut live = created.object.clone();
    live["metadata"]["labels"]["extra"] = json!("x");
    live["metadata"]["annotations"]["note"] = json!("keep me");
    live["spec"]["template"]["spec"]["containers"][0]["env"] = json!([{"name": "A", "value": "1"}]);
    // Next apply: replicas changes, the team annotation is no longer declared.
    let second = deployment(2, "web:1");
    let result = apply(Some(&live), &second, "reconcile", false, "t2", schema).unwrap();
    let object = &result.object;
    assert_eq!(object["spec"]["replicas"], json!(2));
    assert_eq!(object["metadata"]["labels"]["extra"], json!("x"));
    assert_eq!(object["metadata"]["annotations"]["note"], json!("keep me"));
    assert!(object["metadata"]["annotations"].get("team").is_none());
    assert_eq!(
        object["spec"]["template"]["spec"]["containers"][0]["env"],
        json!([{"name": "A", "value": "1"}])
    );
    assert_eq!(result.removed.to_string(), ".metadata.annotations.team");
    let entries = managed_fields(object).unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].manager, "reconcile");
    assert_eq!(entries[0].operation, Operation::Apply);
    assert_eq!(entries[0].time, "t2");
}

#[test]
fn removed_list_elements_go_but_foreign_elements_stay() {
    let api = OpenApi::builtin();
    let schema = deployment_schema(&api);
    let mut two = deployment(1, "web:1");
    two["spec"]["template"]["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "side", "image": "side:1"}));
    let live = apply(None, &two, "reconcile", false, "t1", schema)
        .unwrap()
        .object;
    let mut live = live;
    live["spec"]["template"]["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "injected", "image": "mesh:1"}));
    let result = apply(
        Some(&live),
        &deployment(1, "web:1"),
        "reconcile",
        false,
        "t2",
        schema,
    )
    .unwrap();
    let names: Vec<&str> = result.object["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["web", "injected"]);
}

#[test]
fn other_managers_conflict_unless_forced_and_shared_fields_survive() {
    let api = OpenApi::builtin();
    let schema = deployment_schema(&api);
    let live = apply(
        None,
        &deployment(1, "web:1"),
        "reconcile",
        false,
        "t1",
        schema,
    )
    .unwrap()
    .object;
    // kubectl applies the same replicas (shared ownership) and another image.
    let mut theirs = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "demo"},
        "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "web", "image": "web:9"}]}}}});
    let error = apply(Some(&live), &theirs, "kubectl", false, "t2", schema).unwrap_err();
    assert_eq!(
        error.to_string(),
        "apply conflicts with other field managers: conflict with \"reconcile\": .spec.template.spec.containers[name=\"web\"].image"
    );
    let forced = apply(Some(&live), &theirs, "kubectl", true, "t2", schema).unwrap();
    assert_eq!(forced.forced.len(), 1);
    let entries = managed_fields(&forced.object).unwrap();
    let mine = entries.iter().find(|e| e.manager == "reconcile").unwrap();
    assert!(!mine.fields.to_string().contains("image"));
    // reconcile stops declaring replicas: kubectl still owns it, so it stays.
    let mut without_replicas = deployment(1, "web:9");
    without_replicas["spec"]
        .as_object_mut()
        .unwrap()
        .remove("replicas");
    let after = apply(
        Some(&forced.object),
        &without_replicas,
        "reconcile",
        false,
        "t3",
        schema,
    )
    .unwrap();
    assert_eq!(after.object["spec"]["replicas"], json!(1));
    assert!(after.removed.is_empty());
    theirs["spec"]["replicas"] = json!(1);
}

#[test]
fn update_moves_changed_fields_to_the_writer() {
    let api = OpenApi::builtin();
    let schema = deployment_schema(&api);
    let live = apply(
        None,
        &deployment(1, "web:1"),
        "reconcile",
        false,
        "t1",
        schema,
    )
    .unwrap()
    .object;
    let mut edited = live.clone();
    edited["spec"]["replicas"] = json!(5);
    edited["metadata"]["labels"]["extra"] = json!("y");
    update(Some(&live), &mut edited, "kubectl-edit", "", "t2", schema).unwrap();
    let entries = managed_fields(&edited).unwrap();
    let theirs = entries
        .iter()
        .find(|e| e.manager == "kubectl-edit")
        .unwrap();
    assert_eq!(
        theirs.fields.to_string(),
        ".metadata.labels.extra, .spec.replicas"
    );
    let mine = entries.iter().find(|e| e.manager == "reconcile").unwrap();
    assert!(!mine.fields.to_string().contains("replicas"));
    // The next apply conflicts on replicas only.
    let error = apply(
        Some(&edited),
        &deployment(1, "web:1"),
        "reconcile",
        false,
        "t3",
        schema,
    )
    .unwrap_err();
    assert!(error.to_string().ends_with(".spec.replicas"), "{error}");
}

#[test]
fn unknown_types_have_granular_maps_and_atomic_lists() {
    let object = json!({"apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w"}, "spec": {"sizes": [1, 2], "opts": {"a": 1}}});
    let set = FieldSet::of(&object, Node::unknown());
    assert_eq!(set.to_string(), ".spec.opts.a, .spec.sizes");
    let live = apply(None, &object, "reconcile", false, "t", Node::unknown())
        .unwrap()
        .object;
    let next = json!({"apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w"}, "spec": {"sizes": [3]}});
    let result = apply(Some(&live), &next, "reconcile", false, "t", Node::unknown()).unwrap();
    assert_eq!(result.object["spec"], json!({"sizes": [3], "opts": {}}));
}

#[test]
fn service_ports_match_with_a_defaulted_protocol() {
    let api = OpenApi::builtin();
    let schema = schema_for(&api, "v1", "Service");
    let service = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
        "spec": {"ports": [{"port": 80, "targetPort": 8080}]}});
    let mut live = apply(None, &service, "reconcile", false, "t", schema)
        .unwrap()
        .object;
    live["spec"]["ports"][0]["protocol"] = json!("TCP");
    let mut next = service.clone();
    next["spec"]["ports"][0]["targetPort"] = json!(9090);
    let result = apply(Some(&live), &next, "reconcile", false, "t", schema).unwrap();
    assert_eq!(
        result.object["spec"]["ports"],
        json!([{"port": 80, "targetPort": 9090, "protocol": "TCP"}])
    );
}

#[test]
fn malformed_managed_fields_are_an_error() {
    let object = json!({"metadata": {"managedFields": [{"manager": "x", "operation": "Apply",
        "fieldsV1": {"q:nope": {}}}]}});
    assert!(matches!(
        managed_fields(&object),
        Err(Error::InvalidFieldsV1(_))
    ));
}

#[test]
fn a_created_object_keeps_its_name_and_namespace() {
    let api = OpenApi::builtin();
    let schema = schema_for(&api, "v1", "ConfigMap");
    // Nothing but identity in metadata: the owned part has no metadata at all.
    let bare = json!({"apiVersion": "v1", "kind": "ConfigMap",
                      "metadata": {"name": "settings", "namespace": "demo"},
                      "data": {"a": "1"}});
    let created = apply(None, &bare, "kubectl", false, "t1", schema).unwrap();
    assert_eq!(created.object["metadata"]["name"], json!("settings"));
    assert_eq!(created.object["metadata"]["namespace"], json!("demo"));
    assert_eq!(created.object["kind"], json!("ConfigMap"));
    let entries = managed_fields(&created.object).unwrap();
    assert_eq!(entries.len(), 1);
    assert!(!entries[0].fields.to_fields_v1()["f:metadata"].is_object());
}

#[test]
fn lists_without_their_merge_key_are_owned_whole() {
    let api = OpenApi::builtin();
    let schema = deployment_schema(&api);
    // `ports` merges by containerPort; an element without it cannot be owned alone, so the
    // list is atomic for this applier (as structured-merge-diff treats an unkeyed list).
    let mut applied = deployment(1, "web:1");
    applied["spec"]["template"]["spec"]["containers"][0]["ports"] = json!([{"name": "http"}]);
    let created = apply(None, &applied, "a", false, "t1", schema).unwrap();
    let encoded = created.object["metadata"]["managedFields"][0]["fieldsV1"].clone();
    let web = &encoded["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"web\"}"];
    assert_eq!(web["f:ports"], json!({}));
    // Scalars in a set list (finalizers) are owned one by one.
    let mut with_finalizers = deployment(1, "web:1");
    with_finalizers["metadata"]["finalizers"] = json!(["a.example/x", "b.example/y"]);
    let owned = FieldSet::of(&with_finalizers, schema).to_fields_v1();
    assert_eq!(
        owned["f:metadata"]["f:finalizers"]["v:\"a.example/x\""],
        json!({})
    );
}

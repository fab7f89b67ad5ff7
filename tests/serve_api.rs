//! The API router driven without a socket: each class of bad request gets a `Status` error,
//! changes nothing, and the server keeps serving.

use axum::body::Body;
use axum::http::Request;
use reconcile::api::{self, worker};
use reconcile::engine::Engine;
use serde_json::{Value, json};
use tower::ServiceExt;

const TOKEN: &str = "test-token";

fn router() -> axum::Router {
    let engine = Engine::in_memory(1).unwrap_or_else(|e| panic!("engine: {e}"));
    api::router(
        worker::Worker::start(engine, worker::Clock::Frozen),
        TOKEN,
        "127.0.0.1:6443",
    )
}

async fn call(
    router: &axum::Router,
    method: &str,
    uri: &str,
    content_type: &str,
    body: Vec<u8>,
    token: Option<&str>,
) -> (u16, Value) {
    let mut builder = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", content_type);
    if let Some(t) = token {
        builder = builder.header("authorization", format!("Bearer {t}"));
    }
    let request = builder
        .body(Body::from(body))
        .unwrap_or_else(|e| panic!("{e}"));
    let response = router
        .clone()
        .oneshot(request)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let code = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

async fn ok(router: &axum::Router, method: &str, uri: &str, body: Value) -> Value {
    let (code, value) = call(
        router,
        method,
        uri,
        "application/json",
        body.to_string().into_bytes(),
        Some(TOKEN),
    )
    .await;
    assert!(code < 300, "{method} {uri}: {code} {value}");
    value
}

fn configmap(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}})
}

const CMS: &str = "/api/v1/namespaces/default/configmaps";

#[tokio::test]
async fn bad_requests_are_status_errors_that_change_nothing() {
    let r = router();
    ok(&r, "POST", CMS, configmap("keep")).await;

    let (code, status) = call(&r, "GET", CMS, "application/json", vec![], None).await;
    assert_eq!(
        (code, status["reason"].as_str()),
        (401, Some("Unauthorized"))
    );
    let (code, _) = call(&r, "GET", CMS, "application/json", vec![], Some("wrong")).await;
    assert_eq!(code, 401);

    let (code, status) = call(
        &r,
        "POST",
        CMS,
        "application/json",
        b"{not json".to_vec(),
        Some(TOKEN),
    )
    .await;
    assert_eq!((code, status["kind"].as_str()), (400, Some("Status")));

    let (code, status) = call(
        &r,
        "GET",
        "/apis/example.com/v1/widgets",
        "application/json",
        vec![],
        Some(TOKEN),
    )
    .await;
    assert_eq!(
        (code, status["message"].as_str()),
        (
            404,
            Some("the server could not find the requested resource")
        )
    );

    let huge = vec![b' '; api::MAX_BODY + 10];
    let (code, status) = call(&r, "POST", CMS, "application/json", huge, Some(TOKEN)).await;
    assert_eq!((code, status["kind"].as_str()), (413, Some("Status")));

    let bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\ng: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\nh: [*g, *g, *g, *g, *g, *g, *g, *g, *g, *g]\n";
    let (code, _) = call(
        &r,
        "PATCH",
        &format!("{CMS}/keep?fieldManager=x"),
        "application/apply-patch+yaml",
        bomb.as_bytes().to_vec(),
        Some(TOKEN),
    )
    .await;
    assert_eq!(code, 400);

    let (code, status) = call(
        &r,
        "POST",
        CMS,
        "application/json",
        configmap("keep").to_string().into_bytes(),
        Some(TOKEN),
    )
    .await;
    assert_eq!(
        (code, status["reason"].as_str()),
        (409, Some("AlreadyExists"))
    );
    assert_eq!(status["message"], "configmaps \"keep\" already exists");

    let (code, status) = call(
        &r,
        "GET",
        &format!("{CMS}/absent"),
        "application/json",
        vec![],
        Some(TOKEN),
    )
    .await;
    assert_eq!(
        (code, status["message"].as_str()),
        (404, Some("configmaps \"absent\" not found"))
    );

    // A stale resourceVersion conflicts and changes nothing.
    let mut stale = configmap("keep");
    stale["metadata"]["resourceVersion"] = json!("1");
    stale["data"]["k"] = json!("changed");
    let (code, status) = call(
        &r,
        "PUT",
        &format!("{CMS}/keep"),
        "application/json",
        stale.to_string().into_bytes(),
        Some(TOKEN),
    )
    .await;
    assert_eq!((code, status["reason"].as_str()), (409, Some("Conflict")));

    // Invalid objects name their fields.
    let bad_pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}});
    let (code, status) = call(
        &r,
        "POST",
        "/api/v1/namespaces/default/pods",
        "application/json",
        bad_pod.to_string().into_bytes(),
        Some(TOKEN),
    )
    .await;
    assert_eq!(
        (code, status["reason"].as_str()),
        (422, Some("Invalid")),
        "{status}"
    );

    // dryRun=All answers as a write would and stores nothing.
    let (code, _) = call(
        &r,
        "POST",
        &format!("{CMS}?dryRun=All"),
        "application/json",
        configmap("ghost").to_string().into_bytes(),
        Some(TOKEN),
    )
    .await;
    assert_eq!(code, 201);
    let (code, _) = call(
        &r,
        "GET",
        &format!("{CMS}/ghost"),
        "application/json",
        vec![],
        Some(TOKEN),
    )
    .await;
    assert_eq!(code, 404);

    // Still serving, and the object is untouched.
    let kept = ok(&r, "GET", &format!("{CMS}/keep"), Value::Null).await;
    assert_eq!(kept["data"]["k"], "v");
}

#[tokio::test]
async fn lists_page_and_select() {
    let r = router();
    for i in 0..5 {
        let mut cm = configmap(&format!("cm-{i}"));
        cm["metadata"]["labels"] = json!({"parity": if i % 2 == 0 { "even" } else { "odd" }});
        ok(&r, "POST", CMS, cm).await;
    }
    let page = ok(&r, "GET", &format!("{CMS}?limit=2"), Value::Null).await;
    assert_eq!(page["items"].as_array().map(Vec::len), Some(2));
    let token = page["metadata"]["continue"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(!token.is_empty());
    let rest = ok(
        &r,
        "GET",
        &format!("{CMS}?limit=10&continue={token}"),
        Value::Null,
    )
    .await;
    let names: Vec<&str> = rest["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["metadata"]["name"].as_str())
        .collect();
    assert_eq!(names, ["cm-2", "cm-3", "cm-4"]);
    let even = ok(
        &r,
        "GET",
        &format!("{CMS}?labelSelector=parity%3Deven"),
        Value::Null,
    )
    .await;
    assert_eq!(even["items"].as_array().map(Vec::len), Some(3));
    let one = ok(
        &r,
        "GET",
        &format!("{CMS}?fieldSelector=metadata.name%3Dcm-3"),
        Value::Null,
    )
    .await;
    assert_eq!(one["items"].as_array().map(Vec::len), Some(1));
}

/// A protobuf ConfigMap named `name` as typed clients send it (`k8s\0` + `runtime.Unknown`).
fn protobuf_configmap(name: &str) -> Vec<u8> {
    fn field(number: u8, payload: &[u8], out: &mut Vec<u8>) {
        out.push(number << 3 | 2);
        out.push(u8::try_from(payload.len()).unwrap_or_else(|_| panic!("short fields only")));
        out.extend_from_slice(payload);
    }
    let mut meta = Vec::new();
    field(1, name.as_bytes(), &mut meta);
    let mut cm = Vec::new();
    field(1, &meta, &mut cm);
    let mut type_meta = Vec::new();
    field(1, b"v1", &mut type_meta);
    field(2, b"ConfigMap", &mut type_meta);
    let mut body = b"k8s\0".to_vec();
    field(1, &type_meta, &mut body);
    field(2, &cm, &mut body);
    body
}

#[tokio::test]
async fn protobuf_bodies_are_read_and_bad_ones_change_nothing() {
    let r = router();
    let pb = "application/vnd.kubernetes.protobuf";
    let (code, created) = call(
        &r,
        "POST",
        CMS,
        pb,
        protobuf_configmap("from-pb"),
        Some(TOKEN),
    )
    .await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["metadata"]["name"], "from-pb");

    let mut truncated = protobuf_configmap("cut");
    truncated.truncate(truncated.len() - 2);
    let (code, status) = call(&r, "POST", CMS, pb, truncated, Some(TOKEN)).await;
    assert_eq!(
        (code, status["reason"].as_str()),
        (400, Some("BadRequest")),
        "{status}"
    );
    let (code, status) = call(&r, "POST", CMS, pb, b"{\"json\": 1}".to_vec(), Some(TOKEN)).await;
    assert_eq!(code, 400, "{status}");
    let mut foreign = protobuf_configmap("x");
    let at = foreign
        .windows(9)
        .position(|w| w == b"ConfigMap")
        .unwrap_or_else(|| panic!("kind"));
    foreign[at..at + 9].copy_from_slice(b"WidgetMap");
    let (code, status) = call(&r, "POST", CMS, pb, foreign, Some(TOKEN)).await;
    assert_eq!(
        (code, status["reason"].as_str()),
        (415, Some("UnsupportedMediaType"))
    );

    let names = ok(&r, "GET", CMS, Value::Null).await;
    let names: Vec<&str> = names["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["metadata"]["name"].as_str())
        .collect();
    assert_eq!(names, ["from-pb"]);
}

#[tokio::test]
async fn deletecollection_deletes_what_the_selector_matches() {
    let r = router();
    for (name, app) in [("a1", "x"), ("a2", "x"), ("b1", "y")] {
        let mut cm = configmap(name);
        cm["metadata"]["labels"] = json!({"app": app});
        ok(&r, "POST", CMS, cm).await;
    }
    // An invalid option deletes nothing.
    let (code, _) = call(
        &r,
        "DELETE",
        &format!("{CMS}?labelSelector=app%3Dx&propagationPolicy=Sometimes"),
        "application/json",
        vec![],
        Some(TOKEN),
    )
    .await;
    assert_eq!(code, 400);
    let deleted = ok(
        &r,
        "DELETE",
        &format!("{CMS}?labelSelector=app%3Dx"),
        json!({}),
    )
    .await;
    assert_eq!(deleted["kind"], "ConfigMapList");
    assert_eq!(deleted["items"].as_array().map(Vec::len), Some(2));
    let left = ok(&r, "GET", CMS, Value::Null).await;
    let left: Vec<&str> = left["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["metadata"]["name"].as_str())
        .collect();
    assert_eq!(left, ["b1"]);
}

const DEPLOYS: &str = "/apis/apps/v1/namespaces/default/deployments";

fn deployment(name: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "nginx"}]}}}})
}

#[tokio::test]
async fn removing_the_last_finalizer_of_a_deleted_object_deletes_it() {
    let r = router();
    let mut held = configmap("held");
    held["metadata"]["finalizers"] = json!(["example.com/a", "example.com/b"]);
    ok(&r, "POST", CMS, held).await;
    let at = format!("{CMS}/held");
    // Deleting leaves it marked, held by its finalizers.
    let marked = ok(&r, "DELETE", &at, Value::Null).await;
    assert!(
        marked["metadata"]["deletionTimestamp"].is_string(),
        "{marked}"
    );

    // No finalizer may be added once deletion started: 422, nothing changes.
    let (code, status) = call(
        &r,
        "PATCH",
        &at,
        "application/merge-patch+json",
        br#"{"metadata":{"finalizers":["example.com/a","example.com/b","example.com/new"]}}"#
            .to_vec(),
        Some(TOKEN),
    )
    .await;
    assert_eq!(code, 422, "{status}");
    assert!(
        status["message"].as_str().is_some_and(|m| m.contains(
            r#"metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{"example.com/new"}"#
        )),
        "{status}"
    );

    // A JSON patch removes one: still held.
    let (code, one_left) = call(
        &r,
        "PATCH",
        &at,
        "application/json-patch+json",
        br#"[{"op":"remove","path":"/metadata/finalizers/0"}]"#.to_vec(),
        Some(TOKEN),
    )
    .await;
    assert_eq!(code, 200, "{one_left}");
    assert_eq!(one_left["metadata"]["finalizers"], json!(["example.com/b"]));
    ok(&r, "GET", &at, Value::Null).await;

    // A PUT without the last one: the object is gone.
    let mut last = one_left.clone();
    last["metadata"]
        .as_object_mut()
        .map(|m| m.remove("finalizers"));
    ok(&r, "PUT", &at, last).await;
    let (code, gone) = call(&r, "GET", &at, "application/json", vec![], Some(TOKEN)).await;
    assert_eq!((code, gone["reason"].as_str()), (404, Some("NotFound")));

    // Finalizers of an object not being deleted come and go with the writer's body.
    ok(&r, "POST", CMS, configmap("free")).await;
    let added = ok(
        &r,
        "PUT",
        &format!("{CMS}/free"),
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "free", "finalizers": ["example.com/keep"]}}),
    )
    .await;
    assert_eq!(added["metadata"]["finalizers"], json!(["example.com/keep"]));
}

#[tokio::test]
async fn status_writes_are_recorded_in_managed_fields_with_their_subresource() {
    let r = router();
    ok(&r, "POST", DEPLOYS, deployment("web")).await;
    let status_at = format!("{DEPLOYS}/web/status?fieldManager=status-writer");
    let (code, patched) = call(
        &r,
        "PATCH",
        &status_at,
        "application/merge-patch+json",
        br#"{"status":{"conditions":[{"type":"Example","status":"True"}]}}"#.to_vec(),
        Some(TOKEN),
    )
    .await;
    assert_eq!(code, 200, "{patched}");
    let entries = patched["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mine: Vec<&Value> = entries
        .iter()
        .filter(|e| e["manager"] == "status-writer")
        .collect();
    assert_eq!(mine.len(), 1, "{entries:?}");
    assert_eq!(mine[0]["operation"], "Update");
    assert_eq!(mine[0]["subresource"], "status");
    assert!(
        mine[0]["fieldsV1"]["f:status"]["f:conditions"].is_object(),
        "{}",
        mine[0]
    );
    assert!(mine[0]["fieldsV1"].get("f:spec").is_none());
    // The same manager writing the object itself gets a second entry, without subresource.
    let (code, main) = call(
        &r,
        "PATCH",
        &format!("{DEPLOYS}/web?fieldManager=status-writer"),
        "application/merge-patch+json",
        br#"{"metadata":{"labels":{"tier":"web"}}}"#.to_vec(),
        Some(TOKEN),
    )
    .await;
    assert_eq!(code, 200, "{main}");
    let subresources: Vec<Option<&str>> = main["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["manager"] == "status-writer")
        .map(|e| e["subresource"].as_str())
        .collect();
    assert_eq!(subresources.len(), 2, "{main}");
    assert!(subresources.contains(&Some("status")) && subresources.contains(&None));
}

/// A CRD whose `v1` declares the scale subresource at `.spec.replicas` / `.status.replicas`
/// / `.status.selector`.
fn scalable_crd() -> Value {
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "workers.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "workers", "singular": "worker", "kind": "Worker"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas",
                    "statusReplicasPath": ".status.replicas", "labelSelectorPath": ".status.selector"}},
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {"replicas": {"type": "integer"}}},
                    "status": {"type": "object", "properties": {
                        "replicas": {"type": "integer"}, "selector": {"type": "string"}}}}}}}]}})
}

#[tokio::test]
async fn custom_resources_scale_through_their_scale_subresource() {
    let r = router();
    ok(
        &r,
        "POST",
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        scalable_crd(),
    )
    .await;
    let workers = "/apis/example.com/v1/namespaces/default/workers";
    ok(
        &r,
        "POST",
        workers,
        json!({"apiVersion": "example.com/v1", "kind": "Worker", "metadata": {"name": "w"},
            "spec": {"replicas": 2}}),
    )
    .await;
    ok(
        &r,
        "PUT",
        &format!("{workers}/w/status"),
        json!({"apiVersion": "example.com/v1", "kind": "Worker", "metadata": {"name": "w"},
            "status": {"replicas": 2, "selector": "app=w"}}),
    )
    .await;
    let scale = ok(&r, "GET", &format!("{workers}/w/scale"), Value::Null).await;
    assert_eq!(
        (
            &scale["kind"],
            &scale["apiVersion"],
            &scale["spec"],
            &scale["status"]
        ),
        (
            &json!("Scale"),
            &json!("autoscaling/v1"),
            &json!({"replicas": 2}),
            &json!({"replicas": 2, "selector": "app=w"})
        )
    );
    // PUT and merge PATCH (what `kubectl scale` sends) both land in spec.replicas.
    ok(
        &r,
        "PUT",
        &format!("{workers}/w/scale"),
        json!({"kind": "Scale", "apiVersion": "autoscaling/v1", "metadata": {"name": "w"},
            "spec": {"replicas": 5}}),
    )
    .await;
    let (code, scaled) = call(
        &r,
        "PATCH",
        &format!("{workers}/w/scale"),
        "application/merge-patch+json",
        br#"{"spec":{"replicas":7}}"#.to_vec(),
        Some(TOKEN),
    )
    .await;
    assert_eq!((code, &scaled["spec"]["replicas"]), (200, &json!(7)));
    let worker = ok(&r, "GET", &format!("{workers}/w"), Value::Null).await;
    assert_eq!(worker["spec"]["replicas"], 7);
    // A negative count is refused and changes nothing.
    let (code, status) = call(
        &r,
        "PATCH",
        &format!("{workers}/w/scale"),
        "application/merge-patch+json",
        br#"{"spec":{"replicas":-1}}"#.to_vec(),
        Some(TOKEN),
    )
    .await;
    assert_eq!((code, status["reason"].as_str()), (422, Some("Invalid")));
    let worker = ok(&r, "GET", &format!("{workers}/w"), Value::Null).await;
    assert_eq!(worker["spec"]["replicas"], 7);
    // A kind without the subresource has no /scale.
    ok(&r, "POST", CMS, configmap("plain")).await;
    let (code, _) = call(
        &r,
        "GET",
        &format!("{CMS}/plain/scale"),
        "application/json",
        vec![],
        Some(TOKEN),
    )
    .await;
    assert_eq!(code, 404);
}

#[tokio::test]
async fn objects_are_answered_in_the_version_of_the_url() {
    let r = router();
    let v1 = "/apis/autoscaling/v1/namespaces/default/horizontalpodautoscalers";
    let created = ok(
        &r,
        "POST",
        v1,
        json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "maxReplicas": 4, "targetCPUUtilizationPercentage": 65}}),
    )
    .await;
    assert_eq!(created["apiVersion"], "autoscaling/v1");
    assert_eq!(created["spec"]["targetCPUUtilizationPercentage"], 65);
    let v2 = ok(
        &r,
        "GET",
        "/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers/web",
        Value::Null,
    )
    .await;
    assert_eq!(v2["apiVersion"], "autoscaling/v2");
    assert_eq!(
        v2["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
        65
    );
    assert!(v2["spec"].get("targetCPUUtilizationPercentage").is_none());
    let list = ok(&r, "GET", v1, Value::Null).await;
    assert_eq!(list["apiVersion"], "autoscaling/v1");
    assert_eq!(
        list["items"][0]["spec"]["targetCPUUtilizationPercentage"],
        65
    );
}

const JANE: &str = "jane-token";

/// A router whose engine has the default RBAC roles and whose token file names `jane`
/// (group `dev`).
fn router_with_jane() -> axum::Router {
    let mut engine = Engine::in_memory(1).unwrap_or_else(|e| panic!("engine: {e}"));
    api::rbac::bootstrap(&mut engine).unwrap_or_else(|e| panic!("bootstrap: {e}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let file = dir.path().join("tokens.csv");
    std::fs::write(&file, format!("{JANE},jane,u-1,\"dev\"\n")).unwrap_or_else(|e| panic!("{e}"));
    let mut users = api::auth::Authenticator::new(TOKEN);
    users.add_token_file(api::auth::TokenFile::read(&file).unwrap_or_else(|e| panic!("{e}")));
    api::router_with(
        worker::Worker::start(engine, worker::Clock::Frozen),
        users,
        "127.0.0.1:6443",
    )
}

async fn as_jane(r: &axum::Router, method: &str, uri: &str, body: Value) -> (u16, Value) {
    let content_type = if method == "PATCH" {
        "application/merge-patch+json"
    } else {
        "application/json"
    };
    let bytes = if body.is_null() {
        Vec::new()
    } else {
        body.to_string().into_bytes()
    };
    call(r, method, uri, content_type, bytes, Some(JANE)).await
}

#[tokio::test]
async fn token_users_are_authorized_by_the_stored_rbac_objects() {
    let r = router_with_jane();
    ok(&r, "POST", CMS, configmap("settings")).await;

    // Authenticated users may discover, but not read what no binding grants.
    assert_eq!(as_jane(&r, "GET", "/apis", Value::Null).await.0, 200);
    let (code, status) = as_jane(&r, "GET", CMS, Value::Null).await;
    assert_eq!((code, status["reason"].as_str()), (403, Some("Forbidden")));
    assert_eq!(
        status["message"],
        "configmaps is forbidden: User \"jane\" cannot list resource \"configmaps\" in API group \"\" in the namespace \"default\""
    );
    assert_eq!(
        call(&r, "GET", CMS, "application/json", vec![], Some("nope"))
            .await
            .0,
        401
    );

    // A read-only Role bound to jane: reads pass, writes are refused and change nothing.
    ok(&r, "POST", "/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles",
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "reader"},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]}]})).await;
    ok(&r, "POST", "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings",
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "jane-reads"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "jane"}]})).await;
    let (code, list) = as_jane(&r, "GET", CMS, Value::Null).await;
    assert_eq!(
        (code, list["items"][0]["metadata"]["name"].as_str()),
        (200, Some("settings"))
    );
    let (code, status) = as_jane(
        &r,
        "PATCH",
        &format!("{CMS}/settings"),
        json!({"data": {"k": "changed"}}),
    )
    .await;
    assert_eq!(code, 403);
    assert_eq!(
        status["message"],
        "configmaps \"settings\" is forbidden: User \"jane\" cannot patch resource \"configmaps\" in API group \"\" in the namespace \"default\""
    );
    assert_eq!(status["details"]["name"], "settings");
    let stored = ok(&r, "GET", &format!("{CMS}/settings"), Value::Null).await;
    assert_eq!(stored["data"]["k"], "v");

    // kubectl auth can-i: a SelfSubjectAccessReview, answered and not stored.
    let ssar = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews";
    let ask = |verb: &str| {
        json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": {"namespace": "default", "verb": verb, "resource": "configmaps"}}})
    };
    let (code, yes) = as_jane(&r, "POST", ssar, ask("list")).await;
    assert_eq!((code, &yes["status"]["allowed"]), (201, &json!(true)));
    assert_eq!(
        yes["status"]["reason"],
        "RBAC: allowed by RoleBinding \"jane-reads/default\" of Role \"reader\" to User \"jane\""
    );
    let (_, no) = as_jane(&r, "POST", ssar, ask("delete")).await;
    assert_eq!(no["status"]["allowed"], false);
    // Reviews are only created: RBAC refuses jane the list first; the admin gets 405.
    assert_eq!(as_jane(&r, "GET", ssar, Value::Null).await.0, 403);
    assert_eq!(
        call(&r, "GET", ssar, "application/json", vec![], Some(TOKEN))
            .await
            .0,
        405
    );

    // kubectl auth whoami and can-i --list.
    let (code, me) = as_jane(
        &r,
        "POST",
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}),
    )
    .await;
    assert_eq!(code, 201);
    assert_eq!(
        me["status"]["userInfo"],
        json!({"username": "jane", "uid": "u-1", "groups": ["dev", "system:authenticated"]})
    );
    let (_, rules) = as_jane(
        &r,
        "POST",
        "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
        json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview",
            "spec": {"namespace": "default"}}),
    )
    .await;
    let resources = rules["status"]["resourceRules"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        resources
            .iter()
            .any(|r| r["resources"] == json!(["configmaps"])),
        "{rules}"
    );

    // The admin asks about jane (SubjectAccessReview); jane may not.
    let sar = json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {"user": "jane", "resourceAttributes": {"namespace": "default", "verb": "get", "resource": "configmaps"}}});
    let answer = ok(
        &r,
        "POST",
        "/apis/authorization.k8s.io/v1/subjectaccessreviews",
        sar.clone(),
    )
    .await;
    assert_eq!(answer["status"]["allowed"], true);
    assert_eq!(
        as_jane(
            &r,
            "POST",
            "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            sar
        )
        .await
        .0,
        403
    );
}

/// A CRD of `kind` in `group` serving `versions` (the first stored), with `extra` merged
/// into its spec.
fn crd(group: &str, kind: &str, versions: &[&str], extra: Value) -> Value {
    let plural = format!("{}s", kind.to_lowercase());
    let versions: Vec<Value> = versions
        .iter()
        .enumerate()
        .map(|(i, v)| {
            json!({"name": v, "served": true, "storage": i == 0, "schema": {"openAPIV3Schema": {
                "type": "object", "x-kubernetes-preserve-unknown-fields": true}}})
        })
        .collect();
    let mut crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.{group}")},
        "spec": {"group": group, "scope": "Namespaced",
            "names": {"plural": plural, "kind": kind, "shortNames": ["gz"]}, "versions": versions}});
    if let (Some(spec), Some(more)) = (crd["spec"].as_object_mut(), extra.as_object()) {
        spec.extend(more.clone());
    }
    crd
}

#[tokio::test]
async fn a_conversion_webhook_nobody_serves_fails_what_needs_a_conversion() {
    let r = router();
    let conversion = json!({"conversion": {"strategy": "Webhook", "webhook": {
        "conversionReviewVersions": ["v1"],
        "clientConfig": {"service": {"name": "conv", "namespace": "default", "path": "/convert"}}}}});
    let crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
    ok(
        &r,
        "POST",
        crds,
        crd("conv.example.com", "Gizmo", &["v1", "v2"], conversion),
    )
    .await;
    let gizmo = |version: &str| {
        json!({"apiVersion": format!("conv.example.com/{version}"), "kind": "Gizmo",
            "metadata": {"name": "g"}, "spec": {"size": 1}})
    };
    // The storage version needs no conversion.
    let v1 = "/apis/conv.example.com/v1/namespaces/default/gizmos";
    ok(&r, "POST", v1, gizmo("v1")).await;
    ok(&r, "GET", &format!("{v1}/g"), Value::Null).await;
    // Any other version does, and the webhook's Service does not exist.
    let v2 = "/apis/conv.example.com/v2/namespaces/default/gizmos";
    let message = "Internal error occurred: conversion webhook for conv.example.com/v1, Kind=Gizmo failed: Post \"https://conv.default.svc:443/convert?timeout=30s\": service \"conv\" not found";
    for (method, uri, body) in [
        ("GET", format!("{v2}/g"), Value::Null),
        ("GET", v2.to_string(), Value::Null),
        ("POST", v2.to_string(), gizmo("v2")),
    ] {
        let (code, status) = call(
            &r,
            method,
            &uri,
            "application/json",
            body.to_string().into_bytes(),
            Some(TOKEN),
        )
        .await;
        assert_eq!(
            (code, status["reason"].as_str()),
            (500, Some("InternalError")),
            "{method} {uri}: {status}"
        );
        let expected = if method == "POST" {
            message.replace("conv.example.com/v1", "conv.example.com/v2")
        } else {
            message.to_string()
        };
        assert_eq!(status["message"], expected.as_str(), "{method} {uri}");
    }
    // Nothing was written by the refused create.
    let list = ok(&r, "GET", v1, Value::Null).await;
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn discovery_lists_custom_groups_as_the_aggregator_orders_them() {
    let r = router();
    let crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
    // Registered in the opposite order: the aggregator sorts equal-priority groups by
    // their APIService names (`v1.a…` before `v1.b…`), whatever the order of creation.
    ok(
        &r,
        "POST",
        crds,
        crd("disco-b.example.com", "Gadget", &["v1"], json!({})),
    )
    .await;
    ok(
        &r,
        "POST",
        crds,
        crd("disco-a.example.com", "Gadget", &["v1"], json!({})),
    )
    .await;
    let apis = ok(&r, "GET", "/apis", Value::Null).await;
    let names: Vec<&str> = apis["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|g| g["name"].as_str())
        .collect();
    let position = |group: &str| names.iter().position(|n| *n == group).unwrap_or(usize::MAX);
    assert!(
        position("disco-a.example.com") < position("disco-b.example.com"),
        "{names:?}"
    );
    assert!(
        position("apps") < position("disco-a.example.com"),
        "{names:?}"
    );
}

/// Sends `headers` with jane's token; the status and the body as text.
async fn raw(
    router: &axum::Router,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    content_type: &str,
    body: Value,
) -> (u16, String) {
    let mut builder = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", content_type)
        .header("authorization", format!("Bearer {JANE}"));
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let bytes = if body.is_null() {
        Vec::new()
    } else {
        body.to_string().into_bytes()
    };
    let request = builder
        .body(Body::from(bytes))
        .unwrap_or_else(|e| panic!("{e}"));
    let response = router
        .clone()
        .oneshot(request)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let code = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    (code, String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test]
async fn impersonation_without_a_user_and_server_side_applied_escalation_are_refused() {
    let r = router_with_jane();
    // Groups without a user: upstream's plain-text internal error (kubectl refuses it itself).
    let (code, text) = raw(
        &r,
        "GET",
        CMS,
        &[("impersonate-group", "system:masters")],
        "application/json",
        Value::Null,
    )
    .await;
    assert_eq!(code, 500);
    assert_eq!(
        text.trim_end(),
        format!(
            "Internal Server Error: \"{CMS}\": requested [{{Group  system:masters    }}] without impersonating a user"
        )
    );
    // jane may not act as anyone.
    let (code, text) = raw(
        &r,
        "GET",
        CMS,
        &[("impersonate-user", "root")],
        "application/json",
        Value::Null,
    )
    .await;
    assert_eq!(code, 403, "{text}");
    assert!(text.contains("users \\\"root\\\" is forbidden: User \\\"jane\\\" cannot impersonate resource \\\"users\\\""), "{text}");

    // jane administers default (`admin`): a server-side applied Role granting more is refused
    // and not stored; one within her rights is stored.
    ok(&r, "POST", "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings",
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "dev-admin"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin"},
            "subjects": [{"kind": "Group", "name": "dev"}]})).await;
    let role = |resource: &str| {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "r", "namespace": "default"},
            "rules": [{"apiGroups": [""], "resources": [resource], "verbs": ["get"]}]})
    };
    let uri = "/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles/r?fieldManager=jane";
    let (code, text) = raw(
        &r,
        "PATCH",
        uri,
        &[],
        "application/apply-patch+yaml",
        role("nodes"),
    )
    .await;
    assert_eq!(code, 403, "{text}");
    assert!(text.contains("is attempting to grant RBAC permissions not currently held:\\n{APIGroups:[\\\"\\\"], Resources:[\\\"nodes\\\"], Verbs:[\\\"get\\\"]}"), "{text}");
    let (code, _) = as_jane(
        &r,
        "GET",
        "/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles/r",
        Value::Null,
    )
    .await;
    assert_eq!(code, 404, "nothing stored");
    let (code, text) = raw(
        &r,
        "PATCH",
        uri,
        &[],
        "application/apply-patch+yaml",
        role("secrets"),
    )
    .await;
    assert_eq!(code, 201, "{text}");
}

#[tokio::test]
async fn a_custom_resource_breaking_its_schema_is_invalid_with_a_cause_per_field() {
    let r = router();
    let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {
                        "color": {"type": "string", "enum": ["red", "blue"]},
                        "name": {"type": "string", "maxLength": 3},
                        "size": {"type": "integer", "minimum": 1},
                        "tags": {"type": "array", "maxItems": 1, "items": {"type": "string"}}}}}}}}]}});
    ok(
        &r,
        "POST",
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        crd,
    )
    .await;
    let gadgets = "/apis/example.com/v1/namespaces/default/gadgets";
    let bad = json!({"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g"},
        "spec": {"color": "green", "name": "toolong", "size": "big", "tags": ["a", "b"]}});
    let (code, status) = call(
        &r,
        "POST",
        gadgets,
        "application/json",
        bad.to_string().into_bytes(),
        Some(TOKEN),
    )
    .await;
    assert_eq!(
        (code, status["reason"].as_str()),
        (422, Some("Invalid")),
        "{status}"
    );
    let causes: Vec<(String, String, String)> = status["details"]["causes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let text = |k: &str| c[k].as_str().unwrap_or_default().to_string();
            (text("field"), text("reason"), text("message"))
        })
        .collect();
    let expected = [
        (
            "spec.color",
            "FieldValueNotSupported",
            "Unsupported value: \"green\": supported values: \"red\", \"blue\"",
        ),
        (
            "spec.name",
            "FieldValueTooLong",
            "Too long: may not be longer than 3",
        ),
        (
            "spec.size",
            "FieldValueTypeInvalid",
            "Invalid value: \"string\": spec.size in body must be of type integer: \"string\"",
        ),
        (
            "spec.tags",
            "FieldValueTooMany",
            "Too many: 2: must have at most 1 items",
        ),
    ];
    assert_eq!(
        causes,
        expected.map(|(f, r, m)| (f.to_string(), r.to_string(), m.to_string())),
        "{status}"
    );
    assert_eq!(status["details"]["kind"], "Gadget", "{status}");
    let (code, _) = call(
        &r,
        "GET",
        &format!("{gadgets}/g"),
        "application/json",
        vec![],
        Some(TOKEN),
    )
    .await;
    assert_eq!(code, 404);
}

//! Custom resources beyond storage: their CRD's `additionalPrinterColumns` in `engine get`,
//! and `apply --wait` taking a custom resource without status as current (kstatus).

mod plan_support;

use plan_support::Repo;

const CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd]}
  versions:
  - name: v1
    served: true
    storage: true
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
    - {name: Color, type: string, jsonPath: .spec.color}
    - {name: Ready, type: string, jsonPath: '.status.conditions[?(@.type=="Ready")].status'}
    - {name: Note, type: string, jsonPath: .spec.note, priority: 1}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer}
              color: {type: string, default: red}
              note: {type: string}
          status:
            type: object
            x-kubernetes-preserve-unknown-fields: true
"#;

fn app(repo: &Repo, widgets: &str) {
    repo.write(
        "app/kustomization.yaml",
        "resources:\n- crd.yaml\n- widgets.yaml\n",
    );
    repo.write("app/crd.yaml", CRD);
    repo.write("app/widgets.yaml", widgets);
}

#[test]
fn engine_get_prints_the_crds_printer_columns() {
    let repo = Repo::new();
    app(
        &repo,
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w1}\nspec: {size: 3, note: hi}\n",
    );
    repo.ok(&["apply", "app"], 0);
    let table = repo.ok(&["engine", "get", "widgets"], 0).stdout;
    let mut lines = table.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(header, ["NAME", "SIZE", "COLOR", "READY", "AGE"], "{table}");
    let row: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(&row[..4], ["w1", "3", "red", "<none>"], "{table}");
    let wide = repo.ok(&["engine", "get", "wd", "-o", "wide"], 0).stdout;
    assert!(
        wide.lines().next().unwrap_or_default().contains("NOTE"),
        "{wide}"
    );
    assert!(wide.contains(" hi"), "{wide}");
}

#[test]
fn apply_wait_takes_a_custom_resource_without_status_as_current() {
    let repo = Repo::new();
    // No status: current at once.
    app(
        &repo,
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w1}\nspec: {size: 1}\n",
    );
    repo.ok(&["apply", "app", "--wait"], 0);
    // The rules for conditions (Stalled, Reconciling, Ready, observedGeneration) are unit
    // tests of `rollout::health`: an applied custom resource here has no controller to
    // report them, and an apply replaces the status of a CRD without the status subresource.
    let table = repo.ok(&["engine", "get", "widgets"], 0).stdout;
    assert!(table.contains("<none>"), "{table}");
}

#[test]
fn an_apply_that_declares_no_status_keeps_the_status_someone_else_wrote() {
    use reconcile::engine::Engine;
    use serde_json::json;
    let mut e = Engine::in_memory(1).expect("engine");
    // The CRD above, without the printer columns: no status subresource.
    e.create(&json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                    "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}}}]}}))
        .expect("crd");
    let widget = |size: i64| {
        json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w1"},
            "spec": {"size": size}})
    };
    e.apply(&widget(1)).expect("create");
    let report = json!({"conditions": [{"type": "Ready", "status": "True"}]});
    e.replace_status(
        "widgets",
        "default",
        "w1",
        &json!({"status": report.clone()}),
    )
    .expect("status");
    let after = e.apply(&widget(2)).expect("update");
    assert_eq!(after["spec"]["size"], 2);
    assert_eq!(after["status"], report);
}

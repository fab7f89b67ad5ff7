//! Custom resources beyond storage: their CRD's `additionalPrinterColumns` in `engine get`,
//! a status declared in the tree (an ordinary field without the status subresource, ignored
//! with it), and `apply --wait` on kstatus' generic rules.

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
    let table = repo.ok(&["engine", "get", "widgets"], 0).stdout;
    assert!(table.contains("<none>"), "{table}");
}

/// A Widget `w1` of size `size` whose status (`None`: no status) is `status`.
fn widget(size: i64, status: Option<&str>) -> String {
    let mut text = format!(
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {{name: w1}}\nspec: {{size: {size}}}\n"
    );
    if let Some(status) = status {
        text.push_str(&format!("status: {status}\n"));
    }
    text
}

const NOT_READY: &str = r#"{conditions: [{type: Ready, status: "False", reason: Pending, message: waiting for the database}]}"#;
const READY: &str = r#"{observedGeneration: 1, conditions: [{type: Ready, status: "True", reason: Up, message: serving}]}"#;

#[test]
fn a_tree_declares_the_status_of_a_custom_resource_without_the_status_subresource() {
    let repo = Repo::new();
    app(&repo, &widget(1, Some(NOT_READY)));
    repo.ok(&["apply", "app"], 0);
    let live = repo
        .ok(&["engine", "get", "widget", "w1", "-o", "yaml"], 0)
        .stdout;
    assert!(live.contains("message: waiting for the database"), "{live}");
    repo.ok(&["plan", "app", "--detailed-exitcode"], 0);

    // A changed status is planned and applied like spec.
    repo.write("app/widgets.yaml", &widget(1, Some(READY)));
    let plan = repo.ok(&["plan", "app", "--detailed-exitcode"], 2).stdout;
    assert!(plan.contains("~ update Widget default/w1"), "{plan}");
    assert!(plan.contains("-    status: \"False\""), "{plan}");
    assert!(plan.contains("+    status: \"True\""), "{plan}");
    repo.ok(&["apply", "app"], 0);
    let live = repo
        .ok(&["engine", "get", "widget", "w1", "-o", "yaml"], 0)
        .stdout;
    assert!(
        live.contains("message: serving") && live.contains("observedGeneration: 1"),
        "{live}"
    );
    let managed = repo
        .ok(
            &[
                "engine",
                "get",
                "widget",
                "w1",
                "-o",
                "yaml",
                "--show-managed-fields",
            ],
            0,
        )
        .stdout;
    assert!(
        managed.contains("f:status:"),
        "reconcile owns the status it applied:\n{managed}"
    );
    repo.ok(&["plan", "app", "--detailed-exitcode"], 0);

    // Dropped from the tree: removed, as any field reconcile applied and no longer declares.
    repo.write("app/widgets.yaml", &widget(1, None));
    let plan = repo.ok(&["plan", "app", "--detailed-exitcode"], 2).stdout;
    assert!(plan.contains("-status:"), "{plan}");
    repo.ok(&["apply", "app"], 0);
    let live = repo
        .ok(&["engine", "get", "widget", "w1", "-o", "yaml"], 0)
        .stdout;
    assert!(!live.contains("status:"), "{live}");
    repo.ok(&["plan", "app", "--detailed-exitcode"], 0);
}

#[test]
fn a_declared_status_is_ignored_with_the_status_subresource() {
    let repo = Repo::new();
    app(&repo, &widget(1, None));
    repo.ok(&["apply", "app"], 0);
    // Turning the subresource on is a change of the CRD.
    repo.edit(
        "app/crd.yaml",
        "    storage: true\n",
        "    storage: true\n    subresources: {status: {}}\n",
    );
    repo.write("app/widgets.yaml", &widget(1, Some(READY)));
    let plan = repo.ok(&["plan", "app", "--detailed-exitcode"], 2).stdout;
    assert!(
        plan.contains("~ update CustomResourceDefinition widgets.example.com"),
        "{plan}"
    );
    assert!(plan.contains("+    subresources:"), "{plan}");
    assert!(
        !plan.contains("Widget default/w1"),
        "status is not the main resource's: {plan}"
    );
    repo.ok(&["apply", "app"], 0);
    let live = repo
        .ok(&["engine", "get", "widget", "w1", "-o", "yaml"], 0)
        .stdout;
    assert!(!live.contains("status:"), "{live}");
    // No perpetual diff.
    repo.ok(&["plan", "app", "--detailed-exitcode"], 0);
}

#[test]
fn apply_wait_follows_kstatus_conditions() {
    let repo = Repo::new();
    // Never Ready: the wait times out naming the condition's message.
    app(&repo, &widget(1, Some(NOT_READY)));
    let run = repo.ok(&["apply", "app", "--wait", "--timeout", "20s"], 1);
    assert!(
        run.all().contains(
            "timed out waiting for Widget default/w1 (Progressing: not Ready: Pending: waiting for the database)"
        ),
        "{}",
        run.all()
    );
    // Ready at the generation it observed: current.
    repo.write("app/widgets.yaml", &widget(1, Some(READY)));
    repo.ok(&["apply", "app", "--wait", "--timeout", "20s"], 0);
    // A spec change the status has not observed yet is in progress.
    repo.write("app/widgets.yaml", &widget(2, Some(READY)));
    let run = repo.ok(&["apply", "app", "--wait", "--timeout", "5s"], 1);
    assert!(
        run.all()
            .contains("status observedGeneration 1 is behind generation 2"),
        "{}",
        run.all()
    );
    // Stalled: failed at once, naming its reason and message.
    repo.write(
        "app/widgets.yaml",
        &widget(
            2,
            Some(r#"{observedGeneration: 2, conditions: [{type: Stalled, status: "True", reason: BadConfig, message: no such secret}]}"#),
        ),
    );
    let run = repo.ok(&["apply", "app", "--wait", "--timeout", "1h"], 1);
    assert!(
        run.all()
            .contains("Widget default/w1 is Degraded: Stalled: BadConfig: no such secret"),
        "{}",
        run.all()
    );
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

/// A CRD for `widgets` in `group` (short name `wd`).
fn widget_crd(group: &str) -> String {
    format!(
        r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.{group}
spec:
  group: {group}
  scope: Namespaced
  names: {{plural: widgets, singular: widget, kind: Widget, shortNames: [wd]}}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {{type: object, x-kubernetes-preserve-unknown-fields: true}}
"#
    )
}

#[test]
fn a_word_two_groups_serve_names_the_group_discovery_lists_first() {
    let repo = Repo::new();
    // b's CRD is stored and registered last, yet a.example.com comes first: CRD groups have
    // the same priority and the aggregator orders them by APIService name (`v1.a…`).
    repo.write(
        "app/kustomization.yaml",
        "resources:\n- crds.yaml\n- widgets.yaml\n",
    );
    repo.write(
        "app/crds.yaml",
        &format!(
            "{}---\n{}",
            widget_crd("b.example.com"),
            widget_crd("a.example.com")
        ),
    );
    repo.write(
        "app/widgets.yaml",
        "apiVersion: b.example.com/v1\nkind: Widget\nmetadata: {name: from-b}\n---\n\
         apiVersion: a.example.com/v1\nkind: Widget\nmetadata: {name: from-a}\n",
    );
    repo.ok(&["apply", "app"], 0);
    let plain = repo.ok(&["engine", "get", "widgets"], 0);
    assert!(
        plain.stdout.contains("from-a") && !plain.stdout.contains("from-b"),
        "{}",
        plain.all()
    );
    assert!(
        !plain.stderr.contains("Warning"),
        "a full name warns of nothing: {}",
        plain.stderr
    );
    // A short name both have: kubectl's warning names the other resource.
    let short = repo.ok(&["engine", "get", "wd"], 0);
    assert!(short.stdout.contains("from-a"), "{}", short.all());
    assert!(
        short.stderr.contains(
            "Warning: short name \"wd\" could also match lower priority resource widgets.b.example.com"
        ),
        "{}",
        short.stderr
    );
    let qualified = repo
        .ok(&["engine", "get", "widgets.b.example.com"], 0)
        .stdout;
    assert!(
        qualified.contains("from-b") && !qualified.contains("from-a"),
        "{qualified}"
    );
    let deleted = repo.ok(&["engine", "delete", "widget", "from-a"], 0);
    assert!(
        deleted
            .stdout
            .contains("widget.a.example.com/from-a deleted"),
        "{}",
        deleted.all()
    );
}

#[test]
fn a_conversion_webhook_the_engine_cannot_call_fails_other_versions() {
    let repo = Repo::new();
    let v2 = "  - name: v2\n    served: true\n    storage: false\n    schema:\n      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}\n";
    let webhook = "  conversion:\n    strategy: Webhook\n    webhook:\n      conversionReviewVersions: [v1]\n      clientConfig: {service: {name: widget-conv, namespace: default}}\n";
    repo.write(
        "crd.yaml",
        &format!("{}{v2}{webhook}", widget_crd("hook.example.com")),
    );
    repo.ok(&["engine", "apply", "-f", "crd.yaml"], 0);
    repo.write(
        "v1.yaml",
        "apiVersion: hook.example.com/v1\nkind: Widget\nmetadata: {name: w1}\n",
    );
    repo.ok(&["engine", "apply", "-f", "v1.yaml"], 0);
    repo.write(
        "v2.yaml",
        "apiVersion: hook.example.com/v2\nkind: Widget\nmetadata: {name: w2}\n",
    );
    let refused = repo.ok(&["engine", "apply", "-f", "v2.yaml"], 1);
    assert!(
        refused.stderr.contains(
            "conversion webhook for hook.example.com/v2, Kind=Widget failed: Post \"https://widget-conv.default.svc:443?timeout=30s\": service \"widget-conv\" not found"
        ),
        "{}",
        refused.stderr
    );
    // A tree naming v2 cannot be planned: reading the live object needs the webhook too.
    repo.write("app/kustomization.yaml", "resources:\n- w.yaml\n");
    repo.write(
        "app/w.yaml",
        "apiVersion: hook.example.com/v2\nkind: Widget\nmetadata: {name: w1}\n",
    );
    let plan = repo.ok(&["plan", "app", "--adopt"], 1);
    assert!(
        plan.stderr
            .contains("conversion webhook for hook.example.com/v1, Kind=Widget failed"),
        "{}",
        plan.stderr
    );
}

/// A CRD whose schema carries validation rules: one on `spec`, a transition rule on
/// `spec.region`, and one calling `timestamp`, which the engine's CEL lacks.
const RULED_CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gadgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: gadgets, singular: gadget, kind: Gadget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            x-kubernetes-validations:
            - {rule: "self.min <= self.max", message: "min must not exceed max"}
            - rule: "!has(self.created) || timestamp(self.created) > timestamp('2020-01-01T00:00:00Z')"
            properties:
              min: {type: integer}
              max: {type: integer}
              created: {type: string}
              region:
                type: string
                x-kubernetes-validations:
                - {rule: "self == oldSelf", message: "region is immutable"}
"#;

fn gadget(name: &str, spec: &str) -> String {
    format!("apiVersion: example.com/v1\nkind: Gadget\nmetadata: {{name: {name}}}\nspec: {spec}\n")
}

#[test]
fn validation_rules_refuse_custom_resources_with_the_api_servers_words() {
    let repo = Repo::new();
    repo.write(
        "app/kustomization.yaml",
        "resources:\n- crd.yaml\n- g.yaml\n",
    );
    repo.write("app/crd.yaml", RULED_CRD);
    repo.write("app/g.yaml", &gadget("g1", "{min: 5, max: 2, region: eu}"));
    // Refused before anything is written: neither the CRD nor the inventory.
    let refused = repo.ok(&["apply", "app"], 1);
    assert!(
        refused.stderr.contains(
            "g.yaml: Gadget default/g1: Gadget.example.com \"g1\" is invalid: spec: Invalid value: \"object\": min must not exceed max"
        ),
        "{}",
        refused.stderr
    );
    repo.ok(&["engine", "get", "crd", "gadgets.example.com"], 1);

    repo.write("app/g.yaml", &gadget("g1", "{min: 1, max: 2, region: eu}"));
    repo.ok(&["apply", "app"], 0);
    // A transition rule: the region may not change once set.
    repo.write("app/g.yaml", &gadget("g1", "{min: 1, max: 2, region: us}"));
    let moved = repo.ok(&["apply", "app"], 1);
    assert!(
        moved.stderr.contains(
            "Gadget.example.com \"g1\" is invalid: spec.region: Invalid value: \"string\": region is immutable"
        ),
        "{}",
        moved.stderr
    );
    let live = repo
        .ok(&["engine", "get", "gadget", "g1", "-o", "yaml"], 0)
        .stdout;
    assert!(live.contains("region: eu"), "{live}");

    // `engine apply -f` names the file, and a rule the engine cannot evaluate is a warning.
    repo.write("bad.yaml", &gadget("g2", "{min: 3, max: 1}"));
    let bad = repo.ok(&["engine", "apply", "-f", "bad.yaml"], 1);
    assert!(
        bad.stderr.contains("bad.yaml: Gadget.example.com \"g2\" is invalid: spec: Invalid value: \"object\": min must not exceed max"),
        "{}",
        bad.stderr
    );
    repo.write(
        "dated.yaml",
        &gadget("g3", "{min: 1, max: 1, created: \"2021-05-01T00:00:00Z\"}"),
    );
    let dated = repo.ok(&["engine", "apply", "-f", "dated.yaml"], 0);
    assert!(
        dated.stdout.contains("gadget.example.com/g3 created"),
        "{}",
        dated.stdout
    );
    assert!(
        dated.stderr.contains(
            "Warning: spec: x-kubernetes-validations rule \"!has(self.created) || timestamp("
        ) && dated
            .stderr
            .contains("was not evaluated: the engine does not implement 'timestamp'"),
        "{}",
        dated.stderr
    );
}

#[test]
fn a_crd_whose_rule_does_not_compile_is_refused() {
    let repo = Repo::new();
    repo.write(
        "crd.yaml",
        &RULED_CRD.replace("self.min <= self.max", "self.min <= "),
    );
    let refused = repo.ok(&["engine", "apply", "-f", "crd.yaml"], 1);
    assert!(
        refused.stderr.contains(
            "CustomResourceDefinition.apiextensions.k8s.io \"gadgets.example.com\" is invalid: spec.validation.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule: Invalid value: apiextensions.ValidationRule{Rule:\"self.min <= \", Message:\"min must not exceed max\""
        ) && refused.stderr.contains("compilation failed: ERROR: <input>:1:"),
        "{}",
        refused.stderr
    );
    repo.write(
        "crd.yaml",
        &RULED_CRD.replace("self.min <= self.max", "frobnicate(self.min)"),
    );
    let unknown = repo.ok(&["engine", "apply", "-f", "crd.yaml"], 1);
    assert!(
        unknown
            .stderr
            .contains("undeclared reference to 'frobnicate' (in container '')"),
        "{}",
        unknown.stderr
    );
    repo.ok(&["engine", "get", "crd", "gadgets.example.com"], 1);
}

/// A CRD whose schema bounds values: lengths, patterns, numbers, items, properties and
/// formats (`int64` and `quantity` are never checked on strings, as in Kubernetes 1.31).
const GADGET_CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gadgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: gadgets, singular: gadget, kind: Gadget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              name: {type: string, maxLength: 5, pattern: '^[a-z]+$'}
              replicas: {type: integer, minimum: 1, maximum: 10}
              ratio: {type: number, exclusiveMaximum: true, maximum: 1}
              tags: {type: array, maxItems: 2, items: {type: string, minLength: 2}}
              contact: {type: string, format: email}
              since: {type: string, format: date-time}
              size: {type: string, format: quantity}
              labels: {type: object, maxProperties: 1, additionalProperties: {type: string}}
              timeout: {type: integer, format: int64}
"#;

const GOOD_GADGET: &str = "apiVersion: example.com/v1\nkind: Gadget\nmetadata: {name: g1}\nspec:\n  name: web\n  replicas: 3\n  ratio: 0.5\n  tags: [ab, cd]\n  contact: Ops <ops@example.com>\n  since: '2024-05-01T10:00:00Z'\n  size: lots\n  labels: {a: b}\n  timeout: 30\n";

const BAD_GADGET: &str = "apiVersion: example.com/v1\nkind: Gadget\nmetadata: {name: g1}\nspec:\n  name: Web-Server\n  replicas: 0\n  ratio: 1.0\n  tags: [a, bb, cc]\n  contact: nobody\n  since: yesterday\n  size: lots\n  labels: {a: b, c: d}\n  timeout: 30\n";

/// Every failing field of `BAD_GADGET`, in kube-apiserver 1.31's words.
const BAD_GADGET_ERRORS: &[&str] = &[
    "spec.name: Too long: may not be longer than 5",
    "spec.replicas: Invalid value: 0: spec.replicas in body should be greater than or equal to 1",
    "spec.ratio: Invalid value: 1: spec.ratio in body should be less than 1",
    "spec.tags[0]: Invalid value: \"a\": spec.tags[0] in body should be at least 2 chars long",
    "spec.tags: Too many: 3: must have at most 2 items",
    "spec.contact: Invalid value: \"nobody\": spec.contact in body must be of type email: \"nobody\"",
    "spec.since: Invalid value: \"yesterday\": spec.since in body must be of type date-time: \"yesterday\"",
    "spec.labels: Too many: 2: must have at most 1 items",
];

#[test]
fn value_constraints_refuse_a_custom_resource_naming_every_field_and_write_nothing() {
    let repo = Repo::new();
    repo.write(
        "app/kustomization.yaml",
        "resources:\n- crd.yaml\n- gadgets.yaml\n",
    );
    repo.write("app/crd.yaml", GADGET_CRD);
    repo.write("app/gadgets.yaml", GOOD_GADGET);
    // Formats Kubernetes does not check on these fields (int64, quantity) refuse nothing.
    repo.ok(&["apply", "app"], 0);
    repo.write("app/gadgets.yaml", BAD_GADGET);
    let refused = repo.ok(&["apply", "app"], 1);
    assert!(
        refused
            .stderr
            .contains("Gadget.example.com \"g1\" is invalid"),
        "{}",
        refused.all()
    );
    for error in BAD_GADGET_ERRORS {
        assert!(refused.stderr.contains(error), "{error}\n{}", refused.all());
    }
    let stored = repo
        .ok(&["engine", "get", "gadget", "g1", "-o", "json"], 0)
        .stdout;
    assert!(stored.contains("\"name\": \"web\""), "{stored}");

    // The same object through `engine apply -f`: refused, nothing stored.
    repo.write("bad.yaml", &BAD_GADGET.replace("g1", "g2"));
    let refused = repo.ok(&["engine", "apply", "-f", "bad.yaml"], 1);
    assert!(
        refused.stderr.contains("spec.replicas: Invalid value: 0"),
        "{}",
        refused.all()
    );
    let missing = repo.run(&["engine", "get", "gadget", "g2"]);
    assert_eq!(missing.code, 1, "{}", missing.all());
}

#[test]
fn a_crd_whose_schema_the_api_server_refuses_is_not_created() {
    let repo = Repo::new();
    let crd = GADGET_CRD.replace(
        "              timeout: {type: integer, format: int64}\n",
        "              timeout: {type: integer, minimum: 1, default: 0}\n              color: {type: string, enum: [red, blue], default: green}\n              ids: {type: array, uniqueItems: true, items: {type: string}}\n              code: {type: string, pattern: '+'}\n",
    );
    repo.write("crd.yaml", &crd);
    let refused = repo.ok(&["engine", "apply", "-f", "crd.yaml"], 1);
    let at = "spec.validation.openAPIV3Schema.properties[spec].properties";
    for error in [
        format!(
            "{at}[ids].uniqueItems: Forbidden: uniqueItems cannot be set to true since the runtime complexity becomes quadratic"
        ),
        format!(
            "{at}[code].pattern: Invalid value: \"+\": must be a valid regular expression, but isn't: error parsing regexp: missing argument to repetition operator: `+`"
        ),
        format!(
            "{at}[timeout].default: Invalid value: 0:  in body should be greater than or equal to 1"
        ),
        format!(
            "{at}[color].default: Unsupported value: \"green\": supported values: \"red\", \"blue\""
        ),
    ] {
        assert!(
            refused.stderr.contains(&error),
            "{error}\n{}",
            refused.all()
        );
    }
    let crds = repo.run(&["engine", "get", "crd", "gadgets.example.com"]);
    assert_eq!(crds.code, 1, "{}", crds.all());
}

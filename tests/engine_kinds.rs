//! Issue 15 end to end: built-in kinds Kubernetes serves, CRDs and their custom resources,
//! namespaces created on request, server-side field validation and Secret validation, through
//! `reconcile apply` and `reconcile engine get` on a fixture repository.

mod plan_support;

use plan_support::Repo;

const CRD: &str = "apiVersion: apiextensions.k8s.io/v1
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
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size: {type: integer}
              color: {type: string, default: red}
";

fn app(repo: &Repo, dir: &str, files: &[(&str, &str)]) {
    let names: Vec<String> = files.iter().map(|(n, _)| format!("- {n}")).collect();
    repo.write(
        &format!("{dir}/kustomization.yaml"),
        &format!("resources:\n{}\n", names.join("\n")),
    );
    for (name, text) in files {
        repo.write(&format!("{dir}/{name}"), text);
    }
}

#[test]
fn a_crd_and_its_resources_apply_together_and_are_served() {
    let repo = Repo::new();
    let widget =
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w1}\nspec: {size: 3}\n";
    app(&repo, "app", &[("widget.yaml", widget), ("crd.yaml", CRD)]);
    let run = repo.ok(&["apply", "app"], 0);
    // The CRD goes first, whatever the render order.
    let crd_at = run
        .stdout
        .find("CustomResourceDefinition widgets.example.com: created");
    let widget_at = run.stdout.find("Widget default/w1: created");
    assert!(crd_at.is_some() && crd_at < widget_at, "{}", run.all());
    let yaml = repo
        .ok(&["engine", "get", "wd", "w1", "-o", "yaml"], 0)
        .stdout;
    assert!(
        yaml.contains("color: red"),
        "defaulted from the schema:\n{yaml}"
    );
    let crd = repo
        .ok(
            &["engine", "get", "crd", "widgets.example.com", "-o", "yaml"],
            0,
        )
        .stdout;
    assert!(crd.contains("type: Established"), "{crd}");
    // A second process reads the custom kind back from the state.
    assert!(
        repo.ok(&["engine", "get", "widgets"], 0)
            .stdout
            .contains("w1")
    );
    repo.ok(&["plan", "app", "--detailed-exitcode"], 0);
}

#[test]
fn custom_resources_are_validated_against_their_schema() {
    let repo = Repo::new();
    let bad = "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w1}\nspec: {size: big, shape: round}\n";
    app(&repo, "app", &[("crd.yaml", CRD), ("widget.yaml", bad)]);
    let run = repo.ok(&["apply", "app"], 1);
    assert!(
        run.stderr.contains("Widget in version \"v1\" cannot be handled as a Widget: strict decoding error: unknown field \"spec.shape\""),
        "{}",
        run.all()
    );
    let fixed =
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w1}\nspec: {size: big}\n";
    repo.write("app/widget.yaml", fixed);
    let run = repo.ok(&["apply", "app"], 1);
    assert!(
        run.all().contains(
            "spec.size: Invalid value: \"string\": spec.size in body must be of type integer"
        ),
        "{}",
        run.all()
    );
}

#[test]
fn a_custom_resource_without_its_crd_is_refused_before_anything_changes() {
    let repo = Repo::new();
    let cert =
        "apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {name: web}\nspec: {}\n";
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n";
    app(&repo, "app", &[("cm.yaml", cm), ("cert.yaml", cert)]);
    let run = repo.ok(&["apply", "app"], 1);
    assert!(
        run.stderr.contains("no matches for kind \"Certificate\" in version \"cert-manager.io/v1\": install its CustomResourceDefinition first"),
        "{}",
        run.all()
    );
    let cms = repo.ok(&["engine", "get", "cm"], 0).stdout;
    assert!(!cms.contains("\nc "), "nothing applied:\n{cms}");
}

#[test]
fn versions_kubernetes_does_not_serve_are_refused() {
    let repo = Repo::new();
    let secret = "apiVersion: v2\nkind: Secret\nmetadata: {name: s}\ndata: {k: dmFsdWU=}\n";
    app(&repo, "app", &[("secret.yaml", secret)]);
    let run = repo.ok(&["apply", "app"], 1);
    assert!(
        run.stderr
            .contains("no matches for kind \"Secret\" in version \"v2\""),
        "{}",
        run.all()
    );
    assert!(!run.all().contains("install its"), "{}", run.all());
    // autoscaling/v1 is served next to v2 and stored as v2.
    let hpa = "apiVersion: autoscaling/v1\nkind: HorizontalPodAutoscaler\nmetadata: {name: web}\nspec:\n  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}\n  minReplicas: 1\n  maxReplicas: 3\n  targetCPUUtilizationPercentage: 70\n";
    app(&repo, "hpa", &[("hpa.yaml", hpa)]);
    repo.ok(&["apply", "hpa"], 0);
    let yaml = repo
        .ok(&["engine", "get", "hpa", "web", "-o", "yaml"], 0)
        .stdout;
    assert!(yaml.contains("averageUtilization: 70"), "{yaml}");
}

#[test]
fn every_built_in_kind_is_stored_and_returned() {
    let repo = Repo::new();
    let objects = "apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny}
spec:
  podSelector: {}
  policyTypes: [Ingress]
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web}
spec:
  minAvailable: 1
  selector: {matchLabels: {app: web}}
---
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata: {name: high}
value: 1000
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {name: hooks}
webhooks: []
---
apiVersion: flowcontrol.apiserver.k8s.io/v1
kind: FlowSchema
metadata: {name: fs}
spec:
  priorityLevelConfiguration: {name: global-default}
";
    app(&repo, "app", &[("objects.yaml", objects)]);
    repo.ok(&["apply", "app"], 0);
    for (word, name) in [
        ("netpol", "deny"),
        ("pdb", "web"),
        ("pc", "high"),
        ("validatingwebhookconfigurations", "hooks"),
        ("flowschemas", "fs"),
    ] {
        let out = repo
            .ok(&["engine", "get", word, name, "-o", "yaml"], 0)
            .stdout;
        assert!(out.contains(&format!("name: {name}")), "{word}:\n{out}");
    }
    repo.ok(&["plan", "app", "--detailed-exitcode"], 0);
}

#[test]
fn unknown_fields_and_wrong_types_are_refused_with_their_path() {
    let repo = Repo::new();
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: b}\ndatta: {}\n";
    app(&repo, "app", &[("cm.yaml", cm)]);
    let run = repo.ok(&["apply", "app"], 1);
    assert!(
        run.stderr.contains("ConfigMap in version \"v1\" cannot be handled as a ConfigMap: strict decoding error: unknown field \"datta\""),
        "{}",
        run.all()
    );
    let svc =
        "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  ports: [{port: eighty}]\n";
    app(&repo, "svc", &[("svc.yaml", svc)]);
    let run = repo.ok(&["apply", "svc"], 1);
    assert!(
        run.stderr
            .contains("cannot unmarshal string into Go struct field spec.ports[0].port"),
        "{}",
        run.all()
    );
}

#[test]
fn secrets_are_validated_as_the_api_server_does_without_showing_values() {
    let repo = Repo::new();
    let cases = [
        (
            "data: {k: 'not*base64'}",
            "illegal base64 data at input byte 3",
        ),
        (
            "type: kubernetes.io/dockerconfigjson\ndata: {other: c2VjcmV0}",
            "data[.dockerconfigjson]: Required value",
        ),
        (
            "type: kubernetes.io/tls\ndata: {tls.crt: c2VjcmV0}",
            "data[tls.key]: Required value",
        ),
    ];
    for (index, (body, expected)) in cases.iter().enumerate() {
        let dir = format!("s{index}");
        let secret = format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: s}}\n{body}\n");
        app(&repo, &dir, &[("secret.yaml", &secret)]);
        let run = repo.ok(&["apply", &dir], 1);
        assert!(run.stderr.contains(expected), "{body}:\n{}", run.all());
        assert!(!run.all().contains("c2VjcmV0"), "{}", run.all());
    }
    // An immutable Secret keeps its data.
    let immutable =
        "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nimmutable: true\ndata: {k: c2VjcmV0}\n";
    app(&repo, "imm", &[("secret.yaml", immutable)]);
    repo.ok(&["apply", "imm"], 0);
    repo.edit("imm/secret.yaml", "c2VjcmV0", "b3RoZXI=");
    let run = repo.ok(&["apply", "imm"], 1);
    assert!(
        run.stderr
            .contains("data: Forbidden: field is immutable when `immutable` is set"),
        "{}",
        run.all()
    );
    assert!(!run.all().contains("b3RoZXI="), "{}", run.all());
}

#[test]
fn missing_namespaces_fail_unless_created_on_request() {
    let repo = Repo::new();
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: system}\n";
    app(&repo, "app", &[("cm.yaml", cm)]);
    let run = repo.ok(&["apply", "app"], 1);
    assert!(
        run.stderr.contains("namespaces \"system\" not found"),
        "{}",
        run.all()
    );
    let run = repo.ok(&["apply", "app", "--create-namespace"], 0);
    assert!(
        run.stdout.contains("Namespace system: created"),
        "{}",
        run.all()
    );
    repo.ok(&["engine", "get", "ns", "system"], 0);
    // The created namespace is not the application's: pruning leaves it.
    repo.write("app/kustomization.yaml", "resources: []\n");
    repo.ok(&["apply", "app", "--prune", "--allow-empty"], 0);
    repo.ok(&["engine", "get", "ns", "system"], 0);
}

#[test]
fn reconcile_yaml_sync_options_create_namespaces() {
    let repo = Repo::new();
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n";
    app(&repo, "app", &[("cm.yaml", cm)]);
    repo.write(
        "reconcile.yaml",
        "applications:\n- name: web\n  path: app\n  namespace: team-a\n  syncOptions: [CreateNamespace=true]\n",
    );
    repo.ok(&["apply", "web"], 0);
    repo.ok(&["engine", "get", "cm", "c", "-n", "team-a"], 0);
    repo.write(
        "reconcile.yaml",
        "applications:\n- name: web\n  path: app\n  syncOptions: [Prune=maybe]\n",
    );
    let run = repo.ok(&["apply", "web"], 1);
    assert!(
        run.stderr
            .contains("applications[0].syncOptions[0]: \"Prune=maybe\" is not supported"),
        "{}",
        run.all()
    );
}

#[test]
fn objects_applied_in_an_older_served_version_plan_no_change() {
    let repo = Repo::new();
    let deploy = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: 1\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers:\n      - {name: web, image: nginx:1.25, resources: {requests: {cpu: 100m}}}\n";
    let hpa = "apiVersion: autoscaling/v1\nkind: HorizontalPodAutoscaler\nmetadata: {name: web}\nspec:\n  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}\n  minReplicas: 1\n  maxReplicas: 3\n  targetCPUUtilizationPercentage: 70\n";
    let flow = "apiVersion: flowcontrol.apiserver.k8s.io/v1beta3\nkind: FlowSchema\nmetadata: {name: batch}\nspec:\n  matchingPrecedence: 900\n  priorityLevelConfiguration: {name: workload-low}\n";
    app(
        &repo,
        "app",
        &[
            ("deploy.yaml", deploy),
            ("hpa.yaml", hpa),
            ("flow.yaml", flow),
        ],
    );
    repo.ok(&["apply", "app", "--wait"], 0);
    // The HPA controller has written its status (conditions, current metrics) meanwhile.
    repo.ok(&["engine", "advance", "1m"], 0);
    let plan = repo.ok(&["plan", "app", "--detailed-exitcode"], 0);
    assert!(!plan.stdout.contains("apiVersion"), "{}", plan.all());
    // Stored (and shown by `engine get`) in the preferred version.
    let yaml = repo
        .ok(&["engine", "get", "hpa", "web", "-o", "yaml"], 0)
        .stdout;
    assert!(yaml.contains("apiVersion: autoscaling/v2"), "{yaml}");
    assert!(yaml.contains("averageUtilization: 70"), "{yaml}");
    // A change made in the old version is planned as that change only.
    repo.edit(
        "app/hpa.yaml",
        "targetCPUUtilizationPercentage: 70",
        "targetCPUUtilizationPercentage: 60",
    );
    let plan = repo.ok(&["plan", "app", "--detailed-exitcode"], 2);
    assert!(
        plan.stdout.contains("targetCPUUtilizationPercentage"),
        "{}",
        plan.all()
    );
    assert!(!plan.stdout.contains("autoscaling/v2"), "{}", plan.all());
}

const SCALABLE_CRD: &str = "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: workers.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: workers, singular: worker, kind: Worker}
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      scale: {specReplicasPath: .spec.replicas, statusReplicasPath: .status.replicas}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              replicas: {type: integer}
";

#[test]
fn engine_scale_sets_replicas_through_the_scale_subresource() {
    let repo = Repo::new();
    let deploy = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: 1\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers:\n      - {name: web, image: nginx:1.25}\n";
    let worker =
        "apiVersion: example.com/v1\nkind: Worker\nmetadata: {name: w1}\nspec: {replicas: 1}\n";
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: plain}\ndata: {k: v}\n";
    app(
        &repo,
        "app",
        &[
            ("crd.yaml", SCALABLE_CRD),
            ("deploy.yaml", deploy),
            ("worker.yaml", worker),
            ("cm.yaml", cm),
        ],
    );
    repo.ok(&["apply", "app"], 0);
    let run = repo.ok(&["engine", "scale", "deploy/web", "--replicas", "3"], 0);
    assert_eq!(run.stdout.trim(), "deployment.apps/web scaled");
    let run = repo.ok(&["engine", "scale", "workers", "w1", "--replicas", "4"], 0);
    assert_eq!(run.stdout.trim(), "worker.example.com/w1 scaled");
    let json = repo
        .ok(&["engine", "get", "workers", "w1", "-o", "json"], 0)
        .stdout;
    assert!(json.contains("\"replicas\": 4"), "{json}");
    repo.ok(&["engine", "advance", "10s"], 0);
    let pods = repo
        .ok(
            &["engine", "get", "pods", "-l", "app=web", "--no-headers"],
            0,
        )
        .stdout;
    assert_eq!(pods.lines().count(), 3, "{pods}");
    // Refusals: nothing changes.
    let run = repo.ok(&["engine", "scale", "cm/plain", "--replicas", "2"], 1);
    assert!(run.stderr.contains("no scale subresource"), "{}", run.all());
    let run = repo.ok(&["engine", "scale", "deploy/nope", "--replicas", "2"], 1);
    assert!(
        run.stderr.contains("deployments.apps \"nope\" not found"),
        "{}",
        run.all()
    );
    let run = repo.ok(&["engine", "scale", "workers/w1", "--replicas=-1"], 1);
    assert!(
        run.stderr.contains("must be greater than or equal to 0"),
        "{}",
        run.all()
    );
    let json = repo
        .ok(&["engine", "get", "workers", "w1", "-o", "json"], 0)
        .stdout;
    assert!(json.contains("\"replicas\": 4"), "{json}");
}

fn group_crd(group: &str) -> String {
    CRD.replace("widgets.example.com", &format!("widgets.{group}"))
        .replace("group: example.com", &format!("group: {group}"))
}

#[test]
fn one_kind_name_in_two_groups_is_two_kinds() {
    let repo = Repo::new();
    let a = "apiVersion: a.example.com/v1\nkind: Widget\nmetadata: {name: w}\nspec: {size: 1}\n";
    let b = "apiVersion: b.example.com/v1\nkind: Widget\nmetadata: {name: w}\nspec: {size: 2}\n";
    let (crd_a, crd_b) = (group_crd("a.example.com"), group_crd("b.example.com"));
    app(
        &repo,
        "app",
        &[
            ("crd-a.yaml", &crd_a),
            ("crd-b.yaml", &crd_b),
            ("a.yaml", a),
            ("b.yaml", b),
        ],
    );
    repo.ok(&["apply", "app"], 0);
    let size = |group: &str| {
        let json = repo
            .ok(
                &[
                    "engine",
                    "get",
                    &format!("widgets.{group}"),
                    "w",
                    "-o",
                    "json",
                ],
                0,
            )
            .stdout;
        let object: serde_json::Value =
            serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
        (
            object["apiVersion"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            object["spec"]["size"].as_i64(),
        )
    };
    assert_eq!(size("a.example.com"), ("a.example.com/v1".into(), Some(1)));
    assert_eq!(size("b.example.com"), ("b.example.com/v1".into(), Some(2)));
    repo.ok(&["plan", "app", "--detailed-exitcode"], 0);
    // Deleting one CRD deletes its own resources only.
    repo.ok(&["engine", "delete", "crd", "widgets.a.example.com"], 0);
    repo.ok(&["engine", "get", "widgets.a.example.com", "w"], 1);
    assert_eq!(size("b.example.com"), ("b.example.com/v1".into(), Some(2)));
}

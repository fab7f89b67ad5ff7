//! `reconcile engine serve` verified with the real kubectl: the commands users type against
//! a cluster, run against the engine over HTTPS with the generated kubeconfig.
//!
//! Skipped with a message when kubectl is not installed.

mod serve_support;
use serve_support::Server;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

impl Server {
    fn state(&self) -> PathBuf {
        self.dir.path().join("engine.db")
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Runs kubectl with this server's kubeconfig (bounded to 60 s).
    fn kubectl(&self, args: &[&str]) -> Out {
        kubectl_with(&self.kubeconfig(), args, None)
    }

    /// Runs kubectl and asserts it succeeded.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert_eq!(
            out.code,
            0,
            "kubectl {}:\n{}{}",
            args.join(" "),
            out.stdout,
            out.stderr
        );
        out.stdout
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
        path
    }
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn kubectl_with(kubeconfig: &Path, args: &[&str], limit: Option<Duration>) -> Out {
    let mut child = Command::new("kubectl")
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env_remove("KUBECTL_EXTERNAL_DIFF")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("kubectl: {e}"));
    let deadline = Instant::now() + limit.unwrap_or(Duration::from_secs(60));
    let mut stdout = child.stdout.take().unwrap_or_else(|| panic!("stdout"));
    let mut stderr = child.stderr.take().unwrap_or_else(|| panic!("stderr"));
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let code = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status.code().unwrap_or(-1);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break -9;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Out {
        code,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    }
}

fn kubectl_present() -> bool {
    let found = Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("skipping: kubectl is not installed");
    }
    found
}

/// The demo's prod overlay, rendered by reconcile itself.
fn rendered_prod(server: &Server) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("overlays/prod");
    let out = Command::new(env!("CARGO_BIN_EXE_reconcile"))
        .arg("render")
        .arg(&root)
        .output()
        .unwrap_or_else(|e| panic!("render: {e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    server.write("prod.yaml", &String::from_utf8_lossy(&out.stdout))
}

fn history_revisions(server: &Server) -> Vec<String> {
    server
        .ok(&[
            "rollout",
            "history",
            "deploy/image-gallery",
            "-n",
            "gallery-prod",
        ])
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.chars().all(|c| c.is_ascii_digit()))
        .map(str::to_string)
        .collect()
}

#[test]
fn kubectl_applies_reads_and_rolls_out_the_prod_overlay() {
    if !kubectl_present() {
        return;
    }
    let server = Server::start();
    let prod = rendered_prod(&server);
    let prod = prod.to_string_lossy().into_owned();

    let applied = server.ok(&["apply", "-f", &prod]);
    assert!(
        applied.contains("namespace/gallery-prod created"),
        "{applied}"
    );
    assert!(
        applied.contains("deployment.apps/image-gallery created"),
        "{applied}"
    );
    let again = server.ok(&["apply", "-f", &prod]);
    assert!(
        again.contains("deployment.apps/image-gallery unchanged"),
        "{again}"
    );

    // kubectl diff: nothing differs, then one image does (server-side dry run).
    let same = server.kubectl(&["diff", "-f", &prod]);
    assert_eq!(same.code, 0, "{}{}", same.stdout, same.stderr);
    let changed_text = std::fs::read_to_string(&prod).unwrap_or_default().replace(
        "diamol/ch09-image-gallery:1.0",
        "diamol/ch09-image-gallery:9.9",
    );
    let changed = server.write("changed.yaml", &changed_text);
    let diff = server.kubectl(&["diff", "-f", &changed.to_string_lossy()]);
    assert_eq!(diff.code, 1, "{}{}", diff.stdout, diff.stderr);
    assert!(
        diff.stdout
            .contains("+        image: diamol/ch09-image-gallery:9.9"),
        "{}",
        diff.stdout
    );
    let image = server.ok(&[
        "get",
        "deploy",
        "image-gallery",
        "-n",
        "gallery-prod",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image}",
    ]);
    assert_eq!(
        image, "diamol/ch09-image-gallery:1.0",
        "diff must not change anything"
    );

    server.ok(&[
        "rollout",
        "status",
        "deploy/image-gallery",
        "-n",
        "gallery-prod",
        "--timeout=50s",
    ]);
    let table = server.ok(&["get", "deploy", "-n", "gallery-prod"]);
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(header, ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]);
    assert!(table.contains("image-gallery   4/4"), "{table}");
    let wide = server.ok(&["get", "deploy", "-n", "gallery-prod", "-o", "wide"]);
    assert!(
        wide.lines()
            .next()
            .unwrap_or_default()
            .contains("CONTAINERS   IMAGES"),
        "{wide}"
    );
    let pods = server.ok(&[
        "get",
        "pods",
        "-n",
        "gallery-prod",
        "-l",
        "app=image-gallery",
        "-o",
        "json",
    ]);
    let pods: serde_json::Value = serde_json::from_str(&pods).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(pods["items"].as_array().map(Vec::len), Some(4));
    let names = server.ok(&["get", "ns", "-o", "jsonpath={.items[*].metadata.name}"]);
    assert!(names.split(' ').any(|n| n == "gallery-prod"), "{names}");
    let running = server.ok(&[
        "get",
        "pods",
        "-A",
        "--field-selector",
        "status.phase=Running",
        "-o",
        "name",
    ]);
    assert!(running.lines().count() >= 9, "{running}");
    let described = server.ok(&["describe", "deploy", "image-gallery", "-n", "gallery-prod"]);
    assert!(described.contains("NewReplicaSet:"), "{described}");
    assert!(described.contains("ScalingReplicaSet"), "{described}");

    // A watch receives the rollout's events.
    let kubeconfig = server.kubeconfig();
    let watcher = std::thread::spawn(move || {
        kubectl_with(
            &kubeconfig,
            &[
                "get",
                "rs",
                "-n",
                "gallery-prod",
                "-w",
                "-l",
                "app=image-gallery",
            ],
            Some(Duration::from_secs(8)),
        )
    });
    std::thread::sleep(Duration::from_millis(1500));
    let set = server.ok(&[
        "set",
        "image",
        "deploy/image-gallery",
        "web=diamol/ch09-image-gallery:2.0",
        "-n",
        "gallery-prod",
    ]);
    assert!(
        set.contains("deployment.apps/image-gallery image updated"),
        "{set}"
    );
    server.ok(&[
        "rollout",
        "status",
        "deploy/image-gallery",
        "-n",
        "gallery-prod",
        "--timeout=50s",
    ]);
    let watched = watcher.join().unwrap_or_else(|_| panic!("watcher"));
    assert!(
        watched.stdout.lines().count() >= 4,
        "watch saw: {}{}",
        watched.stdout,
        watched.stderr
    );
    assert_eq!(history_revisions(&server), ["1", "2"]);

    let undo = server.ok(&[
        "rollout",
        "undo",
        "deploy/image-gallery",
        "-n",
        "gallery-prod",
    ]);
    assert!(undo.contains("rolled back"), "{undo}");
    // The old ReplicaSet comes back as revision 3, as on a real cluster.
    assert_eq!(history_revisions(&server), ["2", "3"]);
    server.ok(&[
        "rollout",
        "restart",
        "deploy/image-gallery",
        "-n",
        "gallery-prod",
    ]);
    assert_eq!(history_revisions(&server), ["2", "3", "4"]);

    let scaled = server.ok(&["scale", "deploy/iotd", "--replicas=1", "-n", "gallery-prod"]);
    assert!(scaled.contains("deployment.apps/iotd scaled"), "{scaled}");
    let replicas = server.ok(&[
        "get",
        "deploy",
        "iotd",
        "-n",
        "gallery-prod",
        "-o",
        "jsonpath={.spec.replicas}",
    ]);
    assert_eq!(replicas, "1");

    // Cascading delete: orphan keeps the ReplicaSet, background takes the pods along.
    server.ok(&[
        "delete",
        "deploy/accesslog",
        "-n",
        "gallery-prod",
        "--cascade=orphan",
    ]);
    let rs = server.ok(&[
        "get",
        "rs",
        "-n",
        "gallery-prod",
        "-l",
        "app=accesslog",
        "-o",
        "name",
    ]);
    assert_eq!(rs.lines().count(), 1, "{rs}");
    server.ok(&["delete", "deploy/iotd", "-n", "gallery-prod"]);
    let gone = server.kubectl(&["get", "deploy", "iotd", "-n", "gallery-prod"]);
    assert_eq!(gone.code, 1);
    assert!(
        gone.stderr
            .contains("Error from server (NotFound): deployments.apps \"iotd\" not found"),
        "{}",
        gone.stderr
    );

    let resources = server.ok(&["api-resources"]);
    assert!(
        resources
            .lines()
            .any(|l| l.starts_with("deployments") && l.contains("deploy")),
        "{resources}"
    );
}

#[test]
fn server_side_apply_conflicts_with_another_manager_unless_forced() {
    if !kubectl_present() {
        return;
    }
    let server = Server::start();
    let cm = |value: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: default\ndata:\n  mode: {value}\n"
        )
    };
    let first = server.write("a.yaml", &cm("fast"));
    let out = server.ok(&["apply", "--server-side", "-f", &first.to_string_lossy()]);
    assert!(
        out.contains("configmap/settings serverside-applied"),
        "{out}"
    );
    let second = server.write("b.yaml", &cm("slow"));
    let conflict = server.kubectl(&[
        "apply",
        "--server-side",
        "--field-manager=ops",
        "-f",
        &second.to_string_lossy(),
    ]);
    assert_eq!(conflict.code, 1);
    assert!(
        conflict
            .stderr
            .contains("Apply failed with 1 conflict: conflict with \"kubectl\""),
        "{}",
        conflict.stderr
    );
    assert!(
        conflict.stderr.contains(".data.mode"),
        "{}",
        conflict.stderr
    );
    let mode = server.ok(&["get", "cm", "settings", "-o", "jsonpath={.data.mode}"]);
    assert_eq!(mode, "fast", "a conflict changes nothing");
    server.ok(&[
        "apply",
        "--server-side",
        "--field-manager=ops",
        "--force-conflicts",
        "-f",
        &second.to_string_lossy(),
    ]);
    let mode = server.ok(&["get", "cm", "settings", "-o", "jsonpath={.data.mode}"]);
    assert_eq!(mode, "slow");
    let managers = server.ok(&[
        "get",
        "cm",
        "settings",
        "--show-managed-fields",
        "-o",
        "jsonpath={.metadata.managedFields[*].manager}",
    ]);
    assert!(managers.contains("ops"), "{managers}");
}

#[test]
fn requests_without_the_token_are_rejected() {
    if !kubectl_present() {
        return;
    }
    let server = Server::start();
    let text = std::fs::read_to_string(server.kubeconfig()).unwrap_or_default();
    let token_line = text
        .lines()
        .find(|l| l.trim_start().starts_with("token:"))
        .unwrap_or_default();
    let forged = server.write(
        "forged",
        &text.replace(token_line, "    token: not-the-token"),
    );
    let out = kubectl_with(&forged, &["get", "pods"], None);
    assert_eq!(out.code, 1);
    // kubectl words a 401 to its discovery requests this way.
    assert!(
        out.stderr
            .contains("error: You must be logged in to the server ("),
        "{}",
        out.stderr
    );
}

#[test]
fn reconcile_apply_and_kubectl_see_the_same_objects() {
    if !kubectl_present() {
        return;
    }
    let server = Server::start();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("overlays/prod");
    let target = format!("engine:{}", server.state().display());
    let out = Command::new(env!("CARGO_BIN_EXE_reconcile"))
        .arg("apply")
        .arg(&root)
        .args(["--target", &target])
        .current_dir(server.path())
        .output()
        .unwrap_or_else(|e| panic!("reconcile apply: {e}"));
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The server picks up the other process's writes.
    let deadline = Instant::now() + Duration::from_secs(10);
    let names = loop {
        let names = server.ok(&["get", "deploy", "-n", "gallery-prod", "-o", "name"]);
        if names.lines().count() == 3 || Instant::now() > deadline {
            break names;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        names.lines().collect::<Vec<_>>(),
        [
            "deployment.apps/accesslog",
            "deployment.apps/image-gallery",
            "deployment.apps/iotd"
        ]
    );
    // And the other way: what kubectl creates, reconcile's engine commands see.
    let cm = server.write("cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-kubectl\n  namespace: gallery-prod\ndata:\n  a: b\n");
    server.ok(&["apply", "-f", &cm.to_string_lossy()]);
    let seen = Command::new(env!("CARGO_BIN_EXE_reconcile"))
        .args(["engine", "get", "cm", "-n", "gallery-prod", "--state"])
        .arg(server.state())
        .output()
        .unwrap_or_else(|e| panic!("engine get: {e}"));
    let seen = String::from_utf8_lossy(&seen.stdout);
    assert!(seen.contains("from-kubectl"), "{seen}");
}

#[test]
fn kubectl_create_sends_protobuf_and_the_server_reads_it() {
    if !kubectl_present() {
        return;
    }
    let server = Server::start();
    let out = server.ok(&[
        "create",
        "configmap",
        "settings",
        "--from-literal=mode=fast",
    ]);
    assert_eq!(out.trim(), "configmap/settings created");
    let mode = server.ok(&["get", "cm", "settings", "-o", "jsonpath={.data.mode}"]);
    assert_eq!(mode, "fast");
    // The create is recorded as an Update by kubectl's field manager.
    let managers = server.ok(&[
        "get",
        "cm",
        "settings",
        "--show-managed-fields",
        "-o",
        "jsonpath={.metadata.managedFields[*].manager}/{.metadata.managedFields[*].operation}",
    ]);
    assert_eq!(managers, "kubectl-create/Update");

    let out = server.ok(&[
        "create",
        "secret",
        "generic",
        "db",
        "--from-literal=password=hunter2",
    ]);
    assert_eq!(out.trim(), "secret/db created");
    let data = server.ok(&[
        "get",
        "secret",
        "db",
        "-o",
        "jsonpath={.data.password}/{.type}",
    ]);
    assert_eq!(data, "aHVudGVyMg==/Opaque");

    let out = server.ok(&[
        "create",
        "deployment",
        "web",
        "--image=nginx:1.27",
        "--replicas=2",
        "--port=80",
    ]);
    assert_eq!(out.trim(), "deployment.apps/web created");
    server.ok(&["rollout", "status", "deploy/web", "--timeout=50s"]);
    let ready = server.ok(&[
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={.status.readyReplicas}/{.spec.template.spec.containers[0].ports[0].containerPort}",
    ]);
    assert_eq!(ready, "2/80");

    // A name the API server refuses is refused the same way when it comes as protobuf.
    let bad = server.kubectl(&["create", "configmap", "Not_Valid", "--from-literal=a=b"]);
    assert_eq!(bad.code, 1, "{}", bad.stdout);
    assert!(bad.stderr.contains("Not_Valid"), "{}", bad.stderr);
    let names = server.ok(&["get", "cm", "-o", "name"]);
    assert!(!names.contains("Not_Valid"), "{names}");
}

#[test]
fn kubectl_explain_reads_the_served_openapi_and_strict_validation_still_works() {
    if !kubectl_present() {
        return;
    }
    let server = Server::start();
    let explained = server.ok(&["explain", "deployment.spec"]);
    assert!(explained.contains("Deployment"), "{explained}");
    assert!(explained.contains("<DeploymentSpec>"), "{explained}");
    for field in ["replicas", "selector", "strategy", "template"] {
        assert!(
            explained.lines().any(|l| l.trim_start().starts_with(field)),
            "{field} missing:\n{explained}"
        );
    }
    // Descriptions are the Kubernetes ones.
    assert!(
        explained.contains("Specification of the desired behavior of the Deployment."),
        "{explained}"
    );
    let pods = server.ok(&["explain", "pod.spec.containers.image"]);
    assert!(pods.contains("<string>"), "{pods}");
    assert!(pods.contains("Container image name."), "{pods}");

    // A custom resource is explained from its CRD's schema, once the CRD is created.
    let crd = server.write(
        "crd.yaml",
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: crontabs.stable.example.com\nspec:\n  group: stable.example.com\n  scope: Namespaced\n  names:\n    plural: crontabs\n    singular: crontab\n    kind: CronTab\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    schema:\n      openAPIV3Schema:\n        type: object\n        properties:\n          spec:\n            type: object\n            description: What the tab runs and when.\n            properties:\n              cronSpec:\n                type: string\n                description: The schedule, in cron format.\n",
    );
    server.ok(&["apply", "-f", &crd.to_string_lossy()]);
    let tab = server.ok(&["explain", "crontab.spec"]);
    assert!(tab.contains("What the tab runs and when."), "{tab}");
    assert!(
        tab.contains("cronSpec") && tab.contains("<string>"),
        "{tab}"
    );
    let field = server.ok(&["explain", "crontab.spec.cronSpec"]);
    assert!(field.contains("The schedule, in cron format."), "{field}");

    let typo = server.write(
        "typo.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: typo\ndata:\n  a: b\ndta:\n  c: d\n",
    );
    let refused = server.kubectl(&["apply", "--validate=strict", "-f", &typo.to_string_lossy()]);
    assert_eq!(refused.code, 1, "{}", refused.stdout);
    assert!(
        refused.stderr.contains("unknown field \"dta\""),
        "{}",
        refused.stderr
    );
    let good = server.write(
        "good.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: good\ndata:\n  a: b\n",
    );
    let out = server.ok(&["apply", "--validate=strict", "-f", &good.to_string_lossy()]);
    assert!(out.contains("configmap/good created"), "{out}");
}

#[test]
fn delete_by_selector_and_deletecollection_and_watching_events() {
    if !kubectl_present() {
        return;
    }
    let server = Server::start();
    for (name, app) in [("a1", "x"), ("a2", "x"), ("b1", "y")] {
        server.ok(&["create", "configmap", name, "--from-literal=k=v"]);
        server.ok(&["label", "cm", name, &format!("app={app}")]);
    }
    let out = server.ok(&["delete", "cm", "-l", "app=x"]);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["configmap \"a1\" deleted", "configmap \"a2\" deleted"]
    );
    // The collection verb itself, as API clients (the kube crate) call it.
    server.ok(&["create", "configmap", "c1", "--from-literal=k=v"]);
    server.ok(&["label", "cm", "c1", "app=z"]);
    let dry = server.ok(&[
        "delete",
        "--raw",
        "/api/v1/namespaces/default/configmaps?labelSelector=app%3Dz&dryRun=All",
    ]);
    assert!(dry.contains("\"c1\""), "{dry}");
    server.ok(&["get", "cm", "c1"]);
    server.ok(&[
        "delete",
        "--raw",
        "/api/v1/namespaces/default/configmaps?labelSelector=app%3Dz",
    ]);
    let left = server.ok(&["get", "cm", "-o", "name"]);
    assert_eq!(left.lines().collect::<Vec<_>>(), ["configmap/b1"]);
    server.ok(&["delete", "cm", "--all"]);
    let none = server.kubectl(&["get", "cm"]);
    assert!(
        none.stderr.contains("No resources found"),
        "{}",
        none.stderr
    );

    // `kubectl get events -w` receives the events of a scale-up as it happens.
    server.ok(&["create", "deployment", "web", "--image=nginx:1.27"]);
    server.ok(&["rollout", "status", "deploy/web", "--timeout=50s"]);
    let kubeconfig = server.kubeconfig();
    let watcher = std::thread::spawn(move || {
        kubectl_with(
            &kubeconfig,
            &["get", "events", "-w"],
            Some(Duration::from_secs(6)),
        )
    });
    std::thread::sleep(Duration::from_millis(1500));
    server.ok(&["scale", "deploy/web", "--replicas=3"]);
    let watched = watcher.join().unwrap_or_else(|_| panic!("watcher"));
    assert!(
        watched
            .stdout
            .lines()
            .any(|l| l.contains("ScalingReplicaSet") && l.contains("to 3")),
        "watch saw: {}{}",
        watched.stdout,
        watched.stderr
    );
}

#[test]
fn kubectl_auth_can_i_and_whoami_follow_rbac_for_token_users() {
    if !kubectl_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let tokens = dir.path().join("tokens.csv");
    std::fs::write(&tokens, "jane-token-0123,jane,u-7,\"dev,qa\"\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let tokens = tokens.display().to_string();
    let child = serve_support::spawn_args(dir.path(), &["--token-auth-file", &tokens]);
    let server = Server { child, dir };
    let jane = serve_support::kubeconfig_for(server.path(), "jane", "jane-token-0123");
    let as_jane = |args: &[&str]| kubectl_with(&jane, args, None);

    let whoami = as_jane(&["auth", "whoami"]);
    assert_eq!(whoami.code, 0, "{}", whoami.stderr);
    assert!(
        whoami.stdout.contains("jane")
            && whoami.stdout.contains("u-7")
            && whoami.stdout.contains("[dev qa system:authenticated]"),
        "{}",
        whoami.stdout
    );
    let admin = server.ok(&["auth", "whoami"]);
    assert!(admin.contains("system:masters"), "{admin}");

    let denied = as_jane(&["get", "configmaps", "-n", "default"]);
    assert_eq!(denied.code, 1);
    assert!(
        denied.stderr.contains(
            "Error from server (Forbidden): configmaps is forbidden: User \"jane\" cannot list resource \"configmaps\" in API group \"\" in the namespace \"default\""
        ),
        "{}",
        denied.stderr
    );
    let no = as_jane(&["auth", "can-i", "list", "configmaps", "-n", "default"]);
    assert_eq!((no.code, no.stdout.trim()), (1, "no"), "{}", no.stderr);

    // The admin grants the group `qa` a read-only view of default (kubectl's own commands).
    server.ok(&[
        "create",
        "role",
        "reader",
        "-n",
        "default",
        "--verb=get,list,watch",
        "--resource=configmaps,deployments.apps",
    ]);
    server.ok(&[
        "create",
        "rolebinding",
        "qa-reads",
        "-n",
        "default",
        "--role=reader",
        "--group=qa",
    ]);
    let yes = as_jane(&["auth", "can-i", "list", "deployments.apps", "-n", "default"]);
    assert_eq!((yes.code, yes.stdout.trim()), (0, "yes"), "{}", yes.stderr);
    let patch = as_jane(&[
        "auth",
        "can-i",
        "patch",
        "deployments.apps",
        "-n",
        "default",
    ]);
    assert_eq!(patch.stdout.trim(), "no");
    let elsewhere = as_jane(&["auth", "can-i", "list", "configmaps", "-n", "kube-system"]);
    assert_eq!(elsewhere.stdout.trim(), "no");
    let list = as_jane(&["auth", "can-i", "--list", "-n", "default"]);
    assert_eq!(list.code, 0, "{}", list.stderr);
    assert!(
        list.stdout.contains("configmaps") && list.stdout.contains("[get list watch]"),
        "{}",
        list.stdout
    );
    let read = as_jane(&["get", "configmaps", "-n", "default"]);
    assert_eq!(read.code, 0, "{}", read.stderr);
}

#[test]
fn kubectl_prints_the_words_of_a_crds_validation_rules_and_their_warnings() {
    if !kubectl_present() {
        return;
    }
    let server = Server::start();
    let crd = server.write(
        "crd.yaml",
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: gadgets.example.com\nspec:\n  group: example.com\n  scope: Namespaced\n  names: {plural: gadgets, singular: gadget, kind: Gadget}\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    schema:\n      openAPIV3Schema:\n        type: object\n        properties:\n          spec:\n            type: object\n            x-kubernetes-validations:\n            - {rule: \"self.min <= self.max\", message: \"min must not exceed max\"}\n            - {rule: \"!has(self.at) || timestamp(self.at) > timestamp('2020-01-01T00:00:00Z')\"}\n            properties:\n              min: {type: integer}\n              max: {type: integer}\n              at: {type: string}\n              region:\n                type: string\n                x-kubernetes-validations:\n                - {rule: self == oldSelf, message: region is immutable}\n",
    );
    server.ok(&["apply", "-f", &crd.to_string_lossy()]);
    let gadget = |file: &str, spec: &str| {
        server.write(
            file,
            &format!(
                "apiVersion: example.com/v1\nkind: Gadget\nmetadata: {{name: g1}}\nspec: {spec}\n"
            ),
        )
    };
    let bad = gadget("bad.yaml", "{min: 3, max: 1, region: eu}");
    let refused = server.kubectl(&["apply", "-f", &bad.to_string_lossy()]);
    assert_eq!(refused.code, 1, "{}", refused.stdout);
    assert!(
        refused.stderr.contains(
            "The Gadget \"g1\" is invalid: spec: Invalid value: \"object\": min must not exceed max"
        ),
        "{}",
        refused.stderr
    );
    let good = gadget(
        "good.yaml",
        "{min: 1, max: 3, region: eu, at: \"2021-01-01T00:00:00Z\"}",
    );
    let created = server.kubectl(&["apply", "-f", &good.to_string_lossy()]);
    assert_eq!(created.code, 0, "{}", created.stderr);
    assert!(
        created.stdout.contains("gadget.example.com/g1 created"),
        "{}",
        created.stdout
    );
    assert!(
        created
            .stderr
            .contains("Warning: spec: x-kubernetes-validations rule")
            && created.stderr.contains("was not evaluated"),
        "{}",
        created.stderr
    );
    let moved = gadget("moved.yaml", "{min: 1, max: 3, region: us}");
    let refused = server.kubectl(&["apply", "-f", &moved.to_string_lossy()]);
    assert_eq!(refused.code, 1, "{}", refused.stdout);
    assert!(
        refused.stderr.contains(
            "The Gadget \"g1\" is invalid: spec.region: Invalid value: \"string\": region is immutable"
        ),
        "{}",
        refused.stderr
    );
}

/// kubectl with this server's kubeconfig and its own discovery cache (`cache`).
fn kubectl_cached(server: &Server, cache: &Path, args: &[&str]) -> Out {
    let mut all = vec!["--cache-dir", cache.to_str().unwrap_or_default()];
    all.extend_from_slice(args);
    server.kubectl(&all)
}

#[test]
fn discovery_follows_the_crds_created_deleted_and_created_again() {
    if !kubectl_present() {
        return;
    }
    let server = Server::start();
    // One discovery cache for the whole story, as a user's kubectl keeps it: `api-resources`
    // and `api-versions` refresh it, and `get` refreshes it when a word is unknown.
    let cache = server.path().join("kube-cache");
    let ok = |args: &[&str]| {
        let out = kubectl_cached(&server, &cache, args);
        assert_eq!(
            out.code, 0,
            "kubectl {args:?}:\n{}{}",
            out.stdout, out.stderr
        );
        out.stdout
    };
    let crd = server.write(
        "crd.yaml",
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: widgets.example.com\nspec:\n  group: example.com\n  scope: Namespaced\n  names:\n    plural: widgets\n    singular: widget\n    kind: Widget\n    shortNames: [wd]\n  versions:\n  - name: v1beta1\n    served: true\n    storage: false\n    schema:\n      openAPIV3Schema:\n        type: object\n        x-kubernetes-preserve-unknown-fields: true\n  - name: v1\n    served: true\n    storage: true\n    schema:\n      openAPIV3Schema:\n        type: object\n        x-kubernetes-preserve-unknown-fields: true\n",
    );
    let crd = crd.to_string_lossy().to_string();
    let widget = server.write(
        "widget.yaml",
        "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w1\n  namespace: default\nspec:\n  size: 3\n",
    );
    let widget = widget.to_string_lossy().to_string();
    let lists_widgets = |listing: &str| listing.lines().any(|l| l.starts_with("widgets "));

    ok(&["apply", "-f", &crd]);
    assert!(lists_widgets(&ok(&["api-resources"])));
    let versions = ok(&["api-versions"]);
    assert!(versions.contains("example.com/v1beta1"), "{versions}");
    ok(&["apply", "-f", &widget]);
    assert!(ok(&["get", "wd"]).contains("w1"));

    // A version turned `served: false` leaves discovery; the other stays.
    let unserved = std::fs::read_to_string(&crd).unwrap_or_default().replacen(
        "served: true",
        "served: false",
        1,
    );
    let unserved_file = server.write("crd-unserved.yaml", &unserved);
    ok(&["apply", "-f", &unserved_file.to_string_lossy()]);
    let versions = ok(&["api-versions"]);
    assert!(
        versions.contains("example.com/v1\n") && !versions.contains("example.com/v1beta1"),
        "{versions}"
    );

    // Being deleted (a finalizer holds the CRD): listed with the read and delete verbs only,
    // its objects gone, and creates refused with kube-apiserver's words.
    ok(&[
        "patch",
        "crd",
        "widgets.example.com",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":["example.com/hold"]}}"#,
    ]);
    ok(&["delete", "crd", "widgets.example.com", "--wait=false"]);
    let wide = ok(&["api-resources", "-o", "wide"]);
    let row = wide
        .lines()
        .find(|l| l.starts_with("widgets "))
        .unwrap_or_else(|| panic!("terminating CRD not listed:\n{wide}"));
    assert!(
        row.contains(" delete,deletecollection,get,list,watch "),
        "{row}"
    );
    let refused = kubectl_cached(&server, &cache, &["create", "-f", &widget]);
    assert_eq!(refused.code, 1, "{}", refused.stdout);
    assert!(
        refused
            .stderr
            .contains("create not allowed while custom resource definition is terminating"),
        "{}",
        refused.stderr
    );

    // Gone: not in discovery, and kubectl says what it says of any unknown word.
    ok(&[
        "patch",
        "crd",
        "widgets.example.com",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
    ]);
    assert!(!lists_widgets(&ok(&["api-resources"])));
    assert!(!ok(&["api-versions"]).contains("example.com"));
    for word in ["widgets", "wd"] {
        let gone = kubectl_cached(&server, &cache, &["get", word]);
        assert_eq!(gone.code, 1, "{}", gone.stdout);
        assert_eq!(
            gone.stderr.trim(),
            format!("error: the server doesn't have a resource type \"{word}\""),
        );
    }
    // The engine's own CLI agrees.
    let own = std::process::Command::new(env!("CARGO_BIN_EXE_reconcile"))
        .args(["engine", "get", "widgets", "--state"])
        .arg(server.state())
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(own.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&own.stderr)
            .contains("error: the server doesn't have a resource type \"widgets\""),
        "{}",
        String::from_utf8_lossy(&own.stderr)
    );
    // A custom resource of a kind no CRD defines: kubectl's own refusal.
    let orphan = kubectl_cached(&server, &cache, &["apply", "-f", &widget]);
    assert_eq!(orphan.code, 1, "{}", orphan.stdout);
    assert!(
        orphan
            .stderr
            .contains("no matches for kind \"Widget\" in version \"example.com/v1\""),
        "{}",
        orphan.stderr
    );

    // Created again: served again, in the same server.
    ok(&["apply", "-f", &crd]);
    assert!(lists_widgets(&ok(&["api-resources"])));
    ok(&["apply", "-f", &widget]);
    let listed = ok(&["get", "widgets"]);
    assert!(listed.contains("w1"), "{listed}");
}

#[test]
fn printer_columns_and_explain_of_a_custom_kind_read_as_from_an_api_server() {
    if !kubectl_present() {
        return;
    }
    let server = Server::start();
    let crd = server.write(
        "crd.yaml",
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: gizmos.example.com\nspec:\n  group: example.com\n  scope: Namespaced\n  names:\n    plural: gizmos\n    singular: gizmo\n    kind: Gizmo\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    additionalPrinterColumns:\n    - {name: Size, type: integer, jsonPath: .spec.size}\n    - {name: Owner, type: string, jsonPath: .spec.owner, priority: 1}\n    - {name: Port, type: integer, jsonPath: '.spec.ports[*].port'}\n    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}\n    schema:\n      openAPIV3Schema:\n        type: object\n        properties:\n          spec:\n            type: object\n            description: What the gizmo is made of.\n            properties:\n              size:\n                type: integer\n                description: How big it is.\n              owner: {type: string}\n              ports:\n                type: array\n                items:\n                  type: object\n                  properties:\n                    port: {type: integer}\n",
    );
    server.ok(&["apply", "-f", &crd.to_string_lossy()]);
    let gizmo = server.write(
        "gizmo.yaml",
        "apiVersion: example.com/v1\nkind: Gizmo\nmetadata:\n  name: g1\n  namespace: default\nspec:\n  size: 3\n  owner: ops\n  ports:\n  - port: 80\n  - port: 443\n",
    );
    server.ok(&["apply", "-f", &gizmo.to_string_lossy()]);

    // Declared order; a priority column only with -o wide; the first value a path finds.
    let rows = |text: &str| -> Vec<Vec<String>> {
        text.lines()
            .map(|l| l.split_whitespace().map(str::to_string).collect())
            .collect()
    };
    let narrow = rows(&server.ok(&["get", "gizmos"]));
    assert_eq!(narrow[0], ["NAME", "SIZE", "PORT", "AGE"], "{narrow:?}");
    assert_eq!(narrow[1][..3], ["g1", "3", "80"], "{narrow:?}");
    let wide = rows(&server.ok(&["get", "gizmos", "-o", "wide"]));
    assert_eq!(
        wide[0],
        ["NAME", "SIZE", "OWNER", "PORT", "AGE"],
        "{wide:?}"
    );
    assert_eq!(wide[1][..4], ["g1", "3", "ops", "80"], "{wide:?}");
    // The engine's own `get` prints the same columns.
    let own = std::process::Command::new(env!("CARGO_BIN_EXE_reconcile"))
        .args(["engine", "get", "gizmos", "-o", "wide", "--state"])
        .arg(server.state())
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let own = rows(&String::from_utf8_lossy(&own.stdout));
    assert_eq!(own.first(), wide.first(), "{own:?}");

    let explained = server.ok(&["explain", "gizmo.spec"]);
    for expected in [
        "KIND:       Gizmo",
        "What the gizmo is made of.",
        "size\t<integer>",
        "How big it is.",
        "ports\t<[]Object>",
    ] {
        assert!(explained.contains(expected), "{expected}:\n{explained}");
    }
}

/// serve with `--token-auth-file` for jane (group `dev`) and olga (group `ops`); their
/// kubeconfigs.
fn serve_with_users() -> (Server, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let tokens = dir.path().join("tokens.csv");
    std::fs::write(
        &tokens,
        "jane-token-0123,jane,u-7,\"dev\"\nolga-token-4567,olga,u-8,\"ops\"\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let tokens = tokens.display().to_string();
    let child = serve_support::spawn_args(dir.path(), &["--token-auth-file", &tokens]);
    let server = Server { child, dir };
    let jane = serve_support::kubeconfig_for(server.path(), "jane", "jane-token-0123");
    let olga = serve_support::kubeconfig_for(server.path(), "olga", "olga-token-4567");
    (server, jane, olga)
}

/// Asserts kubectl failed with a message containing `expected`.
fn refused(out: Out, expected: &str) {
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains(expected), "{}", out.stderr);
}

#[test]
fn default_view_edit_and_admin_roles_grow_by_aggregation() {
    if !kubectl_present() {
        return;
    }
    let (server, jane, olga) = serve_with_users();
    let as_jane = |args: &[&str]| kubectl_with(&jane, args, None);
    let as_olga = |args: &[&str]| kubectl_with(&olga, args, None);
    server.ok(&["create", "namespace", "shop"]);
    server.ok(&[
        "create",
        "configmap",
        "settings",
        "-n",
        "shop",
        "--from-literal=a=b",
    ]);
    server.ok(&[
        "create",
        "secret",
        "generic",
        "key",
        "-n",
        "shop",
        "--from-literal=k=v",
    ]);
    server.ok(&[
        "create",
        "rolebinding",
        "dev-view",
        "-n",
        "shop",
        "--clusterrole=view",
        "--group=dev",
    ]);
    server.ok(&[
        "create",
        "rolebinding",
        "ops-edit",
        "-n",
        "shop",
        "--clusterrole=edit",
        "--group=ops",
    ]);

    // view: reads, but not Secrets, and no writes.
    let read = as_jane(&["get", "configmap", "settings", "-n", "shop"]);
    assert_eq!(read.code, 0, "{}", read.stderr);
    refused(
        as_jane(&["get", "secret", "key", "-n", "shop"]),
        "secrets \"key\" is forbidden: User \"jane\" cannot get resource \"secrets\" in API group \"\" in the namespace \"shop\"",
    );
    refused(
        as_jane(&["create", "configmap", "more", "-n", "shop"]),
        "User \"jane\" cannot create resource \"configmaps\"",
    );
    // edit: creates Deployments and reads Secrets.
    let created = as_olga(&["create", "deployment", "web", "-n", "shop", "--image=nginx"]);
    assert_eq!(created.code, 0, "{}", created.stderr);
    let secret = as_olga(&["get", "secret", "key", "-n", "shop"]);
    assert_eq!(secret.code, 0, "{}", secret.stderr);

    // A CRD's ClusterRole labelled aggregate-to-view extends view (and so edit and admin),
    // written into the roles as the aggregation controller does.
    let widgets = as_jane(&["auth", "can-i", "list", "widgets.example.com", "-n", "shop"]);
    assert_eq!(widgets.stdout.trim(), "no");
    let crd = server.write(
        "widgets.yaml",
        r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  names: {kind: Widget, plural: widgets, singular: widget}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: widgets-view
  labels:
    rbac.authorization.k8s.io/aggregate-to-view: "true"
rules:
- apiGroups: [example.com]
  resources: [widgets]
  verbs: [get, list, watch]
"#,
    );
    server.ok(&["apply", "-f", &crd.display().to_string()]);
    let widgets = as_jane(&["auth", "can-i", "list", "widgets.example.com", "-n", "shop"]);
    assert_eq!(
        (widgets.code, widgets.stdout.trim()),
        (0, "yes"),
        "{}",
        widgets.stderr
    );
    let list = as_jane(&["get", "widgets", "-n", "shop"]);
    assert_eq!(list.code, 0, "{}", list.stderr);
    for role in ["view", "edit", "admin"] {
        let yaml = server.ok(&["get", "clusterrole", role, "-o", "yaml"]);
        assert!(yaml.contains("- example.com"), "{role}: {yaml}");
    }
    let view = server.ok(&["get", "clusterrole", "view", "-o", "yaml"]);
    assert!(!view.contains("- secrets"), "{view}");
}

#[test]
fn impersonation_and_escalation_follow_rbac() {
    if !kubectl_present() {
        return;
    }
    let (server, jane, olga) = serve_with_users();
    let as_jane = |args: &[&str]| kubectl_with(&jane, args, None);
    let as_olga = |args: &[&str]| kubectl_with(&olga, args, None);
    server.ok(&["create", "namespace", "shop"]);
    server.ok(&[
        "create",
        "rolebinding",
        "dev-view",
        "-n",
        "shop",
        "--clusterrole=view",
        "--group=dev",
    ]);

    // The admin acting as jane is refused what jane is refused; an impersonated user has only
    // the groups asked for (and system:authenticated).
    refused(
        server.kubectl(&["get", "pods", "-n", "shop", "--as", "jane"]),
        "pods is forbidden: User \"jane\" cannot list resource \"pods\" in API group \"\" in the namespace \"shop\"",
    );
    let no = server.kubectl(&[
        "auth", "can-i", "list", "pods", "-n", "shop", "--as", "jane",
    ]);
    assert_eq!((no.code, no.stdout.trim()), (1, "no"), "{}", no.stderr);
    let yes = server.kubectl(&[
        "auth",
        "can-i",
        "list",
        "pods",
        "-n",
        "shop",
        "--as",
        "jane",
        "--as-group",
        "dev",
    ]);
    assert_eq!((yes.code, yes.stdout.trim()), (0, "yes"), "{}", yes.stderr);
    let pods = server.kubectl(&[
        "get",
        "pods",
        "-n",
        "shop",
        "--as",
        "jane",
        "--as-group",
        "dev",
    ]);
    assert_eq!(pods.code, 0, "{}", pods.stderr);
    let whoami = server.ok(&["auth", "whoami", "--as", "jane", "--as-group", "dev"]);
    assert!(
        whoami.contains("jane") && whoami.contains("[dev system:authenticated]"),
        "{whoami}"
    );
    // jane may not impersonate, until granted it on the user olga only.
    refused(
        as_jane(&["get", "pods", "-n", "shop", "--as", "olga"]),
        "users \"olga\" is forbidden: User \"jane\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope",
    );
    server.ok(&[
        "create",
        "clusterrole",
        "impersonate-olga",
        "--verb=impersonate",
        "--resource=users",
        "--resource-name=olga",
    ]);
    server.ok(&[
        "create",
        "clusterrolebinding",
        "jane-as-olga",
        "--clusterrole=impersonate-olga",
        "--user=jane",
    ]);
    let as_olga_whoami = as_jane(&["auth", "whoami", "--as", "olga"]);
    assert_eq!(as_olga_whoami.code, 0, "{}", as_olga_whoami.stderr);
    assert!(
        as_olga_whoami.stdout.contains("olga"),
        "{}",
        as_olga_whoami.stdout
    );
    refused(
        as_jane(&[
            "get",
            "secrets",
            "-n",
            "shop",
            "--as",
            "olga",
            "--as-group",
            "system:masters",
        ]),
        "groups \"system:masters\" is forbidden: User \"jane\" cannot impersonate resource \"groups\"",
    );

    // Escalation: olga administers shop (`admin`); she may write roles and bindings with
    // what she holds, nothing more, and nothing is written when refused.
    server.ok(&[
        "create",
        "rolebinding",
        "ops-admin",
        "-n",
        "shop",
        "--clusterrole=admin",
        "--group=ops",
    ]);
    let held = as_olga(&[
        "create",
        "role",
        "secret-reader",
        "-n",
        "shop",
        "--verb=get",
        "--resource=secrets",
    ]);
    assert_eq!(held.code, 0, "{}", held.stderr);
    refused(
        as_olga(&[
            "create",
            "role",
            "node-reader",
            "-n",
            "shop",
            "--verb=get,list",
            "--resource=nodes,secrets",
        ]),
        "roles.rbac.authorization.k8s.io \"node-reader\" is forbidden: user \"olga\" (groups=[\"ops\" \"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"\"], Resources:[\"nodes\"], Verbs:[\"get\" \"list\"]}",
    );
    refused(
        server.kubectl(&["get", "role", "node-reader", "-n", "shop"]),
        "NotFound",
    );
    refused(
        as_olga(&[
            "create",
            "rolebinding",
            "all",
            "-n",
            "shop",
            "--clusterrole=cluster-admin",
            "--user=olga",
        ]),
        "rolebindings.rbac.authorization.k8s.io \"all\" is forbidden: user \"olga\" (groups=[\"ops\" \"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"*\"], Resources:[\"*\"], Verbs:[\"*\"]}\n{NonResourceURLs:[\"*\"], Verbs:[\"*\"]}",
    );
    let bound = as_olga(&[
        "create",
        "rolebinding",
        "bob-view",
        "-n",
        "shop",
        "--clusterrole=view",
        "--user=bob",
    ]);
    assert_eq!(bound.code, 0, "{}", bound.stderr);
    // `escalate` on roles and `bind` on a ClusterRole lift the checks.
    server.ok(&[
        "create",
        "clusterrole",
        "role-escalator",
        "--verb=escalate,bind",
        "--resource=roles.rbac.authorization.k8s.io,clusterroles.rbac.authorization.k8s.io",
    ]);
    server.ok(&[
        "create",
        "rolebinding",
        "ops-escalate",
        "-n",
        "shop",
        "--clusterrole=role-escalator",
        "--group=ops",
    ]);
    let escalated = as_olga(&[
        "create",
        "role",
        "node-reader",
        "-n",
        "shop",
        "--verb=get,list",
        "--resource=nodes",
    ]);
    assert_eq!(escalated.code, 0, "{}", escalated.stderr);
    let bound = as_olga(&[
        "create",
        "rolebinding",
        "all",
        "-n",
        "shop",
        "--clusterrole=cluster-admin",
        "--user=olga",
    ]);
    assert_eq!(bound.code, 0, "{}", bound.stderr);
}

#[test]
fn kubectl_prints_the_api_servers_words_for_a_custom_resource_breaking_its_schema() {
    if !kubectl_present() {
        return;
    }
    let server = Server::start();
    let crd = server.write(
        "crd.yaml",
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: gadgets.example.com\nspec:\n  group: example.com\n  scope: Namespaced\n  names: {plural: gadgets, singular: gadget, kind: Gadget}\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    schema:\n      openAPIV3Schema:\n        type: object\n        properties:\n          spec:\n            type: object\n            properties:\n              color: {type: string, enum: [red, blue]}\n              replicas: {type: integer, minimum: 1}\n              since: {type: string, format: date-time}\n",
    );
    server.ok(&["apply", "-f", &crd.to_string_lossy()]);
    let bad = server.write(
        "bad.yaml",
        "apiVersion: example.com/v1\nkind: Gadget\nmetadata: {name: g1, namespace: default}\nspec: {color: green, replicas: 0, since: yesterday}\n",
    );
    let refused = server.kubectl(&["apply", "-f", &bad.to_string_lossy()]);
    assert_eq!(refused.code, 1, "{}{}", refused.stdout, refused.stderr);
    for line in [
        "The Gadget \"g1\" is invalid: ",
        "* spec.color: Unsupported value: \"green\": supported values: \"red\", \"blue\"",
        "* spec.replicas: Invalid value: 0: spec.replicas in body should be greater than or equal to 1",
        "* spec.since: Invalid value: \"yesterday\": spec.since in body must be of type date-time: \"yesterday\"",
    ] {
        assert!(refused.stderr.contains(line), "{line}\n{}", refused.stderr);
    }
    let missing = server.kubectl(&["get", "gadget", "g1", "-n", "default"]);
    assert_eq!(missing.code, 1, "{}", missing.stdout);
}

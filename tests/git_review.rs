//! `reconcile diff --base --head`, end to end on real repositories made with `git2`: only the
//! affected applications, Secret values masked, a renamed generated ConfigMap as one change,
//! text / JSON / markdown (golden files), the markdown length cap, remote sources and
//! `refs/pull/N/head`, and the exit codes (`--detailed-exitcode`, errors).

mod git_support;

use git_support::{GitRepo, Run, golden, run_in};
use serde_json::Value;

/// A monorepo: a base, two overlays of it (dev with a Secret), an unrelated app, and a
/// component only prod uses.
fn monorepo(repo: &GitRepo) {
    repo.write(
        "base/kustomization.yaml",
        "resources:\n- deploy.yaml\nconfigMapGenerator:\n- name: web-config\n  literals:\n  - MODE=base\n",
    );
    repo.write(
        "base/deploy.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 1\n  selector:\n    matchLabels:\n      app: web\n  template:\n    metadata:\n      labels:\n        app: web\n    spec:\n      containers:\n      - name: web\n        image: nginx:1.0\n        envFrom:\n        - configMapRef:\n            name: web-config\n",
    );
    repo.write(
        "overlays/dev/kustomization.yaml",
        "namespace: dev\nresources:\n- ../../base\n- secret.yaml\n",
    );
    repo.write(
        "overlays/dev/secret.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\nstringData:\n  password: hunter2-old\n",
    );
    repo.write(
        "overlays/prod/kustomization.yaml",
        "namespace: prod\nresources:\n- ../../base\ncomponents:\n- ../../components/ha\n",
    );
    repo.write(
        "components/ha/kustomization.yaml",
        "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\npatches:\n- path: replicas.yaml\n",
    );
    repo.write(
        "components/ha/replicas.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 3\n",
    );
    repo.write("apps/other/kustomization.yaml", "resources:\n- cm.yaml\n");
    repo.write(
        "apps/other/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: other\ndata:\n  k: v\n",
    );
}

/// A run's output with the repository path and the two SHAs replaced by placeholders.
fn stable(run: &Run, repo: &GitRepo, base: &str, head: &str) -> String {
    let root = repo.path().display().to_string();
    let mut text = run.stdout.replace(&root, "$REPO");
    for (sha, name) in [(base, "BASE"), (head, "HEAD")] {
        text = text.replace(sha, &format!("<{name}>"));
        text = text.replace(&sha[..7], &format!("<{name}7>"));
    }
    text
}

fn diff(repo: &GitRepo, base: &str, head: &str, extra: &[&str]) -> Run {
    let mut args = vec!["diff", "--base", base, "--head", head];
    args.extend_from_slice(extra);
    run_in(repo.path(), &args, &[])
}

fn json(run: &Run) -> Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", run.all()))
}

fn app_names(report: &Value) -> Vec<String> {
    report["apps"]
        .as_array()
        .map(|apps| {
            apps.iter()
                .filter_map(|a| a["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn an_overlay_change_shows_only_its_app_in_every_format() {
    let repo = GitRepo::new();
    monorepo(&repo);
    let base = repo.commit("monorepo");
    repo.edit("components/ha/replicas.yaml", "replicas: 3", "replicas: 5");
    let head = repo.commit("prod: 5 replicas");

    let text = diff(&repo, &base, &head, &[]);
    assert_eq!(text.code, 0, "{}", text.all());
    golden(
        "diff",
        "component-change.txt",
        &stable(&text, &repo, &base, &head),
    );

    let markdown = diff(&repo, &base, &head, &["-o", "markdown"]);
    assert_eq!(markdown.code, 0, "{}", markdown.all());
    golden(
        "diff",
        "component-change.md",
        &stable(&markdown, &repo, &base, &head),
    );

    let report = json(&diff(&repo, &base, &head, &["-o", "json"]));
    assert_eq!(app_names(&report), vec!["overlays/prod"], "{report:#}");
    let unaffected = report["unaffected"].to_string();
    assert!(
        unaffected.contains("overlays/dev") && unaffected.contains("apps/other"),
        "{unaffected}"
    );
    assert_eq!(report["summary"]["changed"], 1, "{report:#}");
    assert_eq!(report["head"]["sha"], head.as_str());
    assert_eq!(report["base"]["ref"], base.as_str());
    let object = &report["apps"][0]["objects"][0];
    assert_eq!(object["kind"], "Deployment");
    assert_eq!(object["change"], "changed");
    assert!(
        object["diff"]
            .as_str()
            .is_some_and(|d| d.contains("-  replicas: 3") && d.contains("+  replicas: 5")),
        "{object:#}"
    );
}

#[test]
fn a_base_change_affects_every_overlay_of_it_and_renamed_config_is_one_change() {
    let repo = GitRepo::new();
    monorepo(&repo);
    let base = repo.commit("monorepo");
    repo.edit("base/kustomization.yaml", "MODE=base", "MODE=fast");
    let head = repo.commit("faster");
    let run = diff(&repo, &base, &head, &["-o", "json"]);
    assert_eq!(run.code, 0, "{}", run.all());
    let report = json(&run);
    assert_eq!(
        app_names(&report),
        vec!["overlays/dev", "overlays/prod"],
        "{report:#}"
    );
    for app in report["apps"].as_array().into_iter().flatten() {
        let objects = app["objects"].as_array().cloned().unwrap_or_default();
        let config: Vec<&Value> = objects
            .iter()
            .filter(|o| o["kind"] == "ConfigMap")
            .collect();
        // The hash suffix changed: one change of its data, naming the old name.
        assert_eq!(config.len(), 1, "{app:#}");
        assert_eq!(config[0]["change"], "changed", "{app:#}");
        assert!(
            config[0]["previousName"]
                .as_str()
                .is_some_and(|n| n.starts_with("web-config-")),
            "{app:#}"
        );
        assert!(
            config[0]["diff"]
                .as_str()
                .is_some_and(|d| d.contains("-  MODE: base") && d.contains("+  MODE: fast")),
            "{app:#}"
        );
        assert!(
            objects.iter().all(|o| o["change"] == "changed"),
            "no add or remove expected: {app:#}"
        );
    }
    let text = diff(&repo, &base, &head, &[]);
    assert!(
        !text.stdout.contains("added") || text.stdout.contains("0 added"),
        "{}",
        text.stdout
    );
}

#[test]
fn secret_values_never_appear_in_any_format() {
    let repo = GitRepo::new();
    monorepo(&repo);
    let base = repo.commit("monorepo");
    repo.edit("overlays/dev/secret.yaml", "hunter2-old", "hunter2-new");
    let head = repo.commit("rotate");
    // base64 of both values, as a Secret's data would hold them.
    let forbidden = [
        "hunter2-old",
        "hunter2-new",
        "aHVudGVyMi1vbGQ",
        "aHVudGVyMi1uZXc",
    ];
    for format in ["text", "json", "markdown"] {
        let run = diff(&repo, &base, &head, &["-o", format]);
        assert_eq!(run.code, 0, "{}", run.all());
        for secret in forbidden {
            assert!(
                !run.all().contains(secret),
                "{format} leaks {secret}:\n{}",
                run.all()
            );
        }
        assert!(run.stdout.contains("Secret"), "{format}: {}", run.stdout);
    }
    let report = json(&diff(&repo, &base, &head, &["-o", "json"]));
    assert_eq!(app_names(&report), vec!["overlays/dev"]);
    assert_eq!(report["summary"]["changed"], 1, "{report:#}");
}

#[test]
fn exit_codes_follow_plan() {
    let repo = GitRepo::new();
    monorepo(&repo);
    let base = repo.commit("monorepo");
    repo.write("README.md", "docs only\n");
    let docs = repo.commit("docs");
    repo.edit("apps/other/cm.yaml", "k: v", "k: w");
    let change = repo.commit("change");

    // Nothing rendered differs: 0, with or without --detailed-exitcode.
    let same = diff(&repo, &base, &docs, &["--detailed-exitcode"]);
    assert_eq!(same.code, 0, "{}", same.all());
    assert!(same.stdout.contains("0 of 0 affected"), "{}", same.stdout);
    // Differences: 0 by default, 2 with --detailed-exitcode.
    assert_eq!(diff(&repo, &docs, &change, &[]).code, 0);
    let changed = diff(&repo, &docs, &change, &["--detailed-exitcode"]);
    assert_eq!(changed.code, 2, "{}", changed.all());
    // HEAD is the default head; HEAD~N works as a base.
    let by_default = run_in(repo.path(), &["diff", "--base", "HEAD~2"], &[]);
    assert_eq!(by_default.code, 0, "{}", by_default.all());
    assert!(
        by_default.stdout.contains("apps/other"),
        "{}",
        by_default.stdout
    );

    // A revision that fails to render: the app, the file and the cause; exit 1.
    repo.write(
        "apps/other/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: [\n",
    );
    let broken = repo.commit("broken");
    let run = diff(&repo, &change, &broken, &["--detailed-exitcode"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stderr.contains("apps/other") && run.stderr.contains("cm.yaml"),
        "{}",
        run.all()
    );
    assert!(run.stdout.contains("failed to render"), "{}", run.stdout);

    // Usage and revision errors: exit 1, nothing on stdout.
    for (args, says) in [
        (vec!["diff", "--base", "nope"], "nope"),
        (
            vec!["diff", "--base", "HEAD~1", "no/such/app"],
            "no/such/app",
        ),
        (vec!["diff"], "--base"),
        (vec!["diff", "--base", "HEAD", "-o", "yaml"], "yaml"),
    ] {
        let run = run_in(repo.path(), &args, &[]);
        assert_eq!(run.code, 1, "{args:?}: {}", run.all());
        assert!(run.stderr.contains(says), "{args:?}: {}", run.stderr);
        assert!(run.stdout.is_empty(), "{args:?}: {}", run.stdout);
    }
}

#[test]
fn applications_come_from_reconcile_yaml_and_can_be_named() {
    let repo = GitRepo::new();
    monorepo(&repo);
    repo.write(
        "reconcile.yaml",
        "applications:\n- name: web-dev\n  path: overlays/dev\n- name: web-prod\n  path: overlays/prod\n",
    );
    let base = repo.commit("monorepo");
    repo.edit("base/deploy.yaml", "nginx:1.0", "nginx:1.1");
    repo.edit("apps/other/cm.yaml", "k: v", "k: w");
    let head = repo.commit("bump");
    // apps/other is not an application of reconcile.yaml.
    let report = json(&diff(&repo, &base, &head, &["-o", "json"]));
    assert_eq!(
        app_names(&report),
        vec!["web-dev", "web-prod"],
        "{report:#}"
    );
    // By name or by path.
    for wanted in ["web-prod", "overlays/prod", "./overlays/prod/"] {
        let report = json(&diff(&repo, &base, &head, &["-o", "json", wanted]));
        assert_eq!(app_names(&report), vec!["web-prod"], "{wanted}: {report:#}");
    }
}

#[test]
fn markdown_is_capped_at_object_boundaries_with_fences_closed() {
    let repo = GitRepo::new();
    let mut resources = String::from("resources:\n");
    for i in 0..40 {
        resources.push_str(&format!("- cm{i}.yaml\n"));
        repo.write(
            &format!("big/cm{i}.yaml"),
            &format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm{i}\ndata:\n  text: |\n{}",
                "    old line of text\n".repeat(20)
            ),
        );
    }
    repo.write("big/kustomization.yaml", &resources);
    let base = repo.commit("big");
    for i in 0..40 {
        repo.edit(&format!("big/cm{i}.yaml"), "old line", "new line");
    }
    let head = repo.commit("rewrite");
    let full = diff(&repo, &base, &head, &["-o", "markdown"]);
    assert!(full.stdout.chars().count() > 4000, "{}", full.stdout.len());
    assert!(!full.stdout.contains("Left out"), "{}", full.stdout);
    for max in [1500usize, 4000] {
        let run = diff(
            &repo,
            &base,
            &head,
            &["-o", "markdown", "--max-length", &max.to_string()],
        );
        assert_eq!(run.code, 0, "{}", run.all());
        let text = &run.stdout;
        assert!(
            text.chars().count() <= max,
            "{max}: {}",
            text.chars().count()
        );
        assert_eq!(text.matches("```").count() % 2, 0, "open fence:\n{text}");
        assert_eq!(
            text.matches("<details>").count(),
            text.matches("</details>").count(),
            "{text}"
        );
        assert!(text.contains("Left out to stay under"), "{text}");
    }
}

#[test]
fn a_remote_is_compared_at_a_pull_request_ref() {
    let repo = GitRepo::new();
    monorepo(&repo);
    let base = repo.commit("monorepo");
    let bare_dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let bare = repo.bare_clone(&bare_dir.path().join("origin.git"));
    // The pull request's commit exists only as refs/pull/7/head on the remote.
    repo.edit("base/deploy.yaml", "nginx:1.0", "nginx:1.2");
    let head = repo.commit("bump");
    let mut remote = repo
        .repo
        .remote_anonymous(&bare.display().to_string())
        .unwrap_or_else(|e| panic!("{e}"));
    remote
        .push(&["+refs/heads/main:refs/pull/7/head"], None)
        .unwrap_or_else(|e| panic!("push: {e}"));
    let url = format!("file://{}", bare.display());
    let work = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let cache = work.path().join("cache");
    let env = [("RECONCILE_GIT_CACHE", cache.to_str().unwrap_or_default())];
    let run = run_in(
        work.path(),
        &[
            "diff",
            "--repo",
            &url,
            "--base",
            "main",
            "--head",
            "refs/pull/7/head",
            "-o",
            "json",
        ],
        &env,
    );
    assert_eq!(run.code, 0, "{}", run.all());
    let report = json(&run);
    assert_eq!(report["base"]["sha"], base.as_str());
    assert_eq!(report["head"]["sha"], head.as_str());
    assert_eq!(app_names(&report), vec!["overlays/dev", "overlays/prod"]);
    // Offline, both SHAs are in the mirror: the same report.
    drop(bare_dir);
    let again = run_in(
        work.path(),
        &[
            "diff", "--repo", &url, "--base", &base, "--head", &head, "-o", "json",
        ],
        &env,
    );
    assert_eq!(again.code, 0, "{}", again.all());
    assert_eq!(json(&again)["apps"], report["apps"]);
}

/// A CRD (with or without the status subresource) and a custom resource of it declaring a
/// status, in one app.
fn custom_app(repo: &GitRepo, app: &str, subresource: bool, phase: &str) {
    let group = format!("{app}.example.com");
    let subresources = if subresource {
        "    subresources:\n      status: {}\n"
    } else {
        ""
    };
    repo.write(
        &format!("{app}/kustomization.yaml"),
        "resources:\n- crd.yaml\n- gadget.yaml\n",
    );
    repo.write(
        &format!("{app}/crd.yaml"),
        &format!(
            "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: gadgets.{group}\nspec:\n  group: {group}\n  scope: Namespaced\n  names:\n    plural: gadgets\n    singular: gadget\n    kind: Gadget\n  versions:\n  - name: v1\n    served: true\n    storage: true\n{subresources}    schema:\n      openAPIV3Schema:\n        type: object\n        x-kubernetes-preserve-unknown-fields: true\n"
        ),
    );
    repo.write(
        &format!("{app}/gadget.yaml"),
        &format!(
            "apiVersion: {group}/v1\nkind: Gadget\nmetadata:\n  name: g\n  namespace: default\nspec:\n  size: 1\nstatus:\n  phase: {phase}\n"
        ),
    );
}

#[test]
fn a_declared_status_is_shown_only_for_crds_without_the_status_subresource() {
    let repo = GitRepo::new();
    custom_app(&repo, "plain", false, "Old");
    custom_app(&repo, "sub", true, "Old");
    let base = repo.commit("gadgets");
    for app in ["plain", "sub"] {
        repo.edit(&format!("{app}/gadget.yaml"), "phase: Old", "phase: New");
    }
    let head = repo.commit("only the status changes");

    let run = diff(&repo, &base, &head, &["-o", "json", "--detailed-exitcode"]);
    assert_eq!(run.code, 2, "{}", run.all());
    let report = json(&run);
    // Both apps are affected (their file changed); only the CRD without the subresource
    // declares its status.
    assert_eq!(report["summary"]["affected"], 2, "{report:#}");
    assert_eq!(report["summary"]["changed"], 1, "{report:#}");
    let apps = report["apps"].as_array().cloned().unwrap_or_default();
    let plain = apps
        .iter()
        .find(|a| a["name"] == "plain")
        .unwrap_or_else(|| panic!("{report:#}"));
    let diff_text = plain["objects"][0]["diff"].as_str().unwrap_or_default();
    assert!(
        diff_text.contains("-  phase: Old") && diff_text.contains("+  phase: New"),
        "{diff_text}"
    );
    let sub = apps
        .iter()
        .find(|a| a["name"] == "sub")
        .unwrap_or_else(|| panic!("{report:#}"));
    assert_eq!(sub["objects"], serde_json::json!([]), "{report:#}");

    // A built-in kind's status never counts.
    repo.write("deploy/kustomization.yaml", "resources:\n- d.yaml\n");
    repo.write(
        "deploy/d.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  k: v\nstatus:\n  x: a\n",
    );
    let with_cm = repo.commit("configmap");
    repo.edit("deploy/d.yaml", "x: a", "x: b");
    let cm_status = repo.commit("configmap status");
    let run = diff(&repo, &with_cm, &cm_status, &["--detailed-exitcode"]);
    assert_eq!(run.code, 0, "{}", run.all());
}

//! `reconcile.yaml`: plan and apply over all applications when no PATH is given, one by
//! name, ignoreDifferences honoured; `--dry-run` changes nothing; `--template` renders the
//! plan with the user's handlebars template.

mod plan_support;

use plan_support::{Repo, timecheck, web};

fn two_apps(repo: &Repo) {
    timecheck(repo);
    web(repo, "    type: RollingUpdate", "");
    repo.write(
        "reconcile.yaml",
        "applications:\n- name: timecheck\n  path: overlays/dev\n- name: shop\n  path: app\n  ignoreDifferences:\n  - kind: Deployment\n    jsonPointers: [/spec/replicas]\n",
    );
}

#[test]
fn all_applications_when_no_path_is_given() {
    let repo = Repo::new();
    two_apps(&repo);
    let plan = repo.ok(&["plan", "--detailed-exitcode"], 2);
    assert!(
        plan.stdout.contains("Application timecheck (overlays/dev)"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout.contains("Application shop (app)"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout
            .ends_with("Plan: 7 to create, 0 to update, 0 to delete.\n"),
        "{}",
        plan.stdout
    );

    let dry = repo.ok(&["apply", "--dry-run"], 0);
    assert!(
        dry.stdout.contains("Dry run: nothing applied"),
        "{}",
        dry.stdout
    );
    repo.ok(&["plan", "--detailed-exitcode"], 2);

    let apply = repo.ok(&["apply", "--wait"], 0);
    assert!(
        apply
            .stdout
            .contains("Waiting for 2 applications to become healthy"),
        "{}",
        apply.stdout
    );
    assert!(
        apply
            .stdout
            .contains("Apply complete (timecheck): 4 created"),
        "{}",
        apply.stdout
    );
    assert!(
        apply.stdout.contains("Apply complete (shop): 3 created"),
        "{}",
        apply.stdout
    );
    repo.ok(&["plan", "--detailed-exitcode"], 0);

    // ignoreDifferences: replicas changed live (an autoscaler) is not drift for shop.
    let live = repo.ok(
        &[
            "engine",
            "get",
            "deployment",
            "web",
            "-n",
            "shop",
            "-o",
            "yaml",
        ],
        0,
    );
    repo.write(
        "live.yaml",
        &live.stdout.replace("replicas: 4", "replicas: 6"),
    );
    repo.ok(&["engine", "apply", "-f", "live.yaml"], 0);
    repo.ok(&["plan", "shop", "--detailed-exitcode"], 0);
    // The same directory given as a path is the same application, with its settings.
    repo.ok(&["plan", "app", "--detailed-exitcode"], 0);
}

#[test]
fn a_users_template_gets_the_json_plan() {
    let repo = Repo::new();
    two_apps(&repo);
    repo.write(
        "plan.hbs",
        "{{#each plans}}{{application}}: {{summary.create}} new{{#each actions}} [{{kind}}/{{name}}]{{/each}}\n{{/each}}{{line}}\n",
    );
    let out = repo.ok(&["plan", "timecheck", "--template", "plan.hbs"], 0);
    assert_eq!(
        out.stdout,
        "timecheck: 4 new [Namespace/timecheck-dev] [ConfigMap/timecheck-config-gcdf9h6hk6] [Service/timecheck] [Deployment/timecheck]\nPlan: 4 to create, 0 to update, 0 to delete.\n"
    );
    repo.write(
        "reconcile.yaml",
        "applications:\n- name: Bad_Name\n  path: app\n",
    );
    let bad = repo.ok(&["plan"], 1);
    assert!(
        bad.stderr
            .contains("reconcile.yaml: applications[0].name: \"Bad_Name\" must be lowercase"),
        "{}",
        bad.stderr
    );
}

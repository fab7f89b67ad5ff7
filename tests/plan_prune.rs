//! `apply --prune` removes a resource deleted from the manifests and nothing else; saved plans
//! refuse when stale; an empty render does not prune without `--allow-empty`.

mod plan_support;

use plan_support::{Repo, timecheck};

#[test]
fn prune_removes_the_deleted_resource_and_nothing_else() {
    let repo = Repo::new();
    timecheck(&repo);
    repo.write(
        "base/extra.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\ndata:\n  a: \"1\"\n",
    );
    repo.write(
        "base/kustomization.yaml",
        "resources:\n- deployment.yaml\n- service.yaml\n- extra.yaml\nconfigMapGenerator:\n- name: timecheck-config\n  literals:\n  - INTERVAL=5\n",
    );
    repo.ok(&["apply", "overlays/dev", "--wait"], 0);
    // An object reconcile did not apply, in the same namespace.
    repo.write("foreign.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: foreign\n  namespace: timecheck-dev\ndata:\n  b: \"2\"\n");
    repo.ok(&["engine", "apply", "-f", "foreign.yaml"], 0);

    repo.write(
        "base/kustomization.yaml",
        "resources:\n- deployment.yaml\n- service.yaml\nconfigMapGenerator:\n- name: timecheck-config\n  literals:\n  - INTERVAL=5\n",
    );
    let without = repo.ok(&["plan", "overlays/dev", "--detailed-exitcode"], 0);
    assert!(
        without.stdout.contains(
            "! keep ConfigMap timecheck-dev/extra: no longer rendered; `apply --prune` deletes it"
        ),
        "{}",
        without.stdout
    );
    let plan = repo.ok(
        &["plan", "overlays/dev", "--prune", "--detailed-exitcode"],
        2,
    );
    assert!(
        plan.stdout
            .contains("  - delete ConfigMap timecheck-dev/extra\n"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout
            .contains("Plan: 0 to create, 0 to update, 1 to delete."),
        "{}",
        plan.stdout
    );
    let apply = repo.ok(&["apply", "overlays/dev", "--prune"], 0);
    assert!(
        apply
            .stdout
            .contains("ConfigMap timecheck-dev/extra: deleted"),
        "{}",
        apply.stdout
    );
    let left = repo.ok(
        &[
            "engine",
            "get",
            "configmaps",
            "-n",
            "timecheck-dev",
            "-o",
            "name",
        ],
        0,
    );
    assert!(left.stdout.contains("foreign"), "{}", left.stdout);
    assert!(!left.stdout.contains("extra"), "{}", left.stdout);
    repo.ok(
        &["plan", "overlays/dev", "--prune", "--detailed-exitcode"],
        0,
    );

    // Nothing rendered: refused unless --allow-empty.
    repo.write(
        "overlays/dev/kustomization.yaml",
        "namespace: timecheck-dev\n",
    );
    let empty = repo.ok(&["apply", "overlays/dev", "--prune"], 1);
    assert!(
        empty
            .stderr
            .contains("the render is empty and prune would delete every object"),
        "{}",
        empty.stderr
    );
}

#[test]
fn a_saved_plan_is_applied_exactly_or_refused_when_stale() {
    let repo = Repo::new();
    timecheck(&repo);
    repo.ok(&["apply", "overlays/dev", "--wait"], 0);
    repo.edit("base/deployment.yaml", "replicas: 2", "replicas: 3");
    let saved = repo.ok(&["plan", "overlays/dev", "--out", "plan.json"], 0);
    assert!(
        saved.stdout.contains("Saved the plan to plan.json"),
        "{}",
        saved.stdout
    );
    assert!(
        repo.read("plan.json")
            .contains("\"sourceDigest\": \"sha256:")
    );

    // Someone changes the live Deployment in between: the plan is stale.
    let live = repo.ok(
        &[
            "engine",
            "get",
            "deployment",
            "timecheck",
            "-n",
            "timecheck-dev",
            "-o",
            "yaml",
        ],
        0,
    );
    repo.write(
        "live.yaml",
        &live.stdout.replace("replicas: 2", "replicas: 5"),
    );
    repo.ok(&["engine", "apply", "-f", "live.yaml"], 0);
    let stale = repo.ok(&["apply", "plan.json"], 1);
    assert!(
        stale.stderr.contains(
            "plan is stale: Deployment timecheck-dev/timecheck changed since the plan was made"
        ),
        "{}",
        stale.stderr
    );

    // A fresh plan applies; then a source change makes it stale too.
    repo.ok(&["plan", "overlays/dev", "--out", "plan.json"], 0);
    let applied = repo.ok(&["apply", "plan.json"], 0);
    assert!(
        applied
            .stdout
            .contains("Deployment timecheck-dev/timecheck: updated"),
        "{}",
        applied.stdout
    );
    repo.ok(&["plan", "overlays/dev", "--out", "plan.json"], 0);
    repo.edit("base/deployment.yaml", "replicas: 3", "replicas: 4");
    let changed = repo.ok(&["apply", "plan.json"], 1);
    assert!(
        changed
            .stderr
            .contains("plan is stale: the source of application overlays-dev changed"),
        "{}",
        changed.stderr
    );
}

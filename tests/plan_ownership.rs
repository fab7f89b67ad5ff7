//! Field ownership (#16 item 5): an apply removes only fields reconcile set before and no
//! longer declares; fields someone else added to a live object survive, and the plan shows
//! exactly what the apply changes.

mod plan_support;

use plan_support::{Repo, Run, timecheck};

/// The dev overlay's live Deployment as `engine get -o yaml` prints it.
fn live_deployment(repo: &Repo) -> Run {
    repo.ok(
        &[
            "engine",
            "get",
            "deploy",
            "timecheck",
            "-n",
            "timecheck-dev",
            "-o",
            "yaml",
        ],
        0,
    )
}

#[test]
fn fields_added_by_others_survive_an_unrelated_apply() {
    let repo = Repo::new();
    timecheck(&repo);
    repo.ok(&["apply", "overlays/dev", "--wait"], 0);

    // Someone edits the live Deployment: a label, an annotation, a sidecar container.
    let live = live_deployment(&repo);
    let edited = live
        .stdout
        .replacen(
            "    app: timecheck\n",
            "    app: timecheck\n    team: payments\n",
            1,
        )
        .replacen("  annotations:\n", "  annotations:\n    oncall: alice\n", 1)
        .replacen(
            "      containers:\n",
            "      containers:\n      - name: proxy\n        image: envoy:1.0\n",
            1,
        );
    assert!(
        edited.contains("team: payments") && edited.contains("oncall: alice"),
        "{edited}"
    );
    repo.write("edited.yaml", &edited);
    repo.ok(&["engine", "apply", "-f", "edited.yaml"], 0);

    // An unrelated change in git.
    repo.edit("base/deployment.yaml", "replicas: 2", "replicas: 3");
    let plan = repo.ok(&["plan", "overlays/dev", "--detailed-exitcode"], 2);
    assert!(
        plan.stdout
            .contains("-  replicas: 2\n      +  replicas: 3\n"),
        "{}",
        plan.stdout
    );
    for foreign in ["team", "oncall", "proxy"] {
        assert!(
            !plan.stdout.contains(foreign),
            "{foreign} in plan:\n{}",
            plan.stdout
        );
    }
    repo.ok(&["apply", "overlays/dev", "--wait"], 0);
    let after = live_deployment(&repo);
    assert!(after.stdout.contains("replicas: 3"), "{}", after.stdout);
    assert!(after.stdout.contains("team: payments"), "{}", after.stdout);
    assert!(after.stdout.contains("oncall: alice"), "{}", after.stdout);
    assert!(after.stdout.contains("name: proxy"), "{}", after.stdout);
    assert!(!after.stdout.contains("managedFields"), "{}", after.stdout);
    let with_fields = repo.ok(
        &[
            "engine",
            "get",
            "deploy",
            "timecheck",
            "-n",
            "timecheck-dev",
            "-o",
            "yaml",
            "--show-managed-fields",
        ],
        0,
    );
    assert!(
        with_fields.stdout.contains("manager: reconcile"),
        "{}",
        with_fields.stdout
    );
    assert!(
        with_fields.stdout.contains("operation: Apply"),
        "{}",
        with_fields.stdout
    );
    repo.ok(&["plan", "overlays/dev", "--detailed-exitcode"], 0);
}

#[test]
fn a_field_dropped_from_git_is_removed_and_the_plan_shows_exactly_that() {
    let repo = Repo::new();
    timecheck(&repo);
    repo.edit(
        "base/deployment.yaml",
        "  labels:\n    app: timecheck\nspec:",
        "  labels:\n    app: timecheck\n    tier: web\nspec:",
    );
    repo.ok(&["apply", "overlays/dev", "--wait"], 0);
    // Someone adds their own label next to ours.
    let live = live_deployment(&repo);
    repo.write(
        "edited.yaml",
        &live
            .stdout
            .replacen("    tier: web\n", "    tier: web\n    team: payments\n", 1),
    );
    repo.ok(&["engine", "apply", "-f", "edited.yaml"], 0);
    repo.edit("base/deployment.yaml", "    tier: web\n", "");
    let plan = repo.ok(&["plan", "overlays/dev", "--detailed-exitcode"], 2);
    assert!(
        plan.stdout.contains("      -    tier: web\n"),
        "{}",
        plan.stdout
    );
    assert!(!plan.stdout.contains("team"), "{}", plan.stdout);
    repo.ok(&["apply", "overlays/dev"], 0);
    let after = repo.ok(
        &[
            "engine",
            "get",
            "deploy",
            "timecheck",
            "-n",
            "timecheck-dev",
            "--show-labels",
        ],
        0,
    );
    assert!(after.stdout.contains("team=payments"), "{}", after.stdout);
    assert!(!after.stdout.contains("tier=web"), "{}", after.stdout);
}

#[test]
fn adopting_an_object_reconcile_did_not_create_needs_an_opt_in() {
    let repo = Repo::new();
    timecheck(&repo);
    repo.write(
        "base/kustomization.yaml",
        "resources:\n- deployment.yaml\n- service.yaml\n- shared.yaml\nconfigMapGenerator:\n- name: timecheck-config\n  literals:\n  - INTERVAL=5\n",
    );
    repo.write(
        "base/shared.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: shared\ndata:\n  mine: \"1\"\n",
    );
    repo.write(
        "foreign.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: timecheck-dev\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: shared\n  namespace: timecheck-dev\ndata:\n  theirs: \"2\"\n",
    );
    repo.ok(&["engine", "apply", "-f", "foreign.yaml"], 0);

    let refused = repo.ok(&["plan", "overlays/dev"], 1);
    assert!(
        refused.stderr.contains("Namespace timecheck-dev: exists and was not created by reconcile; refusing to take it over without an explicit opt-in"),
        "{}",
        refused.all()
    );
    repo.ok(&["apply", "overlays/dev"], 1);
    let untouched = repo.ok(
        &[
            "engine",
            "get",
            "cm",
            "shared",
            "-n",
            "timecheck-dev",
            "-o",
            "yaml",
        ],
        0,
    );
    assert!(!untouched.stdout.contains("mine"), "{}", untouched.stdout);

    let plan = repo.ok(&["plan", "overlays/dev", "--adopt"], 0);
    assert!(
        plan.stdout.contains(
            "~ update ConfigMap timecheck-dev/shared  (adopt: an object reconcile did not create)"
        ),
        "{}",
        plan.stdout
    );
    repo.ok(&["apply", "overlays/dev", "--adopt"], 0);
    let adopted = repo.ok(
        &[
            "engine",
            "get",
            "cm",
            "shared",
            "-n",
            "timecheck-dev",
            "-o",
            "yaml",
        ],
        0,
    );
    assert!(adopted.stdout.contains("mine: \"1\""), "{}", adopted.stdout);
    assert!(
        adopted.stdout.contains("theirs: \"2\""),
        "{}",
        adopted.stdout
    );
    // Adopted: later plans need no opt-in.
    repo.ok(&["plan", "overlays/dev", "--detailed-exitcode"], 0);
}

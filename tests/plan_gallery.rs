//! The image gallery demo (the repository's own `base/` and `overlays/`) on the engine:
//! `apply overlays/dev --wait` brings it up and a second plan finds nothing to do; prod comes
//! up on its own target; an image change is a readable one-line diff; the Secret's value
//! never appears in any output.

mod plan_support;

use std::path::Path;

use plan_support::Repo;

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("{}: {e}", to.display()));
    let entries = std::fs::read_dir(from).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
    for entry in entries.flatten() {
        let path = entry.path();
        let target = to.join(entry.file_name());
        if path.is_dir() {
            copy_tree(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
    }
}

fn gallery() -> Repo {
    let repo = Repo::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    copy_tree(&root.join("base"), &repo.path().join("base"));
    copy_tree(&root.join("overlays"), &repo.path().join("overlays"));
    repo
}

#[test]
fn dev_comes_up_and_converges() {
    let repo = gallery();
    let apply = repo.ok(&["apply", "overlays/dev", "--wait"], 0);
    assert!(
        apply
            .stdout
            .contains("Apply complete (overlays-dev): 9 created, 0 updated, 0 deleted."),
        "{}",
        apply.stdout
    );
    let again = repo.ok(&["plan", "overlays/dev", "--detailed-exitcode"], 0);
    assert!(again.stdout.contains("No changes."), "{}", again.stdout);

    repo.edit(
        "overlays/dev/kustomization.yaml",
        "- name: diamol/ch09-image-gallery\n  newTag: \"1.1\"",
        "- name: diamol/ch09-image-gallery\n  newTag: \"2.0\"",
    );
    let plan = repo.ok(&["plan", "overlays/dev", "--detailed-exitcode"], 2);
    assert!(plan.stdout.contains("-        image: diamol/ch09-image-gallery:1.1\n      +        image: diamol/ch09-image-gallery:2.0"), "{}", plan.stdout);
    assert!(
        plan.stdout
            .contains("Plan: 0 to create, 1 to update, 0 to delete."),
        "{}",
        plan.stdout
    );
}

#[test]
fn prod_comes_up_on_its_own_target_and_secrets_stay_masked() {
    let repo = gallery();
    let target = ["--target", "engine:.reconcile/prod.db"];
    // A named state is never created by a read-only command: make it first.
    repo.ok(&["engine", "reset", target[0], target[1]], 0);
    let plan = repo.ok(
        &["plan", "overlays/prod", "-o", "json", target[0], target[1]],
        0,
    );
    let apply = repo.ok(
        &["apply", "overlays/prod", "--wait", target[0], target[1]],
        0,
    );
    assert!(apply.stdout.contains("9 created"), "{}", apply.stdout);
    repo.ok(
        &[
            "plan",
            "overlays/prod",
            "--detailed-exitcode",
            target[0],
            target[1],
        ],
        0,
    );
    // REVNQV9LRVk= is DEMO_KEY in base64.
    for output in [&plan.stdout, &apply.stdout, &apply.stderr] {
        assert!(
            !output.contains("DEMO_KEY") && !output.contains("REVNQV9LRVk="),
            "{output}"
        );
    }
    assert!(
        plan.stdout.contains("NASA_API_KEY: ++++++++"),
        "{}",
        plan.stdout
    );
}

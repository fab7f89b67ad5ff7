//! The timecheck app on the engine from the CLI: apply 1.0, no drift, update to 2.0 with a
//! readable plan (text, JSON, markdown goldens), then roll back with `rollout undo`.
//! Goldens are rewritten with `UPDATE_EXPECT=1`.

mod plan_support;

use expect_test::expect_file;
use plan_support::{Repo, timecheck};

#[test]
fn timecheck_update_and_rollback() {
    let repo = Repo::new();
    timecheck(&repo);
    let first = repo.ok(&["plan", "overlays/dev"], 0);
    expect_file!["data/plan/timecheck-create.txt"].assert_eq(&first.stdout);
    let apply = repo.ok(&["apply", "overlays/dev", "--wait"], 0);
    assert!(
        apply
            .stdout
            .contains("Apply complete (overlays-dev): 4 created, 0 updated, 0 deleted."),
        "{}",
        apply.stdout
    );
    assert!(
        apply
            .stdout
            .contains("Deployment timecheck-dev/timecheck: healthy"),
        "{}",
        apply.stdout
    );

    // A second plan: nothing the engine filled in shows as drift.
    let again = repo.ok(&["plan", "overlays/dev", "--detailed-exitcode"], 0);
    assert!(again.stdout.contains("No changes."), "{}", again.stdout);

    // 1.0 → 2.0: exit 2 and a diff of one line.
    repo.write(
        "overlays/dev/kustomization.yaml",
        "namespace: timecheck-dev\nresources:\n- namespace.yaml\n- ../../base\nimages:\n- name: kiamol/ch07-timecheck\n  newTag: \"2.0\"\n",
    );
    let text = repo.ok(&["plan", "overlays/dev", "--detailed-exitcode"], 2);
    expect_file!["data/plan/timecheck-update.txt"].assert_eq(&text.stdout);
    let json = repo.ok(&["plan", "overlays/dev", "-o", "json"], 0);
    expect_file!["data/plan/timecheck-update.json"].assert_eq(&redact_versions(&json.stdout));
    let markdown = repo.ok(&["plan", "overlays/dev", "-o", "markdown"], 0);
    expect_file!["data/plan/timecheck-update.md"].assert_eq(&markdown.stdout);

    repo.ok(&["apply", "overlays/dev", "--wait"], 0);
    let status = repo.ok(
        &["rollout", "status", "timecheck", "-n", "timecheck-dev"],
        0,
    );
    assert!(
        status
            .stdout
            .contains("Images:    kiamol/ch07-timecheck:2.0"),
        "{}",
        status.stdout
    );
    repo.ok(&["plan", "overlays/dev", "--detailed-exitcode"], 0);

    // Roll back: the live Deployment runs 1.0 again, which git does not say: drift.
    let undo = repo.ok(&["rollout", "undo", "timecheck-dev/timecheck", "--wait"], 0);
    assert!(
        undo.stdout
            .contains("deployment.apps/timecheck rolled back"),
        "{}",
        undo.stdout
    );
    let history = repo.ok(
        &["rollout", "history", "timecheck", "-n", "timecheck-dev"],
        0,
    );
    expect_file!["data/plan/timecheck-history.txt"].assert_eq(&history.stdout);
    let drift = repo.ok(&["plan", "overlays/dev", "--detailed-exitcode"], 2);
    assert!(drift.stdout.contains("-        image: kiamol/ch07-timecheck:1.0\n      +        image: kiamol/ch07-timecheck:2.0"), "{}", drift.stdout);
}

/// resourceVersions and digests depend on engine internals; goldens keep their shape only.
fn redact_versions(text: &str) -> String {
    text.lines()
        .map(|line| {
            for key in [
                "\"liveResourceVersion\": ",
                "\"inventoryResourceVersion\": ",
            ] {
                if let Some(at) = line.find(key) {
                    let comma = if line.ends_with(',') { "," } else { "" };
                    return format!("{}{key}\"…\"{comma}", &line[..at]);
                }
            }
            line.to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

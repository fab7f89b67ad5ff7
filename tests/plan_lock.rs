//! The apply lock (#16 item 3): every engine writer respects it, its message names the holder
//! once with a lock id and wall-clock time, and `reconcile unlock LOCK_ID` removes a lock whose
//! holder is gone.

mod plan_support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use plan_support::{Repo, timecheck};

#[test]
fn engine_writers_wait_for_a_running_apply_and_unlock_clears_a_dead_holder() {
    let repo = Repo::new();
    timecheck(&repo);
    repo.ok(&["apply", "overlays/dev"], 0);
    let mut holder = Command::new(env!("CARGO_BIN_EXE_reconcile"))
        .args(["apply", "overlays/dev"])
        .current_dir(repo.path())
        .env("RECONCILE_TEST_HOLD_LOCK_MS", "8000")
        .env_remove("RECONCILE_ENGINE_STATE")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("running reconcile: {e}"));
    let pid = holder.id().to_string();
    // Bounded: the holder takes the lock within a few seconds.
    let started = Instant::now();
    let refused = loop {
        let run = repo.run(&["engine", "reset"]);
        if run.code != 0 {
            break run;
        }
        assert!(
            started.elapsed() < Duration::from_secs(6),
            "the lock was never taken"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = holder.kill();
    let _ = holder.wait();
    let message = refused.all();
    assert_eq!(refused.code, 1, "{message}");
    assert!(
        message.contains(&format!(
            "locked by reconcile apply (lock id {pid}) since 20"
        )),
        "{message}"
    );
    assert_eq!(message.matches(&pid).count(), 2, "{message}");
    assert!(
        message.contains(&format!("`reconcile unlock {pid}`")),
        "{message}"
    );
    // The killed holder left its lock; a wrong id is refused, the right one removes it.
    let wrong = repo.ok(&["unlock", "1"], 1);
    assert!(
        wrong.stderr.contains("does not match the lock held"),
        "{}",
        wrong.all()
    );
    let unlocked = repo.ok(&["unlock", &pid], 0);
    assert_eq!(unlocked.stdout, format!("lock {pid} released\n"));
    repo.ok(&["unlock", &pid], 1);
    repo.ok(&["engine", "reset"], 0);
}

#[test]
fn an_apply_killed_after_writing_objects_leaves_them_prunable() {
    let repo = Repo::new();
    timecheck(&repo);
    let crashed = Command::new(env!("CARGO_BIN_EXE_reconcile"))
        .args(["apply", "overlays/dev"])
        .current_dir(repo.path())
        .env("RECONCILE_TEST_CRASH_AFTER_WRITE", "1")
        .env_remove("RECONCILE_ENGINE_STATE")
        .output()
        .unwrap_or_else(|e| panic!("running reconcile: {e}"));
    assert!(!crashed.status.success());
    let written = repo.ok(
        &[
            "engine",
            "get",
            "deploy,svc,cm",
            "-n",
            "timecheck-dev",
            "-o",
            "name",
        ],
        0,
    );
    assert!(
        written.stdout.contains("deployment.apps/timecheck"),
        "{}",
        written.stdout
    );
    // The app is removed from the source: everything it wrote is found and pruned.
    repo.write(
        "overlays/dev/kustomization.yaml",
        "resources:\n- keep.yaml\n",
    );
    repo.write(
        "overlays/dev/keep.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: keep\n  namespace: default\n",
    );
    let plan = repo.ok(
        &["plan", "overlays/dev", "--prune", "--detailed-exitcode"],
        2,
    );
    for object in [
        "delete Deployment timecheck-dev/timecheck",
        "delete Service timecheck-dev/timecheck",
        "delete Namespace timecheck-dev",
    ] {
        assert!(plan.stdout.contains(object), "{object}:\n{}", plan.stdout);
    }
}

#[test]
fn a_multi_application_apply_holds_one_lock_for_the_whole_run() {
    let repo = Repo::new();
    for app in ["one", "two"] {
        repo.write(
            &format!("{app}/kustomization.yaml"),
            "resources:\n- cm.yaml\n",
        );
        repo.write(
            &format!("{app}/cm.yaml"),
            &format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {app}\ndata:\n  a: \"1\"\n"
            ),
        );
    }
    repo.write(
        "reconcile.yaml",
        "applications:\n- name: one\n  path: one\n- name: two\n  path: two\n",
    );
    repo.ok(&["engine", "now"], 0);
    repo.ok(&["engine", "reset"], 0);
    // The apply pauses after each application; between them the lock must stay held.
    let mut holder = Command::new(env!("CARGO_BIN_EXE_reconcile"))
        .args(["apply"])
        .current_dir(repo.path())
        .env("RECONCILE_TEST_HOLD_BETWEEN_APPS_MS", "4000")
        .env_remove("RECONCILE_ENGINE_STATE")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("running reconcile: {e}"));
    // Bounded: the first application is applied within a few seconds.
    let started = Instant::now();
    while repo.run(&["engine", "get", "cm", "one"]).code != 0 {
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "the first application was never applied"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let between = repo.run(&["engine", "reset"]);
    let second_applied = repo.run(&["engine", "get", "cm", "two"]).code == 0;
    let status = holder.wait().unwrap_or_else(|e| panic!("{e}"));
    assert!(status.success());
    assert!(!second_applied || between.code == 1, "raced past the pause");
    assert_eq!(
        between.code,
        1,
        "another writer slipped in between applications: {}",
        between.all()
    );
    assert!(
        between.all().contains("locked by reconcile apply"),
        "{}",
        between.all()
    );
    repo.ok(&["engine", "get", "cm", "one"], 0);
    repo.ok(&["engine", "get", "cm", "two"], 0);
}

//! Inputs and outputs that must stay safe (#16 items 9 and 12): Secrets of any apiVersion are
//! masked in every plan output; a FIFO named as a resource is refused, never read.

mod plan_support;

use plan_support::Repo;

#[test]
fn a_secret_with_an_unusual_api_version_is_masked_everywhere() {
    let repo = Repo::new();
    repo.write(
        "app/kustomization.yaml",
        "namespace: demo\nresources:\n- secret.yaml\n",
    );
    repo.write(
        "app/secret.yaml",
        "apiVersion: v2\nkind: Secret\nmetadata:\n  name: pin\ndata:\n  pin: MTIzNA==\nstringData:\n  token: hunter2\n",
    );
    for args in [
        vec!["plan", "app"],
        vec!["plan", "app", "-o", "json"],
        vec!["plan", "app", "-o", "markdown"],
        vec!["plan", "app", "--out", "plan.json"],
    ] {
        let run = repo.run(&args);
        let mut text = run.all();
        // The engine refuses a Secret in a version Kubernetes doesn't serve, so the plan may
        // fail: its error must not leak either, and a written plan file is checked too.
        if args.contains(&"--out") && repo.path().join("plan.json").exists() {
            text.push_str(&repo.read("plan.json"));
        }
        for plaintext in ["MTIzNA==", "hunter2"] {
            assert!(
                !text.contains(plaintext),
                "{args:?} leaked {plaintext}:\n{text}"
            );
        }
    }
}

#[test]
fn a_fifo_named_in_resources_is_refused_not_read() {
    let repo = Repo::new();
    repo.write("app/kustomization.yaml", "resources:\n- pipe.yaml\n");
    let made = std::process::Command::new("mkfifo")
        .arg(repo.path().join("app/pipe.yaml"))
        .status();
    if !made.is_ok_and(|s| s.success()) {
        eprintln!("skipped: mkfifo is not available");
        return;
    }
    // Bounded: a read of the FIFO would block forever, so the run gets 30 s.
    let binary = env!("CARGO_BIN_EXE_reconcile");
    let mut child = std::process::Command::new(binary)
        .args(["plan", "app"])
        .current_dir(repo.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running reconcile: {e}"));
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap_or_else(|e| panic!("{e}")) {
            break status;
        }
        if started.elapsed() > std::time::Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("plan hung on a FIFO");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("pipe.yaml: not a regular file or directory"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}

/// Runs `reconcile ARGS` in a sub-folder of the repository.
fn run_in(repo: &Repo, folder: &str, args: &[&str]) -> (i32, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_reconcile"))
        .args(args)
        .current_dir(repo.path().join(folder))
        .env_remove("RECONCILE_ENGINE_STATE")
        .output()
        .unwrap_or_else(|e| panic!("running reconcile: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn app_identity_does_not_depend_on_how_the_path_is_spelled() {
    let repo = Repo::new();
    plan_support::timecheck(&repo);
    repo.ok(&["apply", "overlays/dev"], 0);
    let absolute = repo.path().join("overlays/dev");
    let absolute = absolute.to_string_lossy().into_owned();
    for spelling in [
        absolute.as_str(),
        "./overlays/dev/",
        "overlays/../overlays/dev",
    ] {
        let plan = repo.ok(&["plan", spelling, "--detailed-exitcode"], 0);
        assert!(
            plan.stdout
                .starts_with("Application overlays-dev (overlays/dev) on"),
            "{spelling}: {}",
            plan.stdout
        );
    }
    let (code, text) = run_in(&repo, "overlays/dev", &["plan", ".", "--detailed-exitcode"]);
    assert_eq!(code, 0, "{text}");
    // A saved plan applies from another folder of the repository.
    repo.edit("base/deployment.yaml", "replicas: 2", "replicas: 3");
    repo.ok(&["plan", "overlays/dev", "--out", "plan.json"], 0);
    std::fs::create_dir_all(repo.path().join("elsewhere")).unwrap_or_else(|e| panic!("{e}"));
    let (code, text) = run_in(&repo, "elsewhere", &["apply", "../plan.json"]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("Deployment timecheck-dev/timecheck: updated"),
        "{text}"
    );
}

#[test]
fn application_paths_outside_the_repository_are_refused() {
    let repo = Repo::new();
    plan_support::timecheck(&repo);
    repo.write(
        "reconcile.yaml",
        "applications:\n- name: demo\n  path: ../demo\n",
    );
    let run = repo.ok(&["plan", "demo"], 1);
    assert!(
        run.stderr
            .contains("applications[0].path: \"../demo\" is outside the repository"),
        "{}",
        run.all()
    );
}

// ---- #16 item 4: a full disk, a read-only state ----

#[test]
fn a_full_disk_ends_the_apply_with_one_message_the_report_and_no_lock() {
    let repo = Repo::new();
    repo.write("small/kustomization.yaml", "resources:\n- cm.yaml\n");
    repo.write(
        "small/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: small\ndata:\n  a: \"1\"\n",
    );
    repo.ok(&["apply", "small"], 0);
    let mut resources = String::from("resources:\n");
    for i in 0..40 {
        resources.push_str(&format!("- cm{i}.yaml\n"));
        repo.write(
            &format!("big/cm{i}.yaml"),
            &format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: big{i}\ndata:\n  blob: \"{}\"\n",
                "x".repeat(4000)
            ),
        );
    }
    repo.write("big/kustomization.yaml", &resources);
    // The test hook caps the state's size as a full disk would (deterministic).
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_reconcile"))
        .args(["apply", "big", "--wait"])
        .current_dir(repo.path())
        .env("RECONCILE_TEST_MAX_PAGES", "40")
        .env("NO_COLOR", "1")
        .env_remove("RECONCILE_ENGINE_STATE")
        .output()
        .unwrap_or_else(|e| panic!("running reconcile: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert_eq!(
        stderr.matches("database or disk is full").count(),
        1,
        "one message, once:\n{stderr}"
    );
    assert!(stderr.contains("error: ConfigMap default/big"), "{stderr}");
    assert!(stderr.contains("applied: "), "{stderr}");
    assert!(
        stderr.contains("not applied: ConfigMap default/big"),
        "{stderr}"
    );
    assert!(stdout.contains("Apply failed (big)"), "{stdout}");
    // The lock is gone, the state is whole: the next apply of the small app works.
    let unlock = repo.ok(&["unlock", "1"], 1);
    assert!(unlock.stderr.contains("is not locked"), "{}", unlock.all());
    repo.edit("small/cm.yaml", "a: \"1\"", "a: \"2\"");
    let again = repo.ok(&["apply", "small"], 0);
    assert!(
        again.stdout.contains("ConfigMap default/small: updated"),
        "{}",
        again.all()
    );
}

#[test]
fn a_disk_that_fills_during_the_health_wait_ends_the_apply_cleanly() {
    let repo = Repo::new();
    repo.write("web/kustomization.yaml", "resources:\n- deploy.yaml\n");
    repo.write(
        "web/deploy.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 20\n  selector:\n    matchLabels:\n      app: web\n  template:\n    metadata:\n      labels:\n        app: web\n    spec:\n      containers:\n      - name: web\n        image: nginx:1.27\n",
    );
    // Applied without waiting: the pods exist, Pending; the engine's clock has not moved.
    repo.ok(&["apply", "web"], 0);
    let state = repo.path().join(".reconcile/engine.db");
    let pages: i64 = rusqlite::Connection::open(&state)
        .and_then(|c| c.query_row("PRAGMA page_count", [], |row| row.get(0)))
        .unwrap_or_else(|e| panic!("page count of {}: {e}", state.display()));
    // Nothing is left to write, so the only writes are the controllers' as the wait lets
    // time pass (pods scheduled, started, their events): capped at today's size, the disk
    // fills during the wait.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_reconcile"))
        .args(["apply", "web", "--wait"])
        .current_dir(repo.path())
        .env("RECONCILE_TEST_MAX_PAGES", pages.to_string())
        .env("NO_COLOR", "1")
        .env_remove("RECONCILE_ENGINE_STATE")
        .output()
        .unwrap_or_else(|e| panic!("running reconcile: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains("updated replicas are available"),
        "the wait had started:\n{stdout}"
    );
    assert_eq!(
        stderr.matches("database or disk is full").count(),
        1,
        "one message, once:\n{stderr}"
    );
    assert!(stderr.contains("the disk is full"), "{stderr}");
    assert!(stdout.contains("Apply failed (web)"), "{stdout}");
    // The lock is released and the state is whole: plan reads it, and a wait with room
    // carries the Deployment to health.
    let unlock = repo.ok(&["unlock", "1"], 1);
    assert!(unlock.stderr.contains("is not locked"), "{}", unlock.all());
    let plan = repo.ok(&["plan", "web", "--detailed-exitcode"], 0);
    assert!(plan.stdout.contains("No changes."), "{}", plan.all());
    let again = repo.ok(&["apply", "web", "--wait"], 0);
    assert!(
        again.stdout.contains("Deployment default/web: healthy"),
        "{}",
        again.all()
    );
}

/// Makes `paths` unwritable: `chmod a-w`, and `chattr +i` too when running as root (root
/// ignores permissions). `false` when the file system cannot be made read-only here.
fn make_read_only(paths: &[std::path::PathBuf], on: bool) -> bool {
    use std::os::unix::fs::PermissionsExt;
    for path in paths {
        let mode = if path.is_dir() { 0o755 } else { 0o644 };
        let mode = if on { mode & 0o555 } else { mode };
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode));
        let _ = std::process::Command::new("chattr")
            .arg(if on { "+i" } else { "-i" })
            .arg(path)
            .stderr(std::process::Stdio::null())
            .status();
    }
    let probe = paths[0].join("probe");
    let writable = std::fs::write(&probe, "x").is_ok();
    let _ = std::fs::remove_file(&probe);
    !writable
}

#[test]
fn read_commands_work_on_a_read_only_state() {
    let repo = Repo::new();
    plan_support::timecheck(&repo);
    repo.ok(&["apply", "overlays/dev"], 0);
    let dir = repo.path().join(".reconcile");
    let mut paths = vec![dir.clone()];
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{e}")) {
        paths.push(entry.unwrap_or_else(|e| panic!("{e}")).path());
    }
    let before = std::fs::read(dir.join("engine.db")).unwrap_or_default();
    if !make_read_only(&paths, true) {
        make_read_only(&paths, false);
        eprintln!("skipped: the state directory cannot be made read-only here");
        return;
    }
    let reads: [&[&str]; 10] = [
        &["plan", "overlays/dev", "--detailed-exitcode"],
        &["apply", "overlays/dev", "--dry-run"],
        &["engine", "get", "deploy", "-n", "timecheck-dev"],
        &[
            "engine",
            "describe",
            "deployment",
            "timecheck",
            "-n",
            "timecheck-dev",
        ],
        &["engine", "events", "-n", "timecheck-dev"],
        &["engine", "now"],
        &["rollout", "status", "timecheck", "-n", "timecheck-dev"],
        &["rollout", "history", "timecheck", "-n", "timecheck-dev"],
        &["status"],
        &["inventory", "list"],
    ];
    let mut failures = Vec::new();
    for args in reads {
        let run = repo.run(args);
        if run.code != 0 {
            failures.push(format!("{}: {}", args.join(" "), run.all()));
        }
    }
    let write = repo.run(&["engine", "advance", "1m"]);
    let after = std::fs::read(dir.join("engine.db")).unwrap_or_default();
    make_read_only(&paths, false);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(write.code, 1, "{}", write.all());
    assert!(write.stderr.contains("is read-only"), "{}", write.all());
    assert_eq!(before, after, "a read command changed the state file");
}

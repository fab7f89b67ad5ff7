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

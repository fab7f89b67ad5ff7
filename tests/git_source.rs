//! `--repo` / `--ref`: trees read from git objects (local, bare, file://, git daemon, smart
//! HTTP with basic auth), the mirror cache keyed on the SHA, credentials never printed,
//! timeouts, and saved plans that apply the commit they were made at.

mod git_support;

use git_support::{Daemon, GitRepo, HttpServer, Silent, run_in, write_app};

#[test]
fn a_ref_is_read_from_objects_and_the_work_tree_is_untouched() {
    let repo = GitRepo::new();
    write_app(&repo, 1, "1.0");
    let first = repo.commit("first");
    write_app(&repo, 3, "2.0");
    repo.commit("second");
    // Uncommitted edits are ignored by --ref and left alone.
    repo.write("base/deploy.yaml", "garbage: [\n");
    let old = run_in(
        repo.path(),
        &["render", "overlays/dev", "--ref", "HEAD~1"],
        &[],
    );
    assert_eq!(old.code, 0, "{}", old.all());
    assert!(
        old.stdout.contains("replicas: 1") && old.stdout.contains("nginx:1.0"),
        "{}",
        old.stdout
    );
    let by_sha = run_in(
        repo.path(),
        &["render", "overlays/dev", "--ref", &first[..8]],
        &[],
    );
    assert_eq!(by_sha.stdout, old.stdout);
    let new = run_in(
        repo.path(),
        &["render", "overlays/dev", "--ref", "main"],
        &[],
    );
    assert!(new.stdout.contains("replicas: 3"), "{}", new.all());
    assert_eq!(repo.read("base/deploy.yaml"), "garbage: [\n");
    // Without --ref the work tree is read, as before.
    let disk = run_in(repo.path(), &["render", "overlays/dev"], &[]);
    assert_eq!(disk.code, 1, "{}", disk.all());
    let valid = run_in(
        repo.path(),
        &["validate", "overlays/dev", "--ref", "HEAD"],
        &[],
    );
    assert_eq!(valid.code, 0, "{}", valid.all());
}

#[test]
fn bare_repositories_and_unknown_refs() {
    let repo = GitRepo::new();
    write_app(&repo, 2, "1.0");
    repo.commit("first");
    let holder = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let bare = repo.bare_clone(&holder.path().join("app.git"));
    let bare_text = bare.display().to_string();
    let out = run_in(
        holder.path(),
        &[
            "render",
            "overlays/dev",
            "--repo",
            &bare_text,
            "--ref",
            "main",
        ],
        &[],
    );
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(out.stdout.contains("replicas: 2"));
    let unknown = run_in(
        holder.path(),
        &[
            "render",
            "overlays/dev",
            "--repo",
            &bare_text,
            "--ref",
            "nope",
        ],
        &[],
    );
    assert_eq!(unknown.code, 1);
    assert!(
        unknown.stderr.contains("unknown revision \"nope\""),
        "{}",
        unknown.stderr
    );
    assert!(unknown.stdout.is_empty());
    let no_ref = run_in(
        holder.path(),
        &["render", "overlays/dev", "--repo", &bare_text],
        &[],
    );
    assert_eq!(no_ref.code, 1);
    assert!(
        no_ref.stderr.contains("bare repository needs --ref"),
        "{}",
        no_ref.stderr
    );
    let not_repo = run_in(
        holder.path(),
        &["render", "x", "--repo", "/nonexistent/dir", "--ref", "main"],
        &[],
    );
    assert_eq!(not_repo.code, 1);
    assert!(
        not_repo
            .stderr
            .contains("/nonexistent/dir: not a git repository"),
        "{}",
        not_repo.stderr
    );
}

#[cfg(unix)]
#[test]
fn symlinks_resolve_inside_the_tree_only() {
    let repo = GitRepo::new();
    write_app(&repo, 1, "1.0");
    repo.symlink("overlays/linked", "dev");
    repo.write(
        "overlays/evil/kustomization.yaml",
        "resources:\n- passwd.yaml\n",
    );
    repo.symlink("overlays/evil/passwd.yaml", "/etc/passwd");
    repo.commit("links");
    let linked = run_in(
        repo.path(),
        &["render", "overlays/linked", "--ref", "HEAD"],
        &[],
    );
    assert_eq!(linked.code, 0, "{}", linked.all());
    assert!(linked.stdout.contains("namespace: dev"));
    let evil = run_in(
        repo.path(),
        &["render", "overlays/evil", "--ref", "HEAD"],
        &[],
    );
    assert_eq!(evil.code, 1);
    assert!(evil.stderr.contains("outside the tree"), "{}", evil.stderr);
    assert!(!evil.all().contains("root:x:0"), "{}", evil.all());
}

#[test]
fn file_remotes_are_mirrored_and_a_known_sha_needs_no_network() {
    let repo = GitRepo::new();
    write_app(&repo, 1, "1.0");
    let sha = repo.commit("first");
    let holder = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let bare = repo.bare_clone(&holder.path().join("app.git"));
    let cache = holder.path().join("cache");
    let cache_text = cache.display().to_string();
    let url = format!("file://{}", bare.display());
    let env = [("RECONCILE_GIT_CACHE", cache_text.as_str())];
    let first = run_in(
        holder.path(),
        &["render", "overlays/dev", "--repo", &url],
        &env,
    );
    assert_eq!(first.code, 0, "{}", first.all());
    assert!(first.stdout.contains("replicas: 1"));
    let mirrors: Vec<_> = std::fs::read_dir(&cache)
        .unwrap_or_else(|e| panic!("{e}"))
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .collect();
    assert_eq!(mirrors.len(), 1, "one mirror per URL");
    // The remote goes away: the same SHA still renders from the cache, a branch cannot.
    std::fs::rename(&bare, holder.path().join("gone.git")).unwrap_or_else(|e| panic!("{e}"));
    let offline = run_in(
        holder.path(),
        &["render", "overlays/dev", "--repo", &url, "--ref", &sha],
        &env,
    );
    assert_eq!(offline.code, 0, "{}", offline.all());
    assert_eq!(offline.stdout, first.stdout);
    let moving = run_in(
        holder.path(),
        &["render", "overlays/dev", "--repo", &url, "--ref", "main"],
        &env,
    );
    assert_eq!(moving.code, 1);
    assert!(moving.stderr.contains("fetch failed"), "{}", moving.stderr);
    assert!(moving.stdout.is_empty());
}

#[test]
fn concurrent_runs_share_one_mirror_safely() {
    let repo = GitRepo::new();
    write_app(&repo, 1, "1.0");
    repo.commit("first");
    let holder = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let bare = repo.bare_clone(&holder.path().join("app.git"));
    let cache = holder.path().join("cache").display().to_string();
    let url = format!("file://{}", bare.display());
    let runs: Vec<_> = (0..4)
        .map(|_| {
            let (url, cache, dir) = (url.clone(), cache.clone(), holder.path().to_path_buf());
            std::thread::spawn(move || {
                run_in(
                    &dir,
                    &["render", "overlays/dev", "--repo", &url, "--ref", "main"],
                    &[("RECONCILE_GIT_CACHE", &cache)],
                )
            })
        })
        .collect();
    for run in runs {
        let run = run.join().unwrap_or_else(|_| panic!("thread"));
        assert_eq!(run.code, 0, "{}", run.all());
        assert!(run.stdout.contains("replicas: 1"));
    }
}

#[test]
fn git_daemon_remotes_work() {
    let repo = GitRepo::new();
    write_app(&repo, 4, "1.0");
    repo.commit("first");
    let holder = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    repo.bare_clone(&holder.path().join("app.git"));
    let Some(daemon) = Daemon::start(holder.path()) else {
        eprintln!("skipped: `git daemon` is not available");
        return;
    };
    let cache = holder.path().join("cache").display().to_string();
    let url = format!("git://127.0.0.1:{}/app.git", daemon.port);
    let out = run_in(
        holder.path(),
        &["render", "overlays/dev", "--repo", &url, "--ref", "main"],
        &[("RECONCILE_GIT_CACHE", &cache)],
    );
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(out.stdout.contains("replicas: 4"));
}

#[test]
fn smart_http_with_basic_auth_never_shows_the_password() {
    let repo = GitRepo::new();
    write_app(&repo, 5, "1.0");
    repo.commit("first");
    let holder = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    repo.bare_clone(&holder.path().join("app.git"));
    let password = "s3cr3t-Pa55";
    let Some(server) = HttpServer::start(holder.path(), "alice", password) else {
        eprintln!("skipped: `git http-backend` is not available");
        return;
    };
    let cache = holder.path().join("cache").display().to_string();
    let url = format!("http://127.0.0.1:{}/app.git", server.port);
    let args = [
        "render",
        "overlays/dev",
        "--repo",
        url.as_str(),
        "--ref",
        "main",
    ];
    // Without credentials: a clear refusal.
    let refused = run_in(holder.path(), &args, &[("RECONCILE_GIT_CACHE", &cache)]);
    assert_eq!(refused.code, 1, "{}", refused.all());
    assert!(
        refused.stderr.contains("authentication"),
        "{}",
        refused.stderr
    );
    // From the environment.
    let env = [
        ("RECONCILE_GIT_CACHE", cache.as_str()),
        ("RECONCILE_GIT_USERNAME", "alice"),
        ("RECONCILE_GIT_PASSWORD", password),
    ];
    let out = run_in(holder.path(), &args, &env);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(out.stdout.contains("replicas: 5"));
    assert!(!out.all().contains(password));
    // A wrong password fails without echoing it.
    let wrong = run_in(
        holder.path(),
        &args,
        &[
            ("RECONCILE_GIT_CACHE", cache.as_str()),
            ("RECONCILE_GIT_USERNAME", "alice"),
            ("RECONCILE_GIT_PASSWORD", "wrong-Secret-9"),
        ],
    );
    assert_eq!(wrong.code, 1);
    assert!(!wrong.all().contains("wrong-Secret-9"), "{}", wrong.all());
    // In the URL: used, and redacted in the plan's record of the source.
    let with_user = format!("http://alice:{password}@127.0.0.1:{}/app.git", server.port);
    // `plan` never creates a named state: make it first.
    let state = format!("engine:{}/e.db", holder.path().display());
    let reset = run_in(holder.path(), &["engine", "reset", "--target", &state], &[]);
    assert_eq!(reset.code, 0, "{}", reset.all());
    let plan = run_in(
        holder.path(),
        &[
            "plan",
            "overlays/dev",
            "--repo",
            &with_user,
            "--ref",
            "main",
            "-o",
            "json",
            "--target",
            &format!("engine:{}/e.db", holder.path().display()),
        ],
        &[("RECONCILE_GIT_CACHE", &cache)],
    );
    assert_eq!(plan.code, 0, "{}", plan.all());
    assert!(!plan.all().contains(password), "{}", plan.all());
    assert!(
        plan.stdout.contains(&format!(
            "\"repo\": \"http://***@127.0.0.1:{}/app.git\"",
            server.port
        )),
        "{}",
        plan.stdout
    );
    let bad = format!(
        "http://alice:{password}@127.0.0.1:{}/missing.git",
        server.port
    );
    let missing = run_in(
        holder.path(),
        &["render", "x", "--repo", &bad, "--ref", "main"],
        &[("RECONCILE_GIT_CACHE", &cache)],
    );
    assert_eq!(missing.code, 1);
    assert!(!missing.all().contains(password), "{}", missing.all());
    assert!(
        missing.stderr.contains("http://***@127.0.0.1"),
        "{}",
        missing.stderr
    );
}

#[test]
fn a_silent_server_times_out() {
    let server = Silent::start();
    let holder = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let cache = holder.path().join("cache").display().to_string();
    let url = format!("http://127.0.0.1:{}/app.git", server.port);
    let start = std::time::Instant::now();
    let out = run_in(
        holder.path(),
        &[
            "render",
            "x",
            "--repo",
            &url,
            "--ref",
            "main",
            "--git-timeout",
            "1s",
        ],
        &[("RECONCILE_GIT_CACHE", &cache)],
    );
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.stderr.contains("timed out"), "{}", out.stderr);
    assert!(start.elapsed() < std::time::Duration::from_secs(20));
}

#[test]
fn a_saved_plan_applies_the_commit_it_was_made_at() {
    let repo = GitRepo::new();
    write_app(&repo, 1, "1.0");
    let sha = repo.commit("first");
    let state = repo.path().join("e.db").display().to_string();
    let target = format!("engine:{state}");
    // `plan` never creates a named state: make it first.
    let reset = run_in(repo.path(), &["engine", "reset", "--target", &target], &[]);
    assert_eq!(reset.code, 0, "{}", reset.all());
    let plan_file = repo.path().join("plan.json").display().to_string();
    let plan = run_in(
        repo.path(),
        &[
            "plan",
            "overlays/dev",
            "--ref",
            "main",
            "--target",
            &target,
            "--out",
            &plan_file,
        ],
        &[],
    );
    assert_eq!(plan.code, 0, "{}", plan.all());
    let saved = std::fs::read_to_string(&plan_file).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        saved.contains(&format!("\"sha\": \"{sha}\"")) && saved.contains("\"ref\": \"main\""),
        "{saved}"
    );
    // The branch moves on; the saved plan still applies what was reviewed.
    write_app(&repo, 7, "9.9");
    repo.commit("second");
    let apply = run_in(
        repo.path(),
        &["apply", &plan_file, "--target", &target],
        &[],
    );
    assert_eq!(apply.code, 0, "{}", apply.all());
    let again = run_in(
        repo.path(),
        &[
            "plan",
            "overlays/dev",
            "--ref",
            &sha,
            "--target",
            &target,
            "--detailed-exitcode",
        ],
        &[],
    );
    assert_eq!(again.code, 0, "{}", again.all());
    let moved = run_in(
        repo.path(),
        &[
            "plan",
            "overlays/dev",
            "--ref",
            "main",
            "--target",
            &target,
            "--detailed-exitcode",
        ],
        &[],
    );
    assert_eq!(moved.code, 2, "{}", moved.all());
    assert!(moved.stdout.contains("nginx:9.9"), "{}", moved.stdout);
}

#[cfg(unix)]
#[test]
fn a_git_credential_helper_answers_for_https_and_its_password_is_never_shown() {
    use std::os::unix::fs::PermissionsExt;
    let repo = GitRepo::new();
    write_app(&repo, 6, "1.0");
    repo.commit("first");
    let holder = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    repo.bare_clone(&holder.path().join("app.git"));
    let password = "h3lper-Secret";
    let Some(server) = HttpServer::start(holder.path(), "carol", password) else {
        eprintln!("skipped: `git http-backend` is not available");
        return;
    };
    // A helper script as git users configure one (`credential.helper = /path`); it logs
    // each call so the test sees it was asked.
    let helper = holder.path().join("helper.sh");
    let calls = holder.path().join("helper-calls");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\necho \"$1\" >> '{}'\nif [ \"$1\" = get ]; then\n  cat >/dev/null\n  echo username=carol\n  echo password={password}\nfi\n",
            calls.display()
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("{e}"));
    // HOME is the holder for the run: its ~/.gitconfig names the helper.
    std::fs::write(
        holder.path().join(".gitconfig"),
        format!("[credential]\n\thelper = {}\n", helper.display()),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let cache = holder.path().join("cache").display().to_string();
    let url = format!("http://127.0.0.1:{}/app.git", server.port);
    let out = run_in(
        holder.path(),
        &["render", "overlays/dev", "--repo", &url, "--ref", "main"],
        &[("RECONCILE_GIT_CACHE", &cache)],
    );
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(out.stdout.contains("replicas: 6"), "{}", out.stdout);
    assert!(!out.all().contains(password));
    let asked = std::fs::read_to_string(&calls).unwrap_or_default();
    assert!(asked.lines().any(|l| l == "get"), "{asked:?}");
}

#[test]
fn an_unreachable_ssh_remote_fails_clearly_within_the_timeout() {
    // No sshd here: this covers the ssh path up to the connection (URL parsing, the
    // timeout, the message); authentication over ssh needs a server and is not tested.
    let holder = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let cache = holder.path().join("cache").display().to_string();
    let port = git_support::free_port();
    let url = format!("ssh://git@127.0.0.1:{port}/org/app.git");
    let started = std::time::Instant::now();
    let out = run_in(
        holder.path(),
        &[
            "render",
            "overlays/dev",
            "--repo",
            &url,
            "--ref",
            "main",
            "--git-timeout",
            "5s",
        ],
        &[("RECONCILE_GIT_CACHE", &cache)],
    );
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.stderr.contains(&url), "{}", out.stderr);
    assert!(
        out.stderr.contains("fetch failed") || out.stderr.contains("timed out"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.is_empty());
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
}

//! `reconcile promote`, end to end on real repositories made with `git2`: the dry run's file
//! and rendered diffs (golden), only the changed bytes written, `--commit`, `--branch`,
//! `--message`, refusals (uncommitted target, mutable tag, nothing to promote), a layout
//! with several environments and components driven by `promotion:` rules (copy, set,
//! creating a missing path), JSON output, and `--repo URL` (dry run; commit pushed as a
//! branch).

mod git_support;

use git_support::{GitRepo, Run, golden, run_in};
use serde_json::Value;

fn configure_author(repo: &GitRepo) {
    let mut config = repo.repo.config().unwrap_or_else(|e| panic!("{e}"));
    config
        .set_str("user.name", "Promoter")
        .unwrap_or_else(|e| panic!("{e}"));
    config
        .set_str("user.email", "promoter@example.com")
        .unwrap_or_else(|e| panic!("{e}"));
}

const DEPLOY: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  selector:\n    matchLabels:\n      app: web\n  template:\n    metadata:\n      labels:\n        app: web\n    spec:\n      containers:\n      - name: web\n        image: registry.example.com/web\n      - name: api\n        image: api\n";

/// base + dev + prod, dev pinning new versions, prod hand-written with comments, quoting,
/// a blank line and no final newline.
const PROD: &str = "# Production: edit with care\nnamespace: prod\nresources:\n- ../../base\n\nimages:\n  # the web front\n  - name: registry.example.com/web\n    newTag: '1.1'   # pinned by hand\n  - name: db\n    newTag: \"9\"\ncommonLabels:\n  env: prod";

fn two_envs(repo: &GitRepo) {
    configure_author(repo);
    repo.write("base/kustomization.yaml", "resources:\n- deploy.yaml\n");
    repo.write("base/deploy.yaml", DEPLOY);
    repo.write(
        "overlays/dev/kustomization.yaml",
        "namespace: dev\nresources:\n- ../../base\nimages:\n- name: registry.example.com/web\n  newTag: \"1.2\"\n- name: api\n  newName: registry.example.com/api\n  digest: sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n",
    );
    repo.write("overlays/prod/kustomization.yaml", PROD);
}

const PROD_AFTER: &str = "# Production: edit with care\nnamespace: prod\nresources:\n- ../../base\n\nimages:\n  # the web front\n  - name: registry.example.com/web\n    newTag: '1.2'   # pinned by hand\n  - name: db\n    newTag: \"9\"\n  - name: api\n    newName: registry.example.com/api\n    digest: sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\ncommonLabels:\n  env: prod";

fn promote(repo: &GitRepo, extra: &[&str]) -> Run {
    let mut args = vec!["promote", "--from", "overlays/dev", "--to", "overlays/prod"];
    args.extend_from_slice(extra);
    run_in(repo.path(), &args, &[])
}

fn head(repo: &GitRepo) -> String {
    repo.sha("HEAD")
}

fn clean_work_tree(repo: &GitRepo) -> bool {
    repo.repo
        .statuses(None)
        .map(|s| s.iter().all(|e| e.status().is_ignored()))
        .unwrap_or(false)
}

#[test]
fn a_dry_run_shows_both_diffs_and_writes_nothing() {
    let repo = GitRepo::new();
    two_envs(&repo);
    let before = repo.commit("envs");
    let run = promote(&repo, &["--dry-run"]);
    assert_eq!(run.code, 0, "{}", run.all());
    golden("promote", "dry-run.txt", &run.stdout);
    assert_eq!(repo.read("overlays/prod/kustomization.yaml"), PROD);
    assert_eq!(head(&repo), before);
    assert!(clean_work_tree(&repo));
}

#[test]
fn only_the_changed_bytes_are_written() {
    let repo = GitRepo::new();
    two_envs(&repo);
    let before = repo.commit("envs");
    let run = promote(&repo, &[]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(run.stdout.contains("Wrote 1 file(s)."), "{}", run.stdout);
    assert_eq!(repo.read("overlays/prod/kustomization.yaml"), PROD_AFTER);
    // Written, not committed.
    assert_eq!(head(&repo), before);
    // The promoted overlay renders the new images.
    let render = run_in(repo.path(), &["render", "overlays/prod"], &[]);
    assert_eq!(render.code, 0, "{}", render.all());
    assert!(
        render.stdout.contains("image: registry.example.com/web:1.2")
            && render.stdout.contains("image: registry.example.com/api@sha256:0123"),
        "{}",
        render.stdout
    );
    // Promoting again: nothing to promote, nothing written.
    let again = promote(&repo, &[]);
    assert_eq!(again.code, 0, "{}", again.all());
    assert_eq!(again.stdout, "nothing to promote\n");
}

#[test]
fn commit_records_one_line_per_change_and_branch_makes_a_pull_request_branch() {
    let repo = GitRepo::new();
    two_envs(&repo);
    let before = repo.commit("envs");
    let run = promote(&repo, &["--commit", "--branch", "promote/prod"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(run.stdout.contains("on branch promote/prod"), "{}", run.stdout);
    assert_eq!(repo.current_branch(), "promote/prod");
    assert_eq!(repo.sha("main"), before, "main is left alone");
    let commit = repo
        .repo
        .find_commit(git2::Oid::from_str(&head(&repo)).unwrap_or_else(|e| panic!("{e}")))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(commit.parent_id(0).ok().map(|p| p.to_string()), Some(before));
    assert_eq!(commit.author().name().ok(), Some("Promoter"));
    let message = commit.message().unwrap_or_default().to_string();
    assert!(message.starts_with("promote overlays/dev → overlays/prod\n"), "{message}");
    assert!(
        message.contains("- overlays/prod/kustomization.yaml: image registry.example.com/web newTag: 1.1 → 1.2"),
        "{message}"
    );
    assert_eq!(message.matches("\n- ").count(), 2, "{message}");
    assert!(clean_work_tree(&repo), "the commit holds every edit");
    assert_eq!(repo.read("overlays/prod/kustomization.yaml"), PROD_AFTER);
    // Nothing left to promote: no empty commit.
    let tip = head(&repo);
    let again = promote(&repo, &["--commit"]);
    assert_eq!(again.code, 0, "{}", again.all());
    assert_eq!(again.stdout, "nothing to promote\n");
    assert_eq!(head(&repo), tip);
}

#[test]
fn commit_with_a_message_on_the_current_branch() {
    let repo = GitRepo::new();
    two_envs(&repo);
    repo.commit("envs");
    let run = promote(&repo, &["--commit", "--message", "Release 1.2 to prod", "-o", "json"]);
    assert_eq!(run.code, 0, "{}", run.all());
    let report: Value = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report["commit"].as_str(), Some(head(&repo).as_str()));
    assert_eq!(report["dryRun"], false);
    assert_eq!(report["changes"].as_array().map(Vec::len), Some(2), "{report:#}");
    assert_eq!(report["files"][0]["path"], "overlays/prod/kustomization.yaml");
    assert_eq!(repo.current_branch(), "main");
    let commit = repo
        .repo
        .head()
        .and_then(|h| h.peel_to_commit())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(commit.message().ok(), Some("Release 1.2 to prod"));
}

#[test]
fn refusals_change_nothing() {
    let repo = GitRepo::new();
    two_envs(&repo);
    let before = repo.commit("envs");
    // The target has uncommitted edits: --commit refuses, the edit stays as it was.
    repo.write("overlays/prod/kustomization.yaml", &format!("{PROD}\n# local edit\n"));
    let run = promote(&repo, &["--commit"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(run.stderr.contains("uncommitted changes"), "{}", run.stderr);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert_eq!(
        repo.read("overlays/prod/kustomization.yaml"),
        format!("{PROD}\n# local edit\n")
    );
    assert_eq!(head(&repo), before);
    repo.write("overlays/prod/kustomization.yaml", PROD);

    // A mutable tag in the source: refused, naming the file and the image.
    for source in ["  newTag: latest\n", "  newName: registry.example.com/web2\n"] {
        repo.write(
            "overlays/dev/kustomization.yaml",
            &format!("namespace: dev\nresources:\n- ../../base\nimages:\n- name: registry.example.com/web\n{source}"),
        );
        let run = promote(&repo, &[]);
        assert_eq!(run.code, 1, "{}", run.all());
        assert!(
            run.stderr.contains("overlays/dev/kustomization.yaml")
                && run.stderr.contains("mutable tag")
                && run.stderr.contains("registry.example.com/web"),
            "{}",
            run.stderr
        );
        assert_eq!(repo.read("overlays/prod/kustomization.yaml"), PROD);
    }

    // Bad folders and flags.
    for (args, says) in [
        (vec!["promote", "--from", "overlays/dev", "--to", "overlays/nope"], "overlays/nope"),
        (vec!["promote", "--from", "overlays/dev", "--to", "overlays/dev"], "same folder"),
        (vec!["promote", "--from", "base", "--to", "overlays/prod", "--ref", "main"], "--ref"),
        (vec!["promote", "--from", "overlays/dev", "--to", "overlays/prod", "--branch", "x"], "--commit"),
    ] {
        let run = run_in(repo.path(), &args, &[]);
        assert_eq!(run.code, 1, "{args:?}: {}", run.all());
        assert!(run.stderr.contains(says), "{args:?}: {}", run.stderr);
    }
    assert_eq!(repo.read("overlays/prod/kustomization.yaml"), PROD);
}

/// qa → staging-eu → prod-eu: region and prod/non-prod components, staging and prod sharing
/// a namespace, a version file copied between env folders and values set by path.
fn many_envs(repo: &GitRepo) {
    configure_author(repo);
    repo.write("base/kustomization.yaml", "resources:\n- deploy.yaml\n");
    repo.write("base/deploy.yaml", DEPLOY);
    repo.write(
        "components/eu/kustomization.yaml",
        "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\ncommonLabels:\n  region: eu\n",
    );
    repo.write(
        "components/non-prod/kustomization.yaml",
        "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\ncommonAnnotations:\n  tier: non-prod\n",
    );
    repo.write(
        "components/prod/kustomization.yaml",
        "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\ncommonAnnotations:\n  tier: prod\n",
    );
    let env = |name: &str, namespace: &str, components: &str, tag: &str, values: &str| {
        repo.write(
            &format!("envs/{name}/kustomization.yaml"),
            &format!(
                "namespace: {namespace}\nresources:\n- ../../base\ncomponents:\n{components}configMapGenerator:\n- name: version\n  files:\n  - version.yml\n  - values.yaml\nimages:\n- name: registry.example.com/web\n  newTag: {tag}\n"
            ),
        );
        repo.write(&format!("envs/{name}/values.yaml"), values);
    };
    env(
        "qa",
        "qa",
        "- ../../components/non-prod\n",
        "v3.0.0",
        "app:\n  replicas: 1\n  feature:\n    flag: \"on\"\n    level: 3\n",
    );
    env(
        "staging-eu",
        "web-eu",
        "- ../../components/non-prod\n- ../../components/eu\n",
        "v2.0.0",
        "app:\n  replicas: 2 # staging size\n  feature:\n    flag: \"off\"\n",
    );
    env(
        "prod-eu",
        "web-eu",
        "- ../../components/prod\n- ../../components/eu\n",
        "v1.0.0",
        "# prod values\napp:\n  replicas: 5\n",
    );
    repo.write("envs/qa/version.yml", "version: 3.0.0\nbuilt: 2026-12-01\n");
    repo.write("envs/staging-eu/version.yml", "version: 2.0.0\nbuilt: 2026-11-01\n");
    repo.write("envs/prod-eu/version.yml", "version: 1.0.0\nbuilt: 2026-10-01\n");
    repo.write(
        "reconcile.yaml",
        "applications:\n- name: qa\n  path: envs/qa\n- name: staging-eu\n  path: envs/staging-eu\n- name: prod-eu\n  path: envs/prod-eu\npromotion:\n- from: envs/qa\n  to: envs/staging-eu\n  copy: [version.yml]\n  set:\n  - file: values.yaml\n    paths: [app.feature.flag, app.feature.level]\n- from: envs/staging-eu\n  to: envs/prod-eu\n  copy: [version.yml]\n  set:\n  - file: values.yaml\n    paths: [app.feature.flag, app.feature.level]\n",
    );
}

#[test]
fn several_environments_are_promoted_step_by_step_by_their_rules() {
    let repo = GitRepo::new();
    many_envs(&repo);
    repo.commit("envs");
    let step = |from: &str, to: &str| {
        let run = run_in(
            repo.path(),
            &["promote", "--from", from, "--to", to, "--commit"],
            &[],
        );
        assert_eq!(run.code, 0, "{from} → {to}: {}", run.all());
        run
    };
    let run = step("envs/qa", "envs/staging-eu");
    assert!(run.stdout.contains("copy version.yml"), "{}", run.stdout);
    assert_eq!(
        repo.read("envs/staging-eu/values.yaml"),
        "app:\n  replicas: 2 # staging size\n  feature:\n    flag: \"on\"\n    level: 3\n",
        "flag set in place, level added under feature; replicas untouched"
    );
    assert_eq!(repo.read("envs/staging-eu/version.yml"), repo.read("envs/qa/version.yml"));
    assert!(
        repo.read("envs/staging-eu/kustomization.yaml").contains("newTag: v3.0.0"),
        "images carried too"
    );
    // prod has no `feature:` at all: it is created under app, at app's indentation.
    step("envs/staging-eu", "envs/prod-eu");
    assert_eq!(
        repo.read("envs/prod-eu/values.yaml"),
        "# prod values\napp:\n  replicas: 5\n  feature:\n    flag: \"on\"\n    level: 3\n"
    );
    assert!(repo.read("envs/prod-eu/kustomization.yaml").contains("newTag: v3.0.0"));
    assert!(clean_work_tree(&repo));
    // Each env kept its own components and its shared namespace.
    let render = run_in(repo.path(), &["render", "envs/prod-eu"], &[]);
    assert_eq!(render.code, 0, "{}", render.all());
    assert!(
        render.stdout.contains("namespace: web-eu")
            && render.stdout.contains("tier: prod")
            && render.stdout.contains("region: eu")
            && render.stdout.contains("version: 3.0.0"),
        "{}",
        render.stdout
    );
    // qa → prod-eu directly has no rule: only images are carried, and they are the same.
    let run = run_in(
        repo.path(),
        &["promote", "--from", "envs/qa", "--to", "envs/prod-eu", "--dry-run"],
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(run.stdout, "nothing to promote\n");
}

#[test]
fn a_remote_is_promoted_by_pushing_a_branch() {
    let repo = GitRepo::new();
    two_envs(&repo);
    let before = repo.commit("envs");
    let bare_dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let bare = repo.bare_clone(&bare_dir.path().join("origin.git"));
    let url = format!("file://{}", bare.display());
    let work = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let cache = work.path().join("cache");
    let gitconfig = work.path().join(".gitconfig");
    std::fs::write(
        &gitconfig,
        "[user]\n\tname = Promoter\n\temail = promoter@example.com\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    // HOME is the work dir: the author comes from its ~/.gitconfig.
    let env = [("RECONCILE_GIT_CACHE", cache.to_str().unwrap_or_default())];
    let remote = |extra: &[&str]| {
        let mut args = vec![
            "promote", "--repo", &url, "--from", "overlays/dev", "--to", "overlays/prod",
        ];
        args.extend_from_slice(extra);
        run_in(work.path(), &args, &env)
    };
    // No work tree: a plain run says what to do instead.
    let run = remote(&[]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(run.stderr.contains("--dry-run") && run.stderr.contains("--commit"), "{}", run.stderr);
    // The dry run is the local one's.
    let dry = remote(&["--dry-run"]);
    assert_eq!(dry.code, 0, "{}", dry.all());
    let local = promote(&repo, &["--dry-run"]);
    assert_eq!(dry.stdout, local.stdout);
    // --commit needs a branch to push to.
    let run = remote(&["--commit"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(run.stderr.contains("--branch"), "{}", run.stderr);
    // A new branch for a pull request: the remote gets it, main stays.
    let run = remote(&["--commit", "--branch", "promote/prod"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(run.stdout.contains("as branch promote/prod"), "{}", run.stdout);
    let origin = git2::Repository::open_bare(&bare).unwrap_or_else(|e| panic!("{e}"));
    let tip = origin
        .revparse_single("refs/heads/promote/prod")
        .and_then(|o| o.peel_to_commit())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(tip.parent_id(0).ok().map(|p| p.to_string()), Some(before.clone()));
    assert_eq!(tip.author().name().ok(), Some("Promoter"));
    let blob = tip
        .tree()
        .and_then(|t| t.get_path(std::path::Path::new("overlays/prod/kustomization.yaml")))
        .and_then(|e| origin.find_blob(e.id()))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(String::from_utf8_lossy(blob.content()), PROD_AFTER);
    assert_eq!(
        origin.revparse_single("main").map(|o| o.id().to_string()).ok(),
        Some(before)
    );
    // The same branch again is refused rather than overwritten.
    let run = remote(&["--commit", "--branch", "promote/prod"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(run.stderr.contains("already exists"), "{}", run.stderr);
    // Onto main itself with --ref main.
    let run = remote(&["--commit", "--ref", "main"]);
    assert_eq!(run.code, 0, "{}", run.all());
    let main = origin
        .revparse_single("main")
        .and_then(|o| o.peel_to_commit())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(main.message().ok().map(|m| m.starts_with("promote overlays/dev")), Some(true));
}

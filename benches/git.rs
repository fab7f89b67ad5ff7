//! Git benchmark: `reconcile diff` between two commits of the generated 300-app monorepo
//! (`benches/monorepo`, one application per prod overlay in reconcile.yaml), and reading a
//! tree from git objects against reading the same files from disk.
//!
//! Run with `cargo bench --bench git` (`-- --apps N` to change the size, `-- --no-kubectl`
//! to skip the oracle). It prints, best of 3:
//! 1. `diff` after a commit that changes one overlay (one app affected), and after one that
//!    changes every app's base (all affected), each beside `kubectl kustomize` rendering
//!    the affected apps at both revisions (for all apps: the `all-prod` aggregate, twice);
//! 2. reading every file of the tree from git objects (`GitFs`) and from disk (`DiskFs`), and
//!    rendering every prod overlay from each, with the ratios.
//!
//! It is a benchmark, not a test: it prints figures and fails only if a step fails.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use reconcile::source::git::{DEFAULT_TIMEOUT, GitOptions, GitSource};
use reconcile::source::{DiskFs, EntryKind, Fs};

mod monorepo;
use monorepo::{generate_monorepo, write};

fn main() {
    let apps = arg_value("--apps")
        .and_then(|n| n.parse().ok())
        .unwrap_or(300);
    let dir = tempfile::tempdir().expect("temporary directory");
    let root = dir.path();
    let overlays = generate_monorepo(root, apps);
    let mut config = String::from("applications:\n");
    for i in 0..apps {
        config.push_str(&format!(
            "- name: app{i:03}\n  path: apps/app{i:03}/overlays/prod\n"
        ));
    }
    write(&root.join("reconcile.yaml"), &config);
    let repo = git2::Repository::init(root).expect("git init");
    let first = commit(&repo, "monorepo");
    println!("generated and committed {apps} apps in {}", root.display());

    // One overlay changed.
    let one = root.join("apps/app007/overlays/prod/patch.yaml");
    let text = std::fs::read_to_string(&one).expect("patch");
    write(&one, &text.replace("cpu: 500m", "cpu: 750m"));
    let second = commit(&repo, "app007: more cpu");
    // Every app's base changed.
    for i in 0..apps {
        let base = root.join(format!("apps/app{i:03}/base/deployment.yaml"));
        let text = std::fs::read_to_string(&base).expect("deployment");
        write(&base, &text.replace("containerPort: 8080", "containerPort: 8081"));
    }
    let third = commit(&repo, "every base: port 8081");

    let binary = PathBuf::from(env!("CARGO_BIN_EXE_reconcile"));
    let kubectl = (!has_flag("--no-kubectl"))
        .then(which_kubectl)
        .flatten();
    let one_prod = root.join("apps/app007/overlays/prod");
    let all_prod = root.join("all-prod");
    for (what, base, head, affected, oracle) in [
        ("one overlay changed", &first, &second, 1, vec![one_prod.clone(), one_prod]),
        (
            "every base changed",
            &second,
            &third,
            apps,
            vec![all_prod.clone(), all_prod.clone()],
        ),
    ] {
        let time = best_of(3, || {
            let out = Command::new(&binary)
                .args(["diff", "--base", base, "--head", head, "-o", "json"])
                .current_dir(root)
                .output()
                .expect("run reconcile diff");
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            let report: serde_json::Value =
                serde_json::from_slice(&out.stdout).expect("diff JSON");
            let changed = report["summary"]["changedApps"].as_u64().unwrap_or(0);
            assert_eq!(changed as usize, affected, "{what}: changed apps");
        });
        println!("reconcile diff, {what} ({affected} app(s) affected): {}", fmt(time));
        if let Some(kubectl) = &kubectl {
            // The work tree is at the last commit; rendering it twice costs what rendering
            // the two revisions costs.
            let theirs = best_of(1, || {
                for dir in &oracle {
                    let out = Command::new(kubectl)
                        .arg("kustomize")
                        .arg(dir)
                        .output()
                        .expect("run kubectl");
                    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
                }
            });
            println!(
                "kubectl kustomize of the affected apps at both revisions: {} (ratio: reconcile diff is {:.1}x faster)",
                fmt(theirs),
                theirs.as_secs_f64() / time.as_secs_f64().max(1e-9)
            );
        }
    }

    // Reading the tree: git objects against the same files on disk.
    let options = GitOptions::from_vars(|_| None, DEFAULT_TIMEOUT);
    let source = GitSource::open(&root.display().to_string(), &options).expect("open");
    let git_read = best_of(3, || {
        let fs = source.tree(&third).expect("tree");
        let bytes: usize = fs.files().iter().map(|f| fs.read(f).map_or(0, |b| b.len())).sum();
        assert!(bytes > 0);
    });
    let disk_read = best_of(3, || {
        let fs = DiskFs::new(root).expect("disk");
        let mut files = Vec::new();
        walk(&fs, root, &mut files);
        let bytes: usize = files.iter().map(|f| fs.read(f).map_or(0, |b| b.len())).sum();
        assert!(bytes > 0);
    });
    println!(
        "read every file: git objects {} vs disk {} (ratio {:.2}x)",
        fmt(git_read),
        fmt(disk_read),
        git_read.as_secs_f64() / disk_read.as_secs_f64().max(1e-9)
    );
    let prod: Vec<&PathBuf> = overlays.iter().filter(|o| o.ends_with("prod")).collect();
    let tree_root = source.tree_root();
    let git_render = best_of(3, || {
        let fs = source.tree(&third).expect("tree");
        for overlay in &prod {
            let relative = overlay.strip_prefix(root).expect("inside");
            reconcile::render::render(&fs, &tree_root.join(relative)).expect("render");
        }
    });
    let disk_render = best_of(3, || {
        let fs = DiskFs::new(root).expect("disk");
        for overlay in &prod {
            reconcile::render::render(&fs, overlay).expect("render");
        }
    });
    println!(
        "render {} prod overlays: from git objects {} vs from disk {} (ratio {:.2}x)",
        prod.len(),
        fmt(git_render),
        fmt(disk_render),
        git_render.as_secs_f64() / disk_render.as_secs_f64().max(1e-9)
    );
}

/// Every file under `dir` except `.git`.
fn walk(fs: &DiskFs, dir: &Path, out: &mut Vec<PathBuf>) {
    for name in fs.list_dir(dir).expect("list") {
        if name == ".git" {
            continue;
        }
        let path = dir.join(&name);
        match fs.entry_kind(&path).expect("kind") {
            Some(EntryKind::Dir) => walk(fs, &path, out),
            Some(EntryKind::File) => out.push(path),
            _ => {}
        }
    }
}

fn commit(repo: &git2::Repository, message: &str) -> String {
    let mut index = repo.index().expect("index");
    index
        .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
        .expect("add");
    index.write().expect("write index");
    let tree = repo
        .find_tree(index.write_tree().expect("write tree"))
        .expect("tree");
    let signature = git2::Signature::now("bench", "bench@example.com").expect("signature");
    let parent = repo.head().ok().and_then(|h| h.peel_to_commit().ok());
    let parents: Vec<&git2::Commit> = parent.iter().collect();
    repo.commit(Some("HEAD"), &signature, &signature, message, &tree, &parents)
        .expect("commit")
        .to_string()
}

fn arg_value(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    let at = args.iter().position(|a| a == name)?;
    args.get(at + 1).cloned()
}

fn has_flag(name: &str) -> bool {
    std::env::args().any(|a| a == name)
}

fn best_of(runs: usize, mut f: impl FnMut()) -> Duration {
    let mut best = Duration::MAX;
    for _ in 0..runs {
        let start = Instant::now();
        f();
        best = best.min(start.elapsed());
    }
    best
}

fn which_kubectl() -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|p| Path::new(p).join("kubectl"))
        .find(|p| p.is_file())
}

fn fmt(d: Duration) -> String {
    if d.as_secs_f64() >= 1.0 {
        format!("{:.2} s", d.as_secs_f64())
    } else {
        format!("{:.1} ms", d.as_secs_f64() * 1000.0)
    }
}

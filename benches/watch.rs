//! Watcher benchmark on the engine: the 300-application monorepo of `plan_apply` committed to
//! a real git repository, driven in-process by the controller's loop (`Controller::cycle`).
//!
//! Run with `cargo bench --bench watch` (add `-- --apps N`). It prints:
//! 1. cold start: wall time until every application is Synced and Healthy (the engine's
//!    clock follows the wall clock at `--speed 60`, as `reconcile watch --speed 60` would);
//! 2. a poll cycle with nothing changed (the ref read every cycle): CPU per cycle;
//! 3. one commit changing one application's image: wall and CPU until it is synced;
//! 4. resident memory after 100 and after 1,000 idle cycles (flat is the goal).
//!
//! It is a benchmark, not a test: it prints figures and fails only if the loop misbehaves.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use reconcile::controller::decide::SyncStatus;
use reconcile::controller::http::Shared;
use reconcile::controller::metrics::Metrics;
use reconcile::controller::source::Source;
use reconcile::controller::watch::{Controller, Options};
use reconcile::engine::Engine;
use reconcile::rollout::health::Status as Health;

fn main() {
    let apps = parse_apps_arg().unwrap_or(300);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temporary directory: {e}"));
    let root = dir.path();
    let repo = git2::Repository::init(root).unwrap_or_else(|e| panic!("git init: {e}"));
    generate(root, apps);
    commit(&repo, "monorepo");
    println!("generated and committed {apps} apps in {}", root.display());

    let engine =
        Engine::open(&root.join(".reconcile/engine.db")).unwrap_or_else(|e| panic!("engine: {e}"));
    let (commands, _receiver) = tokio::sync::mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        apps: RwLock::new(Vec::new()),
        ready: AtomicBool::new(false),
        metrics: Metrics::new(),
        commands,
        webhook_secret: None,
        reference: None,
        plans: RwLock::default(),
    });
    let source = Source::open(
        &root.display().to_string(),
        None,
        &reconcile::source::git::GitOptions::from_vars(
            |_| None,
            reconcile::source::git::DEFAULT_TIMEOUT,
        ),
    )
    .unwrap_or_else(|e| panic!("source: {e}"));
    let options = Options {
        interval: Duration::ZERO,
        speed: 60.0,
        holder: "bench".to_string(),
        targets: Default::default(),
    };

    let cold = Instant::now();
    let cpu_cold = cpu_seconds();
    let mut controller = Controller::new(
        source,
        Box::new(engine),
        options,
        shared,
        Box::new(|_| {}),
        Arc::new(AtomicBool::new(false)),
    )
    .unwrap_or_else(|e| panic!("controller: {e}"));
    let mut cycles = 0;
    while !converged(&controller, None) {
        cycle(&mut controller);
        cycles += 1;
        if cold.elapsed() > Duration::from_secs(300) {
            panic!("not converged in 5 minutes");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let cold_wall = cold.elapsed();
    println!(
        "cold start, {apps} apps Synced and Healthy: {:.3}s wall, {:.3}s CPU, {cycles} cycles",
        cold_wall.as_secs_f64(),
        cpu_seconds() - cpu_cold
    );

    // Idle cycles: the ref is read every cycle (interval 0); nothing changed.
    let idle = 100;
    let cpu = cpu_seconds();
    let wall = Instant::now();
    for _ in 0..idle {
        cycle(&mut controller);
    }
    let idle_cpu = (cpu_seconds() - cpu) / f64::from(idle);
    println!(
        "poll cycle, nothing changed: {:.1} ms CPU per cycle ({:.1} ms wall), target < 100 ms",
        idle_cpu * 1000.0,
        wall.elapsed().as_secs_f64() * 1000.0 / f64::from(idle)
    );
    let rss_100 = rss_kib();

    // One application's image changed in a commit.
    let file = root.join("apps/app-7/overlays/dev/kustomization.yaml");
    let text = std::fs::read_to_string(&file).unwrap_or_default();
    std::fs::write(&file, text.replace("newTag: \"1.0\"", "newTag: \"1.1\""))
        .unwrap_or_else(|e| panic!("{e}"));
    let sha = commit(&repo, "app-7 1.1");
    let cpu = cpu_seconds();
    let wall = Instant::now();
    let mut cycles = 0;
    while !synced_at(&controller, "app-7", &sha) {
        cycle(&mut controller);
        cycles += 1;
        if wall.elapsed() > Duration::from_secs(60) {
            panic!("app-7 not synced in a minute");
        }
    }
    println!(
        "one changed app detected, rendered, planned, applied: {:.1} ms wall, {:.1} ms CPU, {cycles} cycle(s), target < 300 ms",
        wall.elapsed().as_secs_f64() * 1000.0,
        (cpu_seconds() - cpu) * 1000.0
    );

    for _ in 0..900 {
        cycle(&mut controller);
    }
    let rss_1000 = rss_kib();
    println!(
        "resident memory: {} MiB after 100 idle cycles, {} MiB after 1,000",
        rss_100 / 1024,
        rss_1000 / 1024
    );
}

fn cycle(controller: &mut Controller) {
    controller.cycle().unwrap_or_else(|e| panic!("cycle: {e}"));
}

fn converged(controller: &Controller, sha: Option<&str>) -> bool {
    controller.statuses().iter().all(|s| {
        s.sync == SyncStatus::Synced
            && s.health == Some(Health::Healthy)
            && sha.is_none_or(|sha| s.revision.sha.as_deref() == Some(sha))
    })
}

fn synced_at(controller: &Controller, app: &str, sha: &str) -> bool {
    controller.statuses().iter().any(|s| {
        s.name == app
            && s.sync == SyncStatus::Synced
            && s.revision.sha.as_deref() == Some(sha)
            && s.history.first().is_some_and(|h| h.revision == sha)
    })
}

fn parse_apps_arg() -> Option<usize> {
    let args: Vec<String> = std::env::args().collect();
    let at = args.iter().position(|a| a == "--apps")?;
    args.get(at + 1)?.parse().ok()
}

/// User + system CPU of this process, from /proc (Linux), in seconds.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Fields 14 and 15 of stat(5), counted after the command name: 11 and 12 here.
    (ticks(11) + ticks(12)) / 100.0
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn commit(repo: &git2::Repository, message: &str) -> String {
    let mut index = repo.index().unwrap_or_else(|e| panic!("{e}"));
    index
        .add_all(
            ["apps", "reconcile.yaml"],
            git2::IndexAddOption::DEFAULT,
            None,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    index.write().unwrap_or_else(|e| panic!("{e}"));
    let tree = index
        .write_tree()
        .and_then(|id| repo.find_tree(id))
        .unwrap_or_else(|e| panic!("{e}"));
    let signature =
        git2::Signature::now("bench", "bench@example.com").unwrap_or_else(|e| panic!("{e}"));
    let parent = repo.head().ok().and_then(|h| h.peel_to_commit().ok());
    let parents: Vec<&git2::Commit> = parent.iter().collect();
    repo.commit(
        Some("HEAD"),
        &signature,
        &signature,
        message,
        &tree,
        &parents,
    )
    .unwrap_or_else(|e| panic!("{e}"))
    .to_string()
}

fn write(path: &Path, text: &str) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{}: {e}", parent.display()));
    }
    std::fs::write(path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// The same monorepo as `benches/plan_apply.rs`.
fn generate(root: &Path, apps: usize) {
    let mut config = String::from("applications:\n");
    for i in 0..apps {
        let name = format!("app-{i}");
        let base = root.join("apps").join(&name).join("base");
        write(
            &base.join("kustomization.yaml"),
            &format!(
                "resources:\n- deployment.yaml\n- service.yaml\nconfigMapGenerator:\n- name: {name}-config\n  literals:\n  - APP={name}\n"
            ),
        );
        write(
            &base.join("deployment.yaml"),
            &format!(
                "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n  replicas: 1\n  selector:\n    matchLabels:\n      app: {name}\n  template:\n    metadata:\n      labels:\n        app: {name}\n    spec:\n      containers:\n      - name: web\n        image: example/{name}\n        envFrom:\n        - configMapRef:\n            name: {name}-config\n        resources:\n          requests:\n            cpu: 10m\n            memory: 16Mi\n"
            ),
        );
        write(
            &base.join("service.yaml"),
            &format!(
                "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n  selector:\n    app: {name}\n  ports:\n  - port: 80\n"
            ),
        );
        let dev = root.join("apps").join(&name).join("overlays/dev");
        write(
            &dev.join("kustomization.yaml"),
            &format!(
                "namespace: {name}\nresources:\n- namespace.yaml\n- ../../base\nimages:\n- name: example/{name}\n  newTag: \"1.0\"\n"
            ),
        );
        write(
            &dev.join("namespace.yaml"),
            &format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n"),
        );
        config.push_str(&format!(
            "- name: {name}\n  path: apps/{name}/overlays/dev\n"
        ));
    }
    write(&root.join("reconcile.yaml"), &config);
}

//! Plan/apply benchmark on the engine: a generated monorepo of N applications (default 300)
//! listed in `reconcile.yaml`, each a base (Deployment, Service, generated ConfigMap) with a
//! dev overlay in its own namespace (one replica each: 300 pods fit the engine's 3 default nodes).
//!
//! Run with `cargo bench --bench plan_apply` (add `-- --apps N` to change the size). It times,
//! with the real binary:
//! 1. `plan` of all apps on an empty engine (everything to create);
//! 2. `apply --wait` of all apps (every object created, every Deployment healthy);
//! 3. `plan --detailed-exitcode` again (must find no changes: exit 0);
//! 4. one image changed: `plan` (must exit 2) and `apply --wait`.
//!
//! Then two scale checks (#16 item 13), each on a fresh engine state:
//! 5. `apply` of N ConfigMaps rendered from ONE file (`resources: [big.yaml]`) for every N of
//!    `--sizes` (default 5000,10000,20000,100000), and of the largest N from one file each;
//! 6. the apps applied as that many applications of `reconcile.yaml` against the same objects
//!    as one application (a kustomization listing every overlay), without `--wait`.
//!
//! `-- --only steps|scale|multi` runs one part. It is a benchmark, not a test: it prints
//! figures (with the load average, as the machine is shared) and fails only if an exit code
//! is wrong.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn main() {
    let apps = parse_apps_arg().unwrap_or(300);
    let only = arg_value("--only");
    let part = |name: &str| only.as_deref().is_none_or(|o| o == name);
    println!("load average: {}", load_average());
    if part("steps") {
        steps(apps);
    }
    if part("scale") {
        let sizes: Vec<usize> = arg_value("--sizes")
            .unwrap_or_else(|| "5000,10000,20000,100000".to_string())
            .split(',')
            .filter_map(|n| n.trim().parse().ok())
            .collect();
        scale(&sizes);
    }
    if part("multi") {
        multi(apps);
    }
    println!("load average: {}", load_average());
}

fn arg_value(flag: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    let at = args.iter().position(|a| a == flag)?;
    args.get(at + 1).cloned()
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "unknown".to_string())
}

/// `apply` of `n` ConfigMaps on a fresh state: from one file, or one file each.
fn scale(sizes: &[usize]) {
    let mut rows = Vec::new();
    let largest = sizes.iter().copied().max().unwrap_or(0);
    let shapes = sizes
        .iter()
        .map(|&n| (n, false))
        .chain((largest > 0).then_some((largest, true)));
    for (n, many_files) in shapes {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temporary directory: {e}"));
        let root = dir.path();
        std::fs::create_dir_all(root.join(".git")).unwrap_or_else(|e| panic!("{e}"));
        let config_map = |i: usize| {
            format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i}\n  namespace: scale\ndata:\n  key: value-{i}\n"
            )
        };
        if many_files {
            let mut kustomization = String::from("resources:\n");
            for i in 0..n {
                let _ = writeln!(kustomization, "- cm-{i}.yaml");
                write(&root.join(format!("app/cm-{i}.yaml")), &config_map(i));
            }
            write(&root.join("app/kustomization.yaml"), &kustomization);
        } else {
            let mut big = String::with_capacity(n * 120);
            for i in 0..n {
                big.push_str("---\n");
                big.push_str(&config_map(i));
            }
            write(&root.join("app/big.yaml"), &big);
            write(
                &root.join("app/kustomization.yaml"),
                "resources:\n- big.yaml\n",
            );
        }
        let shape = if many_files {
            "one file each"
        } else {
            "one file"
        };
        let name = format!("apply {n} ConfigMaps ({shape}), fresh state");
        let time = step(
            root,
            &[
                "apply",
                "app",
                "--create-namespace",
                "--target",
                "engine:state.db",
            ],
            0,
            &name,
        );
        rows.push((name, time, n));
    }
    println!();
    println!("| step | time | per 1,000 objects |");
    println!("|---|---:|---:|");
    for (name, time, n) in rows {
        let per = time.as_secs_f64() * 1000.0 / n.max(1) as f64;
        println!("| {name} | {} | {per:.3}s |", fmt(time));
    }
}

/// The same objects applied as `apps` applications and as one.
fn multi(apps: usize) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temporary directory: {e}"));
    let root = dir.path();
    generate(root, apps);
    let mut all = String::from("resources:\n");
    for i in 0..apps {
        let _ = writeln!(all, "- ../apps/app-{i}/overlays/dev");
    }
    write(&root.join("all/kustomization.yaml"), &all);
    let many = step(
        root,
        &["apply", "--target", "engine:many.db"],
        0,
        &format!("apply {apps} applications"),
    );
    let one = step(
        root,
        &["apply", "all", "--target", "engine:one.db"],
        0,
        "apply the same objects as one application",
    );
    println!();
    println!("| step | time |");
    println!("|---|---:|");
    println!("| apply {apps} applications (no --wait) | {} |", fmt(many));
    println!("| the same objects as one application | {} |", fmt(one));
    println!(
        "| ratio | {:.2}× |",
        many.as_secs_f64() / one.as_secs_f64().max(1e-9)
    );
}

fn steps(apps: usize) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temporary directory: {e}"));
    let root = dir.path();
    generate(root, apps);
    println!("generated {apps} apps in {}", root.display());

    let plan_create = step(
        root,
        &["plan", "--detailed-exitcode"],
        2,
        "plan (all to create)",
    );
    let wait = step(
        root,
        &["apply", "--wait", "--timeout", "30m"],
        0,
        "apply --wait (all created and healthy)",
    );
    let plan_clean = step(
        root,
        &["plan", "--detailed-exitcode"],
        0,
        "plan (no changes)",
    );
    let file = root.join("apps/app-7/overlays/dev/kustomization.yaml");
    let text = std::fs::read_to_string(&file).unwrap_or_default();
    std::fs::write(&file, text.replace("newTag: \"1.0\"", "newTag: \"1.1\""))
        .unwrap_or_else(|e| panic!("{e}"));
    let plan_one = step(
        root,
        &["plan", "--detailed-exitcode"],
        2,
        "plan (one image changed)",
    );
    let apply_one = step(
        root,
        &["apply", "--wait"],
        0,
        "apply --wait (one rolling update)",
    );
    println!();
    println!("| step | time |");
    println!("|---|---:|");
    for (name, time) in [
        ("plan, all to create", plan_create),
        ("apply --wait, all created and healthy", wait),
        ("plan, no changes", plan_clean),
        ("plan, one image changed", plan_one),
        ("apply --wait, one rolling update", apply_one),
    ] {
        println!("| {name} | {} |", fmt(time));
    }
}

fn parse_apps_arg() -> Option<usize> {
    arg_value("--apps")?.parse().ok()
}

fn step(root: &Path, args: &[&str], expected: i32, name: &str) -> Duration {
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_reconcile"))
        .args(args)
        .current_dir(root)
        .env("NO_COLOR", "1")
        .output()
        .unwrap_or_else(|e| panic!("running reconcile: {e}"));
    let elapsed = start.elapsed();
    let code = out.status.code().unwrap_or(-1);
    if code != expected {
        eprintln!("{}", String::from_utf8_lossy(&out.stdout));
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
        panic!(
            "reconcile {}: exit {code}, expected {expected}",
            args.join(" ")
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with("Plan:") || l.starts_with("Apply"))
        .unwrap_or("");
    println!("{name}: {} ({last})", fmt(elapsed));
    elapsed
}

fn fmt(d: Duration) -> String {
    format!("{:.3}s", d.as_secs_f64())
}

fn write(path: &Path, text: &str) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{}: {e}", parent.display()));
    }
    std::fs::write(path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

fn generate(root: &Path, apps: usize) {
    std::fs::create_dir_all(root.join(".git")).unwrap_or_else(|e| panic!("{e}"));
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
        let _ = writeln!(config, "- name: {name}\n  path: apps/{name}/overlays/dev");
    }
    write(&root.join("reconcile.yaml"), &config);
}

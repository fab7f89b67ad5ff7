//! Rendering benchmark: `reconcile render` against `kubectl kustomize` on a generated monorepo.
//!
//! Run with `cargo bench --bench render` (add `-- --apps N` to change the size, `-- --dir D`
//! to keep the generated tree in D). It generates
//! N applications (default 300), each a base (Deployment, Service, HPA, ConfigMap and Secret
//! generators) with dev and prod overlays (patches, images, labels, namePrefix), then:
//! 1. renders the aggregate of all prod overlays with the `reconcile` binary and with
//!    `kubectl kustomize`, checks the outputs are byte-identical and prints both times and
//!    the ratio;
//! 2. renders every overlay (dev and prod) in-process, in parallel, and prints the time;
//! 3. renders one prod overlay 1,000 times in-process, one after the other, and prints the
//!    time per render (the latency of a single small build);
//! 4. prints peak memory.
//!
//! `-- --no-kubectl` skips the oracle (it takes about a minute on 300 apps).
//!
//! It is a benchmark, not a test: it prints figures and fails only if outputs differ.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

mod monorepo;
use monorepo::generate_monorepo;

fn main() {
    let apps = arg_value("--apps")
        .and_then(|n| n.parse().ok())
        .unwrap_or(300);
    let dir = tempfile::tempdir().expect("temporary directory");
    // `--dir PATH` keeps the generated tree for profiling.
    let kept = arg_value("--dir").map(PathBuf::from);
    let root = kept.as_deref().unwrap_or(dir.path());
    let overlays = generate_monorepo(root, apps);
    let aggregate = root.join("all-prod");
    println!(
        "generated {apps} apps ({} overlays) in {}",
        overlays.len(),
        root.display()
    );

    let binary = PathBuf::from(env!("CARGO_BIN_EXE_reconcile"));
    let (ours, ours_time) = best_of(3, || run(&binary, &["render"], &aggregate));
    let resources = ours.matches("\nkind: ").count() + usize::from(ours.starts_with("kind: "));
    println!(
        "reconcile render all-prod: {} ({resources} resources)",
        fmt(ours_time)
    );

    let kubectl = if has_flag("--no-kubectl") {
        None
    } else {
        which_kubectl()
    };
    match kubectl {
        Some(kubectl) => {
            let (theirs, theirs_time) = best_of(1, || run(&kubectl, &["kustomize"], &aggregate));
            println!("kubectl kustomize all-prod: {}", fmt(theirs_time));
            if theirs != ours {
                eprintln!("OUTPUTS DIFFER: reconcile and kubectl kustomize disagree on all-prod");
                let _ = fs::write("/tmp/bench-ours.yaml", &ours);
                let _ = fs::write("/tmp/bench-kubectl.yaml", &theirs);
                eprintln!("written to /tmp/bench-ours.yaml and /tmp/bench-kubectl.yaml");
                std::process::exit(1);
            }
            println!("outputs identical: yes");
            println!(
                "ratio: reconcile is {:.1}x faster than kubectl kustomize",
                theirs_time.as_secs_f64() / ours_time.as_secs_f64()
            );
        }
        None => println!("kubectl skipped or not found: no comparison with the oracle"),
    }

    let start = Instant::now();
    let results = reconcile::render::render_many(&overlays);
    let elapsed = start.elapsed();
    let failed = results.iter().filter(|r| r.is_err()).count();
    println!(
        "in-process, parallel: {} overlays rendered in {} ({failed} failed)",
        overlays.len(),
        fmt(elapsed)
    );
    let single = overlays
        .iter()
        .find(|o| o.ends_with("prod"))
        .expect("a prod overlay");
    const SEQUENTIAL_RUNS: u32 = 1000;
    let start = Instant::now();
    let mut objects = 0;
    for _ in 0..SEQUENTIAL_RUNS {
        let built = reconcile::render::render_dir(single).expect("the overlay renders");
        objects = built.len();
    }
    let elapsed = start.elapsed();
    println!(
        "in-process, sequential: one overlay ({objects} resources) rendered {SEQUENTIAL_RUNS} times in {}, {:.0} µs per render",
        fmt(elapsed),
        elapsed.as_secs_f64() * 1e6 / f64::from(SEQUENTIAL_RUNS)
    );
    if let Some(peak) = peak_memory_kib() {
        println!(
            "peak memory (this process): {:.1} MiB",
            peak as f64 / 1024.0
        );
    }
}

fn arg_value(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    let at = args.iter().position(|a| a == name)?;
    args.get(at + 1).cloned()
}

fn has_flag(name: &str) -> bool {
    std::env::args().any(|a| a == name)
}

fn best_of(runs: usize, mut f: impl FnMut() -> String) -> (String, Duration) {
    let mut best = Duration::MAX;
    let mut output = String::new();
    for _ in 0..runs {
        let start = Instant::now();
        output = f();
        best = best.min(start.elapsed());
    }
    (output, best)
}

fn run(program: &Path, args: &[&str], dir: &Path) -> String {
    let out = Command::new(program)
        .args(args)
        .arg(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    if !out.status.success() {
        panic!(
            "{} {:?} {} failed:\n{}",
            program.display(),
            args,
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8(out.stdout).expect("utf-8 output")
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

fn peak_memory_kib() -> Option<u64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

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
//! 3. prints peak memory.
//!
//! It is a benchmark, not a test: it prints figures and fails only if outputs differ.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

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

    match which_kubectl() {
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
        None => println!("kubectl not found: skipping the comparison with the oracle"),
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

/// Writes the monorepo and returns every overlay directory.
fn generate_monorepo(root: &Path, apps: usize) -> Vec<PathBuf> {
    let mut overlays = Vec::new();
    let mut aggregate = String::from("resources:\n");
    for i in 0..apps {
        let name = format!("app{i:03}");
        let app = root.join("apps").join(&name);
        write(
            &app.join("base/kustomization.yaml"),
            &base_kustomization(&name),
        );
        write(&app.join("base/deployment.yaml"), &deployment(&name, i));
        write(&app.join("base/service.yaml"), &service(&name));
        write(&app.join("base/hpa.yaml"), &hpa(&name));
        write(
            &app.join("base/app.properties"),
            &format!("name={name}\nport=8080\nfeature.x=on\n"),
        );
        for env in ["dev", "prod"] {
            let overlay = app.join("overlays").join(env);
            write(
                &overlay.join("kustomization.yaml"),
                &overlay_kustomization(&name, env, i),
            );
            write(&overlay.join("patch.yaml"), &overlay_patch(&name, env));
            overlays.push(overlay);
        }
        writeln!(aggregate, "- ../apps/{name}/overlays/prod").expect("string write");
    }
    write(&root.join("all-prod/kustomization.yaml"), &aggregate);
    overlays
}

fn write(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().expect("a parent")).expect("create directory");
    fs::write(path, text).expect("write file");
}

fn base_kustomization(name: &str) -> String {
    format!(
        "apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
- deployment.yaml
- service.yaml
- hpa.yaml
labels:
- pairs:
    app.kubernetes.io/name: {name}
  includeSelectors: true
configMapGenerator:
- name: {name}-config
  files:
  - app.properties
  literals:
  - MODE=base
secretGenerator:
- name: {name}-secret
  literals:
  - TOKEN=t-{name}
"
    )
}

fn deployment(name: &str, i: usize) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      labels:
        app: {name}
    spec:
      containers:
      - name: main
        image: registry.example.com/team/{name}:1.0.{i}
        ports:
        - containerPort: 8080
        envFrom:
        - configMapRef:
            name: {name}-config
        env:
        - name: TOKEN
          valueFrom:
            secretKeyRef:
              name: {name}-secret
              key: TOKEN
        volumeMounts:
        - name: config
          mountPath: /etc/app
      volumes:
      - name: config
        configMap:
          name: {name}-config
",
        replicas = 1 + i % 3
    )
}

fn service(name: &str) -> String {
    format!(
        "apiVersion: v1
kind: Service
metadata:
  name: {name}
spec:
  selector:
    app: {name}
  ports:
  - port: 80
    targetPort: 8080
"
    )
}

fn hpa(name: &str) -> String {
    format!(
        "apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {name}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {name}
  minReplicas: 1
  maxReplicas: 5
  metrics:
  - type: Resource
    resource:
      name: cpu
      target:
        type: Utilization
        averageUtilization: 70
"
    )
}

fn overlay_kustomization(name: &str, env: &str, i: usize) -> String {
    format!(
        "apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: {env}-apps
namePrefix: {env}-
resources:
- ../../base
labels:
- pairs:
    environment: {env}
images:
- name: registry.example.com/team/{name}
  newTag: 2.{i}.0-{env}
replicas:
- name: {name}
  count: {count}
patches:
- path: patch.yaml
- target:
    kind: Deployment
  patch: |-
    - op: add
      path: /spec/template/metadata/annotations
      value:
        team: team-{team}
configMapGenerator:
- name: {name}-config
  behavior: merge
  literals:
  - MODE={env}
",
        count = if env == "prod" { 3 } else { 1 },
        team = i % 7
    )
}

fn overlay_patch(name: &str, env: &str) -> String {
    let (cpu, memory) = if env == "prod" {
        ("500m", "512Mi")
    } else {
        ("50m", "64Mi")
    };
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  template:
    spec:
      containers:
      - name: main
        resources:
          requests:
            cpu: {cpu}
            memory: {memory}
"
    )
}

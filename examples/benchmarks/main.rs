//! The course's Kubernetes-vs-Swarm scenarios, reproduced on the built-in engine.
//!
//! Each scenario prints the virtual time the cluster took (what a user would wait on a real
//! cluster with Kubernetes' defaults) and the wall time the engine needed to simulate it.
//! Run with `cargo run --release --example benchmarks`.

use std::time::Instant;

/// The allocator the `reconcile` binary uses (see src/main.rs), so the figures are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use reconcile::engine::clock::{Millis, format_duration};
use reconcile::engine::{Engine, NodeSpec, doc};
use serde_json::{Value, json};

fn deployment(name: &str, image: &str, replicas: i64) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": image,
                    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}}
        }
    })
}

/// Advances one second at a time until `done` holds; returns the virtual time it took.
fn until(e: &mut Engine, limit: Millis, done: impl Fn(&mut Engine) -> bool) -> Option<Millis> {
    let start = e.now_millis();
    while e.now_millis() - start <= limit {
        if done(e) {
            return Some(e.now_millis() - start);
        }
        e.advance(1000).ok()?;
    }
    None
}

fn running(e: &mut Engine, app: &str) -> Vec<Value> {
    e.list("pods", Some("default"), Some(&format!("app={app}")))
        .unwrap_or_default()
        .into_iter()
        .filter(|p| doc::str_at(p, &["status", "phase"]) == "Running" && !doc::is_deleting(p))
        .filter(|p| reconcile::engine::controllers::replicaset::ready_since(p).is_some())
        .collect()
}

fn spread(pods: &[Value]) -> String {
    let mut per: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    for p in pods {
        *per.entry(doc::str_at(p, &["spec", "nodeName"]).to_string())
            .or_default() += 1;
    }
    per.values()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(":")
}

/// CPU time this process has used, in milliseconds (Linux `/proc/self/stat`, 100 Hz ticks);
/// on a shared machine it says more than wall time about the engine's own cost.
fn cpu_ms() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line: 12 and 13 after the command name.
    (ticks(11) + ticks(12)) * 10.0
}

/// Wall and CPU time at the start of a scenario.
struct Clock {
    wall: Instant,
    cpu: f64,
}

fn start() -> Clock {
    Clock {
        wall: Instant::now(),
        cpu: cpu_ms(),
    }
}

/// Wall and CPU time a scenario took (its checks afterwards not included).
struct Measured {
    wall_ms: f64,
    cpu_ms: f64,
}

impl Clock {
    fn stop(self) -> Measured {
        Measured {
            wall_ms: self.wall.elapsed().as_secs_f64() * 1000.0,
            cpu_ms: cpu_ms() - self.cpu,
        }
    }
}

fn report(name: &str, virtual_ms: Option<Millis>, took: Measured, extra: &str) {
    let v = virtual_ms
        .map(format_duration)
        .unwrap_or_else(|| "did not finish".into());
    println!(
        "{name:<48} virtual {v:>8}   wall {:>8.1} ms   cpu {:>7.0} ms   {extra}",
        took.wall_ms, took.cpu_ms
    );
}

fn create_n(n: i64, nodes: usize) {
    let mut e = Engine::in_memory(nodes).expect("engine");
    let wall = start();
    e.create(&deployment("web", "nginx:1.25", n))
        .expect("create");
    let t = until(&mut e, 600_000, |e| running(e, "web").len() as i64 == n);
    let took = wall.stop();
    let pods = running(&mut e, "web");
    report(
        &format!("create {n} replicas on {nodes} nodes"),
        t,
        took,
        &format!("spread {}", spread(&pods)),
    );
}

/// A scenario: the name it is selected by and the code that runs and reports it.
type Scenario = (&'static str, fn());

fn main() {
    let scenarios: [Scenario; 12] = [
        ("create-10", || create_n(10, 3)),
        ("create-50", || create_n(50, 3)),
        ("create-100", || create_n(100, 3)),
        ("create-200", || create_n(200, 3)),
        ("create-200-4-nodes", || create_n(200, 4)),
        ("create-300-4-nodes", || create_n(300, 4)),
        ("scale-1-to-100", scale_1_to_100),
        ("rolling-update-10", rolling_update_10),
        ("node-power-off", node_power_off),
        ("pods-10000", pods_10000),
        ("rolling-update-1000", rolling_update_1000),
        ("failed-update-rollback", failed_update_rollback),
    ];
    // Arguments name the scenarios to run; none runs them all.
    let filters: Vec<String> = std::env::args().skip(1).collect();
    println!(
        "Kubernetes-vs-Swarm scenarios on the engine (default image: 1 s pull, 1 s startup)\n"
    );
    for (name, run) in scenarios {
        if filters.is_empty() || filters.iter().any(|f| f == name) {
            run();
        }
    }
}

/// Scale 1 → 100 on 4 nodes.
fn scale_1_to_100() {
    {
        let mut e = Engine::in_memory(4).expect("engine");
        e.create(&deployment("web", "nginx:1.25", 1))
            .expect("create");
        until(&mut e, 60_000, |e| running(e, "web").len() == 1);
        let wall = start();
        e.apply(&deployment("web", "nginx:1.25", 100))
            .expect("scale");
        let t = until(&mut e, 600_000, |e| running(e, "web").len() == 100);
        let took = wall.stop();
        let pods = running(&mut e, "web");
        report(
            "scale 1 -> 100 on 4 nodes",
            t,
            took,
            &format!("spread {}", spread(&pods)),
        );
    }
}

/// Rolling update of 10 running instances.
fn rolling_update_10() {
    {
        let mut e = Engine::in_memory(3).expect("engine");
        e.create(&deployment("web", "nginx:1.25", 10))
            .expect("create");
        until(&mut e, 60_000, |e| running(e, "web").len() == 10);
        let wall = start();
        e.apply(&deployment("web", "nginx:1.26", 10))
            .expect("update");
        let t = until(&mut e, 600_000, |e| {
            let pods = running(e, "web");
            let total = e
                .list("pods", Some("default"), Some("app=web"))
                .unwrap_or_default()
                .len();
            pods.len() == 10
                && total == 10
                && pods
                    .iter()
                    .all(|p| p.pointer("/spec/containers/0/image") == Some(&json!("nginx:1.26")))
        });
        let took = wall.stop();
        report("rolling update of 10 running instances", t, took, "");
    }
}

/// Node power-off on 4 nodes: pods moved and running elsewhere.
fn node_power_off() {
    {
        let mut e = Engine::in_memory(4).expect("engine");
        e.create(&deployment("web", "nginx:1.25", 8))
            .expect("create");
        until(&mut e, 60_000, |e| running(e, "web").len() == 8);
        let wall = start();
        e.fail_node("worker-2").expect("fail");
        let t = until(&mut e, 900_000, |e| {
            let pods = running(e, "web");
            pods.len() == 8
                && pods
                    .iter()
                    .all(|p| doc::str_at(p, &["spec", "nodeName"]) != "worker-2")
                && e.get("node", "", "worker-2")
                    .ok()
                    .flatten()
                    .is_some_and(|n| !reconcile::engine::scheduler::node_ready(&n))
        });
        let took = wall.stop();
        report(
            "node power-off, 4 nodes: pods running elsewhere",
            t,
            took,
            "(40 s grace + 300 s toleration)",
        );
    }
}

/// How many times the scale targets run; they report the median (this kind of machine is a
/// virtual one whose timings vary from run to run by a third).
const RUNS: usize = 5;

/// The median run (by wall time) and the spread of wall times.
fn median(mut runs: Vec<Measured>) -> (Measured, String) {
    runs.sort_by(|a, b| a.wall_ms.total_cmp(&b.wall_ms));
    let spread = format!(
        "median of {} runs ({:.0}..{:.0} ms)",
        runs.len(),
        runs.first().map_or(0.0, |m| m.wall_ms),
        runs.last().map_or(0.0, |m| m.wall_ms)
    );
    let mid = runs.len() / 2;
    (runs.swap_remove(mid), spread)
}

fn nodes(count: usize, cpu_millis: i64, memory: i64, pods: i64) -> Engine {
    let mut e = Engine::in_memory(0).expect("engine");
    for i in 1..=count {
        e.add_node(
            &format!("worker-{i}"),
            &NodeSpec {
                cpu_millis,
                memory,
                pods,
                labels: vec![],
            },
        )
        .expect("node");
    }
    e
}

/// Scale target: 10,000 pods scheduled, Running and Ready.
fn pods_10000() {
    let mut runs = Vec::new();
    let mut counts = Vec::new();
    for _ in 0..RUNS {
        let mut e = nodes(100, 16_000, 64 << 30, 110);
        let wall = start();
        e.create(&deployment("big", "nginx:1.25", 10_000))
            .expect("create");
        e.advance(30_000).expect("advance");
        runs.push(wall.stop());
        counts.push(running(&mut e, "big").len());
    }
    let (took, spread) = median(runs);
    report(
        "10,000 pods on 100 nodes, Running and Ready",
        Some(30_000),
        took,
        &format!("{} running, {spread}", counts.iter().min().unwrap_or(&0)),
    );
}

/// Scale target: a rolling update of 1,000 replicas.
fn rolling_update_1000() {
    let mut runs = Vec::new();
    let mut outcome = String::new();
    for _ in 0..RUNS {
        let mut e = nodes(12, 64_000, 256 << 30, 250);
        e.create(&deployment("big", "nginx:1.25", 1000))
            .expect("create");
        e.advance(30_000).expect("advance");
        let wall = start();
        e.apply(&deployment("big", "nginx:1.26", 1000))
            .expect("update");
        e.advance(120_000).expect("advance");
        runs.push(wall.stop());
        let d = e
            .get("deploy", "default", "big")
            .ok()
            .flatten()
            .unwrap_or_default();
        let updated = doc::i64_at(&d, &["status", "updatedReplicas"]).unwrap_or(0);
        let available = doc::i64_at(&d, &["status", "availableReplicas"]).unwrap_or(0);
        outcome = format!("{updated} updated, {available} available");
    }
    let (took, spread) = median(runs);
    report(
        "rolling update of 1,000 replicas (120 s virtual)",
        Some(120_000),
        took,
        &format!("{outcome}, {spread}"),
    );
}

/// Swarm's `update_config: {failure_action: rollback, monitor: 20s}`: an update of 10
/// instances to an image that crashes rolls back by itself to the last healthy revision.
/// Virtual time: from the update until all 10 pods run the old image again.
fn failed_update_rollback() {
    let mut e = Engine::in_memory(3).expect("engine");
    let with_policy = |image: &str| {
        let mut d = deployment("web", image, 10);
        d["metadata"]["annotations"] = json!({
            "reconcile.dev/failure-action": "rollback",
            "reconcile.dev/monitor": "20s",
        });
        d
    };
    e.set_image(
        "nginx:broken",
        reconcile::engine::images::ImageBehavior {
            crash: true,
            ..Default::default()
        },
    )
    .expect("image");
    e.create(&with_policy("nginx:1.25")).expect("create");
    until(&mut e, 120_000, |e| running(e, "web").len() == 10);
    e.advance(30_000).expect("monitor window");
    let wall = start();
    e.apply(&with_policy("nginx:broken")).expect("update");
    let t = until(&mut e, 900_000, |e| {
        let all = e
            .list("pods", Some("default"), Some("app=web"))
            .unwrap_or_default();
        let pods = running(e, "web");
        pods.len() == 10
            && all.len() == 10
            && pods
                .iter()
                .all(|p| p.pointer("/spec/containers/0/image") == Some(&json!("nginx:1.25")))
    });
    let took = wall.stop();
    let rolled_back = e
        .get("Deployment", "default", "web")
        .ok()
        .flatten()
        .and_then(|d| {
            doc::annotation(&d, "reconcile.dev/update-status")
                .map(|s| s.contains(r#""action":"rolled back to"#))
        })
        .unwrap_or(false);
    report(
        "failed update of 10, automatic rollback",
        t,
        took,
        if rolled_back {
            "rolled back"
        } else {
            "NOT rolled back"
        },
    );
}

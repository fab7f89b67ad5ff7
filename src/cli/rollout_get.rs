//! `reconcile rollout get NAME`: the rollout as a tree, as Argo Rollouts'
//! `kubectl argo rollouts get rollout` draws it ([`crate::rollout::view`]), `-o json`, and
//! `--watch`, which lets the engine's clock run and redraws until the rollout stops moving.

use std::io::IsTerminal;

use crate::cluster::Cluster;
use crate::engine::clock::{SECOND, human_age, parse_rfc3339};
use crate::model::ResId;
use crate::rollout::view::{self, RolloutView};

/// Virtual time between two pictures of `--watch`.
const WATCH_STEP: i64 = 5 * SECOND;

fn icon(status: &str) -> &'static str {
    match status {
        "Healthy" | "Running" | "Successful" | "Succeeded" => "✔",
        "Paused" => "॥",
        "Degraded" | "Failed" | "CrashLoopBackOff" | "ErrImagePull" | "ImagePullBackOff"
        | "Error" => "✖",
        "ScaledDown" => "•",
        "Inconclusive" => "⚠",
        _ => "◌",
    }
}

fn age(now: &str, created: &str) -> String {
    match (parse_rfc3339(now), parse_rfc3339(created)) {
        (Some(n), Some(c)) => human_age(n - c),
        _ => "<unknown>".into(),
    }
}

/// The picture as text.
pub fn render(v: &RolloutView) -> String {
    let mut out = String::new();
    let mut field = |name: &str, value: &str| {
        out.push_str(&format!("{:<16} {value}\n", format!("{name}:")));
    };
    field("Name", &v.name);
    field("Namespace", &v.namespace);
    field("Status", &format!("{} {}", icon(&v.status), v.status));
    if !v.message.is_empty() {
        field("Message", &v.message);
    }
    field("Strategy", &v.strategy);
    if let Some(step) = v.current_step {
        out.push_str(&format!("  {:<14} {step}/{}\n", "Step:", v.steps.len()));
    } else if !v.steps.is_empty() && v.set_weight.is_some() {
        out.push_str(&format!(
            "  {:<14} {}/{}\n",
            "Step:",
            v.steps.len(),
            v.steps.len()
        ));
    }
    if let Some(w) = v.set_weight {
        out.push_str(&format!("  {:<14} {w}\n", "SetWeight:"));
    }
    if let Some(w) = v.actual_weight {
        out.push_str(&format!("  {:<14} {w}\n", "ActualWeight:"));
    }
    for (i, image) in v.images.iter().enumerate() {
        let label = if i == 0 { "Images:" } else { "" };
        out.push_str(&format!("{label:<16} {} ({})\n", image.image, image.track));
    }
    out.push_str("Replicas:\n");
    for (name, n) in [
        ("Desired:", v.replicas.desired),
        ("Current:", v.replicas.current),
        ("Updated:", v.replicas.updated),
        ("Ready:", v.replicas.ready),
        ("Available:", v.replicas.available),
    ] {
        out.push_str(&format!("  {name:<14} {n}\n"));
    }
    if let Some(cause) = &v.cause {
        out.push_str(&format!("{:<16} {cause}\n", "Failing:"));
    }
    if !v.steps.is_empty() {
        out.push_str("Steps:\n");
        for (i, step) in v.steps.iter().enumerate() {
            let mark = match step.state.as_str() {
                "done" => "✔",
                "current" => "▶",
                _ => " ",
            };
            out.push_str(&format!("  {mark} {}. {}\n", i + 1, step.text));
        }
    }
    out.push('\n');
    let mut rows: Vec<[String; 5]> = vec![[
        format!("⟳ {}", v.name),
        "Deployment".into(),
        format!("{} {}", icon(&v.status), v.status),
        String::new(),
        String::new(),
    ]];
    for (ri, rev) in v.revisions.iter().enumerate() {
        let last_rev = ri + 1 == v.revisions.len();
        let (branch, pad) = if last_rev {
            ("└──", "   ")
        } else {
            ("├──", "│  ")
        };
        rows.push([
            format!("{branch}# revision:{}", rev.revision),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
        ]);
        let analysis: Vec<&view::AnalysisView> = if rev.track.is_empty() {
            Vec::new()
        } else {
            v.analysis_runs
                .iter()
                .filter(|_| rev.track != "stable" || v.revisions.len() == 1)
                .collect()
        };
        let children = 1 + analysis.len();
        rows.push([
            format!(
                "{pad}{}⧉ {}",
                if children == 1 {
                    "└──"
                } else {
                    "├──"
                },
                rev.replica_set
            ),
            "ReplicaSet".into(),
            format!("{} {}", icon(&rev.status), rev.status),
            age(&v.now, &rev.created),
            rev.track.clone(),
        ]);
        let rs_pad = if children == 1 { "   " } else { "│  " };
        for (pi, pod) in rev.pods.iter().enumerate() {
            let last_pod = pi + 1 == rev.pods.len();
            let mut info = format!("ready:{}", pod.ready);
            if pod.restarts > 0 {
                info.push_str(&format!(",restarts:{}", pod.restarts));
            }
            rows.push([
                format!(
                    "{pad}{rs_pad}{}□ {}",
                    if last_pod { "└──" } else { "├──" },
                    pod.name
                ),
                "Pod".into(),
                format!("{} {}", icon(&pod.status), pod.status),
                age(&v.now, &pod.created),
                info,
            ]);
        }
        for (ai, run) in analysis.iter().enumerate() {
            let last = ai + 1 == analysis.len();
            rows.push([
                format!(
                    "{pad}{}α analysis (step {})",
                    if last { "└──" } else { "├──" },
                    run.step
                ),
                "AnalysisRun".into(),
                format!("{} {}", icon(&run.phase), run.phase),
                String::new(),
                format!("✔ {},✖ {}", run.passed, run.failed),
            ]);
        }
    }
    let width = |i: usize| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0);
    let widths = [
        width(0).max(4),
        width(1).max(4),
        width(2).max(6),
        width(3).max(3),
    ];
    let header = ["NAME", "KIND", "STATUS", "AGE", "INFO"];
    let line = |cells: &[String; 5]| {
        let mut l = String::new();
        for (i, cell) in cells.iter().enumerate().take(4) {
            l.push_str(cell);
            l.push_str(&" ".repeat(widths[i] - cell.chars().count() + 2));
        }
        l.push_str(&cells[4]);
        l.trim_end().to_string() + "\n"
    };
    out.push_str(&line(&header.map(String::from)));
    for row in &rows {
        out.push_str(&line(row));
    }
    if !v.analysis_runs.is_empty() {
        out.push_str("\nAnalysis runs:\n");
        for run in &v.analysis_runs {
            let values: Vec<String> = run
                .values
                .iter()
                .map(|m| {
                    m.map(|x| format!("{x:.4}"))
                        .unwrap_or_else(|| "no data".into())
                })
                .collect();
            out.push_str(&format!(
                "  step {}: {} {} {}: [{}]",
                run.step,
                run.name,
                icon(&run.phase),
                run.phase,
                values.join(", ")
            ));
            if !run.message.is_empty() {
                out.push_str(&format!(" — {}", run.message));
            }
            out.push('\n');
        }
    }
    out
}

/// Prints the picture once, or with `watch` again every few seconds of cluster time until
/// the rollout is no longer progressing (or `timeout_ms` of cluster time has passed).
pub fn run(
    cluster: &mut dyn Cluster,
    id: &ResId,
    watch: bool,
    timeout_ms: i64,
    json: bool,
) -> anyhow::Result<i32> {
    let picture = |cluster: &dyn Cluster| -> anyhow::Result<(RolloutView, String)> {
        let v = view::view(cluster, id)?;
        let text = if json {
            serde_json::to_string_pretty(&v)? + "\n"
        } else {
            render(&v)
        };
        Ok((v, text))
    };
    let (mut current, mut text) = picture(cluster)?;
    print!("{text}");
    if !watch {
        return Ok(exit_code(&current));
    }
    let tty = std::io::stdout().is_terminal();
    // Cluster time: virtual on the engine (waiting advances it), the server's on Kubernetes.
    let now = |cluster: &dyn Cluster| parse_rfc3339(&cluster.now()).unwrap_or(0);
    let start = now(cluster);
    while current.active && now(cluster) - start < timeout_ms {
        cluster.wait(std::time::Duration::from_millis(WATCH_STEP as u64))?;
        let (next, next_text) = picture(cluster)?;
        if next_text != text {
            if tty && !json {
                // Redraw in place: cursor home, clear screen.
                print!("\x1b[H\x1b[2J{next_text}");
            } else {
                print!("\n{next_text}");
            }
        }
        current = next;
        text = next_text;
    }
    Ok(exit_code(&current))
}

fn exit_code(v: &RolloutView) -> i32 {
    if v.status == "Degraded" {
        super::EXIT_ERROR
    } else {
        super::EXIT_OK
    }
}

//! `engine request`: simulated requests through a Service, or a NodePort on a node (the
//! routing mesh), answered by the engine's traffic model ([`crate::engine::traffic`]): which
//! pod and version answered, with status counts and latency.

use std::collections::BTreeMap;

use anyhow::bail;
use serde::Serialize;
use serde_json::Value;

use crate::engine::images::repository;
use crate::engine::traffic::{self, Answer};
use crate::engine::{Engine, doc, scheduler};

/// The answers to `engine request … -o json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestReport {
    /// `service/NAME` or `node/NODE:PORT → service/NAME`.
    pub target: String,
    /// Requests sent.
    pub requests: usize,
    /// Answers per pod, busiest first.
    pub pods: Vec<PodCount>,
    /// Share of answers per image version, in percent.
    pub versions: BTreeMap<String, f64>,
    /// Answers per HTTP status.
    pub statuses: BTreeMap<u16, usize>,
    /// Median latency, ms.
    pub latency_p50_ms: f64,
    /// 99th percentile latency, ms.
    pub latency_p99_ms: f64,
}

/// How many requests one pod answered.
#[derive(Debug, Serialize)]
pub struct PodCount {
    /// Pod name.
    pub pod: String,
    /// Its image.
    pub image: String,
    /// Requests it answered.
    pub answered: usize,
}

/// Sends the requests and prints the summary; exit 1 when no backend answered.
pub fn run(
    engine: &mut Engine,
    target: &str,
    namespace: &str,
    count: usize,
    json: bool,
) -> anyhow::Result<i32> {
    if count == 0 {
        bail!("-n must be at least 1");
    }
    let state = engine.state();
    let (label, svc) = resolve(engine, target, namespace)?;
    let answers = traffic::requests(state, &svc, count);
    let report = summarize(&label, &answers);
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report));
    }
    Ok(if report.pods.is_empty() { 1 } else { 0 })
}

/// The Service a target names: `NAME`, `svc/NAME`, or `NODE:PORT` (a NodePort reached on
/// any ready node, as kube-proxy routes it).
fn resolve(engine: &Engine, target: &str, namespace: &str) -> anyhow::Result<(String, Value)> {
    let state = engine.state();
    if let Some((node, port)) = target.split_once(':') {
        let port: i64 = port
            .parse()
            .map_err(|_| anyhow::anyhow!("invalid port in {target:?}: expected NODE:PORT"))?;
        let Some(node_doc) = state.get("Node", "", node) else {
            bail!("nodes \"{node}\" not found");
        };
        if !scheduler::node_ready(&node_doc.doc) {
            bail!("dial tcp {node}:{port}: connect: connection refused (node {node} is not Ready)");
        }
        let svc = state.kind("Service").values().map(|s| &s.doc).find(|s| {
            doc::at(s, &["spec", "ports"])
                .and_then(Value::as_array)
                .is_some_and(|ports| {
                    ports
                        .iter()
                        .any(|p| doc::i64_at(p, &["nodePort"]) == Some(port))
                })
        });
        let Some(svc) = svc else {
            bail!(
                "dial tcp {node}:{port}: connect: connection refused (no Service has nodePort {port})"
            );
        };
        return Ok((
            format!("node/{node}:{port} → service/{}", doc::name(svc)),
            svc.clone(),
        ));
    }
    let name = match target.split_once('/') {
        Some((kind, name)) => {
            let info = super::kind_info(&crate::engine::served::Served::of(state), kind)?;
            if info.kind != "Service" {
                bail!(
                    "requests go to a Service or NODE:PORT, not {}",
                    info.resource_prefix()
                );
            }
            name
        }
        None => target,
    };
    let Some(svc) = state.get("Service", namespace, name) else {
        bail!("services \"{name}\" not found");
    };
    Ok((format!("service/{name}"), svc.doc.clone()))
}

fn version_of(image: &str) -> String {
    let repo = repository(image);
    image
        .get(repo.len()..)
        .and_then(|t| t.strip_prefix(':'))
        .filter(|t| !t.is_empty())
        .unwrap_or("latest")
        .to_string()
}

fn summarize(label: &str, answers: &[Answer]) -> RequestReport {
    let mut per_pod: BTreeMap<String, (String, usize)> = BTreeMap::new();
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    let mut versions: BTreeMap<String, f64> = BTreeMap::new();
    let mut latencies: Vec<f64> = Vec::new();
    for a in answers {
        *statuses.entry(a.status).or_default() += 1;
        if let Some(pod) = &a.pod {
            per_pod.entry(pod.clone()).or_insert((a.image.clone(), 0)).1 += 1;
            *versions.entry(version_of(&a.image)).or_default() += 1.0;
            latencies.push(a.latency_ms);
        }
    }
    for share in versions.values_mut() {
        *share = (*share * 1000.0 / answers.len() as f64).round() / 10.0;
    }
    latencies.sort_by(f64::total_cmp);
    let quantile = |q: f64| {
        if latencies.is_empty() {
            return 0.0;
        }
        let i = ((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len()) - 1;
        (latencies[i] * 10.0).round() / 10.0
    };
    let mut pods: Vec<PodCount> = per_pod
        .into_iter()
        .map(|(pod, (image, answered))| PodCount {
            pod,
            image,
            answered,
        })
        .collect();
    pods.sort_by(|a, b| b.answered.cmp(&a.answered).then(a.pod.cmp(&b.pod)));
    RequestReport {
        target: label.to_string(),
        requests: answers.len(),
        pods,
        versions,
        statuses,
        latency_p50_ms: quantile(0.5),
        latency_p99_ms: quantile(0.99),
    }
}

fn render(report: &RequestReport) -> String {
    let mut out = format!("{} requests to {}\n", report.requests, report.target);
    if report.pods.is_empty() {
        out.push_str("no ready endpoints: every request failed (HTTP 503)\n");
        return out;
    }
    let width = report
        .pods
        .iter()
        .map(|p| p.pod.len())
        .max()
        .unwrap_or(3)
        .max(3);
    let image_width = report
        .pods
        .iter()
        .map(|p| p.image.len())
        .max()
        .unwrap_or(5)
        .max(5);
    out.push_str(&format!(
        "{:<width$}   {:<image_width$}   ANSWERED\n",
        "POD", "IMAGE"
    ));
    for p in &report.pods {
        out.push_str(&format!(
            "{:<width$}   {:<image_width$}   {}\n",
            p.pod, p.image, p.answered
        ));
    }
    let versions: Vec<String> = report
        .versions
        .iter()
        .map(|(v, share)| format!("{v} {share:.1}%"))
        .collect();
    out.push_str(&format!("versions: {}\n", versions.join(", ")));
    let statuses: Vec<String> = report
        .statuses
        .iter()
        .map(|(s, n)| format!("{s}: {n}"))
        .collect();
    out.push_str(&format!("status: {}\n", statuses.join(", ")));
    out.push_str(&format!(
        "latency: p50 {:.1}ms, p99 {:.1}ms\n",
        report.latency_p50_ms, report.latency_p99_ms
    ));
    out
}

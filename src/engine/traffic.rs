//! Simulated traffic: requests the pods behind Services receive, and the success rate and
//! latency they answer with, for [`crate::cluster::Cluster::metric`].
//!
//! Each Service receives [`REQUESTS_PER_SECOND`]; its ready pods share it evenly, except that
//! a Service annotated with [`CANARY_WEIGHT_ANNOTATION`] sends that percentage to its pods
//! labelled `reconcile.dev/track=canary` and the rest to the others. A request fails with the
//! image's error rate, and always before the program is up; latency is log-normal around the
//! image's median. Sampling uses a random source seeded by the query and the virtual time, so
//! the same question at the same instant gets the same answer. [`requests`] sends
//! individual requests through a Service (`reconcile engine request`).

use serde_json::Value;

use super::clock::{Millis, Rng, SECOND, parse_rfc3339};
use super::doc;
use super::images::behavior_of;
use super::labels::Selector;
use super::store::State;
use crate::cluster::{CANARY_WEIGHT_ANNOTATION, MetricQuery, TRACK_LABEL};

/// Requests per second each Service receives.
pub const REQUESTS_PER_SECOND: f64 = 20.0;

/// Metric names the engine answers.
pub const METRICS: &[&str] = &["success-rate", "latency-p99", "request-rate"];

fn ready(pod: &Value) -> bool {
    !doc::is_deleting(pod)
        && super::scheduler::pod_condition(pod, "Ready")
            .is_some_and(|c| doc::str_at(c, &["status"]) == "True")
}

/// Requests per second a pod receives from the Services that select it.
pub fn pod_rate(state: &State, pod: &Value) -> f64 {
    let ns = doc::namespace(pod);
    let mut rate = 0.0;
    let mut behind_service = false;
    for svc in state.in_namespace("Service", ns).map(|s| &s.doc) {
        let Some(sel) = doc::at(svc, &["spec", "selector"])
            .filter(|s| s.as_object().is_some_and(|m| !m.is_empty()))
        else {
            continue;
        };
        let selector = Selector::from_map(sel);
        if !selector.matches(doc::labels(pod)) {
            continue;
        }
        behind_service = true;
        let backends: Vec<&Value> = state
            .in_namespace("Pod", ns)
            .map(|s| &s.doc)
            .filter(|p| ready(p) && selector.matches(doc::labels(p)))
            .collect();
        rate += REQUESTS_PER_SECOND * share_of(svc, &backends, pod);
    }
    if !behind_service {
        // Pods no Service selects are still probed by their clients at a low rate.
        rate = 1.0;
    }
    rate
}

fn is_canary(pod: &Value) -> bool {
    doc::at(pod, &["metadata", "labels", TRACK_LABEL]).and_then(Value::as_str) == Some("canary")
}

/// The share of `svc`'s requests `pod` receives among the ready `backends`: even, or split
/// between the canary and stable tracks by the Service's canary weight.
fn share_of(svc: &Value, backends: &[&Value], pod: &Value) -> f64 {
    let weight = doc::annotation(svc, CANARY_WEIGHT_ANNOTATION)
        .and_then(|w| w.trim().trim_end_matches('%').parse::<f64>().ok());
    match weight {
        Some(w) => {
            let w = w.clamp(0.0, 100.0) / 100.0;
            let canaries = backends.iter().filter(|p| is_canary(p)).count();
            let stable = backends.len() - canaries;
            match (is_canary(pod), canaries, stable) {
                (true, c, 0) if c > 0 => 1.0 / c as f64,
                (true, c, _) if c > 0 => w / c as f64,
                (false, 0, s) if s > 0 => 1.0 / s as f64,
                (false, _, s) if s > 0 => (1.0 - w) / s as f64,
                _ => 0.0,
            }
        }
        None if backends.is_empty() => 0.0,
        None => 1.0 / backends.len() as f64,
    }
}

/// The ready pods behind a Service, each with its share of the Service's requests.
pub fn backends<'a>(state: &'a State, svc: &Value) -> Vec<(&'a Value, f64)> {
    let Some(sel) = doc::at(svc, &["spec", "selector"])
        .filter(|s| s.as_object().is_some_and(|m| !m.is_empty()))
    else {
        return Vec::new();
    };
    let selector = Selector::from_map(sel);
    let ready_pods: Vec<&Value> = state
        .in_namespace("Pod", doc::namespace(svc))
        .map(|s| &s.doc)
        .filter(|p| ready(p) && selector.matches(doc::labels(p)))
        .collect();
    ready_pods
        .iter()
        .map(|p| (*p, share_of(svc, &ready_pods, p)))
        .collect()
}

/// How one simulated request was answered.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The pod that answered (`None`: no ready endpoint, 503 from the proxy).
    pub pod: Option<String>,
    /// Its first container's image.
    pub image: String,
    /// HTTP status.
    pub status: u16,
    /// Latency in milliseconds.
    pub latency_ms: f64,
}

/// Sends `n` simulated requests through a Service: each goes to a ready backend chosen by
/// the backends' shares (so a 20 % canary answers about 20 %), fails with the image's error
/// rate (HTTP 500) and takes a log-normal latency around the image's median. Seeded by the
/// Service and the virtual time, so the same question at the same instant gets the same
/// answers.
pub fn requests(state: &State, svc: &Value, n: usize) -> Vec<Answer> {
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15 ^ state.now as u64 ^ n as u64;
    for b in doc::namespace(svc).bytes().chain(doc::name(svc).bytes()) {
        seed = (seed ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let mut rng = Rng(seed);
    let pods = backends(state, svc);
    let total: f64 = pods.iter().map(|(_, s)| s).sum();
    (0..n)
        .map(|_| {
            if pods.is_empty() || total <= 0.0 {
                return Answer {
                    pod: None,
                    image: String::new(),
                    status: 503,
                    latency_ms: 0.0,
                };
            }
            let mut pick = rng.unit() * total;
            let mut chosen = pods[pods.len() - 1].0;
            for (p, share) in &pods {
                if pick < *share {
                    chosen = p;
                    break;
                }
                pick -= share;
            }
            let image = doc::at(chosen, &["spec", "containers"])
                .and_then(|c| c.get(0))
                .map(|c| doc::str_at(c, &["image"]).to_string())
                .unwrap_or_default();
            let behavior = behavior_of(&state.images, &image);
            let status = if rng.unit() < behavior.error_rate {
                500
            } else {
                200
            };
            Answer {
                pod: Some(doc::name(chosen).to_string()),
                image,
                status,
                latency_ms: latency(&mut rng, behavior.latency_ms),
            }
        })
        .collect()
}

/// A log-normal latency around `median` (Box–Muller).
pub fn latency(rng: &mut Rng, median: f64) -> f64 {
    let (u1, u2) = (rng.unit().max(1e-12), rng.unit());
    let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
    median * (0.4 * z).exp()
}

/// Answers a metric query; `Ok(None)` when the selected pods received no requests.
pub fn metric(state: &State, query: &MetricQuery) -> Result<Option<f64>, String> {
    if !METRICS.contains(&query.metric.as_str()) {
        return Err(format!(
            "unknown metric {:?}; the engine answers {}",
            query.metric,
            METRICS.join(", ")
        ));
    }
    let selector = Selector::parse(&query.selector)?;
    let window = query.window.as_millis() as Millis;
    let now = state.now;
    let mut seed: u64 = 0xcbf2_9ce4_8422_2325 ^ now as u64;
    for b in query
        .selector
        .bytes()
        .chain(query.metric.bytes())
        .chain(query.namespace.bytes())
    {
        seed = (seed ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let mut rng = Rng(seed);
    let (mut total, mut ok) = (0u64, 0u64);
    let mut latencies: Vec<f64> = Vec::new();
    for stored in state.in_namespace("Pod", &query.namespace) {
        let pod = &stored.doc;
        if !ready(pod) || !selector.matches(doc::labels(pod)) {
            continue;
        }
        let image = doc::at(pod, &["spec", "containers"])
            .and_then(|c| c.get(0))
            .map(|c| doc::str_at(c, &["image"]))
            .unwrap_or_default();
        let behavior = behavior_of(&state.images, image);
        let ready_since = super::scheduler::pod_condition(pod, "Ready")
            .and_then(|c| parse_rfc3339(doc::str_at(c, &["lastTransitionTime"])))
            .unwrap_or(now);
        let started = stored
            .sim
            .as_ref()
            .and_then(|s| s.containers.first())
            .and_then(|c| c.started_at)
            .unwrap_or(ready_since);
        let serving_from = (now - window).max(ready_since);
        if serving_from >= now {
            continue;
        }
        let up_at = started + behavior.startup_ms;
        let rate = pod_rate(state, pod);
        let n = ((now - serving_from) as f64 / SECOND as f64 * rate).round() as u64;
        let down_part = ((up_at.min(now) - serving_from).max(0) as f64
            / (now - serving_from) as f64)
            .clamp(0.0, 1.0);
        let n_down = (n as f64 * down_part).round() as u64;
        let n_up = n - n_down;
        let errors = binomial(&mut rng, n_up, behavior.error_rate);
        total += n;
        ok += n_up - errors;
        let samples = n_up.min(2000);
        for _ in 0..samples {
            latencies.push(latency(&mut rng, behavior.latency_ms));
        }
    }
    if total == 0 {
        return Ok(None);
    }
    Ok(Some(match query.metric.as_str() {
        "success-rate" => ok as f64 / total as f64,
        "request-rate" => total as f64 / (window as f64 / SECOND as f64).max(1e-9),
        _ => {
            if latencies.is_empty() {
                return Ok(None);
            }
            latencies.sort_by(f64::total_cmp);
            let idx = ((latencies.len() as f64) * 0.99).ceil() as usize;
            latencies[idx.saturating_sub(1).min(latencies.len() - 1)]
        }
    }))
}

fn binomial(rng: &mut Rng, n: u64, p: f64) -> u64 {
    if p <= 0.0 || n == 0 {
        return 0;
    }
    if p >= 1.0 {
        return n;
    }
    if n <= 1000 {
        return (0..n).filter(|_| rng.unit() < p).count() as u64;
    }
    let (u1, u2) = (rng.unit().max(1e-12), rng.unit());
    let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
    let mean = n as f64 * p;
    let sd = (n as f64 * p * (1.0 - p)).sqrt();
    (mean + z * sd).round().clamp(0.0, n as f64) as u64
}

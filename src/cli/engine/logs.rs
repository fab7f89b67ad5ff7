//! `engine logs`: a pod's simulated container output (see [`crate::engine::logs`]), with
//! kubectl's selection of a pod from a workload and its `--tail`, `--since`, `--previous`.

use anyhow::{Context, bail};
use serde_json::Value;

use crate::engine::clock::{Millis, parse_duration, rfc3339};
use crate::engine::labels::Selector;
use crate::engine::{Engine, doc, logs};

/// What `engine logs` was asked.
pub struct Request<'a> {
    /// `POD`, `pod/NAME`, `deploy/NAME`, `rs/NAME`, `sts/NAME`, `ds/NAME`, `job/NAME`.
    pub target: &'a str,
    /// Namespace.
    pub namespace: &'a str,
    /// Container name.
    pub container: Option<&'a str>,
    /// Last N lines (negative: all).
    pub tail: i64,
    /// Only lines newer than this duration.
    pub since: Option<&'a str>,
    /// The previous run.
    pub previous: bool,
    /// Prefix each line with its RFC 3339 time.
    pub timestamps: bool,
}

/// Prints the lines.
pub fn run(engine: &mut Engine, request: &Request<'_>) -> anyhow::Result<i32> {
    let since: Option<Millis> = request
        .since
        .map(|s| parse_duration(s).map_err(anyhow::Error::msg))
        .transpose()
        .context("invalid --since")?;
    let pod_name = pick_pod(engine, request.target, request.namespace)?;
    let state = engine.state();
    let Some(pod) = state.get("Pod", request.namespace, &pod_name) else {
        bail!("pods \"{pod_name}\" not found");
    };
    let mut lines = logs::container_logs(state, pod, request.container, request.previous)?;
    if let Some(since) = since {
        let from = state.now - since;
        lines.retain(|l| l.at >= from);
    }
    if request.tail >= 0 {
        let keep = request.tail as usize;
        if lines.len() > keep {
            lines.drain(..lines.len() - keep);
        }
    }
    for line in lines {
        if request.timestamps {
            println!("{} {}", rfc3339(line.at), line.text);
        } else {
            println!("{}", line.text);
        }
    }
    Ok(0)
}

/// The pod a target names: the pod itself, or as kubectl, one pod of a workload (one it
/// owns, ready, newest first), saying which on stderr.
fn pick_pod(engine: &mut Engine, target: &str, namespace: &str) -> anyhow::Result<String> {
    let Some((kind_word, name)) = target.split_once('/') else {
        return Ok(target.to_string());
    };
    let info = super::kind_info(&*engine.served()?, kind_word)?;
    if info.kind == "Pod" {
        return Ok(name.to_string());
    }
    let owner = engine
        .get(info.key, namespace, name)?
        .ok_or_else(|| super::not_found(info, name))?;
    let selector = doc::at(&owner, &["spec", "selector"])
        .map(|s| {
            if s.get("matchLabels").is_some() || s.get("matchExpressions").is_some() {
                Selector::from_label_selector(s)
            } else {
                Ok(Selector::from_map(s))
            }
        })
        .transpose()
        .map_err(anyhow::Error::msg)?
        .with_context(|| format!("{}/{name} has no selector", info.resource_prefix()))?;
    let mut pods: Vec<&Value> = engine
        .state()
        .in_namespace("Pod", namespace)
        .map(|s| &s.doc)
        .filter(|p| !doc::is_deleting(p) && selector.matches(doc::labels(p)))
        .collect();
    if pods.is_empty() {
        bail!(
            "no pods of {}/{name} found in namespace {namespace}",
            info.resource_prefix()
        );
    }
    let ready = |p: &Value| {
        crate::engine::scheduler::pod_condition(p, "Ready")
            .is_some_and(|c| doc::str_at(c, &["status"]) == "True")
    };
    // Pods the workload owns (directly, or through its ReplicaSets) before pods that only
    // match its selector (a canary track's, say).
    let owner_uid = doc::uid(&owner).to_string();
    let owned_sets: Vec<String> = engine
        .state()
        .in_namespace("ReplicaSet", namespace)
        .map(|s| &s.doc)
        .filter(|rs| doc::controller_uid(rs) == Some(owner_uid.as_str()))
        .map(|rs| doc::uid(rs).to_string())
        .collect();
    let owned = |p: &Value| {
        doc::controller_uid(p)
            .is_some_and(|uid| uid == owner_uid || owned_sets.iter().any(|s| s == uid))
    };
    pods.sort_by_key(|p| {
        (
            !owned(p),
            !ready(p),
            std::cmp::Reverse(doc::str_at(p, &["metadata", "creationTimestamp"]).to_string()),
            doc::name(p).to_string(),
        )
    });
    let chosen = doc::name(pods[0]).to_string();
    if pods.len() > 1 {
        eprintln!("Found {} pods, using pod/{chosen}", pods.len());
    }
    Ok(chosen)
}

/// Virtual time between two looks of `logs -f`.
const FOLLOW_STEP: Millis = 1_000;

/// `engine logs -f`: the lines so far (as [`run`] selects them), then, as virtual time
/// passes in steps of [`FOLLOW_STEP`] up to `timeout_ms`, every new line once — across a
/// restart of the container too (its new run's lines follow). Ends at the timeout, or when
/// the pod is gone. The engine's time moves only when a command lets it, so following lets
/// it, as `engine get -w` does.
pub fn follow(
    engine: &mut Engine,
    request: &Request<'_>,
    timeout_ms: Millis,
) -> anyhow::Result<i32> {
    if request.previous {
        bail!("--previous cannot be followed: that run has ended");
    }
    let pod_name = pick_pod(engine, request.target, request.namespace)?;
    let fixed = Request {
        target: &pod_name,
        ..*request
    };
    run(engine, &fixed)?;
    // Where printing stopped: the time of the last line printed and how many lines of that
    // time were printed (two lines can share a millisecond). Lines come in time order, and a
    // new run of the container (a restart) prints after the old one.
    let mut cursor: (Millis, usize) = (Millis::MIN, 0);
    if let Some(lines) = current_lines(engine, request, &pod_name)? {
        unseen(&lines, &mut cursor);
    }
    let start = engine.now_millis();
    while engine.now_millis() - start < timeout_ms {
        let step = FOLLOW_STEP.min(timeout_ms - (engine.now_millis() - start));
        engine.advance(step)?;
        let Some(lines) = current_lines(engine, request, &pod_name)? else {
            return Ok(0);
        };
        for line in unseen(&lines, &mut cursor) {
            if request.timestamps {
                println!("{} {}", rfc3339(line.at), line.text);
            } else {
                println!("{}", line.text);
            }
        }
        use std::io::Write;
        let _ = std::io::stdout().flush();
    }
    Ok(0)
}

/// The lines of the followed container now; `None` when the pod is gone. A container
/// waiting to start has no lines yet.
fn current_lines(
    engine: &mut Engine,
    request: &Request<'_>,
    pod_name: &str,
) -> anyhow::Result<Option<Vec<logs::LogLine>>> {
    let state = engine.state();
    let Some(pod) = state.get("Pod", request.namespace, pod_name) else {
        return Ok(None);
    };
    if doc::is_deleting(&pod.doc) {
        return Ok(None);
    }
    match logs::container_logs(state, pod, request.container, false) {
        Ok(lines) => Ok(Some(lines)),
        Err(e) if e.0.contains("is waiting to start") => Ok(Some(Vec::new())),
        Err(e) => Err(e.into()),
    }
}

/// The lines after `cursor` (time of the last line printed, lines of that time printed),
/// moving it past them.
fn unseen(lines: &[logs::LogLine], cursor: &mut (Millis, usize)) -> Vec<logs::LogLine> {
    let mut fresh = Vec::new();
    let mut seen_at_cursor = 0;
    for line in lines {
        if line.at < cursor.0 {
            continue;
        }
        if line.at == cursor.0 {
            seen_at_cursor += 1;
            if seen_at_cursor <= cursor.1 {
                continue;
            }
        }
        fresh.push(line.clone());
    }
    for line in &fresh {
        if line.at == cursor.0 {
            cursor.1 += 1;
        } else {
            *cursor = (line.at, 1);
        }
    }
    fresh
}

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
    let info = super::kind_info(kind_word)?;
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

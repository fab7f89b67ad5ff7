//! The HorizontalPodAutoscaler controller (autoscaling/v2), as Kubernetes'
//! `horizontal.go` and `replica_calculator.go`, every 15 s of virtual time.
//!
//! CPU usage comes from the simulated load: an image's `cpu` (`engine images set --cpu`) is
//! what one pod uses carrying its Service's whole load; the ready pods behind a Service share
//! that load, so each uses `cpu × its share of the requests`; a pod no Service selects uses
//! `cpu`. Utilization is usage over the pods' CPU requests.
//!
//! The replica count follows Kubernetes: `desired = ceil(current × usage / target)` unless
//! the ratio is within the 10 % tolerance; pods without metrics count as 100 % when scaling
//! down and 0 % when scaling up, unready pods as 0 % when scaling up, and the answer is
//! dropped if that flips the direction. Recommendations are stabilized (scale-down window
//! 300 s by default: the highest recent recommendation wins), rate-limited by the scaling
//! policies (scale up by default: the larger of +4 pods or +100 % per 15 s) and bounded by
//! min/maxReplicas. The recommendation and scale-event history that Kubernetes keeps in the
//! controller's memory is kept in the annotation [`HISTORY_ANNOTATION`] so that it survives
//! between commands.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::Changes;
use crate::engine::clock::{Millis, SECOND, rfc3339};
use crate::engine::doc;
use crate::engine::events::NewEvent;
use crate::engine::images::behavior_of;
use crate::engine::kinds;
use crate::engine::labels::Selector;
use crate::engine::scale;
use crate::engine::scheduler::pod_condition;
use crate::engine::store::State;
use crate::engine::traffic::{REQUESTS_PER_SECOND, pod_rate};

/// How often the controller evaluates an HPA (`--horizontal-pod-autoscaler-sync-period`).
pub const SYNC_PERIOD: Millis = 15 * SECOND;
/// Ratios within this distance of 1.0 do not scale (`--horizontal-pod-autoscaler-tolerance`).
pub const TOLERANCE: f64 = 0.1;
/// The default scale-down stabilization window.
pub const DOWN_WINDOW_SECONDS: i64 = 300;
/// The annotation holding the controller's memory of recent recommendations and scalings.
pub const HISTORY_ANNOTATION: &str = "autoscaling.reconcile.dev/history";

/// What the controller remembers of one HPA.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct History {
    /// When it last evaluated.
    pub evaluated: Option<Millis>,
    /// (time, recommended replicas).
    pub recommendations: Vec<(Millis, i64)>,
    /// (time, replicas added (positive) or removed (negative)).
    pub scalings: Vec<(Millis, i64)>,
}

/// A scaling policy of `behavior.scaleUp` / `scaleDown`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    /// `Pods` (true) or `Percent` (false).
    pub pods: bool,
    /// The amount.
    pub value: i64,
    /// `periodSeconds` in ms.
    pub period: Millis,
}

/// The rules of one direction.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    /// Stabilization window in ms.
    pub window: Millis,
    /// `Max`, `Min` or `Disabled`.
    pub select: String,
    /// Policies.
    pub policies: Vec<Policy>,
}

/// The rules in `behavior.<direction>`, with Kubernetes' defaults.
pub fn rules(hpa: &Value, up: bool) -> Rules {
    let b = doc::at(
        hpa,
        &["spec", "behavior", if up { "scaleUp" } else { "scaleDown" }],
    );
    let default_window = if up { 0 } else { DOWN_WINDOW_SECONDS };
    let window = b
        .and_then(|b| doc::i64_at(b, &["stabilizationWindowSeconds"]))
        .unwrap_or(default_window)
        * SECOND;
    let select = b
        .map(|b| doc::str_at(b, &["selectPolicy"]))
        .filter(|s| !s.is_empty())
        .unwrap_or("Max")
        .to_string();
    let policies: Vec<Policy> = b
        .and_then(|b| b.get("policies"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|p| Policy {
                    pods: doc::str_at(p, &["type"]) == "Pods",
                    value: doc::i64_at(p, &["value"]).unwrap_or(0),
                    period: doc::i64_at(p, &["periodSeconds"]).unwrap_or(15) * SECOND,
                })
                .collect()
        })
        .unwrap_or_else(|| {
            if up {
                vec![
                    Policy {
                        pods: true,
                        value: 4,
                        period: 15 * SECOND,
                    },
                    Policy {
                        pods: false,
                        value: 100,
                        period: 15 * SECOND,
                    },
                ]
            } else {
                vec![Policy {
                    pods: false,
                    value: 100,
                    period: 15 * SECOND,
                }]
            }
        });
    Rules {
        window,
        select,
        policies,
    }
}

/// Kubernetes' `calculateScaleUpLimitWithScalingRules` / `…ScaleDownLimit…`.
pub fn rate_limit(
    current: i64,
    scalings: &[(Millis, i64)],
    rules: &Rules,
    up: bool,
    now: Millis,
) -> i64 {
    if rules.select == "Disabled" {
        return current;
    }
    let mut proposals: Vec<i64> = Vec::new();
    for p in &rules.policies {
        let changed: i64 = scalings
            .iter()
            .filter(|(t, d)| *t > now - p.period && (*d > 0) == up)
            .map(|(_, d)| d.abs())
            .sum();
        let proposal = if up {
            let start = current - changed;
            if p.pods {
                start + p.value
            } else {
                (start as f64 * (1.0 + p.value as f64 / 100.0)).ceil() as i64
            }
        } else {
            let start = current + changed;
            if p.pods {
                start - p.value
            } else {
                (start as f64 * (1.0 - p.value as f64 / 100.0)) as i64
            }
        };
        proposals.push(proposal);
    }
    // "Max" picks the policy allowing the largest change.
    let most_change = (rules.select == "Max") == up;
    let pick = if most_change {
        proposals.iter().max()
    } else {
        proposals.iter().min()
    };
    pick.copied().unwrap_or(current)
}

/// CPU a pod uses now, in millicores (None: no metrics yet, the pod is not running).
pub fn pod_cpu_usage(state: &State, pod: &Value) -> Option<i64> {
    if doc::str_at(pod, &["status", "phase"]) != "Running" {
        return None;
    }
    let behind_service = state.in_namespace("Service", doc::namespace(pod)).any(|s| {
        doc::at(&s.doc, &["spec", "selector"])
            .filter(|sel| sel.as_object().is_some_and(|m| !m.is_empty()))
            .is_some_and(|sel| Selector::from_map(sel).matches(doc::labels(pod)))
    });
    let share = if behind_service {
        pod_rate(state, pod) / REQUESTS_PER_SECOND
    } else {
        1.0
    };
    let ready = pod_condition(pod, "Ready").is_some_and(|c| doc::str_at(c, &["status"]) == "True");
    // A pod not serving yet (not Ready) receives no share; it idles at 1 % of its figure.
    let share = if ready { share } else { 0.01 };
    let total: f64 = doc::at(pod, &["spec", "containers"])
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| behavior_of(&state.images, doc::str_at(c, &["image"])).cpu_millis as f64 * share)
        .sum();
    Some(total.round() as i64)
}

fn cpu_request(pod: &Value) -> Result<i64, String> {
    let mut sum = 0;
    for c in doc::at(pod, &["spec", "containers"])
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        match doc::at(c, &["resources", "requests", "cpu"]).and_then(doc::cpu_millis) {
            Some(v) => sum += v,
            None => {
                return Err(format!(
                    "failed to get cpu utilization: missing request for cpu in container {} of Pod {}",
                    doc::str_at(c, &["name"]),
                    doc::name(pod)
                ));
            }
        }
    }
    Ok(sum)
}

/// The outcome of one metric.
#[derive(Debug, Clone, PartialEq)]
pub struct Proposal {
    /// Replicas this metric asks for.
    pub replicas: i64,
    /// Current utilization in percent of requests (Utilization targets).
    pub utilization: Option<i64>,
    /// Current average usage per pod in millicores.
    pub average: i64,
}

/// Kubernetes' `GetResourceReplicas` for CPU. `target` is a utilization percentage, or with
/// `by_value` an average usage per pod in millicores.
pub fn cpu_replicas(
    state: &State,
    pods: &[&Value],
    current: i64,
    target: i64,
    by_value: bool,
) -> Result<Proposal, String> {
    if pods.is_empty() {
        return Err("failed to get cpu utilization: unable to get metrics for resource cpu: no metrics returned from resource metrics API".into());
    }
    let mut ready_usage = 0i64;
    let mut ready_request = 0i64;
    let mut ready_count = 0i64;
    let mut unready: Vec<i64> = Vec::new();
    let mut missing: Vec<i64> = Vec::new();
    for p in pods {
        let request = cpu_request(p)?;
        let is_ready =
            pod_condition(p, "Ready").is_some_and(|c| doc::str_at(c, &["status"]) == "True");
        match pod_cpu_usage(state, p) {
            None => missing.push(request),
            Some(_) if !is_ready => unready.push(request),
            Some(u) => {
                ready_usage += u;
                ready_request += request;
                ready_count += 1;
            }
        }
    }
    if ready_count == 0 {
        return Err("failed to get cpu utilization: did not receive metrics for targeted pods (pods might be unready)".into());
    }
    let ratio_of = |usage: i64, request: i64, count: i64| -> f64 {
        if by_value {
            (usage as f64 / count as f64) / target as f64
        } else {
            // Kubernetes truncates the utilization to a whole percent before the ratio.
            ((usage * 100) / request.max(1)) as f64 / target as f64
        }
    };
    let utilization = (ready_usage * 100).checked_div(ready_request);
    let average = ready_usage / ready_count;
    let ratio = ratio_of(ready_usage, ready_request, ready_count);
    let proposal = |replicas| Proposal {
        replicas,
        utilization: if by_value { None } else { utilization },
        average,
    };
    let rebalance_ignored = !unready.is_empty() && ratio > 1.0;
    if missing.is_empty() && !rebalance_ignored {
        if (1.0 - ratio).abs() <= TOLERANCE {
            return Ok(proposal(current));
        }
        return Ok(proposal((ratio * ready_count as f64).ceil() as i64));
    }
    let (mut usage, mut request, mut count) = (ready_usage, ready_request, ready_count);
    for r in &missing {
        // Missing metrics: 100 % of the request when scaling down, 0 % when scaling up.
        if ratio < 1.0 {
            usage += if by_value { target } else { *r };
        }
        request += r;
        count += 1;
    }
    if rebalance_ignored {
        for r in &unready {
            request += r;
            count += 1;
        }
    }
    let new_ratio = ratio_of(usage, request, count);
    if (1.0 - new_ratio).abs() <= TOLERANCE
        || (ratio < 1.0 && new_ratio > 1.0)
        || (ratio > 1.0 && new_ratio < 1.0)
    {
        return Ok(proposal(current));
    }
    let desired = (new_ratio * count as f64).ceil() as i64;
    // Never scale in the direction opposite to what the ready pods ask for.
    if (new_ratio < 1.0 && desired > current) || (new_ratio > 1.0 && desired < current) {
        return Ok(proposal(current));
    }
    Ok(proposal(desired))
}

/// One pass over every HPA.
pub fn sync(state: &State, now: Millis, out: &mut Changes) {
    for stored in state.kind("HorizontalPodAutoscaler").values() {
        let hpa = &stored.doc;
        if doc::is_deleting(hpa) {
            continue;
        }
        sync_one(state, hpa, now, out);
    }
}

fn cond(kind: &str, status: bool, reason: &str, message: &str, now: Millis, old: &Value) -> Value {
    let status_text = if status { "True" } else { "False" };
    // The transition time moves only when the status flips.
    let since = doc::at(old, &["status", "conditions"])
        .and_then(Value::as_array)
        .and_then(|a| a.iter().find(|c| doc::str_at(c, &["type"]) == kind))
        .filter(|c| doc::str_at(c, &["status"]) == status_text)
        .map(|c| doc::str_at(c, &["lastTransitionTime"]).to_string())
        .unwrap_or_else(|| rfc3339(now));
    json!({"type": kind, "status": status_text, "lastTransitionTime": since, "reason": reason, "message": message})
}

fn sync_one(state: &State, hpa: &Value, now: Millis, out: &mut Changes) {
    let (ns, name) = (doc::namespace(hpa), doc::name(hpa));
    let mut history: History = doc::annotation(hpa, HISTORY_ANNOTATION)
        .and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or_default();
    if let Some(last) = history.evaluated
        && now < last + SYNC_PERIOD
    {
        out.wake_at(last + SYNC_PERIOD);
        return;
    }
    history.evaluated = Some(now);
    out.wake_at(now + SYNC_PERIOD);
    let warn = |reason: &str, msg: String| {
        NewEvent::warning(
            "horizontal-pod-autoscaler",
            "HorizontalPodAutoscaler",
            ns,
            name,
            reason,
            msg,
        )
    };
    let target_kind = doc::str_at(hpa, &["spec", "scaleTargetRef", "kind"]);
    let target_name = doc::str_at(hpa, &["spec", "scaleTargetRef", "name"]);
    let target_group = doc::str_at(hpa, &["spec", "scaleTargetRef", "apiVersion"])
        .rsplit_once('/')
        .map_or("", |(g, _)| g);
    // Any kind with a scale subresource, built-in or custom, as the API server's /scale.
    let scalable = kinds::by_group_kind(target_group, target_kind)
        .and_then(|info| scale::paths(state, info).map(|paths| (info, paths)));
    let Some((info, paths)) = scalable else {
        out.event(warn(
            "FailedGetScale",
            format!(
                "no matches for kind \"{target_kind}\" in group \"{target_group}\" with a scale subresource"
            ),
        ));
        return;
    };
    let kind: &'static str = info.key;
    let mut status = json!({});
    let mut conditions: Vec<Value> = Vec::new();
    let finish = |out: &mut Changes, status: Value, history: &History| {
        let mut next = hpa.clone();
        doc::set(&mut next, &["status"], status);
        doc::map_mut(&mut next, &["metadata", "annotations"]).insert(
            HISTORY_ANNOTATION.into(),
            json!(serde_json::to_string(history).unwrap_or_default()),
        );
        if &next != hpa {
            out.update("HorizontalPodAutoscaler", next);
        }
    };
    let Some(target) = state.get(kind, ns, target_name).map(|s| &s.doc) else {
        let resource = if info.group.is_empty() {
            info.plural.to_string()
        } else {
            format!("{}.{}", info.plural, info.group)
        };
        let msg = format!(
            "the HPA controller was unable to get the target's current scale: {resource} \"{target_name}\" not found"
        );
        out.event(warn(
            "FailedGetScale",
            format!("{resource} \"{target_name}\" not found"),
        ));
        conditions.push(cond("AbleToScale", false, "FailedGetScale", &msg, now, hpa));
        status["conditions"] = Value::Array(conditions);
        status["currentReplicas"] = json!(0);
        status["desiredReplicas"] = json!(0);
        finish(out, status, &history);
        return;
    };
    let current = paths.read(target).replicas;
    let min = doc::i64_at(hpa, &["spec", "minReplicas"]).unwrap_or(1);
    let max = doc::i64_at(hpa, &["spec", "maxReplicas"]).unwrap_or(min);
    // No selector selects nothing (Kubernetes refuses to compute metrics without one).
    let selector = paths.pod_selector(target);
    let selector = selector.as_ref();
    let pods: Vec<&Value> = state
        .in_namespace("Pod", ns)
        .map(|s| &s.doc)
        .filter(|p| selector.is_some_and(|s| s.matches(doc::labels(p))))
        .filter(|p| {
            !doc::is_deleting(p)
                && doc::str_at(p, &["status", "phase"]) != "Failed"
                && doc::str_at(p, &["status", "phase"]) != "Succeeded"
        })
        .collect();
    status["currentReplicas"] = json!(current);
    if let Some(t) = doc::at(hpa, &["status", "lastScaleTime"]) {
        status["lastScaleTime"] = t.clone();
    }
    if current == 0 {
        // Scaled to zero by hand: autoscaling is off until it is scaled up again.
        conditions.push(cond(
            "AbleToScale",
            true,
            "SucceededGetScale",
            "the HPA controller was able to get the target's current scale",
            now,
            hpa,
        ));
        conditions.push(cond(
            "ScalingActive",
            false,
            "ScalingDisabled",
            "scaling is disabled since the replica count of the target is zero",
            now,
            hpa,
        ));
        status["desiredReplicas"] = json!(0);
        status["conditions"] = Value::Array(conditions);
        finish(out, status, &history);
        return;
    }
    let default_metrics = json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]);
    let metrics = doc::at(hpa, &["spec", "metrics"])
        .and_then(Value::as_array)
        .filter(|m| !m.is_empty())
        .cloned()
        .unwrap_or_else(|| default_metrics.as_array().cloned().unwrap_or_default());
    let mut proposed: Option<i64> = None;
    let mut reason_metric = String::new();
    let mut current_metrics: Vec<Value> = Vec::new();
    let mut error: Option<(String, String)> = None;
    for m in &metrics {
        let resource = doc::str_at(m, &["resource", "name"]);
        if doc::str_at(m, &["type"]) != "Resource" || resource != "cpu" {
            let what = if resource.is_empty() {
                doc::str_at(m, &["type"]).to_string()
            } else {
                format!("{resource} resource")
            };
            error = Some((
                "FailedGetResourceMetric".into(),
                format!("{what} metrics are not supported yet by the engine (only cpu)"),
            ));
            continue;
        }
        let by_value = doc::str_at(m, &["resource", "target", "type"]) == "AverageValue";
        let target_value = if by_value {
            doc::at(m, &["resource", "target", "averageValue"])
                .and_then(doc::cpu_millis)
                .unwrap_or(0)
        } else {
            doc::i64_at(m, &["resource", "target", "averageUtilization"]).unwrap_or(80)
        };
        match cpu_replicas(state, &pods, current, target_value.max(1), by_value) {
            Ok(p) => {
                let mut currentm = json!({"averageValue": doc::format_cpu(p.average)});
                if let Some(u) = p.utilization {
                    currentm["averageUtilization"] = json!(u);
                }
                current_metrics.push(
                    json!({"type": "Resource", "resource": {"name": "cpu", "current": currentm}}),
                );
                if proposed.is_none_or(|x| p.replicas > x) {
                    proposed = Some(p.replicas);
                    reason_metric = if by_value {
                        "cpu resource".into()
                    } else {
                        "cpu resource utilization (percentage of request)".into()
                    };
                }
            }
            Err(e) => error = Some(("FailedGetResourceMetric".into(), e)),
        }
    }
    if !current_metrics.is_empty() {
        status["currentMetrics"] = Value::Array(current_metrics);
    }
    conditions.push(cond(
        "AbleToScale",
        true,
        "SucceededGetScale",
        "the HPA controller was able to get the target's current scale",
        now,
        hpa,
    ));
    let Some(metric_desired) = proposed else {
        let (reason, msg) =
            error.unwrap_or_else(|| ("FailedGetResourceMetric".into(), "no metrics".into()));
        out.event(warn(&reason, msg.clone()));
        out.event(warn(
            "FailedComputeMetricsReplicas",
            format!(
                "invalid metrics ({} invalid out of {}), first error is: {msg}",
                metrics.len(),
                metrics.len()
            ),
        ));
        conditions.push(cond("ScalingActive", false, &reason, &msg, now, hpa));
        status["desiredReplicas"] = json!(current);
        status["conditions"] = Value::Array(conditions);
        finish(out, status, &history);
        return;
    };
    conditions.push(cond(
        "ScalingActive",
        true,
        "ValidMetricFound",
        &format!("the HPA was able to successfully calculate a replica count from {reason_metric}"),
        now,
        hpa,
    ));
    // Stabilization over recent recommendations.
    let up = rules(hpa, true);
    let down = rules(hpa, false);
    let mut up_rec = metric_desired;
    let mut down_rec = metric_desired;
    for (t, r) in &history.recommendations {
        if *t > now - up.window {
            up_rec = up_rec.min(*r);
        }
        if *t > now - down.window {
            down_rec = down_rec.max(*r);
        }
    }
    let mut stabilized = current;
    if stabilized < up_rec {
        stabilized = up_rec;
    }
    if stabilized > down_rec {
        stabilized = down_rec;
    }
    let keep = up.window.max(down.window);
    history
        .recommendations
        .retain(|(t, _)| *t > now - keep && *t != now);
    history.recommendations.push((now, metric_desired));
    // Rate limits and bounds.
    let mut limited: Option<(&str, &str)> = None;
    let mut desired = stabilized;
    if desired > current {
        let limit = rate_limit(current, &history.scalings, &up, true, now);
        let bound = limit.min(max);
        if desired > bound {
            desired = bound;
            limited = Some(if limit < max {
                (
                    "ScaleUpLimit",
                    "the desired replica count is increasing faster than the maximum scale rate",
                )
            } else {
                (
                    "TooManyReplicas",
                    "the desired replica count is more than the maximum replica count",
                )
            });
        }
    } else if desired < current {
        let limit = rate_limit(current, &history.scalings, &down, false, now);
        let bound = limit.max(min);
        if desired < bound {
            desired = bound;
            limited = Some(if limit > min {
                (
                    "ScaleDownLimit",
                    "the desired replica count is decreasing faster than the maximum scale rate",
                )
            } else {
                (
                    "TooFewReplicas",
                    "the desired replica count is less than the minimum replica count",
                )
            });
        }
    }
    if desired > max {
        desired = max;
        limited = Some((
            "TooManyReplicas",
            "the desired replica count is more than the maximum replica count",
        ));
    }
    if desired < min {
        desired = min;
        limited = Some((
            "TooFewReplicas",
            "the desired replica count is less than the minimum replica count",
        ));
    }
    let keep_scalings = up
        .policies
        .iter()
        .chain(down.policies.iter())
        .map(|p| p.period)
        .max()
        .unwrap_or(15 * SECOND);
    history.scalings.retain(|(t, _)| *t > now - keep_scalings);
    if desired != current {
        out.update(kind, paths.with_replicas(target, desired));
        history.scalings.push((now, desired - current));
        let why = if desired > current {
            format!("{reason_metric} above target")
        } else {
            "All metrics below target".to_string()
        };
        out.event(NewEvent::normal(
            "horizontal-pod-autoscaler",
            "HorizontalPodAutoscaler",
            ns,
            name,
            "SuccessfulRescale",
            format!("New size: {desired}; reason: {why}"),
        ));
        status["lastScaleTime"] = json!(rfc3339(now));
        conditions[0] = cond(
            "AbleToScale",
            true,
            "SucceededRescale",
            &format!("the HPA controller was able to update the target scale to {desired}"),
            now,
            hpa,
        );
    } else if stabilized != metric_desired && metric_desired < current {
        conditions[0] = cond(
            "AbleToScale",
            true,
            "ScaleDownStabilized",
            "recent recommendations were higher than current one, applying the highest recent recommendation",
            now,
            hpa,
        );
    } else {
        conditions[0] = cond(
            "AbleToScale",
            true,
            "ReadyForNewScale",
            "recommended size matches current size",
            now,
            hpa,
        );
    }
    match limited {
        Some((reason, msg)) => conditions.push(cond("ScalingLimited", true, reason, msg, now, hpa)),
        None => conditions.push(cond(
            "ScalingLimited",
            false,
            "DesiredWithinRange",
            "the desired count is within the acceptable range",
            now,
            hpa,
        )),
    }
    status["desiredReplicas"] = json!(desired);
    status["conditions"] = Value::Array(conditions);
    finish(out, status, &history);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_scale_up_allows_four_pods_or_double_per_period() {
        let hpa = json!({});
        let up = rules(&hpa, true);
        // (current replicas, recent scalings, limit)
        type Row<'a> = (i64, &'a [(Millis, i64)], i64);
        let table: &[Row] = &[
            (1, &[], 5),
            (3, &[], 7),
            (10, &[], 20),
            // 6 added 10 s ago: the period started at 4 → max(8, 8).
            (10, &[(90_000, 6)], 8),
            // Added 20 s ago: outside the 15 s period.
            (10, &[(80_000, 6)], 20),
        ];
        for (current, scalings, want) in table {
            assert_eq!(
                rate_limit(*current, scalings, &up, true, 100_000),
                *want,
                "from {current}"
            );
        }
        let down = rules(&hpa, false);
        assert_eq!(down.window, 300 * SECOND);
        assert_eq!(rate_limit(10, &[], &down, false, 100_000), 0);
    }

    #[test]
    fn scale_down_policies_limit_removals_per_period() {
        let hpa = json!({"spec": {"behavior": {"scaleDown": {"policies": [
            {"type": "Pods", "value": 1, "periodSeconds": 60},
            {"type": "Percent", "value": 10, "periodSeconds": 60}]}}}});
        let down = rules(&hpa, false);
        // Max: the policy allowing the larger removal wins: 10 % of 20 = 2 > 1 pod.
        assert_eq!(rate_limit(20, &[], &down, false, 100_000), 18);
        // Two removed 30 s ago: the period started at 22 → 22 − 2.2 → 19 (truncated), 21.
        assert_eq!(rate_limit(20, &[(70_000, -2)], &down, false, 100_000), 19);
        assert_eq!(rate_limit(5, &[], &down, false, 100_000), 4);
    }

    #[test]
    fn select_policy_min_takes_the_smallest_change() {
        let hpa = json!({"spec": {"behavior": {"scaleUp": {"selectPolicy": "Min"}}}});
        assert_eq!(rate_limit(10, &[], &rules(&hpa, true), true, 0), 14);
    }
}

//! Pods that keep restarting: a Deployment whose current pods restarted more than once in
//! the recent past is not healthy, even when they pass readiness between restarts (a crash
//! loop looks Available on and off; `apply --wait` must not call it healthy).

use serde_json::Value;

use crate::rollout::time;

/// Restarts of a container at or above this count, the last within the window, make its pod
/// count as crash-looping (one restart alone is a hiccup, as kubelet's back-off also treats
/// the first exit).
const LOOPING_RESTARTS: i64 = 2;

/// The window when the Deployment sets no `progressDeadlineSeconds` (Kubernetes' default).
const DEFAULT_WINDOW_MS: u64 = 600_000;

/// How far back restarts count: the Deployment's progress deadline, as Kubernetes judges
/// progress.
pub fn window_ms(deployment: &Value) -> u64 {
    deployment
        .pointer("/spec/progressDeadlineSeconds")
        .and_then(Value::as_u64)
        .map_or(DEFAULT_WINDOW_MS, |s| s.saturating_mul(1000))
}

/// Why some of `pods` are crash-looping (`2/2 pods restarting: 4 restarts, the last 30s ago,
/// exit code 1`), or `None`. `now_ms` is the cluster's time.
pub fn crash_looping(pods: &[Value], now_ms: u64, window_ms: u64) -> Option<String> {
    let mut looping = 0;
    let mut worst: Option<(i64, u64, String)> = None;
    for pod in pods {
        if pod.pointer("/metadata/deletionTimestamp").is_some() {
            continue;
        }
        let statuses = pod
            .pointer("/status/containerStatuses")
            .and_then(Value::as_array)
            .into_iter()
            .flatten();
        let mut pod_loops = false;
        for status in statuses {
            let restarts = status
                .get("restartCount")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            let last = status.pointer("/lastState/terminated");
            let finished = last
                .and_then(|t| t.get("finishedAt"))
                .and_then(Value::as_str)
                .and_then(time::parse_rfc3339);
            let waiting_in_backoff = status.pointer("/state/waiting/reason")
                == Some(&Value::String("CrashLoopBackOff".into()));
            let recent = finished.is_some_and(|f| now_ms.saturating_sub(f) < window_ms);
            if restarts >= LOOPING_RESTARTS && (recent || waiting_in_backoff) {
                pod_loops = true;
                let ago = finished.map_or(0, |f| now_ms.saturating_sub(f));
                let exit = last
                    .and_then(|t| t.get("exitCode"))
                    .and_then(Value::as_i64)
                    .map(|code| format!(", exit code {code}"))
                    .unwrap_or_default();
                if worst.as_ref().is_none_or(|(r, ..)| restarts > *r) {
                    worst = Some((restarts, ago, exit));
                }
            }
        }
        if pod_loops {
            looping += 1;
        }
    }
    let (restarts, ago, exit) = worst?;
    let noun = if pods.len() == 1 { "pod" } else { "pods" };
    Some(format!(
        "{looping}/{} {noun} restarting: {restarts} restarts, the last {} ago{exit}",
        pods.len(),
        time::format_duration(std::time::Duration::from_millis(ago))
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(restarts: i64, finished: &str, waiting: Option<&str>) -> Value {
        let state = match waiting {
            Some(reason) => json!({"waiting": {"reason": reason}}),
            None => json!({"running": {}}),
        };
        json!({"metadata": {"name": "p"}, "status": {"containerStatuses": [{
            "name": "app", "ready": waiting.is_none(), "restartCount": restarts, "state": state,
            "lastState": {"terminated": {"exitCode": 1, "finishedAt": finished}}}]}})
    }

    #[test]
    fn recent_repeated_restarts_are_a_crash_loop_even_while_ready() {
        let now = time::parse_rfc3339("2026-01-01T00:10:00Z").unwrap_or(0);
        let window = DEFAULT_WINDOW_MS;
        // Running and ready right now, but restarted 3 times, the last a minute ago.
        let looping = crash_looping(&[pod(3, "2026-01-01T00:09:00Z", None)], now, window);
        assert_eq!(
            looping.as_deref(),
            Some("1/1 pod restarting: 3 restarts, the last 1m ago, exit code 1")
        );
        // One restart is not a loop; old restarts are history.
        assert_eq!(
            crash_looping(&[pod(1, "2026-01-01T00:09:00Z", None)], now, window),
            None
        );
        assert_eq!(
            crash_looping(&[pod(5, "2025-12-31T23:50:00Z", None)], now, window),
            None
        );
        // In back-off now: a loop whatever the last exit's time.
        assert!(
            crash_looping(
                &[pod(5, "2025-12-31T23:50:00Z", Some("CrashLoopBackOff"))],
                now,
                window
            )
            .is_some()
        );
        assert_eq!(
            window_ms(&json!({"spec": {"progressDeadlineSeconds": 60}})),
            60_000
        );
    }
}

//! Canary: a second `<name>-canary` Deployment runs the new version; the Service's traffic is
//! split by weight; steps set the weight, pause and analyse; at the end the stable track is
//! updated to the new version and the canary removed. A failed analysis or the progress
//! deadline aborts: the canary goes away and all traffic returns to stable.
//!
//! Stages: `steps` (walking the steps), `promoting` (stable being updated).

use super::{
    Action, CanarySpec, Decision, Next, Observation, POLL, Phase, State, advance_analysis,
    check_deadline, resolve_count,
};

/// Stage: walking the steps.
pub const STAGE_STEPS: &str = "steps";
/// Stage: all steps done (or promoted fully); the stable track is being updated.
pub const STAGE_PROMOTING: &str = "promoting";

/// Checks a canary spec; the message names the field.
pub fn validate(spec: &CanarySpec) -> Result<(), String> {
    for (index, step) in spec.steps.iter().enumerate() {
        let set = [
            step.set_weight.is_some(),
            step.pause.is_some(),
            step.analysis.is_some(),
        ];
        if set.iter().filter(|s| **s).count() != 1 {
            return Err(format!(
                "canary.steps[{index}]: a step has exactly one of setWeight, pause, analysis"
            ));
        }
        if let Some(weight) = step.set_weight
            && !(0..=100).contains(&weight)
        {
            return Err(format!(
                "canary.steps[{index}].setWeight: {weight} is not a weight between 0 and 100"
            ));
        }
        if let Some(pause) = &step.pause {
            pause
                .duration()
                .map_err(|e| format!("canary.steps[{index}].pause.{e}"))?;
        }
        if let Some(analysis) = &step.analysis {
            analysis
                .validate()
                .map_err(|e| format!("canary.steps[{index}].analysis.{e}"))?;
        }
    }
    resolve_count(spec.max_surge.as_ref(), 100, "25%")
        .map_err(|e| format!("canary.maxSurge: {e}"))?;
    resolve_count(spec.max_unavailable.as_ref(), 100, "0")
        .map_err(|e| format!("canary.maxUnavailable: {e}"))?;
    Ok(())
}

/// Canary replicas for a weight: `ceil(replicas × weight / 100)`, as Argo Rollouts rounds.
pub fn canary_replicas(replicas: i64, weight: u32) -> i64 {
    (replicas * i64::from(weight) + 99) / 100
}

/// The next canary replica count on the way to `target`, adding at most `surge` pods at a
/// time (at least one) and removing at once.
pub fn next_canary_count(current: i64, target: i64, surge: i64) -> i64 {
    if current >= target {
        target
    } else {
        (current + surge.max(1)).min(target)
    }
}

fn abort(state: &mut State, message: String) -> Decision {
    state.phase = Phase::Degraded;
    state.weight = 0;
    state.wait_until_ms = None;
    state.message = format!("rollout aborted: {message}; all traffic back on stable");
    Decision::new(vec![Action::SetWeight(0), Action::RemoveTrack], Next::Stop)
}

/// Aborts a canary on request (`rollout abort`).
pub fn abort_now(state: &mut State, why: &str) -> Decision {
    abort(state, why.to_string())
}

/// `step 2/5 (pause 30s)`: the current step as people count (from 1).
pub fn describe_step(spec: &CanarySpec, state: &State) -> String {
    let total = spec.steps.len();
    let Some(current) = spec.steps.get(state.step) else {
        return format!("step {total}/{total} (all steps done)");
    };
    let what = if let Some(weight) = current.set_weight {
        format!("setWeight {weight}")
    } else if let Some(pause) = &current.pause {
        match pause.duration().ok().flatten() {
            Some(d) => format!("pause {}", super::time::format_duration(d)),
            None => "pause until promoted".to_string(),
        }
    } else if let Some(analysis) = &current.analysis {
        format!("analysis {}", analysis.describe())
    } else {
        String::new()
    };
    format!("step {}/{total} ({what})", state.step + 1)
}

/// One step of a canary rollout.
pub fn step(spec: &CanarySpec, state: &mut State, observation: &Observation) -> Decision {
    if matches!(state.phase, Phase::Healthy | Phase::Degraded) {
        return Decision::new(Vec::new(), Next::Stop);
    }
    let now = observation.now_ms;
    if state.phase == Phase::Paused {
        match state.wait_until_ms {
            Some(until) if !state.paused_by_user && now >= until => {
                state.phase = Phase::Progressing;
                state.wait_until_ms = None;
                state.step += 1;
            }
            Some(until) if !state.paused_by_user => {
                return Decision::new(
                    Vec::new(),
                    Next::After(std::time::Duration::from_millis(until - now)),
                );
            }
            _ => return Decision::new(Vec::new(), Next::Stop),
        }
    }
    if state.stage == STAGE_PROMOTING {
        return promote(state, observation);
    }
    let Some(current) = spec.steps.get(state.step) else {
        state.stage = STAGE_PROMOTING.to_string();
        state.message = "all steps done; updating the stable track".to_string();
        return Decision::new(Vec::new(), Next::Now);
    };
    let position = format!("step {}/{}", state.step + 1, spec.steps.len());
    if let Some(weight) = current.set_weight {
        let weight = weight.clamp(0, 100) as u32;
        let target = canary_replicas(observation.replicas, weight);
        let track = observation.track.clone().unwrap_or_default();
        if track.replicas != target {
            let surge =
                resolve_count(spec.max_surge.as_ref(), observation.replicas, "25%").unwrap_or(1);
            let next = next_canary_count(track.replicas, target, surge);
            state.message = format!(
                "{position}: setWeight {weight}: scaling canary to {next} of {target} replicas"
            );
            state.waiting_since_ms.get_or_insert(now);
            return Decision::new(vec![Action::ScaleTrack(next)], Next::After(POLL));
        }
        if track.available < target {
            let waiting = format!("canary {} of {target} replicas available", track.available);
            if let Some(message) = check_deadline(state, observation, &waiting) {
                return abort(state, message);
            }
            state.message = format!("{position}: setWeight {weight}: waiting, {waiting}");
            return Decision::new(Vec::new(), Next::After(POLL));
        }
        state.waiting_since_ms = None;
        state.weight = weight;
        state.step += 1;
        state.message = format!("{position}: weight {weight}% on {target} canary replicas");
        return Decision::new(vec![Action::SetWeight(weight)], Next::Now);
    }
    if let Some(pause) = &current.pause {
        state.phase = Phase::Paused;
        return match pause.duration().ok().flatten() {
            Some(duration) => {
                state.wait_until_ms = Some(now + duration.as_millis() as u64);
                state.message = format!(
                    "{position}: paused for {}",
                    super::time::format_duration(duration)
                );
                Decision::new(Vec::new(), Next::After(duration))
            }
            None => {
                state.wait_until_ms = None;
                state.message = format!("{position}: paused until `reconcile rollout promote`");
                Decision::new(Vec::new(), Next::Stop)
            }
        };
    }
    if let Some(analysis) = &current.analysis {
        return match advance_analysis(analysis, &state.step.to_string(), state, observation) {
            Err(wait) => {
                state.message = format!("{position}: analysis {} running", analysis.describe());
                Decision::new(Vec::new(), Next::After(wait))
            }
            Ok(Some(run)) => match run.phase {
                super::analysis::RunPhase::Failed => {
                    abort(state, format!("analysis failed: {}", run.message))
                }
                super::analysis::RunPhase::Inconclusive => {
                    state.phase = Phase::Paused;
                    state.message = format!(
                        "{position}: analysis inconclusive ({}); paused until `reconcile rollout promote` or `abort`",
                        run.message
                    );
                    Decision::new(Vec::new(), Next::Stop)
                }
                _ => {
                    state.step += 1;
                    state.message = format!("{position}: analysis passed ({})", run.message);
                    Decision::new(Vec::new(), Next::Now)
                }
            },
            Ok(None) => Decision::new(Vec::new(), Next::Now),
        };
    }
    Decision::new(Vec::new(), Next::Stop)
}

/// The final stage: update stable to the target, then drop the canary.
fn promote(state: &mut State, observation: &Observation) -> Decision {
    if !observation.stable.on_target {
        state.waiting_since_ms = Some(observation.now_ms);
        state.message = "updating the stable track to the new version".to_string();
        return Decision::new(vec![Action::UpdateStable], Next::After(POLL));
    }
    if !observation.stable.healthy {
        let waiting = format!("stable track: {}", observation.stable.message);
        if let Some(message) = check_deadline(state, observation, &waiting) {
            return abort(state, message);
        }
        state.message = format!("waiting for the {waiting}");
        return Decision::new(Vec::new(), Next::After(POLL));
    }
    state.phase = Phase::Healthy;
    state.weight = 0;
    state.waiting_since_ms = None;
    state.message = format!("revision {} is stable; canary removed", state.revision);
    Decision::new(vec![Action::SetWeight(0), Action::RemoveTrack], Next::Stop)
}

#[cfg(test)]
mod tests {
    use super::super::*;
    use super::{STAGE_PROMOTING, canary_replicas, next_canary_count};
    use serde_json::json;

    #[test]
    fn replicas_round_up_like_argo_rollouts() {
        // (replicas, weight, canary replicas)
        let table = [
            (10, 20, 2),
            (10, 25, 3),
            (3, 50, 2),
            (3, 33, 1),
            (3, 34, 2),
            (1, 1, 1),
            (5, 0, 0),
            (5, 100, 5),
            (4, 10, 1),
            (0, 50, 0),
        ];
        for (replicas, weight, expected) in table {
            assert_eq!(
                canary_replicas(replicas, weight),
                expected,
                "{replicas} replicas at {weight}%"
            );
        }
        assert_eq!(next_canary_count(0, 5, 2), 2);
        assert_eq!(next_canary_count(4, 5, 2), 5);
        assert_eq!(next_canary_count(5, 2, 2), 2);
        assert_eq!(next_canary_count(0, 3, 0), 1);
    }

    fn spec() -> CanarySpec {
        serde_json::from_value(json!({"steps": [
            {"setWeight": 20},
            {"pause": {"duration": "30s"}},
            {"analysis": {"metric": "success-rate", "threshold": 0.99, "interval": "10s", "count": 2}},
            {"setWeight": 50},
            {"pause": {}}
        ], "maxSurge": "100%"}))
        .unwrap_or_default()
    }

    fn observe(
        now_ms: u64,
        canary: Option<(i64, i64)>,
        metric: Option<Option<f64>>,
    ) -> Observation {
        Observation {
            now_ms,
            replicas: 10,
            progress_deadline: std::time::Duration::from_secs(600),
            stable: TrackStatus {
                replicas: 10,
                available: 10,
                on_target: false,
                healthy: true,
                message: String::new(),
            },
            track: canary.map(|(replicas, available)| TrackStatus {
                replicas,
                available,
                on_target: true,
                healthy: replicas == available,
                message: String::new(),
            }),
            metric,
        }
    }

    #[test]
    fn steps_walk_weight_pause_analysis_then_wait_for_promote() {
        let strategy = Strategy::Canary(spec());
        let mut state = start_state(&strategy, 2, json!({}), "t0");
        let d = step(&strategy, &mut state, &observe(0, None, None));
        assert_eq!(d.actions, vec![Action::ScaleTrack(2)]);
        let d = step(&strategy, &mut state, &observe(1000, Some((2, 0)), None));
        assert_eq!((d.actions.len(), d.next), (0, Next::After(POLL)));
        let d = step(&strategy, &mut state, &observe(2000, Some((2, 2)), None));
        assert_eq!(d.actions, vec![Action::SetWeight(20)]);
        let d = step(&strategy, &mut state, &observe(2000, Some((2, 2)), None));
        assert_eq!(d.next, Next::After(std::time::Duration::from_secs(30)));
        assert_eq!(state.phase, Phase::Paused);
        // Analysis: first measurement one interval after the pause ends.
        let d = step(&strategy, &mut state, &observe(32_000, Some((2, 2)), None));
        assert_eq!(d.next, Next::After(std::time::Duration::from_secs(10)));
        assert!(wants_metric(&strategy, &state, 42_000).is_some());
        step(
            &strategy,
            &mut state,
            &observe(42_000, Some((2, 2)), Some(Some(0.999))),
        );
        let d = step(
            &strategy,
            &mut state,
            &observe(52_000, Some((2, 2)), Some(Some(0.995))),
        );
        assert_eq!(d.next, Next::Now);
        assert_eq!(state.analysis_runs.len(), 1);
        let d = step(&strategy, &mut state, &observe(52_000, Some((2, 2)), None));
        assert_eq!(d.actions, vec![Action::ScaleTrack(5)]);
        let d = step(&strategy, &mut state, &observe(53_000, Some((5, 5)), None));
        assert_eq!(d.actions, vec![Action::SetWeight(50)]);
        let d = step(&strategy, &mut state, &observe(53_000, Some((5, 5)), None));
        assert_eq!((d.next, state.phase), (Next::Stop, Phase::Paused));
        assert!(
            state.message.contains("rollout promote"),
            "{}",
            state.message
        );
    }

    #[test]
    fn a_failing_analysis_aborts_to_stable() {
        let strategy = Strategy::Canary(spec());
        let mut state = start_state(&strategy, 2, json!({}), "t0");
        state.step = 2;
        step(&strategy, &mut state, &observe(0, Some((2, 2)), None));
        let d = step(
            &strategy,
            &mut state,
            &observe(10_000, Some((2, 2)), Some(Some(0.8))),
        );
        assert_eq!(d.actions, vec![Action::SetWeight(0), Action::RemoveTrack]);
        assert_eq!(state.phase, Phase::Degraded);
        assert!(
            state
                .message
                .contains("analysis failed: success-rate 0.8000 is not ≥ 0.99"),
            "{}",
            state.message
        );
    }

    #[test]
    fn no_data_pauses_and_stuck_pods_hit_the_deadline() {
        let strategy = Strategy::Canary(spec());
        let mut state = start_state(&strategy, 2, json!({}), "t0");
        state.step = 2;
        step(&strategy, &mut state, &observe(0, Some((2, 2)), None));
        step(
            &strategy,
            &mut state,
            &observe(10_000, Some((2, 2)), Some(None)),
        );
        assert_eq!(state.phase, Phase::Paused);

        let mut state = start_state(&strategy, 2, json!({}), "t0");
        step(&strategy, &mut state, &observe(0, None, None));
        step(&strategy, &mut state, &observe(1_000, Some((2, 1)), None));
        let d = step(&strategy, &mut state, &observe(601_000, Some((2, 1)), None));
        assert_eq!(state.phase, Phase::Degraded);
        assert!(d.actions.contains(&Action::RemoveTrack));
        assert!(
            state
                .message
                .contains("progress deadline exceeded: canary 1 of 2 replicas available"),
            "{}",
            state.message
        );
    }

    #[test]
    fn promotion_updates_stable_then_removes_the_canary() {
        let strategy = Strategy::Canary(spec());
        let mut state = start_state(&strategy, 2, json!({}), "t0");
        state.stage = STAGE_PROMOTING.into();
        let mut seen = observe(0, Some((5, 5)), None);
        assert_eq!(
            step(&strategy, &mut state, &seen).actions,
            vec![Action::UpdateStable]
        );
        seen.stable.on_target = true;
        seen.stable.healthy = false;
        assert_eq!(step(&strategy, &mut state, &seen).next, Next::After(POLL));
        seen.stable.healthy = true;
        let d = step(&strategy, &mut state, &seen);
        assert_eq!(d.actions, vec![Action::SetWeight(0), Action::RemoveTrack]);
        assert_eq!(state.phase, Phase::Healthy);
    }
}

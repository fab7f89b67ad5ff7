//! BlueGreen: the new version comes up as `<name>-preview` behind the preview Service; after
//! an optional pre-promotion analysis it is promoted (automatically, after
//! `autoPromotionSeconds`, or by `rollout promote`): the active Service's selector switches
//! to it at once. After `scaleDownDelaySeconds` the old version is replaced: the stable
//! Deployment is updated to the new version, the Services point back at it and the preview
//! track is removed.
//!
//! Stages: `preview` → `analysis` → `awaiting-promotion` → `switched` → `updating-stable`.

use std::time::Duration;

use super::{
    Action, BlueGreenSpec, Decision, Next, Observation, POLL, Phase, State, Track,
    advance_analysis, check_deadline,
};

/// Stage: bringing up the preview track.
pub const STAGE_PREVIEW: &str = "preview";
/// Stage: pre-promotion analysis of the preview pods.
pub const STAGE_ANALYSIS: &str = "analysis";
/// Stage: waiting for promotion (automatic or manual).
pub const STAGE_AWAITING: &str = "awaiting-promotion";
/// Stage: the active Service selects the preview pods; the old version waits out the delay.
pub const STAGE_SWITCHED: &str = "switched";
/// Stage: the stable Deployment is being updated to the new version.
pub const STAGE_UPDATING: &str = "updating-stable";

/// Checks a BlueGreen spec; the message names the field.
pub fn validate(spec: &BlueGreenSpec) -> Result<(), String> {
    if spec.active_service.trim().is_empty() {
        return Err("blueGreen.activeService: a Service name is required".to_string());
    }
    if spec.preview_service.as_deref() == Some(spec.active_service.as_str()) {
        return Err("blueGreen.previewService: must differ from activeService".to_string());
    }
    if let Some(analysis) = &spec.pre_promotion_analysis {
        analysis
            .validate()
            .map_err(|e| format!("blueGreen.prePromotionAnalysis.{e}"))?;
    }
    Ok(())
}

fn scale_down_delay(spec: &BlueGreenSpec) -> Duration {
    Duration::from_secs(spec.scale_down_delay_seconds.unwrap_or(30))
}

fn abort(state: &mut State, message: String) -> Decision {
    state.phase = Phase::Degraded;
    state.wait_until_ms = None;
    state.message =
        format!("rollout aborted: {message}; the active Service stays on the stable version");
    Decision::new(
        vec![
            Action::PointActive(Track::Stable),
            Action::PointPreview(Track::Stable),
            Action::RemoveTrack,
        ],
        Next::Stop,
    )
}

/// Aborts on request (`rollout abort`).
pub fn abort_now(state: &mut State, why: &str) -> Decision {
    abort(state, why.to_string())
}

/// Moves a rollout awaiting promotion to the switch (manual `rollout promote`, or automatic).
pub fn promote(state: &mut State) {
    if matches!(
        state.stage.as_str(),
        STAGE_PREVIEW | STAGE_ANALYSIS | STAGE_AWAITING
    ) {
        state.stage = STAGE_AWAITING.to_string();
        state.wait_until_ms = Some(0);
        state.analysis = None;
    }
    state.phase = Phase::Progressing;
    state.paused_by_user = false;
}

/// One step of a BlueGreen rollout.
pub fn step(spec: &BlueGreenSpec, state: &mut State, observation: &Observation) -> Decision {
    if matches!(state.phase, Phase::Healthy | Phase::Degraded) || state.phase == Phase::Paused {
        return Decision::new(Vec::new(), Next::Stop);
    }
    let now = observation.now_ms;
    match state.stage.as_str() {
        STAGE_PREVIEW => {
            let track = observation.track.clone().unwrap_or_default();
            let wanted = observation.replicas;
            if track.replicas != wanted || !track.on_target {
                state.message = format!("bringing up the preview: {wanted} replicas");
                state.waiting_since_ms.get_or_insert(now);
                return Decision::new(
                    vec![
                        Action::ScaleTrack(wanted),
                        Action::PointPreview(Track::Preview),
                    ],
                    Next::After(POLL),
                );
            }
            if track.available < wanted {
                let waiting = format!("preview {} of {wanted} replicas available", track.available);
                if let Some(message) = check_deadline(state, observation, &waiting) {
                    return abort(state, message);
                }
                state.message = format!("waiting: {waiting}");
                return Decision::new(Vec::new(), Next::After(POLL));
            }
            state.waiting_since_ms = None;
            state.stage = STAGE_ANALYSIS.to_string();
            state.message = "preview is ready".to_string();
            Decision::new(Vec::new(), Next::Now)
        }
        STAGE_ANALYSIS => {
            let Some(analysis) = &spec.pre_promotion_analysis else {
                state.stage = STAGE_AWAITING.to_string();
                return Decision::new(Vec::new(), Next::Now);
            };
            match advance_analysis(analysis, "prePromotion", state, observation) {
                Err(wait) => {
                    state.message =
                        format!("pre-promotion analysis {} running", analysis.describe());
                    Decision::new(Vec::new(), Next::After(wait))
                }
                Ok(Some(run)) => match run.phase {
                    super::analysis::RunPhase::Failed => abort(
                        state,
                        format!("pre-promotion analysis failed: {}", run.message),
                    ),
                    super::analysis::RunPhase::Inconclusive => {
                        state.phase = Phase::Paused;
                        state.message = format!(
                            "pre-promotion analysis inconclusive ({}); paused until `reconcile rollout promote` or `abort`",
                            run.message
                        );
                        Decision::new(Vec::new(), Next::Stop)
                    }
                    _ => {
                        state.stage = STAGE_AWAITING.to_string();
                        state.message = format!("pre-promotion analysis passed ({})", run.message);
                        Decision::new(Vec::new(), Next::Now)
                    }
                },
                Ok(None) => Decision::new(Vec::new(), Next::Now),
            }
        }
        STAGE_AWAITING => {
            let promoted = state.wait_until_ms == Some(0);
            if !promoted && spec.auto_promotion_enabled == Some(false) {
                state.phase = Phase::Paused;
                state.message =
                    "preview ready; paused until `reconcile rollout promote`".to_string();
                return Decision::new(Vec::new(), Next::Stop);
            }
            if !promoted && let Some(seconds) = spec.auto_promotion_seconds {
                let until = *state.wait_until_ms.get_or_insert(now + seconds * 1000);
                if now < until {
                    state.message = format!(
                        "auto-promotion in {}",
                        super::time::format_duration(Duration::from_millis(until - now))
                    );
                    return Decision::new(
                        Vec::new(),
                        Next::After(Duration::from_millis(until - now)),
                    );
                }
            }
            state.stage = STAGE_SWITCHED.to_string();
            let delay = scale_down_delay(spec);
            state.wait_until_ms = Some(now + delay.as_millis() as u64);
            state.message = format!(
                "promoted: active Service {} now selects the new version; old version kept {}",
                spec.active_service,
                super::time::format_duration(delay)
            );
            Decision::new(
                vec![Action::PointActive(Track::Preview)],
                Next::After(delay),
            )
        }
        STAGE_SWITCHED => {
            let until = state.wait_until_ms.unwrap_or(0);
            if now < until {
                return Decision::new(Vec::new(), Next::After(Duration::from_millis(until - now)));
            }
            state.wait_until_ms = None;
            state.stage = STAGE_UPDATING.to_string();
            state.message =
                "scaling down the old version: updating the stable Deployment".to_string();
            Decision::new(vec![Action::UpdateStable], Next::After(POLL))
        }
        STAGE_UPDATING => {
            if !observation.stable.on_target {
                return Decision::new(vec![Action::UpdateStable], Next::After(POLL));
            }
            if !observation.stable.healthy {
                let waiting = format!("stable track: {}", observation.stable.message);
                if let Some(message) = check_deadline(state, observation, &waiting) {
                    // The active Service still selects the healthy preview pods: go back to them.
                    state.phase = Phase::Degraded;
                    state.message = format!(
                        "rollout stuck: {message}; the active Service keeps the preview pods"
                    );
                    return Decision::new(Vec::new(), Next::Stop);
                }
                state.message = format!("waiting for the {waiting}");
                return Decision::new(Vec::new(), Next::After(POLL));
            }
            state.phase = Phase::Healthy;
            state.waiting_since_ms = None;
            state.message = format!("revision {} is active; preview removed", state.revision);
            Decision::new(
                vec![
                    Action::PointActive(Track::Stable),
                    Action::PointPreview(Track::Stable),
                    Action::RemoveTrack,
                ],
                Next::Stop,
            )
        }
        other => abort(
            state,
            format!("unknown stage {other:?} in the rollout state"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::super::*;
    use super::{STAGE_ANALYSIS, STAGE_AWAITING, validate};
    use serde_json::json;
    use std::time::Duration;

    fn observe(
        now_ms: u64,
        preview: Option<(i64, i64)>,
        metric: Option<Option<f64>>,
    ) -> Observation {
        Observation {
            now_ms,
            replicas: 3,
            progress_deadline: Duration::from_secs(600),
            stable: TrackStatus {
                replicas: 3,
                available: 3,
                on_target: false,
                healthy: true,
                message: String::new(),
            },
            track: preview.map(|(replicas, available)| TrackStatus {
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
    fn manual_promotion_switches_then_scales_down_after_the_delay() {
        let spec: BlueGreenSpec = serde_json::from_value(
            json!({"activeService": "web", "previewService": "web-preview",
            "autoPromotionEnabled": false, "scaleDownDelaySeconds": 30,
            "prePromotionAnalysis": {"metric": "success-rate", "threshold": 0.99}}),
        )
        .unwrap_or_default();
        let strategy = Strategy::BlueGreen(spec.clone());
        let mut state = start_state(&strategy, 2, json!({}), "t0");
        let d = step(&strategy, &mut state, &observe(0, None, None));
        assert_eq!(
            d.actions,
            vec![Action::ScaleTrack(3), Action::PointPreview(Track::Preview)]
        );
        step(&strategy, &mut state, &observe(1000, Some((3, 3)), None));
        assert_eq!(state.stage, STAGE_ANALYSIS);
        step(&strategy, &mut state, &observe(1000, Some((3, 3)), None));
        step(
            &strategy,
            &mut state,
            &observe(11_000, Some((3, 3)), Some(Some(1.0))),
        );
        assert_eq!(state.stage, STAGE_AWAITING);
        let d = step(&strategy, &mut state, &observe(11_000, Some((3, 3)), None));
        assert_eq!((d.next, state.phase), (Next::Stop, Phase::Paused));
        bluegreen::promote(&mut state);
        let d = step(&strategy, &mut state, &observe(20_000, Some((3, 3)), None));
        assert_eq!(d.actions, vec![Action::PointActive(Track::Preview)]);
        assert_eq!(d.next, Next::After(Duration::from_secs(30)));
        assert!(
            step(&strategy, &mut state, &observe(40_000, Some((3, 3)), None))
                .actions
                .is_empty()
        );
        let d = step(&strategy, &mut state, &observe(50_000, Some((3, 3)), None));
        assert_eq!(d.actions, vec![Action::UpdateStable]);
        let mut seen = observe(51_000, Some((3, 3)), None);
        seen.stable.on_target = true;
        let d = step(&strategy, &mut state, &seen);
        assert_eq!(d.actions.last(), Some(&Action::RemoveTrack));
        assert_eq!(state.phase, Phase::Healthy);
    }

    #[test]
    fn auto_promotion_waits_and_failed_analysis_aborts() {
        let spec: BlueGreenSpec =
            serde_json::from_value(json!({"activeService": "web", "autoPromotionSeconds": 20}))
                .unwrap_or_default();
        let strategy = Strategy::BlueGreen(spec);
        let mut state = start_state(&strategy, 2, json!({}), "t0");
        state.stage = STAGE_AWAITING.into();
        assert_eq!(
            step(&strategy, &mut state, &observe(0, Some((3, 3)), None)).next,
            Next::After(Duration::from_secs(20))
        );
        let d = step(&strategy, &mut state, &observe(20_000, Some((3, 3)), None));
        assert_eq!(d.actions, vec![Action::PointActive(Track::Preview)]);

        let spec: BlueGreenSpec = serde_json::from_value(json!({"activeService": "web",
            "prePromotionAnalysis": {"metric": "latency-p99", "threshold": 200, "interval": "5s"}}))
        .unwrap_or_default();
        let strategy = Strategy::BlueGreen(spec);
        let mut state = start_state(&strategy, 2, json!({}), "t0");
        state.stage = STAGE_ANALYSIS.into();
        step(&strategy, &mut state, &observe(0, Some((3, 3)), None));
        let d = step(
            &strategy,
            &mut state,
            &observe(5_000, Some((3, 3)), Some(Some(900.0))),
        );
        assert_eq!(state.phase, Phase::Degraded);
        assert!(d.actions.contains(&Action::PointActive(Track::Stable)));
    }

    #[test]
    fn specs_are_checked() {
        let bad = BlueGreenSpec {
            active_service: "web".into(),
            preview_service: Some("web".into()),
            ..Default::default()
        };
        assert!(validate(&bad).unwrap_err().contains("previewService"));
        assert!(
            validate(&BlueGreenSpec::default())
                .unwrap_err()
                .contains("activeService")
        );
    }
}

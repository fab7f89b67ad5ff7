//! Analysis: measurements of a metric of one track's pods, judged against a threshold.
//!
//! A run takes `count` measurements `interval` apart; it fails as soon as more than
//! `failureLimit` measurements failed, succeeds when all were taken within that limit, and
//! is inconclusive when a measurement had no data (the rollout then pauses, as Argo
//! Rollouts does, until someone promotes or aborts it).

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::time::{format_duration, parse_duration};

/// Metrics the driver knows.
pub const METRICS: &[&str] = &["success-rate", "latency-p99"];

/// An analysis as declared in a strategy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AnalysisSpec {
    /// `success-rate` (share of successful requests, 0..1; passes when ≥ threshold) or
    /// `latency-p99` (milliseconds; passes when ≤ threshold).
    pub metric: String,
    /// The bound a measurement must meet.
    pub threshold: f64,
    /// Time between measurements (and the window each looks back over). Default `10s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// Number of measurements. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// Failed measurements tolerated before the run fails. Default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_limit: Option<u32>,
    /// Where a Kubernetes target reads the metric. The built-in engine simulates every
    /// metric and ignores it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<Provider>,
}

/// A metrics provider, as Argo Rollouts' AnalysisTemplate names them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Provider {
    /// An instant query of a Prometheus HTTP API.
    pub prometheus: PrometheusProvider,
}

/// A Prometheus instant query; its first sample is the measurement. The fields follow Argo
/// Rollouts' Prometheus provider (`address`, `query`, `timeout`, `insecure`, `headers`); `caFile`
/// and a header's `valueFrom` are reconcile's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PrometheusProvider {
    /// The server's base URL (`http://prometheus.monitoring:9090`, `https://…`).
    pub address: String,
    /// PromQL, a handlebars template over `namespace`, `selector` (the track's pod label
    /// selector), `track` (`canary`, `preview`), `app` (the Deployment) and `window` (the
    /// interval, `10s`).
    pub query: String,
    /// Seconds one query may take (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
    /// `https://` only: accept any server certificate (no verification).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure: bool,
    /// `https://` only: a PEM file of CA certificates trusted besides the system's roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// Headers sent with every query (`Authorization`, `X-Scope-OrgID`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<PrometheusHeader>,
}

/// A header of the Prometheus queries: a literal `value`, or a `valueFrom` read when the query
/// is made (a credential then never sits in the repository, and is never printed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PrometheusHeader {
    /// The header's name.
    pub key: String,
    /// Its value, as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Where its value is read from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<HeaderSource>,
}

/// Where a header's value comes from: exactly one of the two.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeaderSource {
    /// An environment variable of the reconcile process (`PROMETHEUS_TOKEN`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    /// A key of a Secret in the Deployment's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<SecretKeyRef>,
    /// Put before the value read (`"Bearer "`, `"Basic "`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

/// A key of a Secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretKeyRef {
    /// The Secret's name.
    pub name: String,
    /// The key in its `data`.
    pub key: String,
}

impl AnalysisSpec {
    /// Checks the fields; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        if !METRICS.contains(&self.metric.as_str()) {
            return Err(format!(
                "metric: unknown metric {:?} (known: {})",
                self.metric,
                METRICS.join(", ")
            ));
        }
        if self.metric == "success-rate" && !(0.0..=1.0).contains(&self.threshold) {
            return Err(format!(
                "threshold: {} is not a success rate between 0 and 1",
                self.threshold
            ));
        }
        if self.threshold < 0.0 || !self.threshold.is_finite() {
            return Err(format!(
                "threshold: {} must be a finite number ≥ 0",
                self.threshold
            ));
        }
        if let Some(interval) = &self.interval {
            let parsed = parse_duration(interval).map_err(|e| format!("interval: {e}"))?;
            if parsed.is_zero() {
                return Err("interval: must be longer than 0s".to_string());
            }
        }
        if self.count == Some(0) {
            return Err("count: must be at least 1".to_string());
        }
        if let Some(provider) = &self.provider {
            let prometheus = &provider.prometheus;
            let https = prometheus.address.starts_with("https://");
            if !https && !prometheus.address.starts_with("http://") {
                return Err(format!(
                    "provider.prometheus.address: {:?} is not an http:// or https:// URL",
                    crate::source::git::redact_url(&prometheus.address)
                ));
            }
            if !https && (prometheus.insecure || prometheus.ca_file.is_some()) {
                return Err(
                    "provider.prometheus: insecure and caFile apply to https:// addresses only"
                        .to_string(),
                );
            }
            if prometheus.timeout == Some(0) {
                return Err("provider.prometheus.timeout: must be at least 1 (seconds)".into());
            }
            for (i, header) in prometheus.headers.iter().enumerate() {
                let field = format!("provider.prometheus.headers[{i}]");
                if http::HeaderName::from_bytes(header.key.as_bytes()).is_err() {
                    return Err(format!(
                        "{field}.key: {:?} is not a header name",
                        header.key
                    ));
                }
                match (&header.value, &header.value_from) {
                    (Some(_), None) => {}
                    (None, Some(from)) => match (&from.env, &from.secret_key_ref) {
                        (Some(name), None) if !name.is_empty() => {}
                        (None, Some(secret))
                            if !secret.name.is_empty() && !secret.key.is_empty() => {}
                        _ => {
                            return Err(format!(
                                "{field}.valueFrom: needs exactly one of env or secretKeyRef {{name, key}}"
                            ));
                        }
                    },
                    _ => return Err(format!("{field}: needs exactly one of value or valueFrom")),
                }
            }
            if prometheus.query.trim().is_empty() {
                return Err("provider.prometheus.query: is empty".to_string());
            }
            let mut templates = handlebars::Handlebars::new();
            templates.set_strict_mode(true);
            templates
                .register_template_string("query", &prometheus.query)
                .map_err(|e| format!("provider.prometheus.query: {e}"))?;
        }
        Ok(())
    }

    /// The interval (default 10s).
    pub fn interval(&self) -> Duration {
        self.interval
            .as_deref()
            .and_then(|i| parse_duration(i).ok())
            .unwrap_or(Duration::from_secs(10))
    }

    /// The number of measurements (default 1).
    pub fn count(&self) -> u32 {
        self.count.unwrap_or(1).max(1)
    }

    /// The failures tolerated (default 0).
    pub fn failure_limit(&self) -> u32 {
        self.failure_limit.unwrap_or(0)
    }

    /// Whether one value passes.
    pub fn passes(&self, value: f64) -> bool {
        match self.metric.as_str() {
            "latency-p99" => value <= self.threshold,
            _ => value >= self.threshold,
        }
    }

    /// `success-rate ≥ 0.99 every 10s ×3 (failureLimit 1)`.
    pub fn describe(&self) -> String {
        let op = if self.metric == "latency-p99" {
            "≤"
        } else {
            "≥"
        };
        format!(
            "{} {op} {} every {} ×{} (failureLimit {})",
            self.metric,
            self.threshold,
            format_duration(self.interval()),
            self.count(),
            self.failure_limit()
        )
    }
}

/// One measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Measurement {
    /// When it was taken (cluster time, RFC 3339).
    pub at: String,
    /// The value (`None`: no data).
    pub value: Option<f64>,
    /// Whether it passed (`None`: inconclusive).
    pub passed: Option<bool>,
}

/// Outcome of an analysis run so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum RunPhase {
    /// More measurements to take.
    Running,
    /// All measurements taken within the failure limit.
    Successful,
    /// More than failureLimit measurements failed.
    Failed,
    /// A measurement had no data.
    Inconclusive,
}

/// A run: its measurements and phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisRun {
    /// What it measures (see [`AnalysisSpec::describe`]).
    pub name: String,
    /// The step it belongs to (`prePromotion` for BlueGreen).
    pub step: String,
    /// Phase.
    pub phase: RunPhase,
    /// Measurements taken.
    pub measurements: Vec<Measurement>,
    /// Why it ended the way it did.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

impl AnalysisRun {
    /// A new, running run.
    pub fn start(spec: &AnalysisSpec, step: &str) -> AnalysisRun {
        AnalysisRun {
            name: spec.describe(),
            step: step.to_string(),
            phase: RunPhase::Running,
            measurements: Vec::new(),
            message: String::new(),
        }
    }

    /// Records one measurement and updates the phase.
    pub fn record(&mut self, spec: &AnalysisSpec, at: &str, value: Option<f64>) {
        let passed = value.map(|v| spec.passes(v));
        self.measurements.push(Measurement {
            at: at.to_string(),
            value,
            passed,
        });
        let failed = self
            .measurements
            .iter()
            .filter(|m| m.passed == Some(false))
            .count() as u32;
        let op = if spec.metric == "latency-p99" {
            "≤"
        } else {
            "≥"
        };
        if value.is_none() {
            self.phase = RunPhase::Inconclusive;
            self.message = format!("{}: no data for the pods measured", spec.metric);
        } else if failed > spec.failure_limit() {
            self.phase = RunPhase::Failed;
            self.message = format!(
                "{} {} is not {op} {}: {failed} of {} measurements failed (failureLimit {})",
                spec.metric,
                value.map(|v| format!("{v:.4}")).unwrap_or_default(),
                spec.threshold,
                self.measurements.len(),
                spec.failure_limit()
            );
        } else if self.measurements.len() as u32 >= spec.count() {
            self.phase = RunPhase::Successful;
            self.message = format!(
                "{} of {} measurements passed",
                self.measurements.len() as u32 - failed,
                spec.count()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(metric: &str, threshold: f64, count: u32, failure_limit: u32) -> AnalysisSpec {
        AnalysisSpec {
            provider: None,
            metric: metric.into(),
            threshold,
            interval: Some("10s".into()),
            count: Some(count),
            failure_limit: Some(failure_limit),
        }
    }

    #[test]
    fn runs_succeed_fail_or_are_inconclusive() {
        let s = spec("success-rate", 0.99, 3, 1);
        let mut run = AnalysisRun::start(&s, "2");
        run.record(&s, "t1", Some(0.995));
        run.record(&s, "t2", Some(0.90));
        assert_eq!(run.phase, RunPhase::Running);
        run.record(&s, "t3", Some(0.999));
        assert_eq!(run.phase, RunPhase::Successful);

        let mut run = AnalysisRun::start(&s, "2");
        run.record(&s, "t1", Some(0.7));
        run.record(&s, "t2", Some(0.8));
        assert_eq!(run.phase, RunPhase::Failed);
        assert!(
            run.message.contains("2 of 2 measurements failed"),
            "{}",
            run.message
        );

        let mut run = AnalysisRun::start(&s, "2");
        run.record(&s, "t1", None);
        assert_eq!(run.phase, RunPhase::Inconclusive);

        let latency = spec("latency-p99", 250.0, 1, 0);
        assert!(latency.passes(200.0) && !latency.passes(300.0));
    }

    #[test]
    fn bad_fields_are_named() {
        assert!(
            spec("error-budget", 1.0, 1, 0)
                .validate()
                .unwrap_err()
                .starts_with("metric:")
        );
        assert!(
            spec("success-rate", 99.0, 1, 0)
                .validate()
                .unwrap_err()
                .starts_with("threshold:")
        );
        assert!(
            spec("success-rate", 0.9, 0, 0)
                .validate()
                .unwrap_err()
                .starts_with("count:")
        );
        assert_eq!(spec("latency-p99", 300.0, 3, 1).validate(), Ok(()));
    }
}

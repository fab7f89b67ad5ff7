//! Simulated container logs: what a pod's program would have printed, derived from the
//! kubelet's record of its runs ([`PodSim`]), its image's behaviour and the simulated
//! traffic, for `reconcile engine logs`.
//!
//! Every run prints a start line naming its image and version; a program that comes up
//! prints that it listens; then, while it runs, one line per request it answered (status
//! codes follow the image's error rate, latencies its median latency, at the request rate
//! [`super::traffic`] gives the pod), or, for `timecheck` images, a time check every 5 s; a
//! program whose readiness fails says so every 10 s; a run that ended prints its exit. An
//! image configured with a log template (`engine images set IMAGE --log TEMPLATE`) prints
//! that template instead of the per-request line. Like a kubelet with log rotation, only
//! the last [`MAX_LINES`] lines of a run are kept.
//!
//! Invariant: pure; the same state gives the same lines (randomness is seeded by the pod's
//! uid and the run's start).

use serde_json::Value;

use super::clock::{Millis, Rng, SECOND, rfc3339};
use super::controllers::pod::{Exit, PodSim};
use super::doc;
use super::images::{ImageBehavior, behavior_of, repository};
use super::store::{State, Stored};
use super::traffic;

/// Lines kept per container run.
pub const MAX_LINES: usize = 1000;

/// Interval of a timecheck image's time checks.
const TIME_CHECK_EVERY: Millis = 5 * SECOND;

/// Interval of a failing readiness check's complaint.
const NOT_READY_EVERY: Millis = 10 * SECOND;

/// A log request refused, in kubectl's words.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct LogsError(pub String);

/// One line a container printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// When.
    pub at: Millis,
    /// The text, without a newline.
    pub text: String,
}

/// The lines of `container` (the pod's only container when `None`) of a stored pod: its
/// current run, or with `previous` the run before it.
pub fn container_logs(
    state: &State,
    pod: &Stored,
    container: Option<&str>,
    previous: bool,
) -> Result<Vec<LogLine>, LogsError> {
    let pod_name = doc::name(&pod.doc);
    let containers: Vec<&Value> = doc::at(&pod.doc, &["spec", "containers"])
        .and_then(Value::as_array)
        .map(|c| c.iter().collect())
        .unwrap_or_default();
    let names: Vec<&str> = containers
        .iter()
        .map(|c| doc::str_at(c, &["name"]))
        .collect();
    let index = match container {
        Some(c) => names
            .iter()
            .position(|n| *n == c)
            .ok_or_else(|| LogsError(format!("container {c} is not valid for pod {pod_name}")))?,
        None if names.len() == 1 => 0,
        None => {
            return Err(LogsError(format!(
                "a container name must be specified for pod {pod_name}, choose one of: [{}]",
                names.join(" ")
            )));
        }
    };
    let name = names[index];
    let image = doc::str_at(containers[index], &["image"]);
    let behavior = behavior_of(&state.images, image);
    let default_sim = PodSim::default();
    let sim = pod.sim.as_ref().unwrap_or(&default_sim);
    let run = sim.containers.get(index);
    let program = Program {
        state,
        pod: &pod.doc,
        image,
        behavior: &behavior,
        port: doc::at(containers[index], &["ports"])
            .and_then(|p| p.get(0))
            .and_then(|p| doc::i64_at(p, &["containerPort"]))
            .unwrap_or(8080),
    };
    if previous {
        let exit = run.and_then(|r| r.last_exit.as_ref()).ok_or_else(|| {
            LogsError(format!(
                "previous terminated container \"{name}\" in pod \"{pod_name}\" not found"
            ))
        })?;
        return Ok(program.run(exit.started, exit.finished, Some(exit)));
    }
    if let Some(exit) = run.and_then(|r| r.finished.as_ref()) {
        return Ok(program.run(exit.started, exit.finished, Some(exit)));
    }
    match run.and_then(|r| r.started_at) {
        Some(started) => Ok(program.run(started, state.now, None)),
        None => {
            let reason = sim
                .waiting
                .as_ref()
                .map(|(reason, _)| reason.as_str())
                .unwrap_or("ContainerCreating");
            Err(LogsError(format!(
                "container \"{name}\" in pod \"{pod_name}\" is waiting to start: {reason}"
            )))
        }
    }
}

/// The program one container runs.
struct Program<'a> {
    state: &'a State,
    pod: &'a Value,
    image: &'a str,
    behavior: &'a ImageBehavior,
    port: i64,
}

impl Program<'_> {
    fn version(&self) -> &str {
        let repo = repository(self.image);
        self.image
            .get(repo.len()..)
            .and_then(|rest| rest.strip_prefix(':'))
            .map(|tag| tag.split('@').next().unwrap_or(tag))
            .filter(|tag| !tag.is_empty())
            .unwrap_or("latest")
    }

    fn is_timecheck(&self) -> bool {
        repository(self.image).rsplit('/').next() == Some("timecheck")
    }

    /// The lines of one run from `start` to `end`, ending with its exit when it ended.
    fn run(&self, start: Millis, end: Millis, exit: Option<&Exit>) -> Vec<LogLine> {
        let repo = repository(self.image);
        let version = self.version();
        let mut lines = vec![LogLine {
            at: start,
            text: format!("{repo} version {version} starting (image {})", self.image),
        }];
        let up = start + self.behavior.startup_ms;
        let mut periodic = Vec::new();
        if self.behavior.fail_readiness {
            let mut at = up;
            while at <= end {
                periodic.push(LogLine {
                    at,
                    text: format!(
                        "{repo} version {version}: readiness check failed, answering HTTP 503"
                    ),
                });
                at += NOT_READY_EVERY;
            }
        } else if up <= end && exit.is_none_or(|e| e.reason == "Completed" || e.finished > up) {
            lines.push(LogLine {
                at: up,
                text: format!("{repo} version {version} listening on :{}", self.port),
            });
            periodic = self.serving(up, end, version);
        }
        let keep = MAX_LINES.saturating_sub(lines.len() + 1);
        if periodic.len() > keep {
            periodic.drain(..periodic.len() - keep);
        }
        lines.extend(periodic);
        if let Some(exit) = exit {
            lines.push(LogLine {
                at: exit.finished,
                text: if exit.code == 0 {
                    format!("{repo} version {version} done, exit code 0")
                } else {
                    format!(
                        "{repo} version {version} failed: exit code {} ({})",
                        exit.code, exit.reason
                    )
                },
            });
        }
        lines
    }

    /// The lines of a program serving from `up` to `end`: the last [`MAX_LINES`] at most.
    fn serving(&self, up: Millis, end: Millis, version: &str) -> Vec<LogLine> {
        let every = if self.is_timecheck() && self.behavior.log.is_none() {
            TIME_CHECK_EVERY
        } else {
            let rate = traffic::pod_rate(self.state, self.pod).max(0.001);
            ((SECOND as f64 / rate).round() as Millis).max(1)
        };
        let count = (end - up) / every;
        let first = (count - MAX_LINES as Millis).max(0);
        let mut seed = 0xcbf2_9ce4_8422_2325_u64 ^ up as u64;
        for b in doc::uid(self.pod).bytes() {
            seed = (seed ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        let mut rng = Rng(seed);
        (first + 1..=count)
            .map(|k| {
                let at = up + k * every;
                let status = if rng.unit() < self.behavior.error_rate {
                    500
                } else {
                    200
                };
                let latency = traffic::latency(&mut rng, self.behavior.latency_ms);
                let text = match &self.behavior.log {
                    Some(template) => template
                        .replace("{time}", &rfc3339(at))
                        .replace("{version}", version)
                        .replace("{image}", self.image)
                        .replace("{pod}", doc::name(self.pod))
                        .replace("{status}", &status.to_string())
                        .replace("{latency}", &format!("{latency:.0}")),
                    None if self.is_timecheck() => {
                        format!("version {version}: time check {}", rfc3339(at))
                    }
                    None => format!("GET / {status} {latency:.0}ms version={version}"),
                };
                LogLine { at, text }
            })
            .collect()
    }
}

//! How simulated containers of each image behave: the engine's stand-in for real programs.
//!
//! An image not configured is healthy: it pulls in a second and starts in a second.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::clock::{Millis, format_duration};

/// Behaviour of the containers of one image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ImageBehavior {
    /// Time to pull the image onto a node.
    pub pull_ms: Millis,
    /// Time from container start until the program serves (probes succeed).
    pub startup_ms: Millis,
    /// The program exits with an error once started (after `startup_ms`).
    pub crash: bool,
    /// The readiness probe never succeeds.
    pub fail_readiness: bool,
    /// Fraction of requests answered with an error (0..1).
    pub error_rate: f64,
    /// Median request latency.
    pub latency_ms: f64,
    /// The image does not exist in its registry (`ErrImagePull`, `ImagePullBackOff`).
    pub missing: bool,
    /// CPU, in millicores, one pod uses while it carries its Service's whole load; pods
    /// behind a Service share that load (and the CPU) by their share of requests, pods
    /// outside one use it all (drives the HPA).
    pub cpu_millis: i64,
    /// How long a run-to-completion container (Job, init container) takes.
    pub run_ms: Millis,
    /// The line the program logs per request (`{time}`, `{version}`, `{image}`, `{pod}`,
    /// `{status}`, `{latency}` are replaced); `None`: the built-in lines (see
    /// [`super::logs`]).
    pub log: Option<String>,
}

impl Default for ImageBehavior {
    fn default() -> Self {
        ImageBehavior {
            pull_ms: 1000,
            startup_ms: 1000,
            crash: false,
            fail_readiness: false,
            error_rate: 0.0,
            latency_ms: 20.0,
            missing: false,
            cpu_millis: 50,
            run_ms: 2000,
            log: None,
        }
    }
}

impl ImageBehavior {
    /// One-line summary for `engine images list`.
    pub fn summary(&self) -> String {
        let mut parts = vec![
            format!("pull={}", format_duration(self.pull_ms)),
            format!("startup={}", format_duration(self.startup_ms)),
        ];
        if self.crash {
            parts.push("crash".into());
        }
        if self.fail_readiness {
            parts.push("fail-readiness".into());
        }
        if self.missing {
            parts.push("missing".into());
        }
        parts.push(format!("error-rate={}", self.error_rate));
        parts.push(format!("latency={}ms", self.latency_ms));
        parts.push(format!("cpu={}m", self.cpu_millis));
        if let Some(template) = &self.log {
            parts.push(format!("log={template:?}"));
        }
        parts.join(" ")
    }
}

/// The configured images.
pub type ImageTable = BTreeMap<String, ImageBehavior>;

/// The behaviour of `image`: an exact entry, else an entry for its repository without tag
/// or digest, else the default.
pub fn behavior_of(table: &ImageTable, image: &str) -> ImageBehavior {
    if let Some(b) = table.get(image) {
        return b.clone();
    }
    table.get(repository(image)).cloned().unwrap_or_default()
}

/// `nginx` for `nginx:1.25`, `registry:5000/app` for `registry:5000/app:v1`, and without `@sha…`.
pub fn repository(image: &str) -> &str {
    let image = image.split('@').next().unwrap_or(image);
    match image.rfind(':') {
        Some(i) if !image[i..].contains('/') => &image[..i],
        _ => image,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_fall_back_to_the_repository() {
        let mut table = ImageTable::new();
        table.insert(
            "app".into(),
            ImageBehavior {
                crash: true,
                ..ImageBehavior::default()
            },
        );
        assert!(behavior_of(&table, "app:2.0").crash);
        assert!(!behavior_of(&table, "other:1").crash);
        assert_eq!(repository("registry:5000/app:v1"), "registry:5000/app");
        assert_eq!(repository("registry:5000/app"), "registry:5000/app");
    }
}

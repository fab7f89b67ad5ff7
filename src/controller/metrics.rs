//! The watcher's Prometheus metrics (`prometheus-client`, OpenMetrics text on `/metrics`).
//!
//! Labels carry application names, health words and repository locations with any
//! credentials removed ([`redact`]); never a secret.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::decide::SyncStatus;
use super::status::AppStatus;
use crate::rollout::health::Status as Health;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AppLabel {
    app: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AppResult {
    app: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AppHealth {
    app: String,
    health: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RepoResult {
    repo: String,
    result: String,
}

const HEALTHS: [Health; 5] = [
    Health::Healthy,
    Health::Progressing,
    Health::Degraded,
    Health::Suspended,
    Health::Missing,
];

/// The metric families of one watcher.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    sync_total: Family<AppResult, Counter>,
    sync_duration: Histogram,
    app_health: Family<AppHealth, Gauge>,
    app_synced: Family<AppLabel, Gauge>,
    drift_objects: Family<AppLabel, Gauge>,
    git_fetch_total: Family<RepoResult, Counter>,
    last_sync: Family<AppLabel, Gauge<f64, AtomicU64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Registers every family.
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let sync_total = Family::<AppResult, Counter>::default();
        registry.register(
            "reconcile_sync",
            "Syncs by application and result (Succeeded, Failed)",
            sync_total.clone(),
        );
        let sync_duration = Histogram::new(exponential_buckets(0.005, 2.0, 14));
        registry.register(
            "reconcile_sync_duration_seconds",
            "Wall time of syncs (render, plan, apply)",
            sync_duration.clone(),
        );
        let app_health = Family::<AppHealth, Gauge>::default();
        registry.register(
            "reconcile_app_health",
            "1 for the application's current health, 0 for the others",
            app_health.clone(),
        );
        let app_synced = Family::<AppLabel, Gauge>::default();
        registry.register(
            "reconcile_app_synced",
            "1 when the live state matches the revision",
            app_synced.clone(),
        );
        let drift_objects = Family::<AppLabel, Gauge>::default();
        registry.register(
            "reconcile_drift_objects",
            "Objects that differ from the revision",
            drift_objects.clone(),
        );
        let git_fetch_total = Family::<RepoResult, Counter>::default();
        registry.register(
            "reconcile_git_fetch",
            "Reads of a repository's ref by result (ok, error)",
            git_fetch_total.clone(),
        );
        let last_sync = Family::<AppLabel, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "reconcile_last_sync_timestamp_seconds",
            "When the last successful sync ended (Unix seconds)",
            last_sync.clone(),
        );
        Metrics {
            registry,
            sync_total,
            sync_duration,
            app_health,
            app_synced,
            drift_objects,
            git_fetch_total,
            last_sync,
        }
    }

    /// Counts a sync.
    pub fn sync(&self, app: &str, ok: bool, seconds: f64, ended_unix: f64) {
        let result = if ok { "Succeeded" } else { "Failed" };
        self.sync_total
            .get_or_create(&AppResult {
                app: app.to_string(),
                result: result.to_string(),
            })
            .inc();
        self.sync_duration.observe(seconds);
        if ok {
            self.last_sync
                .get_or_create(&AppLabel {
                    app: app.to_string(),
                })
                .set(ended_unix);
        }
    }

    /// Counts a read of a repository's ref.
    pub fn git_fetch(&self, repo: &str, ok: bool) {
        self.git_fetch_total
            .get_or_create(&RepoResult {
                repo: redact(repo),
                result: if ok { "ok" } else { "error" }.to_string(),
            })
            .inc();
    }

    /// Sets the gauges of an application from its status.
    pub fn app(&self, status: &AppStatus) {
        let app = AppLabel {
            app: status.name.clone(),
        };
        self.app_synced
            .get_or_create(&app)
            .set(i64::from(status.sync == SyncStatus::Synced));
        self.drift_objects
            .get_or_create(&app)
            .set(status.drift_objects as i64);
        for health in HEALTHS {
            self.app_health
                .get_or_create(&AppHealth {
                    app: status.name.clone(),
                    health: health.to_string(),
                })
                .set(i64::from(status.health == Some(health)));
        }
    }

    /// The OpenMetrics text.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.registry).is_err() {
            text.clear();
        }
        text
    }
}

/// A repository location without credentials: `https://user:token@host/x` →
/// `https://host/x`; query strings (which may carry tokens) dropped.
pub fn redact(location: &str) -> String {
    let without_query = location.split(['?', '#']).next().unwrap_or_default();
    match without_query.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = match rest.find('/') {
                Some(i) => rest.split_at(i),
                None => (rest, ""),
            };
            let host = authority.rsplit('@').next().unwrap_or(authority);
            format!("{scheme}://{host}{path}")
        }
        None => without_query.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_reach_a_label() {
        assert_eq!(
            redact("https://bot:ghp_secret@github.com/o/r.git?token=x"),
            "https://github.com/o/r.git"
        );
        assert_eq!(redact("/srv/repo"), "/srv/repo");
        let metrics = Metrics::new();
        metrics.git_fetch("https://bot:ghp_secret@github.com/o/r.git", true);
        let text = metrics.encode();
        assert!(!text.contains("ghp_secret"), "{text}");
        assert!(text.contains(
            "reconcile_git_fetch_total{repo=\"https://github.com/o/r.git\",result=\"ok\"} 1"
        ));
    }

    #[test]
    fn every_family_is_exposed_under_its_documented_name() {
        let metrics = Metrics::new();
        metrics.sync("web", true, 0.02, 1_700_000_000.0);
        metrics.app(&AppStatus {
            name: "web".into(),
            sync: SyncStatus::Synced,
            health: Some(Health::Healthy),
            drift_objects: 0,
            ..AppStatus::default()
        });
        let text = metrics.encode();
        for line in [
            "reconcile_sync_total{app=\"web\",result=\"Succeeded\"} 1",
            "reconcile_sync_duration_seconds_count 1",
            "reconcile_app_health{app=\"web\",health=\"Healthy\"} 1",
            "reconcile_app_health{app=\"web\",health=\"Degraded\"} 0",
            "reconcile_app_synced{app=\"web\"} 1",
            "reconcile_drift_objects{app=\"web\"} 0",
            "reconcile_last_sync_timestamp_seconds{app=\"web\"} 1700000000.0",
        ] {
            assert!(text.contains(line), "{line} missing in\n{text}");
        }
    }
}

//! The reconcile decision: a pure function of (policy, what the source renders, what the
//! target holds, what happened before, now) → what to do and when to look again.
//!
//! Modelled on kube-runtime's `Controller`: the loop gathers observations and executes the
//! returned [`Decision`]; every rule of Argo CD's `syncPolicy` lives here, where tests call it
//! directly. Invariant: no IO, no clock (time comes in as `now`, wall milliseconds).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::plan::config::{Application, SyncPolicy};

/// Argo CD's defaults for `retry.backoff`.
const DEFAULT_BACKOFF: Duration = Duration::from_secs(5);
const DEFAULT_FACTOR: u32 = 2;
const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(180);

/// An application's sync policy with defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Apply by itself when OutOfSync.
    pub automated: bool,
    /// Delete inventory members no longer rendered.
    pub prune: bool,
    /// Re-apply when the live state drifts at an already synced revision.
    pub self_heal: bool,
    /// Allow a prune when the render is empty.
    pub allow_empty: bool,
    /// Retries of a failed sync at one revision; `None`: no limit.
    pub retry_limit: Option<u32>,
    /// First retry delay.
    pub backoff: Duration,
    /// Growth per retry.
    pub factor: u32,
    /// Longest delay.
    pub max_backoff: Duration,
}

impl Policy {
    /// The policy of an application of `reconcile.yaml`. No `syncPolicy` at all: automated
    /// with self-heal (what a GitOps watcher does by default, as Flux does), pruning as the
    /// application's `prune:` says. A `syncPolicy` without `automated`: only report.
    pub fn of(app: &Application) -> Policy {
        let default_policy = SyncPolicy {
            automated: Some(crate::plan::config::Automated {
                prune: app.prune,
                self_heal: true,
                allow_empty: false,
            }),
            retry: None,
        };
        let policy = app.sync_policy.as_ref().unwrap_or(&default_policy);
        let automated = policy.automated.as_ref();
        let retry = policy.retry.as_ref();
        let backoff = retry.and_then(|r| r.backoff.as_ref());
        let duration = |text: Option<&String>, default: Duration| {
            text.and_then(|t| crate::rollout::time::parse_duration(t).ok())
                .unwrap_or(default)
        };
        Policy {
            automated: automated.is_some(),
            prune: app.prune || automated.is_some_and(|a| a.prune),
            self_heal: automated.is_some_and(|a| a.self_heal),
            allow_empty: automated.is_some_and(|a| a.allow_empty),
            retry_limit: retry
                .and_then(|r| r.limit)
                .and_then(|l| u32::try_from(l).ok()),
            backoff: duration(backoff.and_then(|b| b.duration.as_ref()), DEFAULT_BACKOFF),
            factor: backoff
                .and_then(|b| b.factor)
                .unwrap_or(DEFAULT_FACTOR)
                .max(1),
            max_backoff: duration(
                backoff.and_then(|b| b.max_duration.as_ref()),
                DEFAULT_MAX_BACKOFF,
            ),
        }
    }

    /// The delay before retry number `failures` (1 after the first failure).
    pub fn delay(&self, failures: u32) -> Duration {
        let mut delay = self.backoff;
        for _ in 1..failures {
            delay = delay.saturating_mul(self.factor);
            if delay >= self.max_backoff {
                break;
            }
        }
        delay.min(self.max_backoff)
    }
}

/// What the loop remembers of an application between cycles (persisted in its status).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Memory {
    /// The revision of the last successful sync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synced_revision: Option<String>,
    /// The revision whose syncs have been failing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_revision: Option<String>,
    /// Consecutive failed syncs of `failed_revision`.
    #[serde(default)]
    pub failures: u32,
    /// When the next retry may run (wall milliseconds since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<u64>,
}

impl Memory {
    /// After a sync of `revision`: a success resets the backoff; a failure counts one more
    /// failure of that revision and schedules the retry.
    pub fn after_sync(&self, policy: &Policy, revision: &str, ok: bool, now: u64) -> Memory {
        if ok {
            return Memory {
                synced_revision: Some(revision.to_string()),
                ..Memory::default()
            };
        }
        let failures = if self.failed_revision.as_deref() == Some(revision) {
            self.failures + 1
        } else {
            1
        };
        Memory {
            synced_revision: self.synced_revision.clone(),
            failed_revision: Some(revision.to_string()),
            failures,
            retry_at: Some(now + policy.delay(failures).as_millis() as u64),
        }
    }

    /// Seen in sync without a sync (a revision that renders what is live): nothing to retry.
    pub fn in_sync(&self, revision: &str) -> Memory {
        Memory {
            synced_revision: Some(revision.to_string()),
            ..Memory::default()
        }
    }
}

/// What comparing the source with the target found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Comparison {
    /// The revision does not render or does not validate: never applied.
    Broken {
        /// Why, naming file, line and cause.
        error: String,
    },
    /// The revision rendered and was planned against the live state.
    Compared {
        /// Objects to create, update or delete.
        changes: usize,
    },
}

/// Sync status, with Argo CD's names.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub enum SyncStatus {
    /// The live state matches the revision.
    Synced,
    /// The live state differs from the revision.
    OutOfSync,
    /// Not compared yet, or the revision does not render.
    #[default]
    Unknown,
}

impl std::fmt::Display for SyncStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SyncStatus::Synced => "Synced",
            SyncStatus::OutOfSync => "OutOfSync",
            SyncStatus::Unknown => "Unknown",
        })
    }
}

/// What to do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Nothing; the reason says why when something is pending.
    Wait(Option<String>),
    /// Apply the revision (the reason goes into the sync history).
    Sync(String),
}

/// The decision for one application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The sync status to report.
    pub status: SyncStatus,
    /// What to do.
    pub action: Action,
    /// Look again after this long even if nothing changes (a retry's backoff).
    pub requeue_after: Option<Duration>,
}

/// Decides what to do with one application.
///
/// `requested`: a sync asked for by a person (`reconcile sync`), which runs whatever the
/// policy (but never on a broken revision). `now`: wall milliseconds.
pub fn decide(
    policy: &Policy,
    revision: &str,
    comparison: &Comparison,
    memory: &Memory,
    requested: bool,
    now: u64,
) -> Decision {
    let wait = |status, reason: Option<String>, requeue_after| Decision {
        status,
        action: Action::Wait(reason),
        requeue_after,
    };
    let changes = match comparison {
        Comparison::Broken { error } => {
            return wait(
                SyncStatus::Unknown,
                Some(format!("revision {} not applied: {error}", short(revision))),
                None,
            );
        }
        Comparison::Compared { changes: 0 } => return wait(SyncStatus::Synced, None, None),
        Comparison::Compared { changes } => *changes,
    };
    let sync = |reason: String| Decision {
        status: SyncStatus::OutOfSync,
        action: Action::Sync(reason),
        requeue_after: None,
    };
    if requested {
        return sync("sync requested".to_string());
    }
    if !policy.automated {
        return wait(
            SyncStatus::OutOfSync,
            Some(format!(
                "{changes} object(s) differ; automated sync is off (`reconcile sync` applies)"
            )),
            None,
        );
    }
    if memory.failed_revision.as_deref() == Some(revision) && memory.failures > 0 {
        if policy
            .retry_limit
            .is_some_and(|limit| memory.failures > limit)
        {
            return wait(
                SyncStatus::OutOfSync,
                Some(format!(
                    "retry limit reached after {} failed syncs of {}; waiting for a new revision or `reconcile sync`",
                    memory.failures,
                    short(revision)
                )),
                None,
            );
        }
        let due = memory.retry_at.unwrap_or(0);
        if now < due {
            return wait(
                SyncStatus::OutOfSync,
                Some(format!(
                    "retry {} of {} in {}",
                    memory.failures,
                    short(revision),
                    crate::rollout::time::format_duration(Duration::from_millis(due - now))
                )),
                Some(Duration::from_millis(due - now)),
            );
        }
        return sync(format!("retry {} after a failed sync", memory.failures));
    }
    if memory.synced_revision.as_deref() == Some(revision) {
        if policy.self_heal {
            return sync(format!("self-heal: {changes} object(s) drifted"));
        }
        return wait(
            SyncStatus::OutOfSync,
            Some(format!(
                "{changes} object(s) drifted; selfHeal is off (`reconcile sync` applies)"
            )),
            None,
        );
    }
    sync(format!("automated sync of {}", short(revision)))
}

/// The first 10 characters of a revision (a commit SHA or a digest).
pub fn short(revision: &str) -> &str {
    let text = revision.strip_prefix("sha256:").unwrap_or(revision);
    text.get(..10).unwrap_or(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::config::{Automated, Backoff, Retry};

    fn policy(automated: bool, self_heal: bool, limit: Option<i64>) -> Policy {
        Policy::of(&Application {
            name: "a".into(),
            path: ".".into(),
            sync_policy: Some(SyncPolicy {
                automated: automated.then(|| Automated {
                    self_heal,
                    ..Automated::default()
                }),
                retry: Some(Retry {
                    limit,
                    backoff: Some(Backoff {
                        duration: Some("5s".into()),
                        factor: Some(2),
                        max_duration: Some("30s".into()),
                    }),
                }),
            }),
            ..Application::default()
        })
    }

    const OUT: Comparison = Comparison::Compared { changes: 2 };

    #[test]
    fn no_policy_means_automated_with_self_heal() {
        let p = Policy::of(&Application::default());
        assert!(p.automated && p.self_heal && !p.prune);
        let manual = Policy::of(&Application {
            sync_policy: Some(SyncPolicy::default()),
            ..Application::default()
        });
        assert!(!manual.automated);
    }

    #[test]
    fn a_new_revision_is_synced_when_automated_and_only_reported_otherwise() {
        let d = decide(
            &policy(true, false, None),
            "abc",
            &OUT,
            &Memory::default(),
            false,
            0,
        );
        assert!(matches!(d.action, Action::Sync(_)));
        assert_eq!(d.status, SyncStatus::OutOfSync);
        let d = decide(
            &policy(false, false, None),
            "abc",
            &OUT,
            &Memory::default(),
            false,
            0,
        );
        assert!(matches!(d.action, Action::Wait(Some(_))));
        let d = decide(
            &policy(false, false, None),
            "abc",
            &OUT,
            &Memory::default(),
            true,
            0,
        );
        assert!(matches!(d.action, Action::Sync(_)), "a requested sync runs");
    }

    #[test]
    fn a_broken_revision_is_never_synced_even_on_request() {
        let broken = Comparison::Broken {
            error: "base/web.yaml: line 3: bad".into(),
        };
        let d = decide(
            &policy(true, true, None),
            "abc",
            &broken,
            &Memory::default(),
            true,
            0,
        );
        assert_eq!(d.status, SyncStatus::Unknown);
        match d.action {
            Action::Wait(Some(reason)) => assert!(reason.contains("line 3"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn drift_at_the_synced_revision_heals_only_with_self_heal() {
        let memory = Memory::default().in_sync("abc");
        let d = decide(&policy(true, true, None), "abc", &OUT, &memory, false, 0);
        assert!(matches!(d.action, Action::Sync(ref r) if r.starts_with("self-heal")));
        let d = decide(&policy(true, false, None), "abc", &OUT, &memory, false, 0);
        assert!(matches!(d.action, Action::Wait(Some(ref r)) if r.contains("selfHeal is off")));
        let synced = Comparison::Compared { changes: 0 };
        let d = decide(&policy(true, true, None), "abc", &synced, &memory, false, 0);
        assert_eq!(d.status, SyncStatus::Synced);
        assert_eq!(d.action, Action::Wait(None));
    }

    #[test]
    fn a_failed_sync_is_retried_at_the_same_revision_on_its_backoff_and_reset_by_success() {
        let p = policy(true, false, Some(2));
        let m1 = Memory::default().after_sync(&p, "abc", false, 1_000);
        assert_eq!((m1.failures, m1.retry_at), (1, Some(6_000)));
        let d = decide(&p, "abc", &OUT, &m1, false, 2_000);
        assert_eq!(d.requeue_after, Some(Duration::from_secs(4)));
        assert!(matches!(d.action, Action::Wait(_)));
        let d = decide(&p, "abc", &OUT, &m1, false, 6_000);
        assert!(matches!(d.action, Action::Sync(ref r) if r.starts_with("retry 1")));
        let m2 = m1.after_sync(&p, "abc", false, 6_000);
        assert_eq!((m2.failures, m2.retry_at), (2, Some(16_000)));
        let m3 = m2.after_sync(&p, "abc", false, 16_000);
        let d = decide(&p, "abc", &OUT, &m3, false, 1_000_000);
        assert!(
            matches!(d.action, Action::Wait(Some(ref r)) if r.contains("retry limit")),
            "{d:?}"
        );
        // A new revision is tried at once; a success resets the count.
        let d = decide(&p, "def", &OUT, &m3, false, 17_000);
        assert!(matches!(d.action, Action::Sync(_)));
        let ok = m3.after_sync(&p, "def", true, 17_000);
        assert_eq!(ok.failures, 0);
        assert_eq!(ok.synced_revision.as_deref(), Some("def"));
        let again = ok.after_sync(&p, "ghi", false, 20_000);
        assert_eq!(again.retry_at, Some(25_000), "backoff starts over");
    }

    #[test]
    fn backoff_grows_by_factor_up_to_the_maximum() {
        let p = policy(true, false, None);
        let delays: Vec<u64> = (1..=5).map(|n| p.delay(n).as_secs()).collect();
        assert_eq!(delays, vec![5, 10, 20, 30, 30]);
    }
}

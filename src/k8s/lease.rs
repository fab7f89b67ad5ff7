//! The locks of a Kubernetes target: `coordination.k8s.io/v1` Leases in `default` —
//! `reconcile-lock` for a plan/apply, `reconcile-watch` for the one watcher (its pid and
//! address in an annotation, so `reconcile sync` finds it) — taken with create/replace
//! preconditions so two processes never both hold one, renewed in the background while held,
//! and free again once its holder stops renewing (a killed process does not keep the target
//! locked).

use kube::core::params::{DeleteParams, GetParams, PostParams};
use serde_json::{Value, json};

use crate::cluster;

/// The plan/apply Lease's name.
pub const LEASE_NAME: &str = "reconcile-lock";
/// The annotation of a Lease holding what its holder says of itself.
const HOLDER_ANNOTATION: &str = "reconcile.dev/holder";

/// Which Lease, and what its holder says of itself.
#[derive(Debug, Clone, Copy)]
pub struct Kind<'a> {
    /// The Lease's name.
    pub name: &'static str,
    /// Kept in an annotation while held (the watcher's pid and address); shown instead of
    /// the holder's identity when another process finds the Lease taken.
    pub holder_note: Option<&'a str>,
}

/// The plan/apply lock.
pub const APPLY: Kind<'static> = Kind {
    name: LEASE_NAME,
    holder_note: None,
};

/// The one-watcher lock.
pub const WATCH: Kind<'static> = Kind {
    name: "reconcile-watch",
    holder_note: None,
};
/// The Lease's namespace (exists on every cluster).
pub const LEASE_NAMESPACE: &str = "default";
/// How long a Lease stays valid without renewal.
const LEASE_SECONDS: u64 = 60;
/// How often a held Lease is renewed.
const RENEW_EVERY: std::time::Duration = std::time::Duration::from_secs(20);

/// A Lease this process holds.
pub struct Held {
    identity: String,
    name: &'static str,
    renewal: tokio::task::JoinHandle<()>,
}

fn request() -> kube::core::Request {
    kube::core::Request::new(format!(
        "/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases"
    ))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Kubernetes' MicroTime (`2026-12-05T01:02:03.000000Z`).
fn micro_time(ms: u64) -> String {
    let text = crate::rollout::time::rfc3339(ms);
    // Whole seconds, whatever fraction the formatter printed, then six digits of fraction.
    let seconds = text.trim_end_matches('Z');
    let seconds = seconds.split('.').next().unwrap_or(seconds);
    format!("{seconds}.{:06}Z", (ms % 1000) * 1000)
}

fn lease_spec(identity: &str, acquired: &str) -> Value {
    json!({
        "holderIdentity": identity,
        "acquireTime": acquired,
        "renewTime": micro_time(now_ms()),
        "leaseDurationSeconds": LEASE_SECONDS,
    })
}

/// True when the Lease is held by someone else and still valid.
fn held_by_other(lease: &Value, identity: &str, now: u64) -> bool {
    let holder = lease
        .pointer("/spec/holderIdentity")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if holder.is_empty() || holder == identity {
        return false;
    }
    let renewed = lease
        .pointer("/spec/renewTime")
        .or_else(|| lease.pointer("/spec/acquireTime"))
        .and_then(Value::as_str)
        .and_then(crate::rollout::time::parse_rfc3339)
        .unwrap_or(0);
    let duration = lease
        .pointer("/spec/leaseDurationSeconds")
        .and_then(Value::as_u64)
        .unwrap_or(LEASE_SECONDS);
    renewed + duration * 1000 > now
}

fn backend(target: &str, name: &str, e: impl std::fmt::Display) -> cluster::Error {
    cluster::Error::Backend(super::errors::redact(&format!(
        "{target}: the lock Lease {LEASE_NAMESPACE}/{name}: {e}"
    )))
}

fn note(lease: &Value) -> Option<&str> {
    lease
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(HOLDER_ANNOTATION))
        .and_then(Value::as_str)
}

/// Takes the target's lock `kind` for `holder`, or says who holds it.
pub fn acquire(
    runtime: &tokio::runtime::Runtime,
    client: &kube::Client,
    target: &str,
    holder: &str,
    kind: &Kind,
) -> Result<Held, cluster::Error> {
    let name = kind.name;
    let backend = |e: &dyn std::fmt::Display| backend(target, name, e);
    let annotations = match kind.holder_note {
        Some(text) => json!({HOLDER_ANNOTATION: text}),
        None => json!({}),
    };
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown host".into());
    let identity = format!("{holder}, pid {} on {host}", std::process::id());
    super::block_on(runtime, async {
        // Two tries: a race lost on create or replace is looked at again once.
        for _ in 0..2 {
            let existing = super::request_retrying(
                client,
                request()
                    .get(name, &GetParams::default())
                    .map_err(|e| backend(&e))?,
            )
            .await;
            let acquired = micro_time(now_ms());
            let result = match existing {
                Err(e) if super::errors::code(&e) == 404 => {
                    let lease = json!({
                        "apiVersion": "coordination.k8s.io/v1",
                        "kind": "Lease",
                        "metadata": {
                            "name": name,
                            "namespace": LEASE_NAMESPACE,
                            "annotations": annotations,
                        },
                        "spec": lease_spec(&identity, &acquired),
                    });
                    let body = serde_json::to_vec(&lease).map_err(|e| backend(&e))?;
                    let create = request()
                        .create(&PostParams::default(), body)
                        .map_err(|e| backend(&e))?;
                    super::request_retrying(client, create).await
                }
                Err(e) => return Err(backend(&e)),
                Ok(lease) => {
                    if held_by_other(&lease, &identity, now_ms()) {
                        if let Some(text) = note(&lease) {
                            return Err(cluster::Error::Locked {
                                target: target.to_string(),
                                holder: text.to_string(),
                            });
                        }
                        let other = lease
                            .pointer("/spec/holderIdentity")
                            .and_then(Value::as_str)
                            .unwrap_or_default();
                        let since = lease
                            .pointer("/spec/acquireTime")
                            .and_then(Value::as_str)
                            .unwrap_or_default();
                        return Err(cluster::Error::Locked {
                            target: target.to_string(),
                            holder: format!("{other}, since {since}"),
                        });
                    }
                    let mut taken = lease.clone();
                    taken["spec"] = lease_spec(&identity, &acquired);
                    taken["metadata"]["annotations"] = annotations.clone();
                    let body = serde_json::to_vec(&taken).map_err(|e| backend(&e))?;
                    let replace = request()
                        .replace(name, &PostParams::default(), body)
                        .map_err(|e| backend(&e))?;
                    super::request_retrying(client, replace).await
                }
            };
            match result {
                Ok(_) => {
                    let renewal = runtime.spawn(renew(client.clone(), identity.clone(), name));
                    return Ok(Held {
                        identity,
                        name,
                        renewal,
                    });
                }
                Err(e) if super::errors::code(&e) == 409 => continue,
                Err(e) => return Err(backend(&e)),
            }
        }
        Err(cluster::Error::Locked {
            target: target.to_string(),
            holder: "another process taking it at the same moment".into(),
        })
    })
}

/// Keeps a held Lease valid until the task is aborted.
async fn renew(client: kube::Client, identity: String, name: &'static str) {
    loop {
        tokio::time::sleep(RENEW_EVERY).await;
        let Ok(get) = request().get(name, &GetParams::default()) else {
            return;
        };
        let Ok(mut lease) = super::request_retrying(&client, get).await else {
            continue;
        };
        if lease
            .pointer("/spec/holderIdentity")
            .and_then(Value::as_str)
            != Some(&identity)
        {
            return;
        }
        lease["spec"]["renewTime"] = json!(micro_time(now_ms()));
        let Ok(body) = serde_json::to_vec(&lease) else {
            return;
        };
        if let Ok(replace) = request().replace(name, &PostParams::default(), body) {
            let _ = super::request_retrying(&client, replace).await;
        }
    }
}

/// Releases a Lease this process holds (deleted only while it is still ours).
pub fn release(
    runtime: &tokio::runtime::Runtime,
    client: &kube::Client,
    target: &str,
    held: Held,
) -> Result<(), cluster::Error> {
    held.renewal.abort();
    let name = held.name;
    super::block_on(runtime, async {
        let get = request()
            .get(name, &GetParams::default())
            .map_err(|e| backend(target, name, e))?;
        let lease = match super::request_retrying(client, get).await {
            Ok(lease) => lease,
            Err(e) if super::errors::code(&e) == 404 => return Ok(()),
            Err(e) => return Err(backend(target, name, e)),
        };
        if lease
            .pointer("/spec/holderIdentity")
            .and_then(Value::as_str)
            != Some(held.identity.as_str())
        {
            return Ok(());
        }
        let delete = request()
            .delete(name, &DeleteParams::default())
            .map_err(|e| backend(target, name, e))?;
        match super::request_retrying(client, delete).await {
            Ok(_) => Ok(()),
            Err(e) if super::errors::code(&e) == 404 => Ok(()),
            Err(e) => Err(backend(target, name, e)),
        }
    })
}

/// What the holder of the Lease `kind` says of itself (its note, else its identity), while
/// the Lease is held; `None` when it is free or absent.
pub fn current_note(
    runtime: &tokio::runtime::Runtime,
    client: &kube::Client,
    target: &str,
    kind: &Kind,
) -> Result<Option<String>, cluster::Error> {
    let name = kind.name;
    super::block_on(runtime, async {
        let get = request()
            .get(name, &GetParams::default())
            .map_err(|e| backend(target, name, e))?;
        let lease = match super::request_retrying(client, get).await {
            Ok(lease) => lease,
            Err(e) if super::errors::code(&e) == 404 => return Ok(None),
            Err(e) => return Err(backend(target, name, e)),
        };
        if !held_by_other(&lease, "", now_ms()) {
            return Ok(None);
        }
        let identity = lease
            .pointer("/spec/holderIdentity")
            .and_then(Value::as_str)
            .unwrap_or_default();
        Ok(Some(note(&lease).unwrap_or(identity).to_string()))
    })
}

/// The process id in a holder identity (`reconcile apply, pid 42 on host`).
fn holder_pid(identity: &str) -> Option<&str> {
    let after = identity.split(", pid ").nth(1)?;
    after.split(' ').next()
}

/// Removes the Lease whatever process holds it (`reconcile unlock LOCK_ID`): `lock_id` is the
/// holder's pid, as the "locked by" message shows it, so a lock is never broken by mistake.
pub fn force_release(
    runtime: &tokio::runtime::Runtime,
    client: &kube::Client,
    target: &str,
    lock_id: &str,
) -> Result<(), cluster::Error> {
    super::block_on(runtime, async {
        let get = request()
            .get(LEASE_NAME, &GetParams::default())
            .map_err(|e| backend(target, LEASE_NAME, e))?;
        let lease = match super::request_retrying(client, get).await {
            Ok(lease) => lease,
            Err(e) if super::errors::code(&e) == 404 => {
                return Err(cluster::Error::Backend(format!("{target} is not locked")));
            }
            Err(e) => return Err(backend(target, LEASE_NAME, e)),
        };
        let holder = lease
            .pointer("/spec/holderIdentity")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if holder_pid(holder) != Some(lock_id) {
            let since = lease
                .pointer("/spec/acquireTime")
                .and_then(Value::as_str)
                .unwrap_or_default();
            return Err(cluster::Error::Backend(format!(
                "lock id {lock_id} does not match the lock held on {target} ({holder}, since {since})"
            )));
        }
        let mut params = DeleteParams::default();
        params.preconditions = lease
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .map(|rv| kube::core::params::Preconditions {
                resource_version: Some(rv.to_string()),
                uid: None,
            });
        let delete = request()
            .delete(LEASE_NAME, &params)
            .map_err(|e| backend(target, LEASE_NAME, e))?;
        match super::request_retrying(client, delete).await {
            Ok(_) => Ok(()),
            Err(e) if super::errors::code(&e) == 404 => Ok(()),
            Err(e) => Err(backend(target, LEASE_NAME, e)),
        }
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_lock_id_is_the_holders_pid() {
        assert_eq!(holder_pid("reconcile apply, pid 42 on box"), Some("42"));
        assert_eq!(holder_pid("someone"), None);
    }

    use super::*;

    #[test]
    fn a_lease_not_renewed_in_time_is_free() {
        let lease = json!({"spec": {
            "holderIdentity": "reconcile apply, pid 1 on a",
            "renewTime": micro_time(1_000_000),
            "leaseDurationSeconds": 60,
        }});
        assert!(held_by_other(&lease, "me", 1_000_000 + 59_000));
        assert!(!held_by_other(&lease, "me", 1_000_000 + 61_000));
        assert!(!held_by_other(
            &lease,
            "reconcile apply, pid 1 on a",
            1_000_000
        ));
    }

    #[test]
    fn micro_time_has_six_fraction_digits() {
        assert_eq!(micro_time(1_767_225_600_123), "2026-01-01T00:00:00.123000Z");
    }
}

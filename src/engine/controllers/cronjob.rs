//! The CronJob controller, as Kubernetes' `cronjob_controllerv2.go`, on the virtual clock.
//!
//! At each scheduled instant (standard five-field cron, UTC) it creates the Job
//! `<cronjob>-<minutes since the epoch>`, unless suspended, unless the instant is older than
//! `startingDeadlineSeconds`, and according to `concurrencyPolicy`: Allow runs Jobs side by
//! side, Forbid skips the run while one is active, Replace deletes the active ones first.
//! Only the most recent missed instant runs (more than 100 missed is reported). Finished
//! Jobs leave `status.active`; the oldest beyond `successfulJobsHistoryLimit` /
//! `failedJobsHistoryLimit` are deleted.

use serde_json::{Value, json};

use super::job::finished;
use super::{Change, Changes};
use crate::engine::clock::{Millis, SECOND, parse_rfc3339, rfc3339};
use crate::engine::cron::Schedule;
use crate::engine::doc;
use crate::engine::events::NewEvent;
use crate::engine::store::State;

/// The annotation carrying the scheduled instant of a Job a CronJob created.
pub const SCHEDULED_ANNOTATION: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";

/// The name of the Job for the run scheduled at `at`.
pub fn job_name(cronjob: &str, at: Millis) -> String {
    format!("{cronjob}-{}", at.div_euclid(60 * SECOND))
}

/// The scheduled instants in `(after, now]`: (the most recent, how many there were).
pub fn missed_runs(schedule: &Schedule, after: Millis, now: Millis) -> (Option<Millis>, usize) {
    let mut last = None;
    let mut count = 0;
    let mut t = after;
    while let Some(next) = schedule.next_after(t) {
        if next > now {
            break;
        }
        last = Some(next);
        count += 1;
        t = next;
        // Past this many Kubernetes stops counting and reports the CronJob.
        if count > 100 {
            // Jump to the end: only the latest instant matters.
            let mut probe = now - 60 * SECOND;
            while let Some(n) = schedule.next_after(probe) {
                if n > now {
                    break;
                }
                last = Some(n);
                probe = n;
            }
            break;
        }
    }
    (last, count)
}

/// One pass over every CronJob.
pub fn sync(state: &State, now: Millis, out: &mut Changes) {
    for stored in state.kind("CronJob").values() {
        let cj = &stored.doc;
        if doc::is_deleting(cj) {
            continue;
        }
        sync_one(state, cj, now, out);
    }
}

fn job_ref(job: &Value) -> Value {
    json!({"apiVersion": "batch/v1", "kind": "Job", "name": doc::name(job),
        "namespace": doc::namespace(job), "uid": doc::uid(job),
        "resourceVersion": doc::str_at(job, &["metadata", "resourceVersion"])})
}

fn sync_one(state: &State, cj: &Value, now: Millis, out: &mut Changes) {
    let (ns, name) = (doc::namespace(cj), doc::name(cj));
    let event = |warning: bool, reason: &str, msg: String| {
        let f = if warning {
            NewEvent::warning
        } else {
            NewEvent::normal
        };
        f("cronjob-controller", "CronJob", ns, name, reason, msg)
    };
    let reported =
        |reason: &str| super::workloads::already_reported(state, "CronJob", ns, name, reason);
    let delete_job = |out: &mut Changes, job: &Value| {
        out.push(Change::Delete {
            kind: "Job",
            namespace: ns.to_string(),
            name: doc::name(job).to_string(),
        });
        out.event(event(
            false,
            "SuccessfulDelete",
            format!("Deleted job {}", doc::name(job)),
        ));
    };
    let schedule_text = doc::str_at(cj, &["spec", "schedule"]);
    let schedule = match Schedule::parse(schedule_text) {
        Ok(s) => s,
        Err(e) => {
            if reported("UnparseableSchedule") {
                return;
            }
            out.event(event(
                true,
                "UnparseableSchedule",
                format!("unparseable schedule: {schedule_text:?} : {e}"),
            ));
            return;
        }
    };
    let tz = doc::str_at(cj, &["spec", "timeZone"]);
    if !tz.is_empty() && tz != "UTC" && tz != "Etc/UTC" {
        if reported("UnknownTimeZone") {
            return;
        }
        out.event(event(
            true,
            "UnknownTimeZone",
            format!("timeZone {tz:?} is not supported yet by the engine (only UTC)"),
        ));
        return;
    }
    let uid = doc::uid(cj);
    let mut jobs: Vec<&Value> = state
        .in_namespace("Job", ns)
        .map(|s| &s.doc)
        .filter(|j| doc::controller_uid(j) == Some(uid))
        .collect();
    jobs.sort_by_key(|j| {
        (
            doc::annotation(j, SCHEDULED_ANNOTATION)
                .and_then(parse_rfc3339)
                .unwrap_or(0),
            doc::name(j).to_string(),
        )
    });
    let mut status = cj.get("status").cloned().unwrap_or_else(|| json!({}));
    let mut active: Vec<&Value> = Vec::new();
    let mut last_success: Option<Millis> = doc::at(&status, &["lastSuccessfulTime"])
        .and_then(Value::as_str)
        .and_then(parse_rfc3339);
    for j in &jobs {
        if doc::is_deleting(j) {
            continue;
        }
        match finished(j) {
            None => active.push(j),
            Some((kind, at)) => {
                let was_active = doc::at(&status, &["active"])
                    .and_then(Value::as_array)
                    .is_some_and(|a| a.iter().any(|r| doc::str_at(r, &["uid"]) == doc::uid(j)));
                if was_active {
                    out.event(event(
                        false,
                        "SawCompletedJob",
                        format!("Saw completed job: {}, status: {kind}", doc::name(j)),
                    ));
                }
                if kind == "Complete" {
                    let done = doc::at(j, &["status", "completionTime"])
                        .and_then(Value::as_str)
                        .and_then(parse_rfc3339)
                        .unwrap_or(at);
                    last_success = Some(last_success.map_or(done, |l| l.max(done)));
                }
            }
        }
    }
    // History limits: the oldest finished Jobs beyond the limits go.
    for (kind, field, default) in [
        ("Complete", "successfulJobsHistoryLimit", 3),
        ("Failed", "failedJobsHistoryLimit", 1),
    ] {
        let limit = doc::i64_at(cj, &["spec", field]).unwrap_or(default).max(0) as usize;
        let done: Vec<&&Value> = jobs
            .iter()
            .filter(|j| !doc::is_deleting(j) && finished(j).is_some_and(|(k, _)| k == kind))
            .collect();
        if done.len() > limit {
            for j in &done[..done.len() - limit] {
                delete_job(out, j);
            }
        }
    }
    let suspended = doc::at(cj, &["spec", "suspend"]).and_then(Value::as_bool) == Some(true);
    let last_scheduled = doc::at(&status, &["lastScheduleTime"])
        .and_then(Value::as_str)
        .and_then(parse_rfc3339)
        .or_else(|| parse_rfc3339(doc::str_at(cj, &["metadata", "creationTimestamp"])))
        .unwrap_or(now);
    let mut scheduled_now: Option<Millis> = None;
    if !suspended {
        // With a deadline, instants older than it are forgotten, as Kubernetes does.
        let earliest = match doc::i64_at(cj, &["spec", "startingDeadlineSeconds"]) {
            Some(d) => last_scheduled.max(now - d * SECOND - 1),
            None => last_scheduled,
        };
        let (latest, missed) = missed_runs(&schedule, earliest, now);
        if missed > 100 {
            out.event(event(
                true,
                "TooManyMissedTimes",
                "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew".into(),
            ));
        }
        if let Some(at) = latest {
            let too_late = doc::i64_at(cj, &["spec", "startingDeadlineSeconds"])
                .is_some_and(|d| at + d * SECOND < now);
            let policy = doc::str_at(cj, &["spec", "concurrencyPolicy"]);
            let jname = job_name(name, at);
            if too_late {
                out.event(event(
                    true,
                    "MissSchedule",
                    format!("Missed scheduled time to start a job: {}", rfc3339(at)),
                ));
                scheduled_now = Some(at);
            } else if policy == "Forbid" && !active.is_empty() {
                // The run waits (lastScheduleTime unchanged) and starts when the active Job
                // finishes, unless the deadline passes first; reported once per instant.
                let reported = state
                    .events
                    .about("CronJob", ns, name)
                    .iter()
                    .any(|e| e.reason == "JobAlreadyActive" && e.last == now);
                if !reported {
                    out.event(event(
                        false,
                        "JobAlreadyActive",
                        "Not starting job because prior execution is running and concurrency policy is Forbid".into(),
                    ));
                }
            } else if state.get("Job", ns, &jname).is_none() {
                if policy == "Replace" {
                    for j in &active {
                        delete_job(out, j);
                    }
                    active.clear();
                }
                let template = doc::at(cj, &["spec", "jobTemplate"])
                    .cloned()
                    .unwrap_or_else(|| json!({}));
                let mut meta = json!({
                    "name": jname,
                    "namespace": ns,
                    "ownerReferences": [doc::controller_ref(cj)],
                    "annotations": {SCHEDULED_ANNOTATION: rfc3339(at)},
                });
                for field in ["labels", "annotations"] {
                    if let Some(Value::Object(m)) = doc::at(&template, &["metadata", field]) {
                        for (k, v) in m {
                            doc::map_mut(&mut meta, &[field]).insert(k.clone(), v.clone());
                        }
                    }
                }
                let job = json!({
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "metadata": meta,
                    "spec": template.get("spec").cloned().unwrap_or_else(|| json!({})),
                });
                out.push(Change::Create {
                    kind: "Job",
                    doc: job,
                    sim: None,
                    owner: Some(("CronJob", ns.to_string(), name.to_string())),
                });
                out.event(event(
                    false,
                    "SuccessfulCreate",
                    format!("Created job {jname}"),
                ));
                scheduled_now = Some(at);
            } else {
                scheduled_now = Some(at);
            }
        }
        if let Some(next) = schedule.next_after(now) {
            out.wake_at(next);
        }
    }
    let mut refs: Vec<Value> = active.iter().map(|j| job_ref(j)).collect();
    if let Some(at) = scheduled_now {
        status["lastScheduleTime"] = json!(rfc3339(at));
        // A Job created in this pass shows in `active` once it exists.
        let jname = job_name(name, at);
        if let Some(j) = state.get("Job", ns, &jname)
            && finished(&j.doc).is_none()
            && !refs.iter().any(|r| doc::str_at(r, &["name"]) == jname)
        {
            refs.push(job_ref(&j.doc));
        }
    }
    if let Some(m) = status.as_object_mut() {
        if refs.is_empty() {
            m.remove("active");
        } else {
            m.insert("active".into(), Value::Array(refs));
        }
        if let Some(t) = last_success {
            m.insert("lastSuccessfulTime".into(), json!(rfc3339(t)));
        }
    }
    if cj.get("status") != Some(&status) {
        let mut next = cj.clone();
        doc::set(&mut next, &["status"], status);
        out.update("CronJob", next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::clock::GENESIS;

    #[test]
    fn only_the_latest_missed_run_counts() {
        let s = Schedule::parse("*/5 * * * *").unwrap_or_else(|e| panic!("{e}"));
        let (latest, n) = missed_runs(&s, GENESIS, GENESIS + 17 * 60 * SECOND);
        assert_eq!(latest, Some(GENESIS + 15 * 60 * SECOND));
        assert_eq!(n, 3);
        let (none, zero) = missed_runs(&s, GENESIS, GENESIS + 4 * 60 * SECOND);
        assert_eq!((none, zero), (None, 0));
        assert_eq!(
            job_name("backup", GENESIS),
            format!("backup-{}", GENESIS / 60_000)
        );
    }
}

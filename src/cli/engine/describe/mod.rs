//! `engine describe`: kubectl's descriptions (`pkg/describe/describe.go`), field for field and
//! aligned as kubectl aligns them (Go's tabwriter, see [`crate::tables::tabwriter`]).
//!
//! Each describer writes tab-separated text into a [`Text`]; `finish` aligns it. Files group
//! the kinds: `workloads` (Deployment, ReplicaSet, DaemonSet, StatefulSet, Job, CronJob, HPA),
//! `pod` (Pod and the pod template shared by the workloads), `cluster` (Node, Namespace,
//! ResourceQuota, LimitRange), `config` (ConfigMap, Secret, ServiceAccount), `network`
//! (Service, Endpoints, EndpointSlice, Ingress), `storage` (PV, PVC, StorageClass), `rbac`.

mod cluster;
mod config;
mod network;
mod pod;
mod rbac;
mod storage;
mod workloads;

use std::fmt::Display;

use serde_json::Value;

use super::get::{self, Scope};
use crate::engine::clock::{Millis, human_age, parse_rfc3339};
use crate::engine::events::Event;
use crate::engine::kinds::KindInfo;
use crate::engine::store::State;
use crate::engine::{Engine, doc};
use crate::tables::tabwriter;

/// What every describer may look at.
pub(super) struct Ctx<'a> {
    /// The cluster's virtual time.
    pub now: Millis,
    /// Every object, for the related ones (a Deployment's ReplicaSets, a Service's endpoints).
    pub state: &'a State,
    /// Every event.
    pub events: &'a [Event],
    /// Whether the Events section is printed.
    pub show_events: bool,
}

/// Runs `engine describe`; returns the exit code.
pub fn run(
    engine: &mut Engine,
    resources: &[String],
    scope: Scope<'_>,
    show_events: Option<bool>,
) -> anyhow::Result<i32> {
    let request = get::parse_request(&*engine.served()?, resources)?;
    let get::Found {
        objects: found,
        mut missing,
    } = get::fetch(engine, &request, scope)?;
    let mut objects: Vec<(&'static KindInfo, Value)> = found
        .into_iter()
        .flat_map(|(info, objects)| objects.into_iter().map(move |o| (info, o)))
        .collect();
    // kubectl describes every object whose name starts with the one asked for when there is
    // no object of that exact name (`describe pods web` shows the pods of Deployment web).
    let mut prefix_matched = false;
    if objects.is_empty()
        && resources.len() == 2
        && !resources[0].contains('/')
        && let [(info, names)] = request.targets.as_slice()
        && let [prefix] = names.as_slice()
    {
        let listed = get::Scope {
            all_namespaces: false,
            selector: None,
            ..scope
        };
        let everything = get::Request {
            targets: vec![(*info, Vec::new())],
            single_item: false,
        };
        objects = get::fetch(engine, &everything, listed)?
            .objects
            .into_iter()
            .flat_map(|(info, objects)| objects.into_iter().map(move |o| (info, o)))
            .filter(|(_, o)| doc::name(o).starts_with(prefix.as_str()))
            .collect();
        if !objects.is_empty() {
            missing.clear();
            prefix_matched = true;
        }
    }
    let events = engine.events(None)?;
    let ctx = Ctx {
        now: engine.now_millis(),
        state: engine.state(),
        events: &events,
        // kubectl leaves events out when it describes several objects, unless asked.
        show_events: show_events.unwrap_or(objects.len() <= 1),
    };
    let mut first = true;
    for (info, o) in &objects {
        let text = describe(&ctx, info, o)?;
        if prefix_matched {
            println!("{text}");
        } else if first {
            print!("{text}");
        } else {
            print!("\n\n{text}");
        }
        first = false;
    }
    if objects.is_empty() && missing.is_empty() {
        if scope.all_namespaces {
            eprintln!("No resources found");
        } else {
            eprintln!("No resources found in {} namespace.", scope.namespace);
        }
    }
    for m in &missing {
        eprintln!("{m}");
    }
    Ok(if missing.is_empty() { 0 } else { 1 })
}

/// The description of one object.
pub(super) fn describe(ctx: &Ctx<'_>, info: &KindInfo, o: &Value) -> anyhow::Result<String> {
    let mut t = Text::default();
    match info.key {
        "Pod" => pod::pod(ctx, o, &mut t),
        "Deployment" => workloads::deployment(ctx, o, &mut t),
        "ReplicaSet" => workloads::replica_set(ctx, o, &mut t),
        "DaemonSet" => workloads::daemon_set(ctx, o, &mut t),
        "StatefulSet" => workloads::stateful_set(ctx, o, &mut t),
        "Job" => workloads::job(ctx, o, &mut t),
        "CronJob" => workloads::cron_job(ctx, o, &mut t),
        "HorizontalPodAutoscaler" => workloads::hpa(ctx, o, &mut t),
        "Node" => cluster::node(ctx, o, &mut t),
        "Namespace" => cluster::namespace(ctx, o, &mut t),
        "ResourceQuota" => cluster::resource_quota(o, &mut t),
        "LimitRange" => cluster::limit_range(o, &mut t),
        "ConfigMap" => config::config_map(ctx, o, &mut t),
        "Secret" => config::secret(o, &mut t),
        "ServiceAccount" => config::service_account(ctx, o, &mut t),
        "Service" => network::service(ctx, o, &mut t),
        "Endpoints" => network::endpoints(ctx, o, &mut t),
        "EndpointSlice" => network::endpoint_slice(ctx, o, &mut t),
        "Ingress" => network::ingress(ctx, o, &mut t),
        "PersistentVolume" => storage::persistent_volume(ctx, o, &mut t),
        "PersistentVolumeClaim" => storage::persistent_volume_claim(ctx, o, &mut t),
        "StorageClass" => storage::storage_class(ctx, o, &mut t),
        "Role" | "ClusterRole" => rbac::role(o, &mut t),
        "RoleBinding" | "ClusterRoleBinding" => rbac::binding(o, &mut t),
        other => anyhow::bail!("describe {other} is not supported yet"),
    }
    Ok(t.finish())
}

/// Tab-separated description text, as kubectl's `PrefixWriter` builds it.
#[derive(Debug, Default)]
pub(super) struct Text(String);

impl Text {
    /// Appends `text` indented by `level` steps of two spaces.
    pub fn w(&mut self, level: usize, text: &str) {
        for _ in 0..level {
            self.0.push_str("  ");
        }
        self.0.push_str(text);
    }

    /// Appends the line `key:\tvalue`.
    pub fn field(&mut self, level: usize, key: &str, value: impl Display) {
        self.w(level, &format!("{key}:\t{value}\n"));
    }

    fn finish(self) -> String {
        tabwriter::align(&self.0, tabwriter::DESCRIBE)
    }
}

/// The text of a scalar as Go's `%v` prints it (strings bare).
pub(super) fn scalar(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => crate::yaml::go_json_number(n),
        Some(other) => other.to_string(),
    }
}

/// The string at `path`, or `default` when absent or empty.
pub(super) fn or<'a>(o: &'a Value, path: &[&str], default: &'a str) -> &'a str {
    match doc::str_at(o, path) {
        "" => default,
        s => s,
    }
}

/// Go's `%v` of a bool field (`false` when absent).
pub(super) fn flag(o: &Value, path: &[&str]) -> bool {
    doc::at(o, path).and_then(Value::as_bool) == Some(true)
}

/// `printBoolPtr`: `True`, `False` or `<unset>`.
pub(super) fn bool_ptr(v: Option<&Value>) -> &'static str {
    match v.and_then(Value::as_bool) {
        Some(true) => "True",
        Some(false) => "False",
        None => "<unset>",
    }
}

/// The entries of a string map, sorted by key.
pub(super) fn sorted_entries(map: Option<&Value>) -> Vec<(String, String)> {
    let mut entries: Vec<(String, String)> = map
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), scalar(Some(v))))
        .collect();
    entries.sort();
    entries
}

/// `labels.FormatLabels`: `a=1,b=2`, `<none>` when empty.
pub(super) fn format_labels(map: Option<&Value>) -> String {
    let entries = sorted_entries(map);
    if entries.is_empty() {
        return "<none>".into();
    }
    entries
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// `metav1.FormatLabelSelector`: `<none>` for an absent or empty selector.
pub(super) fn format_selector(sel: Option<&Value>) -> String {
    match sel.map(crate::engine::labels::Selector::from_label_selector) {
        Some(Ok(s)) if !s.is_empty() => s.to_text(),
        _ => "<none>".into(),
    }
}

/// `printLabelsMultiline`: `Labels:\ta=1` then `\tb=2` on the following lines.
pub(super) fn labels_multiline(t: &mut Text, title: &str, map: Option<&Value>) {
    t.w(0, &format!("{title}:\t"));
    let entries = sorted_entries(map);
    if entries.is_empty() {
        t.w(0, "<none>\n");
        return;
    }
    for (i, (k, v)) in entries.iter().enumerate() {
        if i > 0 {
            t.w(0, "\t");
        }
        t.w(0, &format!("{k}={v}\n"));
    }
}

/// kubectl's limit on an annotation shown on one line.
const MAX_ANNOTATION_LEN: usize = 140;

/// `printAnnotationsMultiline`: `key: value`, long or multi-line values below their key,
/// `kubectl.kubernetes.io/last-applied-configuration` left out.
pub(super) fn annotations_multiline(t: &mut Text, title: &str, map: Option<&Value>) {
    t.w(0, &format!("{title}:\t"));
    let entries: Vec<(String, String)> = sorted_entries(map)
        .into_iter()
        .filter(|(k, _)| k != "kubectl.kubernetes.io/last-applied-configuration")
        .collect();
    if entries.is_empty() {
        t.w(0, "<none>\n");
        return;
    }
    for (i, (key, value)) in entries.iter().enumerate() {
        if i > 0 {
            t.w(0, "\t");
        }
        let value = value.strip_suffix('\n').unwrap_or(value);
        if value.len() + key.len() + 2 > MAX_ANNOTATION_LEN || value.contains('\n') {
            t.w(0, &format!("{key}:\n"));
            for line in value.split('\n') {
                t.w(
                    0,
                    &format!("\t  {}\n", shorten(line, MAX_ANNOTATION_LEN - 2)),
                );
            }
        } else {
            t.w(0, &format!("{key}: {value}\n"));
        }
    }
}

/// The first `max` bytes of `s` and `...` (kubectl cuts bytes; we stay on a char boundary).
fn shorten(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

/// `printController`: `ReplicaSet/web-5d4f` for an object with a controller owner.
pub(super) fn controlled_by(o: &Value) -> Option<String> {
    doc::at(o, &["metadata", "ownerReferences"])
        .and_then(Value::as_array)?
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
        .map(|r| {
            format!(
                "{}/{}",
                doc::str_at(r, &["kind"]),
                doc::str_at(r, &["name"])
            )
        })
}

/// One column of a `Conditions:` table: its header, the dashes under it (kubectl's are not
/// always as long as the header), and the condition field shown, a time when `time`.
pub(super) struct ConditionColumn {
    pub header: &'static str,
    pub dashes: &'static str,
    pub field: &'static str,
    pub time: bool,
}

/// A text column of a `Conditions:` table whose dashes match its header.
pub(super) fn text_column(header: &'static str, field: &'static str) -> ConditionColumn {
    const DASHES: &str = "--------------------------------";
    ConditionColumn {
        header,
        dashes: DASHES.get(..header.len()).unwrap_or(DASHES),
        field,
        time: false,
    }
}

/// The `Conditions:` table kubectl prints for nodes, claims, namespaces and autoscalers: a row
/// per condition in `status.conditions`, nothing when there are none. `padded` puts a space
/// before every tab, as kubectl's node and claim code does (`"%v \t%v \t…"`).
pub(super) fn conditions_table(o: &Value, columns: &[ConditionColumn], padded: bool, t: &mut Text) {
    let Some(conditions) = doc::at(o, &["status", "conditions"])
        .and_then(Value::as_array)
        .filter(|c| !c.is_empty())
    else {
        return;
    };
    let line = |cells: Vec<String>| {
        let sep = if padded { " \t" } else { "\t" };
        format!("{}\n", cells.join(sep))
    };
    t.w(0, "Conditions:\n");
    let plain = |cells: Vec<&str>| format!("{}\n", cells.join("\t"));
    t.w(1, &plain(columns.iter().map(|c| c.header).collect()));
    t.w(1, &plain(columns.iter().map(|c| c.dashes).collect()));
    for c in conditions {
        let cells = columns
            .iter()
            .map(|col| {
                if col.time {
                    timestamp(c, &[col.field]).unwrap_or_default()
                } else {
                    doc::str_at(c, &[col.field]).to_string()
                }
            })
            .collect();
        t.w(1, &line(cells));
    }
}

/// A timestamp field in Go's `time.RFC1123Z` (`Mon, 02 Jan 2006 15:04:05 +0000`).
pub(super) fn timestamp(o: &Value, path: &[&str]) -> Option<String> {
    parse_rfc3339(doc::str_at(o, path)).map(rfc1123z)
}

/// `at` in Go's `time.RFC1123Z`, in UTC.
pub(super) fn rfc1123z(at: Millis) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = at.div_euclid(86_400_000);
    let secs = at.rem_euclid(86_400_000) / 1000;
    // 1970-01-01 was a Thursday.
    let weekday = DAYS[(days + 4).rem_euclid(7) as usize];
    let (year, month, day) = civil_from_days(days);
    format!(
        "{weekday}, {day:02} {} {year} {:02}:{:02}:{:02} +0000",
        MONTHS[(month - 1) as usize],
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Year, month (1-12) and day of a day count since 1970-01-01 (proleptic Gregorian).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Age of a timestamp as kubectl prints it (`<unknown>` when absent).
pub(super) fn since(ctx: &Ctx<'_>, o: &Value, path: &[&str]) -> String {
    parse_rfc3339(doc::str_at(o, path))
        .map(|t| human_age(ctx.now - t))
        .unwrap_or_else(|| "<unknown>".into())
}

/// `DescribeEvents` for the object's events, oldest first.
pub(super) fn events(ctx: &Ctx<'_>, kind: &str, o: &Value, t: &mut Text) {
    if !ctx.show_events {
        return;
    }
    let namespace = doc::namespace(o);
    let name = doc::name(o);
    // Events about cluster-scoped objects live in some namespace (`default` for nodes).
    let namespaced = crate::engine::kinds::by_kind(kind).is_none_or(|k| k.namespaced);
    let mut mine: Vec<&Event> = ctx
        .events
        .iter()
        .filter(|e| {
            e.object_kind == kind
                && e.object_name == name
                && (!namespaced || e.namespace == namespace)
        })
        .collect();
    if mine.is_empty() {
        t.w(0, "Events:\t<none>\n");
        return;
    }
    mine.sort_by_key(|e| (e.last, e.id));
    t.w(0, "Events:\n  Type\tReason\tAge\tFrom\tMessage\n");
    t.w(1, "----\t------\t----\t----\t-------\n");
    for e in mine {
        let first = human_age(ctx.now - e.first);
        let interval = if e.count > 1 {
            format!(
                "{} (x{} over {first})",
                human_age(ctx.now - e.last),
                e.count
            )
        } else {
            first
        };
        t.w(
            1,
            &format!(
                "{}\t{}\t{interval}\t{}\t{}\n",
                e.kind,
                e.reason,
                e.source,
                e.message.trim()
            ),
        );
    }
}

/// Pods a controller owns, counted by phase: running, waiting (pending), succeeded, failed.
pub(super) fn pod_counts(ctx: &Ctx<'_>, owner: &Value) -> (usize, usize, usize, usize) {
    let uid = doc::uid(owner);
    let mut counts = (0, 0, 0, 0);
    for stored in ctx.state.in_namespace("Pod", doc::namespace(owner)) {
        if doc::controller_uid(&stored.doc) != Some(uid) {
            continue;
        }
        match doc::str_at(&stored.doc, &["status", "phase"]) {
            "Running" => counts.0 += 1,
            "Succeeded" => counts.2 += 1,
            "Failed" => counts.3 += 1,
            _ => counts.1 += 1,
        }
    }
    counts
}

/// The `Name:` / `Namespace:` lines every description opens with.
pub(super) fn name_and_namespace(o: &Value, t: &mut Text) {
    t.field(0, "Name", doc::name(o));
    t.field(0, "Namespace", doc::namespace(o));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rfc1123z_matches_go() {
        // 2026-01-01T00:00:00Z was a Thursday.
        assert_eq!(
            rfc1123z(1_767_225_600_000),
            "Thu, 01 Jan 2026 00:00:00 +0000"
        );
        assert_eq!(
            rfc1123z(951_782_400_000 + 3_661_000),
            "Tue, 29 Feb 2000 01:01:01 +0000"
        );
    }

    #[test]
    fn labels_and_annotations_layout() {
        let mut t = Text::default();
        labels_multiline(&mut t, "Labels", Some(&json!({"b": "2", "a": "1"})));
        annotations_multiline(&mut t, "Annotations", Some(&json!({"x": "y"})));
        labels_multiline(&mut t, "Node-Selectors", None);
        assert_eq!(
            t.finish(),
            "Labels:          a=1\n                 b=2\nAnnotations:     x: y\nNode-Selectors:  <none>\n"
        );
    }
}

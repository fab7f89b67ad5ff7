//! What a change to the repository does to the rendered desired state: the applications a
//! set of changed paths can affect ([`deps`]), each rendered at both revisions and compared
//! object by object, with the normalization and Secret masking of `plan`.
//!
//! Desired is compared with desired — no cluster, no live-state noise — so the same two
//! commits always give the same report.
//!
//! Invariant: no Secret value reaches a diff (both sides are masked together, as in `plan`);
//! an application whose render fails at either revision is reported with the error, never
//! skipped.

pub mod deps;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::diff::display_id;
use crate::diff::mask::mask_pair;
use crate::diff::normalize::{drop_empty, fold_string_data, strip_bookkeeping_as};
use crate::model::ResId;
use crate::plan::status::StatusRules;
use crate::source::Fs;

/// The version of the JSON report.
pub const FORMAT_VERSION: u32 = 1;

/// An application as one revision defines it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    /// Its name (from reconcile.yaml, or its path).
    pub name: String,
    /// Its kustomization directory, relative to the repository root.
    pub path: String,
    /// Its settings as text (a change of them counts as a change of the app).
    pub settings: String,
}

/// One revision: its files, where the repository root is in them, its applications.
#[derive(Debug, Clone, Copy)]
pub struct Side<'a> {
    /// The files.
    pub fs: &'a dyn Fs,
    /// The repository root.
    pub root: &'a Path,
    /// The applications.
    pub apps: &'a [App],
}

/// How an object changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ObjectChangeKind {
    /// Only at head.
    Added,
    /// At both, different.
    Changed,
    /// Only at base.
    Removed,
}

/// One object that differs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectChange {
    /// Added, changed or removed.
    pub change: ObjectChangeKind,
    /// `apiVersion` (at head, else at base).
    pub api_version: String,
    /// `kind`.
    pub kind: String,
    /// Namespace (empty when none).
    pub namespace: String,
    /// Name at head (at base for a removal).
    pub name: String,
    /// The name at base when a generated name's hash suffix changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_name: Option<String>,
    /// Unified diff of the YAML (`base` → `head`), Secret values masked.
    pub diff: String,
}

impl ObjectChange {
    /// `Kind namespace/name` (with `old → new` for a renamed generated object).
    pub fn display(&self) -> String {
        let id = |name: &str| {
            if self.namespace.is_empty() {
                name.to_string()
            } else {
                format!("{}/{}", self.namespace, name)
            }
        };
        match &self.previous_name {
            Some(old) => format!("{} {} → {}", self.kind, id(old), self.name),
            None => format!("{} {}", self.kind, id(&self.name)),
        }
    }
}

/// Counts of changed objects.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Counts {
    /// Objects only at head.
    pub added: usize,
    /// Objects at both revisions that differ.
    pub changed: usize,
    /// Objects only at base.
    pub removed: usize,
}

impl Counts {
    fn add(&mut self, other: &Counts) {
        self.added += other.added;
        self.changed += other.changed;
        self.removed += other.removed;
    }
}

/// A render that failed at one revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RenderFailure {
    /// `base` or `head`.
    pub revision: String,
    /// The error (file, line, cause).
    pub error: String,
}

/// The comparison of one application.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppDiff {
    /// Application name.
    pub name: String,
    /// Its path at head (at base when removed).
    pub path: String,
    /// Whether the application exists at base / at head.
    pub at_base: bool,
    /// Whether the application exists at head.
    pub at_head: bool,
    /// Renders that failed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<RenderFailure>,
    /// The objects that differ, in render order.
    pub objects: Vec<ObjectChange>,
    /// Counts.
    pub summary: Counts,
}

impl AppDiff {
    /// True when anything differs or failed.
    pub fn has_changes(&self) -> bool {
        !self.objects.is_empty() || !self.errors.is_empty()
    }
}

/// The result of comparing two revisions.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// The affected applications (rendered), by name.
    pub apps: Vec<AppDiff>,
    /// The applications no changed path can affect (not rendered).
    pub unaffected: Vec<String>,
}

impl Comparison {
    /// Totals over the applications.
    pub fn totals(&self) -> Counts {
        let mut total = Counts::default();
        for app in &self.apps {
            total.add(&app.summary);
        }
        total
    }
}

/// One side of the report: the ref as given and its commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RevisionInfo {
    /// The ref as given.
    #[serde(rename = "ref")]
    pub reference: String,
    /// The commit.
    pub sha: String,
}

/// Totals of a report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReportSummary {
    /// Applications rendered (affected by the change).
    pub affected: usize,
    /// Applications with differences.
    pub changed_apps: usize,
    /// Applications that failed to render at either revision.
    pub failed_apps: usize,
    /// Objects added.
    pub added: usize,
    /// Objects changed.
    pub changed: usize,
    /// Objects removed.
    pub removed: usize,
}

/// What `reconcile diff -o json` prints (`reconcile schema diff`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Format version (1).
    pub format_version: u32,
    /// The repository (a local path, or a URL with user info redacted).
    pub repo: String,
    /// The revision compared from.
    pub base: RevisionInfo,
    /// The revision compared to.
    pub head: RevisionInfo,
    /// Affected applications, by name.
    pub apps: Vec<AppDiff>,
    /// Applications no changed file can affect (not rendered).
    pub unaffected: Vec<String>,
    /// Totals.
    pub summary: ReportSummary,
}

impl Report {
    /// A report of a comparison.
    pub fn new(
        repo: &str,
        base: RevisionInfo,
        head: RevisionInfo,
        comparison: Comparison,
    ) -> Report {
        let totals = comparison.totals();
        let summary = ReportSummary {
            affected: comparison.apps.len(),
            changed_apps: comparison
                .apps
                .iter()
                .filter(|a| !a.objects.is_empty())
                .count(),
            failed_apps: comparison
                .apps
                .iter()
                .filter(|a| !a.errors.is_empty())
                .count(),
            added: totals.added,
            changed: totals.changed,
            removed: totals.removed,
        };
        Report {
            format_version: FORMAT_VERSION,
            repo: repo.to_string(),
            base,
            head,
            apps: comparison.apps,
            unaffected: comparison.unaffected,
            summary,
        }
    }

    /// True when some object differs.
    pub fn has_changes(&self) -> bool {
        self.apps.iter().any(|a| !a.objects.is_empty())
    }
}

/// The JSON Schema of [`Report`] (pretty JSON, final newline).
pub fn report_schema() -> String {
    let schema = schemars::schema_for!(Report);
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}

fn render_values(fs: &dyn Fs, dir: &Path) -> Result<Vec<Value>, String> {
    crate::render::render(fs, dir)
        .map(|resources| crate::render::to_values(&resources))
        .map_err(|e| e.to_string())
}

/// Which applications the changed paths (relative to the root) can affect.
///
/// The dependencies of each application are read at base only: what the render at head
/// reads can differ from what it reads at base only through a file the analysis at base
/// looked at (a kustomization, a plugin configuration, a path it looked up), and a change
/// to any of those is already a hit. Applications new, gone or with other settings at head
/// are always affected.
pub fn affected(base: Side<'_>, head: Side<'_>, changed: &[PathBuf]) -> BTreeSet<String> {
    let names: BTreeSet<&str> = base
        .apps
        .iter()
        .chain(head.apps)
        .map(|a| a.name.as_str())
        .collect();
    let changed: Vec<PathBuf> = changed.iter().map(|p| base.root.join(p)).collect();
    let mut index = deps::Index::new(base.fs);
    let mut out = BTreeSet::new();
    for name in names {
        let at_base = base.apps.iter().find(|a| a.name == name);
        let at_head = head.apps.iter().find(|a| a.name == name);
        let (Some(b), Some(h)) = (at_base, at_head) else {
            out.insert(name.to_string());
            continue;
        };
        if b != h || base.root != head.root {
            out.insert(name.to_string());
            continue;
        }
        let deps = index.deps(&crate::source::clean(&base.root.join(&b.path)));
        if changed.iter().any(|path| deps.affected_by(path)) {
            out.insert(name.to_string());
        }
    }
    out
}

/// Renders the `wanted` applications at both revisions (in parallel) and compares them;
/// the others are listed as unaffected.
pub fn compare(base: Side<'_>, head: Side<'_>, wanted: &BTreeSet<String>) -> Comparison {
    use rayon::prelude::*;
    let mut names: Vec<&str> = base
        .apps
        .iter()
        .chain(head.apps)
        .map(|a| a.name.as_str())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let unaffected: Vec<String> = names
        .iter()
        .filter(|n| !wanted.contains(**n))
        .map(|n| n.to_string())
        .collect();
    names.retain(|n| wanted.contains(*n));
    let apps = names
        .par_iter()
        .map(|name| {
            let at_base = base.apps.iter().find(|a| a.name == *name);
            let at_head = head.apps.iter().find(|a| a.name == *name);
            let render = |side: &Side<'_>, app: Option<&App>| {
                app.map(|a| render_values(side.fs, &crate::source::clean(&side.root.join(&a.path))))
            };
            let (old, new) = rayon::join(|| render(&base, at_base), || render(&head, at_head));
            let path = at_head
                .or(at_base)
                .map(|a| a.path.clone())
                .unwrap_or_default();
            compare_app(name, &path, old, new)
        })
        .collect();
    Comparison { apps, unaffected }
}

/// Compares one application's renders (`None`: the application does not exist there).
pub fn compare_app(
    name: &str,
    path: &str,
    base: Option<Result<Vec<Value>, String>>,
    head: Option<Result<Vec<Value>, String>>,
) -> AppDiff {
    let mut errors = Vec::new();
    let mut take = |side: &str, render: Option<Result<Vec<Value>, String>>| match render {
        Some(Ok(objects)) => objects,
        Some(Err(error)) => {
            errors.push(RenderFailure {
                revision: side.to_string(),
                error,
            });
            Vec::new()
        }
        None => Vec::new(),
    };
    let (at_base, at_head) = (base.is_some(), head.is_some());
    let old = take("base", base);
    let new = take("head", head);
    let objects = if errors.is_empty() {
        object_changes(&old, &new)
    } else {
        Vec::new()
    };
    let mut summary = Counts::default();
    for object in &objects {
        match object.change {
            ObjectChangeKind::Added => summary.added += 1,
            ObjectChangeKind::Changed => summary.changed += 1,
            ObjectChangeKind::Removed => summary.removed += 1,
        }
    }
    AppDiff {
        name: name.to_string(),
        path: path.to_string(),
        at_base,
        at_head,
        errors,
        objects,
        summary,
    }
}

/// `name` without a kustomize hash suffix (`-` and ten characters), if it has one.
fn hash_stem(name: &str) -> Option<&str> {
    let (stem, suffix) = name.rsplit_once('-')?;
    (suffix.len() == 10
        && suffix
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
    .then_some(stem)
}

/// What a side declares of `object`: without bookkeeping, and without `status` unless its
/// kind has no status subresource by that side's CRDs (`rules`).
fn normalized(object: &Value, rules: &StatusRules) -> Value {
    let status_is_field = rules.object_status_is_field(object);
    let mut object = object.clone();
    strip_bookkeeping_as(&mut object, status_is_field);
    fold_string_data(&mut object);
    drop_empty(&mut object);
    object
}

fn text(object: Option<&Value>) -> String {
    object.map(crate::yaml::to_yaml).unwrap_or_default()
}

/// The status rules of the base and the head tree.
struct Sides {
    base: StatusRules,
    head: StatusRules,
}

fn change_of(
    kind: ObjectChangeKind,
    (old, new): (Option<&Value>, Option<&Value>),
    previous: Option<String>,
    rules: &Sides,
) -> ObjectChange {
    let id = ResId::of(new.or(old).unwrap_or(&Value::Null));
    let mut old = old.map(|o| normalized(o, &rules.base));
    let mut new = new.map(|o| normalized(o, &rules.head));
    mask_pair(new.as_mut(), old.as_mut());
    let shown = display_id(&id);
    let diff = similar::TextDiff::from_lines(text(old.as_ref()), text(new.as_ref()))
        .unified_diff()
        .context_radius(3)
        .header(&format!("base {shown}"), &format!("head {shown}"))
        .to_string();
    let api_version = new
        .as_ref()
        .or(old.as_ref())
        .and_then(|o| o.get("apiVersion"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    ObjectChange {
        change: kind,
        api_version,
        kind: id.gvk.kind.clone(),
        namespace: id.namespace.clone(),
        name: id.name.clone(),
        previous_name: previous,
        diff,
    }
}

/// Object-level changes between two renders of one application. A generated ConfigMap or
/// Secret whose hash suffix changed is one change (with `previousName`), not a removal and
/// an unrelated addition. `status` counts for custom resources whose CRD (in that side's
/// tree) has no status subresource, as a plan counts it.
pub fn object_changes(base: &[Value], head: &[Value]) -> Vec<ObjectChange> {
    let rules = Sides {
        base: StatusRules::of_tree(base),
        head: StatusRules::of_tree(head),
    };
    let old: BTreeMap<ResId, &Value> = base.iter().map(|o| (ResId::of(o), o)).collect();
    let new_ids: BTreeSet<ResId> = head.iter().map(ResId::of).collect();
    // Renamed generated objects: a removed and an added object of one kind and namespace
    // whose names differ only in the hash suffix.
    let mut renamed: BTreeMap<ResId, ResId> = BTreeMap::new();
    let removed: Vec<&ResId> = old.keys().filter(|id| !new_ids.contains(id)).collect();
    for id in head
        .iter()
        .map(ResId::of)
        .filter(|id| !old.contains_key(id))
    {
        let Some(stem) = hash_stem(&id.name) else {
            continue;
        };
        if let Some(previous) = removed.iter().find(|r| {
            r.gvk == id.gvk
                && r.namespace == id.namespace
                && hash_stem(&r.name) == Some(stem)
                && !renamed.values().any(|v| v == **r)
        }) {
            renamed.insert(id.clone(), (*previous).clone());
        }
    }
    let mut changes = Vec::new();
    for object in head {
        let id = ResId::of(object);
        if let Some(previous) = old.get(&id) {
            let (a, b) = (
                normalized(previous, &rules.base),
                normalized(object, &rules.head),
            );
            if a != b {
                changes.push(change_of(
                    ObjectChangeKind::Changed,
                    (Some(previous), Some(object)),
                    None,
                    &rules,
                ));
            }
        } else if let Some(previous_id) = renamed.get(&id) {
            let previous = old.get(previous_id).copied();
            changes.push(change_of(
                ObjectChangeKind::Changed,
                (previous, Some(object)),
                Some(previous_id.name.clone()),
                &rules,
            ));
        } else {
            changes.push(change_of(
                ObjectChangeKind::Added,
                (None, Some(object)),
                None,
                &rules,
            ));
        }
    }
    let paired: BTreeSet<&ResId> = renamed.values().collect();
    for object in base {
        let id = ResId::of(object);
        if !new_ids.contains(&id) && !paired.contains(&id) {
            changes.push(change_of(
                ObjectChangeKind::Removed,
                (Some(object), None),
                None,
                &rules,
            ));
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cm(name: &str, value: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "a"}, "data": {"k": value}})
    }

    #[test]
    fn a_renamed_generated_configmap_is_one_change() {
        let changes = object_changes(
            &[cm("app-config-7hd9b2kt5m", "1")],
            &[cm("app-config-g6h8c9kd2f", "2")],
        );
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].change, ObjectChangeKind::Changed);
        assert_eq!(
            changes[0].previous_name.as_deref(),
            Some("app-config-7hd9b2kt5m")
        );
        assert!(
            changes[0].diff.contains("-  k: \"1\"") || changes[0].diff.contains("-  k: '1'"),
            "{}",
            changes[0].diff
        );
    }

    #[test]
    fn secret_values_are_masked_on_both_sides() {
        let secret = |v: &str| json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"password": v}});
        let changes = object_changes(&[secret("aHVudGVyMg==")], &[secret("c2VjcmV0Mg==")]);
        assert_eq!(changes.len(), 1);
        let diff = &changes[0].diff;
        assert!(
            !diff.contains("aHVudGVyMg")
                && !diff.contains("c2VjcmV0Mg")
                && !diff.contains("hunter2"),
            "{diff}"
        );
        assert!(
            diff.contains("-  password: ++++++++") && diff.contains("+  password: +++++++++"),
            "{diff}"
        );
    }

    #[test]
    fn unchanged_objects_are_not_listed() {
        let changes = object_changes(&[cm("x", "1"), cm("y", "1")], &[cm("x", "1"), cm("z", "1")]);
        let kinds: Vec<_> = changes
            .iter()
            .map(|c| (c.change, c.name.as_str()))
            .collect();
        assert_eq!(
            kinds,
            vec![
                (ObjectChangeKind::Added, "z"),
                (ObjectChangeKind::Removed, "y")
            ]
        );
    }
}

//! `engine get` and the resource arguments it shares with `describe`: `TYPE[,TYPE…] [NAME…]`,
//! `TYPE/NAME…`, and the `all` category, resolved and fetched as kubectl does.

use anyhow::bail;
use serde_json::Value;

use super::output;
use super::{GetFormat, kind_info, not_found};
use crate::engine::kinds::{self, KindInfo};
use crate::engine::served::Served;
use crate::engine::{Engine, doc};
use crate::tables::{self, TableOptions};

/// The kinds of kubectl's `all` category, in the order kubectl prints them (discovery order:
/// core, then apps, autoscaling, batch; resources alphabetical within a group).
pub const ALL_CATEGORY: &[&str] = &[
    "Pod",
    "Service",
    "DaemonSet",
    "Deployment",
    "ReplicaSet",
    "StatefulSet",
    "HorizontalPodAutoscaler",
    "CronJob",
    "Job",
];

/// kubectl's message when `TYPE NAME` and `TYPE/NAME` arguments are mixed.
const MIXED_FORMS: &str = "there is no need to specify a resource type as a separate argument \
    when passing arguments in resource/name form (e.g. 'kubectl get resource/<resource_name>' \
    instead of 'kubectl get resource resource/<resource_name>'";

/// What the resource arguments ask for.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// Each kind with the names asked for (empty: every object of the kind).
    pub targets: Vec<(&'static KindInfo, Vec<String>)>,
    /// Exactly one kind and one name: kubectl prints the object itself, not a `List`.
    pub single_item: bool,
}

/// Resolves kubectl-style resource arguments.
pub fn parse_request(served: &Served, args: &[String]) -> anyhow::Result<Request> {
    let Some(first) = args.first() else {
        bail!("you must specify the type of resource to get");
    };
    if first.contains('/') {
        let mut targets: Vec<(&'static KindInfo, Vec<String>)> = Vec::new();
        for arg in args {
            let Some((kind, name)) = arg.split_once('/') else {
                bail!("{MIXED_FORMS}");
            };
            if name.is_empty() {
                bail!("arguments in resource/name form must have a single resource and name");
            }
            let info = kind_info(served, kind)?;
            match targets.iter_mut().find(|(k, _)| k.key == info.key) {
                Some((_, names)) => names.push(name.to_string()),
                None => targets.push((info, vec![name.to_string()])),
            }
        }
        let single_item = args.len() == 1;
        return Ok(Request {
            targets,
            single_item,
        });
    }
    if args[1..].iter().any(|a| a.contains('/')) {
        bail!("{MIXED_FORMS}");
    }
    let names: Vec<String> = args[1..].to_vec();
    let mut kinds_asked: Vec<&'static KindInfo> = Vec::new();
    for word in first.split(',').filter(|w| !w.is_empty()) {
        let expanded: Vec<&'static KindInfo> = if word == "all" {
            ALL_CATEGORY
                .iter()
                .filter_map(|k| kinds::by_kind(k))
                .collect()
        } else {
            vec![kind_info(served, word)?]
        };
        for info in expanded {
            if !kinds_asked.iter().any(|k| k.key == info.key) {
                kinds_asked.push(info);
            }
        }
    }
    if kinds_asked.is_empty() {
        bail!("you must specify the type of resource to get");
    }
    let single_item = kinds_asked.len() == 1 && names.len() == 1 && first != "all";
    Ok(Request {
        targets: kinds_asked
            .into_iter()
            .map(|k| (k, names.clone()))
            .collect(),
        single_item,
    })
}

/// Where and what to list.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// The namespace (`-n`).
    pub namespace: &'a str,
    /// `-A`.
    pub all_namespaces: bool,
    /// `-l`.
    pub selector: Option<&'a str>,
}

/// What `fetch` found: the objects of each kind (in request order), and kubectl's message
/// for each name not found.
pub struct Found {
    /// Objects by kind.
    pub objects: Vec<(&'static KindInfo, Vec<Value>)>,
    /// `Error from server (NotFound): …` lines.
    pub missing: Vec<String>,
}

/// Fetches what `request` asks for.
pub fn fetch(engine: &mut Engine, request: &Request, scope: Scope<'_>) -> anyhow::Result<Found> {
    if scope.all_namespaces && request.targets.iter().any(|(_, names)| !names.is_empty()) {
        bail!("a resource cannot be retrieved by name across all namespaces");
    }
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for (info, names) in &request.targets {
        let mut objects = Vec::new();
        if names.is_empty() {
            let ns = (!scope.all_namespaces).then_some(scope.namespace);
            objects = engine.list(info.key, ns, scope.selector)?;
            objects.sort_by(|a, b| {
                (doc::namespace(a), doc::name(a)).cmp(&(doc::namespace(b), doc::name(b)))
            });
        } else {
            for name in names {
                match engine.get(info.key, scope.namespace, name)? {
                    Some(o) => objects.push(o),
                    None => missing.push(format!(
                        "Error from server (NotFound): {}",
                        not_found(info, name)
                    )),
                }
            }
        }
        found.push((*info, objects));
    }
    Ok(Found {
        objects: found,
        missing,
    })
}

/// How `get` prints tables, besides `-o`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Columns {
    /// `--show-labels`.
    pub show_labels: bool,
    /// `--no-headers`.
    pub no_headers: bool,
    /// `--show-managed-fields`.
    pub show_managed_fields: bool,
}

/// Runs `engine get`; returns the exit code.
pub fn run(
    engine: &mut Engine,
    resources: &[String],
    scope: Scope<'_>,
    format: Option<GetFormat>,
    columns: Columns,
) -> anyhow::Result<i32> {
    let request = parse_request(&*engine.served()?, resources)?;
    let Found {
        objects: found,
        missing,
    } = fetch(engine, &request, scope)?;
    let now = engine.now_millis();
    let total: usize = found.iter().map(|(_, o)| o.len()).sum();
    match format {
        Some(f @ (GetFormat::Json | GetFormat::Yaml)) => {
            let printed = if request.single_item {
                found.into_iter().flat_map(|(_, o)| o).next()
            } else {
                Some(output::list(
                    found.into_iter().flat_map(|(_, o)| o).collect(),
                ))
            };
            if let Some(mut value) = printed {
                if !columns.show_managed_fields {
                    hide_managed_fields(&mut value);
                }
                if f == GetFormat::Json {
                    print!("{}", output::json(&value));
                } else {
                    print!("{}", output::yaml(&value));
                }
            }
        }
        Some(GetFormat::Name) => {
            for (info, objects) in &found {
                for o in objects {
                    println!("{}/{}", info.resource_prefix(), doc::name(o));
                }
            }
        }
        Some(GetFormat::Wide) | None => {
            // kubectl prefixes names with their kind when its results span several kinds. A
            // listed kind always yields a result (the server's table, empty or not); a named
            // object only when it exists. So `get deploy,rs` prefixes even when only
            // Deployments exist, `get deploy,svc web` only when both `web`s exist.
            let kinds_printed = request
                .targets
                .iter()
                .zip(&found)
                .filter(|((_, names), (_, objects))| names.is_empty() || !objects.is_empty())
                .count();
            let mut first = true;
            for (info, objects) in &found {
                if objects.is_empty() {
                    continue;
                }
                // kubectl separates the kinds' tables only when they have title rows.
                if !first && !columns.no_headers {
                    println!();
                }
                first = false;
                let options = TableOptions {
                    with_namespace: scope.all_namespaces && info.namespaced,
                    wide: format == Some(GetFormat::Wide),
                    with_kind: kinds_printed > 1,
                    show_labels: columns.show_labels,
                    no_headers: columns.no_headers,
                };
                print!("{}", tables::table(info, objects, now, options));
            }
            if total == 0 && missing.is_empty() {
                // kubectl names the namespace unless -A, even for cluster-scoped kinds.
                if scope.all_namespaces {
                    eprintln!("No resources found");
                } else {
                    eprintln!("No resources found in {} namespace.", scope.namespace);
                }
            }
        }
    }
    for m in &missing {
        eprintln!("{m}");
    }
    Ok(if missing.is_empty() { 0 } else { 1 })
}

/// `engine get … -w`: the table, then, as virtual time passes in steps of `step_ms` up to
/// `timeout_ms`, a row for each object that changed (as `kubectl get -w` streams them; a
/// deleted object's last row is printed once more). The engine's time moves only when a
/// command lets it, so the watch lets it, and ends at the timeout.
pub fn watch(
    engine: &mut Engine,
    resources: &[String],
    scope: Scope<'_>,
    format: Option<GetFormat>,
    columns: Columns,
    timeout_ms: i64,
) -> anyhow::Result<i32> {
    if matches!(
        format,
        Some(GetFormat::Json | GetFormat::Yaml | GetFormat::Name)
    ) {
        bail!(
            "-w is supported with the table output (and -o wide) only, not yet with -o json|yaml|name"
        );
    }
    let code = run(engine, resources, scope, format, columns)?;
    let request = parse_request(&*engine.served()?, resources)?;
    let key = |info: &KindInfo, o: &Value| {
        (
            info.key,
            doc::namespace(o).to_string(),
            doc::name(o).to_string(),
        )
    };
    let mut seen: std::collections::BTreeMap<(&str, String, String), (String, Value)> =
        std::collections::BTreeMap::new();
    let remember = |found: &[(&'static KindInfo, Vec<Value>)],
                    seen: &mut std::collections::BTreeMap<_, _>| {
        for (info, objects) in found {
            for o in objects {
                let rv = doc::str_at(o, &["metadata", "resourceVersion"]).to_string();
                seen.insert(key(info, o), (rv, o.clone()));
            }
        }
    };
    remember(&fetch(engine, &request, scope)?.objects, &mut seen);
    let options = |info: &KindInfo| TableOptions {
        with_namespace: scope.all_namespaces && info.namespaced,
        wide: format == Some(GetFormat::Wide),
        with_kind: request.targets.len() > 1,
        show_labels: columns.show_labels,
        no_headers: true,
    };
    let start = engine.now_millis();
    while engine.now_millis() - start < timeout_ms {
        let step = WATCH_STEP.min(timeout_ms - (engine.now_millis() - start));
        engine.advance(step)?;
        let now = engine.now_millis();
        let found = fetch(engine, &request, scope)?.objects;
        let mut current = std::collections::BTreeSet::new();
        for (info, objects) in &found {
            for o in objects {
                let k = key(info, o);
                current.insert(k.clone());
                let rv = doc::str_at(o, &["metadata", "resourceVersion"]);
                if seen.get(&k).is_none_or(|(old, _)| old != rv) {
                    print!(
                        "{}",
                        tables::table(info, std::slice::from_ref(o), now, options(info))
                    );
                }
            }
        }
        for (k, (_, last)) in &seen {
            if !current.contains(k)
                && let Some(info) = kinds::by_key(k.0)
            {
                print!(
                    "{}",
                    tables::table(info, std::slice::from_ref(last), now, options(info))
                );
            }
        }
        seen.clear();
        remember(&found, &mut seen);
    }
    Ok(code)
}

/// Virtual time between two looks of `get -w`.
const WATCH_STEP: i64 = 1_000;

/// kubectl leaves `metadata.managedFields` out of `-o yaml|json` unless asked.
fn hide_managed_fields(value: &mut serde_json::Value) {
    if let Some(serde_json::Value::Array(items)) = value.get_mut("items") {
        items.iter_mut().for_each(hide_managed_fields);
    }
    if let Some(serde_json::Value::Object(meta)) = value.get_mut("metadata") {
        meta.shift_remove("managedFields");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    fn kinds_of(r: &Request) -> Vec<&str> {
        r.targets.iter().map(|(k, _)| k.kind).collect()
    }

    #[test]
    fn comma_separated_kinds_and_names() {
        let r = parse_request(&Served::builtin(), &args(&["deploy,rs,pods"])).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(kinds_of(&r), ["Deployment", "ReplicaSet", "Pod"]);
        assert!(!r.single_item);
        let r = parse_request(&Served::builtin(), &args(&["deploy", "web"])).unwrap_or_else(|e| panic!("{e}"));
        assert!(r.single_item);
        let r = parse_request(&Served::builtin(), &args(&["deploy,svc", "web"])).unwrap_or_else(|e| panic!("{e}"));
        assert!(!r.single_item);
        assert_eq!(r.targets[1].1, ["web"]);
    }

    #[test]
    fn all_expands_in_kubectl_order() {
        let r = parse_request(&Served::builtin(), &args(&["all"])).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(kinds_of(&r), ALL_CATEGORY);
        let r = parse_request(&Served::builtin(), &args(&["all,cm,pods"])).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.targets.len(), ALL_CATEGORY.len() + 1);
    }

    #[test]
    fn type_slash_name_form() {
        let r = parse_request(&Served::builtin(), &args(&["deploy/web", "svc/web", "deploy/api"]))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(kinds_of(&r), ["Deployment", "Service"]);
        assert_eq!(r.targets[0].1, ["web", "api"]);
        assert!(parse_request(&Served::builtin(), &args(&["deploy", "svc/web"])).is_err());
        assert!(parse_request(&Served::builtin(), &args(&["widgets"])).is_err());
    }
}

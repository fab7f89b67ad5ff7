//! What a request names: the resource from the URL path, and the list options from the
//! query (label and field selectors, `limit`/`continue`, `resourceVersion`, `dryRun`).

use std::collections::HashMap;

use base64::Engine as _;
use serde_json::Value;

use super::discovery;
use super::status::ApiError;
use crate::engine::doc;
use crate::engine::kinds::KindInfo;
use crate::engine::labels::Selector;
use crate::engine::served::Served;

/// A subresource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sub {
    /// `…/status`.
    Status,
    /// `…/scale`.
    Scale,
}

/// The resource a path names.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// Objects of a kind the engine stores.
    Objects {
        /// The kind.
        info: &'static KindInfo,
        /// The namespace in the path (`None`: all namespaces, or cluster-scoped).
        namespace: Option<String>,
        /// The object's name (`None`: the collection).
        name: Option<String>,
        /// The subresource.
        sub: Option<Sub>,
        /// The version in the path: objects are read and answered in it.
        version: String,
    },
    /// `core/v1` events (read from the engine's event log).
    Events {
        /// The namespace in the path.
        namespace: Option<String>,
    },
}

/// Parses `/api/v1/…` and `/apis/{group}/{version}/…` below the group version, routing to
/// what is `served` now.
pub fn parse_path(served: &Served, path: &str) -> Result<Target, ApiError> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match parts.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return Err(ApiError::no_route()),
    };
    let known = |plural: &str| served.kind_for(group, version, plural);
    let is_events = |plural: &str| group.is_empty() && version == "v1" && plural == "events";
    let (namespace, plural, name, sub) = match rest {
        ["namespaces", ns, plural, tail @ ..] if known(plural).is_some() || is_events(plural) => (
            Some(ns.to_string()),
            *plural,
            tail.first().copied(),
            tail.get(1).copied(),
        ),
        [plural, tail @ ..] => (None, *plural, tail.first().copied(), tail.get(1).copied()),
        [] => return Err(ApiError::no_route()),
    };
    if is_events(plural) {
        return Ok(Target::Events { namespace });
    }
    let info = known(plural).ok_or_else(ApiError::no_route)?;
    let sub = match sub {
        None => None,
        Some("status") if discovery::has_status(info) => Some(Sub::Status),
        Some("scale") if discovery::has_scale(info) => Some(Sub::Scale),
        Some(_) => return Err(ApiError::no_route()),
    };
    if rest.len() > 5 {
        return Err(ApiError::no_route());
    }
    Ok(Target::Objects {
        info,
        namespace: namespace.filter(|_| info.namespaced),
        name: name.map(str::to_string),
        sub,
        version: version.to_string(),
    })
}

/// The query of a list or watch.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    /// `labelSelector`.
    pub labels: Option<Selector>,
    /// `fieldSelector`, as (path, wanted value, equal?).
    pub fields: Vec<(String, String, bool)>,
    /// `limit` (0: no limit).
    pub limit: usize,
    /// `continue`: the (namespace, name) the previous page ended at.
    pub after: Option<(String, String)>,
    /// `resourceVersion`.
    pub resource_version: Option<String>,
    /// `allowWatchBookmarks`.
    pub bookmarks: bool,
    /// `timeoutSeconds`.
    pub timeout_seconds: Option<u64>,
    /// `sendInitialEvents`.
    pub send_initial_events: bool,
}

impl ListOptions {
    /// Reads the options from the query string's parameters.
    pub fn from_query(query: &HashMap<String, String>) -> Result<ListOptions, ApiError> {
        let labels =
            match query.get("labelSelector").filter(|s| !s.is_empty()) {
                Some(text) => Some(Selector::parse(text).map_err(|e| {
                    ApiError::bad_request(format!("unable to parse requirement: {e}"))
                })?),
                None => None,
            };
        let mut fields = Vec::new();
        for term in query
            .get("fieldSelector")
            .map(String::as_str)
            .unwrap_or_default()
            .split(',')
            .filter(|t| !t.trim().is_empty())
        {
            let (path, value, equal) = if let Some((p, v)) = term.split_once("!=") {
                (p, v, false)
            } else if let Some((p, v)) = term.split_once("==") {
                (p, v, true)
            } else if let Some((p, v)) = term.split_once('=') {
                (p, v, true)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid field selector: '{term}': expected key=value, key==value or key!=value"
                )));
            };
            fields.push((path.trim().to_string(), value.trim().to_string(), equal));
        }
        let limit = match query.get("limit").filter(|s| !s.is_empty()) {
            Some(n) => n
                .parse()
                .map_err(|_| ApiError::bad_request(format!("invalid limit: {n}")))?,
            None => 0,
        };
        let after = match query.get("continue").filter(|s| !s.is_empty()) {
            Some(token) => Some(decode_continue(token)?),
            None => None,
        };
        let flag = |key: &str| query.get(key).is_some_and(|v| v == "true" || v == "1");
        Ok(ListOptions {
            labels,
            fields,
            limit,
            after,
            resource_version: query.get("resourceVersion").cloned(),
            bookmarks: flag("allowWatchBookmarks"),
            timeout_seconds: query.get("timeoutSeconds").and_then(|t| t.parse().ok()),
            send_initial_events: flag("sendInitialEvents"),
        })
    }

    /// Whether `object` passes the label and field selectors.
    pub fn matches(&self, object: &Value) -> bool {
        if let Some(sel) = &self.labels
            && !sel.matches(doc::labels(object))
        {
            return false;
        }
        self.fields.iter().all(|(path, wanted, equal)| {
            let segments: Vec<&str> = path.split('.').collect();
            let found = match doc::at(object, &segments) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            (found == *wanted) == *equal
        })
    }
}

/// The `continue` token that resumes a list after `(namespace, name)`.
pub fn encode_continue(namespace: &str, name: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{namespace}/{name}"))
}

fn decode_continue(token: &str) -> Result<(String, String), ApiError> {
    let bad = || {
        ApiError::bad_request(
            "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
        )
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let (ns, name) = text.split_once('/').ok_or_else(bad)?;
    Ok((ns.to_string(), name.to_string()))
}

/// `dryRun=All` in the query.
pub fn is_dry_run(query: &HashMap<String, String>) -> Result<bool, ApiError> {
    match query.get("dryRun").map(String::as_str) {
        None | Some("") => Ok(false),
        Some("All") => Ok(true),
        Some(other) => Err(ApiError::bad_request(format!(
            "Invalid dry run value: {other}: supported values: \"All\""
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_name_kinds_namespaces_and_subresources() {
        let t = parse_path(&Served::builtin(), "/apis/apps/v1/namespaces/prod/deployments/web/scale").expect("path");
        assert!(
            matches!(t, Target::Objects { info, namespace: Some(ns), name: Some(n), sub: Some(Sub::Scale), .. }
            if info.kind == "Deployment" && ns == "prod" && n == "web")
        );
        let t = parse_path(&Served::builtin(), "/api/v1/namespaces/prod").expect("namespace object");
        assert!(
            matches!(t, Target::Objects { info, name: Some(n), .. } if info.kind == "Namespace" && n == "prod")
        );
        let t = parse_path(&Served::builtin(), "/api/v1/namespaces/prod/status").expect("namespace status");
        assert!(
            matches!(t, Target::Objects { info, sub: Some(Sub::Status), .. } if info.kind == "Namespace")
        );
        let t = parse_path(&Served::builtin(), "/api/v1/pods").expect("all pods");
        assert!(matches!(
            t,
            Target::Objects {
                namespace: None,
                name: None,
                ..
            }
        ));
        assert!(matches!(
            parse_path(&Served::builtin(), "/api/v1/namespaces/a/events"),
            Ok(Target::Events { .. })
        ));
        assert_eq!(
            parse_path(&Served::builtin(), "/apis/apps/v1/widgets").err().map(|e| e.code),
            Some(404)
        );
        assert_eq!(
            parse_path(&Served::builtin(), "/apis/apps/v2/deployments")
                .err()
                .map(|e| e.code),
            Some(404)
        );
    }

    #[test]
    fn selectors_and_continue_tokens() {
        let q: HashMap<String, String> = [
            ("labelSelector".to_string(), "app=web".to_string()),
            (
                "fieldSelector".to_string(),
                "status.phase!=Failed,spec.nodeName=n1".to_string(),
            ),
        ]
        .into();
        let opts = ListOptions::from_query(&q).expect("options");
        let pod = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"nodeName": "n1"},
            "status": {"phase": "Running"}});
        assert!(opts.matches(&pod));
        let other = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"nodeName": "n2"}});
        assert!(!opts.matches(&other));
        let token = encode_continue("ns", "b");
        assert_eq!(
            decode_continue(&token).expect("token"),
            ("ns".into(), "b".into())
        );
        assert_eq!(decode_continue("%%").err().map(|e| e.code), Some(400));
        let bad: HashMap<String, String> =
            [("fieldSelector".to_string(), "nope".to_string())].into();
        assert!(ListOptions::from_query(&bad).is_err());
    }
}

//! The kinds the engine serves, with the names kubectl and API discovery use for them.
//!
//! Built-in kinds come from [`kinds_table`](super::kinds_table), generated from the Kubernetes
//! v1.31 OpenAPI document by `tools/generate_kinds.py`; custom kinds are registered from
//! CustomResourceDefinitions at run time ([`register`]) and live as long as the process: the
//! registry interns kinds (objects are keyed by them) and only grows. What an engine serves
//! now (discovery, API routes, resource words) is [`Served`](super::served::Served), built
//! from the CRDs in its store with this module's ordering and word rules.
//!
//! Invariant: an object of a kind not known here is refused at admission, and so is one whose
//! `apiVersion` names a group/version the kind is not served in.

use std::sync::RwLock;

/// The rule an object's `metadata.name` must follow, by kind (upstream `ValidateObjectMeta`'s
/// name function).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// `NameIsDNSSubdomain`: lowercase RFC 1123 subdomain, at most 253 characters.
    Subdomain,
    /// `NameIsDNSLabel` (namespaces): lowercase RFC 1123 label, at most 63 characters.
    Label,
    /// `NameIsDNS1035Label` (services): a label that starts with a letter.
    Dns1035Label,
    /// `ValidatePathSegmentName` (RBAC): anything but `.`, `..` and names with `/` or `%`.
    PathSegment,
}

/// One kind the engine serves: what API discovery (`/apis/GROUP/VERSION`) says of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KindInfo {
    /// `Deployment`.
    pub kind: &'static str,
    /// What the store keys its objects by: the kind for built-in kinds, `Kind.group` for
    /// custom ones (two CRDs may define one kind name in different groups).
    pub key: &'static str,
    /// API group (`apps`; empty for core).
    pub group: &'static str,
    /// The preferred (and stored) version: objects are returned in it.
    pub version: &'static str,
    /// Every version the kind is served in, preferred first (`["v2", "v1"]` for HPAs).
    pub versions: &'static [&'static str],
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// Plural resource name (`deployments`).
    pub plural: &'static str,
    /// Singular resource name (`deployment`).
    pub singular: &'static str,
    /// kubectl short names (`deploy`).
    pub short: &'static [&'static str],
    /// Categories (`all`, `api-extensions`).
    pub categories: &'static [&'static str],
    /// The verbs the resource supports, sorted (`create`, `delete`, …, `watch`).
    pub verbs: &'static [&'static str],
    /// Subresources (`scale`, `status`).
    pub subresources: &'static [&'static str],
    /// The name rule of its objects.
    pub name_rule: NameRule,
}

impl KindInfo {
    /// `apps/v1` or `v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// How the API server names the resource in messages: `Deployment.apps`, `Service`.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.kind.to_string()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }

    /// kubectl's `deployment.apps/web` prefix.
    pub fn resource_prefix(&self) -> String {
        if self.group.is_empty() {
            self.kind.to_lowercase()
        } else {
            format!("{}.{}", self.kind.to_lowercase(), self.group)
        }
    }
}

/// Every built-in kind (Kubernetes v1.31, the versions a default API server serves).
pub static KINDS: &[KindInfo] = super::kinds_table::BUILTIN;

/// The verbs of an ordinary resource (a custom resource's, and what the API implements).
pub const STANDARD_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// Custom kinds registered from CustomResourceDefinitions, leaked once each: a kind's
/// identity (`&'static`) keys the store, and a process sees few distinct CRDs.
static CUSTOM: RwLock<Vec<&'static KindInfo>> = RwLock::new(Vec::new());

fn custom() -> Vec<&'static KindInfo> {
    CUSTOM.read().map(|c| c.clone()).unwrap_or_default()
}

/// Registers a custom kind (from an established CRD), or returns the one registered with the
/// same facts already. A CRD that changes (a new version) registers a new entry that takes
/// precedence over the old.
pub fn register(info: KindInfo) -> &'static KindInfo {
    let Ok(mut list) = CUSTOM.write() else {
        return Box::leak(Box::new(info));
    };
    if let Some(at) = list.iter().position(|k| **k == info) {
        // The newest registration of a kind is the one lookups find first.
        let found = list.remove(at);
        list.insert(0, found);
        return found;
    }
    let leaked: &'static KindInfo = Box::leak(Box::new(info));
    list.insert(0, leaked);
    leaked
}

/// Interns a string for a registered kind's fields.
pub fn intern(text: &str) -> &'static str {
    static STRINGS: RwLock<Vec<&'static str>> = RwLock::new(Vec::new());
    if let Ok(list) = STRINGS.read()
        && let Some(found) = list.iter().find(|s| **s == text)
    {
        return found;
    }
    let leaked: &'static str = Box::leak(text.to_string().into_boxed_str());
    if let Ok(mut list) = STRINGS.write() {
        list.push(leaked);
    }
    leaked
}

/// Interns a list of strings.
pub fn intern_list(items: &[String]) -> &'static [&'static str] {
    let list: Vec<&'static str> = items.iter().map(|s| intern(s)).collect();
    Box::leak(list.into_boxed_slice())
}

/// Every kind known now, in the order discovery lists their groups and kubectl prefers them:
/// the built-in ones (table order), then the custom ones (the newest registration of each).
///
/// The API server registers each served version of a CRD group as an APIService of group
/// priority 1000, below every built-in group, and the aggregator lists APIServices by
/// priority, then by name (`v1.a.example.com`): custom groups come in the order of their
/// smallest `version.group` name. kubectl's RESTMapper prefers the first group in that order
/// when a word names a resource in several groups.
pub fn all() -> Vec<&'static KindInfo> {
    let mut current: Vec<&'static KindInfo> = Vec::new();
    for info in custom() {
        if !current.iter().any(|k| k.key == info.key) {
            current.push(info);
        }
    }
    KINDS.iter().chain(discovery_order(current)).collect()
}

/// Custom kinds (one entry per kind) in the order discovery lists their groups: by the
/// smallest `version.group` name of each group (see [`all`]); kinds of one group keep their
/// order in `custom`.
pub fn discovery_order(custom: Vec<&'static KindInfo>) -> Vec<&'static KindInfo> {
    let order = |group: &str| -> String {
        custom
            .iter()
            .filter(|k| k.group == group)
            .flat_map(|k| k.versions.iter().map(move |v| format!("{v}.{}", k.group)))
            .min()
            .unwrap_or_default()
    };
    let mut keyed: Vec<(String, &'static KindInfo)> =
        custom.iter().map(|k| (order(k.group), *k)).collect();
    // Stable: kinds of one group keep their order.
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    keyed.into_iter().map(|(_, k)| k).collect()
}

/// The kind of that group and kind name (`("apps", "Deployment")`).
pub fn by_group_kind(group: &str, kind: &str) -> Option<&'static KindInfo> {
    KINDS
        .iter()
        .find(|k| k.group == group && k.kind == kind)
        .or_else(|| {
            custom()
                .into_iter()
                .find(|k| k.group == group && k.kind == kind)
        })
}

/// Why an `apiVersion`/`kind` pair names nothing the engine serves.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no matches for kind \"{kind}\" in version \"{api_version}\"{}", if *.custom { ": install its CustomResourceDefinition first" } else { "" })]
pub struct NoMatch {
    /// The object's kind.
    pub kind: String,
    /// The object's apiVersion.
    pub api_version: String,
    /// The group is no built-in one: only a CRD can serve it.
    pub custom: bool,
}

/// Whether `info` is a built-in kind (not one registered from a CRD).
pub fn is_builtin(info: &KindInfo) -> bool {
    KINDS.iter().any(|k| std::ptr::eq(k, info))
}

/// Whether `status` is an ordinary field of `info`'s objects: a custom kind whose CRD has
/// no status subresource (in any version). Built-in kinds serve status as a subresource.
pub fn status_is_field(info: &KindInfo) -> bool {
    !is_builtin(info) && !info.subresources.contains(&"status")
}

/// The kind an object's `apiVersion` and `kind` name, when that group serves that kind in
/// that version, as API discovery decides for kubectl.
pub fn resolve(api_version: &str, kind: &str) -> Result<&'static KindInfo, NoMatch> {
    let (group, version) = match api_version.rsplit_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    };
    by_group_kind(group, kind)
        .filter(|k| k.versions.contains(&version))
        .ok_or_else(|| NoMatch {
            kind: kind.to_string(),
            api_version: api_version.to_string(),
            custom: !KINDS.iter().any(|k| k.group == group),
        })
}

/// The kind objects are stored under `key` ([`KindInfo::key`]).
pub fn by_key(key: &str) -> Option<&'static KindInfo> {
    KINDS
        .iter()
        .find(|k| k.key == key)
        .or_else(|| custom().into_iter().find(|k| k.key == key))
}

/// The kind an object's `kind` names, whatever its apiVersion.
/// (The core group's kind first: `Event` is core's `v1` Event.)
pub fn by_kind(kind: &str) -> Option<&'static KindInfo> {
    KINDS
        .iter()
        .find(|k| k.kind == kind)
        .or_else(|| custom().into_iter().find(|k| k.kind == kind))
}

/// The kind a kubectl-style resource word names: `pods`, `pod`, `po`, `Pod`,
/// `deployments.apps`, `deploy`.
/// A word with a group (`certificates.cert-manager.io`) matches only kinds of that group.
/// A word several groups serve names the first in [`all`]'s order, as kubectl picks.
pub fn lookup(word: &str) -> Option<&'static KindInfo> {
    resolve_word(word).map(|(info, _)| info)
}

/// [`lookup`], with kubectl's warning when the word is a short name that another resource
/// (of a group discovery lists later) has too: `short name "wd" could also match lower
/// priority resource widgets.b.example.com`. A full name (plural, singular, kind) that
/// several groups serve picks the first group without a warning, as kubectl does.
pub fn resolve_word(word: &str) -> Option<(&'static KindInfo, Option<String>)> {
    resolve_word_in(&all(), word)
}

/// [`resolve_word`] among `kinds` (in discovery order): what a server serving exactly those
/// kinds resolves the word to.
pub fn resolve_word_in(
    kinds: &[&'static KindInfo],
    word: &str,
) -> Option<(&'static KindInfo, Option<String>)> {
    let lower = word.to_lowercase();
    let (base, group) = match lower.split_once('.') {
        Some((b, g)) => (b, Some(g)),
        None => (lower.as_str(), None),
    };
    let kinds: Vec<&'static KindInfo> = kinds
        .iter()
        .copied()
        .filter(|k| group.is_none_or(|g| g == k.group))
        .collect();
    let by_name = kinds
        .iter()
        .find(|k| base == k.kind.to_lowercase() || base == k.singular || base == k.plural);
    if let Some(info) = by_name {
        return Some((info, None));
    }
    let mut short = kinds.iter().filter(|k| k.short.contains(&base));
    let info = short.next()?;
    let others: Vec<String> = short
        .filter(|k| !(k.group == info.group && k.plural == info.plural))
        .map(|k| match k.group {
            "" => k.plural.to_string(),
            g => format!("{}.{g}", k.plural),
        })
        .collect();
    let warning = (!others.is_empty()).then(|| {
        others
            .iter()
            .map(|other| {
                format!("short name \"{base}\" could also match lower priority resource {other}")
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
    Some((info, warning))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_words_resolve() {
        for word in ["pods", "pod", "po", "Pod"] {
            assert_eq!(lookup(word).map(|k| k.kind), Some("Pod"));
        }
        assert_eq!(lookup("deploy").map(|k| k.kind), Some("Deployment"));
        assert_eq!(
            lookup("deployments.apps").map(|k| k.kind),
            Some("Deployment")
        );
        assert_eq!(
            lookup("hpa").map(|k| k.kind),
            Some("HorizontalPodAutoscaler")
        );
        assert!(lookup("widgets").is_none());
    }

    #[test]
    fn the_table_has_every_group_a_default_server_serves() {
        let groups: std::collections::BTreeSet<&str> = KINDS.iter().map(|k| k.group).collect();
        for group in [
            "",
            "admissionregistration.k8s.io",
            "apiextensions.k8s.io",
            "apiregistration.k8s.io",
            "apps",
            "autoscaling",
            "batch",
            "certificates.k8s.io",
            "coordination.k8s.io",
            "discovery.k8s.io",
            "events.k8s.io",
            "flowcontrol.apiserver.k8s.io",
            "networking.k8s.io",
            "node.k8s.io",
            "policy",
            "rbac.authorization.k8s.io",
            "scheduling.k8s.io",
            "storage.k8s.io",
        ] {
            assert!(groups.contains(group), "group {group:?} missing");
        }
        // Alpha groups are off by default in v1.31.
        assert!(!groups.contains("resource.k8s.io"));
        let hpa = lookup("hpa").unwrap_or_else(|| panic!("hpa"));
        assert_eq!(hpa.versions, &["v2", "v1"]);
        let pdb = lookup("pdb").unwrap_or_else(|| panic!("pdb"));
        assert_eq!((pdb.group, pdb.namespaced), ("policy", true));
        let crd = lookup("crd").unwrap_or_else(|| panic!("crd"));
        assert_eq!(
            (crd.plural, crd.namespaced),
            ("customresourcedefinitions", false)
        );
        assert_eq!(crd.categories, &["api-extensions"]);
        assert!(lookup("netpol").is_some_and(|k| k.kind == "NetworkPolicy"));
        assert!(lookup("pc").is_some_and(|k| !k.namespaced));
        assert_eq!(
            lookup("clusterroles").map(|k| k.name_rule),
            Some(NameRule::PathSegment)
        );
        assert_eq!(lookup("ns").map(|k| k.name_rule), Some(NameRule::Label));
    }

    #[test]
    fn only_served_versions_resolve() {
        assert!(resolve("v1", "Secret").is_ok());
        assert_eq!(
            resolve("v2", "Secret")
                .map(|k| k.kind)
                .unwrap_err()
                .to_string(),
            "no matches for kind \"Secret\" in version \"v2\""
        );
        assert!(resolve("autoscaling/v1", "HorizontalPodAutoscaler").is_ok());
        assert!(resolve("autoscaling/v2", "HorizontalPodAutoscaler").is_ok());
        assert!(resolve("autoscaling/v2beta2", "HorizontalPodAutoscaler").is_err());
        assert!(resolve("extensions/v1beta1", "Deployment").is_err());
        assert!(resolve("apps/v1", "Secret").is_err());
        assert!(resolve("events.k8s.io/v1", "Event").is_ok_and(|k| k.group == "events.k8s.io"));
        assert_eq!(
            resolve("cert-manager.io/v1", "Certificate")
                .map(|k| k.kind)
                .unwrap_err()
                .to_string(),
            "no matches for kind \"Certificate\" in version \"cert-manager.io/v1\": install its CustomResourceDefinition first"
        );
    }
}

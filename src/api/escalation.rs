//! RBAC's escalation prevention, as kube-apiserver's policy-based storage does it
//! (`pkg/registry/rbac/*/policybased`, `pkg/registry/rbac/validation`): a Role or
//! ClusterRole may only be written with rules its writer already holds, unless they may
//! `escalate` it; a RoleBinding or ClusterRoleBinding may only be written to a role whose
//! rules its writer holds, unless they may `bind` it. Setting or dropping a ClusterRole's
//! `aggregationRule` needs everything (`*` on `*.*`).
//!
//! Invariants: `system:masters` is never checked; an update that only changes
//! `ownerReferences` or `finalizers` is not checked (the garbage collector must be able to
//! finish it); the check runs on the object as it would be stored, before anything is.

use std::sync::Arc;

use serde_json::Value;

use super::auth::User;
use super::rbac::{
    self, Attributes, GROUP, Policy, RefError, ResourceAttributes, Rule, name_of, rules_of,
};
use super::status::ApiError;
use crate::engine::Engine;
use crate::engine::kinds::KindInfo;

/// Who writes, and where: checks each write of an RBAC object on the engine thread.
#[derive(Debug, Clone)]
pub struct Guard {
    user: Arc<User>,
    /// The request's namespace (empty for cluster scope).
    namespace: String,
    /// The name in the URL (empty on create).
    name: String,
}

impl Guard {
    /// The guard of a request by `user`; `None` when nothing is checked (`system:masters`).
    pub fn new(user: Arc<User>, namespace: &str, name: &str) -> Option<Guard> {
        (!user.is_master()).then(|| Guard {
            user,
            namespace: namespace.to_string(),
            name: name.to_string(),
        })
    }

    /// Whether writing `new` (over `old`, for an update) of kind `info` is allowed.
    pub fn check(
        &self,
        engine: &mut Engine,
        info: &KindInfo,
        old: Option<&Value>,
        new: &Value,
    ) -> Result<(), ApiError> {
        if info.group != GROUP {
            return Ok(());
        }
        let policy = Policy::load(engine, &self.namespace)?;
        match info.kind {
            "Role" | "ClusterRole" => self.check_role(&policy, info, old, new),
            "RoleBinding" | "ClusterRoleBinding" => self.check_binding(&policy, info, old, new),
            _ => Ok(()),
        }
    }

    fn allowed(
        &self,
        policy: &Policy,
        verb: &str,
        resource: &str,
        group: &str,
        name: &str,
    ) -> bool {
        let attributes = Attributes {
            verb: verb.into(),
            resource: Some(ResourceAttributes {
                group: group.into(),
                version: "*".into(),
                resource: resource.into(),
                subresource: String::new(),
                namespace: self.namespace.clone(),
                name: name.into(),
            }),
            path: String::new(),
        };
        policy.authorize(&self.user, &attributes).allowed
    }

    fn check_role(
        &self,
        policy: &Policy,
        info: &KindInfo,
        old: Option<&Value>,
        new: &Value,
    ) -> Result<(), ApiError> {
        if self.allowed(policy, "escalate", info.plural, GROUP, &self.name) {
            return Ok(());
        }
        if old.is_some_and(|old| only_gc_fields_differ(old, new)) {
            return Ok(());
        }
        let name = name_of(new);
        let forbidden = |message: &str| rbac::new_forbidden(GROUP, info.plural, name, message);
        let rules = rules_of(new);
        confirm_no_escalation(policy, &self.user, &self.namespace, &rules)
            .map_err(|m| forbidden(&m))?;
        let aggregates = |role: &Value| {
            role.pointer("/aggregationRule/clusterRoleSelectors")
                .and_then(Value::as_array)
                .is_some_and(|s| !s.is_empty())
        };
        if info.kind == "ClusterRole"
            && (aggregates(new) || old.is_some_and(aggregates))
            && confirm_no_escalation(policy, &self.user, &self.namespace, &full_authority())
                .is_err()
        {
            return Err(forbidden(
                "must have cluster-admin privileges to use the aggregationRule",
            ));
        }
        Ok(())
    }

    fn check_binding(
        &self,
        policy: &Policy,
        info: &KindInfo,
        old: Option<&Value>,
        new: &Value,
    ) -> Result<(), ApiError> {
        if old.is_some_and(|old| only_gc_fields_differ(old, new)) {
            return Ok(());
        }
        let text = |pointer: &str| {
            new.pointer(pointer)
                .and_then(Value::as_str)
                .unwrap_or_default()
        };
        let role_resource = match text("/roleRef/kind") {
            "Role" => Some("roles"),
            "ClusterRole" => Some("clusterroles"),
            _ => None,
        };
        if let Some(resource) = role_resource
            && self.allowed(
                policy,
                "bind",
                resource,
                text("/roleRef/apiGroup"),
                text("/roleRef/name"),
            )
        {
            return Ok(());
        }
        let name = name_of(new);
        let forbidden = |message: &str| rbac::new_forbidden(GROUP, info.plural, name, message);
        let rules = policy
            .role_ref_rules(new, &self.namespace)
            .map_err(|e| forbidden(&e.registry_words()))?;
        confirm_no_escalation(policy, &self.user, &self.namespace, &rules)
            .map_err(|m| forbidden(&m))
    }
}

/// `*` on every resource of every group and on every path.
fn full_authority() -> Vec<Rule> {
    let all = || vec!["*".to_string()];
    vec![
        Rule {
            verbs: all(),
            api_groups: all(),
            resources: all(),
            ..Rule::default()
        },
        Rule {
            verbs: all(),
            non_resource_urls: all(),
            ..Rule::default()
        },
    ]
}

/// Whether `old` and `new` differ only in what the garbage collector writes
/// (`ownerReferences`, `finalizers`) or the server keeps (`resourceVersion`,
/// `managedFields`).
fn only_gc_fields_differ(old: &Value, new: &Value) -> bool {
    let strip = |object: &Value| {
        let mut object = object.clone();
        if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            for field in [
                "ownerReferences",
                "finalizers",
                "resourceVersion",
                "managedFields",
            ] {
                meta.remove(field);
            }
        }
        super::objects::drop_nulls(&mut object);
        object
    };
    strip(old) == strip(new)
}

/// Upstream's `ConfirmNoEscalation`: every rule in `rules` must be covered by the rules
/// `user` holds in `namespace`; the error lists what is missing, compacted and sorted.
pub fn confirm_no_escalation(
    policy: &Policy,
    user: &User,
    namespace: &str,
    rules: &[Rule],
) -> Result<(), String> {
    let (owner, errors) = policy.rules_for(user, namespace);
    let missing = uncovered(&owner, rules);
    if missing.is_empty() {
        return Ok(());
    }
    let mut described: Vec<String> = compact(missing).iter().map(compact_string).collect();
    described.sort();
    described.dedup();
    let mut message = format!(
        "user {} (groups={}) is attempting to grant RBAC permissions not currently held:\n{}",
        go_quote(&user.name),
        go_quote_list(&user.groups),
        described.join("\n")
    );
    if !errors.is_empty() {
        let mut words: Vec<String> = errors.iter().map(RefError::registry_words).collect();
        words.dedup();
        let aggregate = match words.as_slice() {
            [one] => one.clone(),
            many => format!("[{}]", many.join(", ")),
        };
        message.push_str(&format!("; resolution errors: [{aggregate}]"));
    }
    Err(message)
}

/// The parts of `servant` no rule of `owner` covers (`validation.Covers`): each servant rule
/// broken down to one verb, group, resource and name (or one verb and path).
fn uncovered(owner: &[Rule], servant: &[Rule]) -> Vec<Rule> {
    servant
        .iter()
        .flat_map(breakdown)
        .filter(|sub| !owner.iter().any(|o| covers(o, sub)))
        .collect()
}

fn one(value: &str) -> Vec<String> {
    vec![value.to_string()]
}

fn breakdown(rule: &Rule) -> Vec<Rule> {
    let mut out = Vec::new();
    for group in &rule.api_groups {
        for resource in &rule.resources {
            for verb in &rule.verbs {
                let base = Rule {
                    verbs: one(verb),
                    api_groups: one(group),
                    resources: one(resource),
                    ..Rule::default()
                };
                if rule.resource_names.is_empty() {
                    out.push(base);
                } else {
                    out.extend(rule.resource_names.iter().map(|name| Rule {
                        resource_names: one(name),
                        ..base.clone()
                    }));
                }
            }
        }
    }
    for url in &rule.non_resource_urls {
        for verb in &rule.verbs {
            out.push(Rule {
                verbs: one(verb),
                non_resource_urls: one(url),
                ..Rule::default()
            });
        }
    }
    out
}

fn has_all(set: &[String], wanted: &[String]) -> bool {
    wanted.iter().all(|w| set.contains(w))
}

fn star(set: &[String]) -> bool {
    set.iter().any(|s| s == "*")
}

/// Whether `owner` covers `sub` (at most one verb, resource and name): upstream's
/// `ruleCovers`.
fn covers(owner: &Rule, sub: &Rule) -> bool {
    let verbs = star(&owner.verbs) || has_all(&owner.verbs, &sub.verbs);
    let groups = star(&owner.api_groups) || has_all(&owner.api_groups, &sub.api_groups);
    let resources = star(&owner.resources)
        || has_all(&owner.resources, &sub.resources)
        || sub.resources.iter().all(|path| {
            owner.resources.contains(path)
                || path
                    .split_once('/')
                    .is_some_and(|(_, sub)| owner.resources.contains(&format!("*/{sub}")))
        });
    let urls = sub.non_resource_urls.iter().all(|path| {
        owner.non_resource_urls.iter().any(|o| {
            o == path
                || o.strip_suffix('*')
                    .is_some_and(|prefix| path.starts_with(prefix.trim_end_matches('*')))
        })
    });
    let names = owner.resource_names.is_empty()
        || (!sub.resource_names.is_empty() && has_all(&owner.resource_names, &sub.resource_names));
    verbs && groups && resources && names && urls
}

/// Upstream's `CompactRules`: rules of one group and one resource, and nothing else, merged
/// by verb.
fn compact(rules: Vec<Rule>) -> Vec<Rule> {
    let mut out: Vec<Rule> = Vec::new();
    let mut simple: Vec<Rule> = Vec::new();
    for rule in rules {
        let is_simple = rule.resource_names.is_empty()
            && rule.non_resource_urls.is_empty()
            && rule.api_groups.len() == 1
            && rule.resources.len() == 1;
        if !is_simple {
            out.push(rule);
            continue;
        }
        match simple
            .iter_mut()
            .find(|s| s.api_groups == rule.api_groups && s.resources == rule.resources)
        {
            Some(existing) => existing.verbs.extend(rule.verbs),
            None => simple.push(rule),
        }
    }
    out.extend(simple);
    out
}

/// Upstream's `CompactString`: `{APIGroups:["apps"], Resources:["deployments"], Verbs:["get"]}`.
fn compact_string(rule: &Rule) -> String {
    let mut parts = Vec::new();
    for (label, list) in [
        ("APIGroups", &rule.api_groups),
        ("Resources", &rule.resources),
        ("NonResourceURLs", &rule.non_resource_urls),
        ("ResourceNames", &rule.resource_names),
        ("Verbs", &rule.verbs),
    ] {
        if !list.is_empty() {
            parts.push(format!("{label}:{}", go_quote_list(list)));
        }
    }
    format!("{{{}}}", parts.join(", "))
}

/// Go's `%q` of a string.
fn go_quote(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `%q` of a `[]string`: `["a" "b"]`.
fn go_quote_list(list: &[String]) -> String {
    let quoted: Vec<String> = list.iter().map(|s| go_quote(s)).collect();
    format!("[{}]", quoted.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(v: Value) -> Rule {
        Rule::from_json(&v)
    }

    #[test]
    fn covering_follows_upstream_rule_by_rule() {
        let owner = [
            rule(
                json!({"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods", "*/status"]}),
            ),
            rule(
                json!({"verbs": ["get"], "apiGroups": ["apps"], "resources": ["deployments"],
                "resourceNames": ["web"]}),
            ),
            rule(json!({"verbs": ["get"], "nonResourceURLs": ["/healthz", "/apis/*"]})),
        ];
        let covered = |v: Value| uncovered(&owner, &[rule(v)]).is_empty();
        assert!(covered(
            json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]})
        ));
        assert!(covered(
            json!({"verbs": ["list"], "apiGroups": [""], "resources": ["pods/status"]})
        ));
        assert!(!covered(
            json!({"verbs": ["watch"], "apiGroups": [""], "resources": ["pods"]})
        ));
        assert!(covered(json!({"verbs": ["get"], "apiGroups": ["apps"],
            "resources": ["deployments"], "resourceNames": ["web"]})));
        assert!(
            !covered(
                json!({"verbs": ["get"], "apiGroups": ["apps"], "resources": ["deployments"]})
            ),
            "a named rule does not cover every name"
        );
        assert!(covered(
            json!({"verbs": ["get"], "nonResourceURLs": ["/apis/apps"]})
        ));
        assert!(!covered(
            json!({"verbs": ["get"], "nonResourceURLs": ["/metrics"]})
        ));
        let missing = uncovered(
            &owner,
            &[rule(
                json!({"verbs": ["get", "create", "delete"], "apiGroups": ["", "apps"],
                "resources": ["pods"]}),
            )],
        );
        let described: Vec<String> = compact(missing).iter().map(compact_string).collect();
        assert_eq!(
            described,
            vec![
                r#"{APIGroups:[""], Resources:["pods"], Verbs:["create" "delete"]}"#,
                r#"{APIGroups:["apps"], Resources:["pods"], Verbs:["get" "create" "delete"]}"#,
            ]
        );
        assert_eq!(
            compact_string(&rule(json!({"verbs": ["get"], "nonResourceURLs": ["/x"]}))),
            r#"{NonResourceURLs:["/x"], Verbs:["get"]}"#
        );
        assert_eq!(go_quote("a\"b\\"), r#""a\"b\\""#);
    }

    fn jane() -> Arc<User> {
        Arc::new(User {
            name: "jane".into(),
            uid: String::new(),
            groups: vec!["dev".into(), "system:authenticated".into()],
            extra: Default::default(),
        })
    }

    /// jane may read pods in `shop` and bind the ClusterRole `binder-ok`.
    fn policy() -> Policy {
        Policy {
            cluster_roles: vec![
                json!({"metadata": {"name": "pod-reader"}, "rules": [
                    {"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}]}),
                json!({"metadata": {"name": "secret-reader"}, "rules": [
                    {"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"]}]}),
                json!({"metadata": {"name": "deployer"}, "rules": [
                    {"verbs": ["create"], "apiGroups": ["apps"], "resources": ["deployments"]}]}),
                json!({"metadata": {"name": "binder"}, "rules": [
                    {"verbs": ["bind"], "apiGroups": [GROUP], "resources": ["clusterroles"],
                     "resourceNames": ["secret-reader"]}]}),
            ],
            role_bindings: vec![
                json!({"metadata": {"name": "jane-pods", "namespace": "shop"},
                    "roleRef": {"kind": "ClusterRole", "name": "pod-reader"},
                    "subjects": [{"kind": "User", "name": "jane"}]}),
                json!({"metadata": {"name": "jane-binds", "namespace": "shop"},
                    "roleRef": {"kind": "ClusterRole", "name": "binder"},
                    "subjects": [{"kind": "User", "name": "jane"}]}),
            ],
            ..Policy::default()
        }
    }

    fn guard() -> Guard {
        Guard::new(jane(), "shop", "").expect("jane is checked")
    }

    fn kind(name: &str) -> &'static KindInfo {
        crate::engine::kinds::by_key(name).expect("kind")
    }

    #[test]
    fn roles_may_grant_only_what_their_writer_holds() {
        let g = guard();
        let p = policy();
        let role =
            |rules: Value| json!({"metadata": {"name": "r", "namespace": "shop"}, "rules": rules});
        let held = role(json!([{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]));
        assert!(g.check_role(&p, kind("Role"), None, &held).is_ok());
        let more = role(json!([{"verbs": ["get", "delete"], "apiGroups": [""],
            "resources": ["pods", "secrets"]}]));
        let err = g
            .check_role(&p, kind("Role"), None, &more)
            .expect_err("refused");
        assert_eq!((err.code, err.reason), (403, "Forbidden"));
        assert_eq!(
            err.message,
            "roles.rbac.authorization.k8s.io \"r\" is forbidden: user \"jane\" (groups=[\"dev\" \"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"\"], Resources:[\"pods\"], Verbs:[\"delete\"]}\n{APIGroups:[\"\"], Resources:[\"secrets\"], Verbs:[\"get\" \"delete\"]}"
        );
        // Only owner references or finalizers changed: not checked.
        let mut owned = more.clone();
        owned["metadata"]["finalizers"] = json!(["x"]);
        assert!(g.check_role(&p, kind("Role"), Some(&more), &owned).is_ok());
        // `escalate` on roles lifts the check.
        let mut escalator = policy();
        escalator
            .role_bindings
            .push(json!({"metadata": {"name": "esc", "namespace": "shop"},
            "roleRef": {"kind": "ClusterRole", "name": "escalate"},
            "subjects": [{"kind": "Group", "name": "dev"}]}));
        escalator
            .cluster_roles
            .push(json!({"metadata": {"name": "escalate"}, "rules": [
            {"verbs": ["escalate"], "apiGroups": [GROUP], "resources": ["roles"]}]}));
        assert!(g.check_role(&escalator, kind("Role"), None, &more).is_ok());
        // An aggregation rule needs everything, whatever the rules.
        let mut aggregating = json!({"metadata": {"name": "agg"}, "rules": [],
            "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"a": "b"}}]}});
        let cluster = Guard::new(jane(), "", "").expect("checked");
        let err = cluster
            .check_role(&p, kind("ClusterRole"), None, &aggregating)
            .expect_err("refused");
        assert_eq!(
            err.message,
            "clusterroles.rbac.authorization.k8s.io \"agg\" is forbidden: must have cluster-admin privileges to use the aggregationRule"
        );
        aggregating["metadata"]["labels"] = json!({"x": "y"});
        let before = aggregating.clone();
        aggregating
            .as_object_mut()
            .map(|m| m.remove("aggregationRule"));
        assert!(
            cluster
                .check_role(&p, kind("ClusterRole"), Some(&before), &aggregating)
                .is_err(),
            "dropping an aggregation rule is checked too"
        );
    }

    #[test]
    fn bindings_need_the_roles_rules_or_bind() {
        let g = guard();
        let p = policy();
        let binding = |kind: &str, role: &str| {
            json!({"metadata": {"name": "b", "namespace": "shop"},
                "roleRef": {"apiGroup": GROUP, "kind": kind, "name": role},
                "subjects": [{"kind": "User", "name": "bob"}]})
        };
        let rb = kind("RoleBinding");
        assert!(
            g.check_binding(&p, rb, None, &binding("ClusterRole", "pod-reader"))
                .is_ok()
        );
        assert!(
            g.check_binding(&p, rb, None, &binding("ClusterRole", "secret-reader"))
                .is_ok(),
            "bind on secret-reader"
        );
        assert!(
            g.check_binding(&p, rb, None, &binding("ClusterRole", "binder"))
                .is_ok(),
            "jane holds every rule of binder"
        );
        let err = g
            .check_binding(&p, rb, None, &binding("ClusterRole", "deployer"))
            .expect_err("refused");
        assert_eq!(
            err.message,
            "rolebindings.rbac.authorization.k8s.io \"b\" is forbidden: user \"jane\" (groups=[\"dev\" \"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"apps\"], Resources:[\"deployments\"], Verbs:[\"create\"]}"
        );
        let missing = g
            .check_binding(&p, rb, None, &binding("Role", "absent"))
            .expect_err("refused");
        assert_eq!(
            missing.message,
            "rolebindings.rbac.authorization.k8s.io \"b\" is forbidden: roles.rbac.authorization.k8s.io \"absent\" not found"
        );
        // Masters are never checked.
        let admin = Arc::new(User {
            groups: vec![super::super::auth::MASTERS.into()],
            ..(*jane()).clone()
        });
        assert!(Guard::new(admin, "shop", "").is_none());
    }
}

//! Roles, ClusterRoles and their bindings.

use serde_json::Value;

use super::{Text, annotations_multiline, labels_multiline, scalar};
use crate::engine::doc;

/// One policy rule, broken down as kubectl's `rbac.BreakdownRule` does.
#[derive(Debug, Clone, PartialEq)]
struct Rule {
    verbs: Vec<String>,
    groups: Vec<String>,
    resources: Vec<String>,
    names: Vec<String>,
    urls: Vec<String>,
}

impl Rule {
    /// The text Go's generated `PolicyRule.String()` gives, which kubectl sorts rules by.
    fn sort_key(&self) -> String {
        let list = |v: &[String]| format!("[{}]", v.join(" "));
        format!(
            "&PolicyRule{{Verbs:{},APIGroups:{},Resources:{},ResourceNames:{},NonResourceURLs:{},}}",
            list(&self.verbs),
            list(&self.groups),
            list(&self.resources),
            list(&self.names),
            list(&self.urls)
        )
    }
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|s| scalar(Some(s)))
        .collect()
}

/// Every (group, resource, name) and every URL as a rule of its own, verbs sorted and unique.
fn breakdown(rule: &Value) -> Vec<Rule> {
    let mut verbs = strings(rule.get("verbs"));
    verbs.sort();
    verbs.dedup();
    let names = strings(rule.get("resourceNames"));
    let mut out = Vec::new();
    for group in strings(rule.get("apiGroups")) {
        for resource in strings(rule.get("resources")) {
            let one = |names: Vec<String>| Rule {
                verbs: verbs.clone(),
                groups: vec![group.clone()],
                resources: vec![resource.clone()],
                names,
                urls: Vec::new(),
            };
            if names.is_empty() {
                out.push(one(Vec::new()));
            } else {
                out.extend(names.iter().map(|n| one(vec![n.clone()])));
            }
        }
    }
    for url in strings(rule.get("nonResourceURLs")) {
        out.push(Rule {
            verbs: verbs.clone(),
            groups: Vec::new(),
            resources: Vec::new(),
            names: Vec::new(),
            urls: vec![url],
        });
    }
    out
}

/// `rbac.CompactRules`: rules on the same group, resource and name merge their verbs.
fn compact(rules: Vec<Rule>) -> Vec<Rule> {
    let mut out: Vec<Rule> = Vec::new();
    for rule in rules {
        let simple = rule.urls.is_empty() && rule.groups.len() == 1 && rule.resources.len() == 1;
        let existing = out.iter_mut().find(|r| {
            simple
                && r.urls.is_empty()
                && r.groups == rule.groups
                && r.resources == rule.resources
                && r.names == rule.names
        });
        match existing {
            Some(r) => {
                for verb in rule.verbs {
                    if !r.verbs.contains(&verb) {
                        r.verbs.push(verb);
                    }
                }
            }
            None => out.push(rule),
        }
    }
    out
}

/// `CombineResourceGroup`: `deployments.apps`, `pods/log`.
fn resource_group(rule: &Rule) -> String {
    let Some(first) = rule.resources.first() else {
        return String::new();
    };
    let (resource, sub) = match first.split_once('/') {
        Some((r, s)) => (r, Some(s)),
        None => (first.as_str(), None),
    };
    let mut text = resource.to_string();
    if let Some(group) = rule.groups.first().filter(|g| !g.is_empty()) {
        text.push('.');
        text.push_str(group);
    }
    if let Some(sub) = sub {
        text.push('/');
        text.push_str(sub);
    }
    text
}

/// `RoleDescriber` and `ClusterRoleDescriber`.
pub(super) fn role(o: &Value, t: &mut Text) {
    t.field(0, "Name", doc::name(o));
    labels_multiline(t, "Labels", doc::labels(o));
    annotations_multiline(t, "Annotations", doc::at(o, &["metadata", "annotations"]));
    let rules: Vec<Rule> = o
        .get("rules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .flat_map(breakdown)
        .collect();
    let mut rules = compact(rules);
    rules.sort_by_cached_key(Rule::sort_key);
    t.w(0, "PolicyRule:\n");
    t.w(1, "Resources\tNon-Resource URLs\tResource Names\tVerbs\n");
    t.w(1, "---------\t-----------------\t--------------\t-----\n");
    for r in &rules {
        t.w(
            1,
            &format!(
                "{}\t[{}]\t[{}]\t[{}]\n",
                resource_group(r),
                r.urls.join(" "),
                r.names.join(" "),
                r.verbs.join(" ")
            ),
        );
    }
}

/// `RoleBindingDescriber` and `ClusterRoleBindingDescriber`.
pub(super) fn binding(o: &Value, t: &mut Text) {
    t.field(0, "Name", doc::name(o));
    labels_multiline(t, "Labels", doc::labels(o));
    annotations_multiline(t, "Annotations", doc::at(o, &["metadata", "annotations"]));
    t.w(0, "Role:\n");
    t.field(1, "Kind", doc::str_at(o, &["roleRef", "kind"]));
    t.field(1, "Name", doc::str_at(o, &["roleRef", "name"]));
    t.w(0, "Subjects:\n");
    t.w(1, "Kind\tName\tNamespace\n");
    t.w(1, "----\t----\t---------\n");
    for s in o
        .get("subjects")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        t.w(
            1,
            &format!(
                "{}\t{}\t{}\n",
                doc::str_at(s, &["kind"]),
                doc::str_at(s, &["name"]),
                doc::str_at(s, &["namespace"])
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rules_break_down_compact_and_sort() {
        let object = json!({"metadata": {"name": "r"}, "rules": [
            {"apiGroups": ["", "apps"], "resources": ["pods", "deployments"], "verbs": ["list", "get"]},
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["watch"]}]});
        let mut t = Text::default();
        role(&object, &mut t);
        assert_eq!(
            t.finish(),
            "Name:         r\nLabels:       <none>\nAnnotations:  <none>\nPolicyRule:\n  \
             Resources         Non-Resource URLs  Resource Names  Verbs\n  \
             ---------         -----------------  --------------  -----\n  \
             pods              []                 []              [get list watch]\n  \
             deployments       []                 []              [get list]\n  \
             deployments.apps  []                 []              [get list]\n  \
             pods.apps         []                 []              [get list]\n"
        );
    }
}

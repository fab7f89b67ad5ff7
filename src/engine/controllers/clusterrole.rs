//! The ClusterRole aggregation controller (upstream's `clusterrole-aggregation-controller`):
//! a ClusterRole with an `aggregationRule` gets, as its `rules`, the rules of every other
//! ClusterRole its selectors match, in name order, without duplicates. That is how `admin`,
//! `edit` and `view` grow when a CRD's ClusterRole carries
//! `rbac.authorization.k8s.io/aggregate-to-view: "true"`.
//!
//! Invariant: a role's aggregate is made of the `rules` of the matched roles, repeated until
//! stable (an aggregated role that matches another one is filled first), and a role whose
//! rules are already the aggregate is not written.

use serde_json::Value;

use super::{Change, Changes};
use crate::engine::clock::Millis;
use crate::engine::labels::Selector;
use crate::engine::store::State;

/// How many times aggregation is repeated in one pass: enough for roles aggregating roles
/// that aggregate (`admin` gathers `edit`, which gathers `view`), bounded for cycles.
const ROUNDS: usize = 8;

/// One pass over every ClusterRole with an aggregation rule. Aggregation is repeated here
/// until nothing changes, as upstream's controller converges by requeueing on its own
/// writes (the engine does not rerun a controller for its own writes).
pub fn sync(state: &State, _now: Millis, out: &mut Changes) {
    let stored: Vec<&Value> = state.kind("ClusterRole").values().map(|s| &s.doc).collect();
    if !stored.iter().any(|r| r.get("aggregationRule").is_some()) {
        return;
    }
    let roles = aggregate_all(&stored);
    for (role, before) in roles.into_iter().zip(stored) {
        let rules = role.get("rules").and_then(Value::as_array);
        if !same_rules(
            before.get("rules"),
            rules.map(Vec::as_slice).unwrap_or_default(),
        ) {
            out.push(Change::Update {
                kind: "ClusterRole",
                doc: role,
            });
        }
    }
}

/// `roles` with every aggregated role's `rules` filled, repeated until stable.
pub fn aggregate_all(stored: &[&Value]) -> Vec<Value> {
    let mut roles: Vec<Value> = stored.iter().map(|r| (*r).clone()).collect();
    for _ in 0..ROUNDS {
        let mut changed = false;
        let snapshot = roles.clone();
        let all: Vec<&Value> = snapshot.iter().collect();
        for role in roles.iter_mut() {
            if let Some(rules) = aggregate(role, &all)
                && !same_rules(role.get("rules"), &rules)
            {
                if let Some(map) = role.as_object_mut() {
                    map.insert("rules".into(), Value::Array(rules));
                }
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    roles
}

/// The rules `role`'s aggregation rule gathers from `roles` (sorted by name), or `None` when
/// it has no aggregation rule. A selector that cannot be read selects nothing; an empty one
/// selects every role, as `LabelSelectorAsSelector` makes it.
pub fn aggregate(role: &Value, roles: &[&Value]) -> Option<Vec<Value>> {
    let selectors = role
        .pointer("/aggregationRule/clusterRoleSelectors")?
        .as_array()?;
    let name = name_of(role);
    let mut rules: Vec<Value> = Vec::new();
    for selector in selectors {
        let Ok(selector) = Selector::from_label_selector(selector) else {
            continue;
        };
        let mut matched: Vec<&&Value> = roles
            .iter()
            .filter(|other| name_of(other) != name)
            .filter(|other| selector.matches(other.pointer("/metadata/labels")))
            .collect();
        matched.sort_by_key(|other| name_of(other));
        for other in matched {
            for rule in other
                .get("rules")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if !rules.iter().any(|r| same_rule(r, rule)) {
                    rules.push(rule.clone());
                }
            }
        }
    }
    Some(rules)
}

fn name_of(role: &Value) -> &str {
    role.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// A rule's lists; an absent or null list equals an empty one (semantic equality).
fn lists(rule: &Value) -> [Vec<&str>; 5] {
    [
        "verbs",
        "apiGroups",
        "resources",
        "resourceNames",
        "nonResourceURLs",
    ]
    .map(|key| {
        rule.get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect()
    })
}

fn same_rule(a: &Value, b: &Value) -> bool {
    lists(a) == lists(b)
}

fn same_rules(stored: Option<&Value>, wanted: &[Value]) -> bool {
    let stored: &[Value] = stored
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    stored.len() == wanted.len() && stored.iter().zip(wanted).all(|(a, b)| same_rule(a, b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn role(name: &str, labels: Value, rules: Value) -> Value {
        json!({"metadata": {"name": name, "labels": labels}, "rules": rules})
    }

    #[test]
    fn aggregation_gathers_matching_roles_rules_in_name_order_once() {
        let get = json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]});
        let list = json!({"verbs": ["list"], "apiGroups": [""], "resources": ["pods"]});
        let mut view = role("view", json!({}), Value::Null);
        view["aggregationRule"] =
            json!({"clusterRoleSelectors": [{"matchLabels": {"to-view": "true"}}]});
        let b = role(
            "b",
            json!({"to-view": "true"}),
            json!([list.clone(), get.clone()]),
        );
        let a = role("a", json!({"to-view": "true"}), json!([get.clone()]));
        let other = role("c", json!({}), json!([{"verbs": ["*"]}]));
        let roles = [&view, &b, &a, &other];
        let rules = aggregate(&view, &roles).expect("aggregated");
        assert_eq!(rules, vec![get.clone(), list.clone()]);
        assert!(aggregate(&a, &roles).is_none(), "no aggregation rule");
        // Semantic equality: an absent list equals an empty one.
        assert!(same_rules(
            Some(
                &json!([{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"],
                "resourceNames": []}])
            ),
            std::slice::from_ref(&get)
        ));
        // Chains converge in one pass: `top` gathers `view`, which gathers `a` and `b`.
        let mut top = role("top", json!({}), Value::Null);
        top["aggregationRule"] =
            json!({"clusterRoleSelectors": [{"matchLabels": {"to-top": "true"}}]});
        let mut view_in_top = view.clone();
        view_in_top["metadata"]["labels"] = json!({"to-top": "true"});
        let filled = aggregate_all(&[&top, &view_in_top, &b, &a]);
        assert_eq!(filled[0]["rules"], json!([get.clone(), list.clone()]));
        // An empty selector selects every other role.
        let mut all = role("all", json!({}), Value::Null);
        all["aggregationRule"] = json!({"clusterRoleSelectors": [{}]});
        let roles = [&all, &other];
        assert_eq!(aggregate(&all, &roles).map(|r| r.len()), Some(1));
    }
}

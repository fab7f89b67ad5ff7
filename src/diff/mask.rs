//! Secret masking: a Secret's values become runs of `+` before any text is made of them.
//!
//! Equal values get equal masks and different values different masks (of different length,
//! as Argo CD does), so a diff still shows which keys were added, removed or changed, but
//! nothing about the values — not even a hash, which short secrets would not survive.
//!
//! Invariant: after [`mask_pair`] / [`mask_one`] no byte of a Secret value is left.

use serde_json::Value;

use super::normalize::is_secret;

/// The shortest mask.
const MASK_BASE: usize = 8;

/// Masks the Secret values of a desired and a live object together, so the same value gets
/// the same mask on both sides. Objects that are not Secrets are left alone.
pub fn mask_pair(desired: Option<&mut Value>, live: Option<&mut Value>) {
    let secret =
        desired.as_deref().is_some_and(is_secret) || live.as_deref().is_some_and(is_secret);
    if !secret {
        return;
    }
    // Distinct values in order of first appearance, across both sides and both fields.
    let mut distinct: Vec<Value> = Vec::new();
    let sides: Vec<&mut Value> = [live, desired].into_iter().flatten().collect();
    for side in &sides {
        for field in ["data", "stringData"] {
            if let Some(Value::Object(map)) = side.get(field) {
                for value in map.values() {
                    if !distinct.contains(value) {
                        distinct.push(value.clone());
                    }
                }
            }
        }
    }
    for side in sides {
        mask_fields(side, &distinct);
    }
}

/// Masks one object on its own (for create/delete output and the plan file).
pub fn mask_one(object: &mut Value) {
    mask_pair(Some(object), None);
}

fn mask_fields(object: &mut Value, distinct: &[Value]) {
    for field in ["data", "stringData"] {
        if let Some(Value::Object(map)) = object.get_mut(field) {
            for value in map.values_mut() {
                let index = distinct
                    .iter()
                    .position(|v| v == value)
                    .unwrap_or(distinct.len());
                *value = Value::String("+".repeat(MASK_BASE + index));
            }
        }
    }
    // A Secret's plaintext may also sit in the last-applied annotation of objects written by
    // kubectl; that annotation is bookkeeping and is removed rather than masked.
    if let Some(Value::Object(annotations)) = object
        .get_mut("metadata")
        .and_then(|m| m.get_mut("annotations"))
    {
        annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn masks_show_which_keys_changed_but_no_value() {
        let mut live = json!({"apiVersion": "v1", "kind": "Secret",
            "data": {"user": "YWRtaW4=", "password": "b2xk", "gone": "eA=="}});
        let mut desired = json!({"apiVersion": "v1", "kind": "Secret",
            "data": {"user": "YWRtaW4=", "password": "bmV3", "added": "eQ=="}});
        mask_pair(Some(&mut desired), Some(&mut live));
        assert_eq!(live["data"]["user"], desired["data"]["user"]);
        assert_ne!(live["data"]["password"], desired["data"]["password"]);
        let text = format!("{live}{desired}");
        for plaintext in ["YWRtaW4=", "b2xk", "bmV3", "eA==", "eQ=="] {
            assert!(!text.contains(plaintext), "{plaintext} leaked in {text}");
        }
        assert!(desired["data"].get("added").is_some());
        assert!(live["data"].get("gone").is_some());
    }

    #[test]
    fn secrets_of_every_group_and_version_are_masked() {
        for api_version in ["v2", "example.com/v1", ""] {
            let mut secret = json!({"apiVersion": api_version, "kind": "Secret",
                "data": {"pin": "MTIzNA=="}, "stringData": {"token": "hunter2"}});
            mask_one(&mut secret);
            let text = secret.to_string();
            assert!(
                !text.contains("MTIzNA==") && !text.contains("hunter2"),
                "{text}"
            );
        }
    }

    #[test]
    fn non_secrets_are_untouched() {
        let mut config = json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "b"}});
        mask_one(&mut config);
        assert_eq!(config["data"]["a"], "b");
    }
}

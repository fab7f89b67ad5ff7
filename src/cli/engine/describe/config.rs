//! ConfigMaps, Secrets (sizes only, never values) and ServiceAccounts.

use serde_json::Value;

use super::{Ctx, Text, annotations_multiline, events, labels_multiline, name_and_namespace};
use crate::engine::doc;

fn labels_and_annotations(o: &Value, t: &mut Text) {
    labels_multiline(t, "Labels", doc::labels(o));
    annotations_multiline(t, "Annotations", doc::at(o, &["metadata", "annotations"]));
}

fn sorted_keys(map: Option<&Value>) -> Vec<(String, Value)> {
    let mut entries: Vec<(String, Value)> = map
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    entries
}

/// The number of bytes a base64 text decodes to (whitespace ignored, as the API server
/// ignores it).
fn decoded_len(text: &str) -> usize {
    let significant: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    let padding = significant.iter().rev().take_while(|b| **b == b'=').count();
    (significant.len() / 4 * 3
        + match significant.len() % 4 {
            2 => 1,
            3 => 2,
            _ => 0,
        })
    .saturating_sub(padding)
}

/// `ConfigMapDescriber`: every value printed in full under its key.
pub(super) fn config_map(ctx: &Ctx<'_>, o: &Value, t: &mut Text) {
    name_and_namespace(o, t);
    labels_and_annotations(o, t);
    t.w(0, "\nData\n====\n");
    for (key, value) in sorted_keys(o.get("data")) {
        t.w(0, &format!("{key}:\n----\n"));
        t.w(0, &format!("{}\n", value.as_str().unwrap_or_default()));
        t.w(0, "\n");
    }
    t.w(0, "\nBinaryData\n====\n");
    for (key, value) in sorted_keys(o.get("binaryData")) {
        t.w(
            0,
            &format!(
                "{key}: {} bytes\n",
                decoded_len(value.as_str().unwrap_or_default())
            ),
        );
    }
    t.w(0, "\n");
    events(ctx, "ConfigMap", o, t);
}

/// `describeSecret`: sizes only (kubectl shows no values and no events).
pub(super) fn secret(o: &Value, t: &mut Text) {
    name_and_namespace(o, t);
    labels_and_annotations(o, t);
    let kind = match doc::str_at(o, &["type"]) {
        "" => "Opaque",
        k => k,
    };
    t.w(0, &format!("\nType:\t{kind}\n"));
    t.w(0, "\nData\n====\n");
    // `stringData` is write-only in Kubernetes (merged into `data`); count it in case the
    // object still carries it.
    let mut sizes: Vec<(String, usize)> = sorted_keys(o.get("data"))
        .into_iter()
        .map(|(k, v)| (k, decoded_len(v.as_str().unwrap_or_default())))
        .collect();
    for (k, v) in sorted_keys(o.get("stringData")) {
        let len = v.as_str().map_or(0, str::len);
        match sizes.iter_mut().find(|(key, _)| *key == k) {
            Some(entry) => entry.1 = len,
            None => sizes.push((k, len)),
        }
    }
    sizes.sort();
    for (key, len) in sizes {
        t.w(0, &format!("{key}:\t{len} bytes\n"));
    }
}

/// `describeServiceAccount`.
pub(super) fn service_account(ctx: &Ctx<'_>, o: &Value, t: &mut Text) {
    name_and_namespace(o, t);
    labels_and_annotations(o, t);
    let pull: Vec<&str> = o
        .get("imagePullSecrets")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|s| doc::str_at(s, &["name"]))
        .collect();
    if pull.is_empty() {
        t.w(0, "Image pull secrets:\t<none>\n");
    } else {
        let mut header = "Image pull secrets:";
        for name in pull {
            t.w(0, &format!("{header}\t{name}\n"));
            header = "                   ";
        }
    }
    events(ctx, "ServiceAccount", o, t);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secret_shows_sizes_never_values() {
        let s = json!({"metadata": {"name": "db", "namespace": "default"},
            "type": "Opaque", "data": {"password": "czNjcjN0", "user": "YWRtaW4="}});
        let mut t = Text::default();
        secret(&s, &mut t);
        let text = t.finish();
        assert!(
            text.contains("password:  6 bytes\nuser:      5 bytes\n"),
            "{text}"
        );
        assert!(
            !text.contains("czNjcjN0") && !text.contains("s3cr3t"),
            "{text}"
        );
    }

    #[test]
    fn base64_lengths() {
        assert_eq!(decoded_len(""), 0);
        assert_eq!(decoded_len("YQ=="), 1);
        assert_eq!(decoded_len("YWI="), 2);
        assert_eq!(decoded_len("YWJj"), 3);
        assert_eq!(decoded_len("YWJjZA"), 4);
    }
}

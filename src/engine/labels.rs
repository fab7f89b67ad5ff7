//! Label selectors: the `-l` string form and the `matchLabels`/`matchExpressions` object form.

use serde_json::Value;

/// One requirement of a selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// `key=value`, `key==value`.
    Equals(String, String),
    /// `key!=value`.
    NotEquals(String, String),
    /// `key in (a,b)`.
    In(String, Vec<String>),
    /// `key notin (a,b)`.
    NotIn(String, Vec<String>),
    /// `key`.
    Exists(String),
    /// `!key`.
    DoesNotExist(String),
}

/// A conjunction of requirements; empty selects everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector(pub Vec<Requirement>);

impl Selector {
    /// Parses kubectl's selector syntax (`app=web,tier!=db,env in (a,b),!legacy`).
    pub fn parse(text: &str) -> Result<Selector, String> {
        let mut out = Vec::new();
        let mut parts = Vec::new();
        let (mut depth, mut start) = (0, 0);
        for (i, c) in text.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                ',' if depth == 0 => {
                    parts.push(&text[start..i]);
                    start = i + 1;
                }
                _ => {}
            }
        }
        parts.push(&text[start..]);
        for part in parts.into_iter().map(str::trim).filter(|p| !p.is_empty()) {
            let bad = || format!("invalid label selector {text:?}: cannot parse {part:?}");
            let req = if let Some(key) = part.strip_prefix('!') {
                Requirement::DoesNotExist(key.trim().to_string())
            } else if let Some((k, v)) = part.split_once("!=") {
                Requirement::NotEquals(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = part.split_once("==") {
                Requirement::Equals(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = part.split_once('=') {
                Requirement::Equals(k.trim().into(), v.trim().into())
            } else if let Some((k, set)) = split_set(part, " notin ") {
                Requirement::NotIn(k, set.ok_or_else(bad)?)
            } else if let Some((k, set)) = split_set(part, " in ") {
                Requirement::In(k, set.ok_or_else(bad)?)
            } else if part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
            {
                Requirement::Exists(part.to_string())
            } else {
                return Err(bad());
            };
            out.push(req);
        }
        Ok(Selector(out))
    }

    /// Builds a selector from a `LabelSelector` object (`matchLabels` and `matchExpressions`).
    pub fn from_label_selector(selector: &Value) -> Result<Selector, String> {
        let mut out = Vec::new();
        if let Some(labels) = selector.get("matchLabels").and_then(Value::as_object) {
            for (k, v) in labels {
                out.push(Requirement::Equals(
                    k.clone(),
                    v.as_str().unwrap_or_default().to_string(),
                ));
            }
        }
        for expr in selector
            .get("matchExpressions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let key = expr
                .get("key")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let values: Vec<String> = expr
                .get("values")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default();
            let op = expr
                .get("operator")
                .and_then(Value::as_str)
                .unwrap_or_default();
            out.push(match op {
                "In" => Requirement::In(key, values),
                "NotIn" => Requirement::NotIn(key, values),
                "Exists" => Requirement::Exists(key),
                "DoesNotExist" => Requirement::DoesNotExist(key),
                other => return Err(format!("{other:?} is not a valid label selector operator")),
            });
        }
        Ok(Selector(out))
    }

    /// A selector requiring exactly these pairs (a Service's `spec.selector`).
    pub fn from_map(map: &Value) -> Selector {
        Selector(
            map.as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| Requirement::Equals(k.clone(), v.as_str().unwrap_or_default().into()))
                .collect(),
        )
    }

    /// True when the selector has no requirement (it selects everything).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether an object's labels (a JSON map, or null) satisfy every requirement.
    pub fn matches(&self, labels: Option<&Value>) -> bool {
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.0.iter().all(|req| match req {
            Requirement::Equals(k, v) => get(k) == Some(v.as_str()),
            Requirement::NotEquals(k, v) => get(k) != Some(v.as_str()),
            Requirement::In(k, set) => get(k).is_some_and(|x| set.iter().any(|s| s == x)),
            Requirement::NotIn(k, set) => get(k).is_none_or(|x| !set.iter().any(|s| s == x)),
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::DoesNotExist(k) => get(k).is_none(),
        })
    }

    /// kubectl's printing of a selector (`app=web,tier in (a,b)`).
    pub fn to_text(&self) -> String {
        self.0
            .iter()
            .map(|r| match r {
                Requirement::Equals(k, v) => format!("{k}={v}"),
                Requirement::NotEquals(k, v) => format!("{k}!={v}"),
                Requirement::In(k, s) => format!("{k} in ({})", s.join(",")),
                Requirement::NotIn(k, s) => format!("{k} notin ({})", s.join(",")),
                Requirement::Exists(k) => k.clone(),
                Requirement::DoesNotExist(k) => format!("!{k}"),
            })
            .collect::<Vec<_>>()
            .join(",")
    }
}

fn split_set(part: &str, op: &str) -> Option<(String, Option<Vec<String>>)> {
    let (key, rest) = part.split_once(op)?;
    let rest = rest.trim();
    let set = rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .map(|inner| {
            inner
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        });
    Some((key.trim().to_string(), set))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn string_selectors_match_like_kubectl() {
        let labels = json!({"app": "web", "tier": "front"});
        let check = |s: &str| Selector::parse(s).map(|sel| sel.matches(Some(&labels)));
        assert_eq!(check("app=web"), Ok(true));
        assert_eq!(check("app=web,tier!=front"), Ok(false));
        assert_eq!(check("tier in (front, back)"), Ok(true));
        assert_eq!(check("tier notin (front)"), Ok(false));
        assert_eq!(check("!legacy,app"), Ok(true));
        assert_eq!(check(""), Ok(true));
        assert!(Selector::parse("app in front").is_err());
    }

    #[test]
    fn label_selector_objects_match() {
        let sel = Selector::from_label_selector(&json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "track", "operator": "DoesNotExist"}]
        }))
        .unwrap_or_default();
        assert!(sel.matches(Some(&json!({"app": "web"}))));
        assert!(!sel.matches(Some(&json!({"app": "web", "track": "canary"}))));
    }
}

//! Which resources a `target:` selects, as kustomize's `resWrangler.Select` decides.
//!
//! - `group`, `version`, `kind`, `name` and `namespace` are regular expressions anchored at
//!   both ends (`name: app-.*`); an empty one matches everything;
//! - `name` and `namespace` match the current value *or* the original one (before prefixes,
//!   suffixes, namespace changes and renaming patches); group, version and kind match the
//!   current ones;
//! - namespaces compare as kustomize's effective namespace: `default` for an unset namespace,
//!   `_non_namespaceable_` for cluster-scoped kinds;
//! - `labelSelector` and `annotationSelector` use Kubernetes label-selector syntax
//!   (`a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`, `a>1`, `a<1`, joined by
//!   commas), applied to labels and annotations.
//!
//! Invariant: pure; no IO.

use regex::Regex;

use crate::model::{Gvk, ResId, ResMap, Resource};
use crate::render::transformers::namespace::is_cluster_scoped;
use crate::render::types::Selector;

/// The namespace kustomize gives cluster-scoped objects when comparing ids.
pub const NON_NAMESPACEABLE: &str = "_non_namespaceable_";

/// A selector cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// One of the id fields is not a valid regular expression.
    #[error("invalid {field} pattern {pattern:?}: {cause}")]
    Regex {
        /// `group`, `version`, `kind`, `name` or `namespace`.
        field: &'static str,
        /// The pattern as written.
        pattern: String,
        /// The regex engine's complaint.
        cause: String,
    },
    /// A label or annotation selector does not parse.
    #[error("invalid {field} {text:?}: {cause}")]
    LabelSelector {
        /// `labelSelector` or `annotationSelector`.
        field: &'static str,
        /// The selector as written.
        text: String,
        /// What is wrong.
        cause: String,
    },
}

/// A [`Selector`] ready to test resources.
#[derive(Debug, Clone)]
pub struct CompiledSelector {
    group: Option<Regex>,
    version: Option<Regex>,
    kind: Option<Regex>,
    name: Option<Regex>,
    namespace: Option<Regex>,
    labels: LabelSelector,
    annotations: LabelSelector,
}

fn anchored(field: &'static str, pattern: &str) -> Result<Option<Regex>, SelectorError> {
    if pattern.is_empty() {
        return Ok(None);
    }
    // Many applications repeat the same few targets (`kind: Deployment`): compiling a
    // regex costs far more than matching with one, so each thread keeps those it built.
    const CACHE_LIMIT: usize = 4096;
    thread_local! {
        static COMPILED: std::cell::RefCell<std::collections::HashMap<String, Regex>> =
            std::cell::RefCell::new(std::collections::HashMap::new());
    }
    if let Some(found) = COMPILED.with_borrow(|compiled| compiled.get(pattern).cloned()) {
        return Ok(Some(found));
    }
    let regex = Regex::new(&format!("^(?:{pattern})$")).map_err(|e| SelectorError::Regex {
        field,
        pattern: pattern.to_string(),
        cause: e.to_string(),
    })?;
    COMPILED.with_borrow_mut(|compiled| {
        if compiled.len() >= CACHE_LIMIT {
            compiled.clear();
        }
        compiled.insert(pattern.to_string(), regex.clone());
    });
    Ok(Some(regex))
}

impl CompiledSelector {
    /// Compiles the patterns and label selectors of `selector`.
    pub fn new(selector: &Selector) -> Result<CompiledSelector, SelectorError> {
        let labels = |field: &'static str, text: &str| {
            LabelSelector::parse(text).map_err(|cause| SelectorError::LabelSelector {
                field,
                text: text.to_string(),
                cause,
            })
        };
        Ok(CompiledSelector {
            group: anchored("group", &selector.group)?,
            version: anchored("version", &selector.version)?,
            kind: anchored("kind", &selector.kind)?,
            name: anchored("name", &selector.name)?,
            namespace: anchored("namespace", &selector.namespace)?,
            labels: labels("labelSelector", &selector.label_selector)?,
            annotations: labels("annotationSelector", &selector.annotation_selector)?,
        })
    }

    /// True when the selector picks `resource`.
    pub fn matches(&self, resource: &Resource) -> bool {
        let current = resource.id();
        let original = original_id(resource);
        let fits = |regex: &Option<Regex>, a: &str, b: &str| {
            regex
                .as_ref()
                .is_none_or(|r| r.is_match(a) || r.is_match(b))
        };
        if !fits(
            &self.namespace,
            &effective_namespace(&original),
            &effective_namespace(&current),
        ) {
            return false;
        }
        if !fits(&self.name, &original.name, &current.name) {
            return false;
        }
        let gvk = &current.gvk;
        let one =
            |regex: &Option<Regex>, value: &str| regex.as_ref().is_none_or(|r| r.is_match(value));
        one(&self.group, &gvk.group)
            && one(&self.version, &gvk.version)
            && one(&self.kind, &gvk.kind)
            && self.labels.matches(&resource.labels())
            && self.annotations.matches(&resource.annotations())
    }
}

/// The id a resource had when it entered the build (kustomize's `OrgId`).
pub fn original_id(resource: &Resource) -> ResId {
    previous_ids(resource)
        .into_iter()
        .next()
        .unwrap_or_else(|| resource.id())
}

/// The previous ids, oldest first, as kustomize rebuilds them from its bookkeeping
/// annotations: the previous kind, name and namespace with the current group and version.
pub fn previous_ids(resource: &Resource) -> Vec<ResId> {
    let current = resource.gvk();
    resource
        .previous_ids
        .iter()
        .map(|id| ResId {
            gvk: Gvk {
                kind: id.gvk.kind.clone(),
                ..current.clone()
            },
            ..id.clone()
        })
        .collect()
}

/// kustomize's `EffectiveNamespace`.
pub fn effective_namespace(id: &ResId) -> String {
    if is_cluster_scoped(&id.gvk) {
        NON_NAMESPACEABLE.to_string()
    } else if id.namespace.is_empty() {
        "default".to_string()
    } else {
        id.namespace.clone()
    }
}

/// Positions in `resources` of the resources `selector` picks, in order.
pub fn select(resources: &ResMap, selector: &Selector) -> Result<Vec<usize>, SelectorError> {
    let compiled = CompiledSelector::new(selector)?;
    Ok(resources
        .iter()
        .enumerate()
        .filter(|(_, r)| compiled.matches(r))
        .map(|(i, _)| i)
        .collect())
}

/// A parsed Kubernetes label selector.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Requirement {
    key: String,
    operator: Operator,
    values: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operator {
    In,
    NotIn,
    Equals,
    NotEquals,
    Exists,
    DoesNotExist,
    GreaterThan,
    LessThan,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Identifier(String),
    Not,
    Equals,
    DoubleEquals,
    NotEquals,
    In,
    NotIn,
    Open,
    Close,
    Comma,
    Greater,
    Less,
}

fn is_special(c: char) -> bool {
    matches!(c, '!' | '=' | '(' | ')' | ',' | '<' | '>')
}

fn tokenize(text: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if is_special(c) {
            let next = chars.get(i + 1).copied();
            let (token, width) = match (c, next) {
                ('!', Some('=')) => (Token::NotEquals, 2),
                ('=', Some('=')) => (Token::DoubleEquals, 2),
                ('!', _) => (Token::Not, 1),
                ('=', _) => (Token::Equals, 1),
                ('(', _) => (Token::Open, 1),
                (')', _) => (Token::Close, 1),
                (',', _) => (Token::Comma, 1),
                ('<', _) => (Token::Less, 1),
                _ => (Token::Greater, 1),
            };
            tokens.push(token);
            i += width;
            continue;
        }
        let start = i;
        while i < chars.len() && !chars[i].is_whitespace() && !is_special(chars[i]) {
            i += 1;
        }
        let word: String = chars[start..i].iter().collect();
        tokens.push(match word.as_str() {
            "in" => Token::In,
            "notin" => Token::NotIn,
            _ => Token::Identifier(word),
        });
    }
    tokens
}

impl LabelSelector {
    /// Parses a selector; an empty text selects everything.
    pub fn parse(text: &str) -> Result<LabelSelector, String> {
        let tokens = tokenize(text);
        let mut requirements = Vec::new();
        let mut pos = 0;
        while pos < tokens.len() {
            let (requirement, next) = parse_requirement(&tokens, pos)?;
            requirements.push(requirement);
            pos = next;
            match tokens.get(pos) {
                None => break,
                Some(Token::Comma) => {
                    pos += 1;
                    if pos >= tokens.len() {
                        return Err("found ',', expected: identifier after ','".into());
                    }
                }
                Some(other) => {
                    return Err(format!(
                        "found '{other:?}', expected: ',' or end of selector"
                    ));
                }
            }
        }
        Ok(LabelSelector { requirements })
    }

    /// True when every requirement holds for `pairs`.
    pub fn matches(&self, pairs: &[(String, String)]) -> bool {
        self.requirements.iter().all(|r| {
            let value = pairs
                .iter()
                .find(|(k, _)| *k == r.key)
                .map(|(_, v)| v.as_str());
            match r.operator {
                Operator::In | Operator::Equals => {
                    value.is_some_and(|v| r.values.iter().any(|x| x == v))
                }
                Operator::NotIn | Operator::NotEquals => {
                    value.is_none_or(|v| !r.values.iter().any(|x| x == v))
                }
                Operator::Exists => value.is_some(),
                Operator::DoesNotExist => value.is_none(),
                Operator::GreaterThan | Operator::LessThan => {
                    let (Some(v), Some(bound)) = (value, r.values.first()) else {
                        return false;
                    };
                    let (Ok(v), Ok(bound)) = (v.parse::<i64>(), bound.parse::<i64>()) else {
                        return false;
                    };
                    if r.operator == Operator::GreaterThan {
                        v > bound
                    } else {
                        v < bound
                    }
                }
            }
        })
    }
}

fn parse_requirement(tokens: &[Token], mut pos: usize) -> Result<(Requirement, usize), String> {
    let negated = tokens.get(pos) == Some(&Token::Not);
    if negated {
        pos += 1;
    }
    let Some(Token::Identifier(key)) = tokens.get(pos) else {
        return Err(format!(
            "found '{:?}', expected: identifier",
            tokens.get(pos)
        ));
    };
    validate_key(key)?;
    pos += 1;
    let requirement = |operator, values| Requirement {
        key: key.clone(),
        operator,
        values,
    };
    if negated {
        return Ok((requirement(Operator::DoesNotExist, Vec::new()), pos));
    }
    let operator = match tokens.get(pos) {
        None | Some(Token::Comma) => return Ok((requirement(Operator::Exists, Vec::new()), pos)),
        Some(Token::Equals) | Some(Token::DoubleEquals) => Operator::Equals,
        Some(Token::NotEquals) => Operator::NotEquals,
        Some(Token::In) => Operator::In,
        Some(Token::NotIn) => Operator::NotIn,
        Some(Token::Greater) => Operator::GreaterThan,
        Some(Token::Less) => Operator::LessThan,
        Some(other) => return Err(format!("found '{other:?}', expected: operator")),
    };
    pos += 1;
    let values = if matches!(operator, Operator::In | Operator::NotIn) {
        if tokens.get(pos) != Some(&Token::Open) {
            return Err("expected '(' after in/notin".into());
        }
        pos += 1;
        let mut values = Vec::new();
        loop {
            match tokens.get(pos) {
                Some(Token::Identifier(v)) => {
                    values.push(v.clone());
                    pos += 1;
                }
                Some(Token::Comma) | Some(Token::Close) => values.push(String::new()),
                _ => return Err("expected a value or ')'".into()),
            }
            match tokens.get(pos) {
                Some(Token::Comma) => pos += 1,
                Some(Token::Close) => {
                    pos += 1;
                    break;
                }
                _ => return Err("expected ',' or ')' in value set".into()),
            }
        }
        // `a in ()` is a set with nothing in it, which Kubernetes refuses.
        if values.len() == 1 && values[0].is_empty() {
            return Err("for 'in', 'notin' operators, values set can't be empty".into());
        }
        values
    } else {
        match tokens.get(pos) {
            Some(Token::Identifier(v)) => {
                pos += 1;
                vec![v.clone()]
            }
            None | Some(Token::Comma) => vec![String::new()],
            Some(other) => return Err(format!("found '{other:?}', expected: identifier")),
        }
    };
    for value in &values {
        validate_value(value)?;
    }
    if matches!(operator, Operator::GreaterThan | Operator::LessThan)
        && values.first().is_none_or(|v| v.parse::<i64>().is_err())
    {
        return Err(format!(
            "for 'Gt', 'Lt' operators, the value must be an integer: {values:?}"
        ));
    }
    Ok((requirement(operator, values), pos))
}

fn is_name_part(text: &str) -> bool {
    let bytes = text.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn is_dns_subdomain(text: &str) -> bool {
    text.len() <= 253
        && text.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        })
}

fn validate_key(key: &str) -> Result<(), String> {
    let valid = match key.split_once('/') {
        Some((prefix, name)) => is_dns_subdomain(prefix) && is_name_part(name),
        None => is_name_part(key),
    };
    if valid {
        Ok(())
    } else {
        Err(format!("invalid label key {key:?}"))
    }
}

fn validate_value(value: &str) -> Result<(), String> {
    if value.is_empty() || is_name_part(value) {
        Ok(())
    } else {
        Err(format!("invalid label value {value:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn resource(value: serde_json::Value) -> Resource {
        let serde_json::Value::Object(map) = value else {
            unreachable!()
        };
        Resource::new(map)
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn label_selector_operators() {
        let labels = pairs(&[("app", "web"), ("tier", "front"), ("n", "5")]);
        let check = |text: &str| LabelSelector::parse(text).expect(text).matches(&labels);
        assert!(check(""));
        assert!(check("app=web"));
        assert!(check("app==web,tier"));
        assert!(!check("app!=web"));
        assert!(check("missing!=x"));
        assert!(check("tier in (front, back)"));
        assert!(!check("tier notin (front)"));
        assert!(check("!missing"));
        assert!(!check("!app"));
        assert!(check("n>4"));
        assert!(!check("n<5"));
        assert!(LabelSelector::parse("app in ()").is_err());
        assert!(LabelSelector::parse("app=web,").is_err());
        assert!(LabelSelector::parse("bad key=x").is_err());
    }

    #[test]
    fn names_match_current_or_original_and_patterns_are_anchored() {
        let mut r = resource(json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}}}));
        r.remember_id();
        r.set_name("prod-web");
        let selector = |name: &str| Selector {
            name: name.into(),
            ..Selector::default()
        };
        let compiled = |s: &Selector| CompiledSelector::new(s).expect("valid");
        assert!(compiled(&selector("web")).matches(&r));
        assert!(compiled(&selector("prod-web")).matches(&r));
        assert!(compiled(&selector("prod-.*")).matches(&r));
        assert!(!compiled(&selector("we")).matches(&r));
        let by_kind = Selector {
            kind: "Deploy.*".into(),
            label_selector: "app=web".into(),
            ..Selector::default()
        };
        assert!(compiled(&by_kind).matches(&r));
        let default_ns = Selector {
            namespace: "default".into(),
            ..Selector::default()
        };
        assert!(compiled(&default_ns).matches(&r));
        let group = Selector {
            group: "apps".into(),
            version: "v2".into(),
            ..Selector::default()
        };
        assert!(!compiled(&group).matches(&r));
    }
}

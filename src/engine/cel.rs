//! CRD validation rules (`x-kubernetes-validations`, CEL) as kube-apiserver 1.31 runs them.
//!
//! Owns: checking the rules of a CRD's schemas when the CRD is written ([`check_crd`]: empty
//! rules, messages, reasons, field paths, rules that do not compile or call a function
//! Kubernetes does not know, `oldSelf` where old and new values cannot be correlated), compiling
//! each CRD version's rules once ([`rules_of`], cached by CRD and resourceVersion), and running
//! them on a custom resource ([`check`]): at every schema node where a value is present, with
//! `self` the value there (at the root: `apiVersion`, `kind`, `metadata.name`/`generateName`
//! and the schema's fields), per element under `items`/`additionalProperties`, transition rules
//! (`oldSelf`) only on updates where the old value correlates (map keys, `x-kubernetes-list-type:
//! map` items), `optionalOldSelf`, `message`/`messageExpression`/`reason`/`fieldPath`, and
//! ratcheting (an unchanged value's failure is a warning, as with `CRDValidationRatcheting`).
//!
//! Does not own the schema's structural validation (types, required, enum, formats, bounds:
//! [`crd`](super::crd)), nor cost budgets (rules are not metered). A rule whose evaluation
//! needs something the engine's CEL lacks (see [`library`]) is skipped with a warning saying
//! so, never turned into a refusal.

mod library;

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, LazyLock, Mutex};

use ::cel::objects::{Key, Map, OptionalValue, Value as Cel};
use ::cel::{Context, ExecutionError, Program};
use serde_json::Value;

use library::{ENV, KUBERNETES_FUNCTIONS};

/// What running an object's rules found: refusals, and warnings (rules not evaluated,
/// failures ratcheted on unchanged values).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Findings {
    /// Field errors, in the API server's words (`spec: Invalid value: "object": …`).
    pub errors: Vec<String>,
    /// Warnings for the client.
    pub warnings: Vec<String>,
}

/// The compiled rules of one CRD version's schema.
pub struct Rules {
    root: Node,
}

#[derive(Default)]
struct Node {
    rules: Vec<Rule>,
    properties: HashMap<String, Node>,
    items: Option<Box<Node>>,
    additional: Option<Box<Node>>,
}

struct Rule {
    source: String,
    message: String,
    /// `None` when the rule does not compile (a CRD stored before its rules were checked).
    program: Option<Program>,
    message_expression: Option<Program>,
    reason: Reason,
    field_path: String,
    uses_old_self: bool,
    optional_old_self: bool,
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Reason {
    Invalid,
    Forbidden,
    Required,
    Duplicate,
}

const REASONS: [&str; 4] = [
    "FieldValueDuplicate",
    "FieldValueForbidden",
    "FieldValueInvalid",
    "FieldValueRequired",
];

static NULL: Value = Value::Null;

/// A `field.Path` as the API server prints it: `spec.items[0].name`, `spec.labels[key]`.
#[derive(Clone, Debug, Default)]
struct FieldPath(String);

impl FieldPath {
    fn child(&self, name: &str) -> FieldPath {
        if self.0.is_empty() {
            FieldPath(name.to_string())
        } else {
            FieldPath(format!("{}.{name}", self.0))
        }
    }

    fn index(&self, i: usize) -> FieldPath {
        FieldPath(format!("{}[{i}]", self.0))
    }

    fn key(&self, key: &str) -> FieldPath {
        FieldPath(format!("{}[{key}]", self.0))
    }

    /// The root prints as `<nil>`, as a nil `*field.Path` does.
    fn shown(&self) -> &str {
        if self.0.is_empty() { "<nil>" } else { &self.0 }
    }
}

/// Go's `%q` of a string (JSON's escaping agrees on what rules and messages hold).
fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

fn rules_at(schema: &Value) -> &[Value] {
    schema
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn str_field<'a>(rule: &'a Value, name: &str) -> &'a str {
    rule.get(name).and_then(Value::as_str).unwrap_or_default()
}

fn object_schema<'a>(schema: &'a Value, name: &str) -> Option<&'a Value> {
    schema.get(name).filter(|s| s.is_object())
}

fn is_map_list(schema: &Value) -> bool {
    schema.get("x-kubernetes-list-type").and_then(Value::as_str) == Some("map")
}

fn is_embedded(schema: &Value) -> bool {
    schema
        .get("x-kubernetes-embedded-resource")
        .and_then(Value::as_bool)
        == Some(true)
}

fn schema_type(schema: &Value) -> &str {
    schema.get("type").and_then(Value::as_str).unwrap_or_default()
}

/// `cel.Escape`: the name a property has in CEL, `None` when it has none (the property is
/// then not visible to rules).
fn escape(name: &str) -> Option<String> {
    const RESERVED: [&str; 21] = [
        "true", "false", "null", "in", "as", "break", "const", "continue", "else", "for",
        "function", "if", "import", "let", "loop", "package", "namespace", "return", "var",
        "void", "while",
    ];
    let first = name.chars().next()?;
    if first.is_ascii_digit() {
        return None;
    }
    if RESERVED.contains(&name) {
        return Some(format!("__{name}__"));
    }
    let mut escaped = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(c) = rest.chars().next() {
        if rest.starts_with("__") {
            escaped.push_str("__underscores__");
            rest = &rest[2..];
            continue;
        }
        match c {
            '.' => escaped.push_str("__dot__"),
            '-' => escaped.push_str("__dash__"),
            '/' => escaped.push_str("__slash__"),
            c if c.is_ascii_alphanumeric() || c == '_' => escaped.push(c),
            _ => return None,
        }
        rest = &rest[c.len_utf8()..];
    }
    Some(escaped)
}

/// The value at a schema node as CEL sees it: integers as `int` (`number` fields as
/// `double`), properties under their escaped names, unknown fields hidden, and at a
/// resource root `apiVersion`, `kind` and only `metadata.name`/`generateName`.
fn to_cel(schema: &Value, value: &Value, resource_root: bool) -> Cel {
    match value {
        Value::Null => Cel::Null,
        Value::Bool(b) => Cel::Bool(*b),
        Value::Number(n) => match (schema_type(schema), n.as_i64()) {
            ("number", _) | (_, None) => Cel::Float(n.as_f64().unwrap_or_default()),
            (_, Some(i)) => Cel::Int(i),
        },
        Value::String(s) => Cel::String(Arc::new(s.clone())),
        Value::Array(items) => {
            let element = schema.get("items").unwrap_or(&NULL);
            Cel::List(Arc::new(
                items
                    .iter()
                    .map(|v| to_cel(element, v, is_embedded(element)))
                    .collect(),
            ))
        }
        Value::Object(fields) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = object_schema(schema, "additionalProperties");
            let mut map = HashMap::with_capacity(fields.len());
            for (name, field) in fields {
                let key = |k: &str| Key::String(Arc::new(k.to_string()));
                if resource_root && matches!(name.as_str(), "apiVersion" | "kind") {
                    map.insert(key(name), to_cel(&NULL, field, false));
                } else if resource_root && name == "metadata" {
                    let mut meta = HashMap::new();
                    for visible in ["name", "generateName"] {
                        if let Some(Value::String(s)) = field.get(visible) {
                            meta.insert(key(visible), Cel::String(Arc::new(s.clone())));
                        }
                    }
                    map.insert(key(name), Cel::Map(Map { map: Arc::new(meta) }));
                } else if let Some(sub) = properties.and_then(|p| p.get(name)) {
                    if let Some(escaped) = escape(name) {
                        map.insert(key(&escaped), to_cel(sub, field, is_embedded(sub)));
                    }
                } else if let Some(sub) = additional {
                    map.insert(key(name), to_cel(sub, field, is_embedded(sub)));
                } else if properties.is_none() {
                    map.insert(key(name), to_cel(&NULL, field, false));
                }
            }
            Cel::Map(Map { map: Arc::new(map) })
        }
    }
}

/// Whether a function name is an operator (`_==_`, `!_`, `@in`, …) rather than a call.
fn is_operator(name: &str) -> bool {
    name.starts_with(['_', '!', '-', '@'])
}

/// A call of a function Kubernetes does not know, as cel-go's checker reports it.
fn undeclared_function(source: &str, program: &Program) -> Option<String> {
    let references = program.references();
    let mut unknown: Vec<&str> = references
        .functions()
        .into_iter()
        .filter(|f| !is_operator(f) && !KUBERNETES_FUNCTIONS.contains(f))
        .collect();
    unknown.sort_unstable();
    let name = unknown.first()?;
    let offset = source.find(&format!("{name}(")).unwrap_or_default();
    let line = source[..offset].matches('\n').count() + 1;
    let column = offset - source[..offset].rfind('\n').map_or(0, |n| n + 1) + 1;
    Some(format!(
        "ERROR: <input>:{line}:{column}: undeclared reference to '{name}' (in container '')"
    ))
}

fn uses_old_self(program: &Program) -> bool {
    program.references().has_variable("oldSelf")
}

/// `ValidFieldPath`: a rule's `fieldPath` (`.a.b`, `.a['key']`) checked against the schema
/// of its node; the path it names, relative to that node.
fn valid_field_path(path: &str, schema: &Value) -> Result<String, String> {
    let mut tokens = Vec::new();
    let mut rest = path;
    while !rest.is_empty() {
        if rest.starts_with('\'') {
            let bytes = rest.as_bytes();
            let end = (1..bytes.len())
                .find(|&i| bytes[i] == b'\'' && bytes[i - 1] != b'\\')
                .map_or(rest.len(), |i| i + 1);
            tokens.push(&rest[..end]);
            rest = &rest[end..];
        } else if rest.starts_with(['.', '[', ']']) {
            tokens.push(&rest[..1]);
            rest = &rest[1..];
        } else {
            let end = rest.find(['.', '[', ']']).unwrap_or(rest.len());
            tokens.push(&rest[..end]);
            rest = &rest[end..];
        }
    }
    let mut out = FieldPath::default();
    let mut node = schema;
    let mut tokens = tokens.into_iter();
    while let Some(token) = tokens.next() {
        let name = match token {
            "[" => {
                let quoted = tokens.next().ok_or("unexpected end of JSON path")?;
                if quoted.len() < 2 || !quoted.starts_with('\'') || !quoted.ends_with('\'') {
                    return Err(format!("expected single quoted string but got {quoted}"));
                }
                let name = quoted[1..quoted.len() - 1]
                    .replace("\\'", "'")
                    .replace("\\\\", "\\");
                match tokens.next() {
                    Some("]") => {}
                    Some(other) => return Err(format!("expected ] but got {other}")),
                    None => return Err("unexpected end of JSON path".into()),
                }
                name
            }
            "." => tokens
                .next()
                .ok_or("unexpected end of JSON path")?
                .to_string(),
            other => return Err(format!("expected [ or . but got: {other}")),
        };
        if let Some(properties) = node.get("properties").and_then(Value::as_object) {
            node = properties
                .get(&name)
                .ok_or("does not refer to a valid field")?;
            out = out.child(&name);
        } else if let Some(additional) = object_schema(node, "additionalProperties") {
            node = additional;
            out = out.key(&name);
        } else {
            return Err("does not refer to a valid field".into());
        }
    }
    Ok(out.0)
}

/// Go's `%#v` of an `apiextensions.ValidationRule`, the value upstream prints for a rule
/// that does not compile.
fn rule_repr(rule: &Value) -> String {
    let pointer = |name: &str, ty: &str| match rule.get(name) {
        None | Some(Value::Null) => format!("(*{ty})(nil)"),
        Some(_) => format!("(*{ty})(0xc000010000)"),
    };
    format!(
        "apiextensions.ValidationRule{{Rule:{}, Message:{}, MessageExpression:{}, Reason:{}, FieldPath:{}, OptionalOldSelf:{}}}",
        quoted(str_field(rule, "rule")),
        quoted(str_field(rule, "message")),
        quoted(str_field(rule, "messageExpression")),
        pointer("reason", "apiextensions.FieldValueErrorReason"),
        quoted(str_field(rule, "fieldPath")),
        pointer("optionalOldSelf", "bool"),
    )
}

/// CRD admission: the rules of every version's schema, with upstream's paths (a schema all
/// versions share is reported once, at `spec.validation.openAPIV3Schema`, as the API server
/// folds identical schemas).
pub fn check_crd(versions: &[Value], errs: &mut Vec<String>) {
    let schemas: Vec<Option<&Value>> = versions
        .iter()
        .map(|v| v.get("schema").and_then(|s| s.get("openAPIV3Schema")))
        .collect();
    let shared = schemas.len() > 1 && schemas.windows(2).all(|w| w[0] == w[1]);
    if shared || schemas.len() == 1 {
        if let Some(schema) = schemas[0] {
            check_schema(schema, "spec.validation.openAPIV3Schema", None, errs);
        }
        return;
    }
    for (i, schema) in schemas.iter().enumerate() {
        if let Some(schema) = schema {
            let at = format!("spec.versions[{i}].schema.openAPIV3Schema");
            check_schema(schema, &at, None, errs);
        }
    }
}

/// One node's rules, then its children's. `uncorrelatable` is the first `items` above that a
/// transition rule cannot see through (a list that is not a map list).
fn check_schema(schema: &Value, at: &str, uncorrelatable: Option<&str>, errs: &mut Vec<String>) {
    for (i, rule) in rules_at(schema).iter().enumerate() {
        check_rule(schema, rule, &format!("{at}.x-kubernetes-validations[{i}]"), uncorrelatable, errs);
    }
    if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
        for (name, sub) in properties {
            check_schema(sub, &format!("{at}.properties[{name}]"), uncorrelatable, errs);
        }
    }
    if let Some(items) = object_schema(schema, "items") {
        let path = format!("{at}.items");
        let blocked = uncorrelatable
            .map(str::to_string)
            .or_else(|| (!is_map_list(schema)).then(|| path.clone()));
        check_schema(items, &path, blocked.as_deref(), errs);
    }
    if let Some(additional) = object_schema(schema, "additionalProperties") {
        check_schema(additional, &format!("{at}.additionalProperties"), uncorrelatable, errs);
    }
}

fn check_rule(
    schema: &Value,
    rule: &Value,
    at: &str,
    uncorrelatable: Option<&str>,
    errs: &mut Vec<String>,
) {
    let source = str_field(rule, "rule");
    let message = str_field(rule, "message");
    let message_expression = rule.get("messageExpression").and_then(Value::as_str);
    if source.trim().is_empty() {
        errs.push(format!("{at}.rule: Required value: rule is not specified"));
        return;
    }
    if !message.is_empty() && message.trim().is_empty() {
        errs.push(format!(
            "{at}.message: Invalid value: {}: message must be non-empty if specified",
            quoted(message)
        ));
    } else if message.trim().contains('\n') {
        errs.push(format!(
            "{at}.message: Invalid value: {}: message must not contain line breaks",
            quoted(message)
        ));
    } else if source.trim().contains('\n') && message.trim().is_empty() {
        errs.push(format!(
            "{at}.message: Required value: message must be specified if rule contains line breaks"
        ));
    }
    if message_expression.is_some_and(|m| m.trim().is_empty()) {
        errs.push(format!(
            "{at}.messageExpression: Required value: messageExpression must be non-empty if specified"
        ));
    }
    if let Some(reason) = rule.get("reason").and_then(Value::as_str)
        && !REASONS.contains(&reason)
    {
        let supported: Vec<String> = REASONS.iter().map(|r| quoted(r)).collect();
        errs.push(format!(
            "{at}.reason: Unsupported value: {}: supported values: {}",
            quoted(reason),
            supported.join(", ")
        ));
    }
    let field_path = str_field(rule, "fieldPath");
    if !field_path.is_empty()
        && let Err(why) = valid_field_path(field_path, schema)
    {
        errs.push(format!(
            "{at}.fieldPath: Invalid value: {}: fieldPath must be a valid path: {why}",
            quoted(field_path)
        ));
    }
    let compiled = ENV.compile(source.trim());
    let failure = match &compiled {
        Err(e) => Some(e.to_string()),
        Ok(program) => undeclared_function(source.trim(), program),
    };
    if let Some(failure) = failure {
        errs.push(format!(
            "{at}.rule: Invalid value: {}: compilation failed: {failure}",
            rule_repr(rule)
        ));
    } else if let Ok(program) = &compiled {
        let transition = uses_old_self(program);
        if transition && let Some(within) = uncorrelatable {
            errs.push(format!(
                "{at}.rule: Invalid value: {}: oldSelf cannot be used on the uncorrelatable portion of the schema within {within}",
                quoted(source)
            ));
        }
        if !transition && let Some(optional) = rule.get("optionalOldSelf").and_then(Value::as_bool)
        {
            errs.push(format!(
                "{at}.optionalOldSelf: Invalid value: {optional}: may not be set if oldSelf is not used in rule"
            ));
        }
    }
    if let Some(expression) = message_expression.filter(|m| !m.trim().is_empty()) {
        let failure = match ENV.compile(expression.trim()) {
            Err(e) => Some(e.to_string()),
            Ok(program) => undeclared_function(expression.trim(), &program),
        };
        if let Some(failure) = failure {
            errs.push(format!(
                "{at}.messageExpression: Invalid value: {}: messageExpression compilation failed: {failure}",
                rule_repr(rule)
            ));
        }
    }
}

/// Compiles the rules under a schema; `None` when it has none.
pub fn compile(schema: &Value) -> Option<Rules> {
    compile_node(schema).map(|root| Rules { root })
}

fn compile_node(schema: &Value) -> Option<Node> {
    let mut node = Node::default();
    for rule in rules_at(schema) {
        let source = str_field(rule, "rule").trim().to_string();
        if source.is_empty() {
            continue;
        }
        let program = ENV.compile(&source).ok();
        let reason = match rule.get("reason").and_then(Value::as_str) {
            Some("FieldValueForbidden") => Reason::Forbidden,
            Some("FieldValueRequired") => Reason::Required,
            Some("FieldValueDuplicate") => Reason::Duplicate,
            _ => Reason::Invalid,
        };
        node.rules.push(Rule {
            uses_old_self: program.as_ref().is_some_and(uses_old_self),
            program,
            message: str_field(rule, "message").trim().to_string(),
            message_expression: rule
                .get("messageExpression")
                .and_then(Value::as_str)
                .filter(|m| !m.trim().is_empty())
                .and_then(|m| ENV.compile(m.trim()).ok()),
            reason,
            field_path: valid_field_path(str_field(rule, "fieldPath"), schema)
                .unwrap_or_default(),
            optional_old_self: rule.get("optionalOldSelf").and_then(Value::as_bool) == Some(true),
            source,
        });
    }
    if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
        for (name, sub) in properties {
            if let Some(child) = compile_node(sub) {
                node.properties.insert(name.clone(), child);
            }
        }
    }
    node.items = object_schema(schema, "items")
        .and_then(compile_node)
        .map(Box::new);
    node.additional = object_schema(schema, "additionalProperties")
        .and_then(compile_node)
        .map(Box::new);
    let empty = node.rules.is_empty()
        && node.properties.is_empty()
        && node.items.is_none()
        && node.additional.is_none();
    (!empty).then_some(node)
}

type Cache = HashMap<String, Option<Arc<Rules>>>;

static CACHE: LazyLock<Mutex<Cache>> = LazyLock::new(|| Mutex::new(HashMap::new()));

/// Compiled CRDs kept at most: past it the cache starts over (CRDs are few; this bounds a
/// process that sees many CRD revisions).
const CACHE_LIMIT: usize = 512;

/// The compiled rules of `version` of `crd` (whose schema is `schema`), compiled once per CRD
/// revision and kept; `None` when the schema has no rules.
pub fn rules_of(crd: &Value, version: &str, schema: &Value) -> Option<Arc<Rules>> {
    let meta = crd.get("metadata");
    let field = |name: &str| {
        meta.and_then(|m| m.get(name))
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    let mut key = format!(
        "{}/{}/{}/{version}",
        field("name"),
        field("uid"),
        field("resourceVersion")
    );
    if field("uid").is_empty() || field("resourceVersion").is_empty() {
        // A CRD not stored yet (a dry run, a test): its schema itself tells revisions apart.
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        schema.to_string().hash(&mut hasher);
        key.push_str(&format!("/{:x}", hasher.finish()));
    }
    let mut cache = CACHE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(found) = cache.get(&key) {
        return found.clone();
    }
    let compiled = compile(schema).map(Arc::new);
    if cache.len() >= CACHE_LIMIT {
        cache.clear();
    }
    cache.insert(key, compiled.clone());
    compiled
}

/// Whether structural errors already found stop the rules from running, as upstream's
/// `hasBlockingErr` (wrong type, unsupported enum value, required, too long, too many).
fn blocking(errors: &[String]) -> bool {
    errors.iter().any(|e| {
        [
            ": Required value",
            ": Unsupported value: ",
            " must be of type ",
            ": Too long: ",
            ": Too many: ",
        ]
        .iter()
        .any(|marker| e.contains(marker))
    })
}

/// Runs `rules` (of the root `schema`) on a custom resource; `old` is the stored object on an
/// update. `errors` are the schema errors found before: blocking ones stop the rules, with the
/// API server's note that some were not checked.
pub fn check(
    rules: &Rules,
    schema: &Value,
    new: &Value,
    old: Option<&Value>,
    errors: &[String],
) -> Findings {
    let mut findings = Findings::default();
    if blocking(errors) {
        findings.errors.push(
            "<nil>: Invalid value: \"null\": some validation rules were not checked because the object was invalid; correct the existing errors to complete validation".into(),
        );
        return findings;
    }
    let at = Walk {
        schema,
        value: new,
        old,
        path: FieldPath::default(),
        unchanged: false,
        resource_root: true,
    };
    walk(&rules.root, at, &mut findings);
    findings
}

/// Where the walk is: a schema node, the values there, and whether the nearest correlated
/// value is unchanged (its failures are then ratcheted).
struct Walk<'a> {
    schema: &'a Value,
    value: &'a Value,
    old: Option<&'a Value>,
    path: FieldPath,
    unchanged: bool,
    resource_root: bool,
}

fn walk(node: &Node, at: Walk<'_>, findings: &mut Findings) {
    if at.value.is_null() {
        return;
    }
    let unchanged = match at.old {
        Some(old) => old == at.value,
        None => at.unchanged,
    };
    if !node.rules.is_empty() {
        evaluate(node, &at, unchanged, findings);
    }
    match at.value {
        Value::Object(fields) => {
            let old_field = |name: &str| at.old.and_then(|o| o.get(name));
            if let (Some(additional), Some(schema)) = (
                &node.additional,
                object_schema(at.schema, "additionalProperties"),
            ) {
                for (name, value) in fields {
                    let next = Walk {
                        schema,
                        value,
                        old: old_field(name),
                        path: at.path.key(name),
                        unchanged,
                        resource_root: is_embedded(schema),
                    };
                    walk(additional, next, findings);
                }
            }
            for (name, value) in fields {
                let (Some(child), Some(schema)) = (
                    node.properties.get(name),
                    at.schema.get("properties").and_then(|p| p.get(name)),
                ) else {
                    continue;
                };
                let next = Walk {
                    schema,
                    value,
                    old: old_field(name),
                    path: at.path.child(name),
                    unchanged,
                    resource_root: is_embedded(schema),
                };
                walk(child, next, findings);
            }
        }
        Value::Array(items) => {
            let (Some(element), Some(schema)) = (&node.items, object_schema(at.schema, "items"))
            else {
                return;
            };
            let keys: Vec<&str> = at
                .schema
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .map(|k| k.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let old_items = at.old.and_then(Value::as_array);
            for (i, value) in items.iter().enumerate() {
                // Only a map list's items correlate with old ones (by their keys).
                let old = old_items.filter(|_| is_map_list(at.schema)).and_then(|olds| {
                    olds.iter()
                        .find(|o| keys.iter().all(|k| o.get(k) == value.get(k)))
                });
                let next = Walk {
                    schema,
                    value,
                    old,
                    path: at.path.index(i),
                    unchanged,
                    resource_root: is_embedded(schema),
                };
                walk(element, next, findings);
            }
        }
        _ => {}
    }
}

/// How a rule's evaluation error is treated.
enum Failure {
    /// A runtime error kube-apiserver reports as well (`no such key: x`).
    Runtime(String),
    /// Something the engine's CEL lacks: the rule is not evaluated.
    Unsupported(String),
}

fn classify(error: ExecutionError) -> Failure {
    match error {
        ExecutionError::NoSuchKey(key) => Failure::Runtime(format!("no such key: {key}")),
        ExecutionError::IndexOutOfBounds(index) => {
            let shown = match index {
                Cel::Int(i) => i.to_string(),
                Cel::UInt(u) => u.to_string(),
                other => format!("{other:?}"),
            };
            Failure::Runtime(format!("index out of bounds: {shown}"))
        }
        ExecutionError::DivisionByZero(_) => Failure::Runtime("division by zero".into()),
        ExecutionError::RemainderByZero(_) => Failure::Runtime("modulus by zero".into()),
        ExecutionError::Overflow(..) => Failure::Runtime("integer overflow".into()),
        ExecutionError::FunctionError { message, .. } => Failure::Runtime(message),
        ExecutionError::UndeclaredReference(name) => {
            Failure::Unsupported(format!("the engine does not implement '{name}'"))
        }
        other => Failure::Unsupported(format!("the engine's CEL could not evaluate it ({other})")),
    }
}

fn evaluate(node: &Node, at: &Walk<'_>, unchanged: bool, findings: &mut Findings) {
    let ty = schema_type(at.schema);
    let this = to_cel(at.schema, at.value, at.resource_root);
    let before = at.old.map(|o| to_cel(at.schema, o, at.resource_root));
    let mut plain = Context::with_env(Arc::clone(&ENV));
    plain.add_variable_from_value("self", this.clone());
    if let Some(before) = &before {
        plain.add_variable_from_value("oldSelf", before.clone());
    }
    let mut optional = None;
    for rule in &node.rules {
        if rule.uses_old_self && at.old.is_none() && !rule.optional_old_self {
            continue;
        }
        let context = if rule.optional_old_self {
            optional.get_or_insert_with(|| {
                let mut context = Context::with_env(Arc::clone(&ENV));
                context.add_variable_from_value("self", this.clone());
                let old = match &before {
                    Some(v) => OptionalValue::of(v.clone()),
                    None => OptionalValue::none(),
                };
                context.add_variable_from_value("oldSelf", Cel::Opaque(Arc::new(old)));
                context
            })
        } else {
            &plain
        };
        let not_evaluated = |why: String| {
            format!(
                "{}: x-kubernetes-validations rule {} was not evaluated: {why}",
                at.path.shown(),
                quoted(&rule.source)
            )
        };
        let Some(program) = &rule.program else {
            findings
                .warnings
                .push(not_evaluated("it does not compile".into()));
            continue;
        };
        let shown = if rule.message.is_empty() {
            &rule.source
        } else {
            &rule.message
        };
        match program.execute(context) {
            Ok(Cel::Bool(true)) => {}
            Ok(Cel::Bool(false)) => {
                let path = if rule.field_path.is_empty() {
                    at.path.clone()
                } else {
                    at.path.child(&rule.field_path)
                };
                let detail = rule
                    .message_expression
                    .as_ref()
                    .and_then(|m| evaluated_message(m, context))
                    .unwrap_or_else(|| {
                        if rule.message.is_empty() {
                            format!("failed rule: {}", rule.source)
                        } else {
                            rule.message.clone()
                        }
                    });
                let body = match rule.reason {
                    Reason::Invalid => format!("Invalid value: {}: {detail}", quoted(ty)),
                    Reason::Forbidden => format!("Forbidden: {detail}"),
                    Reason::Required => format!("Required value: {detail}"),
                    Reason::Duplicate => format!("Duplicate value: {}", quoted(ty)),
                };
                let error = format!("{}: {body}", path.shown());
                if unchanged && !rule.uses_old_self {
                    findings.warnings.push(error);
                } else {
                    findings.errors.push(error);
                }
            }
            Ok(other) => findings.warnings.push(not_evaluated(format!(
                "it evaluated to {other:?}, not a bool"
            ))),
            Err(error) => match classify(error) {
                Failure::Runtime(message) => findings.errors.push(format!(
                    "{}: Invalid value: {}: {message} evaluating rule: {shown}",
                    at.path.shown(),
                    quoted(ty)
                )),
                Failure::Unsupported(why) => findings.warnings.push(not_evaluated(why)),
            },
        }
    }
}

/// A `messageExpression`'s message, when it evaluates to one upstream would show.
fn evaluated_message(program: &Program, context: &Context<'_, '_>) -> Option<String> {
    match program.execute(context) {
        Ok(Cel::String(s)) => {
            let trimmed = s.trim();
            (!trimmed.is_empty() && !trimmed.contains('\n') && trimmed.len() <= 5000)
                .then(|| trimmed.to_string())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema_with(spec: Value) -> Value {
        json!({"type": "object", "properties": {"spec": spec}})
    }

    fn run(schema: &Value, new: &Value, old: Option<&Value>) -> Findings {
        let rules = compile(schema).unwrap_or_else(|| panic!("rules"));
        check(&rules, schema, new, old, &[])
    }

    fn widget(spec: Value) -> Value {
        json!({"apiVersion": "example.com/v1", "kind": "Widget",
            "metadata": {"name": "w", "labels": {"a": "b"}}, "spec": spec})
    }

    #[test]
    fn rules_at_each_level_name_the_path_and_the_type() {
        let schema = schema_with(json!({"type": "object",
            "x-kubernetes-validations": [{"rule": "self.min <= self.max", "message": "min must not exceed max"}],
            "properties": {
                "min": {"type": "integer"}, "max": {"type": "integer"},
                "name": {"type": "string", "x-kubernetes-validations": [{"rule": "self.startsWith('w-')"}]}}}));
        let ok = run(&schema, &widget(json!({"min": 1, "max": 2, "name": "w-1"})), None);
        assert_eq!(ok, Findings::default());
        let bad = run(&schema, &widget(json!({"min": 3, "max": 2, "name": "x"})), None);
        assert_eq!(
            bad.errors,
            [
                "spec: Invalid value: \"object\": min must not exceed max",
                "spec.name: Invalid value: \"string\": failed rule: self.startsWith('w-')",
            ]
        );
    }

    #[test]
    fn the_root_sees_type_meta_and_only_name_of_metadata() {
        let schema = json!({"type": "object",
            "x-kubernetes-validations": [
                {"rule": "self.kind == 'Widget' && self.metadata.name.size() < 5"},
                {"rule": "has(self.metadata.labels)", "message": "labels are hidden"}],
            "properties": {"spec": {"type": "object"}}});
        let found = run(&schema, &widget(json!({})), None);
        assert_eq!(found.errors, ["<nil>: Invalid value: \"object\": labels are hidden"]);
    }

    #[test]
    fn reasons_field_paths_and_message_expressions() {
        let schema = schema_with(json!({"type": "object",
            "properties": {"replicas": {"type": "integer"}, "mode": {"type": "string"}},
            "x-kubernetes-validations": [
                {"rule": "self.replicas < 10", "reason": "FieldValueForbidden", "fieldPath": ".replicas",
                 "messageExpression": "'replicas ' + string(self.replicas) + ' is too many'"},
                {"rule": "has(self.mode)", "reason": "FieldValueRequired", "message": "mode is required"},
                {"rule": "self.replicas != 12", "reason": "FieldValueDuplicate"},
                {"rule": "self.replicas != 12", "message": "fallback", "messageExpression": "self.replicas"}]}));
        let found = run(&schema, &widget(json!({"replicas": 12})), None);
        assert_eq!(
            found.errors,
            [
                "spec.replicas: Forbidden: replicas 12 is too many",
                "spec: Required value: mode is required",
                "spec: Duplicate value: \"object\"",
                "spec: Invalid value: \"object\": fallback",
            ]
        );
    }

    #[test]
    fn transition_rules_run_on_updates_only_and_correlate_map_list_items() {
        let schema = schema_with(json!({"type": "object", "properties": {
            "name": {"type": "string",
                "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "name is immutable"}]},
            "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                "items": {"type": "object", "properties": {"name": {"type": "string"}, "port": {"type": "integer"}},
                    "x-kubernetes-validations": [{"rule": "self.port >= oldSelf.port", "message": "ports only grow"}]}}}}));
        let old = widget(json!({"name": "a", "ports": [{"name": "http", "port": 80}]}));
        assert_eq!(run(&schema, &old, None), Findings::default());
        let renamed = widget(json!({"name": "b", "ports": [{"name": "web", "port": 1}, {"name": "http", "port": 70}]}));
        assert_eq!(
            run(&schema, &renamed, Some(&old)).errors,
            [
                "spec.name: Invalid value: \"string\": name is immutable",
                "spec.ports[1]: Invalid value: \"object\": ports only grow",
            ]
        );
    }

    #[test]
    fn optional_old_self_sees_creates_too() {
        let schema = schema_with(json!({"type": "object", "properties": {"v": {"type": "integer"}},
            "x-kubernetes-validations": [{"rule": "oldSelf.hasValue() || self.v == 1", "optionalOldSelf": true,
                "message": "starts at 1"}]}));
        let created = run(&schema, &widget(json!({"v": 2})), None);
        assert_eq!(created.errors, ["spec: Invalid value: \"object\": starts at 1"]);
        let old = widget(json!({"v": 1}));
        assert_eq!(run(&schema, &widget(json!({"v": 2})), Some(&old)), Findings::default());
    }

    #[test]
    fn unchanged_values_ratchet_to_warnings() {
        let schema = schema_with(json!({"type": "object", "properties": {
            "a": {"type": "string", "x-kubernetes-validations": [{"rule": "self.size() < 3", "message": "short"}]},
            "b": {"type": "integer"}}}));
        let old = widget(json!({"a": "long", "b": 1}));
        let found = run(&schema, &widget(json!({"a": "long", "b": 2})), Some(&old));
        assert!(found.errors.is_empty(), "{found:?}");
        assert_eq!(found.warnings, ["spec.a: Invalid value: \"string\": short"]);
        let found = run(&schema, &widget(json!({"a": "longer", "b": 2})), Some(&old));
        assert_eq!(found.errors, ["spec.a: Invalid value: \"string\": short"]);
    }

    #[test]
    fn runtime_errors_refuse_and_unimplemented_functions_warn() {
        let schema = schema_with(json!({"type": "object", "properties": {"a": {"type": "string"}, "t": {"type": "string"}},
            "x-kubernetes-validations": [
                {"rule": "self.missing == 1"},
                {"rule": "timestamp(self.t) > timestamp('2020-01-01T00:00:00Z')"}]}));
        let found = run(&schema, &widget(json!({"a": "x", "t": "2021-01-01T00:00:00Z"})), None);
        assert_eq!(
            found.errors,
            ["spec: Invalid value: \"object\": no such key: missing evaluating rule: self.missing == 1"]
        );
        assert_eq!(found.warnings.len(), 1, "{found:?}");
        assert!(
            found.warnings[0].starts_with("spec: x-kubernetes-validations rule \"timestamp(self.t)")
                && found.warnings[0].contains("was not evaluated"),
            "{found:?}"
        );
    }

    #[test]
    fn maps_and_lists_run_rules_per_element_with_escaped_names() {
        let schema = schema_with(json!({"type": "object", "properties": {
            "labels": {"type": "object", "additionalProperties": {"type": "string",
                "x-kubernetes-validations": [{"rule": "self != ''", "message": "empty"}]}},
            "tags": {"type": "array", "items": {"type": "string",
                "x-kubernetes-validations": [{"rule": "self.lowerAscii() == self", "message": "lowercase"}]}},
            "dash-name": {"type": "number"}},
            "x-kubernetes-validations": [{"rule": "self.dash__dash__name > 1.5", "message": "big"}]}));
        let found = run(
            &schema,
            &widget(json!({"labels": {"a": "", "b": "x"}, "tags": ["ok", "BAD"], "dash-name": 1})),
            None,
        );
        assert_eq!(
            found.errors,
            [
                "spec: Invalid value: \"object\": big",
                "spec.labels[a]: Invalid value: \"string\": empty",
                "spec.tags[1]: Invalid value: \"string\": lowercase",
            ]
        );
    }

    #[test]
    fn structural_errors_stop_the_rules() {
        let schema = schema_with(json!({"type": "object",
            "x-kubernetes-validations": [{"rule": "false"}]}));
        let rules = compile(&schema).unwrap_or_else(|| panic!("rules"));
        let found = check(&rules, &schema, &widget(json!({})), None, &[
            "spec.size: Required value".to_string(),
        ]);
        assert_eq!(
            found.errors,
            ["<nil>: Invalid value: \"null\": some validation rules were not checked because the object was invalid; correct the existing errors to complete validation"]
        );
    }

    #[test]
    fn crd_rules_are_checked_when_the_crd_is_written() {
        let version = |spec: Value| {
            json!({"name": "v1", "schema": {"openAPIV3Schema": schema_with(spec)}})
        };
        let mut errs = Vec::new();
        check_crd(
            &[version(json!({"type": "object", "properties": {
                "list": {"type": "array", "items": {"type": "string",
                    "x-kubernetes-validations": [{"rule": "self == oldSelf"}]}},
                "n": {"type": "integer", "x-kubernetes-validations": [
                    {"rule": "self >"},
                    {"rule": "frobnicate(self)"},
                    {"rule": " "},
                    {"rule": "self > 1", "reason": "Nope"},
                    {"rule": "self > 1", "optionalOldSelf": true}]},
                "o": {"type": "object", "properties": {"a": {"type": "string"}},
                    "x-kubernetes-validations": [{"rule": "true", "fieldPath": ".b"}]}}}))],
            &mut errs,
        );
        let at = "spec.validation.openAPIV3Schema.properties[spec].properties";
        let expected = [
            format!("{at}[list].items.x-kubernetes-validations[0].rule: Invalid value: \"self == oldSelf\": oldSelf cannot be used on the uncorrelatable portion of the schema within {at}[list].items"),
            format!("{at}[n].x-kubernetes-validations[1].rule: Invalid value: apiextensions.ValidationRule{{Rule:\"frobnicate(self)\", Message:\"\", MessageExpression:\"\", Reason:(*apiextensions.FieldValueErrorReason)(nil), FieldPath:\"\", OptionalOldSelf:(*bool)(nil)}}: compilation failed: ERROR: <input>:1:1: undeclared reference to 'frobnicate' (in container '')"),
            format!("{at}[n].x-kubernetes-validations[2].rule: Required value: rule is not specified"),
            format!("{at}[n].x-kubernetes-validations[3].reason: Unsupported value: \"Nope\": supported values: \"FieldValueDuplicate\", \"FieldValueForbidden\", \"FieldValueInvalid\", \"FieldValueRequired\""),
            format!("{at}[n].x-kubernetes-validations[4].optionalOldSelf: Invalid value: true: may not be set if oldSelf is not used in rule"),
            format!("{at}[o].x-kubernetes-validations[0].fieldPath: Invalid value: \".b\": fieldPath must be a valid path: does not refer to a valid field"),
        ];
        let syntax = errs
            .iter()
            .find(|e| e.contains("x-kubernetes-validations[0].rule") && e.contains("[n]"))
            .cloned()
            .unwrap_or_default();
        assert!(
            syntax.contains("Rule:\"self >\"") && syntax.contains("compilation failed: ERROR: <input>:1:"),
            "{errs:#?}"
        );
        for e in expected {
            assert!(errs.contains(&e), "missing {e}\nin {errs:#?}");
        }
        assert_eq!(errs.len(), 7, "{errs:#?}");
    }

    #[test]
    fn versions_with_their_own_schemas_are_reported_each() {
        let version = |name: &str, rule: &str| {
            json!({"name": name, "schema": {"openAPIV3Schema": {"type": "object",
                "x-kubernetes-validations": [{"rule": rule}]}}})
        };
        let mut errs = Vec::new();
        check_crd(&[version("v1", "true"), version("v2", "self.(")], &mut errs);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].starts_with("spec.versions[1].schema.openAPIV3Schema.x-kubernetes-validations[0].rule: Invalid value: "));
    }

    #[test]
    fn field_paths_follow_upstream_syntax() {
        let schema = json!({"type": "object", "properties": {
            "a": {"type": "object", "properties": {"b.c": {"type": "string"}}},
            "m": {"type": "object", "additionalProperties": {"type": "string"}}}});
        assert_eq!(valid_field_path(".a['b.c']", &schema), Ok("a.b.c".to_string()));
        assert_eq!(valid_field_path(".m.key", &schema), Ok("m[key]".to_string()));
        assert_eq!(
            valid_field_path(".a[0]", &schema),
            Err("expected single quoted string but got 0".to_string())
        );
        assert_eq!(
            valid_field_path("a", &schema),
            Err("expected [ or . but got: a".to_string())
        );
    }

    #[test]
    fn rules_compile_once_per_crd_revision() {
        let schema = schema_with(json!({"type": "object", "x-kubernetes-validations": [{"rule": "true"}]}));
        let crd = json!({"metadata": {"name": "widgets.example.com", "uid": "u1", "resourceVersion": "7"}});
        let first = rules_of(&crd, "v1", &schema).unwrap_or_else(|| panic!("rules"));
        let again = rules_of(&crd, "v1", &schema).unwrap_or_else(|| panic!("rules"));
        assert!(Arc::ptr_eq(&first, &again));
        assert!(rules_of(&crd, "v1", &json!({"type": "object"})).is_some(), "cached by revision");
        let plain = json!({"metadata": {"name": "plain.example.com", "uid": "u2", "resourceVersion": "1"}});
        assert!(rules_of(&plain, "v1", &json!({"type": "object"})).is_none());
    }

    #[test]
    fn escaping_follows_kubernetes() {
        assert_eq!(escape("foo-bar").as_deref(), Some("foo__dash__bar"));
        assert_eq!(escape("a.b/c").as_deref(), Some("a__dot__b__slash__c"));
        assert_eq!(escape("x__y").as_deref(), Some("x__underscores__y"));
        assert_eq!(escape("namespace").as_deref(), Some("__namespace__"));
        assert_eq!(escape("1abc"), None);
        assert_eq!(escape("has space"), None);
    }
}

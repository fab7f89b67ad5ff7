//! The `replacements` transformer: copy a field of one object into fields of others, exactly as
//! kustomize's `ReplacementTransformer` (`api/filters/replacement`, kustomize v5.5).
//!
//! The rules users see, all from upstream:
//! - a source is picked by exact group/version/kind/name/namespace against each object's current
//!   *and previous* ids (names before prefixes, suffixes and namespaces); it must match exactly one
//!   object; its field (`fieldPath`, default `metadata.name`) is looked up with exact `[k=v]`
//!   matching and must be present and non-empty;
//! - targets are picked the same way (every match, not one), minus `reject`s; label and
//!   annotation selectors filter too; in target paths `[k=v]` is an unanchored regular expression
//!   and `*` walks every list element;
//! - an existing scalar keeps its type (writing `"9090"` into `port: 80` gives the number 9090,
//!   writing 5 into `name: x` gives the string `"5"`); a field created by `options.create` is typed
//!   by the text written into it; maps and lists are replaced whole;
//! - `options.delimiter`/`index` pick a part of the source, and insert or replace a part of the
//!   target (a negative index prepends, one past the end appends).
//!
//! Invariant: no IO besides reading `path:` files through the [`FileLoader`] given.

use serde::Deserialize;
use serde_json::{Number, Value};

use crate::model::{ResId, ResMap, Resource};
use crate::render::field_path::{self, CreateKind, FieldPathError};
use crate::render::files::{FileLoader, LoadError};
use crate::render::types::{
    FieldOptions, ReplacementField, ReplacementSource, ReplacementTarget, Selector,
};

/// The field a source reads when it names none.
pub const DEFAULT_FIELD_PATH: &str = "metadata.name";

/// A replacement could not be loaded or applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplacementError {
    /// An entry has both `path:` and an inline source or targets.
    #[error("replacements[{index}]: cannot specify both path and inline replacement")]
    PathAndInline {
        /// Position in `replacements`.
        index: usize,
    },
    /// A `path:` file could not be read.
    #[error("replacements[{index}]: {source}")]
    Load {
        /// Position in `replacements`.
        index: usize,
        /// The loader's error (names the file).
        source: LoadError,
    },
    /// A `path:` file is not valid YAML or not replacements.
    #[error("replacements[{index}]: {path}: {cause}")]
    Parse {
        /// Position in `replacements`.
        index: usize,
        /// The file.
        path: String,
        /// What is wrong with it.
        cause: String,
    },
    /// A replacement lacks a source or targets.
    #[error("{name}: replacements must specify a source and at least one target")]
    Incomplete {
        /// Which replacement.
        name: String,
    },
    /// No object matches the source.
    #[error("{name}: nothing selected by {selector}")]
    NothingSelected {
        /// Which replacement.
        name: String,
        /// The source, spelled as kustomize spells it.
        selector: String,
    },
    /// More than one object matches the source.
    #[error("{name}: multiple matches for selector {selector}")]
    MultipleSources {
        /// Which replacement.
        name: String,
        /// The source, spelled as kustomize spells it.
        selector: String,
    },
    /// The source object lacks the field, or it is null or empty.
    #[error("{name}: fieldPath `{field_path}` is missing for replacement source {source_id}")]
    SourceFieldMissing {
        /// Which replacement.
        name: String,
        /// The field path.
        field_path: String,
        /// The source selector's id, spelled as kustomize spells it.
        source_id: String,
    },
    /// The source field path could not be walked.
    #[error("{name}: error looking up replacement source: {cause}")]
    SourceLookup {
        /// Which replacement.
        name: String,
        /// Why.
        cause: FieldPathError,
    },
    /// `options.delimiter` used on a map or a list.
    #[error("{name}: delimiter option can only be used with scalar nodes")]
    DelimiterOnNonScalar {
        /// Which replacement.
        name: String,
    },
    /// `options.index` outside the split source value.
    #[error("{name}: options.index {index} is out of bounds for value {value}")]
    IndexOutOfBounds {
        /// Which replacement.
        name: String,
        /// The index.
        index: i64,
        /// The source value.
        value: String,
    },
    /// A target without `select`.
    #[error("{name}: target must specify resources to select")]
    NoSelect {
        /// Which replacement.
        name: String,
    },
    /// A label or annotation selector could not be parsed.
    #[error("{name}: {cause}")]
    BadSelector {
        /// Which replacement.
        name: String,
        /// Why.
        cause: String,
    },
    /// A selected target lacks the field (and it was not to be created).
    #[error("{name}: {id}: unable to {verb} field \"{field_path}\" in replacement target")]
    TargetFieldMissing {
        /// Which replacement.
        name: String,
        /// The target object.
        id: String,
        /// `find` or `find or create`.
        verb: &'static str,
        /// The field path.
        field_path: String,
    },
    /// A target field path could not be walked.
    #[error("{name}: {id}: unable to {verb} field \"{field_path}\" in replacement target: {cause}")]
    TargetField {
        /// Which replacement.
        name: String,
        /// The target object.
        id: String,
        /// `find` or `find or create`.
        verb: &'static str,
        /// The field path.
        field_path: String,
        /// Why.
        cause: Box<FieldPathError>,
    },
    /// The written text cannot keep the target field's type (kustomize fails the same way
    /// when it prints the object).
    #[error("{name}: {id}: field \"{field_path}\": {cause}")]
    TypeMismatch {
        /// Which replacement.
        name: String,
        /// The target object.
        id: String,
        /// The field path.
        field_path: String,
        /// `cannot decode !!str `abc` as a !!int`.
        cause: String,
    },
}

/// One replacement: where the value comes from and where it goes.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Replacement {
    /// Where the value comes from.
    #[serde(default)]
    pub source: Option<ReplacementSource>,
    /// Where the value goes.
    #[serde(default)]
    pub targets: Vec<ReplacementTarget>,
}

/// The configured transformer: every replacement of one kustomization, in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReplacementTransformer {
    replacements: Vec<Replacement>,
}

/// Parses the text of a `path:` file (its first YAML document) into YAML-as-JSON.
pub type ParseYaml<'a> = &'a dyn Fn(&str) -> Result<Value, String>;

impl ReplacementTransformer {
    /// Reads a kustomization's `replacements`, loading `path:` entries (a list of replacements
    /// or a single one) through `loader` and parsing them with `parse`.
    pub fn from_fields(
        fields: &[ReplacementField],
        loader: &dyn FileLoader,
        parse: ParseYaml<'_>,
    ) -> Result<ReplacementTransformer, ReplacementError> {
        let mut replacements = Vec::new();
        for (index, field) in fields.iter().enumerate() {
            if field.path.is_empty() {
                replacements.push(Replacement {
                    source: field.source.clone(),
                    targets: field.targets.clone(),
                });
                continue;
            }
            if field.source.is_some() || !field.targets.is_empty() {
                return Err(ReplacementError::PathAndInline { index });
            }
            let text = loader
                .load(&field.path)
                .map_err(|source| ReplacementError::Load { index, source })?;
            let parse_error = |cause: String| ReplacementError::Parse {
                index,
                path: field.path.clone(),
                cause,
            };
            let value = parse(&text).map_err(parse_error)?;
            match value {
                Value::Array(_) => {
                    let list: Vec<Replacement> =
                        serde_json::from_value(value).map_err(|e| parse_error(e.to_string()))?;
                    replacements.extend(list);
                }
                Value::Object(_) => {
                    let one: Replacement =
                        serde_json::from_value(value).map_err(|e| parse_error(e.to_string()))?;
                    replacements.push(one);
                }
                other => {
                    return Err(parse_error(format!(
                        "unsupported replacement type encountered within replacement path: {}",
                        json_kind(&other)
                    )));
                }
            }
        }
        Ok(ReplacementTransformer { replacements })
    }

    /// A transformer with these replacements.
    pub fn new(replacements: Vec<Replacement>) -> ReplacementTransformer {
        ReplacementTransformer { replacements }
    }

    /// True when there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.replacements.is_empty()
    }

    /// Applies every replacement in order; later ones see the effect of earlier ones.
    pub fn apply(&self, resmap: &mut ResMap) -> Result<(), ReplacementError> {
        for (index, replacement) in self.replacements.iter().enumerate() {
            let name = format!("replacements[{index}]");
            let (Some(source), false) = (&replacement.source, replacement.targets.is_empty())
            else {
                return Err(ReplacementError::Incomplete { name });
            };
            let value = source_value(resmap, source, &name)?;
            for target in &replacement.targets {
                apply_target(resmap, &value, target, &name)?;
            }
        }
        Ok(())
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "invalid",
        Value::Bool(_) => "bool",
        Value::Number(_) => "float64",
        Value::String(_) => "string",
        Value::Array(_) => "slice",
        Value::Object(_) => "map",
    }
}

/// Kustomize's `ResId.String()`: `Kind.version.group/name.namespace` with placeholders.
fn resid_string(group: &str, version: &str, kind: &str, name: &str, namespace: &str) -> String {
    let or = |s: &str, d: &str| {
        if s.is_empty() {
            d.to_string()
        } else {
            s.to_string()
        }
    };
    format!(
        "{}.{}.{}/{}.{}",
        or(kind, "[noKind]"),
        or(version, "[noVer]"),
        or(group, "[noGrp]"),
        or(name, "[noName]"),
        or(namespace, "[noNs]")
    )
}

fn source_id_string(source: &ReplacementSource) -> String {
    resid_string(
        &source.group,
        &source.version,
        &source.kind,
        &source.name,
        &source.namespace,
    )
}

/// Kustomize's `SourceSelector.String()`, as printed before the field path is defaulted.
fn source_selector_string(source: &ReplacementSource) -> String {
    let mut parts = vec![source_id_string(source)];
    if !source.field_path.is_empty() {
        parts.push(source.field_path.clone());
    }
    if let Some(options) = &source.options
        && (!options.delimiter.is_empty() || options.create)
    {
        parts.push(format!(
            "{}({}), create={}",
            options.delimiter, options.index, options.create
        ));
    }
    parts.join(":")
}

/// A selector's id part: exact, optional group/version/kind/name/namespace.
struct IdSelector<'a> {
    group: &'a str,
    version: &'a str,
    kind: &'a str,
    name: &'a str,
    namespace: &'a str,
}

impl IdSelector<'_> {
    fn of_source(s: &ReplacementSource) -> IdSelector<'_> {
        IdSelector {
            group: &s.group,
            version: &s.version,
            kind: &s.kind,
            name: &s.name,
            namespace: &s.namespace,
        }
    }

    fn of_selector(s: &Selector) -> IdSelector<'_> {
        IdSelector {
            group: &s.group,
            version: &s.version,
            kind: &s.kind,
            name: &s.name,
            namespace: &s.namespace,
        }
    }

    fn is_empty(&self) -> bool {
        [
            self.group,
            self.version,
            self.kind,
            self.name,
            self.namespace,
        ]
        .iter()
        .all(|s| s.is_empty())
    }

    /// Kustomize's `ResId.IsSelectedBy`: namespaces compare by their effective value, so
    /// `default` selects objects without a namespace. (The ids kustomize builds here never
    /// know their kind to be cluster-scoped, so no kind is treated as such.)
    fn selects(&self, id: &ResId) -> bool {
        (self.name.is_empty() || self.name == id.name)
            && (self.namespace.is_empty()
                || defaulted_namespace(self.namespace) == defaulted_namespace(&id.namespace))
            && (self.group.is_empty() || self.group == id.gvk.group)
            && (self.version.is_empty() || self.version == id.gvk.version)
            && (self.kind.is_empty() || self.kind == id.gvk.kind)
    }
}

fn defaulted_namespace(namespace: &str) -> &str {
    if namespace.is_empty() {
        "default"
    } else {
        namespace
    }
}

/// The object's current id followed by its previous ones.
fn all_ids(resource: &Resource) -> Vec<ResId> {
    let mut ids = vec![resource.id()];
    ids.extend(resource.previous_ids.iter().cloned());
    ids
}

fn source_value(
    resmap: &ResMap,
    source: &ReplacementSource,
    name: &str,
) -> Result<Value, ReplacementError> {
    let selector = IdSelector::of_source(source);
    let mut matches = resmap
        .iter()
        .filter(|r| all_ids(r).iter().any(|id| selector.selects(id)));
    let Some(found) = matches.next() else {
        return Err(ReplacementError::NothingSelected {
            name: name.to_string(),
            selector: source_selector_string(source),
        });
    };
    if matches.next().is_some() {
        return Err(ReplacementError::MultipleSources {
            name: name.to_string(),
            selector: source_selector_string(source),
        });
    }
    let field_path = if source.field_path.is_empty() {
        DEFAULT_FIELD_PATH
    } else {
        source.field_path.as_str()
    };
    let object = Value::Object(found.object.clone());
    let value = field_path::lookup(&object, &field_path::split(field_path)).map_err(|cause| {
        ReplacementError::SourceLookup {
            name: name.to_string(),
            cause,
        }
    })?;
    let value = match value {
        Some(v) if !is_nil_or_empty(v) => v.clone(),
        _ => {
            return Err(ReplacementError::SourceFieldMissing {
                name: name.to_string(),
                field_path: field_path.to_string(),
                source_id: source_id_string(source),
            });
        }
    };
    refine_source(value, source.options.as_ref(), name)
}

fn is_nil_or_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(l) => l.is_empty(),
        _ => false,
    }
}

/// Applies the source's `delimiter`/`index`: the value becomes one part of the split text,
/// keeping the source's type for what it then holds.
fn refine_source(
    value: Value,
    options: Option<&FieldOptions>,
    name: &str,
) -> Result<Value, ReplacementError> {
    let Some(options) = options.filter(|o| !o.delimiter.is_empty()) else {
        return Ok(value);
    };
    let Some(text) = field_path::scalar_text(&value) else {
        return Err(ReplacementError::DelimiterOnNonScalar {
            name: name.to_string(),
        });
    };
    let parts: Vec<&str> = text.split(options.delimiter.as_str()).collect();
    let part = usize::try_from(options.index)
        .ok()
        .and_then(|i| parts.get(i));
    let Some(part) = part else {
        return Err(ReplacementError::IndexOutOfBounds {
            name: name.to_string(),
            index: options.index,
            value: text.clone(),
        });
    };
    Ok(retag_like(&value, part))
}

/// A scalar holding `text` with the type `like` has; text that cannot have that type keeps
/// its text as a string (kustomize would keep the tag and fail only when printing).
fn retag_like(like: &Value, text: &str) -> Value {
    match like {
        Value::String(_) => Value::String(text.to_string()),
        _ => match resolve_plain(text) {
            v @ (Value::Number(_) | Value::Bool(_) | Value::Null) if same_tag(&v, like) => v,
            _ => Value::String(text.to_string()),
        },
    }
}

fn same_tag(a: &Value, b: &Value) -> bool {
    tag_of(a) == tag_of(b)
}

fn tag_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "!!null",
        Value::Bool(_) => "!!bool",
        Value::Number(n) if n.is_f64() => "!!float",
        Value::Number(_) => "!!int",
        Value::String(_) => "!!str",
        Value::Array(_) => "!!seq",
        Value::Object(_) => "!!map",
    }
}

fn apply_target(
    resmap: &mut ResMap,
    value: &Value,
    target: &ReplacementTarget,
    name: &str,
) -> Result<(), ReplacementError> {
    let Some(select) = &target.select else {
        return Err(ReplacementError::NoSelect {
            name: name.to_string(),
        });
    };
    let select_id = IdSelector::of_selector(select);
    let default_paths = [DEFAULT_FIELD_PATH.to_string()];
    let field_paths: &[String] = if target.field_paths.is_empty() {
        &default_paths
    } else {
        &target.field_paths
    };
    for resource in resmap.iter_mut() {
        if !selected_by_labels_and_annotations(resource, select, &target.reject, name)? {
            continue;
        }
        let ids = all_ids(resource);
        let rejected = target.reject.iter().any(|reject| {
            let reject_id = IdSelector::of_selector(reject);
            !reject_id.is_empty() && ids.iter().any(|id| reject_id.selects(id))
        });
        if rejected || !ids.iter().any(|id| select_id.selects(id)) {
            continue;
        }
        for field_path in field_paths {
            write_target(resource, value, field_path, target.options.as_ref(), name)?;
        }
    }
    Ok(())
}

fn selected_by_labels_and_annotations(
    resource: &Resource,
    select: &Selector,
    rejects: &[Selector],
    name: &str,
) -> Result<bool, ReplacementError> {
    if !matches_label_and_annotation_selectors(resource, select, name)? {
        return Ok(false);
    }
    for reject in rejects {
        if reject.label_selector.is_empty() && reject.annotation_selector.is_empty() {
            continue;
        }
        if matches_label_and_annotation_selectors(resource, reject, name)? {
            return Ok(false);
        }
    }
    Ok(true)
}

fn matches_label_and_annotation_selectors(
    resource: &Resource,
    selector: &Selector,
    name: &str,
) -> Result<bool, ReplacementError> {
    let bad = |cause: String| ReplacementError::BadSelector {
        name: name.to_string(),
        cause,
    };
    let annotations =
        label_selector::matches(&selector.annotation_selector, &resource.annotations())
            .map_err(bad)?;
    let labels =
        label_selector::matches(&selector.label_selector, &resource.labels()).map_err(bad)?;
    Ok(annotations && labels)
}

fn write_target(
    resource: &mut Resource,
    value: &Value,
    field_path: &str,
    options: Option<&FieldOptions>,
    name: &str,
) -> Result<(), ReplacementError> {
    let create = options.filter(|o| o.create).map(|_| CreateKind::of(value));
    let verb = if create.is_some() {
        "find or create"
    } else {
        "find"
    };
    let id = resource.id().to_string();
    let mut object = Value::Object(std::mem::take(&mut resource.object));
    let found = field_path::find_targets(&mut object, &field_path::split(field_path), create);
    let result = match found {
        Err(cause) => Err(ReplacementError::TargetField {
            name: name.to_string(),
            id: id.clone(),
            verb,
            field_path: field_path.to_string(),
            cause: Box::new(cause),
        }),
        Ok(targets) if targets.is_empty() => Err(ReplacementError::TargetFieldMissing {
            name: name.to_string(),
            id: id.clone(),
            verb,
            field_path: field_path.to_string(),
        }),
        Ok(targets) => targets.iter().try_for_each(|target| {
            let Some(field) = field_path::get_mut(&mut object, &target.steps) else {
                return Ok(());
            };
            set_field(field, target.created_scalar, value, options).map_err(|e| match e {
                SetError::DelimiterOnNonScalar => ReplacementError::DelimiterOnNonScalar {
                    name: name.to_string(),
                },
                SetError::TypeMismatch {
                    found,
                    text,
                    wanted,
                } => ReplacementError::TypeMismatch {
                    name: name.to_string(),
                    id: id.clone(),
                    field_path: field_path.to_string(),
                    cause: format!("cannot decode {found} `{text}` as a {wanted}"),
                },
            })
        }),
    };
    if let Value::Object(map) = object {
        resource.object = map;
    }
    result
}

enum SetError {
    DelimiterOnNonScalar,
    TypeMismatch {
        found: &'static str,
        text: String,
        wanted: &'static str,
    },
}

/// Kustomize's `setFieldValue`: scalars take the new text and keep their type; a scalar the
/// walk just created takes the type the text implies; maps and lists are replaced.
fn set_field(
    field: &mut Value,
    created_scalar: bool,
    value: &Value,
    options: Option<&FieldOptions>,
) -> Result<(), SetError> {
    let field_is_scalar = is_scalar_value(field);
    // A map or list written over a scalar leaves only its (empty) scalar text.
    let mut text = field_path::scalar_text(value).unwrap_or_default();
    if let Some(options) = options.filter(|o| !o.delimiter.is_empty()) {
        if !field_is_scalar {
            return Err(SetError::DelimiterOnNonScalar);
        }
        let current = if created_scalar {
            String::new()
        } else {
            field_path::scalar_text(field).unwrap_or_default()
        };
        let mut parts: Vec<&str> = current.split(options.delimiter.as_str()).collect();
        match usize::try_from(options.index) {
            Err(_) => parts.insert(0, &text),
            Ok(i) if i >= parts.len() => parts.push(&text),
            Ok(i) => parts[i] = &text,
        }
        text = parts.join(&options.delimiter);
    } else if !field_is_scalar {
        *field = value.clone();
        return Ok(());
    }
    *field = if created_scalar {
        resolve_plain(&text)
    } else {
        retag_existing(field, &text)?
    };
    Ok(())
}

fn is_scalar_value(value: &Value) -> bool {
    !matches!(value, Value::Object(_) | Value::Array(_))
}

/// `text` decoded with the tag of the existing scalar `field`, as kustomize's printer would.
fn retag_existing(field: &Value, text: &str) -> Result<Value, SetError> {
    if let Value::String(_) = field {
        return Ok(Value::String(text.to_string()));
    }
    let resolved = resolve_plain(text);
    let wanted = tag_of(field);
    match (&resolved, field) {
        (Value::Number(n), Value::Number(f)) if f.is_f64() => Ok(n
            .as_f64()
            .and_then(Number::from_f64)
            .map(Value::Number)
            .unwrap_or(resolved)),
        (Value::Number(n), Value::Number(_)) if !n.is_f64() => Ok(resolved),
        (Value::Bool(_), Value::Bool(_)) | (Value::Null, Value::Null) => Ok(resolved),
        _ => Err(SetError::TypeMismatch {
            found: tag_of(&resolved),
            text: text.to_string(),
            wanted,
        }),
    }
}

/// How a plain (untagged, unquoted) YAML scalar resolves, as go-yaml v3 decodes it.
pub(crate) fn resolve_plain(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" | "-.inf" | "-.Inf" | "-.INF"
        | ".nan" | ".NaN" | ".NAN" => return Value::String(text.to_string()),
        _ => {}
    }
    let first = text.as_bytes()[0];
    if !(first.is_ascii_digit() || matches!(first, b'-' | b'+' | b'.')) {
        return Value::String(text.to_string());
    }
    let plain = text.replace('_', "");
    if let Some(n) = parse_int(&plain) {
        return Value::Number(n);
    }
    let float_shape = regex_float(&plain);
    if float_shape
        && let Ok(f) = plain.parse::<f64>()
        && let Some(n) = Number::from_f64(f)
    {
        return Value::Number(n);
    }
    Value::String(text.to_string())
}

fn parse_int(plain: &str) -> Option<Number> {
    let (negative, digits) = match plain.as_bytes().first() {
        Some(b'-') => (true, &plain[1..]),
        Some(b'+') => (false, &plain[1..]),
        _ => (false, plain),
    };
    let (radix, body) = if let Some(rest) = digits.strip_prefix("0x") {
        (16, rest)
    } else if let Some(rest) = digits.strip_prefix("0o") {
        (8, rest)
    } else if let Some(rest) = digits.strip_prefix("0b") {
        (2, rest)
    } else if digits.len() > 1 && digits.starts_with('0') {
        // Go's ParseInt with base 0 reads a leading 0 as octal.
        (8, &digits[1..])
    } else {
        (10, digits)
    };
    if body.is_empty() || body.starts_with(['+', '-']) {
        return None;
    }
    let magnitude = u64::from_str_radix(body, radix).ok()?;
    if negative {
        let value = 0i64.checked_sub_unsigned(magnitude)?;
        Some(Number::from(value))
    } else if let Ok(value) = i64::try_from(magnitude) {
        Some(Number::from(value))
    } else {
        Some(Number::from(magnitude))
    }
}

/// go-yaml's `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`.
fn regex_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
        i += 1;
    }
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    if i < b.len() && b[i] == b'.' {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    } else {
        if digits(&mut i) == 0 {
            return false;
        }
        if i < b.len() && b[i] == b'.' {
            i += 1;
            digits(&mut i);
        }
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

mod label_selector {
    //! Kubernetes label selectors, for `labelSelector` and `annotationSelector`.
    //!
    //! The grammar of `k8s.io/apimachinery/pkg/labels.Parse`: requirements separated by `,`,
    //! each `key`, `!key`, `key=v`, `key==v`, `key!=v`, `key in (a,b)`, `key notin (a,b)`,
    //! `key>n` or `key<n`, with keys and values checked as Kubernetes label keys and values.

    #[derive(Debug, PartialEq)]
    enum Op {
        Exists,
        DoesNotExist,
        In,
        NotIn,
        Greater,
        Less,
    }

    #[derive(Debug, PartialEq)]
    enum Token {
        Word(String),
        Comma,
        Not,
        Equals,
        DoubleEquals,
        NotEquals,
        Greater,
        Less,
        Open,
        Close,
    }

    fn tokenize(selector: &str) -> Vec<Token> {
        let chars: Vec<char> = selector.chars().collect();
        let mut tokens = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            let next = chars.get(i + 1).copied();
            let (token, width) = match (c, next) {
                (c, _) if c.is_whitespace() => {
                    i += 1;
                    continue;
                }
                (',', _) => (Token::Comma, 1),
                ('!', Some('=')) => (Token::NotEquals, 2),
                ('!', _) => (Token::Not, 1),
                ('=', Some('=')) => (Token::DoubleEquals, 2),
                ('=', _) => (Token::Equals, 1),
                ('>', _) => (Token::Greater, 1),
                ('<', _) => (Token::Less, 1),
                ('(', _) => (Token::Open, 1),
                (')', _) => (Token::Close, 1),
                _ => {
                    let start = i;
                    while i < chars.len()
                        && !chars[i].is_whitespace()
                        && !",!=<>()".contains(chars[i])
                    {
                        i += 1;
                    }
                    tokens.push(Token::Word(chars[start..i].iter().collect()));
                    continue;
                }
            };
            tokens.push(token);
            i += width;
        }
        tokens
    }

    fn valid_name(name: &str) -> bool {
        let bytes = name.as_bytes();
        !bytes.is_empty()
            && bytes.len() <= 63
            && bytes[0].is_ascii_alphanumeric()
            && bytes[bytes.len() - 1].is_ascii_alphanumeric()
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    }

    fn valid_key(key: &str) -> bool {
        match key.split_once('/') {
            Some((prefix, name)) => {
                !prefix.is_empty()
                    && prefix.len() <= 253
                    && prefix.split('.').all(|part| {
                        let b = part.as_bytes();
                        !b.is_empty()
                            && b.len() <= 63
                            && b[0].is_ascii_alphanumeric()
                            && b[b.len() - 1].is_ascii_alphanumeric()
                            && b.iter()
                                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
                    })
                    && valid_name(name)
            }
            None => valid_name(key),
        }
    }

    fn valid_value(value: &str) -> bool {
        value.is_empty() || valid_name(value)
    }

    struct Requirement {
        key: String,
        op: Op,
        values: Vec<String>,
    }

    fn parse(selector: &str) -> Result<Vec<Requirement>, String> {
        let tokens = tokenize(selector);
        let mut requirements = Vec::new();
        let mut i = 0;
        let word = |i: usize| match tokens.get(i) {
            Some(Token::Word(w)) => Some(w.clone()),
            _ => None,
        };
        let fail =
            |what: &str| format!("unable to parse requirement: {what} in selector {selector:?}");
        while i < tokens.len() {
            let negated = tokens[i] == Token::Not;
            if negated {
                i += 1;
            }
            let key = word(i).ok_or_else(|| fail("expected a key"))?;
            if !valid_key(&key) {
                return Err(fail(&format!("invalid label key {key:?}")));
            }
            i += 1;
            let at_end = matches!(tokens.get(i), None | Some(Token::Comma));
            let (op, values) = if negated {
                if !at_end {
                    return Err(fail("`!key` takes no operator"));
                }
                (Op::DoesNotExist, Vec::new())
            } else if at_end {
                (Op::Exists, Vec::new())
            } else {
                let op_token = &tokens[i];
                i += 1;
                match op_token {
                    Token::Equals
                    | Token::DoubleEquals
                    | Token::NotEquals
                    | Token::Greater
                    | Token::Less => {
                        // A missing value is the empty value (`a=` selects `a: ""`).
                        let value = word(i).unwrap_or_default();
                        if word(i).is_some() {
                            i += 1;
                        }
                        let op = match op_token {
                            Token::NotEquals => Op::NotIn,
                            Token::Greater => Op::Greater,
                            Token::Less => Op::Less,
                            _ => Op::In,
                        };
                        if matches!(op, Op::Greater | Op::Less) && value.parse::<i64>().is_err() {
                            return Err(fail(&format!(
                                "for 'Gt', 'Lt' operators, the value must be an integer: {value:?}"
                            )));
                        }
                        (op, vec![value])
                    }
                    Token::Word(w) if w == "in" || w == "notin" => {
                        let op = if w == "in" { Op::In } else { Op::NotIn };
                        if tokens.get(i) != Some(&Token::Open) {
                            return Err(fail("expected '('"));
                        }
                        i += 1;
                        let mut values = Vec::new();
                        loop {
                            match tokens.get(i) {
                                Some(Token::Word(v)) => {
                                    values.push(v.clone());
                                    i += 1;
                                }
                                Some(Token::Comma) if values.is_empty() => {
                                    values.push(String::new())
                                }
                                _ => {}
                            }
                            match tokens.get(i) {
                                Some(Token::Comma) => i += 1,
                                Some(Token::Close) => {
                                    i += 1;
                                    break;
                                }
                                _ => return Err(fail("expected ',' or ')'")),
                            }
                        }
                        (op, values)
                    }
                    _ => return Err(fail("expected an operator")),
                }
            };
            if let Some(bad) = values
                .iter()
                .find(|v| !matches!(op, Op::Greater | Op::Less) && !valid_value(v))
            {
                return Err(fail(&format!("invalid label value {bad:?}")));
            }
            requirements.push(Requirement { key, op, values });
            match tokens.get(i) {
                None => {}
                Some(Token::Comma) => {
                    i += 1;
                    if i == tokens.len() {
                        return Err(fail("trailing ','"));
                    }
                }
                Some(_) => return Err(fail("expected ','")),
            }
        }
        Ok(requirements)
    }

    /// True when `selector` (empty: everything) matches `labels`.
    pub fn matches(selector: &str, labels: &[(String, String)]) -> Result<bool, String> {
        let requirements = parse(selector)?;
        Ok(requirements.iter().all(|r| {
            let value = labels
                .iter()
                .find(|(k, _)| *k == r.key)
                .map(|(_, v)| v.as_str());
            match (&r.op, value) {
                (Op::Exists, v) => v.is_some(),
                (Op::DoesNotExist, v) => v.is_none(),
                (Op::In, Some(v)) => r.values.iter().any(|x| x == v),
                (Op::In, None) => false,
                (Op::NotIn, Some(v)) => !r.values.iter().any(|x| x == v),
                (Op::NotIn, None) => true,
                (Op::Greater | Op::Less, None) => false,
                (op, Some(v)) => {
                    let (Ok(have), Some(Ok(want))) =
                        (v.parse::<i64>(), r.values.first().map(|w| w.parse::<i64>()))
                    else {
                        return false;
                    };
                    if *op == Op::Greater {
                        have > want
                    } else {
                        have < want
                    }
                }
            }
        }))
    }

    #[cfg(test)]
    mod tests {
        use super::matches;

        fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        }

        #[test]
        fn kubernetes_selector_grammar() {
            let l = labels(&[("app", "web"), ("tier", "front"), ("n", "5"), ("empty", "")]);
            let yes = [
                "",
                "app",
                "app=web",
                "app==web",
                "app!=db",
                "!db",
                "app in (web,api)",
                "tier notin (back)",
                "n>3",
                "n<9",
                "app=web, tier=front",
                "empty=",
                "missing!=x",
            ];
            for s in yes {
                assert_eq!(matches(s, &l), Ok(true), "{s}");
            }
            let no = [
                "db",
                "app=db",
                "!app",
                "app in (api)",
                "tier notin (front)",
                "n>5",
                "missing>1",
            ];
            for s in no {
                assert_eq!(matches(s, &l), Ok(false), "{s}");
            }
            for bad in [
                "app=we b",
                "app in web",
                "a,",
                "=x",
                "n>x",
                "app=web tier=front",
            ] {
                assert!(matches(bad, &l).is_err(), "{bad}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn resmap(objects: Value) -> ResMap {
        let Value::Array(list) = objects else {
            panic!("test input must be a list")
        };
        list.into_iter()
            .map(|o| match o {
                Value::Object(map) => Resource::new(map),
                _ => panic!("test objects must be maps"),
            })
            .collect()
    }

    fn replacements(spec: Value) -> ReplacementTransformer {
        let list: Vec<Replacement> = serde_json::from_value(spec).expect("test spec");
        ReplacementTransformer::new(list)
    }

    fn objects(resmap: &ResMap) -> Value {
        Value::Array(resmap.iter().map(Resource::to_value).collect())
    }

    #[test]
    fn existing_scalars_keep_their_type_and_created_ones_take_the_texts() {
        // Expected values produced by `kubectl kustomize` (v5.5) on the same input.
        let mut rm = resmap(json!([
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "src"},
             "data": {"port": "9090"}},
            {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
             "spec": {"strval": "abc", "intval": 5,
                      "template": {"spec": {"containers": [
                          {"name": "app", "ports": [{"containerPort": 80}]},
                          {"name": "myapp2", "ports": [{"containerPort": 81}]}]}}}}
        ]));
        replacements(json!([
            {"source": {"kind": "ConfigMap", "name": "src", "fieldPath": "data.port"},
             "targets": [{"select": {"kind": "Deployment"}, "options": {"create": true},
                          "fieldPaths": ["spec.template.spec.containers.[name=app].ports.0.containerPort",
                                         "spec.strval", "spec.created", "metadata.labels.x"]}]},
            {"source": {"kind": "Deployment", "name": "d", "fieldPath": "spec.intval"},
             "targets": [{"select": {"kind": "Deployment"}, "fieldPaths": ["spec.strval"]}]}
        ]))
        .apply(&mut rm)
        .unwrap();
        let deployment = &objects(&rm)[1];
        assert_eq!(
            deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"],
            json!(9090)
        );
        assert_eq!(
            deployment["spec"]["template"]["spec"]["containers"][1]["ports"][0]["containerPort"],
            json!(9090)
        );
        assert_eq!(deployment["spec"]["strval"], json!("5"));
        assert_eq!(deployment["spec"]["created"], json!(9090));
        assert_eq!(deployment["metadata"]["labels"]["x"], json!(9090));
    }

    #[test]
    fn delimiter_inserts_or_replaces_parts() {
        let mut rm = resmap(json!([
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "src"},
             "data": {"word": "hello", "url": "a.b.c"}},
            {"apiVersion": "apps/v1", "kind": "Deployment",
             "metadata": {"name": "d", "annotations": {"csv": "a,b"}}}
        ]));
        replacements(json!([
            {"source": {"kind": "ConfigMap", "fieldPath": "data.word"},
             "targets": [{"select": {"kind": "Deployment"},
                          "options": {"create": true, "delimiter": ",", "index": -1},
                          "fieldPaths": ["metadata.annotations.csv", "metadata.annotations.newcsv"]}]},
            {"source": {"kind": "ConfigMap", "fieldPath": "data.url",
                        "options": {"delimiter": ".", "index": 1}},
             "targets": [{"select": {"kind": "Deployment"},
                          "options": {"delimiter": ",", "index": 1},
                          "fieldPaths": ["metadata.annotations.csv"]}]}
        ]))
        .apply(&mut rm)
        .unwrap();
        let annotations = &objects(&rm)[1]["metadata"]["annotations"];
        assert_eq!(annotations["csv"], json!("hello,b,b"));
        assert_eq!(annotations["newcsv"], json!("hello,"));
    }

    #[test]
    fn sources_must_match_exactly_one_object() {
        let mut rm = resmap(json!([
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}},
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b"}}
        ]));
        let err = replacements(json!([
            {"source": {"kind": "ConfigMap"}, "targets": [{"select": {"name": "a"}}]}
        ]))
        .apply(&mut rm)
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "replacements[0]: multiple matches for selector ConfigMap.[noVer].[noGrp]/[noName].[noNs]"
        );
        let err = replacements(json!([
            {"source": {"kind": "Secret", "name": "x", "fieldPath": "data.k"},
             "targets": [{"select": {"name": "a"}}]}
        ]))
        .apply(&mut rm)
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "replacements[0]: nothing selected by Secret.[noVer].[noGrp]/x.[noNs]:data.k"
        );
    }

    #[test]
    fn previous_names_select_and_reject() {
        let mut renamed = Resource::new(
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "pre-original-name"},
                   "spec": {"x": "old"}})
            .as_object()
            .cloned()
            .unwrap_or_default(),
        );
        renamed.previous_ids.push(ResId {
            gvk: crate::model::Gvk::from_api_version("apps/v1", "Deployment"),
            name: "original-name".into(),
            namespace: String::new(),
        });
        let mut rm: ResMap = vec![renamed].into_iter().collect();
        rm.append(Resource::new(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"v": "new"}})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        ))
        .unwrap();
        let spec = |reject: Value| {
            json!([{"source": {"kind": "ConfigMap", "fieldPath": "data.v"},
                    "targets": [{"select": {"name": "original-name"}, "reject": reject,
                                 "fieldPaths": ["spec.x"]}]}])
        };
        replacements(spec(json!([{"name": "pre-original-name"}])))
            .apply(&mut rm)
            .unwrap();
        assert_eq!(objects(&rm)[0]["spec"]["x"], json!("old"));
        replacements(spec(json!([]))).apply(&mut rm).unwrap();
        assert_eq!(objects(&rm)[0]["spec"]["x"], json!("new"));
    }

    #[test]
    fn missing_target_fields_are_errors_unless_created() {
        let mut rm = resmap(json!([
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}
        ]));
        let err = replacements(json!([
            {"source": {"kind": "ConfigMap"}, "targets": [{"select": {"name": "a"}, "fieldPaths": ["data.x"]}]}
        ]))
        .apply(&mut rm)
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "replacements[0]: ~G_v1_ConfigMap|~X|a: unable to find field \"data.x\" in replacement target"
        );
    }

    #[test]
    fn path_files_hold_one_replacement_or_a_list() {
        let files: std::collections::BTreeMap<String, String> = [
            ("one.yaml", "source: {kind: ConfigMap}\ntargets:\n- select: {kind: Secret}\n"),
            ("two.yaml", "- source: {kind: A}\n  targets: [{select: {kind: B}}]\n- source: {kind: C}\n  targets: [{select: {kind: D}}]\n"),
            ("bad.yaml", "just text\n"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let field = |path: &str| ReplacementField {
            path: path.into(),
            ..ReplacementField::default()
        };
        let parse = |text: &str| -> Result<Value, String> {
            let docs = crate::yaml::parse_documents(text).map_err(|e| e.to_string())?;
            Ok(docs.into_iter().next().unwrap_or(Value::Null))
        };
        let loaded = ReplacementTransformer::from_fields(
            &[field("one.yaml"), field("two.yaml")],
            &files,
            &parse,
        )
        .unwrap();
        assert_eq!(loaded.replacements.len(), 3);
        assert_eq!(
            loaded.replacements[2]
                .source
                .as_ref()
                .map(|s| s.kind.as_str()),
            Some("C")
        );
        assert!(ReplacementTransformer::from_fields(&[field("bad.yaml")], &files, &parse).is_err());
        let both = ReplacementField {
            path: "one.yaml".into(),
            source: Some(ReplacementSource::default()),
            ..ReplacementField::default()
        };
        assert_eq!(
            ReplacementTransformer::from_fields(&[both], &files, &parse)
                .unwrap_err()
                .to_string(),
            "replacements[0]: cannot specify both path and inline replacement"
        );
    }

    #[test]
    fn plain_scalars_resolve_like_go_yaml() {
        assert_eq!(resolve_plain("8080"), json!(8080));
        assert_eq!(resolve_plain("-12"), json!(-12));
        assert_eq!(resolve_plain("0x1F"), json!(31));
        assert_eq!(resolve_plain("1.5"), json!(1.5));
        assert_eq!(resolve_plain("true"), json!(true));
        assert_eq!(resolve_plain(""), Value::Null);
        assert_eq!(resolve_plain("1.2.3"), json!("1.2.3"));
        assert_eq!(resolve_plain("abc"), json!("abc"));
    }
}

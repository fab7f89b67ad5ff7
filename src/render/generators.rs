//! `configMapGenerator` and `secretGenerator`: ConfigMaps and Secrets made from literals,
//! files and env files, and the content hash kustomize appends to their names.
//!
//! The rules follow kustomize v5.5 (`api/kv`, `api/internal/generators`, `api/hasher`):
//! env files first, then literals, then files; keys may not repeat; data that is not UTF-8
//! goes to a ConfigMap's `binaryData`; Secret values are base64 wrapped at 70 columns; the
//! hash is the first ten hex digits of a SHA-256 over a Go-`encoding/json` rendering of
//! kind, name, data (and type for Secrets), with some digits swapped for letters.
//!
//! Invariant: no IO except through the [`DataSource`] given.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::model::{GeneratorBehavior, Resource};
use crate::render::types::{GeneratorArgs, GeneratorOptions};

/// Where generator files come from (a kustomization directory, with its load restrictor).
pub trait DataSource {
    /// The bytes of the file at `path`, relative to the kustomization.
    fn load_bytes(&self, path: &str) -> Result<Vec<u8>, String>;
}

/// A generator could not produce its object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GeneratorError {
    /// A generator has no `name`.
    #[error("{kind}Generator: a {lower} must have a name", lower = kind.to_lowercase())]
    MissingName {
        /// `ConfigMap` or `Secret`.
        kind: String,
    },
    /// A literal is not `KEY=VALUE`.
    #[error("{kind} {name}: invalid literal source {source_text}, expected key=value")]
    BadLiteral {
        /// `ConfigMap` or `Secret`.
        kind: String,
        /// Generator name.
        name: String,
        /// The literal as written.
        source_text: String,
    },
    /// A file source is malformed (`=path`, `key=`, two `=`).
    #[error("{kind} {name}: {cause}")]
    BadFileSource {
        /// `ConfigMap` or `Secret`.
        kind: String,
        /// Generator name.
        name: String,
        /// What is wrong.
        cause: String,
    },
    /// A file could not be read.
    #[error("{kind} {name}: {cause}")]
    Load {
        /// `ConfigMap` or `Secret`.
        kind: String,
        /// Generator name.
        name: String,
        /// The loader's message (names the file).
        cause: String,
    },
    /// An env file has a line that is not UTF-8.
    #[error("{kind} {name}: {path}: line {line} has invalid utf8 bytes")]
    EnvNotUtf8 {
        /// `ConfigMap` or `Secret`.
        kind: String,
        /// Generator name.
        name: String,
        /// The env file.
        path: String,
        /// Line number (1-based).
        line: usize,
    },
    /// The same key appears twice in one generator.
    #[error("{lower} {name} illegally repeats the key `{key}`", lower = kind.to_lowercase())]
    RepeatedKey {
        /// `ConfigMap` or `Secret`.
        kind: String,
        /// Generator name.
        name: String,
        /// The key.
        key: String,
    },
    /// A generated object of another kind was asked for a name hash.
    #[error("name hash of kind {kind} is not supported yet")]
    HashUnsupported {
        /// The kind.
        kind: String,
    },
}

/// One key and its raw value.
struct Pair {
    key: String,
    value: Vec<u8>,
}

/// Merges `generatorOptions` into a generator's own options (its own labels/annotations win).
pub fn merge_options(
    local: Option<&GeneratorOptions>,
    global: Option<&GeneratorOptions>,
) -> Option<GeneratorOptions> {
    let Some(global) = global else {
        return local.cloned();
    };
    let mut merged = local.cloned().unwrap_or_default();
    for (k, v) in &global.labels {
        merged.labels.entry(k.clone()).or_insert_with(|| v.clone());
    }
    for (k, v) in &global.annotations {
        merged
            .annotations
            .entry(k.clone())
            .or_insert_with(|| v.clone());
    }
    merged.disable_name_suffix_hash |= global.disable_name_suffix_hash;
    merged.immutable |= global.immutable;
    Some(merged)
}

/// Builds the ConfigMap one `configMapGenerator` entry describes.
pub fn make_config_map(
    source: &dyn DataSource,
    args: &GeneratorArgs,
    global: Option<&GeneratorOptions>,
) -> Result<Resource, GeneratorError> {
    make("ConfigMap", source, args, global)
}

/// Builds the Secret one `secretGenerator` entry describes.
pub fn make_secret(
    source: &dyn DataSource,
    args: &GeneratorArgs,
    global: Option<&GeneratorOptions>,
) -> Result<Resource, GeneratorError> {
    make("Secret", source, args, global)
}

fn make(
    kind: &str,
    source: &dyn DataSource,
    args: &GeneratorArgs,
    global: Option<&GeneratorOptions>,
) -> Result<Resource, GeneratorError> {
    if args.name.is_empty() {
        return Err(GeneratorError::MissingName { kind: kind.into() });
    }
    let pairs = load_pairs(kind, source, args)?;
    let mut data = BTreeMap::new();
    for pair in pairs {
        if data.contains_key(&pair.key) {
            return Err(GeneratorError::RepeatedKey {
                kind: kind.into(),
                name: args.name.clone(),
                key: pair.key,
            });
        }
        data.insert(pair.key, pair.value);
    }

    let mut object = Map::new();
    object.insert("apiVersion".into(), Value::String("v1".into()));
    object.insert("kind".into(), Value::String(kind.into()));
    let mut metadata = Map::new();
    metadata.insert("name".into(), Value::String(args.name.clone()));
    if !args.namespace.is_empty() {
        metadata.insert("namespace".into(), Value::String(args.namespace.clone()));
    }
    object.insert("metadata".into(), Value::Object(metadata));

    if kind == "Secret" {
        let secret_type = if args.secret_type.is_empty() {
            "Opaque"
        } else {
            &args.secret_type
        };
        object.insert("type".into(), Value::String(secret_type.into()));
        let encoded: Map<String, Value> = data
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(encode_base64_wrapped(v))))
            .collect();
        object.insert("data".into(), Value::Object(encoded));
    } else {
        let mut text = Map::new();
        let mut binary = Map::new();
        for (k, v) in data {
            match String::from_utf8(v) {
                Ok(s) => {
                    text.insert(k, Value::String(s));
                }
                Err(e) => {
                    binary.insert(k, Value::String(encode_base64_wrapped(e.as_bytes())));
                }
            }
        }
        if !text.is_empty() {
            object.insert("data".into(), Value::Object(text));
        }
        if !binary.is_empty() {
            object.insert("binaryData".into(), Value::Object(binary));
        }
    }

    let options = merge_options(args.options.as_ref(), global);
    let mut resource = Resource::new(object);
    if let Some(options) = &options {
        let meta = resource.metadata_mut();
        if !options.labels.is_empty() {
            let labels = meta
                .entry("labels")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(labels) = labels {
                for (k, v) in &options.labels {
                    labels.insert(k.clone(), Value::String(v.clone()));
                }
            }
        }
        if !options.annotations.is_empty() {
            let annotations = meta
                .entry("annotations")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(annotations) = annotations {
                for (k, v) in &options.annotations {
                    annotations.insert(k.clone(), Value::String(v.clone()));
                }
            }
        }
        if options.immutable {
            resource
                .object
                .insert("immutable".into(), Value::Bool(true));
        }
    }
    let needs_hash = !options.as_ref().is_some_and(|o| o.disable_name_suffix_hash);
    let behavior = match args.behavior.as_str() {
        "merge" | "replace" | "create" => args.behavior.clone(),
        _ => "unspecified".into(),
    };
    resource.generator = Some(GeneratorBehavior {
        behavior,
        needs_hash,
    });
    Ok(resource)
}

fn load_pairs(
    kind: &str,
    source: &dyn DataSource,
    args: &GeneratorArgs,
) -> Result<Vec<Pair>, GeneratorError> {
    let load_error = |cause: String| GeneratorError::Load {
        kind: kind.into(),
        name: args.name.clone(),
        cause,
    };
    let mut pairs = Vec::new();
    let env_files = args
        .envs
        .iter()
        .chain((!args.env.is_empty()).then_some(&args.env));
    for path in env_files {
        let content = source.load_bytes(path).map_err(load_error)?;
        pairs.extend(env_pairs(kind, &args.name, path, &content)?);
    }
    for literal in &args.literals {
        let bad = || GeneratorError::BadLiteral {
            kind: kind.into(),
            name: args.name.clone(),
            source_text: literal.clone(),
        };
        let (key, value) = literal.split_once('=').ok_or_else(bad)?;
        if key.is_empty() {
            return Err(bad());
        }
        pairs.push(Pair {
            key: key.into(),
            value: remove_quotes(value).as_bytes().to_vec(),
        });
    }
    for file_source in &args.files {
        let (key, path) =
            parse_file_source(file_source).map_err(|cause| GeneratorError::BadFileSource {
                kind: kind.into(),
                name: args.name.clone(),
                cause,
            })?;
        let content = source.load_bytes(&path).map_err(load_error)?;
        pairs.push(Pair {
            key,
            value: content,
        });
    }
    Ok(pairs)
}

/// `path` (key = base name) or `key=path`, as kustomize's `ParseFileSource`.
fn parse_file_source(source: &str) -> Result<(String, String), String> {
    match source.matches('=').count() {
        0 => {
            let base = source
                .trim_end_matches('/')
                .rsplit('/')
                .next()
                .unwrap_or(source);
            Ok((base.to_string(), source.to_string()))
        }
        1 if source.starts_with('=') => Err(format!(
            "missing key name for file path {:?} in source {source:?}",
            &source[1..]
        )),
        1 if source.ends_with('=') => Err(format!(
            "missing file path for key name {:?} in source {source:?}",
            &source[..source.len() - 1]
        )),
        1 => {
            let (k, p) = source.split_once('=').unwrap_or((source, ""));
            Ok((k.to_string(), p.to_string()))
        }
        _ => Err(format!(
            "source {source:?} key name or file path contains '='"
        )),
    }
}

/// Strips one pair of matching surrounding quotes.
fn remove_quotes(value: &str) -> &str {
    let bytes = value.as_bytes();
    if bytes.len() >= 2
        && bytes[0] == bytes[bytes.len() - 1]
        && (bytes[0] == b'"' || bytes[0] == b'\'')
    {
        &value[1..value.len() - 1]
    } else {
        value
    }
}

/// `KEY=VALUE` lines; blank lines and `#` comments skipped; a BOM on the first line dropped;
/// a line without `=` gives an empty value. Values are kept verbatim (no trimming).
fn env_pairs(
    kind: &str,
    name: &str,
    path: &str,
    content: &[u8],
) -> Result<Vec<Pair>, GeneratorError> {
    let mut pairs = Vec::new();
    // Go's bufio.Scanner splits on '\n' and drops one trailing '\r'.
    let mut lines: Vec<&[u8]> = content.split(|b| *b == b'\n').collect();
    if lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    for (index, raw) in lines.into_iter().enumerate() {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let line = std::str::from_utf8(raw).map_err(|_| GeneratorError::EnvNotUtf8 {
            kind: kind.into(),
            name: name.into(),
            path: path.into(),
            line: index + 1,
        })?;
        let line = if index == 0 {
            line.strip_prefix('\u{feff}').unwrap_or(line)
        } else {
            line
        };
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line.split_once('=').unwrap_or((line, ""));
        pairs.push(Pair {
            key: key.into(),
            value: value.as_bytes().to_vec(),
        });
    }
    Ok(pairs)
}

/// Standard base64, broken into 70-column lines each ending in `\n` once the text is at
/// least 70 characters long (kyaml's `encodeBase64`).
pub fn encode_base64_wrapped(data: &[u8]) -> String {
    const LINE: usize = 70;
    let encoded = base64_std(data);
    if encoded.len() < LINE {
        return encoded;
    }
    let mut out = String::with_capacity(encoded.len() + encoded.len() / LINE + 1);
    for chunk in encoded.as_bytes().chunks(LINE) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out
}

fn base64_std(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(ALPHABET[(n >> 18) as usize & 63] as char);
        out.push(ALPHABET[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 {
            ALPHABET[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if chunk.len() > 2 {
            ALPHABET[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

/// kustomize's name hash of a ConfigMap or Secret as it stands now.
pub fn content_hash(object: &Map<String, Value>) -> Result<String, GeneratorError> {
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let field = |name: &str| -> Value {
        match object.get(name) {
            None | Some(Value::Null) => Value::String(String::new()),
            Some(Value::Object(m)) => Value::Object(m.clone()),
            Some(Value::String(s)) => Value::String(s.clone()),
            // A scalar that is not a string is hashed by its YAML text.
            Some(other) => Value::String(other.to_string()),
        }
    };
    // Upstream looks the name up with `Lookup("metadata/name")`, which reads one field
    // literally named `metadata/name`, finds nothing and hashes an empty name. Renaming a
    // generated object therefore never changes its hash; we keep that.
    let name = "";
    let mut encoded = BTreeMap::new();
    encoded.insert("kind", Value::String(kind.into()));
    encoded.insert("name", Value::String(name.into()));
    encoded.insert("data", field("data"));
    match kind {
        "ConfigMap" => {
            if let Some(Value::Object(b)) = object.get("binaryData") {
                encoded.insert("binaryData", Value::Object(b.clone()));
            }
        }
        "Secret" => {
            encoded.insert("type", field("type"));
            if let Some(Value::Object(s)) = object.get("stringData") {
                encoded.insert("stringData", Value::Object(s.clone()));
            }
        }
        other => return Err(GeneratorError::HashUnsupported { kind: other.into() }),
    }
    let mut json = String::new();
    go_json_object(&mut json, encoded.iter().map(|(k, v)| (*k, v)));
    Ok(encode_hash(&Sha256::digest(json.as_bytes())))
}

/// The first ten hex digits with `0 1 3 a e` swapped for `g h k m t` (no vowels, no digits
/// that read as letters), as Kubernetes' kubectl hash.
fn encode_hash(digest: &[u8]) -> String {
    let hex: String = digest.iter().take(5).map(|b| format!("{b:02x}")).collect();
    hex.chars()
        .map(|c| match c {
            '0' => 'g',
            '1' => 'h',
            '3' => 'k',
            'a' => 'm',
            'e' => 't',
            other => other,
        })
        .collect()
}

/// Go's `encoding/json` of a map: keys sorted by bytes, HTML characters escaped.
fn go_json_object<'a>(out: &mut String, entries: impl Iterator<Item = (&'a str, &'a Value)>) {
    let mut sorted: Vec<(&str, &Value)> = entries.collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    out.push('{');
    for (i, (k, v)) in sorted.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        go_json_string(out, k);
        out.push(':');
        go_json_value(out, v);
    }
    out.push('}');
}

fn go_json_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => go_json_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                go_json_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => go_json_object(out, map.iter().map(|(k, v)| (k.as_str(), v))),
    }
}

fn go_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Files(BTreeMap<&'static str, &'static [u8]>);

    impl DataSource for Files {
        fn load_bytes(&self, path: &str) -> Result<Vec<u8>, String> {
            self.0
                .get(path)
                .map(|b| b.to_vec())
                .ok_or_else(|| format!("{path}: no such file"))
        }
    }

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn hashes_match_kustomize() {
        // Values from kustomize's own hasher tests (api/hasher/hasher_test.go).
        let empty = object(json!({"kind": "ConfigMap", "metadata": {"name": ""}}));
        assert_eq!(content_hash(&empty).ok().as_deref(), Some("6ct58987ht"));
        let one =
            object(json!({"kind": "ConfigMap", "metadata": {"name": ""}, "data": {"one": ""}}));
        assert_eq!(content_hash(&one).ok().as_deref(), Some("9g67k2htb6"));
        let three = object(json!({"kind": "ConfigMap", "metadata": {"name": ""},
            "data": {"two": 2, "one": "", "three": 3}}));
        assert_eq!(content_hash(&three).ok().as_deref(), Some("7757f9kkct"));
        let secret = object(
            json!({"kind": "Secret", "type": "my-type", "metadata": {"name": ""},
            "data": {"one": ""}}),
        );
        assert_eq!(content_hash(&secret).ok().as_deref(), Some("74bd68bm66"));
    }

    #[test]
    fn literals_files_and_envs() {
        let files = Files(BTreeMap::from([
            (
                "app.env",
                b"# comment\nDB=postgres\n\n  PORT=5432\nEMPTY\n" as &[u8],
            ),
            ("conf/app.ini", b"a=1\n" as &[u8]),
            ("bin.dat", b"\xff\xfe" as &[u8]),
        ]));
        let args = GeneratorArgs {
            name: "cfg".into(),
            literals: vec!["greeting=\"hello\"".into()],
            files: vec!["conf/app.ini".into(), "raw=bin.dat".into()],
            envs: vec!["app.env".into()],
            ..GeneratorArgs::default()
        };
        let cm = make_config_map(&files, &args, None).map(|r| Value::Object(r.object));
        assert_eq!(
            cm.ok(),
            Some(
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"},
                "data": {"DB": "postgres", "EMPTY": "", "PORT": "5432", "app.ini": "a=1\n",
                    "greeting": "hello"},
                "binaryData": {"raw": "//4="}})
            )
        );
    }

    #[test]
    fn repeated_keys_are_refused() {
        let args = GeneratorArgs {
            name: "cfg".into(),
            literals: vec!["a=1".into(), "a=2".into()],
            ..GeneratorArgs::default()
        };
        let err = make_config_map(&Files(BTreeMap::new()), &args, None).err();
        assert_eq!(
            err.map(|e| e.to_string()).as_deref(),
            Some("configmap cfg illegally repeats the key `a`")
        );
    }

    #[test]
    fn secrets_are_base64_wrapped() {
        assert_eq!(encode_base64_wrapped(b"admin"), "YWRtaW4=");
        let long = encode_base64_wrapped(&[b'x'; 60]);
        assert!(long.ends_with('\n'));
        assert_eq!(long.lines().next().map(str::len), Some(70));
    }

    #[test]
    fn options_local_wins() {
        let local = GeneratorOptions {
            labels: BTreeMap::from([("a".into(), "local".into())]),
            ..GeneratorOptions::default()
        };
        let global = GeneratorOptions {
            labels: BTreeMap::from([("a".into(), "global".into()), ("b".into(), "g".into())]),
            disable_name_suffix_hash: true,
            ..GeneratorOptions::default()
        };
        let merged = merge_options(Some(&local), Some(&global)).unwrap_or_default();
        assert_eq!(merged.labels.get("a").map(String::as_str), Some("local"));
        assert_eq!(merged.labels.get("b").map(String::as_str), Some("g"));
        assert!(merged.disable_name_suffix_hash);
    }
}

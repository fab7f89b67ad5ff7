//! YAML in and out, with kustomize's exact semantics.
//!
//! - [`parse_documents`] / [`parse_manifests`] read a stream as kustomize's kyaml does
//!   (go-yaml v3 rules, plus the quirks of kyaml's encode/decode round trip), into
//!   `serde_json::Value`s; [`parse_kustomization`] reads a kustomization file as
//!   `sigs.k8s.io/yaml` does (go-yaml v2 rules);
//! - [`to_yaml`] / [`to_yaml_stream`] print values byte for byte as `kustomize build` does
//!   (`json.Marshal`, then go-yaml v2's encoder and libyaml's emitter).
//!
//! Files: `parse` builds values from yaml-rust2's events, `block` reads block scalars with
//! libyaml's rules, `resolve` holds go-yaml's plain-scalar rules (v2 and v3), `emit` is the
//! printer, `goformat` Go's float and time text.
//!
//! Decisions: `.inf` and `.nan` are an error when read (JSON cannot hold them, and kustomize
//! fails on them when it prints); timestamps become the text Go's `json.Marshal` gives a
//! `time.Time` (`2001-12-14` → `2001-12-14T00:00:00Z`); duplicate keys are an error, as in
//! kubectl, except in kustomization files, where the later one wins.
//!
//! Invariants: no file access; every input is bounded ([`MAX_INPUT_BYTES`], [`MAX_DEPTH`],
//! an alias-expansion budget), so hostile text fails with a positioned [`Error`].

mod block;
mod emit;
mod goformat;
mod parse;
mod resolve;

use serde_json::Value;

pub use parse::{MAX_DEPTH, MAX_INPUT_BYTES};

/// A YAML text that cannot be read, with the 1-based position of the problem.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}, column {column}: {kind}")]
pub struct Error {
    /// 1-based line of the offending token or node.
    pub line: usize,
    /// 1-based column of the offending token or node.
    pub column: usize,
    /// What is wrong there.
    pub kind: ErrorKind,
}

impl Error {
    pub(crate) fn at(line: usize, column: usize, kind: ErrorKind) -> Self {
        Error { line, column, kind }
    }
}

/// The cause of an [`Error`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ErrorKind {
    /// The text is not well-formed YAML (bad indentation, tabs, unclosed quotes, …); the
    /// scanner's own description.
    #[error("{0}")]
    Syntax(String),
    /// A control character (other than tab and line breaks) appears in the input.
    #[error("control characters are not allowed (U+{code:04X})")]
    ControlCharacter {
        /// The character's code point.
        code: u32,
    },
    /// Two keys of one mapping are the same (go-yaml v3 rejects this, so kustomize does too).
    #[error("mapping key {key:?} already defined at line {first_line}")]
    DuplicateKey {
        /// The repeated key.
        key: String,
        /// Line of its first occurrence.
        first_line: usize,
    },
    /// Aliases expand to far more nodes than the document holds (an alias bomb).
    #[error("document contains excessive aliasing")]
    ExcessiveAliasing,
    /// An alias names an anchor that is not defined earlier in its document.
    #[error("unknown anchor referenced")]
    UnknownAnchor,
    /// An alias refers to the node that contains it.
    #[error("anchor value contains itself")]
    RecursiveAlias,
    /// Sequences and mappings nest deeper than [`MAX_DEPTH`].
    #[error("nesting exceeds the maximum depth of {limit}")]
    TooDeep {
        /// The depth limit.
        limit: usize,
    },
    /// The input is larger than [`MAX_INPUT_BYTES`].
    #[error("input of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Size of the input in bytes.
        size: usize,
        /// The size limit in bytes.
        limit: usize,
    },
    /// A mapping or sequence is used as a mapping key.
    #[error("mapping keys must be scalars")]
    ComplexKey,
    /// A nested mapping of a Kubernetes object has a key that is not a string (`1:`, `true:`);
    /// kustomize cannot marshal such an object.
    #[error(
        "mapping key `{key}` is not a string (json: unsupported type: map[interface {{}}]interface {{}})"
    )]
    NonStringKey {
        /// The key's text.
        key: String,
    },
    /// `.inf` or `.nan`, which JSON (and so kustomize's output) cannot hold.
    #[error("`{text}` is not a finite number (json: unsupported value)")]
    NonFiniteFloat {
        /// The scalar's text.
        text: String,
    },
    /// A scalar does not fit its explicit tag (`!!int abc`).
    #[error("{0}")]
    Tag(String),
    /// A `!!binary` scalar that is not valid base64.
    #[error("!!binary value contains invalid base64 data")]
    InvalidBinary,
    /// The value of a merge key `<<` is neither a mapping nor a sequence of mappings.
    #[error("map merge requires map or sequence of maps as the value")]
    MergeNotMap,
}

/// Parses every document of a YAML stream; empty and null documents are skipped, other
/// non-mapping documents are returned as they are.
pub fn parse_documents(text: &str) -> Result<Vec<Value>, Error> {
    parse::parse_stream(text, parse::Mode::Documents)
}

/// Parses Kubernetes manifests as kustomize holds them: like [`parse_documents`], but every
/// value under the top-level `metadata.annotations` becomes a string holding the scalar's text
/// (`a: 1.0` stays `"1.0"`), and nested mappings with non-string keys are an error.
pub fn parse_manifests(text: &str) -> Result<Vec<Value>, Error> {
    parse::parse_stream(text, parse::Mode::Manifests)
}

/// [`parse_manifests`], with each document the JSON pointers of its map fields written with
/// no value at all (`key:`, as opposed to `key: null` or `key: ~`). kyaml keeps the difference
/// in its nodes and a strategic merge drops only the former; the JSON values cannot hold it.
pub fn parse_manifests_tracked(text: &str) -> Result<Vec<(Value, Vec<String>)>, Error> {
    parse::parse_stream_tracked(text, parse::Mode::Manifests)
}

/// Parses a kustomization file as kustomize does (`sigs.k8s.io/yaml`, go-yaml v2 rules): YAML
/// 1.1 booleans (`yes`, `on`, even as keys: `n:` is the key `"false"`), timestamps stay text,
/// a repeated key overrides the earlier one instead of being an error. Only the first
/// document counts.
pub fn parse_kustomization(text: &str) -> Result<Option<Value>, Error> {
    parse_sigs_yaml(text)
}

/// Parses text that kustomize reads with `sigs.k8s.io/yaml` rather than kyaml, with the same
/// rules as [`parse_kustomization`]: JSON 6902 patches (`yaml.YAMLToJSON` of the patch file or
/// inline `patch:`), and builtin plugin configurations (`transformers:`/`generators:` files).
pub fn parse_sigs_yaml(text: &str) -> Result<Option<Value>, Error> {
    let documents = parse::parse_stream(text, parse::Mode::Kustomization)?;
    Ok(documents.into_iter().next())
}

/// The text Go's `encoding/json` gives a number (`1.0` → `1`, `1e21` → `1e+21`), for JSON
/// output and for scalars kustomize turns into strings after a JSON round trip (annotations
/// of the items of a `List` it does not unwrap while reading).
pub fn go_json_number(number: &serde_json::Number) -> String {
    match number.as_f64() {
        Some(f) if !number.is_i64() && !number.is_u64() => goformat::format_float_json(f),
        _ => number.to_string(),
    }
}

/// Prints one document exactly as kustomize prints one resource (keys in go-yaml v2's order,
/// its quoting and folding); the text ends with a line break.
pub fn to_yaml(value: &Value) -> String {
    emit::document(value)
}

/// Prints documents joined by `---` lines, as `kustomize build` prints a resource list.
pub fn to_yaml_stream(values: &[Value]) -> String {
    let mut out = String::new();
    for (index, value) in values.iter().enumerate() {
        if index > 0 {
            out.push_str("---\n");
        }
        out.push_str(&emit::document(value));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Fixtures are inputs we wrote and the text `kubectl kustomize` (v5.5) printed for them.
    fn check_fixture(input: &str, expected: &str) {
        let values = parse_manifests(input).unwrap_or_else(|e| panic!("parse: {e}"));
        let printed = to_yaml_stream(&values);
        similar_asserts(expected, &printed);
    }

    fn similar_asserts(expected: &str, actual: &str) {
        if expected != actual {
            let diff = similar::TextDiff::from_lines(expected, actual);
            panic!("output differs from kustomize's:\n{}", diff.unified_diff());
        }
    }

    #[test]
    fn strings_print_as_kustomize_prints_them() {
        check_fixture(
            include_str!("testdata/strings.in.yaml"),
            include_str!("testdata/strings.out.yaml"),
        );
    }

    #[test]
    fn collections_and_numbers_print_as_kustomize_prints_them() {
        check_fixture(
            include_str!("testdata/structure.in.yaml"),
            include_str!("testdata/structure.out.yaml"),
        );
    }

    #[test]
    fn scalars_resolve_as_kustomize_resolves_them() {
        check_fixture(
            include_str!("testdata/resolve.in.yaml"),
            include_str!("testdata/resolve.out.yaml"),
        );
    }

    #[test]
    fn block_scalars_read_as_kustomize_reads_them() {
        check_fixture(
            include_str!("testdata/blocks.in.yaml"),
            include_str!("testdata/blocks.out.yaml"),
        );
    }

    #[test]
    fn yaml_syntax_variety_reads_as_kustomize_reads_it() {
        check_fixture(
            include_str!("testdata/syntax.in.yaml"),
            include_str!("testdata/syntax.out.yaml"),
        );
    }

    fn emitted(value: Value) -> String {
        to_yaml(&value)
    }

    #[test]
    fn small_documents() {
        assert_eq!(emitted(json!({})), "{}\n");
        assert_eq!(emitted(json!([])), "[]\n");
        assert_eq!(emitted(json!({"a": null})), "a: null\n");
        assert_eq!(
            emitted(json!({"n": 1, "y": true})),
            "\"n\": 1\n\"y\": true\n"
        );
        assert_eq!(
            emitted(json!({"a": [1, [2, 3]]})),
            "a:\n- 1\n- - 2\n  - 3\n"
        );
        assert_eq!(emitted(json!([{"a": 1, "b": 2}])), "- a: 1\n  b: 2\n");
        assert_eq!(emitted(json!({"a": 1.0})), "a: 1\n");
        assert_eq!(emitted(json!({"a": 1e21})), "a: 1e+21\n");
        assert_eq!(emitted(json!({"a": 1234567.5})), "a: 1.2345675e+06\n");
        assert_eq!(emitted(json!({"a": "x\ny"})), "a: |-\n  x\n  y\n");
    }

    #[test]
    fn numbers_as_go_json_prints_them() {
        assert_eq!(
            go_json_number(&serde_json::Number::from_f64(1.0).unwrap()),
            "1"
        );
        assert_eq!(go_json_number(&serde_json::Number::from(-3)), "-3");
        assert_eq!(
            go_json_number(&serde_json::Number::from(u64::MAX)),
            "18446744073709551615"
        );
    }

    #[test]
    fn stream_joins_documents() {
        let docs = [json!({"a": 1}), json!({"b": 2})];
        assert_eq!(to_yaml_stream(&docs), "a: 1\n---\nb: 2\n");
        assert_eq!(to_yaml_stream(&[]), "");
    }

    #[test]
    fn documents_skip_empty_and_null() {
        let docs = parse_documents("---\n---\n~\n---\na: 1\n---\n- x\n---\nplain\n").unwrap();
        assert_eq!(docs, vec![json!({"a": 1}), json!(["x"]), json!("plain")]);
    }

    #[test]
    fn documents_keep_non_string_keys_as_text() {
        let docs = parse_documents("a:\n  1: x\n  true: y\n").unwrap();
        assert_eq!(docs, vec![json!({"a": {"1": "x", "true": "y"}})]);
        let err = parse_manifests("kind: A\ndata:\n  1: x\n").unwrap_err();
        assert_eq!((err.line, err.column), (3, 3));
    }

    #[test]
    fn labels_keep_types_annotations_keep_text() {
        let docs = parse_manifests("metadata:\n  labels: {a: 1}\n  annotations: {a: 1.0, b: ~}\n")
            .unwrap();
        assert_eq!(
            docs,
            vec![json!({"metadata": {"labels": {"a": 1}, "annotations": {"a": "1.0", "b": "~"}}})]
        );
        let docs = parse_manifests("metadata:\n  name: x\n  annotations: {}\n").unwrap();
        assert_eq!(docs, vec![json!({"metadata": {"name": "x"}})]);
    }

    #[test]
    fn single_list_items_are_resources() {
        let text = "kind: List\nitems:\n- kind: A\n  metadata:\n    annotations:\n      a: 0x10\n";
        let docs = parse_manifests(text).unwrap();
        assert_eq!(
            docs[0]["items"][0]["metadata"]["annotations"]["a"],
            json!("0x10")
        );
    }

    #[test]
    fn kustomization_files_follow_go_yaml_v2() {
        // Checked with kubectl kustomize: the later key wins, `yes` is a boolean (so a string
        // field rejects it), a date stays the text it was; the key `n` means false.
        let text = "namePrefix: a-\nnamePrefix: b-\ncommonAnnotations:\n  when: 2001-12-14\n  \
                    flag: yes\n  x: 0o17\n  o: 0777\n  n: key\n";
        let value = parse_kustomization(text).unwrap();
        assert_eq!(
            value,
            Some(json!({
                "namePrefix": "b-",
                "commonAnnotations": {
                    "when": "2001-12-14", "flag": true, "x": 15, "o": 511, "false": "key"
                }
            }))
        );
        assert_eq!(
            parse_kustomization("1: a\ntrue: b\n0x10: c\n").unwrap(),
            Some(json!({"1": "a", "true": "b", "16": "c"}))
        );
        assert_eq!(parse_kustomization("# nothing\n").unwrap(), None);
    }

    fn error_of(text: &str) -> Error {
        match parse_documents(text) {
            Ok(v) => panic!("expected an error, got {v:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn duplicate_keys_are_rejected_as_kubectl_does() {
        let err = error_of("data:\n  a: 1\n  a: 2\n");
        assert_eq!(
            err.to_string(),
            "line 3, column 3: mapping key \"a\" already defined at line 2"
        );
    }

    #[test]
    fn syntax_errors_name_their_position() {
        assert_eq!((error_of("a:\n\tb: c\n").line), 2);
        let err = error_of("a: \"x\n");
        assert!(
            err.to_string().contains("unexpected end of stream"),
            "{err}"
        );
        assert_eq!(error_of("a: b\n   c: d\n").line, 2);
        let err = error_of("a: b\u{7f}\n");
        assert_eq!((err.line, err.column), (1, 5));
    }

    #[test]
    fn explicit_tags_that_do_not_fit_are_errors() {
        let err = error_of("a: !!int abc\n");
        assert_eq!(
            err.kind,
            ErrorKind::Tag("cannot decode !!str `abc` as a !!int".into())
        );
        assert_eq!(
            error_of("a: !!binary '%%%'\n").kind,
            ErrorKind::InvalidBinary
        );
        assert_eq!(error_of("a: .inf\n").line, 1);
    }

    #[test]
    fn alias_bomb_fails_fast() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for level in 1..=9 {
            let prev = level - 1;
            let refs = vec![format!("*a{prev}"); 10].join(", ");
            text.push_str(&format!("a{level}: &a{level} [{refs}]\n"));
        }
        let start = std::time::Instant::now();
        let err = error_of(&text);
        assert_eq!(err.kind, ErrorKind::ExcessiveAliasing);
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn modest_aliasing_is_fine() {
        let docs =
            parse_documents("base: &b {x: 1}\nuse: *b\nmerged:\n  <<: *b\n  y: 2\n").unwrap();
        assert_eq!(
            docs,
            vec![json!({"base": {"x": 1}, "use": {"x": 1}, "merged": {"y": 2, "x": 1}})]
        );
    }

    #[test]
    fn merge_keys_follow_go_yaml_v3() {
        // Explicit keys win; earlier maps of a merge sequence win over later ones.
        let docs = parse_documents("m:\n  <<: [{a: 1, b: 1}, {b: 2, c: 2}]\n  a: 0\n").unwrap();
        assert_eq!(docs, vec![json!({"m": {"a": 0, "b": 1, "c": 2}})]);
        assert_eq!(error_of("m:\n  <<: 1\n").kind, ErrorKind::MergeNotMap);
    }

    #[test]
    fn deep_nesting_is_rejected() {
        // Block nesting reaches our own limit.
        let mut text = String::new();
        for depth in 0..=MAX_DEPTH {
            text.push_str(&" ".repeat(depth));
            text.push_str("a:\n");
        }
        assert!(matches!(error_of(&text).kind, ErrorKind::TooDeep { .. }));
        // yaml-rust2 stops deep flow nesting itself, earlier.
        let depth = MAX_DEPTH + 1;
        let flow = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        assert!(matches!(error_of(&flow).kind, ErrorKind::Syntax(_)));
        let ok = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert!(parse_documents(&ok).is_ok());
    }

    #[test]
    fn huge_input_is_rejected() {
        let text = "#".repeat(MAX_INPUT_BYTES + 1);
        assert!(matches!(error_of(&text).kind, ErrorKind::TooLarge { .. }));
    }

    #[test]
    fn recursive_alias_is_rejected() {
        assert_eq!(error_of("a: &x [*x]\n").kind, ErrorKind::RecursiveAlias);
    }

    #[test]
    fn quoted_continuation_lines_need_no_extra_indentation() {
        // go-yaml accepts continuation lines at the key's own indentation; yaml-rust2 does not.
        let docs = parse_documents("m:\n  a: 's\n\n  t'\n  b: \"x\n  y\"\n").unwrap();
        assert_eq!(docs, vec![json!({"m": {"a": "s\nt", "b": "x y"}})]);
    }

    #[test]
    fn anchors_do_not_cross_documents() {
        let err = error_of("a: &x 1\n---\nb: *x\n");
        assert!(
            matches!(err.kind, ErrorKind::UnknownAnchor | ErrorKind::Syntax(_)),
            "{err}"
        );
    }

    #[test]
    fn only_a_lone_list_has_its_items_read_as_resources() {
        let list = "kind: List\nitems:\n- metadata:\n    annotations: {a: 1.0}\n";
        let lone = parse_manifests(list).unwrap();
        assert_eq!(
            lone[0]["items"][0]["metadata"]["annotations"]["a"],
            json!("1.0")
        );
        let two = parse_manifests(&format!("{list}---\nkind: B\n")).unwrap();
        assert_eq!(
            two[0]["items"][0]["metadata"]["annotations"]["a"],
            json!(1.0)
        );
        assert_eq!(two[1], json!({"kind": "B"}));
    }
}

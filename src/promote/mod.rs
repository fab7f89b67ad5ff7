//! `promote`: carry what was verified in one environment to the next — the `images:` of a
//! kustomization by default, plus the rules of `reconcile.yaml`'s `promotion:` (copy files
//! between environment folders, set YAML paths from the source).
//!
//! Invariant: edits are minimal and byte-preserving ([`edit`]): only the changed scalars
//! change; comments, key order, quoting, indentation, blank lines and a missing final newline
//! stay. Mutable tags (`latest`, none) are refused. This module computes the edits; writing
//! and committing belong to the caller.

pub mod edit;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::review::deps::kustomization_file;
use crate::source::{Fs, FsError};
use edit::{EditError, Node, Splice, format_scalar};

/// The image fields carried, in the order they are written.
const IMAGE_FIELDS: [&str; 3] = ["newName", "newTag", "digest"];

/// A promotion rule of `reconcile.yaml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PromotionRule {
    /// Source environment folder (relative to reconcile.yaml).
    pub from: String,
    /// Target environment folder.
    pub to: String,
    /// Carry the `images:` of the source kustomization (default true).
    #[serde(default = "yes")]
    pub images: bool,
    /// Files copied from the source folder to the target folder (paths relative to both).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub copy: Vec<String>,
    /// Scalars copied from a file of the source folder to the same file of the target.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub set: Vec<SetRule>,
}

fn yes() -> bool {
    true
}

/// Set YAML paths of one file from the source environment's copy of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetRule {
    /// The file, relative to both environment folders.
    pub file: String,
    /// Dotted paths to scalars (`app.image.tag`, `images.0.newTag`).
    pub paths: Vec<String>,
}

/// A promotion could not be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A folder holds no kustomization.
    #[error("{}: no kustomization.yaml", dir.display())]
    NoKustomization {
        /// The folder.
        dir: PathBuf,
    },
    /// A file could not be read.
    #[error("{0}")]
    Read(#[from] FsError),
    /// A file could not be edited.
    #[error("{}: {source}", file.display())]
    Edit {
        /// The file.
        file: PathBuf,
        /// Why.
        source: EditError,
    },
    /// An image of the source is not pinned.
    #[error("{}: image {image} has the mutable tag {tag:?}: pin a version (or a digest) before promoting it", file.display())]
    MutableTag {
        /// The source kustomization.
        file: PathBuf,
        /// The image name.
        image: String,
        /// The tag (`latest`, or empty when none).
        tag: String,
    },
    /// A YAML path of a `set` rule names nothing.
    #[error("{}: {path}: {why}", file.display())]
    Path {
        /// The file.
        file: PathBuf,
        /// The dotted path.
        path: String,
        /// What is wrong.
        why: String,
    },
}

/// One change a promotion makes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    /// The file changed (absolute).
    pub file: PathBuf,
    /// What changed: `image NAME newTag`, `copy version.yml`, `set app.image.tag`.
    pub what: String,
    /// The value before (absent: added).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    /// The value after (absent: removed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

impl Change {
    /// One line: `image nginx newTag: 1.0 → 1.1`.
    pub fn line(&self) -> String {
        match (&self.before, &self.after) {
            (Some(b), Some(a)) => format!("{}: {b} → {a}", self.what),
            (None, Some(a)) => format!("{}: (none) → {a}", self.what),
            (Some(b), None) => format!("{}: {b} → (removed)", self.what),
            (None, None) => self.what.clone(),
        }
    }
}

/// A file's new content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEdit {
    /// The file (absolute).
    pub path: PathBuf,
    /// Its content now (`None`: it does not exist yet).
    pub before: Option<Vec<u8>>,
    /// Its content after the promotion.
    pub after: Vec<u8>,
}

/// What a promotion would change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Promotion {
    /// The changes, one per scalar or file.
    pub changes: Vec<Change>,
    /// The files to write.
    pub edits: Vec<FileEdit>,
}

fn read_text(fs: &dyn Fs, path: &Path) -> Result<String, Error> {
    let bytes = fs.read(path)?;
    String::from_utf8(bytes).map_err(|_| Error::Edit {
        file: path.to_path_buf(),
        source: EditError::Unsupported("a file that is not UTF-8".into()),
    })
}

fn parse(file: &Path, text: &str) -> Result<Node, Error> {
    edit::parse(text)
        .map_err(|source| Error::Edit {
            file: file.to_path_buf(),
            source,
        })
        .map(|n| {
            n.unwrap_or(Node::Map {
                pairs: Vec::new(),
                start: 0,
                flow: false,
            })
        })
}

fn unsupported(file: &Path, what: &str) -> Error {
    Error::Edit {
        file: file.to_path_buf(),
        source: EditError::Unsupported(what.to_string()),
    }
}

/// Edits collected per file, applied at the end.
#[derive(Default)]
struct Pending {
    texts: BTreeMap<PathBuf, PendingFile>,
}

/// One file being edited: as read, with the edits made so far, and splices not yet applied
/// (their offsets are in `current`).
struct PendingFile {
    original: String,
    current: String,
    splices: Vec<Splice>,
}

impl PendingFile {
    /// Applies the waiting splices, so the next edit is computed on the text as it is now
    /// (two new paths under one new mapping then share it).
    fn flush(&mut self) {
        if !self.splices.is_empty() {
            self.current = edit::apply(&self.current, std::mem::take(&mut self.splices));
        }
    }
}

impl Pending {
    fn text<'a>(
        &'a mut self,
        fs: &dyn Fs,
        path: &Path,
    ) -> Result<&'a mut PendingFile, Error> {
        if !self.texts.contains_key(path) {
            let text = read_text(fs, path)?;
            self.texts.insert(
                path.to_path_buf(),
                PendingFile {
                    current: text.clone(),
                    original: text,
                    splices: Vec::new(),
                },
            );
        }
        self.texts
            .get_mut(path)
            .ok_or_else(|| unsupported(path, "a file that vanished"))
    }
}

/// One `images:` entry: its name, its fields, and its node in the file.
type ImageEntry = (String, BTreeMap<String, String>, Node);

/// The image entries of a kustomization: name → (entry, fields).
fn images(node: &Node, file: &Path) -> Result<Vec<ImageEntry>, Error> {
    let Some(list) = node.get("images") else {
        return Ok(Vec::new());
    };
    let Node::Seq { items, .. } = list else {
        return Err(unsupported(file, "`images:` that is not a list"));
    };
    let mut out = Vec::new();
    for item in items {
        let Some(name) = item.get("name").and_then(Node::as_str) else {
            return Err(unsupported(file, "an `images:` entry without a name"));
        };
        let fields = IMAGE_FIELDS
            .iter()
            .filter_map(|f| {
                item.get(f)
                    .and_then(Node::as_str)
                    .map(|v| (f.to_string(), v.to_string()))
            })
            .collect();
        out.push((name.to_string(), fields, item.clone()));
    }
    Ok(out)
}

/// Adds the source's `images:` to the target kustomization, or updates them there.
fn promote_images(
    fs: &dyn Fs,
    from: &Path,
    to: &Path,
    pending: &mut Pending,
    changes: &mut Vec<Change>,
) -> Result<(), Error> {
    let source_file = kustomization_file(fs, from).ok_or_else(|| Error::NoKustomization {
        dir: from.to_path_buf(),
    })?;
    let target_file = kustomization_file(fs, to).ok_or_else(|| Error::NoKustomization {
        dir: to.to_path_buf(),
    })?;
    let source_text = read_text(fs, &source_file)?;
    let source = images(&parse(&source_file, &source_text)?, &source_file)?;
    for (name, fields, _) in &source {
        let tag = fields.get("newTag").map(String::as_str).unwrap_or("");
        if !fields.contains_key("digest") && (tag.is_empty() || tag == "latest") {
            return Err(Error::MutableTag {
                file: source_file.clone(),
                image: name.clone(),
                tag: tag.to_string(),
            });
        }
    }
    if source.is_empty() {
        return Ok(());
    }
    let file = pending.text(fs, &target_file)?;
    file.flush();
    let (text, splices) = (&file.current, &mut file.splices);
    let target_node = parse(&target_file, text)?;
    let target = images(&target_node, &target_file)?;
    let mut appended = String::new();
    for (name, fields, _) in &source {
        let record = |what: &str, before: Option<&String>, after: Option<&String>| Change {
            file: target_file.clone(),
            what: format!("image {name} {what}"),
            before: before.cloned(),
            after: after.cloned(),
        };
        match target.iter().find(|(n, ..)| n == name) {
            Some((_, target_fields, entry)) => {
                let Node::Map { flow: false, .. } = entry else {
                    return Err(unsupported(&target_file, "a flow-style `images:` entry"));
                };
                // A new key goes at the column of the entry's own keys (`name:`), never of
                // a value, after the entry's last line; all added keys form one block so
                // they keep the order of IMAGE_FIELDS.
                let indent = " ".repeat(key_column(text, entry));
                let insert_at = edit::line_end(text, entry.end());
                let mut added = String::new();
                for field in IMAGE_FIELDS {
                    let wanted = fields.get(field);
                    let have = target_fields.get(field);
                    if wanted == have {
                        continue;
                    }
                    changes.push(record(field, have, wanted));
                    match (entry.get(field), wanted) {
                        (
                            Some(Node::Scalar {
                                start, end, style, ..
                            }),
                            Some(value),
                        ) => splices.push(Splice {
                            start: *start,
                            end: *end,
                            text: format_scalar(value, Some(*style)),
                        }),
                        (Some(node @ Node::Scalar { .. }), None) => {
                            splices.push(remove_line(text, node));
                        }
                        (None, Some(value)) => {
                            added.push_str(&format!(
                                "{indent}{field}: {}\n",
                                format_scalar(value, None)
                            ));
                        }
                        _ => {
                            return Err(unsupported(
                                &target_file,
                                &format!("image {name} {field} that is not a scalar"),
                            ));
                        }
                    }
                }
                if !added.is_empty() {
                    splices.push(Splice {
                        start: insert_at,
                        end: insert_at,
                        text: at_end_of(text, insert_at, added),
                    });
                }
            }
            None => {
                changes.push(record("", None, Some(&describe(fields))));
                appended.push_str(&format!("- name: {}\n", format_scalar(name, None)));
                for field in IMAGE_FIELDS {
                    if let Some(value) = fields.get(field) {
                        appended.push_str(&format!("  {field}: {}\n", format_scalar(value, None)));
                    }
                }
            }
        }
    }
    if !appended.is_empty() {
        let splice = match target_node.get("images") {
            Some(Node::Seq {
                items, flow: false, ..
            }) if !items.is_empty() => {
                let first = items[0].start();
                let line_start = edit::line_start(text, first);
                let dash = text[line_start..first].rfind('-').map_or(0, |i| i);
                let indent = " ".repeat(dash);
                let block: String = appended.lines().map(|l| format!("{indent}{l}\n")).collect();
                let at = edit::line_end(text, target_node.get("images").map_or(0, Node::end));
                let block = if at == text.len() && !text.ends_with('\n') {
                    format!("\n{}", block.trim_end_matches('\n'))
                } else {
                    block
                };
                Splice {
                    start: at,
                    end: at,
                    text: block,
                }
            }
            Some(Node::Seq { flow: true, .. }) => {
                return Err(unsupported(&target_file, "a flow-style `images:` list"));
            }
            Some(Node::Scalar {
                value, start, end, ..
            }) if value.is_empty() => {
                // `images:` with nothing after it.
                let at = edit::line_end(text, *end.max(start));
                Splice {
                    start: at,
                    end: at,
                    text: appended.clone(),
                }
            }
            Some(_) => return Err(unsupported(&target_file, "an `images:` that is not a list")),
            None => {
                let missing_newline = !text.is_empty() && !text.ends_with('\n');
                let block = format!("images:\n{appended}");
                let block = if missing_newline {
                    format!("\n{}", block.trim_end_matches('\n'))
                } else {
                    block
                };
                Splice {
                    start: text.len(),
                    end: text.len(),
                    text: block,
                }
            }
        };
        splices.push(splice);
    }
    Ok(())
}

/// The splice removing the whole line of a single-line `key: value` whose value is `node`.
/// A last line without a final newline takes the newline before it, so the file still
/// ends without one.
fn remove_line(text: &str, node: &Node) -> Splice {
    let mut start = edit::line_start(text, node.start());
    let end = edit::line_end(text, node.end());
    if end == text.len() && !text.ends_with('\n') && start > 0 {
        start -= 1;
    }
    Splice {
        start,
        end,
        text: String::new(),
    }
}

/// A scalar copied from the source, as it is written in the target: a plain source scalar
/// is written as it was (so `3`, `true` or `1.10` keep their YAML type); a quoted one keeps
/// the target's quoting when the target quoted it, else reads back as the same string.
fn carried_scalar(
    value: &str,
    source_style: edit::ScalarStyle,
    target_style: Option<edit::ScalarStyle>,
) -> String {
    use edit::ScalarStyle;
    match (source_style, target_style) {
        (ScalarStyle::Plain, _) if !value.contains('\n') => value.to_string(),
        (_, Some(style @ (ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted))) => {
            format_scalar(value, Some(style))
        }
        _ => format_scalar(value, None),
    }
}

/// The splice adding the scalar `value` at the dotted `path` of `doc`, which is missing
/// there: under the deepest mapping the path reaches, the missing keys as nested block
/// mappings at that mapping's indentation. A missing list item cannot be added. `value` is
/// written as given (already formatted).
fn add_path(text: &str, doc: &Node, path: &str, value: &str) -> Result<Splice, String> {
    let parts: Vec<&str> = path.split('.').collect();
    let mut parent = doc;
    let mut found = 0;
    for part in &parts {
        let next = match parent {
            Node::Map { .. } => parent.get(part),
            Node::Seq { items, .. } => part.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        };
        match next {
            Some(node) => {
                parent = node;
                found += 1;
            }
            None => break,
        }
    }
    let missing = &parts[found..];
    if missing.iter().any(|p| p.parse::<usize>().is_ok()) {
        return Err("missing in the target, and a list item cannot be added".into());
    }
    let (indent, at) = match parent {
        Node::Map {
            pairs, flow: false, ..
        } if !pairs.is_empty() => (key_column(text, parent), edit::line_end(text, parent.end())),
        Node::Map { flow: true, .. } => {
            return Err("missing in the target, under a flow-style mapping".into());
        }
        // An empty document: keys start the file.
        Node::Map { pairs, .. } if pairs.is_empty() && found == 0 => (0, text.len()),
        _ => {
            return Err(format!(
                "missing in the target, and {} is not a mapping there",
                if found == 0 {
                    "the document".to_string()
                } else {
                    parts[..found].join(".")
                }
            ));
        }
    };
    let mut lines = String::new();
    for (depth, key) in missing.iter().enumerate() {
        let pad = " ".repeat(indent + 2 * depth);
        let key = format_scalar(key, None);
        if depth + 1 == missing.len() {
            lines.push_str(&format!("{pad}{key}: {value}\n"));
        } else {
            lines.push_str(&format!("{pad}{key}:\n"));
        }
    }
    Ok(Splice {
        start: at,
        end: at,
        text: at_end_of(text, at, lines),
    })
}

/// The column of the keys of a block mapping (its first key), else of the mapping itself.
fn key_column(text: &str, map: &Node) -> usize {
    match map {
        Node::Map { pairs, .. } if !pairs.is_empty() => edit::column(text, pairs[0].0.start()),
        other => edit::column(text, other.start()),
    }
}

/// `lines` (each ending in a newline) to insert at `at`: when `at` is the end of a text
/// without a final newline, the newline moves before the block, so the file still ends
/// without one.
fn at_end_of(text: &str, at: usize, lines: String) -> String {
    if at == text.len() && !text.is_empty() && !text.ends_with('\n') {
        format!("\n{}", lines.trim_end_matches('\n'))
    } else {
        lines
    }
}

fn describe(fields: &BTreeMap<String, String>) -> String {
    IMAGE_FIELDS
        .iter()
        .filter_map(|f| fields.get(*f).map(|v| format!("{f}={v}")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The node at a dotted path (`a.b.0.c`).
fn at_path<'n>(node: &'n Node, path: &str) -> Option<&'n Node> {
    let mut current = node;
    for part in path.split('.') {
        current = match current {
            Node::Map { .. } => current.get(part)?,
            Node::Seq { items, .. } => items.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(current)
}

/// Computes the promotion from the environment folder `from` to `to` (absolute paths in
/// `fs`), with the rule of `reconcile.yaml` for this pair when there is one.
pub fn promote(
    fs: &dyn Fs,
    from: &Path,
    to: &Path,
    rule: Option<&PromotionRule>,
) -> Result<Promotion, Error> {
    let mut pending = Pending::default();
    let mut changes = Vec::new();
    let mut copies = Vec::new();
    if rule.is_none_or(|r| r.images) {
        promote_images(fs, from, to, &mut pending, &mut changes)?;
    }
    if let Some(rule) = rule {
        for set in &rule.set {
            let source_file = from.join(&set.file);
            let target_file = to.join(&set.file);
            let source_text = read_text(fs, &source_file)?;
            let source = parse(&source_file, &source_text)?;
            let file = pending.text(fs, &target_file)?;
            for path in &set.paths {
                file.flush();
                let (text, splices) = (&file.current, &mut file.splices);
                let target = parse(&target_file, text)?;
                let path_error = |file: &Path, why: &str| Error::Path {
                    file: file.to_path_buf(),
                    path: path.clone(),
                    why: why.to_string(),
                };
                let Some(Node::Scalar {
                    value,
                    style: source_style,
                    ..
                }) = at_path(&source, path)
                else {
                    return Err(path_error(&source_file, "no scalar there in the source"));
                };
                let value = value.as_str();
                match at_path(&target, path) {
                    Some(Node::Scalar {
                        value: old,
                        start,
                        end,
                        style,
                    }) => {
                        if old != value {
                            splices.push(Splice {
                                start: *start,
                                end: *end,
                                text: carried_scalar(value, *source_style, Some(*style)),
                            });
                            changes.push(Change {
                                file: target_file.clone(),
                                what: format!("set {}:{path}", set.file),
                                before: Some(old.clone()),
                                after: Some(value.to_string()),
                            });
                        }
                    }
                    Some(_) => return Err(path_error(&target_file, "not a scalar in the target")),
                    None => {
                        let written = carried_scalar(value, *source_style, None);
                        let splice = add_path(text, &target, path, &written)
                            .map_err(|why| path_error(&target_file, &why))?;
                        splices.push(splice);
                        changes.push(Change {
                            file: target_file.clone(),
                            what: format!("set {}:{path}", set.file),
                            before: None,
                            after: Some(value.to_string()),
                        });
                    }
                }
            }
        }
        for file in &rule.copy {
            let source = fs.read(&from.join(file))?;
            let target_path = to.join(file);
            let before = match fs.read(&target_path) {
                Ok(bytes) => Some(bytes),
                Err(FsError::NotFound { .. }) => None,
                Err(e) => return Err(e.into()),
            };
            if pending.texts.contains_key(&target_path) {
                return Err(unsupported(&target_path, "a file both copied and edited"));
            }
            if before.as_deref() != Some(source.as_slice()) {
                changes.push(Change {
                    file: target_path.clone(),
                    what: format!("copy {file}"),
                    before: None,
                    after: None,
                });
                copies.push(FileEdit {
                    path: target_path,
                    before,
                    after: source,
                });
            }
        }
    }
    let mut edits = copies;
    for (path, mut file) in pending.texts {
        file.flush();
        if file.current != file.original {
            edits.push(FileEdit {
                path,
                before: Some(file.original.into_bytes()),
                after: file.current.into_bytes(),
            });
        }
    }
    edits.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(Promotion { changes, edits })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::MemFs;

    fn run(source: &str, target: &str) -> Result<(String, Vec<String>), Error> {
        let mut fs = MemFs::new("/r");
        fs.add_file("/r/dev/kustomization.yaml", source);
        fs.add_file("/r/prod/kustomization.yaml", target);
        let promotion = promote(&fs, Path::new("/r/dev"), Path::new("/r/prod"), None)?;
        let text = promotion
            .edits
            .first()
            .map(|e| String::from_utf8_lossy(&e.after).into_owned())
            .unwrap_or_else(|| target.to_string());
        Ok((text, promotion.changes.iter().map(Change::line).collect()))
    }

    #[test]
    fn only_the_changed_scalars_change() {
        let source = "images:\n- name: web\n  newTag: \"1.2\"\n- name: api\n  newName: reg/api\n  newTag: v3\n";
        let target = "# prod\nresources:\n- ../base\n\nimages:\n  # the web front\n  - name: web\n    newTag: '1.1'   # pinned by hand\n  - name: db\n    newTag: \"9\"\n\nnamespace: prod";
        let (text, changes) = run(source, target).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            text,
            "# prod\nresources:\n- ../base\n\nimages:\n  # the web front\n  - name: web\n    newTag: '1.2'   # pinned by hand\n  - name: db\n    newTag: \"9\"\n  - name: api\n    newName: reg/api\n    newTag: v3\n\nnamespace: prod"
        );
        assert_eq!(
            changes,
            vec![
                "image web newTag: 1.1 → 1.2",
                "image api : (none) → newName=reg/api newTag=v3"
            ]
        );
    }

    #[test]
    fn fields_are_added_and_removed_as_lines() {
        let source = "images:\n- name: web\n  digest: sha256:abc\n";
        let target = "images:\n- name: web\n  newTag: \"1.0\"\n";
        let (text, _) = run(source, target).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(text, "images:\n- name: web\n  digest: sha256:abc\n");
    }

    #[test]
    fn added_fields_take_the_column_of_the_entry_keys_in_any_layout() {
        let source = "images:\n- name: web\n  newName: reg/web\n  newTag: v2\n  digest: sha256:abc\n";
        // Indented list, entry followed by another one and by a comment; no final newline.
        let target = "images:\n    - name: web   # the front\n      newTag: v1\n    - name: db\n      newTag: \"9\"\n# end\nnamespace: prod";
        let (text, changes) = run(source, target).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            text,
            "images:\n    - name: web   # the front\n      newTag: v2\n      newName: reg/web\n      digest: sha256:abc\n    - name: db\n      newTag: \"9\"\n# end\nnamespace: prod"
        );
        assert_eq!(changes.len(), 3, "{changes:?}");
        // The entry is the last thing of a file without a final newline.
        let (text, _) = run(
            "images:\n- name: web\n  digest: sha256:abc\n",
            "images:\n- name: web\n  newTag: v1",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(text, "images:\n- name: web\n  digest: sha256:abc");
    }

    fn set(source: &str, target: &str, paths: &[&str]) -> Result<String, Error> {
        let mut fs = MemFs::new("/r");
        fs.add_file("/r/dev/values.yaml", source);
        fs.add_file("/r/prod/values.yaml", target);
        let rule = PromotionRule {
            from: "dev".into(),
            to: "prod".into(),
            images: false,
            copy: Vec::new(),
            set: vec![SetRule {
                file: "values.yaml".into(),
                paths: paths.iter().map(|p| p.to_string()).collect(),
            }],
        };
        let promotion = promote(&fs, Path::new("/r/dev"), Path::new("/r/prod"), Some(&rule))?;
        Ok(promotion
            .edits
            .first()
            .map(|e| String::from_utf8_lossy(&e.after).into_owned())
            .unwrap_or_else(|| target.to_string()))
    }

    #[test]
    fn set_rules_create_missing_paths_under_the_deepest_mapping() {
        let source = "app:\n  image:\n    tag: \"1.10\"\n    pullPolicy: Always\nreplicas: 3\n";
        let target = "# prod values\napp:\n    name: web  # keep\n\nother: x\n";
        let text = set(source, target, &["app.image.tag"]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            text,
            "# prod values\napp:\n    name: web  # keep\n    image:\n      tag: \"1.10\"\n\nother: x\n"
        );
        let text = set(source, "other: x", &["replicas"]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(text, "other: x\nreplicas: 3");
        let text = set(source, "", &["replicas"]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(text, "replicas: 3\n");
        // Two new paths under one new mapping share it; plain values keep their type.
        let text = set(
            source,
            "app:\n  name: web\nreplicas: 1 # few\n",
            &["app.image.tag", "app.image.pullPolicy", "replicas"],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            text,
            "app:\n  name: web\n  image:\n    tag: \"1.10\"\n    pullPolicy: Always\nreplicas: 3 # few\n"
        );
    }

    #[test]
    fn set_rules_refuse_paths_they_cannot_create() {
        let source = "list:\n- a\n- b\nflow: {k: v}\nscalar: {x: 1}\n";
        for (target, path) in [
            ("list:\n- a\n", "list.1"),
            ("flow: {j: w}\n", "flow.k"),
            ("scalar: 1\n", "scalar.x"),
        ] {
            let err = set(source, target, &[path]).err();
            assert!(matches!(err, Some(Error::Path { .. })), "{path}: {err:?}");
        }
    }

    #[test]
    fn images_are_added_when_the_target_has_none_keeping_a_missing_final_newline() {
        let (text, _) = run(
            "images:\n- name: web\n  newTag: \"2\"\n",
            "resources:\n- ../base",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            text,
            "resources:\n- ../base\nimages:\n- name: web\n  newTag: \"2\""
        );
    }

    #[test]
    fn mutable_tags_are_refused() {
        for source in [
            "images:\n- name: web\n  newTag: latest\n",
            "images:\n- name: web\n  newName: reg/web\n",
        ] {
            let err = run(source, "resources: []\n").err();
            assert!(matches!(err, Some(Error::MutableTag { .. })), "{err:?}");
        }
    }

    #[test]
    fn nothing_to_promote_edits_nothing() {
        let same = "images:\n- name: web\n  newTag: \"2\"\n";
        let (text, changes) = run(same, same).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(text, same);
        assert!(changes.is_empty());
    }
}

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
    texts: BTreeMap<PathBuf, (String, Vec<Splice>)>,
}

impl Pending {
    fn text<'a>(
        &'a mut self,
        fs: &dyn Fs,
        path: &Path,
    ) -> Result<&'a mut (String, Vec<Splice>), Error> {
        if !self.texts.contains_key(path) {
            let text = read_text(fs, path)?;
            self.texts.insert(path.to_path_buf(), (text, Vec::new()));
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
    let (text, splices) = pending.text(fs, &target_file)?;
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
                let name_node = entry.get("name").map(Node::start).unwrap_or(entry.start());
                let indent = " ".repeat(edit::column(text, name_node));
                let mut insert_at = edit::line_end(text, entry.end());
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
                        (Some(node), None) => {
                            let key_start = entry
                                .get(field)
                                .map(|_| edit::line_start(text, node.start()))
                                .unwrap_or(node.start());
                            splices.push(Splice {
                                start: key_start,
                                end: edit::line_end(text, node.end()),
                                text: String::new(),
                            });
                        }
                        (None, Some(value)) => {
                            let mut line =
                                format!("{indent}{field}: {}\n", format_scalar(value, None));
                            if insert_at == text.len() && !text.ends_with('\n') {
                                line = format!("\n{}", line.trim_end_matches('\n'));
                            }
                            splices.push(Splice {
                                start: insert_at,
                                end: insert_at,
                                text: line,
                            });
                            insert_at = edit::line_end(text, insert_at.min(text.len()));
                        }
                        _ => {
                            return Err(unsupported(
                                &target_file,
                                &format!("image {name} {field} that is not a scalar"),
                            ));
                        }
                    }
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
            let (text, splices) = pending.text(fs, &target_file)?;
            let target = parse(&target_file, text)?;
            for path in &set.paths {
                let path_error = |file: &Path, why: &str| Error::Path {
                    file: file.to_path_buf(),
                    path: path.clone(),
                    why: why.to_string(),
                };
                let Some(value) = at_path(&source, path).and_then(Node::as_str) else {
                    return Err(path_error(&source_file, "no scalar there in the source"));
                };
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
                                text: format_scalar(value, Some(*style)),
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
                        return Err(path_error(
                            &target_file,
                            "missing in the target (adding new paths is not supported yet)",
                        ));
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
    for (path, (text, splices)) in pending.texts {
        if splices.is_empty() {
            continue;
        }
        let after = edit::apply(&text, splices);
        if after != text {
            edits.push(FileEdit {
                path,
                before: Some(text.into_bytes()),
                after: after.into_bytes(),
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
    #[ignore = "known bug (issue #9): a line added beside a removed one gets the wrong indentation"]
    fn fields_are_added_and_removed_as_lines() {
        let source = "images:\n- name: web\n  digest: sha256:abc\n";
        let target = "images:\n- name: web\n  newTag: \"1.0\"\n";
        let (text, _) = run(source, target).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(text, "images:\n- name: web\n  digest: sha256:abc\n");
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

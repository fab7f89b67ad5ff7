//! Which files a kustomization root's render can depend on: a reverse-dependency index
//! built from the kustomization files alone (no render), so a pull request's changed paths
//! select the applications to render.
//!
//! Invariant: never a false negative. Every string of a kustomization (and of the plugin
//! configurations it names) is taken as a possible path relative to its directory, whether
//! or not anything is there yet; a directory named without a kustomization counts with its
//! whole subtree; any change directly inside a kustomization's directory counts (a new
//! `kustomization.yml`, an unreferenced file the next commit names); a kustomization that
//! cannot be read, or that names a remote resource, makes its roots always render.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::source::{EntryKind, Fs, clean};

/// File names kustomize accepts for a kustomization.
pub const KUSTOMIZATION_FILES: [&str; 3] =
    ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// Keys whose entries name plugin configurations, read like resources.
const PLUGIN_KEYS: [&str; 3] = ["generators", "transformers", "validators"];

/// Keys whose entries may be remote resources (fetched at build time).
const RESOURCE_KEYS: [&str; 3] = ["resources", "components", "bases"];

/// What one kustomization root's render may read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Deps {
    /// Files (and possible files) named, as written and as resolved.
    pub files: BTreeSet<PathBuf>,
    /// Kustomization directories (a change directly inside one counts).
    pub dirs: BTreeSet<PathBuf>,
    /// Directories counted with everything below them.
    pub trees: BTreeSet<PathBuf>,
    /// Directories named in `resources`/`components` that hold a kustomization.
    pub children: BTreeSet<PathBuf>,
    /// Paths named that are not folders (missing, or files): a change below one counts.
    pub leaves: BTreeSet<PathBuf>,
    /// Something could not be analysed: always render.
    pub unsure: bool,
}

impl Deps {
    fn merge(&mut self, other: &Deps) {
        self.files.extend(other.files.iter().cloned());
        self.dirs.extend(other.dirs.iter().cloned());
        self.trees.extend(other.trees.iter().cloned());
        self.leaves.extend(other.leaves.iter().cloned());
        self.unsure |= other.unsure;
    }

    /// True when a change at `path` (absolute) can change the render.
    pub fn affected_by(&self, path: &Path) -> bool {
        if self.unsure || self.files.contains(path) {
            return true;
        }
        if path.parent().is_some_and(|p| self.dirs.contains(p)) {
            return true;
        }
        if path.ancestors().any(|a| self.trees.contains(a)) {
            return true;
        }
        // A change below a path named (created as a folder, or a file that became one).
        if path.ancestors().skip(1).any(|a| self.leaves.contains(a)) {
            return true;
        }
        // A changed entry above something read (a symlink or file replacing a folder).
        [&self.files, &self.dirs, &self.trees].iter().any(|set| {
            set.range(path.to_path_buf()..)
                .next()
                .is_some_and(|p| p.starts_with(path))
        })
    }
}

/// Builds [`Deps`] for many roots of one tree, sharing the work on common bases.
#[derive(Debug)]
pub struct Index<'a> {
    fs: &'a dyn Fs,
    memo: HashMap<PathBuf, Deps>,
}

/// The kustomization file in `dir`, if any.
pub fn kustomization_file(fs: &dyn Fs, dir: &Path) -> Option<PathBuf> {
    KUSTOMIZATION_FILES
        .iter()
        .map(|name| dir.join(name))
        .find(|path| fs.is_file(path))
}

fn looks_remote(text: &str) -> bool {
    text.contains("://") || text.starts_with("github.com/") || text.starts_with("git@")
}

fn strings<'v>(value: &'v Value, out: &mut Vec<&'v str>) {
    match value {
        Value::String(s) => out.push(s),
        Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        Value::Object(map) => map.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

impl<'a> Index<'a> {
    /// An index over `fs`.
    pub fn new(fs: &'a dyn Fs) -> Index<'a> {
        Index {
            fs,
            memo: HashMap::new(),
        }
    }

    /// What rendering the kustomization in `dir` may read.
    pub fn deps(&mut self, dir: &Path) -> Deps {
        let mut visiting = BTreeSet::new();
        self.deps_of(&clean(dir), &mut visiting)
    }

    fn deps_of(&mut self, dir: &Path, visiting: &mut BTreeSet<PathBuf>) -> Deps {
        if let Some(done) = self.memo.get(dir) {
            return done.clone();
        }
        if !visiting.insert(dir.to_path_buf()) {
            // A cycle: kustomize reports it; the render will too.
            return Deps {
                unsure: true,
                ..Deps::default()
            };
        }
        let deps = self.scan(dir, visiting);
        visiting.remove(dir);
        self.memo.insert(dir.to_path_buf(), deps.clone());
        deps
    }

    fn scan(&mut self, dir: &Path, visiting: &mut BTreeSet<PathBuf>) -> Deps {
        let mut deps = Deps::default();
        deps.dirs.insert(dir.to_path_buf());
        if let Ok(resolved) = self.fs.resolve(dir) {
            deps.dirs.insert(resolved);
        }
        let Some(file) = kustomization_file(self.fs, dir) else {
            deps.unsure = true;
            return deps;
        };
        deps.files.insert(file.clone());
        let parsed = self
            .fs
            .read(&file)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .and_then(|text| crate::yaml::parse_kustomization(&text).ok().flatten());
        let Some(kustomization) = parsed else {
            deps.unsure = true;
            return deps;
        };
        for key in RESOURCE_KEYS {
            if let Some(Value::Array(items)) = kustomization.get(key)
                && items.iter().any(|i| i.as_str().is_some_and(looks_remote))
            {
                deps.unsure = true;
            }
        }
        if kustomization.get("helmCharts").is_some() {
            deps.trees.insert(dir.join("charts"));
        }
        let mut texts = Vec::new();
        strings(&kustomization, &mut texts);
        let plugin_entries: BTreeSet<&str> = PLUGIN_KEYS
            .iter()
            .filter_map(|k| kustomization.get(*k).and_then(Value::as_array))
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        for text in texts {
            let is_plugin = plugin_entries.contains(text);
            self.add_path(dir, text, is_plugin, &mut deps, visiting);
        }
        deps
    }

    /// Counts `text` (relative to `dir`) as a possible path.
    fn add_path(
        &mut self,
        dir: &Path,
        text: &str,
        is_plugin: bool,
        deps: &mut Deps,
        visiting: &mut BTreeSet<PathBuf>,
    ) {
        if text.is_empty() || text.len() > 4096 || text.contains('\n') {
            return;
        }
        let mut candidates = vec![text];
        // Generator sources are written `key=path`.
        if let Some((_, path)) = text.split_once('=') {
            candidates.push(path);
        }
        for candidate in candidates {
            let path = clean(&dir.join(candidate));
            deps.files.insert(path.clone());
            let Ok(resolved) = self.fs.resolve(&path) else {
                deps.leaves.insert(path);
                continue;
            };
            deps.files.insert(resolved.clone());
            let kind = self.fs.entry_kind(&resolved);
            if !matches!(kind, Ok(Some(EntryKind::Dir))) {
                deps.leaves.insert(path);
                deps.leaves.insert(resolved.clone());
            }
            match kind {
                Ok(Some(EntryKind::Dir)) if kustomization_file(self.fs, &resolved).is_some() => {
                    deps.children.insert(resolved.clone());
                    let child = self.deps_of(&resolved, visiting);
                    deps.merge(&child);
                }
                Ok(Some(EntryKind::Dir)) => {
                    deps.trees.insert(resolved);
                }
                Ok(Some(_)) if is_plugin => {
                    // A plugin configuration names its own files (a patch, a chart home).
                    let parsed = self
                        .fs
                        .read(&resolved)
                        .ok()
                        .and_then(|bytes| String::from_utf8(bytes).ok())
                        .and_then(|text| crate::yaml::parse_documents(&text).ok());
                    match parsed {
                        Some(documents) => {
                            let mut inner = Vec::new();
                            for document in &documents {
                                strings(document, &mut inner);
                            }
                            let inner: Vec<String> =
                                inner.into_iter().map(str::to_string).collect();
                            for text in inner {
                                self.add_path(dir, &text, false, deps, visiting);
                            }
                        }
                        None => deps.unsure = true,
                    }
                }
                _ => {}
            }
        }
    }
}

/// Every kustomization directory of a tree that no other kustomization of the tree names
/// in `resources`, `components` or `bases`, and that is not a Component: its roots.
pub fn roots(fs: &dyn Fs, files: &[PathBuf]) -> Vec<PathBuf> {
    let dirs: BTreeSet<PathBuf> = files
        .iter()
        .filter(|f| {
            f.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| KUSTOMIZATION_FILES.contains(&n))
        })
        .filter_map(|f| f.parent().map(Path::to_path_buf))
        .collect();
    let mut index = Index::new(fs);
    let mut named = BTreeSet::new();
    let mut components = BTreeSet::new();
    for dir in &dirs {
        let deps = index.deps(dir);
        named.extend(deps.children.iter().cloned());
        let is_component = kustomization_file(fs, dir)
            .and_then(|f| fs.read(&f).ok())
            .is_some_and(|bytes| {
                String::from_utf8_lossy(&bytes)
                    .lines()
                    .any(|l| l.trim() == "kind: Component")
            });
        if is_component {
            components.insert(dir.clone());
        }
    }
    dirs.into_iter()
        .filter(|d| !named.contains(d) && !components.contains(d))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::MemFs;

    fn tree() -> MemFs {
        let mut fs = MemFs::new("/r");
        fs.add_file(
            "/r/base/kustomization.yaml",
            "resources:\n- deploy.yaml\nconfigMapGenerator:\n- name: c\n  files:\n  - app.conf=conf/app.conf\n  envs:\n  - ../shared/common.env\n",
        );
        fs.add_file("/r/base/deploy.yaml", "kind: Deployment\n");
        fs.add_file("/r/base/conf/app.conf", "x\n");
        fs.add_file("/r/shared/common.env", "A=1\n");
        fs.add_file("/r/shared/other.env", "B=1\n");
        fs.add_file(
            "/r/dev/kustomization.yaml",
            "resources:\n- ../base\npatches:\n- path: patch.yaml\ntransformers:\n- labels.yaml\n",
        );
        fs.add_file("/r/dev/patch.yaml", "kind: Deployment\n");
        fs.add_file(
            "/r/dev/labels.yaml",
            "kind: PatchTransformer\npath: ../extra/p.yaml\n",
        );
        fs.add_file("/r/prod/kustomization.yaml", "resources:\n- ../base\n");
        fs.add_file("/r/solo/kustomization.yaml", "resources:\n- data\n");
        fs.add_file("/r/solo/data/a.yaml", "kind: ConfigMap\n");
        fs
    }

    #[test]
    fn changes_select_exactly_the_roots_that_read_them() {
        let fs = tree();
        let mut index = Index::new(&fs);
        let dev = index.deps(Path::new("/r/dev"));
        let prod = index.deps(Path::new("/r/prod"));
        let solo = index.deps(Path::new("/r/solo"));
        let hit = |deps: &Deps, p: &str| deps.affected_by(Path::new(p));
        assert!(hit(&dev, "/r/dev/patch.yaml") && !hit(&prod, "/r/dev/patch.yaml"));
        assert!(hit(&dev, "/r/base/conf/app.conf") && hit(&prod, "/r/base/conf/app.conf"));
        assert!(hit(&prod, "/r/shared/common.env"));
        assert!(!hit(&prod, "/r/shared/other.env"));
        // Named by a transformer's configuration file.
        assert!(hit(&dev, "/r/extra/p.yaml") && !hit(&prod, "/r/extra/p.yaml"));
        // A new kustomization.yml next to the base's.
        assert!(hit(&prod, "/r/base/kustomization.yml"));
        assert!(hit(&solo, "/r/solo/data/sub/b.yaml") && !hit(&dev, "/r/solo/data/a.yaml"));
        // A file replaced by a folder (or a symlink) above something read.
        assert!(hit(&prod, "/r/base"));
        // A folder created where a missing path is named (or a named file that became one).
        assert!(hit(&dev, "/r/extra/p.yaml/kustomization.yaml"));
        assert!(hit(&prod, "/r/base/deploy.yaml/x.yaml") && !hit(&prod, "/r/dev/x.yaml"));
        assert!(!hit(&prod, "/r/base/conf/other.txt"));
    }

    #[test]
    fn unreadable_and_remote_kustomizations_always_render() {
        let mut fs = MemFs::new("/r");
        fs.add_file("/r/a/kustomization.yaml", "resources: [\n");
        fs.add_file(
            "/r/b/kustomization.yaml",
            "resources:\n- https://github.com/org/repo//deploy?ref=v1\n",
        );
        let mut index = Index::new(&fs);
        assert!(
            index
                .deps(Path::new("/r/a"))
                .affected_by(Path::new("/r/zzz"))
        );
        assert!(
            index
                .deps(Path::new("/r/b"))
                .affected_by(Path::new("/r/zzz"))
        );
    }

    #[test]
    fn roots_are_kustomizations_nobody_names() {
        let fs = tree();
        let files = vec![
            PathBuf::from("/r/base/kustomization.yaml"),
            PathBuf::from("/r/dev/kustomization.yaml"),
            PathBuf::from("/r/prod/kustomization.yaml"),
            PathBuf::from("/r/solo/kustomization.yaml"),
        ];
        assert_eq!(
            roots(&fs, &files),
            vec![
                PathBuf::from("/r/dev"),
                PathBuf::from("/r/prod"),
                PathBuf::from("/r/solo")
            ]
        );
    }
}

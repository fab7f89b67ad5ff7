//! `validate`: every problem of a kustomization tree at once, rather than the first one a
//! build stops at.
//!
//! The walk visits each kustomization reachable from the root (resources, components) and
//! checks what can be checked file by file — the kustomization parses and has no unknown
//! field, every file it names exists and parses, every resource is an object with a kind and
//! a name. When that finds nothing, a full build runs: its error (a missing replacement
//! source, a duplicate id …) is the one problem reported, or else the things kustomize lets
//! pass silently (a patch whose target selects nothing) are.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::model::Origin;
use crate::render::error::Error;
use crate::render::load::{
    DirLoader, KUSTOMIZATION_FILE_NAMES, parse_kustomization, parse_resources,
};
use crate::render::types::Kustomization;
use crate::source::{DiskFs, Fs, FsError};

/// All problems found in the tree rooted at `dir` on disk (empty: it builds).
pub fn validate_dir(dir: &Path) -> Vec<Error> {
    let absolute = match std::path::absolute(dir) {
        Ok(p) => p,
        Err(e) => {
            return vec![Error::Fs {
                file: dir.to_path_buf(),
                source: FsError::Io {
                    path: dir.to_path_buf(),
                    cause: e.to_string(),
                },
            }];
        }
    };
    match DiskFs::for_dir(&absolute) {
        Ok(fs) => validate(&fs, &absolute),
        Err(source) => vec![Error::Fs {
            file: dir.to_path_buf(),
            source,
        }],
    }
}

/// All problems found in the tree rooted at `dir` (empty: it builds).
pub fn validate(fs: &dyn Fs, dir: &Path) -> Vec<Error> {
    let mut walk = Walk {
        fs,
        problems: Vec::new(),
        visited: BTreeSet::new(),
    };
    walk.kustomization_dir(dir);
    if walk.problems.is_empty() {
        match crate::render::render_with_warnings(fs, dir) {
            Ok((_, warnings)) => walk.problems.extend(
                warnings
                    .into_iter()
                    .map(|warning| Error::Warning { warning }),
            ),
            Err(e) => walk.problems.push(e),
        }
    }
    walk.problems
}

struct Walk<'a> {
    fs: &'a dyn Fs,
    problems: Vec<Error>,
    visited: BTreeSet<PathBuf>,
}

impl Walk<'_> {
    fn kustomization_dir(&mut self, dir: &Path) {
        let resolved = match self.fs.resolve(dir) {
            Ok(p) => p,
            Err(source) => {
                self.problems.push(Error::Fs {
                    file: dir.to_path_buf(),
                    source,
                });
                return;
            }
        };
        if !self.visited.insert(resolved.clone()) {
            return;
        }
        let names = match self.fs.list_dir(&resolved) {
            Ok(names) => names,
            Err(source) => {
                self.problems.push(Error::Fs {
                    file: dir.to_path_buf(),
                    source,
                });
                return;
            }
        };
        let found: Vec<&str> = KUSTOMIZATION_FILE_NAMES
            .iter()
            .copied()
            .filter(|n| names.iter().any(|e| e == n))
            .collect();
        let file_name = match found.as_slice() {
            [one] => *one,
            [] => {
                self.problems.push(Error::MissingKustomization {
                    dir: dir.to_path_buf(),
                });
                return;
            }
            many => {
                self.problems.push(Error::MultipleKustomizations {
                    dir: dir.to_path_buf(),
                    names: many.iter().map(|s| s.to_string()).collect(),
                });
                return;
            }
        };
        let loader = DirLoader {
            fs: self.fs,
            dir: &resolved,
        };
        let file = resolved.join(file_name);
        let text = match loader.read_text(file_name) {
            Ok(text) => text,
            Err(e) => {
                self.problems.push(e);
                return;
            }
        };
        let Some(k) = parse_kustomization(&file, &text, &mut self.problems) else {
            return;
        };
        self.named_files(&loader, &k);
        for entry in &k.resources {
            self.resource_entry(&loader, &file, entry);
        }
        for entry in &k.components {
            self.kustomization_dir(&resolved.join(entry));
        }
    }

    fn resource_entry(&mut self, loader: &DirLoader<'_>, file: &Path, entry: &str) {
        let path = loader.dir.join(entry);
        if self.fs.is_dir(&path) {
            self.kustomization_dir(&path);
            return;
        }
        self.resource_file(loader, entry);
        let _ = file;
    }

    fn resource_file(&mut self, loader: &DirLoader<'_>, entry: &str) {
        match loader.read_text(entry) {
            Ok(text) => {
                let origin = Origin {
                    path: entry.to_string(),
                    generator: None,
                };
                if let Err(e) = parse_resources(&loader.dir.join(entry), &text, &origin) {
                    self.problems.push(e);
                }
            }
            Err(e) => self.problems.push(e),
        }
    }

    /// Files named outside `resources:` must exist (and parse, when they are YAML).
    fn named_files(&mut self, loader: &DirLoader<'_>, k: &Kustomization) {
        let mut must_exist: Vec<&str> = Vec::new();
        for generator in k.config_map_generator.iter().chain(&k.secret_generator) {
            must_exist.extend(generator.envs.iter().map(String::as_str));
            if !generator.env.is_empty() {
                must_exist.push(&generator.env);
            }
            for source in &generator.files {
                let path = source.rsplit_once('=').map_or(source.as_str(), |(_, p)| p);
                must_exist.push(path);
            }
        }
        for file in must_exist {
            if let Err(e) = loader.read_bytes(file) {
                self.problems.push(e);
            }
        }
        let mut yaml_files: Vec<&str> = Vec::new();
        yaml_files.extend(
            k.patches
                .iter()
                .chain(&k.patches_json6902)
                .filter(|p| !p.path.is_empty())
                .map(|p| p.path.as_str()),
        );
        yaml_files.extend(k.configurations.iter().map(String::as_str));
        yaml_files.extend(k.crds.iter().map(String::as_str));
        yaml_files.extend(
            k.replacements
                .iter()
                .filter(|r| !r.path.is_empty())
                .map(|r| r.path.as_str()),
        );
        // A patchesStrategicMerge entry may be inline YAML rather than a path.
        yaml_files.extend(
            k.patches_strategic_merge
                .iter()
                .filter(|p| !p.contains('\n') && !p.contains(": "))
                .map(String::as_str),
        );
        for file in yaml_files {
            match loader.read_text(file) {
                Ok(text) => {
                    if let Err(e) = crate::yaml::parse_documents(&text) {
                        self.problems.push(Error::Yaml {
                            file: loader.dir.join(file),
                            cause: e.to_string(),
                        });
                    }
                }
                Err(e) => self.problems.push(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::MemFs;

    #[test]
    fn reports_every_problem_at_once() {
        let mut fs = MemFs::new("/repo");
        fs.add_file(
            "/repo/app/kustomization.yaml",
            "resources:\n- missing.yaml\n- bad.yaml\n- ../base\nfrobnicate: true\nwidgets: 1\n",
        );
        fs.add_file("/repo/app/bad.yaml", "kind: [unclosed\n");
        fs.add_file("/repo/base/kustomization.yaml", "resources:\n- list.yaml\n");
        fs.add_file("/repo/base/list.yaml", "- just\n- a list\n");
        let problems = validate(&fs, Path::new("/repo/app"));
        let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(text.len(), 5, "{text:#?}");
        assert!(text[0].contains("frobnicate"));
        assert!(text[1].contains("widgets"));
        assert!(text[2].contains("missing.yaml"));
    }

    #[test]
    fn walks_resources_when_the_kustomization_is_fine() {
        let mut fs = MemFs::new("/repo");
        fs.add_file(
            "/repo/app/kustomization.yaml",
            "resources:\n- missing.yaml\n- bad.yaml\n- ../base\n",
        );
        fs.add_file("/repo/app/bad.yaml", "kind: [unclosed\n");
        fs.add_file("/repo/base/kustomization.yaml", "resources:\n- list.yaml\n");
        fs.add_file("/repo/base/list.yaml", "- just\n- a list\n");
        let problems = validate(&fs, Path::new("/repo/app"));
        let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(text.len(), 3, "{text:#?}");
        assert!(text[0].contains("missing.yaml"));
        assert!(text[1].contains("bad.yaml"));
        assert!(text[2].contains("list.yaml"));
    }
}

//! The renderer: a kustomization directory in, an ordered list of resources out, exactly as
//! `kustomize build` (kustomize v5.5) would produce it.
//!
//! The build walks kustomize's own pipeline (`api/krusty/kustomizer.go`,
//! `api/internal/target/kusttarget.go`): [`load`] opens the kustomization, [`accumulate`]
//! gathers resources, runs generators, components and transformers per kustomization, then
//! at the top the name hashes are added, name references fixed, vars resolved, local-config
//! objects dropped and the result ordered by [`order`].
//!
//! Invariant: rendering reads files only through [`crate::source::Fs`]; no clock, no
//! environment, no network.

pub mod accumulate;
pub mod build_metadata;
pub mod builtin_generators;
pub mod crds;
pub mod error;
pub mod field_path;
pub mod files;
pub mod generators;
pub mod load;
pub mod order;
pub mod patch;
pub mod replacements;
pub mod transformers;
pub mod types;
pub mod validate;
pub mod vars;

use std::path::{Path, PathBuf};

use serde_json::Value;

pub use error::Error;

use crate::model::ResMap;
use crate::source::{DiskFs, Fs};
use accumulate::{Accumulator, accumulate_target, add_hashes};
use load::KustDir;

/// Builds the kustomization in `dir` (absolute, or relative to the process's directory).
pub fn render(fs: &dyn Fs, dir: &Path) -> Result<ResMap, Error> {
    render_with_warnings(fs, dir).map(|(resources, _)| resources)
}

/// [`render`], plus what kustomize lets pass silently (patches whose target selects nothing).
pub fn render_with_warnings(fs: &dyn Fs, dir: &Path) -> Result<(ResMap, Vec<String>), Error> {
    let root = KustDir::open_root(fs, dir)?;
    let file = root.file();
    let mut acc = accumulate_target(&root, Accumulator::new())?;
    add_hashes(&mut acc.resources)?;
    transformers::fix_name_references(&mut acc.resources, &acc.config)
        .map_err(|e| error::step_error(&file, "name references", e))?;
    acc.vars
        .resolve(&mut acc.resources, &acc.config.var_reference)
        .map_err(|e| error::step_error(&file, "vars", e))?;
    drop_local_config(&mut acc.resources);
    let mut resources = acc.resources.into_vec();
    order::sort(&mut resources, root.kustomization.sort_options.as_ref())
        .map_err(|e| error::step_error(&file, "sortOptions", e))?;
    let mut resources: ResMap = resources.into_iter().collect();
    let metadata = build_metadata::BuildMetadata::from_options(&root.kustomization.build_metadata);
    build_metadata::finish(&mut resources, &metadata);
    Ok((resources, acc.warnings))
}

/// Drops objects annotated `config.kubernetes.io/local-config` (unless `"false"`).
fn drop_local_config(resources: &mut ResMap) {
    resources.as_mut_vec().retain(|r| {
        let local = r
            .object
            .get("metadata")
            .and_then(|m| m.get("annotations"))
            .and_then(|a| a.get("config.kubernetes.io/local-config"));
        match local {
            None => true,
            Some(Value::String(s)) => s == "false",
            Some(_) => false,
        }
    });
}

/// Builds the kustomization in the directory `dir` on disk.
pub fn render_dir(dir: &Path) -> Result<ResMap, Error> {
    let absolute = if dir.is_absolute() {
        dir.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| Error::Fs {
                file: dir.to_path_buf(),
                source: crate::source::FsError::Io {
                    path: dir.to_path_buf(),
                    cause: e.to_string(),
                },
            })?
            .join(dir)
    };
    let fs = DiskFs::for_dir(&absolute).map_err(|source| Error::Fs {
        file: dir.to_path_buf(),
        source,
    })?;
    render(&fs, &absolute)
}

/// Builds many kustomization directories in parallel; results in the order given.
pub fn render_many(dirs: &[PathBuf]) -> Vec<Result<ResMap, Error>> {
    use rayon::prelude::*;
    dirs.par_iter().map(|dir| render_dir(dir)).collect()
}

/// The objects of a build, as `serde_json` values.
pub fn to_values(resources: &ResMap) -> Vec<Value> {
    resources.iter().map(|r| r.to_value()).collect()
}

/// The build as kustomize prints it: YAML documents separated by `---`.
pub fn to_yaml(resources: &ResMap) -> String {
    crate::yaml::to_yaml_stream(&to_values(resources))
}

/// [`to_values`], consuming the build (no copy of the objects).
pub fn into_values(resources: ResMap) -> Vec<Value> {
    resources
        .into_iter()
        .map(|r| Value::Object(r.object))
        .collect()
}

/// [`to_yaml`], consuming the build (no copy of the objects).
pub fn into_yaml(resources: ResMap) -> String {
    crate::yaml::to_yaml_stream(&into_values(resources))
}

/// The build as a pretty-printed JSON array.
pub fn to_json(resources: &ResMap) -> String {
    let mut text =
        serde_json::to_string_pretty(&Value::Array(to_values(resources))).unwrap_or_default();
    text.push('\n');
    text
}

/// The JSON Schema of a kustomization file as this renderer reads it (pretty JSON, with a
/// final newline).
pub fn kustomization_schema() -> String {
    let schema = schemars::schema_for!(types::Kustomization);
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::MemFs;

    fn names(resources: &ResMap) -> Vec<String> {
        resources
            .iter()
            .map(|r| format!("{}/{}", r.gvk().kind, r.name()))
            .collect()
    }

    #[test]
    fn overlay_builds_on_base_from_memory() {
        let mut fs = MemFs::new("/repo");
        fs.add_file("/repo/base/kustomization.yaml", "resources:\n- cm.yaml\n");
        fs.add_file(
            "/repo/base/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: plain\n",
        );
        fs.add_file(
            "/repo/app/kustomization.yaml",
            "resources:\n- ../base\nconfigMapGenerator:\n- name: gen\n  literals:\n  - a=b\n",
        );
        let built = render(&fs, Path::new("/repo/app"));
        let built = built.map(|r| names(&r)).map_err(|e| e.to_string());
        assert_eq!(
            built,
            Ok(vec![
                "ConfigMap/gen-4h2mbtbbt6".to_string(),
                "ConfigMap/plain".into()
            ])
        );
    }

    #[test]
    fn cycles_name_the_chain() {
        let mut fs = MemFs::new("/repo");
        fs.add_file("/repo/a/kustomization.yaml", "resources:\n- ../b\n");
        fs.add_file("/repo/b/kustomization.yaml", "resources:\n- ../a\n");
        let err = render(&fs, Path::new("/repo/a"))
            .err()
            .map(|e| e.root_cause().to_string());
        assert_eq!(
            err.as_deref(),
            Some("cycle detected: /repo/a -> /repo/b -> /repo/a")
        );
    }

    #[test]
    fn oversized_files_are_refused() {
        let mut fs = MemFs::new("/repo");
        fs.add_file("/repo/kustomization.yaml", "resources:\n- big.yaml\n");
        let big = vec![b'#'; (crate::source::MAX_FILE_BYTES + 1) as usize];
        fs.add_file("/repo/big.yaml", big);
        let err = render(&fs, Path::new("/repo"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("over the 33554432-byte limit"), "{err}");
    }

    #[test]
    fn components_apply_to_the_parent_objects() {
        let mut fs = MemFs::new("/repo");
        fs.add_file(
            "/repo/comp/kustomization.yaml",
            "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\nnamePrefix: c-\n",
        );
        fs.add_file(
            "/repo/app/kustomization.yaml",
            "resources:\n- cm.yaml\ncomponents:\n- ../comp\n",
        );
        fs.add_file(
            "/repo/app/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n",
        );
        let built = render(&fs, Path::new("/repo/app"))
            .map(|r| names(&r))
            .map_err(|e| e.to_string());
        assert_eq!(built, Ok(vec!["ConfigMap/c-x".to_string()]));
    }

    #[test]
    fn render_many_keeps_the_order_given() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/render");
        let dirs = vec![dir.join("secret-generator/input"), dir.join("no-such-case")];
        let results = render_many(&dirs);
        assert_eq!(results.len(), 2);
        assert!(results[0].is_ok());
        assert!(results[1].is_err());
    }
}

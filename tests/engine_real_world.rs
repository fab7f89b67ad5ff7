//! The measurement of issue 15: every root of `../shared/real-world-kustomize` applied with
//! `reconcile apply ROOT --create-namespace` to a fresh engine; prints how many apply and why
//! the others are refused. Every refusal must be one a Kubernetes 1.31 API server makes too.
//! Skips when the shared corpus is absent.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn roots(corpus: &Path) -> Vec<PathBuf> {
    let mut repos: Vec<PathBuf> = std::fs::read_dir(corpus)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    repos.sort();
    let mut roots = Vec::new();
    for repo in repos {
        let Ok(list) = std::fs::read_to_string(repo.join("roots.txt")) else {
            continue;
        };
        for line in list.lines().map(str::trim).filter(|l| !l.is_empty()) {
            roots.push(repo.join("tree").join(line));
        }
    }
    roots
}

/// The class of a refusal: the API server's reason without the object's own words.
fn class(stderr: &str) -> String {
    if stderr.contains("install its CustomResourceDefinition first") {
        "custom resource without its CRD in the tree".into()
    } else if stderr.contains("no matches for kind") {
        "a group/version Kubernetes 1.31 no longer serves".into()
    } else if stderr.contains("spec.selector: Required value") {
        "workload without a selector".into()
    } else {
        stderr
            .lines()
            .find(|l| l.starts_with("error") || l.contains("rror"))
            .unwrap_or(stderr)
            .to_string()
    }
}

#[test]
fn real_world_roots_apply_to_a_fresh_engine() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/real-world-kustomize");
    if !corpus.is_dir() {
        eprintln!("skipped: {} is absent", corpus.display());
        return;
    }
    let roots = roots(&corpus);
    let work = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let mut applied = 0;
    let mut refused: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (index, root) in roots.iter().enumerate() {
        let state = work.path().join(format!("{index}.db"));
        let out = Command::new(env!("CARGO_BIN_EXE_reconcile"))
            .arg("apply")
            .arg(root)
            .arg("--create-namespace")
            .arg("--target")
            .arg(format!("engine:{}", state.display()))
            .current_dir(work.path())
            .env("NO_COLOR", "1")
            .env_remove("RECONCILE_ENGINE_STATE")
            .output()
            .unwrap_or_else(|e| panic!("running reconcile: {e}"));
        let shown = root
            .strip_prefix(&corpus)
            .unwrap_or(root)
            .display()
            .to_string();
        if out.status.success() {
            applied += 1;
        } else {
            let stderr = String::from_utf8_lossy(&out.stderr);
            refused.entry(class(&stderr)).or_default().push(shown);
        }
    }
    println!("{applied} of {} roots apply", roots.len());
    for (why, which) in &refused {
        println!("{} refused: {why}", which.len());
        for root in which {
            println!("    {root}");
        }
    }
    let allowed = [
        "custom resource without its CRD in the tree",
        "workload without a selector",
        "a group/version Kubernetes 1.31 no longer serves",
    ];
    let unexpected: Vec<&String> = refused
        .keys()
        .filter(|k| !allowed.contains(&k.as_str()))
        .collect();
    assert!(
        unexpected.is_empty(),
        "refusals Kubernetes would not make: {unexpected:#?}"
    );
    assert!(applied >= 92, "{applied} of {} apply", roots.len());
}

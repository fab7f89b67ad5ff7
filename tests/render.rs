//! Render fixtures: `tests/data/render/<case>/` holds an input tree (`input/`, built at
//! `input/` or at the directory named in `root`) and either `expected.yaml` (what
//! `kubectl kustomize` prints) or `expected.err` (our error message, with the case
//! directory written `$CASE` and the repository `$REPO`).
//!
//! `UPDATE_EXPECT=1 cargo test --test render` rewrites the goldens: `expected.yaml` from
//! `kubectl kustomize` (the oracle), `expected.err` from our own error. Cases that cannot
//! pass yet are listed in `tests/data/render/known_failures.txt` (`case  reason`); the test
//! also fails when a listed case passes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use reconcile::render;
use reconcile::source::DiskFs;

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/render")
}

fn build_dir(case: &Path) -> PathBuf {
    match std::fs::read_to_string(case.join("root")) {
        Ok(root) => case.join(root.trim()),
        Err(_) => case.join("input"),
    }
}

fn render_case(case: &Path) -> Result<String, String> {
    let dir = build_dir(case);
    let fs = DiskFs::for_dir(&dir).map_err(|e| e.to_string())?;
    let outcome = std::panic::catch_unwind(|| render::render(&fs, &dir));
    match outcome {
        Ok(Ok(resources)) => Ok(render::to_yaml(&resources)),
        Ok(Err(e)) => Err(e
            .to_string()
            .replace(&case.display().to_string(), "$CASE")
            .replace(env!("CARGO_MANIFEST_DIR"), "$REPO")
            + "\n"),
        Err(_) => Err("panic\n".into()),
    }
}

/// Runs the oracle; `None` when kubectl is not installed.
fn kubectl_kustomize(dir: &Path) -> Option<Result<String, String>> {
    let output = Command::new("kubectl")
        .arg("kustomize")
        .arg(dir)
        .output()
        .ok()?;
    if output.status.success() {
        Some(Ok(String::from_utf8_lossy(&output.stdout).into_owned()))
    } else {
        Some(Err(String::from_utf8_lossy(&output.stderr).into_owned()))
    }
}

/// `None` when the case passes, else why not.
fn check_case(case: &Path, update: bool) -> Option<String> {
    let expected_yaml = case.join("expected.yaml");
    let expected_err = case.join("expected.err");
    let actual = render_case(case);
    if update {
        if expected_yaml.exists() {
            match kubectl_kustomize(&build_dir(case)) {
                Some(Ok(text)) => std::fs::write(&expected_yaml, text).ok()?,
                Some(Err(e)) => return Some(format!("kubectl failed on a success case: {e}")),
                None => return Some("UPDATE_EXPECT needs kubectl".into()),
            }
        } else if let Err(message) = &actual {
            std::fs::write(&expected_err, message).ok()?;
        }
    }
    if let Ok(expected) = std::fs::read_to_string(&expected_yaml) {
        return match actual {
            Ok(text) if text == expected => None,
            Ok(text) => Some(diff(&expected, &text)),
            Err(e) => Some(format!("error: {e}")),
        };
    }
    let expected = std::fs::read_to_string(&expected_err).unwrap_or_default();
    match actual {
        Ok(_) => Some("expected an error, got success".into()),
        Err(message) if message == expected => None,
        Err(message) => Some(format!(
            "error differs:\n  expected: {expected}  actual:   {message}"
        )),
    }
}

fn diff(expected: &str, actual: &str) -> String {
    let mut out = String::from("output differs:\n");
    for change in similar::TextDiff::from_lines(expected, actual).iter_all_changes() {
        let sign = match change.tag() {
            similar::ChangeTag::Delete => '-',
            similar::ChangeTag::Insert => '+',
            similar::ChangeTag::Equal => continue,
        };
        out.push_str(&format!("  {sign}{change}"));
    }
    out
}

fn known_failures() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(data_dir().join("known_failures.txt")).unwrap_or_default();
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| match l.split_once(char::is_whitespace) {
            Some((name, reason)) => (name.to_string(), reason.trim().to_string()),
            None => (l.to_string(), String::new()),
        })
        .collect()
}

#[test]
fn render_fixtures() {
    let update = std::env::var_os("UPDATE_EXPECT").is_some();
    let mut cases: Vec<PathBuf> = std::fs::read_dir(data_dir())
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    cases.sort();
    assert!(
        !cases.is_empty(),
        "no fixtures under {}",
        data_dir().display()
    );
    let known = known_failures();
    let mut failures = BTreeMap::new();
    for case in &cases {
        let name = case
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if let Some(reason) = check_case(case, update) {
            failures.insert(name, reason);
        }
    }
    println!(
        "render fixtures: passed {}/{}",
        cases.len() - failures.len(),
        cases.len()
    );
    let mut message = String::new();
    for (name, reason) in &failures {
        if !known.contains_key(name) {
            message.push_str(&format!("FAIL {name}: {reason}\n"));
        }
    }
    for name in known.keys() {
        if !failures.contains_key(name) && cases.iter().any(|c| c.ends_with(name)) {
            message.push_str(&format!(
                "{name} passes now: remove it from known_failures.txt\n"
            ));
        }
    }
    assert!(message.is_empty(), "{message}");
}

//! The kustomize conformance corpus (`../shared/kustomize-corpus/cases`), run through the
//! library: success cases must match `expected.yaml` byte for byte, error cases must fail.
//!
//! Cases we cannot pass yet are listed in `tests/corpus_known_failures.txt` (`name  reason`
//! per line). The test fails when an unlisted case fails and when a listed case passes, so
//! the list stays honest. `UPDATE_KNOWN_FAILURES=1` rewrites the list from the current run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use reconcile::render;
use reconcile::source::DiskFs;

/// `../shared/kustomize-corpus/cases`, or `$KUSTOMIZE_CORPUS/cases` when set.
fn corpus_dir() -> PathBuf {
    match std::env::var_os("KUSTOMIZE_CORPUS") {
        Some(dir) => PathBuf::from(dir).join("cases"),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/kustomize-corpus/cases"),
    }
}

fn known_failures_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus_known_failures.txt")
}

/// The outcome of one case: `None` when it passes, otherwise why not.
fn run_case(case: &Path) -> Option<String> {
    let root = match std::fs::read_to_string(case.join("root")) {
        Ok(r) => r.trim().to_string(),
        Err(e) => return Some(format!("unreadable root file: {e}")),
    };
    let dir = case.join(root);
    let expected = std::fs::read(case.join("expected.yaml")).ok();
    let outcome = std::panic::catch_unwind(|| {
        let fs = DiskFs::for_dir(&dir).map_err(|e| e.to_string())?;
        render::render(&fs, &dir)
            .map(|r| render::to_yaml(&r))
            .map_err(|e| e.to_string())
    });
    let outcome = match outcome {
        Ok(o) => o,
        Err(_) => return Some("panic".into()),
    };
    match (expected, outcome) {
        (Some(expected), Ok(actual)) if expected == actual.as_bytes() => None,
        (Some(_), Ok(_)) => Some("output differs".into()),
        (Some(_), Err(e)) => Some(format!("error: {}", first_line(&e))),
        (None, Err(_)) => None,
        (None, Ok(_)) => Some("expected an error, got success".into()),
    }
}

fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default();
    let mut short: String = line.chars().take(400).collect();
    if short.len() < line.len() {
        short.push('…');
    }
    short
}

fn read_known_failures() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(known_failures_file()).unwrap_or_default();
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
fn kustomize_corpus() {
    let cases_dir = corpus_dir();
    let Ok(entries) = std::fs::read_dir(&cases_dir) else {
        println!(
            "SKIP: kustomize corpus not found at {}",
            cases_dir.display()
        );
        return;
    };
    let mut cases: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("root").is_file())
        .collect();
    cases.sort();

    let filter = std::env::var("CORPUS_FILTER").unwrap_or_default();
    let known = read_known_failures();
    let mut failures = BTreeMap::new();
    let mut passed = 0;
    for case in &cases {
        let name = case
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !name.contains(&filter) {
            continue;
        }
        match run_case(case) {
            None => passed += 1,
            Some(reason) => {
                failures.insert(name, reason);
            }
        }
    }
    let total = passed + failures.len();
    for (name, reason) in &failures {
        println!("FAIL {name}: {reason}");
    }
    println!("corpus: passed {passed}/{total}");

    if std::env::var_os("UPDATE_KNOWN_FAILURES").is_some() && filter.is_empty() {
        let mut text = String::from(
            "# Corpus cases that do not pass yet: `case  reason`. Keep this list shrinking.\n",
        );
        for (name, reason) in &failures {
            text.push_str(&format!("{name}  {reason}\n"));
        }
        std::fs::write(known_failures_file(), text).unwrap_or_else(|e| panic!("writing list: {e}"));
        return;
    }

    let unexpected: Vec<&String> = failures
        .keys()
        .filter(|n| !known.contains_key(*n))
        .collect();
    let now_passing: Vec<&String> = known
        .keys()
        .filter(|n| n.contains(&filter) && !failures.contains_key(*n))
        .filter(|n| cases.iter().any(|c| c.ends_with(n.as_str())))
        .collect();
    let mut message = String::new();
    if !unexpected.is_empty() {
        message.push_str(&format!(
            "{} case(s) fail and are not listed as known:\n",
            unexpected.len()
        ));
        for name in &unexpected {
            message.push_str(&format!("  {name}: {}\n", failures[*name]));
        }
    }
    if !now_passing.is_empty() {
        message.push_str(&format!(
            "{} listed case(s) now pass; remove them from tests/corpus_known_failures.txt:\n",
            now_passing.len()
        ));
        for name in &now_passing {
            message.push_str(&format!("  {name}\n"));
        }
    }
    assert!(message.is_empty(), "{message}");
}

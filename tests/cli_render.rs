//! The real `reconcile` binary: exit codes, stdout/stderr discipline of `render`,
//! `validate` and `schema`, and the committed schema being current.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn reconcile(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_reconcile"))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running reconcile: {e}"))
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/render")
        .join(name)
        .join("input")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn render_prints_the_build_and_exits_zero() {
    let case = fixture("configmap-generator");
    let out = reconcile(&["render", case.to_str().unwrap_or_default()]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    let expected = std::fs::read_to_string(
        case.parent()
            .map(|p| p.join("expected.yaml"))
            .unwrap_or_default(),
    )
    .unwrap_or_default();
    assert_eq!(text(&out.stdout), expected);
    assert!(out.stderr.is_empty());
}

#[test]
fn render_json_is_an_array_of_objects() {
    let case = fixture("configmap-generator");
    let out = reconcile(&["render", "-o", "json", case.to_str().unwrap_or_default()]);
    assert_eq!(out.status.code(), Some(0));
    let parsed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let items = parsed.as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 2);
    assert!(
        items
            .iter()
            .all(|o| o.get("kind").and_then(|k| k.as_str()) == Some("ConfigMap"))
    );
}

#[test]
fn render_errors_go_to_stderr_only() {
    for case in [
        "error-missing-resource-file",
        "error-bad-yaml",
        "error-cycle",
        "error-unknown-field",
    ] {
        let dir = fixture(case);
        let dir = if case == "error-cycle" {
            dir.join("a")
        } else {
            dir
        };
        let out = reconcile(&["render", dir.to_str().unwrap_or_default()]);
        assert_eq!(out.status.code(), Some(1), "{case}");
        assert!(out.stdout.is_empty(), "{case}: stdout must be empty");
        let err = text(&out.stderr);
        assert!(err.starts_with("error: "), "{case}: {err}");
    }
}

#[test]
fn render_of_a_missing_directory_fails() {
    let out = reconcile(&["render", "/nonexistent/reconcile/dir"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(text(&out.stderr).contains("/nonexistent/reconcile/dir"));
}

#[test]
fn validate_reports_every_problem() {
    let dir = std::env::temp_dir().join(format!("reconcile-validate-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_default();
    std::fs::write(
        dir.join("kustomization.yaml"),
        "resources:\n- missing.yaml\n- bad.yaml\nnamePrefx: typo-\n",
    )
    .unwrap_or_default();
    std::fs::write(dir.join("bad.yaml"), "kind: [unclosed\n").unwrap_or_default();
    let out = reconcile(&["validate", dir.to_str().unwrap_or_default()]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("namePrefx"), "{err}");
    assert!(err.contains("missing.yaml"), "{err}");
    assert!(err.contains("bad.yaml"), "{err}");
    assert!(err.contains("3 problem(s) found"), "{err}");
}

#[test]
fn validate_accepts_a_good_tree() {
    let case = fixture("secret-generator");
    let out = reconcile(&["validate", case.to_str().unwrap_or_default()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn committed_kustomization_schema_is_current() {
    let out = reconcile(&["schema", "kustomization"]);
    assert_eq!(out.status.code(), Some(0));
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/kustomization.json");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == text(&out.stdout),
        "schemas/kustomization.json is stale: run `reconcile schema kustomization > schemas/kustomization.json`"
    );
}

#[test]
fn unknown_schema_is_an_error() {
    let out = reconcile(&["schema", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
}

#[test]
fn validate_reports_patches_that_select_nothing() {
    let dir = std::env::temp_dir().join(format!("reconcile-validate-patch-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_default();
    std::fs::write(
        dir.join("kustomization.yaml"),
        "resources:\n- cm.yaml\npatches:\n- target:\n    kind: Deployment\n  patch: |-\n    - op: add\n      path: /metadata/labels\n      value: {a: b}\n",
    )
    .unwrap_or_default();
    std::fs::write(
        dir.join("cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n",
    )
    .unwrap_or_default();
    let render = reconcile(&["render", dir.to_str().unwrap_or_default()]);
    let validate = reconcile(&["validate", dir.to_str().unwrap_or_default()]);
    let _ = std::fs::remove_dir_all(&dir);
    // kustomize builds anyway; validate says the patch did nothing.
    assert_eq!(render.status.code(), Some(0));
    assert_eq!(validate.status.code(), Some(1));
    assert!(
        text(&validate.stderr).contains("selects no resource"),
        "{}",
        text(&validate.stderr)
    );
}

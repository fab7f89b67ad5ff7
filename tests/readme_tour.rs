//! The README's tour works as written: every command line of its "A tour" block runs, in
//! order, in a fresh copy of the demo (`base/`, `overlays/`) with the built binary on `PATH`.
//! A line whose comment says `# exit N` must exit N; every other line must exit 0.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The command lines of the README's tour, each with the exit code it must give.
fn tour_commands(readme: &str) -> Vec<(String, i32)> {
    let start = readme
        .find("## A tour")
        .unwrap_or_else(|| panic!("README.md has no \"## A tour\" section"));
    let section = &readme[start + 1..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    section
        .lines()
        .filter_map(|line| line.strip_prefix("    "))
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let code = line
                .rsplit_once("# exit ")
                .and_then(|(_, rest)| rest.split(':').next())
                .and_then(|n| n.trim().parse().ok())
                .unwrap_or(0);
            (line.to_string(), code)
        })
        .collect()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("{}: {e}", to.display()));
    let entries = std::fs::read_dir(from).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
    for entry in entries {
        let entry = entry.unwrap_or_else(|e| panic!("{e}"));
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target)
                .unwrap_or_else(|e| panic!("{}: {e}", target.display()));
        }
    }
}

#[test]
fn the_readme_tour_runs_as_written() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(repo.join("README.md"))
        .unwrap_or_else(|e| panic!("README.md: {e}"));
    let commands = tour_commands(&readme);
    assert!(commands.len() >= 20, "the tour shrank to {commands:?}");
    assert!(
        commands
            .iter()
            .any(|(line, _)| line.contains("--error-rate")),
        "the tour lost its failing release"
    );

    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    for demo in ["base", "overlays"] {
        copy_dir(&repo.join(demo), &dir.path().join(demo));
    }
    // A fresh clone is a git repository: its root holds the engine state.
    std::fs::create_dir_all(dir.path().join(".git")).unwrap_or_else(|e| panic!("{e}"));
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_reconcile"));
    let bin_dir = binary.parent().unwrap_or_else(|| panic!("no binary dir"));
    let path = std::env::join_paths(std::iter::once(bin_dir.to_path_buf()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .unwrap_or_else(|e| panic!("{e}"));

    for (line, expected) in commands {
        let out = Command::new("bash")
            .arg("-c")
            .arg(&line)
            .current_dir(dir.path())
            .env("PATH", &path)
            .env("NO_COLOR", "1")
            .env_remove("RECONCILE_TARGET")
            .env_remove("RECONCILE_ENGINE_STATE")
            .output()
            .unwrap_or_else(|e| panic!("running bash: {e}"));
        let code = out.status.code().unwrap_or(-1);
        assert_eq!(
            code,
            expected,
            "README tour line failed:\n  {line}\nstdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !String::from_utf8_lossy(&out.stderr).contains("panicked"),
            "{line}"
        );
    }
}

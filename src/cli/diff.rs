//! `reconcile diff`: the rendered desired state at two revisions, compared per application
//! (text, JSON, or a pull-request comment in markdown with a length cap).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};

use super::plan::write_stdout;
use super::source::SourceArgs;
use super::{EXIT_CHANGES, EXIT_ERROR, EXIT_OK};
use crate::plan::config::{CONFIG_FILE, Config};
use crate::review::{self, App, AppDiff, Report, RevisionInfo, Side};
use crate::source::Fs;
use crate::source::git::{GitFs, GitSource};

/// Output formats of `diff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DiffFormat {
    /// For people: a line per change and its diff.
    Text,
    /// The documented JSON format (`reconcile schema diff`).
    Json,
    /// A pull-request comment: summary table, one collapsible section per application.
    Markdown,
}

/// `reconcile diff` arguments.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// Applications (names in reconcile.yaml) or kustomization directories to compare; all
    /// affected ones when absent.
    pub apps: Vec<String>,
    /// The revision to compare from (the pull request's target branch).
    #[arg(long)]
    pub base: String,
    /// The revision to compare to.
    #[arg(long, default_value = "HEAD")]
    pub head: String,
    /// A git repository: a local directory or a URL (default: the one holding the current
    /// directory).
    #[arg(long)]
    pub repo: Option<String>,
    /// Limit for each network operation on a remote repository.
    #[arg(long, default_value = "60s")]
    pub git_timeout: String,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "text")]
    pub output: DiffFormat,
    /// Exit 2 when something differs (0 when nothing does, 1 on error).
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Longest markdown output, in characters (GitHub's comment limit by default); cut at
    /// object boundaries, saying what was left out.
    #[arg(long, default_value_t = 65_536)]
    pub max_length: usize,
    /// A handlebars template for the output (gets the JSON report as data).
    #[arg(long)]
    pub template: Option<PathBuf>,
}

/// The applications one revision defines: reconcile.yaml at the root, else every root
/// kustomization of the tree.
fn apps_of(fs: &GitFs, root: &Path) -> anyhow::Result<Vec<App>> {
    let config_path = root.join(CONFIG_FILE);
    match fs.read(&config_path) {
        Ok(bytes) => {
            let config = Config::parse(&String::from_utf8_lossy(&bytes), &config_path)
                .with_context(|| format!("at commit {}", fs.commit()))?;
            if !config.applications.is_empty() {
                return Ok(config
                    .applications
                    .iter()
                    .map(|a| App {
                        name: a.name.clone(),
                        path: a.path.clone(),
                        settings: serde_json::to_string(a).unwrap_or_default(),
                    })
                    .collect());
            }
        }
        Err(crate::source::FsError::NotFound { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(review::deps::roots(fs, &fs.files())
        .into_iter()
        .map(|dir| {
            let relative = dir
                .strip_prefix(root)
                .map(Path::to_path_buf)
                .unwrap_or_default();
            let path = if relative.as_os_str().is_empty() {
                ".".to_string()
            } else {
                relative.display().to_string()
            };
            App {
                name: path.clone(),
                path,
                settings: String::new(),
            }
        })
        .collect())
}

/// Keeps the applications the command line names (by name or directory).
fn select(apps: &[App], wanted: &[String], root: &Path) -> Vec<App> {
    if wanted.is_empty() {
        return apps.to_vec();
    }
    let clean = |p: &str| crate::source::clean(&root.join(p));
    apps.iter()
        .filter(|a| {
            wanted
                .iter()
                .any(|w| *w == a.name || clean(w) == clean(&a.path))
        })
        .cloned()
        .collect()
}

/// `reconcile diff`.
pub fn diff(args: DiffArgs) -> anyhow::Result<i32> {
    let source_args = SourceArgs {
        repo: args.repo.clone(),
        reference: None,
        git_timeout: args.git_timeout.clone(),
    };
    let source: GitSource = source_args.open()?;
    if source.is_remote() {
        let known = |r: &str| {
            r.len() == 40
                && source
                    .resolve(r)
                    .is_ok_and(|sha| sha.eq_ignore_ascii_case(r))
        };
        if !(known(&args.base) && known(&args.head)) {
            let extra: Vec<&str> = [args.base.as_str(), args.head.as_str()]
                .into_iter()
                .filter(|r| r.starts_with("refs/") && !r.starts_with("refs/heads/"))
                .collect();
            source.fetch(&extra)?;
        }
    }
    let base_sha = source.resolve(&args.base)?;
    let head_sha = source.resolve(&args.head)?;
    let (base_fs, head_fs) = (source.tree(&base_sha)?, source.tree(&head_sha)?);
    let root = source.tree_root();
    let (base_apps, head_apps) = (apps_of(&base_fs, &root)?, apps_of(&head_fs, &root)?);
    let (base_apps, head_apps) = (
        select(&base_apps, &args.apps, &root),
        select(&head_apps, &args.apps, &root),
    );
    if !args.apps.is_empty() {
        for wanted in &args.apps {
            let known =
                |apps: &[App]| !select(apps, std::slice::from_ref(wanted), &root).is_empty();
            if !known(&base_apps) && !known(&head_apps) {
                bail!(
                    "{wanted}: not an application or kustomization root at {} or {}",
                    args.base,
                    args.head
                );
            }
        }
    }
    let changed = source.changed_paths(&base_sha, &head_sha)?;
    let base = Side {
        fs: &base_fs,
        root: &root,
        apps: &base_apps,
    };
    let head = Side {
        fs: &head_fs,
        root: &root,
        apps: &head_apps,
    };
    let affected = review::affected(base, head, &changed);
    let comparison = review::compare(base, head, &affected);
    let report = Report::new(
        source.display(),
        RevisionInfo {
            reference: args.base.clone(),
            sha: base_sha,
        },
        RevisionInfo {
            reference: args.head.clone(),
            sha: head_sha,
        },
        comparison,
    );
    let text = match (&args.template, args.output) {
        (Some(path), _) => {
            let template = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            cap(&templated(&report, &template)?, args.max_length)
        }
        (None, DiffFormat::Json) => serde_json::to_string_pretty(&report)? + "\n",
        (None, DiffFormat::Markdown) => markdown(&report, args.max_length),
        (None, DiffFormat::Text) => text(&report),
    };
    write_stdout(&text)?;
    if report.summary.failed_apps > 0 {
        for app in &report.apps {
            for failure in &app.errors {
                eprintln!(
                    "error: {} at {}: {}",
                    app.name, failure.revision, failure.error
                );
            }
        }
        return Ok(EXIT_ERROR);
    }
    Ok(if args.detailed_exitcode && report.has_changes() {
        EXIT_CHANGES
    } else {
        EXIT_OK
    })
}

fn short(sha: &str) -> &str {
    sha.get(..7).unwrap_or(sha)
}

fn headline(report: &Report) -> String {
    format!(
        "{} ({}) → {} ({})",
        report.base.reference,
        short(&report.base.sha),
        report.head.reference,
        short(&report.head.sha)
    )
}

fn summary_line(report: &Report) -> String {
    let s = &report.summary;
    format!(
        "{} added, {} changed, {} removed in {} of {} affected application(s); {} not affected.",
        s.added,
        s.changed,
        s.removed,
        s.changed_apps,
        s.affected,
        report.unaffected.len()
    )
}

fn sign(change: review::ObjectChangeKind) -> (&'static str, &'static str) {
    match change {
        review::ObjectChangeKind::Added => ("+", "added"),
        review::ObjectChangeKind::Changed => ("~", "changed"),
        review::ObjectChangeKind::Removed => ("-", "removed"),
    }
}

/// The report as text.
fn text(report: &Report) -> String {
    let mut out = format!("Comparing {}\n", headline(report));
    for app in &report.apps {
        out.push_str(&format!("Application {} ({})", app.name, app.path));
        if !app.at_base {
            out.push_str(" [new]");
        }
        if !app.at_head {
            out.push_str(" [gone]");
        }
        out.push('\n');
        for failure in &app.errors {
            out.push_str(&format!(
                "  ! {} failed to render: {}\n",
                failure.revision, failure.error
            ));
        }
        if app.errors.is_empty() && app.objects.is_empty() {
            out.push_str("  No changes.\n");
        }
        for object in &app.objects {
            let (mark, word) = sign(object.change);
            out.push_str(&format!("  {mark} {word} {}\n", object.display()));
            for line in object.diff.lines() {
                out.push_str(&format!("      {line}\n"));
            }
        }
    }
    out.push_str(&summary_line(report));
    out.push('\n');
    out
}

/// A code fence longer than any run of backticks in `text`.
fn fence_for(text: &str) -> String {
    let mut longest = 0;
    let mut run = 0;
    for c in text.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    "`".repeat((longest + 1).max(3))
}

fn app_heading(app: &AppDiff) -> String {
    let s = &app.summary;
    let state = if !app.errors.is_empty() {
        " — render failed".to_string()
    } else if app.objects.is_empty() {
        " — no changes".to_string()
    } else {
        format!(" — +{} ~{} −{}", s.added, s.changed, s.removed)
    };
    format!("<code>{}</code> ({}){state}", app.name, app.path)
}

/// The report as a pull-request comment, at most `max` characters: whole objects only,
/// every `<details>` and fence closed, and a last line saying what was left out.
fn markdown(report: &Report, max: usize) -> String {
    let mut out = format!("### reconcile diff {}\n\n", headline(report));
    out.push_str("| Application | Added | Changed | Removed |\n|---|---:|---:|---:|\n");
    for app in &report.apps {
        let failed = if app.errors.is_empty() {
            ""
        } else {
            " ⚠️ render failed"
        };
        out.push_str(&format!(
            "| {}{failed} | {} | {} | {} |\n",
            app.name, app.summary.added, app.summary.changed, app.summary.removed
        ));
    }
    out.push_str(&format!("\n**{}**\n", summary_line(report)));
    // Room kept for closing a section and the note on what was left out.
    const RESERVE: usize = 400;
    let budget = max.saturating_sub(RESERVE);
    let mut left_out = 0usize;
    let mut left_apps = BTreeSet::new();
    for app in &report.apps {
        if !app.has_changes() {
            continue;
        }
        let open = format!("\n<details><summary>{}</summary>\n\n", app_heading(app));
        let close = "</details>\n";
        if out.chars().count() + open.chars().count() + close.len() > budget {
            left_out += app.objects.len();
            left_apps.insert(app.name.clone());
            continue;
        }
        out.push_str(&open);
        for failure in &app.errors {
            let fence = fence_for(&failure.error);
            let block = format!(
                "**{} failed to render:**\n{fence}\n{}\n{fence}\n\n",
                failure.revision, failure.error
            );
            if out.chars().count() + block.chars().count() + close.len() > budget {
                left_apps.insert(app.name.clone());
                continue;
            }
            out.push_str(&block);
        }
        for object in &app.objects {
            let (_, word) = sign(object.change);
            let fence = fence_for(&object.diff);
            let block = format!(
                "**{word}** {}\n{fence}diff\n{}{}{fence}\n\n",
                object.display(),
                object.diff,
                if object.diff.ends_with('\n') {
                    ""
                } else {
                    "\n"
                }
            );
            if out.chars().count() + block.chars().count() + close.len() > budget {
                left_out += 1;
                left_apps.insert(app.name.clone());
                continue;
            }
            out.push_str(&block);
        }
        out.push_str(close);
    }
    if left_out > 0 || !left_apps.is_empty() {
        out.push_str(&format!(
            "\n_Left out to stay under {max} characters: {left_out} object diff(s) of {} ({}). Run `reconcile diff --base {} --head {}` for everything._\n",
            left_apps.len(),
            left_apps.into_iter().collect::<Vec<_>>().join(", "),
            report.base.sha,
            report.head.sha
        ));
    }
    out
}

/// Cuts templated output to `max` characters at a line boundary, closing a code fence left
/// open and saying so.
fn cap(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    const NOTE: &str = "\n_Output cut at the length limit._\n";
    let budget = max.saturating_sub(NOTE.len() + 16);
    let mut out = String::new();
    let mut open_fence: Option<String> = None;
    for line in text.split_inclusive('\n') {
        if out.chars().count() + line.chars().count() > budget {
            break;
        }
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") {
            let ticks: String = trimmed.chars().take_while(|c| *c == '`').collect();
            match &open_fence {
                Some(f) if ticks.len() >= f.len() && trimmed.trim() == ticks => open_fence = None,
                None => open_fence = Some(ticks),
                _ => {}
            }
        }
        out.push_str(line);
    }
    if let Some(fence) = open_fence {
        if !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&fence);
        out.push('\n');
    }
    out.push_str(NOTE);
    out
}

/// The report through a handlebars template (data: the JSON report plus `line`).
fn templated(report: &Report, template: &str) -> anyhow::Result<String> {
    let mut handlebars = handlebars::Handlebars::new();
    handlebars.register_escape_fn(handlebars::no_escape);
    handlebars
        .register_template_string("diff", template)
        .map_err(|e| anyhow::anyhow!("template: {e}"))?;
    let mut data = serde_json::to_value(report)?;
    data["line"] = serde_json::json!(summary_line(report));
    handlebars
        .render("diff", &data)
        .map_err(|e| anyhow::anyhow!("template: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_closes_an_open_fence() {
        let text = format!("head\n```diff\n{}```\n", "+ line\n".repeat(100));
        let out = cap(&text, 200);
        assert!(out.chars().count() <= 200, "{}", out.len());
        assert_eq!(out.matches("```").count() % 2, 0, "{out}");
        assert!(out.contains("cut at the length limit"));
    }

    #[test]
    fn fences_outgrow_backticks_in_the_diff() {
        assert_eq!(fence_for("a ``` b"), "````");
        assert_eq!(fence_for("plain"), "```");
    }
}

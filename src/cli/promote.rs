//! `reconcile promote`: carry images (and the `promotion:` rules of reconcile.yaml) from one
//! environment folder to the next, show the file and rendered diffs, write, and commit.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use serde_json::json;

use super::EXIT_OK;
use super::plan::write_stdout;
use crate::plan::config::{CONFIG_FILE, Config};
use crate::promote::{self, FileEdit, Promotion, PromotionRule};
use crate::source::{DiskFs, EntryKind, Fs, FsError, clean};

/// Output formats of `promote`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PromoteFormat {
    /// For people.
    Text,
    /// JSON: the changes, the file diffs, the rendered diff, the commit.
    Json,
}

/// `reconcile promote` arguments.
#[derive(Debug, Args)]
pub struct PromoteArgs {
    /// The environment folder to promote from (`overlays/dev`).
    #[arg(long)]
    pub from: String,
    /// The environment folder to promote to (`overlays/prod`).
    #[arg(long)]
    pub to: String,
    /// The repository: a local clone (default: the one holding the current directory), or a
    /// remote URL (read from its cache mirror; with --commit the commit is pushed).
    #[arg(long)]
    pub repo: Option<String>,
    /// With a remote --repo: the branch to promote on (default: the remote's default branch;
    /// --commit without --branch pushes onto it).
    #[arg(long = "ref")]
    pub reference: Option<String>,
    /// With a remote --repo: limit for each network operation (`60s`, `2m`).
    #[arg(long, default_value = "60s")]
    pub git_timeout: String,
    /// Show the diffs, write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Commit the edited files (author from git config).
    #[arg(long)]
    pub commit: bool,
    /// With --commit: create this branch from HEAD, switch to it and commit there (with a
    /// remote --repo: push the commit as this new branch, for a pull request).
    #[arg(long, requires = "commit")]
    pub branch: Option<String>,
    /// With --commit: the commit message (default: one line per change).
    #[arg(long, requires = "commit")]
    pub message: Option<String>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "text")]
    pub output: PromoteFormat,
}

/// The tree with a promotion's edits laid over it (to render the target after).
#[derive(Debug)]
struct Edited<'a> {
    base: &'a dyn Fs,
    edits: &'a [FileEdit],
}

impl Fs for Edited<'_> {
    fn tree_root(&self) -> &Path {
        self.base.tree_root()
    }
    fn entry_kind(&self, path: &Path) -> Result<Option<EntryKind>, FsError> {
        if self.edits.iter().any(|e| e.path == path) {
            return Ok(Some(EntryKind::File));
        }
        self.base.entry_kind(path)
    }
    fn read_link(&self, path: &Path) -> Result<PathBuf, FsError> {
        self.base.read_link(path)
    }
    fn read_raw(&self, path: &Path) -> Result<Vec<u8>, FsError> {
        match self.edits.iter().find(|e| e.path == path) {
            Some(edit) => Ok(edit.after.clone()),
            None => self.base.read_raw(path),
        }
    }
    fn list_raw(&self, path: &Path) -> Result<Vec<String>, FsError> {
        let mut names = self.base.list_raw(path)?;
        for edit in self.edits {
            if edit.path.parent() == Some(path)
                && let Some(name) = edit.path.file_name().and_then(|n| n.to_str())
                && !names.iter().any(|n| n == name)
            {
                names.push(name.to_string());
            }
        }
        names.sort();
        Ok(names)
    }
}

fn relative(path: &Path, root: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// The unified diff of one edited file.
fn file_diff(edit: &FileEdit, root: &Path) -> String {
    let name = relative(&edit.path, root);
    let before = edit
        .before
        .as_deref()
        .map(String::from_utf8_lossy)
        .unwrap_or_default();
    let after = String::from_utf8_lossy(&edit.after);
    similar::TextDiff::from_lines(before.as_ref(), after.as_ref())
        .unified_diff()
        .context_radius(3)
        .header(&format!("a/{name}"), &format!("b/{name}"))
        .to_string()
}

/// Writes every file, each through a temporary file and a rename (a crash leaves whole files).
fn write_all(edits: &[FileEdit]) -> anyhow::Result<()> {
    for edit in edits {
        let temporary = edit.path.with_extension("reconcile-promote.tmp");
        if let Some(parent) = edit.path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&temporary, &edit.after)
            .with_context(|| format!("writing {}", temporary.display()))?;
        std::fs::rename(&temporary, &edit.path)
            .with_context(|| format!("writing {}", edit.path.display()))?;
    }
    Ok(())
}

/// Commits the edited files with git2 (optionally on a new branch); returns the SHA.
fn commit(
    repo: &git2::Repository,
    workdir: &Path,
    promotion: &Promotion,
    message: &str,
) -> anyhow::Result<String> {
    let mut index = repo.index().context("reading the git index")?;
    for edit in &promotion.edits {
        let path = edit.path.strip_prefix(workdir).unwrap_or(&edit.path);
        index
            .add_path(path)
            .with_context(|| format!("staging {}", path.display()))?;
    }
    index.write().context("writing the git index")?;
    let tree = repo.find_tree(index.write_tree()?)?;
    let signature = repo
        .signature()
        .context("no commit author: set git config user.name and user.email")?;
    let parent = repo.head().ok().and_then(|h| h.peel_to_commit().ok());
    let parents: Vec<&git2::Commit> = parent.iter().collect();
    let oid = repo
        .commit(
            Some("HEAD"),
            &signature,
            &signature,
            message,
            &tree,
            &parents,
        )
        .context("committing")?;
    Ok(oid.to_string())
}

/// `reconcile promote`.
pub fn promote(args: PromoteArgs) -> anyhow::Result<i32> {
    if let Some(url) = args
        .repo
        .as_deref()
        .filter(|r| crate::source::git::is_url(r) && !Path::new(r).exists())
    {
        return promote_remote(&args, url);
    }
    if args.reference.is_some() {
        bail!("--ref: only with a remote --repo URL (a local clone promotes its work tree)");
    }
    let here = std::env::current_dir().context("reading the current directory")?;
    let start = match &args.repo {
        Some(repo) => PathBuf::from(repo),
        None => here.clone(),
    };
    let repo = git2::Repository::discover(&start).ok();
    let workdir = repo
        .as_ref()
        .and_then(|r| r.workdir())
        .map(Path::to_path_buf);
    // Relative folders are taken from the repository root with --repo, else from here.
    let base = match (&args.repo, &workdir) {
        (Some(_), Some(w)) => w.clone(),
        (Some(r), None) => bail!("{r}: not a git repository with a work tree"),
        (None, _) => here.clone(),
    };
    let fs = DiskFs::for_dir(&base).map_err(|e| anyhow::anyhow!("{e}"))?;
    let canonical = |p: &str| -> anyhow::Result<PathBuf> {
        let path = clean(&base.join(p));
        std::fs::canonicalize(&path).with_context(|| format!("{p}: no such folder"))
    };
    let (from, to) = (canonical(&args.from)?, canonical(&args.to)?);
    if from == to {
        bail!("--from and --to name the same folder");
    }
    let root = workdir
        .as_deref()
        .and_then(|w| std::fs::canonicalize(w).ok())
        .unwrap_or_else(|| base.clone());
    let rule = find_rule(&from, &to)?;
    let promotion = promote::promote(&fs, &from, &to, rule.as_ref())?;
    if promotion.changes.is_empty() {
        return nothing_to_promote(args.output);
    }
    let rendered = rendered_change(&fs, &promotion, &to, &root)?;
    let mut committed = None;
    if !args.dry_run {
        let message = commit_message(&args, &promotion, &from, &to, &root);
        if args.commit {
            let (Some(repo), Some(workdir)) = (&repo, &workdir) else {
                bail!("--commit: {} is not in a git work tree", base.display());
            };
            let workdir = std::fs::canonicalize(workdir).unwrap_or_else(|_| workdir.clone());
            for edit in &promotion.edits {
                let path = edit.path.strip_prefix(&workdir).unwrap_or(&edit.path);
                let status = repo.status_file(path).unwrap_or(git2::Status::CURRENT);
                if !(status.is_empty() || status == git2::Status::WT_NEW && edit.before.is_none()) {
                    bail!(
                        "{}: has uncommitted changes; commit or stash them before promoting",
                        path.display()
                    );
                }
            }
            if let Some(branch) = &args.branch {
                let head = repo
                    .head()
                    .and_then(|h| h.peel_to_commit())
                    .context("reading HEAD")?;
                repo.branch(branch, &head, false)
                    .with_context(|| format!("creating branch {branch}"))?;
                repo.set_head(&format!("refs/heads/{branch}"))
                    .with_context(|| format!("switching to branch {branch}"))?;
            }
            write_all(&promotion.edits)?;
            committed = Some(commit(repo, &workdir, &promotion, &message)?);
        } else {
            write_all(&promotion.edits)?;
        }
    }
    print_outcome(
        &args,
        &Outcome {
            root: &root,
            from: &from,
            to: &to,
            promotion: &promotion,
            rendered: &rendered,
            committed: committed.as_deref(),
            pushed: None,
        },
    )?;
    Ok(EXIT_OK)
}

/// What a promotion did, for printing.
struct Outcome<'a> {
    root: &'a Path,
    from: &'a Path,
    to: &'a Path,
    promotion: &'a Promotion,
    rendered: &'a [crate::review::ObjectChange],
    committed: Option<&'a str>,
    /// The remote and branch a commit was pushed to.
    pushed: Option<(&'a str, &'a str)>,
}

fn nothing_to_promote(output: PromoteFormat) -> anyhow::Result<i32> {
    match output {
        PromoteFormat::Json => write_stdout(
            &(serde_json::to_string_pretty(
                &json!({"changes": [], "files": [], "rendered": [], "commit": null}),
            )? + "\n"),
        )?,
        PromoteFormat::Text => println!("nothing to promote"),
    }
    Ok(EXIT_OK)
}

/// The target rendered before and after the edits, compared as `diff` compares revisions.
fn rendered_change(
    fs: &dyn Fs,
    promotion: &Promotion,
    to: &Path,
    root: &Path,
) -> anyhow::Result<Vec<crate::review::ObjectChange>> {
    let before = crate::render::render(fs, to).map(|r| crate::render::to_values(&r));
    let edited = Edited {
        base: fs,
        edits: &promotion.edits,
    };
    let after = crate::render::render(&edited, to)
        .map(|r| crate::render::to_values(&r))
        .map_err(|e| {
            anyhow::anyhow!("the promoted {} would not render: {e}", relative(to, root))
        })?;
    Ok(match before {
        Ok(before) => crate::review::object_changes(&before, &after),
        Err(_) => Vec::new(),
    })
}

/// `--message`, or one line per change.
fn commit_message(
    args: &PromoteArgs,
    promotion: &Promotion,
    from: &Path,
    to: &Path,
    root: &Path,
) -> String {
    args.message.clone().unwrap_or_else(|| {
        let mut text = format!(
            "promote {} → {}\n\n",
            relative(from, root),
            relative(to, root)
        );
        for change in &promotion.changes {
            text.push_str(&format!(
                "- {}: {}\n",
                relative(&change.file, root),
                change.line()
            ));
        }
        text
    })
}

/// `promote --repo URL`: read the branch from the cache mirror; `--dry-run` shows the
/// change, `--commit` makes the commit in the mirror's object database and pushes it (onto
/// the branch, or as the new `--branch`). There is no work tree, so nothing else is
/// written.
fn promote_remote(args: &PromoteArgs, url: &str) -> anyhow::Result<i32> {
    if !args.dry_run && !args.commit {
        bail!(
            "promote --repo {}: a remote has no work tree to write; add --dry-run to look, or --commit to commit and push",
            crate::source::git::redact_url(url)
        );
    }
    let source_args = super::source::SourceArgs {
        repo: Some(url.to_string()),
        reference: args.reference.clone(),
        git_timeout: args.git_timeout.clone(),
    };
    let source = source_args.open()?;
    let reference = args.reference.as_deref().unwrap_or("HEAD");
    let snapshot = source.snapshot(reference)?;
    let root = source.tree_root();
    let fs = &snapshot.fs;
    let folder = |p: &str| -> anyhow::Result<PathBuf> {
        let path = clean(&root.join(p));
        if !path.starts_with(&root) || fs.entry_kind(&path).ok().flatten() != Some(EntryKind::Dir) {
            bail!("{p}: no such folder in {} at {reference}", source.display());
        }
        Ok(path)
    };
    let (from, to) = (folder(&args.from)?, folder(&args.to)?);
    if from == to {
        bail!("--from and --to name the same folder");
    }
    let rule = find_rule_in(fs, &root, &from, &to)?;
    let promotion = promote::promote(fs, &from, &to, rule.as_ref())?;
    if promotion.changes.is_empty() {
        return nothing_to_promote(args.output);
    }
    let rendered = rendered_change(fs, &promotion, &to, &root)?;
    let mut committed = None;
    let mut pushed = None;
    if args.commit && !args.dry_run {
        let branch = match (&args.branch, &args.reference) {
            (Some(branch), _) => branch.clone(),
            (None, Some(reference)) => reference
                .strip_prefix("refs/heads/")
                .unwrap_or(reference)
                .to_string(),
            (None, None) => bail!(
                "--commit with a remote --repo pushes a branch: give --branch NAME (a new branch for a pull request) or --ref BRANCH (onto it)"
            ),
        };
        if args.branch.is_some() && source.resolve(&format!("refs/heads/{branch}")).is_ok() {
            bail!(
                "--branch {branch}: already exists in {}; pick a new name",
                source.display()
            );
        }
        let files: Vec<(PathBuf, Vec<u8>)> = promotion
            .edits
            .iter()
            .map(|e| {
                (
                    e.path.strip_prefix(&root).unwrap_or(&e.path).to_path_buf(),
                    e.after.clone(),
                )
            })
            .collect();
        let message = commit_message(args, &promotion, &from, &to, &root);
        let sha = source.commit_files(&snapshot.sha, &files, &message, Some(&branch))?;
        source.push(&branch)?;
        committed = Some(sha);
        pushed = Some(branch);
    }
    print_outcome(
        args,
        &Outcome {
            root: &root,
            from: &from,
            to: &to,
            promotion: &promotion,
            rendered: &rendered,
            committed: committed.as_deref(),
            pushed: pushed.as_deref().map(|b| (source.display(), b)),
        },
    )?;
    Ok(EXIT_OK)
}

fn print_outcome(args: &PromoteArgs, outcome: &Outcome) -> anyhow::Result<()> {
    let Outcome {
        root,
        from,
        to,
        promotion,
        rendered,
        committed,
        pushed,
    } = outcome;
    let (root, from, to) = (*root, *from, *to);
    let committed = committed.map(str::to_string);
    match args.output {
        PromoteFormat::Json => {
            let files: Vec<_> = promotion
                .edits
                .iter()
                .map(|e| json!({"path": relative(&e.path, root), "diff": file_diff(e, root)}))
                .collect();
            let changes: Vec<_> = promotion
                .changes
                .iter()
                .map(|c| json!({"file": relative(&c.file, root), "what": c.what, "before": c.before, "after": c.after}))
                .collect();
            let value = json!({
                "from": relative(from, root),
                "to": relative(to, root),
                "dryRun": args.dry_run,
                "changes": changes,
                "files": files,
                "rendered": rendered,
                "commit": committed,
                "branch": pushed.map(|(_, b)| b.to_string()).or_else(|| args.branch.clone()),
                "pushedTo": pushed.map(|(r, _)| r.to_string()),
            });
            write_stdout(&(serde_json::to_string_pretty(&value)? + "\n"))?;
        }
        PromoteFormat::Text => {
            let mut out = format!(
                "Promote {} → {}\n",
                relative(from, root),
                relative(to, root)
            );
            for change in &promotion.changes {
                out.push_str(&format!(
                    "  {}: {}\n",
                    relative(&change.file, root),
                    change.line()
                ));
            }
            if args.dry_run {
                out.push_str("\nFiles:\n");
                for edit in &promotion.edits {
                    out.push_str(&file_diff(edit, root));
                }
                out.push_str(&format!("\nRendered {}:\n", relative(to, root)));
                if rendered.is_empty() {
                    out.push_str("  no object changes\n");
                }
                for object in rendered.iter() {
                    out.push_str(&format!("  ~ {}\n", object.display()));
                    for line in object.diff.lines() {
                        out.push_str(&format!("      {line}\n"));
                    }
                }
                out.push_str("Dry run: nothing written.\n");
            } else {
                let short = committed.as_deref().map(|sha| &sha[..sha.len().min(12)]);
                match (pushed, short) {
                    (Some((repo, branch)), Some(sha)) => out.push_str(&format!(
                        "Committed {sha} and pushed it to {repo} as branch {branch}.\n"
                    )),
                    (_, short) => {
                        out.push_str(&format!("Wrote {} file(s).\n", promotion.edits.len()));
                        if let Some(sha) = short {
                            let branch = args
                                .branch
                                .as_deref()
                                .map(|b| format!(" on branch {b}"))
                                .unwrap_or_default();
                            out.push_str(&format!("Committed {sha}{branch}.\n"));
                        }
                    }
                }
            }
            write_stdout(&out)?;
        }
    }
    Ok(())
}

/// The `promotion:` rule of the nearest reconcile.yaml (inside `root`) for this pair of
/// folders, read from `fs`.
fn find_rule_in(
    fs: &dyn Fs,
    root: &Path,
    from: &Path,
    to: &Path,
) -> anyhow::Result<Option<PromotionRule>> {
    let Some(dir) = from
        .ancestors()
        .take_while(|d| d.starts_with(root))
        .find(|d| fs.is_file(&d.join(CONFIG_FILE)))
    else {
        return Ok(None);
    };
    let path = dir.join(CONFIG_FILE);
    let text = fs.read(&path)?;
    let config = Config::parse(&String::from_utf8_lossy(&text), &path)?;
    let same = |a: &str, b: &Path| clean(&dir.join(a)) == b;
    Ok(config
        .promotion
        .into_iter()
        .find(|rule| same(&rule.from, from) && same(&rule.to, to)))
}

/// The `promotion:` rule of the nearest reconcile.yaml for this pair of folders.
fn find_rule(from: &Path, to: &Path) -> anyhow::Result<Option<PromotionRule>> {
    let Some(dir) = from.ancestors().find(|d| d.join(CONFIG_FILE).is_file()) else {
        return Ok(None);
    };
    let config = Config::load(&dir.join(CONFIG_FILE))?;
    let same = |a: &str, b: &Path| std::fs::canonicalize(dir.join(a)).ok().as_deref() == Some(b);
    Ok(config
        .promotion
        .into_iter()
        .find(|rule| same(&rule.from, from) && same(&rule.to, to)))
}

//! `plan`, `apply` and `rollout`: resolve applications and the target, call the planner, the
//! applier or the rollout driver, print text / JSON / markdown, decide the exit code.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};

use super::source::{SourceArgs, Tree};
use super::{EXIT_CHANGES, EXIT_ERROR, EXIT_OK};
use crate::cluster::Cluster;
use crate::diff::Change;
use crate::engine::Engine;
use crate::model::{Gvk, ResId};
use crate::plan::config::{self, Application, CONFIG_FILE, Config};
use crate::plan::{self, ApplyOptions, ApplyReport, PlanOptions, PlanSet, Planned};
use crate::rollout::driver::{self, DriveOptions, Outcome};
use crate::rollout::time;

/// Output formats of `plan`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    /// For people: a line per change, diffs, a summary line (colour on a terminal).
    Text,
    /// The documented JSON format (`reconcile schema plan`).
    Json,
    /// A pull-request comment: summary table, collapsible diffs.
    Markdown,
}

/// `reconcile plan` arguments.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// An application of reconcile.yaml or a directory to render; all applications when absent.
    pub source: Option<String>,
    /// Where the live state is: `engine` (default), `engine:PATH`.
    #[arg(long)]
    pub target: Option<String>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "text")]
    pub output: PlanFormat,
    /// A handlebars template for the output (gets the JSON plan as data).
    #[arg(long)]
    pub template: Option<PathBuf>,
    /// Also save the plan to this file, for `reconcile apply FILE`.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Exit 2 when there are changes (0 when none, 1 on error).
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Plan deletions of objects no longer rendered.
    #[arg(long)]
    pub prune: bool,
    /// Allow prune when the render is empty.
    #[arg(long)]
    pub allow_empty: bool,
    /// Where the files come from (`--repo`, `--ref`).
    #[command(flatten)]
    pub git: SourceArgs,
}

/// `reconcile apply` arguments.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// An application of reconcile.yaml, a directory to render, or a saved plan (`plan.json`).
    pub source: Option<String>,
    /// Where to apply: `engine` (default), `engine:PATH`.
    #[arg(long)]
    pub target: Option<String>,
    /// Delete objects this application applied before and no longer renders.
    #[arg(long)]
    pub prune: bool,
    /// Allow prune when the render is empty.
    #[arg(long)]
    pub allow_empty: bool,
    /// Wait until everything applied is healthy (rollouts carried to the end).
    #[arg(long)]
    pub wait: bool,
    /// How long to wait (`10m`, `90s`; cluster time).
    #[arg(long, default_value = "10m")]
    pub timeout: String,
    /// Show the plan, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Where the files come from (`--repo`, `--ref`).
    #[command(flatten)]
    pub git: SourceArgs,
}

/// `reconcile rollout` arguments.
#[derive(Debug, Args)]
pub struct RolloutArgs {
    /// Where the Deployment is: `engine` (default), `engine:PATH`.
    #[arg(long, global = true)]
    pub target: Option<String>,
    /// Namespace of the Deployment (or write `NAMESPACE/NAME`).
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: RolloutCommand,
}

/// The rollout subcommands.
#[derive(Debug, Subcommand)]
pub enum RolloutCommand {
    /// Where a rollout is: step, weight, analysis runs, replicas.
    Status {
        /// The Deployment.
        deployment: String,
        /// Carry the rollout forward (advancing the engine's clock) until it ends or pauses.
        #[arg(short = 'w', long)]
        watch: bool,
        /// How long to watch (cluster time).
        #[arg(long, default_value = "10m")]
        timeout: String,
    },
    /// The revisions of a Deployment.
    History {
        /// The Deployment.
        deployment: String,
    },
    /// Roll back to the previous revision, or to `--to-revision N`.
    Undo {
        /// The Deployment.
        deployment: String,
        /// The revision to go back to.
        #[arg(long)]
        to_revision: Option<u64>,
        /// Carry the rollback to the end.
        #[arg(long)]
        wait: bool,
    },
    /// Continue a paused rollout; `--full` skips the remaining steps.
    Promote {
        /// The Deployment.
        deployment: String,
        /// Skip all remaining steps.
        #[arg(long)]
        full: bool,
        /// Carry the rollout to the end.
        #[arg(long)]
        wait: bool,
    },
    /// Stop the rollout: new version removed, all traffic back to stable.
    Abort {
        /// The Deployment.
        deployment: String,
    },
    /// Hold the rollout at its current step.
    Pause {
        /// The Deployment.
        deployment: String,
    },
    /// Continue a rollout held by `pause` (at an indefinite pause step: same as promote).
    Resume {
        /// The Deployment.
        deployment: String,
        /// Carry the rollout to the end.
        #[arg(long)]
        wait: bool,
    },
}

/// An application to plan or apply, resolved from the command line and reconcile.yaml.
#[derive(Debug, Clone)]
struct Resolved {
    app: Application,
    dir: PathBuf,
    /// The git tree `dir` lies in (`None`: the disk).
    tree: Option<Tree>,
}

fn cwd() -> anyhow::Result<PathBuf> {
    std::env::current_dir().context("reading the current directory")
}

/// The nearest ancestor of `start` holding reconcile.yaml or .git (the repository root).
fn repo_root(start: &Path) -> PathBuf {
    start
        .ancestors()
        .find(|dir| dir.join(CONFIG_FILE).is_file() || dir.join(".git").exists())
        .unwrap_or(start)
        .to_path_buf()
}

fn find_config(start: &Path) -> anyhow::Result<Option<(Config, PathBuf)>> {
    let Some(dir) = start
        .ancestors()
        .find(|dir| dir.join(CONFIG_FILE).is_file())
    else {
        return Ok(None);
    };
    let config = Config::load(&dir.join(CONFIG_FILE))?;
    Ok(Some((config, dir.to_path_buf())))
}

fn has_kustomization(dir: &Path) -> bool {
    ["kustomization.yaml", "kustomization.yml", "Kustomization"]
        .iter()
        .any(|f| dir.join(f).is_file())
}

/// Applications of a tree read through `--repo`/`--ref`: reconcile.yaml at its root, paths
/// relative to its root.
fn resolve_in_tree(tree: &Tree, source: Option<&str>) -> anyhow::Result<Vec<Resolved>> {
    let config_path = tree.root.join(CONFIG_FILE);
    let config = match tree.fs.read(&config_path) {
        Ok(bytes) => Some(Config::parse(
            &String::from_utf8_lossy(&bytes),
            &config_path,
        )?),
        Err(crate::source::FsError::NotFound { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    let from_config = |app: &Application| Resolved {
        app: app.clone(),
        dir: tree.join(Path::new(&app.path)),
        tree: Some(tree.clone()),
    };
    let has_kustomization = |dir: &Path| {
        ["kustomization.yaml", "kustomization.yml", "Kustomization"]
            .iter()
            .any(|f| tree.fs.is_file(&dir.join(f)))
    };
    match source {
        None => match &config {
            Some(config) if !config.applications.is_empty() => {
                Ok(config.applications.iter().map(from_config).collect())
            }
            _ if has_kustomization(&tree.root) => Ok(vec![Resolved {
                app: Application {
                    name: config::name_for_path(Path::new(".")),
                    path: ".".into(),
                    ..Application::default()
                },
                dir: tree.root.clone(),
                tree: Some(tree.clone()),
            }]),
            _ => bail!(
                "no PATH given, no kustomization at the repository root and no applications in its {CONFIG_FILE}"
            ),
        },
        Some(text) => {
            if let Some(app) = config.as_ref().and_then(|c| c.find(text)) {
                return Ok(vec![from_config(app)]);
            }
            let dir = tree.join(Path::new(text));
            if !tree.fs.is_dir(&dir) {
                bail!(
                    "{text}: neither an application of {CONFIG_FILE} nor a directory in the repository"
                );
            }
            if let Some(app) = config.as_ref().and_then(|c| {
                c.applications
                    .iter()
                    .find(|a| tree.join(Path::new(&a.path)) == dir)
            }) {
                return Ok(vec![from_config(app)]);
            }
            let app = Application {
                name: config::name_for_path(Path::new(text)),
                path: text.to_string(),
                ..Application::default()
            };
            Ok(vec![Resolved {
                app,
                dir,
                tree: Some(tree.clone()),
            }])
        }
    }
}

/// The applications to plan or apply, from the work tree or from `--repo`/`--ref`.
fn resolve_with(source: Option<&str>, git: &SourceArgs) -> anyhow::Result<Vec<Resolved>> {
    match git.tree()? {
        Some(tree) => resolve_in_tree(&tree, source),
        None => resolve(source),
    }
}

fn resolve(source: Option<&str>) -> anyhow::Result<Vec<Resolved>> {
    let here = cwd()?;
    let config = find_config(&here)?;
    let from_config = |app: &Application, root: &Path| Resolved {
        app: app.clone(),
        dir: root.join(&app.path),
        tree: None,
    };
    match source {
        None => match &config {
            Some((config, root)) if !config.applications.is_empty() => Ok(config
                .applications
                .iter()
                .map(|a| from_config(a, root))
                .collect()),
            _ if has_kustomization(&here) => Ok(vec![Resolved {
                app: Application {
                    name: config::name_for_path(Path::new(".")),
                    path: ".".into(),
                    ..Application::default()
                },
                dir: here,
                tree: None,
            }]),
            _ => {
                bail!("no PATH given, no kustomization here and no applications in a {CONFIG_FILE}")
            }
        },
        Some(text) => {
            if let Some((config, root)) = &config
                && let Some(app) = config.find(text)
            {
                return Ok(vec![from_config(app, root)]);
            }
            let dir = PathBuf::from(text);
            if !dir.is_dir() {
                bail!("{text}: neither an application of {CONFIG_FILE} nor a directory");
            }
            if let Some((config, root)) = &config {
                let wanted = dir.canonicalize().ok();
                for app in &config.applications {
                    if root.join(&app.path).canonicalize().ok() == wanted && wanted.is_some() {
                        return Ok(vec![from_config(app, root)]);
                    }
                }
            }
            let app = Application {
                name: config::name_for_path(&dir),
                path: text.to_string(),
                ..Application::default()
            };
            Ok(vec![Resolved {
                app,
                dir,
                tree: None,
            }])
        }
    }
}

/// The engine state file a target names.
fn engine_path(target: Option<&str>) -> anyhow::Result<PathBuf> {
    let root = repo_root(&cwd()?);
    match target.unwrap_or("engine") {
        "engine" => Ok(match std::env::var_os("RECONCILE_ENGINE_STATE") {
            Some(path) => PathBuf::from(path),
            None => root.join(".reconcile").join("engine.db"),
        }),
        t if t.starts_with("engine:") => Ok(PathBuf::from(&t["engine:".len()..])),
        t if t == "kube" || t.starts_with("kube:") => bail!("the kube target is not supported yet"),
        t => bail!("unknown target {t:?} (expected engine or engine:PATH)"),
    }
}

fn open_engine(target: Option<&str>) -> anyhow::Result<Engine> {
    let path = engine_path(target)?;
    Engine::open(&path).with_context(|| format!("opening the engine state {}", path.display()))
}

fn render(resolved: &Resolved) -> anyhow::Result<Vec<Value>> {
    let resources = match &resolved.tree {
        Some(tree) => crate::render::render(&*tree.fs, &resolved.dir),
        None => crate::render::render_dir(&resolved.dir),
    }
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(crate::render::to_values(&resources))
}

fn parse_timeout(text: &str) -> anyhow::Result<Duration> {
    time::parse_duration(text).map_err(|e| anyhow::anyhow!("--timeout: {e}"))
}

/// Colour when printing to a terminal and NO_COLOR is not set.
fn colour() -> bool {
    std::io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::env::var("TERM").map_or(true, |t| t != "dumb")
}

fn paint(text: &str, code: &str, on: bool) -> String {
    if on {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

/// The plan as text.
pub fn text(set: &PlanSet, colour: bool) -> String {
    let mut out = String::new();
    for plan in &set.plans {
        out.push_str(&format!(
            "Application {} ({}) on {}\n",
            plan.application, plan.source, plan.target
        ));
        let changes: Vec<_> = plan
            .actions
            .iter()
            .filter(|a| a.action != Change::Unchanged)
            .collect();
        if changes.is_empty() {
            out.push_str("  No changes.\n");
        }
        for action in changes {
            let (sign, word, code) = match action.action {
                Change::Create => ("+", "create", "32"),
                Change::Update => ("~", "update", "33"),
                Change::Delete => ("-", "delete", "31"),
                Change::Unchanged => (" ", "unchanged", "0"),
            };
            let rollout = action
                .rollout
                .as_ref()
                .map(|r| format!("  (rolled out by {r})"))
                .unwrap_or_default();
            out.push_str(&format!(
                "  {} {}{}\n",
                paint(&format!("{sign} {word}"), code, colour),
                action.display(),
                rollout
            ));
            if action.action == Change::Update {
                for line in action.diff.lines() {
                    let painted = match line.chars().next() {
                        Some('+') if !line.starts_with("+++") => paint(line, "32", colour),
                        Some('-') if !line.starts_with("---") => paint(line, "31", colour),
                        Some('@') => paint(line, "36", colour),
                        _ => line.to_string(),
                    };
                    out.push_str(&format!("      {painted}\n"));
                }
            }
        }
        for kept in &plan.not_pruned {
            let id = ResId {
                gvk: Gvk::from_api_version(&kept.api_version, &kept.kind),
                name: kept.name.clone(),
                namespace: kept.namespace.clone(),
            };
            out.push_str(&format!(
                "  {} {}: {}\n",
                paint("! keep", "35", colour),
                crate::diff::display_id(&id),
                kept.reason
            ));
        }
        if set.plans.len() > 1 {
            out.push_str(&format!(
                "  {} ({} unchanged)\n",
                plan.summary.line(),
                plan.summary.unchanged
            ));
        }
        out.push('\n');
    }
    out.push_str(&format!("{}\n", set.summary.line()));
    out
}

/// The default markdown template (a pull-request comment).
pub const MARKDOWN_TEMPLATE: &str = r#"### reconcile plan

| Application | Target | Create | Update | Delete | Unchanged |
|---|---|---:|---:|---:|---:|
{{#each plans}}| {{application}} | `{{target}}` | {{summary.create}} | {{summary.update}} | {{summary.delete}} | {{summary.unchanged}} |
{{/each}}
{{#each plans}}{{#each actions}}{{#if (ne action "unchanged")}}
<details><summary><code>{{action}}</code> {{kind}} {{#if namespace}}{{namespace}}/{{/if}}{{name}}{{#if rollout}} (rolled out by {{rollout}}){{/if}}</summary>

```diff
{{diff}}```

</details>
{{/if}}{{/each}}{{#each not_pruned}}
- kept {{kind}} {{#if namespace}}{{namespace}}/{{/if}}{{name}}: {{reason}}
{{/each}}{{/each}}
**{{line}}**
"#;

/// The plan through a handlebars template (data: the JSON plan plus `line`, the summary
/// line, and `not_pruned` per plan).
pub fn templated(set: &PlanSet, template: &str) -> anyhow::Result<String> {
    let mut handlebars = handlebars::Handlebars::new();
    handlebars.register_escape_fn(handlebars::no_escape);
    handlebars.set_strict_mode(false);
    handlebars
        .register_template_string("plan", template)
        .map_err(|e| anyhow::anyhow!("template: {e}"))?;
    let mut data = serde_json::to_value(set)?;
    data["line"] = json!(set.summary.line());
    if let Some(plans) = data.get_mut("plans").and_then(Value::as_array_mut) {
        for plan in plans {
            plan["not_pruned"] = plan.get("notPruned").cloned().unwrap_or(json!([]));
        }
    }
    handlebars
        .render("plan", &data)
        .map_err(|e| anyhow::anyhow!("template: {e}"))
}

pub(super) fn write_stdout(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .context("writing to stdout")?;
    stdout.flush().context("writing to stdout")
}

/// Plans every resolved application against its target.
/// The engines of the targets used so far, each opened once.
#[derive(Default)]
struct Engines(BTreeMap<PathBuf, Engine>);

impl Engines {
    fn get(&mut self, target: Option<&str>) -> anyhow::Result<&mut Engine> {
        let path = engine_path(target)?;
        if !self.0.contains_key(&path) {
            let engine = Engine::open(&path)
                .with_context(|| format!("opening the engine state {}", path.display()))?;
            self.0.insert(path.clone(), engine);
        }
        self.0
            .get_mut(&path)
            .ok_or_else(|| anyhow::anyhow!("engine {} vanished", path.display()))
    }
}

/// Plans every resolved application against its target.
fn plan_all(
    resolved: &[Resolved],
    target: Option<&str>,
    options: PlanOptions,
) -> anyhow::Result<Vec<Planned>> {
    let mut engines = Engines::default();
    let mut planned = Vec::new();
    for r in resolved {
        let engine = engines.get(target.or(r.app.target.as_deref()))?;
        let objects = render(r)?;
        let mut one = plan::make_plan(&r.app, &r.app.path, &objects, &*engine, &options)?;
        one.plan.revision = revision(r);
        planned.push(one);
    }
    Ok(planned)
}

/// The revision a resolved application is read from, for the plan.
fn revision(resolved: &Resolved) -> Option<plan::Revision> {
    let origin = resolved.tree.as_ref()?.origin.as_ref()?;
    Some(plan::Revision {
        repo: origin.repo.clone(),
        reference: origin.reference.clone(),
        sha: origin.sha.clone(),
    })
}

/// `reconcile plan`.
pub fn plan(args: PlanArgs) -> anyhow::Result<i32> {
    let resolved = resolve_with(args.source.as_deref(), &args.git)?;
    let options = PlanOptions {
        prune: args.prune,
        allow_empty: args.allow_empty,
    };
    let planned = plan_all(&resolved, args.target.as_deref(), options)?;
    let set = PlanSet::new(planned.into_iter().map(|p| p.plan).collect());
    let json = serde_json::to_string_pretty(&set)? + "\n";
    if let Some(out) = &args.out {
        std::fs::write(out, &json).with_context(|| format!("writing {}", out.display()))?;
    }
    let text = match (&args.template, args.output) {
        (Some(path), _) => {
            let template = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            templated(&set, &template)?
        }
        (None, PlanFormat::Json) => json,
        (None, PlanFormat::Markdown) => templated(&set, MARKDOWN_TEMPLATE)?,
        (None, PlanFormat::Text) => text(&set, colour()),
    };
    write_stdout(&text)?;
    if let Some(out) = &args.out
        && args.output == PlanFormat::Text
    {
        println!(
            "Saved the plan to {}; apply it with `reconcile apply {}`.",
            out.display(),
            out.display()
        );
    }
    Ok(if args.detailed_exitcode && set.summary.has_changes() {
        EXIT_CHANGES
    } else {
        EXIT_OK
    })
}

fn holder(command: &str) -> String {
    format!("reconcile {command} (pid {})", std::process::id())
}

/// Progress of long operations: on a terminal an indicatif spinner shows the latest step and
/// keeps every step above it; otherwise plain lines, one per step (logs, CI).
static SPINNER: std::sync::OnceLock<Option<indicatif::ProgressBar>> = std::sync::OnceLock::new();

/// Clears the spinner before a final verdict is printed.
fn end_progress() {
    if let Some(Some(bar)) = SPINNER.get() {
        bar.finish_and_clear();
    }
}

fn progress_line(line: &str) {
    let spinner = SPINNER.get_or_init(|| {
        std::io::stdout().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            bar
        })
    });
    match spinner {
        Some(bar) if !bar.is_finished() => {
            bar.println(format!("  {line}"));
            bar.set_message(line.to_string());
        }
        _ => println!("  {line}"),
    }
}

fn print_report(report: &ApplyReport) -> bool {
    end_progress();
    for (name, outcome) in &report.rollouts {
        match outcome {
            Outcome::Healthy(m) => println!("  rollout {name}: {m}"),
            Outcome::Waiting(m) => println!(
                "  rollout {name} in progress: {m} (continue with `reconcile apply --wait` or `reconcile rollout status {} --watch`)",
                name.rsplit(' ').next().unwrap_or(name)
            ),
            Outcome::Paused(m) => println!("  rollout {name} paused: {m}"),
            // Reported as the apply's failure below.
            Outcome::Degraded(_) | Outcome::TimedOut(_) => {}
        }
    }
    if let Some(failure) = &report.failure {
        eprintln!("error: {failure}");
        for (name, why) in &report.unhealthy {
            eprintln!("  not healthy: {name}: {why}");
        }
        let applied: Vec<&str> = report.done.iter().map(|(n, _)| n.as_str()).collect();
        eprintln!(
            "applied: {}",
            if applied.is_empty() {
                "nothing".to_string()
            } else {
                applied.join(", ")
            }
        );
        if !report.not_applied.is_empty() {
            eprintln!("not applied: {}", report.not_applied.join(", "));
        }
    }
    end_progress();
    let count = |c: Change| report.done.iter().filter(|(_, d)| *d == c).count();
    let verdict = if report.succeeded() {
        "Apply complete"
    } else {
        "Apply failed"
    };
    println!(
        "{verdict} ({}): {} created, {} updated, {} deleted.",
        report.application,
        count(Change::Create),
        count(Change::Update),
        count(Change::Delete)
    );
    report.succeeded()
}

/// `reconcile apply`.
pub fn apply(args: ApplyArgs) -> anyhow::Result<i32> {
    let options = ApplyOptions {
        wait: args.wait,
        timeout: Some(parse_timeout(&args.timeout)?),
    };
    if let Some(source) = &args.source
        && crate::plan::file::is_plan_file(Path::new(source))
    {
        return apply_saved(
            Path::new(source),
            args.target.as_deref(),
            options,
            &args.git,
        );
    }
    let resolved = resolve_with(args.source.as_deref(), &args.git)?;
    if let Some(origin) = resolved
        .first()
        .and_then(|r| r.tree.as_ref())
        .and_then(|t| t.origin.as_ref())
    {
        println!(
            "Source: {} at {} ({})",
            origin.repo, origin.reference, origin.sha
        );
    }
    let plan_options = PlanOptions {
        prune: args.prune,
        allow_empty: args.allow_empty,
    };
    // With several applications and --wait, each is applied without waiting and all are
    // waited for together (an application with sync waves still waits between its waves).
    let together = args.wait && resolved.len() > 1;
    let mut engines = Engines::default();
    let mut deferred: BTreeMap<PathBuf, Vec<ApplyReport>> = BTreeMap::new();
    let mut reports = Vec::new();
    for r in &resolved {
        let target = args.target.as_deref().or(r.app.target.as_deref());
        let engine = engines.get(target)?;
        let objects = render(r)?;
        if args.dry_run {
            let planned = plan::make_plan(&r.app, &r.app.path, &objects, &*engine, &plan_options)?;
            write_stdout(&text(&PlanSet::new(vec![planned.plan]), colour()))?;
            println!("Dry run: nothing applied.");
            continue;
        }
        let mut defer = false;
        let report = plan::locked(engine, &holder("apply"), |cluster| {
            let planned = plan::make_plan(&r.app, &r.app.path, &objects, cluster, &plan_options)?;
            println!(
                "Application {} ({}): {}",
                r.app.name,
                r.app.path,
                planned.plan.summary.line()
            );
            defer = together && plan::wave_count(&planned.plan) <= 1;
            let options = ApplyOptions {
                wait: options.wait && !defer,
                ..options
            };
            plan::apply(&planned, cluster, &options, &mut progress_line)
        })?;
        if defer && report.failure.is_none() {
            deferred
                .entry(engine_path(target)?)
                .or_default()
                .push(report);
        } else {
            reports.push(report);
        }
    }
    for (path, mut waiting) in deferred {
        let engine = engines.get(Some(&format!("engine:{}", path.display())))?;
        println!(
            "Waiting for {} applications to become healthy",
            waiting.len()
        );
        let timeout = options.timeout.unwrap_or(Duration::from_secs(600));
        plan::locked(engine, &holder("apply --wait"), |cluster| {
            plan::wait_all(cluster, &mut waiting, timeout, &mut progress_line)
        })?;
        reports.extend(waiting);
    }
    let mut ok = true;
    for report in &reports {
        ok &= print_report(report);
    }
    Ok(if ok { EXIT_OK } else { EXIT_ERROR })
}

/// `reconcile apply plan.json`: applies exactly a saved plan, or refuses when stale.
/// The tree a saved plan was rendered from: the same commit, from `--repo` when given, else
/// from the repository the plan names (a redacted URL loses its user info; credentials then
/// come from the environment or a credential helper).
fn saved_tree(saved: &plan::Plan, git: &SourceArgs) -> anyhow::Result<Option<Tree>> {
    let Some(revision) = &saved.revision else {
        return Ok(None);
    };
    let repo = git
        .repo
        .clone()
        .unwrap_or_else(|| revision.repo.replace("***@", ""));
    let source_args = SourceArgs {
        repo: Some(repo),
        reference: Some(revision.sha.clone()),
        git_timeout: git.git_timeout.clone(),
    };
    let source = source_args.open()?;
    let snapshot = source.snapshot(&revision.sha)?;
    let mut tree = super::source::tree_of(&source, snapshot);
    if let Some(origin) = &mut tree.origin {
        origin.reference = revision.reference.clone();
    }
    Ok(Some(tree))
}

fn apply_saved(
    path: &Path,
    target: Option<&str>,
    options: ApplyOptions,
    git: &SourceArgs,
) -> anyhow::Result<i32> {
    let set = crate::plan::file::read(path)?;
    let here = cwd()?;
    let config = find_config(&here)?;
    let mut ok = true;
    for saved in &set.plans {
        if let Some(tree) = saved_tree(saved, git)? {
            let resolved = resolve_in_tree(&tree, Some(&saved.application))
                .or_else(|_| resolve_in_tree(&tree, Some(&saved.source)))?;
            let target = target
                .map(str::to_string)
                .unwrap_or_else(|| saved.target.clone());
            ok &= apply_saved_one(saved, &resolved[0], &target, options)?;
            continue;
        }
        let app = config
            .as_ref()
            .and_then(|(c, _)| c.find(&saved.application).cloned())
            .unwrap_or_else(|| Application {
                name: saved.application.clone(),
                path: saved.source.clone(),
                ..Application::default()
            });
        let root = config
            .as_ref()
            .filter(|(c, _)| c.find(&saved.application).is_some())
            .map(|(_, r)| r.clone())
            .unwrap_or(here.clone());
        let resolved = Resolved {
            dir: root.join(&app.path),
            app,
            tree: None,
        };
        let target = target
            .map(str::to_string)
            .unwrap_or_else(|| saved.target.clone());
        ok &= apply_saved_one(saved, &resolved, &target, options)?;
    }
    Ok(if ok { EXIT_OK } else { EXIT_ERROR })
}

/// Applies one saved plan after checking it still matches a fresh plan.
fn apply_saved_one(
    saved: &plan::Plan,
    resolved: &Resolved,
    target: &str,
    options: ApplyOptions,
) -> anyhow::Result<bool> {
    {
        let mut engine = open_engine(Some(target))?;
        let objects = render(resolved)?;
        let plan_options = PlanOptions {
            prune: saved.prune,
            allow_empty: true,
        };
        let report = plan::locked(&mut engine, &holder("apply"), |cluster| {
            let fresh = plan::make_plan(
                &resolved.app,
                &resolved.app.path,
                &objects,
                cluster,
                &plan_options,
            )?;
            plan::check_fresh(saved, &fresh.plan)?;
            println!(
                "Application {} ({}): {}",
                saved.application,
                saved.source,
                fresh.plan.summary.line()
            );
            plan::apply(&fresh, cluster, &options, &mut progress_line)
        })?;
        Ok(print_report(&report))
    }
}

fn deployment_id(text: &str, namespace: Option<&str>) -> ResId {
    let text = ["deployment/", "deployments/", "deploy/"]
        .iter()
        .find_map(|prefix| text.strip_prefix(prefix))
        .unwrap_or(text);
    let (ns, name) = match text.split_once('/') {
        Some((ns, name)) => (ns, name),
        None => (namespace.unwrap_or("default"), text),
    };
    ResId {
        gvk: Gvk::from_api_version("apps/v1", "Deployment"),
        name: name.to_string(),
        namespace: ns.to_string(),
    }
}

fn print_status(status: &driver::RolloutStatus) {
    let name = crate::diff::display_id(&status.id);
    println!("{name}");
    println!("  Strategy:  {}", status.strategy);
    let (replicas, updated, available) = status.replicas;
    println!("  Images:    {}", status.images.join(", "));
    println!("  Replicas:  {replicas} desired, {updated} updated, {available} available");
    if let Some((track, replicas, available)) = &status.track {
        println!("  Track:     {track}: {replicas} desired, {available} available");
    }
    match &status.state {
        Some(state) => {
            println!("  Status:    {:?}", state.phase);
            println!("  Revision:  {}", state.revision);
            if state.strategy == "Canary" {
                println!("  Step:      {}", state.step);
                println!("  Weight:    {}%", state.weight);
            } else {
                println!("  Stage:     {}", state.stage);
            }
            println!("  Message:   {}", state.message);
            let runs = state
                .analysis_runs
                .iter()
                .chain(state.analysis.as_ref().map(|(run, _)| run));
            for run in runs {
                let values: Vec<String> = run
                    .measurements
                    .iter()
                    .map(|m| {
                        m.value
                            .map(|v| format!("{v:.4}"))
                            .unwrap_or_else(|| "no data".into())
                    })
                    .collect();
                let step = run
                    .step
                    .parse::<usize>()
                    .map(|s| format!("step {}", s + 1))
                    .unwrap_or_else(|_| run.step.clone());
                println!(
                    "  Analysis:  [{step}] {} {:?}: {}",
                    run.name,
                    run.phase,
                    values.join(", ")
                );
            }
        }
        None => println!(
            "  Status:    {} {}",
            status.health.status, status.health.message
        ),
    }
}

/// `reconcile rollout …`.
pub fn rollout(args: RolloutArgs) -> anyhow::Result<i32> {
    let mut engine = open_engine(args.target.as_deref())?;
    let ns = args.namespace.as_deref();
    let drive_to_end = |cluster: &mut dyn Cluster,
                        id: &ResId,
                        wait: bool,
                        timeout: Duration|
     -> anyhow::Result<i32> {
        let options = DriveOptions {
            advance_time: wait,
            timeout: Some(timeout),
        };
        let outcome = driver::drive(cluster, id, options, &mut progress_line)?;
        Ok(match outcome {
            Outcome::Healthy(m) | Outcome::Paused(m) | Outcome::Waiting(m) => {
                println!("{m}");
                EXIT_OK
            }
            Outcome::Degraded(m) => {
                eprintln!(
                    "error: rollout of {} is Degraded: {m}",
                    crate::diff::display_id(id)
                );
                EXIT_ERROR
            }
            Outcome::TimedOut(m) => {
                eprintln!(
                    "error: rollout of {} did not finish in time: {m}",
                    crate::diff::display_id(id)
                );
                EXIT_ERROR
            }
        })
    };
    let ten_minutes = Duration::from_secs(600);
    match args.command {
        RolloutCommand::Status {
            deployment,
            watch,
            timeout,
        } => {
            let id = deployment_id(&deployment, ns);
            let timeout = parse_timeout(&timeout)?;
            let mut code = EXIT_OK;
            if watch {
                code = with_lock(&mut engine, "rollout status", |cluster| {
                    drive_to_end(cluster, &id, true, timeout)
                })?;
            }
            let status = driver::status(&engine, &id)?;
            print_status(&status);
            if status
                .state
                .as_ref()
                .is_some_and(|s| s.phase == crate::rollout::Phase::Degraded)
            {
                code = EXIT_ERROR;
            }
            Ok(code)
        }
        RolloutCommand::History { deployment } => {
            let id = deployment_id(&deployment, ns);
            let live = engine
                .get(&id)?
                .ok_or_else(|| anyhow::anyhow!("deployment {id} not found"))?;
            let current = live
                .pointer("/spec/template")
                .cloned()
                .unwrap_or(Value::Null);
            println!("{}", crate::diff::display_id(&id));
            println!("{:<9} {:<22} {:<40} CAUSE", "REVISION", "AT", "IMAGES");
            let revisions = driver::history(&live);
            let current_revision = revisions
                .iter()
                .rev()
                .find(|r| driver::same_template(Some(&current), &r.template))
                .map(|r| r.revision);
            for revision in revisions {
                let mark = if Some(revision.revision) == current_revision {
                    "*"
                } else {
                    " "
                };
                println!(
                    "{:<9} {:<22} {:<40} {}",
                    format!("{}{mark}", revision.revision),
                    revision.at,
                    revision.images.join(","),
                    revision.cause
                );
            }
            Ok(EXIT_OK)
        }
        RolloutCommand::Undo {
            deployment,
            to_revision,
            wait,
        } => {
            let id = deployment_id(&deployment, ns);
            with_lock(&mut engine, "rollout undo", |cluster| {
                let revision = driver::undo(cluster, &id, to_revision)?;
                println!(
                    "{}: rolled back to revision {} ({})",
                    crate::diff::display_id(&id),
                    revision.revision,
                    revision.images.join(", ")
                );
                drive_to_end(cluster, &id, wait, ten_minutes)
            })
        }
        RolloutCommand::Promote {
            deployment,
            full,
            wait,
        } => {
            let id = deployment_id(&deployment, ns);
            with_lock(&mut engine, "rollout promote", |cluster| {
                driver::promote(cluster, &id, full)?;
                println!(
                    "{}: promoted{}",
                    crate::diff::display_id(&id),
                    if full { " fully" } else { "" }
                );
                drive_to_end(cluster, &id, wait, ten_minutes)
            })
        }
        RolloutCommand::Abort { deployment } => {
            let id = deployment_id(&deployment, ns);
            with_lock(&mut engine, "rollout abort", |cluster| {
                let state = driver::abort(cluster, &id)?;
                println!("{}: {}", crate::diff::display_id(&id), state.message);
                Ok(EXIT_OK)
            })
        }
        RolloutCommand::Pause { deployment } => {
            let id = deployment_id(&deployment, ns);
            with_lock(&mut engine, "rollout pause", |cluster| {
                let state = driver::pause(cluster, &id)?;
                println!("{}: {}", crate::diff::display_id(&id), state.message);
                Ok(EXIT_OK)
            })
        }
        RolloutCommand::Resume { deployment, wait } => {
            let id = deployment_id(&deployment, ns);
            with_lock(&mut engine, "rollout resume", |cluster| {
                driver::resume(cluster, &id)?;
                println!("{}: resumed", crate::diff::display_id(&id));
                drive_to_end(cluster, &id, wait, ten_minutes)
            })
        }
    }
}

/// Runs `f` under the target's lock, releasing it whatever happens.
fn with_lock(
    cluster: &mut dyn Cluster,
    command: &str,
    f: impl FnOnce(&mut dyn Cluster) -> anyhow::Result<i32>,
) -> anyhow::Result<i32> {
    cluster.lock(&holder(command))?;
    let result = f(cluster);
    let released = cluster.unlock();
    let code = result?;
    released?;
    Ok(code)
}

//! `plan`, `apply` and `rollout`: resolve applications and the target, call the planner, the
//! applier or the rollout driver, print text / JSON / markdown, decide the exit code.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};

use super::source::{SourceArgs, Tree};
use super::target::{self, Access, Target};
use super::{EXIT_CHANGES, EXIT_ERROR, EXIT_OK};
use crate::cluster::Cluster;
use crate::diff::Change;
use crate::engine::Engine;
use crate::model::{Gvk, ResId};
use crate::plan::config::{self, Application, CONFIG_FILE, Config};
use crate::plan::{self, ApplyOptions, ApplyReport, Plan, PlanOptions, PlanSet, Planned};
use crate::reports::{ApplyApplication, ApplyOutput, RolloutStatusOutput};
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
    /// Where the live state is: `engine` (default), `engine:PATH`, `kube` (the kubeconfig's
    /// current context) or `kube:CONTEXT`.
    #[arg(long)]
    pub target: Option<String>,
    /// On Kubernetes targets, plan as if fields other field managers own were taken over
    /// (server-side apply's force, as kubectl's `--force-conflicts`).
    #[arg(long)]
    pub force_conflicts: bool,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "text")]
    pub output: PlanFormat,
    /// A file holding a handlebars template for the output (gets the JSON plan as data:
    /// `{{summary.create}}`, `{{#each plans}}`…); replaces `-o`.
    #[arg(long, value_name = "FILE")]
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
    /// Create the namespaces objects go to when they don't exist (Argo CD's
    /// `CreateNamespace=true`; such namespaces are never pruned).
    #[arg(long)]
    pub create_namespace: bool,
    /// Take over live objects reconcile did not create (shown as adoptions in the plan).
    #[arg(long)]
    pub adopt: bool,
    /// Where the files come from (`--repo`, `--ref`).
    #[command(flatten)]
    pub git: SourceArgs,
}

/// `reconcile apply` arguments.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// An application of reconcile.yaml, a directory to render, or a saved plan (`plan.json`).
    pub source: Option<String>,
    /// Where to apply: `engine` (default), `engine:PATH`, `kube` (the kubeconfig's current
    /// context) or `kube:CONTEXT`.
    #[arg(long)]
    pub target: Option<String>,
    /// On Kubernetes targets, take over fields other field managers own (server-side
    /// apply's force, as kubectl's `--force-conflicts`); without it such a field is a conflict.
    #[arg(long)]
    pub force_conflicts: bool,
    /// Delete objects this application applied before and no longer renders.
    #[arg(long)]
    pub prune: bool,
    /// Allow prune when the render is empty.
    #[arg(long)]
    pub allow_empty: bool,
    /// Create the namespaces objects go to when they don't exist (Argo CD's
    /// `CreateNamespace=true`; such namespaces are never pruned).
    #[arg(long)]
    pub create_namespace: bool,
    /// Take over live objects reconcile did not create (shown as adoptions in the plan).
    #[arg(long)]
    pub adopt: bool,
    /// Wait until everything applied is healthy (rollouts carried to the end).
    #[arg(long)]
    pub wait: bool,
    /// How long to wait (`10m`, `90s`; cluster time).
    #[arg(long, default_value = "10m")]
    pub timeout: String,
    /// Show the plan, change nothing (also for saved plans and prune).
    #[arg(long)]
    pub dry_run: bool,
    /// Apply a saved plan to the `--target` given although the plan was made for another
    /// one (it must still be fresh there); without it that is refused.
    #[arg(long)]
    pub retarget: bool,
    /// Where the files come from (`--repo`, `--ref`).
    #[command(flatten)]
    pub git: SourceArgs,

    /// Output format: text, or one JSON document (`reconcile schema apply`).
    #[arg(short = 'o', long = "output", value_enum, default_value = "text")]
    pub output: ApplyFormat,
}

/// Output formats of `apply` and `rollout status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ApplyFormat {
    /// For people.
    Text,
    /// One JSON document (schemas in `schemas/`).
    Json,
}

/// `reconcile rollout` arguments.
#[derive(Debug, Args)]
pub struct RolloutArgs {
    /// Where the Deployment is: `engine` (default), `engine:PATH`, `kube` or `kube:CONTEXT`.
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
        /// Wait (letting the engine's clock run) until the rollout completes, pauses or
        /// fails, as kubectl does; `--watch=false` prints one snapshot.
        #[arg(short = 'w', long, default_value_t = true, num_args = 0..=1,
              default_missing_value = "true", action = clap::ArgAction::Set)]
        watch: bool,
        /// How long to watch (cluster time).
        #[arg(long, default_value = "10m")]
        timeout: String,
        /// Output format: text, or JSON (`reconcile schema rollout-status`).
        #[arg(short = 'o', long = "output", value_enum, default_value = "text")]
        output: ApplyFormat,
    },
    /// The rollout as a tree (as `kubectl argo rollouts get rollout`): strategy, steps,
    /// weights, images per track, revisions → ReplicaSets → pods, analysis runs.
    Get {
        /// The Deployment.
        deployment: String,
        /// Let the engine's clock run and redraw until the rollout stops moving.
        #[arg(short = 'w', long)]
        watch: bool,
        /// How long to watch (cluster time).
        #[arg(long, default_value = "10m")]
        timeout: String,
        /// Output format: text, or JSON (`reconcile schema rollout-get`).
        #[arg(short = 'o', long = "output", value_enum, default_value = "text")]
        output: ApplyFormat,
    },
    /// Restart an aborted Canary/BlueGreen rollout of the current revision from its first step.
    Retry {
        /// The Deployment.
        deployment: String,
        /// Carry the rollout to the end.
        #[arg(long)]
        wait: bool,
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

/// `reconcile unlock LOCK_ID`.
pub fn unlock(lock_id: &str, target: Option<&str>) -> anyhow::Result<i32> {
    let located = target::locate(target, None)?;
    match &located {
        Target::Engine(state) => {
            let mut engine = Engine::open_existing(&state.path)?;
            engine.force_unlock(lock_id)?;
        }
        Target::Kube { context } => {
            let options = crate::k8s::Options {
                context: context.clone(),
                force_conflicts: false,
            };
            crate::k8s::connect(&options)?.force_unlock(lock_id)?;
        }
    }
    println!("lock {lock_id} released");
    Ok(EXIT_OK)
}

/// `reconcile inventory` arguments.
#[derive(Debug, Args)]
pub struct InventoryArgs {
    /// The target: `engine` (default), `engine:PATH`, `kube`, `kube:CONTEXT`.
    #[arg(long, global = true)]
    pub target: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: InventoryCommand,
}

/// The inventory subcommands.
#[derive(Debug, Subcommand)]
pub enum InventoryCommand {
    /// Every application with an inventory in the target, its object count and last apply.
    List,
    /// Hand application OLD's objects and inventory to application NEW, after the app was
    /// renamed in reconcile.yaml or its directory moved (its name comes from its path), so
    /// they stay owned and prunable instead of being refused as another application's.
    Rename {
        /// The application's old name.
        old: String,
        /// Its new name.
        new: String,
    },
}

/// `reconcile inventory …`.
pub fn inventory(args: InventoryArgs) -> anyhow::Result<i32> {
    let located = target::locate(args.target.as_deref(), None)?;
    match args.command {
        InventoryCommand::List => {
            let cluster = target::connect(&located, Access::Read, false)?;
            let listed = plan::inventory::list(&*cluster)?;
            if listed.is_empty() {
                println!("No inventories in {}", cluster.target_name());
                return Ok(EXIT_OK);
            }
            let width = listed
                .iter()
                .map(|l| l.app.len())
                .max()
                .unwrap_or(0)
                .max(11);
            println!("{:<width$}  {:>7}  APPLIED AT", "APPLICATION", "OBJECTS");
            for l in listed {
                println!("{:<width$}  {:>7}  {}", l.app, l.members, l.applied_at);
            }
            Ok(EXIT_OK)
        }
        InventoryCommand::Rename { old, new } => {
            if !config::valid_name(&new) {
                bail!(
                    "{new:?} is not a valid application name (lowercase letters, digits and '-', at most 50)"
                );
            }
            if old == new {
                bail!("OLD and NEW are the same name");
            }
            if let Some(state) = located.state()
                && !state.path.exists()
            {
                bail!("engine state {} does not exist", state.path.display());
            }
            let mut cluster = target::connect(&located, Access::Write, false)?;
            with_lock(&mut *cluster, "inventory rename", |cluster| {
                let moved = plan::inventory::rename(cluster, &old, &new)?;
                println!(
                    "inventory of application {old} is now application {new}'s ({moved} objects changed hands)"
                );
                Ok(EXIT_OK)
            })
        }
    }
}

/// The repository holding `dir`: the nearest ancestor with a `reconcile.yaml` or `.git`
/// (`dir` itself when there is none).
fn repository_root(dir: &Path) -> PathBuf {
    dir.ancestors()
        .find(|a| a.join(CONFIG_FILE).is_file() || a.join(".git").exists())
        .unwrap_or(dir)
        .to_path_buf()
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
            // The app's identity is its path from the repository root, however it is spelled
            // (`overlays/dev`, `./overlays/dev/`, `$PWD/overlays/dev`, `../dev` from a sibling).
            let canonical = dir
                .canonicalize()
                .with_context(|| format!("{text}: cannot resolve the directory"))?;
            let root = repository_root(&canonical);
            let relative = canonical
                .strip_prefix(&root)
                .map(Path::to_path_buf)
                .unwrap_or_default();
            let (name, path) = if relative.as_os_str().is_empty() {
                let own = root
                    .file_name()
                    .map(|n| PathBuf::from(n.to_string_lossy().into_owned()))
                    .unwrap_or_else(|| PathBuf::from("app"));
                (config::name_for_path(&own), ".".to_string())
            } else {
                (
                    config::name_for_path(&relative),
                    relative.to_string_lossy().into_owned(),
                )
            };
            let app = Application {
                name,
                path,
                ..Application::default()
            };
            Ok(vec![Resolved {
                app,
                dir: canonical,
                tree: None,
            }])
        }
    }
}

fn render(resolved: &Resolved) -> anyhow::Result<Vec<Value>> {
    let resources = match &resolved.tree {
        Some(tree) => crate::render::render(&*tree.fs, &resolved.dir),
        None => crate::render::render_dir(&resolved.dir),
    }
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(crate::render::into_values(resources))
}

/// The file of the application an object was rendered from (`app/web.yaml`), found by
/// rendering again: only asked for when the target refused the object.
fn source_file(resolved: &Resolved, id: &ResId) -> Option<String> {
    let resources = match &resolved.tree {
        Some(tree) => crate::render::render(&*tree.fs, &resolved.dir),
        None => crate::render::render_dir(&resolved.dir),
    }
    .ok()?;
    let found = resources.iter().find(|r| {
        let rendered = r.id();
        rendered.gvk.kind == id.gvk.kind
            && rendered.name == id.name
            && (rendered.namespace == id.namespace || rendered.namespace.is_empty())
    })?;
    let origin = found.origin.as_ref()?;
    Some(
        Path::new(&resolved.app.path)
            .join(&origin.path)
            .display()
            .to_string(),
    )
}

/// A plan or apply error, with the file of the object the target refused when there is one.
fn naming_file(error: plan::Error, resolved: &Resolved) -> anyhow::Error {
    if let plan::Error::NotServed { id, .. } = &error
        && let Some(file) = source_file(resolved, id)
    {
        return anyhow::anyhow!("{file}: {error}");
    }
    error.into()
}

fn parse_timeout(text: &str) -> anyhow::Result<Duration> {
    time::parse_duration(text).map_err(|e| anyhow::anyhow!("--timeout: {e}"))
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
            let mut rollout = action
                .rollout
                .as_ref()
                .map(|r| format!("  (rolled out by {r})"))
                .unwrap_or_default();
            if action.adopt {
                rollout.push_str("  (adopt: an object reconcile did not create)");
            }
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
        out.push_str(&unfinished_rollouts(plan, colour));
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

/// Deployments whose rollout has not finished, changed or not: `! rollout …` lines.
fn unfinished_rollouts(plan: &Plan, colour: bool) -> String {
    plan.actions
        .iter()
        .filter_map(|a| a.unfinished.as_ref().map(|note| (a, note)))
        .map(|(action, note)| {
            format!(
                "  {} {}: {note}\n",
                paint("! rollout", "35", colour),
                action.display()
            )
        })
        .collect()
}

/// The default markdown template (a pull-request comment).
pub const MARKDOWN_TEMPLATE: &str = r#"### reconcile plan

| Application | Target | Create | Update | Delete | Unchanged |
|---|---|---:|---:|---:|---:|
{{#each plans}}| {{application}} | `{{target}}` | {{summary.create}} | {{summary.update}} | {{summary.delete}} | {{summary.unchanged}} |
{{/each}}
{{#each plans}}{{#each actions}}{{#if (ne action "unchanged")}}
<details><summary><code>{{action}}</code> {{kind}} {{#if namespace}}{{namespace}}/{{/if}}{{name}}{{#if rollout}} (rolled out by {{rollout}}){{/if}}{{#if adopt}} (adopt){{/if}}</summary>

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
    super::output::write_text(text);
    Ok(())
}

/// The clusters of the targets used so far, each opened once.
#[derive(Default)]
struct Engines {
    opened: BTreeMap<Target, Box<dyn Cluster>>,
    force_conflicts: bool,
}

impl Engines {
    fn forcing(force_conflicts: bool) -> Engines {
        Engines {
            opened: BTreeMap::new(),
            force_conflicts,
        }
    }

    /// The cluster of a command-line target or, without one, of an application's target.
    fn get(
        &mut self,
        flag: Option<&str>,
        app_target: Option<&str>,
        access: Access,
    ) -> anyhow::Result<&mut dyn Cluster> {
        let located = target::locate(flag, app_target)?;
        self.open(&located, access)
    }

    /// The cluster of a located target.
    fn open(&mut self, located: &Target, access: Access) -> anyhow::Result<&mut dyn Cluster> {
        let cluster = match self.opened.entry(located.clone()) {
            std::collections::btree_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::btree_map::Entry::Vacant(entry) => {
                entry.insert(target::connect(located, access, self.force_conflicts)?)
            }
        };
        Ok(cluster.as_mut())
    }

    /// Runs the controllers of every opened target that deferred them (see
    /// [`Cluster::defer_settling`]).
    fn settle_deferred(&mut self) -> anyhow::Result<()> {
        for cluster in self.opened.values_mut() {
            cluster.settle_deferred()?;
        }
        Ok(())
    }

    /// The cluster already opened for a target.
    fn at(&mut self, located: &Target) -> anyhow::Result<&mut dyn Cluster> {
        match self.opened.get_mut(located) {
            Some(cluster) => Ok(cluster.as_mut()),
            None => bail!("target {} was not opened", describe_target(located)),
        }
    }

    /// Runs `f` holding the lock of every opened target (taken in path order, so two runs
    /// never wait on each other crosswise); every lock taken is released whatever happens.
    fn locked<T>(
        &mut self,
        holder: &str,
        f: impl FnOnce(&mut Engines) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let mut taken = Vec::new();
        let mut result = Ok(());
        for (located, cluster) in &mut self.opened {
            match cluster.lock(holder) {
                Ok(()) => taken.push(located.clone()),
                Err(e) => {
                    result = Err(anyhow::Error::from(e));
                    break;
                }
            }
        }
        let result = result.and_then(|()| f(self));
        let mut released = Ok(());
        for located in taken {
            if let Some(cluster) = self.opened.get_mut(&located)
                && let Err(e) = cluster.unlock()
            {
                released = Err(anyhow::Error::from(e));
            }
        }
        let value = result?;
        released?;
        Ok(value)
    }
}

/// Plans every resolved application against its target; each plan with the objects it was
/// made from (for the keyed digest of a saved plan).
fn plan_all(
    resolved: &[Resolved],
    target: Option<&str>,
    options: PlanOptions,
    force_conflicts: bool,
) -> anyhow::Result<Vec<(Planned, Vec<Value>)>> {
    let mut engines = Engines::forcing(force_conflicts);
    let mut planned = Vec::new();
    for r in resolved {
        let engine = engines.get(target, r.app.target.as_deref(), Access::Read)?;
        let objects = render(r)?;
        let mut one = plan::make_plan(&r.app, &r.app.path, &objects, engine, &options)
            .map_err(|e| naming_file(e, r))?;
        one.plan.revision = revision(r);
        planned.push((one, objects));
    }
    Ok(planned)
}

/// The plan key of a target a plan names, made (and the state created) on first use: a saved
/// plan is sealed with it. A read-only state that has none cannot seal a plan.
fn ensure_plan_key(recorded: &str) -> anyhow::Result<String> {
    let located = target::locate_recorded(recorded)?;
    let Target::Engine(state) = &located else {
        return kube_plan_key(&located, true)?
            .with_context(|| format!("cannot seal the plan with a key kept in {recorded}"));
    };
    if state.path.exists()
        && let Some(key) = Engine::open_read_only(&state.path)?.plan_key()?
    {
        return Ok(key);
    }
    let mut engine = Engine::open(&state.path)
        .with_context(|| format!("cannot seal the plan with a key kept in {recorded}"))?;
    engine
        .ensure_plan_key()
        .with_context(|| format!("cannot seal the plan with a key kept in {recorded}"))
}

/// The plan key kept in a Kubernetes target: the Secret `default/reconcile-plan-key`,
/// created with a random key when `create` (else `None` when absent).
fn kube_plan_key(located: &Target, create: bool) -> anyhow::Result<Option<String>> {
    use base64::Engine as _;
    let mut cluster = target::connect(located, Access::Read, false)?;
    let id = ResId {
        gvk: Gvk::from_api_version("v1", "Secret"),
        name: "reconcile-plan-key".into(),
        namespace: plan::inventory::INVENTORY_NAMESPACE.into(),
    };
    let base64 = base64::engine::general_purpose::STANDARD;
    if let Some(secret) = cluster.get(&id)? {
        let stored = secret
            .pointer("/data/key")
            .and_then(Value::as_str)
            .and_then(|b| base64.decode(b).ok())
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .filter(|key| !key.is_empty())
            .with_context(|| format!("{}: no readable key", crate::diff::display_id(&id)))?;
        return Ok(Some(stored));
    }
    if !create {
        return Ok(None);
    }
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| anyhow::anyhow!("no random source for the plan key"))?;
    let key = hex::encode(bytes);
    cluster.apply(&json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": id.name, "namespace": id.namespace},
        "type": "Opaque",
        "data": {"key": base64.encode(&key)},
    }))?;
    Ok(Some(key))
}

/// The plan key of a target a saved plan names, read-only (`None`: it has none, or there is
/// no state there: nothing is created to check a plan).
fn recorded_plan_key(recorded: &str) -> Result<Option<String>, plan::seal::Error> {
    let bad = || plan::seal::Error::BadKey {
        target: recorded.to_string(),
    };
    let Ok(located) = target::locate_recorded(recorded) else {
        return Ok(None);
    };
    let Target::Engine(state) = &located else {
        return kube_plan_key(&located, false).map_err(|_| bad());
    };
    if !state.path.is_file() {
        return Ok(None);
    }
    let engine = Engine::open_read_only(&state.path).map_err(|_| bad())?;
    engine.plan_key().map_err(|_| bad())
}

/// The sealed text of a plan file: keyed digests of each plan's source, then one seal per
/// target.
fn sealed_file(planned: &[(Planned, Vec<Value>)], resolved: &[Resolved]) -> anyhow::Result<String> {
    let mut keys = BTreeMap::new();
    let mut plans = Vec::new();
    for ((one, objects), r) in planned.iter().zip(resolved) {
        let target = one.plan.target.clone();
        let key = match keys.get(&target) {
            Some(key) => String::clone(key),
            None => ensure_plan_key(&target)?,
        };
        let mut plan = one.plan.clone();
        plan.source_mac = Some(plan::source_mac(&r.app, objects, plan.prune, &key)?);
        plans.push(plan);
        keys.insert(target, key);
    }
    Ok(plan::seal::seal(&PlanSet::new(plans), &keys)?)
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

/// The text of `--template FILE`; a value that is no file (an inline template, a typo) gets an
/// error saying the option takes a file.
fn read_template(path: &Path) -> anyhow::Result<String> {
    if !path.is_file() {
        bail!(
            "--template takes a file holding a handlebars template; {:?} is not a file \
             (write the template to a file and pass its path)",
            path.display().to_string()
        );
    }
    std::fs::read_to_string(path).with_context(|| format!("reading --template {}", path.display()))
}

/// `reconcile plan`.
pub fn plan(args: PlanArgs) -> anyhow::Result<i32> {
    // Read before anything is planned or written: a bad --template changes nothing.
    let template = args.template.as_deref().map(read_template).transpose()?;
    let resolved = resolve_with(args.source.as_deref(), &args.git)?;
    let options = PlanOptions {
        prune: args.prune,
        allow_empty: args.allow_empty,
        create_namespace: args.create_namespace,
        adopt: args.adopt,
    };
    let planned = plan_all(
        &resolved,
        args.target.as_deref(),
        options,
        args.force_conflicts,
    )?;
    let set = PlanSet::new(planned.iter().map(|(p, _)| p.plan.clone()).collect());
    let json = serde_json::to_string_pretty(&set)? + "\n";
    if let Some(out) = &args.out {
        let sealed = sealed_file(&planned, &resolved)?;
        std::fs::write(out, sealed).with_context(|| format!("writing {}", out.display()))?;
    }
    let text = match (&template, args.output) {
        (Some(template), _) => templated(&set, template)?,
        (None, PlanFormat::Json) => json,
        (None, PlanFormat::Markdown) => templated(&set, MARKDOWN_TEMPLATE)?,
        (None, PlanFormat::Text) => text(&set, super::output::color()),
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

/// Who holds a lock, in the lock message (which adds the pid, as the lock id, and the time).
fn holder(command: &str) -> String {
    format!("reconcile {command}")
}

/// Test hook: `RECONCILE_TEST_HOLD_LOCK_MS` keeps an apply holding its lock that long (at most
/// 10 s) before it plans, so tests observe a held lock, or kill its holder, deterministically.
fn hold_lock_for_tests() {
    if let Some(ms) = std::env::var("RECONCILE_TEST_HOLD_LOCK_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        std::thread::sleep(Duration::from_millis(ms.min(10_000)));
    }
}

/// Test hook: `RECONCILE_TEST_HOLD_BETWEEN_APPS_MS` pauses a multi-application apply that long
/// (at most 10 s) after each application, so a test sees the lock held between applications.
fn hold_between_applications_for_tests() {
    if let Some(ms) = std::env::var("RECONCILE_TEST_HOLD_BETWEEN_APPS_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        std::thread::sleep(Duration::from_millis(ms.min(10_000)));
    }
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

/// Set by `-o json`: stdout carries only the JSON document, progress goes to stderr.
static PROGRESS_TO_STDERR: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

fn progress_line(line: &str) {
    // Test hook: `RECONCILE_TEST_CRASH_AFTER_WRITE=1` ends the process abruptly (as kill -9
    // would, no cleanup) once the first object is written, to test crash recovery.
    if (line.ends_with(": created") || line.ends_with(": updated"))
        && std::env::var_os("RECONCILE_TEST_CRASH_AFTER_WRITE").is_some()
    {
        std::process::abort();
    }
    if PROGRESS_TO_STDERR.load(std::sync::atomic::Ordering::Relaxed) {
        eprintln!("  {line}");
        return;
    }
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
    for warning in &report.warnings {
        eprintln!("Warning: {warning}");
    }
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
    let json = args.output == ApplyFormat::Json;
    // In JSON mode stdout carries one document; progress goes to stderr.
    PROGRESS_TO_STDERR.store(json, std::sync::atomic::Ordering::Relaxed);
    let options = ApplyOptions {
        wait: args.wait,
        timeout: Some(parse_timeout(&args.timeout)?),
    };
    if let Some(source) = &args.source
        && crate::plan::file::is_plan_file(Path::new(source))
    {
        return apply_saved(Path::new(source), &args, options);
    }
    let resolved = resolve_with(args.source.as_deref(), &args.git)?;
    if args.output != ApplyFormat::Json
        && let Some(origin) = resolved
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
        create_namespace: args.create_namespace,
        adopt: args.adopt,
    };
    let access = if args.dry_run {
        Access::Read
    } else {
        Access::Write
    };
    // With several applications and --wait, each is applied without waiting and all are
    // waited for together (an application with sync waves still waits between its waves).
    let together = args.wait && resolved.len() > 1;
    let mut engines = Engines::forcing(args.force_conflicts);
    if args.dry_run {
        let mut dry_runs = Vec::new();
        for r in &resolved {
            let engine = engines.get(args.target.as_deref(), r.app.target.as_deref(), access)?;
            let objects = render(r)?;
            let planned = plan::make_plan(&r.app, &r.app.path, &objects, &*engine, &plan_options)
                .map_err(|e| naming_file(e, r))?;
            dry_runs.push(planned.plan);
        }
        return finish_dry_run(&dry_runs, json);
    }
    // Every source is rendered before anything is locked or written: a broken application
    // changes nothing.
    let mut rendered = Vec::new();
    for r in &resolved {
        let state = target::locate(args.target.as_deref(), r.app.target.as_deref())?;
        engines.get(args.target.as_deref(), r.app.target.as_deref(), access)?;
        rendered.push((state, render(r)?));
    }
    // One lock per target for the whole run: no other apply slips in between applications.
    let applied = engines.locked(&holder("apply"), |engines| {
        hold_lock_for_tests();
        let mut deferred: BTreeMap<Target, (Vec<ApplyReport>, Vec<Plan>)> = BTreeMap::new();
        let mut applied: Vec<(ApplyReport, Plan)> = Vec::new();
        let mut apply_each = || -> anyhow::Result<()> {
            for (r, (state, objects)) in resolved.iter().zip(&rendered) {
                let cluster = engines.at(state)?;
                let mut planned =
                    plan::make_plan(&r.app, &r.app.path, objects, &*cluster, &plan_options)
                        .map_err(|e| naming_file(e, r))?;
                if !json {
                    println!(
                        "Application {} ({}): {}",
                        r.app.name,
                        r.app.path,
                        planned.plan.summary.line()
                    );
                }
                let defer = together && plan::wave_count(&planned.plan) <= 1;
                let options = ApplyOptions {
                    wait: options.wait && !defer,
                    ..options
                };
                // Applications that neither wait nor start a rollout are applied at one instant,
                // so the engine's controllers run once for all of them instead of once per
                // application (each run looks at the whole cluster). The others start from a
                // settled world.
                if options.wait || planned.starts_rollouts() {
                    cluster.settle_deferred()?;
                } else {
                    cluster.defer_settling();
                }
                let report =
                    plan::apply_moving(&mut planned, cluster, &options, &mut progress_line)
                        .map_err(|e| naming_file(e, r))?;
                hold_between_applications_for_tests();
                if defer && report.failure.is_none() {
                    let entry = deferred.entry(state.clone()).or_default();
                    entry.0.push(report);
                    entry.1.push(planned.plan);
                } else {
                    applied.push((report, planned.plan));
                }
            }
            Ok(())
        };
        let looped = apply_each();
        // Settled on failure too: what was applied gets its controllers' reaction now.
        let settled = engines.settle_deferred();
        looped?;
        settled?;
        for (located, (mut waiting, plans)) in deferred {
            let cluster = engines.at(&located)?;
            if !json {
                println!(
                    "Waiting for {} applications to become healthy",
                    waiting.len()
                );
            }
            let timeout = options.timeout.unwrap_or(Duration::from_secs(600));
            if let Err(e) = plan::wait_all(cluster, &mut waiting, timeout, &mut progress_line) {
                // The target failed while waiting (a full disk): every waiting application
                // reports it, with what it applied.
                for report in &mut waiting {
                    report.failure.get_or_insert_with(|| e.to_string());
                }
            }
            applied.extend(waiting.into_iter().zip(plans));
        }
        Ok(applied)
    })?;
    finish_apply(&applied, args.wait, json)
}

/// Prints what a `--dry-run` would do and says that nothing was changed.
fn finish_dry_run(plans: &[Plan], json: bool) -> anyhow::Result<i32> {
    if json {
        let output = ApplyOutput {
            applications: plans.iter().map(ApplyApplication::dry_run).collect(),
            succeeded: true,
        };
        write_stdout(&(serde_json::to_string_pretty(&output)? + "\n"))?;
    } else {
        write_stdout(&text(&PlanSet::new(plans.to_vec()), super::output::color()))?;
        println!("Dry run: nothing applied, nothing deleted; the target is unchanged.");
    }
    Ok(EXIT_OK)
}

/// Prints the reports (text, or one JSON document) and decides the exit code.
fn finish_apply(applied: &[(ApplyReport, Plan)], waited: bool, json: bool) -> anyhow::Result<i32> {
    let mut ok = true;
    if json {
        let applications: Vec<ApplyApplication> = applied
            .iter()
            .map(|(report, plan)| ApplyApplication::applied(plan, report, waited))
            .collect();
        ok = applications.iter().all(|a| a.succeeded);
        let output = ApplyOutput {
            applications,
            succeeded: ok,
        };
        write_stdout(&(serde_json::to_string_pretty(&output)? + "\n"))?;
    } else {
        for (report, _) in applied {
            ok &= print_report(report);
        }
    }
    Ok(if ok { EXIT_OK } else { EXIT_ERROR })
}

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

/// True when two targets are the same cluster (state paths spelled differently or not).
fn same_target(a: &Target, b: &Target) -> bool {
    match (a, b) {
        (Target::Engine(a), Target::Engine(b)) => same_state(&a.path, &b.path),
        (Target::Kube { context: a }, Target::Kube { context: b }) => a == b,
        _ => false,
    }
}

/// A target as the user writes it.
fn describe_target(located: &Target) -> String {
    match located {
        Target::Engine(state) => format!("engine:{}", state.path.display()),
        Target::Kube { context: Some(c) } => format!("kube:{c}"),
        Target::Kube { context: None } => "kube".to_string(),
    }
}

/// True when two state paths name the same file (spelled differently or not).
fn same_state(a: &Path, b: &Path) -> bool {
    let absolute = |p: &Path| {
        p.canonicalize().unwrap_or_else(|_| {
            std::env::current_dir()
                .map(|d| d.join(p))
                .unwrap_or_else(|_| p.to_path_buf())
        })
    };
    absolute(a) == absolute(b)
}

/// `reconcile apply plan.json`: checks the file's seals, then applies exactly the saved plans
/// (all checked fresh under one lock before any is applied), or refuses; under `--dry-run`
/// checks them and shows them, changing nothing.
fn apply_saved(path: &Path, args: &ApplyArgs, options: ApplyOptions) -> anyhow::Result<i32> {
    let json = args.output == ApplyFormat::Json;
    let text = crate::plan::file::read_text(path)?;
    // Before anything else: a file edited since `plan --out` sealed it is refused.
    let document = plan::seal::verify(path, &text, recorded_plan_key)?;
    let set = crate::plan::file::parse(path, document)?;
    let here = cwd()?;
    let config = find_config(&here)?;
    let access = if args.dry_run {
        Access::Read
    } else {
        Access::Write
    };
    let mut engines = Engines::forcing(args.force_conflicts);
    let mut prepared = Vec::new();
    for saved in &set.plans {
        let from_git = match saved_tree(saved, &args.git)? {
            Some(tree) => resolve_in_tree(&tree, Some(&saved.application))
                .or_else(|_| resolve_in_tree(&tree, Some(&saved.source)))?
                .into_iter()
                .next(),
            None => None,
        };
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
            // Sources of saved plans are relative to the repository root, so a plan applies
            // from any folder of the repository.
            .unwrap_or_else(|| repository_root(&here));
        let resolved = from_git.unwrap_or(Resolved {
            dir: root.join(&app.path),
            app,
            tree: None,
        });
        let recorded = target::locate_recorded(&saved.target)?;
        // The target is the one the plan was made for; another one only when asked.
        let state = match &args.target {
            Some(flag) => {
                let wanted = target::locate(Some(flag), None)?;
                if !same_target(&wanted, &recorded) && !args.retarget {
                    bail!(
                        "{}: the plan of application {} was made for {}, not {}; refusing to apply it elsewhere (make a plan for that target, or pass --retarget to apply this one there: it must still be fresh there)",
                        path.display(),
                        saved.application,
                        saved.target,
                        describe_target(&wanted)
                    );
                }
                wanted
            }
            None => recorded,
        };
        // The keyed digest is made with the key of the target the plan was sealed for.
        let key = recorded_plan_key(&saved.target)?;
        let objects = render(&resolved)?;
        engines.open(&state, access)?;
        prepared.push((saved, resolved, state, objects, key));
    }
    // Every plan is checked fresh before any is applied, under one lock per target.
    let fresh_plans = |engines: &mut Engines| -> anyhow::Result<Vec<Planned>> {
        let mut fresh_plans = Vec::new();
        for (saved, resolved, state, objects, key) in &prepared {
            let plan_options = PlanOptions {
                prune: saved.prune,
                allow_empty: true,
                // Namespaces the reviewed plan creates (`--create-namespace`) are created
                // again; the action lists are compared exactly anyway.
                create_namespace: saved
                    .actions
                    .iter()
                    .any(|a| a.kind == "Namespace" && a.action == Change::Create),
                // The reviewed plan's adoptions, and only those, are carried out.
                adopt: saved.actions.iter().any(|a| a.adopt),
            };
            let cluster = engines.at(state)?;
            let mut fresh = plan::make_plan(
                &resolved.app,
                &resolved.app.path,
                objects,
                &*cluster,
                &plan_options,
            )?;
            fresh.plan.source_mac = match key {
                Some(key) => Some(plan::source_mac(
                    &resolved.app,
                    objects,
                    fresh.plan.prune,
                    key,
                )?),
                None => None,
            };
            plan::check_fresh(saved, &fresh.plan)?;
            fresh_plans.push(fresh);
        }
        Ok(fresh_plans)
    };
    if args.dry_run {
        let fresh = fresh_plans(&mut engines)?;
        let plans: Vec<Plan> = fresh.into_iter().map(|f| f.plan).collect();
        return finish_dry_run(&plans, json);
    }
    let applied = engines.locked(&holder("apply"), |engines| {
        let fresh = fresh_plans(engines)?;
        let mut applied = Vec::new();
        for (mut fresh, (saved, _, state, _, _)) in fresh.into_iter().zip(&prepared) {
            let cluster = engines.at(state)?;
            if !json {
                println!(
                    "Application {} ({}): {}",
                    saved.application,
                    saved.source,
                    fresh.plan.summary.line()
                );
            }
            let report = plan::apply_moving(&mut fresh, cluster, &options, &mut progress_line)?;
            applied.push((report, fresh.plan));
        }
        Ok(applied)
    })?;
    finish_apply(&applied, options.wait, json)
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

/// The Deployment, or kubectl's `deployments.apps "NAME" not found`.
fn require_deployment(cluster: &dyn Cluster, id: &ResId) -> anyhow::Result<Value> {
    cluster
        .get(id)?
        .ok_or_else(|| anyhow::anyhow!("{}", crate::cluster::not_found_message(id)))
}

fn print_status(status: &driver::RolloutStatus) {
    let name = crate::diff::display_id(&status.id);
    println!("{name}");
    println!("  Strategy:  {}", status.strategy);
    let (replicas, updated, available) = status.replicas;
    match &status.track {
        Some((track, ..)) if !status.track_images.is_empty() => println!(
            "  Images:    {} (stable), {} ({})",
            status.images.join(", "),
            status.track_images.join(", "),
            track.rsplit('-').next().unwrap_or(track)
        ),
        _ => println!("  Images:    {}", status.images.join(", ")),
    }
    println!("  Replicas:  {replicas} desired, {updated} updated, {available} available");
    if let Some((track, replicas, available)) = &status.track {
        println!("  Track:     {track}: {replicas} desired, {available} available");
    }
    match &status.state {
        Some(state) => {
            println!("  Status:    {:?}", state.phase);
            println!("  Revision:  {}", state.revision);
            if state.strategy == "Canary" {
                let total = status.steps.unwrap_or(0);
                println!("  Step:      {}/{total}", (state.step + 1).min(total));
                let weight = match state.phase {
                    crate::rollout::Phase::Healthy => 100,
                    _ => state.weight,
                };
                println!("  Weight:    {weight}%");
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
    if let Some(cause) = &status.cause {
        println!("  Failing:   {cause}");
    }
}

/// `reconcile rollout …`.
pub fn rollout(args: RolloutArgs) -> anyhow::Result<i32> {
    let state = target::locate(args.target.as_deref(), None)?;
    let access = match &args.command {
        RolloutCommand::Status { watch: false, .. }
        | RolloutCommand::Get { watch: false, .. }
        | RolloutCommand::History { .. } => Access::Read,
        // Watching lets cluster time pass (a write), but never creates a state.
        RolloutCommand::Status { .. } if state.state().is_some_and(|s| !s.path.exists()) => {
            Access::Read
        }
        _ => Access::Write,
    };
    let ns = args.namespace.as_deref();
    if let RolloutCommand::Get {
        deployment,
        watch,
        timeout,
        output,
    } = &args.command
    {
        let mut cluster = target::connect(&state, access, false)?;
        let id = deployment_id(deployment, ns);
        let timeout = parse_timeout(timeout)?;
        return super::rollout_get::run(
            &mut *cluster,
            &id,
            *watch,
            timeout.as_millis() as i64,
            *output == ApplyFormat::Json,
        );
    }
    let watching = matches!(&args.command, RolloutCommand::Status { watch: true, .. });
    let (mut engine, read_only) = match target::connect(&state, access, false) {
        // Watching lets time pass, a write; on a state that cannot be written it shows one
        // snapshot.
        Err(e) if watching && state.state().is_some_and(|s| s.path.exists()) => {
            match target::connect(&state, Access::Read, false) {
                Ok(engine) => {
                    eprintln!(
                        "note: {e:#}: showing one snapshot (watching lets cluster time pass, a write)"
                    );
                    (engine, true)
                }
                Err(_) => return Err(e),
            }
        }
        opened => (opened?, false),
    };
    let engine = &mut *engine;
    let drive_to_end = |cluster: &mut dyn Cluster,
                        id: &ResId,
                        wait: bool,
                        timeout: Duration|
     -> anyhow::Result<i32> {
        let options = DriveOptions {
            advance_time: wait,
            timeout: Some(timeout),
            all_notes: false,
        };
        let outcome = driver::drive(cluster, id, options, &mut progress_line)?;
        Ok(match outcome {
            Outcome::Healthy(m) | Outcome::Paused(m) | Outcome::Waiting(m) => {
                if PROGRESS_TO_STDERR.load(std::sync::atomic::Ordering::Relaxed) {
                    eprintln!("{m}");
                } else {
                    println!("{m}");
                }
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
            output,
        } => {
            let json = output == ApplyFormat::Json;
            PROGRESS_TO_STDERR.store(json, std::sync::atomic::Ordering::Relaxed);
            let id = deployment_id(&deployment, ns);
            let timeout = parse_timeout(&timeout)?;
            let mut code = EXIT_OK;
            if watch && !read_only {
                require_deployment(engine, &id)?;
                let mut progress = |line: &str| {
                    if !json {
                        progress_line(line);
                    }
                };
                let options = DriveOptions {
                    advance_time: true,
                    timeout: Some(timeout),
                    all_notes: false,
                };
                code = with_lock(engine, "rollout status", |cluster| {
                    let outcome = driver::drive(cluster, &id, options, &mut progress)?;
                    end_progress();
                    if let Outcome::TimedOut(m) = &outcome
                        && !json
                    {
                        eprintln!(
                            "error: rollout of {} did not finish in time: {m}",
                            crate::diff::display_id(&id)
                        );
                    }
                    Ok(match outcome {
                        Outcome::Degraded(_) | Outcome::TimedOut(_) => EXIT_ERROR,
                        _ => EXIT_OK,
                    })
                })?;
            }
            let status = driver::status(engine, &id)?;
            let degraded = status
                .state
                .as_ref()
                .is_some_and(|s| s.phase == crate::rollout::Phase::Degraded)
                || (status.state.is_none()
                    && status.health.status == crate::rollout::health::Status::Degraded);
            if degraded {
                code = EXIT_ERROR;
            }
            if json {
                let view = RolloutStatusOutput::of(&status);
                write_stdout(&(serde_json::to_string_pretty(&view)? + "\n"))?;
            } else {
                print_status(&status);
            }
            Ok(code)
        }
        RolloutCommand::Get { .. } => unreachable!("handled above"),
        RolloutCommand::Retry { deployment, wait } => {
            let id = deployment_id(&deployment, ns);
            with_lock(engine, "rollout retry", |cluster| {
                let state = driver::retry(cluster, &id)?;
                println!("{}: {}", crate::diff::display_id(&id), state.message);
                drive_to_end(cluster, &id, wait, ten_minutes)
            })
        }
        RolloutCommand::History { deployment } => {
            let id = deployment_id(&deployment, ns);
            let live = require_deployment(engine, &id)?;
            if !crate::rollout::Strategy::of(&live)?.is_progressive() {
                let revisions = driver::replica_set_history(engine, &live)?;
                let failures = revisions.iter().any(|r| r.failure.is_some());
                let mut out = format!("deployment.apps/{}\n", id.name);
                out.push_str(if failures {
                    "REVISION  CHANGE-CAUSE  FAILURE\n"
                } else {
                    "REVISION  CHANGE-CAUSE\n"
                });
                for r in revisions {
                    let cause = r.change_cause.unwrap_or_else(|| "<none>".into());
                    if failures {
                        out.push_str(&format!(
                            "{:<9} {:<13} {}\n",
                            r.revision,
                            cause,
                            r.failure.unwrap_or_default()
                        ));
                    } else {
                        out.push_str(&format!("{:<9} {cause}\n", r.revision));
                    }
                }
                println!("{out}");
                return Ok(EXIT_OK);
            }
            let current = live
                .pointer("/spec/template")
                .cloned()
                .unwrap_or(Value::Null);
            println!("{}", crate::diff::display_id(&id));
            println!(
                "{:<9} {:<22} {:<40} {:<22} OUTCOME",
                "REVISION", "AT", "IMAGES", "CAUSE"
            );
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
                    "{:<9} {:<22} {:<40} {:<22} {}",
                    format!("{}{mark}", revision.revision),
                    revision.at,
                    revision.images.join(","),
                    revision.cause,
                    revision
                        .outcome
                        .map(|o| o.to_string())
                        .unwrap_or_else(|| "-".into())
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
            let live = require_deployment(engine, &id)?;
            if !crate::rollout::Strategy::of(&live)?.is_progressive() {
                return with_lock(engine, "rollout undo", |cluster| {
                    let line = driver::undo_replica_sets(cluster, &id, to_revision)?;
                    println!("{line}");
                    if wait {
                        drive_to_end(cluster, &id, true, ten_minutes)
                    } else {
                        Ok(EXIT_OK)
                    }
                });
            }
            with_lock(engine, "rollout undo", |cluster| {
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
            with_lock(engine, "rollout promote", |cluster| {
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
            with_lock(engine, "rollout abort", |cluster| {
                let state = driver::abort(cluster, &id)?;
                println!("{}: {}", crate::diff::display_id(&id), state.message);
                Ok(EXIT_OK)
            })
        }
        RolloutCommand::Pause { deployment } => {
            let id = deployment_id(&deployment, ns);
            with_lock(engine, "rollout pause", |cluster| {
                let state = driver::pause(cluster, &id)?;
                println!("{}: {}", crate::diff::display_id(&id), state.message);
                Ok(EXIT_OK)
            })
        }
        RolloutCommand::Resume { deployment, wait } => {
            let id = deployment_id(&deployment, ns);
            with_lock(engine, "rollout resume", |cluster| {
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

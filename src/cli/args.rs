//! Command-line arguments (clap derive only; no IO here).

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// A declarative GitOps reconciler: render kustomize trees, plan, apply and roll out.
#[derive(Debug, Parser)]
#[command(name = "reconcile", version, about)]
pub struct Cli {
    /// Colour the output: `auto` (a terminal, unless NO_COLOR; CLICOLOR_FORCE or FORCE_COLOR
    /// force it), `always`, `never`.
    #[arg(long, global = true, value_enum, default_value = "auto")]
    pub color: super::output::ColorChoice,
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Output format of `render`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RenderFormat {
    /// Multi-document YAML, byte-identical to `kustomize build`.
    Yaml,
    /// A JSON array of objects.
    Json,
}

/// Output format of `validate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ValidateFormat {
    /// One problem per line on stderr.
    Text,
    /// One JSON document on stdout.
    Json,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Render a kustomization (same output as `kustomize build PATH`).
    Render {
        /// Directory holding a kustomization.yaml.
        path: PathBuf,
        /// Output format.
        #[arg(short = 'o', long = "output", value_enum, default_value = "yaml")]
        output: RenderFormat,
        /// Where the files come from.
        #[command(flatten)]
        source: super::source::SourceArgs,
    },
    /// Check a kustomization and report every problem found at once.
    Validate {
        /// Directory holding a kustomization.yaml.
        path: PathBuf,
        /// Where the files come from.
        #[command(flatten)]
        source: super::source::SourceArgs,
        /// Output format: text, or JSON (`reconcile schema validate`).
        #[arg(short = 'o', long = "output", value_enum, default_value = "text")]
        output: ValidateFormat,
    },
    /// Show what apply would do: creates, updates (with diffs), deletes.
    Plan(super::plan::PlanArgs),
    /// Compare the rendered desired state at two git revisions (a pull request's effect).
    Diff(super::diff::DiffArgs),
    /// Carry pinned images (and reconcile.yaml `promotion:` rules) from one environment to the next.
    Promote(super::promote::PromoteArgs),
    /// Apply the desired state (a directory, an application, or a saved plan).
    Apply(super::plan::ApplyArgs),
    /// Inspect and steer Deployment rollouts (status, history, undo, promote, abort, pause, resume).
    Rollout(super::plan::RolloutArgs),
    /// Drive and inspect the built-in cluster (`get`, `describe`, `events`, `nodes`, …).
    Engine(super::engine::EngineArgs),
    /// Keep the target converged to a repository: sync, self-heal, rollouts, HTTP endpoints.
    Watch(super::watch::WatchArgs),
    /// Applications' revision, sync status, health, last error and last syncs.
    Status(super::watch::StatusArgs),
    /// Ask the running watcher to sync an application now.
    Sync(super::watch::SyncArgs),
    /// Serve the web UI for a target (applications, resource trees, diffs, rollouts, cluster).
    Ui(super::ui::UiArgs),
    /// Print the version, the git commit it was built from and the kustomize it matches.
    Version,
    /// Remove a plan/apply lock left by a process that is gone (terraform's force-unlock);
    /// LOCK_ID is the id the lock message shows.
    Unlock {
        /// The lock's id.
        lock_id: String,
        /// The target: `engine` (default), `engine:PATH`, `kube`, `kube:CONTEXT`.
        #[arg(long)]
        target: Option<String>,
    },
    /// The applied sets (inventories) of applications in a target: list them, or hand one to
    /// a renamed application (`inventory rename OLD NEW`).
    Inventory(super::plan::InventoryArgs),
    /// Print a shell completion script (`reconcile completion bash > /etc/bash_completion.d/reconcile`).
    Completion {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print a JSON Schema (`kustomization`, `config`, `strategy`, `plan`, `apps`, `diff`, and the `-o json`
    /// outputs `apply`, `rollout-status`, `rollout-get`, `validate`, `events`).
    Schema {
        /// Which schema.
        name: String,
    },
}

impl Command {
    /// The command's name as typed.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Render { .. } => "render",
            Command::Validate { .. } => "validate",
            Command::Schema { .. } => "schema",
            Command::Engine(_) => "engine",
            Command::Plan(_) => "plan",
            Command::Diff(_) => "diff",
            Command::Promote(_) => "promote",
            Command::Apply(_) => "apply",
            Command::Rollout(_) => "rollout",
            Command::Watch(_) => "watch",
            Command::Status(_) => "status",
            Command::Sync(_) => "sync",
            Command::Ui(_) => "ui",
            Command::Version => "version",
            Command::Unlock { .. } => "unlock",
            Command::Inventory(_) => "inventory",
            Command::Completion { .. } => "completion",
        }
    }
}

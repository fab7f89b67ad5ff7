//! The command line: argument parsing, one library call per command, output formatting and
//! exit codes (0 success or no changes, 1 error, 2 changes present with `--detailed-exitcode`).
//!
//! Invariant: this is the only module that prints or reads the process environment.

mod args;
mod diff;
mod engine;
mod plan;
mod promote;
mod render;
mod source;

use clap::Parser;

pub use args::{Cli, Command};

/// Exit code for success (or "no changes").
pub const EXIT_OK: i32 = 0;
/// Exit code for any error.
pub const EXIT_ERROR: i32 = 1;
/// Exit code for "changes present" under `--detailed-exitcode`.
pub const EXIT_CHANGES: i32 = 2;

/// Runs the command line and returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            EXIT_ERROR
        }
    }
}

/// Runs one parsed command; `Ok` carries the exit code.
pub fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Render {
            path,
            output,
            source,
        } => render::render(&path, output, &source),
        Command::Validate { path, source } => render::validate(&path, &source),
        Command::Schema { name } => render::schema(&name),
        Command::Engine(args) => engine::run(args),
        Command::Plan(args) => plan::plan(args),
        Command::Diff(args) => diff::diff(args),
        Command::Promote(args) => promote::promote(args),
        Command::Apply(args) => plan::apply(args),
        Command::Rollout(args) => plan::rollout(args),
    }
}

//! The command line: argument parsing, one library call per command, output formatting and
//! exit codes (0 success or no changes, 1 error, 2 changes present with `--detailed-exitcode`).
//!
//! Invariant: this is the only module that prints or reads the process environment, and it
//! prints only through `output` (the print macros below shadow std's), so a closed stdout never
//! panics.

/// `print!` through [`output::write_out`]: never panics on a closed stdout.
macro_rules! print {
    ($($arg:tt)*) => { $crate::cli::output::write_out(format_args!($($arg)*)) };
}
/// `println!` through [`output::write_out`].
macro_rules! println {
    () => { $crate::cli::output::write_out(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::cli::output::write_out(format_args!("{}\n", format_args!($($arg)*))) };
}
/// `eprint!` through [`output::write_err`].
#[allow(unused_macros)]
macro_rules! eprint {
    ($($arg:tt)*) => { $crate::cli::output::write_err(format_args!($($arg)*)) };
}
/// `eprintln!` through [`output::write_err`].
macro_rules! eprintln {
    () => { $crate::cli::output::write_err(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::cli::output::write_err(format_args!("{}\n", format_args!($($arg)*))) };
}

mod args;
mod diff;
pub(crate) mod engine;
mod output;
mod plan;
mod promote;
mod render;
mod rollout_get;
mod source;
mod target;
mod ui;
mod watch;

use clap::CommandFactory;

pub use args::{Cli, Command};

/// Exit code for success (or "no changes").
pub const EXIT_OK: i32 = 0;
/// Exit code for any error.
pub const EXIT_ERROR: i32 = 1;
/// Exit code for "changes present" under `--detailed-exitcode`.
pub const EXIT_CHANGES: i32 = 2;

/// Runs the command line and returns the process exit code.
pub fn main() -> i32 {
    // clap prints its own help and usage errors before `--color` is parsed: it gets the same
    // colour rule from the raw arguments and the environment.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let command = Cli::command().color(output::clap_color(output::color_flag(&args)));
    let parsed = command
        .try_get_matches_from(&args)
        .and_then(|matches| <Cli as clap::FromArgMatches>::from_arg_matches(&matches));
    let cli = match parsed {
        Ok(cli) => cli,
        Err(err) => {
            // Help and --version go to stdout with 0; every usage error is an error (1), never
            // clap's 2, which `--detailed-exitcode` reserves for "changes present".
            let _ = err.print();
            return if err.use_stderr() {
                EXIT_ERROR
            } else {
                EXIT_OK
            };
        }
    };
    output::init_color(cli.color);
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
        Command::Validate {
            path,
            output,
            source,
        } => render::validate(&path, output, &source),
        Command::Schema { name } => render::schema(&name),
        Command::Engine(args) => engine::run(args),
        Command::Plan(args) => plan::plan(args),
        Command::Diff(args) => diff::diff(args),
        Command::Promote(args) => promote::promote(args),
        Command::Apply(args) => plan::apply(args),
        Command::Rollout(args) => plan::rollout(args),
        Command::Watch(args) => watch::watch(args),
        Command::Status(args) => watch::status(args),
        Command::Sync(args) => watch::sync(args),
        Command::Ui(args) => ui::ui(args),
        Command::Unlock { lock_id, target } => plan::unlock(&lock_id, target.as_deref()),
        Command::Inventory(args) => plan::inventory(args),
        Command::Version => {
            print!("{}", version_text());
            Ok(EXIT_OK)
        }
        Command::Completion { shell } => {
            let mut buffer = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "reconcile", &mut buffer);
            print!("{}", String::from_utf8_lossy(&buffer));
            Ok(EXIT_OK)
        }
    }
}

/// The kustomize release whose `kustomize build` output rendering matches byte for byte.
pub const KUSTOMIZE_VERSION: &str = "v5.5.0";

/// `reconcile version`: crate version, the commit it was built from, the kustomize matched.
fn version_text() -> String {
    format!(
        "reconcile {}\ncommit: {}\nkustomize: {KUSTOMIZE_VERSION} (renders as `kubectl kustomize` of kubectl v1.32)\n",
        env!("CARGO_PKG_VERSION"),
        env!("RECONCILE_GIT_COMMIT"),
    )
}

//! The terminal: whether to colour (`--color`, `NO_COLOR`, `CLICOLOR_FORCE`/`FORCE_COLOR`) and
//! writing to stdout/stderr without ever panicking on a closed pipe.
//!
//! Every `print!`/`println!`/`eprint!`/`eprintln!` of the `cli` module goes through
//! [`write_out`]/[`write_err`] (the macros are shadowed in `cli/mod.rs`): a reader that went
//! away (`reconcile … | head -1`) silently ends the printing, never the command, so an apply
//! still finishes, releases its lock and keeps the state whole.

use std::io::{IsTerminal, Write};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::ValueEnum;

/// When to colour the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// On a terminal, unless `NO_COLOR` is set; `CLICOLOR_FORCE`/`FORCE_COLOR` force it.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

static COLOR: OnceLock<bool> = OnceLock::new();
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);
static STDERR_CLOSED: AtomicBool = AtomicBool::new(false);

fn set_and_not(var: &str, off: &[&str]) -> bool {
    std::env::var(var)
        .is_ok_and(|v| !v.is_empty() && !off.contains(&v.to_ascii_lowercase().as_str()))
}

/// The `--color` choice among raw arguments (before clap parses them, for clap's own help and
/// errors); `auto` when absent or unreadable.
pub fn color_flag(args: &[std::ffi::OsString]) -> ColorChoice {
    let mut choice = ColorChoice::Auto;
    let mut words = args.iter().skip(1).map(|a| a.to_string_lossy());
    while let Some(word) = words.next() {
        let value = match word.as_ref() {
            "--" => break,
            "--color" => words.next().map(|v| v.into_owned()),
            w => w.strip_prefix("--color=").map(str::to_string),
        };
        if let Some(parsed) = value.and_then(|v| ColorChoice::from_str(&v, true).ok()) {
            choice = parsed;
        }
    }
    choice
}

/// clap's colour setting for a choice, by the same rule as [`init_color`] (clap looks at the
/// stream it writes to, stdout for help and stderr for errors, when the rule says `auto`).
pub fn clap_color(choice: ColorChoice) -> clap::ColorChoice {
    match choice {
        ColorChoice::Always => clap::ColorChoice::Always,
        ColorChoice::Never => clap::ColorChoice::Never,
        ColorChoice::Auto => {
            if set_and_not("CLICOLOR_FORCE", &["0"]) || set_and_not("FORCE_COLOR", &["0", "false"])
            {
                clap::ColorChoice::Always
            } else if std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
                || std::env::var("TERM").is_ok_and(|t| t == "dumb")
            {
                clap::ColorChoice::Never
            } else {
                clap::ColorChoice::Auto
            }
        }
    }
}

/// Decides colour once for the run (the explicit choice wins; then a force variable; then
/// `NO_COLOR`; then whether stdout is a terminal that is not `TERM=dumb`).
pub fn init_color(choice: ColorChoice) {
    let on = match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            if set_and_not("CLICOLOR_FORCE", &["0"]) || set_and_not("FORCE_COLOR", &["0", "false"])
            {
                true
            } else if std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()) {
                false
            } else {
                std::io::stdout().is_terminal()
                    && std::env::var("TERM").map_or(true, |t| t != "dumb")
            }
        }
    };
    // A second call keeps the first decision: one run, one colour rule.
    let _ = COLOR.set(on);
}

/// Whether output is coloured.
pub fn color() -> bool {
    *COLOR.get_or_init(|| std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none())
}

fn write_to(mut stream: impl Write, closed: &AtomicBool, args: std::fmt::Arguments) {
    if closed.load(Ordering::Relaxed) {
        return;
    }
    if stream
        .write_fmt(args)
        .and_then(|()| stream.flush())
        .is_err()
    {
        // Nobody reads any more (a closed pipe) or the stream failed: further output is
        // dropped; the command itself carries on to a consistent end.
        closed.store(true, Ordering::Relaxed);
    }
}

/// Writes to stdout; a closed stdout ends printing, never the command.
pub fn write_out(args: std::fmt::Arguments) {
    write_to(std::io::stdout().lock(), &STDOUT_CLOSED, args);
}

/// Writes to stderr; a closed stderr ends printing, never the command.
pub fn write_err(args: std::fmt::Arguments) {
    write_to(std::io::stderr().lock(), &STDERR_CLOSED, args);
}

/// Writes a whole text to stdout (same rule as [`write_out`]).
pub fn write_text(text: &str) {
    write_out(format_args!("{text}"));
}

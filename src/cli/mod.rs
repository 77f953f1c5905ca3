//! The `quorate` command line: parsing, dispatch and exit codes.

mod plan;
mod schema;
mod validate;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// A GitOps reconciler for on-premises clusters running stateful containers, with
/// fencing and quorum.
#[derive(Debug, Parser)]
#[command(name = "quorate", version, about, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check spec files: YAML, shape and meaning (exit 0 valid, 1 invalid, 2 could not run).
    Validate(validate::Args),
    /// Show what the reconciler would do: fence, stop, start, restart, move, blocked.
    Plan(plan::Args),
    /// Write the JSON Schema of each kind, plus one combined schema, to a directory.
    Schema(schema::Args),
}

/// Exit code: the command could not run (bad flag, unreadable path).
pub const EXIT_USAGE: u8 = 2;

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate(args) => validate::run(&args),
        Command::Plan(args) => plan::run(&args),
        Command::Schema(args) => schema::run(&args),
    }
}

/// Whether to colour output written to stdout.
pub(crate) fn color_stdout() -> bool {
    std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal()
}

/// Whether to colour output written to stderr.
pub(crate) fn color_stderr() -> bool {
    std::env::var_os("NO_COLOR").is_none() && std::io::stderr().is_terminal()
}

/// Reads and validates the specs at `path`. On errors (or an unreadable path) prints
/// the diagnostics to stderr, as `validate` would, and returns the exit code to use:
/// invariant 6, a spec set that does not validate is never used.
pub(crate) fn load_valid_specs(path: &std::path::Path) -> Result<crate::spec::SpecSet, ExitCode> {
    use crate::diag::render::{Format, RenderContext, render};
    let sources = crate::source::fs::read_paths(&[path.to_path_buf()]).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(EXIT_USAGE)
    })?;
    let report = crate::validate::validate(&sources);
    if report.errors() > 0 || report.valid_set().is_none() {
        let ctx = RenderContext {
            sources: &sources,
            redactions: report.index.redactions(),
            color: color_stderr(),
        };
        let _ = render(
            &mut std::io::stderr().lock(),
            Format::Human,
            &report.diagnostics,
            &ctx,
        );
        eprintln!(
            "error: the specs in {} are invalid; nothing was planned",
            path.display()
        );
        return Err(ExitCode::from(1));
    }
    report.into_valid_set().ok_or(ExitCode::from(1))
}

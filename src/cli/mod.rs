//! The `quorate` command line: parsing, dispatch and exit codes.

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
        Command::Schema(args) => schema::run(&args),
    }
}

/// Whether to colour output written to stdout.
pub(crate) fn color_stdout() -> bool {
    std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal()
}

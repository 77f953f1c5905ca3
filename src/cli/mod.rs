//! The `quorate` command line: parsing, dispatch and exit codes.

mod fence;
mod plan;
mod schema;
mod validate;

use std::io::IsTerminal;
use std::path::PathBuf;
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
    /// Write the JSON Schema of each kind, one combined schema, and the schema of the
    /// observed-state snapshot to a directory.
    Schema(schema::Args),
    /// Fence a node through its fence devices, confirm one off by hand, or show the history
    /// (exit 0 confirmed, 1 failed or invalid specs, 2 could not run).
    Fence(fence::Args),
}

/// Exit code: the command ran and found a failure (invalid specs, a fence not confirmed).
pub const EXIT_FAILURE: u8 = 1;

/// Exit code: the command could not run (bad flag, unreadable path, unusable state dir).
pub const EXIT_USAGE: u8 = 2;

/// `--state-dir`, shared by every command that reads or writes the state store.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct StateDirArg {
    /// Directory holding the state database (state.db).
    #[arg(long = "state-dir", value_name = "DIR", default_value = crate::state::DEFAULT_DIR)]
    pub dir: PathBuf,
}

/// `--specs`, shared by every command that reads a spec set.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct SpecsArg {
    /// Spec files or directories (searched for *.yaml and *.yml); repeatable.
    #[arg(long = "specs", value_name = "PATH", default_value = ".")]
    pub paths: Vec<PathBuf>,
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    match cli.command {
        Command::Validate(args) => validate::run(&args),
        Command::Plan(args) => plan::run(&args),
        Command::Schema(args) => schema::run(&args),
        Command::Fence(args) => fence::run(args),
    }
}

/// Logs go to stderr; `RUST_LOG` chooses what (errors only by default: commands print
/// their own reports).
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(color_stderr())
        .try_init();
}

/// Whether to colour output written to stdout.
pub(crate) fn color_stdout() -> bool {
    std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal()
}

/// Whether to colour output written to stderr.
pub(crate) fn color_stderr() -> bool {
    std::env::var_os("NO_COLOR").is_none() && std::io::stderr().is_terminal()
}

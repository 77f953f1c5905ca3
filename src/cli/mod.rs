//! The `quorate` command line: parsing, dispatch and exit codes.

mod apply;
mod fence;
mod import;
mod lab;
mod observe;
mod plan;
mod pre_receive;
mod run;
mod schema;
mod status;
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
    /// Log format on stderr (`RUST_LOG` chooses what is logged).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// Lines for people.
    Text,
    /// One JSON object per event, with its spans.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check spec files: YAML, shape and meaning (exit 0 valid, 1 invalid, 2 could not run).
    Validate(validate::Args),
    /// Show what the reconciler would do: fence, stop, start, restart, move, blocked.
    Plan(plan::Args),
    /// Ask every node what runs there and write the observed-state snapshot (exit 0 every
    /// node answered, 1 some did not, 2 could not run).
    Observe(observe::Args),
    /// Write the JSON Schema of each kind, one combined schema, and the schema of the
    /// observed-state snapshot to a directory.
    Schema(schema::Args),
    /// Fence a node through its fence devices, confirm one off by hand, or show the history
    /// (exit 0 confirmed, 1 failed or invalid specs, 2 could not run).
    Fence(fence::Args),
    /// Follow a git repository and keep the cluster converged: the reconciler (exit 0
    /// stopped by a signal, 2 could not start).
    Run(run::Args),
    /// Reconcile once from spec files: observe, plan, carry out (asks unless --yes).
    Apply(apply::Args),
    /// Show quorum, nodes, instances, blocked instances and the last pass.
    Status(status::Args),
    /// Migrate another system's configuration to a spec set (exit 0 all carried over, 1
    /// something left out, 2 could not run).
    Import(import::Args),
    /// A cluster on this machine to try quorate on: nodes in network namespaces with their
    /// own Podman, a BMC per node, specs in a git repo (needs root).
    Lab(lab::Args),
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
    // The reconciler reports through its logs; other commands print their own reports.
    let default = if matches!(cli.command, Command::Apply(_) | Command::Run(_)) {
        "info"
    } else {
        "error"
    };
    init_tracing(cli.log_format, default);
    match cli.command {
        Command::Validate(args) => validate::run(&args),
        Command::Plan(args) => plan::run(&args),
        Command::Observe(args) => observe::run(&args),
        Command::Schema(args) => schema::run(&args),
        Command::Fence(args) => fence::run(args),
        Command::Run(args) => run::run(&args),
        Command::Apply(args) => apply::run(&args),
        Command::Status(args) => status::run(&args),
        Command::Import(args) => import::run(&args),
        Command::Lab(args) => lab::run(args),
    }
}

/// The multi-threaded async runtime of the commands that talk to a cluster; `Err` is the
/// exit code after saying why it could not start.
pub(crate) fn cluster_runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::from(EXIT_USAGE)
        })
}

/// Logs go to stderr; `RUST_LOG` chooses what (errors only by default: commands print
/// their own reports).
fn init_tracing(format: LogFormat, default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.with_ansi(color_stderr()).try_init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .try_init(),
    };
}

/// Whether to colour output written to stdout.
pub(crate) fn color_stdout() -> bool {
    std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal()
}

/// Whether to colour output written to stderr.
pub(crate) fn color_stderr() -> bool {
    std::env::var_os("NO_COLOR").is_none() && std::io::stderr().is_terminal()
}

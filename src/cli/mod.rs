//! The `quorate` command line: parsing, dispatch and exit codes.

mod apply;
mod cleanup;
mod fence;
mod generate;
mod ha;
mod history;
mod import;
mod lab;
mod logging;
mod observe;
mod plan;
mod pre_receive;
mod progress;
mod reconcile;
mod run;
mod schema;
mod state;
mod status;
mod suspend;
mod validate;

pub(crate) use fence::history::entry_json as fence_entry_json;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// A GitOps reconciler for on-premises clusters running stateful containers, with
/// fencing and quorum.
#[derive(Debug, Parser)]
#[command(name = "quorate", version = VERSION, about, max_term_width = 100)]
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
    /// Check spec files: YAML, shape and meaning (exit 0 valid, 1 invalid or could not run).
    Validate(Lazy<validate::Args>),
    /// Show what the reconciler would do: fence, stop, start, restart, move, blocked (exit 0
    /// no changes, 1 error, 2 changes).
    Plan(Lazy<plan::Args>),
    /// Ask every node what runs there and write the observed-state snapshot (exit 0 every
    /// node answered, 1 some did not or it could not run).
    Observe(Lazy<observe::Args>),
    /// Write the JSON Schema of each kind, one combined schema, and the schema of the
    /// observed-state snapshot to a directory.
    Schema(Lazy<schema::Args>),
    /// Fence a node through its fence devices, confirm one off by hand, or show the history
    /// (exit 0 confirmed, 1 failed, invalid specs, or could not run).
    Fence(Lazy<fence::Args>),
    /// Follow a git repository and keep the cluster converged: the reconciler (exit 0
    /// stopped by a signal, 1 could not start).
    Run(Lazy<Box<run::Args>>),
    /// Reconcile once from spec files: observe, plan, carry out (asks unless --yes).
    Apply(Lazy<apply::Args>),
    /// Show quorum, nodes, instances, blocked instances and the last pass.
    Status(Lazy<status::Args>),
    /// The state directory: `backup FILE` writes a consistent copy of its database while
    /// quorate runs (exit 0 written, 1 could not).
    State(Lazy<state::Args>),
    /// Migrate another system's configuration to a spec set (exit 0 all carried over, 1
    /// something left out or it could not run).
    Import(Lazy<import::Args>),
    /// A cluster on this machine to try quorate on: nodes in network namespaces with their
    /// own Podman, a BMC per node, specs in a git repo (needs root).
    Lab(Lazy<lab::Args>),
    /// Forget an instance's fail counts, on one node or all, so it may run there again
    /// (exit 0 cleared, 1 invalid specs or could not run).
    Cleanup(Lazy<cleanup::Args>),
    /// What happened: passes with their plans and step results, fence events, commits put
    /// in force and refused (exit 0 shown, 1 could not read it).
    History(Lazy<history::Args>),
    /// Ask a running `quorate run` for a pass now, with its token (exit 0 scheduled, 1 not).
    Reconcile(Lazy<reconcile::Args>),
    /// Write shell completions or man pages (for packages).
    #[command(hide = true)]
    Generate(Lazy<generate::Args>),
    /// Maintenance: leave a bundle, or the whole cluster, alone (observed and shown, never
    /// started, stopped, moved or fenced for) until `quorate resume` (exit 0 done, 1 not).
    Suspend(Lazy<suspend::SuspendArgs>),
    /// End a suspension: the next pass manages the bundle, or the cluster, again (exit 0
    /// done, 1 not).
    Resume(Lazy<suspend::ResumeArgs>),
}

/// The git commit this binary was built from (`unknown` outside a git checkout); see
/// `build.rs`.
pub const GIT_COMMIT: &str = env!("QUORATE_GIT_COMMIT");

/// `quorate --version`: the package version and the git commit.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("QUORATE_GIT_COMMIT"),
    ")"
);

/// Exit code: the command ran and found a failure (invalid specs, a fence not confirmed).
pub const EXIT_FAILURE: u8 = 1;

/// Exit code: the command could not run (bad flag, unreadable path, unusable state dir).
/// The same as any other error: exit codes follow terraform's `-detailed-exitcode`, where
/// 2 means changes.
pub const EXIT_USAGE: u8 = 1;

/// Exit code of `quorate plan` when the plan changes something (terraform's
/// `-detailed-exitcode`).
pub const EXIT_CHANGES: u8 = 2;

/// `--state-dir`, shared by every command that reads or writes the state store.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct StateDirArg {
    /// Directory holding the state database (state.db).
    #[arg(long = "state-dir", value_name = "DIR", default_value = crate::state::DEFAULT_DIR)]
    pub dir: PathBuf,
}

/// For the commands that reconcile (`run`, `apply`): takes the state directory's lock,
/// then opens its store; with `start_fresh`, a lost database is set aside for an empty
/// one. The lock is held while the returned guard lives. `Err` says why not (exit 1).
pub(crate) fn open_exclusive(
    dir: &std::path::Path,
    start_fresh: bool,
) -> Result<(crate::state::StateLock, crate::state::StateStore), String> {
    use crate::state::{StateLock, StateStore};
    let lock = StateLock::acquire(dir).map_err(|e| e.to_string())?;
    let store = if start_fresh {
        let (store, kept) = StateStore::open_or_start_fresh(dir).map_err(|e| e.to_string())?;
        if let Some(old) = kept {
            eprintln!(
                "note: started with an empty state database (--start-fresh); the old file \
                 is kept as {}",
                old.display()
            );
        }
        store
    } else {
        StateStore::open(dir).map_err(|e| e.to_string())?
    };
    Ok((lock, store))
}

/// `--specs`, shared by every command that reads a spec set.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct SpecsArg {
    /// Spec files or directories (searched for *.yaml and *.yml); repeatable.
    #[arg(long = "specs", value_name = "PATH", default_value = ".")]
    pub paths: Vec<PathBuf>,
}

/// `--secrets-dir` and `--secret-env-prefix`, shared by the commands that read a spec's
/// secrets: which references the specs may use (the spec's author is not the operator).
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct SecretPolicyArgs {
    /// The directory `fromFile` secret references must be inside (a relative reference is
    /// taken relative to it; symlinks that leave it are refused). An empty directory
    /// allows no file.
    #[arg(long = "secrets-dir", value_name = "DIR", default_value = crate::secret::DEFAULT_SECRETS_DIR)]
    pub secrets_dir: PathBuf,
    /// The prefix every `fromEnv` secret reference must start with (empty: any variable
    /// of quorate's environment).
    #[arg(long = "secret-env-prefix", value_name = "PREFIX", default_value = crate::secret::DEFAULT_ENV_PREFIX)]
    pub secret_env_prefix: String,
}

impl SecretPolicyArgs {
    /// The policy the flags describe.
    pub(crate) fn policy(&self) -> crate::secret::SecretPolicy {
        secret_policy(Some(&self.secrets_dir), &self.secret_env_prefix)
    }
}

/// A policy from the flags' values, the directory made absolute (so an absolute
/// reference can be compared with it).
pub(crate) fn secret_policy(dir: Option<&Path>, env_prefix: &str) -> crate::secret::SecretPolicy {
    let dir = dir.map(|d| std::path::absolute(d).unwrap_or_else(|_| d.to_path_buf()));
    crate::secret::SecretPolicy::new(dir, env_prefix)
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = match parse(std::env::args_os()) {
        Ok(cli) => cli,
        Err(e) => {
            // Help and --version print to stdout and exit 0; a usage error is exit 1 (2
            // means changes).
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    // The reconciler reports through its logs; other commands print their own reports.
    let default = if matches!(cli.command, Command::Apply(_) | Command::Run(_)) {
        "info"
    } else {
        "error"
    };
    logging::init(cli.log_format, default);
    match cli.command {
        Command::Validate(Lazy(args)) => validate::run(&args),
        Command::Plan(Lazy(args)) => plan::run(&args),
        Command::Observe(Lazy(args)) => observe::run(&args),
        Command::Schema(Lazy(args)) => schema::run(&args),
        Command::Fence(Lazy(args)) => fence::run(args),
        Command::Run(Lazy(args)) => run::run(&args),
        Command::Apply(Lazy(args)) => apply::run(&args),
        Command::Status(Lazy(args)) => status::run(&args),
        Command::State(Lazy(args)) => state::run(&args),
        Command::Import(Lazy(args)) => import::run(&args),
        Command::Lab(Lazy(args)) => lab::run(args),
        Command::Cleanup(Lazy(args)) => cleanup::run(&args),
        Command::History(Lazy(args)) => history::run(&args),
        Command::Reconcile(Lazy(args)) => reconcile::run(&args),
        Command::Generate(Lazy(args)) => generate::run(&args),
        Command::Suspend(Lazy(args)) => suspend::suspend(&args),
        Command::Resume(Lazy(args)) => suspend::resume(&args),
    }
}

/// The command line, every long option also read from a `QUORATE_<NAME>` environment
/// variable (`--state-dir` from `QUORATE_STATE_DIR`); a flag given wins. Whole, every
/// subcommand's arguments in place: for completions, man pages and tests.
pub fn command() -> clap::Command {
    let mut cmd = unbuilt();
    cmd.build();
    cmd
}

/// [`command`] with each subcommand's arguments left to be added when it is parsed
/// ([`Lazy`]).
fn unbuilt() -> clap::Command {
    with_env(<Cli as clap::CommandFactory>::command())
}

/// Parses `args` as [`command`] describes.
pub fn parse<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let matches = unbuilt().try_get_matches_from(args)?;
    <Cli as clap::FromArgMatches>::from_arg_matches(&matches)
}

/// A subcommand's arguments, added to the command line only when it is the subcommand
/// parsed (clap's `Command::defer`): building the arguments of all seventeen took about
/// a third of a millisecond of every `quorate` process, which `quorate plan` in a
/// pipeline pays on every run.
#[derive(Debug)]
pub(crate) struct Lazy<A>(A);

impl<A: clap::FromArgMatches> clap::FromArgMatches for Lazy<A> {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        A::from_arg_matches(matches).map(Lazy)
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        self.0.update_from_arg_matches(matches)
    }
}

impl<A: clap::Args> clap::Args for Lazy<A> {
    fn group_id() -> Option<clap::Id> {
        A::group_id()
    }

    fn augment_args(cmd: clap::Command) -> clap::Command {
        cmd.defer(|c| keep_about(c, |c| with_env(A::augment_args(c))))
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        cmd.defer(|c| keep_about(c, |c| with_env(A::augment_args_for_update(c))))
    }
}

/// `add` applied to `cmd`, keeping the description `cmd` has: the subcommand's, which
/// its arguments' own would replace when added after it.
fn keep_about(
    cmd: clap::Command,
    add: impl FnOnce(clap::Command) -> clap::Command,
) -> clap::Command {
    let about = cmd.get_about().cloned();
    let long = cmd.get_long_about().cloned();
    let mut cmd = add(cmd);
    if let Some(about) = about {
        cmd = cmd.about(about);
    }
    if let Some(long) = long {
        cmd = cmd.long_about(long);
    }
    cmd
}

/// The environment variable of a long option: `QUORATE_` and its name in upper case, `-`
/// as `_`.
pub fn env_name(long: &str) -> String {
    format!("QUORATE_{}", long.to_ascii_uppercase().replace('-', "_"))
}

fn with_env(cmd: clap::Command) -> clap::Command {
    // In place: taking each argument out by name and putting it back moved the whole
    // command tree once per argument, a third of what `quorate --version` did.
    cmd.mut_args(|a| match a.get_long() {
        Some(long) if !matches!(long, "help" | "version") => {
            let env = env_name(long);
            a.env(env).hide_env_values(true)
        }
        _ => a,
    })
    .mut_subcommands(with_env)
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

/// Ends the process with `code` once stdout and stderr are flushed, freeing nothing and
/// running no exit handler: for the commands a pipeline runs once (`plan`, `validate`),
/// whose memory goes with the process anyway. Freeing it (15 ms for the spec set at
/// 10,000 bundles) and the allocator's own pass over its pages at exit (about 1 % of
/// `quorate plan` at 1,000 × 10,000) would only keep the caller waiting.
pub(crate) fn exit_now(code: u8) -> ! {
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: `_exit` ends the process at once; nothing of it is used afterwards. What
    // the exit handlers would do is done above (stdout's buffer) or not needed (memory,
    // which the kernel takes back; no temporary file or child is left by these commands).
    unsafe { libc::_exit(i32::from(code)) }
}

/// Frees `value` on a thread of its own, for a command that goes on without it; the
/// process may end first (its memory goes with it). Where no thread starts, `value` is
/// freed here, as usual.
pub(crate) fn free_later<T: Send + 'static>(value: T) {
    let _ = std::thread::Builder::new()
        .name("free".into())
        .spawn(move || drop(value));
}

/// Whether to colour output written to stdout.
pub(crate) fn color_stdout() -> bool {
    std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal()
}

/// Whether to colour output written to stderr.
pub(crate) fn color_stderr() -> bool {
    std::env::var_os("NO_COLOR").is_none() && std::io::stderr().is_terminal()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        // clap's own checks (unique names, valid groups, ...) over every command.
        command().debug_assert();
    }

    #[test]
    fn every_long_option_has_its_environment_variable() {
        let cmd = command();
        let run = cmd.find_subcommand("run").unwrap();
        let env = |long: &str| {
            run.get_arguments()
                .find(|a| a.get_long() == Some(long))
                .and_then(|a| a.get_env())
                .map(|e| e.to_string_lossy().into_owned())
        };
        assert_eq!(env("state-dir").as_deref(), Some("QUORATE_STATE_DIR"));
        assert_eq!(env("tls-cert").as_deref(), Some("QUORATE_TLS_CERT"));
        assert_eq!(env("help"), None);
        let global = cmd
            .get_arguments()
            .find(|a| a.get_long() == Some("log-format"))
            .and_then(|a| a.get_env())
            .map(|e| e.to_string_lossy().into_owned());
        assert_eq!(global.as_deref(), Some("QUORATE_LOG_FORMAT"));
    }

    #[test]
    fn a_subcommand_gets_its_arguments_and_their_variables_when_it_is_parsed() {
        let lazy = unbuilt();
        let plan = lazy.find_subcommand("plan").unwrap();
        assert_eq!(plan.get_arguments().count(), 0);
        let mut plan = plan.clone();
        plan.build();
        let specs = plan.get_arguments().find(|a| a.get_long() == Some("specs"));
        let env = specs.and_then(|a| a.get_env()).map(|e| e.to_string_lossy());
        assert_eq!(env.as_deref(), Some("QUORATE_SPECS"));
        // The subcommand's description, not that of its arguments' struct.
        let about = plan
            .get_about()
            .map(ToString::to_string)
            .unwrap_or_default();
        assert!(
            about.starts_with("Show what the reconciler would do"),
            "{about}"
        );
        let cli = parse(["quorate", "plan", "--specs", "here"]).unwrap();
        let Command::Plan(Lazy(args)) = cli.command else {
            panic!("not plan: {:?}", cli.command);
        };
        assert_eq!(args.spec_paths(), [PathBuf::from("here")]);
    }
}

//! `quorate fence`: fence a node through the devices its specs give it, confirm a node off
//! by hand, and show what was recorded.
//!
//! Layout (one parse per command line, no ambiguity):
//! - `quorate fence NODE --action off|on|reboot|status [--specs PATH] [--state-dir DIR]`
//! - `quorate fence confirm NODE [--specs PATH] [--state-dir DIR] [--by NAME] [--note TEXT]`
//! - `quorate fence history [--state-dir DIR] [--node NODE] [--format human|json]`
//!
//! `confirm` and `history` are subcommands, looked for only as the first word after
//! `fence`. Once any flag is given they are not looked for any more, so a node that happens
//! to be called `confirm` is fenced with `quorate fence --action off confirm`.

pub(super) mod history;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Subcommand, ValueEnum};

use super::progress::{FenceProgress, Progress};
use super::{EXIT_FAILURE, EXIT_USAGE, SecretPolicyArgs, SpecsArg, StateDirArg};
use crate::fence::from_spec::{TopologyError, fence_policy, node_topology};
use crate::fence::topology::{FenceReport, FenceResult};
use crate::fence::{
    FenceAction, FenceLog, FencePolicy, MemoryFenceLog, NodeTopology, SystemClock, format_unix_ms,
    ops,
};
use crate::state::StateStore;

/// Arguments of `quorate fence`.
#[derive(Debug, clap::Args)]
#[command(
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    after_help = "Exit codes: 0 confirmed (for status: every device answered), 1 the fence \
                  failed, the specs are invalid, or it could not run (bad flag, unreadable \
                  path, unknown node, unusable state dir)."
)]
pub struct Args {
    #[command(subcommand)]
    command: Option<Sub>,
    /// The node to act on (a node of the Cluster document).
    #[arg(value_name = "NODE", required = true)]
    node: Option<String>,
    /// What to do: `off` is the fence proper; `on` unfences; `status` only asks.
    #[arg(long, value_enum, required = true)]
    action: Option<Action>,
    #[command(flatten)]
    specs: SpecsArg,
    #[command(flatten)]
    state: StateDirArg,
    #[command(flatten)]
    secrets: SecretPolicyArgs,
}

#[derive(Debug, Subcommand)]
enum Sub {
    /// Record that NODE was checked by hand and is off (who and when are recorded): from
    /// then on quorate treats it as fenced, until an `on` or `reboot` is recorded.
    Confirm(ConfirmArgs),
    /// Show recorded fence attempts, outcomes and manual confirmations, oldest first.
    History(history::Args),
}

/// Arguments of `quorate fence confirm`.
#[derive(Debug, clap::Args)]
struct ConfirmArgs {
    /// The node declared off (a node of the Cluster document).
    #[arg(value_name = "NODE")]
    node: String,
    #[command(flatten)]
    specs: SpecsArg,
    #[command(flatten)]
    state: StateDirArg,
    /// Who confirms; default `$SUDO_USER`, else `$USER`.
    #[arg(long, value_name = "NAME")]
    by: Option<String>,
    /// What was checked, e.g. "power cords pulled".
    #[arg(long, value_name = "TEXT")]
    note: Option<String>,
    /// HA mode: record it in etcd (where the replicas read it) instead of the state
    /// directory.
    #[command(flatten)]
    etcd: super::ha::EtcdArgs,
}

/// `--action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Action {
    /// Power off and confirm off: the fence.
    Off,
    /// Power on and confirm on.
    On,
    /// Power off then on (or cycle, by the device's method), confirm on.
    Reboot,
    /// Ask every device for the power state; changes nothing.
    Status,
}

impl From<Action> for FenceAction {
    fn from(a: Action) -> Self {
        match a {
            Action::Off => FenceAction::Off,
            Action::On => FenceAction::On,
            Action::Reboot => FenceAction::Reboot,
            Action::Status => FenceAction::Status,
        }
    }
}

/// Runs `quorate fence`.
pub fn run(args: Args) -> ExitCode {
    match args.command {
        Some(Sub::Confirm(c)) => confirm(&c),
        Some(Sub::History(h)) => history::run(&h),
        None => match (&args.node, args.action) {
            (Some(node), Some(action)) => fence(node, action.into(), &args),
            // clap requires both when there is no subcommand.
            _ => ExitCode::from(EXIT_USAGE),
        },
    }
}

/// Opens the state store, or says why not (exit 1).
fn open_store(state: &StateDirArg) -> Result<StateStore, ExitCode> {
    StateStore::open(&state.dir).map_err(|e| {
        eprintln!("error: cannot use the state directory: {e}");
        ExitCode::from(EXIT_USAGE)
    })
}

// Safety: this is an operator's explicit request, outside the reconciler, like Pacemaker's
// `stonith_admin --fence`; quorum (invariant 2) gates the reconciler's own decisions. Only a
// confirmed power state counts (invariant 3: `fence_node` reports success only when every
// device of one level confirmed it), and the run is recorded before the command returns, so
// the reconciler sees an off as fenced and an on or reboot as "may run again". A fence that
// cannot be recorded is not started (the state store is opened first).
fn fence(node: &str, action: FenceAction, args: &Args) -> ExitCode {
    let (state, secrets) = (&args.state, args.secrets.policy());
    let set = match super::validate::load_valid(&args.specs.paths, Some(&secrets)) {
        Ok(set) => set,
        Err(code) => return code,
    };
    if !set.cluster.fencing.enabled {
        eprintln!(
            "note: fencing is disabled in the Cluster spec; the reconciler will not fence, \
             but this command does what it is asked"
        );
    }
    let topology = match node_topology(&set, node, &secrets) {
        Ok(t) => t,
        Err(e @ TopologyError::UnknownNode { .. }) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let policy = fence_policy(&set);
    // A status query changes nothing and records nothing: it needs no state directory.
    let log: Box<dyn FenceLog> = if action == FenceAction::Status {
        Box::new(MemoryFenceLog::new())
    } else {
        match open_store(state) {
            Ok(store) => Box::new(store),
            Err(code) => return code,
        }
    };
    let rt = match super::cluster_runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    print!("{}", plan(&topology, action, &policy));
    // Each try is printed as it ends, the result line after the last.
    let progress = Progress::new();
    progress.doing(&format!("{action} {node}"));
    let live = FenceProgress {
        log: log.as_ref(),
        progress: &progress,
    };
    let report = rt.block_on(ops::fence_node(
        &topology,
        action,
        &policy,
        &SystemClock,
        &live,
    ));
    drop(progress);
    print!("{}", report.summary());
    println!("{}", verdict(&report));
    if action != FenceAction::Status && report.log_errors.is_empty() {
        println!("recorded in {}", state.dir.display());
    }
    if report.succeeded() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILURE)
    }
}

/// What is about to happen: the devices by level, with their delays.
fn plan(topology: &NodeTopology, action: FenceAction, policy: &FencePolicy) -> String {
    let mut out = format!(
        "{action} {}: {} device(s), timeout {:?}\n",
        topology.node,
        topology.devices.len(),
        policy.timeout
    );
    let waits = matches!(action, FenceAction::Off | FenceAction::Reboot);
    for d in &topology.devices {
        out.push_str(&format!(
            "  level {} {}: {}",
            d.level,
            d.name,
            d.agent.describe()
        ));
        if waits && d.delay > Duration::ZERO {
            out.push_str(&format!(", waits {:?} first", d.delay));
        }
        out.push('\n');
    }
    out
}

/// The last line: the confirmed state, or what the devices said, or the failure.
fn verdict(report: &FenceReport) -> String {
    let node = &report.node;
    match &report.result {
        FenceResult::Confirmed { level, state } => {
            format!("result: {node} is confirmed {state} (level {level})")
        }
        FenceResult::Failed { .. } => {
            format!(
                "result: FAILED: {} of {node} was not confirmed",
                report.action
            )
        }
        FenceResult::Queried => {
            let answers: Vec<String> = report
                .attempts
                .iter()
                .map(|a| match &a.result {
                    Ok(state) => format!("{} says {state}", a.device),
                    Err(e) => format!("{} did not answer ({})", a.device, e.kind),
                })
                .collect();
            let states: Vec<_> = report
                .attempts
                .iter()
                .map(|a| a.result.as_ref().ok())
                .collect();
            match states.first() {
                Some(Some(first)) if states.iter().all(|s| *s == Some(*first)) => {
                    format!("result: {node} is {first}")
                }
                _ => format!("result: {node}: {}", answers.join(", ")),
            }
        }
    }
}

/// `quorate fence confirm`.
///
/// Safety (invariant 3): this is the manual path the invariant allows. The node must be one
/// of the cluster, and the confirmation is recorded with who and when before it counts.
fn confirm(args: &ConfirmArgs) -> ExitCode {
    let set = match super::validate::load_valid(&args.specs.paths, None) {
        Ok(set) => set,
        Err(code) => return code,
    };
    if !set
        .cluster
        .nodes
        .iter()
        .any(|n| n.name.as_str() == args.node)
    {
        let known: Vec<&str> = set.cluster.nodes.iter().map(|n| n.name.as_str()).collect();
        eprintln!(
            "error: the cluster has no node `{}` (nodes: {})",
            args.node,
            known.join(", ")
        );
        return ExitCode::from(EXIT_USAGE);
    }
    if let Some(cfg) = args.etcd.config() {
        let rt = match super::cluster_runtime() {
            Ok(rt) => rt,
            Err(code) => return code,
        };
        let result = rt.block_on(async {
            let client = crate::ha::connect(&cfg)
                .await
                .map_err(|e| crate::fence::FenceLogError(Box::from(e)))?;
            let store = crate::ha::store::EtcdStore::operator(client, &args.etcd.etcd_prefix);
            ops::confirm_off(
                &store,
                &SystemClock,
                &args.node,
                args.by.as_deref(),
                args.note.as_deref(),
            )
            .await
        });
        return report_confirmed(result);
    }
    let store = match open_store(&args.state) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let rt = match super::cluster_runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let result = rt.block_on(ops::confirm_off(
        &store,
        &SystemClock,
        &args.node,
        args.by.as_deref(),
        args.note.as_deref(),
    ));
    report_confirmed(result)
}

/// Prints what `quorate fence confirm` recorded, or why not.
fn report_confirmed(
    result: Result<crate::fence::log::ManualConfirmation, crate::fence::FenceLogError>,
) -> ExitCode {
    match result {
        Ok(c) => {
            print!(
                "recorded: {} confirmed off by hand by {} at {}",
                c.node,
                c.by,
                format_unix_ms(c.at_unix_ms)
            );
            match &c.note {
                Some(note) => println!(": {note}"),
                None => println!(),
            }
            eprintln!(
                "warning: quorate now treats {} as fenced; its instances with recovery: fence \
                 may start elsewhere",
                c.node
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: not recorded: {e}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command, Lazy};

    fn parse(line: &str) -> Result<Args, clap::Error> {
        let argv = std::iter::once("quorate").chain(line.split_whitespace());
        match Cli::try_parse_from(argv)?.command {
            Command::Fence(Lazy(a)) => Ok(a),
            other => panic!("not fence: {other:?}"),
        }
    }

    #[test]
    fn the_run_form_takes_a_node_and_an_action() {
        let a = parse("fence worker1 --action off --specs s --state-dir d").unwrap();
        assert!(a.command.is_none());
        assert_eq!(a.node.as_deref(), Some("worker1"));
        assert_eq!(a.action, Some(Action::Off));
        assert_eq!(a.specs.paths, [std::path::PathBuf::from("s")]);
        assert_eq!(a.state.dir, std::path::PathBuf::from("d"));
        let a = parse("fence --action status worker1").unwrap();
        assert_eq!(
            (a.node.as_deref(), a.action),
            (Some("worker1"), Some(Action::Status))
        );
        let d = parse("fence w --action on").unwrap();
        assert_eq!(
            d.state.dir,
            std::path::PathBuf::from(crate::state::DEFAULT_DIR)
        );
        assert_eq!(d.specs.paths, [std::path::PathBuf::from(".")]);
    }

    #[test]
    fn the_run_form_needs_both_and_a_known_action() {
        for bad in [
            "fence worker1",
            "fence --action off",
            "fence worker1 --action cycle",
            "fence",
        ] {
            let e = parse(bad).map(|_| ()).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad}: {e}");
        }
    }

    #[test]
    fn subcommands_are_recognised_first() {
        let a = parse("fence confirm worker1 --by alice --note pulled").unwrap();
        match a.command {
            Some(Sub::Confirm(c)) => {
                assert_eq!(c.node, "worker1");
                assert_eq!(c.by.as_deref(), Some("alice"));
                assert_eq!(c.note.as_deref(), Some("pulled"));
            }
            other => panic!("{other:?}"),
        }
        let a = parse("fence history --node worker1 --format json").unwrap();
        assert!(matches!(a.command, Some(Sub::History(_))));
        assert!(parse("fence confirm").is_err(), "confirm needs a node");
        assert!(parse("fence confirm worker1 --action off").is_err());
        assert!(parse("fence history worker1").is_err());
    }

    #[test]
    fn after_a_flag_a_subcommand_name_is_a_node() {
        let a = parse("fence --action off confirm").unwrap();
        assert!(a.command.is_none());
        assert_eq!(a.node.as_deref(), Some("confirm"));
        assert!(parse("fence worker1 --action off confirm").is_err());
    }
}

//! `quorate suspend [BUNDLE]` and `quorate resume [BUNDLE]`: maintenance. A suspended
//! bundle (Pacemaker's `is-managed=false`), or the whole cluster when no bundle is named
//! (Pacemaker's `maintenance-mode`), is observed and shown but never started, stopped,
//! moved or fenced for, from the reconciler's next pass until it is resumed.

use std::process::ExitCode;

use super::ha::{EtcdArgs, operator_store};
use super::{EXIT_USAGE, SpecsArg, StateDirArg};
use crate::observed::Suspension;
use crate::spec::Name;

/// Arguments of `quorate suspend`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit codes: 0 suspended, 1 could not (invalid bundle name or specs, \
                  unusable state directory or etcd, too many bundles suspended). A bundle the \
                  specs do not have is suspended with a warning."
)]
pub struct SuspendArgs {
    /// The bundle; default the whole cluster (no node is fenced either).
    #[arg(value_name = "BUNDLE")]
    bundle: Option<String>,
    /// Why (shown in status and in plans; at most 512 bytes are kept).
    #[arg(long, value_name = "TEXT")]
    reason: Option<String>,
    #[command(flatten)]
    specs: SpecsArg,
    #[command(flatten)]
    state: StateDirArg,
    /// HA mode: record it in etcd (where the replicas keep their state) instead of the
    /// state directory.
    #[command(flatten)]
    etcd: EtcdArgs,
}

/// Arguments of `quorate resume`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit codes: 0 resumed (or it was not suspended), 1 could not (invalid \
                  bundle name, unusable state directory or etcd)."
)]
pub struct ResumeArgs {
    /// The bundle; default the whole cluster (bundles suspended one by one stay so).
    #[arg(value_name = "BUNDLE")]
    bundle: Option<String>,
    #[command(flatten)]
    state: StateDirArg,
    /// HA mode: end it in etcd instead of the state directory.
    #[command(flatten)]
    etcd: EtcdArgs,
}

/// What is named: the whole cluster, or a bundle.
fn target(bundle: Option<&str>) -> Result<Option<Name>, ExitCode> {
    match bundle.map(str::parse::<Name>).transpose() {
        Ok(name) => Ok(name),
        Err(e) => {
            eprintln!("error: not a bundle name: {e}");
            Err(ExitCode::from(EXIT_USAGE))
        }
    }
}

fn describe(bundle: Option<&Name>) -> String {
    bundle.map_or_else(|| "the cluster".to_owned(), |b| format!("bundle {b}"))
}

/// Writes the suspension (or its end) where the state is kept: etcd with `--etcd`, else
/// the state directory.
fn write(
    state: &StateDirArg,
    etcd: &EtcdArgs,
    bundle: Option<&Name>,
    suspension: Option<&Suspension>,
) -> Result<Option<Suspension>, ExitCode> {
    let rt = super::cluster_runtime()?;
    rt.block_on(async {
        let store = operator_store(state, etcd).await?;
        store
            .set_suspended(bundle.map(Name::as_str), suspension)
            .await
            .map_err(|e| format!("cannot record it: {e}"))
    })
    .map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(EXIT_USAGE)
    })
}

/// Runs `quorate suspend`. Suspending starts, stops and fences nothing: from the next pass
/// the planner leaves the bundle's instances where they are observed (no step touches
/// them, so invariants 1 to 4 hold for them trivially) and fences no node for them.
pub fn suspend(args: &SuspendArgs) -> ExitCode {
    let bundle = match target(args.bundle.as_deref()) {
        Ok(b) => b,
        Err(code) => return code,
    };
    if let Some(b) = &bundle {
        let set = match super::validate::load_valid(&args.specs.paths, None) {
            Ok(set) => set,
            Err(code) => return code,
        };
        if !set.bundles.contains_key(b) {
            eprintln!(
                "warning: the specs have no bundle `{b}`: it is suspended anyway (its \
                 instances, if any run, are left alone, also after the bundle leaves the specs)"
            );
        }
    }
    let now = crate::fence::Clock::now_unix_ms(&crate::fence::SystemClock);
    let suspension = Suspension::new(now, args.reason.as_deref());
    match write(&args.state, &args.etcd, bundle.as_ref(), Some(&suspension)) {
        Ok(before) => {
            let again = if before.is_some() { " (again)" } else { "" };
            println!(
                "suspended{again}: {}; observed and shown, never started, stopped, moved or \
                 fenced for, from the next pass. `quorate resume{}` manages it again.",
                describe(bundle.as_ref()),
                bundle.as_ref().map(|b| format!(" {b}")).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

/// Runs `quorate resume`. Resuming acts on nothing itself: the next pass plans from what
/// it observes, under quorum (invariant 2) and the other invariants as always.
pub fn resume(args: &ResumeArgs) -> ExitCode {
    let bundle = match target(args.bundle.as_deref()) {
        Ok(b) => b,
        Err(code) => return code,
    };
    match write(&args.state, &args.etcd, bundle.as_ref(), None) {
        Ok(Some(_)) => {
            println!(
                "resumed: {}; the next pass plans for it from what it observes",
                describe(bundle.as_ref())
            );
            ExitCode::SUCCESS
        }
        Ok(None) => {
            println!(
                "{} was not suspended: nothing to do",
                describe(bundle.as_ref())
            );
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

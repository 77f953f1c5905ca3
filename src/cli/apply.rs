//! `quorate apply`: reconcile once from a directory of specs, for bootstrap and tests.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use super::progress::Progress;
use super::{EXIT_FAILURE, EXIT_USAGE, SecretPolicyArgs, SpecsArg, StateDirArg};
use crate::plan::render::{Format, render, summary};
use crate::reconcile::real::RealEnvironment;
use crate::reconcile::store::PassOutcome;
use crate::reconcile::{Desired, Options, PassReport, Reconciler, StepEvent};
use crate::state::StateStore;
use tokio::sync::mpsc::UnboundedReceiver;

/// Arguments of `quorate apply`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit codes: 0 the cluster matches the specs, 1 a step failed, instances \
                        stay blocked, nothing was done for want of a confirmation, the specs \
                        are invalid, or it could not run."
)]
pub struct Args {
    #[command(flatten)]
    specs: SpecsArg,
    #[command(flatten)]
    state: StateDirArg,
    #[command(flatten)]
    secrets: SecretPolicyArgs,
    /// Carry out the plan without asking.
    #[arg(long)]
    yes: bool,
    /// Bound on each call to a node's runtime.
    #[arg(long, value_name = "DURATION", default_value = "10s")]
    timeout: crate::spec::Duration,
    /// Start with an empty state database if the one in the state directory is missing,
    /// empty or unreadable (the old file is kept aside as state.db.refused-<time>).
    #[arg(long)]
    start_fresh: bool,
}

/// Passes run at most: each one acts on what the previous one left.
const MAX_PASSES: usize = 5;

pub fn run(args: &Args) -> ExitCode {
    let spec = match super::validate::load_valid(&args.specs.paths, Some(&args.secrets.policy())) {
        Ok(s) => Arc::new(s),
        Err(code) => return code,
    };
    // The lock is held until the process exits: one reconciler per state directory.
    let (_lock, store) = match super::open_exclusive(&args.state.dir, args.start_fresh) {
        Ok(held) => held,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let runtime = match super::cluster_runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    let label = args
        .specs
        .paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(",");
    runtime.block_on(apply(args, spec, store, format!("apply:{label}")))
}

async fn apply(
    args: &Args,
    spec: Arc<crate::spec::SpecSet>,
    store: StateStore,
    commit: String,
) -> ExitCode {
    let env = Arc::new(RealEnvironment::new(
        &spec,
        args.timeout.get(),
        args.secrets.policy(),
    ));
    let desired = Desired { spec, commit };
    let mut r = match Reconciler::new(env, Arc::new(store), desired, Options::default()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    // Membership first: a node that does not answer is waited for until it is lost.
    let plan = loop {
        match r.preview().await {
            Ok(p) => break p,
            Err(at) => {
                eprintln!(
                    "waiting for nodes that do not answer (they are lost after the dead time)"
                );
                tokio::time::sleep_until(
                    at.unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_millis(500)),
                )
                .await;
            }
        }
    };
    print!("{}", render(&plan, Format::Human, false));
    if plan.steps.is_empty() {
        return blocked_exit(&plan);
    }
    if !args.yes && !confirmed() {
        eprintln!(
            "error: nothing was changed: the plan was not confirmed (run with --yes to carry it out)"
        );
        return ExitCode::from(EXIT_FAILURE);
    }
    let (events, mut steps) = tokio::sync::mpsc::unbounded_channel();
    r.report_steps_to(events);
    let progress = Progress::new();
    for _ in 0..MAX_PASSES {
        let report = pass_showing_steps(&mut r, &mut steps, &progress).await;
        if report.record.outcome == PassOutcome::Aborted {
            drop(progress);
            eprintln!("error: a step failed; the cluster was left as shown (run again to retry)");
            return ExitCode::from(EXIT_FAILURE);
        }
        match report.plan {
            Some(p) if p.steps.is_empty() => {
                drop(progress);
                println!("Converged: {}.", summary(&p));
                return blocked_exit(&p);
            }
            None => tokio::time::sleep(Duration::from_millis(500)).await,
            Some(_) => {}
        }
    }
    eprintln!("error: not converged after {MAX_PASSES} passes");
    ExitCode::from(EXIT_FAILURE)
}

/// One pass, each step printed as it ends while the pass goes on.
async fn pass_showing_steps(
    r: &mut Reconciler,
    steps: &mut UnboundedReceiver<StepEvent>,
    progress: &Progress,
) -> PassReport {
    let report = {
        let pass = r.pass("apply");
        tokio::pin!(pass);
        loop {
            tokio::select! {
                report = &mut pass => break report,
                Some(event) = steps.recv() => show(progress, event),
            }
        }
    };
    while let Ok(event) = steps.try_recv() {
        show(progress, event);
    }
    report
}

/// A step's start on the spinner, its end as a line.
fn show(progress: &Progress, event: StepEvent) {
    match event {
        StepEvent::Started(what) => progress.doing(&what),
        StepEvent::Ended(s) => progress.line(&format!("  {:<40} {s}", s.what)),
    }
}

/// The exit code of a plan with nothing left to do: 0, or 1 when instances stay blocked
/// (the plan above says why each waits).
fn blocked_exit(plan: &crate::plan::Plan) -> ExitCode {
    match plan.blocked_instances() {
        0 => ExitCode::SUCCESS,
        n => {
            eprintln!("error: {n} instance(s) stay blocked (see above for why)");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// Asks on the terminal; without one (CI, pipes) the answer is no.
fn confirmed() -> bool {
    if !std::io::stdin().is_terminal() {
        return false;
    }
    print!("Carry out this plan? [y/N] ");
    let _ = std::io::stdout().flush();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).is_ok() && matches!(line.trim(), "y" | "Y" | "yes")
}

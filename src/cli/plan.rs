//! `quorate plan`: what the reconciler would do, for reviewers and what-ifs.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::diag::Diagnostic;
use crate::diag::render::{Format as DiagFormat, RenderContext, render as render_diags};
use crate::observed::{Observed, snapshot};
use crate::plan::render::{Format, render_to};
use crate::plan::{Options, plan};
use crate::source::Sources;
use crate::spec::Name;

/// Arguments of `quorate plan`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit codes (terraform's -detailed-exitcode): 0 no changes, 1 error (invalid \
                  specs or snapshot, could not run), 2 changes planned."
)]
pub struct Args {
    /// Spec files or directories (searched for *.yaml and *.yml), as for `validate`;
    /// default: --specs, else the current directory.
    #[arg(value_name = "PATHS")]
    positional: Vec<PathBuf>,
    #[command(flatten)]
    specs: super::SpecsArg,
    /// Observed-state snapshot (YAML or JSON, as `quorate observe` writes); default: a
    /// fresh cluster, every node online and empty (with --fail-node: the cluster as this
    /// plan would leave it, then the nodes fail).
    #[arg(long, conflicts_with = "live")]
    observed: Option<PathBuf>,
    /// Observe the nodes now (as `quorate observe` does) and plan from what they say.
    #[arg(long)]
    live: bool,
    /// With --live: how to observe.
    #[command(flatten)]
    live_args: super::observe::LiveArgs,
    /// Treat NODE as lost (what-if); repeatable.
    #[arg(long = "fail-node", value_name = "NODE")]
    fail_nodes: Vec<String>,
    /// Treat BUNDLE as suspended (what-if, as `quorate suspend BUNDLE`); repeatable. A
    /// snapshot's, or with --live the state directory's, suspensions count too.
    #[arg(long = "suspended", value_name = "BUNDLE")]
    suspended: Vec<String>,
    /// Treat the whole cluster as suspended (what-if, as `quorate suspend`).
    #[arg(long = "suspended-cluster")]
    suspended_cluster: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
    /// Add the score of every candidate node for every placement.
    #[arg(long)]
    explain: bool,
    /// Kept for scripts written before it became the default: `plan` always exits 0 with no
    /// changes and 2 with changes.
    #[arg(long, hide = true)]
    detailed_exitcode: bool,
}

impl Args {
    /// The spec paths: the positional ones, else `--specs`.
    pub(super) fn spec_paths(&self) -> &[PathBuf] {
        if self.positional.is_empty() {
            &self.specs.paths
        } else {
            &self.positional
        }
    }
}

pub fn run(args: &Args) -> ExitCode {
    // Machines asked for JSON: the findings of invalid specs come as JSON on stdout too.
    let findings = match args.format {
        Format::Json => DiagFormat::Json,
        _ => DiagFormat::Human,
    };
    // The snapshot is parsed while the specs are validated: their meaning checks use one
    // core, and the snapshot of a large cluster is a megabyte or more of JSON.
    let (spec, snapshot) = std::thread::scope(|s| {
        let snapshot = args
            .observed
            .as_deref()
            .map(|path| s.spawn(move || parse_snapshot(path)));
        let spec = super::validate::load_valid_as(args.spec_paths(), None, findings);
        let snapshot = snapshot.map(|t| t.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
        (spec, snapshot)
    });
    let spec = match spec {
        Ok(s) => s,
        Err(code) => return code,
    };
    if args.live_args.any() && !args.live {
        eprintln!("error: --timeout, --state-dir and --previous go with --live");
        return ExitCode::from(super::EXIT_USAGE);
    }
    let mut observed = match snapshot {
        None if args.live => match super::observe::observe_live(&spec, &args.live_args) {
            Ok((observed, _)) => observed,
            Err(code) => return code,
        },
        // A what-if without a snapshot asks about the cluster as the specs would leave it.
        None if !args.fail_nodes.is_empty() => {
            let fresh = Observed::fresh(&spec);
            let first = plan(&spec, &fresh, &Options::default());
            crate::plan::apply::expected_state(&spec, &fresh, &first)
        }
        None => {
            eprintln!(
                "note: planning against an empty cluster (every node online, nothing running); \
                 give --observed FILE or --live to plan against the real one"
            );
            Observed::fresh(&spec)
        }
        Some(Ok(o)) => o,
        Some(Err(e)) => return e.report(),
    };
    for node in &args.fail_nodes {
        match node
            .parse::<Name>()
            .ok()
            .filter(|n| spec.cluster.node(n.as_str()).is_some())
        {
            Some(n) => observed.fail_node(&n),
            None => {
                eprintln!("error: --fail-node {node}: no such node in the spec");
                return ExitCode::from(super::EXIT_USAGE);
            }
        }
    }
    if let Err(code) = what_if_suspended(args, &mut observed) {
        return code;
    }
    let options = Options {
        explain: args.explain,
        ..Options::default()
    };
    let started = std::time::Instant::now();
    let plan = plan(&spec, &observed, &options);
    tracing::debug!(steps = plan.steps.len(), took = ?started.elapsed(), "planned");
    let started = std::time::Instant::now();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let _ = render_to(&plan, args.format, args.explain, &mut out).and_then(|()| out.flush());
    tracing::debug!(took = ?started.elapsed(), "plan written");
    super::exit_now(if plan.changes > 0 {
        super::EXIT_CHANGES
    } else {
        0
    })
}

/// `--suspended BUNDLE` and `--suspended-cluster`: added to what `observed` says is
/// suspended (a bundle name that is not one is refused, exit 1).
fn what_if_suspended(args: &Args, observed: &mut Observed) -> Result<(), ExitCode> {
    let what_if = crate::observed::Suspension::new(
        observed.now.saturating_mul(1000).try_into().unwrap_or(0),
        Some("what-if"),
    );
    for bundle in &args.suspended {
        if let Err(e) = bundle.parse::<Name>() {
            eprintln!("error: --suspended {bundle}: not a bundle name: {e}");
            return Err(ExitCode::from(super::EXIT_USAGE));
        }
        observed
            .suspended
            .bundles
            .insert(bundle.clone(), what_if.clone());
    }
    if args.suspended_cluster {
        observed.suspended.cluster = Some(what_if);
    }
    Ok(())
}

/// Reads a snapshot file, rendering its problems to stderr (exit 1, also when unreadable).
pub(super) fn read_snapshot(path: &Path) -> Result<Observed, ExitCode> {
    parse_snapshot(path).map_err(SnapshotError::report)
}

/// Why a snapshot file could not be used, kept until it can be reported.
enum SnapshotError {
    Unreadable(String),
    Invalid(Sources, Vec<Diagnostic>),
}

impl SnapshotError {
    /// Renders the problem to stderr; the exit code for it.
    fn report(self) -> ExitCode {
        match self {
            SnapshotError::Unreadable(message) => {
                eprintln!("error: {message}");
                ExitCode::from(super::EXIT_USAGE)
            }
            SnapshotError::Invalid(sources, diags) => {
                let ctx = RenderContext {
                    sources: &sources,
                    redactions: &[],
                    color: super::color_stderr(),
                };
                let _ = render_diags(
                    &mut std::io::stderr().lock(),
                    DiagFormat::Human,
                    &diags,
                    &ctx,
                );
                ExitCode::from(1)
            }
        }
    }
}

/// The largest snapshot file read: over four times the snapshot of the largest cluster a
/// spec set may describe (10,000 nodes, 100,000 instances: 14 MiB of pretty JSON).
const MAX_SNAPSHOT_BYTES: u64 = 64 * 1024 * 1024;

/// Reads (at most [`MAX_SNAPSHOT_BYTES`]) and parses a snapshot file.
fn parse_snapshot(path: &Path) -> Result<Observed, SnapshotError> {
    let started = std::time::Instant::now();
    let unreadable =
        |e: String| SnapshotError::Unreadable(format!("cannot read {}: {e}", path.display()));
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_SNAPSHOT_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| unreadable(e.to_string()))?;
    if bytes.len() as u64 > MAX_SNAPSHOT_BYTES {
        return Err(unreadable(format!(
            "a snapshot may hold at most {MAX_SNAPSHOT_BYTES} bytes"
        )));
    }
    let mut sources = Sources::new();
    let file = sources.add(path.display().to_string(), bytes);
    let bytes = sources
        .get(file)
        .map(|f| f.bytes.as_slice())
        .unwrap_or_default();
    let parsed = snapshot::parse(file, bytes);
    tracing::debug!(took = ?started.elapsed(), "snapshot read");
    parsed.map_err(|diags| SnapshotError::Invalid(sources, diags))
}

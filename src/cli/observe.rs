//! `quorate observe`: ask every node what runs there and write the observed-state
//! snapshot that `quorate plan --observed` reads. `quorate plan --live` runs the same
//! observation through [`observe_live`].

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use super::{EXIT_FAILURE, EXIT_USAGE, SpecsArg};
use crate::fence::format_unix_ms;
use crate::fence::log::OffEvidence;
use crate::observed::{NodeState, Observed, snapshot};
use crate::reconcile::store::Store;
use crate::runtime::RuntimeError;
use crate::runtime::cluster::{Memory, NodeObservation, observe_once};
use crate::spec::{Duration, Name, SpecSet};
use crate::state::{DB_FILE, DEFAULT_DIR, StateStore};

/// How long a node may take to answer when `--timeout` is not given.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Arguments of `quorate observe`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit codes: 0 every node answered, 1 some node did not (the snapshot \
                        is still written), the specs are invalid, or it could not run (bad \
                        flag, unreadable path, unusable state dir)."
)]
pub struct Args {
    #[command(flatten)]
    specs: SpecsArg,
    /// Write the snapshot to FILE (replaced whole); default: standard output.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    #[command(flatten)]
    live: LiveArgs,
}

/// How to observe the live cluster (shared by `observe` and `plan --live`).
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct LiveArgs {
    /// Longest wait for each node's answer (default 10s); nodes are asked in parallel.
    #[arg(long, value_name = "DUR")]
    pub timeout: Option<Duration>,
    /// State directory whose fence log tells which silent nodes are fenced or confirmed
    /// off by hand; default: /var/lib/quorate when it holds a state database.
    #[arg(long = "state-dir", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// A previous snapshot: a node that does not answer keeps the instances last seen on
    /// it and the time it was first seen lost.
    #[arg(long, value_name = "FILE")]
    pub previous: Option<PathBuf>,
}

impl LiveArgs {
    /// Whether any of these flags was given.
    pub fn any(&self) -> bool {
        self.timeout.is_some() || self.state_dir.is_some() || self.previous.is_some()
    }

    /// The state directory to read: the one given, else the default one if it has a
    /// database (observing never creates one there).
    fn state_dir(&self) -> Option<PathBuf> {
        self.state_dir.clone().or_else(|| {
            let dir = PathBuf::from(DEFAULT_DIR);
            dir.join(DB_FILE).exists().then_some(dir)
        })
    }
}

/// Runs `quorate observe`.
pub fn run(args: &Args) -> ExitCode {
    let set = match super::validate::load_valid(&args.specs.paths, None) {
        Ok(set) => set,
        Err(code) => return code,
    };
    let (observed, all_answered) = match observe_live(&set, &args.live) {
        Ok(o) => o,
        Err(code) => return code,
    };
    let text = snapshot::to_json(&observed);
    let written = match &args.out {
        None => std::io::stdout()
            .lock()
            .write_all(text.as_bytes())
            .map_err(|e| format!("cannot write the snapshot: {e}")),
        Some(path) => write_file(path, &text),
    };
    if let Err(e) = written {
        eprintln!("error: {e}");
        return ExitCode::from(EXIT_USAGE);
    }
    if all_answered {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILURE)
    }
}

/// Observes every node of `set` now; reports each node on stderr. Returns the snapshot
/// and whether every node answered, or the exit code when it could not run.
pub(crate) fn observe_live(set: &SpecSet, args: &LiveArgs) -> Result<(Observed, bool), ExitCode> {
    let usage = |msg: String| {
        eprintln!("error: {msg}");
        ExitCode::from(EXIT_USAGE)
    };
    let timeout = args.timeout.unwrap_or(DEFAULT_TIMEOUT);
    if timeout.is_zero() {
        return Err(usage("--timeout must be longer than 0s".into()));
    }
    let previous = match &args.previous {
        // A previous snapshot that cannot be read is an error (exit 1, like "some node
        // did not answer": the message says which).
        Some(path) => {
            Some(super::plan::read_snapshot(path).map_err(|_| ExitCode::from(EXIT_USAGE))?)
        }
        None => None,
    };
    let store = match args.state_dir() {
        Some(dir) => Some(
            StateStore::open(&dir)
                .map_err(|e| usage(format!("cannot use the state directory: {e}")))?,
        ),
        None => None,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| usage(format!("cannot start the async runtime: {e}")))?;
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let memory = Memory {
        store: store.as_ref().map(|s| s as &dyn Store),
        previous: previous.as_ref(),
    };
    let once = rt
        .block_on(observe_once(set, timeout.get(), memory, now_ms))
        .map_err(|e| usage(format!("cannot read the state directory: {e}")))?;
    // Settings the drivers refuse cannot be observed: that is not a lost node.
    if let Some((n, e)) = once.nodes.iter().find_map(|n| match &n.result {
        Err(e @ RuntimeError::Endpoint(_)) => Some((n, e)),
        _ => None,
    }) {
        return Err(usage(format!("node {}: {e}", n.node)));
    }
    let observed = once.assembled.observed;
    let mut err = std::io::stderr().lock();
    for n in &once.nodes {
        let _ = writeln!(err, "{}", describe(n, &observed, &once.evidence));
    }
    let never_listed: Vec<&str> = once.assembled.assumed.iter().map(Name::as_str).collect();
    if !never_listed.is_empty() {
        let _ = writeln!(
            err,
            "note: nothing is known of what ran on {}: it may run any single-writer \
             instance, so a plan fences it before starting one elsewhere; give --state-dir \
             (the reconciler's) or --previous (the last snapshot) to use what was seen there",
            never_listed.join(", ")
        );
    }
    let all = once.nodes.iter().all(|n| n.result.is_ok());
    Ok((observed, all))
}

/// One line per node for stderr.
fn describe(
    n: &NodeObservation,
    observed: &Observed,
    evidence: &BTreeMap<Name, OffEvidence>,
) -> String {
    let took = format!("{:.0?}", n.took);
    let off = evidence.get(&n.node);
    let seen = observed.nodes.get(&n.node);
    let count = seen.map_or(0, |s| s.instances.len());
    let fenced = seen.is_some_and(|s| s.state == NodeState::Fenced);
    match (&n.result, off) {
        (Ok(_), None) => format!("{}: online, {count} instance(s) ({took})", n.node),
        (Ok(_), Some(e)) => format!(
            "{}: online, {count} instance(s) ({took}); warning: it answers although the \
             fence log says it is off ({})",
            n.node,
            evidence_text(e)
        ),
        (Err(e), Some(off)) if fenced => format!(
            "{}: fenced ({}); it does not answer: {e}",
            n.node,
            evidence_text(off)
        ),
        (Err(e), Some(off)) => format!(
            "{}: LOST: {e} ({took}); the fence log's record ({}) is older than its last \
             answer, so it does not count",
            n.node,
            evidence_text(off)
        ),
        (Err(e), None) => format!("{}: LOST: {e} ({took})", n.node),
    }
}

fn evidence_text(e: &OffEvidence) -> String {
    match e {
        OffEvidence::Fenced { level, at_unix_ms } => {
            format!("fenced at level {level} at {}", format_unix_ms(*at_unix_ms))
        }
        OffEvidence::Manual { by, at_unix_ms } => {
            format!("confirmed off by {by} at {}", format_unix_ms(*at_unix_ms))
        }
    }
}

/// Writes `text` to `path` through a temporary file in the same directory, so a reader
/// never sees half a snapshot.
fn write_file(path: &Path, text: &str) -> Result<(), String> {
    let fail = |e: &dyn std::fmt::Display| format!("cannot write {}: {e}", path.display());
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| fail(&e))?;
    tmp.write_all(text.as_bytes()).map_err(|e| fail(&e))?;
    tmp.persist(path).map_err(|e| fail(&e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command, Lazy};

    fn parse(line: &str) -> Result<Args, clap::Error> {
        let argv = std::iter::once("quorate").chain(line.split_whitespace());
        match Cli::try_parse_from(argv)?.command {
            Command::Observe(Lazy(a)) => Ok(a),
            other => panic!("not observe: {other:?}"),
        }
    }

    #[test]
    fn flags_parse() {
        let a = parse("observe --specs a --specs b --out o.json --timeout 1500ms --state-dir d")
            .unwrap();
        assert_eq!(a.specs.paths, [PathBuf::from("a"), PathBuf::from("b")]);
        assert_eq!(a.out, Some(PathBuf::from("o.json")));
        assert_eq!(a.live.timeout, Some(Duration::from_millis(1500)));
        assert_eq!(a.live.state_dir, Some(PathBuf::from("d")));
        assert!(a.live.any());
        let d = parse("observe").unwrap();
        assert_eq!(d.specs.paths, [PathBuf::from(".")]);
        assert!(d.out.is_none() && !d.live.any());
        assert!(
            parse("observe --timeout 10").is_err(),
            "a duration needs a unit"
        );
    }

    #[test]
    fn the_snapshot_file_is_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("snap.json");
        std::fs::write(&path, "old").unwrap();
        write_file(&path, "new\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new\n");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        let e = write_file(&dir.path().join("no/such/dir/x.json"), "x").unwrap_err();
        assert!(e.contains("no/such/dir"), "{e}");
    }
}

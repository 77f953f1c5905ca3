//! Benchmark: planning generated clusters, beside Pacemaker's `crm_simulate` on the
//! equivalent CIB in the same run.
//!
//! `cargo bench --bench plan` (or `scripts/bench-plan`, which installs
//! pacemaker-cli-utils first); `cargo bench --bench plan -- small` or `-- large` runs one
//! size. Per size it prints:
//! - quorate's planner in process: median time, and the peak of heap memory allocated
//!   while planning, for a fresh cluster (nothing runs yet) and for the converged
//!   cluster (as the fresh plan leaves it) that just lost a node;
//! - the same two cases as whole processes, `quorate plan` (read and validate the specs
//!   and the snapshot, plan, print the JSON plan), with peak RSS;
//! - `crm_simulate` on the equivalent CIB (see `support/cib.rs`): `-R` (compute the
//!   transition: what `quorate plan` does) fresh, and with `--node-fail` on the CIB of
//!   the same converged placement; `-S` (compute and simulate carrying it out) with
//!   `--node-fail`, and fresh for the small size; each with peak RSS, what it planned,
//!   and its ratio to the `quorate plan` process;
//! - where the two place the fresh cluster's instances: how many each places, how many
//!   both place and how many of those on the same node (the workload has `INFINITY`
//!   colocations, from its groups, under capacity, so the order of placement shows).
//!
//! `-- double` runs 2,000 nodes x 20,000 instances, quorate only (`crm_simulate -R` takes
//! many minutes at the large size already), and prints what doubling the nodes and
//! instances from the large size cost, when both ran (`-- large double`): for the
//! processes, the two sizes' `quorate plan` run again, taking turns (15 times each; the
//! memory is the peak RSS over those runs). `-- wide` (2,000 x
//! 10,000) and `-- deep` (1,000 x 20,000), run only when named, print the same for
//! doubling the nodes alone and the instances alone (`-- large wide deep`). `-- half`
//! (500 x 5,000) and `-- quad` (4,000 x 40,000), also run only when named, give the
//! doublings either side (`-- half large double quad`). `-- huge` runs
//! 10,000 nodes x 100,000 instances, the most instances a spec set may ask for, quorate
//! only.
//!
//! `PLAN_BENCH_KEEP=DIR` keeps the generated specs, snapshot and CIBs in DIR. Each
//! measured command is stopped after `PLAN_BENCH_LIMIT_SECS` seconds (600 unless set) and
//! reported as stopped: `crm_simulate` at the large size has run for more than a quarter
//! of an hour and 6 GB.

mod support;

use std::alloc::{GlobalAlloc, Layout};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use quorate::observed::{Observed, snapshot};
use quorate::plan::apply::expected_state;
use quorate::plan::{ActionType, Options, Plan, plan};
use quorate::source::Sources;
use quorate::spec::SpecSet;
use quorate::validate::validate;
use support::cib::{cib, converged};
use support::{Shape, documents, median};

/// The allocator `quorate` ships with (mimalloc), counting the bytes in use and their
/// peak, so that planning in process allocates as the `quorate plan` process does.
struct Counting;

static INNER: quorate::alloc::Mimalloc = quorate::alloc::Mimalloc;

static IN_USE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to mimalloc unchanged; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as the caller promised for `layout`.
        let p = unsafe { INNER.alloc(layout) };
        if !p.is_null() {
            let now = IN_USE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `alloc` with `layout`.
        unsafe { INNER.dealloc(ptr, layout) };
        IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as the caller promised for `ptr`, `layout` and `new_size`.
        let p = unsafe { INNER.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                let grow = new_size - layout.size();
                let now = IN_USE.fetch_add(grow, Ordering::Relaxed) + grow;
                PEAK.fetch_max(now, Ordering::Relaxed);
            } else {
                IN_USE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f`, returning its result and the peak heap memory it added, in MiB.
fn peak_heap<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let base = IN_USE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let out = f();
    let peak = PEAK.load(Ordering::Relaxed).saturating_sub(base);
    (out, peak as f64 / (1024.0 * 1024.0))
}

fn spec_for(docs: &[String]) -> SpecSet {
    let mut sources = Sources::new();
    for (i, doc) in docs.iter().enumerate() {
        sources.add(format!("doc{i}.yaml"), doc.clone().into_bytes());
    }
    let report = validate(&sources);
    assert_eq!(
        report.errors(),
        0,
        "generated specs must be valid: {:?}",
        report.diagnostics.first()
    );
    report.into_valid_set().expect("valid")
}

fn time<F: FnMut()>(runs: usize, mut f: F) -> Duration {
    median(
        (0..runs)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed()
            })
            .collect(),
    )
}

/// One measured run of a command.
struct Run {
    time: Duration,
    peak_mib: f64,
    /// What a `crm_simulate` transition summary holds, counted by kind.
    summary: Option<String>,
    /// Its standard output.
    text: String,
}

/// Set in a copy of this bench that only runs one command and writes how it went to the
/// file named here (see [`measure`]).
const MEASURE_INTO: &str = "PLAN_BENCH_MEASURE_INTO";

/// The longest a measured command may run, in seconds (see the module's documentation).
fn limit_secs() -> u64 {
    std::env::var("PLAN_BENCH_LIMIT_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600)
}

/// Runs `cmd` with its output in a file, returning its wall time, its peak RSS and a
/// count of the transition summary in its output, or why it failed.
///
/// A new copy of this bench spawns it and waits: a child's peak RSS (`ru_maxrss`) starts
/// from its parent's at the moment it is spawned, and this process, which holds the
/// generated cluster, is larger than a `quorate plan` of it. The copy has just started.
fn measure(cmd: &mut Command) -> Result<Run, String> {
    let out = tempfile::NamedTempFile::new().map_err(|e| e.to_string())?;
    let err = tempfile::NamedTempFile::new().map_err(|e| e.to_string())?;
    let into = tempfile::NamedTempFile::new().map_err(|e| e.to_string())?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let status = Command::new(exe)
        .env(MEASURE_INTO, into.path())
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .stdin(Stdio::null())
        .stdout(out.reopen().map_err(|e| e.to_string())?)
        .stderr(err.reopen().map_err(|e| e.to_string())?)
        .status()
        .map_err(|e| format!("{:?}: {e}", cmd.get_program()))?;
    let report = std::fs::read_to_string(into.path()).unwrap_or_default();
    let numbers: Vec<i64> = report
        .split_whitespace()
        .filter_map(|n| n.parse().ok())
        .collect();
    let &[status_word, nanos, peak_kib] = numbers.as_slice() else {
        return Err(format!(
            "{:?} was not measured ({status})",
            cmd.get_program()
        ));
    };
    let status_word = i32::try_from(status_word).unwrap_or(-1);
    let elapsed = Duration::from_nanos(u64::try_from(nanos).unwrap_or(0));
    if libc::WIFSIGNALED(status_word)
        && libc::WTERMSIG(status_word) == libc::SIGKILL
        && elapsed.as_secs() >= limit_secs()
    {
        return Err(format!(
            "stopped after {} s (PLAN_BENCH_LIMIT_SECS)",
            elapsed.as_secs()
        ));
    }
    // `quorate plan` exits 2 when the plan has changes (terraform's -detailed-exitcode).
    let quorate = cmd.get_program() == std::ffi::OsStr::new(env!("CARGO_BIN_EXE_quorate"));
    let ok = libc::WIFEXITED(status_word)
        && (libc::WEXITSTATUS(status_word) == 0
            || (quorate && libc::WEXITSTATUS(status_word) == 2));
    if !ok {
        let text = std::fs::read_to_string(err.path()).unwrap_or_default();
        return Err(format!(
            "{:?} failed (wait status {status_word}): {}",
            cmd.get_program(),
            text.lines().take(5).collect::<Vec<_>>().join("\n")
        ));
    }
    let text = std::fs::read_to_string(out.path()).unwrap_or_default();
    Ok(Run {
        time: elapsed,
        peak_mib: peak_kib as f64 / 1024.0,
        summary: transition_summary(&text),
        text,
    })
}

/// The copy of [`measure`]: runs the command of its arguments with its own standard
/// streams, and writes its wait status, wall time (ns) and peak RSS (KiB) to `into`.
fn measure_here(into: &std::ffi::OsStr) -> std::process::ExitCode {
    let mut args = std::env::args_os().skip(1);
    let Some(program) = args.next() else {
        return std::process::ExitCode::FAILURE;
    };
    let t = Instant::now();
    // Without the library path `cargo bench` sets for the bench (its build directories
    // and the toolchain's): both programs run as their users run them, and the loader
    // does not look for each library in those directories first (about 150 failed opens
    // per start of `quorate`, 0.3-0.9 ms at 50 x 1,000).
    let Ok(child) = Command::new(program)
        .args(args)
        .env_remove(MEASURE_INTO)
        .env_remove("LD_LIBRARY_PATH")
        .spawn()
    else {
        return std::process::ExitCode::FAILURE;
    };
    let Ok(pid) = i32::try_from(child.id()) else {
        return std::process::ExitCode::FAILURE;
    };
    // Killed at the limit; when the child ended first, this process ends before the
    // sleep does.
    let limit = Duration::from_secs(limit_secs());
    std::thread::spawn(move || {
        std::thread::sleep(limit);
        // SAFETY: a signal to our own child: only `wait4` below reaps it, and this
        // process ends right after that.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    });
    let mut status = 0;
    // SAFETY: rusage is plain data; all zeroes is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, writing into locals we own; `child` is not
    // waited on again.
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let nanos = t.elapsed().as_nanos();
    if rc != pid {
        return std::process::ExitCode::FAILURE;
    }
    let report = format!("{status} {nanos} {}", usage.ru_maxrss);
    match std::fs::write(into, report) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(_) => std::process::ExitCode::FAILURE,
    }
}

/// The median time and the largest peak of `runs` runs of `cmd()`, with the summary of
/// the last.
fn measure_runs(runs: usize, mut cmd: impl FnMut() -> Command) -> Result<Run, String> {
    let [run] = measure_in_turns(runs, [&mut cmd])?;
    Ok(run)
}

/// `runs` runs of each of `cmds`, one of each in turn, so that all meet the machine in
/// the same state: the median time and the peak RSS of each.
fn measure_in_turns<const N: usize>(
    runs: usize,
    mut cmds: [&mut dyn FnMut() -> Command; N],
) -> Result<[Run; N], String> {
    let mut times: [Vec<Duration>; N] = std::array::from_fn(|_| Vec::new());
    let mut runs_of: [Run; N] = std::array::from_fn(|_| Run {
        time: Duration::ZERO,
        peak_mib: 0.0,
        summary: None,
        text: String::new(),
    });
    for _ in 0..runs {
        for (k, cmd) in cmds.iter_mut().enumerate() {
            let r = measure(&mut cmd())?;
            times[k].push(r.time);
            runs_of[k].peak_mib = runs_of[k].peak_mib.max(r.peak_mib);
            runs_of[k].summary = r.summary;
        }
    }
    for (run, times) in runs_of.iter_mut().zip(times) {
        run.time = median(times);
    }
    Ok(runs_of)
}

/// `3 Fence, 12 Move` from the "Transition Summary" of `crm_simulate` output, or `None`
/// when there is none (`-Q`).
fn transition_summary(text: &str) -> Option<String> {
    let (_, rest) = text.split_once("Transition Summary:")?;
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for line in rest.lines().skip(1) {
        let Some(item) = line.trim_start().strip_prefix("* ") else {
            break;
        };
        let kind = item.split_whitespace().next().unwrap_or("?");
        *counts.entry(kind).or_default() += 1;
    }
    if counts.is_empty() {
        return Some("no actions".to_owned());
    }
    Some(
        counts
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect::<Vec<_>>()
            .join(", "),
    )
}

/// Each bundle's nodes, sorted, as written `bundle -> [node, ...]`.
type Starts = BTreeMap<String, Vec<String>>;

/// Where a quorate plan starts each bundle's instances.
fn quorate_starts(p: &Plan) -> Starts {
    let mut starts = Starts::new();
    for a in &p.actions {
        if let (ActionType::Start, Some(node), Some(bundle)) = (a.kind, &a.node, &a.bundle) {
            starts
                .entry(bundle.to_string())
                .or_default()
                .push(node.to_string());
        }
    }
    starts.values_mut().for_each(|nodes| nodes.sort());
    starts
}

/// Where a `crm_simulate` transition starts each clone's instances
/// (`* Start      b7:1     ( node3 )`); the fence devices, not clones, are left out.
fn pacemaker_starts(text: &str) -> Starts {
    let mut starts = Starts::new();
    let summary = text
        .split_once("Transition Summary:")
        .map_or("", |(_, s)| s);
    for line in summary.lines() {
        let mut words = line
            .split_whitespace()
            .filter(|w| !matches!(*w, "*" | "(" | ")"));
        if let (Some("Start"), Some(instance), Some(node)) =
            (words.next(), words.next(), words.next())
            && let Some((bundle, _)) = instance.split_once(':')
        {
            let node = node.trim_matches(|c| c == '(' || c == ')');
            starts
                .entry(bundle.to_owned())
                .or_default()
                .push(node.to_owned());
        }
    }
    starts.values_mut().for_each(|nodes| nodes.sort());
    starts
}

/// How far two placements agree, bundle by bundle. Instance numbers are each side's own
/// (Pacemaker numbers a clone's instances as it assigns them), so a bundle's instances
/// count as on the same node as often as its two lists of nodes share a node.
fn agreement(quorate: &Starts, pacemaker: &Starts) -> String {
    let (mut both, mut same, mut only_q, mut only_p) = (0, 0, 0, 0);
    let none = Vec::new();
    for bundle in quorate
        .keys()
        .chain(pacemaker.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        let q = quorate.get(bundle).unwrap_or(&none);
        let p = pacemaker.get(bundle).unwrap_or(&none);
        both += q.len().min(p.len());
        only_q += q.len().saturating_sub(p.len());
        only_p += p.len().saturating_sub(q.len());
        let mut rest = p.clone();
        for node in q {
            if let Some(i) = rest.iter().position(|n| n == node) {
                rest.swap_remove(i);
                same += 1;
            }
        }
    }
    let placed = |s: &Starts| s.values().map(Vec::len).sum::<usize>();
    format!(
        "quorate places {}, Pacemaker {}; both place {both}, {same} on the same node; \
         {only_q} only quorate, {only_p} only Pacemaker",
        placed(quorate),
        placed(pacemaker)
    )
}

/// `1 fence, 9 move, 2 blocked` for a quorate plan.
fn plan_summary(p: &Plan) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for a in &p.actions {
        *counts.entry(a.kind.as_str()).or_default() += 1;
    }
    let mut parts: Vec<String> = counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
    parts.push(format!("{} blocked", p.blocked.len()));
    parts.join(", ")
}

fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1e3;
    if ms < 10.0 {
        format!("{ms:.2} ms")
    } else if ms < 100.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.0} ms")
    }
}

struct Size {
    name: &'static str,
    nodes: usize,
    instances: usize,
    runs: usize,
    process_runs: usize,
    pcmk_runs: usize,
    /// Run only when asked for by name.
    named_only: bool,
}

fn main() -> std::process::ExitCode {
    if let Some(into) = std::env::var_os(MEASURE_INTO) {
        return measure_here(&into);
    }
    let wanted: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let sizes = [
        Size {
            name: "half",
            nodes: 500,
            instances: 5_000,
            runs: 7,
            process_runs: 3,
            pcmk_runs: 0,
            named_only: true,
        },
        Size {
            name: "small",
            nodes: 50,
            instances: 1_000,
            runs: 15,
            // Its goal is within a millisecond or two of a process start: more runs.
            process_runs: 21,
            pcmk_runs: 3,
            named_only: false,
        },
        Size {
            name: "large",
            nodes: 1_000,
            instances: 10_000,
            runs: 7,
            process_runs: 3,
            pcmk_runs: 1,
            named_only: false,
        },
        Size {
            name: "wide",
            nodes: 2_000,
            instances: 10_000,
            runs: 3,
            process_runs: 3,
            pcmk_runs: 0,
            named_only: true,
        },
        Size {
            name: "deep",
            nodes: 1_000,
            instances: 20_000,
            runs: 3,
            process_runs: 3,
            pcmk_runs: 0,
            named_only: true,
        },
        Size {
            name: "double",
            nodes: 2_000,
            instances: 20_000,
            runs: 3,
            process_runs: 3,
            pcmk_runs: 0,
            named_only: false,
        },
        Size {
            name: "quad",
            nodes: 4_000,
            instances: 40_000,
            runs: 3,
            process_runs: 3,
            pcmk_runs: 0,
            named_only: true,
        },
        Size {
            name: "huge",
            nodes: 10_000,
            instances: 100_000,
            runs: 1,
            process_runs: 3,
            pcmk_runs: 0,
            named_only: false,
        },
    ];
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "{} cores, load average at start: {}",
        std::thread::available_parallelism().map_or(1, usize::from),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    let asked = |s: &Size| {
        if wanted.is_empty() {
            !s.named_only
        } else {
            wanted.iter().any(|w| w == s.name)
        }
    };
    let mut done: Vec<(&Size, Measured)> = Vec::new();
    for size in sizes.iter().filter(|s| asked(s)) {
        let now = run_size(size);
        // Against the first size run with half the nodes, the instances or both.
        let half = done.iter().find_map(|(before, then)| {
            let what = doubled(before, size)?;
            Some((what, then))
        });
        if let Some((what, then)) = half {
            now.doubling_from(then, what);
        }
        done.push((size, now));
    }
    std::process::ExitCode::SUCCESS
}

/// What `size` doubles of `before`: its nodes, its instances or both, each of the other
/// the same.
fn doubled(before: &Size, size: &Size) -> Option<&'static str> {
    let twice = |a: usize, b: usize| b == 2 * a;
    let nodes = twice(before.nodes, size.nodes);
    let instances = twice(before.instances, size.instances);
    match (nodes, instances) {
        (true, true) => Some("nodes and instances"),
        (true, false) if before.instances == size.instances => Some("nodes"),
        (false, true) if before.nodes == size.nodes => Some("instances"),
        _ => None,
    }
}

/// What one size measured: (fresh, lost) each, with the inputs of its `quorate plan`
/// processes, kept to measure the doubling.
struct Measured {
    in_process: (Duration, Duration),
    heap_mib: (f64, f64),
    inputs: Inputs,
}

/// The spec files and the snapshot of a node lost, in a temporary directory.
struct Inputs {
    dir: tempfile::TempDir,
    specs: std::path::PathBuf,
    snapshot: std::path::PathBuf,
}

impl Inputs {
    /// `quorate plan` of these specs, fresh or (`lost`) against the snapshot.
    fn plan(&self, lost: bool) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_quorate"));
        c.arg("plan").arg("--specs").arg(&self.specs);
        c.args(["--format", "json"]);
        if lost {
            c.arg("--observed").arg(&self.snapshot);
        }
        c
    }
}

/// How many times each size's `quorate plan` runs, taking turns, for the doubling. With
/// 7, two runs of the bench on one build gave 2.14x and 2.28x with a node lost.
const DOUBLING_RUNS: usize = 15;

impl Measured {
    /// Prints what this size cost against `half`, a size with half its `what` (nodes,
    /// instances or both) and the same of the other. The processes of the two sizes run
    /// again in turn, so that both meet the machine in the same state (its other tenants,
    /// its clock); apart, a few runs each, the ratio moves by a tenth from one batch to
    /// the next. The memory is the peak RSS of each over those runs.
    fn doubling_from(&self, half: &Measured, what: &str) {
        let t = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
        let mut times: [Vec<Duration>; 4] = Default::default();
        let mut peaks = [0.0f64; 4];
        for _ in 0..DOUBLING_RUNS {
            for (k, lost) in [false, true].into_iter().enumerate() {
                for (j, inputs) in [&half.inputs, &self.inputs].into_iter().enumerate() {
                    match measure(&mut inputs.plan(lost)) {
                        Ok(r) => {
                            times[2 * k + j].push(r.time);
                            peaks[2 * k + j] = peaks[2 * k + j].max(r.peak_mib);
                        }
                        Err(e) => panic!("quorate plan failed: {e}"),
                    }
                }
            }
        }
        let spread = [spread(&times[0], &times[1]), spread(&times[2], &times[3])];
        let [half_fresh, fresh, half_lost, lost] = times.map(median);
        let [half_fresh_rss, fresh_rss, half_lost_rss, lost_rss] = peaks;
        println!(
            "  twice the {what}: plan() {:.2}x / {:.2}x, heap {:.2}x / {:.2}x; process {:.2}x / {:.2}x ({} runs each, in turn; the middle half of the turns' own ratios {} / {}), RSS {:.2}x / {:.2}x (fresh / lost)",
            t(self.in_process.0, half.in_process.0),
            t(self.in_process.1, half.in_process.1),
            self.heap_mib.0 / half.heap_mib.0,
            self.heap_mib.1 / half.heap_mib.1,
            t(fresh, half_fresh),
            t(lost, half_lost),
            DOUBLING_RUNS,
            spread[0],
            spread[1],
            fresh_rss / half_fresh_rss,
            lost_rss / half_lost_rss,
        );
    }
}

/// The middle half (first to third quartile) of the ratios of `larger` to `smaller`
/// run by run, each pair taken in the same turn: how far the machine moves the ratio of
/// medians printed beside it.
fn spread(smaller: &[Duration], larger: &[Duration]) -> String {
    let mut ratios: Vec<f64> = smaller
        .iter()
        .zip(larger)
        .map(|(s, l)| l.as_secs_f64() / s.as_secs_f64())
        .collect();
    ratios.sort_by(f64::total_cmp);
    let at = |q: usize| ratios.get(q * ratios.len().saturating_sub(1) / 4).copied();
    match (at(1), at(3)) {
        (Some(low), Some(high)) => format!("{low:.2}-{high:.2}x"),
        _ => "-".to_string(),
    }
}

fn run_size(size: &Size) -> Measured {
    let shape = Shape {
        nodes: size.nodes,
        bundles: size.instances / 2,
        replicas: 2,
    };
    let docs = documents(&shape, 10);
    let spec = spec_for(&docs);
    let fresh = Observed::fresh(&spec);
    let options = Options::default();

    // In process.
    let (first, heap_fresh) = peak_heap(|| plan(&spec, &fresh, &options));
    let t_fresh = time(size.runs, || {
        std::hint::black_box(plan(&spec, &fresh, &options));
    });
    let settled = expected_state(&spec, &fresh, &first);
    let victim = spec.cluster.nodes[0].name.clone();
    let mut lost = settled.clone();
    lost.fail_node(&victim);
    let (failover, heap_lost) = peak_heap(|| plan(&spec, &lost, &options));
    let t_lost = time(size.runs, || {
        std::hint::black_box(plan(&spec, &lost, &options));
    });
    println!(
        "\n{} nodes x {} instances ({} bundles, {} constraints, {} fence devices)",
        size.nodes,
        size.instances,
        spec.bundles.len(),
        spec.constraints.len(),
        spec.fences.len()
    );
    println!(
        "  quorate plan() in process, fresh: {} ({heap_fresh:.1} MiB heap peak; {})",
        ms(t_fresh),
        plan_summary(&first)
    );
    println!(
        "  quorate plan() in process, {victim} lost: {} ({heap_lost:.1} MiB heap peak; {})",
        ms(t_lost),
        plan_summary(&failover)
    );

    // Whole processes, from files.
    let dir = tempfile::tempdir().expect("tempdir");
    let specs = dir.path().join("specs");
    std::fs::create_dir(&specs).expect("mkdir");
    for (i, chunk) in docs.chunks(10).enumerate() {
        std::fs::write(specs.join(format!("f{i:05}.yaml")), chunk.join("---\n")).expect("write");
    }
    let snap = dir.path().join("observed.json");
    std::fs::write(&snap, snapshot::to_json(&lost)).expect("write snapshot");
    let inputs = Inputs {
        dir,
        specs,
        snapshot: snap,
    };
    let (mut fresh, mut lost) = (|| inputs.plan(false), || inputs.plan(true));
    let [q_fresh, q_lost] = match measure_in_turns(size.process_runs, [&mut fresh, &mut lost]) {
        Ok(runs) => runs,
        Err(e) => panic!("quorate plan failed: {e}"),
    };
    println!(
        "  quorate plan process, fresh: {} ({:.0} MiB peak RSS)",
        ms(q_fresh.time),
        q_fresh.peak_mib
    );
    println!(
        "  quorate plan process, {victim} lost: {} ({:.0} MiB peak RSS)",
        ms(q_lost.time),
        q_lost.peak_mib
    );
    let measured = Measured {
        in_process: (t_fresh, t_lost),
        heap_mib: (heap_fresh, heap_lost),
        inputs,
    };

    // Pacemaker on the equivalent CIB: fresh, and converged on quorate's placement.
    let Inputs {
        dir,
        specs,
        snapshot: snap,
    } = &measured.inputs;
    let fresh_cib = dir.path().join("fresh.xml");
    let converged_cib = dir.path().join("converged.xml");
    std::fs::write(&fresh_cib, cib(&spec)).expect("write cib");
    std::fs::write(&converged_cib, converged(&spec, &settled)).expect("write cib");
    if let Some(keep) = std::env::var_os("PLAN_BENCH_KEEP") {
        // Keep the inputs for a look (`crm_verify -x DIR/small.xml -V`).
        let keep = Path::new(&keep);
        let _ = std::fs::create_dir_all(keep);
        let _ = std::fs::copy(&fresh_cib, keep.join(format!("{}.xml", size.name)));
        let _ = std::fs::copy(
            &converged_cib,
            keep.join(format!("{}-converged.xml", size.name)),
        );
        let _ = std::fs::copy(snap, keep.join(format!("{}-observed.json", size.name)));
        let kept_specs = keep.join(format!("{}-specs", size.name));
        let _ = std::fs::create_dir_all(&kept_specs);
        for entry in std::fs::read_dir(specs).into_iter().flatten().flatten() {
            let _ = std::fs::copy(entry.path(), kept_specs.join(entry.file_name()));
        }
    }
    if Command::new("crm_simulate")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_err()
    {
        println!(
            "  crm_simulate: not installed (apt-get install pacemaker-cli-utils, or scripts/bench-plan)"
        );
        return measured;
    }
    if size.pcmk_runs == 0 {
        println!("  crm_simulate: not run at this size (-R takes many minutes at the large size)");
        return measured;
    }
    let crm = |cib: &Path, op: &str, fail: bool| {
        let mut c = Command::new("crm_simulate");
        c.arg("-x").arg(cib).arg(op);
        if op == "-S" {
            c.arg("-Q");
        }
        if fail {
            c.arg("--node-fail").arg(victim.as_str());
        }
        c
    };
    let report = |what: &str, r: Result<Run, String>, quorate: Duration| match r {
        Ok(r) => println!(
            "  crm_simulate {what}: {} ({:.0} MiB peak RSS{}); {:.1}x the quorate plan process",
            ms(r.time),
            r.peak_mib,
            r.summary.map_or(String::new(), |s| format!(", {s}")),
            r.time.as_secs_f64() / quorate.as_secs_f64()
        ),
        Err(e) => println!("  crm_simulate {what}: {e}"),
    };
    // Where each places the fresh cluster's instances. (Untimed.)
    match measure(&mut crm(&fresh_cib, "-R", false)) {
        Ok(r) => println!(
            "  placement, fresh: {}",
            agreement(&quorate_starts(&first), &pacemaker_starts(&r.text))
        ),
        Err(e) => println!("  placement, fresh: crm_simulate -R: {e}"),
    }
    // Does Pacemaker accept quorate's placement as it is? (Untimed.)
    match measure(&mut crm(&converged_cib, "-R", false)) {
        Ok(r) => println!(
            "  crm_simulate -R on the converged CIB, no failure: {}",
            r.summary.unwrap_or_default()
        ),
        Err(e) => println!("  crm_simulate -R on the converged CIB, no failure: {e}"),
    }
    report(
        "-R fresh        ",
        measure_runs(size.pcmk_runs, || crm(&fresh_cib, "-R", false)),
        q_fresh.time,
    );
    report(
        &format!("-R {victim} fails"),
        measure_runs(size.pcmk_runs, || crm(&converged_cib, "-R", true)),
        q_lost.time,
    );
    report(
        &format!("-S {victim} fails"),
        measure_runs(size.pcmk_runs, || crm(&converged_cib, "-S", true)),
        q_lost.time,
    );
    if size.nodes <= 50 || std::env::var_os("PLAN_BENCH_SLOW").is_some() {
        report(
            "-S fresh        ",
            measure_runs(1, || crm(&fresh_cib, "-S", false)),
            q_fresh.time,
        );
    } else {
        println!(
            "  crm_simulate -S fresh: skipped (it simulates every action on the CIB, hours at this size; PLAN_BENCH_SLOW=1 runs it)"
        );
    }
    measured
}

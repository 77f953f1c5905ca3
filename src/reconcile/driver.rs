//! When passes happen: a new commit, a node that stops or starts answering, a monitor
//! failure, an operator's request, the recheck interval, or the follow-up a pass asks
//! for. Triggers that arrive together are merged into one pass (debounce).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};

use super::store::{PassOutcome, PassRecord, StepKind, StepOutcome};
use super::{Desired, Reconciler};
use crate::observed::Observed;

/// Something that asks for a pass.
pub enum Trigger {
    /// A new validated spec to put in force.
    Adopt(Desired),
    /// A pass for a reason (an operator request, a webhook, a test).
    Pass(String),
}

/// What the rest of the process (the HTTP server, metrics) may read about the loop.
#[derive(Debug, Clone, Default)]
pub struct Status {
    /// The commit in force.
    pub commit: String,
    /// When it was adopted (Unix ms).
    pub adopted_unix_ms: i64,
    /// The last pass that planned.
    pub last_pass: Option<PassRecord>,
    /// The state it observed (shared with the reconciler).
    pub observed: Option<Arc<Observed>>,
    /// Passes run since start.
    pub passes: u64,
    /// Steps by kind and result, since start.
    pub steps: BTreeMap<(StepKind, StepOutcome), u64>,
    /// Passes that did nothing because the state store failed, since start.
    pub store_failures: u64,
    /// The commits refused by validation that the store keeps, newest first (kept by
    /// `quorate run`).
    pub rejected: Vec<crate::status::RejectedView>,
    /// Why the followed branch cannot be read now (set and cleared by `quorate run`).
    pub source_problem: Option<String>,
    /// HA mode: this replica's role and the others' (set by `quorate run --etcd`).
    pub ha: Option<crate::ha::HaView>,
    /// The Prometheus metrics (`GET /metrics`), shared by every clone.
    pub metrics: crate::metrics::Metrics,
    /// Where events go (`quorate run --notify`; by default nowhere).
    pub notifier: crate::notify::Notifier,
    /// What the last pass showed, to find what changed since.
    pub detector: crate::notify::Detector,
}

/// Shared, readable status.
pub type SharedStatus = Arc<RwLock<Status>>;

const DEBOUNCE: Duration = Duration::from_millis(100);
const MONITOR_TICK: Duration = Duration::from_millis(500);

/// Runs `r` until `triggers` closes.
pub async fn run(mut r: Reconciler, mut triggers: mpsc::Receiver<Trigger>, status: SharedStatus) {
    let probe_every = r
        .desired()
        .spec
        .cluster
        .membership
        .probe_interval
        .get()
        .max(Duration::from_millis(100));
    let mut probe_at = Instant::now();
    let mut monitor_at = Instant::now() + MONITOR_TICK;
    let mut pass_at = Some(Instant::now());
    // The recheck interval counts from the end of the last pass, not from the last wake-up
    // (probes and monitor ticks wake the loop far more often than it).
    let mut last_pass = Instant::now();
    let mut reason = String::from("start");
    publish_commit(&r, &status);
    loop {
        let recheck = r
            .desired()
            .spec
            .cluster
            .defaults
            .recheck_interval
            .get()
            .max(Duration::from_secs(1));
        let next_pass = pass_at.unwrap_or(last_pass + recheck);
        tokio::select! {
            // In a fixed order, so a simulation with the same seed runs the same way. A
            // due pass goes before probes: a probe of a silent node takes its whole
            // timeout, and back-to-back probes must not starve the pass.
            biased;
            t = triggers.recv() => match t {
                None => break,
                Some(Trigger::Adopt(d)) => {
                    match r.adopt(d).await {
                        Ok(()) => publish_commit(&r, &status),
                        Err(e) => tracing::error!(error = %e, "cannot adopt the new spec; the old one stays in force"),
                    }
                    soon(&mut pass_at, &mut reason, "new commit");
                }
                Some(Trigger::Pass(why)) => soon(&mut pass_at, &mut reason, &why),
            },
            _ = sleep_until(next_pass) => {
                let why = if pass_at.is_some() { std::mem::take(&mut reason) } else { "recheck".to_owned() };
                let began = Instant::now();
                let report = r.pass(&why).await;
                let took = began.elapsed().as_secs_f64();
                last_pass = Instant::now();
                pass_at = report.again_at;
                if pass_at.is_some() {
                    reason = "follow-up".into();
                }
                publish_pass(&r, &status, report.record, took);
                return_freed_memory();
            }
            _ = sleep_until(probe_at) => {
                if r.probe().await {
                    soon(&mut pass_at, &mut reason, "membership changed");
                }
                // At a fixed rate: a probe that waited for its timeout does not push
                // the next one back (missed ticks are skipped, not bunched).
                probe_at = (probe_at + probe_every).max(Instant::now());
            }
            _ = sleep_until(monitor_at) => {
                if r.monitor().await {
                    soon(&mut pass_at, &mut reason, "monitor");
                }
                monitor_at = Instant::now() + MONITOR_TICK;
            }
        }
    }
}

/// Gives the memory a pass freed back to the system. quorate's own allocations go to
/// mimalloc, which returns freed pages itself; the C libraries (libgit2, SQLite) allocate
/// from glibc, which keeps freed pages in each thread's arena for reuse, held for the life
/// of the process.
fn return_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` takes no pointers and is safe to call from any thread at any
    // time; it only hands whole free pages back to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Schedules a pass after the debounce delay (keeping an earlier one).
fn soon(pass_at: &mut Option<Instant>, reason: &mut String, why: &str) {
    let at = Instant::now() + DEBOUNCE;
    if pass_at.is_none_or(|p| p > at) {
        *pass_at = Some(at);
    }
    if reason.is_empty() || reason == "follow-up" {
        *reason = why.to_owned();
    } else if !reason.contains(why) {
        reason.push_str(", ");
        reason.push_str(why);
    }
}

fn publish_commit(r: &Reconciler, status: &SharedStatus) {
    if let Ok(mut s) = status.write() {
        s.commit = r.desired().commit.clone();
        s.adopted_unix_ms = r.env.clock().now_unix_ms();
        s.metrics.adopted(s.adopted_unix_ms);
    }
}

fn publish_pass(r: &Reconciler, status: &SharedStatus, mut record: PassRecord, seconds: f64) {
    // The status keeps what was observed once, typed (`observed`); the pass's JSON copy of
    // it is in the store. At 10,000 instances it is megabytes.
    record.observed = serde_json::Value::Null;
    if let Ok(mut s) = status.write() {
        s.metrics.pass(&record, seconds, r.last_observed());
        let events = s.detector.pass(&record, r.last_observed());
        s.notifier.send(events);
        s.passes += 1;
        for step in &record.results {
            *s.steps.entry((step.kind, step.result)).or_default() += 1;
        }
        s.observed = r.shared_observed();
        match record.outcome {
            PassOutcome::Waiting => {}
            PassOutcome::StoreFailed => s.store_failures += 1,
            _ => s.last_pass = Some(record),
        }
    }
}

//! The reconciler: observe, plan, check quorum, carry out, record; again and again.
//!
//! A [`Reconciler`] owns one cluster's runtime drivers, membership and monitors. Each
//! [`Reconciler::pass`] is level-triggered: it starts from what it observes now, so a
//! crash or an aborted transition is repaired by the next pass. [`driver::run`] decides
//! when passes happen (new commit, membership or monitor change, recheck interval,
//! operator request, all debounced).
//!
//! Safety lives in the planner (what to do) and in [`execute`] (doing it): see their
//! module docs for which invariant each step keeps.

pub(crate) mod driver;
pub(crate) mod env;
pub(crate) mod execute;
pub(crate) mod gate;
pub(crate) mod membership;
pub(crate) mod monitor;
pub(crate) mod observe;
pub mod real;
pub mod store;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;
use tracing::Instrument;

use env::Environment;
use execute::Executor;
pub use execute::{StepEvent, StepEvents};
use gate::QuorumGate;
use membership::Membership;
use monitor::Monitors;
use observe::Observation;
use store::{PassOutcome, PassRecord, Store};

use crate::fence::FenceLogError;

use crate::observed::{NodeState, Observed};
use crate::plan::{self, Plan};
use crate::runtime::Runtime;
use crate::spec::{Name, SpecSet};

/// The spec in force and the commit it came from.
#[derive(Clone)]
pub struct Desired {
    /// A validated spec set (invariant 6: nothing else is ever adopted).
    pub spec: Arc<SpecSet>,
    /// Its commit (or a label such as `apply:<dir>`).
    pub commit: String,
}

/// Default of `quorate run --node-concurrency`.
pub const DEFAULT_NODE_CONCURRENCY: u32 = 64;

/// Tuning that is not part of the spec.
#[derive(Debug, Clone)]
pub struct Options {
    /// Most nodes probed or listed at once, and most steps run at once (at most
    /// [`execute::STEPS_PER_NODE`] on one node).
    pub node_concurrency: usize,
    /// Bound on listing one node.
    pub list_timeout: Duration,
    /// Planner options (the simulation's unsafe switch lives there).
    pub plan: plan::Options,
    /// Simulation only: compare fence evidence with what this process saw itself, not
    /// with the durable last-seen time (the rule before the fix for a restart during a
    /// node's loss), to prove the simulation catches it.
    #[cfg(feature = "sim")]
    pub unsafe_forget_last_seen: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            node_concurrency: DEFAULT_NODE_CONCURRENCY as usize,
            list_timeout: Duration::from_secs(3),
            plan: plan::Options::default(),
            #[cfg(feature = "sim")]
            unsafe_forget_last_seen: false,
        }
    }
}

/// A node's runtime driver could not be set up (bad endpoint or connection settings).
#[derive(Debug, thiserror::Error)]
#[error("node {node}: {source}")]
pub struct ConnectError {
    /// The node.
    pub node: Name,
    /// Why.
    pub source: crate::runtime::RuntimeError,
}

/// What a pass did, and when the next one is needed.
pub struct PassReport {
    /// The journal record.
    pub record: PassRecord,
    /// The plan it made (none when it waited for membership).
    pub plan: Option<Plan>,
    /// Run another pass at this time at the latest.
    pub again_at: Option<Instant>,
}

/// One cluster's reconciler.
pub struct Reconciler {
    env: Arc<dyn Environment>,
    store: Arc<dyn Store>,
    desired: Desired,
    options: Options,
    membership: Arc<Mutex<Membership>>,
    runtimes: BTreeMap<Name, Arc<dyn Runtime>>,
    failing: BTreeMap<Name, BTreeSet<String>>,
    conflicts: Arc<Mutex<BTreeMap<Name, BTreeSet<String>>>>,
    monitors: Monitors,
    observer: observe::Observer,
    /// Shared with the status, which shows it.
    last_observed: Option<Arc<Observed>>,
    aborts: u32,
    /// Whether a pass planned from the spec in force, as recorded in the store.
    planned: bool,
    /// Where steps are reported as they start and end.
    progress: Option<StepEvents>,
}

impl Reconciler {
    /// A reconciler for `desired`, talking through `env`, keeping state in `store`.
    pub fn new(
        env: Arc<dyn Environment>,
        store: Arc<dyn Store>,
        desired: Desired,
        options: Options,
    ) -> Result<Reconciler, ConnectError> {
        let now_ms = env.clock().now_unix_ms();
        let membership = Membership::new(
            &desired.spec,
            Instant::now(),
            u64::try_from(now_ms / 1000).unwrap_or(0),
        );
        let observer = observe::Observer::new(&options);
        let mut r = Reconciler {
            env,
            store,
            desired: desired.clone(),
            options,
            membership: Arc::new(Mutex::new(membership)),
            runtimes: BTreeMap::new(),
            failing: BTreeMap::new(),
            conflicts: Arc::new(Mutex::new(BTreeMap::new())),
            monitors: Monitors::default(),
            observer,
            last_observed: None,
            aborts: 0,
            planned: false,
            progress: None,
        };
        r.connect(&desired.spec)?;
        Ok(r)
    }

    fn connect(&mut self, spec: &SpecSet) -> Result<(), ConnectError> {
        let mut runtimes = BTreeMap::new();
        for node in &spec.cluster.nodes {
            let rt = self.env.runtime(node).map_err(|source| ConnectError {
                node: node.name.clone(),
                source,
            })?;
            runtimes.insert(node.name.clone(), rt);
        }
        self.runtimes = runtimes;
        Ok(())
    }

    /// Reports every step of later passes to `events` as it starts and ends.
    pub fn report_steps_to(&mut self, events: StepEvents) {
        self.progress = Some(events);
    }

    /// Adopts a new validated spec; the next pass plans against it.
    pub async fn adopt(&mut self, desired: Desired) -> Result<(), ConnectError> {
        self.connect(&desired.spec)?;
        let now_ms = self.env.clock().now_unix_ms();
        self.membership.lock().await.respec(
            &desired.spec,
            Instant::now(),
            u64::try_from(now_ms / 1000).unwrap_or(0),
        );
        self.desired = desired;
        self.planned = false;
        Ok(())
    }

    /// The spec in force.
    pub fn desired(&self) -> &Desired {
        &self.desired
    }

    /// The state observed by the last pass.
    pub fn last_observed(&self) -> Option<&Observed> {
        self.last_observed.as_deref()
    }

    /// The state observed by the last pass, to keep.
    pub fn shared_observed(&self) -> Option<Arc<Observed>> {
        self.last_observed.clone()
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Pings every node; returns whether any node's liveness changed.
    pub async fn probe(&mut self) -> bool {
        let timeout = self
            .desired
            .spec
            .cluster
            .membership
            .probe_interval
            .get()
            .max(Duration::from_millis(200));
        let pings = gate::pings(&self.runtimes, timeout);
        let answers = bounded(pings, self.options.node_concurrency).await;
        let now = Instant::now();
        let wall = self.env.clock().now_unix_ms();
        let mut m = self.membership.lock().await;
        let mut changed = false;
        for (name, ok) in answers {
            changed |= m.probe(name.as_str(), ok, now, wall);
        }
        changed
    }

    /// Runs due monitors; returns whether a failure (or a recovery) was seen.
    pub async fn monitor(&mut self) -> bool {
        let Some(observed) = &self.last_observed else {
            return false;
        };
        let results = self
            .monitors
            .run_due(
                &self.desired.spec,
                observed,
                &self.runtimes,
                self.store.as_ref(),
                self.options.node_concurrency,
            )
            .await;
        let mut changed = false;
        for (node, r) in results {
            let failing = self.failing.entry(node).or_default();
            for (instance, bad) in r {
                changed |= if bad {
                    failing.insert(instance)
                } else {
                    failing.remove(&instance)
                };
            }
        }
        changed
    }

    /// Observes and plans without acting: `Err(Some(at))` while a node is suspect (not
    /// answering, not yet lost), with when to ask again; `Err(None)` when the store could
    /// not be read or written.
    pub async fn preview(&mut self) -> Result<Plan, Option<Instant>> {
        let now = self.env.clock().now_unix_ms();
        let observation = self.observe(now).await.map_err(|_| None)?;
        if observation.suspect.is_empty() {
            Ok(plan::plan(
                &self.desired.spec,
                &observation.observed,
                &self.options.plan,
            ))
        } else {
            Err(self.lost_at(&observation.suspect).await)
        }
    }

    async fn observe(&mut self, now_unix_ms: i64) -> Result<Observation, FenceLogError> {
        let conflicts = self.conflicts.lock().await.clone();
        let mut m = self.membership.lock().await;
        let inputs = observe::Inputs {
            spec: &self.desired.spec,
            runtimes: &self.runtimes,
            failing: &self.failing,
            conflicts: &conflicts,
            timeout: self.options.list_timeout,
            concurrency: self.options.node_concurrency,
        };
        let mut observation = self
            .observer
            .observe(&inputs, &mut m, self.store.as_ref(), now_unix_ms)
            .await?;
        drop(m);
        // Roles are asked only when the pass may plan: with a node suspect nothing is
        // planned, and asking it would wait out the command's timeout.
        if observation.suspect.is_empty() {
            let spec = &self.desired.spec;
            crate::runtime::roles::ask(spec, &mut observation.observed, &self.runtimes).await;
        }
        Ok(observation)
    }

    /// When the first of `suspect` becomes lost if it stays silent.
    async fn lost_at(&self, suspect: &[Name]) -> Option<Instant> {
        let m = self.membership.lock().await;
        suspect.iter().filter_map(|n| m.lost_at(n.as_str())).min()
    }

    /// One level-triggered pass: observe, plan, carry out, record.
    pub async fn pass(&mut self, trigger: &str) -> PassReport {
        let span = tracing::info_span!("pass", commit = %short(&self.desired.commit), trigger);
        self.pass_inner(trigger).instrument(span).await
    }

    async fn pass_inner(&mut self, trigger: &str) -> PassReport {
        let started = self.env.clock().now_unix_ms();
        let mut record = PassRecord {
            id: 0,
            started_unix_ms: started,
            finished_unix_ms: started,
            commit: self.desired.commit.clone(),
            trigger: trigger.to_owned(),
            outcome: PassOutcome::Waiting,
            detail: String::new(),
            observed: serde_json::Value::Null,
            plan: serde_json::Value::Null,
            results: Vec::new(),
        };
        let observation = match self.observe(started).await {
            Ok(o) => o,
            Err(e) => return self.store_failed(record, &e),
        };
        record.observed = serde_json::to_value(&observation.observed).unwrap_or_default();
        self.forget_stale_monitors(&observation.observed);
        let observed = Arc::new(observation.observed);
        self.last_observed = Some(observed.clone());
        if !observation.suspect.is_empty() {
            // Membership first: decide nothing while a node may just be slow.
            record.detail = format!("{} not answering", join(&observation.suspect));
            tracing::info!(outcome = %record.outcome, detail = %record.detail, "pass");
            let at = self.lost_at(&observation.suspect).await;
            return PassReport {
                record,
                plan: None,
                again_at: at.or(Some(Instant::now() + Duration::from_millis(500))),
            };
        }
        let spec = self.desired.spec.clone();
        let plan = plan::plan(&spec, &observed, &self.options.plan);
        self.record_planned().await;
        record.plan = plan_summary(&plan);
        let again_at = if plan.steps.is_empty() {
            (record.outcome, record.detail) = if plan.blocked.is_empty() {
                (PassOutcome::Converged, String::new())
            } else {
                (
                    PassOutcome::Blocked,
                    format!("{} blocked", plan.blocked_instances()),
                )
            };
            self.aborts = 0;
            None
        } else {
            self.carry_out(&plan, &mut record).await
        };
        record.finished_unix_ms = self.env.clock().now_unix_ms();
        match self.store.record_pass(&record).await {
            Ok(id) => record.id = id,
            Err(e) => tracing::warn!(error = %e, "could not record the pass"),
        }
        tracing::info!(outcome = %record.outcome, detail = %record.detail, "pass");
        PassReport {
            record,
            plan: Some(plan),
            again_at,
        }
    }

    /// Invariant 10: the first plan from a commit completes its adoption. Recorded before
    /// the plan is carried out, so only a stop while planning counts against the commit
    /// at the next start of `quorate run` (a stop while carrying out is repaired by the
    /// next pass); if it cannot be recorded, the next pass tries again.
    async fn record_planned(&mut self) {
        if self.planned {
            return;
        }
        let now = self.env.clock().now_unix_ms();
        match self.store.record_planned(&self.desired.commit, now).await {
            Ok(()) => self.planned = true,
            Err(e) => {
                tracing::warn!(error = %e, "could not record that the commit in force was planned")
            }
        }
    }

    /// A pass that could not read or write the store acts on nothing (invariant 1 rests on
    /// those records) and tries again after the backoff.
    fn store_failed(&mut self, mut record: PassRecord, e: &FenceLogError) -> PassReport {
        tracing::error!(error = %e, "the state store failed; this pass does nothing");
        record.outcome = PassOutcome::StoreFailed;
        record.detail = e.to_string();
        self.aborts = self.aborts.saturating_add(1);
        PassReport {
            record,
            plan: None,
            again_at: Some(Instant::now() + backoff(self.aborts)),
        }
    }

    /// Carries out `plan`; returns when the next pass is due.
    async fn carry_out(&mut self, plan: &Plan, record: &mut PassRecord) -> Option<Instant> {
        tracing::info!(changes = plan.changes, summary = %plan::render::summary(plan), "carrying out the plan");
        let spec = self.desired.spec.clone();
        let probe = spec.cluster.membership.probe_interval.get();
        let gate = QuorumGate::new(
            spec.clone(),
            self.runtimes.clone(),
            self.membership.clone(),
            clock_arc(&self.env),
            (probe, probe.max(Duration::from_millis(200))),
            self.options.node_concurrency,
        );
        let executor = Executor {
            env: self.env.clone(),
            store: self.store.clone(),
            spec,
            commit: self.desired.commit.clone(),
            runtimes: self.runtimes.clone(),
            gate: Arc::new(gate),
            parallelism: self.options.node_concurrency,
            conflicts: self.conflicts.clone(),
            progress: self.progress.clone(),
        };
        let outcome = executor.run(plan).await;
        record.results = outcome.results;
        if outcome.aborted {
            self.aborts = self.aborts.saturating_add(1);
            record.outcome = PassOutcome::Aborted;
            Some(Instant::now() + backoff(self.aborts))
        } else {
            self.aborts = 0;
            record.outcome = PassOutcome::Acted;
            Some(Instant::now())
        }
    }

    fn forget_stale_monitors(&mut self, observed: &Observed) {
        let running: BTreeSet<(Name, String)> = observed
            .nodes
            .iter()
            .filter(|(_, n)| n.state == NodeState::Online)
            .flat_map(|(node, n)| n.instances.iter().map(move |i| (node.clone(), i.name())))
            .collect();
        self.monitors.retain(&running);
        for (node, set) in &mut self.failing {
            set.retain(|i| running.contains(&(node.clone(), i.clone())));
        }
    }
}

/// The wait after the `failures`-th pass in a row that failed: 0.5 s, 1 s, 2 s ... 30 s.
fn backoff(failures: u32) -> Duration {
    crate::backoff::after(
        failures,
        Duration::from_millis(500),
        Duration::from_secs(30),
    )
}

fn clock_arc(env: &Arc<dyn Environment>) -> Arc<dyn crate::fence::Clock> {
    Arc::new(EnvClock(env.clone()))
}

struct EnvClock(Arc<dyn Environment>);

impl crate::fence::Clock for EnvClock {
    fn now_unix_ms(&self) -> i64 {
        self.0.clock().now_unix_ms()
    }
}

fn plan_summary(plan: &Plan) -> serde_json::Value {
    serde_json::json!({
        "quorum": plan.quorum,
        "actions": plan.actions,
        "blocked": plan.blocked,
        "changes": plan.changes,
    })
}

fn join(names: &[Name]) -> String {
    names
        .iter()
        .map(Name::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The first 12 characters of a commit id.
pub fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}

/// Runs `calls` (one per node), at most `concurrency` at a time; the answers in the
/// calls' order. Each call starts its own timeout when it gets its turn.
pub(crate) async fn bounded<T, F: Future<Output = T>>(calls: Vec<F>, concurrency: usize) -> Vec<T> {
    use futures_util::StreamExt;
    futures_util::stream::iter(calls)
        .buffered(concurrency.max(1))
        .collect()
        .await
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::bounded;

    #[tokio::test]
    async fn bounded_calls_run_at_most_n_at_once_and_answer_in_order() {
        let (now, peak) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let calls: Vec<_> = (0..20u64)
            .map(|i| {
                let (now, peak) = (&now, &peak);
                async move {
                    let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(n, Ordering::SeqCst);
                    // Later calls finish first, so an unordered collection would show.
                    tokio::time::sleep(std::time::Duration::from_millis(20 - i)).await;
                    now.fetch_sub(1, Ordering::SeqCst);
                    i
                }
            })
            .collect();
        let answers = bounded(calls, 3).await;
        assert_eq!(answers, (0..20).collect::<Vec<_>>());
        assert_eq!(peak.load(Ordering::SeqCst), 3);
    }
}

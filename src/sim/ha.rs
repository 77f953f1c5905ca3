//! HA in the simulation (invariant 9): two reconcilers, each the real loop, one shared
//! store whose writes are fenced by the leader's token, and a lease granted, renewed and
//! expiring in virtual time, as etcd does. A replica runs its loop only while
//! [`Lease::check`] lets it act, as `quorate run --etcd` does.
//!
//! Two scripted faults put the old leader's step where the rule must stop it:
//! - [`Scenario::PauseBeforeStep`]: the leader is paused (a GC or VM pause) right before
//!   it starts `db-0`, past its lease. The other replica takes over, fences the node the
//!   old leader meant (the store says `db-0` may be there), starts `db-0` elsewhere, and
//!   the node is powered on again. Then the old leader wakes and goes on with its start.
//! - [`Scenario::DelayInFlight`]: the leader's start of `db-0` passes the lease check and
//!   then takes most of the step timeout to arrive, while the leader stops renewing; the
//!   node is cut meanwhile and comes back just before the start lands.
//!
//! With the rule in force nothing runs twice; [`HaBite`] switches off one part of it to
//! show the simulation catches the double start.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::drivers::SimEnvironment;
use super::lock;
use super::run::{Outcome, spec_set};
use super::world::World;
use crate::fence::log::{FenceAttempt, FenceOutcome, HistoryEntry, ManualConfirmation};
use crate::fence::{Clock, FenceAgent, FenceError, FenceLog, FenceLogError};
use crate::ha::env::LeasedEnvironment;
use crate::ha::lease::{Lease, Timing};
use crate::observed::{Failures, ObservedInstance};
use crate::reconcile::driver::{self, SharedStatus, Trigger};
use crate::reconcile::env::Environment;
use crate::reconcile::store::{MemoryStore, PassRecord, Remembered, Store};
use crate::reconcile::{Desired, Options, Reconciler};
use crate::runtime::from_spec::InstanceError;
use crate::runtime::{
    ContainerState, Endpoint, ExecOutcome, InstanceSpec, NetworkSpec, Runtime, RuntimeError,
    RuntimeInfo,
};
use crate::spec::SpecSet;
use crate::spec::cluster::NodeSpec;
use crate::spec::fence::FenceSpec;

/// The lease in the simulation.
const TTL: Duration = Duration::from_secs(3);
/// The longest a step may stay in flight after its check.
const STEP_TIMEOUT: Duration = Duration::from_secs(15);
/// How often a replica renews its lease and tries the election.
const TICK: Duration = Duration::from_millis(500);
const STEP: Duration = Duration::from_millis(100);
const RUN_FOR: Duration = Duration::from_secs(120);

/// Where the old leader's step is caught.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// Paused right before its start of `db-0`, past its lease.
    PauseBeforeStep,
    /// Its start of `db-0` in flight for most of the step timeout, its lease not renewed.
    DelayInFlight,
}

/// A part of the rule switched off on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HaBite {
    /// A new leader acts as soon as it wins.
    NoTakeoverWait,
    /// No lease check before a step.
    NoLeaseCheck,
}

/// What to simulate.
#[derive(Debug, Clone, Copy)]
pub struct HaConfig {
    /// Seeds the latencies.
    pub seed: u64,
    /// The scripted fault.
    pub scenario: Scenario,
    /// A part of the rule to switch off.
    pub bite: Option<HaBite>,
}

fn timing() -> Timing {
    Timing {
        ttl: TTL,
        drift: 0.05,
        margin: Duration::from_millis(200),
        step_timeout: STEP_TIMEOUT,
    }
}

/// etcd, as far as the election goes: who holds the key, under which token, until when.
#[derive(Default)]
struct Etcd {
    holder: Option<(usize, i64, Instant)>,
    next_token: i64,
}

type Shared<T> = Arc<Mutex<T>>;

/// What the script does to a replica at its next start of `db-0`.
#[derive(Debug, Clone, Copy)]
enum Hook {
    /// Freeze the replica this long, before the lease check.
    PauseBefore(Duration),
    /// Hold the call this long after the check, and freeze the replica's renewals.
    InFlight(Duration),
}

/// One replica's switches.
#[derive(Default)]
struct Control {
    hook: Option<Hook>,
    /// When the hook fired.
    fired: Option<Instant>,
    /// Frozen (no renewal, no campaign) until then.
    frozen_until: Option<Instant>,
}

/// Runs one HA simulation on a fresh single-threaded runtime with virtual time.
pub fn run_ha(config: HaConfig) -> Outcome {
    match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
    {
        Ok(rt) => rt.block_on(simulate(config)),
        Err(e) => Outcome {
            seed: config.seed,
            violations: vec![format!("cannot build a runtime: {e}")],
            trace: Vec::new(),
        },
    }
}

struct Replica {
    lease: Arc<Lease>,
    control: Shared<Control>,
    env: Arc<dyn Environment>,
    store: Arc<dyn Store>,
    running: Option<(tokio::task::JoinHandle<()>, mpsc::Sender<Trigger>)>,
    next_tick: Instant,
}

async fn simulate(config: HaConfig) -> Outcome {
    let Some(spec) = spec_set().map(Arc::new) else {
        return Outcome {
            seed: config.seed,
            violations: vec!["the simulation's specs do not validate".into()],
            trace: Vec::new(),
        };
    };
    let nodes: Vec<String> = spec
        .cluster
        .nodes
        .iter()
        .map(|n| n.name.to_string())
        .collect();
    let single: BTreeSet<String> = ["db".to_owned()].into();
    let world = Arc::new(Mutex::new(World::new(&nodes, 1, single, config.seed)));
    lock(&world).promotable = super::run::promotable(&spec);
    let etcd: Shared<Etcd> = Arc::default();
    let memory = Arc::new(MemoryStore::new());
    let sim_env: Arc<dyn Environment> = Arc::new(SimEnvironment::new(world.clone()));
    let mut replicas: Vec<Replica> = (0..2)
        .map(|i| replica(i, &sim_env, &memory, &etcd, config.bite))
        .collect();
    lock(&replicas[0].control).hook = Some(match config.scenario {
        Scenario::PauseBeforeStep => Hook::PauseBefore(Duration::from_secs(40)),
        Scenario::DelayInFlight => Hook::InFlight(Duration::from_millis(14_500)),
    });
    let started = Instant::now();
    let mut script = faults(config.scenario);
    let mut converged_at = None;
    while started.elapsed() < RUN_FOR {
        tokio::time::sleep(STEP).await;
        let now = Instant::now();
        for (i, r) in replicas.iter_mut().enumerate() {
            campaign(i, r, &etcd, &world, now, config.bite, &spec, &options());
        }
        if let Some(fired) = lock(&replicas[0].control).fired {
            script.retain(|(after, what)| {
                if now < fired + *after {
                    return true;
                }
                let mut w = lock(&world);
                what(&mut w);
                false
            });
        }
        let mut w = lock(&world);
        w.check_single_copies();
        let expected: BTreeSet<String> = ["db-0", "web-0", "web-1", "kv-0", "kv-1"]
            .map(String::from)
            .into();
        if script.is_empty() && w.converged(&expected) && converged_at.is_none() {
            converged_at = Some(now);
            w.log("converged");
        }
    }
    for r in &mut replicas {
        if let Some((t, _)) = r.running.take() {
            t.abort();
        }
    }
    let mut w = lock(&world);
    if converged_at.is_none() {
        w.not_converged("not converged after the scripted faults".to_owned());
    }
    w.outcome(config.seed)
}

fn options() -> Options {
    Options::default()
}

type Fault = (Duration, Box<dyn Fn(&mut World)>);

/// The world's faults, timed from the moment the hook fires on the old leader (at its
/// start of `db-0` on the node it chose, found then as the node holding `db-0`).
fn faults(scenario: Scenario) -> Vec<Fault> {
    let target = |w: &World| {
        w.nodes
            .iter()
            .find(|(_, n)| n.containers.contains_key("db-0"))
            .map(|(name, _)| name.clone())
    };
    let cut = move |w: &mut World| {
        if let Some(n) = target(w) {
            w.log(format!("script: cut {n}"));
            w.nodes.entry(n).and_modify(|n| n.link = false);
        }
    };
    let back = move |w: &mut World| {
        let cut: Vec<String> = w
            .nodes
            .iter()
            .filter(|(_, n)| !n.link || !n.powered)
            .map(|(name, _)| name.clone())
            .collect();
        for name in cut {
            w.log(format!("script: {name} powered on and its link back"));
            w.nodes.entry(name).and_modify(|n| {
                n.link = true;
                n.powered = true;
            });
        }
        w.update_reachability();
    };
    let (cut_at, back_at) = match scenario {
        Scenario::PauseBeforeStep => (Duration::from_secs(1), Duration::from_millis(39_800)),
        Scenario::DelayInFlight => (Duration::from_millis(500), Duration::from_secs(14)),
    };
    let cut: Box<dyn Fn(&mut World)> = Box::new(cut);
    let back: Box<dyn Fn(&mut World)> = Box::new(back);
    vec![(cut_at, cut), (back_at, back)]
}

fn replica(
    i: usize,
    sim_env: &Arc<dyn Environment>,
    memory: &Arc<MemoryStore>,
    etcd: &Shared<Etcd>,
    bite: Option<HaBite>,
) -> Replica {
    let lease = Arc::new(Lease::default());
    let control: Shared<Control> = Arc::default();
    // Outermost: a pause before the check; then the check; then the time in flight.
    let in_flight: Arc<dyn Environment> = Arc::new(Hooked {
        inner: sim_env.clone(),
        control: control.clone(),
        in_flight: true,
    });
    let checked: Arc<dyn Environment> = if bite == Some(HaBite::NoLeaseCheck) {
        in_flight
    } else {
        Arc::new(LeasedEnvironment::new(in_flight, lease.clone()))
    };
    let env: Arc<dyn Environment> = Arc::new(Hooked {
        inner: checked,
        control: control.clone(),
        in_flight: false,
    });
    let store: Arc<dyn Store> = Arc::new(FencedStore {
        inner: memory.clone(),
        etcd: etcd.clone(),
        lease: lease.clone(),
    });
    Replica {
        lease,
        control,
        env,
        store,
        running: None,
        next_tick: Instant::now() + TICK * u32::try_from(i).unwrap_or(0),
    }
}

/// One replica's election round, when due and not frozen; then its loop started or
/// stopped by the lease rule, as `quorate run --etcd` does.
#[allow(clippy::too_many_arguments)]
fn campaign(
    i: usize,
    r: &mut Replica,
    etcd: &Shared<Etcd>,
    world: &Shared<World>,
    now: Instant,
    bite: Option<HaBite>,
    spec: &Arc<SpecSet>,
    options: &Options,
) {
    let frozen = lock(&r.control).frozen_until.is_some_and(|t| now < t);
    if frozen || now < r.next_tick {
        return;
    }
    r.next_tick = now + TICK;
    let t = timing();
    {
        let mut e = lock(etcd);
        match e.holder {
            Some((who, token, expires)) if who == i && now < expires => {
                e.holder = Some((who, token, now + TTL));
                r.lease.renewed(t.valid_until(now, TTL));
            }
            Some((who, _, expires)) if who != i && now < expires => r.lease.lost(),
            _ => {
                e.next_token += 1;
                let token = e.next_token;
                e.holder = Some((i, token, now + TTL));
                let wait = match bite {
                    Some(HaBite::NoTakeoverWait) => Duration::ZERO,
                    _ => t.takeover_wait(),
                };
                r.lease.won(token, t.valid_until(now, TTL), now + wait);
                lock(world).log(format!(
                    "replica {i} elected (token {token}), acts after {wait:?}"
                ));
            }
        }
    }
    let may_act = r.lease.check_at(now).is_ok();
    match (r.running.is_some(), may_act) {
        (false, true) => {
            lock(world).log(format!("replica {i} leads: its loop starts"));
            let desired = Desired {
                spec: spec.clone(),
                commit: "sim".into(),
            };
            if let Ok(rec) =
                Reconciler::new(r.env.clone(), r.store.clone(), desired, options.clone())
            {
                let (tx, rx) = mpsc::channel(4);
                r.running = Some((
                    tokio::spawn(driver::run(rec, rx, SharedStatus::default())),
                    tx,
                ));
            }
        }
        (true, false) => {
            lock(world).log(format!("replica {i} no longer leads: its loop stops"));
            if let Some((task, _)) = r.running.take() {
                task.abort();
            }
        }
        _ => {}
    }
}

/// An environment whose start of `db-0` runs the replica's hook, before the lease check
/// (`in_flight: false`) or after it (`true`).
struct Hooked {
    inner: Arc<dyn Environment>,
    control: Shared<Control>,
    in_flight: bool,
}

impl Environment for Hooked {
    fn runtime(&self, node: &NodeSpec) -> Result<Arc<dyn Runtime>, RuntimeError> {
        Ok(Arc::new(HookedRuntime {
            inner: self.inner.runtime(node)?,
            control: self.control.clone(),
            in_flight: self.in_flight,
        }))
    }
    fn fence_agent(&self, name: &str, spec: &FenceSpec) -> Result<Box<dyn FenceAgent>, FenceError> {
        self.inner.fence_agent(name, spec)
    }
    fn instance(
        &self,
        set: &SpecSet,
        bundle: &str,
        index: u32,
        commit: &str,
    ) -> Result<InstanceSpec, InstanceError> {
        self.inner.instance(set, bundle, index, commit)
    }
    fn network(&self, set: &SpecSet, bundle: &str) -> Option<NetworkSpec> {
        self.inner.network(set, bundle)
    }
    fn clock(&self) -> &dyn Clock {
        self.inner.clock()
    }
}

struct HookedRuntime {
    inner: Arc<dyn Runtime>,
    control: Shared<Control>,
    in_flight: bool,
}

impl HookedRuntime {
    /// Runs the hook if this is its stage; returns how long to hold the call.
    fn hook(&self, name: &str) -> Option<Duration> {
        if name != "db-0" {
            return None;
        }
        let mut c = lock(&self.control);
        let hold = match (c.hook, self.in_flight) {
            (Some(Hook::PauseBefore(d)), false) => d,
            (Some(Hook::InFlight(d)), true) => d,
            _ => return None,
        };
        let now = Instant::now();
        c.hook = None;
        c.fired = Some(now);
        // A paused process's timers fire late too: it renews only after it goes on.
        c.frozen_until = Some(now + hold + TICK);
        Some(hold)
    }
}

#[async_trait]
impl Runtime for HookedRuntime {
    fn endpoint(&self) -> &Endpoint {
        self.inner.endpoint()
    }
    fn cluster(&self) -> Option<&str> {
        self.inner.cluster()
    }
    async fn ping(&self) -> Result<RuntimeInfo, RuntimeError> {
        self.inner.ping().await
    }
    async fn list(&self) -> Result<Vec<ContainerState>, RuntimeError> {
        self.inner.list().await
    }
    async fn inspect(&self, name: &str) -> Result<Option<ContainerState>, RuntimeError> {
        self.inner.inspect(name).await
    }
    async fn ensure_network(&self, network: &NetworkSpec) -> Result<(), RuntimeError> {
        self.inner.ensure_network(network).await
    }
    async fn create(&self, spec: &InstanceSpec) -> Result<String, RuntimeError> {
        self.inner.create(spec).await
    }
    async fn start(&self, name: &str) -> Result<(), RuntimeError> {
        if let Some(hold) = self.hook(name) {
            tokio::time::sleep(hold).await;
        }
        self.inner.start(name).await
    }
    async fn stop(&self, name: &str, grace: Duration) -> Result<(), RuntimeError> {
        self.inner.stop(name, grace).await
    }
    async fn remove(&self, name: &str) -> Result<(), RuntimeError> {
        self.inner.remove(name).await
    }
    async fn exec(
        &self,
        name: &str,
        command: &[String],
        env: &[(String, String)],
    ) -> Result<ExecOutcome, RuntimeError> {
        self.inner.exec(name, command, env).await
    }
    async fn exec_acting(
        &self,
        name: &str,
        command: &[String],
        env: &[(String, String)],
    ) -> Result<ExecOutcome, RuntimeError> {
        self.inner.exec_acting(name, command, env).await
    }
}

/// The shared store with etcd's guard: a write succeeds only while the writer's token is
/// the election key's.
struct FencedStore {
    inner: Arc<MemoryStore>,
    etcd: Shared<Etcd>,
    lease: Arc<Lease>,
}

impl FencedStore {
    fn guard(&self) -> Result<(), FenceLogError> {
        let holder = lock(&self.etcd).holder.map(|(_, token, _)| token);
        match (self.lease.token(), holder) {
            (Some(mine), Some(key)) if mine == key => Ok(()),
            _ => Err(FenceLogError(Box::from(
                "not the holder of the election key",
            ))),
        }
    }
}

#[async_trait]
impl FenceLog for FencedStore {
    async fn record_attempt(&self, a: &FenceAttempt) -> Result<(), FenceLogError> {
        self.guard()?;
        self.inner.record_attempt(a).await
    }
    async fn record_outcome(&self, o: &FenceOutcome) -> Result<(), FenceLogError> {
        self.guard()?;
        self.inner.record_outcome(o).await
    }
    async fn record_manual(&self, m: &ManualConfirmation) -> Result<(), FenceLogError> {
        self.guard()?;
        self.inner.record_manual(m).await
    }
    async fn history(&self, node: Option<&str>) -> Result<Vec<HistoryEntry>, FenceLogError> {
        self.inner.history(node).await
    }
}

#[async_trait]
impl Store for FencedStore {
    async fn remembered(&self, node: &str) -> Result<Remembered, FenceLogError> {
        self.inner.remembered(node).await
    }
    async fn set_contents(&self, node: &str, i: &[ObservedInstance]) -> Result<(), FenceLogError> {
        self.guard()?;
        self.inner.set_contents(node, i).await
    }
    async fn mark_seen(&self, node: &str, at: i64) -> Result<(), FenceLogError> {
        self.guard()?;
        self.inner.mark_seen(node, at).await
    }
    async fn intend_start(
        &self,
        node: &str,
        instance: &ObservedInstance,
        at: i64,
    ) -> Result<(), FenceLogError> {
        self.guard()?;
        self.inner.intend_start(node, instance, at).await
    }
    async fn failures(
        &self,
    ) -> Result<std::collections::BTreeMap<(String, String), Failures>, FenceLogError> {
        self.inner.failures().await
    }
    async fn record_failure(&self, node: &str, i: &str, at: u64) -> Result<(), FenceLogError> {
        self.guard()?;
        self.inner.record_failure(node, i, at).await
    }
    async fn record_pass(&self, pass: &PassRecord) -> Result<u64, FenceLogError> {
        self.guard()?;
        self.inner.record_pass(pass).await
    }
    async fn passes(&self, limit: usize) -> Result<Vec<PassRecord>, FenceLogError> {
        self.inner.passes(limit).await
    }
    async fn clear_failures(&self, i: &str, node: Option<&str>) -> Result<u32, FenceLogError> {
        self.guard()?;
        self.inner.clear_failures(i, node).await
    }
    async fn record_planned(&self, commit: &str, at: i64) -> Result<(), FenceLogError> {
        self.guard()?;
        self.inner.record_planned(commit, at).await
    }
    async fn suspended(&self) -> Result<crate::observed::Suspended, FenceLogError> {
        self.inner.suspended().await
    }
    async fn set_suspended(
        &self,
        bundle: Option<&str>,
        s: Option<&crate::observed::Suspension>,
    ) -> Result<Option<crate::observed::Suspension>, FenceLogError> {
        self.guard()?;
        self.inner.set_suspended(bundle, s).await
    }
}

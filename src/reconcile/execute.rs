//! Carrying out a plan: its steps in dependency order, a few at a time, each with a
//! time limit. A failed step ends the transition: nothing that depends on it runs, the
//! steps already running finish, and the next pass starts from what is observed then.
//!
//! Safety, step by step:
//! - every start and fence first checks quorum again, on fresh probes (invariant 2);
//! - a start writes "this instance may be on that node" to the store before creating
//!   anything, so a crash never hides a copy (invariant 1);
//! - a failed stop fences the node; only a confirmed fence counts as the stop
//!   (invariant 4);
//! - containers are created with no restart policy by the drivers (invariant 5);
//! - a container without quorate's labels is never touched (the drivers refuse).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::Instrument;

use super::env::Environment;
use super::gate::{GatedAgent, NoQuorum, QuorumGate};
use super::store::{StepKind, StepOutcome, StepResult, Store};
use crate::fence::FenceLogError;
use crate::fence::from_spec::{fence_policy, node_topology_with};
use crate::fence::topology::{FenceResult, run_fence};
use crate::fence::{FenceAction, FenceAgent};
use crate::observed::{InstanceState, ObservedInstance};
use crate::plan::hash::instance_hash;
use crate::plan::{Plan, Step, StepId, StepOp};
use crate::runtime::from_spec::InstanceError;
use crate::runtime::{Runtime, RuntimeError};
use crate::spec::bundle::instance_name;
use crate::spec::{Name, SpecSet};

/// What the executor needs.
#[derive(Clone)]
pub struct Executor {
    /// The edges.
    pub env: Arc<dyn Environment>,
    /// Durable state.
    pub store: Arc<dyn Store>,
    /// The spec being applied.
    pub spec: Arc<SpecSet>,
    /// Its commit.
    pub commit: String,
    /// Runtime drivers by node.
    pub runtimes: BTreeMap<Name, Arc<dyn Runtime>>,
    /// Quorum, re-checked before starts and fences.
    pub gate: Arc<QuorumGate>,
    /// Most steps run at once, over all nodes.
    pub parallelism: usize,
    /// Clashes met while starting (unmanaged containers holding an instance's name).
    pub conflicts: Arc<Mutex<BTreeMap<Name, BTreeSet<String>>>>,
    /// Where to report each step as it starts and ends (`quorate apply`'s progress).
    pub progress: Option<StepEvents>,
}

/// A step starting or ending, as it happens.
#[derive(Debug, Clone)]
pub enum StepEvent {
    /// A step was dispatched: what it does.
    Started(String),
    /// A step ended (or was skipped when the transition was cut short).
    Ended(StepResult),
}

/// The sending end of a stream of [`StepEvent`]s.
pub type StepEvents = tokio::sync::mpsc::UnboundedSender<StepEvent>;

/// Why a step failed. Its text is what the journal and the status show.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// The quorum gate refused (invariant 2).
    #[error(transparent)]
    NoQuorum(#[from] NoQuorum),
    /// The plan names a node without a driver.
    #[error("no runtime driver for {0}")]
    NoDriver(Name),
    /// The plan names a bundle the spec lacks.
    #[error("no bundle {0} in the spec")]
    NoBundle(Name),
    /// The write-ahead record of a start failed: nothing was started (invariant 1).
    #[error("cannot record the start of {instance} on {node}: {source}")]
    Record {
        /// The instance.
        instance: String,
        /// The node.
        node: Name,
        /// The store's error.
        source: FenceLogError,
    },
    /// The instance's container could not be described (a secret, a path).
    #[error(transparent)]
    Instance(#[from] InstanceError),
    /// The runtime refused or failed.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// A container quorate does not manage holds the name: it is left alone.
    #[error("an unmanaged container named {name} is on {node}; left untouched")]
    Unmanaged {
        /// The container's name.
        name: String,
        /// The node.
        node: Name,
    },
    /// A start the runtime could not carry out, counted as a failure of the instance on
    /// the node (towards `migrationThreshold`).
    #[error("{source}; counted as a failure of {instance} on {node}")]
    StartFailed {
        /// The instance.
        instance: String,
        /// The node.
        node: Name,
        /// What went wrong.
        source: Box<StepError>,
    },
    /// The step ran out of time.
    #[error("{what} did not finish within {after:?}")]
    Timeout {
        /// What did not finish.
        what: String,
        /// Its limit.
        after: Duration,
    },
    /// No fence level confirmed the node off.
    #[error("fencing {node} failed: {reason}")]
    Fence {
        /// The node.
        node: Name,
        /// Why.
        reason: String,
    },
    /// A promote or demote command failed or gave no exit code 0.
    #[error("{what} of {instance} on {node} failed: {reason}")]
    Role {
        /// `promote` or `demote`.
        what: &'static str,
        /// The instance.
        instance: String,
        /// The node.
        node: Name,
        /// Why.
        reason: String,
    },
    /// A stop (or a demote) failed, and so did the fence that had to replace it
    /// (invariants 4 and 8).
    #[error("stop failed ({why}) and {fence}")]
    StopThenFence {
        /// Why the stop failed.
        why: String,
        /// Why the fence failed.
        fence: Box<StepError>,
    },
}

/// A change of role.
#[derive(Clone, Copy)]
enum Change {
    Promote,
    Demote,
}

/// The result of carrying out a plan.
pub struct Outcome {
    /// What each step did, in the order they finished.
    pub results: Vec<StepResult>,
    /// Whether a step failed (the transition was cut short).
    pub aborted: bool,
}

/// Most steps run at once on one node (Pacemaker's `node-action-limit` in spirit): a node
/// is not asked to create and start dozens of containers at the same moment.
pub const STEPS_PER_NODE: usize = 4;

/// Which steps may run: each step waits for the steps it comes after; the ready ones are
/// taken in id order. Kept incrementally, so a plan of n steps costs O(n + edges).
struct Queue<'p> {
    steps: BTreeMap<StepId, &'p Step>,
    /// Steps still to finish before each waiting step may start.
    unmet: BTreeMap<StepId, usize>,
    /// The steps waiting on each step.
    dependents: BTreeMap<StepId, Vec<StepId>>,
    ready: BTreeSet<StepId>,
    started: BTreeSet<StepId>,
}

impl<'p> Queue<'p> {
    fn new(plan: &'p [Step]) -> Queue<'p> {
        let steps: BTreeMap<StepId, &Step> = plan.iter().map(|s| (s.id, s)).collect();
        let mut q = Queue {
            steps,
            unmet: BTreeMap::new(),
            dependents: BTreeMap::new(),
            ready: BTreeSet::new(),
            started: BTreeSet::new(),
        };
        for s in plan {
            // A step that names a step the plan does not have never becomes ready; it is
            // reported as skipped.
            let unmet: BTreeSet<StepId> = s.after.iter().copied().collect();
            for d in &unmet {
                q.dependents.entry(*d).or_default().push(s.id);
            }
            match unmet.len() {
                0 => {
                    q.ready.insert(s.id);
                }
                n => {
                    q.unmet.insert(s.id, n);
                }
            }
        }
        q
    }

    /// `id` succeeded: the steps waiting only on it become ready.
    fn succeeded(&mut self, id: StepId) {
        for d in self.dependents.remove(&id).unwrap_or_default() {
            if let Some(n) = self.unmet.get_mut(&d) {
                *n -= 1;
                if *n == 0 {
                    self.unmet.remove(&d);
                    self.ready.insert(d);
                }
            }
        }
    }

    /// The ready steps to start now, in id order, within `free` slots overall and
    /// [`STEPS_PER_NODE`] on each node (`busy` counts what runs on each).
    fn take(&mut self, free: usize, busy: &BTreeMap<Name, usize>) -> Vec<&'p Step> {
        let mut taken: Vec<&Step> = Vec::new();
        let mut extra: BTreeMap<&Name, usize> = BTreeMap::new();
        for id in &self.ready {
            if taken.len() >= free {
                break;
            }
            let Some(step) = self.steps.get(id).copied() else {
                continue;
            };
            let node = step.op.node();
            let on_node =
                busy.get(node).copied().unwrap_or(0) + extra.get(node).copied().unwrap_or(0);
            if on_node < STEPS_PER_NODE {
                *extra.entry(node).or_default() += 1;
                taken.push(step);
            }
        }
        for s in &taken {
            self.ready.remove(&s.id);
            self.started.insert(s.id);
        }
        taken
    }

    /// The steps never started (the transition was cut short), in id order.
    fn never_started(&self) -> impl Iterator<Item = &'p Step> + '_ {
        self.steps
            .values()
            .copied()
            .filter(|s| !self.started.contains(&s.id))
    }
}

type Running = JoinSet<(StepId, Result<String, StepError>, Duration)>;

impl Executor {
    /// Runs the steps of `plan`: each after the steps it names (the planner's ordering
    /// carries the safety invariants: fence before recovery, stop before start), at most
    /// `parallelism` at once and [`STEPS_PER_NODE`] on one node. After a failure nothing
    /// more is started; what runs is let finish.
    pub async fn run(&self, plan: &Plan) -> Outcome {
        let mut queue = Queue::new(&plan.steps);
        let mut results = Vec::new();
        let mut failed = false;
        let mut running: Running = JoinSet::new();
        let mut tasks: BTreeMap<tokio::task::Id, StepId> = BTreeMap::new();
        let mut busy: BTreeMap<Name, usize> = BTreeMap::new();
        loop {
            if !failed {
                let free = self.parallelism.max(1).saturating_sub(running.len());
                for step in queue.take(free, &busy) {
                    *busy.entry(step.op.node().clone()).or_default() += 1;
                    self.report(|| StepEvent::Started(describe(&step.op)));
                    let task = self.spawn(&mut running, step.clone());
                    tasks.insert(task, step.id);
                }
            }
            let Some(joined) = running.join_next_with_id().await else {
                break;
            };
            let (id, result, took) = match joined {
                Ok((_, (id, r, took))) => (id, r.map_err(|e| e.to_string()), took),
                // The step's task panicked or was cancelled: it did not succeed.
                Err(e) => match tasks.get(&e.id()) {
                    Some(id) => (
                        *id,
                        Err(format!("the step's task failed: {e}")),
                        Duration::ZERO,
                    ),
                    None => {
                        failed = true;
                        continue;
                    }
                },
            };
            let Some(step) = queue.steps.get(&id).copied() else {
                continue;
            };
            if let Some(n) = busy.get_mut(step.op.node()) {
                *n = n.saturating_sub(1);
            }
            let (outcome, detail) = match result {
                Ok(m) => {
                    queue.succeeded(id);
                    (StepOutcome::Ok, m)
                }
                Err(e) => {
                    failed = true;
                    (StepOutcome::Failed, e)
                }
            };
            let result = result_of(step, outcome, detail, took);
            self.report(|| StepEvent::Ended(result.clone()));
            results.push(result);
        }
        for s in queue.never_started() {
            let result = result_of(
                s,
                StepOutcome::Skipped,
                "the transition was aborted".into(),
                Duration::ZERO,
            );
            self.report(|| StepEvent::Ended(result.clone()));
            results.push(result);
        }
        Outcome {
            results,
            aborted: failed,
        }
    }

    /// Sends an event to whoever follows the progress; one who stopped listening is ignored.
    fn report(&self, event: impl FnOnce() -> StepEvent) {
        if let Some(tx) = &self.progress {
            let _ = tx.send(event());
        }
    }

    fn spawn(&self, running: &mut Running, step: Step) -> tokio::task::Id {
        let this = self.clone();
        let span = tracing::info_span!("step", id = %step.id, action = %step.action, op = %describe(&step.op));
        running
            .spawn(
                async move {
                    let t = Instant::now();
                    let r = this.step(&step).await;
                    match &r {
                        Ok(m) => tracing::info!(result = %m, "step done"),
                        Err(e) => tracing::warn!(error = %e, "step failed"),
                    }
                    (step.id, r, t.elapsed())
                }
                .instrument(span),
            )
            .id()
    }

    async fn step(&self, step: &Step) -> Result<String, StepError> {
        match &step.op {
            StepOp::Fence { node } => self.fence(node).await,
            StepOp::Stop {
                node,
                bundle,
                index,
            } => self.stop(node, bundle, *index).await,
            StepOp::Start {
                node,
                bundle,
                index,
            } => self.start(node, bundle, *index).await,
            StepOp::Promote {
                node,
                bundle,
                index,
            } => {
                let me = Some((*index, node));
                self.role_command(node, bundle, *index, Change::Promote, me)
                    .await
            }
            StepOp::Demote {
                node,
                bundle,
                index,
                follow,
                primary,
            } => {
                let follow = follow.as_ref().map(|(i, n)| (*i, n));
                if *primary {
                    self.demote(node, bundle, *index, follow).await
                } else {
                    self.role_command(node, bundle, *index, Change::Demote, follow)
                        .await
                }
            }
        }
    }

    /// Invariant 8: a demote of an instance that may be promoted that fails is handled
    /// like a failed stop: the node is fenced, and only a confirmed fence lets the steps
    /// after it (a promotion elsewhere) go on. (A replica told whom to follow is not
    /// promoted: its failure only fails the step, and the next pass asks again.)
    async fn demote(
        &self,
        node: &Name,
        bundle: &Name,
        index: u32,
        follow: Option<(u32, &Name)>,
    ) -> Result<String, StepError> {
        let why = match self
            .role_command(node, bundle, index, Change::Demote, follow)
            .await
        {
            Ok(m) => return Ok(m),
            Err(e @ (StepError::NoQuorum(_) | StepError::NoDriver(_) | StepError::NoBundle(_))) => {
                return Err(e);
            }
            Err(e) => e.to_string(),
        };
        tracing::warn!(%node, %why, "demote failed; fencing the node (invariant 8)");
        match self.fence(node).await {
            Ok(m) => Ok(format!("demote failed ({why}); {m}")),
            Err(e) => Err(StepError::StopThenFence {
                why,
                fence: Box::new(e),
            }),
        }
    }

    /// Runs the bundle's promote or demote command in the instance's container, within
    /// the bundle's `timeout`, after checking quorum (invariant 2); the command is told
    /// the promoted instance (`follow`).
    async fn role_command(
        &self,
        node: &Name,
        bundle: &Name,
        index: u32,
        change: Change,
        follow: Option<(u32, &Name)>,
    ) -> Result<String, StepError> {
        self.gate.check().await?;
        let p = self
            .spec
            .bundles
            .get(bundle)
            .and_then(|b| b.promotable.as_ref())
            .ok_or_else(|| StepError::NoBundle(bundle.clone()))?;
        let rt = self.runtime(node)?.clone();
        let instance = instance_name(bundle.as_str(), index);
        let (what, command) = match change {
            Change::Promote => ("promote", &p.promote),
            Change::Demote => ("demote", &p.demote),
        };
        let env = crate::plan::promotion::env(&self.spec, bundle.as_str(), follow);
        let failed = |reason: String| StepError::Role {
            what,
            instance: instance.clone(),
            node: node.clone(),
            reason,
        };
        let limit = p.timeout.get();
        match tokio::time::timeout(limit, rt.exec_acting(&instance, command, &env)).await {
            Ok(Ok(o)) if o.exit_code == Some(0) => Ok(String::new()),
            Ok(Ok(o)) => Err(failed(match o.exit_code {
                Some(c) => format!("the command exited with code {c}"),
                None => "the command gave no exit code".to_owned(),
            })),
            Ok(Err(e)) => Err(failed(e.to_string())),
            Err(_) => Err(failed(format!("no answer within {limit:?}"))),
        }
    }

    fn runtime(&self, node: &Name) -> Result<&Arc<dyn Runtime>, StepError> {
        self.runtimes
            .get(node)
            .ok_or_else(|| StepError::NoDriver(node.clone()))
    }

    /// Invariants 2 and 3: fences only with quorum, and succeeds only when a whole level
    /// of devices confirmed the node off.
    async fn fence(&self, node: &Name) -> Result<String, StepError> {
        self.gate.check().await?;
        let env = self.env.clone();
        let gate = self.gate.clone();
        // Every power command of the run asks the gate again: the run may outlive quorum.
        let topology = node_topology_with(&self.spec, node.as_str(), |name, spec| {
            env.fence_agent(name, spec)
                .map(|a| Box::new(GatedAgent::new(a, gate.clone())) as Box<dyn FenceAgent>)
        })
        .map_err(|e| StepError::Fence {
            node: node.clone(),
            reason: e.to_string(),
        })?;
        let policy = fence_policy(&self.spec);
        let limit = policy.timeout + Duration::from_secs(10);
        let report = tokio::time::timeout(
            limit,
            run_fence(
                &topology,
                FenceAction::Off,
                &policy,
                self.env.clock(),
                self.store.as_ref(),
            ),
        )
        .await
        .map_err(|_| StepError::Timeout {
            what: format!("fencing {node}"),
            after: limit,
        })?;
        match report.result {
            FenceResult::Confirmed { level, .. } if report.succeeded() => {
                self.powered_off(node).await;
                Ok(format!("{node} confirmed off at level {level}"))
            }
            FenceResult::Failed { cause } => Err(StepError::Fence {
                node: node.clone(),
                reason: cause,
            }),
            other => Err(StepError::Fence {
                node: node.clone(),
                reason: format!("not confirmed off ({other:?})"),
            }),
        }
    }

    /// A confirmed power-off stopped every container of `node`: its contents say so, so
    /// that when it comes back its exited containers are not counted as failures of the
    /// instances (the node failed, not them; Pacemaker likewise forgets a fenced node's
    /// fail counts). A failed write only costs a spurious fail count.
    async fn powered_off(&self, node: &Name) {
        let Ok(Some(mut contents)) = self
            .store
            .remembered(node.as_str())
            .await
            .map(|r| r.contents)
        else {
            return;
        };
        for i in &mut contents {
            i.state = InstanceState::Stopped;
        }
        if let Err(e) = self.store.set_contents(node.as_str(), &contents).await {
            tracing::warn!(%node, error = %e, "cannot record the fenced node's containers as stopped");
        }
    }

    /// Stops and removes the container. Invariant 4: if that fails, the node is fenced,
    /// and only a confirmed fence lets dependent steps go on.
    async fn stop(&self, node: &Name, bundle: &Name, index: u32) -> Result<String, StepError> {
        let name = instance_name(bundle.as_str(), index);
        let grace = self
            .spec
            .bundles
            .get(bundle)
            .map_or(Duration::from_secs(10), |b| b.stop_timeout.get());
        let rt = self.runtime(node)?.clone();
        let attempt = async {
            match rt.stop(&name, grace).await {
                Ok(()) | Err(RuntimeError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
            match rt.remove(&name).await {
                Ok(()) | Err(RuntimeError::NotFound { .. }) => Ok(()),
                Err(e) => Err(e),
            }
        };
        let limit = grace + Duration::from_secs(30);
        let why = match tokio::time::timeout(limit, attempt).await {
            Ok(Ok(())) => return Ok(String::new()),
            // Never touch someone else's container, and never fence over it.
            Ok(Err(e @ RuntimeError::Conflict { .. })) => return Err(e.into()),
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("stop of {name} on {node} did not finish within {limit:?}"),
        };
        tracing::warn!(%node, instance = %name, %why, "stop failed; fencing the node (invariant 4)");
        match self.fence(node).await {
            Ok(m) => Ok(format!("stop failed ({why}); {m}")),
            Err(e) => Err(StepError::StopThenFence {
                why,
                fence: Box::new(e),
            }),
        }
    }

    /// Creates and starts the container, after checking quorum and writing the intent.
    async fn start(&self, node: &Name, bundle: &Name, index: u32) -> Result<String, StepError> {
        self.gate.check().await?;
        let spec = self
            .spec
            .bundles
            .get(bundle)
            .ok_or_else(|| StepError::NoBundle(bundle.clone()))?;
        let rt = self.runtime(node)?.clone();
        let name = instance_name(bundle.as_str(), index);
        let intent = ObservedInstance {
            bundle: bundle.clone(),
            index,
            spec_hash: instance_hash(bundle.as_str(), spec, index),
            state: InstanceState::Running,
            role: None,
        };
        // Invariant 1, across crashes and restarts: before anything is created, the store
        // says this instance may run on the node, and that the node is up now, so no fence
        // record from before this start can later pass for proof that the copy is gone.
        self.store
            .intend_start(node.as_str(), &intent, self.env.clock().now_unix_ms())
            .await
            .map_err(|source| StepError::Record {
                instance: name.clone(),
                node: node.clone(),
                source,
            })?;
        let instance = self
            .env
            .instance(&self.spec, bundle.as_str(), index, &self.commit)?;
        let network = self.env.network(&self.spec, bundle.as_str());
        let work = async {
            if let Some(net) = &network {
                rt.ensure_network(net).await?;
            }
            match rt.create(&instance).await {
                Ok(_) => {}
                Err(RuntimeError::AlreadyExists { .. }) => {
                    // Ours, left over: running means it is already there; else replace it.
                    if rt.inspect(&name).await?.is_some_and(|c| c.is_running()) {
                        return Ok(());
                    }
                    rt.remove(&name).await?;
                    rt.create(&instance).await?;
                }
                Err(e) => return Err(e),
            }
            rt.start(&name).await
        };
        let r = match tokio::time::timeout(Duration::from_secs(180), work).await {
            Ok(Ok(())) => Ok(String::new()),
            Ok(Err(RuntimeError::Conflict { name })) => {
                self.conflicts
                    .lock()
                    .await
                    .entry(node.clone())
                    .or_default()
                    .insert(name.clone());
                Err(StepError::Unmanaged {
                    name,
                    node: node.clone(),
                })
            }
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(StepError::Timeout {
                what: format!("start of {name} on {node}"),
                after: Duration::from_secs(180),
            }),
        };
        match r {
            Err(e) if start_failure_counts(&e) => Err(self.start_failed(node, name, e).await),
            r => r,
        }
    }

    /// A start the runtime could not carry out counts as a failure of the instance on the
    /// node, as a failed check does: after `migrationThreshold` of them the planner places
    /// it elsewhere (Pacemaker with `start-failure-is-fatal=false`; quorate does not ban
    /// the node at the first failed start, since a pull or a port can fail once).
    async fn start_failed(&self, node: &Name, instance: String, source: StepError) -> StepError {
        let now = self.env.clock().now_unix_ms() / 1000;
        let now = u64::try_from(now).unwrap_or(0);
        if let Err(e) = self
            .store
            .record_failure(node.as_str(), &instance, now)
            .await
        {
            tracing::warn!(%node, %instance, error = %e, "cannot count the failed start");
        }
        StepError::StartFailed {
            instance,
            node: node.clone(),
            source: Box::new(source),
        }
    }
}

/// Whether a failed start says something about the instance on that node: the runtime
/// answered and could not run it (image, network, storage, its API), or the start did not
/// finish. Not when the runtime did not answer (the node's membership deals with that),
/// the quorum gate refused, the container could not be described (the reconciler's side),
/// an unmanaged container holds the name, or the start could not be recorded.
fn start_failure_counts(e: &StepError) -> bool {
    match e {
        StepError::Runtime(r) => !r.is_unreachable() && !matches!(r, RuntimeError::Conflict { .. }),
        StepError::Timeout { .. } => true,
        _ => false,
    }
}

fn result_of(step: &Step, result: StepOutcome, detail: String, took: Duration) -> StepResult {
    StepResult {
        step: step.id.to_string(),
        kind: kind(&step.op),
        what: describe(&step.op),
        result,
        detail,
        millis: u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
    }
}

fn kind(op: &StepOp) -> StepKind {
    match op {
        StepOp::Fence { .. } => StepKind::Fence,
        StepOp::Stop { .. } => StepKind::Stop,
        StepOp::Start { .. } => StepKind::Start,
        StepOp::Promote { .. } => StepKind::Promote,
        StepOp::Demote { .. } => StepKind::Demote,
    }
}

/// `start db-0 on worker2`.
pub fn describe(op: &StepOp) -> String {
    let verb = kind(op).as_str();
    match op.instance() {
        None => format!("{verb} {}", op.node()),
        Some((bundle, index)) => format!(
            "{verb} {} on {}",
            instance_name(bundle.as_str(), index),
            op.node()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::ActionId;

    fn start(id: u32, node: &str, after: &[u32]) -> Step {
        Step {
            id: StepId(id),
            action: ActionId(id),
            op: StepOp::Start {
                node: node.parse().unwrap(),
                bundle: "b".parse().unwrap(),
                index: id,
            },
            after: after.iter().map(|a| StepId(*a)).collect(),
        }
    }

    fn ids(steps: &[&Step]) -> Vec<u32> {
        steps.iter().map(|s| s.id.0).collect()
    }

    #[test]
    fn a_step_is_ready_once_every_step_it_comes_after_succeeded() {
        let steps = [
            start(1, "n1", &[]),
            start(2, "n2", &[1]),
            start(3, "n3", &[1, 2]),
            start(4, "n4", &[9]),
        ];
        let mut q = Queue::new(&steps);
        let idle = BTreeMap::new();
        assert_eq!(ids(&q.take(64, &idle)), [1]);
        assert_eq!(ids(&q.take(64, &idle)), Vec::<u32>::new());
        q.succeeded(StepId(1));
        assert_eq!(ids(&q.take(64, &idle)), [2]);
        q.succeeded(StepId(2));
        assert_eq!(ids(&q.take(64, &idle)), [3]);
        q.succeeded(StepId(3));
        // Step 4 names a step the plan lacks: never started, reported as skipped.
        assert_eq!(ids(&q.take(64, &idle)), Vec::<u32>::new());
        assert_eq!(q.never_started().map(|s| s.id.0).collect::<Vec<_>>(), [4]);
    }

    #[test]
    fn at_most_four_steps_run_on_one_node_and_the_overall_bound_holds() {
        let mut steps: Vec<Step> = (1..=10).map(|i| start(i, "n1", &[])).collect();
        steps.extend((11..=20).map(|i| start(i, &format!("n{i}"), &[])));
        let mut q = Queue::new(&steps);
        let taken = ids(&q.take(64, &BTreeMap::new()));
        assert_eq!(taken, [1, 2, 3, 4, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]);
        // Two still run on n1: two more may start there, and no more than 1 overall.
        let busy: BTreeMap<Name, usize> = [("n1".parse().unwrap(), 2)].into();
        assert_eq!(ids(&q.take(1, &busy)), [5]);
        let busy: BTreeMap<Name, usize> = [("n1".parse().unwrap(), 4)].into();
        assert_eq!(ids(&q.take(64, &busy)), Vec::<u32>::new());
    }

    #[test]
    fn a_start_the_runtime_could_not_carry_out_counts_as_a_failure() {
        let api = RuntimeError::Api {
            op: "start",
            message: "port is already allocated".into(),
        };
        assert!(start_failure_counts(&StepError::Runtime(api)));
        let pull = RuntimeError::ImageUnavailable {
            image: "pg".into(),
            reason: "manifest unknown".into(),
        };
        assert!(start_failure_counts(&StepError::Runtime(pull)));
        assert!(start_failure_counts(&StepError::Timeout {
            what: "start of db-0 on n1".into(),
            after: Duration::from_secs(180),
        }));
        // Nothing said about the instance: the node did not answer, someone else's
        // container holds the name, the plan named no such bundle.
        let down = RuntimeError::Unreachable {
            endpoint: "podman+unix:///n1".into(),
            reason: "connection refused".into(),
        };
        assert!(!start_failure_counts(&StepError::Runtime(down)));
        let theirs = RuntimeError::Conflict {
            name: "db-0".into(),
        };
        assert!(!start_failure_counts(&StepError::Runtime(theirs)));
        assert!(!start_failure_counts(&StepError::NoBundle(
            Name::from_static("db")
        )));
    }
}

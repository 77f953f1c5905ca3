//! One observation of the cluster for a reconcile pass: list every node's containers,
//! update membership, read what the store remembers, assemble the [`Observed`] state
//! ([`crate::observed::assemble`], the one set of rules every command uses), and record
//! what changed.
//!
//! The store's records are what keep invariant 1 across crashes, so a pass that cannot
//! read or write them does not act: [`observe`] fails with the store's error.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::membership::{Liveness, Membership};
use super::store::Store;
use crate::fence::FenceLogError;
use crate::observed::Observed;
use crate::observed::assemble::{Heard, NodeReport, assemble};
use crate::runtime::{ContainerState, Runtime};
use crate::spec::{Name, SpecSet};

/// The outcome of observing.
pub struct Observation {
    /// The state for the planner.
    pub observed: Observed,
    /// Nodes still suspect: no decision until they answer or are lost.
    pub suspect: Vec<Name>,
}

/// What the reconciler keeps between observations.
#[derive(Default)]
pub struct Observer {
    /// Nodes whose return has been recorded in the store since they last answered
    /// after a silence (or since this process started).
    marked: BTreeSet<Name>,
    /// Why each node that does not answer did not, as last logged.
    silent: BTreeMap<Name, String>,
    /// Simulation only: see `Options::unsafe_forget_last_seen`.
    #[cfg(feature = "sim")]
    forget_last_seen: bool,
}

/// What an observation works from besides membership and the store.
pub struct Inputs<'a> {
    /// The spec in force.
    pub spec: &'a SpecSet,
    /// Each node's runtime.
    pub runtimes: &'a BTreeMap<Name, Arc<dyn Runtime>>,
    /// Running instances failing their check, by node (the monitors' verdict).
    pub failing: &'a BTreeMap<Name, BTreeSet<String>>,
    /// Unmanaged containers that clash with an instance name, by node.
    pub conflicts: &'a BTreeMap<Name, BTreeSet<String>>,
    /// Bound on listing one node.
    pub timeout: Duration,
    /// Most nodes listed at once.
    pub concurrency: usize,
}

impl Observer {
    /// An observer for a reconciler with `options`.
    pub fn new(options: &super::Options) -> Observer {
        let _ = options;
        Observer {
            #[cfg(feature = "sim")]
            forget_last_seen: options.unsafe_forget_last_seen,
            ..Observer::default()
        }
    }

    /// Lists every node (each within `timeout`, or the probe interval for a node that
    /// does not answer the probes), updates `membership`, and assembles the observed
    /// state from the listings and the store. Records in the store each node's new
    /// contents, exits as failures, and the first answer of a node after a silence.
    pub async fn observe(
        &mut self,
        inputs: &Inputs<'_>,
        membership: &mut Membership,
        store: &dyn Store,
        now_unix_ms: i64,
    ) -> Result<Observation, FenceLogError> {
        let spec = inputs.spec;
        let listings = list_all(inputs, membership).await;
        let now = Instant::now();
        let mut reports = Vec::with_capacity(listings.len());
        for (name, listing) in listings {
            let listing = self.note_answer(&name, listing);
            membership.probe(name.as_str(), listing.is_some(), now, now_unix_ms);
            let heard = match (listing, membership.liveness(name.as_str(), now)) {
                (Some(containers), _) => Heard::Listed(containers),
                (None, Liveness::Lost) => Heard::Lost,
                (None, Liveness::Suspect | Liveness::Online) => Heard::Suspect,
            };
            let r = report(name, heard, membership, store, inputs).await?;
            #[cfg(feature = "sim")]
            let r = self.forget_if_asked(r, membership);
            reports.push(r);
        }
        let failures = store.failures().await?;
        let mut assembled = assemble(spec, reports, &failures, now_unix_ms);
        // What an operator suspended: an input of the plan, like the fail counts.
        assembled.observed.suspended = store.suspended().await?;
        let now_unix = u64::try_from(now_unix_ms / 1000).unwrap_or(0);
        // An exit of a suspended instance is the operator's doing, not a failure.
        let suspended = &assembled.observed.suspended;
        let exits = assembled.exited.iter().filter(|(_, instance)| {
            let bundle = instance
                .rsplit_once('-')
                .map_or(instance.as_str(), |(b, _)| b);
            !suspended.covers(bundle)
        });
        for (node, instance) in exits {
            store
                .record_failure(node.as_str(), instance, now_unix)
                .await?;
        }
        for (node, contents) in &assembled.listed {
            store.set_contents(node.as_str(), contents).await?;
        }
        self.mark_returns(&assembled.observed, membership, store)
            .await?;
        Ok(Observation {
            observed: assembled.observed,
            suspect: assembled.suspect,
        })
    }

    /// The listing, if the node answered; logs why it did not when the reason is new
    /// (a node past a bound of its runtime's answers says which, once).
    fn note_answer(
        &mut self,
        name: &Name,
        listing: Result<Vec<ContainerState>, String>,
    ) -> Option<Vec<ContainerState>> {
        match listing {
            Ok(containers) => {
                if self.silent.remove(name).is_some() {
                    tracing::info!(node = %name, "node answers again");
                }
                Some(containers)
            }
            Err(reason) => {
                if self.silent.get(name) != Some(&reason) {
                    tracing::warn!(node = %name, %reason, "node does not answer");
                    self.silent.insert(name.clone(), reason);
                }
                None
            }
        }
    }

    /// Simulation only: the old rule, evidence against what this process saw itself.
    #[cfg(feature = "sim")]
    fn forget_if_asked(&self, mut r: NodeReport, membership: &Membership) -> NodeReport {
        if self.forget_last_seen {
            r.remembered.last_seen_unix_ms = membership.last_seen_unix_ms(r.node.as_str());
        }
        r
    }

    /// Records when each node that answers was last known up, the first time it answers
    /// after a silence: fence evidence older than that is void from then on, also for a
    /// reconciler restarted later (invariant 1). Starts record it themselves, before they
    /// create anything (`Store::intend_start`).
    async fn mark_returns(
        &mut self,
        observed: &Observed,
        membership: &Membership,
        store: &dyn Store,
    ) -> Result<(), FenceLogError> {
        for (name, node) in &observed.nodes {
            if node.state != crate::observed::NodeState::Online {
                self.marked.remove(name);
                continue;
            }
            if self.marked.contains(name) {
                continue;
            }
            if let Some(at) = membership.last_seen_unix_ms(name.as_str()) {
                store.mark_seen(name.as_str(), at).await?;
                self.marked.insert(name.clone());
            }
        }
        Ok(())
    }
}

/// What the store and membership know of `name`, with what was heard from it.
async fn report(
    name: Name,
    heard: Heard,
    membership: &Membership,
    store: &dyn Store,
    found: &Inputs<'_>,
) -> Result<NodeReport, FenceLogError> {
    let mut remembered = store.remembered(name.as_str()).await?;
    // The latest of the durable time and the one this process saw itself.
    remembered.last_seen_unix_ms = remembered
        .last_seen_unix_ms
        .max(membership.last_seen_unix_ms(name.as_str()));
    let evidence = match heard {
        Heard::Lost => store.off_evidence(name.as_str()).await?,
        Heard::Listed(_) | Heard::Suspect => None,
    };
    Ok(NodeReport {
        since: membership.since_unix(name.as_str()),
        remembered,
        evidence,
        failing: found.failing.get(&name).cloned().unwrap_or_default(),
        conflicts: found
            .conflicts
            .get(&name)
            .map(|c| c.iter().cloned().collect())
            .unwrap_or_default(),
        ..NodeReport::new(name, heard)
    })
}

/// Lists every node of the spec, at most `inputs.concurrency` at a time; an error for a
/// node that did not answer in time.
async fn list_all(
    inputs: &Inputs<'_>,
    membership: &Membership,
) -> Vec<(Name, Result<Vec<ContainerState>, String>)> {
    let (spec, runtimes, timeout) = (inputs.spec, inputs.runtimes, inputs.timeout);
    // A node that stopped answering the probes gets the probe's short timeout: it may be
    // back, but waiting the full timeout on every pass while it is down would delay the
    // fencing and recovery of everything else.
    let probe_timeout = spec
        .cluster
        .membership
        .probe_interval
        .get()
        .max(Duration::from_millis(200))
        .min(timeout);
    let lists: Vec<_> = spec
        .cluster
        .nodes
        .iter()
        .map(|n| {
            let rt = runtimes.get(&n.name).cloned();
            let timeout = if membership.stopped_answering(n.name.as_str()) {
                probe_timeout
            } else {
                timeout
            };
            async move {
                let result = match rt {
                    Some(rt) => match tokio::time::timeout(timeout, rt.list()).await {
                        Ok(listed) => listed.map_err(|e| e.to_string()),
                        Err(_) => Err(format!("no answer within {timeout:?}")),
                    },
                    None => Err("no runtime driver for it".to_string()),
                };
                (n.name.clone(), result)
            }
        })
        .collect();
    super::bounded(lists, inputs.concurrency).await
}

#[cfg(test)]
mod logged {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn why_a_node_does_not_answer_is_logged_once_per_reason() {
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let n1 = Name::from_static("n1");
        let over = "node unreachable: docker+unix:///n1.sock: list containers: answer over 8 MiB";
        tracing::subscriber::with_default(subscriber, || {
            let mut o = Observer::default();
            assert!(o.note_answer(&n1, Err(over.into())).is_none());
            assert!(o.note_answer(&n1, Err(over.into())).is_none());
            assert!(
                o.note_answer(&n1, Err("no answer within 2s".into()))
                    .is_none()
            );
            assert_eq!(o.note_answer(&n1, Ok(vec![])), Some(vec![]));
        });
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        let warned: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("node does not answer"))
            .collect();
        assert_eq!(warned.len(), 2, "{text}");
        assert!(
            warned[0].contains("answer over 8 MiB") && warned[0].contains("n1"),
            "{text}"
        );
        assert!(warned[1].contains("no answer within 2s"), "{text}");
        assert_eq!(text.matches("node answers again").count(), 1, "{text}");
    }
}

#[cfg(test)]
mod tests {
    //! A property of the observer over histories of answers, cuts, power losses, fences,
    //! manual confirmations, starts and restarts of the reconciler: it never calls a node
    //! fenced while an instance started there since its last power-off still runs.

    use std::sync::Mutex;

    use async_trait::async_trait;
    use proptest::prelude::*;

    use super::*;
    use crate::fence::log::{FenceOutcome, ManualConfirmation};
    use crate::fence::{FenceAction, FenceLog};
    use crate::observed::{InstanceState, NodeState, ObservedInstance};
    use crate::reconcile::store::MemoryStore;
    use crate::runtime::instance::InstanceLabels;
    use crate::runtime::{
        ContainerStatus, Endpoint, ExecOutcome, InstanceSpec, NetworkSpec, RuntimeError,
        RuntimeInfo,
    };

    const SPECS: &str = "apiVersion: quorate.io/v1alpha1
kind: Cluster
metadata: {name: c}
spec:
  nodes: [{name: x, runtime: 'podman+unix:///x.sock'}]
  membership: {probeInterval: 500ms, deadTime: 2s}
---
apiVersion: quorate.io/v1alpha1
kind: Bundle
metadata: {name: db}
spec: {image: i, recovery: fence}
";

    /// The truth about node x.
    #[derive(Debug, Default)]
    struct Truth {
        link: bool,
        powered: bool,
        /// db-0 runs (it can only run while powered).
        running: bool,
        /// A container of db-0 exists (stopped when not running).
        created: bool,
    }

    struct Node {
        endpoint: Endpoint,
        truth: Arc<Mutex<Truth>>,
    }

    fn unreachable(endpoint: &Endpoint) -> RuntimeError {
        RuntimeError::Unreachable {
            endpoint: endpoint.to_string(),
            reason: "cut".into(),
        }
    }

    #[async_trait]
    impl Runtime for Node {
        fn endpoint(&self) -> &Endpoint {
            &self.endpoint
        }
        async fn ping(&self) -> Result<RuntimeInfo, RuntimeError> {
            Err(unreachable(&self.endpoint))
        }
        async fn list(&self) -> Result<Vec<ContainerState>, RuntimeError> {
            let t = self.truth.lock().unwrap();
            if !(t.link && t.powered) {
                return Err(unreachable(&self.endpoint));
            }
            Ok(t.created
                .then(|| ContainerState {
                    id: "1".into(),
                    name: "db-0".into(),
                    labels: Some(InstanceLabels {
                        cluster: "c".into(),
                        bundle: "db".into(),
                        index: 0,
                        spec_hash: "h".into(),
                        commit: "x".into(),
                    }),
                    status: if t.running {
                        ContainerStatus::Running
                    } else {
                        ContainerStatus::Exited
                    },
                    exit_code: None,
                    started_at: None,
                    finished_at: None,
                    image: "i".into(),
                    restart_policy: None,
                    addresses: Default::default(),
                })
                .into_iter()
                .collect())
        }
        async fn inspect(&self, _: &str) -> Result<Option<ContainerState>, RuntimeError> {
            Err(unreachable(&self.endpoint))
        }
        async fn ensure_network(&self, _: &NetworkSpec) -> Result<(), RuntimeError> {
            Err(unreachable(&self.endpoint))
        }
        async fn create(&self, _: &InstanceSpec) -> Result<String, RuntimeError> {
            Err(unreachable(&self.endpoint))
        }
        async fn start(&self, _: &str) -> Result<(), RuntimeError> {
            Err(unreachable(&self.endpoint))
        }
        async fn stop(&self, _: &str, _: Duration) -> Result<(), RuntimeError> {
            Err(unreachable(&self.endpoint))
        }
        async fn remove(&self, _: &str) -> Result<(), RuntimeError> {
            Err(unreachable(&self.endpoint))
        }
        async fn exec(
            &self,
            _: &str,
            _: &[String],
            _: &[(String, String)],
        ) -> Result<ExecOutcome, RuntimeError> {
            Err(unreachable(&self.endpoint))
        }
    }

    #[derive(Debug, Clone)]
    enum Event {
        /// Time passes (ms).
        Wait(u64),
        /// A reconcile pass observes.
        Observe,
        Cut,
        Heal,
        PowerOff,
        PowerOn,
        /// A fence run powers x off and records it.
        Fence,
        /// An operator confirms x off (only ever true when it is off).
        Confirm,
        /// The reconciler starts db-0 on x after a pass saw x online: write-ahead, then
        /// the call, which works only if x is reachable.
        Start,
        /// The reconciler process restarts: what it knew in memory is gone.
        Restart,
    }

    fn event() -> impl Strategy<Value = Event> {
        prop_oneof![
            3 => (1u64..4_000).prop_map(Event::Wait),
            4 => Just(Event::Observe),
            2 => Just(Event::Cut),
            2 => Just(Event::Heal),
            1 => Just(Event::PowerOff),
            2 => Just(Event::PowerOn),
            2 => Just(Event::Fence),
            1 => Just(Event::Confirm),
            3 => Just(Event::Start),
            2 => Just(Event::Restart),
        ]
    }

    struct Run {
        spec: SpecSet,
        truth: Arc<Mutex<Truth>>,
        runtimes: BTreeMap<Name, Arc<dyn Runtime>>,
        store: MemoryStore,
        observer: Observer,
        membership: Membership,
        unix_ms: i64,
        last: Option<NodeState>,
    }

    impl Run {
        fn restart(&mut self) {
            self.observer = Observer::default();
            self.membership = Membership::new(
                &self.spec,
                Instant::now(),
                u64::try_from(self.unix_ms / 1000).unwrap(),
            );
            self.last = None;
        }

        async fn step(&mut self, e: &Event) -> Result<(), TestCaseError> {
            match e {
                Event::Wait(ms) => {
                    tokio::time::advance(Duration::from_millis(*ms)).await;
                    self.unix_ms += i64::try_from(*ms).unwrap();
                }
                Event::Observe => return self.observe().await,
                Event::Cut => self.truth.lock().unwrap().link = false,
                Event::Heal => self.truth.lock().unwrap().link = true,
                Event::PowerOff | Event::Fence => {
                    {
                        let mut t = self.truth.lock().unwrap();
                        t.powered = false;
                        t.running = false;
                    }
                    if matches!(e, Event::Fence) {
                        self.store
                            .record_outcome(&FenceOutcome {
                                node: "x".into(),
                                action: FenceAction::Off,
                                started_unix_ms: self.unix_ms,
                                duration: Duration::ZERO,
                                result: Ok(1),
                            })
                            .await
                            .unwrap();
                    }
                }
                Event::PowerOn => self.truth.lock().unwrap().powered = true,
                Event::Confirm => {
                    if !self.truth.lock().unwrap().powered {
                        self.store
                            .record_manual(&ManualConfirmation {
                                node: "x".into(),
                                by: "op".into(),
                                at_unix_ms: self.unix_ms,
                                note: None,
                            })
                            .await
                            .unwrap();
                    }
                }
                Event::Start => {
                    if self.last == Some(NodeState::Online) {
                        let intent = ObservedInstance {
                            bundle: "db".parse().unwrap(),
                            index: 0,
                            spec_hash: "h".into(),
                            state: InstanceState::Running,
                            role: None,
                        };
                        self.store
                            .intend_start("x", &intent, self.unix_ms)
                            .await
                            .unwrap();
                        let mut t = self.truth.lock().unwrap();
                        if t.link && t.powered {
                            t.running = true;
                            t.created = true;
                        }
                    }
                }
                Event::Restart => self.restart(),
            }
            Ok(())
        }

        async fn observe(&mut self) -> Result<(), TestCaseError> {
            let empty = BTreeMap::new();
            let inputs = Inputs {
                spec: &self.spec,
                runtimes: &self.runtimes,
                failing: &empty,
                conflicts: &empty,
                timeout: Duration::from_secs(1),
                concurrency: 2,
            };
            let o = self
                .observer
                .observe(&inputs, &mut self.membership, &self.store, self.unix_ms)
                .await
                .unwrap();
            let state = o.observed.node_state("x");
            let t = self.truth.lock().unwrap();
            if state == NodeState::Fenced {
                prop_assert!(!t.running, "x is called fenced while db-0 runs on it");
            }
            if t.link && t.powered {
                prop_assert_eq!(state, NodeState::Online);
            }
            if state == NodeState::Lost && t.running {
                // Whatever it runs, the planner must know it may: db-0 is listed there.
                prop_assert!(
                    o.observed.nodes["x"].instances.iter().any(|i| i.index == 0),
                    "a lost node that runs db-0 does not hold it"
                );
            }
            self.last = Some(state);
            Ok(())
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]
        #[test]
        fn a_node_is_never_fenced_while_an_instance_started_since_runs_there(
            events in proptest::collection::vec(event(), 1..60)
        ) {
            let rt = crate::sim::paused_runtime();
            rt.block_on(async {
                let mut sources = crate::source::Sources::new();
                sources.add("c.yaml", SPECS.as_bytes().to_vec());
                let spec = crate::validate::validate(&sources).into_valid_set().unwrap();
                let truth = Arc::new(Mutex::new(Truth { link: true, powered: true, ..Truth::default() }));
                let node: Arc<dyn Runtime> = Arc::new(Node {
                    endpoint: "podman+unix:///x.sock".parse().unwrap(),
                    truth: truth.clone(),
                });
                let mut run = Run {
                    membership: Membership::new(&spec, Instant::now(), 1_700_000_000),
                    spec,
                    truth,
                    runtimes: BTreeMap::from([("x".parse().unwrap(), node)]),
                    store: MemoryStore::new(),
                    observer: Observer::default(),
                    unix_ms: 1_700_000_000_000,
                    last: None,
                };
                for e in &events {
                    run.step(e).await?;
                    if matches!(e, Event::Observe) {
                        // A second look after the dead time: a silent node is lost by then.
                        tokio::time::advance(Duration::from_secs(3)).await;
                        run.unix_ms += 3_000;
                        run.observe().await?;
                    }
                }
                Ok::<(), TestCaseError>(())
            })?;
        }
    }
}

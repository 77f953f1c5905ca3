//! The quorum gate: checked again right before every start and fence (invariant 2), on
//! probes no older than the probe interval.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

use futures_util::StreamExt;

use super::membership::Membership;
use crate::fence::{Clock, FenceAgent, FenceError, PowerState};
use crate::plan::{QuorumStatus, quorum};
use crate::runtime::Runtime;
use crate::spec::{Name, SpecSet};

/// Quorum, from fresh probes.
pub struct QuorumGate {
    spec: Arc<SpecSet>,
    runtimes: BTreeMap<Name, Arc<dyn Runtime>>,
    membership: Arc<Mutex<Membership>>,
    clock: Arc<dyn Clock>,
    max_age: Duration,
    probe_timeout: Duration,
    concurrency: usize,
    last: Mutex<Option<(Instant, Result<(), NoQuorum>)>>,
}

/// The gate's refusal: quorum was lost before acting (invariant 2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("quorum lost before acting: {}", .0.lacking())]
pub struct NoQuorum(pub QuorumStatus);

impl QuorumGate {
    /// A gate over `runtimes`, probing again when its last probe is older than `max_age`,
    /// at most `concurrency` nodes at a time.
    pub fn new(
        spec: Arc<SpecSet>,
        runtimes: BTreeMap<Name, Arc<dyn Runtime>>,
        membership: Arc<Mutex<Membership>>,
        clock: Arc<dyn Clock>,
        (max_age, probe_timeout): (Duration, Duration),
        concurrency: usize,
    ) -> QuorumGate {
        QuorumGate {
            spec,
            runtimes,
            membership,
            clock,
            max_age,
            probe_timeout,
            concurrency,
            last: Mutex::new(None),
        }
    }

    /// `Ok` when the nodes answering now, plus the reconciler's votes, are a strict
    /// majority (or the cluster says to ignore quorum); otherwise why not.
    pub async fn check(&self) -> Result<(), NoQuorum> {
        let mut last = self.last.lock().await;
        if let Some((at, result)) = last.as_ref()
            && at.elapsed() < self.max_age
        {
            return result.clone();
        }
        let result = self.probe().await;
        *last = Some((Instant::now(), result.clone()));
        result
    }

    /// Pings the nodes, at most `concurrency` at a time, and decides as soon as the
    /// answers so far make a majority: a node that does not answer costs the probe
    /// timeout only when the decision needs it. Only nodes that answered now count
    /// (invariant 2).
    async fn probe(&self) -> Result<(), NoQuorum> {
        let votes: BTreeMap<&Name, u32> = self
            .spec
            .cluster
            .nodes
            .iter()
            .map(|n| (&n.name, n.votes))
            .collect();
        let pings = pings(&self.runtimes, self.probe_timeout);
        let mut pending =
            futures_util::stream::iter(pings).buffer_unordered(self.concurrency.max(1));
        let mut answers = BTreeMap::new();
        let mut present = 0u32;
        let mut q = quorum::tally(&self.spec, present, None);
        while let Some((name, ok)) = pending.next().await {
            if ok {
                present = present.saturating_add(votes.get(&name).copied().unwrap_or(0));
            }
            answers.insert(name, ok);
            q = quorum::tally(&self.spec, present, None);
            if q.may_act() {
                break;
            }
        }
        let now = Instant::now();
        let wall = self.clock.now_unix_ms();
        let mut membership = self.membership.lock().await;
        for (name, ok) in &answers {
            membership.probe(name.as_str(), *ok, now, wall);
        }
        if q.may_act() {
            Ok(())
        } else {
            Err(NoQuorum(q))
        }
    }
}

/// One ping per node, each answered within `timeout` or counted as silent: (node,
/// answered). Nothing runs until the caller polls them (a bounded number at a time).
pub(super) fn pings(
    runtimes: &BTreeMap<Name, Arc<dyn Runtime>>,
    timeout: Duration,
) -> Vec<impl Future<Output = (Name, bool)> + Send + use<>> {
    runtimes
        .iter()
        .map(|(name, rt)| {
            let (name, rt) = (name.clone(), rt.clone());
            async move {
                let ok = matches!(tokio::time::timeout(timeout, rt.ping()).await, Ok(Ok(_)));
                (name, ok)
            }
        })
        .collect()
}

/// A fence device whose every power command first asks the gate (invariant 2): a fence
/// run retries for up to its timeout, and quorum may be lost in the meantime.
pub struct GatedAgent {
    inner: Box<dyn FenceAgent>,
    gate: Arc<QuorumGate>,
}

impl GatedAgent {
    /// `inner`, guarded by `gate`.
    pub fn new(inner: Box<dyn FenceAgent>, gate: Arc<QuorumGate>) -> GatedAgent {
        GatedAgent { inner, gate }
    }

    async fn guard(&self) -> Result<(), FenceError> {
        self.gate
            .check()
            .await
            .map_err(|e| FenceError::NoQuorum(e.to_string()))
    }
}

#[async_trait::async_trait]
impl FenceAgent for GatedAgent {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    async fn status(&self) -> Result<PowerState, FenceError> {
        self.inner.status().await
    }

    async fn off(&self) -> Result<PowerState, FenceError> {
        self.guard().await?;
        self.inner.off().await
    }

    async fn on(&self) -> Result<PowerState, FenceError> {
        self.guard().await?;
        self.inner.on().await
    }

    async fn reboot(&self) -> Result<PowerState, FenceError> {
        self.guard().await?;
        self.inner.reboot().await
    }
}

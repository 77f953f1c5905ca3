//! The quorum gate: checked again right before every start and fence (invariant 2), on
//! probes no older than the probe interval.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

use super::membership::{Liveness, Membership};
use crate::fence::Clock;
use crate::observed::{NodeState, Observed, ObservedNode};
use crate::plan::quorum;
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
    last: Mutex<Option<(Instant, Result<(), String>)>>,
}

impl QuorumGate {
    /// A gate over `runtimes`, probing again when its last probe is older than `max_age`.
    pub fn new(
        spec: Arc<SpecSet>,
        runtimes: BTreeMap<Name, Arc<dyn Runtime>>,
        membership: Arc<Mutex<Membership>>,
        clock: Arc<dyn Clock>,
        max_age: Duration,
        probe_timeout: Duration,
    ) -> QuorumGate {
        QuorumGate {
            spec,
            runtimes,
            membership,
            clock,
            max_age,
            probe_timeout,
            last: Mutex::new(None),
        }
    }

    /// `Ok` when the nodes answering now, plus the reconciler's votes, are a strict
    /// majority (or the cluster says to ignore quorum); otherwise why not.
    pub async fn check(&self) -> Result<(), String> {
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

    async fn probe(&self) -> Result<(), String> {
        let answers = futures_util::future::join_all(self.runtimes.iter().map(|(name, rt)| {
            let rt = rt.clone();
            async move {
                let ok = matches!(
                    tokio::time::timeout(self.probe_timeout, rt.ping()).await,
                    Ok(Ok(_))
                );
                (name.clone(), ok)
            }
        }))
        .await;
        let now = Instant::now();
        let wall = self.clock.now_unix_ms();
        let mut membership = self.membership.lock().await;
        let mut observed = Observed::default();
        for (name, ok) in answers {
            membership.probe(name.as_str(), ok, now, wall);
            let state = match membership.liveness(name.as_str(), now) {
                Liveness::Online => NodeState::Online,
                Liveness::Suspect | Liveness::Lost => NodeState::Lost,
            };
            observed.nodes.insert(
                name,
                ObservedNode {
                    state,
                    ..ObservedNode::default()
                },
            );
        }
        let q = quorum::status(&self.spec, &observed);
        if q.may_act() {
            Ok(())
        } else {
            Err(format!("quorum lost before acting: {}", q.lacking()))
        }
    }
}

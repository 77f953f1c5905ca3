//! Observing every node of a spec set once, into the planner's [`Observed`] model: what
//! `quorate observe` and `quorate plan --live` run.
//!
//! Each node's runtime is asked for its containers with one list call, all nodes in
//! parallel, each call bounded by the timeout. A one-shot observation has no dead time:
//! a node that does not answer is lost. The rest is [`assemble`], the rules `quorate run`
//! uses too: what the reconciler's store remembers of each node (or, without a store, a
//! previous snapshot), and the fence evidence, decide whether a silent node counts as
//! fenced and what it may still run (invariants 1 and 3).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures_util::future::join_all;

use super::from_spec::connection;
use super::{ContainerState, RuntimeError, connect};
use crate::fence::log::{FenceLogError, OffEvidence};
use crate::observed::assemble::{Assembled, Heard, NodeReport, Remembered, assemble};
use crate::observed::{NodeState, Observed};
use crate::reconcile::store::Store;
use crate::spec::{Name, SpecSet};

/// What one node's runtime answered.
#[derive(Debug)]
pub struct NodeObservation {
    /// The node.
    pub node: Name,
    /// Its containers of this cluster, or why it could not be asked.
    pub result: Result<Vec<ContainerState>, RuntimeError>,
    /// How long it took to answer or fail.
    pub took: Duration,
}

/// Lists the containers of every node of `set`, in parallel, each node's call bounded
/// by `timeout`. Only containers labelled with the set's cluster count
/// ([`Connection::for_cluster`](super::Connection::for_cluster)). In node order.
pub async fn observe_nodes(set: &SpecSet, timeout: Duration) -> Vec<NodeObservation> {
    let cluster = set.cluster_name.as_str();
    join_all(set.cluster.nodes.iter().map(|node| async move {
        let start = Instant::now();
        let result = async {
            let conn = connection(node, timeout)?.for_cluster(cluster);
            connect(conn)?.list().await
        }
        .await;
        NodeObservation {
            node: node.name.clone(),
            result,
            took: start.elapsed(),
        }
    }))
    .await
}

/// What a one-shot observation knows besides the answers.
#[derive(Clone, Copy, Default)]
pub struct Memory<'a> {
    /// The reconciler's store (read only): contents, last-seen times, fence evidence,
    /// fail counts.
    pub store: Option<&'a dyn Store>,
    /// A previous snapshot: for nodes the store does not know, the instances last seen,
    /// and for every node its fail counts, standby and since when it is lost.
    pub previous: Option<&'a Observed>,
}

/// A one-shot observation.
pub struct Once {
    /// What every node answered, in node order.
    pub nodes: Vec<NodeObservation>,
    /// The fence evidence the store holds, by node.
    pub evidence: BTreeMap<Name, OffEvidence>,
    /// The assembled state.
    pub assembled: Assembled,
}

/// Observes every node of `set` once (each within `timeout`) and assembles the state at
/// `now_unix_ms` with what `memory` knows.
pub async fn observe_once(
    set: &SpecSet,
    timeout: Duration,
    memory: Memory<'_>,
    now_unix_ms: i64,
) -> Result<Once, FenceLogError> {
    let nodes = observe_nodes(set, timeout).await;
    let mut evidence = BTreeMap::new();
    let mut reports = Vec::with_capacity(nodes.len());
    for n in &nodes {
        let heard = match &n.result {
            Ok(containers) => Heard::Listed(containers.clone()),
            Err(_) => Heard::Lost,
        };
        let before = memory.previous.and_then(|p| p.nodes.get(&n.node));
        let mut report = NodeReport::new(n.node.clone(), heard);
        report.standby = before.is_some_and(|b| b.standby);
        report.since = before
            .filter(|b| b.state == NodeState::Lost && n.result.is_err())
            .and_then(|b| b.since);
        report.remembered = Remembered {
            contents: before.map(|b| b.instances.clone()),
            last_seen_unix_ms: None,
        };
        if let Some(store) = memory.store {
            let stored = store.remembered(n.node.as_str()).await?;
            if stored.contents.is_some() {
                report.remembered.contents = stored.contents;
            }
            report.remembered.last_seen_unix_ms = stored.last_seen_unix_ms;
            if let Some(e) = store.off_evidence(n.node.as_str()).await? {
                evidence.insert(n.node.clone(), e.clone());
                report.evidence = Some(e);
            }
        }
        reports.push(report);
    }
    let failures = match (memory.store, memory.previous) {
        (Some(store), _) => store.failures().await?,
        (None, Some(previous)) => previous_failures(previous),
        (None, None) => BTreeMap::new(),
    };
    let mut assembled = assemble(set, reports, &failures, now_unix_ms);
    assembled.observed.suspended = match (memory.store, memory.previous) {
        (Some(store), _) => store.suspended().await?,
        (None, Some(previous)) => previous.suspended.clone(),
        (None, None) => crate::observed::Suspended::default(),
    };
    if set.bundles.values().any(|b| b.promotable.is_some()) {
        let runtimes = online_runtimes(set, timeout, &assembled.observed);
        super::roles::ask(set, &mut assembled.observed, &runtimes).await;
    }
    Ok(Once {
        nodes,
        evidence,
        assembled,
    })
}

/// Drivers for the nodes of `observed` that answered, to ask roles through.
fn online_runtimes(
    set: &SpecSet,
    timeout: Duration,
    observed: &Observed,
) -> BTreeMap<Name, std::sync::Arc<dyn super::Runtime>> {
    let cluster = set.cluster_name.as_str();
    set.cluster
        .nodes
        .iter()
        .filter(|n| observed.node_state(n.name.as_str()) == NodeState::Online)
        .filter_map(|n| {
            let conn = connection(n, timeout).ok()?.for_cluster(cluster);
            Some((n.name.clone(), std::sync::Arc::from(connect(conn).ok()?)))
        })
        .collect()
}

/// The fail counts of a snapshot, by (node, instance).
fn previous_failures(previous: &Observed) -> BTreeMap<(String, String), crate::observed::Failures> {
    previous
        .nodes
        .iter()
        .flat_map(|(node, n)| {
            n.failures
                .iter()
                .map(move |(i, f)| ((node.to_string(), i.clone()), *f))
        })
        .collect()
}

//! One observation of the cluster for a reconcile pass: list every node's containers,
//! update membership, and put together the [`Observed`] state the planner reads.
//!
//! What cannot be seen is taken from the store, never assumed empty: a lost node holds
//! whatever was last listed there plus whatever was started there since (invariant 1).
//! A lost node never listed at all may hold any single-writer instance not running
//! elsewhere, so the planner fences it before starting one.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::membership::{Liveness, Membership};
use super::store::Store;
use crate::fence::log::OffEvidence;
use crate::observed::{InstanceState, NodeState, Observed, ObservedInstance, ObservedNode};
use crate::runtime::from_spec::observed_instances;
use crate::runtime::{ContainerState, Runtime};
use crate::spec::bundle::Recovery;
use crate::spec::{Name, SpecSet};

/// The outcome of observing.
pub struct Observation {
    /// The state for the planner.
    pub observed: Observed,
    /// Nodes still suspect: no decision until they answer or are lost.
    pub suspect: Vec<Name>,
}

/// Instances of `cluster` among `containers`, with the monitor's verdict: a running
/// instance whose check fails is `Failed`.
pub fn instances(
    cluster: &str,
    containers: &[ContainerState],
    failing: &BTreeSet<String>,
) -> Vec<ObservedInstance> {
    let ours: Vec<ContainerState> = containers
        .iter()
        .filter(|c| c.labels.as_ref().is_some_and(|l| l.cluster == cluster))
        .cloned()
        .collect();
    let mut found = observed_instances(&ours);
    for i in &mut found {
        if i.state == InstanceState::Running && failing.contains(&i.name()) {
            i.state = InstanceState::Failed;
        }
    }
    found
}

/// Lists every node (each within `timeout`, or the probe interval for a node that does
/// not answer the probes), updates `membership`, records exits as
/// failures and contents in `store`, and assembles the observed state.
#[allow(clippy::too_many_arguments)]
pub async fn observe(
    spec: &SpecSet,
    runtimes: &BTreeMap<Name, Arc<dyn Runtime>>,
    membership: &mut Membership,
    store: &dyn Store,
    failing: &BTreeMap<Name, BTreeSet<String>>,
    conflicts: &BTreeMap<Name, BTreeSet<String>>,
    timeout: Duration,
    now_unix_ms: i64,
) -> Observation {
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
    let listings = futures_util::future::join_all(spec.cluster.nodes.iter().map(|n| {
        let rt = runtimes.get(&n.name).cloned();
        let timeout = if membership.stopped_answering(n.name.as_str()) {
            probe_timeout
        } else {
            timeout
        };
        async move {
            let result = match rt {
                Some(rt) => tokio::time::timeout(timeout, rt.list())
                    .await
                    .ok()
                    .and_then(Result::ok),
                None => None,
            };
            (n.name.clone(), result)
        }
    }))
    .await;
    let now = Instant::now();
    let now_unix = u64::try_from(now_unix_ms / 1000).unwrap_or(0);
    let empty = BTreeSet::new();
    let mut observed = Observed {
        now: now_unix,
        ..Observed::default()
    };
    let mut suspect = Vec::new();
    let mut unknown_contents = Vec::new();
    for (name, listing) in listings {
        membership.probe(name.as_str(), listing.is_some(), now, now_unix_ms);
        let mut node = ObservedNode {
            since: membership.since_unix(name.as_str()),
            conflicts: conflicts
                .get(&name)
                .map(|c| c.iter().cloned().collect())
                .unwrap_or_default(),
            ..ObservedNode::default()
        };
        let previous = store.contents(name.as_str()).await.ok().flatten();
        match (listing, membership.liveness(name.as_str(), now)) {
            (Some(containers), _) => {
                let found = instances(
                    spec.cluster_name.as_str(),
                    &containers,
                    failing.get(&name).unwrap_or(&empty),
                );
                // A container that ran at the last look and has exited since failed
                // (counted unless its bundle's `onFail` is `ignore` or `block`).
                for i in found.iter().filter(|i| {
                    i.state == InstanceState::Stopped
                        && spec
                            .bundles
                            .get(&i.bundle)
                            .is_none_or(|b| b.monitor.on_fail.counts_failures())
                }) {
                    let ran = previous.iter().flatten().any(|p| {
                        p.bundle == i.bundle
                            && p.index == i.index
                            && p.state != InstanceState::Stopped
                    });
                    if ran {
                        let _ = store
                            .record_failure(name.as_str(), &i.name(), now_unix)
                            .await;
                    }
                }
                if previous.as_deref() != Some(found.as_slice()) {
                    let _ = store.set_contents(name.as_str(), &found).await;
                }
                node.state = NodeState::Online;
                node.instances = found;
            }
            (None, Liveness::Suspect | Liveness::Online) => {
                suspect.push(name.clone());
                node.instances = previous.unwrap_or_default();
            }
            (None, Liveness::Lost) => {
                let evidence = store.off_evidence(name.as_str()).await.ok().flatten();
                let seen = membership.last_seen_unix_ms(name.as_str());
                let off_since = match evidence {
                    Some(
                        OffEvidence::Fenced { at_unix_ms, .. }
                        | OffEvidence::Manual { at_unix_ms, .. },
                    ) => Some(at_unix_ms),
                    None => None,
                };
                if off_since.is_some_and(|at| seen.is_none_or(|s| at > s)) {
                    node.state = NodeState::Fenced;
                } else {
                    node.state = NodeState::Lost;
                    match previous {
                        Some(p) => node.instances = p,
                        None => unknown_contents.push(name.clone()),
                    }
                }
            }
        }
        observed.nodes.insert(name, node);
    }
    for ((node, instance), f) in store.failures().await.unwrap_or_default() {
        if let Ok(node) = node.parse::<Name>()
            && let Some(n) = observed.nodes.get_mut(&node)
        {
            n.failures.insert(instance, f);
        }
    }
    assume_anything_on(spec, &mut observed, &unknown_contents);
    Observation { observed, suspect }
}

/// A lost node whose contents were never listed may run any single-writer instance that
/// runs on no reachable node: list them there, so the planner fences before recovering.
fn assume_anything_on(spec: &SpecSet, observed: &mut Observed, nodes: &[Name]) {
    if nodes.is_empty() {
        return;
    }
    let running: BTreeSet<(Name, u32)> = observed
        .nodes
        .values()
        .filter(|n| n.state == NodeState::Online)
        .flat_map(|n| {
            n.instances
                .iter()
                .filter(|i| i.state != InstanceState::Stopped)
        })
        .map(|i| (i.bundle.clone(), i.index))
        .collect();
    let maybe: Vec<ObservedInstance> = spec
        .bundles
        .iter()
        .filter(|(_, b)| b.recovery == Recovery::Fence)
        .flat_map(|(name, b)| (0..b.replicas).map(move |i| (name.clone(), i)))
        .filter(|key| !running.contains(key))
        .map(|(bundle, index)| ObservedInstance {
            bundle,
            index,
            spec_hash: String::new(),
            state: InstanceState::Running,
        })
        .collect();
    for node in nodes {
        if let Some(n) = observed.nodes.get_mut(node) {
            n.instances = maybe.clone();
        }
    }
}

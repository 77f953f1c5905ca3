//! The observed state, read the way the planner needs it: every copy of every instance,
//! and what each node can be used for.

use std::collections::{BTreeMap, BTreeSet};

use super::HashMap;
use super::model::QuorumStatus;
use crate::observed::{InstanceState, NodeState, Observed, ObservedInstance};
use crate::spec::bundle::OnFail;
use crate::spec::cluster::NodeSpec;
use crate::spec::{Name, SpecSet};

/// Where a copy of an instance is, as far as safety is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whereabouts {
    /// On a node that answers: we know its state and can stop it.
    Reachable,
    /// On a lost node not confirmed off, or on a node this plan fences: it may still be
    /// running until that node is fenced (design invariant 3).
    Unknown,
    /// On a node fenced or confirmed off by hand: not running.
    Gone,
}

/// One copy of an instance on one node.
///
/// The instance's number and state are copied out of the snapshot: the planner asks
/// whether a copy runs several times for every instance it places, and with them here
/// the answer is in the bundle's one list of copies, without a read from the snapshot.
#[derive(Debug, Clone)]
pub struct Copy<'a> {
    /// The node.
    pub node: &'a Name,
    /// The node's number, its place in [`Current::nodes`]; `None` for a node the spec
    /// does not name. Placement asks where a copy is for every instance it places.
    pub at: Option<usize>,
    /// As observed.
    pub instance: &'a ObservedInstance,
    /// The instance's number, `instance.index`.
    pub index: u32,
    /// The container's state, `instance.state`.
    pub state: InstanceState,
    /// Whether it can be reached, may be running, or is surely off.
    pub whereabouts: Whereabouts,
}

impl Copy<'_> {
    /// Whether the container runs (reachable and running or failing its check).
    pub fn running(&self) -> bool {
        self.whereabouts == Whereabouts::Reachable && self.state != InstanceState::Stopped
    }

    /// Whether the container runs and reports itself promoted.
    pub fn runs_promoted(&self) -> bool {
        self.running() && self.instance.role.as_ref().is_some_and(|r| r.promoted)
    }

    /// Whether `onFail: block` holds this copy where it is: it runs and fails its check,
    /// so it is neither restarted, moved nor stopped until it passes again.
    pub fn held(&self, on_fail: OnFail) -> bool {
        on_fail == OnFail::Block && self.running() && self.state == InstanceState::Failed
    }
}

/// The copies of one instance after another, with its number, from copies ordered by
/// number (as [`Current::all_of`] gives them).
pub fn by_index<'c, 'a>(copies: &'c [Copy<'a>]) -> impl Iterator<Item = (u32, &'c [Copy<'a>])> {
    copies
        .chunk_by(|a, b| a.index == b.index)
        .filter_map(|c| Some((c.first()?.index, c)))
}

/// The copies of instance `index` among `all`, the copies of its bundle (as
/// [`Current::all_of`] gives them).
pub fn of_index<'c, 'a>(all: &'c [Copy<'a>], index: u32) -> &'c [Copy<'a>] {
    let from = all.partition_point(|c| c.index < index);
    let to = from + all[from..].partition_point(|c| c.index == index);
    &all[from..to]
}

/// The observed state indexed for planning.
pub struct Current<'a> {
    /// The spec's nodes in name order: a node's number is its place here, in every stage
    /// of placement.
    pub nodes: Vec<&'a NodeSpec>,
    /// Each node's number, by name.
    pub numbers: HashMap<&'a str, usize>,
    /// Copies by bundle, ordered by instance number and then node name: one list per
    /// bundle, looked up for every instance placed. [`Current::by_bundle`] walks them in
    /// bundle order, [`by_index`] one instance after another. The table holds its own
    /// copies of the names (short ones are written in the entry): a key borrowed from the
    /// snapshot would be read from there, far from the table, by every lookup.
    pub copies: HashMap<Name, Vec<Copy<'a>>>,
    /// Nodes that may receive instances: in the spec, online, not in standby, not fenced
    /// by this plan.
    pub usable: BTreeSet<&'a str>,
    /// Lost nodes not confirmed off, by name.
    pub lost: BTreeSet<&'a str>,
    /// Online nodes this plan fences because an instance on them fails its check with
    /// `onFail: fence`, with that reason. What runs there is recovered elsewhere after the
    /// fence, like a lost node's instances; the node is no candidate.
    pub failing: BTreeMap<&'a str, String>,
    /// Instance names that clash with an unmanaged container, per node.
    pub conflicts: BTreeMap<&'a str, BTreeSet<&'a str>>,
    /// Nodes with failures recorded, per instance name.
    pub failed_on: BTreeMap<&'a str, Vec<&'a Name>>,
    /// Lost nodes that cannot be fenced now, and why; every other lost node is fenced
    /// by the plan (invariants 2 and 3).
    pub unfenceable: BTreeMap<&'a str, String>,
}

impl<'a> Current<'a> {
    /// Indexes `observed` against `spec`, under `quorum`.
    pub fn new(spec: &'a SpecSet, observed: &'a Observed, quorum: &QuorumStatus) -> Current<'a> {
        let mut copies: HashMap<Name, Vec<Copy>> = HashMap::default();
        let mut lost = BTreeSet::new();
        let mut conflicts = BTreeMap::new();
        let mut failed_on: BTreeMap<&str, Vec<&Name>> = BTreeMap::new();
        let failing = failing_nodes(spec, observed, quorum);
        let mut nodes: Vec<&NodeSpec> = spec.cluster.nodes.iter().collect();
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        let numbers = super::positions(nodes.iter().map(|n| n.name.as_str()));
        for (name, node) in &observed.nodes {
            let at = numbers.get(name.as_str()).copied();
            let whereabouts = match node.state {
                NodeState::Online if failing.contains_key(name.as_str()) => Whereabouts::Unknown,
                NodeState::Online => Whereabouts::Reachable,
                NodeState::Fenced => Whereabouts::Gone,
                NodeState::Lost if observed.confirmed_off(name.as_str()) => Whereabouts::Gone,
                NodeState::Lost => {
                    lost.insert(name.as_str());
                    Whereabouts::Unknown
                }
            };
            for instance in &node.instances {
                let of_bundle = match copies.get_mut(instance.bundle.as_str()) {
                    Some(of_bundle) => of_bundle,
                    None => copies.entry(instance.bundle.clone()).or_default(),
                };
                of_bundle.push(Copy {
                    node: name,
                    at,
                    instance,
                    index: instance.index,
                    state: instance.state,
                    whereabouts,
                });
            }
            for instance in node.failures.keys() {
                failed_on.entry(instance.as_str()).or_default().push(name);
            }
            if !node.conflicts.is_empty() {
                conflicts.insert(
                    name.as_str(),
                    node.conflicts.iter().map(String::as_str).collect(),
                );
            }
        }
        // The nodes came in name order; a stable sort keeps it within each instance.
        for of_bundle in copies.values_mut() {
            of_bundle.sort_by_key(|c| c.index);
        }
        let usable = usable(spec, observed, &failing);
        let unfenceable = unfenceable(spec, observed, quorum, &lost);
        Current {
            nodes,
            numbers,
            copies,
            usable,
            lost,
            failing,
            conflicts,
            failed_on,
            unfenceable,
        }
    }

    /// Where a single-writer instance with `copies` must stay because a lost node that
    /// cannot be fenced may still run a copy of it: the reachable node it runs on, or else
    /// the lost node (`None` when it is free to be placed). Invariants 1 and 3: it may not
    /// start anywhere new until that node is fenced or confirmed off.
    pub fn frozen(&self, copies: &[Copy<'a>]) -> Option<&'a Name> {
        let stuck = copies.iter().find(|c| {
            c.whereabouts == Whereabouts::Unknown && self.unfenceable.contains_key(c.node.as_str())
        })?;
        Some(
            copies
                .iter()
                .find(|c| c.running())
                .map_or(stuck.node, |c| c.node),
        )
    }

    /// Every copy by bundle, the bundles in name order.
    pub fn by_bundle(&self) -> Vec<(&str, &[Copy<'a>])> {
        let mut bundles: Vec<_> = self
            .copies
            .iter()
            .map(|(b, c)| (b.as_str(), c.as_slice()))
            .collect();
        bundles.sort_unstable_by_key(|(b, _)| *b);
        bundles
    }

    /// The copies of every instance of `bundle`, ordered by instance number.
    pub fn all_of(&self, bundle: &str) -> &[Copy<'a>] {
        self.copies.get(bundle).map_or(&[], Vec::as_slice)
    }

    /// The copies of instance `index` of `bundle`.
    pub fn of(&self, bundle: &str, index: u32) -> &[Copy<'a>] {
        of_index(self.all_of(bundle), index)
    }
}

/// The nodes an instance may be placed on: in the spec, not on standby, not failing a
/// check with `onFail: fence`, and online when observed.
fn usable<'a>(
    spec: &'a SpecSet,
    observed: &Observed,
    failing: &BTreeMap<&str, String>,
) -> BTreeSet<&'a str> {
    let nodes = spec.cluster.nodes.iter();
    let usable = nodes.filter(|n| {
        let seen = observed.nodes.get(n.name.as_str());
        !n.standby
            && !failing.contains_key(n.name.as_str())
            && seen.is_none_or(|s| s.state == NodeState::Online && !s.standby)
    });
    usable.map(|n| n.name.as_str()).collect()
}

/// The `lost` nodes that cannot be fenced now, and why (invariants 2 and 3).
fn unfenceable<'a>(
    spec: &SpecSet,
    observed: &Observed,
    quorum: &QuorumStatus,
    lost: &BTreeSet<&'a str>,
) -> BTreeMap<&'a str, String> {
    let why = |node: &str| {
        spared_by_suspension(observed, node).or_else(|| unfenceable_because(spec, quorum, node))
    };
    lost.iter()
        .filter_map(|node| Some((*node, why(node)?)))
        .collect()
}

/// Why `node` cannot be fenced now (invariants 2 and 3), or `None` when it can: it is in
/// the spec, the cluster may act, fencing is enabled and a device covers it.
pub fn unfenceable_because(spec: &SpecSet, quorum: &QuorumStatus, node: &str) -> Option<String> {
    let covered = spec
        .fences
        .values()
        .any(|f| f.targets.iter().any(|t| t.as_str() == node));
    Some(if spec.cluster.node(node).is_none() {
        "it is not in the spec".to_owned()
    } else if !quorum.may_act() {
        quorum.lacking()
    } else if !spec.cluster.fencing.enabled {
        "fencing is disabled".to_owned()
    } else if !covered {
        "no fence device covers it".to_owned()
    } else {
        return None;
    })
}

/// Why a lost node is not fenced because of `quorate suspend`, or `None`: the cluster is
/// suspended (Pacemaker's maintenance mode neither recovers nor fences), or everything it
/// may run belongs to suspended bundles. Safe (invariants 1 and 3): a suspended instance
/// is never started elsewhere, so no copy of it can run twice while the node is not
/// fenced; any other instance on the node makes it fenced as before. A node nothing is
/// known to run on is fenced as before too.
fn spared_by_suspension(observed: &Observed, node: &str) -> Option<String> {
    let suspended = &observed.suspended;
    if let Some(why) = suspended.why_cluster() {
        return Some(format!("{why}: no node is fenced"));
    }
    let instances = &observed.nodes.get(node)?.instances;
    if instances.is_empty()
        || !instances
            .iter()
            .all(|i| suspended.covers(i.bundle.as_str()))
    {
        return None;
    }
    let bundles: BTreeSet<&str> = instances.iter().map(|i| i.bundle.as_str()).collect();
    let list: Vec<&str> = bundles.into_iter().collect();
    Some(format!(
        "everything it may run is suspended ({}): nothing is recovered from it",
        list.join(", ")
    ))
}

/// Online nodes with an instance the spec wants failing its check with `onFail: fence`,
/// that can be fenced now, with the reason (the first such instance). One that cannot be
/// fenced is left to the instance's own handling, which says why.
fn failing_nodes<'a>(
    spec: &SpecSet,
    observed: &'a Observed,
    quorum: &QuorumStatus,
) -> BTreeMap<&'a str, String> {
    observed
        .nodes
        .iter()
        .filter(|(_, n)| n.state == NodeState::Online)
        .filter_map(|(name, n)| {
            let failing = n.instances.iter().find(|i| {
                i.state == InstanceState::Failed
                    && !observed.suspended.covers(i.bundle.as_str())
                    && spec
                        .bundles
                        .get(&i.bundle)
                        .is_some_and(|b| b.monitor.on_fail == OnFail::Fence && i.index < b.replicas)
            })?;
            if unfenceable_because(spec, quorum, name.as_str()).is_some() {
                return None;
            }
            let why = format!("{} fails its check; onFail: fence", failing.name());
            Some((name.as_str(), why))
        })
        .collect()
}

/// Failures of instance `name` on `node` that still count at `observed.now`.
pub fn live_failures(observed: &Observed, node: &str, name: &str, timeout_secs: u64) -> u32 {
    observed
        .nodes
        .get(node)
        .and_then(|n| n.failures.get(name))
        .map_or(0, |f| f.live(observed.now, timeout_secs))
}

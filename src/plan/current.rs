//! The observed state, read the way the planner needs it: every copy of every instance,
//! and what each node can be used for.

use std::collections::{BTreeMap, BTreeSet};

use crate::observed::{InstanceState, NodeState, Observed, ObservedInstance};
use crate::spec::{Name, SpecSet};

/// Where a copy of an instance is, as far as safety is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whereabouts {
    /// On a node that answers: we know its state and can stop it.
    Reachable,
    /// On a lost node not confirmed off: it may still be running (design invariant 3).
    Unknown,
    /// On a node fenced or confirmed off by hand: not running.
    Gone,
}

/// One copy of an instance on one node.
#[derive(Debug, Clone)]
pub struct Copy<'a> {
    /// The node.
    pub node: &'a Name,
    /// As observed.
    pub instance: &'a ObservedInstance,
    /// Whether it can be reached, may be running, or is surely off.
    pub whereabouts: Whereabouts,
}

impl Copy<'_> {
    /// Whether the container runs (reachable and running or failing its check).
    pub fn running(&self) -> bool {
        self.whereabouts == Whereabouts::Reachable && self.instance.state != InstanceState::Stopped
    }
}

/// The observed state indexed for planning.
pub struct Current<'a> {
    /// Copies by bundle and index, in node-name order.
    pub copies: BTreeMap<&'a str, BTreeMap<u32, Vec<Copy<'a>>>>,
    /// Nodes that may receive instances: in the spec, online, not in standby.
    pub usable: BTreeSet<&'a str>,
    /// Lost nodes not confirmed off, by name.
    pub lost: BTreeSet<&'a str>,
    /// Instance names that clash with an unmanaged container, per node.
    pub conflicts: BTreeMap<&'a str, BTreeSet<&'a str>>,
    /// Nodes with failures recorded, per instance name.
    pub failed_on: BTreeMap<&'a str, Vec<&'a Name>>,
}

impl<'a> Current<'a> {
    /// Indexes `observed` against `spec`.
    pub fn new(spec: &'a SpecSet, observed: &'a Observed) -> Current<'a> {
        let mut copies: BTreeMap<&str, BTreeMap<u32, Vec<Copy>>> = BTreeMap::new();
        let mut lost = BTreeSet::new();
        let mut conflicts = BTreeMap::new();
        let mut failed_on: BTreeMap<&str, Vec<&Name>> = BTreeMap::new();
        for (name, node) in &observed.nodes {
            let whereabouts = match node.state {
                NodeState::Online => Whereabouts::Reachable,
                NodeState::Fenced => Whereabouts::Gone,
                NodeState::Lost if observed.confirmed_off(name.as_str()) => Whereabouts::Gone,
                NodeState::Lost => {
                    lost.insert(name.as_str());
                    Whereabouts::Unknown
                }
            };
            for instance in &node.instances {
                copies
                    .entry(instance.bundle.as_str())
                    .or_default()
                    .entry(instance.index)
                    .or_default()
                    .push(Copy {
                        node: name,
                        instance,
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
        let usable = spec
            .cluster
            .nodes
            .iter()
            .filter(|n| {
                let seen = observed.nodes.get(n.name.as_str());
                !n.standby && seen.is_none_or(|s| s.state == NodeState::Online && !s.standby)
            })
            .map(|n| n.name.as_str())
            .collect();
        Current {
            copies,
            usable,
            lost,
            conflicts,
            failed_on,
        }
    }

    /// The copies of instance `index` of `bundle`.
    pub fn of(&self, bundle: &str, index: u32) -> &[Copy<'a>] {
        self.copies
            .get(bundle)
            .and_then(|b| b.get(&index))
            .map_or(&[], Vec::as_slice)
    }
}

/// Failures of instance `name` on `node` that still count at `observed.now`.
pub fn live_failures(observed: &Observed, node: &str, name: &str, timeout_secs: u64) -> u32 {
    observed
        .nodes
        .get(node)
        .and_then(|n| n.failures.get(name))
        .map_or(0, |f| f.live(observed.now, timeout_secs))
}

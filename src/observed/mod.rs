//! What quorate observed of the cluster: nodes, the instances found on them, manual
//! fence confirmations. The planner's second input, next to the spec.
//!
//! The same model is produced by `quorate observe` from the live nodes and read from a
//! snapshot file ([`snapshot`]) so a plan can be computed without a cluster.

pub(crate) mod assemble;
pub mod snapshot;

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::spec::{Name, SpecSet};

/// Seconds since the Unix epoch. Observation stamps times; planning never reads a clock.
pub type Timestamp = u64;

/// Everything observed at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Observed {
    /// When the observation was made (Unix seconds); failure timeouts count from it.
    #[serde(default)]
    pub now: Timestamp,
    /// The reconciler's own votes, when they differ from the spec's `reconcilerVotes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconciler_votes: Option<u32>,
    /// Nodes by name. A spec node missing here counts as online and empty.
    #[serde(default)]
    pub nodes: BTreeMap<Name, ObservedNode>,
    /// Nodes an operator declared powered off by hand.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub confirmations: Vec<ManualConfirmation>,
}

/// One node as observed.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ObservedNode {
    /// Reachability.
    #[serde(default)]
    pub state: NodeState,
    /// Since when it is in that state (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Timestamp>,
    /// Put in standby by an operator (in addition to the spec's `standby`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub standby: bool,
    /// Instances found on the node; for a lost node, the last ones seen.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub instances: Vec<ObservedInstance>,
    /// Names of containers quorate does not manage that clash with an instance name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conflicts: Vec<String>,
    /// Failures counted on this node, by instance name. Kept when the container is gone,
    /// like Pacemaker's fail counts, until the failure timeout expires them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub failures: BTreeMap<String, Failures>,
}

/// Failures of one instance on one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Failures {
    /// How many.
    pub count: u32,
    /// When the last one happened (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<Timestamp>,
}

impl Failures {
    /// The failures that still count at `now`; a timeout of zero never expires them.
    pub fn live(&self, now: Timestamp, timeout_secs: u64) -> u32 {
        match self.last {
            Some(at) if timeout_secs > 0 && at.saturating_add(timeout_secs) <= now => 0,
            _ => self.count,
        }
    }
}

/// Whether a node answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum NodeState {
    /// Its runtime answers.
    #[default]
    Online,
    /// It stopped answering; what runs there is unknown.
    Lost,
    /// A fence device confirmed it powered off; nothing runs there.
    Fenced,
}

/// An instance found on a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ObservedInstance {
    /// The bundle (from the container's labels).
    pub bundle: Name,
    /// The instance number.
    pub index: u32,
    /// Hash of the spec the container was created from.
    #[serde(default)]
    pub spec_hash: String,
    /// Container state.
    #[serde(default)]
    pub state: InstanceState,
}

impl ObservedInstance {
    /// `<bundle>-<index>`.
    pub fn name(&self) -> String {
        crate::spec::bundle::instance_name(self.bundle.as_str(), self.index)
    }
}

/// State of an instance's container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum InstanceState {
    /// Running and, if it has a check, passing it.
    #[default]
    Running,
    /// Running but failing its check.
    Failed,
    /// Created or exited: not running.
    Stopped,
}

/// An operator's statement that a node is powered off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ManualConfirmation {
    /// The node.
    pub node: Name,
    /// Who confirmed it.
    pub by: String,
    /// When (Unix seconds).
    pub at: Timestamp,
}

impl Observed {
    /// A fresh cluster: every node of `spec` online and empty.
    pub fn fresh(spec: &SpecSet) -> Observed {
        Observed {
            nodes: spec
                .cluster
                .nodes
                .iter()
                .map(|n| (n.name.clone(), ObservedNode::default()))
                .collect(),
            ..Observed::default()
        }
    }

    /// The state of node `name`: as observed, or online when not listed.
    pub fn node_state(&self, name: &str) -> NodeState {
        self.nodes.get(name).map_or(NodeState::Online, |n| n.state)
    }

    /// Whether an operator confirmed `node` off after it was last seen lost.
    pub fn confirmed_off(&self, node: &str) -> bool {
        let since = self.nodes.get(node).and_then(|n| n.since).unwrap_or(0);
        self.confirmations
            .iter()
            .any(|c| c.node.as_str() == node && c.at >= since)
    }

    /// Marks `node` lost (a what-if: "what happens if it dies?"), keeping what runs on it
    /// as its last known instances.
    pub fn fail_node(&mut self, node: &Name) {
        let entry = self.nodes.entry(node.clone()).or_default();
        entry.state = NodeState::Lost;
        entry.since = Some(self.now);
    }
}

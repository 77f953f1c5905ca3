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
    #[serde(default, deserialize_with = "snapshot::distinct_keys")]
    pub nodes: BTreeMap<Name, ObservedNode>,
    /// Nodes an operator declared powered off by hand.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub confirmations: Vec<ManualConfirmation>,
    /// What an operator suspended (`quorate suspend`): observed and shown, never acted on.
    #[serde(default, skip_serializing_if = "Suspended::is_empty")]
    pub suspended: Suspended,
}

/// The longest reason kept for a suspension (bytes; a longer one is cut).
pub const MAX_SUSPEND_REASON: usize = 512;

/// The most bundles suspended at once (a store refuses one more).
pub const MAX_SUSPENDED_BUNDLES: usize = 10_000;

/// What is suspended (`quorate suspend`): the whole cluster (Pacemaker's
/// `maintenance-mode`) and single bundles (Pacemaker's `is-managed=false`). A suspended
/// bundle's instances are observed and shown but never started, stopped, moved or fenced
/// for; with the cluster suspended nothing is, and no node is fenced.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Suspended {
    /// The whole cluster, since when and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<Suspension>,
    /// Bundles by name, each since when and why.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "snapshot::distinct_keys"
    )]
    pub bundles: BTreeMap<String, Suspension>,
}

/// One suspension: when, and the operator's reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Suspension {
    /// When it was suspended (Unix ms).
    pub at_unix_ms: i64,
    /// Why, as the operator said (at most [`MAX_SUSPEND_REASON`] bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Suspension {
    /// A suspension at `at_unix_ms`, its reason on one line (control characters as
    /// spaces) and cut to [`MAX_SUSPEND_REASON`] bytes.
    pub fn new(at_unix_ms: i64, reason: Option<&str>) -> Suspension {
        Suspension {
            at_unix_ms,
            reason: reason.map(|r| {
                let mut r: String = r
                    .chars()
                    .map(|c| if c.is_control() { ' ' } else { c })
                    .collect();
                crate::state::cut(&mut r, MAX_SUSPEND_REASON);
                r
            }),
        }
    }

    /// The same, its reason within bounds (what every store writes).
    pub fn bounded(&self) -> Suspension {
        Suspension::new(self.at_unix_ms, self.reason.as_deref())
    }
}

impl Suspended {
    /// Nothing suspended.
    pub fn is_empty(&self) -> bool {
        self.cluster.is_none() && self.bundles.is_empty()
    }

    /// Whether `bundle` is left alone: the cluster or the bundle is suspended. The one
    /// test of suspension the planner makes.
    pub fn covers(&self, bundle: &str) -> bool {
        self.cluster.is_some() || self.bundles.contains_key(bundle)
    }

    /// Why `bundle` is not managed (`bundle db is suspended (reason)`), if it is not.
    pub fn why(&self, bundle: &str) -> Option<String> {
        if let Some(why) = self.why_cluster() {
            return Some(why);
        }
        let s = self.bundles.get(bundle)?;
        Some(with_reason(format!("bundle {bundle} is suspended"), s))
    }

    /// Why nothing is managed (`the cluster is suspended (reason)`), if the cluster is
    /// suspended.
    pub fn why_cluster(&self) -> Option<String> {
        let s = self.cluster.as_ref()?;
        Some(with_reason("the cluster is suspended".to_owned(), s))
    }
}

fn with_reason(what: String, s: &Suspension) -> String {
    match &s.reason {
        Some(r) => format!("{what} ({r})"),
        None => what,
    }
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
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "snapshot::distinct_keys"
    )]
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
    /// For a running instance of a promotable bundle: what its `role` command reported
    /// (not known when the command failed or was not run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
}

/// The role of an instance of a promotable bundle, as its container reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Role {
    /// Whether it is the primary.
    pub promoted: bool,
    /// For a replica, the host it follows, if it follows one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follows: Option<String>,
    /// Its promotion preference (higher wins), when the bundle asks for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preference: Option<i64>,
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

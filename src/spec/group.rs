//! `kind: Group`: bundles placed together on one node, started in list order and stopped
//! in reverse (Pacemaker's group). Validation expands it into colocations and orders
//! ([`crate::spec::expand`]); the planner reads a group only to place its members one
//! after another.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::values::Name;

/// The spec of a `Group`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GroupSpec {
    /// The member bundles, in start order: each runs on the node of the one before it and
    /// starts after it; a member that cannot run keeps the members after it from running.
    /// A bundle belongs to at most one group. Members share `replicas`; with more than one
    /// replica, each member has `replicasPerHost: 1`.
    pub bundles: Vec<Name>,
}

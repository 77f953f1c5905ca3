//! The spec model: what a spec set says the cluster should be.
//!
//! Plain data, deserialized from YAML by [`crate::load`] and checked by
//! [`crate::validate`]; the planner reads it. Field names in YAML are the camelCase forms
//! of the Rust names; the README lists every field.

pub mod bundle;
pub mod cluster;
pub mod constraint;
pub(crate) mod endpoint;
pub mod expand;
pub mod fence;
pub mod group;
pub(crate) mod values;

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use crate::secret::SecretRef;
pub use bundle::BundleSpec;
pub use cluster::ClusterSpec;
pub use constraint::ConstraintSpec;
pub use fence::FenceSpec;
pub use group::GroupSpec;
pub use values::{Duration, Name, Port, PortRange, Score};

/// The only `apiVersion` this version of quorate reads.
pub const API_VERSION: &str = "quorate.io/v1alpha1";

/// The kinds of document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Kind {
    /// The cluster: nodes, quorum, fencing, defaults.
    Cluster,
    /// A containerised service.
    Bundle,
    /// A fence device.
    Fence,
    /// A placement or ordering constraint.
    Constraint,
    /// Bundles placed together and started in order.
    Group,
}

impl Kind {
    /// Every kind, in the order documents are listed.
    pub const ALL: [Kind; 5] = [
        Kind::Cluster,
        Kind::Bundle,
        Kind::Fence,
        Kind::Constraint,
        Kind::Group,
    ];

    /// The kind as written in `kind:`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Cluster => "Cluster",
            Kind::Bundle => "Bundle",
            Kind::Fence => "Fence",
            Kind::Constraint => "Constraint",
            Kind::Group => "Group",
        }
    }

    /// The kind written `s`.
    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `metadata` of every document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Metadata {
    /// Unique name among the documents of the same kind.
    pub name: Name,
    /// Free-form labels, for people and tools; quorate ignores them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Free-form notes; quorate ignores them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// A whole document as written, used for the JSON Schema of each kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Document<S> {
    /// Always `quorate.io/v1alpha1`.
    pub api_version: String,
    /// The kind.
    pub kind: String,
    /// Name and notes.
    pub metadata: Metadata,
    /// The kind's spec.
    pub spec: S,
}

/// A complete, loaded spec set: one cluster and everything in it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SpecSet {
    /// The cluster's name (`metadata.name` of the Cluster document).
    pub cluster_name: Name,
    /// The cluster.
    pub cluster: ClusterSpec,
    /// Bundles by name.
    pub bundles: BTreeMap<Name, BundleSpec>,
    /// Fence devices by name.
    pub fences: BTreeMap<Name, FenceSpec>,
    /// Constraints by name. In a validated set, groups and resource sets are expanded
    /// into pairs of bundles ([`expand`]).
    pub constraints: BTreeMap<Name, ConstraintSpec>,
    /// Groups by name.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub groups: BTreeMap<Name, GroupSpec>,
}

/// `map` rebuilt from its own entries, in key order: every leaf full and allocated one
/// after another. A map built document by document, in the order of the files, has its
/// leaves about half full and spread among what decoding allocated in between; checking
/// and planning walk the bundles and constraints of a set some twenty times, and at
/// thousands of bundles those walks cost mostly the cache misses of reaching each leaf.
/// The entries are moved, not copied, and already sorted: one pass.
pub(crate) fn packed<K: Ord, V>(map: BTreeMap<K, V>) -> BTreeMap<K, V> {
    map.into_iter().collect()
}

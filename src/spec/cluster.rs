//! `kind: Cluster`: the nodes, quorum, fencing and defaults of one cluster.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::endpoint::Endpoint;
use super::values::{Duration, Name, Score};

/// The spec of the one `Cluster` document of a spec set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClusterSpec {
    /// The machines that run containers.
    pub nodes: Vec<NodeSpec>,
    /// How many votes make quorum, and what to do without it.
    #[serde(default)]
    pub quorum: QuorumSpec,
    /// Whether and how lost nodes are fenced.
    #[serde(default)]
    pub fencing: FencingSpec,
    /// Defaults for every bundle.
    #[serde(default)]
    pub defaults: Defaults,
    /// How node liveness is detected.
    #[serde(default)]
    pub membership: MembershipSpec,
    /// Runtime networks that give instances stable addresses (`ipRangeStart`).
    #[serde(default)]
    pub networks: Vec<NetworkSpec>,
    /// Whether placement counts node `capacity` against bundle `needs`, and how it
    /// breaks ties (Pacemaker's `placement-strategy`).
    #[serde(default)]
    pub placement_strategy: PlacementStrategy,
}

/// How placement treats capacity (Pacemaker's `placement-strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub enum PlacementStrategy {
    /// Capacity and needs are ignored; ties go to the node with the fewest instances
    /// (the default).
    #[default]
    Default,
    /// A node only takes an instance whose needs fit in its free capacity; ties as
    /// `default`.
    Utilization,
    /// As `utilization`; ties go to the node with the most free capacity.
    Balanced,
    /// As `utilization`; ties go to the first node by name, which fills few nodes.
    Minimal,
}

impl PlacementStrategy {
    /// Whether capacity limits placement (every strategy but `default`).
    pub fn enforces_capacity(self) -> bool {
        self != PlacementStrategy::Default
    }

    /// The strategy as written in a spec.
    pub fn as_str(self) -> &'static str {
        match self {
            PlacementStrategy::Default => "default",
            PlacementStrategy::Utilization => "utilization",
            PlacementStrategy::Balanced => "balanced",
            PlacementStrategy::Minimal => "minimal",
        }
    }
}

/// One node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NodeSpec {
    /// Unique node name.
    pub name: Name,
    /// The node's container runtime API, e.g. `podman+unix:///run/podman/podman.sock`.
    pub runtime: Endpoint,
    /// Allow plain, unauthenticated TCP to the runtime API (a lab on private addresses).
    #[serde(default)]
    pub insecure: bool,
    /// Client certificates for a `docker+tcp` endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsFiles>,
    /// SSH settings for a `+ssh` endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh: Option<SshSettings>,
    /// Votes this node contributes to quorum while it answers.
    #[serde(default = "one")]
    pub votes: u32,
    /// Free-form attributes for location rules (`rack: r1`).
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// A standby node runs nothing; its instances move away.
    #[serde(default)]
    pub standby: bool,
    /// What the node offers to the instances placed on it, by quantity (`cpu: 8`,
    /// `memory: 32768`): non-negative integers in units of the author's choosing, the same
    /// in every node and bundle. A quantity a node does not list is 0 there (Pacemaker's
    /// utilization). Only counted with a `placementStrategy` other than `default`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub capacity: BTreeMap<Name, u64>,
}

/// Client certificate files for Docker over TLS.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TlsFiles {
    /// CA certificate that signed the daemon's certificate.
    pub ca_file: PathBuf,
    /// Client certificate.
    pub cert_file: PathBuf,
    /// Client private key.
    pub key_file: PathBuf,
}

/// SSH settings for a tunnel to the node's runtime socket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SshSettings {
    /// Private key used to log in.
    pub identity_file: PathBuf,
    /// known_hosts file the node's host key must be in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_hosts_file: Option<PathBuf>,
}

fn one() -> u32 {
    1
}

/// Quorum settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct QuorumSpec {
    /// Total votes of the cluster; default: the sum of node votes plus `reconcilerVotes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_votes: Option<u32>,
    /// Votes of the reconciler itself, a tie-breaker like corosync's qdevice.
    #[serde(default)]
    pub reconciler_votes: u32,
    /// What to do without quorum.
    #[serde(default)]
    pub no_quorum_policy: NoQuorumPolicy,
}

/// What the reconciler does while it lacks quorum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub enum NoQuorumPolicy {
    /// Leave everything as it is; start, stop and fence nothing (the default).
    #[default]
    Freeze,
    /// Stop what runs on the nodes it can reach.
    Stop,
    /// Act as if quorate. Unsafe: split brain can run an instance twice.
    Ignore,
}

/// Fencing settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FencingSpec {
    /// Whether lost nodes are fenced. Without fencing, instances with `recovery: fence`
    /// on a lost node stay blocked until an operator confirms the node is off.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Longest a whole fence operation (all levels, retries) may take.
    #[serde(default = "default_fence_timeout")]
    pub timeout: Duration,
}

impl Default for FencingSpec {
    fn default() -> Self {
        FencingSpec {
            enabled: true,
            timeout: default_fence_timeout(),
        }
    }
}

fn yes() -> bool {
    true
}

fn default_fence_timeout() -> Duration {
    Duration::from_secs(60)
}

/// Defaults applied to every bundle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Defaults {
    /// Score added to the node an instance runs on, so it does not move for small gains.
    #[serde(default = "default_stickiness")]
    pub stickiness: Score,
    /// Failures after which an instance moves away from a node.
    #[serde(default = "default_migration_threshold")]
    pub migration_threshold: u32,
    /// Failures older than this are forgotten; `0s` keeps them until cleared.
    #[serde(default = "default_failure_timeout")]
    pub failure_timeout: Duration,
    /// Longest time between two reconcile passes when nothing happens.
    #[serde(default = "default_recheck_interval")]
    pub recheck_interval: Duration,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            stickiness: default_stickiness(),
            migration_threshold: default_migration_threshold(),
            failure_timeout: default_failure_timeout(),
            recheck_interval: default_recheck_interval(),
        }
    }
}

fn default_stickiness() -> Score {
    Score::new(100)
}
fn default_migration_threshold() -> u32 {
    3
}
fn default_failure_timeout() -> Duration {
    Duration::from_secs(600)
}
fn default_recheck_interval() -> Duration {
    Duration::from_secs(60)
}

/// How node liveness is detected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MembershipSpec {
    /// How often each node's runtime is probed.
    #[serde(default = "default_probe_interval")]
    pub probe_interval: Duration,
    /// A node that has not answered for this long is lost.
    #[serde(default = "default_dead_time")]
    pub dead_time: Duration,
}

impl Default for MembershipSpec {
    fn default() -> Self {
        MembershipSpec {
            probe_interval: default_probe_interval(),
            dead_time: default_dead_time(),
        }
    }
}

fn default_probe_interval() -> Duration {
    Duration::from_millis(500)
}
fn default_dead_time() -> Duration {
    Duration::from_millis(2000)
}

/// A runtime network on every node, on which instances get fixed addresses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NetworkSpec {
    /// Network name in the runtime.
    pub name: Name,
    /// IPv4 subnet in CIDR form, e.g. `10.88.10.0/24`.
    pub subnet: Subnet,
}

/// An IPv4 subnet, `address/prefix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Subnet {
    /// Network address.
    pub addr: Ipv4Addr,
    /// Prefix length, 0-32.
    pub prefix: u8,
}

impl Subnet {
    /// The subnet as `ipnet` sees it (the prefix is at most 32 by construction).
    fn net(self) -> ipnet::Ipv4Net {
        ipnet::Ipv4Net::new_assert(self.addr, self.prefix.min(32))
    }

    /// Whether `ip` lies in the subnet.
    pub fn contains(self, ip: Ipv4Addr) -> bool {
        self.net().contains(&ip)
    }

    /// The same subnet written with its network address (host bits cleared):
    /// `10.88.10.5/24` gives `10.88.10.0/24`.
    pub fn network(self) -> Subnet {
        Subnet {
            addr: self.net().network(),
            prefix: self.prefix,
        }
    }

    /// The subnet's broadcast address (all host bits set).
    pub fn broadcast(self) -> Ipv4Addr {
        self.net().broadcast()
    }
}

impl std::str::FromStr for Subnet {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("invalid subnet `{s}`: write an IPv4 network like 10.88.10.0/24");
        let net: ipnet::Ipv4Net = s.parse().map_err(|_| bad())?;
        Ok(Subnet {
            addr: net.addr(),
            prefix: net.prefix_len(),
        })
    }
}

impl std::fmt::Display for Subnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Serialize for Subnet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Subnet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s: std::borrow::Cow<'de, str> = Deserialize::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Subnet {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Subnet".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string", "pattern": "^[0-9.]+/[0-9]{1,2}$"})
    }
}

impl ClusterSpec {
    /// The node called `name`.
    pub fn node(&self, name: &str) -> Option<&NodeSpec> {
        self.nodes.iter().find(|n| n.name.as_str() == name)
    }

    /// Expected votes: as configured, or every node's votes plus the reconciler's.
    pub fn expected_votes(&self) -> u32 {
        self.quorum.expected_votes.unwrap_or_else(|| {
            self.nodes
                .iter()
                .map(|n| n.votes)
                .fold(self.quorum.reconciler_votes, u32::saturating_add)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_contain_their_addresses() {
        let s: Subnet = "10.88.10.0/24".parse().unwrap();
        assert!(s.contains("10.88.10.200".parse().unwrap()));
        assert!(!s.contains("10.88.11.1".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Subnet>().is_err());
        let all: Subnet = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("1.2.3.4".parse().unwrap()));
    }

    #[test]
    fn the_network_address_clears_the_host_bits() {
        let net = |s: &str| s.parse::<Subnet>().unwrap().network().to_string();
        assert_eq!(net("10.88.10.5/24"), "10.88.10.0/24");
        assert_eq!(net("10.88.10.0/24"), "10.88.10.0/24");
        assert_eq!(net("10.88.10.5/32"), "10.88.10.5/32");
        assert_eq!(net("10.88.10.5/0"), "0.0.0.0/0");
        assert_eq!(net("172.16.200.1/12"), "172.16.0.0/12");
        let bcast = |s: &str| s.parse::<Subnet>().unwrap().broadcast().to_string();
        assert_eq!(bcast("10.88.10.5/24"), "10.88.10.255");
        assert_eq!(bcast("0.0.0.0/0"), "255.255.255.255");
        assert_eq!(bcast("10.0.0.7/32"), "10.0.0.7");
    }
}

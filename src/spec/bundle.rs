//! `kind: Bundle`: a containerised service with a number of instances `<bundle>-<i>`,
//! modelled on Pacemaker's bundle resource.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use super::cluster::Defaults;
use super::values::{Duration, Name, Port, PortRange, Score};
use crate::secret::SecretRef;

/// The spec of a `Bundle`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BundleSpec {
    /// Container image, e.g. `docker.io/library/postgres:16`.
    pub image: String,
    /// Number of instances, `<bundle>-0` to `<bundle>-<replicas-1>`.
    #[serde(default = "one")]
    pub replicas: u32,
    /// Most instances of this bundle on one node.
    #[serde(default = "one")]
    pub replicas_per_host: u32,
    /// Addresses and ports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<BundleNetwork>,
    /// Host directories mounted into the containers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub storage: Vec<StorageMapping>,
    /// Environment variables: plain values, or secrets by reference.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, EnvValue>,
    /// Command and arguments; default: the image's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// How instances are checked, and what a failure triggers.
    #[serde(default)]
    pub monitor: Monitor,
    /// How an instance on a lost node is recovered.
    #[serde(default)]
    pub recovery: Recovery,
    /// Bundles with higher priority are placed first.
    #[serde(default)]
    pub priority: i32,
    /// How changed instances are rolled out.
    #[serde(default)]
    pub update: UpdatePolicy,
    /// How long a stop waits for the container to exit before killing it.
    #[serde(default = "default_stop_timeout")]
    pub stop_timeout: Duration,
    /// This bundle's stickiness, instead of the cluster's `defaults.stickiness`
    /// (Pacemaker's `resource-stickiness` meta attribute).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stickiness: Option<Score>,
    /// This bundle's migration threshold, instead of `defaults.migrationThreshold`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migration_threshold: Option<u32>,
    /// This bundle's failure timeout, instead of `defaults.failureTimeout`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_timeout: Option<Duration>,
    /// What each instance takes of its node's `capacity`, by quantity (`memory: 4096`):
    /// non-negative integers (Pacemaker's utilization of a resource). Only counted with a
    /// cluster `placementStrategy` other than `default`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub needs: BTreeMap<Name, u64>,
    /// A primary and its replicas (Pacemaker's promotable bundle): how many instances
    /// may be promoted, and the commands run in a container to promote it, demote it,
    /// and ask its role and promotion preference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promotable: Option<Box<Promotable>>,
}

/// How a promotable bundle's instances are promoted and demoted. Each command runs in
/// the instance's container, within `timeout`; every instance starts unpromoted (its
/// command must not start it as a primary). The commands see the promoted instance in
/// `QUORATE_PROMOTED_INSTANCE`, `QUORATE_PROMOTED_NODE` and `QUORATE_PROMOTED_HOST` (the
/// host of that node's runtime endpoint), unset while there is none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Promotable {
    /// Most instances promoted at once (Pacemaker's `promoted-max`).
    #[serde(default = "one")]
    pub max_promoted: u32,
    /// Most instances promoted at once on one node (`promoted-node-max`).
    #[serde(default = "one")]
    pub max_promoted_per_node: u32,
    /// Makes the instance the primary (exit 0: done).
    pub promote: Vec<String>,
    /// Makes the instance a replica that follows the promoted instance; also run after
    /// every start of an unpromoted instance and whenever the promoted instance changes
    /// (exit 0: done; a failure is handled like a failed stop: the node is fenced).
    pub demote: Vec<String>,
    /// Prints the instance's role on its first line: `promoted`, or `unpromoted`
    /// followed by the host it follows, if any (`unpromoted 10.0.0.11`).
    pub role: Vec<String>,
    /// Prints an integer, higher for the better candidate (e.g. a replication offset);
    /// optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preference: Option<Vec<String>>,
    /// Longest each command may take.
    #[serde(default = "default_promotable_timeout")]
    pub timeout: Duration,
}

fn default_promotable_timeout() -> Duration {
    Duration::from_secs(10)
}

/// The stickiness and failure settings that hold for one bundle: its own where it gives
/// them, the cluster's defaults otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Added to the node an instance is on.
    pub stickiness: Score,
    /// Live failures on a node that ban the instance from it.
    pub migration_threshold: u32,
    /// Age after which a failure no longer counts, in seconds (0: never).
    pub failure_timeout_secs: u64,
}

impl Settings {
    /// The cluster's `defaults`, for a bundle that overrides none of them.
    pub fn of_cluster(defaults: &Defaults) -> Settings {
        Settings {
            stickiness: defaults.stickiness,
            migration_threshold: defaults.migration_threshold,
            failure_timeout_secs: defaults.failure_timeout.get().as_secs(),
        }
    }
}

impl BundleSpec {
    /// The settings of this bundle under the cluster's `defaults`: its own where given.
    pub fn settings(&self, defaults: &Defaults) -> Settings {
        let cluster = Settings::of_cluster(defaults);
        Settings {
            stickiness: self.stickiness.unwrap_or(cluster.stickiness),
            migration_threshold: self
                .migration_threshold
                .unwrap_or(cluster.migration_threshold),
            failure_timeout_secs: self
                .failure_timeout
                .map_or(cluster.failure_timeout_secs, |t| t.get().as_secs()),
        }
    }
}

fn one() -> u32 {
    1
}

fn default_stop_timeout() -> Duration {
    Duration::from_secs(10)
}

/// Addresses and ports of a bundle's instances.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BundleNetwork {
    /// Runtime network (from the cluster's `networks`) the instances join.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Name>,
    /// Address of instance 0; instance i gets this address plus i.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_range_start: Option<Ipv4Addr>,
    /// Published ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortMapping>,
}

/// A published port or port range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PortMapping {
    /// Optional identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Port on the host (and on the instance address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<Port>,
    /// Port inside the container; default: the same as `port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal_port: Option<Port>,
    /// A range `first-last` published one to one, instead of `port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<PortRange>,
    /// `tcp` (default) or `udp`.
    #[serde(default)]
    pub protocol: Protocol,
}

impl PortMapping {
    /// What the mapping publishes: first host port, first container port, and how many
    /// consecutive ports. `None` when it has neither `port` nor `range` (validation
    /// refuses that); `port` wins when both are given (refused too).
    pub fn published(&self) -> Option<(u16, u16, u16)> {
        match (self.port, self.range) {
            (Some(p), _) => Some((p.get(), self.internal_port.unwrap_or(p).get(), 1)),
            (None, Some(r)) => Some((r.first.get(), r.first.get(), r.len())),
            (None, None) => None,
        }
    }
}

/// Transport protocol of a port mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP.
    #[default]
    Tcp,
    /// UDP.
    Udp,
}

/// A host directory mounted into the containers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StorageMapping {
    /// Optional identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// One host directory shared by every instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_dir: Option<PathBuf>,
    /// A root under which each instance gets its own `<root>/<bundle>-<i>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_dir_root: Option<PathBuf>,
    /// Where it appears in the container (absolute).
    pub target_dir: PathBuf,
    /// Mount options: `rw` (default) or `ro`, optionally with more, comma-separated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<String>,
}

impl StorageMapping {
    /// Whether the mount is read-only.
    pub fn read_only(&self) -> bool {
        self.options
            .as_deref()
            .is_some_and(|o| o.split(',').any(|x| x.trim() == "ro"))
    }

    /// The mount options besides `rw` and `ro`, in the order written.
    pub fn extra_options(&self) -> Vec<&str> {
        self.options
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty() && *o != "rw" && *o != "ro")
            .collect()
    }

    /// The host directory of instance `instance` (`<bundle>-<i>`): `sourceDir`, or
    /// `<sourceDirRoot>/<instance>`; `None` when neither is given (validation refuses that).
    pub fn host_dir(&self, instance: &str) -> Option<PathBuf> {
        match (&self.source_dir, &self.source_dir_root) {
            (Some(dir), _) => Some(dir.clone()),
            (None, Some(root)) => Some(root.join(instance)),
            (None, None) => None,
        }
    }
}

/// An environment value: plain text, or a secret by reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum EnvValue {
    /// Plain text (numbers and booleans are taken as written).
    Plain(String),
    /// A secret read at start, never logged.
    Secret(SecretRef),
}

impl<'de> Deserialize<'de> for EnvValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = EnvValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a value, or `fromEnv:`/`fromFile:` for a secret")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<EnvValue, E> {
                Ok(EnvValue::Plain(v.to_owned()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<EnvValue, E> {
                Ok(EnvValue::Plain(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<EnvValue, E> {
                Ok(EnvValue::Plain(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<EnvValue, E> {
                Ok(EnvValue::Plain(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<EnvValue, E> {
                Ok(EnvValue::Plain(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, m: A) -> Result<EnvValue, A::Error> {
                SecretRef::deserialize(de::value::MapAccessDeserializer::new(m))
                    .map(EnvValue::Secret)
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for EnvValue {
    fn schema_name() -> Cow<'static, str> {
        "EnvValue".into()
    }
    fn json_schema(g: &mut SchemaGenerator) -> Schema {
        let secret = g.subschema_for::<SecretRef>();
        json_schema!({
            "anyOf": [{"type": ["string", "number", "boolean"]}, secret]
        })
    }
}

/// How instances are checked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Monitor {
    /// Time between checks.
    #[serde(default = "default_interval")]
    pub interval: Duration,
    /// Longest a check may take before it counts as failed.
    #[serde(default = "default_timeout")]
    pub timeout: Duration,
    /// What a failed check or an exit triggers.
    #[serde(default)]
    pub on_fail: OnFail,
    /// A check beyond "the container runs".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<Check>,
}

impl Default for Monitor {
    fn default() -> Self {
        Monitor {
            interval: default_interval(),
            timeout: default_timeout(),
            on_fail: OnFail::default(),
            check: None,
        }
    }
}

fn default_interval() -> Duration {
    Duration::from_secs(10)
}
fn default_timeout() -> Duration {
    Duration::from_secs(5)
}

/// What a monitor failure triggers (Pacemaker's `on-fail`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub enum OnFail {
    /// Log it, do nothing: the instance stays and runs, and the failure does not count
    /// towards the migration threshold.
    Ignore,
    /// Leave the instance alone and report it blocked until it passes its check again;
    /// the failure does not count towards the migration threshold.
    Block,
    /// Stop the instance and leave it stopped.
    Stop,
    /// Restart in place until the migration threshold, then move (the default).
    #[default]
    Restart,
    /// Fence the node it runs on.
    Fence,
}

impl OnFail {
    /// Whether a failure counts towards `migrationThreshold`: not for `ignore` and
    /// `block`, which leave the instance where it is, so no count may move it.
    pub fn counts_failures(self) -> bool {
        !matches!(self, OnFail::Ignore | OnFail::Block)
    }
}

/// A health check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub enum Check {
    /// Run a command in the container; exit 0 is healthy.
    Exec {
        /// Command and arguments.
        command: Vec<String>,
    },
    /// Open a TCP connection to the instance.
    Tcp {
        /// Container port.
        port: Port,
    },
    /// An HTTP GET to the instance.
    Http {
        /// Container port.
        port: Port,
        /// Request path.
        #[serde(default = "root_path")]
        path: String,
        /// Status that counts as healthy; default: any 2xx or 3xx.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expect_status: Option<u16>,
    },
}

fn root_path() -> String {
    "/".to_owned()
}

/// How an instance on a lost node is recovered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub enum Recovery {
    /// Single writer: fence the node, confirm it is off, then start elsewhere (default).
    #[default]
    Fence,
    /// Stateless: start elsewhere at once.
    Restart,
}

/// Rollout of changed instances.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UpdatePolicy {
    /// Most instances of the bundle restarted at once for a spec change.
    #[serde(default = "one")]
    pub max_parallel: u32,
}

impl Default for UpdatePolicy {
    fn default() -> Self {
        UpdatePolicy { max_parallel: 1 }
    }
}

/// The address of instance `index` when the bundle has `ipRangeStart`.
pub fn instance_ip(start: Ipv4Addr, index: u32) -> Option<Ipv4Addr> {
    u32::from(start).checked_add(index).map(Ipv4Addr::from)
}

/// The name of instance `index` of `bundle`.
pub fn instance_name(bundle: &str, index: u32) -> String {
    // Without the formatting machinery: a plan names every instance, some many times.
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(index);
    let mut name = String::with_capacity(bundle.len() + 1 + digits.len());
    name.push_str(bundle);
    name.push('-');
    name.push_str(digits);
    name
}

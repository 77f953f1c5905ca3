//! A bundle instance as quorate asks a runtime to run it (runtime-neutral: the Podman
//! and Docker drivers translate it).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use zeroize::Zeroizing;

pub use crate::spec::bundle::Protocol;
use crate::spec::values::PortRange;

/// Label keys quorate puts on every container it creates.
pub mod label {
    /// Always `quorate` on containers quorate manages; nothing else is touched.
    pub const MANAGED_BY: &str = "io.quorate.managed-by";
    /// Value of [`MANAGED_BY`].
    pub const MANAGED_BY_VALUE: &str = "quorate";
    /// Cluster name.
    pub const CLUSTER: &str = "io.quorate.cluster";
    /// Bundle name.
    pub const BUNDLE: &str = "io.quorate.bundle";
    /// Instance index within the bundle.
    pub const INSTANCE: &str = "io.quorate.instance";
    /// Hash of the bundle spec the container was created from.
    pub const SPEC_HASH: &str = "io.quorate.spec-hash";
    /// Git commit the spec came from.
    pub const COMMIT: &str = "io.quorate.commit";
}

/// The identity quorate writes into a container's labels and reads back when observing.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct InstanceLabels {
    /// Cluster name.
    pub cluster: String,
    /// Bundle name.
    pub bundle: String,
    /// Instance index (`<bundle>-<index>`).
    pub index: u32,
    /// Hash of the bundle spec.
    pub spec_hash: String,
    /// Git commit of the spec.
    pub commit: String,
}

impl InstanceLabels {
    /// The container name: `<bundle>-<index>`.
    pub fn instance_name(&self) -> String {
        format!("{}-{}", self.bundle, self.index)
    }

    /// The labels as a runtime label map, including `managed-by`.
    pub fn to_map(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (label::MANAGED_BY.into(), label::MANAGED_BY_VALUE.into()),
            (label::CLUSTER.into(), self.cluster.clone()),
            (label::BUNDLE.into(), self.bundle.clone()),
            (label::INSTANCE.into(), self.index.to_string()),
            (label::SPEC_HASH.into(), self.spec_hash.clone()),
            (label::COMMIT.into(), self.commit.clone()),
        ])
    }

    /// Parses labels back. `None` unless the container is managed by quorate and every
    /// label is present and well formed.
    pub fn from_map(labels: &HashMap<String, String>) -> Option<InstanceLabels> {
        if labels.get(label::MANAGED_BY).map(String::as_str) != Some(label::MANAGED_BY_VALUE) {
            return None;
        }
        Some(InstanceLabels {
            cluster: labels.get(label::CLUSTER)?.clone(),
            bundle: labels.get(label::BUNDLE)?.clone(),
            index: labels.get(label::INSTANCE)?.parse().ok()?,
            spec_hash: labels.get(label::SPEC_HASH)?.clone(),
            commit: labels.get(label::COMMIT)?.clone(),
        })
    }

    /// True when the map carries quorate's `managed-by` label (even if others are broken).
    pub fn is_managed(labels: &HashMap<String, String>) -> bool {
        labels.get(label::MANAGED_BY).map(String::as_str) == Some(label::MANAGED_BY_VALUE)
    }
}

/// A secret string: never shown by `Debug` or `Display` (design invariant 7), and its
/// memory is zeroed when dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(Zeroizing<String>);

impl SecretValue {
    /// Wraps a resolved secret.
    pub fn new(value: impl Into<String>) -> SecretValue {
        SecretValue(Zeroizing::new(value.into()))
    }

    /// The plain value, for handing to the runtime only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// An environment value: plain, or a secret resolved by the caller at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvValue {
    /// Shown in logs and plans.
    Plain(String),
    /// Never shown.
    Secret(SecretValue),
}

impl EnvValue {
    /// The value to hand to the runtime.
    pub fn expose(&self) -> &str {
        match self {
            EnvValue::Plain(v) => v,
            EnvValue::Secret(s) => s.expose(),
        }
    }
}

/// A published port range: host ports `host_port..host_port+count` go to container ports
/// `container_port..container_port+count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortSpec {
    /// Host address to bind (all addresses when `None`).
    pub host_ip: Option<IpAddr>,
    /// First host port.
    pub host_port: u16,
    /// First container port.
    pub container_port: u16,
    /// Number of consecutive ports (at least 1).
    pub count: u16,
    /// TCP or UDP.
    pub protocol: Protocol,
}

impl PortSpec {
    /// A single TCP port mapping (`port`, with `internalPort` defaulting to `port`).
    pub fn single(port: u16, internal_port: Option<u16>) -> PortSpec {
        PortSpec {
            host_ip: None,
            host_port: port,
            container_port: internal_port.unwrap_or(port),
            count: 1,
            protocol: Protocol::Tcp,
        }
    }

    /// A TCP `range` mapping: the same ports on host and container.
    pub fn from_range(range: PortRange) -> PortSpec {
        PortSpec {
            host_ip: None,
            host_port: range.first.get(),
            container_port: range.first.get(),
            count: range.len(),
            protocol: Protocol::Tcp,
        }
    }

    /// A TCP `range` mapping written `"first-last"`.
    pub fn range(text: &str) -> Result<PortSpec, String> {
        text.parse().map(PortSpec::from_range)
    }

    /// The same mapping for `protocol`.
    pub fn with_protocol(self, protocol: Protocol) -> PortSpec {
        PortSpec { protocol, ..self }
    }

    /// The protocol as the runtimes write it: `tcp` or `udp`.
    pub fn protocol_name(&self) -> &'static str {
        match self.protocol {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }

    /// Each (host port, container port) pair.
    pub fn pairs(&self) -> impl Iterator<Item = (u16, u16)> + '_ {
        (0..self.count).map(move |i| {
            (
                self.host_port.saturating_add(i),
                self.container_port.saturating_add(i),
            )
        })
    }
}

/// Where a storage mapping's host directory comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountSource {
    /// A fixed host directory (`sourceDir`), used as it is.
    Fixed(PathBuf),
    /// `sourceDirRoot`: each instance gets `<root>/<bundle>-<i>`, created when missing.
    PerInstance(PathBuf),
}

/// A storage mapping (bind mount).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountSpec {
    /// Host side.
    pub source: MountSource,
    /// Path in the container.
    pub target: PathBuf,
    /// `ro` when true, `rw` otherwise.
    pub read_only: bool,
    /// Further mount options from the spec besides `rw`/`ro` (`z`, `nosuid`, `rshared`...),
    /// handed to the runtime as they are.
    pub options: Vec<String>,
}

impl MountSpec {
    /// The host directory for the given instance name.
    pub fn host_path(&self, instance_name: &str) -> PathBuf {
        match &self.source {
            MountSource::Fixed(p) => p.clone(),
            MountSource::PerInstance(root) => root.join(instance_name),
        }
    }

    /// The per-instance directory to create, if this mapping has one.
    pub fn dir_to_create(&self, instance_name: &str) -> Option<PathBuf> {
        match &self.source {
            MountSource::Fixed(_) => None,
            MountSource::PerInstance(root) => Some(root.join(instance_name)),
        }
    }
}

/// An IPv4 or IPv6 subnet in CIDR form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    /// Network address.
    pub addr: IpAddr,
    /// Prefix length.
    pub prefix: u8,
}

impl FromStr for Subnet {
    type Err = String;
    fn from_str(s: &str) -> Result<Subnet, String> {
        let net: ipnet::IpNet = s
            .parse()
            .map_err(|_| format!("`{s}` is not a subnet in CIDR form"))?;
        Ok(Subnet {
            addr: net.addr(),
            prefix: net.prefix_len(),
        })
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// A named runtime network that instances get fixed addresses on. quorate creates it
/// (bridge driver, with this subnet and quorate's `managed-by` label) when it is missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkSpec {
    /// Network name on the node.
    pub name: String,
    /// Subnet the instance addresses come from.
    pub subnet: Subnet,
}

/// Attachment of an instance to a runtime network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkAttachment {
    /// Network name (see [`NetworkSpec`]).
    pub network: String,
    /// The instance's stable address (computed by the caller from `ipRangeStart`).
    pub ip: Option<IpAddr>,
}

/// One bundle instance, exactly as the runtime should run it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceSpec {
    /// Identity; the container name is `labels.instance_name()`.
    pub labels: InstanceLabels,
    /// Image reference.
    pub image: String,
    /// Full command (argv); the image's default when empty.
    pub command: Vec<String>,
    /// Environment, in order.
    pub env: Vec<(String, EnvValue)>,
    /// Published ports.
    pub ports: Vec<PortSpec>,
    /// Storage mappings.
    pub mounts: Vec<MountSpec>,
    /// Network attachment (the runtime's default network when `None`).
    pub network: Option<NetworkAttachment>,
}

impl InstanceSpec {
    /// The container name `<bundle>-<i>`.
    pub fn name(&self) -> String {
        self.labels.instance_name()
    }

    /// `NAME=value` strings for the runtime (contains secret values: never log these).
    pub fn env_strings(&self) -> Vec<String> {
        self.env
            .iter()
            .map(|(k, v)| format!("{k}={}", v.expose()))
            .collect()
    }

    /// Replaces every secret value in `text` (say, an error from the runtime) by `<redacted>`.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for (_, v) in &self.env {
            if let EnvValue::Secret(s) = v
                && !s.expose().is_empty()
            {
                out = out.replace(s.expose(), "<redacted>");
            }
        }
        out
    }

    /// Host directories of per-instance mappings (to be created when missing).
    pub fn dirs_to_create(&self) -> Vec<PathBuf> {
        let name = self.name();
        self.mounts
            .iter()
            .filter_map(|m| m.dir_to_create(&name))
            .collect()
    }
}

/// Creates the host directories of per-instance storage mappings on this machine.
pub(crate) async fn create_dirs(dirs: &[PathBuf]) -> Result<(), (PathBuf, std::io::Error)> {
    for d in dirs {
        tokio::fs::create_dir_all(d)
            .await
            .map_err(|e| (d.clone(), e))?;
    }
    Ok(())
}

/// The path as a string for a runtime API (lossy on non-UTF-8 paths).
pub(crate) fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> InstanceLabels {
        InstanceLabels {
            cluster: "c1".into(),
            bundle: "db".into(),
            index: 2,
            spec_hash: "abc".into(),
            commit: "0123".into(),
        }
    }

    #[test]
    fn labels_round_trip() {
        let l = labels();
        assert_eq!(l.instance_name(), "db-2");
        let map: HashMap<_, _> = l.to_map().into_iter().collect();
        assert_eq!(InstanceLabels::from_map(&map), Some(l));
        let mut bad = map.clone();
        bad.insert(label::INSTANCE.into(), "x".into());
        assert_eq!(InstanceLabels::from_map(&bad), None);
        assert!(InstanceLabels::is_managed(&bad));
        bad.remove(label::MANAGED_BY);
        assert!(!InstanceLabels::is_managed(&bad));
    }

    #[test]
    fn secrets_are_redacted() {
        let s = SecretValue::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "<redacted> <redacted>");
        let spec = InstanceSpec {
            labels: labels(),
            image: "img".into(),
            command: vec![],
            env: vec![
                ("A".into(), EnvValue::Plain("1".into())),
                ("PW".into(), EnvValue::Secret(s)),
            ],
            ports: vec![],
            mounts: vec![],
            network: None,
        };
        assert!(!format!("{spec:?}").contains("hunter2"));
        assert_eq!(spec.env_strings(), vec!["A=1", "PW=hunter2"]);
        assert_eq!(spec.redact("bad value hunter2!"), "bad value <redacted>!");
    }

    #[test]
    fn ports_and_mounts() {
        let r = PortSpec::range("8000-8002").unwrap();
        assert_eq!(
            r.pairs().collect::<Vec<_>>(),
            vec![(8000, 8000), (8001, 8001), (8002, 8002)]
        );
        assert_eq!((r.count, r.protocol_name()), (3, "tcp"));
        assert!(PortSpec::range("9-8").is_err());
        assert!(PortSpec::range("80").is_err());
        assert!(PortSpec::range("0-2").is_err());
        let udp = PortSpec::single(8080, Some(80)).with_protocol(Protocol::Udp);
        assert_eq!(udp.pairs().collect::<Vec<_>>(), vec![(8080, 80)]);
        assert_eq!(udp.protocol_name(), "udp");
        let m = MountSpec {
            source: MountSource::PerInstance("/srv".into()),
            target: "/data".into(),
            read_only: false,
            options: vec![],
        };
        assert_eq!(m.host_path("db-2"), PathBuf::from("/srv/db-2"));
        assert_eq!(m.dir_to_create("db-2"), Some(PathBuf::from("/srv/db-2")));
    }

    #[test]
    fn subnets() {
        assert_eq!(
            "10.1.0.0/24".parse::<Subnet>().unwrap().to_string(),
            "10.1.0.0/24"
        );
        assert!("10.1.0.0/33".parse::<Subnet>().is_err());
    }
}

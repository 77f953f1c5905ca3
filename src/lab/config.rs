//! What a lab is called and where everything of it lives: names, addresses, ports and
//! paths, all derived from a [`LabConfig`] (pure; no I/O).
//!
//! For the defaults (`qlab`, 3 nodes, `10.77.0.0/24`, `/var/lib/quorate-lab`):
//!
//! | what | node i (1-based) |
//! |---|---|
//! | node name | `worker<i>` |
//! | network namespace | `qlab-worker<i>` |
//! | data address | `10.77.0.<10+i>` (the host side of the bridge is `10.77.0.1`) |
//! | veth, host side | `qlab-n<i>` on the bridge `qlab-br` (`eth0` in the namespace) |
//! | Podman API | `podman+tcp://10.77.0.<10+i>:8080` |
//! | BMC (`ipmi_sim`) | `127.77.0.<10+i>`, UDP port 623 |
//! | files | `/var/lib/quorate-lab/nodes/worker<i>/`, `.../bmc/worker<i>/` |

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::LabError;

/// Default lab directory.
pub const DEFAULT_DIR: &str = "/var/lib/quorate-lab";
/// Default lab name (the prefix of every interface and namespace it makes).
pub const DEFAULT_NAME: &str = "qlab";
/// Default number of nodes.
pub const DEFAULT_NODES: u32 = 3;
/// Default data subnet (a /24; the management addresses are `127.<b>.<c>.x` of it).
pub const DEFAULT_SUBNET: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 0);
/// Most nodes a lab can have (addresses `.11` to `.60`).
pub const MAX_NODES: u32 = 50;
/// TCP port of every node's Podman API, on the node's address.
pub const PODMAN_PORT: u16 = 8080;
/// UDP port of every BMC, on its management address.
pub const BMC_PORT: u16 = 623;
/// The BMC user name.
pub const BMC_USER: &str = "quorate";
/// The image (busybox and Redis) loaded on every node.
pub const IMAGE: &str = "localhost/quorate-lab:latest";
/// The runtime network the database bundle's fixed addresses are on (inside each node).
pub const INSTANCE_NETWORK: &str = "lab";
/// Its subnet (the same inside every node; nodes do not route to each other's).
pub const INSTANCE_SUBNET: &str = "10.89.0.0/24";
/// Address of `db-0` on [`INSTANCE_NETWORK`].
pub const DB_IP_START: Ipv4Addr = Ipv4Addr::new(10, 89, 0, 200);
/// Port the database answers on, published on its node's address.
pub const DB_PORT: u16 = 5432;
/// Port the web bundle is published on, on its node's address.
pub const WEB_PORT: u16 = 8000;

/// What `lab up` builds: a name, a node count, a directory, a subnet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabConfig {
    /// Prefix of interfaces and namespaces, and the cluster's name: 1 to 8 of `a-z0-9`,
    /// starting with a letter.
    pub name: String,
    /// Number of nodes, 1 to [`MAX_NODES`].
    pub nodes: u32,
    /// Where the lab keeps its files (absolute).
    pub dir: PathBuf,
    /// Network address of the data /24 (`a.b.c.0`).
    pub subnet: Ipv4Addr,
}

impl Default for LabConfig {
    fn default() -> Self {
        LabConfig {
            name: DEFAULT_NAME.to_owned(),
            nodes: DEFAULT_NODES,
            dir: PathBuf::from(DEFAULT_DIR),
            subnet: DEFAULT_SUBNET,
        }
    }
}

/// One node of a lab, with every name and address that belongs to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabNode {
    /// 1-based index.
    pub index: u32,
    /// Node name in the specs, `worker<i>`.
    pub name: String,
    /// Network namespace.
    pub netns: String,
    /// Host side of the node's veth (its "network cable").
    pub veth: String,
    /// The node's address on the data network.
    pub address: Ipv4Addr,
    /// The node's Podman endpoint for quorate.
    pub runtime: String,
    /// The BMC's management address (UDP port [`BMC_PORT`]).
    pub bmc_address: Ipv4Addr,
}

/// Parses `a.b.c.0` or `a.b.c.0/24`.
pub fn parse_subnet(s: &str) -> Result<Ipv4Addr, LabError> {
    let addr = s.strip_suffix("/24").unwrap_or(s);
    addr.parse::<Ipv4Addr>().map_err(|_| {
        LabError::Config(format!(
            "subnet `{s}`: write a /24 network such as 10.77.0.0/24"
        ))
    })
}

impl LabConfig {
    /// Checks the name, node count, directory and subnet.
    pub fn validate(&self) -> Result<(), LabError> {
        let bad = |m: String| Err(LabError::Config(m));
        let name_ok = (1..=8).contains(&self.name.len())
            && self.name.starts_with(|c: char| c.is_ascii_lowercase())
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        if !name_ok {
            return bad(format!(
                "lab name `{}`: use 1 to 8 of a-z and 0-9, starting with a letter \
                 (interface names are limited to 15 bytes)",
                self.name
            ));
        }
        if !(1..=MAX_NODES).contains(&self.nodes) {
            return bad(format!("{} nodes: a lab has 1 to {MAX_NODES}", self.nodes));
        }
        if !self.dir.is_absolute() {
            return bad(format!(
                "lab directory {}: give an absolute path",
                self.dir.display()
            ));
        }
        let [a, _, _, d] = self.subnet.octets();
        if d != 0 || a == 127 || a == 0 || a >= 224 {
            return bad(format!(
                "subnet {}: give the network address of a /24 outside 127/8, such as 10.77.0.0",
                self.subnet
            ));
        }
        Ok(())
    }

    /// Every node, in order.
    pub fn nodes(&self) -> Vec<LabNode> {
        (1..=self.nodes).map(|i| self.node_at(i)).collect()
    }

    /// The node called `name`, or [`LabError::UnknownNode`].
    pub fn node(&self, name: &str) -> Result<LabNode, LabError> {
        self.nodes()
            .into_iter()
            .find(|n| n.name == name)
            .ok_or_else(|| LabError::UnknownNode {
                node: name.to_owned(),
                known: self.nodes().into_iter().map(|n| n.name).collect(),
            })
    }

    fn node_at(&self, i: u32) -> LabNode {
        let [a, b, c, _] = self.subnet.octets();
        let host = u8::try_from(10 + i).unwrap_or(u8::MAX);
        let address = Ipv4Addr::new(a, b, c, host);
        LabNode {
            index: i,
            name: format!("worker{i}"),
            netns: format!("{}-worker{i}", self.name),
            veth: format!("{}-n{i}", self.name),
            address,
            runtime: format!("podman+tcp://{address}:{PODMAN_PORT}"),
            bmc_address: Ipv4Addr::new(127, b, c, host),
        }
    }

    /// The bridge every node's veth is attached to.
    pub fn bridge(&self) -> String {
        format!("{}-br", self.name)
    }

    /// The host's address on the bridge (`a.b.c.1`).
    pub fn host_address(&self) -> Ipv4Addr {
        let [a, b, c, _] = self.subnet.octets();
        Ipv4Addr::new(a, b, c, 1)
    }

    /// The cluster's name in the specs (the lab's name).
    pub fn cluster_name(&self) -> &str {
        &self.name
    }

    /// `lab.json`: what was made, read by every other lab command.
    pub fn state_file(&self) -> PathBuf {
        self.dir.join("lab.json")
    }

    /// The Podman settings every node's service runs with.
    pub fn containers_conf(&self) -> PathBuf {
        self.dir.join("containers.conf")
    }

    /// The directory of the lab's secrets (mode 0700): the `--secrets-dir` of the
    /// `quorate run` and `quorate fence` commands the lab suggests.
    pub fn secrets_dir(&self) -> PathBuf {
        self.dir.join("secrets")
    }

    /// The BMC password (mode 0600), referenced by the Fence specs.
    pub fn password_file(&self) -> PathBuf {
        self.secrets_dir().join("bmc-password")
    }

    /// The image's rootfs tar (busybox and Redis) imported on every node.
    pub fn image_tar(&self) -> PathBuf {
        self.dir.join("image.tar")
    }

    /// A node's own files: storage, service log, power state, cut marker.
    pub fn node_dir(&self, node: &LabNode) -> PathBuf {
        self.dir.join("nodes").join(&node.name)
    }

    /// A BMC's files: lan.conf, sim.emu, chassis script, state, log.
    pub fn bmc_dir(&self, node: &LabNode) -> PathBuf {
        self.dir.join("bmc").join(&node.name)
    }

    /// Where per-instance storage directories live (`<bundle>/<bundle>-<i>`).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The bare git repository `quorate run` can follow.
    pub fn repo_bare(&self) -> PathBuf {
        self.dir.join("repo.git")
    }

    /// A clone of it to edit specs in and push from.
    pub fn repo_work(&self) -> PathBuf {
        self.dir.join("repo")
    }

    /// The spec directory inside the work tree.
    pub fn specs_dir(&self) -> PathBuf {
        self.repo_work().join("specs")
    }

    /// A state directory for `quorate run` and `quorate fence` against this lab.
    pub fn reconciler_state_dir(&self) -> PathBuf {
        self.dir.join("state")
    }
}

/// `path` with a trailing `/`, so that a search for it in command lines does not also
/// match a sibling such as `worker10` for `worker1`.
pub(crate) fn dir_needle(path: &Path) -> String {
    let mut s = path.to_string_lossy().into_owned();
    if !s.ends_with('/') {
        s.push('/');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names_and_addresses() {
        let c = LabConfig::default();
        c.validate().unwrap();
        let n = c.node("worker2").unwrap();
        assert_eq!(n.netns, "qlab-worker2");
        assert_eq!(n.veth, "qlab-n2");
        assert_eq!(n.address, Ipv4Addr::new(10, 77, 0, 12));
        assert_eq!(n.runtime, "podman+tcp://10.77.0.12:8080");
        assert_eq!(n.bmc_address, Ipv4Addr::new(127, 77, 0, 12));
        assert_eq!(c.bridge(), "qlab-br");
        assert_eq!(c.host_address(), Ipv4Addr::new(10, 77, 0, 1));
        assert_eq!(
            c.node_dir(&n),
            PathBuf::from("/var/lib/quorate-lab/nodes/worker2")
        );
        assert!(matches!(
            c.node("worker4"),
            Err(LabError::UnknownNode { .. })
        ));
    }

    #[test]
    fn interface_names_fit_in_fifteen_bytes() {
        let c = LabConfig {
            name: "abcdefgh".into(),
            nodes: MAX_NODES,
            ..LabConfig::default()
        };
        c.validate().unwrap();
        for n in c.nodes() {
            assert!(n.veth.len() <= 15, "{}", n.veth);
        }
        assert!(c.bridge().len() <= 15);
        assert_eq!(c.nodes().last().unwrap().address.octets()[3], 60);
    }

    #[test]
    fn bad_configs_are_refused() {
        let ok = LabConfig::default();
        for bad in [
            LabConfig {
                name: "Qlab".into(),
                ..ok.clone()
            },
            LabConfig {
                name: "toolongname".into(),
                ..ok.clone()
            },
            LabConfig {
                name: "1lab".into(),
                ..ok.clone()
            },
            LabConfig {
                nodes: 0,
                ..ok.clone()
            },
            LabConfig {
                nodes: MAX_NODES + 1,
                ..ok.clone()
            },
            LabConfig {
                dir: "relative".into(),
                ..ok.clone()
            },
            LabConfig {
                subnet: Ipv4Addr::new(10, 77, 0, 5),
                ..ok.clone()
            },
            LabConfig {
                subnet: Ipv4Addr::new(127, 1, 0, 0),
                ..ok.clone()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn subnets_parse_with_or_without_the_prefix() {
        assert_eq!(
            parse_subnet("10.1.2.0/24").unwrap(),
            Ipv4Addr::new(10, 1, 2, 0)
        );
        assert_eq!(
            parse_subnet("10.1.2.0").unwrap(),
            Ipv4Addr::new(10, 1, 2, 0)
        );
        assert!(parse_subnet("10.1.2.0/16").is_err());
    }

    #[test]
    fn needles_end_with_a_slash() {
        assert_eq!(dir_needle(Path::new("/x/worker1")), "/x/worker1/");
        assert_eq!(dir_needle(Path::new("/x/worker1/")), "/x/worker1/");
    }
}

//! The lab's data network: a bridge in the host's namespace, and per node a network
//! namespace joined to it by a veth pair (the node's "cable"), all through `ip`.
//!
//! Taking the host side of a node's veth down cuts the node off from the host and from
//! every other node, while its BMC (on a loopback address of the host) stays reachable.

use std::net::Ipv4Addr;
use std::path::Path;

use super::LabError;
use super::cmd::Cmd;
use super::config::{LabConfig, LabNode};

/// What `ip` says when something to delete is already gone.
const GONE: &[&str] = &["Cannot find device", "No such file or directory"];

/// State of a node's link as seen from the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkState {
    /// The cable is in.
    Up,
    /// Cut (`lab cut`).
    Down,
    /// No link: the node is powered off (or the lab is down).
    Absent,
}

impl std::fmt::Display for LinkState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LinkState::Up => "up",
            LinkState::Down => "down (cut)",
            LinkState::Absent => "absent",
        })
    }
}

/// Whether an interface exists in the host's namespace.
pub(crate) fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// Whether a named network namespace exists.
pub(crate) fn netns_exists(name: &str) -> bool {
    Path::new("/run/netns").join(name).exists()
}

/// The administrative state of a host interface (`IFF_UP` in its flags).
pub fn link_state(name: &str) -> LinkState {
    let flags = std::fs::read_to_string(Path::new("/sys/class/net").join(name).join("flags"));
    match flags {
        Err(_) => LinkState::Absent,
        Ok(text) => {
            let bits = u32::from_str_radix(text.trim().trim_start_matches("0x"), 16).unwrap_or(0);
            if bits & 1 == 1 {
                LinkState::Up
            } else {
                LinkState::Down
            }
        }
    }
}

/// Refuses to build over anything of the same name or on the same addresses: another
/// lab, or a leftover of one (`lab down` with its directory removes it).
pub(crate) async fn check_free(cfg: &LabConfig) -> Result<(), LabError> {
    let clash = |what: String| {
        Err(LabError::Clash(format!(
            "{what}: another lab (or a leftover of one) uses it; remove it with \
             `quorate lab down --dir DIR`, or choose another --name/--subnet"
        )))
    };
    if link_exists(&cfg.bridge()) {
        return clash(format!("interface {} exists", cfg.bridge()));
    }
    for n in cfg.nodes() {
        if link_exists(&n.veth) {
            return clash(format!("interface {} exists", n.veth));
        }
        if netns_exists(&n.netns) {
            return clash(format!("network namespace {} exists", n.netns));
        }
    }
    let addrs = Cmd::new("ip")
        .args(["-o", "-4", "addr", "show"])
        .run()
        .await?;
    let [a, b, c, _] = cfg.subnet.octets();
    let prefix = format!("{a}.{b}.{c}.");
    if let Some(line) = addrs.lines().find(|l| {
        l.split_whitespace()
            .nth(3)
            .is_some_and(|x| x.starts_with(&prefix))
    }) {
        return clash(format!(
            "subnet {}/24 is in use here ({})",
            cfg.subnet,
            line.split_whitespace()
                .take(4)
                .collect::<Vec<_>>()
                .join(" ")
        ));
    }
    Ok(())
}

/// Creates the bridge with the host's address on it.
pub(crate) async fn create_bridge(name: &str, host: Ipv4Addr) -> Result<(), LabError> {
    Cmd::new("ip")
        .args(["link", "add", name, "type", "bridge"])
        .run()
        .await?;
    Cmd::new("ip")
        .args(["addr", "add", &format!("{host}/24"), "dev", name])
        .run()
        .await?;
    Cmd::new("ip")
        .args(["link", "set", name, "up"])
        .run()
        .await?;
    Ok(())
}

/// Deletes a host interface; an absent one is fine. Deleting one end of a veth pair
/// deletes both.
pub(crate) async fn delete_link(name: &str) -> Result<(), LabError> {
    Cmd::new("ip")
        .args(["link", "delete", name])
        .run_unless(GONE)
        .await
        .map(|_| ())
}

/// Creates the node's namespace and its cable: a veth pair with `eth0` and the node's
/// address inside, the other end on the bridge, up unless `cut`.
pub(crate) async fn create_node(
    cfg: &LabConfig,
    node: &LabNode,
    cut: bool,
) -> Result<(), LabError> {
    let ns = node.netns.as_str();
    Cmd::new("ip").args(["netns", "add", ns]).run().await?;
    Cmd::new("ip")
        .args(["link", "add", &node.veth, "type", "veth"])
        .args([
            "peer",
            "name",
            "eth0",
            "address",
            &node_mac(node),
            "netns",
            ns,
        ])
        .run()
        .await?;
    Cmd::new("ip")
        .args(["link", "set", &node.veth, "master", &cfg.bridge()])
        .run()
        .await?;
    let addr = format!("{}/24", node.address);
    Cmd::new("ip")
        .args(["-n", ns, "addr", "add", &addr, "dev", "eth0"])
        .run()
        .await?;
    for dev in ["lo", "eth0"] {
        Cmd::new("ip")
            .args(["-n", ns, "link", "set", dev, "up"])
            .run()
            .await?;
    }
    set_link(&node.veth, !cut).await
}

/// The node's MAC address, fixed by its data address (locally administered `02:…`), so
/// a power cycle keeps it as a real NIC does and the host's neighbour cache stays right.
pub(crate) fn node_mac(node: &LabNode) -> String {
    let [a, b, c, d] = node.address.octets();
    format!("02:51:{a:02x}:{b:02x}:{c:02x}:{d:02x}")
}

/// Removes the node's cable and namespace (whatever of them exists).
pub(crate) async fn delete_node(node: &LabNode) -> Result<(), LabError> {
    delete_link(&node.veth).await?;
    if netns_exists(&node.netns) {
        Cmd::new("ip")
            .args(["netns", "delete", &node.netns])
            .run_unless(GONE)
            .await?;
    }
    Ok(())
}

/// Puts the node's cable in (`up`) or pulls it (`!up`).
pub(crate) async fn set_link(veth: &str, up: bool) -> Result<(), LabError> {
    Cmd::new("ip")
        .args(["link", "set", veth, if up { "up" } else { "down" }])
        .run()
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loopback_is_up_and_nonsense_is_absent() {
        assert_eq!(link_state("lo"), LinkState::Up);
        assert_eq!(link_state("no-such-if0"), LinkState::Absent);
        assert!(!netns_exists("quorate-no-such-namespace"));
    }
}

//! `lab status`: each node's namespace, cable, Podman service and BMC, asked now.

use std::fmt::Write as _;
use std::time::Duration;

use futures_util::future::join_all;
use serde::Serialize;

use super::config::{BMC_PORT, LabConfig, LabNode};
use super::net::{self, LinkState};
use super::{bmc, node};
use crate::fence::FenceAgent;

/// One node as seen now.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    /// The node, with its names and addresses.
    pub node: LabNode,
    /// Whether its network namespace exists (it is powered).
    pub netns: bool,
    /// Its cable, from the host side.
    pub link: LinkState,
    /// Whether the cable is marked cut (kept across power cycles).
    pub cut: bool,
    /// The Podman service's pid, when it runs.
    pub podman_pid: Option<u32>,
    /// Podman's version when it answers.
    pub podman_version: Option<String>,
    /// Why Podman did not answer.
    pub podman_error: Option<String>,
    /// `on` or `off`, as the BMC reports it over IPMI.
    pub bmc_power: Option<String>,
    /// Why the BMC did not answer.
    pub bmc_error: Option<String>,
}

/// Asks every node at once.
pub async fn gather(cfg: &LabConfig) -> Vec<NodeStatus> {
    join_all(cfg.nodes().into_iter().map(|n| one(cfg, n))).await
}

async fn one(cfg: &LabConfig, n: LabNode) -> NodeStatus {
    let podman = node::ping(&n, Duration::from_secs(2))
        .await
        .map(|info| info.version)
        .map_err(|e| e.to_string());
    let bmc = match bmc::agent(cfg, &n) {
        Ok(agent) => agent
            .status()
            .await
            .map(|s| s.to_string())
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    NodeStatus {
        netns: net::netns_exists(&n.netns),
        link: net::link_state(&n.veth),
        cut: node::is_cut(cfg, &n),
        podman_pid: node::service_pid(cfg, &n),
        podman_version: podman.as_ref().ok().cloned(),
        podman_error: podman.err(),
        bmc_power: bmc.as_ref().ok().cloned(),
        bmc_error: bmc.err(),
        node: n,
    }
}

/// The human report: one block per node.
pub fn render(cfg: &LabConfig, nodes: &[NodeStatus]) -> String {
    let mut out = format!(
        "lab {} in {}: {} node(s), bridge {} ({})\n",
        cfg.name,
        cfg.dir.display(),
        nodes.len(),
        cfg.bridge(),
        cfg.host_address()
    );
    for s in nodes {
        let n = &s.node;
        let _ = writeln!(out, "{}  {}", n.name, n.address);
        let _ = writeln!(
            out,
            "  namespace  {}{}",
            n.netns,
            if s.netns { "" } else { " (absent)" }
        );
        let cable = match (s.link, s.cut) {
            (LinkState::Absent, true) => "absent (cut: stays down at power on)".to_owned(),
            (link, _) => format!("{link} ({})", n.veth),
        };
        let _ = writeln!(out, "  cable      {cable}");
        let error = s.podman_error.as_deref().unwrap_or("");
        let podman = match (&s.podman_version, s.podman_pid) {
            (Some(v), Some(pid)) => format!("answers, Podman {v}, pid {pid}"),
            (Some(v), None) => format!("answers, Podman {v}"),
            (None, Some(pid)) => format!("no answer (pid {pid} runs): {error}"),
            (None, None) => format!("no answer, not running: {error}"),
        };
        let _ = writeln!(out, "  podman     {}  {podman}", n.runtime);
        let bmc = match (&s.bmc_power, &s.bmc_error) {
            (Some(p), _) => format!("power {p}"),
            (None, e) => format!("no answer: {}", e.as_deref().unwrap_or("")),
        };
        let _ = writeln!(out, "  bmc        {}:{BMC_PORT}  {bmc}", n.bmc_address);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_each_node() {
        let cfg = LabConfig::default();
        let n = cfg.node("worker1").unwrap();
        let up = NodeStatus {
            node: n.clone(),
            netns: true,
            link: LinkState::Down,
            cut: true,
            podman_pid: Some(7),
            podman_version: None,
            podman_error: Some("node unreachable".into()),
            bmc_power: Some("on".into()),
            bmc_error: None,
        };
        let off = NodeStatus {
            netns: false,
            link: LinkState::Absent,
            cut: false,
            podman_pid: None,
            podman_error: Some("refused".into()),
            bmc_power: Some("off".into()),
            ..up.clone()
        };
        let text = render(&cfg, &[up, off]);
        assert!(text.contains("cable      down (cut) (qlab-n1)"), "{text}");
        assert!(text.contains("no answer (pid 7 runs): node unreachable"));
        assert!(text.contains("bmc        127.77.0.11:623  power on"));
        assert!(text.contains("namespace  qlab-worker1 (absent)"));
        assert!(text.contains("power off"));
    }
}

//! From the spec to the fencing library: a node's [`NodeTopology`] (its Fence documents as
//! IPMI agents, by level) and the [`FencePolicy`] of the cluster.
//!
//! Call it on a validated spec set only (design invariant 6); the agents check their own
//! configuration again, so an unsafe device is refused here even if validation was skipped.

use std::time::Duration;

use super::ipmi::{Interface, IpmiAgent, IpmiConfig, Privilege, RebootMethod};
use super::{FenceAgent, FenceDevice, FenceError, FencePolicy, NodeTopology};
use crate::secret::SecretPolicy;
use crate::spec::fence::{FenceMethod, IpmiInterface, IpmiPrivilege};
use crate::spec::{FenceSpec, SpecSet};

/// The limit for each single exchange with a BMC (the spec has no field for it).
pub const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a node's topology could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopologyError {
    /// The cluster has no node of that name.
    #[error("the cluster has no node `{node}` (nodes: {known})")]
    UnknownNode {
        /// The name asked for.
        node: String,
        /// The cluster's nodes, comma-separated.
        known: String,
    },
    /// No Fence document lists the node in its `targets`.
    #[error("no fence device covers node `{0}`: add a Fence document with `targets: [{0}]`")]
    NoDevice(String),
    /// A device's configuration is refused by its agent.
    #[error("fence device `{device}`: {source}")]
    Device {
        /// The Fence document's name.
        device: String,
        /// Why the agent refused it.
        source: FenceError,
    },
}

/// The fence policy of the cluster: `cluster.fencing.timeout` bounds a whole run; retries
/// and backoff keep the library's defaults.
pub fn fence_policy(set: &SpecSet) -> FencePolicy {
    FencePolicy {
        timeout: set.cluster.fencing.timeout.get(),
        ..FencePolicy::default()
    }
}

/// The IPMI agent configuration of one Fence document, whose password is read only if
/// the operator's `secrets` policy allows its reference (the spec's author is not the
/// operator).
pub fn ipmi_config(spec: &FenceSpec, secrets: &SecretPolicy) -> IpmiConfig {
    let ipmi = &spec.ipmi;
    IpmiConfig {
        address: ipmi.address.clone(),
        port: ipmi.port.get(),
        username: ipmi.username.clone(),
        password: ipmi.password.clone(),
        secrets: secrets.clone(),
        cipher_suite: ipmi.cipher_suite,
        privilege: match ipmi.privilege {
            IpmiPrivilege::Operator => Privilege::Operator,
            IpmiPrivilege::Administrator => Privilege::Administrator,
        },
        interface: match ipmi.interface {
            IpmiInterface::Lanplus => Interface::Lanplus,
            IpmiInterface::Lan => Interface::Lan,
        },
        allow_insecure: ipmi.allow_insecure,
        power_wait: spec.power_wait.get(),
        timeout: EXCHANGE_TIMEOUT,
        method: match spec.method {
            FenceMethod::Onoff => RebootMethod::OnOff,
            FenceMethod::Cycle => RebootMethod::Cycle,
        },
    }
}

/// The fence devices of `node`: every Fence document whose `targets` list it, each as an
/// IPMI agent at its `level` with its `delay`, its password allowed by `secrets`. Devices
/// of one level keep the documents' name order.
pub fn node_topology(
    set: &SpecSet,
    node: &str,
    secrets: &SecretPolicy,
) -> Result<NodeTopology, TopologyError> {
    node_topology_with(set, node, |_, spec| {
        IpmiAgent::new(ipmi_config(spec, secrets)).map(|a| Box::new(a) as Box<dyn FenceAgent>)
    })
}

/// [`node_topology`] with the agents made by `agent(name, spec)` (a simulation passes its
/// in-memory BMCs here).
pub fn node_topology_with(
    set: &SpecSet,
    node: &str,
    agent: impl Fn(&str, &FenceSpec) -> Result<Box<dyn FenceAgent>, FenceError>,
) -> Result<NodeTopology, TopologyError> {
    if !set.cluster.nodes.iter().any(|n| n.name.as_str() == node) {
        let known: Vec<&str> = set.cluster.nodes.iter().map(|n| n.name.as_str()).collect();
        return Err(TopologyError::UnknownNode {
            node: node.to_string(),
            known: known.join(", "),
        });
    }
    let mut devices = Vec::new();
    for (name, spec) in &set.fences {
        if !spec.targets.iter().any(|t| t.as_str() == node) {
            continue;
        }
        let agent = agent(name.as_str(), spec).map_err(|source| TopologyError::Device {
            device: name.to_string(),
            source,
        })?;
        devices.push(FenceDevice {
            name: name.to_string(),
            level: spec.level,
            delay: spec.delay.get(),
            agent,
        });
    }
    if devices.is_empty() {
        return Err(TopologyError::NoDevice(node.to_string()));
    }
    devices.sort_by_key(|d| d.level);
    Ok(NodeTopology {
        node: node.to_string(),
        devices,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::SecretRef;
    use crate::source::Sources;

    const SPECS: &str = r#"apiVersion: quorate.io/v1alpha1
kind: Cluster
metadata: {name: lab}
spec:
  nodes:
    - {name: n1, runtime: "podman+unix:///run/n1.sock"}
    - {name: n2, runtime: "podman+unix:///run/n2.sock"}
    - {name: n3, runtime: "podman+unix:///run/n3.sock"}
  fencing: {timeout: 90s}
---
apiVersion: quorate.io/v1alpha1
kind: Fence
metadata: {name: pdu}
spec:
  targets: [n1, n2]
  level: 2
  ipmi: {address: pdu.example, username: op, password: {fromFile: /etc/quorate/secrets/pdu}, privilege: operator}
---
apiVersion: quorate.io/v1alpha1
kind: Fence
metadata: {name: bmc-n1}
spec:
  targets: [n1]
  method: cycle
  delay: 5s
  powerWait: 30s
  ipmi: {address: 10.0.0.1, port: 1623, username: admin, password: {fromEnv: QUORATE_SECRET_N1_PW}}
"#;

    fn set() -> SpecSet {
        let mut sources = Sources::new();
        sources.add("s.yaml", SPECS.as_bytes().to_vec());
        let report = crate::validate::validate(&sources);
        let diags = format!("{:?}", report.diagnostics);
        report.into_valid_set().unwrap_or_else(|| panic!("{diags}"))
    }

    #[test]
    fn devices_come_by_level_with_their_delay() {
        let t = node_topology(&set(), "n1", &SecretPolicy::default()).unwrap();
        let got: Vec<_> = t
            .devices
            .iter()
            .map(|d| (d.name.as_str(), d.level, d.delay, d.agent.describe()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "bmc-n1",
                    1,
                    Duration::from_secs(5),
                    "ipmi lanplus 10.0.0.1:1623 user admin".to_string()
                ),
                (
                    "pdu",
                    2,
                    Duration::ZERO,
                    "ipmi lanplus pdu.example:623 user op".to_string()
                ),
            ]
        );
        let t2 = node_topology(&set(), "n2", &SecretPolicy::default()).unwrap();
        assert_eq!(t2.devices.len(), 1);
        assert_eq!(t2.devices[0].name, "pdu");
    }

    #[test]
    fn config_follows_the_spec_and_its_defaults() {
        let s = set();
        let c = ipmi_config(
            &s.fences.values().find(|f| f.level == 1).unwrap().clone(),
            &SecretPolicy::default(),
        );
        assert_eq!(
            c.password,
            SecretRef::FromEnv("QUORATE_SECRET_N1_PW".into())
        );
        assert_eq!(c.power_wait, Duration::from_secs(30));
        assert_eq!(c.method, RebootMethod::Cycle);
        assert_eq!(c.privilege, Privilege::Administrator);
        let pdu = ipmi_config(
            &s.fences.values().find(|f| f.level == 2).unwrap().clone(),
            &SecretPolicy::default(),
        );
        assert_eq!(pdu.power_wait, Duration::from_secs(20), "the default");
        assert_eq!(pdu.method, RebootMethod::OnOff);
        assert_eq!(pdu.privilege, Privilege::Operator);
        assert_eq!(fence_policy(&s).timeout, Duration::from_secs(90));
    }

    #[test]
    fn unknown_and_uncovered_nodes_are_errors() {
        let e = node_topology(&set(), "n9", &SecretPolicy::default()).unwrap_err();
        assert!(matches!(e, TopologyError::UnknownNode { .. }), "{e}");
        assert!(e.to_string().contains("n1, n2, n3"), "{e}");
        let e = node_topology(&set(), "n3", &SecretPolicy::default()).unwrap_err();
        assert_eq!(e, TopologyError::NoDevice("n3".into()));
    }

    #[test]
    fn a_password_outside_the_operators_policy_is_refused_even_unvalidated() {
        let only_pdu = SecretPolicy::new(Some("/etc/quorate/secrets".into()), "OTHER_");
        assert!(node_topology(&set(), "n2", &only_pdu).is_ok());
        let e = node_topology(&set(), "n1", &only_pdu).unwrap_err();
        assert!(
            matches!(&e, TopologyError::Device { device, source: FenceError::Credentials(_) } if device == "bmc-n1"),
            "{e}"
        );
        assert!(e.to_string().contains("must start with `OTHER_`"), "{e}");
    }

    #[test]
    fn an_unsafe_device_is_refused_even_unvalidated() {
        let mut s = set();
        for f in s.fences.values_mut() {
            f.ipmi.password = SecretRef::Inline;
        }
        let e = node_topology(&s, "n2", &SecretPolicy::default()).unwrap_err();
        assert!(
            matches!(&e, TopologyError::Device { device, .. } if device == "pdu"),
            "{e}"
        );
    }
}

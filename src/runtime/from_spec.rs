//! From a spec set to what the runtime drivers take (a node's [`Connection`], an
//! instance's [`InstanceSpec`], a bundle's [`NetworkSpec`]), and from what they observe
//! back to the planner's model ([`observed_instances`]).
//!
//! The mapping of an instance is exactly what [`instance_hash`] covers: a field the
//! container is created from is in the hash, so a change to it restarts the instance, and
//! nothing else is.

use std::net::IpAddr;
use std::time::Duration;

use super::instance::{
    EnvValue, InstanceLabels, InstanceSpec, MountSource, MountSpec, NetworkAttachment, NetworkSpec,
    PortSpec, SecretValue, Subnet,
};
use super::state::{ContainerState, ContainerStatus};
use super::{Connection, RuntimeError, TlsFiles};
use crate::observed::{InstanceState, ObservedInstance};
use crate::plan::hash::instance_hash;
use crate::secret::{SecretError, SecretPolicy, SecretRef};
use crate::spec::bundle::{self, BundleSpec, instance_ip, instance_name};
use crate::spec::cluster::NodeSpec;
use crate::spec::{Name, SpecSet};

/// Why an instance of the spec cannot be turned into a container spec. Names the
/// instance and the field; a secret is named by its reference, never by its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InstanceError {
    /// The spec set has no such bundle.
    #[error("no bundle `{bundle}` in the spec set")]
    UnknownBundle {
        /// The bundle asked for.
        bundle: String,
    },
    /// The index is not below the bundle's replicas.
    #[error("bundle `{bundle}` has {replicas} replica(s): there is no instance {index}")]
    NoSuchInstance {
        /// The bundle.
        bundle: String,
        /// The index asked for.
        index: u32,
        /// The bundle's replicas.
        replicas: u32,
    },
    /// A secret environment value could not be read.
    #[error("{instance}: environment variable `{variable}`: {source}")]
    Secret {
        /// `<bundle>-<i>`.
        instance: String,
        /// The environment variable.
        variable: String,
        /// Why (names the reference only).
        #[source]
        source: SecretError,
    },
    /// A secret environment value is not UTF-8 text.
    #[error(
        "{instance}: environment variable `{variable}`: the secret from {reference} is not UTF-8 text"
    )]
    SecretNotText {
        /// `<bundle>-<i>`.
        instance: String,
        /// The environment variable.
        variable: String,
        /// The reference, e.g. `file /etc/quorate/db-password`.
        reference: String,
    },
    /// A field the validator refuses made it here anyway.
    #[error("{instance}: {what}")]
    Invalid {
        /// `<bundle>-<i>`.
        instance: String,
        /// What is wrong.
        what: String,
    },
}

/// The connection settings of `node`: its endpoint, `insecure`, TLS client files and SSH
/// identity and known hosts, with every call bounded by `timeout`. Refuses what is unsafe
/// or unsupported ([`Connection::validate`]). The caller adds the cluster
/// ([`Connection::for_cluster`]) so that only this cluster's containers count as ours.
pub fn connection(node: &NodeSpec, timeout: Duration) -> Result<Connection, RuntimeError> {
    let mut conn = Connection::new(node.runtime.clone());
    conn.insecure = node.insecure;
    conn.tls = node.tls.as_ref().map(TlsFiles::from);
    if let Some(ssh) = &node.ssh {
        conn.ssh_identity = Some(ssh.identity_file.clone());
        conn.ssh_known_hosts = ssh.known_hosts_file.clone();
    }
    conn.timeout = timeout;
    conn.validate()?;
    Ok(conn)
}

/// Instance `index` of `bundle` as the runtime should create it, from the spec at git
/// commit `commit`: name `<bundle>-<index>`, quorate's labels (cluster, bundle, index,
/// [`instance_hash`], commit), image, command, environment, ports, storage and network
/// attachment, and no restart policy (the drivers never set one: design invariant 5).
///
/// Secret environment values are read now, only if the operator's `secrets` policy allows
/// their reference ([`SecretRef::read_with`]: the spec's author is not the operator), and
/// held only in the redacting [`SecretValue`]: call this just before creating the
/// container, off the async threads (reading a secret file is blocking I/O), and drop the
/// result after.
pub fn instance_spec(
    set: &SpecSet,
    bundle: &str,
    index: u32,
    commit: &str,
    secrets: &SecretPolicy,
) -> Result<InstanceSpec, InstanceError> {
    let spec = set
        .bundles
        .get(bundle)
        .ok_or_else(|| InstanceError::UnknownBundle {
            bundle: bundle.to_string(),
        })?;
    if index >= spec.replicas {
        return Err(InstanceError::NoSuchInstance {
            bundle: bundle.to_string(),
            index,
            replicas: spec.replicas,
        });
    }
    let instance = instance_name(bundle, index);
    let env = spec
        .env
        .iter()
        .map(|(k, v)| Ok((k.clone(), env_value(&instance, k, v, secrets)?)))
        .collect::<Result<Vec<_>, InstanceError>>()?;
    let ports = ports(&instance, spec)?;
    let mounts = mounts(&instance, spec)?;
    let network = attachment(set, spec, index).map_err(|what| invalid(&instance, what))?;
    Ok(InstanceSpec {
        labels: InstanceLabels {
            cluster: set.cluster_name.to_string(),
            bundle: bundle.to_string(),
            index,
            spec_hash: instance_hash(bundle, spec, index),
            commit: commit.to_string(),
        },
        image: spec.image.clone(),
        command: spec.command.clone().unwrap_or_default(),
        env,
        ports,
        mounts,
        network,
    })
}

/// Instance `instance` cannot be made as its spec says, because of `what`.
fn invalid(instance: &str, what: String) -> InstanceError {
    InstanceError::Invalid {
        instance: instance.to_owned(),
        what,
    }
}

/// The ports `spec` publishes, each with its host port, container port and count.
fn ports(instance: &str, spec: &BundleSpec) -> Result<Vec<PortSpec>, InstanceError> {
    let network = spec.network.as_ref();
    let ports = network.map_or(&[][..], |n| n.ports.as_slice());
    let port = |(i, p): (usize, &bundle::PortMapping)| {
        let (host_port, container_port, count) = p.published().ok_or_else(|| {
            invalid(
                instance,
                format!("port mapping {i} has neither port nor range"),
            )
        })?;
        Ok(PortSpec {
            host_ip: None,
            host_port,
            container_port,
            count,
            protocol: p.protocol,
        })
    };
    ports.iter().enumerate().map(port).collect()
}

/// The storage `spec` mounts: a fixed directory, or one per instance under a root.
fn mounts(instance: &str, spec: &BundleSpec) -> Result<Vec<MountSpec>, InstanceError> {
    let mount = |(i, s): (usize, &bundle::StorageMapping)| {
        let source = match (&s.source_dir, &s.source_dir_root) {
            (Some(dir), _) => MountSource::Fixed(dir.clone()),
            (None, Some(root)) => MountSource::PerInstance(root.clone()),
            (None, None) => {
                let what = format!("storage mapping {i} has neither sourceDir nor sourceDirRoot");
                return Err(invalid(instance, what));
            }
        };
        Ok(MountSpec {
            source,
            target: s.target_dir.clone(),
            read_only: s.read_only(),
            options: s.extra_options().into_iter().map(String::from).collect(),
        })
    };
    spec.storage.iter().enumerate().map(mount).collect()
}

/// A plain value as it is; a secret read now, if `secrets` allows its reference, and
/// wrapped so it never shows.
fn env_value(
    instance: &str,
    variable: &str,
    v: &bundle::EnvValue,
    secrets: &SecretPolicy,
) -> Result<EnvValue, InstanceError> {
    let secret: &SecretRef = match v {
        bundle::EnvValue::Plain(text) => return Ok(EnvValue::Plain(text.clone())),
        bundle::EnvValue::Secret(r) => r,
    };
    let value = secret
        .read_with(secrets)
        .map_err(|source| InstanceError::Secret {
            instance: instance.to_string(),
            variable: variable.to_string(),
            source,
        })?;
    match value.expose_str() {
        Some(text) => Ok(EnvValue::Secret(SecretValue::new(text))),
        None => Err(InstanceError::SecretNotText {
            instance: instance.to_string(),
            variable: variable.to_string(),
            reference: secret.describe(),
        }),
    }
}

/// The network the instance joins, with its address `ipRangeStart + index`.
fn attachment(
    set: &SpecSet,
    spec: &BundleSpec,
    index: u32,
) -> Result<Option<NetworkAttachment>, String> {
    let Some(net) = &spec.network else {
        return Ok(None);
    };
    let Some(name) = &net.name else {
        return match net.ip_range_start {
            Some(_) => Err("ipRangeStart needs a network name".into()),
            None => Ok(None),
        };
    };
    if !set.cluster.networks.iter().any(|n| n.name == *name) {
        return Err(format!(
            "network `{name}` is not one of the cluster's networks"
        ));
    }
    let ip = match net.ip_range_start {
        None => None,
        Some(start) => {
            Some(IpAddr::V4(instance_ip(start, index).ok_or_else(|| {
                format!("{start} + {index} runs past 255.255.255.255")
            })?))
        }
    };
    Ok(Some(NetworkAttachment {
        network: name.to_string(),
        ip,
    }))
}

/// The runtime network `bundle` joins (from the cluster's `networks` entry it names),
/// for [`Runtime::ensure_network`](super::Runtime::ensure_network) before its instances
/// are created. `None` when the bundle names no network (or an unknown one).
pub fn network_spec(set: &SpecSet, bundle: &str) -> Option<NetworkSpec> {
    let name = set.bundles.get(bundle)?.network.as_ref()?.name.as_ref()?;
    let net = set.cluster.networks.iter().find(|n| n.name == *name)?;
    // The runtimes report a subnet by its network address: ask for it in that form.
    let network = net.subnet.network();
    Some(NetworkSpec {
        name: name.to_string(),
        subnet: Subnet {
            addr: IpAddr::V4(network.addr),
            prefix: network.prefix,
        },
    })
}

/// The instances among `containers` (as [`Runtime::list`](super::Runtime::list) returns
/// them) in the planner's terms, sorted by bundle and index. Containers without quorate's
/// labels are left out (`list` already leaves out other clusters' when the connection
/// names its cluster). Running is `Running`; exited, created, dead and paused are
/// `Stopped`; a state in between (restarting, stopping, removing, unknown) counts as
/// `Running`, so nothing is started elsewhere while it may still run (design invariant
/// 1). `Failed` is the monitor's verdict, not the runtime's, and is never set here.
pub fn observed_instances(containers: &[ContainerState]) -> Vec<ObservedInstance> {
    let mut out: Vec<ObservedInstance> = containers
        .iter()
        .filter_map(|c| {
            let labels = c.labels.as_ref()?;
            Some(ObservedInstance {
                bundle: labels.bundle.parse::<Name>().ok()?,
                index: labels.index,
                spec_hash: labels.spec_hash.clone(),
                state: instance_state(&c.status),
                role: None,
            })
        })
        .collect();
    out.sort_by(|a, b| (&a.bundle, a.index).cmp(&(&b.bundle, b.index)));
    out
}

/// A container state in the planner's terms (see [`observed_instances`]).
pub fn instance_state(status: &ContainerStatus) -> InstanceState {
    match status {
        ContainerStatus::Created
        | ContainerStatus::Exited
        | ContainerStatus::Dead
        | ContainerStatus::Paused => InstanceState::Stopped,
        ContainerStatus::Running
        | ContainerStatus::Restarting
        | ContainerStatus::Stopping
        | ContainerStatus::Removing
        | ContainerStatus::Unknown(_) => InstanceState::Running,
    }
}

#[cfg(test)]
#[path = "from_spec_tests.rs"]
mod tests;

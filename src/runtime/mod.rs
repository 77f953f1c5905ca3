//! Container runtime drivers: how quorate carries out bundle instances on a node.
//!
//! [`Runtime`] is the small, object-safe trait the reconciler drives; [`podman`] and
//! [`docker`] implement it against the real APIs. Every call is bounded by the
//! connection's timeout, and a runtime that cannot be reached is an error value
//! ([`RuntimeError::is_unreachable`]), which the caller records as "node unreachable".
//!
//! Safety rules kept here, for every implementation:
//! - containers are created with no restart policy (design invariant 5);
//! - a container without quorate's `managed-by` label is never stopped, removed, started
//!   or replaced, even when its name clashes: that is [`RuntimeError::Conflict`]. When the
//!   connection names its cluster ([`Connection::cluster`]), a container labelled with
//!   another cluster counts as not quorate's in the same way, and `list` leaves it out.
//!
//! The endpoint type is the spec's ([`crate::spec::endpoint::Endpoint`]); [`from_spec`]
//! turns a node, a bundle instance and a network of a spec set into what the drivers take,
//! and turns what they observe into the planner's model.
//!
//! # The runtime network (stable instance addresses)
//! A bundle with `ipRangeStart` gets one address per instance (`start + i`, computed by
//! the caller) on a named runtime network. Before creating such instances on a node, the
//! caller runs [`Runtime::ensure_network`] with a [`NetworkSpec`] (network name and the
//! subnet that contains the range, e.g. from the cluster's settings). quorate itself
//! creates the network when it is missing: a `bridge` network with exactly that subnet
//! (the runtime picks the gateway, the first address) and quorate's `managed-by` label.
//! If a network of that name exists with another subnet, that is a
//! [`RuntimeError::Network`] and nothing is changed. quorate never removes networks.
//! The instance then joins it with its fixed address ([`NetworkAttachment`]); ports are
//! still published on the node's own addresses.
//!
//! # Storage directories
//! Per-instance directories (`<root>/<bundle>-<i>`) are created when missing: by quorate
//! for local Unix endpoints, over SSH (`mkdir -p`) for `podman+ssh`, and by dockerd itself
//! for Docker (`Binds` create missing host paths). Over plain `podman+tcp` they cannot be
//! created remotely and must exist.

pub mod cluster;
mod connection;
pub(crate) mod docker;
pub mod from_spec;
pub(crate) mod health;
pub mod instance;
pub(crate) mod podman;
mod probe;
mod relay;
pub mod roles;
mod socket_dir;
pub(crate) mod ssh;
pub(crate) mod state;

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;

pub use crate::spec::endpoint::{Endpoint, RuntimeKind, Transport};
pub use connection::{Connection, EndpointError, TlsFiles};
pub use health::{FailureRecord, HealthCheck, HealthResult, Monitor};
pub use instance::{
    EnvValue, InstanceLabels, InstanceSpec, MountSource, MountSpec, NetworkAttachment, NetworkSpec,
    PortSpec, SecretValue, Subnet,
};
pub use state::{ContainerState, ContainerStatus};

/// What can go wrong talking to a runtime.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuntimeError {
    /// The runtime could not be reached (connection refused, socket missing, tunnel down).
    #[error("node unreachable: {endpoint}: {reason}")]
    Unreachable {
        /// The endpoint as configured.
        endpoint: String,
        /// What failed.
        reason: String,
    },
    /// The call did not finish within its timeout.
    #[error("node unreachable: {endpoint}: {op} timed out after {after:?}")]
    Timeout {
        /// The endpoint as configured.
        endpoint: String,
        /// The operation.
        op: &'static str,
        /// The timeout that expired.
        after: Duration,
    },
    /// A container with this name exists but is not quorate's (or is another cluster's):
    /// it is left untouched.
    #[error(
        "container `{name}` exists but is not managed by quorate for this cluster; left untouched"
    )]
    Conflict {
        /// Container name.
        name: String,
    },
    /// A quorate container with this name already exists.
    #[error("container `{name}` already exists")]
    AlreadyExists {
        /// Container name.
        name: String,
    },
    /// No container with this name.
    #[error("no container `{name}`")]
    NotFound {
        /// Container name.
        name: String,
    },
    /// The image is absent and could not be pulled.
    #[error("image `{image}` is not on the node and could not be pulled: {reason}")]
    ImageUnavailable {
        /// Image reference.
        image: String,
        /// Why the pull failed.
        reason: String,
    },
    /// The runtime network could not be set up, or differs from what is asked.
    #[error("network `{name}`: {reason}")]
    Network {
        /// Network name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A per-instance storage directory could not be created.
    #[error("storage directory {}: {reason}", path.display())]
    Storage {
        /// Host path.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// The endpoint or connection settings are invalid or unsafe.
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    /// The runtime answered with an error.
    #[error("{op} failed: {message}")]
    Api {
        /// The operation.
        op: &'static str,
        /// The runtime's message (secrets redacted).
        message: String,
    },
}

impl RuntimeError {
    /// True when the runtime did not answer: the node's state is unknown.
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            RuntimeError::Unreachable { .. } | RuntimeError::Timeout { .. }
        )
    }
}

/// Result of running a command in a container.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExecOutcome {
    /// Exit code, when the runtime reported one.
    pub exit_code: Option<i64>,
    /// The first [`EXEC_STDOUT_MAX`] bytes of its standard output (lossy UTF-8).
    pub stdout: String,
}

/// The most standard output an exec keeps; the rest is read and dropped.
pub const EXEC_STDOUT_MAX: usize = 4096;

/// Appends `chunk` to `kept` up to [`EXEC_STDOUT_MAX`] bytes in all.
pub(crate) fn keep_stdout(kept: &mut Vec<u8>, chunk: &[u8]) {
    let room = EXEC_STDOUT_MAX.saturating_sub(kept.len());
    kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
}

/// Facts about a runtime service, from [`Runtime::ping`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeInfo {
    /// Which runtime.
    pub kind: RuntimeKind,
    /// Its version string.
    pub version: String,
}

/// One node's container runtime, as quorate uses it.
#[async_trait]
pub trait Runtime: Send + Sync {
    /// The endpoint this driver talks to.
    fn endpoint(&self) -> &Endpoint;

    /// The cluster whose containers count as quorate's here ([`Connection::cluster`]);
    /// `None` when any container with quorate's `managed-by` label does.
    fn cluster(&self) -> Option<&str> {
        None
    }

    /// Checks that the runtime answers.
    async fn ping(&self) -> Result<RuntimeInfo, RuntimeError>;

    /// Containers quorate manages on this node (any state; only this cluster's when
    /// [`Runtime::cluster`] names one), from the list call alone: restart policy and
    /// addresses are not filled in (see [`Runtime::inspect`]).
    async fn list(&self) -> Result<Vec<ContainerState>, RuntimeError>;

    /// Any container by name or ID (managed or not); `None` when there is none.
    async fn inspect(&self, name: &str) -> Result<Option<ContainerState>, RuntimeError>;

    /// Makes sure the named network exists with the given subnet (creates it if missing).
    async fn ensure_network(&self, network: &NetworkSpec) -> Result<(), RuntimeError>;

    /// Creates the instance's container (not started). The image is used when present and
    /// pulled only when absent; per-instance storage directories are created when missing.
    /// Returns the container ID.
    async fn create(&self, spec: &InstanceSpec) -> Result<String, RuntimeError>;

    /// Starts a quorate container.
    async fn start(&self, name: &str) -> Result<(), RuntimeError>;

    /// Stops a quorate container: SIGTERM, then SIGKILL after `grace`.
    async fn stop(&self, name: &str, grace: Duration) -> Result<(), RuntimeError>;

    /// Removes a quorate container (it must be stopped or it is killed).
    async fn remove(&self, name: &str) -> Result<(), RuntimeError>;

    /// Runs a command in a running quorate container, with `env` added to its
    /// environment, and waits for its exit code.
    async fn exec(
        &self,
        name: &str,
        command: &[String],
        env: &[(String, String)],
    ) -> Result<ExecOutcome, RuntimeError>;

    /// Runs a command that changes what the instance is (a promote or a demote): an
    /// exec, but one that acts, so wrappers that guard acting calls (HA mode's lease)
    /// guard it; plain `exec` is for checks and questions.
    async fn exec_acting(
        &self,
        name: &str,
        command: &[String],
        env: &[(String, String)],
    ) -> Result<ExecOutcome, RuntimeError> {
        self.exec(name, command, env).await
    }

    /// Creates and starts an instance, and returns what is then observed.
    async fn run(&self, spec: &InstanceSpec) -> Result<ContainerState, RuntimeError> {
        let name = spec.name();
        self.create(spec).await?;
        self.start(&name).await?;
        self.inspect(&name)
            .await?
            .ok_or(RuntimeError::NotFound { name })
    }

    /// Runs the monitors of `due` (instance name, monitor) once: is each running, and
    /// does its check pass? The results in `due`'s order.
    async fn check_health(&self, due: &[(&str, &Monitor)]) -> Vec<HealthResult> {
        health::check(self, due).await
    }
}

/// Opens a driver for a connection (nothing is contacted until the first call).
pub fn connect(conn: Connection) -> Result<Box<dyn Runtime>, RuntimeError> {
    Ok(match conn.endpoint.kind {
        RuntimeKind::Podman => Box::new(podman::PodmanRuntime::new(conn)?),
        RuntimeKind::Docker => Box::new(docker::DockerRuntime::new(conn)?),
    })
}

/// Runs `fut` within `after`, mapping expiry to [`RuntimeError::Timeout`].
pub(crate) async fn timed<T>(
    endpoint: &Endpoint,
    op: &'static str,
    after: Duration,
    fut: impl Future<Output = Result<T, RuntimeError>>,
) -> Result<T, RuntimeError> {
    match tokio::time::timeout(after, fut).await {
        Ok(r) => r,
        Err(_) => Err(RuntimeError::Timeout {
            endpoint: endpoint.to_string(),
            op,
            after,
        }),
    }
}

/// Whether a container is quorate's for a runtime of `cluster`: it carries quorate's
/// labels and, when a cluster is given, that cluster's label.
pub(crate) fn is_ours(c: &ContainerState, cluster: Option<&str>) -> bool {
    match (&c.labels, cluster) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some(l), Some(cluster)) => l.cluster == cluster,
    }
}

/// The label filters of a list call: `managed-by`, and the cluster when there is one.
/// Callers also check [`is_ours`] on what comes back, whatever the runtime did with
/// several filters.
pub(crate) fn list_filters(cluster: Option<&str>) -> Vec<(String, String)> {
    let mut filters = vec![(
        instance::label::MANAGED_BY.to_string(),
        instance::label::MANAGED_BY_VALUE.to_string(),
    )];
    if let Some(cluster) = cluster {
        filters.push((instance::label::CLUSTER.to_string(), cluster.to_string()));
    }
    filters
}

/// The ID of `name` if it is a quorate container of this runtime's cluster; `Conflict`
/// if it is someone else's. Every stop, remove, start and exec goes through this check
/// first, then acts on the ID it returned, so a same-named container swapped in later is
/// not touched either.
pub(crate) async fn managed_id<R: Runtime + ?Sized>(
    rt: &R,
    name: &str,
) -> Result<String, RuntimeError> {
    match rt.inspect(name).await? {
        None => Err(RuntimeError::NotFound { name: name.into() }),
        Some(c) if is_ours(&c, rt.cluster()) => Ok(c.id),
        Some(_) => Err(RuntimeError::Conflict { name: name.into() }),
    }
}

/// Refuses to create over an existing container: `Conflict` if it is not quorate's (or
/// another cluster's), `AlreadyExists` if it is (the caller decides whether to replace it).
pub(crate) async fn check_name_free<R: Runtime + ?Sized>(
    rt: &R,
    name: &str,
) -> Result<(), RuntimeError> {
    match rt.inspect(name).await? {
        None => Ok(()),
        Some(c) if is_ours(&c, rt.cluster()) => {
            Err(RuntimeError::AlreadyExists { name: name.into() })
        }
        Some(_) => Err(RuntimeError::Conflict { name: name.into() }),
    }
}

/// An existing network must have the subnet asked for.
pub(crate) fn check_subnet(network: &NetworkSpec, found: &[String]) -> Result<(), RuntimeError> {
    let want = network.subnet;
    if found.iter().any(|s| s.parse::<Subnet>().ok() == Some(want)) {
        Ok(())
    } else {
        Err(RuntimeError::Network {
            name: network.name.clone(),
            reason: format!("exists with subnets {found:?}, not {want}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn timed_maps_expiry() {
        let ep: Endpoint = "podman+unix:///nowhere.sock".parse().unwrap();
        let r: Result<(), _> = timed(&ep, "ping", Duration::from_secs(2), async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok(())
        })
        .await;
        let e = r.unwrap_err();
        assert!(e.is_unreachable());
        assert!(e.to_string().contains("ping timed out after 2s"), "{e}");
    }
}

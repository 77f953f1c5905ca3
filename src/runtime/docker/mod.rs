//! The Docker driver, through the Docker Engine API (`bollard`).
//!
//! Endpoints: `docker+unix://` (local socket), `docker+tcp://` with TLS client
//! certificates (or plain with `insecure: true`), `docker+ssh://` (an SSH tunnel to the
//! node's socket, the same mechanism as for Podman; bollard's own `ssh` feature needs
//! `docker system dial-stdio` on the node and is not used).
//! The client always talks to the local [relay](super::relay), which bounds every answer's
//! size and speaks TLS to the daemon.
//! The API version is negotiated with the daemon on first contact.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use bollard::Docker;
use bollard::container::LogOutput;
use bollard::exec::StartExecResults;
use bollard::models::{ExecConfig, Ipam, IpamConfig, NetworkCreateRequest};
use bollard::query_parameters as qp;
use futures_util::StreamExt;
use tokio::sync::OnceCell;

use super::instance::{InstanceSpec, NetworkSpec, label, path_str};
use super::relay::{Relay, Upstream};
use super::ssh::{SshTarget, SshTunnel};
use super::state::ContainerState;
use super::{
    Connection, Endpoint, ExecOutcome, Runtime, RuntimeError, RuntimeInfo, RuntimeKind, Transport,
    check_name_free, check_subnet, is_ours, list_filters, managed_id, timed,
};

mod convert;
use convert::{create_body, state_from_inspect, state_from_summary};

type DockerError = bollard::errors::Error;

/// A node's Docker daemon.
pub struct DockerRuntime {
    conn: Connection,
    client: OnceCell<Docker>,
    relay: Relay,
    tunnel: Option<SshTunnel>,
}

impl DockerRuntime {
    /// Prepares a driver; nothing is contacted until the first call.
    pub fn new(conn: Connection) -> Result<DockerRuntime, RuntimeError> {
        conn.validate()?;
        let endpoint = conn.endpoint.to_string();
        let (upstream, tunnel) = match &conn.endpoint.transport {
            Transport::Unix(path) => (Upstream::Unix(path.clone()), None),
            // TLS (client certificates) is spoken by the relay; plain TCP only with
            // `insecure: true` (Connection::validate).
            Transport::Tcp { host, port } => {
                let tcp = Upstream::Tcp {
                    host: host.clone(),
                    port: *port,
                    tls: conn.tls.clone(),
                };
                (tcp, None)
            }
            Transport::Ssh {
                user,
                host,
                port,
                socket,
            } => {
                let target = SshTarget {
                    user: user.clone(),
                    host: host.clone(),
                    port: *port,
                    identity: conn.ssh_identity.clone(),
                    known_hosts: conn.ssh_known_hosts.clone(),
                    endpoint: endpoint.clone(),
                };
                let tunnel = SshTunnel::new(target, socket.clone())?;
                (Upstream::Unix(tunnel.local_socket()), Some(tunnel))
            }
        };
        // Every answer comes through the relay, which bounds its size.
        let relay = Relay::new(upstream, endpoint, conn.timeout)?;
        Ok(DockerRuntime {
            conn,
            client: OnceCell::new(),
            relay,
            tunnel,
        })
    }

    fn unreachable(&self, reason: String) -> RuntimeError {
        RuntimeError::Unreachable {
            endpoint: self.conn.endpoint.to_string(),
            reason,
        }
    }

    /// Builds the client, on the relay's socket (no I/O).
    fn build_client(&self) -> Result<Docker, DockerError> {
        let secs = self
            .conn
            .timeout
            .max(self.conn.pull_timeout)
            .as_secs()
            .max(1);
        let socket = path_str(&self.relay.socket());
        Docker::connect_with_unix(&socket, secs, bollard::API_DEFAULT_VERSION)
    }

    /// Runs one API call within `after`, connecting (and negotiating) first if needed.
    async fn call_within<T, F, Fut>(
        &self,
        op: &'static str,
        after: Duration,
        f: F,
    ) -> Result<T, RuntimeError>
    where
        F: FnOnce(Docker) -> Fut,
        Fut: Future<Output = Result<T, DockerError>>,
    {
        timed(&self.conn.endpoint, op, after, async {
            if let Some(t) = &self.tunnel {
                t.ensure(after).await?;
            }
            let seen = self.relay.ensure().await?;
            // An answer the relay cut short reads as a broken connection or bad JSON to
            // the client: the relay knows what the node did.
            let error = |op, e| {
                self.relay
                    .blame(seen, op)
                    .unwrap_or_else(|| self.error(op, e))
            };
            let client = self
                .client
                .get_or_try_init(|| async {
                    let c = self.build_client().map_err(|e| error("connect", e))?;
                    c.negotiate_version().await.map_err(|e| error("connect", e))
                })
                .await?;
            f(client.clone()).await.map_err(|e| error(op, e))
        })
        .await
    }

    async fn call<T, F, Fut>(&self, op: &'static str, f: F) -> Result<T, RuntimeError>
    where
        F: FnOnce(Docker) -> Fut,
        Fut: Future<Output = Result<T, DockerError>>,
    {
        self.call_within(op, self.conn.timeout, f).await
    }

    fn error(&self, op: &'static str, e: DockerError) -> RuntimeError {
        match e {
            DockerError::DockerResponseServerError {
                status_code,
                message,
            } => RuntimeError::Api {
                op,
                message: format!("{status_code}: {message}"),
            },
            DockerError::HyperResponseError { .. }
            | DockerError::IOError { .. }
            | DockerError::HyperLegacyError { .. }
            | DockerError::RequestTimeoutError
            | DockerError::SocketNotFoundError(_) => self.unreachable(e.to_string()),
            other => RuntimeError::Api {
                op,
                message: other.to_string(),
            },
        }
    }

    async fn ensure_image(&self, image: &str) -> Result<(), RuntimeError> {
        let present = |d: Docker| {
            let image = image.to_string();
            async move { optional(d.inspect_image(&image).await).map(|i| i.is_some()) }
        };
        if self.call("inspect image", present).await? {
            return Ok(());
        }
        tracing::info!(image, "image absent, pulling");
        let unavailable = |reason: String| RuntimeError::ImageUnavailable {
            image: image.to_string(),
            reason,
        };
        let pull = |d: Docker| {
            let opts = qp::CreateImageOptions {
                from_image: Some(image.to_string()),
                ..Default::default()
            };
            async move {
                let mut stream = d.create_image(Some(opts), None, None);
                let mut last_error = None;
                while let Some(item) = stream.next().await {
                    let info = item?;
                    if let Some(detail) = info.error_detail {
                        last_error = detail.message.or(Some("pull failed".into()));
                    }
                }
                Ok(last_error)
            }
        };
        match self
            .call_within("pull image", self.conn.pull_timeout, pull)
            .await
        {
            Ok(None) => {}
            Ok(Some(reason)) => return Err(unavailable(reason)),
            Err(e) if e.is_unreachable() => return Err(e),
            Err(e) => return Err(unavailable(e.to_string())),
        }
        if self.call("inspect image", present).await? {
            Ok(())
        } else {
            Err(unavailable(
                "pull reported success but the image is absent".into(),
            ))
        }
    }
}

fn status_code(e: &DockerError) -> Option<u16> {
    match e {
        DockerError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// Maps "404 not found" to `None`.
fn optional<T>(r: Result<T, DockerError>) -> Result<Option<T>, DockerError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if status_code(&e) == Some(404) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Treats "304 not modified" (already started / stopped) as success.
fn idempotent(r: Result<(), DockerError>) -> Result<(), DockerError> {
    match r {
        Err(e) if status_code(&e) == Some(304) => Ok(()),
        other => other,
    }
}

#[async_trait]
impl Runtime for DockerRuntime {
    fn endpoint(&self) -> &Endpoint {
        &self.conn.endpoint
    }

    fn cluster(&self) -> Option<&str> {
        self.conn.cluster.as_deref()
    }

    async fn ping(&self) -> Result<RuntimeInfo, RuntimeError> {
        let v = self
            .call("ping", |d| async move { d.version().await })
            .await?;
        Ok(RuntimeInfo {
            kind: RuntimeKind::Docker,
            version: v.version.unwrap_or_default(),
        })
    }

    async fn list(&self) -> Result<Vec<ContainerState>, RuntimeError> {
        let cluster = self.cluster();
        // Docker requires every label filter to match.
        let labels = list_filters(cluster)
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let opts = qp::ListContainersOptions {
            all: true,
            filters: Some(HashMap::from([("label".to_string(), labels)])),
            ..Default::default()
        };
        let list = self
            .call("list containers", |d| async move {
                d.list_containers(Some(opts)).await
            })
            .await?;
        Ok(list
            .into_iter()
            .map(state_from_summary)
            .filter(|c| cluster.is_none() || is_ours(c, cluster))
            .collect())
    }

    async fn inspect(&self, name: &str) -> Result<Option<ContainerState>, RuntimeError> {
        let found = self
            .call("inspect container", |d| async move {
                optional(d.inspect_container(name, None).await)
            })
            .await?;
        Ok(found.map(state_from_inspect))
    }

    #[tracing::instrument(level = "info", skip_all, fields(runtime = "docker", endpoint = %self.conn.endpoint, network = %network.name))]
    async fn ensure_network(&self, network: &NetworkSpec) -> Result<(), RuntimeError> {
        let name = network.name.as_str();
        let found = self
            .call("inspect network", |d| async move {
                optional(d.inspect_network(name, None).await)
            })
            .await?;
        if let Some(found) = found {
            let subnets: Vec<String> = found
                .ipam
                .and_then(|i| i.config)
                .unwrap_or_default()
                .into_iter()
                .filter_map(|c| c.subnet)
                .collect();
            return check_subnet(network, &subnets);
        }
        let req = NetworkCreateRequest {
            name: network.name.clone(),
            driver: Some("bridge".into()),
            ipam: Some(Ipam {
                config: Some(vec![IpamConfig {
                    subnet: Some(network.subnet.to_string()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            enable_ipv6: Some(network.subnet.addr.is_ipv6()),
            labels: Some(HashMap::from([(
                label::MANAGED_BY.to_string(),
                label::MANAGED_BY_VALUE.to_string(),
            )])),
            ..Default::default()
        };
        self.call(
            "create network",
            |d| async move { d.create_network(req).await },
        )
        .await
        .map_err(|e| match e {
            RuntimeError::Api { message, .. } => RuntimeError::Network {
                name: network.name.clone(),
                reason: message,
            },
            other => other,
        })?;
        Ok(())
    }

    #[tracing::instrument(level = "info", skip_all, fields(runtime = "docker", endpoint = %self.conn.endpoint, instance = %spec.name(), image = %spec.image))]
    async fn create(&self, spec: &InstanceSpec) -> Result<String, RuntimeError> {
        // Creating starts nothing; the container gets quorate's labels and no restart
        // policy (design invariant 5), and an existing container of that name, managed
        // or not, is never replaced here.
        let name = spec.name();
        check_name_free(self, &name).await?;
        self.ensure_image(&spec.image).await?;
        let body = create_body(spec);
        let opts = qp::CreateContainerOptions {
            name: Some(name.clone()),
            ..Default::default()
        };
        let created = self
            .call("create container", |d| async move {
                d.create_container(Some(opts), body).await
            })
            .await;
        match created {
            Ok(c) => {
                tracing::info!(id = %c.id, "container created");
                Ok(c.id)
            }
            Err(RuntimeError::Api { op, message }) => {
                // Lost a race for the name? Report who holds it.
                check_name_free(self, &name).await?;
                Err(RuntimeError::Api {
                    op,
                    message: spec.redact(&message),
                })
            }
            Err(e) => Err(e),
        }
    }

    #[tracing::instrument(level = "info", skip_all, fields(runtime = "docker", endpoint = %self.conn.endpoint, instance = %name))]
    async fn start(&self, name: &str) -> Result<(), RuntimeError> {
        // Whether to start is decided by the planner under quorum (invariants 1-3);
        // here only quorate's own containers are started (checked by labels).
        let id = managed_id(self, name).await?;
        self.call("start container", |d| async move {
            idempotent(d.start_container(&id, None).await)
        })
        .await
    }

    #[tracing::instrument(level = "info", skip_all, fields(runtime = "docker", endpoint = %self.conn.endpoint, instance = %name, grace = ?grace))]
    async fn stop(&self, name: &str, grace: Duration) -> Result<(), RuntimeError> {
        // Only quorate's containers are stopped; a failed stop is an error the caller
        // escalates to fencing (design invariant 4).
        let id = managed_id(self, name).await?;
        let opts = qp::StopContainerOptions {
            t: Some(i32::try_from(grace.as_secs()).unwrap_or(i32::MAX)),
            signal: None,
        };
        let after = self.conn.timeout + grace;
        self.call_within("stop container", after, |d| async move {
            idempotent(d.stop_container(&id, Some(opts)).await)
        })
        .await
    }

    #[tracing::instrument(level = "info", skip_all, fields(runtime = "docker", endpoint = %self.conn.endpoint, instance = %name))]
    async fn remove(&self, name: &str) -> Result<(), RuntimeError> {
        let id = managed_id(self, name).await?;
        let opts = qp::RemoveContainerOptions {
            force: true,
            v: true,
            link: false,
        };
        self.call("remove container", |d| async move {
            optional(d.remove_container(&id, Some(opts)).await).map(|_| ())
        })
        .await
    }

    async fn exec(
        &self,
        name: &str,
        command: &[String],
        env: &[(String, String)],
    ) -> Result<ExecOutcome, RuntimeError> {
        let id = managed_id(self, name).await?;
        let config = ExecConfig {
            cmd: Some(command.to_vec()),
            env: Some(env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            ..Default::default()
        };
        let (info, stdout) = self
            .call("exec", |d| async move {
                let exec = d.create_exec(&id, config).await?;
                let mut stdout = Vec::new();
                if let StartExecResults::Attached { mut output, .. } =
                    d.start_exec(&exec.id, None).await?
                {
                    while let Some(chunk) = output.next().await {
                        if let LogOutput::StdOut { message } = chunk? {
                            super::keep_stdout(&mut stdout, &message);
                        }
                    }
                }
                Ok((d.inspect_exec(&exec.id).await?, stdout))
            })
            .await?;
        Ok(ExecOutcome {
            exit_code: info.exit_code,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
        })
    }
}

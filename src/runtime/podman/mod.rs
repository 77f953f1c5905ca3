//! The Podman driver, through the libpod REST API (`podman-api`).
//!
//! Endpoints: `podman+unix://` (local socket), `podman+ssh://` (an SSH tunnel to the
//! node's socket), `podman+tcp://` (plain, only with `insecure: true`; podman-api's TLS
//! needs OpenSSL and Podman does not serve TLS itself, so it is not offered). The client
//! always talks to the local [relay](super::relay), which bounds every answer's size.

use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use podman_api::Podman;
use podman_api::models;
use podman_api::opts;

use super::instance::{InstanceSpec, NetworkSpec, create_dirs, label};
use super::probe::Probe;
use super::relay::{Relay, Upstream};
use super::ssh::{SshTarget, SshTunnel};
use super::state::{ContainerState, ContainerStatus};
use super::{
    Connection, Endpoint, ExecOutcome, Runtime, RuntimeError, RuntimeInfo, RuntimeKind, Transport,
    check_name_free, check_subnet, is_ours, list_filters, managed_id, timed,
};

mod convert;
use convert::{create_opts, state_from_inspect, state_from_list};

/// A node's Podman service.
pub struct PodmanRuntime {
    conn: Connection,
    api: Podman,
    /// The ping's own connection, straight to the node.
    probe: Probe,
    relay: Relay,
    tunnel: Option<SshTunnel>,
    ssh: Option<SshTarget>,
}

impl PodmanRuntime {
    /// Prepares a driver; nothing is contacted until the first call.
    pub fn new(conn: Connection) -> Result<PodmanRuntime, RuntimeError> {
        conn.validate()?;
        let endpoint = conn.endpoint.to_string();
        let (upstream, tunnel, ssh) = match &conn.endpoint.transport {
            Transport::Unix(path) => (Upstream::Unix(path.clone()), None, None),
            Transport::Tcp { host, port } => {
                let tcp = Upstream::Tcp {
                    host: host.clone(),
                    port: *port,
                    tls: None,
                };
                (tcp, None, None)
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
                let tunnel = SshTunnel::new(target.clone(), socket.clone())?;
                let local = Upstream::Unix(tunnel.local_socket());
                (local, Some(tunnel), Some(target))
            }
        };
        // The ping goes straight to the node (it bounds what it reads itself); every
        // other answer comes through the relay, which bounds its size.
        let probe = Probe::new(upstream.clone(), "/v4.3.1/libpod/_ping");
        let relay = Relay::new(upstream, endpoint, conn.timeout)?;
        Ok(PodmanRuntime {
            api: Podman::unix(relay.socket()),
            probe,
            conn,
            relay,
            tunnel,
            ssh,
        })
    }

    /// Runs one API call within the connection timeout (after bringing up the tunnel).
    async fn call<T>(
        &self,
        op: &'static str,
        fut: impl Future<Output = Result<T, podman_api::Error>>,
    ) -> Result<T, RuntimeError> {
        self.call_within(op, self.conn.timeout, fut).await
    }

    async fn call_within<T>(
        &self,
        op: &'static str,
        after: Duration,
        fut: impl Future<Output = Result<T, podman_api::Error>>,
    ) -> Result<T, RuntimeError> {
        timed(&self.conn.endpoint, op, after, async {
            if let Some(t) = &self.tunnel {
                t.ensure(after).await?;
            }
            let seen = self.relay.ensure().await?;
            fut.await.map_err(|e| {
                // An answer the relay cut short reads as a broken connection or bad JSON
                // to the client: the relay knows what the node did.
                self.relay
                    .blame(seen, op)
                    .unwrap_or_else(|| self.error(op, e))
            })
        })
        .await
    }

    fn error(&self, op: &'static str, e: podman_api::Error) -> RuntimeError {
        use podman_api::conn::Error as ConnError;
        match e {
            podman_api::Error::Fault { code, message }
            | podman_api::Error::Error(ConnError::Fault { code, message }) => RuntimeError::Api {
                op,
                message: format!("{code}: {message}"),
            },
            podman_api::Error::Error(ConnError::Hyper(_) | ConnError::IO(_))
            | podman_api::Error::IO(_) => RuntimeError::Unreachable {
                endpoint: self.conn.endpoint.to_string(),
                reason: e.to_string(),
            },
            other => RuntimeError::Api {
                op,
                message: other.to_string(),
            },
        }
    }

    async fn ensure_image(&self, image: &str) -> Result<(), RuntimeError> {
        let img = self.api.images().get(image);
        if self.call("image exists", img.exists()).await? {
            return Ok(());
        }
        tracing::info!(image, "image absent, pulling");
        let unavailable = |reason: String| RuntimeError::ImageUnavailable {
            image: image.to_string(),
            reason,
        };
        let pull_opts = opts::PullOpts::builder()
            .reference(image)
            .policy(opts::PullPolicy::Missing)
            .quiet(true)
            .build();
        let pull = async {
            let images = self.api.images();
            let mut stream = images.pull(&pull_opts);
            let mut last_error = None;
            while let Some(item) = stream.next().await {
                match item {
                    Ok(report) => last_error = report.error.or(last_error),
                    Err(e) => return Err(e),
                }
            }
            Ok(last_error)
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
        if self.call("image exists", img.exists()).await? {
            Ok(())
        } else {
            Err(unavailable(
                "pull reported success but the image is absent".into(),
            ))
        }
    }

    /// Sends a signal; `false` when the container was not running (nothing to signal).
    async fn signal(&self, id: &str, signal: &str) -> Result<bool, RuntimeError> {
        let c = self.api.containers().get(id);
        match self.call("signal container", c.send_signal(signal)).await {
            Ok(()) => Ok(true),
            // Podman answers 500 "can only kill running containers" for a stopped one.
            Err(RuntimeError::Api { op, message }) => match self.inspect(id).await? {
                Some(s) if s.is_running() => Err(RuntimeError::Api { op, message }),
                _ => Ok(false),
            },
            Err(e) => Err(e),
        }
    }

    /// Polls until the container no longer runs; `false` if it still runs after `within`.
    async fn wait_stopped(&self, id: &str, within: Duration) -> Result<bool, RuntimeError> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match self.inspect(id).await? {
                Some(c) if c.is_running() || c.status == ContainerStatus::Stopping => {}
                _ => return Ok(true),
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn is_status(e: &podman_api::Error, status: u16) -> bool {
    use podman_api::conn::Error as ConnError;
    match e {
        podman_api::Error::Fault { code, .. }
        | podman_api::Error::Error(ConnError::Fault { code, .. }) => code.as_u16() == status,
        _ => false,
    }
}

/// Maps "404 not found" to `None`.
async fn optional<T>(
    fut: impl Future<Output = Result<T, podman_api::Error>>,
) -> Result<Option<T>, podman_api::Error> {
    match fut.await {
        Ok(v) => Ok(Some(v)),
        Err(e) if is_status(&e, 404) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Treats "304 not modified" (already started / already stopped) as success.
async fn idempotent(
    fut: impl Future<Output = Result<(), podman_api::Error>>,
) -> Result<(), podman_api::Error> {
    match fut.await {
        Err(e) if is_status(&e, 304) => Ok(()),
        other => other,
    }
}

#[async_trait]
impl Runtime for PodmanRuntime {
    fn endpoint(&self) -> &Endpoint {
        &self.conn.endpoint
    }

    fn cluster(&self) -> Option<&str> {
        self.conn.cluster.as_deref()
    }

    /// `GET /libpod/_ping` on the probe's own kept-alive connection ([`super::probe`]).
    async fn ping(&self) -> Result<RuntimeInfo, RuntimeError> {
        let endpoint = &self.conn.endpoint;
        let unreachable = |reason: String| RuntimeError::Unreachable {
            endpoint: endpoint.to_string(),
            reason: format!("ping: {reason}"),
        };
        let (status, headers) = timed(endpoint, "ping", self.conn.timeout, async {
            if let Some(t) = &self.tunnel {
                t.ensure(self.conn.timeout).await?;
            }
            self.probe.get().await.map_err(unreachable)
        })
        .await?;
        match headers.get("libpod-api-version") {
            Some(v) if status.is_success() => Ok(RuntimeInfo {
                kind: RuntimeKind::Podman,
                version: String::from_utf8_lossy(v.as_bytes()).into_owned(),
            }),
            _ => Err(RuntimeError::Api {
                op: "ping",
                message: format!("{status}, no Libpod-Api-Version header: not a Podman service"),
            }),
        }
    }

    async fn list(&self) -> Result<Vec<ContainerState>, RuntimeError> {
        let cluster = self.cluster();
        let opts = opts::ContainerListOpts::builder()
            .all(true)
            .filter(
                list_filters(cluster)
                    .into_iter()
                    .map(|(k, v)| opts::ContainerListFilter::LabelKeyVal(k, v)),
            )
            .build();
        let list = self
            .call("list containers", self.api.containers().list(&opts))
            .await?;
        Ok(list
            .into_iter()
            .map(state_from_list)
            .filter(|c| cluster.is_none() || is_ours(c, cluster))
            .collect())
    }

    async fn inspect(&self, name: &str) -> Result<Option<ContainerState>, RuntimeError> {
        let c = self.api.containers().get(name);
        let found = self
            .call("inspect container", optional(c.inspect()))
            .await?;
        Ok(found.map(state_from_inspect))
    }

    #[tracing::instrument(level = "info", skip_all, fields(runtime = "podman", endpoint = %self.conn.endpoint, network = %network.name))]
    async fn ensure_network(&self, network: &NetworkSpec) -> Result<(), RuntimeError> {
        let net = self.api.networks().get(&network.name);
        if let Some(found) = self
            .call("inspect network", optional(net.inspect()))
            .await?
        {
            let subnets: Vec<String> = found
                .subnets
                .unwrap_or_default()
                .into_iter()
                .filter_map(|s| s.subnet)
                .collect();
            return check_subnet(network, &subnets);
        }
        let opts = opts::NetworkCreateOpts::builder()
            .name(&network.name)
            .driver("bridge")
            .subnets([models::Subnet {
                gateway: None,
                lease_range: None,
                subnet: Some(network.subnet.to_string()),
            }])
            .labels([(label::MANAGED_BY, label::MANAGED_BY_VALUE)])
            .build();
        self.call("create network", self.api.networks().create(&opts))
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

    #[tracing::instrument(level = "info", skip_all, fields(runtime = "podman", endpoint = %self.conn.endpoint, instance = %spec.name(), image = %spec.image))]
    async fn create(&self, spec: &InstanceSpec) -> Result<String, RuntimeError> {
        // Creating starts nothing; the container gets quorate's labels and no restart
        // policy (design invariant 5), and an existing container of that name, managed
        // or not, is never replaced here.
        let name = spec.name();
        check_name_free(self, &name).await?;
        self.ensure_image(&spec.image).await?;
        let dirs = spec.dirs_to_create();
        match (&self.conn.endpoint.transport, &self.ssh) {
            (Transport::Unix(_), _) => {
                let local = async {
                    create_dirs(&dirs)
                        .await
                        .map_err(|(path, e)| RuntimeError::Storage {
                            path,
                            reason: e.to_string(),
                        })
                };
                timed(&self.conn.endpoint, "mkdir", self.conn.timeout, local).await?
            }
            (Transport::Ssh { .. }, Some(ssh)) => {
                timed(
                    &self.conn.endpoint,
                    "mkdir",
                    self.conn.timeout,
                    ssh.mkdir_p(&dirs),
                )
                .await?
            }
            // Plain TCP: no way to create host directories; Podman reports a missing one.
            _ => {}
        }
        let opts = create_opts(spec);
        match self
            .call("create container", self.api.containers().create(&opts))
            .await
        {
            Ok(created) => {
                tracing::info!(id = %created.id, "container created");
                Ok(created.id)
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

    #[tracing::instrument(level = "info", skip_all, fields(runtime = "podman", endpoint = %self.conn.endpoint, instance = %name))]
    async fn start(&self, name: &str) -> Result<(), RuntimeError> {
        // Whether to start is decided by the planner under quorum (invariants 1-3);
        // here only quorate's own containers are started (checked by labels).
        let id = managed_id(self, name).await?;
        let c = self.api.containers().get(id);
        self.call("start container", idempotent(c.start(None)))
            .await
    }

    #[tracing::instrument(level = "info", skip_all, fields(runtime = "podman", endpoint = %self.conn.endpoint, instance = %name, grace = ?grace))]
    async fn stop(&self, name: &str, grace: Duration) -> Result<(), RuntimeError> {
        // Only quorate's containers are stopped; a failed stop is an error the caller
        // escalates to fencing (design invariant 4).
        // The libpod stop call ignores podman-api's timeout parameter (it always waited
        // the container's default 10 s), so the grace period is kept here: SIGTERM,
        // wait up to `grace`, then SIGKILL.
        let id = managed_id(self, name).await?;
        if !self.signal(&id, "SIGTERM").await? || self.wait_stopped(&id, grace).await? {
            return Ok(());
        }
        tracing::warn!("still running after the grace period, sending SIGKILL");
        self.signal(&id, "SIGKILL").await?;
        if self.wait_stopped(&id, self.conn.timeout).await? {
            Ok(())
        } else {
            Err(RuntimeError::Api {
                op: "stop container",
                message: format!("`{name}` still runs after SIGKILL"),
            })
        }
    }

    #[tracing::instrument(level = "info", skip_all, fields(runtime = "podman", endpoint = %self.conn.endpoint, instance = %name))]
    async fn remove(&self, name: &str) -> Result<(), RuntimeError> {
        let id = managed_id(self, name).await?;
        let c = self.api.containers().get(id);
        // A running container is killed at once: removal is not a graceful stop.
        let opts = opts::ContainerDeleteOpts::builder()
            .force(true)
            .volumes(true)
            .timeout(0)
            .build();
        let gone = self
            .call("remove container", optional(c.delete(&opts)))
            .await?;
        let _ = gone; // already gone counts as removed
        Ok(())
    }

    async fn exec(
        &self,
        name: &str,
        command: &[String],
        env: &[(String, String)],
    ) -> Result<ExecOutcome, RuntimeError> {
        let id = managed_id(self, name).await?;
        let c = self.api.containers().get(id);
        let create = opts::ExecCreateOpts::builder()
            .command(command)
            .env(env.iter().cloned())
            .attach_stdout(true)
            .attach_stderr(true)
            .build();
        let mut stdout = Vec::new();
        let run = async {
            let exec = c.create_exec(&create).await?;
            let start = opts::ExecStartOpts::builder().build();
            if let Some(mut output) = exec.start(&start).await? {
                while let Some(chunk) = output.next().await {
                    if let podman_api::conn::TtyChunk::StdOut(bytes) = chunk? {
                        super::keep_stdout(&mut stdout, &bytes);
                    }
                }
            }
            exec.inspect().await
        };
        let info = self.call("exec", run).await?;
        Ok(ExecOutcome {
            exit_code: info.get("ExitCode").and_then(|v| v.as_i64()),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
        })
    }
}

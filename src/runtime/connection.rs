//! How to reach a node's container runtime safely: the endpoint (the spec's
//! [`Endpoint`]) plus the settings that authenticate it and bound every call.
//!
//! A runtime API is root on its node, so a remote endpoint must be authenticated:
//! Docker over TCP with TLS client certificates, or either runtime through an SSH tunnel
//! to the node's socket. Plain TCP is refused unless the node says `insecure: true`.

use std::path::PathBuf;
use std::time::Duration;

use crate::spec::endpoint::{Endpoint, RuntimeKind, Transport};

/// Why an endpoint or connection setting was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    /// The URL does not parse (the message says why and shows the accepted shapes).
    #[error("{reason}")]
    Invalid {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Plain TCP gives root on the node to anyone on the network.
    #[error(
        "endpoint `{url}` is plain TCP without authentication; use TLS (docker), ssh, \
         or set `insecure: true` on the node if this network is trusted"
    )]
    InsecureRefused {
        /// The URL as given.
        url: String,
    },
    /// The combination is not supported by the driver.
    #[error("endpoint `{url}`: {reason}")]
    Unsupported {
        /// The URL as given.
        url: String,
        /// What is not supported.
        reason: String,
    },
}

/// Client certificate files for Docker over TLS (PEM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// CA that signed the daemon's certificate.
    pub ca: PathBuf,
    /// Client certificate.
    pub cert: PathBuf,
    /// Client private key.
    pub key: PathBuf,
}

impl From<&crate::spec::cluster::TlsFiles> for TlsFiles {
    fn from(t: &crate::spec::cluster::TlsFiles) -> Self {
        TlsFiles {
            ca: t.ca_file.clone(),
            cert: t.cert_file.clone(),
            key: t.key_file.clone(),
        }
    }
}

/// Everything needed to talk to one node's runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// The endpoint.
    pub endpoint: Endpoint,
    /// Allow plain TCP (no authentication). Off unless the node says `insecure: true`.
    pub insecure: bool,
    /// TLS client certificates (Docker over TCP).
    pub tls: Option<TlsFiles>,
    /// SSH identity file for ssh endpoints (else ssh's own defaults and agent).
    pub ssh_identity: Option<PathBuf>,
    /// A known_hosts file pinning the node's SSH host key (else ssh's own files).
    /// The host key is always checked: unknown or changed keys are refused.
    pub ssh_known_hosts: Option<PathBuf>,
    /// The cluster whose containers count as quorate's on this connection. When set,
    /// [`Runtime::list`](super::Runtime::list) returns only containers labelled with it,
    /// and a container of another cluster is treated like any unmanaged one: never
    /// started, stopped, removed or replaced ([`RuntimeError::Conflict`](super::RuntimeError)).
    /// When `None`, every container with quorate's `managed-by` label counts.
    pub cluster: Option<String>,
    /// Upper bound on every API call (pulls use `pull_timeout`).
    pub timeout: Duration,
    /// Upper bound on pulling a missing image.
    pub pull_timeout: Duration,
}

impl Connection {
    /// A connection with the default timeouts (10 s per call, 5 min per pull).
    pub fn new(endpoint: Endpoint) -> Connection {
        Connection {
            endpoint,
            insecure: false,
            tls: None,
            ssh_identity: None,
            ssh_known_hosts: None,
            cluster: None,
            timeout: Duration::from_secs(10),
            pull_timeout: Duration::from_secs(300),
        }
    }

    /// Parses `url` into a connection with default settings.
    pub fn parse(url: &str) -> Result<Connection, EndpointError> {
        url.parse::<Endpoint>()
            .map(Connection::new)
            .map_err(|reason| EndpointError::Invalid {
                url: url.to_string(),
                reason,
            })
    }

    /// The same connection, counting only containers of cluster `name` as quorate's.
    pub fn for_cluster(mut self, name: &str) -> Connection {
        self.cluster = Some(name.to_string());
        self
    }

    /// Checks that the settings are safe and supported: plain TCP only with `insecure`,
    /// TLS only for Docker over TCP, SSH settings only for SSH endpoints.
    pub fn validate(&self) -> Result<(), EndpointError> {
        let url = self.endpoint.to_string();
        let unsupported = |reason: &str| EndpointError::Unsupported {
            url: url.clone(),
            reason: reason.into(),
        };
        let tcp = matches!(self.endpoint.transport, Transport::Tcp { .. });
        let ssh = matches!(self.endpoint.transport, Transport::Ssh { .. });
        if (self.ssh_identity.is_some() || self.ssh_known_hosts.is_some()) && !ssh {
            return Err(unsupported("SSH settings apply only to +ssh endpoints"));
        }
        match (tcp, self.endpoint.kind, self.tls.is_some()) {
            (true, RuntimeKind::Podman, true) => Err(unsupported(
                "TLS to Podman is not supported; use podman+ssh",
            )),
            (false, _, true) => Err(unsupported(
                "TLS settings apply only to docker+tcp endpoints",
            )),
            (true, RuntimeKind::Docker, true) => Ok(()),
            (true, _, false) if !self.insecure => Err(EndpointError::InsecureRefused { url }),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls() -> Option<TlsFiles> {
        Some(TlsFiles {
            ca: "ca.pem".into(),
            cert: "cert.pem".into(),
            key: "key.pem".into(),
        })
    }

    #[test]
    fn plain_tcp_needs_insecure() {
        let mut c = Connection::parse("docker+tcp://10.0.0.1:2375").unwrap();
        assert!(matches!(
            c.validate(),
            Err(EndpointError::InsecureRefused { .. })
        ));
        c.insecure = true;
        assert!(c.validate().is_ok());
        let mut c = Connection::parse("podman+tcp://10.0.0.1:8080").unwrap();
        assert!(matches!(
            c.validate(),
            Err(EndpointError::InsecureRefused { .. })
        ));
        c.insecure = true;
        assert!(c.validate().is_ok());
    }

    #[test]
    fn tls_only_for_docker_over_tcp() {
        let mut c = Connection::parse("docker+tcp://10.0.0.1:2376").unwrap();
        c.tls = tls();
        assert!(c.validate().is_ok());
        let mut c = Connection::parse("podman+tcp://10.0.0.1:8080").unwrap();
        c.tls = tls();
        c.insecure = true;
        assert!(matches!(
            c.validate(),
            Err(EndpointError::Unsupported { .. })
        ));
        let mut c = Connection::parse("docker+unix:///var/run/docker.sock").unwrap();
        c.tls = tls();
        assert!(matches!(
            c.validate(),
            Err(EndpointError::Unsupported { .. })
        ));
    }

    #[test]
    fn ssh_settings_only_for_ssh() {
        let mut c = Connection::parse("podman+ssh://h/s").unwrap();
        c.ssh_identity = Some("id".into());
        c.ssh_known_hosts = Some("kh".into());
        assert!(c.validate().is_ok());
        let mut c = Connection::parse("podman+unix:///s").unwrap();
        assert!(c.validate().is_ok());
        c.ssh_identity = Some("id".into());
        let e = c.validate().unwrap_err();
        assert!(e.to_string().contains("+ssh"), "{e}");
    }

    #[test]
    fn bad_urls_are_invalid_and_say_why() {
        match Connection::parse("lxc+unix:///x") {
            Err(EndpointError::Invalid { url, reason }) => {
                assert_eq!(url, "lxc+unix:///x");
                assert!(reason.contains("podman or docker"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        let c = Connection::parse("docker+unix:///s")
            .unwrap()
            .for_cluster("prod");
        assert_eq!(c.cluster.as_deref(), Some("prod"));
    }
}

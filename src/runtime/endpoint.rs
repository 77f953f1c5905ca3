//! Where a node's container runtime API is and how to reach it safely.
//!
//! A runtime API is root on its node, so a remote endpoint must be authenticated:
//! Docker over TCP with TLS client certificates, or either runtime through an SSH tunnel
//! to the node's socket. Plain TCP is refused unless the node says `insecure: true`.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Which container runtime an endpoint speaks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuntimeKind {
    /// Podman, through its libpod REST API.
    Podman,
    /// Docker Engine, through its REST API.
    Docker,
}

impl fmt::Display for RuntimeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RuntimeKind::Podman => "podman",
            RuntimeKind::Docker => "docker",
        })
    }
}

/// How the API is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// A Unix socket on this machine.
    Unix {
        /// Path of the socket.
        path: PathBuf,
    },
    /// TCP: plain (needs `insecure`) or, for Docker, TLS with client certificates.
    Tcp {
        /// Host name or address.
        host: String,
        /// TCP port.
        port: u16,
    },
    /// An SSH tunnel to a Unix socket on the node.
    Ssh {
        /// Remote user, if given.
        user: Option<String>,
        /// Host name or address.
        host: String,
        /// SSH port (22 unless given).
        port: u16,
        /// Path of the runtime's socket on the node.
        socket: PathBuf,
    },
}

/// A parsed endpoint URL such as `podman+unix:///run/podman/podman.sock`,
/// `docker+tcp://10.0.0.1:2376` or `podman+ssh://core@node1:22/run/podman/podman.sock`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The runtime behind the endpoint.
    pub kind: RuntimeKind,
    /// How to reach it.
    pub transport: Transport,
}

/// Why an endpoint or connection setting was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    /// The URL does not have the shape `<runtime>+<transport>://...`.
    #[error("invalid runtime endpoint `{url}`: {reason}")]
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

impl Endpoint {
    /// Parses an endpoint URL.
    pub fn parse(url: &str) -> Result<Endpoint, EndpointError> {
        let invalid = |reason: &str| EndpointError::Invalid {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| invalid("missing `://`"))?;
        let (kind, transport) = scheme
            .split_once('+')
            .ok_or_else(|| invalid("scheme must be `podman+...` or `docker+...`"))?;
        let kind = match kind {
            "podman" => RuntimeKind::Podman,
            "docker" => RuntimeKind::Docker,
            _ => return Err(invalid("runtime must be `podman` or `docker`")),
        };
        let transport = match transport {
            "unix" => {
                if !rest.starts_with('/') {
                    return Err(invalid("unix socket path must be absolute"));
                }
                Transport::Unix {
                    path: PathBuf::from(rest),
                }
            }
            "tcp" => {
                let authority = rest.trim_end_matches('/');
                if authority.contains('/') {
                    return Err(invalid("tcp endpoint takes no path"));
                }
                let (host, port) = split_host_port(authority, None).map_err(|r| invalid(&r))?;
                Transport::Tcp { host, port }
            }
            "ssh" => {
                let (authority, path) = rest
                    .split_once('/')
                    .ok_or_else(|| invalid("ssh endpoint needs the remote socket path"))?;
                let (user, hostport) = match authority.rsplit_once('@') {
                    Some((u, h)) if !u.is_empty() => (Some(u.to_string()), h),
                    Some(_) => return Err(invalid("empty ssh user")),
                    None => (None, authority),
                };
                let (host, port) = split_host_port(hostport, Some(22)).map_err(|r| invalid(&r))?;
                Transport::Ssh {
                    user,
                    host,
                    port,
                    socket: PathBuf::from(format!("/{path}")),
                }
            }
            _ => return Err(invalid("transport must be `unix`, `tcp` or `ssh`")),
        };
        Ok(Endpoint { kind, transport })
    }

    /// True for endpoints that leave this machine.
    pub fn is_remote(&self) -> bool {
        !matches!(self.transport, Transport::Unix { .. })
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.transport {
            Transport::Unix { path } => write!(f, "{}+unix://{}", self.kind, path.display()),
            Transport::Tcp { host, port } => {
                write!(f, "{}+tcp://{}:{port}", self.kind, bracket(host))
            }
            Transport::Ssh {
                user,
                host,
                port,
                socket,
            } => {
                write!(f, "{}+ssh://", self.kind)?;
                if let Some(u) = user {
                    write!(f, "{u}@")?;
                }
                write!(f, "{}:{port}{}", bracket(host), socket.display())
            }
        }
    }
}

fn bracket(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// Splits `host:port`, `[v6]:port` or (with a default port) a bare host.
fn split_host_port(s: &str, default_port: Option<u16>) -> Result<(String, u16), String> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest.split_once(']').ok_or("unclosed `[` in host")?;
        match after.strip_prefix(':') {
            Some(p) => (h, Some(p)),
            None if after.is_empty() => (h, None),
            None => return Err("junk after `]`".into()),
        }
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    if host.is_empty() {
        return Err("missing host".into());
    }
    let port = match (port, default_port) {
        (Some(p), _) => p.parse::<u16>().map_err(|_| format!("bad port `{p}`"))?,
        (None, Some(d)) => d,
        (None, None) => return Err("missing port".into()),
    };
    Ok((host.to_string(), port))
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
            timeout: Duration::from_secs(10),
            pull_timeout: Duration::from_secs(300),
        }
    }

    /// Parses `url` into a connection with default settings.
    pub fn parse(url: &str) -> Result<Connection, EndpointError> {
        Endpoint::parse(url).map(Connection::new)
    }

    /// Checks that the settings are safe and supported: plain TCP only with `insecure`,
    /// TLS only for Docker over TCP.
    pub fn validate(&self) -> Result<(), EndpointError> {
        let url = self.endpoint.to_string();
        match (&self.endpoint.transport, self.endpoint.kind) {
            (Transport::Tcp { .. }, RuntimeKind::Docker) if self.tls.is_some() => Ok(()),
            (Transport::Tcp { .. }, RuntimeKind::Podman) if self.tls.is_some() => {
                Err(EndpointError::Unsupported {
                    url,
                    reason: "TLS to Podman is not supported; use podman+ssh".into(),
                })
            }
            (Transport::Tcp { .. }, _) if !self.insecure => {
                Err(EndpointError::InsecureRefused { url })
            }
            (_, _)
                if self.tls.is_some()
                    && !matches!(self.endpoint.transport, Transport::Tcp { .. }) =>
            {
                Err(EndpointError::Unsupported {
                    url,
                    reason: "TLS settings apply only to docker+tcp endpoints".into(),
                })
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_all_shapes() {
        let e = Endpoint::parse("podman+unix:///run/podman/podman.sock").unwrap();
        assert_eq!(e.kind, RuntimeKind::Podman);
        assert_eq!(
            e.transport,
            Transport::Unix {
                path: "/run/podman/podman.sock".into()
            }
        );
        let e = Endpoint::parse("docker+tcp://10.0.0.1:2376").unwrap();
        assert_eq!(
            e.transport,
            Transport::Tcp {
                host: "10.0.0.1".into(),
                port: 2376
            }
        );
        let e = Endpoint::parse("podman+ssh://core@node1:2222/run/podman/podman.sock").unwrap();
        assert_eq!(
            e.transport,
            Transport::Ssh {
                user: Some("core".into()),
                host: "node1".into(),
                port: 2222,
                socket: "/run/podman/podman.sock".into()
            }
        );
        let e = Endpoint::parse("docker+ssh://[fe80::1]/var/run/docker.sock").unwrap();
        assert!(
            matches!(e.transport, Transport::Ssh { ref host, port: 22, user: None, .. } if host == "fe80::1")
        );
        assert_eq!(
            e.to_string(),
            "docker+ssh://[fe80::1]:22/var/run/docker.sock"
        );
    }

    #[test]
    fn rejects_bad_urls() {
        for bad in [
            "unix:///x",
            "lxc+unix:///x",
            "podman+unix://relative",
            "docker+tcp://host",
            "docker+tcp://host:99999",
            "docker+tcp://:2376",
            "podman+ssh://host",
            "podman+udp://h:1",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad} should fail");
        }
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
        let mut c = Connection::parse("docker+tcp://10.0.0.1:2376").unwrap();
        c.tls = Some(TlsFiles {
            ca: "ca.pem".into(),
            cert: "cert.pem".into(),
            key: "key.pem".into(),
        });
        assert!(c.validate().is_ok());
        let mut c = Connection::parse("podman+tcp://10.0.0.1:8080").unwrap();
        c.tls = c.tls.take().or(Some(TlsFiles {
            ca: "a".into(),
            cert: "b".into(),
            key: "c".into(),
        }));
        assert!(matches!(
            c.validate(),
            Err(EndpointError::Unsupported { .. })
        ));
        assert!(
            Connection::parse("podman+unix:///s")
                .unwrap()
                .validate()
                .is_ok()
        );
        assert!(
            Connection::parse("podman+ssh://h/s")
                .unwrap()
                .validate()
                .is_ok()
        );
    }
}

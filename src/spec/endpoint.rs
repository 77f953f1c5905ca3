//! Where a node's container runtime API listens: `podman+unix:///run/podman/podman.sock`,
//! `podman+tcp://10.0.0.5:8080`, `podman+ssh://root@node1/run/podman/podman.sock`,
//! `docker+unix:///var/run/docker.sock`, `docker+tcp://node1:2376`, `docker+ssh://root@node1`.
//!
//! The one endpoint type of quorate: parsed when the specs load (so a bad URL is reported
//! at its span in the Cluster document) and handed as it is to the runtime drivers
//! ([`crate::runtime::Connection`] adds the settings that make it safe to use).

use std::borrow::Cow;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// Which runtime API a node speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeKind {
    /// Podman's libpod API.
    Podman,
    /// The Docker Engine API.
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
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Transport {
    /// A local unix socket.
    Unix(PathBuf),
    /// Plain TCP (Docker: TLS when the node has `tls`; otherwise needs `insecure: true`).
    Tcp {
        /// Host name or address.
        host: String,
        /// Port.
        port: u16,
    },
    /// An SSH tunnel to the runtime's unix socket on the node.
    Ssh {
        /// Login user.
        user: Option<String>,
        /// Host name or address.
        host: String,
        /// SSH port.
        port: u16,
        /// The runtime socket on the node.
        socket: PathBuf,
    },
}

/// A parsed runtime endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// Podman or Docker.
    pub kind: RuntimeKind,
    /// Unix, TCP or SSH.
    pub transport: Transport,
}

impl Endpoint {
    /// Whether the transport crosses the network (TCP or SSH).
    pub fn is_remote(&self) -> bool {
        !matches!(self.transport, Transport::Unix(_))
    }
}

const HELP: &str = "use podman+unix:///path, podman+tcp://host:port, podman+ssh://user@host/path, docker+unix:///path, docker+tcp://host:port or docker+ssh://user@host";

impl FromStr for Endpoint {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("invalid runtime endpoint `{s}`: {why}; {HELP}");
        let (scheme, rest) = s.split_once("://").ok_or_else(|| bad("no scheme"))?;
        let (kind, transport) = scheme
            .split_once('+')
            .ok_or_else(|| bad("no runtime in the scheme"))?;
        let kind = match kind {
            "podman" => RuntimeKind::Podman,
            "docker" => RuntimeKind::Docker,
            _ => return Err(bad("the runtime must be podman or docker")),
        };
        let transport = match transport {
            "unix" => {
                if !rest.starts_with('/') {
                    return Err(bad("a unix socket path must be absolute"));
                }
                Transport::Unix(PathBuf::from(rest))
            }
            "tcp" => {
                let (host, port) =
                    host_port(rest.trim_end_matches('/'), None).map_err(|w| bad(&w))?;
                Transport::Tcp { host, port }
            }
            "ssh" => {
                let (authority, path) = match rest.find('/') {
                    Some(i) => (&rest[..i], &rest[i..]),
                    None => (rest, ""),
                };
                let (user, hostport) = match authority.rsplit_once('@') {
                    Some((u, h)) if !u.is_empty() => (Some(u.to_owned()), h),
                    Some(_) => return Err(bad("empty user name")),
                    None => (None, authority),
                };
                let (host, port) = host_port(hostport, Some(22)).map_err(|w| bad(&w))?;
                let socket = if path.len() > 1 {
                    PathBuf::from(path)
                } else {
                    PathBuf::from(match kind {
                        RuntimeKind::Podman => "/run/podman/podman.sock",
                        RuntimeKind::Docker => "/var/run/docker.sock",
                    })
                };
                Transport::Ssh {
                    user,
                    host,
                    port,
                    socket,
                }
            }
            _ => return Err(bad("the transport must be unix, tcp or ssh")),
        };
        Ok(Endpoint { kind, transport })
    }
}

fn host_port(s: &str, default_port: Option<u16>) -> Result<(String, u16), String> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, p) = rest
            .split_once(']')
            .ok_or("unclosed `[` in an IPv6 address")?;
        match p.strip_prefix(':') {
            Some(port) => (h, Some(port)),
            None if p.is_empty() => (h, None),
            None => return Err(format!("unexpected `{p}` after `]`")),
        }
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    if host.is_empty() {
        return Err("no host".to_owned());
    }
    let port = match (port, default_port) {
        (Some(p), _) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("invalid port `{p}`"))?,
        (None, Some(d)) => d,
        (None, None) => return Err("a tcp endpoint needs a port".to_owned()),
    };
    Ok((host.to_owned(), port))
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = self.kind;
        let bracket = |h: &str| {
            if h.contains(':') {
                format!("[{h}]")
            } else {
                h.to_owned()
            }
        };
        match &self.transport {
            Transport::Unix(p) => write!(f, "{kind}+unix://{}", p.display()),
            Transport::Tcp { host, port } => write!(f, "{kind}+tcp://{}:{port}", bracket(host)),
            Transport::Ssh {
                user,
                host,
                port,
                socket,
            } => {
                write!(f, "{kind}+ssh://")?;
                if let Some(u) = user {
                    write!(f, "{u}@")?;
                }
                write!(f, "{}:{port}{}", bracket(host), socket.display())
            }
        }
    }
}

impl Serialize for Endpoint {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Endpoint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s: Cow<'de, str> = Deserialize::deserialize(d)?;
        s.parse().map_err(de::Error::custom)
    }
}

impl JsonSchema for Endpoint {
    fn schema_name() -> Cow<'static, str> {
        "Endpoint".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^(podman|docker)\\+(unix|tcp|ssh)://",
            "description": HELP
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_and_print_back() {
        for s in [
            "podman+unix:///run/podman/podman.sock",
            "podman+tcp://10.0.0.5:8080",
            "docker+tcp://[fd00::1]:2376",
            "podman+ssh://root@node1:22/run/podman/podman.sock",
            "docker+unix:///var/run/docker.sock",
        ] {
            let e: Endpoint = s.parse().unwrap();
            assert_eq!(e.to_string(), s);
        }
        let e: Endpoint = "docker+ssh://core@n2".parse().unwrap();
        assert_eq!(e.to_string(), "docker+ssh://core@n2:22/var/run/docker.sock");
        assert!(e.is_remote());
        assert!(!"podman+unix:///s".parse::<Endpoint>().unwrap().is_remote());
    }

    #[test]
    fn endpoints_parse_into_their_parts() {
        let e: Endpoint = "podman+unix:///run/podman/podman.sock".parse().unwrap();
        assert_eq!(e.kind, RuntimeKind::Podman);
        assert_eq!(
            e.transport,
            Transport::Unix("/run/podman/podman.sock".into())
        );
        let e: Endpoint = "docker+tcp://10.0.0.1:2376/".parse().unwrap();
        assert_eq!(e.kind, RuntimeKind::Docker);
        assert_eq!(
            e.transport,
            Transport::Tcp {
                host: "10.0.0.1".into(),
                port: 2376
            }
        );
        let e: Endpoint = "podman+ssh://core@node1:2222/run/user/1000/podman/podman.sock"
            .parse()
            .unwrap();
        assert_eq!(
            e.transport,
            Transport::Ssh {
                user: Some("core".into()),
                host: "node1".into(),
                port: 2222,
                socket: "/run/user/1000/podman/podman.sock".into()
            }
        );
        // An IPv6 host without a port gets SSH's port and the runtime's default socket.
        let e: Endpoint = "podman+ssh://[fe80::1]".parse().unwrap();
        assert_eq!(
            e.transport,
            Transport::Ssh {
                user: None,
                host: "fe80::1".into(),
                port: 22,
                socket: "/run/podman/podman.sock".into()
            }
        );
        assert_eq!(
            e.to_string(),
            "podman+ssh://[fe80::1]:22/run/podman/podman.sock"
        );
        assert_eq!(RuntimeKind::Docker.to_string(), "docker");
    }

    #[test]
    fn bad_endpoints_say_why() {
        for s in [
            "tcp://host:1",
            "containerd+unix:///x",
            "podman+tcp://host",
            "podman+unix://relative",
            "podman+tcp://:80",
            "podman+tcp://h:0",
            "podman+http://h:1",
            "docker+tcp://host:99999",
            "docker+tcp://[::1]x:2376",
            "podman+ssh://[::1]junk/run/podman.sock",
            "podman+ssh://@host/s",
            "podman+ssh://[::1/s",
        ] {
            let e = s.parse::<Endpoint>().unwrap_err();
            assert!(e.contains("invalid runtime endpoint"), "{s}: {e}");
        }
    }
}

//! High availability: several `quorate run` replicas coordinated through etcd
//! (`--etcd`). One is the leader and reconciles; the others follow the repository,
//! validate its commits and serve status. See docs/ha.md for the safety argument.
//!
//! - [`lease`]: when a replica may act, by its own monotonic clock (invariant 9); the one
//!   place that decides it.
//! - [`leader`]: the election (an etcd lease and a key created under it) and its renewal.
//! - [`env`]: the lease check before every start, stop and power command.
//! - [`store`]: the shared state in etcd, every write guarded by the fencing token.
//! - [`migrate`]: `quorate state export` and `import`, from SQLite to etcd.

pub mod env;
pub mod leader;
pub mod lease;
pub mod migrate;
pub mod store;

use std::path::PathBuf;
use std::time::Duration;

use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};
use serde::{Deserialize, Serialize};

/// How to reach etcd.
#[derive(Debug, Clone, Default)]
pub struct EtcdConfig {
    /// Client URLs (`http://` or `https://`).
    pub endpoints: Vec<String>,
    /// CA certificate that signs the members' certificates (PEM).
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM).
    pub cert_file: Option<PathBuf>,
    /// Its key (PEM).
    pub key_file: Option<PathBuf>,
    /// Bound on each request.
    pub timeout: Duration,
}

/// Connects to etcd (lazily: a member that is down is tried again at each request).
pub async fn connect(cfg: &EtcdConfig) -> Result<Client, String> {
    if cfg.endpoints.is_empty() {
        return Err("--etcd needs at least one URL".into());
    }
    let mut opts = ConnectOptions::new()
        .with_timeout(cfg.timeout)
        .with_connect_timeout(cfg.timeout)
        .with_keep_alive(cfg.timeout, cfg.timeout)
        // A member cut off from the majority answers with an error at once.
        .with_require_leader(true);
    if let Some(tls) = tls(cfg)? {
        opts = opts.with_tls(tls);
    }
    Client::connect(&cfg.endpoints, Some(opts))
        .await
        .map_err(|e| format!("cannot reach etcd at {}: {e}", cfg.endpoints.join(",")))
}

fn read(path: &PathBuf, what: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{what} {}: {e}", path.display()))
}

fn tls(cfg: &EtcdConfig) -> Result<Option<TlsOptions>, String> {
    let mut tls = TlsOptions::new();
    let mut any = false;
    if let Some(ca) = &cfg.ca_file {
        tls = tls.ca_certificate(Certificate::from_pem(read(ca, "--etcd-ca-file")?));
        any = true;
    }
    match (&cfg.cert_file, &cfg.key_file) {
        (Some(c), Some(k)) => {
            let id = Identity::from_pem(read(c, "--etcd-cert-file")?, read(k, "--etcd-key-file")?);
            tls = tls.identity(id);
            any = true;
        }
        (None, None) => {}
        _ => return Err("--etcd-cert-file and --etcd-key-file go together".into()),
    }
    Ok(any.then_some(tls))
}

/// A replica's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Role {
    /// It leads and may act.
    Leader,
    /// It won the election and waits out the old leader's lease before acting.
    Waiting,
    /// Another replica leads (or nobody yet); it validates commits and serves status.
    Follower,
    /// It cannot reach a majority of etcd: it does nothing.
    Unavailable,
}

impl Role {
    /// The word for it (as in JSON).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Leader => "leader",
            Role::Waiting => "waiting",
            Role::Follower => "follower",
            Role::Unavailable => "unavailable",
        }
    }
}

/// One replica, as it records itself in etcd.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaView {
    /// Its `--name`.
    pub name: String,
    /// Its role.
    pub role: Role,
}

/// The HA part of the status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HaView {
    /// This replica's name.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// The leader's name, as etcd says.
    pub leader: Option<String>,
    /// Why this replica cannot act or cannot read etcd, if so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// Every live replica, as recorded in etcd.
    pub replicas: Vec<ReplicaView>,
}

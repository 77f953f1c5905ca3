//! The flags of HA mode (`quorate run --etcd`), shared by the commands that reach etcd.

use std::path::PathBuf;
use std::time::Duration;

use crate::ha::EtcdConfig;
use crate::ha::lease::Timing;

/// How to reach etcd.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct EtcdArgs {
    /// etcd client URLs, comma-separated (HA mode: the shared state and the election live
    /// there, not in the state directory's database).
    #[arg(long, value_name = "URL[,URL...]", value_delimiter = ',')]
    pub etcd: Vec<String>,
    /// Key prefix of this cluster in etcd.
    #[arg(long, value_name = "PREFIX", default_value = "/quorate/default")]
    pub etcd_prefix: String,
    /// CA certificate (PEM) the etcd members' certificates are checked against.
    #[arg(long, value_name = "FILE")]
    pub etcd_ca_file: Option<PathBuf>,
    /// Client certificate (PEM) presented to etcd.
    #[arg(long, value_name = "FILE", requires = "etcd_key_file")]
    pub etcd_cert_file: Option<PathBuf>,
    /// Key (PEM) of the client certificate.
    #[arg(long, value_name = "FILE", requires = "etcd_cert_file")]
    pub etcd_key_file: Option<PathBuf>,
}

/// The store an operator's command writes to: etcd with `--etcd` (where the replicas of
/// HA mode keep their state; the leader reads it at its next pass), else the state
/// directory's database.
pub(crate) async fn operator_store(
    state: &super::StateDirArg,
    etcd: &EtcdArgs,
) -> Result<Box<dyn crate::reconcile::store::Store>, String> {
    Ok(match etcd.config() {
        Some(cfg) => {
            let client = crate::ha::connect(&cfg).await?;
            Box::new(crate::ha::store::EtcdStore::operator(
                client,
                &etcd.etcd_prefix,
            ))
        }
        None => Box::new(
            crate::state::StateStore::open(&state.dir)
                .map_err(|e| format!("cannot use the state directory: {e}"))?,
        ),
    })
}

impl EtcdArgs {
    /// The connection settings; `None` without `--etcd`.
    pub fn config(&self) -> Option<EtcdConfig> {
        (!self.etcd.is_empty()).then(|| EtcdConfig {
            endpoints: self.etcd.clone(),
            ca_file: self.etcd_ca_file.clone(),
            cert_file: self.etcd_cert_file.clone(),
            key_file: self.etcd_key_file.clone(),
            timeout: Duration::from_secs(2),
        })
    }
}

/// The HA flags of `quorate run`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct HaArgs {
    #[command(flatten)]
    pub etcd: EtcdArgs,
    /// This replica's name (unique among the replicas; default: the host name).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// The leader's lease: a replica that stops renewing it is replaced after this long
    /// (plus the takeover wait).
    #[arg(long, value_name = "DURATION", default_value = "10s")]
    pub lease_ttl: crate::spec::Duration,
    /// The most the clocks of two machines may differ in rate (percent).
    #[arg(long, value_name = "PERCENT", default_value_t = 5,
          value_parser = clap::value_parser!(u8).range(0..=50))]
    pub clock_drift_percent: u8,
}

impl HaArgs {
    /// The timing rule's parameters; `step_timeout` bounds a runtime or power command.
    pub fn timing(&self, step_timeout: Duration) -> Result<Timing, String> {
        let ttl = self.lease_ttl.get();
        if ttl < Duration::from_secs(2) {
            return Err("--lease-ttl must be at least 2s".into());
        }
        Ok(Timing {
            ttl,
            drift: f64::from(self.clock_drift_percent) / 100.0,
            margin: Duration::from_millis(500),
            step_timeout,
        })
    }

    /// The replica's name: letters, digits, `.`, `_` and `-`, at most 63 characters (it
    /// is part of an etcd key).
    pub fn name(&self) -> Result<String, String> {
        let name = self.name.clone().unwrap_or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .map(|h| h.trim().to_owned())
                .ok()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| format!("quorate-{}", std::process::id()))
        });
        let ok = !name.is_empty()
            && name.len() <= 63
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if ok {
            Ok(name)
        } else {
            Err(format!(
                "replica name {name:?}: use letters, digits, '.', '_' and '-' (at most 63); set --name"
            ))
        }
    }
}

//! Monitors: each running instance is checked at its bundle's interval, within its
//! timeout; a failure is counted in the store (per node, for the migration threshold) and
//! starts a pass, which restarts or moves the instance as its `onFail` says.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use tokio::time::Instant;

use super::store::Store;
use crate::observed::{InstanceState, NodeState, Observed};
use crate::runtime::{HealthCheck, HealthResult, Monitor, Runtime};
use crate::spec::bundle::{BundleSpec, Check, instance_ip, instance_name};
use crate::spec::endpoint::Transport;
use crate::spec::{Name, SpecSet};

/// When each instance was last checked.
#[derive(Default)]
pub struct Monitors {
    last: BTreeMap<(Name, String), Instant>,
}

/// The address a TCP or HTTP check connects to for container port `port`: the host port
/// that publishes it on the node, or the instance's own address.
fn check_addr(
    spec: &SpecSet,
    node: &Name,
    bundle: &BundleSpec,
    index: u32,
    port: u16,
) -> Option<SocketAddr> {
    let n = spec.cluster.node(node.as_str())?;
    let host: IpAddr = match &n.runtime.transport {
        Transport::Unix(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
        Transport::Tcp { host, .. } | Transport::Ssh { host, .. } => host.parse().ok()?,
    };
    let network = bundle.network.as_ref();
    let published = network.into_iter().flat_map(|n| &n.ports).find_map(|m| {
        let inside = m.internal_port.or(m.port).map(|p| p.get());
        (inside == Some(port))
            .then_some(m.port.map(|p| p.get()))
            .flatten()
    });
    match (published, network.and_then(|n| n.ip_range_start)) {
        (Some(p), _) => Some(SocketAddr::new(host, p)),
        (None, Some(start)) => Some(SocketAddr::new(
            IpAddr::V4(instance_ip(start, index)?),
            port,
        )),
        (None, None) => None,
    }
}

/// The runtime-level monitor of instance `index` of `bundle` on `node`.
pub fn monitor_for(spec: &SpecSet, node: &Name, bundle: &BundleSpec, index: u32) -> Monitor {
    let check = bundle.monitor.check.as_ref().and_then(|c| match c {
        Check::Exec { command } => Some(HealthCheck::Exec(command.clone())),
        Check::Tcp { port } => {
            check_addr(spec, node, bundle, index, port.get()).map(HealthCheck::Tcp)
        }
        Check::Http { port, path, .. } => {
            check_addr(spec, node, bundle, index, port.get()).map(|addr| HealthCheck::Http {
                addr,
                path: path.clone(),
            })
        }
    });
    Monitor {
        check,
        timeout: bundle.monitor.timeout.get(),
    }
}

impl Monitors {
    /// Runs the checks that are due on the running instances of `observed`; records
    /// failures in `store` and returns the instances failing now, per node.
    pub async fn run_due(
        &mut self,
        spec: &SpecSet,
        observed: &Observed,
        runtimes: &BTreeMap<Name, Arc<dyn Runtime>>,
        store: &dyn Store,
    ) -> BTreeMap<Name, BTreeMap<String, bool>> {
        let now = Instant::now();
        let mut due = Vec::new();
        for (node, n) in observed
            .nodes
            .iter()
            .filter(|(_, n)| n.state == NodeState::Online)
        {
            for i in n
                .instances
                .iter()
                .filter(|i| i.state != InstanceState::Stopped)
            {
                let Some(b) = spec.bundles.get(&i.bundle) else {
                    continue;
                };
                let name = instance_name(i.bundle.as_str(), i.index);
                let key = (node.clone(), name.clone());
                if self
                    .last
                    .get(&key)
                    .is_some_and(|t| now.duration_since(*t) < b.monitor.interval.get())
                {
                    continue;
                }
                self.last.insert(key, now);
                if let Some(rt) = runtimes.get(node) {
                    due.push((
                        node.clone(),
                        name,
                        rt.clone(),
                        monitor_for(spec, node, b, i.index),
                    ));
                }
            }
        }
        let results =
            futures_util::future::join_all(due.into_iter().map(|(node, name, rt, m)| async move {
                let r = rt.check_health(&name, &m).await;
                (node, name, r)
            }))
            .await;
        let now_unix = observed.now;
        let mut out: BTreeMap<Name, BTreeMap<String, bool>> = BTreeMap::new();
        for (node, name, r) in results {
            match r {
                HealthResult::Healthy => {
                    out.entry(node).or_default().insert(name, false);
                }
                HealthResult::Failed { reason } => {
                    tracing::warn!(%node, instance = %name, %reason, "monitor failed");
                    let _ = store.record_failure(node.as_str(), &name, now_unix).await;
                    out.entry(node).or_default().insert(name, true);
                }
                HealthResult::Unobservable { .. } => {}
            }
        }
        out
    }

    /// Forgets instances no longer running, so a new copy is checked at once.
    pub fn retain(&mut self, running: &BTreeSet<(Name, String)>) {
        self.last.retain(|k, _| running.contains(k));
    }
}

//! Monitors: each running instance is checked at its bundle's interval, within its
//! timeout; a failure is counted in the store (per node, for the migration threshold)
//! unless `onFail` is `ignore` or `block`, and starts a pass, which handles the instance
//! as its `onFail` says.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use std::time::Duration;

use tokio::time::Instant;

use super::store::Store;
use crate::observed::{InstanceState, NodeState, Observed, ObservedNode};
use crate::runtime::{HealthCheck, HealthResult, Monitor, Runtime};
use crate::spec::bundle::{BundleSpec, Check, OnFail, instance_ip, instance_name};
use crate::spec::endpoint::Transport;
use crate::spec::{Name, SpecSet};

/// When each instance was last checked, and when each node has a monitor due next.
#[derive(Default)]
pub struct Monitors {
    last: BTreeMap<(Name, String), Instant>,
    /// Until then no monitor of the node is due, so the tick skips it without looking at
    /// its instances. Forgotten at each pass ([`Monitors::retain`]), which may bring new
    /// instances to check at once.
    next: HashMap<Name, Instant>,
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

/// Far enough to mean never, near enough to add to an [`Instant`].
const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);

/// A monitor that is due: the instance's name, its monitor, and what its failure does.
struct Due {
    name: String,
    monitor: Monitor,
    on_fail: OnFail,
}

impl Monitors {
    /// Runs the checks that are due on the running instances of `observed`, one call to
    /// list each node with any due, at most `concurrency` nodes at a time; records failures
    /// in `store` and returns the instances failing now, per node.
    pub async fn run_due(
        &mut self,
        spec: &SpecSet,
        observed: &Observed,
        runtimes: &BTreeMap<Name, Arc<dyn Runtime>>,
        store: &dyn Store,
        concurrency: usize,
    ) -> BTreeMap<Name, BTreeMap<String, bool>> {
        let calls = self
            .due(spec, observed, Instant::now())
            .into_iter()
            .filter_map(|(node, due)| {
                let rt = runtimes.get(&node)?.clone();
                Some(async move {
                    let asked: Vec<(&str, &Monitor)> =
                        due.iter().map(|d| (d.name.as_str(), &d.monitor)).collect();
                    let results = rt.check_health(&asked).await;
                    (node, due, results)
                })
            })
            .collect();
        let results = super::bounded(calls, concurrency)
            .await
            .into_iter()
            .flat_map(|(node, due, results)| {
                due.into_iter()
                    .zip(results)
                    .map(move |(d, r)| (node.clone(), d.name, r, d.on_fail))
            });
        let now_unix = observed.now;
        let mut out: BTreeMap<Name, BTreeMap<String, bool>> = BTreeMap::new();
        for (node, name, r, on_fail) in results {
            match r {
                HealthResult::Healthy => {
                    out.entry(node).or_default().insert(name, false);
                }
                HealthResult::Failed { reason } if on_fail.counts_failures() => {
                    tracing::warn!(%node, instance = %name, %reason, "monitor failed");
                    let _ = store.record_failure(node.as_str(), &name, now_unix).await;
                    out.entry(node).or_default().insert(name, true);
                }
                // Not counted: an `ignore` or `block` instance stays where it is.
                HealthResult::Failed { reason } => {
                    let handling = if on_fail == OnFail::Ignore {
                        "failure ignored"
                    } else {
                        "blocked"
                    };
                    tracing::warn!(%node, instance = %name, %reason, "monitor failed ({handling})");
                    out.entry(node).or_default().insert(name, true);
                }
                HealthResult::Unobservable { .. } => {}
            }
        }
        out
    }

    /// The monitors due at `now` on the running instances of `observed`, by node; each is
    /// marked run at `now`. A node's monitors run together, one list call for them all:
    /// when one is due, those at least half their interval since their last run join it,
    /// so each node is listed at most about twice per interval, however many instances it
    /// runs and whenever they started.
    fn due(
        &mut self,
        spec: &SpecSet,
        observed: &Observed,
        now: Instant,
    ) -> BTreeMap<Name, Vec<Due>> {
        let mut due = BTreeMap::new();
        let online = observed
            .nodes
            .iter()
            .filter(|(_, n)| n.state == NodeState::Online);
        for (node, n) in online {
            if self.next.get(node).is_some_and(|at| now < *at) {
                continue;
            }
            let (run, wait) = self.node_due(spec, node, n, now);
            let next = now.checked_add(wait).unwrap_or(now + YEAR);
            self.next.insert(node.clone(), next);
            if !run.is_empty() {
                due.insert(node.clone(), run);
            }
        }
        due
    }

    /// `node`'s monitors to run at `now` (none unless one is due), marked run; and how long
    /// until the next one is due.
    fn node_due(
        &mut self,
        spec: &SpecSet,
        node: &Name,
        n: &ObservedNode,
        now: Instant,
    ) -> (Vec<Due>, Duration) {
        let mut ages = Vec::new();
        for i in n
            .instances
            .iter()
            .filter(|i| i.state != InstanceState::Stopped)
        {
            let Some(b) = spec.bundles.get(&i.bundle) else {
                continue;
            };
            let name = instance_name(i.bundle.as_str(), i.index);
            let last = self.last.get(&(node.clone(), name.clone()));
            let age = last.map_or(Duration::MAX, |t| now.duration_since(*t));
            ages.push((i.index, b, name, age));
        }
        let any_due = ages
            .iter()
            .any(|(_, b, _, age)| *age >= b.monitor.interval.get());
        let (mut run, mut wait) = (Vec::new(), Duration::MAX);
        for (index, b, name, age) in ages {
            let interval = b.monitor.interval.get();
            if !any_due || age < interval / 2 {
                wait = wait.min(interval.saturating_sub(age));
                continue;
            }
            wait = wait.min(interval);
            self.last.insert((node.clone(), name.clone()), now);
            run.push(Due {
                monitor: monitor_for(spec, node, b, index),
                on_fail: b.monitor.on_fail,
                name,
            });
        }
        (run, wait)
    }

    /// Forgets instances no longer running, so a new copy is checked at once.
    pub fn retain(&mut self, running: &BTreeSet<(Name, String)>) {
        self.last.retain(|k, _| running.contains(k));
        self.next.clear();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use async_trait::async_trait;

    use super::*;
    use crate::reconcile::store::MemoryStore;
    use crate::runtime::{
        ContainerState, Endpoint, ExecOutcome, InstanceSpec, NetworkSpec, RuntimeError, RuntimeInfo,
    };

    /// A node whose every check fails; it answers nothing else.
    struct Failing(Endpoint);

    impl Failing {
        fn refuse(&self) -> RuntimeError {
            RuntimeError::Unreachable {
                endpoint: self.0.to_string(),
                reason: "only checks are asked here".into(),
            }
        }
    }

    #[async_trait]
    impl Runtime for Failing {
        fn endpoint(&self) -> &Endpoint {
            &self.0
        }
        async fn ping(&self) -> Result<RuntimeInfo, RuntimeError> {
            Err(self.refuse())
        }
        async fn list(&self) -> Result<Vec<ContainerState>, RuntimeError> {
            Err(self.refuse())
        }
        async fn inspect(&self, _: &str) -> Result<Option<ContainerState>, RuntimeError> {
            Err(self.refuse())
        }
        async fn ensure_network(&self, _: &NetworkSpec) -> Result<(), RuntimeError> {
            Err(self.refuse())
        }
        async fn create(&self, _: &InstanceSpec) -> Result<String, RuntimeError> {
            Err(self.refuse())
        }
        async fn start(&self, _: &str) -> Result<(), RuntimeError> {
            Err(self.refuse())
        }
        async fn stop(&self, _: &str, _: Duration) -> Result<(), RuntimeError> {
            Err(self.refuse())
        }
        async fn remove(&self, _: &str) -> Result<(), RuntimeError> {
            Err(self.refuse())
        }
        async fn exec(
            &self,
            _: &str,
            _: &[String],
            _: &[(String, String)],
        ) -> Result<ExecOutcome, RuntimeError> {
            Err(self.refuse())
        }
        async fn check_health(&self, due: &[(&str, &Monitor)]) -> Vec<HealthResult> {
            let failed = HealthResult::Failed {
                reason: "connection refused".into(),
            };
            vec![failed; due.len()]
        }
    }

    fn spec() -> SpecSet {
        let mut text = String::from(
            "apiVersion: quorate.io/v1alpha1\nkind: Cluster\nmetadata: {name: c}\nspec:\n  nodes: [{name: n1, runtime: 'podman+unix:///n1'}]\n",
        );
        for on_fail in ["ignore", "block", "restart", "stop"] {
            text += &format!(
                "---\napiVersion: quorate.io/v1alpha1\nkind: Bundle\nmetadata: {{name: {on_fail}}}\nspec: {{image: img, recovery: restart, monitor: {{onFail: {on_fail}}}}}\n"
            );
        }
        let mut s = crate::source::Sources::new();
        s.add("c.yaml", text.into_bytes());
        crate::validate::validate(&s).into_valid_set().unwrap()
    }

    #[tokio::test]
    async fn ignore_and_block_failures_do_not_count_towards_the_migration_threshold() {
        let spec = spec();
        let observed = crate::observed::snapshot::parse(
            crate::source::FileId(0),
            b"now: 500\nnodes:\n  n1: {instances: [{bundle: ignore, index: 0, specHash: h}, {bundle: block, index: 0, specHash: h}, {bundle: restart, index: 0, specHash: h}, {bundle: stop, index: 0, specHash: h}]}\n",
        )
        .unwrap();
        let node: Name = "n1".parse().unwrap();
        let rt: Arc<dyn Runtime> = Arc::new(Failing("podman+unix:///n1".parse().unwrap()));
        let runtimes = BTreeMap::from([(node.clone(), rt)]);
        let store = MemoryStore::new();
        let failing = Monitors::default()
            .run_due(&spec, &observed, &runtimes, &store, 4)
            .await;
        // Every failing instance is reported failing, whatever its onFail...
        let reported: Vec<(&str, bool)> = failing[&node]
            .iter()
            .map(|(k, v)| (k.as_str(), *v))
            .collect();
        assert_eq!(
            reported,
            [
                ("block-0", true),
                ("ignore-0", true),
                ("restart-0", true),
                ("stop-0", true)
            ]
        );
        // ...but only those whose onFail acts on failures are counted.
        let counted: Vec<(String, u32)> = store
            .failures()
            .await
            .unwrap()
            .into_iter()
            .map(|((n, i), f)| {
                assert_eq!((n.as_str(), f.last), ("n1", Some(500)));
                (i, f.count)
            })
            .collect();
        assert_eq!(
            counted,
            [("restart-0".to_owned(), 1), ("stop-0".to_owned(), 1)]
        );
    }

    #[test]
    fn a_nodes_monitors_run_together_when_one_is_due() {
        let spec = spec();
        let observed = crate::observed::snapshot::parse(
            crate::source::FileId(0),
            b"now: 500\nnodes:\n  n1: {instances: [{bundle: ignore, index: 0, specHash: h}, {bundle: block, index: 0, specHash: h}, {bundle: restart, index: 0, specHash: h}]}\n",
        )
        .unwrap();
        let node: Name = "n1".parse().unwrap();
        let t0 = Instant::now();
        let mut m = Monitors::default();
        // The default interval is 10 s: `ignore-0` last ran 10 s ago (due), `block-0` 6 s
        // ago (past half, joins), `restart-0` 2 s ago (stays out).
        for (instance, ago) in [("ignore-0", 10), ("block-0", 6), ("restart-0", 2)] {
            m.last.insert(
                (node.clone(), instance.into()),
                t0 - Duration::from_secs(ago),
            );
        }
        let names = |due: &BTreeMap<Name, Vec<Due>>| -> Vec<String> {
            due.values().flatten().map(|d| d.name.clone()).collect()
        };
        assert_eq!(names(&m.due(&spec, &observed, t0)), ["ignore-0", "block-0"]);
        // Two seconds on nothing is due, although `restart-0` is past half its interval.
        let later = t0 + Duration::from_secs(2);
        assert!(m.due(&spec, &observed, later).is_empty());
        // When it is due, the others (8 s since they ran) join it: the node is in step.
        let due = t0 + Duration::from_secs(8);
        let all = ["ignore-0", "block-0", "restart-0"];
        assert_eq!(names(&m.due(&spec, &observed, due)), all);
    }
}

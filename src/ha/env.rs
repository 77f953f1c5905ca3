//! The lease check before every start, stop and power command (design invariant 9).
//!
//! [`LeasedEnvironment`] wraps the reconciler's environment: every runtime it hands out
//! asks [`Lease::check`] before creating, starting, stopping or removing a container or
//! a network, and every fence agent before each power command. A replica that is not the
//! leader, still waits out the old leader's lease, or is no longer sure of its own lease
//! by its monotonic clock (a pause, etcd unreachable) gets an error instead, and the pass
//! aborts like a pass that lost quorum. Reads (list, inspect, ping, status) pass through.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::lease::Lease;
use crate::fence::{Clock, FenceAgent, FenceError, PowerState};
use crate::reconcile::env::Environment;
use crate::runtime::from_spec::InstanceError;
use crate::runtime::{
    ContainerState, Endpoint, ExecOutcome, InstanceSpec, NetworkSpec, Runtime, RuntimeError,
    RuntimeInfo,
};
use crate::spec::SpecSet;
use crate::spec::cluster::NodeSpec;
use crate::spec::fence::FenceSpec;

/// An environment whose actions need a valid lease.
pub struct LeasedEnvironment {
    inner: Arc<dyn Environment>,
    lease: Arc<Lease>,
}

impl LeasedEnvironment {
    /// `inner`, acting only under `lease`.
    pub fn new(inner: Arc<dyn Environment>, lease: Arc<Lease>) -> LeasedEnvironment {
        LeasedEnvironment { inner, lease }
    }
}

impl Environment for LeasedEnvironment {
    fn runtime(&self, node: &NodeSpec) -> Result<Arc<dyn Runtime>, RuntimeError> {
        Ok(Arc::new(LeasedRuntime {
            inner: self.inner.runtime(node)?,
            lease: self.lease.clone(),
        }))
    }

    fn fence_agent(&self, name: &str, spec: &FenceSpec) -> Result<Box<dyn FenceAgent>, FenceError> {
        Ok(Box::new(LeasedAgent {
            inner: self.inner.fence_agent(name, spec)?,
            lease: self.lease.clone(),
        }))
    }

    fn instance(
        &self,
        set: &SpecSet,
        bundle: &str,
        index: u32,
        commit: &str,
    ) -> Result<InstanceSpec, InstanceError> {
        self.inner.instance(set, bundle, index, commit)
    }

    fn network(&self, set: &SpecSet, bundle: &str) -> Option<NetworkSpec> {
        self.inner.network(set, bundle)
    }

    fn clock(&self) -> &dyn Clock {
        self.inner.clock()
    }
}

/// A runtime whose changing calls need a valid lease.
struct LeasedRuntime {
    inner: Arc<dyn Runtime>,
    lease: Arc<Lease>,
}

impl LeasedRuntime {
    fn guard(&self, op: &'static str) -> Result<(), RuntimeError> {
        self.lease.check().map(|_| ()).map_err(|e| {
            tracing::warn!(op, reason = %e, "runtime call refused: no valid lease (invariant 9)");
            RuntimeError::Api {
                op,
                message: format!("refused: {e} (invariant 9)"),
            }
        })
    }
}

#[async_trait]
impl Runtime for LeasedRuntime {
    fn endpoint(&self) -> &Endpoint {
        self.inner.endpoint()
    }
    fn cluster(&self) -> Option<&str> {
        self.inner.cluster()
    }
    async fn ping(&self) -> Result<RuntimeInfo, RuntimeError> {
        self.inner.ping().await
    }
    async fn list(&self) -> Result<Vec<ContainerState>, RuntimeError> {
        self.inner.list().await
    }
    async fn inspect(&self, name: &str) -> Result<Option<ContainerState>, RuntimeError> {
        self.inner.inspect(name).await
    }
    async fn ensure_network(&self, network: &NetworkSpec) -> Result<(), RuntimeError> {
        self.guard("network")?;
        self.inner.ensure_network(network).await
    }
    async fn create(&self, spec: &InstanceSpec) -> Result<String, RuntimeError> {
        self.guard("create")?;
        self.inner.create(spec).await
    }
    async fn start(&self, name: &str) -> Result<(), RuntimeError> {
        self.guard("start")?;
        self.inner.start(name).await
    }
    async fn stop(&self, name: &str, grace: Duration) -> Result<(), RuntimeError> {
        self.guard("stop")?;
        self.inner.stop(name, grace).await
    }
    async fn remove(&self, name: &str) -> Result<(), RuntimeError> {
        self.guard("remove")?;
        self.inner.remove(name).await
    }
    async fn exec(
        &self,
        name: &str,
        command: &[String],
        env: &[(String, String)],
    ) -> Result<ExecOutcome, RuntimeError> {
        self.inner.exec(name, command, env).await
    }
    async fn exec_acting(
        &self,
        name: &str,
        command: &[String],
        env: &[(String, String)],
    ) -> Result<ExecOutcome, RuntimeError> {
        // A promote or a demote acts: only under a valid lease (invariant 9).
        self.guard("exec")?;
        self.inner.exec_acting(name, command, env).await
    }
}

/// A fence device whose power commands need a valid lease.
struct LeasedAgent {
    inner: Box<dyn FenceAgent>,
    lease: Arc<Lease>,
}

impl LeasedAgent {
    fn guard(&self) -> Result<(), FenceError> {
        self.lease.check().map(|_| ()).map_err(|e| {
            tracing::warn!(device = %self.inner.describe(), reason = %e,
                "power command refused: no valid lease (invariant 9)");
            FenceError::NoQuorum(format!("no valid lease: {e}"))
        })
    }
}

#[async_trait]
impl FenceAgent for LeasedAgent {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    async fn status(&self) -> Result<PowerState, FenceError> {
        self.inner.status().await
    }
    async fn off(&self) -> Result<PowerState, FenceError> {
        self.guard()?;
        self.inner.off().await
    }
    async fn on(&self) -> Result<PowerState, FenceError> {
        self.guard()?;
        self.inner.on().await
    }
    async fn reboot(&self) -> Result<PowerState, FenceError> {
        self.guard()?;
        self.inner.reboot().await
    }
}

#[cfg(all(test, feature = "sim"))]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;
    use crate::sim::drivers::SimEnvironment;
    use crate::sim::world::World;

    /// Invariant 9 for roles: a promote or demote (an acting exec) needs the lease; a
    /// check or a role question (a plain exec) does not, so a lapse of the lease counts no
    /// failure against a healthy instance.
    #[test]
    fn acting_execs_need_the_lease_and_questions_do_not() {
        let rt = crate::sim::paused_runtime();
        rt.block_on(async {
            let spec = crate::sim::run::spec_set().unwrap();
            let nodes = vec!["n1".to_owned(), "n2".to_owned(), "n3".to_owned()];
            let world = Arc::new(Mutex::new(World::new(&nodes, 1, Default::default(), 1)));
            let sim: Arc<dyn Environment> = Arc::new(SimEnvironment::new(world));
            let node = &spec.cluster.nodes[0];
            let plain = sim.runtime(node).unwrap();
            let kv =
                crate::runtime::from_spec::instance_spec(&spec, "kv", 0, "h", &Default::default())
                    .unwrap();
            plain.run(&kv).await.unwrap();

            let lease = Arc::new(Lease::default());
            let leased = LeasedEnvironment::new(sim, lease.clone())
                .runtime(node)
                .unwrap();
            let cmd = |c: &str| vec![c.to_owned()];
            assert!(leased.exec("kv-0", &cmd("role"), &[]).await.is_ok());
            let refused = leased.exec_acting("kv-0", &cmd("promote"), &[]).await;
            assert!(
                matches!(refused, Err(RuntimeError::Api { .. })),
                "{refused:?}"
            );
            let role = plain.exec("kv-0", &cmd("role"), &[]).await.unwrap();
            assert_eq!(role.stdout, "unpromoted\n", "nothing was promoted");

            let now = tokio::time::Instant::now();
            lease.won(7, now + Duration::from_secs(60), now);
            assert!(
                leased
                    .exec_acting("kv-0", &cmd("promote"), &[])
                    .await
                    .is_ok()
            );
            let role = plain.exec("kv-0", &cmd("role"), &[]).await.unwrap();
            assert_eq!(role.stdout, "promoted\n");
        });
    }
}

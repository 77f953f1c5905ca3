//! The simulated edges: a runtime per node, a BMC per node and the clock, behind the same
//! traits as the real Podman, IPMI and system clock, so the reconciler under test is the
//! real one. Every call takes some virtual time; a call to something out of reach hangs
//! until its timeout, as a pulled cable does.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use super::lock;
use super::world::{World, power_off};
use crate::fence::{Clock, FenceAgent, FenceError, PowerState};
use crate::reconcile::env::Environment;
use crate::runtime::from_spec::{InstanceError, instance_spec, network_spec};
use crate::runtime::{
    ContainerState, ContainerStatus, Endpoint, ExecOutcome, InstanceSpec, NetworkSpec, Runtime,
    RuntimeError, RuntimeInfo, RuntimeKind,
};
use crate::secret::SecretPolicy;
use crate::spec::SpecSet;
use crate::spec::cluster::NodeSpec;
use crate::spec::fence::FenceSpec;

/// How long a call to something out of reach hangs before it fails.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(3);
/// Wall-clock time at the start of every simulation (2026-01-01T00:00:00Z).
const EPOCH_MS: i64 = 1_767_225_600_000;

type Shared = Arc<Mutex<World>>;

/// A few milliseconds of virtual latency, drawn from the world's generator.
async fn latency(w: &Shared) {
    let ms = lock(w).rng.below(15) + 1;
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// One node's runtime.
pub struct SimRuntime {
    node: String,
    endpoint: Endpoint,
    world: Shared,
}

impl SimRuntime {
    /// Waits the latency, then runs `f` if the node is in reach; otherwise hangs until the
    /// timeout. `fallible` operations fail now and then, as the world says.
    async fn call<T>(
        &self,
        op: &'static str,
        fallible: bool,
        f: impl FnOnce(&mut World) -> Result<T, RuntimeError>,
    ) -> Result<T, RuntimeError> {
        latency(&self.world).await;
        let reachable = {
            let mut w = lock(&self.world);
            w.update_reachability();
            w.nodes.get(&self.node).is_some_and(|n| n.reachable())
        };
        if !reachable {
            tokio::time::sleep(CALL_TIMEOUT).await;
            return Err(RuntimeError::Timeout {
                endpoint: self.endpoint.to_string(),
                op,
                after: CALL_TIMEOUT,
            });
        }
        let mut w = lock(&self.world);
        let percent = w.fail_percent;
        if fallible && percent > 0 && w.rng.chance(percent) {
            w.log(format!("{op} on {} fails (injected)", self.node));
            return Err(RuntimeError::Unreachable {
                endpoint: self.endpoint.to_string(),
                reason: format!("{op}: injected failure"),
            });
        }
        f(&mut w)
    }

    fn state(&self, name: &str, c: &super::world::SimContainer) -> ContainerState {
        ContainerState {
            id: format!("{}-{name}", self.node),
            name: name.to_owned(),
            labels: Some(c.labels.clone()),
            status: if c.running {
                ContainerStatus::Running
            } else {
                ContainerStatus::Exited
            },
            exit_code: None,
            started_at: None,
            finished_at: None,
            image: c.image.clone(),
            restart_policy: Some(String::new()),
            addresses: Default::default(),
        }
    }
}

#[async_trait]
impl Runtime for SimRuntime {
    fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    async fn ping(&self) -> Result<RuntimeInfo, RuntimeError> {
        self.call("ping", false, |_| {
            Ok(RuntimeInfo {
                kind: RuntimeKind::Podman,
                version: "sim".into(),
            })
        })
        .await
    }

    async fn list(&self) -> Result<Vec<ContainerState>, RuntimeError> {
        let node = self.node.clone();
        self.call("list", false, |w| {
            Ok(w.nodes[&node]
                .containers
                .iter()
                .map(|(name, c)| self.state(name, c))
                .collect())
        })
        .await
    }

    async fn inspect(&self, name: &str) -> Result<Option<ContainerState>, RuntimeError> {
        let node = self.node.clone();
        self.call("inspect", false, |w| {
            Ok(w.nodes[&node]
                .containers
                .get(name)
                .map(|c| self.state(name, c)))
        })
        .await
    }

    async fn ensure_network(&self, _network: &NetworkSpec) -> Result<(), RuntimeError> {
        self.call("ensure network", false, |_| Ok(())).await
    }

    async fn create(&self, spec: &InstanceSpec) -> Result<String, RuntimeError> {
        let node = self.node.clone();
        let name = spec.name();
        self.call("create", true, |w| {
            let n = w
                .nodes
                .get_mut(&node)
                .ok_or_else(|| RuntimeError::Conflict { name: name.clone() })?;
            if n.containers.contains_key(&name) {
                return Err(RuntimeError::AlreadyExists { name: name.clone() });
            }
            n.containers.insert(
                name.clone(),
                super::world::SimContainer {
                    labels: spec.labels.clone(),
                    image: spec.image.clone(),
                    running: false,
                    promoted: false,
                },
            );
            w.log(format!("create {name} on {node}"));
            Ok(format!("{node}-{name}"))
        })
        .await
    }

    async fn start(&self, name: &str) -> Result<(), RuntimeError> {
        let node = self.node.clone();
        self.call("start", true, |w| {
            if !w.nodes[&node].containers.contains_key(name) {
                return Err(RuntimeError::NotFound {
                    name: name.to_owned(),
                });
            }
            w.on_start(&node, name);
            Ok(())
        })
        .await
    }

    async fn stop(&self, name: &str, _grace: Duration) -> Result<(), RuntimeError> {
        let node = self.node.clone();
        self.call("stop", true, |w| {
            if let Some(c) = w
                .nodes
                .get_mut(&node)
                .and_then(|n| n.containers.get_mut(name))
            {
                c.running = false;
                c.promoted = false;
            }
            w.log(format!("stop {name} on {node}"));
            Ok(())
        })
        .await
    }

    async fn remove(&self, name: &str) -> Result<(), RuntimeError> {
        let node = self.node.clone();
        self.call("remove", true, |w| {
            if let Some(n) = w.nodes.get_mut(&node) {
                n.containers.remove(name);
            }
            w.log(format!("remove {name} on {node}"));
            Ok(())
        })
        .await
    }

    /// The simulated containers understand the simulation's promotable commands:
    /// `promote`, `demote`, `role` and `preference`; anything else succeeds.
    async fn exec(
        &self,
        name: &str,
        command: &[String],
        _env: &[(String, String)],
    ) -> Result<ExecOutcome, RuntimeError> {
        let node = self.node.clone();
        let verb = command.first().map_or("", String::as_str);
        let acts = matches!(verb, "promote" | "demote");
        self.call("exec", acts, |w| {
            let promoted = match w.nodes[&node].containers.get(name) {
                Some(c) if c.running => c.promoted,
                _ => {
                    return Err(RuntimeError::NotFound {
                        name: name.to_owned(),
                    });
                }
            };
            let stdout = match verb {
                "promote" => {
                    w.on_promote(&node, name);
                    ""
                }
                "demote" => {
                    if let Some(c) = w
                        .nodes
                        .get_mut(&node)
                        .and_then(|n| n.containers.get_mut(name))
                    {
                        c.promoted = false;
                    }
                    w.log(format!("demote {name} on {node}"));
                    ""
                }
                "role" if promoted => "promoted\n",
                "role" => "unpromoted\n",
                "preference" => "0\n",
                _ => "",
            };
            Ok(ExecOutcome {
                exit_code: Some(0),
                stdout: stdout.to_owned(),
            })
        })
        .await
    }
}

/// One node's BMC.
pub struct SimBmc {
    node: String,
    world: Shared,
}

impl SimBmc {
    fn address(&self) -> String {
        format!("bmc-{}", self.node)
    }

    /// Waits the latency; fails after the timeout when the BMC is out of reach.
    async fn reach(&self) -> Result<(), FenceError> {
        latency(&self.world).await;
        let up = lock(&self.world)
            .nodes
            .get(&self.node)
            .is_some_and(|n| n.bmc_link);
        if up {
            Ok(())
        } else {
            tokio::time::sleep(CALL_TIMEOUT).await;
            Err(FenceError::Timeout {
                address: self.address(),
                after: CALL_TIMEOUT,
                during: "session".into(),
            })
        }
    }
}

#[async_trait]
impl FenceAgent for SimBmc {
    fn describe(&self) -> String {
        self.address()
    }

    async fn status(&self) -> Result<PowerState, FenceError> {
        self.reach().await?;
        let on = lock(&self.world).nodes[&self.node].powered;
        Ok(if on { PowerState::On } else { PowerState::Off })
    }

    async fn off(&self) -> Result<PowerState, FenceError> {
        self.reach().await?;
        let lies = lock(&self.world).nodes[&self.node].bmc_lies;
        if lies {
            // Accepts the command; the node stays on, and says so.
            lock(&self.world).log(format!("{} accepts power off and stays on", self.address()));
            tokio::time::sleep(Duration::from_secs(2)).await;
            return Err(FenceError::NotConfirmed {
                address: self.address(),
                wanted: PowerState::Off,
                still: PowerState::On,
                after: Duration::from_secs(2),
            });
        }
        lock(&self.world).on_fence(&self.node);
        Ok(PowerState::Off)
    }

    async fn on(&self) -> Result<PowerState, FenceError> {
        self.reach().await?;
        let mut w = lock(&self.world);
        if let Some(n) = w.nodes.get_mut(&self.node) {
            n.powered = true;
        }
        w.update_reachability();
        Ok(PowerState::On)
    }

    async fn reboot(&self) -> Result<PowerState, FenceError> {
        self.reach().await?;
        let mut w = lock(&self.world);
        if let Some(n) = w.nodes.get_mut(&self.node) {
            power_off(n);
            n.powered = true;
        }
        w.update_reachability();
        Ok(PowerState::On)
    }
}

/// Virtual wall-clock time.
pub struct SimClock {
    world: Shared,
}

impl Clock for SimClock {
    fn now_unix_ms(&self) -> i64 {
        EPOCH_MS + lock(&self.world).now_ms()
    }
}

/// The simulated environment the reconciler runs in.
pub struct SimEnvironment {
    world: Shared,
    clock: SimClock,
}

impl SimEnvironment {
    /// An environment over `world`.
    pub fn new(world: Shared) -> SimEnvironment {
        SimEnvironment {
            clock: SimClock {
                world: world.clone(),
            },
            world,
        }
    }
}

impl Environment for SimEnvironment {
    fn runtime(&self, node: &NodeSpec) -> Result<Arc<dyn Runtime>, RuntimeError> {
        Ok(Arc::new(SimRuntime {
            node: node.name.to_string(),
            endpoint: node.runtime.clone(),
            world: self.world.clone(),
        }))
    }

    fn fence_agent(
        &self,
        _name: &str,
        spec: &FenceSpec,
    ) -> Result<Box<dyn FenceAgent>, FenceError> {
        let node = spec
            .targets
            .first()
            .map(ToString::to_string)
            .unwrap_or_default();
        Ok(Box::new(SimBmc {
            node,
            world: self.world.clone(),
        }))
    }

    fn instance(
        &self,
        set: &SpecSet,
        bundle: &str,
        index: u32,
        commit: &str,
    ) -> Result<InstanceSpec, InstanceError> {
        // The simulation reads no secret; the default policy, as a real reconciler's.
        instance_spec(set, bundle, index, commit, &SecretPolicy::default())
    }

    fn network(&self, set: &SpecSet, bundle: &str) -> Option<NetworkSpec> {
        network_spec(set, bundle)
    }

    fn clock(&self) -> &dyn Clock {
        &self.clock
    }
}

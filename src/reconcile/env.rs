//! The reconciler's edges: how it reaches runtimes and fence devices, builds containers
//! and reads the time. The real environment talks to Podman, Docker and IPMI; the
//! simulation supplies in-memory ones, so the same loop runs in both.

use std::sync::Arc;

use crate::fence::{Clock, FenceAgent, FenceError};
use crate::runtime::from_spec::InstanceError;
use crate::runtime::{InstanceSpec, NetworkSpec, Runtime, RuntimeError};
use crate::spec::SpecSet;
use crate::spec::cluster::NodeSpec;
use crate::spec::fence::FenceSpec;

/// Everything the reconciler talks to.
pub trait Environment: Send + Sync {
    /// A driver for `node`'s runtime (nothing is contacted yet).
    fn runtime(&self, node: &NodeSpec) -> Result<Arc<dyn Runtime>, RuntimeError>;

    /// An agent for fence device `name`.
    fn fence_agent(&self, name: &str, spec: &FenceSpec) -> Result<Box<dyn FenceAgent>, FenceError>;

    /// The container for instance `index` of `bundle`, labelled with `commit`. Reads
    /// secrets at this moment; errors name the secret reference, never its value.
    fn instance(
        &self,
        set: &SpecSet,
        bundle: &str,
        index: u32,
        commit: &str,
    ) -> Result<InstanceSpec, InstanceError>;

    /// The runtime network the bundle's instances join, if it has fixed addresses.
    fn network(&self, set: &SpecSet, bundle: &str) -> Option<NetworkSpec>;

    /// Wall-clock time, for timestamps. (Waiting uses `tokio::time`, which a simulation
    /// pauses and advances.)
    fn clock(&self) -> &dyn Clock;
}

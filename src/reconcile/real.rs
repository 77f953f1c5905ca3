//! The real environment: Podman and Docker through their APIs, IPMI BMCs, the system
//! clock, secrets from the environment and files.

use std::sync::Arc;
use std::time::Duration;

use super::env::Environment;
use crate::fence::from_spec::ipmi_config;
use crate::fence::ipmi::IpmiAgent;
use crate::fence::{Clock, FenceAgent, FenceError, SystemClock};
use crate::runtime::from_spec::{InstanceError, connection, instance_spec, network_spec};
use crate::runtime::{InstanceSpec, NetworkSpec, Runtime, RuntimeError, connect};
use crate::secret::SecretPolicy;
use crate::spec::SpecSet;
use crate::spec::cluster::NodeSpec;
use crate::spec::fence::FenceSpec;

/// Talks to the real services.
pub struct RealEnvironment {
    cluster: String,
    timeout: Duration,
    clock: SystemClock,
    /// The secret references the operator allows the specs to use.
    secrets: SecretPolicy,
}

impl RealEnvironment {
    /// For the cluster of `spec`; every runtime call is bounded by `timeout`; a spec's
    /// secrets are read only if `secrets` allows their references.
    pub fn new(spec: &SpecSet, timeout: Duration, secrets: SecretPolicy) -> RealEnvironment {
        RealEnvironment {
            cluster: spec.cluster_name.to_string(),
            timeout,
            clock: SystemClock,
            secrets,
        }
    }
}

impl Environment for RealEnvironment {
    fn runtime(&self, node: &NodeSpec) -> Result<Arc<dyn Runtime>, RuntimeError> {
        // Scoped to this cluster: another cluster's containers on a shared node are never
        // listed, stopped or replaced.
        let conn = connection(node, self.timeout)?.for_cluster(&self.cluster);
        Ok(Arc::from(connect(conn)?))
    }

    fn fence_agent(
        &self,
        _name: &str,
        spec: &FenceSpec,
    ) -> Result<Box<dyn FenceAgent>, FenceError> {
        IpmiAgent::new(ipmi_config(spec, &self.secrets)).map(|a| Box::new(a) as Box<dyn FenceAgent>)
    }

    fn instance(
        &self,
        set: &SpecSet,
        bundle: &str,
        index: u32,
        commit: &str,
    ) -> Result<InstanceSpec, InstanceError> {
        instance_spec(set, bundle, index, commit, &self.secrets)
    }

    fn network(&self, set: &SpecSet, bundle: &str) -> Option<NetworkSpec> {
        network_spec(set, bundle)
    }

    fn clock(&self) -> &dyn Clock {
        &self.clock
    }
}

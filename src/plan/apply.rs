//! The state a plan leaves behind when every step succeeds: used for what-ifs
//! (`--fail-node` on a converged cluster), idempotence checks and simulation.

use crate::observed::{InstanceState, NodeState, Observed, ObservedInstance};
use crate::spec::SpecSet;

use super::hash::instance_hash;
use super::model::{Plan, StepOp};

/// `observed` after every step of `plan` succeeded.
pub fn expected_state(spec: &SpecSet, observed: &Observed, plan: &Plan) -> Observed {
    let mut next = observed.clone();
    for step in &plan.steps {
        match &step.op {
            StepOp::Fence { node } => {
                let n = next.nodes.entry(node.clone()).or_default();
                n.state = NodeState::Fenced;
                n.since = Some(observed.now);
                n.instances.clear();
            }
            StepOp::Stop {
                node,
                bundle,
                index,
            } => {
                if let Some(n) = next.nodes.get_mut(node) {
                    n.instances
                        .retain(|i| !(i.bundle == *bundle && i.index == *index));
                }
            }
            StepOp::Start {
                node,
                bundle,
                index,
            } => {
                let Some(b) = spec.bundles.get(bundle) else {
                    continue;
                };
                let n = next.nodes.entry(node.clone()).or_default();
                n.instances
                    .retain(|i| !(i.bundle == *bundle && i.index == *index));
                n.instances.push(ObservedInstance {
                    bundle: bundle.clone(),
                    index: *index,
                    spec_hash: instance_hash(bundle.as_str(), b, *index),
                    state: InstanceState::Running,
                });
                n.instances
                    .sort_by(|a, b| (&a.bundle, a.index).cmp(&(&b.bundle, b.index)));
            }
        }
    }
    next
}

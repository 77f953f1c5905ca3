//! The state a plan leaves behind when every step succeeds: used for what-ifs
//! (`--fail-node` on a converged cluster), idempotence checks and simulation.

use crate::observed::{InstanceState, NodeState, Observed, ObservedInstance, Role};
use crate::spec::{Name, SpecSet};

use super::hash::instance_hash;
use super::model::{Plan, StepOp};
use super::promotion::host_of;

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
                    // A new container starts unpromoted.
                    role: b.promotable.as_ref().map(|_| Role::default()),
                });
                n.instances
                    .sort_by(|a, b| (&a.bundle, a.index).cmp(&(&b.bundle, b.index)));
            }
            StepOp::Promote {
                node,
                bundle,
                index,
            } => set_role(
                &mut next,
                node,
                bundle,
                *index,
                Role {
                    promoted: true,
                    ..Role::default()
                },
            ),
            StepOp::Demote {
                node,
                bundle,
                index,
                follow,
                ..
            } => {
                let follows = follow
                    .as_ref()
                    .and_then(|(_, at)| host_of(spec, at.as_str()))
                    .map(str::to_owned);
                let role = Role {
                    follows,
                    ..Role::default()
                };
                set_role(&mut next, node, bundle, *index, role);
            }
        }
    }
    next
}

/// The role of instance `index` of `bundle` on `node` becomes `role`, its preference kept.
fn set_role(next: &mut Observed, node: &Name, bundle: &Name, index: u32, role: Role) {
    let Some(n) = next.nodes.get_mut(node) else {
        return;
    };
    for i in n
        .instances
        .iter_mut()
        .filter(|i| i.bundle == *bundle && i.index == index)
    {
        let preference = i.role.as_ref().and_then(|r| r.preference);
        i.role = Some(Role {
            preference,
            ..role.clone()
        });
    }
}

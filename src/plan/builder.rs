//! Building a plan's actions and steps, with ids in creation order.

use super::model::{
    Action, ActionId, ActionType, Blocked, Promotion, Step, StepId, StepOp, Unmanaged,
};
use crate::spec::Name;
use crate::spec::bundle::instance_name;

/// Accumulates actions, steps and blocked instances.
#[derive(Default)]
pub struct Builder {
    pub actions: Vec<Action>,
    pub steps: Vec<Step>,
    pub blocked: Vec<Blocked>,
    /// Instances of suspended bundles, left alone.
    pub suspended: Vec<Unmanaged>,
    /// How promotions were decided (`--explain`).
    pub promotions: Vec<Promotion>,
    /// Where each promotable bundle's promoted instances are once the plan is done.
    pub promoted_on: super::placement::Promoted,
}

/// An instance: its bundle and number.
#[derive(Clone, Copy)]
pub struct Inst<'a> {
    pub bundle: &'a Name,
    pub index: u32,
}

impl Inst<'_> {
    pub fn name(&self) -> String {
        instance_name(self.bundle.as_str(), self.index)
    }
}

/// Where step or action `id` is in the builder's list: it numbers them 1, 2, … in the
/// order it makes them, and nothing is removed before `order::finish`.
pub(super) fn slot(id: u32) -> usize {
    usize::try_from(id).map_or(usize::MAX, |id| id.wrapping_sub(1))
}

impl Builder {
    fn action(
        &mut self,
        kind: ActionType,
        node: Option<&Name>,
        from: Option<&Name>,
        inst: Option<Inst>,
        reason: String,
    ) -> ActionId {
        let id = ActionId(u32::try_from(self.actions.len() + 1).unwrap_or(u32::MAX));
        self.actions.push(Action {
            id,
            kind,
            node: node.cloned(),
            from: from.cloned(),
            bundle: inst.map(|i| i.bundle.clone()),
            instance: inst.map(|i| i.name()),
            reason,
            after: Vec::new(),
        });
        id
    }

    fn step(&mut self, action: ActionId, op: StepOp, after: Vec<StepId>) -> StepId {
        let id = StepId(u32::try_from(self.steps.len() + 1).unwrap_or(u32::MAX));
        self.steps.push(Step {
            id,
            action,
            op,
            after,
        });
        id
    }

    fn stop_op(node: &Name, inst: Inst) -> StepOp {
        StepOp::Stop {
            node: node.clone(),
            bundle: inst.bundle.clone(),
            index: inst.index,
        }
    }

    fn start_op(node: &Name, inst: Inst) -> StepOp {
        StepOp::Start {
            node: node.clone(),
            bundle: inst.bundle.clone(),
            index: inst.index,
        }
    }

    /// Fences `node`; returns the fence step.
    pub fn fence(&mut self, node: &Name, reason: String) -> StepId {
        let a = self.action(ActionType::Fence, Some(node), None, None, reason);
        self.step(a, StepOp::Fence { node: node.clone() }, Vec::new())
    }

    /// Stops `inst` on `node`.
    pub fn stop(&mut self, node: &Name, inst: Inst, reason: String) -> StepId {
        let a = self.action(ActionType::Stop, Some(node), None, Some(inst), reason);
        self.step(a, Self::stop_op(node, inst), Vec::new())
    }

    /// Starts `inst` on `node` after `after`.
    pub fn start(&mut self, node: &Name, inst: Inst, reason: String, after: Vec<StepId>) -> StepId {
        let a = self.action(ActionType::Start, Some(node), None, Some(inst), reason);
        self.step(a, Self::start_op(node, inst), after)
    }

    /// Stops `inst` on `node` and starts it there again after the stop and `after`;
    /// returns (stop, start).
    pub fn restart(
        &mut self,
        node: &Name,
        inst: Inst,
        reason: String,
        after: Vec<StepId>,
    ) -> (StepId, StepId) {
        let a = self.action(ActionType::Restart, Some(node), None, Some(inst), reason);
        let stop = self.step(a, Self::stop_op(node, inst), Vec::new());
        let mut deps = after;
        deps.push(stop);
        let start = self.step(a, Self::start_op(node, inst), deps);
        (stop, start)
    }

    /// Moves `inst` from `from` to `to`. The stop on `from` is skipped when `from` is
    /// known to be off (`stop_source` false); the start waits for the stop and for
    /// `after`. Returns (stop, start).
    pub fn relocate(
        &mut self,
        from: &Name,
        to: &Name,
        inst: Inst,
        stop_source: bool,
        reason: String,
        after: Vec<StepId>,
    ) -> (Option<StepId>, StepId) {
        let a = self.action(ActionType::Move, Some(to), Some(from), Some(inst), reason);
        let stop = stop_source.then(|| self.step(a, Self::stop_op(from, inst), Vec::new()));
        let mut deps = after;
        deps.extend(stop);
        let start = self.step(a, Self::start_op(to, inst), deps);
        (stop, start)
    }

    /// Promotes `inst` on `node` after `after`; returns the step.
    pub fn promote(
        &mut self,
        node: &Name,
        inst: Inst,
        reason: String,
        after: Vec<StepId>,
    ) -> StepId {
        let a = self.action(ActionType::Promote, Some(node), None, Some(inst), reason);
        let op = StepOp::Promote {
            node: node.clone(),
            bundle: inst.bundle.clone(),
            index: inst.index,
        };
        self.step(a, op, after)
    }

    /// Demotes `inst` on `node`, which may be promoted now (`primary`), or tells the
    /// replica whom to follow: instance `follow.0` on node `follow.1`. After `after`;
    /// returns the step.
    pub fn demote(
        &mut self,
        node: &Name,
        inst: Inst,
        (follow, primary): (Option<(u32, Name)>, bool),
        reason: String,
        after: Vec<StepId>,
    ) -> StepId {
        let a = self.action(ActionType::Demote, Some(node), None, Some(inst), reason);
        let op = StepOp::Demote {
            node: node.clone(),
            bundle: inst.bundle.clone(),
            index: inst.index,
            follow,
            primary,
        };
        self.step(a, op, after)
    }

    /// Makes step `step` wait for step `first` too.
    pub fn add_after(&mut self, step: StepId, first: StepId) {
        if let Some(s) = self.steps.get_mut(slot(step.0)).filter(|s| s.id == step) {
            s.after.push(first);
        }
    }

    /// Records that `inst` is left as it is.
    pub fn block(&mut self, inst: Inst, reason: String) {
        self.blocked.push(Blocked {
            instance: inst.name(),
            bundle: inst.bundle.clone(),
            reason,
            count: 1,
        });
    }
}

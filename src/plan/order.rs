//! The step graph: dependencies between steps of different actions (order constraints,
//! one instance's stops before its starts), then a stable topological numbering so the
//! plan reads top to bottom.

use std::collections::{BTreeMap, BTreeSet};

use super::model::{Action, ActionId, Step, StepId, StepOp};
use crate::spec::SpecSet;
use crate::spec::constraint::ConstraintSpec;

/// Adds cross-action dependencies and renumbers actions and steps in dependency order.
pub fn finish(
    spec: &SpecSet,
    actions: Vec<Action>,
    mut steps: Vec<Step>,
) -> (Vec<Action>, Vec<Step>) {
    let mut starts: BTreeMap<(&str, Option<u32>), Vec<StepId>> = BTreeMap::new();
    let mut stops: BTreeMap<(&str, Option<u32>), Vec<StepId>> = BTreeMap::new();
    for s in &steps {
        match &s.op {
            StepOp::Start { bundle, index, .. } => {
                starts
                    .entry((bundle.as_str(), None))
                    .or_default()
                    .push(s.id);
                starts
                    .entry((bundle.as_str(), Some(*index)))
                    .or_default()
                    .push(s.id);
            }
            StepOp::Stop { bundle, index, .. } => {
                stops.entry((bundle.as_str(), None)).or_default().push(s.id);
                stops
                    .entry((bundle.as_str(), Some(*index)))
                    .or_default()
                    .push(s.id);
            }
            StepOp::Fence { .. } => {}
        }
    }
    let mut extra: BTreeMap<StepId, BTreeSet<StepId>> = BTreeMap::new();
    // An instance starts only after every stop of that instance (invariant 1).
    for (key, ids) in &starts {
        if key.1.is_some() {
            for start in ids {
                extra
                    .entry(*start)
                    .or_default()
                    .extend(stops.get(key).into_iter().flatten());
            }
        }
    }
    // Order constraints: `then` starts after `first` starts; symmetrical ones stop
    // `first` after `then`.
    for c in spec.constraints.values() {
        let ConstraintSpec::Order(o) = c else {
            continue;
        };
        let (first, then) = (o.first.as_str(), o.then.as_str());
        for start in starts.get(&(then, None)).into_iter().flatten() {
            extra
                .entry(*start)
                .or_default()
                .extend(starts.get(&(first, None)).into_iter().flatten());
        }
        if o.symmetrical {
            for stop in stops.get(&(first, None)).into_iter().flatten() {
                extra
                    .entry(*stop)
                    .or_default()
                    .extend(stops.get(&(then, None)).into_iter().flatten());
            }
        }
    }
    let owner: BTreeMap<StepId, ActionId> = steps.iter().map(|s| (s.id, s.action)).collect();
    for s in &mut steps {
        if let Some(more) = extra.remove(&s.id) {
            let own = s.action;
            s.after.extend(
                more.into_iter()
                    .filter(|d| *d != s.id && owner.get(d) != Some(&own)),
            );
            s.after.sort();
            s.after.dedup();
        }
    }
    renumber(actions, steps)
}

/// Orders steps topologically (lowest id first among the ready), then actions by the
/// position of their last step, and gives both fresh consecutive ids.
fn renumber(mut actions: Vec<Action>, steps: Vec<Step>) -> (Vec<Action>, Vec<Step>) {
    let order = topological(&steps);
    let position: BTreeMap<StepId, usize> =
        order.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    let by_id: BTreeMap<StepId, &Step> = steps.iter().map(|s| (s.id, s)).collect();

    // An action's last step decides where the action stands and what it waits for.
    let mut last: BTreeMap<ActionId, StepId> = BTreeMap::new();
    for s in &steps {
        let e = last.entry(s.action).or_insert(s.id);
        if position.get(&s.id) > position.get(e) {
            *e = s.id;
        }
    }
    actions.sort_by_key(|a| {
        last.get(&a.id)
            .and_then(|s| position.get(s))
            .copied()
            .unwrap_or(usize::MAX)
    });
    let new_action: BTreeMap<ActionId, ActionId> = actions
        .iter()
        .enumerate()
        .map(|(i, a)| (a.id, ActionId(u32::try_from(i + 1).unwrap_or(u32::MAX))))
        .collect();
    let new_step: BTreeMap<StepId, StepId> = order
        .iter()
        .enumerate()
        .map(|(i, s)| (*s, StepId(u32::try_from(i + 1).unwrap_or(u32::MAX))))
        .collect();
    for a in &mut actions {
        let mut after: Vec<ActionId> = last
            .get(&a.id)
            .and_then(|s| by_id.get(s))
            .map(|s| {
                s.after
                    .iter()
                    .filter_map(|d| by_id.get(d))
                    .map(|d| d.action)
                    .collect()
            })
            .unwrap_or_default();
        after.retain(|x| *x != a.id);
        let mut after: Vec<ActionId> = after
            .iter()
            .filter_map(|x| new_action.get(x).copied())
            .collect();
        after.sort();
        after.dedup();
        a.after = after;
        a.id = new_action.get(&a.id).copied().unwrap_or(a.id);
    }
    let mut out: Vec<Step> = order
        .iter()
        .filter_map(|id| by_id.get(id).map(|s| (*s).clone()))
        .map(|mut s| {
            s.id = new_step[&s.id];
            s.action = new_action.get(&s.action).copied().unwrap_or(s.action);
            s.after = s
                .after
                .iter()
                .filter_map(|d| new_step.get(d).copied())
                .collect();
            s.after.sort();
            s
        })
        .collect();
    out.sort_by_key(|s| s.id);
    (actions, out)
}

/// Kahn's algorithm, always taking the lowest ready id; steps on a cycle (none are
/// built) would be appended in id order rather than lost.
fn topological(steps: &[Step]) -> Vec<StepId> {
    let mut indegree: BTreeMap<StepId, usize> = steps.iter().map(|s| (s.id, 0)).collect();
    let mut next: BTreeMap<StepId, Vec<StepId>> = BTreeMap::new();
    for s in steps {
        for d in &s.after {
            if indegree.contains_key(d) {
                *indegree.entry(s.id).or_default() += 1;
                next.entry(*d).or_default().push(s.id);
            }
        }
    }
    let mut ready: BTreeSet<StepId> = indegree
        .iter()
        .filter(|(_, d)| **d == 0)
        .map(|(s, _)| *s)
        .collect();
    let mut out = Vec::with_capacity(steps.len());
    while let Some(s) = ready.pop_first() {
        out.push(s);
        for n in next.get(&s).map(Vec::as_slice).unwrap_or(&[]) {
            if let Some(d) = indegree.get_mut(n) {
                *d -= 1;
                if *d == 0 {
                    ready.insert(*n);
                }
            }
        }
    }
    if out.len() < steps.len() {
        let seen: BTreeSet<StepId> = out.iter().copied().collect();
        out.extend(steps.iter().map(|s| s.id).filter(|id| !seen.contains(id)));
    }
    out
}

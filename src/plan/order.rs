//! The step graph: dependencies between steps of different actions (order constraints,
//! one instance's stops before its starts, a start after the stops on its node that free
//! what it needs), then a stable topological numbering so the plan reads top to bottom.

use std::cmp::Reverse;
use std::collections::BTreeMap;

use super::HashMap;
use super::builder::slot;
use super::model::{Action, ActionId, Step, StepId, StepOp};
use super::placement::NodeOf;
use crate::spec::SpecSet;
use crate::spec::bundle::{BundleSpec, Protocol};
use crate::spec::constraint::{ConstraintSpec, OrderAction, OrderConstraint, OrderKind};

/// Steps by bundle (`None`) or instance (`Some(index)`).
type Keyed<'s> = HashMap<(&'s str, Option<u32>), Vec<StepId>>;

/// What each step waits for besides its own `after`, by its slot; `None` for a step
/// nothing was added to.
struct Extra(Vec<Option<Vec<StepId>>>);

impl Extra {
    /// That `step` waits for `on` too.
    fn add(&mut self, step: StepId, on: impl IntoIterator<Item = StepId>) {
        if let Some(more) = self.0.get_mut(slot(step.0)) {
            more.get_or_insert_default().extend(on);
        }
    }
}

/// Adds cross-action dependencies and renumbers actions and steps in dependency order.
pub fn finish(
    spec: &SpecSet,
    actions: Vec<Action>,
    mut steps: Vec<Step>,
) -> (Vec<Action>, Vec<Step>) {
    let keyed = Keys::of(&steps);
    debug_assert!(steps.iter().enumerate().all(|(i, s)| slot(s.id.0) == i));
    let mut extra = Extra(vec![None; steps.len()]);
    wait_for_what_stops_free(spec, &steps, &mut extra);
    // An instance starts only after every stop of that instance (invariant 1).
    for s in &steps {
        if let StepOp::Start { bundle, index, .. } = &s.op {
            let key = (bundle.as_str(), Some(*index));
            extra.add(s.id, keyed.stops.get(&key).into_iter().flatten().copied());
        }
    }
    for c in spec.constraints.values() {
        if let ConstraintSpec::Order(o) = c {
            keyed.order(o, &mut extra);
        }
    }
    let owner: Vec<ActionId> = steps.iter().map(|s| s.action).collect();
    for (s, more) in steps.iter_mut().zip(extra.0) {
        if let Some(more) = more {
            let own = s.action;
            s.after.extend(
                more.into_iter()
                    .filter(|d| *d != s.id && owner.get(slot(d.0)) != Some(&own)),
            );
            s.after.sort();
            s.after.dedup();
        }
    }
    renumber(actions, steps)
}

/// The starts, stops and promotions of a plan by bundle (and the stops also by
/// instance). Looked up, never read in order: hashed.
struct Keys<'s> {
    starts: Keyed<'s>,
    stops: Keyed<'s>,
    promotes: Keyed<'s>,
}

impl<'s> Keys<'s> {
    fn of(steps: &'s [Step]) -> Keys<'s> {
        let mut k = Keys {
            starts: HashMap::default(),
            stops: HashMap::default(),
            promotes: HashMap::default(),
        };
        for s in steps {
            let (map, bundle) = match &s.op {
                StepOp::Start { bundle, .. } => (&mut k.starts, bundle),
                StepOp::Stop { bundle, index, .. } => {
                    let of_instance = (bundle.as_str(), Some(*index));
                    k.stops.entry(of_instance).or_default().push(s.id);
                    (&mut k.stops, bundle)
                }
                StepOp::Promote { bundle, .. } => (&mut k.promotes, bundle),
                StepOp::Fence { .. } | StepOp::Demote { .. } => continue,
            };
            map.entry((bundle.as_str(), None)).or_default().push(s.id);
        }
        k
    }

    /// The dependencies order constraint `o` adds: `then` starts after `first` starts
    /// (or is promoted, `action: promote`); a symmetrical one stops `first` after
    /// `then`; a `serialize` one runs their steps one phase after another.
    fn order(&self, o: &OrderConstraint, extra: &mut Extra) {
        let (first, then) = (o.first.as_str(), o.then.as_str());
        if o.kind == OrderKind::Serialize {
            let phases = [
                of_bundle(&self.stops, then).collect(),
                of_bundle(&self.stops, first).collect(),
                of_bundle(&self.starts, first).collect(),
                of_bundle(&self.starts, then).collect(),
            ];
            return serialize(&phases, extra);
        }
        let awaited = match o.action {
            OrderAction::Start => &self.starts,
            OrderAction::Promote => &self.promotes,
        };
        for start in of_bundle(&self.starts, then) {
            extra.add(start, of_bundle(awaited, first));
        }
        if o.symmetrical {
            for stop in of_bundle(&self.stops, first) {
                extra.add(stop, of_bundle(&self.stops, then));
            }
        }
    }
}

/// The steps of `bundle` in `map`.
fn of_bundle<'k>(map: &'k Keyed<'_>, bundle: &'k str) -> impl Iterator<Item = StepId> + 'k {
    map.get(&(bundle, None)).into_iter().flatten().copied()
}

/// Bundles `then` of a mandatory order whose `first` has fewer instances placed than the
/// order's `minInstances` (1 by default: none placed), with that `first`. Such a `then`
/// places no instance, so a running one stops (Pacemaker stops what depends on a
/// resource that cannot run). An order made from a set with `requireAll: false` starves
/// `then` only when none of the set's bundles (`any_of`) has enough placed. `orders` are
/// those that [`may_starve`], each `then`'s in the set's order (of several that starve
/// it, the last is named).
pub(crate) fn starved<'a>(
    orders: impl Iterator<Item = &'a OrderConstraint>,
    placed: &NodeOf<'a>,
) -> BTreeMap<&'a str, &'a str> {
    let placed = |b: &str| {
        let n = placed.of(b).filter(|(_, node)| node.is_some()).count();
        Some(u32::try_from(n).unwrap_or(u32::MAX))
    };
    orders
        .filter(|o| starves(o, placed) == Some(true))
        .map(|o| (o.then.as_str(), o.first.as_str()))
        .collect()
}

/// Whether order `o` can keep its `then` from placing instances: it is mandatory, and
/// its `then` and every `first` are bundles of `spec`.
pub(crate) fn may_starve(spec: &SpecSet, o: &OrderConstraint) -> bool {
    let known = |b: &crate::spec::Name| spec.bundles.contains_key(b.as_str());
    o.kind == OrderKind::Mandatory
        && known(&o.then)
        && std::iter::once(&o.first).chain(&o.any_of).all(known)
}

/// Whether order `o`, one that [`may_starve`], keeps its `then` from placing instances
/// (as [`starved`] says), by how many instances of each bundle are `placed`; `None`
/// while that depends on a bundle whose count is not known yet.
pub(crate) fn starves(o: &OrderConstraint, placed: impl Fn(&str) -> Option<u32>) -> Option<bool> {
    let mut all = Some(true);
    for first in std::iter::once(&o.first).chain(&o.any_of) {
        match placed(first.as_str()) {
            Some(n) if n >= o.min_instances.unwrap_or(1) => return Some(false),
            Some(_) => {}
            None => all = None,
        }
    }
    all
}

/// What each `starved` bundle (`then`) waits for from its `first`, in reasons: `db`, or
/// `2 instances of db` for an order with `minInstances: 2`. One pass over the
/// constraints for all of them.
pub(crate) fn awaited<'a>(
    spec: &SpecSet,
    starved: &BTreeMap<&'a str, &'a str>,
) -> BTreeMap<&'a str, String> {
    let mut min: BTreeMap<&str, u32> = BTreeMap::new();
    for c in spec.constraints.values() {
        if let ConstraintSpec::Order(o) = c
            && o.kind == OrderKind::Mandatory
            && starved.get(o.then.as_str()) == Some(&o.first.as_str())
            && let Some(n) = o.min_instances
        {
            let at = min.entry(o.then.as_str()).or_insert(1);
            *at = (*at).max(n);
        }
    }
    starved
        .iter()
        .map(|(then, first)| {
            let reason = match min.get(then).copied().unwrap_or(1) {
                n if n > 1 => format!("{n} instances of {first}"),
                _ => (*first).to_owned(),
            };
            (*then, reason)
        })
        .collect()
}

/// A `serialize` order: every step of a phase waits for every step of the phases before
/// it (stops of `then`, stops of `first`, starts of `first`, starts of `then`), so no
/// two of them run at once. Stops come before starts, as every other dependency of the
/// plan has them, so these add no cycle (validation refuses cycles of orders).
fn serialize(phases: &[Vec<StepId>], extra: &mut Extra) {
    let mut before: Vec<StepId> = Vec::new();
    for phase in phases {
        for step in phase {
            extra.add(*step, before.iter().copied());
        }
        before.extend(phase.iter().copied());
    }
}

/// A start waits for the stops on its node that free what it needs: a place under the
/// bundle's `replicasPerHost` (another instance of the same bundle), host ports it
/// publishes too, capacity it needs too (a `placementStrategy` other than `default`), or
/// whatever a bundle no longer in the spec held there. Otherwise the
/// start can find them taken ("address already in use") and fail until the next pass.
fn wait_for_what_stops_free(spec: &SpecSet, steps: &[Step], extra: &mut Extra) {
    let mut stops_on: HashMap<&str, Vec<(StepId, &str, u32)>> = HashMap::default();
    for s in steps {
        if let StepOp::Stop {
            node,
            bundle,
            index,
        } = &s.op
        {
            stops_on
                .entry(node.as_str())
                .or_default()
                .push((s.id, bundle.as_str(), *index));
        }
    }
    let mut frees: HashMap<(&str, &str), bool> = HashMap::default();
    for s in steps {
        let StepOp::Start {
            node,
            bundle,
            index,
        } = &s.op
        else {
            continue;
        };
        for (stop, stopped, i) in stops_on.get(node.as_str()).into_iter().flatten() {
            if (*stopped, *i) == (bundle.as_str(), *index) {
                continue; // the same instance: below
            }
            let needed = *frees
                .entry((bundle.as_str(), stopped))
                .or_insert_with(|| stop_frees(spec, bundle.as_str(), stopped));
            if needed {
                extra.add(s.id, [*stop]);
            }
        }
    }
}

/// Whether stopping an instance of `stopped` on a node frees something an instance of
/// `bundle` needs there.
fn stop_frees(spec: &SpecSet, bundle: &str, stopped: &str) -> bool {
    if bundle == stopped {
        return true; // a place under replicasPerHost
    }
    let (Some(a), Some(b)) = (spec.bundles.get(bundle), spec.bundles.get(stopped)) else {
        return true; // removed from the spec: what it held is unknown
    };
    let (ours, theirs) = (host_ports(a), host_ports(b));
    ours.iter().any(|(proto, first, last)| {
        theirs
            .iter()
            .any(|(p, f, l)| p == proto && first <= l && f <= last)
    }) || frees_capacity(spec, a, b)
}

/// Whether an instance of `stopped` gives back capacity an instance of `bundle` needs:
/// under a `placementStrategy` that counts capacity, they need some quantity both.
fn frees_capacity(spec: &SpecSet, bundle: &BundleSpec, stopped: &BundleSpec) -> bool {
    spec.cluster.placement_strategy.enforces_capacity()
        && bundle
            .needs
            .iter()
            .any(|(q, n)| *n > 0 && stopped.needs.get(q).is_some_and(|m| *m > 0))
}

/// The host ports a bundle publishes: protocol, first and last.
fn host_ports(b: &BundleSpec) -> Vec<(Protocol, u32, u32)> {
    b.network
        .iter()
        .flat_map(|n| &n.ports)
        .filter_map(|m| {
            let (first, _, count) = m.published()?;
            let first = u32::from(first);
            Some((m.protocol, first, first + u32::from(count.max(1)) - 1))
        })
        .collect()
}

/// Orders steps topologically (lowest id first among the ready), then actions by the
/// position of their last step, and gives both fresh consecutive ids.
fn renumber(mut actions: Vec<Action>, steps: Vec<Step>) -> (Vec<Action>, Vec<Step>) {
    let order = topological(&steps);
    // Each step's position in `order`, by its slot.
    let mut position = vec![usize::MAX; steps.len()];
    for (i, id) in order.iter().enumerate() {
        if let Some(p) = position.get_mut(slot(id.0)) {
            *p = i;
        }
    }
    let at = |id: StepId| position.get(slot(id.0)).copied().unwrap_or(usize::MAX);
    // Its new id: its place in `order`, from 1.
    let new_step = |id: StepId| {
        let at = Some(at(id)).filter(|p| *p != usize::MAX)?;
        Some(StepId(u32::try_from(at + 1).unwrap_or(u32::MAX)))
    };
    let step = |id: StepId| steps.get(slot(id.0));
    // An action's last step decides where the action stands and what it waits for.
    let mut last: Vec<Option<StepId>> = vec![None; actions.len()];
    for s in &steps {
        if let Some(l) = last.get_mut(slot(s.action.0))
            && l.is_none_or(|l| at(s.id) > at(l))
        {
            *l = Some(s.id);
        }
    }
    let last_of = |a: ActionId| last.get(slot(a.0)).copied().flatten();
    actions.sort_by_key(|a| last_of(a.id).map_or(usize::MAX, at));
    let mut new_action: Vec<Option<ActionId>> = vec![None; actions.len()];
    for (i, a) in actions.iter().enumerate() {
        if let Some(n) = new_action.get_mut(slot(a.id.0)) {
            *n = Some(ActionId(u32::try_from(i + 1).unwrap_or(u32::MAX)));
        }
    }
    let renamed = |a: ActionId| new_action.get(slot(a.0)).copied().flatten();
    for a in &mut actions {
        let waits = last_of(a.id).and_then(step).map(|s| s.after.as_slice());
        let mut after: Vec<ActionId> = waits
            .unwrap_or_default()
            .iter()
            .filter_map(|d| step(*d))
            .filter(|d| d.action != a.id)
            .filter_map(|d| renamed(d.action))
            .collect();
        after.sort();
        after.dedup();
        a.after = after;
        a.id = renamed(a.id).unwrap_or(a.id);
    }
    let mut steps: Vec<Option<Step>> = steps.into_iter().map(Some).collect();
    // Taken in `order`, whose positions are the new ids: the steps come out sorted.
    let out = order
        .iter()
        .filter_map(|id| steps.get_mut(slot(id.0)).and_then(Option::take))
        .map(|mut s| {
            s.id = new_step(s.id).unwrap_or(s.id);
            s.action = renamed(s.action).unwrap_or(s.action);
            s.after = s.after.iter().filter_map(|d| new_step(*d)).collect();
            s.after.sort();
            s
        })
        .collect();
    (actions, out)
}

/// The steps in dependency order, the lowest ready id first; steps on a cycle (none are
/// built) would be appended in id order rather than lost.
fn topological(steps: &[Step]) -> Vec<StepId> {
    let edges = steps
        .iter()
        .flat_map(|s| s.after.iter().map(move |d| (*d, s.id)));
    let sorted = crate::graph::toposort(steps.iter().map(|s| s.id), edges, Reverse);
    let mut out = sorted.order;
    out.extend(sorted.left);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> SpecSet {
        let bundle = |name: &str, ports: &str| {
            format!(
                "---\napiVersion: quorate.io/v1alpha1\nkind: Bundle\nmetadata: {{name: {name}}}\nspec: {{image: i, network: {{ports: [{ports}]}}}}\n"
            )
        };
        let mut t = String::from(
            "apiVersion: quorate.io/v1alpha1\nkind: Cluster\nmetadata: {name: c}\nspec:\n  nodes: [{name: n1, runtime: 'podman+unix:///n1'}]\n",
        );
        t += &bundle("web", "{port: 80}, {port: 443}");
        t += &bundle("proxy", "{range: 440-450}");
        t += &bundle("dns", "{port: 443, protocol: udp}");
        t += &bundle("quiet", "");
        let mut s = crate::source::Sources::new();
        s.add("s.yaml", t.into_bytes());
        crate::load::load(&s).set
    }

    #[test]
    fn a_stop_frees_a_place_the_same_host_ports_or_the_unknown() {
        let s = spec();
        // Another instance of the same bundle: a place under replicasPerHost.
        assert!(stop_frees(&s, "quiet", "quiet"));
        // 443/tcp is in proxy's 440-450, both ways.
        assert!(stop_frees(&s, "web", "proxy"));
        assert!(stop_frees(&s, "proxy", "web"));
        // 443/udp is another port than 443/tcp.
        assert!(!stop_frees(&s, "web", "dns"));
        // Nothing in common.
        assert!(!stop_frees(&s, "web", "quiet"));
        assert!(!stop_frees(&s, "quiet", "web"));
        // A bundle gone from the spec may have held anything.
        assert!(stop_frees(&s, "quiet", "gone"));
    }
}

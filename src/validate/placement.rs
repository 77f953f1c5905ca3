//! Whether hard constraints alone make a bundle impossible to place, and whether order
//! constraints form a cycle.

use std::collections::{BTreeMap, BTreeSet};

use super::Findings;
use crate::diag::Diagnostic;
use crate::spec::constraint::{ConstraintSpec, NodeMatcher};
use crate::spec::{Kind, SpecSet};

/// The nodes a bundle may ever run on, as a mask over the cluster's nodes (in spec
/// order): every node, minus those a `-INFINITY` location forbids, narrowed by `INFINITY`
/// colocations to the nodes their targets may run on. Standby is not counted: it is a
/// passing state, not a constraint. (A mask, not a set of names: 5,000 bundles on 1,000
/// nodes stay at a few megabytes.)
fn eligible_nodes(set: &SpecSet) -> BTreeMap<&str, Vec<bool>> {
    let mut bans: BTreeMap<&str, Vec<&crate::spec::constraint::LocationConstraint>> =
        BTreeMap::new();
    for c in set.constraints.values() {
        if let ConstraintSpec::Location(l) = c
            && l.score.is_neg_infinity()
            && l.role.is_none()
        {
            bans.entry(l.bundle.as_str()).or_default().push(l);
        }
    }
    let nodes = &set.cluster.nodes;
    let mut matcher = NodeMatcher::new(nodes.iter().map(|n| (n.name.as_str(), &n.attributes)));
    let mut eligible: BTreeMap<&str, Vec<bool>> = BTreeMap::new();
    for b in set.bundles.keys() {
        let mut mask = vec![true; nodes.len()];
        for l in bans.get(b.as_str()).map(Vec::as_slice).unwrap_or(&[]) {
            if let Some(rule) = &l.rule {
                let banned = matcher.mask(rule);
                mask.iter_mut().zip(banned).for_each(|(m, x)| *m &= !x);
            }
            for (m, n) in mask.iter_mut().zip(nodes) {
                *m &= l.node.as_ref() != Some(&n.name);
            }
        }
        eligible.insert(b.as_str(), mask);
    }
    // Narrow along mandatory colocations until nothing changes (bounded by the number of
    // constraints, since each round removes at least one node or stops).
    for _ in 0..=set.constraints.len() {
        let mut changed = false;
        for c in set.constraints.values() {
            let ConstraintSpec::Colocation(c) = c else {
                continue;
            };
            if !c.score.is_infinity() {
                continue;
            }
            let Some(with) = eligible.get(c.with.as_str()).cloned() else {
                continue;
            };
            if let Some(mine) = eligible.get_mut(c.bundle.as_str()) {
                for (m, w) in mine.iter_mut().zip(with) {
                    changed |= *m && !w;
                    *m &= w;
                }
            }
        }
        if !changed {
            break;
        }
    }
    eligible
}

pub(super) fn check(set: &SpecSet, f: &mut Findings) {
    let eligible = eligible_nodes(set);
    super::capacity::check(set, &eligible, f);
    let groups = crate::plan::colocation::order(set).groups;
    let group_of: BTreeMap<&str, &[&str]> = groups
        .iter()
        .flat_map(|g| g.iter().map(move |b| (*b, g.as_slice())))
        .collect();
    for (name, b) in &set.bundles {
        let nodes = eligible
            .get(name.as_str())
            .map_or(0, |mask| mask.iter().filter(|e| **e).count());
        let nodes = u64::try_from(nodes).unwrap_or(u64::MAX);
        let group = group_of.get(name.as_str()).copied();
        // A node of a mandatory cycle needs an instance of every member, so the members
        // use at most as many nodes as the smallest of them has instances.
        let smallest = group.and_then(|g| {
            g.iter()
                .filter_map(|m| Some((u64::from(set.bundles.get(*m)?.replicas), *m)))
                .min()
        });
        let usable = smallest.map_or(nodes, |(k, _)| nodes.min(k));
        let capacity = usable.saturating_mul(u64::from(b.replicas_per_host));
        if u64::from(b.replicas) <= capacity {
            continue;
        }
        let rph = b.replicas_per_host;
        let (why, help) = match (group, smallest) {
            (Some(g), Some((k, m))) => {
                let mut ring: Vec<&str> = g.to_vec();
                ring.extend(g.first());
                let limit = if k < nodes {
                    format!("at most {k}, as `{m}` has {k} instance(s),")
                } else {
                    format!("{nodes} node(s) all of them may run on")
                };
                (
                    format!(
                        "the INFINITY colocation cycle {} runs its members on the same nodes: {limit} × replicasPerHost {rph}",
                        ring.join(" → ")
                    ),
                    "give the members of the cycle nodes they may all run on and matching replicas, or lower one of its colocations below INFINITY",
                )
            }
            _ => (
                unplaceable_why(set, name.as_str(), nodes, rph),
                "lower replicas, raise replicasPerHost, or relax the -INFINITY locations and INFINITY colocations",
            ),
        };
        f.push(
            Diagnostic::error(
                "quorate::placement::unplaceable",
                format!(
                    "bundle `{name}` cannot place its {} replica(s): hard constraints leave room for {capacity} ({why})",
                    b.replicas
                ),
            )
            .with_help(help),
            Kind::Bundle,
            name.as_str(),
            "spec.replicas",
        );
    }
    order_cycles(set, f);
}

/// Why a bundle outside a colocation cycle has too few places: its eligible nodes, and
/// the bundles its `INFINITY` colocations narrow them to.
fn unplaceable_why(set: &SpecSet, name: &str, nodes: u64, rph: u32) -> String {
    let colocated: Vec<&str> = set
        .constraints
        .values()
        .filter_map(|c| match c {
            ConstraintSpec::Colocation(c) if c.bundle.as_str() == name && c.score.is_infinity() => {
                Some(c.with.as_str())
            }
            _ => None,
        })
        .collect();
    if colocated.is_empty() {
        format!("{nodes} eligible node(s) × replicasPerHost {rph}")
    } else {
        format!(
            "{nodes} eligible node(s) × replicasPerHost {rph}, counting the INFINITY colocation with {}",
            colocated.join(", ")
        )
    }
}

/// Reports cycles of order constraints: the topological sort peels off every bundle that is
/// not on or behind a cycle; from what is left a walk along edges finds a cycle, which is
/// reported and removed, until nothing is left.
fn order_cycles(set: &SpecSet, f: &mut Findings) {
    let mut edges: BTreeMap<&str, BTreeMap<&str, &str>> = BTreeMap::new(); // first -> then -> constraint
    for (cname, c) in &set.constraints {
        if let ConstraintSpec::Order(o) = c {
            edges.entry(o.then.as_str()).or_default();
            edges
                .entry(o.first.as_str())
                .or_default()
                .entry(o.then.as_str())
                .or_insert(cname.as_str());
        }
    }
    let mut left: BTreeSet<&str> = edges.keys().copied().collect();
    loop {
        peel(&edges, &mut left);
        let Some(&start) = left.iter().next() else {
            break;
        };
        // Every bundle left has a successor that is left, so this walk must repeat.
        let mut walk = vec![start];
        let cycle_start = loop {
            let here = walk[walk.len() - 1];
            let next = edges[here].keys().copied().find(|n| left.contains(n));
            let Some(next) = next else { break None };
            if let Some(pos) = walk.iter().position(|n| *n == next) {
                break Some(pos);
            }
            walk.push(next);
        };
        let Some(pos) = cycle_start else {
            left.remove(start);
            continue;
        };
        let cycle = &walk[pos..];
        let closing = edges[cycle[cycle.len() - 1]][cycle[0]];
        let mut names: Vec<&str> = cycle.to_vec();
        names.push(cycle[0]);
        f.push(
            Diagnostic::error(
                "quorate::order::cycle",
                format!("order constraints form a cycle: {}", names.join(" → ")),
            )
            .with_help("remove or reverse one of the order constraints in the cycle"),
            Kind::Constraint,
            closing,
            "spec.order.then",
        );
        for n in cycle {
            left.remove(n);
        }
    }
}

/// Removes from `left` every bundle on no cycle and behind none.
fn peel<'a>(edges: &BTreeMap<&'a str, BTreeMap<&'a str, &'a str>>, left: &mut BTreeSet<&'a str>) {
    let arcs = left
        .iter()
        .flat_map(|from| edges[from].keys().map(move |to| (*from, *to)));
    let sorted = crate::graph::toposort(left.iter().copied(), arcs, |_| ());
    *left = sorted.left.into_iter().collect();
}

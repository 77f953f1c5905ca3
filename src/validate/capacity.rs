//! Whether the bundles' `needs` can fit in the nodes' `capacity` at all, under a
//! `placementStrategy` that counts capacity: each instance on one node it may run on
//! (every quantity at once), and all instances together within what all nodes offer.
//! Placement still decides per plan; this only refuses what no plan could place.

use std::collections::BTreeMap;

use fixedbitset::FixedBitSet;

use super::Findings;
use super::placement::Masks;
use crate::diag::Diagnostic;
use crate::spec::cluster::{NodeSpec, PlacementStrategy};
use crate::spec::{BundleSpec, Kind, Name, SpecSet};

/// Reports what cannot fit on an empty cluster; `eligible` is, per bundle its hard
/// constraints keep off some nodes, the mask of nodes (in spec order) they leave it.
pub(super) fn check(set: &SpecSet, eligible: &Masks<'_>, f: &mut Findings) {
    if set.cluster.placement_strategy == PlacementStrategy::Default {
        ignored(set, f);
        return;
    }
    let mut fit = true;
    for (name, b) in set.bundles.iter().filter(|(_, b)| b.replicas > 0) {
        let mask = eligible.get(name.as_str());
        fit &= one_instance(set, name.as_str(), b, mask, f);
    }
    // The sums only say more once every instance fits somewhere on its own.
    if fit {
        totals(set, f);
    }
}

/// Under `default`, capacity is ignored (as Pacemaker's default strategy): a bundle that
/// declares needs is warned about once.
fn ignored(set: &SpecSet, f: &mut Findings) {
    if let Some((name, _)) = set.bundles.iter().find(|(_, b)| !b.needs.is_empty()) {
        f.push(
            Diagnostic::warning(
                "quorate::placement::capacity-ignored",
                format!(
                    "bundle `{name}` declares needs, but the cluster's placementStrategy is `default`, which ignores capacity"
                ),
            )
            .with_help("set placementStrategy to utilization, balanced or minimal in the Cluster, or remove the needs"),
            Kind::Bundle,
            name.as_str(),
            "spec.needs",
        );
    }
}

/// Whether `needs` fit in `capacity`, every quantity at once (a missing one is 0).
fn fits(needs: &BTreeMap<Name, u64>, capacity: &BTreeMap<Name, u64>) -> bool {
    needs
        .iter()
        .all(|(q, n)| *n <= capacity.get(q).copied().unwrap_or(0))
}

/// The nodes `mask` leaves (all without one), found a word of the mask at a time: a
/// bundle kept to a few nodes of thousands does not look at the others.
fn eligible<'s>(
    nodes: &'s [NodeSpec],
    mask: Option<&'s FixedBitSet>,
) -> impl Iterator<Item = &'s NodeSpec> {
    let all = mask.is_none().then_some(0..nodes.len());
    let indices = mask.into_iter().flat_map(FixedBitSet::ones);
    indices
        .chain(all.into_iter().flatten())
        .filter_map(|i| nodes.get(i))
}

/// One instance of `b` must fit on some node it may run on; returns whether it does.
fn one_instance(
    set: &SpecSet,
    name: &str,
    b: &BundleSpec,
    mask: Option<&FixedBitSet>,
    f: &mut Findings,
) -> bool {
    if eligible(&set.cluster.nodes, mask).any(|n| fits(&b.needs, &n.capacity)) {
        return true;
    }
    let nodes: Vec<_> = eligible(&set.cluster.nodes, mask).collect();
    // The first quantity no node offers enough of, else the needs together.
    let lacking = b.needs.iter().find_map(|(q, need)| {
        let best = nodes
            .iter()
            .map(|n| (n.capacity.get(q).copied().unwrap_or(0), &n.name))
            .max_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(a.1)));
        match best {
            Some((most, _)) if most >= *need => None,
            Some((most, node)) if most > 0 => Some((q, format!(
                "each instance of `{name}` needs {need} {q}; no node it may run on offers that much (the most is {most}, on {node})"
            ))),
            _ if set.cluster.nodes.iter().all(|n| !n.capacity.contains_key(q)) => Some((q, format!(
                "each instance of `{name}` needs {need} {q}, and no node declares a capacity of {q} (a node that does not list a quantity has 0 of it)"
            ))),
            _ => Some((q, format!(
                "each instance of `{name}` needs {need} {q}; no node it may run on offers any"
            ))),
        }
    });
    let (path, message) = match lacking {
        Some((q, m)) => (format!("spec.needs.{q}"), m),
        None => {
            let all: Vec<String> = b.needs.iter().map(|(q, n)| format!("{n} {q}")).collect();
            (
                "spec.needs".to_owned(),
                format!(
                    "each instance of `{name}` needs {}; no single node it may run on offers all of it at once",
                    all.join(", ")
                ),
            )
        }
    };
    f.push(
        Diagnostic::error("quorate::placement::capacity", message).with_help(
            "lower the bundle's needs, raise a node's capacity, or relax the -INFINITY locations and INFINITY colocations that keep it off the larger nodes",
        ),
        Kind::Bundle,
        name,
        &path,
    );
    false
}

/// Per quantity, the needs of all instances (`replicas` × `needs`) within the capacity of
/// all nodes; reported at the bundle, in name order, that takes the sum over.
fn totals(set: &SpecSet, f: &mut Findings) {
    let mut offered: BTreeMap<&Name, u64> = BTreeMap::new();
    for n in &set.cluster.nodes {
        for (q, c) in &n.capacity {
            let sum = offered.entry(q).or_insert(0);
            *sum = sum.saturating_add(*c);
        }
    }
    let mut needed: BTreeMap<&Name, u64> = BTreeMap::new();
    for (name, b) in &set.bundles {
        for (q, n) in &b.needs {
            let sum = needed.entry(q).or_insert(0);
            let before = *sum;
            *sum = sum.saturating_add(n.saturating_mul(u64::from(b.replicas)));
            let total = offered.get(q).copied().unwrap_or(0);
            if *sum > total && before <= total && total > 0 {
                over(f, name.as_str(), q.as_str(), *sum, total);
            }
        }
    }
}

fn over(f: &mut Findings, bundle: &str, quantity: &str, needed: u64, total: u64) {
    f.push(
        Diagnostic::error(
            "quorate::placement::capacity-total",
            format!(
                "with `{bundle}`, the bundles need {needed} {quantity} in all (replicas × needs), more than the {total} all nodes offer together"
            ),
        )
        .with_help("lower the replicas or needs of this or other bundles, or give the nodes more capacity"),
        Kind::Bundle,
        bundle,
        &format!("spec.needs.{quantity}"),
    );
}

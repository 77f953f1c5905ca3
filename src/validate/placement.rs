//! Whether hard constraints alone make a bundle impossible to place, and whether order
//! constraints form a cycle.

use std::collections::{BTreeMap, HashMap};

use fixedbitset::FixedBitSet;

use super::Findings;
use crate::diag::Diagnostic;
use crate::plan::colocation::Order;
use crate::spec::constraint::{ConstraintSpec, NodeMatcher};
use crate::spec::{Kind, SpecSet};

/// The nodes a bundle may ever run on, as a mask over the cluster's nodes (in spec
/// order): every node, minus those a `-INFINITY` location forbids, narrowed by `INFINITY`
/// colocations to the nodes their targets may run on; no mask for a bundle that nothing
/// of this keeps off a node. Standby is not counted: it is a passing state, not a
/// constraint. (A bit mask, not a set of names: narrowing one takes a word per 64 nodes.)
///
/// One pass in an `order` that puts a bundle after those it is colocated with by
/// `INFINITY` ([`crate::plan::colocation::mandatory`]), so that their masks are final
/// when it is reached; the members of a cycle
/// of such colocations share one mask. (Narrowing until nothing changes took a round per
/// link of a chain written against the order constraints are read in: minutes for a
/// chain of thousands.)
fn eligible_nodes<'s>(set: &'s SpecSet, order: &Order<'s>, group_of: &Groups<'s, '_>) -> Masks<'s> {
    let mut eligible = own_masks(set);
    let mut hard: Hashed<&str, Vec<&str>> = Hashed::default();
    for c in set.constraints.values() {
        if let ConstraintSpec::Colocation(c) = c
            && c.score.is_infinity()
        {
            hard.entry(c.bundle.as_str())
                .or_default()
                .push(c.with.as_str());
        }
    }
    for b in &order.bundles {
        let members = match group_of.get(b) {
            Some(g) if g.first() != Some(b) => continue,
            Some(g) => *g,
            None => std::slice::from_ref(b),
        };
        let narrowing = members.iter().flat_map(|m| {
            let with = hard.get(m).map_or(&[][..], Vec::as_slice);
            std::iter::once(m).chain(with)
        });
        let mut mask: Option<FixedBitSet> = None;
        for other in narrowing {
            if let Some(theirs) = eligible.get(other) {
                match &mut mask {
                    Some(mask) => mask.intersect_with(theirs),
                    None => mask = Some(theirs.clone()),
                }
            }
        }
        if let Some(mask) = mask {
            for m in members {
                eligible.insert(m, mask.clone());
            }
        }
    }
    eligible
}

/// What this module looks up by bundle and never reads in order.
type Hashed<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// A mask of nodes (bit `i`: the cluster's `i`th node) per bundle that may not run on
/// every node; a bundle without one may. (Most bundles have no hard constraint: a mask
/// each would cost bundles × nodes bits, 62 MB for 50,000 bundles on 10,000 nodes.)
pub(super) type Masks<'s> = Hashed<&'s str, FixedBitSet>;

/// The mask of every node of the cluster.
fn every_node(set: &SpecSet) -> FixedBitSet {
    let mut mask = FixedBitSet::with_capacity(set.cluster.nodes.len());
    mask.insert_range(..);
    mask
}

/// The members of its cycle of `INFINITY` colocations, per bundle on one.
type Groups<'s, 'o> = Hashed<&'s str, &'o [&'s str]>;

/// Each bundle on a cycle of `INFINITY` colocations, with that cycle's members.
fn groups<'s, 'o>(order: &'o Order<'s>) -> Groups<'s, 'o> {
    let groups = order.groups.iter();
    groups
        .flat_map(|g| g.iter().map(move |b| (*b, g.as_slice())))
        .collect()
}

/// The nodes of each bundle that has `-INFINITY` locations, by those alone.
fn own_masks(set: &SpecSet) -> Masks<'_> {
    let mut bans: Hashed<&str, Vec<&crate::spec::constraint::LocationConstraint>> =
        Hashed::default();
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
    let mut eligible = Masks::default();
    for b in set.bundles.keys() {
        let Some(bans) = bans.get(b.as_str()) else {
            continue;
        };
        let mut mask = every_node(set);
        for l in bans {
            if let Some(rule) = &l.rule {
                mask.difference_with(&matcher.mask(rule));
            }
            if let Some(node) = &l.node {
                matcher
                    .named(node.as_str())
                    .iter()
                    .for_each(|i| mask.set(*i, false));
            }
        }
        eligible.insert(b.as_str(), mask);
    }
    eligible
}

pub(super) fn check(set: &SpecSet, f: &mut Findings) {
    let order = crate::plan::colocation::mandatory(set);
    let group_of = groups(&order);
    let eligible = eligible_nodes(set, &order, &group_of);
    super::capacity::check(set, &eligible, f);
    for (name, b) in &set.bundles {
        let nodes = eligible
            .get(name.as_str())
            .map_or(set.cluster.nodes.len(), |mask| mask.count_ones(..));
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

/// Most order cycles reported in one set: each costs a walk, and a set can hold thousands.
const MAX_ORDER_CYCLES: usize = 100;

/// Reports cycles of order constraints. The topological sort leaves the bundles on or
/// behind a cycle, each with a predecessor among them; a walk back along predecessors from
/// the first of them must come round, and that cycle is reported and removed, with every
/// bundle left with no predecessor (nothing is sorted again), until nothing is left.
fn order_cycles(set: &SpecSet, f: &mut Findings) {
    let g = OrderGraph::of(set);
    let arcs = g.succ.iter().enumerate();
    let arcs = arcs.flat_map(|(a, s)| s.iter().map(move |(b, _)| (a, *b)));
    let sorted = crate::graph::toposort(0..g.names.len(), arcs, |_| ());
    let mut left = Left::new(&g, &sorted.left);
    let mut reported = 0;
    while let Some(start) = left.first() {
        if reported == MAX_ORDER_CYCLES {
            let more = left.count;
            f.push(
                Diagnostic::error(
                    "quorate::order::cycle",
                    format!("{more} more bundle(s) are on or behind order cycles not listed here"),
                )
                .with_help("remove or reverse the order constraints in the cycles above, then validate again"),
                Kind::Bundle,
                g.names[start],
                "metadata.name",
            );
            break;
        }
        let cycle = g.cycle_back_from(start, &left);
        let (Some(&first), Some(&last)) = (cycle.first(), cycle.last()) else {
            break;
        };
        let closing = g.succ[last]
            .iter()
            .find(|(b, _)| *b == first)
            .map(|(_, c)| *c);
        let mut names: Vec<&str> = cycle.iter().map(|v| g.names[*v]).collect();
        names.push(g.names[first]);
        f.push(
            Diagnostic::error(
                "quorate::order::cycle",
                format!("order constraints form a cycle: {}", names.join(" → ")),
            )
            .with_help("remove or reverse one of the order constraints in the cycle"),
            Kind::Constraint,
            closing.unwrap_or_default(),
            "spec.order.then",
        );
        reported += 1;
        left.remove(&g, &cycle);
    }
}

/// The order constraints as a graph over the bundles they name, in name order.
struct OrderGraph<'s> {
    names: Vec<&'s str>,
    /// Each bundle's `then`s (in name order) with the constraint.
    succ: Vec<Vec<(usize, &'s str)>>,
    /// Each bundle's `first`s, in name order.
    pred: Vec<Vec<usize>>,
}

impl<'s> OrderGraph<'s> {
    fn of(set: &'s SpecSet) -> OrderGraph<'s> {
        let mut edges: BTreeMap<&str, BTreeMap<&str, &str>> = BTreeMap::new(); // first -> then -> constraint
        for (cname, c) in &set.constraints {
            if let ConstraintSpec::Order(o) = c {
                edges.entry(o.then.as_str()).or_default();
                let then = edges.entry(o.first.as_str()).or_default();
                then.entry(o.then.as_str()).or_insert(cname.as_str());
            }
        }
        let names: Vec<&str> = edges.keys().copied().collect();
        let index: HashMap<&str, usize> = names.iter().enumerate().map(|(i, n)| (*n, i)).collect();
        let mut succ = vec![Vec::new(); names.len()];
        let mut pred = vec![Vec::new(); names.len()];
        for (a, thens) in edges.values().enumerate() {
            for (then, cname) in thens {
                let b = index[then];
                succ[a].push((b, *cname));
                pred[b].push(a);
            }
        }
        pred.iter_mut().for_each(|p| p.sort_unstable());
        OrderGraph { names, succ, pred }
    }

    /// A cycle among `left`, found walking back from `start` (each bundle left has a
    /// predecessor left), in the order of its constraints.
    fn cycle_back_from(&self, start: usize, left: &Left) -> Vec<usize> {
        let mut walk = vec![start];
        let mut at: HashMap<usize, usize> = HashMap::from([(start, 0)]);
        loop {
            let here = walk[walk.len() - 1];
            let Some(&back) = self.pred[here].iter().find(|p| left.has[**p]) else {
                return Vec::new();
            };
            if let Some(&pos) = at.get(&back) {
                // back → here → ... → walk[pos] → back.
                let mut cycle = vec![back];
                cycle.extend(walk[pos + 1..].iter().rev());
                return cycle;
            }
            at.insert(back, walk.len());
            walk.push(back);
        }
    }
}

/// The bundles on or behind an order cycle not reported yet, with how many of their
/// predecessors are among them.
struct Left {
    has: Vec<bool>,
    waits: Vec<usize>,
    count: usize,
    /// No bundle before this one is left.
    cursor: usize,
}

impl Left {
    fn new(g: &OrderGraph, left: &[usize]) -> Left {
        let mut has = vec![false; g.names.len()];
        left.iter().for_each(|v| has[*v] = true);
        let waits = (0..g.names.len())
            .map(|v| g.pred[v].iter().filter(|p| has[**p]).count())
            .collect();
        Left {
            has,
            waits,
            count: left.len(),
            cursor: 0,
        }
    }

    /// The first bundle left, by name.
    fn first(&mut self) -> Option<usize> {
        while self.cursor < self.has.len() && !self.has[self.cursor] {
            self.cursor += 1;
        }
        (self.cursor < self.has.len()).then_some(self.cursor)
    }

    /// Removes `gone`, and every bundle that is then left with no predecessor.
    fn remove(&mut self, g: &OrderGraph, gone: &[usize]) {
        let mut stack: Vec<usize> = gone.iter().copied().filter(|v| self.has[*v]).collect();
        stack.iter().for_each(|v| self.has[*v] = false);
        while let Some(v) = stack.pop() {
            self.count -= 1;
            for (s, _) in &g.succ[v] {
                if self.has[*s] {
                    self.waits[*s] -= 1;
                    if self.waits[*s] == 0 {
                        self.has[*s] = false;
                        stack.push(*s);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The masks of every bundle, those [`eligible_nodes`] leaves out (every node) too.
    fn eligible(set: &SpecSet) -> Masks<'_> {
        let order = crate::plan::colocation::mandatory(set);
        filled(set, eligible_nodes(set, &order, &groups(&order)))
    }

    fn filled<'s>(set: &'s SpecSet, mut masks: Masks<'s>) -> Masks<'s> {
        for b in set.bundles.keys() {
            masks.entry(b.as_str()).or_insert_with(|| every_node(set));
        }
        masks
    }

    /// Narrowing until nothing changes: what [`eligible_nodes`] must agree with.
    fn until_stable(set: &SpecSet) -> Masks<'_> {
        let mut eligible = filled(set, own_masks(set));
        loop {
            let mut changed = false;
            for c in set.constraints.values() {
                let ConstraintSpec::Colocation(c) = c else {
                    continue;
                };
                let Some(with) = eligible.get(c.with.as_str()).cloned() else {
                    continue;
                };
                if let Some(mine) = eligible.get_mut(c.bundle.as_str())
                    && c.score.is_infinity()
                {
                    changed |= !mine.is_subset(&with);
                    mine.intersect_with(&with);
                }
            }
            if !changed {
                return eligible;
            }
        }
    }

    fn set_of(nodes: usize, bundles: usize, constraints: &[String]) -> SpecSet {
        let mut t = String::from(
            "apiVersion: quorate.io/v1alpha1\nkind: Cluster\nmetadata: {name: c}\nspec:\n  nodes:\n",
        );
        for i in 0..nodes {
            t += &format!("    - {{name: n{i}, runtime: 'podman+unix:///n{i}.sock'}}\n");
        }
        for b in 0..bundles {
            t += &format!(
                "---\napiVersion: quorate.io/v1alpha1\nkind: Bundle\nmetadata: {{name: b{b}}}\nspec: {{image: 'i:1'}}\n"
            );
        }
        for (i, c) in constraints.iter().enumerate() {
            t += &format!(
                "---\napiVersion: quorate.io/v1alpha1\nkind: Constraint\nmetadata: {{name: c{i:04}}}\nspec: {c}\n"
            );
        }
        let mut s = crate::source::Sources::new();
        s.add("s.yaml", t.into_bytes());
        let loaded = crate::load::load(&s);
        assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
        loaded.set
    }

    /// The order cycles reported for `orders` (first, then) among bundles b0..b(n).
    fn cycles_of(bundles: usize, orders: &[(usize, usize)]) -> Vec<String> {
        let constraints: Vec<String> = orders
            .iter()
            .map(|(a, b)| format!("{{order: {{first: b{a}, then: b{b}}}}}"))
            .collect();
        let set = set_of(1, bundles, &constraints);
        let (index, sources) = (
            crate::load::SpecIndex::default(),
            crate::source::Sources::new(),
        );
        let mut f = Findings::new(crate::load::Locator::new(&index, &sources));
        order_cycles(&set, &mut f);
        f.diags.iter().map(|d| d.message.clone()).collect()
    }

    /// Numbers below `n`, the same for the same `seed` (a linear congruential generator).
    fn random(mut seed: u64) -> impl FnMut(u64) -> u64 {
        move |n| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % n
        }
    }

    /// Whether `orders` among `bundles` have a cycle (every bundle removed by a sort).
    fn cyclic(bundles: usize, orders: &[(usize, usize)]) -> bool {
        !crate::graph::toposort(0..bundles, orders.iter().copied(), |_| ())
            .left
            .is_empty()
    }

    #[test]
    fn every_order_cycle_reported_is_one_and_none_is_left_out() {
        let mut next = random(11);
        for _ in 0..300 {
            let bundles = 2 + next(8) as usize;
            let orders: Vec<(usize, usize)> = (0..next(14))
                .map(|_| (next(bundles as u64) as usize, next(bundles as u64) as usize))
                .filter(|(a, b)| a != b)
                .collect();
            let mut left = orders.clone();
            for message in cycles_of(bundles, &orders) {
                let ring = message
                    .strip_prefix("order constraints form a cycle: ")
                    .unwrap();
                let ring: Vec<usize> = ring.split(" → ").map(|b| b[1..].parse().unwrap()).collect();
                for pair in ring.windows(2) {
                    assert!(
                        orders.contains(&(pair[0], pair[1])),
                        "{message} in {orders:?}"
                    );
                }
                assert_eq!(ring.first(), ring.last());
                // Cycles are disjoint: what one goes through is taken out.
                left.retain(|(a, b)| !ring.contains(a) && !ring.contains(b));
            }
            assert!(
                !cyclic(bundles, &left),
                "a cycle left in {left:?} of {orders:?}"
            );
        }
    }

    #[test]
    fn thousands_of_order_cycles_are_reported_up_to_a_bound() {
        let orders: Vec<(usize, usize)> = (0..1_000)
            .flat_map(|i| [(2 * i, 2 * i + 1), (2 * i + 1, 2 * i)])
            .collect();
        let found = cycles_of(2_000, &orders);
        assert_eq!(found.len(), MAX_ORDER_CYCLES + 1);
        assert_eq!(
            found.last().map(String::as_str),
            Some("1800 more bundle(s) are on or behind order cycles not listed here")
        );
    }

    #[test]
    fn one_pass_narrows_as_far_as_narrowing_until_nothing_changes() {
        // Random sets of colocations (cycles, finite scores, self-references) and bans.
        let mut next = random(7);
        for _ in 0..300 {
            let (nodes, bundles) = (1 + next(5) as usize, 2 + next(7) as usize);
            let mut constraints = Vec::new();
            for _ in 0..next(10) {
                let (b, w) = (next(bundles as u64), next(bundles as u64));
                let score = if next(4) == 0 { "10" } else { "INFINITY" };
                constraints.push(format!(
                    "{{colocation: {{bundle: b{b}, with: b{w}, score: {score}}}}}"
                ));
            }
            for _ in 0..next(4) {
                let (b, n) = (next(bundles as u64), next(nodes as u64));
                constraints.push(format!(
                    "{{location: {{bundle: b{b}, node: n{n}, score: -INFINITY}}}}"
                ));
            }
            let set = set_of(nodes, bundles, &constraints);
            assert_eq!(eligible(&set), until_stable(&set), "{constraints:#?}");
        }
    }

    #[test]
    fn a_chain_written_against_the_reading_order_narrows_to_its_far_end() {
        // b(i) with b(i-1), the constraints read from the far end: one round of narrowing
        // moved the ban one link.
        let n = 200;
        let mut constraints: Vec<String> = (1..n)
            .rev()
            .map(|i| {
                format!(
                    "{{colocation: {{bundle: b{i}, with: b{}, score: INFINITY}}}}",
                    i - 1
                )
            })
            .collect();
        constraints.push("{location: {bundle: b0, node: n0, score: -INFINITY}}".into());
        let set = set_of(2, n, &constraints);
        let eligible = eligible(&set);
        let last = eligible.get(format!("b{}", n - 1).as_str());
        assert_eq!(last.map(|m| m.ones().collect()), Some(vec![1]));
        assert_eq!(eligible, until_stable(&set));
    }
}

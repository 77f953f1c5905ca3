//! The colocation graph: in which order bundles are placed, and which bundles form a
//! mandatory cycle that is placed as one group.
//!
//! A colocation `bundle with other` makes `bundle` follow `other`, so `other` is placed
//! first, at `bundle`'s turn if that comes before its own (as Pacemaker assigns a
//! resource's colocation primaries when the resource's turn comes). Colocations can form
//! cycles. A cycle of `INFINITY` colocations (`a with b` and `b with a`, or longer) binds
//! its members to the same nodes: every node with one of them must have all of them.
//! Such a cycle is a **group**: its members are placed one after another, the first (by
//! priority) choosing its nodes with the scores of every member, the others following
//! it. A cycle that needs a finite score to close has no such binding: its bundles are
//! placed by priority, except that an `INFINITY` colocation still puts its target first,
//! and so does a colocation with a role where the cycle allows it (the promoted instances
//! it follows are decided by where its target is placed, so a target placed after it,
//! drawn to or from it, would move them in every round).
//!
//! Validation needs less of this: the groups, and an order that puts every bundle after
//! those it is colocated with by `INFINITY` ([`mandatory`], made of the same units).

use std::cmp::Reverse;

use super::HashMap;
use crate::graph::Buckets;
use crate::spec::SpecSet;
use crate::spec::bundle::BundleSpec;
use crate::spec::constraint::ConstraintSpec;

/// Bundles in placement order, and the mandatory colocation cycles among them.
pub struct Order<'a> {
    /// Every bundle, in the order it is placed.
    pub bundles: Vec<&'a str>,
    /// The spec of each bundle, at the same place as its name in `bundles`.
    pub specs: Vec<&'a BundleSpec>,
    /// Each cycle of `INFINITY` colocations (two or more bundles), its members in the
    /// order they are placed; they are consecutive in `bundles`.
    pub groups: Vec<Vec<&'a str>>,
}

/// Orders bundles for placement: a bundle after the bundles it is colocated with (all
/// of a cycle before what follows the cycle), otherwise by priority (highest first), then
/// name, a bundle taking the turn of the first bundle that follows it when that comes
/// earlier; the members of a `Group` at the turn of the first of them, one after another
/// ([`group_turns`]). Within a cycle, a bundle comes after those it is colocated with by
/// `INFINITY`, otherwise by priority; the members of a mandatory group are consecutive.
pub fn order(spec: &SpecSet) -> Order<'_> {
    let names: Vec<&str> = spec.bundles.keys().map(|b| b.as_str()).collect();
    let specs: Vec<&BundleSpec> = spec.bundles.values().collect();
    let priority: Vec<i32> = specs.iter().map(|b| b.priority).collect();
    // Positions by name, hashed: the constraints and groups name the bundles they join.
    let index = super::positions(names.iter().copied());
    let (all, hard, roles) = colocation_edges(spec, &index);
    // Highest priority first, then name: `names` are in name order, so a bundle's
    // position compares as its name does, without reading the text.
    let key = |b: usize| (priority[b], Reverse(b));
    // Units: the mandatory groups, and every other bundle alone. Hard edges between
    // units form no cycle. Parts: the cycles of any colocation, made of units. Both are
    // numbered from 0, fewer than the bundles: vectors by number hold what they group.
    let (unit, units) = units(names.len(), &hard, key);
    let part = components(names.len(), &all);
    // Their keys are worked out once, as sorting asks for them at every step.
    let first = |u: usize| units.of(u).first().copied();
    let unit_keys: Vec<_> = (0..units.len()).map(|u| first(u).map(key)).collect();
    let unit_key = |u: usize| unit_keys.get(u).copied().flatten();
    // Part -> its units.
    let parts = Buckets::new(
        names.len(),
        (0..units.len()).filter_map(|u| Some((*part.get(first(u)?)?, u))),
    );
    let part_keys: Vec<_> = (0..parts.len())
        .map(|p| parts.of(p).iter().filter_map(|u| unit_key(*u)).max())
        .collect();

    // The parts in dependency order, each at the turn of the first part that follows it
    // (see [`at_first_turn`]), those brought to one turn by their own keys; then the
    // units of each part in hard-edge order.
    let part_edges = between(&part, &all);
    let turns = at_first_turn(&part_edges, group_turns(spec, &index, &part, &part_keys));
    let key_of = |keys: &[Option<_>], p: usize| keys.get(p).copied().flatten();
    let part_key = |p: usize| (key_of(&turns, p), key_of(&part_keys, p));
    // The hard edges between units, by the part both ends are in (each part's units
    // are sorted with their own edges only, so sorting costs what the part holds).
    let part_of_unit = |u: usize| first(u).and_then(|b| part.get(b).copied());
    let by_part = |edges: &[(usize, usize)]| {
        let edges = between(&unit, edges);
        let inside = edges.iter().filter_map(|&(w, b)| {
            let p = part_of_unit(w).filter(|p| part_of_unit(b) == Some(*p))?;
            Some((p, (w, b)))
        });
        Buckets::new(names.len(), inside)
    };
    let (unit_edges, role_edges) = (by_part(&hard), by_part(&roles));
    let mut bundles = Vec::with_capacity(names.len());
    let mut in_order = Vec::with_capacity(names.len());
    let mut groups = Vec::new();
    let used = (0..parts.len()).filter(|p| !parts.of(*p).is_empty());
    for p in kahn(used, part_edges, part_key).order {
        for u in units_in_order(parts.of(p), unit_edges.of(p), role_edges.of(p), unit_key) {
            let members = units.of(u);
            bundles.extend(members.iter().map(|b| names[*b]));
            in_order.extend(members.iter().map(|b| specs[*b]));
            if members.len() > 1 {
                groups.push(members.iter().map(|b| names[*b]).collect());
            }
        }
    }
    Order {
        bundles,
        specs: in_order,
        groups,
    }
}

/// The units `inside` one part in the order of the hard `edges` between them, the
/// targets of colocations with a role (`roles`) first too unless that closes a cycle
/// with the `INFINITY` ones (which then decide alone); otherwise by `key`.
fn units_in_order<K: Ord>(
    inside: &[usize],
    edges: &[(usize, usize)],
    roles: &[(usize, usize)],
    key: impl Fn(usize) -> K + Copy,
) -> Vec<usize> {
    // Most parts are one unit: nothing to sort.
    if let [unit] = inside {
        return vec![*unit];
    }
    let inside = inside.iter().copied();
    let with_roles = kahn(inside.clone(), edges.iter().chain(roles).copied(), key);
    if with_roles.left.is_empty() {
        with_roles.order
    } else {
        kahn(inside, edges.iter().copied(), key).order
    }
}

/// What checking the hard constraints needs of [`order`], without the priorities and
/// turns of placement: every bundle after those it is colocated with by `INFINITY`, and
/// the cycles of such colocations (`groups`, the same as [`order`]'s, their members in
/// the same order and consecutive in `bundles`; the cycles in no particular order).
pub(crate) fn mandatory(spec: &SpecSet) -> Order<'_> {
    let names: Vec<&str> = spec.bundles.keys().map(|b| b.as_str()).collect();
    let specs: Vec<&BundleSpec> = spec.bundles.values().collect();
    let index = super::positions(names.iter().copied());
    let (_, hard, _) = colocation_edges(spec, &index);
    let key = |b: usize| (specs[b].priority, Reverse(b));
    // The units are numbered along the hard edges: in number order, each comes after
    // those it is colocated with.
    let (_, units) = units(names.len(), &hard, key);
    let mut order = Order {
        bundles: Vec::with_capacity(names.len()),
        specs: Vec::with_capacity(names.len()),
        groups: Vec::new(),
    };
    for u in 0..units.len() {
        let members = units.of(u);
        order.bundles.extend(members.iter().map(|b| names[*b]));
        order.specs.extend(members.iter().map(|b| specs[*b]));
        if members.len() > 1 {
            order
                .groups
                .push(members.iter().map(|b| names[*b]).collect());
        }
    }
    order
}

/// The units of `n` bundles along the `hard` edges (the `INFINITY` colocations): each
/// cycle of them, and every other bundle alone, numbered so that an edge goes from a
/// lower unit to a higher one ([`components`]). The unit of each bundle, and the bundles
/// of each unit by `key`, the highest first.
fn units<K: Ord>(
    n: usize,
    hard: &[(usize, usize)],
    key: impl Fn(usize) -> K,
) -> (Vec<usize>, Buckets<usize>) {
    let unit = components(n, hard);
    let mut units = Buckets::new(n, unit.iter().copied().zip(0..));
    for u in 0..units.len() {
        units.of_mut(u).sort_by_key(|b| Reverse(key(*b)));
    }
    (unit, units)
}

/// Edges `(from, to)` between vertices numbered from 0.
type Edges = Vec<(usize, usize)>;

/// The parts' `keys`, those of a `Group`'s members raised to the highest among them: a
/// group is placed at the turn of the first of its members, all of them one after
/// another (Pacemaker assigns a group as one resource). So the room the first member's
/// instances keep for the later members (their needs count with it, see
/// `placement::capacity`) is still free when the later members' turn comes, and not
/// taken by bundles of a priority between theirs.
fn group_turns<K: Ord + Copy>(
    spec: &SpecSet,
    index: &HashMap<&str, usize>,
    part: &[usize],
    keys: &[Option<K>],
) -> Vec<Option<K>> {
    let mut turns = keys.to_vec();
    for group in spec.groups.values() {
        let parts: Vec<usize> = group
            .bundles
            .iter()
            .filter_map(|m| index.get(m.as_str()))
            .filter_map(|b| part.get(*b).copied())
            .collect();
        let top = parts
            .iter()
            .filter_map(|p| keys.get(*p).copied().flatten())
            .max();
        for p in parts {
            if let Some(turn) = turns.get_mut(p) {
                *turn = (*turn).max(top);
            }
        }
    }
    turns
}

/// Each part's key raised to the highest key of the parts behind it along `edges`
/// (sorted, each from a lower part to a higher, as [`components`] numbers them): the
/// turn at which the first of them is placed.
///
/// Pacemaker assigns resources by priority, and a resource's colocation primaries just
/// before it, whatever their own priority. So a bundle is placed at the turn of the
/// first bundle that follows it, and a dependent of high priority does not wait for a
/// primary of low priority while bundles between the two take the nodes it needs.
fn at_first_turn<K: Ord + Copy>(
    edges: &[(usize, usize)],
    mut keys: Vec<Option<K>>,
) -> Vec<Option<K>> {
    // From the last part back: the parts behind each have their turns already.
    for &(from, to) in edges.iter().rev() {
        let behind = keys.get(to).copied().flatten();
        if let Some(k) = keys.get_mut(from) {
            *k = (*k).max(behind);
        }
    }
    keys
}

/// The colocations between distinct bundles of `index` as edges `(with, bundle)` by
/// their positions, each once and in order: all of them, the `INFINITY` ones, and
/// (repeated as often as written) those with a role.
fn colocation_edges(spec: &SpecSet, index: &HashMap<&str, usize>) -> (Edges, Edges, Edges) {
    let mut edges = Vec::new(); // (with, bundle), mandatory
    let mut roles = Vec::new();
    for c in spec.constraints.values() {
        if let ConstraintSpec::Colocation(c) = c
            && let (Some(&w), Some(&b)) = (index.get(c.with.as_str()), index.get(c.bundle.as_str()))
            && w != b
        {
            edges.push(((w, b), c.score.is_infinity()));
            if c.role.is_some() {
                roles.push((w, b));
            }
        }
    }
    edges.sort_unstable();
    let mut all: Edges = Vec::with_capacity(edges.len());
    let mut hard: Edges = Vec::new();
    for (edge, mandatory) in edges {
        if all.last() != Some(&edge) {
            all.push(edge);
        }
        if mandatory && hard.last() != Some(&edge) {
            hard.push(edge);
        }
    }
    (all, hard, roles)
}

/// `edges` between the groups `map` puts their ends in, without those inside one,
/// each once and in order.
fn between(map: &[usize], edges: &[(usize, usize)]) -> Edges {
    let mut out: Edges = edges
        .iter()
        .map(|(w, b)| (map[*w], map[*b]))
        .filter(|(w, b)| w != b)
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// The vertices `of` in topological order along `edges` (those with both ends in `of`),
/// the ready vertex with the highest `key` first; those on a cycle are `left` out.
fn kahn<K: Ord>(
    of: impl Iterator<Item = usize>,
    edges: impl IntoIterator<Item = (usize, usize)>,
    key: impl Fn(usize) -> K,
) -> crate::graph::Sorted<usize> {
    crate::graph::toposort(of, edges, |v| (key(v), Reverse(v)))
}

/// The strongly connected component of each vertex of a graph on `0..n` (Kosaraju's
/// algorithm, without recursion: a spec set may chain thousands of bundles). They are
/// numbered in topological order: an edge between two goes from the lower number to
/// the higher.
fn components(n: usize, edges: &[(usize, usize)]) -> Vec<usize> {
    let out = Buckets::new(n, edges.iter().copied());
    let inn = Buckets::new(n, edges.iter().map(|&(a, b)| (b, a)));
    let mut seen = vec![false; n];
    let mut finished = Vec::with_capacity(n);
    let mut stack: Vec<(usize, usize)> = Vec::new();
    for start in 0..n {
        if seen[start] {
            continue;
        }
        seen[start] = true;
        stack.push((start, 0));
        while let Some(top) = stack.last_mut() {
            let (v, i) = *top;
            match out.of(v).get(i) {
                Some(&w) => {
                    top.1 += 1;
                    if !seen[w] {
                        seen[w] = true;
                        stack.push((w, 0));
                    }
                }
                None => {
                    finished.push(v);
                    stack.pop();
                }
            }
        }
    }
    let mut component = vec![usize::MAX; n];
    let mut count = 0;
    let mut stack: Vec<usize> = Vec::new();
    for &start in finished.iter().rev() {
        if component[start] != usize::MAX {
            continue;
        }
        component[start] = count;
        stack.push(start);
        while let Some(v) = stack.pop() {
            for &w in inn.of(v) {
                if component[w] == usize::MAX {
                    component[w] = count;
                    stack.push(w);
                }
            }
        }
        count += 1;
    }
    component
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(bundles: &[(&str, i32)], colocations: &[(&str, &str, &str)]) -> SpecSet {
        let mut t = String::from(
            "apiVersion: quorate.io/v1alpha1\nkind: Cluster\nmetadata: {name: c}\nspec:\n  nodes: [{name: n1, runtime: 'podman+unix:///n1'}, {name: n2, runtime: 'podman+unix:///n2'}]\n",
        );
        for (b, prio) in bundles {
            t += &format!(
                "---\napiVersion: quorate.io/v1alpha1\nkind: Bundle\nmetadata: {{name: {b}}}\nspec: {{image: i, priority: {prio}, recovery: restart}}\n"
            );
        }
        for (k, (b, w, s)) in colocations.iter().enumerate() {
            t += &format!(
                "---\napiVersion: quorate.io/v1alpha1\nkind: Constraint\nmetadata: {{name: c{k}}}\nspec: {{colocation: {{bundle: {b}, with: {w}, score: {s}}}}}\n"
            );
        }
        let mut s = crate::source::Sources::new();
        s.add("s.yaml", t.into_bytes());
        crate::load::load(&s).set
    }

    #[test]
    fn without_colocations_priority_then_name() {
        let s = spec(&[("a", 0), ("b", 5), ("c", 0)], &[]);
        let o = order(&s);
        assert_eq!(o.bundles, ["b", "a", "c"]);
        assert!(o.groups.is_empty());
    }

    #[test]
    fn a_bundle_follows_what_it_is_colocated_with() {
        let s = spec(&[("a", 9), ("b", 0)], &[("a", "b", "50")]);
        assert_eq!(order(&s).bundles, ["b", "a"]);
    }

    #[test]
    fn a_bundle_is_placed_at_the_turn_of_the_first_that_follows_it() {
        // c (priority 9) follows a (0) and b (5): a and c go first, as Pacemaker assigns
        // a resource's primaries when the resource's turn comes.
        let s = spec(&[("a", 0), ("b", 5), ("c", 9)], &[("c", "a", "INFINITY")]);
        assert_eq!(order(&s).bundles, ["a", "c", "b"]);
        // Down a chain: e with d with a, e of priority 7 brings d and a before b (5).
        let s = spec(
            &[("a", 0), ("b", 5), ("d", 1), ("e", 7)],
            &[("d", "a", "INFINITY"), ("e", "d", "50")],
        );
        assert_eq!(order(&s).bundles, ["a", "d", "e", "b"]);
        // A primary followed by two goes at the turn of the first of them.
        let s = spec(
            &[("a", 0), ("b", 5), ("c", 9), ("d", 2)],
            &[("c", "a", "INFINITY"), ("d", "a", "INFINITY")],
        );
        assert_eq!(order(&s).bundles, ["a", "c", "b", "d"]);
        // Two primaries brought to one turn go by their own priority.
        let s = spec(
            &[("a", 0), ("b", 5), ("c", 9), ("d", 7)],
            &[("c", "a", "INFINITY"), ("c", "b", "10")],
        );
        assert_eq!(order(&s).bundles, ["b", "a", "c", "d"]);
    }

    proptest::proptest! {
        /// An edge between two components goes from the lower number to the higher.
        #[test]
        fn components_are_numbered_in_topological_order(
            n in 1..12usize,
            edges in proptest::collection::vec((0..12usize, 0..12usize), 0..30),
        ) {
            let edges: Vec<(usize, usize)> = edges.iter().map(|(a, b)| (a % n, b % n)).collect();
            let component = components(n, &edges);
            for (a, b) in edges {
                proptest::prop_assert!(component[a] <= component[b], "{component:?}");
            }
        }

        /// What validation orders by ([`mandatory`]) has [`order`]'s cycles, their members
        /// in the same order, and every bundle once, after those it is colocated with by
        /// `INFINITY` outside its cycle.
        #[test]
        fn the_mandatory_order_keeps_the_placement_orders_cycles(
            priorities in proptest::collection::vec(0..3i32, 1..8),
            links in proptest::collection::vec((0..8usize, 0..8usize, 0..3u8), 0..14),
        ) {
            let n = priorities.len();
            let names: Vec<String> = (0..n).map(|i| format!("b{i}")).collect();
            let bundles: Vec<(&str, i32)> =
                names.iter().map(String::as_str).zip(priorities.iter().copied()).collect();
            let score = |s: u8| ["INFINITY", "50", "-INFINITY"][usize::from(s)];
            let colocations: Vec<(&str, &str, &str)> = links
                .iter()
                .map(|(b, w, s)| (names[b % n].as_str(), names[w % n].as_str(), score(*s)))
                .collect();
            let set = spec(&bundles, &colocations);
            let (placed, checked) = (order(&set), mandatory(&set));
            let mut cycles = placed.groups.clone();
            let mut theirs = checked.groups.clone();
            cycles.sort();
            theirs.sort();
            proptest::prop_assert_eq!(cycles, theirs);
            let mut all = checked.bundles.clone();
            all.sort_unstable();
            let mut expected: Vec<&str> = names.iter().map(String::as_str).collect();
            expected.sort_unstable();
            proptest::prop_assert_eq!(all, expected);
            let at = |b: &str| checked.bundles.iter().position(|x| *x == b);
            let cycle_of = |b: &str| checked.groups.iter().position(|g| g.contains(&b));
            for (b, w, s) in &colocations {
                let apart = b != w && (cycle_of(b).is_none() || cycle_of(b) != cycle_of(w));
                if *s == "INFINITY" && apart {
                    proptest::prop_assert!(at(w) < at(b), "{w} before {b}: {:?}", checked.bundles);
                }
            }
        }

        /// Without cycles: every bundle once, after what it is colocated with, and
        /// never kept waiting by a bundle of lower priority that it does not follow:
        /// whatever goes before it and is not behind it leads to one of at least its
        /// priority.
        #[test]
        fn no_bundle_waits_for_a_lower_priority_it_does_not_follow(
            priorities in proptest::collection::vec(0..4i32, 2..9),
            links in proptest::collection::vec((0..8usize, 0..8usize, proptest::bool::ANY), 0..12),
        ) {
            let n = priorities.len();
            let names: Vec<String> = (0..n).map(|i| format!("b{i}")).collect();
            // Acyclic: the higher number is colocated with the lower.
            let links: Vec<(usize, usize, bool)> = links
                .iter()
                .map(|(a, b, hard)| (a % n, b % n, *hard))
                .filter(|(a, b, _)| a < b)
                .collect();
            let bundles: Vec<(&str, i32)> =
                names.iter().map(String::as_str).zip(priorities.iter().copied()).collect();
            let score = |hard: bool| if hard { "INFINITY" } else { "50" };
            let colocations: Vec<(&str, &str, &str)> = links
                .iter()
                .map(|(w, b, hard)| (names[*b].as_str(), names[*w].as_str(), score(*hard)))
                .collect();
            let set = spec(&bundles, &colocations);
            let o = order(&set);
            let at: Vec<usize> = (0..n)
                .map(|b| o.bundles.iter().position(|x| *x == names[b]).unwrap_or(usize::MAX))
                .collect();
            proptest::prop_assert_eq!(o.bundles.len(), n);
            proptest::prop_assert!(at.iter().all(|i| *i < n), "{:?}", o.bundles);
            // behind[a][b]: b follows a, directly or not.
            let mut behind = vec![vec![false; n]; n];
            for &(w, b, _) in &links {
                proptest::prop_assert!(at[w] < at[b], "{:?}", o.bundles);
                behind[w][b] = true;
            }
            for k in 0..n {
                for a in 0..n {
                    for b in 0..n {
                        behind[a][b] |= behind[a][k] && behind[k][b];
                    }
                }
            }
            let leads_to = |a: usize| {
                (0..n).filter(|b| *b == a || behind[a][*b]).map(|b| priorities[b]).max()
            };
            for x in 0..n {
                for y in 0..n {
                    if at[x] < at[y] && !behind[x][y] {
                        let waited = leads_to(x) < Some(priorities[y]);
                        proptest::prop_assert!(!waited, "{:?}", o.bundles);
                    }
                }
            }
        }
    }

    #[test]
    fn a_mandatory_cycle_is_one_group_placed_before_what_follows_it() {
        // c follows the cycle even though its priority is the highest.
        let s = spec(
            &[("a", 0), ("b", 1), ("c", 10), ("d", 0)],
            &[
                ("a", "b", "INFINITY"),
                ("b", "a", "INFINITY"),
                ("c", "a", "INFINITY"),
            ],
        );
        let o = order(&s);
        assert_eq!(o.bundles, ["b", "a", "c", "d"]);
        assert_eq!(o.groups, [vec!["b", "a"]]);
    }

    #[test]
    fn a_three_bundle_ring_is_one_group() {
        // (Not x, y, z: `y` is a boolean in YAML.)
        let s = spec(
            &[("p", 0), ("q", 0), ("r", 0)],
            &[
                ("p", "q", "INFINITY"),
                ("q", "r", "INFINITY"),
                ("r", "p", "INFINITY"),
            ],
        );
        assert_eq!(order(&s).groups, [vec!["p", "q", "r"]]);
    }

    #[test]
    fn a_cycle_closed_by_a_finite_score_still_places_the_infinity_target_first() {
        // a with b INFINITY, b with a 50: not a group, but b goes first although a has
        // the higher priority.
        let s = spec(
            &[("a", 5), ("b", 0)],
            &[("a", "b", "INFINITY"), ("b", "a", "50")],
        );
        let o = order(&s);
        assert_eq!(o.bundles, ["b", "a"]);
        assert!(o.groups.is_empty());
        // With finite scores both ways, priority decides.
        let s = spec(&[("a", 5), ("b", 0)], &[("a", "b", "10"), ("b", "a", "50")]);
        assert_eq!(order(&s).bundles, ["a", "b"]);
    }

    #[test]
    fn a_cycle_through_a_colocation_with_a_role_places_its_target_first() {
        // a avoids b's promoted instances, b is drawn to a: b goes first although a has
        // the higher priority, so where a goes cannot change which of b's are promoted.
        let role = "-INFINITY, role: promoted";
        let s = spec(&[("a", 5), ("b", 0)], &[("a", "b", role), ("b", "a", "30")]);
        assert_eq!(order(&s).bundles, ["b", "a"]);
        // Against an INFINITY colocation the other way, the INFINITY one decides.
        let s = spec(
            &[("a", 0), ("b", 5)],
            &[("a", "b", role), ("b", "a", "INFINITY")],
        );
        assert_eq!(order(&s).bundles, ["a", "b"]);
    }

    #[test]
    fn tangled_cycles_place_every_bundle_once() {
        // Mutual -INFINITY, a mandatory pair, a finite ring through both, and a bundle
        // downstream of everything.
        let s = spec(
            &[("a", 0), ("b", 3), ("c", 1), ("d", 2), ("e", 9)],
            &[
                ("a", "b", "-INFINITY"),
                ("b", "a", "-INFINITY"),
                ("c", "d", "INFINITY"),
                ("d", "c", "INFINITY"),
                ("c", "a", "10"),
                ("a", "c", "-5"),
                ("e", "d", "INFINITY"),
            ],
        );
        let o = order(&s);
        let mut sorted = o.bundles.clone();
        sorted.sort();
        assert_eq!(sorted, ["a", "b", "c", "d", "e"]);
        assert_eq!(o.bundles.last(), Some(&"e"));
        assert_eq!(o.groups, [vec!["d", "c"]]);
        let at = |b: &str| o.bundles.iter().position(|x| *x == b);
        assert_eq!(at("c"), at("d").map(|d| d + 1), "{:?}", o.bundles);
    }
}

//! The one topological sort (Kahn's algorithm), for every ordering quorate makes: the
//! order bundles are planned in (order constraints), the order they are placed in
//! (colocations), the order of a plan's steps, and validation's search for order cycles.

use std::collections::{BTreeMap, BinaryHeap};

/// A topological order, and what a cycle kept out of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sorted<V> {
    /// The vertices that are on no cycle and behind none, each after its predecessors.
    pub order: Vec<V>,
    /// The vertices on a cycle or behind one, in their input order.
    pub left: Vec<V>,
}

/// Sorts `vertices` along `edges` (`from` before `to`; an edge with an end that is not
/// one of `vertices` is ignored, a repeated edge counts as one). Among the vertices ready
/// at once, the one with the highest `key` goes first, so the result is deterministic.
pub(crate) fn toposort<V: Copy + Ord, K: Ord>(
    vertices: impl IntoIterator<Item = V>,
    edges: impl IntoIterator<Item = (V, V)>,
    key: impl Fn(V) -> K,
) -> Sorted<V> {
    let input: Vec<V> = vertices.into_iter().collect();
    let mut waits: BTreeMap<V, usize> = input.iter().map(|v| (*v, 0)).collect();
    let mut next: BTreeMap<V, Vec<V>> = BTreeMap::new();
    let mut seen = std::collections::BTreeSet::new();
    for (from, to) in edges {
        if waits.contains_key(&from) && waits.contains_key(&to) && seen.insert((from, to)) {
            *waits.entry(to).or_default() += 1;
            next.entry(from).or_default().push(to);
        }
    }
    let mut ready: BinaryHeap<(K, V)> = waits
        .iter()
        .filter(|(_, w)| **w == 0)
        .map(|(v, _)| (key(*v), *v))
        .collect();
    let mut order = Vec::with_capacity(input.len());
    while let Some((_, v)) = ready.pop() {
        order.push(v);
        for to in next.get(&v).map(Vec::as_slice).unwrap_or(&[]) {
            if let Some(w) = waits.get_mut(to) {
                *w -= 1;
                if *w == 0 {
                    ready.push((key(*to), *to));
                }
            }
        }
    }
    let left = input
        .into_iter()
        .filter(|v| waits.get(v).is_some_and(|w| *w > 0))
        .collect();
    Sorted { order, left }
}

#[cfg(test)]
mod tests {
    use std::cmp::Reverse;

    use super::*;

    #[test]
    fn predecessors_first_then_the_highest_key() {
        // a → c, b → c; d alone. Lowest name first among the ready.
        let s = toposort(
            ["d", "c", "b", "a"],
            [("a", "c"), ("b", "c"), ("a", "c")],
            Reverse,
        );
        assert_eq!(s.order, ["a", "b", "c", "d"]);
        assert!(s.left.is_empty());
        // Highest first.
        let s = toposort([1, 2, 3], [(1, 3)], |v| v);
        assert_eq!(s.order, [2, 1, 3]);
    }

    #[test]
    fn cycles_and_what_follows_them_are_left_in_input_order() {
        // x ⇄ y, y → z; w free; an edge to a stranger is ignored.
        let s = toposort(
            ["z", "y", "x", "w"],
            [("x", "y"), ("y", "x"), ("y", "z"), ("w", "stranger")],
            Reverse,
        );
        assert_eq!(s.order, ["w"]);
        assert_eq!(s.left, ["z", "y", "x"]);
    }
}

//! The one topological sort (Kahn's algorithm), for every ordering quorate makes: the
//! order bundles are planned in (order constraints), the order they are placed in
//! (colocations), the order of a plan's steps, and validation's search for order cycles;
//! and [`Buckets`], the lists of a graph's vertices held in one vector.

use std::collections::BinaryHeap;
use std::hash::Hash;

type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
type HashSet<T> = std::collections::HashSet<T, foldhash::fast::RandomState>;

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
/// at once, the one with the highest `key` goes first (the highest vertex among equal
/// keys), so the result is deterministic. The vertices are numbered once, in a hashed
/// map: the graph of a large plan's steps has tens of thousands.
pub(crate) fn toposort<V: Copy + Ord + Hash, K: Ord>(
    vertices: impl IntoIterator<Item = V>,
    edges: impl IntoIterator<Item = (V, V)>,
    key: impl Fn(V) -> K,
) -> Sorted<V> {
    let input: Vec<V> = vertices.into_iter().collect();
    let mut index: HashMap<V, usize> = HashMap::default();
    let mut distinct: Vec<V> = Vec::with_capacity(input.len());
    for v in &input {
        index.entry(*v).or_insert_with(|| {
            distinct.push(*v);
            distinct.len() - 1
        });
    }
    let mut waits = vec![0usize; distinct.len()];
    let mut next: Vec<Vec<usize>> = vec![Vec::new(); distinct.len()];
    let mut seen: HashSet<(usize, usize)> = HashSet::default();
    for (from, to) in edges {
        if let (Some(&from), Some(&to)) = (index.get(&from), index.get(&to))
            && seen.insert((from, to))
        {
            waits[to] += 1;
            next[from].push(to);
        }
    }
    let mut ready: BinaryHeap<(K, V, usize)> = (0..distinct.len())
        .filter(|i| waits[*i] == 0)
        .map(|i| (key(distinct[i]), distinct[i], i))
        .collect();
    let mut order = Vec::with_capacity(distinct.len());
    while let Some((_, v, i)) = ready.pop() {
        order.push(v);
        for &to in &next[i] {
            waits[to] -= 1;
            if waits[to] == 0 {
                ready.push((key(distinct[to]), distinct[to], to));
            }
        }
    }
    let left = input
        .into_iter()
        .filter(|v| index.get(v).is_some_and(|i| waits[*i] > 0))
        .collect();
    Sorted { order, left }
}

/// Items grouped by a number below `n` (a vertex, a component), each group's items in
/// the order they came, all of them in one vector: at thousands of groups, a vector each
/// is as many allocations spread through memory, and walking them misses the cache.
pub(crate) struct Buckets<T> {
    /// Where each group starts in `items`, and after the last, where the items end.
    start: Vec<usize>,
    items: Vec<T>,
}

impl<T: Copy + Default> Buckets<T> {
    /// The `pairs` (group, item) grouped; a pair of a group not below `n` is left out.
    /// The pairs are walked twice: once to count each group, once to fill it.
    pub(crate) fn new<I>(n: usize, pairs: I) -> Buckets<T>
    where
        I: IntoIterator<Item = (usize, T)>,
        I::IntoIter: Clone,
    {
        let pairs = pairs.into_iter().filter(move |(k, _)| *k < n);
        let mut start = vec![0usize; n + 1];
        for (k, _) in pairs.clone() {
            start[k + 1] += 1;
        }
        for k in 0..n {
            start[k + 1] += start[k];
        }
        let mut next = start.clone();
        let mut items = vec![T::default(); start[n]];
        for (k, item) in pairs {
            items[next[k]] = item;
            next[k] += 1;
        }
        Buckets { start, items }
    }

    /// The items of group `k` (none for a group not below `n`).
    pub(crate) fn of(&self, k: usize) -> &[T] {
        self.range(k).and_then(|r| self.items.get(r)).unwrap_or(&[])
    }

    /// The items of group `k`, to reorder.
    pub(crate) fn of_mut(&mut self, k: usize) -> &mut [T] {
        match self.range(k) {
            Some(r) => self.items.get_mut(r).unwrap_or(&mut []),
            None => &mut [],
        }
    }

    /// How many groups there are (`n`).
    pub(crate) fn len(&self) -> usize {
        self.start.len().saturating_sub(1)
    }

    fn range(&self, k: usize) -> Option<std::ops::Range<usize>> {
        Some(*self.start.get(k)?..*self.start.get(k.checked_add(1)?)?)
    }
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

    #[test]
    fn buckets_keep_each_groups_items_in_the_order_they_came() {
        let b: Buckets<char> = Buckets::new(4, [(2, 'a'), (0, 'b'), (2, 'c'), (9, 'x'), (0, 'd')]);
        assert_eq!(b.len(), 4);
        assert_eq!(b.of(0), ['b', 'd']);
        assert!(b.of(1).is_empty());
        assert_eq!(b.of(2), ['a', 'c']);
        assert!(b.of(3).is_empty());
        assert!(b.of(4).is_empty(), "a group past the last has nothing");
        let mut b = b;
        b.of_mut(2).reverse();
        assert_eq!(b.of(2), ['c', 'a']);
        assert_eq!(b.of(0), ['b', 'd']);
    }
}

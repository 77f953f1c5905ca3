//! A bundle's shared score on every node, kept per class of nodes that every location
//! rule treats alike, with the few nodes a stage scores one by one (a colocation's,
//! an unavailable node, a location naming one node) kept apart. A thousand nodes of a
//! few kinds cost a few classes per bundle, not a thousand scores.
//!
//! Every node's score is the same sum, added in the same order, as on a row of one
//! score per node: a node set apart starts from its class's score at that moment and
//! takes every later part, of its class's or its own. (Scores saturate at `INFINITY`, so
//! the order of the parts matters.)

use std::rc::Rc;

use fixedbitset::FixedBitSet;

use super::{HashMap, part};
use crate::plan::model::{ScorePart, Stage};
use crate::spec::Score;

/// Classes of nodes: the nodes each location rule matches are a union of classes.
pub(super) struct Classes {
    /// Each node's class.
    of: Vec<usize>,
    /// Each class's nodes, in node order.
    members: Vec<Vec<usize>>,
}

impl Classes {
    /// Of the nodes in `group_of` (each node's group: nodes of one group are matched
    /// alike by every rule, such as nodes of the same attributes), with one mask per
    /// rule of the nodes it matches; and, for each rule, the classes of the nodes it
    /// matches, sorted. With `each_alone`, each node is a class of its own (`--explain`
    /// keeps parts per node).
    pub(super) fn new(
        group_of: &[usize],
        masks: &[FixedBitSet],
        each_alone: bool,
    ) -> (Classes, Vec<Rc<[usize]>>) {
        let rules = masks.len();
        // The rules that match each group's first node, in rule order: read off each
        // rule's mask, a word at a time, rather than asking every rule about every node
        // (rules that each single out a node are as many as the nodes).
        let mut first = vec![false; group_of.len()];
        let mut groups = 0;
        for (i, g) in group_of.iter().enumerate() {
            if *g == groups {
                first[i] = true;
                groups += 1;
            }
        }
        let mut signature: Vec<Vec<usize>> = vec![Vec::new(); groups];
        for (r, mask) in masks.iter().enumerate() {
            for i in mask.ones().filter(|i| first.get(*i) == Some(&true)) {
                signature[group_of[i]].push(r);
            }
        }
        let mut class_of: HashMap<&[usize], usize> = HashMap::default();
        let mut classes = Classes {
            of: Vec::with_capacity(group_of.len()),
            members: Vec::new(),
        };
        let mut covering: Vec<Vec<usize>> = vec![Vec::new(); rules];
        for (i, g) in group_of.iter().enumerate() {
            let sig = signature[*g].as_slice();
            let next = classes.members.len();
            let c = if each_alone {
                next
            } else {
                *class_of.entry(sig).or_insert(next)
            };
            if c == next {
                classes.members.push(Vec::new());
                for r in sig {
                    covering[*r].push(c);
                }
            }
            classes.members[c].push(i);
            classes.of.push(c);
        }
        (classes, covering.into_iter().map(Rc::from).collect())
    }

    /// The class of node `i`.
    pub(super) fn of(&self, i: usize) -> usize {
        self.of[i]
    }

    /// The nodes of class `c`, in node order.
    pub(super) fn members(&self, c: usize) -> &[usize] {
        &self.members[c]
    }

    /// How many classes there are.
    pub(super) fn count(&self) -> usize {
        self.members.len()
    }
}

/// A score for the nodes of some classes, and one for some nodes, each sorted by the
/// first: a node of `by_node` takes its own, any other node its class's, if any.
pub(super) struct Entries {
    pub(super) by_class: Vec<(usize, Score)>,
    pub(super) by_node: Vec<(usize, Score)>,
}

/// What holds a score in [`Scores::tiers`]: a class, or a node set apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Holder {
    Class(usize),
    Node(usize),
}

/// A bundle's score on every node as the stages add to it, and (only when explaining)
/// the parts it is made of, node by node.
#[derive(Clone)]
pub(super) struct Scores {
    classes: Rc<Classes>,
    /// Each class's score.
    class: Vec<Score>,
    /// The nodes set apart, by node, with their score.
    apart: Vec<(usize, Score)>,
    /// How many of each class's nodes are set apart.
    apart_in: Vec<usize>,
    pub(super) why: Vec<Vec<ScorePart>>,
}

impl Scores {
    pub(super) fn new(classes: &Rc<Classes>, explain: bool) -> Scores {
        let (count, nodes) = (classes.members.len(), classes.of.len());
        Scores {
            classes: Rc::clone(classes),
            class: vec![Score::ZERO; count],
            apart: Vec::new(),
            apart_in: vec![0; count],
            why: vec![Vec::new(); if explain { nodes } else { 0 }],
        }
    }

    /// The score on node `i`.
    pub(super) fn at(&self, i: usize) -> Score {
        match self.apart.binary_search_by_key(&i, |(n, _)| *n) {
            Ok(k) => self.apart[k].1,
            Err(_) => self.class[self.classes.of[i]],
        }
    }

    /// Node `i`'s score, set apart from its class's from now on.
    fn set_apart(&mut self, i: usize) -> &mut Score {
        let k = match self.apart.binary_search_by_key(&i, |(n, _)| *n) {
            Ok(k) => k,
            Err(k) => {
                let c = self.classes.of[i];
                self.apart.insert(k, (i, self.class[c]));
                self.apart_in[c] += 1;
                k
            }
        };
        &mut self.apart[k].1
    }

    /// Adds `score` on node `i`, from `stage`; `source` is only built when explaining.
    pub(super) fn add(
        &mut self,
        i: usize,
        stage: Stage,
        source: impl FnOnce() -> String,
        score: Score,
    ) {
        *self.set_apart(i) += score;
        self.explain(i, stage, source, score);
    }

    /// Adds `score` on every node of `classes` (sorted).
    pub(super) fn add_classes(
        &mut self,
        classes: &[usize],
        stage: Stage,
        source: impl Fn() -> String,
        score: Score,
    ) {
        for &c in classes {
            self.class[c] += score;
        }
        let of = &self.classes.of;
        for (i, s) in &mut self.apart {
            if classes.binary_search(&of[*i]).is_ok() {
                *s += score;
            }
        }
        if !self.why.is_empty() {
            for &c in classes {
                for &i in &self.classes.members[c] {
                    self.why[i].push(part(stage, source(), score));
                }
            }
        }
    }

    /// Adds `score` on every node but `except` (sorted).
    pub(super) fn add_except(
        &mut self,
        except: &[usize],
        stage: Stage,
        source: impl Fn() -> String,
        score: Score,
    ) {
        for &i in except {
            self.set_apart(i);
        }
        for s in &mut self.class {
            *s += score;
        }
        for (i, s) in &mut self.apart {
            if except.binary_search(i).is_err() {
                *s += score;
            }
        }
        for (i, why) in self.why.iter_mut().enumerate() {
            if except.binary_search(&i).is_err() {
                why.push(part(stage, source(), score));
            }
        }
    }

    /// Adds `theirs`, node by node (the parts `--explain` shows are the caller's).
    pub(super) fn add_scores(&mut self, theirs: &Scores) {
        for &(i, _) in &theirs.apart {
            self.set_apart(i);
        }
        for (mine, score) in self.class.iter_mut().zip(&theirs.class) {
            *mine += *score;
        }
        for (i, s) in &mut self.apart {
            *s += theirs.at(*i);
        }
    }

    /// Records a part of `score` on node `i` that is added already, when explaining.
    pub(super) fn explain(
        &mut self,
        i: usize,
        stage: Stage,
        source: impl FnOnce() -> String,
        score: Score,
    ) {
        if let Some(why) = self.why.get_mut(i) {
            why.push(part(stage, source(), score));
        }
    }

    /// Whether class `c` has a node not set apart (whose score is the class's).
    fn whole(&self, c: usize) -> bool {
        self.apart_in[c] < self.classes.members[c].len()
    }

    /// Whether some node's score passes `test`.
    pub(super) fn any(&self, test: impl Fn(Score) -> bool) -> bool {
        (0..self.class.len()).any(|c| self.whole(c) && test(self.class[c]))
            || self.apart.iter().any(|(_, s)| test(*s))
    }

    /// The nodes whose score is not `-INFINITY`, each once, class by class and then those
    /// set apart: what a look at every node for one that may take an instance needs to
    /// visit, when few nodes may.
    pub(super) fn open(&self) -> impl Iterator<Item = usize> + '_ {
        let classes = (0..self.class.len())
            .filter(|c| !self.class[*c].is_neg_infinity() && self.whole(*c))
            .flat_map(move |c| {
                let none_apart = self.apart_in[c] == 0;
                let members = self.classes.members[c].iter().copied();
                members.filter(move |i| none_apart || !self.is_apart(*i))
            });
        let apart = self.apart.iter().filter(|(_, s)| !s.is_neg_infinity());
        classes.chain(apart.map(|(i, _)| *i))
    }

    /// Adds to each class and each node of `entries` what `delta` makes of its score
    /// before and its entry, if anything; `added` is told, when explaining, of each node
    /// and what was added there, with the entry.
    pub(super) fn change(
        &mut self,
        entries: &Entries,
        mut delta: impl FnMut(Score, Score) -> Option<Score>,
        mut added: impl FnMut(usize, Score, Score),
    ) {
        let (classes, nodes) = (&entries.by_class[..], &entries.by_node[..]);
        for &(i, _) in nodes {
            self.set_apart(i);
        }
        let entry_of = |i: usize, of: &[usize]| match nodes.binary_search_by_key(&i, |e| e.0) {
            Ok(k) => Some(nodes[k].1),
            Err(_) => classes
                .binary_search_by_key(&of[i], |e| e.0)
                .ok()
                .map(|k| classes[k].1),
        };
        let explain = !self.why.is_empty();
        for (i, s) in &mut self.apart {
            let Some(entry) = entry_of(*i, &self.classes.of) else {
                continue;
            };
            if let Some(d) = delta(*s, entry) {
                *s += d;
                if explain {
                    added(*i, d, entry);
                }
            }
        }
        for &(c, entry) in classes {
            let Some(d) = delta(self.class[c], entry) else {
                continue;
            };
            self.class[c] += d;
            if !explain {
                continue;
            }
            for &i in &self.classes.members[c] {
                if !self.is_apart(i) {
                    added(i, d, entry);
                }
            }
        }
    }

    /// Every score there is, from the highest down, each with the classes of it (that
    /// have a node not set apart) and the nodes set apart with it: each node's score is
    /// at its class or, set apart, at itself.
    pub(super) fn tiers(&self) -> Vec<(Score, Holder)> {
        let classes = (0..self.class.len())
            .filter(|c| self.whole(*c))
            .map(|c| (self.class[c], Holder::Class(c)));
        let nodes = self.apart.iter().map(|&(i, s)| (s, Holder::Node(i)));
        let mut tiers = Vec::with_capacity(self.class.len() + self.apart.len());
        tiers.extend(classes.chain(nodes));
        // In holder order already (the classes by number, then the nodes set apart, by
        // number): a stable sort by score alone keeps it within each score.
        debug_assert!(tiers.is_sorted_by_key(|t| t.1));
        tiers.sort_by_key(|t| std::cmp::Reverse(t.0));
        tiers
    }

    /// Whether node `i` is set apart from its class.
    pub(super) fn is_apart(&self, i: usize) -> bool {
        self.apart.binary_search_by_key(&i, |e| e.0).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A step of a stage, as it would be taken on a row of one score per node.
    #[derive(Debug, Clone)]
    enum Step {
        Node(usize, i64),
        Classes(Vec<usize>, i64),
        Except(Vec<usize>, i64),
        Change(Vec<(usize, i64)>, Vec<(usize, i64)>),
        Scores(Vec<Step>),
    }

    fn score() -> impl Strategy<Value = i64> {
        prop_oneof![
            Just(1_000_000),
            Just(-1_000_000),
            -1_200_000i64..1_200_000,
            -50i64..50
        ]
    }

    fn sorted(mut v: Vec<usize>, below: usize) -> Vec<usize> {
        v.retain(|x| *x < below);
        v.sort_unstable();
        v.dedup();
        v
    }

    fn sorted_by_first(mut v: Vec<(usize, i64)>, below: usize) -> Vec<(usize, i64)> {
        v.retain(|x| x.0 < below);
        v.sort_by_key(|x| x.0);
        v.dedup_by_key(|x| x.0);
        v
    }

    fn step(depth: u32) -> BoxedStrategy<Step> {
        let nodes = || proptest::collection::vec(0usize..12, 0..6);
        let entries = || proptest::collection::vec((0usize..12, score()), 0..6);
        let leaf = prop_oneof![
            (0usize..12, score()).prop_map(|(i, s)| Step::Node(i, s)),
            (nodes(), score()).prop_map(|(c, s)| Step::Classes(c, s)),
            (nodes(), score()).prop_map(|(n, s)| Step::Except(n, s)),
            (entries(), entries()).prop_map(|(c, n)| Step::Change(c, n)),
        ];
        if depth == 0 {
            return leaf.boxed();
        }
        prop_oneof![
            4 => leaf,
            1 => proptest::collection::vec(step(depth - 1), 0..6).prop_map(Step::Scores),
        ]
        .boxed()
    }

    /// What a change adds: depends on the score before, as the dependents stage does.
    fn delta(now: Score, entry: Score) -> Option<Score> {
        (entry != Score::ZERO).then(|| {
            if now > Score::ZERO {
                entry
            } else {
                Score::new(-now.value() / 2) + entry
            }
        })
    }

    fn run(steps: &[Step], classes: &Rc<Classes>, s: &mut Scores, row: &mut [Score]) {
        let count = row.len();
        let class_count = classes.members.len();
        for st in steps {
            match st {
                Step::Node(i, v) if *i < count => {
                    s.add(*i, Stage::Location, String::new, Score::new(*v));
                    row[*i] += Score::new(*v);
                }
                Step::Node(..) => {}
                Step::Classes(cs, v) => {
                    let cs = sorted(cs.clone(), class_count);
                    s.add_classes(&cs, Stage::Location, String::new, Score::new(*v));
                    for (i, r) in row.iter_mut().enumerate() {
                        if cs.contains(&classes.of(i)) {
                            *r += Score::new(*v);
                        }
                    }
                }
                Step::Except(ns, v) => {
                    let ns = sorted(ns.clone(), count);
                    s.add_except(&ns, Stage::Colocation, String::new, Score::new(*v));
                    for (i, r) in row.iter_mut().enumerate() {
                        if !ns.contains(&i) {
                            *r += Score::new(*v);
                        }
                    }
                }
                Step::Change(cs, ns) => {
                    let to_scores = |v: Vec<(usize, i64)>| {
                        v.into_iter().map(|(k, x)| (k, Score::new(x))).collect()
                    };
                    let entries = Entries {
                        by_class: to_scores(sorted_by_first(cs.clone(), class_count)),
                        by_node: to_scores(sorted_by_first(ns.clone(), count)),
                    };
                    s.change(&entries, delta, |_, _, _| {});
                    for (i, r) in row.iter_mut().enumerate() {
                        let entry = entries
                            .by_node
                            .iter()
                            .find(|e| e.0 == i)
                            .or_else(|| entries.by_class.iter().find(|e| e.0 == classes.of(i)));
                        if let Some(d) = entry.and_then(|e| delta(*r, e.1)) {
                            *r += d;
                        }
                    }
                }
                Step::Scores(inner) => {
                    let mut theirs = Scores::new(classes, false);
                    let mut their_row = vec![Score::ZERO; count];
                    run(inner, classes, &mut theirs, &mut their_row);
                    s.add_scores(&theirs);
                    for (r, t) in row.iter_mut().zip(their_row) {
                        *r += t;
                    }
                }
            }
        }
    }

    proptest! {
        /// Kept by class, every node's score is what a row of one score per node holds
        /// after the same steps, and so are the top nodes.
        #[test]
        fn scores_by_class_are_what_a_row_per_node_holds(
            count in 1usize..12,
            rules in proptest::collection::vec(proptest::collection::vec(0usize..12, 0..12), 0..4),
            steps in proptest::collection::vec(step(2), 0..12),
        ) {
            let rules: Vec<Vec<usize>> = rules.into_iter().map(|r| sorted(r, count)).collect();
            let each: Vec<usize> = (0..count).collect();
            let masks: Vec<FixedBitSet> = rules
                .iter()
                .map(|r| {
                    let mut m = FixedBitSet::with_capacity(count);
                    m.extend(r.iter().copied());
                    m
                })
                .collect();
            let (classes, covering) = Classes::new(&each, &masks, false);
            for (r, nodes) in rules.iter().enumerate() {
                let of = sorted(nodes.iter().map(|i| classes.of(*i)).collect(), usize::MAX);
                prop_assert_eq!(&covering[r][..], &of[..]);
            }
            let classes = Rc::new(classes);
            for (a, b) in (0..count).flat_map(|a| (0..count).map(move |b| (a, b))) {
                let alike = rules.iter().all(|r| r.contains(&a) == r.contains(&b));
                prop_assert_eq!(alike, classes.of(a) == classes.of(b));
            }
            let mut s = Scores::new(&classes, false);
            let mut row = vec![Score::ZERO; count];
            run(&steps, &classes, &mut s, &mut row);
            for (i, r) in row.iter().enumerate() {
                prop_assert_eq!(s.at(i), *r, "node {}", i);
            }
            // Each node once, at its score, the scores from the highest down.
            let mut seen: Vec<(Score, usize)> = Vec::new();
            let tiers = s.tiers();
            prop_assert!(tiers.windows(2).all(|w| w[0].0 >= w[1].0));
            for (score, holder) in tiers {
                let nodes = match holder {
                    Holder::Class(c) => classes.members(c).iter().copied().filter(|i| !s.is_apart(*i)).collect(),
                    Holder::Node(i) => vec![i],
                };
                prop_assert!(!nodes.is_empty());
                seen.extend(nodes.into_iter().map(|i| (score, i)));
            }
            seen.sort_unstable_by_key(|e| e.1);
            let expected: Vec<(Score, usize)> = row.iter().copied().zip(0..count).collect();
            prop_assert_eq!(seen, expected);
            prop_assert_eq!(s.any(|x| !x.is_neg_infinity()), row.iter().any(|x| !x.is_neg_infinity()));
            let mut open: Vec<usize> = s.open().collect();
            open.sort_unstable();
            let expected: Vec<usize> = (0..count).filter(|i| !row[*i].is_neg_infinity()).collect();
            prop_assert_eq!(open, expected);
        }
    }
}

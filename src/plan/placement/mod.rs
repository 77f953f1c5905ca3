//! Placement: which node each instance should run on, by Pacemaker-style scores.
//!
//! Bundles are placed one after another: those others are colocated with first, then by
//! priority ([`colocation::order`]; the members of a cycle of `INFINITY` colocations are
//! placed as one group). Each instance goes through a pipeline, as in Nomad's scheduler:
//!
//! 1. **pinned** ([`Placer::pinned`]): an instance of a suspended bundle (placed as
//!    observed), waiting for a mandatory `first`, held by `onFail: block`, or frozen by a
//!    lost node that cannot be fenced is not scored;
//! 2. **feasibility** ([`feasible`]): nodes the instance may not use score `-INFINITY`
//!    (unavailable, failed there too often, its name taken, `replicasPerHost` reached, a
//!    colocation cycle's nodes all taken, too little free [`capacity`]);
//! 3. **ranking** ([`rank`]): location constraints, colocations with the bundles placed,
//!    the scores of a colocation cycle's other members, stickiness; each stage adds its
//!    own part of the score;
//! 4. **selection** ([`select`]): the highest score; ties go to the node the instance is
//!    on, then as the cluster's `placementStrategy` says (the fewest instances, or the
//!    most free capacity, [`capacity::Capacity::prefer`]), then to the first name.
//!
//! `--explain` records every part with the stage that added it.
//!
//! The parts that are the same for every instance of a bundle are computed once per
//! bundle, per class of nodes the location rules treat alike ([`scores`]), and rule
//! matches once per distinct rule, so a thousand nodes and ten thousand instances place
//! quickly; an instance's own parts touch few nodes, and selection finds a class's best
//! node in the order the strategy breaks ties in ([`select::Load`]). Once a new instance
//! of a bundle fits nowhere, none after it does (nothing was placed in between, and a new
//! instance's own parts only exclude nodes), so the rest are not scored, and an instance
//! placed nowhere has no entry: placement costs in proportion to what can be placed, not
//! to the replicas asked for.

mod capacity;
mod feasible;
mod group;
mod rank;
mod scores;
mod select;

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::rc::Rc;

use super::current::{Copy, Current, Whereabouts, by_index, of_index};
use super::model::{Placement, Stage};
use super::{HashMap, HashSet, colocation};
use crate::observed::Observed;
use crate::spec::bundle::{BundleSpec, Recovery, instance_name};
use crate::spec::cluster::NodeSpec;
use crate::spec::constraint::{ConstraintSpec, OrderConstraint, OrderKind};
use crate::spec::{Name, Score, SpecSet};
pub use capacity::Shortfall;
use capacity::{Base, Capacity, Running};
use feasible::Fit;
use rank::Ranker;
use scores::Scores;

/// Where the instances of each bundle placed so far are, counted per node.
type PlacedOn<'a> = HashMap<&'a str, Counts>;

/// Each bundle's place in the order of placement ([`colocation::Order::bundles`]).
type Positions<'a> = HashMap<&'a str, usize>;

/// The node chosen for each instance of each bundle (`None`: nowhere); an instance no
/// node is allowed for may have no entry. Hashed by bundle, as it is looked up an
/// instance at a time, with each bundle's instances in number order; a bundle with no
/// entry left has none at all.
#[derive(Debug, Default, PartialEq)]
pub struct NodeOf<'a>(HashMap<&'a str, BTreeMap<u32, Option<&'a Name>>>);

impl<'a> NodeOf<'a> {
    /// The entry of instance `index` of `bundle`, if it has one.
    pub(crate) fn get(&self, bundle: &str, index: u32) -> Option<Option<&'a Name>> {
        self.0.get(bundle)?.get(&index).copied()
    }

    fn insert(&mut self, bundle: &'a str, index: u32, node: Option<&'a Name>) {
        self.0.entry(bundle).or_default().insert(index, node);
    }

    fn remove(&mut self, bundle: &str, index: u32) {
        if let Some(of) = self.0.get_mut(bundle) {
            of.remove(&index);
            if of.is_empty() {
                self.0.remove(bundle);
            }
        }
    }

    /// The entries of `bundle`'s instances, by number.
    pub(crate) fn of(&self, bundle: &str) -> impl Iterator<Item = (u32, Option<&'a Name>)> + '_ {
        self.0
            .get(bundle)
            .into_iter()
            .flatten()
            .map(|(i, n)| (*i, *n))
    }

    /// Every entry, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = ((&'a str, u32), Option<&'a Name>)> + '_ {
        self.0
            .iter()
            .flat_map(|(b, of)| of.iter().map(|(i, n)| ((*b, *i), *n)))
    }
}

/// The outcome of placement.
pub struct Placed<'a> {
    /// The chosen node per (bundle, index); an instance no node is allowed for has no
    /// entry (or `None`).
    pub node: NodeOf<'a>,
    /// The scores behind each decision (only when asked for).
    pub explain: Vec<Placement>,
    /// Bundles that place no new instance because the `first` of a mandatory order into
    /// them runs nowhere, with that `first`.
    pub starved: BTreeMap<&'a str, &'a str>,
    /// Instances placed nowhere because every node that would take them has too little
    /// free capacity, by instance name, with the numbers.
    pub short: BTreeMap<String, Shortfall>,
    /// Running instances counted on their node from the start of the round that were
    /// placed elsewhere or nowhere.
    left: BTreeSet<(&'a str, u32)>,
    /// Bundles the round found starved, with the `first` they wait for: that `first` was
    /// placed before them, short (see [`Placer::starved_now`]).
    found: BTreeMap<&'a str, &'a str>,
}

impl Placed<'_> {
    /// Nothing placed yet, with room for `bundles` bundles.
    fn none(bundles: usize) -> Self {
        Placed {
            node: NodeOf(super::map_for(bundles)),
            explain: Vec::new(),
            starved: BTreeMap::new(),
            short: BTreeMap::new(),
            left: BTreeSet::new(),
            found: BTreeMap::new(),
        }
    }
}

/// The instances of each promotable bundle that are promoted once the plan is carried
/// out (and the running copies of unknown role that stay: they may be), and their nodes,
/// as an earlier round of planning decided them (see `plan::primaries`): the colocations with `role: promoted` are placed beside wherever
/// this placement puts those instances (the node of that round while they are not placed
/// yet, in a colocation cycle). A promotable bundle with no entry is not followed by role
/// yet (the first round). None at all: the rounds did not settle, and every bundle
/// colocated with primaries is placed nowhere.
pub type Promoted = BTreeMap<Name, Vec<(u32, Name)>>;

/// How many instances of a bundle (placed, or counted for capacity) each node has, for
/// the nodes that have any, in node order. Sparse: every bundle placed is kept until the
/// round ends, and a bundle has a few instances where a cluster may have thousands of
/// nodes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Counts(Vec<(usize, u32)>);

impl Counts {
    /// From the node of each instance.
    pub(super) fn at(mut nodes: Vec<usize>) -> Counts {
        nodes.sort_unstable();
        let mut counts: Vec<(usize, u32)> = Vec::new();
        for i in nodes {
            match counts.last_mut() {
                Some((at, n)) if *at == i => *n += 1,
                _ => counts.push((i, 1)),
            }
        }
        Counts(counts)
    }

    /// The instances on node `i`.
    pub(super) fn on(&self, i: usize) -> u32 {
        self.0
            .binary_search_by_key(&i, |(at, _)| *at)
            .map_or(0, |k| self.0[k].1)
    }

    /// One instance more on node `i`.
    fn add_one(&mut self, i: usize) {
        match self.0.binary_search_by_key(&i, |(at, _)| *at) {
            Ok(k) => self.0[k].1 += 1,
            Err(k) => self.0.insert(k, (i, 1)),
        }
    }

    /// Whether no node has an instance.
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many nodes have an instance.
    fn node_count(&self) -> usize {
        self.0.len()
    }

    /// Every instance counted.
    fn total(&self) -> u32 {
        self.0.iter().map(|(_, n)| n).sum()
    }

    /// The nodes with an instance, in order.
    pub(super) fn nodes(&self) -> impl Iterator<Item = usize> + '_ {
        self.0.iter().map(|(i, _)| *i)
    }

    /// One instance fewer on node `i`.
    pub(super) fn remove_one(&mut self, i: usize) {
        if let Ok(k) = self.0.binary_search_by_key(&i, |(at, _)| *at) {
            self.0[k].1 -= 1;
            if self.0[k].1 == 0 {
                self.0.remove(k);
            }
        }
    }
}

/// The nodes, in name order, addressed by index.
struct Nodes<'a> {
    /// Each node's spec (its name, attributes, capacity).
    specs: Vec<&'a NodeSpec>,
    /// Hashed: looked up for every instance placed, never walked in order.
    index: HashMap<&'a str, usize>,
}

impl<'a> Nodes<'a> {
    /// The nodes as `current` numbers them.
    fn new(current: &Current<'a>) -> Nodes<'a> {
        Nodes {
            specs: current.nodes.clone(),
            index: current.numbers.clone(),
        }
    }

    fn count(&self) -> usize {
        self.specs.len()
    }

    /// The name of node `i`.
    fn name(&self, i: usize) -> &'a Name {
        &self.specs[i].name
    }

    fn of(&self, node: &str) -> Option<usize> {
        self.index.get(node).copied()
    }
}

/// Places every instance of every bundle of `spec`; with `explain`, records every
/// candidate's score and what it is made of.
pub fn place<'a>(
    spec: &'a SpecSet,
    observed: &Observed,
    current: &Current<'a>,
    promoted: Option<&'a Promoted>,
    explain: bool,
) -> Placed<'a> {
    // A bundle whose mandatory `first` runs nowhere places no new instances; finding
    // out can starve another bundle in turn, so repeat until nothing changes. A bundle
    // found starved stays starved for this plan: starving one can let its `first` run
    // again (a `-INFINITY` colocation between them), and forgetting it then would go
    // round for ever. Under capacity, a running instance keeps its claim on its node
    // from the start of a round; one that leaves that node in a round (placed elsewhere
    // or nowhere) gives its claim up from the start of the next, so the bundles placed
    // before it see the room it leaves, as they will in the next plan. Each round adds a
    // starved bundle or a leaving instance, or is the last: the rounds end. Most
    // starvation is found within a round (the `first` placed before its `then`), so
    // one round usually does; a round after the first scores only from the first bundle
    // that what it learnt can change, and takes the last round's placements over for
    // those before. What every round shares is worked out once.
    let nodes = Nodes::new(current);
    let usable: Vec<bool> = nodes
        .specs
        .iter()
        .map(|n| current.usable.contains(n.name.as_str()))
        .collect();
    let ranker = Ranker::new(spec, &nodes, &usable, promoted, explain);
    let order = colocation::order(spec);
    let at: Positions = super::positions(order.bundles.iter().copied());
    let group_of = group_of(&order);
    let into = starving_into(spec);
    let fixed = Fixed {
        nodes: &nodes,
        usable: &usable,
        ranker: &ranker,
        order: &order,
        group_of: &group_of,
        into: &into,
        promoted,
        base: Base::of(spec, &nodes, current, &at),
    };
    let mut round = Round::default();
    let mut last: Option<(usize, Placed<'a>)> = None;
    loop {
        // (With `--explain`, every instance is scored and explained again.)
        let taken = last.as_mut().map(|(same, prev)| (*same, prev));
        let taken = taken.filter(|(same, _)| *same > 0 && !explain);
        let mut placed = place_once(spec, observed, current, explain, &round, &fixed, taken);
        let mut starved = starved_bundles(&fixed, &placed);
        starved.extend(round.starved.iter().map(|(t, f)| (*t, *f)));
        // The bundles the round treated as starved: those it started with, and those it
        // found starved on the way (their `first` placed before them, short).
        let treated = round.starved.keys().chain(placed.found.keys());
        let treated: BTreeSet<&str> = treated.copied().collect();
        if starved.keys().copied().eq(treated) && placed.left.is_subset(&round.left) {
            placed.starved = starved;
            return top_up(
                (spec, observed, current, explain),
                placed,
                &round.left,
                &fixed,
            );
        }
        // Instances that leave change what is claimed from the start: all anew.
        let same = if placed.left.is_subset(&round.left) {
            unchanged(
                spec,
                current,
                (&order, &at),
                (&round.starved, &starved),
                &placed.found,
            )
        } else {
            0
        };
        round.left.append(&mut placed.left);
        round.starved = starved;
        last = Some((same, placed));
    }
}

/// Each bundle of a colocation cycle (`order.groups`), with every member of its cycle.
fn group_of<'o, 'a>(order: &'o colocation::Order<'a>) -> HashMap<&'a str, &'o [&'a str]> {
    let members = |g: &'o Vec<&'a str>| g.iter().map(move |b| (*b, g.as_slice()));
    order.groups.iter().flat_map(members).collect()
}

/// The order constraints that may starve their `then` (see `order::may_starve`), by
/// that `then`.
fn starving_into(spec: &SpecSet) -> HashMap<&str, Vec<&OrderConstraint>> {
    let mut into: HashMap<&str, Vec<&OrderConstraint>> = HashMap::default();
    for c in spec.constraints.values() {
        if let ConstraintSpec::Order(o) = c
            && super::order::may_starve(spec, o)
        {
            into.entry(o.then.as_str()).or_default().push(o);
        }
    }
    into
}

/// How many bundles, in placement order, the next round places as the last one did,
/// when it starts with `new` starved instead of `old` (and no more leaving instances):
/// those before the first bundle the newly starved ones can change. A starved bundle
/// changes what it needs counted with its `INFINITY` primaries, and theirs up the chain
/// ([`primaries_above`]), and what its running instances claim from the start; one the
/// last round `found` starved at its place was already placed as a starved one. Counted
/// from a group's first member (a group is placed, and kept together, as one).
fn unchanged<'a>(
    spec: &'a SpecSet,
    current: &Current<'a>,
    (order, at): (&colocation::Order<'a>, &Positions<'a>),
    (old, new): (&BTreeMap<&'a str, &'a str>, &BTreeMap<&'a str, &'a str>),
    found: &BTreeMap<&'a str, &'a str>,
) -> usize {
    let newly: BTreeSet<&str> = new
        .keys()
        .filter(|b| !old.contains_key(*b))
        .copied()
        .collect();
    if newly.iter().any(|b| current.copies.contains_key(*b)) {
        return 0;
    }
    let changed = newly.iter().copied().filter(|b| !found.contains_key(b));
    let mut same = changed
        .chain(primaries_above(spec, &newly))
        .map(|b| at.get(b).copied().unwrap_or(0))
        .min()
        .unwrap_or(order.bundles.len());
    for group in &order.groups {
        let first = group.first().and_then(|b| at.get(b)).copied().unwrap_or(0);
        let last = group.last().and_then(|b| at.get(b)).copied().unwrap_or(0);
        if first < same && same <= last {
            same = first;
        }
    }
    same
}

/// The bundles whose placement counted the needs of the `starved` ones: their `INFINITY`
/// primaries, and those primaries' own up every chain of such colocations (a dependent's
/// needs go with every primary above it, `capacity::Capacity::dependents_of`). Each
/// once; colocations with a role and links past the depth capacity follows are counted
/// too, which only means scoring a few more bundles again.
fn primaries_above<'a>(spec: &'a SpecSet, starved: &BTreeSet<&'a str>) -> BTreeSet<&'a str> {
    let mut up: HashMap<&str, Vec<&str>> = HashMap::default();
    for c in capacity::infinity_colocations(spec) {
        up.entry(c.bundle.as_str())
            .or_default()
            .push(c.with.as_str());
    }
    let mut above = BTreeSet::new();
    let mut todo: Vec<&str> = starved.iter().copied().collect();
    while let Some(b) = todo.pop() {
        for &with in up.get(b).into_iter().flatten() {
            if above.insert(with) {
                todo.push(with);
            }
        }
    }
    above
}

/// What every round of placement shares: the nodes, what rules and constraints give
/// each bundle, the order bundles are placed in, what nodes offer and bundles need.
struct Fixed<'f, 'a> {
    nodes: &'f Nodes<'a>,
    usable: &'f [bool],
    ranker: &'f Ranker<'f, 'a>,
    order: &'f colocation::Order<'a>,
    /// The members of each mandatory group, by member.
    group_of: &'f HashMap<&'a str, &'f [&'a str]>,
    /// The order constraints that may starve their `then` (`order::may_starve`), by
    /// that `then`, in the set's order.
    into: &'f HashMap<&'a str, Vec<&'a OrderConstraint>>,
    /// The promoted instances, as the round of planning before decided them.
    promoted: Option<&'a Promoted>,
    base: Rc<Base<'a>>,
}

/// What a round of placement starts from.
#[derive(Default)]
struct Round<'a> {
    /// Bundles that place no instance, with the `first` they wait for.
    starved: BTreeMap<&'a str, &'a str>,
    /// Running instances whose claim on their node is not counted from the start.
    left: BTreeSet<(&'a str, u32)>,
    /// Instances counted on a node from the start, as if they ran there.
    claims: Vec<((&'a str, u32), &'a Name)>,
    /// Bundles placed as if none of their instances ran (no stickiness, no node to keep):
    /// in a top-up round, those the round before placed nowhere, as the next plan finds
    /// them once this one stops them.
    unstuck: BTreeSet<&'a str>,
}

/// A bundle starved in an earlier round may have its `first` placed now, once starving it
/// gave back the capacity its `first` needed (a `then` of higher priority placed before
/// its `first` and took the room). One more round places such bundles in what the others
/// leave: every other instance claims the node the last round put it on from the start,
/// as a running instance claims its own, and theirs claim nothing. Its result is taken
/// when it starves nothing new, and may free a bundle further down a chain of orders in
/// turn; each such round starves fewer bundles, so they end. When none is freed so, the
/// starved bundles their own `first` must run beside are tried once in the same way
/// (starved, they keep that `first` nowhere whatever else is placed). A round that
/// starves a freed bundle again is tried once more with the freed bundles placed as if
/// they ran nowhere ([`Round::unstuck`]), as the next plan, once this one stops them.
fn top_up<'a>(
    (spec, observed, current, explain): (&'a SpecSet, &Observed, &Current<'a>, bool),
    mut placed: Placed<'a>,
    left: &BTreeSet<(&'a str, u32)>,
    fixed: &Fixed<'_, 'a>,
) -> Placed<'a> {
    loop {
        let mut still = starved_bundles(fixed, &placed);
        let mut freed: BTreeSet<&str> = placed
            .starved
            .keys()
            .filter(|b| !still.contains_key(*b))
            .copied()
            .collect();
        if freed.is_empty() {
            // A `then` its own `first` must run beside (an `INFINITY` colocation of the
            // first with it) keeps that first nowhere while it is starved: tried once
            // more without it, taken if that starves nothing new.
            let waits = |then: &&str, first: &&str| still.get(then) == Some(first);
            freed = placed
                .starved
                .iter()
                .filter(|(then, first)| waits(then, first) && fixed.ranker.beside(first, then))
                .map(|(then, _)| *then)
                .collect();
            if freed.is_empty() {
                return placed;
            }
            still.retain(|then, _| !freed.contains(then));
        }
        // The freed bundles were placed nowhere in the last round, running instances
        // included: they claim nothing from the start either.
        let mut left = left.clone();
        for bundle in &freed {
            left.extend(by_index(current.all_of(bundle)).map(|(i, _)| (*bundle, i)));
        }
        let mut top = Round {
            left,
            claims: claims(&placed, &freed),
            starved: still,
            unstuck: BTreeSet::new(),
        };
        let inputs = (spec, observed, current, explain);
        let mut topped = settle(inputs, fixed, &mut top, &freed);
        let starves_more = |topped: &Placed<'a>, top: &Round<'a>| {
            let more = starved_bundles(fixed, topped);
            !more.keys().all(|b| top.starved.contains_key(b))
        };
        if starves_more(&topped, &top) {
            // A freed bundle's running instance may have kept its node by stickiness and
            // pushed an instance that claimed room beside it away, starving the freed
            // bundle again. The next plan finds that instance stopped (the round before
            // placed it nowhere) and places it without: tried once so.
            top.claims = claims(&placed, &freed);
            top.unstuck.clone_from(&freed);
            topped = settle(inputs, fixed, &mut top, &freed);
            if starves_more(&topped, &top) {
                return placed;
            }
        }
        topped.starved = top.starved;
        placed = topped;
    }
}

/// A top-up round placed from `top`. An instance placed away from the node it claimed (a
/// freed bundle took that node, and a colocation keeps them apart) held room there that
/// the `freed` bundles could not have: it claims where it went instead, as the next plan
/// will count it, and the round is placed again until the claims hold.
fn settle<'a>(
    (spec, observed, current, explain): (&'a SpecSet, &Observed, &Current<'a>, bool),
    fixed: &Fixed<'_, 'a>,
    top: &mut Round<'a>,
    freed: &BTreeSet<&str>,
) -> Placed<'a> {
    let mut topped = place_once(spec, observed, current, explain, top, fixed, None);
    for _ in 1..CLAIM_ROUNDS {
        let held = top
            .claims
            .iter()
            .all(|((b, i), n)| topped.node.get(b, *i) == Some(Some(*n)));
        if held {
            break;
        }
        top.claims = claims(&topped, freed);
        topped = place_once(spec, observed, current, explain, top, fixed, None);
    }
    topped
}

/// How many times at most a top-up round is placed again with its claims moved to where
/// the round before put their instances.
const CLAIM_ROUNDS: usize = 4;

/// The node `placed` put each instance on, but those of `freed` bundles, in instance
/// order (whatever order the hashed placement gives them in).
fn claims<'a>(placed: &Placed<'a>, freed: &BTreeSet<&str>) -> Vec<((&'a str, u32), &'a Name)> {
    let mut claims: Vec<_> = placed
        .node
        .iter()
        .filter(|((b, _), _)| !freed.contains(b))
        .filter_map(|(key, node)| node.map(|n| (key, n)))
        .collect();
    claims.sort_unstable();
    claims
}

/// Bundles `then` of a mandatory order whose `first` has no instance placed (or fewer
/// than its `minInstances`), with that `first`.
fn starved_bundles<'a>(fixed: &Fixed<'_, 'a>, placed: &Placed<'a>) -> BTreeMap<&'a str, &'a str> {
    let orders = fixed.into.values().flatten().copied();
    super::order::starved(orders, &placed.node)
}

/// One round of placement: every bundle in colocation order, from `round`; with
/// `taken`, the first bundles placed as the given outcome placed them instead of scored
/// again ([`unchanged`] says how many). Debug builds also score them again and check that
/// both come to the same.
fn place_once<'a>(
    spec: &'a SpecSet,
    observed: &Observed,
    current: &Current<'a>,
    explain: bool,
    round: &Round<'a>,
    fixed: &Fixed<'_, 'a>,
    taken: Option<(usize, &mut Placed<'a>)>,
) -> Placed<'a> {
    let Fixed {
        nodes,
        usable,
        order,
        group_of,
        promoted,
        ref base,
        ..
    } = *fixed;
    // A running instance is counted on its node from the start unless its bundle is
    // starved, its node unusable, it left that node in an earlier round or failed there
    // too often; one that stays put (suspended, or held by `onFail: block`) is counted
    // whatever.
    let stays = |r: &Running<'a>| {
        let (bundle, index, at) = (r.bundle.0, r.index, r.at);
        stays_put(observed, r)
            || !(round.starved.contains_key(bundle)
                || !usable[at]
                || round.left.contains(&(bundle, index))
                || failed_out(spec, observed, current, (bundle, index), nodes.name(at)))
    };
    let capacity = Capacity::new((spec, base, current), (&round.starved, promoted), stays);
    let mut placer = Placer::new((spec, observed, current), explain, round, fixed, capacity);
    let skip = taken.as_ref().map_or(0, |(count, _)| *count);
    if let Some((count, prev)) = taken {
        placer.take_over(&order.bundles[..count], prev);
    }
    for (&bundle, &b) in order.bundles.iter().zip(&order.specs).skip(skip) {
        let group = group_of.get(bundle).copied();
        placer.place_bundle(bundle, b, group);
        if let Some(group) = group
            && group.last() == Some(&bundle)
        {
            placer.keep_group_together(group);
        }
    }
    placer.out.left = placer.capacity.left();
    #[cfg(debug_assertions)]
    if skip > 0 {
        let full = place_once(spec, observed, current, explain, round, fixed, None);
        let out = &placer.out;
        debug_assert!(
            out.node == full.node
                && out.short == full.short
                && out.found == full.found
                && out.left == full.left,
            "a round that takes over {skip} bundles' placements differs from one that scores them"
        );
    }
    placer.out
}

/// The state of one round of placement.
struct Placer<'p, 'a> {
    spec: &'a SpecSet,
    observed: &'p Observed,
    current: &'p Current<'a>,
    nodes: &'p Nodes<'a>,
    usable: &'p [bool],
    ranker: &'p Ranker<'p, 'a>,
    starved: &'p BTreeMap<&'a str, &'a str>,
    /// The order constraints that may starve their `then`, by that `then`.
    into: &'p HashMap<&'a str, Vec<&'a OrderConstraint>>,
    explain: bool,
    /// Instances placed per node, of every bundle.
    load: select::Load,
    /// Instances placed per node, per bundle placed.
    placed_on: PlacedOn<'a>,
    /// Instances `onFail: block` keeps where they are.
    held: BTreeSet<(&'a str, u32)>,
    /// The node each instance claims from the start in a top-up round: where it will run
    /// in the next plan, so it has its stickiness there as it will then.
    claimed: HashMap<(&'a str, u32), usize>,
    /// Bundles placed as if none of their instances ran (see [`Round::unstuck`]).
    unstuck: &'p BTreeSet<&'a str>,
    out: Placed<'a>,
    /// What each node has free, kept as instances are placed.
    capacity: Capacity<'a>,
}

impl<'p, 'a> Placer<'p, 'a> {
    /// A round's placer, nothing placed yet: each instance the round claims a node for
    /// kept to it, the nodes' load counted from `capacity`.
    fn new(
        (spec, observed, current): (&'a SpecSet, &'p Observed, &'p Current<'a>),
        explain: bool,
        round: &'p Round<'a>,
        fixed: &'p Fixed<'p, 'a>,
        mut capacity: Capacity<'a>,
    ) -> Placer<'p, 'a> {
        let nodes = fixed.nodes;
        let bundles = fixed.order.bundles.len();
        // Each claim's node by number, looked up once for both uses below.
        let claims: Vec<((&'a str, u32), usize)> = (round.claims.iter())
            .filter_map(|(key, node)| Some((*key, nodes.of(node.as_str())?)))
            .collect();
        let mut placer = Placer {
            spec,
            observed,
            current,
            nodes,
            usable: fixed.usable,
            ranker: fixed.ranker,
            starved: &round.starved,
            unstuck: &round.unstuck,
            into: fixed.into,
            explain,
            load: select::Load::new(fixed.ranker.classes(), nodes.count(), &mut capacity),
            placed_on: super::map_for(bundles),
            held: BTreeSet::new(),
            claimed: claims.iter().copied().collect(),
            out: Placed::none(bundles),
            capacity,
        };
        for ((bundle, index), at) in claims {
            placer.capacity.take(bundle, index, at);
        }
        placer
    }
}

/// What one bundle's instances are placed with.
struct Bundle<'b, 'a> {
    name: &'a str,
    spec: &'a BundleSpec,
    /// The parts shared by every instance, from the bundle's stages.
    base: Scores,
    /// The nodes of the highest shared score, looked at first.
    likely: select::Likely,
    /// Instances of this bundle placed per node so far.
    mine: Counts,
    /// For the first member of a colocation cycle: the fewest instances another member
    /// has, and that member (it takes no more nodes than that).
    spread: Option<(usize, &'b str)>,
    /// Whether the bundle cannot run where the dependents that must join it do not fit
    /// (see [`Placer::needs_joiners`]).
    with_joiners: bool,
    /// Its copies ([`Current::all_of`]), looked up once rather than per instance.
    copies: &'b [Copy<'a>],
    /// The node each instance is on, by number below `replicas`, as this round sees it
    /// (see [`Placer::homes`]).
    homes: Vec<Option<usize>>,
}

impl<'b, 'a> Bundle<'b, 'a> {
    /// The copies of instance `index`.
    fn of(&self, index: u32) -> &'b [Copy<'a>] {
        of_index(self.copies, index)
    }

    /// The node instance `index` is on, as this round sees it.
    fn home(&self, index: u32) -> Option<usize> {
        let at = usize::try_from(index).ok()?;
        self.homes.get(at).copied().flatten()
    }
}

impl<'p, 'a> Placer<'p, 'a> {
    /// The copies of `bundle`, and the node each of its instances numbered below
    /// `replicas` is on, as this round sees it: none for a bundle placed as if it ran
    /// nowhere ([`Round::unstuck`]), or that has no copies (then the vector is empty).
    /// Worked out once per bundle placed: each instance asks several times.
    fn homes(&self, bundle: &str, replicas: u32) -> (&'p [Copy<'a>], Vec<Option<usize>>) {
        let copies = self.current.all_of(bundle);
        if copies.is_empty() || self.unstuck.contains(bundle) {
            return (copies, Vec::new());
        }
        let mut homes = vec![None; usize::try_from(replicas).unwrap_or(0)];
        for (index, of) in by_index(copies) {
            if let Some(at) = usize::try_from(index).ok().and_then(|i| homes.get_mut(i)) {
                *at = home(of);
            }
        }
        (copies, homes)
    }

    /// The instances of `bundle` on no node that failed too often on some node, by
    /// number: placed before the other new ones, as they were while a copy of theirs was
    /// still there (the next plan, once it is gone, places them in the same order).
    fn failed_elsewhere(&self, b: &Bundle<'_, 'a>) -> Vec<u32> {
        let (observed, current, bundle) = (self.observed, self.current, b.name);
        // Most clusters have no failure on record: nothing to look up per bundle.
        if current.failed_on.is_empty() {
            return Vec::new();
        }
        let mut failed: Vec<u32> = of_bundle(&current.failed_on, bundle)
            .filter(|(index, _, on)| {
                let out = |n: &&Name| failed_out(self.spec, observed, current, (bundle, *index), n);
                *index < b.spec.replicas && b.home(*index).is_none() && on.iter().any(out)
            })
            .map(|(index, _, _)| index)
            .collect();
        failed.sort_unstable();
        failed
    }

    /// The instances of a bundle in the order they are placed: those that run somewhere
    /// keep their claim first, those on the best nodes first, so neither a new instance
    /// nor a sibling on a worse node pushes a running instance off its node (which also
    /// makes planning again against the result change nothing); then the new ones, by
    /// number, enumerated as they come rather than kept.
    ///
    /// Instances `onFail: block` holds on their node come first of all: they stay there
    /// whatever else is placed, so a sibling placed before them could find the node full
    /// only in the next plan, and move then. Of a bundle that cannot run without its
    /// dependents (`with_joiners`), those whose dependents are counted beside them come
    /// next: a sibling that has to leave its node to find room for its dependents would
    /// otherwise take the node of one that has them, and the two swap in the next plan.
    fn instance_order(&self, b: &Bundle<'_, 'a>) -> Vec<u32> {
        let (bundle, spec) = (b.name, b.spec);
        let on_fail = spec.monitor.on_fail;
        let joined = |i: u32, at: usize| !b.with_joiners || self.capacity.joined_at(bundle, i, at);
        let mut running: Vec<(bool, bool, Score, u32)> = by_index(b.copies)
            .filter(|(i, _)| *i < spec.replicas)
            .filter_map(|(i, copies)| {
                let held = copies.iter().any(|c| c.held(on_fail));
                b.home(i).map(|n| (held, joined(i, n), b.base.at(n), i))
            })
            .collect();
        running.sort_by(|x, y| (y.0, y.1, y.2).cmp(&(x.0, x.1, x.2)).then(x.3.cmp(&y.3)));
        running.into_iter().map(|(_, _, _, i)| i).collect()
    }

    fn place_bundle(&mut self, name: &'a str, spec: &'a BundleSpec, group: Option<&[&'a str]>) {
        if let Some(first) = self.starved_now(name) {
            self.out.found.insert(name, first);
        }
        let base = self
            .ranker
            .bundle_scores(name, group, &self.placed_on, &self.out.node);
        let spread = group
            .filter(|g| g.first() == Some(&name))
            .into_iter()
            .flatten()
            .filter(|m| **m != name)
            .filter_map(|m| {
                Some((
                    usize::try_from(self.spec.bundles.get(*m)?.replicas).ok()?,
                    *m,
                ))
            })
            .min();
        let (copies, homes) = self.homes(name, spec.replicas);
        let mut b = Bundle {
            name,
            spec,
            likely: select::Likely::of(&base),
            base,
            mine: Counts::default(),
            spread,
            with_joiners: self.needs_joiners(name, group),
            copies,
            homes,
        };
        let running = self.instance_order(&b);
        let failed = self.failed_elsewhere(&b);
        let fresh: Vec<u32> = (0..spec.replicas)
            .filter(|i| b.home(*i).is_none() && failed.binary_search(i).is_err())
            .collect();
        let mut fresh_ones = failed.iter().copied().chain(fresh);
        let mut running = running.into_iter();
        // A new instance (one that runs nowhere) has been placed nowhere: so will the next,
        // short of what it was short of, as placing more only fills nodes. Unless either
        // claims room of its own (as in a top-up round) or is kept off a node its siblings
        // may take ([`feasible::may_ban_alone`]).
        let mut full_up: Option<String> = None;
        while let Some(index) = running.next().or_else(|| fresh_ones.next()) {
            if self.pinned(&mut b, index) {
                continue;
            }
            let fresh = b.home(index).is_none() && !self.capacity.counts(name, index);
            let alike =
                |p: &Self| fresh && !feasible::may_ban_alone(p, &instance_name(name, index));
            if let Some(filler) = full_up.as_ref().filter(|_| !self.explain && alike(self)) {
                if let Some(short) = self.out.short.get(filler).cloned() {
                    self.out.short.insert(instance_name(name, index), short);
                }
                continue;
            }
            match self.choose(&b, index) {
                Some(i) => self.put(&mut b, index, i),
                None if full_up.is_none() && alike(self) => {
                    full_up = Some(instance_name(name, index));
                }
                None => {}
            }
        }
        self.placed_on.insert(name, b.mine);
    }

    /// Places `bundles` as `prev` placed them, without scoring them (see [`unchanged`]):
    /// the same nodes (their entries moved out of `prev`), counted the same, the same
    /// shortfalls. Their running instances give up the claim they started with, as
    /// placing them does.
    fn take_over(&mut self, bundles: &[&'a str], prev: &mut Placed<'a>) {
        for &bundle in bundles {
            if !self.spec.bundles.contains_key(bundle) {
                continue;
            }
            for (index, _) in by_index(self.current.all_of(bundle)) {
                self.capacity.release(bundle, index);
            }
            let mut mine = Vec::new();
            let of = prev.node.0.remove(bundle).unwrap_or_default();
            for (index, node) in &of {
                if let Some(at) = node.and_then(|n| self.nodes.of(n.as_str())) {
                    self.capacity.take(bundle, *index, at);
                    self.load.add(at);
                    mine.push(at);
                }
            }
            if !of.is_empty() {
                self.out.node.0.insert(bundle, of);
            }
            for (_, name, short) in of_bundle(&prev.short, bundle) {
                self.out.short.insert(name.clone(), short.clone());
            }
            self.placed_on.insert(bundle, Counts::at(mine));
        }
    }

    /// Whether `bundle` cannot run where the dependents that must join it do not fit: it
    /// is in a colocation cycle with other bundles (they all go where they all fit), or
    /// such a dependent is the `first` of a mandatory order into it (it runs only while
    /// that dependent does, which runs only beside it). Its instances then leave a node
    /// too small for them all, as they would stop there anyway.
    fn needs_joiners(&self, bundle: &str, group: Option<&[&str]>) -> bool {
        let waits_for = |o: &&OrderConstraint| {
            o.kind == OrderKind::Mandatory
                && o.any_of.is_empty()
                && self.capacity.joins(o.first.as_str(), bundle)
        };
        group.is_some_and(|g| g.len() > 1)
            || self.into.get(bundle).into_iter().flatten().any(waits_for)
    }

    fn put(&mut self, b: &mut Bundle<'_, 'a>, index: u32, at: usize) {
        self.capacity.take(b.name, index, at);
        self.load.add(at);
        b.mine.add_one(at);
        self.out
            .node
            .insert(b.name, index, Some(self.nodes.name(at)));
    }

    /// The `first` of a mandatory order that starves `bundle`, when this round can tell
    /// already: every `first` of the order was placed before it (so its count is final),
    /// too few. Finding it now spares the round after, which would start with `bundle`
    /// starved and place everything else as this one does. Not for a bundle whose needs
    /// are counted with a primary placed before it (a round that starts with it starved
    /// counts them no more), nor one starved already.
    fn starved_now(&self, bundle: &str) -> Option<&'a str> {
        if self.starved.contains_key(bundle) {
            return None;
        }
        let placed = |b: &str| self.placed_on.get(b).map(Counts::total);
        self.into
            .get(bundle)?
            .iter()
            .find(|o| super::order::starves(o, placed) == Some(true))
            .map(|o| o.first.as_str())
            .filter(|_| !self.capacity.joins_another(bundle))
    }

    /// The pinned stage: an instance decided before scoring. Returns whether it was.
    fn pinned(&mut self, b: &mut Bundle<'_, 'a>, index: u32) -> bool {
        if self.observed.suspended.covers(b.name) {
            self.suspended(b, index);
            return true;
        }
        let name = || instance_name(b.name, index);
        let copies = b.of(index);
        // Failing its check with `onFail: block`: left alone where it runs, even while
        // it waits for a mandatory `first` (block means neither moved nor stopped).
        if let Some(at) = copies
            .iter()
            .find(|c| c.held(b.spec.monitor.on_fail))
            .and_then(|c| c.at)
        {
            self.put(b, index, at);
            self.held.insert((b.name, index));
            if self.explain {
                let node = self.nodes.name(at).clone();
                self.out.explain.push(select::stays(
                    name(),
                    Some(node.clone()),
                    node,
                    "stays: fails its check, and onFail: block leaves it alone".into(),
                    Score::ZERO,
                ));
            }
            return true;
        }
        // Waiting for the `first` of a mandatory order: no slot, not even for a running
        // copy (it is stopped, as Pacemaker's mandatory order does).
        let waits = self.starved.get(b.name).or(self.out.found.get(b.name));
        if let Some(first) = waits.copied() {
            self.capacity.release(b.name, index);
            if self.explain {
                self.out.explain.push(select::stays(
                    name(),
                    None,
                    Name::from_static("nowhere"),
                    format!("waits for {first} (mandatory order)"),
                    Score::NEG_INFINITY,
                ));
            }
            return true;
        }
        // A single-writer instance that may still run on a lost node that cannot be
        // fenced stays where it is: on the reachable node it runs on (if that node may
        // still host it), or nowhere new (design invariant 1).
        if b.spec.recovery == Recovery::Fence
            && let Some(stay) = self.current.frozen(copies)
        {
            // Where it is not counted from the start of the round, it stays only if the
            // node has room left for it.
            let ran = self.capacity.release(b.name, index);
            let need = self.capacity.need(b.name, index);
            let fits =
                |i: usize| ran == Some(i) || self.capacity.short_for(i, &need, false).is_none();
            let at = self.nodes.of(stay.as_str()).filter(|i| {
                self.usable[*i]
                    && !b.base.at(*i).is_neg_infinity()
                    && b.mine.on(*i) < b.spec.replicas_per_host
                    && fits(*i)
            });
            if let Some(i) = at {
                self.put(b, index, i);
            }
            if self.explain {
                self.out.explain.push(select::stays(
                    name(),
                    at.map(|i| self.nodes.name(i).clone()),
                    stay.clone(),
                    "stays: a copy may still run on a lost node that cannot be fenced".into(),
                    Score::ZERO,
                ));
            }
            return true;
        }
        false
    }

    /// A suspended instance (`quorate suspend`) is placed as observed: where it runs on a
    /// node that answers, else nowhere, whatever the scores say; the bundles placed after
    /// it see it there (a dependent keeps its place). Nothing is decided for it, so the
    /// steps leave it alone (invariants 1 to 4 hold: no step touches it).
    fn suspended(&mut self, b: &mut Bundle<'_, 'a>, index: u32) {
        let runs = b.of(index).iter().find(|c| c.running());
        let at = runs.and_then(|c| c.at);
        if let Some(i) = at {
            self.put(b, index, i);
            self.held.insert((b.name, index));
        }
        if self.explain {
            let node = runs.map_or_else(|| Name::from_static("nowhere"), |c| c.node.clone());
            self.out.explain.push(select::stays(
                instance_name(b.name, index),
                at.map(|i| self.nodes.name(i).clone()),
                node,
                "stays as observed: suspended, not managed".into(),
                Score::ZERO,
            ));
        }
    }

    /// Feasibility, ranking and selection for one instance: the node chosen, if any.
    fn choose(&mut self, b: &Bundle<'_, 'a>, index: u32) -> Option<usize> {
        let name = instance_name(b.name, index);
        let mut own = rank::Own::default();
        feasible::instance_bans(self, b, &name, &mut own);
        rank::stickiness(self, b, index, &mut own);
        // The instance's needs are counted again where it is placed. The node it runs on
        // keeps it even when short of capacity: it runs there already, nothing new starts.
        let ran = self.capacity.release(b.name, index);
        self.load.sync(&mut self.capacity);
        let fit = Fit::new(b, (index, &own), &self.capacity, ran);
        let slot = self.load.floor_slot(fit.floor());
        let load = &self.load;
        let prefer = |i: usize, j: usize| self.capacity.prefer(i, j, load.on());
        // The node the instance ran on keeps it even when full: it is looked at whatever
        // selection leaves out.
        let here = b.home(index);
        let mut touched: Vec<usize> = own.nodes().chain(here).chain(ran).collect();
        touched.sort_unstable();
        touched.dedup();
        let chosen = select::best(
            self.nodes.count(),
            (
                |i| fit.unbanned(i),
                |i| fit.banned(i),
                |i| load.lacks(slot, i),
            ),
            (here, prefer),
            (&b.likely, &b.base, &touched, load),
        );
        self.load.lacked(slot, &fit.lacked());
        if chosen.is_none()
            && let Some(lack) = fit.shortfall(self.nodes)
        {
            self.out.short.insert(name.clone(), lack);
        }
        if self.explain {
            let extra = |i: usize| fit.parts(i);
            let score = |i: usize| fit.score(i);
            let placement =
                select::explained(self.nodes, name, chosen, &b.base, &own, extra, score);
            self.out.explain.push(placement);
        }
        chosen
    }

    /// Makes the colocation cycle `group` whole once its last member is placed (see
    /// [`group::Tally::keep_group_together`]), then places the instances that leaves
    /// nowhere once more, each only where every other member now is, as the next plan
    /// would once they have stopped. Placing more takes no member off a node, so none of
    /// them is alone; the cycle is made whole once more all the same.
    fn keep_group_together(&mut self, group: &[&'a str]) {
        let edges = self.ranker.mandatory_within(group);
        let left = self.tally().keep_group_together(&edges);
        if !left.is_empty() {
            self.place_again(group, &left);
            self.tally().keep_group_together(&edges);
        }
    }

    fn tally(&mut self) -> group::Tally<'_, 'a> {
        group::Tally {
            nodes: self.nodes,
            capacity: &mut self.capacity,
            placed_on: &mut self.placed_on,
            load: &mut self.load,
            out: &mut self.out,
            held: &self.held,
        }
    }

    /// Places the instances of `left` again, each bundle scored as a cycle's later
    /// member is: only where every other member of `group` is.
    fn place_again(&mut self, group: &[&'a str], left: &[(&'a str, u32)]) {
        for &bundle in group {
            let Some(spec) = self.spec.bundles.get(bundle) else {
                continue;
            };
            if !left.iter().any(|(b, _)| *b == bundle) {
                continue;
            }
            let last: Vec<&'a str> = group
                .iter()
                .copied()
                .filter(|m| *m != bundle)
                .chain([bundle])
                .collect();
            let mine = self.placed_on.remove(bundle).unwrap_or_default();
            let base =
                self.ranker
                    .bundle_scores(bundle, Some(&last), &self.placed_on, &self.out.node);
            let (copies, homes) = self.homes(bundle, spec.replicas);
            let mut b = Bundle {
                name: bundle,
                spec,
                likely: select::Likely::of(&base),
                base,
                mine,
                spread: None,
                with_joiners: self.needs_joiners(bundle, Some(group)),
                copies,
                homes,
            };
            for &(_, index) in left.iter().filter(|(b, _)| *b == bundle) {
                let name = instance_name(bundle, index);
                self.out.explain.retain(|p| p.instance != name);
                self.out.short.remove(&name);
                if let Some(at) = self.choose(&b, index) {
                    self.put(&mut b, index, at);
                }
            }
            self.placed_on.insert(bundle, b.mine);
        }
    }
}

/// Whether the pinned stage keeps a `running` instance where it runs whatever else is
/// placed, even while its bundle waits for a mandatory `first` (suspended, or held
/// by `onFail: block`): it is counted there from the start of every round.
///
/// A copy frozen by a lost node that cannot be fenced is not: it stays only where it may
/// (its bundle not waiting, the colocations placed before it allowing the node), and
/// leaves its room to the next round when it does not.
fn stays_put(observed: &Observed, running: &capacity::Running<'_>) -> bool {
    observed.suspended.covers(running.bundle.0) || running.held
}

/// Whether instance `index` of `bundle` failed on `node` at least its migration threshold
/// (failures it counts, younger than its failure timeout): the feasibility filter bans it
/// from there, so it leaves that node whatever else is placed.
fn failed_out(
    spec: &SpecSet,
    observed: &Observed,
    current: &Current<'_>,
    (bundle, index): (&str, u32),
    node: &Name,
) -> bool {
    // Most clusters have no failure on record: nothing to look up per instance.
    if current.failed_on.is_empty() {
        return false;
    }
    let Some(b) = spec.bundles.get(bundle) else {
        return false;
    };
    let settings = b.settings(&spec.cluster.defaults);
    let name = instance_name(bundle, index);
    let recorded = current
        .failed_on
        .get(name.as_str())
        .is_some_and(|on| on.contains(&node));
    recorded
        && b.monitor.on_fail.counts_failures()
        && super::current::live_failures(
            observed,
            node.as_str(),
            &name,
            settings.failure_timeout_secs,
        ) >= settings.migration_threshold
}

/// The entries of `map`, keyed by instance name, of the instances of `bundle`, with
/// their numbers (a name is the bundle's, a dash, a number: `instance_name`).
fn of_bundle<'m, K: Borrow<str> + Ord, V>(
    map: &'m BTreeMap<K, V>,
    bundle: &str,
) -> impl Iterator<Item = (u32, &'m K, &'m V)> {
    let dash = format!("{bundle}-");
    let from = (Bound::Included(dash.as_str()), Bound::Unbounded);
    let range = map.range::<str, _>(from);
    range
        .map_while(move |(name, value)| {
            let digits = Borrow::<str>::borrow(name).strip_prefix(dash.as_str())?;
            Some((digits, name, value))
        })
        .filter_map(|(digits, name, value)| {
            let number = digits.bytes().all(|c| c.is_ascii_digit());
            let index = digits.parse().ok().filter(|_| number)?;
            Some((index, name, value))
        })
}

/// The node an instance with `copies` is on: where it runs, else where its reachable
/// container is.
fn home(copies: &[Copy<'_>]) -> Option<usize> {
    copies
        .iter()
        .find(|c| c.running())
        .or_else(|| {
            copies
                .iter()
                .find(|c| c.whereabouts == Whereabouts::Reachable)
        })
        .and_then(|c| c.at)
}

/// The stage a part of a score comes from, for `--explain`.
fn part(stage: Stage, source: String, score: Score) -> super::model::ScorePart {
    super::model::ScorePart {
        source,
        score,
        stage,
    }
}

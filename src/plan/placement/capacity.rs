//! The capacity filter and the placement strategy (Pacemaker's `placement-strategy`).
//!
//! Under every strategy but `default`, a node takes an instance only when the instance's
//! `needs` fit in what the node has free: its `capacity` minus the needs of the instances
//! counted there. What is counted is kept as instances are placed, never recomputed from
//! the placements: an instance that runs is counted on its node from the start (it keeps
//! its claim, as it does under `replicasPerHost`), and moves its count when it is placed
//! elsewhere or nowhere. An instance keeps the node it runs on even when that node has
//! less free than it needs (the node was given less capacity, the bundle more needs): it
//! is not stopped or moved for capacity alone, and the node takes nothing new until it has
//! room again.
//!
//! The strategy also breaks ties between nodes of equal score (after the node the
//! instance is on): `default` and `utilization` the node with the fewest instances,
//! `balanced` the node with the most free capacity, then the fewest instances; `minimal`
//! none, so the first node by name fills up before the next is used.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::rc::Rc;

use super::feasible::Ban;
use super::rank::DEPENDENT_DEPTH;
use super::{Counts, HashMap, HashSet, Nodes, Positions, Promoted};
use crate::plan::current::{Current, by_index};
use crate::plan::model::{ScorePart, Stage};
use crate::spec::bundle::BundleSpec;
use crate::spec::cluster::PlacementStrategy;
use crate::spec::constraint::{ColocationConstraint, ConstraintSpec};
use crate::spec::{Name, Score, SpecSet};

/// How the placement strategy orders nodes of equal score, then by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ties {
    /// The fewest instances first.
    Fewest,
    /// By name alone.
    Name,
}

/// What one instance needs, from [`Capacity::need`]: its own needs, and with them those
/// of the dependents that must join it, worked out node by node as selection asks.
pub(super) struct Need<'c> {
    /// Its own needs.
    own: &'c [(usize, u64)],
    /// The dependents that must join it (none when no dependent does).
    joining: Vec<Joiner<'c>>,
}

/// A dependent that must join an instance, as [`Capacity::need`] counts it.
struct Joiner<'c> {
    /// What one of its instances needs.
    needs: &'c [(usize, u64)],
    /// How many of its instances are counted on each node that has any.
    counts: &'c Counts,
    /// How many instances of the primary it joins are placed or counted on each node
    /// that has any.
    joined: &'c Counts,
    /// Its instances counted nowhere, less the one that joins the instance placed.
    spare: u32,
}

impl Joiner<'_> {
    /// How many of its instances' needs count on node `at`: none when one of its
    /// instances is free to join there, else one for the instance placed and one for
    /// each instance of the primary there it has not joined yet (as many as it has
    /// instances to spare).
    fn times(&self, at: usize) -> u64 {
        let here = self.counts.on(at);
        let taken = self.joined.on(at);
        if here > taken {
            0
        } else {
            1 + u64::from((taken - here).min(self.spare))
        }
    }
}

impl Need<'_> {
    /// Whether some dependent must join the instance.
    pub(super) fn joins(&self) -> bool {
        !self.joining.is_empty()
    }

    /// Whether some dependent that must join the instance has no instance free to join
    /// it on node `i` (see [`Capacity::need`]).
    pub(super) fn joins_on(&self, i: usize) -> bool {
        self.joining.iter().any(|j| j.times(i) > 0)
    }

    /// How much of quantity `q` it needs on node `i` with the dependents that must join
    /// it there.
    fn on(&self, i: usize, q: usize) -> u64 {
        let of = |needs: &[(usize, u64)]| needs.iter().find(|(k, _)| *k == q).map_or(0, |e| e.1);
        self.joining.iter().fold(of(self.own), |n, j| {
            n.saturating_add(of(j.needs).saturating_mul(j.times(i)))
        })
    }
}

/// The node each counted instance of one bundle is counted on, by instance number. The
/// numbers are below the bundle's replicas (only instances the spec wants are counted),
/// so a vector by number holds them: a bundle has a few, looked up at every instance
/// placed.
#[derive(Debug, Default)]
struct ByIndex {
    /// Per instance number, its node if it is counted.
    at: Vec<Option<usize>>,
    /// How many of `at` are counted: asked for each dependent at every instance placed,
    /// so kept rather than counted each time.
    len: usize,
}

impl ByIndex {
    /// Where instance `index` is counted.
    fn get(&self, index: u32) -> Option<usize> {
        *self.at.get(usize::try_from(index).ok()?)?
    }

    /// Counts instance `index` on node `at` (wherever it was counted before).
    fn insert(&mut self, index: u32, at: usize) {
        let Ok(k) = usize::try_from(index) else {
            return;
        };
        if self.at.len() <= k {
            self.at.resize(k + 1, None);
        }
        if self.at[k].replace(at).is_none() {
            self.len += 1;
        }
    }

    /// Counts instance `index` nowhere; where it was counted.
    fn remove(&mut self, index: u32) -> Option<usize> {
        let was = self.at.get_mut(usize::try_from(index).ok()?)?.take()?;
        self.len -= 1;
        Some(was)
    }

    /// How many instances are counted.
    fn len(&self) -> usize {
        self.len
    }

    /// The counted instances with their nodes, by number.
    fn iter(&self) -> impl Iterator<Item = (u32, usize)> + '_ {
        let numbered = self.at.iter().zip(0u32..);
        numbered.filter_map(|(at, i)| Some((i, (*at)?)))
    }
}

/// What each node has and what is counted on it, by quantity.
pub(super) struct Capacity<'a> {
    /// What every round starts from (see [`Base`]).
    base: Rc<Base<'a>>,
    /// Per node, the needs of the instances counted there.
    used: Vec<Vec<u64>>,
    /// Per bundle, by its number ([`Base::id`]), what is counted of it.
    kept: Vec<Kept>,
    /// No instance anywhere (what a bundle without any counts has).
    none: Counts,
    /// Where the running instances were counted from the start (bundle number, instance
    /// number), in no particular order.
    claimed: Vec<((usize, u32), usize)>,
    /// Per bundle, by number, the bundles placed after it that are colocated with it by
    /// `INFINITY` and need something (its dependents, which must join its instances).
    dependents: Vec<Vec<Dependent>>,
    /// Per bundle, by number, whether it is a dependent of a bundle placed before it.
    joins_another: Vec<bool>,
    /// The nodes whose free capacity changed since [`Capacity::changed`] last said.
    changed: Vec<usize>,
}

/// What is counted of one bundle. Every question capacity answers is about one bundle
/// (and its dependents), so what it asks of that bundle is in one place, found by number:
/// a map per field, keyed by name, cost a hash and a comparison of names for each.
#[derive(Default)]
struct Kept {
    /// How many of its instances are counted on each node that has any.
    on_node: Counts,
    /// The node of each instance placed or counted, by number: where its needs are
    /// counted, and for a bundle that needs nothing where it is placed (its dependents'
    /// needs go with it).
    at_index: ByIndex,
    /// For each of its dependents (in the order of [`Capacity::dependents`]), how many of
    /// its instances that dependent joins (those numbered below its replicas) are placed
    /// or counted on each node.
    joined: Vec<Counts>,
}

/// A dependent of a bundle (see [`Capacity::dependents_of`]).
struct Dependent {
    /// Its number ([`Base::id`]).
    id: usize,
    /// The numbers of the bundle's instances it joins first, where it follows only the
    /// promoted ones and some are known ([`joins_promoted`]), or where it runs beside
    /// some ([`joins_beside`]); sorted.
    first: Vec<u32>,
}

/// What the capacity of every round of a plan starts from, worked out once: the
/// quantities, what each node offers and what each bundle needs. Only what is counted
/// on the nodes differs from round to round.
pub(super) struct Base<'a> {
    strategy: PlacementStrategy,
    /// The quantities some bundle needs, by name; indexes the rows below.
    quantities: Vec<&'a Name>,
    /// Per node, what it offers of each quantity (0 where it does not say).
    total: Vec<Vec<u64>>,
    /// Every bundle's number: its place among the spec's bundles, by name. What is kept
    /// per bundle is in vectors by number.
    ids: HashMap<&'a str, usize>,
    /// Per bundle, by number, its name.
    names: Vec<&'a str>,
    /// Per bundle, by number, what one instance needs: (quantity, amount), amounts above
    /// 0 (none when it needs nothing).
    needs: Vec<Vec<(usize, u64)>>,
    /// Per bundle, by number, its replicas.
    replicas: Vec<u32>,
    /// Per quantity, the least any bundle needs of it (0 where one needs none).
    least: Vec<u64>,
    /// Every running instance the spec wants, of a bundle that needs something or whose
    /// dependents do, with the node it is counted on from the start when it stays there
    /// (see [`Capacity::new`]).
    running: Vec<Running<'a>>,
    /// The `INFINITY` colocations whose bundle is placed after the bundle it is with:
    /// (with, bundle, whether without a role), in the order of the constraints.
    infinity: Vec<(&'a str, &'a str, bool)>,
    /// Per (with, bundle) of an `INFINITY` colocation, whether every such colocation
    /// between them has a role (see [`joins_promoted`]).
    roles_only: HashMap<(&'a str, &'a str), bool>,
}

impl<'a> Base<'a> {
    /// What `spec`'s nodes offer and its bundles need, with the running instances of
    /// `current` and the `INFINITY` colocations by the positions of their bundles (`at`).
    pub(super) fn of(
        spec: &'a SpecSet,
        nodes: &Nodes<'a>,
        current: &Current<'a>,
        at: &Positions<'a>,
    ) -> Rc<Base<'a>> {
        let strategy = spec.cluster.placement_strategy;
        // Extended, which inserts one by one: a handful of names, each named by thousands
        // of bundles (collecting sorts every mention first).
        let mut names: BTreeSet<&'a Name> = BTreeSet::new();
        if strategy.enforces_capacity() {
            names.extend(spec.bundles.values().flat_map(|b| b.needs.keys()));
        }
        let quantities: Vec<&Name> = names.into_iter().collect();
        let row = |c: &BTreeMap<Name, u64>| -> Vec<u64> {
            quantities
                .iter()
                .map(|q| c.get(*q).copied().unwrap_or(0))
                .collect()
        };
        let total: Vec<Vec<u64>> = nodes.specs.iter().map(|n| row(&n.capacity)).collect();
        let names: Vec<&str> = spec.bundles.keys().map(Name::as_str).collect();
        let mut needs = Vec::with_capacity(names.len());
        let mut least: Option<Vec<u64>> = None;
        for b in spec.bundles.values() {
            let all = row(&b.needs);
            let need = all.iter().copied().enumerate().filter(|(_, n)| *n > 0);
            needs.push(need.collect());
            least = Some(match least {
                Some(l) => l.iter().zip(&all).map(|(a, b)| *a.min(b)).collect(),
                None => all,
            });
        }
        let mut base = Base {
            strategy,
            quantities,
            total,
            ids: crate::plan::positions(names.iter().copied()),
            names,
            needs,
            replicas: spec.bundles.values().map(|b| b.replicas).collect(),
            least: least.unwrap_or_default(),
            running: Vec::new(),
            infinity: infinity(spec, at),
            roles_only: roles_only(spec),
        };
        // A bundle that needs nothing counts its running instances too when a dependent
        // that needs something joins them: its dependents' needs go where they run.
        let carries: HashSet<&str> = base
            .infinity
            .iter()
            .filter(|(_, dependent, _)| base.needs_something(dependent))
            .map(|(with, _, _)| *with)
            .collect();
        base.running = running(spec, current, |b| {
            base.needs_something(b) || carries.contains(b)
        });
        Rc::new(base)
    }

    /// The number of `bundle`, if the spec has it.
    fn id(&self, bundle: &str) -> Option<usize> {
        self.ids.get(bundle).copied()
    }

    /// What one instance of bundle number `id` needs.
    fn needs_at(&self, id: usize) -> &[(usize, u64)] {
        self.needs.get(id).map_or(&[][..], Vec::as_slice)
    }

    /// Whether an instance of `bundle` needs anything.
    fn needs_something(&self, bundle: &str) -> bool {
        self.id(bundle)
            .is_some_and(|id| !self.needs_at(id).is_empty())
    }

    /// The replicas of bundle number `id` when it needs something: only such a bundle
    /// joins the instances of the bundle it depends on.
    fn joining_replicas(&self, id: usize) -> Option<u32> {
        let replicas = self.replicas.get(id).copied();
        replicas.filter(|_| !self.needs_at(id).is_empty())
    }
}

/// A running instance the spec wants, and where it is counted from the start of a round
/// in which it stays there.
pub(super) struct Running<'a> {
    /// Its bundle, by name and spec.
    pub(super) bundle: (&'a str, &'a BundleSpec),
    /// Its bundle's number ([`Base::id`]).
    id: usize,
    /// Its number.
    pub(super) index: u32,
    /// The node it is counted on.
    pub(super) at: usize,
    /// Whether `onFail: block` holds one of its copies (it stays whatever else is
    /// placed).
    pub(super) held: bool,
}

/// The running instances `spec` wants of the bundles `counted` (those that need something
/// or carry a dependent's needs), each on the node it is counted on: that of the copy
/// `onFail: block` holds, whichever runs first, else that of the copy that runs.
fn running<'a>(
    spec: &'a SpecSet,
    current: &Current<'a>,
    counted: impl Fn(&str) -> bool,
) -> Vec<Running<'a>> {
    let mut running = Vec::new();
    // A bundle's number is its place among the spec's bundles ([`Base::ids`]).
    for (id, (bundle, b)) in spec.bundles.iter().enumerate() {
        let bundle = bundle.as_str();
        if !counted(bundle) {
            continue;
        }
        let on_fail = b.monitor.on_fail;
        let wanted = by_index(current.all_of(bundle)).take_while(|(index, _)| *index < b.replicas);
        for (index, copies) in wanted {
            let held = copies.iter().find(|c| c.held(on_fail));
            let copy = held.or_else(|| copies.iter().find(|c| c.running()));
            if let Some(at) = copy.and_then(|c| c.at) {
                running.push(Running {
                    bundle: (bundle, b),
                    id,
                    index,
                    at,
                    held: held.is_some(),
                });
            }
        }
    }
    running
}

/// The `INFINITY` colocations whose bundle is placed after the bundle it is with (by
/// `at`): (with, bundle, whether without a role).
fn infinity<'a>(spec: &'a SpecSet, at: &Positions<'a>) -> Vec<(&'a str, &'a str, bool)> {
    infinity_colocations(spec)
        .filter(|c| {
            let (with, bundle) = (at.get(c.with.as_str()), at.get(c.bundle.as_str()));
            matches!((with, bundle), (Some(w), Some(b)) if w < b)
        })
        .map(|c| (c.with.as_str(), c.bundle.as_str(), c.role.is_none()))
        .collect()
}

/// Per pair of bundles colocated by `INFINITY` (with, bundle), whether every such
/// colocation between them has a role.
fn roles_only(spec: &SpecSet) -> HashMap<(&str, &str), bool> {
    let mut only: HashMap<(&str, &str), bool> = HashMap::default();
    for c in infinity_colocations(spec) {
        *only
            .entry((c.with.as_str(), c.bundle.as_str()))
            .or_insert(true) &= c.role.is_some();
    }
    only
}

/// Every colocation of score `INFINITY`.
pub(super) fn infinity_colocations(spec: &SpecSet) -> impl Iterator<Item = &ColocationConstraint> {
    spec.constraints.values().filter_map(|c| match c {
        ConstraintSpec::Colocation(c) if c.score.is_infinity() => Some(&**c),
        _ => None,
    })
}

/// Per (bundle, dependent), the numbers of the bundle's instances the dependent joins
/// first (see [`joins_promoted`] and [`joins_beside`]).
type JoinsFirst<'a> = HashMap<(&'a str, &'a str), Vec<u32>>;

impl<'a> Capacity<'a> {
    /// The capacity of `spec`'s nodes, with every running instance counted on its node
    /// when it `stays` there unless placed elsewhere (not when its bundle is `starved`,
    /// the node is unavailable, or the instance failed there too often).
    pub(super) fn new(
        (spec, base, current): (&'a SpecSet, &Rc<Base<'a>>, &Current<'a>),
        (starved, promoted): (&BTreeMap<&'a str, &'a str>, Option<&Promoted>),
        stays: impl Fn(&Running<'a>) -> bool,
    ) -> Capacity<'a> {
        let bundles = base.names.len();
        let mut c = Capacity {
            base: Rc::clone(base),
            used: vec![vec![0; base.quantities.len()]; base.total.len()],
            kept: std::iter::repeat_with(Kept::default)
                .take(bundles)
                .collect(),
            none: Counts::default(),
            claimed: Vec::new(),
            dependents: Vec::new(),
            joins_another: vec![false; bundles],
            changed: Vec::new(),
        };
        let dependents = c.dependents_of(starved);
        let mut first = joins_promoted(spec, current, &dependents, &base.roles_only, promoted);
        // Every running instance the spec wants, counted on the node it runs on if it
        // `stays` there unless placed elsewhere (counting one that leaves whatever else
        // is placed would keep an instance placed before it from the room it leaves).
        let staying: Vec<&Running<'a>> = base.running.iter().filter(|r| stays(r)).collect();
        joins_beside(&mut first, (spec, base), &dependents, &staying);
        c.dependents = c.numbered(dependents, first);
        for r in &staying {
            c.take_at(r.id, r.index, r.at);
        }
        let counted = c.kept.iter().zip(0..).flat_map(|(k, id)| {
            let at = k.at_index.iter();
            at.map(move |(i, at)| ((id, i), at))
        });
        c.claimed = counted.collect();
        c
    }

    /// `dependents` by name, with the instances each joins `first`, by bundle number;
    /// marks each dependent in `joins_another`.
    fn numbered(
        &mut self,
        dependents: HashMap<&'a str, Vec<&'a str>>,
        mut first: JoinsFirst<'a>,
    ) -> Vec<Vec<Dependent>> {
        let mut numbered: Vec<Vec<Dependent>> = std::iter::repeat_with(Vec::new)
            .take(self.kept.len())
            .collect();
        for (bundle, ds) in dependents {
            let Some(theirs) = self.base.id(bundle).and_then(|id| numbered.get_mut(id)) else {
                continue;
            };
            for d in ds {
                let Some(id) = self.base.id(d) else {
                    continue;
                };
                if let Some(flag) = self.joins_another.get_mut(id) {
                    *flag = true;
                }
                let first = first.remove(&(bundle, d)).unwrap_or_default();
                theirs.push(Dependent { id, first });
            }
        }
        numbered
    }

    /// The running instances counted on their node from the start that are now counted
    /// elsewhere or nowhere.
    pub(super) fn left(&self) -> BTreeSet<(&'a str, u32)> {
        let moved = |&((id, i), at): &((usize, u32), usize)| {
            let now = self.kept.get(id).and_then(|k| k.at_index.get(i));
            if now == Some(at) {
                return None;
            }
            Some((*self.base.names.get(id)?, i))
        };
        self.claimed.iter().filter_map(moved).collect()
    }

    /// Each bundle's dependents: bundles placed after it (by `order`) with an `INFINITY`
    /// colocation on it (with a role or not: they join its promoted instances, which
    /// must have room for them), that need something and are not starved; each once,
    /// however many such colocations it has. Down a chain of `INFINITY` colocations
    /// without a role, the dependents of a dependent join too, as they go where it goes
    /// (Pacemaker adds the utilization of every resource colocated with the primary by
    /// `INFINITY`, however far down): at most [`DEPENDENT_DEPTH`] of them below the
    /// first level (see [`chain_below`]), so a long or wide chain costs no more.
    fn dependents_of(
        &self,
        starved: &BTreeMap<&'a str, &'a str>,
    ) -> HashMap<&'a str, Vec<&'a str>> {
        // The INFINITY colocations that count, and of them those without a role (a chain).
        let mut dependents: HashMap<&'a str, Vec<&'a str>> = HashMap::default();
        let mut plain: HashMap<&'a str, Vec<&'a str>> = HashMap::default();
        for &(with, bundle, without_role) in &self.base.infinity {
            if !starved.contains_key(bundle) {
                dependents.entry(with).or_default().push(bundle);
                if without_role {
                    plain.entry(with).or_default().push(bundle);
                }
            }
        }
        for (with, theirs) in &mut dependents {
            let below = chain_below(&plain, with);
            let mut seen: HashSet<&str> = HashSet::default();
            theirs.extend(below);
            theirs.retain(|d| self.base.needs_something(d) && seen.insert(d));
        }
        dependents.retain(|_, ds| !ds.is_empty());
        dependents
    }

    /// Whether `dependent` must join the instances of `bundle` (its needs are counted
    /// with theirs).
    pub(super) fn joins(&self, dependent: &str, bundle: &str) -> bool {
        let (Some(bundle), Some(dependent)) = (self.base.id(bundle), self.base.id(dependent))
        else {
            return false;
        };
        let theirs = self.dependents.get(bundle);
        theirs.is_some_and(|ds| ds.iter().any(|d| d.id == dependent))
    }

    /// Whether `bundle` is a dependent that must join the instances of a bundle placed
    /// before it (its needs are counted with theirs).
    pub(super) fn joins_another(&self, bundle: &str) -> bool {
        let id = self.base.id(bundle);
        id.is_some_and(|id| self.joins_another.get(id) == Some(&true))
    }

    /// What instance `index` of `bundle` needs on a node (selection asks node by node):
    /// its own needs, and with them those of its dependents that must join it (Pacemaker
    /// adds the utilization of colocated resources when it places their primary): one
    /// instance of each dependent that has as many instances as `index + 1`. On a node
    /// where `bundle` has instances that such a dependent joins (placed so far or counted
    /// from the start, numbered below the dependent's replicas), pairs go by node, not by
    /// instance number, as a cycle is kept together: where the dependent has more
    /// instances counted than those, one of them is free to join this one and nothing
    /// more is needed for it; where it has fewer, the instances of `bundle` it has not
    /// joined yet are joined later, so their dependents' needs are added as well (as many
    /// as the dependent has instances not yet counted).
    pub(super) fn need(&self, bundle: &str, index: u32) -> Need<'_> {
        let Some(id) = self.base.id(bundle) else {
            return Need {
                own: &[],
                joining: Vec::new(),
            };
        };
        let joined = self.kept.get(id).map_or(&[][..], |k| k.joined.as_slice());
        let joining = self
            .dependents
            .get(id)
            .into_iter()
            .flatten()
            .enumerate()
            .filter_map(|(k, d)| {
                let replicas = self.base.joining_replicas(d.id);
                let replicas = replicas.filter(|r| joins_instance(&d.first, *r, index))?;
                let theirs = self.kept.get(d.id)?;
                let counted = u32::try_from(theirs.at_index.len()).unwrap_or(u32::MAX);
                Some(Joiner {
                    needs: self.base.needs_at(d.id),
                    counts: &theirs.on_node,
                    joined: joined.get(k).unwrap_or(&self.none),
                    spare: replicas.saturating_sub(counted).saturating_sub(1),
                })
            })
            .collect();
        Need {
            own: self.base.needs_at(id),
            joining,
        }
    }

    /// Whether every dependent that must join instance `index` of `bundle`, counted on
    /// node `at` (where the instance is counted), has as many instances counted there as
    /// it joins of `bundle`'s: nothing more is needed for them there.
    pub(super) fn joined_at(&self, bundle: &str, index: u32, at: usize) -> bool {
        let count = |on: &Counts| on.on(at);
        let need = self.need(bundle, index);
        need.joining
            .iter()
            .all(|j| count(j.counts) >= count(j.joined))
    }

    /// The first quantity `need` has more of than node `i` has free: with the dependents
    /// that must join it when `joined` (and some do on `i`), else its own needs alone.
    pub(super) fn short_for(&self, i: usize, need: &Need<'_>, joined: bool) -> Option<Ban<'a>> {
        if !(joined && need.joins_on(i) && self.enforced()) {
            return self.short_of(i, need.own, false);
        }
        (0..self.base.quantities.len()).find_map(|q| {
            let n = need.on(i, q);
            (n > self.free(i, q)).then(|| self.ban(i, q, n, true))
        })
    }

    /// What instance `need` needs at least on a node: its own needs; with `joins` (a
    /// node where its dependents' needs count, see [`Capacity::short_for`]) also one
    /// instance of each dependent that must join it, when none of theirs is counted
    /// anywhere yet, so that each counts once or more on every node ([`Joiner::times`]).
    /// A node without this much free is short for the instance (the cheap question
    /// selection asks first).
    pub(super) fn floor(&self, need: &Need<'_>, joins: bool) -> Vec<u64> {
        let mut size = vec![0u64; self.base.quantities.len()];
        let joined = joins && need.joining.iter().all(|j| j.counts.is_empty());
        let theirs = need.joining.iter().filter(|_| joined).map(|j| j.needs);
        for needs in std::iter::once(need.own).chain(theirs) {
            for (q, n) in needs {
                size[*q] = size[*q].saturating_add(*n);
            }
        }
        size
    }

    /// Whether node `i` has too little free for what any bundle needs of its own (then
    /// it has too little for every instance's [`Capacity::floor`]).
    pub(super) fn full(&self, i: usize) -> bool {
        !self.has_room(i, &self.base.least)
    }

    /// Whether node `i` has at least `size` free of every quantity (an instance needing
    /// more than it has free of one is banned there).
    pub(super) fn has_room(&self, i: usize, size: &[u64]) -> bool {
        !self.enforced() || size.iter().enumerate().all(|(q, n)| *n <= self.free(i, q))
    }

    /// The nodes whose free capacity changed since this was last asked (some more than
    /// once).
    pub(super) fn changed(&mut self) -> Vec<usize> {
        std::mem::take(&mut self.changed)
    }

    /// Whether capacity limits placement at all.
    pub(super) fn enforced(&self) -> bool {
        self.base.strategy.enforces_capacity()
    }

    /// Whether instance `index` of `bundle` is counted on some node.
    pub(super) fn counts(&self, bundle: &str, index: u32) -> bool {
        let Some(id) = self.base.id(bundle) else {
            return false;
        };
        !self.base.needs_at(id).is_empty()
            && self
                .kept
                .get(id)
                .is_some_and(|k| k.at_index.get(index).is_some())
    }

    /// Counts instance `index` of `bundle` on node `at` (moving its count there).
    pub(super) fn take(&mut self, bundle: &'a str, index: u32, at: usize) {
        if let Some(id) = self.base.id(bundle) {
            self.take_at(id, index, at);
        }
    }

    /// Counts instance `index` of bundle number `id` on node `at` (moving its count
    /// there).
    fn take_at(&mut self, id: usize, index: u32, at: usize) {
        if at >= self.used.len() {
            self.release_at(id, index);
            return;
        }
        let Some(kept) = self.kept.get_mut(id) else {
            return;
        };
        let was = kept.at_index.remove(index);
        kept.at_index.insert(index, at);
        if let Some(was) = was {
            self.uncount(id, index, was);
        }
        self.pair(id, index, at, true);
        let need = self.base.needs_at(id);
        if need.is_empty() {
            return;
        }
        if let Some(row) = self.used.get_mut(at) {
            for (q, n) in need {
                row[*q] = row[*q].saturating_add(*n);
            }
            self.changed.push(at);
            if let Some(kept) = self.kept.get_mut(id) {
                kept.on_node.add_one(at);
            }
        }
    }

    /// Counts instance `index` of bundle number `id` on node `at` (`add`), or no longer,
    /// among the instances each of its dependents joins there (those numbered below its
    /// replicas).
    fn pair(&mut self, id: usize, index: u32, at: usize, add: bool) {
        let Some(dependents) = self.dependents.get(id).filter(|ds| !ds.is_empty()) else {
            return;
        };
        let Some(kept) = self.kept.get_mut(id) else {
            return;
        };
        kept.joined.resize_with(dependents.len(), Counts::default);
        for (d, on) in dependents.iter().zip(kept.joined.iter_mut()) {
            let replicas = self.base.joining_replicas(d.id);
            if !replicas.is_some_and(|r| joins_instance(&d.first, r, index)) {
                continue;
            }
            if add {
                on.add_one(at);
            } else {
                on.remove_one(at);
            }
        }
    }

    /// Counts the instance nowhere; returns the node its needs were counted on.
    pub(super) fn release(&mut self, bundle: &'a str, index: u32) -> Option<usize> {
        self.release_at(self.base.id(bundle)?, index)
    }

    /// Counts instance `index` of bundle number `id` nowhere; returns the node its needs
    /// were counted on.
    fn release_at(&mut self, id: usize, index: u32) -> Option<usize> {
        let at = self.kept.get_mut(id)?.at_index.remove(index)?;
        self.uncount(id, index, at).then_some(at)
    }

    /// Takes instance `index` of bundle number `id`, no longer numbered among those
    /// counted, off the counts of node `at`; whether its bundle's needs were counted
    /// there.
    fn uncount(&mut self, id: usize, index: u32, at: usize) -> bool {
        self.pair(id, index, at, false);
        let need = self.base.needs_at(id);
        if need.is_empty() {
            return false;
        }
        if let Some(kept) = self.kept.get_mut(id) {
            kept.on_node.remove_one(at);
        }
        if let Some(row) = self.used.get_mut(at) {
            for (q, n) in need {
                row[*q] = row[*q].saturating_sub(*n);
            }
            self.changed.push(at);
        }
        true
    }

    /// What node `i` has free of quantity `q`.
    fn free(&self, i: usize, q: usize) -> u64 {
        self.base.total[i][q].saturating_sub(self.used[i][q])
    }

    /// The first quantity of `need` node `i` has too little free of; `joined` when `need`
    /// counts the dependents that must join the instance.
    fn short_of(&self, i: usize, need: &[(usize, u64)], joined: bool) -> Option<Ban<'a>> {
        if !self.enforced() {
            return None;
        }
        need.iter()
            .find(|(q, n)| *n > self.free(i, *q))
            .map(|(q, n)| self.ban(i, *q, *n, joined))
    }

    /// What keeps an instance needing `needed` of quantity `q` off node `i`.
    fn ban(&self, i: usize, q: usize, needed: u64, joined: bool) -> Ban<'a> {
        Ban::Capacity {
            quantity: self.base.quantities[q].as_str(),
            needed,
            free: self.free(i, q),
            total: self.base.total[i][q],
            joined,
        }
    }

    /// The order [`Capacity::prefer`] puts nodes in where one key per node gives it:
    /// none under `balanced`, which compares what two nodes have free.
    pub(super) fn ties(&self) -> Option<Ties> {
        match self.base.strategy {
            PlacementStrategy::Default | PlacementStrategy::Utilization => Some(Ties::Fewest),
            PlacementStrategy::Balanced => None,
            PlacementStrategy::Minimal => Some(Ties::Name),
        }
    }

    /// How the strategy orders two nodes of equal score: `Greater` when node `i` is to be
    /// preferred to node `j`. `load` is the instances placed per node.
    pub(super) fn prefer(&self, i: usize, j: usize, load: &[usize]) -> Ordering {
        let fewer = || Reverse(load[i]).cmp(&Reverse(load[j]));
        match self.base.strategy {
            PlacementStrategy::Default | PlacementStrategy::Utilization => fewer(),
            PlacementStrategy::Balanced => self.more_free(i, j).then_with(fewer),
            PlacementStrategy::Minimal => Ordering::Equal,
        }
    }

    /// Pacemaker's comparison of free capacity: the node with more free in more of the
    /// quantities has more (`Greater` for node `i`).
    fn more_free(&self, i: usize, j: usize) -> Ordering {
        let mut balance: i64 = 0;
        for q in 0..self.base.quantities.len() {
            balance += match self.free(i, q).cmp(&self.free(j, q)) {
                Ordering::Greater => 1,
                Ordering::Less => -1,
                Ordering::Equal => 0,
            };
        }
        balance.cmp(&0)
    }

    /// The strategy's part on node `i` for `--explain` (none under `default`): what the
    /// node has free, and how the strategy breaks ties.
    pub(super) fn part(&self, i: usize) -> Option<ScorePart> {
        let rule = match self.base.strategy {
            PlacementStrategy::Default => return None,
            PlacementStrategy::Utilization => "ties go to the fewest instances",
            PlacementStrategy::Balanced => "ties go to the most free capacity",
            PlacementStrategy::Minimal => "ties go to the first node by name",
        };
        let free: Vec<String> = (0..self.base.quantities.len())
            .map(|q| {
                let (name, total) = (self.base.quantities[q], self.base.total[i][q]);
                format!("{name} {} of {total}", self.free(i, q))
            })
            .collect();
        let free = if free.is_empty() {
            "nothing needed".to_owned()
        } else {
            free.join(", ")
        };
        Some(super::part(
            Stage::Strategy,
            format!("{}: free {free}; {rule}", self.base.strategy.as_str()),
            Score::ZERO,
        ))
    }
}

/// Whether a dependent with `r` replicas joins instance `index` of its bundle: as many
/// instances as it has replicas, first those it joins first (`numbers`, sorted: the
/// promoted ones it follows, when it follows only those, or those it runs beside), then
/// the others by number.
fn joins_instance(numbers: &[u32], r: u32, index: u32) -> bool {
    if numbers.binary_search(&index).is_ok() {
        return true;
    }
    // Its place among the instances not joined first, and the joins those have left.
    let below = u32::try_from(numbers.partition_point(|n| *n < index)).unwrap_or(u32::MAX);
    let left = u32::try_from(numbers.len()).map_or(0, |n| r.saturating_sub(n));
    index.saturating_sub(below) < left
}

/// For each of `dependents` tied to its bundle by colocations with `role: promoted` only
/// (`roles_only`), the numbers of the bundle's promoted instances: those the round of
/// planning before promoted (`promoted`, once it has the bundle's entry), else those
/// within the bundle's replicas that report themselves promoted now (which promotion
/// keeps first), if any, by number and no more than the dependent has replicas (see
/// [`joins_instance`]).
fn joins_promoted<'a>(
    spec: &'a SpecSet,
    current: &Current<'a>,
    dependents: &HashMap<&'a str, Vec<&'a str>>,
    roles_only: &HashMap<(&'a str, &'a str), bool>,
    promoted: Option<&Promoted>,
) -> JoinsFirst<'a> {
    let mut joins = HashMap::default();
    for (bundle, ds) in dependents {
        let mut numbers: Vec<u32> = match promoted.and_then(|p| p.get(*bundle)) {
            Some(chosen) => chosen.iter().map(|(i, _)| *i).collect(),
            None => {
                // A copy over the bundle's replicas stops in this plan: promoted or not,
                // no dependent joins it.
                let replicas = spec.bundles.get(*bundle).map_or(0, |b| b.replicas);
                crate::plan::promotion::reported(current, bundle)
                    .into_iter()
                    .map(|(i, _)| i)
                    .filter(|i| *i < replicas)
                    .collect()
            }
        };
        numbers.sort_unstable();
        numbers.dedup();
        if numbers.is_empty() {
            continue;
        }
        for d in ds
            .iter()
            .filter(|d| roles_only.get(&(*bundle, **d)) == Some(&true))
        {
            let replicas = spec.bundles.get(*d).map_or(0, |b| b.replicas);
            let first = numbers
                .iter()
                .take(usize::try_from(replicas).unwrap_or(usize::MAX));
            joins.insert((*bundle, *d), first.copied().collect());
        }
    }
    joins
}

/// For each of `dependents` that follows every instance of its bundle (not only the
/// promoted ones), the numbers of the bundle's instances that `staying` (the running
/// instances counted where they run) has beside one of the dependent's: pairs go by
/// node, and a dependent that runs beside some instances joins those first, as the next
/// plan would find it, instead of the instances with the lowest numbers, which may run
/// where it has no room. A dependent none of whose instances stays joins first the
/// staying instances on nodes with room left for it ([`with_room`]), where it will go.
fn joins_beside<'a>(
    joins: &mut JoinsFirst<'a>,
    (spec, base): (&SpecSet, &Base<'a>),
    dependents: &HashMap<&'a str, Vec<&'a str>>,
    staying: &[&Running<'a>],
) {
    // Only the instances of bundles with dependents, and of those dependents, are
    // paired: at thousands of bundles most have neither. By number: a staying instance
    // is asked without reading its bundle's name.
    let mut paired = vec![false; base.names.len()];
    let named = dependents
        .iter()
        .flat_map(|(b, ds)| std::iter::once(b).chain(ds));
    for b in named {
        if let Some(p) = base.id(b).and_then(|id| paired.get_mut(id)) {
            *p = true;
        }
    }
    let mut on: HashMap<&str, BTreeMap<usize, Vec<u32>>> = HashMap::default();
    for r in staying.iter().filter(|r| paired.get(r.id) == Some(&true)) {
        on.entry(r.bundle.0)
            .or_default()
            .entry(r.at)
            .or_default()
            .push(r.index);
    }
    let mut free: Option<Vec<Vec<u64>>> = None;
    for (bundle, ds) in dependents {
        let Some(mine) = on.get(bundle) else {
            continue;
        };
        for d in ds {
            if base.roles_only.get(&(*bundle, *d)) == Some(&true) {
                continue;
            }
            let replicas = spec.bundles.get(*d).map_or(0, |b| b.replicas);
            let replicas = usize::try_from(replicas).unwrap_or(usize::MAX);
            let mut numbers: Vec<u32> = match on.get(d) {
                Some(theirs) => mine
                    .iter()
                    .flat_map(|(at, indices)| {
                        let beside = theirs.get(at).map_or(0, Vec::len);
                        indices.iter().take(beside).copied()
                    })
                    .collect(),
                None => {
                    let free = free.get_or_insert_with(|| free_after(base, staying));
                    let needs = base.id(d).map_or(&[][..], |id| base.needs_at(id));
                    with_room(mine, needs, free, replicas)
                }
            };
            numbers.sort_unstable();
            numbers.truncate(replicas);
            if !numbers.is_empty() {
                joins.insert((*bundle, *d), numbers);
            }
        }
    }
}

/// What each node has free of each quantity once `staying` is counted.
fn free_after(base: &Base<'_>, staying: &[&Running<'_>]) -> Vec<Vec<u64>> {
    let mut free = base.total.clone();
    for r in staying {
        let Some(row) = free.get_mut(r.at) else {
            continue;
        };
        for (q, n) in base.needs_at(r.id) {
            row[*q] = row[*q].saturating_sub(*n);
        }
    }
    free
}

/// Of a bundle's staying instances (`mine`, by node), by number, up to `most` of those
/// on a node with room left (`free`) for one more instance needing `needs` each.
fn with_room(
    mine: &BTreeMap<usize, Vec<u32>>,
    needs: &[(usize, u64)],
    free: &[Vec<u64>],
    most: usize,
) -> Vec<u32> {
    let mut all: Vec<(u32, usize)> = mine
        .iter()
        .flat_map(|(at, indices)| indices.iter().map(move |i| (*i, *at)))
        .collect();
    all.sort_unstable();
    let mut taken: BTreeMap<usize, u64> = BTreeMap::new();
    let mut chosen = Vec::new();
    for (index, at) in all {
        let times = taken.get(&at).copied().unwrap_or(0) + 1;
        let fits = free.get(at).is_some_and(|row| {
            needs
                .iter()
                .all(|(q, n)| n.saturating_mul(times) <= row[*q])
        });
        if fits && chosen.len() < most {
            taken.insert(at, times);
            chosen.push(index);
        }
    }
    chosen
}

/// The bundles two or more colocations below `top` along `plain` (bundle -> its
/// dependents), breadth first, each once: at most [`DEPENDENT_DEPTH`] of them, so that
/// however the colocations are drawn each bundle adds no more than that.
fn chain_below<'a>(plain: &HashMap<&'a str, Vec<&'a str>>, top: &'a str) -> Vec<&'a str> {
    let mut seen: HashSet<&str> = HashSet::from_iter([top]);
    let first = plain.get(top).map_or(&[][..], Vec::as_slice);
    seen.extend(first.iter().copied());
    let mut found: Vec<&'a str> = Vec::new();
    let mut at = 0;
    let mut level: Vec<&'a str> = first.to_vec();
    while found.len() < DEPENDENT_DEPTH {
        let Some(&b) = level.get(at) else {
            break;
        };
        at += 1;
        for &d in plain.get(b).into_iter().flatten() {
            if found.len() == DEPENDENT_DEPTH {
                break;
            }
            if seen.insert(d) {
                found.push(d);
                level.push(d);
            }
        }
    }
    found
}

/// Most nodes a blocked reason names.
const LISTED: usize = 5;

/// Why an instance fits on no node that would otherwise take it: each such node with the
/// first quantity it has too little of (the nodes with most free first, at most
/// [`LISTED`]), and how many more there are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shortfall {
    /// (node, quantity, needed, free, total), by quantity and most free first.
    pub nodes: Vec<(Name, String, u64, u64, u64)>,
    /// Nodes left out of the list.
    pub more: usize,
}

impl Shortfall {
    /// The shortfall from every node's ban, if every node was banned for capacity.
    pub(super) fn of(nodes: &Nodes<'_>, bans: Vec<(usize, Ban<'_>)>) -> Option<Shortfall> {
        let mut lacks: Vec<(Name, String, u64, u64, u64)> = bans
            .into_iter()
            .filter_map(|(i, ban)| match ban {
                Ban::Capacity {
                    quantity,
                    needed,
                    free,
                    total,
                    ..
                } => Some((
                    nodes.name(i).clone(),
                    quantity.to_owned(),
                    needed,
                    free,
                    total,
                )),
                _ => None,
            })
            .collect();
        if lacks.is_empty() {
            return None;
        }
        lacks.sort_by(|a, b| a.1.cmp(&b.1).then(b.3.cmp(&a.3)).then(a.0.cmp(&b.0)));
        let more = lacks.len().saturating_sub(LISTED);
        lacks.truncate(LISTED);
        Some(Shortfall { nodes: lacks, more })
    }
}

impl fmt::Display for Shortfall {
    /// `no node has 4096 memory free (n1 1024 of 32768, n2 0 of 16384)`, one clause per
    /// quantity and amount.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        let mut i = 0;
        while let Some((_, quantity, needed, _, _)) = self.nodes.get(i) {
            let same: Vec<String> = self.nodes[i..]
                .iter()
                .take_while(|l| l.1 == *quantity && l.2 == *needed)
                .map(|(node, _, _, free, total)| format!("{node} {free} of {total}"))
                .collect();
            let sep = if first { "" } else { "; " };
            write!(
                f,
                "{sep}no node has {needed} {quantity} free ({})",
                same.join(", ")
            )?;
            first = false;
            i += same.len();
        }
        if self.more > 0 {
            let s = if self.more == 1 { "" } else { "s" };
            write!(f, " and {} more node{s}", self.more)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph<'a>(edges: &[(&'a str, &'a str)]) -> HashMap<&'a str, Vec<&'a str>> {
        let mut plain: HashMap<&str, Vec<&str>> = HashMap::default();
        for (with, bundle) in edges {
            plain.entry(*with).or_default().push(*bundle);
        }
        plain
    }

    #[test]
    fn the_chain_below_leaves_out_the_first_level_and_repeats() {
        // a <- b <- c <- d, and a <- e <- c: below a, two levels down and more.
        let plain = graph(&[("a", "b"), ("b", "c"), ("c", "d"), ("a", "e"), ("e", "c")]);
        assert_eq!(chain_below(&plain, "a"), ["c", "d"]);
        assert_eq!(chain_below(&plain, "b"), ["d"]);
        assert!(chain_below(&plain, "d").is_empty());
    }

    #[test]
    fn the_chain_below_stops_at_its_depth_however_long_or_wide() {
        let names: Vec<String> = (0..1000).map(|i| format!("b{i}")).collect();
        let chain: Vec<(&str, &str)> = names
            .windows(2)
            .map(|w| (w[0].as_str(), w[1].as_str()))
            .collect();
        let below = chain_below(&graph(&chain), "b0");
        assert_eq!(below.len(), DEPENDENT_DEPTH);
        assert_eq!(below.first().copied(), Some("b2"));
        // One dependent with a thousand of its own.
        let mut star = vec![("top", "mid")];
        star.extend(names.iter().map(|n| ("mid", n.as_str())));
        assert_eq!(chain_below(&graph(&star), "top").len(), DEPENDENT_DEPTH);
    }
}

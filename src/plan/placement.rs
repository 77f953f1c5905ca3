//! Placement: which node each instance should run on, by Pacemaker-style scores.
//!
//! Bundles are placed one after another: those others are colocated with first, then by
//! priority ([`colocation::order`]; the members of a cycle of `INFINITY` colocations are
//! placed as one group). Each instance gets the node with the highest score, where a
//! score adds up location constraints, colocations with bundles already placed,
//! stickiness to the node it runs on, and `-INFINITY` for nodes it failed on too often,
//! that are full, or that are unavailable. Ties go to the node with fewer instances, then
//! to the first name, so the result is deterministic and spreads load.
//!
//! Scores that are the same for every instance of a bundle are computed once per bundle,
//! and rule matches once per distinct rule, so a thousand nodes and ten thousand
//! instances place quickly. Once a new instance of a bundle fits nowhere, none after it
//! does (nothing was placed in between, and a new instance's own scores only exclude
//! nodes), so the rest are not scored, and an instance placed nowhere has no entry:
//! placement costs in proportion to what can be placed, not to the replicas asked for.

use std::collections::{BTreeMap, BTreeSet};

use super::colocation;
use super::current::{Current, Whereabouts, live_failures};
use super::model::{Candidate, Placement, ScorePart};
use crate::observed::Observed;
use crate::spec::bundle::{Recovery, instance_name};
use crate::spec::constraint::{ColocationConstraint, ConstraintSpec, Rule};
use crate::spec::{Name, Score, SpecSet};

/// The outcome of placement.
pub struct Placed<'a> {
    /// The chosen node per (bundle, index); an instance no node is allowed for has no
    /// entry (or `None`).
    pub node: BTreeMap<(&'a str, u32), Option<&'a Name>>,
    /// The scores behind each decision (only when asked for).
    pub explain: Vec<Placement>,
    /// Bundles that place no new instance because the `first` of a mandatory order into
    /// them runs nowhere, with that `first`.
    pub starved: BTreeMap<&'a str, &'a str>,
}

/// The nodes, in name order, addressed by index.
struct Nodes<'a> {
    names: Vec<&'a Name>,
    attributes: Vec<&'a BTreeMap<String, String>>,
    index: BTreeMap<&'a str, usize>,
}

/// Places every instance of every bundle of `spec`; with `explain`, records every
/// candidate's score and what it is made of.
pub fn place<'a>(
    spec: &'a SpecSet,
    observed: &Observed,
    current: &Current<'a>,
    explain: bool,
) -> Placed<'a> {
    // A bundle whose mandatory `first` runs nowhere places no new instances; finding
    // out can starve another bundle in turn, so repeat until nothing changes. A bundle
    // found starved stays starved for this plan: starving one can let its `first` run
    // again (a `-INFINITY` colocation between them), and forgetting it then would go
    // round for ever. So each round adds a bundle or is the last: at most one per bundle.
    let mut starved = BTreeMap::new();
    loop {
        let mut placed = place_once(spec, observed, current, explain, &starved);
        let mut next = starved_bundles(spec, &placed);
        for (then, first) in &starved {
            next.insert(then, first);
        }
        if next == starved {
            placed.starved = starved;
            return placed;
        }
        starved = next;
    }
}

/// Bundles `then` of a mandatory order whose `first` has no instance placed, with that
/// `first`.
fn starved_bundles<'a>(spec: &'a SpecSet, placed: &Placed<'a>) -> BTreeMap<&'a str, &'a str> {
    super::order::starved(spec, &placed.node)
}

fn place_once<'a>(
    spec: &'a SpecSet,
    observed: &Observed,
    current: &Current<'a>,
    explain: bool,
    starved: &BTreeMap<&'a str, &'a str>,
) -> Placed<'a> {
    let mut sorted: Vec<_> = spec.cluster.nodes.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let nodes = Nodes {
        names: sorted.iter().map(|n| &n.name).collect(),
        attributes: sorted.iter().map(|n| &n.attributes).collect(),
        index: sorted
            .iter()
            .enumerate()
            .map(|(i, n)| (n.name.as_str(), i))
            .collect(),
    };
    let count = nodes.names.len();
    let usable: Vec<bool> = nodes
        .names
        .iter()
        .map(|n| current.usable.contains(n.as_str()))
        .collect();
    let defaults = &spec.cluster.defaults;
    let failure_timeout = defaults.failure_timeout.get().as_secs();

    let mut by_bundle: BTreeMap<&str, Vec<(&str, &ConstraintSpec)>> = BTreeMap::new();
    for (cname, c) in &spec.constraints {
        let b = match c {
            ConstraintSpec::Location(l) => l.bundle.as_str(),
            ConstraintSpec::Colocation(c) => c.bundle.as_str(),
            ConstraintSpec::Order(_) => continue,
        };
        by_bundle.entry(b).or_default().push((cname.as_str(), c));
    }
    let mut shunned_by: BTreeMap<&str, Vec<(&str, &ColocationConstraint)>> = BTreeMap::new();
    for (cname, c) in &spec.constraints {
        if let ConstraintSpec::Colocation(c) = c
            && c.score.is_neg_infinity()
        {
            shunned_by
                .entry(c.with.as_str())
                .or_default()
                .push((cname.as_str(), c));
        }
    }
    let mut scorer = Scorer {
        nodes: &nodes,
        usable: &usable,
        by_bundle,
        shunned_by,
        rule_cache: BTreeMap::new(),
        explain,
    };

    let mut load = vec![0usize; count];
    let mut placed_on: BTreeMap<&str, Vec<u32>> = BTreeMap::new(); // bundle -> instances per node
    let mut held = BTreeSet::new(); // instances `onFail: block` keeps where they are
    let mut out = Placed {
        node: BTreeMap::new(),
        explain: Vec::new(),
        starved: BTreeMap::new(),
    };
    let order = colocation::order(spec);
    let group_of: BTreeMap<&str, &[&str]> = order
        .groups
        .iter()
        .flat_map(|g| g.iter().map(move |b| (*b, g.as_slice())))
        .collect();
    for bundle in order.bundles {
        let Some(b) = spec.bundles.get(bundle) else {
            continue;
        };
        let group = group_of.get(bundle).copied();
        // Scores shared by every instance of the bundle.
        let Shared { score: base, why } = scorer.group_scores(bundle, group, &placed_on);
        let spread = group
            .filter(|g| g.first() == Some(&bundle))
            .into_iter()
            .flatten()
            .filter(|m| **m != bundle)
            .filter_map(|m| Some((usize::try_from(spec.bundles.get(*m)?.replicas).ok()?, *m)))
            .min();
        let mut mine = vec![0u32; count];
        // Instances that run somewhere keep their claim first, those on the best nodes
        // first, so neither a new instance nor a sibling on a worse node pushes a running
        // instance off its node (which also makes planning again against the result
        // change nothing).
        let home = |i: u32| {
            let copies = current.of(bundle, i);
            copies
                .iter()
                .find(|c| c.running())
                .or_else(|| {
                    copies
                        .iter()
                        .find(|c| c.whereabouts == Whereabouts::Reachable)
                })
                .and_then(|c| nodes.index.get(c.node.as_str()).copied())
        };
        // Only instances with a copy can have a home: the new ones follow in index order,
        // enumerated as they come rather than kept.
        let mut running: Vec<(Score, u32)> = current
            .copies
            .get(bundle)
            .into_iter()
            .flat_map(|m| m.keys().copied())
            .filter(|i| *i < b.replicas)
            .filter_map(|i| home(i).map(|n| (base[n], i)))
            .collect();
        running.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let new = (0..b.replicas).filter(|i| home(*i).is_none());
        let ordered = running.iter().map(|(_, i)| *i).chain(new);
        // A new instance (one that runs nowhere) has been placed nowhere: so will the next.
        let mut full_up = false;
        for index in ordered {
            let name = instance_name(bundle, index);
            // Waiting for the `first` of a mandatory order: no new slot.
            if let Some(first) = starved.get(bundle) {
                if explain {
                    out.explain.push(stays(
                        name,
                        None,
                        Name::from_static("nowhere"),
                        format!("waits for {first} (mandatory order)"),
                        Score::NEG_INFINITY,
                    ));
                }
                continue;
            }
            // Failing its check with `onFail: block`: left alone where it runs.
            if let Some(at) = current
                .of(bundle, index)
                .iter()
                .find(|c| c.held(b.monitor.on_fail))
                .and_then(|c| nodes.index.get(c.node.as_str()).copied())
            {
                load[at] += 1;
                mine[at] += 1;
                held.insert((bundle, index));
                out.node.insert((bundle, index), Some(nodes.names[at]));
                if explain {
                    let node = nodes.names[at].clone();
                    out.explain.push(stays(
                        name,
                        Some(node.clone()),
                        node,
                        "stays: fails its check, and onFail: block leaves it alone".into(),
                        Score::ZERO,
                    ));
                }
                continue;
            }
            // A single-writer instance that may still run on a lost node that cannot be
            // fenced stays where it is: on the reachable node it runs on (if that node may
            // still host it), or nowhere new.
            if b.recovery == Recovery::Fence
                && let Some(stay) = current.frozen(bundle, index)
            {
                let at = nodes.index.get(stay.as_str()).copied().filter(|i| {
                    usable[*i] && !base[*i].is_neg_infinity() && mine[*i] < b.replicas_per_host
                });
                if let Some(i) = at {
                    load[i] += 1;
                    mine[i] += 1;
                }
                if let Some(i) = at {
                    out.node.insert((bundle, index), Some(nodes.names[i]));
                }
                if explain {
                    out.explain.push(stays(
                        name,
                        at.map(|i| nodes.names[i].clone()),
                        stay.clone(),
                        "stays: a copy may still run on a lost node that cannot be fenced".into(),
                        Score::ZERO,
                    ));
                }
                continue;
            }
            let fresh = home(index).is_none();
            if full_up && fresh && !explain {
                continue;
            }
            // Per-instance adjustments: few nodes each.
            let mut extra: BTreeMap<usize, Vec<ScorePart>> = BTreeMap::new();
            // Stickiness goes to the node the instance runs on or, when it runs nowhere,
            // to the node where its exited container is (restart in place first).
            let copies = current.of(bundle, index);
            let sticky = copies.iter().any(|c| c.running());
            for copy in copies
                .iter()
                .filter(|c| c.whereabouts == Whereabouts::Reachable && (c.running() || !sticky))
            {
                if let Some(&i) = nodes.index.get(copy.node.as_str()) {
                    extra.entry(i).or_default().push(ScorePart {
                        source: "stickiness".into(),
                        score: defaults.stickiness,
                    });
                }
            }
            // Too many failures on a node ban the instance from it, with or without a
            // container there, until the failures expire; `onFail: ignore` and `block`
            // keep an instance where it is whatever its count.
            let counted = b.monitor.on_fail.counts_failures();
            for node in current
                .failed_on
                .get(name.as_str())
                .map(Vec::as_slice)
                .unwrap_or(&[])
                .iter()
                .filter(|_| counted)
            {
                let failures = live_failures(observed, node.as_str(), &name, failure_timeout);
                if failures >= defaults.migration_threshold
                    && let Some(&i) = nodes.index.get(node.as_str())
                {
                    extra.entry(i).or_default().push(ScorePart {
                        source: format!(
                            "failed {failures} times (migrationThreshold {})",
                            defaults.migration_threshold
                        ),
                        score: Score::NEG_INFINITY,
                    });
                }
            }
            for (node, names) in &current.conflicts {
                if names.contains(name.as_str())
                    && let Some(&i) = nodes.index.get(node)
                {
                    extra.entry(i).or_default().push(ScorePart {
                        source: "an unmanaged container holds the name".into(),
                        score: Score::NEG_INFINITY,
                    });
                }
            }
            let full = |i: usize| mine[i] >= b.replicas_per_host;
            // The first member of a group takes no more nodes than the smallest other
            // member has instances: a node needs one of each.
            let used = match spread {
                Some(_) => mine.iter().filter(|n| **n > 0).count(),
                None => 0,
            };
            let spread_out =
                |i: usize| spread.is_some_and(|(most, _)| mine[i] == 0 && used >= most);
            let score_of = |i: usize| {
                let mut s = base[i]
                    + extra
                        .get(&i)
                        .map_or(Score::ZERO, |e| e.iter().map(|p| p.score).sum());
                if full(i) || spread_out(i) {
                    s += Score::NEG_INFINITY;
                }
                s
            };
            // Equal scores (INFINITY absorbs stickiness) go to the node the instance is
            // on, then to the least loaded node, then to the first name.
            let here = home(index);
            let rank = |i: usize, s: Score| (s, here == Some(i), std::cmp::Reverse(load[i]));
            let mut best: Option<(Score, usize)> = None;
            for i in 0..count {
                let s = score_of(i);
                let better = match best {
                    None => true,
                    Some((bs, bi)) => rank(i, s) > rank(bi, bs),
                };
                if better {
                    best = Some((s, i));
                }
            }
            let chosen = best.filter(|(s, _)| !s.is_neg_infinity()).map(|(_, i)| i);
            if explain {
                let mut candidates: Vec<Candidate> = (0..count)
                    .map(|i| {
                        let mut parts = why[i].clone();
                        parts.extend(extra.get(&i).cloned().unwrap_or_default());
                        if full(i) {
                            parts.push(ScorePart {
                                source: format!("replicasPerHost {} reached", b.replicas_per_host),
                                score: Score::NEG_INFINITY,
                            });
                        }
                        if let Some((most, member)) = spread.filter(|_| spread_out(i)) {
                            parts.push(ScorePart {
                                source: format!(
                                    "colocation cycle: {member} has {most} instance(s), for as many nodes"
                                ),
                                score: Score::NEG_INFINITY,
                            });
                        }
                        Candidate {
                            node: nodes.names[i].clone(),
                            score: score_of(i),
                            parts,
                        }
                    })
                    .collect();
                sort_candidates(&mut candidates);
                out.explain.push(Placement {
                    instance: name,
                    chosen: chosen.map(|i| nodes.names[i].clone()),
                    candidates,
                });
            }
            match chosen {
                Some(i) => {
                    load[i] += 1;
                    mine[i] += 1;
                    out.node.insert((bundle, index), Some(nodes.names[i]));
                }
                None => full_up |= fresh,
            }
        }
        placed_on.insert(bundle, mine);
        if let Some(group) = group
            && group.last() == Some(&bundle)
        {
            let edges = scorer.mandatory_within(group);
            let mut tally = Tally {
                nodes: &nodes,
                placed_on: &mut placed_on,
                load: &mut load,
                out: &mut out,
            };
            tally.keep_group_together(&edges, &held);
        }
    }
    out
}

/// The explanation of an instance that is not scored: it stays on `node` (or, with
/// `chosen` `None`, goes nowhere) for the reason `source`.
fn stays(
    instance: String,
    chosen: Option<Name>,
    node: Name,
    source: String,
    score: Score,
) -> Placement {
    Placement {
        instance,
        chosen,
        candidates: vec![Candidate {
            node,
            score,
            parts: vec![ScorePart { source, score }],
        }],
    }
}

/// Best first, then by name.
fn sort_candidates(candidates: &mut [Candidate]) {
    candidates.sort_by(|x, y| y.score.cmp(&x.score).then(x.node.cmp(&y.node)));
}

/// Scores shared by every instance of a bundle, per node, and what they are made of
/// (only when explaining).
struct Shared {
    score: Vec<Score>,
    why: Vec<Vec<ScorePart>>,
}

impl Shared {
    fn add(&mut self, i: usize, source: impl FnOnce() -> String, score: Score) {
        self.score[i] += score;
        if let Some(why) = self.why.get_mut(i) {
            why.push(ScorePart {
                source: source(),
                score,
            });
        }
    }
}

/// What the shared scores of bundles are computed from.
struct Scorer<'s, 'a> {
    nodes: &'s Nodes<'a>,
    usable: &'s [bool],
    /// Location and colocation constraints, by the bundle they place.
    by_bundle: BTreeMap<&'a str, Vec<(&'a str, &'a ConstraintSpec)>>,
    /// `-INFINITY` colocations, by the bundle they keep away from (`with`).
    shunned_by: BTreeMap<&'a str, Vec<(&'a str, &'a ColocationConstraint)>>,
    rule_cache: BTreeMap<String, Vec<usize>>,
    explain: bool,
}

impl<'a> Scorer<'_, 'a> {
    /// The shared scores of `bundle`, a member of the mandatory colocation group `group`
    /// when given. The group goes where all its members may run: its first member adds
    /// the scores of every other member, and each of the others may only go where every
    /// member placed before it is (the group is made whole afterwards by
    /// [`Tally::keep_group_together`]).
    fn group_scores(
        &mut self,
        bundle: &str,
        group: Option<&[&str]>,
        placed_on: &BTreeMap<&str, Vec<u32>>,
    ) -> Shared {
        let unplaced: BTreeSet<&str> = group
            .unwrap_or(&[])
            .iter()
            .copied()
            .filter(|m| !placed_on.contains_key(m))
            .collect();
        let mut own = self.shared(bundle, placed_on, &unplaced);
        match group.and_then(|g| g.first()) {
            Some(first) if *first == bundle => {
                for member in unplaced.iter().filter(|m| **m != bundle) {
                    let theirs = self.shared(member, placed_on, &unplaced);
                    for (mine, score) in own.score.iter_mut().zip(theirs.score) {
                        *mine += score;
                    }
                    // Both empty unless explaining.
                    for (mine, why) in own.why.iter_mut().zip(theirs.why) {
                        mine.extend(why.into_iter().map(|p| ScorePart {
                            source: format!("colocation cycle with {member}: {}", p.source),
                            score: p.score,
                        }));
                    }
                }
            }
            Some(_) => {
                for member in group
                    .unwrap_or(&[])
                    .iter()
                    .filter(|m| !unplaced.contains(*m))
                {
                    let with = placed_on.get(member);
                    for i in 0..self.nodes.names.len() {
                        if with.is_none_or(|w| w[i] == 0) {
                            own.add(
                                i,
                                || format!("colocation cycle: no {member} here"),
                                Score::NEG_INFINITY,
                            );
                        }
                    }
                }
            }
            None => {}
        }
        own
    }

    /// The scores of `bundle` on every node: unavailable nodes, location constraints,
    /// colocations with the bundles placed (`placed_on`). Colocations with the members
    /// of its group not placed yet (`unplaced`) are left to the group.
    fn shared(
        &mut self,
        bundle: &str,
        placed_on: &BTreeMap<&str, Vec<u32>>,
        unplaced: &BTreeSet<&str>,
    ) -> Shared {
        let count = self.nodes.names.len();
        let mut s = Shared {
            score: vec![Score::ZERO; count],
            why: vec![Vec::new(); if self.explain { count } else { 0 }],
        };
        for (i, ok) in self.usable.iter().enumerate() {
            if !ok {
                s.add(
                    i,
                    || {
                        "node unavailable (lost, fenced, in standby or fenced by this plan)"
                            .to_owned()
                    },
                    Score::NEG_INFINITY,
                );
            }
        }
        for (cname, c) in self.by_bundle.get(bundle).map(Vec::as_slice).unwrap_or(&[]) {
            match c {
                ConstraintSpec::Location(l) => {
                    let hits: Vec<usize> = match (&l.node, &l.rule) {
                        (Some(n), _) => self
                            .nodes
                            .index
                            .get(n.as_str())
                            .copied()
                            .into_iter()
                            .collect(),
                        (None, Some(rule)) => {
                            matching(rule, self.nodes, &mut self.rule_cache).to_vec()
                        }
                        (None, None) => Vec::new(),
                    };
                    for i in hits {
                        s.add(i, || format!("location {cname}"), l.score);
                    }
                }
                ConstraintSpec::Colocation(c) if unplaced.contains(c.with.as_str()) => {}
                ConstraintSpec::Colocation(c) => {
                    let with = placed_on.get(c.with.as_str());
                    for i in 0..count {
                        let here = with.is_some_and(|w| w[i] > 0);
                        if here {
                            s.add(i, || format!("colocation {cname} with {}", c.with), c.score);
                        } else if c.score.is_infinity() {
                            s.add(
                                i,
                                || format!("colocation {cname}: no {} here", c.with),
                                Score::NEG_INFINITY,
                            );
                        }
                    }
                }
                ConstraintSpec::Order(_) => {}
            }
        }
        // A `-INFINITY` colocation keeps two bundles apart whichever is placed first: one
        // placed before the bundle it shuns (in a colocation cycle) could not avoid it,
        // so the shunned bundle avoids it instead.
        for (cname, c) in self
            .shunned_by
            .get(bundle)
            .map(Vec::as_slice)
            .unwrap_or(&[])
        {
            let Some(there) = placed_on
                .get(c.bundle.as_str())
                .filter(|_| c.bundle != c.with)
            else {
                continue;
            };
            for (i, n) in there.iter().enumerate() {
                if *n > 0 {
                    s.add(
                        i,
                        || format!("colocation {cname}: {} runs here", c.bundle),
                        Score::NEG_INFINITY,
                    );
                }
            }
        }
        s
    }

    /// The `INFINITY` colocations between members of `group`, as (bundle, with).
    fn mandatory_within(&self, group: &[&'a str]) -> Vec<(&'a str, &'a str)> {
        group
            .iter()
            .flat_map(|b| self.by_bundle.get(b).map(Vec::as_slice).unwrap_or(&[]))
            .filter_map(|(_, c)| match c {
                ConstraintSpec::Colocation(c)
                    if c.score.is_infinity() && group.contains(&c.with.as_str()) =>
                {
                    Some((c.bundle.as_str(), c.with.as_str()))
                }
                _ => None,
            })
            .collect()
    }
}

/// The placements made so far, for the corrections made after a group is placed.
struct Tally<'t, 'a> {
    nodes: &'t Nodes<'a>,
    placed_on: &'t mut BTreeMap<&'a str, Vec<u32>>,
    load: &'t mut [usize],
    out: &'t mut Placed<'a>,
}

impl<'a> Tally<'_, 'a> {
    /// The members of a mandatory group share their nodes: an instance placed on a node
    /// without a member it is colocated with by `INFINITY` (`edges`) is placed nowhere
    /// after all, which may leave another member alone in turn, until none is. Instances
    /// `onFail: block` keeps (`held`) stay. Each round unplaces at least one instance or
    /// ends.
    fn keep_group_together(
        &mut self,
        edges: &[(&'a str, &'a str)],
        held: &BTreeSet<(&'a str, u32)>,
    ) {
        loop {
            let mut changed = false;
            for &(bundle, with) in edges {
                let alone: Vec<(u32, usize)> = self
                    .out
                    .node
                    .range((bundle, 0)..=(bundle, u32::MAX))
                    .filter(|(key, _)| !held.contains(*key))
                    .filter_map(|((_, i), n)| Some((*i, *self.nodes.index.get((*n)?.as_str())?)))
                    .filter(|(_, at)| self.placed_on.get(with).is_none_or(|w| w[*at] == 0))
                    .collect();
                for (index, at) in alone {
                    self.unplace(bundle, index, at, with);
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
    }

    fn unplace(&mut self, bundle: &'a str, index: u32, at: usize, with: &str) {
        self.out.node.remove(&(bundle, index));
        if let Some(n) = self.placed_on.get_mut(bundle).and_then(|m| m.get_mut(at)) {
            *n = n.saturating_sub(1);
        }
        self.load[at] = self.load[at].saturating_sub(1);
        let name = instance_name(bundle, index);
        if let Some(p) = self.out.explain.iter_mut().find(|p| p.instance == name) {
            p.chosen = None;
            for c in p
                .candidates
                .iter_mut()
                .filter(|c| c.node == *self.nodes.names[at])
            {
                c.parts.push(ScorePart {
                    source: format!("colocation cycle: no {with} here"),
                    score: Score::NEG_INFINITY,
                });
                c.score = Score::NEG_INFINITY;
            }
            sort_candidates(&mut p.candidates);
        }
    }
}

/// Indices of the nodes matching `rule`, computed once per distinct rule.
fn matching<'c>(
    rule: &Rule,
    nodes: &Nodes<'_>,
    cache: &'c mut BTreeMap<String, Vec<usize>>,
) -> &'c [usize] {
    let key = format!(
        "{}\u{0}{:?}\u{0}{:?}",
        rule.attribute, rule.operator, rule.value
    );
    cache.entry(key).or_insert_with(|| {
        (0..nodes.names.len())
            .filter(|i| rule.matches(nodes.attributes[*i]))
            .collect()
    })
}

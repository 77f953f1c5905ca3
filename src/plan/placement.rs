//! Placement: which node each instance should run on, by Pacemaker-style scores.
//!
//! Bundles are placed one after another: those others are colocated with first, then by
//! priority. Each instance gets the node with the highest score, where a score adds up
//! location constraints, colocations with bundles already placed, stickiness to the node
//! it runs on, and `-INFINITY` for nodes it failed on too often, that are full, or that
//! are unavailable. Ties go to the node with fewer instances, then to the first name, so
//! the result is deterministic and spreads load.
//!
//! Scores that are the same for every instance of a bundle are computed once per bundle,
//! and rule matches once per distinct rule, so a thousand nodes and ten thousand
//! instances place quickly.

use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use super::current::{Current, Whereabouts, live_failures};
use super::model::{Candidate, Placement, ScorePart};
use crate::observed::Observed;
use crate::spec::bundle::{Recovery, instance_name};
use crate::spec::constraint::{ConstraintSpec, OrderKind, Rule};
use crate::spec::{Name, Score, SpecSet};

/// The outcome of placement.
pub struct Placed<'a> {
    /// The chosen node per (bundle, index); `None` when no node is allowed.
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
    let runs = |b: &str| placed.node.iter().any(|((x, _), n)| *x == b && n.is_some());
    spec.constraints
        .values()
        .filter_map(|c| match c {
            ConstraintSpec::Order(o)
                if o.kind == OrderKind::Mandatory
                    && spec.bundles.contains_key(o.then.as_str())
                    && spec.bundles.contains_key(o.first.as_str())
                    && !runs(o.first.as_str()) =>
            {
                Some((o.then.as_str(), o.first.as_str()))
            }
            _ => None,
        })
        .collect()
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
    let mut rule_cache: BTreeMap<String, Vec<usize>> = BTreeMap::new();

    let mut load = vec![0usize; count];
    let mut placed_on: BTreeMap<&str, Vec<u32>> = BTreeMap::new(); // bundle -> instances per node
    let mut out = Placed {
        node: BTreeMap::new(),
        explain: Vec::new(),
        starved: BTreeMap::new(),
    };
    for bundle in order(spec) {
        let Some(b) = spec.bundles.get(bundle) else {
            continue;
        };
        // Scores shared by every instance of the bundle.
        let mut base = vec![Score::ZERO; count];
        let mut why: Vec<Vec<ScorePart>> = vec![Vec::new(); if explain { count } else { 0 }];
        let mut add = |i: usize, source: &dyn Fn() -> String, score: Score| {
            base[i] += score;
            if explain {
                why[i].push(ScorePart {
                    source: source(),
                    score,
                });
            }
        };
        for (i, ok) in usable.iter().enumerate() {
            if !ok {
                add(
                    i,
                    &|| "node unavailable (lost, fenced or standby)".to_owned(),
                    Score::NEG_INFINITY,
                );
            }
        }
        for (cname, c) in by_bundle.get(bundle).map(Vec::as_slice).unwrap_or(&[]) {
            match c {
                ConstraintSpec::Location(l) => {
                    let hits: Vec<usize> = match (&l.node, &l.rule) {
                        (Some(n), _) => nodes.index.get(n.as_str()).copied().into_iter().collect(),
                        (None, Some(rule)) => matching(rule, &nodes, &mut rule_cache).to_vec(),
                        (None, None) => Vec::new(),
                    };
                    for i in hits {
                        add(i, &|| format!("location {cname}"), l.score);
                    }
                }
                ConstraintSpec::Colocation(c) => {
                    let with = placed_on.get(c.with.as_str());
                    for i in 0..count {
                        let here = with.is_some_and(|w| w[i] > 0);
                        if here {
                            add(
                                i,
                                &|| format!("colocation {cname} with {}", c.with),
                                c.score,
                            );
                        } else if c.score.is_infinity() {
                            add(
                                i,
                                &|| format!("colocation {cname}: no {} here", c.with),
                                Score::NEG_INFINITY,
                            );
                        }
                    }
                }
                ConstraintSpec::Order(_) => {}
            }
        }
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
        type Ranked = Vec<(Score, u32)>;
        let (mut running, new): (Ranked, Ranked) = (0..b.replicas)
            .map(|i| (home(i).map_or(Score::NEG_INFINITY, |n| base[n]), i))
            .partition(|(_, i)| home(*i).is_some());
        running.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let ordered: Vec<u32> = running.into_iter().chain(new).map(|(_, i)| i).collect();
        for index in ordered {
            let name = instance_name(bundle, index);
            // Waiting for the `first` of a mandatory order: no new slot.
            if let Some(first) = starved.get(bundle)
                && !current.of(bundle, index).iter().any(|c| c.running())
            {
                out.node.insert((bundle, index), None);
                if explain {
                    out.explain.push(Placement {
                        instance: name,
                        chosen: None,
                        candidates: vec![Candidate {
                            node: Name::from_static("nowhere"),
                            score: Score::NEG_INFINITY,
                            parts: vec![ScorePart {
                                source: format!("waits for {first} (mandatory order)"),
                                score: Score::NEG_INFINITY,
                            }],
                        }],
                    });
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
                out.node.insert((bundle, index), at.map(|i| nodes.names[i]));
                if explain {
                    out.explain.push(Placement {
                        instance: name,
                        chosen: at.map(|i| nodes.names[i].clone()),
                        candidates: vec![Candidate {
                            node: stay.clone(),
                            score: Score::ZERO,
                            parts: vec![ScorePart {
                                source: "stays: a copy may still run on a lost node that cannot be fenced".into(),
                                score: Score::ZERO,
                            }],
                        }],
                    });
                }
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
            // container there, until the failures expire.
            for node in current
                .failed_on
                .get(name.as_str())
                .map(Vec::as_slice)
                .unwrap_or(&[])
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
            let score_of = |i: usize| {
                let mut s = base[i]
                    + extra
                        .get(&i)
                        .map_or(Score::ZERO, |e| e.iter().map(|p| p.score).sum());
                if full(i) {
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
                        Candidate {
                            node: nodes.names[i].clone(),
                            score: score_of(i),
                            parts,
                        }
                    })
                    .collect();
                candidates.sort_by(|x, y| y.score.cmp(&x.score).then(x.node.cmp(&y.node)));
                out.explain.push(Placement {
                    instance: name,
                    chosen: chosen.map(|i| nodes.names[i].clone()),
                    candidates,
                });
            }
            if let Some(i) = chosen {
                load[i] += 1;
                mine[i] += 1;
            }
            out.node
                .insert((bundle, index), chosen.map(|i| nodes.names[i]));
        }
        placed_on.insert(bundle, mine);
    }
    out
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

/// Bundles in placement order: a bundle comes after the bundles it is colocated with,
/// otherwise by priority (highest first), then name. Colocation cycles fall back to
/// priority order.
pub fn order(spec: &SpecSet) -> Vec<&str> {
    let mut waits: BTreeMap<&str, usize> = spec.bundles.keys().map(|b| (b.as_str(), 0)).collect();
    let mut unblocks: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut edges = BTreeSet::new();
    for c in spec.constraints.values() {
        if let ConstraintSpec::Colocation(c) = c
            && spec.bundles.contains_key(c.with.as_str())
            && spec.bundles.contains_key(c.bundle.as_str())
            && c.bundle != c.with
            && edges.insert((c.with.as_str(), c.bundle.as_str()))
        {
            unblocks
                .entry(c.with.as_str())
                .or_default()
                .push(c.bundle.as_str());
            *waits.entry(c.bundle.as_str()).or_default() += 1;
        }
    }
    // Highest priority first, then name: a max-heap on (priority, reversed name).
    let key = |b: &str| {
        (
            spec.bundles.get(b).map_or(0, |x| x.priority),
            std::cmp::Reverse(b.to_owned()),
        )
    };
    let mut ready: BinaryHeap<_> = waits
        .iter()
        .filter(|(_, w)| **w == 0)
        .map(|(b, _)| (key(b), *b))
        .collect();
    let mut done = Vec::with_capacity(waits.len());
    let mut taken = BTreeSet::new();
    loop {
        let next = match ready.pop() {
            Some((_, b)) => b,
            // A colocation cycle: take the highest-priority bundle not yet placed.
            None => match waits
                .keys()
                .copied()
                .filter(|b| !taken.contains(b))
                .max_by_key(|b| key(b))
            {
                Some(b) => b,
                None => break,
            },
        };
        if !taken.insert(next) {
            continue;
        }
        done.push(next);
        for after in unblocks.get(next).map(Vec::as_slice).unwrap_or(&[]) {
            if let Some(w) = waits.get_mut(after) {
                *w = w.saturating_sub(1);
                if *w == 0 && !taken.contains(after) {
                    ready.push((key(after), after));
                }
            }
        }
    }
    done
}

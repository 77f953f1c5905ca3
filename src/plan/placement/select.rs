//! Selection: the node with the highest score, and what `--explain` records of it.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::rc::Rc;

use super::capacity::{Capacity, Ties};
use super::rank::Own;
use super::scores::{Classes, Holder, Scores};
use super::{Nodes, part};
use crate::plan::model::{Candidate, Placement, ScorePart, Stage};
use crate::spec::{Name, Score};

/// Where a bundle's shared scores are, from the highest down (see [`Scores::tiers`]).
/// Selection looks at the nodes of the highest scores first (and at the few nodes an
/// instance's own parts touch).
pub(super) struct Likely {
    tiers: Vec<(Score, Holder)>,
}

impl Likely {
    /// From a bundle's shared scores.
    pub(super) fn of(base: &Scores) -> Likely {
        Likely {
            tiers: base.tiers(),
        }
    }
}

/// The instances placed on each node, of every bundle; and, where the placement strategy
/// orders nodes of equal score by a key of their own ([`Ties`]), each class's nodes in
/// that order, so selection finds the node a class's ties go to without looking at every
/// node of it, nor at the nodes too full for any bundle ([`Capacity::full`]), which are
/// left out until they have room again.
pub(super) struct Load {
    on: Vec<usize>,
    classes: Rc<Classes>,
    ties: Option<Ties>,
    /// Where ties have an order, each class's nodes by their key in it (their instances
    /// under [`Ties::Fewest`], else 0), then in node order; no empty entry, and no node
    /// that is `full`.
    ranked: Vec<BTreeMap<usize, Vec<usize>>>,
    /// Whether each node is too full for any bundle.
    full: Vec<bool>,
}

impl Load {
    /// No instance on any of `count` nodes, each as full as `capacity` says.
    pub(super) fn new(classes: &Rc<Classes>, count: usize, capacity: &mut Capacity<'_>) -> Load {
        let ties = capacity.ties();
        let full: Vec<bool> = (0..count).map(|i| capacity.full(i)).collect();
        capacity.changed();
        let room = |c: usize| -> Vec<usize> {
            let members = classes.members(c).iter().copied();
            members.filter(|i| !full[*i]).collect()
        };
        let ranked = match ties {
            Some(_) => (0..classes.count())
                .map(|c| {
                    let nodes = room(c);
                    (!nodes.is_empty())
                        .then_some((0, nodes))
                        .into_iter()
                        .collect()
                })
                .collect(),
            None => Vec::new(),
        };
        Load {
            on: vec![0; count],
            classes: Rc::clone(classes),
            ties,
            ranked,
            full,
        }
    }

    /// The instances on each node.
    pub(super) fn on(&self) -> &[usize] {
        &self.on
    }

    /// One instance more on node `at`.
    pub(super) fn add(&mut self, at: usize) {
        self.set(at, self.on[at] + 1);
    }

    /// One instance fewer on node `at`.
    pub(super) fn remove(&mut self, at: usize) {
        self.set(at, self.on[at].saturating_sub(1));
    }

    fn set(&mut self, at: usize, count: usize) {
        if self.ties == Some(Ties::Fewest) {
            self.unrank(at);
            self.on[at] = count;
            self.rank(at);
        } else {
            self.on[at] = count;
        }
    }

    /// Takes in which of the nodes whose free capacity changed are too full for any
    /// bundle.
    pub(super) fn sync(&mut self, capacity: &mut Capacity<'_>) {
        for at in capacity.changed() {
            let full = capacity.full(at);
            if full && !self.full[at] {
                self.unrank(at);
                self.full[at] = true;
            } else if !full && self.full[at] {
                self.full[at] = false;
                self.rank(at);
            }
        }
    }

    /// Node `at`'s key in the order of its class.
    fn key(&self, at: usize) -> usize {
        match self.ties {
            Some(Ties::Fewest) => self.on[at],
            _ => 0,
        }
    }

    /// Puts node `at` in the order of its class, unless it is full.
    fn rank(&mut self, at: usize) {
        let key = self.key(at);
        if let Some(ranked) = self.ranked.get_mut(self.classes.of(at))
            && !self.full[at]
        {
            let nodes = ranked.entry(key).or_default();
            if let Err(k) = nodes.binary_search(&at) {
                nodes.insert(k, at);
            }
        }
    }

    /// Takes node `at` out of the order of its class.
    fn unrank(&mut self, at: usize) {
        let key = self.key(at);
        if let Some(ranked) = self.ranked.get_mut(self.classes.of(at))
            && let Some(nodes) = ranked.get_mut(&key)
            && let Ok(k) = nodes.binary_search(&at)
        {
            nodes.remove(k);
            if nodes.is_empty() {
                ranked.remove(&key);
            }
        }
    }

    /// The nodes of class `c` with room for some bundle, those ties go to first first.
    fn preferred(&self, c: usize) -> impl Iterator<Item = usize> + '_ {
        self.ranked
            .get(c)
            .into_iter()
            .flat_map(|r| r.values().flatten().copied())
    }
}

/// The best of `count` nodes by their score, if it is not `-INFINITY`: a node's `score`,
/// or `-INFINITY` where it is `banned` (`score` with `-INFINITY` added). Equal scores
/// (`INFINITY` absorbs stickiness) go to the node the instance is on (`here`), then to
/// the node the placement strategy `prefer`s (`Greater` for the first node: the least
/// loaded, or the one with most free capacity), then to the first name.
///
/// The nodes the instance's own parts touch (sorted, `here` and any node `banned` spares
/// whatever it lacks among them) are looked at first, then the others by their shared
/// score (`base`) from the highest down (`likely`), until the best so far scores above
/// them: an untouched node scores its shared score, or `-INFINITY` when banned. A node
/// that cannot beat the best so far even at its `score` is passed over without asking
/// whether it is `banned`, so the filters that look at what is placed (capacity) run only
/// for the few nodes that could win. The nodes of a class are looked at in the order
/// `load` keeps them in, which leaves out the nodes too full for any bundle (`banned`
/// bans them, unless touched): the first that is not banned is the class's best. Where
/// the strategy's ties have no such order, every node is looked at, in name order.
pub(super) fn best(
    count: usize,
    (score, banned): (impl Fn(usize) -> Score, impl Fn(usize) -> bool),
    (here, prefer): (Option<usize>, impl Fn(usize, usize) -> Ordering),
    (likely, base, touched, load): (&Likely, &Scores, &[usize], &Load),
) -> Option<usize> {
    let rank = |i: usize, s: Score| (s, here == Some(i));
    // Whatever the order nodes are looked at in, equal in all else, the first name wins.
    let beats = |i: usize, s: Score, best: Option<(Score, usize)>| match best {
        None => true,
        Some((bs, bi)) => rank(i, s)
            .cmp(&rank(bi, bs))
            .then_with(|| prefer(i, bi))
            .then(bi.cmp(&i))
            .is_gt(),
    };
    let scan = |nodes: &mut dyn Iterator<Item = usize>| {
        let mut best: Option<(Score, usize)> = None;
        for i in nodes {
            let s = score(i);
            if !beats(i, s, best) {
                continue;
            }
            let s = if banned(i) { Score::NEG_INFINITY } else { s };
            if beats(i, s, best) {
                best = Some((s, i));
            }
        }
        best
    };
    if load.ties.is_none() {
        // Comparing free capacity is not an order (node a may beat b, b c, and c a): the
        // nodes are looked at in name order, as they always were.
        return scan(&mut (0..count))
            .filter(|(s, _)| !s.is_neg_infinity())
            .map(|(_, i)| i);
    }
    let mut best = scan(&mut touched.iter().copied());
    let untouched = |i: &usize| touched.binary_search(i).is_err();
    let alike = |i: &usize| untouched(i) && !base.is_apart(*i);
    // An untouched node's score is its tier's: it scores that unless banned.
    for &(tier, holder) in &likely.tiers {
        if tier.is_neg_infinity() || best.is_some_and(|(s, _)| s > tier) {
            break;
        }
        let c = match holder {
            Holder::Node(i) => {
                if untouched(&i) && beats(i, tier, best) && !banned(i) {
                    best = Some((tier, i));
                }
                continue;
            }
            Holder::Class(c) => c,
        };
        // Those after a node in the order cannot beat what it cannot, nor what it is.
        for i in load.preferred(c).filter(alike) {
            if !beats(i, tier, best) {
                break;
            } else if !banned(i) {
                best = Some((tier, i));
                break;
            }
        }
    }
    let best = best.filter(|(s, _)| !s.is_neg_infinity());
    debug_assert!(best == scan(&mut (0..count)).filter(|(s, _)| !s.is_neg_infinity()));
    best.map(|(_, i)| i)
}

/// Every candidate of an instance with its score and its parts, stage by stage; `extra`
/// gives the parts of a node that depend on what is placed so far (a full node, the
/// strategy's part).
pub(super) fn explained(
    nodes: &Nodes<'_>,
    instance: String,
    chosen: Option<usize>,
    base: &Scores,
    own: &Own,
    extra: impl Fn(usize) -> Vec<ScorePart>,
    score_of: impl Fn(usize) -> Score,
) -> Placement {
    let mut candidates: Vec<Candidate> = (0..nodes.count())
        .map(|i| {
            let mut parts = base.why.get(i).cloned().unwrap_or_default();
            parts.extend(extra(i));
            parts.extend(own.parts(i).iter().cloned());
            parts.sort_by_key(|p| p.stage);
            Candidate {
                node: nodes.name(i).clone(),
                score: score_of(i),
                parts,
            }
        })
        .collect();
    sort_candidates(&mut candidates);
    Placement {
        instance,
        chosen: chosen.map(|i| nodes.name(i).clone()),
        candidates,
    }
}

/// The explanation of an instance that is not scored (the pinned stage): it stays on
/// `node` (or, with `chosen` `None`, goes nowhere) for the reason `source`.
pub(super) fn stays(
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
            parts: vec![part(Stage::Pinned, source, score)],
        }],
    }
}

/// Best first, then by name.
pub(super) fn sort_candidates(candidates: &mut [Candidate]) {
    candidates.sort_by(|x, y| y.score.cmp(&x.score).then(x.node.cmp(&y.node)));
}

//! Selection: the node with the highest score, and what `--explain` records of it.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::rc::Rc;

use fixedbitset::FixedBitSet;

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
    /// Per floor an instance needs free at least ([`Capacity::floor`]), the nodes found
    /// without that much free since their free capacity last changed: selection passes
    /// over them without asking again. A node with room for the least any bundle needs
    /// but not for most instances is otherwise asked by every instance that comes to it
    /// in its class's order, and there are more such nodes the larger the cluster. At
    /// most [`MAX_FLOORS`] floors are kept (a spec may give every bundle needs of its own).
    lacking: Vec<(Vec<u64>, FixedBitSet)>,
}

/// How many floors [`Load`] keeps the nodes lacking room for.
const MAX_FLOORS: usize = 16;

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
            lacking: Vec::new(),
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
            for (_, nodes) in &mut self.lacking {
                if at < nodes.len() {
                    nodes.set(at, false);
                }
            }
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

    /// Where the nodes lacking room for `floor` are kept: found, or made while fewer
    /// than [`MAX_FLOORS`] are.
    pub(super) fn floor_slot(&mut self, floor: &[u64]) -> Option<usize> {
        if let Some(k) = self.lacking.iter().position(|(f, _)| f == floor) {
            return Some(k);
        }
        if self.lacking.len() == MAX_FLOORS {
            return None;
        }
        let nodes = FixedBitSet::with_capacity(self.on.len());
        self.lacking.push((floor.to_vec(), nodes));
        Some(self.lacking.len() - 1)
    }

    /// Whether node `i` was found lacking room for the floor of `slot`, and nothing it has
    /// free changed since.
    pub(super) fn lacks(&self, slot: Option<usize>, i: usize) -> bool {
        let lacking = slot.and_then(|k| self.lacking.get(k));
        lacking.is_some_and(|(_, nodes)| nodes.contains(i))
    }

    /// Keeps `nodes`, found lacking room for the floor of `slot`.
    pub(super) fn lacked(&mut self, slot: Option<usize>, nodes: &[usize]) {
        if let Some((_, lacking)) = slot.and_then(|k| self.lacking.get_mut(k)) {
            let count = lacking.len();
            for &i in nodes.iter().filter(|i| **i < count) {
                lacking.insert(i);
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
/// bans them, unless touched): the first that is not banned is the class's best; the
/// untouched nodes known to lack room for the instance (`lacks`, each of them `banned`)
/// are passed over without asking. Where the strategy's ties have no such order, every
/// node is looked at, in name order.
pub(super) fn best(
    count: usize,
    (score, banned, lacks): (
        impl Fn(usize) -> Score,
        impl Fn(usize) -> bool,
        impl Fn(usize) -> bool,
    ),
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
        // Those after a node in the order cannot beat what it cannot, nor what it is; so
        // passing over a node known to lack room (banned) leaves the outcome as it was.
        for i in load.preferred(c).filter(alike).filter(|i| !lacks(*i)) {
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

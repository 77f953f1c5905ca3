//! Selection: the node with the highest score, and what `--explain` records of it.

use std::cmp::Ordering;

use super::rank::Own;
use super::scores::Scores;
use super::{Nodes, part};
use crate::plan::model::{Candidate, Placement, ScorePart, Stage};
use crate::spec::{Name, Score};

/// The nodes a bundle's instances are most likely placed on: those of the highest shared
/// score (`top`), and the highest shared score of the others (`below`). Selection looks
/// at these (and at the few nodes an instance's own parts touch) first.
pub(super) struct Likely {
    nodes: Vec<usize>,
    top: Score,
    below: Score,
}

impl Likely {
    /// From a bundle's shared scores.
    pub(super) fn of(base: &Scores) -> Likely {
        let (nodes, top, below) = base.top();
        Likely { nodes, top, below }
    }
}

/// The best of `count` nodes by `score_of`, if it is not `-INFINITY`. Equal scores
/// (`INFINITY` absorbs stickiness) go to the node the instance is on (`here`), then to
/// the node the placement strategy `prefer`s (`Greater` for the first node: the least
/// loaded, or the one with most free capacity), then to the first name.
///
/// `bound` is a cheap score no lower than `score_of` (which may only bring it down to
/// `-INFINITY`, with a ban): a node that cannot beat the best so far even at its bound is
/// passed over without asking `score_of`, so the filters that look at what is placed
/// (capacity) run only for the few nodes that could win. The nodes the instance's own
/// parts touch (sorted, `here` among them) and the `likely` nodes are looked at first
/// (a likely node untouched is bound by the bundle's top score): when the best of them
/// scores above every other node's bound, it is the best.
pub(super) fn best(
    count: usize,
    (bound, score_of): (impl Fn(usize) -> Score, impl Fn(usize) -> Score),
    (here, prefer): (Option<usize>, impl Fn(usize, usize) -> Ordering),
    (likely, touched): (&Likely, &[usize]),
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
            if !beats(i, bound(i), best) {
                continue;
            }
            let s = score_of(i);
            if beats(i, s, best) {
                best = Some((s, i));
            }
        }
        best
    };
    let mut first = scan(&mut touched.iter().copied());
    let top = likely.top;
    for &i in &likely.nodes {
        if beats(i, top, first) && touched.binary_search(&i).is_err() && score_of(i) == top {
            first = Some((top, i));
        }
    }
    let first = first.filter(|(s, _)| *s > likely.below);
    let best = first.or_else(|| scan(&mut (0..count)));
    debug_assert!(first.is_none() || first == scan(&mut (0..count)));
    best.filter(|(s, _)| !s.is_neg_infinity()).map(|(_, i)| i)
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

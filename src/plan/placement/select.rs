//! Selection: the node with the highest score, and what `--explain` records of it.

use std::cmp::Ordering;

use super::rank::{Own, Scores};
use super::{Nodes, part};
use crate::plan::model::{Candidate, Placement, ScorePart, Stage};
use crate::spec::{Name, Score};

/// The nodes a bundle's instances are most likely placed on: those of the highest shared
/// score, and the highest shared score of the others. Selection looks at these (and at the
/// few nodes an instance's own parts touch) first.
pub(super) struct Likely {
    nodes: Vec<usize>,
    below: Score,
}

impl Likely {
    /// From a bundle's shared scores.
    pub(super) fn of(base: &[Score]) -> Likely {
        let top = base.iter().copied().max().unwrap_or(Score::NEG_INFINITY);
        let below = base.iter().copied().filter(|s| *s < top).max();
        Likely {
            nodes: (0..base.len()).filter(|i| base[*i] == top).collect(),
            below: below.unwrap_or(Score::NEG_INFINITY),
        }
    }

    /// These nodes and `more` (sorted), in node order, without repeats; and the highest
    /// shared score of the other nodes.
    pub(super) fn with<'l>(
        &'l self,
        more: &'l [usize],
    ) -> (impl Iterator<Item = usize> + 'l, Score) {
        let (mut x, mut y) = (self.nodes.iter().peekable(), more.iter().peekable());
        let merged = std::iter::from_fn(move || {
            match (x.peek(), y.peek()) {
                (Some(a), Some(b)) if a < b => x.next(),
                (Some(a), Some(b)) if a > b => y.next(),
                (Some(_), Some(_)) => y.next().and(x.next()),
                (Some(_), None) => x.next(),
                (None, _) => y.next(),
            }
            .copied()
        });
        (merged, self.below)
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
/// (capacity) run only for the few nodes that could win. The `likely` nodes (with `here`
/// and every node whose bound differs from the bundle's shared score) are looked at
/// first: when the best of them scores above every other node's bound, it is the best.
pub(super) fn best(
    count: usize,
    (bound, score_of): (impl Fn(usize) -> Score, impl Fn(usize) -> Score),
    here: Option<usize>,
    prefer: impl Fn(usize, usize) -> Ordering,
    (likely, below): (impl Iterator<Item = usize>, Score),
) -> Option<usize> {
    let rank = |i: usize, s: Score| (s, here == Some(i));
    let beats = |i: usize, s: Score, best: Option<(Score, usize)>| match best {
        None => true,
        Some((bs, bi)) => rank(i, s)
            .cmp(&rank(bi, bs))
            .then_with(|| prefer(i, bi))
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
    let first = scan(&mut likely.into_iter()).filter(|(s, _)| *s > below);
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

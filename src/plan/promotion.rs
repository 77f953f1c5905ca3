//! Promotion: which instances of a promotable bundle are its primaries once the plan's
//! starts and stops are done, and the promote and demote steps that get there.
//!
//! Invariant 8 is decided here: **a promotable bundle never has more promoted instances
//! than `maxPromoted`** (nor more than `maxPromotedPerNode` on one node). Every copy that
//! may be promoted now holds a place: a copy that reports `promoted`, a running copy whose
//! role is unknown, and any copy on a lost node (its role cannot be asked) until that node
//! is fenced. A promotion waits for every step that frees such a place (the demotes, the
//! stops of those copies, the fences of those nodes); a place that no step of this plan
//! frees (a lost node that cannot be fenced) stays taken, so no replica is promoted in
//! its stead, whatever `recovery` says. Demotes come before stops, promotes after starts,
//! and nothing is promoted or demoted without quorum (invariant 2).

use std::collections::BTreeMap;

use super::HashMap;
use super::builder::{Builder, Inst};
use super::current::{Copy, Current, Whereabouts};
use super::model::{Promotion, PromotionCandidate, QuorumStatus, StepId, StepOp};
use crate::observed::Observed;
use crate::spec::bundle::Promotable;
use crate::spec::constraint::{ConstraintSpec, LocationConstraint};
use crate::spec::endpoint::Transport;
use crate::spec::{Name, Score, SpecSet};

/// What promotion reads of the rest of the plan.
pub(crate) struct Context<'a, 'p> {
    pub spec: &'a SpecSet,
    pub observed: &'p Observed,
    pub current: &'p Current<'a>,
    pub quorum: &'p QuorumStatus,
    /// The fence step of each node the plan fences.
    pub fences: &'p BTreeMap<&'a str, StepId>,
    /// The instances the round of planning before promoted (see `plan::primaries`).
    pub before: Option<&'p super::placement::Promoted>,
    /// Instances ranked after those otherwise alike (see `plan::primaries`).
    pub shunned: &'p super::Shunned,
    pub explain: bool,
    /// Simulation only: a copy on a lost node holds no place, to prove the simulation
    /// catches the resulting second primary.
    #[cfg(feature = "sim")]
    pub unsafe_skip_fence_dependency: bool,
}

/// The host a node's instances are reached at: its runtime endpoint's host (none for a
/// local socket). What promote and demote commands get as `QUORATE_PROMOTED_HOST`, and
/// what a replica reports it follows.
pub fn host_of<'s>(spec: &'s SpecSet, node: &str) -> Option<&'s str> {
    match &spec.cluster.node(node)?.runtime.transport {
        Transport::Unix(_) => None,
        Transport::Tcp { host, .. } | Transport::Ssh { host, .. } => Some(host),
    }
}

/// What a promote or demote command is told of the promoted instance (`follow`: its
/// number and node): `QUORATE_PROMOTED_INSTANCE`, `QUORATE_PROMOTED_NODE` and, when the
/// node has one, `QUORATE_PROMOTED_HOST`; nothing when none is promoted.
pub fn env(spec: &SpecSet, bundle: &str, follow: Option<(u32, &Name)>) -> Vec<(String, String)> {
    let Some((index, node)) = follow else {
        return Vec::new();
    };
    let mut env = vec![
        (
            "QUORATE_PROMOTED_INSTANCE".to_owned(),
            crate::spec::bundle::instance_name(bundle, index),
        ),
        ("QUORATE_PROMOTED_NODE".to_owned(), node.to_string()),
    ];
    if let Some(host) = host_of(spec, node.as_str()) {
        env.push(("QUORATE_PROMOTED_HOST".to_owned(), host.to_owned()));
    }
    env
}

/// What ranks a promotable bundle's instances besides their own state: the location
/// constraints of every bundle, and the bundles colocated with each bundle's promoted
/// instances, with that colocation's score over `INFINITY`.
#[derive(Default)]
struct Preferences<'a> {
    locations: HashMap<&'a str, Vec<&'a LocationConstraint>>,
    followers: HashMap<&'a str, Vec<(&'a str, f64)>>,
}

impl<'a> Preferences<'a> {
    fn new(spec: &'a SpecSet) -> Self {
        let mut p = Preferences::default();
        for c in spec.constraints.values() {
            match c {
                ConstraintSpec::Location(l) => {
                    p.locations.entry(l.bundle.as_str()).or_default().push(l);
                }
                ConstraintSpec::Colocation(c) if c.role.is_some() && c.bundle != c.with => {
                    let at = p.followers.entry(c.with.as_str()).or_default();
                    at.push((c.bundle.as_str(), c.score.factor()));
                }
                _ => {}
            }
        }
        p
    }

    fn of(&self, bundle: &str) -> &[&'a LocationConstraint] {
        self.locations.get(bundle).map_or(&[], Vec::as_slice)
    }
}

/// Plans the promotions and demotions of every promotable bundle that is not suspended.
pub(crate) fn run(cx: &Context, b: &mut Builder) {
    let prefs = Preferences::new(cx.spec);
    for (name, spec) in &cx.spec.bundles {
        let Some(p) = &spec.promotable else {
            continue;
        };
        if cx.observed.suspended.covers(name.as_str()) {
            // Left alone: its primaries are where they report to be.
            b.promoted_on
                .insert(name.clone(), reported(cx.current, name.as_str()));
            continue;
        }
        let mut bundle = Bundle::new(cx, name, p, b);
        bundle.score_runs(prefs.of(name.as_str()));
        bundle.follow_dependents(&prefs);
        bundle.plan(b);
    }
}

/// The instances of `bundle` whose running copies report themselves promoted, and where.
pub(super) fn reported(current: &Current<'_>, bundle: &str) -> Vec<(u32, Name)> {
    current
        .all_of(bundle)
        .iter()
        .filter(|c| c.runs_promoted())
        .map(|c| (c.index, c.node.clone()))
        .collect()
}

/// A copy that may be promoted now, and the step of this plan after which it no longer
/// is (none: it stays in its place).
struct Holder<'a> {
    index: u32,
    node: &'a Name,
    why: Held,
    ends: Option<StepId>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Held {
    /// It reports `promoted`.
    Promoted,
    /// It runs and its role could not be asked.
    Unknown,
    /// It is on a lost node.
    Lost,
}

/// An instance that runs once the plan is carried out, and may be promoted.
struct Runs<'a> {
    index: u32,
    node: &'a Name,
    /// Its node's score for the promoted role: the location constraints with `role:
    /// promoted` that match it, plus the stickiness when it is promoted now, plus its
    /// dependents' preferences (see [`Bundle::follow_dependents`]).
    score: Score,
    /// Its node's score from the other location constraints of its bundle.
    placement: Score,
    /// Its start in this plan: a new container, unpromoted.
    start: Option<StepId>,
    promoted: bool,
    /// A start that restarts in place a copy promoted now (its spec changed): among the
    /// instances the plan starts it goes first, as placement counted the needs of the
    /// dependents of the promoted role with it.
    restarts_primary: bool,
    preference: Option<i64>,
    follows: Option<&'a str>,
}

/// One promotable bundle under planning.
struct Bundle<'a, 'c, 'p> {
    cx: &'c Context<'a, 'p>,
    name: &'a Name,
    p: &'a Promotable,
    holders: Vec<Holder<'a>>,
    runs: Vec<Runs<'a>>,
    /// The stop steps of this bundle's copies, by (index, node).
    stops: BTreeMap<(u32, &'a str), StepId>,
}

impl<'a, 'c, 'p> Bundle<'a, 'c, 'p> {
    fn new(cx: &'c Context<'a, 'p>, name: &'a Name, p: &'a Promotable, b: &Builder) -> Self {
        let mut stops = BTreeMap::new();
        let mut starts: BTreeMap<u32, (&'a Name, StepId)> = BTreeMap::new();
        for s in &b.steps {
            match &s.op {
                StepOp::Stop {
                    node,
                    bundle,
                    index,
                    ..
                } if bundle == name => {
                    if let Some(n) = cx.spec.cluster.node(node.as_str()) {
                        stops.insert((*index, n.name.as_str()), s.id);
                    }
                }
                StepOp::Start {
                    node,
                    bundle,
                    index,
                    ..
                } if bundle == name => {
                    if let Some(n) = cx.spec.cluster.node(node.as_str()) {
                        starts.insert(*index, (&n.name, s.id));
                    }
                }
                _ => {}
            }
        }
        let mut me = Bundle {
            cx,
            name,
            p,
            holders: Vec::new(),
            runs: Vec::new(),
            stops,
        };
        me.read_copies(&starts);
        me
    }

    /// Scores each instance's node: the bundle's `locations`, those with `role:
    /// promoted` apart from the rest, and the stickiness of the promoted ones.
    fn score_runs(&mut self, locations: &[&LocationConstraint]) {
        let spec = self.cx.spec;
        let stickiness = spec.bundles.get(self.name).map_or(Score::ZERO, |b| {
            b.settings(&spec.cluster.defaults).stickiness
        });
        for r in &mut self.runs {
            let Some(node) = spec.cluster.node(r.node.as_str()) else {
                continue;
            };
            let hits = locations
                .iter()
                .filter(|l| l.matches_node(node.name.as_str(), &node.attributes));
            for l in hits {
                match l.role {
                    Some(_) => r.score += l.score,
                    None => r.placement += l.score,
                }
            }
            if r.promoted {
                r.score += stickiness;
            }
        }
    }

    /// Pacemaker's rule for a colocation with the promoted role: on each instance's node,
    /// the location constraints (without a role) of every bundle colocated with this
    /// bundle's primaries, summed per bundle and weighted by that colocation's score over
    /// `INFINITY`, are added to the promotion score. So an `INFINITY` colocation keeps
    /// the primary off a node where its dependent may never run, which would leave the
    /// dependent nowhere. Unless they would leave no instance that may be promoted: then
    /// none is added, the bundle's own constraints decide, and its dependents follow
    /// where they can.
    fn follow_dependents(&mut self, prefs: &Preferences) {
        let Some(followers) = prefs.followers.get(self.name.as_str()) else {
            return;
        };
        let spec = self.cx.spec;
        let on = |r: &Runs| -> Score {
            let Some(node) = spec.cluster.node(r.node.as_str()) else {
                return Score::ZERO;
            };
            let theirs = |dependent: &str| -> Score {
                let hits = prefs.of(dependent).iter().filter(|l| {
                    l.role.is_none() && l.matches_node(node.name.as_str(), &node.attributes)
                });
                hits.map(|l| l.score).sum()
            };
            let weighed = followers.iter().filter_map(|(d, w)| theirs(d).weighted(*w));
            weighed.sum()
        };
        let added: Vec<Score> = self.runs.iter().map(on).collect();
        let open = |r: &Runs, add: Score| !(r.score + add).is_neg_infinity();
        let had_room = self.runs.iter().any(|r| open(r, Score::ZERO));
        if had_room && !self.runs.iter().zip(&added).any(|(r, a)| open(r, *a)) {
            return;
        }
        for (r, a) in self.runs.iter_mut().zip(added) {
            r.score += a;
        }
    }

    /// Sorts the observed copies into holders and instances that keep running, and adds
    /// the instances the plan starts.
    fn read_copies(&mut self, starts: &BTreeMap<u32, (&'a Name, StepId)>) {
        let cx = self.cx;
        for c in cx.current.all_of(self.name.as_str()) {
            self.read_copy(c);
        }
        for (index, (node, start)) in starts {
            let copies = cx.current.of(self.name.as_str(), *index);
            let restarted = copies.iter().any(|c| c.node == *node && c.runs_promoted());
            self.runs.push(Runs {
                index: *index,
                node,
                score: Score::ZERO,
                placement: Score::ZERO,
                start: Some(*start),
                promoted: false,
                restarts_primary: restarted,
                preference: None,
                follows: None,
            });
        }
    }

    fn read_copy(&mut self, c: &Copy<'a>) {
        let index = c.index;
        let stop = self.stops.get(&(index, c.node.as_str())).copied();
        #[cfg(feature = "sim")]
        if self.cx.unsafe_skip_fence_dependency && c.whereabouts == Whereabouts::Unknown {
            return;
        }
        let held = match c.whereabouts {
            Whereabouts::Unknown => Some((Held::Lost, self.cx.fences.get(c.node.as_str()))),
            Whereabouts::Gone => None,
            Whereabouts::Reachable if !c.running() => None,
            Whereabouts::Reachable => match &c.instance.role {
                None => Some((Held::Unknown, stop.as_ref())),
                Some(r) if r.promoted => Some((Held::Promoted, None)),
                Some(_) => None,
            },
        };
        if let Some((why, ends)) = held {
            self.holders.push(Holder {
                index,
                node: c.node,
                why,
                ends: ends.copied(),
            });
        }
        let unknown = held.is_some_and(|(why, _)| why != Held::Promoted);
        if c.running() && stop.is_none() && !unknown {
            let role = c.instance.role.as_ref();
            self.runs.push(Runs {
                index,
                node: c.node,
                score: Score::ZERO,
                placement: Score::ZERO,
                start: None,
                promoted: role.is_some_and(|r| r.promoted),
                restarts_primary: false,
                preference: role.and_then(|r| r.preference),
                follows: role.and_then(|r| r.follows.as_deref()),
            });
        }
    }
}

/// Best candidate first: the higher score for the promoted role (the stickiness keeps a
/// primary in place), then promoted now, then the higher preference, then the higher
/// placement score, then one not `shunned` (a colocation with its role found no room
/// beside it), then running before new, then a primary restarted in place before the
/// other new ones, then the one the round of planning before promoted (`was`: the
/// colocations with its role were placed beside it), then the lower number. The score
/// comes before the preference because it is what the operator wrote; the preference
/// (say, a replication offset) decides among the nodes the operator did not tell apart.
fn rank(
    a: &Runs,
    b: &Runs,
    (was, shunned): (impl Fn(&Runs) -> bool, impl Fn(&Runs) -> bool),
) -> std::cmp::Ordering {
    let key = |r: &Runs| {
        (
            r.score,
            r.promoted,
            r.preference.is_some(),
            r.preference,
            r.placement,
        )
    };
    let last = |r: &Runs| {
        let alike = (r.start.is_some(), !r.restarts_primary, !was(r), r.index);
        (shunned(r), alike)
    };
    key(b).cmp(&key(a)).then(last(a).cmp(&last(b)))
}

/// What the ranking chose.
struct Choice {
    /// Positions in `runs` of the instances promoted after the plan, best first.
    chosen: Vec<usize>,
    /// Positions of instances promoted now beyond the limits.
    extra: Vec<usize>,
}

impl<'a> Bundle<'a, '_, '_> {
    fn inst(&self, index: u32) -> Inst<'a> {
        Inst {
            bundle: self.name,
            index,
        }
    }

    /// Holders no step of this plan frees: they keep their place.
    fn stuck(&self) -> impl Iterator<Item = &Holder<'a>> {
        self.holders
            .iter()
            .filter(|h| h.why != Held::Promoted && h.ends.is_none())
    }

    /// Invariant 8: fills the places left by the holders that stay, first with the
    /// instances promoted now, then with the best of the rest, within both limits.
    fn choose(&self) -> Choice {
        let (max, per_node) = (self.p.max_promoted, self.p.max_promoted_per_node);
        let mut on: BTreeMap<&str, u32> = BTreeMap::new();
        let mut taken = 0u32;
        for h in self.stuck() {
            taken += 1;
            *on.entry(h.node.as_str()).or_default() += 1;
        }
        let mut c = Choice {
            chosen: Vec::new(),
            extra: Vec::new(),
        };
        for (i, r) in self.runs.iter().enumerate() {
            let here = on.entry(r.node.as_str()).or_default();
            if taken < max && *here < per_node && !r.score.is_neg_infinity() {
                taken += 1;
                *here += 1;
                c.chosen.push(i);
            } else if r.promoted {
                c.extra.push(i);
            }
        }
        c
    }

    fn plan(mut self, b: &mut Builder) {
        let before = self.cx.before.and_then(|p| p.get(self.name));
        let was =
            |r: &Runs| before.is_some_and(|b| b.iter().any(|(i, n)| (*i, n) == (r.index, r.node)));
        let passed_over: Vec<u32> = self
            .cx
            .shunned
            .iter()
            .filter(|(b, _)| b == self.name)
            .map(|(_, i)| *i)
            .collect();
        let shunned = |r: &Runs| passed_over.contains(&r.index);
        self.runs.sort_by(|a, b| rank(a, b, (&was, &shunned)));
        let choice = self.choose();
        let on = choice.chosen.iter().map(|i| {
            let r = &self.runs[*i];
            (r.index, r.node.clone())
        });
        // A running copy whose role is unknown and that stays may be the primary: what
        // follows the primaries stays beside it (or away from it) rather than stopping
        // while its role command fails.
        let maybe = self.stuck().filter(|h| h.why == Held::Unknown);
        let maybe = maybe.map(|h| (h.index, h.node.clone()));
        b.promoted_on
            .insert(self.name.clone(), on.chain(maybe).collect());
        if self.cx.explain {
            b.promotions.push(self.explain(&choice));
        }
        let target = choice.chosen.first().map(|i| &self.runs[*i]);
        let follow = target.map(|t| (t.index, t.node.clone()));
        let host = target.and_then(|t| host_of(self.cx.spec, t.node.as_str()));
        let follows: Vec<usize> = (0..self.runs.len())
            .filter(|i| !choice.chosen.contains(i) && !choice.extra.contains(i))
            .filter(|i| {
                let r = &self.runs[*i];
                target.is_some() && (r.start.is_some() || r.follows != host)
            })
            .collect();
        let stopping: Vec<&Holder> = self
            .holders
            .iter()
            .filter(|h| {
                h.why == Held::Promoted && self.stops.contains_key(&(h.index, h.node.as_str()))
            })
            .collect();
        let promotes = self.promoted_by_plan(&choice).count();
        if promotes == 0 && choice.extra.is_empty() && stopping.is_empty() && follows.is_empty() {
            return self.wait_for_stuck(b, &choice);
        }
        if !self.cx.quorum.may_act() {
            let why = self.cx.quorum.lacking();
            let inst = self.inst(self.runs.first().map_or(0, |r| r.index));
            return b.block(
                inst,
                format!("{why}: nothing of {} is promoted or demoted", self.name),
            );
        }
        let mut frees: Vec<StepId> = self.holders.iter().filter_map(|h| h.ends).collect();
        frees.extend(self.demotes(b, &choice, &stopping));
        let promoted = self.promote(b, &choice, &frees);
        // Every instance in `follows` has a target to follow (see its filter).
        for (i, t) in follows.into_iter().zip(std::iter::repeat(target).flatten()) {
            let r = &self.runs[i];
            let mut after = promoted.clone();
            after.extend(r.start);
            let why = format!(
                "tell {} to follow {}, promoted on {}",
                self.inst(r.index).name(),
                self.inst(t.index).name(),
                t.node
            );
            b.demote(
                r.node,
                self.inst(r.index),
                (follow.clone(), false),
                why,
                after,
            );
        }
    }

    /// The chosen instances not promoted now: those this plan promotes.
    fn promoted_by_plan<'s>(&'s self, choice: &'s Choice) -> impl Iterator<Item = &'s Runs<'a>> {
        choice
            .chosen
            .iter()
            .map(|i| &self.runs[*i])
            .filter(|r| !r.promoted)
    }

    /// The best chosen instance other than `index`: whom a demoted copy follows.
    fn leader_for(&self, choice: &Choice, index: u32) -> Option<(u32, Name)> {
        let r = choice
            .chosen
            .iter()
            .map(|i| &self.runs[*i])
            .find(|r| r.index != index)?;
        Some((r.index, r.node.clone()))
    }

    /// Demotes the promoted copies the plan stops (each before its stop) and those beyond
    /// the limits; returns the demote steps.
    fn demotes(&self, b: &mut Builder, choice: &Choice, stopping: &[&Holder<'a>]) -> Vec<StepId> {
        let mut frees = Vec::new();
        for h in stopping {
            let why = format!("demote {} before it stops", self.inst(h.index).name());
            let d = b.demote(
                h.node,
                self.inst(h.index),
                (self.leader_for(choice, h.index), true),
                why,
                Vec::new(),
            );
            if let Some(stop) = self.stops.get(&(h.index, h.node.as_str())) {
                b.add_after(*stop, d);
            }
            frees.push(d);
        }
        for i in &choice.extra {
            let r = &self.runs[*i];
            let inst = self.inst(r.index).name();
            let why = if r.score.is_neg_infinity() {
                format!(
                    "{inst} may not be promoted on {} (a location with role promoted scores it -INFINITY): demote it",
                    r.node
                )
            } else {
                format!(
                    "{} may have at most {} promoted instance(s), {} per node, and better candidates come first: demote {inst}",
                    self.name, self.p.max_promoted, self.p.max_promoted_per_node,
                )
            };
            let d = b.demote(
                r.node,
                self.inst(r.index),
                (self.leader_for(choice, r.index), true),
                why,
                Vec::new(),
            );
            frees.push(d);
        }
        frees
    }

    /// Promotes the chosen instances not promoted now, each after its start and after
    /// every step that frees a place (invariant 8); returns the promote steps.
    fn promote(&self, b: &mut Builder, choice: &Choice, frees: &[StepId]) -> Vec<StepId> {
        let mut out = Vec::new();
        for r in self.promoted_by_plan(choice) {
            let mut after = frees.to_vec();
            after.extend(r.start);
            let pref = r
                .preference
                .map_or(String::new(), |p| format!(", preference {p}"));
            let why = format!(
                "{} has {} of {} promoted instances: promote the best candidate{pref}",
                self.name,
                choice.chosen.len() - 1,
                self.p.max_promoted
            );
            out.push(b.promote(r.node, self.inst(r.index), why, after));
        }
        out
    }

    /// Nothing to do but, maybe, wait: when fewer instances are promoted than allowed
    /// because a holder stays, the best candidate left waits, with why.
    fn wait_for_stuck(&self, b: &mut Builder, choice: &Choice) {
        let max = usize::try_from(self.p.max_promoted).unwrap_or(usize::MAX);
        let Some(h) = self.stuck().next() else {
            return;
        };
        let Some(r) = (0..self.runs.len())
            .find(|i| !choice.chosen.contains(i))
            .map(|i| &self.runs[i])
        else {
            return;
        };
        if choice.chosen.len() >= max {
            return;
        }
        let held = self.inst(h.index).name();
        let why = match h.why {
            Held::Lost => {
                let because = self
                    .cx
                    .current
                    .unfenceable
                    .get(h.node.as_str())
                    .cloned()
                    .unwrap_or_else(|| "it is not fenced by this plan".to_owned());
                format!(
                    "{held} may still be promoted on lost node {}, which cannot be fenced: {because}; after checking it is off, run `quorate fence confirm {}`",
                    h.node, h.node
                )
            }
            _ => format!(
                "the role of {held} on {} is unknown (its role command failed)",
                h.node
            ),
        };
        b.block(
            self.inst(r.index),
            format!("not promoted (maxPromoted {}): {why}", self.p.max_promoted),
        );
    }

    fn explain(&self, choice: &Choice) -> Promotion {
        Promotion {
            bundle: self.name.clone(),
            promoted: choice
                .chosen
                .iter()
                .map(|i| self.inst(self.runs[*i].index).name())
                .collect(),
            candidates: self
                .runs
                .iter()
                .map(|r| PromotionCandidate {
                    instance: self.inst(r.index).name(),
                    node: r.node.clone(),
                    score: r.score,
                    placement: r.placement,
                    promoted_now: r.promoted,
                    preference: r.preference,
                    starting: r.start.is_some(),
                })
                .collect(),
        }
    }
}

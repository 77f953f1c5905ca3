//! Ranking stages: each adds its own part to a node's score. The stages shared by every
//! instance of a bundle ([`Ranker::bundle_scores`]) run once per bundle; stickiness runs
//! per instance and touches the nodes the instance is on.

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use fixedbitset::FixedBitSet;

use super::scores::{Classes, Entries, Scores};
use super::{Bundle, Counts, HashMap, NodeOf, Nodes, PlacedOn, Placer, feasible, part};
use crate::plan::current::Whereabouts;
use crate::plan::map_for;
use crate::plan::model::{ScorePart, Stage};
use crate::spec::constraint::{
    ColocationConstraint, ConstraintSpec, LocationConstraint, NODE_NAME, NodeMatcher, Rule,
};
use crate::spec::{Name, Score, SpecSet};

/// The parts of one instance's score of its own, on the few nodes they touch.
#[derive(Default)]
pub(super) struct Own(BTreeMap<usize, Vec<ScorePart>>);

impl Own {
    pub(super) fn add(&mut self, i: usize, part: ScorePart) {
        self.0.entry(i).or_default().push(part);
    }

    /// What these parts add up to on each node they touch, in node order: selection adds
    /// it to the bundle's shared score there.
    pub(super) fn added(&self) -> Vec<(usize, Score)> {
        let sum = |parts: &[ScorePart]| parts.iter().map(|p| p.score).sum();
        self.0.iter().map(|(i, parts)| (*i, sum(parts))).collect()
    }

    /// The nodes these parts touch, in node order.
    pub(super) fn nodes(&self) -> impl Iterator<Item = usize> + '_ {
        self.0.keys().copied()
    }

    pub(super) fn parts(&self, i: usize) -> &[ScorePart] {
        self.0.get(&i).map_or(&[], Vec::as_slice)
    }
}

/// The stickiness stage: the node the instance runs on or, when it runs nowhere, the
/// node where its exited container is (restart in place first) gets the stickiness. In a
/// top-up round, the node it claims instead, and none at all for a bundle the round
/// before placed nowhere when it is tried as the next plan will see it (see
/// [`super::top_up`]).
pub(super) fn stickiness(p: &Placer<'_, '_>, b: &Bundle<'_, '_>, index: u32, own: &mut Own) {
    let score = b.spec.settings(&p.spec.cluster.defaults).stickiness;
    if let Some(at) = p.claimed.get(&(b.name, index)) {
        own.add(*at, part(Stage::Stickiness, "stickiness".into(), score));
        return;
    }
    if p.unstuck.contains(b.name) {
        return;
    }
    let copies = b.of(index);
    let sticky = copies.iter().any(|c| c.running());
    for copy in copies
        .iter()
        .filter(|c| c.whereabouts == Whereabouts::Reachable && (c.running() || !sticky))
    {
        if let Some(i) = copy.at {
            own.add(i, part(Stage::Stickiness, "stickiness".into(), score));
        }
    }
}

/// How many colocations down from a primary the dependents stage follows a chain of
/// dependents. Every bundle placed weighs the dependents below it, so a chain of `n` costs
/// `n` times this rather than `n²` (a chain of 20,000 took over a minute to plan when
/// followed to its end); a group or chain written by hand is far shorter. Preferences
/// farther down are left out, as preferences: a dependent's own constraints still hold
/// when it is placed.
pub(super) const DEPENDENT_DEPTH: usize = 64;

/// What the shared parts of bundles are computed from. Its maps are looked up, never
/// walked: hashed. The constraints in each are in the set's order.
pub(super) struct Ranker<'s, 'a> {
    spec: &'a SpecSet,
    nodes: &'s Nodes<'a>,
    /// The nodes that may not take any instance (lost, fenced, in standby).
    unusable: Vec<usize>,
    /// Location constraints, by the bundle they place, each with what it matches.
    locations: HashMap<&'a str, Vec<Location<'a>>>,
    /// Colocations, by the bundle they place.
    colocations: HashMap<&'a str, Vec<(&'a str, &'a ColocationConstraint)>>,
    /// `-INFINITY` colocations, by the bundle they keep away from (`with`).
    shunned_by: HashMap<&'a str, Vec<(&'a str, &'a ColocationConstraint)>>,
    /// Colocations, by the bundle they follow (`with`): its dependents.
    dependents_of: HashMap<&'a str, Vec<(&'a str, &'a ColocationConstraint)>>,
    /// Nodes alike to every location rule.
    classes: Rc<Classes>,
    /// The promoted instances of promotable bundles, for colocations with `role:
    /// promoted`.
    promoted: Option<&'a super::Promoted>,
    explain: bool,
}

impl<'s, 'a> Ranker<'s, 'a> {
    pub(super) fn new(
        spec: &'a SpecSet,
        nodes: &'s Nodes<'a>,
        usable: &[bool],
        promoted: Option<&'a super::Promoted>,
        explain: bool,
    ) -> Ranker<'s, 'a> {
        // Room for an entry per constraint of each kind: grown as they fill, these maps
        // would hash every key again each time they double.
        let (mut locations, mut colocations) = (0, 0);
        for c in spec.constraints.values() {
            match c {
                ConstraintSpec::Location(_) => locations += 1,
                ConstraintSpec::Colocation(_) => colocations += 1,
                ConstraintSpec::Order(_) => {}
            }
        }
        let (classes, mut rule_classes) = node_classes(spec, nodes, locations, explain);
        let mut r = Ranker {
            spec,
            nodes,
            unusable: (0..usable.len()).filter(|i| !usable[*i]).collect(),
            locations: map_for(locations),
            colocations: map_for(colocations),
            shunned_by: HashMap::default(),
            dependents_of: map_for(colocations),
            classes: Rc::new(classes),
            promoted,
            explain,
        };
        for (cname, c) in &spec.constraints {
            match c {
                // A location with a role ranks promotions (`plan::promotion`) only.
                ConstraintSpec::Location(l) if l.role.is_some() => {}
                ConstraintSpec::Location(l) => {
                    let matched = match &l.node {
                        Some(n) => Matched::Node(nodes.of(n.as_str())),
                        None => Matched::Classes(
                            rule_classes
                                .remove(cname.as_str())
                                .unwrap_or_else(|| Rc::from([])),
                        ),
                    };
                    let at = r.locations.entry(l.bundle.as_str()).or_default();
                    at.push(Location {
                        name: cname.as_str(),
                        l,
                        matched,
                    });
                }
                ConstraintSpec::Colocation(c) => {
                    let at = r.colocations.entry(c.bundle.as_str()).or_default();
                    at.push((cname.as_str(), c));
                    // With a role, the promoted instances are decided without it (see
                    // `super::Promoted`): it neither moves `with` nor is avoided by it.
                    if c.role.is_some() {
                        continue;
                    }
                    if c.bundle != c.with {
                        let at = r.dependents_of.entry(c.with.as_str()).or_default();
                        at.push((cname.as_str(), c));
                    }
                    if c.score.is_neg_infinity() {
                        let at = r.shunned_by.entry(c.with.as_str()).or_default();
                        at.push((cname.as_str(), c));
                    }
                }
                ConstraintSpec::Order(_) => {}
            }
        }
        r
    }

    /// Whether `dependent` has an `INFINITY` colocation without a role with `primary`:
    /// it runs only beside it.
    pub(super) fn beside(&self, dependent: &str, primary: &str) -> bool {
        let of = self
            .colocations
            .get(dependent)
            .map_or(&[][..], Vec::as_slice);
        of.iter()
            .any(|(_, c)| c.score.is_infinity() && c.role.is_none() && c.with.as_str() == primary)
    }

    /// The classes of nodes the location rules treat alike.
    pub(super) fn classes(&self) -> &Rc<Classes> {
        &self.classes
    }

    /// The parts of `bundle` shared by its instances, a member of the mandatory
    /// colocation cycle `group` when given. The cycle goes where all its members may run:
    /// its first member adds the parts of every other member, and each of the others may
    /// only go where every member placed before it is (the cycle is made whole afterwards
    /// by [`super::group::Tally::keep_group_together`]).
    pub(super) fn bundle_scores(
        &self,
        bundle: &str,
        group: Option<&[&str]>,
        placed_on: &PlacedOn,
        node_of: &NodeOf,
    ) -> Scores {
        let unplaced: BTreeSet<&str> = group
            .unwrap_or(&[])
            .iter()
            .copied()
            .filter(|m| !placed_on.contains_key(m))
            .collect();
        let mut own = self.shared(bundle, placed_on, node_of, &unplaced);
        match group.and_then(|g| g.first()) {
            Some(first) if *first == bundle => {
                for member in unplaced.iter().filter(|m| **m != bundle) {
                    let theirs = self.shared(member, placed_on, node_of, &unplaced);
                    self.cycle_members(&mut own, member, theirs);
                }
                self.dependents(&mut own, group.unwrap_or(&[]), placed_on);
            }
            Some(_) => {
                for member in group
                    .unwrap_or(&[])
                    .iter()
                    .filter(|m| !unplaced.contains(*m))
                {
                    let with: Vec<usize> = placed_on
                        .get(member)
                        .into_iter()
                        .flat_map(Counts::nodes)
                        .collect();
                    own.add_except(
                        &with,
                        Stage::Cycle,
                        || format!("colocation cycle: no {member} here"),
                        Score::NEG_INFINITY,
                    );
                }
            }
            None => self.dependents(&mut own, &[bundle], placed_on),
        }
        own
    }

    /// The dependents stage, Pacemaker's rule for the primary of a colocation: the
    /// preferences of every bundle colocated with one of `primaries` and not placed yet
    /// (its location constraints), and of the
    /// bundles colocated with those in turn, are added to the primary's scores, each
    /// multiplied by the colocation scores on the way over `INFINITY` (so an `INFINITY`
    /// colocation passes a dependent's `-INFINITY` on). A negative preference through a
    /// negative colocation is not passed on; a primary with several replicas is never
    /// brought below zero on a node by them (a node it prefers keeps 1: Pacemaker's
    /// clones). When the parts would leave the primary no
    /// node, none is added: they are preferences, and the primary's own hard constraints
    /// still decide; the dependents' hard constraints are kept when they are placed.
    fn dependents(&self, own: &mut Scores, primaries: &[&str], placed: &PlacedOn) {
        if !primaries.iter().any(|p| self.dependents_of.contains_key(p)) {
            return;
        }
        let spec = self.spec;
        let several = primaries
            .iter()
            .any(|p| spec.bundles.get(*p).is_some_and(|b| b.replicas > 1));
        let mut seen: BTreeSet<&str> = primaries.iter().copied().collect();
        let mut weighed = Vec::new();
        for primary in primaries {
            self.merge(primary, 1.0, &mut seen, placed, &mut weighed);
        }
        if weighed.is_empty() {
            return;
        }
        // Added in place, the scores before kept, to undo them all when they would leave
        // the primary no node.
        let had_room = own.any(|s| !s.is_neg_infinity());
        let before = own.clone();
        let mut added = Vec::new(); // (node, score, their score, whose) when explaining
        for (k, w) in weighed.iter().enumerate() {
            // A dependent's preferences mostly share one score: weighed once for them.
            let mut last: Option<(Score, Option<Score>)> = None;
            let change = |now: Score, theirs: Score| {
                let delta = match last {
                    Some((score, delta)) if score == theirs => delta,
                    _ => last.insert((theirs, theirs.weighted(w.weight))).1,
                }?;
                if several && now + delta < Score::ZERO {
                    // A node the primary prefers keeps a little of that preference.
                    return (now > Score::ZERO).then(|| Score::new(1 - now.value()));
                }
                Some(delta)
            };
            let prefs = self.preferences(w.dependent);
            own.change(&prefs, change, |node, delta, theirs| {
                added.push((node, delta, theirs, k));
            });
        }
        if had_room && !own.any(|s| !s.is_neg_infinity()) {
            *own = before;
            return;
        }
        for (node, delta, theirs, k) in added {
            let w = &weighed[k];
            let source = || {
                format!(
                    "{} scores {theirs} here (colocation {})",
                    w.dependent, w.constraint
                )
            };
            own.explain(node, Stage::Dependents, source, delta);
        }
    }

    /// The dependents of `bundle` (not placed, not `seen`) with their weight, and
    /// theirs, at `factor`, depth first, down to [`DEPENDENT_DEPTH`] colocations from
    /// `bundle` on the path that reaches each first. (With a stack of its own: a chain of
    /// dependents may be as long as a spec set has bundles.)
    fn merge<'x>(
        &self,
        bundle: &'x str,
        factor: f64,
        seen: &mut BTreeSet<&'x str>,
        placed: &PlacedOn,
        weighed: &mut Vec<Weighed<'x>>,
    ) where
        'a: 'x,
    {
        // Each bundle on the way down, its factor and its next dependent to look at.
        let mut stack: Vec<(&'x str, f64, usize)> = vec![(bundle, factor, 0)];
        while let Some(top) = stack.last_mut() {
            let (bundle, factor, next) = *top;
            let dependents = self
                .dependents_of
                .get(bundle)
                .map_or(&[][..], Vec::as_slice);
            let Some(&(cname, c)) = dependents.get(next) else {
                stack.pop();
                continue;
            };
            top.2 += 1;
            let dependent = c.bundle.as_str();
            // A dependent `bundle` is itself colocated with (a cycle of finite scores) is
            // left out: `bundle`'s own colocation with it has the say.
            let mutual = self
                .colocations
                .get(bundle)
                .is_some_and(|cs| cs.iter().any(|(_, c)| c.with.as_str() == dependent));
            if c.score == Score::ZERO
                || mutual
                || placed.contains_key(dependent)
                || !seen.insert(dependent)
            {
                continue;
            }
            let weight = factor * c.score.factor();
            weighed.push(Weighed {
                dependent,
                constraint: cname,
                weight,
            });
            if stack.len() < DEPENDENT_DEPTH {
                stack.push((dependent, weight, 0));
            }
        }
    }

    /// A dependent's own preferences: its location constraints, summed on each node
    /// they touch in the constraints' order, as (class, score) sorted by class for the
    /// nodes of the classes its rules match, and (node, score) sorted by node for the
    /// nodes it names (which take every constraint on them, their class's rules too).
    /// Not its stickiness: where it runs now would move the primary in the plan after
    /// the one that moves the dependent, and planning again against a plan's result must
    /// change nothing.
    fn preferences(&self, bundle: &str) -> Entries {
        let locations = self.locations.get(bundle).map_or(&[][..], Vec::as_slice);
        let mut classes: BTreeMap<usize, Score> = BTreeMap::new();
        let mut named = Vec::new();
        for at in locations {
            match &at.matched {
                Matched::Node(i) => named.extend(*i),
                Matched::Classes(matched) => {
                    for &c in matched.iter() {
                        *classes.entry(c).or_insert(Score::ZERO) += at.l.score;
                    }
                }
            }
        }
        named.sort_unstable();
        named.dedup();
        let on = |i: usize| {
            let class = self.classes.of(i);
            let hits = |at: &&Location| match &at.matched {
                Matched::Node(n) => *n == Some(i),
                Matched::Classes(matched) => matched.binary_search(&class).is_ok(),
            };
            let scores = locations.iter().filter(hits).map(|at| at.l.score);
            (i, scores.sum())
        };
        let nodes = named.into_iter().map(on).collect();
        Entries {
            by_class: classes.into_iter().collect(),
            by_node: nodes,
        }
    }

    /// The cycle stage of its first member: another member's parts, added.
    fn cycle_members(&self, own: &mut Scores, member: &str, theirs: Scores) {
        own.add_scores(&theirs);
        // Both empty unless explaining.
        for (mine, why) in own.why.iter_mut().zip(theirs.why) {
            mine.extend(why.into_iter().map(|p| {
                let source = format!("colocation cycle with {member}: {}", p.source);
                part(Stage::Cycle, source, p.score)
            }));
        }
    }

    /// The stages of `bundle` alone, on every node: feasibility (unavailable nodes),
    /// location constraints, colocations with the bundles placed (`placed_on`).
    /// Colocations with the members of its cycle not placed yet (`unplaced`) are left to
    /// the cycle stage, but for those with a role: they follow the promoted instances
    /// where the round before put them.
    fn shared(
        &self,
        bundle: &str,
        placed_on: &PlacedOn,
        node_of: &NodeOf,
        unplaced: &BTreeSet<&str>,
    ) -> Scores {
        let mut s = Scores::new(&self.classes, self.explain);
        feasible::unavailable(&mut s, &self.unusable);
        self.location(&mut s, bundle);
        self.colocation(&mut s, bundle, (placed_on, node_of), unplaced);
        self.anti_colocation(&mut s, bundle, placed_on);
        s
    }

    /// The location stage: each location constraint's score on the nodes it matches.
    fn location(&self, s: &mut Scores, bundle: &str) {
        for at in self.locations.get(bundle).map_or(&[][..], Vec::as_slice) {
            let source = || format!("location {}", at.name);
            match &at.matched {
                Matched::Node(Some(i)) => s.add(*i, Stage::Location, source, at.l.score),
                Matched::Node(None) => {}
                Matched::Classes(classes) => {
                    s.add_classes(classes, Stage::Location, source, at.l.score);
                }
            }
        }
    }

    /// The colocation stage: each colocation's score where the bundle it follows has an
    /// instance placed; an `INFINITY` one bans the other nodes.
    fn colocation(
        &self,
        s: &mut Scores,
        bundle: &str,
        (placed_on, node_of): (&PlacedOn, &NodeOf),
        unplaced: &BTreeSet<&str>,
    ) {
        let colocations = self.colocations.get(bundle).map_or(&[][..], Vec::as_slice);
        for (cname, c) in colocations {
            // One with a role follows the primaries wherever they are, placed or not.
            if c.role.is_none() && unplaced.contains(c.with.as_str()) {
                continue;
            }
            let primaries;
            let with = match c.role {
                // The first round, which decides the primaries, leaves it out.
                Some(_) => match self.promoted.map(|p| p.get(&c.with)) {
                    Some(Some(chosen)) => {
                        let done = placed_on.get(c.with.as_str());
                        primaries = self.placed(c.with.as_str(), chosen, node_of, done);
                        Some(&primaries)
                    }
                    Some(None) => continue,
                    None => {
                        self.unsettled(s, cname, c);
                        continue;
                    }
                },
                None => placed_on.get(c.with.as_str()),
            };
            // Only written when explaining.
            let whom = || match c.role {
                Some(_) => format!("{}'s promoted instance", c.with),
                None => c.with.to_string(),
            };
            let with_source = || format!("colocation {cname} with {}", whom());
            let here: Vec<usize> = with.into_iter().flat_map(Counts::nodes).collect();
            for &i in &here {
                s.add(i, Stage::Colocation, with_source, c.score);
            }
            if c.score.is_infinity() {
                let source = || format!("colocation {cname}: no {} here", whom());
                s.add_except(&here, Stage::Colocation, source, Score::NEG_INFINITY);
            }
        }
    }

    /// Where the primaries do not settle, a bundle colocated with them runs nowhere.
    fn unsettled(&self, s: &mut Scores, cname: &str, c: &ColocationConstraint) {
        let source = || {
            format!(
                "colocation {cname} with {}'s promoted instances does not settle (where {} runs changes which are promoted, and back): loosen it or the constraints on {}",
                c.with, c.bundle, c.bundle
            )
        };
        s.add_except(&[], Stage::Colocation, source, Score::NEG_INFINITY);
    }

    /// How many of the instances `chosen` of `bundle` this placement put on each node.
    /// One it placed nowhere counts where the round before promoted it if this placement
    /// put another instance of `bundle` there (`done`: where it placed them), which the
    /// plan's promotion then takes instead, and nowhere else; before `bundle` is placed,
    /// it counts there.
    fn placed(
        &self,
        bundle: &str,
        chosen: &[(u32, Name)],
        node_of: &NodeOf,
        done: Option<&Counts>,
    ) -> Counts {
        let nodes = chosen.iter().filter_map(|(index, before)| {
            if let Some(node) = node_of.get(bundle, *index) {
                return self.nodes.of(node?.as_str());
            }
            let at = self.nodes.of(before.as_str())?;
            done.is_none_or(|d| d.on(at) > 0).then_some(at)
        });
        Counts::at(nodes.collect())
    }

    /// A `-INFINITY` colocation keeps two bundles apart whichever is placed first: one
    /// placed before the bundle it shuns (in a colocation cycle) could not avoid it, so
    /// the shunned bundle avoids it instead.
    fn anti_colocation(&self, s: &mut Scores, bundle: &str, placed_on: &PlacedOn) {
        let shunned = self.shunned_by.get(bundle).map_or(&[][..], Vec::as_slice);
        for (cname, c) in shunned {
            let Some(there) = placed_on
                .get(c.bundle.as_str())
                .filter(|_| c.bundle != c.with)
            else {
                continue;
            };
            for i in there.nodes() {
                let source = || format!("colocation {cname}: {} runs here", c.bundle);
                s.add(i, Stage::Colocation, source, Score::NEG_INFINITY);
            }
        }
    }

    /// The `INFINITY` colocations between members of `group`, as (bundle, with).
    pub(super) fn mandatory_within(&self, group: &[&'a str]) -> Vec<(&'a str, &'a str)> {
        group
            .iter()
            .flat_map(|b| self.colocations.get(b).map_or(&[][..], Vec::as_slice))
            .filter(|(_, c)| c.score.is_infinity() && group.contains(&c.with.as_str()))
            .map(|(_, c)| (c.bundle.as_str(), c.with.as_str()))
            .collect()
    }
}

/// What a location constraint matches: the node it names (if there is one), or the
/// classes of the nodes its rule matches (worked out once per distinct rule).
enum Matched {
    Node(Option<usize>),
    Classes(Rc<[usize]>),
}

/// A location constraint, by name, with what it matches: worked out once per plan, as
/// every bundle it places reads it once per round of placement.
struct Location<'a> {
    name: &'a str,
    l: &'a LocationConstraint,
    matched: Matched,
}

/// A dependent whose preferences a primary takes, with the weight they are taken at.
struct Weighed<'a> {
    dependent: &'a str,
    /// The colocation that makes it a dependent.
    constraint: &'a str,
    weight: f64,
}

/// The classes of nodes every location rule treats alike, and the classes each location
/// constraint's rule matches, by constraint name. Each distinct rule is matched against
/// the nodes once, and each distinct result read for one node of each kind: nodes of the same
/// attributes are alike unless a rule reads their names. With `explain`, each node is a
/// class of its own.
fn node_classes<'a>(
    spec: &'a SpecSet,
    nodes: &Nodes<'_>,
    locations: usize,
    explain: bool,
) -> (Classes, HashMap<&'a str, Rc<[usize]>>) {
    let named = nodes.specs.iter().map(|n| (n.name.as_str(), &n.attributes));
    let mut matcher = NodeMatcher::new(named);
    let mut distinct: HashMap<&'a Rule, usize> = map_for(locations);
    let mut same: HashMap<FixedBitSet, usize> = HashMap::default();
    let mut rule_of = Vec::new();
    for (cname, c) in &spec.constraints {
        let ConstraintSpec::Location(l) = c else {
            continue;
        };
        let LocationConstraint {
            node: None,
            rule: Some(rule),
            ..
        } = &**l
        else {
            continue;
        };
        let k = *distinct.entry(rule).or_insert_with(|| {
            // Rules written differently often match the same nodes: one mask for them.
            let next = same.len();
            *same.entry(matcher.mask(rule)).or_insert(next)
        });
        rule_of.push((cname.as_str(), k));
    }
    let mut masks: Vec<(FixedBitSet, usize)> = same.into_iter().collect();
    masks.sort_unstable_by_key(|m| m.1);
    let masks: Vec<FixedBitSet> = masks.into_iter().map(|m| m.0).collect();
    let by_name = distinct.keys().any(|r| reads_name(r));
    let mut kinds: HashMap<&BTreeMap<String, String>, usize> = HashMap::default();
    let group_of: Vec<usize> = (nodes.specs.iter().enumerate())
        .map(|(i, n)| match by_name {
            true => i,
            false => {
                let next = kinds.len();
                *kinds.entry(&n.attributes).or_insert(next)
            }
        })
        .collect();
    let (classes, covering) = Classes::new(&group_of, &masks, explain);
    let rule_classes = rule_of
        .into_iter()
        .map(|(cname, k)| (cname, Rc::clone(&covering[k])))
        .collect();
    (classes, rule_classes)
}

/// Whether `rule` reads the node's name (`#uname`).
fn reads_name(rule: &Rule) -> bool {
    rule.attribute == NODE_NAME || rule.and.iter().chain(&rule.or).any(reads_name)
}

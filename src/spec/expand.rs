//! Groups and resource sets, expanded into the pairs of bundles the planner reads, as
//! Pacemaker expands them internally. Validation runs this once the set's references are
//! checked; the planner only ever sees the result.
//!
//! - A group `[m0, m1, ..]`: each member `mk` colocated with `mk-1` at `INFINITY`, and a
//!   mandatory, symmetrical order `mk-1` then `mk`.
//! - A group named in a constraint stands for one member: the first where it is placed
//!   (a location; the dependent of a colocation, `group with X`; the `then` of an order),
//!   the last where others wait for all of it (the `first` of an order; the primary of an
//!   `INFINITY` colocation, `X with group`: the last member runs only where all do). The
//!   primary of a finite colocation is the first member (Pacemaker likewise).
//! - Colocation sets: in a sequential set each bundle with the one before it (a negative
//!   score: each with every one before it); a set with the set after it, its first bundle
//!   with the last of the next (every bundle with every bundle where a set is not
//!   sequential).
//! - Order sets: in a sequential set each bundle after the one before it; a set before the
//!   set after it, its last bundle before the first of the next (every bundle before every
//!   bundle where a set is not sequential). A set with `requireAll: false` lets the next
//!   set start after any one of its bundles.
//!
//! - A colocation of score 0, a pair or sets, is left out: it asks for nothing, and
//!   Pacemaker ignores it too.
//!
//! Every constraint made here is named after its origin (`group web: app after db`,
//! `chain: b with a`), so reasons and `--explain` say where it comes from.

use std::collections::BTreeMap;

use super::constraint::{
    ColocationConstraint, ConstraintSpec, OrderAction, OrderConstraint, OrderKind,
};
use super::{GroupSpec, Kind, Name, Score, SpecSet};

/// Where a constraint made by [`expand`] was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Origin {
    /// A `Group` or a `Constraint`.
    pub kind: Kind,
    /// Its document.
    pub name: Name,
    /// The field the constraint comes from.
    pub path: String,
}

/// An expanded set, and the origin of each constraint made.
#[derive(Debug)]
pub struct Expanded {
    /// The set: groups kept for reference, constraints in pairs of bundles.
    pub set: SpecSet,
    /// The origin of every constraint [`expand`] made, by its name.
    pub origins: BTreeMap<Name, Origin>,
}

/// Which member a group's name stands for.
#[derive(Clone, Copy)]
enum End {
    First,
    Last,
}

/// The member of group `name` at `end`, or `name` itself when it is no group.
fn resolve(groups: &BTreeMap<Name, GroupSpec>, name: &Name, end: End) -> Name {
    let member = groups.get(name).and_then(|g| match end {
        End::First => g.bundles.first(),
        End::Last => g.bundles.last(),
    });
    member.unwrap_or(name).clone()
}

/// What expansion makes: the constraints made here by name (one of each name), and
/// where each comes from.
#[derive(Default)]
struct Out {
    made: BTreeMap<Name, ConstraintSpec>,
    origins: BTreeMap<Name, Origin>,
}

impl Out {
    fn make(&mut self, name: String, spec: ConstraintSpec, origin: Origin) {
        let name = Name::generated(name);
        if !self.made.contains_key(&name) {
            self.origins.insert(name.clone(), origin);
            self.made.insert(name, spec);
        }
    }
}

/// Expands the groups and resource sets of `set` (see the module docs). A set without
/// them is returned as it was.
pub fn expand(mut set: SpecSet) -> Expanded {
    let mut out = Out::default();
    for (name, group) in &set.groups {
        chain(name, group, &mut out);
    }
    // The spec's own constraints are rewritten where they are, in name order: the map
    // loading packed stays packed (rebuilding it moved every constraint twice). The made
    // names are ones no spec can write, so none replaces one of them.
    let groups = &set.groups;
    set.constraints
        .retain(|name, c| expand_one(groups, name, c, &mut out));
    set.constraints.extend(out.made);
    Expanded {
        set,
        origins: out.origins,
    }
}

/// Rewrites constraint `c` as a pair with groups resolved, or makes its sets' pairs into
/// `out`; returns whether `c` stays in the set.
fn expand_one(
    groups: &BTreeMap<Name, GroupSpec>,
    name: &Name,
    c: &mut ConstraintSpec,
    out: &mut Out,
) -> bool {
    match c {
        ConstraintSpec::Location(l) => l.bundle = resolve(groups, &l.bundle, End::First),
        // Neither a pair nor sets: refused by validation, and left out here so no
        // check reads a bundle without a name.
        ConstraintSpec::Colocation(c) if c.sets.is_empty() && unset(&c.bundle, &c.with) => {
            return false;
        }
        ConstraintSpec::Order(o) if o.sets.is_empty() && unset(&o.first, &o.then) => return false,
        // A colocation of score 0 asks nothing: left out, as Pacemaker ignores it (and
        // as its sets make no pairs), so it orders nothing either.
        ConstraintSpec::Colocation(c) if c.score == Score::new(0) => return false,
        ConstraintSpec::Colocation(c) if c.sets.is_empty() => {
            **c = colocation(groups, c.bundle.clone(), c.with.clone(), c);
        }
        ConstraintSpec::Colocation(c) => {
            colocation_sets(groups, name, c, out);
            return false;
        }
        ConstraintSpec::Order(o) if o.sets.is_empty() => {
            **o = order(groups, o.first.clone(), o.then.clone(), o, Vec::new());
        }
        ConstraintSpec::Order(o) => {
            order_sets(groups, name, o, out);
            return false;
        }
    }
    true
}

fn unset(a: &Name, b: &Name) -> bool {
    a.is_unset() || b.is_unset()
}

/// The constraints of one group: each member with, and after, the one before it.
fn chain(name: &Name, group: &GroupSpec, out: &mut Out) {
    for (k, pair) in group.bundles.windows(2).enumerate() {
        let [before, member] = pair else { continue };
        let origin = Origin {
            kind: Kind::Group,
            name: name.clone(),
            path: format!("spec.bundles.{}", k + 1),
        };
        let with = ConstraintSpec::Colocation(Box::new(ColocationConstraint {
            bundle: member.clone(),
            with: before.clone(),
            score: Score::INFINITY,
            role: None,
            sets: Vec::new(),
        }));
        out.make(
            format!("group {name}: {member} with {before}"),
            with,
            origin.clone(),
        );
        let after = ConstraintSpec::Order(Box::new(OrderConstraint {
            first: before.clone(),
            then: member.clone(),
            kind: OrderKind::Mandatory,
            symmetrical: true,
            action: OrderAction::Start,
            min_instances: None,
            sets: Vec::new(),
            any_of: Vec::new(),
        }));
        out.make(
            format!("group {name}: {member} after {before}"),
            after,
            origin,
        );
    }
}

/// `bundle with with`, groups resolved, with the score of `like`.
fn colocation(
    groups: &BTreeMap<Name, GroupSpec>,
    bundle: Name,
    with: Name,
    like: &ColocationConstraint,
) -> ColocationConstraint {
    let end = if like.score.is_infinity() {
        End::Last
    } else {
        End::First
    };
    ColocationConstraint {
        bundle: resolve(groups, &bundle, End::First),
        with: resolve(groups, &with, end),
        score: like.score,
        role: like.role,
        sets: Vec::new(),
    }
}

/// `first` then `then`, groups resolved, with the options of `like`.
fn order(
    groups: &BTreeMap<Name, GroupSpec>,
    first: Name,
    then: Name,
    like: &OrderConstraint,
    any_of: Vec<Name>,
) -> OrderConstraint {
    OrderConstraint {
        first: resolve(groups, &first, End::Last),
        then: resolve(groups, &then, End::First),
        kind: like.kind,
        symmetrical: like.symmetrical,
        action: like.action,
        min_instances: like.min_instances,
        sets: Vec::new(),
        any_of: any_of
            .iter()
            .map(|b| resolve(groups, b, End::Last))
            .collect(),
    }
}

/// The (dependent, primary) pairs of a colocation's sets, as written (groups unresolved).
pub(crate) fn colocation_pairs(c: &ColocationConstraint) -> Vec<(usize, Name, Name)> {
    let mut pairs = Vec::new();
    if c.score == Score::new(0) {
        return pairs;
    }
    for (i, set) in c.sets.iter().enumerate() {
        if !set.sequential {
            continue;
        }
        for (k, member) in set.bundles.iter().enumerate() {
            let before = &set.bundles[..k];
            let with: &[Name] = if c.score.value() > 0 {
                before.last().map(std::slice::from_ref).unwrap_or(&[])
            } else {
                before
            };
            pairs.extend(with.iter().map(|w| (i, member.clone(), w.clone())));
        }
    }
    for (i, pair) in c.sets.windows(2).enumerate() {
        let [dependents, primaries] = pair else {
            continue;
        };
        let dependents = ends(dependents, false);
        let primaries = ends(primaries, true);
        for d in dependents {
            pairs.extend(primaries.iter().map(|p| (i + 1, d.clone(), (*p).clone())));
        }
    }
    pairs
}

/// The bundles of a set that meet the set beside it: all of them when it is not
/// sequential, else its last (`last`) or first bundle.
fn ends(set: &super::constraint::ResourceSet, last: bool) -> Vec<&Name> {
    let end = if last {
        set.bundles.last()
    } else {
        set.bundles.first()
    };
    match (set.sequential, end) {
        (true, Some(b)) => vec![b],
        _ => set.bundles.iter().collect(),
    }
}

/// The (first, then, any of) triples of an order's sets, as written: `any of` lists the
/// firsts one of which suffices (a set with `requireAll: false`), else empty.
pub(crate) fn order_pairs(o: &OrderConstraint) -> Vec<(usize, Name, Name, Vec<Name>)> {
    let mut pairs = Vec::new();
    for (i, set) in o.sets.iter().enumerate() {
        if set.sequential {
            for w in set.bundles.windows(2) {
                if let [a, b] = w {
                    pairs.push((i, a.clone(), b.clone(), Vec::new()));
                }
            }
        }
    }
    for (i, pair) in o.sets.windows(2).enumerate() {
        let [firsts, thens] = pair else { continue };
        let (befores, any_of) = if firsts.require_all {
            (ends(firsts, true), Vec::new())
        } else {
            (firsts.bundles.iter().collect(), firsts.bundles.clone())
        };
        for t in ends(thens, false) {
            pairs.extend(
                befores
                    .iter()
                    .map(|f| (i + 1, (*f).clone(), t.clone(), any_of.clone())),
            );
        }
    }
    pairs
}

fn colocation_sets(
    groups: &BTreeMap<Name, GroupSpec>,
    name: &Name,
    c: &ColocationConstraint,
    out: &mut Out,
) {
    for (i, bundle, with) in colocation_pairs(c) {
        let pair = colocation(groups, bundle, with, c);
        if pair.bundle == pair.with {
            continue; // a bundle twice in the sets: refused by validation
        }
        let origin = Origin {
            kind: Kind::Constraint,
            name: name.clone(),
            path: format!("spec.colocation.sets.{i}"),
        };
        let text = format!("{name}: {} with {}", pair.bundle, pair.with);
        out.make(text, ConstraintSpec::Colocation(Box::new(pair)), origin);
    }
}

fn order_sets(groups: &BTreeMap<Name, GroupSpec>, name: &Name, o: &OrderConstraint, out: &mut Out) {
    for (i, first, then, any_of) in order_pairs(o) {
        let pair = order(groups, first, then, o, any_of);
        if pair.first == pair.then {
            continue; // a bundle twice in the sets: refused by validation
        }
        let origin = Origin {
            kind: Kind::Constraint,
            name: name.clone(),
            path: format!("spec.order.sets.{i}"),
        };
        let text = format!("{name}: {} after {}", pair.then, pair.first);
        out.make(text, ConstraintSpec::Order(Box::new(pair)), origin);
    }
}

/// How many pairs [`expand`] makes of the sets of constraint `c`, counted without making
/// them (a set may be long: validation bounds the total first).
pub(crate) fn pair_count(c: &ConstraintSpec) -> u64 {
    let len = |s: &super::constraint::ResourceSet| s.bundles.len() as u64;
    let end =
        |s: &super::constraint::ResourceSet| if s.sequential { len(s).min(1) } else { len(s) };
    let inside =
        |s: &super::constraint::ResourceSet, all_pairs: bool| match (s.sequential, all_pairs) {
            (false, _) => 0,
            (true, false) => len(s).saturating_sub(1),
            (true, true) => len(s).saturating_mul(len(s).saturating_sub(1)) / 2,
        };
    let (sets, all_pairs, any_of): (&[super::constraint::ResourceSet], bool, bool) = match c {
        ConstraintSpec::Colocation(c) if c.score == Score::new(0) => return 0,
        ConstraintSpec::Colocation(c) => (&c.sets, c.score.value() < 0, false),
        ConstraintSpec::Order(o) => (&o.sets, false, true),
        ConstraintSpec::Location(_) => return 0,
    };
    let within: u64 = sets.iter().map(|s| inside(s, all_pairs)).sum();
    let between: u64 = sets
        .windows(2)
        .map(|w| match w {
            [a, b] if any_of && !a.require_all => len(a).saturating_mul(end(b)),
            [a, b] => end(a).saturating_mul(end(b)),
            _ => 0,
        })
        .sum();
    within.saturating_add(between)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> SpecSet {
        let mut t = String::from(
            "apiVersion: quorate.io/v1alpha1\nkind: Cluster\nmetadata: {name: c}\nspec:\n  nodes: [{name: n1, runtime: 'podman+unix:///n1'}]\n",
        );
        for b in ["a", "b", "c", "d", "e"] {
            t += &format!(
                "---\napiVersion: quorate.io/v1alpha1\nkind: Bundle\nmetadata: {{name: {b}}}\nspec: {{image: i}}\n"
            );
        }
        t += text;
        let mut s = crate::source::Sources::new();
        s.add("s.yaml", t.into_bytes());
        crate::load::load(&s).set
    }

    /// `(kind, dependent or then, primary or first)` of every constraint.
    fn pairs(set: &SpecSet) -> Vec<(String, &'static str, String, String)> {
        set.constraints
            .iter()
            .map(|(n, c)| match c {
                ConstraintSpec::Colocation(c) => (
                    n.to_string(),
                    "with",
                    c.bundle.to_string(),
                    c.with.to_string(),
                ),
                ConstraintSpec::Order(o) => (
                    n.to_string(),
                    "after",
                    o.then.to_string(),
                    o.first.to_string(),
                ),
                ConstraintSpec::Location(l) => {
                    (n.to_string(), "on", l.bundle.to_string(), String::new())
                }
            })
            .collect()
    }

    fn has(set: &SpecSet, kind: &str, a: &str, b: &str) -> bool {
        pairs(set)
            .iter()
            .any(|(_, k, x, y)| *k == kind && x == a && y == b)
    }

    const DOC: &str = "---\napiVersion: quorate.io/v1alpha1\n";

    #[test]
    fn a_group_chains_its_members_and_stands_for_its_ends() {
        let set = load(&format!(
            "{DOC}kind: Group\nmetadata: {{name: g}}\nspec: {{bundles: [a, b, c]}}\n\
             {DOC}kind: Constraint\nmetadata: {{name: here}}\nspec: {{location: {{bundle: g, node: n1, score: 10}}}}\n\
             {DOC}kind: Constraint\nmetadata: {{name: x}}\nspec: {{colocation: {{bundle: d, with: g, score: INFINITY}}}}\n\
             {DOC}kind: Constraint\nmetadata: {{name: finite}}\nspec: {{colocation: {{bundle: e, with: g, score: 50}}}}\n\
             {DOC}kind: Constraint\nmetadata: {{name: o1}}\nspec: {{order: {{first: g, then: d}}}}\n\
             {DOC}kind: Constraint\nmetadata: {{name: o2}}\nspec: {{order: {{first: e, then: g}}}}\n"
        ));
        let e = expand(set);
        let s = &e.set;
        assert!(has(s, "with", "b", "a") && has(s, "with", "c", "b"));
        assert!(has(s, "after", "b", "a") && has(s, "after", "c", "b"));
        assert!(has(s, "on", "a", ""), "{:?}", pairs(s));
        assert!(
            has(s, "with", "d", "c"),
            "INFINITY with a group: its last member"
        );
        assert!(has(s, "with", "e", "a"), "a finite score: its first member");
        assert!(has(s, "after", "d", "c") && has(s, "after", "a", "e"));
        let name = Name::generated("group g: c after b".into());
        assert!(s.constraints.contains_key(&name));
        assert_eq!(
            e.origins.get(&name).map(|o| (o.kind, o.path.as_str())),
            Some((Kind::Group, "spec.bundles.2"))
        );
    }

    #[test]
    fn a_colocation_of_score_zero_is_left_out_as_pacemaker_ignores_it() {
        let set = load(&format!(
            "{DOC}kind: Constraint\nmetadata: {{name: zero}}\nspec: {{colocation: {{bundle: a, with: b, score: 0}}}}\n\
             {DOC}kind: Constraint\nmetadata: {{name: sets}}\nspec: {{colocation: {{score: 0, sets: [{{bundles: [c, d]}}]}}}}\n\
             {DOC}kind: Constraint\nmetadata: {{name: one}}\nspec: {{colocation: {{bundle: e, with: a, score: 1}}}}\n"
        ));
        let s = expand(set).set;
        assert_eq!(pairs(&s), [("one".into(), "with", "e".into(), "a".into())]);
    }

    #[test]
    fn colocation_sets_follow_pacemaker_direction() {
        // set [a b] then set [c d]: b with a, d with c, and the first of the earlier set
        // (a) with the last of the later one (d).
        let set = load(&format!(
            "{DOC}kind: Constraint\nmetadata: {{name: s}}\nspec: {{colocation: {{score: INFINITY, sets: [{{bundles: [a, b]}}, {{bundles: [c, d]}}]}}}}\n"
        ));
        let s = expand(set).set;
        let mut got = pairs(&s);
        got.sort();
        assert_eq!(
            got.iter()
                .map(|(_, _, x, y)| (x.as_str(), y.as_str()))
                .collect::<Vec<_>>(),
            [("a", "d"), ("b", "a"), ("d", "c")]
        );
        assert!(
            s.constraints
                .contains_key(&Name::generated("s: a with d".into()))
        );
        // A negative sequential set keeps every member away from every one before it; a
        // set that is not sequential is tied only to its neighbour, member by member.
        let set = load(&format!(
            "{DOC}kind: Constraint\nmetadata: {{name: s}}\nspec: {{colocation: {{score: -INFINITY, sets: [{{bundles: [a, b, c]}}]}}}}\n\
             {DOC}kind: Constraint\nmetadata: {{name: t}}\nspec: {{colocation: {{score: 10, sets: [{{bundles: [d, e], sequential: false}}, {{bundles: [a]}}]}}}}\n"
        ));
        let s = expand(set).set;
        assert!(
            has(&s, "with", "b", "a") && has(&s, "with", "c", "a") && has(&s, "with", "c", "b")
        );
        assert!(has(&s, "with", "d", "a") && has(&s, "with", "e", "a"));
        assert!(!has(&s, "with", "e", "d"));
    }

    #[test]
    fn order_sets_chain_and_require_all_false_makes_any_of() {
        let set = load(&format!(
            "{DOC}kind: Constraint\nmetadata: {{name: s}}\nspec: {{order: {{sets: [{{bundles: [a, b], sequential: false, requireAll: false}}, {{bundles: [c, d]}}, {{bundles: [e]}}]}}}}\n"
        ));
        let s = expand(set).set;
        let mut got = pairs(&s);
        got.sort();
        let flat: Vec<(&str, &str)> = got
            .iter()
            .map(|(_, _, t, f)| (f.as_str(), t.as_str()))
            .collect();
        assert_eq!(flat, [("a", "c"), ("b", "c"), ("c", "d"), ("d", "e")]);
        let any: Vec<Vec<String>> = s
            .constraints
            .values()
            .filter_map(|c| match c {
                ConstraintSpec::Order(o) if o.then.as_str() == "c" => {
                    Some(o.any_of.iter().map(Name::to_string).collect())
                }
                _ => None,
            })
            .collect();
        assert_eq!(any, [vec!["a", "b"], vec!["a", "b"]]);
    }

    #[test]
    fn pair_count_matches_what_expand_makes() {
        let text = format!(
            "{DOC}kind: Constraint\nmetadata: {{name: s}}\nspec: {{order: {{sets: [{{bundles: [a, b], sequential: false, requireAll: false}}, {{bundles: [c, d]}}, {{bundles: [e]}}]}}}}\n\
             {DOC}kind: Constraint\nmetadata: {{name: t}}\nspec: {{colocation: {{score: -5, sets: [{{bundles: [a, b, c]}}, {{bundles: [d, e], sequential: false}}]}}}}\n"
        );
        let set = load(&text);
        let counted: u64 = set.constraints.values().map(pair_count).sum();
        assert_eq!(counted, 4 + 3 + 2);
        assert_eq!(expand(set).set.constraints.len(), 9);
    }
}

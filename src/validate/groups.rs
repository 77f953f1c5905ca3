//! Groups and resource sets: their members, their shape, and what would contradict them.
//! Checked on the set as written; [`contradictions`] on the expanded set.

use std::collections::{BTreeMap, BTreeSet};

use super::Findings;
use crate::diag::Diagnostic;
use crate::spec::constraint::ConstraintSpec;
use crate::spec::{Kind, Name, SpecSet};

pub(super) fn check(set: &SpecSet, f: &mut Findings) {
    let mut member_of: BTreeMap<&str, (&str, usize)> = BTreeMap::new();
    for (name, group) in &set.groups {
        let g = name.as_str();
        if f.declared(Kind::Bundle, g) {
            f.push_related(
                Diagnostic::error(
                    "quorate::group::name",
                    format!("a group and a bundle are both named `{g}`: constraints could not tell them apart"),
                )
                .with_help("rename the group"),
                (Kind::Group, g, "metadata.name"),
                (Kind::Bundle, g, "metadata.name", "the bundle"),
            );
        }
        if group.bundles.is_empty() {
            f.push(
                Diagnostic::error("quorate::group::empty", "the group has no bundles")
                    .with_help("list its bundles under spec.bundles, in start order"),
                Kind::Group,
                g,
                "spec.bundles",
            );
        }
        for (i, b) in group.bundles.iter().enumerate() {
            let path = format!("spec.bundles.{i}");
            if let Some((other, j)) = member_of.insert(b.as_str(), (g, i)) {
                f.push_related(
                    Diagnostic::error(
                        "quorate::group::shared-member",
                        format!("bundle `{b}` is already a member of group `{other}`"),
                    )
                    .with_help("a bundle belongs to at most one group, once; colocate or order the groups instead"),
                    (Kind::Group, g, &path),
                    (Kind::Group, other, &format!("spec.bundles.{j}"), "first listed here"),
                );
            }
            member(set, f, g, b, &path);
        }
        replicas(set, f, g, &group.bundles);
    }
    for (name, c) in &set.constraints {
        constraint_sets(set, f, name.as_str(), c);
    }
}

/// A member must be a declared bundle (not a group).
fn member(set: &SpecSet, f: &mut Findings, g: &str, b: &Name, path: &str) {
    if f.declared(Kind::Bundle, b.as_str()) {
        return;
    }
    let msg = if set.groups.contains_key(b) {
        format!("`{b}` is a group: groups do not nest")
    } else {
        format!("no bundle is named `{b}`")
    };
    f.push(
        Diagnostic::error("quorate::ref::unknown-bundle", msg)
            .with_help("list bundles as members; to tie two groups, colocate and order them"),
        Kind::Group,
        g,
        path,
    );
}

/// Members share `replicas`, and with more than one each has `replicasPerHost: 1`, so
/// their instances line up node by node.
fn replicas(set: &SpecSet, f: &mut Findings, g: &str, members: &[Name]) {
    let Some((first, spec)) = members.iter().find_map(|m| Some((m, set.bundles.get(m)?))) else {
        return;
    };
    for (i, m) in members.iter().enumerate() {
        let Some(b) = set.bundles.get(m) else {
            continue;
        };
        let why = if b.replicas != spec.replicas {
            format!(
                "`{m}` has {} replicas and `{first}` {}: the members of a group run side by side, instance by instance",
                b.replicas, spec.replicas
            )
        } else if b.replicas > 1 && b.replicas_per_host != 1 {
            format!(
                "`{m}` has replicasPerHost {} with {} replicas: a group of several replicas needs replicasPerHost 1 on each member, so each node holds one instance of every member",
                b.replicas_per_host, b.replicas
            )
        } else {
            continue;
        };
        f.push(
            Diagnostic::error("quorate::group::replicas", why)
                .with_help("give every member of the group the same replicas, and replicasPerHost: 1 when there are several"),
            Kind::Group,
            g,
            &format!("spec.bundles.{i}"),
        );
    }
}

/// The sets of one constraint: given instead of the pair, not empty, each bundle once, and
/// making at least one pair; `requireAll` only where it means something. A pair that
/// names a group and one of its own members is refused too.
fn constraint_sets(set: &SpecSet, f: &mut Findings, name: &str, c: &ConstraintSpec) {
    let (field, sets, pair, order) = match c {
        ConstraintSpec::Colocation(c) => ("colocation", &c.sets, [&c.bundle, &c.with], false),
        ConstraintSpec::Order(o) => ("order", &o.sets, [&o.first, &o.then], true),
        ConstraintSpec::Location(_) => return,
    };
    let error = |f: &mut Findings, msg: String, help: &str, path: String| {
        f.push(
            Diagnostic::error("quorate::constraint::set", msg).with_help(help),
            Kind::Constraint,
            name,
            &path,
        );
    };
    let names = if order {
        "`first` and `then`"
    } else {
        "`bundle` and `with`"
    };
    let unset = pair.iter().filter(|n| n.is_unset()).count();
    if sets.is_empty() {
        if unset > 0 {
            error(
                f,
                format!("a {field} constraint needs {names}, or `sets`"),
                "name both bundles, or list resource sets",
                format!("spec.{field}"),
            );
        }
        own_member(set, f, name, field, pair);
        return;
    }
    if unset < 2 {
        error(
            f,
            format!("a {field} constraint has either {names} or `sets`, not both"),
            "move the pair into a set, or drop `sets`",
            format!("spec.{field}"),
        );
    }
    let mut seen: BTreeMap<&str, String> = BTreeMap::new();
    for (i, s) in sets.iter().enumerate() {
        let path = format!("spec.{field}.sets.{i}");
        if s.bundles.is_empty() {
            error(
                f,
                "this set has no bundles".into(),
                "list at least one bundle or group",
                path.clone(),
            );
        }
        if !s.require_all && (!order || i + 1 == sets.len()) {
            let msg = if order {
                "`requireAll: false` on the last set: no set follows it to start".to_owned()
            } else {
                "`requireAll` applies to order sets only".to_owned()
            };
            error(
                f,
                msg,
                "put `requireAll: false` on the set whose bundles the next set may start after, any one of them",
                path.clone(),
            );
        }
        for (j, b) in s.bundles.iter().enumerate() {
            set_member(set, f, name, b, &format!("{path}.bundles.{j}"), &mut seen);
        }
    }
    if crate::spec::expand::pair_count(c) == 0 {
        error(
            f,
            format!(
                "these sets make no {field}: a set needs two sequential bundles, or another set beside it"
            ),
            "add a set, make a set sequential, or drop the constraint",
            format!("spec.{field}.sets"),
        );
    }
}

/// A bundle or group of a set: declared, and no bundle twice in one constraint (a group
/// counts as its members).
fn set_member<'a>(
    set: &'a SpecSet,
    f: &mut Findings,
    name: &str,
    b: &'a Name,
    path: &str,
    seen: &mut BTreeMap<&'a str, String>,
) {
    if !f.declared(Kind::Bundle, b.as_str()) && !f.declared(Kind::Group, b.as_str()) {
        let known = f.names(Kind::Bundle).join(", ");
        f.push(
            Diagnostic::error(
                "quorate::ref::unknown-bundle",
                format!("no bundle or group is named `{b}`"),
            )
            .with_help(format!("bundles defined: {known}")),
            Kind::Constraint,
            name,
            path,
        );
        return;
    }
    for m in members(set, b) {
        if let Some(first) = seen.insert(m.as_str(), path.to_owned()) {
            f.push(
                Diagnostic::error("quorate::constraint::set", format!("bundle `{m}` appears twice in the sets of this constraint (first at {first})"))
                    .with_help("list each bundle once; a group counts as all its members"),
                Kind::Constraint,
                name,
                path,
            );
        }
    }
}

/// The bundles `b` stands for: a group's members, or `b`.
fn members<'a>(set: &'a SpecSet, b: &'a Name) -> Vec<&'a Name> {
    match set.groups.get(b) {
        Some(g) => g.bundles.iter().collect(),
        None => vec![b],
    }
}

/// A pair naming a group and one of its own members (or the group twice).
fn own_member(set: &SpecSet, f: &mut Findings, name: &str, field: &str, pair: [&Name; 2]) {
    let [a, b] = pair;
    // The declared names are hashed: most pairs name no group, and are let go without
    // a search of the groups' tree for each end.
    let group = |n: &Name| f.declared(Kind::Group, n.as_str()) && set.groups.contains_key(n);
    if a == b || (!group(a) && !group(b)) {
        return;
    }
    let left: BTreeSet<&Name> = members(set, a).into_iter().collect();
    if members(set, b).iter().any(|m| left.contains(m)) {
        f.push(
            Diagnostic::error(
                "quorate::group::own-member",
                format!(
                    "this {field} ties group and member to each other: `{a}` and `{b}` overlap"
                ),
            )
            .with_help(
                "a group already places and orders its members; constrain other bundles or groups",
            ),
            Kind::Constraint,
            name,
            &format!("spec.{field}"),
        );
    }
}

/// On the expanded set: a `-INFINITY` colocation between two members of one group, which
/// the group's `INFINITY` chain contradicts (reported where the colocation was written).
pub(super) fn contradictions(set: &SpecSet, f: &mut Findings) {
    let group_of: BTreeMap<&str, &str> = set
        .groups
        .iter()
        .flat_map(|(g, s)| s.bundles.iter().map(move |b| (b.as_str(), g.as_str())))
        .collect();
    for (name, c) in &set.constraints {
        let ConstraintSpec::Colocation(c) = c else {
            continue;
        };
        let (Some(a), Some(b)) = (
            group_of.get(c.bundle.as_str()),
            group_of.get(c.with.as_str()),
        ) else {
            continue;
        };
        if a == b && c.score.is_neg_infinity() {
            f.push(
                Diagnostic::error(
                    "quorate::group::contradiction",
                    format!("`{}` and `{}` are members of group `{a}`, which runs them on one node; this -INFINITY colocation forbids it", c.bundle, c.with),
                )
                .with_help("take one of them out of the group, or drop this colocation"),
                Kind::Constraint,
                name.as_str(),
                "spec.colocation",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::source::Sources;

    const SET: &str = "apiVersion: quorate.io/v1alpha1
kind: Cluster
metadata: {name: c}
spec:
  nodes: [{name: n1, runtime: 'podman+unix:///n1.sock'}, {name: n2, runtime: 'podman+unix:///n2.sock'}, {name: n3, runtime: 'podman+unix:///n3.sock'}]
  fencing: {enabled: false}
---
apiVersion: quorate.io/v1alpha1
kind: Bundle
metadata: {name: a}
spec: {image: i, recovery: restart}
---
apiVersion: quorate.io/v1alpha1
kind: Bundle
metadata: {name: b}
spec: {image: i, recovery: restart}
---
apiVersion: quorate.io/v1alpha1
kind: Bundle
metadata: {name: c}
spec: {image: i, recovery: restart, replicas: 2, replicasPerHost: 2}
";

    /// The findings of `extra` after the set: (code, line, message), line 1 being the
    /// first of `extra`.
    fn findings(extra: &str) -> Vec<(String, u32, String)> {
        let mut sources = Sources::new();
        let offset = u32::try_from(SET.lines().count()).unwrap_or(0);
        sources.add("s.yaml", format!("{SET}{extra}").into_bytes());
        crate::validate::validate(&sources)
            .diagnostics
            .iter()
            .map(|d| {
                let line = d.location.and_then(|l| l.span).map_or(0, |s| s.line);
                (
                    d.code.to_owned(),
                    line.saturating_sub(offset),
                    d.message.clone(),
                )
            })
            .collect()
    }

    fn codes(extra: &str) -> Vec<(String, u32)> {
        findings(extra)
            .into_iter()
            .map(|(c, l, _)| (c, l))
            .collect()
    }

    fn doc(kind: &str, name: &str, spec: &str) -> String {
        format!(
            "---\napiVersion: quorate.io/v1alpha1\nkind: {kind}\nmetadata: {{name: {name}}}\nspec:\n{spec}"
        )
    }

    #[test]
    fn a_valid_group_and_sets_pass() {
        let text = doc("Group", "g", "  bundles: [a, b]\n")
            + &doc(
                "Constraint",
                "s",
                "  order:\n    sets:\n      - {bundles: [g], sequential: false, requireAll: false}\n      - {bundles: [c]}\n",
            )
            + &doc(
                "Constraint",
                "t",
                "  colocation: {bundle: c, with: g, score: 100}\n",
            );
        assert_eq!(findings(&text), []);
    }

    #[test]
    fn group_members_are_checked_where_they_are_listed() {
        // Line numbers count from the `---` of the first group (line 1).
        let text = doc("Group", "g", "  bundles:\n    - a\n    - nope\n    - c\n")
            + &doc("Group", "h", "  bundles:\n    - a\n")
            + &doc("Group", "b", "  bundles: []\n");
        let mut got = codes(&text);
        got.sort();
        assert_eq!(
            got,
            [
                ("quorate::group::empty".to_owned(), 22),
                ("quorate::group::name".to_owned(), 20),
                ("quorate::group::replicas".to_owned(), 9),
                ("quorate::group::shared-member".to_owned(), 16),
                ("quorate::ref::unknown-bundle".to_owned(), 8),
            ]
        );
    }

    #[test]
    fn sets_and_pairs_are_checked() {
        let bad = [
            // Both a pair and sets.
            (
                "  colocation: {bundle: a, with: b, score: 10, sets: [{bundles: [a, b]}]}\n",
                "quorate::constraint::set",
            ),
            // Neither.
            ("  order: {kind: optional}\n", "quorate::constraint::set"),
            // One set of one bundle makes nothing.
            (
                "  order: {sets: [{bundles: [a]}]}\n",
                "quorate::constraint::set",
            ),
            // requireAll on a colocation set, or on the last order set.
            (
                "  colocation: {score: 10, sets: [{bundles: [a, b], requireAll: false}]}\n",
                "quorate::constraint::set",
            ),
            (
                "  order: {sets: [{bundles: [a, b], requireAll: false}]}\n",
                "quorate::constraint::set",
            ),
            // A bundle twice.
            (
                "  order: {sets: [{bundles: [a, b], sequential: false}, {bundles: [a]}]}\n",
                "quorate::constraint::set",
            ),
            // An unknown member.
            (
                "  order: {sets: [{bundles: [a, zz]}]}\n",
                "quorate::ref::unknown-bundle",
            ),
        ];
        for (spec, code) in bad {
            let got = codes(&doc("Constraint", "k", spec));
            assert_eq!(got, [(code.to_owned(), 6)], "{spec}");
        }
    }

    #[test]
    fn what_contradicts_a_group_is_refused() {
        let group = doc("Group", "g", "  bundles: [a, b]\n");
        // A -INFINITY colocation between two members, even written as a set.
        let text = group.clone()
            + &doc(
                "Constraint",
                "k",
                "  colocation:\n    score: -INFINITY\n    sets: [{bundles: [b, a]}]\n",
            );
        let got = codes(&text);
        assert!(
            got.contains(&("quorate::group::contradiction".to_owned(), 14)),
            "{got:?}"
        );
        // A group with its own member.
        let text = group.clone()
            + &doc(
                "Constraint",
                "k",
                "  colocation: {bundle: a, with: g, score: 10}\n",
            );
        assert_eq!(
            codes(&text),
            [("quorate::group::own-member".to_owned(), 12)]
        );
        // An order against the group's own chain is a cycle, pointed at where it closes.
        let text = group + &doc("Constraint", "k", "  order: {first: b, then: a}\n");
        let got = findings(&text);
        assert!(
            got.iter().any(|(c, _, m)| c == "quorate::order::cycle"
                && (m.contains("a → b") || m.contains("b → a"))),
            "{got:?}"
        );
    }
}

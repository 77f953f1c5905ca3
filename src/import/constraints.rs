//! The `<constraints>` section: locations (with scores and rules), colocations and
//! orders (with resource sets), into `Constraint` documents. One handler per kind
//! ([`KINDS`]), one per rule expression operator.
//!
//! A constraint that becomes several documents (a rule with `or`, a resource set, a
//! rule on `#uname`) gets its id with `-1`, `-2`, ... appended. A constraint on a
//! resource that was not carried over is itself reported and left out.

use std::collections::BTreeMap;

use roxmltree::Node;

use super::config::score;
use super::{Ctx, Doc, Handler, Resource, is_true, xml};
use crate::spec::constraint::{
    ColocationConstraint, ConstraintRole, LocationConstraint, NODE_NAME, OrderConstraint,
    OrderKind, ResourceSet, Rule, RuleOperator, RuleType,
};
use crate::spec::{ConstraintSpec, Name, Score};

/// The kinds of constraint.
const KINDS: &[(&str, Handler)] = &[
    ("rsc_location", location),
    ("rsc_colocation", colocation),
    ("rsc_order", order),
    ("rsc_ticket", ticket),
];

/// The `<constraints>` section.
pub(super) fn constraints(ctx: &mut Ctx<'_>, node: Node<'_, '_>) {
    for c in node.children().filter(|c| c.is_element()) {
        match KINDS.iter().find(|(n, _)| c.has_tag_name(*n)) {
            Some((_, handle)) => handle(ctx, c),
            None => ctx.not_carried(
                c,
                format!("{} is not a constraint quorate knows", xml::describe(c)),
                "carry it over by hand, if it matters",
            ),
        }
    }
}

fn ticket(ctx: &mut Ctx<'_>, t: Node<'_, '_>) {
    ctx.not_yet(
        t,
        "tickets (multi-site clusters)",
        "run one quorate per site; move a bundle between sites with a commit",
    );
}

/// The bundle (or group) a resource id stands for, or a finding on `c`. A group keeps
/// its name: quorate reads a group in a constraint as Pacemaker does (a location or a
/// colocation places its first member, an order waits for its last).
fn bundle(ctx: &mut Ctx<'_>, c: Node<'_, '_>, id: &str) -> Option<Name> {
    let found = match ctx.draft.resources.get(id) {
        Some(Resource::Bundle { name, .. } | Resource::Group(name)) => Ok(name.clone()),
        Some(Resource::Fence) => Err("a fence device"),
        Some(Resource::Left) => Err("not carried over"),
        None => Err("not a resource of the CIB"),
    };
    match found {
        Ok(name) => Some(name),
        Err(why) => {
            ctx.not_carried(
                c,
                format!(
                    "{} refers to `{}` ({why}), so it is not carried over",
                    xml::describe(c),
                    xml::truncate(id)
                ),
                "carry the resource over first, or drop the constraint",
            );
            None
        }
    }
}

/// Adds constraint documents made from `c`, named after its id.
fn add(ctx: &mut Ctx<'_>, c: Node<'_, '_>, specs: Vec<ConstraintSpec>) {
    let id = c.attribute("id").unwrap_or("constraint");
    let several = specs.len() > 1;
    let origin = ctx.origin(c);
    for (i, spec) in specs.into_iter().enumerate() {
        let wanted = if several {
            format!("{id}-{}", i + 1)
        } else {
            id.to_owned()
        };
        let Some(name) = ctx.name(c, &wanted, |d| &mut d.constraint_names) else {
            return;
        };
        ctx.draft.constraints.insert(
            name,
            Doc {
                spec,
                origin: origin.clone(),
            },
        );
    }
}

/// Roles other than Started where quorate has none: the dependent's role in a colocation,
/// and roles in resource sets.
fn roles(ctx: &mut Ctx<'_>, c: Node<'_, '_>, keys: &[&str]) -> bool {
    let promoted = keys
        .iter()
        .filter_map(|k| c.attribute(*k))
        .any(|r| !matches!(r, "Started" | "Stopped"));
    if promoted {
        ctx.not_yet(
            c,
            "roles here (Promoted, Unpromoted)",
            "quorate has the promoted role on a location, on the `with-rsc` of a colocation and on the `first` of an order: rewrite it so, or drop the role",
        );
    }
    !promoted
}

/// The role `key` of `c` names: none (absent, `Started`), the promoted instances
/// (`Promoted`, `Master`), or a finding (`Err`) for the others.
fn promoted_role(
    ctx: &mut Ctx<'_>,
    c: Node<'_, '_>,
    key: &str,
) -> Result<Option<ConstraintRole>, ()> {
    match c.attribute(key) {
        None | Some("Started") => Ok(None),
        Some("Promoted" | "Master") => Ok(Some(ConstraintRole::Promoted)),
        Some(_) => {
            ctx.not_yet(
                c,
                "roles other than Promoted (Unpromoted, Stopped)",
                "write the constraint for every instance, or for the promoted ones",
            );
            Err(())
        }
    }
}

/// Whether the bundle `name` is promotable; if not, `c` (which names a role for it) is
/// reported.
fn promotable_or_report(ctx: &mut Ctx<'_>, c: Node<'_, '_>, name: &Name) -> bool {
    let yes = ctx
        .draft
        .bundles
        .get(name)
        .is_some_and(|d| d.spec.promotable.is_some());
    if !yes {
        ctx.not_carried(
            c,
            format!(
                "{} names the promoted role of {name}, which is not promotable",
                xml::describe(c)
            ),
            "drop the role, or make the resource promotable",
        );
    }
    yes
}

/// Each `<resource_set>` of `c` as a set of bundles (and groups), or a finding.
fn sets(ctx: &mut Ctx<'_>, c: Node<'_, '_>) -> Option<Vec<ResourceSet>> {
    let mut out = Vec::new();
    for set in xml::children(c, "resource_set") {
        if !roles(ctx, set, &["role"]) {
            return None;
        }
        if set.attribute("action").is_some_and(|a| a != "start") {
            ctx.not_yet(
                set,
                "ordering of actions other than start",
                "quorate orders starts (and, symmetrically, stops)",
            );
            return None;
        }
        let mut bundles = Vec::new();
        for r in xml::children(set, "resource_ref") {
            bundles.push(bundle(ctx, c, r.attribute("id").unwrap_or(""))?);
        }
        out.push(ResourceSet {
            bundles,
            sequential: sequential(set),
            require_all: set.attribute("require-all").is_none_or(is_true),
        });
    }
    Some(out)
}

fn sequential(set: Node<'_, '_>) -> bool {
    set.attribute("sequential").is_none_or(is_true)
}

/// `<rsc_location>`: a node with a score, rules, or resource sets.
fn location(ctx: &mut Ctx<'_>, c: Node<'_, '_>) {
    if c.attribute("rsc-pattern").is_some() {
        return ctx.not_yet(
            c,
            "locations by resource pattern (rsc-pattern)",
            "write one location per bundle",
        );
    }
    let Ok(role) = promoted_role(ctx, c, "role") else {
        return;
    };
    if c.attribute("resource-discovery")
        .is_some_and(|d| d != "always")
    {
        ctx.adjusted(
            c,
            "resource-discovery is dropped: quorate does not probe nodes".into(),
            "nothing to do",
        );
    }
    let bundles = if let Some(rsc) = c.attribute("rsc") {
        match bundle(ctx, c, rsc) {
            Some(b) => vec![b],
            None => return,
        }
    } else {
        match sets(ctx, c) {
            Some(sets) => sets.into_iter().flat_map(|s| s.bundles).collect(),
            None => return,
        }
    };
    if role.is_some() && !bundles.iter().all(|b| promotable_or_report(ctx, c, b)) {
        return;
    }
    let mut specs = Vec::new();
    if let Some(node) = c.attribute("node") {
        let Some(s) = c.attribute("score").and_then(|s| score(ctx, s, c)) else {
            return ctx.not_yet(
                c,
                "scores from node attributes (score-attribute)",
                "write the score",
            );
        };
        let Some(node) = ctx.node(node) else {
            return ctx.not_carried(
                c,
                format!(
                    "{} names `{}`, which is not a node of the CIB",
                    xml::describe(c),
                    xml::truncate(node)
                ),
                "drop the constraint or add the node",
            );
        };
        specs.extend(
            bundles
                .iter()
                .map(|b| located(b, (Some(node.clone()), None), s, role)),
        );
    }
    for rule in xml::children(c, "rule") {
        let Some(places) = self::rule(ctx, rule) else {
            return;
        };
        for (node, r, s) in places {
            specs.extend(
                bundles
                    .iter()
                    .map(|b| located(b, (node.clone(), r.clone()), s, role)),
            );
        }
    }
    add(ctx, c, specs);
}

fn located(
    bundle: &Name,
    (node, rule): (Option<Name>, Option<Rule>),
    score: Score,
    role: Option<ConstraintRole>,
) -> ConstraintSpec {
    ConstraintSpec::Location(Box::new(LocationConstraint {
        bundle: bundle.clone(),
        node,
        rule,
        score,
        role,
    }))
}

/// Where a rule puts its score: one node, or one attribute test, each with the score.
type Place = (Option<Name>, Option<Rule>, Score);

/// A `<rule>`: one expression, or several joined by `or` with an infinite score (so a
/// node matched twice gets the same score). Anything else is a finding.
fn rule(ctx: &mut Ctx<'_>, r: Node<'_, '_>) -> Option<Vec<Place>> {
    if r.attribute("score-attribute").is_some() {
        ctx.not_yet(
            r,
            "scores from node attributes (score-attribute)",
            "write the score",
        );
        return None;
    }
    if !roles(ctx, r, &["role"]) {
        return None;
    }
    let s = score(ctx, r.attribute("score").unwrap_or("0"), r)?;
    let parts: Vec<Node<'_, '_>> = r.children().filter(|x| x.is_element()).collect();
    let or = r.attribute("boolean-op") == Some("or");
    let nested = parts.iter().any(|p| p.has_tag_name("rule"));
    if nested || (parts.len() > 1 && !(or && (s.is_infinity() || s.is_neg_infinity()))) {
        // A compound rule: one location with the whole tree.
        return Some(vec![(None, Some(tree(ctx, r)?), s)]);
    }
    let mut out = Vec::new();
    for p in parts {
        if !p.has_tag_name("expression") {
            let concept = if p.has_tag_name("date_expression") {
                "date rules"
            } else {
                "nested rules"
            };
            ctx.not_yet(p, concept, "quorate's rules test node attributes only; change the constraint with a commit when the time comes");
            return None;
        }
        out.extend(expression(ctx, p, s)?);
    }
    Some(out)
}

/// A `<rule>` as a rule tree: its expressions and nested rules joined by its
/// `boolean-op` (`and` by default), a built-in attribute other than `#uname` evaluated
/// into the names of the nodes it matches.
fn tree(ctx: &mut Ctx<'_>, r: Node<'_, '_>) -> Option<Rule> {
    let mut subs = Vec::new();
    for p in r.children().filter(|x| x.is_element()) {
        let sub = if p.has_tag_name("expression") {
            leaf(ctx, p)?
        } else if p.has_tag_name("rule") && p.attribute("role").is_none() {
            tree(ctx, p)?
        } else {
            ctx.not_yet(
                p,
                "date rules and roles in nested rules",
                "quorate's rules test node attributes only; change the constraint with a commit when the time comes",
            );
            return None;
        };
        subs.push(sub);
    }
    match (subs.len(), r.attribute("boolean-op")) {
        (1, _) => subs.pop(),
        (0, _) => {
            let what = format!("{} is empty", xml::describe(r));
            ctx.not_carried(r, what, "give it an expression");
            None
        }
        (_, Some("or")) => Some(joined(Vec::new(), subs)),
        _ => Some(joined(subs, Vec::new())),
    }
}

/// The rule that matches when all of `and` (or any of `or`) do.
fn joined(and: Vec<Rule>, or: Vec<Rule>) -> Rule {
    Rule {
        attribute: String::new(),
        operator: None,
        value: None,
        value_type: None,
        and,
        or,
    }
}

/// One `<expression>` in a rule tree; a built-in attribute other than `#uname` becomes a
/// test of the names of the nodes it matches.
fn leaf(ctx: &mut Ctx<'_>, e: Node<'_, '_>) -> Option<Rule> {
    let (attribute, rule) = literal(ctx, e)?;
    let Some(builtin) = attribute.strip_prefix('#').filter(|b| *b != "uname") else {
        return Some(rule);
    };
    let names: Vec<Rule> = builtin_places(ctx, e, builtin, &rule, Score::ZERO)?
        .into_iter()
        .filter_map(|(node, _, _)| node)
        .map(|n| Rule::expression(NODE_NAME.to_owned(), RuleOperator::Eq, Some(n.to_string())))
        .collect();
    Some(if names.is_empty() {
        // No node: a test nothing passes (every node has a name).
        Rule::expression(NODE_NAME.to_owned(), RuleOperator::NotExists, None)
    } else {
        joined(Vec::new(), names)
    })
}

/// An `<expression>` that compares with a literal value, as a rule, with its attribute.
fn literal<'x>(ctx: &mut Ctx<'_>, e: Node<'x, '_>) -> Option<(&'x str, Rule)> {
    if e.attribute("value-source").is_some_and(|v| v != "literal") {
        ctx.not_yet(
            e,
            "rules that compare with resource parameters (value-source)",
            "write the value",
        );
        return None;
    }
    let attribute = e.attribute("attribute").unwrap_or("");
    let rule = to_rule(ctx, e, attribute)?;
    Some((attribute, rule))
}

/// One `<expression>` on a node attribute. A test of a built-in attribute (`#uname`,
/// `#id`, `#kind`, `#cluster-name`) is evaluated here, giving one place per node it
/// matches.
fn expression(ctx: &mut Ctx<'_>, e: Node<'_, '_>, s: Score) -> Option<Vec<Place>> {
    let (attribute, rule) = literal(ctx, e)?;
    if let Some(builtin) = attribute.strip_prefix('#') {
        return builtin_places(ctx, e, builtin, &rule, s);
    }
    Some(vec![(None, Some(rule), s)])
}

fn to_rule(ctx: &mut Ctx<'_>, e: Node<'_, '_>, attribute: &str) -> Option<Rule> {
    let op = e.attribute("operation").unwrap_or("");
    let value = e.attribute("value").map(str::to_owned);
    let value_type = match e.attribute("type") {
        Some("string") => Some(RuleType::String),
        Some("version") => Some(RuleType::Version),
        Some("integer" | "number") => Some(RuleType::Integer),
        _ => None,
    };
    let numeric = matches!(value_type, None | Some(RuleType::Integer));
    let ordered = !numeric
        || value
            .as_deref()
            .is_some_and(|v| v.trim().parse::<i64>().is_ok());
    let operator = match op {
        "eq" => RuleOperator::Eq,
        "ne" => RuleOperator::Ne,
        "defined" => RuleOperator::Exists,
        "not_defined" => RuleOperator::NotExists,
        "lt" | "lte" | "gt" | "gte" if ordered => match op {
            "lt" => RuleOperator::Lt,
            "lte" => RuleOperator::Lte,
            "gt" => RuleOperator::Gt,
            _ => RuleOperator::Gte,
        },
        _ => {
            ctx.not_yet(
                e,
                "this comparison (an integer comparison with a value that is not a whole number, or an operation quorate does not have)",
                "write the rule with eq, ne, defined, not_defined, or lt, lte, gt, gte with type string, version, or integer and a whole number",
            );
            return None;
        }
    };
    let value = if matches!(operator, RuleOperator::Exists | RuleOperator::NotExists) {
        None
    } else {
        Some(value.unwrap_or_default())
    };
    let mut rule = Rule::expression(attribute.to_owned(), operator, value);
    // Pacemaker's default types are quorate's: only an explicit one is written.
    rule.value_type = value_type.filter(|_| e.attribute("type").is_some());
    Some(rule)
}

/// Places for a rule on a built-in attribute: each node that matches it.
fn builtin_places(
    ctx: &mut Ctx<'_>,
    e: Node<'_, '_>,
    builtin: &str,
    rule: &Rule,
    s: Score,
) -> Option<Vec<Place>> {
    let cluster = ctx
        .draft
        .cluster_name
        .as_ref()
        .map(|n| n.to_string())
        .unwrap_or_default();
    let mut out = Vec::new();
    let ids: BTreeMap<Name, String> = ctx
        .draft
        .node_ids
        .iter()
        .map(|(id, n)| (n.clone(), id.clone()))
        .collect();
    for (uname, name) in ctx.draft.nodes.clone() {
        let value = match builtin {
            "uname" => uname.clone(),
            "id" => ids.get(&name).cloned().unwrap_or_default(),
            "kind" => "cluster".into(),
            "cluster-name" => cluster.clone(),
            _ => {
                ctx.not_yet(
                    e,
                    &format!("the built-in attribute #{}", xml::truncate(builtin)),
                    "write a node attribute with the value and test it",
                );
                return None;
            }
        };
        let attrs = BTreeMap::from([(rule.attribute.clone(), value)]);
        if rule.matches(&attrs) {
            out.push((Some(name), None, s));
        }
    }
    Some(out)
}

/// `<rsc_colocation>`: two resources, or resource sets (kept as sets).
fn colocation(ctx: &mut Ctx<'_>, c: Node<'_, '_>) {
    if !roles(ctx, c, &["rsc-role"]) {
        return;
    }
    let Ok(role) = promoted_role(ctx, c, "with-rsc-role") else {
        return;
    };
    if c.attribute("node-attribute").is_some_and(|a| a != "#uname") {
        return ctx.not_yet(
            c,
            "colocations by node attribute (node-attribute)",
            "colocate on the same node, or use location rules on that attribute",
        );
    }
    let Some(score) = c.attribute("score").and_then(|s| score(ctx, s, c)) else {
        return ctx.not_yet(c, "colocations without a score", "write the score");
    };
    let spec = match (c.attribute("rsc"), c.attribute("with-rsc")) {
        (Some(rsc), Some(with)) => {
            let (Some(bundle), Some(with)) = (bundle(ctx, c, rsc), bundle(ctx, c, with)) else {
                return;
            };
            if bundle == with || (role.is_some() && !promotable_or_report(ctx, c, &with)) {
                return;
            }
            ColocationConstraint {
                bundle,
                with,
                score,
                role,
                sets: Vec::new(),
            }
        }
        _ if role.is_some() => {
            return ctx.not_yet(
                c,
                "roles in colocation sets",
                "write a colocation with `rsc` and `with-rsc` for the promoted role",
            );
        }
        _ => {
            let Some(mut sets) = sets(ctx, c) else {
                return;
            };
            if sets.iter().any(|s| !s.require_all) {
                ctx.adjusted(
                    c,
                    "require-all is dropped: it only means something in an order".into(),
                    "nothing to do",
                );
                sets.iter_mut().for_each(|s| s.require_all = true);
            }
            ColocationConstraint {
                bundle: Name::unset(),
                with: Name::unset(),
                score,
                role: None,
                sets,
            }
        }
    };
    add(ctx, c, vec![ConstraintSpec::Colocation(Box::new(spec))]);
}

/// `<rsc_order>`: two resources, or resource sets (kept as sets, with `require-all`).
fn order(ctx: &mut Ctx<'_>, c: Node<'_, '_>) {
    let promote = c.attribute("first-action") == Some("promote") && c.attribute("first").is_some();
    for key in ["first-action", "then-action"] {
        let action = c.attribute(key);
        if action.is_some_and(|a| a != "start") && !(promote && key == "first-action") {
            return ctx.not_yet(
                c,
                "ordering of actions other than start (and promote of first)",
                "quorate orders starts (and, symmetrically, stops), and starts after promotions",
            );
        }
    }
    let kind = match c.attribute("kind") {
        None if c.attribute("score").is_some_and(|s| s.trim() == "0") => OrderKind::Optional,
        None | Some("Mandatory") => OrderKind::Mandatory,
        Some("Optional") => OrderKind::Optional,
        Some("Serialize") => OrderKind::Serialize,
        Some(other) => {
            return ctx.not_yet(
                c,
                &format!("{} orders", xml::truncate(other)),
                "write a mandatory or optional order",
            );
        }
    };
    let (first, then, sets) = match (c.attribute("first"), c.attribute("then")) {
        (Some(first), Some(then)) => {
            let (Some(f), Some(t)) = (bundle(ctx, c, first), bundle(ctx, c, then)) else {
                return;
            };
            if f == t {
                return;
            }
            (f, t, Vec::new())
        }
        _ => match sets(ctx, c) {
            Some(sets) => (Name::unset(), Name::unset(), sets),
            None => return,
        },
    };
    let min_instances = ctx.draft.clone_min.get(&first).copied();
    if promote && !promotable_or_report(ctx, c, &first) {
        return;
    }
    let action = if promote {
        crate::spec::constraint::OrderAction::Promote
    } else {
        crate::spec::constraint::OrderAction::Start
    };
    let spec = OrderConstraint {
        first,
        then,
        kind,
        symmetrical: c.attribute("symmetrical").is_none_or(is_true),
        action,
        // Pacemaker's `clone-min` of `first`: `then` waits for that many instances.
        min_instances,
        sets,
        any_of: Vec::new(),
    };
    add(ctx, c, vec![ConstraintSpec::Order(Box::new(spec))]);
}

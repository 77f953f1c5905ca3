//! `kind: Constraint`: location, colocation and order constraints with Pacemaker scores.

use std::collections::{BTreeMap, HashMap};

use fixedbitset::FixedBitSet;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::values::{Name, Score};

/// The spec of a `Constraint`: exactly one of `location`, `colocation`, `order`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub enum ConstraintSpec {
    /// Prefer or avoid nodes.
    Location(Box<LocationConstraint>),
    /// Place a bundle with (or away from) another.
    Colocation(Box<ColocationConstraint>),
    /// Start one bundle before another.
    Order(Box<OrderConstraint>),
}

/// Prefer (positive score) or avoid (negative) a node, or nodes matching a rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LocationConstraint {
    /// The bundle constrained.
    pub bundle: Name,
    /// One node (give `node` or `rule`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<Name>,
    /// Nodes whose attributes match (give `node` or `rule`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<Rule>,
    /// Added to the matching nodes' scores; `-INFINITY` forbids them.
    pub score: Score,
    /// With `promoted`, the score is for the promoted instances only (Pacemaker's
    /// `role=Promoted`): it ranks the candidates for promotion, `-INFINITY` keeps the
    /// primary off those nodes, and where instances run is left alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<ConstraintRole>,
}

impl LocationConstraint {
    /// Whether the constraint names node `name` (with `attributes`), or its rule matches it.
    pub fn matches_node(&self, name: &str, attributes: &BTreeMap<String, String>) -> bool {
        match (&self.node, &self.rule) {
            (Some(n), _) => n.as_str() == name,
            (None, Some(rule)) => rule.matches_node(name, attributes),
            (None, None) => false,
        }
    }
}

/// A test on a node: one expression (`attribute`, `operator`, `value`, `type`), or
/// `and` / `or` of rules.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Rule {
    /// Attribute name; `#uname` is the node's name (give `attribute` and `operator`, or
    /// `and`, or `or`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub attribute: String,
    /// Comparison.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<RuleOperator>,
    /// Value compared with (not for `exists`/`notExists`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// How values compare: `string`, `integer` or `version`. Default: `lt`, `lte`, `gt`,
    /// `gte` as integers, `eq` and `ne` as strings.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub value_type: Option<RuleType>,
    /// Matches when every one of these rules matches.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub and: Vec<Rule>,
    /// Matches when any of these rules matches.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub or: Vec<Rule>,
}

/// Comparisons in a [`Rule`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum RuleOperator {
    /// Equal.
    Eq,
    /// Not equal (or absent).
    Ne,
    /// Less than.
    Lt,
    /// Less than or equal.
    Lte,
    /// Greater than.
    Gt,
    /// Greater than or equal.
    Gte,
    /// The attribute is set.
    Exists,
    /// The attribute is not set.
    NotExists,
}

/// How a [`Rule`] compares values (Pacemaker's `type` of an expression).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum RuleType {
    /// Byte by byte.
    String,
    /// As signed integers; a value that is not one matches nothing.
    Integer,
    /// As dotted versions (`1.10.2` > `1.9`), each part a number, missing parts 0; a
    /// value that is not one matches nothing.
    Version,
}

/// The attribute that names the node itself (Pacemaker's `#uname`).
pub const NODE_NAME: &str = "#uname";

impl Rule {
    /// A single expression.
    pub fn expression(attribute: String, operator: RuleOperator, value: Option<String>) -> Rule {
        Rule {
            attribute,
            operator: Some(operator),
            value,
            value_type: None,
            and: Vec::new(),
            or: Vec::new(),
        }
    }

    /// Whether a node with `attributes` matches, leaving `#uname` unset.
    pub fn matches(&self, attributes: &std::collections::BTreeMap<String, String>) -> bool {
        self.matches_node("", attributes)
    }

    /// Whether the node `name` with `attributes` matches. An `and` or `or` matches as
    /// its rules do; a rule with neither and no operator (which validation refuses)
    /// matches nothing.
    pub fn matches_node(&self, name: &str, attributes: &BTreeMap<String, String>) -> bool {
        if !self.and.is_empty() {
            return self.and.iter().all(|r| r.matches_node(name, attributes));
        }
        if !self.or.is_empty() {
            return self.or.iter().any(|r| r.matches_node(name, attributes));
        }
        let Some(operator) = self.operator else {
            return false;
        };
        let actual = if self.attribute == NODE_NAME && !name.is_empty() {
            Some(name)
        } else {
            attributes.get(&self.attribute).map(String::as_str)
        };
        let want = self.value.as_deref();
        let cmp = || compare(self.value_type, operator, actual?, want?);
        use std::cmp::Ordering::*;
        match operator {
            RuleOperator::Eq => cmp() == Some(Equal),
            RuleOperator::Ne => cmp() != Some(Equal),
            RuleOperator::Lt => cmp() == Some(Less),
            RuleOperator::Lte => matches!(cmp(), Some(Less | Equal)),
            RuleOperator::Gt => cmp() == Some(Greater),
            RuleOperator::Gte => matches!(cmp(), Some(Greater | Equal)),
            RuleOperator::Exists => actual.is_some(),
            RuleOperator::NotExists => actual.is_none(),
        }
    }
}

/// Matches rules against one list of nodes, each distinct expression once: an `and` or
/// `or` combines the masks of its rules, so ten thousand rule trees built from a few
/// hundred expressions cost a few hundred passes over the nodes.
pub(crate) struct NodeMatcher<'n, 'r> {
    /// Each node's name and attributes.
    nodes: Vec<(&'n str, &'n BTreeMap<String, String>)>,
    /// The nodes each expression (a rule without `and` or `or`) matches.
    leaves: HashMap<&'r Rule, FixedBitSet>,
    /// Where each name is among the nodes, for `#uname eq` and `ne`, which are as
    /// many as the nodes in rules that single each node out.
    names: HashMap<&'n str, Vec<usize>>,
    /// The nodes without a name (their attribute `#uname` answers for them).
    unnamed: Vec<usize>,
}

impl<'n, 'r> NodeMatcher<'n, 'r> {
    pub(crate) fn new(
        nodes: impl IntoIterator<Item = (&'n str, &'n BTreeMap<String, String>)>,
    ) -> Self {
        let nodes: Vec<_> = nodes.into_iter().collect();
        let mut names: HashMap<&str, Vec<usize>> = HashMap::new();
        let mut unnamed = Vec::new();
        for (i, (name, _)) in nodes.iter().enumerate() {
            match *name {
                "" => unnamed.push(i),
                name => names.entry(name).or_default().push(i),
            }
        }
        NodeMatcher {
            nodes,
            leaves: HashMap::new(),
            names,
            unnamed,
        }
    }

    /// The nodes, by their place, named `name`.
    pub(crate) fn named(&self, name: &str) -> &[usize] {
        self.names.get(name).map_or(&[], Vec::as_slice)
    }

    /// The mask of `#uname eq NAME` or `ne` compared as strings, by looking the name up
    /// (what [`Rule::matches_node`] says of every node, without comparing each).
    fn by_name(&self, rule: &Rule) -> Option<FixedBitSet> {
        let by_name =
            rule.attribute == NODE_NAME && matches!(rule.value_type, None | Some(RuleType::String));
        let eq = match rule.operator? {
            RuleOperator::Eq if by_name => true,
            RuleOperator::Ne if by_name => false,
            _ => return None,
        };
        let mut mask = FixedBitSet::with_capacity(self.nodes.len());
        if !eq {
            mask.insert_range(..);
        }
        let at = self.names.get(rule.value.as_deref()?);
        for i in at.into_iter().flatten() {
            mask.set(*i, eq);
        }
        for i in &self.unnamed {
            let (name, attributes) = self.nodes[*i];
            mask.set(*i, rule.matches_node(name, attributes));
        }
        Some(mask)
    }

    /// The nodes, by their place in the order given, that `rule` matches (as
    /// [`Rule::matches_node`] says), a bit per node.
    pub(crate) fn mask(&mut self, rule: &'r Rule) -> FixedBitSet {
        let (all, children) = match (&rule.and[..], &rule.or[..]) {
            ([], []) => {
                if let Some(mask) = self.by_name(rule) {
                    return mask;
                }
                let nodes = &self.nodes;
                let leaf = self.leaves.entry(rule).or_insert_with(|| {
                    let matched = nodes
                        .iter()
                        .enumerate()
                        .filter(|(_, (n, a))| rule.matches_node(n, a));
                    let mut mask = FixedBitSet::with_capacity(nodes.len());
                    mask.extend(matched.map(|(i, _)| i));
                    mask
                });
                return leaf.clone();
            }
            ([], or) => (false, or),
            (and, _) => (true, and),
        };
        let mut mask = FixedBitSet::with_capacity(self.nodes.len());
        if all {
            mask.insert_range(..);
        }
        for child in children {
            let theirs = self.mask(child);
            if all {
                mask.intersect_with(&theirs);
            } else {
                mask.union_with(&theirs);
            }
        }
        mask
    }
}

/// `actual` against `want` as `value_type` says; `None` when they cannot be compared.
fn compare(
    value_type: Option<RuleType>,
    operator: RuleOperator,
    actual: &str,
    want: &str,
) -> Option<std::cmp::Ordering> {
    let by_default = match operator {
        RuleOperator::Eq | RuleOperator::Ne => RuleType::String,
        _ => RuleType::Integer,
    };
    match value_type.unwrap_or(by_default) {
        RuleType::String => Some(actual.cmp(want)),
        RuleType::Integer => {
            let num = |s: &str| s.trim().parse::<i64>().ok();
            Some(num(actual)?.cmp(&num(want)?))
        }
        RuleType::Version => Some(version(actual)?.cmp(&version(want)?)),
    }
}

/// A dotted version as its numbers, trailing zeros dropped (`1.2.0` equals `1.2`).
fn version(s: &str) -> Option<Vec<u64>> {
    let mut parts = s
        .trim()
        .split('.')
        .map(|p| p.parse::<u64>().ok())
        .collect::<Option<Vec<u64>>>()?;
    while parts.last() == Some(&0) {
        parts.pop();
    }
    Some(parts)
}

/// Place `bundle` relative to `with`: a positive score on the same nodes, a negative
/// score away from them; `INFINITY` and `-INFINITY` are mandatory.
///
/// Either `bundle` and `with`, or `sets`. A bundle name may also be a group's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ColocationConstraint {
    /// The bundle placed (the dependent).
    #[serde(default = "Name::unset", skip_serializing_if = "Name::is_unset")]
    pub bundle: Name,
    /// The bundle it follows, placed first.
    #[serde(default = "Name::unset", skip_serializing_if = "Name::is_unset")]
    pub with: Name,
    /// Strength.
    pub score: Score,
    /// With the promoted instances of `with` only (a promotable bundle), instead of any
    /// of its instances (Pacemaker's `with-rsc-role=Promoted`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<ConstraintRole>,
    /// Resource sets instead of `bundle` and `with` (Pacemaker's colocation sets): in a
    /// `sequential` set each bundle is placed with the one before it; every set is placed
    /// with the set after it (its first bundle with the last of the next set, or every
    /// bundle with every bundle where a set is not sequential).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sets: Vec<ResourceSet>,
}

/// The role of the instances a constraint is about: a colocation's `with`, a location's
/// `bundle`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ConstraintRole {
    /// The promoted instances.
    Promoted,
}

/// An ordered list of bundles (or groups) in a colocation or order constraint
/// (Pacemaker's `resource_set`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ResourceSet {
    /// The bundles or groups, in order.
    pub bundles: Vec<Name>,
    /// Whether the bundles of the set are chained one after another (`true`, the
    /// default), or unrelated among themselves and only tied to the sets around it.
    #[serde(default = "yes", skip_serializing_if = "is_yes")]
    pub sequential: bool,
    /// Order sets only: with `false`, the set after this one may start once any one of
    /// its bundles runs, and stops only when none does (Pacemaker's `require-all`).
    #[serde(default = "yes", skip_serializing_if = "is_yes")]
    pub require_all: bool,
}

fn is_yes(b: &bool) -> bool {
    *b
}

/// Start `then` after `first`.
///
/// Either `first` and `then`, or `sets`. A bundle name may also be a group's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OrderConstraint {
    /// Started first.
    #[serde(default = "Name::unset", skip_serializing_if = "Name::is_unset")]
    pub first: Name,
    /// Started after `first`.
    #[serde(default = "Name::unset", skip_serializing_if = "Name::is_unset")]
    pub then: Name,
    /// `mandatory`: `then` runs only while `first` does, and restarts after it;
    /// `optional`: only when both change in the same pass; `serialize`: their starts and
    /// stops never overlap.
    #[serde(default)]
    pub kind: OrderKind,
    /// Whether stops happen in the reverse order.
    #[serde(default = "yes")]
    pub symmetrical: bool,
    /// What of `first` the starts of `then` wait for: its starts (default), or, for a
    /// promotable `first`, its promotions (Pacemaker's `first-action=promote`).
    #[serde(default, skip_serializing_if = "OrderAction::is_start")]
    pub action: OrderAction,
    /// For a `mandatory` order: how many instances of `first` must run before `then`
    /// starts, and below which a running `then` stops (Pacemaker's `clone-min`; default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_instances: Option<u32>,
    /// Resource sets instead of `first` and `then` (Pacemaker's ordered sets): in a
    /// `sequential` set each bundle starts after the one before it; every set starts
    /// after the set before it (its first bundle after the last of that set, or every
    /// bundle after every bundle where a set is not sequential).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sets: Vec<ResourceSet>,
    /// Made by quorate from a set with `requireAll: false`: every `first` of that set,
    /// any one of which running is enough for `then` (empty: `first` is needed).
    #[serde(skip)]
    #[schemars(skip)]
    pub any_of: Vec<Name>,
}

fn yes() -> bool {
    true
}

/// What of an order's `first` its `then` waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub enum OrderAction {
    /// Its starts.
    #[default]
    Start,
    /// Its promotions (`first` must be promotable).
    Promote,
}

impl OrderAction {
    /// Whether it is the default, `start`.
    pub fn is_start(&self) -> bool {
        *self == OrderAction::Start
    }
}

/// Strength of an order constraint.
///
/// A `mandatory` order also stops a running `then` when `first` cannot run (no instance of
/// it placed, or fewer than `minInstances`), and restarts `then` after `first` when an
/// instance of `first` restarts or moves in the same plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub enum OrderKind {
    /// `then` starts only after `first` runs.
    #[default]
    Mandatory,
    /// Ordered only when both start in the same pass.
    Optional,
    /// Never started or stopped at the same time, in either order (Pacemaker's
    /// `Serialize`); quorate runs `first`'s steps first.
    Serialize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn rules_compare_attributes() {
        let attrs: BTreeMap<String, String> =
            [("rack".into(), "r1".into()), ("cores".into(), "16".into())].into();
        let rule = |attribute: &str, operator, value: Option<&str>| {
            Rule::expression(attribute.into(), operator, value.map(Into::into))
        };
        assert!(rule("rack", RuleOperator::Eq, Some("r1")).matches(&attrs));
        assert!(rule("rack", RuleOperator::Ne, Some("r2")).matches(&attrs));
        assert!(rule("zone", RuleOperator::Ne, Some("a")).matches(&attrs));
        assert!(rule("cores", RuleOperator::Gte, Some("8")).matches(&attrs));
        assert!(!rule("cores", RuleOperator::Lt, Some("8")).matches(&attrs));
        assert!(!rule("rack", RuleOperator::Gt, Some("1")).matches(&attrs));
        assert!(rule("zone", RuleOperator::NotExists, None).matches(&attrs));
        assert!(rule("rack", RuleOperator::Exists, None).matches(&attrs));
    }

    #[test]
    fn typed_compound_and_node_name_rules() {
        let attrs: BTreeMap<String, String> = [
            ("kernel".into(), "5.10.2".into()),
            ("cores".into(), "08".into()),
            ("zone".into(), "b".into()),
        ]
        .into();
        let typed = |attribute: &str, operator, value: &str, value_type| Rule {
            value_type,
            ..Rule::expression(attribute.into(), operator, Some(value.into()))
        };
        // Versions compare part by part, not as text ("5.10.2" < "5.9" as strings).
        let v = Some(RuleType::Version);
        assert!(typed("kernel", RuleOperator::Gt, "5.9", v).matches(&attrs));
        assert!(typed("kernel", RuleOperator::Eq, "5.10.2.0", v).matches(&attrs));
        assert!(!typed("kernel", RuleOperator::Gt, "5.9", Some(RuleType::String)).matches(&attrs));
        assert!(!typed("zone", RuleOperator::Gt, "1", v).matches(&attrs));
        // Integers: "08" equals 8 as an integer, not as a string.
        let i = Some(RuleType::Integer);
        assert!(typed("cores", RuleOperator::Eq, "8", i).matches(&attrs));
        assert!(!typed("cores", RuleOperator::Eq, "8", None).matches(&attrs));
        assert!(typed("zone", RuleOperator::Lt, "c", Some(RuleType::String)).matches(&attrs));
        // The node's name.
        let me = Rule::expression(NODE_NAME.into(), RuleOperator::Eq, Some("n2".into()));
        assert!(me.matches_node("n2", &attrs));
        assert!(!me.matches_node("n1", &attrs));
        // and / or, nested.
        let either = Rule {
            or: vec![me.clone(), typed("zone", RuleOperator::Eq, "a", None)],
            ..Rule::expression(String::new(), RuleOperator::Eq, None)
        };
        let either = Rule {
            operator: None,
            ..either
        };
        assert!(either.matches_node("n2", &attrs));
        assert!(!either.matches_node("n3", &attrs));
        let both = Rule {
            operator: None,
            and: vec![
                either.clone(),
                typed("kernel", RuleOperator::Gte, "5.10", v),
            ],
            ..Rule::expression(String::new(), RuleOperator::Eq, None)
        };
        assert!(both.matches_node("n2", &attrs));
        let old = BTreeMap::from([("kernel".to_owned(), "4.19".to_owned())]);
        assert!(!both.matches_node("n2", &old));
        // The matcher's masks say what each node's match says, trees and leaves alike.
        // Names are looked up for `#uname eq` and `ne`: a repeated name, a node without a
        // name (its `#uname` attribute answers), no value, a typed comparison.
        let unnamed = BTreeMap::from([(NODE_NAME.to_owned(), "n3".to_owned())]);
        let nodes = [
            ("n1", &attrs),
            ("n2", &attrs),
            ("n2", &old),
            ("n3", &old),
            ("", &unnamed),
        ];
        let mut matcher = NodeMatcher::new(nodes);
        let empty = Rule {
            operator: None,
            ..Rule::expression(String::new(), RuleOperator::Eq, None)
        };
        let name = |operator, value: Option<&str>| {
            Rule::expression(NODE_NAME.into(), operator, value.map(str::to_owned))
        };
        let not_n2 = name(RuleOperator::Ne, Some("n2"));
        let is_n3 = name(RuleOperator::Eq, Some("n3"));
        let no_value = name(RuleOperator::Ne, None);
        let as_integer = typed(NODE_NAME, RuleOperator::Eq, "n1", i);
        for rule in [
            &me,
            &either,
            &both,
            &either,
            &empty,
            &not_n2,
            &is_n3,
            &no_value,
            &as_integer,
        ] {
            let each: Vec<usize> = (0..nodes.len())
                .filter(|i| rule.matches_node(nodes[*i].0, nodes[*i].1))
                .collect();
            assert_eq!(
                matcher.mask(rule).ones().collect::<Vec<_>>(),
                each,
                "{rule:?}"
            );
        }
        let ones = |mask: FixedBitSet| mask.ones().collect::<Vec<_>>();
        assert_eq!(ones(matcher.mask(&both)), [1]);
        assert_eq!(ones(matcher.mask(&not_n2)), [0, 3, 4]);
        assert_eq!(ones(matcher.mask(&is_n3)), [3, 4]);
    }
}

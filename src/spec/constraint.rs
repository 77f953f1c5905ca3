//! `kind: Constraint`: location, colocation and order constraints with Pacemaker scores.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::values::{Name, Score};

/// The spec of a `Constraint`: exactly one of `location`, `colocation`, `order`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub enum ConstraintSpec {
    /// Prefer or avoid nodes.
    Location(LocationConstraint),
    /// Place a bundle with (or away from) another.
    Colocation(ColocationConstraint),
    /// Start one bundle before another.
    Order(OrderConstraint),
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
}

/// A test on a node attribute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Rule {
    /// Attribute name.
    pub attribute: String,
    /// Comparison.
    pub operator: RuleOperator,
    /// Value compared with (not for `exists`/`notExists`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// Comparisons in a [`Rule`]. `lt`, `lte`, `gt`, `gte` compare as integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
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

impl Rule {
    /// Whether a node with `attributes` matches.
    pub fn matches(&self, attributes: &std::collections::BTreeMap<String, String>) -> bool {
        let actual = attributes.get(&self.attribute);
        let want = self.value.as_deref();
        let num = |s: Option<&str>| s.and_then(|s| s.trim().parse::<i64>().ok());
        let cmp = || match (num(actual.map(String::as_str)), num(want)) {
            (Some(a), Some(b)) => Some(a.cmp(&b)),
            _ => None,
        };
        use std::cmp::Ordering::*;
        match self.operator {
            RuleOperator::Eq => actual.map(String::as_str) == want,
            RuleOperator::Ne => actual.map(String::as_str) != want,
            RuleOperator::Lt => cmp() == Some(Less),
            RuleOperator::Lte => matches!(cmp(), Some(Less | Equal)),
            RuleOperator::Gt => cmp() == Some(Greater),
            RuleOperator::Gte => matches!(cmp(), Some(Greater | Equal)),
            RuleOperator::Exists => actual.is_some(),
            RuleOperator::NotExists => actual.is_none(),
        }
    }
}

/// Place `bundle` relative to `with`: a positive score on the same nodes, a negative
/// score away from them; `INFINITY` and `-INFINITY` are mandatory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ColocationConstraint {
    /// The bundle placed (the dependent).
    pub bundle: Name,
    /// The bundle it follows, placed first.
    pub with: Name,
    /// Strength.
    pub score: Score,
}

/// Start `then` after `first`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OrderConstraint {
    /// Started first.
    pub first: Name,
    /// Started after `first`.
    pub then: Name,
    /// `mandatory`: `then` runs only while `first` does, and restarts after it;
    /// `optional`: only when both change in the same pass; `serialize`: their starts and
    /// stops never overlap.
    #[serde(default)]
    pub kind: OrderKind,
    /// Whether stops happen in the reverse order.
    #[serde(default = "yes")]
    pub symmetrical: bool,
    /// For a `mandatory` order: how many instances of `first` must run before `then`
    /// starts, and below which a running `then` stops (Pacemaker's `clone-min`; default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_instances: Option<u32>,
}

fn yes() -> bool {
    true
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
        let rule = |attribute: &str, operator, value: Option<&str>| Rule {
            attribute: attribute.into(),
            operator,
            value: value.map(Into::into),
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
}

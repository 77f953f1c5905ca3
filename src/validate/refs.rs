//! References between documents: nodes, bundles and networks named elsewhere must exist.

use std::collections::{BTreeSet, HashSet};

use super::Findings;
use crate::diag::Diagnostic;
use crate::load::de::suggest;
use crate::spec::constraint::{
    ColocationConstraint, ConstraintSpec, LocationConstraint, OrderConstraint, OrderKind, Rule,
    RuleOperator, RuleType,
};
use crate::spec::{Kind, SpecSet};

pub(super) fn check(set: &SpecSet, cluster_ok: bool, f: &mut Findings) {
    // Without a valid cluster the nodes and networks are unknown: skip references to them.
    let node_names = Known::new(set.cluster.nodes.iter().map(|n| n.name.as_str()));
    let nodes = cluster_ok.then_some(&node_names);
    if cluster_ok {
        cluster(set, f);
    }
    fences(set, nodes, f);
    constraints(set, nodes, f);
}

/// The names of the nodes, in the order the Cluster lists them, and as a set to look
/// them up (a cluster may list thousands, and as many constraints may name one).
struct Known<'a> {
    names: Vec<&'a str>,
    set: HashSet<&'a str, foldhash::fast::RandomState>,
}

impl<'a> Known<'a> {
    fn new(names: impl Iterator<Item = &'a str>) -> Known<'a> {
        let names: Vec<&str> = names.collect();
        let set = names.iter().copied().collect();
        Known { names, set }
    }

    fn lacks(&self, name: &str) -> bool {
        !self.set.contains(name)
    }
}

/// Unique node and network names, and bundles' networks.
fn cluster(set: &SpecSet, f: &mut Findings) {
    let cluster = set.cluster_name.as_str();
    let mut seen = BTreeSet::new();
    for (i, node) in set.cluster.nodes.iter().enumerate() {
        if !seen.insert(node.name.as_str()) {
            f.push(
                Diagnostic::error(
                    "quorate::set::duplicate-name",
                    format!("node `{}` is listed twice", node.name),
                )
                .with_help("give every node a unique name"),
                Kind::Cluster,
                cluster,
                &format!("spec.nodes.{i}.name"),
            );
        }
    }
    if set.cluster.nodes.is_empty() {
        f.push(
            Diagnostic::error("quorate::cluster::no-nodes", "the cluster has no nodes")
                .with_help("list at least one node under spec.nodes"),
            Kind::Cluster,
            cluster,
            "spec.nodes",
        );
    }
    let mut networks = BTreeSet::new();
    for (i, net) in set.cluster.networks.iter().enumerate() {
        if !networks.insert(net.name.as_str()) {
            f.push(
                Diagnostic::error(
                    "quorate::set::duplicate-name",
                    format!("network `{}` is listed twice", net.name),
                )
                .with_help("give every network a unique name"),
                Kind::Cluster,
                cluster,
                &format!("spec.networks.{i}.name"),
            );
        }
    }

    for (name, bundle) in &set.bundles {
        let Some(net) = bundle.network.as_ref().and_then(|n| n.name.as_ref()) else {
            continue;
        };
        if !networks.contains(net.as_str()) {
            // No known names to weigh: the help says where networks are declared instead.
            f.push(
                unknown(f, "network", net.as_str(), &[])
                    .with_help("declare it under the Cluster's spec.networks, with its subnet"),
                Kind::Bundle,
                name.as_str(),
                "spec.network.name",
            );
        }
    }
}

/// Fence targets and levels.
fn fences(set: &SpecSet, nodes: Option<&Known>, f: &mut Findings) {
    for (name, fence) in &set.fences {
        if fence.targets.is_empty() {
            f.push(
                Diagnostic::error(
                    "quorate::fence::no-targets",
                    "the fence device has no targets",
                )
                .with_help("list the nodes this device can power off under `targets`"),
                Kind::Fence,
                name.as_str(),
                "spec.targets",
            );
        }
        for (i, t) in fence.targets.iter().enumerate() {
            if let Some(nodes) = nodes.filter(|n| n.lacks(t.as_str())) {
                f.push(
                    unknown(f, "node", t.as_str(), &nodes.names),
                    Kind::Fence,
                    name.as_str(),
                    &format!("spec.targets.{i}"),
                );
            }
        }
        if fence.level == 0 {
            f.push(
                Diagnostic::error("quorate::fence::level", "fence levels start at 1")
                    .with_help("use level 1 for the device tried first"),
                Kind::Fence,
                name.as_str(),
                "spec.level",
            );
        }
    }
}

/// References from constraints to bundles and nodes, and their form.
fn constraints(set: &SpecSet, nodes: Option<&Known>, f: &mut Findings) {
    let bundles = f
        .names(Kind::Bundle)
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
    let bundles: Vec<&str> = bundles.iter().map(String::as_str).collect();
    for (name, c) in &set.constraints {
        let name = name.as_str();
        let bundle_ref = |f: &mut Findings, b: &str, path: &str| {
            // An unset name (a constraint with sets) is checked with its sets.
            if !b.is_empty() && !f.declared(Kind::Bundle, b) && !f.declared(Kind::Group, b) {
                f.push(
                    unknown(f, "bundle", b, &bundles),
                    Kind::Constraint,
                    name,
                    path,
                );
            }
        };
        match c {
            ConstraintSpec::Location(l) => {
                bundle_ref(f, l.bundle.as_str(), "spec.location.bundle");
                location(set, nodes, (name, l), f);
            }
            ConstraintSpec::Colocation(c) => {
                bundle_ref(f, c.bundle.as_str(), "spec.colocation.bundle");
                bundle_ref(f, c.with.as_str(), "spec.colocation.with");
                if c.bundle == c.with && !c.bundle.is_unset() {
                    f.push(
                        self_reference("colocation"),
                        Kind::Constraint,
                        name,
                        "spec.colocation.with",
                    );
                }
                if let Some(d) = colocation_role(set, c) {
                    f.push(d, Kind::Constraint, name, "spec.colocation.role");
                }
            }
            ConstraintSpec::Order(o) => {
                bundle_ref(f, o.first.as_str(), "spec.order.first");
                bundle_ref(f, o.then.as_str(), "spec.order.then");
                if o.first == o.then && !o.first.is_unset() {
                    f.push(
                        self_reference("order"),
                        Kind::Constraint,
                        name,
                        "spec.order.then",
                    );
                }
                if let Some(d) = min_instances(set, o) {
                    f.push(d, Kind::Constraint, name, "spec.order.minInstances");
                }
                if let Some(d) = promote_action(set, o) {
                    f.push(d, Kind::Constraint, name, "spec.order.action");
                }
            }
        }
    }
}

/// Location constraint `name`'s node (one of `nodes`, when the cluster is known), its
/// one target (a node or a rule), its rule and its role.
fn location(
    set: &SpecSet,
    nodes: Option<&Known>,
    (name, l): (&str, &LocationConstraint),
    f: &mut Findings,
) {
    if let (Some(n), Some(nodes)) = (&l.node, nodes)
        && nodes.lacks(n.as_str())
    {
        f.push(
            unknown(f, "node", n.as_str(), &nodes.names),
            Kind::Constraint,
            name,
            "spec.location.node",
        );
    }
    if l.node.is_some() == l.rule.is_some() {
        f.push(
            Diagnostic::error(
                "quorate::constraint::target",
                "a location constraint needs exactly one of `node` or `rule`",
            )
            .with_help("name one node, or give a rule matching node attributes"),
            Kind::Constraint,
            name,
            "spec.location",
        );
    }
    if let Some(rule) = &l.rule {
        check_rule(f, name, rule, "spec.location.rule");
    }
    if let Some(d) = location_role(set, l) {
        f.push(d, Kind::Constraint, name, "spec.location.role");
    }
}

/// `role: promoted` needs a promotable `with`, named as `with` (not in sets).
fn colocation_role(set: &SpecSet, c: &ColocationConstraint) -> Option<Diagnostic> {
    c.role?;
    let why = if !c.sets.is_empty() {
        "`role` is for a colocation with `bundle` and `with`, not sets".to_owned()
    } else if set
        .bundles
        .get(&c.with)
        .is_none_or(|b| b.promotable.is_none())
    {
        format!(
            "`role: promoted` needs a promotable `with`, and {} is not",
            c.with
        )
    } else {
        return None;
    };
    Some(Diagnostic::error("quorate::colocation::role", why).with_help(
        "give the bundle followed a `promotable` section, or remove `role` to follow any of its instances",
    ))
}

/// `role: promoted` on a location needs a promotable `bundle`.
fn location_role(set: &SpecSet, l: &LocationConstraint) -> Option<Diagnostic> {
    l.role?;
    if set
        .bundles
        .get(&l.bundle)
        .is_some_and(|b| b.promotable.is_some())
    {
        return None;
    }
    let why = format!(
        "`role: promoted` places the promoted instances of a promotable bundle, and {} is not one",
        l.bundle
    );
    Some(Diagnostic::error("quorate::location::role", why).with_help(
        "give the bundle a `promotable` section, or remove `role` to place all its instances",
    ))
}

/// `action: promote` needs a promotable `first`, named as `first` (not in sets).
fn promote_action(set: &SpecSet, o: &OrderConstraint) -> Option<Diagnostic> {
    if o.action.is_start() {
        return None;
    }
    let why = if !o.sets.is_empty() {
        "`action: promote` is for an order with `first` and `then`, not sets".to_owned()
    } else if set
        .bundles
        .get(&o.first)
        .is_none_or(|b| b.promotable.is_none())
    {
        format!(
            "`action: promote` needs a promotable `first`, and {} is not",
            o.first
        )
    } else {
        return None;
    };
    Some(Diagnostic::error("quorate::order::action", why).with_help(
        "give the first bundle a `promotable` section, or remove `action` to wait for its starts",
    ))
}

/// `minInstances` of an order: at least 1, on a mandatory order, and no more than
/// `first` has replicas (or `then` could never run).
fn min_instances(set: &SpecSet, o: &OrderConstraint) -> Option<Diagnostic> {
    let min = o.min_instances?;
    let error = |msg: String, help: String| {
        Some(Diagnostic::error("quorate::order::min-instances", msg).with_help(help))
    };
    if o.kind != OrderKind::Mandatory {
        return error(
            "`minInstances` applies only to a mandatory order".to_owned(),
            "remove `minInstances`, or make the order `kind: mandatory`".to_owned(),
        );
    }
    if min == 0 {
        return error(
            "`minInstances: 0` would let `then` run with `first` stopped".to_owned(),
            "use at least 1, or make the order `kind: optional`".to_owned(),
        );
    }
    let replicas = set.bundles.get(o.first.as_str())?.replicas;
    if min > replicas {
        return error(
            format!(
                "`minInstances: {min}` is more than the {replicas} replicas of `{}`: `{}` could never run",
                o.first, o.then
            ),
            format!(
                "lower minInstances to at most {replicas}, or raise the replicas of `{}`",
                o.first
            ),
        );
    }
    None
}

/// A reference to `name`, which is not among the `known` names of `what`. Described only
/// when `f` will list it: the suggestion compares `name` with every known name.
fn unknown(f: &Findings, what: &str, name: &str, known: &[&str]) -> Diagnostic {
    let code = match what {
        "node" => "quorate::ref::unknown-node",
        "bundle" => "quorate::ref::unknown-bundle",
        _ => "quorate::ref::unknown-network",
    };
    if !f.listing() {
        return Diagnostic::error(code, "counted, not listed");
    }
    let mut d = Diagnostic::error(code, format!("no {what} is named `{name}`"));
    d = match suggest(name, known.iter().copied()) {
        Some(s) => d.with_help(format!("did you mean `{s}`?")),
        None if known.is_empty() => d.with_help(format!("no {what}s are defined")),
        None if known.len() <= LISTED => {
            d.with_help(format!("{what}s defined: {}", known.join(", ")))
        }
        None => d.with_help(format!(
            "{what}s defined: {}, and {} more",
            known[..LISTED].join(", "),
            known.len() - LISTED
        )),
    };
    d
}

/// Most names the help of an unknown reference lists (a cluster may have thousands of
/// nodes, and a set a thousand such findings).
const LISTED: usize = 20;

fn self_reference(kind: &str) -> Diagnostic {
    Diagnostic::error(
        "quorate::constraint::self",
        format!("a {kind} constraint between a bundle and itself"),
    )
    .with_help("name two different bundles")
}

/// The shape of a location rule and of every rule in it: one expression, or a non-empty
/// `and` or `or`; a comparison with a `value`, `exists`/`notExists` without; a typed
/// `value` of its type.
fn check_rule(f: &mut Findings<'_>, name: &str, rule: &Rule, path: &str) {
    let expression = !rule.attribute.is_empty() || rule.operator.is_some();
    let shapes = usize::from(expression)
        + usize::from(!rule.and.is_empty())
        + usize::from(!rule.or.is_empty());
    if shapes != 1 {
        rule_error(f, name,
            "a rule is one expression (`attribute`, `operator`, `value`), or a non-empty `and` or `or` of rules".into(),
            "write `{attribute: rack, operator: eq, value: r1}`, or `{and: [...]}` / `{or: [...]}` of such rules",
            path,
        );
        return;
    }
    for (key, rules) in [("and", &rule.and), ("or", &rule.or)] {
        for (i, r) in rules.iter().enumerate() {
            check_rule(f, name, r, &format!("{path}.{key}.{i}"));
        }
    }
    if !expression {
        return;
    }
    let Some(operator) = rule.operator else {
        rule_error(
            f,
            name,
            "this rule has an `attribute` but no `operator`".into(),
            "add `operator: eq` (or ne, lt, lte, gt, gte, exists, notExists)",
            path,
        );
        return;
    };
    if rule.attribute.is_empty() {
        rule_error(
            f,
            name,
            "this rule has an `operator` but no `attribute`".into(),
            "name the node attribute it tests, or `#uname` for the node's name",
            path,
        );
    }
    let needs_value = !matches!(operator, RuleOperator::Exists | RuleOperator::NotExists);
    if needs_value != rule.value.is_some() {
        let msg = if needs_value {
            "this rule operator compares with a `value`; add one"
        } else {
            "`exists` and `notExists` take no `value`"
        };
        rule_error(
            f,
            name,
            msg.into(),
            "see the rule operators in the README",
            path,
        );
        return;
    }
    let typed_ok = |v: &str| match rule.value_type {
        Some(RuleType::Integer) => v.trim().parse::<i64>().is_ok(),
        Some(RuleType::Version) => v.trim().split('.').all(|p| p.parse::<u64>().is_ok()),
        _ => true,
    };
    if let Some(v) = &rule.value
        && !typed_ok(v)
    {
        rule_error(
            f,
            name,
            format!("`{v}` is not a value of this rule's `type`"),
            "an `integer` rule compares whole numbers (`16`), a `version` rule dotted numbers (`5.15.0`)",
            &format!("{path}.value"),
        );
    }
}

fn rule_error(f: &mut Findings<'_>, name: &str, msg: String, help: &str, at: &str) {
    f.push(
        Diagnostic::error("quorate::constraint::rule", msg).with_help(help),
        Kind::Constraint,
        name,
        at,
    );
}

#[cfg(test)]
mod tests {
    use crate::source::Sources;

    const SET: &str = "apiVersion: quorate.io/v1alpha1
kind: Cluster
metadata: {name: c}
spec:
  nodes: [{name: n1, runtime: 'podman+unix:///n1.sock', attributes: {kernel: '5.10'}}]
  fencing: {enabled: false}
---
apiVersion: quorate.io/v1alpha1
kind: Bundle
metadata: {name: b}
spec: {image: i, recovery: restart}
---
apiVersion: quorate.io/v1alpha1
kind: Constraint
metadata: {name: r}
spec:
  location:
    bundle: b
    score: 100
    rule:
";

    /// The rule findings of `rule` (indented under `rule:`), as (line, message).
    fn rule_findings(rule: &str) -> Vec<(u32, String)> {
        let mut sources = Sources::new();
        sources.add("s.yaml", format!("{SET}{rule}").into_bytes());
        let report = crate::validate::validate(&sources);
        report
            .diagnostics
            .iter()
            .filter(|d| d.code == "quorate::constraint::rule")
            .map(|d| {
                let line = d.location.and_then(|l| l.span).map_or(0, |s| s.line);
                (line, d.message.clone())
            })
            .collect()
    }

    const FIRST: u32 = 21; // the first line after `rule:`

    #[test]
    fn compound_and_typed_rules_are_checked_where_they_are_written() {
        let good = "      or:\n        - {attribute: '#uname', operator: eq, value: n1}\n        - and:\n            - {attribute: kernel, operator: gte, value: '5.9', type: version}\n            - {attribute: cores, operator: exists}\n";
        assert_eq!(rule_findings(good), []);
        // A nested expression without a value, pointed at on its own line.
        let no_value = "      or:\n        - {attribute: '#uname', operator: eq, value: n1}\n        - {attribute: kernel, operator: gte}\n";
        let found = rule_findings(no_value);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, FIRST + 2);
        assert!(found[0].1.contains("add one"), "{found:?}");
        // Both an expression and `and`.
        let both = "      attribute: kernel\n      operator: exists\n      and: [{attribute: cores, operator: exists}]\n";
        let found = rule_findings(both);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].1.contains("one expression"), "{found:?}");
        // An empty `or` is no rule.
        assert_eq!(rule_findings("      or: []\n").len(), 1);
        // A typed value that is not of its type, at the value.
        let typed = "      {attribute: kernel, operator: gte, value: 'five', type: version}\n";
        let found = rule_findings(typed);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, FIRST);
        assert!(found[0].1.contains("`five` is not a value"), "{found:?}");
        let typed = "      {attribute: cores, operator: eq, value: '8.5', type: integer}\n";
        assert_eq!(rule_findings(typed).len(), 1);
        // An attribute without an operator.
        let found = rule_findings("      {attribute: kernel, value: '5'}\n");
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].1.contains("no `operator`"), "{found:?}");
    }

    /// The help of an unknown node names the first nodes and counts the others, so a
    /// thousand such findings in a cluster of thousands of nodes stay small.
    #[test]
    fn an_unknown_node_is_answered_with_some_of_the_known() {
        let nodes: String = (0..30)
            .map(|i| format!("{{name: n{i}, runtime: 'podman+unix:///n{i}.sock'}}, "))
            .collect();
        let text = SET
            .replace(
                "[{name: n1, runtime: 'podman+unix:///n1.sock', attributes: {kernel: '5.10'}}]",
                &format!("[{nodes}]"),
            )
            .replace(
                "    score: 100\n    rule:\n",
                "    score: 100\n    node: database\n",
            );
        let mut sources = Sources::new();
        sources.add("s.yaml", text.into_bytes());
        let report = crate::validate::validate(&sources);
        let unknown: Vec<_> = report
            .diagnostics
            .iter()
            .filter(|d| d.code == "quorate::ref::unknown-node")
            .collect();
        assert_eq!(unknown.len(), 1, "{:?}", report.diagnostics);
        let listed: Vec<String> = (0..20).map(|i| format!("n{i}")).collect();
        let help = format!("nodes defined: {}, and 10 more", listed.join(", "));
        assert_eq!(unknown[0].help.as_deref(), Some(help.as_str()));
    }
}

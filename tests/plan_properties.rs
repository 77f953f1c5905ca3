//! Properties of the planner on random clusters, specs and observed states: the safety
//! invariants, hard constraints, determinism and idempotence.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use proptest::test_runner::RngSeed;
use quorate::observed::{
    Failures, InstanceState, ManualConfirmation, NodeState, Observed, ObservedInstance,
    ObservedNode, Role,
};
use quorate::plan::apply::expected_state;
use quorate::plan::{Options, Plan, StepId, StepOp, plan};
use quorate::source::Sources;
use quorate::spec::bundle::Recovery;
use quorate::spec::cluster::NoQuorumPolicy;
use quorate::spec::constraint::ConstraintSpec;
use quorate::spec::{Name, SpecSet};
use quorate::validate::validate;

const SCORES: [&str; 6] = ["-INFINITY", "-50", "0", "30", "200", "INFINITY"];
// Not `stop`: its "leave it stopped" is not remembered from one plan to the next (the
// next plan starts it again), so a plan with such a stop is not idempotent.
const ON_FAIL: [&str; 5] = ["restart", "restart", "ignore", "block", "fence"];
/// A bundle's own settings, over the cluster's defaults.
const BUNDLE_SETTINGS: [&str; 4] = [
    "",
    "",
    ", stickiness: 0",
    ", stickiness: 500, migrationThreshold: 1, failureTimeout: 0s",
];

/// A location's target: a node, or a rule (simple, on the node's name, typed, or a tree
/// of `and` / `or`).
fn target_of(kind: usize, node: usize) -> String {
    let rack = node % 3;
    match kind {
        0 => format!("node: n{node}"),
        1 => format!("rule: {{attribute: rack, operator: eq, value: r{rack}}}"),
        2 => format!(
            "rule: {{or: [{{attribute: '#uname', operator: eq, value: n{node}}}, {{attribute: rack, operator: eq, value: r{rack}}}]}}"
        ),
        3 => format!(
            "rule: {{and: [{{attribute: kernel, operator: gte, value: '5.5', type: version}}, {{or: [{{attribute: '#uname', operator: ne, value: n{node}}}, {{attribute: rack, operator: exists}}]}}]}}"
        ),
        _ => format!("rule: {{attribute: kernel, operator: lt, value: '5.{rack}', type: string}}"),
    }
}

/// The cluster's `placementStrategy`; `default` ignores the capacities generated.
const STRATEGIES: [&str; 4] = ["default", "utilization", "balanced", "minimal"];

// Mandatory twice as often: it is the kind that stops and restarts.
const ORDER_KINDS: [&str; 4] = ["mandatory", "mandatory", "optional", "serialize"];

#[derive(Debug, Clone)]
struct World {
    spec_text: String,
    nodes: Vec<(u8, u8, bool)>, // (state 0 online 1 lost 2 fenced, standby?, confirmed?)
    copies: Vec<(usize, usize, u32, bool, u8, u32)>, // (node, bundle, index, hash ok, state, fails)
}

fn world() -> impl Strategy<Value = World> {
    (1usize..=6, 1usize..=4).prop_flat_map(|(n, b)| {
        (
            prop::collection::vec((0u32..=2, 0u8..3, prop::bool::weighted(0.1), prop::bool::weighted(0.8)), n),
            prop::collection::vec((0u32..=3, 1u32..=2, any::<bool>(), 0i32..3, 0usize..ON_FAIL.len(), 0usize..BUNDLE_SETTINGS.len()), b),
            (0u32..=1, 0u8..3, prop::bool::weighted(0.85), prop::sample::select(vec![1u32, 100])),
            prop::collection::vec((0..b, 0..n, 0usize..5, 0usize..SCORES.len()), 0..5),
            prop::collection::vec((0..b, 0..b, 0usize..SCORES.len()), 0..3),
            prop::collection::vec((0..b, 0..b, 0usize..ORDER_KINDS.len(), 0u32..=2), 0..3),
            prop::collection::vec((0u8..10, prop::bool::weighted(0.1), prop::bool::weighted(0.3)), n),
            prop::collection::vec((0..n, 0..b, 0u32..4, prop::bool::weighted(0.7), 0u8..6, 0u32..5), 0..10),
            // Capacity: the strategy, each node's (cpu, memory), each bundle's needs.
            (0usize..STRATEGIES.len(), prop::collection::vec((0u64..=8, 0u64..=4), n), prop::collection::vec((0u64..=3, 0u64..=2), b)),
            // A group (its first and last candidate), an order set and a colocation set.
            (prop::option::weighted(0.4, (0..b, 0..b)), prop::option::weighted(0.3, (0..b, 0..b, 0..b, any::<bool>(), any::<bool>())), prop::option::weighted(0.3, (0..b, 0..b, 0usize..SCORES.len()))),
            // A promotable bundle: which, maxPromoted, maxPromotedPerNode.
            prop::option::weighted(0.5, (0..b, 1u32..=2, 1u32..=2)),
        )
            .prop_map(move |(nodes, bundles, cluster, locs, colos, orders, states, copies, capacity, extra, promotable)| {
                let (strategy, caps, needs) = capacity;
                let (rv, policy, fencing, stickiness) = cluster;
                let mut t = String::from("apiVersion: quorate.io/v1alpha1\nkind: Cluster\nmetadata: {name: c}\nspec:\n  nodes:\n");
                for (i, (votes, rack, standby, _)) in nodes.iter().enumerate() {
                    let kernel = ["5.0", "5.5", "5.10"][*rack as usize];
                    // A node without memory leaves it out (0, as in Pacemaker).
                    let (cpu, mem) = caps[i];
                    let cap = if mem == 0 { format!("{{cpu: {cpu}}}") } else { format!("{{cpu: {cpu}, memory: {mem}}}") };
                    t += &format!("    - {{name: n{i}, runtime: 'podman+unix:///n{i}', votes: {votes}, standby: {standby}, attributes: {{rack: r{rack}, kernel: '{kernel}'}}, capacity: {cap}}}\n");
                }
                t += &format!("  placementStrategy: {}\n", STRATEGIES[strategy]);
                let policy = ["freeze", "stop", "ignore"][policy as usize];
                t += &format!("  quorum: {{reconcilerVotes: {rv}, noQuorumPolicy: {policy}}}\n  fencing: {{enabled: {fencing}}}\n");
                t += &format!("  defaults: {{stickiness: {stickiness}, migrationThreshold: 3, failureTimeout: 10m}}\n");
                let covered: Vec<String> = nodes.iter().enumerate().filter(|(_, x)| x.3).map(|(i, _)| format!("n{i}")).collect();
                if !covered.is_empty() {
                    t += &format!("---\napiVersion: quorate.io/v1alpha1\nkind: Fence\nmetadata: {{name: f}}\nspec:\n  targets: [{}]\n  ipmi: {{address: b, username: u, password: {{fromEnv: P}}}}\n", covered.join(", "));
                }
                for (i, (replicas, rph, fence, prio, on_fail, own)) in bundles.iter().enumerate() {
                    let recovery = if *fence { "fence" } else { "restart" };
                    let on_fail = ON_FAIL[*on_fail];
                    let own = BUNDLE_SETTINGS[*own];
                    let (cpu, mem) = needs[i];
                    let promotable = match promotable {
                        Some((k, max, per_node)) if k == i => format!(", promotable: {{maxPromoted: {max}, maxPromotedPerNode: {per_node}, promote: [p], demote: [d], role: [r]}}"),
                        _ => String::new(),
                    };
                    t += &format!("---\napiVersion: quorate.io/v1alpha1\nkind: Bundle\nmetadata: {{name: b{i}}}\nspec: {{image: img{i}, replicas: {replicas}, replicasPerHost: {rph}, recovery: {recovery}, priority: {prio}, update: {{maxParallel: 10}}, monitor: {{onFail: {on_fail}}}{own}, needs: {{cpu: {cpu}, memory: {mem}}}{promotable}}}\n");
                }
                for (k, (b, node, target, s)) in locs.iter().enumerate() {
                    let target = target_of(*target, *node);
                    // For the promotable bundle's primaries, every other time.
                    let role = match promotable {
                        Some((p, _, _)) if p == *b && k % 2 == 1 => ", role: promoted",
                        _ => "",
                    };
                    t += &format!("---\napiVersion: quorate.io/v1alpha1\nkind: Constraint\nmetadata: {{name: loc{k}}}\nspec: {{location: {{bundle: b{b}, {target}, score: {}{role}}}}}\n", SCORES[*s]);
                }
                for (k, (a, w, s)) in colos.iter().enumerate() {
                    if a != w {
                        // With the promotable bundle's primaries, every other time.
                        let role = match promotable {
                            Some((p, _, _)) if p == *w && k % 2 == 0 => ", role: promoted",
                            _ => "",
                        };
                        t += &format!("---\napiVersion: quorate.io/v1alpha1\nkind: Constraint\nmetadata: {{name: col{k}}}\nspec: {{colocation: {{bundle: b{a}, with: b{w}, score: {}{role}}}}}\n", SCORES[*s]);
                    }
                }
                for (k, (f, th, kind, min)) in orders.iter().enumerate() {
                    if f < th {
                        let kind = ORDER_KINDS[*kind];
                        // minInstances only where it validates: mandatory, within first's replicas.
                        let min = match bundles.get(*f) {
                            Some(first) if kind == "mandatory" && *min >= 1 && *min <= first.0 => format!(", minInstances: {min}"),
                            _ => String::new(),
                        };
                        t += &format!("---\napiVersion: quorate.io/v1alpha1\nkind: Constraint\nmetadata: {{name: ord{k}}}\nspec: {{order: {{first: b{f}, then: b{th}, kind: {kind}{min}}}}}\n");
                    }
                }
                t += &groups_and_sets(&bundles, extra);
                let nodes = states
                    .iter()
                    .map(|(s, standby, confirmed)| (match s { 0..=6 => 0, 7..=8 => 1, _ => 2 }, u8::from(*standby), *confirmed))
                    .collect();
                World { spec_text: t, nodes, copies }
            })
    })
}

type Extra = (
    Option<(usize, usize)>,
    Option<(usize, usize, usize, bool, bool)>,
    Option<(usize, usize, usize)>,
);

/// A group of the bundles between two picks that can share it (the replicas of the
/// first, `replicasPerHost: 1` with several), an order set (two bundles, sequential or
/// not, `requireAll` or not, then a third) and a colocation set of two bundles.
fn groups_and_sets(bundles: &[(u32, u32, bool, i32, usize, usize)], extra: Extra) -> String {
    let doc = |kind: &str, name: &str, spec: String| {
        format!(
            "---\napiVersion: quorate.io/v1alpha1\nkind: {kind}\nmetadata: {{name: {name}}}\nspec: {spec}\n"
        )
    };
    let mut t = String::new();
    let (group, order, colocation) = extra;
    if let Some((lo, hi)) = group {
        let fits =
            |k: usize| bundles[k].0 == bundles[lo].0 && (bundles[k].0 <= 1 || bundles[k].1 == 1);
        let members: Vec<String> = (lo.min(hi)..=lo.max(hi))
            .filter(|k| fits(*k))
            .map(|k| format!("b{k}"))
            .collect();
        if !members.is_empty() {
            t += &doc(
                "Group",
                "grp",
                format!("{{bundles: [{}]}}", members.join(", ")),
            );
        }
    }
    if let Some((a, b, c, sequential, require_all)) = order
        && a != b
        && b != c
        && a != c
    {
        t += &doc(
            "Constraint",
            "oset",
            format!(
                "{{order: {{sets: [{{bundles: [b{a}, b{b}], sequential: {sequential}, requireAll: {require_all}}}, {{bundles: [b{c}]}}]}}}}"
            ),
        );
    }
    if let Some((a, b, s)) = colocation
        && a != b
    {
        t += &doc(
            "Constraint",
            "cset",
            format!(
                "{{colocation: {{score: {}, sets: [{{bundles: [b{a}, b{b}]}}]}}}}",
                SCORES[s]
            ),
        );
    }
    t
}

fn build(w: &World) -> Option<(SpecSet, Observed)> {
    let mut sources = Sources::new();
    sources.add("w.yaml", w.spec_text.clone().into_bytes());
    let spec = validate(&sources).into_valid_set()?;
    let mut observed = Observed {
        now: 10_000,
        ..Observed::default()
    };
    for (i, (state, standby, confirmed)) in w.nodes.iter().enumerate() {
        let name: Name = format!("n{i}").parse().unwrap();
        let state = [NodeState::Online, NodeState::Lost, NodeState::Fenced][*state as usize];
        if state == NodeState::Lost && *confirmed {
            observed.confirmations.push(ManualConfirmation {
                node: name.clone(),
                by: "op".into(),
                at: 9_000,
            });
        }
        observed.nodes.insert(
            name,
            ObservedNode {
                state,
                since: Some(8_000),
                standby: *standby == 1,
                ..ObservedNode::default()
            },
        );
    }
    for (node, bundle, index, hash_ok, state, fails) in &w.copies {
        let Some((bname, b)) = spec.bundles.iter().nth(*bundle) else {
            continue;
        };
        let name: Name = format!("n{node}").parse().unwrap();
        let Some(n) = observed.nodes.get_mut(&name) else {
            continue;
        };
        if n.instances
            .iter()
            .any(|i| i.bundle == *bname && i.index == *index)
        {
            continue;
        }
        let spec_hash = if *hash_ok {
            quorate::plan::hash::instance_hash(bname.as_str(), b, *index)
        } else {
            "old".into()
        };
        let state = match state {
            0..=3 => InstanceState::Running,
            4 => InstanceState::Failed,
            _ => InstanceState::Stopped,
        };
        // Of a promotable bundle's running copies: promoted, a replica, or unknown.
        let role = match fails % 3 {
            _ if b.promotable.is_none() || state == InstanceState::Stopped => None,
            0 => Some(Role {
                promoted: true,
                ..Role::default()
            }),
            1 => Some(Role::default()),
            _ => None,
        };
        n.instances.push(ObservedInstance {
            bundle: bname.clone(),
            index: *index,
            spec_hash,
            state,
            role,
        });
        if *fails > 0 {
            let name = quorate::spec::bundle::instance_name(bname.as_str(), *index);
            n.failures.insert(
                name,
                Failures {
                    count: *fails,
                    last: Some(9_500),
                },
            );
        }
    }
    Some((spec, observed))
}

fn ancestors(p: &Plan, step: StepId) -> BTreeSet<StepId> {
    let by_id: BTreeMap<StepId, &quorate::plan::Step> = p.steps.iter().map(|s| (s.id, s)).collect();
    let mut seen = BTreeSet::new();
    let mut todo = vec![step];
    while let Some(s) = todo.pop() {
        for d in &by_id[&s].after {
            if seen.insert(*d) {
                todo.push(*d);
            }
        }
    }
    seen
}

/// Nodes where a copy of `bundle`/`index` may run at the start of the plan.
fn possibly_running(o: &Observed, bundle: &Name, index: u32) -> Vec<(Name, bool)> {
    o.nodes
        .iter()
        .filter_map(|(name, n)| {
            let copy = n
                .instances
                .iter()
                .find(|i| i.bundle == *bundle && i.index == index)?;
            match n.state {
                NodeState::Online if copy.state != InstanceState::Stopped => {
                    Some((name.clone(), false))
                }
                NodeState::Lost if !o.confirmed_off(name.as_str()) => Some((name.clone(), true)),
                _ => None,
            }
        })
        .collect()
}

/// The copies of `bundle` that may be promoted as `o` says: running ones that report
/// `promoted` or no role, and any on a lost node not confirmed off; as (node, index).
fn holders(o: &Observed, bundle: &Name) -> Vec<(Name, u32)> {
    o.nodes
        .iter()
        .flat_map(|(name, n)| n.instances.iter().map(move |i| (name, n, i)))
        .filter(|(name, n, i)| {
            i.bundle == *bundle
                && match n.state {
                    NodeState::Online => {
                        i.state != InstanceState::Stopped
                            && i.role.as_ref().is_none_or(|r| r.promoted)
                    }
                    NodeState::Lost => !o.confirmed_off(name.as_str()),
                    NodeState::Fenced => false,
                }
        })
        .map(|(name, _, i)| (name.clone(), i.index))
        .collect()
}

/// What runs on `node` in `state` needs of `quantity`, by the spec's bundles.
fn used(spec: &SpecSet, state: &Observed, node: &Name, quantity: &str) -> u64 {
    let Some(n) = state.nodes.get(node) else {
        return 0;
    };
    n.instances
        .iter()
        .filter(|i| i.state != InstanceState::Stopped)
        .filter_map(|i| spec.bundles.get(&i.bundle))
        .filter_map(|b| {
            b.needs
                .iter()
                .find(|(q, _)| q.as_str() == quantity)
                .map(|(_, n)| *n)
        })
        .sum()
}

/// For every start of an instance onto a node it did not run on: every quantity it needs
/// fits in what the node offers, counting all that runs there when the plan is done.
fn capacity_holds(spec: &SpecSet, before: &Observed, end: &Observed, p: &Plan) -> bool {
    p.steps.iter().all(|s| {
        let StepOp::Start {
            node,
            bundle,
            index,
        } = &s.op
        else {
            return true;
        };
        let ran_here = before.nodes.get(node).is_some_and(|n| {
            n.instances.iter().any(|i| {
                i.bundle == *bundle && i.index == *index && i.state != InstanceState::Stopped
            })
        });
        if ran_here {
            return true;
        }
        let Some(spec_node) = spec.cluster.node(node.as_str()) else {
            return false;
        };
        spec.bundles[bundle]
            .needs
            .iter()
            .filter(|(_, n)| **n > 0)
            .all(|(q, _)| {
                let offered = spec_node.capacity.get(q).copied().unwrap_or(0);
                used(spec, end, node, q.as_str()) <= offered
            })
    })
}

/// The failing cases found so far, replayed first (an integration test has no `lib.rs`
/// for proptest's default place to be found from).
const REGRESSIONS: proptest::test_runner::FileFailurePersistence =
    proptest::test_runner::FileFailurePersistence::Direct(
        "tests/plan_properties.proptest-regressions",
    );

/// 400 cases by default (`PROPTEST_CASES=N` runs more), from a fixed seed so that a run
/// of the suite is repeatable; `PROPTEST_RNG_SEED=N` explores from another (a case that
/// fails is added to the regressions file: keep it there only with its fix). Known cases
/// that still fail are kept as ignored tests in `plan_scenarios.rs` (issue 18).
fn config() -> ProptestConfig {
    let default = ProptestConfig::default();
    let seeded = std::env::var_os("PROPTEST_RNG_SEED").is_some();
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(400),
        max_global_rejects: 100_000,
        failure_persistence: Some(Box::new(REGRESSIONS)),
        rng_seed: if seeded {
            default.rng_seed
        } else {
            RngSeed::Fixed(1)
        },
        ..default
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn the_planner_keeps_its_invariants(w in world()) {
        let built = build(&w);
        prop_assume!(built.is_some());
        let (spec, observed) = built.unwrap();
        let p = plan(&spec, &observed, &Options::default());

        // Determinism, down to the bytes of the JSON.
        let again = plan(&spec, &observed, &Options::default());
        prop_assert_eq!(serde_json::to_string(&p).unwrap(), serde_json::to_string(&again).unwrap());

        // `--explain` scores every instance, and decides nothing differently.
        let explained = plan(&spec, &observed, &Options { explain: true, ..Options::default() });
        prop_assert_eq!(&explained.steps, &p.steps);
        prop_assert_eq!(&explained.blocked, &p.blocked);

        // Invariant 2: without quorum nothing starts and nothing is fenced.
        if !p.quorum.quorate && spec.cluster.quorum.no_quorum_policy != NoQuorumPolicy::Ignore {
            prop_assert!(p.steps.iter().all(|s| matches!(s.op, StepOp::Stop { .. })), "{:#?}", p.steps);
        }

        // Invariants 1 and 3: a fence-recovery instance starts only after every other
        // copy that may run is stopped (reachable) or its node fenced (lost).
        let mut started: BTreeMap<(Name, u32), usize> = BTreeMap::new();
        for s in &p.steps {
            let StepOp::Start { node, bundle, index } = &s.op else { continue };
            *started.entry((bundle.clone(), *index)).or_default() += 1;
            if spec.bundles[bundle].recovery != Recovery::Fence {
                continue;
            }
            let before = ancestors(&p, s.id);
            for (other, lost) in possibly_running(&observed, bundle, *index) {
                if other == *node && !lost {
                    continue;
                }
                let cleared = p.steps.iter().filter(|x| before.contains(&x.id)).any(|x| match &x.op {
                    StepOp::Fence { node: f } => *f == other,
                    StepOp::Stop { node: n, bundle: b, index: i } => !lost && *n == other && b == bundle && i == index,
                    _ => false,
                });
                prop_assert!(cleared, "{bundle}-{index} starts on {node} while a copy may run on {other}:\n{:#?}", p);
            }
        }
        prop_assert!(started.values().all(|n| *n == 1), "an instance started twice: {started:?}");

        // Invariant 8: when a promotion runs, the copies that may be promoted (those that
        // report it, running ones of unknown role, any on a lost node) that no step before
        // it demoted, stopped or fenced, and every other promotion of the plan, leave room
        // for it, in all and on its node.
        for s in &p.steps {
            let StepOp::Promote { node, bundle, index } = &s.op else { continue };
            let limits = spec.bundles[bundle].promotable.as_ref().unwrap();
            let before = ancestors(&p, s.id);
            let mut held = holders(&observed, bundle);
            held.retain(|(n, i)| !p.steps.iter().filter(|x| before.contains(&x.id)).any(|x| match &x.op {
                StepOp::Fence { node: f } => f == n,
                StepOp::Stop { node: m, bundle: b, index: j } | StepOp::Demote { node: m, bundle: b, index: j, .. } => m == n && b == bundle && j == i,
                _ => false,
            }));
            held.extend(p.steps.iter().filter_map(|x| match &x.op {
                StepOp::Promote { node: m, bundle: b, index: j } if b == bundle => Some((m.clone(), *j)),
                _ => None,
            }));
            let here = held.iter().filter(|(n, _)| n == node).count();
            prop_assert!(held.len() <= limits.max_promoted as usize && here <= limits.max_promoted_per_node as usize,
                "promoting {bundle}-{index} on {node} with {held:?} promoted or possibly so:\n{:#?}\n{:#?}", p, observed);
        }

        // Every action and every blocked instance says why.
        prop_assert!(p.actions.iter().all(|a| !a.reason.is_empty()));
        prop_assert!(p.blocked.iter().all(|b| !b.reason.is_empty()));

        // Hard constraints hold where the plan leaves instances, when nothing is blocked.
        let end = expected_state(&spec, &observed, &p);
        if p.quorum.quorate && p.blocked.is_empty() {
            let on = |bundle: &str, node: &Name| end.nodes.get(node).is_some_and(|n| n.state == NodeState::Online && n.instances.iter().any(|i| i.bundle.as_str() == bundle && i.state != InstanceState::Stopped));
            for c in spec.constraints.values() {
                for (node, spec_node) in spec.cluster.nodes.iter().map(|n| (&n.name, n)) {
                    match c {
                        ConstraintSpec::Location(l) if l.score.is_neg_infinity() => {
                            let hit = l.matches_node(node.as_str(), &spec_node.attributes);
                            // With a role, no primary there; without, no instance.
                            let primary = on(l.bundle.as_str(), node) && end.nodes[node].instances.iter().any(|i| i.bundle == l.bundle && i.role.as_ref().is_some_and(|r| r.promoted));
                            let there = if l.role.is_some() { primary } else { on(l.bundle.as_str(), node) };
                            prop_assert!(!(hit && there), "{} on {node} despite -INFINITY (role {:?})", l.bundle, l.role);
                        }
                        // With a role: beside (or away from) `with`'s primary only.
                        // A running copy of unknown role may be the primary, and counts as one.
                        ConstraintSpec::Colocation(c) if c.role.is_some() && on(c.bundle.as_str(), node) => {
                            let primary = end.nodes.get(node).is_some_and(|n| n.instances.iter().any(|i| i.bundle == c.with && i.role.as_ref().map_or(i.state == InstanceState::Running, |r| r.promoted)));
                            prop_assert!(!c.score.is_infinity() || primary, "{} on {node} without {}'s primary\n{:?}\n{:?}\n{:?}", c.bundle, c.with, p.steps.iter().map(|s| &s.op).collect::<Vec<_>>(), end.nodes, observed.nodes);
                            prop_assert!(!c.score.is_neg_infinity() || !primary, "{} on {node} with {}'s primary", c.bundle, c.with);
                        }
                        ConstraintSpec::Colocation(c) if c.score.is_infinity() && on(c.bundle.as_str(), node) => {
                            prop_assert!(on(c.with.as_str(), node), "{} on {node} without {}", c.bundle, c.with);
                        }
                        ConstraintSpec::Colocation(c) if c.score.is_neg_infinity() && on(c.bundle.as_str(), node) => {
                            prop_assert!(!on(c.with.as_str(), node), "{} on {node} with {}", c.bundle, c.with);
                        }
                        _ => {}
                    }
                }
            }
        }

        // A serialize order: every step of its bundles in the plan comes after every one of
        // an earlier phase (stops of then, stops of first, starts of first, starts of then),
        // so none of them run at once.
        let phase = |s: &quorate::plan::Step, first: &str, then: &str| match &s.op {
            StepOp::Stop { bundle, .. } if bundle.as_str() == then => Some(0),
            StepOp::Stop { bundle, .. } if bundle.as_str() == first => Some(1),
            StepOp::Start { bundle, .. } if bundle.as_str() == first => Some(2),
            StepOp::Start { bundle, .. } if bundle.as_str() == then => Some(3),
            _ => None,
        };
        for c in spec.constraints.values() {
            if let ConstraintSpec::Order(o) = c
                && o.kind == quorate::spec::constraint::OrderKind::Serialize
            {
                let (f, t) = (o.first.as_str(), o.then.as_str());
                for later in &p.steps {
                    let Some(pl) = phase(later, f, t) else { continue };
                    let before = ancestors(&p, later.id);
                    for earlier in p.steps.iter().filter(|e| phase(e, f, t).is_some_and(|pe| pe < pl)) {
                        prop_assert!(before.contains(&earlier.id), "serialize {f}, {t}: {:?} does not wait for {:?}", later, earlier);
                    }
                }
            }
        }

        // Mandatory orders: where the plan leaves an instance of `then` running on a node
        // that answers, at least `minInstances` (1) of `first` run too, when quorate and
        // nothing is blocked.
        if p.quorum.quorate && p.blocked.is_empty() {
            let running = |bundle: &str| end.nodes.values().filter(|n| n.state == NodeState::Online).flat_map(|n| &n.instances).filter(|i| i.bundle.as_str() == bundle && i.state != InstanceState::Stopped).count();
            for c in spec.constraints.values() {
                if let ConstraintSpec::Order(o) = c
                    && o.kind == quorate::spec::constraint::OrderKind::Mandatory
                    && running(o.then.as_str()) > 0
                {
                    let min = o.min_instances.unwrap_or(1) as usize;
                    // requireAll: false: any one of the set's bundles is enough.
                    let enough = running(o.first.as_str()) >= min || o.any_of.iter().any(|f| running(f.as_str()) >= min);
                    prop_assert!(enough, "{} runs with fewer than {min} of {} (or of {:?})", o.then, o.first, o.any_of);
                }
            }
        }

        // Capacity, under a strategy that counts it: a node that the plan starts or moves an
        // instance onto (one that did not run there) is left with no more of a quantity
        // that instance needs than it offers.
        if spec.cluster.placement_strategy.enforces_capacity() {
            prop_assert!(capacity_holds(&spec, &observed, &end, &p), "over capacity:\n{:#?}\n{}", p.actions, w.spec_text);
        }

        // Idempotence: planning against the state this plan leaves changes nothing. Unless
        // the plan's own fences (onFail: fence of a voting node) cost quorum: then the next
        // plan rightly follows noQuorumPolicy.
        let p2 = plan(&spec, &end, &Options::default());
        if p2.quorum.quorate == p.quorum.quorate {
            prop_assert!(p2.actions.is_empty(), "second plan not empty:\nfirst: {:#?}\nsecond: {:#?}", p.actions, p2.actions);
        } else {
            prop_assert!(p.steps.iter().any(|s| matches!(s.op, StepOp::Fence { .. })), "quorum changed without a fence: {:#?}", p);
        }
    }
}

/// What is suspended: the whole cluster (rarely), and each bundle `b<i>` or not.
fn suspension() -> impl Strategy<Value = (bool, Vec<bool>)> {
    (
        prop::bool::weighted(0.2),
        prop::collection::vec(prop::bool::weighted(0.4), 4),
    )
}

/// `observed` with the generated suspension.
fn suspend(observed: &mut Observed, (cluster, bundles): &(bool, Vec<bool>)) {
    let s = quorate::observed::Suspension::new(1, Some("test"));
    if *cluster {
        observed.suspended.cluster = Some(s.clone());
    }
    for (i, _) in bundles.iter().enumerate().filter(|(_, on)| **on) {
        observed
            .suspended
            .bundles
            .insert(format!("b{i}"), s.clone());
    }
}

proptest! {
    #![proptest_config(config())]

    /// `quorate suspend`: no step ever touches a suspended bundle's instance, no node is
    /// fenced while the cluster is suspended (nor one whose every instance is suspended),
    /// every instance of a suspended bundle observed somewhere is shown, and planning
    /// stays deterministic and converges.
    #[test]
    fn suspended_bundles_are_never_touched(w in world(), s in suspension()) {
        let built = build(&w);
        prop_assume!(built.is_some());
        let (spec, mut observed) = built.unwrap();
        suspend(&mut observed, &s);
        let p = plan(&spec, &observed, &Options::default());
        let again = plan(&spec, &observed, &Options::default());
        prop_assert_eq!(serde_json::to_string(&p).unwrap(), serde_json::to_string(&again).unwrap());

        let covered = |b: &Name| observed.suspended.covers(b.as_str());
        for st in &p.steps {
            match &st.op {
                StepOp::Start { bundle, .. } | StepOp::Stop { bundle, .. } | StepOp::Promote { bundle, .. } | StepOp::Demote { bundle, .. } => {
                    prop_assert!(!covered(bundle), "a step touches suspended {bundle}: {:#?}", p);
                }
                StepOp::Fence { node } => {
                    prop_assert!(observed.suspended.cluster.is_none(), "fence of {node} while the cluster is suspended");
                    let held = &observed.nodes[node].instances;
                    prop_assert!(held.is_empty() || !held.iter().all(|i| covered(&i.bundle)), "{node} fenced for suspended instances only: {held:?}");
                }
            }
        }
        if observed.suspended.cluster.is_some() {
            prop_assert!(p.steps.is_empty() && p.actions.is_empty(), "{:#?}", p);
        }
        // Every copy of a suspended bundle is shown, on its node.
        for (node, n) in &observed.nodes {
            for i in n.instances.iter().filter(|i| covered(&i.bundle)) {
                let shown = p.suspended.iter().any(|u| u.instance == i.name() && u.on.iter().any(|(at, _)| at == node));
                prop_assert!(shown, "{} on {node} not shown: {:#?}", i.name(), p.suspended);
            }
        }
        prop_assert!(p.suspended.iter().all(|u| u.reason.starts_with("suspended, not managed")));

        // Converges: the state this plan leaves plans nothing more (as in the invariants'
        // property, unless the plan's own fences cost quorum).
        let end = expected_state(&spec, &observed, &p);
        let p2 = plan(&spec, &end, &Options::default());
        if p2.quorum.quorate == p.quorum.quorate {
            prop_assert!(p2.actions.is_empty(), "second plan not empty:\nfirst: {:#?}\nsecond: {:#?}", p.actions, p2.actions);
        }
    }
}

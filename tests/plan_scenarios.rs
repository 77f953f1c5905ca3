//! The planner on hand-written situations: each of its rules, with the reason it gives.

use quorate::observed::{Observed, snapshot};
use quorate::plan::{Action, ActionType, Options, Plan, StepOp, plan};
use quorate::source::{FileId, Sources};
use quorate::spec::SpecSet;
use quorate::validate::validate;

const CLUSTER: &str = r#"apiVersion: quorate.io/v1alpha1
kind: Cluster
metadata: {name: lab}
spec:
  nodes:
    - {name: n1, runtime: "podman+unix:///run/n1.sock", attributes: {rack: a}}
    - {name: n2, runtime: "podman+unix:///run/n2.sock", attributes: {rack: b}}
    - {name: n3, runtime: "podman+unix:///run/n3.sock", attributes: {rack: b}}
  defaults: {stickiness: 100, migrationThreshold: 3, failureTimeout: 10m}
---
apiVersion: quorate.io/v1alpha1
kind: Fence
metadata: {name: bmcs}
spec:
  targets: [n1, n2, n3]
  ipmi: {address: 127.0.0.1, username: admin, password: {fromEnv: PW}}
"#;

const DB: &str = "apiVersion: quorate.io/v1alpha1\nkind: Bundle\nmetadata: {name: db}\nspec: {image: pg, replicas: 1, recovery: fence}\n";
const WEB: &str = "apiVersion: quorate.io/v1alpha1\nkind: Bundle\nmetadata: {name: web}\nspec: {image: nginx, replicas: 2, recovery: restart}\n";

fn spec(extra: &[&str]) -> SpecSet {
    let mut sources = Sources::new();
    sources.add("cluster.yaml", CLUSTER.as_bytes().to_vec());
    for (i, e) in extra.iter().enumerate() {
        sources.add(format!("extra{i}.yaml"), e.as_bytes().to_vec());
    }
    let report = validate(&sources);
    assert_eq!(report.errors(), 0, "{:#?}", report.diagnostics);
    report.into_valid_set().unwrap()
}

fn observed(text: &str) -> Observed {
    snapshot::parse(FileId(0), text.as_bytes()).unwrap()
}

fn hash(spec: &SpecSet, bundle: &str, index: u32) -> String {
    quorate::plan::hash::instance_hash(bundle, &spec.bundles[bundle], index)
}

/// `(type, instance or node, node)` of every action, for compact assertions.
fn summary(p: &Plan) -> Vec<(ActionType, String, String)> {
    p.actions
        .iter()
        .map(|a| {
            let what = a
                .instance
                .clone()
                .unwrap_or_else(|| a.node.as_ref().unwrap().to_string());
            let node = a.node.as_ref().map(|n| n.to_string()).unwrap_or_default();
            (a.kind, what, node)
        })
        .collect()
}

fn run(spec: &SpecSet, o: &Observed) -> Plan {
    let p = plan(spec, o, &Options::default());
    // Every plan is deterministic.
    assert_eq!(p, plan(spec, o, &Options::default()));
    p
}

#[test]
fn a_fresh_cluster_starts_everything_in_order() {
    let order = "apiVersion: quorate.io/v1alpha1\nkind: Constraint\nmetadata: {name: o}\nspec: {order: {first: db, then: web}}\n";
    let s = spec(&[DB, WEB, order]);
    let p = run(&s, &Observed::fresh(&s));
    assert!(p.quorum.quorate);
    let kinds: Vec<_> = summary(&p).into_iter().map(|x| (x.0, x.1)).collect();
    assert_eq!(
        kinds,
        [
            (ActionType::Start, "db-0".into()),
            (ActionType::Start, "web-0".into()),
            (ActionType::Start, "web-1".into())
        ]
    );
    // web waits for db.
    assert_eq!(p.actions[1].after, vec![p.actions[0].id]);
    // Instances spread: web-0 and web-1 on different nodes, away from db when possible.
    let nodes: Vec<_> = p.actions.iter().map(|a| a.node.clone().unwrap()).collect();
    assert_ne!(nodes[1], nodes[2]);
}

#[test]
fn a_lost_node_is_fenced_before_its_database_starts_elsewhere() {
    let s = spec(&[DB]);
    let h = hash(&s, "db", 0);
    let o = observed(&format!(
        "nodes:\n  n1: {{state: lost, instances: [{{bundle: db, index: 0, specHash: {h}}}]}}\n  n2: {{}}\n  n3: {{}}\n"
    ));
    let p = run(&s, &o);
    let sum = summary(&p);
    assert_eq!(sum[0], (ActionType::Fence, "n1".into(), "n1".into()));
    assert_eq!(sum[1].0, ActionType::Move);
    assert_ne!(sum[1].2, "n1");
    assert_eq!(p.actions[1].after, vec![p.actions[0].id]);
    assert_eq!(p.actions[1].from.as_ref().unwrap().as_str(), "n1");
    // The start step waits for the fence step, and there is no stop on the lost node.
    let start = p
        .steps
        .iter()
        .find(|s| matches!(s.op, StepOp::Start { .. }))
        .unwrap();
    let fence = p
        .steps
        .iter()
        .find(|s| matches!(s.op, StepOp::Fence { .. }))
        .unwrap();
    assert_eq!(start.after, vec![fence.id]);
    assert!(!p.steps.iter().any(|s| matches!(s.op, StepOp::Stop { .. })));
}

#[test]
fn without_quorum_nothing_starts_moves_or_is_fenced() {
    let s = spec(&[DB, WEB]);
    let h = hash(&s, "db", 0);
    let o = observed(&format!(
        "nodes:\n  n1: {{state: lost, instances: [{{bundle: db, index: 0, specHash: {h}}}]}}\n  n2: {{state: lost}}\n  n3: {{}}\n"
    ));
    let p = run(&s, &o);
    assert!(!p.quorum.quorate);
    assert_eq!((p.quorum.present, p.quorum.expected), (1, 3));
    assert!(p.actions.is_empty(), "{:#?}", p.actions);
    let db = p.blocked.iter().find(|b| b.instance == "db-0").unwrap();
    assert!(
        db.reason.contains("no quorum (1 of 3 votes"),
        "{}",
        db.reason
    );
    assert_eq!(p.blocked.len(), 3);
}

#[test]
fn no_quorum_policy_stop_stops_what_it_can_reach() {
    let cluster_stop = CLUSTER.replace("defaults:", "quorum: {noQuorumPolicy: stop}\n  defaults:");
    let mut sources = Sources::new();
    sources.add("c.yaml", cluster_stop.into_bytes());
    sources.add("w.yaml", WEB.as_bytes().to_vec());
    let s = validate(&sources).into_valid_set().unwrap();
    let h = hash(&s, "web", 0);
    let o = observed(&format!(
        "nodes:\n  n1: {{state: lost}}\n  n2: {{state: lost}}\n  n3: {{instances: [{{bundle: web, index: 0, specHash: {h}}}]}}\n"
    ));
    let p = run(&s, &o);
    assert_eq!(
        summary(&p),
        [(ActionType::Stop, "web-0".into(), "n3".into())]
    );
    assert!(p.actions[0].reason.contains("noQuorumPolicy stop"));
}

#[test]
fn a_reconciler_vote_keeps_quorum_in_a_two_node_cluster() {
    let two = CLUSTER
        .replace(
            "    - {name: n3, runtime: \"podman+unix:///run/n3.sock\", attributes: {rack: b}}\n",
            "",
        )
        .replace("[n1, n2, n3]", "[n1, n2]")
        .replace("defaults:", "quorum: {reconcilerVotes: 1}\n  defaults:");
    let mut sources = Sources::new();
    sources.add("c.yaml", two.into_bytes());
    sources.add("d.yaml", DB.as_bytes().to_vec());
    let s = validate(&sources).into_valid_set().unwrap();
    let h = hash(&s, "db", 0);
    let o = observed(&format!(
        "nodes:\n  n1: {{state: lost, instances: [{{bundle: db, index: 0, specHash: {h}}}]}}\n  n2: {{}}\n"
    ));
    let p = run(&s, &o);
    assert_eq!(
        (p.quorum.present, p.quorum.expected, p.quorum.quorate),
        (2, 3, true)
    );
    assert_eq!(summary(&p)[0].0, ActionType::Fence);
}

#[test]
fn without_fencing_a_lost_database_waits_for_a_manual_confirmation() {
    let nofence = CLUSTER.replace("defaults:", "fencing: {enabled: false}\n  defaults:");
    let mut sources = Sources::new();
    sources.add("c.yaml", nofence.into_bytes());
    sources.add("d.yaml", DB.as_bytes().to_vec());
    let s = validate(&sources).into_valid_set().unwrap();
    let h = hash(&s, "db", 0);
    let lost = format!(
        "nodes:\n  n1: {{state: lost, since: 100, instances: [{{bundle: db, index: 0, specHash: {h}}}]}}\n"
    );
    let p = run(&s, &observed(&lost));
    assert!(p.actions.is_empty());
    assert!(
        p.blocked[0].reason.contains("fencing is disabled"),
        "{}",
        p.blocked[0].reason
    );
    assert!(p.blocked[0].reason.contains("quorate fence confirm n1"));
    // A confirmation older than the loss does not count; a newer one does.
    let stale = format!("{lost}confirmations: [{{node: n1, by: alice, at: 50}}]\n");
    assert!(run(&s, &observed(&stale)).actions.is_empty());
    let fresh = format!("{lost}confirmations: [{{node: n1, by: alice, at: 150}}]\n");
    let p = run(&s, &observed(&fresh));
    assert_eq!(summary(&p).len(), 1);
    assert_eq!(p.actions[0].kind, ActionType::Start);
    assert!(p.actions[0].reason.contains("confirmed off"));
}

#[test]
fn restart_recovery_does_not_wait_for_fencing() {
    let s = spec(&[WEB]);
    let h0 = hash(&s, "web", 0);
    let h1 = hash(&s, "web", 1);
    let o = observed(&format!(
        "nodes:\n  n1: {{state: lost, instances: [{{bundle: web, index: 0, specHash: {h0}}}]}}\n  n2: {{instances: [{{bundle: web, index: 1, specHash: {h1}}}]}}\n"
    ));
    let p = run(&s, &o);
    let mv = p
        .actions
        .iter()
        .find(|a| a.kind == ActionType::Move)
        .unwrap();
    assert!(mv.after.is_empty(), "{mv:#?}");
    assert_eq!(mv.node.as_ref().unwrap().as_str(), "n3");
}

#[test]
fn spec_changes_roll_out_max_parallel_at_a_time() {
    let s = spec(&[WEB]);
    let o = observed(
        "nodes:\n  n1: {instances: [{bundle: web, index: 0, specHash: old}]}\n  n2: {instances: [{bundle: web, index: 1, specHash: old}]}\n",
    );
    let p = run(&s, &o);
    assert_eq!(
        summary(&p),
        [(ActionType::Restart, "web-0".into(), "n1".into())]
    );
    assert!(p.blocked[0].reason.contains("rolling update"));
    let restart_steps: Vec<_> = p.steps.iter().map(|s| &s.op).collect();
    assert!(
        matches!(restart_steps[0], StepOp::Stop { .. })
            && matches!(restart_steps[1], StepOp::Start { .. })
    );
}

#[test]
fn a_copy_running_twice_after_a_partition_is_cut_to_one() {
    let s = spec(&[DB]);
    let h = hash(&s, "db", 0);
    let o = observed(&format!(
        "nodes:\n  n1: {{instances: [{{bundle: db, index: 0, specHash: {h}}}]}}\n  n2: {{instances: [{{bundle: db, index: 0, specHash: {h}}}]}}\n"
    ));
    let p = run(&s, &o);
    assert_eq!(summary(&p).len(), 1);
    assert_eq!(p.actions[0].kind, ActionType::Stop);
    assert!(p.actions[0].reason.contains("keep one copy"));
}

#[test]
fn scaling_down_stops_the_highest_numbers_and_removed_bundles_stop() {
    let one = WEB.replace("replicas: 2", "replicas: 1");
    let s = spec(&[&one]);
    let h0 = hash(&s, "web", 0);
    let o = observed(&format!(
        "nodes:\n  n1: {{instances: [{{bundle: web, index: 0, specHash: {h0}}}, {{bundle: old, index: 0, specHash: x}}]}}\n  n2: {{instances: [{{bundle: web, index: 1, specHash: {h0}}}]}}\n"
    ));
    let p = run(&s, &o);
    let sum = summary(&p);
    assert!(
        sum.contains(&(ActionType::Stop, "web-1".into(), "n2".into())),
        "{sum:?}"
    );
    assert!(
        sum.contains(&(ActionType::Stop, "old-0".into(), "n1".into())),
        "{sum:?}"
    );
    assert_eq!(sum.len(), 2);
}

#[test]
fn failures_restart_in_place_then_move_and_expire() {
    let s = spec(&[DB]);
    let h = hash(&s, "db", 0);
    let at = |fails: u32, last: u64, now: u64| {
        observed(&format!(
            "now: {now}\nnodes:\n  n1: {{instances: [{{bundle: db, index: 0, specHash: {h}, state: failed}}], failures: {{db-0: {{count: {fails}, last: {last}}}}}}}\n"
        ))
    };
    let p = run(&s, &at(1, 1000, 1010));
    assert_eq!(
        summary(&p),
        [(ActionType::Restart, "db-0".into(), "n1".into())]
    );
    assert!(p.actions[0].reason.contains("failure 1 of 3"));
    let p = run(&s, &at(3, 1000, 1010));
    assert_eq!(p.actions[0].kind, ActionType::Move);
    assert!(
        p.actions[0].reason.contains("failed 3 times on n1"),
        "{}",
        p.actions[0].reason
    );
    // Ten minutes later the failures have expired: restart in place again.
    let p = run(&s, &at(3, 1000, 1000 + 600));
    assert_eq!(p.actions[0].kind, ActionType::Restart);
    // The ban outlives the container: with db-0 gone, n1 is still avoided.
    let o = observed(
        "now: 1010\nnodes:\n  n1: {failures: {db-0: {count: 3, last: 1000}}}\n  n2: {standby: true}\n",
    );
    let p = run(&s, &o);
    assert_eq!(
        summary(&p),
        [(ActionType::Start, "db-0".into(), "n3".into())]
    );
}

#[test]
fn an_instance_kept_off_nodes_by_its_failures_does_not_keep_its_siblings_off() {
    // web-0 failed too often on n1 and n3 and n2 is on standby: web-0 fits nowhere, but
    // its failures are its own, so web-1 still starts (it used to be left out as "full"
    // after web-0, and only `--explain` placed it).
    let s = spec(&[WEB]);
    let o = observed(
        "now: 1010\nnodes:\n  n1: {failures: {web-0: {count: 3, last: 1000}}}\n  n2: {standby: true}\n  n3: {failures: {web-0: {count: 3, last: 1000}}}\n",
    );
    for explain in [false, true] {
        let p = plan(
            &s,
            &o,
            &Options {
                explain,
                ..Options::default()
            },
        );
        let started = started_on(&p);
        assert_eq!(started.len(), 1, "{started:?}");
        assert_eq!(started[0].0, "web-1");
        let blocked: Vec<&str> = p.blocked.iter().map(|b| b.instance.as_str()).collect();
        assert_eq!(blocked, ["web-0"]);
    }
}

#[test]
fn exited_containers_restart_in_place_and_standby_nodes_empty() {
    let s = spec(&[DB]);
    let h = hash(&s, "db", 0);
    let o = observed(&format!(
        "nodes:\n  n2: {{instances: [{{bundle: db, index: 0, specHash: {h}, state: stopped}}]}}\n"
    ));
    assert_eq!(
        summary(&run(&s, &o)),
        [(ActionType::Restart, "db-0".into(), "n2".into())]
    );
    let o = observed(&format!(
        "nodes:\n  n2: {{standby: true, instances: [{{bundle: db, index: 0, specHash: {h}}}]}}\n"
    ));
    let p = run(&s, &o);
    assert_eq!(p.actions[0].kind, ActionType::Move);
    assert!(p.actions[0].reason.contains("standby"));
    // A move of a single-writer instance stops the old copy before the new one starts.
    let stop = p
        .steps
        .iter()
        .find(|s| matches!(s.op, StepOp::Stop { .. }))
        .unwrap();
    let start = p
        .steps
        .iter()
        .find(|s| matches!(s.op, StepOp::Start { .. }))
        .unwrap();
    assert_eq!(start.after, vec![stop.id]);
}

#[test]
fn an_instance_starts_elsewhere_only_after_its_exited_container_is_removed() {
    // db-0 exited on n2, which is in standby: its container is removed there and the
    // instance started on another node, two actions; the start waits for the removal
    // (invariant 1, `order::finish`).
    let s = spec(&[DB]);
    let h = hash(&s, "db", 0);
    let o = observed(&format!(
        "nodes:\n  n2: {{standby: true, instances: [{{bundle: db, index: 0, specHash: {h}, state: stopped}}]}}\n"
    ));
    let p = run(&s, &o);
    let kinds: Vec<_> = summary(&p).into_iter().map(|x| (x.0, x.1)).collect();
    assert_eq!(
        kinds,
        [
            (ActionType::Stop, "db-0".into()),
            (ActionType::Start, "db-0".into())
        ],
        "{:#?}",
        p.actions
    );
    let step = |stop: bool| {
        p.steps
            .iter()
            .find(|s| matches!(s.op, StepOp::Stop { .. }) == stop)
            .unwrap()
    };
    assert_eq!(step(false).after, vec![step(true).id]);
}

#[test]
fn hard_constraints_decide_placement() {
    let ban = "apiVersion: quorate.io/v1alpha1\nkind: Constraint\nmetadata: {name: not-b}\nspec:\n  location: {bundle: db, rule: {attribute: rack, operator: eq, value: b}, score: -INFINITY}\n";
    let with = "apiVersion: quorate.io/v1alpha1\nkind: Constraint\nmetadata: {name: web-with-db}\nspec: {colocation: {bundle: web, with: db, score: INFINITY}}\n";
    let one = WEB.replace("replicas: 2", "replicas: 1");
    let s = spec(&[DB, &one, ban, with]);
    let p = run(&s, &Observed::fresh(&s));
    for a in &p.actions {
        assert_eq!(a.node.as_ref().unwrap().as_str(), "n1", "{a:?}");
    }
    let p = plan(
        &s,
        &Observed::fresh(&s),
        &Options {
            explain: true,
            ..Options::default()
        },
    );
    let web = p.placements.iter().find(|x| x.instance == "web-0").unwrap();
    let n2 = web
        .candidates
        .iter()
        .find(|c| c.node.as_str() == "n2")
        .unwrap();
    assert!(n2.score.is_neg_infinity());
    assert!(n2.parts.iter().any(|x| x.source.contains("web-with-db")));
}

#[test]
fn a_mandatory_order_blocks_then_until_first_can_run() {
    let ban_all = "apiVersion: quorate.io/v1alpha1\nkind: Constraint\nmetadata: {name: ban}\nspec:\n  location: {bundle: db, rule: {attribute: rack, operator: exists}, score: -INFINITY}\n";
    let order = "apiVersion: quorate.io/v1alpha1\nkind: Constraint\nmetadata: {name: o}\nspec: {order: {first: db, then: web}}\n";
    let mut sources = Sources::new();
    for (i, t) in [CLUSTER, DB, WEB, ban_all, order].iter().enumerate() {
        sources.add(format!("f{i}.yaml"), t.as_bytes().to_vec());
    }
    // The ban makes db unplaceable, which validation reports; plan the loaded set anyway
    // to see the planner's own handling.
    let loaded = quorate::load::load(&sources);
    let p = run(&loaded.set, &Observed::fresh(&loaded.set));
    assert!(p.actions.is_empty(), "{:#?}", p.actions);
    let web = p.blocked.iter().find(|b| b.instance == "web-0").unwrap();
    assert!(web.reason.contains("waits for db"), "{}", web.reason);
}

#[test]
fn symmetrical_orders_stop_then_before_first() {
    let order = "apiVersion: quorate.io/v1alpha1\nkind: Constraint\nmetadata: {name: o}\nspec: {order: {first: db, then: web}}\n";
    let s = spec(&[order, DB, WEB]);
    let none = spec(&[]);
    let (hd, hw) = (hash(&s, "db", 0), hash(&s, "web", 0));
    let o = observed(&format!(
        "nodes:\n  n1: {{instances: [{{bundle: db, index: 0, specHash: {hd}}}, {{bundle: web, index: 0, specHash: {hw}}}]}}\n"
    ));
    // Plan against the set without bundles but with the order (the bundles were removed).
    let mut gone = none.clone();
    gone.constraints = s.constraints.clone();
    let p = run(&gone, &o);
    let stop_web = action_of(&p, "web-0").unwrap();
    let stop_db = action_of(&p, "db-0").unwrap();
    assert_eq!(stop_db.after, vec![stop_web.id]);
}

#[test]
fn an_unmanaged_container_with_the_name_keeps_the_instance_off_that_node() {
    let s = spec(&[DB]);
    let o = observed("nodes:\n  n1: {conflicts: [db-0]}\n  n2: {conflicts: [db-0]}\n");
    let p = run(&s, &o);
    assert_eq!(
        summary(&p),
        [(ActionType::Start, "db-0".into(), "n3".into())]
    );
}

fn bundle(name: &str, replicas: u32) -> String {
    format!(
        "apiVersion: quorate.io/v1alpha1\nkind: Bundle\nmetadata: {{name: {name}}}\nspec: {{image: img-{name}, replicas: {replicas}, recovery: restart}}\n"
    )
}

fn constraint(name: &str, body: &str) -> String {
    format!(
        "apiVersion: quorate.io/v1alpha1\nkind: Constraint\nmetadata: {{name: {name}}}\nspec: {{{body}}}\n"
    )
}

/// The node each instance runs on after the plan, from its start steps.
fn started_on(p: &Plan) -> Vec<(String, String)> {
    p.steps
        .iter()
        .filter_map(|s| match &s.op {
            StepOp::Start {
                node,
                bundle,
                index,
            } => Some((format!("{bundle}-{index}"), node.to_string())),
            _ => None,
        })
        .collect()
}

#[test]
fn colocation_cycle_places_the_pair_together_like_pacemaker() {
    // Pacemaker places `a with b INFINITY` + `b with a INFINITY` together on one node.
    let ab = constraint(
        "a-with-b",
        "colocation: {bundle: a, with: b, score: INFINITY}",
    );
    let ba = constraint(
        "b-with-a",
        "colocation: {bundle: b, with: a, score: INFINITY}",
    );
    let s = spec(&[&bundle("a", 1), &bundle("b", 1), &ab, &ba]);
    let p = run(&s, &Observed::fresh(&s));
    assert!(p.blocked.is_empty(), "{:#?}", p.blocked);
    assert_eq!(
        started_on(&p),
        [("a-0".into(), "n1".into()), ("b-0".into(), "n1".into())]
    );
    // Already running together, on n2: nothing to do, both stay.
    let (ha, hb) = (hash(&s, "a", 0), hash(&s, "b", 0));
    let o = observed(&format!(
        "nodes:\n  n2: {{instances: [{{bundle: a, index: 0, specHash: {ha}}}, {{bundle: b, index: 0, specHash: {hb}}}]}}\n"
    ));
    let p = run(&s, &o);
    assert!(p.actions.is_empty() && p.blocked.is_empty(), "{p:#?}");
    // n2 lost: the pair is recovered together on another node.
    let o = observed(&format!(
        "nodes:\n  n2: {{state: lost, instances: [{{bundle: a, index: 0, specHash: {ha}}}, {{bundle: b, index: 0, specHash: {hb}}}]}}\n"
    ));
    let p = run(&s, &o);
    assert_eq!(p.actions[0].kind, ActionType::Fence);
    assert_eq!(
        started_on(&p),
        [("a-0".into(), "n1".into()), ("b-0".into(), "n1".into())]
    );
    // The scores of every member choose the node: b may not run on n1 or n2, so a (the
    // first placed) goes to n3 with it.
    let not_b = constraint(
        "b-not-n1-n2",
        "location: {bundle: b, rule: {attribute: rack, operator: eq, value: a}, score: -INFINITY}",
    );
    let not_n2 = constraint(
        "b-not-n2",
        "location: {bundle: b, node: n2, score: -INFINITY}",
    );
    let s = spec(&[&bundle("a", 1), &bundle("b", 1), &ab, &ba, &not_b, &not_n2]);
    let p = run(&s, &Observed::fresh(&s));
    assert_eq!(
        started_on(&p),
        [("a-0".into(), "n3".into()), ("b-0".into(), "n3".into())]
    );
}

#[test]
fn colocation_ring_shares_nodes_and_an_instance_without_its_partners_waits() {
    // p with q, q with r, r with p (INFINITY): every node with one has all three. p has
    // two instances, q and r one, so p-1 has no partner and is placed nowhere.
    let ring = [
        constraint("p-q", "colocation: {bundle: p, with: q, score: INFINITY}"),
        constraint("q-r", "colocation: {bundle: q, with: r, score: INFINITY}"),
        constraint("r-p", "colocation: {bundle: r, with: p, score: INFINITY}"),
    ];
    let (p1, q, r) = (bundle("p", 2), bundle("q", 1), bundle("r", 1));
    let mut sources = Sources::new();
    for (i, t) in [CLUSTER, &p1, &q, &r, &ring[0], &ring[1], &ring[2]]
        .iter()
        .enumerate()
    {
        sources.add(format!("f{i}.yaml"), t.as_bytes().to_vec());
    }
    // Validation refuses the set (p cannot place its second instance); plan the loaded
    // set anyway to see the planner's own handling.
    let codes: Vec<&str> = validate(&sources)
        .diagnostics
        .iter()
        .map(|d| d.code)
        .collect();
    assert_eq!(codes, ["quorate::placement::unplaceable"]);
    let s = quorate::load::load(&sources).set;
    let p = run(&s, &Observed::fresh(&s));
    let on = started_on(&p);
    assert_eq!(on.len(), 3, "{on:?}");
    assert!(on.iter().all(|(_, n)| *n == on[0].1), "{on:?}");
    let blocked: Vec<&str> = p.blocked.iter().map(|b| b.instance.as_str()).collect();
    assert_eq!(blocked, ["p-1"]);
    // With q and r at two instances each, the three share two nodes.
    let (q, r) = (bundle("q", 2), bundle("r", 2));
    let s = spec(&[&p1, &q, &r, &ring[0], &ring[1], &ring[2]]);
    let p = run(&s, &Observed::fresh(&s));
    assert!(p.blocked.is_empty(), "{:#?}", p.blocked);
    let mut nodes: Vec<String> = started_on(&p).into_iter().map(|(_, n)| n).collect();
    nodes.sort();
    assert_eq!(nodes, ["n1", "n1", "n1", "n2", "n2", "n2"]);
}

#[test]
fn a_mandatory_order_against_an_anti_colocation_settles() {
    // web needs db running first (mandatory order); db must stay off web's node; one
    // node is usable. Starving web lets db run, which would un-starve web, which would
    // push db off again: planning used to go round for ever. It settles with db running
    // and web waiting.
    let order = constraint("db-then-web", "order: {first: db, then: web}");
    let apart = constraint(
        "db-not-with-web",
        "colocation: {bundle: db, with: web, score: -INFINITY}",
    );
    let s = spec(&[&bundle("db", 1), &bundle("web", 1), &order, &apart]);
    let o = observed("nodes:\n  n1: {}\n  n2: {standby: true}\n  n3: {standby: true}\n");
    let p = run(&s, &o);
    assert_eq!(started_on(&p), [("db-0".into(), "n1".into())]);
    let blocked: Vec<(&str, &str)> = p
        .blocked
        .iter()
        .map(|b| (b.instance.as_str(), b.reason.as_str()))
        .collect();
    assert_eq!(
        blocked,
        [("web-0", "waits for db to run (mandatory order)")]
    );
}

/// A one-replica bundle whose failed checks are handled by `on_fail`.
fn failing_bundle(name: &str, on_fail: &str) -> String {
    format!(
        "apiVersion: quorate.io/v1alpha1\nkind: Bundle\nmetadata: {{name: {name}}}\nspec: {{image: img, recovery: restart, monitor: {{onFail: {on_fail}}}}}\n"
    )
}

#[test]
fn on_fail_ignore_keeps_the_instance_running_like_pacemakers_failure_ignored() {
    // Pacemaker's on-fail=ignore reports "(failure ignored)" and does nothing. Even with
    // failures past migrationThreshold on record (say from before the monitor stopped
    // counting them), the instance stays where it is and runs.
    let s = spec(&[&failing_bundle("app", "ignore")]);
    let h = hash(&s, "app", 0);
    let o = observed(&format!(
        "now: 1010\nnodes:\n  n1: {{instances: [{{bundle: app, index: 0, specHash: {h}, state: failed}}], failures: {{app-0: {{count: 5, last: 1000}}}}}}\n"
    ));
    let p = run(&s, &o);
    assert!(p.actions.is_empty(), "{:#?}", p.actions);
    assert!(p.blocked.is_empty(), "{:#?}", p.blocked);
    // The same counts move an instance whose onFail acts on failures.
    let s = spec(&[&failing_bundle("app", "restart")]);
    let p = run(&s, &o);
    assert_eq!(p.actions[0].kind, ActionType::Move);
}

#[test]
fn on_fail_block_leaves_the_instance_alone_like_pacemaker() {
    // Pacemaker's on-fail=block stops managing the resource: no restart, no move, no
    // stop, whatever the failure count, a spec change or a constraint that now prefers
    // another node; the instance is reported blocked.
    let elsewhere = constraint(
        "app-on-n2",
        "location: {bundle: app, node: n2, score: INFINITY}",
    );
    let s = spec(&[&failing_bundle("app", "block"), &elsewhere]);
    let o = observed(
        "now: 1010\nnodes:\n  n1: {instances: [{bundle: app, index: 0, specHash: old, state: failed}], failures: {app-0: {count: 5, last: 1000}}}\n",
    );
    let p = run(&s, &o);
    assert!(p.actions.is_empty(), "{:#?}", p.actions);
    let blocked: Vec<(&str, &str)> = p
        .blocked
        .iter()
        .map(|b| (b.instance.as_str(), b.reason.as_str()))
        .collect();
    assert_eq!(
        blocked,
        [(
            "app-0",
            "app-0 fails its check; onFail: block leaves it alone"
        )]
    );
    // Passing its check again, it is managed again: the constraint moves it.
    let o = observed(
        "now: 1010\nnodes:\n  n1: {instances: [{bundle: app, index: 0, specHash: old}], failures: {app-0: {count: 5, last: 1000}}}\n",
    );
    let p = run(&s, &o);
    assert_eq!(
        summary(&p),
        [(ActionType::Move, "app-0".into(), "n2".into())]
    );
}

#[test]
fn on_fail_fence_recovers_elsewhere_after_the_fence_like_pacemaker() {
    // Pacemaker's on-fail=fence fences the node the resource failed on and recovers what
    // ran there on other nodes once the fence is done; the fenced node is no candidate.
    let db = "apiVersion: quorate.io/v1alpha1\nkind: Bundle\nmetadata: {name: db}\nspec: {image: pg, recovery: fence, monitor: {onFail: fence}}\n";
    let s = spec(&[db, WEB]);
    let (hd, hw) = (hash(&s, "db", 0), hash(&s, "web", 0));
    let o = observed(&format!(
        "nodes:\n  n1: {{instances: [{{bundle: db, index: 0, specHash: {hd}, state: failed}}, {{bundle: web, index: 0, specHash: {hw}}}]}}\n  n2: {{}}\n  n3: {{}}\n"
    ));
    let p = run(&s, &o);
    assert_eq!(p.actions[0].kind, ActionType::Fence);
    assert_eq!(p.actions[0].node.as_ref().unwrap().as_str(), "n1");
    assert_eq!(p.actions[0].reason, "db-0 fails its check; onFail: fence");
    let fence = p
        .steps
        .iter()
        .find(|s| matches!(s.op, StepOp::Fence { .. }))
        .unwrap();
    // Nothing is stopped on or started on n1; db-0 starts elsewhere after the fence.
    for step in &p.steps {
        match &step.op {
            StepOp::Stop { node, .. } => panic!("a stop on {node}: {:#?}", p.steps),
            StepOp::Start { node, bundle, .. } => {
                assert_ne!(node.as_str(), "n1", "{:#?}", p.steps);
                if bundle.as_str() == "db" {
                    assert_eq!(step.after, vec![fence.id]);
                }
            }
            _ => {}
        }
    }
    let db_move = action_of(&p, "db-0").unwrap();
    assert_eq!(db_move.kind, ActionType::Move);
    assert_eq!(
        db_move.reason,
        "n1 is fenced (db-0 fails its check; onFail: fence); start db-0 elsewhere once n1 is fenced"
    );
    // web-0 (recovery: restart) goes elsewhere too, without waiting.
    let web_move = action_of(&p, "web-0").unwrap();
    assert_eq!(
        (web_move.kind, web_move.after.as_slice()),
        (ActionType::Move, &[][..])
    );
    assert!(p.blocked.is_empty(), "{:#?}", p.blocked);

    // Without fencing, nothing is fenced and db-0 is blocked with the reason.
    let nofence = CLUSTER.replace("defaults:", "fencing: {enabled: false}\n  defaults:");
    let mut sources = Sources::new();
    sources.add("c.yaml", nofence.into_bytes());
    sources.add("d.yaml", db.as_bytes().to_vec());
    sources.add("w.yaml", WEB.as_bytes().to_vec());
    let s = validate(&sources).into_valid_set().unwrap();
    let p = run(&s, &o);
    assert_eq!(
        summary(&p),
        [(ActionType::Start, "web-1".into(), "n2".into())]
    );
    assert_eq!(p.blocked.len(), 1);
    assert_eq!(
        p.blocked[0].reason,
        "fails its check (onFail: fence), but fencing is disabled"
    );
}

#[test]
fn a_start_waits_for_the_stop_that_frees_its_port_on_the_node() {
    // Scaling web from 3 to 2 while n2 (with web-1) is off: web-1 is recovered on n3,
    // where web-2 is being stopped, and both publish host port 8080. The start waits for
    // that stop, not for the stop on n3 of a bundle that holds nothing it needs.
    let web = "apiVersion: quorate.io/v1alpha1\nkind: Bundle\nmetadata: {name: web}\nspec: {image: nginx, replicas: 2, recovery: restart, network: {ports: [{port: 8080}]}}\n";
    let cache = "apiVersion: quorate.io/v1alpha1\nkind: Bundle\nmetadata: {name: cache}\nspec: {image: redis, replicas: 0, recovery: restart}\n";
    let s = spec(&[web, cache]);
    let h = |i| hash(&s, "web", i);
    let o = observed(&format!(
        "nodes:\n  n1: {{instances: [{{bundle: web, index: 0, specHash: {}}}]}}\n  n2: {{state: fenced, instances: [{{bundle: web, index: 1, specHash: {}}}]}}\n  n3: {{instances: [{{bundle: cache, index: 0, specHash: c}}, {{bundle: web, index: 2, specHash: {}}}]}}\n",
        h(0),
        h(1),
        h(2)
    ));
    let p = run(&s, &o);
    let step = |what: &str, instance: &str| {
        p.steps
            .iter()
            .find(|s| match &s.op {
                StepOp::Start {
                    node,
                    bundle,
                    index,
                } if what == "start" => {
                    node.as_str() == "n3" && format!("{bundle}-{index}") == instance
                }
                StepOp::Stop {
                    node,
                    bundle,
                    index,
                } if what == "stop" => {
                    node.as_str() == "n3" && format!("{bundle}-{index}") == instance
                }
                _ => false,
            })
            .unwrap_or_else(|| panic!("no {what} of {instance} on n3: {:#?}", p.steps))
    };
    let start = step("start", "web-1");
    assert_eq!(start.after, vec![step("stop", "web-2").id]);
    assert!(!start.after.contains(&step("stop", "cache-0").id));
}

/// Issue 12: planning costs in proportion to what can be placed, not to what is asked
/// for. Bundles at the replica limit, on a cluster with one usable node: the instances no
/// node can take, and those waiting for a `first` that runs nowhere, are one blocked entry
/// per bundle with a count, not one entry each.
#[test]
fn instances_that_fit_nowhere_are_one_blocked_entry_per_bundle_with_a_count() {
    let web = "apiVersion: quorate.io/v1alpha1\nkind: Bundle\nmetadata: {name: web}\nspec: {image: nginx, replicas: 10000, replicasPerHost: 4000, recovery: restart}\n";
    let app = "apiVersion: quorate.io/v1alpha1\nkind: Bundle\nmetadata: {name: app}\nspec: {image: a, replicas: 10000, replicasPerHost: 4000, recovery: restart}\n";
    let db_off_n1 = "apiVersion: quorate.io/v1alpha1\nkind: Constraint\nmetadata: {name: db-off-n1}\nspec: {location: {bundle: db, node: n1, score: -INFINITY}}\n";
    let order = "apiVersion: quorate.io/v1alpha1\nkind: Constraint\nmetadata: {name: o}\nspec: {order: {first: db, then: app}}\n";
    let s = spec(&[DB, web, app, db_off_n1, order]);
    let o = observed("nodes:\n  n1: {}\n  n2: {standby: true}\n  n3: {standby: true}\n");
    let p = run(&s, &o);
    let starts = summary(&p);
    assert_eq!(starts.len(), 4000, "replicasPerHost of web on n1");
    assert!(
        starts
            .iter()
            .all(|(kind, i, n)| *kind == ActionType::Start && i.starts_with("web-") && n == "n1")
    );
    let mut blocked: Vec<(&str, &str, u32, &str)> = p
        .blocked
        .iter()
        .map(|b| {
            (
                b.bundle.as_str(),
                b.instance.as_str(),
                b.count,
                b.reason.as_str(),
            )
        })
        .collect();
    blocked.sort();
    let nowhere = "2 of 3 nodes are unavailable, the rest are excluded by -INFINITY constraints or replicasPerHost (see `quorate plan --explain`)";
    assert_eq!(
        blocked,
        [
            (
                "app",
                "app-0",
                10000,
                "waits for db to run (mandatory order), with 9999 more new instances of app"
            ),
            (
                "db",
                "db-0",
                1,
                &*format!("no node can take db-0: {nowhere}")
            ),
            (
                "web",
                "web-4000",
                6000,
                &*format!(
                    "no node can take web-4000 and 5999 more new instances of web: {nowhere}"
                )
            ),
        ]
    );
    assert_eq!(p.blocked_instances(), 16_001);
    assert_eq!(
        quorate::plan::render::summary(&p),
        "4000 to start, 16001 blocked"
    );
    // The JSON of what is blocked stays small; only the count says how many.
    let json = serde_json::to_string(&p.blocked).unwrap();
    assert!(json.len() < 1_000, "{} bytes", json.len());
    assert!(json.contains(r#""count":6000"#), "{json}");
    assert!(
        !json.contains(r#""count":1}"#),
        "a single instance has no count: {json}"
    );
}

/// The step of `op` (`"start"` or `"stop"`) of `instance`.
fn step_of<'p>(p: &'p Plan, op: &str, instance: &str) -> &'p quorate::plan::Step {
    p.steps
        .iter()
        .find(|s| match &s.op {
            StepOp::Start { bundle, index, .. } => {
                op == "start" && format!("{bundle}-{index}") == instance
            }
            StepOp::Stop { bundle, index, .. } => {
                op == "stop" && format!("{bundle}-{index}") == instance
            }
            _ => false,
        })
        .unwrap_or_else(|| panic!("no {op} step of {instance}: {:#?}", p.steps))
}

/// Whether step `later` waits for step `earlier`, directly or through other steps.
fn waits(p: &Plan, later: &quorate::plan::Step, earlier: &quorate::plan::Step) -> bool {
    let mut todo = later.after.clone();
    let mut seen = std::collections::BTreeSet::new();
    while let Some(id) = todo.pop() {
        if id == earlier.id {
            return true;
        }
        if seen.insert(id)
            && let Some(s) = p.steps.iter().find(|s| s.id == id)
        {
            todo.extend(s.after.iter().copied());
        }
    }
    false
}

/// A snapshot line for `instance` of `bundle` running on a node, with its spec's hash.
fn running(s: &SpecSet, bundle: &str, index: u32) -> String {
    let h = hash(s, bundle, index);
    format!("{{bundle: {bundle}, index: {index}, specHash: {h}}}")
}

#[test]
fn order_mandatory_like_pacemaker() {
    // Pacemaker's order-mandatory: on one node, rsc1 is stopped and rsc2 (after it) runs;
    // rsc3 cannot run (it failed too often there) and rsc4 (after it) runs. Pacemaker
    // starts rsc1 and restarts rsc2 after it, and stops rsc4 "due to unrunnable rsc3".
    let s = spec(&[
        &bundle("rsc1", 1),
        &bundle("rsc2", 1),
        &bundle("rsc3", 1),
        &bundle("rsc4", 1),
        &constraint("order1", "order: {first: rsc1, then: rsc2}"),
        &constraint("order2", "order: {first: rsc3, then: rsc4}"),
    ]);
    let o = observed(&format!(
        "now: 1010\nnodes:\n  n1: {{instances: [{}, {}], failures: {{rsc3-0: {{count: 3, last: 1000}}}}}}\n  n2: {{standby: true}}\n  n3: {{standby: true}}\n",
        running(&s, "rsc2", 0),
        running(&s, "rsc4", 0)
    ));
    let p = run(&s, &o);
    let mut sum = summary(&p);
    sum.sort();
    assert_eq!(
        sum,
        [
            (ActionType::Stop, "rsc4-0".into(), "n1".into()),
            (ActionType::Start, "rsc1-0".into(), "n1".into()),
            (ActionType::Restart, "rsc2-0".into(), "n1".into()),
        ]
    );
    // rsc2 starts again only after rsc1 has started.
    assert!(waits(
        &p,
        step_of(&p, "start", "rsc2-0"),
        step_of(&p, "start", "rsc1-0")
    ));
    let restart = p.actions.iter().find(|a| a.kind == ActionType::Restart);
    assert_eq!(
        restart.map(|a| a.reason.as_str()),
        Some(
            "rsc1-0 starts, and rsc2 runs only after rsc1 (mandatory order order1): restart after it"
        )
    );
    let stop = p.actions.iter().find(|a| a.kind == ActionType::Stop);
    assert_eq!(
        stop.map(|a| a.reason.as_str()),
        Some("rsc3 cannot run, and rsc4-0 runs only after it (mandatory order)")
    );
    assert!(
        p.blocked.iter().any(
            |b| b.instance == "rsc4-0" && b.reason == "waits for rsc3 to run (mandatory order)"
        ),
        "{:#?}",
        p.blocked
    );
}

#[test]
fn enforce_colo1_like_pacemaker() {
    // Pacemaker's enforce-colo1: keystone (a clone on three nodes) is disabled; central
    // runs after it (mandatory order) and engine with central (INFINITY). Pacemaker stops
    // keystone everywhere, central "due to unrunnable keystone-clone running", and engine
    // "due to colocation with central". quorate disables keystone with zero replicas.
    let s = spec(&[
        &bundle("keystone", 0),
        &bundle("central", 1),
        &bundle("engine", 1),
        &constraint("after-keystone", "order: {first: keystone, then: central}"),
        &constraint(
            "engine-with-central",
            "colocation: {bundle: engine, with: central, score: INFINITY}",
        ),
    ]);
    let k = |i: u32| format!("{{bundle: keystone, index: {i}, specHash: x}}");
    let o = observed(&format!(
        "nodes:\n  n1: {{instances: [{}]}}\n  n2: {{instances: [{}]}}\n  n3: {{instances: [{}, {}, {}]}}\n",
        k(2),
        k(0),
        k(1),
        running(&s, "central", 0),
        running(&s, "engine", 0)
    ));
    let p = run(&s, &o);
    let mut sum = summary(&p);
    sum.sort();
    assert_eq!(
        sum,
        [
            (ActionType::Stop, "central-0".into(), "n3".into()),
            (ActionType::Stop, "engine-0".into(), "n3".into()),
            (ActionType::Stop, "keystone-0".into(), "n2".into()),
            (ActionType::Stop, "keystone-1".into(), "n3".into()),
            (ActionType::Stop, "keystone-2".into(), "n1".into()),
        ]
    );
    // Symmetrical: central stops before any keystone does.
    let central = step_of(&p, "stop", "central-0");
    for i in 0..3 {
        assert!(waits(
            &p,
            step_of(&p, "stop", &format!("keystone-{i}")),
            central
        ));
    }
    let blocked: Vec<(&str, &str)> = p
        .blocked
        .iter()
        .map(|b| (b.instance.as_str(), b.reason.as_str()))
        .collect();
    assert!(blocked.contains(&("central-0", "waits for keystone to run (mandatory order)")));
    assert!(
        blocked.iter().any(|(i, _)| *i == "engine-0"),
        "{blocked:#?}"
    );
}

/// Pacemaker's rec-rsc-9 on one node: bar fails its check and is recovered in place; rsc1
/// and foo run after bar. Pacemaker restarts both after bar (there through the
/// deprecated `restart-type`; in quorate a mandatory order means it).
fn rec_rsc_9(kind: &str) -> Plan {
    let s = spec(&[
        &bundle("rsc1", 1),
        &bundle("foo", 1),
        &failing_bundle("bar", "restart"),
        &constraint(
            "order-recover-1",
            &format!("order: {{first: bar, then: rsc1, kind: {kind}}}"),
        ),
        &constraint(
            "order-recover-2",
            &format!("order: {{first: bar, then: foo, kind: {kind}}}"),
        ),
    ]);
    let h = hash(&s, "bar", 0);
    let o = observed(&format!(
        "nodes:\n  n1: {{instances: [{}, {}, {{bundle: bar, index: 0, specHash: {h}, state: failed}}]}}\n  n2: {{standby: true}}\n  n3: {{standby: true}}\n",
        running(&s, "rsc1", 0),
        running(&s, "foo", 0)
    ));
    run(&s, &o)
}

#[test]
fn rec_rsc_9_like_pacemaker_restarts_what_runs_after_a_recovered_instance() {
    let p = rec_rsc_9("mandatory");
    let mut sum = summary(&p);
    sum.sort();
    assert_eq!(
        sum,
        [
            (ActionType::Restart, "bar-0".into(), "n1".into()),
            (ActionType::Restart, "foo-0".into(), "n1".into()),
            (ActionType::Restart, "rsc1-0".into(), "n1".into()),
        ]
    );
    for then in ["rsc1-0", "foo-0"] {
        // Stopped before bar stops (symmetrical), started after bar starts.
        assert!(waits(
            &p,
            step_of(&p, "stop", "bar-0"),
            step_of(&p, "stop", then)
        ));
        assert!(waits(
            &p,
            step_of(&p, "start", then),
            step_of(&p, "start", "bar-0")
        ));
    }
    // An optional order only orders: what runs after bar is left alone.
    let p = rec_rsc_9("optional");
    assert_eq!(
        summary(&p),
        [(ActionType::Restart, "bar-0".into(), "n1".into())]
    );
}

#[test]
fn a_restart_ripples_down_a_chain_of_mandatory_orders() {
    // db -> app -> web: db moves off a node in standby; app and web restart, in order.
    let s = spec(&[
        &bundle("db", 1),
        &bundle("app", 1),
        &bundle("web", 1),
        &constraint("db-then-app", "order: {first: db, then: app}"),
        &constraint("app-then-web", "order: {first: app, then: web}"),
    ]);
    let o = observed(&format!(
        "nodes:\n  n1: {{standby: true, instances: [{}]}}\n  n2: {{instances: [{}, {}]}}\n  n3: {{}}\n",
        running(&s, "db", 0),
        running(&s, "app", 0),
        running(&s, "web", 0)
    ));
    let p = run(&s, &o);
    let kinds: Vec<(ActionType, String)> =
        summary(&p).into_iter().map(|(k, i, _)| (k, i)).collect();
    assert!(
        kinds.contains(&(ActionType::Move, "db-0".into())),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&(ActionType::Restart, "app-0".into())),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&(ActionType::Restart, "web-0".into())),
        "{kinds:?}"
    );
    assert!(waits(
        &p,
        step_of(&p, "start", "web-0"),
        step_of(&p, "start", "app-0")
    ));
    assert!(waits(
        &p,
        step_of(&p, "start", "app-0"),
        step_of(&p, "start", "db-0")
    ));
    assert!(waits(
        &p,
        step_of(&p, "stop", "db-0"),
        step_of(&p, "stop", "web-0")
    ));
    let web = action_of(&p, "web-0").map(|a| a.reason.as_str());
    assert_eq!(
        web,
        Some(
            "app-0 restarts, and web runs only after app (mandatory order app-then-web): restart after it"
        )
    );
}

#[test]
fn serialized_bundles_never_start_or_stop_at_the_same_time() {
    let s = spec(&[
        &bundle("a", 2),
        &bundle("b", 2),
        &constraint(
            "one-at-a-time",
            "order: {first: a, then: b, kind: serialize}",
        ),
    ]);
    // Fresh: b's starts wait for every start of a.
    let p = run(&s, &Observed::fresh(&s));
    for (x, y) in [
        ("b-0", "a-0"),
        ("b-0", "a-1"),
        ("b-1", "a-0"),
        ("b-1", "a-1"),
    ] {
        assert!(waits(&p, step_of(&p, "start", x), step_of(&p, "start", y)));
    }
    // Both restart for a new spec: b stops, then a stops, a starts, then b starts, with
    // no two of them at the same time across the bundles.
    let o = observed(
        "nodes:\n  n1: {instances: [{bundle: a, index: 0, specHash: old}, {bundle: b, index: 0, specHash: old}]}\n  n2: {standby: true}\n  n3: {standby: true}\n",
    );
    let s1 = spec(&[
        &bundle("a", 1),
        &bundle("b", 1),
        &constraint(
            "one-at-a-time",
            "order: {first: a, then: b, kind: serialize}",
        ),
    ]);
    let p = run(&s1, &o);
    let (sb, sa) = (step_of(&p, "stop", "b-0"), step_of(&p, "stop", "a-0"));
    let (ta, tb) = (step_of(&p, "start", "a-0"), step_of(&p, "start", "b-0"));
    assert!(waits(&p, sa, sb));
    assert!(waits(&p, ta, sa));
    assert!(waits(&p, tb, ta));
    // A serialize order does not restart b when a restarts (only a mandatory one does),
    // and it never keeps b from starting.
    assert_eq!(p.actions.len(), 2, "{:#?}", p.actions);
}

#[test]
fn min_instances_keeps_then_waiting_until_that_many_of_first_run() {
    // Pacemaker's clone-min: web runs only while 2 instances of db do. With n2 and n3
    // in standby only one db instance can run: web stops and waits.
    let s = spec(&[
        &bundle("db", 3),
        &bundle("web", 1),
        &constraint(
            "db-then-web",
            "order: {first: db, then: web, minInstances: 2}",
        ),
    ]);
    let o = observed(&format!(
        "nodes:\n  n1: {{instances: [{}, {}]}}\n  n2: {{standby: true}}\n  n3: {{standby: true}}\n",
        running(&s, "db", 0),
        running(&s, "web", 0)
    ));
    let p = run(&s, &o);
    assert_eq!(
        summary(&p),
        [(ActionType::Stop, "web-0".into(), "n1".into())]
    );
    assert_eq!(
        p.actions[0].reason,
        "2 instances of db cannot run, and web-0 runs only after it (mandatory order)"
    );
    assert!(
        p.blocked.iter().any(|b| b.instance == "web-0"
            && b.reason == "waits for 2 instances of db to run (mandatory order)"),
        "{:#?}",
        p.blocked
    );
    // With n2 back, a second db starts and web keeps running (a new instance of a bundle
    // that runs does not restart what runs after it).
    let o = observed(&format!(
        "nodes:\n  n1: {{instances: [{}, {}]}}\n  n2: {{}}\n  n3: {{standby: true}}\n",
        running(&s, "db", 0),
        running(&s, "web", 0)
    ));
    let p = run(&s, &o);
    assert_eq!(
        summary(&p),
        [(ActionType::Start, "db-1".into(), "n2".into())]
    );
}

#[test]
fn the_primary_of_a_colocation_takes_its_dependents_preferences_like_pacemaker() {
    // Pacemaker (checked with crm_simulate 2.1) adds the dependent's scores, times the
    // colocation score over INFINITY, to the primary's: `p` prefers n1 by 100, `d` (with
    // p, INFINITY) prefers n2 by 200, so both go to n2.
    let both = |extra: &[String]| {
        let mut docs = vec![bundle("p", 1), bundle("d", 1)];
        docs.extend(extra.iter().cloned());
        let refs: Vec<&str> = docs.iter().map(String::as_str).collect();
        let s = spec(&refs);
        let mut on = started_on(&run(&s, &Observed::fresh(&s)));
        on.sort();
        on
    };
    let p_n1 = constraint("p-n1", "location: {bundle: p, node: n1, score: 100}");
    let d_with_p = |score: &str| {
        constraint(
            "d-with-p",
            &format!("colocation: {{bundle: d, with: p, score: {score}}}"),
        )
    };
    let d_at = |node: &str, score: &str| {
        constraint(
            &format!("d-{node}"),
            &format!("location: {{bundle: d, node: {node}, score: {score}}}"),
        )
    };
    let on = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = pairs
            .iter()
            .map(|(i, n)| ((*i).to_owned(), (*n).to_owned()))
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        both(&[p_n1.clone(), d_with_p("INFINITY"), d_at("n2", "200")]),
        on(&[("p-0", "n2"), ("d-0", "n2")])
    );
    // Without the colocation, each goes its own way.
    assert_eq!(
        both(&[p_n1.clone(), d_at("n2", "200")]),
        on(&[("d-0", "n2"), ("p-0", "n1")])
    );
    // A dependent's -INFINITY passes on through INFINITY: p leaves n1 so d can run.
    assert_eq!(
        both(&[p_n1.clone(), d_with_p("INFINITY"), d_at("n1", "-INFINITY")]),
        on(&[("p-0", "n2"), ("d-0", "n2")])
    );
    // Through a finite colocation it is weighted: 100 + 500/INFINITY × -INFINITY = -400
    // on n1 (crm_simulate: "Pp:0 allocation score on n1: -400").
    assert_eq!(
        both(&[p_n1.clone(), d_with_p("500"), d_at("n1", "-INFINITY")]),
        on(&[("p-0", "n2"), ("d-0", "n2")])
    );
    // A dependent that may run nowhere p may does not take the primary down with it:
    // with n2 and n3 in standby, its preferences would leave p no node, so they are
    // rolled back; d waits.
    let nowhere = [p_n1.clone(), d_with_p("INFINITY"), d_at("n1", "-INFINITY")];
    let mut docs = vec![bundle("p", 1), bundle("d", 1)];
    docs.extend(nowhere.iter().cloned());
    let refs: Vec<&str> = docs.iter().map(String::as_str).collect();
    let s = spec(&refs);
    let o = observed("nodes:\n  n1: {}\n  n2: {standby: true}\n  n3: {standby: true}\n");
    let p = run(&s, &o);
    assert_eq!(started_on(&p), on(&[("p-0", "n1")]));
    assert_eq!(p.blocked.len(), 1, "{:#?}", p.blocked);
    assert_eq!(p.blocked[0].instance, "d-0");
    // A negative preference through a negative colocation is not passed on as a positive
    // one; a positive one is, negated: d wants n3, and shuns p by -500, so p gets -500
    // on n3 and stays on n1.
    let p_n3 = constraint("p-n3", "location: {bundle: p, node: n3, score: 300}");
    assert_eq!(
        both(&[p_n3.clone(), d_with_p("-500"), d_at("n3", "INFINITY")]),
        on(&[("p-0", "n1"), ("d-0", "n3")])
    );
    // A primary with several replicas is not pushed off nodes by a dependent of one
    // replica (Pacemaker's clones): p runs on all three nodes, d on the one it may use.
    let mut docs = vec![bundle("p", 3), bundle("d", 1)];
    docs.extend(
        [
            d_with_p("INFINITY"),
            d_at("n1", "-INFINITY"),
            d_at("n2", "-INFINITY"),
        ]
        .iter()
        .cloned(),
    );
    let refs: Vec<&str> = docs.iter().map(String::as_str).collect();
    let s = spec(&refs);
    let p = run(&s, &Observed::fresh(&s));
    assert!(p.blocked.is_empty(), "{:#?}", p.blocked);
    let d = started_on(&p)
        .into_iter()
        .find(|(i, _)| i == "d-0")
        .unwrap();
    assert_eq!(d.1, "n3");
    // --explain shows the part, with its stage.
    let s = spec(&[
        &bundle("p", 1),
        &bundle("d", 1),
        &p_n1,
        &d_with_p("INFINITY"),
        &d_at("n2", "200"),
    ]);
    let p = plan(
        &s,
        &Observed::fresh(&s),
        &Options {
            explain: true,
            ..Options::default()
        },
    );
    let p0 = p.placements.iter().find(|x| x.instance == "p-0").unwrap();
    let n2 = p0
        .candidates
        .iter()
        .find(|c| c.node.as_str() == "n2")
        .unwrap();
    assert_eq!(n2.score.value(), 200);
    let part = n2
        .parts
        .iter()
        .find(|x| x.stage == quorate::plan::model::Stage::Dependents)
        .unwrap();
    assert!(
        part.source
            .contains("d scores 200 here (colocation d-with-p)"),
        "{part:?}"
    );
}

#[test]
fn per_bundle_stickiness_and_failure_settings_override_the_defaults_like_pacemakers_meta_attributes()
 {
    // The cluster: stickiness 100, migrationThreshold 3, failureTimeout 10m. db runs on
    // n1 and prefers n2 by 150: the default stickiness (100) lets it move; its own
    // stickiness of 200 keeps it.
    let prefer_n2 = constraint("db-n2", "location: {bundle: db, node: n2, score: 150}");
    let with =
        |settings: &str| DB.replace("recovery: fence}", &format!("recovery: fence{settings}}}"));
    let running = |s: &SpecSet, extra: &str| {
        observed(&format!(
            "now: 1010\nnodes:\n  n1: {{instances: [{{bundle: db, index: 0, specHash: {}}}]{extra}}}\n",
            hash(s, "db", 0)
        ))
    };
    let s = spec(&[&with(""), &prefer_n2]);
    let p = run(&s, &running(&s, ""));
    assert_eq!(p.actions.len(), 1, "{:#?}", p.actions);
    assert_eq!(p.actions[0].kind, ActionType::Move);
    let s = spec(&[&with(", stickiness: 200"), &prefer_n2]);
    let p = run(&s, &running(&s, ""));
    assert!(p.actions.is_empty(), "{:#?}", p.actions);
    // Failures: two on n1. The default threshold (3) restarts in place; the bundle's own
    // threshold of 2 moves it, and says so.
    let failing = ", failures: {db-0: {count: 2, last: 1000}}";
    let s = spec(&[&with("")]);
    let p = run(&s, &running(&s, failing));
    assert!(p.actions.is_empty(), "{:#?}", p.actions);
    let s = spec(&[&with(", migrationThreshold: 2")]);
    let p = run(&s, &running(&s, failing));
    assert_eq!(p.actions.len(), 1, "{:#?}", p.actions);
    assert_eq!(p.actions[0].kind, ActionType::Move);
    assert!(
        p.actions[0]
            .reason
            .contains("failed 2 times on n1 (migrationThreshold 2)"),
        "{}",
        p.actions[0].reason
    );
    // A failing check restarts in place, counting against the bundle's own threshold.
    let s = spec(&[&with(", migrationThreshold: 5")]);
    let o = observed(&format!(
        "now: 1010\nnodes:\n  n1: {{instances: [{{bundle: db, index: 0, specHash: {}, state: failed}}], failures: {{db-0: {{count: 2, last: 1000}}}}}}\n",
        hash(&s, "db", 0)
    ));
    let p = run(&s, &o);
    assert_eq!(p.actions[0].kind, ActionType::Restart);
    assert!(
        p.actions[0].reason.contains("failure 2 of 5"),
        "{}",
        p.actions[0].reason
    );
    // The bundle's failureTimeout of 5s forgets failures 10 s old: it stays.
    let s = spec(&[&with(", migrationThreshold: 2, failureTimeout: 5s")]);
    let p = run(&s, &running(&s, failing));
    assert!(p.actions.is_empty(), "{:#?}", p.actions);
}

#[test]
fn compound_typed_and_uname_rules_choose_nodes_like_pacemakers_rule_expressions() {
    // n1 is rack a, n2 and n3 rack b. The rule: `#uname eq n2`, or both `rack eq a` and
    // `#uname ne n3`; it matches n2 and n1.
    let rule = constraint(
        "db-where",
        "location: {bundle: db, score: -INFINITY, rule: {or: [{attribute: \"#uname\", operator: eq, value: n2}, {and: [{attribute: rack, operator: eq, value: a}, {attribute: \"#uname\", operator: ne, value: n3}]}]}}",
    );
    // Banned where the rule does NOT match: n1 (rack a, not n3) and n2 match, so db
    // runs on n3.
    let s = spec(&[DB, &rule]);
    let p = run(&s, &Observed::fresh(&s));
    assert_eq!(started_on(&p), [("db-0".into(), "n3".into())]);
    // Versions: prefer nodes whose kernel is at least 5.10 (n2 has 5.9, n3 5.10.1);
    // as strings "5.9" > "5.10", as versions it is the other way round.
    let cluster_kernels = |v2: &str, v3: &str| {
        CLUSTER
            .replace(
                "attributes: {rack: b}}\n    - {name: n3",
                &format!("attributes: {{rack: b, kernel: \"{v2}\"}}}}\n    - {{name: n3"),
            )
            .replace(
                "n3.sock\", attributes: {rack: b}}",
                &format!("n3.sock\", attributes: {{rack: b, kernel: \"{v3}\"}}}}"),
            )
    };
    let prefer = |ty: &str| {
        constraint(
            "db-new-kernel",
            &format!(
                "location: {{bundle: db, score: 500, rule: {{attribute: kernel, operator: gte, value: \"5.10\", type: {ty}}}}}"
            ),
        )
    };
    let plan_with = |cluster: &str, extra: &str| {
        let mut sources = Sources::new();
        sources.add("cluster.yaml", cluster.as_bytes().to_vec());
        sources.add("db.yaml", DB.as_bytes().to_vec());
        sources.add("c.yaml", extra.as_bytes().to_vec());
        let report = validate(&sources);
        assert_eq!(report.errors(), 0, "{:#?}", report.diagnostics);
        let s = report.into_valid_set().unwrap();
        started_on(&run(&s, &Observed::fresh(&s)))
    };
    let cluster = cluster_kernels("5.9", "5.10.1");
    assert!(cluster.contains("kernel: \"5.10.1\""), "{cluster}");
    assert_eq!(
        plan_with(&cluster, &prefer("version")),
        [("db-0".into(), "n3".into())]
    );
    assert_eq!(
        plan_with(&cluster, &prefer("string")),
        [("db-0".into(), "n2".into())]
    );
}

/// Pacemaker's `maintenance-mode=true` (here `quorate suspend` with no bundle): nothing is
/// started, stopped, moved, restarted or fenced, whatever is due; the instances are
/// shown as observed. Resumed, the same state plans the usual changes.
#[test]
fn maintenance_mode_stops_all_actions() {
    let order = constraint("o", "order: {first: db, then: web}");
    let s = spec(&[DB, WEB, &order]);
    // Due: n1 is lost with db-0 (fence, then recover), web-0 runs an old spec (restart),
    // web-1 exited (start again), and a removed bundle's instance runs (stop).
    let text = "nodes:
  n1: {state: lost, instances: [{bundle: db, index: 0}]}
  n2: {instances: [{bundle: web, index: 0, specHash: old}, {bundle: gone, index: 0}]}
  n3: {instances: [{bundle: web, index: 1, state: stopped}]}
";
    let managed = run(&s, &observed(text));
    let kinds: std::collections::BTreeSet<ActionType> =
        managed.actions.iter().map(|a| a.kind).collect();
    for kind in [
        ActionType::Fence,
        ActionType::Move,
        ActionType::Restart,
        ActionType::Stop,
    ] {
        assert!(kinds.contains(&kind), "{kind:?} due: {managed:#?}");
    }
    let p = run(
        &s,
        &observed(&format!(
            "{text}suspended: {{cluster: {{atUnixMs: 1, reason: maintenance window}}}}\n"
        )),
    );
    assert!(p.actions.is_empty() && p.steps.is_empty(), "{p:#?}");
    assert_eq!(p.changes, 0);
    let shown: Vec<(&str, Vec<String>)> = p
        .suspended
        .iter()
        .map(|u| {
            let on = u.on.iter().map(|(n, s)| format!("{s} on {n}")).collect();
            (u.instance.as_str(), on)
        })
        .collect();
    assert_eq!(
        shown,
        [
            ("db-0", vec!["lost on n1".to_owned()]),
            ("web-0", vec!["running on n2".to_owned()]),
            ("web-1", vec!["stopped on n3".to_owned()]),
            ("gone-0", vec!["running on n2".to_owned()]),
        ]
    );
    assert!(p.suspended.iter().all(
        |u| u.reason == "suspended, not managed: the cluster is suspended (maintenance window)"
    ));
    let human = quorate::plan::render::render(&p, quorate::plan::render::Format::Human, false);
    assert!(human.contains("Suspended, not managed (4):"), "{human}");
    assert!(human.contains("Plan: 4 suspended."), "{human}");
}

/// Pacemaker's `is-managed=false` on one resource (here `quorate suspend db`): the
/// resource stays where it runs even when a location constraint now wants it elsewhere,
/// and a lost node holding only it is not fenced; a bundle colocated with it treats it as
/// observed and joins it there; other bundles are managed as usual.
#[test]
fn unmanaged_resource_is_left_where_it_runs() {
    let away = constraint(
        "db-not-on-n1",
        "location: {bundle: db, node: n1, score: -INFINITY}",
    );
    let with = constraint(
        "web-with-db",
        "colocation: {bundle: web, with: db, score: INFINITY}",
    );
    let s = spec(&[DB, &bundle("web", 1), &away, &with]);
    let h = hash(&s, "db", 0);
    let text = format!(
        "nodes:\n  n1: {{instances: [{{bundle: db, index: 0, specHash: {h}}}]}}\n  n2: {{}}\n  n3: {{}}\n"
    );
    let managed = run(&s, &observed(&text));
    assert!(
        summary(&managed)
            .iter()
            .any(|(k, i, _)| *k == ActionType::Move && i == "db-0"),
        "{managed:#?}"
    );
    let suspended = format!("{text}suspended: {{bundles: {{db: {{atUnixMs: 1}}}}}}\n");
    let p = run(&s, &observed(&suspended));
    assert_eq!(
        summary(&p),
        [(ActionType::Start, "web-0".into(), "n1".into())],
        "db stays on n1; web joins it there"
    );
    assert_eq!(p.suspended.len(), 1);
    assert_eq!(p.suspended[0].instance, "db-0");
    assert_eq!(
        p.suspended[0].reason,
        "suspended, not managed: bundle db is suspended"
    );
    // n1 lost with only db on it: db is not recovered, and n1 is not fenced for it.
    let mut lost = observed(&suspended);
    lost.fail_node(&"n1".parse().unwrap());
    let p = run(&s, &lost);
    assert!(
        !p.actions.iter().any(|a| a.kind == ActionType::Fence),
        "{p:#?}"
    );
    assert!(
        !p.steps.iter().any(|st| matches!(&st.op, StepOp::Start { bundle, .. } | StepOp::Stop { bundle, .. } if bundle.as_str() == "db")),
        "{p:#?}"
    );
}

// Capacity and `placementStrategy` (Pacemaker's utilization and `placement-strategy`).

/// A cluster under `strategy` with `nodes` (name, capacity as a YAML flow map), fenced,
/// and `docs`; loaded without validation when `checked` is false.
fn capacity_set(strategy: &str, nodes: &[(&str, &str)], docs: &[&str], checked: bool) -> SpecSet {
    let mut cluster = format!(
        "apiVersion: quorate.io/v1alpha1\nkind: Cluster\nmetadata: {{name: lab}}\nspec:\n  placementStrategy: {strategy}\n  nodes:\n"
    );
    for (n, cap) in nodes {
        cluster.push_str(&format!(
            "    - {{name: {n}, runtime: \"podman+unix:///run/{n}.sock\", capacity: {cap}}}\n"
        ));
    }
    let targets: Vec<&str> = nodes.iter().map(|(n, _)| *n).collect();
    cluster.push_str(&format!(
        "---\napiVersion: quorate.io/v1alpha1\nkind: Fence\nmetadata: {{name: bmcs}}\nspec:\n  targets: [{}]\n  ipmi: {{address: 127.0.0.1, username: admin, password: {{fromEnv: PW}}}}\n",
        targets.join(", ")
    ));
    let mut sources = Sources::new();
    sources.add("cluster.yaml", cluster.into_bytes());
    for (i, d) in docs.iter().enumerate() {
        sources.add(format!("extra{i}.yaml"), d.as_bytes().to_vec());
    }
    if !checked {
        return quorate::load::load(&sources).set;
    }
    let report = validate(&sources);
    assert_eq!(report.errors(), 0, "{:#?}", report.diagnostics);
    report.into_valid_set().unwrap()
}

fn bundle_doc(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: quorate.io/v1alpha1\nkind: Bundle\nmetadata: {{name: {name}}}\nspec: {spec}\n"
    )
}

/// The node each started instance goes to.
fn starts(p: &Plan) -> Vec<(String, String)> {
    summary(p)
        .into_iter()
        .filter(|(k, _, _)| *k == ActionType::Start)
        .map(|(_, i, n)| (i, n))
        .collect()
}

/// Instances started per node.
fn per_node(p: &Plan) -> std::collections::BTreeMap<String, usize> {
    let mut m = std::collections::BTreeMap::new();
    for (_, n) in starts(p) {
        *m.entry(n).or_insert(0) += 1;
    }
    m
}

const PREFER_N1: &str = "apiVersion: quorate.io/v1alpha1\nkind: Constraint\nmetadata: {name: web-on-n1}\nspec:\n  location: {bundle: web, node: n1, score: 100}\n";

#[test]
fn default_strategy_ignores_capacity() {
    // Pacemaker's default placement-strategy takes no account of utilization: the
    // location preference puts all three on n1, 9 cpu on a node of 4.
    let web = bundle_doc(
        "web",
        "{image: nginx, replicas: 3, replicasPerHost: 3, needs: {cpu: 3}}",
    );
    let nodes = [("n1", "{cpu: 4}"), ("n2", "{cpu: 4}"), ("n3", "{cpu: 4}")];
    let s = capacity_set("default", &nodes, &[&web, PREFER_N1], true);
    let p = run(&s, &Observed::fresh(&s));
    assert_eq!(per_node(&p), [("n1".to_owned(), 3)].into());
}

#[test]
fn utilization_strategy_never_exceeds_capacity() {
    // The same set under `utilization`: n1 takes one (3 of 4 cpu), the others go where
    // there is room, with ties to the node with the fewest instances.
    let web = bundle_doc(
        "web",
        "{image: nginx, replicas: 3, replicasPerHost: 3, needs: {cpu: 3}}",
    );
    let nodes = [("n1", "{cpu: 4}"), ("n2", "{cpu: 4}"), ("n3", "{cpu: 4}")];
    let s = capacity_set("utilization", &nodes, &[&web, PREFER_N1], true);
    let p = run(&s, &Observed::fresh(&s));
    assert_eq!(
        per_node(&p),
        [
            ("n1".to_owned(), 1),
            ("n2".to_owned(), 1),
            ("n3".to_owned(), 1)
        ]
        .into()
    );
    // Two bundles sharing the nodes: never more than 4 cpu on any of them.
    let db = bundle_doc(
        "db",
        "{image: pg, replicas: 3, replicasPerHost: 3, needs: {cpu: 1}}",
    );
    let s = capacity_set("utilization", &nodes, &[&web, &db, PREFER_N1], true);
    let p = run(&s, &Observed::fresh(&s));
    let mut cpu = std::collections::BTreeMap::new();
    for (inst, node) in starts(&p) {
        let need = if inst.starts_with("web") { 3 } else { 1 };
        *cpu.entry(node).or_insert(0) += need;
    }
    assert_eq!(cpu.values().sum::<i32>(), 12, "{cpu:?}");
    assert!(cpu.values().all(|c| *c <= 4), "{cpu:?}");
}

#[test]
fn a_node_full_of_one_quantity_still_takes_what_needs_another() {
    // `mem` fills both nodes' memory. Selection passes over a node that has too little
    // left of something for any bundle that needs it, but only for those bundles: `cpu`
    // still goes to both nodes, `both` (memory too) to neither.
    let mem = bundle_doc(
        "mem",
        "{image: a, replicas: 2, replicasPerHost: 1, priority: 10, needs: {memory: 2}}",
    );
    let cpu = bundle_doc(
        "cpu",
        "{image: b, replicas: 4, replicasPerHost: 2, needs: {cpu: 1}}",
    );
    let both = bundle_doc(
        "both",
        "{image: c, replicas: 1, needs: {cpu: 1, memory: 1}}",
    );
    let nodes = [("n1", "{cpu: 4, memory: 2}"), ("n2", "{cpu: 4, memory: 2}")];
    // Loaded unchecked: validation says that `both` cannot fit, rightly.
    let s = capacity_set("utilization", &nodes, &[&mem, &cpu, &both], false);
    let p = run(&s, &Observed::fresh(&s));
    let started: Vec<String> = starts(&p).into_iter().map(|(i, _)| i).collect();
    assert_eq!(
        per_node(&p),
        [("n1".to_owned(), 3), ("n2".to_owned(), 3)].into()
    );
    assert!(
        started.iter().all(|i| !i.starts_with("both")),
        "{started:?}"
    );
}

#[test]
fn balanced_ties_in_a_circle_go_by_name_order() {
    // Comparing free capacity is not an order: n0 has more free than n1 (cpu and disk),
    // n1 than n2 (cpu and memory), n2 than n0 (memory and disk). Selection looks at the
    // nodes in name order, keeping the best so far: n0, which beats n1, then n2, which
    // beats n0. The location on n0 (score 0) scores that node apart from the others,
    // which must not change the order they are looked at in.
    let b0 = bundle_doc(
        "b0",
        "{image: a, replicas: 1, needs: {cpu: 1, memory: 1, disk: 1}}",
    );
    let loc = "apiVersion: quorate.io/v1alpha1\nkind: Constraint\nmetadata: {name: loc0}\nspec: {location: {bundle: b0, node: n0, score: 0}}\n";
    let nodes = [
        ("n0", "{cpu: 30, memory: 10, disk: 20}"),
        ("n1", "{cpu: 20, memory: 30, disk: 10}"),
        ("n2", "{cpu: 10, memory: 20, disk: 30}"),
    ];
    let s = capacity_set("balanced", &nodes, &[&b0, loc], true);
    assert_eq!(
        starts(&run(&s, &Observed::fresh(&s))),
        [("b0-0".into(), "n2".into())]
    );
}

#[test]
fn balanced_strategy_prefers_most_free_capacity() {
    let db = bundle_doc("db", "{image: pg, needs: {memory: 2048}}");
    let nodes = [
        ("n1", "{memory: 16384}"),
        ("n2", "{memory: 32768}"),
        ("n3", "{memory: 8192}"),
    ];
    // Under utilization the tie goes to the fewest instances, then the first name.
    let s = capacity_set("utilization", &nodes, &[&db], true);
    assert_eq!(
        starts(&run(&s, &Observed::fresh(&s))),
        [("db-0".into(), "n1".into())]
    );
    // Under balanced, to the node with the most free memory.
    let s = capacity_set("balanced", &nodes, &[&db], true);
    assert_eq!(
        starts(&run(&s, &Observed::fresh(&s))),
        [("db-0".into(), "n2".into())]
    );
    // With several quantities, the node with more free in more of them: n3 has more cpu
    // and more disk free than n2, n2 more memory.
    let app = bundle_doc(
        "app",
        "{image: app, needs: {cpu: 1, memory: 1024, disk: 10}}",
    );
    let nodes = [
        ("n1", "{cpu: 2, memory: 2048, disk: 20}"),
        ("n2", "{cpu: 4, memory: 65536, disk: 100}"),
        ("n3", "{cpu: 8, memory: 4096, disk: 200}"),
    ];
    let s = capacity_set("balanced", &nodes, &[&app], true);
    let explained = plan(
        &s,
        &Observed::fresh(&s),
        &Options {
            explain: true,
            ..Options::default()
        },
    );
    assert_eq!(starts(&explained), [("app-0".into(), "n3".into())]);
    // `--explain` shows the strategy's part with what each node has free.
    let app0 = &explained.placements[0];
    let n2 = app0
        .candidates
        .iter()
        .find(|c| c.node.as_str() == "n2")
        .unwrap();
    let part = n2
        .parts
        .iter()
        .find(|x| x.stage == quorate::plan::model::Stage::Strategy)
        .unwrap();
    assert_eq!(
        part.source,
        "balanced: free cpu 4 of 4, disk 100 of 100, memory 65536 of 65536; ties go to the most free capacity"
    );
}

#[test]
fn minimal_strategy_fills_fewest_nodes() {
    let web = bundle_doc(
        "web",
        "{image: nginx, replicas: 4, replicasPerHost: 4, needs: {cpu: 1}}",
    );
    let nodes = [("n1", "{cpu: 3}"), ("n2", "{cpu: 3}"), ("n3", "{cpu: 3}")];
    let s = capacity_set("utilization", &nodes, &[&web], true);
    assert_eq!(per_node(&run(&s, &Observed::fresh(&s))).len(), 3);
    // Pacemaker's minimal: the first eligible node until it is full, then the next.
    let s = capacity_set("minimal", &nodes, &[&web], true);
    assert_eq!(
        per_node(&run(&s, &Observed::fresh(&s))),
        [("n1".to_owned(), 3), ("n2".to_owned(), 1)].into()
    );
}

#[test]
fn instance_that_fits_nowhere_is_blocked_with_numbers() {
    // 14,336 of 16,384 memory in all, 4,096 on one node at most: valid; but `cache`
    // (placed first, by name) leaves each node 3,072, so db-0 fits nowhere.
    let cache = bundle_doc(
        "cache",
        "{image: redis, replicas: 2, needs: {memory: 5120}}",
    );
    let db = bundle_doc("db", "{image: pg, needs: {memory: 4096}}");
    let nodes = [("n1", "{memory: 8192}"), ("n2", "{memory: 8192}")];
    let s = capacity_set("utilization", &nodes, &[&cache, &db], true);
    let p = run(&s, &Observed::fresh(&s));
    assert_eq!(
        per_node(&p),
        [("n1".to_owned(), 1), ("n2".to_owned(), 1)].into()
    );
    let blocked: Vec<_> = p.blocked.iter().map(|b| (&b.instance, &b.reason)).collect();
    assert_eq!(
        blocked,
        [(
            &"db-0".to_owned(),
            &"no node can take db-0: no node has 4096 memory free (n1 3072 of 8192, n2 3072 of 8192) (see `quorate plan --explain`)".to_owned()
        )]
    );
    // The new instances of one bundle that fit nowhere are one entry, with the numbers.
    let db = bundle_doc(
        "db",
        "{image: pg, replicas: 3, replicasPerHost: 2, needs: {memory: 2048}}",
    );
    let s = capacity_set("utilization", &nodes, &[&cache, &db], true);
    let p = run(&s, &Observed::fresh(&s));
    assert_eq!(starts(&p).len(), 4, "{:#?}", p.actions);
    assert_eq!(p.blocked.len(), 1);
    assert_eq!(
        p.blocked[0].reason,
        "no node can take db-2: no node has 2048 memory free (n1 1024 of 8192, n2 1024 of 8192) (see `quorate plan --explain`)"
    );
    // The list is bounded: at most five nodes, then how many more.
    let many: Vec<(String, String)> = (0..8)
        .map(|i| (format!("n{i}"), "{memory: 1024}".to_owned()))
        .collect();
    let many: Vec<(&str, &str)> = many.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let big = bundle_doc("big", "{image: pg, needs: {memory: 2048}}");
    let s = capacity_set("utilization", &many, &[&big], false);
    let p = run(&s, &Observed::fresh(&s));
    assert_eq!(
        p.blocked[0].reason,
        "no node can take big-0: no node has 2048 memory free (n0 1024 of 1024, n1 1024 of 1024, n2 1024 of 1024, n3 1024 of 1024, n4 1024 of 1024) and 3 more nodes (see `quorate plan --explain`)"
    );
}

#[test]
fn a_running_instance_over_capacity_stays_and_its_node_takes_nothing_new() {
    // n1's capacity was lowered below what runs there: both db instances stay (quorate
    // moves nothing for capacity alone), and a new instance goes to n2 even though n1 is
    // preferred.
    let db = bundle_doc(
        "db",
        "{image: pg, replicas: 2, replicasPerHost: 2, needs: {memory: 4096}}",
    );
    let app = bundle_doc("app", "{image: app, needs: {memory: 1024}}");
    let prefer = "apiVersion: quorate.io/v1alpha1\nkind: Constraint\nmetadata: {name: app-on-n1}\nspec:\n  location: {bundle: app, node: n1, score: 500}\n";
    let nodes = [("n1", "{memory: 6144}"), ("n2", "{memory: 8192}")];
    let s = capacity_set("utilization", &nodes, &[&db, &app, prefer], true);
    let (h0, h1) = (hash(&s, "db", 0), hash(&s, "db", 1));
    let o = observed(&format!(
        "nodes:\n  n1: {{instances: [{{bundle: db, index: 0, specHash: {h0}}}, {{bundle: db, index: 1, specHash: {h1}}}]}}\n  n2: {{}}\n"
    ));
    let p = run(&s, &o);
    assert_eq!(
        summary(&p),
        [(ActionType::Start, "app-0".into(), "n2".into())]
    );
    assert!(p.blocked.is_empty(), "{:#?}", p.blocked);
}

/// Plans against the state `p` leaves: nothing more to do (one plan converges).
fn converges(s: &SpecSet, o: &Observed, p: &Plan) {
    let end = quorate::plan::apply::expected_state(s, o, p);
    let again = run(s, &end);
    assert!(again.actions.is_empty(), "{:#?}", again.actions);
}

#[test]
fn a_primary_goes_where_its_dependents_fit_too() {
    // app must run with db. db alone prefers n1, but n1 cannot hold both: db goes to n2,
    // where app fits with it (Pacemaker adds a primary's colocated dependents' needs).
    let db = bundle_doc("db", "{image: pg, needs: {memory: 2}}");
    let app = bundle_doc("app", "{image: app, needs: {memory: 2}}");
    let with = &constraint(
        "app-with-db",
        "colocation: {bundle: app, with: db, score: INFINITY}",
    );
    let prefer = &constraint("db-on-n1", "location: {bundle: db, node: n1, score: 50}");
    let nodes = [("n1", "{memory: 3}"), ("n2", "{memory: 4}")];
    let s = capacity_set("utilization", &nodes, &[&db, &app, with, prefer], true);
    let o = Observed::fresh(&s);
    let p = run(&s, &o);
    assert_eq!(
        starts(&p),
        [("app-0".into(), "n2".into()), ("db-0".into(), "n2".into())]
    );
    assert!(p.blocked.is_empty(), "{:#?}", p.blocked);
    let explained = plan(
        &s,
        &o,
        &Options {
            explain: true,
            ..Options::default()
        },
    );
    let db0 = explained
        .placements
        .iter()
        .find(|e| e.instance == "db-0")
        .unwrap();
    let n1 = db0
        .candidates
        .iter()
        .find(|c| c.node.as_str() == "n1")
        .unwrap();
    assert!(
        n1.parts.iter().any(
            |p| p.source == "needs 4 memory with the dependents that must join it, 3 of 3 free"
        ),
        "{:#?}",
        n1.parts
    );
    converges(&s, &o, &p);
    // Where no node has room for both, db is still placed (app is blocked, not db).
    let nodes = [("n1", "{memory: 3}"), ("n2", "{memory: 3}")];
    let s = capacity_set("utilization", &nodes, &[&db, &app, with, prefer], true);
    let o = Observed::fresh(&s);
    let p = run(&s, &o);
    assert_eq!(starts(&p), [("db-0".into(), "n1".into())]);
    assert_eq!(p.blocked.len(), 1, "{:#?}", p.blocked);
    converges(&s, &o, &p);
}

#[test]
fn a_primary_goes_where_the_whole_chain_of_its_dependents_fits() {
    // web with app with db, each by INFINITY (a group's chain). db alone prefers n1,
    // which holds db and app but not web too: db goes to n2, where all three fit
    // (Pacemaker adds the needs of every resource colocated with the primary by
    // INFINITY, however far down).
    let db = bundle_doc("db", "{image: pg, needs: {memory: 2}}");
    let app = bundle_doc("app", "{image: app, needs: {memory: 2}}");
    let web = bundle_doc("web", "{image: web, needs: {memory: 3}}");
    let app_with_db = &constraint(
        "app-with-db",
        "colocation: {bundle: app, with: db, score: INFINITY}",
    );
    let web_with_app = &constraint(
        "web-with-app",
        "colocation: {bundle: web, with: app, score: INFINITY}",
    );
    let prefer = &constraint("db-on-n1", "location: {bundle: db, node: n1, score: 50}");
    let nodes = [("n1", "{memory: 5}"), ("n2", "{memory: 8}")];
    let docs: [&str; 6] = [&db, &app, &web, app_with_db, web_with_app, prefer];
    let s = capacity_set("utilization", &nodes, &docs, true);
    let o = Observed::fresh(&s);
    let p = run(&s, &o);
    assert_eq!(
        starts(&p),
        [
            ("app-0".into(), "n2".into()),
            ("db-0".into(), "n2".into()),
            ("web-0".into(), "n2".into())
        ]
    );
    assert!(p.blocked.is_empty(), "{:#?}", p.blocked);
    converges(&s, &o, &p);
    // Where no node has room for all three, db still goes where it and app fit.
    let nodes = [("n1", "{memory: 5}"), ("n2", "{memory: 5}")];
    let s = capacity_set("utilization", &nodes, &docs, true);
    let o = Observed::fresh(&s);
    let p = run(&s, &o);
    assert_eq!(
        starts(&p),
        [("app-0".into(), "n1".into()), ("db-0".into(), "n1".into())]
    );
    assert_eq!(p.blocked.len(), 1, "{:#?}", p.blocked);
    converges(&s, &o, &p);
}

#[test]
fn a_node_found_without_room_is_asked_again_once_an_instance_leaves_it() {
    // m runs on n1 and leaves 512 of 2048 free there. In the first round, where m is still
    // counted on n1, x (placed first) prefers n1, which lacks room for it: x goes to n2,
    // and selection remembers that n1 lacks room for what x needs (it still has room for
    // s). m then moves to n3, freeing n1: z, which needs what x needs, must be asked
    // about n1 again and goes there, the node with the fewest instances and first by
    // name. Debug builds check every selection against a look at every node, so a node
    // remembered too long fails this test there. The next round, with m no longer
    // counted on n1, gives x the node it prefers.
    let nodes = [
        ("n1", "{memory: 2048}"),
        ("n2", "{memory: 2048}"),
        ("n3", "{memory: 2048}"),
    ];
    let m = bundle_doc("m", "{image: m, priority: 5, needs: {memory: 1536}}");
    let m_on_n1 = constraint("m-here", "location: {bundle: m, node: n1, score: 100}");
    let s1 = capacity_set("utilization", &nodes, &[&m, &m_on_n1], true);
    let fresh = Observed::fresh(&s1);
    let o = quorate::plan::apply::expected_state(&s1, &fresh, &run(&s1, &fresh));
    let x = bundle_doc("x", "{image: x, priority: 10, needs: {memory: 1024}}");
    let x_on_n1 = constraint("x-here", "location: {bundle: x, node: n1, score: 100}");
    let m_on_n3 = constraint("m-here", "location: {bundle: m, node: n3, score: 1000}");
    let z = bundle_doc("z", "{image: z, priority: 1, needs: {memory: 1024}}");
    let small = bundle_doc("s", "{image: s, needs: {memory: 512}}");
    let docs: [&str; 6] = [&m, &m_on_n3, &x, &x_on_n1, &z, &small];
    let s2 = capacity_set("utilization", &nodes, &docs, true);
    let p = run(&s2, &o);
    let started: Vec<(String, String)> = starts(&p);
    assert_eq!(
        started,
        [
            ("s-0".into(), "n1".into()),
            ("x-0".into(), "n1".into()),
            ("z-0".into(), "n2".into())
        ],
        "{started:?}"
    );
    assert!(
        summary(&p).contains(&(ActionType::Move, "m-0".into(), "n3".into())),
        "{:#?}",
        summary(&p)
    );
}

#[test]
fn a_dependent_starved_late_gives_back_what_it_counted_up_the_chain() {
    // c with b with a, each by INFINITY: a counts the needs of b and c, so only n2 holds
    // it. But c waits for two instances of e, which places one (its memory fits n1
    // only): starved, c counts nowhere, and a goes to n1, which it prefers and which
    // holds a and b. c is found starved only after a and b are placed (it is counted
    // with a), so the round after places again from a, the primary two links up, not
    // only from b, c's own primary.
    let a = bundle_doc("a", "{image: a, needs: {cpu: 1}}");
    let b = bundle_doc("b", "{image: b, needs: {cpu: 1}}");
    let c = bundle_doc("c", "{image: c, needs: {cpu: 1}}");
    let e = bundle_doc(
        "e",
        "{image: e, replicas: 2, priority: 10, needs: {memory: 6}}",
    );
    let b_with_a = &constraint(
        "b-with-a",
        "colocation: {bundle: b, with: a, score: INFINITY}",
    );
    let c_with_b = &constraint(
        "c-with-b",
        "colocation: {bundle: c, with: b, score: INFINITY}",
    );
    let e_then_c = &constraint("e-then-c", "order: {first: e, then: c, minInstances: 2}");
    let prefer = &constraint("a-on-n1", "location: {bundle: a, node: n1, score: 100}");
    let nodes = [
        ("n1", "{cpu: 2, memory: 10}"),
        ("n2", "{cpu: 3, memory: 5}"),
    ];
    let docs: [&str; 8] = [&a, &b, &c, &e, b_with_a, c_with_b, e_then_c, prefer];
    let s = capacity_set("utilization", &nodes, &docs, true);
    let o = Observed::fresh(&s);
    let p = run(&s, &o);
    assert_eq!(
        starts(&p),
        [
            ("a-0".into(), "n1".into()),
            ("b-0".into(), "n1".into()),
            ("e-0".into(), "n1".into())
        ]
    );
    assert_eq!(p.blocked.len(), 2, "{:#?}", p.blocked);
    converges(&s, &o, &p);
}

#[test]
fn a_then_freed_in_a_top_up_moves_off_the_node_its_first_needs() {
    // a needs 2 cpu, which only n1 has, and must not run beside b; b runs after a
    // (mandatory order). b-0 runs on n1 now. Placed first (a is colocated with it), b
    // keeps n1 and leaves a nowhere: b is starved, a takes n1, and the round that frees
    // b again must not keep b-0 where it runs (that pushes a off n1 and starves b once
    // more) but place b as the next plan would once b-0 is stopped: on n2. Before, this
    // plan stopped b-0 and the next started b on n2.
    let a = bundle_doc("a", "{image: a, needs: {cpu: 2}}");
    let b = bundle_doc(
        "b",
        "{image: b, replicas: 2, replicasPerHost: 2, needs: {cpu: 0, memory: 0}}",
    );
    let apart = &constraint(
        "a-away-from-b",
        "colocation: {bundle: a, with: b, score: -INFINITY}",
    );
    let order = &constraint("a-then-b", "order: {first: a, then: b}");
    let nodes = [("n1", "{cpu: 2, memory: 1}"), ("n2", "{cpu: 0, memory: 3}")];
    let docs: [&str; 4] = [&a, &b, apart, order];
    let s = capacity_set("balanced", &nodes, &docs, true);
    let h = hash(&s, "b", 0);
    let o = observed(&format!(
        "nodes:\n  n1: {{instances: [{{bundle: b, index: 0, specHash: {h}}}]}}\n  n2: {{}}\n"
    ));
    let p = run(&s, &o);
    assert!(p.blocked.is_empty(), "{:#?}", p.blocked);
    let on = start_nodes(&p);
    assert_eq!(on.get("a-0").map(String::as_str), Some("n1"), "{on:?}");
    converges(&s, &o, &p);
}

#[test]
#[ignore = "known to fail: the rounds that decide the primaries do not settle (issue 18)"]
fn a_cycle_with_a_promoted_role_settles_in_one_plan() {
    // Found by the property tests (seed 1, 20,000 cases). b1 must run with b0, b0 away
    // from b1's promoted instance, and b1 may not use n1; both run on n0 with an old
    // spec, b1-0 promoted, and n0 has no cpu for b1. The first plan leaves the second
    // one work to do.
    let b0 = bundle_doc("b0", "{image: img0, needs: {cpu: 0, memory: 0}}");
    let b1 = bundle_doc(
        "b1",
        "{image: img1, replicas: 2, replicasPerHost: 1, needs: {cpu: 1, memory: 0}, \
         promotable: {maxPromoted: 1, maxPromotedPerNode: 1, promote: [p], demote: [d], role: [r]}}",
    );
    let away = &constraint(
        "b0-away",
        "colocation: {bundle: b0, with: b1, score: -INFINITY, role: promoted}",
    );
    let with = &constraint(
        "b1-with",
        "colocation: {bundle: b1, with: b0, score: INFINITY}",
    );
    let off = &constraint(
        "b1-off-n1",
        "location: {bundle: b1, node: n1, score: -INFINITY}",
    );
    let nodes = [
        ("n0", "{cpu: 0}"),
        ("n1", "{cpu: 4, memory: 1}"),
        ("n2", "{cpu: 0}"),
        ("n3", "{cpu: 3}"),
    ];
    let docs: [&str; 5] = [&b0, &b1, away, with, off];
    let s = capacity_set("utilization", &nodes, &docs, true);
    let o = observed(
        "nodes:\n  n0: {instances: [{bundle: b0, index: 0, specHash: old}, \
         {bundle: b1, index: 0, specHash: old, role: {promoted: true}}]}\n  n1: {}\n  n2: {}\n  n3: {}\n",
    );
    let p = run(&s, &o);
    converges(&s, &o, &p);
}

#[test]
fn a_cycle_whose_members_split_settles_in_one_plan() {
    // Found by the property tests (seed 13, 20,000 cases). b0 and b1 must each run with
    // the other. b0-0 has failed on n1 too often and runs there, b0-1 runs on n3, both
    // with an old spec. b0 is placed first, on both nodes; b1, which needs nothing, goes
    // twice to n1, which has more room free. b0's instances on n3 are then alone. They
    // are placed again where b1 is: b0-1 moves to n1, which has room for it (before,
    // it was placed nowhere, and the next plan started it there).
    let b0 = bundle_doc(
        "b0",
        "{image: img0, replicas: 3, replicasPerHost: 2, priority: 2, migrationThreshold: 3, \
         needs: {cpu: 1}}",
    );
    let b1 = bundle_doc("b1", "{image: img1, replicas: 2, replicasPerHost: 2}");
    let b0_with = &constraint(
        "b0-with-b1",
        "colocation: {bundle: b0, with: b1, score: INFINITY}",
    );
    let b1_with = &constraint(
        "b1-with-b0",
        "colocation: {bundle: b1, with: b0, score: INFINITY}",
    );
    let nodes = [("n1", "{cpu: 4}"), ("n3", "{cpu: 4}")];
    let docs: [&str; 4] = [&b0, &b1, b0_with, b1_with];
    let s = capacity_set("utilization", &nodes, &docs, true);
    let o = observed(
        "now: 10000\nnodes:\n  n1: {instances: [{bundle: b0, index: 0, specHash: old}], \
         failures: {b0-0: {count: 3, last: 9500}}}\n  n3: {instances: [{bundle: b0, index: 1, specHash: old}]}\n",
    );
    let p = run(&s, &o);
    let on = start_nodes(&p);
    assert_eq!(on.get("b0-1").map(String::as_str), Some("n1"), "{on:?}");
    let blocked: Vec<&str> = p.blocked.iter().map(|b| b.instance.as_str()).collect();
    assert_eq!(blocked, ["b0-0"], "{:#?}", p.blocked);
    converges(&s, &o, &p);
}

#[test]
fn a_primary_whose_dependent_runs_beside_another_instance_settles_in_one_plan() {
    // Found by the property tests (seed 32, 20,000 cases). b0 must run with b1. b1-1 and
    // b1-2 run on n1 with an old spec; the plan starts b0-0 beside them and b1-0 on n2,
    // which has no room for a b0 too. b1 counted b0's needs with its instance 0, by
    // number, so the next plan moved b1-0 to n1, where b0-0 runs, and b1-2 to n2: two
    // moves that changed nothing but the instances' numbers. b0 now joins first the
    // instances it runs beside.
    let b0 = bundle_doc("b0", "{image: img0, needs: {memory: 1}}");
    let b1 = bundle_doc(
        "b1",
        "{image: img1, replicas: 3, replicasPerHost: 2, update: {maxParallel: 10}, needs: {memory: 1}}",
    );
    let with = &constraint(
        "b0-with-b1",
        "colocation: {bundle: b0, with: b1, score: INFINITY}",
    );
    let order = &constraint("b0-then-b1", "order: {first: b0, then: b1}");
    let nodes = [("n1", "{memory: 4}"), ("n2", "{memory: 1}")];
    let docs: [&str; 4] = [&b0, &b1, with, order];
    let s = capacity_set("utilization", &nodes, &docs, true);
    let o = observed(
        "nodes:\n  n1: {instances: [{bundle: b1, index: 1, specHash: old}, \
         {bundle: b1, index: 2, specHash: old}]}\n  n2: {}\n",
    );
    let p = run(&s, &o);
    converges(&s, &o, &p);
}

#[test]
fn a_group_after_a_promoted_primary_settles_in_one_plan() {
    // Found by the property tests (seed 13, 20,000 cases, once the split cycle above
    // settled). b0 must run with b1's promoted instances, and the group puts b1 with b0.
    // b1-2, an instance over b1's replicas, runs promoted on n0, which has no room for
    // b0. It stops in this plan, so b0 does not join it: two pairs start (before, b0's
    // needs went with b1-2, the first plan placed one pair and the next one the second).
    let b0 = bundle_doc(
        "b0",
        "{image: img0, replicas: 2, replicasPerHost: 1, needs: {cpu: 1}}",
    );
    let b1 = bundle_doc(
        "b1",
        "{image: img1, replicas: 2, replicasPerHost: 1, priority: 1, needs: {cpu: 0}, \
         promotable: {maxPromoted: 2, maxPromotedPerNode: 1, promote: [p], demote: [d], role: [r]}}",
    );
    let off = &constraint(
        "b0-off-n0",
        "location: {bundle: b0, node: n0, score: -INFINITY}",
    );
    let with = &constraint(
        "b0-with-primary",
        "colocation: {bundle: b0, with: b1, score: INFINITY, role: promoted}",
    );
    let pair = group("pair", "b0, b1");
    let nodes = [
        ("n0", "{cpu: 0}"),
        ("n1", "{cpu: 2, memory: 1}"),
        ("n2", "{cpu: 0, memory: 1}"),
        ("n3", "{cpu: 2, memory: 1}"),
    ];
    let docs: [&str; 5] = [&b0, &b1, off, with, &pair];
    let s = capacity_set("utilization", &nodes, &docs, true);
    let o = observed(
        "nodes:\n  n0: {instances: [{bundle: b1, index: 2, specHash: old, role: {promoted: true}}]}\n  \
         n1: {}\n  n2: {}\n  n3: {}\n",
    );
    let p = run(&s, &o);
    converges(&s, &o, &p);
}

#[test]
fn a_dependent_of_the_primary_it_runs_beside_settles_in_one_plan() {
    // Found by the property tests (seed 32, 20,000 cases, once a dependent joined first
    // the instances it runs beside): the case above with b0 following only b1's promoted
    // instance. b1-1 and b1-2 both report themselves promoted on n1, and both restart for
    // a spec change. Placement counts b0's needs with b1-1, so b1-1 is promoted again
    // after its restart (before, the first round promoted b1-0, new on n2, where b0 has
    // no room; the rounds then settled on no primary at all, and b1, which must start
    // after b0, stopped everywhere).
    b1_restarts_beside_a_dependent_of_its_primary(true);
}

#[test]
fn replicas_restarted_beside_a_dependent_of_the_primary_settle_in_one_plan() {
    // Found by the property tests (seed 32, 20,000 cases, once the case above settled):
    // the case above with b1-1 and b1-2 running as replicas. The first round, which
    // leaves the colocation with the promoted role out, places b1-0 on n2 and promotes
    // it; n2 has no room for b0 beside it, so b0 went nowhere, b1, which must start
    // after b0, stopped everywhere, and the next plan started them all. Now the rounds
    // start over with b1-0 passed over, and promote b1-1 on n1, where b0 fits.
    b1_restarts_beside_a_dependent_of_its_primary(false);
}

/// b0 follows b1's promoted instance and starts before b1; b1-1 and b1-2 run on n1,
/// `promoted` or replicas, and restart for a spec change. Only n1 has room for b0 beside
/// a b1. One plan must settle it.
fn b1_restarts_beside_a_dependent_of_its_primary(promoted: bool) {
    let b0 = bundle_doc("b0", "{image: img0, needs: {memory: 1}}");
    let b1 = bundle_doc(
        "b1",
        "{image: img1, replicas: 3, replicasPerHost: 2, update: {maxParallel: 10}, \
         needs: {memory: 1}, \
         promotable: {maxPromoted: 1, maxPromotedPerNode: 1, promote: [p], demote: [d], role: [r]}}",
    );
    let with = &constraint(
        "b0-with-primary",
        "colocation: {bundle: b0, with: b1, score: INFINITY, role: promoted}",
    );
    let order = &constraint("b0-then-b1", "order: {first: b0, then: b1}");
    let nodes = [("n1", "{memory: 4}"), ("n2", "{memory: 1}")];
    let docs: [&str; 4] = [&b0, &b1, with, order];
    let s = capacity_set("utilization", &nodes, &docs, true);
    let o = observed(&format!(
        "nodes:\n  n1: {{instances: [{{bundle: b1, index: 1, specHash: old, role: {{promoted: {promoted}}}}}, \
         {{bundle: b1, index: 2, specHash: old, role: {{promoted: {promoted}}}}}]}}\n  n2: {{}}\n",
    ));
    let p = run(&s, &o);
    // b0 starts beside the primary, on n1, the one node with room for it.
    assert!(
        starts(&p).contains(&("b0-0".into(), "n1".into())),
        "{:#?}",
        p.actions
    );
    converges(&s, &o, &p);
}

#[test]
#[ignore = "known to fail: the rounds that decide the primaries do not settle (issue 18)"]
fn a_primary_restarted_where_its_dependent_has_no_room_settles_in_one_plan() {
    // Found by the property tests (seed 32, 20,000 cases): b2 must run with b0's
    // promoted instance and only n4 has the cpu it needs; b1, then b0, start after b2.
    // b0-0 runs promoted on n1 and restarts for a spec change. The first round keeps it
    // there and promotes it, b2 then goes nowhere, and everything after it stops; the
    // next plan starts b0-0 on n4 with b2.
    let b0 = bundle_doc(
        "b0",
        "{image: img0, replicas: 2, replicasPerHost: 1, needs: {cpu: 0}, \
         promotable: {maxPromoted: 1, maxPromotedPerNode: 1, promote: [p], demote: [d], role: [r]}}",
    );
    let b1 = bundle_doc("b1", "{image: img1, needs: {cpu: 0}}");
    let b2 = bundle_doc("b2", "{image: img2, needs: {cpu: 1}}");
    let with = &constraint(
        "b2-with-primary",
        "colocation: {bundle: b2, with: b0, score: INFINITY, role: promoted}",
    );
    let order = &constraint(
        "after-b2",
        "order: {sets: [{bundles: [b2, b1], sequential: true, requireAll: false}, {bundles: [b0]}]}",
    );
    let nodes = [("n1", "{cpu: 0}"), ("n2", "{cpu: 0}"), ("n4", "{cpu: 5}")];
    let docs: [&str; 5] = [&b0, &b1, &b2, with, order];
    let s = capacity_set("utilization", &nodes, &docs, true);
    let o = observed(
        "nodes:\n  n1: {instances: [{bundle: b0, index: 0, specHash: old, role: {promoted: true}}]}\n  \
         n2: {}\n  n4: {}\n",
    );
    let p = run(&s, &o);
    converges(&s, &o, &p);
}

#[test]
fn a_primary_whose_dependents_are_blocked_settles_in_one_plan() {
    // Found by the property tests (seed 1, 20,000 cases, the suspension property, on
    // efd7868 too). b0 must run with b1 and start before it; only n3 has room for a pair
    // and b0 prefers n2 (30). The first plan puts b1-0 and b0-0 on n3, b1-1 on n2 and
    // b1-2 on n1 (no node has room for them with a b0, so their own needs decide); b0-1
    // and b0-2 are blocked. The second plan placed b1-1 first (it scores 30 on n2),
    // asked room for a b0 beside it (b1 cannot run without b0, so even on its own node),
    // found it on n3, and swapped b1-0 and b1-1. Now b1-0, whose b0 runs beside it,
    // keeps its node first.
    let b0 = bundle_doc(
        "b0",
        "{image: img0, replicas: 3, replicasPerHost: 1, needs: {memory: 1}}",
    );
    let b1 = bundle_doc(
        "b1",
        "{image: img1, replicas: 3, replicasPerHost: 1, needs: {memory: 1}}",
    );
    let prefer = &constraint("b0-on-n2", "location: {bundle: b0, node: n2, score: 30}");
    let with = &constraint(
        "b0-with-b1",
        "colocation: {bundle: b0, with: b1, score: INFINITY}",
    );
    let order = &constraint("b0-then-b1", "order: {first: b0, then: b1}");
    let nodes = [
        ("n0", "{cpu: 0}"),
        ("n1", "{memory: 1}"),
        ("n2", "{memory: 1}"),
        ("n3", "{cpu: 6, memory: 4}"),
    ];
    let docs: [&str; 5] = [&b0, &b1, prefer, with, order];
    let s = capacity_set("utilization", &nodes, &docs, true);
    let o = Observed::fresh(&s);
    let p = run(&s, &o);
    converges(&s, &o, &p);
}

#[test]
fn a_dependent_that_runs_nowhere_joins_a_primary_with_room_for_it() {
    // Found by the property tests (seed 1, 20,000 cases, the suspension property, once
    // the case above settled). b1 must run with a b0 and needs cpu 2; b0-0 runs on n3,
    // which has no cpu, and b0-1 on n1, which has room for b1; b0 prefers n1 and n2.
    // b1's needs were counted with b0-0, the lowest number, which kept b0-0 off n2 (cpu
    // 1); b1-0 then went beside b0-1, and the next plan, counting b1 there, moved b0-0.
    let b0 = bundle_doc(
        "b0",
        "{image: img0, replicas: 2, replicasPerHost: 1, stickiness: 1, needs: {memory: 1}}",
    );
    let b1 = bundle_doc("b1", "{image: img1, needs: {cpu: 2}}");
    let with = &constraint(
        "b1-with-b0",
        "colocation: {bundle: b1, with: b0, score: INFINITY}",
    );
    let n1 = &constraint("b0-on-n1", "location: {bundle: b0, node: n1, score: 30}");
    let n2 = &constraint("b0-on-n2", "location: {bundle: b0, node: n2, score: 30}");
    let nodes = [
        ("n1", "{cpu: 4, memory: 3}"),
        ("n2", "{cpu: 1, memory: 2}"),
        ("n3", "{cpu: 0}"),
    ];
    let docs: [&str; 5] = [&b0, &b1, with, n1, n2];
    let s = capacity_set("utilization", &nodes, &docs, true);
    let o = observed(&format!(
        "nodes:\n  n1: {{instances: [{{bundle: b0, index: 1, specHash: {}}}]}}\n  \
         n2: {{}}\n  n3: {{instances: [{{bundle: b0, index: 0, specHash: {}}}]}}\n",
        hash(&s, "b0", 1),
        hash(&s, "b0", 0),
    ));
    let p = run(&s, &o);
    assert_eq!(
        summary(&p),
        [
            (ActionType::Move, "b0-0".into(), "n2".into()),
            (ActionType::Start, "b1-0".into(), "n1".into()),
        ]
    );
    converges(&s, &o, &p);
}

#[test]
fn an_exited_primary_restarts_where_its_dependent_has_no_room_beside_it() {
    // Selection first asks whether a node has room for what the instance needs at least
    // there: with a dependent that must join it and runs nowhere yet, both their needs,
    // except on the node the instance is on, which its dependents never make it leave.
    // b0-0 exited on n1 (so its needs are not counted there from the start), which has
    // room for b0 and not for b1 as well; n2 has room for both.
    let b0 = bundle_doc("b0", "{image: img0, needs: {cpu: 2}}");
    let b1 = bundle_doc("b1", "{image: img1, needs: {cpu: 2}}");
    let with = &constraint(
        "b1-with-b0",
        "colocation: {bundle: b1, with: b0, score: INFINITY}",
    );
    let nodes = [("n1", "{cpu: 3}"), ("n2", "{cpu: 4}")];
    let docs: [&str; 3] = [&b0, &b1, with];
    let s = capacity_set("utilization", &nodes, &docs, true);
    let o = observed(&format!(
        "nodes:\n  n1: {{instances: [{{bundle: b0, index: 0, specHash: {}, state: stopped}}]}}\n  n2: {{}}\n",
        hash(&s, "b0", 0),
    ));
    let p = run(&s, &o);
    let placed: Vec<_> = summary(&p).into_iter().map(|(_, i, n)| (i, n)).collect();
    assert_eq!(placed, [("b0-0".to_string(), "n1".to_string())], "{p:#?}");
}

#[test]
fn a_primary_that_needs_nothing_keeps_its_dependent_where_it_runs() {
    // Found by the property tests (seed 32, 20,000 cases). b0 must run with a b1 and
    // start before it, and only n0 has the memory b0 needs; b1 needs nothing. b1-1
    // failed too often on n1, so it moves to n0, and b0 joins it there. The next plan
    // counted b0's needs with b1-0 (the lowest number), as b1's instances were not
    // counted where they run (b1 needs nothing), and swapped b1-0 and b1-1.
    let b0 = bundle_doc("b0", "{image: img0, needs: {memory: 1}}");
    let b1 = bundle_doc("b1", "{image: img1, replicas: 2, replicasPerHost: 1}");
    let with = &constraint(
        "b0-with-b1",
        "colocation: {bundle: b0, with: b1, score: INFINITY}",
    );
    let order = &constraint("b0-then-b1", "order: {first: b0, then: b1}");
    let nodes = [
        ("n0", "{memory: 1}"),
        ("n1", "{cpu: 0}"),
        ("n2", "{cpu: 0}"),
    ];
    let docs: [&str; 4] = [&b0, &b1, with, order];
    let s = capacity_set("utilization", &nodes, &docs, true);
    let o = observed(&format!(
        "now: 1010\nnodes:\n  n0: {{}}\n  n1: {{instances: [{{bundle: b1, index: 1, specHash: {}}}], \
         failures: {{b1-1: {{count: 3, last: 1000}}}}}}\n  n2: {{}}\n",
        hash(&s, "b1", 1),
    ));
    let p = run(&s, &o);
    assert!(
        starts(&p).contains(&("b0-0".into(), "n0".into())),
        "{:#?}",
        p.actions
    );
    converges(&s, &o, &p);
}

#[test]
#[ignore = "known to fail: the rounds that decide the primaries do not settle (issue 18)"]
fn a_primary_restarted_where_its_dependent_cannot_follow_settles_in_one_plan() {
    // Found by the property tests (seed 7, 20,000 cases; on bb28725 too). b0 must run
    // with b1's promoted instance and start before b1, and only n3 has the cpu b0
    // needs. b1-1 runs promoted on n4, which has none, and restarts for a spec change.
    // The rounds go back and forth between promoting b1-0 (new) and b1-1 (promoted now,
    // kept on n4), and do not settle: after six rounds every bundle that follows b1's
    // primary is placed nowhere and everything waits; the next plan starts them. As in
    // `a_primary_restarted_where_its_dependent_has_no_room_settles_in_one_plan`, b1-1
    // runs promoted, so the rounds do not pass it over.
    let b0 = bundle_doc("b0", "{image: img0, stickiness: 1, needs: {cpu: 1}}");
    let b1 = bundle_doc(
        "b1",
        "{image: img1, replicas: 2, replicasPerHost: 1, stickiness: 1, \
         promotable: {maxPromoted: 1, maxPromotedPerNode: 1, promote: [p], demote: [d], role: [r]}}",
    );
    let with = &constraint(
        "b0-with-primary",
        "colocation: {bundle: b0, with: b1, score: INFINITY, role: promoted}",
    );
    let order = &constraint("b0-then-b1", "order: {first: b0, then: b1}");
    let nodes = [
        ("n0", "{cpu: 0}"),
        ("n1", "{cpu: 0}"),
        ("n2", "{cpu: 0}"),
        ("n3", "{cpu: 3}"),
        ("n4", "{cpu: 0}"),
    ];
    let docs: [&str; 4] = [&b0, &b1, with, order];
    let s = capacity_set("utilization", &nodes, &docs, true);
    let o = observed(
        "now: 1010\nnodes:\n  n0: {}\n  n1: {}\n  n2: {}\n  n3: {}\n  \
         n4: {instances: [{bundle: b1, index: 1, specHash: old, role: {promoted: true}}]}\n",
    );
    let p = run(&s, &o);
    converges(&s, &o, &p);
}

#[test]
fn a_group_is_placed_as_one_at_the_turn_of_its_first_member() {
    // db (priority 10) counts app's needs with its own, and only n1 holds both. batch
    // may not use n2, and its priority is between theirs: placed between them, it would
    // take the room db kept for app on n1. A group is placed as one, at db's turn, so
    // batch finds n1 full instead.
    let db = bundle_doc("db", "{image: db, priority: 10, needs: {cpu: 1}}");
    let app = bundle_doc("app", "{image: app, needs: {cpu: 2}}");
    let batch = bundle_doc("batch", "{image: batch, priority: 5, needs: {cpu: 2}}");
    let stack = group("stack", "db, app");
    let off_n2 = &constraint(
        "batch-off-n2",
        "location: {bundle: batch, node: n2, score: -INFINITY}",
    );
    let nodes = [("n1", "{cpu: 4}"), ("n2", "{cpu: 2}")];
    let docs: [&str; 5] = [&db, &app, &batch, &stack, off_n2];
    let s = capacity_set("utilization", &nodes, &docs, true);
    let o = Observed::fresh(&s);
    let p = run(&s, &o);
    assert_eq!(
        starts(&p),
        [("db-0".into(), "n1".into()), ("app-0".into(), "n1".into())]
    );
    let blocked: Vec<&str> = p.blocked.iter().map(|b| b.instance.as_str()).collect();
    assert_eq!(blocked, ["batch-0"], "{:#?}", p.blocked);
    converges(&s, &o, &p);
}

#[test]
fn a_then_of_higher_priority_leaves_room_for_its_first() {
    // worker (priority 1) is placed before queue, the `first` it needs, and would take
    // the cpu queue needs on both nodes; queue gets a node and worker the room left, in
    // one plan.
    let queue = bundle_doc("queue", "{image: q, needs: {cpu: 3}}");
    let worker = bundle_doc(
        "worker",
        "{image: w, replicas: 2, priority: 1, needs: {cpu: 1}}",
    );
    let order = &constraint("queue-then-worker", "order: {first: queue, then: worker}");
    let nodes = [("n1", "{cpu: 3}"), ("n2", "{cpu: 3}")];
    let s = capacity_set("utilization", &nodes, &[&queue, &worker, order], true);
    let o = Observed::fresh(&s);
    let p = run(&s, &o);
    assert_eq!(
        starts(&p),
        [
            ("queue-0".into(), "n1".into()),
            ("worker-0".into(), "n2".into())
        ]
    );
    converges(&s, &o, &p);
}

#[test]
fn a_freed_bundle_has_the_room_of_an_instance_it_pushes_away() {
    // Found by `plan_properties` (30,000 cases). worker needs queue to run (mandatory
    // order) but queue avoids worker (-INFINITY), and worker is placed first. Spread over
    // both nodes, worker leaves queue nowhere, so worker is starved; queue then takes
    // both nodes, and a last round places worker in what queue leaves. There worker
    // takes n2, pushing queue-0 to n3: queue-0 must not go on claiming n2's memory,
    // which would keep worker-1 off n2 in this plan and let the next plan start it.
    let queue = bundle_doc("queue", "{image: q, replicas: 2, needs: {memory: 1}}");
    let worker = bundle_doc(
        "worker",
        "{image: w, replicas: 2, replicasPerHost: 2, needs: {memory: 2}}",
    );
    let order = &constraint("queue-then-worker", "order: {first: queue, then: worker}");
    let apart = &constraint(
        "queue-not-with-worker",
        "colocation: {bundle: queue, with: worker, score: -INFINITY}",
    );
    let nodes = [("n2", "{memory: 4}"), ("n3", "{memory: 2}")];
    let s = capacity_set(
        "utilization",
        &nodes,
        &[&queue, &worker, order, apart],
        true,
    );
    let o = Observed::fresh(&s);
    let p = run(&s, &o);
    assert_eq!(
        starts(&p),
        [
            ("queue-0".into(), "n3".into()),
            ("worker-0".into(), "n2".into()),
            ("worker-1".into(), "n2".into())
        ]
    );
    converges(&s, &o, &p);
}

#[test]
fn a_freed_bundle_keeps_the_others_where_the_round_before_put_them() {
    // Found by `plan_properties` (100,000 cases). worker (priority 2, placed first) needs
    // queue to run; queue must run with store, and failed too often on n2. Placed first,
    // worker takes n1, store the emptier n2, and queue has no node: worker is starved.
    // The next round puts store and queue on n1, and a last round places worker with
    // store and queue claiming n1. They keep their stickiness there, as they will when
    // they run there in the next plan, so store does not go back to the emptier n2 and
    // worker starts in this plan (it used to be left starved, for the next plan to start).
    let queue = bundle_doc("queue", "{image: q}");
    let store = bundle_doc("store", "{image: s}");
    let worker = bundle_doc("worker", "{image: w, priority: 2}");
    let order = &constraint("queue-then-worker", "order: {first: queue, then: worker}");
    let with = &constraint(
        "queue-with-store",
        "colocation: {bundle: queue, with: store, score: INFINITY}",
    );
    let nodes = [("n1", "{cpu: 1}"), ("n2", "{cpu: 1}")];
    let s = capacity_set(
        "default",
        &nodes,
        &[&queue, &store, &worker, order, with],
        true,
    );
    let o = observed(&format!(
        "now: 1010\nnodes:\n  n1: {{}}\n  n2: {{instances: [{{bundle: queue, index: 0, specHash: {}}}], failures: {{queue-0: {{count: 3, last: 1000}}}}}}\n",
        hash(&s, "queue", 0)
    ));
    let p = run(&s, &o);
    assert_eq!(
        starts(&p),
        [
            ("store-0".into(), "n1".into()),
            ("worker-0".into(), "n1".into())
        ]
    );
    assert_eq!(
        summary(&p)[0],
        (ActionType::Move, "queue-0".into(), "n1".into())
    );
    assert!(p.blocked.is_empty(), "{:#?}", p.blocked);
    converges(&s, &o, &p);
}

#[test]
fn a_then_its_first_must_run_beside_is_tried_again_unstarved() {
    // Found by `plan_properties` (100,000 cases). queue must run beside worker and
    // store, and before worker. Placed first (priority 2), worker takes n1 and store the
    // emptier n2, so queue has no node and worker is starved; but starved, worker leaves
    // queue no node at all, whatever the next round does. A last round places worker
    // again with store where the round before put it: all three start on n1 in this
    // plan (worker used to stay starved until the next plan).
    let queue = bundle_doc("queue", "{image: q}");
    let store = bundle_doc("store", "{image: s}");
    let worker = bundle_doc("worker", "{image: w, priority: 2}");
    let order = &constraint("queue-then-worker", "order: {first: queue, then: worker}");
    let with_store = &constraint(
        "queue-with-store",
        "colocation: {bundle: queue, with: store, score: INFINITY}",
    );
    let with_worker = &constraint(
        "queue-with-worker",
        "colocation: {bundle: queue, with: worker, score: INFINITY}",
    );
    let nodes = [("n1", "{cpu: 1}"), ("n2", "{cpu: 1}")];
    let docs: [&str; 6] = [&queue, &store, &worker, order, with_store, with_worker];
    let s = capacity_set("default", &nodes, &docs, true);
    let o = Observed::fresh(&s);
    let p = run(&s, &o);
    assert_eq!(
        starts(&p),
        [
            ("queue-0".into(), "n1".into()),
            ("store-0".into(), "n1".into()),
            ("worker-0".into(), "n1".into())
        ]
    );
    assert!(p.blocked.is_empty(), "{:#?}", p.blocked);
    converges(&s, &o, &p);
}

#[test]
fn a_running_instance_that_leaves_gives_its_room_to_those_placed_before_it() {
    // old runs on n1 but may no longer run there; new, placed first (priority 1), prefers
    // n1, where old's memory is. Both fit only with new on n1 and old on n2: old moves
    // and new starts in its place, in one plan (new is not sent to n2 to leave old
    // nowhere).
    let new = bundle_doc("new", "{image: newimg, priority: 1, needs: {memory: 2}}");
    let old = bundle_doc("old", "{image: oldimg, needs: {memory: 2}}");
    let away = constraint(
        "old-not-n1",
        "location: {bundle: old, node: n1, score: -INFINITY}",
    );
    let prefer = constraint("new-on-n1", "location: {bundle: new, node: n1, score: 100}");
    let nodes = [("n1", "{memory: 2}"), ("n2", "{memory: 2}")];
    let s = capacity_set("utilization", &nodes, &[&new, &old, &away, &prefer], true);
    let o = observed(&format!(
        "nodes:\n  n1: {{instances: [{{bundle: old, index: 0, specHash: {}}}]}}\n  n2: {{}}\n",
        hash(&s, "old", 0)
    ));
    let p = run(&s, &o);
    assert_eq!(
        summary(&p),
        [
            (ActionType::Start, "new-0".into(), "n1".into()),
            (ActionType::Move, "old-0".into(), "n2".into())
        ]
    );
    // new starts on n1 only once old has stopped there.
    let step = |old: bool| {
        p.steps.iter().find(|x| match &x.op {
            StepOp::Stop { bundle, .. } => old && bundle.as_str() == "old",
            StepOp::Start { bundle, .. } => !old && bundle.as_str() == "new",
            _ => false,
        })
    };
    let (stop, start) = (step(true).unwrap(), step(false).unwrap());
    assert!(start.after.contains(&stop.id), "{:#?}", p.steps);
    converges(&s, &o, &p);
}

#[test]
fn a_start_waits_for_the_stop_that_frees_its_capacity() {
    // batch is scaled down to 1: batch-1 stops on n1, and db-0, which needs the memory it
    // held, starts there only after that stop.
    let batch = bundle_doc("batch", "{image: job, needs: {memory: 4096}}");
    let db = bundle_doc("db", "{image: pg, needs: {memory: 4096}}");
    let nodes = [("n1", "{memory: 4096}"), ("n2", "{memory: 4096}")];
    let s = capacity_set("utilization", &nodes, &[&batch, &db], true);
    let o = observed(&format!(
        "nodes:\n  n1: {{instances: [{{bundle: batch, index: 1, specHash: {}}}]}}\n  n2: {{instances: [{{bundle: batch, index: 0, specHash: {}}}]}}\n",
        hash(&s, "batch", 1),
        hash(&s, "batch", 0)
    ));
    let p = run(&s, &o);
    let stop = p
        .steps
        .iter()
        .find(|x| matches!(&x.op, StepOp::Stop { bundle, .. } if bundle.as_str() == "batch"))
        .unwrap();
    let start = p
        .steps
        .iter()
        .find(|x| matches!(&x.op, StepOp::Start { bundle, node, .. } if bundle.as_str() == "db" && node.as_str() == "n1"))
        .unwrap();
    assert!(start.after.contains(&stop.id), "{:#?}", p.steps);
}

fn group(name: &str, members: &str) -> String {
    format!(
        "apiVersion: quorate.io/v1alpha1\nkind: Group\nmetadata: {{name: {name}}}\nspec: {{bundles: [{members}]}}\n"
    )
}

/// The node of every start step, by instance.
fn start_nodes(p: &Plan) -> std::collections::BTreeMap<String, String> {
    started_on(p).into_iter().collect()
}

#[test]
fn group_members_start_in_order_and_stop_in_reverse() {
    let s = spec(&[
        &bundle("db", 1),
        &bundle("app", 1),
        &bundle("web", 1),
        &group("stack", "db, app, web"),
    ]);
    let p = run(&s, &Observed::fresh(&s));
    let nodes = start_nodes(&p);
    assert_eq!(nodes.len(), 3, "{nodes:?}");
    assert!(
        nodes.values().all(|n| *n == nodes["db-0"]),
        "one node: {nodes:?}"
    );
    let start = |i| step_of(&p, "start", i);
    assert!(waits(&p, start("app-0"), start("db-0")));
    assert!(waits(&p, start("web-0"), start("app-0")));
    assert!(!waits(&p, start("db-0"), start("web-0")));
    // The node they run on goes into standby: the group moves, its members stopped in
    // reverse order (web, then app, then db) and started again in order.
    let o = observed(&format!(
        "nodes:\n  n1: {{standby: true, instances: [{}, {}, {}]}}\n  n2: {{}}\n  n3: {{}}\n",
        running(&s, "db", 0),
        running(&s, "app", 0),
        running(&s, "web", 0)
    ));
    let p = run(&s, &o);
    let stop = |i| step_of(&p, "stop", i);
    assert!(waits(&p, stop("db-0"), stop("app-0")));
    assert!(waits(&p, stop("app-0"), stop("web-0")));
    let nodes = start_nodes(&p);
    assert!(
        nodes.values().all(|n| *n == nodes["db-0"] && n != "n1"),
        "{nodes:?}"
    );
    // The reasons of the generated order name the group.
    let explained = plan(
        &s,
        &o,
        &Options {
            explain: true,
            ..Options::default()
        },
    );
    let text =
        quorate::plan::render::render(&explained, quorate::plan::render::Format::Human, true);
    assert!(text.contains("group stack: app with db"), "{text}");
}

#[test]
fn group_member_that_cannot_run_stops_the_members_after_it() {
    // Pacemaker: in a group db, app, web on one node, app fails too often there and no
    // other node may take the group: app and web stop, db keeps running.
    let s = spec(&[
        &bundle("db", 1),
        &bundle("app", 1),
        &bundle("web", 1),
        &group("stack", "db, app, web"),
    ]);
    let o = observed(&format!(
        "now: 1010\nnodes:\n  n1: {{instances: [{}, {}, {}], failures: {{app-0: {{count: 3, last: 1000}}}}}}\n  n2: {{standby: true}}\n  n3: {{standby: true}}\n",
        running(&s, "db", 0),
        running(&s, "app", 0),
        running(&s, "web", 0)
    ));
    let p = run(&s, &o);
    let mut sum = summary(&p);
    sum.sort();
    assert_eq!(
        sum,
        [
            (ActionType::Stop, "app-0".into(), "n1".into()),
            (ActionType::Stop, "web-0".into(), "n1".into()),
        ]
    );
    // web stops before app (the group stops in reverse).
    assert!(waits(
        &p,
        step_of(&p, "stop", "app-0"),
        step_of(&p, "stop", "web-0")
    ));
    assert!(
        p.blocked
            .iter()
            .any(|b| b.instance == "web-0" && b.reason.contains("app")),
        "{:#?}",
        p.blocked
    );
}

#[test]
fn location_on_group_moves_the_whole_group() {
    // A location on the group applies to its first member; the others follow it.
    let s = spec(&[
        &bundle("db", 1),
        &bundle("app", 1),
        &group("stack", "db, app"),
        &constraint(
            "stack-on-n2",
            "location: {bundle: stack, node: n2, score: 500}",
        ),
    ]);
    let o = observed(&format!(
        "nodes:\n  n1: {{instances: [{}, {}]}}\n  n2: {{}}\n  n3: {{}}\n",
        running(&s, "db", 0),
        running(&s, "app", 0)
    ));
    let p = run(&s, &o);
    let mut sum = summary(&p);
    sum.sort();
    assert_eq!(
        sum,
        [
            (ActionType::Move, "app-0".into(), "n2".into()),
            (ActionType::Move, "db-0".into(), "n2".into()),
        ]
    );
    // A -INFINITY location on the group keeps every member off that node.
    let s = spec(&[
        &bundle("db", 1),
        &bundle("app", 1),
        &group("stack", "db, app"),
        &constraint(
            "not-n1",
            "location: {bundle: stack, node: n1, score: -INFINITY}",
        ),
        &constraint(
            "app-likes-n1",
            "location: {bundle: app, node: n1, score: 1000}",
        ),
    ]);
    let nodes = start_nodes(&run(&s, &Observed::fresh(&s)));
    assert!(
        nodes.values().all(|n| n != "n1") && nodes["db-0"] == nodes["app-0"],
        "{nodes:?}"
    );
}

#[test]
fn a_group_in_colocations_and_orders_stands_for_its_first_or_last_member() {
    // `cache with stack` (INFINITY) follows the group's last member; an order with the
    // group first waits for its last member.
    let s = spec(&[
        &bundle("db", 1),
        &bundle("app", 1),
        &bundle("cache", 1),
        &group("stack", "db, app"),
        &constraint(
            "cache-with-stack",
            "colocation: {bundle: cache, with: stack, score: INFINITY}",
        ),
        &constraint("stack-then-cache", "order: {first: stack, then: cache}"),
    ]);
    let p = run(&s, &Observed::fresh(&s));
    let nodes = start_nodes(&p);
    assert!(nodes.values().all(|n| *n == nodes["db-0"]), "{nodes:?}");
    assert!(waits(
        &p,
        step_of(&p, "start", "cache-0"),
        step_of(&p, "start", "app-0")
    ));
}

#[test]
fn sequential_order_set_chains_members() {
    // Pacemaker's ordered set a, b, c: b after a, c after b; a set that is not
    // sequential is unordered inside, and ordered as a whole against the next set.
    let s = spec(&[
        &bundle("a", 1),
        &bundle("b", 1),
        &bundle("c", 1),
        &bundle("d", 1),
        &constraint("chain", "order: {sets: [{bundles: [a, b, c]}]}"),
    ]);
    let p = run(&s, &Observed::fresh(&s));
    let start = |i| step_of(&p, "start", i);
    assert!(waits(&p, start("b-0"), start("a-0")));
    assert!(waits(&p, start("c-0"), start("b-0")));
    let s = spec(&[
        &bundle("a", 1),
        &bundle("b", 1),
        &bundle("c", 1),
        &constraint(
            "fan",
            "order: {sets: [{bundles: [a, b], sequential: false}, {bundles: [c]}]}",
        ),
    ]);
    let p = run(&s, &Observed::fresh(&s));
    let start = |i| step_of(&p, "start", i);
    assert!(waits(&p, start("c-0"), start("a-0")) && waits(&p, start("c-0"), start("b-0")));
    assert!(!waits(&p, start("b-0"), start("a-0")) && !waits(&p, start("a-0"), start("b-0")));
}

#[test]
fn colocation_set_places_each_bundle_with_the_one_before_it_and_each_set_with_the_next() {
    // Pacemaker's colocation sets: in set [a, b], b is placed with a; with two sets the
    // earlier set is placed with the later one (its first bundle with the later set's
    // last). A preference of `c` (the later set) takes everything along.
    let s = spec(&[
        &bundle("a", 1),
        &bundle("b", 1),
        &bundle("c", 1),
        &constraint(
            "together",
            "colocation: {score: INFINITY, sets: [{bundles: [a, b]}, {bundles: [c]}]}",
        ),
        &constraint("c-on-n3", "location: {bundle: c, node: n3, score: 300}"),
    ]);
    let nodes = start_nodes(&run(&s, &Observed::fresh(&s)));
    assert_eq!(
        nodes.get("a-0").map(String::as_str),
        Some("n3"),
        "{nodes:?}"
    );
    assert!(nodes.values().all(|n| n == "n3"), "{nodes:?}");
    // A negative sequential set keeps every member away from every other.
    let s = spec(&[
        &bundle("a", 1),
        &bundle("b", 1),
        &bundle("c", 1),
        &constraint(
            "apart",
            "colocation: {score: -INFINITY, sets: [{bundles: [a, b, c]}]}",
        ),
    ]);
    let nodes = start_nodes(&run(&s, &Observed::fresh(&s)));
    let distinct: std::collections::BTreeSet<&String> = nodes.values().collect();
    assert_eq!(distinct.len(), 3, "{nodes:?}");
}

#[test]
fn order_require_all_false_starts_then_when_any_first_runs() {
    // Pacemaker's require-all=false: c may start once a or b runs; a cannot run anywhere
    // (it may only use n1, which is in standby).
    let sets = |require_all: bool| {
        constraint(
            "any",
            &format!(
                "order: {{sets: [{{bundles: [a, b], sequential: false, requireAll: {require_all}}}, {{bundles: [c]}}]}}"
            ),
        )
    };
    let banned = constraint(
        "no-a",
        "location: {bundle: a, rule: {attribute: rack, operator: eq, value: b}, score: -INFINITY}",
    );
    let base = [bundle("a", 1), bundle("b", 1), bundle("c", 1), banned];
    let with = |extra: String| {
        let mut docs: Vec<&str> = base.iter().map(String::as_str).collect();
        docs.push(&extra);
        spec(&docs)
    };
    let s = with(sets(false));
    let n1_standby = observed("nodes:\n  n1: {standby: true}\n  n2: {}\n  n3: {}\n");
    let p = run(&s, &n1_standby);
    let nodes = start_nodes(&p);
    assert!(
        nodes.contains_key("b-0") && nodes.contains_key("c-0"),
        "{nodes:?}"
    );
    assert!(waits(
        &p,
        step_of(&p, "start", "c-0"),
        step_of(&p, "start", "b-0")
    ));
    // A running c stays while b runs, though a does not.
    let o = observed(&format!(
        "nodes:\n  n1: {{standby: true}}\n  n2: {{instances: [{}, {}]}}\n  n3: {{}}\n",
        running(&s, "b", 0),
        running(&s, "c", 0)
    ));
    assert!(run(&s, &o).actions.is_empty());
    // With every first required (the default), c waits for a.
    let s = with(sets(true));
    let p = run(&s, &n1_standby);
    assert!(!start_nodes(&p).contains_key("c-0"));
    assert!(
        p.blocked
            .iter()
            .any(|b| b.instance == "c-0" && b.reason.contains("waits for a")),
        "{:#?}",
        p.blocked
    );
}

#[test]
fn order_require_all_false_stops_then_only_when_no_first_runs() {
    let s = spec(&[
        &bundle("a", 1),
        &bundle("b", 1),
        &bundle("c", 1),
        &constraint(
            "no-a",
            "location: {bundle: a, rule: {attribute: rack, operator: eq, value: b}, score: -INFINITY}",
        ),
        &constraint(
            "no-b",
            "location: {bundle: b, rule: {attribute: rack, operator: eq, value: b}, score: -INFINITY}",
        ),
        &constraint(
            "any",
            "order: {sets: [{bundles: [a, b], sequential: false, requireAll: false}, {bundles: [c]}]}",
        ),
    ]);
    let o = observed(&format!(
        "nodes:\n  n1: {{standby: true}}\n  n2: {{instances: [{}]}}\n  n3: {{}}\n",
        running(&s, "c", 0)
    ));
    let p = run(&s, &o);
    assert_eq!(summary(&p), [(ActionType::Stop, "c-0".into(), "n2".into())]);
}

#[test]
fn a_held_instance_keeps_its_room_while_its_bundle_waits() {
    // worker-0 fails its check on n1 with onFail: block, and its `first` (queue) fits
    // nowhere, so worker waits; the held copy stays on n1 all the same (block means
    // neither moved nor stopped) and keeps its memory there: cache, placed before worker
    // and preferring n1, goes to n2 rather than over n1's capacity.
    let queue = bundle_doc("queue", "{image: queueimg, needs: {memory: 5}}");
    let worker = bundle_doc(
        "worker",
        "{image: workerimg, monitor: {onFail: block}, needs: {memory: 1}}",
    );
    let cache = bundle_doc(
        "cache",
        "{image: cacheimg, priority: 1, needs: {memory: 1}}",
    );
    let order = constraint("queue-then-worker", "order: {first: queue, then: worker}");
    let prefer = constraint(
        "cache-on-n1",
        "location: {bundle: cache, node: n1, score: 100}",
    );
    let nodes = [("n1", "{memory: 1}"), ("n2", "{memory: 1}")];
    let docs: [&str; 5] = [&queue, &worker, &cache, &order, &prefer];
    // (validate would refuse queue's needs; the planner must cope all the same.)
    let s = capacity_set("utilization", &nodes, &docs, false);
    let o = observed(&format!(
        "nodes:\n  n1: {{instances: [{{bundle: worker, index: 0, specHash: {}, state: failed}}]}}\n  n2: {{}}\n",
        hash(&s, "worker", 0)
    ));
    let p = run(&s, &o);
    assert_eq!(starts(&p), [("cache-0".into(), "n2".into())]);
    assert!(
        p.blocked.iter().any(|b| b.instance == "worker-0"),
        "{:#?}",
        p.blocked
    );
    converges(&s, &o, &p);
}

#[test]
fn a_colocation_cycle_moves_together_to_where_all_its_members_fit() {
    // web and cache must share a node both ways (a group, and web with cache); web runs
    // on n1, where cache's memory does not fit. Pacemaker places the pair where the
    // utilization of both fits: web moves to n2 and cache starts beside it, in one plan
    // (web is not kept on n1 only to be taken off by the cycle, blocked for a plan).
    let web = bundle_doc("web", "{image: webimg, priority: 2, needs: {memory: 1}}");
    let cache = bundle_doc("cache", "{image: cacheimg, needs: {memory: 1}}");
    let group = "apiVersion: quorate.io/v1alpha1\nkind: Group\nmetadata: {name: pair}\nspec: {bundles: [web, cache]}\n";
    let with = constraint(
        "web-with-cache",
        "colocation: {bundle: web, with: cache, score: INFINITY}",
    );
    let nodes = [("n1", "{memory: 1}"), ("n2", "{memory: 2}")];
    let docs: [&str; 4] = [&web, &cache, group, &with];
    let s = capacity_set("utilization", &nodes, &docs, true);
    let o = observed(&format!(
        "nodes:\n  n1: {{instances: [{{bundle: web, index: 0, specHash: {}}}]}}\n  n2: {{}}\n",
        hash(&s, "web", 0)
    ));
    let p = run(&s, &o);
    assert_eq!(
        summary(&p),
        [
            (ActionType::Move, "web-0".into(), "n2".into()),
            (ActionType::Start, "cache-0".into(), "n2".into())
        ]
    );
    converges(&s, &o, &p);
}

/// Found by `plan_properties` (its new promotable bundles changed the random cases): a
/// mandatory order `b1 -> b2` with `minInstances: 2` and `b1` colocated with `b2` by
/// `INFINITY`, under capacity, with `b2-0` running on a node `b1` does not fit. The first
/// plan stopped `b2-0` (too few `b1` placed) yet started both `b1` (its colocation with
/// the starved `b2` no longer held it back); the next plan started `b2` again. Since `b2`
/// cannot run without `b1`, it leaves a node too small for both, and the first plan
/// settles.
#[test]
fn a_starved_first_colocated_with_its_then_settles_in_one_plan() {
    let text = r#"apiVersion: quorate.io/v1alpha1
kind: Cluster
metadata: {name: c}
spec:
  nodes:
    - {name: n0, runtime: 'podman+unix:///n0', votes: 0, capacity: {cpu: 0}}
    - {name: n3, runtime: 'podman+unix:///n3', votes: 0, capacity: {cpu: 2, memory: 3}}
    - {name: n4, runtime: 'podman+unix:///n4', votes: 1, capacity: {cpu: 2, memory: 3}}
  placementStrategy: utilization
  quorum: {reconcilerVotes: 0}
  fencing: {enabled: false}
  defaults: {stickiness: 1}
---
apiVersion: quorate.io/v1alpha1
kind: Bundle
metadata: {name: b1}
spec: {image: img1, replicas: 2, recovery: restart, needs: {cpu: 0, memory: 1}}
---
apiVersion: quorate.io/v1alpha1
kind: Bundle
metadata: {name: b2}
spec: {image: img2, replicas: 2, recovery: restart, needs: {cpu: 0, memory: 0}}
---
apiVersion: quorate.io/v1alpha1
kind: Constraint
metadata: {name: ord0}
spec: {order: {first: b1, then: b2, kind: mandatory, minInstances: 2}}
---
apiVersion: quorate.io/v1alpha1
kind: Constraint
metadata: {name: cset}
spec: {colocation: {score: INFINITY, sets: [{bundles: [b2, b1]}]}}
"#;
    settles_in_one_plan(
        text,
        "nodes:\n  n0: {instances: [{bundle: b2, index: 0, specHash: old}]}\n  n3: {}\n  n4: {}\n",
    );
}

/// Found by `plan_properties` like the case above: a colocation cycle of `INFINITY`
/// (`b0` with `b1`, `b1` with `b0`) under capacity, with `b0-1` running on a node in
/// standby and another node lost. The first plan put `b1-0` beside `b0-1` and `b1-1`
/// beside `b0-0`; the next plan swapped them, as the room of a dependent that must join
/// an instance was looked for with the dependent's instance of the same number. It is now
/// any instance of the dependent on the node that no other instance there is joined by.
#[test]
fn a_colocation_cycle_under_capacity_settles_in_one_plan() {
    let text = r#"apiVersion: quorate.io/v1alpha1
kind: Cluster
metadata: {name: c}
spec:
  nodes:
    - {name: n0, runtime: 'podman+unix:///n0', votes: 1, attributes: {rack: r0}, capacity: {cpu: 0}}
    - {name: n1, runtime: 'podman+unix:///n1', votes: 0, attributes: {rack: r0}, capacity: {cpu: 0}}
    - {name: n2, runtime: 'podman+unix:///n2', votes: 0, attributes: {rack: r0}, capacity: {cpu: 0}}
    - {name: n3, runtime: 'podman+unix:///n3', votes: 0, attributes: {rack: r0}, capacity: {cpu: 1, memory: 1}}
    - {name: n4, runtime: 'podman+unix:///n4', votes: 0, attributes: {rack: r2}, capacity: {cpu: 2, memory: 1}}
    - {name: n5, runtime: 'podman+unix:///n5', votes: 0, attributes: {rack: r0}, capacity: {cpu: 0}}
  placementStrategy: utilization
  quorum: {reconcilerVotes: 0}
  fencing: {enabled: false}
  defaults: {stickiness: 1}
---
apiVersion: quorate.io/v1alpha1
kind: Bundle
metadata: {name: b0}
spec: {image: img0, replicas: 2, recovery: restart, needs: {cpu: 0, memory: 1}}
---
apiVersion: quorate.io/v1alpha1
kind: Bundle
metadata: {name: b1}
spec: {image: img1, replicas: 2, recovery: restart, priority: 1, needs: {cpu: 0, memory: 0}}
---
apiVersion: quorate.io/v1alpha1
kind: Constraint
metadata: {name: loc0}
spec: {location: {bundle: b0, rule: {attribute: rack, operator: eq, value: r0}, score: 30}}
---
apiVersion: quorate.io/v1alpha1
kind: Constraint
metadata: {name: col0}
spec: {colocation: {bundle: b0, with: b1, score: INFINITY}}
---
apiVersion: quorate.io/v1alpha1
kind: Constraint
metadata: {name: col1}
spec: {colocation: {bundle: b1, with: b0, score: INFINITY}}
"#;
    settles_in_one_plan(
        text,
        "now: 10000
nodes:
  n0: {since: 8000, standby: true, instances: [{bundle: b0, index: 1, specHash: old}]}
  n1: {since: 8000}
  n2: {state: lost, since: 8000}
  n3: {since: 8000}
  n4: {since: 8000}
  n5: {since: 8000}
",
    );
}

/// Found by `plan_properties` with `PROPTEST_CASES=3000 PROPTEST_RNG_SEED=11`: `b0`
/// colocated with `b1` by `INFINITY` and ordered before it (mandatory), under capacity,
/// with `b1-0` running on a node that has no room for `b0`. The first plan stopped `b1-0`
/// (`b0` fit nowhere beside it, and the needs of a dependent that must join `b1` never
/// made `b1` leave its node); the next plan started both on the node with room. A bundle
/// that runs only while such a dependent does now leaves a node too small for both: the
/// first plan starts `b0` on the node with room and moves `b1-0` there after it.
#[test]
fn a_primary_on_a_node_too_small_for_its_dependent_settles_in_one_plan() {
    let text = r#"apiVersion: quorate.io/v1alpha1
kind: Cluster
metadata: {name: c}
spec:
  nodes:
    - {name: n0, runtime: 'podman+unix:///n0', votes: 0, capacity: {cpu: 1, memory: 2}}
    - {name: n1, runtime: 'podman+unix:///n1', votes: 1, capacity: {cpu: 0}}
  placementStrategy: utilization
  quorum: {reconcilerVotes: 0}
  fencing: {enabled: false}
  defaults: {stickiness: 1}
---
apiVersion: quorate.io/v1alpha1
kind: Bundle
metadata: {name: b0}
spec: {image: img0, replicas: 1, recovery: restart, needs: {cpu: 0, memory: 1}}
---
apiVersion: quorate.io/v1alpha1
kind: Bundle
metadata: {name: b1}
spec: {image: img1, replicas: 1, recovery: restart, needs: {cpu: 0, memory: 0}}
---
apiVersion: quorate.io/v1alpha1
kind: Constraint
metadata: {name: col0}
spec: {colocation: {bundle: b0, with: b1, score: INFINITY}}
---
apiVersion: quorate.io/v1alpha1
kind: Constraint
metadata: {name: ord0}
spec: {order: {first: b0, then: b1, kind: mandatory}}
"#;
    let p = settles_in_one_plan(
        text,
        "nodes:\n  n0: {}\n  n1: {instances: [{bundle: b1, index: 0, specHash: old}]}\n",
    );
    assert_eq!(
        summary(&p),
        [
            (ActionType::Start, "b0-0".into(), "n0".into()),
            (ActionType::Move, "b1-0".into(), "n0".into())
        ]
    );
}

/// Two instances of a primary share a node that has room for one dependent: the second
/// must go where its own dependent fits too, since the first one's dependent takes that
/// room once placed (found by the property tests, seed 7; the first plan put both `b1`
/// instances on `n0`, and the second moved one and started the missing `b0` then).
#[test]
fn a_second_primary_leaves_room_for_the_first_ones_dependent_and_settles_in_one_plan() {
    let text = r#"apiVersion: quorate.io/v1alpha1
kind: Cluster
metadata: {name: c}
spec:
  nodes:
    - {name: n0, runtime: 'podman+unix:///n0', attributes: {rack: r1}, capacity: {memory: 1}}
    - {name: n1, runtime: 'podman+unix:///n1'}
    - {name: n2, runtime: 'podman+unix:///n2', capacity: {memory: 1}}
  placementStrategy: utilization
  fencing: {enabled: false}
---
apiVersion: quorate.io/v1alpha1
kind: Bundle
metadata: {name: b0}
spec: {image: img0, replicas: 2, replicasPerHost: 1, recovery: restart, needs: {memory: 1}}
---
apiVersion: quorate.io/v1alpha1
kind: Bundle
metadata: {name: b1}
spec: {image: img1, replicas: 2, replicasPerHost: 2, recovery: restart}
---
apiVersion: quorate.io/v1alpha1
kind: Constraint
metadata: {name: col0}
spec: {colocation: {bundle: b0, with: b1, score: INFINITY}}
---
apiVersion: quorate.io/v1alpha1
kind: Constraint
metadata: {name: ord0}
spec: {order: {first: b0, then: b1, kind: mandatory}}
---
apiVersion: quorate.io/v1alpha1
kind: Constraint
metadata: {name: loc0}
spec: {location: {bundle: b0, rule: {attribute: rack, operator: eq, value: r1}, score: 30}}
"#;
    let p = settles_in_one_plan(text, "nodes:\n  n0: {}\n  n1: {}\n  n2: {}\n");
    let mut placed = started_on(&p);
    placed.sort();
    let pairs = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(i, n)| (i.to_string(), n.to_string()))
            .collect()
    };
    assert_eq!(
        placed,
        pairs(&[
            ("b0-0", "n0"),
            ("b0-1", "n2"),
            ("b1-0", "n0"),
            ("b1-1", "n2")
        ])
    );
}

/// A colocation of score 0 asks nothing, and Pacemaker ignores it. It used to tie its two
/// bundles into a cycle placed by priority, so `b1` went before the primary it follows
/// (`role: promoted`): the primary then avoided `b1`'s node (fewest instances), which
/// moved the promoted instance away from `b1` in every round, and `b1` was blocked until
/// the next plan (found by the property tests, seed 4).
#[test]
fn a_colocation_of_score_zero_orders_nothing_and_the_follower_of_a_primary_settles() {
    let text = r#"apiVersion: quorate.io/v1alpha1
kind: Cluster
metadata: {name: c}
spec:
  nodes:
    - {name: n0, runtime: 'podman+unix:///n0'}
    - {name: n1, runtime: 'podman+unix:///n1'}
    - {name: n2, runtime: 'podman+unix:///n2'}
  fencing: {enabled: false}
---
apiVersion: quorate.io/v1alpha1
kind: Bundle
metadata: {name: b0}
spec: {image: img0, recovery: restart, promotable: {maxPromoted: 1, promote: [p], demote: [d], role: [r]}}
---
apiVersion: quorate.io/v1alpha1
kind: Bundle
metadata: {name: b1}
spec: {image: img1, recovery: restart, priority: 1}
---
apiVersion: quorate.io/v1alpha1
kind: Constraint
metadata: {name: col0}
spec: {colocation: {bundle: b1, with: b0, score: 30, role: promoted}}
---
apiVersion: quorate.io/v1alpha1
kind: Constraint
metadata: {name: col1}
spec: {colocation: {bundle: b0, with: b1, score: 0}}
"#;
    let p = settles_in_one_plan(text, "nodes:\n  n0: {}\n  n1: {}\n  n2: {}\n");
    let mut placed = started_on(&p);
    placed.sort();
    assert_eq!(
        placed,
        [
            ("b0-0".to_string(), "n0".to_string()),
            ("b1-0".into(), "n0".into())
        ]
    );
}

/// A dependent colocated with a primary twice, by `INFINITY` and by `INFINITY` with its
/// promoted instances: its needs count once with each instance of the primary. Counted
/// twice, they kept `b1-0` off `n4` while `b0-0` was counted on `n0` and not once it was
/// placed elsewhere, so which instance was promoted flipped each round and `b0` was
/// blocked until the next plan (found by the property tests, seed 8).
#[test]
fn a_dependent_colocated_twice_with_a_primary_counts_its_needs_once() {
    let text = r#"apiVersion: quorate.io/v1alpha1
kind: Cluster
metadata: {name: c}
spec:
  nodes:
    - {name: n0, runtime: 'podman+unix:///n0', capacity: {cpu: 5}}
    - {name: n1, runtime: 'podman+unix:///n1', capacity: {cpu: 0}}
    - {name: n2, runtime: 'podman+unix:///n2', capacity: {cpu: 1}}
    - {name: n4, runtime: 'podman+unix:///n4', attributes: {kernel: '5.0'}, capacity: {cpu: 6}}
  placementStrategy: utilization
  fencing: {enabled: false}
---
apiVersion: quorate.io/v1alpha1
kind: Bundle
metadata: {name: b0}
spec: {image: img0, replicas: 3, recovery: restart, needs: {cpu: 2}}
---
apiVersion: quorate.io/v1alpha1
kind: Bundle
metadata: {name: b1}
spec: {image: img1, replicas: 2, recovery: restart, needs: {cpu: 3}, promotable: {maxPromoted: 1, promote: [p], demote: [d], role: [r]}}
---
apiVersion: quorate.io/v1alpha1
kind: Constraint
metadata: {name: loc0}
spec: {location: {bundle: b1, rule: {attribute: kernel, operator: exists}, score: 30}}
---
apiVersion: quorate.io/v1alpha1
kind: Constraint
metadata: {name: col0}
spec: {colocation: {bundle: b0, with: b1, score: INFINITY, role: promoted}}
---
apiVersion: quorate.io/v1alpha1
kind: Constraint
metadata: {name: col1}
spec: {colocation: {bundle: b0, with: b1, score: INFINITY}}
"#;
    let p = settles_in_one_plan(
        text,
        "nodes:\n  n0: {instances: [{bundle: b0, index: 0, specHash: old}]}\n  n1: {}\n  n2: {standby: true}\n  n4: {}\n",
    );
    assert_eq!(node_of(&p, "b0-0").as_deref(), Some("n4"));
    assert_eq!(node_of(&p, "b1-0").as_deref(), Some("n4"));
}

/// A dependent that follows a primary's promoted instance by `INFINITY` and must run
/// before it (a mandatory order) is counted with the primary's instances: the primary
/// goes where the dependent, already running, fits beside it. Not counted (tried while
/// fixing the test above), `b1` went to the node with most room left by `b0`'s claim, `b0`
/// could not follow it there, and both waited for each other until the next plan
/// (property tests, seed 7).
#[test]
fn a_dependent_of_a_promoted_instance_is_counted_with_its_primary() {
    let text = r#"apiVersion: quorate.io/v1alpha1
kind: Cluster
metadata: {name: c}
spec:
  nodes:
    - {name: n2, runtime: 'podman+unix:///n2', capacity: {memory: 2}}
    - {name: n3, runtime: 'podman+unix:///n3', capacity: {memory: 3}}
  placementStrategy: balanced
  fencing: {enabled: false}
---
apiVersion: quorate.io/v1alpha1
kind: Bundle
metadata: {name: b0}
spec: {image: img0, recovery: restart, needs: {memory: 2}}
---
apiVersion: quorate.io/v1alpha1
kind: Bundle
metadata: {name: b1}
spec: {image: img1, recovery: restart, needs: {memory: 1}, promotable: {maxPromoted: 1, promote: [p], demote: [d], role: [r]}}
---
apiVersion: quorate.io/v1alpha1
kind: Constraint
metadata: {name: col0}
spec: {colocation: {bundle: b0, with: b1, score: INFINITY, role: promoted}}
---
apiVersion: quorate.io/v1alpha1
kind: Constraint
metadata: {name: ord0}
spec: {order: {first: b0, then: b1, kind: mandatory}}
"#;
    let p = settles_in_one_plan(
        text,
        "nodes:\n  n2: {}\n  n3: {instances: [{bundle: b0, index: 0, specHash: old}]}\n",
    );
    assert_eq!(node_of(&p, "b0-0").as_deref(), Some("n3"));
    assert_eq!(node_of(&p, "b1-0").as_deref(), Some("n3"));
}

/// Only the instances of a primary numbered below a dependent's replicas are joined by
/// it: here `b1-0`, not `b1-1`. When `b1-1`, still counted on `n1`, was taken to be the
/// one `b0-0` joins there, the next plan found no room on `n1` for `b1-0` with a
/// dependent of its own and moved it (property tests, seed 8).
#[test]
fn a_dependent_joins_only_the_instances_numbered_below_its_replicas() {
    let text = r#"apiVersion: quorate.io/v1alpha1
kind: Cluster
metadata: {name: c}
spec:
  nodes:
    - {name: n1, runtime: 'podman+unix:///n1', capacity: {cpu: 7}}
    - {name: n4, runtime: 'podman+unix:///n4', capacity: {cpu: 5}}
  placementStrategy: minimal
  fencing: {enabled: false}
---
apiVersion: quorate.io/v1alpha1
kind: Bundle
metadata: {name: b0}
spec: {image: img0, recovery: restart, needs: {cpu: 2}}
---
apiVersion: quorate.io/v1alpha1
kind: Bundle
metadata: {name: b1}
spec: {image: img1, replicas: 2, replicasPerHost: 2, recovery: restart, needs: {cpu: 2}}
---
apiVersion: quorate.io/v1alpha1
kind: Constraint
metadata: {name: col0}
spec: {colocation: {bundle: b0, with: b1, score: INFINITY}}
---
apiVersion: quorate.io/v1alpha1
kind: Constraint
metadata: {name: ord0}
spec: {order: {first: b0, then: b1, kind: mandatory}}
"#;
    let p = settles_in_one_plan(text, "nodes:\n  n1: {}\n  n4: {}\n");
    let mut placed = started_on(&p);
    placed.sort();
    let on_n1 = |i: &str| (i.to_string(), "n1".to_string());
    assert_eq!(placed, [on_n1("b0-0"), on_n1("b1-0"), on_n1("b1-1")]);
}

/// Found by the property tests (seed 7): `b0`, drawn to `b1`'s promoted instances (30),
/// runs on `n3`, where its claim leaves no room for `b1-1`. A round that placed `b1-1`
/// nowhere still scored `n3` for `b0` as if `b1-1` were promoted there (where the round
/// before had put it), so `b0` stayed, `b1-1` stayed out, and the primaries flipped every
/// round until `b0` was blocked. A primary placed nowhere in a round counts nowhere.
#[test]
fn a_primary_placed_nowhere_draws_no_follower() {
    let text = r#"apiVersion: quorate.io/v1alpha1
kind: Cluster
metadata: {name: c}
spec:
  nodes:
    - {name: n0, runtime: 'podman+unix:///n0', votes: 0, standby: false, attributes: {rack: r1, kernel: '5.5'}, capacity: {cpu: 0}}
    - {name: n1, runtime: 'podman+unix:///n1', votes: 0, standby: false, attributes: {rack: r0, kernel: '5.0'}, capacity: {cpu: 0}}
    - {name: n2, runtime: 'podman+unix:///n2', votes: 1, standby: false, attributes: {rack: r0, kernel: '5.0'}, capacity: {cpu: 5, memory: 1}}
    - {name: n3, runtime: 'podman+unix:///n3', votes: 0, standby: false, attributes: {rack: r0, kernel: '5.0'}, capacity: {cpu: 2}}
  placementStrategy: utilization
  quorum: {reconcilerVotes: 0, noQuorumPolicy: freeze}
  fencing: {enabled: false}
  defaults: {stickiness: 1, migrationThreshold: 3, failureTimeout: 10m}
---
apiVersion: quorate.io/v1alpha1
kind: Bundle
metadata: {name: b0}
spec: {image: img0, replicas: 1, replicasPerHost: 1, recovery: restart, priority: 0, update: {maxParallel: 10}, monitor: {onFail: ignore}, needs: {cpu: 1, memory: 0}}
---
apiVersion: quorate.io/v1alpha1
kind: Bundle
metadata: {name: b1}
spec: {image: img1, replicas: 3, replicasPerHost: 1, recovery: restart, priority: 0, update: {maxParallel: 10}, monitor: {onFail: restart}, needs: {cpu: 2, memory: 0}, promotable: {maxPromoted: 2, maxPromotedPerNode: 1, promote: [p], demote: [d], role: [r]}}
---
apiVersion: quorate.io/v1alpha1
kind: Constraint
metadata: {name: loc0}
spec: {location: {bundle: b0, rule: {and: [{attribute: kernel, operator: gte, value: '5.5', type: version}, {or: [{attribute: '#uname', operator: ne, value: n3}, {attribute: rack, operator: exists}]}]}, score: -INFINITY}}
---
apiVersion: quorate.io/v1alpha1
kind: Constraint
metadata: {name: loc1}
spec: {location: {bundle: b0, rule: {and: [{attribute: kernel, operator: gte, value: '5.5', type: version}, {or: [{attribute: '#uname', operator: ne, value: n0}, {attribute: rack, operator: exists}]}]}, score: -INFINITY}}
---
apiVersion: quorate.io/v1alpha1
kind: Constraint
metadata: {name: loc2}
spec: {location: {bundle: b0, rule: {and: [{attribute: kernel, operator: gte, value: '5.5', type: version}, {or: [{attribute: '#uname', operator: ne, value: n0}, {attribute: rack, operator: exists}]}]}, score: -INFINITY}}
---
apiVersion: quorate.io/v1alpha1
kind: Constraint
metadata: {name: loc3}
spec: {location: {bundle: b1, rule: {attribute: kernel, operator: lt, value: '5.1', type: string}, score: 30, role: promoted}}
---
apiVersion: quorate.io/v1alpha1
kind: Constraint
metadata: {name: col0}
spec: {colocation: {bundle: b0, with: b1, score: 30, role: promoted}}
"#;
    let p = settles_in_one_plan(
        text,
        "nodes:\n  n0: {}\n  n1: {}\n  n2: {}\n  n3: {instances: [{bundle: b0, index: 0, specHash: old}]}\n",
    );
    assert_eq!(node_of(&p, "b0-0").as_deref(), Some("n2"));
    assert_eq!(node_of(&p, "b1-1").as_deref(), Some("n3"));
}

/// Found by the property tests (seed 11): `b0`, drawn to `b1`'s promoted instance (30),
/// runs on `n0`, where `b1-1`'s stopped copy would restart. In a round where `b0` keeps
/// `n0`, `b1-1` goes to `n3` and is promoted; in the next, `b1-0` takes `n3` and `b1-1`
/// returns to `n0`: the same node promoted each time, by a different instance, so the
/// promoted instance the round before chose, placed nowhere now, drew `b0` nowhere and
/// the rounds never settled. It counts where it was promoted when another instance of
/// `b1` is placed there.
#[test]
fn a_follower_keeps_to_the_promoted_node_when_another_instance_takes_it() {
    let text = r#"apiVersion: quorate.io/v1alpha1
kind: Cluster
metadata: {name: c}
spec:
  nodes:
    - {name: n0, runtime: 'podman+unix:///n0', votes: 0, standby: false, attributes: {rack: r0, kernel: '5.0'}, capacity: {cpu: 1}}
    - {name: n1, runtime: 'podman+unix:///n1', votes: 0, standby: false, attributes: {rack: r0, kernel: '5.0'}, capacity: {cpu: 0}}
    - {name: n2, runtime: 'podman+unix:///n2', votes: 0, standby: false, attributes: {rack: r0, kernel: '5.0'}, capacity: {cpu: 0}}
    - {name: n3, runtime: 'podman+unix:///n3', votes: 1, standby: false, attributes: {rack: r0, kernel: '5.0'}, capacity: {cpu: 4, memory: 2}}
  placementStrategy: utilization
  quorum: {reconcilerVotes: 0, noQuorumPolicy: freeze}
  fencing: {enabled: false}
  defaults: {stickiness: 1, migrationThreshold: 3, failureTimeout: 10m}
---
apiVersion: quorate.io/v1alpha1
kind: Bundle
metadata: {name: b0}
spec: {image: img0, replicas: 1, replicasPerHost: 1, recovery: restart, priority: 0, update: {maxParallel: 10}, monitor: {onFail: restart}, needs: {cpu: 1, memory: 0}}
---
apiVersion: quorate.io/v1alpha1
kind: Bundle
metadata: {name: b1}
spec: {image: img1, replicas: 2, replicasPerHost: 1, recovery: restart, priority: 0, update: {maxParallel: 10}, monitor: {onFail: restart}, needs: {cpu: 1, memory: 0}, promotable: {maxPromoted: 1, maxPromotedPerNode: 1, promote: [p], demote: [d], role: [r]}}
---
apiVersion: quorate.io/v1alpha1
kind: Constraint
metadata: {name: col0}
spec: {colocation: {bundle: b0, with: b1, score: 30, role: promoted}}
"#;
    let p = settles_in_one_plan(
        text,
        "nodes:\n  n0: {instances: [{bundle: b1, index: 1, specHash: old, state: stopped}, {bundle: b0, index: 0, specHash: old}]}\n  n1: {}\n  n2: {standby: true}\n  n3: {}\n",
    );
    assert_eq!(node_of(&p, "b0-0").as_deref(), Some("n3"));
    assert_eq!(node_of(&p, "b1-0").as_deref(), Some("n3"));
}

/// A property case (seed 11 at 3,000 cases): `b0` follows `b1`'s promoted instance by
/// `INFINITY` and must run before `b1` starts. With `b0` counted beside `b1-0` only (the
/// instances numbered below its replicas), the promoted `b1-1` went back to `n0`, where
/// `b0` could not join it; `b0` then ran nowhere, which starved `b1`, and the plan after
/// started them again. A dependent that follows only the promoted instances is counted
/// beside those.
#[test]
fn a_follower_of_the_promoted_instance_is_counted_beside_it() {
    let text = r#"apiVersion: quorate.io/v1alpha1
kind: Cluster
metadata: {name: c}
spec:
  nodes:
    - {name: n0, runtime: 'podman+unix:///n0', votes: 0, standby: false, attributes: {rack: r0, kernel: '5.0'}, capacity: {cpu: 1}}
    - {name: n1, runtime: 'podman+unix:///n1', votes: 0, standby: false, attributes: {rack: r0, kernel: '5.0'}, capacity: {cpu: 0}}
    - {name: n2, runtime: 'podman+unix:///n2', votes: 0, standby: false, attributes: {rack: r0, kernel: '5.0'}, capacity: {cpu: 0}}
    - {name: n3, runtime: 'podman+unix:///n3', votes: 1, standby: false, attributes: {rack: r0, kernel: '5.0'}, capacity: {cpu: 4, memory: 2}}
  placementStrategy: utilization
  quorum: {reconcilerVotes: 0, noQuorumPolicy: freeze}
  fencing: {enabled: false}
  defaults: {stickiness: 1, migrationThreshold: 3, failureTimeout: 10m}
---
apiVersion: quorate.io/v1alpha1
kind: Bundle
metadata: {name: b0}
spec: {image: img0, replicas: 1, replicasPerHost: 1, recovery: restart, priority: 0, update: {maxParallel: 10}, monitor: {onFail: restart}, needs: {cpu: 1, memory: 0}}
---
apiVersion: quorate.io/v1alpha1
kind: Bundle
metadata: {name: b1}
spec: {image: img1, replicas: 2, replicasPerHost: 1, recovery: restart, priority: 0, update: {maxParallel: 10}, monitor: {onFail: restart}, needs: {cpu: 1, memory: 0}, promotable: {maxPromoted: 1, maxPromotedPerNode: 1, promote: [p], demote: [d], role: [r]}}
---
apiVersion: quorate.io/v1alpha1
kind: Constraint
metadata: {name: col0}
spec: {colocation: {bundle: b0, with: b1, score: INFINITY, role: promoted}}
---
apiVersion: quorate.io/v1alpha1
kind: Constraint
metadata: {name: ord0}
spec: {order: {first: b0, then: b1, kind: mandatory}}
"#;
    let p = settles_in_one_plan(
        text,
        "nodes:\n  n0: {instances: [{bundle: b1, index: 1, specHash: old, state: stopped}, {bundle: b0, index: 0, specHash: old}]}\n  n1: {}\n  n2: {standby: true}\n  n3: {}\n",
    );
    assert_eq!(node_of(&p, "b0-0").as_deref(), Some("n3"));
}

/// A property case, found once the one above was fixed: `b1` runs after any of `b2` (no
/// replicas) and `b0` (a set of `requireAll: false`), `b0` avoids `b1`, and `b1-1` runs
/// on `n3`, where it failed too often to stay. Placed first (it has a copy), it took
/// `n2`, `b1-0` took `n3`, and no node was left for `b0`, which starved `b1`. The plan
/// after, with `b1-1`'s copy gone, placed it after `b1-0` and settled elsewhere. An
/// instance on no node that failed too often on one is placed before the other new
/// ones, as it was while its copy was there.
#[test]
fn an_instance_failed_out_of_its_node_is_placed_in_the_same_order_once_its_copy_is_gone() {
    let text = r#"apiVersion: quorate.io/v1alpha1
kind: Cluster
metadata: {name: c}
spec:
  nodes:
    - {name: n0, runtime: 'podman+unix:///n0', votes: 0, standby: true, attributes: {rack: r0, kernel: '5.0'}, capacity: {cpu: 0}}
    - {name: n1, runtime: 'podman+unix:///n1', votes: 0, standby: true, attributes: {rack: r0, kernel: '5.0'}, capacity: {cpu: 0}}
    - {name: n2, runtime: 'podman+unix:///n2', votes: 1, standby: false, attributes: {rack: r0, kernel: '5.0'}, capacity: {cpu: 0}}
    - {name: n3, runtime: 'podman+unix:///n3', votes: 0, standby: false, attributes: {rack: r0, kernel: '5.0'}, capacity: {cpu: 0}}
  placementStrategy: default
  quorum: {reconcilerVotes: 0, noQuorumPolicy: freeze}
  fencing: {enabled: false}
  defaults: {stickiness: 1, migrationThreshold: 3, failureTimeout: 10m}
---
apiVersion: quorate.io/v1alpha1
kind: Bundle
metadata: {name: b0}
spec: {image: img0, replicas: 1, replicasPerHost: 1, recovery: restart, priority: 0, update: {maxParallel: 10}, monitor: {onFail: restart}, needs: {cpu: 0, memory: 0}}
---
apiVersion: quorate.io/v1alpha1
kind: Bundle
metadata: {name: b1}
spec: {image: img1, replicas: 2, replicasPerHost: 1, recovery: restart, priority: 0, update: {maxParallel: 10}, monitor: {onFail: restart}, needs: {cpu: 0, memory: 0}}
---
apiVersion: quorate.io/v1alpha1
kind: Bundle
metadata: {name: b2}
spec: {image: img2, replicas: 0, replicasPerHost: 1, recovery: restart, priority: 0, update: {maxParallel: 10}, monitor: {onFail: restart}, needs: {cpu: 0, memory: 0}}
---
apiVersion: quorate.io/v1alpha1
kind: Constraint
metadata: {name: col0}
spec: {colocation: {bundle: b0, with: b1, score: -INFINITY}}
---
apiVersion: quorate.io/v1alpha1
kind: Constraint
metadata: {name: oset}
spec: {order: {sets: [{bundles: [b2, b0], sequential: false, requireAll: false}, {bundles: [b1]}]}}
"#;
    settles_in_one_plan(
        text,
        "now: 10000\nnodes:\n  n0: {}\n  n1: {}\n  n2: {}\n  n3: {instances: [{bundle: b1, index: 1, specHash: old}], failures: {b1-1: {count: 3, last: 9500}}}\n",
    );
}

/// A property case (seed 7 at 3,000 cases, once failed-out instances were placed with
/// the new ones): `b0-1` failed too often on every node it has a copy on, so `n2` is the
/// only one left for it. Placed after `b0-0`, which took `n2`, it went nowhere, which
/// starved `b1` (a mandatory order from `b0` with `minInstances: 2`) until the next plan.
/// Placed first, as an instance with copies is, it takes `n2`.
#[test]
fn an_instance_failed_out_of_every_node_it_ran_on_is_placed_first() {
    let text = r#"apiVersion: quorate.io/v1alpha1
kind: Cluster
metadata: {name: c}
spec:
  nodes:
    - {name: n0, runtime: 'podman+unix:///n0', votes: 0, standby: false, attributes: {rack: r0, kernel: '5.0'}, capacity: {cpu: 0}}
    - {name: n1, runtime: 'podman+unix:///n1', votes: 0, standby: false, attributes: {rack: r0, kernel: '5.0'}, capacity: {cpu: 0}}
    - {name: n2, runtime: 'podman+unix:///n2', votes: 0, standby: false, attributes: {rack: r0, kernel: '5.0'}, capacity: {cpu: 0}}
    - {name: n3, runtime: 'podman+unix:///n3', votes: 2, standby: false, attributes: {rack: r0, kernel: '5.0'}, capacity: {cpu: 0}}
    - {name: n4, runtime: 'podman+unix:///n4', votes: 0, standby: false, attributes: {rack: r0, kernel: '5.0'}, capacity: {cpu: 0}}
  placementStrategy: default
  quorum: {reconcilerVotes: 0, noQuorumPolicy: freeze}
  fencing: {enabled: false}
  defaults: {stickiness: 1, migrationThreshold: 3, failureTimeout: 10m}
---
apiVersion: quorate.io/v1alpha1
kind: Fence
metadata: {name: f}
spec:
  targets: [n4]
  ipmi: {address: b, username: u, password: {fromEnv: P}}
---
apiVersion: quorate.io/v1alpha1
kind: Bundle
metadata: {name: b0}
spec: {image: img0, replicas: 2, replicasPerHost: 1, recovery: restart, priority: 0, update: {maxParallel: 10}, monitor: {onFail: restart}, needs: {cpu: 0, memory: 0}}
---
apiVersion: quorate.io/v1alpha1
kind: Bundle
metadata: {name: b1}
spec: {image: img1, replicas: 1, replicasPerHost: 1, recovery: restart, priority: 1, update: {maxParallel: 10}, monitor: {onFail: restart}, needs: {cpu: 0, memory: 0}}
---
apiVersion: quorate.io/v1alpha1
kind: Constraint
metadata: {name: ord0}
spec: {order: {first: b0, then: b1, kind: mandatory, minInstances: 2}}
"#;
    let fails = "failures: {b0-1: {count: 3, last: 9500}}";
    let copy = "instances: [{bundle: b0, index: 1, specHash: old}]";
    let p = settles_in_one_plan(
        text,
        &format!(
            "now: 10000\nnodes:\n  n0: {{{copy}, {fails}}}\n  n1: {{standby: true}}\n  n2: {{}}\n  n3: {{{copy}, {fails}}}\n  n4: {{{copy}, {fails}}}\n"
        ),
    );
    let starts: Vec<_> = summary(&p)
        .into_iter()
        .filter(|a| a.0 == ActionType::Start)
        .collect();
    assert!(starts.iter().any(|a| a.1 == "b1-0"), "{starts:?}");
}

/// A property case (seed 12 at 3,000 cases): `b0` (one replica) follows `b1`'s
/// promoted instances (two, at most one per node), and only `n0` has the memory `b0`
/// needs. Counted beside both promoted instances, `b0` pulled `b1-1` onto `n0`, where it
/// could not be promoted beside `b1-0`; counted beside one, it let `b1-1` go back, and the
/// rounds never settled. A follower joins as many promoted instances as it has replicas.
#[test]
fn a_follower_joins_as_many_promoted_instances_as_it_has_replicas() {
    let text = r#"apiVersion: quorate.io/v1alpha1
kind: Cluster
metadata: {name: c}
spec:
  nodes:
    - {name: n0, runtime: 'podman+unix:///n0', votes: 0, standby: false, attributes: {rack: r0, kernel: '5.0'}, capacity: {cpu: 6, memory: 1}}
    - {name: n1, runtime: 'podman+unix:///n1', votes: 2, standby: false, attributes: {rack: r0, kernel: '5.0'}, capacity: {cpu: 0}}
    - {name: n2, runtime: 'podman+unix:///n2', votes: 1, standby: false, attributes: {rack: r0, kernel: '5.0'}, capacity: {cpu: 2}}
    - {name: n3, runtime: 'podman+unix:///n3', votes: 0, standby: false, attributes: {rack: r0, kernel: '5.0'}, capacity: {cpu: 0}}
    - {name: n4, runtime: 'podman+unix:///n4', votes: 0, standby: false, attributes: {rack: r0, kernel: '5.0'}, capacity: {cpu: 0}}
  placementStrategy: utilization
  quorum: {reconcilerVotes: 0, noQuorumPolicy: freeze}
  fencing: {enabled: false}
  defaults: {stickiness: 1, migrationThreshold: 3, failureTimeout: 10m}
---
apiVersion: quorate.io/v1alpha1
kind: Bundle
metadata: {name: b0}
spec: {image: img0, replicas: 1, replicasPerHost: 1, recovery: restart, priority: 0, update: {maxParallel: 10}, monitor: {onFail: restart}, needs: {cpu: 0, memory: 1}}
---
apiVersion: quorate.io/v1alpha1
kind: Bundle
metadata: {name: b1}
spec: {image: img1, replicas: 2, replicasPerHost: 2, recovery: restart, priority: 0, update: {maxParallel: 10}, monitor: {onFail: restart}, needs: {cpu: 0, memory: 0}, promotable: {maxPromoted: 2, maxPromotedPerNode: 1, promote: [p], demote: [d], role: [r]}}
---
apiVersion: quorate.io/v1alpha1
kind: Bundle
metadata: {name: b2}
spec: {image: img2, replicas: 0, replicasPerHost: 1, recovery: restart, priority: 0, update: {maxParallel: 10}, monitor: {onFail: restart}, needs: {cpu: 0, memory: 0}}
---
apiVersion: quorate.io/v1alpha1
kind: Constraint
metadata: {name: col0}
spec: {colocation: {bundle: b0, with: b1, score: INFINITY, role: promoted}}
"#;
    let p = settles_in_one_plan(
        text,
        "now: 10000\nnodes:\n  n0: {}\n  n1: {}\n  n2: {}\n  n3: {state: lost, since: 8000}\n  n4: {}\n",
    );
    assert_eq!(node_of(&p, "b0-0").as_deref(), Some("n0"));
}

/// The case above with two replicas of `b0`, one per node (seed 12 at 3,000 cases, once
/// the follower joined the promoted instances only): with `b1-0` alone promoted, `b0`
/// joined it alone and `b1-1` went to another node, where it was promoted too; joining
/// both then pulled `b1-1` back beside `b1-0`, where it could not be, and the rounds never
/// settled. A follower joins the promoted instances first, then others by number, as many
/// as it has replicas, whatever is promoted.
#[test]
fn a_follower_joins_others_by_number_beyond_the_promoted_instances() {
    let text = r#"apiVersion: quorate.io/v1alpha1
kind: Cluster
metadata: {name: c}
spec:
  nodes:
    - {name: n0, runtime: 'podman+unix:///n0', votes: 0, standby: false, attributes: {rack: r0, kernel: '5.0'}, capacity: {cpu: 8, memory: 2}}
    - {name: n1, runtime: 'podman+unix:///n1', votes: 2, standby: false, attributes: {rack: r0, kernel: '5.0'}, capacity: {cpu: 0}}
    - {name: n2, runtime: 'podman+unix:///n2', votes: 1, standby: false, attributes: {rack: r0, kernel: '5.0'}, capacity: {cpu: 2}}
    - {name: n3, runtime: 'podman+unix:///n3', votes: 0, standby: false, attributes: {rack: r0, kernel: '5.0'}, capacity: {cpu: 0}}
    - {name: n4, runtime: 'podman+unix:///n4', votes: 0, standby: false, attributes: {rack: r0, kernel: '5.0'}, capacity: {cpu: 0}}
  placementStrategy: utilization
  quorum: {reconcilerVotes: 0, noQuorumPolicy: freeze}
  fencing: {enabled: false}
  defaults: {stickiness: 1, migrationThreshold: 3, failureTimeout: 10m}
---
apiVersion: quorate.io/v1alpha1
kind: Bundle
metadata: {name: b0}
spec: {image: img0, replicas: 2, replicasPerHost: 1, recovery: restart, priority: 0, update: {maxParallel: 10}, monitor: {onFail: restart}, needs: {cpu: 0, memory: 1}}
---
apiVersion: quorate.io/v1alpha1
kind: Bundle
metadata: {name: b1}
spec: {image: img1, replicas: 2, replicasPerHost: 2, recovery: restart, priority: 0, update: {maxParallel: 10}, monitor: {onFail: restart}, needs: {cpu: 0, memory: 0}, promotable: {maxPromoted: 2, maxPromotedPerNode: 1, promote: [p], demote: [d], role: [r]}}
---
apiVersion: quorate.io/v1alpha1
kind: Bundle
metadata: {name: b2}
spec: {image: img2, replicas: 0, replicasPerHost: 1, recovery: restart, priority: 0, update: {maxParallel: 10}, monitor: {onFail: restart}, needs: {cpu: 0, memory: 0}}
---
apiVersion: quorate.io/v1alpha1
kind: Constraint
metadata: {name: col0}
spec: {colocation: {bundle: b0, with: b1, score: INFINITY, role: promoted}}
"#;
    let p = settles_in_one_plan(
        text,
        "now: 10000\nnodes:\n  n0: {}\n  n1: {}\n  n2: {}\n  n3: {state: lost, since: 8000}\n  n4: {}\n",
    );
    assert_eq!(node_of(&p, "b0-0").as_deref(), Some("n0"));
}

/// Plans `text` against the snapshot `observed`, then against the state that plan leaves:
/// the second plan must change nothing.
fn settles_in_one_plan(text: &str, observed_text: &str) -> Plan {
    let mut sources = Sources::new();
    sources.add("c.yaml", text.as_bytes().to_vec());
    let s = validate(&sources).into_valid_set().unwrap();
    let o = observed(observed_text);
    let p = run(&s, &o);
    let end = quorate::plan::apply::expected_state(&s, &o, &p);
    let again = run(&s, &end);
    assert!(
        again.actions.is_empty(),
        "first: {:#?}\nsecond: {:#?}",
        p.actions,
        again.actions
    );
    p
}

/// A chain of bundles, each colocated by `INFINITY` with the one before, as long as a
/// hostile spec likes: planning it must not recurse once per link (it overflowed the stack
/// at 20,000 before the dependents were merged with a stack of their own). Planned on a
/// thread with 256 KiB of stack, where 1,000 links of recursion did not fit.
#[test]
fn a_long_chain_of_colocations_plans_in_a_small_stack() {
    let links = 1_000;
    let text = colocation_chain(links, "{bundle: c0, node: n1, score: -INFINITY}");
    let s = spec(&[&text]);
    let planned = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(move || {
            let p = run(&s, &Observed::fresh(&s));
            // Every link follows the first off the banned node.
            node_of(&p, &format!("c{}-0", links - 1))
        })
        .unwrap()
        .join()
        .unwrap();
    assert!(planned.is_some_and(|n| n.as_str() != "n1"));
}

/// The dependents stage follows a chain 64 colocations down from the primary and no
/// farther (each bundle placed would weigh every bundle below it: quadratic in a long
/// chain). `c0` has no preference of its own: the preference of `c64` for `n2` brings the
/// whole chain there; the same preference one link farther down, on `c65`, does not
/// reach `c0`, which takes the first node, and the chain follows it.
#[test]
fn the_dependents_stage_follows_a_chain_sixty_four_links_down() {
    for (link, expected) in [(64, "n2"), (65, "n1")] {
        let text = colocation_chain(66, &format!("{{bundle: c{link}, node: n2, score: 100}}"));
        let s = spec(&[&text]);
        let p = run(&s, &Observed::fresh(&s));
        for instance in ["c0-0", "c65-0"] {
            let node = node_of(&p, instance);
            assert_eq!(
                node.as_deref(),
                Some(expected),
                "{instance}, preference on c{link}"
            );
        }
    }
}

/// Bundles `c0`..`c{links-1}`, each colocated by `INFINITY` with the one before, and the
/// location constraint `location`.
fn colocation_chain(links: usize, location: &str) -> String {
    let mut docs = Vec::new();
    for i in 0..links {
        docs.push(format!(
            "apiVersion: quorate.io/v1alpha1\nkind: Bundle\nmetadata: {{name: c{i}}}\nspec: {{image: x, replicas: 1}}\n"
        ));
        if i > 0 {
            docs.push(format!(
                "apiVersion: quorate.io/v1alpha1\nkind: Constraint\nmetadata: {{name: k{i}}}\nspec: {{colocation: {{bundle: c{i}, with: c{}, score: INFINITY}}}}\n",
                i - 1
            ));
        }
    }
    docs.push(format!("apiVersion: quorate.io/v1alpha1\nkind: Constraint\nmetadata: {{name: loc}}\nspec: {{location: {location}}}\n"));
    docs.join("---\n")
}

/// The first action of `instance` in the plan.
fn action_of<'p>(p: &'p Plan, instance: &str) -> Option<&'p Action> {
    p.actions
        .iter()
        .find(|a| a.instance.as_deref() == Some(instance))
}

/// The node the plan's first action of `instance` puts it on.
fn node_of(p: &Plan, instance: &str) -> Option<String> {
    action_of(p, instance).and_then(|a| a.node.as_ref().map(|n| n.to_string()))
}

/// Found by `plan_properties` with `PROPTEST_CASES=1500 PROPTEST_RNG_SEED=11`: `b1`
/// avoids `b0`'s promoted instance (`-INFINITY`) while `b0` is drawn to `b1` (a set
/// colocation of 30), fresh, under capacity. When `b1` was placed first (its priority),
/// where it went decided where `b0` was promoted and back, so the rounds that decide the
/// primaries did not settle and the first plan placed `b1` nowhere. The target of a
/// colocation with a role is placed first: `b0` is promoted where its own scores say,
/// and `b1` keeps off that node.
#[test]
fn a_bundle_avoiding_a_primary_drawn_to_it_settles_in_one_plan() {
    let text = r#"apiVersion: quorate.io/v1alpha1
kind: Cluster
metadata: {name: c}
spec:
  nodes:
    - {name: n0, runtime: 'podman+unix:///n0', votes: 0, standby: false, attributes: {rack: r0, kernel: '5.0'}, capacity: {cpu: 4}}
    - {name: n1, runtime: 'podman+unix:///n1', votes: 0, standby: false, attributes: {rack: r0, kernel: '5.0'}, capacity: {cpu: 0}}
    - {name: n2, runtime: 'podman+unix:///n2', votes: 0, standby: false, attributes: {rack: r0, kernel: '5.0'}, capacity: {cpu: 4, memory: 3}}
    - {name: n3, runtime: 'podman+unix:///n3', votes: 1, standby: false, attributes: {rack: r2, kernel: '5.10'}, capacity: {cpu: 4, memory: 3}}
  placementStrategy: utilization
  quorum: {reconcilerVotes: 0, noQuorumPolicy: freeze}
  fencing: {enabled: false}
  defaults: {stickiness: 1, migrationThreshold: 3, failureTimeout: 10m}
---
apiVersion: quorate.io/v1alpha1
kind: Bundle
metadata: {name: b0}
spec: {image: img0, replicas: 1, replicasPerHost: 1, recovery: restart, priority: 0, update: {maxParallel: 10}, monitor: {onFail: restart}, needs: {cpu: 0, memory: 1}, promotable: {maxPromoted: 1, maxPromotedPerNode: 1, promote: [p], demote: [d], role: [r]}}
---
apiVersion: quorate.io/v1alpha1
kind: Bundle
metadata: {name: b1}
spec: {image: img1, replicas: 1, replicasPerHost: 1, recovery: restart, priority: 1, update: {maxParallel: 10}, monitor: {onFail: restart}, needs: {cpu: 0, memory: 2}}
---
apiVersion: quorate.io/v1alpha1
kind: Bundle
metadata: {name: b2}
spec: {image: img2, replicas: 2, replicasPerHost: 1, recovery: restart, priority: 0, update: {maxParallel: 10}, monitor: {onFail: restart}, needs: {cpu: 0, memory: 1}}
---
apiVersion: quorate.io/v1alpha1
kind: Constraint
metadata: {name: col0}
spec: {colocation: {bundle: b1, with: b0, score: -INFINITY, role: promoted}}
---
apiVersion: quorate.io/v1alpha1
kind: Constraint
metadata: {name: cset}
spec: {colocation: {score: 30, sets: [{bundles: [b1, b0]}]}}
"#;
    let p = settles_in_one_plan(text, "nodes:\n  n0: {}\n  n1: {}\n  n2: {}\n  n3: {}\n");
    let (b0, b1) = (node_of(&p, "b0-0"), node_of(&p, "b1-0"));
    assert!(b0.is_some() && b1.is_some() && b0 != b1, "{b0:?} {b1:?}");
}

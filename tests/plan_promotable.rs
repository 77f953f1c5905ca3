//! The planner on promotable bundles: which instance is promoted, in which order
//! promote, demote, start, stop and fence run, and why nothing is promoted (invariant 8).

use quorate::observed::{Observed, snapshot};
use quorate::plan::{ActionType, Options, Plan, Step, StepOp, plan};
use quorate::source::{FileId, Sources};
use quorate::spec::SpecSet;
use quorate::validate::{Report, validate};

const CLUSTER: &str = r#"apiVersion: quorate.io/v1alpha1
kind: Cluster
metadata: {name: lab}
spec:
  nodes:
    - {name: n1, runtime: "podman+tcp://10.0.0.1:8888", insecure: true}
    - {name: n2, runtime: "podman+tcp://10.0.0.2:8888", insecure: true}
    - {name: n3, runtime: "podman+tcp://10.0.0.3:8888", insecure: true}
  fencing: {enabled: FENCING}
---
apiVersion: quorate.io/v1alpha1
kind: Fence
metadata: {name: bmcs}
spec:
  targets: [n1, n2, n3]
  ipmi: {address: 127.0.0.1, username: admin, password: {fromEnv: PW}}
---
apiVersion: quorate.io/v1alpha1
kind: Bundle
metadata: {name: kv}
spec:
  image: redis
  replicas: 3
  recovery: restart
  promotable:
    promote: [redis-cli, REPLICAOF, "NO", ONE]
    demote: [follow]
    role: [role]
    preference: [offset]
"#;

/// The validation of one file holding `text`.
fn validated(text: &str) -> Report {
    let mut sources = Sources::new();
    sources.add("cluster.yaml", text.as_bytes().to_vec());
    validate(&sources)
}

fn spec_with(fencing: bool) -> SpecSet {
    let report = validated(&CLUSTER.replace("FENCING", &fencing.to_string()));
    assert_eq!(report.errors(), 0, "{:#?}", report.diagnostics);
    report.into_valid_set().unwrap()
}

fn spec() -> SpecSet {
    spec_with(true)
}

fn hash(s: &SpecSet, index: u32) -> String {
    quorate::plan::hash::instance_hash("kv", &s.bundles["kv"], index)
}

/// A snapshot where `kv-<i>` runs on `n<i+1>` with the role given (`p`: promoted, a
/// number: a replica with that preference following n1, `?`: unknown), and `lost` nodes.
fn observed(s: &SpecSet, roles: [&str; 3], lost: &[&str], extra: &str) -> Observed {
    let mut text = String::from("nodes:\n");
    for (i, role) in roles.iter().enumerate() {
        let node = format!("n{}", i + 1);
        let state = if lost.contains(&node.as_str()) {
            "lost"
        } else {
            "online"
        };
        let role = match *role {
            "p" => ", role: {promoted: true}".to_owned(),
            "?" => String::new(),
            pref => format!(", role: {{promoted: false, follows: 10.0.0.1, preference: {pref}}}"),
        };
        let h = hash(s, i as u32);
        text += &format!(
            "  {node}: {{state: {state}, since: 100, instances: [{{bundle: kv, index: {i}, specHash: {h}{role}}}]}}\n"
        );
    }
    text += extra;
    snapshot::parse(FileId(0), text.as_bytes()).unwrap()
}

fn run(s: &SpecSet, o: &Observed) -> Plan {
    let p = plan(s, o, &Options::default());
    assert_eq!(p, plan(s, o, &Options::default()));
    // The state the plan leaves plans nothing more.
    let end = quorate::plan::apply::expected_state(s, o, &p);
    let again = plan(s, &end, &Options::default());
    assert!(again.actions.is_empty(), "{again:#?}");
    p
}

fn summary(p: &Plan) -> Vec<(ActionType, String)> {
    p.actions
        .iter()
        .map(|a| {
            let what = a
                .instance
                .clone()
                .or(a.node.as_ref().map(|n| n.to_string()));
            (a.kind, what.unwrap_or_default())
        })
        .collect()
}

fn step(p: &Plan, f: impl Fn(&StepOp) -> bool) -> &Step {
    p.steps.iter().find(|s| f(&s.op)).unwrap()
}

/// Whether `p` promotes anything.
fn promotes(p: &Plan) -> bool {
    p.steps
        .iter()
        .any(|s| matches!(s.op, StepOp::Promote { .. }))
}

/// The reason of the first action of `kind` in `p`.
fn reason_of(p: &Plan, kind: ActionType) -> &str {
    let action = p.actions.iter().find(|a| a.kind == kind);
    &action
        .unwrap_or_else(|| panic!("no {kind:?} in {p:#?}"))
        .reason
}

fn promote_of(p: &Plan, index: u32) -> &Step {
    step(
        p,
        |op| matches!(op, StepOp::Promote { index: i, .. } if *i == index),
    )
}

#[test]
fn a_fresh_bundle_starts_unpromoted_then_promotes_one_and_the_others_follow_it() {
    let s = spec();
    let p = run(&s, &Observed::fresh(&s));
    let promote = promote_of(&p, 0);
    let start0 = step(&p, |op| matches!(op, StepOp::Start { index: 0, .. }));
    assert_eq!(promote.after, vec![start0.id], "{p:#?}");
    for i in [1, 2] {
        let follow = step(
            &p,
            |op| matches!(op, StepOp::Demote { index, .. } if *index == i),
        );
        let start = step(
            &p,
            |op| matches!(op, StepOp::Start { index, .. } if *index == i),
        );
        assert!(follow.after.contains(&promote.id) && follow.after.contains(&start.id));
        let StepOp::Demote {
            follow: to,
            primary: false,
            ..
        } = &follow.op
        else {
            panic!("a replica told whom to follow is no primary: {follow:?}")
        };
        let (at, node) = to.as_ref().unwrap();
        assert_eq!((*at, node.as_str()), (0, "n1"));
    }
    let why = reason_of(&p, ActionType::Promote);
    assert!(why.contains("0 of 1 promoted"), "{why}");
}

#[test]
fn a_converged_bundle_plans_nothing_and_a_replica_following_elsewhere_is_told() {
    let s = spec();
    let p = run(&s, &observed(&s, ["p", "5", "7"], &[], ""));
    assert!(p.actions.is_empty(), "{p:#?}");
    // kv-2 follows another host: it is told to follow kv-0 on n1.
    let mut o = observed(&s, ["p", "5", "7"], &[], "");
    let kv2 = &mut o.nodes.get_mut("n3").unwrap().instances[0];
    kv2.role.as_mut().unwrap().follows = Some("10.0.0.9".into());
    let p = run(&s, &o);
    assert_eq!(summary(&p), [(ActionType::Demote, "kv-2".to_owned())]);
    assert!(
        p.actions[0]
            .reason
            .contains("to follow kv-0, promoted on n1")
    );
}

#[test]
fn a_lost_primary_is_fenced_before_the_best_replica_is_promoted() {
    let s = spec();
    let p = run(&s, &observed(&s, ["p", "50", "900"], &["n1"], ""));
    let fence = step(&p, |op| matches!(op, StepOp::Fence { .. }));
    let promote = promote_of(&p, 2);
    assert_eq!(promote.after, vec![fence.id], "{p:#?}");
    assert!(promote.op.node().as_str() == "n3");
    let follow = step(&p, |op| matches!(op, StepOp::Demote { index: 1, .. }));
    assert!(follow.after.contains(&promote.id));
    assert!(
        !p.steps
            .iter()
            .any(|s| matches!(s.op, StepOp::Promote { index: 1, .. }))
    );
}

#[test]
fn a_lost_primary_that_cannot_be_fenced_blocks_promotion_until_confirmed() {
    let s = spec_with(false);
    let o = observed(&s, ["p", "50", "900"], &["n1"], "");
    let p = run(&s, &o);
    assert!(!promotes(&p), "{p:#?}");
    let blocked = p.blocked.iter().find(|b| b.instance == "kv-2").unwrap();
    assert!(
        blocked
            .reason
            .contains("kv-0 may still be promoted on lost node n1")
            && blocked.reason.contains("quorate fence confirm n1"),
        "{}",
        blocked.reason
    );
    // Confirmed off by hand: kv-2 is promoted, with no fence to wait for.
    let o = observed(
        &s,
        ["p", "50", "900"],
        &["n1"],
        "confirmations: [{node: n1, by: op, at: 200}]\n",
    );
    let p = run(&s, &o);
    assert!(promote_of(&p, 2).after.is_empty(), "{p:#?}");
}

#[test]
fn without_quorum_nothing_is_promoted_or_demoted() {
    let s = spec();
    let p = run(&s, &observed(&s, ["p", "50", "900"], &["n1", "n2"], ""));
    assert!(p.steps.is_empty(), "{p:#?}");
    assert!(p.blocked.iter().any(|b| b.reason.contains("no quorum")));
}

#[test]
fn a_primary_is_demoted_before_it_stops_and_another_is_promoted_after() {
    let s = spec();
    let mut o = observed(&s, ["p", "50", "900"], &[], "");
    o.nodes.get_mut("n1").unwrap().instances[0].spec_hash = "old".into();
    let p = run(&s, &o);
    let demote = step(&p, |op| {
        matches!(
            op,
            StepOp::Demote {
                index: 0,
                follow: Some((2, _)),
                primary: true,
                ..
            }
        )
    });
    let stop = step(&p, |op| matches!(op, StepOp::Stop { index: 0, .. }));
    assert!(stop.after.contains(&demote.id), "{p:#?}");
    assert!(promote_of(&p, 2).after.contains(&demote.id));
}

#[test]
fn two_primaries_after_a_partition_are_cut_to_the_allowed_one() {
    let s = spec();
    // Both report promoted: the lower number stays, kv-1 already follows it.
    let p = run(&s, &observed(&s, ["p", "50", "p"], &[], ""));
    assert_eq!(summary(&p), [(ActionType::Demote, "kv-2".to_owned())]);
    assert!(!promotes(&p));
}

#[test]
fn a_replica_of_unknown_role_holds_a_place_and_the_plan_says_why() {
    let s = spec();
    let p = run(&s, &observed(&s, ["?", "50", "900"], &[], ""));
    assert!(!promotes(&p), "{p:#?}");
    let blocked = p.blocked.iter().find(|b| b.instance == "kv-2").unwrap();
    assert!(
        blocked.reason.contains("role of kv-0 on n1 is unknown"),
        "{}",
        blocked.reason
    );
}

#[test]
fn explain_lists_the_candidates_best_first() {
    let s = spec();
    let o = observed(&s, ["p", "50", "900"], &["n1"], "");
    let p = plan(
        &s,
        &o,
        &Options {
            explain: true,
            ..Options::default()
        },
    );
    let promotion = &p.promotions[0];
    assert_eq!(promotion.promoted, ["kv-2"]);
    let order: Vec<(&str, Option<i64>)> = promotion
        .candidates
        .iter()
        .map(|c| (c.instance.as_str(), c.preference))
        .collect();
    assert_eq!(order, [("kv-2", Some(900)), ("kv-1", Some(50))]);
    let human = quorate::plan::render::render(&p, quorate::plan::render::Format::Human, true);
    assert!(
        human.contains("kv-2") && human.contains("preference 900"),
        "{human}"
    );
}

#[test]
fn bad_promotable_settings_are_refused_where_they_are_written() {
    let bad = CLUSTER.replace("FENCING", "true").replace(
        "    promote: [redis-cli, REPLICAOF, \"NO\", ONE]\n",
        "    maxPromoted: 0\n    timeout: 0s\n    promote: []\n",
    );
    let report = validated(&bad);
    let found: Vec<(&str, usize)> = report
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| {
            let span = d.location.as_ref().and_then(|l| l.span).expect("located");
            (d.code, span.line as usize)
        })
        .collect();
    let line_of = |text: &str| bad.lines().position(|l| l.contains(text)).unwrap() + 1;
    assert_eq!(
        found,
        [
            (
                "quorate::bundle::promotable-limit",
                line_of("maxPromoted: 0")
            ),
            (
                "quorate::bundle::promotable-timeout",
                line_of("timeout: 0s")
            ),
            (
                "quorate::bundle::promotable-command",
                line_of("promote: []")
            ),
        ],
        "{:#?}",
        report.diagnostics
    );
    assert!(report.into_valid_set().is_none(), "nothing is applied");
}

#[test]
fn an_order_on_promote_starts_then_after_the_promotion() {
    let app = "---
apiVersion: quorate.io/v1alpha1
kind: Bundle
metadata: {name: app}
spec: {image: app, replicas: 1, recovery: restart}
---
apiVersion: quorate.io/v1alpha1
kind: Constraint
metadata: {name: app-after-primary}
spec: {order: {first: kv, then: app, action: promote}}
";
    let s = validated(&format!("{}{app}", CLUSTER.replace("FENCING", "true")))
        .into_valid_set()
        .unwrap();
    let p = run(&s, &Observed::fresh(&s));
    let promote = promote_of(&p, 0);
    let start = step(
        &p,
        |op| matches!(op, StepOp::Start { bundle, .. } if bundle.as_str() == "app"),
    );
    assert!(start.after.contains(&promote.id), "{p:#?}");
    // On a bundle that is not promotable, refused where it is written.
    let bad = app.replace("first: kv, then: app", "first: app, then: kv");
    let report = validated(&format!("{}{bad}", CLUSTER.replace("FENCING", "true")));
    let d = report.diagnostics.iter().find(|d| d.is_error()).unwrap();
    assert_eq!(d.code, "quorate::order::action", "{d:?}");
    assert!(d.message.contains("app is not"), "{}", d.message);
}

/// A virtual address that goes where the primary is, and starts after its promotion.
const VIP: &str = "---
apiVersion: quorate.io/v1alpha1
kind: Bundle
metadata: {name: vip}
spec: {image: vip, replicas: 1, recovery: restart}
---
apiVersion: quorate.io/v1alpha1
kind: Constraint
metadata: {name: vip-with-primary}
spec: {colocation: {bundle: vip, with: kv, role: promoted, score: INFINITY}}
---
apiVersion: quorate.io/v1alpha1
kind: Constraint
metadata: {name: vip-after-primary}
spec: {order: {first: kv, then: vip, action: promote}}
";

fn vip_spec() -> SpecSet {
    let report = validated(&format!("{}{VIP}", CLUSTER.replace("FENCING", "true")));
    assert_eq!(report.errors(), 0, "{:#?}", report.diagnostics);
    report.into_valid_set().unwrap()
}

fn vip_on(p: &Plan) -> String {
    let start = step(
        p,
        |op| matches!(op, StepOp::Start { bundle, .. } if bundle.as_str() == "vip"),
    );
    start.op.node().to_string()
}

#[test]
fn a_colocation_with_the_promoted_instance_follows_the_primary() {
    let s = vip_spec();
    // Fresh: kv-0 is promoted on n1, the address starts there after it.
    let p = run(&s, &Observed::fresh(&s));
    assert_eq!(vip_on(&p), "n1", "{p:#?}");
    // The primary's node is lost: kv-2 (the best replica) is promoted on n3 after the
    // fence, and the address moves there after the promotion.
    let mut o = observed(&s, ["p", "50", "900"], &["n1"], "");
    let h = quorate::plan::hash::instance_hash("vip", &s.bundles["vip"], 0);
    let vip: quorate::observed::ObservedInstance =
        serde_json::from_value(serde_json::json!({"bundle": "vip", "index": 0, "specHash": h}))
            .unwrap();
    o.nodes.get_mut("n1").unwrap().instances.push(vip.clone());
    let p = run(&s, &o);
    assert_eq!(vip_on(&p), "n3", "{p:#?}");
    let start = step(
        &p,
        |op| matches!(op, StepOp::Start { bundle, .. } if bundle.as_str() == "vip"),
    );
    assert!(start.after.contains(&promote_of(&p, 2).id));
    // Converged, the address beside the primary: nothing to do.
    let mut o = observed(&s, ["p", "50", "900"], &[], "");
    o.nodes.get_mut("n1").unwrap().instances.push(vip);
    assert!(run(&s, &o).actions.is_empty());
    // On a bundle that is not promotable, refused where it is written.
    let bad = VIP
        .replace("with: kv, role", "with: vip, role")
        .replace("bundle: vip, with: vip", "bundle: kv, with: vip");
    let report = validated(&format!("{}{bad}", CLUSTER.replace("FENCING", "true")));
    let codes: Vec<&str> = report
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.code)
        .collect();
    assert!(codes.contains(&"quorate::colocation::role"), "{codes:?}");
}

/// A copy whose role is unknown (its role command failed) may be the primary: it holds a
/// place, so nothing else is promoted, and what follows the primary stays beside it
/// instead of stopping until the command answers again.
#[test]
fn a_colocation_with_the_primary_stays_beside_a_copy_of_unknown_role() {
    let s = vip_spec();
    let h = quorate::plan::hash::instance_hash("vip", &s.bundles["vip"], 0);
    let vip: quorate::observed::ObservedInstance =
        serde_json::from_value(serde_json::json!({"bundle": "vip", "index": 0, "specHash": h}))
            .unwrap();
    let mut o = observed(&s, ["?", "50", "900"], &[], "");
    o.nodes.get_mut("n1").unwrap().instances.push(vip);
    let p = run(&s, &o);
    assert!(p.actions.is_empty(), "{p:#?}");
    // Not running yet, it starts there.
    let p = run(&s, &observed(&s, ["?", "50", "900"], &[], ""));
    assert_eq!(vip_on(&p), "n1", "{p:#?}");
    assert!(!promotes(&p), "{p:#?}");
}

/// Pacemaker's rule for a colocation with the promoted role: the dependent's locations
/// weigh on where the primary is promoted. The address may never run on n1, where kv-0
/// runs and is the best candidate by its own score: promoting it there would leave the
/// address nowhere, so kv-1 is promoted on n2 and the address starts beside it. A score
/// short of `INFINITY` on both sides only leans: the address's `-INFINITY` through a
/// colocation of 500 costs n1 500, less than kv's own 1,000 there.
#[test]
fn a_primary_is_promoted_where_its_dependent_may_run() {
    let spec = |coloc: &str| {
        let text = format!(
            "{}{}---\napiVersion: quorate.io/v1alpha1\nkind: Constraint\nmetadata: {{name: kv-likes-n1}}\nspec: {{location: {{bundle: kv, node: n1, score: 1000, role: promoted}}}}\n---\napiVersion: quorate.io/v1alpha1\nkind: Constraint\nmetadata: {{name: vip-not-n1}}\nspec: {{location: {{bundle: vip, node: n1, score: -INFINITY}}}}\n",
            CLUSTER.replace("FENCING", "true"),
            VIP.replace(
                "role: promoted, score: INFINITY",
                &format!("role: promoted, score: {coloc}")
            )
        );
        let report = validated(&text);
        assert_eq!(report.errors(), 0, "{:#?}", report.diagnostics);
        report.into_valid_set().unwrap()
    };
    let s = spec("INFINITY");
    let p = run(&s, &Observed::fresh(&s));
    assert_eq!(promote_of(&p, 1).op.node().as_str(), "n2", "{p:#?}");
    assert_eq!(vip_on(&p), "n2", "{p:#?}");
    // Already running, the same: kv-0 on n1 is not promoted, kv-1 on n2 is.
    let o = observed(&s, ["0", "0", "0"], &[], "");
    let p = run(&s, &o);
    assert_eq!(promote_of(&p, 1).op.node().as_str(), "n2", "{p:#?}");
    assert_eq!(vip_on(&p), "n2", "{p:#?}");
    // A finite colocation only leans: kv-0 on n1 is promoted, the address goes elsewhere.
    let s = spec("500");
    let p = run(&s, &o);
    assert_eq!(promote_of(&p, 0).op.node().as_str(), "n1", "{p:#?}");
    assert_ne!(vip_on(&p), "n1", "{p:#?}");
}

/// The base spec with location constraints for `kv` (`(node, score, role promoted?)`).
fn located_spec(locations: &[(&str, &str, bool)]) -> SpecSet {
    let mut text = CLUSTER.replace("FENCING", "true");
    for (i, (node, score, promoted)) in locations.iter().enumerate() {
        let role = if *promoted { ", role: promoted" } else { "" };
        text += &format!(
            "---\napiVersion: quorate.io/v1alpha1\nkind: Constraint\nmetadata: {{name: at-{i}}}\nspec: {{location: {{bundle: kv, node: {node}, score: {score}{role}}}}}\n"
        );
    }
    let report = validated(&text);
    assert_eq!(report.errors(), 0, "{:#?}", report.diagnostics);
    report.into_valid_set().unwrap()
}

/// The instance `p` promotes (it promotes exactly one).
fn promoted_by(p: &Plan) -> u32 {
    let promotes: Vec<u32> = p
        .steps
        .iter()
        .filter_map(|s| match s.op {
            StepOp::Promote { index, .. } => Some(index),
            _ => None,
        })
        .collect();
    assert_eq!(promotes.len(), 1, "{p:#?}");
    promotes[0]
}

#[test]
fn a_location_for_the_promoted_role_outranks_the_preference() {
    // n1 lost: kv-1 on n2 is promoted for its location, though kv-2 is further ahead.
    let s = located_spec(&[("n2", "200", true)]);
    let p = run(&s, &observed(&s, ["p", "50", "900"], &["n1"], ""));
    assert_eq!(promoted_by(&p), 1);
    // A location for every role only breaks ties of the preference.
    let s = located_spec(&[("n2", "200", false)]);
    let p = run(&s, &observed(&s, ["p", "50", "900"], &["n1"], ""));
    assert_eq!(promoted_by(&p), 2);
    let p = run(&s, &observed(&s, ["p", "50", "50"], &["n1"], ""));
    assert_eq!(promoted_by(&p), 1);
}

#[test]
fn a_location_for_the_promoted_role_moves_the_primary_when_it_beats_the_stickiness() {
    // Below the stickiness (100): the primary stays where it is.
    let s = located_spec(&[("n2", "50", true)]);
    assert!(
        run(&s, &observed(&s, ["p", "5", "7"], &[], ""))
            .actions
            .is_empty()
    );
    // Above it: kv-0 is demoted to follow kv-1, then kv-1 is promoted, and kv-2 follows.
    let s = located_spec(&[("n2", "150", true)]);
    let p = run(&s, &observed(&s, ["p", "5", "7"], &[], ""));
    let demote = step(&p, |op| {
        matches!(
            op,
            StepOp::Demote {
                index: 0,
                follow: Some((1, _)),
                primary: true,
                ..
            }
        )
    });
    assert_eq!(promoted_by(&p), 1);
    assert!(promote_of(&p, 1).after.contains(&demote.id), "{p:#?}");
    assert!(
        p.actions
            .iter()
            .any(|a| a.kind == ActionType::Demote && a.reason.contains("better candidates"))
    );
    let follow = step(&p, |op| matches!(op, StepOp::Demote { index: 2, .. }));
    assert!(follow.after.contains(&promote_of(&p, 1).id));
}

#[test]
fn a_location_forbidding_the_promoted_role_keeps_the_primary_off_and_the_instance_on() {
    let s = located_spec(&[("n1", "-INFINITY", true)]);
    // Fresh: kv-0 still starts on n1, but kv-1 is promoted.
    let p = run(&s, &Observed::fresh(&s));
    assert!(
        step(&p, |op| matches!(op, StepOp::Start { index: 0, .. }))
            .op
            .node()
            .as_str()
            == "n1"
    );
    assert_eq!(promoted_by(&p), 1);
    // A primary there is demoted, not stopped, and the best replica promoted after.
    let p = run(&s, &observed(&s, ["p", "50", "900"], &[], ""));
    assert!(
        !p.steps.iter().any(|s| matches!(s.op, StepOp::Stop { .. })),
        "{p:#?}"
    );
    let demote = step(&p, |op| {
        matches!(
            op,
            StepOp::Demote {
                index: 0,
                primary: true,
                ..
            }
        )
    });
    assert!(promote_of(&p, 2).after.contains(&demote.id));
    let why = reason_of(&p, ActionType::Demote);
    assert!(why.contains("may not be promoted on n1"), "{why}");
    // On a bundle that is not promotable, refused where it is written.
    let text = format!(
        "{}---\napiVersion: quorate.io/v1alpha1\nkind: Bundle\nmetadata: {{name: web}}\nspec: {{image: nginx}}\n---\napiVersion: quorate.io/v1alpha1\nkind: Constraint\nmetadata: {{name: web-at}}\nspec: {{location: {{bundle: web, node: n1, score: 10, role: promoted}}}}\n",
        CLUSTER.replace("FENCING", "true")
    );
    let report = validated(&text);
    let bad = report
        .diagnostics
        .iter()
        .find(|d| d.code == "quorate::location::role")
        .unwrap_or_else(|| panic!("{:#?}", report.diagnostics));
    assert!(bad.is_error());
}

#[test]
fn a_colocation_with_the_primary_follows_it_where_capacity_puts_it() {
    // b1 runs on n0, where kv's only instance does not fit beside it. The primary goes
    // where placement puts it, and b1 may only be beside it: there is no room for both
    // on any node, so b1 stops rather than run away from the primary.
    let text = "apiVersion: quorate.io/v1alpha1
kind: Cluster
metadata: {name: c}
spec:
  nodes:
    - {name: n0, runtime: 'podman+unix:///n0', capacity: {memory: 2}}
    - {name: n1, runtime: 'podman+unix:///n1', capacity: {memory: 2}}
  placementStrategy: utilization
  fencing: {enabled: false}
---
apiVersion: quorate.io/v1alpha1
kind: Bundle
metadata: {name: kv}
spec: {image: redis, replicas: 1, needs: {memory: 2}, promotable: {promote: [p], demote: [d], role: [r]}}
---
apiVersion: quorate.io/v1alpha1
kind: Bundle
metadata: {name: app}
spec: {image: app, replicas: 1, needs: {memory: 1}}
---
apiVersion: quorate.io/v1alpha1
kind: Constraint
metadata: {name: app-with-primary}
spec: {colocation: {bundle: app, with: kv, role: promoted, score: INFINITY}}
";
    let report = validated(text);
    assert_eq!(report.errors(), 0, "{:#?}", report.diagnostics);
    let s = report.into_valid_set().unwrap();
    let h = quorate::plan::hash::instance_hash("app", &s.bundles["app"], 0);
    let o = snapshot::parse(
        FileId(0),
        format!("nodes:\n  n0: {{state: online, since: 100, instances: [{{bundle: app, index: 0, specHash: {h}}}]}}\n  n1: {{state: online, since: 100, instances: []}}\n").as_bytes(),
    )
    .unwrap();
    let p = run(&s, &o);
    let kv = step(
        &p,
        |op| matches!(op, StepOp::Start { bundle, .. } if bundle.as_str() == "kv"),
    );
    assert_eq!(promote_of(&p, 0).op.node(), kv.op.node());
    assert!(
        !p.steps
            .iter()
            .any(|x| matches!(&x.op, StepOp::Start { bundle, .. } if bundle.as_str() == "app")),
        "{p:#?}"
    );
    assert!(
        p.steps
            .iter()
            .any(|x| matches!(&x.op, StepOp::Stop { bundle, .. } if bundle.as_str() == "app"))
    );
}

/// Found by `plan_properties` with `PROPTEST_CASES=4000 PROPTEST_RNG_SEED=7`: `b1`
/// follows `b0`'s promoted instance by `INFINITY` while `b0` follows `b1` (a plain
/// `INFINITY` colocation), and a location with `role: promoted` bans promotion on every
/// node. No instance of `b0` can be promoted, yet the plan started `b1` beside an
/// unpromoted `b0`: placed first in the cycle, `b1` left its colocation with `b0`'s
/// promoted instance to the cycle stage, which knows no roles. It now follows the
/// promoted instances of the round before, none here, so neither bundle is placed.
#[test]
fn a_colocation_with_a_primary_that_cannot_be_promoted_places_nothing() {
    let text = r#"apiVersion: quorate.io/v1alpha1
kind: Cluster
metadata: {name: c}
spec:
  nodes:
    - {name: n0, runtime: 'podman+unix:///n0', votes: 0, attributes: {kernel: '5.5'}}
    - {name: n1, runtime: 'podman+unix:///n1', votes: 0, attributes: {kernel: '5.5'}}
    - {name: n2, runtime: 'podman+unix:///n2', votes: 1, attributes: {kernel: '5.5'}}
  quorum: {reconcilerVotes: 0}
  fencing: {enabled: false}
---
apiVersion: quorate.io/v1alpha1
kind: Bundle
metadata: {name: b0}
spec: {image: img0, replicas: 1, recovery: restart, promotable: {maxPromoted: 1, maxPromotedPerNode: 1, promote: [p], demote: [d], role: [r]}}
---
apiVersion: quorate.io/v1alpha1
kind: Bundle
metadata: {name: b1}
spec: {image: img1, replicas: 1, recovery: restart, priority: 1}
---
apiVersion: quorate.io/v1alpha1
kind: Constraint
metadata: {name: loc0}
spec: {location: {bundle: b0, node: n0, score: -INFINITY}}
---
apiVersion: quorate.io/v1alpha1
kind: Constraint
metadata: {name: loc1}
spec: {location: {bundle: b0, rule: {attribute: kernel, operator: gte, value: '5.5', type: version}, score: -INFINITY, role: promoted}}
---
apiVersion: quorate.io/v1alpha1
kind: Constraint
metadata: {name: col0}
spec: {colocation: {bundle: b1, with: b0, score: INFINITY, role: promoted}}
---
apiVersion: quorate.io/v1alpha1
kind: Constraint
metadata: {name: col1}
spec: {colocation: {bundle: b0, with: b1, score: INFINITY}}
"#;
    let report = validated(text);
    assert_eq!(report.errors(), 0, "{:#?}", report.diagnostics);
    let s = report.into_valid_set().unwrap();
    let o = Observed::fresh(&s);
    let p = plan(&s, &o, &Options::default());
    let end = quorate::plan::apply::expected_state(&s, &o, &p);
    for (node, n) in &end.nodes {
        let has = |bundle: &str, promoted: bool| {
            n.instances.iter().any(|i| {
                i.bundle.as_str() == bundle
                    && (!promoted || i.role.as_ref().is_some_and(|r| r.promoted))
            })
        };
        assert!(
            !has("b1", false) || has("b0", true),
            "b1 on {node} without b0's primary: {p:#?}"
        );
    }
}

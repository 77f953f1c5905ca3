//! Suspended bundles (`quorate suspend`) in the plan: their instances are shown as
//! observed, "suspended, not managed", and get no step. Whether a bundle is suspended is
//! decided by [`Suspended::covers`](crate::observed::Suspended::covers); placement pins
//! its instances where they run (`placement::Placer::suspended`), the step builder skips
//! them (`changes.rs`), and a lost node holding only them is not fenced
//! (`current.rs::spared_by_suspension`).

use super::current::{Copy, Current, Whereabouts};
use super::model::Unmanaged;
use crate::observed::InstanceState;
use crate::spec::Name;
use crate::spec::bundle::instance_name;

/// The entries of the instances `0..replicas` of `bundle` (suspended, for `why`): one per
/// instance observed somewhere, and one counting those observed nowhere.
pub(super) fn entries(
    current: &Current<'_>,
    bundle: &Name,
    replicas: u32,
    why: &str,
) -> Vec<Unmanaged> {
    let mut out = Vec::new();
    let mut nowhere: Option<Unmanaged> = None;
    for index in 0..replicas {
        let copies = current.of(bundle.as_str(), index);
        if copies.is_empty() {
            match &mut nowhere {
                Some(n) => n.count = n.count.saturating_add(1),
                None => nowhere = Some(entry(bundle, index, copies, why)),
            }
        } else {
            out.push(entry(bundle, index, copies, why));
        }
    }
    out.extend(nowhere);
    out
}

/// The entry of one instance of a suspended bundle, with the copies observed of it.
pub(super) fn entry(bundle: &Name, index: u32, copies: &[Copy<'_>], why: &str) -> Unmanaged {
    Unmanaged {
        instance: instance_name(bundle.as_str(), index),
        bundle: bundle.clone(),
        on: copies
            .iter()
            .map(|c| (c.node.clone(), state(c).to_owned()))
            .collect(),
        reason: format!("suspended, not managed: {why}"),
        count: 1,
    }
}

fn state(c: &Copy<'_>) -> &'static str {
    match (c.whereabouts, c.state) {
        (Whereabouts::Unknown, _) => "lost",
        (Whereabouts::Gone, _) => "gone",
        (Whereabouts::Reachable, InstanceState::Running) => "running",
        (Whereabouts::Reachable, InstanceState::Failed) => "failed",
        (Whereabouts::Reachable, InstanceState::Stopped) => "stopped",
    }
}

#[cfg(test)]
mod tests {
    use crate::observed::{NodeState, Observed, Suspension, snapshot};
    use crate::plan::{ActionType, Options, Plan, StepOp, plan};
    use crate::source::{FileId, Sources};
    use crate::spec::SpecSet;

    const SPECS: &str = "apiVersion: quorate.io/v1alpha1
kind: Cluster
metadata: {name: c}
spec:
  nodes:
    - {name: n1, runtime: 'podman+unix:///n1.sock'}
    - {name: n2, runtime: 'podman+unix:///n2.sock'}
    - {name: n3, runtime: 'podman+unix:///n3.sock'}
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
metadata: {name: db}
spec: {image: pg, replicas: 1, recovery: fence}
---
apiVersion: quorate.io/v1alpha1
kind: Bundle
metadata: {name: web}
spec: {image: nginx, replicas: 2, recovery: restart}
---
apiVersion: quorate.io/v1alpha1
kind: Constraint
metadata: {name: web-with-db}
spec: {colocation: {bundle: web, with: db, score: 500}}
";

    fn spec() -> SpecSet {
        let mut s = Sources::new();
        s.add("c.yaml", SPECS.as_bytes().to_vec());
        crate::validate::validate(&s).into_valid_set().unwrap()
    }

    /// `db-0` on n1 with an old spec hash (a restart is due), `web-0` stopped on n2.
    fn observed() -> Observed {
        snapshot::parse(
            FileId(0),
            b"nodes:
  n1: {instances: [{bundle: db, index: 0, specHash: old}]}
  n2: {instances: [{bundle: web, index: 0, specHash: old, state: stopped}]}
  n3: {}
",
        )
        .unwrap()
    }

    fn suspend(o: &mut Observed, bundle: Option<&str>) {
        let s = Suspension::new(1, Some("upgrading by hand"));
        match bundle {
            Some(b) => {
                o.suspended.bundles.insert(b.to_owned(), s);
            }
            None => o.suspended.cluster = Some(s),
        }
    }

    /// Whether a step of `p` touches `bundle`, or fences any node.
    fn touches(p: &Plan, bundle: &str) -> bool {
        p.steps
            .iter()
            .any(|s| s.op.instance().is_some_and(|(b, _)| b.as_str() == bundle))
    }

    #[test]
    fn a_suspended_bundle_gets_no_step_and_is_shown_where_it_runs() {
        let s = spec();
        let mut o = observed();
        let before = plan(&s, &o, &Options::default());
        assert!(touches(&before, "db"), "the restart is due: {before:#?}");
        suspend(&mut o, Some("db"));
        let p = plan(&s, &o, &Options::default());
        assert!(!touches(&p, "db"), "{p:#?}");
        assert_eq!(p.suspended.len(), 1, "{:#?}", p.suspended);
        assert_eq!(p.suspended[0].instance, "db-0");
        assert_eq!(
            p.suspended[0].on,
            [("n1".parse().unwrap(), "running".to_owned())]
        );
        assert!(
            p.suspended[0].reason.contains("suspended, not managed")
                && p.suspended[0].reason.contains("upgrading by hand"),
            "{}",
            p.suspended[0].reason
        );
        // web is managed still, and keeps its colocation with db where db runs.
        assert!(touches(&p, "web"));
        let web_nodes: Vec<&str> = p
            .steps
            .iter()
            .filter_map(|s| match &s.op {
                StepOp::Start { node, bundle, .. } if bundle.as_str() == "web" => {
                    Some(node.as_str())
                }
                _ => None,
            })
            .collect();
        assert!(web_nodes.contains(&"n1"), "{web_nodes:?}");
    }

    #[test]
    fn a_lost_node_is_not_fenced_while_the_cluster_is_suspended() {
        let s = spec();
        let mut o = observed();
        o.fail_node(&"n1".parse().unwrap());
        let before = plan(&s, &o, &Options::default());
        assert!(before.actions.iter().any(|a| a.kind == ActionType::Fence));
        suspend(&mut o, None);
        let p = plan(&s, &o, &Options::default());
        assert!(p.steps.is_empty() && p.actions.is_empty(), "{p:#?}");
        assert_eq!(p.changes, 0);
        let db = p.suspended.iter().find(|u| u.instance == "db-0").unwrap();
        assert_eq!(db.on, [("n1".parse().unwrap(), "lost".to_owned())]);
        // web-1 runs nowhere: counted in one entry with nothing observed.
        assert!(
            p.suspended
                .iter()
                .any(|u| u.instance == "web-1" && u.on.is_empty())
        );
    }

    #[test]
    fn a_lost_node_holding_only_suspended_instances_is_not_fenced_others_are() {
        let s = spec();
        let mut o = observed();
        o.fail_node(&"n1".parse().unwrap());
        suspend(&mut o, Some("db"));
        let p = plan(&s, &o, &Options::default());
        assert!(
            !p.actions.iter().any(|a| a.kind == ActionType::Fence),
            "{p:#?}"
        );
        assert!(!touches(&p, "db"));
        // A managed instance on the lost node too: the node is fenced for it, and only
        // it is recovered.
        o.nodes
            .get_mut("n1")
            .unwrap()
            .instances
            .push(crate::observed::ObservedInstance {
                bundle: "web".parse().unwrap(),
                index: 1,
                spec_hash: "old".into(),
                state: crate::observed::InstanceState::Running,
                role: None,
            });
        let p = plan(&s, &o, &Options::default());
        assert!(
            p.actions.iter().any(|a| a.kind == ActionType::Fence),
            "{p:#?}"
        );
        assert!(!touches(&p, "db"));
        assert!(touches(&p, "web"));
    }

    #[test]
    fn after_resume_the_plan_starts_from_what_is_observed_and_converges() {
        let s = spec();
        let mut o = observed();
        // db-0 was stopped by hand while suspended.
        o.nodes.get_mut("n1").unwrap().instances[0].state = crate::observed::InstanceState::Stopped;
        suspend(&mut o, None);
        assert!(plan(&s, &o, &Options::default()).steps.is_empty());
        o.suspended = Default::default();
        let p = plan(&s, &o, &Options::default());
        assert!(touches(&p, "db"), "db-0 is started again: {p:#?}");
        let next = crate::plan::apply::expected_state(&s, &o, &p);
        let again = plan(&s, &next, &Options::default());
        assert_eq!(again.changes, 0, "{again:#?}");
        assert!(next.nodes.values().all(|n| n.state == NodeState::Online));
    }
}

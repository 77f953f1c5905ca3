//! One observation, one meaning of "fenced": the observed state assembled from what each
//! node answered, what the store remembers of it, and the fence evidence. Every command
//! that observes goes through [`assemble`]: `quorate run` and the simulation
//! (`reconcile/observe.rs`), `quorate observe` and `quorate plan --live`
//! (`runtime/cluster.rs`). Pure: the callers do the listing, the reading and the writing.
//!
//! The rules (invariants 1 and 3):
//! - a node that answered is online, with the instances it listed;
//! - a node silent for less than the dead time is suspect: it keeps what the store
//!   remembers, and the reconciler decides nothing until it answers or is lost;
//! - a lost node counts as fenced only with off evidence (a confirmed fence, an operator's
//!   confirmation) newer than the last time it was known to be up. That time is durable
//!   and is written before every start on the node, so neither a restarted reconciler nor
//!   a node that came back and was given an instance can pass an old fence for a new one;
//! - any other lost node holds what the store remembers (its last listing plus every start
//!   since); if it was never listed, it may hold any single-writer instance that runs on no
//!   node that answered, so the planner fences it before starting one elsewhere.

use std::collections::{BTreeMap, BTreeSet};

use crate::fence::log::OffEvidence;
use crate::observed::{
    Failures, InstanceState, ManualConfirmation, NodeState, Observed, ObservedInstance,
    ObservedNode, Timestamp,
};
use crate::runtime::ContainerState;
use crate::runtime::from_spec::observed_instances;
use crate::spec::bundle::Recovery;
use crate::spec::{Name, SpecSet};

/// What the store remembers of one node. Both parts survive restarts of the reconciler.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Remembered {
    /// Its last listing plus every instance started there since (written before the
    /// start, so a crash never hides one). `None` for a node never listed.
    pub contents: Option<Vec<ObservedInstance>>,
    /// When it last answered, or was about to be given an instance (Unix ms).
    pub last_seen_unix_ms: Option<i64>,
}

/// What was heard from a node in this observation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heard {
    /// It listed its containers.
    Listed(Vec<ContainerState>),
    /// It did not answer, for less than the dead time.
    Suspect,
    /// It did not answer, for the dead time or longer (a one-shot observation has no dead
    /// time: a node that does not answer is lost).
    Lost,
}

/// Everything known about one node for this observation.
#[derive(Debug, Clone)]
pub struct NodeReport {
    /// The node.
    pub node: Name,
    /// What it answered.
    pub heard: Heard,
    /// Since when it is in its current state (Unix s), when the caller tracks that.
    pub since: Option<Timestamp>,
    /// What the store remembers of it; `last_seen_unix_ms` is the latest of the durable
    /// time and any the caller saw itself.
    pub remembered: Remembered,
    /// The latest evidence that it is off, if the fence log holds any still in force.
    pub evidence: Option<OffEvidence>,
    /// Running instances that fail their health check (the monitor's verdict).
    pub failing: BTreeSet<String>,
    /// Names of unmanaged containers that clash with an instance name.
    pub conflicts: Vec<String>,
    /// Put in standby by an operator.
    pub standby: bool,
}

impl NodeReport {
    /// A report with nothing remembered and no evidence.
    pub fn new(node: Name, heard: Heard) -> NodeReport {
        NodeReport {
            node,
            heard,
            since: None,
            remembered: Remembered::default(),
            evidence: None,
            failing: BTreeSet::new(),
            conflicts: Vec::new(),
            standby: false,
        }
    }
}

/// The assembled observation, and what the caller should record.
#[derive(Debug, Clone, Default)]
pub struct Assembled {
    /// The state for the planner.
    pub observed: Observed,
    /// Nodes still suspect: no decision until they answer or are lost.
    pub suspect: Vec<Name>,
    /// Instances that ran at the last look and have exited since, by node: failures.
    pub exited: Vec<(Name, String)>,
    /// Listings that differ from what the store remembers: the new contents to record.
    pub listed: Vec<(Name, Vec<ObservedInstance>)>,
    /// Lost nodes never listed, whose contents are assumed (any single-writer instance
    /// that runs on no node that answered).
    pub assumed: Vec<Name>,
}

/// When the evidence was recorded (Unix ms).
fn evidence_at(e: &OffEvidence) -> i64 {
    match e {
        OffEvidence::Fenced { at_unix_ms, .. } | OffEvidence::Manual { at_unix_ms, .. } => {
            *at_unix_ms
        }
    }
}

fn seconds(unix_ms: i64) -> Timestamp {
    u64::try_from(unix_ms / 1000).unwrap_or(0)
}

/// Whether `evidence` proves the node off now: it must be newer than the last time the
/// node was known to be up (invariants 1 and 3). Without any such time the node was never
/// seen up since the evidence was recorded.
pub fn proves_off(evidence: &OffEvidence, last_seen_unix_ms: Option<i64>) -> bool {
    last_seen_unix_ms.is_none_or(|seen| evidence_at(evidence) > seen)
}

/// Assembles the observed state at `now_unix_ms` from one report per node of `spec` and
/// the fail counts by (node, instance name).
pub fn assemble(
    spec: &SpecSet,
    reports: Vec<NodeReport>,
    failures: &BTreeMap<(String, String), Failures>,
    now_unix_ms: i64,
) -> Assembled {
    let now = seconds(now_unix_ms);
    let mut out = Assembled {
        observed: Observed {
            now,
            ..Observed::default()
        },
        ..Assembled::default()
    };
    for report in reports {
        let name = report.node.clone();
        let node = node_state(spec, report, now, &mut out);
        out.observed.nodes.insert(name, node);
    }
    for ((node, instance), f) in failures {
        if let Some(n) = out.observed.nodes.get_mut(node.as_str()) {
            n.failures.insert(instance.clone(), *f);
        }
    }
    assume_anything_on(spec, &mut out.observed, &out.assumed);
    out
}

/// One node's observed state; notes what the caller must record in `out`.
fn node_state(spec: &SpecSet, r: NodeReport, now: Timestamp, out: &mut Assembled) -> ObservedNode {
    let mut node = ObservedNode {
        since: r.since,
        standby: r.standby,
        conflicts: r.conflicts,
        ..ObservedNode::default()
    };
    let remembered = r.remembered.contents;
    match r.heard {
        Heard::Listed(containers) => {
            let found = instances(spec.cluster_name.as_str(), &containers, &r.failing);
            // A container that ran at the last look and has exited since failed (counted
            // unless its bundle's `onFail` is `ignore` or `block`).
            for i in found.iter().filter(|i| {
                i.state == InstanceState::Stopped
                    && spec
                        .bundles
                        .get(&i.bundle)
                        .is_none_or(|b| b.monitor.on_fail.counts_failures())
            }) {
                let ran = remembered.iter().flatten().any(|p| {
                    p.bundle == i.bundle && p.index == i.index && p.state != InstanceState::Stopped
                });
                if ran {
                    out.exited.push((r.node.clone(), i.name()));
                }
            }
            if remembered.as_deref() != Some(found.as_slice()) {
                out.listed.push((r.node.clone(), found.clone()));
            }
            node.state = NodeState::Online;
            node.instances = found;
        }
        Heard::Suspect => {
            out.suspect.push(r.node.clone());
            node.instances = remembered.unwrap_or_default();
        }
        Heard::Lost => match r.evidence {
            Some(e) if proves_off(&e, r.remembered.last_seen_unix_ms) => {
                node.state = NodeState::Fenced;
                node.since = Some(seconds(evidence_at(&e)));
                if let OffEvidence::Manual { by, at_unix_ms } = e {
                    out.observed.confirmations.push(ManualConfirmation {
                        node: r.node.clone(),
                        by,
                        at: seconds(at_unix_ms),
                    });
                }
            }
            _ => {
                node.state = NodeState::Lost;
                node.since = r
                    .since
                    .or(r.remembered.last_seen_unix_ms.map(seconds))
                    .or(Some(now));
                match remembered {
                    Some(contents) => node.instances = contents,
                    None => out.assumed.push(r.node.clone()),
                }
            }
        },
    }
    node
}

/// Instances of `cluster` among `containers` (the drivers list only the cluster's own;
/// this holds whatever a driver returns), with the monitor's verdict: a running instance
/// whose check fails is `Failed`.
fn instances(
    cluster: &str,
    containers: &[ContainerState],
    failing: &BTreeSet<String>,
) -> Vec<ObservedInstance> {
    let ours: Vec<ContainerState> = containers
        .iter()
        .filter(|c| c.labels.as_ref().is_some_and(|l| l.cluster == cluster))
        .cloned()
        .collect();
    let mut found = observed_instances(&ours);
    for i in &mut found {
        if i.state == InstanceState::Running && failing.contains(&i.name()) {
            i.state = InstanceState::Failed;
        }
    }
    found
}

/// A lost node whose contents were never listed may run any single-writer instance that
/// runs on no node that answered: list them there, so the planner fences before recovering.
fn assume_anything_on(spec: &SpecSet, observed: &mut Observed, nodes: &[Name]) {
    if nodes.is_empty() {
        return;
    }
    let running: BTreeSet<(&Name, u32)> = observed
        .nodes
        .values()
        .filter(|n| n.state == NodeState::Online)
        .flat_map(|n| {
            n.instances
                .iter()
                .filter(|i| i.state != InstanceState::Stopped)
        })
        .map(|i| (&i.bundle, i.index))
        .collect();
    let maybe: Vec<ObservedInstance> = spec
        .bundles
        .iter()
        .filter(|(_, b)| b.recovery == Recovery::Fence)
        .flat_map(|(name, b)| (0..b.replicas).map(move |i| (name, i)))
        .filter(|key| !running.contains(key))
        .map(|(bundle, index)| ObservedInstance {
            bundle: bundle.clone(),
            index,
            spec_hash: String::new(),
            state: InstanceState::Running,
            role: None,
        })
        .collect();
    for node in nodes {
        if let Some(n) = observed.nodes.get_mut(node) {
            n.instances = maybe.clone();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{ContainerStatus, InstanceLabels};

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
kind: Bundle
metadata: {name: db}
spec: {image: i, replicas: 2, recovery: fence}
---
apiVersion: quorate.io/v1alpha1
kind: Bundle
metadata: {name: web}
spec: {image: i, recovery: restart}
";

    fn spec() -> SpecSet {
        let mut s = crate::source::Sources::new();
        s.add("c.yaml", SPECS.as_bytes().to_vec());
        crate::validate::validate(&s).into_valid_set().unwrap()
    }

    fn name(s: &str) -> Name {
        s.parse().unwrap()
    }

    fn container(bundle: &str, index: u32, status: ContainerStatus) -> ContainerState {
        ContainerState {
            id: format!("{bundle}{index}"),
            name: format!("{bundle}-{index}"),
            labels: Some(InstanceLabels {
                cluster: "c".into(),
                bundle: bundle.into(),
                index,
                spec_hash: "h".into(),
                commit: "x".into(),
            }),
            status,
            exit_code: None,
            started_at: None,
            finished_at: None,
            image: "i".into(),
            restart_policy: None,
            addresses: Default::default(),
        }
    }

    fn instance(bundle: &str, index: u32, state: InstanceState) -> ObservedInstance {
        ObservedInstance {
            bundle: name(bundle),
            index,
            spec_hash: "h".into(),
            state,
            role: None,
        }
    }

    fn report(node: &str, heard: Heard) -> NodeReport {
        NodeReport::new(name(node), heard)
    }

    fn fenced_at(at_unix_ms: i64) -> Option<OffEvidence> {
        Some(OffEvidence::Fenced {
            level: 1,
            at_unix_ms,
        })
    }

    #[test]
    fn answering_nodes_are_online_silent_ones_lost_or_suspect() {
        let running = container("db", 0, ContainerStatus::Running);
        let a = assemble(
            &spec(),
            vec![
                report("n1", Heard::Listed(vec![running])),
                report("n2", Heard::Suspect),
                report("n3", Heard::Lost),
            ],
            &BTreeMap::new(),
            1_000_000,
        );
        let o = &a.observed;
        assert_eq!(o.now, 1_000);
        assert_eq!(o.nodes["n1"].state, NodeState::Online);
        assert_eq!(
            o.nodes["n1"].instances,
            [instance("db", 0, InstanceState::Running)]
        );
        assert_eq!(a.suspect, [name("n2")]);
        assert_eq!(o.nodes["n3"].state, NodeState::Lost);
        assert_eq!(o.nodes["n3"].since, Some(1_000), "lost since now");
        assert_eq!(a.listed, [(name("n1"), o.nodes["n1"].instances.clone())]);
    }

    #[test]
    fn evidence_counts_only_when_newer_than_the_last_time_the_node_was_up() {
        let mut old = report("n1", Heard::Lost);
        old.evidence = fenced_at(5_000);
        old.remembered = Remembered {
            contents: Some(vec![instance("db", 0, InstanceState::Running)]),
            last_seen_unix_ms: Some(9_000),
        };
        let mut fresh = report("n2", Heard::Lost);
        fresh.evidence = fenced_at(9_500);
        fresh.remembered.last_seen_unix_ms = Some(9_000);
        let mut never_seen = report("n3", Heard::Lost);
        never_seen.evidence = Some(OffEvidence::Manual {
            by: "alice".into(),
            at_unix_ms: 7_000,
        });
        let o = assemble(
            &spec(),
            vec![old, fresh, never_seen],
            &BTreeMap::new(),
            10_000,
        )
        .observed;
        // The fence of n1 is older than its last answer: it may run db-0 again.
        assert_eq!(o.nodes["n1"].state, NodeState::Lost);
        assert_eq!(
            o.nodes["n1"].instances,
            [instance("db", 0, InstanceState::Running)]
        );
        assert_eq!(o.nodes["n1"].since, Some(9), "lost since it was last seen");
        assert_eq!(o.nodes["n2"].state, NodeState::Fenced);
        assert_eq!(o.nodes["n2"].since, Some(9));
        assert!(o.nodes["n2"].instances.is_empty());
        assert_eq!(o.nodes["n3"].state, NodeState::Fenced);
        assert_eq!(
            o.confirmations,
            [ManualConfirmation {
                node: name("n3"),
                by: "alice".into(),
                at: 7
            }]
        );
    }

    #[test]
    fn evidence_does_not_make_an_answering_node_fenced() {
        let mut r = report("n1", Heard::Listed(Vec::new()));
        r.evidence = fenced_at(5_000);
        let o = assemble(&spec(), vec![r], &BTreeMap::new(), 10_000).observed;
        assert_eq!(o.nodes["n1"].state, NodeState::Online);
    }

    #[test]
    fn a_lost_node_never_listed_may_hold_any_single_writer_instance_not_running_elsewhere() {
        let a = assemble(
            &spec(),
            vec![
                report(
                    "n1",
                    Heard::Listed(vec![container("db", 0, ContainerStatus::Running)]),
                ),
                report("n2", Heard::Lost),
            ],
            &BTreeMap::new(),
            10_000,
        );
        assert_eq!(a.assumed, [name("n2")]);
        let n2 = &a.observed.nodes["n2"].instances;
        assert_eq!(n2.len(), 1, "{n2:?}");
        assert_eq!((n2[0].bundle.as_str(), n2[0].index), ("db", 1));
    }

    #[test]
    fn suspects_keep_what_was_remembered_and_exits_are_failures() {
        let mut suspect = report("n1", Heard::Suspect);
        suspect.remembered.contents = Some(vec![instance("web", 0, InstanceState::Running)]);
        let mut exited = report(
            "n2",
            Heard::Listed(vec![container("db", 0, ContainerStatus::Exited)]),
        );
        exited.remembered.contents = Some(vec![instance("db", 0, InstanceState::Running)]);
        let failures = BTreeMap::from([(
            ("n2".to_owned(), "db-0".to_owned()),
            Failures {
                count: 3,
                last: Some(9),
            },
        )]);
        let a = assemble(&spec(), vec![suspect, exited], &failures, 10_000);
        assert_eq!(
            a.observed.nodes["n1"].instances,
            [instance("web", 0, InstanceState::Running)]
        );
        assert_eq!(a.exited, [(name("n2"), "db-0".to_owned())]);
        assert_eq!(a.observed.nodes["n2"].failures["db-0"].count, 3);
        assert_eq!(
            a.listed,
            [(name("n2"), vec![instance("db", 0, InstanceState::Stopped)])]
        );
    }
}

//! Observing every node of a spec set at once, into the planner's [`Observed`] model:
//! what `quorate observe` and `quorate plan --live` run.
//!
//! Each node's runtime is asked for its containers with one list call, all nodes in
//! parallel, each call bounded by the timeout. A node that answers is `online` with its
//! instances; one that does not is `lost`, unless the fence log holds evidence that it is
//! off (a confirmed fence, or an operator's confirmation), which makes it `fenced`
//! (design invariant 3: only that evidence lets its instances start elsewhere).
//!
//! A single pass cannot know what ran on a node that does not answer. Given the previous
//! snapshot, a lost node keeps the instances last seen there and the time it was first
//! seen lost, so the planner guards them (invariant 1); without one it has none.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures_util::future::join_all;

use super::from_spec::{connection, observed_instances};
use super::{ContainerState, RuntimeError, connect};
use crate::fence::FenceLog;
use crate::fence::log::{FenceLogError, OffEvidence};
use crate::observed::{ManualConfirmation, NodeState, Observed, ObservedNode, Timestamp};
use crate::spec::{Name, SpecSet};

/// What one node's runtime answered.
#[derive(Debug)]
pub struct NodeObservation {
    /// The node.
    pub node: Name,
    /// Its containers of this cluster, or why it could not be asked.
    pub result: Result<Vec<ContainerState>, RuntimeError>,
    /// How long it took to answer or fail.
    pub took: Duration,
}

/// Lists the containers of every node of `set`, in parallel, each node's call bounded
/// by `timeout`. Only containers labelled with the set's cluster count
/// ([`Connection::for_cluster`](super::Connection::for_cluster)). In node order.
pub async fn observe_nodes(set: &SpecSet, timeout: Duration) -> Vec<NodeObservation> {
    let cluster = set.cluster_name.as_str();
    join_all(set.cluster.nodes.iter().map(|node| async move {
        let start = Instant::now();
        let result = async {
            let conn = connection(node, timeout)?.for_cluster(cluster);
            connect(conn)?.list().await
        }
        .await;
        NodeObservation {
            node: node.name.clone(),
            result,
            took: start.elapsed(),
        }
    }))
    .await
}

/// The evidence in `log` that each node of `set` is off, by node name.
pub async fn off_evidence(
    set: &SpecSet,
    log: &dyn FenceLog,
) -> Result<BTreeMap<Name, OffEvidence>, FenceLogError> {
    let mut out = BTreeMap::new();
    for node in &set.cluster.nodes {
        if let Some(e) = log.off_evidence(node.name.as_str()).await? {
            out.insert(node.name.clone(), e);
        }
    }
    Ok(out)
}

/// When the evidence was recorded, in Unix seconds.
fn evidence_at(e: &OffEvidence) -> Timestamp {
    let ms = match e {
        OffEvidence::Fenced { at_unix_ms, .. } | OffEvidence::Manual { at_unix_ms, .. } => {
            *at_unix_ms
        }
    };
    u64::try_from(ms / 1000).unwrap_or(0)
}

/// Builds the snapshot at `now` from what the nodes answered and, when a fence log was
/// read, the evidence it holds (`None`: no fence log, so no node counts as fenced and the
/// previous snapshot's confirmations are kept). `previous` carries the last-known state
/// of nodes that do not answer now, and every node's failures and standby.
pub fn assemble(
    nodes: &[NodeObservation],
    evidence: Option<&BTreeMap<Name, OffEvidence>>,
    previous: Option<&Observed>,
    now: Timestamp,
) -> Observed {
    let mut observed = Observed {
        now,
        ..Observed::default()
    };
    for n in nodes {
        let before = previous.and_then(|p| p.nodes.get(&n.node));
        let off = evidence.and_then(|e| e.get(&n.node));
        let mut node = ObservedNode {
            standby: before.is_some_and(|b| b.standby),
            failures: before.map(|b| b.failures.clone()).unwrap_or_default(),
            ..ObservedNode::default()
        };
        match (&n.result, off) {
            (Ok(containers), _) => {
                node.state = NodeState::Online;
                node.instances = observed_instances(containers);
            }
            (Err(_), Some(e)) => {
                node.state = NodeState::Fenced;
                node.since = Some(evidence_at(e));
                node.instances = before.map(|b| b.instances.clone()).unwrap_or_default();
            }
            (Err(_), None) => {
                node.state = NodeState::Lost;
                node.since = match before {
                    Some(b) if b.state == NodeState::Lost => b.since.or(Some(now)),
                    _ => Some(now),
                };
                node.instances = before.map(|b| b.instances.clone()).unwrap_or_default();
            }
        }
        observed.nodes.insert(n.node.clone(), node);
    }
    observed.confirmations = match evidence {
        Some(e) => e
            .iter()
            .filter_map(|(node, ev)| match ev {
                OffEvidence::Manual { by, .. } => Some(ManualConfirmation {
                    node: node.clone(),
                    by: by.clone(),
                    at: evidence_at(ev),
                }),
                OffEvidence::Fenced { .. } => None,
            })
            .collect(),
        None => previous
            .map(|p| p.confirmations.clone())
            .unwrap_or_default(),
    };
    observed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observed::{Failures, InstanceState, ObservedInstance};
    use crate::runtime::{ContainerStatus, InstanceLabels};

    fn name(s: &str) -> Name {
        s.parse().unwrap()
    }

    fn answered(node: &str, containers: Vec<ContainerState>) -> NodeObservation {
        NodeObservation {
            node: name(node),
            result: Ok(containers),
            took: Duration::ZERO,
        }
    }

    fn silent(node: &str) -> NodeObservation {
        NodeObservation {
            node: name(node),
            result: Err(RuntimeError::Unreachable {
                endpoint: "podman+unix:///x".into(),
                reason: "refused".into(),
            }),
            took: Duration::ZERO,
        }
    }

    fn running(bundle: &str, index: u32) -> ContainerState {
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
            status: ContainerStatus::Running,
            exit_code: None,
            started_at: None,
            finished_at: None,
            image: "i".into(),
            restart_policy: None,
            addresses: Default::default(),
        }
    }

    fn instance(bundle: &str, index: u32) -> ObservedInstance {
        ObservedInstance {
            bundle: name(bundle),
            index,
            spec_hash: "h".into(),
            state: InstanceState::Running,
        }
    }

    #[test]
    fn answering_nodes_are_online_silent_ones_lost_since_now() {
        let o = assemble(
            &[answered("n1", vec![running("db", 0)]), silent("n2")],
            None,
            None,
            1_000,
        );
        assert_eq!(o.now, 1_000);
        assert_eq!(o.nodes["n1"].state, NodeState::Online);
        assert_eq!(o.nodes["n1"].since, None);
        assert_eq!(o.nodes["n1"].instances, [instance("db", 0)]);
        assert_eq!(o.nodes["n2"].state, NodeState::Lost);
        assert_eq!(o.nodes["n2"].since, Some(1_000));
        assert!(o.nodes["n2"].instances.is_empty());
        assert!(o.confirmations.is_empty());
    }

    #[test]
    fn evidence_makes_a_silent_node_fenced_but_not_an_answering_one() {
        let evidence = BTreeMap::from([
            (
                name("n1"),
                OffEvidence::Fenced {
                    level: 1,
                    at_unix_ms: 5_000,
                },
            ),
            (
                name("n2"),
                OffEvidence::Fenced {
                    level: 1,
                    at_unix_ms: 7_900,
                },
            ),
            (
                name("n3"),
                OffEvidence::Manual {
                    by: "alice".into(),
                    at_unix_ms: 9_000,
                },
            ),
        ]);
        let o = assemble(
            &[answered("n1", vec![]), silent("n2"), silent("n3")],
            Some(&evidence),
            None,
            10,
        );
        assert_eq!(o.nodes["n1"].state, NodeState::Online);
        assert_eq!(o.nodes["n2"].state, NodeState::Fenced);
        assert_eq!(o.nodes["n2"].since, Some(7));
        assert_eq!(o.nodes["n3"].state, NodeState::Fenced);
        assert_eq!(
            o.confirmations,
            [ManualConfirmation {
                node: name("n3"),
                by: "alice".into(),
                at: 9
            }]
        );
    }

    #[test]
    fn a_previous_snapshot_keeps_what_was_last_seen_on_a_lost_node() {
        let mut previous = assemble(
            &[
                answered("n1", vec![running("db", 0)]),
                answered("n2", vec![]),
            ],
            None,
            None,
            100,
        );
        let failures = Failures {
            count: 2,
            last: Some(90),
        };
        if let Some(n2) = previous.nodes.get_mut("n2") {
            n2.failures.insert("web-0".into(), failures);
            n2.standby = true;
        }
        previous.confirmations.push(ManualConfirmation {
            node: name("n9"),
            by: "bob".into(),
            at: 50,
        });
        let lost = assemble(
            &[silent("n1"), answered("n2", vec![])],
            None,
            Some(&previous),
            200,
        );
        assert_eq!(lost.nodes["n1"].state, NodeState::Lost);
        assert_eq!(lost.nodes["n1"].since, Some(200));
        assert_eq!(lost.nodes["n1"].instances, [instance("db", 0)]);
        assert_eq!(lost.nodes["n2"].failures["web-0"], failures);
        assert!(lost.nodes["n2"].standby);
        assert_eq!(lost.confirmations, previous.confirmations);
        // Still lost later: since stays when it was first seen lost.
        let later = assemble(
            &[silent("n1"), answered("n2", vec![])],
            None,
            Some(&lost),
            300,
        );
        assert_eq!(later.nodes["n1"].since, Some(200));
        assert_eq!(later.nodes["n1"].instances, [instance("db", 0)]);
        // A fence log is authoritative for confirmations.
        let logged = assemble(&[silent("n1")], Some(&BTreeMap::new()), Some(&lost), 300);
        assert!(logged.confirmations.is_empty());
        assert_eq!(logged.nodes["n1"].state, NodeState::Lost);
    }
}

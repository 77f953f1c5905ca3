//! Quorum: are the votes present a strict majority of the votes expected?

use super::model::QuorumStatus;
use crate::observed::{NodeState, Observed};
use crate::spec::SpecSet;

/// The quorum situation of `spec` given what was `observed`: every online node's votes
/// plus the reconciler's own, against the expected votes (design invariant 2 is checked
/// against this).
pub fn status(spec: &SpecSet, observed: &Observed) -> QuorumStatus {
    let node_votes: u32 = spec
        .cluster
        .nodes
        .iter()
        .filter(|n| observed.node_state(n.name.as_str()) == NodeState::Online)
        .map(|n| n.votes)
        .fold(0, u32::saturating_add);
    tally(spec, node_votes, observed.reconciler_votes)
}

/// The quorum situation when the online nodes hold `node_votes` and the reconciler
/// `own` votes (the cluster's `reconcilerVotes` when `None`).
pub fn tally(spec: &SpecSet, node_votes: u32, own: Option<u32>) -> QuorumStatus {
    let cluster = &spec.cluster;
    let own = own.unwrap_or(cluster.quorum.reconciler_votes);
    let present = node_votes.saturating_add(own);
    let expected = cluster.expected_votes();
    QuorumStatus {
        present,
        expected,
        quorate: u64::from(present) * 2 > u64::from(expected),
        policy: cluster.quorum.no_quorum_policy,
    }
}

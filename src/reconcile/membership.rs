//! Membership: which nodes answer, which are suspect, which are lost.
//!
//! Probes report whether each node's runtime answered. A node that stops answering is
//! suspect at once and lost after the cluster's dead time; one that answers again is
//! online. Nothing is decided about a suspect node: the reconciler waits for it to
//! answer or be declared lost, so a short blip never causes a fence.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::spec::{Name, SpecSet};

/// What a node is, as far as membership knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// Answered at the last probe.
    Online,
    /// Stopped answering less than the dead time ago (or never answered yet).
    Suspect,
    /// Has not answered for the dead time.
    Lost,
}

#[derive(Debug, Clone)]
struct Node {
    /// When it last answered (monotonic), if ever since start.
    last_seen: Option<Instant>,
    /// When it last answered (Unix ms), to compare with fence records.
    last_seen_unix_ms: Option<i64>,
    /// When it first failed to answer since it last answered.
    silent_since: Instant,
    /// Wall time (Unix s) the current state began.
    since_unix: u64,
    reachable: bool,
}

/// Liveness of every node of the spec.
#[derive(Debug, Clone)]
pub struct Membership {
    nodes: BTreeMap<Name, Node>,
    dead_time: Duration,
}

impl Membership {
    /// Every node of `spec`, none seen yet: each is suspect until it answers, and lost if
    /// it does not within the dead time.
    pub fn new(spec: &SpecSet, now: Instant, now_unix: u64) -> Membership {
        Membership {
            nodes: spec
                .cluster
                .nodes
                .iter()
                .map(|n| {
                    (
                        n.name.clone(),
                        Node {
                            last_seen: None,
                            last_seen_unix_ms: None,
                            silent_since: now,
                            since_unix: now_unix,
                            reachable: false,
                        },
                    )
                })
                .collect(),
            dead_time: spec.cluster.membership.dead_time.get(),
        }
    }

    /// Adopts a new spec: keeps what is known of nodes still in it, adds new ones.
    pub fn respec(&mut self, spec: &SpecSet, now: Instant, now_unix: u64) {
        let mut next = Membership::new(spec, now, now_unix);
        for (name, node) in &mut next.nodes {
            if let Some(old) = self.nodes.get(name) {
                *node = old.clone();
            }
        }
        *self = next;
    }

    /// Records a probe of `node`; returns whether its liveness changed.
    pub fn probe(&mut self, node: &str, answered: bool, now: Instant, now_unix_ms: i64) -> bool {
        let before = self.liveness(node, now);
        let Some(n) = self.nodes.get_mut(node) else {
            return false;
        };
        if answered {
            n.last_seen = Some(now);
            n.last_seen_unix_ms = Some(now_unix_ms);
            if !n.reachable {
                n.since_unix = u64::try_from(now_unix_ms / 1000).unwrap_or(0);
            }
            n.reachable = true;
        } else if n.reachable {
            // The dead time counts from the last answer, not from this failed probe
            // (which may itself have waited for its timeout).
            n.reachable = false;
            n.silent_since = n.last_seen.unwrap_or(now);
            n.since_unix = u64::try_from(now_unix_ms / 1000).unwrap_or(0);
        }
        before != self.liveness(node, now)
    }

    /// The liveness of `node` at `now`.
    pub fn liveness(&self, node: &str, now: Instant) -> Liveness {
        match self.nodes.get(node) {
            None => Liveness::Lost,
            Some(n) if n.reachable => Liveness::Online,
            Some(n) if now.duration_since(n.silent_since) >= self.dead_time => Liveness::Lost,
            Some(_) => Liveness::Suspect,
        }
    }

    /// Whether `node` answered once and has stopped answering since.
    pub fn stopped_answering(&self, node: &str) -> bool {
        self.nodes
            .get(node)
            .is_some_and(|n| !n.reachable && n.last_seen.is_some())
    }

    /// When the node becomes lost if it stays silent (for scheduling the next pass).
    pub fn lost_at(&self, node: &str) -> Option<Instant> {
        self.nodes
            .get(node)
            .filter(|n| !n.reachable)
            .map(|n| n.silent_since + self.dead_time)
    }

    /// When `node` last answered (Unix ms).
    pub fn last_seen_unix_ms(&self, node: &str) -> Option<i64> {
        self.nodes.get(node).and_then(|n| n.last_seen_unix_ms)
    }

    /// Since when `node` is in its current state (Unix s).
    pub fn since_unix(&self, node: &str) -> Option<u64> {
        self.nodes.get(node).map(|n| n.since_unix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> SpecSet {
        let text = "apiVersion: quorate.io/v1alpha1\nkind: Cluster\nmetadata: {name: c}\nspec:\n  nodes: [{name: a, runtime: 'podman+unix:///a'}]\n  membership: {deadTime: 2s}\n";
        let mut s = crate::source::Sources::new();
        s.add("c.yaml", text.as_bytes().to_vec());
        crate::validate::validate(&s).into_valid_set().unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn silence_is_suspect_then_lost_and_an_answer_is_online() {
        let t0 = Instant::now();
        let mut m = Membership::new(&spec(), t0, 1000);
        assert_eq!(m.liveness("a", t0), Liveness::Suspect);
        assert!(m.probe("a", true, t0, 1_000_000));
        assert_eq!(m.liveness("a", t0), Liveness::Online);
        let t1 = t0 + Duration::from_secs(1);
        assert!(m.probe("a", false, t1, 1_001_000));
        assert_eq!(m.liveness("a", t1), Liveness::Suspect);
        // Lost the dead time after its last answer (t0), not after the failed probe.
        assert_eq!(
            m.liveness("a", t0 + Duration::from_millis(1999)),
            Liveness::Suspect
        );
        assert_eq!(m.liveness("a", t0 + Duration::from_secs(2)), Liveness::Lost);
        assert_eq!(m.lost_at("a"), Some(t0 + Duration::from_secs(2)));
        assert!(!m.probe("a", false, t1 + Duration::from_millis(500), 1_001_500));
        assert!(m.stopped_answering("a"));
        assert_eq!(m.last_seen_unix_ms("a"), Some(1_000_000));
        assert!(m.probe("a", true, t1 + Duration::from_secs(1), 1_002_000));
        assert!(!m.stopped_answering("a"));
        // A node never seen is lost after the dead time from the start.
        let m2 = Membership::new(&spec(), t0, 1000);
        assert_eq!(
            m2.liveness("a", t0 + Duration::from_secs(2)),
            Liveness::Lost
        );
    }
}

//! The simulated cluster: nodes with power, a network link to the reconciler, a BMC with
//! its own link, and containers. It is the truth the invariants are checked against, at
//! every start and fence as it happens and after every step of the schedule.

use std::collections::{BTreeMap, BTreeSet};

use tokio::time::Instant;

use super::rng::Rng;
use super::schedule::Target;
use crate::runtime::InstanceLabels;

/// How long after a node drops out of sight the reconciler may still count it for quorum
/// (its gate caches a probe for one probe interval, and a probe waits its timeout).
pub const QUORUM_GRACE_MS: i64 = 1_000;

/// One container on a node.
#[derive(Debug, Clone)]
pub struct SimContainer {
    /// quorate's labels, as the real drivers set them.
    pub labels: InstanceLabels,
    /// Image as created.
    pub image: String,
    /// Whether it runs.
    pub running: bool,
    /// Whether it is its promotable bundle's primary.
    pub promoted: bool,
}

/// One node.
#[derive(Debug, Clone)]
pub struct SimNode {
    /// Powered on.
    pub powered: bool,
    /// The reconciler can reach its runtime (when powered).
    pub link: bool,
    /// The reconciler can reach its BMC.
    pub bmc_link: bool,
    /// The BMC accepts power-off but the node stays on.
    pub bmc_lies: bool,
    /// Containers by name.
    pub containers: BTreeMap<String, SimContainer>,
    /// Since when the reconciler cannot reach it (virtual ms).
    pub unreachable_since: Option<i64>,
    /// When a fence last powered it off (virtual ms).
    pub fenced_at: Option<i64>,
}

impl SimNode {
    /// Whether the reconciler can reach its runtime now.
    pub fn reachable(&self) -> bool {
        self.powered && self.link
    }
}

/// The whole simulated world.
#[derive(Debug)]
pub struct World {
    start: Instant,
    /// Nodes by name.
    pub nodes: BTreeMap<String, SimNode>,
    /// Votes of each node (the reconciler's own are `reconciler_votes`).
    pub votes: BTreeMap<String, u32>,
    /// The reconciler's votes.
    pub reconciler_votes: u32,
    /// Bundles with `recovery: fence`.
    pub single_writer: BTreeSet<String>,
    /// Promotable bundles, with their `maxPromoted`.
    pub promotable: BTreeMap<String, u32>,
    /// What happened, in order, with virtual times.
    pub trace: Vec<String>,
    /// Invariant violations seen.
    pub violations: Vec<String>,
    /// Chance (percent) that a runtime operation fails.
    pub fail_percent: u64,
    /// Randomness for latencies and failures.
    pub rng: Rng,
    /// Single-writer instances running twice now (reported once when they start to).
    doubles: BTreeSet<String>,
    /// The nodes episodes of the schedule resolved their targets to.
    marks: BTreeMap<usize, String>,
}

impl World {
    /// A world of `nodes` (one vote each), all powered and reachable, no containers.
    pub fn new(
        nodes: &[String],
        reconciler_votes: u32,
        single_writer: BTreeSet<String>,
        seed: u64,
    ) -> World {
        let node = SimNode {
            powered: true,
            link: true,
            bmc_link: true,
            bmc_lies: false,
            containers: BTreeMap::new(),
            unreachable_since: None,
            fenced_at: None,
        };
        World {
            start: Instant::now(),
            nodes: nodes.iter().map(|n| (n.clone(), node.clone())).collect(),
            votes: nodes.iter().map(|n| (n.clone(), 1)).collect(),
            reconciler_votes,
            single_writer,
            promotable: BTreeMap::new(),
            trace: Vec::new(),
            violations: Vec::new(),
            fail_percent: 0,
            rng: Rng::new(seed ^ 0x5EED),
            doubles: BTreeSet::new(),
            marks: BTreeMap::new(),
        }
    }

    /// The node a fault's target means now (see [`Target`]).
    pub fn resolve(&mut self, target: &Target) -> Option<String> {
        match target {
            Target::Node(n) => Some(n.clone()),
            Target::Marked(k) => self.marks.get(k).cloned(),
            Target::Database(k) => {
                let node = self
                    .nodes
                    .iter()
                    .find(|(_, n)| n.powered && n.containers.get("db-0").is_some_and(|c| c.running))
                    .or_else(|| self.nodes.iter().next())
                    .map(|(name, _)| name.clone())?;
                self.log(format!("(db-0's node #{k} is {node})"));
                self.marks.insert(*k, node.clone());
                Some(node)
            }
        }
    }

    /// Virtual milliseconds since the world began.
    pub fn now_ms(&self) -> i64 {
        i64::try_from(self.start.elapsed().as_millis()).unwrap_or(i64::MAX)
    }

    /// Appends to the trace.
    pub fn log(&mut self, what: impl AsRef<str>) {
        let line = format!("{:>8.3}s  {}", self.now_ms() as f64 / 1000.0, what.as_ref());
        self.trace.push(line);
    }

    /// The world did not converge: `what`, as a violation without a time (it is
    /// judged at the end).
    pub fn not_converged(&mut self, what: String) {
        self.log(format!("VIOLATION {what}"));
        self.violations.push(what);
    }

    /// What came of the simulation of `seed`: the violations and the trace, taken.
    pub fn outcome(&mut self, seed: u64) -> super::run::Outcome {
        super::run::Outcome {
            seed,
            violations: std::mem::take(&mut self.violations),
            trace: std::mem::take(&mut self.trace),
        }
    }

    fn violation(&mut self, what: String) {
        self.log(format!("VIOLATION {what}"));
        self.violations
            .push(format!("at {} ms: {what}", self.now_ms()));
    }

    /// Keeps `unreachable_since` true to the links and power.
    pub fn update_reachability(&mut self) {
        let now = self.now_ms();
        for n in self.nodes.values_mut() {
            match (n.reachable(), n.unreachable_since) {
                (true, Some(_)) => n.unreachable_since = None,
                (false, None) => n.unreachable_since = Some(now),
                _ => {}
            }
        }
    }

    /// Invariant 2, as the world sees it: the votes of nodes the reconciler reaches (or
    /// reached within the grace), plus its own, are a strict majority.
    fn check_quorum(&mut self, what: &str) {
        let now = self.now_ms();
        let expected: u32 = self.votes.values().sum::<u32>() + self.reconciler_votes;
        let present: u32 = self
            .nodes
            .iter()
            .filter(|(_, n)| {
                n.unreachable_since
                    .is_none_or(|t| now - t < QUORUM_GRACE_MS)
            })
            .map(|(name, _)| self.votes[name])
            .sum::<u32>()
            + self.reconciler_votes;
        if present * 2 <= expected {
            self.violation(format!(
                "invariant 2: {what} with {present} of {expected} votes in reach"
            ));
        }
    }

    /// Invariant 1: no single-writer instance runs on two powered nodes.
    pub fn check_single_copies(&mut self) {
        let mut running: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (node, n) in &self.nodes {
            for (name, c) in &n.containers {
                if n.powered && c.running && self.single_writer.contains(&c.labels.bundle) {
                    running.entry(name.clone()).or_default().push(node.clone());
                }
            }
        }
        let mut doubles = BTreeSet::new();
        for (name, nodes) in running {
            if nodes.len() > 1 {
                if !self.doubles.contains(&name) {
                    self.violation(format!("invariant 1: {name} runs on {nodes:?}"));
                }
                doubles.insert(name);
            }
        }
        self.doubles = doubles;
    }

    /// A container is about to start: invariants 2 and 3, then 1 once it runs.
    pub fn on_start(&mut self, node: &str, name: &str) {
        self.update_reachability();
        self.check_quorum(&format!("start of {name} on {node}"));
        let single = self.nodes[node]
            .containers
            .get(name)
            .is_some_and(|c| self.single_writer.contains(&c.labels.bundle));
        if single {
            // Invariant 3: another holder out of reach must have been fenced since.
            let unsafe_holders: Vec<String> = self
                .nodes
                .iter()
                .filter(|(other, n)| {
                    other.as_str() != node
                        && n.containers.contains_key(name)
                        && n.unreachable_since
                            .is_some_and(|since| n.fenced_at.is_none_or(|f| f < since))
                })
                .map(|(other, _)| other.clone())
                .collect();
            if !unsafe_holders.is_empty() {
                self.violation(format!(
                    "invariant 3: {name} started on {node} while {unsafe_holders:?} (out of reach, not fenced) hold it"
                ));
            }
        }
        if let Some(c) = self
            .nodes
            .get_mut(node)
            .and_then(|n| n.containers.get_mut(name))
        {
            c.running = true;
        }
        self.log(format!("start {name} on {node}"));
        self.check_single_copies();
    }

    /// A container is promoted: invariant 2 first, then invariant 8: no more promoted
    /// copies of its bundle on powered nodes than allowed, counting those the reconciler
    /// cannot reach (they still take writes).
    pub fn on_promote(&mut self, node: &str, name: &str) {
        self.update_reachability();
        self.check_quorum(&format!("promotion of {name} on {node}"));
        let Some(c) = self
            .nodes
            .get_mut(node)
            .and_then(|n| n.containers.get_mut(name))
        else {
            return;
        };
        c.promoted = true;
        let bundle = c.labels.bundle.clone();
        self.log(format!("promote {name} on {node}"));
        let max = self.promotable.get(&bundle).copied().unwrap_or(0);
        let promoted = self.promoted(&bundle);
        if promoted.len() > usize::try_from(max).unwrap_or(usize::MAX) {
            self.violation(format!(
                "invariant 8: {promoted:?} of {bundle} are promoted at once (maxPromoted {max})"
            ));
        }
    }

    /// The promoted copies of `bundle` that run on powered nodes, as `instance on node`.
    fn promoted(&self, bundle: &str) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.powered)
            .flat_map(|(node, n)| {
                n.containers
                    .iter()
                    .filter(|(_, c)| c.running && c.promoted && c.labels.bundle == bundle)
                    .map(move |(name, _)| format!("{name} on {node}"))
            })
            .collect()
    }

    /// A fence powers `node` off: invariant 2 first.
    pub fn on_fence(&mut self, node: &str) {
        self.update_reachability();
        self.check_quorum(&format!("fence of {node}"));
        let now = self.now_ms();
        if let Some(n) = self.nodes.get_mut(node) {
            power_off(n);
            n.fenced_at = Some(now);
        }
        self.update_reachability();
        self.log(format!("fence: {node} powered off"));
    }

    /// Whether every expected instance runs exactly once on a powered node and nothing
    /// else of the cluster runs.
    pub fn converged(&self, expected: &BTreeSet<String>) -> bool {
        let mut running: BTreeMap<&str, usize> = BTreeMap::new();
        for n in self.nodes.values().filter(|n| n.powered) {
            for (name, c) in &n.containers {
                if c.running {
                    *running.entry(name.as_str()).or_default() += 1;
                }
            }
        }
        let promoted = self
            .promotable
            .iter()
            .all(|(b, max)| self.promoted(b).len() == usize::try_from(*max).unwrap_or(usize::MAX));
        running.len() == expected.len()
            && expected.iter().all(|e| running.get(e.as_str()) == Some(&1))
            && promoted
    }
}

/// Power off: every process of the node stops.
pub fn power_off(n: &mut SimNode) {
    n.powered = false;
    for c in n.containers.values_mut() {
        c.running = false;
        c.promoted = false;
    }
}

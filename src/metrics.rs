//! The Prometheus metrics of `quorate run` (`GET /metrics`), with the `prometheus-client`
//! crate: names, types and units as Prometheus' conventions say (`_total` counters,
//! `_seconds`, `_timestamp_seconds`, a `_info`-style build gauge). Every series exists from
//! the start (labelled families are filled with each label value at zero), so an alert on
//! a rate or an absence works before the first event.
//!
//! The reconcile loop ([`crate::reconcile::driver`]) records passes, steps, quorum, nodes
//! and instances; `quorate run` records rejected commits and failed fetches. Nothing here
//! holds a secret: labels are states, kinds, results, the version and the git commit.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::observed::{InstanceState, NodeState, Observed};
use crate::reconcile::store::{PassOutcome, PassRecord, StepKind, StepOutcome};

/// The content type of [`Metrics::encode`]'s text (OpenMetrics, which Prometheus reads).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Node states as the `state` label says them.
const NODE_STATES: [&str; 3] = ["online", "lost", "fenced"];
/// Instance states as the `state` label says them (`unknown`: last seen on a lost node).
const INSTANCE_STATES: [&str; 4] = ["running", "failed", "stopped", "unknown"];
/// Pass outcomes as the `outcome` label says them.
const OUTCOMES: [PassOutcome; 6] = [
    PassOutcome::Converged,
    PassOutcome::Blocked,
    PassOutcome::Acted,
    PassOutcome::Aborted,
    PassOutcome::Waiting,
    PassOutcome::StoreFailed,
];
const STEP_KINDS: [StepKind; 5] = [
    StepKind::Fence,
    StepKind::Stop,
    StepKind::Start,
    StepKind::Promote,
    StepKind::Demote,
];
const STEP_RESULTS: [StepOutcome; 3] = [StepOutcome::Ok, StepOutcome::Failed, StepOutcome::Skipped];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StepLabels {
    kind: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ScopeLabel {
    scope: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
    commit: &'static str,
}

/// The metrics of one process. Cloning shares them.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    has_quorum: Gauge,
    votes_present: Gauge,
    votes_expected: Gauge,
    pass_duration: Histogram,
    last_pass: Gauge<f64, AtomicU64>,
    passes: Family<OutcomeLabel, Counter>,
    steps: Family<StepLabels, Counter>,
    nodes: Family<StateLabel, Gauge>,
    instances: Family<StateLabel, Gauge>,
    fence_attempts: Family<ResultLabel, Counter>,
    rejected_commits: Counter,
    git_fetch_errors: Counter,
    commit_adopted: Gauge<f64, AtomicU64>,
    leader: Gauge,
    suspended: Family<ScopeLabel, Gauge>,
    promoted: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Every metric registered, every labelled series at zero.
    pub fn new() -> Metrics {
        let inner = Inner {
            registry: Registry::default(),
            has_quorum: Gauge::default(),
            votes_present: Gauge::default(),
            votes_expected: Gauge::default(),
            pass_duration: Histogram::new(exponential_buckets(0.005, 2.0, 16)),
            last_pass: Gauge::default(),
            passes: Family::default(),
            steps: Family::default(),
            nodes: Family::default(),
            instances: Family::default(),
            fence_attempts: Family::default(),
            rejected_commits: Counter::default(),
            git_fetch_errors: Counter::default(),
            commit_adopted: Gauge::default(),
            leader: Gauge::default(),
            suspended: Family::default(),
            promoted: Gauge::default(),
        };
        let mut inner = inner;
        inner.fill();
        inner.register();
        Metrics {
            inner: Arc::new(inner),
        }
    }

    /// The metrics as OpenMetrics text ([`CONTENT_TYPE`]).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.inner.registry);
        out
    }

    /// A pass that took `seconds` and ended at `finished_unix_ms`, with what it observed.
    pub fn pass(&self, record: &PassRecord, seconds: f64, observed: Option<&Observed>) {
        let m = &self.inner;
        m.pass_duration.observe(seconds);
        m.last_pass.set(record.finished_unix_ms as f64 / 1000.0);
        m.passes
            .get_or_create(&OutcomeLabel {
                outcome: record.outcome.as_str(),
            })
            .inc();
        for step in &record.results {
            m.steps
                .get_or_create(&StepLabels {
                    kind: step.kind.as_str(),
                    result: step.result.as_str(),
                })
                .inc();
            if step.kind == StepKind::Fence {
                let result = match step.result {
                    StepOutcome::Ok => "success",
                    StepOutcome::Failed => "failure",
                    StepOutcome::Skipped => continue,
                };
                m.fence_attempts
                    .get_or_create(&ResultLabel { result })
                    .inc();
            }
        }
        if let Some(q) = record.plan.get("quorum") {
            let n = |k: &str| q.get(k).and_then(serde_json::Value::as_i64).unwrap_or(0);
            let quorate = q.get("quorate").and_then(serde_json::Value::as_bool);
            m.votes_present.set(n("present"));
            m.votes_expected.set(n("expected"));
            m.has_quorum.set(i64::from(quorate.unwrap_or(false)));
        }
        if let Some(obs) = observed {
            m.observed(obs);
        }
    }

    /// A commit put in force at `unix_ms`.
    pub fn adopted(&self, unix_ms: i64) {
        self.inner.commit_adopted.set(unix_ms as f64 / 1000.0);
    }

    /// A commit refused by validation.
    pub fn commit_rejected(&self) {
        self.inner.rejected_commits.inc();
    }

    /// HA mode: whether this replica leads and may act (0 without `--etcd`).
    pub fn leader(&self, leads: bool) {
        self.inner.leader.set(i64::from(leads));
    }

    /// A fetch of the followed branch that failed.
    pub fn git_fetch_error(&self) {
        self.inner.git_fetch_errors.inc();
    }
}

impl Inner {
    /// Every labelled series at zero, so each exists from the start.
    fn fill(&mut self) {
        for state in NODE_STATES {
            let _ = self.nodes.get_or_create(&StateLabel { state });
        }
        for state in INSTANCE_STATES {
            let _ = self.instances.get_or_create(&StateLabel { state });
        }
        for result in ["success", "failure"] {
            let _ = self.fence_attempts.get_or_create(&ResultLabel { result });
        }
        for scope in ["cluster", "bundle"] {
            let _ = self.suspended.get_or_create(&ScopeLabel { scope });
        }
        for o in OUTCOMES {
            let _ = self.passes.get_or_create(&OutcomeLabel {
                outcome: o.as_str(),
            });
        }
        for kind in STEP_KINDS {
            for result in STEP_RESULTS {
                let _ = self.steps.get_or_create(&StepLabels {
                    kind: kind.as_str(),
                    result: result.as_str(),
                });
            }
        }
    }

    fn register(&mut self) {
        let build: Family<BuildLabels, Gauge> = Family::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
                commit: crate::cli::GIT_COMMIT,
            })
            .set(1);
        let r = &mut self.registry;
        r.register(
            "quorate_build_info",
            "The version and git commit of this binary (always 1)",
            build,
        );
        r.register(
            "quorate_leader",
            "1 when this replica leads and may act (HA mode), else 0",
            self.leader.clone(),
        );
        r.register(
            "quorate_has_quorum",
            "1 when the last pass had quorum, else 0",
            self.has_quorum.clone(),
        );
        r.register(
            "quorate_quorum_votes_present",
            "Votes present at the last pass",
            self.votes_present.clone(),
        );
        r.register(
            "quorate_quorum_votes_expected",
            "Votes expected at the last pass",
            self.votes_expected.clone(),
        );
        self.register_passes();
        self.register_cluster();
        self.register_source();
    }

    /// The passes and the steps they carried out.
    fn register_passes(&mut self) {
        let r = &mut self.registry;
        r.register(
            "quorate_pass_duration_seconds",
            "How long reconcile passes took",
            self.pass_duration.clone(),
        );
        r.register(
            "quorate_last_pass_timestamp_seconds",
            "When the last pass ended (Unix time)",
            self.last_pass.clone(),
        );
        r.register(
            "quorate_passes",
            "Reconcile passes by outcome",
            self.passes.clone(),
        );
        r.register(
            "quorate_steps",
            "Plan steps carried out, by kind and result",
            self.steps.clone(),
        );
        r.register(
            "quorate_fence_attempts",
            "Fence steps by result",
            self.fence_attempts.clone(),
        );
    }

    /// The cluster as the last pass observed it.
    fn register_cluster(&mut self) {
        let r = &mut self.registry;
        r.register(
            "quorate_nodes",
            "Nodes by state at the last pass",
            self.nodes.clone(),
        );
        r.register(
            "quorate_instances",
            "Instances by state at the last pass (unknown: last seen on a lost node)",
            self.instances.clone(),
        );
        r.register(
            "quorate_suspended",
            "What quorate suspend left alone at the last pass: the cluster (1 or 0), and \
             how many bundles",
            self.suspended.clone(),
        );
        r.register(
            "quorate_promoted_instances",
            "Instances of promotable bundles on answering nodes that reported themselves \
             promoted at the last pass",
            self.promoted.clone(),
        );
    }

    /// The commits followed.
    fn register_source(&mut self) {
        let r = &mut self.registry;
        r.register(
            "quorate_rejected_commits",
            "Commits refused because their specs do not validate",
            self.rejected_commits.clone(),
        );
        r.register(
            "quorate_git_fetch_errors",
            "Fetches of the followed branch that failed",
            self.git_fetch_errors.clone(),
        );
        r.register(
            "quorate_commit_adopted_timestamp_seconds",
            "When the commit in force was adopted (Unix time)",
            self.commit_adopted.clone(),
        );
    }

    /// Nodes and instances by state, as last observed.
    fn observed(&self, obs: &Observed) {
        let mut nodes = [0i64; NODE_STATES.len()];
        let mut instances = [0i64; INSTANCE_STATES.len()];
        for node in obs.nodes.values() {
            let n = match node.state {
                NodeState::Online => 0,
                NodeState::Lost => 1,
                NodeState::Fenced => 2,
            };
            nodes[n] += 1;
            for i in &node.instances {
                let s = match (node.state, i.state) {
                    (NodeState::Lost, _) => 3,
                    (_, InstanceState::Running) => 0,
                    (_, InstanceState::Failed) => 1,
                    (_, InstanceState::Stopped) => 2,
                };
                instances[s] += 1;
            }
        }
        let promoted = obs
            .nodes
            .values()
            .filter(|n| n.state == NodeState::Online)
            .flat_map(|n| &n.instances)
            .filter(|i| i.role.as_ref().is_some_and(|r| r.promoted))
            .count();
        self.promoted
            .set(i64::try_from(promoted).unwrap_or(i64::MAX));
        for (state, n) in NODE_STATES.into_iter().zip(nodes) {
            self.nodes.get_or_create(&StateLabel { state }).set(n);
        }
        for (state, n) in INSTANCE_STATES.into_iter().zip(instances) {
            self.instances.get_or_create(&StateLabel { state }).set(n);
        }
        let s = &obs.suspended;
        let bundles = i64::try_from(s.bundles.len()).unwrap_or(i64::MAX);
        for (scope, n) in [
            ("cluster", i64::from(s.cluster.is_some())),
            ("bundle", bundles),
        ] {
            self.suspended.get_or_create(&ScopeLabel { scope }).set(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::store::StepResult;

    fn line(text: &str, series: &str) -> Option<String> {
        text.lines()
            .find(|l| l.rsplit_once(' ').is_some_and(|(s, _)| s == series))
            .map(|l| {
                l.rsplit_once(' ')
                    .map(|(_, v)| v.to_owned())
                    .unwrap_or_default()
            })
    }

    #[test]
    fn every_series_exists_from_the_start() {
        let text = Metrics::new().encode();
        for series in [
            "quorate_has_quorum",
            "quorate_quorum_votes_present",
            "quorate_quorum_votes_expected",
            "quorate_pass_duration_seconds_count",
            "quorate_last_pass_timestamp_seconds",
            "quorate_nodes{state=\"online\"}",
            "quorate_nodes{state=\"lost\"}",
            "quorate_nodes{state=\"fenced\"}",
            "quorate_instances{state=\"running\"}",
            "quorate_instances{state=\"unknown\"}",
            "quorate_fence_attempts_total{result=\"success\"}",
            "quorate_fence_attempts_total{result=\"failure\"}",
            "quorate_passes_total{outcome=\"storeFailed\"}",
            "quorate_steps_total{kind=\"start\",result=\"failed\"}",
            "quorate_rejected_commits_total",
            "quorate_git_fetch_errors_total",
            "quorate_commit_adopted_timestamp_seconds",
            "quorate_suspended{scope=\"cluster\"}",
            "quorate_suspended{scope=\"bundle\"}",
        ] {
            let v = line(&text, series).unwrap_or_else(|| panic!("{series} missing:\n{text}"));
            assert_eq!(v.parse::<f64>().unwrap(), 0.0, "{series}");
        }
        let build = format!(
            "quorate_build_info{{version=\"{}\",commit=\"{}\"}}",
            env!("CARGO_PKG_VERSION"),
            crate::cli::GIT_COMMIT
        );
        assert_eq!(line(&text, &build).as_deref(), Some("1"), "{text}");
        assert!(text.contains("# TYPE quorate_pass_duration_seconds histogram"));
        assert!(text.contains("# TYPE quorate_fence_attempts counter"));
        assert!(text.contains("# TYPE quorate_has_quorum gauge"));
        assert!(text.trim_end().ends_with("# EOF"));
    }

    fn step(kind: StepKind, result: StepOutcome) -> StepResult {
        StepResult {
            step: "s1".into(),
            kind,
            what: "x".into(),
            result,
            detail: String::new(),
            millis: 1,
        }
    }

    #[test]
    fn a_pass_sets_quorum_states_fences_and_timing() {
        let m = Metrics::new();
        let record = PassRecord {
            id: 1,
            started_unix_ms: 1_000,
            finished_unix_ms: 2_500,
            commit: "c".into(),
            trigger: "t".into(),
            outcome: PassOutcome::Acted,
            detail: String::new(),
            observed: serde_json::Value::Null,
            plan: serde_json::json!({"quorum": {"present": 2, "expected": 3, "quorate": true}}),
            results: vec![
                step(StepKind::Fence, StepOutcome::Ok),
                step(StepKind::Fence, StepOutcome::Failed),
                step(StepKind::Fence, StepOutcome::Failed),
                step(StepKind::Start, StepOutcome::Skipped),
            ],
        };
        let observed: Observed = serde_json::from_value(serde_json::json!({
            "nodes": {
                "a": {"state": "online", "instances": [
                    {"bundle": "db", "index": 0, "state": "running", "role": {"promoted": true}},
                    {"bundle": "db", "index": 1, "state": "failed"}]},
                "b": {"state": "lost", "instances": [{"bundle": "db", "index": 2}]},
                "c": {"state": "fenced"}
            },
            "suspended": {"bundles": {"db": {"atUnixMs": 1}, "web": {"atUnixMs": 2}}}
        }))
        .unwrap();
        m.pass(&record, 0.2, Some(&observed));
        m.commit_rejected();
        m.git_fetch_error();
        m.git_fetch_error();
        let text = m.encode();
        let get = |s: &str| line(&text, s).unwrap_or_else(|| panic!("{s} missing:\n{text}"));
        assert_eq!(get("quorate_has_quorum"), "1");
        assert_eq!(get("quorate_quorum_votes_present"), "2");
        assert_eq!(get("quorate_quorum_votes_expected"), "3");
        assert_eq!(get("quorate_last_pass_timestamp_seconds"), "2.5");
        assert_eq!(get("quorate_pass_duration_seconds_count"), "1");
        assert_eq!(get("quorate_pass_duration_seconds_sum"), "0.2");
        assert_eq!(get("quorate_fence_attempts_total{result=\"success\"}"), "1");
        assert_eq!(get("quorate_fence_attempts_total{result=\"failure\"}"), "2");
        assert_eq!(
            get("quorate_steps_total{kind=\"start\",result=\"skipped\"}"),
            "1"
        );
        assert_eq!(get("quorate_passes_total{outcome=\"acted\"}"), "1");
        assert_eq!(get("quorate_nodes{state=\"online\"}"), "1");
        assert_eq!(get("quorate_nodes{state=\"lost\"}"), "1");
        assert_eq!(get("quorate_nodes{state=\"fenced\"}"), "1");
        assert_eq!(get("quorate_instances{state=\"running\"}"), "1");
        assert_eq!(get("quorate_instances{state=\"failed\"}"), "1");
        assert_eq!(get("quorate_instances{state=\"unknown\"}"), "1");
        assert_eq!(get("quorate_rejected_commits_total"), "1");
        assert_eq!(get("quorate_git_fetch_errors_total"), "2");
        assert_eq!(get("quorate_suspended{scope=\"cluster\"}"), "0");
        assert_eq!(get("quorate_suspended{scope=\"bundle\"}"), "2");
        assert_eq!(get("quorate_promoted_instances"), "1");
    }
}

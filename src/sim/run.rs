//! One simulation: the real reconcile loop ([`crate::reconcile::driver::run`]) against the
//! simulated world, on virtual time, through a seeded fault schedule, with its durable
//! store kept across crashes. Then every fault is healed and the world must converge.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use super::drivers::SimEnvironment;
use super::schedule::{self, FAULTS_END, Fault, Schedule};
use super::world::World;
use crate::reconcile::driver::{self, SharedStatus, Trigger};
use crate::reconcile::store::{MemoryStore, Store};
use crate::reconcile::{Desired, Options, Reconciler};
use crate::source::Sources;
use crate::spec::SpecSet;

/// The cluster every simulation runs: three nodes, the reconciler as a fourth vote, a
/// single-writer database, a stateless web tier and a promotable store (`kv`, one
/// primary and one replica, each fitting on the two nodes left when one is fenced), a
/// BMC per node.
pub const SPECS: &str = "apiVersion: quorate.io/v1alpha1
kind: Cluster
metadata: {name: sim}
spec:
  nodes:
    - {name: n1, runtime: 'podman+unix:///sim/n1.sock'}
    - {name: n2, runtime: 'podman+unix:///sim/n2.sock'}
    - {name: n3, runtime: 'podman+unix:///sim/n3.sock'}
  quorum: {reconcilerVotes: 1}
  fencing: {enabled: true, timeout: 10s}
  membership: {probeInterval: 500ms, deadTime: 2s}
---
apiVersion: quorate.io/v1alpha1
kind: Bundle
metadata: {name: db}
spec: {image: sim, replicas: 1, recovery: fence, stopTimeout: 1s}
---
apiVersion: quorate.io/v1alpha1
kind: Bundle
metadata: {name: web}
spec: {image: sim, replicas: 2, recovery: restart, stopTimeout: 1s}
---
apiVersion: quorate.io/v1alpha1
kind: Bundle
metadata: {name: kv}
spec:
  image: sim
  replicas: 2
  recovery: restart
  stopTimeout: 1s
  promotable: {promote: [promote], demote: [demote], role: [role], preference: [preference], timeout: 1s}
---
apiVersion: quorate.io/v1alpha1
kind: Fence
metadata: {name: bmc-n1}
spec: {targets: [n1], powerWait: 2s, ipmi: {address: bmc-n1, username: sim, password: {fromEnv: SIM_BMC}}}
---
apiVersion: quorate.io/v1alpha1
kind: Fence
metadata: {name: bmc-n2}
spec: {targets: [n2], powerWait: 2s, ipmi: {address: bmc-n2, username: sim, password: {fromEnv: SIM_BMC}}}
---
apiVersion: quorate.io/v1alpha1
kind: Fence
metadata: {name: bmc-n3}
spec: {targets: [n3], powerWait: 2s, ipmi: {address: bmc-n3, username: sim, password: {fromEnv: SIM_BMC}}}
";

/// How long after the faults end the world must have converged.
pub const CONVERGE_WITHIN: Duration = Duration::from_secs(120);
const STEP: Duration = Duration::from_millis(100);

/// A safety rule switched off on purpose, to show that the simulation notices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bite {
    /// The planner recovers without waiting for fences.
    SkipFenceDependency,
    /// The observer trusts any fence record newer than what this process saw of the
    /// node itself, as before the durable last-seen time (a restart then forgets).
    ForgetLastSeen,
}

/// What to simulate.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// The seed: the schedule (unless given) and every latency and failure follow from it.
    pub seed: u64,
    /// A safety rule to switch off, to show the checks bite.
    pub bite: Option<Bite>,
    /// This schedule instead of the seed's.
    pub schedule: Option<Schedule>,
}

impl Config {
    /// The seed's own schedule, every rule in force.
    pub fn seed(seed: u64) -> Config {
        Config {
            seed,
            ..Config::default()
        }
    }
}

/// What came of a simulation.
#[derive(Debug)]
pub struct Outcome {
    /// The seed.
    pub seed: u64,
    /// Invariant violations (empty when safe), including a failure to converge.
    pub violations: Vec<String>,
    /// Everything that happened, with virtual times.
    pub trace: Vec<String>,
}

/// The promotable bundles of `spec`, with their `maxPromoted`.
pub fn promotable(spec: &SpecSet) -> std::collections::BTreeMap<String, u32> {
    spec.bundles
        .iter()
        .filter_map(|(name, b)| Some((name.to_string(), b.promotable.as_ref()?.max_promoted)))
        .collect()
}

/// The simulated spec set (`None` if [`SPECS`] ever stopped validating).
pub fn spec_set() -> Option<SpecSet> {
    let mut sources = Sources::new();
    sources.add("sim.yaml", SPECS.as_bytes().to_vec());
    crate::validate::validate(&sources).into_valid_set()
}

/// Runs one simulation on a fresh single-threaded runtime with paused (virtual) time.
pub fn run(config: Config) -> Outcome {
    match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
    {
        Ok(rt) => rt.block_on(simulate(config)),
        Err(e) => Outcome {
            seed: config.seed,
            violations: vec![format!("cannot build a runtime: {e}")],
            trace: Vec::new(),
        },
    }
}

struct Running {
    task: tokio::task::JoinHandle<()>,
    _triggers: mpsc::Sender<Trigger>,
}

/// The simulated cluster, and what the reconcile loop is started with each time.
struct Sim {
    world: Arc<Mutex<World>>,
    env: Arc<SimEnvironment>,
    /// Kept across the reconciler's crashes, as its database would be.
    store: Arc<dyn Store>,
    spec: Arc<SpecSet>,
    options: Options,
}

impl Sim {
    /// The world of `spec`'s nodes, seeded, with the loop's options bitten as `config`
    /// asks.
    fn new(spec: Arc<SpecSet>, config: &Config) -> Sim {
        let single: BTreeSet<String> = ["db".to_owned()].into();
        let mut world = World::new(&node_names(&spec), 1, single, config.seed);
        world.promotable = promotable(&spec);
        let world = Arc::new(Mutex::new(world));
        let mut options = Options::default();
        options.plan.unsafe_skip_fence_dependency = config.bite == Some(Bite::SkipFenceDependency);
        options.unsafe_forget_last_seen = config.bite == Some(Bite::ForgetLastSeen);
        Sim {
            env: Arc::new(SimEnvironment::new(world.clone())),
            world,
            store: Arc::new(MemoryStore::new()),
            spec,
            options,
        }
    }

    /// `f` on the world, locked.
    fn with<R>(&self, f: impl FnOnce(&mut World) -> R) -> R {
        f(&mut super::lock(&self.world))
    }

    /// The reconcile loop, started anew.
    fn start(&self) -> Option<Running> {
        let desired = Desired {
            spec: self.spec.clone(),
            commit: "sim".into(),
        };
        let env = self.env.clone();
        let r = Reconciler::new(env, self.store.clone(), desired, self.options.clone()).ok()?;
        let (tx, rx) = mpsc::channel(4);
        Some(Running {
            task: tokio::spawn(driver::run(r, rx, SharedStatus::default())),
            _triggers: tx,
        })
    }

    /// Runs the loop through `faults` (a crash stops it for a while), heals every fault
    /// at [`FAULTS_END`], and says whether the world converged to `expected` in time.
    /// Invariant 1 is checked at every step.
    async fn run(&self, faults: Schedule, expected: &BTreeSet<String>) -> bool {
        let mut faults = faults.into_iter().peekable();
        let mut reconciler = self.start();
        let mut back_at: Option<Duration> = None;
        let started = tokio::time::Instant::now();
        let mut healed = false;
        let mut converged = false;
        while !converged && started.elapsed() < FAULTS_END + CONVERGE_WITHIN {
            tokio::time::sleep(STEP).await;
            let now = started.elapsed();
            while let Some((_, fault)) = faults.next_if(|(at, _)| *at <= now) {
                self.with(|w| schedule::apply(w, &fault));
                if let Fault::Crash(down) = fault
                    && let Some(r) = reconciler.take()
                {
                    r.task.abort();
                    back_at = Some(now + down);
                }
            }
            if back_at.is_some_and(|at| at <= now) {
                back_at = None;
                self.with(|w| w.log("the reconciler restarts"));
                reconciler = self.start();
            }
            if !healed && now >= FAULTS_END {
                healed = true;
                self.with(schedule::heal_all);
            }
            converged = self.with(|w| {
                w.check_single_copies();
                healed && reconciler.is_some() && w.converged(expected)
            });
        }
        if let Some(r) = reconciler.take() {
            r.task.abort();
        }
        converged
    }
}

/// The names of `spec`'s nodes.
fn node_names(spec: &SpecSet) -> Vec<String> {
    let nodes = spec.cluster.nodes.iter();
    nodes.map(|n| n.name.to_string()).collect()
}

async fn simulate(config: Config) -> Outcome {
    let Some(spec) = spec_set().map(Arc::new) else {
        return Outcome {
            seed: config.seed,
            violations: vec!["the simulation's specs do not validate".into()],
            trace: Vec::new(),
        };
    };
    let faults = (config.schedule.clone())
        .unwrap_or_else(|| schedule::generate(config.seed, &node_names(&spec)));
    let sim = Sim::new(spec, &config);
    sim.with(|w| {
        let plan: Vec<String> = faults
            .iter()
            .map(|(at, f)| format!("{at:?}: {f}"))
            .collect();
        w.log(format!("seed {}: schedule {plan:?}", config.seed));
    });
    let expected: BTreeSet<String> = ["db-0", "web-0", "web-1", "kv-0", "kv-1"]
        .map(String::from)
        .into();
    let converged = sim.run(faults, &expected).await;
    sim.with(|w| {
        if converged {
            w.log("converged");
        } else {
            w.not_converged(format!(
                "invariant 4: not converged {CONVERGE_WITHIN:?} after the faults ended"
            ));
        }
        w.outcome(config.seed)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_simulated_specs_are_valid_and_a_calm_run_converges() {
        assert_eq!(spec_set().map(|s| s.bundles.len()), Some(3));
        let out = run(Config {
            schedule: Some(Vec::new()),
            ..Config::seed(3)
        });
        assert!(out.violations.is_empty(), "{:#?}", out.trace);
        assert!(out.trace.iter().any(|l| l.contains("start db-0")));
        // Converged means one kv instance promoted, the others told to follow it.
        let promoted: Vec<&String> = out
            .trace
            .iter()
            .filter(|l| l.contains("promote kv-"))
            .collect();
        assert_eq!(promoted.len(), 1, "{:#?}", out.trace);
        assert!(out.trace.iter().any(|l| l.contains("demote kv-")));
    }

    /// `quorate apply` prints each step as it ends: the reconciler reports every step's
    /// start before its end, and every result of the pass, as they happen.
    #[test]
    fn every_step_is_reported_as_it_starts_and_ends() {
        use crate::reconcile::StepEvent;
        let rt = crate::sim::paused_runtime();
        rt.block_on(async {
            let spec = Arc::new(spec_set().unwrap());
            let names: Vec<String> = spec
                .cluster
                .nodes
                .iter()
                .map(|n| n.name.to_string())
                .collect();
            let world = World::new(&names, 1, ["db".to_owned()].into(), 1);
            let env = Arc::new(SimEnvironment::new(Arc::new(Mutex::new(world))));
            let desired = Desired {
                spec,
                commit: "sim".into(),
            };
            let store = Arc::new(MemoryStore::new());
            let mut r = Reconciler::new(env, store, desired, Options::default()).unwrap();
            let (tx, mut rx) = mpsc::unbounded_channel();
            r.report_steps_to(tx);
            let mut results = Vec::new();
            for _ in 0..20 {
                let report = r.pass("test").await;
                results.extend(report.record.results);
                if report.plan.is_some_and(|p| p.steps.is_empty()) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            let mut started = Vec::new();
            let mut ended = Vec::new();
            while let Ok(event) = rx.try_recv() {
                match event {
                    StepEvent::Started(what) => started.push(what),
                    StepEvent::Ended(result) => {
                        assert!(
                            started.contains(&result.what),
                            "ended before it started: {}",
                            result.what
                        );
                        ended.push(result);
                    }
                }
            }
            assert!(
                ended.iter().any(|s| s.what.starts_with("start db-0")),
                "{ended:?}"
            );
            assert_eq!(ended, results);
            assert_eq!(started.len(), ended.len());
        });
    }

    /// With nothing happening, a pass still runs every `recheckInterval`, although probes
    /// and monitor ticks wake the loop far more often.
    #[test]
    fn a_recheck_pass_runs_every_recheck_interval_while_nothing_happens() {
        let rt = crate::sim::paused_runtime();
        rt.block_on(async {
            let text = SPECS.replace(
                "  membership: {probeInterval: 500ms, deadTime: 2s}",
                "  membership: {probeInterval: 500ms, deadTime: 2s}\n  defaults: {recheckInterval: 5s}",
            );
            let mut sources = Sources::new();
            sources.add("sim.yaml", text.into_bytes());
            let spec = Arc::new(crate::validate::validate(&sources).into_valid_set().unwrap());
            assert_eq!(spec.cluster.defaults.recheck_interval.get(), Duration::from_secs(5));
            let names: Vec<String> = spec.cluster.nodes.iter().map(|n| n.name.to_string()).collect();
            let world = World::new(&names, 1, ["db".to_owned()].into(), 1);
            let env = Arc::new(SimEnvironment::new(Arc::new(Mutex::new(world))));
            let desired = Desired { spec, commit: "sim".into() };
            let r = Reconciler::new(env, Arc::new(MemoryStore::new()), desired, Options::default()).unwrap();
            let status = SharedStatus::default();
            let (_tx, rx) = mpsc::channel(4);
            let task = tokio::spawn(driver::run(r, rx, status.clone()));
            let passes = || status.read().map(|s| s.passes).unwrap_or(0);
            // Converged well within 20 s; then 30 s of calm: six rechecks.
            tokio::time::sleep(Duration::from_secs(20)).await;
            let before = passes();
            tokio::time::sleep(Duration::from_secs(30)).await;
            let rechecks = passes() - before;
            task.abort();
            assert!((5..=7).contains(&rechecks), "{rechecks} passes in 30 s of calm");
        });
    }
}

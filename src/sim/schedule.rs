//! Random fault schedules: what goes wrong, on which node, when. A seed gives the same
//! schedule every time.

use std::fmt;
use std::time::Duration;

use super::rng::Rng;
use super::world::{World, power_off};

/// Faults stop (everything is healed and powered on) at this virtual time.
pub const FAULTS_END: Duration = Duration::from_secs(30);
/// No fault before this: the cluster comes up first.
const FAULTS_START_MS: u64 = 3_000;

/// One thing that happens to the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The reconciler loses its link to the node's runtime.
    Cut(String),
    /// The link comes back.
    Heal(String),
    /// The node loses power.
    PowerOff(String),
    /// The node is powered on (its containers stay stopped).
    PowerOn(String),
    /// The reconciler loses its link to the node's BMC.
    CutBmc(String),
    /// The BMC link comes back.
    HealBmc(String),
    /// The BMC starts (or stops) accepting power-off while leaving the node on.
    BmcLies(String, bool),
    /// Runtime operations fail this often (percent).
    Flaky(u64),
    /// The runtime restarts a stopped stateless container by itself.
    RestartBehindBack(String),
    /// The reconciler process dies; it is restarted this long after.
    Crash(Duration),
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Cut(n) => write!(f, "cut {n}"),
            Fault::Heal(n) => write!(f, "heal {n}"),
            Fault::PowerOff(n) => write!(f, "power off {n}"),
            Fault::PowerOn(n) => write!(f, "power on {n}"),
            Fault::CutBmc(n) => write!(f, "cut the BMC of {n}"),
            Fault::HealBmc(n) => write!(f, "heal the BMC of {n}"),
            Fault::BmcLies(n, lies) => write!(f, "the BMC of {n} lies: {lies}"),
            Fault::Flaky(p) => write!(f, "runtime operations fail {p}% of the time"),
            Fault::RestartBehindBack(n) => {
                write!(f, "the runtime of {n} restarts a stopped web container")
            }
            Fault::Crash(d) => write!(f, "the reconciler crashes, back after {d:?}"),
        }
    }
}

/// A schedule: faults at virtual times, in order.
pub fn generate(seed: u64, nodes: &[String]) -> Vec<(Duration, Fault)> {
    let mut rng = Rng::new(seed);
    let count = 1 + rng.below(6);
    let end = u64::try_from(FAULTS_END.as_millis()).unwrap_or(30_000) - 2_000;
    let mut out: Vec<(Duration, Fault)> = (0..count)
        .map(|_| {
            let at = FAULTS_START_MS + rng.below(end - FAULTS_START_MS);
            let node = nodes[usize::try_from(rng.below(nodes.len() as u64)).unwrap_or(0)].clone();
            let fault = match rng.below(12) {
                0 | 1 => Fault::Cut(node),
                2 => Fault::Heal(node),
                3 | 4 => Fault::PowerOff(node),
                5 => Fault::PowerOn(node),
                6 => Fault::CutBmc(node),
                7 => Fault::HealBmc(node),
                8 => Fault::BmcLies(node, rng.chance(70)),
                9 => Fault::Flaky(rng.below(30)),
                10 => Fault::RestartBehindBack(node),
                _ => Fault::Crash(Duration::from_millis(rng.below(3_000))),
            };
            (Duration::from_millis(at), fault)
        })
        .collect();
    out.sort_by_key(|(at, _)| *at);
    out
}

/// Applies a fault to the world (a crash is the runner's business).
pub fn apply(w: &mut World, fault: &Fault) {
    w.log(format!("FAULT {fault}"));
    match fault {
        Fault::Cut(n) => set(w, n, |n| n.link = false),
        Fault::Heal(n) => set(w, n, |n| n.link = true),
        Fault::PowerOff(n) => set(w, n, power_off),
        Fault::PowerOn(n) => set(w, n, |n| n.powered = true),
        Fault::CutBmc(n) => set(w, n, |n| n.bmc_link = false),
        Fault::HealBmc(n) => set(w, n, |n| n.bmc_link = true),
        Fault::BmcLies(n, lies) => set(w, n, |n| n.bmc_lies = *lies),
        Fault::Flaky(p) => w.fail_percent = *p,
        Fault::RestartBehindBack(n) => set(w, n, |n| {
            if n.powered
                && let Some(c) = n
                    .containers
                    .values_mut()
                    .find(|c| c.labels.bundle == "web" && !c.running)
            {
                c.running = true;
            }
        }),
        Fault::Crash(_) => {}
    }
    w.update_reachability();
}

/// Ends the faults: every link and BMC back, honest BMCs, every node powered on.
pub fn heal_all(w: &mut World) {
    w.log("FAULTS END: everything healed and powered on");
    w.fail_percent = 0;
    for n in w.nodes.values_mut() {
        n.link = true;
        n.bmc_link = true;
        n.bmc_lies = false;
        n.powered = true;
    }
    w.update_reachability();
}

fn set(w: &mut World, node: &str, f: impl FnOnce(&mut super::world::SimNode)) {
    if let Some(n) = w.nodes.get_mut(node) {
        f(n);
    }
}

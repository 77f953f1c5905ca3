//! Random fault schedules: what goes wrong, on which node, when. A seed gives the same
//! schedule every time.
//!
//! A schedule is a handful of episodes, each a pattern that real clusters see: a single
//! fault; an outage (cable cut, then healed and powered back on some seconds later, after
//! quorate may have fenced the node); a power loss and return; a cut followed within the
//! dead time by a crash of the reconciler (an upgrade or a restart during a failure); BMC
//! trouble. Half the episodes aim at wherever the database runs when they begin, so a
//! schedule walks the database from node to node, and nodes accumulate fence records,
//! returns and new instances: the histories in which stale evidence could be mistaken for
//! fresh.

use std::fmt;
use std::time::Duration;

use super::rng::Rng;
use super::world::{World, power_off};

/// Faults stop (everything is healed and powered on) at this virtual time.
pub const FAULTS_END: Duration = Duration::from_secs(60);
/// No fault before this: the cluster comes up first.
const FAULTS_START_MS: u64 = 3_000;
/// The last episode begins this long before the faults end.
const LAST_EPISODE_MS: u64 = 8_000;

/// Which node a fault hits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// This node.
    Node(String),
    /// The node db-0 runs on when the fault happens (the first node if none), remembered
    /// as mark `k` for the rest of the episode.
    Database(usize),
    /// The node mark `k` resolved to (nothing if it never did).
    Marked(usize),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Node(n) => f.write_str(n),
            Target::Database(k) => write!(f, "db-0's node (#{k})"),
            Target::Marked(k) => write!(f, "node #{k}"),
        }
    }
}

/// One thing that happens to the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The reconciler loses its link to the node's runtime.
    Cut(Target),
    /// The link comes back.
    Heal(Target),
    /// The node loses power.
    PowerOff(Target),
    /// The node is powered on (its containers stay stopped).
    PowerOn(Target),
    /// The reconciler loses its link to the node's BMC.
    CutBmc(Target),
    /// The BMC link comes back.
    HealBmc(Target),
    /// The BMC starts (or stops) accepting power-off while leaving the node on.
    BmcLies(Target, bool),
    /// Runtime operations fail this often (percent).
    Flaky(u64),
    /// The runtime restarts a stopped stateless container by itself.
    RestartBehindBack(Target),
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
pub type Schedule = Vec<(Duration, Fault)>;

/// The schedule of `seed`.
pub fn generate(seed: u64, nodes: &[String]) -> Schedule {
    let mut rng = Rng::new(seed);
    let episodes = 1 + rng.below(8);
    let end = u64::try_from(FAULTS_END.as_millis()).unwrap_or(60_000) - LAST_EPISODE_MS;
    let mut out = Schedule::new();
    for k in 0..usize::try_from(episodes).unwrap_or(1) {
        let at = FAULTS_START_MS + rng.below(end - FAULTS_START_MS);
        episode(&mut rng, nodes, k, at, &mut out);
    }
    out.sort_by_key(|(at, _)| *at);
    out
}

/// Appends episode number `k`, beginning at `at` ms.
fn episode(rng: &mut Rng, nodes: &[String], k: usize, at: u64, out: &mut Schedule) {
    let target = if rng.chance(50) {
        Target::Database(k)
    } else {
        Target::Node(nodes[usize::try_from(rng.below(nodes.len() as u64)).unwrap_or(0)].clone())
    };
    let then = match &target {
        Target::Node(n) => Target::Node(n.clone()),
        _ => Target::Marked(k),
    };
    let ms = Duration::from_millis;
    let back = at + 3_000 + rng.below(9_000);
    let mut push = |when: u64, fault: Fault| out.push((ms(when), fault));
    match rng.below(10) {
        // An outage: quorate may fence the node; it comes back powered on.
        0..=2 => {
            push(at, Fault::Cut(target));
            push(back, Fault::Heal(then.clone()));
            push(back, Fault::PowerOn(then));
        }
        3 | 4 => {
            push(at, Fault::PowerOff(target));
            push(back, Fault::PowerOn(then));
        }
        // A restart of the reconciler timed against the dead time of a node it lost.
        5 | 6 => {
            push(at, Fault::Cut(target));
            push(at + rng.below(2_500), Fault::Crash(ms(rng.below(3_000))));
            push(back, Fault::Heal(then.clone()));
            push(back, Fault::PowerOn(then));
        }
        7 => {
            push(at, Fault::CutBmc(target));
            push(back, Fault::HealBmc(then));
        }
        8 => push(at, Fault::BmcLies(target, rng.chance(70))),
        _ => push(at, single(rng, target)),
    }
}

/// A fault on its own.
fn single(rng: &mut Rng, target: Target) -> Fault {
    match rng.below(5) {
        0 => Fault::Flaky(rng.below(30)),
        1 => Fault::RestartBehindBack(target),
        2 => Fault::Heal(target),
        3 => Fault::PowerOn(target),
        _ => Fault::Crash(Duration::from_millis(rng.below(3_000))),
    }
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

fn set(w: &mut World, target: &Target, f: impl FnOnce(&mut super::world::SimNode)) {
    let Some(node) = w.resolve(target) else {
        return;
    };
    if let Some(n) = w.nodes.get_mut(&node) {
        f(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_reach_restarts_within_the_dead_time_of_a_cut_of_the_database_node() {
        let nodes: Vec<String> = ["n1", "n2", "n3"].map(String::from).into();
        let reaching = (0..1_000)
            .filter(|seed| {
                let s = generate(*seed, &nodes);
                s.iter().any(|(cut, f)| {
                    matches!(f, Fault::Cut(Target::Database(_)))
                        && s.iter().any(|(crash, g)| {
                            matches!(g, Fault::Crash(_))
                                && *crash >= *cut
                                && *crash - *cut < Duration::from_secs(2)
                        })
                })
            })
            .count();
        assert!(reaching > 50, "only {reaching} of 1,000 schedules");
        assert_eq!(generate(7, &nodes), generate(7, &nodes));
    }
}

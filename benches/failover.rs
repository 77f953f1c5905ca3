//! Failover time in the lab with default settings, through `quorate run` (membership,
//! fence through the node's IPMI BMC, then recovery), several rounds each on one lab; the
//! cut node is healed and powered on again between rounds. Needs root.
//!
//! 1. The database: from pulling its node's cable to the database answering on another
//!    node (fence, start elsewhere).
//! 2. Redis, a promotable bundle (examples/redis): from pulling the primary's cable to a
//!    write accepted by the new primary (fence, promote the best replica). Beside Redis
//!    Sentinel's documented defaults, which take `down-after-milliseconds` (30 s) before
//!    even starting a failover, and Pacemaker's, whose `stonith-timeout` is 60 s with a
//!    5 s token on its default corosync settings: their figures are documented settings,
//!    not measured here.
//!
//! Run: `cargo bench --bench failover` (`QUORATE_BENCH_ROUNDS` sets the 7 rounds).
//! Goal: under 5 s for both.

#[path = "../tests/support/mod.rs"]
mod support;

use support::env_usize;
use support::lab::TestLab;
use support::lab_run::{
    db_answers, db_answers_elsewhere, db_node, failover_rounds, reconciler, summary,
};
use support::redis_lab::{followed_master, push_redis, set};

fn main() {
    let rounds = env_usize("QUORATE_BENCH_ROUNDS", 7);
    let Some(t) = TestLab::up(3) else {
        println!("failover: skipped (no lab: needs root and the lab's packages)");
        return;
    };
    let r = reconciler(&t);
    let mut times = failover_rounds(
        &t,
        rounds,
        || {
            let s = r.status();
            db_node(&s).filter(|n| s["lastPass"]["outcome"] == "converged" && db_answers(&t, n))
        },
        |from| db_answers_elsewhere(&t, from),
    );
    push_redis(&t);
    let nodes = t.lab.nodes();
    let mut redis = failover_rounds(
        &t,
        rounds,
        || {
            let converged = r.status()["lastPass"]["outcome"] == "converged";
            followed_master(&nodes).filter(|_| converged)
        },
        |from| {
            let to = nodes
                .iter()
                .find(|n| n.name != from && set(n, "bench", "x"))?;
            Some(to.name.clone())
        },
    );
    println!(
        "failover, cut to database answering elsewhere: {} (goal < 5 s)",
        summary(&mut times)
    );
    println!(
        "redis failover, cut to a write accepted by the new primary: {} (goal < 5 s; \
         Sentinel's default waits 30 s before it starts)",
        summary(&mut redis)
    );
}

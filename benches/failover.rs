//! Failover time in the lab with default settings: from pulling the database node's
//! cable to the database answering on its new node, through `quorate run` (membership,
//! fence through the node's IPMI BMC, start elsewhere). Several rounds on one lab; the
//! cut node is healed and powered on again between rounds. Needs root.
//!
//! Run: `cargo bench --bench failover` (`QUORATE_BENCH_ROUNDS` sets the 7 rounds).
//! Goal: under 5 s.

#[path = "../tests/support/mod.rs"]
mod support;

use support::env_usize;
use support::lab::TestLab;
use support::lab_run::{db_answers, db_node, failover_rounds, reconciler, summary};

fn main() {
    let rounds = env_usize("QUORATE_BENCH_ROUNDS", 7);
    let Some(t) = TestLab::up(3) else {
        println!("failover: skipped (no lab: needs root and the lab's packages)");
        return;
    };
    let r = reconciler(&t);
    let mut times = failover_rounds(&t, rounds, || {
        let s = r.status();
        db_node(&s).filter(|n| s["lastPass"]["outcome"] == "converged" && db_answers(&t, n))
    });
    println!(
        "failover, cut to database answering elsewhere: {} (goal < 5 s)",
        summary(&mut times)
    );
}

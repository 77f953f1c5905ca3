//! Failover time in the lab with default settings: from pulling the database node's
//! cable to the database answering on its new node, through `quorate run` (membership,
//! fence through the node's IPMI BMC, start elsewhere). Several rounds on one lab; the
//! cut node is healed and powered on again between rounds. Needs root.
//!
//! Run: `cargo bench --bench failover` (`QUORATE_BENCH_ROUNDS` sets the 7 rounds).
//! Goal: under 5 s.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use support::env_usize;
use support::lab::{TestLab, text};
use support::lab_run::{db_answers, db_node, reconciler};
use support::quorate_run::QuorateRun;

fn until<T>(within: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(v) = f() {
            return Some(v);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

fn lab(t: &TestLab, args: &[&str]) {
    let out = t.cmd(args);
    assert!(out.status.success(), "lab {args:?}: {}", text(&out));
}

fn main() {
    let rounds = env_usize("QUORATE_BENCH_ROUNDS", 7);
    let Some(t) = TestLab::up(3) else {
        println!("failover: skipped (no lab: needs root and the lab's packages)");
        return;
    };
    let r = reconciler(&t);
    let settled = |r: &QuorateRun| {
        let s = r.status();
        db_node(&s).filter(|n| s["lastPass"]["outcome"] == "converged" && db_answers(&t, n))
    };
    let mut times = Vec::new();
    for round in 0..rounds {
        let Some(from) = until(Duration::from_secs(60), || settled(&r)) else {
            println!("round {round}: the cluster did not settle");
            break;
        };
        let cut = Instant::now();
        lab(&t, &["cut", &from]);
        let moved = until(Duration::from_secs(60), || {
            t.lab
                .nodes()
                .iter()
                .map(|n| n.name.clone())
                .find(|n| *n != from && db_answers(&t, n))
        });
        let took = cut.elapsed();
        match moved {
            Some(to) => println!("round {round}: cut {from}, database on {to} after {took:.2?}"),
            None => println!("round {round}: cut {from}, no database after {took:.2?}"),
        }
        times.push(took);
        lab(&t, &["heal", &from]);
        lab(&t, &["power", &from, "on"]);
    }
    times.sort();
    if let (Some(min), Some(max)) = (times.first(), times.last()) {
        let median = times[times.len() / 2];
        println!(
            "failover, cut to database answering elsewhere, {} rounds: median {median:.2?}, min {min:.2?}, max {max:.2?} (goal < 5 s)",
            times.len()
        );
    }
}

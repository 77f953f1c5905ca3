//! HA in the lab (issue 13, test 5): a three-node `quorate lab`, three etcd members
//! started by the test, and two `quorate run --etcd` replicas with the default lease and
//! timeout. The database node's cable is cut; the moment the leader's power-off command
//! reaches the node's BMC (`chassis.log`, written by the BMC's chassis control before it
//! acts), the leader is killed with SIGKILL, its fence run unfinished. The other replica
//! takes over, waits out the old lease (design invariant 9), and finishes the job.
//!
//! Checked: the node is powered off once (one off command found it on, nothing powered it
//! on again) and etcd's fence history has one successful power-off; the database starts
//! exactly once more (its start log in a bind mount), on another node; and a watcher
//! that asks every node's Podman from inside its namespace never sees two databases
//! (invariant 1).

mod support;

use std::time::{Duration, Instant};

use support::etcd_svc::EtcdCluster;
use support::lab::TestLab;
use support::lab_run::{
    Watcher, bmc_commands, db_answers, db_node, db_runs_on, db_starts, etcd_fence_history,
    etcd_fenced, ha_leader, ha_reconciler, lab, wait_for,
};
use support::quorate_run::QuorateRun;

/// Waits until the power-off command reaches `node`'s BMC (polling its log every 5 ms).
fn power_off_reached(t: &TestLab, node: &str, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if bmc_commands(t, node)
            .iter()
            .any(|c| c.starts_with("set power 0"))
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

#[test]
fn the_leader_killed_during_the_fence_the_node_is_fenced_once_and_the_database_starts_once_elsewhere()
 {
    let Some(t) = TestLab::up(3) else { return };
    let Some(etcd) = EtcdCluster::start(3) else {
        return;
    };
    let endpoints = etcd.endpoints();
    let mut rs = [
        Some(ha_reconciler(&t, &endpoints, "a", &[])),
        Some(ha_reconciler(&t, &endpoints, "b", &[])),
    ];
    let w = Watcher::start(t.lab.nodes(), t.name.clone());
    // The first leader waits out a lease too before acting (about 2·ttl + timeout).
    let (l, first) = wait_for(
        "a leader and the database up",
        Duration::from_secs(150),
        &w,
        || {
            let live: Vec<&QuorateRun> = rs.iter().flatten().collect();
            let l = ha_leader(&live)?;
            let s = live[l].status();
            let db = db_node(&s).filter(|_| s["lastPass"]["outcome"] == "converged")?;
            db_answers(&t, &db).then_some((l, db))
        },
    );
    assert!(db_runs_on(&t.lab.node(&first).unwrap(), &t.name));
    let starts_before = db_starts(&t);
    assert_eq!(starts_before, 1, "the database started once so far");
    assert!(bmc_commands(&t, &first).is_empty());

    lab(&t, &["cut", &first]);
    let cut = Instant::now();
    assert!(
        power_off_reached(&t, &first, Duration::from_secs(60)),
        "no power-off command reached {first}'s BMC"
    );
    let mut old = rs[l].take().unwrap();
    old.child.kill().unwrap();
    old.child.wait().unwrap();
    let killed = cut.elapsed();
    // The kill came during the fence: the run had recorded no outcome yet.
    assert_eq!(
        etcd_fenced(&etcd, &first),
        0,
        "the fence was over before the kill: {:?}",
        etcd_fence_history(&etcd, &first)
    );
    eprintln!("cut {first}; power-off at its BMC, leader killed after {killed:.2?}");

    let new = rs[1 - l].as_ref().unwrap();
    let second = wait_for(
        "the database on another node, by the new leader",
        Duration::from_secs(150),
        &w,
        || {
            let s = new.status();
            if s["ha"]["role"] != "leader" {
                return None;
            }
            db_node(&s).filter(|n| *n != first && db_answers(&t, n))
        },
    );
    eprintln!("database on {second} after {:.2?}", cut.elapsed());

    // Nothing more happens afterwards: a few passes later the counts are the same.
    std::thread::sleep(Duration::from_secs(5));
    w.check();
    let commands = bmc_commands(&t, &first);
    eprintln!("{first}'s BMC received: {commands:?}");
    let powered_off = commands
        .iter()
        .filter(|c| *c == "set power 0 (was on)")
        .count();
    assert_eq!(powered_off, 1, "powered off once: {commands:?}");
    assert!(
        !commands.iter().any(|c| c.starts_with("set power 1")),
        "nothing powered it on again: {commands:?}"
    );
    assert_eq!(
        etcd_fenced(&etcd, &first),
        1,
        "one successful fence in the history: {:?}",
        etcd_fence_history(&etcd, &first)
    );
    assert_eq!(
        db_starts(&t),
        starts_before + 1,
        "the database started once more"
    );
    for n in t.lab.nodes() {
        assert_eq!(
            db_runs_on(&n, &t.name),
            n.name == second,
            "the database runs on {second} only"
        );
    }
    let log = std::fs::read_to_string(&new.log).unwrap_or_default();
    assert!(log.contains("elected leader"), "{log}");
    drop(w);
}

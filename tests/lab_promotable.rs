//! A promotable bundle end to end, with real Redis replication: a three-node `quorate
//! lab`, the example spec set's `redis` bundle (examples/redis) committed to the lab's
//! repository, and `quorate run` as a separate process. A watcher reads `INFO
//! replication` of every node's Redis from inside the node's own network namespace every
//! 100 ms, and fails the test the moment two instances report `role:master` (invariant 8).
//!
//! Scenarios, in one lab: convergence to one primary and two replicas; a cut primary
//! (fenced, the best replica promoted); its node powered on again (its Redis stays down
//! until the reconciler starts it as a replica); a primary whose BMC does not answer (no
//! promotion until a person confirms it off); no quorum (nothing promoted or demoted).

mod support;

use std::time::{Duration, Instant};

use quorate::lab::LabNode;
use support::lab::{TestLab, quorate, text};
use support::lab_run::{Watcher, failed_attempts, fences, lab, reconciler, wait_for as wait};
use support::redis_lab::{get, master_watcher, masters, push_redis, replication, set, settled};

fn node(t: &TestLab, name: &str) -> LabNode {
    t.lab.node(name).unwrap()
}

fn others(t: &TestLab, but: &[&str]) -> Vec<LabNode> {
    t.lab
        .nodes()
        .into_iter()
        .filter(|n| !but.contains(&n.name.as_str()))
        .collect()
}

/// Puts `name` back (cable in, powered on) and waits until every node's Redis follows
/// one master again; returns it.
fn back(t: &TestLab, w: &Watcher, name: &str) -> String {
    lab(t, &["heal", name]);
    lab(t, &["power", name, "on"]);
    settled(&t.lab.nodes(), w, Duration::from_secs(90))
}

#[test]
fn redis_fails_over_to_one_new_primary_and_never_two() {
    let Some(t) = TestLab::up(3) else {
        return;
    };
    push_redis(&t);
    let r = reconciler(&t);
    let w = master_watcher(t.lab.nodes());

    // 1. One primary, two replicas; a key written on the primary reaches both.
    let first = settled(&t.lab.nodes(), &w, Duration::from_secs(120));
    assert!(set(&node(&t, &first), "k1", "before-the-cut"));
    for n in others(&t, &[&first]) {
        wait("k1 on a replica", Duration::from_secs(10), &w, || {
            (get(&n, "k1").as_deref() == Some("before-the-cut")).then_some(())
        });
    }

    // 2. The primary's cable is cut: it is fenced, then the replica with the highest
    // offset is promoted and the other follows it; k1 survives, a new key reaches the
    // remaining replica.
    let offsets: Vec<(String, i64)> = others(&t, &[&first])
        .iter()
        .filter_map(|n| Some((n.name.clone(), replication(n)?.offset)))
        .collect();
    let best = offsets.iter().map(|(_, o)| *o).max().unwrap();
    let cut_at = Instant::now();
    lab(&t, &["cut", &first]);
    let rest = others(&t, &[&first]);
    let second = settled(&rest, &w, Duration::from_secs(60));
    eprintln!(
        "2. cut {first}: {second} promoted after {:?}",
        cut_at.elapsed()
    );
    assert_eq!(
        fences(&t, &first).0,
        1,
        "{first} fenced before the promotion"
    );
    let promoted_offset = offsets.iter().find(|(n, _)| *n == second).map(|(_, o)| *o);
    assert_eq!(
        promoted_offset,
        Some(best),
        "{second} promoted; offsets were {offsets:?}"
    );
    let new = node(&t, &second);
    assert_eq!(get(&new, "k1").as_deref(), Some("before-the-cut"));
    assert!(set(&new, "k2", "after-the-cut"));
    for n in others(&t, &[&first, &second]) {
        wait(
            "k2 on the remaining replica",
            Duration::from_secs(10),
            &w,
            || (get(&n, "k2").as_deref() == Some("after-the-cut")).then_some(()),
        );
    }

    // 3. The old primary's node powered on: its Redis stays down (no restart policy,
    // invariant 5) until the reconciler starts it, as a replica of the new primary.
    lab(&t, &["heal", &first]);
    lab(&t, &["power", &first, "on"]);
    let old = node(&t, &first);
    assert!(
        replication(&old).is_none_or(|r| r.role != "master"),
        "the old primary came back as a master"
    );
    let now = settled(&t.lab.nodes(), &w, Duration::from_secs(90));
    assert_eq!(now, second, "the new primary stays primary");
    wait("k2 on the old primary", Duration::from_secs(10), &w, || {
        (get(&old, "k2").as_deref() == Some("after-the-cut")).then_some(())
    });

    // 4. The primary's BMC does not answer when its cable is cut: nothing is promoted
    // (the old primary may still take writes) and the reconciler says why; once a
    // person has made sure it is down and confirmed it, the promotion proceeds.
    let q = second.clone();
    let bmc_pid: i32 =
        std::fs::read_to_string(t.lab.config().bmc_dir(&node(&t, &q)).join("sim.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
    // SAFETY: signals to the lab's own ipmi_sim process.
    unsafe { libc::kill(bmc_pid, libc::SIGSTOP) };
    let failed_before = failed_attempts(&t, &q);
    lab(&t, &["cut", &q]);
    wait(
        "a failed fence attempt",
        Duration::from_secs(60),
        &w,
        || (failed_attempts(&t, &q) > failed_before).then_some(()),
    );
    std::thread::sleep(Duration::from_secs(2));
    let said = wait(
        "the reconciler says why",
        Duration::from_secs(120),
        &w,
        || {
            let said = serde_json::to_string(&r.status()["lastPass"]).ok()?;
            said.contains(&format!("fence {q}")).then_some(said)
        },
    );
    eprintln!("4. {q}'s BMC silent: {said}");
    assert_eq!(
        masters(&t.lab.nodes()),
        vec![q.clone()],
        "nothing promoted while {q} may write"
    );
    // The person's check: the node's Redis is shut down (from inside the node), then the
    // confirmation.
    let _ = support::redis_lab::redis(&node(&t, &q), "SHUTDOWN NOSAVE");
    wait("the old primary down", Duration::from_secs(10), &w, || {
        replication(&node(&t, &q)).is_none().then_some(())
    });
    let state = t.lab.config().reconciler_state_dir();
    let specs = t.lab.config().repo_work().join("specs");
    let out = quorate(&[
        "fence",
        "confirm",
        &q,
        "--by",
        "test",
        "--specs",
        &specs.to_string_lossy(),
        "--state-dir",
        &state.to_string_lossy(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let rest = others(&t, &[&q]);
    let third = settled(&rest, &w, Duration::from_secs(120));
    eprintln!("4. {q}'s BMC silent: {third} promoted after the confirmation");
    // SAFETY: as above.
    unsafe { libc::kill(bmc_pid, libc::SIGCONT) };
    assert_eq!(back(&t, &w, &q), third);

    // 5. No quorum (two of three nodes cut): nothing is promoted or demoted; the primary
    // stays where it is, the replica stays a replica.
    let cut: Vec<String> = others(&t, &[])
        .into_iter()
        .map(|n| n.name)
        .filter(|n| *n != third)
        .collect();
    let cut_primary_too = [third.clone(), cut[0].clone()];
    let fenced_before = fences(&t, &cut[0]).0;
    for n in &cut_primary_too {
        lab(&t, &["cut", n]);
    }
    wait("quorum lost", Duration::from_secs(15), &w, || {
        (r.status()["quorum"]["quorate"] == false).then_some(())
    });
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(masters(&t.lab.nodes()), vec![third.clone()]);
    assert_eq!(
        fences(&t, &cut[0]).0,
        fenced_before,
        "no fence without quorum"
    );
    for n in &cut_primary_too {
        lab(&t, &["heal", n]);
    }
    assert_eq!(settled(&t.lab.nodes(), &w, Duration::from_secs(90)), third);
    w.check();
    drop(w);
    drop(r);
}

//! Failover end to end: a three-node `quorate lab` (network namespaces with their own
//! Podman, an `ipmi_sim` BMC per node), the lab's specs in its git repository, and
//! `quorate run` as a separate process. A watcher asks every node's Podman, from inside
//! the node's own network namespace (so a cut cable does not hide it), every 100 ms
//! throughout, and records the moment two database instances run at once (invariant 1).
//!
//! Scenarios, in one lab: a cut cable, a power loss, the reconciler cut off from two of
//! three nodes (no quorum), an unreachable BMC, a fenced node powered on again, and a
//! pushed spec change restarting instances in constraint order.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use support::git_repos::git_ok;
use support::lab::TestLab;
use support::lab_run::{
    Watcher, db_answers, db_moves_from, db_node, db_runs_on, failed_attempts, fences, lab,
    list_in_namespace, reconciler, restore, started_at, wait_for,
};

#[test]
fn the_database_fails_over_safely() {
    let Some(t) = TestLab::up(3) else {
        return;
    };
    let r = reconciler(&t);
    let w = Watcher::start(t.lab.nodes(), t.name.clone());
    let first = wait_for("the database up", Duration::from_secs(60), &w, || {
        let s = r.status();
        db_node(&s).filter(|n| s["lastPass"]["outcome"] == "converged" && db_answers(&t, n))
    });

    // The watcher's view agrees with the reconciler's (so its silence means something).
    assert!(db_runs_on(&t.lab.node(&first).unwrap(), &t.name));

    // 1. A cut cable: fenced through IPMI, the database serves on another node.
    let started = Instant::now();
    lab(&t, &["cut", &first]);
    let second = db_moves_from(&t, &r, &w, &first);
    eprintln!(
        "1. cut {first}: database on {second} after {:?}",
        started.elapsed()
    );
    assert_eq!(fences(&t, &first), (1, 0));
    restore(&t, &r, &w, &first);

    // 2. A power loss: the same.
    let started = Instant::now();
    lab(&t, &["power", &second, "off"]);
    let third = db_moves_from(&t, &r, &w, &second);
    eprintln!(
        "2. power off {second}: database on {third} after {:?}",
        started.elapsed()
    );
    assert_eq!(fences(&t, &second), (1, 0));
    restore(&t, &r, &w, &second);

    // 3. Cut off from two of three nodes: no quorum, so no fence and no start; the
    // database stays where it runs. After healing, convergence.
    let others: Vec<String> = t
        .lab
        .nodes()
        .into_iter()
        .map(|n| n.name)
        .filter(|n| *n != third)
        .collect();
    let before: BTreeMap<String, (usize, usize)> = t
        .lab
        .nodes()
        .iter()
        .map(|n| (n.name.clone(), fences(&t, &n.name)))
        .collect();
    lab(&t, &["cut", &third]);
    lab(&t, &["cut", &others[0]]);
    wait_for("quorum lost", Duration::from_secs(15), &w, || {
        (r.status()["quorum"]["quorate"] == false).then_some(())
    });
    std::thread::sleep(Duration::from_secs(4));
    assert!(db_runs_on(&t.lab.node(&third).unwrap(), &t.name));
    for n in t.lab.nodes() {
        assert_eq!(
            fences(&t, &n.name),
            before[&n.name],
            "no fence without quorum"
        );
    }
    lab(&t, &["heal", &third]);
    lab(&t, &["heal", &others[0]]);
    wait_for(
        "convergence after healing",
        Duration::from_secs(30),
        &w,
        || {
            let s = r.status();
            let db = db_node(&s)?;
            (s["lastPass"]["outcome"] == "converged" && db_answers(&t, &db)).then_some(())
        },
    );

    // 4. The lost node's BMC does not answer: the database stays down (never twice);
    // when the BMC answers again, the fence completes and the database recovers.
    let lost = db_node(&r.status()).unwrap();
    let bmc_pid: i32 = std::fs::read_to_string(
        t.lab
            .config()
            .bmc_dir(&t.lab.node(&lost).unwrap())
            .join("sim.pid"),
    )
    .unwrap()
    .trim()
    .parse()
    .unwrap();
    // SAFETY: signals to the lab's own ipmi_sim process.
    unsafe { libc::kill(bmc_pid, libc::SIGSTOP) };
    lab(&t, &["cut", &lost]);
    wait_for(
        "a failed fence attempt",
        Duration::from_secs(60),
        &w,
        || (failed_attempts(&t, &lost) > 0).then_some(()),
    );
    std::thread::sleep(Duration::from_secs(2));
    for n in t.lab.nodes().iter().filter(|n| n.name != lost) {
        assert!(
            !db_runs_on(n, &t.name),
            "the database started on {}",
            n.name
        );
    }
    // SAFETY: as above.
    unsafe { libc::kill(bmc_pid, libc::SIGCONT) };
    let after_bmc = db_moves_from(&t, &r, &w, &lost);
    eprintln!("4. {lost}'s BMC back: database on {after_bmc}");
    assert!(fences(&t, &lost).0 > 0);
    assert!(failed_attempts(&t, &lost) > 0);

    // 5. The fenced node powered on again: its old database container stays stopped;
    // only the reconciler's plan starts anything.
    lab(&t, &["heal", &lost]);
    lab(&t, &["power", &lost, "on"]);
    let node = t.lab.node(&lost).unwrap();
    let back_at = Instant::now();
    while back_at.elapsed() < Duration::from_secs(4) {
        w.check();
        assert!(
            !db_runs_on(&node, &t.name),
            "the old database restarted on {lost}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    restore(&t, &r, &w, &lost);

    // 6. A pushed change to both bundles restarts them in constraint order: the
    // database (first) starts before the web tier (then).
    let running = |t: &TestLab| {
        let mut at = BTreeMap::new();
        for n in t.lab.nodes() {
            for (name, up) in list_in_namespace(&n, &t.name).unwrap_or_default() {
                if let Some(when) = up.then(|| started_at(&n, &name)).flatten() {
                    at.insert(name, when);
                }
            }
        }
        at
    };
    let before = running(&t);
    assert_eq!(before.len(), 3, "{before:?}");
    let work = t.lab.config().repo_work();
    let bundles = work.join("specs/bundles.yaml");
    let text = std::fs::read_to_string(&bundles).unwrap();
    let changed = text
        .replace(
            "  replicas: 1\n",
            "  replicas: 1\n  env: {GENERATION: \"2\"}\n",
        )
        .replace(
            "  replicas: 2\n",
            "  replicas: 2\n  env: {GENERATION: \"2\"}\n",
        );
    assert_ne!(text, changed);
    std::fs::write(&bundles, changed).unwrap();
    git_ok(&work, &["commit", "-q", "-am", "generation 2"]);
    git_ok(&work, &["push", "-q", "origin", "HEAD:main"]);
    let after = wait_for(
        "every instance restarted",
        Duration::from_secs(60),
        &w,
        || {
            let now = running(&t);
            let restarted = now.len() == 3
                && now
                    .iter()
                    .all(|(name, at)| before.get(name).is_some_and(|b| at > b));
            restarted.then_some(now)
        },
    );
    for web in ["web-0", "web-1"] {
        assert!(
            after[web] > after["db-0"],
            "{web} started before db-0: {after:?}"
        );
    }
    w.check();
    drop(w);
    drop(r);
}

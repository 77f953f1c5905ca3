//! A restart of `quorate run` while a node is being lost (issue 11's reproduction, in the
//! real lab): every node has an old fence record; the database runs on a node that was
//! fenced once and came back; its cable is cut, and half a second later, before the dead
//! time ends, the reconciler is stopped (SIGKILL, then in a second round SIGTERM) and
//! started again on the same state directory. The new process never saw that node answer,
//! so only the durable last-seen time tells it the old fence record is stale: it must
//! fence the node again before starting the database elsewhere. A watcher asks every
//! node's Podman from inside its namespace every 100 ms and fails the test the moment two
//! databases run.

mod support;

use std::time::{Duration, Instant};

use support::lab::TestLab;
use support::lab_run::{
    Watcher, db_answers, db_moves_from, db_node, fences, lab, restore, wait_for,
};
use support::quorate_run::QuorateRun;

/// Stops `run` with `signal` and waits for it to exit.
fn stop(mut run: QuorateRun, signal: i32) {
    let pid = i32::try_from(run.child.id()).unwrap();
    // SAFETY: a signal to our own child process.
    unsafe { libc::kill(pid, signal) };
    let deadline = Instant::now() + Duration::from_secs(30);
    while run.child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "quorate run did not exit on {signal}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn start(t: &TestLab, round: &str) -> QuorateRun {
    let cfg = t.lab.config();
    QuorateRun::start(
        &cfg.repo_bare(),
        &cfg.reconciler_state_dir(),
        &t.dir.with_extension(format!("run-{round}.log")),
        &[
            std::ffi::OsStr::new("--secrets-dir"),
            cfg.secrets_dir().as_os_str(),
        ],
    )
}

#[test]
fn a_restart_during_a_cut_never_runs_the_database_twice() {
    let Some(t) = TestLab::up(3) else {
        return;
    };
    let mut r = start(&t, "first");
    let w = Watcher::start(t.lab.nodes(), t.name.clone());
    let mut db = wait_for("the database up", Duration::from_secs(60), &w, || {
        let s = r.status();
        db_node(&s).filter(|n| s["lastPass"]["outcome"] == "converged" && db_answers(&t, n))
    });
    // Every node gets a fence record from the past: the two others are cut, fenced and
    // brought back; then the database's own node, so the database moves to a node that
    // was fenced before.
    let nodes: Vec<String> = t.lab.nodes().into_iter().map(|n| n.name).collect();
    for other in nodes.iter().filter(|n| **n != db) {
        lab(&t, &["cut", other]);
        wait_for("the fence", Duration::from_secs(30), &w, || {
            (fences(&t, other).0 == 1).then_some(())
        });
        restore(&t, &r, &w, other);
    }
    lab(&t, &["cut", &db]);
    let moved = db_moves_from(&t, &r, &w, &db);
    restore(&t, &r, &w, &db);
    db = moved;

    for (round, signal) in [("sigkill", libc::SIGKILL), ("sigterm", libc::SIGTERM)] {
        let before = fences(&t, &db).0;
        assert!(before >= 1, "{db} has a fence record from the past");
        lab(&t, &["cut", &db]);
        std::thread::sleep(Duration::from_millis(500));
        stop(r, signal);
        r = start(&t, round);
        let started = Instant::now();
        let moved = db_moves_from(&t, &r, &w, &db);
        eprintln!(
            "{round}: {db} cut, reconciler restarted; database on {moved} after {:?}",
            started.elapsed()
        );
        assert_eq!(
            fences(&t, &db).0,
            before + 1,
            "{db} was fenced again before the database started elsewhere"
        );
        restore(&t, &r, &w, &db);
        db = moved;
    }
    w.check();
    drop(w);
    drop(r);
}

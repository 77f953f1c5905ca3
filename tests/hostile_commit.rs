//! A valid commit must never stop the reconciler for good (design invariant 10): a commit
//! no pass planned from, because `quorate run` was killed while planning it, is rejected at the restart and never adopted again, and the last good commit stays
//! in force. `quorate run` runs as a separate process, on a real bare repository and a real
//! Podman service.
//!
//! The commit "being planned" adds a node whose runtime does not exist, with a dead time of
//! an hour: every pass of it waits for that node, so none plans from it, and the test can
//! kill the process at that moment as surely as an out-of-memory kill would.

mod support;

use std::ffi::OsStr;
use std::process::Command;
use std::time::Duration;
use support::wait_for;

use serde_json::Value;
use support::git_repos::Repos;
use support::quorate_run::QuorateRun;
use support::{PodmanService, TEST_IMAGE};

/// A cluster on the test's Podman, with `replicas` instances of `app`; with `silent`, a
/// second node that never answers and is lost only after an hour.
fn specs(svc: &PodmanService, replicas: u32, silent: bool) -> String {
    let (n2, dead) = if silent {
        (
            ", {name: n2, runtime: 'podman+unix:///nonexistent/quorate-hostile-n2.sock'}",
            "\n  membership: {deadTime: 1h}",
        )
    } else {
        ("", "")
    };
    format!(
        "apiVersion: quorate.io/v1alpha1
kind: Cluster
metadata: {{name: hostile}}
spec:
  nodes: [{{name: n1, runtime: '{url}'}}{n2}]
  quorum: {{reconcilerVotes: 0}}
  fencing: {{enabled: false}}{dead}
---
apiVersion: quorate.io/v1alpha1
kind: Bundle
metadata: {{name: app}}
spec:
  image: {TEST_IMAGE}
  replicas: {replicas}
  replicasPerHost: 20
  recovery: restart
  stopTimeout: 1s
  command: [sh, -c, 'exec sleep 1000']
",
        url = svc.url(),
    )
}

fn start_run(repos: &Repos) -> QuorateRun {
    let extra: [&OsStr; 2] = ["--poll-interval".as_ref(), "1m".as_ref()];
    let log = repos.dir.path().join(format!(
        "run-{}.log",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    QuorateRun::start(&repos.bare(), &repos.state(), &log, &extra)
}

fn log(run: &QuorateRun) -> String {
    std::fs::read_to_string(&run.log).unwrap_or_default()
}

fn rejected(status: &Value) -> Vec<(String, String)> {
    status["rejected"]
        .as_array()
        .map(|r| {
            r.iter()
                .map(|r| {
                    (
                        r["commit"].as_str().unwrap_or_default().to_owned(),
                        r["problems"].to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The good commit in force and converged, then the commit that is never planned pushed
/// and adopted; returns (good, unfinished).
fn adopt_a_commit_no_pass_plans_from(
    svc: &PodmanService,
    repos: &Repos,
    run: &QuorateRun,
) -> (String, String) {
    let good = repos.commit("one app");
    assert!(repos.push().status.success());
    wait_for("app-0 running", Duration::from_secs(30), || {
        (svc.container_names(false) == support::app_instances(1)).then_some(())
    });
    wait_for("a pass of the good commit", Duration::from_secs(10), || {
        let s = run.status();
        (s["commit"] == good.as_str() && s["lastPass"]["outcome"] == "converged").then_some(())
    });
    repos.write("specs/cluster.yaml", &specs(svc, 2, true));
    let unfinished = repos.commit("two apps and a silent node");
    assert!(repos.push().status.success());
    wait_for("the new commit adopted", Duration::from_secs(10), || {
        (run.status()["commit"] == unfinished.as_str()).then_some(())
    });
    // Its passes wait for n2: nothing is planned from it.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(svc.container_names(false), support::app_instances(1));
    (good, unfinished)
}

#[test]
fn a_commit_quorate_was_killed_planning_is_rejected_at_the_restart_and_the_last_good_one_stays() {
    let _serial = support::serial();
    let Some(svc) = support::podman() else {
        return;
    };
    let repos = Repos::new();
    repos.write("specs/cluster.yaml", &specs(&svc, 1, false));
    let mut run = start_run(&repos);
    let (good, unfinished) = adopt_a_commit_no_pass_plans_from(&svc, &repos, &run);

    // Killed while the commit is being planned, as the out-of-memory killer would.
    run.child.kill().unwrap();
    run.child.wait().unwrap();
    drop(run);

    let run = start_run(&repos);
    let status = wait_for("the restart", Duration::from_secs(10), || {
        let s = run.status();
        (!s.is_null()).then_some(s)
    });
    assert_eq!(status["commit"], good.as_str(), "{status}");
    let r = rejected(&status);
    assert_eq!(r.len(), 1, "{status}");
    assert_eq!(r[0].0, unfinished);
    assert!(
        r[0].1
            .contains("quorate::run::stopped-while-planning: quorate stopped while planning it"),
        "{}",
        r[0].1
    );
    let text = log(&run);
    assert!(
        text.contains("commit rejected: quorate stopped while planning it")
            && text.contains(&unfinished[..12])
            && text.contains(&good[..12]),
        "{text}"
    );
    // The branch's head is that commit: it is offered again and not adopted.
    wait_for("the head refused", Duration::from_secs(20), || {
        log(&run)
            .contains("commit not adopted again: quorate stopped while planning it")
            .then_some(())
    });
    std::thread::sleep(Duration::from_secs(1));
    let status = run.status();
    assert_eq!(status["commit"], good.as_str(), "{status}");
    assert_eq!(svc.container_names(false), support::app_instances(1));

    // The next good commit is adopted as usual.
    repos.write("specs/cluster.yaml", &specs(&svc, 3, false));
    let next = repos.commit("three apps");
    assert!(repos.push().status.success());
    wait_for("three apps running", Duration::from_secs(30), || {
        (svc.container_names(false) == support::app_instances(3)).then_some(())
    });
    wait_for("the next commit in force", Duration::from_secs(10), || {
        (run.status()["commit"] == next.as_str()).then_some(())
    });
    drop(run);

    // `quorate status` from the state directory shows the same.
    let out = Command::new(env!("CARGO_BIN_EXE_quorate"))
        .args(["status", "--state-dir"])
        .arg(repos.state())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("Commit in force: {next}")), "{text}");
    assert!(
        text.contains(&unfinished[..12]) && text.contains("quorate::run::stopped-while-planning"),
        "{text}"
    );
}

#[test]
fn a_sigterm_before_the_first_pass_of_a_commit_withdraws_it_and_the_next_start_adopts_it() {
    let _serial = support::serial();
    let Some(svc) = support::podman() else {
        return;
    };
    let repos = Repos::new();
    repos.write("specs/cluster.yaml", &specs(&svc, 1, false));
    let mut run = start_run(&repos);
    let (_, unfinished) = adopt_a_commit_no_pass_plans_from(&svc, &repos, &run);

    let pid = i32::try_from(run.child.id()).unwrap();
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let code = wait_for("exit after SIGTERM", Duration::from_secs(30), || {
        run.child.try_wait().unwrap()
    });
    assert!(code.success(), "{code:?}: {}", log(&run));
    drop(run);

    let run = start_run(&repos);
    wait_for("the commit adopted again", Duration::from_secs(20), || {
        (run.status()["commit"] == unfinished.as_str()).then_some(())
    });
    let status = run.status();
    assert_eq!(rejected(&status), [], "{status}");
    assert!(
        !log(&run).contains("stopped while planning"),
        "{}",
        log(&run)
    );
}

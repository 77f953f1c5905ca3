//! `quorate run` end to end: a real bare repository pushed to with the `git` command line,
//! a real Podman service, and the reconciler as a separate process.

mod support;

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use support::wait_for;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use support::PodmanService;
use support::git_repos::{Repos, git_ok};
use support::quorate_run::QuorateRun;

const TOKEN: &str = "operator-token-0123456789";
const HOOK_SECRET: &str = "hook-secret-abcdef";

fn specs(svc: &PodmanService, data: &Path, replicas: u32) -> String {
    support::app_specs("gitops", "", svc, data, replicas)
}

/// `quorate run` on the test repository, with an operator token and a webhook secret.
fn start_run(repos: &Repos) -> QuorateRun {
    let dir = repos.dir.path();
    std::fs::write(dir.join("token"), TOKEN).unwrap();
    std::fs::write(dir.join("hook-secret"), HOOK_SECRET).unwrap();
    let (token, secret) = (dir.join("token"), dir.join("hook-secret"));
    let extra: [&OsStr; 6] = [
        "--token-file".as_ref(),
        token.as_os_str(),
        "--webhook-secret-file".as_ref(),
        secret.as_os_str(),
        "--poll-interval".as_ref(),
        "1m".as_ref(),
    ];
    QuorateRun::start(&repos.bare(), &repos.state(), &dir.join("run.log"), &extra)
}

fn quorate(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_quorate"))
        .args(args)
        .output()
        .unwrap()
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

/// Plain HTTP/1.1 POST; returns the status code.
fn http_post(addr: &str, path: &str, headers: &[(&str, String)], body: &str) -> u16 {
    let mut s = TcpStream::connect(addr).unwrap();
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

fn hmac_hex(body: &str) -> String {
    let mut m = Hmac::<Sha256>::new_from_slice(HOOK_SECRET.as_bytes()).unwrap();
    m.update(body.as_bytes());
    m.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn setup() -> Option<(PodmanService, Repos, PathBuf)> {
    let svc = support::podman()?;
    let repos = Repos::new();
    let data = repos.dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    Some((svc, repos, data))
}

#[test]
fn pushes_change_the_cluster_and_invalid_commits_change_nothing() {
    let Some((svc, repos, data)) = setup() else {
        return;
    };
    repos.write("specs/cluster.yaml", &specs(&svc, &data, 1));
    let first = repos.commit("one app");
    assert!(repos.push().status.success());
    let run = start_run(&repos);

    // The commit in force starts its container.
    wait_for("app-0 running", Duration::from_secs(30), || {
        (svc.container_names(false) == support::app_instances(1)).then_some(())
    });
    assert_eq!(run.status()["commit"], first.as_str());

    // A pushed change is seen at once (the refs are watched) and carried out.
    repos.write("specs/cluster.yaml", &specs(&svc, &data, 3));
    let second = repos.commit("three apps");
    assert!(repos.push().status.success());
    wait_for("three apps running", Duration::from_secs(30), || {
        (svc.container_names(false) == support::app_instances(3)).then_some(())
    });
    wait_for(
        "the second commit in force",
        Duration::from_secs(10),
        || (run.status()["commit"] == second.as_str()).then_some(()),
    );

    // An invalid commit (pushed without the hook) is rejected: nothing changes, the
    // status shows it with its findings, and the previous commit stays in force.
    let broken = specs(&svc, &data, 1).replace("replicas: 1", "replicas: -1\n  replikas: 1");
    repos.write("specs/cluster.yaml", &broken);
    let bad = repos.commit("broken");
    assert!(repos.push().status.success());
    let status = wait_for("the rejection", Duration::from_secs(10), || {
        let s = run.status();
        let seen = s["rejected"]
            .as_array()
            .is_some_and(|r| r.iter().any(|r| r["commit"] == bad.as_str()));
        seen.then_some(s)
    });
    assert_eq!(status["commit"], second.as_str());
    let problems = status["rejected"][0]["problems"].to_string();
    assert!(problems.contains("specs/cluster.yaml:"), "{problems}");
    assert!(problems.contains("replikas"), "{problems}");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(svc.container_names(false), support::app_instances(3));
    // The same from the state directory, read while the reconciler runs.
    let offline = quorate(&["status", "--state-dir", repos.state().to_str().unwrap()]);
    let text = String::from_utf8_lossy(&offline.stdout);
    assert!(text.contains(&bad[..12]), "{text}");
    assert!(text.contains(&second), "{text}");

    // The next good commit is put in force again.
    repos.write("specs/cluster.yaml", &specs(&svc, &data, 2));
    let third = repos.commit("two apps");
    assert!(repos.push().status.success());
    wait_for("two apps running", Duration::from_secs(30), || {
        (svc.container_names(false) == support::app_instances(2)).then_some(())
    });
    wait_for("the third commit in force", Duration::from_secs(10), || {
        (run.status()["commit"] == third.as_str()).then_some(())
    });
    assert_ne!(first, third);

    // Operator requests need the token; webhooks need the signature.
    assert_eq!(http_post(&run.addr, "/v1/reconcile", &[], ""), 401);
    let bearer = [("Authorization", "Bearer wrong".to_owned())];
    assert_eq!(http_post(&run.addr, "/v1/reconcile", &bearer, ""), 401);
    let bearer = [("Authorization", format!("Bearer {TOKEN}"))];
    assert_eq!(http_post(&run.addr, "/v1/reconcile", &bearer, ""), 202);
    let body = r#"{"ref":"refs/heads/main","after":"0000000000000000000000000000000000000000"}"#;
    let event = ("X-GitHub-Event", "push".to_owned());
    let good = ("X-Hub-Signature-256", format!("sha256={}", hmac_hex(body)));
    let forged = (
        "X-Hub-Signature-256",
        format!("sha256={}", hmac_hex("another body")),
    );
    assert_eq!(
        http_post(&run.addr, "/hooks/git", &[event.clone(), forged], body),
        401
    );
    assert_eq!(
        http_post(&run.addr, "/hooks/git", std::slice::from_ref(&event), body),
        401
    );
    assert_eq!(
        http_post(&run.addr, "/hooks/git", &[event, good], body),
        202
    );

    // Secrets never reach the log.
    let log = read(&run.log);
    assert!(!log.contains(TOKEN) && !log.contains(HOOK_SECRET), "{log}");

    // SIGTERM: the pass under way finishes and the process exits 0.
    let mut run = run;
    let pid = i32::try_from(run.child.id()).unwrap();
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let code = wait_for("exit after SIGTERM", Duration::from_secs(30), || {
        run.child.try_wait().unwrap()
    });
    assert!(code.success(), "{code:?}: {}", read(&run.log));
}

#[test]
fn kill_9_in_a_transition_then_restart_converges_with_no_instance_started_twice() {
    let Some((svc, repos, data)) = setup() else {
        return;
    };
    const N: u32 = 10;
    repos.write("specs/cluster.yaml", &specs(&svc, &data, N));
    repos.commit("ten apps");
    assert!(repos.push().status.success());

    // Killed as soon as the first container exists: in the middle of the transition.
    let mut run = start_run(&repos);
    wait_for("a first container", Duration::from_secs(30), || {
        (!svc.container_names(true).is_empty()).then_some(())
    });
    run.child.kill().unwrap();
    run.child.wait().unwrap();
    let running_at_kill = svc.container_names(false).len();
    eprintln!("killed with {running_at_kill} of {N} running");
    assert!(
        running_at_kill < N as usize,
        "the kill came after the transition ({running_at_kill} running)"
    );

    // Restarted on the same state directory, it finishes the job.
    let run = start_run(&repos);
    wait_for("all apps running", Duration::from_secs(60), || {
        (svc.container_names(false) == support::app_instances(N)).then_some(())
    });
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        svc.container_names(true),
        support::app_instances(N),
        "no extra containers"
    );
    // Every container was started exactly once: one line per container in `starts`.
    let starts = read(&data.join("starts"));
    let mut lines: Vec<&str> = starts.lines().collect();
    lines.sort_unstable();
    let before = lines.len();
    lines.dedup();
    assert_eq!(before, lines.len(), "a container started twice:\n{starts}");
    assert_eq!(lines.len(), N as usize, "{starts}");
    let s = run.status();
    assert_eq!(s["lastPass"]["outcome"], "converged", "{s}");
    git_ok(&repos.work(), &["status"]);
}

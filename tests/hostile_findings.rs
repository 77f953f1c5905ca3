//! Bounded records of refused commits, and a followed branch that disappears (issue 12),
//! end to end: a real bare repository pushed to with the `git` CLI, `quorate run` as a
//! separate process.
//!
//! - A commit whose every document is a finding is stored with its first findings and
//!   the count of the others, so pushing it again and again does not grow `state.db` or
//!   `/status` by megabytes.
//! - Deleting the followed branch is logged as an error and shown in the status; the last
//!   good commit stays in force, and putting the branch back clears the problem.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use support::wait_for;

use quorate::state::{KEEP_FINDINGS, KEEP_REJECTED};
use quorate::status::REJECTED_PAGE;
use serde_json::Value;
use support::git_repos::{Repos, git_ok};
use support::quorate_run::QuorateRun;

/// A valid spec set: one node whose runtime does not exist (it is never reached), no
/// bundles. Adopting it needs no container runtime.
const GOOD: &str = "apiVersion: quorate.io/v1alpha1
kind: Cluster
metadata: {name: hostile}
spec:
  nodes: [{name: n1, runtime: 'podman+unix:///nonexistent/podman.sock'}]
  quorum: {reconcilerVotes: 0}
  fencing: {enabled: false}
";

/// Documents in the hostile file: each one is a finding (no apiVersion, kind, ...).
const DOCUMENTS: usize = 10_000;

/// `GET path` of the server: the status code and the body.
fn http_get(addr: &str, path: &str) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP answer");
    let head = String::from_utf8_lossy(&buf[..split]).into_owned();
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap();
    (code, buf[split + 4..].to_vec())
}

/// Bytes of `state.db` and its write-ahead log.
fn db_bytes(state: &Path) -> u64 {
    ["state.db", "state.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(state.join(f)).ok())
        .map(|m| m.len())
        .sum()
}

fn log_of(run: &QuorateRun) -> String {
    std::fs::read_to_string(&run.log).unwrap_or_default()
}

#[test]
fn a_commit_of_thousands_of_findings_is_stored_and_shown_bounded() {
    let repos = Repos::new();
    repos.write("specs/cluster.yaml", GOOD);
    let good = repos.commit("good");
    assert!(repos.push().status.success());
    let log = repos.dir.path().join("run.log");
    let run = QuorateRun::start(&repos.bare(), &repos.state(), &log, &[]);
    wait_for("the good commit in force", Duration::from_secs(60), || {
        (run.status()["commit"] == good.as_str()).then_some(())
    });

    // Three pushes of a file whose every document is a finding (the issue pushed the
    // same file three times).
    let hostile = vec!["{a: 1}\n"; DOCUMENTS].join("---\n");
    let mut refused = Vec::new();
    for i in 0..3 {
        repos.write("specs/many.yaml", &format!("# push {i}\n{hostile}"));
        let id = repos.commit(&format!("hostile {i}"));
        assert!(repos.push().status.success());
        wait_for("the commit refused", Duration::from_secs(180), || {
            (run.status()["rejected"][0]["commit"] == id.as_str()).then_some(())
        });
        refused.push(id);
    }

    let (code, body) = http_get(&run.addr, "/status");
    assert_eq!(code, 200);
    assert!(
        body.len() < 64 * 1024,
        "/status is {} bytes for three refused commits",
        body.len()
    );
    let status: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status["commit"], good.as_str(), "the good commit stays");
    assert_eq!(status["rejectedTotal"], 3);
    let shown: Vec<_> = status["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["commit"].as_str().unwrap().to_owned())
        .collect();
    let newest_first: Vec<_> = refused.iter().rev().cloned().collect();
    assert_eq!(shown, newest_first);
    for r in status["rejected"].as_array().unwrap() {
        let kept = r["problems"].as_array().unwrap().len();
        let omitted = r["omitted"].as_u64().unwrap();
        assert_eq!(kept, KEEP_FINDINGS);
        assert!(
            kept as u64 + omitted >= DOCUMENTS as u64,
            "{kept} kept + {omitted} omitted findings for {DOCUMENTS} bad documents"
        );
    }
    // All three are on the first page; the second is empty, page 0 does not exist.
    let (_, page2) = http_get(&run.addr, "/status?page=2");
    let page2: Value = serde_json::from_slice(&page2).unwrap();
    assert_eq!(page2["rejected"].as_array().map(Vec::len), Some(0));
    assert_eq!(page2["rejectedPage"], 2);
    assert_eq!(http_get(&run.addr, "/status?page=0").0, 400);

    let bytes = db_bytes(&repos.state());
    assert!(
        bytes < 2 * 1024 * 1024,
        "state.db holds {bytes} bytes after three refused commits"
    );
}

#[test]
fn deleting_the_followed_branch_is_an_error_in_the_log_and_the_status() {
    let repos = Repos::new();
    repos.write("specs/cluster.yaml", GOOD);
    let good = repos.commit("good");
    assert!(repos.push().status.success());
    let log = repos.dir.path().join("run.log");
    let run = QuorateRun::start(
        &repos.bare(),
        &repos.state(),
        &log,
        &["--poll-interval".as_ref(), "1s".as_ref()],
    );
    wait_for("the good commit in force", Duration::from_secs(60), || {
        (run.status()["commit"] == good.as_str()).then_some(())
    });
    assert!(run.status().get("sourceProblem").is_none());

    // A forge lets a pusher delete a branch; a bare repository needs to be told.
    git_ok(
        &repos.bare(),
        &["config", "receive.denyDeleteCurrent", "ignore"],
    );
    git_ok(&repos.work(), &["push", "-q", "origin", "--delete", "main"]);
    let problem = wait_for("the problem in the status", Duration::from_secs(30), || {
        run.status()["sourceProblem"].as_str().map(str::to_owned)
    });
    assert!(problem.contains("no branch main"), "{problem}");
    let text = log_of(&run);
    let line = text
        .lines()
        .find(|l| l.contains("the followed branch is gone"))
        .unwrap_or_else(|| panic!("no log line for the deleted branch:\n{text}"));
    assert!(line.contains("ERROR"), "{line}");
    assert_eq!(
        run.status()["commit"],
        good.as_str(),
        "the good commit stays"
    );

    // `quorate status` for people says it too.
    let out = Command::new(env!("CARGO_BIN_EXE_quorate"))
        .args(["status", "--server", &run.url()])
        .output()
        .unwrap();
    let human = String::from_utf8_lossy(&out.stdout);
    assert!(human.contains("Source: ERROR"), "{human}");
    assert!(human.contains("no branch main"), "{human}");

    // The branch comes back at the same commit: the problem is gone, nothing else moves.
    assert!(repos.push().status.success());
    wait_for("the problem cleared", Duration::from_secs(30), || {
        run.status().get("sourceProblem").is_none().then_some(())
    });
    assert_eq!(run.status()["commit"], good.as_str());
}

#[test]
fn history_pages_hold_every_refused_commit_the_store_keeps() {
    let repos = Repos::new();
    repos.write("specs/cluster.yaml", GOOD);
    repos.commit("good");
    assert!(repos.push().status.success());
    let log = repos.dir.path().join("run.log");
    let run = QuorateRun::start(&repos.bare(), &repos.state(), &log, &[]);
    wait_for("a first pass", Duration::from_secs(60), || {
        (!run.status()["commit"].as_str()?.is_empty()).then_some(())
    });
    let total = REJECTED_PAGE + 2;
    let mut refused = Vec::new();
    for i in 0..total {
        repos.write("specs/bad.yaml", &format!("kind: Nonsense{i}\n"));
        refused.push(repos.commit(&format!("bad {i}")));
        assert!(repos.push().status.success());
        let id = refused[i].clone();
        wait_for("the commit refused", Duration::from_secs(60), || {
            (run.status()["rejected"][0]["commit"] == id.as_str()).then_some(())
        });
    }
    let page = |n: u64| {
        let out = Command::new(env!("CARGO_BIN_EXE_quorate"))
            .args(["status", "--server", &run.url(), "--format", "json"])
            .args(["--page", &n.to_string()])
            .output()
            .unwrap();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["rejectedTotal"], total as u64);
        v["rejected"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["commit"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let mut all = page(1);
    assert_eq!(all.len(), REJECTED_PAGE);
    all.extend(page(2));
    refused.reverse();
    assert_eq!(all, refused, "newest first, over two pages");
    assert!(page(3).is_empty());
    assert!(total < usize::try_from(KEEP_REJECTED).unwrap());

    // The same pages from the state directory once the server has stopped.
    drop(run);
    let page = |n: u64| {
        let out = Command::new(env!("CARGO_BIN_EXE_quorate"))
            .args(["status", "--format", "json", "--state-dir"])
            .arg(repos.state())
            .args(["--page", &n.to_string()])
            .output()
            .unwrap();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["rejectedTotal"], total as u64);
        assert_eq!(v["rejectedPage"], n);
        v["rejected"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["commit"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let mut again = page(1);
    again.extend(page(2));
    assert_eq!(again, refused);
}

//! Redis in a test lab: the example spec set's promotable bundle committed to the lab's
//! repository, each node's Redis asked from inside the node's own network namespace (so
//! a cut cable does not hide it), and a watcher that records the moment two instances
//! report `role:master` at once (invariant 8). Shared by the lab test and the failover
//! benchmark.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::Duration;

use quorate::lab::LabNode;

use super::git_repos::git_ok;
use super::lab::TestLab;
use super::lab_run::{Watcher, wait_for};

/// The port every Redis instance publishes on its node's address.
pub const PORT: u16 = 6379;

/// Commits `examples/redis/redis.yaml`, with the lab's image, to the lab's repository.
pub fn push_redis(t: &TestLab) {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/redis/redis.yaml");
    let text = std::fs::read_to_string(example).unwrap();
    let text = text.replace(
        "image: docker.io/library/redis:7.0",
        &format!("image: {}", quorate::lab::IMAGE),
    );
    assert!(
        text.contains(quorate::lab::IMAGE),
        "the example's image line moved"
    );
    let work = t.lab.config().repo_work();
    std::fs::write(work.join("specs/redis.yaml"), text).unwrap();
    git_ok(&work, &["add", "specs/redis.yaml"]);
    git_ok(&work, &["commit", "-q", "-m", "redis"]);
    git_ok(&work, &["push", "-q", "origin", "HEAD:main"]);
}

/// Sends `command` (inline, one line) to the Redis published on `node`'s address, from
/// inside the node's network namespace; the reply, or `None` when nothing answers.
pub fn redis(node: &LabNode, command: &str) -> Option<String> {
    let netns = Path::new("/run/netns").join(&node.netns);
    let addr = SocketAddr::from((node.address, PORT));
    let req = format!("{command}\r\nQUIT\r\n");
    std::thread::spawn(move || {
        let ns = std::fs::File::open(netns).ok()?;
        // SAFETY: setns(2) on a namespace file we hold open; it moves only this thread.
        if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return None;
        }
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(300)).ok()?;
        s.set_read_timeout(Some(Duration::from_millis(800))).ok()?;
        s.write_all(req.as_bytes()).ok()?;
        let mut buf = String::new();
        let _ = s.read_to_string(&mut buf);
        (!buf.is_empty()).then_some(buf)
    })
    .join()
    .ok()
    .flatten()
}

/// One instance's replication, from `INFO replication`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replication {
    /// `master` or `slave`.
    pub role: String,
    /// For a replica, the host it follows.
    pub master_host: Option<String>,
    /// Whether a replica's link to its master is up.
    pub link_up: bool,
    /// `master_repl_offset`.
    pub offset: i64,
}

/// The replication state of `node`'s Redis.
pub fn replication(node: &LabNode) -> Option<Replication> {
    let info = redis(node, "INFO replication")?;
    let field = |k: &str| {
        info.lines()
            .find_map(|l| l.trim_end().strip_prefix(k)?.strip_prefix(':'))
            .map(str::to_owned)
    };
    Some(Replication {
        role: field("role")?,
        master_host: field("master_host"),
        link_up: field("master_link_status").as_deref() == Some("up"),
        offset: field("master_repl_offset")?.parse().ok()?,
    })
}

/// The nodes whose Redis reports `role:master`.
pub fn masters(nodes: &[LabNode]) -> Vec<String> {
    nodes
        .iter()
        .filter(|n| replication(n).is_some_and(|r| r.role == "master"))
        .map(|n| n.name.clone())
        .collect()
}

/// `SET key value` on `node`'s Redis; whether it said OK.
pub fn set(node: &LabNode, key: &str, value: &str) -> bool {
    redis(node, &format!("SET {key} {value}")).is_some_and(|r| r.starts_with("+OK"))
}

/// `GET key` on `node`'s Redis.
pub fn get(node: &LabNode, key: &str) -> Option<String> {
    let reply = redis(node, &format!("GET {key}"))?;
    let mut lines = reply.lines();
    lines.next().filter(|l| l.starts_with('$') && *l != "$-1")?;
    lines.next().map(str::to_owned)
}

/// Watches every node's Redis every 100 ms for two reporting `role:master` at once
/// (invariant 8).
pub fn master_watcher(nodes: Vec<LabNode>) -> Watcher {
    Watcher::new(move || {
        let m = masters(&nodes);
        (m.len() > 1).then(|| format!("Redis masters on {m:?}"))
    })
}

/// The node of the one master among `nodes`, when every other node's Redis follows it
/// with its link up.
pub fn followed_master(nodes: &[LabNode]) -> Option<String> {
    let m = masters(nodes);
    let [master] = m.as_slice() else {
        return None;
    };
    let addr = nodes
        .iter()
        .find(|n| n.name == *master)?
        .address
        .to_string();
    let following = nodes.iter().filter(|n| n.name != *master).all(|n| {
        replication(n).is_some_and(|r| r.link_up && r.master_host.as_deref() == Some(addr.as_str()))
    });
    following.then(|| master.clone())
}

/// Waits for one master and every other node's Redis following it with its link up;
/// returns the master's node.
pub fn settled(nodes: &[LabNode], w: &Watcher, within: Duration) -> String {
    wait_for("one master, the others following it", within, w, || {
        followed_master(nodes)
    })
}

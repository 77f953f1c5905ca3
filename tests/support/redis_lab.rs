//! Redis in a test lab: the example spec set's promotable bundle committed to the lab's
//! repository, each node's Redis asked from inside the node's own network namespace (so
//! a cut cable does not hide it), and a watcher that records the moment two instances
//! report `role:master` at once (invariant 8). Shared by the lab test and the failover
//! benchmark.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use quorate::lab::LabNode;

use super::git_repos::git_ok;
use super::lab::TestLab;

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

/// Polls every node's Redis every 100 ms until dropped; records each moment two report
/// `role:master`.
pub struct MasterWatcher {
    stop: Arc<AtomicBool>,
    violations: Arc<Mutex<Vec<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MasterWatcher {
    pub fn start(nodes: Vec<LabNode>) -> MasterWatcher {
        let stop = Arc::new(AtomicBool::new(false));
        let violations = Arc::new(Mutex::new(Vec::new()));
        let (s, v) = (stop.clone(), violations.clone());
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            while !s.load(Ordering::Relaxed) {
                let m = masters(&nodes);
                if m.len() > 1 {
                    let at = started.elapsed();
                    v.lock().unwrap().push(format!("{at:?}: masters on {m:?}"));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        MasterWatcher {
            stop,
            violations,
            thread: Some(thread),
        }
    }

    /// Fails the test if two masters were ever seen at once.
    pub fn check(&self) {
        let v = self.violations.lock().unwrap();
        assert!(v.is_empty(), "two Redis masters at once: {v:?}");
    }
}

impl Drop for MasterWatcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Polls `f` every 100 ms until it gives a value, checking the watcher each time.
pub fn wait<T>(
    what: &str,
    within: Duration,
    w: &MasterWatcher,
    mut f: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        w.check();
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits for one master and every other node's Redis following it with its link up;
/// returns the master's node.
pub fn settled(nodes: &[LabNode], w: &MasterWatcher, within: Duration) -> String {
    wait("one master, the others following it", within, w, || {
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
            replication(n)
                .is_some_and(|r| r.link_up && r.master_host.as_deref() == Some(addr.as_str()))
        });
        following.then(|| master.clone())
    })
}

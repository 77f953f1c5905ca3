//! `quorate run` against a test lab, the lab database as the reconciler, the network and
//! each node's own Podman see it, and a watcher that fails a test the moment two
//! databases run; shared by the lab failover tests and the failover benchmark.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use quorate::lab::LabNode;
use quorate::runtime::instance::label;
use serde_json::Value;

use super::lab::{TestLab, quorate, text};
use super::quorate_run::QuorateRun;

/// `quorate run` against the lab's repository and state directory (its log beside the
/// lab directory).
pub fn reconciler(t: &TestLab) -> QuorateRun {
    let cfg = t.lab.config();
    QuorateRun::start(
        &cfg.repo_bare(),
        &cfg.reconciler_state_dir(),
        &t.dir.with_extension("run.log"),
        &[
            std::ffi::OsStr::new("--secrets-dir"),
            cfg.secrets_dir().as_os_str(),
        ],
    )
}

/// Where `db-0` runs, by the reconciler's status.
pub fn db_node(status: &Value) -> Option<String> {
    status["nodes"].as_array()?.iter().find_map(|n| {
        let runs = n["instances"]
            .as_array()?
            .iter()
            .any(|i| i[0] == "db-0" && i[1] == "running");
        runs.then(|| n["name"].as_str().unwrap_or("").to_owned())
    })
}

/// The database's answer on `node`'s address.
pub fn db_answers(t: &TestLab, node: &str) -> bool {
    let Ok(n) = t.lab.node(node) else {
        return false;
    };
    let addr = SocketAddr::from((n.address, 5432));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(300)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let _ = s.write_all(b"GET / HTTP/1.0\r\n\r\n");
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    buf.contains("lab db")
}

/// `GET path` on `node`'s Podman, from inside the node's network namespace (in a thread
/// of its own, which `setns` moves there), so a cut cable does not hide the node. `None`:
/// the node is off or its Podman does not answer.
pub fn podman_get(node: &LabNode, path: &str) -> Option<Value> {
    let netns = Path::new("/run/netns").join(&node.netns);
    let addr = SocketAddr::from((node.address, 8080));
    let req = format!("GET /v4.0.0/libpod{path} HTTP/1.0\r\nHost: node\r\n\r\n");
    std::thread::spawn(move || {
        let ns = std::fs::File::open(netns).ok()?;
        // SAFETY: setns(2) on a namespace file we hold open; it moves only this thread.
        if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return None;
        }
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        s.write_all(req.as_bytes()).ok()?;
        let mut buf = String::new();
        s.read_to_string(&mut buf).ok()?;
        let (_, body) = buf.split_once("\r\n\r\n")?;
        serde_json::from_str(body).ok()
    })
    .join()
    .ok()
    .flatten()
}

/// The containers of `cluster` on `node`: (name, running).
pub fn list_in_namespace(node: &LabNode, cluster: &str) -> Option<Vec<(String, bool)>> {
    let list = podman_get(node, "/containers/json?all=true")?;
    Some(
        list.as_array()?
            .iter()
            .filter(|c| c["Labels"][label::CLUSTER] == cluster)
            .map(|c| {
                let name = c["Names"][0].as_str().unwrap_or("").to_owned();
                (name, c["State"] == "running")
            })
            .collect(),
    )
}

/// When the container `name` on `node` last started.
pub fn started_at(node: &LabNode, name: &str) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    let c = podman_get(node, &format!("/containers/{name}/json"))?;
    chrono::DateTime::parse_from_rfc3339(c["State"]["StartedAt"].as_str()?).ok()
}

/// Whether `db-0` runs on `node`.
pub fn db_runs_on(node: &LabNode, cluster: &str) -> bool {
    list_in_namespace(node, cluster).is_some_and(|l| l.iter().any(|(n, r)| n == "db-0" && *r))
}

/// Polls a check every 100 ms until dropped, and records each moment it finds something
/// wrong: by default, two `db-0` running at once.
pub struct Watcher {
    stop: Arc<AtomicBool>,
    violations: Arc<Mutex<Vec<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watcher {
    /// Watches for two `db-0` of `cluster` running at once on `nodes` (invariant 1).
    pub fn start(nodes: Vec<LabNode>, cluster: String) -> Watcher {
        Watcher::new(move || {
            let running: Vec<&str> = nodes
                .iter()
                .filter(|n| db_runs_on(n, &cluster))
                .map(|n| n.name.as_str())
                .collect();
            (running.len() > 1).then(|| format!("db-0 runs on {running:?}"))
        })
    }

    /// Watches with `wrong`, which says what is wrong now, if anything.
    pub fn new(wrong: impl Fn() -> Option<String> + Send + 'static) -> Watcher {
        let stop = Arc::new(AtomicBool::new(false));
        let violations = Arc::new(Mutex::new(Vec::new()));
        let (s, v) = (stop.clone(), violations.clone());
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            while !s.load(Ordering::Relaxed) {
                if let Some(what) = wrong() {
                    v.lock()
                        .unwrap()
                        .push(format!("{:?}: {what}", started.elapsed()));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Watcher {
            stop,
            violations,
            thread: Some(thread),
        }
    }

    /// Fails the test if anything wrong was ever seen.
    pub fn check(&self) {
        let v = self.violations.lock().unwrap();
        assert!(v.is_empty(), "seen while watching: {v:?}");
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub fn wait_for<T>(
    what: &str,
    within: Duration,
    w: &Watcher,
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

pub fn lab(t: &TestLab, args: &[&str]) {
    let out = t.cmd(args);
    assert!(out.status.success(), "lab {args:?}: {}", text(&out));
}

/// The reconciler's fence history for `node`.
pub fn history(t: &TestLab, node: &str) -> Vec<Value> {
    let state = t.lab.config().reconciler_state_dir();
    let state = state.to_string_lossy();
    let out = quorate(&[
        "fence",
        "history",
        "--state-dir",
        &state,
        "--node",
        node,
        "--format",
        "json",
    ]);
    serde_json::from_slice(&out.stdout).unwrap_or_default()
}

/// Fence outcomes recorded for `node`: (succeeded, failed).
pub fn fences(t: &TestLab, node: &str) -> (usize, usize) {
    let all = history(t, node);
    let outcomes = all
        .iter()
        .filter(|e| e["type"] == "outcome" && e["action"] == "off");
    let ok = outcomes.clone().filter(|e| e["succeeded"] == true).count();
    (ok, outcomes.count() - ok)
}

/// Fence attempts on `node` that got no answer or an error.
pub fn failed_attempts(t: &TestLab, node: &str) -> usize {
    history(t, node)
        .iter()
        .filter(|e| e["type"] == "attempt" && !e["error"].is_null())
        .count()
}

/// Waits until the database answers on a node other than `old`; returns it.
pub fn db_moves_from(t: &TestLab, r: &QuorateRun, w: &Watcher, old: &str) -> String {
    wait_for(
        "the database on another node",
        Duration::from_secs(30),
        w,
        || db_node(&r.status()).filter(|n| n != old && db_answers(t, n)),
    )
}

/// Puts `node` back: cable in, powered on, online in the reconciler's status.
pub fn restore(t: &TestLab, r: &QuorateRun, w: &Watcher, node: &str) {
    lab(t, &["heal", node]);
    lab(t, &["power", node, "on"]);
    wait_for("the node back online", Duration::from_secs(30), w, || {
        let s = r.status();
        let online = s["nodes"].as_array().is_some_and(|ns| {
            ns.iter()
                .any(|n| n["name"] == node && n["state"] == "online")
        });
        (online && s["lastPass"]["outcome"] == "converged").then_some(())
    });
}

/// `quorate run --etcd` replica `name` against the lab's repository (HA mode): its own
/// state directory and log beside the lab directory, `flags` besides.
pub fn ha_reconciler(t: &TestLab, etcd: &str, name: &str, flags: &[&str]) -> QuorateRun {
    let cfg = t.lab.config();
    let secrets = cfg.secrets_dir();
    let mut extra: Vec<&std::ffi::OsStr> = vec![
        "--secrets-dir".as_ref(),
        secrets.as_os_str(),
        "--etcd".as_ref(),
        etcd.as_ref(),
        "--name".as_ref(),
        name.as_ref(),
    ];
    extra.extend(flags.iter().map(std::ffi::OsStr::new));
    QuorateRun::start(
        &cfg.repo_bare(),
        &t.dir.with_extension(format!("state-{name}")),
        &t.dir.with_extension(format!("{name}.log")),
        &extra,
    )
}

/// The index of the replica of `rs` that says it leads (`None`: none or several).
pub fn ha_leader(rs: &[&QuorateRun]) -> Option<usize> {
    let leaders: Vec<usize> = (0..rs.len())
        .filter(|&i| rs[i].status()["ha"]["role"] == "leader")
        .collect();
    match leaders[..] {
        [l] => Some(l),
        _ => None,
    }
}

/// The fence history of `node` in etcd (default prefix), as stored.
pub fn etcd_fence_history(etcd: &super::etcd_svc::EtcdCluster, node: &str) -> Vec<Value> {
    let prefix = format!("/quorate/default/fence/{node}/");
    let out = etcd.ctl(&["get", "--prefix", &prefix, "--print-value-only"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Successful power-off outcomes of fence runs on `node`, in etcd.
pub fn etcd_fenced(etcd: &super::etcd_svc::EtcdCluster, node: &str) -> usize {
    etcd_fence_history(etcd, node)
        .iter()
        .filter(|r| r["kind"] == "outcome" && r["action"] == "off" && r["error"].is_null())
        .count()
}

/// The `set` commands that reached `node`'s BMC, as its `chassis.log` lists them
/// (`set power 0 (was on)`, ...).
pub fn bmc_commands(t: &TestLab, node: &str) -> Vec<String> {
    let Ok(n) = t.lab.node(node) else {
        return Vec::new();
    };
    let log = t.lab.config().bmc_dir(&n).join("chassis.log");
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(' ').map(|(_, cmd)| cmd.to_owned()))
        .collect()
}

/// The database's start log (`date >> /data/starts` in its bind mount): one line per start.
pub fn db_starts(t: &TestLab) -> usize {
    // The db bundle's `sourceDirRoot` (src/lab/specs.rs) and its first instance.
    let path = t.lab.config().data_dir().join("db/db-0/starts");
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .count()
}

/// Waits until `f` gives a value (checking every 20 ms), or `None` after `within`.
pub fn until<T>(within: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(v) = f() {
            return Some(v);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// A node other than `from` the database answers on.
pub fn db_answers_elsewhere(t: &TestLab, from: &str) -> Option<String> {
    t.lab
        .nodes()
        .iter()
        .map(|n| n.name.clone())
        .find(|n| n != from && db_answers(t, n))
}

/// Failover rounds for the benchmarks: each waits until `settled` names the node the
/// service runs on (the cluster at rest), cuts that node's cable, times until
/// `moved_from` names another node it serves on, then heals the node and powers it on
/// again. The times of the rounds, each printed as it ends.
pub fn failover_rounds(
    t: &TestLab,
    rounds: usize,
    mut settled: impl FnMut() -> Option<String>,
    mut moved_from: impl FnMut(&str) -> Option<String>,
) -> Vec<Duration> {
    let mut times = Vec::new();
    for round in 0..rounds {
        let Some(from) = until(Duration::from_secs(120), &mut settled) else {
            println!("  round {round}: the cluster did not settle");
            break;
        };
        let cut = Instant::now();
        lab(t, &["cut", &from]);
        let moved = until(Duration::from_secs(120), || moved_from(&from));
        let took = cut.elapsed();
        match moved {
            Some(to) => println!("  round {round}: cut {from}, serving on {to} after {took:.2?}"),
            None => println!("  round {round}: cut {from}, not serving after {took:.2?}"),
        }
        times.push(took);
        lab(t, &["heal", &from]);
        lab(t, &["power", &from, "on"]);
    }
    times
}

/// `median M, min A, max B` of `times` (sorted in place), or `no rounds`.
pub fn summary(times: &mut [Duration]) -> String {
    times.sort();
    match (times.first(), times.last()) {
        (Some(min), Some(max)) => format!(
            "median {:.2?}, min {min:.2?}, max {max:.2?} ({} rounds)",
            times[times.len() / 2],
            times.len()
        ),
        _ => "no rounds".to_owned(),
    }
}

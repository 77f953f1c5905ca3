//! HA mode (`quorate run --etcd`, issue 13), measured. Three parts, each printed beside
//! what it is compared with; `QUORATE_BENCH_HA=takeover,lab,etcd` picks parts (all by
//! default). Every part starts three etcd members of its own (Debian's `etcd-server`).
//!
//! 1. `takeover`: real Podman, two replicas with the default lease and timeout; the
//!    leader killed (SIGKILL) and an instance stopped at the same moment: -> the other
//!    replica elected, -> its first pass, -> the instance running again. Beside the
//!    defaults of Kubernetes' leader election and Patroni.
//! 2. `lab` (needs root; run it under `flock /tmp/quorate-lab.lock`): the lab failover
//!    time, cable cut -> database answering on another node, `QUORATE_BENCH_ROUNDS` (5)
//!    rounds with one `quorate run` (SQLite), then as many on a fresh lab with two
//!    replicas on etcd, all in the same run.
//! 3. `etcd`: etcd's traffic (requests and bytes, from its own `/metrics`, summed over the
//!    members) and memory while two replicas follow an idle cluster for
//!    `QUORATE_BENCH_SECONDS` (30) without a pass, then as long with a pass asked for
//!    every 2 s (`POST /v1/reconcile`): per pass of the leader, at the lab's size (3 nodes,
//!    3 instances) and at 100 nodes (1,000 instances); every node's runtime served by one
//!    stand-in process ([`fake_podman`]); `QUORATE_BENCH_HA_SIZES=NODES:INSTANCES,...`
//!    picks other sizes.
//!
//! Run: `cargo bench --bench ha` (the lab part:
//! `QUORATE_BENCH_HA=lab flock /tmp/quorate-lab.lock cargo bench --bench ha`).

#[path = "../tests/support/mod.rs"]
mod support;

#[path = "support/fake_podman.rs"]
mod fake_podman;

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::io::{Read, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fake_podman::FakePodman;
use serde_json::Value;
use support::env_usize;
use support::etcd_svc::EtcdCluster;
use support::git_repos::Repos;
use support::ha_cluster::{converged, leader_of, replica_with, setup};
use support::lab::TestLab;
use support::lab_run::{
    db_answers, db_answers_elsewhere, db_node, failover_rounds, ha_leader, ha_reconciler,
    reconciler, summary, until,
};
use support::quorate_run::QuorateRun;

fn main() {
    let parts = std::env::var("QUORATE_BENCH_HA").unwrap_or_else(|_| "takeover,lab,etcd".into());
    let wants = |p: &str| parts.split(',').any(|w| w.trim() == p);
    if wants("takeover") {
        takeover();
    }
    if wants("lab") {
        lab_failover(env_usize("QUORATE_BENCH_ROUNDS", 5));
    }
    if wants("etcd") {
        let seconds = env_usize("QUORATE_BENCH_SECONDS", 30) as u64;
        let sizes =
            std::env::var("QUORATE_BENCH_HA_SIZES").unwrap_or_else(|_| "3:3,100:1000".into());
        for size in sizes.split(',') {
            let (n, i) = size.split_once(':').unwrap_or((size, size));
            match (n.trim().parse(), i.trim().parse()) {
                (Ok(n), Ok(i)) => etcd_traffic(n, i, seconds),
                _ => println!("QUORATE_BENCH_HA_SIZES: {size:?} is not NODES:INSTANCES"),
            }
        }
    }
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Part 1: the leader killed and an instance stopped at once.
fn takeover() {
    let Some(s) = setup(2) else {
        println!("takeover: skipped (no etcd or Podman)");
        return;
    };
    let (a, b) = (replica_with(&s, "a", &[]), replica_with(&s, "b", &[]));
    let Some(l) = until(Duration::from_secs(90), || leader_of(&[&a, &b])) else {
        println!("takeover: no leader within 90 s");
        return;
    };
    if until(Duration::from_secs(90), || converged(&s, 2)).is_none() {
        println!("takeover: the apps did not start within 90 s");
        return;
    }
    let (mut old, new) = if l == 0 { (a, b) } else { (b, a) };
    let old_name = if l == 0 { "a" } else { "b" };
    std::thread::sleep(Duration::from_secs(3));
    let (t0, t0_ms) = (Instant::now(), unix_ms());
    let _ = old.child.kill();
    let stopped = s.svc.cli(["stop", "-t", "0", "app-0"]).output();
    assert!(
        stopped.is_ok_and(|o| o.status.success()),
        "podman stop app-0"
    );
    let _ = old.child.wait();
    let within = Duration::from_secs(120);
    let elected = until(within, || {
        let leader = new.status()["ha"]["leader"].clone();
        (leader.is_string() && leader != old_name).then(|| t0.elapsed())
    });
    let first_pass = until(within, || {
        let st = new.status();
        (st["lastPass"]["finishedUnixMs"].as_i64().unwrap_or(0) > t0_ms).then(|| t0.elapsed())
    });
    let running = until(within, || converged(&s, 2).map(|()| t0.elapsed()));
    let show = |d: Option<Duration>| d.map_or("not within 120 s".into(), |d| format!("{d:.1?}"));
    println!(
        "takeover (lease 10 s, timeout 10 s, drift 5 %; two replicas, three etcd members on loopback, Podman): \
         leader killed -> other replica elected {}, -> its first pass {}, -> the crashed instance running again {}",
        show(elected),
        show(first_pass),
        show(running)
    );
    println!(
        "  defaults elsewhere: Kubernetes leader election lease 15 s, renew deadline 10 s, retry 2 s \
         (a dead leader's lease is taken over after 15 s to 17 s); Patroni ttl 30 s, loop_wait 10 s \
         (the leader key expires after 30 s, a replica notices within its next loop: up to 40 s)"
    );
}

/// `settled` for one reconciler's status: where the database runs once all is at rest.
fn at_rest(t: &TestLab, r: &QuorateRun) -> Option<String> {
    let s = r.status();
    db_node(&s).filter(|n| s["lastPass"]["outcome"] == "converged" && db_answers(t, n))
}

/// Part 2: the lab failover time, single process and then HA, in one run.
fn lab_failover(rounds: usize) {
    let mut single = {
        let Some(t) = TestLab::up(3) else {
            println!("lab failover: skipped (no lab: needs root and the lab's packages)");
            return;
        };
        let r = reconciler(&t);
        println!("lab failover, one `quorate run` (SQLite):");
        failover_rounds(
            &t,
            rounds,
            || at_rest(&t, &r),
            |from| db_answers_elsewhere(&t, from),
        )
    };
    let mut ha = {
        let Some(t) = TestLab::up(3) else {
            println!("lab failover: no second lab");
            return;
        };
        let Some(etcd) = EtcdCluster::start(3) else {
            println!("lab failover: skipped HA (no etcd)");
            return;
        };
        let e = etcd.endpoints();
        let (a, b) = (
            ha_reconciler(&t, &e, "a", &[]),
            ha_reconciler(&t, &e, "b", &[]),
        );
        println!("lab failover, two replicas on three etcd members (lease 10 s, timeout 10 s):");
        failover_rounds(
            &t,
            rounds,
            || {
                let rs = [&a, &b];
                at_rest(&t, rs[ha_leader(&rs)?])
            },
            |from| db_answers_elsewhere(&t, from),
        )
    };
    println!(
        "lab failover, cut -> database answering elsewhere: one process {}; HA {}",
        summary(&mut single),
        summary(&mut ha)
    );
}

/// One member's `/metrics` text.
fn metrics_text(url: &str) -> String {
    let Some(addr) = url.strip_prefix("http://") else {
        return String::new();
    };
    let Ok(mut s) = TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let req = format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return String::new();
    }
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text
}

/// The sum of every sample of `name` in a Prometheus text.
fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            let base = key.split('{').next()?;
            if base == name {
                value.parse::<f64>().ok()
            } else {
                None
            }
        })
        .sum()
}

/// etcd's counters, summed over the members.
#[derive(Debug, Default, Clone, Copy)]
struct Traffic {
    /// Unary requests handled, and stream messages received (lease keep-alives).
    requests: f64,
    messages: f64,
    received: f64,
    sent: f64,
}

fn traffic(etcd: &EtcdCluster) -> Traffic {
    let mut t = Traffic::default();
    for url in etcd.client_urls() {
        let m = metrics_text(&url);
        t.requests += metric_sum(&m, "grpc_server_handled_total");
        t.messages += metric_sum(&m, "grpc_server_msg_received_total");
        t.received += metric_sum(&m, "etcd_network_client_grpc_received_bytes_total");
        t.sent += metric_sum(&m, "etcd_network_client_grpc_sent_bytes_total");
    }
    t
}

/// (resident MB summed over the members, the largest database size in MB).
fn etcd_memory(etcd: &EtcdCluster) -> (f64, f64) {
    let rss: f64 = etcd
        .pids()
        .iter()
        .map(|pid| {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
                .unwrap_or(0.0)
                / 1024.0
        })
        .sum();
    let db = etcd
        .client_urls()
        .iter()
        .map(|u| metric_sum(&metrics_text(u), "etcd_mvcc_db_total_size_in_bytes"))
        .fold(0.0, f64::max);
    (rss, db / 1e6)
}

/// A cluster of `nodes` nodes on `fake`, and `instances` instances in bundles of 10.
fn scaled_specs(fake: &FakePodman, nodes: usize, instances: usize) -> String {
    let mut s = String::from(
        "apiVersion: quorate.io/v1alpha1\nkind: Cluster\nmetadata: {name: hascale}\nspec:\n  nodes:\n",
    );
    for n in 0..nodes {
        let _ = writeln!(
            s,
            "    - {{name: n{n:04}, runtime: '{}'}}",
            fake.endpoint(n)
        );
    }
    let mut left = instances;
    let mut b = 0;
    while left > 0 {
        let replicas = left.min(10);
        let _ = write!(
            s,
            "---\napiVersion: quorate.io/v1alpha1\nkind: Bundle\nmetadata: {{name: b{b:04}}}\nspec:\n  image: registry.example.com/app{b}:1\n  replicas: {replicas}\n  recovery: restart\n"
        );
        left -= replicas;
        b += 1;
    }
    s
}

fn scaled_replica(repos: &Repos, etcd: &str, name: &str) -> QuorateRun {
    let dir: &Path = repos.dir.path();
    QuorateRun::start(
        &repos.bare(),
        &dir.join(format!("state-{name}")),
        &dir.join(format!("{name}.log")),
        &[
            OsStr::new("--etcd"),
            OsStr::new(etcd),
            OsStr::new("--name"),
            OsStr::new(name),
            OsStr::new("--token-file"),
            token_file(repos).as_os_str(),
        ],
    )
}

/// The bearer token of `POST /v1/reconcile` in the bench (a file in the repos' dir).
fn token_file(repos: &Repos) -> std::path::PathBuf {
    let path = repos.dir.path().join("token");
    if !path.exists() {
        std::fs::write(&path, "bench-token\n").expect("write the token file");
    }
    path
}

/// Asks `r` for a pass (`POST /v1/reconcile`).
fn ask_for_pass(r: &QuorateRun) {
    let Ok(mut s) = TcpStream::connect(&r.addr) else {
        return;
    };
    let req = format!(
        "POST /v1/reconcile HTTP/1.0\r\nHost: {}\r\nAuthorization: Bearer bench-token\r\nContent-Length: 0\r\n\r\n",
        r.addr
    );
    let _ = s.write_all(req.as_bytes());
    let _ = s.read_to_string(&mut String::new());
}

/// etcd's traffic over `seconds`, and the leader's passes meanwhile (asked for one
/// every 2 s if `ask`).
fn window(etcd: &EtcdCluster, leader: &QuorateRun, seconds: u64, ask: bool) -> (Traffic, u64, f64) {
    let pass_id = || {
        let m = metrics_text(&leader.url());
        metric_sum(&m, "quorate_pass_duration_seconds_count") as u64
    };
    let (p0, t0, w0) = (pass_id(), traffic(etcd), Instant::now());
    while w0.elapsed() < Duration::from_secs(seconds) {
        if ask {
            ask_for_pass(leader);
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    let (t1, p1) = (traffic(etcd), pass_id());
    let d = Traffic {
        requests: t1.requests - t0.requests,
        messages: t1.messages - t0.messages,
        received: t1.received - t0.received,
        sent: t1.sent - t0.sent,
    };
    (d, p1.saturating_sub(p0), w0.elapsed().as_secs_f64())
}

/// Part 3: etcd's traffic and memory, two replicas on an idle cluster: first with no
/// pass (the baseline: lease renewals, the replicas' records, the follower's reads), then
/// with a pass asked for every 2 s (`POST /v1/reconcile`); per pass is the second window
/// less the baseline's rate.
fn etcd_traffic(nodes: usize, instances: usize, seconds: u64) {
    let Some(etcd) = EtcdCluster::start(3) else {
        println!("etcd traffic: skipped (no etcd)");
        return;
    };
    let fake = FakePodman::start(nodes);
    let repos = Repos::new();
    repos.write("specs/cluster.yaml", &scaled_specs(&fake, nodes, instances));
    repos.commit("scale");
    assert!(repos.push().status.success());
    let e = etcd.endpoints();
    let rs = [
        scaled_replica(&repos, &e, "a"),
        scaled_replica(&repos, &e, "b"),
    ];
    let leader = until(Duration::from_secs(600), || {
        let running = fake.containers().iter().filter(|(_, c)| c.running).count();
        let l = ha_leader(&[&rs[0], &rs[1]])?;
        let st: Value = rs[l].status();
        (running >= instances && st["lastPass"]["outcome"] == "converged").then_some(l)
    });
    let Some(l) = leader else {
        println!("etcd traffic, {nodes} nodes: did not converge within 600 s");
        return;
    };
    std::thread::sleep(Duration::from_secs(5));
    let (idle, idle_passes, idle_wall) = window(&etcd, &rs[l], seconds, false);
    let (busy, passes, wall) = window(&etcd, &rs[l], seconds, true);
    let (rss, db) = etcd_memory(&etcd);
    let rate = |v: f64| v / idle_wall;
    let per = |busy: f64, idle: f64| (busy - rate(idle) * wall) / passes.max(1) as f64;
    println!(
        "etcd traffic, {nodes} nodes, {instances} instances, two replicas (lease 10 s): \
         without passes ({idle_passes} in {idle_wall:.0} s) {:.1} requests/s and {:.1} stream messages/s (lease keep-alives), {:.2} kB/s to etcd, {:.2} kB/s from it; \
         with {passes} passes in {wall:.0} s, per pass {:.1} requests, {:.1} kB to etcd, {:.1} kB from it; \
         etcd resident {rss:.0} MB (three members together), database {:.0} kB",
        rate(idle.requests),
        rate(idle.messages),
        rate(idle.received) / 1e3,
        rate(idle.sent) / 1e3,
        per(busy.requests, idle.requests),
        per(busy.received, idle.received) / 1e3,
        per(busy.sent, idle.sent) / 1e3,
        db * 1e3,
    );
    if passes == 0 {
        let log = std::fs::read_to_string(&rs[l].log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(12).collect();
        println!("  no pass in the second window; the leader's log ends:");
        for line in tail.iter().rev() {
            println!("    {line}");
        }
    }
}

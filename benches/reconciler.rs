//! The reconciler at a thousand nodes: `quorate run` following a repository whose
//! cluster has `QUORATE_BENCH_NODES` nodes (1,000) and `QUORATE_BENCH_INSTANCES`
//! instances (10,000, bundles of 10 replicas), every node's runtime served by one
//! stand-in process ([`fake_podman`]: the libpod API calls quorate makes, answered at
//! once, so the figures are the reconciler's own costs) and node 0 fenced through a real
//! BMC simulator (`ipmi_sim`).
//!
//! Phases, each printed with its goal:
//! 1. converge: first push -> every instance running;
//! 2. idle: CPU and memory of the `quorate run` process over `QUORATE_BENCH_SECONDS`
//!    (30), the probe rate achieved per node (and the monitors' lists and inspects), and
//!    the most connections open at once;
//! 3. a pushed commit that changes 1,000 instances (a new image): push -> every one
//!    replaced and running, and the passes' latency (observation + plan + dispatch, from
//!    the journal);
//! 4. node 0 lost (its socket gone, open connections unanswered): cut -> power-off
//!    command at the BMC, and cut -> every instance it ran running elsewhere.
//!
//! Run: `cargo bench --bench reconciler`.

#[path = "../tests/support/mod.rs"]
mod support;

#[path = "support/fake_podman.rs"]
mod fake_podman;

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fmt::Write;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fake_podman::FakePodman;
use support::env_usize;
use support::git_repos::Repos;
use support::ipmi_sim::{IpmiSim, SimOptions, USER};
use support::quorate_run::QuorateRun;

const PASSWORD_VAR: &str = "QUORATE_SECRET_BENCH_BMC";
const REPLICAS: usize = 10;

fn cluster(fake: &FakePodman, nodes: usize) -> String {
    let mut s = String::from(
        "apiVersion: quorate.io/v1alpha1\nkind: Cluster\nmetadata: {name: scale}\nspec:\n  nodes:\n",
    );
    for n in 0..nodes {
        let _ = writeln!(
            s,
            "    - {{name: n{n:04}, runtime: '{}'}}",
            fake.endpoint(n)
        );
    }
    s
}

fn fence(port: u16) -> String {
    format!(
        "apiVersion: quorate.io/v1alpha1\nkind: Fence\nmetadata: {{name: bmc-n0000}}\nspec:\n  targets: [n0000]\n  ipmi:\n    address: 127.0.0.1\n    port: {port}\n    username: {USER}\n    password: {{fromEnv: {PASSWORD_VAR}}}\n"
    )
}

/// `bundles` bundles of [`REPLICAS`]; the first `changed` of them on image version 2.
fn bundles(bundles: usize, changed: usize) -> String {
    let mut s = String::new();
    for b in 0..bundles {
        let version = if b < changed { 2 } else { 1 };
        let _ = write!(
            s,
            "---\napiVersion: quorate.io/v1alpha1\nkind: Bundle\nmetadata: {{name: b{b:04}}}\nspec:\n  image: registry.example.com/app{b}:{version}\n  replicas: {REPLICAS}\n  update: {{maxParallel: {REPLICAS}}}\n"
        );
    }
    s
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Waits until `done` holds (checking every 50 ms); the time it took, or `None`.
fn until(within: Duration, mut done: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < within {
        if done() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

fn running_with(fake: &FakePodman, image_suffix: &str, want: usize) -> bool {
    fake.containers()
        .iter()
        .filter(|(_, c)| c.running && c.image.ends_with(image_suffix))
        .count()
        >= want
}

/// (utime + stime in seconds, VmRSS MB, VmHWM MB) of `pid`.
fn sample(pid: u32) -> (f64, f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let hz = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).unwrap_or(100);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let mb = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    (ticks as f64 / hz as f64, mb("VmRSS:"), mb("VmHWM:"))
}

/// Passes that started at or after `since_ms`: (duration ms, outcome), from the journal.
fn passes_since(state: &Path, since_ms: i64) -> Vec<(i64, String)> {
    let Ok(db) = rusqlite::Connection::open_with_flags(
        state.join("state.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    ) else {
        return Vec::new();
    };
    let Ok(mut q) = db.prepare(
        "SELECT finished_unix_ms - started_unix_ms, outcome FROM passes WHERE started_unix_ms >= ?1 ORDER BY id",
    ) else {
        return Vec::new();
    };
    q.query_map([since_ms], |r| Ok((r.get(0)?, r.get(1)?)))
        .map(|rows| rows.filter_map(Result::ok).collect())
        .unwrap_or_default()
}

fn main() {
    let nodes = env_usize("QUORATE_BENCH_NODES", 1000);
    let instances = env_usize("QUORATE_BENCH_INSTANCES", 10_000);
    let seconds = env_usize("QUORATE_BENCH_SECONDS", 30);
    let n_bundles = instances.div_ceil(REPLICAS);
    let changed = (1000 / REPLICAS).min(n_bundles);
    let password = "bench-bmc-pw";
    // SAFETY: set before any other thread of this process starts.
    unsafe { std::env::set_var(PASSWORD_VAR, password) };
    let Some(bmc) = IpmiSim::start_or_skip(&SimOptions::new(password)) else {
        println!("reconciler: skipped (no ipmi_sim)");
        return;
    };
    let mut fake = FakePodman::start(nodes);
    let repos = Repos::new();
    repos.write("specs/cluster.yaml", &cluster(&fake, nodes));
    repos.write("specs/fence.yaml", &fence(bmc.port()));
    repos.write("specs/bundles.yaml", &bundles(n_bundles, 0));
    repos.commit("scale");
    let pushed = Instant::now();
    assert!(repos.push().status.success());
    let run = QuorateRun::start(
        &repos.bare(),
        &repos.state(),
        &repos.dir.path().join("run.log"),
        &[OsStr::new("--secrets-dir"), bmc.dir().as_os_str()],
    );
    println!(
        "reconciler: {nodes} nodes, {instances} instances ({n_bundles} bundles of {REPLICAS}), one stand-in process for every node's Podman API"
    );

    // 1. Converge.
    let Some(took) = until(Duration::from_secs(600), || {
        running_with(&fake, ":1", instances)
    }) else {
        let running = fake.containers().iter().filter(|(_, c)| c.running).count();
        let log = std::fs::read_to_string(&run.log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(15).collect();
        println!("  converge: {running} of {instances} running after 600 s; the log ends:");
        for l in tail.iter().rev() {
            println!("    {l}");
        }
        return;
    };
    println!(
        "  converge: started -> {instances} running in {:.1} s (since the push {:.1} s)",
        took.as_secs_f64(),
        pushed.elapsed().as_secs_f64()
    );
    until(Duration::from_secs(60), || {
        run.status()["lastPass"]["outcome"] == "converged"
    });

    // 2. Idle.
    std::thread::sleep(Duration::from_secs(5));
    let pid = run.child.id();
    let (cpu0, _, _) = sample(pid);
    let calls0 = fake.counts();
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(seconds as u64));
    let (cpu1, rss, hwm) = sample(pid);
    let calls1 = fake.counts();
    let wall = t0.elapsed().as_secs_f64();
    let per_node = |n: u64| n as f64 / nodes as f64 / wall;
    println!(
        "  idle, {seconds} s: {:.1}% of a core, {rss:.0} MB resident (peak {hwm:.0} MB); per node per second {:.2} pings (configured: 2), {:.3} lists, {:.3} inspects; at most {} connections open at once so far  (goal < 10 %, < 100 MB)",
        100.0 * (cpu1 - cpu0) / wall,
        per_node(calls1.ping - calls0.ping),
        per_node(calls1.list - calls0.list),
        per_node(calls1.inspect - calls0.inspect),
        fake.peak_connections()
    );

    // 3. A commit that changes 1,000 instances.
    repos.write("specs/bundles.yaml", &bundles(n_bundles, changed));
    repos.commit("new image for 1,000 instances");
    let since = unix_ms();
    assert!(repos.push().status.success());
    let want = changed * REPLICAS;
    match until(Duration::from_secs(600), || running_with(&fake, ":2", want)) {
        Some(t) => {
            let passes = passes_since(&repos.state(), since);
            let ms: Vec<String> = passes.iter().map(|(d, o)| format!("{d} ms {o}")).collect();
            println!(
                "  push changing {want} instances: push -> all replaced and running in {:.2} s; passes: {}",
                t.as_secs_f64(),
                ms.join(", ")
            );
        }
        None => println!("  push: not all {want} replaced within 600 s"),
    }
    until(Duration::from_secs(120), || {
        run.status()["lastPass"]["outcome"] == "converged"
    });

    // 4. Node 0 lost.
    let victims: BTreeSet<String> = fake
        .containers()
        .into_iter()
        .filter(|(n, c)| *n == 0 && c.running)
        .map(|(_, c)| c.name)
        .collect();
    let cut_ns = support::ipmi_sim::now_unix_ns();
    fake.cut(0);
    let recovered = until(Duration::from_secs(120), || {
        let elsewhere: BTreeSet<String> = fake
            .containers()
            .into_iter()
            .filter(|(n, c)| *n != 0 && c.running)
            .map(|(_, c)| c.name)
            .collect();
        victims.is_subset(&elsewhere)
    });
    let fenced = bmc
        .power_changes()
        .into_iter()
        .find(|p| !p.on && p.at_unix_ns >= cut_ns)
        .map(|p| (p.at_unix_ns - cut_ns) as f64 / 1e9);
    println!(
        "  node lost ({} instances on it): cut -> power-off command {}; cut -> all running elsewhere {}  (goal < 5 s)",
        victims.len(),
        fenced.map_or("never".to_owned(), |s| format!("{s:.2} s")),
        recovered.map_or("not within 120 s".to_owned(), |d| format!(
            "{:.2} s",
            d.as_secs_f64()
        ))
    );
    println!(
        "  connections open at once, at most: {}",
        fake.peak_connections()
    );
}

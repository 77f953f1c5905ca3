//! The reconciler's idle footprint: `quorate run` following a local repository whose
//! cluster has 100 nodes, every one probed every 500 ms (the default) through a real
//! Podman service (all 100 endpoints are that service's socket, so every probe is a real
//! API round trip). After the first pass has converged and 5 s of settling, resident
//! memory (VmRSS, and its peak VmHWM) and CPU time (utime + stime from /proc) over 30 s.
//!
//! Run: `cargo bench --bench idle` (`QUORATE_BENCH_NODES`, `QUORATE_BENCH_SECONDS`).
//! Goal: under 30 MB resident and under 1% of a core.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use support::env_usize;
use support::git_repos::Repos;
use support::quorate_run::QuorateRun;

/// (utime + stime in clock ticks, VmRSS kB, VmHWM kB, RssAnon kB) of `pid`.
fn sample(pid: u32) -> (u64, u64, u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    (ticks, kb("VmRSS:"), kb("VmHWM:"), kb("RssAnon:"))
}

fn main() {
    let nodes = env_usize("QUORATE_BENCH_NODES", 100);
    let seconds = env_usize("QUORATE_BENCH_SECONDS", 30);
    let Some(svc) = support::podman() else {
        println!("idle: skipped (no Podman service)");
        return;
    };
    let repos = Repos::new();
    let mut spec = String::from(
        "apiVersion: quorate.io/v1alpha1\nkind: Cluster\nmetadata: {name: idle}\nspec:\n  fencing: {enabled: false}\n  nodes:\n",
    );
    for i in 0..nodes {
        spec.push_str(&format!(
            "    - {{name: n{i:03}, runtime: '{}'}}\n",
            svc.url()
        ));
    }
    repos.write("specs/cluster.yaml", &spec);
    repos.commit("idle cluster");
    assert!(repos.push().status.success());

    let run = QuorateRun::start(
        &repos.bare(),
        &repos.state(),
        &repos.dir.path().join("run.log"),
        &[],
    );
    let converged = Instant::now() + Duration::from_secs(60);
    while run.status()["lastPass"]["outcome"] != "converged" {
        assert!(Instant::now() < converged, "no converged pass within 60 s");
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(5));
    // SAFETY: sysconf has no preconditions.
    let hz = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).unwrap_or(100);
    let (t0, _, _, _) = sample(run.child.id());
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs(seconds as u64));
    let (t1, rss, hwm, anon) = sample(run.child.id());
    let wall = start.elapsed().as_secs_f64();
    let cpu = (t1 - t0) as f64 / hz as f64;
    println!(
        "idle, {nodes} nodes probed every 500 ms, {seconds} s: {:.2}% of a core ({cpu:.2} s CPU), {:.1} MB resident (peak {:.1} MB; {:.1} MB of it anonymous, the rest the binary's file pages)  (goal < 1%, < 30 MB)",
        100.0 * cpu / wall,
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0,
        anon as f64 / 1024.0
    );
}

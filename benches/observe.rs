//! Observing one node with 200 managed running containers, for Podman and Docker,
//! against real services started here: the observation every command makes (`quorate
//! run`, `observe`, `plan --live`: one list call on a cluster-scoped connection, then
//! `from_spec::observed_instances`). The peer, measured in the same run, is the runtime's
//! own CLI doing the same work: `ps -a` of the same containers with their state, as JSON
//! (`--format '{{json .}}'`, which both CLIs read the same way).
//! Goal: under 200 ms per observation.
//!
//! Run: `cargo bench --bench observe` (set `QUORATE_BENCH_CONTAINERS` to change 200,
//! `QUORATE_BENCH_RUNS` to change the 15 measured runs).

#[path = "../tests/support/mod.rs"]
mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use quorate::runtime::instance::label;
use quorate::runtime::{Runtime, from_spec};
use support::env_usize;
use support::scenarios::{block_on, connect, connect_cluster, spec};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The peer: the runtime's own CLI listing the same containers with their state.
fn cli_list(cli: &dyn Fn(&[&str]) -> Command, containers: usize) {
    let filter = format!("label={}={}", label::MANAGED_BY, label::MANAGED_BY_VALUE);
    let out = support::run(&mut cli(&[
        "ps",
        "-a",
        "--no-trunc",
        "--filter",
        &filter,
        "--format",
        "{{json .}}",
    ]))
    .unwrap();
    assert!(
        out.len() > containers * 50,
        "{} bytes: {}",
        out.len(),
        out.chars().take(600).collect::<String>()
    );
}

async fn bench(
    kind: &str,
    rt: &dyn Runtime,
    scoped: &dyn Runtime,
    cli: &dyn Fn(&[&str]) -> Command,
    containers: usize,
    runs: usize,
) {
    let setup = Instant::now();
    let started: Vec<_> = stream::iter(0..containers)
        .map(|i| async move {
            let s = spec("bench", u32::try_from(i).unwrap(), &["sleep", "100000"]);
            rt.run(&s).await
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let failed = started.iter().filter(|r| r.is_err()).count();
    assert_eq!(
        failed,
        0,
        "{kind}: {:?}",
        started.iter().find(|r| r.is_err())
    );
    eprintln!(
        "{kind}: started {containers} containers in {:.1?}",
        setup.elapsed()
    );
    let mut planner = Vec::new();
    let mut peer = Vec::new();
    for _ in 0..runs + 2 {
        let t = Instant::now();
        let instances = from_spec::observed_instances(&scoped.list().await.unwrap());
        planner.push(t.elapsed());
        assert_eq!(instances.len(), containers);
        let t = Instant::now();
        cli_list(cli, containers);
        peer.push(t.elapsed());
    }
    // The first two of each warm up.
    let (planner, peer) = (planner.split_off(2), peer.split_off(2));
    let (lo, hi) = (
        planner.iter().min().copied().unwrap_or_default(),
        planner.iter().max().copied().unwrap_or_default(),
    );
    let (planner, peer) = (median(planner), median(peer));
    println!(
        "{kind:6} observe {containers} containers (one list call + observed_instances): median \
         {:.1} ms (min {:.1}, max {:.1}, {runs} runs) = {:.2}x the {kind} CLI (ps -a of the \
         same containers as JSON: median {:.1} ms)",
        ms(planner),
        ms(lo),
        ms(hi),
        planner.as_secs_f64() / peer.as_secs_f64(),
        ms(peer),
    );
}

fn main() {
    // `cargo bench` passes `--bench`; any other argument filters by runtime name.
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let wanted = |k: &str| filter.is_empty() || filter.iter().any(|f| k.contains(f.as_str()));
    let containers = env_usize("QUORATE_BENCH_CONTAINERS", 200);
    let runs = env_usize("QUORATE_BENCH_RUNS", 15);

    if wanted("podman")
        && let Some(svc) = support::podman()
    {
        let rt = connect(&svc.url());
        let scoped = connect_cluster(&svc.url(), "test-cluster");
        let cli = |args: &[&str]| svc.cli(args);
        block_on(bench("podman", &*rt, &*scoped, &cli, containers, runs));
    }
    if wanted("docker")
        && let Some(svc) = support::docker()
    {
        let rt = connect(&svc.url());
        let scoped = connect_cluster(&svc.url(), "test-cluster");
        let cli = |args: &[&str]| svc.cli(args);
        block_on(bench("docker", &*rt, &*scoped, &cli, containers, runs));
    }
}

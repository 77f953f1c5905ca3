//! Observing one node with 200 managed running containers, for Podman and Docker,
//! against real services started here: a full observation (list + inspect of each), the
//! planner's observation (`quorate observe`'s path: one list call on a cluster-scoped
//! connection, then `from_spec::observed_instances`), an `Observer` pass when nothing
//! changed (list, cached inspects) and one when a container was added (list + 1 inspect),
//! and the list call alone; the peer, measured in the same run, is the runtime's own CLI
//! (`ps` + one `inspect`). Goal: under 200 ms per observation.
//!
//! Run: `cargo bench --bench observe` (set `QUORATE_BENCH_CONTAINERS` to change 200,
//! `QUORATE_BENCH_RUNS` to change the 15 measured runs).

#[path = "../tests/support/mod.rs"]
mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use quorate::runtime::instance::label;
use quorate::runtime::{self, Runtime, from_spec};
use support::env_usize;
use support::scenarios::{block_on, connect, connect_cluster, spec};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The peer: the runtime's own CLI listing the same containers and inspecting them all
/// in one `inspect` call, as an operator's script would.
fn cli_observe(cli: &dyn Fn(&[&str]) -> Command, containers: usize) {
    let filter = format!("label={}={}", label::MANAGED_BY, label::MANAGED_BY_VALUE);
    let ids = support::run(&mut cli(&["ps", "-aq", "--no-trunc", "--filter", &filter])).unwrap();
    let ids: Vec<&str> = ids.split_whitespace().collect();
    assert_eq!(ids.len(), containers);
    let mut args = vec!["inspect"];
    args.extend(ids);
    let out = support::run(&mut cli(&args)).unwrap();
    assert!(out.len() > containers * 100);
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

    for _ in 0..2 {
        runtime::observe(rt).await.unwrap();
    }
    let mut observe = Vec::new();
    let mut peer = Vec::new();
    let mut steady = Vec::new();
    let mut list = Vec::new();
    let mut planner = Vec::new();
    let mut grown = Vec::new();
    let mut observer = runtime::Observer::new();
    observer.observe(rt).await.unwrap();
    for run in 0..runs {
        let t = Instant::now();
        let seen = runtime::observe(rt).await.unwrap();
        observe.push(t.elapsed());
        assert_eq!(seen.len(), containers);
        assert!(
            seen.iter()
                .all(|c| c.is_running() && c.restart_policy.is_some())
        );
        let t = Instant::now();
        cli_observe(cli, containers);
        peer.push(t.elapsed());
        let t = Instant::now();
        let cached = observer.observe(rt).await.unwrap();
        steady.push(t.elapsed());
        assert_eq!(cached, seen);
        let t = Instant::now();
        assert_eq!(rt.list().await.unwrap().len(), containers);
        list.push(t.elapsed());
        let t = Instant::now();
        let instances = from_spec::observed_instances(&scoped.list().await.unwrap());
        planner.push(t.elapsed());
        assert_eq!(instances.len(), containers);
        // A new container appears: the next Observer pass inspects only that one. It is
        // removed again (untimed) so every run starts from the same node.
        let extra = spec("extra", u32::try_from(run).unwrap(), &["sleep", "100000"]);
        rt.run(&extra).await.unwrap();
        let t = Instant::now();
        let seen = observer.observe(rt).await.unwrap();
        grown.push(t.elapsed());
        assert_eq!(seen.len(), containers + 1);
        rt.remove(&extra.name()).await.unwrap();
        observer.observe(rt).await.unwrap();
    }
    let (lo, hi) = (
        observe.iter().min().copied().unwrap_or_default(),
        observe.iter().max().copied().unwrap_or_default(),
    );
    let (observe, peer) = (median(observe), median(peer));
    println!(
        "{kind:6} observe {containers} containers (list + {containers} inspects): median {:.1} ms \
         (min {:.1}, max {:.1}, {runs} runs) = {:.2}x the {kind} CLI (ps + one inspect of all: \
         median {:.1} ms)\n       planner observation (list on the cluster + observed_instances): \
         median {:.1} ms = {:.2}x the CLI; Observer pass, nothing changed: median {:.1} ms; \
         Observer pass, one new container (list + 1 inspect): median {:.1} ms; list alone: \
         median {:.1} ms",
        ms(observe),
        ms(lo),
        ms(hi),
        observe.as_secs_f64() / peer.as_secs_f64(),
        ms(peer),
        ms(median(planner.clone())),
        median(planner).as_secs_f64() / peer.as_secs_f64(),
        ms(median(steady)),
        ms(median(grown)),
        ms(median(list)),
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

//! Benchmark: planning generated clusters, beside Pacemaker's `crm_simulate` on the
//! equivalent CIB in the same run.
//!
//! `cargo bench --bench plan` (or `scripts/bench-plan`, which installs
//! pacemaker-cli-utils first). Prints, per size: quorate's median planning time for a
//! fresh cluster and for a converged cluster that just lost a node, its peak memory, and
//! `crm_simulate -S` on the same cluster with the ratio.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use quorate::observed::Observed;
use quorate::plan::apply::expected_state;
use quorate::plan::{Options, plan};
use quorate::source::Sources;
use quorate::spec::SpecSet;
use quorate::validate::validate;
use support::{Shape, cib::cib, documents, median};

fn spec_for(shape: &Shape) -> SpecSet {
    let mut sources = Sources::new();
    for (i, doc) in documents(shape, 10).into_iter().enumerate() {
        sources.add(format!("doc{i}.yaml"), doc.into_bytes());
    }
    let report = validate(&sources);
    assert_eq!(
        report.errors(),
        0,
        "generated specs must be valid: {:?}",
        report.diagnostics.first()
    );
    report.into_valid_set().expect("valid")
}

/// Peak resident memory since the last reset, in MiB (Linux).
fn peak_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn time<F: FnMut()>(runs: usize, mut f: F) -> Duration {
    median(
        (0..runs)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed()
            })
            .collect(),
    )
}

fn crm_simulate(spec: &SpecSet, runs: usize) -> Option<Duration> {
    let dir = tempfile::tempdir().ok()?;
    let path = dir.path().join("cib.xml");
    std::fs::write(&path, cib(spec)).ok()?;
    let mut samples = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let out = Command::new("crm_simulate")
            .arg("-x")
            .arg(&path)
            .arg("-S")
            .arg("-Q")
            .output()
            .ok()?;
        samples.push(t.elapsed());
        if !out.status.success() {
            eprintln!(
                "crm_simulate failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            return None;
        }
    }
    Some(median(samples))
}

fn main() {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    for (nodes, instances, runs, pcmk_runs) in [(50, 1_000, 9, 3), (1_000, 10_000, 5, 1)] {
        let shape = Shape {
            nodes,
            bundles: instances / 2,
            replicas: 2,
        };
        let spec = spec_for(&shape);
        let fresh = Observed::fresh(&spec);
        let options = Options::default();

        reset_peak();
        let base = peak_mib();
        let first = plan(&spec, &fresh, &options);
        let peak = peak_mib() - base;
        let t_fresh = time(runs, || {
            std::hint::black_box(plan(&spec, &fresh, &options));
        });
        let mut lost = expected_state(&spec, &fresh, &first);
        let victim = spec.cluster.nodes[0].name.clone();
        lost.fail_node(&victim);
        let t_lost = time(runs, || {
            std::hint::black_box(plan(&spec, &lost, &options));
        });
        let failover = plan(&spec, &lost, &options);

        println!(
            "plan {nodes} nodes x {instances} instances ({} constraints): fresh {:.1} ms ({} actions), node lost {:.1} ms ({} actions), peak +{:.0} MiB",
            spec.constraints.len(),
            ms(t_fresh),
            first.changes,
            ms(t_lost),
            failover.changes,
            peak
        );
        match crm_simulate(&spec, pcmk_runs) {
            Some(p) => println!(
                "  crm_simulate -S on the equivalent CIB: {:.1} ms; quorate is {:.1}x faster",
                ms(p),
                p.as_secs_f64() / t_fresh.as_secs_f64()
            ),
            None => println!("  crm_simulate not available (apt-get install pacemaker-cli-utils)"),
        }
    }
}

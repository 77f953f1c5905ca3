//! Benchmark: `quorate validate` on 10,000 documents in 1,000 files.
//!
//! Run with `cargo bench --bench validate`. Prints the median of several runs of the whole
//! pipeline (read files, parse, shape, meaning) and of the in-memory part alone; then the
//! time of a hostile set: 20,000 bundles on 2,000 nodes, each colocated by `INFINITY` with
//! the one before, the constraints written from the far end of the chain, against the order
//! they are read in.

mod support;

use std::time::{Duration, Instant};

use quorate::source::Sources;
use quorate::source::fs::read_paths;
use quorate::validate::validate;
use support::{Shape, documents, median};

fn main() {
    let shape = Shape {
        nodes: 50,
        bundles: 3_800,
        replicas: 2,
    };
    let mut docs = documents(&shape, 20);
    docs.truncate(10_000);
    assert_eq!(docs.len(), 10_000, "generate at least 10,000 documents");
    let dir = tempfile::tempdir().expect("tempdir");
    for (i, chunk) in docs.chunks(10).enumerate() {
        std::fs::write(
            dir.path().join(format!("f{i:04}.yaml")),
            chunk.join("---\n"),
        )
        .expect("write");
    }
    let files = std::fs::read_dir(dir.path()).expect("read_dir").count();

    // Documents cut off by truncation may leave references dangling; the run must still
    // be a full validation, so only count findings, do not require validity.
    let mut whole = Vec::new();
    let mut in_memory = Vec::new();
    let mut findings = 0;
    for _ in 0..7 {
        let t = Instant::now();
        let sources = read_paths(&[dir.path().to_path_buf()]).expect("read");
        let t_read = t.elapsed();
        let report = validate(&sources);
        whole.push(t.elapsed());
        in_memory.push(t.elapsed() - t_read);
        findings = report.diagnostics.len();
        assert_eq!(report.index.len(), 10_000);
    }
    let sources = read_paths(&[dir.path().to_path_buf()]).expect("read");
    let mut parse = Vec::new();
    let mut load = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        for (_, f) in sources.iter() {
            let _ = quorate::load::yaml::parse_documents(&f.bytes);
        }
        parse.push(t.elapsed());
        let t = Instant::now();
        let _ = quorate::load::load(&sources);
        load.push(t.elapsed());
    }
    let fmt = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1e3);
    println!("validate: 10,000 documents in {files} files ({findings} findings)");
    println!("  read + validate, median of 7: {}", fmt(median(whole)));
    println!(
        "  validate in memory, median of 7: {}",
        fmt(median(in_memory))
    );
    println!("    of which YAML parsing: {}", fmt(median(parse)));
    println!(
        "    of which loading (parse + shape): {}",
        fmt(median(load))
    );
    chain(2_000, 20_000);
}

/// Validates `bundles` bundles on `nodes` nodes, each colocated by `INFINITY` with the one
/// before, the constraints named from the far end of the chain, the first bundle banned
/// from one node.
fn chain(nodes: usize, bundles: usize) {
    let mut cluster = String::from(
        "apiVersion: quorate.io/v1alpha1\nkind: Cluster\nmetadata: {name: c}\nspec:\n  nodes:\n",
    );
    for i in 0..nodes {
        cluster += &format!("    - {{name: n{i}, runtime: 'podman+unix:///run/n{i}.sock'}}\n");
    }
    let mut docs = vec![cluster];
    for i in 0..bundles {
        docs.push(format!(
            "apiVersion: quorate.io/v1alpha1\nkind: Bundle\nmetadata: {{name: b{i}}}\nspec: {{image: 'x:1'}}\n"
        ));
    }
    for i in 1..bundles {
        docs.push(format!(
            "apiVersion: quorate.io/v1alpha1\nkind: Constraint\nmetadata: {{name: c{:06}}}\nspec: {{colocation: {{bundle: b{i}, with: b{}, score: INFINITY}}}}\n",
            bundles - i,
            i - 1
        ));
    }
    docs.push("apiVersion: quorate.io/v1alpha1\nkind: Constraint\nmetadata: {name: ban}\nspec: {location: {bundle: b0, node: n0, score: -INFINITY}}\n".into());
    let mut sources = Sources::new();
    for (i, chunk) in docs.chunks(1_000).enumerate() {
        sources.add(format!("f{i:03}.yaml"), chunk.join("---\n").into_bytes());
    }
    let mut times = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let report = validate(&sources);
        times.push(t.elapsed());
        assert_eq!(report.errors(), 0, "{:?}", report.diagnostics.first());
    }
    println!(
        "chain: {bundles} bundles on {nodes} nodes, each colocated with the one before, read from the far end: validate in memory, median of 3: {:.1} ms",
        median(times).as_secs_f64() * 1e3
    );
}

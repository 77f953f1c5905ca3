//! Generated spec sets for benchmarks: a cluster of `nodes` nodes with fences, and
//! `bundles` bundles with location, colocation and order constraints among them.

#![allow(dead_code)]

use std::fmt::Write;

/// Sizes of a generated spec set.
pub struct Shape {
    pub nodes: usize,
    pub bundles: usize,
    pub replicas: usize,
}

/// The Cluster document.
pub fn cluster(shape: &Shape) -> String {
    let mut s = String::from(
        "apiVersion: quorate.io/v1alpha1\nkind: Cluster\nmetadata: {name: bench}\nspec:\n  quorum: {reconcilerVotes: 1}\n  networks:\n    - {name: net, subnet: 10.0.0.0/8}\n  nodes:\n",
    );
    for n in 0..shape.nodes {
        let _ = writeln!(
            s,
            "    - {{name: node{n}, runtime: 'podman+unix:///run/node{n}.sock', attributes: {{rack: r{}, zone: z{}}}}}",
            n % 10,
            n % 3
        );
    }
    s
}

/// Fence document `i`, covering a tenth of the nodes.
pub fn fence(shape: &Shape, i: usize) -> String {
    let targets: Vec<String> = (0..shape.nodes)
        .filter(|n| n % 10 == i % 10)
        .map(|n| format!("node{n}"))
        .collect();
    format!(
        "apiVersion: quorate.io/v1alpha1\nkind: Fence\nmetadata: {{name: fence{i}}}\nspec:\n  targets: [{}]\n  level: {}\n  ipmi: {{address: 10.255.0.{}, username: admin, password: {{fromEnv: BMC{i}}}}}\n",
        targets.join(", "),
        1 + i / 10,
        i % 250
    )
}

/// Bundle document `i`.
pub fn bundle(shape: &Shape, i: usize) -> String {
    let recovery = if i.is_multiple_of(4) {
        "fence"
    } else {
        "restart"
    };
    format!(
        "apiVersion: quorate.io/v1alpha1\nkind: Bundle\nmetadata: {{name: b{i}}}\nspec:\n  image: registry.example.com/app{i}:1.0\n  replicas: {}\n  replicasPerHost: 2\n  priority: {}\n  network:\n    name: net\n    ipRangeStart: 10.{}.{}.1\n    ports: [{{port: 8080}}]\n  storage:\n    - {{sourceDirRoot: /srv/b{i}, targetDir: /data}}\n  env: {{MODE: prod, INDEX: {i}}}\n  monitor: {{interval: 10s, timeout: 5s, check: {{tcp: {{port: 8080}}}}}}\n  recovery: {recovery}\n",
        shape.replicas,
        i % 7,
        1 + (i / 250) % 250,
        i % 250
    )
}

/// Constraint documents for bundle `i`: a location rule, and (for odd `i`) a colocation
/// and an order with bundle `i - 1`.
pub fn constraints(i: usize) -> Vec<String> {
    let mut docs = vec![format!(
        "apiVersion: quorate.io/v1alpha1\nkind: Constraint\nmetadata: {{name: loc{i}}}\nspec:\n  location:\n    bundle: b{i}\n    rule: {{attribute: rack, operator: eq, value: r{}}}\n    score: {}\n",
        i % 10,
        if i.is_multiple_of(5) {
            "-INFINITY".to_owned()
        } else {
            format!("{}", 10 + i % 50)
        }
    )];
    if i % 2 == 1 {
        docs.push(format!(
            "apiVersion: quorate.io/v1alpha1\nkind: Constraint\nmetadata: {{name: col{i}}}\nspec:\n  colocation: {{bundle: b{i}, with: b{}, score: {}}}\n",
            i - 1,
            if i % 6 == 1 { "-100" } else { "50" }
        ));
        docs.push(format!(
            "apiVersion: quorate.io/v1alpha1\nkind: Constraint\nmetadata: {{name: ord{i}}}\nspec:\n  order: {{first: b{}, then: b{i}}}\n",
            i - 1
        ));
    }
    docs
}

/// Every document of a spec set, as texts.
pub fn documents(shape: &Shape, fences: usize) -> Vec<String> {
    let mut docs = vec![cluster(shape)];
    docs.extend((0..fences).map(|i| fence(shape, i)));
    for i in 0..shape.bundles {
        docs.push(bundle(shape, i));
        docs.extend(constraints(i));
    }
    docs
}

/// Median of `samples`.
pub fn median(mut samples: Vec<std::time::Duration>) -> std::time::Duration {
    samples.sort();
    samples[samples.len() / 2]
}

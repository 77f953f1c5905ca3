//! Generated spec sets for benchmarks: a cluster of `nodes` nodes with fences and
//! capacities (`placementStrategy: utilization`), and `bundles` bundles with needs,
//! location rules (a third of them compound: `or`/`and` with `#uname`), colocation and
//! order constraints among them, and groups of three (every tenth bundle from the
//! eighth: `b7`, `b8`, `b9`; `b17`, ...).

#![allow(dead_code)]

pub mod cib;

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
        "apiVersion: quorate.io/v1alpha1\nkind: Cluster\nmetadata: {name: bench}\nspec:\n  quorum: {reconcilerVotes: 1}\n  placementStrategy: utilization\n  networks:\n    - {name: net, subnet: 10.0.0.0/8}\n  nodes:\n",
    );
    // Room for about 1.2 times the instances' average needs (2.5 cpus, 4.5 GiB).
    let per_node = (shape.bundles * shape.replicas).div_ceil(shape.nodes.max(1));
    for n in 0..shape.nodes {
        let _ = writeln!(
            s,
            "    - {{name: node{n}, runtime: 'podman+unix:///run/node{n}.sock', attributes: {{rack: r{}, zone: z{}}}, capacity: {{cpu: {}, memory: {}}}}}",
            n % 10,
            n % 3,
            3 * per_node + 2,
            5632 * per_node
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

/// Whether bundle `i` is a member of a group (`b7`, `b8`, `b9`, `b17`, ...).
fn grouped(i: usize) -> bool {
    i % 10 >= 7
}

/// Bundle document `i`: it needs 1 to 4 cpus and 1 to 8 GiB of memory per instance.
/// Group members run one instance per node, as groups of several replicas require.
pub fn bundle(shape: &Shape, i: usize) -> String {
    let recovery = if i.is_multiple_of(4) {
        "fence"
    } else {
        "restart"
    };
    format!(
        "apiVersion: quorate.io/v1alpha1\nkind: Bundle\nmetadata: {{name: b{i}}}\nspec:\n  image: registry.example.com/app{i}:1.0\n  replicas: {}\n  replicasPerHost: {}\n  priority: {}\n  network:\n    name: net\n    ipRangeStart: 10.{}.{}.1\n    ports: [{{port: 8080}}]\n  storage:\n    - {{sourceDirRoot: /srv/b{i}, targetDir: /data}}\n  env: {{MODE: prod, INDEX: {i}}}\n  monitor: {{interval: 10s, timeout: 5s, check: {{tcp: {{port: 8080}}}}}}\n  recovery: {recovery}\n  needs: {{cpu: {}, memory: {}}}\n",
        shape.replicas,
        if grouped(i) { 1 } else { 2 },
        i % 7,
        1 + (i / 250) % 250,
        i % 250,
        1 + i % 4,
        1024 * (1 + i % 8)
    )
}

/// The location rule of bundle `i`: its rack, or for every third bundle a rule tree
/// (its rack, or its zone on any node but one, by name).
fn rule(shape: &Shape, i: usize) -> String {
    if i.is_multiple_of(3) {
        format!(
            "{{or: [{{attribute: rack, operator: eq, value: r{}}}, {{and: [{{attribute: zone, operator: eq, value: z{}}}, {{attribute: '#uname', operator: ne, value: node{}}}]}}]}}",
            i % 10,
            i % 3,
            i % shape.nodes.max(1)
        )
    } else {
        format!("{{attribute: rack, operator: eq, value: r{}}}", i % 10)
    }
}

/// Constraint documents for bundle `i`: a location rule, and (for odd `i` outside the
/// groups) a colocation and an order with bundle `i - 1`; the last member of a group
/// brings the group.
pub fn constraints(shape: &Shape, i: usize) -> Vec<String> {
    let mut docs = vec![format!(
        "apiVersion: quorate.io/v1alpha1\nkind: Constraint\nmetadata: {{name: loc{i}}}\nspec:\n  location:\n    bundle: b{i}\n    rule: {}\n    score: {}\n",
        rule(shape, i),
        if i.is_multiple_of(5) {
            "-INFINITY".to_owned()
        } else {
            format!("{}", 10 + i % 50)
        }
    )];
    if i % 10 == 9 {
        docs.push(format!(
            "apiVersion: quorate.io/v1alpha1\nkind: Group\nmetadata: {{name: g{i}}}\nspec: {{bundles: [b{}, b{}, b{i}]}}\n",
            i - 2,
            i - 1
        ));
    }
    if i % 2 == 1 && !grouped(i) {
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
        docs.extend(constraints(shape, i));
    }
    docs
}

/// Median of `samples`.
pub fn median(mut samples: Vec<std::time::Duration>) -> std::time::Duration {
    samples.sort();
    samples[samples.len() / 2]
}

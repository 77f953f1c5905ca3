//! The lab's spec set, generated in one place: `lab up` commits it to the lab's repo,
//! `lab specs` writes it anywhere, and the repository's own `specs/` directory is this
//! set for the default lab (a test keeps them equal).
//!
//! Addresses, for the failover a person (or a test) tries:
//! - `db` (one instance, `recovery: fence`): fixed address `10.89.0.200` on the runtime
//!   network `lab` inside whichever node runs it, and port 5432 published on that node's
//!   address, so from the host it answers at `http://<node address>:5432/`.
//! - `web` (two instances, or one on a one-node lab; `recovery: restart`): port 8000 published on each of its nodes.

use super::config::{
    BMC_PORT, BMC_USER, DB_IP_START, DB_PORT, IMAGE, INSTANCE_NETWORK, INSTANCE_SUBNET, LabConfig,
    WEB_PORT,
};
use crate::source::Sources;
use crate::validate::validate;

/// The first line of every spec file: the schema, relative to the `specs/` directory.
const SCHEMA_LINE: &str = "# yaml-language-server: $schema=../schemas/quorate.json\n";

/// Where the db bundle's per-instance storage lives (`<root>/db-<i>`).
pub fn db_storage_root(cfg: &LabConfig) -> std::path::PathBuf {
    cfg.data_dir().join("db")
}

/// Replicas of the db bundle (its storage directories are made by `lab up`).
pub const DB_REPLICAS: u32 = 1;

/// Replicas of the web bundle (fewer on a lab with fewer nodes: one per node).
pub const WEB_REPLICAS: u32 = 2;

/// The spec files by name (`cluster.yaml`, `fences.yaml`, `bundles.yaml`,
/// `constraints.yaml`), in that order.
pub fn render(cfg: &LabConfig) -> Vec<(String, String)> {
    vec![
        ("cluster.yaml".into(), cluster(cfg)),
        ("fences.yaml".into(), fences(cfg)),
        ("bundles.yaml".into(), bundles(cfg)),
        ("constraints.yaml".into(), constraints()),
    ]
}

/// Every file of the lab's repository: `specs/*.yaml` and `schemas/*.json`.
pub fn repo_files(cfg: &LabConfig) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = render(cfg)
        .into_iter()
        .map(|(name, text)| (format!("specs/{name}"), text))
        .collect();
    files.extend(
        crate::schema::rendered()
            .into_iter()
            .map(|(name, text)| (format!("schemas/{name}"), text)),
    );
    files
}

/// Validation errors in the rendered set (none, unless this module is wrong).
pub fn errors(cfg: &LabConfig) -> Vec<String> {
    let mut sources = Sources::new();
    for (name, text) in render(cfg) {
        sources.add(format!("specs/{name}"), text.into_bytes());
    }
    validate(&sources)
        .diagnostics
        .into_iter()
        .filter(|d| d.is_error())
        .map(|d| format!("{}: {}", d.code, d.message))
        .collect()
}

fn cluster(cfg: &LabConfig) -> String {
    let mut nodes = String::new();
    for n in cfg.nodes() {
        nodes.push_str(&format!(
            "    - name: {}\n      runtime: {}\n      insecure: true\n",
            n.name, n.runtime
        ));
    }
    format!(
        "{SCHEMA_LINE}\
# The lab's cluster (`quorate lab up`; regenerate with `quorate lab specs`). Each node is a
# network namespace with its own Podman service, reached over plain TCP on the lab's private
# bridge: `insecure: true`, which validation warns about, as it should outside a lab.
apiVersion: quorate.io/v1alpha1
kind: Cluster
metadata:
  name: {name}
spec:
  nodes:
{nodes}  quorum:
    reconcilerVotes: 1
    noQuorumPolicy: freeze
  fencing:
    enabled: true
    timeout: 60s
  membership:
    probeInterval: 500ms
    deadTime: 2s
  networks:
    - name: {INSTANCE_NETWORK}
      subnet: {INSTANCE_SUBNET}
",
        name = cfg.cluster_name(),
    )
}

fn fences(cfg: &LabConfig) -> String {
    let mut out = format!(
        "{SCHEMA_LINE}\
# One BMC per node: an ipmi_sim on a loopback address of the host, reachable while the
# node's cable is cut. The password is in a file only root can read.
"
    );
    let docs: Vec<String> = cfg
        .nodes()
        .iter()
        .map(|n| {
            format!(
                "apiVersion: quorate.io/v1alpha1
kind: Fence
metadata:
  name: bmc-{node}
spec:
  targets: [{node}]
  powerWait: 10s
  ipmi:
    address: {addr}
    port: {BMC_PORT}
    username: {BMC_USER}
    password:
      fromFile: {password}
",
                node = n.name,
                addr = n.bmc_address,
                password = cfg.password_file().display(),
            )
        })
        .collect();
    out.push_str(&docs.join("---\n"));
    out
}

fn bundles(cfg: &LabConfig) -> String {
    format!(
        "{SCHEMA_LINE}\
# A single-writer \"database\" (busybox httpd serving its own storage) and a stateless web
# tier. Both publish their port on their node's address, so the host reaches them there.
apiVersion: quorate.io/v1alpha1
kind: Bundle
metadata:
  name: db
spec:
  image: {IMAGE}
  replicas: {DB_REPLICAS}
  priority: 10
  command:
    - sh
    - -c
    - \"date >> /data/starts; test -f /data/index.html || echo 'quorate lab db' > /data/index.html; exec httpd -f -p {DB_PORT} -h /data\"
  network:
    name: {INSTANCE_NETWORK}
    ipRangeStart: {DB_IP_START}
    ports:
      - port: {DB_PORT}
  storage:
    - sourceDirRoot: {db_root}
      targetDir: /data
  monitor:
    interval: 2s
    timeout: 1s
    check:
      tcp:
        port: {DB_PORT}
  recovery: fence
  stopTimeout: 5s
---
apiVersion: quorate.io/v1alpha1
kind: Bundle
metadata:
  name: web
spec:
  image: {IMAGE}
  replicas: {web_replicas}
  command: [httpd, -f, -p, \"{WEB_PORT}\", -h, /www]
  network:
    ports:
      - port: {WEB_PORT}
  monitor:
    interval: 2s
    timeout: 1s
    check:
      http:
        port: {WEB_PORT}
  recovery: restart
  stopTimeout: 5s
",
        db_root = db_storage_root(cfg).display(),
        web_replicas = WEB_REPLICAS.min(cfg.nodes),
    )
}

fn constraints() -> String {
    format!(
        "{SCHEMA_LINE}\
# The web tier starts after the database, and stops before it.
apiVersion: quorate.io/v1alpha1
kind: Constraint
metadata:
  name: db-before-web
spec:
  order:
    first: db
    then: web
"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_size_of_lab_validates() {
        for nodes in [1, 3, 7] {
            let cfg = LabConfig {
                nodes,
                ..LabConfig::default()
            };
            assert_eq!(errors(&cfg), Vec::<String>::new(), "{nodes} nodes");
            let text = render(&cfg).into_iter().map(|(_, t)| t).collect::<String>();
            assert_eq!(text.matches("kind: Fence").count(), nodes as usize);
            assert_eq!(
                text.matches("      insecure: true\n").count(),
                nodes as usize,
                "one insecure endpoint per node"
            );
        }
    }

    #[test]
    fn files_start_with_the_schema_line_and_name_the_lab_dir() {
        let cfg = LabConfig {
            dir: "/tmp/elsewhere".into(),
            name: "qt1".into(),
            ..LabConfig::default()
        };
        let files = repo_files(&cfg);
        assert!(files.iter().any(|(n, _)| n == "schemas/quorate.json"));
        for (name, text) in files.iter().filter(|(n, _)| n.starts_with("specs/")) {
            assert!(text.starts_with(SCHEMA_LINE), "{name}");
        }
        let all: String = files.iter().map(|(_, t)| t.as_str()).collect();
        assert!(all.contains("fromFile: /tmp/elsewhere/secrets/bmc-password"));
        assert!(all.contains("sourceDirRoot: /tmp/elsewhere/data/db"));
        assert!(all.contains("  name: qt1\n"));
    }
}

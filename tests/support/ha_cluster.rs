//! A cluster for HA tests and the HA benchmark: three etcd members, real Podman, a bare
//! repository whose specs run `app` instances that log each start in a bind mount, and
//! `quorate run --etcd` replicas as separate processes.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::PodmanService;
use super::etcd_svc::EtcdCluster;
use super::git_repos::Repos;
use super::quorate_run::QuorateRun;

/// The lease of the replicas in these tests (the shortest allowed) and the runtime timeout:
/// a new leader waits about 2.1 s + 3 s before acting.
pub const LEASE: &str = "2s";
pub const TIMEOUT: &str = "3s";

/// A one-node cluster on the test's Podman, and `replicas` instances of `app` that append
/// their host name to `starts` in `data`, then sleep.
pub fn specs(svc: &PodmanService, data: &Path, replicas: u32) -> String {
    super::app_specs(
        "ha",
        "  defaults: {recheckInterval: 1s}\n",
        svc,
        data,
        replicas,
    )
}

/// The services of one HA test, dropped (stopped) together.
pub struct Setup {
    pub svc: PodmanService,
    pub etcd: EtcdCluster,
    pub repos: Repos,
    pub data: PathBuf,
}

/// etcd, Podman and a repository whose specs run `replicas` apps; `None`: skipped.
pub fn setup(replicas: u32) -> Option<Setup> {
    let etcd = EtcdCluster::start(3)?;
    let svc = super::podman()?;
    let repos = Repos::new();
    let data = repos.dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    repos.write("specs/cluster.yaml", &specs(&svc, &data, replicas));
    repos.commit("apps");
    assert!(repos.push().status.success());
    Some(Setup {
        svc,
        etcd,
        repos,
        data,
    })
}

/// Replica `name` on its own state directory, with the tests' short lease and timeout.
pub fn replica(s: &Setup, name: &str) -> QuorateRun {
    replica_with(s, name, &["--lease-ttl", LEASE, "--timeout", TIMEOUT])
}

/// Replica `name` with `flags` besides `--etcd`, `--name` and `--poll-interval`.
pub fn replica_with(s: &Setup, name: &str, flags: &[&str]) -> QuorateRun {
    let dir = s.repos.dir.path();
    let state = dir.join(format!("state-{name}"));
    let endpoints = s.etcd.endpoints();
    let mut extra: Vec<&OsStr> = vec![
        "--etcd".as_ref(),
        endpoints.as_ref(),
        "--name".as_ref(),
        name.as_ref(),
        "--poll-interval".as_ref(),
        "1s".as_ref(),
    ];
    extra.extend(flags.iter().map(OsStr::new));
    QuorateRun::start(
        &s.repos.bare(),
        &state,
        &dir.join(format!("{name}.log")),
        &extra,
    )
}

pub fn role(r: &QuorateRun) -> String {
    r.status()["ha"]["role"].as_str().unwrap_or("").to_owned()
}

/// The replica that leads, once exactly one of `rs` says it leads and all name it.
pub fn leader_of(rs: &[&QuorateRun]) -> Option<usize> {
    let statuses: Vec<Value> = rs.iter().map(|r| r.status()).collect();
    let leaders: Vec<usize> = (0..rs.len())
        .filter(|&i| statuses[i]["ha"]["role"] == "leader")
        .collect();
    let [l] = leaders[..] else { return None };
    let name = statuses[l]["ha"]["name"].clone();
    statuses
        .iter()
        .all(|s| s["ha"]["leader"] == name)
        .then_some(l)
}

pub fn converged(s: &Setup, n: u32) -> Option<()> {
    (s.svc.container_names(false) == super::app_instances(n)).then_some(())
}

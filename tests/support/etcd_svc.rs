//! A three-member etcd cluster on loopback for HA tests (Debian's `etcd-server`): each
//! member with its own data directory and free ports; members can be stopped and started
//! again; dropping the guard kills them all and deletes the directories.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One member.
struct Member {
    name: String,
    client: u16,
    peer: u16,
    child: Option<Child>,
}

/// The cluster.
pub struct EtcdCluster {
    dir: tempfile::TempDir,
    members: Vec<Member>,
    initial: String,
}

impl EtcdCluster {
    /// Starts `n` members and waits until the cluster answers; `None` (or a panic with CI
    /// set) when etcd cannot be started.
    pub fn start(n: usize) -> Option<EtcdCluster> {
        if !super::have("etcd") {
            return super::unavailable("etcd", "no `etcd` binary (apt-get install etcd-server)");
        }
        let dir = tempfile::tempdir().unwrap();
        let members: Vec<Member> = (1..=n)
            .map(|i| Member {
                name: format!("e{i}"),
                client: super::free_port(),
                peer: super::free_port(),
                child: None,
            })
            .collect();
        let initial = members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer))
            .collect::<Vec<_>>()
            .join(",");
        let mut c = EtcdCluster {
            dir,
            members,
            initial,
        };
        for i in 0..n {
            if let Err(e) = c.spawn(i) {
                return super::unavailable("etcd", e);
            }
        }
        match c.wait_healthy(Duration::from_secs(20)) {
            Ok(()) => Some(c),
            Err(e) => super::unavailable("etcd", e),
        }
    }

    fn data_dir(&self, i: usize) -> PathBuf {
        self.dir.path().join(&self.members[i].name)
    }

    fn spawn(&mut self, i: usize) -> Result<(), String> {
        let data = self.data_dir(i);
        let state = if data.exists() { "existing" } else { "new" };
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(
                self.dir
                    .path()
                    .join(format!("{}.log", self.members[i].name)),
            )
            .map_err(|e| e.to_string())?;
        let m = &self.members[i];
        let client = format!("http://127.0.0.1:{}", m.client);
        let peer = format!("http://127.0.0.1:{}", m.peer);
        let child = Command::new("etcd")
            .args(["--name", &m.name, "--data-dir"])
            .arg(&data)
            .args([
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args(["--initial-cluster", &self.initial])
            .args(["--initial-cluster-state", state])
            .args(["--initial-cluster-token", "quorate-ha-test"])
            .args(["--heartbeat-interval", "100", "--election-timeout", "1000"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot run etcd: {e}"))?;
        self.members[i].child = Some(child);
        Ok(())
    }

    /// The client URLs, comma-separated (for `--etcd`).
    pub fn endpoints(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("http://127.0.0.1:{}", m.client))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The client URLs, one per member (each also serves `/metrics`).
    pub fn client_urls(&self) -> Vec<String> {
        self.members
            .iter()
            .map(|m| format!("http://127.0.0.1:{}", m.client))
            .collect()
    }

    /// The process ids of the members that run.
    pub fn pids(&self) -> Vec<u32> {
        self.members
            .iter()
            .filter_map(|m| m.child.as_ref().map(Child::id))
            .collect()
    }

    /// Stops member `i` (SIGKILL).
    pub fn stop(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts member `i` again on its data directory.
    pub fn restart(&mut self, i: usize) {
        self.spawn(i).unwrap();
    }

    /// `etcdctl` on the cluster.
    pub fn ctl(&self, args: &[&str]) -> std::process::Output {
        Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .args(["--endpoints", &self.endpoints(), "--command-timeout", "3s"])
            .args(args)
            .output()
            .unwrap()
    }

    /// Waits until the cluster serves a linearizable read.
    pub fn wait_healthy(&self, within: Duration) -> Result<(), String> {
        let deadline = Instant::now() + within;
        loop {
            let out = self.ctl(&["get", "--prefix", "/health-probe"]);
            if out.status.success() {
                return Ok(());
            }
            if Instant::now() > deadline {
                let log =
                    std::fs::read_to_string(self.dir.path().join("e1.log")).unwrap_or_default();
                let tail: String = log.lines().rev().take(10).collect::<Vec<_>>().join("\n");
                return Err(format!(
                    "not healthy within {within:?}: {}\n{tail}",
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.stop(i);
        }
    }
}

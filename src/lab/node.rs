//! A node's life: power on (namespace, cable, Podman service), power off (everything of
//! it killed, its cable and namespace gone), and its power state file.
//!
//! The Podman service runs inside the node's network namespace (`nsenter --net`; not `ip
//! netns exec`, which remounts /sys and hides the cgroup mounts runc needs) and in a
//! private mount namespace (`unshare --mount`) with fresh tmpfs on the directories a
//! rootful Podman shares machine-wide: `/run/containers` (netavark's IP allocations and
//! aardvark-dns), `/run/netns` (container namespaces), `/run/runc` (runc's state),
//! `/run/libpod` and `/dev/shm` (the lock segment). The node's runroot and tmpdir are
//! Podman's rootful defaults under those (`/run/containers/storage`, `/run/libpod`), so
//! they are private too (and short: Podman refuses a runroot over 50 characters). So nodes do not see each other's allocations or locks, and what a real machine loses on
//! power loss (everything under /run) is lost here too: after a power cycle Podman finds
//! its containers created but not running, as after a reboot (invariant 5: no restart
//! policy brings them back; only the reconciler starts them).

use std::path::PathBuf;
use std::time::Duration;

use super::LabError;
use super::cmd::{Cmd, read_pidfile, tail};
use super::config::{LabConfig, LabNode, PODMAN_PORT, dir_needle};
use super::net;
use super::procs::{self, Selector};
use crate::runtime::{self, Connection, Endpoint, RuntimeInfo};

/// Directories a rootful Podman shares machine-wide, replaced per node by a fresh tmpfs.
const PRIVATE_RUN_DIRS: &[&str] = &["/run/containers", "/run/netns", "/run/runc", "/run/libpod"];

/// The node's runroot, on its private `/run/containers`.
const RUNROOT: &str = "/run/containers/storage";

/// The node's tmpdir, its private `/run/libpod`.
const TMPDIR: &str = "/run/libpod";

/// How long a Podman service may take to answer after it is started.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The files of one node.
struct Paths {
    root: PathBuf,
    networks: PathBuf,
    pidfile: PathBuf,
    log: PathBuf,
    power: PathBuf,
    cut: PathBuf,
}

fn paths(cfg: &LabConfig, node: &LabNode) -> Paths {
    let d = cfg.node_dir(node);
    Paths {
        root: d.join("root"),
        networks: d.join("networks"),
        pidfile: d.join("podman.pid"),
        log: d.join("podman.log"),
        power: d.join("power"),
        cut: d.join("cut"),
    }
}

/// Creates the node's directories (storage persists across power cycles, like a disk).
pub(crate) fn prepare(cfg: &LabConfig, node: &LabNode) -> Result<(), LabError> {
    let p = paths(cfg, node);
    for d in [&p.root, &p.networks] {
        std::fs::create_dir_all(d).map_err(|e| LabError::io(d, e))?;
    }
    let default_network = p.networks.join(super::DEFAULT_NETWORK_FILE);
    std::fs::write(&default_network, super::DEFAULT_NETWORK)
        .map_err(|e| LabError::io(&default_network, e))
}

/// The shell run inside the node's namespaces before `exec podman ...`: private tmpfs
/// mounts, then the pid file. Arguments: `$1` pid file, then podman's command line.
fn service_script() -> String {
    let dirs = PRIVATE_RUN_DIRS.join(" ");
    format!(
        "pidfile=$1; shift\n\
         for d in {dirs}; do mkdir -p \"$d\"; mount -t tmpfs -o mode=0755 quorate-lab \"$d\"; done\n\
         mount -t tmpfs -o mode=1777 quorate-lab /dev/shm\n\
         echo $$ > \"$pidfile\"\n\
         exec \"$@\"\n"
    )
}

/// The node's Podman service command line.
fn service_command(cfg: &LabConfig, node: &LabNode) -> Cmd {
    let p = paths(cfg, node);
    Cmd::new("nsenter")
        .arg(format!("--net=/run/netns/{}", node.netns))
        .args(["unshare", "--mount", "--propagation", "private"])
        .args(["sh", "-ec", &service_script(), "sh"])
        .arg(&p.pidfile)
        .arg("podman")
        .arg("--root")
        .arg(&p.root)
        .args(["--runroot", RUNROOT, "--tmpdir", TMPDIR])
        .arg("--network-config-dir")
        .arg(&p.networks)
        .args(["system", "service", "--time=0"])
        .arg(format!("tcp://{}:{PODMAN_PORT}", node.address))
        .env("CONTAINERS_CONF", cfg.containers_conf())
}

/// Powers the node on: namespace and cable (left down if the cable is cut), then the
/// Podman service, started and not waited for. Its containers are not started
/// (invariant 5).
#[tracing::instrument(name = "lab.power_on", skip_all, fields(node = %node.name))]
pub(crate) async fn power_on(cfg: &LabConfig, node: &LabNode) -> Result<(), LabError> {
    let p = paths(cfg, node);
    if net::netns_exists(&node.netns) {
        // Already on: a second `set power 1` changes nothing.
        return write_power(cfg, node, true);
    }
    net::create_node(cfg, node, p.cut.exists()).await?;
    let _ = std::fs::remove_file(&p.pidfile);
    service_command(cfg, node).spawn_daemon(&p.log).await?;
    tracing::info!(cut = p.cut.exists(), "powered on; Podman starting");
    write_power(cfg, node, true)
}

/// Powers the node off: SIGKILL to its Podman service, every conmon, every container
/// process and everything else in its namespace, then its cable and namespace are
/// removed. Nothing of the node survives, so an instance it ran cannot write on
/// (invariant 1 relies on this when a fence confirms the node off).
#[tracing::instrument(name = "lab.power_off", skip_all, fields(node = %node.name))]
pub(crate) async fn power_off(cfg: &LabConfig, node: &LabNode) -> Result<usize, LabError> {
    let sel = Selector {
        netns: procs::netns_inode(&node.netns),
        needle: Some(dir_needle(&cfg.node_dir(node))),
    };
    let killed = procs::kill_all(&sel, Duration::from_secs(10)).await?;
    net::delete_node(node).await?;
    tracing::info!(killed, "powered off");
    write_power(cfg, node, false)?;
    Ok(killed)
}

/// Whether the node is powered on, as its power file says (what its BMC reports).
pub fn power_is_on(cfg: &LabConfig, node: &LabNode) -> bool {
    std::fs::read_to_string(paths(cfg, node).power).is_ok_and(|s| s.trim() == "1")
}

fn write_power(cfg: &LabConfig, node: &LabNode, on: bool) -> Result<(), LabError> {
    let path = paths(cfg, node).power;
    std::fs::write(&path, if on { "1\n" } else { "0\n" }).map_err(|e| LabError::io(&path, e))
}

/// Records whether the node's cable is cut (so a power cycle keeps it cut).
pub(crate) fn mark_cut(cfg: &LabConfig, node: &LabNode, cut: bool) -> Result<(), LabError> {
    let path = paths(cfg, node).cut;
    let r = if cut {
        std::fs::write(&path, "cut\n")
    } else {
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    };
    r.map_err(|e| LabError::io(&path, e))
}

/// Whether the node's cable is marked cut.
pub fn is_cut(cfg: &LabConfig, node: &LabNode) -> bool {
    paths(cfg, node).cut.exists()
}

/// A connection to the node's Podman API (plain TCP on the lab's private network).
pub fn connection(node: &LabNode, timeout: Duration) -> Result<Connection, LabError> {
    let endpoint: Endpoint = node
        .runtime
        .parse()
        .map_err(|e| LabError::Config(format!("{}: {e}", node.runtime)))?;
    let mut conn = Connection::new(endpoint);
    conn.insecure = true;
    conn.timeout = timeout;
    Ok(conn)
}

/// Pings the node's Podman once.
pub async fn ping(node: &LabNode, timeout: Duration) -> Result<RuntimeInfo, LabError> {
    let rt = runtime::connect(connection(node, timeout)?)
        .map_err(|e| LabError::Runtime(e.to_string()))?;
    rt.ping()
        .await
        .map_err(|e| LabError::Runtime(e.to_string()))
}

/// Waits until the node's Podman answers, failing early (with the log's tail) when the
/// service exits.
pub(crate) async fn wait_ready(
    cfg: &LabConfig,
    node: &LabNode,
    within: Duration,
) -> Result<RuntimeInfo, LabError> {
    let p = paths(cfg, node);
    let deadline = tokio::time::Instant::now() + within;
    let pid = read_pidfile(&p.pidfile, within).await;
    let fail = |what: &str| LabError::Timeout {
        what: format!("{}'s Podman service ({what})", node.name),
        after: within,
        detail: tail(&p.log, 15),
    };
    let pid = pid.map_err(|_| fail("it never started"))?;
    loop {
        let error = match ping(node, Duration::from_millis(500)).await {
            Ok(info) => return Ok(info),
            Err(e) => e,
        };
        if !procs::alive(pid) {
            return Err(fail("it exited"));
        }
        if tokio::time::Instant::now() >= deadline {
            let mut e = fail("no answer");
            if let LabError::Timeout { detail, .. } = &mut e {
                detail.push_str(&format!("\nlast error: {error}\n{}", diagnose(node)));
            }
            return Err(e);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What the host sees of the node's network, for an error message: its neighbour entry,
/// its cable, and the sockets listening in its namespace.
fn diagnose(node: &LabNode) -> String {
    let run = |program: &str, args: &[&str]| {
        std::process::Command::new(program)
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_else(|e| format!("({program}: {e})"))
    };
    let addr = node.address.to_string();
    let netns = format!("--net=/run/netns/{}", node.netns);
    format!(
        "neighbour: {}\ncable: {}\nlistening: {}",
        run("ip", &["neigh", "show", &addr]),
        run("ip", &["-br", "link", "show", &node.veth]),
        run("nsenter", &[&netns, "ss", "-Hltn"]),
    )
}

/// The Podman service's pid, when it runs.
pub fn service_pid(cfg: &LabConfig, node: &LabNode) -> Option<u32> {
    let text = std::fs::read_to_string(paths(cfg, node).pidfile).ok()?;
    text.trim().parse().ok().filter(|pid| procs::alive(*pid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_service_runs_in_the_node_namespaces_with_private_run_dirs() {
        let cfg = LabConfig::default();
        let node = cfg.node("worker1").unwrap();
        let line = service_command(&cfg, &node).describe();
        assert!(line.starts_with("nsenter --net=/run/netns/qlab-worker1 unshare --mount"));
        assert!(line.contains("--root /var/lib/quorate-lab/nodes/worker1/root"));
        assert!(line.ends_with("system service --time=0 tcp://10.77.0.11:8080"));
        let script = service_script();
        for d in PRIVATE_RUN_DIRS {
            assert!(script.contains(d), "{d}");
        }
        assert!(script.contains("/dev/shm"));
        let conn = connection(&node, Duration::from_secs(1)).unwrap();
        assert!(conn.insecure && conn.validate().is_ok());
    }
}

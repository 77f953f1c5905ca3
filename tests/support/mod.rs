//! Helpers for tests that run real services: a Podman API service, dockerd, a busybox
//! image, TLS certificates, free ports, and the CI-versus-skip rule.
//!
//! Use from a test file with `mod support;`. Every service is a guard: dropping it
//! removes its containers and networks, stops the process group, unmounts what is left
//! under its temp dir and deletes the dir, also when the test panics.
#![allow(dead_code)]

use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

mod docker_svc;
pub mod etcd_svc;
pub mod git_repos;
pub mod ha_cluster;
pub mod ipmi_sim;
pub mod lab;
pub mod lab_run;
mod podman_svc;
pub mod quorate_run;
pub mod redis_lab;
pub mod scenarios;
mod ssh_svc;
pub mod webdriver;

#[allow(unused_imports)]
pub use docker_svc::{DockerService, TlsCerts, docker, make_tls_certs};
#[allow(unused_imports)]
pub use podman_svc::{PodmanService, containers_conf, podman};
#[allow(unused_imports)]
pub use ssh_svc::{SshServer, sshd};

/// The busybox test image's name in every runtime.
pub const TEST_IMAGE: &str = "localhost/quorate-test:latest";

/// Applets linked into the test image.
const APPLETS: &[&str] = &[
    "sh", "sleep", "echo", "cat", "ls", "httpd", "nc", "touch", "test", "true", "false", "mkdir",
    "rm", "wget", "id",
];

/// An environment variable as a number, or `default` (bench settings).
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A service a test needs could not be started: with `CI` set the test fails, otherwise
/// it prints why and the caller skips (returns `None`).
pub fn unavailable<T>(what: &str, why: impl std::fmt::Display) -> Option<T> {
    if std::env::var_os("CI").is_some() {
        panic!("{what} could not be started (CI is set, so this fails): {why}");
    }
    eprintln!("SKIP: {what} could not be started: {why}");
    None
}

/// Serializes tests of one binary that share host-wide resources (bridges, iptables).
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// A free TCP port on 127.0.0.1 (free when asked; good enough for tests).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// True when `program --version` runs.
pub fn have(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Writes a rootfs tar with a statically linked busybox (from the host's `/bin/busybox`,
/// package busybox-static), its applets, and `/www/index.html`. Returns the tar's path.
pub fn busybox_rootfs_tar(dir: &Path) -> Result<PathBuf, String> {
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.exists())
        .ok_or("no /bin/busybox (install busybox-static)")?;
    let root = dir.join("rootfs");
    for d in ["bin", "www", "tmp", "etc", "proc", "sys", "dev"] {
        fs::create_dir_all(root.join(d)).map_err(|e| e.to_string())?;
    }
    fs::copy(busybox, root.join("bin/busybox")).map_err(|e| e.to_string())?;
    for a in APPLETS {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(a))
            .map_err(|e| e.to_string())?;
    }
    fs::write(root.join("www/index.html"), "quorate test\n").map_err(|e| e.to_string())?;
    fs::write(root.join("etc/passwd"), "root:x:0:0:root:/:/bin/sh\n").map_err(|e| e.to_string())?;
    let tar = dir.join("busybox.tar");
    run(Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(&tar)
        .arg("."))?;
    fs::remove_dir_all(&root).map_err(|e| e.to_string())?;
    Ok(tar)
}

/// Runs a command to completion; error with its stderr unless it succeeds.
pub fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{cmd:?}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Spawns a command as the leader of a new process group, output to `log`.
fn spawn_group(cmd: &mut Command, log: &Path) -> Result<Child, String> {
    let out = File::create(log).map_err(|e| e.to_string())?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    cmd.stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
        .map_err(|e| format!("{cmd:?}: {e}"))
}

/// Sends a signal to a whole process group.
fn signal_group(pgid: u32, sig: i32) {
    if let Ok(pgid) = i32::try_from(pgid) {
        // SAFETY: kill(2) with a negative pid signals that process group; no memory is touched.
        unsafe {
            libc::kill(-pgid, sig);
        }
    }
}

/// Stops a process group: SIGTERM, up to `grace` for the leader to exit, then SIGKILL.
fn stop_group(child: &mut Child, grace: Duration) {
    signal_group(child.id(), libc::SIGTERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    signal_group(child.id(), libc::SIGKILL);
    let _ = child.wait();
}

/// SIGKILLs every process whose command line mentions `dir` (a unique temp dir of ours,
/// so only processes this test started, such as daemonized conmon, match).
fn kill_referencing(dir: &Path) {
    let needle = dir.to_string_lossy().into_owned();
    let Ok(procs) = fs::read_dir("/proc") else {
        return;
    };
    let me = std::process::id();
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if u32::try_from(pid).ok() == Some(me) {
            continue;
        }
        let Ok(cmdline) = fs::read(p.path().join("cmdline")) else {
            continue;
        };
        if String::from_utf8_lossy(&cmdline).contains(&needle) {
            // SAFETY: kill(2) on a pid; no memory is touched.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

/// Lazily unmounts every mount point under `dir`, deepest first.
fn unmount_under(dir: &Path) {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let prefix = dir.to_string_lossy().into_owned();
    let mut points: Vec<String> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| p.replace("\\040", " "))
        .filter(|p| p.starts_with(&prefix))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let _ = Command::new("umount").arg("-l").arg(&p).status();
    }
}

/// Answers `GET /_ping` on a Unix socket (both runtimes serve it)?
fn pings(socket: &Path) -> bool {
    let Ok(mut s) = UnixStream::connect(socket) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /_ping HTTP/1.0\r\nHost: d\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    buf.starts_with("HTTP/1.0 200") || buf.starts_with("HTTP/1.1 200")
}

fn wait_ready(
    child: &mut Child,
    socket: &Path,
    within: Duration,
    log: &Path,
) -> Result<(), String> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if pings(socket) {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            let log = fs::read_to_string(log).unwrap_or_default();
            let tail: String = log.lines().rev().take(15).collect::<Vec<_>>().join("\n");
            return Err(format!(
                "exited with {status}; log tail (newest first):\n{tail}"
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!(
        "no answer on {} within {within:?}",
        socket.display()
    ))
}

/// Waits for `child` to end; its exit status and peak resident memory in bytes (VmHWM,
/// read every 5 ms while it runs). Not `ru_maxrss` from `wait4`: a child spawned with
/// vfork counts the high-water mark of this test process, whose memory it shares until it
/// execs, so a test beside it that loaded a large set would make every child look large.
/// A child whose memory grows does so for longer than 5 ms, which the polling sees.
pub fn wait_with_peak(child: &mut Child) -> (std::process::ExitStatus, u64) {
    let status = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    loop {
        if let Some(kib) = fs::read_to_string(&status).ok().and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmHWM:"))?.to_owned();
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        }) {
            peak = peak.max(kib * 1024);
        }
        if let Some(exit) = child.try_wait().unwrap() {
            return (exit, peak);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Calls `f` every 50 ms until it gives a value, failing the test naming `what` if that
/// takes longer than `within`.
pub fn wait_for<T>(what: &str, within: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The `quorate` binary with `RUST_LOG` unset and colours off, for tests that read its
/// output.
pub fn quorate_cmd() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_quorate"));
    cmd.env_remove("RUST_LOG").env("NO_COLOR", "1");
    cmd
}

/// Runs `cmd` to the end with its output captured, failing the test if it takes longer
/// than `limit` (a hang).
pub fn run_bounded(cmd: &mut Command, limit: Duration) -> std::process::Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let start = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("{cmd:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The names of instances 0 to `n - 1` of the bundle `app`, sorted as
/// [`PodmanService::container_names`] gives them.
pub fn app_instances(n: u32) -> Vec<String> {
    let mut v: Vec<String> = (0..n).map(|i| format!("app-{i}")).collect();
    v.sort();
    v
}

/// One spec file: a one-node cluster `cluster` on the test's Podman (with `settings`,
/// more lines of its spec), and a bundle `app` of `replicas` instances that append their
/// host name to `starts` in `data`, then sleep.
pub fn app_specs(
    cluster: &str,
    settings: &str,
    svc: &PodmanService,
    data: &Path,
    replicas: u32,
) -> String {
    format!(
        "apiVersion: quorate.io/v1alpha1
kind: Cluster
metadata: {{name: {cluster}}}
spec:
  nodes: [{{name: n1, runtime: '{url}'}}]
  quorum: {{reconcilerVotes: 0}}
  fencing: {{enabled: false}}
{settings}---
apiVersion: quorate.io/v1alpha1
kind: Bundle
metadata: {{name: app}}
spec:
  image: {TEST_IMAGE}
  replicas: {replicas}
  replicasPerHost: 20
  recovery: restart
  stopTimeout: 1s
  storage: [{{sourceDir: {data}, targetDir: /data}}]
  command: [sh, -c, 'echo $HOSTNAME >> /data/starts; exec sleep 1000']
",
        url = svc.url(),
        data = data.display(),
    )
}

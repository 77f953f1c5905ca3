//! Helpers for tests that run real services: a Podman API service, dockerd, a busybox
//! image, TLS certificates, free ports, and the CI-versus-skip rule.
//!
//! Use from a test file with `mod support;`. Every service is a guard: dropping it
//! removes its containers and networks, stops the process group, unmounts what is left
//! under its temp dir and deletes the dir, also when the test panics.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tempfile::TempDir;

pub mod scenarios;

/// The busybox test image's name in every runtime.
pub const TEST_IMAGE: &str = "localhost/quorate-test:latest";

/// Applets linked into the test image.
const APPLETS: &[&str] = &[
    "sh", "sleep", "echo", "cat", "ls", "httpd", "nc", "touch", "test", "true", "false", "mkdir",
    "rm", "wget", "id",
];

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

/// The repo's containers.conf for Podman services.
pub fn containers_conf() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("lab/containers.conf")
}

/// A `podman system service` with its own storage, run dir, tmp dir and network config
/// dir under a temp dir, configured by the repo's `lab/containers.conf`.
pub struct PodmanService {
    child: Child,
    /// The API socket.
    pub socket: PathBuf,
    dir: TempDir,
}

impl PodmanService {
    /// Starts the service and waits until it answers.
    pub fn start() -> Result<PodmanService, String> {
        if !have("podman") {
            return Err("podman is not installed".into());
        }
        let dir = tempfile::Builder::new()
            .prefix("quorate-podman-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let socket = dir.path().join("podman.sock");
        let log = dir.path().join("service.log");
        let mut cmd = Command::new("podman");
        Self::globals(&mut cmd, dir.path());
        cmd.args(["system", "service", "--time=0"])
            .arg(format!("unix://{}", socket.display()));
        let mut child = spawn_group(&mut cmd, &log)?;
        if let Err(e) = wait_ready(&mut child, &socket, Duration::from_secs(30), &log) {
            stop_group(&mut child, Duration::from_secs(2));
            unmount_under(dir.path());
            return Err(format!("podman system service: {e}"));
        }
        Ok(PodmanService { child, socket, dir })
    }

    fn globals(cmd: &mut Command, dir: &Path) {
        cmd.env("CONTAINERS_CONF", containers_conf())
            .arg("--root")
            .arg(dir.join("root"))
            .arg("--runroot")
            .arg(dir.join("run"))
            .arg("--tmpdir")
            .arg(dir.join("tmp"))
            .arg("--network-config-dir")
            .arg(dir.join("networks"));
    }

    /// A `podman` CLI command on this service's storage (for test setup only).
    pub fn cli<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(&self, args: I) -> Command {
        let mut cmd = Command::new("podman");
        Self::globals(&mut cmd, self.dir.path());
        cmd.args(args);
        cmd
    }

    /// The endpoint URL for quorate.
    pub fn url(&self) -> String {
        format!("podman+unix://{}", self.socket.display())
    }

    /// The temp dir (for storage mappings and other files of the test).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Imports the busybox image as [`TEST_IMAGE`].
    pub fn import_test_image(&self) -> Result<(), String> {
        let tar = busybox_rootfs_tar(self.dir.path())?;
        run(&mut self.cli(["import".as_ref(), tar.as_os_str(), TEST_IMAGE.as_ref()])).map(|_| ())
    }
}

impl Drop for PodmanService {
    fn drop(&mut self) {
        let _ = self.cli(["rm", "-af", "-t", "0"]).output();
        let _ = self.cli(["network", "prune", "-f"]).output();
        stop_group(&mut self.child, Duration::from_secs(5));
        // conmon of exec sessions lingers (--exit-delay 300) outside our process group.
        kill_referencing(self.dir.path());
        unmount_under(self.dir.path());
    }
}

/// Starts a Podman service with the test image, or skips/fails per [`unavailable`].
pub fn podman() -> Option<PodmanService> {
    let svc = match PodmanService::start() {
        Ok(s) => s,
        Err(e) => return unavailable("podman service", e),
    };
    match svc.import_test_image() {
        Ok(()) => Some(svc),
        Err(e) => unavailable("podman test image", e),
    }
}

/// Paths of a throwaway CA with a server certificate for 127.0.0.1 and a client
/// certificate, made with the `openssl` command.
pub struct TlsCerts {
    /// CA certificate.
    pub ca: PathBuf,
    /// Server certificate and key.
    pub server_cert: PathBuf,
    /// Server key.
    pub server_key: PathBuf,
    /// Client certificate.
    pub client_cert: PathBuf,
    /// Client key.
    pub client_key: PathBuf,
}

/// Makes a CA, a server certificate (IP 127.0.0.1) and a client certificate in `dir`.
pub fn make_tls_certs(dir: &Path) -> Result<TlsCerts, String> {
    let p = |n: &str| dir.join(n);
    let key = |path: PathBuf| {
        run(Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
            ])
            .arg(path))
    };
    key(p("ca-key.pem"))?;
    run(Command::new("openssl")
        .args(["req", "-x509", "-new", "-key"])
        .arg(p("ca-key.pem"))
        .args(["-days", "2", "-subj", "/CN=quorate test CA", "-out"])
        .arg(p("ca.pem")))?;
    for (who, ext) in [
        (
            "server",
            "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        ),
        ("client", "extendedKeyUsage=clientAuth\n"),
    ] {
        key(p(&format!("{who}-key.pem")))?;
        run(Command::new("openssl")
            .args(["req", "-new", "-key"])
            .arg(p(&format!("{who}-key.pem")))
            .args(["-subj", &format!("/CN=quorate test {who}"), "-out"])
            .arg(p(&format!("{who}.csr"))))?;
        fs::write(p(&format!("{who}.ext")), ext).map_err(|e| e.to_string())?;
        run(Command::new("openssl")
            .args(["x509", "-req", "-days", "2", "-in"])
            .arg(p(&format!("{who}.csr")))
            .arg("-CA")
            .arg(p("ca.pem"))
            .arg("-CAkey")
            .arg(p("ca-key.pem"))
            .arg("-CAcreateserial")
            .arg("-extfile")
            .arg(p(&format!("{who}.ext")))
            .arg("-out")
            .arg(p(&format!("{who}-cert.pem"))))?;
    }
    Ok(TlsCerts {
        ca: p("ca.pem"),
        server_cert: p("server-cert.pem"),
        server_key: p("server-key.pem"),
        client_cert: p("client-cert.pem"),
        client_key: p("client-key.pem"),
    })
}

/// A `dockerd` with its own data root, exec root, pidfile and socket, plus a TLS
/// listener on 127.0.0.1 (client certificates required). Only one runs at a time on the
/// machine (two would fight over docker0 and iptables): it holds a lock file while up.
pub struct DockerService {
    child: Child,
    /// The API socket.
    pub socket: PathBuf,
    /// TLS port on 127.0.0.1.
    pub tls_port: u16,
    /// Certificates for the TLS listener.
    pub certs: TlsCerts,
    dir: TempDir,
    _lock: File,
}

/// The Docker CLI from the docker.io package (for test setup only).
const DOCKER_CLI: &str = "/usr/bin/docker";

impl DockerService {
    /// Starts dockerd and waits until it answers.
    pub fn start() -> Result<DockerService, String> {
        if !have("dockerd") {
            return Err("dockerd is not installed".into());
        }
        let lock = File::create(std::env::temp_dir().join("quorate-dockerd.lock"))
            .map_err(|e| e.to_string())?;
        lock.lock().map_err(|e| e.to_string())?;
        let dir = tempfile::Builder::new()
            .prefix("qd-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let d = dir.path();
        let certs = make_tls_certs(d)?;
        let socket = d.join("docker.sock");
        let tls_port = free_port();
        let log = d.join("dockerd.log");
        let mut cmd = Command::new("dockerd");
        cmd.arg("--host")
            .arg(format!("unix://{}", socket.display()))
            .arg("--host")
            .arg(format!("tcp://127.0.0.1:{tls_port}"))
            .arg("--tlsverify")
            .arg("--tlscacert")
            .arg(&certs.ca)
            .arg("--tlscert")
            .arg(&certs.server_cert)
            .arg("--tlskey")
            .arg(&certs.server_key)
            .arg("--data-root")
            .arg(d.join("data"))
            .arg("--exec-root")
            .arg(d.join("exec"))
            .arg("--pidfile")
            .arg(d.join("docker.pid"));
        let mut child = spawn_group(&mut cmd, &log)?;
        if let Err(e) = wait_ready(&mut child, &socket, Duration::from_secs(60), &log) {
            stop_group(&mut child, Duration::from_secs(10));
            unmount_under(d);
            return Err(format!("dockerd: {e}"));
        }
        Ok(DockerService {
            child,
            socket,
            tls_port,
            certs,
            dir,
            _lock: lock,
        })
    }

    /// A `docker` CLI command against this daemon (for test setup only).
    pub fn cli<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(&self, args: I) -> Command {
        let mut cmd = Command::new(DOCKER_CLI);
        cmd.env_remove("DOCKER_HOST")
            .arg("--host")
            .arg(format!("unix://{}", self.socket.display()))
            .args(args);
        cmd
    }

    /// The endpoint URL for quorate (Unix socket).
    pub fn url(&self) -> String {
        format!("docker+unix://{}", self.socket.display())
    }

    /// The temp dir.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Imports the busybox image as [`TEST_IMAGE`].
    pub fn import_test_image(&self) -> Result<(), String> {
        let tar = busybox_rootfs_tar(self.dir.path())?;
        run(&mut self.cli(["import".as_ref(), tar.as_os_str(), TEST_IMAGE.as_ref()])).map(|_| ())
    }
}

impl Drop for DockerService {
    fn drop(&mut self) {
        if let Ok(ids) = run(&mut self.cli(["ps", "-aq"])) {
            let ids: Vec<&str> = ids.split_whitespace().collect();
            if !ids.is_empty() {
                let _ = self.cli(["rm", "-f"]).args(ids).output();
            }
        }
        let _ = self.cli(["network", "prune", "-f"]).output();
        stop_group(&mut self.child, Duration::from_secs(20));
        unmount_under(self.dir.path());
    }
}

/// Starts dockerd with the test image, or skips/fails per [`unavailable`].
pub fn docker() -> Option<DockerService> {
    let svc = match DockerService::start() {
        Ok(s) => s,
        Err(e) => return unavailable("dockerd", e),
    };
    match svc.import_test_image() {
        Ok(()) => Some(svc),
        Err(e) => unavailable("docker test image", e),
    }
}

/// An OpenSSH server on 127.0.0.1 for tunnel tests: its own host key, config and
/// authorized key (for root), and a known_hosts file pinning its host key.
pub struct SshServer {
    child: Child,
    /// Port on 127.0.0.1.
    pub port: u16,
    /// Private key the server accepts.
    pub identity: PathBuf,
    /// known_hosts with the server's host key.
    pub known_hosts: PathBuf,
    dir: TempDir,
}

impl SshServer {
    /// Starts `sshd -D` and waits until it accepts connections.
    pub fn start() -> Result<SshServer, String> {
        let sshd = Path::new("/usr/sbin/sshd");
        if !sshd.exists() {
            return Err("/usr/sbin/sshd is missing (install openssh-server)".into());
        }
        if !have("ssh-keygen") && !Path::new("/usr/bin/ssh-keygen").exists() {
            return Err("ssh-keygen is missing (install openssh-client)".into());
        }
        // sshd insists on its privilege separation directory.
        fs::create_dir_all("/run/sshd").map_err(|e| format!("/run/sshd: {e}"))?;
        let dir = tempfile::Builder::new()
            .prefix("quorate-sshd-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let d = dir.path();
        for key in ["host_key", "client_key"] {
            run(Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", key, "-f"])
                .arg(d.join(key)))?;
        }
        fs::copy(d.join("client_key.pub"), d.join("authorized_keys")).map_err(|e| e.to_string())?;
        let port = free_port();
        let host_pub = fs::read_to_string(d.join("host_key.pub")).map_err(|e| e.to_string())?;
        let known_hosts = d.join("known_hosts");
        fs::write(&known_hosts, format!("[127.0.0.1]:{port} {host_pub}"))
            .map_err(|e| e.to_string())?;
        let config = d.join("sshd_config");
        fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\nAuthorizedKeysFile {ak}\n\
                 PidFile {pid}\nPermitRootLogin prohibit-password\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n\
                 AllowStreamLocalForwarding yes\nX11Forwarding no\n",
                hk = d.join("host_key").display(),
                ak = d.join("authorized_keys").display(),
                pid = d.join("sshd.pid").display(),
            ),
        )
        .map_err(|e| e.to_string())?;
        let log = d.join("sshd.log");
        let mut cmd = Command::new(sshd);
        cmd.arg("-D").arg("-e").arg("-f").arg(&config);
        let mut child = spawn_group(&mut cmd, &log)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            let exited = child.try_wait().ok().flatten();
            if exited.is_some() || Instant::now() > deadline {
                stop_group(&mut child, Duration::from_secs(1));
                let log = fs::read_to_string(&log).unwrap_or_default();
                return Err(format!("sshd did not start ({exited:?}): {log}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(SshServer {
            child,
            port,
            identity: d.join("client_key"),
            known_hosts,
            dir,
        })
    }

    /// The temp dir.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SshServer {
    fn drop(&mut self) {
        stop_group(&mut self.child, Duration::from_secs(2));
    }
}

/// Starts an SSH server, or skips/fails per [`unavailable`].
pub fn sshd() -> Option<SshServer> {
    match SshServer::start() {
        Ok(s) => Some(s),
        Err(e) => unavailable("sshd", e),
    }
}

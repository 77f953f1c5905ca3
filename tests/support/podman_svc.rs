//! A Podman API service for tests.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use tempfile::TempDir;

use super::{
    TEST_IMAGE, busybox_rootfs_tar, have, kill_referencing, run, spawn_group, stop_group,
    unavailable, unmount_under, wait_ready,
};

/// The repo's containers.conf for Podman services.
pub fn containers_conf() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("lab/containers.conf")
}

/// Writes the repo's default network (`lab/quorate-network.json`: bridge `quorate0`,
/// 10.207.0.0/24, apart from the host's `podman0`) into a network config dir.
pub fn write_default_network(networks: &Path) -> Result<(), String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("lab/quorate-network.json");
    std::fs::create_dir_all(networks).map_err(|e| e.to_string())?;
    std::fs::copy(&src, networks.join("quorate.json"))
        .map(|_| ())
        .map_err(|e| format!("{}: {e}", src.display()))
}

/// A `podman system service` with its own storage, run dir, tmp dir and network config
/// dir under a temp dir, configured by the repo's `lab/containers.conf`.
pub struct PodmanService {
    child: Child,
    /// The API socket.
    pub socket: PathBuf,
    /// More services on the same storage (see [`PodmanService::serve_tcp`]).
    extra: Vec<Child>,
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
        write_default_network(&dir.path().join("networks"))?;
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
        Ok(PodmanService {
            child,
            socket,
            extra: Vec::new(),
            dir,
        })
    }

    /// Also serves the same storage over plain TCP on 127.0.0.1 (what an `insecure`
    /// node looks like); returns the port.
    pub fn serve_tcp(&mut self) -> Result<u16, String> {
        let port = super::free_port();
        let log = self.dir.path().join("service-tcp.log");
        let mut cmd = Command::new("podman");
        Self::globals(&mut cmd, self.dir.path());
        cmd.args(["system", "service", "--time=0"])
            .arg(format!("tcp://127.0.0.1:{port}"));
        let mut child = spawn_group(&mut cmd, &log)?;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if std::time::Instant::now() > deadline || child.try_wait().ok().flatten().is_some() {
                stop_group(&mut child, Duration::from_secs(2));
                return Err(format!("podman service on tcp port {port} did not start"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.extra.push(child);
        Ok(port)
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

    /// Names of the running (or all) containers of this service, sorted.
    pub fn container_names(&self, all: bool) -> Vec<String> {
        let mut args = vec!["ps", "--format", "{{.Names}}"];
        if all {
            args.push("-a");
        }
        let out = super::run(&mut self.cli(args)).unwrap_or_default();
        let mut names: Vec<String> = out.lines().map(str::to_owned).collect();
        names.sort();
        names
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
        for child in &mut self.extra {
            stop_group(child, Duration::from_secs(5));
        }
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

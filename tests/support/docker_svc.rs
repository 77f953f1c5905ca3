//! A dockerd (with a TLS listener) for tests.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use tempfile::TempDir;

use super::{
    TEST_IMAGE, busybox_rootfs_tar, free_port, have, run, spawn_group, stop_group, unavailable,
    unmount_under, wait_ready,
};

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
            .arg(d.join("docker.pid"))
            // The project's own subnets, apart from a host dockerd's 172.17.0.0/16 and
            // Podman's 10.88.0.0/16 (and the Podman services' 10.207.0.0/24).
            .args(["--bip", "10.209.0.1/24"])
            .args(["--default-address-pool", "base=10.210.0.0/16,size=24"]);
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

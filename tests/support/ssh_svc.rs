//! An OpenSSH server for SSH tunnel tests.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::{free_port, have, run, spawn_group, stop_group, unavailable};

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

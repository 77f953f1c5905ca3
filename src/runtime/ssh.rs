//! SSH access to a node's runtime socket: an OpenSSH client (`ssh`) forwarding a private
//! local Unix socket to the runtime's socket on the node (`-L local.sock:remote.sock`).
//!
//! Authentication is SSH's: host keys are checked against `known_hosts` (BatchMode, no
//! prompts), and the user authenticates with the configured identity file or the agent.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};
use tokio::sync::Mutex;

use super::RuntimeError;
use super::socket_dir::SocketDir;

/// Where and how to reach a node over SSH.
#[derive(Debug, Clone)]
pub(crate) struct SshTarget {
    pub user: Option<String>,
    pub host: String,
    pub port: u16,
    pub identity: Option<PathBuf>,
    pub known_hosts: Option<PathBuf>,
    /// The endpoint as text, for errors.
    pub endpoint: String,
}

impl SshTarget {
    fn base_command(&self) -> Command {
        let mut c = Command::new("ssh");
        c.args([
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=10",
            "-o",
            "LogLevel=ERROR",
        ]);
        c.args(["-o", "StrictHostKeyChecking=yes"]);
        if let Some(kh) = &self.known_hosts {
            c.arg("-o")
                .arg(format!("UserKnownHostsFile={}", kh.display()));
        }
        c.args(["-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3"]);
        if let Some(id) = &self.identity {
            c.arg("-i").arg(id).args(["-o", "IdentitiesOnly=yes"]);
        }
        c.arg("-p").arg(self.port.to_string());
        c.stdin(Stdio::null()).kill_on_drop(true);
        c
    }

    fn destination(&self) -> String {
        match &self.user {
            Some(u) => format!("{u}@{}", self.host),
            None => self.host.clone(),
        }
    }

    fn unreachable(&self, reason: impl Into<String>) -> RuntimeError {
        RuntimeError::Unreachable {
            endpoint: self.endpoint.clone(),
            reason: reason.into(),
        }
    }

    /// Runs `mkdir -p` for the given directories on the node.
    pub async fn mkdir_p(&self, dirs: &[PathBuf]) -> Result<(), RuntimeError> {
        if dirs.is_empty() {
            return Ok(());
        }
        let mut remote = String::from("mkdir -p --");
        for d in dirs {
            remote.push(' ');
            remote.push_str(&shell_quote(&d.to_string_lossy()));
        }
        let mut child = self
            .base_command()
            .arg("--")
            .arg(self.destination())
            .arg(remote)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| self.unreachable(format!("cannot run ssh: {e}")))?;
        // What the node prints is read up to a bound: the caller bounds the time.
        let msg = match child.stderr.take() {
            Some(stderr) => read_bounded(stderr).await,
            None => String::new(),
        };
        let status = child
            .wait()
            .await
            .map_err(|e| self.unreachable(format!("ssh: {e}")))?;
        if status.success() {
            return Ok(());
        }
        match (status.code(), dirs.first()) {
            // ssh itself exits 255 when it cannot connect or authenticate.
            (Some(255), _) | (None, _) | (_, None) => Err(self.unreachable(msg)),
            (_, Some(d)) => Err(RuntimeError::Storage {
                path: d.clone(),
                reason: msg,
            }),
        }
    }
}

/// The most of ssh's error output that is kept (the rest is not read).
const MAX_SSH_STDERR: u64 = 16 * 1024;

/// Reads up to [`MAX_SSH_STDERR`] bytes of `from`, as trimmed text.
async fn read_bounded(from: impl tokio::io::AsyncRead + Unpin) -> String {
    let mut bytes = Vec::new();
    let _ = from.take(MAX_SSH_STDERR).read_to_end(&mut bytes).await;
    String::from_utf8_lossy(&bytes).trim().to_string()
}

/// Quotes `s` as one word for a POSIX shell.
pub(crate) fn shell_quote(s: &str) -> String {
    // `shlex` refuses only a NUL byte, which no path or argument can hold; such a
    // string becomes an empty word rather than a command.
    shlex::try_quote(s)
        .map(|q| q.into_owned())
        .unwrap_or_else(|_| "''".into())
}

/// A forwarded socket that is (re)started on demand.
pub(crate) struct SshTunnel {
    target: SshTarget,
    remote_socket: PathBuf,
    dir: SocketDir,
    child: Mutex<Option<Child>>,
}

impl SshTunnel {
    /// Prepares a tunnel; nothing is started until [`SshTunnel::ensure`].
    pub fn new(target: SshTarget, remote_socket: PathBuf) -> Result<SshTunnel, RuntimeError> {
        // The directory is private (0700) to this user: only we can use the socket.
        let dir = SocketDir::new("ssh-").map_err(|e| RuntimeError::Unreachable {
            endpoint: target.endpoint.clone(),
            reason: format!("cannot create a private dir for the ssh tunnel: {e}"),
        })?;
        Ok(SshTunnel {
            target,
            remote_socket,
            dir,
            child: Mutex::new(None),
        })
    }

    /// The local end of the tunnel.
    pub fn local_socket(&self) -> PathBuf {
        self.dir.path().join("runtime.sock")
    }

    /// Makes sure the tunnel process runs and its socket exists; waits up to `timeout`.
    pub async fn ensure(&self, timeout: Duration) -> Result<(), RuntimeError> {
        let mut guard = self.child.lock().await;
        if let Some(child) = guard.as_mut()
            && matches!(child.try_wait(), Ok(None))
            && self.local_socket().exists()
        {
            return Ok(());
        }
        *guard = None;
        let local = self.local_socket();
        let _ = std::fs::remove_file(&local);
        let forward = format!("{}:{}", local.display(), self.remote_socket.display());
        let mut child = self
            .target
            .base_command()
            .args(["-N", "-o", "ExitOnForwardFailure=yes"])
            .args(["-o", "StreamLocalBindUnlink=yes"])
            .arg("-L")
            .arg(forward)
            .arg("--")
            .arg(self.target.destination())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| self.target.unreachable(format!("cannot run ssh: {e}")))?;
        let waited = tokio::time::timeout(timeout, wait_for_socket(&mut child, &local)).await;
        match waited {
            Ok(Ok(())) => {
                *guard = Some(child);
                Ok(())
            }
            Ok(Err(stderr)) => Err(self.target.unreachable(format!("ssh tunnel: {stderr}"))),
            Err(_) => Err(RuntimeError::Timeout {
                endpoint: self.target.endpoint.clone(),
                op: "ssh tunnel",
                after: timeout,
            }),
        }
    }
}

/// Waits until `sock` appears, or returns ssh's stderr if it exits first.
async fn wait_for_socket(child: &mut Child, sock: &Path) -> Result<(), String> {
    loop {
        if sock.exists() {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            let err = match child.stderr.take() {
                Some(e) => read_bounded(e).await,
                None => String::new(),
            };
            return Err(format!("ssh exited ({status}): {err}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn what_ssh_prints_is_read_up_to_the_bound() {
        // An endless stream: without the bound this never returns.
        let text = read_bounded(tokio::io::repeat(b'x')).await;
        assert_eq!(text.len() as u64, MAX_SSH_STDERR);
        assert_eq!(read_bounded(&b"  refused\n"[..]).await, "refused");
    }

    #[test]
    fn quotes_for_the_remote_shell() {
        // What a POSIX shell reads back is the string itself, one word.
        for word in ["/srv/a b", "it's", "$(rm -rf /)", "a\"b\\c`d`", "", "x\ny"] {
            let quoted = shell_quote(word);
            let out = std::process::Command::new("sh")
                .args(["-c", &format!("printf %s {quoted}")])
                .output()
                .unwrap();
            assert_eq!(String::from_utf8(out.stdout).unwrap(), word, "{quoted}");
        }
        assert_eq!(shell_quote("a\0b"), "''");
    }
}

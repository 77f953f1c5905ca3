//! Running the programs the lab is made of (`ip`, `nsenter`, `podman`, `ipmi_sim`, `git`):
//! every call checked, every failure naming the command and its stderr.

use std::ffi::{OsStr, OsString};
use std::fs::OpenOptions;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use super::LabError;

/// A command line, kept as words so it can be shown in errors.
#[derive(Debug, Clone)]
pub(crate) struct Cmd {
    words: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
}

impl Cmd {
    /// `program` with no arguments yet.
    pub fn new(program: impl AsRef<OsStr>) -> Cmd {
        Cmd {
            words: vec![program.as_ref().to_owned()],
            env: Vec::new(),
        }
    }

    /// Adds one argument.
    pub fn arg(mut self, a: impl AsRef<OsStr>) -> Cmd {
        self.words.push(a.as_ref().to_owned());
        self
    }

    /// Adds arguments.
    pub fn args<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(mut self, args: I) -> Cmd {
        self.words
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets an environment variable for the command.
    pub fn env(mut self, k: impl AsRef<OsStr>, v: impl AsRef<OsStr>) -> Cmd {
        self.env
            .push((k.as_ref().to_owned(), v.as_ref().to_owned()));
        self
    }

    /// The command line as shown in errors.
    pub fn describe(&self) -> String {
        self.words
            .iter()
            .map(|w| w.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn command(&self) -> Command {
        let mut c = Command::new(&self.words[0]);
        c.args(&self.words[1..]);
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c.stdin(Stdio::null()).kill_on_drop(true);
        c
    }

    /// Runs to completion; its stdout on success, else [`LabError::Command`].
    pub async fn run(&self) -> Result<String, LabError> {
        self.run_within(Duration::from_secs(120)).await
    }

    /// Runs to completion within `limit`.
    pub async fn run_within(&self, limit: Duration) -> Result<String, LabError> {
        let out = tokio::time::timeout(limit, self.command().output())
            .await
            .map_err(|_| LabError::Timeout {
                what: format!("`{}`", self.describe()),
                after: limit,
                detail: String::new(),
            })?
            .map_err(|e| LabError::Spawn {
                command: self.describe(),
                reason: e.to_string(),
            })?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(LabError::Command {
                command: self.describe(),
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            })
        }
    }

    /// Like [`Cmd::run`], but a failure whose stderr contains one of `benign` (such as
    /// "Cannot find device" when deleting) counts as done: `Ok(false)`.
    pub async fn run_unless(&self, benign: &[&str]) -> Result<bool, LabError> {
        match self.run().await {
            Ok(_) => Ok(true),
            Err(LabError::Command { stderr, .. }) if benign.iter().any(|b| stderr.contains(b)) => {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Starts the command as a daemon: `setsid --fork` puts it in a new session and lets
    /// it be reparented away from this process, so it outlives `lab up` (or the chassis
    /// script that started it) and never becomes a zombie of ours. Its output is appended
    /// to `log`. Returns once it is started; the daemon records its own pid.
    pub async fn spawn_daemon(&self, log: &Path) -> Result<(), LabError> {
        let open = || {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .map_err(|e| LabError::io(log, e))
        };
        let (out, err) = (open()?, open()?);
        let mut c = Command::new("setsid");
        c.arg("--fork").args(&self.words);
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c.stdin(Stdio::null()).stdout(out).stderr(err);
        let status = c.status().await.map_err(|e| LabError::Spawn {
            command: format!("setsid --fork {}", self.describe()),
            reason: e.to_string(),
        })?;
        if status.success() {
            Ok(())
        } else {
            Err(LabError::Command {
                command: format!("setsid --fork {}", self.describe()),
                status: status.to_string(),
                stderr: tail(log, 10),
            })
        }
    }
}

/// The last `lines` lines of a log file (empty when unreadable).
pub(crate) fn tail(log: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Reads a pid file written by a daemon's wrapper, waiting up to `within` for it.
pub(crate) async fn read_pidfile(path: &Path, within: Duration) -> Result<u32, LabError> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Ok(text) = tokio::fs::read_to_string(path).await
            && let Ok(pid) = text.trim().parse::<u32>()
        {
            return Ok(pid);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(LabError::Timeout {
                what: format!("pid file {}", path.display()),
                after: within,
                detail: String::new(),
            });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn failures_name_the_command_and_its_stderr() {
        let e = Cmd::new("sh")
            .args(["-c", "echo broken >&2; exit 3"])
            .run()
            .await
            .unwrap_err();
        let text = e.to_string();
        assert!(text.contains("sh -c echo broken >&2; exit 3"), "{text}");
        assert!(text.contains("broken"), "{text}");
        let out = Cmd::new("sh")
            .args(["-c", "echo \"$X\""])
            .env("X", "ok")
            .run()
            .await
            .unwrap();
        assert_eq!(out, "ok\n");
        assert!(
            !Cmd::new("sh")
                .args(["-c", "echo 'Cannot find device' >&2; exit 1"])
                .run_unless(&["Cannot find device"])
                .await
                .unwrap()
        );
        let missing = Cmd::new("/nonexistent/program").run().await.unwrap_err();
        assert!(matches!(missing, LabError::Spawn { .. }), "{missing}");
    }

    #[tokio::test]
    async fn daemons_write_their_pid_and_log() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let log = dir.path().join("log");
        Cmd::new("sh")
            .args([
                "-c",
                "echo $$ > \"$0\"; echo started",
                &pidfile.to_string_lossy(),
            ])
            .spawn_daemon(&log)
            .await
            .unwrap();
        let pid = read_pidfile(&pidfile, Duration::from_secs(5))
            .await
            .unwrap();
        assert!(pid > 1);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !tail(&log, 1).contains("started") && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(tail(&log, 1), "started");
    }
}

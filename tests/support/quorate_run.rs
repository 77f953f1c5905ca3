//! `quorate run` as a separate process: started on a repository and a state directory,
//! found at the address it prints, asked for its status, killed on drop.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

/// A running `quorate run`.
pub struct QuorateRun {
    /// The process.
    pub child: Child,
    /// `host:port` of its HTTP server.
    pub addr: String,
    /// Its log (standard error).
    pub log: PathBuf,
}

impl QuorateRun {
    /// Starts `quorate run` on branch `main`, specs under `specs/`, listening on a free
    /// port, with `extra` flags; waits for its "listening on ADDR" line.
    pub fn start(repo: &Path, state: &Path, log: &Path, extra: &[&OsStr]) -> QuorateRun {
        let mut child = Command::new(env!("CARGO_BIN_EXE_quorate"))
            .args(["run", "--repo"])
            .arg(repo)
            .args(["--branch", "main", "--path", "specs", "--state-dir"])
            .arg(state)
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .env("RUST_LOG", "quorate=info")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| {
                let text = std::fs::read_to_string(log).unwrap_or_default();
                panic!("no address in {line:?}: {text}")
            })
            .to_owned();
        QuorateRun {
            child,
            addr,
            log: log.to_owned(),
        }
    }

    /// `http://host:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `quorate status --server … --format json` (`Null` when it does not answer).
    pub fn status(&self) -> Value {
        let out = Command::new(env!("CARGO_BIN_EXE_quorate"))
            .args(["status", "--server", &self.url(), "--format", "json"])
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    }
}

impl Drop for QuorateRun {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

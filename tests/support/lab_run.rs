//! `quorate run` against a test lab, and the lab database as the reconciler and the
//! network see it; shared by the failover test and the failover benchmark.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::lab::{TestLab, quorate};

/// `quorate run` against the lab's repository.
pub struct Reconciler {
    /// The process.
    pub child: Child,
    /// `http://addr` of its server.
    pub url: String,
}

impl Reconciler {
    /// Starts it on the lab's repository and state directory (log beside the lab dir).
    pub fn start(t: &TestLab) -> Reconciler {
        let cfg = t.lab.config();
        let mut child = Command::new(env!("CARGO_BIN_EXE_quorate"))
            .args(["run", "--repo"])
            .arg(cfg.repo_bare())
            .args(["--branch", "main", "--path", "specs", "--state-dir"])
            .arg(cfg.reconciler_state_dir())
            .args(["--listen", "127.0.0.1:0"])
            .env("RUST_LOG", "quorate=info")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(t.dir.with_extension("run.log")).unwrap())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap()
            .to_owned();
        Reconciler {
            child,
            url: format!("http://{addr}"),
        }
    }

    /// `quorate status --server … --format json`.
    pub fn status(&self) -> Value {
        let out = quorate(&["status", "--server", &self.url, "--format", "json"]);
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    }
}

impl Drop for Reconciler {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where `db-0` runs, by the reconciler's status.
pub fn db_node(status: &Value) -> Option<String> {
    status["nodes"].as_array()?.iter().find_map(|n| {
        let runs = n["instances"]
            .as_array()?
            .iter()
            .any(|i| i[0] == "db-0" && i[1] == "running");
        runs.then(|| n["name"].as_str().unwrap_or("").to_owned())
    })
}

/// The database's answer on `node`'s address.
pub fn db_answers(t: &TestLab, node: &str) -> bool {
    let Ok(n) = t.lab.node(node) else {
        return false;
    };
    let addr = SocketAddr::from((n.address, 5432));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(300)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let _ = s.write_all(b"GET / HTTP/1.0\r\n\r\n");
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    buf.contains("lab db")
}

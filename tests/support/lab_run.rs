//! `quorate run` against a test lab, and the lab database as the reconciler and the
//! network see it; shared by the failover test and the failover benchmark.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::Value;

use super::lab::TestLab;
use super::quorate_run::QuorateRun;

/// `quorate run` against the lab's repository and state directory (its log beside the
/// lab directory).
pub fn reconciler(t: &TestLab) -> QuorateRun {
    let cfg = t.lab.config();
    QuorateRun::start(
        &cfg.repo_bare(),
        &cfg.reconciler_state_dir(),
        &t.dir.with_extension("run.log"),
        &[],
    )
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

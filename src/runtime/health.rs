//! An instance's monitor: is the container running, and does its check pass in time?
//!
//! Exec checks run inside the container through the runtime; TCP and HTTP checks connect
//! from this machine to an address the caller gives (the instance's address or a port
//! published on the node). Scheduling the checks is the caller's job.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{ContainerState, ContainerStatus, Runtime};

/// What a monitor checks beyond "the container is running".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthCheck {
    /// Run a command in the container; exit code 0 passes.
    Exec(Vec<String>),
    /// A TCP connection to this address is accepted.
    Tcp(SocketAddr),
    /// `GET path` on this address answers with a 2xx or 3xx status.
    Http {
        /// Address to connect to.
        addr: SocketAddr,
        /// Request path, such as `/healthz`.
        path: String,
    },
}

/// A bundle's monitor operation, as far as one run of it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Monitor {
    /// The optional check.
    pub check: Option<HealthCheck>,
    /// Bound on the check (and on observing the container).
    pub timeout: Duration,
}

/// Outcome of one monitor run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthResult {
    /// Running, and the check (if any) passed.
    Healthy,
    /// The instance failed: not running, exited, or the check failed or timed out.
    Failed {
        /// What was seen.
        reason: String,
    },
    /// The runtime could not be asked: says nothing about the instance.
    Unobservable {
        /// Why.
        reason: String,
    },
}

/// Observed failure history of one instance: what the planner's migration threshold and
/// failure timeout are applied to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FailureRecord {
    /// Failures seen since the record was last cleared.
    pub fail_count: u32,
    /// The last failure: unix seconds and reason.
    pub last_failure: Option<(i64, String)>,
}

impl FailureRecord {
    /// Adds one monitor result seen at `now` (unix seconds). Only failures count;
    /// an unobservable runtime is not a failure of the instance.
    pub fn record(&mut self, result: &HealthResult, now: i64) {
        if let HealthResult::Failed { reason } = result {
            self.fail_count = self.fail_count.saturating_add(1);
            self.last_failure = Some((now, reason.clone()));
        }
    }
}

/// Runs the monitors of instances on one node: one list of the node's containers (within
/// the shortest of their timeouts) says which run, then each running one's check runs
/// within its own timeout. One list per node instead of an inspect per instance, as the
/// kubelet relists a node's containers instead of asking after each: at 10 instances a
/// node that is a tenth of the calls. A list that fails or times out says nothing about
/// any instance ([`HealthResult::Unobservable`]).
pub async fn check<R: Runtime + ?Sized>(rt: &R, due: &[(&str, &Monitor)]) -> Vec<HealthResult> {
    let Some(within) = due.iter().map(|(_, m)| m.timeout).min() else {
        return Vec::new();
    };
    let unobservable = |reason: String| vec![HealthResult::Unobservable { reason }; due.len()];
    let listed = match tokio::time::timeout(within, rt.list()).await {
        Ok(Ok(listed)) => listed,
        Ok(Err(e)) => return unobservable(e.to_string()),
        Err(_) => return unobservable(format!("list timed out after {within:?}")),
    };
    let checks = due.iter().map(|(name, monitor)| {
        let state = listed.iter().find(|c| c.name == *name);
        async move {
            if let Some(failed) = judge(rt, state) {
                return failed;
            }
            let Some(check) = &monitor.check else {
                return HealthResult::Healthy;
            };
            match tokio::time::timeout(monitor.timeout, run_check(rt, name, check)).await {
                Err(_) => HealthResult::Failed {
                    reason: format!("check timed out after {:?}", monitor.timeout),
                },
                Ok(r) => r,
            }
        }
    });
    futures_util::future::join_all(checks).await
}

/// Why a listed container (or its absence) fails its monitor before any check runs.
fn judge<R: Runtime + ?Sized>(rt: &R, state: Option<&ContainerState>) -> Option<HealthResult> {
    let reason = match state {
        None => "container is missing".to_owned(),
        Some(s) if !super::is_ours(s, rt.cluster()) => {
            "container is not managed by quorate for this cluster".to_owned()
        }
        Some(s) if s.status == ContainerStatus::Running => return None,
        Some(s) => match (&s.status, s.exit_code) {
            (ContainerStatus::Exited, Some(code)) => format!("container exited with code {code}"),
            (status, _) => format!("container is {status:?}, not running").to_lowercase(),
        },
    };
    Some(HealthResult::Failed { reason })
}

async fn run_check<R: Runtime + ?Sized>(rt: &R, name: &str, check: &HealthCheck) -> HealthResult {
    match check {
        HealthCheck::Exec(cmd) => match rt.exec(name, cmd, &[]).await {
            Ok(o) if o.exit_code == Some(0) => HealthResult::Healthy,
            Ok(o) => HealthResult::Failed {
                reason: match o.exit_code {
                    Some(c) => format!("check command exited with code {c}"),
                    None => "check command gave no exit code".into(),
                },
            },
            Err(e) if e.is_unreachable() => HealthResult::Unobservable {
                reason: e.to_string(),
            },
            Err(e) => HealthResult::Failed {
                reason: e.to_string(),
            },
        },
        HealthCheck::Tcp(addr) => match TcpStream::connect(addr).await {
            Ok(_) => HealthResult::Healthy,
            Err(e) => HealthResult::Failed {
                reason: format!("tcp {addr}: {e}"),
            },
        },
        HealthCheck::Http { addr, path } => match http_status(*addr, path).await {
            Ok(code) if (200..400).contains(&code) => HealthResult::Healthy,
            Ok(code) => HealthResult::Failed {
                reason: format!("http {addr}{path}: status {code}"),
            },
            Err(e) => HealthResult::Failed {
                reason: format!("http {addr}{path}: {e}"),
            },
        },
    }
}

/// Sends a minimal HTTP/1.0 GET and returns the status code.
async fn http_status(addr: SocketAddr, path: &str) -> std::io::Result<u16> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
    if path.chars().any(|c| c.is_whitespace() || c.is_control()) || !path.starts_with('/') {
        return Err(bad("path must start with `/` and contain no spaces"));
    }
    let mut s = TcpStream::connect(addr).await?;
    let req = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await?;
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 256];
    while !buf.windows(2).any(|w| w == b"\r\n") && buf.len() < 4096 {
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let line = String::from_utf8_lossy(&buf);
    let status = line.lines().next().unwrap_or_default();
    let mut parts = status.split_whitespace();
    match (parts.next(), parts.next()) {
        (Some(v), Some(code)) if v.starts_with("HTTP/") => {
            code.parse().map_err(|_| bad("bad status code"))
        }
        _ => Err(bad("not an HTTP response")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    #[test]
    fn failures_count_unobservable_does_not() {
        let mut r = FailureRecord::default();
        r.record(&HealthResult::Healthy, 1);
        r.record(&HealthResult::Unobservable { reason: "x".into() }, 2);
        assert_eq!(r, FailureRecord::default());
        r.record(
            &HealthResult::Failed {
                reason: "boom".into(),
            },
            3,
        );
        r.record(
            &HealthResult::Failed {
                reason: "bang".into(),
            },
            4,
        );
        assert_eq!(r.fail_count, 2);
        assert_eq!(r.last_failure, Some((4, "bang".into())));
    }

    async fn serve_once(reply: &'static str) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut b = [0u8; 512];
            let _ = s.read(&mut b).await;
            s.write_all(reply.as_bytes()).await.unwrap();
        });
        addr
    }

    #[tokio::test]
    async fn http_status_parses() {
        let a = serve_once("HTTP/1.0 204 No Content\r\n\r\n").await;
        assert_eq!(http_status(a, "/").await.unwrap(), 204);
        let a = serve_once("SSH-2.0-OpenSSH\r\n").await;
        assert!(http_status(a, "/").await.is_err());
        assert!(http_status(a, "no-slash").await.is_err());
    }
}

//! Nodes that answer without end: the runtime API (a fake Podman and Docker on a Unix
//! socket, served here, driven by the real drivers and by `quorate observe`), an instance's
//! HTTP health check, and a BMC. Every answer is read with a size and a time bound, and a
//! node past one of them is a node that does not answer, with the reason.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use quorate::fence::FenceAgent;
use quorate::fence::ipmi::{IpmiAgent, IpmiConfig};
use quorate::runtime::{self, Connection, HealthCheck, HealthResult, Monitor, Runtime};
use quorate::secret::SecretRef;

/// What the fake sends, at most, for an endless answer: far past quorate's limit, and
/// enough to show that a client without one keeps it all.
const FLOOD: usize = 128 << 20;

/// How the fake runtime answers a container list.
#[derive(Clone, Copy)]
enum List {
    /// A chunked body that does not end: `FLOOD` bytes as fast as it can, then silence.
    Endless,
    /// A chunked body that does not end, 100 bytes every 50 ms.
    Trickle,
    /// The running quorate container `web-0`, and nothing else.
    Web0,
}

/// Serves a fake runtime API on `path`: the version and ping calls like Docker 24 and
/// Podman 4, a running quorate container `web-0` for any inspect, and container lists as
/// `list` says.
fn fake_runtime(path: &Path, list: List) {
    let listener = UnixListener::bind(path).unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { return };
            std::thread::spawn(move || serve(conn, list));
        }
    });
}

fn serve(mut s: UnixStream, list: List) {
    let Some(path) = request_path(&mut s) else {
        return;
    };
    let json = |s: &mut UnixStream, body: &str| {
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nApi-Version: 1.43\r\n\
             Libpod-Api-Version: 4.3.1\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let _ = s.write_all(head.as_bytes());
        let _ = s.write_all(body.as_bytes());
    };
    if path.ends_with("/version") {
        json(
            &mut s,
            r#"{"ApiVersion":"1.43","MinAPIVersion":"1.12","Version":"24.0.0"}"#,
        );
    } else if path.contains("/containers/json") && matches!(list, List::Web0) {
        json(&mut s, &list_web_0());
    } else if path.contains("/containers/json") {
        let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                    Transfer-Encoding: chunked\r\n\r\n";
        if s.write_all(head.as_bytes()).is_ok() {
            endless(&mut s, list);
        }
    } else if path.contains("/containers/") {
        json(&mut s, &inspect_web_0());
    } else {
        json(&mut s, "{}");
    }
}

/// Reads a request's head; its path.
fn request_path(s: &mut UnixStream) -> Option<String> {
    let mut head = Vec::new();
    let mut b = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
        let n = s.read(&mut b).ok().filter(|&n| n > 0)?;
        head.extend_from_slice(&b[..n]);
    }
    let head = String::from_utf8_lossy(&head);
    head.split_whitespace().nth(1).map(str::to_string)
}

/// Sends chunks of a JSON array that never closes, until the client goes away.
fn endless(s: &mut UnixStream, list: List) {
    let item = r#"{"Id":"0123456789abcdef","Names":["web-0"],"State":"running"},"#;
    let mut body = String::from("[");
    while body.len() < 64 * 1024 {
        body.push_str(item);
    }
    let (chunk, pause) = match list {
        List::Endless => (body.as_str(), Duration::ZERO),
        List::Trickle | List::Web0 => (&body[..100], Duration::from_millis(50)),
    };
    let framed = format!("{:x}\r\n{chunk}\r\n", chunk.len());
    let mut sent = 0;
    while sent < FLOOD {
        if s.write_all(framed.as_bytes()).is_err() {
            return;
        }
        sent += chunk.len();
        std::thread::sleep(pause);
    }
    // Silence, with the connection open, until the client gives up.
    let _ = s.read(&mut [0u8; 1]);
}

fn web_0_labels() -> serde_json::Value {
    serde_json::json!({
        "io.quorate.managed-by": "quorate",
        "io.quorate.cluster": "c",
        "io.quorate.bundle": "web",
        "io.quorate.instance": "0",
        "io.quorate.spec-hash": "0000000000000000",
        "io.quorate.commit": "0000000"
    })
}

fn inspect_web_0() -> String {
    serde_json::json!({
        "Id": "0123456789abcdef",
        "Name": "/web-0",
        "State": {"Status": "running", "Running": true, "ExitCode": 0},
        "Config": {"Labels": web_0_labels()}
    })
    .to_string()
}

/// Docker's list with `web-0` in it.
fn list_web_0() -> String {
    serde_json::json!([{
        "Id": "0123456789abcdef",
        "Names": ["/web-0"],
        "State": "running",
        "Status": "Up 1 minute",
        "Labels": web_0_labels()
    }])
    .to_string()
}

/// `web-0`'s monitor, run once.
fn health(rt: &dyn Runtime, m: &Monitor) -> HealthResult {
    block_on(rt.check_health(&[("web-0", m)])).remove(0)
}

fn driver(url: &str, timeout: Duration) -> Box<dyn Runtime> {
    let mut c = Connection::parse(url).unwrap();
    c.timeout = timeout;
    runtime::connect(c).unwrap()
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn an_endless_container_list_is_cut_at_the_limit_not_at_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    for scheme in ["podman", "docker"] {
        let sock = dir.path().join(format!("{scheme}.sock"));
        fake_runtime(&sock, List::Endless);
        // A long timeout: what stops the answer must be its size.
        let rt = driver(
            &format!("{scheme}+unix://{}", sock.display()),
            Duration::from_secs(60),
        );
        let started = Instant::now();
        let e = block_on(rt.list()).unwrap_err();
        let took = started.elapsed();
        assert!(e.is_unreachable(), "{scheme}: {e}");
        assert!(
            e.to_string()
                .ends_with(": list containers: answer over 8 MiB"),
            "{scheme}: {e}"
        );
        assert!(took < Duration::from_secs(10), "{scheme}: {took:?}");
    }
}

#[test]
fn a_trickling_container_list_is_cut_at_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    for scheme in ["podman", "docker"] {
        let sock = dir.path().join(format!("{scheme}.sock"));
        fake_runtime(&sock, List::Trickle);
        let rt = driver(
            &format!("{scheme}+unix://{}", sock.display()),
            Duration::from_secs(2),
        );
        let started = Instant::now();
        let e = block_on(rt.list()).unwrap_err();
        let took = started.elapsed();
        assert!(e.is_unreachable(), "{scheme}: {e}");
        assert!(
            e.to_string().contains("list containers timed out after 2s"),
            "{scheme}: {e}"
        );
        assert!(took < Duration::from_secs(4), "{scheme}: {took:?}");
    }
}

/// Runs `quorate` to the end; its exit code, standard error and peak resident memory
/// ([`support::wait_with_peak`]).
fn run_measured(args: &[&str], dir: &Path) -> (Option<i32>, String, u64) {
    let err = dir.join("stderr");
    let mut child = Command::new(env!("CARGO_BIN_EXE_quorate"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let (exit, peak) = support::wait_with_peak(&mut child);
    (exit.code(), std::fs::read_to_string(&err).unwrap(), peak)
}

#[test]
fn quorate_observe_stays_small_and_says_why_a_node_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let specs = dir.path().join("specs");
    std::fs::create_dir(&specs).unwrap();
    let mut nodes = String::new();
    for scheme in ["podman", "docker"] {
        let sock = dir.path().join(format!("{scheme}.sock"));
        fake_runtime(&sock, List::Endless);
        nodes.push_str(&format!(
            "    - {{name: {scheme}-node, runtime: '{scheme}+unix://{}'}}\n",
            sock.display()
        ));
    }
    std::fs::write(
        specs.join("cluster.yaml"),
        format!(
            "apiVersion: quorate.io/v1alpha1\nkind: Cluster\nmetadata: {{name: c}}\nspec:\n  \
             quorum: {{reconcilerVotes: 1}}\n  nodes:\n{nodes}"
        ),
    )
    .unwrap();
    let started = Instant::now();
    let specs = specs.to_str().unwrap();
    let (code, stderr, peak) = run_measured(
        &["observe", "--specs", specs, "--timeout", "60s"],
        dir.path(),
    );
    let took = started.elapsed();
    assert_eq!(code, Some(1), "{stderr}");
    for scheme in ["podman", "docker"] {
        let line = format!(
            "{scheme}-node: LOST: node unreachable: {scheme}+unix://{}: list containers: \
             answer over 8 MiB",
            dir.path().join(format!("{scheme}.sock")).display()
        );
        assert!(stderr.contains(&line), "{line}\n{stderr}");
    }
    assert!(took < Duration::from_secs(20), "{took:?}");
    // Two answers cut at 8 MiB each, and the process itself: far below what the nodes
    // sent (2 x 128 MiB).
    assert!(peak < 80 << 20, "peak resident memory {} MiB", peak >> 20);
}

/// An HTTP server on 127.0.0.1 that answers every connection with `reply`, then
/// trickles a byte every 50 ms if `trickle`, until the client goes away.
fn http_node(reply: Vec<u8>, trickle: bool) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            let reply = reply.clone();
            std::thread::spawn(move || {
                let _ = s.read(&mut [0u8; 1024]);
                if s.write_all(&reply).is_err() {
                    return;
                }
                while trickle && s.write_all(b"x").is_ok() {
                    std::thread::sleep(Duration::from_millis(50));
                }
            });
        }
    });
    addr
}

#[test]
fn a_health_check_reply_without_end_fails_the_check_in_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("docker.sock");
    fake_runtime(&sock, List::Web0);
    let rt = driver(
        &format!("docker+unix://{}", sock.display()),
        Duration::from_secs(10),
    );
    let check = |addr: SocketAddr| Monitor {
        check: Some(HealthCheck::Http {
            addr,
            path: "/healthz".into(),
        }),
        timeout: Duration::from_secs(2),
    };

    // 64 MiB without a line end: the status line is looked for in the first 4 KiB only.
    let flood = http_node(vec![b'x'; 64 << 20], false);
    let started = Instant::now();
    let r = health(&*rt, &check(flood));
    assert_eq!(
        r,
        HealthResult::Failed {
            reason: format!("http {flood}/healthz: not an HTTP response")
        }
    );
    assert!(started.elapsed() < Duration::from_secs(2));

    // A status line that never ends: the check's timeout.
    let slow = http_node(b"HTTP/1.1 200".to_vec(), true);
    let started = Instant::now();
    let r = health(&*rt, &check(slow));
    assert_eq!(
        r,
        HealthResult::Failed {
            reason: "check timed out after 2s".into()
        }
    );
    assert!(started.elapsed() < Duration::from_secs(4));
}

fn bmc_agent(addr: SocketAddr, dir: &Path) -> IpmiAgent {
    let pw = dir.join("bmc-password");
    std::fs::write(&pw, "secret").unwrap();
    let mut c = IpmiConfig::new(
        addr.ip().to_string(),
        "admin",
        SecretRef::FromFile(pw.clone()),
    );
    c.port = addr.port();
    c.timeout = Duration::from_millis(500);
    IpmiAgent::new(c).unwrap()
}

#[test]
fn a_bmc_that_floods_or_stays_silent_does_not_answer() {
    let dir = tempfile::tempdir().unwrap();
    // Answers each datagram with 64 oversized datagrams (60 KB each).
    let bmc = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = bmc.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut b = [0u8; 2048];
        let junk = vec![0x06u8; 60_000];
        while let Ok((_, peer)) = bmc.recv_from(&mut b) {
            for _ in 0..64 {
                let _ = bmc.send_to(&junk, peer);
            }
        }
    });
    let started = Instant::now();
    let e = block_on(bmc_agent(addr, dir.path()).status()).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5), "{e}");
    assert!(e.to_string().contains(&addr.to_string()), "{e}");

    // A BMC that never answers: the read timeout, not a hang.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    let started = Instant::now();
    let e = block_on(bmc_agent(addr, dir.path()).status()).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5), "{e}");
    assert!(e.to_string().contains("did not answer within"), "{e}");
    drop(silent);
}

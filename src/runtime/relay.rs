//! Where quorate holds the bytes a node sends: a relay between the client library and the
//! node's runtime API.
//!
//! `podman-api` and `bollard` read a whole answer into memory before they look at it, and
//! neither lets quorate bound that (Podman's ping is the exception: quorate sends it
//! itself, see [`super::probe`]). So both talk to a private local Unix socket (in a fresh
//! directory only quorate's user can open) served here; each connection to it is relayed to
//! the node: its Unix socket, plain TCP, TCP with TLS (the client certificate is presented
//! here), or the local end of an SSH tunnel. Requests pass through untouched; what comes
//! back is counted, and an answer to one request of more than [`MAX_ANSWER_BYTES`] closes
//! both connections. The caller gets the relay's reason ([`Relay::blame`]), so the node is
//! *unreachable* with "answer over 8 MiB" instead of quorate running out of memory. The
//! time an answer may take is bounded by the caller (every call is [`super::timed`]); the
//! relay bounds its own steps (connecting, a TLS handshake, a request the node does not
//! take) by the connection timeout, so a connection the caller gave up on never lingers.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixListener, UnixStream};
use tokio::sync::Mutex;
use tokio::task::{JoinHandle, JoinSet};
use zeroize::Zeroizing;

use super::RuntimeError;
use super::connection::TlsFiles;
use super::socket_dir::SocketDir;

/// The most a node may send in answer to one request: 8 MiB. A container in a list is
/// about 0.9 KB on Podman 4.3 and 1.3 KB on Docker 28 (quorate's labels, a port, a mount),
/// so a list of 1,000 is under 1.5 MB. A Docker pull's progress is at most ten lines a
/// second per layer in flight (the daemon's rate limit), under 4 MB over the whole 5-minute
/// pull timeout with its default of 3 parallel downloads; Podman's pull is quiet.
pub(crate) const MAX_ANSWER_BYTES: u64 = 8 * 1024 * 1024;

/// Room for one read or write in each direction of a relayed connection. Small, because
/// every node keeps its connections open between calls (two, at 1,000 nodes 2,000 of
/// them) and most answers are small; a large list takes more reads, not more memory.
const BUFFER: usize = 4 * 1024;

/// Where the relay connects for each client connection.
#[derive(Debug, Clone)]
pub(crate) enum Upstream {
    /// A Unix socket: the node's runtime, or the local end of an SSH tunnel.
    Unix(PathBuf),
    /// TCP, with TLS when client certificate files are given.
    Tcp {
        host: String,
        port: u16,
        tls: Option<TlsFiles>,
    },
}

/// A relay for one node's runtime, started on the first call ([`Relay::ensure`]) and
/// stopped, with every connection it relays, when dropped.
pub(crate) struct Relay {
    dir: SocketDir,
    shared: Arc<Shared>,
    /// The accept loop, while it runs (it ends with the async runtime it was started on).
    serving: Mutex<Option<Serving>>,
}

struct Shared {
    upstream: Upstream,
    endpoint: String,
    limit: u64,
    timeout: Duration,
    /// How many relayed connections the node broke (a bound, or the connection itself).
    failures: AtomicU64,
    /// Why, for the last of them.
    last: std::sync::Mutex<String>,
}

impl Shared {
    fn fail(&self, reason: String) {
        tracing::debug!(endpoint = %self.endpoint, %reason, "relay to the node closed");
        if let Ok(mut last) = self.last.lock() {
            *last = reason;
        }
        self.failures.fetch_add(1, Ordering::SeqCst);
    }
}

/// The accept loop; aborting it drops every relayed connection.
struct Serving(JoinHandle<()>);

impl Drop for Serving {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Relay {
    /// Prepares a relay to `upstream` (nothing is started or contacted yet). `endpoint`
    /// names the node in errors; `timeout` bounds each of the relay's own steps.
    pub fn new(
        upstream: Upstream,
        endpoint: String,
        timeout: Duration,
    ) -> Result<Relay, RuntimeError> {
        Self::with_limit(upstream, endpoint, timeout, MAX_ANSWER_BYTES)
    }

    fn with_limit(
        upstream: Upstream,
        endpoint: String,
        timeout: Duration,
        limit: u64,
    ) -> Result<Relay, RuntimeError> {
        // The directory is private (0700) to this user: only we can use the socket.
        let dir = SocketDir::new("relay-").map_err(|e| RuntimeError::Unreachable {
            endpoint: endpoint.clone(),
            reason: format!("cannot create a private dir for the relay: {e}"),
        })?;
        Ok(Relay {
            dir,
            shared: Arc::new(Shared {
                upstream,
                endpoint,
                limit,
                timeout,
                failures: AtomicU64::new(0),
                last: std::sync::Mutex::new(String::new()),
            }),
            serving: Mutex::new(None),
        })
    }

    /// The socket the client library connects to.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("runtime.sock")
    }

    /// Starts the relay if it is not running (yet, or any more: its async runtime ended).
    /// Returns the number of failures so far, for [`Relay::blame`] after the call.
    pub async fn ensure(&self) -> Result<u64, RuntimeError> {
        let mut serving = self.serving.lock().await;
        if serving.as_ref().is_none_or(|s| s.0.is_finished()) {
            *serving = None;
            *serving = Some(self.start()?);
        }
        Ok(self.shared.failures.load(Ordering::SeqCst))
    }

    fn start(&self) -> Result<Serving, RuntimeError> {
        let tls = match &self.shared.upstream {
            Upstream::Tcp {
                tls: Some(files), ..
            } => Some(Arc::new(tls_config(files).map_err(|message| {
                RuntimeError::Api {
                    op: "connect",
                    message,
                }
            })?)),
            _ => None,
        };
        let _ = std::fs::remove_file(self.socket());
        let listener =
            UnixListener::bind(self.socket()).map_err(|e| RuntimeError::Unreachable {
                endpoint: self.shared.endpoint.clone(),
                reason: format!("cannot start the local relay: {e}"),
            })?;
        let shared = Arc::clone(&self.shared);
        Ok(Serving(tokio::spawn(serve(listener, shared, tls))))
    }

    /// The node's fault, when a call that began after [`Relay::ensure`] returned `seen`
    /// failed and the relay closed a connection since: the call's error is then the
    /// relay's reason (a client library only sees a connection closed mid-answer).
    pub fn blame(&self, seen: u64, op: &str) -> Option<RuntimeError> {
        if self.shared.failures.load(Ordering::SeqCst) <= seen {
            return None;
        }
        let reason = self.shared.last.lock().map(|r| r.clone()).ok()?;
        Some(RuntimeError::Unreachable {
            endpoint: self.shared.endpoint.clone(),
            reason: format!("{op}: {reason}"),
        })
    }
}

async fn serve(
    listener: UnixListener,
    shared: Arc<Shared>,
    tls: Option<Arc<rustls::ClientConfig>>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((client, _)) => {
                    connections.spawn(relay_one(client, Arc::clone(&shared), tls.clone()));
                }
                Err(e) => {
                    // Out of file descriptors, most likely: let the callers time out.
                    tracing::warn!(endpoint = %shared.endpoint, error = %e, "relay cannot accept");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn relay_one(
    mut client: UnixStream,
    shared: Arc<Shared>,
    tls: Option<Arc<rustls::ClientConfig>>,
) {
    let timeout = shared.timeout;
    let result = match tokio::time::timeout(timeout, connect(&shared.upstream, tls)).await {
        Err(_) => Err(format!("no connection within {timeout:?}")),
        Ok(Err(e)) => Err(e),
        Ok(Ok(node)) => pump(&mut client, node, shared.limit, timeout).await,
    };
    // The reason is recorded before the client's connection closes (when `client` is
    // dropped): a caller that sees it closed and asks for the blame finds it.
    if let Err(reason) = result {
        shared.fail(reason);
    }
}

/// A connection to the node, plain or TLS.
pub(super) trait NodeStream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> NodeStream for T {}

/// A connection to the node (with TLS when `tls` is given): the relay's, and the probe's.
pub(super) async fn connect(
    upstream: &Upstream,
    tls: Option<Arc<rustls::ClientConfig>>,
) -> Result<Box<dyn NodeStream>, String> {
    match upstream {
        Upstream::Unix(path) => match UnixStream::connect(path).await {
            Ok(s) => Ok(Box::new(s)),
            Err(e) => Err(format!("cannot connect to {}: {e}", path.display())),
        },
        Upstream::Tcp { host, port, .. } => {
            let tcp = TcpStream::connect((host.as_str(), *port))
                .await
                .map_err(|e| format!("cannot connect: {e}"))?;
            let Some(config) = tls else {
                return Ok(Box::new(tcp));
            };
            let name = ServerName::try_from(host.clone())
                .map_err(|e| format!("`{host}` is no TLS server name: {e}"))?;
            let s = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS: {e}"))?;
            Ok(Box::new(s))
        }
    }
}

/// Relays one connection until either side closes it. Each request the client sends starts
/// a new answer; `Err` says which bound the node broke.
async fn pump(
    client: &mut UnixStream,
    mut node: Box<dyn NodeStream>,
    limit: u64,
    timeout: Duration,
) -> Result<(), String> {
    let mut request = vec![0u8; BUFFER];
    let mut answer = vec![0u8; BUFFER];
    let mut answered: u64 = 0;
    loop {
        tokio::select! {
            r = client.read(&mut request) => {
                // The client closed (done, or gave up at its timeout): so does the relay.
                let Ok(n @ 1..) = r else { return Ok(()) };
                answered = 0;
                match tokio::time::timeout(timeout, node.write_all(&request[..n])).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return Err(format!("connection lost: {e}")),
                    Err(_) => return Err(format!("takes no request within {timeout:?}")),
                }
            }
            r = node.read(&mut answer) => {
                let n = match r {
                    Ok(0) => return Ok(()),
                    Ok(n) => n,
                    Err(e) => return Err(format!("connection lost: {e}")),
                };
                answered = answered.saturating_add(n as u64);
                if answered > limit {
                    return Err(format!("answer over {}", bytes(limit)));
                }
                if client.write_all(&answer[..n]).await.is_err() {
                    return Ok(());
                }
            }
        }
    }
}

/// `8 MiB`, `512 KiB`, or bytes.
pub(crate) fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{} MiB", n >> 20),
        n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{} KiB", n >> 10),
        n => format!("{n} bytes"),
    }
}

/// The TLS client settings for Docker over TCP: only the CAs in `ca` are trusted, and the
/// client certificate is presented. The key's bytes are wiped once parsed.
fn tls_config(files: &TlsFiles) -> Result<rustls::ClientConfig, String> {
    let read = |p: &Path| {
        std::fs::read(p)
            .map(Zeroizing::new)
            .map_err(|e| format!("cannot read {}: {e}", p.display()))
    };
    let bad = |p: &Path, e: &dyn std::fmt::Display| format!("{}: {e}", p.display());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&read(&files.ca)?) {
        let cert = cert.map_err(|e| bad(&files.ca, &e))?;
        roots.add(cert).map_err(|e| bad(&files.ca, &e))?;
    }
    if roots.is_empty() {
        return Err(bad(&files.ca, &"no CA certificate in it"));
    }
    let chain = CertificateDer::pem_slice_iter(&read(&files.cert)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(&files.cert, &e))?;
    let key = PrivateKeyDer::from_pem_slice(&read(&files.key)?).map_err(|e| bad(&files.key, &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| bad(&files.cert, &e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A node that answers every request with `answer` bytes, then stays open.
    async fn node(dir: &Path, answer: usize) -> PathBuf {
        let path = dir.join("node.sock");
        let listener = UnixListener::bind(&path).unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut req = [0u8; 64];
                    while let Ok(1..) = s.read(&mut req).await {
                        if s.write_all(&vec![b'x'; answer]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        path
    }

    fn relay(path: PathBuf, limit: u64) -> Relay {
        let up = Upstream::Unix(path);
        Relay::with_limit(
            up,
            "test+unix:///node".into(),
            Duration::from_secs(5),
            limit,
        )
        .unwrap()
    }

    /// Sends one request and reads until `want` bytes came or the relay closed.
    async fn ask(s: &mut UnixStream, want: usize) -> usize {
        s.write_all(b"GET").await.unwrap();
        let mut got = 0;
        let mut buf = [0u8; 4096];
        while got < want {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
        }
        got
    }

    #[tokio::test]
    async fn each_answer_may_reach_the_limit_and_no_more() {
        let dir = tempfile::tempdir().unwrap();
        let r = relay(node(dir.path(), 1000).await, 1500);
        let seen = r.ensure().await.unwrap();
        let mut s = UnixStream::connect(r.socket()).await.unwrap();
        // Two answers of 1000 bytes on one connection: the count starts again at each
        // request, so 2000 bytes in all pass a 1500-byte limit.
        assert_eq!(ask(&mut s, 1000).await, 1000);
        assert_eq!(ask(&mut s, 1000).await, 1000);
        assert!(r.blame(seen, "list").is_none());

        std::fs::create_dir(dir.path().join("b")).unwrap();
        let r = relay(node(&dir.path().join("b"), 2000).await, 1500);
        let seen = r.ensure().await.unwrap();
        let mut s = UnixStream::connect(r.socket()).await.unwrap();
        let got = ask(&mut s, 2000).await;
        assert!(got <= 1500, "{got} bytes passed a 1500-byte limit");
        let e = r.blame(seen, "list containers").unwrap();
        assert!(e.is_unreachable());
        assert_eq!(
            e.to_string(),
            "node unreachable: test+unix:///node: list containers: answer over 1500 bytes"
        );
    }

    #[tokio::test]
    async fn a_node_that_cannot_be_reached_is_blamed_with_why() {
        let dir = tempfile::tempdir().unwrap();
        let r = relay(dir.path().join("absent.sock"), 1500);
        let seen = r.ensure().await.unwrap();
        let mut s = UnixStream::connect(r.socket()).await.unwrap();
        assert_eq!(ask(&mut s, 1).await, 0);
        let e = r.blame(seen, "ping").unwrap().to_string();
        assert!(e.contains("ping: cannot connect to"), "{e}");
    }

    #[tokio::test]
    async fn dropping_the_relay_closes_its_connections() {
        let dir = tempfile::tempdir().unwrap();
        let r = relay(node(dir.path(), 10).await, 1500);
        r.ensure().await.unwrap();
        let mut s = UnixStream::connect(r.socket()).await.unwrap();
        assert_eq!(ask(&mut s, 10).await, 10);
        drop(r);
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await;
        assert!(matches!(n, Ok(Ok(0)) | Ok(Err(_))), "{n:?}");
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(bytes(MAX_ANSWER_BYTES), "8 MiB");
        assert_eq!(bytes(512 * 1024), "512 KiB");
        assert_eq!(bytes(1500), "1500 bytes");
    }
}

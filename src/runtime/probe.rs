//! The probe's own connection to a node's runtime: one `GET` on a kept-alive HTTP/1.1
//! connection straight to the node (its Unix socket, an SSH tunnel's local socket, or
//! TCP), twice a second per node.
//!
//! The probe is the reconciler's most frequent call, so it skips what the other calls
//! go through: the client library (podman-api's ping drops the answer's body unread,
//! which closes the connection, so every probe was a new connection) and the
//! [relay](super::relay), which is there because the libraries read whole answers. Here
//! quorate reads the answer itself, with its own bounds: the head within
//! [`MAX_HEAD_BYTES`], a body of at most [`MAX_BODY_BYTES`], the time by the caller
//! ([`super::timed`]). A connection is reused only after a whole answer; a call that
//! fails or is given up drops it.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{HeaderMap, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::sync::Mutex;

use super::relay::{NodeStream, Upstream, connect};

/// The most bytes of a status line and headers (Podman's ping sends about 250), and the
/// size of the connection's read buffer: a fixed buffer, kept for each node between
/// probes, where hyper's default starts at 8 KiB.
pub(crate) const MAX_HEAD_BYTES: usize = 2 * 1024;

/// The most bytes of a probe's body (Podman's ping answers `OK`).
pub(crate) const MAX_BODY_BYTES: usize = 4 * 1024;

/// One node's probe: the path it asks and the connection it keeps.
pub(crate) struct Probe {
    upstream: Upstream,
    path: &'static str,
    idle: Mutex<Option<SendRequest<Empty<Bytes>>>>,
}

impl Probe {
    /// A probe of `path` on `upstream` (without TLS); nothing is contacted until
    /// [`Probe::get`].
    pub fn new(upstream: Upstream, path: &'static str) -> Probe {
        Probe {
            upstream,
            path,
            idle: Mutex::new(None),
        }
    }

    /// `GET path`, read to its end: the status and headers, or why not.
    pub async fn get(&self) -> Result<(StatusCode, HeaderMap), String> {
        // Taken out while in use: a call given up at its timeout drops the connection
        // with it, and two calls at once each use their own.
        let kept = self.idle.lock().await.take();
        let mut sender = match kept {
            Some(s) if !s.is_closed() => s,
            _ => handshake(connect(&self.upstream, None).await?).await?,
        };
        sender.ready().await.map_err(|e| e.to_string())?;
        let request = Request::get(self.path)
            .header(hyper::header::HOST, "localhost")
            .body(Empty::new())
            .map_err(|e| e.to_string())?;
        let answer = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let (head, body) = answer.into_parts();
        Limited::new(body, MAX_BODY_BYTES)
            .collect()
            .await
            .map_err(|e| format!("answer: {e}"))?;
        *self.idle.lock().await = Some(sender);
        Ok((head.status, head.headers))
    }
}

async fn handshake(stream: Box<dyn NodeStream>) -> Result<SendRequest<Empty<Bytes>>, String> {
    let (sender, connection) = http1::Builder::new()
        .read_buf_exact_size(Some(MAX_HEAD_BYTES))
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    // Ends when the node closes the connection or the sender is dropped.
    tokio::spawn(connection);
    Ok(sender)
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::UnixListener;

    use super::*;

    /// A node that answers every request on a connection with `answer`, counting the
    /// connections it accepted.
    fn node(
        path: &std::path::Path,
        answer: Vec<u8>,
    ) -> std::sync::Arc<std::sync::atomic::AtomicUsize> {
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let listener = UnixListener::bind(path).unwrap();
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let answer = answer.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    while let Ok(1..) = s.read(&mut buf).await {
                        if s.write_all(&answer).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        accepted
    }

    #[tokio::test]
    async fn the_connection_is_kept_between_probes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.sock");
        let ok = b"HTTP/1.1 200 OK\r\nLibpod-Api-Version: 4.3.1\r\nContent-Length: 2\r\n\r\nOK";
        let accepted = node(&path, ok.to_vec());
        let probe = Probe::new(Upstream::Unix(path), "/libpod/_ping");
        for _ in 0..3 {
            let (status, headers) = probe.get().await.unwrap();
            assert_eq!(status, StatusCode::OK);
            assert_eq!(headers["libpod-api-version"], "4.3.1");
        }
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_head_or_body_over_its_bound_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let long_head = format!(
            "HTTP/1.1 200 OK\r\nX-Pad: {}\r\nContent-Length: 0\r\n\r\n",
            "x".repeat(MAX_HEAD_BYTES)
        );
        let path = dir.path().join("head.sock");
        node(&path, long_head.into_bytes());
        let e = Probe::new(Upstream::Unix(path), "/")
            .get()
            .await
            .unwrap_err();
        assert!(e.contains("too large"), "{e}");

        let big = MAX_BODY_BYTES + 1;
        let long_body = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {big}\r\n\r\n{}",
            "x".repeat(big)
        );
        let path = dir.path().join("body.sock");
        node(&path, long_body.into_bytes());
        let e = Probe::new(Upstream::Unix(path), "/")
            .get()
            .await
            .unwrap_err();
        assert!(e.contains("length limit exceeded"), "{e}");
    }
}

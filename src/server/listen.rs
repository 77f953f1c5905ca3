//! How `quorate run` serves HTTP connections, whatever its clients do.
//!
//! - A request's head must arrive within the header timeout, counted from when the
//!   server starts waiting for it: on a new connection, and between the requests of a
//!   kept-alive one (hyper's `header_read_timeout`). A client that sends slowly, or
//!   nothing, is closed when it runs out.
//! - At most `max_connections` are open at once. At the limit, the connection that has
//!   waited longest for a request head is closed to admit the new one, so clients that
//!   hold connections without asking anything cannot keep a health check out; when every
//!   connection is serving a request, the new one is closed at once.
//! - A request is answered within [`REQUEST_TIMEOUT`] (503 after it).
//! - A stop closes the listener, lets requests under way finish for [`SHUTDOWN_GRACE`],
//!   then drops every connection still open.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tower_service::Service;

/// Time a handler has to answer one request, body read included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Time requests under way have to finish once the server is told to stop.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Default of `--http-max-connections`.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 512;
/// Default of `--http-header-timeout`.
pub const DEFAULT_HEADER_TIMEOUT: &str = "10s";
/// Largest read buffer of a connection, hence of a request head (hyper's default is
/// about 400 KiB; every request quorate serves has a head of a few hundred bytes).
const READ_BUFFER: usize = 64 * 1024;
/// Pause after a failed accept (out of file descriptors, say), so the loop does not spin.
const ACCEPT_PAUSE: Duration = Duration::from_millis(50);
/// Shortest time between two warnings about closed connections.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// The bounds of the server (`quorate run --http-…`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections open at once.
    pub max_connections: usize,
    /// Time a client has to send a request head.
    pub header_timeout: Duration,
}

/// Serves `app` on `listener` until `stop` resolves, then within [`SHUTDOWN_GRACE`];
/// speaking TLS on every connection when `tls` is given (`quorate run
/// --tls-cert/--tls-key`). The handshake counts against the header timeout, so a client
/// that opens a connection and stalls the handshake is closed like one that sends no
/// request.
pub async fn serve_tls(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    tls: Option<tokio_rustls::TlsAcceptor>,
    stop: impl Future<Output = ()>,
) {
    let table = Shared::default();
    let graceful = GracefulShutdown::new();
    let mut tasks = JoinSet::new();
    let mut warned = Instant::now();
    tokio::pin!(stop);
    loop {
        let stream = tokio::select! {
            () = &mut stop => break,
            got = listener.accept() => match got {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot accept an HTTP connection");
                    tokio::time::sleep(ACCEPT_PAUSE).await;
                    continue;
                }
            },
        };
        while tasks.try_join_next().is_some() {}
        let admitted = lock(&table).admit(limits.max_connections, Instant::now());
        warn_closed(&table, &mut warned, limits.max_connections);
        let Some((id, close)) = admitted else {
            continue; // `stream` is dropped: closed at once.
        };
        let (app, conn_table, watcher) = (app.clone(), table.clone(), graceful.watcher());
        let tls = tls.clone();
        let table = table.clone();
        tasks.spawn(async move {
            let conn = async move {
                match tls {
                    None => connection(stream, app, conn_table, id, limits, watcher).await,
                    Some(acceptor) => {
                        let shake =
                            tokio::time::timeout(limits.header_timeout, acceptor.accept(stream));
                        match shake.await {
                            Ok(Ok(s)) => connection(s, app, conn_table, id, limits, watcher).await,
                            Ok(Err(e)) => {
                                tracing::debug!(error = %e, "TLS handshake failed");
                                Ok(())
                            }
                            Err(_) => Ok(()),
                        }
                    }
                }
            };
            tokio::select! {
                r = conn => if let Err(e) = r {
                    tracing::debug!(error = %e, "HTTP connection ended");
                },
                () = close.notified() => {}
            }
            lock(&table).remove(id);
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            open = tasks.len(),
            "HTTP connections still open {SHUTDOWN_GRACE:?} after the stop; dropping them"
        );
    }
    tasks.shutdown().await;
}

/// One connection: HTTP/1.1 with the header timeout, each request bounded in time and
/// marked in the table while it is served, closed gracefully when the server stops.
fn connection<S>(
    stream: S,
    app: Router,
    table: Shared,
    id: u64,
    limits: Limits,
    graceful: hyper_util::server::graceful::Watcher,
) -> impl Future<Output = Result<(), hyper::Error>> + Send + 'static
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let (mut app, table) = (app.clone(), table.clone());
        lock(&table).waiting(id, None);
        async move {
            let answer = tokio::time::timeout(REQUEST_TIMEOUT, app.call(req)).await;
            lock(&table).waiting(id, Some(Instant::now()));
            Ok::<_, Infallible>(match answer {
                Ok(Ok(response)) => response,
                Ok(Err(never)) => match never {},
                Err(_) => too_slow(),
            })
        }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(READ_BUFFER);
    graceful.watch(builder.serve_connection(TokioIo::new(stream), service))
}

fn too_slow() -> Response<Body> {
    let mut r = Response::new(Body::from(format!(
        "the request took longer than {REQUEST_TIMEOUT:?}\n"
    )));
    *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    r
}

/// Warns, at most every [`WARN_EVERY`], that connections were closed for the limit.
fn warn_closed(table: &Shared, last: &mut Instant, max: usize) {
    if last.elapsed() < WARN_EVERY {
        return;
    }
    let (evicted, refused) = {
        let mut t = lock(table);
        (
            std::mem::take(&mut t.evicted),
            std::mem::take(&mut t.refused),
        )
    };
    if evicted + refused > 0 {
        tracing::warn!(
            max_connections = max,
            evicted,
            refused,
            "HTTP connection limit reached: idle connections closed for new ones (evicted), \
             new ones closed while every connection was serving a request (refused)"
        );
        *last = Instant::now();
    }
}

type Shared = Arc<Mutex<Table>>;

fn lock(table: &Shared) -> MutexGuard<'_, Table> {
    table.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The open connections.
#[derive(Debug, Default)]
struct Table {
    next: u64,
    open: BTreeMap<u64, Slot>,
    /// Connections closed to admit a new one, since the last warning.
    evicted: u64,
    /// New connections closed because every open one was serving a request.
    refused: u64,
}

#[derive(Debug)]
struct Slot {
    /// Since when it waits for a request head; `None` while it serves a request.
    waiting_since: Option<Instant>,
    /// Notified to close it.
    close: Arc<Notify>,
}

impl Table {
    /// Makes room for a new connection and registers it, or `None` when every open
    /// connection is serving a request.
    fn admit(&mut self, max: usize, now: Instant) -> Option<(u64, Arc<Notify>)> {
        while self.open.len() >= max.max(1) {
            let oldest = self
                .open
                .iter()
                .filter_map(|(id, s)| s.waiting_since.map(|t| (t, *id)))
                .min()
                .map(|(_, id)| id);
            let Some(slot) = oldest.and_then(|id| self.open.remove(&id)) else {
                self.refused += 1;
                return None;
            };
            slot.close.notify_one();
            self.evicted += 1;
        }
        let id = self.next;
        self.next += 1;
        let close = Arc::new(Notify::new());
        let slot = Slot {
            waiting_since: Some(now),
            close: close.clone(),
        };
        self.open.insert(id, slot);
        Some((id, close))
    }

    fn waiting(&mut self, id: u64, since: Option<Instant>) {
        if let Some(s) = self.open.get_mut(&id) {
            s.waiting_since = since;
        }
    }

    fn remove(&mut self, id: u64) {
        self.open.remove(&id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_the_limit_the_longest_waiting_connection_makes_room() {
        let mut t = Table::default();
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let (a, close_a) = t.admit(3, at(0)).unwrap();
        let (b, close_b) = t.admit(3, at(1)).unwrap();
        let (c, _) = t.admit(3, at(2)).unwrap();
        // `a` serves a request: it is not a candidate; `b` has waited longest.
        t.waiting(a, None);
        let (d, _) = t.admit(3, at(3)).unwrap();
        assert_eq!(t.open.keys().copied().collect::<Vec<_>>(), vec![a, c, d]);
        assert_eq!(t.evicted, 1);
        // Closing `b` was asked for (a stored permit), not `a`.
        assert!(futures_util::FutureExt::now_or_never(close_b.notified()).is_some());
        assert!(futures_util::FutureExt::now_or_never(close_a.notified()).is_none());
        assert!(!t.open.contains_key(&b));
        // `a` done: it waits for its next request from now on, younger than `c`.
        t.waiting(a, Some(at(4)));
        let (_, _) = t.admit(3, at(5)).unwrap();
        assert!(!t.open.contains_key(&c) && t.open.contains_key(&a));
    }

    #[test]
    fn when_every_connection_serves_a_request_a_new_one_is_refused() {
        let mut t = Table::default();
        let now = Instant::now();
        for _ in 0..2 {
            let (id, _) = t.admit(2, now).unwrap();
            t.waiting(id, None);
        }
        assert!(t.admit(2, now).is_none());
        assert_eq!((t.open.len(), t.refused, t.evicted), (2, 1, 0));
        // One ends: room again.
        let first = *t.open.keys().next().unwrap();
        t.remove(first);
        assert!(t.admit(2, now).is_some());
    }
}

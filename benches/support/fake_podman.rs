//! Many nodes' Podman services served from one process, to measure `quorate run` at a
//! thousand nodes without a thousand machines.
//!
//! Each node is a Unix socket that speaks the part of the libpod REST API quorate's
//! Podman driver uses (`_ping`, container list, inspect, create, start, kill, delete,
//! image exists), answering with the JSON shapes Podman 4 uses. So quorate does against it
//! everything it does against a real node: its real driver (podman-api, through quorate's
//! size-bounding relay, one per node), an HTTP round trip per call, JSON decoding, label
//! checks, the observer, the planner and the dispatcher. What the stand-in leaves out is
//! the runtime's own work: a "running" container runs no process, there is no storage,
//! network or image store, and every call answers at once. It therefore measures the
//! reconciler's costs, not a runtime's; a real node adds its own latency to each call
//! (see docs/runtime.md for Podman's).
//!
//! A node can be cut: its socket disappears (new connections are refused) and requests on
//! connections already open never get an answer, as with a pulled cable.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, Request, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::UnixListener;
use tokio::task::JoinHandle;
use tower_service::Service;

/// One container as the stand-in keeps it.
#[derive(Debug, Clone)]
pub struct Container {
    pub id: String,
    pub name: String,
    pub image: String,
    pub labels: BTreeMap<String, String>,
    pub running: bool,
    pub started_at: i64,
    pub exited_at: i64,
}

#[derive(Default)]
struct Node {
    up: bool,
    containers: BTreeMap<String, Container>,
}

/// Calls answered, by kind.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    pub ping: u64,
    pub list: u64,
    pub inspect: u64,
    pub create: u64,
    pub start: u64,
    pub kill: u64,
    pub delete: u64,
    pub other: u64,
}

#[derive(Default)]
struct World {
    nodes: Vec<Node>,
    counts: Counts,
    next_id: u64,
}

#[derive(Clone)]
struct Ctx {
    world: Arc<Mutex<World>>,
    node: usize,
}

/// The stand-in: `nodes` sockets in a temporary directory, served on its own runtime.
pub struct FakePodman {
    dir: tempfile::TempDir,
    world: Arc<Mutex<World>>,
    peak: Arc<AtomicUsize>,
    servers: Vec<JoinHandle<()>>,
    runtime: tokio::runtime::Runtime,
}

fn lock(world: &Mutex<World>) -> MutexGuard<'_, World> {
    world.lock().unwrap_or_else(PoisonError::into_inner)
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl FakePodman {
    /// Serves `nodes` nodes, on one worker thread (the other core is quorate's).
    pub fn start(nodes: usize) -> FakePodman {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let dir = tempfile::tempdir().expect("a temp dir");
        let world = Arc::new(Mutex::new(World {
            nodes: (0..nodes)
                .map(|_| Node {
                    up: true,
                    ..Node::default()
                })
                .collect(),
            ..World::default()
        }));
        let open = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let mut servers = Vec::with_capacity(nodes);
        for node in 0..nodes {
            let path = dir.path().join(format!("n{node:04}.sock"));
            let ctx = Ctx {
                world: world.clone(),
                node,
            };
            let app = Router::new().fallback(handle).with_state(ctx);
            let listener = {
                let _guard = runtime.enter();
                UnixListener::bind(&path).expect("bind a node socket")
            };
            servers.push(runtime.spawn(serve(listener, app, open.clone(), peak.clone())));
        }
        FakePodman {
            dir,
            world,
            peak,
            servers,
            runtime,
        }
    }

    /// Node `i`'s socket.
    pub fn socket(&self, node: usize) -> PathBuf {
        self.dir.path().join(format!("n{node:04}.sock"))
    }

    /// The endpoint of node `i` for a Cluster spec.
    pub fn endpoint(&self, node: usize) -> String {
        format!("podman+unix://{}", self.socket(node).display())
    }

    /// Cuts node `i` off: no new connection, no answer on an open one.
    pub fn cut(&mut self, node: usize) {
        lock(&self.world).nodes[node].up = false;
        self.servers[node].abort();
        let _ = std::fs::remove_file(self.socket(node));
    }

    /// The calls answered so far.
    pub fn counts(&self) -> Counts {
        lock(&self.world).counts
    }

    /// The most connections that were open at once, over every node.
    pub fn peak_connections(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    /// Every container, with the node it is on.
    pub fn containers(&self) -> Vec<(usize, Container)> {
        let w = lock(&self.world);
        w.nodes
            .iter()
            .enumerate()
            .flat_map(|(i, n)| n.containers.values().map(move |c| (i, c.clone())))
            .collect()
    }

    /// The temporary directory the sockets are in.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// Counts a connection as open while it lives.
struct Open(Arc<AtomicUsize>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Serves one node's socket, counting the connections open at once over every node.
async fn serve(
    listener: UnixListener,
    app: Router,
    open: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let (app, open, peak) = (app.clone(), open.clone(), peak.clone());
        tokio::spawn(async move {
            let now = open.fetch_add(1, Ordering::Relaxed) + 1;
            peak.fetch_max(now, Ordering::Relaxed);
            let _open = Open(open);
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let mut app = app.clone();
                async move { app.call(req).await }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn handle(State(ctx): State<Ctx>, method: Method, uri: Uri, body: Bytes) -> Response {
    if !lock(&ctx.world).nodes[ctx.node].up {
        // A pulled cable: the request is never answered.
        std::future::pending::<()>().await;
    }
    let path = uri.path();
    let Some(at) = path.find("/libpod/") else {
        return error(StatusCode::NOT_FOUND, "not a libpod path");
    };
    let route = &path[at + "/libpod/".len()..];
    let mut w = lock(&ctx.world);
    answer(&mut w, ctx.node, &method, route, &body)
}

fn answer(w: &mut World, node: usize, method: &Method, route: &str, body: &[u8]) -> Response {
    if route == "_ping" {
        w.counts.ping += 1;
        return ping();
    }
    if route.starts_with("images/") && route.ends_with("/exists") {
        w.counts.other += 1;
        return StatusCode::NO_CONTENT.into_response();
    }
    match (method, route) {
        (&Method::GET, "containers/json") => {
            w.counts.list += 1;
            let list: Vec<Value> = w.nodes[node].containers.values().map(listed).collect();
            axum::Json(list).into_response()
        }
        (&Method::POST, "containers/create") => {
            w.counts.create += 1;
            create(w, node, body)
        }
        _ => container_call(w, node, method, route),
    }
}

/// Calls on one container: `containers/{id or name}[/verb]`.
fn container_call(w: &mut World, node: usize, method: &Method, route: &str) -> Response {
    let Some(rest) = route.strip_prefix("containers/") else {
        w.counts.other += 1;
        return error(StatusCode::NOT_FOUND, "no such endpoint");
    };
    let (key, verb) = rest.split_once('/').unwrap_or((rest, ""));
    let counts = &mut w.counts;
    match (method, verb) {
        (&Method::GET, "json" | "exists") => counts.inspect += 1,
        (&Method::POST, "start") => counts.start += 1,
        (&Method::POST, "kill" | "stop") => counts.kill += 1,
        (&Method::DELETE, "") => counts.delete += 1,
        _ => counts.other += 1,
    }
    let containers = &mut w.nodes[node].containers;
    let Some(name) = containers
        .values()
        .find(|c| c.id == key || c.name == key)
        .map(|c| c.name.clone())
    else {
        return error(StatusCode::NOT_FOUND, "no such container");
    };
    if *method == Method::DELETE {
        let gone = containers.remove(&name).map(|c| c.id).unwrap_or_default();
        return axum::Json(json!([{ "Id": gone }])).into_response();
    }
    let Some(c) = containers.get_mut(&name) else {
        return error(StatusCode::NOT_FOUND, "no such container");
    };
    match verb {
        "json" => axum::Json(inspected(c)).into_response(),
        "exists" => StatusCode::NO_CONTENT.into_response(),
        "start" if c.running => StatusCode::NOT_MODIFIED.into_response(),
        "start" => {
            c.running = true;
            c.started_at = now_secs();
            StatusCode::NO_CONTENT.into_response()
        }
        "kill" | "stop" if !c.running => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "can only kill running containers",
        ),
        "kill" | "stop" => {
            c.running = false;
            c.exited_at = now_secs();
            StatusCode::NO_CONTENT.into_response()
        }
        _ => error(StatusCode::NOT_FOUND, "no such endpoint"),
    }
}

fn create(w: &mut World, node: usize, body: &[u8]) -> Response {
    let Ok(spec) = serde_json::from_slice::<Value>(body) else {
        return error(StatusCode::BAD_REQUEST, "a JSON body");
    };
    let name = spec["name"].as_str().unwrap_or_default().to_owned();
    if name.is_empty() || w.nodes[node].containers.contains_key(&name) {
        return error(StatusCode::CONFLICT, "the name is in use");
    }
    w.next_id += 1;
    let id = format!("{:064x}", w.next_id);
    let labels = spec["labels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default();
    let c = Container {
        id: id.clone(),
        name: name.clone(),
        image: spec["image"].as_str().unwrap_or_default().to_owned(),
        labels,
        running: false,
        started_at: 0,
        exited_at: 0,
    };
    w.nodes[node].containers.insert(name, c);
    (
        StatusCode::CREATED,
        axum::Json(json!({ "Id": id, "Warnings": [] })),
    )
        .into_response()
}

fn state_word(c: &Container) -> &'static str {
    match (c.running, c.started_at) {
        (true, _) => "running",
        (false, 0) => "created",
        (false, _) => "exited",
    }
}

fn listed(c: &Container) -> Value {
    json!({
        "Id": c.id,
        "Names": [c.name],
        "Image": c.image,
        "Labels": c.labels,
        "State": state_word(c),
        "ExitCode": 0,
        "StartedAt": c.started_at,
        "ExitedAt": c.exited_at,
    })
}

fn rfc3339(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn inspected(c: &Container) -> Value {
    json!({
        "Id": c.id,
        "Name": c.name,
        "Config": { "Labels": c.labels, "Image": c.image },
        "State": {
            "Status": state_word(c),
            "Running": c.running,
            "ExitCode": 0,
            "StartedAt": rfc3339(c.started_at),
            "FinishedAt": rfc3339(c.exited_at),
        },
        "NetworkSettings": { "Networks": {} },
    })
}

fn ping() -> Response {
    (
        StatusCode::OK,
        [
            ("api-version", "1.41"),
            ("libpod-api-version", "4.3.1"),
            ("docker-experimental", "true"),
            ("cache-control", "no-cache"),
            ("pragma", "no-cache"),
            ("libpod-buildah-version", "1.28.2"),
        ],
        "OK",
    )
        .into_response()
}

fn error(code: StatusCode, message: &str) -> Response {
    let body = json!({ "cause": message, "message": message, "response": code.as_u16() });
    (code, axum::Json(body)).into_response()
}

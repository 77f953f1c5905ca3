//! The HTTP interface of `quorate run`: the web page (`GET /`, [`web`]), `GET /status`
//! (`?page=N` for older refused commits), `GET /history` (`?limit=N`), `GET /healthz`,
//! `GET /metrics`
//! (Prometheus text), `POST /v1/reconcile` (asks for a pass; needs the token), and the
//! git webhook `POST /hooks/git`. How connections are served, and bounded: [`listen`].

pub(crate) mod listen;
pub(crate) mod web;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::mpsc;

use crate::reconcile::driver::{SharedStatus, Trigger};
use crate::secret::Secret;
use crate::status::StatusView;

/// What the handlers share.
#[derive(Clone)]
pub struct ServerState {
    /// The loop's status.
    pub status: SharedStatus,
    /// Where to ask for passes.
    pub triggers: mpsc::Sender<Trigger>,
    /// The bearer token that changing requests must carry; none disables them.
    pub token: Option<Arc<Secret>>,
    /// The state store, for `GET /history` (none: 404): the state directory's database,
    /// or etcd in HA mode.
    pub store: Option<Arc<dyn crate::ha::store::Commits>>,
}

/// The router.
pub fn router(state: ServerState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .route("/v1/reconcile", post(reconcile))
        .route("/history", get(history))
        .merge(web::router())
        .with_state(state)
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// The status view of the loop now, with page `page` (from 1) of the refused commits.
pub fn view(status: &SharedStatus, page: u64) -> StatusView {
    let s = status.read().map(|s| s.clone()).unwrap_or_default();
    let mut v = StatusView::from_pass(&s.commit, s.last_pass.as_ref());
    if let Some(obs) = &s.observed {
        // As observed most recently (also by passes that only waited).
        v.nodes = crate::status::NodeView::all(obs);
        v.suspended = obs.suspended.clone();
    }
    v.source_problem = s.source_problem;
    v.ha = s.ha;
    v.with_rejected_page(&s.rejected, page)
}

/// The query of `GET /history`.
#[derive(Debug, serde::Deserialize)]
struct HistoryQuery {
    /// Entries of each kind (1 to 100; default 20).
    limit: Option<usize>,
}

async fn history(State(st): State<ServerState>, query: Query<HistoryQuery>) -> Response {
    let Some(store) = &st.store else {
        return (StatusCode::NOT_FOUND, "no history is kept here\n").into_response();
    };
    let limit = query.limit.unwrap_or(20);
    if !(1..=crate::history::MAX_LIMIT).contains(&limit) {
        return (StatusCode::BAD_REQUEST, "limit is 1 to 100\n").into_response();
    }
    match crate::history::HistoryView::from_store(store.as_ref(), limit).await {
        Ok(view) => axum::Json(view).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot read the history");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the state store cannot be read now\n",
            )
                .into_response()
        }
    }
}

/// The query of `GET /status`.
#[derive(Debug, serde::Deserialize)]
struct StatusQuery {
    /// The page of refused commits (from 1).
    page: Option<u64>,
}

async fn status(State(st): State<ServerState>, query: Query<StatusQuery>) -> Response {
    match query.page.unwrap_or(1) {
        0 => (StatusCode::BAD_REQUEST, "pages are numbered from 1\n").into_response(),
        page => axum::Json(view(&st.status, page)).into_response(),
    }
}

async fn metrics(State(st): State<ServerState>) -> Response {
    let metrics = st
        .status
        .read()
        .map(|s| s.metrics.clone())
        .unwrap_or_default();
    (
        [("content-type", crate::metrics::CONTENT_TYPE)],
        metrics.encode(),
    )
        .into_response()
}

/// Whether `headers` carry `Authorization: Bearer <token>` (compared in constant time).
pub fn authorized(headers: &HeaderMap, token: Option<&Secret>) -> bool {
    let Some(token) = token else { return false };
    let Some(given) = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    constant_time_eq(given.as_bytes(), token.expose())
}

/// Equality that takes the same time wherever the inputs differ (`subtle`; only the
/// lengths are compared in variable time, and a token's length is no secret).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    bool::from(a.ct_eq(b))
}

async fn reconcile(State(st): State<ServerState>, headers: HeaderMap) -> Response {
    if !authorized(&headers, st.token.as_deref()) {
        return (
            StatusCode::UNAUTHORIZED,
            "a valid bearer token is required\n",
        )
            .into_response();
    }
    match st
        .triggers
        .try_send(Trigger::Pass("operator request".into()))
    {
        Ok(()) => (StatusCode::ACCEPTED, "a pass is scheduled\n").into_response(),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the reconciler is busy; try again\n",
        )
            .into_response(),
    }
}

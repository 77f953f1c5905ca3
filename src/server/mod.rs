//! The HTTP interface of `quorate run`: `GET /status` (`?page=N` for older refused
//! commits), `GET /healthz`, `GET /metrics`
//! (Prometheus text), `POST /v1/reconcile` (asks for a pass; needs the token), and the
//! git webhook `POST /hooks/git`. How connections are served, and bounded: [`listen`].

pub(crate) mod listen;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::mpsc;

use crate::reconcile::driver::{SharedStatus, Trigger};
use crate::reconcile::store::StepKind;
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
    /// Wall-clock time, for the commit age.
    pub clock: Arc<dyn crate::fence::Clock>,
}

/// The router.
pub fn router(state: ServerState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .route("/v1/reconcile", post(reconcile))
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
        // Nodes as observed most recently (also by passes that only waited).
        v.nodes = crate::status::NodeView::all(obs);
    }
    v.source_problem = s.source_problem;
    v.ha = s.ha;
    v.with_rejected_page(&s.rejected, page)
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
    let s = st.status.read().map(|s| s.clone()).unwrap_or_default();
    let mut out = String::new();
    out.push_str("# HELP quorate_passes_total Reconcile passes run since start.\n# TYPE quorate_passes_total counter\n");
    out.push_str(&format!("quorate_passes_total {}\n", s.passes));
    out.push_str("# HELP quorate_steps_total Plan steps carried out, by kind and result.\n# TYPE quorate_steps_total counter\n");
    for ((kind, result), n) in &s.steps {
        out.push_str(&format!(
            "quorate_steps_total{{kind=\"{}\",result=\"{}\"}} {n}\n",
            kind.as_str(),
            result.as_str()
        ));
    }
    let fences: u64 = s
        .steps
        .iter()
        .filter(|((kind, _), _)| *kind == StepKind::Fence)
        .map(|(_, n)| n)
        .sum();
    out.push_str("# HELP quorate_fence_attempts_total Fence steps run since start.\n# TYPE quorate_fence_attempts_total counter\n");
    out.push_str(&format!("quorate_fence_attempts_total {fences}\n"));
    out.push_str("# HELP quorate_store_failures_total Passes that did nothing because the state store could not be read or written.\n# TYPE quorate_store_failures_total counter\n");
    out.push_str(&format!(
        "quorate_store_failures_total {}\n",
        s.store_failures
    ));
    if let Some(q) = s.last_pass.as_ref().and_then(|p| p.plan.get("quorum")) {
        let n = |k: &str| q.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
        let quorate = q
            .get("quorate")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false);
        out.push_str("# HELP quorate_quorum_votes Votes present and expected at the last pass.\n# TYPE quorate_quorum_votes gauge\n");
        out.push_str(&format!("quorate_quorum_votes{{kind=\"present\"}} {}\nquorate_quorum_votes{{kind=\"expected\"}} {}\n", n("present"), n("expected")));
        out.push_str("# HELP quorate_quorate Whether the last pass had quorum.\n# TYPE quorate_quorate gauge\n");
        out.push_str(&format!("quorate_quorate {}\n", u8::from(quorate)));
    }
    if s.adopted_unix_ms > 0 {
        let age = (st.clock.now_unix_ms() - s.adopted_unix_ms).max(0) as f64 / 1000.0;
        out.push_str("# HELP quorate_commit_age_seconds Time since the commit in force was adopted.\n# TYPE quorate_commit_age_seconds gauge\n");
        out.push_str(&format!("quorate_commit_age_seconds {age:.3}\n"));
    }
    if let Some(ha) = &s.ha {
        out.push_str("# HELP quorate_leader Whether this replica leads and may act (HA mode).\n# TYPE quorate_leader gauge\n");
        let leads = ha.role == crate::ha::Role::Leader;
        out.push_str(&format!("quorate_leader {}\n", u8::from(leads)));
    }
    ([("content-type", "text/plain; version=0.0.4")], out).into_response()
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

/// Equality that takes the same time wherever the inputs differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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

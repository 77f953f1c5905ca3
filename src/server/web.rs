//! The read-only web page of `quorate run` at `/`: quorum, nodes and what runs on them,
//! blocked instances and why, the commit in force and refused commits with their findings,
//! the last passes with their plans and step results, and the fence history.
//!
//! Three static files compiled into the binary (no framework, no build step): the page,
//! its style and a small script that reads `GET /status` and `GET /history` every two
//! seconds and redraws, so the page follows the cluster without a reload. The script puts
//! every value into the page as text (never as markup): commit summaries and findings come
//! from whoever pushed. The Content-Security-Policy allows only these files and requests
//! to this server. Nothing on the page is a secret: it shows what `/status` and `/history`
//! serve (design invariant 7).

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

const PAGE: &str = include_str!("web/index.html");
const SCRIPT: &str = include_str!("web/ui.js");
const STYLE: &str = include_str!("web/ui.css");

/// What the page may load: itself, its script and style, and requests to this server.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                   connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; \
                   frame-ancestors 'none'";

/// The page's routes.
pub(crate) fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            "/",
            get(|| async { file("text/html; charset=utf-8", PAGE) }),
        )
        .route(
            "/ui.js",
            get(|| async { file("text/javascript; charset=utf-8", SCRIPT) }),
        )
        .route(
            "/ui.css",
            get(|| async { file("text/css; charset=utf-8", STYLE) }),
        )
}

fn file(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}

//! `GET /`: the dashboard, one page embedded in the binary. It polls `/v1/stats` and
//! draws its charts as plain SVG, so it loads nothing from elsewhere and works offline.

use axum::http::header;
use axum::response::IntoResponse;

/// The page: HTML, CSS and script in one file.
const PAGE: &str = include_str!("dashboard.html");

/// What the page may load: itself, and requests to this server. A browser refuses
/// anything else, so a change that pulls in an outside script fails loudly.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; connect-src 'self'; \
    script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:";

/// Serves the page. It holds no data (the figures come from `/v1/stats`, which over TCP
/// needs the token), so it is served without one.
pub(crate) async fn page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        PAGE,
    )
}

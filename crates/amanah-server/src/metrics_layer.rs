//! Request counts and latency by route template (never the raw path: ids are pseudonymous but
//! still per-person) and status.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;

/// The route template of a request (`/v1/subjects/{id}`), or `unmatched`.
pub fn route_label<B>(req: &axum::http::Request<B>) -> String {
    req.extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned())
}

pub async fn track(req: Request, next: Next) -> Response {
    let route = route_label(&req);
    let method = req.method().as_str().to_owned();
    let start = Instant::now();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    let labels = [("route", route), ("method", method), ("status", status)];
    metrics::counter!("amanah_http_requests_total", &labels).increment(1);
    metrics::histogram!("amanah_http_request_duration_seconds", &labels)
        .record(start.elapsed().as_secs_f64());
    response
}

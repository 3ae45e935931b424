//! Request counts and latency by route template (never the raw path: ids are pseudonymous but
//! still per-person), method and status; the separate `/metrics` listener; and the periodic
//! task that keeps gauges current and drains the recorder so memory stays flat without scrapes.
//!
//! Every label is bounded: routes are the router's templates (or `unmatched`), methods the
//! standard ones (anything else is `other`), statuses three digits.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use amanah_vault::Vault;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::problem::Problem;

/// The route template of a request (`/v1/subjects/{id}`), or `unmatched`.
pub fn route_label<B>(req: &axum::http::Request<B>) -> String {
    req.extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned())
}

/// The method as a label: one of the standard methods, else `other` (a client may send any
/// token as a method; each new one must not become a new series).
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "other",
    }
}

pub async fn track(req: Request, next: Next) -> Response {
    let route = route_label(&req);
    let method = method_label(req.method());
    let start = Instant::now();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    let labels = [
        ("route", route),
        ("method", method.to_owned()),
        ("status", status),
    ];
    metrics::counter!("amanah_http_requests_total", &labels).increment(1);
    metrics::histogram!("amanah_http_request_duration_seconds", &labels)
        .record(start.elapsed().as_secs_f64());
    response
}

/// The metrics listener's router: `GET /metrics` renders what the recorder holds (no database
/// query: gauges are kept current by [`spawn_upkeep`]); anything else is a 404 problem.
pub fn metrics_router(handle: PrometheusHandle) -> Router {
    Router::new()
        .route("/metrics", get(render))
        .fallback(|| async {
            Problem::new(
                StatusCode::NOT_FOUND,
                "not-found",
                "this listener serves GET /metrics only",
            )
        })
        .layer(axum::middleware::from_fn_with_state(
            false,
            crate::security_headers::set,
        ))
        .with_state(handle)
}

async fn render(State(handle): State<PrometheusHandle>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle.render(),
    )
        .into_response()
}

/// Upkeep rounds run since the process started (exported as `amanah_metrics_upkeep_runs_total`).
static UPKEEP_RUNS: AtomicU64 = AtomicU64::new(0);

/// One round of upkeep: refresh the request and breach gauges from the store, then drain the
/// recorder's histogram samples into its summaries (without this, samples pile up in memory
/// until a scrape renders them).
pub async fn upkeep(vault: &Vault, handle: &PrometheusHandle) {
    vault.refresh_request_gauges().await;
    vault.refresh_breach_gauges().await;
    handle.run_upkeep();
    let runs = UPKEEP_RUNS.fetch_add(1, Ordering::Relaxed) + 1;
    metrics::counter!("amanah_metrics_upkeep_runs_total").absolute(runs);
}

/// Runs [`upkeep`] every `every`, whether or not anything scrapes.
pub fn spawn_upkeep(
    vault: Arc<Vault>,
    handle: PrometheusHandle,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            upkeep(&vault, &handle).await;
        }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn methods_are_bounded() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::DELETE), "DELETE");
        for made_up in ["FOO", "get", "XYZZY123", "BREW"] {
            let m = Method::from_bytes(made_up.as_bytes()).unwrap();
            assert_eq!(method_label(&m), "other", "{made_up}");
        }
    }
}

//! Limits that keep one client from exhausting the server: a deadline per request, a bound on
//! requests in progress (beyond it, 503 with `Retry-After` at once rather than a queue), and a
//! deadline for a connection's request headers (slow-header clients), enforced by [`serve`].

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::sync::Semaphore;

use crate::problem::Problem;

/// Seconds a shed or timed-out client is asked to wait before retrying.
pub const RETRY_AFTER_SECS: u64 = 1;

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// A request still unanswered after this long gets 503 (its work may still complete: a
    /// write already queued commits, with its audit entry).
    pub request_timeout: Duration,
    /// Requests handled at once; one more gets 503 with `Retry-After`.
    pub max_concurrent_requests: usize,
    /// A connection must deliver a request's headers within this time, or it is closed.
    pub header_read_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            request_timeout: Duration::from_secs(30),
            max_concurrent_requests: 512,
            header_read_timeout: Duration::from_secs(10),
        }
    }
}

fn unavailable(code: &str, detail: String) -> Response {
    let mut response = Problem::new(StatusCode::SERVICE_UNAVAILABLE, code, detail).into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
    response
}

/// Admits a request only while fewer than the limit are in progress.
pub async fn shed(State(permits): State<Arc<Semaphore>>, req: Request, next: Next) -> Response {
    match permits.try_acquire() {
        Ok(_permit) => next.run(req).await,
        Err(_) => {
            metrics::counter!("amanah_http_shed_total").increment(1);
            unavailable(
                "overloaded",
                "the server is handling as many requests as it is allowed to; retry later".into(),
            )
        }
    }
}

/// Answers 503 when the request takes longer than the limit.
pub async fn timeout(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    // An upload's time is its file's size over the client's bandwidth: it is bounded by the
    // category's size and cut when it stalls, not by a deadline for the whole request.
    if crate::documents::is_upload(req.method(), req.uri().path()) {
        return next.run(req).await;
    }
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => {
            metrics::counter!("amanah_http_timeouts_total").increment(1);
            unavailable(
                "timeout",
                format!(
                    "the request was not answered within {} s",
                    limit.as_secs_f64()
                ),
            )
        }
    }
}

/// Bounds every request body to [`crate::BODY_LIMIT`] (413 when its length says more, or once
/// more arrives), except a document's upload, which its category's `max_size` bounds.
pub async fn body_limit(req: Request, next: Next) -> Response {
    if crate::documents::is_upload(req.method(), req.uri().path()) {
        return next.run(req).await;
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > crate::BODY_LIMIT as u64) {
        return Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            format!(
                "the request body is larger than {} bytes",
                crate::BODY_LIMIT
            ),
        )
        .into_response();
    }
    let (parts, body) = req.into_parts();
    let body = axum::body::Body::new(http_body_util::Limited::new(body, crate::BODY_LIMIT));
    next.run(Request::from_parts(parts, body)).await
}

/// Wraps a router (its routes, not its fallback only) in the timeout and the concurrency bound.
pub fn apply<S: Clone + Send + Sync + 'static>(router: Router<S>, limits: &Limits) -> Router<S> {
    let permits = Arc::new(Semaphore::new(limits.max_concurrent_requests.max(1)));
    router
        .layer(axum::middleware::from_fn_with_state(
            limits.request_timeout,
            timeout,
        ))
        .layer(axum::middleware::from_fn_with_state(permits, shed))
}

/// Serves plain HTTP/1.1 on `listener` until `shutdown` completes, then lets requests in
/// progress finish. Unlike `axum::serve`, a connection that does not send a request's headers
/// within `header_read_timeout` is closed.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    header_read_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait a moment instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = stream;
        let _ = stream.set_nodelay(true);
        // The peer's address, for limits per client (the portal's code sends).
        let service = tower::ServiceExt::map_request(
            app.clone(),
            move |mut req: axum::http::Request<hyper::body::Incoming>| {
                req.extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                req
            },
        );
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(header_read_timeout)
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

//! Headers on every response: responses carry personal data, so nothing may cache them
//! (`Cache-Control: no-store`), browsers must not guess their type (`nosniff`), follow links
//! from them with a referrer, or frame them; under TLS, `Strict-Transport-Security` keeps
//! browsers on HTTPS.

use axum::extract::{Request, State};
use axum::http::header::{self, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

/// One year, without `includeSubDomains`: the vault's host decides for itself only.
pub const HSTS: &str = "max-age=31536000";

const COMMON: [(HeaderName, &str); 5] = [
    (header::CACHE_CONTROL, "no-store"),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::REFERRER_POLICY, "no-referrer"),
    (header::X_FRAME_OPTIONS, "DENY"),
    (
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; frame-ancestors 'none'",
    ),
];

fn add(response: &mut Response, tls: bool) {
    let headers = response.headers_mut();
    for (name, value) in COMMON {
        // A page that loads its own stylesheet (the portal) states its own policy.
        if name == header::CONTENT_SECURITY_POLICY && headers.contains_key(&name) {
            continue;
        }
        headers.insert(name, HeaderValue::from_static(value));
    }
    if tls {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static(HSTS),
        );
    }
}

/// Adds the headers to every response; `tls` (the state) adds HSTS.
pub async fn set(State(tls): State<bool>, req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    add(&mut response, tls);
    response
}

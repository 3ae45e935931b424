//! RFC 9457 problem details: the single mapping from the domain error to HTTP.

use amanah_core::Error;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem, `urn:amanah:problem:<code>`, with a stable code:
    /// `bad-request`, `unauthenticated`, `forbidden`, `consent-required`, `not-found`, `gone`,
    /// `invalid`, `payload-too-large`, `unsupported-media-type`, `range-not-satisfiable` (with
    /// `Content-Range: bytes */<size>`), `internal`, and for 409:
    /// `unique-value-taken`, `legal-hold-active`, `invalid-transition`, `release-limit-reached`,
    /// `policy-changed`, `store-state`, `subject-quota-reached`, `tenant-name-taken`; for 429
    /// (with `Retry-After`): `rate-limited`; for 503 (with `Retry-After`): `overloaded`,
    /// `timeout`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// The request field the problem is about, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// A header the problem's status calls for.
    #[serde(skip)]
    pub header: Option<ProblemHeader>,
}

/// The header some problems carry beside their body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemHeader {
    /// Seconds to wait before retrying (`Retry-After`).
    RetryAfter(u64),
    /// The size of the document a range did not fit (`Content-Range: bytes */<size>`).
    UnsatisfiedRange(u64),
}

impl Problem {
    pub fn new(status: StatusCode, code: &str, detail: impl Into<String>) -> Self {
        Problem {
            kind: format!("urn:amanah:problem:{code}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            field: None,
            header: None,
        }
    }
}

impl From<Error> for Problem {
    fn from(e: Error) -> Self {
        let status = match &e {
            Error::Unauthenticated => StatusCode::UNAUTHORIZED,
            Error::Forbidden(_) | Error::ConsentRequired(_) => StatusCode::FORBIDDEN,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Gone(_) => StatusCode::GONE,
            Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            Error::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Error::Conflict(..) => StatusCode::CONFLICT,
            Error::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            Error::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Error::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Error::RangeNotSatisfiable(_) => StatusCode::RANGE_NOT_SATISFIABLE,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let detail = match &e {
            // Internal details go to the log only.
            Error::Internal(_) => {
                "the vault could not complete the request; see the server log".to_owned()
            }
            other => other.to_string(),
        };
        let mut p = Problem::new(status, e.code(), detail);
        match e {
            Error::Invalid { field, .. } => p.field = field,
            Error::RateLimited(seconds) => p.header = Some(ProblemHeader::RetryAfter(seconds)),
            Error::RangeNotSatisfiable(size) => {
                p.header = Some(ProblemHeader::UnsatisfiedRange(size))
            }
            _ => {}
        }
        p
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (
            status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            body,
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        match self.header {
            Some(ProblemHeader::RetryAfter(seconds)) => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, header::HeaderValue::from(seconds));
            }
            Some(ProblemHeader::UnsatisfiedRange(size)) => {
                if let Ok(v) = header::HeaderValue::from_str(&format!("bytes */{size}")) {
                    response.headers_mut().insert(header::CONTENT_RANGE, v);
                }
            }
            None => {}
        }
        response
    }
}

/// Errors produced below the handlers (a body over the size limit, a framework rejection) come
/// as plain text; rewrite them so that every error the API returns is problem+json.
pub async fn plain_errors_as_problems(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| {
            // The privacy portal's pages are HTML, their errors too.
            v.as_bytes().starts_with(b"application/problem+json")
                || v.as_bytes().starts_with(b"text/html")
        });
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return response;
    }
    let (code, detail) = match status {
        StatusCode::PAYLOAD_TOO_LARGE => (
            "payload-too-large",
            format!(
                "the request body is larger than {} bytes",
                crate::BODY_LIMIT
            ),
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "unsupported-media-type",
            "unsupported content type".to_owned(),
        ),
        _ => (
            "error",
            status.canonical_reason().unwrap_or("error").to_owned(),
        ),
    };
    Problem::new(status, code, detail).into_response()
}

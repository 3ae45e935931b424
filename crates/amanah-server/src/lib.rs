//! Amanah's HTTP API: a thin shell over [`amanah_vault::Vault`]. Handlers parse the request,
//! call one vault operation and map its result; every error leaves through [`problem::Problem`]
//! as RFC 9457 `application/problem+json`.

mod accountability;
mod auth;
mod consents;
mod csv_out;
mod handlers;
pub mod limits;
pub mod metrics_layer;
mod openapi;
pub mod problem;
mod query;
mod rights;
pub mod routes;
pub mod security_headers;

use std::sync::Arc;

use amanah_vault::Vault;
use axum::routing::{get, post};
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use utoipa::OpenApi;

pub use handlers::ApiDoc;
pub use limits::Limits;
pub use metrics_layer::{metrics_router, spawn_upkeep};
pub use rights::describe as describe_retention;

/// Largest request body accepted (a subject's fields, a policy file).
pub const BODY_LIMIT: usize = 1024 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub vault: Arc<Vault>,
}

/// How the API is served.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    pub limits: Limits,
    /// Served over TLS: responses carry `Strict-Transport-Security`.
    pub tls: bool,
}

/// Installs the global Prometheus recorder once per process and returns its handle.
pub fn prometheus() -> Option<PrometheusHandle> {
    static HANDLE: std::sync::OnceLock<Option<PrometheusHandle>> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            metrics_exporter_prometheus::PrometheusBuilder::new()
                .install_recorder()
                .ok()
        })
        .clone()
}

/// The whole API with the default limits, over plain HTTP.
pub fn router(state: AppState) -> Router {
    router_with(state, &Options::default())
}

/// The whole API. `/metrics` is not part of it: it has a listener of its own
/// ([`metrics_router`]), and here answers 404 like any unknown route.
pub fn router_with(state: AppState, options: &Options) -> Router {
    let api = Router::new()
        .route(
            "/v1/subjects",
            post(handlers::create_subject).get(handlers::search_subjects),
        )
        .route(
            "/v1/subjects/{id}",
            get(handlers::read_subject)
                .patch(handlers::update_subject)
                .delete(rights::erase_subject),
        )
        .route("/v1/subjects/{id}/purposes", post(handlers::enroll_subject))
        .route("/v1/subjects/{id}/export", get(rights::export_subject))
        .route(
            "/v1/subjects/{id}/restriction",
            post(rights::restrict).delete(rights::lift_restriction),
        )
        .route(
            "/v1/subjects/{id}/holds",
            post(rights::add_hold).get(rights::list_holds),
        )
        .route(
            "/v1/subjects/{id}/holds/{hold_id}",
            axum::routing::delete(rights::release_hold),
        )
        .route("/v1/subjects/{id}/end", post(rights::end_relationship))
        .route(
            "/v1/requests",
            post(rights::create_request).get(rights::list_requests),
        )
        .route(
            "/v1/requests/{id}",
            get(rights::get_request).patch(rights::update_request),
        )
        .route("/v1/retention/sweep", post(rights::retention_sweep))
        .route(
            "/v1/subjects/{id}/consents",
            post(consents::record_consent).get(consents::consent_history),
        )
        .route(
            "/v1/subjects/{id}/relations",
            post(consents::add_relation).get(consents::relations),
        )
        .route("/v1/consents/stale", get(consents::stale_consents))
        .route("/v1/contactable", get(consents::contactable))
        .route(
            "/v1/disclosures",
            post(accountability::create_disclosure).get(accountability::list_disclosures),
        )
        .route("/v1/disclosures/{id}", get(accountability::get_disclosure))
        .route(
            "/v1/disclosures/{id}/approve",
            post(accountability::approve_disclosure),
        )
        .route(
            "/v1/disclosures/{id}/authorize",
            post(accountability::authorize_disclosure),
        )
        .route(
            "/v1/disclosures/{id}/reject",
            post(accountability::reject_disclosure),
        )
        .route(
            "/v1/disclosures/{id}/package",
            get(accountability::disclosure_package),
        )
        .route(
            "/v1/breaches",
            post(accountability::create_breach).get(accountability::list_breaches),
        )
        .route("/v1/breaches/{id}", get(accountability::get_breach))
        .route(
            "/v1/breaches/{id}/notices",
            get(accountability::breach_notices),
        )
        .route(
            "/v1/breaches/{id}/notices/sent",
            post(accountability::mark_notices_sent),
        )
        .route("/v1/ropa", get(accountability::ropa))
        .route("/v1/audit", get(handlers::audit_entries))
        .route("/v1/audit/verify", get(handlers::audit_verify))
        .route(
            "/v1/keys",
            get(handlers::list_keys).post(handlers::create_key),
        )
        .route("/v1/keys/{id}", axum::routing::delete(handlers::revoke_key))
        .route(
            "/v1/policy",
            get(handlers::get_policy).put(handlers::put_policy),
        )
        .route("/healthz", get(handlers::healthz))
        .route("/openapi.json", get(openapi_json))
        .fallback(handlers::not_found)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .layer(tower_http::limit::RequestBodyLimitLayer::new(BODY_LIMIT));
    limits::apply(api, &options.limits)
        .layer(axum::middleware::from_fn(problem::plain_errors_as_problems))
        .layer(axum::middleware::from_fn(metrics_layer::track))
        .layer(
            // The span names the route template only: query strings carry search values
            // (personal data) and must never reach a log.
            tower_http::trace::TraceLayer::new_for_http().make_span_with(
                |req: &axum::http::Request<axum::body::Body>| {
                    let route = metrics_layer::route_label(req);
                    let method = metrics_layer::method_label(req.method());
                    tracing::info_span!("request", method = %method, route = %route)
                },
            ),
        )
        .layer(axum::middleware::from_fn_with_state(
            options.tls,
            security_headers::set,
        ))
        .with_state(state)
}

async fn openapi_json() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(ApiDoc::openapi())
}

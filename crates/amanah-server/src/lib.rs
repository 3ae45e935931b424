//! Amanah's HTTP API: a thin shell over [`amanah_vault::Vault`]. Handlers parse the request,
//! call one vault operation and map its result; every error leaves through [`problem::Problem`]
//! as RFC 9457 `application/problem+json`.

mod accountability;
mod auth;
mod consents;
pub mod console;
mod csv_out;
mod documents;
mod handlers;
pub mod limits;
pub mod metrics_layer;
pub mod openapi;
pub mod portal;
pub mod problem;
mod query;
mod rights;
pub mod routes;
pub mod security_headers;
mod tenants;
pub mod web;

use std::sync::Arc;

use amanah_vault::{Deployment, SingleOrganization, Vault};
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;

pub use limits::Limits;
pub use metrics_layer::{metrics_router, spawn_upkeep};
pub use rights::describe as describe_retention;

/// Largest request body accepted (a subject's fields, a policy file).
pub const BODY_LIMIT: usize = 1024 * 1024;

#[derive(Clone)]
pub struct AppState {
    /// Every organization the server hosts; a request's key picks its vault.
    pub deployment: Arc<Deployment>,
    /// The data subjects' privacy portal (`/portal`), for the deployment's own organization.
    pub portal: Option<Arc<portal::Portal>>,
    /// The officers' console (`/console`), for every organization's key holders.
    pub console: Option<Arc<console::Console>>,
}

impl AppState {
    /// A server for one organization (it hosts no other).
    pub fn new(vault: Arc<Vault>) -> Self {
        let deployment = Deployment::new(vault.clone(), Arc::new(SingleOrganization));
        AppState::hosting(Arc::new(deployment))
    }

    /// A server for every organization of `deployment`.
    pub fn hosting(deployment: Arc<Deployment>) -> Self {
        AppState {
            deployment,
            portal: None,
            console: None,
        }
    }

    /// The same server with the privacy portal (`/portal`) served too.
    pub fn with_portal(mut self, portal: Arc<portal::Portal>) -> Self {
        self.portal = Some(portal);
        self
    }

    /// The same server with the officers' console (`/console`) served too.
    pub fn with_console(mut self, console: Arc<console::Console>) -> Self {
        self.console = Some(console);
        self
    }

    /// The deployment's own organization (its policy describes the public OpenAPI document).
    pub fn vault(&self) -> &Arc<Vault> {
        self.deployment.own()
    }
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
    let (api, _) = routes::build();
    let api = if state.portal.is_some() {
        api.merge(portal::router())
    } else {
        api
    };
    let api = if state.console.is_some() {
        api.merge(console::router())
    } else {
        api
    };
    let api = api
        .fallback(handlers::not_found)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .layer(axum::Extension(Arc::new(openapi::DocCache::default())))
        .layer(axum::middleware::from_fn(limits::body_limit));
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

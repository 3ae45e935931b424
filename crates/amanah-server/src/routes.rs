//! The one list of the API's routes. Each row is a handler and the action its handler
//! authorizes (none for the public routes); the handler's `#[utoipa::path]` annotation gives its
//! method and path. The router ([`crate::router_with`]), the OpenAPI document
//! ([`crate::openapi`]) and the tests ([`all`]) are all built from [`table`], so a route cannot
//! be served without being documented, nor without an action the authorization walk checks.

use std::sync::LazyLock;

use amanah_core::authz::Action;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};
use utoipa_axum::routes;

use crate::{accountability, consents, documents, handlers, openapi, rights, tenants, AppState};

/// One route: its method, its path template, and the action its handler authorizes (`None`:
/// anyone may call it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub method: &'static str,
    pub path: String,
    pub action: Option<Action>,
}

/// Every route: the handler (its annotation gives method and path) and its action. A PATCH of a
/// subject with `?request=` is `SubjectRectify`; a consent body with `granted: false` is
/// `ConsentWithdraw`. (`GET /metrics` is not on the API's router: it is served by a listener of
/// its own, `--metrics-listen`.)
fn table() -> Vec<(UtoipaMethodRouter<AppState>, Option<Action>)> {
    use Action as A;
    vec![
        (routes!(handlers::create_subject), Some(A::SubjectCreate)),
        (routes!(handlers::search_subjects), Some(A::SubjectSearch)),
        (routes!(handlers::read_subject), Some(A::SubjectRead)),
        (routes!(handlers::update_subject), Some(A::SubjectUpdate)),
        (routes!(rights::erase_subject), Some(A::SubjectErase)),
        (routes!(handlers::enroll_subject), Some(A::SubjectEnroll)),
        (routes!(documents::upload_document), Some(A::DocumentUpload)),
        (routes!(documents::list_documents), Some(A::DocumentList)),
        (routes!(documents::download_document), Some(A::DocumentRead)),
        (routes!(rights::export_subject), Some(A::SubjectExport)),
        (routes!(rights::restrict), Some(A::SubjectRestrict)),
        (
            routes!(rights::lift_restriction),
            Some(A::SubjectUnrestrict),
        ),
        (routes!(rights::add_hold), Some(A::HoldCreate)),
        (routes!(rights::list_holds), Some(A::HoldRead)),
        (routes!(rights::release_hold), Some(A::HoldRelease)),
        (routes!(rights::end_relationship), Some(A::SubjectEnd)),
        (routes!(consents::record_consent), Some(A::ConsentGrant)),
        (routes!(consents::consent_history), Some(A::ConsentRead)),
        (routes!(consents::add_relation), Some(A::RelationCreate)),
        (routes!(consents::relations), Some(A::RelationRead)),
        (routes!(consents::stale_consents), Some(A::ConsentStale)),
        (routes!(consents::contactable), Some(A::ContactList)),
        (routes!(rights::create_request), Some(A::RequestCreate)),
        (routes!(rights::list_requests), Some(A::RequestList)),
        (routes!(rights::get_request), Some(A::RequestRead)),
        (routes!(rights::update_request), Some(A::RequestUpdate)),
        (routes!(rights::retention_sweep), Some(A::RetentionSweep)),
        (
            routes!(accountability::create_disclosure),
            Some(A::DisclosureRequest),
        ),
        (
            routes!(accountability::list_disclosures),
            Some(A::DisclosureList),
        ),
        (
            routes!(accountability::get_disclosure),
            Some(A::DisclosureRead),
        ),
        (
            routes!(accountability::approve_disclosure),
            Some(A::DisclosureApprove),
        ),
        (
            routes!(accountability::authorize_disclosure),
            Some(A::DisclosureAuthorize),
        ),
        (
            routes!(accountability::reject_disclosure),
            Some(A::DisclosureReject),
        ),
        (
            routes!(accountability::disclosure_package),
            Some(A::DisclosureRelease),
        ),
        (
            routes!(accountability::create_breach),
            Some(A::BreachRecord),
        ),
        (routes!(accountability::list_breaches), Some(A::BreachList)),
        (routes!(accountability::get_breach), Some(A::BreachRead)),
        (
            routes!(accountability::breach_notices),
            Some(A::BreachNotices),
        ),
        (
            routes!(accountability::mark_notices_sent),
            Some(A::BreachNotified),
        ),
        (routes!(accountability::ropa), Some(A::Ropa)),
        (routes!(handlers::audit_entries), Some(A::AuditRead)),
        (routes!(handlers::audit_verify), Some(A::AuditVerify)),
        (routes!(handlers::list_keys), Some(A::KeyList)),
        (routes!(handlers::create_key), Some(A::KeyCreate)),
        (routes!(handlers::revoke_key), Some(A::KeyRevoke)),
        (routes!(handlers::get_policy), Some(A::PolicyRead)),
        (routes!(handlers::put_policy), Some(A::PolicyApply)),
        (routes!(tenants::create_tenant), Some(A::TenantCreate)),
        (routes!(tenants::list_tenants), Some(A::TenantList)),
        (routes!(tenants::get_tenant), Some(A::TenantRead)),
        (routes!(tenants::update_tenant), Some(A::TenantUpdate)),
        (routes!(tenants::suspend_tenant), Some(A::TenantSuspend)),
        (routes!(tenants::resume_tenant), Some(A::TenantResume)),
        (routes!(tenants::delete_tenant), Some(A::TenantDelete)),
        (routes!(handlers::healthz), None),
        (routes!(openapi::openapi_json), None),
    ]
}

/// The routes of [`table`] on an axum router, and the OpenAPI paths they document.
pub(crate) fn build() -> (axum::Router<AppState>, utoipa::openapi::OpenApi) {
    use utoipa::OpenApi as _;
    table()
        .into_iter()
        .fold(
            OpenApiRouter::with_openapi(openapi::ApiDoc::openapi()),
            |router, (route, _)| router.routes(route),
        )
        .split_for_parts()
}

/// Every route of [`table`], in its order: what the tests walk.
pub fn all() -> &'static [Route] {
    static ALL: LazyLock<Vec<Route>> = LazyLock::new(|| {
        let mut out = Vec::new();
        for ((_, paths, _), action) in table() {
            for (path, item) in paths.paths {
                for (method, present) in [
                    ("GET", item.get.is_some()),
                    ("POST", item.post.is_some()),
                    ("PUT", item.put.is_some()),
                    ("PATCH", item.patch.is_some()),
                    ("DELETE", item.delete.is_some()),
                ] {
                    if present {
                        out.push(Route {
                            method,
                            path: path.clone(),
                            action,
                        });
                    }
                }
            }
        }
        out
    });
    &ALL
}

/// The routes whose handler authorizes an action, with that action.
pub fn protected() -> impl Iterator<Item = (&'static Route, Action)> {
    all().iter().filter_map(|r| r.action.map(|a| (r, a)))
}

//! Every API route with the action the decision point decides for it. The router, the OpenAPI
//! document and the authorization test cover the same set: `tests/authz.rs` fails when a route
//! is served or documented without a row here.

use amanah_core::authz::Action;

/// One route: its method, its path template, and the action its handler authorizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub action: Action,
}

const fn r(method: &'static str, path: &'static str, action: Action) -> Route {
    Route {
        method,
        path,
        action,
    }
}

/// Routes anyone may call: liveness and the API description. (`GET /metrics` is not on the
/// API's router: it is served by a listener of its own, `--metrics-listen`.)
pub const PUBLIC: &[(&str, &str)] = &[("GET", "/healthz"), ("GET", "/openapi.json")];

/// The protected routes. A PATCH with `?request=` is `SubjectRectify`; a consent body with
/// `granted: false` is `ConsentWithdraw`.
pub const ROUTES: &[Route] = &[
    r("POST", "/v1/subjects", Action::SubjectCreate),
    r("GET", "/v1/subjects", Action::SubjectSearch),
    r("GET", "/v1/subjects/{id}", Action::SubjectRead),
    r("PATCH", "/v1/subjects/{id}", Action::SubjectUpdate),
    r("DELETE", "/v1/subjects/{id}", Action::SubjectErase),
    r("POST", "/v1/subjects/{id}/purposes", Action::SubjectEnroll),
    r("GET", "/v1/subjects/{id}/export", Action::SubjectExport),
    r(
        "POST",
        "/v1/subjects/{id}/restriction",
        Action::SubjectRestrict,
    ),
    r(
        "DELETE",
        "/v1/subjects/{id}/restriction",
        Action::SubjectUnrestrict,
    ),
    r("POST", "/v1/subjects/{id}/holds", Action::HoldCreate),
    r("GET", "/v1/subjects/{id}/holds", Action::HoldRead),
    r(
        "DELETE",
        "/v1/subjects/{id}/holds/{hold_id}",
        Action::HoldRelease,
    ),
    r("POST", "/v1/subjects/{id}/end", Action::SubjectEnd),
    r("POST", "/v1/subjects/{id}/consents", Action::ConsentGrant),
    r("GET", "/v1/subjects/{id}/consents", Action::ConsentRead),
    r(
        "POST",
        "/v1/subjects/{id}/relations",
        Action::RelationCreate,
    ),
    r("GET", "/v1/subjects/{id}/relations", Action::RelationRead),
    r("GET", "/v1/consents/stale", Action::ConsentStale),
    r("GET", "/v1/contactable", Action::ContactList),
    r("POST", "/v1/requests", Action::RequestCreate),
    r("GET", "/v1/requests", Action::RequestList),
    r("GET", "/v1/requests/{id}", Action::RequestRead),
    r("PATCH", "/v1/requests/{id}", Action::RequestUpdate),
    r("POST", "/v1/retention/sweep", Action::RetentionSweep),
    r("POST", "/v1/disclosures", Action::DisclosureRequest),
    r("GET", "/v1/disclosures", Action::DisclosureList),
    r("GET", "/v1/disclosures/{id}", Action::DisclosureRead),
    r(
        "POST",
        "/v1/disclosures/{id}/approve",
        Action::DisclosureApprove,
    ),
    r(
        "POST",
        "/v1/disclosures/{id}/authorize",
        Action::DisclosureAuthorize,
    ),
    r(
        "POST",
        "/v1/disclosures/{id}/reject",
        Action::DisclosureReject,
    ),
    r(
        "GET",
        "/v1/disclosures/{id}/package",
        Action::DisclosureRelease,
    ),
    r("POST", "/v1/breaches", Action::BreachRecord),
    r("GET", "/v1/breaches", Action::BreachList),
    r("GET", "/v1/breaches/{id}", Action::BreachRead),
    r("GET", "/v1/breaches/{id}/notices", Action::BreachNotices),
    r(
        "POST",
        "/v1/breaches/{id}/notices/sent",
        Action::BreachNotified,
    ),
    r("GET", "/v1/ropa", Action::Ropa),
    r("GET", "/v1/audit", Action::AuditRead),
    r("GET", "/v1/audit/verify", Action::AuditVerify),
    r("GET", "/v1/keys", Action::KeyList),
    r("POST", "/v1/keys", Action::KeyCreate),
    r("DELETE", "/v1/keys/{id}", Action::KeyRevoke),
    r("GET", "/v1/policy", Action::PolicyRead),
    r("PUT", "/v1/policy", Action::PolicyApply),
];

//! The OpenAPI document: every route's operation, the schemas, and what every route shares
//! (bearer authentication, errors as problem+json).

use utoipa::OpenApi;

use crate::consents;
use crate::problem::Problem;
use crate::{accountability, rights};

use crate::handlers::*;

#[derive(OpenApi)]
#[openapi(
    info(title = "Amanah", description = "Personal-data vault: per-person envelope encryption, policy-checked and audited access."),
    paths(create_subject, search_subjects, read_subject, update_subject, enroll_subject, audit_entries, audit_verify,
          list_keys, create_key, revoke_key, get_policy, put_policy, healthz,
          consents::record_consent, consents::consent_history, consents::stale_consents,
          consents::contactable, consents::add_relation, consents::relations,
          rights::create_request, rights::list_requests, rights::get_request, rights::update_request,
          rights::export_subject, rights::restrict, rights::lift_restriction, rights::add_hold,
          rights::list_holds, rights::release_hold, rights::erase_subject, rights::end_relationship,
          rights::retention_sweep,
          accountability::create_disclosure, accountability::list_disclosures, accountability::get_disclosure,
          accountability::approve_disclosure, accountability::authorize_disclosure, accountability::reject_disclosure,
          accountability::disclosure_package, accountability::create_breach, accountability::list_breaches,
          accountability::get_breach, accountability::breach_notices, accountability::mark_notices_sent,
          accountability::ropa),
    components(schemas(Problem, SubjectBody, SubjectOut, CreatedOut, SubjectsOut, AuditEntryOut, AuditOut,
                       VerifyOut, KeyOut, KeysOut, NewKeyBody, NewKeyOut, PolicyOut, EnrollBody, EnrollmentOut,
                       consents::ConsentBody, consents::GuardianBody, consents::ConsentOut, consents::ReceiptOut,
                       consents::RecordedConsentOut, consents::ConsentHistoryOut, consents::PurposeConsentOut,
                       consents::StaleOut, consents::StaleSubjectOut, consents::ContactableOut,
                       consents::RelationBody, consents::RelationOut, consents::RelationsOut,
                       rights::NewRequestBody, rights::RefusalBody, rights::RequestUpdateBody, rights::RefusalOut,
                       rights::RequestOut, rights::RequestsOut, rights::RestrictionBody, rights::HoldBody,
                       rights::HoldOut, rights::HoldsOut, rights::SweepItemOut, rights::SweepOut,
                       accountability::DisclosureBody, accountability::StepBody, accountability::ExcludedOut,
                       accountability::DisclosureOut, accountability::ReleasePreviewOut, accountability::DisclosuresOut, accountability::PackageSubjectOut,
                       accountability::PackageOut, accountability::BreachBody, accountability::BreachOut,
                       accountability::BreachesOut, accountability::NoticeTextOut, accountability::NoticeOut,
                       accountability::NoticesOut)),
    modifiers(&BearerAuth, &ProblemResponses)
)]
pub struct ApiDoc;

struct BearerAuth;

/// Errors are RFC 9457 problems: every 4xx/5xx response is documented as
/// `application/problem+json` with the `Problem` schema, and every protected route documents the
/// answers any of them can give (400 malformed request, 401 no valid key, 403 refused by the
/// decision point). Every route documents 503 with `Retry-After`: the server's limits (too many
/// requests in progress, a request not answered in time) apply to all of them.
struct ProblemResponses;

impl utoipa::Modify for ProblemResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::header::HeaderBuilder;
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
        let problem = || {
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build()
        };
        for (path, item) in openapi.paths.paths.iter_mut() {
            let protected = path.starts_with("/v1/");
            let operations = [
                item.get.as_mut(),
                item.post.as_mut(),
                item.put.as_mut(),
                item.patch.as_mut(),
                item.delete.as_mut(),
            ];
            for op in operations.into_iter().flatten() {
                let responses = &mut op.responses.responses;
                responses.entry("503".to_owned()).or_insert_with(|| {
                    RefOr::T(
                        ResponseBuilder::new()
                            .description(
                                "the server is at its limit of requests in progress \
                                 (`overloaded`) or did not answer in time (`timeout`)",
                            )
                            .header(
                                "Retry-After",
                                HeaderBuilder::new()
                                    .schema(ObjectBuilder::new().schema_type(Type::Integer))
                                    .description(Some("seconds to wait before retrying"))
                                    .build(),
                            )
                            .build(),
                    )
                });
                if protected {
                    for (status, text) in [
                        ("400", "malformed request (query, path or JSON body)"),
                        ("401", "no valid API key"),
                        (
                            "403",
                            "refused by the decision point (recorded in the audit log)",
                        ),
                    ] {
                        responses.entry(status.to_owned()).or_insert_with(|| {
                            RefOr::T(ResponseBuilder::new().description(text).build())
                        });
                    }
                }
                for (status, response) in responses.iter_mut() {
                    let error = status.starts_with('4') || status.starts_with('5');
                    if let (true, RefOr::T(r)) = (error, response) {
                        r.content.shift_remove("application/json");
                        r.content
                            .insert("application/problem+json".to_owned(), problem());
                    }
                }
            }
        }
    }
}

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        openapi.security = Some(vec![utoipa::openapi::security::SecurityRequirement::new(
            "bearer",
            Vec::<String>::new(),
        )]);
    }
}

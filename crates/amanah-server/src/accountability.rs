//! Accountability routes: disclosures (request, approve, authorize, reject, release the
//! package), the breach register with its notices, and the record of processing. Thin mappings
//! onto the vault.

use amanah_core::Error;
use amanah_core::Timestamp;
use amanah_vault::{
    act, BreachInput, BreachView, DisclosureInput, DisclosureView, NoticeView, Package, Principal,
    Target,
};
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Authenticated;
use crate::handlers::{csv_attachment, json_body, ApiResult};
use crate::problem::Problem;
use crate::query::{ApiQuery, DisclosureStatusFilter, FileFormat, Flag, Limit, RopaFormat};
use crate::rights::FileQuery;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DisclosureBody {
    /// A recipient the policy declares.
    pub recipient: String,
    /// A purpose the caller's role holds and the recipient is declared for.
    pub purpose: String,
    pub subject_ids: Vec<String>,
    pub categories: Vec<String>,
    /// Why (an organizational text: never put a subject's data in it).
    pub reason: String,
    /// The order's number for an authority, or any external reference.
    pub reference: Option<String>,
    /// How many times the package may be released (1 to 10, default 3).
    pub max_releases: Option<u32>,
    /// `exclude` (default): subjects without the consent the disclosure needs are left out and
    /// listed; `refuse`: the whole request is refused.
    pub if_consent_missing: Option<String>,
    /// Authority orders only: tell the subjects no earlier than this day (YYYY-MM-DD).
    pub defer_notification_until: Option<String>,
    pub deferral_reason: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StepBody {
    /// Required to reject.
    pub reason: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ExcludedOut {
    pub subject_id: String,
    pub reason: String,
}

#[derive(Serialize, ToSchema)]
pub struct DisclosureOut {
    pub id: String,
    /// pending_approval, approved, authorized, released or rejected.
    pub status: String,
    pub recipient: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipient_kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transfer_basis: Option<String>,
    pub purpose: String,
    pub subject_ids: Vec<String>,
    pub categories: Vec<String>,
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// not_required, all_valid, or subjects_excluded (they are listed in `excluded`).
    pub consent_check: String,
    /// Exactly what a release would hand over: what the approver and the authorizer decide on.
    pub release_preview: ReleasePreviewOut,
    pub excluded: Vec<ExcludedOut>,
    pub requested_by: String,
    #[schema(value_type = String, format = DateTime)]
    pub requested_at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub approved_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorized_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub authorized_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejected_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub rejected_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejection_reason: Option<String>,
    pub releases: u32,
    pub max_releases: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notification_deferred_until: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deferral_reason: Option<String>,
}

/// What a release of a disclosure carries.
#[derive(Serialize, ToSchema)]
pub struct ReleasePreviewOut {
    /// Categories released (in clear, or pseudonymized when `pseudonymized`).
    pub categories: Vec<String>,
    /// Requested categories withheld because the recipient takes pseudonymized data only.
    pub withheld_categories: Vec<String>,
    pub subjects: usize,
    /// Subjects appear as per-disclosure pseudonyms, not ids.
    pub pseudonymized: bool,
}

impl From<DisclosureView> for DisclosureOut {
    fn from(v: DisclosureView) -> Self {
        let r = v.record;
        DisclosureOut {
            id: r.id,
            status: r.status,
            recipient: r.recipient,
            recipient_kind: v.kind,
            country: v.country,
            transfer_basis: v.transfer_basis,
            purpose: r.purpose,
            subject_ids: r.subject_ids,
            categories: r.categories,
            reason: r.reason,
            reference: r.reference,
            consent_check: v.consent_check.to_owned(),
            release_preview: ReleasePreviewOut {
                categories: v.preview.categories,
                withheld_categories: v.preview.withheld_categories,
                subjects: v.preview.subjects,
                pseudonymized: v.preview.pseudonymized,
            },
            excluded: v
                .excluded
                .into_iter()
                .map(|e| ExcludedOut {
                    subject_id: e.subject_id,
                    reason: e.reason,
                })
                .collect(),
            requested_by: r.requested_by,
            requested_at: Timestamp::from_micros(r.requested_at_micros),
            approved_by: r.approved_by,
            approved_at: r.approved_at_micros.map(Timestamp::from_micros),
            authorized_by: r.authorized_by,
            authorized_at: r.authorized_at_micros.map(Timestamp::from_micros),
            rejected_by: r.rejected_by,
            rejected_at: r.rejected_at_micros.map(Timestamp::from_micros),
            rejection_reason: r.rejection_reason,
            releases: r.releases,
            max_releases: r.max_releases,
            notification_deferred_until: r.notification_deferred_until,
            deferral_reason: r.deferral_reason,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct DisclosuresOut {
    pub disclosures: Vec<DisclosureOut>,
}

#[derive(Serialize, ToSchema)]
pub struct PackageSubjectOut {
    /// The subject id, or a per-disclosure pseudonym (`ps-...`) for a recipient with
    /// `pseudonymize = true`.
    pub id: String,
    #[schema(value_type = Object)]
    pub fields: Map<String, Value>,
}

#[derive(Serialize, ToSchema)]
pub struct PackageOut {
    pub format: String,
    pub disclosure_id: String,
    pub recipient: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    pub purpose: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// 1 for the first release.
    pub release: u32,
    pub max_releases: u32,
    pub pseudonymized: bool,
    pub categories: Vec<String>,
    /// Identifying categories a pseudonymized package leaves out.
    pub withheld_categories: Vec<String>,
    /// Subjects left out at release (erased, restricted, consent withdrawn since).
    pub left_out: u64,
    #[schema(value_type = String, format = DateTime)]
    pub released_at: Timestamp,
    pub subjects: Vec<PackageSubjectOut>,
}

impl From<Package> for PackageOut {
    fn from(p: Package) -> Self {
        let r = p.disclosure.record;
        PackageOut {
            format: "amanah-disclosure/1".into(),
            disclosure_id: r.id,
            recipient: r.recipient,
            country: p.disclosure.country,
            purpose: r.purpose,
            reference: r.reference,
            release: p.release,
            max_releases: r.max_releases,
            pseudonymized: p.pseudonymized,
            categories: p.categories,
            withheld_categories: p.withheld_categories,
            left_out: p.left_out,
            released_at: p.released_at,
            subjects: p
                .subjects
                .into_iter()
                .map(|(id, fields)| PackageSubjectOut { id, fields })
                .collect(),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BreachBody {
    /// RFC 3339; notices are due 72 hours later.
    #[schema(format = DateTime)]
    pub detected_at: String,
    /// What happened (organizational: never put a subject's data in it).
    pub description: String,
    /// The policy's categories exposed.
    pub categories: Vec<String>,
    pub subject_ids: Option<Vec<String>>,
    #[serde(default)]
    pub all_subjects: bool,
    pub cause: String,
    /// What is being done to handle and recover.
    pub measures: String,
}

#[derive(Serialize, ToSchema)]
pub struct BreachOut {
    pub id: String,
    #[schema(value_type = String, format = DateTime)]
    pub detected_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub recorded_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub notify_by: Timestamp,
    pub overdue: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub notified_at: Option<Timestamp>,
    pub description: String,
    pub categories: Vec<String>,
    pub all_subjects: bool,
    pub subject_ids: Vec<String>,
    pub cause: String,
    pub measures: String,
}

impl From<BreachView> for BreachOut {
    fn from(v: BreachView) -> Self {
        let b = v.record;
        BreachOut {
            id: b.id,
            detected_at: Timestamp::from_micros(b.detected_at_micros),
            recorded_at: Timestamp::from_micros(b.recorded_at_micros),
            notify_by: Timestamp::from_micros(b.notify_by_micros),
            overdue: v.overdue,
            notified_at: b.notified_at_micros.map(Timestamp::from_micros),
            description: b.description,
            categories: b.categories,
            all_subjects: b.all_subjects,
            subject_ids: b.subject_ids,
            cause: b.cause,
            measures: b.measures,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct BreachesOut {
    pub breaches: Vec<BreachOut>,
}

#[derive(Serialize, ToSchema)]
pub struct NoticeTextOut {
    pub title: String,
    pub body: String,
}

#[derive(Serialize, ToSchema)]
pub struct NoticeOut {
    /// subject or agency.
    pub audience: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject_id: Option<String>,
    /// The subject's e-mail addresses and phone numbers.
    pub send_to: Vec<String>,
    /// Bahasa Indonesia.
    pub id: NoticeTextOut,
    /// English.
    pub en: NoticeTextOut,
}

impl From<NoticeView> for NoticeOut {
    fn from(n: NoticeView) -> Self {
        NoticeOut {
            audience: n.audience.to_owned(),
            subject_id: n.subject_id,
            send_to: n.send_to,
            id: NoticeTextOut {
                title: n.notice.id.title,
                body: n.notice.id.body,
            },
            en: NoticeTextOut {
                title: n.notice.en.title,
                body: n.notice.en.body,
            },
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct NoticesOut {
    pub breach_id: String,
    pub notices: Vec<NoticeOut>,
    /// Pass as `after` for the next page of subjects' notices; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// How the record describes storage: whatever the backend, it only ever receives ciphertext.
pub(crate) const STORAGE: &str = "field-level encryption before storage; the store holds ciphertexts, keyed index terms, hashes and ids only";

/// Request a disclosure to a recipient; it waits for the person in charge to approve it.
#[utoipa::path(post, path = "/v1/disclosures", request_body = DisclosureBody,
    responses((status = 201, body = DisclosureOut), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem, description = "purpose not granted, or no subject holds the consent needed"),
              (status = 404, body = Problem), (status = 410, body = Problem),
              (status = 422, body = Problem, description = "categories beyond what the recipient or purpose allows (named), unknown recipient...")))]
pub async fn create_disclosure(
    Authenticated(who, s): Authenticated,
    body: Bytes,
) -> ApiResult<Response> {
    let b: DisclosureBody = json_body(&body)?;
    let permit = s
        .vault
        .authorize::<act::DisclosureRequest>(&who, Target::purpose(&b.purpose))
        .await?;
    let view = s
        .vault
        .request_disclosure(
            &permit,
            &DisclosureInput {
                recipient: b.recipient,
                purpose: b.purpose,
                subject_ids: b.subject_ids,
                categories: b.categories,
                reason: b.reason,
                reference: b.reference,
                max_releases: b.max_releases,
                if_consent_missing: b.if_consent_missing,
                defer_notification_until: b.defer_notification_until,
                deferral_reason: b.deferral_reason,
            },
        )
        .await?;
    let id = view.record.id.clone();
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, format!("/v1/disclosures/{id}"))],
        Json(DisclosureOut::from(view)),
    )
        .into_response())
}

/// The query of the disclosures listing.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct DisclosuresQuery {
    subject: Option<String>,
    #[param(inline)]
    status: Option<DisclosureStatusFilter>,
    after: Option<String>,
    #[param(inline)]
    #[serde(default)]
    limit: Limit,
}

/// Disclosures, newest first; `subject` keeps those carrying one subject.
#[utoipa::path(get, path = "/v1/disclosures", params(DisclosuresQuery),
    responses((status = 200, body = DisclosuresOut), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn list_disclosures(
    Authenticated(who, s): Authenticated,
    ApiQuery(q): ApiQuery<DisclosuresQuery>,
) -> ApiResult<Json<DisclosuresOut>> {
    let permit = s
        .vault
        .authorize::<act::DisclosureList>(&who, Target::none())
        .await?;
    let found = s
        .vault
        .list_disclosures(
            &permit,
            q.subject.as_deref(),
            q.status.map(|s| s.0.as_str()),
            q.after.as_deref(),
            q.limit.get(),
        )
        .await?;
    Ok(Json(DisclosuresOut {
        disclosures: found.into_iter().map(DisclosureOut::from).collect(),
    }))
}

/// One disclosure.
#[utoipa::path(get, path = "/v1/disclosures/{id}", params(("id" = String, Path)),
    responses((status = 200, body = DisclosureOut), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn get_disclosure(
    Authenticated(who, s): Authenticated,
    Path(id): Path<String>,
) -> ApiResult<Json<DisclosureOut>> {
    let permit = s
        .vault
        .authorize::<act::DisclosureRead>(&who, Target::none())
        .await?;
    Ok(Json(s.vault.get_disclosure(&permit, &id).await?.into()))
}

async fn step<A: act::DisclosureStep>(
    s: &crate::auth::Scoped,
    who: &Principal,
    id: &str,
    body: &Bytes,
) -> ApiResult<Json<DisclosureOut>> {
    let permit = s.vault.authorize::<A>(who, Target::none()).await?;
    let b: StepBody = if body.is_empty() {
        StepBody::default()
    } else {
        json_body(body)?
    };
    Ok(Json(
        s.vault
            .step_disclosure(&permit, id, b.reason.as_deref())
            .await?
            .into(),
    ))
}

/// Approve (a role with approve_disclosures, the PIC; never the requester's own key).
#[utoipa::path(post, path = "/v1/disclosures/{id}/approve", params(("id" = String, Path)), request_body = Option<StepBody>,
    responses((status = 200, body = DisclosureOut), (status = 401, body = Problem),
              (status = 403, body = Problem, description = "role may not approve, or the requester's own key (four eyes)"),
              (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn approve_disclosure(
    Authenticated(who, s): Authenticated,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<DisclosureOut>> {
    step::<act::DisclosureApprove>(&s, &who, &id, &body).await
}

/// Authorize an approved disclosure (a role with authorize_disclosures, the account owner).
#[utoipa::path(post, path = "/v1/disclosures/{id}/authorize", params(("id" = String, Path)), request_body = Option<StepBody>,
    responses((status = 200, body = DisclosureOut), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem, description = "not approved yet")))]
pub async fn authorize_disclosure(
    Authenticated(who, s): Authenticated,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<DisclosureOut>> {
    step::<act::DisclosureAuthorize>(&s, &who, &id, &body).await
}

/// Reject at either step, with a reason.
#[utoipa::path(post, path = "/v1/disclosures/{id}/reject", params(("id" = String, Path)), request_body = StepBody,
    responses((status = 200, body = DisclosureOut), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn reject_disclosure(
    Authenticated(who, s): Authenticated,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<DisclosureOut>> {
    step::<act::DisclosureReject>(&s, &who, &id, &body).await
}

/// Release the package of an approved and authorized disclosure (the requester or the admin):
/// only the requested categories, at most `max_releases` times, each release audited.
#[utoipa::path(get, path = "/v1/disclosures/{id}/package", params(("id" = String, Path), FileQuery),
    responses((status = 200, description = "the package, JSON or CSV (one row per subject)",
               content((PackageOut = "application/json"), (String = "text/csv"))), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem, description = "not approved and authorized, or released the most times allowed")))]
pub async fn disclosure_package(
    Authenticated(who, s): Authenticated,
    Path(id): Path<String>,
    ApiQuery(FileQuery { format }): ApiQuery<FileQuery>,
) -> ApiResult<Response> {
    let permit = s
        .vault
        .authorize::<act::DisclosureRelease>(&who, Target::none())
        .await?;
    let package = PackageOut::from(s.vault.release_disclosure(&permit, &id).await?);
    let disposition = format!(
        "attachment; filename=\"disclosure-{id}-{}.{}\"",
        package.release,
        format.as_str()
    );
    if format == FileFormat::Json {
        return Ok(([(header::CONTENT_DISPOSITION, disposition)], Json(package)).into_response());
    }
    let csv = package_csv(&package).map_err(|e| Error::Internal(format!("csv: {e}")))?;
    Ok(csv_attachment(
        &format!("disclosure-{id}-{}.csv", package.release),
        csv,
    ))
}

/// One row per subject: `subject`, then the carried categories.
fn package_csv(p: &PackageOut) -> Result<String, csv::Error> {
    let mut w = crate::csv_out::Writer::new();
    let mut header = vec!["subject".to_owned()];
    header.extend(p.categories.iter().cloned());
    w.write_record(&header)?;
    for s in &p.subjects {
        let mut row = vec![s.id.clone()];
        for c in &p.categories {
            row.push(match s.fields.get(c) {
                Some(Value::String(v)) => v.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            });
        }
        w.write_record(&row)?;
    }
    w.finish()
}

/// Record a breach (the admin or the DPO): 201 with `notify_by` = detected_at + 72 h.
#[utoipa::path(post, path = "/v1/breaches", request_body = BreachBody,
    responses((status = 201, body = BreachOut), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 410, body = Problem), (status = 422, body = Problem)))]
pub async fn create_breach(
    Authenticated(who, s): Authenticated,
    body: Bytes,
) -> ApiResult<Response> {
    let permit = s
        .vault
        .authorize::<act::BreachRecord>(&who, Target::none())
        .await?;
    let b: BreachBody = json_body(&body)?;
    let view = s
        .vault
        .record_breach(
            &permit,
            &BreachInput {
                detected_at: b.detected_at,
                description: b.description,
                categories: b.categories,
                subject_ids: b.subject_ids,
                all_subjects: b.all_subjects,
                cause: b.cause,
                measures: b.measures,
            },
        )
        .await?;
    let id = view.record.id.clone();
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, format!("/v1/breaches/{id}"))],
        Json(BreachOut::from(view)),
    )
        .into_response())
}

/// The query of the breach register.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct BreachesQuery {
    /// Only breaches not notified past their deadline
    #[param(value_type = Option<bool>)]
    #[serde(default)]
    overdue: Flag,
    after: Option<String>,
    #[param(inline)]
    #[serde(default)]
    limit: Limit,
}

/// Breaches, newest first; `overdue=true` keeps those not notified past their deadline.
#[utoipa::path(get, path = "/v1/breaches", params(BreachesQuery),
    responses((status = 200, body = BreachesOut), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn list_breaches(
    Authenticated(who, s): Authenticated,
    ApiQuery(q): ApiQuery<BreachesQuery>,
) -> ApiResult<Json<BreachesOut>> {
    let permit = s
        .vault
        .authorize::<act::BreachList>(&who, Target::none())
        .await?;
    let found = s
        .vault
        .list_breaches(&permit, q.overdue.0, q.after.as_deref(), q.limit.get())
        .await?;
    Ok(Json(BreachesOut {
        breaches: found.into_iter().map(BreachOut::from).collect(),
    }))
}

/// One breach.
#[utoipa::path(get, path = "/v1/breaches/{id}", params(("id" = String, Path)),
    responses((status = 200, body = BreachOut), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn get_breach(
    Authenticated(who, s): Authenticated,
    Path(id): Path<String>,
) -> ApiResult<Json<BreachOut>> {
    let permit = s
        .vault
        .authorize::<act::BreachRead>(&who, Target::none())
        .await?;
    Ok(Json(s.vault.get_breach(&permit, &id).await?.into()))
}

/// The query of a page: where it starts and how long it is.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct PageQuery {
    after: Option<String>,
    #[param(inline)]
    #[serde(default)]
    limit: Limit,
}

/// The notices, in Bahasa Indonesia and English: one per affected subject, a page at a time
/// (`after`, `limit` 1 to 1000, default 100), and the agency's on the first page.
#[utoipa::path(get, path = "/v1/breaches/{id}/notices", params(("id" = String, Path), PageQuery),
    responses((status = 200, body = NoticesOut), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
              (status = 422, body = Problem)))]
pub async fn breach_notices(
    Authenticated(who, s): Authenticated,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<NoticesOut>> {
    let permit = s
        .vault
        .authorize::<act::BreachNotices>(&who, Target::none())
        .await?;
    let page = s
        .vault
        .breach_notices(&permit, &id, q.after.as_deref(), Some(q.limit.get()))
        .await?;
    Ok(Json(NoticesOut {
        breach_id: id,
        notices: page.items.into_iter().map(NoticeOut::from).collect(),
        next: page.next,
    }))
}

/// Mark the breach's notices sent.
#[utoipa::path(post, path = "/v1/breaches/{id}/notices/sent", params(("id" = String, Path)),
    responses((status = 200, body = BreachOut), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem, description = "already marked sent")))]
pub async fn mark_notices_sent(
    Authenticated(who, s): Authenticated,
    Path(id): Path<String>,
) -> ApiResult<Json<BreachOut>> {
    let permit = s
        .vault
        .authorize::<act::BreachNotified>(&who, Target::none())
        .await?;
    Ok(Json(
        s.vault.mark_breach_notified(&permit, &id).await?.into(),
    ))
}

/// The query of the record of processing.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct RopaQuery {
    /// json (default), md or csv
    #[param(inline)]
    #[serde(default)]
    format: RopaFormat,
}

/// The record of processing activities (UU PDP Art. 31): JSON, `?format=md` or `?format=csv`.
#[utoipa::path(get, path = "/v1/ropa", params(RopaQuery),
    responses((status = 200, description = "amanah-ropa/1 JSON document, Markdown or CSV",
               content((Object = "application/json"), (String = "text/markdown"), (String = "text/csv"))), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn ropa(
    Authenticated(who, s): Authenticated,
    ApiQuery(RopaQuery { format }): ApiQuery<RopaQuery>,
) -> ApiResult<Response> {
    let permit = s.vault.authorize::<act::Ropa>(&who, Target::none()).await?;
    let doc = s.vault.ropa(&permit, STORAGE).await?;
    Ok(match format {
        RopaFormat::Md => (
            [(header::CONTENT_TYPE, "text/markdown; charset=utf-8")],
            amanah_core::ropa::markdown(&doc),
        )
            .into_response(),
        RopaFormat::Csv => (
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            amanah_core::ropa::csv(&doc),
        )
            .into_response(),
        RopaFormat::Json => Json(doc).into_response(),
    })
}

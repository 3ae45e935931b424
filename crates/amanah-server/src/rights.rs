//! Data-subject rights routes (the DPO's workflow): requests, export, restriction, legal holds,
//! erasure, relationship end and retention sweeps. Thin mappings onto the vault.

use amanah_core::retention::RetentionAction;
use amanah_core::Error;
use amanah_core::Timestamp;
use amanah_vault::{act, HoldView, RequestView, SweepReport, Target};
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::auth::Authenticated;
use crate::handlers::{csv_attachment, json_body, ApiResult};
use crate::problem::Problem;
use crate::query::{
    ApiQuery, ExportFormat, FileFormat, Flag, Limit, RequestId, RequestStatusFilter,
};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRequestBody {
    pub subject_id: String,
    /// access, rectification, erasure, restriction, portability or objection.
    #[serde(rename = "type")]
    pub kind: String,
    /// Free-form details (stored encrypted under the subject's key).
    #[schema(value_type = Option<Object>)]
    pub details: Option<Value>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefusalBody {
    /// legal_obligation, others_rights, legal_hold, unverifiable_identity, legal_claims,
    /// public_interest or manifestly_unfounded.
    pub reason: String,
    /// What the subject is told (stored encrypted).
    pub explanation: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestUpdateBody {
    /// in_progress, completed or refused.
    pub status: String,
    pub refusal: Option<RefusalBody>,
}

#[derive(Serialize, ToSchema)]
pub struct RefusalOut {
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explanation: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct RequestOut {
    pub id: String,
    pub subject_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// received, in_progress, completed or refused.
    pub status: String,
    #[schema(value_type = String, format = DateTime)]
    pub received_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub due_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub closed_at: Option<Timestamp>,
    pub overdue: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refusal: Option<RefusalOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub details: Option<Value>,
}

impl From<RequestView> for RequestOut {
    fn from(v: RequestView) -> Self {
        let r = v.record;
        RequestOut {
            id: r.id,
            subject_id: r.subject_id,
            kind: r.kind,
            status: r.status,
            received_at: Timestamp::from_micros(r.received_at_micros),
            due_at: Timestamp::from_micros(r.due_at_micros),
            updated_at: Timestamp::from_micros(r.updated_at_micros),
            closed_at: r.closed_at_micros.map(Timestamp::from_micros),
            overdue: v.overdue,
            refusal: r.refusal_reason.map(|reason| RefusalOut {
                reason,
                explanation: v.refusal_text,
            }),
            details: v.details,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct RequestsOut {
    pub requests: Vec<RequestOut>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestrictionBody {
    pub reason: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HoldBody {
    pub reason: String,
    /// Last day of the hold, YYYY-MM-DD.
    pub until: String,
}

#[derive(Serialize, ToSchema)]
pub struct HoldOut {
    pub id: String,
    pub subject_id: String,
    pub reason: String,
    pub until: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    pub active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub released_at: Option<Timestamp>,
}

impl From<HoldView> for HoldOut {
    fn from(h: HoldView) -> Self {
        HoldOut {
            id: h.record.id,
            subject_id: h.record.subject_id,
            reason: h.reason,
            until: h.record.until,
            created_at: Timestamp::from_micros(h.record.created_at_micros),
            active: h.active,
            released_at: h.record.released_at_micros.map(Timestamp::from_micros),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct HoldsOut {
    pub holds: Vec<HoldOut>,
}

#[derive(Serialize, ToSchema)]
pub struct SweepItemOut {
    pub subject_id: String,
    /// erase_categories, erase_subject or deidentify.
    pub action: String,
    pub expired_purposes: Vec<String>,
    /// For erase_categories.
    pub categories: Vec<String>,
    /// Set when a legal hold suspended the action.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_until: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct SweepOut {
    pub dry_run: bool,
    pub examined: u64,
    pub items: Vec<SweepItemOut>,
}

impl From<SweepReport> for SweepOut {
    fn from(r: SweepReport) -> Self {
        SweepOut {
            dry_run: r.dry_run,
            examined: r.examined,
            items: r
                .items
                .into_iter()
                .map(|i| {
                    let (action, expired, categories) = describe(&i.action);
                    SweepItemOut {
                        subject_id: i.subject_id,
                        action: action.to_owned(),
                        expired_purposes: expired,
                        categories,
                        held_until: i.held_until,
                    }
                })
                .collect(),
        }
    }
}

/// (action name, expired purposes, categories) of a retention action.
pub fn describe(a: &RetentionAction) -> (&'static str, Vec<String>, Vec<String>) {
    match a {
        RetentionAction::Keep => ("keep", Vec::new(), Vec::new()),
        RetentionAction::EraseCategories {
            expired,
            categories,
        } => ("erase_categories", expired.clone(), categories.clone()),
        RetentionAction::EraseSubject { expired } => ("erase_subject", expired.clone(), Vec::new()),
        RetentionAction::Deidentify { expired } => ("deidentify", expired.clone(), Vec::new()),
    }
}

/// Record a data-subject request (admin or the DPO); due after the policy's deadline.
#[utoipa::path(post, path = "/v1/requests", request_body = NewRequestBody,
    responses((status = 201, body = RequestOut), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 410, body = Problem), (status = 422, body = Problem)))]
pub async fn create_request(
    Authenticated(who, s): Authenticated,
    body: Bytes,
) -> ApiResult<Response> {
    let body: NewRequestBody = json_body(&body)?;
    let permit = s
        .vault
        .authorize::<act::RequestCreate>(&who, Target::subject(&body.subject_id))
        .await?;
    let view = s
        .vault
        .create_request(&permit, &body.kind, body.details.as_ref())
        .await?;
    let id = view.record.id.clone();
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, format!("/v1/requests/{id}"))],
        Json(RequestOut::from(view)),
    )
        .into_response())
}

/// The query of the requests listing.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct RequestsQuery {
    #[param(inline)]
    status: Option<RequestStatusFilter>,
    /// Only open requests past their deadline
    #[param(value_type = Option<bool>)]
    #[serde(default)]
    overdue: Flag,
    subject: Option<String>,
    after: Option<String>,
    #[param(inline)]
    #[serde(default)]
    limit: Limit,
}

/// Requests by due date. `status` = open | all | received | in_progress | completed | refused;
/// `overdue=true` keeps open requests past their deadline.
#[utoipa::path(get, path = "/v1/requests", params(RequestsQuery),
    responses((status = 200, body = RequestsOut), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn list_requests(
    Authenticated(who, s): Authenticated,
    ApiQuery(q): ApiQuery<RequestsQuery>,
) -> ApiResult<Json<RequestsOut>> {
    let permit = s
        .vault
        .authorize::<act::RequestList>(&who, Target::none())
        .await?;
    let found = s
        .vault
        .list_requests(
            &permit,
            q.status.map(RequestStatusFilter::as_str),
            q.overdue.0,
            q.subject.as_deref(),
            q.after.as_deref(),
            q.limit.get(),
        )
        .await?;
    Ok(Json(RequestsOut {
        requests: found.into_iter().map(RequestOut::from).collect(),
    }))
}

/// One request, with its details (admin or the DPO).
#[utoipa::path(get, path = "/v1/requests/{id}", params(("id" = String, Path)),
    responses((status = 200, body = RequestOut), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn get_request(
    Authenticated(who, s): Authenticated,
    Path(id): Path<String>,
) -> ApiResult<Json<RequestOut>> {
    let permit = s
        .vault
        .authorize::<act::RequestRead>(&who, Target::none())
        .await?;
    Ok(Json(s.vault.get_request(&permit, &id).await?.into()))
}

/// Move a request on: in_progress, completed, or refused with a reason and an explanation.
#[utoipa::path(patch, path = "/v1/requests/{id}", params(("id" = String, Path)), request_body = RequestUpdateBody,
    responses((status = 200, body = RequestOut), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn update_request(
    Authenticated(who, s): Authenticated,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<RequestOut>> {
    let permit = s
        .vault
        .authorize::<act::RequestUpdate>(&who, Target::none())
        .await?;
    let body: RequestUpdateBody = json_body(&body)?;
    let refusal = body
        .refusal
        .as_ref()
        .map(|r| (r.reason.as_str(), r.explanation.as_str()));
    Ok(Json(
        s.vault
            .transition_request(&permit, &id, &body.status, refusal)
            .await?
            .into(),
    ))
}

/// The query of a file a route gives: its format.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct FileQuery {
    /// json (default) or csv
    #[param(inline)]
    #[serde(default)]
    pub(crate) format: FileFormat,
}

/// The query of a subject's export: its format.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ExportQuery {
    /// json (default), csv, or zip (`export.json` and the files of the subject's documents)
    #[param(inline)]
    #[serde(default)]
    pub(crate) format: ExportFormat,
}

/// Everything held about a subject (access and portability): JSON, `?format=csv`, or
/// `?format=zip` (the JSON as `export.json` and every document's file under `documents/`,
/// streamed).
#[utoipa::path(get, path = "/v1/subjects/{id}/export", params(("id" = String, Path), ExportQuery),
    responses((status = 200, description = "amanah-export/1 JSON document, CSV (section,item,value), or a zip of both the JSON and the documents",
               content((Object = "application/json"), (String = "text/csv"), (Vec<u8> = "application/zip"))), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 410, body = Problem)))]
pub async fn export_subject(
    Authenticated(who, s): Authenticated,
    Path(id): Path<String>,
    ApiQuery(ExportQuery { format }): ApiQuery<ExportQuery>,
) -> ApiResult<Response> {
    let permit = s
        .vault
        .authorize::<act::SubjectExport>(&who, Target::subject(&id))
        .await?;
    let export = s.vault.export_subject(&permit).await?;
    match format {
        ExportFormat::Json => {
            let disposition = format!("attachment; filename=\"subject-{id}.json\"");
            Ok(([(header::CONTENT_DISPOSITION, disposition)], Json(export)).into_response())
        }
        ExportFormat::Csv => {
            let csv = export_csv(&export).map_err(|e| Error::Internal(format!("csv: {e}")))?;
            Ok(csv_attachment(&format!("subject-{id}.csv"), csv))
        }
        ExportFormat::Zip => Ok(crate::documents::export_zip(
            s.vault.clone(),
            permit,
            &export,
        )?),
    }
}

/// Flattens an export into `section,item,value` rows: object members one per row, array
/// elements one per row (as compact JSON), scalars as they are.
pub(crate) fn export_csv(export: &Value) -> Result<String, csv::Error> {
    let mut w = crate::csv_out::Writer::new();
    w.write_record(["section", "item", "value"])?;
    let scalar = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    if let Value::Object(top) = export {
        for (section, value) in top {
            match value {
                Value::Object(members) => {
                    for (k, v) in members {
                        w.write_record([section.as_str(), k, &scalar(v)])?;
                    }
                }
                Value::Array(items) => {
                    for (i, v) in items.iter().enumerate() {
                        let item = ["id", "purpose", "name", "time"]
                            .iter()
                            .find_map(|k| v.get(*k).and_then(Value::as_str))
                            .map_or_else(|| i.to_string(), str::to_owned);
                        w.write_record([section.as_str(), &item, &scalar(v)])?;
                    }
                }
                other => w.write_record([section.as_str(), "", &scalar(other)])?,
            }
        }
    }
    w.finish()
}

/// Restrict processing (UU PDP Art. 41): reads are refused except admin under a restricted_use purpose.
#[utoipa::path(post, path = "/v1/subjects/{id}/restriction", params(("id" = String, Path)), request_body = Option<RestrictionBody>,
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn restrict(
    Authenticated(who, s): Authenticated,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let permit = s
        .vault
        .authorize::<act::SubjectRestrict>(&who, Target::subject(&id))
        .await?;
    let body: RestrictionBody = if body.is_empty() {
        RestrictionBody::default()
    } else {
        json_body(&body)?
    };
    s.vault.restrict(&permit, body.reason.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Lift a restriction.
#[utoipa::path(delete, path = "/v1/subjects/{id}/restriction", params(("id" = String, Path)),
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn lift_restriction(
    Authenticated(who, s): Authenticated,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let permit = s
        .vault
        .authorize::<act::SubjectUnrestrict>(&who, Target::subject(&id))
        .await?;
    s.vault.lift_restriction(&permit).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Place a legal hold: erasure answers 409 until `until` (inclusive) or release.
#[utoipa::path(post, path = "/v1/subjects/{id}/holds", params(("id" = String, Path)), request_body = HoldBody,
    responses((status = 201, body = HoldOut), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn add_hold(
    Authenticated(who, s): Authenticated,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let permit = s
        .vault
        .authorize::<act::HoldCreate>(&who, Target::subject(&id))
        .await?;
    let body: HoldBody = json_body(&body)?;
    let hold = s.vault.add_hold(&permit, &body.reason, &body.until).await?;
    Ok((StatusCode::CREATED, Json(HoldOut::from(hold))).into_response())
}

/// A subject's legal holds.
#[utoipa::path(get, path = "/v1/subjects/{id}/holds", params(("id" = String, Path)),
    responses((status = 200, body = HoldsOut), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn list_holds(
    Authenticated(who, s): Authenticated,
    Path(id): Path<String>,
) -> ApiResult<Json<HoldsOut>> {
    let permit = s
        .vault
        .authorize::<act::HoldRead>(&who, Target::subject(&id))
        .await?;
    let holds = s.vault.holds(&permit).await?;
    Ok(Json(HoldsOut {
        holds: holds.into_iter().map(HoldOut::from).collect(),
    }))
}

/// Release a legal hold.
#[utoipa::path(delete, path = "/v1/subjects/{id}/holds/{hold_id}", params(("id" = String, Path), ("hold_id" = String, Path)),
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn release_hold(
    Authenticated(who, s): Authenticated,
    Path((id, hold_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let permit = s
        .vault
        .authorize::<act::HoldRelease>(&who, Target::subject(&id))
        .await?;
    s.vault.release_hold(&permit, &hold_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The query of an erasure.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct EraseQuery {
    /// The erasure request this erasure answers
    #[param(value_type = Option<String>, format = Uuid)]
    request: Option<RequestId>,
}

/// Erase a subject by crypto-shredding (admin or the DPO); `?request=ID` ties it to an erasure
/// request. 409 under a legal hold; reads afterwards answer 410.
#[utoipa::path(delete, path = "/v1/subjects/{id}", params(("id" = String, Path), EraseQuery),
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
              (status = 409, body = Problem), (status = 410, body = Problem), (status = 422, body = Problem)))]
pub async fn erase_subject(
    Authenticated(who, s): Authenticated,
    Path(id): Path<String>,
    ApiQuery(EraseQuery { request }): ApiQuery<EraseQuery>,
) -> ApiResult<StatusCode> {
    let permit = s
        .vault
        .authorize::<act::SubjectErase>(&who, Target::subject(&id))
        .await?;
    s.vault
        .erase_subject(&permit, request.as_ref().map(|r| r.0.as_str()))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Record the end of the relationship (retention running from it starts now).
#[utoipa::path(post, path = "/v1/subjects/{id}/end", params(("id" = String, Path)),
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 410, body = Problem)))]
pub async fn end_relationship(
    Authenticated(who, s): Authenticated,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let permit = s
        .vault
        .authorize::<act::SubjectEnd>(&who, Target::subject(&id))
        .await?;
    s.vault.end_relationship(&permit).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The query of a retention sweep.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct SweepQuery {
    /// Only report what the sweep would do
    #[param(value_type = Option<bool>)]
    #[serde(default)]
    dry_run: Flag,
}

/// Run a retention sweep now (admin or the DPO); `dry_run=true` only reports.
#[utoipa::path(post, path = "/v1/retention/sweep", params(SweepQuery),
    responses((status = 200, body = SweepOut), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn retention_sweep(
    Authenticated(who, s): Authenticated,
    ApiQuery(SweepQuery { dry_run }): ApiQuery<SweepQuery>,
) -> ApiResult<Json<SweepOut>> {
    let permit = s
        .vault
        .authorize::<act::RetentionSweep>(&who, Target::none())
        .await?;
    let report = s.vault.retention_sweep(&permit, dry_run.0, |_| {}).await?;
    Ok(Json(report.into()))
}

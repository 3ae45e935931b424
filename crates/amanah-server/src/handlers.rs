use amanah_core::audit::AuditRecord;
use amanah_core::Error;
use amanah_core::Timestamp;
use amanah_vault::ApiKeyRecord;
use amanah_vault::{act, SubjectView, Target};
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Authenticated;
use crate::consents::{ConsentBody, ReceiptOut};
use crate::problem::Problem;

pub(crate) type ApiResult<T> = Result<T, Problem>;

pub(crate) use crate::query::json_body;
use crate::query::{ApiQuery, AuditLimit, Purpose, RequestId, Sequence};

/// Request body of create and update.
#[derive(Debug, serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubjectBody {
    /// Category name -> value.
    #[schema(value_type = Object)]
    pub fields: Map<String, Value>,
    /// On create: the consent the data is collected with (required when the purpose's legal
    /// basis is consent). Its `purpose` defaults to the purpose of collection.
    pub consent: Option<ConsentBody>,
}

#[derive(Serialize, ToSchema)]
pub struct CreatedOut {
    pub id: String,
    /// The receipt of the consent recorded with a new subject.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consent_receipt: Option<ReceiptOut>,
}

#[derive(Serialize, ToSchema)]
pub struct SubjectOut {
    pub id: String,
    #[schema(value_type = Object)]
    pub fields: Map<String, Value>,
}

impl From<SubjectView> for SubjectOut {
    fn from(v: SubjectView) -> Self {
        SubjectOut {
            id: v.id,
            fields: v.fields,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct SubjectsOut {
    pub subjects: Vec<SubjectOut>,
}

#[derive(Serialize, ToSchema)]
pub struct AuditEntryOut {
    pub seq: u64,
    /// RFC 3339.
    #[schema(value_type = String, format = DateTime)]
    pub time: Timestamp,
    /// API key id (or `cli`), never the key.
    pub actor: String,
    pub role: String,
    pub action: String,
    pub purpose: Option<String>,
    pub basis: Option<String>,
    /// `allowed` or `denied`.
    pub outcome: String,
    pub reason: Option<String>,
    pub subject: Option<String>,
    /// Category names only.
    pub fields: Vec<String>,
    pub policy_version: String,
    pub hash: String,
}

impl From<AuditRecord> for AuditEntryOut {
    fn from(r: AuditRecord) -> Self {
        AuditEntryOut {
            seq: r.seq,
            time: Timestamp::from_micros(r.entry.at_micros),
            actor: r.entry.actor,
            role: r.entry.role,
            action: r.entry.action.as_str().to_owned(),
            purpose: r.entry.purpose,
            basis: r.entry.basis,
            outcome: r.entry.outcome.as_str().to_owned(),
            reason: r.entry.reason,
            subject: r.entry.subject,
            fields: r.entry.fields,
            policy_version: r.entry.policy_version,
            hash: r.hash.iter().map(|b| format!("{b:02x}")).collect(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct AuditOut {
    pub entries: Vec<AuditEntryOut>,
}

#[derive(Serialize, ToSchema)]
pub struct VerifyOut {
    pub ok: bool,
    pub entries: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head: Option<String>,
    /// The first bad entry, when the chain is broken.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_bad: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct KeyOut {
    pub id: String,
    pub name: String,
    pub role: String,
    pub holder: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<Timestamp>,
}

impl From<ApiKeyRecord> for KeyOut {
    fn from(k: ApiKeyRecord) -> Self {
        KeyOut {
            id: k.id,
            name: k.name,
            role: k.role,
            holder: k.holder,
            created_at: Timestamp::from_micros(k.created_at_micros),
            revoked_at: k.revoked_at_micros.map(Timestamp::from_micros),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct KeysOut {
    pub keys: Vec<KeyOut>,
}

#[derive(Debug, serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKeyBody {
    pub role: String,
    #[serde(default)]
    pub name: String,
    /// The person the key is issued to, `Name <email>`: four eyes count people, not keys.
    pub holder: String,
}

#[derive(Serialize, ToSchema)]
pub struct NewKeyOut {
    pub id: String,
    pub role: String,
    pub name: String,
    pub holder: Option<String>,
    /// Shown once; only its hash is stored.
    pub key: String,
}

#[derive(Serialize, ToSchema)]
pub struct PolicyOut {
    pub seq: i64,
    pub version: String,
    pub sha256: String,
    #[schema(value_type = String, format = DateTime)]
    pub applied_at: Timestamp,
    /// The TOML source.
    pub source: String,
}

/// A downloadable CSV body.
pub(crate) fn csv_attachment(filename: &str, body: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
        ],
        body,
    )
        .into_response()
}

/// The query of a subject's creation.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct CreateQuery {
    /// Purpose of collection
    #[param(value_type = String)]
    purpose: Purpose,
}

/// Create a subject with fields collected under a purpose.
#[utoipa::path(post, path = "/v1/subjects", params(CreateQuery),
    request_body = SubjectBody,
    responses((status = 201, body = CreatedOut), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create_subject(
    Authenticated(who, s): Authenticated,
    ApiQuery(CreateQuery {
        purpose: Purpose(purpose),
    }): ApiQuery<CreateQuery>,
    body: Bytes,
) -> ApiResult<Response> {
    let permit = s
        .vault
        .authorize::<act::SubjectCreate>(&who, Target::purpose(&purpose))
        .await?;
    let body: SubjectBody = json_body(&body)?;
    let consent = body
        .consent
        .map(|c| c.into_input(Some(&purpose)))
        .transpose()?;
    let (id, receipt) = s
        .vault
        .create_subject_with_consent(&permit, &body.fields, consent.as_ref())
        .await?;
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, format!("/v1/subjects/{id}"))],
        Json(CreatedOut {
            id,
            consent_receipt: receipt.map(ReceiptOut::from),
        }),
    )
        .into_response())
}

/// The query of a search: the purpose, and one indexed category of the policy with the value to
/// find (the document lists them from the policy in force).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct SearchQuery {
    /// Purpose of the read
    #[param(value_type = String)]
    purpose: Purpose,
    #[serde(flatten)]
    #[param(ignore)]
    by: std::collections::BTreeMap<String, String>,
}

/// Find subjects by one indexed category (blind index; the value is normalized first).
#[utoipa::path(get, path = "/v1/subjects", params(SearchQuery),
    responses((status = 200, body = SubjectsOut), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn search_subjects(
    Authenticated(who, s): Authenticated,
    ApiQuery(q): ApiQuery<SearchQuery>,
) -> ApiResult<Json<SubjectsOut>> {
    let permit = s
        .vault
        .authorize::<act::SubjectSearch>(&who, Target::purpose(&q.purpose.0))
        .await?;
    let filters: Vec<(&String, &String)> = q.by.iter().collect();
    let [(category, value)] = filters.as_slice() else {
        return Err(Error::BadRequest(
            "give exactly one indexed category to search by, e.g. `?purpose=P&email=a@b.id`".into(),
        )
        .into());
    };
    let found = s.vault.search(&permit, category, value).await?;
    Ok(Json(SubjectsOut {
        subjects: found.into_iter().map(SubjectOut::from).collect(),
    }))
}

/// The query of a subject's read.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ReadQuery {
    #[param(value_type = String)]
    purpose: Purpose,
}

/// Read a subject under a purpose: only that purpose's categories the role may see.
#[utoipa::path(get, path = "/v1/subjects/{id}", params(("id" = String, Path), ReadQuery),
    responses((status = 200, body = SubjectOut), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn read_subject(
    Authenticated(who, s): Authenticated,
    Path(id): Path<String>,
    ApiQuery(ReadQuery {
        purpose: Purpose(purpose),
    }): ApiQuery<ReadQuery>,
) -> ApiResult<Json<SubjectOut>> {
    let permit = s
        .vault
        .authorize::<act::SubjectRead>(&who, Target::subject_under(&id, &purpose))
        .await?;
    Ok(Json(s.vault.read_subject(&permit).await?.into()))
}

/// The query of a subject's update.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct UpdateQuery {
    #[param(value_type = String)]
    purpose: Purpose,
    /// An open rectification request this change answers
    #[param(value_type = Option<String>, format = Uuid)]
    request: Option<RequestId>,
}

/// Replace some fields of a subject (rectification); blind indexes move with the values.
#[utoipa::path(patch, path = "/v1/subjects/{id}", params(("id" = String, Path), UpdateQuery),
    request_body = SubjectBody,
    responses((status = 200, body = CreatedOut), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn update_subject(
    Authenticated(who, s): Authenticated,
    Path(id): Path<String>,
    ApiQuery(UpdateQuery {
        purpose: Purpose(purpose),
        request,
    }): ApiQuery<UpdateQuery>,
    body: Bytes,
) -> ApiResult<Json<CreatedOut>> {
    let target = Target::subject_under(&id, &purpose);
    // A change answering a request is a rectification; the decision point tells them apart
    // (a restricted subject accepts only the latter, from a role that handles requests).
    match request {
        Some(request) => {
            let permit = s
                .vault
                .authorize::<act::SubjectRectify>(&who, target)
                .await?;
            let fields = subject_fields(&body)?;
            s.vault
                .rectify_subject(&permit, &fields, Some(&request.0))
                .await?;
        }
        None => {
            let permit = s
                .vault
                .authorize::<act::SubjectUpdate>(&who, target)
                .await?;
            let fields = subject_fields(&body)?;
            s.vault.rectify_subject(&permit, &fields, None).await?;
        }
    }
    Ok(Json(CreatedOut {
        id,
        consent_receipt: None,
    }))
}

/// Enrol a subject in a further purpose.
#[derive(serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrollBody {
    pub purpose: String,
    /// For a purpose resting on consent, the consent that grounds the enrolment (unless the
    /// subject already holds a valid one).
    #[serde(default)]
    pub consent: Option<ConsentBody>,
}

#[derive(Serialize, ToSchema)]
pub struct EnrollmentOut {
    pub subject_id: String,
    pub purpose: String,
    /// `compatible with P` or the consent relied on.
    pub ground: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consent_receipt: Option<ReceiptOut>,
}

/// Enrol a subject in a further purpose (UU PDP Art. 16(2)(b)): where the policy declares it
/// compatible with one the subject is enrolled in, or with a valid consent for a purpose
/// resting on consent. The caller's role must hold the purpose and one the subject has.
#[utoipa::path(post, path = "/v1/subjects/{id}/purposes", params(("id" = String, Path)),
    request_body = EnrollBody,
    responses((status = 201, body = EnrollmentOut), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 410, body = Problem), (status = 422, body = Problem)))]
pub async fn enroll_subject(
    Authenticated(who, s): Authenticated,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let body: EnrollBody = json_body(&body)?;
    let permit = s
        .vault
        .authorize::<act::SubjectEnroll>(&who, Target::subject_under(&id, &body.purpose))
        .await?;
    let consent = body
        .consent
        .map(|c| c.into_input(Some(&body.purpose)))
        .transpose()?;
    let e = s.vault.enroll_subject(&permit, consent.as_ref()).await?;
    Ok((
        StatusCode::CREATED,
        Json(EnrollmentOut {
            subject_id: e.subject_id,
            purpose: e.purpose,
            ground: e.ground,
            consent_receipt: e.consent_receipt.map(ReceiptOut::from),
        }),
    )
        .into_response())
}

/// The fields of a PATCH body (consent decisions have their own route).
fn subject_fields(body: &Bytes) -> ApiResult<serde_json::Map<String, Value>> {
    let body: SubjectBody = json_body(body)?;
    if body.consent.is_some() {
        return Err(Error::invalid(
            "consent",
            "record consent decisions with POST /v1/subjects/{id}/consents",
        )
        .into());
    }
    Ok(body.fields)
}

/// The query of the audit listing.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct AuditQuery {
    subject: Option<String>,
    #[param(value_type = Option<u64>)]
    #[serde(default)]
    after: Sequence,
    #[param(inline)]
    #[serde(default)]
    limit: AuditLimit,
}

/// Audit entries, oldest first (admin). `subject` filters; `after` and `limit` page.
#[utoipa::path(get, path = "/v1/audit", params(AuditQuery),
    responses((status = 200, body = AuditOut), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn audit_entries(
    Authenticated(who, s): Authenticated,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<Json<AuditOut>> {
    let permit = s
        .vault
        .authorize::<act::AuditRead>(&who, Target::none())
        .await?;
    let entries = s
        .vault
        .audit_entries(&permit, q.subject.as_deref(), q.after.0, q.limit.get())
        .await?;
    Ok(Json(AuditOut {
        entries: entries.into_iter().map(AuditEntryOut::from).collect(),
    }))
}

/// Verify the audit chain (admin).
#[utoipa::path(get, path = "/v1/audit/verify", responses((status = 200, body = VerifyOut), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn audit_verify(Authenticated(who, s): Authenticated) -> ApiResult<Json<VerifyOut>> {
    let permit = s
        .vault
        .authorize::<act::AuditVerify>(&who, Target::none())
        .await?;
    let r = s.vault.verify_audit(&permit).await?;
    Ok(Json(VerifyOut {
        ok: r.ok(),
        entries: r.entries,
        head: r.head,
        first_bad: r.first_bad.map(|b| b.to_string()),
    }))
}

/// List API keys (admin).
#[utoipa::path(get, path = "/v1/keys", responses((status = 200, body = KeysOut), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn list_keys(Authenticated(who, s): Authenticated) -> ApiResult<Json<KeysOut>> {
    let permit = s
        .vault
        .authorize::<act::KeyList>(&who, Target::none())
        .await?;
    let keys = s.vault.list_api_keys(&permit).await?;
    Ok(Json(KeysOut {
        keys: keys.into_iter().map(KeyOut::from).collect(),
    }))
}

/// Issue an API key for a role (admin). The key is in the response only.
#[utoipa::path(post, path = "/v1/keys", request_body = NewKeyBody,
    responses((status = 201, body = NewKeyOut), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn create_key(Authenticated(who, s): Authenticated, body: Bytes) -> ApiResult<Response> {
    let permit = s
        .vault
        .authorize::<act::KeyCreate>(&who, Target::none())
        .await?;
    let body: NewKeyBody = json_body(&body)?;
    let issued = s
        .vault
        .create_api_key(&permit, &body.role, &body.name, &body.holder)
        .await?;
    let out = NewKeyOut {
        id: issued.record.id.clone(),
        role: issued.record.role.clone(),
        name: issued.record.name.clone(),
        holder: issued.record.holder.clone(),
        key: issued.token.to_string(),
    };
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

/// Revoke an API key (admin).
#[utoipa::path(delete, path = "/v1/keys/{id}", params(("id" = String, Path)),
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn revoke_key(
    Authenticated(who, s): Authenticated,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let permit = s
        .vault
        .authorize::<act::KeyRevoke>(&who, Target::none())
        .await?;
    s.vault.revoke_api_key(&permit, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The policy in force (admin).
#[utoipa::path(get, path = "/v1/policy", responses((status = 200, body = PolicyOut), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn get_policy(Authenticated(who, s): Authenticated) -> ApiResult<Json<PolicyOut>> {
    let permit = s
        .vault
        .authorize::<act::PolicyRead>(&who, Target::none())
        .await?;
    Ok(Json(policy_out(&s.vault.read_policy(&permit).await?)))
}

fn policy_out(r: &amanah_vault::PolicyRecord) -> PolicyOut {
    PolicyOut {
        seq: r.seq,
        version: r.version.clone(),
        sha256: r.sha256.clone(),
        applied_at: Timestamp::from_micros(r.applied_at_micros),
        source: r.source.clone(),
    }
}

/// Apply a new policy version (admin); body is the TOML file.
#[utoipa::path(put, path = "/v1/policy", request_body(content = String, content_type = "application/toml"),
    responses((status = 200, body = PolicyOut), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn put_policy(
    Authenticated(who, s): Authenticated,
    body: Bytes,
) -> ApiResult<Json<PolicyOut>> {
    let permit = s
        .vault
        .authorize::<act::PolicyApply>(&who, Target::none())
        .await?;
    let source = std::str::from_utf8(&body)
        .map_err(|_| Error::BadRequest("the policy must be UTF-8 text".into()))?;
    let record = s.vault.apply_policy(&permit, source).await?;
    Ok(Json(policy_out(&record)))
}

/// Liveness (no auth).
#[utoipa::path(get, path = "/healthz", security(()), responses((status = 200, description = "ok")))]
pub async fn healthz() -> Json<Value> {
    Json(serde_json::json!({"status": "ok"}))
}

pub async fn not_found() -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "not-found",
        "no such route; see /openapi.json",
    )
}

pub async fn method_not_allowed() -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "this route does not accept that method; see /openapi.json",
    )
}

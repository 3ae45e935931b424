//! `/v1/tenants`: the platform operator runs the organizations a deployment hosts. Only a
//! platform key gets a permit here (the decision point's `Rule::Platform`); an organization's
//! key is refused and the refusal recorded in its own chain. The operator never sees a
//! subject: these routes show an organization's state and usage figures only.

use amanah_core::Timestamp;
use amanah_vault::{act, NewTenant, Quotas, Target, TenantView};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Authenticated;
use crate::handlers::ApiResult;
use crate::problem::Problem;
use crate::query::json_body;
use crate::AppState;

/// A hosted organization: its state, quotas and usage (never its data).
#[derive(Serialize, ToSchema)]
pub struct TenantOut {
    #[schema(format = Uuid)]
    pub id: String,
    pub name: String,
    /// `active`, `suspended` or `deleted`.
    pub status: String,
    pub quotas: QuotasBody,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub changed_at: Timestamp,
    /// Placed in a database of its own.
    pub dedicated_store: bool,
    /// Absent for a deleted organization.
    pub usage: Option<UsageOut>,
    /// A deleted organization's store has been removed.
    pub purged: bool,
}

#[derive(Serialize, ToSchema)]
pub struct UsageOut {
    pub subjects: u64,
    pub audit_entries: u64,
    pub api_keys: u64,
}

/// An organization's limits; `null` (or absent) is no limit.
#[derive(Serialize, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct QuotasBody {
    /// The most subjects it may hold (a create or import beyond it gets 409
    /// `subject-quota-reached`).
    #[serde(default)]
    pub max_subjects: Option<u64>,
    /// Requests per second over all its keys (beyond it: 429 with `Retry-After`).
    #[serde(default)]
    #[schema(minimum = 1)]
    pub max_requests_per_second: Option<u64>,
}

impl From<QuotasBody> for Quotas {
    fn from(q: QuotasBody) -> Quotas {
        Quotas {
            max_subjects: q.max_subjects,
            max_requests_per_second: q.max_requests_per_second,
        }
    }
}

impl From<TenantView> for TenantOut {
    fn from(t: TenantView) -> Self {
        TenantOut {
            id: t.id,
            name: t.name,
            status: t.status,
            quotas: QuotasBody {
                max_subjects: t.quotas.max_subjects,
                max_requests_per_second: t.quotas.max_requests_per_second,
            },
            created_at: Timestamp::from_micros(t.created_at_micros),
            changed_at: Timestamp::from_micros(t.changed_at_micros),
            dedicated_store: t.dedicated_store,
            usage: t.usage.map(|u| UsageOut {
                subjects: u.subjects,
                audit_entries: u.audit_entries,
                api_keys: u.api_keys,
            }),
            purged: t.purged,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct TenantsOut {
    pub tenants: Vec<TenantOut>,
}

/// A new organization.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTenantBody {
    /// Its name (1–100 printable characters, unique among the organizations not deleted).
    pub name: String,
    /// Its policy file (TOML), e.g. one of the shipped presets adapted to it.
    pub policy: String,
    /// The person its first admin key is issued to (`Name <email>`).
    pub admin_holder: String,
    #[serde(default)]
    pub quotas: QuotasBody,
}

/// The organization made and its first admin key (shown here only).
#[derive(Serialize, ToSchema)]
pub struct CreatedTenantOut {
    pub tenant: TenantOut,
    pub admin_key: String,
    pub admin_key_id: String,
}

/// Create an organization (platform operator). Its store is placed where the deployment keeps
/// organizations; a database of its own is chosen from the command line only
/// (`amanah tenant create --store`).
#[utoipa::path(post, path = "/v1/tenants", request_body = NewTenantBody,
    responses((status = 201, body = CreatedTenantOut), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create_tenant(
    Authenticated(who, s): Authenticated,
    State(state): State<AppState>,
    body: Bytes,
) -> ApiResult<Response> {
    let permit = s
        .vault
        .authorize::<act::TenantCreate>(&who, Target::none())
        .await?;
    let body: NewTenantBody = json_body(&body)?;
    let created = state
        .deployment
        .create_tenant(
            &permit,
            NewTenant {
                name: body.name,
                policy: body.policy,
                place: None,
                admin_holder: body.admin_holder,
                quotas: body.quotas.into(),
            },
        )
        .await?;
    let out = CreatedTenantOut {
        tenant: created.tenant.into(),
        admin_key: created.admin_key.token.to_string(),
        admin_key_id: created.admin_key.record.id,
    };
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

/// Every organization with its state and usage (platform operator).
#[utoipa::path(get, path = "/v1/tenants",
    responses((status = 200, body = TenantsOut), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn list_tenants(
    Authenticated(who, s): Authenticated,
    State(state): State<AppState>,
) -> ApiResult<Json<TenantsOut>> {
    let permit = s
        .vault
        .authorize::<act::TenantList>(&who, Target::none())
        .await?;
    let tenants = state.deployment.list_tenants(&permit).await?;
    Ok(Json(TenantsOut {
        tenants: tenants.into_iter().map(Into::into).collect(),
    }))
}

/// One organization (platform operator).
#[utoipa::path(get, path = "/v1/tenants/{id}", params(("id" = String, Path, format = Uuid)),
    responses((status = 200, body = TenantOut), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn get_tenant(
    Authenticated(who, s): Authenticated,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<TenantOut>> {
    let permit = s
        .vault
        .authorize::<act::TenantRead>(&who, Target::none())
        .await?;
    Ok(Json(state.deployment.tenant(&permit, &id).await?.into()))
}

/// Change an organization's quotas (platform operator); the body replaces them whole.
#[utoipa::path(patch, path = "/v1/tenants/{id}", params(("id" = String, Path, format = Uuid)),
    request_body = QuotasBody,
    responses((status = 200, body = TenantOut), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn update_tenant(
    Authenticated(who, s): Authenticated,
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<TenantOut>> {
    let permit = s
        .vault
        .authorize::<act::TenantUpdate>(&who, Target::none())
        .await?;
    let body: QuotasBody = json_body(&body)?;
    let view = state
        .deployment
        .set_quotas(&permit, &id, body.into())
        .await?;
    Ok(Json(view.into()))
}

/// Suspend an organization (platform operator): its keys are refused, its data kept.
#[utoipa::path(post, path = "/v1/tenants/{id}/suspend", params(("id" = String, Path, format = Uuid)),
    responses((status = 200, body = TenantOut), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn suspend_tenant(
    Authenticated(who, s): Authenticated,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<TenantOut>> {
    let permit = s
        .vault
        .authorize::<act::TenantSuspend>(&who, Target::none())
        .await?;
    Ok(Json(
        state.deployment.suspend_tenant(&permit, &id).await?.into(),
    ))
}

/// Lift an organization's suspension (platform operator).
#[utoipa::path(post, path = "/v1/tenants/{id}/resume", params(("id" = String, Path, format = Uuid)),
    responses((status = 200, body = TenantOut), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn resume_tenant(
    Authenticated(who, s): Authenticated,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<TenantOut>> {
    let permit = s
        .vault
        .authorize::<act::TenantResume>(&who, Target::none())
        .await?;
    Ok(Json(
        state.deployment.resume_tenant(&permit, &id).await?.into(),
    ))
}

/// Delete an organization (platform operator): its key ring is destroyed at once, so nothing
/// of it can be read any more; its store is removed in the background.
#[utoipa::path(delete, path = "/v1/tenants/{id}", params(("id" = String, Path, format = Uuid)),
    responses((status = 200, body = TenantOut), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn delete_tenant(
    Authenticated(who, s): Authenticated,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<TenantOut>> {
    let permit = s
        .vault
        .authorize::<act::TenantDelete>(&who, Target::none())
        .await?;
    let view = state.deployment.delete_tenant(&permit, &id).await?;
    let deployment = state.deployment.clone();
    tokio::spawn(async move {
        if let Err(e) = deployment.purge().await {
            tracing::error!(error = %e, "removing a deleted organization's store failed; it is retried at the next start");
        }
    });
    Ok(Json(view.into()))
}

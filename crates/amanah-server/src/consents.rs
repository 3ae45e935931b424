//! Consent, contact-list and relation routes: thin mappings onto the vault's consent use cases.

use amanah_core::Error;
use amanah_core::Timestamp;
use amanah_vault::{
    act, ConsentHistory, ConsentInput, ConsentReceipt, ConsentView, GuardianInput, PurposeConsent,
    RelationView, Target,
};
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::auth::Authenticated;
use crate::handlers::{json_body, ApiResult};
use crate::problem::Problem;
use crate::query::{ApiQuery, Channel, Limit, Purpose};

/// A consent decision. In `POST /v1/subjects` (as `consent`), `purpose` may be left out: it is
/// the purpose of collection.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentBody {
    pub purpose: Option<String>,
    /// `true` grants, `false` withdraws (or refuses).
    pub granted: bool,
    /// Where the decision was captured: `web_form`, `paper`, `call_center`...
    pub channel: String,
    /// How consent was given (form reference, signed statement). Required for a grant. Stored
    /// encrypted; receipts carry a salted SHA-256 of it.
    pub evidence: Option<String>,
    /// `subject` (default) or `guardian`.
    #[serde(default = "subject")]
    pub given_by: String,
    pub guardian: Option<GuardianBody>,
    /// Marketing channels the person accepts (email, sms, whatsapp, phone, push, in_app,
    /// social, post, or the purpose's own list).
    #[serde(default)]
    pub contact_channels: Vec<String>,
}

fn subject() -> String {
    "subject".into()
}

/// The guardian: either a subject of the vault, or details stored encrypted.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GuardianBody {
    pub subject_id: Option<String>,
    pub name: Option<String>,
    /// `mother`, `father`, `legal_guardian`...
    pub relationship: Option<String>,
    pub contact: Option<String>,
}

impl ConsentBody {
    /// The vault's input; `purpose` falls back to `default_purpose` (collection purpose).
    pub fn into_input(self, default_purpose: Option<&str>) -> ApiResult<ConsentInput> {
        let purpose = match (self.purpose, default_purpose) {
            (Some(p), _) => p,
            (None, Some(d)) => d.to_owned(),
            (None, None) => {
                return Err(Error::invalid("purpose", "`purpose` is required").into());
            }
        };
        let guardian = match self.guardian {
            None => None,
            Some(GuardianBody {
                subject_id: Some(id),
                name: None,
                relationship: None,
                contact: None,
            }) => Some(GuardianInput::Subject(id)),
            Some(GuardianBody {
                subject_id: None,
                name: Some(name),
                relationship: Some(relationship),
                contact,
            }) => Some(GuardianInput::Details {
                name,
                relationship,
                contact,
            }),
            Some(_) => {
                return Err(Error::invalid(
                    "guardian",
                    "`guardian` is either {\"subject_id\": ...} or {\"name\", \"relationship\", \"contact\"?}",
                )
                .into())
            }
        };
        Ok(ConsentInput {
            purpose,
            granted: self.granted,
            channel: self.channel,
            evidence: self.evidence,
            given_by: self.given_by,
            guardian,
            contact_channels: self.contact_channels,
        })
    }
}

#[derive(Serialize, ToSchema)]
pub struct ConsentOut {
    pub id: String,
    pub subject_id: String,
    pub purpose: String,
    pub purpose_version: String,
    pub policy_version: String,
    pub granted: bool,
    pub given_by: String,
    pub channel: String,
    pub contact_channels: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guardian_subject_id: Option<String>,
    pub evidence_sha256: Option<String>,
    /// API key id that recorded the decision.
    pub recorded_by: String,
    #[schema(value_type = String, format = DateTime)]
    pub time: Timestamp,
    /// Decrypted evidence (admin only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence: Option<String>,
    /// Decrypted guardian details (admin only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub guardian: Option<Value>,
}

impl From<ConsentView> for ConsentOut {
    fn from(v: ConsentView) -> Self {
        let r = v.record;
        ConsentOut {
            id: r.id,
            subject_id: r.subject_id,
            purpose: r.purpose,
            purpose_version: r.purpose_version,
            policy_version: r.policy_version,
            granted: r.granted,
            given_by: r.given_by,
            channel: r.capture_channel,
            contact_channels: r.contact_channels,
            guardian_subject_id: r.guardian_subject_id,
            evidence_sha256: r.evidence_sha256,
            recorded_by: r.recorded_by,
            time: Timestamp::from_micros(r.at_micros),
            evidence: v.evidence,
            guardian: v.guardian_details,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ControllerOut {
    pub name: String,
    pub contact: String,
}

#[derive(Serialize, ToSchema)]
pub struct AuditRefOut {
    pub seq: u64,
    pub hash: String,
}

/// Proof of a recorded decision for the person: what they agreed to, under which policy, with
/// whom, and the audit entry that records it.
#[derive(Serialize, ToSchema)]
pub struct ReceiptOut {
    pub consent_id: String,
    pub subject_id: String,
    pub purpose: String,
    pub purpose_version: String,
    pub policy_version: String,
    pub controller: ControllerOut,
    #[schema(value_type = String, format = DateTime)]
    pub time: Timestamp,
    pub granted: bool,
    pub given_by: String,
    pub channel: String,
    pub contact_channels: Vec<String>,
    pub evidence_sha256: Option<String>,
    pub audit: AuditRefOut,
}

impl From<ConsentReceipt> for ReceiptOut {
    fn from(r: ConsentReceipt) -> Self {
        ReceiptOut {
            consent_id: r.consent_id,
            subject_id: r.subject_id,
            purpose: r.purpose,
            purpose_version: r.purpose_version,
            policy_version: r.policy_version,
            controller: ControllerOut {
                name: r.controller_name,
                contact: r.controller_contact,
            },
            time: Timestamp::from_micros(r.at_micros),
            granted: r.granted,
            given_by: r.given_by,
            channel: r.channel,
            contact_channels: r.contact_channels,
            evidence_sha256: r.evidence_sha256,
            audit: AuditRefOut {
                seq: r.audit_seq,
                hash: r.audit_hash,
            },
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct RecordedConsentOut {
    pub consent: ConsentOut,
    pub receipt: ReceiptOut,
}

#[derive(Serialize, ToSchema)]
pub struct PurposeConsentOut {
    pub purpose: String,
    /// `valid`, `withdrawal_pending`, `withdrawn`, `stale`, `guardian_required` or `none`.
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consent_id: Option<String>,
    /// When a pending withdrawal takes effect.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub processing_stops_at: Option<Timestamp>,
    pub contact_channels: Vec<String>,
}

impl From<PurposeConsent> for PurposeConsentOut {
    fn from(p: PurposeConsent) -> Self {
        PurposeConsentOut {
            purpose: p.purpose,
            state: p.state.to_owned(),
            detail: p.detail,
            consent_id: p.consent_id,
            processing_stops_at: p.effective_until_micros.map(Timestamp::from_micros),
            contact_channels: p.contact_channels,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ConsentHistoryOut {
    pub subject_id: String,
    /// The subject is a minor now (by their birth date).
    pub minor: bool,
    /// Every decision, oldest first.
    pub history: Vec<ConsentOut>,
    /// The state of each consent-based purpose now.
    pub current: Vec<PurposeConsentOut>,
}

impl From<ConsentHistory> for ConsentHistoryOut {
    fn from(h: ConsentHistory) -> Self {
        ConsentHistoryOut {
            subject_id: h.subject_id,
            minor: h.minor,
            history: h.events.into_iter().map(ConsentOut::from).collect(),
            current: h.current.into_iter().map(PurposeConsentOut::from).collect(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct StaleSubjectOut {
    pub id: String,
    pub consent_id: String,
    /// The policy version the consent was given under.
    pub policy_version: String,
    #[schema(value_type = String, format = DateTime)]
    pub consented_at: Timestamp,
}

#[derive(Serialize, ToSchema)]
pub struct StaleOut {
    pub purpose: String,
    pub purpose_version: String,
    pub subjects: Vec<StaleSubjectOut>,
    /// Pass as `after` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ContactableOut {
    pub purpose: String,
    pub channel: String,
    /// Subject ids.
    pub subjects: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RelationBody {
    /// `guardian`, `parent`, `guarantor` or `emergency_contact`.
    pub kind: String,
    /// The related person (a subject).
    pub subject_id: String,
    /// Who provided the data and on what representation. Stored encrypted.
    pub evidence: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct RelationOut {
    pub id: String,
    /// The subject the relation was recorded on.
    pub subject_id: String,
    pub kind: String,
    pub related_subject_id: String,
    pub evidence_sha256: Option<String>,
    pub recorded_by: String,
    #[schema(value_type = String, format = DateTime)]
    pub time: Timestamp,
    /// Decrypted evidence (admin only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence: Option<String>,
}

impl From<RelationView> for RelationOut {
    fn from(v: RelationView) -> Self {
        let r = v.record;
        RelationOut {
            id: r.id,
            subject_id: r.subject_id,
            kind: r.kind,
            related_subject_id: r.related_subject_id,
            evidence_sha256: r.evidence_sha256,
            recorded_by: r.recorded_by,
            time: Timestamp::from_micros(r.at_micros),
            evidence: v.evidence,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct RelationsOut {
    pub relations: Vec<RelationOut>,
}

/// Record a consent grant or withdrawal, with its evidence; returns the decision and a receipt.
#[utoipa::path(post, path = "/v1/subjects/{id}/consents", params(("id" = String, Path)),
    request_body = ConsentBody,
    responses((status = 201, body = RecordedConsentOut), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn record_consent(
    Authenticated(who, s): Authenticated,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let body: ConsentBody = json_body(&body)?;
    let input = body.into_input(None)?;
    let target = Target::subject_under(&id, &input.purpose);
    let (record, receipt) = if input.granted {
        let permit = s.vault.authorize::<act::ConsentGrant>(&who, target).await?;
        s.vault.record_consent(&permit, &input).await?
    } else {
        let permit = s
            .vault
            .authorize::<act::ConsentWithdraw>(&who, target)
            .await?;
        s.vault.record_consent(&permit, &input).await?
    };
    let out = RecordedConsentOut {
        consent: ConsentView {
            record,
            evidence: None,
            guardian_details: None,
        }
        .into(),
        receipt: receipt.into(),
    };
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

/// A subject's consent history (oldest first) and the current state per consent-based purpose.
#[utoipa::path(get, path = "/v1/subjects/{id}/consents", params(("id" = String, Path)),
    responses((status = 200, body = ConsentHistoryOut), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn consent_history(
    Authenticated(who, s): Authenticated,
    Path(id): Path<String>,
) -> ApiResult<Json<ConsentHistoryOut>> {
    let permit = s
        .vault
        .authorize::<act::ConsentRead>(&who, Target::subject(&id))
        .await?;
    Ok(Json(s.vault.consent_history(&permit).await?.into()))
}

/// The query of the stale-consents listing.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct StaleQuery {
    #[param(value_type = String)]
    purpose: Purpose,
    after: Option<String>,
    #[param(inline)]
    #[serde(default)]
    limit: Limit,
}

/// Subjects whose consent predates the purpose's current version (ask them again). Paged.
#[utoipa::path(get, path = "/v1/consents/stale", params(StaleQuery),
    responses((status = 200, body = StaleOut), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn stale_consents(
    Authenticated(who, s): Authenticated,
    ApiQuery(q): ApiQuery<StaleQuery>,
) -> ApiResult<Json<StaleOut>> {
    let purpose = q.purpose.0.as_str();
    let permit = s
        .vault
        .authorize::<act::ConsentStale>(&who, Target::purpose(purpose))
        .await?;
    let page = s
        .vault
        .stale_consents(&permit, q.after.as_deref(), Some(q.limit.get()))
        .await?;
    let purpose_version = s
        .vault
        .policy()
        .policy
        .purpose_version(purpose)
        .unwrap_or_default();
    Ok(Json(StaleOut {
        purpose: purpose.to_owned(),
        purpose_version,
        subjects: page
            .items
            .into_iter()
            .map(|c| StaleSubjectOut {
                id: c.subject_id,
                consent_id: c.consent_id,
                policy_version: c.policy_version,
                consented_at: Timestamp::from_micros(c.at_micros),
            })
            .collect(),
        next: page.next,
    }))
}

/// The query of the contact list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ContactableQuery {
    #[param(value_type = String)]
    purpose: Purpose,
    /// One of the channels the purpose uses
    #[param(inline)]
    channel: Channel,
    after: Option<String>,
    #[param(inline)]
    #[serde(default)]
    limit: Limit,
}

/// Ids of subjects who may be contacted under a purpose on a channel now. Paged; audited.
#[utoipa::path(get, path = "/v1/contactable", params(ContactableQuery),
    responses((status = 200, body = ContactableOut), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn contactable(
    Authenticated(who, s): Authenticated,
    ApiQuery(q): ApiQuery<ContactableQuery>,
) -> ApiResult<Json<ContactableOut>> {
    let purpose = q.purpose.0.as_str();
    let channel = q.channel.0;
    let permit = s
        .vault
        .authorize::<act::ContactList>(&who, Target::purpose(purpose))
        .await?;
    let page = s
        .vault
        .contactable(&permit, channel, q.after.as_deref(), Some(q.limit.get()))
        .await?;
    Ok(Json(ContactableOut {
        purpose: purpose.to_owned(),
        channel: channel.to_owned(),
        subjects: page.items,
        next: page.next,
    }))
}

/// Link a subject to another (guardian, parent, guarantor, emergency contact).
#[utoipa::path(post, path = "/v1/subjects/{id}/relations", params(("id" = String, Path)),
    request_body = RelationBody,
    responses((status = 201, body = RelationOut), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn add_relation(
    Authenticated(who, s): Authenticated,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let permit = s
        .vault
        .authorize::<act::RelationCreate>(&who, Target::subject(&id))
        .await?;
    let body: RelationBody = json_body(&body)?;
    let record = s
        .vault
        .add_relation(
            &permit,
            &body.kind,
            &body.subject_id,
            body.evidence.as_deref(),
        )
        .await?;
    let out = RelationOut::from(RelationView {
        record,
        evidence: None,
    });
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

/// Relations recorded on a subject or pointing to them.
#[utoipa::path(get, path = "/v1/subjects/{id}/relations", params(("id" = String, Path)),
    responses((status = 200, body = RelationsOut), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn relations(
    Authenticated(who, s): Authenticated,
    Path(id): Path<String>,
) -> ApiResult<Json<RelationsOut>> {
    let permit = s
        .vault
        .authorize::<act::RelationRead>(&who, Target::subject(&id))
        .await?;
    let relations = s.vault.relations(&permit).await?;
    Ok(Json(RelationsOut {
        relations: relations.into_iter().map(RelationOut::from).collect(),
    }))
}

//! Data-subject rights and retention use cases: requests with deadlines, export (access and
//! portability), restriction, legal holds, erasure by crypto-shredding, the end of a
//! relationship, and retention sweeps. The rules live in `amanah_core::{rights, retention}`.

use std::collections::BTreeMap;

use amanah_core::audit::{AuditAction, AuditDraft};
use amanah_core::consent::{self, date_of};
use amanah_core::fields;
use amanah_core::policy::Policy;
use amanah_core::retention::{self, HeldPurpose, RetentionAction};
use amanah_core::rights::{self, RefusalReason, RequestStatus, RequestType};
use amanah_core::Timestamp;
use amanah_core::{Conflict, Error, Result};
use amanah_crypto::DataKey;
use amanah_store::{
    DeidentifiedRecord, HoldRecord, RequestFilter, RequestRecord, RequestTransition,
    RestrictionRecord, RetentionSubject, StoreError, StoredSubject,
};
use serde_json::{json, Map, Value};

use crate::authz::{act, Circumstances, Permit, Principal};
use crate::vault::{sealed_fields, store_error, Vault};

mod erasure;
mod export;
mod holds;

pub use erasure::*;
pub use holds::*;

/// Longest free text (request details, reasons) accepted.
pub const MAX_TEXT_CHARS: usize = 4_096;
/// Subjects examined per retention-sweep page.
const SWEEP_PAGE: usize = 500;

/// A request as the DPO sees it: sealed texts opened.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestView {
    pub record: RequestRecord,
    pub details: Option<Value>,
    pub refusal_text: Option<String>,
    pub overdue: bool,
}

pub(crate) fn text(field: &str, value: &str) -> Result<String> {
    let v = value.trim();
    if v.is_empty() || v.chars().count() > MAX_TEXT_CHARS {
        return Err(Error::invalid(
            field,
            format!("`{field}` must be 1 to {MAX_TEXT_CHARS} characters"),
        ));
    }
    Ok(v.to_owned())
}

/// The values a rectification request proposes (`details.proposed`) must be values the policy
/// would accept for their categories, so the officer is never handed one the vault would
/// refuse. Messages name declared categories and rules only, never what was sent.
fn check_proposed(policy: &amanah_core::policy::Policy, proposed: &Value) -> Result<()> {
    let field = "details.proposed";
    let Some(map) = proposed.as_object() else {
        return Err(Error::invalid(
            field,
            "`details.proposed` must map categories to their corrected values",
        ));
    };
    for (name, value) in map {
        let Some(cat) = policy.category(name).filter(|c| !c.is_document()) else {
            return Err(Error::invalid(
                field,
                "`details.proposed` names a category the policy does not declare as a field",
            ));
        };
        let checked = match value {
            Value::String(s) => amanah_core::fields::normalize_str(cat.field_type, s),
            other => amanah_core::fields::normalize(cat.field_type, other),
        };
        if let Err(e) = checked {
            return Err(Error::invalid(
                field,
                format!("proposed `{name}`: {}", e.rule),
            ));
        }
    }
    Ok(())
}

fn today(micros: i64) -> String {
    date_of(micros).to_string()
}

impl Vault {
    /// The error for a subject that is not there: 410 when it was erased, else 404.
    pub(crate) async fn missing_subject(&self, id: &str) -> Result<Error> {
        Ok(match self.store.erased_at(id).await.map_err(store_error)? {
            Some(at) => Error::Gone(format!(
                "subject {} was erased on {}: their data and key no longer exist",
                crate::vault::id_shown(id),
                date_of(at)
            )),
            None => Error::NotFound(format!("no subject {}", crate::vault::id_shown(id))),
        })
    }

    /// Loads an existing subject for a rights operation (404/410 audited as refusals).
    pub(crate) async fn subject_for(
        &self,
        id: &str,
        draft: &AuditDraft,
    ) -> Result<(StoredSubject, DataKey)> {
        let stored = self.load_or_deny(id, draft).await?;
        let key = self.unwrap_key(&stored)?;
        Ok((stored, key))
    }

    fn open_text(
        &self,
        key: &DataKey,
        subject: &str,
        field: &str,
        sealed: &[u8],
    ) -> Result<String> {
        let plain = key
            .open_field(subject, field, sealed)
            .map_err(|e| Error::Internal(format!("subject {subject}: {field}: {e}")))?;
        Ok(String::from_utf8_lossy(&plain).into_owned())
    }

    fn seal_text(&self, key: &DataKey, subject: &str, field: &str, plain: &str) -> Result<Vec<u8>> {
        key.seal_field(subject, field, plain.as_bytes())
            .map_err(|e| Error::Internal(e.to_string()))
    }

    // ---------------------------------------------------------------- requests

    pub(crate) async fn check_rectification_request(
        &self,
        request: &str,
        subject: &str,
    ) -> Result<()> {
        let r = self
            .store
            .load_request(request)
            .await
            .map_err(store_error)?
            .ok_or_else(|| {
                Error::invalid(
                    "request",
                    format!("no request {}", crate::vault::id_shown(request)),
                )
            })?;
        let open = RequestStatus::parse(&r.status).is_some_and(RequestStatus::is_open);
        if r.subject_id != subject || r.kind != RequestType::Rectification.as_str() || !open {
            return Err(Error::invalid(
                "request",
                format!(
                    "request {request} is not an open rectification request of subject {subject}"
                ),
            ));
        }
        Ok(())
    }

    fn request_view(
        &self,
        r: RequestRecord,
        key: Option<&DataKey>,
        now: i64,
    ) -> Result<RequestView> {
        let details = match (&r.details, key) {
            (Some(sealed), Some(k)) => {
                let s = self.open_text(
                    k,
                    &r.subject_id,
                    &format!("request.details:{}", r.id),
                    sealed,
                )?;
                Some(serde_json::from_str(&s).unwrap_or(Value::String(s)))
            }
            _ => None,
        };
        let refusal_text = match (&r.refusal_text, key) {
            (Some(sealed), Some(k)) => Some(self.open_text(
                k,
                &r.subject_id,
                &format!("request.refusal:{}", r.id),
                sealed,
            )?),
            _ => None,
        };
        let overdue = RequestStatus::parse(&r.status)
            .is_some_and(|s| rights::is_overdue(s, r.due_at_micros, now));
        Ok(RequestView {
            record: r,
            details,
            refusal_text,
            overdue,
        })
    }

    async fn key_of(&self, subject: &str) -> Result<Option<DataKey>> {
        match self
            .store
            .load_subject(subject)
            .await
            .map_err(store_error)?
        {
            Some(stored) => Ok(Some(self.unwrap_key(&stored)?)),
            None => Ok(None),
        }
    }

    /// Records a data-subject request; it is due `request_deadline_hours` later.
    pub async fn create_request(
        &self,
        permit: &Permit<act::RequestCreate>,
        kind: &str,
        details: Option<&Value>,
    ) -> Result<RequestView> {
        let policy = permit.policy();
        let who = permit.principal();
        let subject_id = permit.subject()?;
        let mut draft = permit.draft();
        let kind = RequestType::parse(kind).ok_or_else(|| {
            Error::invalid(
                "type",
                format!("`type` must be one of: {}", RequestType::spellings()),
            )
        })?;
        if kind == RequestType::Rectification {
            if let Some(proposed) = details.and_then(|d| d.get("proposed")) {
                check_proposed(policy, proposed)?;
            }
        }
        let (_, key) = self.subject_for(subject_id, &draft).await?;
        let id = uuid::Uuid::new_v4().to_string();
        let now = draft.at_micros;
        let details = match details {
            None | Some(Value::Null) => None,
            Some(v) => {
                let s = v.to_string();
                if s.chars().count() > MAX_TEXT_CHARS {
                    return Err(Error::invalid(
                        "details",
                        format!("`details` must be at most {MAX_TEXT_CHARS} characters of JSON"),
                    ));
                }
                Some(self.seal_text(&key, subject_id, &format!("request.details:{id}"), &s)?)
            }
        };
        let record = RequestRecord {
            id: id.clone(),
            subject_id: subject_id.to_owned(),
            kind: kind.as_str().to_owned(),
            status: RequestStatus::Received.as_str().to_owned(),
            details,
            received_at_micros: now,
            due_at_micros: rights::due_at(now, policy.settings.request_deadline_hours),
            updated_at_micros: now,
            refusal_reason: None,
            refusal_text: None,
            closed_at_micros: None,
            received_by: who.key_id().to_owned(),
        };
        draft.reason = Some(format!("request {id} ({kind}) received"));
        self.store
            .insert_request(record.clone(), draft)
            .await
            .map_err(store_error)?;
        self.refresh_request_gauges().await;
        self.request_view(record, Some(&key), now)
    }

    pub async fn get_request(
        &self,
        permit: &Permit<act::RequestRead>,
        id: &str,
    ) -> Result<RequestView> {
        let mut draft = permit.draft();
        let Some(r) = self.store.load_request(id).await.map_err(store_error)? else {
            return Err(self
                .deny(
                    draft,
                    Error::NotFound(format!("no request {}", crate::vault::id_shown(id))),
                )
                .await);
        };
        draft.subject = Some(r.subject_id.clone());
        draft.reason = Some(format!("request {id}"));
        let key = self.key_of(&r.subject_id).await?;
        let view = self.request_view(r, key.as_ref(), draft.at_micros)?;
        self.record(draft).await?;
        Ok(view)
    }

    /// Requests by due date; `overdue` keeps open ones past their deadline.
    pub async fn list_requests(
        &self,
        permit: &Permit<act::RequestList>,
        status: Option<&str>,
        overdue: bool,
        subject: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RequestView>> {
        let mut draft = permit.draft();
        let now = draft.at_micros;
        let mut filter = RequestFilter {
            subject: subject.map(str::to_owned),
            overdue_at: overdue.then_some(now),
            ..RequestFilter::default()
        };
        match status {
            None | Some("all") => {}
            Some("open") => filter.open_only = true,
            Some(s) if RequestStatus::parse(s).is_some() => filter.status = Some(s.to_owned()),
            Some(_) => {
                return Err(Error::invalid(
                    "status",
                    format!(
                        "`status` must be open, all or one of: {}",
                        RequestStatus::spellings()
                    ),
                ))
            }
        }
        let found = self
            .store
            .list_requests(filter, after, limit)
            .await
            .map_err(store_error)?;
        // The listing shows metadata only; details are opened one request at a time.
        let views = found
            .into_iter()
            .map(|r| self.request_view(r, None, now))
            .collect::<Result<Vec<_>>>()?;
        draft.reason = Some(format!("listed {} requests", views.len()));
        self.record(draft).await?;
        Ok(views)
    }

    /// Moves a request on: `in_progress`, `completed`, or `refused` with a reason the law allows
    /// and an explanation for the subject.
    pub async fn transition_request(
        &self,
        permit: &Permit<act::RequestUpdate>,
        id: &str,
        to: &str,
        refusal: Option<(&str, &str)>,
    ) -> Result<RequestView> {
        let mut draft = permit.draft();
        let to = RequestStatus::parse(to).ok_or_else(|| {
            Error::invalid(
                "status",
                format!("`status` must be one of: {}", RequestStatus::spellings()),
            )
        })?;
        let reason = match (to, refusal) {
            (RequestStatus::Refused, Some((reason, explanation))) => {
                let r = RefusalReason::parse(reason).ok_or_else(|| {
                    Error::invalid(
                        "refusal.reason",
                        format!(
                            "`refusal.reason` must be one of: {}",
                            RefusalReason::spellings()
                        ),
                    )
                })?;
                Some((r, text("refusal.explanation", explanation)?))
            }
            (RequestStatus::Refused, None) => {
                return Err(Error::invalid(
                    "refusal",
                    format!(
                        "a refusal needs {{\"reason\", \"explanation\"}}; reasons: {}",
                        RefusalReason::spellings()
                    ),
                ))
            }
            (_, Some(_)) => {
                return Err(Error::invalid(
                    "refusal",
                    "`refusal` is only for status refused",
                ))
            }
            (_, None) => None,
        };
        let Some(current) = self.store.load_request(id).await.map_err(store_error)? else {
            return Err(self
                .deny(
                    draft,
                    Error::NotFound(format!("no request {}", crate::vault::id_shown(id))),
                )
                .await);
        };
        draft.subject = Some(current.subject_id.clone());
        let from = RequestStatus::parse(&current.status)
            .ok_or_else(|| Error::Internal(format!("request {id} has an unknown status")))?;
        if !from.may_become(to) {
            return Err(Error::Conflict(Conflict::InvalidTransition, format!(
                "request {id} is {from}: it cannot become {to} (received -> in_progress -> completed | refused)"
            )));
        }
        let key = self.key_of(&current.subject_id).await?;
        let refusal_text = match (&reason, &key) {
            (Some((_, explanation)), Some(k)) => Some(self.seal_text(
                k,
                &current.subject_id,
                &format!("request.refusal:{id}"),
                explanation,
            )?),
            _ => None,
        };
        draft.reason = Some(match &reason {
            Some((r, _)) => format!("request {id}: {from} -> {to} ({r})"),
            None => format!("request {id}: {from} -> {to}"),
        });
        let now = draft.at_micros;
        self.store
            .update_request(
                RequestTransition {
                    id: id.to_owned(),
                    from: from.as_str().to_owned(),
                    to: to.as_str().to_owned(),
                    at_micros: now,
                    closed: !to.is_open(),
                    refusal_reason: reason.as_ref().map(|(r, _)| r.as_str().to_owned()),
                    refusal_text,
                },
                draft,
            )
            .await
            .map_err(store_error)?;
        self.refresh_request_gauges().await;
        let updated = self
            .store
            .load_request(id)
            .await
            .map_err(store_error)?
            .ok_or_else(|| Error::NotFound(format!("no request {}", crate::vault::id_shown(id))))?;
        self.request_view(updated, key.as_ref(), now)
    }

    /// Updates the open / overdue request gauges (called after changes and periodically).
    pub async fn refresh_request_gauges(&self) {
        match self.store.count_requests(self.clock.now_micros()).await {
            Ok((open, overdue)) => {
                metrics::gauge!("amanah_requests_open").set(open as f64);
                metrics::gauge!("amanah_requests_overdue").set(overdue as f64);
            }
            Err(e) => tracing::warn!(error = %e, "could not count requests"),
        }
    }

    // ---------------------------------------------------------------- export

    // ---------------------------------------------------------------- restriction and holds

    // ---------------------------------------------------------------- erasure

    // ---------------------------------------------------------------- retention
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_run_through_their_last_day() {
        let day = consent::MICROS_PER_DAY;
        // 1970-01-03
        assert!(hold_active("1970-01-03", None, 2 * day + 5));
        assert!(!hold_active("1970-01-02", None, 2 * day));
        assert!(!hold_active("1970-01-03", Some(1), 2 * day));
    }
}

//! Data-subject rights and retention use cases: requests with deadlines, export (access and
//! portability), restriction, legal holds, erasure by crypto-shredding, the end of a
//! relationship, and retention sweeps. The rules live in `amanah_core::{rights, retention}`.

use std::collections::BTreeMap;

use amanah_core::audit::AuditDraft;
use amanah_core::consent::{self, date_of};
use amanah_core::fields;
use amanah_core::policy::Policy;
use amanah_core::retention::{self, HeldPurpose, RetentionAction};
use amanah_core::rights::{self, RefusalReason, RequestStatus, RequestType};
use amanah_core::{Error, Result};
use amanah_crypto::DataKey;
use amanah_store::{
    DeidentifiedRecord, HoldRecord, RequestFilter, RequestRecord, RequestTransition,
    RestrictionRecord, RetentionSubject, StoreError, StoredSubject,
};
use serde_json::{json, Map, Value};

use crate::authz::{act, Circumstances, Permit, Principal};
use crate::vault::{store_error, Vault};

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

/// A legal hold, its reason opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldView {
    pub record: HoldRecord,
    pub reason: String,
    pub active: bool,
}

/// What a retention sweep did (or, in a dry run, would do) with one subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepItem {
    pub subject_id: String,
    pub action: RetentionAction,
    /// Set when a legal hold suspended the action.
    pub held_until: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub examined: u64,
    pub items: Vec<SweepItem>,
    pub dry_run: bool,
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

fn today(micros: i64) -> String {
    date_of(micros).to_string()
}

/// A hold runs through its `until` day (inclusive) unless released.
fn hold_active(until: &str, released: Option<i64>, now_micros: i64) -> bool {
    released.is_none() && until >= today(now_micros).as_str()
}

impl Vault {
    /// The error for a subject that is not there: 410 when it was erased, else 404.
    pub(crate) async fn missing_subject(&self, id: &str) -> Result<Error> {
        Ok(match self.store.erased_at(id).await.map_err(store_error)? {
            Some(at) => Error::Gone(format!(
                "subject {id} was erased on {}: their data and key no longer exist",
                date_of(at)
            )),
            None => Error::NotFound(format!("no subject {id}")),
        })
    }

    /// Loads an existing subject for a rights operation (404/410 audited as refusals).
    async fn subject_for(&self, id: &str, draft: &AuditDraft) -> Result<(StoredSubject, DataKey)> {
        match self.store.load_subject(id).await.map_err(store_error)? {
            Some(stored) => {
                let key = self.unwrap_key(&stored)?;
                Ok((stored, key))
            }
            None => {
                let missing = self.missing_subject(id).await?;
                Err(self.deny(draft.clone(), missing).await)
            }
        }
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
            .ok_or_else(|| Error::invalid("request", format!("no request {request}")))?;
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
                .deny(draft, Error::NotFound(format!("no request {id}")))
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
                .deny(draft, Error::NotFound(format!("no request {id}")))
                .await);
        };
        draft.subject = Some(current.subject_id.clone());
        let from = RequestStatus::parse(&current.status)
            .ok_or_else(|| Error::Internal(format!("request {id} has an unknown status")))?;
        if !from.may_become(to) {
            return Err(Error::Conflict(format!(
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
            .ok_or_else(|| Error::NotFound(format!("no request {id}")))?;
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

    /// Everything held about a subject (UU PDP Art. 32, portability Art. 13): every field
    /// decrypted, consents, relations, purposes with their legal bases and recipients, holds,
    /// restriction, requests, and the processing trail from the audit log.
    pub async fn export_subject(&self, permit: &Permit<act::SubjectExport>) -> Result<Value> {
        let policy = permit.policy();
        let id = permit.subject()?;
        let mut draft = permit.draft();
        let (stored, key) = self.subject_for(id, &draft).await?;
        let mut field_values = Map::new();
        for (category, ciphertext) in &stored.fields {
            let plain = self.open_text(&key, id, category, ciphertext)?;
            let value = match policy.category(category) {
                Some(cat) => fields::to_json(cat.field_type, &plain),
                None => Value::String(plain),
            };
            field_values.insert(category.clone(), value);
        }
        let purposes = self.store.subject_purposes(id).await.map_err(store_error)?;
        let mut recipients: BTreeMap<String, Value> = BTreeMap::new();
        let purposes_out: Vec<Value> = purposes
            .iter()
            .map(|(name, collected)| {
                let p = policy.purpose(name);
                let its_recipients: Vec<Value> = policy
                    .recipients
                    .values()
                    .filter(|r| r.purposes.iter().any(|x| x == name))
                    .map(|r| {
                        let out = json!({"name": r.name, "kind": r.kind.as_str(), "country": r.country,
                                         "transfer_basis": r.transfer_basis.map(|b| b.as_str())});
                        recipients.insert(r.name.clone(), out.clone());
                        out
                    })
                    .collect();
                json!({
                    "purpose": name,
                    "basis": p.map(|p| p.basis.as_str()),
                    "description": p.and_then(|p| p.description.clone()),
                    "collected_at": rfc3339(*collected),
                    "retention": p.map(|p| p.retention.to_string()),
                    "retention_from": p.map(|p| p.retention_from.as_str()),
                    "categories_held": p.map(|p| p.categories.iter().filter(|c| field_values.contains_key(*c)).cloned().collect::<Vec<_>>()),
                    "recipients": its_recipients,
                    "in_current_policy": p.is_some(),
                })
            })
            .collect();
        let consents: Vec<Value> = self
            .store
            .consents(id)
            .await
            .map_err(store_error)?
            .into_iter()
            .map(|c| {
                let evidence = c
                    .evidence
                    .as_ref()
                    .map(|e| self.open_text(&key, id, &format!("consent.evidence:{}", c.id), e))
                    .transpose()?;
                Ok(json!({
                    "id": c.id, "purpose": c.purpose, "purpose_version": c.purpose_version,
                    "policy_version": c.policy_version, "granted": c.granted, "given_by": c.given_by,
                    "guardian_subject_id": c.guardian_subject_id, "channel": c.capture_channel,
                    "contact_channels": c.contact_channels, "evidence": evidence,
                    "evidence_sha256": c.evidence_sha256, "time": rfc3339(c.at_micros),
                }))
            })
            .collect::<Result<_>>()?;
        let relations: Vec<Value> = self
            .store
            .relations(id)
            .await
            .map_err(store_error)?
            .into_iter()
            .map(|r| {
                json!({"id": r.id, "subject_id": r.subject_id, "kind": r.kind,
                       "related_subject_id": r.related_subject_id, "time": rfc3339(r.at_micros)})
            })
            .collect();
        let restriction = match self.store.restriction(id).await.map_err(store_error)? {
            Some(r) => {
                let reason = r
                    .reason
                    .as_ref()
                    .map(|s| self.open_text(&key, id, "restriction.reason", s))
                    .transpose()?;
                json!({"since": rfc3339(r.since_micros), "reason": reason})
            }
            None => Value::Null,
        };
        let holds: Vec<Value> = self
            .holds_of(id, &key, draft.at_micros)
            .await?
            .into_iter()
            .map(|h| json!({"id": h.record.id, "reason": h.reason, "until": h.record.until, "active": h.active}))
            .collect();
        let requests: Vec<Value> = self
            .store
            .list_requests(
                RequestFilter {
                    subject: Some(id.to_owned()),
                    ..RequestFilter::default()
                },
                None,
                10_000,
            )
            .await
            .map_err(store_error)?
            .into_iter()
            .map(|r| {
                json!({"id": r.id, "type": r.kind, "status": r.status, "received_at": rfc3339(r.received_at_micros),
                       "due_at": rfc3339(r.due_at_micros), "refusal_reason": r.refusal_reason})
            })
            .collect();
        let disclosures = self.disclosures_of(policy, id, draft.at_micros).await?;
        let mut trail = Vec::new();
        let mut after = 0;
        loop {
            let page = self
                .store
                .audit_entries(Some(id), after, 10_000)
                .await
                .map_err(store_error)?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            trail.extend(page.into_iter().map(|e| {
                json!({"time": rfc3339(e.entry.at_micros), "actor": e.entry.actor, "role": e.entry.role,
                       "action": e.entry.action, "purpose": e.entry.purpose, "basis": e.entry.basis,
                       "outcome": e.entry.outcome.as_str(), "fields": e.entry.fields})
            }));
        }
        let export = json!({
            "format": "amanah-export/1",
            "subject_id": id,
            "exported_at": rfc3339(draft.at_micros),
            "controller": {"name": policy.controller.name, "contact": policy.controller.contact},
            "policy_version": policy.version,
            "fields": field_values,
            "purposes": purposes_out,
            "recipients": recipients.into_values().collect::<Vec<_>>(),
            "consents": consents,
            "relations": relations,
            "restriction": restriction,
            "holds": holds,
            "requests": requests,
            "disclosures": disclosures,
            "processing": trail,
        });
        draft.fields = stored.fields.iter().map(|(c, _)| c.clone()).collect();
        self.record(draft).await?;
        Ok(export)
    }

    // ---------------------------------------------------------------- restriction and holds

    /// Restricts processing (UU PDP Art. 41): reads are refused except by the admin under a
    /// purpose marked `restricted_use`.
    pub async fn restrict(
        &self,
        permit: &Permit<act::SubjectRestrict>,
        reason: Option<&str>,
    ) -> Result<()> {
        let who = permit.principal();
        let id = permit.subject()?;
        let draft = permit.draft();
        let (_, key) = self.subject_for(id, &draft).await?;
        let reason = reason.map(|r| text("reason", r)).transpose()?;
        let sealed = reason
            .as_deref()
            .map(|r| self.seal_text(&key, id, "restriction.reason", r))
            .transpose()?;
        let record = RestrictionRecord {
            since_micros: draft.at_micros,
            reason: sealed,
            by: who.key_id().to_owned(),
        };
        self.store
            .set_restriction(id, Some(record), draft)
            .await
            .map_err(store_error)?;
        Ok(())
    }

    pub async fn lift_restriction(&self, permit: &Permit<act::SubjectUnrestrict>) -> Result<()> {
        let id = permit.subject()?;
        let draft = permit.draft();
        self.subject_for(id, &draft).await?;
        if self
            .store
            .restriction(id)
            .await
            .map_err(store_error)?
            .is_none()
        {
            return Err(Error::Conflict(format!("subject {id} is not restricted")));
        }
        self.store
            .set_restriction(id, None, draft)
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn holds_of(&self, id: &str, key: &DataKey, now: i64) -> Result<Vec<HoldView>> {
        self.store
            .holds(id)
            .await
            .map_err(store_error)?
            .into_iter()
            .map(|h| {
                let reason =
                    self.open_text(key, id, &format!("hold.reason:{}", h.id), &h.reason)?;
                let active = hold_active(&h.until, h.released_at_micros, now);
                Ok(HoldView {
                    record: h,
                    reason,
                    active,
                })
            })
            .collect()
    }

    /// Places a legal hold: erasure (by request or retention) is refused until `until`
    /// (inclusive) or until released.
    pub async fn add_hold(
        &self,
        permit: &Permit<act::HoldCreate>,
        reason: &str,
        until: &str,
    ) -> Result<HoldView> {
        let who = permit.principal();
        let id = permit.subject()?;
        let mut draft = permit.draft();
        let (_, key) = self.subject_for(id, &draft).await?;
        let reason = text("reason", reason)?;
        let until_date = consent::parse_date(until)
            .ok_or_else(|| Error::invalid("until", "`until` must be a date, YYYY-MM-DD"))?;
        if until_date < date_of(draft.at_micros) {
            return Err(Error::invalid("until", "`until` is in the past"));
        }
        let hold_id = uuid::Uuid::new_v4().to_string();
        let record = HoldRecord {
            id: hold_id.clone(),
            subject_id: id.to_owned(),
            reason: self.seal_text(&key, id, &format!("hold.reason:{hold_id}"), &reason)?,
            until: until_date.to_string(),
            created_at_micros: draft.at_micros,
            created_by: who.key_id().to_owned(),
            released_at_micros: None,
        };
        draft.reason = Some(format!("hold {hold_id} until {until_date}"));
        self.store
            .insert_hold(record.clone(), draft)
            .await
            .map_err(store_error)?;
        Ok(HoldView {
            record,
            reason,
            active: true,
        })
    }

    pub async fn holds(&self, permit: &Permit<act::HoldRead>) -> Result<Vec<HoldView>> {
        let id = permit.subject()?;
        let draft = permit.draft();
        let (_, key) = self.subject_for(id, &draft).await?;
        let holds = self.holds_of(id, &key, draft.at_micros).await?;
        self.record(draft).await?;
        Ok(holds)
    }

    pub async fn release_hold(
        &self,
        permit: &Permit<act::HoldRelease>,
        hold_id: &str,
    ) -> Result<()> {
        let id = permit.subject()?;
        let mut draft = permit.draft();
        if uuid::Uuid::parse_str(hold_id).is_err() {
            return Err(self
                .deny(
                    draft,
                    Error::NotFound("no unreleased hold with that id".into()),
                )
                .await);
        }
        draft.reason = Some(format!("hold {hold_id} released"));
        let at = draft.at_micros;
        match self
            .store
            .release_hold(id, hold_id, at, draft.clone())
            .await
        {
            Ok(_) => Ok(()),
            Err(StoreError::NotFound) => {
                let err = Error::NotFound(format!("subject {id} has no unreleased hold {hold_id}"));
                draft.reason = None;
                Err(self.deny(draft, err).await)
            }
            Err(other) => Err(store_error(other)),
        }
    }

    // ---------------------------------------------------------------- erasure

    /// Erases a subject (UU PDP Art. 43-44) by destroying their data key and deleting every
    /// ciphertext and index term; refused with 409 while a legal hold runs. With `request`, the
    /// erasure answers that request.
    pub async fn erase_subject(
        &self,
        permit: &Permit<act::SubjectErase>,
        request: Option<&str>,
    ) -> Result<()> {
        let who = permit.principal();
        let id = permit.subject()?;
        let mut draft = permit.draft();
        let (_, key) = self.subject_for(id, &draft).await?;
        if let Some(r) = request {
            let ok = self
                .store
                .load_request(r)
                .await
                .map_err(store_error)?
                .is_some_and(|q| {
                    q.subject_id == id
                        && q.kind == RequestType::Erasure.as_str()
                        && RequestStatus::parse(&q.status).is_some_and(RequestStatus::is_open)
                });
            if !ok {
                let err = Error::invalid(
                    "request",
                    format!("request {r} is not an open erasure request of subject {id}"),
                );
                return Err(self.deny(draft, err).await);
            }
        }
        let holds = self.holds_of(id, &key, draft.at_micros).await?;
        if let Some(h) = holds.iter().find(|h| h.active) {
            let err = Error::Conflict(format!(
                "subject {id} is under a legal hold until {}: {}",
                h.record.until, h.reason
            ));
            // The refusal is recorded without the hold's free text.
            let mut refused = draft.clone();
            refused.outcome = amanah_core::audit::Outcome::Denied;
            refused.reason = Some(format!(
                "legal hold {} until {}",
                h.record.id, h.record.until
            ));
            self.store
                .append_audit(vec![refused])
                .await
                .map_err(store_error)?;
            return Err(err);
        }
        let cause = match request {
            Some(r) => format!("request {r}"),
            None => format!("erased by {}", who.key_id()),
        };
        draft.reason = Some(cause.clone());
        let at = draft.at_micros;
        self.store
            .erase_subject(id, at, &cause, draft)
            .await
            .map_err(store_error)?;
        Ok(())
    }

    /// Records the end of the relationship: purposes with `retention_from =
    /// "relationship_end"` start counting.
    pub async fn end_relationship(&self, permit: &Permit<act::SubjectEnd>) -> Result<()> {
        let id = permit.subject()?;
        let draft = permit.draft();
        let Some(stored) = self.store.load_subject(id).await.map_err(store_error)? else {
            let missing = self.missing_subject(id).await?;
            return Err(self.deny(draft, missing).await);
        };
        self.admit(permit, stored, Circumstances::default(), &draft)
            .await?;
        let at = draft.at_micros;
        self.store
            .end_relationship(id, at, draft)
            .await
            .map_err(store_error)?;
        Ok(())
    }

    // ---------------------------------------------------------------- retention

    /// Applies the policy's retention to every subject (admin, the DPO, or the CLI). A dry run
    /// only reports. `progress(examined)` is called after each page.
    pub async fn retention_sweep(
        &self,
        permit: &Permit<act::RetentionSweep>,
        dry_run: bool,
        mut progress: impl FnMut(u64) + Send,
    ) -> Result<SweepReport> {
        let policy = permit.policy();
        let who = permit.principal();
        let mut draft = permit.draft();
        let now = self.clock.now_micros();
        let mut report = SweepReport {
            dry_run,
            ..SweepReport::default()
        };
        let mut after: Option<String> = None;
        loop {
            let page = self
                .store
                .retention_page(after.as_deref(), SWEEP_PAGE)
                .await
                .map_err(store_error)?;
            let Some(last) = page.last() else { break };
            after = Some(last.id.clone());
            for subject in page {
                report.examined += 1;
                if let Some(item) = self.sweep_one(who, policy, &subject, now, dry_run).await? {
                    report.items.push(item);
                }
            }
            progress(report.examined);
        }
        let acted = report
            .items
            .iter()
            .filter(|i| i.held_until.is_none())
            .count();
        draft.reason = Some(format!(
            "{}{} subjects examined, {acted} acted on, {} suspended by holds",
            if dry_run { "dry run: " } else { "" },
            report.examined,
            report.items.len() - acted
        ));
        self.record(draft).await?;
        Ok(report)
    }

    async fn sweep_one(
        &self,
        who: &Principal,
        policy: &Policy,
        s: &RetentionSubject,
        now: i64,
        dry_run: bool,
    ) -> Result<Option<SweepItem>> {
        let held: Vec<HeldPurpose> = s
            .purposes
            .iter()
            .map(|(p, at)| HeldPurpose {
                purpose: p.clone(),
                collected_at_micros: *at,
            })
            .collect();
        let action = retention::decide(
            policy,
            &held,
            &s.categories,
            s.relationship_ended_micros,
            now,
        );
        if action == RetentionAction::Keep {
            return Ok(None);
        }
        let held_until = s
            .holds_until
            .iter()
            .filter(|u| hold_active(u, None, now))
            .max()
            .cloned();
        let item = SweepItem {
            subject_id: s.id.clone(),
            action: action.clone(),
            held_until: held_until.clone(),
        };
        if dry_run || held_until.is_some() {
            return Ok(Some(item));
        }
        let mut draft = self.draft_for(who, "retention.apply", policy);
        draft.subject = Some(s.id.clone());
        let result = match &action {
            RetentionAction::Keep => Ok(()),
            RetentionAction::EraseCategories {
                expired,
                categories,
            } => {
                draft.fields = categories.clone();
                draft.reason = Some(format!("retention ended for {}", expired.join(", ")));
                self.store
                    .erase_categories(&s.id, categories.clone(), expired.clone(), draft)
                    .await
                    .map(|_| ())
            }
            RetentionAction::EraseSubject { expired } => {
                draft.reason = Some(format!(
                    "retention ended for {}: subject erased",
                    expired.join(", ")
                ));
                self.store
                    .erase_subject(&s.id, now, "retention", draft)
                    .await
                    .map(|_| ())
            }
            RetentionAction::Deidentify { expired } => {
                let attributes = self.deidentified_attributes(policy, &s.id).await?;
                draft.reason = Some(format!(
                    "retention ended for {}: de-identified",
                    expired.join(", ")
                ));
                let record = DeidentifiedRecord {
                    id: uuid::Uuid::new_v4().to_string(),
                    purposes: expired.clone(),
                    attributes: Value::Object(attributes).to_string(),
                    created_on: today(now),
                };
                self.store
                    .deidentify_subject(&s.id, now, record, draft)
                    .await
                    .map(|_| ())
            }
        };
        match result {
            Ok(()) | Err(StoreError::NotFound) => Ok(Some(item)),
            Err(e) => Err(store_error(e)),
        }
    }

    /// The de-identified attributes kept for a subject (birth year, NIK province).
    async fn deidentified_attributes(
        &self,
        policy: &Policy,
        id: &str,
    ) -> Result<Map<String, Value>> {
        let mut out = Map::new();
        let Some(stored) = self.store.load_subject(id).await.map_err(store_error)? else {
            return Ok(out);
        };
        let key = self.unwrap_key(&stored)?;
        for (category, ciphertext) in &stored.fields {
            let Some(cat) = policy.category(category) else {
                continue;
            };
            let plain = self.open_text(&key, id, category, ciphertext)?;
            if let Some(v) = retention::deidentify(cat.field_type, &plain) {
                out.insert(category.clone(), Value::String(v));
            }
        }
        Ok(out)
    }
}

pub(crate) fn rfc3339(micros: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
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

//! Every write, written once. A write is an [`Op`]: plain data, so PostgreSQL's writer can
//! apply it again unchanged when it retries a transaction. [`apply`] runs it over a backend's
//! [`Writer`] inside the group-commit transaction (in the job's own savepoint) and appends its
//! audit entries. The store holds no rules: a status change is a conditional update that
//! changes nothing when the row has moved on since the vault read it, reported as
//! [`StoreError::Changed`]; which rule that breaks is the vault's to say. The rows that grant
//! access (API keys, policy versions) are sealed here, with their MAC (`crate::integrity`), by
//! the one code that writes them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use amanah_core::audit::{AuditDraft, AuditRecord};

use crate::exec::{Exec, KeyWrite, Keyed, Writer};
use crate::sql::writes as w;
use crate::sql::{self, Sql};
use crate::{
    integrity, rows, sealed_fields, ApiKeyRecord, BreachRecord, ConsentRecord, DeidentifiedRecord,
    DisclosureRecord, DisclosureRelease, DisclosureStep, FieldWrite, HoldRecord, NewSubject,
    PolicyRecord, RelationRecord, RequestRecord, RequestTransition, RestrictionRecord, Rewrap,
    StoreError, SubjectUpdate,
};

/// One write job.
#[derive(Debug)]
pub(crate) enum Op {
    InsertSubject(NewSubject, AuditDraft),
    UpdateSubject(SubjectUpdate, AuditDraft),
    InsertConsent(ConsentRecord, AuditDraft),
    InsertRelation(RelationRecord, AuditDraft),
    /// Entries that record reads or refusals.
    Append(Vec<AuditDraft>),
    InsertApiKey(ApiKeyRecord, AuditDraft),
    RevokeApiKey {
        id: String,
        at: i64,
        audit: AuditDraft,
    },
    InsertPolicy(PolicyRecord, AuditDraft),
    EraseSubject {
        id: String,
        at: i64,
        cause: String,
        audit: AuditDraft,
    },
    SetRestriction {
        id: String,
        restriction: Option<RestrictionRecord>,
        audit: AuditDraft,
    },
    InsertHold(HoldRecord, AuditDraft),
    /// An upload under way (no audit entry: the upload's own entry comes with its document).
    ReserveObject {
        object: String,
        at: i64,
    },
    InsertDocument(crate::DocumentRecord, AuditDraft),
    /// Objects deleted from the object store (no audit entry: their erasure has one).
    ForgetObjects(Vec<String>),
    InsertTenant(crate::TenantRecord, AuditDraft),
    ChangeTenant(crate::TenantChange, AuditDraft),
    PurgeTenant {
        id: String,
        audit: AuditDraft,
    },
    SetTenantQuotas {
        id: String,
        max_subjects: Option<i64>,
        max_rps: Option<i64>,
        audit: AuditDraft,
    },
    ReleaseHold {
        subject: String,
        hold_id: String,
        at: i64,
        audit: AuditDraft,
    },
    InsertRequest(RequestRecord, AuditDraft),
    UpdateRequest(RequestTransition, AuditDraft),
    EndRelationship {
        id: String,
        at: i64,
        audit: AuditDraft,
    },
    EraseCategories {
        id: String,
        categories: Vec<String>,
        expired: Vec<String>,
        audit: AuditDraft,
    },
    Deidentify {
        id: String,
        at: i64,
        record: DeidentifiedRecord,
        audit: AuditDraft,
    },
    InsertDisclosure(DisclosureRecord, AuditDraft),
    StepDisclosure(DisclosureStep, AuditDraft),
    /// One entry per subject carried.
    RecordRelease(DisclosureRelease, Vec<AuditDraft>),
    InsertBreach(BreachRecord, AuditDraft),
    MarkBreachNotified {
        id: String,
        by: String,
        at: i64,
        audit: AuditDraft,
    },
    /// Key rotation: `updated` receives how many keys were rewritten (set, not added to, so a
    /// retried transaction reports its own count).
    RewrapKeys {
        rewraps: Vec<Rewrap>,
        audit: AuditDraft,
        updated: Arc<AtomicU64>,
    },
}

/// Applies one write and appends its audit entries; the records appended.
pub(crate) async fn apply<W: Writer>(x: &mut W, op: &Op) -> Result<Vec<AuditRecord>, W::Error> {
    let audit = match op {
        Op::InsertSubject(s, audit) => {
            if let Some(category) = insert_new_subject(x, s).await?.into_iter().next() {
                return Err(StoreError::Unique { category }.into());
            }
            audit
        }
        Op::UpdateSubject(u, audit) => {
            // Changing fields reads them under the row's lock; otherwise the lock alone.
            if u.fields.is_empty() {
                require(x, w::LOCK_SUBJECT, &u.id).await?;
            } else {
                write_fields(x, &u.id, &u.fields).await?;
            }
            if let Some(purpose) = &u.enroll {
                x.execute(w::INSERT_PURPOSE, args![&u.id, purpose, u.at_micros])
                    .await?;
            }
            audit
        }
        Op::InsertConsent(c, audit) => {
            require(x, w::SUBJECT_EXISTS, &c.subject_id).await?;
            if let Some(guardian) = &c.guardian_subject_id {
                require(x, w::SUBJECT_EXISTS, guardian).await?;
            }
            write_consent(x, c).await?;
            if c.granted {
                // A consent is a ground of its own: the subject is enrolled in its purpose.
                x.execute(
                    w::INSERT_PURPOSE,
                    args![&c.subject_id, &c.purpose, c.at_micros],
                )
                .await?;
            }
            audit
        }
        Op::InsertRelation(r, audit) => {
            require(x, w::SUBJECT_EXISTS, &r.subject_id).await?;
            require(x, w::SUBJECT_EXISTS, &r.related_subject_id).await?;
            x.execute(
                w::INSERT_RELATION,
                args![
                    &r.id,
                    &r.subject_id,
                    &r.kind,
                    &r.related_subject_id,
                    &r.evidence,
                    &r.evidence_sha256,
                    &r.recorded_by,
                    r.at_micros,
                ],
            )
            .await?;
            audit
        }
        Op::Append(entries) => return append_all(x, entries).await,
        Op::InsertApiKey(k, audit) => {
            let mac = integrity::api_key_mac(x.audit_key(), k);
            x.execute(
                w::INSERT_API_KEY,
                args![
                    &k.id,
                    &k.name,
                    &k.role,
                    &k.token_hash,
                    k.created_at_micros,
                    k.revoked_at_micros,
                    &k.holder,
                    &mac,
                ],
            )
            .await?;
            audit
        }
        Op::RevokeApiKey { id, at, audit } => {
            // Only a genuine, unrevoked row is revoked, and it is sealed again as revoked.
            let row = x
                .query(sql::API_KEY_BY_ID, args![id], rows::api_key)
                .await?;
            let Some(row) = row
                .into_iter()
                .next()
                .and_then(|row| integrity::checked_api_key(x.audit_key(), row))
                .filter(|k| k.revoked_at_micros.is_none())
            else {
                return Err(StoreError::NotFound.into());
            };
            let revoked = ApiKeyRecord {
                revoked_at_micros: Some(*at),
                ..row
            };
            let mac = integrity::api_key_mac(x.audit_key(), &revoked);
            let n = x.execute(w::REVOKE_API_KEY, args![id, at, &mac]).await?;
            found(n)?;
            audit
        }
        Op::InsertPolicy(p, audit) => {
            let seq = x
                .query(
                    w::INSERT_POLICY,
                    args![&p.version, &p.source, &p.sha256, p.applied_at_micros],
                    rows::int,
                )
                .await?
                .pop()
                .ok_or_else(|| StoreError::Backend("the policy got no number".into()))?;
            let sealed = PolicyRecord { seq, ..p.clone() };
            let mac = integrity::policy_mac(x.audit_key(), &sealed);
            x.execute(w::SEAL_POLICY, args![seq, &mac]).await?;
            audit
        }
        Op::RewrapKeys {
            rewraps,
            audit,
            updated,
        } => {
            let mut n = 0;
            for r in rewraps {
                let change = KeyWrite::Rewrap {
                    subject: &r.subject_id,
                    from_kek: &r.from_kek,
                    key: &r.wrapped,
                };
                n += change_key(x, change).await?;
            }
            updated.store(n, Ordering::Relaxed);
            audit
        }
        Op::InsertDisclosure(..)
        | Op::StepDisclosure(..)
        | Op::RecordRelease(..)
        | Op::InsertBreach(..)
        | Op::MarkBreachNotified { .. } => return accountability(x, op).await,
        Op::ReserveObject { .. } | Op::InsertDocument(..) | Op::ForgetObjects(..) => {
            return documents(x, op).await
        }
        _ => return rights(x, op).await,
    };
    Ok(vec![x.append(audit).await?])
}

async fn documents<W: Writer>(x: &mut W, op: &Op) -> Result<Vec<AuditRecord>, W::Error> {
    match op {
        Op::ReserveObject { object, at } => {
            x.execute(w::RESERVE_OBJECT, args![object, at]).await?;
            Ok(Vec::new())
        }
        Op::InsertDocument(d, audit) => {
            // Locks the subject: an erasure either comes first (the upload finds no subject)
            // or after (its trigger trashes this document's object too).
            require(x, w::LOCK_SUBJECT, &d.subject_id).await?;
            x.execute(
                w::INSERT_DOCUMENT,
                args![
                    &d.id,
                    &d.subject_id,
                    &d.category,
                    &d.object,
                    &d.sealed,
                    d.stored_size,
                    d.uploaded_at_micros,
                ],
            )
            .await?;
            x.execute(w::KEEP_OBJECT, args![&d.object]).await?;
            Ok(vec![x.append(audit).await?])
        }
        Op::ForgetObjects(objects) => {
            for o in objects {
                x.execute(w::FORGET_OBJECT, args![o]).await?;
            }
            Ok(Vec::new())
        }
        _ => Err(StoreError::Backend("not a document operation".into()).into()),
    }
}

async fn append_all<W: Writer>(
    x: &mut W,
    entries: &[AuditDraft],
) -> Result<Vec<AuditRecord>, W::Error> {
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        out.push(x.append(e).await?);
    }
    Ok(out)
}

/// Makes a change to the key store (staged, or run in this transaction: see [`Keyed`]); how
/// many stored keys it changes.
async fn change_key<W: Writer>(x: &mut W, change: KeyWrite<'_>) -> Result<u64, W::Error> {
    match x.key_write(change)? {
        Keyed::Staged(n) => Ok(n),
        Keyed::Run(q, args) => x.execute(q, &args).await,
    }
}

/// `NotFound` unless `q` (an existence check or a lock, by id) finds the row.
async fn require<E: Exec>(x: &mut E, q: Sql, id: &str) -> Result<(), E::Error> {
    if x.query(q, args![id], rows::unit).await?.is_empty() {
        return Err(StoreError::NotFound.into());
    }
    Ok(())
}

/// `NotFound` when a write by id changed nothing.
fn found(rows: u64) -> Result<(), StoreError> {
    if rows == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// After a conditional update by id: `Changed` when it changed nothing although the row is
/// there (it left the state the update was conditioned on), `NotFound` when there is no row.
async fn applied<E: Exec>(x: &mut E, rows: u64, exists: Sql, id: &str) -> Result<(), E::Error> {
    if rows > 0 {
        return Ok(());
    }
    require(x, exists, id).await?;
    Err(StoreError::Changed.into())
}

/// Inserts a new subject's rows (no audit entry). Returns the unique categories whose term
/// another subject already holds; the caller decides whether that is an error. The
/// statements do not depend on each other's results: PostgreSQL gets them as one pipeline
/// (the subject row first, which the others reference), the data key with them unless the
/// backend stages it.
pub(crate) async fn insert_new_subject<W: Writer>(
    x: &mut W,
    s: &NewSubject,
) -> Result<Vec<String>, W::Error> {
    let at = s.created_at_micros;
    let sealed = sealed_fields::encode_writes(&s.fields)?;
    let mut batch = vec![(w::INSERT_SUBJECT, args![&s.id, at, &sealed].to_vec())];
    let key = KeyWrite::Insert {
        subject: &s.id,
        key: &s.wrapped_key,
    };
    if let Keyed::Run(q, args) = x.key_write(key)? {
        batch.push((q, args));
    }
    // Position in `batch` of each unique-term insert, with its category.
    let mut unique_at = Vec::new();
    for f in &s.fields {
        if let Some(term) = &f.index_term {
            if f.unique {
                unique_at.push((batch.len(), &f.category));
            }
            let q = if f.unique {
                w::INSERT_UNIQUE_TERM
            } else {
                w::INSERT_TERM
            };
            batch.push((q, args![&f.category, term, &s.id].to_vec()));
        }
    }
    batch.push((w::INSERT_PURPOSE, args![&s.id, &s.purpose, at].to_vec()));
    let changed = x.execute_all(&batch).await?;
    let taken = unique_at
        .into_iter()
        .filter(|(i, _)| changed.get(*i) == Some(&0))
        .map(|(_, category)| category.clone())
        .collect();
    for c in &s.consents {
        write_consent(x, c).await?;
    }
    Ok(taken)
}

/// Changes a subject's set of sealed fields: `set` put in (replacing a category's value),
/// `remove` taken out. `NotFound` if there is no such subject.
async fn change_fields<E: Exec>(
    x: &mut E,
    subject: &str,
    set: &[(&str, &[u8])],
    remove: &[&str],
) -> Result<(), E::Error> {
    let stored = x
        .query(w::FIELDS_FOR_UPDATE, args![subject], rows::blob)
        .await?
        .pop()
        .ok_or(StoreError::NotFound)?;
    let changed = sealed_fields::replace(&stored, set, remove)?;
    x.execute(w::SET_FIELDS, args![subject, &changed]).await?;
    Ok(())
}

/// Replaces fields' values and moves their blind-index terms.
async fn write_fields<E: Exec>(
    x: &mut E,
    subject: &str,
    fields: &[FieldWrite],
) -> Result<(), E::Error> {
    let set: Vec<(&str, &[u8])> = sealed_fields::writes(fields).collect();
    change_fields(x, subject, &set, &[]).await?;
    for f in fields {
        for q in w::DELETE_CATEGORY_TERMS {
            x.execute(q, args![subject, &f.category]).await?;
        }
        let Some(term) = &f.index_term else {
            continue;
        };
        if f.unique {
            let n = x
                .execute(w::INSERT_UNIQUE_TERM, args![&f.category, term, subject])
                .await?;
            if n == 0 {
                let category = f.category.clone();
                return Err(StoreError::Unique { category }.into());
            }
        } else {
            x.execute(w::INSERT_TERM, args![&f.category, term, subject])
                .await?;
        }
    }
    Ok(())
}

async fn write_consent<E: Exec>(x: &mut E, c: &ConsentRecord) -> Result<(), E::Error> {
    let seq = x
        .query(
            w::INSERT_CONSENT,
            args![
                &c.id,
                &c.subject_id,
                &c.purpose,
                &c.purpose_version,
                &c.policy_version,
                c.granted,
                &c.given_by,
                &c.capture_channel,
                c.contact_channels.join(","),
                &c.guardian_subject_id,
                &c.guardian_details,
                &c.evidence,
                &c.evidence_sha256,
                &c.recorded_by,
                c.at_micros,
            ],
            rows::int,
        )
        .await?
        .pop()
        .ok_or_else(|| StoreError::Backend("the consent got no number".into()))?;
    x.execute(
        w::SET_CURRENT_CONSENT,
        args![&c.purpose, &c.subject_id, seq],
    )
    .await?;
    Ok(())
}

/// Deletes everything of one subject (the data key first) and leaves a tombstone.
/// `NotFound` if there is no such subject.
pub(crate) async fn shred<W: Writer>(
    x: &mut W,
    id: &str,
    at: i64,
    cause: &str,
) -> Result<(), W::Error> {
    // Locks the subject: a concurrent write to it waits, then finds nothing.
    require(x, w::LOCK_SUBJECT, id).await?;
    change_key(x, KeyWrite::Delete { subject: id }).await?;
    for q in w::SHRED {
        x.execute(q, args![id]).await?;
    }
    x.execute(w::INSERT_ERASURE, args![id, at, cause]).await?;
    Ok(())
}

async fn rights<W: Writer>(x: &mut W, op: &Op) -> Result<Vec<AuditRecord>, W::Error> {
    let audit = match op {
        Op::EraseSubject {
            id,
            at,
            cause,
            audit,
        } => {
            shred(x, id, *at, cause).await?;
            x.keys_erased();
            audit
        }
        Op::SetRestriction {
            id,
            restriction,
            audit,
        } => {
            let (since, reason, by) = match restriction {
                Some(r) => (Some(r.since_micros), r.reason.as_deref(), Some(&*r.by)),
                None => (None, None, None),
            };
            let n = x
                .execute(w::SET_RESTRICTION, args![id, since, reason, by])
                .await?;
            found(n)?;
            audit
        }
        Op::InsertTenant(t, audit) => {
            x.execute(
                w::INSERT_TENANT,
                args![
                    &t.id,
                    &t.name,
                    &t.status,
                    &t.sealed_keys,
                    &t.sealed_placement,
                    t.max_subjects,
                    t.max_rps,
                    t.created_at_micros,
                ],
            )
            .await?;
            audit
        }
        Op::ChangeTenant(c, audit) => {
            let n = x
                .execute(w::CHANGE_TENANT, args![&c.id, &c.from, &c.to, c.at_micros])
                .await?;
            applied(x, n, sql::TENANT_EXISTS, &c.id).await?;
            if c.to == crate::TENANT_DELETED {
                // The sealed key ring is gone from the row: the log pages that held it go too.
                x.keys_erased();
            }
            audit
        }
        Op::PurgeTenant { id, audit } => {
            // `NotFound` also when another process recorded the purge first.
            let n = x.execute(w::PURGE_TENANT, args![id]).await?;
            found(n)?;
            audit
        }
        Op::SetTenantQuotas {
            id,
            max_subjects,
            max_rps,
            audit,
        } => {
            let n = x
                .execute(
                    w::SET_TENANT_QUOTAS,
                    args![id, max_subjects, max_rps, audit.at_micros],
                )
                .await?;
            found(n)?;
            audit
        }
        Op::InsertHold(h, audit) => {
            require(x, w::SUBJECT_EXISTS, &h.subject_id).await?;
            x.execute(
                w::INSERT_HOLD,
                args![
                    &h.id,
                    &h.subject_id,
                    &h.reason,
                    &h.until,
                    h.created_at_micros,
                    &h.created_by,
                ],
            )
            .await?;
            audit
        }
        Op::ReleaseHold {
            subject,
            hold_id,
            at,
            audit,
        } => {
            let n = x
                .execute(w::RELEASE_HOLD, args![hold_id, subject, at])
                .await?;
            found(n)?;
            audit
        }
        Op::InsertRequest(r, audit) => {
            require(x, w::SUBJECT_EXISTS, &r.subject_id).await?;
            x.execute(
                w::INSERT_REQUEST,
                args![
                    &r.id,
                    &r.subject_id,
                    &r.kind,
                    &r.status,
                    &r.details,
                    r.received_at_micros,
                    r.due_at_micros,
                    r.updated_at_micros,
                    &r.refusal_reason,
                    &r.refusal_text,
                    r.closed_at_micros,
                    &r.received_by,
                ],
            )
            .await?;
            audit
        }
        Op::UpdateRequest(t, audit) => {
            let closed_at = t.closed.then_some(t.at_micros);
            let n = x
                .execute(
                    w::TRANSITION_REQUEST,
                    args![
                        &t.id,
                        &t.to,
                        t.at_micros,
                        &t.refusal_reason,
                        &t.refusal_text,
                        closed_at,
                        &t.from,
                    ],
                )
                .await?;
            applied(x, n, w::REQUEST_EXISTS, &t.id).await?;
            audit
        }
        Op::EndRelationship { id, at, audit } => {
            let n = x.execute(w::END_RELATIONSHIP, args![id, at]).await?;
            found(n)?;
            audit
        }
        Op::EraseCategories {
            id,
            categories,
            expired,
            audit,
        } => {
            let remove: Vec<&str> = categories.iter().map(String::as_str).collect();
            change_fields(x, id, &[], &remove).await?;
            for c in categories {
                for q in w::DELETE_CATEGORY_TERMS {
                    x.execute(q, args![id, c]).await?;
                }
                x.execute(w::DELETE_CATEGORY_DOCUMENTS, args![id, c])
                    .await?;
            }
            for p in expired {
                x.execute(w::DELETE_PURPOSE, args![id, p]).await?;
            }
            audit
        }
        Op::Deidentify {
            id,
            at,
            record,
            audit,
        } => {
            shred(x, id, *at, "retention: de-identified").await?;
            x.execute(
                w::INSERT_DEIDENTIFIED,
                args![
                    &record.id,
                    record.purposes.join(","),
                    &record.attributes,
                    &record.created_on,
                ],
            )
            .await?;
            x.keys_erased();
            audit
        }
        _ => return Err(StoreError::Backend("not a rights operation".into()).into()),
    };
    Ok(vec![x.append(audit).await?])
}

async fn accountability<W: Writer>(x: &mut W, op: &Op) -> Result<Vec<AuditRecord>, W::Error> {
    let audit = match op {
        Op::InsertDisclosure(d, audit) => {
            for s in &d.subject_ids {
                require(x, w::SUBJECT_EXISTS, s).await?;
            }
            x.execute(
                w::INSERT_DISCLOSURE,
                args![
                    &d.id,
                    &d.recipient,
                    &d.purpose,
                    crate::lists::encode(&d.categories),
                    &d.reason,
                    &d.reference,
                    &d.status,
                    &d.requested_by,
                    d.requested_at_micros,
                    &d.approved_by,
                    d.approved_at_micros,
                    &d.authorized_by,
                    d.authorized_at_micros,
                    &d.rejected_by,
                    d.rejected_at_micros,
                    &d.rejection_reason,
                    d.releases,
                    d.max_releases,
                    d.first_released_at_micros,
                    d.last_released_at_micros,
                    &d.notification_deferred_until,
                    &d.deferral_reason,
                    &d.excluded,
                ],
            )
            .await?;
            for s in &d.subject_ids {
                x.execute(w::INSERT_DISCLOSURE_SUBJECT, args![&d.id, s])
                    .await?;
            }
            audit
        }
        Op::StepDisclosure(step, audit) => {
            let q = match step.to.as_str() {
                "approved" => w::APPROVE_DISCLOSURE,
                "authorized" => w::AUTHORIZE_DISCLOSURE,
                "rejected" => w::REJECT_DISCLOSURE,
                other => {
                    let msg = format!("no disclosure step leads to {other}");
                    return Err(StoreError::Backend(msg).into());
                }
            };
            let n = x
                .execute(
                    q,
                    args![
                        &step.id,
                        &step.to,
                        &step.by,
                        step.at_micros,
                        &step.reason,
                        &step.from,
                    ],
                )
                .await?;
            applied(x, n, w::DISCLOSURE_EXISTS, &step.id).await?;
            audit
        }
        Op::RecordRelease(r, audit) => {
            let n = x
                .execute(
                    w::RECORD_RELEASE,
                    args![&r.id, r.at_micros, &r.from, r.releases],
                )
                .await?;
            applied(x, n, w::DISCLOSURE_EXISTS, &r.id).await?;
            return append_all(x, audit).await;
        }
        Op::InsertBreach(b, audit) => {
            for s in &b.subject_ids {
                require(x, w::SUBJECT_EXISTS, s).await?;
            }
            x.execute(
                w::INSERT_BREACH,
                args![
                    &b.id,
                    b.detected_at_micros,
                    b.recorded_at_micros,
                    &b.recorded_by,
                    &b.description,
                    crate::lists::encode(&b.categories),
                    b.all_subjects,
                    &b.cause,
                    &b.measures,
                    b.notify_by_micros,
                    b.notified_at_micros,
                    &b.notified_by,
                ],
            )
            .await?;
            for s in &b.subject_ids {
                x.execute(w::INSERT_BREACH_SUBJECT, args![&b.id, s]).await?;
            }
            audit
        }
        Op::MarkBreachNotified { id, by, at, audit } => {
            let n = x
                .execute(w::MARK_BREACH_NOTIFIED, args![id, at, by])
                .await?;
            applied(x, n, w::BREACH_EXISTS, id).await?;
            audit
        }
        _ => return Err(StoreError::Backend("not an accountability operation".into()).into()),
    };
    Ok(vec![x.append(audit).await?])
}

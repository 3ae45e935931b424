//! Writes as data (`Op`), and the statements each runs inside the writer's transaction.

use amanah_core::audit::{AuditDraft, AuditRecord};
use amanah_crypto::WrappedKey;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Row, Statement, Transaction};

use super::*;
use crate::{integrity, rows, sql};
use crate::{
    ApiKeyRecord, BreachRecord, ConsentRecord, DeidentifiedRecord, DisclosureRecord,
    DisclosureStep, FieldWrite, HoldRecord, NewSubject, PolicyRecord, RelationRecord,
    RequestRecord, RequestTransition, RestrictionRecord, StoreError, StoreResult, StoredSubject,
    SubjectUpdate,
};

pub(super) enum Op {
    InsertSubject(NewSubject, AuditDraft),
    UpdateSubject(SubjectUpdate, AuditDraft),
    InsertConsent(ConsentRecord, AuditDraft),
    InsertRelation(RelationRecord, AuditDraft),
    Append(Vec<AuditDraft>),
    InsertApiKey(ApiKeyRecord, AuditDraft),
    RevokeApiKey(String, i64, AuditDraft),
    InsertPolicy(PolicyRecord, AuditDraft),
    // Rights (applied by `rights::apply`).
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
    // Accountability (applied by `accountability::apply`).
    InsertDisclosure(DisclosureRecord, AuditDraft),
    StepDisclosure(DisclosureStep, AuditDraft),
    RecordRelease {
        id: String,
        at: i64,
        audit: Vec<AuditDraft>,
    },
    InsertBreach(BreachRecord, AuditDraft),
    MarkBreachNotified {
        id: String,
        by: String,
        at: i64,
        audit: AuditDraft,
    },
    // Key rotation (applied by `rotation::apply`); `updated` receives the rows rewritten.
    RewrapKeys {
        rewraps: Vec<crate::Rewrap>,
        audit: AuditDraft,
        updated: std::sync::Arc<std::sync::atomic::AtomicU64>,
    },
}

pub(super) async fn apply(
    tx: &Transaction<'_>,
    stmts: &mut Stmts,
    chain: &mut Chain<'_>,
    op: &Op,
) -> Result<Vec<AuditRecord>, Tx> {
    match op {
        Op::InsertSubject(s, audit) => {
            if let Some(category) = insert_new_subject(tx, stmts, s).await?.into_iter().next() {
                return Err(Tx::Store(StoreError::Unique { category }));
            }
            Ok(vec![append(tx, stmts, chain, audit).await?])
        }
        Op::UpdateSubject(u, audit) => {
            // Lock the subject row: concurrent updates of one subject apply one after the other.
            let st = stmts
                .get(tx, "SELECT 1 FROM subjects WHERE id = $1 FOR UPDATE")
                .await?;
            if tx.query_opt(&st, &[&u.id]).await?.is_none() {
                return Err(Tx::Store(StoreError::NotFound));
            }
            write_fields(tx, stmts, &u.id, u.at_micros, &u.fields).await?;
            if let Some(purpose) = &u.enroll {
                record_purpose(tx, stmts, &u.id, purpose, u.at_micros).await?;
            }
            Ok(vec![append(tx, stmts, chain, audit).await?])
        }
        Op::InsertConsent(c, audit) => {
            let guardian_missing = match &c.guardian_subject_id {
                Some(g) => !subject_exists(tx, stmts, g).await?,
                None => false,
            };
            if !subject_exists(tx, stmts, &c.subject_id).await? || guardian_missing {
                return Err(Tx::Store(StoreError::NotFound));
            }
            write_consent(tx, stmts, c).await?;
            if c.granted {
                // A consent is a ground of its own: the subject is enrolled in its purpose.
                record_purpose(tx, stmts, &c.subject_id, &c.purpose, c.at_micros).await?;
            }
            Ok(vec![append(tx, stmts, chain, audit).await?])
        }
        Op::InsertRelation(r, audit) => {
            if !subject_exists(tx, stmts, &r.subject_id).await?
                || !subject_exists(tx, stmts, &r.related_subject_id).await?
            {
                return Err(Tx::Store(StoreError::NotFound));
            }
            let st = stmts
                .get(
                    tx,
                    "INSERT INTO relations (id, subject_id, kind, related_subject_id, evidence,
                                            evidence_sha256, recorded_by, at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .await?;
            tx.execute(
                &st,
                &[
                    &r.id,
                    &r.subject_id,
                    &r.kind,
                    &r.related_subject_id,
                    &r.evidence,
                    &r.evidence_sha256,
                    &r.recorded_by,
                    &r.at_micros,
                ],
            )
            .await?;
            Ok(vec![append(tx, stmts, chain, audit).await?])
        }
        Op::Append(entries) => {
            let mut out = Vec::with_capacity(entries.len());
            for e in entries {
                out.push(append(tx, stmts, chain, e).await?);
            }
            Ok(out)
        }
        Op::InsertApiKey(k, audit) => {
            let mac = integrity::api_key_mac(chain.key, k);
            let st = stmts.get(tx, sql::INSERT_API_KEY.pg).await?;
            tx.execute(
                &st,
                &[
                    &k.id,
                    &k.name,
                    &k.role,
                    &k.token_hash,
                    &k.created_at_micros,
                    &k.revoked_at_micros,
                    &k.holder,
                    &&mac[..],
                ],
            )
            .await?;
            Ok(vec![append(tx, stmts, chain, audit).await?])
        }
        Op::RevokeApiKey(id, at, audit) => {
            // Only a genuine, unrevoked row is revoked, and it is sealed again as revoked.
            let st = stmts.get(tx, sql::API_KEY_BY_ID.pg).await?;
            let row = match tx.query_opt(&st, &[id]).await? {
                Some(r) => integrity::checked_api_key(chain.key, rows::api_key(&r)?),
                None => None,
            };
            let Some(row) = row.filter(|k| k.revoked_at_micros.is_none()) else {
                return Err(Tx::Store(StoreError::NotFound));
            };
            let revoked = ApiKeyRecord {
                revoked_at_micros: Some(*at),
                ..row
            };
            let mac = integrity::api_key_mac(chain.key, &revoked);
            let st = stmts.get(tx, sql::REVOKE_API_KEY.pg).await?;
            if tx.execute(&st, &[id, at, &&mac[..]]).await? == 0 {
                return Err(Tx::Store(StoreError::NotFound));
            }
            Ok(vec![append(tx, stmts, chain, audit).await?])
        }
        Op::InsertPolicy(p, audit) => {
            let st = stmts.get(tx, sql::INSERT_POLICY.pg).await?;
            let seq: i64 = tx
                .query_one(
                    &st,
                    &[&p.version, &p.source, &p.sha256, &p.applied_at_micros],
                )
                .await?
                .get(0);
            let sealed = PolicyRecord { seq, ..p.clone() };
            let mac = integrity::policy_mac(chain.key, &sealed);
            let st = stmts.get(tx, sql::SEAL_POLICY.pg).await?;
            tx.execute(&st, &[&seq, &&mac[..]]).await?;
            Ok(vec![append(tx, stmts, chain, audit).await?])
        }
        Op::InsertDisclosure(..)
        | Op::StepDisclosure(..)
        | Op::RecordRelease { .. }
        | Op::InsertBreach(..)
        | Op::MarkBreachNotified { .. } => accountability::apply(tx, stmts, chain, op).await,
        Op::RewrapKeys {
            rewraps,
            audit,
            updated,
        } => rotation::apply(tx, stmts, chain, rewraps, audit, updated).await,
        rights_op => rights::apply(tx, stmts, chain, rights_op).await,
    }
}
pub(super) async fn write_fields(
    tx: &Transaction<'_>,
    stmts: &mut Stmts,
    subject: &str,
    at: i64,
    fields: &[FieldWrite],
) -> Result<(), Tx> {
    for f in fields {
        let st = stmts
            .get(
                tx,
                "INSERT INTO subject_fields (subject_id, category, ciphertext, updated_at)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (subject_id, category)
                 DO UPDATE SET ciphertext = excluded.ciphertext, updated_at = excluded.updated_at",
            )
            .await?;
        tx.execute(&st, &[&subject, &f.category, &f.ciphertext, &at])
            .await?;
        let st = stmts
            .get(
                tx,
                "DELETE FROM blind_index WHERE subject_id = $1 AND category = $2",
            )
            .await?;
        tx.execute(&st, &[&subject, &f.category]).await?;
        let st = stmts
            .get(
                tx,
                "DELETE FROM unique_index WHERE subject_id = $1 AND category = $2",
            )
            .await?;
        tx.execute(&st, &[&subject, &f.category]).await?;
        if let Some(term) = &f.index_term {
            let st = stmts
                .get(
                    tx,
                    "INSERT INTO blind_index (category, term, subject_id) VALUES ($1, $2, $3)",
                )
                .await?;
            tx.execute(&st, &[&f.category, &&term[..], &subject])
                .await?;
            if f.unique {
                let st = stmts
                    .get(
                        tx,
                        "INSERT INTO unique_index (category, term, subject_id) VALUES ($1, $2, $3)
                         ON CONFLICT (category, term) DO NOTHING",
                    )
                    .await?;
                if tx
                    .execute(&st, &[&f.category, &&term[..], &subject])
                    .await?
                    == 0
                {
                    return Err(Tx::Store(StoreError::Unique {
                        category: f.category.clone(),
                    }));
                }
            }
        }
    }
    Ok(())
}

/// Inserts a new subject's rows (no audit entry). Returns the unique categories whose term
/// another subject already holds; the caller decides whether that is an error.
///
/// The statements do not depend on each other's results, so they are sent as one pipeline:
/// PostgreSQL runs them in the order sent (the subject row first, which the others reference),
/// and the job costs about one round trip instead of one per row.
pub(super) async fn insert_new_subject(
    tx: &Transaction<'_>,
    stmts: &mut Stmts,
    s: &NewSubject,
) -> Result<Vec<String>, Tx> {
    let at = s.created_at_micros;
    let version = i64::from(s.wrapped_key.version);
    let subject_st = stmts
        .get(tx, "INSERT INTO subjects (id, created_at) VALUES ($1, $2)")
        .await?;
    let key_st = stmts
        .get(
            tx,
            "INSERT INTO amanah_keys.data_keys (subject_id, kek_id, key_version, wrapped_key)
             VALUES ($1, $2, $3, $4)",
        )
        .await?;
    let field_st = stmts
        .get(
            tx,
            "INSERT INTO subject_fields (subject_id, category, ciphertext, updated_at)
             VALUES ($1, $2, $3, $4)",
        )
        .await?;
    let blind_st = stmts
        .get(
            tx,
            "INSERT INTO blind_index (category, term, subject_id) VALUES ($1, $2, $3)",
        )
        .await?;
    let unique_st = stmts
        .get(
            tx,
            "INSERT INTO unique_index (category, term, subject_id) VALUES ($1, $2, $3)
             ON CONFLICT (category, term) DO NOTHING",
        )
        .await?;
    let purpose_st = stmts
        .get(
            tx,
            "INSERT INTO subject_purposes (subject_id, purpose, collected_at) VALUES ($1, $2, $3)
             ON CONFLICT (subject_id, purpose) DO NOTHING",
        )
        .await?;
    type Params<'a> = Vec<&'a (dyn ToSql + Sync)>;
    let mut batch: Vec<(&Statement, Params<'_>)> = vec![
        (&subject_st, vec![&s.id, &at]),
        (
            &key_st,
            vec![
                &s.id,
                &s.wrapped_key.kek_id,
                &version,
                &s.wrapped_key.ciphertext,
            ],
        ),
    ];
    let terms: Vec<_> = s
        .fields
        .iter()
        .map(|f| f.index_term.as_ref().map(|t| &t[..]))
        .collect();
    // Position in `batch` of each unique-term insert, with its category.
    let mut unique_at = Vec::new();
    for (f, term) in s.fields.iter().zip(&terms) {
        batch.push((&field_st, vec![&s.id, &f.category, &f.ciphertext, &at]));
        if let Some(term) = term {
            batch.push((&blind_st, vec![&f.category, term, &s.id]));
            if f.unique {
                unique_at.push((batch.len(), &f.category));
                batch.push((&unique_st, vec![&f.category, term, &s.id]));
            }
        }
    }
    batch.push((&purpose_st, vec![&s.id, &s.purpose, &at]));
    let rows = futures_util::future::try_join_all(
        batch
            .iter()
            .map(|(st, params)| tx.execute_raw(*st, params.iter().copied())),
    )
    .await?;
    let taken = unique_at
        .into_iter()
        .filter(|(i, _)| rows.get(*i) == Some(&0))
        .map(|(_, category)| category.clone())
        .collect();
    for c in &s.consents {
        write_consent(tx, stmts, c).await?;
    }
    Ok(taken)
}

pub(super) async fn record_purpose(
    tx: &Transaction<'_>,
    stmts: &mut Stmts,
    subject: &str,
    purpose: &str,
    at: i64,
) -> Result<(), Tx> {
    let st = stmts
        .get(
            tx,
            "INSERT INTO subject_purposes (subject_id, purpose, collected_at) VALUES ($1, $2, $3)
             ON CONFLICT (subject_id, purpose) DO NOTHING",
        )
        .await?;
    tx.execute(&st, &[&subject, &purpose, &at]).await?;
    Ok(())
}

pub(super) async fn subject_exists(
    tx: &Transaction<'_>,
    stmts: &mut Stmts,
    id: &str,
) -> Result<bool, Tx> {
    let st = stmts
        .get(tx, "SELECT 1 FROM subjects WHERE id = $1")
        .await?;
    Ok(tx.query_opt(&st, &[&id]).await?.is_some())
}

pub(super) async fn write_consent(
    tx: &Transaction<'_>,
    stmts: &mut Stmts,
    c: &ConsentRecord,
) -> Result<(), Tx> {
    let st = stmts
        .get(
            tx,
            "INSERT INTO consents (seq, id, subject_id, purpose, purpose_version, policy_version,
                                   granted, given_by, capture_channel, contact_channels,
                                   guardian_subject_id, guardian_details, evidence,
                                   evidence_sha256, recorded_by, at)
             SELECT COALESCE(MAX(seq), 0) + 1, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12,
                    $13, $14, $15
             FROM consents
             RETURNING seq",
        )
        .await?;
    let seq: i64 = tx
        .query_one(
            &st,
            &[
                &c.id,
                &c.subject_id,
                &c.purpose,
                &c.purpose_version,
                &c.policy_version,
                &c.granted,
                &c.given_by,
                &c.capture_channel,
                &c.contact_channels.join(","),
                &c.guardian_subject_id,
                &c.guardian_details,
                &c.evidence,
                &c.evidence_sha256,
                &c.recorded_by,
                &c.at_micros,
            ],
        )
        .await?
        .get(0);
    let st = stmts
        .get(
            tx,
            "INSERT INTO consent_current (purpose, subject_id, consent_seq) VALUES ($1, $2, $3)
             ON CONFLICT (purpose, subject_id) DO UPDATE SET consent_seq = excluded.consent_seq",
        )
        .await?;
    tx.execute(&st, &[&c.purpose, &c.subject_id, &seq]).await?;
    Ok(())
}

/// Subjects with their fields, from rows of `subjects LEFT JOIN subject_fields` ordered by id.
pub(super) fn subjects_from_rows(rows: &[Row]) -> StoreResult<Vec<StoredSubject>> {
    let mut out: Vec<StoredSubject> = Vec::new();
    for r in rows {
        let id: String = r.try_get(0).map_err(backend)?;
        if out.last().is_none_or(|s| s.id != id) {
            out.push(StoredSubject {
                id: id.clone(),
                wrapped_key: WrappedKey {
                    kek_id: r.try_get(1).map_err(backend)?,
                    version: r.try_get::<_, i64>(2).map_err(backend)? as u32,
                    ciphertext: r.try_get(3).map_err(backend)?,
                },
                created_at_micros: r.try_get(4).map_err(backend)?,
                restricted_since_micros: r.try_get(7).map_err(backend)?,
                purposes: r.try_get(8).map_err(backend)?,
                fields: Vec::new(),
            });
        }
        let category: Option<String> = r.try_get(5).map_err(backend)?;
        let ciphertext: Option<Vec<u8>> = r.try_get(6).map_err(backend)?;
        if let (Some(c), Some(v), Some(s)) = (category, ciphertext, out.last_mut()) {
            s.fields.push((c, v));
        }
    }
    Ok(out)
}

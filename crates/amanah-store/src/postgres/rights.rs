//! PostgreSQL implementation of [`RightsStore`]. Data keys live in their own schema,
//! `amanah_keys`, so a data dump that excludes it (`pg_dump --exclude-schema=amanah_keys`)
//! carries ciphertext only, and erasing a key there shreds the person everywhere.

use amanah_core::audit::{AuditDraft, AuditRecord};
use async_trait::async_trait;
use tokio_postgres::Transaction;

use crate::rows::{self, RowAccess};
use crate::sql;

use super::{append, limit_i64, subject_exists, Chain, Op, PgStore, Stmts, Tx};
use crate::{
    DeidentifiedRecord, HoldRecord, RequestFilter, RequestRecord, RequestTransition,
    RestrictionRecord, RetentionSubject, RightsStore, StoreError, StoreResult,
};

/// Schema 3: keys apart, restriction, relationship end, holds, requests, erasures, de-identified.
pub(super) const SCHEMA_V3: &str = r#"
CREATE SCHEMA IF NOT EXISTS amanah_keys;
CREATE TABLE amanah_keys.data_keys (
    subject_id TEXT PRIMARY KEY,
    kek_id TEXT NOT NULL,
    key_version BIGINT NOT NULL,
    wrapped_key BYTEA NOT NULL
);
INSERT INTO amanah_keys.data_keys (subject_id, kek_id, key_version, wrapped_key)
    SELECT id, kek_id, key_version, wrapped_key FROM subjects;
ALTER TABLE subjects
    DROP COLUMN kek_id,
    DROP COLUMN key_version,
    DROP COLUMN wrapped_key,
    ADD COLUMN restricted_at BIGINT,
    ADD COLUMN restriction_reason BYTEA,
    ADD COLUMN restricted_by TEXT,
    ADD COLUMN relationship_ended_at BIGINT;
CREATE TABLE holds (
    id TEXT PRIMARY KEY,
    subject_id TEXT NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
    reason BYTEA NOT NULL,
    until TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    released_at BIGINT
);
CREATE INDEX holds_by_subject ON holds(subject_id);
CREATE TABLE requests (
    id TEXT PRIMARY KEY,
    subject_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    details BYTEA,
    received_at BIGINT NOT NULL,
    due_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    refusal_reason TEXT,
    refusal_text BYTEA,
    closed_at BIGINT,
    received_by TEXT NOT NULL
);
CREATE INDEX requests_by_status ON requests(status, due_at);
CREATE INDEX requests_by_subject ON requests(subject_id);
CREATE TABLE erasures (
    subject_id TEXT PRIMARY KEY,
    erased_at BIGINT NOT NULL,
    cause TEXT NOT NULL
);
CREATE TABLE deidentified (
    id TEXT PRIMARY KEY,
    purposes TEXT NOT NULL,
    attributes TEXT NOT NULL,
    created_on TEXT NOT NULL
);
"#;

/// Deletes the subject's key, then the subject (cascading to fields, index terms, purposes,
/// consents, holds) and relations either way; leaves a tombstone; shreds request texts.
async fn shred(
    tx: &Transaction<'_>,
    stmts: &mut Stmts,
    id: &str,
    at: i64,
    cause: &str,
) -> Result<(), Tx> {
    // Lock the subject: a concurrent update of it waits, then finds nothing.
    let st = stmts
        .get(tx, "SELECT 1 FROM subjects WHERE id = $1 FOR UPDATE")
        .await?;
    if tx.query_opt(&st, &[&id]).await?.is_none() {
        return Err(Tx::Store(StoreError::NotFound));
    }
    for sql in [
        "DELETE FROM amanah_keys.data_keys WHERE subject_id = $1",
        "DELETE FROM relations WHERE subject_id = $1 OR related_subject_id = $1",
        "DELETE FROM subjects WHERE id = $1",
        "UPDATE requests SET details = NULL, refusal_text = NULL WHERE subject_id = $1",
    ] {
        let st = stmts.get(tx, sql).await?;
        tx.execute(&st, &[&id]).await?;
    }
    let st = stmts
        .get(
            tx,
            "INSERT INTO erasures (subject_id, erased_at, cause) VALUES ($1, $2, $3)
             ON CONFLICT (subject_id) DO NOTHING",
        )
        .await?;
    tx.execute(&st, &[&id, &at, &cause]).await?;
    Ok(())
}

/// Applies one rights write inside the batch transaction.
pub(super) async fn apply(
    tx: &Transaction<'_>,
    stmts: &mut Stmts,
    chain: &mut Chain<'_>,
    op: &Op,
) -> Result<Vec<AuditRecord>, Tx> {
    match op {
        Op::EraseSubject {
            id,
            at,
            cause,
            audit,
        } => {
            shred(tx, stmts, id, *at, cause).await?;
            Ok(vec![append(tx, stmts, chain, audit).await?])
        }
        Op::SetRestriction {
            id,
            restriction,
            audit,
        } => {
            let (since, reason, by) = match restriction {
                Some(r) => (Some(r.since_micros), r.reason.clone(), Some(r.by.clone())),
                None => (None, None, None),
            };
            let st = stmts
                .get(
                    tx,
                    "UPDATE subjects SET restricted_at = $2, restriction_reason = $3, restricted_by = $4
                     WHERE id = $1",
                )
                .await?;
            if tx.execute(&st, &[id, &since, &reason, &by]).await? == 0 {
                return Err(Tx::Store(StoreError::NotFound));
            }
            Ok(vec![append(tx, stmts, chain, audit).await?])
        }
        Op::InsertHold(h, audit) => {
            if !subject_exists(tx, stmts, &h.subject_id).await? {
                return Err(Tx::Store(StoreError::NotFound));
            }
            let st = stmts
                .get(
                    tx,
                    "INSERT INTO holds (id, subject_id, reason, until, created_at, created_by, released_at)
                     VALUES ($1, $2, $3, $4, $5, $6, NULL)",
                )
                .await?;
            tx.execute(
                &st,
                &[
                    &h.id,
                    &h.subject_id,
                    &h.reason,
                    &h.until,
                    &h.created_at_micros,
                    &h.created_by,
                ],
            )
            .await?;
            Ok(vec![append(tx, stmts, chain, audit).await?])
        }
        Op::ReleaseHold {
            subject,
            hold_id,
            at,
            audit,
        } => {
            let st = stmts
                .get(
                    tx,
                    "UPDATE holds SET released_at = $3
                     WHERE id = $1 AND subject_id = $2 AND released_at IS NULL",
                )
                .await?;
            if tx.execute(&st, &[hold_id, subject, at]).await? == 0 {
                return Err(Tx::Store(StoreError::NotFound));
            }
            Ok(vec![append(tx, stmts, chain, audit).await?])
        }
        Op::InsertRequest(r, audit) => {
            if !subject_exists(tx, stmts, &r.subject_id).await? {
                return Err(Tx::Store(StoreError::NotFound));
            }
            let st = stmts.get(tx, sql::INSERT_REQUEST.pg).await?;
            tx.execute(
                &st,
                &[
                    &r.id,
                    &r.subject_id,
                    &r.kind,
                    &r.status,
                    &r.details,
                    &r.received_at_micros,
                    &r.due_at_micros,
                    &r.updated_at_micros,
                    &r.refusal_reason,
                    &r.refusal_text,
                    &r.closed_at_micros,
                    &r.received_by,
                ],
            )
            .await?;
            Ok(vec![append(tx, stmts, chain, audit).await?])
        }
        Op::UpdateRequest(t, audit) => {
            let st = stmts
                .get(tx, "SELECT status FROM requests WHERE id = $1 FOR UPDATE")
                .await?;
            let Some(row) = tx.query_opt(&st, &[&t.id]).await? else {
                return Err(Tx::Store(StoreError::NotFound));
            };
            let status: String = row.try_get(0)?;
            if status != t.from {
                return Err(Tx::Store(StoreError::Conflict(format!(
                    "request {} is {status}, no longer {}",
                    t.id, t.from
                ))));
            }
            let closed_at = t.closed.then_some(t.at_micros);
            let st = stmts
                .get(
                    tx,
                    "UPDATE requests SET status = $2, updated_at = $3, refusal_reason = $4,
                            refusal_text = $5, closed_at = $6
                     WHERE id = $1",
                )
                .await?;
            tx.execute(
                &st,
                &[
                    &t.id,
                    &t.to,
                    &t.at_micros,
                    &t.refusal_reason,
                    &t.refusal_text,
                    &closed_at,
                ],
            )
            .await?;
            Ok(vec![append(tx, stmts, chain, audit).await?])
        }
        Op::EndRelationship { id, at, audit } => {
            let st = stmts
                .get(
                    tx,
                    "UPDATE subjects SET relationship_ended_at = COALESCE(relationship_ended_at, $2)
                     WHERE id = $1",
                )
                .await?;
            if tx.execute(&st, &[id, at]).await? == 0 {
                return Err(Tx::Store(StoreError::NotFound));
            }
            Ok(vec![append(tx, stmts, chain, audit).await?])
        }
        Op::EraseCategories {
            id,
            categories,
            expired,
            audit,
        } => {
            if !subject_exists(tx, stmts, id).await? {
                return Err(Tx::Store(StoreError::NotFound));
            }
            for c in categories {
                for sql in [
                    "DELETE FROM subject_fields WHERE subject_id = $1 AND category = $2",
                    "DELETE FROM blind_index WHERE subject_id = $1 AND category = $2",
                    "DELETE FROM unique_index WHERE subject_id = $1 AND category = $2",
                ] {
                    let st = stmts.get(tx, sql).await?;
                    tx.execute(&st, &[id, c]).await?;
                }
            }
            for p in expired {
                let st = stmts
                    .get(
                        tx,
                        "DELETE FROM subject_purposes WHERE subject_id = $1 AND purpose = $2",
                    )
                    .await?;
                tx.execute(&st, &[id, p]).await?;
            }
            Ok(vec![append(tx, stmts, chain, audit).await?])
        }
        Op::Deidentify {
            id,
            at,
            record,
            audit,
        } => {
            shred(tx, stmts, id, *at, "retention: de-identified").await?;
            let st = stmts
                .get(
                    tx,
                    "INSERT INTO deidentified (id, purposes, attributes, created_on) VALUES ($1, $2, $3, $4)",
                )
                .await?;
            tx.execute(
                &st,
                &[
                    &record.id,
                    &record.purposes.join(","),
                    &record.attributes,
                    &record.created_on,
                ],
            )
            .await?;
            Ok(vec![append(tx, stmts, chain, audit).await?])
        }
        _ => Err(Tx::Store(StoreError::Backend(
            "not a rights operation".into(),
        ))),
    }
}

#[async_trait]
impl RightsStore for PgStore {
    async fn erase_subject(
        &self,
        id: &str,
        at_micros: i64,
        cause: &str,
        audit: AuditDraft,
    ) -> StoreResult<AuditRecord> {
        self.write(Op::EraseSubject {
            id: id.to_owned(),
            at: at_micros,
            cause: cause.to_owned(),
            audit,
        })
        .await
    }

    async fn erased_at(&self, id: &str) -> StoreResult<Option<i64>> {
        self.first(sql::ERASED_AT, &[&id], |r| r.col(0)).await
    }

    async fn set_restriction(
        &self,
        id: &str,
        restriction: Option<RestrictionRecord>,
        audit: AuditDraft,
    ) -> StoreResult<AuditRecord> {
        self.write(Op::SetRestriction {
            id: id.to_owned(),
            restriction,
            audit,
        })
        .await
    }

    async fn restriction(&self, id: &str) -> StoreResult<Option<RestrictionRecord>> {
        self.first(sql::RESTRICTION, &[&id], rows::restriction)
            .await
    }

    async fn insert_hold(&self, hold: HoldRecord, audit: AuditDraft) -> StoreResult<AuditRecord> {
        self.write(Op::InsertHold(hold, audit)).await
    }

    async fn holds(&self, subject: &str) -> StoreResult<Vec<HoldRecord>> {
        self.all(sql::HOLDS_OF, &[&subject], rows::hold).await
    }

    async fn release_hold(
        &self,
        subject: &str,
        hold_id: &str,
        at_micros: i64,
        audit: AuditDraft,
    ) -> StoreResult<AuditRecord> {
        self.write(Op::ReleaseHold {
            subject: subject.to_owned(),
            hold_id: hold_id.to_owned(),
            at: at_micros,
            audit,
        })
        .await
    }

    async fn insert_request(
        &self,
        request: RequestRecord,
        audit: AuditDraft,
    ) -> StoreResult<AuditRecord> {
        self.write(Op::InsertRequest(request, audit)).await
    }

    async fn update_request(
        &self,
        transition: RequestTransition,
        audit: AuditDraft,
    ) -> StoreResult<AuditRecord> {
        self.write(Op::UpdateRequest(transition, audit)).await
    }

    async fn load_request(&self, id: &str) -> StoreResult<Option<RequestRecord>> {
        self.first(sql::REQUEST_BY_ID, &[&id], rows::request).await
    }

    async fn list_requests(
        &self,
        filter: RequestFilter,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<RequestRecord>> {
        self.all(
            sql::LIST_REQUESTS,
            &[
                &filter.open_only,
                &filter.status,
                &filter.subject,
                &filter.overdue_at,
                &after,
                &limit_i64(limit),
            ],
            rows::request,
        )
        .await
    }

    async fn count_requests(&self, now_micros: i64) -> StoreResult<(u64, u64)> {
        self.first(sql::COUNT_REQUESTS, &[&now_micros], |r| {
            Ok((r.col::<i64>(0)? as u64, r.col::<i64>(1)? as u64))
        })
        .await?
        .ok_or_else(|| StoreError::Backend("no count".into()))
    }

    async fn subject_purposes(&self, id: &str) -> StoreResult<Vec<(String, i64)>> {
        self.all(sql::PURPOSES_OF, &[&id], rows::string_and_i64)
            .await
    }

    async fn end_relationship(
        &self,
        id: &str,
        at_micros: i64,
        audit: AuditDraft,
    ) -> StoreResult<AuditRecord> {
        self.write(Op::EndRelationship {
            id: id.to_owned(),
            at: at_micros,
            audit,
        })
        .await
    }

    async fn retention_page(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<RetentionSubject>> {
        let after = after.unwrap_or("");
        let heads: Vec<(String, Option<i64>)> = self
            .all(sql::RETENTION_HEADS, &[&after, &limit_i64(limit)], |r| {
                Ok((r.col(0)?, r.col(1)?))
            })
            .await?;
        let mut out = Vec::with_capacity(heads.len());
        for (id, ended) in heads {
            out.push(RetentionSubject {
                purposes: self.subject_purposes(&id).await?,
                categories: self.all(sql::CATEGORIES_OF, &[&id], rows::string).await?,
                holds_until: self.all(sql::HOLDS_UNTIL, &[&id], rows::string).await?,
                relationship_ended_micros: ended,
                id,
            });
        }
        Ok(out)
    }

    async fn erase_categories(
        &self,
        id: &str,
        categories: Vec<String>,
        expired_purposes: Vec<String>,
        audit: AuditDraft,
    ) -> StoreResult<AuditRecord> {
        self.write(Op::EraseCategories {
            id: id.to_owned(),
            categories,
            expired: expired_purposes,
            audit,
        })
        .await
    }

    async fn deidentify_subject(
        &self,
        id: &str,
        at_micros: i64,
        record: DeidentifiedRecord,
        audit: AuditDraft,
    ) -> StoreResult<AuditRecord> {
        self.write(Op::Deidentify {
            id: id.to_owned(),
            at: at_micros,
            record,
            audit,
        })
        .await
    }

    async fn deidentified_count(&self) -> StoreResult<u64> {
        let n = self
            .first(sql::DEIDENTIFIED_COUNT, &[], |r| r.col::<i64>(0))
            .await?;
        Ok(n.unwrap_or(0) as u64)
    }
}

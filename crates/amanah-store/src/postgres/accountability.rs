//! PostgreSQL implementation of [`AccountabilityStore`].

use amanah_core::audit::{AuditDraft, AuditRecord};
use async_trait::async_trait;
use tokio_postgres::{Row, Transaction};

use super::{append, backend, limit_i64, subject_exists, Chain, Op, PgStore, Stmts, Tx};
use crate::{
    AccountabilityStore, BreachRecord, DisclosureFilter, DisclosureRecord, DisclosureStep,
    StoreError, StoreResult,
};

/// Schema 4: disclosures and their subjects, the breach register.
pub(super) const SCHEMA_V4: &str = r#"
CREATE TABLE disclosures (
    id TEXT PRIMARY KEY,
    recipient TEXT NOT NULL,
    purpose TEXT NOT NULL,
    categories TEXT NOT NULL,
    reason TEXT NOT NULL,
    reference TEXT,
    status TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    requested_at BIGINT NOT NULL,
    approved_by TEXT,
    approved_at BIGINT,
    authorized_by TEXT,
    authorized_at BIGINT,
    rejected_by TEXT,
    rejected_at BIGINT,
    rejection_reason TEXT,
    releases BIGINT NOT NULL DEFAULT 0,
    max_releases BIGINT NOT NULL,
    first_released_at BIGINT,
    last_released_at BIGINT,
    deferred_until TEXT,
    deferral_reason TEXT,
    excluded TEXT NOT NULL
);
CREATE INDEX disclosures_by_time ON disclosures(requested_at, id);
CREATE TABLE disclosure_subjects (
    disclosure_id TEXT NOT NULL REFERENCES disclosures(id) ON DELETE CASCADE,
    subject_id TEXT NOT NULL,
    PRIMARY KEY (disclosure_id, subject_id)
);
CREATE INDEX disclosure_subjects_by_subject ON disclosure_subjects(subject_id);
CREATE TABLE breaches (
    id TEXT PRIMARY KEY,
    detected_at BIGINT NOT NULL,
    recorded_at BIGINT NOT NULL,
    recorded_by TEXT NOT NULL,
    description TEXT NOT NULL,
    categories TEXT NOT NULL,
    all_subjects BOOLEAN NOT NULL,
    cause TEXT NOT NULL,
    measures TEXT NOT NULL,
    notify_by BIGINT NOT NULL,
    notified_at BIGINT,
    notified_by TEXT
);
CREATE INDEX breaches_by_time ON breaches(detected_at, id);
CREATE TABLE breach_subjects (
    breach_id TEXT NOT NULL REFERENCES breaches(id) ON DELETE CASCADE,
    subject_id TEXT NOT NULL,
    PRIMARY KEY (breach_id, subject_id)
);
"#;

/// Category lists are stored as JSON arrays (see `lists`).
fn split(s: &str) -> Vec<String> {
    crate::lists::decode(s)
}

fn count(v: i64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

fn disclosure_row(r: &Row) -> StoreResult<DisclosureRecord> {
    let g = |i: usize| -> StoreResult<Option<i64>> { r.try_get(i).map_err(backend) };
    Ok(DisclosureRecord {
        id: r.try_get(0).map_err(backend)?,
        recipient: r.try_get(1).map_err(backend)?,
        purpose: r.try_get(2).map_err(backend)?,
        subject_ids: Vec::new(),
        categories: split(&r.try_get::<_, String>(3).map_err(backend)?),
        reason: r.try_get(4).map_err(backend)?,
        reference: r.try_get(5).map_err(backend)?,
        status: r.try_get(6).map_err(backend)?,
        requested_by: r.try_get(7).map_err(backend)?,
        requested_at_micros: r.try_get(8).map_err(backend)?,
        approved_by: r.try_get(9).map_err(backend)?,
        approved_at_micros: g(10)?,
        authorized_by: r.try_get(11).map_err(backend)?,
        authorized_at_micros: g(12)?,
        rejected_by: r.try_get(13).map_err(backend)?,
        rejected_at_micros: g(14)?,
        rejection_reason: r.try_get(15).map_err(backend)?,
        releases: count(r.try_get(16).map_err(backend)?),
        max_releases: count(r.try_get(17).map_err(backend)?),
        first_released_at_micros: g(18)?,
        last_released_at_micros: g(19)?,
        notification_deferred_until: r.try_get(20).map_err(backend)?,
        deferral_reason: r.try_get(21).map_err(backend)?,
        excluded: r.try_get(22).map_err(backend)?,
    })
}

fn breach_row(r: &Row) -> StoreResult<BreachRecord> {
    Ok(BreachRecord {
        id: r.try_get(0).map_err(backend)?,
        detected_at_micros: r.try_get(1).map_err(backend)?,
        recorded_at_micros: r.try_get(2).map_err(backend)?,
        recorded_by: r.try_get(3).map_err(backend)?,
        description: r.try_get(4).map_err(backend)?,
        categories: split(&r.try_get::<_, String>(5).map_err(backend)?),
        all_subjects: r.try_get(6).map_err(backend)?,
        subject_ids: Vec::new(),
        cause: r.try_get(7).map_err(backend)?,
        measures: r.try_get(8).map_err(backend)?,
        notify_by_micros: r.try_get(9).map_err(backend)?,
        notified_at_micros: r.try_get(10).map_err(backend)?,
        notified_by: r.try_get(11).map_err(backend)?,
    })
}

async fn check_subjects(
    tx: &Transaction<'_>,
    stmts: &mut Stmts,
    subjects: &[String],
) -> Result<(), Tx> {
    for s in subjects {
        if !subject_exists(tx, stmts, s).await? {
            return Err(Tx::Store(StoreError::NotFound));
        }
    }
    Ok(())
}

/// Applies one accountability write inside the batch transaction.
pub(super) async fn apply(
    tx: &Transaction<'_>,
    stmts: &mut Stmts,
    chain: &mut Chain<'_>,
    op: &Op,
) -> Result<Vec<AuditRecord>, Tx> {
    match op {
        Op::InsertDisclosure(d, audit) => {
            check_subjects(tx, stmts, &d.subject_ids).await?;
            let st = stmts
                .get(
                    tx,
                    "INSERT INTO disclosures (id, recipient, purpose, categories, reason, reference, status,
                         requested_by, requested_at, approved_by, approved_at, authorized_by, authorized_at,
                         rejected_by, rejected_at, rejection_reason, releases, max_releases, first_released_at,
                         last_released_at, deferred_until, deferral_reason, excluded)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,
                             $19, $20, $21, $22, $23)",
                )
                .await?;
            tx.execute(
                &st,
                &[
                    &d.id,
                    &d.recipient,
                    &d.purpose,
                    &crate::lists::encode(&d.categories),
                    &d.reason,
                    &d.reference,
                    &d.status,
                    &d.requested_by,
                    &d.requested_at_micros,
                    &d.approved_by,
                    &d.approved_at_micros,
                    &d.authorized_by,
                    &d.authorized_at_micros,
                    &d.rejected_by,
                    &d.rejected_at_micros,
                    &d.rejection_reason,
                    &i64::from(d.releases),
                    &i64::from(d.max_releases),
                    &d.first_released_at_micros,
                    &d.last_released_at_micros,
                    &d.notification_deferred_until,
                    &d.deferral_reason,
                    &d.excluded,
                ],
            )
            .await?;
            let st = stmts
                .get(
                    tx,
                    "INSERT INTO disclosure_subjects (disclosure_id, subject_id) VALUES ($1, $2)
                     ON CONFLICT DO NOTHING",
                )
                .await?;
            for s in &d.subject_ids {
                tx.execute(&st, &[&d.id, s]).await?;
            }
            Ok(vec![append(tx, stmts, chain, audit).await?])
        }
        Op::StepDisclosure(step, audit) => {
            let st = stmts
                .get(
                    tx,
                    "SELECT status FROM disclosures WHERE id = $1 FOR UPDATE",
                )
                .await?;
            let Some(row) = tx.query_opt(&st, &[&step.id]).await? else {
                return Err(Tx::Store(StoreError::NotFound));
            };
            let status: String = row.try_get(0)?;
            if status != step.from {
                return Err(Tx::Store(StoreError::Conflict(format!(
                    "disclosure {} is {status}, no longer {}",
                    step.id, step.from
                ))));
            }
            let sql = match step.to.as_str() {
                "approved" => {
                    "UPDATE disclosures SET status = $2, approved_by = $3, approved_at = $4,
                            rejection_reason = COALESCE($5, rejection_reason) WHERE id = $1"
                }
                "authorized" => {
                    "UPDATE disclosures SET status = $2, authorized_by = $3, authorized_at = $4,
                            rejection_reason = COALESCE($5, rejection_reason) WHERE id = $1"
                }
                "rejected" => {
                    "UPDATE disclosures SET status = $2, rejected_by = $3, rejected_at = $4,
                            rejection_reason = $5 WHERE id = $1"
                }
                other => {
                    return Err(Tx::Store(StoreError::Backend(format!(
                        "no disclosure step leads to {other}"
                    ))))
                }
            };
            let st = stmts.get(tx, sql).await?;
            tx.execute(
                &st,
                &[&step.id, &step.to, &step.by, &step.at_micros, &step.reason],
            )
            .await?;
            Ok(vec![append(tx, stmts, chain, audit).await?])
        }
        Op::RecordRelease { id, at, audit } => {
            let st = stmts
                .get(
                    tx,
                    "SELECT status, releases, max_releases FROM disclosures WHERE id = $1 FOR UPDATE",
                )
                .await?;
            let Some(row) = tx.query_opt(&st, &[id]).await? else {
                return Err(Tx::Store(StoreError::NotFound));
            };
            let status: String = row.try_get(0)?;
            let releases: i64 = row.try_get(1)?;
            let max: i64 = row.try_get(2)?;
            if status != "authorized" && status != "released" {
                return Err(Tx::Store(StoreError::Conflict(format!(
                    "disclosure {id} is {status}: only an approved and authorized disclosure can be released"
                ))));
            }
            if releases >= max {
                return Err(Tx::Store(StoreError::Conflict(format!(
                    "disclosure {id} was already released {releases} times, the most it allows"
                ))));
            }
            let st = stmts
                .get(
                    tx,
                    "UPDATE disclosures SET status = 'released', releases = releases + 1,
                            first_released_at = COALESCE(first_released_at, $2), last_released_at = $2
                     WHERE id = $1",
                )
                .await?;
            tx.execute(&st, &[id, at]).await?;
            let mut out = Vec::with_capacity(audit.len());
            for entry in audit {
                out.push(append(tx, stmts, chain, entry).await?);
            }
            Ok(out)
        }
        Op::InsertBreach(b, audit) => {
            check_subjects(tx, stmts, &b.subject_ids).await?;
            let st = stmts
                .get(
                    tx,
                    "INSERT INTO breaches (id, detected_at, recorded_at, recorded_by, description, categories,
                         all_subjects, cause, measures, notify_by, notified_at, notified_by)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                )
                .await?;
            tx.execute(
                &st,
                &[
                    &b.id,
                    &b.detected_at_micros,
                    &b.recorded_at_micros,
                    &b.recorded_by,
                    &b.description,
                    &crate::lists::encode(&b.categories),
                    &b.all_subjects,
                    &b.cause,
                    &b.measures,
                    &b.notify_by_micros,
                    &b.notified_at_micros,
                    &b.notified_by,
                ],
            )
            .await?;
            let st = stmts
                .get(
                    tx,
                    "INSERT INTO breach_subjects (breach_id, subject_id) VALUES ($1, $2)
                     ON CONFLICT DO NOTHING",
                )
                .await?;
            for s in &b.subject_ids {
                tx.execute(&st, &[&b.id, s]).await?;
            }
            Ok(vec![append(tx, stmts, chain, audit).await?])
        }
        Op::MarkBreachNotified { id, by, at, audit } => {
            let st = stmts
                .get(
                    tx,
                    "SELECT notified_at FROM breaches WHERE id = $1 FOR UPDATE",
                )
                .await?;
            let Some(row) = tx.query_opt(&st, &[id]).await? else {
                return Err(Tx::Store(StoreError::NotFound));
            };
            let notified: Option<i64> = row.try_get(0)?;
            if notified.is_some() {
                return Err(Tx::Store(StoreError::Conflict(format!(
                    "the notices of breach {id} were already marked sent"
                ))));
            }
            let st = stmts
                .get(
                    tx,
                    "UPDATE breaches SET notified_at = $2, notified_by = $3 WHERE id = $1",
                )
                .await?;
            tx.execute(&st, &[id, at, by]).await?;
            Ok(vec![append(tx, stmts, chain, audit).await?])
        }
        _ => Err(Tx::Store(StoreError::Backend(
            "not an accountability operation".into(),
        ))),
    }
}

impl PgStore {
    async fn ids_of(&self, sql: &'static str, id: &str) -> StoreResult<Vec<String>> {
        self.query(sql, &[&id])
            .await?
            .iter()
            .map(|r| r.try_get(0).map_err(backend))
            .collect()
    }

    async fn with_disclosure_subjects(
        &self,
        mut d: DisclosureRecord,
    ) -> StoreResult<DisclosureRecord> {
        d.subject_ids = self
            .ids_of(
                "SELECT subject_id FROM disclosure_subjects WHERE disclosure_id = $1 ORDER BY subject_id",
                &d.id,
            )
            .await?;
        Ok(d)
    }

    async fn with_breach_subjects(&self, mut b: BreachRecord) -> StoreResult<BreachRecord> {
        b.subject_ids = self
            .ids_of(
                "SELECT subject_id FROM breach_subjects WHERE breach_id = $1 ORDER BY subject_id",
                &b.id,
            )
            .await?;
        Ok(b)
    }
}

#[async_trait]
impl AccountabilityStore for PgStore {
    async fn insert_disclosure(
        &self,
        disclosure: DisclosureRecord,
        audit: AuditDraft,
    ) -> StoreResult<AuditRecord> {
        self.write(Op::InsertDisclosure(disclosure, audit)).await
    }

    async fn load_disclosure(&self, id: &str) -> StoreResult<Option<DisclosureRecord>> {
        let rows = self
            .query(
                "SELECT id, recipient, purpose, categories, reason, reference, status, requested_by,
                        requested_at, approved_by, approved_at, authorized_by, authorized_at, rejected_by,
                        rejected_at, rejection_reason, releases, max_releases, first_released_at,
                        last_released_at, deferred_until, deferral_reason, excluded
                 FROM disclosures WHERE id = $1",
                &[&id],
            )
            .await?;
        match rows.first() {
            Some(r) => Ok(Some(
                self.with_disclosure_subjects(disclosure_row(r)?).await?,
            )),
            None => Ok(None),
        }
    }

    async fn step_disclosure(
        &self,
        step: DisclosureStep,
        audit: AuditDraft,
    ) -> StoreResult<AuditRecord> {
        self.write(Op::StepDisclosure(step, audit)).await
    }

    async fn record_release(
        &self,
        id: &str,
        at_micros: i64,
        audit: Vec<AuditDraft>,
    ) -> StoreResult<u32> {
        self.write_many(Op::RecordRelease {
            id: id.to_owned(),
            at: at_micros,
            audit,
        })
        .await?;
        let d = self
            .load_disclosure(id)
            .await?
            .ok_or(StoreError::NotFound)?;
        Ok(d.releases)
    }

    async fn list_disclosures(
        &self,
        filter: DisclosureFilter,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<DisclosureRecord>> {
        // Keyset paging on (requested_at, id) descending: the cursor is a disclosure id.
        let rows = self
            .query(
                "WITH cursor AS (SELECT requested_at, id FROM disclosures WHERE id = $3)
                 SELECT d.id, d.recipient, d.purpose, d.categories, d.reason, d.reference, d.status,
                        d.requested_by, d.requested_at, d.approved_by, d.approved_at, d.authorized_by,
                        d.authorized_at, d.rejected_by, d.rejected_at, d.rejection_reason, d.releases,
                        d.max_releases, d.first_released_at, d.last_released_at, d.deferred_until,
                        d.deferral_reason, d.excluded
                 FROM disclosures d
                 WHERE ($1::TEXT IS NULL OR d.id IN
                          (SELECT disclosure_id FROM disclosure_subjects WHERE subject_id = $1))
                   AND ($2::TEXT IS NULL OR d.status = $2)
                   AND ($3::TEXT IS NULL OR NOT EXISTS (SELECT 1 FROM cursor)
                        OR (d.requested_at, d.id) < (SELECT requested_at, id FROM cursor))
                 ORDER BY d.requested_at DESC, d.id DESC LIMIT $4",
                &[&filter.subject, &filter.status, &after, &limit_i64(limit)],
            )
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push(self.with_disclosure_subjects(disclosure_row(r)?).await?);
        }
        Ok(out)
    }

    async fn insert_breach(
        &self,
        breach: BreachRecord,
        audit: AuditDraft,
    ) -> StoreResult<AuditRecord> {
        self.write(Op::InsertBreach(breach, audit)).await
    }

    async fn load_breach(&self, id: &str) -> StoreResult<Option<BreachRecord>> {
        let rows = self
            .query(
                "SELECT id, detected_at, recorded_at, recorded_by, description, categories, all_subjects,
                        cause, measures, notify_by, notified_at, notified_by
                 FROM breaches WHERE id = $1",
                &[&id],
            )
            .await?;
        match rows.first() {
            Some(r) => Ok(Some(self.with_breach_subjects(breach_row(r)?).await?)),
            None => Ok(None),
        }
    }

    async fn list_breaches(
        &self,
        overdue_at: Option<i64>,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<BreachRecord>> {
        let rows = self
            .query(
                "WITH cursor AS (SELECT detected_at, id FROM breaches WHERE id = $2)
                 SELECT b.id, b.detected_at, b.recorded_at, b.recorded_by, b.description, b.categories,
                        b.all_subjects, b.cause, b.measures, b.notify_by, b.notified_at, b.notified_by
                 FROM breaches b
                 WHERE ($1::BIGINT IS NULL OR (b.notified_at IS NULL AND b.notify_by < $1))
                   AND ($2::TEXT IS NULL OR NOT EXISTS (SELECT 1 FROM cursor)
                        OR (b.detected_at, b.id) < (SELECT detected_at, id FROM cursor))
                 ORDER BY b.detected_at DESC, b.id DESC LIMIT $3",
                &[&overdue_at, &after, &limit_i64(limit)],
            )
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push(self.with_breach_subjects(breach_row(r)?).await?);
        }
        Ok(out)
    }

    async fn mark_breach_notified(
        &self,
        id: &str,
        by: &str,
        at_micros: i64,
        audit: AuditDraft,
    ) -> StoreResult<AuditRecord> {
        self.write(Op::MarkBreachNotified {
            id: id.to_owned(),
            by: by.to_owned(),
            at: at_micros,
            audit,
        })
        .await
    }

    async fn count_breaches(&self, now_micros: i64) -> StoreResult<(u64, u64)> {
        let rows = self
            .query(
                "SELECT COUNT(*), COUNT(*) FILTER (WHERE notify_by < $1) FROM breaches
                 WHERE notified_at IS NULL",
                &[&now_micros],
            )
            .await?;
        let row = rows
            .first()
            .ok_or_else(|| StoreError::Backend("no count".into()))?;
        let unnotified: i64 = row.try_get(0).map_err(backend)?;
        let overdue: i64 = row.try_get(1).map_err(backend)?;
        Ok((unnotified as u64, overdue as u64))
    }

    async fn subject_ids(&self, after: Option<&str>, limit: usize) -> StoreResult<Vec<String>> {
        let after = after.unwrap_or("");
        self.query(
            "SELECT id FROM subjects WHERE id > $1 ORDER BY id LIMIT $2",
            &[&after, &limit_i64(limit)],
        )
        .await?
        .iter()
        .map(|r| r.try_get(0).map_err(backend))
        .collect()
    }

    async fn subjects_per_purpose(&self) -> StoreResult<Vec<(String, u64)>> {
        self.query(
            "SELECT purpose, COUNT(DISTINCT subject_id) FROM subject_purposes GROUP BY purpose ORDER BY purpose",
            &[],
        )
        .await?
        .iter()
        .map(|r| {
            let n: i64 = r.try_get(1).map_err(backend)?;
            Ok((r.try_get(0).map_err(backend)?, n as u64))
        })
        .collect()
    }
}

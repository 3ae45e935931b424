//! PostgreSQL implementation of [`AccountabilityStore`].

use amanah_core::audit::{AuditDraft, AuditRecord};
use async_trait::async_trait;
use tokio_postgres::Transaction;

use crate::rows::{self, RowAccess};
use crate::sql;

use super::{append, limit_i64, subject_exists, Chain, Op, PgStore, Stmts, Tx};
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
            let st = stmts.get(tx, sql::INSERT_DISCLOSURE.pg).await?;
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
            let st = stmts.get(tx, sql::INSERT_BREACH.pg).await?;
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
    async fn with_disclosure_subjects(
        &self,
        mut d: DisclosureRecord,
    ) -> StoreResult<DisclosureRecord> {
        d.subject_ids = self
            .all(sql::DISCLOSURE_SUBJECTS, &[&d.id], rows::string)
            .await?;
        Ok(d)
    }

    async fn with_breach_subjects(&self, mut b: BreachRecord) -> StoreResult<BreachRecord> {
        b.subject_ids = self
            .all(sql::BREACH_SUBJECTS, &[&b.id], rows::string)
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
        match self
            .first(sql::DISCLOSURE_BY_ID, &[&id], rows::disclosure)
            .await?
        {
            Some(d) => Ok(Some(self.with_disclosure_subjects(d).await?)),
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
        let found = self
            .all(
                sql::LIST_DISCLOSURES,
                &[&filter.subject, &filter.status, &after, &limit_i64(limit)],
                rows::disclosure,
            )
            .await?;
        let mut out = Vec::with_capacity(found.len());
        for d in found {
            out.push(self.with_disclosure_subjects(d).await?);
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
        match self.first(sql::BREACH_BY_ID, &[&id], rows::breach).await? {
            Some(b) => Ok(Some(self.with_breach_subjects(b).await?)),
            None => Ok(None),
        }
    }

    async fn list_breaches(
        &self,
        overdue_at: Option<i64>,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<BreachRecord>> {
        let found = self
            .all(
                sql::LIST_BREACHES,
                &[&overdue_at, &after, &limit_i64(limit)],
                rows::breach,
            )
            .await?;
        let mut out = Vec::with_capacity(found.len());
        for b in found {
            out.push(self.with_breach_subjects(b).await?);
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
        self.first(sql::COUNT_BREACHES, &[&now_micros], |r| {
            Ok((r.col::<i64>(0)? as u64, r.col::<i64>(1)? as u64))
        })
        .await?
        .ok_or_else(|| StoreError::Backend("no count".into()))
    }

    async fn subject_ids(&self, after: Option<&str>, limit: usize) -> StoreResult<Vec<String>> {
        let after = after.unwrap_or("");
        self.all(sql::SUBJECT_IDS, &[&after, &limit_i64(limit)], rows::string)
            .await
    }

    async fn subjects_per_purpose(&self) -> StoreResult<Vec<(String, u64)>> {
        self.all(sql::SUBJECTS_PER_PURPOSE, &[], |r| {
            Ok((r.col(0)?, r.col::<i64>(1)? as u64))
        })
        .await
    }
}

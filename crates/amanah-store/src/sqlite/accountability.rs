//! SQLite implementation of [`AccountabilityStore`].

use amanah_core::audit::{AuditDraft, AuditRecord};
use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};

use super::{all, append, backend, first, subject_exists, SqliteStore};
use crate::rows::{self, RowAccess};
use crate::sql;
use crate::{
    AccountabilityStore, BreachRecord, DisclosureFilter, DisclosureRecord, DisclosureStep,
    StoreError, StoreResult,
};

/// Schema 4: disclosures and their subjects, the breach register.
pub(super) const MIGRATION_4: &str = r#"
CREATE TABLE IF NOT EXISTS disclosures (
    id TEXT PRIMARY KEY,
    recipient TEXT NOT NULL,
    purpose TEXT NOT NULL,
    categories TEXT NOT NULL,
    reason TEXT NOT NULL,
    reference TEXT,
    status TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    requested_at INTEGER NOT NULL,
    approved_by TEXT,
    approved_at INTEGER,
    authorized_by TEXT,
    authorized_at INTEGER,
    rejected_by TEXT,
    rejected_at INTEGER,
    rejection_reason TEXT,
    releases INTEGER NOT NULL DEFAULT 0,
    max_releases INTEGER NOT NULL,
    first_released_at INTEGER,
    last_released_at INTEGER,
    deferred_until TEXT,
    deferral_reason TEXT,
    excluded TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS disclosures_by_time ON disclosures(requested_at, id);
CREATE TABLE IF NOT EXISTS disclosure_subjects (
    disclosure_id TEXT NOT NULL REFERENCES disclosures(id) ON DELETE CASCADE,
    subject_id TEXT NOT NULL,
    PRIMARY KEY (disclosure_id, subject_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS disclosure_subjects_by_subject ON disclosure_subjects(subject_id);
CREATE TABLE IF NOT EXISTS breaches (
    id TEXT PRIMARY KEY,
    detected_at INTEGER NOT NULL,
    recorded_at INTEGER NOT NULL,
    recorded_by TEXT NOT NULL,
    description TEXT NOT NULL,
    categories TEXT NOT NULL,
    all_subjects INTEGER NOT NULL,
    cause TEXT NOT NULL,
    measures TEXT NOT NULL,
    notify_by INTEGER NOT NULL,
    notified_at INTEGER,
    notified_by TEXT
);
CREATE INDEX IF NOT EXISTS breaches_by_time ON breaches(detected_at, id);
CREATE TABLE IF NOT EXISTS breach_subjects (
    breach_id TEXT NOT NULL REFERENCES breaches(id) ON DELETE CASCADE,
    subject_id TEXT NOT NULL,
    PRIMARY KEY (breach_id, subject_id)
) WITHOUT ROWID;
"#;

fn with_disclosure_subjects(
    conn: &Connection,
    mut d: DisclosureRecord,
) -> StoreResult<DisclosureRecord> {
    d.subject_ids = all(conn, sql::DISCLOSURE_SUBJECTS, [&d.id], |r| rows::string(r))?;
    Ok(d)
}

fn with_breach_subjects(conn: &Connection, mut b: BreachRecord) -> StoreResult<BreachRecord> {
    b.subject_ids = all(conn, sql::BREACH_SUBJECTS, [&b.id], |r| rows::string(r))?;
    Ok(b)
}

fn check_subjects(tx: &Connection, subjects: &[String]) -> StoreResult<()> {
    for s in subjects {
        if !subject_exists(tx, s)? {
            return Err(StoreError::NotFound);
        }
    }
    Ok(())
}

#[async_trait]
impl AccountabilityStore for SqliteStore {
    async fn insert_disclosure(
        &self,
        d: DisclosureRecord,
        audit: AuditDraft,
    ) -> StoreResult<AuditRecord> {
        self.write(move |tx, chain| {
            check_subjects(tx, &d.subject_ids)?;
            tx.prepare_cached(sql::INSERT_DISCLOSURE.lite)
            .and_then(|mut st| {
                st.execute(params![
                    d.id,
                    d.recipient,
                    d.purpose,
                    crate::lists::encode(&d.categories),
                    d.reason,
                    d.reference,
                    d.status,
                    d.requested_by,
                    d.requested_at_micros,
                    d.approved_by,
                    d.approved_at_micros,
                    d.authorized_by,
                    d.authorized_at_micros,
                    d.rejected_by,
                    d.rejected_at_micros,
                    d.rejection_reason,
                    d.releases,
                    d.max_releases,
                    d.first_released_at_micros,
                    d.last_released_at_micros,
                    d.notification_deferred_until,
                    d.deferral_reason,
                    d.excluded
                ])
            })
            .map_err(backend)?;
            for s in &d.subject_ids {
                tx.prepare_cached(
                    "INSERT OR IGNORE INTO disclosure_subjects (disclosure_id, subject_id) VALUES (?1, ?2)",
                )
                .and_then(|mut st| st.execute(params![d.id, s]))
                .map_err(backend)?;
            }
            append(tx, chain, audit)
        })
        .await
    }

    async fn load_disclosure(&self, id: &str) -> StoreResult<Option<DisclosureRecord>> {
        let id = id.to_owned();
        self.read(move |conn| {
            first(conn, sql::DISCLOSURE_BY_ID, [id], |r| rows::disclosure(r))?
                .map(|d| with_disclosure_subjects(conn, d))
                .transpose()
        })
        .await
    }

    async fn step_disclosure(
        &self,
        step: DisclosureStep,
        audit: AuditDraft,
    ) -> StoreResult<AuditRecord> {
        self.write(move |tx, chain| {
            let current: Option<String> = tx
                .prepare_cached("SELECT status FROM disclosures WHERE id = ?1")
                .and_then(|mut st| st.query_row([&step.id], |r| r.get(0)).optional())
                .map_err(backend)?;
            match current {
                None => return Err(StoreError::NotFound),
                Some(s) if s != step.from => {
                    return Err(StoreError::Conflict(format!(
                        "disclosure {} is {s}, no longer {}",
                        step.id, step.from
                    )))
                }
                Some(_) => {}
            }
            let sql = match step.to.as_str() {
                "approved" => {
                    "UPDATE disclosures SET status = ?2, approved_by = ?3, approved_at = ?4 WHERE id = ?1"
                }
                "authorized" => {
                    "UPDATE disclosures SET status = ?2, authorized_by = ?3, authorized_at = ?4 WHERE id = ?1"
                }
                "rejected" => {
                    "UPDATE disclosures SET status = ?2, rejected_by = ?3, rejected_at = ?4,
                            rejection_reason = ?5 WHERE id = ?1"
                }
                other => {
                    return Err(StoreError::Backend(format!(
                        "no disclosure step leads to {other}"
                    )))
                }
            };
            let mut st = tx.prepare_cached(sql).map_err(backend)?;
            if step.to == "rejected" {
                st.execute(params![step.id, step.to, step.by, step.at_micros, step.reason])
            } else {
                st.execute(params![step.id, step.to, step.by, step.at_micros])
            }
            .map_err(backend)?;
            append(tx, chain, audit)
        })
        .await
    }

    async fn record_release(
        &self,
        id: &str,
        at_micros: i64,
        audit: Vec<AuditDraft>,
    ) -> StoreResult<u32> {
        let id = id.to_owned();
        let count = std::sync::Arc::new(std::sync::Mutex::new(0u32));
        let seen = count.clone();
        self.write_many(move |tx, chain| {
            let row: Option<(String, u32, u32)> = tx
                .prepare_cached(
                    "SELECT status, releases, max_releases FROM disclosures WHERE id = ?1",
                )
                .and_then(|mut st| {
                    st.query_row([&id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                        .optional()
                })
                .map_err(backend)?;
            let Some((status, releases, max)) = row else {
                return Err(StoreError::NotFound);
            };
            if status != "authorized" && status != "released" {
                return Err(StoreError::Conflict(format!(
                    "disclosure {id} is {status}: only an approved and authorized disclosure can be released"
                )));
            }
            if releases >= max {
                return Err(StoreError::Conflict(format!(
                    "disclosure {id} was already released {releases} times, the most it allows"
                )));
            }
            tx.prepare_cached(
                "UPDATE disclosures SET status = 'released', releases = releases + 1,
                        first_released_at = COALESCE(first_released_at, ?2), last_released_at = ?2
                 WHERE id = ?1",
            )
            .and_then(|mut st| st.execute(params![id, at_micros]))
            .map_err(backend)?;
            if let Ok(mut c) = seen.lock() {
                *c = releases + 1;
            }
            audit
                .into_iter()
                .map(|entry| append(tx, chain, entry))
                .collect()
        })
        .await?;
        let n = count.lock().map(|c| *c).unwrap_or(0);
        Ok(n)
    }

    async fn list_disclosures(
        &self,
        filter: DisclosureFilter,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<DisclosureRecord>> {
        let after = after.map(str::to_owned);
        self.read(move |conn| {
            all(
                conn,
                sql::LIST_DISCLOSURES,
                params![filter.subject, filter.status, after, limit as i64],
                |r| rows::disclosure(r),
            )?
            .into_iter()
            .map(|d| with_disclosure_subjects(conn, d))
            .collect()
        })
        .await
    }

    async fn insert_breach(&self, b: BreachRecord, audit: AuditDraft) -> StoreResult<AuditRecord> {
        self.write(move |tx, chain| {
            check_subjects(tx, &b.subject_ids)?;
            tx.prepare_cached(sql::INSERT_BREACH.lite)
                .and_then(|mut st| {
                    st.execute(params![
                        b.id,
                        b.detected_at_micros,
                        b.recorded_at_micros,
                        b.recorded_by,
                        b.description,
                        crate::lists::encode(&b.categories),
                        b.all_subjects,
                        b.cause,
                        b.measures,
                        b.notify_by_micros,
                        b.notified_at_micros,
                        b.notified_by
                    ])
                })
                .map_err(backend)?;
            for s in &b.subject_ids {
                tx.prepare_cached(
                    "INSERT OR IGNORE INTO breach_subjects (breach_id, subject_id) VALUES (?1, ?2)",
                )
                .and_then(|mut st| st.execute(params![b.id, s]))
                .map_err(backend)?;
            }
            append(tx, chain, audit)
        })
        .await
    }

    async fn load_breach(&self, id: &str) -> StoreResult<Option<BreachRecord>> {
        let id = id.to_owned();
        self.read(move |conn| {
            first(conn, sql::BREACH_BY_ID, [id], |r| rows::breach(r))?
                .map(|b| with_breach_subjects(conn, b))
                .transpose()
        })
        .await
    }

    async fn list_breaches(
        &self,
        overdue_at: Option<i64>,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<BreachRecord>> {
        let after = after.map(str::to_owned);
        self.read(move |conn| {
            all(
                conn,
                sql::LIST_BREACHES,
                params![overdue_at, after, limit as i64],
                |r| rows::breach(r),
            )?
            .into_iter()
            .map(|b| with_breach_subjects(conn, b))
            .collect()
        })
        .await
    }

    async fn mark_breach_notified(
        &self,
        id: &str,
        by: &str,
        at_micros: i64,
        audit: AuditDraft,
    ) -> StoreResult<AuditRecord> {
        let (id, by) = (id.to_owned(), by.to_owned());
        self.write(move |tx, chain| {
            let notified: Option<Option<i64>> = tx
                .prepare_cached("SELECT notified_at FROM breaches WHERE id = ?1")
                .and_then(|mut st| st.query_row([&id], |r| r.get(0)).optional())
                .map_err(backend)?;
            match notified {
                None => return Err(StoreError::NotFound),
                Some(Some(_)) => {
                    return Err(StoreError::Conflict(format!(
                        "the notices of breach {id} were already marked sent"
                    )))
                }
                Some(None) => {}
            }
            tx.prepare_cached(
                "UPDATE breaches SET notified_at = ?2, notified_by = ?3 WHERE id = ?1",
            )
            .and_then(|mut st| st.execute(params![id, at_micros, by]))
            .map_err(backend)?;
            append(tx, chain, audit)
        })
        .await
    }

    async fn count_breaches(&self, now_micros: i64) -> StoreResult<(u64, u64)> {
        self.read(move |conn| {
            first(conn, sql::COUNT_BREACHES, [now_micros], |r| {
                Ok((r.col::<i64>(0)? as u64, r.col::<i64>(1)? as u64))
            })?
            .ok_or_else(|| StoreError::Backend("no count".into()))
        })
        .await
    }

    async fn subject_ids(&self, after: Option<&str>, limit: usize) -> StoreResult<Vec<String>> {
        let after = after.unwrap_or("").to_owned();
        self.read(move |conn| {
            all(conn, sql::SUBJECT_IDS, params![after, limit as i64], |r| {
                rows::string(r)
            })
        })
        .await
    }

    async fn subjects_per_purpose(&self) -> StoreResult<Vec<(String, u64)>> {
        self.read(|conn| {
            all(conn, sql::SUBJECTS_PER_PURPOSE, [], |r| {
                Ok((r.col(0)?, r.col::<i64>(1)? as u64))
            })
        })
        .await
    }
}

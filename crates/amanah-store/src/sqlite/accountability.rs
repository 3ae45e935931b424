//! SQLite implementation of [`AccountabilityStore`].

use amanah_core::audit::{AuditDraft, AuditRecord};
use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};

use super::{append, backend, subject_exists, SqliteStore};
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

const DISCLOSURE_COLUMNS: &str = "id, recipient, purpose, categories, reason, reference, status,
     requested_by, requested_at, approved_by, approved_at, authorized_by, authorized_at,
     rejected_by, rejected_at, rejection_reason, releases, max_releases, first_released_at,
     last_released_at, deferred_until, deferral_reason, excluded";

const BREACH_COLUMNS: &str = "id, detected_at, recorded_at, recorded_by, description, categories,
     all_subjects, cause, measures, notify_by, notified_at, notified_by";

/// Category lists are stored as JSON arrays (see `lists`).
fn split(s: &str) -> Vec<String> {
    crate::lists::decode(s)
}

fn disclosure_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DisclosureRecord> {
    Ok(DisclosureRecord {
        id: r.get(0)?,
        recipient: r.get(1)?,
        purpose: r.get(2)?,
        subject_ids: Vec::new(),
        categories: split(&r.get::<_, String>(3)?),
        reason: r.get(4)?,
        reference: r.get(5)?,
        status: r.get(6)?,
        requested_by: r.get(7)?,
        requested_at_micros: r.get(8)?,
        approved_by: r.get(9)?,
        approved_at_micros: r.get(10)?,
        authorized_by: r.get(11)?,
        authorized_at_micros: r.get(12)?,
        rejected_by: r.get(13)?,
        rejected_at_micros: r.get(14)?,
        rejection_reason: r.get(15)?,
        releases: r.get(16)?,
        max_releases: r.get(17)?,
        first_released_at_micros: r.get(18)?,
        last_released_at_micros: r.get(19)?,
        notification_deferred_until: r.get(20)?,
        deferral_reason: r.get(21)?,
        excluded: r.get(22)?,
    })
}

fn breach_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<BreachRecord> {
    Ok(BreachRecord {
        id: r.get(0)?,
        detected_at_micros: r.get(1)?,
        recorded_at_micros: r.get(2)?,
        recorded_by: r.get(3)?,
        description: r.get(4)?,
        categories: split(&r.get::<_, String>(5)?),
        all_subjects: r.get(6)?,
        subject_ids: Vec::new(),
        cause: r.get(7)?,
        measures: r.get(8)?,
        notify_by_micros: r.get(9)?,
        notified_at_micros: r.get(10)?,
        notified_by: r.get(11)?,
    })
}

fn ids(conn: &Connection, sql: &str, id: &str) -> StoreResult<Vec<String>> {
    conn.prepare_cached(sql)
        .and_then(|mut st| {
            st.query_map([id], |r| r.get::<_, String>(0))
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
        })
        .map_err(backend)
}

fn with_disclosure_subjects(
    conn: &Connection,
    mut d: DisclosureRecord,
) -> StoreResult<DisclosureRecord> {
    d.subject_ids = ids(
        conn,
        "SELECT subject_id FROM disclosure_subjects WHERE disclosure_id = ?1 ORDER BY subject_id",
        &d.id,
    )?;
    Ok(d)
}

fn with_breach_subjects(conn: &Connection, mut b: BreachRecord) -> StoreResult<BreachRecord> {
    b.subject_ids = ids(
        conn,
        "SELECT subject_id FROM breach_subjects WHERE breach_id = ?1 ORDER BY subject_id",
        &b.id,
    )?;
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
            tx.prepare_cached(&format!(
                "INSERT INTO disclosures ({DISCLOSURE_COLUMNS}) VALUES
                 (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23)"
            ))
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
            let found = conn
                .prepare_cached(&format!(
                    "SELECT {DISCLOSURE_COLUMNS} FROM disclosures WHERE id = ?1"
                ))
                .and_then(|mut st| st.query_row([id], disclosure_row).optional())
                .map_err(backend)?;
            found.map(|d| with_disclosure_subjects(conn, d)).transpose()
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
            // Keyset paging on (requested_at, id) descending: the cursor is a disclosure id.
            let cursor: Option<(i64, String)> = match &after {
                Some(a) => conn
                    .prepare_cached("SELECT requested_at, id FROM disclosures WHERE id = ?1")
                    .and_then(|mut st| {
                        st.query_row([a], |r| Ok((r.get(0)?, r.get(1)?))).optional()
                    })
                    .map_err(backend)?,
                None => None,
            };
            let (cur_at, cur_id) = cursor.unwrap_or((i64::MAX, String::from("\u{10FFFF}")));
            let found = conn
                .prepare_cached(&format!(
                    "SELECT {DISCLOSURE_COLUMNS} FROM disclosures
                     WHERE (?1 IS NULL OR id IN (SELECT disclosure_id FROM disclosure_subjects WHERE subject_id = ?1))
                       AND (?2 IS NULL OR status = ?2)
                       AND (requested_at < ?3 OR (requested_at = ?3 AND id < ?4))
                     ORDER BY requested_at DESC, id DESC LIMIT ?5"
                ))
                .and_then(|mut st| {
                    st.query_map(
                        params![filter.subject, filter.status, cur_at, cur_id, limit as i64],
                        disclosure_row,
                    )
                    .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                })
                .map_err(backend)?;
            found
                .into_iter()
                .map(|d| with_disclosure_subjects(conn, d))
                .collect()
        })
        .await
    }

    async fn insert_breach(&self, b: BreachRecord, audit: AuditDraft) -> StoreResult<AuditRecord> {
        self.write(move |tx, chain| {
            check_subjects(tx, &b.subject_ids)?;
            tx.prepare_cached(&format!(
                "INSERT INTO breaches ({BREACH_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
            ))
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
            let found = conn
                .prepare_cached(&format!(
                    "SELECT {BREACH_COLUMNS} FROM breaches WHERE id = ?1"
                ))
                .and_then(|mut st| st.query_row([id], breach_row).optional())
                .map_err(backend)?;
            found.map(|b| with_breach_subjects(conn, b)).transpose()
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
            let cursor: Option<(i64, String)> = match &after {
                Some(a) => conn
                    .prepare_cached("SELECT detected_at, id FROM breaches WHERE id = ?1")
                    .and_then(|mut st| st.query_row([a], |r| Ok((r.get(0)?, r.get(1)?))).optional())
                    .map_err(backend)?,
                None => None,
            };
            let (cur_at, cur_id) = cursor.unwrap_or((i64::MAX, String::from("\u{10FFFF}")));
            let found = conn
                .prepare_cached(&format!(
                    "SELECT {BREACH_COLUMNS} FROM breaches
                     WHERE (?1 IS NULL OR (notified_at IS NULL AND notify_by < ?1))
                       AND (detected_at < ?2 OR (detected_at = ?2 AND id < ?3))
                     ORDER BY detected_at DESC, id DESC LIMIT ?4"
                ))
                .and_then(|mut st| {
                    st.query_map(
                        params![overdue_at, cur_at, cur_id, limit as i64],
                        breach_row,
                    )
                    .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                })
                .map_err(backend)?;
            found
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
            conn.prepare_cached(
                "SELECT COUNT(*), COALESCE(SUM(notify_by < ?1), 0) FROM breaches WHERE notified_at IS NULL",
            )
            .and_then(|mut st| {
                st.query_row([now_micros], |r| {
                    Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64))
                })
            })
            .map_err(backend)
        })
        .await
    }

    async fn subject_ids(&self, after: Option<&str>, limit: usize) -> StoreResult<Vec<String>> {
        let after = after.unwrap_or("").to_owned();
        self.read(move |conn| {
            conn.prepare_cached("SELECT id FROM subjects WHERE id > ?1 ORDER BY id LIMIT ?2")
                .and_then(|mut st| {
                    st.query_map(params![after, limit as i64], |r| r.get::<_, String>(0))
                        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                })
                .map_err(backend)
        })
        .await
    }

    async fn subjects_per_purpose(&self) -> StoreResult<Vec<(String, u64)>> {
        self.read(|conn| {
            conn.prepare_cached(
                "SELECT purpose, COUNT(DISTINCT subject_id) FROM subject_purposes GROUP BY purpose ORDER BY purpose",
            )
            .and_then(|mut st| {
                st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64)))
                    .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            })
            .map_err(backend)
        })
        .await
    }
}

//! SQLite implementation of [`RightsStore`].

use amanah_core::audit::{AuditDraft, AuditRecord};
use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};

use super::{all, append, backend, first, subject_exists, Chain, SqliteStore};
use crate::rows::{self, RowAccess};
use crate::sql;
use crate::{
    DeidentifiedRecord, HoldRecord, RequestFilter, RequestRecord, RequestTransition,
    RestrictionRecord, RetentionSubject, RightsStore, StoreError, StoreResult,
};

/// Deletes everything of one subject: the data key (staged: the key store commits first), then
/// the rows (cascading to fields, index terms, purposes, consents, relations and holds); leaves
/// a tombstone.
pub(super) fn shred(
    tx: &Connection,
    chain: &mut Chain,
    id: &str,
    at: i64,
    cause: &str,
) -> StoreResult<()> {
    if !subject_exists(tx, id)? {
        return Err(StoreError::NotFound);
    }
    let exec = |sql: &str| {
        tx.prepare_cached(sql)
            .and_then(|mut st| st.execute([id]))
            .map_err(backend)
    };
    chain.keys.delete(id);
    exec("DELETE FROM relations WHERE subject_id = ?1 OR related_subject_id = ?1")?;
    exec("DELETE FROM subjects WHERE id = ?1")?;
    tx.prepare_cached(
        "INSERT INTO erasures (subject_id, erased_at, cause) VALUES (?1, ?2, ?3)
         ON CONFLICT(subject_id) DO NOTHING",
    )
    .and_then(|mut st| st.execute(params![id, at, cause]))
    .map_err(backend)?;
    // Sealed texts of requests about the subject can no longer be opened; drop the bytes too.
    tx.prepare_cached(
        "UPDATE requests SET details = NULL, refusal_text = NULL WHERE subject_id = ?1",
    )
    .and_then(|mut st| st.execute([id]))
    .map_err(backend)?;
    Ok(())
}

/// Purges every subject whose data key the key store does not hold (nor this batch stages);
/// returns how many.
pub(super) fn shred_keyless(tx: &Connection, chain: &mut Chain, at: i64) -> StoreResult<u64> {
    let mut ids: Vec<String> = tx
        .prepare(
            "SELECT s.id FROM subjects s WHERE NOT EXISTS
                (SELECT 1 FROM keys.data_keys k WHERE k.subject_id = s.id)",
        )
        .and_then(|mut st| {
            st.query_map([], |r| r.get(0))
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
        })
        .map_err(backend)?;
    ids.retain(|id| !chain.keys.inserts(id));
    for id in &ids {
        shred(tx, chain, id, at, "restore: no key in the key store")?;
    }
    Ok(ids.len() as u64)
}

fn purposes_of(conn: &Connection, id: &str) -> StoreResult<Vec<(String, i64)>> {
    all(conn, sql::PURPOSES_OF, [id], |r| rows::string_and_i64(r))
}

#[async_trait]
impl RightsStore for SqliteStore {
    async fn erase_subject(
        &self,
        id: &str,
        at_micros: i64,
        cause: &str,
        audit: AuditDraft,
    ) -> StoreResult<AuditRecord> {
        let (id, cause) = (id.to_owned(), cause.to_owned());
        self.write(move |tx, chain| {
            shred(tx, chain, &id, at_micros, &cause)?;
            chain.checkpoint = true;
            append(tx, chain, audit)
        })
        .await
    }

    async fn erased_at(&self, id: &str) -> StoreResult<Option<i64>> {
        let id = id.to_owned();
        self.read(move |conn| first(conn, sql::ERASED_AT, [id], |r| r.col(0)))
            .await
    }

    async fn set_restriction(
        &self,
        id: &str,
        restriction: Option<RestrictionRecord>,
        audit: AuditDraft,
    ) -> StoreResult<AuditRecord> {
        let id = id.to_owned();
        self.write(move |tx, chain| {
            if !subject_exists(tx, &id)? {
                return Err(StoreError::NotFound);
            }
            let (since, reason, by) = match restriction {
                Some(r) => (Some(r.since_micros), r.reason, Some(r.by)),
                None => (None, None, None),
            };
            tx.prepare_cached(
                "UPDATE subjects SET restricted_at = ?2, restriction_reason = ?3, restricted_by = ?4 WHERE id = ?1",
            )
            .and_then(|mut st| st.execute(params![id, since, reason, by]))
            .map_err(backend)?;
            append(tx, chain, audit)
        })
        .await
    }

    async fn restriction(&self, id: &str) -> StoreResult<Option<RestrictionRecord>> {
        let id = id.to_owned();
        self.read(move |conn| first(conn, sql::RESTRICTION, [id], |r| rows::restriction(r)))
            .await
    }

    async fn insert_hold(&self, hold: HoldRecord, audit: AuditDraft) -> StoreResult<AuditRecord> {
        self.write(move |tx, chain| {
            if !subject_exists(tx, &hold.subject_id)? {
                return Err(StoreError::NotFound);
            }
            tx.prepare_cached(
                "INSERT INTO holds (id, subject_id, reason, until, created_at, created_by, released_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL)",
            )
            .and_then(|mut st| {
                st.execute(params![
                    hold.id,
                    hold.subject_id,
                    hold.reason,
                    hold.until,
                    hold.created_at_micros,
                    hold.created_by
                ])
            })
            .map_err(backend)?;
            append(tx, chain, audit)
        })
        .await
    }

    async fn holds(&self, subject: &str) -> StoreResult<Vec<HoldRecord>> {
        let subject = subject.to_owned();
        self.read(move |conn| all(conn, sql::HOLDS_OF, [subject], |r| rows::hold(r)))
            .await
    }

    async fn release_hold(
        &self,
        subject: &str,
        hold_id: &str,
        at_micros: i64,
        audit: AuditDraft,
    ) -> StoreResult<AuditRecord> {
        let (subject, hold_id) = (subject.to_owned(), hold_id.to_owned());
        self.write(move |tx, chain| {
            let changed = tx
                .prepare_cached(
                    "UPDATE holds SET released_at = ?3 WHERE id = ?1 AND subject_id = ?2 AND released_at IS NULL",
                )
                .and_then(|mut st| st.execute(params![hold_id, subject, at_micros]))
                .map_err(backend)?;
            if changed == 0 {
                return Err(StoreError::NotFound);
            }
            append(tx, chain, audit)
        })
        .await
    }

    async fn insert_request(
        &self,
        r: RequestRecord,
        audit: AuditDraft,
    ) -> StoreResult<AuditRecord> {
        self.write(move |tx, chain| {
            if !subject_exists(tx, &r.subject_id)? {
                return Err(StoreError::NotFound);
            }
            tx.prepare_cached(sql::INSERT_REQUEST.lite)
                .and_then(|mut st| {
                    st.execute(params![
                        r.id,
                        r.subject_id,
                        r.kind,
                        r.status,
                        r.details,
                        r.received_at_micros,
                        r.due_at_micros,
                        r.updated_at_micros,
                        r.refusal_reason,
                        r.refusal_text,
                        r.closed_at_micros,
                        r.received_by
                    ])
                })
                .map_err(backend)?;
            append(tx, chain, audit)
        })
        .await
    }

    async fn update_request(
        &self,
        t: RequestTransition,
        audit: AuditDraft,
    ) -> StoreResult<AuditRecord> {
        self.write(move |tx, chain| {
            let current: Option<String> = tx
                .prepare_cached("SELECT status FROM requests WHERE id = ?1")
                .and_then(|mut st| st.query_row([&t.id], |r| r.get(0)).optional())
                .map_err(backend)?;
            match current {
                None => return Err(StoreError::NotFound),
                Some(s) if s != t.from => {
                    return Err(StoreError::Conflict(format!(
                        "request {} is {s}, no longer {}",
                        t.id, t.from
                    )))
                }
                Some(_) => {}
            }
            tx.prepare_cached(
                "UPDATE requests SET status = ?2, updated_at = ?3, refusal_reason = ?4, refusal_text = ?5,
                        closed_at = CASE WHEN ?6 THEN ?3 ELSE NULL END
                 WHERE id = ?1",
            )
            .and_then(|mut st| {
                st.execute(params![
                    t.id,
                    t.to,
                    t.at_micros,
                    t.refusal_reason,
                    t.refusal_text,
                    t.closed
                ])
            })
            .map_err(backend)?;
            append(tx, chain, audit)
        })
        .await
    }

    async fn load_request(&self, id: &str) -> StoreResult<Option<RequestRecord>> {
        let id = id.to_owned();
        self.read(move |conn| first(conn, sql::REQUEST_BY_ID, [id], |r| rows::request(r)))
            .await
    }

    async fn list_requests(
        &self,
        filter: RequestFilter,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<RequestRecord>> {
        let after = after.map(str::to_owned);
        self.read(move |conn| {
            all(
                conn,
                sql::LIST_REQUESTS,
                params![
                    filter.open_only,
                    filter.status,
                    filter.subject,
                    filter.overdue_at,
                    after,
                    limit as i64
                ],
                |r| rows::request(r),
            )
        })
        .await
    }

    async fn count_requests(&self, now_micros: i64) -> StoreResult<(u64, u64)> {
        self.read(move |conn| {
            first(conn, sql::COUNT_REQUESTS, [now_micros], |r| {
                Ok((r.col::<i64>(0)? as u64, r.col::<i64>(1)? as u64))
            })?
            .ok_or_else(|| StoreError::Backend("no count".into()))
        })
        .await
    }

    async fn subject_purposes(&self, id: &str) -> StoreResult<Vec<(String, i64)>> {
        let id = id.to_owned();
        self.read(move |conn| purposes_of(conn, &id)).await
    }

    async fn end_relationship(
        &self,
        id: &str,
        at_micros: i64,
        audit: AuditDraft,
    ) -> StoreResult<AuditRecord> {
        let id = id.to_owned();
        self.write(move |tx, chain| {
            let changed = tx
                .prepare_cached(
                    "UPDATE subjects SET relationship_ended_at = COALESCE(relationship_ended_at, ?2) WHERE id = ?1",
                )
                .and_then(|mut st| st.execute(params![id, at_micros]))
                .map_err(backend)?;
            if changed == 0 {
                return Err(StoreError::NotFound);
            }
            append(tx, chain, audit)
        })
        .await
    }

    async fn retention_page(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<RetentionSubject>> {
        let after = after.unwrap_or("").to_owned();
        self.read(move |conn| {
            let heads: Vec<(String, Option<i64>)> = all(
                conn,
                sql::RETENTION_HEADS,
                params![after, limit as i64],
                |r| Ok((r.col(0)?, r.col(1)?)),
            )?;
            let mut out = Vec::with_capacity(heads.len());
            for (id, ended) in heads {
                out.push(RetentionSubject {
                    purposes: purposes_of(conn, &id)?,
                    categories: all(conn, sql::CATEGORIES_OF, [&id], |r| rows::string(r))?,
                    holds_until: all(conn, sql::HOLDS_UNTIL, [&id], |r| rows::string(r))?,
                    relationship_ended_micros: ended,
                    id,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn erase_categories(
        &self,
        id: &str,
        categories: Vec<String>,
        expired_purposes: Vec<String>,
        audit: AuditDraft,
    ) -> StoreResult<AuditRecord> {
        let id = id.to_owned();
        self.write(move |tx, chain| {
            if !subject_exists(tx, &id)? {
                return Err(StoreError::NotFound);
            }
            for c in &categories {
                for sql in [
                    "DELETE FROM subject_fields WHERE subject_id = ?1 AND category = ?2",
                    "DELETE FROM blind_index WHERE subject_id = ?1 AND category = ?2",
                    "DELETE FROM unique_index WHERE subject_id = ?1 AND category = ?2",
                ] {
                    tx.prepare_cached(sql)
                        .and_then(|mut st| st.execute(params![id, c]))
                        .map_err(backend)?;
                }
            }
            for p in &expired_purposes {
                tx.prepare_cached(
                    "DELETE FROM subject_purposes WHERE subject_id = ?1 AND purpose = ?2",
                )
                .and_then(|mut st| st.execute(params![id, p]))
                .map_err(backend)?;
            }
            append(tx, chain, audit)
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
        let id = id.to_owned();
        self.write(move |tx, chain| {
            shred(tx, chain, &id, at_micros, "retention: de-identified")?;
            tx.prepare_cached(
                "INSERT INTO deidentified (id, purposes, attributes, created_on) VALUES (?1, ?2, ?3, ?4)",
            )
            .and_then(|mut st| {
                st.execute(params![
                    record.id,
                    record.purposes.join(","),
                    record.attributes,
                    record.created_on
                ])
            })
            .map_err(backend)?;
            chain.checkpoint = true;
            append(tx, chain, audit)
        })
        .await
    }

    async fn deidentified_count(&self) -> StoreResult<u64> {
        self.read(|conn| {
            first(conn, sql::DEIDENTIFIED_COUNT, [], |r| r.col::<i64>(0))
                .map(|n| n.unwrap_or(0) as u64)
        })
        .await
    }
}

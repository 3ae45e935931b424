//! SQLite's executor for the shared operations (`crate::ops`), and the subject loader.

use amanah_core::audit::{AuditDraft, AuditRecord};
use amanah_crypto::WrappedKey;
use rusqlite::{Connection, OptionalExtension};

use super::*;
use crate::exec::{Exec, Writer};
use crate::{NewSubject, StoreError, StoreResult, StoredSubject};

/// A connection inside the writer's transaction (with the audit chain when the job appends).
/// Every statement completes before its method returns: an operation over it never waits.
pub(super) struct Lite<'c> {
    conn: &'c Connection,
    chain: Option<&'c mut Chain>,
}

impl<'c> Lite<'c> {
    pub(super) fn new(conn: &'c Connection) -> Self {
        Lite { conn, chain: None }
    }

    pub(super) fn writer(conn: &'c Connection, chain: &'c mut Chain) -> Self {
        Lite {
            conn,
            chain: Some(chain),
        }
    }
}

/// Every row of a query, each read by `map`.
pub(super) fn rows_of<T>(
    conn: &Connection,
    q: Sql,
    args: &[Value<'_>],
    map: Map<T>,
) -> StoreResult<Vec<T>> {
    let mut st = conn.prepare_cached(q.lite).map_err(backend)?;
    let mut rows = st
        .query(rusqlite::params_from_iter(args))
        .map_err(backend)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next().map_err(backend)? {
        out.push(map(r)?);
    }
    Ok(out)
}

impl Exec for Lite<'_> {
    type Error = StoreError;

    async fn execute(&mut self, q: Sql, args: &[Value<'_>]) -> StoreResult<u64> {
        let mut st = self.conn.prepare_cached(q.lite).map_err(backend)?;
        let n = st
            .execute(rusqlite::params_from_iter(args))
            .map_err(backend)?;
        Ok(n as u64)
    }

    async fn query<T>(&mut self, q: Sql, args: &[Value<'_>], map: Map<T>) -> StoreResult<Vec<T>> {
        rows_of(self.conn, q, args, map)
    }

    async fn execute_all(&mut self, batch: &[(Sql, Vec<Value<'_>>)]) -> StoreResult<Vec<u64>> {
        let mut out = Vec::with_capacity(batch.len());
        for (q, args) in batch {
            out.push(self.execute(*q, args).await?);
        }
        Ok(out)
    }
}

impl Writer for Lite<'_> {
    async fn append(&mut self, entry: &AuditDraft) -> StoreResult<AuditRecord> {
        match self.chain.as_deref_mut() {
            Some(chain) => append(self.conn, chain, entry.clone()),
            None => Err(StoreError::Backend("this job has no audit chain".into())),
        }
    }

    fn keys_erased(&mut self) {
        if let Some(chain) = self.chain.as_deref_mut() {
            chain.checkpoint = true;
        }
    }
}

/// Inserts a new subject's rows (no audit entry); the unique categories another subject
/// already holds (the bulk insert reports them all).
pub(super) fn insert_new_subject(tx: &Connection, s: &NewSubject) -> StoreResult<Vec<String>> {
    ready(ops::insert_new_subject(&mut Lite::new(tx), s))
}

pub(super) fn load_subjects(conn: &Connection, ids: &[String]) -> StoreResult<Vec<StoredSubject>> {
    let mut out = Vec::with_capacity(ids.len());
    // A subject whose key is gone (erased, or a restored data backup that predates an
    // erasure) has no readable data: it is not loaded at all.
    let mut head = conn
        .prepare_cached(
            "SELECT k.kek_id, k.key_version, k.wrapped_key, s.created_at, s.restricted_at
             FROM subjects s JOIN keys.data_keys k ON k.subject_id = s.id WHERE s.id = ?1",
        )
        .map_err(backend)?;
    let mut fields = conn
        .prepare_cached("SELECT category, ciphertext FROM subject_fields WHERE subject_id = ?1")
        .map_err(backend)?;
    let mut purposes = conn
        .prepare_cached(
            "SELECT purpose FROM subject_purposes WHERE subject_id = ?1 ORDER BY collected_at, purpose",
        )
        .map_err(backend)?;
    for id in ids {
        let Some((kek_id, version, ciphertext, created, restricted)) = head
            .query_row([id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, Option<i64>>(4)?,
                ))
            })
            .optional()
            .map_err(backend)?
        else {
            continue;
        };
        let values = fields
            .query_map([id], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(backend)?;
        let enrolled = purposes
            .query_map([id], |r| r.get::<_, String>(0))
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(backend)?;
        out.push(StoredSubject {
            id: id.clone(),
            wrapped_key: WrappedKey {
                kek_id,
                version: version as u32,
                ciphertext,
            },
            created_at_micros: created,
            restricted_since_micros: restricted,
            purposes: enrolled,
            fields: values,
        });
    }
    Ok(out)
}

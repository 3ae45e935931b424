//! SQLite's executor for the shared operations (`crate::ops`), and the subject loader.

use amanah_core::audit::{AuditDraft, AuditRecord};
use amanah_crypto::WrappedKey;
use rusqlite::{params, Connection, OptionalExtension};

use super::*;
use crate::exec::{Exec, KeyWrite, Keyed, Writer};
use crate::{sealed_fields, NewSubject, StoreResult, StoredSubject};

/// A connection inside the writer's transaction, with the audit chain and the key changes the
/// batch stages. Every statement completes before its method returns: an operation over it
/// never waits.
pub(super) struct Lite<'c> {
    conn: &'c Connection,
    pub(super) chain: &'c mut Chain,
    /// Statements held for a whole bulk insert, or `None`: each statement from the
    /// connection's cache.
    held: Option<Held<'c>>,
}

impl<'c> Lite<'c> {
    pub(super) fn writer(conn: &'c Connection, chain: &'c mut Chain) -> Self {
        Lite {
            conn,
            chain,
            held: None,
        }
    }

    /// For a bulk insert: every statement prepared once and held until the bulk ends, instead
    /// of looked up in the connection's cache (which hashes its text) at each row.
    pub(super) fn bulk(conn: &'c Connection, chain: &'c mut Chain) -> Self {
        Lite {
            conn,
            chain,
            held: Some(Held(Vec::new())),
        }
    }

    /// Runs statement `q` with `params`: the held one, or the connection's cached one.
    fn run(&mut self, q: &'static str, params: impl rusqlite::Params) -> StoreResult<usize> {
        match &mut self.held {
            Some(held) => held.get(self.conn, q)?.execute(params),
            None => self
                .conn
                .prepare_cached(q)
                .and_then(|mut st| st.execute(params)),
        }
        .map_err(backend)
    }

    /// Inserts a new subject's rows (no audit entry) and stages its data key; the unique
    /// categories another subject already holds (the bulk insert reports them all).
    pub(super) fn insert_new(&mut self, s: &NewSubject) -> StoreResult<Vec<String>> {
        ready(ops::insert_new_subject(self, s))
    }

    /// Appends one entry to the chain (see [`append`]).
    pub(super) fn append_entry(&mut self, entry: AuditDraft) -> StoreResult<AuditRecord> {
        let (chain, held) = (&mut *self.chain, &mut self.held);
        match held {
            Some(held) => append_on(
                held.get(self.conn, sql::writes::INSERT_AUDIT.lite)?,
                chain,
                entry,
            ),
            None => append(self.conn, chain, entry),
        }
    }
}

/// Prepared statements held by a bulk insert, found by the address of their text (the
/// statements are `'static` constants): a few, so a scan.
pub(super) struct Held<'c>(Vec<(&'static str, rusqlite::Statement<'c>)>);

impl<'c> Held<'c> {
    fn get(
        &mut self,
        conn: &'c Connection,
        q: &'static str,
    ) -> StoreResult<&mut rusqlite::Statement<'c>> {
        let i = match self.0.iter().position(|(k, _)| std::ptr::eq(*k, q)) {
            Some(i) => i,
            None => {
                self.0.push((q, conn.prepare(q).map_err(backend)?));
                self.0.len() - 1
            }
        };
        Ok(&mut self.0[i].1)
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
        let n = self.run(q.lite, rusqlite::params_from_iter(args))?;
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

/// Whether the key store holds `subject`'s key under `kek` at `version` (`None`: any).
const KEY_HELD: &str = "SELECT 1 FROM keys.data_keys
     WHERE subject_id = ?1 AND (?2 IS NULL OR (kek_id = ?2 AND key_version = ?3))";

impl Writer for Lite<'_> {
    async fn append(&mut self, entry: &AuditDraft) -> StoreResult<AuditRecord> {
        self.append_entry(entry.clone())
    }

    fn audit_key(&self) -> &AuditKey {
        &self.chain.key
    }

    /// The writer's connection attaches the key store read-only: every key change is staged
    /// (`commit::StagedKeys`) and committed on the key store's own connection, first. The
    /// count is of the keys the change will find, committed or staged by this batch.
    fn key_write<'a>(&mut self, change: KeyWrite<'a>) -> StoreResult<Keyed<'a>> {
        let held = |subject: &str, under: Option<(&str, u32)>| {
            let (kek, version) = under.unzip();
            self.conn
                .prepare_cached(KEY_HELD)
                .and_then(|mut st| st.exists(params![subject, kek, version.map(i64::from)]))
                .map_err(backend)
        };
        let keys = &mut self.chain.keys;
        let n = match change {
            KeyWrite::Insert { subject, key } => {
                keys.insert(subject, key);
                1
            }
            KeyWrite::Delete { subject } => {
                let found =
                    keys.inserts(subject) || (held(subject, None)? && !keys.deletes(subject));
                keys.delete(subject);
                u64::from(found)
            }
            KeyWrite::Rewrap {
                subject,
                from_kek,
                key,
            } => {
                // Staged only while the committed key is still the one read and no earlier
                // job of the batch destroys it; the key store applies it conditionally all
                // the same.
                if held(subject, Some((from_kek, key.version)))? && !keys.deletes(subject) {
                    keys.rewrap(subject, from_kek, key.version, key);
                    1
                } else {
                    0
                }
            }
        };
        Ok(Keyed::Staged(n))
    }

    fn keys_erased(&mut self) {
        self.chain.checkpoint = true;
    }
}

pub(super) fn load_subjects(conn: &Connection, ids: &[String]) -> StoreResult<Vec<StoredSubject>> {
    let mut out = Vec::with_capacity(ids.len());
    // A subject whose key is gone (erased, or a restored data backup that predates an
    // erasure) has no readable data: it is not loaded at all.
    let mut head = conn
        .prepare_cached(
            "SELECT k.kek_id, k.key_version, k.wrapped_key, s.created_at, s.restricted_at,
                    s.fields
             FROM subjects s JOIN keys.data_keys k ON k.subject_id = s.id WHERE s.id = ?1",
        )
        .map_err(backend)?;
    let mut purposes = conn
        .prepare_cached(
            "SELECT purpose FROM subject_purposes WHERE subject_id = ?1 ORDER BY collected_at, purpose",
        )
        .map_err(backend)?;
    for id in ids {
        let Some((kek_id, version, ciphertext, created, restricted, values)) = head
            .query_row([id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, Option<i64>>(4)?,
                    sealed_fields::decode(r.get_ref(5)?.as_blob()?),
                ))
            })
            .optional()
            .map_err(backend)?
        else {
            continue;
        };
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

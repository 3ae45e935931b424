//! The embedded SQLite backend.
//!
//! - Two files: the data file and the key store (data keys only, attached as `keys`), both in
//!   WAL mode. SQLite cannot commit the two atomically across a crash, so a batch commits the
//!   key store first, on disk, then the data file (`commit.rs`); recovery at open
//!   (`recovery.rs`) removes what a crash between the two leaves: keys without rows, rows
//!   without a key. A commit is on disk before it is acknowledged: the writer commits the data
//!   file with `synchronous = NORMAL` (no fsync inside SQLite) and hands the batch's replies to
//!   a syncer thread, which fsyncs the data WAL and only then replies. One fsync covers every
//!   batch committed before it started, and the writer runs the next batch while the disk syncs
//!   (pipelined group commit). A reader may see a batch a few milliseconds before it is
//!   durable; no writer is told it succeeded before.
//! - One writer thread owns the only write connection and commits many queued jobs in one
//!   transaction (group commit). Each job runs in its own savepoint, so one failing job does
//!   not undo its neighbours.
//! - Checkpoints: a checkpointer thread with its own connection copies the WAL back into the
//!   database (`PASSIVE`) once it passes [`CHECKPOINT_BYTES`], without stopping the writer.
//!   When it is done the writer runs a short checkpoint of the few frames committed meanwhile,
//!   so the WAL is fully copied and SQLite reuses it from its start instead of growing.
//! - The audit chain is appended by that writer only, so it is serialized by construction; the
//!   signed head is updated once per batch, in the same transaction.
//! - Reads run on a small pool of reader threads, each with its own connection.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use amanah_core::audit::{AuditDraft, AuditRecord};
use amanah_crypto::audit::{AuditKey, GENESIS};
use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::oneshot;

use crate::integrity;
use crate::sql::{self, Sql};
use crate::{
    rows, ApiKeyRecord, BulkInsert, ConsentRecord, ConsentSelection, NewSubject, PolicyRecord,
    RelationRecord, Store, StoreError, StoreResult, StoredSubject, SubjectUpdate,
};

/// 1: subjects, fields, indexes, audit, keys, policies. 2: consents, relations. 3: data keys in
/// their own file (the key store), restriction, relationship end, holds, requests, erasures,
/// de-identified records. 4: disclosures and their subjects, the breach register. 5: the holder
/// of each API key. 6: lists stored as JSON arrays (lossless), and a signed genesis head from
/// the start.
/// 7: MACs on the rows that grant access (API keys, policy versions).
const SCHEMA_VERSION: i64 = 7;
const MAX_BATCH: usize = 512;
const READERS: usize = 4;
/// WAL size past which the checkpointer copies it back into the database.
const CHECKPOINT_BYTES: u64 = 16 * 1024 * 1024;
/// Page cache of the writer (KiB).
const WRITER_CACHE_KIB: i64 = 8 * 1024;

pub(crate) fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// Every row of a shared query, each read by `map`.
fn all<T>(
    conn: &Connection,
    q: Sql,
    params: impl rusqlite::Params,
    map: impl Fn(&rusqlite::Row<'_>) -> StoreResult<T>,
) -> StoreResult<Vec<T>> {
    let mut st = conn.prepare_cached(q.lite).map_err(backend)?;
    let mut rows = st.query(params).map_err(backend)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next().map_err(backend)? {
        out.push(map(r)?);
    }
    Ok(out)
}

/// The first row of a shared query, read by `map`.
fn first<T>(
    conn: &Connection,
    q: Sql,
    params: impl rusqlite::Params,
    map: impl Fn(&rusqlite::Row<'_>) -> StoreResult<T>,
) -> StoreResult<Option<T>> {
    let mut st = conn.prepare_cached(q.lite).map_err(backend)?;
    let mut rows = st.query(params).map_err(backend)?;
    rows.next().map_err(backend)?.map(map).transpose()
}

fn channel_closed<T>(_: T) -> StoreError {
    StoreError::Backend("the storage thread has stopped".into())
}

mod accountability;
mod backup;
mod commit;
mod recovery;
mod rights;
mod rotation;
mod schema;
mod writes;

use commit::*;
pub use schema::key_store_path;
use schema::*;
use writes::*;

pub use backup::{inspect_backup, restore_data, restore_key_store, BackupKind, Reconciled};

/// The in-memory end of the audit chain, owned by the writer thread.
struct Chain {
    key: AuditKey,
    seq: u64,
    hash: [u8; 32],
    /// A job erased key material: after the commit, checkpoint and truncate both WAL files so
    /// no copy of the destroyed pages stays in them.
    checkpoint: bool,
    /// Key-store changes staged by the batch's jobs, committed before the data file.
    keys: StagedKeys,
}

type WriteFn = Box<dyn FnOnce(&Connection, &mut Chain) -> StoreResult<Vec<AuditRecord>> + Send>;
type ReadFn = Box<dyn FnOnce(&Connection) + Send>;

enum WriteJob {
    /// A small job, committed together with its queued neighbours (group commit).
    One {
        run: WriteFn,
        reply: oneshot::Sender<StoreResult<Vec<AuditRecord>>>,
    },
    /// A bulk insert: its own transaction, fed from a channel.
    Bulk {
        input: tokio::sync::mpsc::Receiver<BulkInsert>,
        reply: oneshot::Sender<StoreResult<u64>>,
    },
}

/// The SQLite store. Cheap to clone; threads stop when the last clone is dropped.
#[derive(Clone)]
pub struct SqliteStore {
    writer: flume::Sender<WriteJob>,
    readers: flume::Sender<ReadFn>,
    path: Arc<PathBuf>,
    /// Checks the MACs of the rows that grant access (`integrity`).
    records: Arc<AuditKey>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and starts its threads.
    pub fn open(path: &Path, audit_key: AuditKey) -> StoreResult<Self> {
        // SQLite gives its WAL and shared-memory files the mode of the database file.
        create_private(path)?;
        create_private(&key_store_path(path))?;
        migrate(&mut open_connection(path, Role::Setup)?, &audit_key)?;
        let mut conn = open_connection(path, Role::Writer)?;
        let records = Arc::new(audit_key.clone());
        let mut keys = KeyStore::open(path)?;
        // Where the writer starts; every write transaction re-reads the signed head anyway and
        // refuses to append when it is missing or does not verify.
        let (seq, hash) = match read_head(&conn)? {
            Some((seq, hash, _)) => (seq, hash),
            None => (0, GENESIS),
        };
        let mut chain = Chain {
            key: audit_key,
            seq,
            hash,
            checkpoint: false,
            keys: StagedKeys::default(),
        };
        // What a crash left half-committed across the two files is settled before anything
        // else runs; a failure is retried by the writer before its first batch.
        let unsettled = match recovery::recover(&mut conn, &mut keys, &mut chain) {
            Ok(_) => false,
            Err(e) => {
                tracing::error!(error = %e, "crash recovery failed; retried before the first write");
                true
            }
        };
        let spawn_error = |e: std::io::Error| StoreError::Backend(e.to_string());
        let files = Files::new(path);
        let (ctx, crx) = flume::bounded::<()>(1);
        let caught_up = Arc::new(AtomicBool::new(false));
        let checkpointer = open_connection(path, Role::Checkpointer)?;
        let (wal, done) = (files.data_wal().to_owned(), caught_up.clone());
        std::thread::Builder::new()
            .name("amanah-sqlite-checkpointer".into())
            .spawn(move || checkpoint_loop(checkpointer, &wal, crx, &done))
            .map_err(spawn_error)?;
        let (stx, srx) = flume::unbounded::<Deliver>();
        let sync_files = files.clone();
        let unsynced = Arc::new(Unsynced::default());
        let counter = unsynced.clone();
        std::thread::Builder::new()
            .name("amanah-sqlite-syncer".into())
            .spawn(move || syncer_loop(&sync_files, srx, &counter))
            .map_err(spawn_error)?;
        let (wtx, wrx) = flume::unbounded::<WriteJob>();
        let writer = Writer {
            conn,
            chain,
            synced: stx,
            unsynced,
            checkpoint: ctx,
            caught_up,
            files,
            keys,
            unsettled,
        };
        std::thread::Builder::new()
            .name("amanah-sqlite-writer".into())
            .spawn(move || writer_loop(writer, wrx))
            .map_err(spawn_error)?;
        let (rtx, rrx) = flume::unbounded::<ReadFn>();
        for i in 0..READERS {
            let conn = open_connection(path, Role::Reader)?;
            let rrx = rrx.clone();
            std::thread::Builder::new()
                .name(format!("amanah-sqlite-reader-{i}"))
                .spawn(move || {
                    while let Ok(job) = rrx.recv() {
                        job(&conn);
                    }
                })
                .map_err(|e| StoreError::Backend(e.to_string()))?;
        }
        Ok(SqliteStore {
            writer: wtx,
            readers: rtx,
            path: Arc::new(path.to_owned()),
            records,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn write(
        &self,
        run: impl FnOnce(&Connection, &mut Chain) -> StoreResult<AuditRecord> + Send + 'static,
    ) -> StoreResult<AuditRecord> {
        let mut records = self
            .write_many(move |tx, chain| run(tx, chain).map(|r| vec![r]))
            .await?;
        records
            .pop()
            .ok_or_else(|| StoreError::Backend("no audit record".into()))
    }

    /// A write whose job also computes a value, handed back only if the batch commits.
    async fn write_with<T: Send + 'static>(
        &self,
        run: impl FnOnce(&Connection, &mut Chain) -> StoreResult<(T, AuditRecord)> + Send + 'static,
    ) -> StoreResult<(T, AuditRecord)> {
        let slot = Arc::new(std::sync::Mutex::new(None));
        let filled = slot.clone();
        let record = self
            .write(move |tx, chain| {
                let (value, record) = run(tx, chain)?;
                if let Ok(mut s) = filled.lock() {
                    *s = Some(value);
                }
                Ok(record)
            })
            .await?;
        let value = slot
            .lock()
            .ok()
            .and_then(|mut s| s.take())
            .ok_or_else(|| StoreError::Backend("the write produced no result".into()))?;
        Ok((value, record))
    }

    async fn write_many(
        &self,
        run: impl FnOnce(&Connection, &mut Chain) -> StoreResult<Vec<AuditRecord>> + Send + 'static,
    ) -> StoreResult<Vec<AuditRecord>> {
        let (reply, rx) = oneshot::channel();
        self.writer
            .send_async(WriteJob::One {
                run: Box::new(run),
                reply,
            })
            .await
            .map_err(channel_closed)?;
        rx.await.map_err(channel_closed)?
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let (reply, rx) = oneshot::channel();
        let job: ReadFn = Box::new(move |conn| {
            let _ = reply.send(f(conn));
        });
        self.readers.send_async(job).await.map_err(channel_closed)?;
        rx.await.map_err(channel_closed)?
    }
}

/// Schema 3: data keys move to the key store (attached as `keys`), so that backups of the data
/// file hold ciphertext only and erasing a key there shreds the person everywhere.
#[async_trait]
impl Store for SqliteStore {
    async fn insert_subject(&self, s: NewSubject, audit: AuditDraft) -> StoreResult<AuditRecord> {
        self.write(move |tx, chain| {
            if let Some(category) = insert_new_subject(tx, &mut chain.keys, &s)?
                .into_iter()
                .next()
            {
                return Err(StoreError::Unique { category });
            }
            append(tx, chain, audit)
        })
        .await
    }

    async fn insert_subjects(
        &self,
        input: tokio::sync::mpsc::Receiver<BulkInsert>,
    ) -> StoreResult<u64> {
        let (reply, rx) = oneshot::channel();
        self.writer
            .send_async(WriteJob::Bulk { input, reply })
            .await
            .map_err(channel_closed)?;
        rx.await.map_err(channel_closed)?
    }

    async fn update_subject(
        &self,
        u: SubjectUpdate,
        audit: AuditDraft,
    ) -> StoreResult<AuditRecord> {
        self.write(move |tx, chain| {
            if !subject_exists(tx, &u.id)? {
                return Err(StoreError::NotFound);
            }
            write_fields(tx, &u.id, u.at_micros, &u.fields)?;
            if let Some(purpose) = &u.enroll {
                record_purpose(tx, &u.id, purpose, u.at_micros)?;
            }
            append(tx, chain, audit)
        })
        .await
    }

    async fn load_subject(&self, id: &str) -> StoreResult<Option<StoredSubject>> {
        let id = id.to_owned();
        self.read(move |conn| Ok(load_subjects(conn, &[id])?.pop()))
            .await
    }

    async fn find_subjects(
        &self,
        category: &str,
        term: [u8; 32],
        limit: usize,
    ) -> StoreResult<Vec<StoredSubject>> {
        let category = category.to_owned();
        self.read(move |conn| {
            // A unique term is in `unique_index` (older stores also copied it to
            // `blind_index`); other terms are in `blind_index`. Two index probes, merged here.
            let mut ids = Vec::new();
            for sql in [
                "SELECT subject_id FROM unique_index WHERE category = ?1 AND term = ?2 LIMIT ?3",
                "SELECT subject_id FROM blind_index WHERE category = ?1 AND term = ?2 ORDER BY subject_id LIMIT ?3",
            ] {
                let found = conn
                    .prepare_cached(sql)
                    .and_then(|mut st| {
                        st.query_map(params![category, &term[..], limit as i64], |r| r.get::<_, String>(0))
                            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                    })
                    .map_err(backend)?;
                ids.extend(found);
            }
            ids.sort_unstable();
            ids.dedup();
            ids.truncate(limit);
            load_subjects(conn, &ids)
        })
        .await
    }

    async fn insert_consent(
        &self,
        consent: ConsentRecord,
        audit: AuditDraft,
    ) -> StoreResult<AuditRecord> {
        self.write(move |tx, chain| {
            let guardian_missing = match &consent.guardian_subject_id {
                Some(g) => !subject_exists(tx, g)?,
                None => false,
            };
            if !subject_exists(tx, &consent.subject_id)? || guardian_missing {
                return Err(StoreError::NotFound);
            }
            write_consent(tx, &consent)?;
            if consent.granted {
                // A consent is a ground of its own: the subject is enrolled in its purpose.
                record_purpose(tx, &consent.subject_id, &consent.purpose, consent.at_micros)?;
            }
            append(tx, chain, audit)
        })
        .await
    }

    async fn consents(&self, subject: &str) -> StoreResult<Vec<ConsentRecord>> {
        let subject = subject.to_owned();
        self.read(move |conn| all(conn, sql::CONSENTS_OF, [subject], |r| rows::consent(r)))
            .await
    }

    async fn select_consents(
        &self,
        purpose: &str,
        selection: ConsentSelection,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<ConsentRecord>> {
        let purpose = purpose.to_owned();
        let after = after.unwrap_or("").to_owned();
        let limit = limit as i64;
        self.read(move |conn| match &selection {
            ConsentSelection::StaleFor { current_version } => all(
                conn,
                sql::STALE_CONSENTS,
                params![purpose, after, current_version, limit],
                |r| rows::consent(r),
            ),
            ConsentSelection::ContactableOn {
                current_version,
                channel,
            } => all(
                conn,
                sql::CONTACTABLE_CONSENTS,
                params![purpose, after, current_version, channel, limit],
                |r| rows::consent(r),
            ),
        })
        .await
    }

    async fn insert_relation(
        &self,
        relation: RelationRecord,
        audit: AuditDraft,
    ) -> StoreResult<AuditRecord> {
        self.write(move |tx, chain| {
            if !subject_exists(tx, &relation.subject_id)?
                || !subject_exists(tx, &relation.related_subject_id)?
            {
                return Err(StoreError::NotFound);
            }
            tx.prepare_cached(
                "INSERT INTO relations (id, subject_id, kind, related_subject_id, evidence, evidence_sha256,
                                        recorded_by, at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .and_then(|mut st| {
                st.execute(params![
                    relation.id,
                    relation.subject_id,
                    relation.kind,
                    relation.related_subject_id,
                    relation.evidence,
                    relation.evidence_sha256,
                    relation.recorded_by,
                    relation.at_micros,
                ])
            })
            .map_err(backend)?;
            append(tx, chain, audit)
        })
        .await
    }

    async fn relations(&self, subject: &str) -> StoreResult<Vec<RelationRecord>> {
        let subject = subject.to_owned();
        self.read(move |conn| all(conn, sql::RELATIONS_OF, [subject], |r| rows::relation(r)))
            .await
    }

    async fn append_audit(&self, entries: Vec<AuditDraft>) -> StoreResult<Vec<AuditRecord>> {
        self.write_many(move |tx, chain| {
            entries.into_iter().map(|e| append(tx, chain, e)).collect()
        })
        .await
    }

    async fn audit_entries(
        &self,
        subject: Option<&str>,
        after: u64,
        limit: usize,
    ) -> StoreResult<Vec<AuditRecord>> {
        let subject = subject.map(str::to_owned);
        let (after, limit) = (after as i64, limit as i64);
        self.read(move |conn| match subject {
            Some(s) => all(
                conn,
                sql::AUDIT_OF_SUBJECT_AFTER,
                params![s, after, limit],
                |r| rows::audit(r),
            ),
            None => all(conn, sql::AUDIT_AFTER, params![after, limit], |r| {
                rows::audit(r)
            }),
        })
        .await
    }

    async fn audit_head(&self) -> StoreResult<Option<(u64, [u8; 32], [u8; 32])>> {
        self.read(read_head).await
    }

    async fn insert_api_key(
        &self,
        key: ApiKeyRecord,
        audit: AuditDraft,
    ) -> StoreResult<AuditRecord> {
        self.write(move |tx, chain| {
            let mac = integrity::api_key_mac(&chain.key, &key);
            tx.prepare_cached(sql::INSERT_API_KEY.lite)
                .and_then(|mut st| {
                    st.execute(params![
                        key.id,
                        key.name,
                        key.role,
                        key.token_hash,
                        key.created_at_micros,
                        key.revoked_at_micros,
                        key.holder,
                        &mac[..]
                    ])
                })
                .map_err(backend)?;
            append(tx, chain, audit)
        })
        .await
    }

    async fn api_key_by_hash(&self, token_hash: &str) -> StoreResult<Option<ApiKeyRecord>> {
        let token_hash = token_hash.to_owned();
        let key = self.records.clone();
        self.read(move |conn| {
            let row = first(conn, sql::API_KEY_BY_HASH, [token_hash], |r| {
                rows::api_key(r)
            })?;
            Ok(row.and_then(|row| integrity::checked_api_key(&key, row)))
        })
        .await
    }

    async fn list_api_keys(&self) -> StoreResult<Vec<ApiKeyRecord>> {
        let key = self.records.clone();
        self.read(move |conn| {
            let rows = all(conn, sql::API_KEYS, [], |r| rows::api_key(r))?;
            Ok(rows
                .into_iter()
                .filter_map(|row| integrity::checked_api_key(&key, row))
                .collect())
        })
        .await
    }

    async fn revoke_api_key(
        &self,
        id: &str,
        at_micros: i64,
        audit: AuditDraft,
    ) -> StoreResult<AuditRecord> {
        let id = id.to_owned();
        self.write(move |tx, chain| {
            // Only a genuine, unrevoked row is revoked, and it is sealed again as revoked.
            let row = first(tx, sql::API_KEY_BY_ID, [&id], |r| rows::api_key(r))?
                .and_then(|row| integrity::checked_api_key(&chain.key, row))
                .filter(|k| k.revoked_at_micros.is_none())
                .ok_or(StoreError::NotFound)?;
            let revoked = ApiKeyRecord {
                revoked_at_micros: Some(at_micros),
                ..row
            };
            let mac = integrity::api_key_mac(&chain.key, &revoked);
            let n = tx
                .prepare_cached(sql::REVOKE_API_KEY.lite)
                .and_then(|mut st| st.execute(params![id, at_micros, &mac[..]]))
                .map_err(backend)?;
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            append(tx, chain, audit)
        })
        .await
    }

    async fn insert_policy(
        &self,
        policy: PolicyRecord,
        audit: AuditDraft,
    ) -> StoreResult<AuditRecord> {
        self.write(move |tx, chain| {
            let seq: i64 = tx
                .prepare_cached(sql::INSERT_POLICY.lite)
                .and_then(|mut st| {
                    st.query_row(
                        params![
                            policy.version,
                            policy.source,
                            policy.sha256,
                            policy.applied_at_micros
                        ],
                        |r| r.get(0),
                    )
                })
                .map_err(backend)?;
            let mac = integrity::policy_mac(&chain.key, &PolicyRecord { seq, ..policy });
            tx.prepare_cached(sql::SEAL_POLICY.lite)
                .and_then(|mut st| st.execute(params![seq, &mac[..]]))
                .map_err(backend)?;
            append(tx, chain, audit)
        })
        .await
    }

    async fn store_id(&self) -> StoreResult<Option<String>> {
        self.read(|conn| {
            conn.query_row(
                "SELECT value FROM main.store_meta WHERE key = 'store_id'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn flush(&self) -> StoreResult<()> {
        // An empty job whose commit is followed by the same truncating checkpoint as an erasure.
        self.write_many(|_, chain| {
            chain.checkpoint = true;
            Ok(Vec::new())
        })
        .await
        .map(drop)
    }

    async fn current_policy(&self) -> StoreResult<Option<PolicyRecord>> {
        let key = self.records.clone();
        self.read(
            move |conn| match first(conn, sql::NEWEST_POLICY, [], |r| rows::policy(r))? {
                None => Ok(None),
                Some(row) if integrity::policy_holds(&key, &row) => Ok(Some(row.0)),
                Some(_) => {
                    let rows = all(conn, sql::NEWEST_POLICIES, [], |r| rows::policy(r))?;
                    integrity::current_policy(&key, rows)
                }
            },
        )
        .await
    }
}

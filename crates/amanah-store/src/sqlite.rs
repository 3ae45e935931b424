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
//! - Reads run on a small pool of reader threads, each with its own connection; each job runs
//!   in one read transaction (one snapshot for all its statements).

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use amanah_core::audit::AuditRecord;
use amanah_crypto::audit::{AuditKey, GENESIS};
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension};
use tokio::sync::oneshot;

use crate::exec::{ready, Args, Map, Rows, Step, Value};
use crate::migrations::SCHEMA_VERSION;
use crate::ops::{self, Op};
use crate::sql::{self, Sql};
use crate::{limit, rows, submit, Backend, BulkInsert, StoreError, StoreResult, StoredSubject};
const MAX_BATCH: usize = 512;
const READERS: usize = 4;
/// WAL size past which the checkpointer copies it back into the database.
const CHECKPOINT_BYTES: u64 = 16 * 1024 * 1024;
/// Page cache of the writer (KiB).
const WRITER_CACHE_KIB: i64 = 8 * 1024;

pub(crate) fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
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

mod backup;
mod commit;
mod ledger;
mod recovery;
mod rights;
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
    /// Moves when an API key is revoked, by this process or another (`access`).
    access: Arc<crate::access::AccessEpoch>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and starts its threads.
    pub fn open(path: &Path, audit_key: AuditKey) -> StoreResult<Self> {
        // SQLite gives its WAL and shared-memory files the mode of the database file.
        create_private(path)?;
        create_private(&key_store_path(path))?;
        let access = Arc::new(crate::access::AccessEpoch::open(path)?);
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
            access,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A write job whose closure also computes a value, handed back only if the batch commits.
    async fn write_with<T: Send + 'static>(
        &self,
        run: impl FnOnce(&Connection, &mut Chain) -> StoreResult<(T, AuditRecord)> + Send + 'static,
    ) -> StoreResult<(T, AuditRecord)> {
        let slot = Arc::new(std::sync::Mutex::new(None));
        let filled = slot.clone();
        let mut records = self
            .write_many(move |tx, chain| {
                let (value, record) = run(tx, chain)?;
                if let Ok(mut s) = filled.lock() {
                    *s = Some(value);
                }
                Ok(vec![record])
            })
            .await?;
        let record = records
            .pop()
            .ok_or_else(|| StoreError::Backend("no audit record".into()))?;
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
        let run = Box::new(run);
        submit(&self.writer, |reply| WriteJob::One { run, reply }).await
    }

    /// Runs `f` on a reader thread, in one read transaction (see [`in_snapshot`]).
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        self.on_reader(move |conn| in_snapshot(conn, f)).await
    }

    /// Runs `f` on a reader thread outside any transaction: for a statement that makes its own
    /// (`VACUUM INTO`, the online backups).
    async fn on_reader<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        submit(&self.readers, |reply| -> ReadFn {
            Box::new(move |conn| {
                let _ = reply.send(f(conn));
            })
        })
        .await
    }
}

/// Runs a read job in one read transaction. Its statements then see one snapshot (a subject's
/// key, fields and purposes from the same commit, never a batch committed between two of them),
/// and SQLite checks the WAL index and, when a commit came meanwhile, drops the connection's
/// page cache once per job instead of once per statement. The transaction only reads, so it
/// ends by rolling back.
fn in_snapshot<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> StoreResult<T>,
) -> StoreResult<T> {
    let snapshot = conn.unchecked_transaction().map_err(backend)?;
    f(&snapshot)
}

#[async_trait]
impl Backend for SqliteStore {
    async fn write(&self, op: Op) -> StoreResult<Vec<AuditRecord>> {
        self.write_many(move |tx, chain| ready(ops::apply(&mut Lite::writer(tx, chain), &op)))
            .await
    }

    async fn all<T: Send + 'static>(&self, q: Sql, args: Args<'_>, map: Map<T>) -> Rows<T> {
        let args: Vec<Value<'static>> = args.iter().cloned().map(Value::into_owned).collect();
        self.read(move |conn| rows_of(conn, q, &args, map)).await
    }

    async fn fold<S: Send + 'static>(
        &self,
        q: Sql,
        args: Args<'_>,
        state: S,
        step: Step<S>,
    ) -> StoreResult<S> {
        let args: Vec<Value<'static>> = args.iter().cloned().map(Value::into_owned).collect();
        self.read(move |conn| {
            let mut state = state;
            let mut st = conn.prepare_cached(q.lite).map_err(backend)?;
            let mut rows = st
                .query(rusqlite::params_from_iter(&args))
                .map_err(backend)?;
            while let Some(r) = rows.next().map_err(backend)? {
                if !step(&mut state, r)? {
                    break;
                }
            }
            Ok(state)
        })
        .await
    }

    async fn load_subject(&self, id: &str) -> StoreResult<Option<StoredSubject>> {
        let id = id.to_owned();
        self.read(move |conn| Ok(load_subjects(conn, &[id])?.pop()))
            .await
    }

    async fn find_subjects(&self, category: &str, term: [u8; 32], n: usize) -> Rows<StoredSubject> {
        let category = category.to_owned();
        self.read(move |conn| {
            let args = args![&category, &term, limit(n)];
            let ids = rows_of(conn, sql::SUBJECTS_WITH_TERM, args, rows::string)?;
            load_subjects(conn, &ids)
        })
        .await
    }

    async fn insert_subjects(
        &self,
        input: tokio::sync::mpsc::Receiver<BulkInsert>,
    ) -> StoreResult<u64> {
        submit(&self.writer, |reply| WriteJob::Bulk { input, reply }).await
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

    fn records(&self) -> &AuditKey {
        &self.records
    }

    fn access(&self) -> Option<&crate::access::AccessEpoch> {
        Some(&self.access)
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
}

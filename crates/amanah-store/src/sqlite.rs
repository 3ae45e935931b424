//! The embedded SQLite backend.
//!
//! - WAL mode. A commit is on disk before it is acknowledged: the writer commits with
//!   `synchronous = NORMAL` (no fsync inside SQLite) and hands the batch's replies to a syncer
//!   thread, which fsyncs the WAL file and only then replies. One fsync covers every batch
//!   committed before it started, and the writer runs the next batch while the disk syncs
//!   (pipelined group commit). Other processes (the CLI) use `synchronous = FULL`.
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
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use amanah_core::audit::{canonical_bytes, head_mac, AuditDraft, AuditRecord, Outcome};
use amanah_crypto::audit::{AuditKey, GENESIS};
use amanah_crypto::WrappedKey;
use async_trait::async_trait;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use tokio::sync::oneshot;

use crate::{
    ApiKeyRecord, BulkInsert, FieldWrite, NewSubject, PolicyRecord, Store, StoreError, StoreResult,
    StoredSubject, SubjectUpdate, UniqueConflict,
};

const SCHEMA_VERSION: i64 = 1;
const MAX_BATCH: usize = 512;
const READERS: usize = 4;
/// WAL size past which the checkpointer copies it back into the database.
const CHECKPOINT_BYTES: u64 = 16 * 1024 * 1024;
/// Page cache of the writer (KiB).
const WRITER_CACHE_KIB: i64 = 32 * 1024;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS subjects (
    id TEXT PRIMARY KEY,
    kek_id TEXT NOT NULL,
    key_version INTEGER NOT NULL,
    wrapped_key BLOB NOT NULL,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS subject_fields (
    subject_id TEXT NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
    category TEXT NOT NULL,
    ciphertext BLOB NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (subject_id, category)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS blind_index (
    category TEXT NOT NULL,
    term BLOB NOT NULL,
    subject_id TEXT NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
    PRIMARY KEY (category, term, subject_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS blind_index_by_subject ON blind_index(subject_id, category);
CREATE TABLE IF NOT EXISTS unique_index (
    category TEXT NOT NULL,
    term BLOB NOT NULL,
    subject_id TEXT NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
    PRIMARY KEY (category, term)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS unique_index_by_subject ON unique_index(subject_id, category);
CREATE TABLE IF NOT EXISTS subject_purposes (
    subject_id TEXT NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
    purpose TEXT NOT NULL,
    collected_at INTEGER NOT NULL,
    PRIMARY KEY (subject_id, purpose)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS audit_log (
    seq INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    role TEXT NOT NULL,
    action TEXT NOT NULL,
    purpose TEXT,
    basis TEXT,
    outcome TEXT NOT NULL,
    reason TEXT,
    subject_id TEXT,
    fields TEXT NOT NULL,
    policy_version TEXT NOT NULL,
    hash BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_by_subject ON audit_log(subject_id, seq);
CREATE TABLE IF NOT EXISTS audit_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL,
    hash BLOB NOT NULL,
    mac BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE TABLE IF NOT EXISTS policy_versions (
    seq INTEGER PRIMARY KEY,
    version TEXT NOT NULL,
    source TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    applied_at INTEGER NOT NULL
);
"#;

fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn channel_closed<T>(_: T) -> StoreError {
    StoreError::Backend("the storage thread has stopped".into())
}

/// The in-memory end of the audit chain, owned by the writer thread.
struct Chain {
    key: AuditKey,
    seq: u64,
    hash: [u8; 32],
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
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and starts its threads.
    pub fn open(path: &Path, audit_key: AuditKey) -> StoreResult<Self> {
        let mut conn = open_connection(path, Role::Writer)?;
        migrate(&mut conn)?;
        let (seq, hash) = conn
            .query_row(
                "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)),
            )
            .optional()
            .map_err(backend)?
            .map(|(s, h)| (s as u64, to_hash(&h)))
            .unwrap_or((0, GENESIS));
        let chain = Chain {
            key: audit_key,
            seq,
            hash,
        };
        let spawn_error = |e: std::io::Error| StoreError::Backend(e.to_string());
        let files = Files::new(path);
        let (ctx, crx) = flume::bounded::<()>(1);
        let caught_up = Arc::new(AtomicBool::new(false));
        let checkpointer = open_connection(path, Role::Checkpointer)?;
        let (wal, done) = (files.wal.clone(), caught_up.clone());
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

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Writer,
    Reader,
    Checkpointer,
}

fn open_connection(path: &Path, role: Role) -> StoreResult<Connection> {
    let flags = if role == Role::Reader {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(path, flags).map_err(backend)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(backend)?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;
         PRAGMA temp_store = MEMORY;
         PRAGMA secure_delete = ON;",
    )
    .map_err(backend)?;
    if role == Role::Writer {
        // Readers keep SQLite's default cache: a read transaction that follows any write
        // starts from an empty cache anyway.
        conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)
            .map_err(backend)?;
        // The syncer fsyncs the WAL after each commit, before any reply; checkpoints are
        // the checkpointer's (see the module doc).
        conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 0;")
            .map_err(backend)?;
        // Reusing the WAL keeps its size; capping it at a quarter of the checkpoint threshold
        // lets the checkpointer read "frames written since the last restart" from its size.
        conn.pragma_update(None, "journal_size_limit", CHECKPOINT_BYTES as i64 / 4)
            .map_err(backend)?;
    }
    Ok(conn)
}

/// The database file and its WAL.
#[derive(Clone)]
struct Files {
    db: PathBuf,
    wal: PathBuf,
}

impl Files {
    fn new(db: &Path) -> Self {
        let mut wal = db.as_os_str().to_owned();
        wal.push("-wal");
        Files {
            db: db.to_owned(),
            wal: PathBuf::from(wal),
        }
    }

    /// Makes every commit so far durable: fsync of the WAL (or of the database when there is
    /// no WAL: then everything was checkpointed into it).
    fn sync(&self) -> Result<(), String> {
        let file = match std::fs::File::open(&self.wal) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::File::open(&self.db).map_err(|e| e.to_string())?
            }
            Err(e) => return Err(e.to_string()),
        };
        file.sync_data().map_err(|e| e.to_string())
    }
}

/// Replies of one committed batch, sent once the WAL is synced (or with the sync error).
type Deliver = Box<dyn FnOnce(Result<(), String>) + Send>;

/// Batches committed but not yet synced. The writer starts a batch only while fewer than
/// [`MAX_UNSYNCED`] are: it works during one fsync, then lets requests gather for the next
/// batch instead of committing a stream of tiny ones (each would rewrite the same pages).
#[derive(Default)]
struct Unsynced {
    count: std::sync::Mutex<usize>,
    changed: std::sync::Condvar,
}

const MAX_UNSYNCED: usize = 2;

impl Unsynced {
    fn add(&self) {
        *self
            .count
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) += 1;
    }

    fn done(&self, n: usize) {
        let mut c = self
            .count
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *c = c.saturating_sub(n);
        self.changed.notify_all();
    }

    fn wait_below(&self, limit: usize) {
        let mut c = self
            .count
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        while *c >= limit {
            c = self
                .changed
                .wait(c)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }
}

fn syncer_loop(files: &Files, batches: flume::Receiver<Deliver>, unsynced: &Unsynced) {
    while let Ok(first) = batches.recv() {
        // Everything queued now was committed before this fsync starts: one fsync serves all.
        let mut group = vec![first];
        group.extend(batches.try_iter());
        let started = std::time::Instant::now();
        let synced = files.sync();
        metrics::histogram!("amanah_store_fsync_seconds").record(started.elapsed().as_secs_f64());
        if let Err(e) = &synced {
            tracing::error!(error = %e, "fsync of the SQLite WAL failed");
        }
        metrics::counter!("amanah_store_fsyncs_total").increment(1);
        let n = group.len();
        for deliver in group {
            deliver(synced.clone());
        }
        unsynced.done(n);
    }
}

/// Copies the WAL into the database when it has grown, then tells the writer to finish.
fn checkpoint_loop(
    conn: Connection,
    wal: &Path,
    nudges: flume::Receiver<()>,
    caught_up: &AtomicBool,
) {
    while nudges.recv().is_ok() {
        if caught_up.load(Ordering::Acquire) {
            continue;
        }
        let size = std::fs::metadata(wal).map_or(0, |m| m.len());
        if size < CHECKPOINT_BYTES {
            continue;
        }
        match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            Ok(()) => caught_up.store(true, Ordering::Release),
            Err(e) => tracing::warn!(error = %e, "sqlite checkpoint failed"),
        }
    }
}

/// What the writer thread owns.
struct Writer {
    conn: Connection,
    chain: Chain,
    synced: flume::Sender<Deliver>,
    unsynced: Arc<Unsynced>,
    checkpoint: flume::Sender<()>,
    /// The checkpointer copied the WAL up to some recent commit: the writer finishes the job.
    caught_up: Arc<AtomicBool>,
    files: Files,
}

fn migrate(conn: &mut Connection) -> StoreResult<()> {
    let found: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(backend)?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    if found < SCHEMA_VERSION {
        let tx = conn.transaction().map_err(backend)?;
        tx.execute_batch(SCHEMA).map_err(backend)?;
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(backend)?;
        tx.commit().map_err(backend)?;
    }
    Ok(())
}

fn to_hash(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    if bytes.len() == 32 {
        out.copy_from_slice(bytes);
    }
    out
}

type Job = (WriteFn, oneshot::Sender<StoreResult<Vec<AuditRecord>>>);

fn writer_loop(mut w: Writer, jobs: flume::Receiver<WriteJob>) {
    let mut next = jobs.recv().ok();
    while let Some(job) = next.take() {
        w.unsynced.wait_below(MAX_UNSYNCED);
        let mut batch: Vec<Job> = Vec::new();
        let mut bulk = None;
        match job {
            WriteJob::One { run, reply } => batch.push((run, reply)),
            WriteJob::Bulk { input, reply } => bulk = Some((input, reply)),
        }
        while bulk.is_none() && batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(WriteJob::One { run, reply }) => batch.push((run, reply)),
                Ok(WriteJob::Bulk { input, reply }) => bulk = Some((input, reply)),
                Err(_) => break,
            }
        }
        if !batch.is_empty() {
            run_batch(&mut w, batch);
        }
        if let Some((input, reply)) = bulk {
            let result = run_bulk(&mut w.conn, &mut w.chain, input).and_then(|n| {
                w.files.sync().map_err(StoreError::Backend)?;
                Ok(n)
            });
            let _ = reply.send(result);
        }
        if w.caught_up.swap(false, Ordering::AcqRel) {
            // Only the frames committed since the checkpointer's pass are left: a short copy,
            // after which the next transaction restarts the WAL.
            if let Err(e) = w
                .conn
                .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
            {
                tracing::warn!(error = %e, "sqlite checkpoint failed");
            }
        }
        let _ = w.checkpoint.try_send(());
        next = jobs.recv().ok();
    }
}

/// One transaction for a whole bulk insert; see [`Store::insert_subjects`].
fn run_bulk(
    conn: &mut Connection,
    chain: &mut Chain,
    mut input: tokio::sync::mpsc::Receiver<BulkInsert>,
) -> StoreResult<u64> {
    let (start_seq, start_hash) = (chain.seq, chain.hash);
    let outcome = (|| -> StoreResult<u64> {
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(backend)?;
        sync_chain(&tx, chain)?;
        let mut index = 0u64;
        let mut conflicts = Vec::new();
        let mut committed = false;
        while let Some(message) = input.blocking_recv() {
            match message {
                BulkInsert::Subjects(subjects) => {
                    for (subject, audit) in subjects {
                        for category in insert_new_subject(&tx, &subject)? {
                            conflicts.push(UniqueConflict { index, category });
                        }
                        append(&tx, chain, audit)?;
                        index += 1;
                    }
                }
                BulkInsert::Commit => {
                    committed = true;
                    break;
                }
            }
        }
        if !conflicts.is_empty() {
            return Err(StoreError::Conflicts(conflicts));
        }
        if !committed {
            return Ok(0);
        }
        write_head(&tx, chain)?;
        tx.commit().map_err(backend)?;
        Ok(index)
    })();
    match &outcome {
        Ok(n) if *n > 0 => {
            metrics::counter!("amanah_audit_appends_total").increment(chain.seq - start_seq);
            metrics::counter!("amanah_store_commits_total").increment(1);
        }
        _ => {
            // Rolled back (the transaction was dropped): the chain did not move.
            chain.seq = start_seq;
            chain.hash = start_hash;
        }
    }
    outcome
}

fn write_head(tx: &Connection, chain: &Chain) -> StoreResult<()> {
    let mac = head_mac(&chain.key, chain.seq, &chain.hash);
    tx.prepare_cached(
        "INSERT INTO audit_head (id, seq, hash, mac) VALUES (1, ?1, ?2, ?3)
         ON CONFLICT(id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, mac = excluded.mac",
    )
    .and_then(|mut st| st.execute(params![chain.seq as i64, &chain.hash[..], &mac[..]]))
    .map_err(backend)?;
    Ok(())
}

/// Another process on the same database (`amanah apikey create`, `amanah policy apply` while
/// the server runs) may have appended to the chain since this writer last wrote. Inside the
/// write transaction (which holds the write lock), move the in-memory end of the chain to the
/// signed head when the head is authentic and further along. Only a head carrying a valid MAC
/// is followed, so rows removed from the end of the log still show as a gap.
fn sync_chain(tx: &Connection, chain: &mut Chain) -> StoreResult<()> {
    if let Some((seq, hash, mac)) = read_head(tx)? {
        if seq > chain.seq && mac == head_mac(&chain.key, seq, &hash) {
            chain.seq = seq;
            chain.hash = hash;
        }
    }
    Ok(())
}

/// `(seq, hash, mac)` of the last audit entry.
type SignedHead = (u64, [u8; 32], [u8; 32]);

/// The signed head, if the log was ever written.
fn read_head(conn: &Connection) -> StoreResult<Option<SignedHead>> {
    conn.query_row(
        "SELECT seq, hash, mac FROM audit_head WHERE id = 1",
        [],
        |r| {
            Ok((
                r.get::<_, i64>(0)? as u64,
                to_hash(&r.get::<_, Vec<u8>>(1)?),
                to_hash(&r.get::<_, Vec<u8>>(2)?),
            ))
        },
    )
    .optional()
    .map_err(backend)
}

fn run_batch(w: &mut Writer, batch: Vec<Job>) {
    let started = std::time::Instant::now();
    metrics::histogram!("amanah_store_batch_jobs").record(batch.len() as f64);
    let (conn, chain) = (&mut w.conn, &mut w.chain);
    let mut results = Vec::with_capacity(batch.len());
    let mut replies = Vec::with_capacity(batch.len());
    let mut start_seq = chain.seq;
    let mut start_hash = chain.hash;
    let outcome = (|| -> StoreResult<()> {
        let mut tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(backend)?;
        sync_chain(&tx, chain)?;
        (start_seq, start_hash) = (chain.seq, chain.hash);
        for (run, reply) in batch {
            let (seq, hash) = (chain.seq, chain.hash);
            let sp = tx.savepoint().map_err(backend)?;
            // A savepoint derefs to a transaction-like connection; run the job inside it.
            let result = run(&sp, chain);
            match result {
                Ok(rec) => {
                    sp.commit().map_err(backend)?;
                    results.push(Ok(rec));
                }
                Err(e) => {
                    drop(sp); // rolls the savepoint back
                    chain.seq = seq;
                    chain.hash = hash;
                    results.push(Err(e));
                }
            }
            replies.push(reply);
        }
        if chain.seq != start_seq {
            write_head(&tx, chain)?;
        }
        tx.set_drop_behavior(rusqlite::DropBehavior::Commit);
        tx.commit().map_err(backend)
    })();
    match outcome {
        Ok(()) => {
            metrics::counter!("amanah_audit_appends_total").increment(chain.seq - start_seq);
            metrics::counter!("amanah_store_commits_total").increment(1);
            let deliver: Deliver = Box::new(move |synced| {
                for (reply, result) in replies.into_iter().zip(results) {
                    let result = match &synced {
                        Ok(()) => result,
                        Err(e) => Err(StoreError::Backend(format!("fsync failed: {e}"))),
                    };
                    let _ = reply.send(result);
                }
            });
            metrics::histogram!("amanah_store_batch_seconds")
                .record(started.elapsed().as_secs_f64());
            w.unsynced.add();
            if let Err(flume::SendError(deliver)) = w.synced.send(deliver) {
                w.unsynced.done(1);
                // No syncer (cannot happen while the writer runs): sync here.
                deliver(w.files.sync());
            }
        }
        Err(e) => {
            chain.seq = start_seq;
            chain.hash = start_hash;
            tracing::error!(error = %e, "sqlite batch commit failed");
            let msg = e.to_string();
            for reply in replies {
                let _ = reply.send(Err(StoreError::Backend(msg.clone())));
            }
        }
    }
}

/// Appends one entry to the chain inside the current transaction.
fn append(tx: &Connection, chain: &mut Chain, entry: AuditDraft) -> StoreResult<AuditRecord> {
    let seq = chain.seq + 1;
    let hash = chain.key.chain(&chain.hash, &canonical_bytes(seq, &entry));
    tx.prepare_cached(
        "INSERT INTO audit_log (seq, at, actor, role, action, purpose, basis, outcome, reason,
                                subject_id, fields, policy_version, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )
    .and_then(|mut st| {
        st.execute(params![
            seq as i64,
            entry.at_micros,
            entry.actor,
            entry.role,
            entry.action,
            entry.purpose,
            entry.basis,
            entry.outcome.as_str(),
            entry.reason,
            entry.subject,
            entry.fields.join(","),
            entry.policy_version,
            &hash[..],
        ])
    })
    .map_err(backend)?;
    chain.seq = seq;
    chain.hash = hash;
    Ok(AuditRecord { seq, entry, hash })
}

fn write_fields(tx: &Connection, subject: &str, at: i64, fields: &[FieldWrite]) -> StoreResult<()> {
    for f in fields {
        tx.prepare_cached(
            "INSERT INTO subject_fields (subject_id, category, ciphertext, updated_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(subject_id, category) DO UPDATE SET ciphertext = excluded.ciphertext, updated_at = excluded.updated_at",
        )
        .and_then(|mut st| st.execute(params![subject, f.category, f.ciphertext, at]))
        .map_err(backend)?;
        tx.prepare_cached("DELETE FROM blind_index WHERE subject_id = ?1 AND category = ?2")
            .and_then(|mut st| st.execute(params![subject, f.category]))
            .map_err(backend)?;
        tx.prepare_cached("DELETE FROM unique_index WHERE subject_id = ?1 AND category = ?2")
            .and_then(|mut st| st.execute(params![subject, f.category]))
            .map_err(backend)?;
        if let Some(term) = f.index_term {
            if !f.unique {
                tx.prepare_cached(
                    "INSERT INTO blind_index (category, term, subject_id) VALUES (?1, ?2, ?3)",
                )
                .and_then(|mut st| st.execute(params![f.category, &term[..], subject]))
                .map_err(backend)?;
            } else {
                let inserted = tx
                    .prepare_cached(
                        "INSERT INTO unique_index (category, term, subject_id) VALUES (?1, ?2, ?3)
                         ON CONFLICT(category, term) DO NOTHING",
                    )
                    .and_then(|mut st| st.execute(params![f.category, &term[..], subject]))
                    .map_err(backend)?;
                if inserted == 0 {
                    return Err(StoreError::Unique {
                        category: f.category.clone(),
                    });
                }
            }
        }
    }
    Ok(())
}

/// Inserts a new subject's rows (no audit entry). Returns the unique categories whose term
/// another subject already holds; the caller decides whether that is an error.
fn insert_new_subject(tx: &Connection, s: &NewSubject) -> StoreResult<Vec<String>> {
    let at = s.created_at_micros;
    tx.prepare_cached(
        "INSERT INTO subjects (id, kek_id, key_version, wrapped_key, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .and_then(|mut st| {
        st.execute(params![
            s.id,
            s.wrapped_key.kek_id,
            s.wrapped_key.version as i64,
            s.wrapped_key.ciphertext,
            at
        ])
    })
    .map_err(backend)?;
    let mut taken = Vec::new();
    for f in &s.fields {
        tx.prepare_cached(
            "INSERT INTO subject_fields (subject_id, category, ciphertext, updated_at) VALUES (?1, ?2, ?3, ?4)",
        )
        .and_then(|mut st| st.execute(params![s.id, f.category, f.ciphertext, at]))
        .map_err(backend)?;
        let Some(term) = f.index_term else { continue };
        // A unique term lives in `unique_index` only; searches read both tables.
        if !f.unique {
            tx.prepare_cached(
                "INSERT INTO blind_index (category, term, subject_id) VALUES (?1, ?2, ?3)",
            )
            .and_then(|mut st| st.execute(params![f.category, &term[..], s.id]))
            .map_err(backend)?;
        } else {
            let inserted = tx
                .prepare_cached(
                    "INSERT INTO unique_index (category, term, subject_id) VALUES (?1, ?2, ?3)
                     ON CONFLICT(category, term) DO NOTHING",
                )
                .and_then(|mut st| st.execute(params![f.category, &term[..], s.id]))
                .map_err(backend)?;
            if inserted == 0 {
                taken.push(f.category.clone());
            }
        }
    }
    record_purpose(tx, &s.id, &s.purpose, at)?;
    Ok(taken)
}

fn record_purpose(tx: &Connection, subject: &str, purpose: &str, at: i64) -> StoreResult<()> {
    tx.prepare_cached(
        "INSERT INTO subject_purposes (subject_id, purpose, collected_at) VALUES (?1, ?2, ?3)
         ON CONFLICT(subject_id, purpose) DO NOTHING",
    )
    .and_then(|mut st| st.execute(params![subject, purpose, at]))
    .map_err(backend)?;
    Ok(())
}

fn load_subjects(conn: &Connection, ids: &[String]) -> StoreResult<Vec<StoredSubject>> {
    let mut out = Vec::with_capacity(ids.len());
    let mut head = conn
        .prepare_cached(
            "SELECT kek_id, key_version, wrapped_key, created_at FROM subjects WHERE id = ?1",
        )
        .map_err(backend)?;
    let mut fields = conn
        .prepare_cached("SELECT category, ciphertext FROM subject_fields WHERE subject_id = ?1")
        .map_err(backend)?;
    for id in ids {
        let Some((kek_id, version, ciphertext, created)) = head
            .query_row([id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                    r.get::<_, i64>(3)?,
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
        out.push(StoredSubject {
            id: id.clone(),
            wrapped_key: WrappedKey {
                kek_id,
                version: version as u32,
                ciphertext,
            },
            created_at_micros: created,
            fields: values,
        });
    }
    Ok(out)
}

fn audit_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AuditRecord> {
    let fields: String = r.get(10)?;
    let outcome: String = r.get(7)?;
    Ok(AuditRecord {
        seq: r.get::<_, i64>(0)? as u64,
        entry: AuditDraft {
            at_micros: r.get(1)?,
            actor: r.get(2)?,
            role: r.get(3)?,
            action: r.get(4)?,
            purpose: r.get(5)?,
            basis: r.get(6)?,
            // An unknown outcome string can only come from tampering; the chain check reports it.
            outcome: Outcome::parse(&outcome).unwrap_or(Outcome::Denied),
            reason: r.get(8)?,
            subject: r.get(9)?,
            fields: if fields.is_empty() {
                Vec::new()
            } else {
                fields.split(',').map(str::to_owned).collect()
            },
            policy_version: r.get(11)?,
        },
        hash: to_hash(&r.get::<_, Vec<u8>>(12)?),
    })
}

fn api_key_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ApiKeyRecord> {
    Ok(ApiKeyRecord {
        id: r.get(0)?,
        name: r.get(1)?,
        role: r.get(2)?,
        token_hash: r.get(3)?,
        created_at_micros: r.get(4)?,
        revoked_at_micros: r.get(5)?,
    })
}

#[async_trait]
impl Store for SqliteStore {
    async fn insert_subject(&self, s: NewSubject, audit: AuditDraft) -> StoreResult<AuditRecord> {
        self.write(move |tx, chain| {
            if let Some(category) = insert_new_subject(tx, &s)?.into_iter().next() {
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
            let exists = tx
                .prepare_cached("SELECT 1 FROM subjects WHERE id = ?1")
                .and_then(|mut st| st.exists([&u.id]))
                .map_err(backend)?;
            if !exists {
                return Err(StoreError::NotFound);
            }
            write_fields(tx, &u.id, u.at_micros, &u.fields)?;
            record_purpose(tx, &u.id, &u.purpose, u.at_micros)?;
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
        self.read(move |conn| {
            const COLS: &str = "seq, at, actor, role, action, purpose, basis, outcome, reason, subject_id, fields, policy_version, hash";
            let rows = match subject {
                Some(s) => conn
                    .prepare_cached(&format!(
                        "SELECT {COLS} FROM audit_log WHERE subject_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3"
                    ))
                    .and_then(|mut st| {
                        st.query_map(params![s, after as i64, limit as i64], audit_row)
                            .and_then(|r| r.collect::<Result<Vec<_>, _>>())
                    }),
                None => conn
                    .prepare_cached(&format!("SELECT {COLS} FROM audit_log WHERE seq > ?1 ORDER BY seq LIMIT ?2"))
                    .and_then(|mut st| {
                        st.query_map(params![after as i64, limit as i64], audit_row)
                            .and_then(|r| r.collect::<Result<Vec<_>, _>>())
                    }),
            };
            rows.map_err(backend)
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
            tx.execute(
                "INSERT INTO api_keys (id, name, role, token_hash, created_at, revoked_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![key.id, key.name, key.role, key.token_hash, key.created_at_micros, key.revoked_at_micros],
            )
            .map_err(backend)?;
            append(tx, chain, audit)
        })
        .await
    }

    async fn api_key_by_hash(&self, token_hash: &str) -> StoreResult<Option<ApiKeyRecord>> {
        let token_hash = token_hash.to_owned();
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT id, name, role, token_hash, created_at, revoked_at FROM api_keys WHERE token_hash = ?1",
            )
            .and_then(|mut st| st.query_row([token_hash], api_key_row).optional())
            .map_err(backend)
        })
        .await
    }

    async fn list_api_keys(&self) -> StoreResult<Vec<ApiKeyRecord>> {
        self.read(|conn| {
            conn.prepare_cached(
                "SELECT id, name, role, token_hash, created_at, revoked_at FROM api_keys ORDER BY created_at, id",
            )
            .and_then(|mut st| st.query_map([], api_key_row).and_then(|r| r.collect::<Result<Vec<_>, _>>()))
            .map_err(backend)
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
            let n = tx
                .execute(
                    "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                    params![id, at_micros],
                )
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
            tx.execute(
                "INSERT INTO policy_versions (version, source, sha256, applied_at) VALUES (?1, ?2, ?3, ?4)",
                params![policy.version, policy.source, policy.sha256, policy.applied_at_micros],
            )
            .map_err(backend)?;
            append(tx, chain, audit)
        })
        .await
    }

    async fn current_policy(&self) -> StoreResult<Option<PolicyRecord>> {
        self.read(|conn| {
            conn.query_row(
                "SELECT seq, version, source, sha256, applied_at FROM policy_versions ORDER BY seq DESC LIMIT 1",
                [],
                |r| {
                    Ok(PolicyRecord {
                        seq: r.get(0)?,
                        version: r.get(1)?,
                        source: r.get(2)?,
                        sha256: r.get(3)?,
                        applied_at_micros: r.get(4)?,
                    })
                },
            )
            .optional()
            .map_err(backend)
        })
        .await
    }
}

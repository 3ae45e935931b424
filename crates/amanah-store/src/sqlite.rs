//! The embedded SQLite backend.
//!
//! - Two files: the data file and the key store (data keys only, attached as `keys`), both in
//!   WAL mode. A commit is on disk before it is acknowledged: the writer commits with
//!   `synchronous = NORMAL` (no fsync inside SQLite) and hands the batch's replies to a syncer
//!   thread, which fsyncs both WAL files and only then replies. One fsync covers every batch
//!   committed before it started, and the writer runs the next batch while the disk syncs
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
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use amanah_core::audit::{canonical_bytes, head_mac, AuditDraft, AuditRecord};
use amanah_crypto::audit::{AuditKey, GENESIS};
use amanah_crypto::WrappedKey;
use async_trait::async_trait;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use tokio::sync::oneshot;

use crate::sql::{self, Sql};
use crate::{
    rows, ApiKeyRecord, BulkInsert, ConsentRecord, ConsentSelection, FieldWrite, NewSubject,
    PolicyRecord, RelationRecord, Store, StoreError, StoreResult, StoredSubject, SubjectUpdate,
    UniqueConflict,
};

/// 1: subjects, fields, indexes, audit, keys, policies. 2: consents, relations. 3: data keys in
/// their own file (the key store), restriction, relationship end, holds, requests, erasures,
/// de-identified records. 4: disclosures and their subjects, the breach register. 5: the holder
/// of each API key. 6: lists stored as JSON arrays (lossless), and a signed genesis head from
/// the start.
const SCHEMA_VERSION: i64 = 6;
const MAX_BATCH: usize = 512;
const READERS: usize = 4;
/// WAL size past which the checkpointer copies it back into the database.
const CHECKPOINT_BYTES: u64 = 16 * 1024 * 1024;
/// Page cache of the writer (KiB).
const WRITER_CACHE_KIB: i64 = 8 * 1024;

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
    holder TEXT,
    token_hash TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE TABLE IF NOT EXISTS consents (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    subject_id TEXT NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
    purpose TEXT NOT NULL,
    purpose_version TEXT NOT NULL,
    policy_version TEXT NOT NULL,
    granted INTEGER NOT NULL,
    given_by TEXT NOT NULL,
    capture_channel TEXT NOT NULL,
    contact_channels TEXT NOT NULL,
    guardian_subject_id TEXT REFERENCES subjects(id) ON DELETE SET NULL,
    guardian_details BLOB,
    evidence BLOB,
    evidence_sha256 TEXT,
    recorded_by TEXT NOT NULL,
    at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS consents_by_subject ON consents(subject_id, seq);
CREATE INDEX IF NOT EXISTS consents_by_guardian ON consents(guardian_subject_id);
CREATE TABLE IF NOT EXISTS consent_current (
    purpose TEXT NOT NULL,
    subject_id TEXT NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
    consent_seq INTEGER NOT NULL,
    PRIMARY KEY (purpose, subject_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS consent_current_by_subject ON consent_current(subject_id);
CREATE TABLE IF NOT EXISTS relations (
    id TEXT PRIMARY KEY,
    subject_id TEXT NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    related_subject_id TEXT NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
    evidence BLOB,
    evidence_sha256 TEXT,
    recorded_by TEXT NOT NULL,
    at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS relations_by_subject ON relations(subject_id);
CREATE INDEX IF NOT EXISTS relations_by_related ON relations(related_subject_id);
CREATE TABLE IF NOT EXISTS store_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS policy_versions (
    seq INTEGER PRIMARY KEY,
    version TEXT NOT NULL,
    source TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    applied_at INTEGER NOT NULL
);
"#;

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
mod rights;

pub use backup::{inspect_backup, restore_data, restore_key_store, BackupKind, Reconciled};

/// The in-memory end of the audit chain, owned by the writer thread.
struct Chain {
    key: AuditKey,
    seq: u64,
    hash: [u8; 32],
    /// A job erased key material: after the commit, checkpoint and truncate both WAL files so
    /// no copy of the destroyed pages stays in them.
    checkpoint: bool,
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
        // SQLite gives its WAL and shared-memory files the mode of the database file.
        create_private(path)?;
        create_private(&key_store_path(path))?;
        let mut conn = open_connection(path, Role::Writer)?;
        migrate(&mut conn, &audit_key)?;
        // Where the writer starts; every write transaction re-reads the signed head anyway and
        // refuses to append when it is missing or does not verify.
        let (seq, hash) = match read_head(&conn)? {
            Some((seq, hash, _)) => (seq, hash),
            None => (0, GENESIS),
        };
        let chain = Chain {
            key: audit_key,
            seq,
            hash,
            checkpoint: false,
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
const MIGRATION_3: &str = r#"
INSERT OR IGNORE INTO keys.data_keys (subject_id, kek_id, key_version, wrapped_key)
    SELECT id, kek_id, key_version, wrapped_key FROM subjects;
ALTER TABLE subjects DROP COLUMN kek_id;
ALTER TABLE subjects DROP COLUMN key_version;
ALTER TABLE subjects DROP COLUMN wrapped_key;
ALTER TABLE subjects ADD COLUMN restricted_at INTEGER;
ALTER TABLE subjects ADD COLUMN restriction_reason BLOB;
ALTER TABLE subjects ADD COLUMN restricted_by TEXT;
ALTER TABLE subjects ADD COLUMN relationship_ended_at INTEGER;
CREATE TABLE IF NOT EXISTS holds (
    id TEXT PRIMARY KEY,
    subject_id TEXT NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
    reason BLOB NOT NULL,
    until TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    released_at INTEGER
);
CREATE INDEX IF NOT EXISTS holds_by_subject ON holds(subject_id);
CREATE TABLE IF NOT EXISTS requests (
    id TEXT PRIMARY KEY,
    subject_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    details BLOB,
    received_at INTEGER NOT NULL,
    due_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    refusal_reason TEXT,
    refusal_text BLOB,
    closed_at INTEGER,
    received_by TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS requests_by_status ON requests(status, due_at);
CREATE INDEX IF NOT EXISTS requests_by_subject ON requests(subject_id);
CREATE TABLE IF NOT EXISTS erasures (
    subject_id TEXT PRIMARY KEY,
    erased_at INTEGER NOT NULL,
    cause TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS deidentified (
    id TEXT PRIMARY KEY,
    purposes TEXT NOT NULL,
    attributes TEXT NOT NULL,
    created_on TEXT NOT NULL
);
"#;

/// Schema 5: every API key names the person it was issued to (four eyes count people).
const MIGRATION_5: &str = "ALTER TABLE api_keys ADD COLUMN holder TEXT;";

const KEY_STORE_SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS keys.data_keys (
    subject_id TEXT PRIMARY KEY,
    kek_id TEXT NOT NULL,
    key_version INTEGER NOT NULL,
    wrapped_key BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS keys.meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"#;

/// Creates `path` empty, readable and writable by its owner only (0600), unless it exists:
/// database files, their journals and backups are never readable by group or others, whatever
/// the umask.
pub(crate) fn create_private(path: &Path) -> StoreResult<()> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::Backend(format!(
            "cannot create {}: {e}",
            path.display()
        ))),
    }
}

/// Where the key store of the data file at `path` lives: `NAME-keys.db` beside `NAME.db`.
pub fn key_store_path(path: &Path) -> PathBuf {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "amanah".into());
    path.with_file_name(format!("{stem}-keys.db"))
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
    // Query plans that do not depend on bound values. Without this, a statement with
    // `LIMIT ?` (searches, listings, audit pages) is recompiled every time it is run with a new
    // value: SQLite folds the bound limit into the plan. Measured: ~10 % of reader CPU.
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )
    .map_err(backend)?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;
         PRAGMA temp_store = MEMORY;
         PRAGMA secure_delete = ON;",
    )
    .map_err(backend)?;
    let keys = key_store_path(path);
    conn.execute("ATTACH DATABASE ?1 AS keys", [keys.to_string_lossy()])
        .map_err(backend)?;
    conn.execute_batch(
        "PRAGMA keys.journal_mode = WAL;
         PRAGMA keys.synchronous = FULL;
         PRAGMA keys.secure_delete = ON;",
    )
    .map_err(backend)?;
    if role == Role::Writer {
        // Readers keep SQLite's default cache: a read transaction that follows any write
        // starts from an empty cache anyway.
        conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)
            .map_err(backend)?;
        // The syncer fsyncs both WAL files after each commit, before any reply; checkpoints
        // are the checkpointer's (see the module doc). `wal_autocheckpoint` is per connection,
        // so it covers the key store too.
        conn.execute_batch(
            "PRAGMA synchronous = NORMAL;
             PRAGMA keys.synchronous = NORMAL;
             PRAGMA wal_autocheckpoint = 0;",
        )
        .map_err(backend)?;
        // Reusing the WAL keeps its size; capping it at a quarter of the checkpoint threshold
        // lets the checkpointer read "frames written since the last restart" from its size.
        for schema in ["main", "keys"] {
            conn.pragma_update(
                Some(schema),
                "journal_size_limit",
                CHECKPOINT_BYTES as i64 / 4,
            )
            .map_err(backend)?;
        }
    }
    Ok(conn)
}

/// The two database files (data and key store) and their WALs.
#[derive(Clone)]
struct Files {
    /// `(database, its WAL)`, key store first.
    pairs: [(PathBuf, PathBuf); 2],
}

impl Files {
    fn new(db: &Path) -> Self {
        let pair = |db: PathBuf| {
            let mut wal = db.as_os_str().to_owned();
            wal.push("-wal");
            (db, PathBuf::from(wal))
        };
        Files {
            pairs: [pair(key_store_path(db)), pair(db.to_owned())],
        }
    }

    /// The data file's WAL, whose size drives checkpoints.
    fn data_wal(&self) -> &Path {
        &self.pairs[1].1
    }

    /// Makes every commit so far durable: fsync of each WAL (or of its database when there is
    /// no WAL: then everything was checkpointed into it).
    fn sync(&self) -> Result<(), String> {
        for (db, wal) in &self.pairs {
            let file = match std::fs::File::open(wal) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    std::fs::File::open(db).map_err(|e| e.to_string())?
                }
                Err(e) => return Err(e.to_string()),
            };
            file.sync_data().map_err(|e| e.to_string())?;
        }
        Ok(())
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

fn migrate(conn: &mut Connection, audit_key: &AuditKey) -> StoreResult<()> {
    let found: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(backend)?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    let tx = conn.transaction().map_err(backend)?;
    tx.execute_batch(KEY_STORE_SCHEMA).map_err(backend)?;
    if found < SCHEMA_VERSION {
        tx.execute_batch(SCHEMA).map_err(backend)?;
        if found < 3 {
            tx.execute_batch(MIGRATION_3).map_err(backend)?;
        }
        if found < 4 {
            tx.execute_batch(accountability::MIGRATION_4)
                .map_err(backend)?;
        }
        if (1..5).contains(&found) {
            tx.execute_batch(MIGRATION_5).map_err(backend)?;
        }
        if found < 6 {
            migrate_6(&tx, audit_key)?;
        }
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(backend)?;
    }
    // Both files carry the vault's id: a key store from another vault is never used.
    let data_id: Option<String> = tx
        .query_row(
            "SELECT value FROM main.store_meta WHERE key = 'store_id'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(backend)?;
    let keys_id: Option<String> = tx
        .query_row(
            "SELECT value FROM keys.meta WHERE key = 'store_id'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(backend)?;
    match (data_id, keys_id) {
        (Some(d), Some(k)) if d != k => return Err(StoreError::Backend(
            "the key store belongs to another vault (its store id differs from the data file's)"
                .into(),
        )),
        (Some(_), Some(_)) => {}
        (Some(d), None) => {
            let has_subjects: bool = tx
                .query_row("SELECT EXISTS (SELECT 1 FROM subjects)", [], |r| r.get(0))
                .map_err(backend)?;
            if has_subjects {
                return Err(StoreError::Backend(
                    "the key store is missing or empty: restore it (`amanah restore --key-store`) before opening the vault".into(),
                ));
            }
            tx.execute(
                "INSERT INTO keys.meta (key, value) VALUES ('store_id', ?1)",
                [d],
            )
            .map_err(backend)?;
        }
        (None, Some(k)) => {
            tx.execute(
                "INSERT INTO main.store_meta (key, value) VALUES ('store_id', ?1)",
                [k],
            )
            .map_err(backend)?;
        }
        (None, None) => {
            let id = uuid::Uuid::new_v4().to_string();
            tx.execute(
                "INSERT INTO main.store_meta (key, value) VALUES ('store_id', ?1)",
                [&id],
            )
            .map_err(backend)?;
            tx.execute(
                "INSERT INTO keys.meta (key, value) VALUES ('store_id', ?1)",
                [&id],
            )
            .map_err(backend)?;
        }
    }
    tx.commit().map_err(backend)?;
    Ok(())
}

/// Schema 6: comma-joined lists become JSON arrays holding exactly the list that schema 5 read
/// back (so every old audit entry still matches its MAC), and a store whose log was never
/// written gets its signed genesis head: from now on a missing head is an error.
fn migrate_6(tx: &Connection, audit_key: &AuditKey) -> StoreResult<()> {
    for (table, key, column, categories) in crate::lists::LIST_COLUMNS {
        let rows: Vec<(rusqlite::types::Value, String)> = tx
            .prepare(&format!("SELECT {key}, {column} FROM {table}"))
            .and_then(|mut st| {
                st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<rusqlite::Result<_>>()
            })
            .map_err(backend)?;
        let mut update = tx
            .prepare(&format!(
                "UPDATE {table} SET {column} = ?1 WHERE {key} = ?2"
            ))
            .map_err(backend)?;
        for (id, stored) in rows {
            update
                .execute(params![
                    crate::lists::convert_legacy(&stored, *categories),
                    id
                ])
                .map_err(backend)?;
        }
    }
    // Entries that schema 5 could not read back (a comma inside a name): their MAC says which
    // list was written.
    let recovered: Vec<(i64, String)> = {
        let mut st = tx
            .prepare(
                "SELECT seq, at, actor, role, action, purpose, basis, outcome, reason, subject_id,
                        fields, policy_version, hash
                 FROM audit_log ORDER BY seq",
            )
            .map_err(backend)?;
        let mut rows = st.query([]).map_err(backend)?;
        let mut out = Vec::new();
        let mut previous = (0u64, GENESIS);
        while let Some(row) = rows.next().map_err(backend)? {
            let record = rows::audit(row)?;
            if record.entry.fields.len() != 1 && previous.0 + 1 == record.seq {
                if let Some(fields) = crate::lists::recover_fields(audit_key, &record, &previous.1)
                {
                    out.push((record.seq as i64, crate::lists::encode(&fields)));
                }
            }
            previous = (record.seq, record.hash);
        }
        out
    };
    for (seq, fields) in recovered {
        tracing::info!(seq, "audit entry's field list recovered from its MAC");
        tx.execute(
            "UPDATE audit_log SET fields = ?1 WHERE seq = ?2",
            params![fields, seq],
        )
        .map_err(backend)?;
    }
    let empty: bool = tx
        .query_row(
            "SELECT NOT EXISTS (SELECT 1 FROM audit_log) AND NOT EXISTS (SELECT 1 FROM audit_head)",
            [],
            |r| r.get(0),
        )
        .map_err(backend)?;
    if empty {
        let mac = head_mac(audit_key, 0, &GENESIS);
        tx.execute(
            "INSERT INTO audit_head (id, seq, hash, mac) VALUES (1, 0, ?1, ?2)",
            params![&GENESIS[..], &mac[..]],
        )
        .map_err(backend)?;
    }
    Ok(())
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
/// write transaction (which holds the write lock), the chain continues from the signed head.
/// A head that is missing or does not verify stops every write (fail closed): appending after
/// it would hide whatever was done to it. Rows removed from the end of the log still show as a
/// gap before the head; a head moved back onto rows still present makes the next insert
/// collide with them.
fn sync_chain(tx: &Connection, chain: &mut Chain) -> StoreResult<()> {
    match read_head(tx)? {
        Some((seq, hash, mac)) if mac == head_mac(&chain.key, seq, &hash) => {
            chain.seq = seq;
            chain.hash = hash;
            Ok(())
        }
        Some(_) => Err(StoreError::Backend(
            "the signed audit head does not verify: run `amanah audit verify`".into(),
        )),
        None => Err(StoreError::Backend(
            "the signed audit head is missing: run `amanah audit verify`".into(),
        )),
    }
}

/// `(seq, hash, mac)` of the last audit entry.
type SignedHead = (u64, [u8; 32], [u8; 32]);

/// The signed head, if the log was ever written.
fn read_head(conn: &Connection) -> StoreResult<Option<SignedHead>> {
    first(conn, sql::AUDIT_HEAD, [], |r| rows::head(r))
}

fn run_batch(w: &mut Writer, batch: Vec<Job>) {
    let started = std::time::Instant::now();
    metrics::histogram!("amanah_store_batch_jobs").record(batch.len() as f64);
    let (conn, chain) = (&mut w.conn, &mut w.chain);
    let mut results = Vec::with_capacity(batch.len());
    // Every job gets a reply, also when the transaction cannot start or the head is refused.
    let (runs, replies): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
    let mut start_seq = chain.seq;
    let mut start_hash = chain.hash;
    let outcome = (|| -> StoreResult<()> {
        let mut tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(backend)?;
        sync_chain(&tx, chain)?;
        (start_seq, start_hash) = (chain.seq, chain.hash);
        for run in runs {
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
            if std::mem::take(&mut w.chain.checkpoint) {
                truncate_wal(&w.conn);
            }
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
            chain.checkpoint = false;
            tracing::error!(error = %e, "sqlite batch commit failed");
            let msg = e.to_string();
            for reply in replies {
                let _ = reply.send(Err(StoreError::Backend(msg.clone())));
            }
        }
    }
}

/// Copies the WAL into both database files and truncates the WALs (erased pages were zeroed in
/// the files by `secure_delete`). Readers in the middle of a read delay it; the busy timeout
/// bounds the wait, and a failure only leaves the pages until the next checkpoint.
fn truncate_wal(conn: &Connection) {
    for schema in ["keys", "main"] {
        let result = conn.query_row(
            &format!("PRAGMA {schema}.wal_checkpoint(TRUNCATE)"),
            [],
            |r| r.get::<_, i64>(0),
        );
        match result {
            Ok(0) => {}
            Ok(_) => tracing::warn!(
                schema,
                "WAL checkpoint after erasure was blocked by readers"
            ),
            Err(e) => tracing::warn!(schema, error = %e, "WAL checkpoint after erasure failed"),
        }
    }
}

/// Appends one entry to the chain inside the current transaction.
fn append(tx: &Connection, chain: &mut Chain, entry: AuditDraft) -> StoreResult<AuditRecord> {
    // Stored strings are bounded, as on PostgreSQL.
    let entry = entry.bounded();
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
            crate::lists::encode(&entry.fields),
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
        if !insert_term(tx, subject, f)? {
            return Err(StoreError::Unique {
                category: f.category.clone(),
            });
        }
    }
    Ok(())
}

/// Inserts a field's blind-index term, if it has one: a unique term in `unique_index` only
/// (searches read both tables), others in `blind_index`. Returns false when another subject
/// already holds the unique term (nothing inserted).
fn insert_term(tx: &Connection, subject: &str, f: &FieldWrite) -> StoreResult<bool> {
    let Some(term) = f.index_term else {
        return Ok(true);
    };
    let sql = if f.unique {
        "INSERT INTO unique_index (category, term, subject_id) VALUES (?1, ?2, ?3)
         ON CONFLICT(category, term) DO NOTHING"
    } else {
        "INSERT INTO blind_index (category, term, subject_id) VALUES (?1, ?2, ?3)"
    };
    let inserted = tx
        .prepare_cached(sql)
        .and_then(|mut st| st.execute(params![f.category, &term[..], subject]))
        .map_err(backend)?;
    Ok(inserted > 0)
}

/// Inserts a new subject's rows (no audit entry). Returns the unique categories whose term
/// another subject already holds; the caller decides whether that is an error.
fn insert_new_subject(tx: &Connection, s: &NewSubject) -> StoreResult<Vec<String>> {
    let at = s.created_at_micros;
    tx.prepare_cached("INSERT INTO subjects (id, created_at) VALUES (?1, ?2)")
        .and_then(|mut st| st.execute(params![s.id, at]))
        .map_err(backend)?;
    tx.prepare_cached(
        "INSERT INTO keys.data_keys (subject_id, kek_id, key_version, wrapped_key) VALUES (?1, ?2, ?3, ?4)",
    )
    .and_then(|mut st| {
        st.execute(params![
            s.id,
            s.wrapped_key.kek_id,
            s.wrapped_key.version as i64,
            s.wrapped_key.ciphertext,
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
        if !insert_term(tx, &s.id, f)? {
            taken.push(f.category.clone());
        }
    }
    record_purpose(tx, &s.id, &s.purpose, at)?;
    for c in &s.consents {
        write_consent(tx, c)?;
    }
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

fn subject_exists(tx: &Connection, id: &str) -> StoreResult<bool> {
    tx.prepare_cached("SELECT 1 FROM subjects WHERE id = ?1")
        .and_then(|mut st| st.exists([id]))
        .map_err(backend)
}

fn write_consent(tx: &Connection, c: &ConsentRecord) -> StoreResult<()> {
    tx.prepare_cached(
        "INSERT INTO consents (id, subject_id, purpose, purpose_version, policy_version, granted, given_by,
                               capture_channel, contact_channels, guardian_subject_id, guardian_details,
                               evidence, evidence_sha256, recorded_by, at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
    )
    .and_then(|mut st| {
        st.execute(params![
            c.id,
            c.subject_id,
            c.purpose,
            c.purpose_version,
            c.policy_version,
            c.granted,
            c.given_by,
            c.capture_channel,
            c.contact_channels.join(","),
            c.guardian_subject_id,
            c.guardian_details,
            c.evidence,
            c.evidence_sha256,
            c.recorded_by,
            c.at_micros,
        ])
    })
    .map_err(backend)?;
    let seq = tx.last_insert_rowid();
    tx.prepare_cached(
        "INSERT INTO consent_current (purpose, subject_id, consent_seq) VALUES (?1, ?2, ?3)
         ON CONFLICT(purpose, subject_id) DO UPDATE SET consent_seq = excluded.consent_seq",
    )
    .and_then(|mut st| st.execute(params![c.purpose, c.subject_id, seq]))
    .map_err(backend)?;
    Ok(())
}

fn load_subjects(conn: &Connection, ids: &[String]) -> StoreResult<Vec<StoredSubject>> {
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
            tx.execute(
                "INSERT INTO api_keys (id, name, role, token_hash, created_at, revoked_at, holder) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![key.id, key.name, key.role, key.token_hash, key.created_at_micros, key.revoked_at_micros, key.holder],
            )
            .map_err(backend)?;
            append(tx, chain, audit)
        })
        .await
    }

    async fn api_key_by_hash(&self, token_hash: &str) -> StoreResult<Option<ApiKeyRecord>> {
        let token_hash = token_hash.to_owned();
        self.read(move |conn| {
            first(conn, sql::API_KEY_BY_HASH, [token_hash], |r| {
                rows::api_key(r)
            })
        })
        .await
    }

    async fn list_api_keys(&self) -> StoreResult<Vec<ApiKeyRecord>> {
        self.read(|conn| all(conn, sql::API_KEYS, [], |r| rows::api_key(r)))
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
        self.read(|conn| first(conn, sql::CURRENT_POLICY, [], |r| rows::policy(r)))
            .await
    }
}

//! The group-commit machinery: the writer thread and its batches, the key store's own
//! connection (committed before the data file), the syncer that fsyncs the data WAL before any
//! reply, the checkpointer, and the audit chain's append.
//!
//! **Two files, one order.** SQLite does not make a transaction over two WAL files atomic when
//! the process dies (it commits the main file first, then the attached one, without a
//! super-journal in WAL mode). So the writer never lets SQLite commit both: its connection
//! attaches the key store read-only, jobs *stage* their key changes ([`StagedKeys`]), and a
//! batch commits in this order, all while holding the data file's write lock:
//!
//! 1. the key store's transaction (the staged inserts and deletions) on the key store's own
//!    connection, with `synchronous = FULL`: on disk when it returns;
//! 2. the data file's transaction (rows, index terms, audit entries, signed head);
//! 3. the syncer's fsync of the data WAL, then the replies.
//!
//! A crash (kill or power loss) between 1 and 2 leaves keys of subjects whose rows never
//! committed (harmless: a wrapped key with nothing to open) and rows whose key is already
//! destroyed (an erasure in flight: unreadable, so already shredded). Neither reveals or loses
//! anything acknowledged; recovery (`recovery.rs`) removes both at the next open. A job that
//! fails (a 409) rolls back its savepoint and its staged keys, so it never commits a key.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use amanah_core::audit::{canonical_bytes, head_mac, AuditDraft, AuditRecord};
use amanah_crypto::WrappedKey;
use rusqlite::{params, Connection, OpenFlags};
use tokio::sync::oneshot;

use super::*;
use crate::sql;
use crate::{rows, BulkInsert, StoreError, StoreResult, UniqueConflict};

/// The data file and its WAL. (The key store's commits are synced by its own connection.)
#[derive(Clone)]
pub(super) struct Files {
    db: PathBuf,
    wal: PathBuf,
}

impl Files {
    pub(super) fn new(db: &Path) -> Self {
        let mut wal = db.as_os_str().to_owned();
        wal.push("-wal");
        Files {
            db: db.to_owned(),
            wal: PathBuf::from(wal),
        }
    }

    /// The data file's WAL, whose size drives checkpoints.
    pub(super) fn data_wal(&self) -> &Path {
        &self.wal
    }

    /// Makes every data commit so far durable: fsync of the WAL (or of the database when there
    /// is no WAL: then everything was checkpointed into it). Every key-store commit a data
    /// commit depends on was synced before that data commit was written.
    pub(super) fn sync(&self) -> Result<(), String> {
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

/// A change to the key store, staged by a job.
pub(super) enum KeyChange {
    Insert {
        subject: String,
        key: WrappedKey,
    },
    Delete {
        subject: String,
    },
    /// A key rotation's rewrap: applied only if the key is still under `from_kek` at `version`.
    Rewrap {
        subject: String,
        from_kek: String,
        version: u32,
        key: WrappedKey,
    },
}

impl KeyChange {
    /// The subject whose key changes.
    pub(super) fn subject(&self) -> &str {
        match self {
            KeyChange::Insert { subject, .. }
            | KeyChange::Delete { subject }
            | KeyChange::Rewrap { subject, .. } => subject,
        }
    }
}

/// The key-store changes of the batch being run. Jobs stage them here instead of writing the key
/// store (which the writer's connection attaches read-only); the writer commits them in the key
/// store's own transaction before the data transaction (see the module doc). A job that fails
/// drops what it staged with its savepoint.
#[derive(Default)]
pub(super) struct StagedKeys(Vec<KeyChange>);

impl StagedKeys {
    /// A new subject's wrapped data key.
    pub(super) fn insert(&mut self, subject: &str, key: &WrappedKey) {
        self.0.push(KeyChange::Insert {
            subject: subject.to_owned(),
            key: key.clone(),
        });
    }

    /// Destroys a subject's data key.
    pub(super) fn delete(&mut self, subject: &str) {
        self.0.push(KeyChange::Delete {
            subject: subject.to_owned(),
        });
    }

    /// Rewraps a subject's data key (see [`KeyChange::Rewrap`]).
    pub(super) fn rewrap(&mut self, subject: &str, from_kek: &str, version: u32, key: &WrappedKey) {
        self.0.push(KeyChange::Rewrap {
            subject: subject.to_owned(),
            from_kek: from_kek.to_owned(),
            version,
            key: key.clone(),
        });
    }

    /// Whether the batch destroys `subject`'s key (its last staged change is a delete).
    pub(super) fn deletes(&self, subject: &str) -> bool {
        self.0.iter().rev().find_map(|c| match c {
            KeyChange::Delete { subject: s } if s == subject => Some(true),
            KeyChange::Insert { subject: s, .. } if s == subject => Some(false),
            _ => None,
        }) == Some(true)
    }

    /// Whether the batch gives `subject` a key that the key store does not hold yet.
    pub(super) fn inserts(&self, subject: &str) -> bool {
        self.0.iter().rev().find_map(|c| match c {
            KeyChange::Insert { subject: s, .. } if s == subject => Some(true),
            KeyChange::Delete { subject: s } if s == subject => Some(false),
            _ => None,
        }) == Some(true)
    }

    pub(super) fn len(&self) -> usize {
        self.0.len()
    }

    pub(super) fn truncate(&mut self, len: usize) {
        self.0.truncate(len);
    }

    pub(super) fn take(&mut self) -> Vec<KeyChange> {
        std::mem::take(&mut self.0)
    }
}

/// The key store's own connection (the key store is its `main`): the only one that writes it
/// after migration. `synchronous = FULL`: a commit is on disk when it returns.
pub(super) struct KeyStore {
    conn: Connection,
}

impl KeyStore {
    pub(super) fn open(data_path: &Path) -> StoreResult<Self> {
        let conn = Connection::open_with_flags(
            key_store_path(data_path),
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(backend)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(backend)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             PRAGMA secure_delete = ON;
             PRAGMA temp_store = MEMORY;
             PRAGMA wal_autocheckpoint = 0;",
        )
        .map_err(backend)?;
        conn.pragma_update(None, "journal_size_limit", CHECKPOINT_BYTES as i64 / 4)
            .map_err(backend)?;
        Ok(KeyStore { conn })
    }

    /// Starts the key store's write transaction. Only taken while holding the data file's write
    /// lock, so no other process is between its key commit and its data commit.
    pub(super) fn begin(&mut self) -> StoreResult<rusqlite::Transaction<'_>> {
        self.conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(backend)
    }

    /// Commits `changes`, with the batch's ledger row, in one transaction, durable when this
    /// returns.
    pub(super) fn commit(
        &mut self,
        changes: &[KeyChange],
        entry: Option<&ledger::Entry>,
    ) -> StoreResult<()> {
        let tx = self.begin()?;
        write_keys(&tx, changes)?;
        if let Some(entry) = entry {
            ledger::write_keyed(&tx, entry)?;
        }
        tx.commit().map_err(backend)
    }

    /// Copies the key store's WAL into its file and truncates it (after key material was
    /// destroyed: `secure_delete` zeroed the freed pages in the file).
    pub(super) fn truncate_wal(&self) {
        checkpoint(&self.conn, "main", "TRUNCATE", "keys");
    }

    pub(super) fn checkpoint(&self) {
        checkpoint(&self.conn, "main", "PASSIVE", "keys");
    }
}

/// Applies staged key changes inside the key store's open transaction.
pub(super) fn write_keys(tx: &Connection, changes: &[KeyChange]) -> StoreResult<()> {
    for change in changes {
        match change {
            KeyChange::Insert { subject, key } => tx
                .prepare_cached(
                    "INSERT INTO data_keys (subject_id, kek_id, key_version, wrapped_key)
                     VALUES (?1, ?2, ?3, ?4)",
                )
                .and_then(|mut st| {
                    st.execute(params![
                        subject,
                        key.kek_id,
                        key.version as i64,
                        key.ciphertext
                    ])
                }),
            KeyChange::Delete { subject } => tx
                .prepare_cached("DELETE FROM data_keys WHERE subject_id = ?1")
                .and_then(|mut st| st.execute([subject])),
            KeyChange::Rewrap {
                subject,
                from_kek,
                version,
                key,
            } => tx
                .prepare_cached(
                    "UPDATE data_keys SET kek_id = ?4, wrapped_key = ?5
                     WHERE subject_id = ?1 AND kek_id = ?2 AND key_version = ?3",
                )
                .and_then(|mut st| {
                    st.execute(params![
                        subject,
                        from_kek,
                        i64::from(*version),
                        key.kek_id,
                        key.ciphertext
                    ])
                }),
        }
        .map_err(backend)?;
    }
    Ok(())
}

fn checkpoint(conn: &Connection, schema: &str, mode: &str, file: &'static str) {
    let result = conn.query_row(
        &format!("PRAGMA {schema}.wal_checkpoint({mode})"),
        [],
        |r| r.get::<_, i64>(0),
    );
    match result {
        Ok(0) => {}
        Ok(_) => tracing::warn!(file, mode, "WAL checkpoint was blocked by readers"),
        Err(e) => tracing::warn!(file, mode, error = %e, "WAL checkpoint failed"),
    }
}

/// Replies of one committed batch, sent once the WAL is synced (or with the sync error).
pub(super) type Deliver = Box<dyn FnOnce(Result<(), String>) + Send>;

/// Batches committed but not yet synced. The writer starts a batch only while fewer than
/// [`MAX_UNSYNCED`] are: it works during one fsync, then lets requests gather for the next
/// batch instead of committing a stream of tiny ones (each would rewrite the same pages).
#[derive(Default)]
pub(super) struct Unsynced {
    pub(super) count: std::sync::Mutex<usize>,
    pub(super) changed: std::sync::Condvar,
}

pub(super) const MAX_UNSYNCED: usize = 2;

impl Unsynced {
    pub(super) fn add(&self) {
        *self
            .count
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) += 1;
    }

    pub(super) fn done(&self, n: usize) {
        let mut c = self
            .count
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *c = c.saturating_sub(n);
        self.changed.notify_all();
    }

    pub(super) fn wait_below(&self, limit: usize) {
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

pub(super) fn syncer_loop(files: &Files, batches: flume::Receiver<Deliver>, unsynced: &Unsynced) {
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
pub(super) fn checkpoint_loop(
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
pub(super) struct Writer {
    pub(super) conn: Connection,
    pub(super) chain: Chain,
    pub(super) synced: flume::Sender<Deliver>,
    pub(super) unsynced: Arc<Unsynced>,
    pub(super) checkpoint: flume::Sender<()>,
    /// The checkpointer copied the WAL up to some recent commit: the writer finishes the job.
    pub(super) caught_up: Arc<AtomicBool>,
    pub(super) files: Files,
    /// The key store's connection: key changes commit there, before the data transaction.
    pub(super) keys: KeyStore,
    /// A key-store commit went through but its data commit did not: recovery has to run
    /// before the next batch (it is retried until it succeeds).
    pub(super) unsettled: bool,
}

pub(super) type Job = (WriteFn, oneshot::Sender<StoreResult<Vec<AuditRecord>>>);

pub(super) fn writer_loop(mut w: Writer, jobs: flume::Receiver<WriteJob>) {
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
        if w.unsettled {
            settle(&mut w);
        }
        if !batch.is_empty() {
            run_batch(&mut w, batch);
        }
        if let Some((input, reply)) = bulk {
            let result = run_bulk(&mut w, input).and_then(|n| {
                w.files.sync().map_err(StoreError::Backend)?;
                Ok(n)
            });
            let _ = reply.send(result);
        }
        if w.caught_up.swap(false, Ordering::AcqRel) {
            // Only the frames committed since the checkpointer's pass are left: a short copy,
            // after which the next transaction restarts the WAL.
            checkpoint(&w.conn, "main", "PASSIVE", "data");
            w.keys.checkpoint();
        }
        let _ = w.checkpoint.try_send(());
        next = jobs.recv().ok();
    }
}

/// A key-store commit whose data commit failed leaves keys without rows or rows without a key:
/// settled at once by recovery (the same as at open), or before the next batch if that fails.
pub(super) fn settle(w: &mut Writer) {
    match super::recovery::recover(&mut w.conn, &mut w.keys, &mut w.chain) {
        Ok(_) => w.unsettled = false,
        Err(e) => {
            w.unsettled = true;
            tracing::error!(error = %e, "recovery after a failed commit failed; retried before the next batch");
        }
    }
}

/// Staged keys written into the bulk's key-store transaction once this many are waiting.
const BULK_KEYS: usize = 1024;
/// Page cache of the writer during a bulk insert (KiB); back to `WRITER_CACHE_KIB` after.
const BULK_CACHE_KIB: i64 = 64 * 1024;

/// One transaction for a whole bulk insert; see [`Store::insert_subjects`]. The keys go into
/// one key-store transaction, committed just before the data transaction.
pub(super) fn run_bulk(
    w: &mut Writer,
    mut input: tokio::sync::mpsc::Receiver<BulkInsert>,
) -> StoreResult<u64> {
    let (start_seq, start_hash) = (w.chain.seq, w.chain.hash);
    let mut keys_committed = false;
    // A bulk touches the random leaves of the unique terms' index across the whole store: a
    // larger page cache for its one long transaction spills and re-reads fewer pages.
    let _ = w.conn.pragma_update(None, "cache_size", -BULK_CACHE_KIB);
    let (conn, chain, keys) = (&mut w.conn, &mut w.chain, &mut w.keys);
    let outcome = (|| -> StoreResult<u64> {
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(backend)?;
        sync_chain(&tx, chain)?;
        let key_tx = keys.begin()?;
        let mut index = 0u64;
        let mut conflicts = Vec::new();
        let mut committed = false;
        {
            let mut lite = Lite::bulk(&tx, chain);
            while let Some(message) = input.blocking_recv() {
                match message {
                    BulkInsert::Subjects(subjects) => {
                        for (subject, audit) in subjects {
                            for category in lite.insert_new(&subject)? {
                                conflicts.push(UniqueConflict { index, category });
                            }
                            lite.append_entry(audit)?;
                            index += 1;
                        }
                        if lite.chain.keys.len() >= BULK_KEYS {
                            write_keys(&key_tx, &lite.chain.keys.take())?;
                        }
                    }
                    BulkInsert::Commit => {
                        committed = true;
                        break;
                    }
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
        write_keys(&key_tx, &chain.keys.take())?;
        // A bulk's subjects are not listed: recovery checks them all if it never lands.
        let entry = ledger::read(&tx)?.entry(None);
        if let Some(entry) = &entry {
            ledger::write_keyed(&key_tx, entry)?;
        }
        key_tx.commit().map_err(backend)?;
        keys_committed = true;
        if let Some(entry) = &entry {
            ledger::write_done(&tx, entry)?;
        }
        tx.commit().map_err(backend)?;
        Ok(index)
    })();
    w.chain.keys.take();
    let _ = w.conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB);
    match &outcome {
        Ok(n) if *n > 0 => {
            metrics::counter!("amanah_audit_appends_total").increment(w.chain.seq - start_seq);
            metrics::counter!("amanah_store_commits_total").increment(1);
        }
        _ => {
            // Rolled back (the transaction was dropped): the chain did not move.
            w.chain.seq = start_seq;
            w.chain.hash = start_hash;
            if keys_committed && outcome.is_err() {
                settle(w);
            }
        }
    }
    outcome
}

pub(super) fn write_head(tx: &Connection, chain: &Chain) -> StoreResult<()> {
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
pub(super) fn sync_chain(tx: &Connection, chain: &mut Chain) -> StoreResult<()> {
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
pub(super) type SignedHead = (u64, [u8; 32], [u8; 32]);

/// The signed head, if the log was ever written.
pub(super) fn read_head(conn: &Connection) -> StoreResult<Option<SignedHead>> {
    first(conn, sql::AUDIT_HEAD, [], |r| rows::head(r))
}

pub(super) fn run_batch(w: &mut Writer, batch: Vec<Job>) {
    let started = std::time::Instant::now();
    metrics::histogram!("amanah_store_batch_jobs").record(batch.len() as f64);
    let (conn, chain, keys) = (&mut w.conn, &mut w.chain, &mut w.keys);
    let unsettled = &mut w.unsettled;
    let mut keys_committed = false;
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
            let (seq, hash, staged) = (chain.seq, chain.hash, chain.keys.len());
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
                    chain.keys.truncate(staged);
                    results.push(Err(e));
                }
            }
        }
        if chain.seq != start_seq {
            write_head(&tx, chain)?;
        }
        // The key store first, on disk before the data transaction commits (module doc).
        let staged = chain.keys.take();
        if !staged.is_empty() {
            let ledger = ledger::read(&tx)?;
            if !ledger.pending_ids().is_empty() {
                // Another process died between its two commits: settled before the next batch.
                *unsettled = true;
            }
            let entry = ledger.entry(Some(&staged));
            keys.commit(&staged, entry.as_ref())?;
            keys_committed = true;
            if let Some(entry) = &entry {
                ledger::write_done(&tx, entry)?;
            }
        }
        tx.set_drop_behavior(rusqlite::DropBehavior::Commit);
        tx.commit().map_err(backend)
    })();
    chain.keys.take();
    match outcome {
        Ok(()) => {
            metrics::counter!("amanah_audit_appends_total").increment(chain.seq - start_seq);
            metrics::counter!("amanah_store_commits_total").increment(1);
            if std::mem::take(&mut w.chain.checkpoint) {
                truncate_wal(&w.conn, &w.keys);
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
            // Settled before anyone is told: an answered failure leaves no key behind.
            if keys_committed {
                settle(w);
            }
            let msg = e.to_string();
            for reply in replies {
                let _ = reply.send(Err(StoreError::Backend(msg.clone())));
            }
        }
    }
}

/// Copies the WALs into both database files and truncates them (erased pages were zeroed in
/// the files by `secure_delete`). Readers in the middle of a read delay it; the busy timeout
/// bounds the wait, and a failure only leaves the pages until the next checkpoint.
pub(super) fn truncate_wal(conn: &Connection, keys: &KeyStore) {
    keys.truncate_wal();
    checkpoint(conn, "main", "TRUNCATE", "data");
}

/// Appends one entry to the chain inside the current transaction.
pub(super) fn append(
    tx: &Connection,
    chain: &mut Chain,
    entry: AuditDraft,
) -> StoreResult<AuditRecord> {
    // Stored strings are bounded, as on PostgreSQL.
    let mut st = tx
        .prepare_cached(sql::writes::INSERT_AUDIT.lite)
        .map_err(backend)?;
    append_on(&mut st, chain, entry)
}

/// [`append`] with the statement `INSERT_AUDIT` already prepared.
pub(super) fn append_on(
    st: &mut rusqlite::Statement<'_>,
    chain: &mut Chain,
    entry: AuditDraft,
) -> StoreResult<AuditRecord> {
    let entry = entry.bounded();
    let seq = chain.seq + 1;
    let hash = chain.key.chain(&chain.hash, &canonical_bytes(seq, &entry));
    st.execute(params![
        seq as i64,
        entry.at_micros,
        entry.actor,
        entry.role,
        entry.action.as_str(),
        entry.purpose,
        entry.basis,
        entry.outcome.as_str(),
        entry.reason,
        entry.subject,
        crate::lists::encode(&entry.fields),
        entry.policy_version,
        &hash[..],
    ])
    .map_err(backend)?;
    chain.seq = seq;
    chain.hash = hash;
    Ok(AuditRecord { seq, entry, hash })
}

//! The group-commit machinery: the writer thread and its batches, the syncer that fsyncs both
//! WAL files before any reply, the checkpointer, and the audit chain's append.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use amanah_core::audit::{canonical_bytes, head_mac, AuditDraft, AuditRecord};
use rusqlite::{params, Connection};
use tokio::sync::oneshot;

use super::*;
use crate::sql;
use crate::{rows, BulkInsert, StoreError, StoreResult, UniqueConflict};

/// The two database files (data and key store) and their WALs.
#[derive(Clone)]
pub(super) struct Files {
    /// `(database, its WAL)`, key store first.
    pub(super) pairs: [(PathBuf, PathBuf); 2],
}

impl Files {
    pub(super) fn new(db: &Path) -> Self {
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
    pub(super) fn data_wal(&self) -> &Path {
        &self.pairs[1].1
    }

    /// Makes every commit so far durable: fsync of each WAL (or of its database when there is
    /// no WAL: then everything was checkpointed into it).
    pub(super) fn sync(&self) -> Result<(), String> {
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
pub(super) fn run_bulk(
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
pub(super) fn truncate_wal(conn: &Connection) {
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
pub(super) fn append(
    tx: &Connection,
    chain: &mut Chain,
    entry: AuditDraft,
) -> StoreResult<AuditRecord> {
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

//! The group-commit machinery: the writer task, its batches and retries, the locked audit head
//! and the chain's append.

use std::collections::HashMap;
use std::time::Duration;

use amanah_core::audit::{head_mac, AuditDraft, AuditRecord};
use amanah_crypto::audit::AuditKey;
use tokio::sync::oneshot;
use tokio_postgres::{Client, Statement, Transaction};

use super::*;
use crate::exec::Writer;
use crate::ops;
use crate::rows::to_hash;
use crate::{BulkInsert, StoreError, StoreResult, UniqueConflict};

#[derive(Default)]
pub(super) struct Stmts(HashMap<&'static str, Statement>);

impl Stmts {
    pub(super) async fn get(
        &mut self,
        tx: &Transaction<'_>,
        sql: &'static str,
    ) -> Result<Statement, Tx> {
        if let Some(s) = self.0.get(sql) {
            return Ok(s.clone());
        }
        let s = tx.prepare(sql).await?;
        self.0.insert(sql, s.clone());
        Ok(s)
    }
}

/// Why a job did not apply: a refusal (`NotFound`, `Unique`, ...) undoes only that job; a
/// database error undoes the job, or the whole transaction when it is retryable.
pub(super) enum Tx {
    Store(StoreError),
    Db(tokio_postgres::Error),
    /// A group of jobs written together failed in the database (`grouped`): the transaction is
    /// run again with one savepoint per job, so that the failure is only its job's.
    Split(tokio_postgres::Error),
}

impl From<tokio_postgres::Error> for Tx {
    fn from(e: tokio_postgres::Error) -> Self {
        Tx::Db(e)
    }
}

impl From<StoreError> for Tx {
    fn from(e: StoreError) -> Self {
        Tx::Store(e)
    }
}

/// The writer task: batches queued jobs (each an [`Op`], plain data, so that a retried
/// transaction applies it again unchanged) into one transaction.
pub(super) async fn writer_loop(
    target: Target,
    mut client: Client,
    key: AuditKey,
    jobs: flume::Receiver<WriteJob>,
) {
    let mut stmts = Stmts::default();
    let mut next = jobs.recv_async().await.ok();
    while let Some(job) = next.take() {
        let mut batch = Vec::new();
        let mut bulk = None;
        match job {
            WriteJob::One { op, reply } => batch.push((op, reply)),
            WriteJob::Bulk { input, reply } => bulk = Some((input, reply)),
        }
        while bulk.is_none() && batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(WriteJob::One { op, reply }) => batch.push((op, reply)),
                Ok(WriteJob::Bulk { input, reply }) => bulk = Some((input, reply)),
                Err(_) => break,
            }
        }
        if client.is_closed() {
            match connect(&target).await {
                Ok(c) => {
                    client = c;
                    stmts = Stmts::default();
                }
                Err(e) => {
                    let msg = e.to_string();
                    for (_, reply) in batch {
                        let _ = reply.send(Err(StoreError::Backend(msg.clone())));
                    }
                    if let Some((_, reply)) = bulk {
                        let _ = reply.send(Err(StoreError::Backend(msg)));
                    }
                    next = jobs.recv_async().await.ok();
                    continue;
                }
            }
        }
        if !batch.is_empty() {
            run_jobs(&mut client, &mut stmts, &key, batch).await;
        }
        if let Some((input, reply)) = bulk {
            let _ = reply.send(run_bulk(&mut client, &mut stmts, &key, input).await);
        }
        next = jobs.recv_async().await.ok();
    }
}

pub(super) type Reply = oneshot::Sender<StoreResult<Vec<AuditRecord>>>;

/// Commits a batch of small jobs in one transaction (retried whole on serialization failures).
pub(super) async fn run_jobs(
    client: &mut Client,
    stmts: &mut Stmts,
    key: &AuditKey,
    batch: Vec<(Box<Op>, Reply)>,
) {
    let ops: Vec<&Op> = batch.iter().map(|(op, _)| op.as_ref()).collect();
    match run_with_retries(client, stmts, key, &ops).await {
        Ok(results) => {
            for ((_, reply), result) in batch.into_iter().zip(results) {
                let _ = reply.send(result);
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "postgres batch commit failed");
            let msg = e.to_string();
            for (_, reply) in batch {
                let _ = reply.send(Err(StoreError::Backend(msg.clone())));
            }
        }
    }
}

/// One transaction for a whole bulk insert; see [`Store::insert_subjects`]. The head row stays
/// locked from the start, so no other writer can make it fail with a serialization error; a
/// database error fails the whole import (nothing is written) rather than retrying it, since
/// the subjects were consumed from the channel.
pub(super) async fn run_bulk(
    client: &mut Client,
    stmts: &mut Stmts,
    key: &AuditKey,
    mut input: tokio::sync::mpsc::Receiver<BulkInsert>,
) -> StoreResult<u64> {
    let outcome = async {
        let tx = client.transaction().await?;
        let mut chain = lock_head(&tx, stmts, key).await?;
        let start = chain.seq;
        let mut index = 0u64;
        let mut conflicts = Vec::new();
        let mut committed = false;
        while let Some(message) = input.recv().await {
            match message {
                BulkInsert::Subjects(subjects) => {
                    for (subject, audit) in subjects {
                        let mut job = PgTx {
                            tx: &tx,
                            stmts,
                            chain: &mut chain,
                        };
                        for category in ops::insert_new_subject(&mut job, &subject).await? {
                            conflicts.push(UniqueConflict { index, category });
                        }
                        job.append(&audit).await?;
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
            return Err(Tx::Store(StoreError::Conflicts(conflicts)));
        }
        if !committed {
            return Ok((0, 0));
        }
        write_head(&tx, stmts, &chain).await?;
        tx.commit().await?;
        Ok((index, chain.seq - start))
    }
    .await;
    match outcome {
        Ok((n, appended)) => {
            if n > 0 {
                metrics::counter!("amanah_audit_appends_total").increment(appended);
                metrics::counter!("amanah_store_commits_total").increment(1);
            }
            Ok(n)
        }
        Err(Tx::Db(e) | Tx::Split(e)) => Err(backend(e)),
        Err(Tx::Store(e)) => Err(e),
    }
}

pub(super) type BatchResults = Vec<StoreResult<Vec<AuditRecord>>>;

pub(super) async fn run_with_retries(
    client: &mut Client,
    stmts: &mut Stmts,
    key: &AuditKey,
    ops: &[&Op],
) -> StoreResult<BatchResults> {
    let mut attempt = 1;
    let mut grouped = true;
    loop {
        match run_batch(client, stmts, key, ops, grouped).await {
            Ok((results, appended)) => {
                metrics::counter!("amanah_audit_appends_total").increment(appended);
                metrics::counter!("amanah_store_commits_total").increment(1);
                return Ok(results);
            }
            Err(Tx::Db(e)) if retryable(&e) && attempt < MAX_ATTEMPTS => {
                metrics::counter!("amanah_store_retries_total").increment(1);
                tracing::debug!(attempt, error = %backend(e), "retrying a write transaction");
                tokio::time::sleep(backoff(attempt)).await;
                attempt += 1;
            }
            Err(Tx::Split(e)) if grouped => {
                metrics::counter!("amanah_store_split_batches_total").increment(1);
                tracing::debug!(error = %backend(e), "running a batch again one job at a time");
                grouped = false;
            }
            Err(Tx::Db(e) | Tx::Split(e)) => return Err(backend(e)),
            Err(Tx::Store(e)) => return Err(e),
        }
    }
}

/// Exponential backoff with jitter: 2, 4, 8... ms (capped), plus up to as much again.
pub(super) fn backoff(attempt: u32) -> Duration {
    let base = 1u64 << attempt.min(7);
    let jitter = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::from(d.subsec_nanos()) % (base * 1000))
        .unwrap_or(0);
    Duration::from_micros(base * 1000 + jitter)
}

/// One transaction: lock the signed head, apply the jobs, move the head. With `grouped`, each
/// run of creates and appends is written together (`grouped`); every other job, and every job
/// when a group failed, in its own savepoint (none when the batch is that one job: the
/// transaction is then rolled back instead).
pub(super) async fn run_batch(
    client: &mut Client,
    stmts: &mut Stmts,
    key: &AuditKey,
    ops: &[&Op],
    grouped: bool,
) -> Result<(BatchResults, u64), Tx> {
    let mut tx = client.transaction().await?;
    let group_len = |ops: &[&Op]| match grouped {
        true => ops.iter().take_while(|op| groupable(op)).count(),
        false => 0,
    };
    let (mut chain, mut held) = match group_len(ops) {
        0 => (lock_head(&tx, stmts, key).await?, None),
        n => {
            let (chain, held) = lock_head_and_read_terms(&tx, stmts, key, &ops[..n]).await?;
            (chain, Some(held))
        }
    };
    let start = chain.seq;
    let mut results = Vec::with_capacity(ops.len());
    let mut head_written = false;
    let mut i = 0;
    while let Some(op) = ops.get(i) {
        let n = group_len(&ops[i..]);
        if n > 0 {
            let end = i + n;
            let last = end == ops.len();
            let group = &ops[i..end];
            let (written, head) =
                write_group(&tx, stmts, &mut chain, group, held.take(), last).await?;
            results.extend(written);
            head_written = head;
            i = end;
            continue;
        }
        i += 1;
        if ops.len() == 1 {
            let mut job = PgTx {
                tx: &tx,
                stmts,
                chain: &mut chain,
            };
            match ops::apply(&mut job, op).await {
                Ok(records) => results.push(Ok(records)),
                Err(Tx::Db(e)) if retryable(&e) => return Err(Tx::Db(e)),
                Err(e) => {
                    tx.rollback().await?;
                    return Ok((vec![Err(refusal(e))], 0));
                }
            }
            continue;
        }
        let saved = (chain.seq, chain.hash);
        let sp = tx.savepoint("job").await?;
        let mut job = PgTx {
            tx: &sp,
            stmts,
            chain: &mut chain,
        };
        match ops::apply(&mut job, op).await {
            Ok(records) => {
                sp.commit().await?;
                results.push(Ok(records));
            }
            Err(Tx::Db(e)) if retryable(&e) => return Err(Tx::Db(e)),
            Err(e) => {
                sp.rollback().await?;
                (chain.seq, chain.hash) = saved;
                results.push(Err(refusal(e)));
            }
        }
    }
    if chain.seq != start && !head_written {
        write_head(&tx, stmts, &chain).await?;
    }
    tx.commit().await?;
    Ok((results, chain.seq - start))
}

/// What the caller of a job that did not apply is told.
fn refusal(e: Tx) -> StoreError {
    match e {
        Tx::Store(e) => e,
        Tx::Db(e) | Tx::Split(e) => backend(e),
    }
}

/// Locks the signed head row for the rest of the transaction and returns the chain's end,
/// failing closed when the head does not verify.
pub(super) async fn lock_head<'k>(
    tx: &Transaction<'_>,
    stmts: &mut Stmts,
    key: &'k AuditKey,
) -> Result<Chain<'k>, Tx> {
    let st = stmts.get(tx, LOCK_HEAD).await?;
    head_of(key, tx.query_opt(&st, &[]).await?)
}

const LOCK_HEAD: &str = "SELECT seq, hash, mac FROM audit_head WHERE id = 1 FOR UPDATE";

/// The chain's end from the locked head row, failing closed when it does not verify.
fn head_of<'k>(key: &'k AuditKey, head: Option<tokio_postgres::Row>) -> Result<Chain<'k>, Tx> {
    let head = head.ok_or_else(|| {
        StoreError::Backend("the signed audit head is missing: run `amanah audit verify`".into())
    })?;
    let seq = head.get::<_, i64>(0) as u64;
    let hash = to_hash(head.get::<_, &[u8]>(1));
    let mac = to_hash(head.get::<_, &[u8]>(2));
    if mac != head_mac(key, seq, &hash) {
        // Appending after a head that does not verify would hide whatever was done to it.
        return Err(Tx::Store(StoreError::Backend(
            "the signed audit head does not verify: run `amanah audit verify`".into(),
        )));
    }
    Ok(Chain { key, seq, hash })
}

/// [`lock_head`], and the unique terms of a group's creates already held ([`held_terms`]), read
/// in the same round trip: the read is sent after the lock, so it sees every commit before it.
pub(super) async fn lock_head_and_read_terms<'k>(
    tx: &Transaction<'_>,
    stmts: &mut Stmts,
    key: &'k AuditKey,
    group: &[&Op],
) -> Result<(Chain<'k>, Held), Tx> {
    let st = stmts.get(tx, LOCK_HEAD).await?;
    let (head, held) =
        futures_util::future::join(tx.query_opt(&st, &[]), held_terms(tx, group)).await;
    Ok((head_of(key, head?)?, held?))
}

pub(super) async fn write_head(
    tx: &Transaction<'_>,
    stmts: &mut Stmts,
    chain: &Chain<'_>,
) -> Result<(), Tx> {
    let mac = head_mac(chain.key, chain.seq, &chain.hash);
    let st = stmts.get(tx, super::grouped::WRITE_HEAD).await?;
    tx.execute(&st, &[&(chain.seq as i64), &&chain.hash[..], &&mac[..]])
        .await?;
    Ok(())
}

/// Appends one entry after the locked head.
pub(super) async fn append(
    tx: &Transaction<'_>,
    stmts: &mut Stmts,
    chain: &mut Chain<'_>,
    entry: &AuditDraft,
) -> Result<AuditRecord, Tx> {
    let st = stmts.get(tx, crate::sql::writes::INSERT_AUDIT.pg).await?;
    let mut end = *chain;
    let record = seal(&mut end, entry);
    let e = &record.entry;
    tx.execute(
        &st,
        &[
            &(record.seq as i64),
            &e.at_micros,
            &e.actor,
            &e.role,
            &e.action.as_str(),
            &e.purpose,
            &e.basis,
            &e.outcome.as_str(),
            &e.reason,
            &e.subject,
            &crate::lists::encode(&e.fields),
            &e.policy_version,
            &&record.hash[..],
        ],
    )
    .await?;
    *chain = end;
    Ok(record)
}

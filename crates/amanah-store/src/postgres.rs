//! The PostgreSQL backend, for deployments that run several `amanah serve` processes on one
//! database (and, on paper, PostgreSQL-compatible distributed SQL: see ARCHITECTURE.md).
//!
//! - One writer task per process owns a write connection and commits queued jobs in one
//!   transaction (group commit). A run of creates and audit appends in a batch is written
//!   together, one multi-row statement per table sent as one pipeline, with the batch's unique
//!   terms read first under the head lock (`grouped`); every other job runs in its own
//!   savepoint, like the SQLite backend, and so does every job of a batch whose group failed
//!   in the database, run again that way so that the failure is only its job's.
//! - Every write transaction starts by locking the signed audit head row
//!   (`SELECT ... FOR UPDATE`). That row is the serialization point for all writers of all
//!   processes: the audit chain is one total order, each batch appends after the head it locked,
//!   and every number the store assigns (audit seq, consent seq, policy seq) is taken as
//!   `max + 1` under that lock, so no sequence object is needed.
//! - A transaction that fails with a serialization failure (40001) or a deadlock (40P01) is
//!   rolled back and run again from the start, up to a bound; jobs are plain data, so a retry
//!   re-applies exactly the same writes.
//! - Reads go to a few shared connections (tokio-postgres pipelines concurrent queries).
//! - Errors carry the SQLSTATE and the server's message, never its `detail` (which may quote
//!   row values); the connection URL's password is never printed.
//! - Connections use TLS as the URL's `sslmode` and `sslrootcert` say, with libpq's meanings
//!   (`tls`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use amanah_core::audit::AuditRecord;
use amanah_crypto::audit::AuditKey;
use async_trait::async_trait;
use tokio::sync::oneshot;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Config, NoTls, Row, Statement};

use crate::exec::{Args, Map, Rows, Step, Value};
use crate::ops::Op;
use crate::sql::Sql;
use crate::{limit, submit, Backend, BulkInsert, StoreError, StoreResult, StoredSubject};

pub mod admin;
mod commit;
mod exec;
mod grouped;
mod schema;
mod tls;

use commit::*;
use exec::*;
use grouped::*;
use schema::*;
use tls::Target;
const MAX_BATCH: usize = 256;
const READERS: usize = 4;
/// Attempts of one write transaction that hits 40001 / 40P01.
const MAX_ATTEMPTS: u32 = 8;

/// A database error as the store reports it: SQLSTATE and message, never the detail.
pub(crate) fn backend(e: tokio_postgres::Error) -> StoreError {
    StoreError::Backend(explain(&e))
}

/// The text of [`backend`]. A client-side error (I/O, TLS) names its causes too, e.g. why a
/// certificate was refused; the server's detail stays out.
fn explain(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("postgres {}: {}", db.code().code(), db.message()),
        None if e.is_closed() => "the postgres connection is closed".into(),
        None => {
            let mut text = format!("postgres: {e}");
            let mut cause = std::error::Error::source(e);
            while let Some(c) = cause {
                text.push_str(&format!(": {c}"));
                cause = c.source();
            }
            text
        }
    }
}

/// Serialization failure or deadlock: the transaction can be run again as a whole.
pub fn is_retryable(code: &SqlState) -> bool {
    *code == SqlState::T_R_SERIALIZATION_FAILURE || *code == SqlState::T_R_DEADLOCK_DETECTED
}

fn retryable(e: &tokio_postgres::Error) -> bool {
    e.code().is_some_and(is_retryable)
}

/// `postgres://user@host:port/db`, without the password, for messages and logs.
pub fn describe(config: &Config) -> String {
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "postgres://{}@{host}:{port}/{}",
        config.get_user().unwrap_or(""),
        config.get_dbname().unwrap_or("")
    )
}

/// Parses a `postgres://` URL (or key=value string), its TLS parameters included (`sslmode`,
/// `sslrootcert`: see `tls`). The error never quotes the input's password.
pub fn parse_url(url: &str) -> StoreResult<Config> {
    tls::parse(url).map(|p| p.config)
}

async fn connect(target: &Target) -> StoreResult<Client> {
    let failed = |e| {
        StoreError::Backend(format!(
            "cannot connect to {} (sslmode={}): {}",
            describe(&target.config),
            target.mode.as_str(),
            explain(&e)
        ))
    };
    match &target.tls {
        Some(tls) => {
            let (client, connection) = target.config.connect(tls.clone()).await.map_err(failed)?;
            tokio::spawn(drive(connection));
            Ok(client)
        }
        None => {
            let (client, connection) = target.config.connect(NoTls).await.map_err(failed)?;
            tokio::spawn(drive(connection));
            Ok(client)
        }
    }
}

/// Runs a connection until it ends (its client is dropped or the server closes it).
async fn drive<S, T>(connection: tokio_postgres::Connection<S, T>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    if let Err(e) = connection.await {
        tracing::warn!(error = %backend(e), "postgres connection ended");
    }
}

enum WriteJob {
    /// A small job, committed together with its queued neighbours (group commit).
    One {
        op: Box<Op>,
        reply: oneshot::Sender<StoreResult<Vec<AuditRecord>>>,
    },
    /// A bulk insert: its own transaction, fed from a channel.
    Bulk {
        input: tokio::sync::mpsc::Receiver<BulkInsert>,
        reply: oneshot::Sender<StoreResult<u64>>,
    },
}

/// The end of the chain while a batch runs: read from the locked head row.
#[derive(Clone, Copy)]
struct Chain<'k> {
    key: &'k AuditKey,
    seq: u64,
    hash: [u8; 32],
}

struct ReadConn {
    client: Client,
    stmts: Mutex<HashMap<&'static str, Statement>>,
}

struct Inner {
    target: Target,
    writer: flume::Sender<WriteJob>,
    readers: Vec<RwLock<Arc<ReadConn>>>,
    next: AtomicUsize,
    /// Checks the MACs of the rows that grant access (`integrity`).
    records: AuditKey,
}

/// The PostgreSQL store. Cheap to clone; its writer task stops when the last clone is dropped.
#[derive(Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

impl PgStore {
    /// Connects, applies pending migrations (refusing a newer schema) and starts the writer.
    /// Must be called inside a Tokio runtime.
    pub async fn open(url: &str, audit_key: AuditKey) -> StoreResult<Self> {
        let target = Target::new(tls::parse(url)?)?;
        let mut client = connect(&target).await?;
        migrate(&mut client, &audit_key).await?;
        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            readers.push(RwLock::new(Arc::new(ReadConn {
                client: connect(&target).await?,
                stmts: Mutex::default(),
            })));
        }
        let (wtx, wrx) = flume::unbounded::<WriteJob>();
        let records = audit_key.clone();
        tokio::spawn(writer_loop(target.clone(), client, audit_key, wrx));
        Ok(PgStore {
            inner: Arc::new(Inner {
                target,
                writer: wtx,
                readers,
                next: AtomicUsize::new(0),
                records,
            }),
        })
    }

    /// Where the store is, without the password.
    pub fn describe(&self) -> String {
        describe(&self.inner.target.config)
    }

    /// A read connection, reconnected if the server closed it.
    async fn reader(&self) -> StoreResult<Arc<ReadConn>> {
        let i = self.inner.next.fetch_add(1, Ordering::Relaxed) % self.inner.readers.len();
        let slot = &self.inner.readers[i];
        let current = match slot.read() {
            Ok(c) => c.clone(),
            Err(p) => p.into_inner().clone(),
        };
        if !current.client.is_closed() {
            return Ok(current);
        }
        let fresh = Arc::new(ReadConn {
            client: connect(&self.inner.target).await?,
            stmts: Mutex::default(),
        });
        match slot.write() {
            Ok(mut c) => *c = fresh.clone(),
            Err(p) => *p.into_inner() = fresh.clone(),
        }
        Ok(fresh)
    }

    async fn query(
        &self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> StoreResult<Vec<Row>> {
        let conn = self.reader().await?;
        let cached = conn.stmts.lock().ok().and_then(|m| m.get(sql).cloned());
        let stmt = match cached {
            Some(s) => s,
            None => {
                let s = conn.client.prepare(sql).await.map_err(backend)?;
                if let Ok(mut m) = conn.stmts.lock() {
                    m.insert(sql, s.clone());
                }
                s
            }
        };
        conn.client.query(&stmt, params).await.map_err(backend)
    }
}

/// Subjects with their key, sealed fields and purposes, one row each (read by
/// `subjects_from_rows`); a subject whose key is gone is not loaded.
macro_rules! subject_rows {
    () => {
        "SELECT s.id, k.kek_id, k.key_version, k.wrapped_key, s.created_at, s.fields,
                s.restricted_at,
                ARRAY(SELECT p.purpose FROM subject_purposes p WHERE p.subject_id = s.id
                      ORDER BY p.collected_at, p.purpose)
         FROM subjects s JOIN amanah_keys.data_keys k ON k.subject_id = s.id"
    };
}

#[async_trait]
impl Backend for PgStore {
    async fn write(&self, op: Op) -> StoreResult<Vec<AuditRecord>> {
        let op = Box::new(op);
        submit(&self.inner.writer, |reply| WriteJob::One { op, reply }).await
    }

    async fn all<T: Send + 'static>(&self, q: Sql, args: Args<'_>, map: Map<T>) -> Rows<T> {
        let params: Vec<_> = args.iter().map(Value::pg).collect();
        let rows = self.query(q.pg, &params).await?;
        rows.iter().map(|r| map(r)).collect()
    }

    async fn fold<S: Send + 'static>(
        &self,
        q: Sql,
        args: Args<'_>,
        mut state: S,
        step: Step<S>,
    ) -> StoreResult<S> {
        let params: Vec<_> = args.iter().map(Value::pg).collect();
        for r in &self.query(q.pg, &params).await? {
            if !step(&mut state, r)? {
                break;
            }
        }
        Ok(state)
    }

    async fn load_subject(&self, id: &str) -> StoreResult<Option<StoredSubject>> {
        let rows = self
            .query(concat!(subject_rows!(), " WHERE s.id = $1"), &[&id])
            .await?;
        Ok(subjects_from_rows(&rows)?.pop())
    }

    async fn find_subjects(&self, category: &str, term: [u8; 32], n: usize) -> Rows<StoredSubject> {
        let rows = self
            .query(
                concat!(
                    "WITH ids AS (",
                    subjects_with_term!(),
                    ") ",
                    subject_rows!(),
                    " WHERE s.id IN (SELECT subject_id FROM ids) ORDER BY s.id"
                ),
                &[&category, &&term[..], &limit(n)],
            )
            .await?;
        subjects_from_rows(&rows)
    }

    async fn insert_subjects(
        &self,
        input: tokio::sync::mpsc::Receiver<BulkInsert>,
    ) -> StoreResult<u64> {
        submit(&self.inner.writer, |reply| WriteJob::Bulk { input, reply }).await
    }

    async fn store_id(&self) -> StoreResult<Option<String>> {
        Ok(None)
    }

    async fn flush(&self) -> StoreResult<()> {
        // PostgreSQL checkpoints on its own; a commit is already in the data files' WAL.
        Ok(())
    }

    fn records(&self) -> &AuditKey {
        &self.inner.records
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn serialization_failures_and_deadlocks_are_retried() {
        assert!(is_retryable(&SqlState::T_R_SERIALIZATION_FAILURE));
        assert!(is_retryable(&SqlState::T_R_DEADLOCK_DETECTED));
        assert!(!is_retryable(&SqlState::UNIQUE_VIOLATION));
        assert!(backoff(1) >= Duration::from_millis(2) && backoff(1) < Duration::from_millis(4));
        assert!(backoff(30) <= Duration::from_millis(256));
    }

    #[test]
    fn the_password_never_shows() {
        let config = parse_url("postgres://amanah:s3cret-pw@127.0.0.1:5433/vault").unwrap();
        let shown = describe(&config);
        assert_eq!(shown, "postgres://amanah@127.0.0.1:5433/vault");
        let err = parse_url("postgres://amanah:s3cret-pw@127.0.0.1:notaport/vault")
            .err()
            .unwrap()
            .to_string();
        assert!(!err.contains("s3cret"), "{err}");
    }
}
